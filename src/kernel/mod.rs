//! Thin wrappers over the system calls the lessons perform.
//!
//! Everything a lesson shows is a real kernel operation: `clone(2)` with
//! namespace flags, `mount(2)`, `chroot(2)`, `sethostname(2)`. These wrappers
//! add the context a learner needs in an error message (which syscall, which
//! path) and nothing else.

pub mod child;
pub mod mount;
pub mod ns;
pub mod proc;

use thiserror::Error;

/// An error from one system call, naming the call and its object.
#[derive(Debug, Error)]
pub enum KernelError {
    #[error("{call} {what}: {source}")]
    Sys {
        call: &'static str,
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("namespace child: {0}")]
    Child(String),
}

pub type Result<T, E = KernelError> = std::result::Result<T, E>;

/// Attach the syscall name and its object to a nix error.
pub(crate) fn sys<T>(r: nix::Result<T>, call: &'static str, what: impl Into<String>) -> Result<T> {
    r.map_err(|source| KernelError::Sys {
        call,
        what: what.into(),
        source,
    })
}

pub(crate) fn io<T>(r: std::io::Result<T>, what: impl Into<String>) -> Result<T> {
    r.map_err(|source| KernelError::Io {
        what: what.into(),
        source,
    })
}
