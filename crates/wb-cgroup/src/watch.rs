//! What a lesson watches in a group: resources, their files, their values.
//!
//! A learner sees a cgroup change as the text of its files before and after
//! a step. A [`Resource`] names an idea ("the CPU limit"); each controller's
//! backend says which files show it on v1 and on v2 (see `controllers/`).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::Error;

/// What a lesson wants to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Resource {
    /// The CPU bandwidth limit (quota and period).
    CpuQuota,
    /// CPU usage and throttling counters.
    CpuStat,
    /// The relative CPU weight.
    CpuWeight,
    /// Memory limits and usage.
    Memory,
    /// OOM counters.
    MemoryEvents,
    /// Task limit, count, and refused forks.
    Pids,
    /// User and system CPU time (v1 cpuacct.stat, v2 cpu.stat).
    CpuTimes,
    /// The CPUs and memory nodes allowed.
    Cpuset,
    /// Frozen or thawed.
    Freezer,
    /// The device rules.
    Devices,
    /// The member processes.
    Procs,
}

/// One cgroup file worth showing to a learner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchedFile {
    pub path: PathBuf,
    /// The file name, e.g. `cpu.cfs_quota_us`.
    pub label: String,
    /// One line on what the value means.
    pub meaning: String,
}

/// Read watched files into `label → content` (trailing newline trimmed).
/// Never fails: a missing file reads as `(missing)` and other errors as
/// `(unreadable: ...)`, so an observation snapshot always completes.
pub fn read_watched(files: &[WatchedFile]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|f| {
            let v = match fs::read_to_string(&f.path) {
                Ok(s) => s.trim_end().to_string(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => "(missing)".to_string(),
                Err(e) => format!("(unreadable: {})", Error::io("read", &f.path, e)),
            };
            (f.label.clone(), v)
        })
        .collect()
}
