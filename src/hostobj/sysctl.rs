//! Kernel parameters under `/proc/sys`, changed only with a record of the old value.
//!
//! `sysctl net.ipv4.ip_forward=1` is nothing but a write of `1` into the file
//! `/proc/sys/net/ipv4/ip_forward`. Such a switch is global to the network
//! namespace, and some switches drag others along: turning `ip_forward` on or
//! off rewrites every interface's `conf/*/forwarding` and
//! `conf/all/accept_redirects`. So before workbench writes one, the caller records
//! the previous value of the key *and* of everything the kernel will change
//! with it ([`crate::state::set_sysctl`]), and teardown restores them all.

use std::path::{Path, PathBuf};

/// Where the kernel parameters live (only `net/...` keys are ever written).
pub const PROC_SYS: &str = "/proc/sys";

/// Errors reading or writing a kernel parameter.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to touch sysctl {0}: only net/* keys without `..` are allowed")]
    Refused(String),
}

/// `net.ipv4.ip_forward` for `net/ipv4/ip_forward` (how `sysctl` prints keys).
/// Interface names may hold dots, so keys are stored with slashes.
pub fn dotted(key: &str) -> String {
    key.replace('/', ".")
}

fn check_key(key: &str) -> Result<PathBuf, SysctlError> {
    if !key.starts_with("net/") || key.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(SysctlError::Refused(key.to_string()));
    }
    Ok(Path::new(PROC_SYS).join(key))
}

/// The current value of `key` (e.g. `net/ipv4/ip_forward`), trimmed.
pub fn read(key: &str) -> Result<String, SysctlError> {
    let path = check_key(key)?;
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|source| SysctlError::Io {
            op: "read",
            path,
            source,
        })
}

/// Write `value` into `key`.
pub fn write(key: &str, value: &str) -> Result<(), SysctlError> {
    let path = check_key(key)?;
    std::fs::write(&path, format!("{value}\n")).map_err(|source| SysctlError::Io {
        op: "write",
        path,
        source,
    })
}

/// The keys the kernel rewrites when `net/ipv4/ip_forward` changes
/// (`devinet_sysctl_forward` → `inet_forward_change`): every
/// `conf/*/forwarding` and `conf/all/accept_redirects`.
pub fn ip_forward_side_effects() -> Vec<String> {
    let mut keys: Vec<String> = std::fs::read_dir(Path::new(PROC_SYS).join("net/ipv4/conf"))
        .map(|d| {
            d.flatten()
                .map(|e| format!("net/ipv4/conf/{}/forwarding", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys.push("net/ipv4/conf/all/accept_redirects".into());
    keys
}

/// Put a recorded key (then its side effects) back. Keys that vanished (the
/// interface was deleted) are fine; values already right are not rewritten.
pub fn restore(key: &str, previous: &str, side_effects: &[(String, String)]) -> Result<(), String> {
    let mut problems = Vec::new();
    for (k, v) in std::iter::once((key, previous)).chain(side_effects.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        match read(k) {
            Ok(now) if now == v => {}
            Ok(_) => {
                if let Err(e) = write(k, v) {
                    problems.push(e.to_string());
                }
            }
            Err(SysctlError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_confined_to_net() {
        assert!(check_key("net/ipv4/ip_forward").is_ok());
        assert!(check_key("net/ipv4/conf/wbab12cdbr/route_localnet").is_ok());
        for bad in [
            "kernel/panic",
            "net/../kernel/panic",
            "net//x",
            "/net/ipv4/ip_forward",
            "net/ipv4/.",
        ] {
            let e = check_key(bad).unwrap_err().to_string();
            assert!(e.starts_with("refusing to touch sysctl"), "{bad}: {e}");
        }
    }

    #[test]
    fn dotted_names() {
        assert_eq!(dotted("net/ipv4/ip_forward"), "net.ipv4.ip_forward");
    }

    #[test]
    fn side_effects_of_ip_forward_include_all_and_lo() {
        let keys = ip_forward_side_effects();
        assert!(keys.contains(&"net/ipv4/conf/all/forwarding".to_string()), "{keys:?}");
        assert!(keys.contains(&"net/ipv4/conf/lo/forwarding".to_string()), "{keys:?}");
        assert_eq!(keys.last().unwrap(), "net/ipv4/conf/all/accept_redirects");
    }
}
