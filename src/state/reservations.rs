//! Host-wide locks, and what runs share through them: a kernel parameter
//! changed by one run and held by another is restored by whichever ends last.

use super::*;

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
    let file = create_private_dir(&root).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ioerr("open", &path))
    });
    let file = match (file, deadline) {
        (Ok(f), _) => f,
        (Err(_), Some(_)) => return Ok(f()),
        (Err(e), None) => return Err(e),
    };
    let op = if deadline.is_some() {
        libc::LOCK_EX | libc::LOCK_NB
    } else {
        libc::LOCK_EX
    };
    loop {
        // SAFETY: flock on a descriptor we own; it is released when `file` closes.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        match (e.raw_os_error(), deadline) {
            (Some(libc::EINTR), _) => continue,
            (Some(libc::EWOULDBLOCK), Some(d)) if std::time::Instant::now() < d => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            (_, Some(_)) => return Ok(f()),
            (_, None) => return Err(ioerr("flock", &path)(e)),
        }
    }
    let out = f();
    drop(file);
    Ok(out)
}

/// The record another live run holds for `key` (it changed the key, or
/// holds it as we do), with the value from before any run changed it.
fn held_elsewhere(key: &str) -> Option<(String, Vec<(String, String)>)> {
    other_live_runs()
        .into_iter()
        .flat_map(|s| s.resources)
        .find_map(|r| match r {
            Resource::Sysctl {
                key: k,
                previous,
                side_effects,
            } if k == key => Some((previous, side_effects)),
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
            record(Resource::Sysctl {
                key: key.to_string(),
                previous: original,
                side_effects: saved,
            })?;
        } else if previous == value {
            return Ok(previous);
        } else {
            let mut saved = Vec::new();
            for k in side_effects {
                if let Ok(v) = sysctl::read(k) {
                    saved.push((k.clone(), v));
                }
            }
            record(Resource::Sysctl {
                key: key.to_string(),
                previous: previous.clone(),
                side_effects: saved,
            })?;
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
pub(super) fn restore_sysctl_shared(
    key: &str,
    previous: &str,
    side_effects: &[(String, String)],
) -> Result<(), String> {
    if held_elsewhere(key).is_some() {
        return Ok(());
    }
    sysctl::restore(key, previous, side_effects)
}
