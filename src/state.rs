//! The record of everything a run creates, so nothing outlives it.
//!
//! Before (or atomically with) creating any host object — a directory, a
//! mount, a process, a cgroup, a link — workbench writes it into a state file
//! under `/run/workbench/runs/`. A normal end, an error, Ctrl-C and SIGTERM
//! all tear the recorded objects down in reverse order; after a SIGKILL,
//! `workbench cleanup` finds the state file of the dead run and does the same.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::hostobj::{sysctl, PREFIX};
use crate::kernel::proc::{is_same_process, self_pid, start_time};

/// Where state files and working directories live (override for tests with `WORKBENCH_RUN_DIR`).
pub fn run_root() -> PathBuf {
    std::env::var_os("WORKBENCH_RUN_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/run/workbench"))
}

fn runs_dir() -> PathBuf {
    run_root().join("runs")
}

/// The second place for working directories, on the root filesystem.
pub const VAR_TMP_DIR: &str = "/var/lib/workbench/tmp";

/// Parent of the per-run working directories. Lessons build root filesystems
/// there, execute their binaries after chroot(2) and open their `/dev/null`,
/// which a filesystem mounted `nodev` or `noexec` refuses with EACCES — and
/// most hosts mount `/run` `nodev` (systemd), often `noexec` too
/// (initramfs-tools). So: `<run root>/tmp` if its filesystem allows both,
/// else `/var/lib/workbench/tmp` if that one does, else `<run root>/tmp` with a
/// tmpfs per run (see [`begin`]). `WORKBENCH_RUN_DIR` pins `<run root>/tmp`.
pub fn tmp_dir() -> PathBuf {
    let run_tmp = run_root().join("tmp");
    if std::env::var_os("WORKBENCH_RUN_DIR").is_some() {
        return run_tmp;
    }
    choose_tmp_dir(&[run_tmp, PathBuf::from(VAR_TMP_DIR)], |d| fs_restricted(&nearest_existing(d)))
}

/// The first candidate that is not restricted; the first one if all are.
pub fn choose_tmp_dir(candidates: &[PathBuf], restricted: impl Fn(&Path) -> bool) -> PathBuf {
    candidates.iter().find(|c| !restricted(c)).unwrap_or(&candidates[0]).clone()
}

/// `dir` or its closest existing ancestor.
fn nearest_existing(dir: &Path) -> PathBuf {
    dir.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/")).to_path_buf()
}

/// Is the filesystem of `dir` mounted `nodev` or `noexec`?
pub fn fs_restricted(dir: &Path) -> bool {
    use nix::sys::statvfs::{statvfs, FsFlags};
    statvfs(dir).is_ok_and(|st| st.flags().intersects(FsFlags::ST_NODEV | FsFlags::ST_NOEXEC))
}

/// A host object created by a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    /// A directory under the run root, removed recursively (after unmounting anything below it).
    Dir { path: PathBuf },
    /// A mount in the host's mount namespace.
    Mount { target: PathBuf },
    /// A process we started (PID plus start time, so a reused PID is never killed).
    Process { pid: i32, start_time: u64 },
    /// A cgroup directory under a workbench-owned parent.
    Cgroup { path: PathBuf },
    /// A network link (veth or bridge) in the host's network namespace.
    Link { name: String },
    /// A named network namespace (`/run/netns/NAME`).
    Netns { name: String },
    /// An nftables table of our own (`nft delete table FAMILY NAME` removes it with all its rules).
    NftTable { family: String, name: String },
    /// An iptables rule tagged with a `wb…` comment, deleted by its exact specification.
    IptablesRule { table: String, chain: String, spec: Vec<String> },
    /// A built-in chain (and maybe its table) that iptables-nft created in nft
    /// for our rules; deleted once no rule is left in it.
    XtablesChain { table: String, chain: String, drop_table: bool },
    /// A kernel parameter (`/proc/sys/KEY`) we changed: its old value, and the
    /// old values of the keys the kernel changed along with it, put back in that order.
    Sysctl {
        key: String,
        previous: String,
        #[serde(default)]
        side_effects: Vec<(String, String)>,
    },
    /// A lab subnet this run holds, so concurrent runs pick different ones
    /// (see [`reserve`]). Nothing on the host to remove: the reservation
    /// ends with the run's state file, or when its owner dies.
    Subnet { cidr: String },
    /// A host TCP port this run maps into its container (nat-port-map), so
    /// concurrent runs map different ones: like a subnet, a reservation only.
    HostPort { port: u16 },
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Dir { path } => write!(f, "directory {}", path.display()),
            Resource::Mount { target } => write!(f, "mount {}", target.display()),
            Resource::Process { pid, .. } => write!(f, "process {pid}"),
            Resource::Cgroup { path } => write!(f, "cgroup {}", path.display()),
            Resource::Link { name } => write!(f, "link {name}"),
            Resource::Netns { name } => write!(f, "netns {name}"),
            Resource::NftTable { family, name } => write!(f, "nft table {family} {name}"),
            Resource::IptablesRule { table, chain, spec } => write!(f, "iptables -t {table} {chain} {}", spec.join(" ")),
            Resource::XtablesChain { table, chain, .. } => write!(f, "nft chain ip {table} {chain} (made by iptables-nft)"),
            Resource::Sysctl { key, previous, .. } => write!(f, "sysctl {} (back to {previous})", sysctl::dotted(key)),
            Resource::Subnet { cidr } => write!(f, "subnet reservation {cidr}"),
            Resource::HostPort { port } => write!(f, "host port reservation {port}"),
        }
    }
}

impl From<crate::hostobj::firewall::Object> for Resource {
    fn from(o: crate::hostobj::firewall::Object) -> Resource {
        use crate::hostobj::firewall::Object;
        match o {
            Object::NftTable { family, name } => Resource::NftTable { family, name },
            Object::IptablesRule { table, chain, spec } => Resource::IptablesRule { table, chain, spec },
            Object::XtablesChain { table, chain, drop_table } => Resource::XtablesChain { table, chain, drop_table },
        }
    }
}

/// The state file of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub run_id: String,
    pub lesson: String,
    pub owner_pid: i32,
    pub owner_start: u64,
    pub resources: Vec<Resource>,
}

impl RunState {
    fn path(&self) -> PathBuf {
        runs_dir().join(format!("{}.json", self.run_id))
    }

    fn persist(&self) -> std::io::Result<()> {
        let path = self.path();
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("state serialises"))?;
        std::fs::rename(&tmp, &path)
    }

    /// Is the process that owns this run still alive?
    pub fn owner_alive(&self) -> bool {
        is_same_process(self.owner_pid, self.owner_start)
    }
}

static CURRENT: Mutex<Option<RunState>> = Mutex::new(None);

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("no run in progress")]
    NoRun,
    #[error("refusing to remove {0}: it is not under {1}")]
    Outside(String, String),
}

fn ioerr(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io { what, path, source }
}

fn create_private_dir(path: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(ioerr("mkdir", path)(e)),
    }
}

/// A short random id: 6 hex digits from the kernel's random pool.
pub fn random_id() -> String {
    use std::io::Read;
    let mut b = [0u8; 3];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b = [(t.subsec_nanos() >> 8) as u8, (t.subsec_nanos() >> 16) as u8, self_pid() as u8];
    }
    format!("{:02x}{:02x}{:02x}", b[0], b[1], b[2])
}

/// Start a run: write its state file and create its private working directory.
pub fn begin(lesson: &str) -> Result<Run, StateError> {
    let run = begin_bare(lesson)?;
    make_workdir(&run)?;
    Ok(run)
}

/// Start a run without creating its working directory yet (`Run::workdir`
/// names it; [`make_workdir`] creates it). `workbench run` only needs one for
/// images and overlays, and on hosts where /run is not a tmpfs every
/// directory costs real time. The state file itself is written by the first
/// [`record`]/[`track`]: until then the run has created nothing to clean up.
pub fn begin_bare(lesson: &str) -> Result<Run, StateError> {
    let root = run_root();
    create_private_dir(&root)?;
    create_private_dir(&runs_dir())?;
    let tmp = tmp_dir();
    if let Some(parent) = tmp.parent() {
        std::fs::create_dir_all(parent).map_err(ioerr("mkdir", parent))?;
    }
    create_private_dir(&tmp)?;
    let me = self_pid();
    let mut guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let run_id = random_id();
    let state = RunState { run_id: run_id.clone(), lesson: lesson.to_string(), owner_pid: me, owner_start: start_time(me).unwrap_or(0), resources: vec![] };
    *guard = Some(state);
    drop(guard);
    let workdir = tmp.join(format!("{PREFIX}-{run_id}-{lesson}"));
    Ok(Run { run_id, workdir })
}

/// Create the run's working directory: a random name, mode 0700, recorded before it exists.
pub fn make_workdir(run: &Run) -> Result<(), StateError> {
    record(Resource::Dir { path: run.workdir.clone() })?;
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(&run.workdir).map_err(ioerr("mkdir", &run.workdir))?;
    // No unrestricted place (see tmp_dir): the run's own tmpfs. It is a host
    // mount for the length of the run, which concurrent runs comparing the
    // host's mount table would notice; hence the last resort.
    if fs_restricted(&run.workdir) {
        record(Resource::Mount { target: run.workdir.clone() })?;
        mount_workdir_tmpfs(&run.workdir)?;
    }
    Ok(())
}

/// `mount -t tmpfs -o mode=0700,nosuid wb-workdir DIR` then `mount --make-private DIR`,
/// so mounts below it never propagate to the host's other mount namespaces.
fn mount_workdir_tmpfs(dir: &Path) -> Result<(), StateError> {
    use nix::mount::{mount, MsFlags};
    let err = |e: nix::Error| StateError::Io { what: "mount tmpfs on", path: dir.to_path_buf(), source: std::io::Error::from(e) };
    mount(Some("wb-workdir"), dir, Some("tmpfs"), MsFlags::MS_NOSUID, Some("mode=0700")).map_err(err)?;
    mount(None::<&str>, dir, None::<&str>, MsFlags::MS_PRIVATE, None::<&str>).map_err(err)
}

/// What a lesson gets from [`begin`].
#[derive(Debug, Clone)]
pub struct Run {
    pub run_id: String,
    pub workdir: PathBuf,
}

/// Record a resource (before creating it, when its name is known in advance).
pub fn record(r: Resource) -> Result<(), StateError> {
    let mut guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let state = guard.as_mut().ok_or(StateError::NoRun)?;
    state.resources.push(r);
    state.persist().map_err(ioerr("write", &state.path()))
}

/// Create something and record it while holding the state lock, so a signal
/// arriving in between cannot tear down a half-recorded run.
pub fn track<T, E: From<StateError>>(create: impl FnOnce() -> Result<(T, Resource), E>) -> Result<T, E> {
    let mut guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    // No run (e.g. a signal's teardown just ended it): create nothing that could not be recorded.
    let state = guard.as_mut().ok_or(StateError::NoRun)?;
    let (value, r) = create()?;
    state.resources.push(r);
    state.persist().map_err(|e| StateError::Io { what: "write", path: state.path(), source: e })?;
    Ok(value)
}

/// Record several resources, then create them, all under the state lock: the
/// state file names them before they exist, and a signal cannot tear the run
/// down while they are half made. If `create` fails the records stay (removing
/// something that does not exist is not an error).
pub fn record_and_create<T, E: From<StateError>>(resources: Vec<Resource>, create: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let mut guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let state = guard.as_mut().ok_or(StateError::NoRun)?;
    state.resources.extend(resources);
    state.persist().map_err(|e| StateError::Io { what: "write", path: state.path(), source: e })?;
    create()
}

/// The state files of live runs owned by other processes than this one
/// (unreadable or half-written files are skipped: they hold nothing yet).
/// Reads no state of this process, so it is safe while a teardown runs.
pub fn other_live_runs() -> Vec<RunState> {
    let me = self_pid();
    let Ok(entries) = std::fs::read_dir(runs_dir()) else { return vec![] };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| serde_json::from_str::<RunState>(&std::fs::read_to_string(p).ok()?).ok())
        .filter(|s| s.owner_pid != me && s.owner_alive())
        .collect()
}

/// Run `f` holding an exclusive host-wide lock (`flock` on
/// `/run/workbench/NAME.lock`), so concurrent runs choose or change shared
/// things — a free subnet, a global sysctl — one at a time.
pub fn reserve<T>(name: &str, f: impl FnOnce() -> T) -> Result<T, StateError> {
    locked(name, None, f)
}

/// Like [`reserve`], but wait at most `patience` for the lock and then run
/// `f` anyway: for teardown, which must not hang (a signal can arrive while
/// this very process holds the lock).
pub fn reserve_or_go<T>(name: &str, patience: std::time::Duration, f: impl FnOnce() -> T) -> T {
    match locked(name, Some(std::time::Instant::now() + patience), f) {
        Ok(v) => v,
        Err(_) => unreachable!("locked runs f when the lock cannot be had before the deadline"),
    }
}

fn locked<T>(name: &str, deadline: Option<std::time::Instant>, f: impl FnOnce() -> T) -> Result<T, StateError> {
    use std::os::fd::AsRawFd;
    let root = run_root();
    let path = root.join(format!("{name}.lock"));
    let file = create_private_dir(&root).and_then(|()| std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(ioerr("open", &path)));
    let file = match (file, deadline) {
        (Ok(f), _) => f,
        (Err(_), Some(_)) => return Ok(f()),
        (Err(e), None) => return Err(e),
    };
    let op = if deadline.is_some() { libc::LOCK_EX | libc::LOCK_NB } else { libc::LOCK_EX };
    loop {
        // SAFETY: flock on a descriptor we own; it is released when `file` closes.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        match (e.raw_os_error(), deadline) {
            (Some(libc::EINTR), _) => continue,
            (Some(libc::EWOULDBLOCK), Some(d)) if std::time::Instant::now() < d => std::thread::sleep(std::time::Duration::from_millis(10)),
            (_, Some(_)) => return Ok(f()),
            (_, None) => return Err(ioerr("flock", &path)(e)),
        }
    }
    let out = f();
    drop(file);
    Ok(out)
}

/// Remove one resource now (the lesson is done with it) and forget it.
pub fn release(r: &Resource) -> Result<(), String> {
    let mut guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    remove(r)?;
    if let Some(state) = guard.as_mut() {
        state.resources.retain(|x| x != r);
        let _ = state.persist();
    }
    Ok(())
}

/// Forget a resource that went away by itself (e.g. a child that exited).
pub fn forget(r: &Resource) {
    let mut guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(state) = guard.as_mut() {
        state.resources.retain(|x| x != r);
        let _ = state.persist();
    }
}

/// End the current run: remove everything it recorded, newest first, and its state file.
/// Returns the problems met (empty when all went well). Safe to call twice.
pub fn finish() -> Vec<String> {
    let mut guard = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    let Some(state) = guard.take() else { return vec![] };
    let problems = teardown(&state);
    if problems.is_empty() {
        let _ = std::fs::remove_file(state.path());
    }
    problems
}

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

/// What `workbench cleanup` did.
#[derive(Debug, Default, Serialize)]
pub struct CleanupReport {
    pub runs_cleaned: Vec<RunRef>,
    /// Runs whose owner still runs: left alone.
    pub runs_alive: Vec<RunRef>,
    pub removed: Vec<Removed>,
    pub problems: Vec<String>,
}

/// A run `workbench cleanup` found.
#[derive(Debug, Clone, Serialize)]
pub struct RunRef {
    pub run_id: String,
    pub lesson: String,
    pub owner_pid: i32,
}

/// A resource `workbench cleanup` removed, and the run that left it.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub run_id: String,
    pub resource: String,
}

/// Remove what runs whose owner is dead left behind.
pub fn cleanup_leftovers() -> Result<CleanupReport, StateError> {
    let mut report = CleanupReport::default();
    let dir = runs_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(ioerr("read", &dir)(e)),
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json" || x == "tmp")).collect();
    files.sort();
    for path in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // A live run renamed its new state over the old one, or finished,
            // between the listing and this read: nothing left to clean.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                report.problems.push(format!("read {}: {e}", path.display()));
                continue;
            }
        };
        let state: RunState = match serde_json::from_str(&text) {
            Ok(s) => s,
            Err(_) if path.extension().is_some_and(|x| x == "tmp") => {
                // Half written: a killed run's leftover, or a live run writing
                // it right now (leave that one alone: its state file names a
                // live owner, or, on its first write, it has none yet but is fresh).
                let fresh = std::fs::metadata(&path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_none_or(|age| age < std::time::Duration::from_secs(10));
                let live = fresh || path
                    .file_stem()
                    .and_then(|stem| std::fs::read_to_string(dir.join(stem)).ok())
                    .and_then(|t| serde_json::from_str::<RunState>(&t).ok())
                    .is_some_and(|s| s.owner_alive());
                if !live {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            Err(e) => {
                report.problems.push(format!("parse {}: {e}", path.display()));
                continue;
            }
        };
        let run = RunRef { run_id: state.run_id.clone(), lesson: state.lesson.clone(), owner_pid: state.owner_pid };
        if state.owner_alive() {
            report.runs_alive.push(run);
            continue;
        }
        let problems = teardown(&state);
        report.removed.extend(state.resources.iter().rev().map(|r| Removed { run_id: state.run_id.clone(), resource: r.to_string() }));
        if problems.is_empty() {
            let _ = std::fs::remove_file(&path);
            report.runs_cleaned.push(run);
        } else {
            report.problems.extend(problems);
        }
    }
    Ok(report)
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
    let inside = p.starts_with(&root) || p.starts_with(VAR_TMP_DIR);
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
        Resource::IptablesRule { table, chain, spec } => crate::hostobj::firewall::remove_iptables_rule(table, chain, spec),
        Resource::XtablesChain { table, chain, drop_table } => crate::hostobj::firewall::remove_xtables_chain(table, chain, *drop_table),
        Resource::Sysctl { key, previous, side_effects } => restore_sysctl_shared(key, previous, side_effects),
        Resource::Subnet { .. } | Resource::HostPort { .. } => Ok(()),
    }
}

/// The record another live run holds for `key` (it changed the key, or
/// holds it as we do), with the value from before any run changed it.
fn held_elsewhere(key: &str) -> Option<(String, Vec<(String, String)>)> {
    other_live_runs().into_iter().flat_map(|s| s.resources).find_map(|r| match r {
        Resource::Sysctl { key: k, previous, side_effects } if k == key => Some((previous, side_effects)),
        _ => None,
    })
}

/// Set kernel parameter `key` to `value`, recording the old value (and the old values of
/// `side_effects`) in the state file first. Returns the old value; when it
/// already equals `value` nothing is written or recorded — unless another
/// live run set it: then this run records that run's original value too, so
/// whichever run ends last puts the host back (a host-wide lock orders runs).
pub fn set_sysctl(key: &str, value: &str, side_effects: &[String]) -> anyhow::Result<String> {
    reserve("sysctl", || {
        let previous = sysctl::read(key)?;
        if let Some((original, saved)) = held_elsewhere(key) {
            record(Resource::Sysctl { key: key.to_string(), previous: original, side_effects: saved })?;
        } else if previous == value {
            return Ok(previous);
        } else {
            let mut saved = Vec::new();
            for k in side_effects {
                if let Ok(v) = sysctl::read(k) {
                    saved.push((k.clone(), v));
                }
            }
            record(Resource::Sysctl { key: key.to_string(), previous: previous.clone(), side_effects: saved })?;
        }
        if previous != value {
            sysctl::write(key, value)?;
        }
        Ok(previous)
    })?
}

/// Put a recorded key back unless another live run still holds it (that
/// run, ending later, restores it). The caller holds the `sysctl` lock
/// ([`teardown`] does). See [`sysctl::restore`].
fn restore_sysctl_shared(key: &str, previous: &str, side_effects: &[(String, String)]) -> Result<(), String> {
    if held_elsewhere(key).is_some() {
        return Ok(());
    }
    sysctl::restore(key, previous, side_effects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_json_is_tagged() {
        let r = Resource::Process { pid: 42, start_time: 7 };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"kind":"process","pid":42,"start_time":7}"#);
        let back: Resource = serde_json::from_str(r#"{"kind":"link","name":"wbbr0"}"#).unwrap();
        assert_eq!(back, Resource::Link { name: "wbbr0".into() });
        let r = Resource::Sysctl { key: "net/ipv4/ip_forward".into(), previous: "0".into(), side_effects: vec![("net/ipv4/conf/all/forwarding".into(), "0".into())] };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.starts_with(r#"{"kind":"sysctl","key":"net/ipv4/ip_forward""#), "{text}");
        assert_eq!(serde_json::from_str::<Resource>(&text).unwrap(), r);
        assert_eq!(r.to_string(), "sysctl net.ipv4.ip_forward (back to 0)");
        let back: Resource = serde_json::from_str(r#"{"kind":"nft_table","family":"ip","name":"wbab12cd"}"#).unwrap();
        assert_eq!(back.to_string(), "nft table ip wbab12cd");
    }

    #[test]
    fn random_ids_differ() {
        let a = random_id();
        let b = random_id();
        assert_eq!(a.len(), 6);
        assert_ne!(a, b);
    }

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

    #[test]
    fn working_directories_go_to_the_first_unrestricted_place() {
        let run = PathBuf::from("/run/workbench/tmp");
        let var = PathBuf::from(VAR_TMP_DIR);
        let both = [run.clone(), var.clone()];
        assert_eq!(choose_tmp_dir(&both, |_| false), run);
        assert_eq!(choose_tmp_dir(&both, |d| d.starts_with("/run")), var);
        // Nowhere unrestricted: the first place, where the run mounts its own tmpfs.
        assert_eq!(choose_tmp_dir(&both, |_| true), run);
    }

    #[test]
    fn the_closest_existing_ancestor_is_probed() {
        assert_eq!(nearest_existing(Path::new("/proc/self/no/such/dir")), PathBuf::from("/proc/self"));
        assert_eq!(nearest_existing(Path::new("/")), PathBuf::from("/"));
    }
}
