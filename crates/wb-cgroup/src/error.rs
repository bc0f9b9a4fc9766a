//! The crate's error type.
//!
//! Every variant names the path (or syscall) involved so that a learner
//! reading "write /sys/fs/cgroup/cpu/workbench/x/cpu.cfs_quota_us: invalid
//! argument" knows exactly which kernel interface said no.

use std::io;
use std::path::PathBuf;

/// Errors returned by wb-cgroup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation on a cgroup file or directory failed.
    #[error("{op} {path}: {msg}", path = .path.display(), msg = describe_io(.source))]
    Io {
        /// What we did: "read", "write", "mkdir", "rmdir", "open", ...
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A syscall that is not a plain file operation failed (statfs, kill).
    #[error("{syscall} {target}: {msg}", msg = .errno.desc().to_lowercase())]
    Sys {
        syscall: &'static str,
        target: String,
        errno: nix::errno::Errno,
    },
    /// The content of a cgroup or proc file did not have the expected format.
    #[error("parse {what}: {reason} (input {input:?})")]
    Parse {
        /// A path, or the kind of content ("cpu.max content").
        what: String,
        input: String,
        reason: String,
    },
    /// A group name that workbench refuses to use as a directory name.
    #[error("invalid cgroup name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// A value outside what the kernel (or workbench) accepts.
    #[error("invalid {what} {value}: {reason}")]
    InvalidValue {
        what: &'static str,
        value: String,
        reason: String,
    },
    /// No cgroup filesystem recognisable at the given root.
    #[error("no cgroup hierarchy found at {path}: {reason}", path = .path.display())]
    NotCgroupRoot { path: PathBuf, reason: String },
    /// The controller is not provided by any hierarchy of this host.
    #[error("controller {controller} is not available under {root}", root = .root.display())]
    ControllerUnavailable { controller: String, root: PathBuf },
    /// On cgroup v2 the controller exists but the root does not delegate it.
    #[error(
        "controller {controller} is not enabled in {path}; workbench never writes the root cgroup, \
         enable it there yourself (echo +{controller} > {path})",
        path = .path.display()
    )]
    NotEnabledAtRoot { controller: String, path: PathBuf },
    /// The operation needs a controller the group was not created with.
    #[error("group {group} was not created with the {controller} controller")]
    NotInGroup { group: String, controller: String },
    /// `create` found the group directory already there.
    #[error("cgroup {path} already exists (remove it with `workbench cleanup`)", path = .path.display())]
    Exists { path: PathBuf },
    /// Processes were still in the group after repeated SIGKILLs.
    #[error("cgroup {path} still has processes {pids:?} after killing them", path = .path.display())]
    KillTimeout { path: PathBuf, pids: Vec<i32> },
    /// A cleanup path that is not a workbench-owned cgroup.
    #[error("refusing to remove {path}: {reason}", path = .path.display())]
    Refused { path: PathBuf, reason: String },
}

/// Convenience alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// "Invalid argument" rather than "Invalid argument (os error 22)", lowercase.
fn describe_io(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_lowercase(),
        None => e.to_string().to_lowercase(),
    }
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(what: impl Into<String>, input: &str, reason: impl Into<String>) -> Self {
        Error::Parse {
            what: what.into(),
            input: input.chars().take(200).collect(),
            reason: reason.into(),
        }
    }

    /// The OS error number behind an I/O error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            Error::Sys { errno, .. } => Some(*errno as i32),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_message_is_lowercase_and_names_path() {
        let e = Error::io(
            "write",
            "/sys/fs/cgroup/cpu/workbench/x/cpu.cfs_quota_us",
            io::Error::from_raw_os_error(libc::EINVAL),
        );
        assert_eq!(
            e.to_string(),
            "write /sys/fs/cgroup/cpu/workbench/x/cpu.cfs_quota_us: invalid argument"
        );
    }
}
