//! The crate's error type.
//!
//! Every message is lowercase and names the operation and the object it was
//! applied to, e.g. `netlink: create bridge wbbr0: file exists`.

use std::path::PathBuf;

/// Everything that can go wrong while talking to the kernel's routing
/// netlink family.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An interface name the kernel would refuse (see [`crate::validate_ifname`]).
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// A string that is not `ADDRESS/PREFIX` (or, where allowed, a bare address).
    #[error("invalid cidr {input:?}: {reason}")]
    InvalidCidr { input: String, reason: String },

    /// A string that is not an IPv4 or IPv6 address.
    #[error("invalid ip address {input:?}")]
    InvalidAddress { input: String },

    /// An operation referred to an interface that does not exist in the
    /// network namespace it ran in.
    #[error("netlink: {op}: no such link {name}")]
    NoSuchLink { op: String, name: String },

    /// The kernel answered a request with an error (a NACK).
    #[error("netlink: {op}: {}{}", errno_text(*errno), ext_text(kernel_msg))]
    Kernel {
        /// What was being done, e.g. `create bridge wbbr0`.
        op: String,
        /// The positive errno value (`libc::EEXIST`, ...).
        errno: i32,
        /// The kernel's extended-ack message, when it sent one.
        kernel_msg: Option<String>,
    },

    /// Opening, sending on or reading from the netlink socket failed.
    #[error("netlink: {op}: {syscall}: {}", io_text(source))]
    Socket {
        op: String,
        syscall: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A reply from the kernel could not be decoded.
    #[error("netlink: {op}: decode reply: {detail}")]
    Decode { op: String, detail: String },

    /// `open(/proc/PID/ns/net)` (or another netns file) failed.
    #[error("open {}: {}", path.display(), io_text(source))]
    OpenNetns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `setns(fd, CLONE_NEWNET)` failed in the helper thread.
    #[error("setns {} (CLONE_NEWNET): {}", path.display(), errno_text(*errno))]
    Setns { path: PathBuf, errno: i32 },

    /// The helper thread used to enter a network namespace could not be
    /// started.
    #[error("spawn netns helper thread: {}", io_text(source))]
    Thread {
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The errno the kernel answered with, if this is a kernel (or setns) error.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } | Error::Setns { errno, .. } => Some(*errno),
            Error::Socket { source, .. } | Error::OpenNetns { source, .. } | Error::Thread { source } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }

    /// True when the object the operation wanted to create already exists.
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// True when the object the operation referred to does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NoSuchLink { .. })
            || matches!(
                self.errno(),
                Some(libc::ENODEV) | Some(libc::ESRCH) | Some(libc::ENOENT)
            )
    }
}

/// The C library's `strerror(errno)` (the text `ip` prints too) with a
/// lowercase first letter: "file exists".
pub(crate) fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    let suffix = format!(" (os error {errno})");
    lower_first(text.strip_suffix(&suffix).unwrap_or(&text))
}

fn io_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => errno_text(n),
        None => lower_first(&e.to_string()),
    }
}

fn ext_text(msg: &Option<String>) -> String {
    match msg {
        Some(m) if !m.is_empty() => format!(" (kernel says: {})", lower_first(m)),
        _ => String::new(),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_error_message_is_lowercase_and_names_the_operation() {
        let e = Error::Kernel {
            op: "create bridge wbbr0".into(),
            errno: libc::EEXIST,
            kernel_msg: None,
        };
        assert_eq!(e.to_string(), "netlink: create bridge wbbr0: file exists");
        assert!(e.is_exists());
        assert!(!e.is_not_found());
    }

    #[test]
    fn kernel_error_with_extended_ack() {
        let e = Error::Kernel {
            op: "rename wbx0 to eth0".into(),
            errno: libc::EBUSY,
            kernel_msg: Some("Cannot rename a running device".into()),
        };
        assert_eq!(
            e.to_string(),
            "netlink: rename wbx0 to eth0: device or resource busy (kernel says: cannot rename a running device)"
        );
    }

    #[test]
    fn setns_and_open_messages() {
        let e = Error::Setns {
            path: "/proc/1/ns/net".into(),
            errno: libc::EPERM,
        };
        assert_eq!(
            e.to_string(),
            "setns /proc/1/ns/net (CLONE_NEWNET): operation not permitted"
        );
        let e = Error::OpenNetns {
            path: "/proc/999999999/ns/net".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(e.to_string(), "open /proc/999999999/ns/net: no such file or directory");
        assert!(e.is_not_found());
    }
}
