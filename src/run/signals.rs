//! Signals of `workbench run`, without a signal thread: SIGINT, SIGTERM,
//! SIGHUP and SIGCHLD are blocked and waited for, so the container's exit and
//! a request to stop arrive on one queue. The command's status is reported as
//! a shell does (128 + the signal number when a signal ended it).

use anyhow::Context;

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
    pub(super) set: nix::sys::signal::SigSet,
    /// With -t, Ctrl-C on the terminal is for the command, not for workbench.
    pub(super) ignore_int: bool,
}

impl Signals {
    pub(super) fn block() -> anyhow::Result<Signals> {
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
    pub(super) fn check(&self) -> Result<(), Interrupted> {
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
    pub(super) fn wait_child(&self, pid: i32) -> anyhow::Result<Result<ExitStatus, Interrupted>> {
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
    let name = nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str())
        .unwrap_or("a signal");
    eprintln!("workbench: caught {name}, removing what this run created");
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

pub(super) fn wait_for(pid: i32) -> anyhow::Result<ExitStatus> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_like_a_shell() {
        assert_eq!(ExitStatus::Exited(7).code(), 7);
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert_eq!(ExitStatus::Signaled(15).code(), 143);
    }
}
