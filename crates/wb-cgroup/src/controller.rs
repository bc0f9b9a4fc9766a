//! The controllers workbench drives, by their kernel names.
//!
//! A controller is one kind of resource the kernel can account and limit per
//! group (CPU time, memory, tasks). On v1 each has its own hierarchy, on v2
//! they are switched on per subtree; either way the name is the same.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The resource controllers workbench uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Controller {
    /// CPU bandwidth, weight and usage (v1: the `cpu` and `cpuacct` hierarchies).
    Cpu,
    /// Memory limit, usage and OOM events.
    Memory,
    /// Number of tasks.
    Pids,
    /// Which CPUs and memory nodes the tasks may use.
    Cpuset,
    /// Stopping every task of a group at once (v2: the `cgroup.freeze` core file).
    Freezer,
    /// Which device files the tasks may open (v2: an attached BPF program).
    Devices,
}

impl Controller {
    /// All controllers workbench knows.
    pub const ALL: [Controller; 6] = [
        Controller::Cpu,
        Controller::Memory,
        Controller::Pids,
        Controller::Cpuset,
        Controller::Freezer,
        Controller::Devices,
    ];

    /// The kernel's name (the v2 name, also the main v1 hierarchy).
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpuset => "cpuset",
            Controller::Freezer => "freezer",
            Controller::Devices => "devices",
        }
    }

    /// Served on cgroup v2 by the core of every group rather than by a
    /// controller listed in `cgroup.controllers`: nothing to enable in a
    /// parent's `cgroup.subtree_control` (freezer: `cgroup.freeze`; devices:
    /// a BPF program attached to the group).
    pub fn v2_core(self) -> bool {
        matches!(self, Controller::Freezer | Controller::Devices)
    }

    /// v1 hierarchies used for this controller; the first is required, the
    /// rest are joined when present (cpu usage lives in `cpuacct`).
    pub fn v1_hierarchies(self) -> &'static [&'static str] {
        match self {
            Controller::Cpu => &["cpu", "cpuacct"],
            Controller::Memory => &["memory"],
            Controller::Pids => &["pids"],
            Controller::Cpuset => &["cpuset"],
            Controller::Freezer => &["freezer"],
            Controller::Devices => &["devices"],
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
        if let Some(c) = Controller::ALL.into_iter().find(|c| c.name() == s) {
            return Ok(c);
        }
        let names: Vec<&str> = Controller::ALL.iter().map(|c| c.name()).collect();
        let (last, rest) = names.split_last().expect("ALL is not empty");
        Err(Error::InvalidValue {
            what: "controller",
            value: s.to_string(),
            reason: format!("expected {} or {last}", rest.join(", ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Controller::ALL {
            assert_eq!(c.name().parse::<Controller>().unwrap(), c);
            assert_eq!(c.v1_hierarchies()[0], c.name());
        }
        let e = "blkio".parse::<Controller>().unwrap_err().to_string();
        assert!(
            e.contains("expected cpu, memory, pids, cpuset, freezer or devices"),
            "{e}"
        );
    }
}
