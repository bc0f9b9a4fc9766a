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
use std::path::{Component, Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;

use crate::detect::{Layout, DEFAULT_ROOT};
use crate::error::{Error, Result};
use crate::files::*;
use crate::fsio;
use crate::parse::{self, CpuMax};
use crate::{v1, v2, Controller, CpuStat};

/// Name of the parent directory every workbench group lives in.
pub const PARENT: &str = "workbench";

/// Longest accepted group name.
pub const MAX_NAME_LEN: usize = 64;

/// How long kill_all keeps killing, and rmdir keeps retrying on EBUSY.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
const RMDIR_TIMEOUT: Duration = Duration::from_secs(3);

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
        return bad(&format!(
            "character {c:?} not allowed (use A-Z a-z 0-9 . _ -)"
        ));
    }
    Ok(())
}

/// Where one controller lives for a given layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement {
    /// (v1 controller name, hierarchy mount dir); first entry is the main one.
    V1(Vec<(&'static str, PathBuf)>),
    /// Root of the cgroup2 hierarchy to use.
    V2(PathBuf),
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
            check_v2_root(root, c)?;
            Ok(Placement::V2(root.clone()))
        }
        Layout::Hybrid { unified, .. } => {
            if let Some(p) = v1_plan() {
                return Ok(p);
            }
            check_v2_root(unified, c)?;
            Ok(Placement::V2(unified.clone()))
        }
    }
}

fn words(path: &Path) -> Result<Vec<String>> {
    Ok(fsio::read(path)?
        .split_whitespace()
        .map(str::to_string)
        .collect())
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

/// Which API serves a controller of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Version {
    V1,
    V2,
}

/// What a lesson wants to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Resource {
    /// The CPU bandwidth limit (quota and period).
    CpuQuota,
    /// CPU usage and throttling counters.
    CpuStat,
    /// The relative CPU weight.
    CpuWeight,
    /// Memory limits and usage.
    Memory,
    /// OOM counters.
    MemoryEvents,
    /// Task limit, count, and refused forks.
    Pids,
    /// The member processes.
    Procs,
}

/// One cgroup file worth showing to a learner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchedFile {
    pub path: PathBuf,
    /// The file name, e.g. `cpu.cfs_quota_us`.
    pub label: String,
    /// One line on what the value means.
    pub meaning: String,
}

/// Read watched files into `label → content` (trailing newline trimmed).
/// Never fails: a missing file reads as `(missing)` and other errors as
/// `(unreadable: ...)`, so an observation snapshot always completes.
pub fn read_watched(files: &[WatchedFile]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|f| {
            let v = match fs::read_to_string(&f.path) {
                Ok(s) => s.trim_end().to_string(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => "(missing)".to_string(),
                Err(e) => format!("(unreadable: {})", Error::io("read", &f.path, e)),
            };
            (f.label.clone(), v)
        })
        .collect()
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
                v2_ctrls.push(c);
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
                return Err(Error::InvalidValue {
                    what: "controller list",
                    value: "[]".into(),
                    reason: "cgroup v1 groups live in controller hierarchies; name at least one"
                        .into(),
                })
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
            Ok(()) => {
                return Ok(Group {
                    name: name.to_string(),
                    v1: bp.v1,
                    v2: bp.v2.map(|(_, d, _)| d),
                    routes: bp.routes,
                })
            }
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
            mkdir_new(dir)?;
            created.push(dir.clone());
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
pub fn planned_paths(
    layout: &Layout,
    name: &str,
    controllers: &[Controller],
) -> Result<Vec<PathBuf>> {
    let bp = blueprint(layout, name, controllers)?;
    let g = Group {
        name: name.to_string(),
        v1: bp.v1,
        v2: bp.v2.map(|(_, d, _)| d),
        routes: bp.routes,
    };
    Ok(g.paths())
}

/// Attach to an existing `workbench/<name>` (e.g. created by an earlier run).
pub fn open(layout: &Layout, name: &str, controllers: &[Controller]) -> Result<Group> {
    let bp = blueprint(layout, name, controllers)?;
    let g = Group {
        name: name.to_string(),
        v1: bp.v1,
        v2: bp.v2.map(|(_, d, _)| d),
        routes: bp.routes,
    };
    for d in g.paths() {
        if !d.is_dir() {
            return Err(Error::io(
                "open",
                &d,
                io::Error::from_raw_os_error(libc::ENOENT),
            ));
        }
    }
    Ok(g)
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

    fn v1_dir(&self, h: &str) -> Result<&Path> {
        self.v1
            .get(h)
            .map(PathBuf::as_path)
            .ok_or_else(|| Error::NotInGroup {
                group: self.name.clone(),
                controller: h.to_string(),
            })
    }

    fn v2_dir(&self) -> &Path {
        self.v2.as_deref().expect("v2 route implies a v2 dir")
    }

    /// Move a process (all its threads) into the group, in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        if pid <= 0 {
            return Err(Error::InvalidValue {
                what: "pid",
                value: pid.to_string(),
                reason: "must be positive".into(),
            });
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

    /// Limit CPU time to `quota_us` every `period_us` (e.g. 20000/100000 = 20%
    /// of one CPU). period must be 1000..=1000000 and quota >= 1000 µs.
    pub fn set_cpu_quota(&self, quota_us: u64, period_us: u64) -> Result<()> {
        validate_quota(quota_us, period_us)?;
        match self.route(Controller::Cpu)? {
            Version::V1 => v1::set_cpu_quota(self.v1_dir("cpu")?, quota_us, period_us),
            Version::V2 => v2::set_cpu_quota(self.v2_dir(), quota_us, period_us),
        }
    }

    /// Remove the CPU bandwidth limit.
    pub fn clear_cpu_quota(&self) -> Result<()> {
        match self.route(Controller::Cpu)? {
            Version::V1 => v1::clear_cpu_quota(self.v1_dir("cpu")?),
            Version::V2 => v2::clear_cpu_quota(self.v2_dir()),
        }
    }

    /// The current CPU bandwidth setting.
    pub fn cpu_quota(&self) -> Result<CpuMax> {
        match self.route(Controller::Cpu)? {
            Version::V1 => v1::cpu_quota(self.v1_dir("cpu")?),
            Version::V2 => v2::cpu_quota(self.v2_dir()),
        }
    }

    /// Total CPU time used by the group's processes, in nanoseconds.
    pub fn cpu_usage_ns(&self) -> Result<u64> {
        match self.route(Controller::Cpu)? {
            Version::V1 => v1::cpu_usage_ns(self.v1_dir("cpuacct")?),
            Version::V2 => v2::cpu_usage_ns(self.v2_dir()),
        }
    }

    /// Throttling counters of the CFS bandwidth controller.
    pub fn cpu_stat(&self) -> Result<CpuStat> {
        match self.route(Controller::Cpu)? {
            Version::V1 => v1::cpu_stat(self.v1_dir("cpu")?),
            Version::V2 => v2::cpu_stat(self.v2_dir()),
        }
    }

    /// Set the relative CPU weight on the v2 scale 1..=10000 (default 100);
    /// on v1 it is converted to cpu.shares.
    pub fn set_cpu_weight(&self, weight: u64) -> Result<()> {
        if !(1..=10_000).contains(&weight) {
            return Err(Error::InvalidValue {
                what: "cpu weight",
                value: weight.to_string(),
                reason: "must be 1..=10000".into(),
            });
        }
        match self.route(Controller::Cpu)? {
            Version::V1 => v1::set_cpu_weight(self.v1_dir("cpu")?, weight),
            Version::V2 => v2::set_cpu_weight(self.v2_dir(), weight),
        }
    }

    /// The CPU weight on the v2 scale (v1 shares converted back, so a round
    /// trip may lose one step).
    pub fn cpu_weight(&self) -> Result<u64> {
        match self.route(Controller::Cpu)? {
            Version::V1 => v1::cpu_weight(self.v1_dir("cpu")?),
            Version::V2 => v2::cpu_weight(self.v2_dir()),
        }
    }

    /// Limit memory to `bytes`. `swap_bytes`: `Some(n)` allows n bytes of swap
    /// on top (`Some(0)` = no swap, so hitting the limit means OOM), `None`
    /// leaves swap unlimited. Without swap accounting on the host (no
    /// memory.memsw.* / memory.swap.max) the swap part is skipped; see
    /// [`crate::LayoutSummary::swap_accounting`].
    pub fn set_memory_limit(&self, bytes: u64, swap_bytes: Option<u64>) -> Result<()> {
        if bytes == 0 {
            return Err(Error::InvalidValue {
                what: "memory limit",
                value: "0".into(),
                reason: "must be greater than zero".into(),
            });
        }
        match self.route(Controller::Memory)? {
            Version::V1 => v1::set_memory_limit(self.v1_dir("memory")?, bytes, swap_bytes),
            Version::V2 => v2::set_memory_limit(self.v2_dir(), bytes, swap_bytes),
        }
    }

    /// Remove memory (and swap) limits.
    pub fn clear_memory_limit(&self) -> Result<()> {
        match self.route(Controller::Memory)? {
            Version::V1 => v1::clear_memory_limit(self.v1_dir("memory")?),
            Version::V2 => v2::clear_memory_limit(self.v2_dir()),
        }
    }

    /// Bytes currently charged to the group.
    pub fn memory_current(&self) -> Result<u64> {
        match self.route(Controller::Memory)? {
            Version::V1 => v1::memory_current(self.v1_dir("memory")?),
            Version::V2 => v2::memory_current(self.v2_dir()),
        }
    }

    /// Peak usage (v2 needs Linux >= 5.19, else `None`).
    pub fn memory_peak(&self) -> Result<Option<u64>> {
        match self.route(Controller::Memory)? {
            Version::V1 => v1::memory_peak(self.v1_dir("memory")?),
            Version::V2 => v2::memory_peak(self.v2_dir()),
        }
    }

    /// Processes killed by the OOM killer in this group.
    pub fn oom_kill_count(&self) -> Result<u64> {
        match self.route(Controller::Memory)? {
            Version::V1 => v1::oom_kill_count(self.v1_dir("memory")?),
            Version::V2 => v2::oom_kill_count(self.v2_dir()),
        }
    }

    /// Times the memory limit was hit: v1 memory.failcnt (stays 0 when a
    /// memsw limit is what actually fails), v2 memory.events `max`.
    pub fn failcnt(&self) -> Result<Option<u64>> {
        match self.route(Controller::Memory)? {
            Version::V1 => v1::failcnt(self.v1_dir("memory")?),
            Version::V2 => v2::failcnt(self.v2_dir()),
        }
    }

    /// The pids files have the same names and formats in v1 and v2.
    fn pids_dir(&self) -> Result<&Path> {
        match self.route(Controller::Pids)? {
            Version::V1 => self.v1_dir("pids"),
            Version::V2 => Ok(self.v2_dir()),
        }
    }

    /// Allow at most `n` tasks (threads count too) in the group.
    pub fn set_pids_max(&self, n: u64) -> Result<()> {
        // PIDS_MAX in the kernel is PID_MAX_LIMIT + 1 (4194304 + 1).
        if n > 4_194_304 {
            return Err(Error::InvalidValue {
                what: "pids.max",
                value: n.to_string(),
                reason: "must be at most 4194304".into(),
            });
        }
        fsio::write(&self.pids_dir()?.join(PIDS_MAX), &n.to_string())
    }

    /// Remove the task limit.
    pub fn clear_pids_max(&self) -> Result<()> {
        fsio::write(&self.pids_dir()?.join(PIDS_MAX), "max")
    }

    /// Current limit; `None` = unlimited.
    pub fn pids_max(&self) -> Result<Option<u64>> {
        fsio::read_max_or_u64(&self.pids_dir()?.join(PIDS_MAX))
    }

    /// Number of tasks in the group.
    pub fn pids_current(&self) -> Result<u64> {
        fsio::read_u64(&self.pids_dir()?.join(PIDS_CURRENT))
    }

    /// Forks refused because of pids.max (pids.events `max`).
    pub fn pids_max_events(&self) -> Result<u64> {
        fsio::flat_key(&self.pids_dir()?.join(PIDS_EVENTS), "max")
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
        let mut out = Vec::new();
        let mut add = |dir: &Path, name: &str, meaning: &str, optional: bool| {
            let path = dir.join(name);
            if optional && !path.exists() {
                return;
            }
            out.push(WatchedFile {
                path,
                label: name.to_string(),
                meaning: meaning.to_string(),
            });
        };
        let route = |c| self.version_of(c);
        match resource {
            Resource::CpuQuota => match route(Controller::Cpu) {
                Some(Version::V1) => {
                    if let Ok(d) = self.v1_dir("cpu") {
                        add(
                            d,
                            V1_CPU_CFS_QUOTA_US,
                            "CPU time allowed per period, µs (-1 = unlimited)",
                            false,
                        );
                        add(
                            d,
                            V1_CPU_CFS_PERIOD_US,
                            "length of the accounting period, µs",
                            false,
                        );
                    }
                }
                Some(Version::V2) => add(
                    self.v2_dir(),
                    V2_CPU_MAX,
                    "\"quota period\" in µs (max = unlimited)",
                    false,
                ),
                None => {}
            },
            Resource::CpuStat => match route(Controller::Cpu) {
                Some(Version::V1) => {
                    if let Ok(d) = self.v1_dir("cpu") {
                        add(
                            d,
                            V1_CPU_STAT,
                            "periods, periods throttled, total throttled time (ns)",
                            false,
                        );
                    }
                    if let Ok(d) = self.v1_dir("cpuacct") {
                        add(d, V1_CPUACCT_USAGE, "total CPU time used, ns", false);
                    }
                }
                Some(Version::V2) => add(
                    self.v2_dir(),
                    V2_CPU_STAT,
                    "CPU time used and throttling counters, µs",
                    false,
                ),
                None => {}
            },
            Resource::CpuWeight => match route(Controller::Cpu) {
                Some(Version::V1) => {
                    if let Ok(d) = self.v1_dir("cpu") {
                        add(
                            d,
                            V1_CPU_SHARES,
                            "relative CPU weight when CPUs are contended (default 1024)",
                            false,
                        );
                    }
                }
                Some(Version::V2) => add(
                    self.v2_dir(),
                    V2_CPU_WEIGHT,
                    "relative CPU weight when CPUs are contended (default 100)",
                    false,
                ),
                None => {}
            },
            Resource::Memory => match route(Controller::Memory) {
                Some(Version::V1) => {
                    if let Ok(d) = self.v1_dir("memory") {
                        add(d, V1_MEMORY_LIMIT, "hard memory limit, bytes", false);
                        add(d, V1_MEMORY_MEMSW_LIMIT, "memory+swap limit, bytes", true);
                        add(d, V1_MEMORY_USAGE, "memory charged now, bytes", false);
                        add(d, V1_MEMORY_MAX_USAGE, "peak memory charged, bytes", false);
                        add(
                            d,
                            V1_MEMORY_FAILCNT,
                            "times the memory limit was hit",
                            false,
                        );
                    }
                }
                Some(Version::V2) => {
                    let d = self.v2_dir();
                    add(
                        d,
                        V2_MEMORY_MAX,
                        "hard memory limit, bytes (max = unlimited)",
                        false,
                    );
                    add(
                        d,
                        V2_MEMORY_SWAP_MAX,
                        "swap limit, bytes (max = unlimited)",
                        true,
                    );
                    add(d, V2_MEMORY_CURRENT, "memory charged now, bytes", false);
                    add(d, V2_MEMORY_PEAK, "peak memory charged, bytes", true);
                }
                None => {}
            },
            Resource::MemoryEvents => match route(Controller::Memory) {
                Some(Version::V1) => {
                    if let Ok(d) = self.v1_dir("memory") {
                        add(
                            d,
                            V1_MEMORY_OOM_CONTROL,
                            "OOM killer state; oom_kill = processes killed",
                            false,
                        );
                    }
                }
                Some(Version::V2) => add(
                    self.v2_dir(),
                    V2_MEMORY_EVENTS,
                    "limit hits (max) and OOM kills (oom_kill)",
                    false,
                ),
                None => {}
            },
            Resource::Pids => {
                if let Ok(d) = self.pids_dir() {
                    add(d, PIDS_MAX, "most tasks allowed (max = unlimited)", false);
                    add(d, PIDS_CURRENT, "tasks in the group now", false);
                    add(d, PIDS_EVENTS, "forks refused by pids.max", false);
                }
            }
            Resource::Procs => {
                if let Some(d) = self.paths().into_iter().next() {
                    add(
                        &d,
                        CGROUP_PROCS,
                        "processes in the group, one pid per line",
                        false,
                    );
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

fn validate_quota(quota_us: u64, period_us: u64) -> Result<()> {
    if !(1_000..=1_000_000).contains(&period_us) {
        return Err(Error::InvalidValue {
            what: "cpu period",
            value: format!("{period_us}µs"),
            reason: "must be 1000..=1000000 µs (1 ms to 1 s)".into(),
        });
    }
    if quota_us < 1_000 {
        return Err(Error::InvalidValue {
            what: "cpu quota",
            value: format!("{quota_us}µs"),
            reason: "must be at least 1000 µs (use clear_cpu_quota for unlimited)".into(),
        });
    }
    Ok(())
}

/// `dir` and all sub-directories below it, parents before children.
fn collect_tree(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
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
fn kill_dirs(dirs: &[PathBuf]) -> Result<()> {
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
fn remove_tree(dir: &Path) -> Result<()> {
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
        use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
        let st = statfs(path).map_err(|errno| Error::Sys {
            syscall: "statfs",
            target: path.display().to_string(),
            errno,
        })?;
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
    fn names() {
        for ok in ["a", "demo-1", "x.y_z", "wbtest-1234abcd", &"a".repeat(64)] {
            validate_name(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "ü",
            "x\n",
            &"a".repeat(65),
            "a:b",
            "*",
        ] {
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
                matches!(
                    check_owned_path(root, Path::new(bad)),
                    Err(Error::Refused { .. })
                ),
                "{bad} accepted"
            );
        }
    }
}
