//! The OCI image layout: content-addressed blobs under `blobs/sha256/`, an
//! `index.json` naming manifests by digest (with a ref-name annotation), and
//! manifests pointing at a config and gzip-compressed layers. skopeo, umoci,
//! podman and containerd read and write it.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use serde_json::{json, Value};

use crate::digest::{check_digest, diff_id, sha256_digest, sha256_file, HashWriter};
use crate::error::{Error, IoContext, Result};
use crate::layer::open_layer_file;
use crate::model::{
    config_from_json, host_architecture, image_config_json, json_bytes, read_json, str_list,
    write_json_file, ImageConfig, LoadedImage,
};

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

/// Gzip a layer (plain or gzip input) into the blob store; returns
/// (diff_id, blob digest, blob size).
fn write_gzip_layer(dir: &Path, layer: &Path) -> Result<(String, String, u64)> {
    let blobs = dir.join("blobs").join("sha256");
    let tmp = tempfile::Builder::new()
        .prefix(".wb-tmp-")
        .tempfile_in(&blobs)
        .ctx("create temporary file in", &blobs)?;
    let hw = HashWriter::new(io::BufWriter::new(
        tmp.as_file().try_clone().ctx("dup", tmp.path())?,
    ));
    // mtime 0 and no file name: the same tar always gives the same blob.
    let mut gz = GzBuilder::new().write(hw, Compression::default());
    let mut diff = HashWriter::new(&mut gz);
    io::copy(&mut open_layer_file(layer)?, &mut diff).ctx("compress", layer)?;
    let (diff_id, _) = diff.finish();
    let mut hw = gz.finish().ctx("compress", layer)?;
    hw.flush().ctx("write", tmp.path())?;
    let (digest, size) = hw.finish();
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
