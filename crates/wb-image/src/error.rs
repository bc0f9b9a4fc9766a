//! Typed errors shared by every module of this crate.

use std::io;
use std::path::{Path, PathBuf};

/// Result alias used throughout `wb-image`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while mounting overlays, converting layers or
/// saving and loading images. Messages are lowercase and name the path or the
/// syscall, e.g. `mount overlay on /tmp/x/merged: Invalid argument`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A syscall or file operation failed on `path`.
    #[error("{op} {}: {}", path.display(), errstr(source))]
    Io {
        /// What was attempted ("open", "mknod", "mount overlay on", ...).
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A layer entry (or a link target) would leave the destination directory.
    #[error("unsafe path {path:?} in layer: {reason}")]
    UnsafePath { path: String, reason: &'static str },
    /// A layer entry or an overlay upper dir cannot be represented.
    #[error("invalid layer entry {path:?}: {reason}")]
    InvalidEntry { path: String, reason: String },
    /// A JSON document could not be parsed or serialized.
    #[error("parse {}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A blob or layer does not hash to the digest its manifest claims.
    #[error("digest mismatch for {}: expected {expected}, got {actual}", path.display())]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// The requested image reference is not in the layout or archive.
    #[error("image {reference:?} not found in {} (available: {available})", path.display())]
    NotFound {
        reference: String,
        path: PathBuf,
        available: String,
    },
    /// The image layout or archive is malformed.
    #[error("invalid image {}: {reason}", path.display())]
    InvalidImage { path: PathBuf, reason: String },
    /// An argument makes no sense (empty layer list, over-long options...).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid_image(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Error::InvalidImage {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }

    /// The OS error number behind this error, if any (e.g. `EPERM` for mknod as non-root).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// `strerror`-style text for OS errors ("Invalid argument"), without Rust's
/// " (os error 22)" suffix; other I/O errors keep their own message.
fn errstr(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

/// Extension to attach an operation and a path to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_message_is_lowercase_and_names_the_path() {
        let e = Error::io(
            "mount overlay on",
            "/tmp/x/merged",
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert_eq!(e.to_string(), "mount overlay on /tmp/x/merged: Invalid argument");
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }
}
