//! The OCI image layout: content-addressed blobs under `blobs/sha256/`, an
//! `index.json` naming manifests by digest (with a ref-name annotation), and
//! manifests pointing at a config and gzip-compressed layers. skopeo, umoci,
//! podman and containerd read and write it.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use flate2::{Compression, GzBuilder};
use oci_spec::image::{
    Arch, Descriptor, Digest, ImageConfiguration, ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder,
    MediaType, OciLayout, OciLayoutBuilder, Os, PlatformBuilder,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::digest::{check_digest, diff_id, expect_digest, sha256_digest, sha256_file, HashWriter};
use crate::error::{Error, IoContext, Result};
use crate::layer::open_layer_file;
use crate::model::{
    built, config_from_oci, host_architecture, image_config, json_bytes, parse_json, read_json, write_json_file,
    ImageConfig, LoadedImage,
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
    let hw = HashWriter::new(io::BufWriter::new(tmp.as_file().try_clone().ctx("dup", tmp.path())?));
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
        return Err(Error::Invalid("save oci image: the tag (ref name) is empty".into()));
    }
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).ctx("create directory", &blobs)?;
    let layout = OciLayoutBuilder::default().image_layout_version("1.0.0").build();
    write_json_file(&dir.join("oci-layout"), &built(layout, "oci-layout")?)?;

    let mut diff_ids = Vec::new();
    let mut layer_digests = Vec::new();
    let mut layer_descs = Vec::new();
    for l in layers {
        let (diff, digest, size) = write_gzip_layer(dir, l)?;
        layer_descs.push(descriptor(MediaType::ImageLayerGzip, &digest, size, dir)?);
        diff_ids.push(diff);
        layer_digests.push(digest);
    }
    let config = json_bytes(&image_config(cfg, &diff_ids)?, &blobs)?;
    let (config_digest, config_size) = write_blob(dir, &config)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, &config_digest, config_size, dir)?)
        .layers(layer_descs)
        .build();
    let manifest = json_bytes(&built(manifest, "manifest")?, &blobs)?;
    let (manifest_digest, manifest_size) = write_blob(dir, &manifest)?;

    let index_path = dir.join("index.json");
    let mut manifests: Vec<Descriptor> = if index_path.exists() {
        let old: ImageIndex = read_json(&index_path)?;
        old.manifests()
            .iter()
            .filter(|m| ref_names(m).0 != Some(cfg.tag.as_str()))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let mut annotations = HashMap::from([(ANNOTATION_REF_NAME.to_string(), cfg.tag.clone())]);
    if !cfg.name.is_empty() {
        annotations.insert(ANNOTATION_IMAGE_NAME.into(), format!("{}:{}", cfg.name, cfg.tag));
    }
    let platform = PlatformBuilder::default()
        .architecture(Arch::from(host_architecture()))
        .os(Os::Linux)
        .build();
    let mut entry = descriptor(MediaType::ImageManifest, &manifest_digest, manifest_size, dir)?;
    entry.set_annotations(Some(annotations));
    entry.set_platform(Some(built(platform, "platform")?));
    manifests.push(entry);
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build();
    write_json_file(&index_path, &built(index, "index")?)?;
    Ok(OciSaved {
        manifest_digest,
        config_digest,
        layer_digests,
        diff_ids,
    })
}

/// A descriptor of the blob `digest` (a `sha256:<hex>` computed here).
fn descriptor(media_type: MediaType, digest: &str, size: u64, dir: &Path) -> Result<Descriptor> {
    let d = Digest::from_str(digest).map_err(|e| Error::invalid_image(dir, format!("digest {digest:?}: {e}")))?;
    Ok(Descriptor::new(media_type, size, d))
}

/// Read a blob and check it hashes to its digest.
fn read_blob(dir: &Path, digest: &str) -> Result<Vec<u8>> {
    let p = blob_path(dir, digest)?;
    let data = fs::read(&p).ctx("read", &p)?;
    expect_digest(&p, digest, sha256_digest(&data))?;
    Ok(data)
}

/// Read a blob, check its digest, and parse it as a `T`.
fn parse_blob<T: DeserializeOwned>(dir: &Path, digest: &Digest) -> Result<T> {
    let digest = digest.to_string();
    let data = read_blob(dir, &digest)?;
    parse_json(&data, &blob_path(dir, &digest)?)
}

/// The ref-name and containerd image-name annotations of an index entry.
fn ref_names(m: &Descriptor) -> (Option<&str>, Option<&str>) {
    let get = |k| m.annotations().as_ref()?.get(k).map(String::as_str);
    (get(ANNOTATION_REF_NAME), get(ANNOTATION_IMAGE_NAME))
}

/// Pick the manifest matching the host from an image index (multi-arch image).
fn pick_platform<'a>(dir: &Path, manifests: &'a [Descriptor]) -> Result<&'a Descriptor> {
    let host = Arch::from(host_architecture());
    manifests
        .iter()
        .find(|m| {
            m.platform()
                .as_ref()
                .is_some_and(|p| p.architecture() == &host && p.os() == &Os::Linux)
        })
        .or_else(|| manifests.iter().find(|m| m.platform().is_none()))
        .ok_or_else(|| Error::invalid_image(dir, format!("no manifest for linux/{}", host_architecture())))
}

/// Load the image called `reference` from an OCI image layout.
///
/// `reference` matches the `org.opencontainers.image.ref.name` annotation (or
/// containerd's `io.containerd.image.name`); an empty reference picks the only
/// image. Nested indexes (multi-arch images as skopeo copies them) resolve to
/// the host platform. Every blob is checked against its digest and every
/// layer against its diff_id.
pub fn load_oci(dir: &Path, reference: &str) -> Result<LoadedImage> {
    let _: OciLayout = read_json(&dir.join("oci-layout"))?;
    let index: ImageIndex = read_json(&dir.join("index.json"))?;
    let manifests = index.manifests();
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
        let mt = desc.media_type().to_string();
        if mt != MEDIA_TYPE_INDEX && mt != DOCKER_LIST {
            break;
        }
        let idx: ImageIndex = parse_blob(dir, desc.digest())?;
        desc = pick_platform(dir, idx.manifests())?.clone();
    }
    let manifest_digest = desc.digest().to_string();
    let manifest: ImageManifest = parse_blob(dir, desc.digest())?;
    let mt = manifest
        .media_type()
        .as_ref()
        .map_or(MEDIA_TYPE_MANIFEST.to_string(), |m| m.to_string());
    if mt != MEDIA_TYPE_MANIFEST && mt != DOCKER_MANIFEST {
        return Err(Error::invalid_image(
            dir,
            format!("unsupported manifest media type {mt}"),
        ));
    }
    // The config as stored (LoadedImage::raw_config) and typed.
    let raw_config: Value = parse_blob(dir, manifest.config().digest())?;
    let config: ImageConfiguration = serde_json::from_value(raw_config.clone()).map_err(|e| Error::Json {
        path: blob_path(dir, manifest.config().digest().as_ref()).unwrap_or_default(),
        source: e,
    })?;
    let want = config.rootfs().diff_ids().clone();
    let descs = manifest.layers();
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
        let digest = d.digest().to_string();
        let p = blob_path(dir, &digest)?;
        expect_digest(&p, &digest, sha256_file(&p)?)?;
        expect_digest(&p, expected_diff, diff_id(&p)?)?;
        layers.push(p);
    }
    Ok(LoadedImage {
        layers,
        diff_ids: want,
        config: config_from_oci(&config, &name, &tag),
        architecture: config.architecture().to_string(),
        os: config.os().to_string(),
        raw_config,
        manifest_digest: Some(manifest_digest),
        _scratch: None,
    })
}
