//! Removing recorded objects, newest first: processes, mounts and
//! directories here, host objects through [`crate::hostobj`].

use super::*;

/// Remove a run's resources, newest first; returns what could not be removed.
///
/// A kernel parameter is shared by every run on the host: it is restored
/// (or left to a later run still holding it) under the host-wide `sysctl`
/// lock, and its record leaves the state file before the lock does, so of
/// two runs ending at once exactly one — the last — puts it back.
pub fn teardown(state: &RunState) -> Vec<String> {
    let mut problems = Vec::new();
    let mut left = state.clone();
    for r in state.resources.iter().rev() {
        let done = if matches!(r, Resource::Sysctl { .. }) {
            reserve_or_go("sysctl", std::time::Duration::from_secs(2), || {
                let done = remove(r);
                if done.is_ok() {
                    if let Some(i) = left.resources.iter().rposition(|x| x == r) {
                        left.resources.remove(i);
                        let _ = left.persist();
                    }
                }
                done
            })
        } else {
            remove(r)
        };
        if let Err(e) = done {
            problems.push(format!("remove {r}: {e}"));
        }
    }
    problems
}

/// Mount points at or below `dir`, deepest first (from our mountinfo).
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = crate::observe::parse::parse_mountinfo(&text)
        .unwrap_or_default()
        .into_iter()
        .map(|m| PathBuf::from(m.mount_point))
        .filter(|p| p.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v
}

fn ensure_under_root(p: &Path) -> Result<(), String> {
    let root = run_root();
    // A kept container's directory is recorded while it is being made.
    let base = crate::container::base_dir();
    let inside = p.starts_with(&root) || p.starts_with(VAR_TMP_DIR) || (p.starts_with(&base) && p != base);
    if inside && !p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        Ok(())
    } else {
        Err(StateError::Outside(p.display().to_string(), root.display().to_string()).to_string())
    }
}

/// Remove one resource; a resource that is already gone is not an error.
pub fn remove(r: &Resource) -> Result<(), String> {
    match r {
        Resource::Process { pid, start_time } => {
            if is_same_process(*pid, *start_time) {
                let p = nix::unistd::Pid::from_raw(*pid);
                let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
                // Reap it if it is our child; otherwise wait for it to exit
                // (its zombie is left to its parent).
                for _ in 0..200 {
                    let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
                    if !is_same_process(*pid, *start_time) {
                        if crate::kernel::proc::start_time(*pid) == Some(*start_time) {
                            // Our child may have died between waitpid and the check: reap it too.
                            let _ = nix::sys::wait::waitpid(p, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
                        }
                        return Ok(());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                return Err(format!("kill {pid}: still alive after SIGKILL"));
            }
            Ok(())
        }
        Resource::Mount { target } => {
            ensure_under_root(target)?;
            if mounts_below(target).iter().any(|m| m == target) {
                crate::kernel::mount::unmount(target).map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        Resource::Dir { path } => {
            ensure_under_root(path)?;
            for m in mounts_below(path) {
                crate::kernel::mount::unmount(&m).map_err(|e| e.to_string())?;
            }
            // A signal's teardown runs while the main thread may still be
            // finishing a step that writes into the directory ("Directory not
            // empty"): try again a few times before giving up.
            let mut tries = 0;
            loop {
                match std::fs::remove_dir_all(path) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && tries < 20 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(25));
                    }
                    Err(e) => return Err(format!("rm -r {}: {e}", path.display())),
                }
            }
        }
        Resource::Cgroup { path } => crate::hostobj::groups::remove_group(path),
        Resource::Link { name } => crate::hostobj::links::delete_link(name),
        Resource::Netns { name } => crate::hostobj::links::delete_netns(name),
        Resource::NftTable { family, name } => crate::hostobj::firewall::remove_nft_table(family, name),
        Resource::IptablesRule { table, chain, spec } => {
            crate::hostobj::firewall::remove_iptables_rule(table, chain, spec)
        }
        Resource::XtablesChain {
            table,
            chain,
            drop_table,
        } => crate::hostobj::firewall::remove_xtables_chain(table, chain, *drop_table),
        Resource::Sysctl {
            key,
            previous,
            side_effects,
        } => restore_sysctl_shared(key, previous, side_effects),
        Resource::Subnet { .. } | Resource::HostPort { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_outside_the_run_root() {
        assert!(ensure_under_root(Path::new("/etc")).is_err());
        let inside = run_root().join("tmp/x/../../../etc");
        assert!(ensure_under_root(&inside).is_err());
        assert!(ensure_under_root(&run_root().join("tmp/wb-1")).is_ok());
        assert!(ensure_under_root(&Path::new(VAR_TMP_DIR).join("wb-1")).is_ok());
        assert!(ensure_under_root(Path::new("/var/lib/workbench/busybox-dynamic")).is_err());
        assert!(ensure_under_root(&Path::new(VAR_TMP_DIR).join("../busybox-dynamic")).is_err());
    }
}
