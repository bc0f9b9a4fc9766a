//! The cgroup side of the engine: the host's layout for `doctor`, and removal
//! of workbench-owned groups for cleanup (see the `wb-cgroup` crate).

use std::path::Path;

/// Remove a cgroup directory that workbench created, killing what is left in it.
/// `wb-cgroup` refuses any path that is not under a `workbench/` parent on a cgroup filesystem.
pub fn remove_group(path: &Path) -> Result<(), String> {
    wb_cgroup::remove_by_path(path).map_err(|e| e.to_string())
}

/// One line describing the host's cgroup layout: version and usable controllers.
pub fn layout_line() -> Result<String, String> {
    let layout = wb_cgroup::detect_system().map_err(|e| e.to_string())?;
    let s = wb_cgroup::layout_summary(&layout);
    let usable: Vec<String> = s
        .workbench
        .iter()
        .map(|(c, r)| match r {
            Ok(v) => format!("{c} ({v})"),
            Err(why) => format!("{c}: {why}"),
        })
        .collect();
    Ok(format!("{} at {}; {}", s.version, s.root.display(), usable.join(", ")))
}
