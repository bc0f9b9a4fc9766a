//! What the lessons share: namespace children and snapshots (here), cgroups
//! ([`cg`]), CPU and memory hogs ([`hog`]), network labs ([`netlab`], two hosts:
//! [`twohosts`]) and overlayfs layers ([`overlay`]).
//!
//! A lesson module keeps only what it teaches; the plumbing every lesson of a
//! kind repeats (spawn a recorded child, create and remove a workbench cgroup,
//! reserve a subnet) lives here once.

pub mod cg;
pub mod hog;
pub mod netlab;
pub mod overlay;
pub mod twohost;
pub mod twohosts;

/// The unit tests that run a whole lesson (or read every process's namespaces)
/// as root take this lock: the test harness runs tests on parallel threads of
/// one process, and two lessons at once in it would share the one current run
/// (`crate::state`) and see each other's children.
#[cfg(test)]
pub(crate) fn root_test_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Run lesson `id` whole as root, as `workbench lesson ID --json` does, holding
/// [`root_test_lock`]; `None` (and a line on stderr) without root or a static
/// busybox. Asserts that every step passed, nothing failed to clean up and the
/// run's state file is gone; the lesson's test checks the rest while the
/// returned guard still holds the lock.
#[cfg(test)]
pub(crate) fn run_whole_lesson_as_root(
    id: &str,
) -> Option<(std::sync::MutexGuard<'static, ()>, crate::lesson::runner::Summary)> {
    let serial = root_test_lock();
    let host = crate::host::Host::probe();
    if !host.is_root || host.busybox_static.is_none() {
        eprintln!("skipped: the lesson needs root and a static busybox");
        return None;
    }
    let def = crate::lessons::find(id).expect("the lesson is registered");
    let opts = crate::lesson::runner::RunOptions::JSON;
    let summary = crate::lesson::runner::run(def, &opts, Default::default()).expect("the lesson runs");
    assert_eq!(
        (summary.steps_passed, summary.steps),
        (def.steps.len(), def.steps.len()),
        "{summary:?}"
    );
    assert!(summary.pass && summary.cleanup_problems.is_empty(), "{summary:?}");
    let state_file = crate::state::run_root().join(format!("runs/{}.json", summary.run_id));
    assert!(!state_file.exists(), "{} is left", state_file.display());
    Some((serial, summary))
}

use std::collections::BTreeMap;
use std::path::Path;

use nix::sched::CloneFlags;

use crate::kernel::child::{NsChild, Request};
use crate::observe::{capture, Capture, Snapshot};
use crate::state::{self, Resource};

/// `clone(2)` a namespace child, recorded in the state file in the same breath,
/// then released (the end of the pipe synchronisation).
pub fn spawn_child(flags: CloneFlags) -> anyhow::Result<NsChild> {
    let mut child = spawn_child_held(flags)?;
    child.act(&Request::Go)?;
    Ok(child)
}

/// Like [`spawn_child`] but the child stays blocked until sent [`Request::Go`].
pub fn spawn_child_held(flags: CloneFlags) -> anyhow::Result<NsChild> {
    state::track(|| -> anyhow::Result<_> {
        let child = NsChild::spawn(flags)?;
        let start = crate::kernel::proc::start_time(child.pid()).unwrap_or(0);
        let r = Resource::Process {
            pid: child.pid(),
            start_time: start,
        };
        Ok((child, r))
    })
}

/// A snapshot of workbench itself, the "host" side of every comparison.
pub fn host_snapshot(what: Capture) -> anyhow::Result<Snapshot> {
    let me = crate::kernel::proc::self_pid();
    capture(format!("host (workbench, pid {me})"), me, what)
}

/// The last step of the mount lessons: the host's mount table equals the one
/// captured at the start (everything was mounted in a private namespace).
pub fn check_host_mounts_unchanged(
    r: &mut crate::lesson::StepReport,
    at_start: &[crate::observe::MountEntry],
) -> anyhow::Result<()> {
    let before = Snapshot {
        label: "host mounts at the start".into(),
        mounts: at_start.to_vec(),
        ..Default::default()
    };
    let after = host_snapshot(Capture::MOUNTS)?;
    let same = before.mounts == after.mounts;
    r.check(
        "host mountinfo equals the one at the start",
        "identical",
        if same { "identical" } else { "differs" },
        same,
    );
    r.observe(before, after);
    Ok(())
}

/// A snapshot of a namespace child.
pub fn child_snapshot(child: &NsChild, what: Capture) -> anyhow::Result<Snapshot> {
    capture(format!("child (pid {})", child.pid()), child.pid(), what)
}

/// Facts about files in a tree: "present", "-> target" for links, or "absent".
pub fn file_facts(root: &Path, rel: &[String]) -> BTreeMap<String, String> {
    rel.iter()
        .map(|r| {
            let p = root.join(r.trim_start_matches('/'));
            let v = match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => format!(
                    "-> {}",
                    std::fs::read_link(&p)
                        .map(|t| t.display().to_string())
                        .unwrap_or_default()
                ),
                Ok(m) => format!("present ({} bytes)", m.len()),
                Err(_) => "absent".to_string(),
            };
            (format!("rootfs/{}", r.trim_start_matches('/')), v)
        })
        .collect()
}

/// PIDs from `ps` output (first column, header skipped).
pub fn ps_pids(output: &str) -> Vec<i32> {
    output
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The prompt for `--shell`.
pub fn shell_env(lesson: &str) -> Vec<(String, String)> {
    vec![
        ("PS1".into(), format!("[workbench {lesson}] \\h:\\w\\$ ")),
        ("HOME".into(), "/root".into()),
    ]
}

/// `--shell` in a lesson's namespace child: `/bin/sh` with the lesson's prompt.
pub fn sh_in(child: &mut NsChild, lesson: &str) -> anyhow::Result<()> {
    child.call(&Request::Interactive {
        argv: vec!["/bin/sh".into()],
        env: shell_env(lesson),
    })?;
    Ok(())
}

/// Compare namespace inodes of two snapshots: which kinds must differ, which must stay.
pub fn check_namespaces(
    r: &mut crate::lesson::StepReport,
    before: &Snapshot,
    after: &Snapshot,
    new: &[&str],
    shared: &[&str],
) {
    let differ: Vec<&str> = new
        .iter()
        .copied()
        .filter(|k| before.namespaces.get(*k) != after.namespaces.get(*k) && after.namespaces.contains_key(*k))
        .collect();
    r.check(
        "new namespaces (inode differs)",
        new.join(" "),
        differ.join(" "),
        differ.len() == new.len(),
    );
    let same: Vec<&str> = shared
        .iter()
        .copied()
        .filter(|k| before.namespaces.get(*k) == after.namespaces.get(*k) && after.namespaces.contains_key(*k))
        .collect();
    r.check(
        "shared namespaces (inode same)",
        shared.join(" "),
        same.join(" "),
        same.len() == shared.len(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ps_output() {
        let out = "PID   USER     TIME  COMMAND\n    1 root      0:00 workbench\n    7 root      0:00 ps\n";
        assert_eq!(ps_pids(out), vec![1, 7]);
    }
}
