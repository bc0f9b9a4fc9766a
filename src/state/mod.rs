//! The record of everything a run creates, so nothing outlives it.
//!
//! Before (or atomically with) creating any host object — a directory, a
//! mount, a process, a cgroup, a link — workbench writes it into a state file
//! under `/run/workbench/runs/`. A normal end, an error, Ctrl-C and SIGTERM
//! all tear the recorded objects down in reverse order; after a SIGKILL,
//! `workbench cleanup` finds the state file of the dead run and does the same.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

mod cleanup;
mod ledger;
mod reservations;
pub mod signals;
mod teardown;
mod workdir;

pub use cleanup::*;
pub use ledger::*;
pub use reservations::*;
pub use teardown::*;
pub use workdir::*;

pub use crate::hostobj::Resource;
use crate::hostobj::{sysctl, PREFIX};
use crate::kernel::proc::{is_same_process, self_pid, start_time};

/// Where state files and working directories live (override for tests with `WORKBENCH_RUN_DIR`).
pub fn run_root() -> PathBuf {
    std::env::var_os("WORKBENCH_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/workbench"))
}

fn runs_dir() -> PathBuf {
    run_root().join("runs")
}

/// The state file of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub run_id: String,
    pub lesson: String,
    pub owner_pid: i32,
    pub owner_start: u64,
    pub resources: Vec<Resource>,
}

impl RunState {
    fn path(&self) -> PathBuf {
        runs_dir().join(format!("{}.json", self.run_id))
    }

    fn persist(&self) -> std::io::Result<()> {
        let path = self.path();
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("state serialises"))?;
        std::fs::rename(&tmp, &path)
    }

    /// Is the process that owns this run still alive?
    pub fn owner_alive(&self) -> bool {
        is_same_process(self.owner_pid, self.owner_start)
    }
}

static CURRENT: Mutex<Option<RunState>> = Mutex::new(None);

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no run in progress")]
    NoRun,
    #[error("refusing to remove {0}: it is not under {1}")]
    Outside(String, String),
}

fn ioerr(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io { what, path, source }
}

fn create_private_dir(path: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(ioerr("mkdir", path)(e)),
    }
}

/// A short random id: 6 hex digits from the kernel's random pool.
pub fn random_id() -> String {
    use std::io::Read;
    let mut b = [0u8; 3];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        b = [
            (t.subsec_nanos() >> 8) as u8,
            (t.subsec_nanos() >> 16) as u8,
            self_pid() as u8,
        ];
    }
    format!("{:02x}{:02x}{:02x}", b[0], b[1], b[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_json_is_tagged() {
        let r = Resource::Process { pid: 42, start_time: 7 };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"kind":"process","pid":42,"start_time":7}"#
        );
        let back: Resource = serde_json::from_str(r#"{"kind":"link","name":"wbbr0"}"#).unwrap();
        assert_eq!(back, Resource::Link { name: "wbbr0".into() });
        let r = Resource::Sysctl {
            key: "net/ipv4/ip_forward".into(),
            previous: "0".into(),
            side_effects: vec![("net/ipv4/conf/all/forwarding".into(), "0".into())],
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(
            text.starts_with(r#"{"kind":"sysctl","key":"net/ipv4/ip_forward""#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Resource>(&text).unwrap(), r);
        assert_eq!(r.to_string(), "sysctl net.ipv4.ip_forward (back to 0)");
        let back: Resource = serde_json::from_str(r#"{"kind":"nft_table","family":"ip","name":"wbab12cd"}"#).unwrap();
        assert_eq!(back.to_string(), "nft table ip wbab12cd");
    }

    #[test]
    fn random_ids_differ() {
        let a = random_id();
        let b = random_id();
        assert_eq!(a.len(), 6);
        assert_ne!(a, b);
    }
}
