//! Small file helpers that attach the path to every error.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::parse;

/// Read a whole cgroup file.
/// statfs(2) of `path`: the filesystem it is on.
pub(crate) fn statfs(path: &Path) -> Result<nix::sys::statfs::Statfs> {
    nix::sys::statfs::statfs(path).map_err(|errno| Error::Sys {
        syscall: "statfs",
        target: path.display().to_string(),
        errno,
    })
}

pub(crate) fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::io("read", path, e))
}

/// Write `content` with a single write(2), like `echo content > path`.
/// The file must exist: the kernel creates cgroup files, never us, so a
/// missing file means the controller is not there (and a fake tree in a test
/// must model that).
pub(crate) fn write(path: &Path, content: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    let n = f.write(content.as_bytes()).map_err(|e| Error::io("write", path, e))?;
    if n != content.len() {
        return Err(Error::io(
            "write",
            path,
            io::Error::new(io::ErrorKind::WriteZero, "short write"),
        ));
    }
    Ok(())
}

pub(crate) fn read_u64(path: &Path) -> Result<u64> {
    let s = read(path)?;
    parse::parse_u64(&s).map_err(|e| reattach(e, path))
}

pub(crate) fn read_max_or_u64(path: &Path) -> Result<Option<u64>> {
    let s = read(path)?;
    parse::parse_max_or_u64(&s).map_err(|e| reattach(e, path))
}

pub(crate) fn read_flat_keyed(path: &Path) -> Result<BTreeMap<String, u64>> {
    let s = read(path)?;
    parse::parse_flat_keyed(&s).map_err(|e| reattach(e, path))
}

pub(crate) fn flat_key(path: &Path, key: &str) -> Result<u64> {
    let m = read_flat_keyed(path)?;
    parse::require_key(&m, key, &path.display().to_string())
}

/// Replace the generic "what" of a parse error with the file's path.
pub(crate) fn reattach(e: Error, path: &Path) -> Error {
    match e {
        Error::Parse { input, reason, .. } => Error::Parse {
            what: path.display().to_string(),
            input,
            reason,
        },
        other => other,
    }
}

/// mkdir that treats "already exists" as success.
pub(crate) fn mkdir_existing_ok(path: &Path) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("mkdir", path, e)),
    }
}
