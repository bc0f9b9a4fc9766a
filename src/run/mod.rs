//! `workbench run`: the capstone — a small container runtime made of the
//! pieces the lessons take apart one at a time.
//!
//! A container is one `clone(2)` with `CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWUTS|
//! CLONE_NEWIPC|CLONE_NEWNET`: the child is PID 1 of a fresh PID namespace,
//! has its own copy of the mount table, hostname, IPC objects and network
//! stack. Before it `execve`s the user's command it builds its root
//! filesystem — an overlay of the image layers, or a read-only bind mount of
//! a rootfs directory — mounts `/proc`, a minimal `/dev` and `/sys` there,
//! and moves into it with `pivot_root(2)`. Meanwhile the parent puts it into
//! a cgroup (`--memory`, `--cpus`) and wires its network (`--net bridge`,
//! `-p`). The parent then waits and returns the command's exit status
//! (128 + signal number when it was killed, as a shell reports it).
//!
//! ## Why pivot_root and not chroot
//!
//! `chroot(2)` changes only the directory a process resolves `/` against. The
//! host's filesystem is still mounted in its namespace, and root can walk out:
//! `mkdir x; chroot x` leaves the current directory *outside* the new root,
//! and from there `chdir("..")` climbs to the real `/` (the kernel stops `..`
//! only at the process's *current* root, which is now `x`); a final
//! `chroot(".")` completes the escape. `pivot_root(2)` instead makes the new
//! root the root *mount* of the mount namespace and moves the old root to a
//! mount point below it; unmounting that (`umount2(".", MNT_DETACH)` after
//! `pivot_root(".", ".")`) removes the host's filesystem from the namespace
//! altogether, so there is nothing left to escape to.
//!
//! ## Read-only bind or overlay
//!
//! An image is always run on an overlay: its layers are unpacked once per run
//! into the run's working directory and stacked as `lowerdir`s; the writable
//! `upperdir` lives on a tmpfs mounted inside the container's own mount
//! namespace, so the container's writes vanish with it and are charged to its
//! memory cgroup. A rootfs directory is, by default, bind-mounted read-only
//! with a tmpfs on `/tmp`: that costs two `mount(2)` calls instead of a tmpfs,
//! two directories and an overlay mount, copies nothing, and guarantees the
//! given tree is never changed. `--overlay` gives a rootfs directory the
//! writable, throw-away layer instead.
//!
//! ## Nothing outlives the run
//!
//! Every host object — the working directory, the child process, the cgroup,
//! the bridge, the veth pair, the nftables table — is recorded in the run's
//! state file (see [`crate::state`]) before it is created, and removed when
//! the command exits, on Ctrl-C/SIGTERM, or by `workbench cleanup` after a
//! `kill -9`. The child dies with workbench (`PR_SET_PDEATHSIG`), and all
//! mounts live in the child's mount namespace, which disappears with it.

pub mod child;
pub mod net;
pub mod plan;
pub mod spec;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use nix::sched::CloneFlags;

use crate::error::UsageError;
use crate::state::{self, Resource};
use spec::{CpuLimit, HostFacts, NetMode, PortMap, Source};

/// `workbench run [OPTIONS] IMAGE|ROOTFS CMD...`
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Memory limit (cgroup memory limit, no swap), e.g. 64M. Hitting it gets the command OOM-killed (exit 137).
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit in CPUs, e.g. 0.5: a CFS quota of N × 100 ms per 100 ms period.
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Network: `none` (a new namespace with only lo) or `bridge` (veth to a fresh wb bridge,
    /// a 10.x address, a default route). Default: none, or bridge when -p is given.
    #[arg(long, value_enum)]
    pub net: Option<NetMode>,
    /// Publish a container TCP port on the host, HOST:CONTAINER (e.g. -p 8080:80); needs the bridge network.
    #[arg(short = 'p', long = "publish", value_name = "HOST:CONTAINER")]
    pub publish: Vec<String>,
    /// Hostname inside the container (default: the container's name, or `wb-<run id>`).
    #[arg(long)]
    pub hostname: Option<String>,
    /// A name for the container (letters, digits, '.', '_', '-'), used in its cgroup name.
    #[arg(long)]
    pub name: Option<String>,
    /// The image's tag or NAME:TAG inside an OCI layout or docker-save archive (default: the only image).
    #[arg(long)]
    pub tag: Option<String>,
    /// Give a rootfs directory a writable overlay layer (discarded at exit) instead of a read-only bind mount.
    #[arg(long)]
    pub overlay: bool,
    /// Set an environment variable, NAME=VALUE (or NAME to pass the host's value).
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Keep stdin attached (otherwise the command reads /dev/null).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Hand this terminal to the command (Ctrl-C goes to it); implies -i.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Also a user namespace: root inside is uid 100000 on the host and has no privileges there
    /// (a rootfs directory in its read-only mode only).
    #[arg(long)]
    pub userns: bool,
    /// Print every kernel operation (the classic command and the system call) as it is done.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// A rootfs directory, an OCI layout (`oci:DIR[:TAG]` or `DIR:TAG`) or a docker-save archive
    /// (a .tar file, or `docker-archive:FILE[:NAME:TAG]`).
    #[arg(value_name = "IMAGE|ROOTFS")]
    pub source: String,
    /// The command and its arguments (for an image, default: the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    pub source: Source,
    pub argv: Vec<String>,
    pub memory: Option<u64>,
    pub memory_text: Option<String>,
    pub cpus: Option<CpuLimit>,
    pub net: NetMode,
    pub ports: Vec<PortMap>,
    pub hostname: Option<String>,
    pub name: Option<String>,
    pub overlay: bool,
    pub env: Vec<(String, String)>,
    pub keep_stdin: bool,
    pub tty: bool,
    pub verbose: bool,
    pub userns: bool,
}

/// The default PATH inside the container (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// With `--userns`, container uids/gids 0..65535 are host ids 100000..165535.
pub const USERNS_BASE: u32 = 100_000;
pub const USERNS_SIZE: u32 = 65_536;

/// The first directory from `/` down to `path` that others may not search
/// (mode without o+x): the container's root in a user namespace could not reach `path`.
pub fn unsearchable_ancestor(path: &Path) -> Option<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut p = PathBuf::from("/");
    for c in path.components().skip(1) {
        p.push(c);
        let mode = std::fs::metadata(&p).ok()?.permissions().mode();
        if mode & 0o001 == 0 {
            return Some((p, mode & 0o7777));
        }
    }
    None
}

impl RunSpec {
    /// Check every option; `stdin_tty` tells whether stdin is a terminal (for -t).
    pub fn from_args(a: &RunArgs, facts: &HostFacts, stdin_tty: bool) -> Result<RunSpec, UsageError> {
        let u = |m: String| UsageError(m);
        let memory = a.memory.as_deref().map(|m| spec::parse_memory(m, facts)).transpose()?;
        let cpus = a.cpus.as_deref().map(|c| spec::parse_cpus(c, facts)).transpose()?;
        let ports = a.publish.iter().map(|p| spec::parse_port(p)).collect::<Result<Vec<_>, _>>()?;
        for (i, p) in ports.iter().enumerate() {
            if ports[..i].iter().any(|q| q.host == p.host) {
                return Err(u(format!("-p: host port {} is published twice", p.host)));
            }
        }
        let net = match (a.net, ports.is_empty()) {
            (Some(NetMode::None), false) => return Err(u(format!("-p {}: publishing a port needs --net bridge", a.publish[0]))),
            (Some(n), _) => n,
            (None, true) => NetMode::None,
            (None, false) => NetMode::Bridge,
        };
        let name = a.name.as_deref().map(spec::parse_name).transpose()?;
        let hostname = a.hostname.as_deref().map(spec::parse_hostname).transpose()?;
        let env = a.env.iter().map(|e| spec::parse_env(e, |k| std::env::var(k).ok())).collect::<Result<Vec<_>, _>>()?;
        if a.tty && !stdin_tty {
            return Err(u("-t: stdin is not a terminal; run it from a terminal or leave -t out".into()));
        }
        let source = spec::classify_source(&a.source, a.tag.as_deref(), spec::probe_path)?;
        let source = match source {
            Source::Rootfs(p) => {
                let real = std::fs::canonicalize(&p).map_err(|e| u(format!("{}: {e}", p.display())))?;
                if real == Path::new("/") {
                    return Err(u("the rootfs must not be the host's / (give a directory such as one made by rootfs-builder build)".into()));
                }
                if !a.overlay {
                    for d in ["proc", "dev"] {
                        if !real.join(d).is_dir() {
                            return Err(u(format!(
                                "{}/{d} is missing: the container's /{d} is mounted there (mkdir it, or use --overlay)",
                                real.display()
                            )));
                        }
                    }
                }
                Source::Rootfs(real)
            }
            other => other,
        };
        if a.command.is_empty() && !source.is_image() {
            return Err(u(format!("no command given: workbench run [OPTIONS] {} CMD [ARG...], e.g. /bin/sh", a.source)));
        }
        if a.userns {
            match &source {
                Source::Rootfs(real) if !a.overlay => {
                    if let Some((dir, mode)) = unsearchable_ancestor(real) {
                        return Err(u(format!(
                            "--userns: {} (mode {mode:o}) is not searchable by others, and the container's root is uid {USERNS_BASE} on the host: chmod o+x {}",
                            dir.display(),
                            dir.display()
                        )));
                    }
                }
                _ => return Err(u("--userns works with a rootfs directory in its read-only mode, not with images or --overlay".into())),
            }
        }
        if let Some(bad) = a.command.first().filter(|c| c.is_empty()) {
            return Err(u(format!("the command {bad:?} is empty")));
        }
        Ok(RunSpec {
            source,
            argv: a.command.clone(),
            memory,
            memory_text: a.memory.clone(),
            cpus,
            net,
            ports,
            hostname,
            name,
            overlay: a.overlay,
            env,
            keep_stdin: a.interactive || a.tty,
            tty: a.tty,
            verbose: a.verbose,
            userns: a.userns,
        })
    }

    /// The namespaces of the child.
    pub fn clone_flags(&self) -> CloneFlags {
        let f = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWNET;
        if self.userns {
            f | CloneFlags::CLONE_NEWUSER
        } else {
            f
        }
    }
}

/// The container's environment: defaults, then the image's, then `-e`.
pub fn environment(hostname: &str, tty: bool, image_env: &[String], extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![("PATH".into(), DEFAULT_PATH.into()), ("HOME".into(), "/root".into()), ("HOSTNAME".into(), hostname.into())];
    if tty {
        env.push(("TERM".into(), std::env::var("TERM").unwrap_or_else(|_| "xterm".into())));
    }
    let mut set = |k: String, v: String| match env.iter_mut().find(|(x, _)| *x == k) {
        Some(slot) => slot.1 = v,
        None => env.push((k, v)),
    };
    for kv in image_env {
        if let Some((k, v)) = kv.split_once('=') {
            set(k.to_string(), v.to_string());
        }
    }
    for (k, v) in extra {
        set(k.clone(), v.clone());
    }
    env
}

/// `workbench run`: validate, create, run, wait, remove; exit with the command's status.
pub fn main(args: &RunArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    // Cores and memory size matter only for the limits (probing reads several files).
    let facts = if args.memory.is_some() || args.cpus.is_some() { HostFacts::probe() } else { HostFacts { cores: u32::MAX, mem_total: u64::MAX } };
    let spec = RunSpec::from_args(args, &facts, std::io::stdin().is_terminal())?;
    if !nix::unistd::geteuid().is_root() {
        return Err(UsageError("this needs root (clone(2) with namespace flags, mount(2), cgroups): run it in a root shell or with sudo".into()).into());
    }
    preflight_host(&spec)?;
    let signals = Signals::block()?;
    let image = load_image(&spec, None, spec.verbose)?;
    let trace = Trace::new();
    let run = state::begin_bare("run")?;
    trace.mark("state begun");
    let outcome = launch(&spec, image, &run, &signals);
    trace.mark("launch returned");
    let problems = state::finish();
    trace.mark("state finished");
    for p in &problems {
        eprintln!("workbench: cleanup: {p}");
    }
    match outcome {
        Ok(code) => Ok(ExitCode::from(code)),
        Err(e) if e.is::<UsageError>() => Err(e),
        Err(e) if e.is::<Interrupted>() => Ok(ExitCode::from(e.downcast::<Interrupted>().map(|i| i.code()).unwrap_or(130))),
        Err(e) => {
            eprintln!("workbench: error: {e:#}");
            Ok(ExitCode::from(125))
        }
    }
}

/// Ctrl-C, SIGTERM or SIGHUP arrived: the run stops and removes what it created.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by signal {0}")]
pub struct Interrupted(pub i32);

impl Interrupted {
    /// Exit status as a shell reports it: 128 + the signal number.
    pub fn code(&self) -> u8 {
        (128 + self.0) as u8
    }
}

/// `workbench run` handles its signals without a thread: it blocks SIGINT,
/// SIGTERM, SIGHUP and SIGCHLD, and then waits for whichever comes first —
/// the container's exit or a request to stop. A stop that arrives while the
/// container is being set up stays pending and is picked up between steps.
pub struct Signals {
    set: nix::sys::signal::SigSet,
    /// With -t, Ctrl-C on the terminal is for the command, not for workbench.
    ignore_int: bool,
}

impl Signals {
    fn block() -> anyhow::Result<Signals> {
        use nix::sys::signal::{SigSet, Signal};
        let mut set = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGCHLD] {
            set.add(s);
        }
        set.thread_block().context("block signals")?;
        Ok(Signals { set, ignore_int: false })
    }

    fn is_stop(&self, sig: i32) -> bool {
        sig == libc::SIGTERM || sig == libc::SIGHUP || (sig == libc::SIGINT && !self.ignore_int)
    }

    /// Take pending signals off the queue; `Err(Interrupted)` if one asks to stop.
    fn check(&self) -> Result<(), Interrupted> {
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        loop {
            // SAFETY: sigtimedwait on a valid set, no siginfo wanted.
            let sig = unsafe { libc::sigtimedwait(self.set.as_ref(), std::ptr::null_mut(), &zero) };
            if sig < 0 {
                return Ok(()); // EAGAIN: nothing pending
            }
            if self.is_stop(sig) {
                announce(sig);
                return Err(Interrupted(sig));
            }
        }
    }

    /// Wait until `pid` exits (reaping it), or a stop signal arrives.
    fn wait_child(&self, pid: i32) -> anyhow::Result<Result<ExitStatus, Interrupted>> {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        let p = nix::unistd::Pid::from_raw(pid);
        loop {
            match waitpid(p, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, c)) => return Ok(Ok(ExitStatus::Exited(c))),
                Ok(WaitStatus::Signaled(_, s, _)) => return Ok(Ok(ExitStatus::Signaled(s as i32))),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(anyhow::anyhow!("waitpid {pid}: {e}")),
            }
            let sig = self.set.wait().context("sigwait")? as i32;
            if self.is_stop(sig) {
                announce(sig);
                return Ok(Err(Interrupted(sig)));
            }
        }
    }
}

fn announce(sig: i32) {
    let name = nix::sys::signal::Signal::try_from(sig).map(|s| s.as_str()).unwrap_or("a signal");
    eprintln!("workbench: caught {name}, removing what this run created");
}

/// Host prerequisites of the options, checked before anything is created.
fn preflight_host(spec: &RunSpec) -> anyhow::Result<()> {
    if spec.memory.is_some() || spec.cpus.is_some() {
        let layout = wb_cgroup::detect_system().map_err(|e| UsageError(format!("--memory/--cpus need cgroups: {e}")))?;
        let summary = wb_cgroup::layout_summary(&layout);
        for (flag, wanted, ctrl) in [("--memory", spec.memory.is_some(), "memory"), ("--cpus", spec.cpus.is_some(), "cpu")] {
            if let (true, Some(Err(why))) = (wanted, summary.workbench.get(ctrl)) {
                return Err(UsageError(format!("{flag} needs the {ctrl} cgroup controller: {why}")).into());
            }
        }
        if spec.cpus.is_some() && summary.cpu_bandwidth == Some(false) {
            return Err(UsageError("--cpus needs CFS bandwidth control (CONFIG_CFS_BANDWIDTH), which this kernel lacks".into()).into());
        }
        let wanted: Vec<wb_cgroup::Controller> = [(spec.memory.is_some(), wb_cgroup::Controller::Memory), (spec.cpus.is_some(), wb_cgroup::Controller::Cpu)].into_iter().filter(|(w, _)| *w).map(|(_, c)| c).collect();
        crate::lessons::cg::require_writable(&layout, &wanted).map_err(|e| UsageError(format!("{e:#}")))?;
    }
    if spec.net == NetMode::Bridge && which("nft").is_none() {
        return Err(UsageError("--net bridge needs nft (the nftables package): run scripts/setup or apt-get install nftables".into()).into());
    }
    if spec.net == NetMode::Bridge {
        crate::lessons::netlab::require_link_kinds(&["veth", "bridge"]).map_err(|e| UsageError(format!("--net bridge: {e:#}")))?;
    }
    Ok(())
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(prog)).find(|f| f.is_file()))
        .unwrap_or_else(|| ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].iter().map(|d| Path::new(d).join(prog)).find(|f| f.is_file()))
}

/// Phase timestamps for `WORKBENCH_TRACE=1` (measuring where start-up time goes).
struct Trace(Option<Instant>);

static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

impl Trace {
    fn new() -> Trace {
        Trace(std::env::var_os("WORKBENCH_TRACE").map(|_| *T0.get_or_init(Instant::now)))
    }
    fn mark(&self, what: &str) {
        if let Some(t) = self.0 {
            eprintln!("trace {:>8.3} ms  {what}", t.elapsed().as_secs_f64() * 1e3);
        }
    }
}

/// Verbose output: `[where] command   # syscall`.
fn show(on: bool, place: &str, command: &str, syscall: &str) {
    if on {
        let first = command.lines().next().unwrap_or("");
        if syscall.is_empty() {
            eprintln!("[{place}] {command}");
        } else {
            eprintln!("[{place}] {first:<58} # {syscall}");
            for l in command.lines().skip(1) {
                eprintln!("{:>12}{l}", "");
            }
        }
    }
}

/// Where the rootfs comes from, once images are unpacked.
struct Root {
    mode: plan::RootMode,
    argv: Vec<String>,
    image_env: Vec<String>,
    sysfs: bool,
}

fn mkdir(p: &Path) -> anyhow::Result<()> {
    std::fs::create_dir(p).with_context(|| format!("mkdir {}", p.display()))
}

/// An image that is not there, or the wrong tag, is bad input (exit 2).
fn image_error(e: wb_image::Error) -> anyhow::Error {
    match e {
        e @ wb_image::Error::NotFound { .. } => UsageError(format!("{e}: give one of the available tags with --tag or IMAGE:TAG")).into(),
        e => e.into(),
    }
}

/// Read an image's index and verify its digests. OCI layouts and extracted
/// docker-save directories are read in place, before anything is created; a
/// docker-save tar file is extracted into the run's working directory first.
fn load_image(spec: &RunSpec, workdir: Option<&Path>, verbose: bool) -> anyhow::Result<Option<wb_image::LoadedImage>> {
    match &spec.source {
        Source::Rootfs(_) => Ok(None),
        Source::Oci { dir, reference } => {
            show(verbose, "host", &format!("read {}/index.json, manifest and config of {reference:?}; verify every blob's sha256", dir.display()), "");
            Ok(Some(wb_image::load_oci(dir, reference).map_err(image_error)?))
        }
        Source::Docker { path, reference } if path.is_dir() => Ok(Some(wb_image::load_docker_archive(path, reference).map_err(image_error)?)),
        Source::Docker { path, reference } => {
            let Some(workdir) = workdir else { return Ok(None) };
            let dest = workdir.join("archive");
            mkdir(&dest)?;
            show(verbose, "host", &format!("tar -xf {} -C {}", path.display(), dest.display()), "");
            let mut a = tar::Archive::new(wb_image::image::open_layer_file(path)?);
            a.unpack(&dest).with_context(|| format!("extract {}", path.display()))?;
            Ok(Some(wb_image::load_docker_archive(&dest, reference).map_err(image_error)?))
        }
    }
}

/// The container's root: a rootfs directory as it is, or an image's layers
/// unpacked into the run's working directory.
fn prepare_root(spec: &RunSpec, image: Option<wb_image::LoadedImage>, workdir: &Path, verbose: bool) -> anyhow::Result<Root> {
    let scratch = workdir.join("rw");
    if let Source::Rootfs(rootfs) = &spec.source {
        let mode = if spec.overlay {
            mkdir(&scratch)?;
            plan::RootMode::Overlay { lowers: vec![rootfs.clone()], scratch }
        } else {
            plan::RootMode::ReadOnlyBind { rootfs: rootfs.clone(), has_tmp: rootfs.join("tmp").is_dir() }
        };
        return Ok(Root { mode, argv: spec.argv.clone(), image_env: vec![], sysfs: rootfs.join("sys").is_dir() });
    }
    let image = match image {
        Some(i) => i,
        None => load_image(spec, Some(workdir), verbose)?.expect("an image source loads an image"),
    };
    let argv = if spec.argv.is_empty() { image.config.cmd.clone() } else { spec.argv.clone() };
    if argv.is_empty() {
        return Err(UsageError(format!("no command given and {} has no Cmd: add CMD after the image", spec.source.describe())).into());
    }
    let layers = workdir.join("layers");
    mkdir(&layers)?;
    show(verbose, "host", &format!("tar -xf LAYER -C {}/NN-DIFFID  # each of {} layers; whiteouts become 0/0 devices", layers.display(), image.layers.len()), "");
    let lowers = image.unpack_for_overlay(&layers)?;
    mkdir(&scratch)?;
    Ok(Root { mode: plan::RootMode::Overlay { lowers, scratch }, argv, image_env: image.config.env.clone(), sysfs: true })
}

/// The cgroup of a run, recorded path by path before it exists.
fn make_cgroup(spec: &RunSpec, name: &str, verbose: bool) -> anyhow::Result<Option<wb_cgroup::Group>> {
    use wb_cgroup::Controller;
    let mut ctrls = Vec::new();
    if spec.memory.is_some() {
        ctrls.push(Controller::Memory);
    }
    if spec.cpus.is_some() {
        ctrls.push(Controller::Cpu);
    }
    if ctrls.is_empty() {
        return Ok(None);
    }
    let layout = wb_cgroup::detect_system()?;
    // Every directory of the group is in the state file before it exists.
    let planned = wb_cgroup::planned_paths(&layout, name, &ctrls)?;
    let records = planned.iter().map(|p| Resource::Cgroup { path: p.clone() }).collect();
    let group = state::record_and_create(records, || -> anyhow::Result<_> { Ok(wb_cgroup::create(&layout, name, &ctrls)?) })?;
    let used = group.paths();
    for p in &used {
        show(verbose, "host", &format!("mkdir {}", p.display()), &format!("mkdir({:?})", p.display().to_string()));
    }
    if let Some(bytes) = spec.memory {
        group.set_memory_limit(bytes, Some(0))?;
        show(verbose, "host", &format!("echo {bytes} > memory limit (and memory+swap limit, so no swap) of {name}"), "write(2) to memory.limit_in_bytes / memory.max");
    }
    if let Some(c) = spec.cpus {
        group.set_cpu_quota(c.quota_us, c.period_us)?;
        show(verbose, "host", &format!("echo {} {} > cpu quota/period of {name}", c.quota_us, c.period_us), "write(2) to cpu.cfs_quota_us / cpu.max");
    }
    Ok(Some(group))
}

/// Create everything, run the command, wait; returns its exit status.
fn launch(spec: &RunSpec, image: Option<wb_image::LoadedImage>, run: &state::Run, signals: &Signals) -> anyhow::Result<u8> {
    let signals = &Signals { set: signals.set, ignore_int: spec.tty };
    let trace = Trace::new();
    trace.mark("begin");
    let id = &run.run_id;
    let v = spec.verbose;
    let hostname = spec.hostname.clone().or_else(|| spec.name.clone()).unwrap_or_else(|| format!("wb-{id}"));
    if v {
        eprintln!("workbench run: container {hostname} (run {id}, {})", spec.source.describe());
    }
    // Published ports first: one another run maps is refused before anything exists.
    net::reserve_ports(&spec.ports)?;
    // A read-only bind needs no directory of its own: the rootfs is bind-mounted
    // onto itself (in the container's mount namespace) and becomes the new root.
    let merged = match &spec.source {
        Source::Rootfs(rootfs) if !spec.overlay => rootfs.clone(),
        _ => {
            state::make_workdir(run)?;
            let m = run.workdir.join("merged");
            mkdir(&m)?;
            m
        }
    };
    let root = prepare_root(spec, image, &run.workdir, v)?;
    signals.check()?;
    trace.mark("rootfs ready");

    let cg_name = match &spec.name {
        Some(n) => format!("{n}-{id}"),
        None => format!("run-{id}"),
    };
    let group = make_cgroup(spec, &cg_name, v)?;
    signals.check()?;
    trace.mark("cgroup");

    let net_plan = match spec.net {
        NetMode::Bridge => Some(net::NetPlan::new(id, &net::reserve_subnet(id)?, &spec.ports)),
        NetMode::None => None,
    };

    let env = environment(&hostname, spec.tty, &root.image_env, &spec.env);
    let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, p)| p.as_str()).unwrap_or(DEFAULT_PATH);
    let exec = child::Exec::new(plan::exec_candidates(&root.argv[0], path), &root.argv, &env).map_err(|e| UsageError(format!("command: {e}")))?;
    let mut ops = plan::build(&plan::PlanInput {
        root: root.mode.clone(),
        merged: merged.clone(),
        hostname: hostname.clone(),
        new_netns: true,
        devpts: false,
        sysfs: root.sysfs,
        keep_stdin: spec.keep_stdin,
        userns: spec.userns,
        keep_flags: match &root.mode {
            plan::RootMode::ReadOnlyBind { rootfs, .. } => plan::mount_flags_of(rootfs),
            plan::RootMode::Overlay { .. } => 0,
        },
    });
    if spec.tty {
        add_terminal(&mut ops, &merged);
    }
    let flags = spec.clone_flags();
    trace.mark("plan");

    let spawned = state::track(|| -> anyhow::Result<_> {
        let s = child::spawn(flags, &ops, &exec, spec.userns)?;
        let start = crate::kernel::proc::start_time(s.pid).unwrap_or(0);
        let r = Resource::Process { pid: s.pid, start_time: start };
        Ok((s, r))
    })?;
    let pid = spawned.pid;
    trace.mark("clone");
    let user = if spec.userns { " --user" } else { "" };
    show(v, "host", &format!("unshare{user} --pid --mount --uts --ipc --net --fork   # pid {pid}"), &format!("clone({}|SIGCHLD)", crate::kernel::ns::flag_names(flags)));

    let parent_side = (|| -> anyhow::Result<()> {
        if spec.userns {
            // Only a process outside the namespace can write its maps (once each).
            let map = format!("0 {USERNS_BASE} {USERNS_SIZE}\n");
            for f in ["uid_map", "gid_map"] {
                let p = format!("/proc/{pid}/{f}");
                std::fs::write(&p, &map).with_context(|| format!("write {p}"))?;
                show(v, "host", &format!("echo '{}' > {p}", map.trim()), "write(2)");
            }
        }
        if let Some(g) = &group {
            g.add_process(pid)?;
            for p in g.paths() {
                show(v, "host", &format!("echo {pid} > {}/cgroup.procs", p.display()), "write(2)");
            }
        }
        if let Some(np) = &net_plan {
            net::setup(np, pid)?;
            for (c, sys) in np.commands(pid) {
                show(v, "host", &c, sys);
            }
        }
        signals.check()?;
        Ok(())
    })();
    if let Err(e) = parent_side {
        // The child may have failed first (and taken its namespaces with it):
        // its own report says more.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = wait_for(pid);
        if e.is::<Interrupted>() {
            return Err(e);
        }
        if let Some(report) = child::read_error(&spawned.errors) {
            report_child_failure(report, &ops, &root.argv[0]);
            return Ok(125);
        }
        return Err(e);
    }
    if v {
        for op in &ops {
            show(true, "container", &op.command(), &op.syscall());
        }
        let argv: Vec<String> = exec.argv().iter().map(|a| a.to_string_lossy().into_owned()).collect();
        show(true, "container", &format!("exec {}", shell_words(&argv)), "execve(2), as PID 1 of the new PID namespace");
    }
    trace.mark("parent setup");

    // Release the child. If it already failed (and exited), the write fails
    // with EPIPE and its report is read from the error pipe below.
    let _ = nix::unistd::write(&spawned.go, b"g");
    drop(spawned.go);
    let status = match signals.wait_child(pid)? {
        Ok(status) => status,
        Err(stop) => {
            // The container dies with its PID 1; finish() removes the rest.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = wait_for(pid);
            return Err(stop.into());
        }
    };
    trace.mark("exited");
    if let Some(report) = child::read_error(&spawned.errors) {
        report_child_failure(report, &ops, &root.argv[0]);
    }
    let code = status.code();
    if let (Some(g), ExitStatus::Signaled(9)) = (&group, status) {
        if spec.memory.is_some() && g.oom_kill_count().unwrap_or(0) > 0 {
            eprintln!("workbench: the command was killed by the OOM killer (--memory {})", spec.memory_text.as_deref().unwrap_or("?"));
        }
    }
    Ok(code)
}

/// Print what the child wrote into the error pipe.
fn report_child_failure((step, errno): (u32, i32), ops: &[plan::Op], argv0: &str) {
    let err = strip_os_error(&std::io::Error::from_raw_os_error(errno));
    if step == child::EXEC_STEP {
        eprintln!("workbench: error: exec {argv0} in the container: {err}");
    } else {
        let what = ops.get(step as usize).map(|o| o.command()).unwrap_or_default();
        eprintln!("workbench: error: container setup failed at `{what}`: {err}");
    }
}

/// With -t: make the terminal visible inside as /dev/console and at its own
/// path (e.g. /dev/pts/3), so `tty` and programs that reopen it work.
fn add_terminal(ops: &mut Vec<plan::Op>, merged: &Path) {
    let Ok(tty) = nix::unistd::ttyname(std::io::stdin()) else { return };
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes().to_vec()).ok();
    let mut extra = Vec::new();
    let mut targets = vec![merged.join("dev/console")];
    if let Ok(rel) = tty.strip_prefix("/dev/") {
        let inside = merged.join("dev").join(rel);
        if let Some(dir) = inside.parent().filter(|d| *d != merged.join("dev")).and_then(c) {
            extra.push(plan::Op::Mkdir { path: dir, mode: 0o755 });
        }
        targets.push(inside);
    }
    for t in targets {
        let (Some(target), Some(source)) = (c(&t), c(&tty)) else { continue };
        extra.push(plan::Op::Touch { path: target.clone() });
        extra.push(plan::Op::Mount { source, target, fstype: Default::default(), flags: libc::MS_BIND, data: None });
    }
    let pivot = ops.iter().position(|o| matches!(o, plan::Op::PivotRoot { .. })).unwrap_or(ops.len());
    ops.splice(pivot..pivot, extra);
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// The shell's convention: the exit code, or 128 + the signal number.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Exited(c) => c as u8,
            ExitStatus::Signaled(s) => (128 + s) as u8,
        }
    }
}

fn wait_for(pid: i32) -> anyhow::Result<ExitStatus> {
    use nix::sys::wait::{waitpid, WaitStatus};
    let p = nix::unistd::Pid::from_raw(pid);
    loop {
        match waitpid(p, None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(ExitStatus::Exited(c)),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(ExitStatus::Signaled(s as i32)),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(anyhow::anyhow!("waitpid {pid}: {e}")),
        }
    }
}

fn strip_os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Quote argv for display.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-=:,+@%".contains(&b)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> RunArgs {
        let mut v = vec!["workbench", "run"];
        v.extend_from_slice(args);
        match crate::cli::args::Cli::try_parse_from(v).unwrap().command {
            crate::cli::args::Command::Run(a) => a,
            other => panic!("{other:?}"),
        }
    }

    const FACTS: HostFacts = HostFacts { cores: 2, mem_total: 1 << 30 };

    fn rootfs() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for d in ["proc", "dev", "bin"] {
            std::fs::create_dir(t.path().join(d)).unwrap();
        }
        t
    }

    #[test]
    fn command_after_the_source_keeps_its_flags() {
        let a = parse(&["--memory", "64M", "-p", "8080:80", "/r", "/bin/sh", "-c", "echo $$", "-p"]);
        assert_eq!(a.source, "/r");
        assert_eq!(a.command, vec!["/bin/sh", "-c", "echo $$", "-p"]);
        assert_eq!(a.publish, vec!["8080:80"]);
        let a = parse(&["-it", "/r", "sh"]);
        assert!(a.interactive && a.tty);
    }

    #[test]
    fn spec_defaults_and_network_choice() {
        let t = rootfs();
        let r = t.path().to_str().unwrap();
        let s = RunSpec::from_args(&parse(&[r, "/bin/true"]), &FACTS, false).unwrap();
        assert_eq!(s.net, NetMode::None);
        assert_eq!(s.source, Source::Rootfs(std::fs::canonicalize(t.path()).unwrap()));
        assert!(!s.keep_stdin);
        let s = RunSpec::from_args(&parse(&["-p", "8080:80", r, "httpd"]), &FACTS, false).unwrap();
        assert_eq!(s.net, NetMode::Bridge);
        let s = RunSpec::from_args(&parse(&["--cpus", "1.5", "--memory", "32M", r, "x"]), &FACTS, false).unwrap();
        assert_eq!(s.cpus.unwrap().quota_us, 150_000);
        assert_eq!(s.memory, Some(32 << 20));
    }

    #[test]
    fn bad_input_is_one_line() {
        let t = rootfs();
        let r = t.path().to_str().unwrap();
        let cases: Vec<Vec<&str>> = vec![
            vec![r],
            vec!["/nonexistent-rootfs", "sh"],
            vec!["--memory", "abc", r, "sh"],
            vec!["--cpus", "0", r, "sh"],
            vec!["--cpus", "3", r, "sh"],
            vec!["-p", "80", r, "sh"],
            vec!["-p", "80:80", "-p", "80:81", r, "sh"],
            vec!["--net", "none", "-p", "80:80", r, "sh"],
            vec!["--name", "a/b", r, "sh"],
            vec!["--name", "..", r, "sh"],
            vec!["--hostname", "a/../b", r, "sh"],
            vec!["-t", r, "sh"],
            vec!["/", "sh"],
            vec![r, ""],
            vec!["--userns", "--overlay", r, "sh"],
        ];
        for c in cases {
            let e = RunSpec::from_args(&parse(&c), &FACTS, false).unwrap_err().0;
            assert!(!e.is_empty() && !e.contains('\n'), "{c:?}: {e}");
        }
        std::fs::remove_dir(t.path().join("proc")).unwrap();
        let e = RunSpec::from_args(&parse(&[r, "sh"]), &FACTS, false).unwrap_err().0;
        assert!(e.contains("/proc is missing"), "{e}");
        assert!(RunSpec::from_args(&parse(&["--overlay", r, "sh"]), &FACTS, false).is_ok());
    }

    #[test]
    fn environment_layers() {
        let env = environment("box", false, &["PATH=/img/bin".into(), "A=1".into()], &[("A".into(), "2".into())]);
        assert_eq!(env[0], ("PATH".into(), "/img/bin".into()));
        assert!(env.contains(&("HOSTNAME".into(), "box".into())));
        assert!(env.contains(&("A".into(), "2".into())));
        assert!(!env.iter().any(|(k, _)| k == "TERM"));
    }

    #[test]
    fn exit_codes_like_a_shell() {
        assert_eq!(ExitStatus::Exited(7).code(), 7);
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert_eq!(ExitStatus::Signaled(15).code(), 143);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_words(&["/bin/sh".into(), "-c".into(), "echo $$".into()]), "/bin/sh -c 'echo $$'");
    }
}
