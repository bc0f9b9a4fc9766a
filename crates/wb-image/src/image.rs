//! Container images on disk: a stack of layer tars plus a JSON config.
//!
//! Two layouts are common. `docker save` writes one directory per layer
//! (`<id>/layer.tar`, `<id>/json`, `<id>/VERSION`) plus `repositories` and
//! `manifest.json` naming the layers in order. The OCI image layout stores
//! everything as content-addressed blobs (`blobs/sha256/<digest>`): an
//! `index.json` points at a manifest by digest, the manifest points at the
//! config and the gzip-compressed layers, and the config lists each layer's
//! `diff_id`, the sha256 of the *uncompressed* tar, so a runtime can verify
//! what it unpacked. Applying the layers base-first gives the image's root
//! filesystem.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use flate2::{Compression, GzBuilder};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::layer::{apply_layer, ApplyMode};

pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Annotation on an `index.json` entry naming the image (skopeo's and umoci's `DIR:REF`).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation holding the full `name:tag`.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// Fixed creation time written into configs, so that the same layers always
/// give the same digests (reproducible-build convention).
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

/// What an image is called and how its container starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub name: String,
    pub tag: String,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
}

/// Digests written by [`save_oci`] (all `sha256:<hex>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciSaved {
    pub manifest_digest: String,
    pub config_digest: String,
    /// Digests of the gzip blobs, base first.
    pub layer_digests: Vec<String>,
    /// sha256 of the uncompressed layer tars, base first.
    pub diff_ids: Vec<String>,
}

/// What [`save_docker_dir`] / [`save_docker_archive`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSaved {
    /// Hex id of each layer directory, base first; the last one is the one `repositories` names.
    pub layer_ids: Vec<String>,
    /// `sha256:<hex>` of the config JSON (its file is `<hex>.json`).
    pub config_digest: String,
    pub diff_ids: Vec<String>,
}

/// An image found by [`load_oci`] or [`load_docker_archive`].
#[derive(Debug)]
pub struct LoadedImage {
    /// Layer files, base first: gzip or plain tars (use [`LoadedImage::open_layer`]).
    pub layers: Vec<PathBuf>,
    /// Verified sha256 of each uncompressed layer, base first.
    pub diff_ids: Vec<String>,
    pub config: ImageConfig,
    /// The image config JSON as stored.
    pub raw_config: Value,
    pub architecture: String,
    pub os: String,
    /// Digest of the OCI manifest (None for docker archives).
    pub manifest_digest: Option<String>,
    /// Holds an extracted docker-save tar alive as long as the layer paths are used.
    _scratch: Option<tempfile::TempDir>,
}

impl LoadedImage {
    /// A decompressing reader for layer `i` (base is 0).
    pub fn open_layer(&self, i: usize) -> Result<Box<dyn Read + Send>> {
        let p = self.layers.get(i).ok_or_else(|| {
            Error::Invalid(format!(
                "layer {i} out of range (image has {})",
                self.layers.len()
            ))
        })?;
        open_layer_file(p)
    }

    /// Apply all layers base-first onto `dest` (Flatten mode): the image's rootfs.
    pub fn flatten_into(&self, dest: &Path) -> Result<()> {
        for i in 0..self.layers.len() {
            apply_layer(self.open_layer(i)?, dest, ApplyMode::Flatten)?;
        }
        Ok(())
    }

    /// Unpack each layer into its own directory under `root` (Overlay mode,
    /// needs root) named `NN-<first 12 hex of diff_id>`, and return them
    /// top-most first, ready for [`crate::overlay::OverlaySpec::lowers`].
    pub fn unpack_for_overlay(&self, root: &Path) -> Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for (i, d) in self.diff_ids.iter().enumerate() {
            let hex = d.strip_prefix("sha256:").unwrap_or(d);
            let dir = root.join(format!("{i:02}-{}", &hex[..hex.len().min(12)]));
            apply_layer(self.open_layer(i)?, &dir, ApplyMode::Overlay)?;
            dirs.push(dir);
        }
        dirs.reverse();
        Ok(dirs)
    }
}

/// The host architecture in OCI/Go naming (`amd64`, `arm64`, ...).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        other => other,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:<hex>` of a byte string.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// sha256 digest and length of everything `r` yields.
fn hash_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut w = HashWriter {
        inner: io::sink(),
        hasher: Sha256::new(),
        len: 0,
    };
    let n = io::copy(&mut r, &mut w)?;
    Ok((format!("sha256:{}", hex(&w.hasher.finalize())), n))
}

/// `sha256:<hex>` of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String> {
    let f = File::open(path).ctx("open", path)?;
    Ok(hash_reader(BufReader::new(f)).ctx("read", path)?.0)
}

/// Open a layer file for reading its tar stream, decompressing gzip
/// (detected by its magic bytes 1f 8b). zstd layers are refused.
pub fn open_layer_file(path: &Path) -> Result<Box<dyn Read + Send>> {
    let f = File::open(path).ctx("open", path)?;
    let mut r = BufReader::new(f);
    let head = r.fill_buf().ctx("read", path)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(MultiGzDecoder::new(r)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(Error::InvalidEntry {
            path: path.display().to_string(),
            reason: "zstd-compressed layers are not supported".into(),
        })
    } else {
        Ok(Box::new(r))
    }
}

/// sha256 of the uncompressed tar stream of a layer file.
pub fn diff_id(path: &Path) -> Result<String> {
    Ok(hash_reader(open_layer_file(path)?).ctx("read", path)?.0)
}

fn write_json_file(path: &Path, v: &Value) -> Result<()> {
    let mut bytes = serde_json::to_vec(v).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    bytes.push(b'\n');
    fs::write(path, bytes).ctx("write", path)
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = fs::read(path).ctx("read", path)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn image_config_json(cfg: &ImageConfig, diff_ids: &[String]) -> Value {
    let mut c = serde_json::Map::new();
    if !cfg.env.is_empty() {
        c.insert("Env".into(), json!(cfg.env));
    }
    if !cfg.cmd.is_empty() {
        c.insert("Cmd".into(), json!(cfg.cmd));
    }
    let history: Vec<Value> = (0..diff_ids.len())
        .map(|i| json!({"created": EPOCH, "created_by": format!("wb-image layer {}", i + 1)}))
        .collect();
    json!({
        "created": EPOCH,
        "architecture": host_architecture(),
        "os": "linux",
        "config": c,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    })
}

fn config_from_json(v: &Value, name: &str, tag: &str) -> ImageConfig {
    let c = v
        .get("config")
        .or_else(|| v.get("Config"))
        .cloned()
        .unwrap_or(Value::Null);
    ImageConfig {
        name: name.to_string(),
        tag: tag.to_string(),
        cmd: str_list(&c["Cmd"]),
        env: str_list(&c["Env"]),
    }
}

fn check_digest(d: &str, ctx: &Path) -> Result<String> {
    let hex = d.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(Error::invalid_image(
            ctx,
            format!("unsupported or malformed digest {d:?}"),
        ));
    }
    Ok(hex.to_string())
}

// ---------------------------------------------------------------- OCI layout

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf> {
    let hex = check_digest(digest, dir)?;
    Ok(dir.join("blobs").join("sha256").join(hex))
}

/// Write bytes as a blob; returns (digest, size).
fn write_blob(dir: &Path, data: &[u8]) -> Result<(String, u64)> {
    let d = sha256_digest(data);
    let p = blob_path(dir, &d)?;
    fs::write(&p, data).ctx("write", &p)?;
    Ok((d, data.len() as u64))
}

fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serializing a serde_json::Value cannot fail")
}

/// Gzip a layer (plain or gzip input) into the blob store; returns
/// (diff_id, blob digest, blob size).
fn write_gzip_layer(dir: &Path, layer: &Path) -> Result<(String, String, u64)> {
    let blobs = dir.join("blobs").join("sha256");
    let tmp = tempfile::Builder::new()
        .prefix(".wb-tmp-")
        .tempfile_in(&blobs)
        .ctx("create temporary file in", &blobs)?;
    let hw = HashWriter {
        inner: io::BufWriter::new(tmp.as_file().try_clone().ctx("dup", tmp.path())?),
        hasher: Sha256::new(),
        len: 0,
    };
    // mtime 0 and no file name: the same tar always gives the same blob.
    let mut gz = GzBuilder::new().write(hw, Compression::default());
    let mut diff = HashWriter {
        inner: &mut gz,
        hasher: Sha256::new(),
        len: 0,
    };
    io::copy(&mut open_layer_file(layer)?, &mut diff).ctx("compress", layer)?;
    let diff_id = format!("sha256:{}", hex(&diff.hasher.finalize()));
    let mut hw = gz.finish().ctx("compress", layer)?;
    hw.flush().ctx("write", tmp.path())?;
    let digest = format!("sha256:{}", hex(&hw.hasher.finalize()));
    let size = hw.len;
    let dest = blob_path(dir, &digest)?;
    tmp.persist(&dest)
        .map_err(|e| Error::io("rename blob to", &dest, e.error))?;
    Ok((diff_id, digest, size))
}

/// Save an image as an OCI image layout in `dir` (created if missing).
///
/// `layers` are layer tars, base first (plain or gzip). Each is stored as a
/// gzip blob; the config records the diff_ids (sha256 of the uncompressed
/// tars), the host architecture and `os: linux`. `index.json` gets an entry
/// annotated `org.opencontainers.image.ref.name = cfg.tag` (replacing an
/// existing entry of that name, keeping others), so the image is
/// `oci:DIR:TAG` for skopeo and `DIR:TAG` for umoci.
pub fn save_oci(layers: &[PathBuf], cfg: &ImageConfig, dir: &Path) -> Result<OciSaved> {
    if cfg.tag.is_empty() {
        return Err(Error::Invalid(
            "save oci image: the tag (ref name) is empty".into(),
        ));
    }
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).ctx("create directory", &blobs)?;
    write_json_file(
        &dir.join("oci-layout"),
        &json!({"imageLayoutVersion": "1.0.0"}),
    )?;

    let mut diff_ids = Vec::new();
    let mut layer_digests = Vec::new();
    let mut layer_descs = Vec::new();
    for l in layers {
        let (diff, digest, size) = write_gzip_layer(dir, l)?;
        layer_descs
            .push(json!({"mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": digest, "size": size}));
        diff_ids.push(diff);
        layer_digests.push(digest);
    }
    let config = json_bytes(&image_config_json(cfg, &diff_ids));
    let (config_digest, config_size) = write_blob(dir, &config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {"mediaType": MEDIA_TYPE_CONFIG, "digest": config_digest, "size": config_size},
        "layers": layer_descs,
    });
    let (manifest_digest, manifest_size) = write_blob(dir, &json_bytes(&manifest))?;

    let index_path = dir.join("index.json");
    let mut manifests: Vec<Value> = if index_path.exists() {
        let old = read_json(&index_path)?;
        old["manifests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m["annotations"][ANNOTATION_REF_NAME].as_str() != Some(cfg.tag.as_str()))
            .collect()
    } else {
        Vec::new()
    };
    let mut annotations = serde_json::Map::new();
    annotations.insert(ANNOTATION_REF_NAME.into(), json!(cfg.tag));
    if !cfg.name.is_empty() {
        annotations.insert(
            ANNOTATION_IMAGE_NAME.into(),
            json!(format!("{}:{}", cfg.name, cfg.tag)),
        );
    }
    manifests.push(json!({
        "mediaType": MEDIA_TYPE_MANIFEST,
        "digest": manifest_digest,
        "size": manifest_size,
        "annotations": annotations,
        "platform": {"architecture": host_architecture(), "os": "linux"},
    }));
    write_json_file(
        &index_path,
        &json!({"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": manifests}),
    )?;
    Ok(OciSaved {
        manifest_digest,
        config_digest,
        layer_digests,
        diff_ids,
    })
}

/// Read a blob and check it hashes to its digest.
fn read_blob(dir: &Path, digest: &str) -> Result<Vec<u8>> {
    let p = blob_path(dir, digest)?;
    let data = fs::read(&p).ctx("read", &p)?;
    let actual = sha256_digest(&data);
    if actual != digest {
        return Err(Error::DigestMismatch {
            path: p,
            expected: digest.into(),
            actual,
        });
    }
    Ok(data)
}

fn parse_blob(dir: &Path, digest: &str) -> Result<Value> {
    let data = read_blob(dir, digest)?;
    serde_json::from_slice(&data).map_err(|e| Error::Json {
        path: blob_path(dir, digest).unwrap_or_default(),
        source: e,
    })
}

fn ref_names(m: &Value) -> (Option<&str>, Option<&str>) {
    (
        m["annotations"][ANNOTATION_REF_NAME].as_str(),
        m["annotations"][ANNOTATION_IMAGE_NAME].as_str(),
    )
}

/// Pick the manifest matching the host from an image index (multi-arch image).
fn pick_platform<'a>(dir: &Path, manifests: &'a [Value]) -> Result<&'a Value> {
    manifests
        .iter()
        .find(|m| {
            m["platform"]["architecture"].as_str() == Some(host_architecture())
                && m["platform"]["os"].as_str().unwrap_or("linux") == "linux"
        })
        .or_else(|| manifests.iter().find(|m| m.get("platform").is_none()))
        .ok_or_else(|| {
            Error::invalid_image(
                dir,
                format!("no manifest for linux/{}", host_architecture()),
            )
        })
}

/// Load the image called `reference` from an OCI image layout.
///
/// `reference` matches the `org.opencontainers.image.ref.name` annotation (or
/// containerd's `io.containerd.image.name`); an empty reference picks the only
/// image. Nested indexes (multi-arch images as skopeo copies them) resolve to
/// the host platform. Every blob is checked against its digest and every
/// layer against its diff_id.
pub fn load_oci(dir: &Path, reference: &str) -> Result<LoadedImage> {
    let layout = read_json(&dir.join("oci-layout"))?;
    if layout["imageLayoutVersion"].as_str().is_none() {
        return Err(Error::invalid_image(
            dir,
            "oci-layout has no imageLayoutVersion",
        ));
    }
    let index = read_json(&dir.join("index.json"))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let found = if reference.is_empty() && manifests.len() == 1 {
        manifests.first()
    } else {
        manifests.iter().find(|m| {
            let (r, n) = ref_names(m);
            r == Some(reference) || n == Some(reference)
        })
    };
    let Some(desc) = found else {
        let available: Vec<&str> = manifests.iter().filter_map(|m| ref_names(m).0).collect();
        return Err(Error::NotFound {
            reference: reference.into(),
            path: dir.into(),
            available: available.join(", "),
        });
    };
    let (refname, imgname) = ref_names(desc);
    let (name, tag) = match imgname.and_then(|n| n.rsplit_once(':')) {
        Some((n, t)) if !t.contains('/') => (n.to_string(), t.to_string()),
        _ => (String::new(), refname.unwrap_or(reference).to_string()),
    };

    let mut desc = desc.clone();
    for _ in 0..4 {
        let mt = desc["mediaType"].as_str().unwrap_or("");
        if mt != MEDIA_TYPE_INDEX && mt != DOCKER_LIST {
            break;
        }
        let digest = desc["digest"].as_str().unwrap_or("").to_string();
        let idx = parse_blob(dir, &digest)?;
        let list = idx["manifests"].as_array().cloned().unwrap_or_default();
        desc = pick_platform(dir, &list)?.clone();
    }
    let manifest_digest = desc["digest"].as_str().unwrap_or("").to_string();
    let manifest = parse_blob(dir, &manifest_digest)?;
    let mt = manifest["mediaType"]
        .as_str()
        .unwrap_or(MEDIA_TYPE_MANIFEST);
    if mt != MEDIA_TYPE_MANIFEST && mt != DOCKER_MANIFEST {
        return Err(Error::invalid_image(
            dir,
            format!("unsupported manifest media type {mt}"),
        ));
    }
    let config_digest = manifest["config"]["digest"].as_str().unwrap_or("");
    let raw_config: Value = parse_blob(dir, config_digest)?;
    let want: Vec<String> = str_list(&raw_config["rootfs"]["diff_ids"]);
    let descs = manifest["layers"].as_array().cloned().unwrap_or_default();
    if descs.len() != want.len() {
        return Err(Error::invalid_image(
            dir,
            format!(
                "manifest has {} layers but config lists {} diff_ids",
                descs.len(),
                want.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (d, expected_diff) in descs.iter().zip(&want) {
        let digest = d["digest"].as_str().unwrap_or("");
        let p = blob_path(dir, digest)?;
        let actual = sha256_file(&p)?;
        if actual != digest {
            return Err(Error::DigestMismatch {
                path: p,
                expected: digest.into(),
                actual,
            });
        }
        let actual = diff_id(&p)?;
        if &actual != expected_diff {
            return Err(Error::DigestMismatch {
                path: p,
                expected: expected_diff.clone(),
                actual,
            });
        }
        layers.push(p);
    }
    Ok(LoadedImage {
        layers,
        diff_ids: want,
        config: config_from_json(&raw_config, &name, &tag),
        architecture: raw_config["architecture"].as_str().unwrap_or("").into(),
        os: raw_config["os"].as_str().unwrap_or("").into(),
        raw_config,
        manifest_digest: Some(manifest_digest),
        _scratch: None,
    })
}

// ------------------------------------------------------------- docker save

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
        let mut w = HashWriter {
            inner: io::BufWriter::new(tmp.as_file().try_clone().ctx("dup", tmp.path())?),
            hasher: Sha256::new(),
            len: 0,
        };
        io::copy(&mut open_layer_file(l)?, &mut w).ctx("copy", l)?;
        w.flush().ctx("write", tmp.path())?;
        let diff = format!("sha256:{}", hex(&w.hasher.finalize()));
        // v1 layer id: chained over the parent id, like a chain id.
        let parent = ids.last().cloned().unwrap_or_default();
        let id = hex(&Sha256::digest(format!("{parent}\n{diff}").as_bytes()));
        tars.push(tmp);
        diff_ids.push(diff);
        ids.push(id);
    }
    let config_json = image_config_json(cfg, &diff_ids);
    let config = json_bytes(&config_json);
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
            j["config"] = config_json["config"].clone();
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
pub fn save_docker_archive(
    layers: &[PathBuf],
    cfg: &ImageConfig,
    out: &Path,
) -> Result<DockerSaved> {
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
    let mut b = tar::Builder::new(io::BufWriter::new(
        tmp.as_file().try_clone().ctx("dup", tmp.path())?,
    ));
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
            b.append_data(&mut h, Path::new(&p), io::empty())
                .map_err(werr)?;
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
        return Err(Error::invalid_image(
            root,
            format!("path {rel:?} leaves the archive"),
        ));
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
        let list = read_json(&mf)?;
        let entries = list.as_array().cloned().unwrap_or_default();
        let entry = if reference.is_empty() && entries.len() == 1 {
            entries.first()
        } else {
            entries
                .iter()
                .find(|e| str_list(&e["RepoTags"]).contains(&want))
        };
        let Some(entry) = entry else {
            let available: Vec<String> = entries
                .iter()
                .flat_map(|e| str_list(&e["RepoTags"]))
                .collect();
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
        let stem = cfg_path
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        let stem = stem.strip_suffix(".json").unwrap_or(&stem).to_string();
        if stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit()) {
            let actual = sha256_digest(&bytes);
            if actual != format!("sha256:{stem}") {
                return Err(Error::DigestMismatch {
                    path: cfg_path,
                    expected: format!("sha256:{stem}"),
                    actual,
                });
            }
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
            str_list(&entry["RepoTags"])
                .into_iter()
                .next()
                .unwrap_or_default()
        } else {
            want.clone()
        };
        let (n, t) = rt
            .rsplit_once(':')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap_or_default();
        (layers, raw, n, t, true)
    } else {
        let repos = read_json(&root.join("repositories"))?;
        let mut all = Vec::new();
        let mut top = None;
        if let Some(obj) = repos.as_object() {
            for (n, tags) in obj {
                for (t, id) in tags.as_object().into_iter().flatten() {
                    let rt = format!("{n}:{t}");
                    if rt == want
                        || (reference.is_empty()
                            && obj.len() == 1
                            && tags.as_object().map_or(0, |m| m.len()) == 1)
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
            let j = read_json(&ldir.join("json"))?;
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
            if got != exp {
                return Err(Error::DigestMismatch {
                    path: l.clone(),
                    expected: exp.clone(),
                    actual: got.clone(),
                });
            }
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
    fn digests_are_checked_for_shape() {
        let d = Path::new("/x");
        assert!(check_digest("sha256:../../etc/passwd", d).is_err());
        assert!(check_digest(&format!("sha256:{}", "A".repeat(64)), d).is_err());
        assert!(check_digest(&format!("sha512:{}", "a".repeat(64)), d).is_err());
        assert_eq!(
            check_digest(&format!("sha256:{}", "a".repeat(64)), d).unwrap(),
            "a".repeat(64)
        );
    }

    #[test]
    fn sha256_of_empty_string() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

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

    #[test]
    fn config_json_has_the_oci_fields() {
        let cfg = ImageConfig {
            name: "n".into(),
            tag: "t".into(),
            cmd: vec!["/bin/sh".into()],
            env: vec!["A=1".into()],
        };
        let v = image_config_json(&cfg, &["sha256:aa".to_string()]);
        assert_eq!(v["rootfs"]["type"], "layers");
        assert_eq!(v["rootfs"]["diff_ids"][0], "sha256:aa");
        assert_eq!(v["os"], "linux");
        assert_eq!(v["architecture"], host_architecture());
        assert_eq!(v["config"]["Cmd"][0], "/bin/sh");
        assert_eq!(config_from_json(&v, "n", "t"), cfg);
    }
}
