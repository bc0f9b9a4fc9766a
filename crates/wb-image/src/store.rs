//! A local image store: what `docker images` keeps, made small enough to read.
//!
//! Every file is a *blob* named by the sha256 of its bytes
//! (`blobs/sha256/<hex>`): plain layer tars (so a layer's blob digest is its
//! diff_id), image configs and OCI manifests. `refs.json` maps `NAME:TAG` to a
//! manifest digest. Blobs are written to a temporary file in the same
//! directory, fsync'ed and renamed into place, so a crash never leaves a
//! half-written blob under a digest name; every read re-hashes the blob. One
//! `flock(2)` on `lock` serialises writers (shared for readers), and removing
//! a tag deletes only the blobs no remaining tag reaches.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{Descriptor, Digest, ImageConfiguration, ImageManifest, ImageManifestBuilder, MediaType};
use serde_json::Value;

use crate::digest::{check_digest, expect_digest, sha256_digest, HashWriter};
use crate::error::{Error, IoContext, Result};
use crate::model::{built, config_from_json, image_config, json_bytes, ImageConfig, LoadedImage};

/// The store used when `WORKBENCH_STORE` is not set.
pub const DEFAULT_ROOT: &str = "/var/lib/workbench/images";
/// Environment variable overriding the store's root (tests, lessons).
pub const ROOT_ENV: &str = "WORKBENCH_STORE";

/// `$WORKBENCH_STORE`, else [`DEFAULT_ROOT`].
pub fn default_root() -> PathBuf {
    match std::env::var_os(ROOT_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(DEFAULT_ROOT),
    }
}

/// A checked image reference: `NAME:TAG` (`NAME` alone means `NAME:latest`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    pub name: String,
    pub tag: String,
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

impl Reference {
    /// Parse `NAME[:TAG]`. A name is lowercase letters, digits and `._-`
    /// in components separated by `/` (each starting with a letter or digit);
    /// a tag is up to 128 letters, digits and `._-`, not starting with `.` or `-`.
    pub fn parse(s: &str) -> std::result::Result<Reference, String> {
        let (name, tag) = match s.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, t),
            _ => (s, "latest"),
        };
        let comp_ok = |c: &str| {
            !c.is_empty()
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        };
        if name.is_empty() || name.len() > 200 || !name.split('/').all(comp_ok) || name.contains("..") {
            return Err(format!(
                "{s:?}: not an image name; use NAME:TAG with a NAME of lowercase letters, digits, '.', '_', '-' (components separated by '/'), e.g. busybox:v1"
            ));
        }
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.as_bytes()[0].is_ascii_alphanumeric()
            && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !tag_ok {
            return Err(format!(
                "{s:?}: bad tag {tag:?}; a tag is 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
            ));
        }
        Ok(Reference {
            name: name.into(),
            tag: tag.into(),
        })
    }
}

/// One layer of a stored image: its blob (a plain tar, so digest = diff_id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLayer {
    pub digest: String,
    pub size: u64,
}

/// A stored image, its blobs verified.
#[derive(Debug, Clone)]
pub struct StoredImage {
    pub reference: Reference,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layers: Vec<StoredLayer>,
    /// The image config JSON.
    pub config: Value,
}

impl StoredImage {
    /// Name, tag, command and environment from the config.
    pub fn image_config(&self) -> ImageConfig {
        config_from_json(&self.config, &self.reference.name, &self.reference.tag)
    }

    /// Sum of the layer sizes (uncompressed tars).
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// What [`Store::remove`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub untagged: String,
    /// Blobs deleted because nothing referenced them any more.
    pub deleted: Vec<String>,
}

/// The store at a root directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A held `flock(2)` on the store; released on drop.
pub struct StoreLock {
    _lock: Flock<File>,
}

const REFS: &str = "refs.json";

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx("fsync", dir)
}

impl Store {
    /// Open (creating its directories, mode 0700 for the root) the store at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        use std::os::unix::fs::DirBuilderExt;
        if !root.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root)
                .ctx("create directory", root)?;
        }
        let s = Store {
            root: root.to_path_buf(),
        };
        for d in [s.blob_dir(), s.root.join("tmp")] {
            fs::create_dir_all(&d).ctx("create directory", &d)?;
        }
        Ok(s)
    }

    /// Open the store without creating anything (None when it does not exist yet).
    pub fn existing(root: &Path) -> Option<Store> {
        root.join("blobs").is_dir().then(|| Store {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// A directory for scratch work on the store's filesystem (removed on
    /// drop), named `PREFIX-PID-…`; scratch dirs of processes that no longer
    /// exist (killed with SIGKILL) are removed first.
    pub fn scratch(&self, prefix: &str) -> Result<tempfile::TempDir> {
        let t = self.root.join("tmp");
        self.prune_scratch();
        tempfile::Builder::new()
            .prefix(&format!("{prefix}{}-", std::process::id()))
            .tempdir_in(&t)
            .ctx("create temporary directory in", &t)
    }

    /// Remove `tmp/NAME-PID-…` entries whose process is gone (best effort).
    fn prune_scratch(&self) {
        let Ok(dir) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.split('-').nth(1).and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            let gone = pid > 0
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(nix::errno::Errno::ESRCH);
            if gone {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    fn lock(&self, arg: FlockArg) -> Result<StoreLock> {
        let p = self.root.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .ctx("open", &p)?;
        let l = Flock::lock(f, arg).map_err(|(_, e)| Error::io("flock", &p, io::Error::from(e)))?;
        Ok(StoreLock { _lock: l })
    }

    /// Exclusive lock: held by every command that changes the store.
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        self.lock(FlockArg::LockExclusive)
    }

    /// Shared lock: readers exclude writers only.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        self.lock(FlockArg::LockShared)
    }

    /// Path of blob `digest` (its shape checked).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.blob_dir().join(check_digest(digest, &self.root)?))
    }

    /// Write everything `r` yields as a blob: temp file, fsync, rename, fsync dir.
    /// Returns (digest, size). Writing a blob that exists keeps the old one.
    pub fn put_blob(&self, mut r: impl Read) -> Result<(String, u64)> {
        let dir = self.blob_dir();
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .ctx("create temporary file in", &dir)?;
        let mut w = HashWriter::new(io::BufWriter::new(tmp.as_file().try_clone().ctx("dup", tmp.path())?));
        io::copy(&mut r, &mut w).ctx("write", tmp.path())?;
        w.flush().ctx("write", tmp.path())?;
        let (digest, size) = w.finish();
        tmp.as_file().sync_all().ctx("fsync", tmp.path())?;
        let dest = self.blob_path(&digest)?;
        if dest.exists() {
            return Ok((digest, size));
        }
        tmp.persist(&dest)
            .map_err(|e| Error::io("rename blob to", &dest, e.error))?;
        fsync_dir(&dir)?;
        Ok((digest, size))
    }

    /// A blob's bytes, checked against its digest.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        let data = fs::read(&p).ctx("read", &p)?;
        expect_digest(&p, digest, sha256_digest(&data))?;
        Ok(data)
    }

    /// Re-hash a blob file; returns its size.
    pub fn verify_blob(&self, digest: &str) -> Result<u64> {
        let p = self.blob_path(digest)?;
        let f = File::open(&p).ctx("open", &p)?;
        let mut w = HashWriter::new(io::sink());
        io::copy(&mut BufReader::new(f), &mut w).ctx("read", &p)?;
        let (got, size) = w.finish();
        expect_digest(&p, digest, got)?;
        Ok(size)
    }

    /// The tags: `NAME:TAG` → manifest digest.
    pub fn refs(&self) -> Result<BTreeMap<String, String>> {
        let p = self.root.join(REFS);
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Json { path: p, source: e }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io("read", &p, e)),
        }
    }

    fn write_refs(&self, refs: &BTreeMap<String, String>) -> Result<()> {
        let p = self.root.join(REFS);
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-refs-")
            .tempfile_in(&self.root)
            .ctx("create temporary file in", &self.root)?;
        let mut bytes = serde_json::to_vec_pretty(refs).map_err(|e| Error::Json {
            path: p.clone(),
            source: e,
        })?;
        bytes.push(b'\n');
        tmp.as_file().write_all(&bytes).ctx("write", tmp.path())?;
        tmp.as_file().sync_all().ctx("fsync", tmp.path())?;
        tmp.persist(&p).map_err(|e| Error::io("rename refs to", &p, e.error))?;
        fsync_dir(&self.root)
    }

    /// Store an image made of layer blobs already in the store (plain tars,
    /// base first) and a config, and tag it. `config` None writes the
    /// standard config ([`image_config`]) for `cfg`. Call with the exclusive lock held.
    pub fn commit_image(
        &self,
        reference: &Reference,
        layers: &[StoredLayer],
        cfg: &ImageConfig,
        config: Option<Value>,
    ) -> Result<String> {
        let diff_ids: Vec<String> = layers.iter().map(|l| l.digest.clone()).collect();
        let config_bytes = match config {
            Some(v) => serde_json::to_vec(&v).map_err(|e| Error::Json {
                path: self.root.clone(),
                source: e,
            })?,
            None => json_bytes(&image_config(cfg, &diff_ids)?, &self.root)?,
        };
        // The config must list exactly these layers.
        let parsed: Value = serde_json::from_slice(&config_bytes).map_err(|e| Error::Json {
            path: self.root.clone(),
            source: e,
        })?;
        if crate::model::str_list(&parsed["rootfs"]["diff_ids"]) != diff_ids {
            return Err(Error::invalid_image(
                &self.root,
                "the config's rootfs.diff_ids do not match the layers",
            ));
        }
        let (config_digest, config_size) = self.put_blob(&config_bytes[..])?;
        let descs = layers
            .iter()
            .map(|l| desc(MediaType::ImageLayer, &l.digest, l.size))
            .collect::<Result<Vec<_>>>()?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(desc(MediaType::ImageConfig, &config_digest, config_size)?)
            .layers(descs)
            .build();
        let manifest = json_bytes(&built(manifest, "manifest")?, &self.root)?;
        let (manifest_digest, _) = self.put_blob(&manifest[..])?;
        let mut refs = self.refs()?;
        refs.insert(reference.to_string(), manifest_digest.clone());
        self.write_refs(&refs)?;
        Ok(manifest_digest)
    }

    /// Put a layer tar (plain or gzip file) in the store as a plain tar blob.
    pub fn put_layer_file(&self, path: &Path) -> Result<StoredLayer> {
        let (digest, size) = self.put_blob(crate::layer::open_layer_file(path)?)?;
        Ok(StoredLayer { digest, size })
    }

    fn manifest(&self, digest: &str) -> Result<ImageManifest> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            path: self.blob_path(digest).unwrap_or_default(),
            source: e,
        })
    }

    /// The image tagged `reference` with its manifest and config verified;
    /// with `verify_layers`, every layer blob is re-hashed too.
    pub fn get(&self, reference: &Reference, verify_layers: bool) -> Result<StoredImage> {
        let refs = self.refs()?;
        let key = reference.to_string();
        let Some(manifest_digest) = refs.get(&key).cloned() else {
            return Err(Error::NotFound {
                reference: key,
                path: self.root.clone(),
                available: refs.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        let m = self.manifest(&manifest_digest)?;
        let config_digest = m.config().digest().to_string();
        let config_bytes = self.read_blob(&config_digest)?;
        let config: Value = serde_json::from_slice(&config_bytes).map_err(|e| Error::Json {
            path: self.blob_path(&config_digest).unwrap_or_default(),
            source: e,
        })?;
        let _: ImageConfiguration = serde_json::from_value(config.clone()).map_err(|e| Error::Json {
            path: self.blob_path(&config_digest).unwrap_or_default(),
            source: e,
        })?;
        let mut layers = Vec::new();
        for d in m.layers() {
            let digest = d.digest().to_string();
            let size = if verify_layers {
                self.verify_blob(&digest)?
            } else {
                d.size()
            };
            layers.push(StoredLayer { digest, size });
        }
        Ok(StoredImage {
            reference: reference.clone(),
            manifest_digest,
            config_digest,
            layers,
            config,
        })
    }

    /// Every tagged image (manifest and config verified).
    pub fn list(&self) -> Result<Vec<StoredImage>> {
        let mut out = Vec::new();
        for k in self.refs()?.keys() {
            let r = Reference::parse(k).map_err(|e| Error::invalid_image(self.root.join(REFS), e))?;
            out.push(self.get(&r, false)?);
        }
        Ok(out)
    }

    /// The image as a [`LoadedImage`] for running: layers verified and
    /// hard-linked into a scratch directory (so `image rm` during the run
    /// cannot take them away), removed when the result is dropped.
    pub fn load_for_run(&self, reference: &Reference) -> Result<LoadedImage> {
        let img = self.get(reference, true)?;
        let scratch = self.scratch("run-")?;
        let mut layers = Vec::new();
        for (i, l) in img.layers.iter().enumerate() {
            let dst = scratch.path().join(format!("{i:02}.tar"));
            fs::hard_link(self.blob_path(&l.digest)?, &dst).ctx("link", &dst)?;
            layers.push(dst);
        }
        let cfg = img.image_config();
        Ok(LoadedImage {
            layers,
            diff_ids: img.layers.iter().map(|l| l.digest.clone()).collect(),
            config: cfg,
            architecture: img.config["architecture"].as_str().unwrap_or("").into(),
            os: img.config["os"].as_str().unwrap_or("").into(),
            raw_config: img.config,
            manifest_digest: Some(img.manifest_digest),
            _scratch: Some(scratch),
        })
    }

    /// Untag `reference` and delete every blob no remaining tag reaches.
    /// Call with the exclusive lock held.
    pub fn remove(&self, reference: &Reference) -> Result<Removed> {
        let mut refs = self.refs()?;
        let key = reference.to_string();
        if refs.remove(&key).is_none() {
            return Err(Error::NotFound {
                reference: key,
                path: self.root.clone(),
                available: refs.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        // Which blobs the remaining tags reach (read before anything is deleted).
        let mut keep = BTreeSet::new();
        for d in refs.values() {
            let m = self.manifest(d)?;
            keep.insert(d.clone());
            keep.insert(m.config().digest().to_string());
            keep.extend(m.layers().iter().map(|l| l.digest().to_string()));
        }
        self.write_refs(&refs)?;
        let mut deleted = Vec::new();
        let dir = self.blob_dir();
        for e in fs::read_dir(&dir).ctx("read directory", &dir)? {
            let e = e.ctx("read directory", &dir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            let digest = format!("sha256:{name}");
            let stale_tmp = name.starts_with(".tmp-");
            if stale_tmp || (check_digest(&digest, &dir).is_ok() && !keep.contains(&digest)) {
                fs::remove_file(e.path()).ctx("remove", e.path())?;
                if !stale_tmp {
                    deleted.push(digest);
                }
            }
        }
        deleted.sort();
        fsync_dir(&dir)?;
        Ok(Removed { untagged: key, deleted })
    }
}

fn desc(mt: MediaType, digest: &str, size: u64) -> Result<Descriptor> {
    let d = Digest::from_str(digest).map_err(|e| Error::Invalid(format!("digest {digest:?}: {e}")))?;
    Ok(Descriptor::new(mt, size, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_tar(files: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, c) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(c.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            b.append_data(&mut h, p, c.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn add(s: &Store, r: &str, layers: &[Vec<u8>]) -> String {
        let _l = s.lock_exclusive().unwrap();
        let ls: Vec<StoredLayer> = layers
            .iter()
            .map(|t| {
                let (digest, size) = s.put_blob(&t[..]).unwrap();
                StoredLayer { digest, size }
            })
            .collect();
        let cfg = ImageConfig {
            cmd: vec!["/bin/sh".into()],
            ..Default::default()
        };
        s.commit_image(&Reference::parse(r).unwrap(), &ls, &cfg, None).unwrap()
    }

    #[test]
    fn references_parse() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "busybox:latest");
        assert_eq!(Reference::parse("a/b-c:v1.0").unwrap().tag, "v1.0");
        assert_eq!(Reference::parse("localhost/x:y").unwrap().name, "localhost/x");
        for bad in [
            "", "/abs:x", "../x:y", "Busy:x", "a:", "a:-x", "a//b", "./x", "x:a/b/c:",
        ] {
            let e = Reference::parse(bad).unwrap_err();
            assert!(!e.contains('\n'), "{bad}: {e}");
        }
    }

    #[test]
    fn round_trip() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let base = layer_tar(&[("etc/hostname", "box\n")]);
        let top = layer_tar(&[("root/.ash_history", "ls\n")]);
        let m = add(&s, "bb:v1", &[base.clone(), top.clone()]);
        let img = s.get(&Reference::parse("bb:v1").unwrap(), true).unwrap();
        assert_eq!(img.manifest_digest, m);
        assert_eq!(img.layers.len(), 2);
        assert_eq!(img.layers[0].digest, sha256_digest(&base));
        assert_eq!(img.layers[1].size, top.len() as u64);
        assert_eq!(img.image_config().cmd, vec!["/bin/sh".to_string()]);
        assert_eq!(img.config["rootfs"]["diff_ids"][1], sha256_digest(&top));
        let loaded = s.load_for_run(&img.reference).unwrap();
        assert_eq!(fs::read(&loaded.layers[1]).unwrap(), top);
        // Storing the same content again gives the same digests.
        assert_eq!(add(&s, "bb:v1", &[base, top]), m);
        assert_eq!(s.list().unwrap().len(), 1);
        // Unknown tags are NotFound, naming what there is.
        let e = s.get(&Reference::parse("bb:v2").unwrap(), false).unwrap_err();
        assert!(e.to_string().contains("bb:v1"), "{e}");
    }

    #[test]
    fn corrupted_blob_is_detected() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        add(&s, "bb:v1", &[layer_tar(&[("a", "1")])]);
        let r = Reference::parse("bb:v1").unwrap();
        let img = s.get(&r, true).unwrap();
        let p = s.blob_path(&img.layers[0].digest).unwrap();
        let mut bytes = fs::read(&p).unwrap();
        bytes[600] ^= 1;
        fs::write(&p, bytes).unwrap();
        assert!(s.get(&r, false).is_ok(), "layers are not hashed without verify");
        let e = s.get(&r, true).unwrap_err();
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
        assert!(matches!(s.load_for_run(&r).unwrap_err(), Error::DigestMismatch { .. }));
        // A corrupted config fails even a plain get.
        let cp = s.blob_path(&img.config_digest).unwrap();
        fs::write(&cp, b"{}").unwrap();
        assert!(matches!(s.get(&r, false).unwrap_err(), Error::DigestMismatch { .. }));
    }

    #[test]
    fn concurrent_writers_keep_every_tag() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let root = root.clone();
                std::thread::spawn(move || {
                    let s = Store::open(&root).unwrap();
                    for j in 0..5 {
                        let tar = layer_tar(&[("shared", "same"), ("f", &format!("{i}-{j}"))]);
                        add(&s, &format!("img{i}:t{j}"), &[layer_tar(&[("base", "b")]), tar]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = Store::open(&root).unwrap();
        assert_eq!(s.refs().unwrap().len(), 40);
        for img in s.list().unwrap() {
            s.get(&img.reference, true).unwrap();
        }
        // No temporary files left behind.
        let leftovers: Vec<_> = fs::read_dir(s.blob_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn scratch_of_dead_processes_is_pruned() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let dead = t.path().join("tmp/run-999999999-abc");
        fs::create_dir_all(dead.join("x")).unwrap();
        let mine = s.scratch("run-").unwrap();
        assert!(!dead.exists());
        let name = mine.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!("run-{}-", std::process::id())), "{name}");
        let _other = s.scratch("save-").unwrap();
        assert!(mine.path().exists(), "a live process's scratch stays");
    }

    #[test]
    fn rm_keeps_shared_blobs() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let base = layer_tar(&[("bin/sh", "elf")]);
        add(&s, "bb:v1", std::slice::from_ref(&base));
        add(&s, "bb:v2", &[base.clone(), layer_tar(&[(".ash_history", "ls\n")])]);
        let blobs = |s: &Store| fs::read_dir(s.blob_dir()).unwrap().count();
        assert_eq!(blobs(&s), 6); // 2 layers, 2 configs, 2 manifests
        let _l = s.lock_exclusive().unwrap();
        let r = s.remove(&Reference::parse("bb:v2").unwrap()).unwrap();
        assert_eq!(r.untagged, "bb:v2");
        assert_eq!(r.deleted.len(), 3, "{r:?}");
        assert!(!r.deleted.contains(&sha256_digest(&base)));
        s.get(&Reference::parse("bb:v1").unwrap(), true).unwrap();
        assert!(s.remove(&Reference::parse("bb:v2").unwrap()).is_err());
        let r = s.remove(&Reference::parse("bb:v1").unwrap()).unwrap();
        assert_eq!(r.deleted.len(), 3);
        assert_eq!(blobs(&s), 0);
        assert!(s.refs().unwrap().is_empty());
    }
}
