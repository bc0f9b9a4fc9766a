//! Where a workbench group's directories go on a given layout.
//!
//! A controller is served by exactly one API per host: a v1 hierarchy of its
//! own (plus companions such as `cpuacct`), or the cgroup2 tree, and there it
//! must be available and enabled at the root, which workbench never writes.
//! Every workbench group is `<hierarchy>/workbench/<name>`; both group
//! creation and `workbench doctor`'s summary ask this module where that is.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::controller::Controller;
use crate::detect::Layout;
use crate::error::{Error, Result};
use crate::files::{CGROUP_CONTROLLERS, CGROUP_SUBTREE_CONTROL};
use crate::fsio;

/// Name of the parent directory every workbench group lives in.
pub const PARENT: &str = "workbench";

/// Which API serves a controller of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Version {
    V1,
    V2,
}

/// Where one controller lives for a given layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement {
    /// (v1 controller name, hierarchy mount dir); first entry is the main one.
    V1(Vec<(&'static str, PathBuf)>),
    /// Root of the cgroup2 hierarchy to use.
    V2(PathBuf),
}

impl Placement {
    pub(crate) fn version(&self) -> Version {
        match self {
            Placement::V1(_) => Version::V1,
            Placement::V2(_) => Version::V2,
        }
    }
}

/// Decide where `c` lives: v1 hierarchies first (on hybrid hosts the unified
/// mount normally carries no controllers), else the cgroup2 root if the
/// controller is available and enabled there.
pub(crate) fn plan(layout: &Layout, c: Controller) -> Result<Placement> {
    let v1_plan = || {
        let main = c.v1_hierarchies()[0];
        let main_dir = layout.hierarchy(main)?;
        let mut v = vec![(main, main_dir.to_path_buf())];
        for extra in &c.v1_hierarchies()[1..] {
            if let Some(d) = layout.hierarchy(extra) {
                v.push((*extra, d.to_path_buf()));
            }
        }
        Some(Placement::V1(v))
    };
    let unavailable = || Error::ControllerUnavailable {
        controller: c.name().to_string(),
        root: layout.root().to_path_buf(),
    };
    match layout {
        Layout::V1 { .. } => v1_plan().ok_or_else(unavailable),
        Layout::V2 { root } => {
            if !c.v2_core() {
                check_v2_root(root, c)?;
            }
            Ok(Placement::V2(root.clone()))
        }
        Layout::Hybrid { unified, .. } => {
            if let Some(p) = v1_plan() {
                return Ok(p);
            }
            if !c.v2_core() {
                check_v2_root(unified, c)?;
            }
            Ok(Placement::V2(unified.clone()))
        }
    }
}

/// The whitespace-separated words of a file such as `cgroup.controllers`.
pub(crate) fn words(path: &Path) -> Result<Vec<String>> {
    Ok(fsio::read(path)?.split_whitespace().map(str::to_string).collect())
}

/// The controller must be available at the v2 root and enabled in the root's
/// subtree_control. We never write the root ourselves.
fn check_v2_root(root: &Path, c: Controller) -> Result<()> {
    let available = words(&root.join(CGROUP_CONTROLLERS))?;
    if !available.iter().any(|w| w == c.name()) {
        return Err(Error::ControllerUnavailable {
            controller: c.name().to_string(),
            root: root.to_path_buf(),
        });
    }
    let stc = root.join(CGROUP_SUBTREE_CONTROL);
    if !words(&stc)?.iter().any(|w| w == c.name()) {
        return Err(Error::NotEnabledAtRoot {
            controller: c.name().to_string(),
            path: stc,
        });
    }
    Ok(())
}
