//! The cgroup side of cleanup: removing a workbench-owned group (see the `wb-cgroup` crate).

use std::path::Path;

/// Remove a cgroup directory that workbench created, killing what is left in it.
pub fn remove_group(path: &Path) -> Result<(), String> {
    if !path.components().any(|c| c.as_os_str() == "workbench") || !path.starts_with("/sys/fs/cgroup") {
        return Err(format!("refusing to remove cgroup {}: not under a workbench parent", path.display()));
    }
    if !path.exists() {
        return Ok(());
    }
    for _ in 0..100 {
        let procs = std::fs::read_to_string(path.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs.lines().filter_map(|l| l.trim().parse().ok()).collect();
        for pid in &pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::Signal::SIGKILL);
        }
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    Err(format!("rmdir {}: still busy", path.display()))
}
