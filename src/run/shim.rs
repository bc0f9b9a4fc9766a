//! `workbench run --detach` and its `workbench shim`: the container's parent
//! outlives the command that started it, the way containerd-shim does for
//! runc's containers.
//!
//! A process's exit status goes to its parent, and only the parent can reap
//! it; its stdout and stderr are whatever it inherited. So a container that
//! must outlive the command line needs a parent of its own: the CLI re-executes
//! itself as `workbench shim` in a new session (setsid: no terminal, so Ctrl-C
//! and a closed terminal do not reach it), the shim starts the container as
//! `workbench run` does with its output in the record's `log`, tells the CLI
//! it started, and then waits, reaps it, records the exit status and removes
//! what the run created.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;

use super::args::{RunArgs, RunSpec};
use crate::error::UsageError;

/// The variable naming the descriptor the shim reports its start on.
pub const STATUS_FD_VAR: &str = "WORKBENCH_SHIM_STATUS_FD";

/// The arguments of `workbench run` as typed (after `run`), for the shim to parse again.
fn run_arguments() -> anyhow::Result<Vec<OsString>> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let at = argv
        .iter()
        .skip(1)
        .position(|a| a == "run")
        .ok_or_else(|| anyhow::anyhow!("--detach: `run` not found in the command line"))?;
    Ok(argv[at + 2..].to_vec())
}

/// The CLI side: start `workbench shim` (a new session, stdin and stdout
/// /dev/null, stderr ours until the container starts), wait for its "started",
/// print the container's name and return; if the shim ends first, its status.
pub fn detach(spec: &RunSpec, generated: Option<&str>) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let name = spec.name.clone().expect("a detached container has a name");
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg0("workbench").arg("shim");
    if let Some(n) = generated {
        cmd.args(["--name", n]);
    }
    cmd.args(run_arguments()?)
        .env(STATUS_FD_VAR, "3")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    let wfd = w.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if wfd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(wfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| anyhow::anyhow!("start workbench shim: {e}"))?;
    drop(w);
    let mut said = Vec::new();
    let _ = std::fs::File::from(r).read_to_end(&mut said);
    if said.starts_with(b"started") {
        println!("{name}");
        // The shim stays: it is the container's parent now (init adopts it when we exit).
        return Ok(ExitCode::SUCCESS);
    }
    let status = child.wait()?;
    Ok(ExitCode::from(status.code().map(|c| c as u8).unwrap_or(125)))
}

/// `workbench shim` (hidden): started by `workbench run --detach` only.
pub fn main(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let fd: RawFd = std::env::var(STATUS_FD_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|fd| *fd > 2 && nix::fcntl::fcntl(unsafe_borrow(*fd), nix::fcntl::FcntlArg::F_GETFD).is_ok())
        .ok_or_else(|| UsageError("workbench shim is started by `workbench run --detach`, not by hand".into()))?;
    // SAFETY: the descriptor the CLI set up for us (checked open above), owned by nobody else here.
    let status = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::fcntl::fcntl(&status, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
    // Orphans below us come to us rather than to init (containerd-shim does the same for runc's).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let (spec, _) = super::validate(args, false)?;
    super::execute(args, &spec, Some(status))
}

fn unsafe_borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: used only for an F_GETFD probe of a descriptor number.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}
