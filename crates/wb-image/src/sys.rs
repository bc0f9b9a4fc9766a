//! Thin, path-taking wrappers over the few syscalls std does not expose
//! (lchown, mknod, mkfifo, utimensat), plus the sorted tree walk shared by
//! `overlay::tree` and `layer::upper_to_layer`.

use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a nul byte"))
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `lchown(2)`: change owner without following a final symlink.
pub(crate) fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: c is a valid nul-terminated string.
    check(unsafe { libc::lchown(c.as_ptr(), uid, gid) })
}

/// `mknod(2)` of a character or block device.
pub(crate) fn mknod(path: &Path, kind: libc::mode_t, perm: u32, major: u32, minor: u32) -> io::Result<()> {
    let c = cpath(path)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: c is a valid nul-terminated string.
    check(unsafe { libc::mknod(c.as_ptr(), kind | (perm as libc::mode_t & 0o7777), dev) })
}

/// `mkfifo(3)`.
pub(crate) fn mkfifo(path: &Path, perm: u32) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: c is a valid nul-terminated string.
    check(unsafe { libc::mkfifo(c.as_ptr(), perm as libc::mode_t & 0o7777) })
}

/// `utimensat(2)` with `AT_SYMLINK_NOFOLLOW`: set atime and mtime (whole seconds).
pub(crate) fn set_mtime(path: &Path, mtime: i64) -> io::Result<()> {
    let c = cpath(path)?;
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: c is valid, times points at two timespecs.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
}

/// `linkat(2)` without `AT_SYMLINK_FOLLOW`: a hard link to a symlink links the symlink itself.
pub(crate) fn hard_link(target: &Path, link: &Path) -> io::Result<()> {
    let t = cpath(target)?;
    let l = cpath(link)?;
    // SAFETY: both are valid nul-terminated strings.
    check(unsafe { libc::linkat(libc::AT_FDCWD, t.as_ptr(), libc::AT_FDCWD, l.as_ptr(), 0) })
}

pub(crate) fn dev_major(rdev: u64) -> u32 {
    libc::major(rdev as libc::dev_t)
}

pub(crate) fn dev_minor(rdev: u64) -> u32 {
    libc::minor(rdev as libc::dev_t)
}

/// Remove whatever is at `path` (file, symlink, device or whole directory
/// tree) without following symlinks. Missing paths are fine.
pub(crate) fn remove_any(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).ctx("remove directory", path),
        Ok(_) => fs::remove_file(path).ctx("remove", path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("lstat", path, e)),
    }
}

/// One node found by [`walk`].
pub(crate) struct WalkEntry {
    /// Path relative to the walk root, components joined by '/'.
    pub rel: PathBuf,
    pub abs: PathBuf,
    pub meta: Metadata,
}

/// Depth-first walk of `root` (root itself excluded), never following
/// symlinks, children sorted byte-wise by name. Parents always come before
/// their children, which is the order a tar stream needs.
pub(crate) fn walk(root: &Path) -> Result<Vec<WalkEntry>> {
    let meta = fs::symlink_metadata(root).ctx("lstat", root)?;
    if !meta.is_dir() {
        return Err(Error::io("walk", root, io::Error::from_raw_os_error(libc::ENOTDIR)));
    }
    let mut out = Vec::new();
    walk_into(root, Path::new(""), &mut out)?;
    Ok(out)
}

fn walk_into(dir: &Path, rel: &Path, out: &mut Vec<WalkEntry>) -> Result<()> {
    let mut names: Vec<OsString> = fs::read_dir(dir)
        .ctx("read directory", dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .ctx("read directory", dir)?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let abs = dir.join(&name);
        let meta = fs::symlink_metadata(&abs).ctx("lstat", &abs)?;
        let child_rel = rel.join(OsStr::new(&name));
        let is_dir = meta.is_dir();
        out.push(WalkEntry {
            rel: child_rel.clone(),
            abs: abs.clone(),
            meta,
        });
        if is_dir {
            walk_into(&abs, &child_rel, out)?;
        }
    }
    Ok(())
}
