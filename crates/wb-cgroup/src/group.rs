//! Workbench-owned groups: create, configure, observe, kill, remove.
//!
//! A [`Group`] is `workbench/<name>` in every hierarchy that provides a
//! requested controller: on v2 a single directory, on v1 one directory per
//! controller hierarchy, on hybrid hosts usually the v1 ones. Every method
//! maps one idea ("limit CPU to 20%") onto whichever backend holds that
//! controller, so callers never name cgroup files themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::backend::{Dirs, V1, V2};
use crate::controller::Controller;
use crate::controllers::{self, cpu::Cpu, cpu::CpuStat, memory::Memory, pids::Pids};
use crate::controllers::{cpuacct::CpuAcct, cpuacct::CpuTimes, cpuset, cpuset::Cpuset, devices::DeviceRule};
use crate::controllers::{devices::Devices, freezer::Freezer, freezer::FreezerState};
use crate::detect::Layout;
use crate::error::{Error, Result};
use crate::files::*;
use crate::fsio;
use crate::parse::{self, CpuMax};
use crate::placement::{plan, words, Placement, Version, PARENT};
use crate::remove::{collect_tree, kill_dirs, remove_tree};
use crate::watch::{Resource, WatchedFile};

/// Longest accepted group name.
pub const MAX_NAME_LEN: usize = 64;

/// Check a group name: 1..=64 chars of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("longer than 64 characters");
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are not directory names");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(&format!("character {c:?} not allowed (use A-Z a-z 0-9 . _ -)"));
    }
    Ok(())
}

/// A workbench-owned cgroup. Dropping it does NOT remove it; call
/// [`Group::remove`] or wrap it with [`Group::remove_on_drop`].
#[derive(Debug, Clone)]
pub struct Group {
    name: String,
    /// v1 controller name ("cpu", "cpuacct", "memory", "pids") → group dir.
    v1: BTreeMap<&'static str, PathBuf>,
    /// Group dir in the cgroup2 hierarchy, if used.
    v2: Option<PathBuf>,
    routes: BTreeMap<Controller, Version>,
}

/// The directories a group needs, computed from a layout.
struct Blueprint {
    v1: BTreeMap<&'static str, PathBuf>,
    /// (cgroup2 root, group dir, controllers to enable in root/workbench).
    v2: Option<(PathBuf, PathBuf, Vec<Controller>)>,
    routes: BTreeMap<Controller, Version>,
}

impl Blueprint {
    fn into_group(self, name: &str) -> Group {
        Group {
            name: name.to_string(),
            v1: self.v1,
            v2: self.v2.map(|(_, d, _)| d),
            routes: self.routes,
        }
    }
}

fn blueprint(layout: &Layout, name: &str, controllers: &[Controller]) -> Result<Blueprint> {
    validate_name(name)?;
    let wanted: BTreeSet<Controller> = controllers.iter().copied().collect();
    let mut bp = Blueprint {
        v1: BTreeMap::new(),
        v2: None,
        routes: BTreeMap::new(),
    };
    let mut v2_ctrls = Vec::new();
    let mut v2_root = None;
    for c in wanted {
        match plan(layout, c)? {
            Placement::V1(hs) => {
                for (h, mount) in hs {
                    bp.v1.insert(h, mount.join(PARENT).join(name));
                }
                bp.routes.insert(c, Version::V1);
            }
            Placement::V2(root) => {
                if !c.v2_core() {
                    v2_ctrls.push(c);
                }
                v2_root = Some(root);
                bp.routes.insert(c, Version::V2);
            }
        }
    }
    if v2_root.is_none() && controllers.is_empty() {
        // No controllers: a plain process container, only possible on cgroup2.
        match layout.unified() {
            Some(u) => v2_root = Some(u.to_path_buf()),
            None => {
                return Err(invalid(
                    "controller list",
                    "[]",
                    "cgroup v1 groups live in controller hierarchies; name at least one",
                ))
            }
        }
    }
    bp.v2 = v2_root.map(|r| {
        let dir = r.join(PARENT).join(name);
        (r, dir, v2_ctrls)
    });
    Ok(bp)
}

/// Create `workbench/<name>` in every hierarchy needed for `controllers`.
///
/// Parents (`<hierarchy>/workbench`) are created when missing; on cgroup v2
/// the needed controllers are enabled in `<root>/workbench/cgroup.subtree_control`
/// (and must already be enabled at the root, which workbench never writes).
/// Fails with [`Error::Exists`] if the group is already there.
pub fn create(layout: &Layout, name: &str, controllers: &[Controller]) -> Result<Group> {
    let bp = blueprint(layout, name, controllers)?;
    // A concurrent remove() may rmdir an empty parent between our mkdirs;
    // that shows up as ENOENT on the child mkdir, and we simply start over.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_create(&bp) {
            Err(e) if attempt < 5 && e.errno() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
            Ok(()) => return Ok(bp.into_group(name)),
        }
    }
}

fn try_create(bp: &Blueprint) -> Result<()> {
    let mut created: Vec<PathBuf> = Vec::new();
    let result = (|| {
        let mut dirs: Vec<&PathBuf> = Vec::new();
        for d in bp.v1.values() {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        for dir in dirs {
            let parent = dir.parent().expect("group dir has a parent");
            fsio::mkdir_existing_ok(parent)?;
            if let Some(root) = parent.parent() {
                cpuset::fill_v1(root, parent)?;
            }
            mkdir_new(dir)?;
            created.push(dir.clone());
            cpuset::fill_v1(parent, dir)?;
        }
        if let Some((_root, dir, ctrls)) = &bp.v2 {
            let parent = dir.parent().expect("group dir has a parent");
            fsio::mkdir_existing_ok(parent)?;
            enable_in_parent(parent, ctrls)?;
            mkdir_new(dir)?;
            created.push(dir.clone());
        }
        Ok(())
    })();
    if result.is_err() {
        for d in created.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
    result
}

fn mkdir_new(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::Exists {
            path: dir.to_path_buf(),
        }),
        Err(e) => Err(Error::io("mkdir", dir, e)),
    }
}

/// Write `+cpu +memory ...` into workbench's own parent (only what is missing).
fn enable_in_parent(parent: &Path, ctrls: &[Controller]) -> Result<()> {
    let stc = parent.join(CGROUP_SUBTREE_CONTROL);
    let enabled = words(&stc)?;
    let missing: Vec<String> = ctrls
        .iter()
        .filter(|c| !enabled.iter().any(|w| w == c.name()))
        .map(|c| format!("+{}", c.name()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    fsio::write(&stc, &missing.join(" "))
}

/// The directories [`create`] would make for `workbench/<name>` (v1 ones
/// deduplicated, then the v2 one, as [`Group::paths`] lists them), computed
/// without creating or writing anything, so a caller can record them (e.g. in
/// a state file for crash cleanup) before they exist. The `workbench/` parents
/// are not listed; removing a group removes an empty parent too.
pub fn planned_paths(layout: &Layout, name: &str, controllers: &[Controller]) -> Result<Vec<PathBuf>> {
    let bp = blueprint(layout, name, controllers)?;
    let g = bp.into_group(name);
    Ok(g.paths())
}

/// Attach to an existing `workbench/<name>` (e.g. created by an earlier run).
pub fn open(layout: &Layout, name: &str, controllers: &[Controller]) -> Result<Group> {
    let bp = blueprint(layout, name, controllers)?;
    let g = bp.into_group(name);
    for d in g.paths() {
        if !d.is_dir() {
            return Err(Error::io("open", &d, io::Error::from_raw_os_error(libc::ENOENT)));
        }
    }
    Ok(g)
}

/// Group methods that only hand the call to the routed backend of one
/// controller (`cpu`, `memory`, `pids`: the getter that routes it).
macro_rules! pass_to_backend {
    ($($(#[$doc:meta])* $getter:ident: fn $name:ident() -> $ret:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(&self) -> Result<$ret> {
                let (api, d) = self.$getter()?;
                api.$name(&d)
            }
        )*
    };
}

impl Group {
    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every directory of this group (v1 ones deduplicated, then the v2 one).
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for d in self.v1.values() {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        if let Some(d) = &self.v2 {
            out.push(d.clone());
        }
        out
    }

    /// Controllers this group was created with.
    pub fn controllers(&self) -> Vec<Controller> {
        self.routes.keys().copied().collect()
    }

    /// Which API serves a controller in this group.
    pub fn version_of(&self, c: Controller) -> Option<Version> {
        self.routes.get(&c).copied()
    }

    fn route(&self, c: Controller) -> Result<Version> {
        self.version_of(c).ok_or_else(|| Error::NotInGroup {
            group: self.name.clone(),
            controller: c.name().to_string(),
        })
    }

    /// Move a process (all its threads) into the group, in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        if pid <= 0 {
            return Err(invalid("pid", pid, "must be positive"));
        }
        for d in self.paths() {
            fsio::write(&d.join(CGROUP_PROCS), &pid.to_string())?;
        }
        Ok(())
    }

    /// PIDs in the group (union over its hierarchies, sorted).
    pub fn procs(&self) -> Result<Vec<i32>> {
        let mut all = BTreeSet::new();
        for d in self.paths() {
            let p = d.join(CGROUP_PROCS);
            let text = fsio::read(&p)?;
            all.extend(parse::parse_procs(&text).map_err(|e| fsio::reattach(e, &p))?);
        }
        Ok(all.into_iter().collect())
    }

    /// The directories of this group as the backend of `v` sees them.
    fn dirs(&self, v: Version) -> Dirs<'_> {
        match v {
            Version::V1 => Dirs::V1 {
                group: &self.name,
                dirs: &self.v1,
            },
            Version::V2 => Dirs::V2(self.v2.as_deref().expect("v2 route implies a v2 dir")),
        }
    }

    /// The backend serving controller `c` (`v1` or `v2`, as routed), and the
    /// directories it works on.
    fn backend<T: ?Sized>(&self, c: Controller, v1: &'static T, v2: &'static T) -> Result<(&'static T, Dirs<'_>)> {
        let v = self.route(c)?;
        let api = match v {
            Version::V1 => v1,
            Version::V2 => v2,
        };
        Ok((api, self.dirs(v)))
    }

    fn cpu(&self) -> Result<(&'static dyn Cpu, Dirs<'_>)> {
        self.backend::<dyn Cpu>(Controller::Cpu, &V1, &V2)
    }

    fn memory(&self) -> Result<(&'static dyn Memory, Dirs<'_>)> {
        self.backend::<dyn Memory>(Controller::Memory, &V1, &V2)
    }

    fn pids(&self) -> Result<(&'static dyn Pids, Dirs<'_>)> {
        self.backend::<dyn Pids>(Controller::Pids, &V1, &V2)
    }

    fn cpuacct(&self) -> Result<(&'static dyn CpuAcct, Dirs<'_>)> {
        self.backend::<dyn CpuAcct>(Controller::Cpu, &V1, &V2)
    }

    fn cpuset(&self) -> Result<(&'static dyn Cpuset, Dirs<'_>)> {
        self.backend::<dyn Cpuset>(Controller::Cpuset, &V1, &V2)
    }

    fn freezer(&self) -> Result<(&'static dyn Freezer, Dirs<'_>)> {
        self.backend::<dyn Freezer>(Controller::Freezer, &V1, &V2)
    }

    fn devices(&self) -> Result<(&'static dyn Devices, Dirs<'_>)> {
        self.backend::<dyn Devices>(Controller::Devices, &V1, &V2)
    }

    /// User and system CPU time of the group (v1 cpuacct.stat, v2 cpu.stat).
    pub fn cpu_times(&self) -> Result<CpuTimes> {
        let (acct, d) = self.cpuacct()?;
        acct.cpu_times(&d)
    }

    /// Keep the group's tasks on the CPUs of `list` (`0`, `0-1`, `0,2`).
    pub fn set_cpuset_cpus(&self, list: &str) -> Result<()> {
        cpuset::validate_cpu_list(list)?;
        let (c, d) = self.cpuset()?;
        c.set_cpus(&d, list)
    }

    /// The CPU list the group asked for (v2: empty = the parent's).
    pub fn cpuset_cpus(&self) -> Result<String> {
        let (c, d) = self.cpuset()?;
        c.cpus(&d)
    }

    /// The CPUs the group really gets.
    pub fn cpuset_effective_cpus(&self) -> Result<String> {
        let (c, d) = self.cpuset()?;
        c.effective_cpus(&d)
    }

    /// Ask the kernel to freeze every task of the group (see [`Group::freezer_state`]
    /// for when it is done: freezing takes a moment).
    pub fn freeze(&self) -> Result<()> {
        let (f, d) = self.freezer()?;
        f.freeze(&d)
    }

    /// Let the group's tasks run again.
    pub fn thaw(&self) -> Result<()> {
        let (f, d) = self.freezer()?;
        f.thaw(&d)
    }

    /// THAWED, FREEZING or FROZEN.
    pub fn freezer_state(&self) -> Result<FreezerState> {
        let (f, d) = self.freezer()?;
        f.freezer_state(&d)
    }

    /// Forbid the group's tasks what `rule` names (v1: devices.deny; v2: a
    /// BPF device program attached to the group).
    pub fn deny_device(&self, rule: &DeviceRule) -> Result<()> {
        let (dev, d) = self.devices()?;
        dev.deny_device(&d, rule)
    }

    /// The group's device rules: v1 devices.list, v2 how many device
    /// programs are attached to it.
    pub fn device_rules(&self) -> Result<String> {
        let (dev, d) = self.devices()?;
        dev.device_rules(&d)
    }

    /// Limit CPU time to `quota_us` every `period_us` (e.g. 20000/100000 = 20%
    /// of one CPU). period must be 1000..=1000000 and quota >= 1000 µs.
    pub fn set_cpu_quota(&self, quota_us: u64, period_us: u64) -> Result<()> {
        validate_quota(quota_us, period_us)?;
        let (cpu, d) = self.cpu()?;
        cpu.set_cpu_quota(&d, quota_us, period_us)
    }

    /// Set the relative CPU weight on the v2 scale 1..=10000 (default 100);
    /// on v1 it is converted to cpu.shares.
    pub fn set_cpu_weight(&self, weight: u64) -> Result<()> {
        if !(1..=10_000).contains(&weight) {
            return Err(invalid("cpu weight", weight, "must be 1..=10000"));
        }
        let (cpu, d) = self.cpu()?;
        cpu.set_cpu_weight(&d, weight)
    }

    /// Limit memory to `bytes`. `swap_bytes`: `Some(n)` allows n bytes of swap
    /// on top (`Some(0)` = no swap, so hitting the limit means OOM), `None`
    /// leaves swap unlimited. Without swap accounting on the host (no
    /// memory.memsw.* / memory.swap.max) the swap part is skipped; see
    /// [`crate::LayoutSummary::swap_accounting`].
    pub fn set_memory_limit(&self, bytes: u64, swap_bytes: Option<u64>) -> Result<()> {
        if bytes == 0 {
            return Err(invalid("memory limit", 0, "must be greater than zero"));
        }
        let (mem, d) = self.memory()?;
        mem.set_memory_limit(&d, bytes, swap_bytes)
    }

    /// Allow at most `n` tasks (threads count too) in the group.
    pub fn set_pids_max(&self, n: u64) -> Result<()> {
        // PIDS_MAX in the kernel is PID_MAX_LIMIT + 1 (4194304 + 1).
        if n > 4_194_304 {
            return Err(invalid("pids.max", n, "must be at most 4194304"));
        }
        let (pids, d) = self.pids()?;
        pids.set_pids_max(&d, n)
    }

    pass_to_backend! {
        /// Remove the CPU bandwidth limit.
        cpu: fn clear_cpu_quota() -> ();
        /// The current CPU bandwidth setting.
        cpu: fn cpu_quota() -> CpuMax;
        /// Total CPU time used by the group's processes, in nanoseconds.
        cpu: fn cpu_usage_ns() -> u64;
        /// Throttling counters of the CFS bandwidth controller.
        cpu: fn cpu_stat() -> CpuStat;
        /// The CPU weight on the v2 scale (v1 shares converted back, so a round
        /// trip may lose one step).
        cpu: fn cpu_weight() -> u64;
        /// Remove memory (and swap) limits.
        memory: fn clear_memory_limit() -> ();
        /// Bytes currently charged to the group.
        memory: fn memory_current() -> u64;
        /// Peak usage (v2 needs Linux >= 5.19, else `None`).
        memory: fn memory_peak() -> Option<u64>;
        /// Processes killed by the OOM killer in this group.
        memory: fn oom_kill_count() -> u64;
        /// Times the memory limit was hit: v1 memory.failcnt (stays 0 when a
        /// memsw limit is what actually fails), v2 memory.events `max`.
        memory: fn failcnt() -> Option<u64>;
        /// Remove the task limit.
        pids: fn clear_pids_max() -> ();
        /// Current limit; `None` = unlimited.
        pids: fn pids_max() -> Option<u64>;
        /// Number of tasks in the group.
        pids: fn pids_current() -> u64;
        /// Forks refused because of pids.max (pids.events `max`).
        pids: fn pids_max_events() -> u64;
    }

    /// SIGKILL everything in the group: v2 writes `1` to cgroup.kill when the
    /// kernel has it; otherwise (and on v1) every PID in cgroup.procs is killed,
    /// repeatedly, until the group is empty (a process may fork meanwhile).
    pub fn kill_all(&self) -> Result<()> {
        let mut dirs = Vec::new();
        for d in self.paths() {
            collect_tree(&d, &mut dirs)?;
        }
        kill_dirs(&dirs)
    }

    /// Kill everything, then rmdir the group's directories (children first),
    /// retrying briefly on EBUSY. Already-removed directories are fine. Empty
    /// `workbench/` parents are removed too.
    pub fn remove(&self) -> Result<()> {
        self.kill_all()?;
        for d in self.paths() {
            remove_tree(&d)?;
            if let Some(parent) = d.parent() {
                let _ = fs::remove_dir(parent); // fails while other groups exist
            }
        }
        Ok(())
    }

    /// Wrap in a guard that calls [`Group::remove`] when dropped.
    pub fn remove_on_drop(self) -> RemoveOnDrop {
        RemoveOnDrop(self)
    }

    /// The files behind `resource` in this group, for before/after displays.
    /// Empty when the group lacks the controller; optional files (memsw,
    /// memory.peak, memory.swap.max) only when the kernel provides them.
    pub fn files_for(&self, resource: Resource) -> Vec<WatchedFile> {
        let file = |path: PathBuf, label: &str, meaning: &str| WatchedFile {
            path,
            label: label.to_string(),
            meaning: meaning.to_string(),
        };
        if resource == Resource::Procs {
            let meaning = "processes in the group, one pid per line";
            return self
                .paths()
                .into_iter()
                .take(1)
                .map(|d| file(d.join(CGROUP_PROCS), CGROUP_PROCS, meaning))
                .collect();
        }
        let mut out = Vec::new();
        for (&c, &v) in &self.routes {
            let dirs = self.dirs(v);
            for w in controllers::watched(c, v)
                .iter()
                .chain(controllers::watched_extra(c, v))
            {
                if w.resource != resource {
                    continue;
                }
                let Ok(dir) = dirs.dir(w.hierarchy) else {
                    continue;
                };
                let path = dir.join(w.file);
                if !w.optional || path.exists() {
                    out.push(file(path, w.file, w.meaning));
                }
            }
        }
        out
    }
}

/// Guard returned by [`Group::remove_on_drop`]; derefs to the [`Group`].
#[derive(Debug)]
pub struct RemoveOnDrop(Group);

impl std::ops::Deref for RemoveOnDrop {
    type Target = Group;
    fn deref(&self) -> &Group {
        &self.0
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(e) = self.0.remove() {
            eprintln!("wb-cgroup: cleanup of group {} failed: {e}", self.0.name);
        }
    }
}

/// An [`Error::InvalidValue`] for `what` = `value`.
fn invalid(what: &'static str, value: impl ToString, reason: &str) -> Error {
    Error::InvalidValue {
        what,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn validate_quota(quota_us: u64, period_us: u64) -> Result<()> {
    if !(1_000..=1_000_000).contains(&period_us) {
        return Err(invalid(
            "cpu period",
            format!("{period_us}µs"),
            "must be 1000..=1000000 µs (1 ms to 1 s)",
        ));
    }
    if quota_us < 1_000 {
        return Err(invalid(
            "cpu quota",
            format!("{quota_us}µs"),
            "must be at least 1000 µs (use clear_cpu_quota for unlimited)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "demo-1", "x.y_z", "wbtest-1234abcd", &"a".repeat(64)] {
            validate_name(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in ["", ".", "..", "a/b", "a b", "ü", "x\n", &"a".repeat(65), "a:b", "*"] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn quota_validation() {
        validate_quota(20_000, 100_000).unwrap();
        validate_quota(1_000, 1_000).unwrap();
        validate_quota(2_000_000, 1_000_000).unwrap(); // 2 CPUs
        assert!(validate_quota(0, 100_000).is_err());
        assert!(validate_quota(999, 100_000).is_err());
        assert!(validate_quota(20_000, 999).is_err());
        assert!(validate_quota(20_000, 1_000_001).is_err());
    }
}
