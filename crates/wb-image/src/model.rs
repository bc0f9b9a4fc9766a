//! What an image is, whichever layout it came from: its name and start
//! command, its layer files base first, and the config JSON that records
//! each layer's diff_id, the architecture and the OS.
//!
//! Both layouts ([`crate::oci`], [`crate::docker`]) write the same image
//! config (the OCI one; docker-save archives carry it too) and load into a
//! [`LoadedImage`], which applies its layers to make a root filesystem.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, IoContext, Result};
use crate::layer::{apply_layer, open_layer_file, ApplyMode};

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
    pub(crate) _scratch: Option<tempfile::TempDir>,
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

pub(crate) fn write_json_file(path: &Path, v: &Value) -> Result<()> {
    let mut bytes = serde_json::to_vec(v).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    bytes.push(b'\n');
    fs::write(path, bytes).ctx("write", path)
}

pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let bytes = fs::read(path).ctx("read", path)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

pub(crate) fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serializing a serde_json::Value cannot fail")
}

pub(crate) fn image_config_json(cfg: &ImageConfig, diff_ids: &[String]) -> Value {
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

pub(crate) fn config_from_json(v: &Value, name: &str, tag: &str) -> ImageConfig {
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

#[cfg(test)]
mod tests {
    use super::*;

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
