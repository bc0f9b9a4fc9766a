//! oci-runtime: an OCI bundle run by runc and crun through the lifecycle the
//! runtime spec defines, and by workbench's own runtime.
//!
//! The OCI runtime spec reduces a container to a directory (a `config.json`
//! and a root filesystem) and five operations: create, state, start, kill,
//! delete. `create` builds the namespaces and cgroups and leaves the
//! container's first process blocked on a FIFO in the runtime's state
//! directory; `start` opens the FIFO and the process execs the program.

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use oci_spec::runtime::{
    LinuxBuilder, LinuxDeviceCgroupBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxResourcesBuilder,
    ProcessBuilder, RootBuilder, Spec,
};
use rootfs_builder::build::{build_rootfs, RootfsSpec};

use crate::host::Host;
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};
use crate::observe::{Capture, Snapshot};
use crate::run::bundle::NAMESPACES;
use crate::state::{self, Resource};

pub const DEF: LessonDef =
    LessonDef::of::<OciRuntime>(preflight).spots(&[("create", Spot::InGroups(2)), ("start", Spot::InGroups(2))]);

/// The two runtimes, in the order the lesson runs them.
pub const RUNTIMES: [&str; 2] = ["runc", "crun"];
/// The container's program: busybox's sleep, long enough for every step.
pub const ARGS: [&str; 2] = ["/bin/sleep", "1000"];
/// crun refuses a hybrid host (v1 controllers plus a cgroup2 mount): it is run
/// in a private mount namespace in which this mount is detached.
const UNIFIED: &str = "/sys/fs/cgroup/unified";

fn preflight(host: &Host, _opts: &LessonOptions) -> anyhow::Result<()> {
    host.require_root("runc and crun create namespaces and cgroups; the bundle's rootfs is owned by root")?;
    host.require_static_busybox()?;
    for rt in RUNTIMES {
        if crate::host::features::which(rt).is_none() {
            anyhow::bail!("{rt} is not installed: run scripts/setup --dev (or apt-get install runc crun)");
        }
    }
    if cgroup_roots(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()).is_empty() {
        anyhow::bail!("no cgroup filesystem under /sys/fs/cgroup: mount the cgroup filesystems (systemd does)");
    }
    Ok(())
}

/// The container id of a runtime in this run: `wb-<run>-<runtime>`.
pub fn container_id(run_id: &str, runtime: &str) -> String {
    format!("wb-{run_id}-{runtime}")
}

/// The bundle's `config.json`: `runc spec`'s defaults (as the oci-spec crate
/// has them) with the lesson's process, root, hostname, the five namespaces
/// workbench run creates too, and a cgroup under workbench's own parent.
pub fn bundle_config(hostname: &str, cgroups_path: &str) -> anyhow::Result<Spec> {
    let mut spec = Spec::default();
    let process = ProcessBuilder::default()
        .terminal(false)
        .args(ARGS.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .env(vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".to_string(), "TERM=xterm".to_string()])
        .cwd("/")
        .no_new_privileges(true)
        .build()?;
    let namespaces: Vec<LinuxNamespace> = NAMESPACES
        .iter()
        .map(|t| LinuxNamespaceBuilder::default().typ(*t).build())
        .collect::<Result<_, _>>()?;
    // As `runc spec`: every device denied, the runtime adds the standard ones.
    let deny_all = LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build()?;
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(cgroups_path))
        .resources(LinuxResourcesBuilder::default().devices(vec![deny_all]).build()?)
        .masked_paths(spec.linux().as_ref().and_then(|l| l.masked_paths().clone()).unwrap_or_default())
        .readonly_paths(spec.linux().as_ref().and_then(|l| l.readonly_paths().clone()).unwrap_or_default())
        .build()?;
    spec.set_process(Some(process));
    spec.set_root(Some(RootBuilder::default().path("rootfs").readonly(true).build()?));
    spec.set_hostname(Some(hostname.to_string()));
    spec.set_annotations(None);
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// A few fields of a config, flattened for a side-by-side table.
pub fn key_fields(spec: &Spec) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let p = spec.process().as_ref();
    f.insert("ociVersion".into(), spec.version().clone());
    f.insert("process.args".into(), p.and_then(|p| p.args().clone()).unwrap_or_default().join(" "));
    f.insert("process.terminal".into(), p.and_then(|p| p.terminal()).unwrap_or(false).to_string());
    f.insert("process.cwd".into(), p.map(|p| p.cwd().display().to_string()).unwrap_or_default());
    f.insert(
        "root".into(),
        spec.root()
            .as_ref()
            .map(|r| format!("{} (readonly {})", r.path().display(), r.readonly().unwrap_or(false)))
            .unwrap_or_default(),
    );
    f.insert("hostname".into(), spec.hostname().clone().unwrap_or_default());
    let mounts: Vec<String> =
        spec.mounts().iter().flatten().map(|m| m.destination().display().to_string()).collect();
    f.insert("mounts".into(), format!("{}: {} …", mounts.len(), mounts.iter().take(3).cloned().collect::<Vec<_>>().join(" ")));
    let linux = spec.linux().as_ref();
    let ns: Vec<String> = linux
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .iter()
        .map(|n| n.typ().to_string())
        .collect();
    f.insert("linux.namespaces".into(), ns.join(" "));
    f.insert(
        "linux.cgroupsPath".into(),
        linux.and_then(|l| l.cgroups_path().clone()).map(|p| p.display().to_string()).unwrap_or("(none)".into()),
    );
    f
}

/// The cgroup hierarchy roots mounted under /sys/fs/cgroup (v1 controllers,
/// name=systemd, the unified cgroup2 mount; or the one cgroup2 root on v2).
pub fn cgroup_roots(mountinfo: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let mount_point = pre.split_whitespace().nth(4)?;
            let fs_type = post.split_whitespace().next()?;
            let under = mount_point == "/sys/fs/cgroup" || mount_point.starts_with("/sys/fs/cgroup/");
            (under && (fs_type == "cgroup" || fs_type == "cgroup2")).then(|| PathBuf::from(mount_point))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Where a runtime may create the group `cgroupsPath` = `/workbench/<id>` (cgroupfs driver):
/// one directory per hierarchy, all recorded before the runtime runs.
pub fn group_paths(roots: &[PathBuf], id: &str) -> Vec<PathBuf> {
    roots.iter().map(|r| r.join("workbench").join(id)).collect()
}

/// `status` and `pid` of `RUNTIME state ID` (runc and crun print the same JSON).
pub fn parse_state(json: &str) -> anyhow::Result<(String, i32)> {
    let v: serde_json::Value = serde_json::from_str(json).context("parse the runtime's state JSON")?;
    let status = v["status"].as_str().context("no status in the state JSON")?.to_string();
    Ok((status, v["pid"].as_i64().unwrap_or(0) as i32))
}

/// The namespace table of the last step: one row per kind, one column per process.
pub fn ns_table(columns: &[(&str, &BTreeMap<String, u64>)]) -> String {
    let mut kinds: Vec<&String> = columns.iter().flat_map(|(_, m)| m.keys()).collect();
    kinds.sort();
    kinds.dedup();
    let mut out = format!("{:<17}", "kind");
    for (name, _) in columns {
        out.push_str(&format!(" {name:>12}"));
    }
    for k in kinds {
        out.push_str(&format!("\n{k:<17}"));
        for (_, m) in columns {
            out.push_str(&format!(" {:>12}", m.get(k).map(|i| i.to_string()).unwrap_or("-".into())));
        }
    }
    out
}

/// Kinds in `new` whose inodes are not all distinct from each other and from the host's.
pub fn not_separate(host: &BTreeMap<String, u64>, containers: &[&BTreeMap<String, u64>], new: &[&str]) -> Vec<String> {
    new.iter()
        .filter(|k| {
            let mut seen = vec![host.get(**k).copied()];
            containers.iter().any(|c| {
                let v = c.get(**k).copied();
                let dup = v.is_none() || seen.contains(&v);
                seen.push(v);
                dup
            })
        })
        .map(|k| k.to_string())
        .collect()
}

/// One runtime with the lesson's own state root and container id.
struct Runtime {
    name: &'static str,
    root: PathBuf,
    id: String,
    /// Run it in a private mount namespace without /sys/fs/cgroup/unified (crun on a hybrid host).
    hide_unified: bool,
    groups: Vec<PathBuf>,
    /// The `workbench/` parents of every hierarchy the runtime may use: it makes
    /// them (mkdir -p) even where it makes no group of ours, and removes none.
    parents: Vec<PathBuf>,
    pid: i32,
    start_time: u64,
}

impl Runtime {
    /// The command as the learner would type it (paths relative to the run's directory).
    fn shown(&self, base: &Path, args: &[&str]) -> String {
        let root = self.root.strip_prefix(base).unwrap_or(&self.root).display().to_string();
        let mut s = format!("{} --root {root}", self.name);
        if self.name == "crun" {
            s.push_str(" --cgroup-manager=cgroupfs");
        }
        for a in args {
            s.push(' ');
            s.push_str(a);
        }
        if self.hide_unified {
            format!("unshare -m sh -c 'umount {UNIFIED}; {s}'")
        } else {
            s
        }
    }

    /// Run one runtime command to completion, recorded in the state file while it runs.
    fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.run_to(args, None)
    }

    /// The same, with stdout and stderr into `log` instead of pipes: the
    /// container's process inherits them at create, and a pipe it holds would
    /// never reach end-of-file.
    fn run_to(&self, args: &[&str], log: Option<&Path>) -> anyhow::Result<Output> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(self.name);
        cmd.arg("--root").arg(&self.root);
        if self.name == "crun" {
            cmd.arg("--cgroup-manager=cgroupfs");
        }
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(log) = log {
            let f = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
            cmd.stdout(f.try_clone()?).stderr(f);
        }
        if self.hide_unified {
            // SAFETY: only async-signal-safe system calls on static strings between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::unshare(libc::CLONE_NEWNS) != 0
                        || libc::mount(
                            std::ptr::null(),
                            c"/".as_ptr(),
                            std::ptr::null(),
                            libc::MS_REC | libc::MS_PRIVATE,
                            std::ptr::null(),
                        ) != 0
                        || libc::umount2(c"/sys/fs/cgroup/unified".as_ptr(), libc::MNT_DETACH) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let what = format!("{} {}", self.name, args.first().copied().unwrap_or_default());
        let (child, res) = state::track(|| -> anyhow::Result<_> {
            let child = cmd.spawn().with_context(|| format!("run {what}"))?;
            let pid = child.id() as i32;
            let r = Resource::Process { pid, start_time: crate::kernel::proc::start_time(pid).unwrap_or(0) };
            Ok(((child, r.clone()), r))
        })?;
        let out = child.wait_with_output().with_context(|| format!("wait for {what}"));
        state::forget(&res);
        let mut out = out?;
        if let Some(log) = log {
            out.stderr = std::fs::read(log).unwrap_or_default();
        }
        Ok(out)
    }

    /// Run a command that must succeed; its stdout.
    fn must(&self, args: &[&str]) -> anyhow::Result<String> {
        self.must_to(args, None)
    }

    fn must_to(&self, args: &[&str], log: Option<&Path>) -> anyhow::Result<String> {
        let out = self.run_to(args, log)?;
        if !out.status.success() {
            anyhow::bail!(
                "{} {} failed ({}): {}",
                self.name,
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn state(&self) -> anyhow::Result<(String, i32)> {
        parse_state(&self.must(&["state", &self.id])?)
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join(&self.id)
    }

    /// `create`: the groups are recorded first, the container's first process after.
    fn create(&mut self, bundle: &Path) -> anyhow::Result<()> {
        for g in &self.groups {
            state::record(Resource::Cgroup { path: g.clone() })?;
        }
        let log = self.root.join(format!("{}.log", self.id));
        let bundle_arg = bundle.display().to_string();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.must_to(&["create", "--bundle", &bundle_arg, &self.id], Some(&log)) {
                // The runtime makes the workbench/ parent, then its group; another run
                // removing its own group may rmdir the empty parent in between (ENOENT).
                // Start over, as wb-cgroup's create does.
                Err(e) if attempt < 5 && is_parent_race(&e.to_string()) => {
                    let _ = self.run_to(&["delete", "--force", &self.id], None);
                }
                r => {
                    r?;
                    break;
                }
            }
        }
        // Every hierarchy was recorded, in case; keep the records of the groups the runtime made.
        let (made, not): (Vec<PathBuf>, Vec<PathBuf>) = self.groups.drain(..).partition(|g| g.is_dir());
        for g in not {
            state::forget(&Resource::Cgroup { path: g });
        }
        self.groups = made;
        let (_, pid) = self.state()?;
        let start_time = crate::kernel::proc::start_time(pid).context("the container's process vanished")?;
        state::record(Resource::Process { pid, start_time })?;
        self.pid = pid;
        self.start_time = start_time;
        Ok(())
    }

    /// Wait until `state` says `want` (the runtime notices a death asynchronously).
    fn wait_for(&self, want: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, _) = self.state()?;
            if status == want || Instant::now() > deadline {
                return Ok(status);
            }
            // Our descendant or not, reap it if it is a zombie of ours.
            let _ = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(self.pid),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Forget the (exited) process and remove what the runtime left of the groups: the `workbench` parents.
    fn release(&mut self) -> Vec<String> {
        if self.pid > 0 {
            state::forget(&Resource::Process { pid: self.pid, start_time: self.start_time });
        }
        self.pid = 0;
        let problems = self.groups.iter().filter_map(|g| state::release(&Resource::Cgroup { path: g.clone() }).err()).collect();
        for p in &self.parents {
            // rmdir(2) keeps a parent that still holds a group (another run's).
            let _ = std::fs::remove_dir(p);
        }
        problems
    }
}

/// A runtime's `create` failed because a cgroup parent vanished between its
/// mkdirs (another run removed it): worth another try.
fn is_parent_race(err: &str) -> bool {
    err.contains("cgroup") && err.contains("no such file or directory") && err.contains("/workbench/")
}

/// Facts about a container's process as the kernel shows them.
fn process_facts(pid: i32) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    for key in ["Name", "State", "PPid", "NSpid"] {
        let v = status.lines().find_map(|l| l.strip_prefix(&format!("{key}:"))).map(|v| v.trim().replace('\t', " "));
        f.insert(format!("/proc/PID/status {key}"), v.unwrap_or_else(|| "(no process)".into()));
    }
    f.insert("/proc/PID/exe".into(), exe(pid));
    f.insert("/proc/PID/cmdline".into(), cmdline(pid).join(" "));
    f
}

fn exe(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.display().to_string()).unwrap_or_else(|_| "(none)".into())
}

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| b.split(|c| *c == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect())
        .unwrap_or_default()
}

/// `ls -l` of the runtime's state directory for this container.
fn state_dir_facts(rt: &Runtime, base: &Path) -> (String, String) {
    let dir = rt.state_dir();
    let key = format!("{}/", dir.strip_prefix(base).unwrap_or(&dir).display());
    let value = match std::fs::read_dir(&dir) {
        Err(_) => "absent".into(),
        Ok(entries) => {
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| {
                    let fifo = e.file_type().map(|t| t.is_fifo()).unwrap_or(false);
                    format!("{}{}", e.file_name().to_string_lossy(), if fifo { " (fifo)" } else { "" })
                })
                .collect();
            names.sort();
            names.join(", ")
        }
    };
    (key, value)
}

fn is_fifo(p: &Path) -> bool {
    std::fs::symlink_metadata(p).map(|m| m.file_type().is_fifo()).unwrap_or(false)
}

#[derive(Default)]
struct OciRuntime {
    base: PathBuf,
    bundle: PathBuf,
    runtimes: Vec<Runtime>,
}

impl OciRuntime {
    fn snapshot(&self, label: &str) -> Snapshot {
        self.snapshot_of(label, true)
    }

    /// The state dirs and cgroups of each container, and its process unless `procs` is false.
    fn snapshot_of(&self, label: &str, procs: bool) -> Snapshot {
        let mut facts = BTreeMap::new();
        for rt in &self.runtimes {
            let (k, v) = state_dir_facts(rt, &self.base);
            facts.insert(format!("{}: {k}", rt.name), v);
            let groups = rt.groups.iter().filter(|g| g.is_dir()).count();
            facts.insert(format!("{}: cgroup dirs workbench/{}", rt.name, rt.id), groups.to_string());
            if procs && rt.pid > 0 {
                for (k, v) in process_facts(rt.pid) {
                    facts.insert(format!("{}: {k}", rt.name), v);
                }
            }
        }
        Snapshot { label: label.into(), facts, ..Default::default() }
    }

    fn say_state(&self, r: &mut StepReport) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for rt in &self.runtimes {
            let o = rt.run(&["state", &rt.id])?;
            let text = String::from_utf8_lossy(if o.status.success() { &o.stdout } else { &o.stderr }).trim().to_string();
            let status = parse_state(&text).map(|(s, _)| s).unwrap_or_else(|_| "(no container)".into());
            let shown: Vec<&str> = text.lines().filter(|l| l.contains("\"status\"") || l.contains("\"pid\"") || !text.starts_with('{')).collect();
            r.say("host", rt.shown(&self.base, &["state", &rt.id]), shown.join("\n"));
            out.push(status);
        }
        Ok(out)
    }
}

impl Lesson for OciRuntime {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        match step {
            "bundle" => {
                self.base = cx.workdir.clone();
                self.bundle = cx.workdir.join("bundle");
                let rootfs = self.bundle.join("rootfs");
                let config = self.bundle.join("config.json");
                let before = Snapshot {
                    label: "before".into(),
                    facts: [("bundle/config.json".to_string(), "absent".to_string()), ("bundle/rootfs/bin/busybox".to_string(), "absent".to_string())].into(),
                    ..Default::default()
                };
                let busybox = cx.host.require_static_busybox()?.to_path_buf();
                std::fs::create_dir(&self.bundle).context("mkdir bundle")?;
                let spec = RootfsSpec { busybox: busybox.clone(), copy_libraries: false, hostname: "wb-oci".into() };
                let built = build_rootfs(&spec, &rootfs).context("build the bundle's rootfs")?;
                r.say("host", format!("cd {}; rootfs-builder build --busybox {} bundle/rootfs", cx.workdir.display(), busybox.display()), format!("static busybox, {} applet links", built.applets.len()));
                let cg = format!("/workbench/{}", container_id(&cx.run_id, "RUNTIME"));
                let ours = bundle_config("wb-oci", &cg)?;
                ours.save(&config).context("write bundle/config.json")?;
                // What `runc spec` writes, for comparison.
                let reference = cx.workdir.join("runc-spec");
                std::fs::create_dir(&reference).context("mkdir runc-spec")?;
                let out = Command::new("runc").args(["spec", "--bundle"]).arg(&reference).stdin(Stdio::null()).output().context("run runc spec")?;
                anyhow::ensure!(out.status.success(), "runc spec failed: {}", String::from_utf8_lossy(&out.stderr).trim());
                let theirs = Spec::load(reference.join("config.json")).context("read runc spec's config.json")?;
                let (a, b) = (key_fields(&ours), key_fields(&theirs));
                let mut table = format!("{:<18} {:<48} runc spec", "field", "bundle/config.json");
                for (k, v) in &a {
                    table.push_str(&format!("\n{k:<18} {v:<48} {}", b.get(k).map(String::as_str).unwrap_or("")));
                }
                r.say("host", "runc spec --bundle runc-spec   # the default, beside ours", table);
                let back = Spec::load(&config).context("read bundle/config.json back")?;
                let read = crate::run::bundle::check(&back, &self.bundle).map_err(|e| anyhow::anyhow!("{e}"));
                let after = Snapshot {
                    label: "after".into(),
                    facts: [
                        ("bundle/config.json".to_string(), format!("{} bytes", std::fs::metadata(&config).map(|m| m.len()).unwrap_or(0))),
                        ("bundle/rootfs/bin/busybox".to_string(), if rootfs.join("bin/busybox").is_file() { "present".into() } else { "absent".into() }),
                    ]
                    .into(),
                    ..Default::default()
                };
                r.observe(before, after);
                r.check_eq("config.json read back equals what was written", true, back == ours);
                r.check_eq("process.args", ARGS.join(" "), key_fields(&back)["process.args"].clone());
                r.check("cgroupsPath under workbench's own parent", "/workbench/…", key_fields(&back)["linux.cgroupsPath"].clone(), key_fields(&back)["linux.cgroupsPath"].starts_with("/workbench/wb-"));
                r.check("workbench run --bundle accepts it", "accepted", read.as_ref().map(|_| "accepted".to_string()).unwrap_or_else(|e| e.to_string()), read.is_ok());
                r.check_eq("the rootfs holds the program", true, rootfs.join("bin/sleep").exists());
                // The containers, one per runtime, each with its own state root.
                let roots = cgroup_roots(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
                let hybrid = Path::new(UNIFIED).is_dir() && roots.iter().any(|p| p == Path::new(UNIFIED));
                for name in RUNTIMES {
                    let id = container_id(&cx.run_id, name);
                    let root = cx.workdir.join("state").join(name);
                    std::fs::create_dir_all(&root).with_context(|| format!("mkdir {}", root.display()))?;
                    let hide_unified = name == "crun" && hybrid;
                    let groups = group_paths(&roots, &id);
                    let mut parents: Vec<PathBuf> = groups.iter().filter_map(|g| g.parent().map(Path::to_path_buf)).collect();
                    parents.dedup();
                    self.runtimes.push(Runtime { name, root, id, hide_unified, groups, parents, pid: 0, start_time: 0 });
                }
            }
            "create" => {
                let before = self.snapshot("before create");
                for i in 0..self.runtimes.len() {
                    // Each runtime gets the bundle with its own cgroupsPath.
                    let rt = &self.runtimes[i];
                    let mut spec = Spec::load(self.bundle.join("config.json"))?;
                    if let Some(l) = spec.linux_mut() {
                        l.set_cgroups_path(Some(PathBuf::from(format!("/workbench/{}", rt.id))));
                    }
                    spec.save(self.bundle.join("config.json"))?;
                    let shown = rt.shown(&self.base, &["create", "--bundle", "bundle", &rt.id]);
                    self.runtimes[i].create(&self.bundle)?;
                    let rt = &self.runtimes[i];
                    r.say("host", shown, "");
                    let pid = rt.pid;
                    r.say("host", format!("cat /proc/{pid}/cmdline; readlink /proc/{pid}/exe; grep State /proc/{pid}/status"), format!("{}\n{}\n{}", cmdline(pid).join(" "), exe(pid), process_facts(pid)["/proc/PID/status State"]));
                }
                let statuses = self.say_state(r)?;
                let after = self.snapshot("after create");
                r.observe(before, after);
                for (rt, status) in self.runtimes.iter().zip(&statuses) {
                    let n = rt.name;
                    r.check_eq(format!("{n}: state"), "created", status);
                    let argv0 = cmdline(rt.pid).first().cloned().unwrap_or_default();
                    r.check(format!("{n}: PID {} is still the runtime, not the program", rt.pid), format!("{n} …"), argv0.clone(), argv0.contains(n));
                    r.check_eq(format!("{n}: exec.fifo in its state dir is a FIFO"), true, is_fifo(&rt.state_dir().join("exec.fifo")));
                    let host_pidns = std::fs::read_link("/proc/self/ns/pid").ok();
                    let its = std::fs::read_link(format!("/proc/{}/ns/pid", rt.pid)).ok();
                    let shown = its.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "(none)".into());
                    r.check(format!("{n}: already in its own PID namespace"), "differs from the host's", shown, its.is_some() && its != host_pidns);
                    let groups = rt.groups.iter().filter(|g| g.is_dir()).count();
                    r.check(format!("{n}: cgroup workbench/{} exists", rt.id), "at least 1 hierarchy", groups.to_string(), groups > 0);
                }
            }
            "start" => {
                let before = self.snapshot("created");
                for rt in &self.runtimes {
                    rt.must(&["start", &rt.id])?;
                    r.say("host", rt.shown(&self.base, &["start", &rt.id]), "");
                }
                // start returns once the FIFO is opened: the exec follows at once.
                let deadline = Instant::now() + Duration::from_secs(20);
                while self.runtimes.iter().any(|rt| cmdline(rt.pid) != ARGS) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let statuses = self.say_state(r)?;
                let after = self.snapshot("running");
                r.observe(before, after);
                for (rt, status) in self.runtimes.iter().zip(&statuses) {
                    let n = rt.name;
                    r.check_eq(format!("{n}: state"), "running", status);
                    r.check_eq(format!("{n}: PID {} now runs the program", rt.pid), ARGS.join(" "), cmdline(rt.pid).join(" "));
                    let e = exe(rt.pid);
                    r.check(format!("{n}: /proc/PID/exe"), "…/busybox", e.clone(), e.ends_with("busybox"));
                    r.check_eq(format!("{n}: exec.fifo gone"), false, rt.state_dir().join("exec.fifo").exists());
                }
            }
            "kill" => {
                let before = self.snapshot("running");
                let mut statuses = Vec::new();
                for rt in &self.runtimes {
                    rt.must(&["kill", &rt.id, "KILL"])?;
                    r.say("host", rt.shown(&self.base, &["kill", &rt.id, "KILL"]), "");
                    statuses.push(rt.wait_for("stopped")?);
                }
                let shown = self.say_state(r)?;
                let after = self.snapshot("after kill");
                r.observe(before, after);
                for ((rt, status), again) in self.runtimes.iter().zip(&statuses).zip(&shown) {
                    let n = rt.name;
                    r.check_eq(format!("{n}: state"), "stopped", status);
                    r.check_eq(format!("{n}: state (asked again)"), "stopped", again);
                    let st = process_facts(rt.pid)["/proc/PID/status State"].clone();
                    r.check(format!("{n}: PID {} has exited", rt.pid), "no process (or a zombie)", st.clone(), st == "(no process)" || st.starts_with('Z'));
                    r.check(format!("{n}: its state dir is still there"), "present", state_dir_facts(rt, &self.base).1, rt.state_dir().is_dir());
                }
            }
            "delete" => {
                let before = self.snapshot_of("stopped", false);
                for rt in &self.runtimes {
                    rt.must(&["delete", &rt.id])?;
                    r.say("host", rt.shown(&self.base, &["delete", &rt.id]), "");
                }
                let after = self.snapshot_of("deleted", false);
                let statuses = self.say_state(r)?;
                r.observe(before, after);
                let mut problems = Vec::new();
                for (rt, status) in self.runtimes.iter().zip(&statuses) {
                    let n = rt.name;
                    r.check_eq(format!("{n}: state"), "(no container)", status);
                    r.check_eq(format!("{n}: state dir removed"), false, rt.state_dir().exists());
                    let left: Vec<String> = rt.groups.iter().filter(|g| g.is_dir()).map(|g| g.display().to_string()).collect();
                    r.check("{n}: its cgroups removed by the runtime".replace("{n}", n), "none", if left.is_empty() { "none".into() } else { left.join(" ") }, left.is_empty());
                }
                for rt in &mut self.runtimes {
                    problems.extend(rt.release());
                }
                r.check("the empty workbench/ parents removed", "done", if problems.is_empty() { "done".into() } else { problems.join("; ") }, problems.is_empty());
            }
            "compare" => self.compare(cx, r)?,
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }
}

impl OciRuntime {
    /// The same bundle started by runc, crun and `workbench run --bundle`: the namespaces of the three.
    fn compare(&mut self, _cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt;
        let host = crate::kit::host_snapshot(Capture::NS)?;
        for i in 0..self.runtimes.len() {
            let rt = &self.runtimes[i];
            let shown = format!(
                "{} && {}",
                rt.shown(&self.base, &["create", "--bundle", "bundle", &rt.id]),
                rt.shown(&self.base, &["start", &rt.id])
            );
            self.runtimes[i].create(&self.bundle)?;
            let rt = &self.runtimes[i];
            rt.must(&["start", &rt.id])?;
            r.say("host", shown, format!("PID {}", rt.pid));
        }
        // workbench's own runtime, as a child recorded for the teardown.
        let me = std::env::current_exe().context("find workbench's own executable")?;
        let mut cmd = Command::new(&me);
        cmd.args(["run", "--bundle"]).arg(&self.bundle).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        // SAFETY: prctl(2) is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
                Ok(())
            });
        }
        let (mut child, wb_res) = state::track(|| -> anyhow::Result<_> {
            let child = cmd.spawn().context("start workbench run --bundle")?;
            let pid = child.id() as i32;
            let res = Resource::Process { pid, start_time: crate::kernel::proc::start_time(pid).unwrap_or(0) };
            Ok(((child, res.clone()), res))
        })?;
        r.say("host", "workbench run --bundle bundle &", "");
        let wb_pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut container = None;
        while container.is_none() && Instant::now() < deadline {
            container = descendants(wb_pid).into_iter().find(|p| cmdline(*p) == ARGS);
            if container.is_none() {
                if let Ok(Some(st)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut err);
                    }
                    state::forget(&wb_res);
                    anyhow::bail!("workbench run --bundle ended ({st}): {}", err.trim());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let wb_container = container.context("workbench run --bundle did not start the program within 60 s")?;
        let ns = |pid: i32| crate::observe::capture::capture("", pid, Capture::NS).map(|s| s.namespaces);
        let runc_ns = ns(self.runtimes[0].pid)?;
        let crun_ns = ns(self.runtimes[1].pid)?;
        let wb_ns = ns(wb_container)?;
        let table = ns_table(&[("host", &host.namespaces), ("runc", &runc_ns), ("crun", &crun_ns), ("workbench", &wb_ns)]);
        r.say(
            "host",
            format!(
                "stat -L -c %i /proc/{{self,{},{},{}}}/ns/KIND",
                self.runtimes[0].pid, self.runtimes[1].pid, wb_container
            ),
            table,
        );
        let mut before = Snapshot { label: "host".into(), ..Default::default() };
        let mut after = Snapshot { label: "runc | crun | workbench (one value: all three)".into(), ..Default::default() };
        for (k, v) in &host.namespaces {
            before.facts.insert(format!("{k} namespace"), v.to_string());
            let col = |m: &BTreeMap<String, u64>| m.get(k).map(|i| i.to_string()).unwrap_or("-".into());
            let all = [&runc_ns, &crun_ns, &wb_ns];
            let value = if all.iter().all(|m| m.get(k) == Some(v)) {
                v.to_string()
            } else {
                format!("{} | {} | {}", col(&runc_ns), col(&crun_ns), col(&wb_ns))
            };
            after.facts.insert(format!("{k} namespace"), value);
        }
        r.observe(before, after);
        let new = ["pid", "net", "ipc", "uts", "mnt"];
        let bad = not_separate(&host.namespaces, &[&runc_ns, &crun_ns, &wb_ns], &new);
        r.check("new in each container, all different", new.join(" "), if bad.is_empty() { new.join(" ") } else { format!("shared: {}", bad.join(" ")) }, bad.is_empty());
        let shared: Vec<&str> = ["user", "cgroup", "time"].into_iter().filter(|k| host.namespaces.contains_key(*k)).collect();
        let same: Vec<&str> = shared.iter().copied().filter(|k| [&runc_ns, &crun_ns, &wb_ns].iter().all(|m| m.get(*k) == host.namespaces.get(*k))).collect();
        r.check("the host's in all three", shared.join(" "), same.join(" "), same.len() == shared.len());
        let kinds = |m: &BTreeMap<String, u64>| m.keys().cloned().collect::<Vec<_>>();
        let same_kinds = kinds(&runc_ns) == kinds(&crun_ns) && kinds(&crun_ns) == kinds(&wb_ns);
        r.check(
            "the same set of kinds (runc | crun | workbench)",
            format!("{} kinds each", kinds(&host.namespaces).len()),
            format!("{} | {} | {}{}", runc_ns.len(), crun_ns.len(), wb_ns.len(), if same_kinds { "" } else { " (different kinds)" }),
            same_kinds && kinds(&runc_ns) == kinds(&host.namespaces),
        );
        // Stop the three: workbench on SIGTERM removes its own container.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(wb_pid), nix::sys::signal::Signal::SIGTERM);
        let status = child.wait().context("wait for workbench run")?;
        state::forget(&wb_res);
        r.say("host", format!("kill -TERM {wb_pid}"), format!("workbench run: {status}"));
        let mut problems = Vec::new();
        for rt in &mut self.runtimes {
            rt.must(&["delete", "-f", &rt.id])?;
            r.say("host", rt.shown(&self.base, &["delete", "-f", &rt.id]), "");
            problems.extend(rt.release());
        }
        r.check("all three stopped and removed", "done", if problems.is_empty() { "done".into() } else { problems.join("; ") }, problems.is_empty() && crate::kernel::proc::start_time(wb_container).is_none());
        Ok(())
    }
}

/// Every descendant of `pid` (from /proc/PID/task/*/children).
fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else { continue };
        for t in tasks.flatten() {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in kids.split_whitespace().filter_map(|k| k.parse::<i32>().ok()) {
                out.push(k);
                todo.push(k);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
27 26 0:25 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
28 26 0:26 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
32 26 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
33 26 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
";
    const V2: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate
40 30 0:40 / /tmp/cg rw - cgroup2 cgroup2 rw
";

    #[test]
    fn cgroup_roots_on_hybrid_and_v2() {
        let roots = cgroup_roots(HYBRID);
        assert_eq!(
            roots,
            ["/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"]
                .map(PathBuf::from)
        );
        assert_eq!(cgroup_roots(V2), vec![PathBuf::from("/sys/fs/cgroup")]);
        let groups = group_paths(&cgroup_roots(V2), "wb-abc-runc");
        assert_eq!(groups, vec![PathBuf::from("/sys/fs/cgroup/workbench/wb-abc-runc")]);
        // Every path is one wb-cgroup would remove: under a workbench/ parent.
        for g in group_paths(&roots, "wb-abc-crun") {
            wb_cgroup::check_owned_path(Path::new("/sys/fs/cgroup"), &g).unwrap();
        }
    }

    #[test]
    fn the_config_has_the_lessons_fields_and_round_trips() {
        let spec = bundle_config("wb-oci", "/workbench/wb-abc-runc").unwrap();
        let text = serde_json::to_string_pretty(&spec).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["process"]["args"], serde_json::json!(["/bin/sleep", "1000"]));
        assert_eq!(v["process"]["terminal"], false);
        assert_eq!(v["root"], serde_json::json!({"path": "rootfs", "readonly": true}));
        assert_eq!(v["hostname"], "wb-oci");
        assert_eq!(v["linux"]["cgroupsPath"], "/workbench/wb-abc-runc");
        let ns: Vec<&str> = v["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
        assert_eq!(ns, ["pid", "network", "ipc", "uts", "mount"]);
        let mounts: Vec<&str> = v["mounts"].as_array().unwrap().iter().map(|m| m["destination"].as_str().unwrap()).collect();
        assert!(mounts.contains(&"/proc") && mounts.contains(&"/dev"), "{mounts:?}");
        assert_eq!(v["linux"]["resources"]["devices"][0], serde_json::json!({"allow": false, "access": "rwm"}));
        let back: Spec = serde_json::from_str(&text).unwrap();
        assert_eq!(back, spec);
        // workbench run --bundle takes exactly this config.
        let b = crate::run::bundle::check(&back, Path::new("/bundle")).unwrap();
        assert_eq!(b.rootfs, PathBuf::from("/bundle/rootfs"));
        let f = key_fields(&back);
        assert_eq!(f["linux.namespaces"], "pid net ipc uts mnt");
        assert_eq!(f["root"], "rootfs (readonly true)");
    }

    #[test]
    fn runtime_state_json_of_runc_and_crun() {
        // As runc 1.1 and crun 1.8 print them (trimmed).
        let runc = r#"{"ociVersion": "1.0.2-dev", "id": "wb-abc-runc", "pid": 3218, "status": "created",
            "bundle": "/run/workbench/x/bundle", "rootfs": "/run/workbench/x/bundle/rootfs", "owner": ""}"#;
        let crun = "{\n    \"ociVersion\": \"1.0.0\",\n    \"id\": \"wb-abc-crun\",\n    \"pid\": 4410,\n    \"status\": \"running\",\n    \"systemd-scope\": \"\"\n}";
        assert_eq!(parse_state(runc).unwrap(), ("created".into(), 3218));
        assert_eq!(parse_state(crun).unwrap(), ("running".into(), 4410));
        assert_eq!(parse_state(r#"{"status": "stopped", "pid": 0}"#).unwrap(), ("stopped".into(), 0));
        assert!(parse_state("container does not exist").is_err());
    }

    #[test]
    fn namespaces_compared() {
        let m = |v: &[(&str, u64)]| v.iter().map(|(k, i)| (k.to_string(), *i)).collect::<BTreeMap<_, _>>();
        let host = m(&[("pid", 1), ("net", 2), ("user", 9)]);
        let a = m(&[("pid", 11), ("net", 12), ("user", 9)]);
        let b = m(&[("pid", 21), ("net", 22), ("user", 9)]);
        assert!(not_separate(&host, &[&a, &b], &["pid", "net"]).is_empty());
        let shares_host = m(&[("pid", 31), ("net", 2), ("user", 9)]);
        assert_eq!(not_separate(&host, &[&a, &shares_host], &["pid", "net"]), vec!["net"]);
        let same_as_a = m(&[("pid", 11), ("net", 32)]);
        assert_eq!(not_separate(&host, &[&a, &same_as_a], &["pid", "net"]), vec!["pid"]);
        let lacks = m(&[("net", 42)]);
        assert_eq!(not_separate(&host, &[&a, &lacks], &["pid"]), vec!["pid"]);
        let t = ns_table(&[("host", &host), ("a", &a)]);
        assert_eq!(t.lines().count(), 4, "{t}");
        assert!(t.lines().nth(2).unwrap().starts_with("pid") && t.contains("11"), "{t}");
    }

    #[test]
    fn a_vanished_parent_is_retried_and_nothing_else() {
        assert!(is_parent_race("runc create failed: unable to start container process: unable to apply cgroup configuration: mkdir /sys/fs/cgroup/freezer/workbench/wb-bc99dd-runc: no such file or directory"));
        assert!(!is_parent_race("runc create failed: exec: \"/bin/sleep\": no such file or directory"));
        assert!(!is_parent_race("unable to apply cgroup configuration: permission denied"));
    }

    #[test]
    fn ids_and_shown_commands() {
        assert_eq!(container_id("a1b2c3", "crun"), "wb-a1b2c3-crun");
        let rt = Runtime {
            name: "crun",
            root: PathBuf::from("/run/workbench/x/state/crun"),
            id: "wb-a1b2c3-crun".into(),
            hide_unified: true,
            groups: vec![],
            parents: vec![],
            pid: 0,
            start_time: 0,
        };
        assert_eq!(
            rt.shown(Path::new("/run/workbench/x"), &["start", "wb-a1b2c3-crun"]),
            "unshare -m sh -c 'umount /sys/fs/cgroup/unified; crun --root state/crun --cgroup-manager=cgroupfs start wb-a1b2c3-crun'"
        );
    }

    /// The whole lesson as root with the workbench binary built next to this
    /// test executable (`target/debug/workbench`; also in the pure cgroup v2
    /// VM): every step passes, and no container, cgroup or state file is left.
    /// Skipped without root, runc or crun. Hold /tmp/wb-root.lock.
    #[test]
    fn the_lesson_passes_and_leaves_nothing_as_root() {
        let _serial = crate::kit::root_test_lock();
        if !nix::unistd::geteuid().is_root() || RUNTIMES.iter().any(|r| crate::host::features::which(r).is_none()) {
            eprintln!("skipped: needs root, runc and crun");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let Some(exe) = exe.parent().and_then(|d| d.parent()).map(|d| d.join("workbench")).filter(|p| p.exists()) else {
            eprintln!("skipped: no workbench binary next to {} (cargo build --bin workbench)", exe.display());
            return;
        };
        let roots = cgroup_roots(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
        let parents = || -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = group_paths(&roots, "x").iter().filter_map(|g| g.parent()).filter(|p| p.is_dir()).map(Path::to_path_buf).collect();
            v.sort();
            v.dedup();
            v
        };
        let parents_before = parents();
        let out = std::process::Command::new(&exe).args(["lesson", "oci-runtime", "--json"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}; stderr: {stderr}")))
            .collect();
        assert_eq!(out.status.code(), Some(0), "stderr: {stderr}; {lines:#?}");
        let steps: Vec<&str> = lines.iter().filter(|v| v["type"] == "step").filter_map(|v| v["id"].as_str()).collect();
        assert_eq!(steps, ["bundle", "create", "start", "kill", "delete", "compare"], "{lines:#?}");
        let run_id = lines.iter().find_map(|v| v["run_id"].as_str()).unwrap_or_default().to_string();
        assert!(!run_id.is_empty(), "{lines:#?}");
        assert!(!crate::state::run_root().join(format!("runs/{run_id}.json")).exists(), "state file left");
        let made: Vec<PathBuf> = parents().into_iter().filter(|p| !parents_before.contains(p)).collect();
        assert!(made.is_empty(), "workbench/ parents the runtimes made are left: {made:?}");
        for rt in RUNTIMES {
            for g in group_paths(&roots, &container_id(&run_id, rt)) {
                assert!(!g.exists(), "{} is left", g.display());
            }
        }
    }
}
