//! Helpers shared by the integration tests: root checks, fixture tars, a
//! private mount namespace on a dedicated thread, tree comparisons.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use wb_image::overlay::TreeEntry;

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Return early (passing) from a test that needs root, saying why.
#[macro_export]
macro_rules! require_root {
    ($name:expr) => {
        if !common::is_root() {
            eprintln!(
                "skipping {}: needs root (mknod, trusted.* xattrs, mount), euid != 0",
                $name
            );
            return;
        }
    };
}

/// Find a tool on PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(tool)).find(|c| c.is_file()))
}

/// A uid/gid for fixtures: the real one as root, the caller's own otherwise.
pub fn owner(id: u32) -> u32 {
    if is_root() {
        id
    } else {
        nix::unistd::geteuid().as_raw()
    }
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wb-image-test-")
        .tempdir()
        .expect("tempdir")
}

/// `in_private_mount_ns` with a new temporary directory (removed afterwards)
/// for `f` to work in.
pub fn in_scratch_mount_ns<T: Send + 'static>(f: impl FnOnce(PathBuf) -> T + Send + 'static) -> T {
    let t = tempdir();
    let base = t.path().to_path_buf();
    in_private_mount_ns(move || f(base))
}

/// An image config tagged v1 with PATH=/bin that runs `cmd`.
pub fn image_config(name: &str, cmd: &[&str]) -> wb_image::image::ImageConfig {
    wb_image::image::ImageConfig {
        name: name.into(),
        tag: "v1".into(),
        cmd: cmd.iter().map(|c| c.to_string()).collect(),
        env: vec!["PATH=/bin".into()],
    }
}

/// Build a layer tar by hand, including entries the tar crate would refuse.
pub struct TarFixture {
    b: tar::Builder<Vec<u8>>,
}

impl Default for TarFixture {
    fn default() -> Self {
        Self::new()
    }
}

impl TarFixture {
    pub fn new() -> Self {
        TarFixture {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u32, gid: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid as u64);
        h.set_gid(gid as u64);
        h.set_mtime(1_700_000_000);
        h.set_size(size);
        h
    }

    pub fn dir(mut self, path: &str, mode: u32, uid: u32, gid: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, uid, gid, 0);
        self.b
            .append_data(&mut h, format!("{}/", path.trim_end_matches('/')), std::io::empty())
            .unwrap();
        self
    }

    pub fn file(mut self, path: &str, mode: u32, uid: u32, gid: u32, data: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, uid, gid, data.len() as u64);
        self.b.append_data(&mut h, path, data.as_bytes()).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0, 0, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    /// An entry whose name and link name are written byte for byte, unchecked.
    pub fn raw(mut self, kind: tar::EntryType, name: &str, link: &str, data: &str) -> Self {
        let mut h = Self::header(kind, 0o644, 0, 0, data.len() as u64);
        {
            let g = h.as_gnu_mut().unwrap();
            g.name = [0; 100];
            g.name[..name.len()].copy_from_slice(name.as_bytes());
            g.linkname = [0; 100];
            g.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        self.b.append(&h, data.as_bytes()).unwrap();
        self
    }

    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), path),
        };
        self.file(&format!("{dir}.wh.{name}"), 0o644, 0, 0, "")
    }

    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), 0o644, 0, 0, "")
    }

    pub fn bytes(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }

    pub fn write_to(self, path: &Path) -> PathBuf {
        let mut f = fs::File::create(path).unwrap();
        f.write_all(&self.bytes()).unwrap();
        path.to_path_buf()
    }
}

/// Run `f` on a fresh thread that first enters its own mount namespace and
/// makes every mount in it private: mounts made by `f` are invisible to the
/// host and vanish when the thread ends. (unshare(CLONE_NEWNS) applies to the
/// calling thread only.)
pub fn in_private_mount_ns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        nix::sched::unshare(CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
        wb_image::overlay::make_rprivate().expect("mount --make-rprivate /");
        f()
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Mount points (field 5 of mountinfo) seen by the calling thread.
pub fn mount_points(mountinfo: &str) -> Vec<String> {
    fs::read_to_string(mountinfo)
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .collect()
}

/// Groups of paths (relative to `root`) sharing one inode, for non-directories.
pub fn hardlink_groups(root: &Path) -> Vec<Vec<String>> {
    let mut by_ino: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for e in wb_image::overlay::tree(root).unwrap() {
        if e.kind == "dir" {
            continue;
        }
        let m = fs::symlink_metadata(root.join(&e.path)).unwrap();
        by_ino.entry((m.dev(), m.ino())).or_default().push(e.path);
    }
    let mut groups: Vec<Vec<String>> = by_ino.into_values().filter(|g| g.len() > 1).collect();
    groups.sort();
    groups
}

/// Write a file with an exact mode (ignoring the umask).
pub fn write_file(path: &Path, data: &str, mode: u32) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn mkdir(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// `path kind mode uid:gid size [-> target]` lines: a readable tree diff.
pub fn describe(entries: &[TreeEntry]) -> String {
    entries
        .iter()
        .map(|e| {
            format!(
                "{} {} {:o} {}:{} {}{}{}\n",
                e.path,
                e.kind,
                e.mode,
                e.uid,
                e.gid,
                e.size,
                e.link_target.as_ref().map(|t| format!(" -> {t}")).unwrap_or_default(),
                if e.opaque { " opaque" } else { "" }
            )
        })
        .collect()
}
