//! cpuset: the CPUs (and memory nodes) a group's tasks may use.
//!
//! Writing a CPU list such as `0` to cpuset.cpus narrows the affinity of every
//! task in the group: the scheduler will not run them anywhere else, whatever
//! `sched_setaffinity(2)` asks. On v1 a new group starts with empty
//! cpuset.cpus and cpuset.mems and no task may join it until both are filled
//! (from the parent, here, when the group is made); on v2 an empty list means
//! "the parent's", and the effective set is in cpuset.cpus.effective.

use std::path::Path;

use crate::backend::{Dirs, Watch, V1, V2};
use crate::error::{Error, Result};
use crate::files::*;
use crate::fsio;
use crate::watch::Resource as R;

/// The cpuset controller's knobs, on v1 or v2.
pub(crate) trait Cpuset: Sync {
    /// Restrict the group to the CPUs of `list` (`0`, `0-1`, `0,2`).
    fn set_cpus(&self, d: &Dirs, list: &str) -> Result<()>;
    /// The list asked for (may be empty on v2: the parent's).
    fn cpus(&self, d: &Dirs) -> Result<String>;
    /// The CPUs the group really gets.
    fn effective_cpus(&self, d: &Dirs) -> Result<String>;
    fn cpuset_watched(&self) -> &'static [Watch];
}

impl Cpuset for V1 {
    fn set_cpus(&self, d: &Dirs, list: &str) -> Result<()> {
        fsio::write(&d.file("cpuset", V1_CPUSET_CPUS)?, list)
    }

    fn cpus(&self, d: &Dirs) -> Result<String> {
        Ok(fsio::read(&d.file("cpuset", V1_CPUSET_CPUS)?)?.trim().to_string())
    }

    fn effective_cpus(&self, d: &Dirs) -> Result<String> {
        Ok(fsio::read(&d.file("cpuset", V1_CPUSET_EFFECTIVE_CPUS)?)?
            .trim()
            .to_string())
    }

    fn cpuset_watched(&self) -> &'static [Watch] {
        #[rustfmt::skip]
        const W: &[Watch] = &[
            Watch::new(R::Cpuset, "cpuset", V1_CPUSET_CPUS, "CPUs the tasks may run on"),
            Watch::new(R::Cpuset, "cpuset", V1_CPUSET_MEMS, "memory nodes the tasks may allocate from"),
            Watch::new(R::Cpuset, "cpuset", V1_CPUSET_EFFECTIVE_CPUS, "CPUs the group really gets").optional(),
        ];
        W
    }
}

impl Cpuset for V2 {
    fn set_cpus(&self, d: &Dirs, list: &str) -> Result<()> {
        fsio::write(&d.file("cpuset", V2_CPUSET_CPUS)?, list)
    }

    fn cpus(&self, d: &Dirs) -> Result<String> {
        Ok(fsio::read(&d.file("cpuset", V2_CPUSET_CPUS)?)?.trim().to_string())
    }

    fn effective_cpus(&self, d: &Dirs) -> Result<String> {
        Ok(fsio::read(&d.file("cpuset", V2_CPUSET_CPUS_EFFECTIVE)?)?
            .trim()
            .to_string())
    }

    fn cpuset_watched(&self) -> &'static [Watch] {
        #[rustfmt::skip]
        const W: &[Watch] = &[
            Watch::new(R::Cpuset, "cpuset", V2_CPUSET_CPUS, "CPUs asked for (empty = the parent's)"),
            Watch::new(R::Cpuset, "cpuset", V2_CPUSET_MEMS, "memory nodes asked for (empty = the parent's)"),
            Watch::new(R::Cpuset, "cpuset", V2_CPUSET_CPUS_EFFECTIVE, "CPUs the group really gets"),
        ];
        W
    }
}

/// A v1 cpuset directory starts with empty cpuset.cpus and cpuset.mems, and
/// nothing can join it (ENOSPC) nor can a child take CPUs from it: copy
/// both from `parent` into `dir` where they are empty. Directories of other
/// hierarchies (no such files) are left alone.
pub(crate) fn fill_v1(parent: &Path, dir: &Path) -> Result<()> {
    for file in [V1_CPUSET_CPUS, V1_CPUSET_MEMS] {
        let own = dir.join(file);
        if !own.is_file() || !fsio::read(&own)?.trim().is_empty() {
            continue;
        }
        let from = fsio::read(&parent.join(file))?;
        fsio::write(&own, from.trim())?;
    }
    Ok(())
}

/// Check a CPU list such as `0`, `0-3` or `0,2-3` (the kernel's list format).
pub fn validate_cpu_list(list: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidValue {
            what: "CPU list",
            value: list.to_string(),
            reason: reason.to_string(),
        })
    };
    if list.is_empty() {
        return bad("empty");
    }
    for part in list.split(',') {
        let mut ends = part.splitn(2, '-').map(|n| n.parse::<u32>());
        match (ends.next(), ends.next()) {
            (Some(Ok(_)), None) => {}
            (Some(Ok(a)), Some(Ok(b))) if a <= b => {}
            _ => return bad("expected numbers and ranges like 0,2-3"),
        }
    }
    Ok(())
}

/// The CPUs of a list (`0-2,5` → 0, 1, 2, 5); `None` if it is not one.
pub fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let list = list.trim();
    if list.is_empty() {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?);
                if a > b {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-2,5\n"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_cpu_list("1"), Some(vec![1]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("2-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        for ok in ["0", "0-1", "0,2-3"] {
            validate_cpu_list(ok).unwrap();
        }
        for bad in ["", "a", "1-", "3-2", "0;1", "-1"] {
            assert!(validate_cpu_list(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_new_v1_cpuset_gets_its_parents_cpus_and_mems() {
        let t = tempfile::tempdir().unwrap();
        let (p, d) = (t.path().join("p"), t.path().join("p/d"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(p.join(V1_CPUSET_CPUS), "0-1\n").unwrap();
        std::fs::write(p.join(V1_CPUSET_MEMS), "0\n").unwrap();
        std::fs::write(d.join(V1_CPUSET_CPUS), "\n").unwrap();
        std::fs::write(d.join(V1_CPUSET_MEMS), "0\n").unwrap();
        fill_v1(&p, &d).unwrap();
        assert_eq!(std::fs::read_to_string(d.join(V1_CPUSET_CPUS)).unwrap(), "0-1");
        // Already set: left as it is (a fake tree's write would truncate it).
        assert_eq!(std::fs::read_to_string(d.join(V1_CPUSET_MEMS)).unwrap(), "0\n");
        // Another hierarchy's directory: nothing to do.
        let other = t.path().join("q");
        std::fs::create_dir(&other).unwrap();
        fill_v1(&p, &other).unwrap();
        assert!(!other.join(V1_CPUSET_CPUS).exists());
    }
}
