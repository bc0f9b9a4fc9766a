//! The cgroup lessons under faults: Ctrl-C and SIGTERM while a hog runs
//! inside a group make workbench kill it and remove the groups; after a
//! SIGKILL of workbench the hog dies with it (PR_SET_PDEATHSIG) and
//! `workbench cleanup` removes the groups. The host is unchanged in the end.

mod common;
#[path = "support/paused.rs"]
mod paused;

use std::path::Path;

use nix::sys::signal::Signal;
use paused::{wait_gone, Paused};

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

/// Pause `lesson` after `steps` steps, check that hogs run (`hogs` of them
/// inside workbench groups), send `sig`, and check everything is gone.
fn signal_run(lesson: &str, steps: usize, hogs_in_groups: usize, sig: Signal, expect_code: i32) {
    let before = workbench::hoststate::capture();
    let run = Paused::start(common::bin(), lesson, steps);
    let mut victims = run.children();
    let grouped = pids_in_workbench_groups();
    assert!(grouped.len() >= hogs_in_groups, "{lesson} after {steps} steps: only {grouped:?} in workbench groups");
    victims.extend(grouped);
    assert!(!victims.is_empty(), "{lesson} after {steps} steps: no hog running");
    assert!(!workbench::hoststate::differences(&before, &workbench::hoststate::capture()).is_empty());
    let status = run.signal(sig);
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
    let run = Paused::start(common::bin(), "cgroup-cpu-quota", 4);
    let hogs = run.children();
    assert_eq!(hogs.len(), 1, "one hog expected: {hogs:?}");
    run.signal(Signal::SIGKILL);
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
