//! Hogs: small programs that use up a resource on purpose, so that a cgroup
//! limit has something to limit.
//!
//! A cgroup only shows its teeth under pressure: a CPU quota throttles a
//! process that wants more CPU, a memory limit OOM-kills one that keeps
//! allocating, pids.max refuses a fork. Each hog is an ordinary child of
//! workbench, started in its own process group (so Ctrl-C reaches workbench,
//! which cleans up), with `PR_SET_PDEATHSIG(SIGKILL)` so it dies with
//! workbench even after a `kill -9`, and with `RLIMIT_CPU` as a time bound the
//! kernel enforces. It can wait on stdin for "go" (so it is moved into its
//! cgroup before it uses anything), be pinned to one CPU with
//! `sched_setaffinity(2)`, and be chrooted into a busybox rootfs.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::state::{self, Resource};

/// What the hog runs.
#[derive(Debug, Clone)]
pub enum Program {
    /// `workbench internal-hog --threads N --seconds S`: N threads spinning
    /// in `while (1) {}` until S seconds have passed.
    Cpu { threads: u32, seconds: u32 },
    /// `sh -c SCRIPT` of the static busybox: chrooted into `rootfs` (whose
    /// /bin/sh is that busybox) when given, else the host's `busybox` itself.
    Shell {
        busybox: PathBuf,
        rootfs: Option<PathBuf>,
        script: String,
    },
}

/// How to start a hog.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Short name, used for its output files ("hog", "hog-a").
    pub name: String,
    pub program: Program,
    /// Wait for [`Hog::release`] before doing anything (needs a script that
    /// starts with `read go`, or the CPU hog's `--wait`).
    pub gated: bool,
    /// Pin to this CPU (`sched_setaffinity`), inherited by every thread. (On
    /// cgroup v2 a later move into a group of another cpuset may reset it.)
    pub pin_cpu: Option<usize>,
    /// RLIMIT_CPU in seconds: the kernel sends SIGXCPU, then SIGKILL.
    pub cpu_seconds: u64,
    /// RLIMIT_AS in bytes, a last resort should a memory limit not hold.
    pub address_space: Option<u64>,
    /// Where stdout and stderr go (files `<name>.out`, `<name>.err`).
    pub output_dir: PathBuf,
}

impl Spec {
    /// The CPU hog: `threads` threads spinning for `seconds`, ungated and
    /// unpinned, RLIMIT_CPU ten seconds over what they can use.
    pub fn cpu(name: impl Into<String>, threads: u32, seconds: u32, output_dir: &Path) -> Spec {
        Spec {
            name: name.into(),
            program: Program::Cpu { threads, seconds },
            gated: false,
            pin_cpu: None,
            cpu_seconds: u64::from(seconds) * u64::from(threads) + 10,
            address_space: None,
            output_dir: output_dir.to_path_buf(),
        }
    }

    /// A gated busybox `sh -c SCRIPT` (the script starts with `read go`),
    /// unpinned, with RLIMIT_CPU `cpu_seconds`.
    pub fn gated_shell(
        name: impl Into<String>,
        busybox: &Path,
        rootfs: Option<PathBuf>,
        script: &str,
        cpu_seconds: u64,
        output_dir: &Path,
    ) -> Spec {
        Spec {
            name: name.into(),
            program: Program::Shell {
                busybox: busybox.to_path_buf(),
                rootfs,
                script: script.to_string(),
            },
            gated: true,
            pin_cpu: None,
            cpu_seconds,
            address_space: None,
            output_dir: output_dir.to_path_buf(),
        }
    }
}

/// A running hog, recorded in the state file. Dropping it kills and reaps it.
pub struct Hog {
    child: Child,
    pid: i32,
    resource: Resource,
    out: PathBuf,
    err: PathBuf,
    status: Option<ExitStatus>,
}

impl Hog {
    /// Start the hog and record it (under the state lock, like namespace children).
    pub fn spawn(spec: &Spec) -> anyhow::Result<Hog> {
        let out = spec.output_dir.join(format!("{}.out", spec.name));
        let err = spec.output_dir.join(format!("{}.err", spec.name));
        let stdout = std::fs::File::create(&out).with_context(|| format!("create {}", out.display()))?;
        let stderr = std::fs::File::create(&err).with_context(|| format!("create {}", err.display()))?;
        let mut cmd = match &spec.program {
            Program::Cpu { threads, seconds } => {
                let exe = std::env::current_exe().context("find workbench's own executable (/proc/self/exe)")?;
                let mut c = Command::new(exe);
                c.args([
                    "internal-hog",
                    "--threads",
                    &threads.to_string(),
                    "--seconds",
                    &seconds.to_string(),
                ]);
                if spec.gated {
                    c.arg("--wait");
                }
                c
            }
            Program::Shell {
                busybox,
                rootfs,
                script,
            } => {
                let mut c = match rootfs {
                    Some(_) => Command::new("/bin/sh"),
                    None => {
                        let mut c = Command::new(busybox);
                        c.arg("sh");
                        c
                    }
                };
                c.args(["-c", script])
                    .env_clear()
                    .env("PATH", "/bin:/sbin:/usr/bin:/usr/sbin")
                    .env("HOME", "/");
                c
            }
        };
        cmd.stdin(if spec.gated { Stdio::piped() } else { Stdio::null() })
            .stdout(stdout)
            .stderr(stderr);

        // Everything the child does between fork and exec is prepared here:
        // only async-signal-safe system calls run in the child.
        let parent = nix::unistd::getpid().as_raw();
        let root = match &spec.program {
            Program::Shell {
                rootfs: Some(rootfs), ..
            } => Some(CString::new(rootfs.as_os_str().as_bytes()).context("rootfs path contains NUL")?),
            _ => None,
        };
        let cpuset = spec.pin_cpu.map(cpu_set).transpose()?;
        let cpu_limit = libc::rlimit {
            rlim_cur: spec.cpu_seconds,
            rlim_max: spec.cpu_seconds + 1,
        };
        let as_limit = spec.address_space.map(|b| libc::rlimit {
            rlim_cur: b,
            rlim_max: b,
        });
        // SAFETY: the closure runs in the forked child and only makes raw
        // system calls (prctl, getppid, setpgid, setrlimit, sched_setaffinity,
        // chroot, chdir), which are async-signal-safe; nothing allocates.
        unsafe {
            cmd.pre_exec(move || {
                die_with_parent(parent)?;
                if libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::setrlimit(libc::RLIMIT_CPU, &cpu_limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(l) = &as_limit {
                    if libc::setrlimit(libc::RLIMIT_AS, l) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if let Some(set) = &cpuset {
                    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), set)?;
                }
                if let Some(root) = &root {
                    if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let what = match &spec.program {
            Program::Cpu { .. } => "workbench internal-hog".to_string(),
            Program::Shell {
                rootfs: Some(rootfs), ..
            } => format!("/bin/sh in {}", rootfs.display()),
            Program::Shell { busybox, .. } => format!("{} sh", busybox.display()),
        };
        state::track(|| -> anyhow::Result<_> {
            let child = cmd.spawn().with_context(|| format!("start the hog ({what})"))?;
            let pid = child.id() as i32;
            let start_time = crate::kernel::proc::start_time(pid).unwrap_or(0);
            let resource = Resource::Process { pid, start_time };
            Ok((
                Hog {
                    child,
                    pid,
                    resource: resource.clone(),
                    out,
                    err,
                    status: None,
                },
                resource,
            ))
        })
    }

    /// The hog's PID as the host sees it.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Let a gated hog start: write "go" to its stdin and close it.
    pub fn release(&mut self) -> anyhow::Result<()> {
        let mut stdin = self
            .child
            .stdin
            .take()
            .context("the hog was not started gated (no stdin pipe)")?;
        stdin
            .write_all(b"go\n")
            .with_context(|| format!("write to the stdin of hog {}", self.pid))?;
        Ok(())
    }

    /// The exit status, if it has exited (reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exited(st);
            }
        }
        self.status
    }

    /// Wait up to `timeout` for the hog to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_status() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL and reap it (no-op if it already exited).
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(st) = self.try_status() {
            return st;
        }
        let _ = self.child.kill();
        let st = self
            .child
            .wait()
            .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL));
        self.exited(st);
        st
    }

    fn exited(&mut self, st: ExitStatus) {
        self.status = Some(st);
        // Reaped: the PID may be reused now, so the state file must forget it.
        state::forget(&self.resource);
    }

    /// Everything the hog wrote to stdout and stderr so far.
    pub fn output(&self) -> (String, String) {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        (read(&self.out), read(&self.err))
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a shell would report an exit status: "exit status 2", "killed by
/// SIGKILL, exit status 137 in a shell".
pub fn describe_status(st: &ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => {
            let name = nix::sys::signal::Signal::try_from(s)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| format!("signal {s}"));
            format!("killed by {name}, exit status {} in a shell", 128 + s)
        }
        _ => "unknown".into(),
    }
}

/// The body of `workbench internal-hog`: `threads` threads (the calling one
/// included) spinning until `seconds` have passed. With `wait`, first read a
/// line from stdin (the "go" of [`Hog::release`]).
pub fn busy_loop(threads: u32, seconds: u32, wait: bool) {
    if wait {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    let deadline = Instant::now() + Duration::from_secs(u64::from(seconds));
    let spin = move || {
        let mut x: u64 = 1;
        while Instant::now() < deadline {
            for _ in 0..20_000 {
                x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
        }
    };
    let others: Vec<_> = (1..threads.max(1)).map(|_| std::thread::spawn(spin)).collect();
    spin();
    for t in others {
        let _ = t.join();
    }
}

/// Pin a (single-threaded) process to one CPU, like `taskset -p -c CPU PID`.
pub fn pin(pid: i32, cpu: usize) -> anyhow::Result<()> {
    let set = cpu_set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(pid), &set)
        .with_context(|| format!("sched_setaffinity({pid}, {{{cpu}}})"))
}

/// The affinity mask holding only `cpu`, made before a fork so the child
/// only has to hand it to sched_setaffinity(2).
pub(crate) fn cpu_set(cpu: usize) -> anyhow::Result<nix::sched::CpuSet> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)
        .with_context(|| format!("cpu {cpu} is beyond CPU_SETSIZE"))?;
    Ok(set)
}

/// Between fork and exec: die with `parent` (SIGKILL, even after a `kill -9`
/// of it), and exit at once if it already died before the prctl, when nobody
/// would kill us. Raw system calls only: async-signal-safe.
pub(crate) fn die_with_parent(parent: i32) -> std::io::Result<()> {
    // SAFETY: prctl, getppid and _exit are plain system calls.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::getppid() != parent {
            libc::_exit(1);
        }
    }
    Ok(())
}

/// CPUs workbench may run on (its affinity mask), in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => (0..std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_like_a_shell() {
        assert_eq!(describe_status(&ExitStatus::from_raw(2 << 8)), "exit status 2");
        assert_eq!(
            describe_status(&ExitStatus::from_raw(libc::SIGKILL)),
            "killed by SIGKILL, exit status 137 in a shell"
        );
    }

    #[test]
    fn some_cpu_is_allowed() {
        assert!(!allowed_cpus().is_empty());
    }

    #[test]
    fn busy_loop_ends_at_its_deadline() {
        let t = Instant::now();
        busy_loop(2, 0, false);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
