//! A child process in new namespaces that does what the lesson asks, one
//! request at a time.
//!
//! `clone(2)` with `CLONE_NEW*` flags starts a process in fresh namespaces.
//! The classic tutorials then synchronise parent and child with a pipe: the
//! child blocks until the parent has finished its own part (here: writing the
//! child's PID into the state file so a crash can never leave it behind).
//! After that the child serves requests over a socket — set the hostname,
//! mount, chroot, run a command — so each lesson step happens for real
//! *inside* the namespaces while the parent observes from outside through
//! `/proc/PID/*`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::{io, sys, KernelError, Result};

/// What the parent can ask the child to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// The end of the pipe synchronisation: the child may start.
    Go,
    /// Report `getpid()`, `getppid()` and the hostname as the child sees them.
    Whoami,
    SetHostname(String),
    MakeRprivate,
    MountProc(PathBuf),
    Unmount(PathBuf),
    Chroot(PathBuf),
    /// `mount -t overlay overlay -o lowerdir=L1:L2,upperdir=U,workdir=W MERGED`
    /// (lower dirs top-most first, as overlayfs lists them).
    MountOverlay {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
        merged: PathBuf,
    },
    /// `echo TEXT > PATH` (or `>> PATH` with `append`), done by the child itself
    /// so that the write goes through the child's mounts.
    WriteFile {
        path: PathBuf,
        contents: String,
        append: bool,
    },
    /// `rm PATH`, or `rm -r PATH` with `recursive`.
    Remove {
        path: PathBuf,
        recursive: bool,
    },
    /// `mkdir -m MODE PATH`.
    Mkdir {
        path: PathBuf,
        mode: u32,
    },
    /// Run a command inside, capturing its output.
    Run {
        argv: Vec<String>,
    },
    /// Run an interactive command on the terminal (for `--shell`).
    Interactive {
        argv: Vec<String>,
        env: Vec<(String, String)>,
    },
    /// Start a long-running command inside (a server such as `httpd -f`) and
    /// answer at once with its PID as the child sees it. Its standard streams
    /// are /dev/null. It dies with the child's PID namespace, so only send
    /// this to a child cloned with `CLONE_NEWPID`.
    Spawn {
        argv: Vec<String>,
    },
    /// `setns(open(path), CLONE_NEWNET)`: join the network namespace behind a
    /// namespace file such as `/proc/PID/ns/net` (what `nsenter -t PID -n` does).
    SetnsNet(PathBuf),
}

impl Request {
    /// [`Request::MountOverlay`] of an overlay spec.
    pub fn mount_overlay(spec: &wb_image::OverlaySpec) -> Request {
        Request::MountOverlay {
            lowers: spec.lowers.clone(),
            upper: spec.upper.clone(),
            work: spec.work.clone(),
            merged: spec.merged.clone(),
        }
    }
}

/// The child's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum Reply {
    Done,
    Whoami {
        pid: i32,
        ppid: i32,
        hostname: String,
    },
    Ran(RunOutput),
    /// [`Request::Spawn`] started a process with this PID (inside the child's PID namespace).
    Spawned {
        pid: i32,
    },
    Failed(String),
}

/// The result of [`Request::Run`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct RunOutput {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Terminating signal, if it was killed.
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// `execve` itself failed: the error text and errno.
    pub spawn_error: Option<(String, i32)>,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// "exit 0", "killed by signal 9", "execve failed: No such file or directory".
    pub fn describe(&self) -> String {
        match (&self.spawn_error, self.code, self.signal) {
            (Some((e, _)), _, _) => format!("execve failed: {e}"),
            (None, Some(c), _) => format!("exit {c}"),
            (None, None, Some(s)) => format!("killed by signal {s}"),
            _ => "unknown".into(),
        }
    }
}

/// The parent's handle on a namespace child.
pub struct NsChild {
    pid: Pid,
    stream: BufReader<UnixStream>,
    flags: CloneFlags,
    reaped: bool,
}

const STACK_SIZE: usize = 8 << 20;
const PATH: &str = "/bin:/sbin:/usr/bin:/usr/sbin:/usr/local/bin";

impl NsChild {
    /// `clone(flags | SIGCHLD)`; the child waits for [`Request::Go`].
    pub fn spawn(flags: CloneFlags) -> Result<NsChild> {
        let (parent_end, child_end) = sys(
            socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC),
            "socketpair",
            "AF_UNIX",
        )?;
        let mut stack = vec![0u8; STACK_SIZE];
        let mut child_sock = Some(child_end);
        let parent_raw = std::os::fd::AsRawFd::as_raw_fd(&parent_end);
        let cb = Box::new(move || -> isize {
            // In the child: a copy of this process, single-threaded.
            let _ = nix::unistd::close(parent_raw);
            let sock = child_sock.take().expect("child socket");
            child_main(UnixStream::from(sock))
        });
        // SAFETY: the child runs only `child_main`, which never returns into the
        // parent's code paths; the process is not multi-threaded at this point
        // except for the idle signal thread, which the child does not inherit.
        let pid = unsafe { nix::sched::clone(cb, &mut stack, flags, Some(Signal::SIGCHLD as i32)) };
        let pid = sys(pid, "clone", super::ns::flag_names(flags))?;
        drop(stack);
        Ok(NsChild {
            pid,
            stream: BufReader::new(UnixStream::from(parent_end)),
            flags,
            reaped: false,
        })
    }

    /// The child's PID as the host (the parent) sees it.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    pub fn flags(&self) -> CloneFlags {
        self.flags
    }

    /// Send one request and wait for the reply.
    pub fn call(&mut self, req: &Request) -> Result<Reply> {
        let mut line = serde_json::to_string(req).map_err(|e| KernelError::Child(e.to_string()))?;
        line.push('\n');
        io(
            self.stream.get_mut().write_all(line.as_bytes()),
            "write to namespace child",
        )?;
        let mut answer = String::new();
        let n = io(self.stream.read_line(&mut answer), "read from namespace child")?;
        if n == 0 {
            return Err(KernelError::Child(format!("child {} exited unexpectedly", self.pid)));
        }
        serde_json::from_str(&answer).map_err(|e| KernelError::Child(format!("bad reply {answer:?}: {e}")))
    }

    /// Call and expect [`Reply::Done`].
    pub fn act(&mut self, req: &Request) -> Result<()> {
        match self.call(req)? {
            Reply::Done => Ok(()),
            other => Err(not_expected(other)),
        }
    }

    /// Run a command inside and return its output.
    pub fn run(&mut self, argv: &[&str]) -> Result<RunOutput> {
        match self.call(&Request::Run {
            argv: argv.iter().map(|s| s.to_string()).collect(),
        })? {
            Reply::Ran(out) => Ok(out),
            other => Err(not_expected(other)),
        }
    }

    /// Start a long-running command inside; returns its PID as the child sees it.
    pub fn spawn_inside(&mut self, argv: &[&str]) -> Result<i32> {
        match self.call(&Request::Spawn {
            argv: argv.iter().map(|s| s.to_string()).collect(),
        })? {
            Reply::Spawned { pid } => Ok(pid),
            other => Err(not_expected(other)),
        }
    }

    /// `getpid()`, `getppid()` and the hostname inside.
    pub fn whoami(&mut self) -> Result<(i32, i32, String)> {
        match self.call(&Request::Whoami)? {
            Reply::Whoami { pid, ppid, hostname } => Ok((pid, ppid, hostname)),
            other => Err(not_expected(other)),
        }
    }

    /// Stop the child (SIGKILL) and reap it. Killing the init of a PID
    /// namespace kills every process in it; its mounts vanish with the namespace.
    pub fn kill(&mut self) {
        if !self.reaped {
            let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
            self.reaped = true;
        }
    }

    /// Has the child exited? (non-blocking)
    pub fn exited(&mut self) -> bool {
        if self.reaped {
            return true;
        }
        match waitpid(self.pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => false,
            _ => {
                self.reaped = true;
                true
            }
        }
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The child's side: wait for `Go`, then serve requests until the socket closes.
fn child_main(sock: UnixStream) -> isize {
    // Die with the parent, even if it is killed with SIGKILL.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    // Ctrl-C belongs to the parent, which tears everything down.
    unsafe {
        let _ = nix::sys::signal::signal(Signal::SIGINT, nix::sys::signal::SigHandler::SigIgn);
        let _ = nix::sys::signal::signal(Signal::SIGTERM, nix::sys::signal::SigHandler::SigDfl);
    }
    let mut reader = BufReader::new(match sock.try_clone() {
        Ok(s) => s,
        Err(_) => return 1,
    });
    let mut writer = sock;
    let mut started = false;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return 0, // parent gone
            Ok(_) => {}
        }
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(Request::Go) => {
                started = true;
                Reply::Done
            }
            Ok(_) if !started => Reply::Failed("child not released yet (send Go first)".into()),
            Ok(req) => serve(req),
            Err(e) => Reply::Failed(format!("bad request: {e}")),
        };
        let mut out = serde_json::to_string(&reply).unwrap_or_else(|_| "\"Done\"".into());
        out.push('\n');
        if writer.write_all(out.as_bytes()).is_err() {
            return 0;
        }
    }
}

fn serve(req: Request) -> Reply {
    fn done(r: Result<()>) -> Reply {
        match r {
            Ok(()) => Reply::Done,
            Err(e) => Reply::Failed(e.to_string()),
        }
    }
    match req {
        Request::Go => Reply::Done,
        Request::Whoami => Reply::Whoami {
            pid: nix::unistd::getpid().as_raw(),
            ppid: nix::unistd::getppid().as_raw(),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
        },
        Request::SetHostname(name) => done(sys(nix::unistd::sethostname(&name), "sethostname", name.clone())),
        Request::MakeRprivate => done(super::mount::make_rprivate()),
        Request::MountProc(target) => done(super::mount::mount_proc(&target)),
        Request::Unmount(target) => done(super::mount::unmount(&target)),
        Request::Chroot(dir) => done(
            sys(nix::unistd::chroot(&dir), "chroot", dir.display().to_string())
                .and_then(|_| sys(nix::unistd::chdir("/"), "chdir", "/")),
        ),
        Request::MountOverlay {
            lowers,
            upper,
            work,
            merged,
        } => done(super::mount::mount_overlay(&wb_image::OverlaySpec::new(
            lowers, upper, work, merged,
        ))),
        Request::WriteFile { path, contents, append } => done(write_file(&path, &contents, append)),
        Request::Remove { path, recursive } => done(remove_path(&path, recursive)),
        Request::Mkdir { path, mode } => done(make_dir(&path, mode)),
        Request::Run { argv } => run_captured(&argv),
        Request::Spawn { argv } => spawn_background(&argv),
        Request::SetnsNet(path) => done(setns_net(&path)),
        Request::Interactive { argv, env } => {
            let Some((prog, args)) = argv.split_first() else {
                return Reply::Failed("empty command".into());
            };
            let mut cmd = Command::new(prog);
            cmd.args(args).env("PATH", PATH);
            for (k, v) in env {
                cmd.env(k, v);
            }
            unsafe {
                // The shell should react to Ctrl-C itself.
                let _ = nix::sys::signal::signal(Signal::SIGINT, nix::sys::signal::SigHandler::SigDfl);
            }
            let r = cmd.spawn().map(|c| wait_reaping(Pid::from_raw(c.id() as i32)));
            unsafe {
                let _ = nix::sys::signal::signal(Signal::SIGINT, nix::sys::signal::SigHandler::SigIgn);
            }
            match r {
                Ok(Ok(WaitStatus::Exited(_, code))) => Reply::Ran(RunOutput {
                    code: Some(code),
                    ..Default::default()
                }),
                Ok(Ok(WaitStatus::Signaled(_, sig, _))) => Reply::Ran(RunOutput {
                    signal: Some(sig as i32),
                    ..Default::default()
                }),
                Ok(Ok(other)) => Reply::Failed(format!("waitpid {prog}: unexpected status {other:?}")),
                Ok(Err(e)) => Reply::Failed(format!("waitpid {prog}: {e}")),
                Err(e) => Reply::Failed(format!("execve {prog}: {e}")),
            }
        }
    }
}

/// Wait for `pid` the way the init of a PID namespace must: every other
/// child that exits meanwhile is reaped too — the helper that busybox
/// `timeout` leaves behind, processes orphaned inside the namespace — so no
/// zombie lingers in the shell's `ps`. Background processes started with
/// [`Request::Spawn`] are waited for by nobody else, so reaping them steals
/// no one's exit status.
fn wait_reaping(pid: Pid) -> nix::Result<WaitStatus> {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(st) if st.pid() == Some(pid) => return Ok(st),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn write_file(path: &std::path::Path, contents: &str, append: bool) -> Result<()> {
    let what = format!("{} {}", if append { "append to" } else { "write" }, path.display());
    let mut f = io(
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path),
        what.clone(),
    )?;
    io(f.write_all(contents.as_bytes()), what)
}

fn remove_path(path: &std::path::Path, recursive: bool) -> Result<()> {
    let is_dir = io(std::fs::symlink_metadata(path), format!("lstat {}", path.display()))?.is_dir();
    match (is_dir, recursive) {
        (true, true) => io(std::fs::remove_dir_all(path), format!("rm -r {}", path.display())),
        (true, false) => io(std::fs::remove_dir(path), format!("rmdir {}", path.display())),
        (false, _) => io(std::fs::remove_file(path), format!("unlink {}", path.display())),
    }
}

fn make_dir(path: &std::path::Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    io(
        std::fs::DirBuilder::new().mode(mode).create(path),
        format!("mkdir {}", path.display()),
    )?;
    // The umask may have cleared bits of `mode`: set them exactly.
    io(
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)),
        format!("chmod {}", path.display()),
    )
}

/// The error for a reply a call did not expect: the child's own failure, or
/// a reply of another kind.
fn not_expected(reply: Reply) -> KernelError {
    match reply {
        Reply::Failed(e) => KernelError::Child(e),
        other => KernelError::Child(format!("unexpected reply {other:?}")),
    }
}

/// `argv` as a command with a clean environment (PATH and HOME only) and
/// stdin from /dev/null; `Err` for an empty argv.
fn clean_command(argv: &[String]) -> std::result::Result<(&String, Command), Reply> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(Reply::Failed("empty command".into()));
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", "/root")
        .stdin(Stdio::null());
    Ok((prog, cmd))
}

fn spawn_background(argv: &[String]) -> Reply {
    let (prog, mut cmd) = match clean_command(argv) {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    let spawned = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    match spawned {
        // The handle is dropped: the process runs on, and is reaped by nobody
        // until the namespace's init (this child) dies and takes it along.
        Ok(c) => Reply::Spawned { pid: c.id() as i32 },
        Err(e) => Reply::Failed(format!("execve {prog}: {}", strip_os_error(&e))),
    }
}

fn setns_net(path: &std::path::Path) -> Result<()> {
    let file = io(std::fs::File::open(path), format!("open {}", path.display()))?;
    sys(
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET),
        "setns",
        format!("{} (CLONE_NEWNET)", path.display()),
    )
}

fn run_captured(argv: &[String]) -> Reply {
    let mut cmd = match clean_command(argv) {
        Ok((_, c)) => c,
        Err(reply) => return reply,
    };
    let out = cmd
        .env("TERM", std::env::var("TERM").unwrap_or_else(|_| "dumb".into()))
        .output();
    match out {
        Ok(o) => Reply::Ran(RunOutput {
            code: o.status.code(),
            signal: o.status.signal(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            spawn_error: None,
        }),
        Err(e) => Reply::Ran(RunOutput {
            spawn_error: Some((strip_os_error(&e), e.raw_os_error().unwrap_or(0))),
            ..Default::default()
        }),
    }
}

/// "No such file or directory (os error 2)" → "No such file or directory".
fn strip_os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
