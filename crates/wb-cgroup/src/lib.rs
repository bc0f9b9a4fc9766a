//! wb-cgroup: workbench's window onto Linux control groups.
//!
//! A control group (cgroup) is a set of processes the kernel accounts and
//! limits together: how much CPU time they may use per period, how much memory
//! they may charge before the OOM killer steps in, how many tasks they may
//! fork. The whole interface is a filesystem: a group is a directory, a knob
//! is a file. This crate detects whether the host speaks cgroup v1, v2 or a
//! hybrid of both ([`detect()`]), creates groups only below a `workbench/`
//! parent ([`create`]), and offers one set of operations over both APIs
//! ([`Group`]) so lessons never name a cgroup file directly.
//!
//! ```no_run
//! use wb_cgroup::{detect_system, create, Controller};
//! let layout = detect_system()?;
//! let g = create(&layout, "demo", &[Controller::Cpu, Controller::Memory])?;
//! g.set_cpu_quota(20_000, 100_000)?; // 20% of one CPU
//! g.remove()?;
//! # Ok::<(), wb_cgroup::Error>(())
//! ```

pub mod detect;
pub mod error;
pub mod files;
mod fsio;
pub mod group;
pub mod parse;
mod v1;
mod v2;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use detect::{
    detect, detect_system, layout_summary, scan_mountinfo, ControllerInfo, Layout, LayoutSummary,
    MountScan, DEFAULT_ROOT,
};
pub use error::{Error, Result};
pub use group::{
    check_owned_path, create, list_owned, open, planned_paths, read_watched, remove_by_path,
    remove_by_path_in, validate_name, Group, RemoveOnDrop, Resource, Version, WatchedFile,
    MAX_NAME_LEN, PARENT,
};
pub use parse::{
    format_cpu_max, from_shares, parse_cpu_max, parse_flat_keyed, parse_proc_cgroup, parse_size,
    weight_to_shares, CgroupMembership, CpuMax,
};

/// The resource controllers workbench uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Controller {
    /// CPU bandwidth, weight and usage (v1: the `cpu` and `cpuacct` hierarchies).
    Cpu,
    /// Memory limit, usage and OOM events.
    Memory,
    /// Number of tasks.
    Pids,
}

impl Controller {
    /// All controllers workbench knows.
    pub const ALL: [Controller; 3] = [Controller::Cpu, Controller::Memory, Controller::Pids];

    /// The kernel's name (the v2 name, also the main v1 hierarchy).
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
        }
    }

    /// v1 hierarchies used for this controller; the first is required, the
    /// rest are joined when present (cpu usage lives in `cpuacct`).
    pub fn v1_hierarchies(self) -> &'static [&'static str] {
        match self {
            Controller::Cpu => &["cpu", "cpuacct"],
            Controller::Memory => &["memory"],
            Controller::Pids => &["pids"],
        }
    }
}

impl std::fmt::Display for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Controller {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Controller::Cpu),
            "memory" => Ok(Controller::Memory),
            "pids" => Ok(Controller::Pids),
            _ => Err(Error::InvalidValue {
                what: "controller",
                value: s.to_string(),
                reason: "expected cpu, memory or pids".into(),
            }),
        }
    }
}

/// CFS bandwidth throttling counters of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuStat {
    /// Enforcement periods that elapsed while the group had runnable tasks.
    pub nr_periods: u64,
    /// Periods in which the group used up its quota and was throttled.
    pub nr_throttled: u64,
    /// Total time the group's tasks spent throttled, nanoseconds.
    pub throttled_ns: u64,
}

/// Read and parse `/proc/<pid>/cgroup`.
pub fn read_proc_cgroup(pid: i32) -> Result<Vec<CgroupMembership>> {
    let path = format!("/proc/{pid}/cgroup");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    parse_proc_cgroup(&text).map_err(|e| match e {
        Error::Parse { input, reason, .. } => Error::Parse {
            what: path.clone(),
            input,
            reason,
        },
        other => other,
    })
}

/// Is `path` inside some hierarchy's `workbench/` parent under `root`? Handy
/// for the engine when it shows a process's membership.
pub fn is_workbench_path(root: &Path, path: &Path) -> bool {
    check_owned_path(root, path).is_ok()
}
