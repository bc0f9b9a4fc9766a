//! The cgroup lessons under faults: Ctrl-C and SIGTERM while a hog runs
//! inside a group make workbench kill it and remove the groups; after a
//! SIGKILL of workbench the hog dies with it (PR_SET_PDEATHSIG) and
//! `workbench cleanup` removes the groups. The host is unchanged in the end.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A workbench run that is ended (SIGTERM) if the test fails before it does.
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
            let _ = self.0.wait();
        }
    }
}

/// Start a lesson with --step and wait until it pauses after `steps` steps.
fn start_paused(lesson: &str, steps: usize) -> Run {
    let mut child = Command::new(common::bin())
        .args(["lesson", lesson, "--step", "--color", "never"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Run)
        .expect("start workbench");
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stderr);
        let mut seen = String::new();
        loop {
            let buf = match r.fill_buf() {
                Ok(b) if !b.is_empty() => b.to_vec(),
                _ => break,
            };
            r.consume(buf.len());
            seen.push_str(&String::from_utf8_lossy(&buf));
            let _ = tx.send(seen.matches("press Enter").count());
        }
    });
    let mut paused = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while paused < steps {
        let n = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("lesson did not pause in time");
        if n > paused {
            paused = n;
            if paused < steps {
                child.0.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
            }
        }
    }
    child
}

/// Direct children of `pid` (the hogs a lesson started).
fn child_pids(pid: i32) -> Vec<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    text.split_whitespace().filter_map(|s| s.parse().ok()).collect()
}

/// Every PID in cgroup.procs of the groups under the workbench parents.
fn pids_in_workbench_groups() -> Vec<i32> {
    let mut out = Vec::new();
    for dir in workbench::hoststate::workbench_cgroups(Path::new("/sys/fs/cgroup")) {
        let procs = std::fs::read_to_string(Path::new(&dir).join("cgroup.procs")).unwrap_or_default();
        out.extend(procs.split_whitespace().filter_map(|s| s.parse::<i32>().ok()));
    }
    out.sort();
    out.dedup();
    out
}

fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z') || r.starts_with('X')),
        Err(_) => false,
    }
}

fn wait_gone(pids: &[i32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if pids.iter().all(|p| !running(*p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Pause `lesson` after `steps` steps, check that hogs run (`hogs` of them
/// inside workbench groups), send `sig`, and check everything is gone.
fn signal_run(lesson: &str, steps: usize, hogs_in_groups: usize, sig: Signal, expect_code: i32) {
    let before = workbench::hoststate::capture();
    let mut run = start_paused(lesson, steps);
    let me = run.0.id() as i32;
    let mut victims = child_pids(me);
    let grouped = pids_in_workbench_groups();
    assert!(grouped.len() >= hogs_in_groups, "{lesson} after {steps} steps: only {grouped:?} in workbench groups");
    victims.extend(grouped);
    assert!(!victims.is_empty(), "{lesson} after {steps} steps: no hog running");
    assert!(!workbench::hoststate::differences(&before, &workbench::hoststate::capture()).is_empty());
    kill(Pid::from_raw(me), sig).unwrap();
    let status = run.0.wait().unwrap();
    assert_eq!(status.code(), Some(expect_code), "exit status after {sig}");
    assert!(wait_gone(&victims), "hogs {victims:?} survived {sig}");
    common::assert_host_unchanged(&before, &format!("{lesson} interrupted by {sig}"));
}

#[test]
fn ctrl_c_while_the_cpu_hog_is_throttled() {
    require_root!();
    let _g = common::serial();
    // After "join": the two-thread hog runs inside the quota group.
    signal_run("cgroup-cpu-quota", 4, 1, Signal::SIGINT, 130);
}

#[test]
fn sigterm_with_two_pinned_hogs_in_weighted_groups() {
    require_root!();
    let _g = common::serial();
    signal_run("cpu-shares", 4, 2, Signal::SIGTERM, 143);
    // Before the groups have members: hogs are only children of workbench.
    signal_run("cpu-shares", 3, 0, Signal::SIGINT, 130);
}

#[test]
fn sigterm_with_the_memory_hog_waiting_in_its_group() {
    require_root!();
    let _g = common::serial();
    signal_run("memory-oom", 3, 1, Signal::SIGTERM, 143);
}

#[test]
fn sigint_with_orphaned_sleeps_in_the_pids_group() {
    require_root!();
    let _g = common::serial();
    // After "fork": the shell has exited; its sleeps are orphans, not our children.
    signal_run("pids-limit", 4, 4, Signal::SIGINT, 130);
}

#[test]
fn sigkill_kills_the_hog_and_cleanup_removes_the_group() {
    require_root!();
    let _g = common::serial();
    let _ = common::workbench(&["cleanup"]);
    let before = workbench::hoststate::capture();
    let mut run = start_paused("cgroup-cpu-quota", 4);
    let me = run.0.id() as i32;
    let hogs = child_pids(me);
    assert_eq!(hogs.len(), 1, "one hog expected: {hogs:?}");
    kill(Pid::from_raw(me), Signal::SIGKILL).unwrap();
    let _ = run.0.wait();
    // PR_SET_PDEATHSIG: the hog dies with workbench...
    assert!(wait_gone(&hogs), "the hog {hogs:?} survived SIGKILL of workbench");
    // ...but its group, the state file and the working directory remain.
    let left = workbench::hoststate::capture();
    let d = workbench::hoststate::differences(&before, &left);
    assert!(d.iter().any(|l| l.contains("/workbench/wb-")), "the group should be left behind: {d:?}");
    let o = common::workbench(&["cleanup"]);
    assert!(o.status.success(), "cleanup failed: {}", common::stderr(&o));
    let out = common::stdout(&o);
    assert!(out.contains("cleaned run") && out.contains("cgroup /sys/fs/cgroup/"), "cleanup output: {out}");
    common::assert_host_unchanged(&before, "cgroup-cpu-quota killed, then cleanup");
}
