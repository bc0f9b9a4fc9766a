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

mod backend;
mod controller;
mod controllers;
pub mod detect;
pub mod error;
pub mod files;
mod fsio;
pub mod group;
pub mod parse;
mod placement;
mod remove;
mod summary;
mod watch;

use std::path::Path;

pub use controller::Controller;
pub use controllers::cpu::CpuStat;
pub use controllers::cpuacct::CpuTimes;
pub use controllers::cpuset::{parse_cpu_list, validate_cpu_list};
pub use controllers::devices::{deny_program, DeviceKind, DeviceRule, Insn};
pub use controllers::freezer::FreezerState;
pub use detect::{detect, detect_system, scan_mountinfo, Layout, MountScan, DEFAULT_ROOT};
pub use error::{Error, Result};
pub use group::{create, open, planned_paths, validate_name, Group, RemoveOnDrop, MAX_NAME_LEN};
pub use parse::{
    format_cpu_max, from_shares, parse_cpu_max, parse_flat_keyed, parse_proc_cgroup, parse_size, unescape_mountinfo,
    weight_to_shares, CgroupMembership, CpuMax,
};
pub use placement::{Version, PARENT};
pub use remove::{
    check_owned_path, list_owned, remove_by_path, remove_by_path_in, remove_empty_parents, remove_empty_parents_in,
};
pub use summary::{layout_summary, ControllerInfo, LayoutSummary};
pub use watch::{read_watched, Resource, WatchedFile};

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
