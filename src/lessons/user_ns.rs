//! user-ns: an unprivileged process creates a user namespace and is root in it.
//!
//! A user namespace maps user and group ids: `uid_map` says which host uids
//! appear as which uids inside. Its creator gets every capability, but a
//! capability counts only over objects (other namespaces, mounts, files) owned
//! by that user namespace or one nested in it, so "root" inside is still an
//! ordinary uid for everything the host owns.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Pid, Uid};
use serde::{Deserialize, Serialize};

use crate::host::Host;
use crate::kernel::child::RunOutput;
use crate::lesson::{Cx, Lesson, LessonDef, Spot, StepReport};
use crate::observe::Snapshot;
use crate::state::{self, Resource};

pub const DEF: LessonDef = LessonDef::of::<UserNs>(preflight)
    .shell("inside the user namespace, as its root (uid 100000 on the host)")
    .spots(&[
        ("drop-privileges", Spot::Procs(1)),
        ("drop-privileges", Spot::Present("dir", 2)),
        ("root-inside", Spot::Present("process", 1)),
    ]);

/// The host uid and gid the child drops to: no account's (Debian gives
/// accounts ids below 60000), and not 65534, the overflow id the kernel shows
/// for ids without a mapping, so the two can never be confused.
pub const OUTSIDE_ID: u32 = 100_000;

/// The map line the parent writes: inside id 0 is outside id 100000, one id.
pub fn map_line() -> String {
    format!("0 {OUTSIDE_ID} 1")
}

/// The directory (under the run's workdir) the child works in, owned by 100000.
const FILES_DIR: &str = "wb-userns-files";
/// The file the child creates there, and the directory it tries to mount on.
const MADE_INSIDE: &str = "made-inside";
const MOUNT_DIR: &str = "mnt";
/// The hostname the child sets in its own UTS namespace.
const HOSTNAME: &str = "wb-userns";

/// `ioctl_ns(2)` requests: `_IO(0xb7, 1)` and `_IO(0xb7, 2)`.
const NS_GET_USERNS: libc::c_ulong = 0xb701;
const NS_GET_PARENT: libc::c_ulong = 0xb702;

fn preflight(host: &Host, _opts: &crate::lesson::LessonOptions) -> anyhow::Result<()> {
    host.require_root("it starts as root to drop a child to uid 100000 and, as its parent, write the child's uid_map")?;
    if !Path::new("/proc/self/ns/user").exists() {
        anyhow::bail!("this kernel has no user namespaces (/proc/self/ns/user is missing): boot a kernel built with CONFIG_USER_NS=y");
    }
    let read = |p: &str| std::fs::read_to_string(p).ok();
    userns_allowed(
        read("/proc/sys/kernel/unprivileged_userns_clone").as_deref(),
        read("/proc/sys/user/max_user_namespaces").as_deref(),
        read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref(),
    )
    .map_err(anyhow::Error::msg)
}

/// May an unprivileged user create a user namespace with full capabilities
/// in it here? Reads the knobs (never changes them): Debian's
/// `kernel.unprivileged_userns_clone`, `user.max_user_namespaces`, Ubuntu's
/// AppArmor restriction. `None` is a knob this kernel does not have.
pub fn userns_allowed(unpriv_clone: Option<&str>, max: Option<&str>, apparmor: Option<&str>) -> Result<(), String> {
    fn on(v: Option<&str>) -> Option<&str> {
        v.map(str::trim)
    }
    if on(unpriv_clone) == Some("0") {
        return Err("kernel.unprivileged_userns_clone is 0: this host forbids unprivileged users to create user namespaces, the very thing this lesson shows; allow it yourself (sysctl -w kernel.unprivileged_userns_clone=1; workbench never changes it) and run again".into());
    }
    if on(max) == Some("0") {
        return Err("user.max_user_namespaces is 0: no user namespace can be created on this host; raise it yourself (sysctl -w user.max_user_namespaces=1000; workbench never changes it) and run again".into());
    }
    if on(apparmor) == Some("1") {
        return Err("kernel.apparmor_restrict_unprivileged_userns is 1: AppArmor takes the capabilities away inside unprivileged user namespaces, so the lesson cannot show them; set it to 0 yourself (workbench never changes it) and run again".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Pure helpers over /proc text.

/// The value of one `Key:\tvalue` line of /proc/PID/status, tabs as spaces.
pub fn status_field(status: &str, key: &str) -> Option<String> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.split_whitespace().collect::<Vec<_>>().join(" "))
    })
}

/// Every capability bit up to `cap_last_cap` (/proc/sys/kernel/cap_last_cap).
pub fn full_caps(cap_last_cap: u32) -> u64 {
    if cap_last_cap >= 63 {
        u64::MAX
    } else {
        (1u64 << (cap_last_cap + 1)) - 1
    }
}

/// A CapEff/CapPrm value (16 hex digits) as a number.
pub fn parse_caps(hex: &str) -> Option<u64> {
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// A uid_map/gid_map as `first-inside first-outside count` lines, single
/// spaces; "(empty)" for a map not written yet.
pub fn map_text(raw: &str) -> String {
    let lines: Vec<String> = raw
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        "(empty)".into()
    } else {
        lines.join("; ")
    }
}

/// The lines of `lsns` output that name one of `inodes` (the header kept).
pub fn lsns_lines(out: &str, inodes: &[u64]) -> Vec<String> {
    out.lines()
        .enumerate()
        .filter(|(i, l)| {
            *i == 0 || l.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| inodes.contains(&n))
        })
        .map(|(_, l)| l.trim_end().to_string())
        .collect()
}

/// In `lsns -o NS,NPROCS,PID,UID,PNS,...` output: the UID and PNS columns of
/// the row for namespace `ns`.
pub fn lsns_uid_pns(out: &str, ns: u64) -> Option<(u32, u64)> {
    let header: Vec<&str> = out.lines().next()?.split_whitespace().collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (uid, pns) = (col("UID")?, col("PNS")?);
    out.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.first()?.parse::<u64>().ok()? != ns {
            return None;
        }
        Some((f.get(uid)?.parse().ok()?, f.get(pns)?.parse().ok()?))
    })
}

fn errno_text(e: i32) -> String {
    let errno = Errno::from_raw(e);
    format!("{errno:?} ({})", errno.desc())
}

// ---------------------------------------------------------------------------
// The child: forked as root, it drops to uid 100000 and then does what the
// steps ask, one request at a time over a socket.

#[derive(Debug, Serialize, Deserialize)]
enum Ask {
    Chdir(PathBuf),
    /// setgroups([]), setgid, setuid; PR_SET_PDEATHSIG again (cleared by the change).
    Drop { uid: u32, gid: u32 },
    Unshare(i32),
    Ids,
    /// Write `line` into /proc/self/FILE (uid_map, gid_map).
    WriteOwnMap { file: String, line: String },
    SetGroups(Vec<u32>),
    SetHostname(String),
    Hostname,
    MountTmpfs(PathBuf),
    Create(PathBuf),
    /// `uid:gid` of a path as the child sees it.
    Owner(PathBuf),
    Run(Vec<String>),
    Shell { argv: Vec<String>, env: Vec<(String, String)> },
}

#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Done(String),
    Ids { uid: u32, gid: u32, groups: Vec<u32> },
    /// The system call failed with this errno.
    Refused { errno: i32, call: String },
    Ran(RunOutput),
    Failed(String),
}

struct UserChild {
    pid: Pid,
    stream: BufReader<UnixStream>,
    reaped: bool,
}

impl UserChild {
    /// fork() a child serving requests; recorded in the state file in the same breath.
    fn spawn() -> anyhow::Result<UserChild> {
        state::track(|| -> anyhow::Result<_> {
            let (parent_end, child_end) = UnixStream::pair()?;
            let parent = nix::unistd::getpid();
            // SAFETY: the child only runs `child_main`, which ends in `_exit`.
            match unsafe { nix::unistd::fork() }? {
                nix::unistd::ForkResult::Child => {
                    drop(parent_end);
                    child_main(child_end, parent)
                }
                nix::unistd::ForkResult::Parent { child } => {
                    drop(child_end);
                    let start_time = crate::kernel::proc::start_time(child.as_raw()).unwrap_or(0);
                    let c = UserChild { pid: child, stream: BufReader::new(parent_end), reaped: false };
                    Ok((c, Resource::Process { pid: child.as_raw(), start_time }))
                }
            }
        })
    }

    fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    fn call(&mut self, ask: &Ask) -> anyhow::Result<Answer> {
        let mut line = serde_json::to_string(ask)?;
        line.push('\n');
        self.stream.get_mut().write_all(line.as_bytes())?;
        let mut answer = String::new();
        if self.stream.read_line(&mut answer)? == 0 {
            anyhow::bail!("the user-namespace child {} exited unexpectedly", self.pid);
        }
        Ok(serde_json::from_str(&answer)?)
    }

    /// Ask, and expect success.
    fn ok(&mut self, ask: &Ask) -> anyhow::Result<String> {
        match self.call(ask)? {
            Answer::Done(s) => Ok(s),
            Answer::Refused { errno, call } => anyhow::bail!("{call}: {}", errno_text(errno)),
            Answer::Failed(e) => anyhow::bail!("{e}"),
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    }

    /// Ask for something that may be refused: Ok(errno) or Ok(0) for success.
    fn errno_of(&mut self, ask: &Ask) -> anyhow::Result<i32> {
        match self.call(ask)? {
            Answer::Done(_) => Ok(0),
            Answer::Refused { errno, .. } => Ok(errno),
            Answer::Failed(e) => anyhow::bail!("{e}"),
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    }

    fn ids(&mut self) -> anyhow::Result<(u32, u32, Vec<u32>)> {
        match self.call(&Ask::Ids)? {
            Answer::Ids { uid, gid, groups } => Ok((uid, gid, groups)),
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    }

    fn run(&mut self, argv: &[&str]) -> anyhow::Result<RunOutput> {
        match self.call(&Ask::Run(argv.iter().map(|s| s.to_string()).collect()))? {
            Answer::Ran(o) => Ok(o),
            Answer::Failed(e) => anyhow::bail!("{e}"),
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    }

    fn kill(&mut self) {
        if !self.reaped {
            let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(self.pid, None);
            self.reaped = true;
        }
    }
}

impl Drop for UserChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Die with workbench (SIGKILL when the parent exits), and make sure it has
/// not already gone between fork() and now.
fn die_with_parent(parent: Pid) {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != parent {
        unsafe { libc::_exit(0) };
    }
}

fn child_main(sock: UnixStream, parent: Pid) -> ! {
    die_with_parent(parent);
    // Ctrl-C belongs to the parent, which tears everything down.
    unsafe {
        let _ = nix::sys::signal::signal(Signal::SIGINT, nix::sys::signal::SigHandler::SigIgn);
        let _ = nix::sys::signal::signal(Signal::SIGTERM, nix::sys::signal::SigHandler::SigDfl);
    }
    let mut reader = match sock.try_clone() {
        Ok(s) => BufReader::new(s),
        Err(_) => unsafe { libc::_exit(1) },
    };
    let mut writer = sock;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => unsafe { libc::_exit(0) },
            Ok(_) => {}
        }
        let answer = match serde_json::from_str::<Ask>(&line) {
            Ok(ask) => serve(ask, parent),
            Err(e) => Answer::Failed(format!("bad request: {e}")),
        };
        let mut out = serde_json::to_string(&answer).unwrap_or_else(|_| "{\"Failed\":\"encode\"}".into());
        out.push('\n');
        if writer.write_all(out.as_bytes()).is_err() {
            unsafe { libc::_exit(0) };
        }
    }
}

fn serve(ask: Ask, parent: Pid) -> Answer {
    fn nix_done(r: nix::Result<()>, call: &str) -> Answer {
        match r {
            Ok(()) => Answer::Done(String::new()),
            Err(e) => Answer::Refused { errno: e as i32, call: call.into() },
        }
    }
    fn io_done(r: std::io::Result<()>, call: &str) -> Answer {
        match r {
            Ok(()) => Answer::Done(String::new()),
            Err(e) => match e.raw_os_error() {
                Some(errno) => Answer::Refused { errno, call: call.into() },
                None => Answer::Failed(format!("{call}: {e}")),
            },
        }
    }
    match ask {
        Ask::Chdir(dir) => nix_done(nix::unistd::chdir(&dir), "chdir"),
        Ask::Drop { uid, gid } => {
            let r = nix::unistd::setgroups(&[])
                .and_then(|_| nix::unistd::setgid(Gid::from_raw(gid)))
                .and_then(|_| nix::unistd::setuid(Uid::from_raw(uid)));
            // A credential change cleared the parent-death signal and made
            // the process non-dumpable (its /proc files root's): undo both,
            // as for any process an ordinary user starts.
            die_with_parent(parent);
            let _ = nix::sys::prctl::set_dumpable(true);
            nix_done(r, "setgroups/setgid/setuid")
        }
        Ask::Unshare(bits) => nix_done(nix::sched::unshare(CloneFlags::from_bits_retain(bits)), "unshare"),
        Ask::Ids => Answer::Ids {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            groups: nix::unistd::getgroups().unwrap_or_default().iter().map(|g| g.as_raw()).collect(),
        },
        Ask::WriteOwnMap { file, line } => {
            let path = format!("/proc/self/{file}");
            let r = std::fs::OpenOptions::new().write(true).open(&path).and_then(|mut f| f.write_all(line.as_bytes()));
            io_done(r, &format!("write {path}"))
        }
        Ask::SetGroups(gids) => {
            let gids: Vec<Gid> = gids.into_iter().map(Gid::from_raw).collect();
            nix_done(nix::unistd::setgroups(&gids), "setgroups")
        }
        Ask::SetHostname(name) => nix_done(nix::unistd::sethostname(&name), "sethostname"),
        Ask::Hostname => Answer::Done(
            nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
        ),
        Ask::MountTmpfs(target) => nix_done(
            nix::mount::mount(Some("wb-userns"), &target, Some("tmpfs"), nix::mount::MsFlags::empty(), None::<&str>),
            "mount",
        ),
        Ask::Create(path) => io_done(
            std::fs::File::create_new(&path).and_then(|mut f| f.write_all(b"made inside the user namespace\n")),
            "open(O_CREAT|O_EXCL)",
        ),
        Ask::Owner(path) => match std::fs::symlink_metadata(&path) {
            Ok(m) => Answer::Done(format!("{}:{}", m.uid(), m.gid())),
            Err(e) => Answer::Failed(format!("stat {}: {e}", path.display())),
        },
        Ask::Run(argv) => {
            let Some((prog, args)) = argv.split_first() else {
                return Answer::Failed("empty command".into());
            };
            let out = std::process::Command::new(prog)
                .args(args)
                .env_clear()
                .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
                .stdin(std::process::Stdio::null())
                .output();
            match out {
                Ok(o) => Answer::Ran(RunOutput {
                    code: o.status.code(),
                    signal: std::os::unix::process::ExitStatusExt::signal(&o.status),
                    stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
                    spawn_error: None,
                }),
                Err(e) => Answer::Failed(format!("execve {prog}: {e}")),
            }
        }
        Ask::Shell { argv, env } => {
            let Some((prog, args)) = argv.split_first() else {
                return Answer::Failed("empty command".into());
            };
            let mut cmd = std::process::Command::new(prog);
            cmd.args(args).env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
            for (k, v) in env {
                cmd.env(k, v);
            }
            unsafe {
                // The shell should react to Ctrl-C itself.
                let _ = nix::sys::signal::signal(Signal::SIGINT, nix::sys::signal::SigHandler::SigDfl);
            }
            let status = cmd.status();
            unsafe {
                let _ = nix::sys::signal::signal(Signal::SIGINT, nix::sys::signal::SigHandler::SigIgn);
            }
            match status {
                Ok(s) => Answer::Ran(RunOutput { code: s.code(), ..Default::default() }),
                Err(e) => Answer::Failed(format!("execve {prog}: {e}")),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// What the host sees.

fn read_proc(pid: i32, file: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default()
}

fn ns_inode(pid: i32, kind: &str) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}")).map(|m| m.ino()).unwrap_or(0)
}

/// `ioctl(open(/proc/PID/ns/KIND), request)`, then the inode of the
/// namespace the returned descriptor refers to.
fn ns_ioctl_inode(pid: i32, kind: &str, request: libc::c_ulong) -> Result<u64, i32> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let f = std::fs::File::open(format!("/proc/{pid}/ns/{kind}")).map_err(|e| e.raw_os_error().unwrap_or(0))?;
    // SAFETY: NS_GET_USERNS and NS_GET_PARENT take no argument and return a new descriptor.
    let fd = unsafe { libc::ioctl(f.as_raw_fd(), request as _) };
    if fd < 0 {
        return Err(Errno::last_raw());
    }
    // SAFETY: the kernel just gave us this descriptor; we own it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    std::fs::File::from(owned).metadata().map(|m| m.ino()).map_err(|e| e.raw_os_error().unwrap_or(0))
}

fn cap_last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(40)
}

fn overflow_id(which: &str) -> u32 {
    std::fs::read_to_string(format!("/proc/sys/kernel/{which}")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(65534)
}

fn host_hostname() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
}

fn host_owner(path: &Path) -> String {
    std::fs::symlink_metadata(path).map(|m| format!("{}:{}", m.uid(), m.gid())).unwrap_or_else(|_| "absent".into())
}

fn snap(label: impl Into<String>, facts: &[(&str, String)]) -> Snapshot {
    Snapshot {
        label: label.into(),
        facts: facts.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<BTreeMap<_, _>>(),
        ..Default::default()
    }
}

/// The child's credentials as the host reads them in /proc/PID/status.
fn cred_facts(pid: i32) -> Vec<(&'static str, String)> {
    let status = read_proc(pid, "status");
    let field = |k: &str| status_field(&status, k).unwrap_or_default();
    vec![
        ("Uid (real effective saved fs)", field("Uid")),
        ("Gid (real effective saved fs)", field("Gid")),
        ("Groups", field("Groups")),
        ("CapEff", field("CapEff")),
        ("user namespace", ns_inode(pid, "user").to_string()),
    ]
}

fn errno_fact(e: i32) -> String {
    if e == 0 {
        "succeeded".into()
    } else {
        errno_text(e)
    }
}

#[derive(Default)]
struct UserNs {
    child: Option<UserChild>,
    /// The directory the child works in (absolute, on the host).
    files: PathBuf,
}

impl UserNs {
    fn child(&mut self) -> anyhow::Result<&mut UserChild> {
        self.child.as_mut().ok_or_else(|| anyhow::anyhow!("no child: the drop-privileges step did not run"))
    }
}

impl Lesson for UserNs {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        let me = crate::kernel::proc::self_pid();
        let id_text = OUTSIDE_ID.to_string();
        match step {
            "drop-privileges" => {
                // The child's directory: recorded, then made, owned by 100000.
                let files = cx.workdir.join(FILES_DIR);
                state::record(Resource::Dir { path: files.clone() })?;
                std::fs::create_dir(&files)?;
                std::fs::set_permissions(&files, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
                std::fs::create_dir(files.join(MOUNT_DIR))?;
                nix::unistd::chown(&files, Some(Uid::from_raw(OUTSIDE_ID)), Some(Gid::from_raw(OUTSIDE_ID)))?;
                self.files = files.clone();
                r.say("host", format!("mkdir -m 0755 {0}; chown {1}:{1} {0}", files.display(), OUTSIDE_ID), "");

                let child = UserChild::spawn()?;
                let pid = child.pid();
                let child = self.child.insert(child);
                r.say("parent", "fork()", format!("{pid}   (the child, still root)"));
                let before = snap(format!("child (pid {pid}) after fork()"), &cred_facts(pid));
                // Enter the directory while still root: the workdir above it is 0700 root.
                child.ok(&Ask::Chdir(files.clone()))?;
                child.ok(&Ask::Drop { uid: OUTSIDE_ID, gid: OUTSIDE_ID })?;
                r.say("child", format!("setgroups(0, NULL); setgid({OUTSIDE_ID}); setuid({OUTSIDE_ID}); prctl(PR_SET_PDEATHSIG, SIGKILL)"), "0");
                let id = child.run(&["id"])?;
                r.ran("child", "id", &id);
                let after = snap(format!("child (pid {pid}) after the drop"), &cred_facts(pid));
                let status = read_proc(pid, "status");
                let ids4 = format!("{id_text} {id_text} {id_text} {id_text}");
                r.check_eq("Uid in /proc/PID/status", ids4.clone(), status_field(&status, "Uid").unwrap_or_default());
                r.check_eq("Gid in /proc/PID/status", ids4, status_field(&status, "Gid").unwrap_or_default());
                r.check_eq("supplementary groups", String::new(), status_field(&status, "Groups").unwrap_or_default());
                let cap = status_field(&status, "CapEff").and_then(|c| parse_caps(&c));
                r.check("CapEff (no capability left)", "0000000000000000", status_field(&status, "CapEff").unwrap_or_default(), cap == Some(0));
                r.check_eq("user namespace (still the host's)", ns_inode(me, "user"), ns_inode(pid, "user"));
                r.observe(before, after);
            }
            "unshare-user" => {
                let child = self.child()?;
                let pid = child.pid();
                let facts = |child: &mut UserChild| -> anyhow::Result<Vec<(&'static str, String)>> {
                    let (uid, gid, _) = child.ids()?;
                    let status = read_proc(pid, "status");
                    Ok(vec![
                        ("user namespace", ns_inode(pid, "user").to_string()),
                        ("uid_map", map_text(&read_proc(pid, "uid_map"))),
                        ("getuid() / getgid() inside", format!("{uid} / {gid}")),
                        ("Uid on the host (/proc/PID/status)", status_field(&status, "Uid").unwrap_or_default()),
                        ("CapEff", status_field(&status, "CapEff").unwrap_or_default()),
                    ])
                };
                let before = snap(format!("child (pid {pid}) before unshare"), &facts(child)?);
                child.ok(&Ask::Unshare(CloneFlags::CLONE_NEWUSER.bits()))?;
                r.say("child", "unshare(CLONE_NEWUSER)", "0   (as uid 100000, with no capability)");
                let id = child.run(&["id"])?;
                r.ran("child", "id", &id);
                let after = snap(format!("child (pid {pid}) after unshare"), &facts(child)?);
                r.say("host", format!("cat /proc/{pid}/uid_map"), read_proc(pid, "uid_map"));
                let (uid, _, _) = child.ids()?;
                let status = read_proc(pid, "status");
                let host_user = ns_inode(me, "user");
                let user = ns_inode(pid, "user");
                r.check("user namespace (new inode)", format!("not {host_user}"), user.to_string(), user != host_user && user != 0);
                r.check_eq("uid_map (nothing mapped yet)", "(empty)".to_string(), map_text(&read_proc(pid, "uid_map")));
                r.check_eq("getuid() inside (the overflow uid)", overflow_id("overflowuid"), uid);
                r.check_eq("Uid on the host (unchanged)", format!("{id_text} {id_text} {id_text} {id_text}"), status_field(&status, "Uid").unwrap_or_default());
                let full = full_caps(cap_last_cap());
                let eff = status_field(&status, "CapEff").unwrap_or_default();
                r.check("CapEff (every capability, in the new namespace)", format!("{full:016x}"), eff.clone(), parse_caps(&eff) == Some(full));
                r.observe(before, after);
            }
            "write-maps" => {
                let child = self.child()?;
                let pid = child.pid();
                let files = |child: &mut UserChild| -> anyhow::Result<Vec<(&'static str, String)>> {
                    let (uid, gid, _) = child.ids()?;
                    Ok(vec![
                        ("uid_map", map_text(&read_proc(pid, "uid_map"))),
                        ("gid_map", map_text(&read_proc(pid, "gid_map"))),
                        ("setgroups", read_proc(pid, "setgroups").trim().to_string()),
                        ("getuid() / getgid() inside", format!("{uid} / {gid}")),
                    ])
                };
                let before = snap(format!("child (pid {pid}) before the maps"), &files(child)?);
                let line = map_line();
                // The unprivileged writer first: its own gid_map, setgroups still allowed.
                let own = child.errno_of(&Ask::WriteOwnMap { file: "gid_map".into(), line: format!("{line}\n") })?;
                r.say("child", format!("echo '{line}' > /proc/self/gid_map   (setgroups still \"allow\")"), format!("write: {}", errno_fact(own)));
                for (file, text) in [("uid_map", line.clone()), ("setgroups", "deny".to_string()), ("gid_map", line.clone())] {
                    let path = format!("/proc/{pid}/{file}");
                    std::fs::write(&path, format!("{text}\n")).map_err(|e| anyhow::anyhow!("write {path}: {e}"))?;
                    r.say("parent", format!("echo '{text}' > {path}; cat {path}"), read_proc(pid, file).trim_end().to_string());
                }
                let setgroups = child.errno_of(&Ask::SetGroups(vec![]))?;
                r.say("child", "setgroups(0, NULL)", errno_fact(setgroups));
                let (uid, gid, _) = child.ids()?;
                let after = snap(format!("child (pid {pid}) after the maps"), &files(child)?);
                r.check_eq("the child's own gid_map write before \"deny\"", errno_text(libc::EPERM), errno_fact(own));
                r.check_eq("uid_map", line.clone(), map_text(&read_proc(pid, "uid_map")));
                r.check_eq("gid_map", line, map_text(&read_proc(pid, "gid_map")));
                r.check_eq("setgroups", "deny".to_string(), read_proc(pid, "setgroups").trim().to_string());
                r.check_eq("getuid() / getgid() inside", "0 / 0".to_string(), format!("{uid} / {gid}"));
                r.check_eq("setgroups() inside after \"deny\"", errno_text(libc::EPERM), errno_fact(setgroups));
                r.observe(before, after);
            }
            "root-inside" => {
                let files = self.files.clone();
                let made = files.join(MADE_INSIDE);
                let child = self.child()?;
                let pid = child.pid();
                let owners = |child: &mut UserChild| -> anyhow::Result<Vec<(&'static str, String)>> {
                    let inside = match child.call(&Ask::Owner(PathBuf::from(MADE_INSIDE)))? {
                        Answer::Done(s) => s,
                        _ => "absent".into(),
                    };
                    Ok(vec![
                        ("made-inside: owner on the host", host_owner(&made)),
                        ("made-inside: owner inside", inside),
                        ("/: owner on the host", host_owner(Path::new("/"))),
                        ("/: owner inside", child.ok(&Ask::Owner(PathBuf::from("/")))?),
                    ])
                };
                let before = snap(format!("files, from the host and from the child (pid {pid})"), &owners(child)?);
                let id = child.run(&["id"])?;
                r.ran("child", "id", &id);
                child.ok(&Ask::Create(PathBuf::from(MADE_INSIDE)))?;
                r.say("child", format!("open(\"{MADE_INSIDE}\", O_CREAT|O_EXCL|O_WRONLY)"), "3");
                let inside = child.run(&["stat", "-c", "%u:%g %n", MADE_INSIDE, "/"])?;
                r.ran("child", format!("stat -c '%u:%g %n' {MADE_INSIDE} /"), &inside);
                r.say("host", format!("stat -c '%u:%g %n' {}", made.display()), format!("{} {}", host_owner(&made), made.display()));
                let after_facts = owners(child)?;
                let (uid, _, _) = child.ids()?;
                let after = snap(format!("files, from the host and from the child (pid {pid})"), &after_facts);
                let fact = |k: &str| after_facts.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()).unwrap_or_default();
                r.check_eq("getuid() inside", 0, uid);
                r.check("`id` inside", "uid=0(root)", id.stdout.split_whitespace().next().unwrap_or("").to_string(), id.stdout.starts_with("uid=0(root)"));
                r.check_eq("made-inside: owner on the host", format!("{id_text}:{id_text}"), host_owner(&made));
                r.check_eq("made-inside: owner inside", "0:0".to_string(), fact("made-inside: owner inside"));
                r.check_eq("/ (host root's) seen inside", format!("{}:{}", overflow_id("overflowuid"), overflow_id("overflowgid")), fact("/: owner inside"));
                r.observe(before, after);
            }
            "capabilities" => {
                let target = self.files.join(MOUNT_DIR);
                let child = self.child()?;
                let pid = child.pid();
                let host_facts = || {
                    // Field 5 of mountinfo is the mount point.
                    let info = read_proc(me, "mountinfo");
                    let t = target.display().to_string();
                    let is_mounted = info.lines().any(|l| l.split_whitespace().nth(4) == Some(t.as_str()));
                    vec![
                        ("hostname on the host", host_hostname()),
                        ("mount on wb-userns-files/mnt", if is_mounted { "mounted".to_string() } else { "none".to_string() }),
                    ]
                };
                let before = snap("the host", &host_facts());
                let status = read_proc(pid, "status");
                let eff = status_field(&status, "CapEff").unwrap_or_default();
                let full = full_caps(cap_last_cap());
                r.say("host", format!("grep -E 'CapEff|CapPrm' /proc/{pid}/status"), format!("CapPrm:\t{}\nCapEff:\t{eff}", status_field(&status, "CapPrm").unwrap_or_default()));
                // The host's own name: should the kernel allow it, nothing would change.
                let name = host_hostname();
                let uts = child.errno_of(&Ask::SetHostname(name.clone()))?;
                r.say("child", format!("sethostname(\"{name}\", {})   (the host's UTS namespace)", name.len()), errno_fact(uts));
                // Recorded before the attempt, in case the kernel allowed it; forgotten when refused.
                let mount = Resource::Mount { target: target.clone() };
                state::record(mount.clone())?;
                let mnt = child.errno_of(&Ask::MountTmpfs(PathBuf::from(MOUNT_DIR)))?;
                if mnt != 0 {
                    state::forget(&mount);
                }
                r.say("child", format!("mount(\"wb-userns\", \"{MOUNT_DIR}\", \"tmpfs\", 0, NULL)   (the host's mount namespace)"), errno_fact(mnt));
                let after = snap("the host", &host_facts());
                r.check("CapEff inside (all ones)", format!("{full:016x}"), eff.clone(), parse_caps(&eff) == Some(full));
                r.check_eq("sethostname() in the host's UTS namespace", errno_text(libc::EPERM), errno_fact(uts));
                r.check_eq("mount() in the host's mount namespace", errno_text(libc::EPERM), errno_fact(mnt));
                let same = before.facts == after.facts;
                r.check("the host's hostname and mounts", "unchanged", if same { "unchanged" } else { "changed" }, same);
                r.observe(before, after);
            }
            "own-uts" => {
                let child = self.child()?;
                let pid = child.pid();
                let facts = |child: &mut UserChild| -> anyhow::Result<Vec<(&'static str, String)>> {
                    Ok(vec![
                        ("uts namespace of the child", ns_inode(pid, "uts").to_string()),
                        ("hostname inside", child.ok(&Ask::Hostname)?),
                        ("hostname on the host", host_hostname()),
                    ])
                };
                let host_name = host_hostname();
                let before = snap(format!("child (pid {pid}) and the host"), &facts(child)?);
                child.ok(&Ask::Unshare(CloneFlags::CLONE_NEWUTS.bits()))?;
                r.say("child", "unshare(CLONE_NEWUTS)", "0");
                let set = child.errno_of(&Ask::SetHostname(HOSTNAME.into()))?;
                r.say("child", format!("sethostname(\"{HOSTNAME}\", {})", HOSTNAME.len()), errno_fact(set));
                let hn = child.run(&["hostname"])?;
                r.ran("child", "hostname", &hn);
                r.say("host", "hostname", host_hostname());
                let after = snap(format!("child (pid {pid}) and the host"), &facts(child)?);
                let (host_uts, uts) = (ns_inode(me, "uts"), ns_inode(pid, "uts"));
                r.check("uts namespace of the child (new inode)", format!("not {host_uts}"), uts.to_string(), uts != host_uts && uts != 0);
                r.check_eq("sethostname() in its own UTS namespace", "succeeded".to_string(), errno_fact(set));
                r.check_eq("hostname inside", HOSTNAME.to_string(), hn.stdout.trim().to_string());
                r.check_eq("hostname on the host (unchanged)", host_name, host_hostname());
                r.observe(before, after);
            }
            "ns-owner" => {
                let pid = self.child()?.pid();
                let host_user = ns_inode(me, "user");
                let user = ns_inode(pid, "user");
                let show = |r: Result<u64, i32>| match r {
                    Ok(i) => i.to_string(),
                    Err(e) => errno_text(e),
                };
                let before = snap(
                    format!("namespaces of the child (pid {pid})"),
                    &[
                        ("user (the child's)", user.to_string()),
                        ("user (the host's)", host_user.to_string()),
                        ("uts (the child's)", ns_inode(pid, "uts").to_string()),
                        ("mnt (the child's)", ns_inode(pid, "mnt").to_string()),
                    ],
                );
                let uts_owner = ns_ioctl_inode(pid, "uts", NS_GET_USERNS);
                let mnt_owner = ns_ioctl_inode(pid, "mnt", NS_GET_USERNS);
                let parent = ns_ioctl_inode(pid, "user", NS_GET_PARENT);
                r.say("host", format!("ioctl(open(\"/proc/{pid}/ns/uts\"), NS_GET_USERNS) → fstat().st_ino"), show(uts_owner));
                r.say("host", format!("ioctl(open(\"/proc/{pid}/ns/mnt\"), NS_GET_USERNS) → fstat().st_ino"), show(mnt_owner));
                r.say("host", format!("ioctl(open(\"/proc/{pid}/ns/user\"), NS_GET_PARENT) → fstat().st_ino"), show(parent));
                let mut after = before.clone();
                after.facts.insert("owner of the child's uts (NS_GET_USERNS)".into(), show(uts_owner));
                after.facts.insert("owner of the child's mnt (NS_GET_USERNS)".into(), show(mnt_owner));
                after.facts.insert("parent of the child's user (NS_GET_PARENT)".into(), show(parent));
                r.check_eq("owner of the child's uts = the child's user namespace", user.to_string(), show(uts_owner));
                r.check_eq("owner of the child's mnt = the host's user namespace", host_user.to_string(), show(mnt_owner));
                r.check_eq("parent of the child's user namespace = the host's", host_user.to_string(), show(parent));
                match crate::host::features::which("lsns") {
                    Some(lsns) => {
                        let out = std::process::Command::new(&lsns).args(["-t", "user", "-o", "NS,NPROCS,PID,UID,PNS,COMMAND"]).output()?;
                        let text = String::from_utf8_lossy(&out.stdout).into_owned();
                        r.say("host", "lsns -t user -o NS,NPROCS,PID,UID,PNS,COMMAND   (the host's and the child's lines)", lsns_lines(&text, &[host_user, user]).join("\n"));
                        let per = std::process::Command::new(&lsns).args(["-p", &pid.to_string(), "-o", "NS,TYPE,PID,ONS"]).output()?;
                        r.say("host", format!("lsns -p {pid} -o NS,TYPE,PID,ONS"), String::from_utf8_lossy(&per.stdout).trim_end().to_string());
                        let found = lsns_uid_pns(&text, user);
                        r.check_eq("lsns: the child's user namespace (UID, PNS)", format!("{OUTSIDE_ID} {host_user}"), found.map(|(u, p)| format!("{u} {p}")).unwrap_or_else(|| "not listed".into()));
                    }
                    None => r.say("host", "lsns -t user", "lsns is not installed (apt-get install util-linux): this part is skipped"),
                }
                r.observe(before, after);
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    fn shell(&mut self, _cx: &mut Cx) -> anyhow::Result<()> {
        let shell = ["/bin/bash", "/usr/bin/bash", "/bin/sh"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("/bin/sh");
        let mut argv = vec![shell.to_string()];
        if shell.ends_with("bash") {
            argv.extend(["--norc".to_string(), "--noprofile".to_string(), "-i".to_string()]);
        }
        let mut env: Vec<(String, String)> = crate::kit::shell_env("user-ns").into_iter().filter(|(k, _)| k != "HOME").collect();
        // /root is the host root's, which is nobody inside: stay in the child's directory.
        env.push(("HOME".into(), self.files.display().to_string()));
        env.push(("HISTFILE".into(), String::new()));
        match self.child()?.call(&Ask::Shell { argv, env })? {
            Answer::Ran(_) => Ok(()),
            Answer::Failed(e) => anyhow::bail!("{e}"),
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_knobs_that_forbid_user_namespaces_are_refused_with_one_line() {
        assert!(userns_allowed(None, Some("15000\n"), None).is_ok());
        assert!(userns_allowed(Some("1\n"), Some("15000\n"), Some("0\n")).is_ok());
        let e = userns_allowed(Some("0\n"), Some("15000"), None).unwrap_err();
        assert!(e.starts_with("kernel.unprivileged_userns_clone is 0") && !e.contains('\n'), "{e}");
        assert!(userns_allowed(None, Some("0\n"), None).unwrap_err().starts_with("user.max_user_namespaces is 0"));
        assert!(userns_allowed(None, None, Some("1\n")).unwrap_err().contains("apparmor"));
    }

    #[test]
    fn status_fields_and_capabilities() {
        let status = "Name:\tworkbench\nUid:\t100000\t100000\t100000\t100000\nGroups:\t\nCapEff:\t000001ffffffffff\n";
        assert_eq!(status_field(status, "Uid").as_deref(), Some("100000 100000 100000 100000"));
        assert_eq!(status_field(status, "Groups").as_deref(), Some(""));
        assert_eq!(status_field(status, "Gid"), None);
        assert_eq!(parse_caps(&status_field(status, "CapEff").unwrap()), Some(full_caps(40)));
        assert_eq!(full_caps(40), 0x1ff_ffff_ffff);
        assert_eq!(full_caps(63), u64::MAX);
        assert_ne!(parse_caps("0000000000000000"), Some(full_caps(40)));
    }

    #[test]
    fn maps_read_as_one_line_each() {
        assert_eq!(map_text(""), "(empty)");
        assert_eq!(map_text("         0     100000          1\n"), "0 100000 1");
        assert_eq!(map_text("0 0 4294967295\n1 2 3\n"), "0 0 4294967295; 1 2 3");
        assert_eq!(map_line(), "0 100000 1");
    }

    /// Root: the whole lesson, in process, as `--json` runs it; every step
    /// passes and nothing of the run is left on the host (the child, the
    /// directory with its uid-100000 files, the state file).
    #[test]
    fn the_lesson_passes_and_leaves_nothing_behind() {
        let _serial = crate::kit::root_test_lock();
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: the user-ns lesson needs root");
            return;
        }
        let def = crate::lessons::find("userns").expect("user-ns is registered under its alias");
        let summary = crate::lesson::runner::run(def, &crate::lesson::runner::RunOptions::JSON, Default::default()).expect("the lesson starts");
        assert!(summary.pass, "{summary:?}");
        assert_eq!(summary.steps_passed, 7);
        let host = serde_json::to_string(&crate::host::snapshot::capture()).unwrap();
        assert!(!host.contains(&summary.run_id), "run {} left something: {host}", summary.run_id);
        let left: Vec<_> = std::fs::read_dir(crate::state::tmp_dir())
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        assert!(!left.iter().any(|n: &String| n.contains(&summary.run_id)), "{left:?}");
    }

    #[test]
    fn lsns_rows_are_found_by_inode() {
        let out = "        NS NPROCS   PID    UID        PNS COMMAND\n\
                   4026531837    120     1      0          0 /sbin/init\n\
                   4026532700      1  4242 100000 4026531837 workbench lesson user-ns\n";
        assert_eq!(lsns_uid_pns(out, 4026532700), Some((100000, 4026531837)));
        assert_eq!(lsns_uid_pns(out, 1), None);
        assert_eq!(lsns_lines(out, &[4026532700]).len(), 2);
        assert!(lsns_lines(out, &[4026532700])[1].contains("4242"));
    }
}
