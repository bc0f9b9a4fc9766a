//! The `docker save` shape: one directory per layer (`<id>/layer.tar`,
//! `<id>/json`, `<id>/VERSION`), the image config as `<hex>.json`, and
//! `manifest.json` plus the legacy `repositories` naming the layers in order;
//! `docker load` and skopeo's `docker-archive:` read it as a tar file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};

use crate::digest::{diff_id, expect_digest, sha256_digest, HashWriter};
use crate::error::{Error, IoContext, Result};
use crate::layer::open_layer_file;
use crate::model::{
    config_from_json, host_architecture, image_config, json_bytes, read_json, str_list, write_json_file, ImageConfig,
    LoadedImage, EPOCH,
};

/// What [`save_docker_dir`] / [`save_docker_archive`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSaved {
    /// Hex id of each layer directory, base first; the last one is the one `repositories` names.
    pub layer_ids: Vec<String>,
    /// `sha256:<hex>` of the config JSON (its file is `<hex>.json`).
    pub config_digest: String,
    pub diff_ids: Vec<String>,
}

const EMPTY_CONTAINER_CONFIG: &str = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null}"#;

/// Save an image in the `docker save` shape into directory `dir`:
/// `<layerid>/{VERSION,json,layer.tar}` (layer.tar uncompressed),
/// `<config-hex>.json`, `manifest.json` and `repositories`.
pub fn save_docker_dir(layers: &[PathBuf], cfg: &ImageConfig, dir: &Path) -> Result<DockerSaved> {
    if cfg.name.is_empty() || cfg.tag.is_empty() {
        return Err(Error::Invalid(
            "save docker image: name and tag must not be empty".into(),
        ));
    }
    fs::create_dir_all(dir).ctx("create directory", dir)?;
    let mut diff_ids = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let mut tars = Vec::new();
    for l in layers {
        let tmp = tempfile::Builder::new()
            .prefix(".wb-tmp-")
            .tempfile_in(dir)
            .ctx("create temporary file in", dir)?;
        let mut w = HashWriter::new(io::BufWriter::new(tmp.as_file().try_clone().ctx("dup", tmp.path())?));
        io::copy(&mut open_layer_file(l)?, &mut w).ctx("copy", l)?;
        w.flush().ctx("write", tmp.path())?;
        let (diff, _) = w.finish();
        // v1 layer id: chained over the parent id, like a chain id.
        let parent = ids.last().cloned().unwrap_or_default();
        let id = sha256_digest(format!("{parent}\n{diff}").as_bytes())
            .trim_start_matches("sha256:")
            .to_string();
        tars.push(tmp);
        diff_ids.push(diff);
        ids.push(id);
    }
    let image_config = image_config(cfg, &diff_ids)?;
    let config = json_bytes(&image_config, dir)?;
    let config_digest = sha256_digest(&config);
    let config_hex = config_digest.trim_start_matches("sha256:").to_string();
    let config_file = dir.join(format!("{config_hex}.json"));
    fs::write(&config_file, &config).ctx("write", &config_file)?;

    let empty: Value = serde_json::from_str(EMPTY_CONTAINER_CONFIG).expect("valid constant");
    for (i, (id, tmp)) in ids.iter().zip(tars).enumerate() {
        let ldir = dir.join(id);
        fs::create_dir_all(&ldir).ctx("create directory", &ldir)?;
        fs::write(ldir.join("VERSION"), "1.0").ctx("write", ldir.join("VERSION"))?;
        let mut j = json!({
            "id": id,
            "created": EPOCH,
            "container_config": empty,
            "os": "linux",
        });
        if i > 0 {
            j["parent"] = json!(ids[i - 1]);
        }
        if i + 1 == ids.len() {
            j["config"] = serde_json::to_value(image_config.config()).map_err(|e| Error::Json {
                path: ldir.join("json"),
                source: e,
            })?;
            j["architecture"] = json!(host_architecture());
        }
        write_json_file(&ldir.join("json"), &j)?;
        let dest = ldir.join("layer.tar");
        tmp.persist(&dest)
            .map_err(|e| Error::io("rename layer to", &dest, e.error))?;
    }
    let repo_tag = format!("{}:{}", cfg.name, cfg.tag);
    let layer_paths: Vec<String> = ids.iter().map(|id| format!("{id}/layer.tar")).collect();
    write_json_file(
        &dir.join("manifest.json"),
        &json!([{"Config": format!("{config_hex}.json"), "RepoTags": [repo_tag], "Layers": layer_paths}]),
    )?;
    let mut tags = serde_json::Map::new();
    if let Some(top) = ids.last() {
        tags.insert(cfg.tag.clone(), json!(top));
    }
    let mut repos = serde_json::Map::new();
    repos.insert(cfg.name.clone(), Value::Object(tags));
    write_json_file(&dir.join("repositories"), &Value::Object(repos))?;
    Ok(DockerSaved {
        layer_ids: ids,
        config_digest,
        diff_ids,
    })
}

/// Save an image in the `docker save` shape as one tar file at `out`
/// (`docker load -i out` / `skopeo ... docker-archive:out` read it).
pub fn save_docker_archive(layers: &[PathBuf], cfg: &ImageConfig, out: &Path) -> Result<DockerSaved> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".wb-docker-")
        .tempdir_in(&parent)
        .ctx("create temporary directory in", &parent)?;
    let saved = save_docker_dir(layers, cfg, staging.path())?;
    let tmp = tempfile::Builder::new()
        .prefix(".wb-tmp-")
        .tempfile_in(&parent)
        .ctx("create temporary file in", &parent)?;
    let mut b = tar::Builder::new(io::BufWriter::new(tmp.as_file().try_clone().ctx("dup", tmp.path())?));
    let werr = |e: io::Error| Error::io("write", out, e);
    for e in crate::sys::walk(staging.path())? {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        if e.meta.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            let mut p = e.rel.as_os_str().to_os_string();
            p.push("/");
            b.append_data(&mut h, Path::new(&p), io::empty()).map_err(werr)?;
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(e.meta.len());
            let f = File::open(&e.abs).ctx("open", &e.abs)?;
            b.append_data(&mut h, &e.rel, f).map_err(werr)?;
        }
    }
    let mut w = b.into_inner().map_err(werr)?;
    w.flush().map_err(werr)?;
    drop(w);
    tmp.persist(out)
        .map_err(|e| Error::io("rename archive to", out, e.error))?;
    Ok(saved)
}

/// A path from manifest.json must stay inside the archive.
fn inside(root: &Path, rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(Error::invalid_image(root, format!("path {rel:?} leaves the archive")));
    }
    Ok(root.join(p))
}

fn with_default_tag(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if last.contains(':') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

/// Load the image `reference` (`name:tag`; `name` alone means `name:latest`;
/// empty picks the only image) from a `docker save` tar file (optionally
/// gzip-compressed) or an extracted directory. Uses `manifest.json` when
/// present (verifying diff_ids against the config), else the legacy
/// `repositories` + `<id>/json` parent chain.
pub fn load_docker_archive(path: &Path, reference: &str) -> Result<LoadedImage> {
    let meta = fs::metadata(path).ctx("stat", path)?;
    let (root, scratch) = if meta.is_dir() {
        (path.to_path_buf(), None)
    } else {
        let t = tempfile::Builder::new()
            .prefix("wb-docker-load-")
            .tempdir()
            .ctx("create temporary directory", std::env::temp_dir())?;
        let mut a = tar::Archive::new(open_layer_file(path)?);
        a.unpack(t.path()).ctx("extract", path)?;
        (t.path().to_path_buf(), Some(t))
    };
    let want = with_default_tag(reference);
    let mf = root.join("manifest.json");
    let (layers, raw_config, name, tag, verify) = if mf.exists() {
        let list: Value = read_json(&mf)?;
        let entries = list.as_array().cloned().unwrap_or_default();
        let entry = if reference.is_empty() && entries.len() == 1 {
            entries.first()
        } else {
            entries.iter().find(|e| str_list(&e["RepoTags"]).contains(&want))
        };
        let Some(entry) = entry else {
            let available: Vec<String> = entries.iter().flat_map(|e| str_list(&e["RepoTags"])).collect();
            return Err(Error::NotFound {
                reference: reference.into(),
                path: path.into(),
                available: available.join(", "),
            });
        };
        let cfg_rel = entry["Config"].as_str().unwrap_or("");
        let cfg_path = inside(&root, cfg_rel)?;
        let bytes = fs::read(&cfg_path).ctx("read", &cfg_path)?;
        // Config files are named after their digest (`<hex>.json` or `blobs/sha256/<hex>`).
        let stem = cfg_path.file_name().and_then(|s| s.to_str()).unwrap_or("").to_string();
        let stem = stem.strip_suffix(".json").unwrap_or(&stem).to_string();
        if stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit()) {
            expect_digest(&cfg_path, &format!("sha256:{stem}"), sha256_digest(&bytes))?;
        }
        let raw: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            path: cfg_path.clone(),
            source: e,
        })?;
        let layers = str_list(&entry["Layers"])
            .iter()
            .map(|l| inside(&root, l))
            .collect::<Result<Vec<_>>>()?;
        let rt = if reference.is_empty() {
            str_list(&entry["RepoTags"]).into_iter().next().unwrap_or_default()
        } else {
            want.clone()
        };
        let (n, t) = rt
            .rsplit_once(':')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap_or_default();
        (layers, raw, n, t, true)
    } else {
        let repos: Value = read_json(&root.join("repositories"))?;
        let mut all = Vec::new();
        let mut top = None;
        if let Some(obj) = repos.as_object() {
            for (n, tags) in obj {
                for (t, id) in tags.as_object().into_iter().flatten() {
                    let rt = format!("{n}:{t}");
                    if rt == want
                        || (reference.is_empty() && obj.len() == 1 && tags.as_object().map_or(0, |m| m.len()) == 1)
                    {
                        top = id.as_str().map(|s| (s.to_string(), n.clone(), t.clone()));
                    }
                    all.push(rt);
                }
            }
        }
        let Some((mut id, n, t)) = top else {
            return Err(Error::NotFound {
                reference: reference.into(),
                path: path.into(),
                available: all.join(", "),
            });
        };
        let mut layers = Vec::new();
        let mut top_json = None;
        loop {
            let ldir = inside(&root, &id)?;
            let j: Value = read_json(&ldir.join("json"))?;
            layers.push(ldir.join("layer.tar"));
            if top_json.is_none() {
                top_json = Some(j.clone());
            }
            match j["parent"].as_str() {
                Some(p) if !p.is_empty() && layers.len() < 1000 => id = p.to_string(),
                _ => break,
            }
        }
        layers.reverse();
        (layers, top_json.unwrap_or(Value::Null), n, t, false)
    };
    let mut diff_ids = Vec::new();
    for l in &layers {
        diff_ids.push(diff_id(l)?);
    }
    if verify {
        let declared = str_list(&raw_config["rootfs"]["diff_ids"]);
        if declared.len() != diff_ids.len() {
            return Err(Error::invalid_image(
                path,
                format!(
                    "manifest.json lists {} layers but the config has {} diff_ids",
                    diff_ids.len(),
                    declared.len()
                ),
            ));
        }
        for ((l, got), exp) in layers.iter().zip(&diff_ids).zip(&declared) {
            expect_digest(l, exp, got.clone())?;
        }
    }
    Ok(LoadedImage {
        layers,
        diff_ids,
        config: config_from_json(&raw_config, &name, &tag),
        architecture: raw_config["architecture"].as_str().unwrap_or("").into(),
        os: raw_config["os"].as_str().unwrap_or("").into(),
        raw_config,
        manifest_digest: None,
        _scratch: scratch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tag_is_latest() {
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(with_default_tag("busybox:1.36"), "busybox:1.36");
        assert_eq!(
            with_default_tag("localhost:5000/busybox"),
            "localhost:5000/busybox:latest"
        );
    }

    #[test]
    fn manifest_paths_stay_inside() {
        assert!(inside(Path::new("/r"), "../x").is_err());
        assert!(inside(Path::new("/r"), "/etc/passwd").is_err());
        assert_eq!(
            inside(Path::new("/r"), "ab/layer.tar").unwrap(),
            PathBuf::from("/r/ab/layer.tar")
        );
    }
}
