//! Running code inside another network namespace.
//!
//! A process's network namespace is visible as the file
//! `/proc/PID/ns/net`. Opening it and calling `setns(fd, CLONE_NEWNET)`
//! moves the *calling thread* into that namespace; sockets the thread opens
//! afterwards (and processes it starts) belong to it. Other threads are not
//! affected, so the crate does this on a throw-away helper thread and never
//! touches the caller's namespace.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use crate::error::{Error, Result};

/// `/proc/PID/ns/net`: the handle of the network namespace of process `pid`.
pub fn netns_path_of_pid(pid: i32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}

/// Runs `f` on a helper thread that has joined the network namespace of
/// process `pid`, and returns its result. Netlink sockets opened by `f` (all
/// functions of this crate open their own) and processes it spawns live in
/// that namespace. The calling thread's namespace never changes. A panic in
/// `f` is resumed on the calling thread.
pub fn in_netns_of<T: Send>(pid: i32, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    in_netns_file(netns_path_of_pid(pid), f)
}

/// Like [`in_netns_of`], with a namespace file such as `/proc/PID/ns/net` or
/// `/run/netns/NAME` (made by `ip netns add NAME`).
pub fn in_netns_file<T: Send>(path: impl AsRef<Path>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let path = path.as_ref().to_path_buf();
    let file = File::open(&path).map_err(|source| Error::OpenNetns {
        path: path.clone(),
        source,
    })?;
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("wb-net-netns".into())
            .spawn_scoped(s, move || {
                setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| Error::Setns {
                    path: path.clone(),
                    errno: e as i32,
                })?;
                drop(file);
                f()
            })
            .map_err(|source| Error::Thread { source })?;
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
