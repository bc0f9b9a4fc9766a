//! `workbench image import|ls|save|load|inspect|layers|rm`: the store's
//! commands. Every input is read and checked in full (archive shape, paths,
//! links, digests) before the store's lock is taken and anything is written.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use wb_image::layer::{list_layer, open_layer_file, OPAQUE_MARKER, WHITEOUT_PREFIX};
use wb_image::store::{Reference, Store, StoredImage, StoredLayer};

use super::args::{ImportArgs, LoadArgs, RefArgs, RefJson, SaveArgs, SaveFormat};
use super::common::{check_entry_path, reference, store_at, store_error, store_ro, symlink_inside};
use crate::error::UsageError;
use crate::observe::render::{render_rows, Style};

/// What an archive given to `image load` (or `import`) is, by its file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// `manifest.json` or `repositories` at the top: `docker save`.
    Docker,
    /// `oci-layout` at the top: an OCI image layout.
    Oci,
    /// Neither: a plain filesystem tar (what `docker import` takes).
    Plain,
}

/// Read a whole tar (never extracting) and classify it; refuse absolute
/// paths, `..`, links leaving the archive and device nodes.
pub fn scan_archive(r: impl Read) -> Result<ArchiveKind, String> {
    let mut a = tar::Archive::new(r);
    let mut names = Vec::new();
    for e in a.entries().map_err(|e| format!("not a tar archive: {e}"))? {
        let e = e.map_err(|e| format!("not a tar archive: {e}"))?;
        let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        check_entry_path(&path)?;
        let norm = path.trim_start_matches("./").trim_end_matches('/').to_string();
        match e.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => {}
            tar::EntryType::XHeader | tar::EntryType::XGlobalHeader => continue,
            tar::EntryType::Symlink => {
                let t = e.link_name_bytes().unwrap_or_default();
                let t = String::from_utf8_lossy(&t).into_owned();
                if symlink_inside(&norm, &t).is_none() {
                    return Err(format!("{path:?}: a symlink to {t:?} leads outside the archive"));
                }
            }
            tar::EntryType::Link => {
                let t = e.link_name_bytes().unwrap_or_default();
                check_entry_path(&String::from_utf8_lossy(&t))?;
            }
            other => names.push(format!("\0{other:?}\0{path}")),
        }
        names.push(norm);
    }
    let has = |n: &str| names.iter().any(|x| x == n);
    let kind = if has("oci-layout") {
        ArchiveKind::Oci
    } else if has("manifest.json") || has("repositories") {
        ArchiveKind::Docker
    } else {
        ArchiveKind::Plain
    };
    if kind != ArchiveKind::Plain {
        if let Some(dev) = names.iter().find(|n| n.starts_with('\0')) {
            let mut p = dev.split('\0').skip(1);
            let (t, path) = (p.next().unwrap_or(""), p.next().unwrap_or(""));
            return Err(format!("{path:?}: a {t:?} entry has no place in an image archive"));
        }
    }
    Ok(kind)
}

/// Check every entry of a layer tar (paths, hard link targets, entry types);
/// returns the number of entries.
pub fn check_layer(r: impl Read) -> Result<usize, String> {
    let entries = list_layer(r).map_err(|e| e.to_string())?;
    for e in &entries {
        check_entry_path(&e.path)?;
        if e.kind == "hardlink" {
            check_entry_path(e.link.as_deref().unwrap_or(""))?;
        }
        if e.kind == "other" {
            return Err(format!("{:?}: unsupported tar entry type", e.path));
        }
    }
    Ok(entries.len())
}

fn refuse(file: &Path, why: impl std::fmt::Display) -> anyhow::Error {
    UsageError(format!("{}: refused: {why}", file.display())).into()
}

fn print_stored(json_out: bool, verb: &str, r: &Reference, manifest: &str, layers: &[StoredLayer]) {
    if json_out {
        crate::jsonl::print(&json!({
            "type": "image_stored",
            "action": verb,
            "reference": r.to_string(),
            "manifest": manifest,
            "layers": layers.iter().map(|l| json!({"digest": l.digest, "size": l.size})).collect::<Vec<_>>(),
        }));
    } else {
        println!("{verb} {r} (manifest {manifest})");
        for (i, l) in layers.iter().enumerate() {
            println!("  layer {}: {} {} bytes", i + 1, l.digest, l.size);
        }
    }
}

/// `image import ROOTFS.tar NAME:TAG`.
pub fn import(a: &ImportArgs) -> anyhow::Result<ExitCode> {
    let r = reference(&a.reference)?;
    let (m, layers) = import_into(&wb_image::store::default_root(), &a.rootfs, &r)?;
    print_stored(a.json, "imported", &r, &m, &layers);
    Ok(ExitCode::SUCCESS)
}

/// What `image import` does, into the store at `root` (the image-layers
/// lesson uses one in its working directory): check the tar, store it as the
/// one layer of `r`. Returns the manifest digest and the layer.
pub fn import_into(root: &Path, rootfs: &Path, r: &Reference) -> anyhow::Result<(String, Vec<StoredLayer>)> {
    let meta = fs::metadata(rootfs).map_err(|e| UsageError(format!("{}: {e}", rootfs.display())))?;
    if !meta.is_file() {
        return Err(UsageError(format!(
            "{}: not a file; give a tar of a root filesystem, e.g. made with tar --numeric-owner -C DIR -cf rootfs.tar .",
            rootfs.display()
        ))
        .into());
    }
    let open = || open_layer_file(rootfs).map_err(|e| refuse(rootfs, e));
    match scan_archive(open()?).map_err(|e| refuse(rootfs, e))? {
        ArchiveKind::Plain => {}
        k => {
            return Err(UsageError(format!(
                "{}: this is a {} archive, an image already; store it with workbench image load {}",
                rootfs.display(),
                if k == ArchiveKind::Oci {
                    "OCI layout"
                } else {
                    "docker-save"
                },
                rootfs.display()
            ))
            .into())
        }
    }
    check_layer(open()?).map_err(|e| refuse(rootfs, e))?;
    let store = store_at(root)?;
    let _lock = store.lock_exclusive()?;
    let layer = store.put_layer_file(rootfs)?;
    let cfg = wb_image::ImageConfig {
        name: r.name.clone(),
        tag: r.tag.clone(),
        ..Default::default()
    };
    let layers = vec![layer];
    let m = store.commit_image(r, &layers, &cfg, None)?;
    Ok((m, layers))
}

/// `image load FILE [NAME:TAG]`.
pub fn load(a: &LoadArgs) -> anyhow::Result<ExitCode> {
    let given = a.reference.as_deref().map(reference).transpose()?;
    let (r, m, layers) = load_into(&wb_image::store::default_root(), &a.file, given)?;
    print_stored(a.json, "loaded", &r, &m, &layers);
    Ok(ExitCode::SUCCESS)
}

/// What `image load` does, into the store at `root`: refuse anything but a
/// docker-save archive or an OCI layout (a plain rootfs tar included) before
/// the store is opened, then store its layers and config. Returns the
/// reference, the manifest digest and the layers.
pub fn load_into(
    root: &Path,
    file: &Path,
    given: Option<Reference>,
) -> anyhow::Result<(Reference, String, Vec<StoredLayer>)> {
    let file = &file.to_path_buf();
    let meta = fs::metadata(file).map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
    // Nothing is created (not even the store) before the archive is checked.
    let scratch = tempfile::Builder::new().prefix("wb-image-load-").tempdir()?;
    let (kind, dir) = if meta.is_dir() {
        let kind = if file.join("oci-layout").is_file() {
            ArchiveKind::Oci
        } else if file.join("manifest.json").is_file() || file.join("repositories").is_file() {
            ArchiveKind::Docker
        } else {
            ArchiveKind::Plain
        };
        (kind, file.clone())
    } else {
        let open = || open_layer_file(file).map_err(|e| refuse(file, e));
        let kind = scan_archive(open()?).map_err(|e| refuse(file, e))?;
        if kind != ArchiveKind::Plain {
            let mut t = tar::Archive::new(open()?);
            t.set_preserve_permissions(false);
            t.unpack(scratch.path()).map_err(|e| refuse(file, e))?;
        }
        (kind, scratch.path().to_path_buf())
    };
    if kind == ArchiveKind::Plain {
        return Err(UsageError(format!(
            "{}: refused: a plain filesystem {}, not an image (no manifest.json, repositories or oci-layout); to make an image of it run: workbench image import {} NAME:TAG",
            file.display(),
            if meta.is_dir() { "directory" } else { "tar" },
            file.display()
        ))
        .into());
    }
    let loaded = match kind {
        ArchiveKind::Oci => wb_image::load_oci(&dir, ""),
        _ => wb_image::load_docker_archive(&dir, ""),
    };
    let loaded = loaded.map_err(|e| match e {
        wb_image::Error::NotFound { available, .. } => UsageError(format!(
            "{}: refused: it holds several images ({available}); this loads archives of one image",
            file.display()
        ))
        .into(),
        e => refuse(file, e),
    })?;
    for (i, l) in loaded.layers.iter().enumerate() {
        check_layer(open_layer_file(l).map_err(|e| refuse(file, e))?)
            .map_err(|e| refuse(file, format!("layer {}: {e}", i + 1)))?;
    }
    let r = match given {
        Some(r) => r,
        None => {
            let c = &loaded.config;
            if c.name.is_empty() {
                return Err(UsageError(format!(
                    "{}: the archive names no repository (only the tag {:?}): give one, workbench image load {} NAME:TAG",
                    file.display(),
                    c.tag,
                    file.display()
                ))
                .into());
            }
            reference(&format!("{}:{}", c.name, c.tag)).map_err(|e| refuse(file, e))?
        }
    };
    let store = store_at(root)?;
    let _lock = store.lock_exclusive()?;
    let layers = loaded
        .layers
        .iter()
        .map(|l| store.put_layer_file(l))
        .collect::<Result<Vec<_>, _>>()?;
    // Keep the archive's own config when it lists exactly these layers.
    let declared = loaded.raw_config["rootfs"]["diff_ids"].clone();
    let config = (declared == json!(loaded.diff_ids)).then(|| loaded.raw_config.clone());
    let mut cfg = loaded.config.clone();
    cfg.name.clone_from(&r.name);
    cfg.tag.clone_from(&r.tag);
    let m = store.commit_image(&r, &layers, &cfg, config)?;
    Ok((r, m, layers))
}

/// The store for a read-only command, and the image (layers verified or not).
fn stored(reference_arg: &str, verify: bool) -> anyhow::Result<(Store, StoredImage)> {
    let r = reference(reference_arg)?;
    let Some(store) = store_ro() else {
        return Err(store_error(wb_image::Error::NotFound {
            reference: r.to_string(),
            path: PathBuf::new(),
            available: String::new(),
        }));
    };
    let img = {
        let _l = store.lock_shared()?;
        store.get(&r, verify).map_err(store_error)?
    };
    Ok((store, img))
}

/// `image ls`.
pub fn ls(json_out: bool, style: Style) -> anyhow::Result<ExitCode> {
    let images = match store_ro() {
        Some(s) => {
            let _l = s.lock_shared()?;
            s.list().map_err(store_error)?
        }
        None => vec![],
    };
    if json_out {
        for i in &images {
            crate::jsonl::print(&json!({
                "type": "image",
                "name": i.reference.name,
                "tag": i.reference.tag,
                "id": i.config_digest,
                "manifest": i.manifest_digest,
                "layers": i.layers.len(),
                "size": i.size(),
            }));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|i| {
            let id = i.config_digest.trim_start_matches("sha256:");
            vec![
                i.reference.name.clone(),
                i.reference.tag.clone(),
                id[..12.min(id.len())].to_string(),
                i.layers.len().to_string(),
                human(i.size()),
            ]
        })
        .collect();
    print!(
        "{}",
        render_rows(&["name", "tag", "image id", "layers", "size"], &rows, style)
    );
    Ok(ExitCode::SUCCESS)
}

fn human(n: u64) -> String {
    match n {
        n if n >= 10 << 20 => format!("{} MiB", n >> 20),
        n if n >= 10 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// `image inspect NAME:TAG`: the config JSON.
pub fn inspect(a: &RefArgs) -> anyhow::Result<ExitCode> {
    let (_, img) = stored(&a.reference, false)?;
    println!("{}", serde_json::to_string_pretty(&img.config)?);
    Ok(ExitCode::SUCCESS)
}

/// What a layer entry means for the layers below: a whiteout or an opaque dir marker.
pub fn mark(path: &str) -> Option<(&'static str, String)> {
    let p = path.trim_start_matches("./");
    let (dir, name) = match p.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), p),
    };
    if name == OPAQUE_MARKER {
        Some(("opaque", dir))
    } else {
        name.strip_prefix(WHITEOUT_PREFIX)
            .map(|n| ("whiteout", format!("{dir}{n}")))
    }
}

/// `image layers NAME:TAG`.
pub fn layers(a: &RefJson, style: Style) -> anyhow::Result<ExitCode> {
    let (store, img) = stored(&a.reference, true)?;
    let n = img.layers.len();
    for (i, l) in img.layers.iter().enumerate() {
        let entries = list_layer(File::open(store.blob_path(&l.digest)?).context("open layer")?)?;
        if a.json {
            let es: Vec<_> = entries
                .iter()
                .map(|e| {
                    let m = mark(&e.path);
                    json!({
                        "path": e.path, "kind": e.kind, "size": e.size, "mode": format!("{:o}", e.mode),
                        "uid": e.uid, "gid": e.gid, "link": e.link,
                        "mark": m.as_ref().map(|m| m.0), "target": m.map(|m| m.1),
                    })
                })
                .collect();
            crate::jsonl::print(&json!({
                "type": "image_layer", "reference": img.reference.to_string(), "index": i + 1,
                "digest": l.digest, "size": l.size, "entries": es,
            }));
            continue;
        }
        println!(
            "layer {} of {n}: {} ({} bytes, {} entries)",
            i + 1,
            l.digest,
            l.size,
            entries.len()
        );
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                let (kind, note) = match mark(&e.path) {
                    Some(("opaque", d)) => ("opaque".to_string(), format!("{d} hides the layers below")),
                    Some((_, t)) => ("whiteout".to_string(), format!("deletes {t}")),
                    None => (
                        e.kind.to_string(),
                        e.link.as_ref().map(|l| format!("→ {l}")).unwrap_or_default(),
                    ),
                };
                vec![
                    kind,
                    e.path.clone(),
                    format!("{:o}", e.mode),
                    format!("{}:{}", e.uid, e.gid),
                    e.size.to_string(),
                    note,
                ]
            })
            .collect();
        print!(
            "{}",
            render_rows(&["kind", "path", "mode", "owner", "size", "note"], &rows, style)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `image rm NAME:TAG`.
pub fn rm(a: &RefJson) -> anyhow::Result<ExitCode> {
    let r = reference(&a.reference)?;
    let Some(store) = store_ro() else {
        return Err(store_error(wb_image::Error::NotFound {
            reference: r.to_string(),
            path: PathBuf::new(),
            available: String::new(),
        }));
    };
    let _l = store.lock_exclusive()?;
    let removed = store.remove(&r).map_err(store_error)?;
    if a.json {
        crate::jsonl::print(
            &json!({"type": "image_removed", "untagged": removed.untagged, "deleted": removed.deleted}),
        );
    } else {
        println!("untagged: {}", removed.untagged);
        for d in &removed.deleted {
            println!("deleted: {d}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `image save NAME:TAG -o FILE`.
pub fn save(a: &SaveArgs) -> anyhow::Result<ExitCode> {
    let r = reference(&a.reference)?;
    let parent = match a.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(UsageError(format!("-o {}: no directory {}", a.output.display(), parent.display())).into());
    }
    if a.output.is_dir() {
        return Err(UsageError(format!(
            "-o {}: a directory; give a file name such as image.tar",
            a.output.display()
        ))
        .into());
    }
    let (store, _) = stored(&a.reference, false)?;
    let _l = store.lock_shared()?;
    let img = store.get(&r, true).map_err(store_error)?;
    let paths = img
        .layers
        .iter()
        .map(|l| store.blob_path(&l.digest))
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = img.image_config();
    match a.format {
        SaveFormat::Docker => {
            let s = wb_image::save_docker_archive(&paths, &cfg, &a.output)?;
            println!(
                "saved {r} to {} (docker-save layout, {} layers)",
                a.output.display(),
                s.layer_ids.len()
            );
            for id in &s.layer_ids {
                println!("  {id}/layer.tar");
            }
        }
        SaveFormat::Oci => {
            let scratch = store.scratch("save-")?;
            let dir = scratch.path().join("oci");
            let s = wb_image::save_oci(&paths, &cfg, &dir)?;
            tar_dir(&dir, &a.output)?;
            println!(
                "saved {r} to {} (OCI layout, manifest {}, ref name {:?})",
                a.output.display(),
                s.manifest_digest,
                r.tag
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Tar a directory (owners 0, mtimes 0) into `out`: temp file beside it, then rename.
fn tar_dir(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new().prefix(".wb-tmp-").tempfile_in(parent)?;
    let mut b = tar::Builder::new(io::BufWriter::new(tmp.as_file().try_clone()?));
    b.mode(tar::HeaderMode::Deterministic);
    b.follow_symlinks(false);
    b.append_dir_all(".", dir)?;
    let mut w = b.into_inner()?;
    w.flush()?;
    drop(w);
    tmp.persist(out)
        .map_err(|e| e.error)
        .with_context(|| format!("rename to {}", out.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, t, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*t);
            h.set_mode(0o644);
            h.set_size(0);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match t {
                tar::EntryType::Symlink | tar::EntryType::Link => b.append_link(&mut h, p, link).unwrap(),
                _ => {
                    // Bypass the builder's path checks to write hostile names.
                    let name = p.as_bytes();
                    h.as_old_mut().name[..name.len()].copy_from_slice(name);
                    h.set_cksum();
                    b.append(&h, io::empty()).unwrap()
                }
            }
        }
        b.into_inner().unwrap()
    }

    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};

    #[test]
    fn archives_are_classified() {
        let docker = tar_of(&[
            ("abc/", D, ""),
            ("abc/layer.tar", F, ""),
            ("manifest.json", F, ""),
            ("repositories", F, ""),
        ]);
        assert_eq!(scan_archive(&docker[..]), Ok(ArchiveKind::Docker));
        let oci = tar_of(&[("./oci-layout", F, ""), ("./index.json", F, "")]);
        assert_eq!(scan_archive(&oci[..]), Ok(ArchiveKind::Oci));
        let plain = tar_of(&[("./bin/", D, ""), ("./bin/sh", F, ""), ("./bin/ls", S, "sh")]);
        assert_eq!(scan_archive(&plain[..]), Ok(ArchiveKind::Plain));
        assert!(scan_archive(&b"not a tar at all, just text"[..]).is_err());
    }

    #[test]
    fn hostile_archives_are_refused() {
        for (bad, what) in [
            (tar_of(&[("/etc/passwd", F, ""), ("manifest.json", F, "")]), "absolute"),
            (tar_of(&[("a/../../x", F, ""), ("manifest.json", F, "")]), ".."),
            (tar_of(&[("esc", S, "../../etc"), ("manifest.json", F, "")]), "outside"),
            (
                tar_of(&[("esc", S, "/etc/shadow"), ("manifest.json", F, "")]),
                "outside",
            ),
            (tar_of(&[("h", H, "../x"), ("manifest.json", F, "")]), ".."),
        ] {
            let e = scan_archive(&bad[..]).unwrap_err();
            assert!(e.contains(what), "{what}: {e}");
            assert!(!e.contains('\n'));
        }
        // A symlink inside the archive (docker saves of repeated layers) is fine.
        let ok = tar_of(&[
            ("a/layer.tar", F, ""),
            ("b/layer.tar", S, "../a/layer.tar"),
            ("manifest.json", F, ""),
        ]);
        assert_eq!(scan_archive(&ok[..]), Ok(ArchiveKind::Docker));
    }

    #[test]
    fn layers_are_checked() {
        assert_eq!(
            check_layer(&tar_of(&[("./etc/", D, ""), ("./etc/x", F, "")])[..]),
            Ok(2)
        );
        assert!(check_layer(&tar_of(&[("/etc/x", F, "")])[..]).is_err());
        assert!(check_layer(&tar_of(&[("x", H, "/etc/shadow")])[..]).is_err());
    }

    #[test]
    fn marks() {
        assert_eq!(mark("etc/.wh.motd"), Some(("whiteout", "etc/motd".into())));
        assert_eq!(mark("./.wh.x"), Some(("whiteout", "x".into())));
        assert_eq!(mark("var/cache/.wh..wh..opq"), Some(("opaque", "var/cache/".into())));
        assert_eq!(mark("etc/motd"), None);
    }
}
