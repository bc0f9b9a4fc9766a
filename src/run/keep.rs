//! `--keep` (and `--detach`): the container's overlay upper dir goes to
//! `/var/lib/workbench/containers/NAME/{upper,work}` on disk instead of a
//! tmpfs private to the container, and its record says what ran and how it
//! ended. The directory is in the ledger while the container is being made
//! (so a killed run's half-made container is removed by `workbench cleanup`)
//! and leaves it once the container has started: from then on it belongs to
//! the learner, until `workbench rm`.
//!
//! The launch sequence calls in here at three points (no-ops without
//! `--keep`): where the scratch dir goes ([`scratch`]), the plan without its
//! tmpfs ([`adjust_plan`]), and the moment the container is released
//! ([`started`]).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;

use super::plan::{Op, RootMode};
use crate::container::{self, Record, State};
use crate::state::{self, Resource};

/// The container being kept by this process.
struct Keep {
    name: String,
    id: String,
    source: String,
    dir: PathBuf,
    record: Option<Record>,
    /// A shim's pipe to the `workbench run --detach` that waits for the start.
    status: Option<OwnedFd>,
    /// A shim's original stderr (the CLI's), while the container is not yet started.
    saved_err: Option<OwnedFd>,
}

static KEEP: Mutex<Option<Keep>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut Keep) -> T) -> Option<T> {
    KEEP.lock().unwrap_or_else(|e| e.into_inner()).as_mut().map(f)
}

/// A name in use is refused (exit 2) before anything is created.
pub(super) fn check_name(name: &str) -> Result<(), crate::error::UsageError> {
    if container::exists(name) {
        Err(container::in_use(name))
    } else {
        Ok(())
    }
}

/// Create the container's directory (recorded in the ledger as it is made)
/// with `upper/` and `work/`. A shim (`status`) also opens the `log` and
/// makes it its stdout and stderr, which the container inherits.
pub(super) fn begin(name: &str, source: &str, run: &state::Run, status: Option<OwnedFd>) -> anyhow::Result<()> {
    let dir = state::track(|| -> anyhow::Result<_> {
        let d = container::create_dir(name)?;
        Ok((d.clone(), Resource::Dir { path: d }))
    })?;
    for sub in ["upper", "work"] {
        let d = dir.join(sub);
        std::fs::create_dir(&d).with_context(|| format!("mkdir {}", d.display()))?;
    }
    let mut saved_err = None;
    if status.is_some() {
        use std::os::unix::fs::OpenOptionsExt;
        let log = dir.join("log");
        let f = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(&log)
            .with_context(|| format!("create {}", log.display()))?;
        let saved =
            nix::fcntl::fcntl(std::io::stderr(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).context("dup stderr")?;
        // SAFETY: a new descriptor fcntl just returned, owned by nobody else.
        saved_err = Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(saved) });
        for fd in [1, 2] {
            // SAFETY: dup2 onto the standard descriptors; the log stays open in `f` until then.
            if unsafe { libc::dup2(f.as_raw_fd(), fd) } < 0 {
                return Err(std::io::Error::last_os_error()).context("dup2 the log onto stdout/stderr");
            }
        }
    }
    *KEEP.lock().unwrap_or_else(|e| e.into_inner()) = Some(Keep {
        name: name.into(),
        id: run.run_id.clone(),
        source: source.into(),
        dir,
        record: None,
        status,
        saved_err,
    });
    Ok(())
}

/// The overlay's scratch dir: the container's own directory when kept.
pub(super) fn scratch(workdir: &Path) -> PathBuf {
    with(|k| k.dir.clone()).unwrap_or_else(|| workdir.join("rw"))
}

/// Make the scratch dir (the kept container's already exists, with upper/ and work/).
pub(super) fn make_scratch(p: &Path) -> anyhow::Result<()> {
    if with(|k| k.dir == p) == Some(true) {
        return Ok(());
    }
    std::fs::create_dir(p).with_context(|| format!("mkdir {}", p.display()))
}

/// A kept container's upper dir is on disk: drop the plan's tmpfs over the scratch dir.
pub(super) fn adjust_plan(ops: &mut Vec<Op>, mode: &RootMode) {
    if with(|_| ()).is_some() {
        without_scratch_tmpfs(ops, mode);
    }
}

/// Pure: remove the `mount -t tmpfs … SCRATCH` of an overlay plan.
pub fn without_scratch_tmpfs(ops: &mut Vec<Op>, mode: &RootMode) {
    let RootMode::Overlay { scratch, .. } = mode else {
        return;
    };
    let target = std::ffi::CString::new(scratch.as_os_str().as_encoded_bytes().to_vec()).unwrap_or_default();
    ops.retain(|o| !matches!(o, Op::Mount(m) if m.target == target && m.fstype.as_bytes() == b"tmpfs"));
}

/// The container is set up and about to be released: write its record
/// ("running", its pid, the shim's), take its directory out of the ledger,
/// and tell a waiting `workbench run --detach` it started.
pub(super) fn started(pid: i32, mode: &RootMode, argv: &[String]) -> anyhow::Result<()> {
    let mut guard = KEEP.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = guard.as_mut() else { return Ok(()) };
    let r = Record {
        version: Record::VERSION,
        name: k.name.clone(),
        id: k.id.clone(),
        source: k.source.clone(),
        // A store reference (what `workbench commit` builds on), classified as `run` did.
        image: match super::spec::classify_source(&k.source, None, super::spec::probe_path) {
            Ok(super::spec::Source::Store { reference }) => Some(reference),
            _ => None,
        },
        lowers: match mode {
            RootMode::Overlay { lowers, .. } => lowers.clone(),
            RootMode::ReadOnlyBind { rootfs, .. } => vec![rootfs.clone()],
        },
        argv: argv.to_vec(),
        created: container::now_rfc3339(),
        state: State::Running,
        pid: Some(pid),
        exit_code: None,
        shim_pid: k.status.as_ref().map(|_| crate::kernel::proc::self_pid()),
    };
    container::save(&r)?;
    state::forget(&Resource::Dir { path: k.dir.clone() });
    k.record = Some(r);
    if let Some(fd) = k.status.take() {
        let _ = nix::unistd::write(&fd, b"started\n");
    }
    k.saved_err = None;
    Ok(())
}

/// The container is gone (reaped): record how it ended. A shim whose
/// container never started gives the CLI its messages (written to the log so far) back.
pub(super) fn finished(exit_code: Option<i32>) {
    let mut guard = KEEP.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = guard.as_mut() else { return };
    match k.record.as_mut() {
        Some(r) => {
            r.state = State::Exited;
            r.exit_code = exit_code;
            r.pid = None;
            if let Err(e) = container::save(r) {
                eprintln!("workbench: {e:#}");
            }
        }
        None => {
            if let Some(saved) = k.saved_err.take() {
                let text = std::fs::read(k.dir.join("log")).unwrap_or_default();
                let _ = nix::unistd::write(&saved, &text);
                // SAFETY: dup2 onto stderr from a descriptor we own.
                unsafe { libc::dup2(saved.as_raw_fd(), 2) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::plan::{build, PlanInput};

    #[test]
    fn a_kept_plan_mounts_its_overlay_over_the_disk() {
        let scratch = PathBuf::from("/var/lib/workbench/containers/c1");
        let mode = RootMode::Overlay {
            lowers: vec!["/img".into()],
            scratch: scratch.clone(),
        };
        let mut ops = build(&PlanInput {
            root: mode.clone(),
            merged: "/m".into(),
            hostname: "c1".into(),
            new_netns: true,
            devpts: false,
            sysfs: true,
            keep_stdin: false,
            userns: false,
            keep_flags: 0,
        });
        let before = ops.len();
        let cmds = |ops: &[Op]| ops.iter().map(|o| o.command()).collect::<Vec<_>>();
        assert!(cmds(&ops).contains(&"mount -t tmpfs -o mode=0700 tmpfs /var/lib/workbench/containers/c1".into()));
        without_scratch_tmpfs(&mut ops, &mode);
        assert_eq!(ops.len(), before - 1, "only the scratch tmpfs goes: {:#?}", cmds(&ops));
        let c = cmds(&ops);
        assert!(!c.iter().any(|c| c.contains("tmpfs /var/lib/workbench/containers/c1")));
        assert!(c.iter().any(
            |c| c.starts_with("mount -t overlay") && c.contains("upperdir=/var/lib/workbench/containers/c1/upper")
        ));
        assert!(
            c.iter()
                .any(|c| c.starts_with("mount -t tmpfs") && c.ends_with("/m/dev")),
            "other tmpfs stay"
        );
    }
}
