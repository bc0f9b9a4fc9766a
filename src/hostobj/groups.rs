//! Removal of workbench-owned cgroup directories (see the `wb-cgroup` crate).
//!
//! A cgroup directory can only be removed once no process is left in it, so
//! removal kills what remains first.

use std::path::Path;

/// Remove a cgroup directory that workbench created, killing what is left in it.
/// `wb-cgroup` refuses any path that is not under a `workbench/` parent on a cgroup filesystem.
pub fn remove_group(path: &Path) -> Result<(), String> {
    wb_cgroup::remove_by_path(path).map_err(|e| e.to_string())
}
