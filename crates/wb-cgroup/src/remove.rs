//! Killing a group's processes and removing its directories.
//!
//! A cgroup directory can only be removed (rmdir) once no process is in it
//! and it has no child groups; a killed task may take a moment to leave, so
//! rmdir is retried on EBUSY. v2 kernels >= 5.14 offer `cgroup.kill`, which
//! kills a whole subtree at once; elsewhere every PID is SIGKILLed until the
//! group stays empty. `workbench cleanup` removes groups by path, but only
//! below a `workbench/` parent on a cgroup filesystem.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::detect::{Layout, DEFAULT_ROOT};
use crate::error::{Error, Result};
use crate::files::{CGROUP_KILL, CGROUP_PROCS};
use crate::fsio;
use crate::parse;
use crate::placement::PARENT;

/// How long kill_all keeps killing, and rmdir keeps retrying on EBUSY.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
const RMDIR_TIMEOUT: Duration = Duration::from_secs(3);

/// `dir` and all sub-directories below it, parents before children.
pub(crate) fn collect_tree(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read directory", dir, e)),
    };
    out.push(dir.to_path_buf());
    for e in entries {
        let e = e.map_err(|e| Error::io("read directory", dir, e))?;
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            collect_tree(&e.path(), out)?;
        }
    }
    Ok(())
}

fn read_procs_tolerant(dir: &Path) -> Result<Vec<i32>> {
    let p = dir.join(CGROUP_PROCS);
    match fs::read_to_string(&p) {
        Ok(s) => parse::parse_procs(&s).map_err(|e| fsio::reattach(e, &p)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("read", &p, e)),
    }
}

/// Kill every process in `dirs` until they are all empty.
pub(crate) fn kill_dirs(dirs: &[PathBuf]) -> Result<()> {
    let me = std::process::id() as i32;
    let members = |dirs: &[PathBuf]| -> Result<BTreeMap<i32, PathBuf>> {
        let mut m = BTreeMap::new();
        for d in dirs {
            for pid in read_procs_tolerant(d)? {
                m.entry(pid).or_insert_with(|| d.clone());
            }
        }
        Ok(m)
    };
    let first = members(dirs)?;
    if let Some(d) = first.get(&me) {
        return Err(Error::Refused {
            path: d.clone(),
            reason: format!("the calling process (pid {me}) is a member; it would kill itself"),
        });
    }
    if first.is_empty() {
        return Ok(());
    }
    // A frozen v1 task keeps its SIGKILL pending until it is thawed.
    for d in dirs {
        crate::controllers::freezer::thaw_for_kill(d)?;
    }
    // cgroup.kill (v2, Linux >= 5.14) kills the whole subtree atomically.
    for d in dirs {
        let k = d.join(CGROUP_KILL);
        if k.is_file() {
            fsio::write(&k, "1")?;
        }
    }
    let deadline = Instant::now() + KILL_TIMEOUT;
    loop {
        let m = members(dirs)?;
        if m.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let (_, d) = m.iter().next().expect("non-empty");
            return Err(Error::KillTimeout {
                path: d.clone(),
                pids: m.keys().copied().collect(),
            });
        }
        for &pid in m.keys() {
            if pid <= 1 || pid == me {
                continue;
            }
            match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(errno) => {
                    return Err(Error::Sys {
                        syscall: "kill",
                        target: format!("pid {pid} (SIGKILL)"),
                        errno,
                    })
                }
            }
        }
        sleep(Duration::from_millis(10));
    }
}

/// rmdir a group directory and its child groups, deepest first.
pub(crate) fn remove_tree(dir: &Path) -> Result<()> {
    let mut dirs = Vec::new();
    collect_tree(dir, &mut dirs)?;
    for d in dirs.iter().rev() {
        rmdir_retry(d)?;
    }
    Ok(())
}

/// rmdir, retrying on EBUSY (killed tasks may take a moment to leave).
fn rmdir_retry(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + RMDIR_TIMEOUT;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(Error::io("rmdir", dir, e)),
        }
    }
}

/// Every group directory under each hierarchy's `workbench/` parent.
pub fn list_owned(layout: &Layout) -> Vec<PathBuf> {
    let mut out = BTreeSet::new();
    for root in layout.hierarchy_roots() {
        if let Ok(entries) = fs::read_dir(root.join(PARENT)) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    out.insert(e.path());
                }
            }
        }
    }
    out.into_iter().collect()
}

/// `workbench cleanup`: kill the processes in and remove one group directory
/// under the host's /sys/fs/cgroup. Refuses anything that is not
/// `<root>/workbench/<x>...` or `<root>/<hierarchy>/workbench/<x>...`, or not on
/// a cgroup filesystem.
pub fn remove_by_path(path: &Path) -> Result<()> {
    check_owned_path(Path::new(DEFAULT_ROOT), path)?;
    if path.exists() {
        use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
        let st = crate::fsio::statfs(path)?;
        let t = st.filesystem_type();
        if t != CGROUP_SUPER_MAGIC && t != CGROUP2_SUPER_MAGIC {
            return Err(Error::Refused {
                path: path.to_path_buf(),
                reason: "not on a cgroup filesystem".into(),
            });
        }
    }
    remove_owned(path)
}

/// [`remove_by_path`] with an explicit cgroup root (used with fake trees).
pub fn remove_by_path_in(root: &Path, path: &Path) -> Result<()> {
    check_owned_path(root, path)?;
    remove_owned(path)
}

fn remove_owned(path: &Path) -> Result<()> {
    let mut dirs = Vec::new();
    collect_tree(path, &mut dirs)?;
    kill_dirs(&dirs)?;
    remove_tree(path)?;
    if let Some(parent) = path.parent() {
        if parent.file_name().is_some_and(|n| n == PARENT) {
            let _ = fs::remove_dir(parent);
        }
    }
    Ok(())
}

/// `workbench cleanup`: remove the `workbench` parents (`<root>/workbench`,
/// `<root>/<hierarchy>/workbench`) that hold no group any more, e.g. one an
/// OCI runtime's container left (runc removes its group, not the parent) or a
/// killed run left empty. rmdir(2) refuses a parent that still holds a group,
/// so a live run's parent stays; a run creating its group at that moment
/// retries (see [`crate::create`]). Only directories on a cgroup filesystem.
pub fn remove_empty_parents() -> Vec<PathBuf> {
    use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    remove_empty_parents_in(Path::new(DEFAULT_ROOT), |p| {
        crate::fsio::statfs(p).is_ok_and(|st| {
            let t = st.filesystem_type();
            t == CGROUP_SUPER_MAGIC || t == CGROUP2_SUPER_MAGIC
        })
    })
}

/// [`remove_empty_parents`] with an explicit root and filesystem test (fake trees).
pub fn remove_empty_parents_in(root: &Path, on_cgroupfs: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut candidates = vec![root.join(PARENT)];
    if let Ok(entries) = fs::read_dir(root) {
        let mut hs: Vec<PathBuf> = entries.flatten().map(|e| e.path().join(PARENT)).collect();
        hs.sort();
        candidates.extend(hs);
    }
    candidates
        .into_iter()
        .filter(|p| p.is_dir() && on_cgroupfs(p))
        .filter(|p| fs::remove_dir(p).is_ok())
        .collect()
}

/// Is `path` a group below a `workbench` parent of a hierarchy under `root`?
pub fn check_owned_path(root: &Path, path: &Path) -> Result<()> {
    let refuse = |reason: &str| {
        Err(Error::Refused {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        })
    };
    if !path.is_absolute() {
        return refuse("not an absolute path");
    }
    if path
        .components()
        .any(|c| !matches!(c, Component::RootDir | Component::Normal(_)))
    {
        return refuse("contains `.` or `..`");
    }
    let Ok(rel) = path.strip_prefix(root) else {
        return refuse(&format!("not under the cgroup root {}", root.display()));
    };
    let parts: Vec<_> = rel.components().collect();
    // <root>/workbench/<x>... (v2) or <root>/<hierarchy>/workbench/<x>... (v1, unified)
    let ok = parts
        .iter()
        .take(2)
        .position(|c| c.as_os_str() == PARENT)
        .is_some_and(|i| parts.len() > i + 1);
    if !ok {
        return refuse("not a group inside a `workbench/` parent of a cgroup hierarchy");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_parents_are_removed() {
        let t = std::env::temp_dir().join(format!("wb-cg-parents-{}", std::process::id()));
        let _ = fs::remove_dir_all(&t);
        for d in [
            "cpu/workbench",
            "memory/workbench/wb-live",
            "unified/workbench",
            "pids",
            "workbench",
        ] {
            fs::create_dir_all(t.join(d)).unwrap();
        }
        let removed = remove_empty_parents_in(&t, |p| !p.starts_with(t.join("unified")));
        assert_eq!(removed, vec![t.join("workbench"), t.join("cpu/workbench")]);
        assert!(
            t.join("memory/workbench/wb-live").is_dir(),
            "a parent holding a group stays"
        );
        assert!(
            t.join("unified/workbench").is_dir(),
            "not on a cgroup filesystem: left alone"
        );
        assert!(t.join("pids").is_dir());
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn owned_paths() {
        let root = Path::new("/sys/fs/cgroup");
        for ok in [
            "/sys/fs/cgroup/workbench/x",
            "/sys/fs/cgroup/cpu/workbench/x",
            "/sys/fs/cgroup/cpu,cpuacct/workbench/x",
            "/sys/fs/cgroup/unified/workbench/x",
            "/sys/fs/cgroup/memory/workbench/x/sub",
        ] {
            check_owned_path(root, Path::new(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "/sys/fs/cgroup",
            "/sys/fs/cgroup/workbench",
            "/sys/fs/cgroup/memory/workbench",
            "/sys/fs/cgroup/memory/process_api/x",
            "/sys/fs/cgroup/memory/process_api/workbench/x",
            "/sys/fs/cgroup/memory/workbench/../process_api",
            "/tmp/workbench/x",
            "sys/fs/cgroup/workbench/x",
        ] {
            assert!(
                matches!(check_owned_path(root, Path::new(bad)), Err(Error::Refused { .. })),
                "{bad} accepted"
            );
        }
    }
}
