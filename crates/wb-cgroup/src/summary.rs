//! What `workbench doctor` reports about the host's cgroups.
//!
//! The controllers each API offers, whether CFS bandwidth control and swap
//! accounting are compiled in (their files exist), and where workbench would
//! put each controller it uses, or why it cannot.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::controller::Controller;
use crate::detect::Layout;
use crate::files;
use crate::placement::{self, plan, Version};

impl Layout {
    /// What `workbench doctor` shows; see [`LayoutSummary`].
    pub fn summary(&self) -> LayoutSummary {
        layout_summary(self)
    }
}

/// One controller the host offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControllerInfo {
    pub name: String,
    /// "v1" or "v2".
    pub version: &'static str,
    /// The v1 mount dir, or the cgroup2 root.
    pub path: PathBuf,
    /// v2: listed in the root's cgroup.subtree_control (usable by children).
    /// v1: always true.
    pub enabled_at_root: bool,
}

/// What `workbench doctor` reports about cgroups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayoutSummary {
    /// "v1", "v2" or "hybrid".
    pub version: &'static str,
    pub root: PathBuf,
    pub controllers: Vec<ControllerInfo>,
    /// CFS bandwidth control (cpu.cfs_quota_us / cpu.max) exists; `None` = could not tell.
    pub cpu_bandwidth: Option<bool>,
    /// Swap accounting (memory.memsw.* / memory.swap.max) exists; `None` = could not tell.
    pub swap_accounting: Option<bool>,
    /// For each controller workbench uses, where it would live ("v1" / "v2"),
    /// or why it cannot be used.
    pub workbench: BTreeMap<String, std::result::Result<&'static str, String>>,
}

/// The words of a file, or none if it cannot be read.
fn words(path: &Path) -> Vec<String> {
    placement::words(path).unwrap_or_default()
}

/// Summarise a layout for `workbench doctor`.
pub fn layout_summary(layout: &Layout) -> LayoutSummary {
    let mut controllers = Vec::new();
    for (name, path) in layout.v1_hierarchies() {
        controllers.push(ControllerInfo {
            name,
            version: "v1",
            path,
            enabled_at_root: true,
        });
    }
    if let Some(u) = layout.unified() {
        let enabled = words(&u.join(files::CGROUP_SUBTREE_CONTROL));
        for name in words(&u.join(files::CGROUP_CONTROLLERS)) {
            controllers.push(ControllerInfo {
                enabled_at_root: enabled.contains(&name),
                name,
                version: "v2",
                path: u.to_path_buf(),
            });
        }
    }

    let mut workbench = BTreeMap::new();
    for c in Controller::ALL {
        let placed = match plan(layout, c).map(|p| p.version()) {
            Ok(Version::V1) => Ok("v1"),
            Ok(Version::V2) => Ok("v2"),
            Err(e) => Err(e.to_string()),
        };
        workbench.insert(c.name().to_string(), placed);
    }
    // Feature probes look wherever the controller exists, delegated or not.
    let on_unified = |name: &str| {
        layout
            .unified()
            .filter(|u| words(&u.join(files::CGROUP_CONTROLLERS)).iter().any(|w| w == name))
    };
    let cpu_bandwidth = if let Some(h) = layout.hierarchy("cpu") {
        Some(h.join(files::V1_CPU_CFS_QUOTA_US).is_file())
    } else if let Some(u) = on_unified("cpu") {
        v2_cpu_bandwidth(u)
    } else {
        Some(false)
    };
    let swap_accounting = if let Some(h) = layout.hierarchy("memory") {
        Some(h.join(files::V1_MEMORY_MEMSW_LIMIT).is_file())
    } else if let Some(u) = on_unified("memory") {
        v2_child_has(u, files::V2_MEMORY_MAX, files::V2_MEMORY_SWAP_MAX)
    } else {
        Some(false)
    };
    LayoutSummary {
        version: layout.version_label(),
        root: layout.root().to_path_buf(),
        controllers,
        cpu_bandwidth,
        swap_accounting,
        workbench,
    }
}

/// On v2, cpu.max only exists below the root. The root's cpu.stat shows
/// `nr_throttled` when CFS bandwidth is compiled in; otherwise look at children.
fn v2_cpu_bandwidth(root: &Path) -> Option<bool> {
    if let Ok(s) = fs::read_to_string(root.join(files::V2_CPU_STAT)) {
        if s.lines().any(|l| l.starts_with("nr_throttled ")) {
            return Some(true);
        }
    }
    v2_child_has(root, files::V2_CPU_WEIGHT, files::V2_CPU_MAX)
}

/// Among the root's children that have `witness` (so the controller is on
/// there), does one have `wanted`? `None` when no child has the controller.
fn v2_child_has(root: &Path, witness: &str, wanted: &str) -> Option<bool> {
    let entries = fs::read_dir(root).ok()?;
    let mut seen = false;
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && p.join(witness).is_file() {
            if p.join(wanted).is_file() {
                return Some(true);
            }
            seen = true;
        }
    }
    if seen {
        Some(false)
    } else {
        None
    }
}
