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

use oci_spec::image::{Arch, Config, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder, Os, RootFsBuilder};
use oci_spec::OciSpecError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

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

/// An image found by [`crate::oci::load_oci`] or
/// [`crate::docker::load_docker_archive`].
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
        let p = self
            .layers
            .get(i)
            .ok_or_else(|| Error::Invalid(format!("layer {i} out of range (image has {})", self.layers.len())))?;
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

/// `v` as JSON bytes with every object's keys in sorted order (through a
/// `serde_json::Value`, whose maps are sorted), however `T` orders its
/// fields. The first writers built `Value`s; keeping their byte layout keeps
/// the digests of the images saved before (and in the book's transcripts).
pub(crate) fn json_bytes<T: Serialize>(v: &T, path: &Path) -> Result<Vec<u8>> {
    let json = |source| Error::Json {
        path: path.to_path_buf(),
        source,
    };
    serde_json::to_vec(&serde_json::to_value(v).map_err(json)?).map_err(json)
}

/// Write `v` as [`json_bytes`] plus a newline.
pub(crate) fn write_json_file<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let mut bytes = json_bytes(v, path)?;
    bytes.push(b'\n');
    fs::write(path, bytes).ctx("write", path)
}

/// Parse `bytes` (read from `path`) as a `T`.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })
}

/// Read and parse a JSON file.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    parse_json(&fs::read(path).ctx("read", path)?, path)
}

pub(crate) fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// An oci-spec builder's result; it fails only when a required field is
/// missing, which would be a bug here, but say so as an error, not a panic.
pub(crate) fn built<T>(r: std::result::Result<T, OciSpecError>, what: &str) -> Result<T> {
    r.map_err(|e| Error::Invalid(format!("building the OCI {what}: {e}")))
}

/// The image config for `cfg` over layers with these diff_ids: created at
/// [`EPOCH`], the host architecture, linux, one history entry per layer.
pub(crate) fn image_config(cfg: &ImageConfig, diff_ids: &[String]) -> Result<ImageConfiguration> {
    let mut run = Config::default();
    if !cfg.env.is_empty() {
        run.set_env(Some(cfg.env.clone()));
    }
    if !cfg.cmd.is_empty() {
        run.set_cmd(Some(cfg.cmd.clone()));
    }
    let history = (1..=diff_ids.len())
        .map(|i| {
            HistoryBuilder::default()
                .created(EPOCH)
                .created_by(format!("wb-image layer {i}"))
                .build()
        })
        .collect::<std::result::Result<Vec<_>, _>>();
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(diff_ids.to_vec())
        .build();
    let config = ImageConfigurationBuilder::default()
        .created(EPOCH)
        .architecture(Arch::from(host_architecture()))
        .os(Os::Linux)
        .config(run)
        .rootfs(built(rootfs, "rootfs")?)
        .history(built(history, "history")?)
        .build();
    built(config, "image config")
}

/// Name, tag, command and environment of an OCI image config.
pub(crate) fn config_from_oci(c: &ImageConfiguration, name: &str, tag: &str) -> ImageConfig {
    let run = c.config().as_ref();
    ImageConfig {
        name: name.to_string(),
        tag: tag.to_string(),
        cmd: run.and_then(|r| r.cmd().clone()).unwrap_or_default(),
        env: run.and_then(|r| r.env().clone()).unwrap_or_default(),
    }
}

/// The same from a config as `docker save` stores it (`config` or, in old
/// layer `json` files, `Config`).
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
    fn config_has_the_oci_fields() {
        let cfg = ImageConfig {
            name: "n".into(),
            tag: "t".into(),
            cmd: vec!["/bin/sh".into()],
            env: vec!["A=1".into()],
        };
        let c = image_config(&cfg, &["sha256:aa".to_string()]).unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["rootfs"]["type"], "layers");
        assert_eq!(v["rootfs"]["diff_ids"][0], "sha256:aa");
        assert_eq!(v["os"], "linux");
        assert_eq!(v["architecture"], host_architecture());
        assert_eq!(v["config"]["Cmd"][0], "/bin/sh");
        assert_eq!(config_from_oci(&c, "n", "t"), cfg);
        assert_eq!(config_from_json(&v, "n", "t"), cfg);
        // No command or environment: an empty `config` object, as before.
        let bare = image_config(&ImageConfig::default(), &[]).unwrap();
        let bytes = json_bytes(&bare, Path::new("config")).unwrap();
        assert!(String::from_utf8(bytes).unwrap().contains(r#""config":{}"#));
    }
}
