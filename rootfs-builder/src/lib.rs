//! Build a minimal root filesystem around busybox, find the shared libraries a
//! dynamic binary needs, and pack/unpack the result as a tarball.
//!
//! A container's "root filesystem" is just a directory tree that a process is
//! told to treat as `/` (with `chroot(2)` or `pivot_root(2)`). For that process
//! to start, everything `execve(2)` needs must be *inside* the tree: the binary,
//! and if the binary is dynamically linked, its program interpreter (the
//! dynamic loader) and every shared library it names. This crate makes those
//! dependencies visible:
//!
//! - [`elf`] reads what an ELF binary asks for (PT_INTERP, DT_NEEDED, ...),
//!   without running it;
//! - [`libs`] resolves those names to files the way the dynamic loader would;
//! - [`build`] lays out a busybox rootfs (applet links, `/etc`, `/dev`, ...);
//! - [`pack`] turns a tree into a deterministic tar with numeric owners, the
//!   format container images use for their layers.

pub mod build;
pub mod elf;
pub mod libs;
pub mod pack;

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in this crate. Each message is one lowercase
/// line that names the operation and the path it was applied to, e.g.
/// `read elf /x/busybox: not an ELF file`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem or process operation failed.
    #[error("{op} {}: {}", .path.display(), io_message(.err))]
    Io {
        /// What we were doing: "open", "create dir", "symlink", "mknod", ...
        op: &'static str,
        /// The path the operation was applied to.
        path: PathBuf,
        /// The underlying OS error (kept so callers can inspect `raw_os_error`).
        err: io::Error,
    },

    /// The file is not an ELF file, or its ELF structures are malformed.
    #[error("read elf {}: {reason}", .path.display())]
    Elf { path: PathBuf, reason: String },

    /// A DT_NEEDED library (or the interpreter) could not be found.
    #[error("library {name} needed by {} not found in {searched}", .needed_by.display())]
    LibraryNotFound {
        name: String,
        needed_by: PathBuf,
        /// The directories that were searched, comma-separated.
        searched: String,
    },

    /// An operation was refused because its input does not make sense
    /// (non-empty destination, unsafe tar entry, bad hostname, ...).
    #[error("{op} {}: {reason}", .path.display())]
    Invalid {
        op: &'static str,
        path: PathBuf,
        reason: String,
    },
}

impl Error {
    /// The OS error number behind this error, if it came from a system call
    /// (e.g. `Some(libc::ENOENT)`).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl AsRef<Path>, err: io::Error) -> Error {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            err,
        }
    }

    pub(crate) fn invalid(op: &'static str, path: impl AsRef<Path>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            op,
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Format an `io::Error` like `strerror(3)` does: "No such file or directory"
/// instead of Rust's "No such file or directory (os error 2)".
fn io_message(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(code) => {
            let suffix = format!(" (os error {code})");
            text.strip_suffix(&suffix).unwrap_or(&text).to_string()
        }
        None => text,
    }
}

/// Shorthand used throughout the crate: attach an operation name and a path
/// to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T, Error>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T, Error> {
        self.map_err(|err| Error::io(op, path, err))
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T, Error> {
        self.map_err(|errno| Error::io(op, path, io::Error::from(errno)))
    }
}

/// True when the current process runs with effective uid 0 (needed for
/// `mknod` of devices and for `chown` to arbitrary ids).
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_message_has_no_rust_suffix() {
        let e = Error::io("open", "/x/busybox", io::Error::from_raw_os_error(nix::libc::ENOENT));
        assert_eq!(e.to_string(), "open /x/busybox: No such file or directory");
        assert_eq!(e.raw_os_error(), Some(nix::libc::ENOENT));
    }

    #[test]
    fn library_not_found_message() {
        let e = Error::LibraryNotFound {
            name: "libfoo.so.1".into(),
            needed_by: "/x/busybox".into(),
            searched: "/lib, /usr/lib".into(),
        };
        assert_eq!(
            e.to_string(),
            "library libfoo.so.1 needed by /x/busybox not found in /lib, /usr/lib"
        );
    }
}
