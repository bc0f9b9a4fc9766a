//! Bad input gets one clear line, a non-zero exit, and leaves the host untouched.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;

#[test]
fn unknown_lesson_suggests_the_closest() {
    let o = common::workbench(&["lesson", "pid-nss"]);
    assert_eq!(o.status.code(), Some(2));
    let e = common::one_line_error(&o);
    assert!(e.contains("unknown lesson 'pid-nss'") && e.contains("did you mean 'pid-ns'"), "{e}");
}

#[test]
fn lesson_names_with_slashes_or_dots_are_unknown() {
    for bad in ["../etc", "pid-ns/..", "/bin/sh", ".."] {
        let o = common::workbench(&["lesson", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(common::one_line_error(&o).contains("unknown lesson"), "{bad}");
    }
}

#[test]
fn shorthand_subcommand_runs_the_lesson_parser() {
    let o = common::workbench(&["no-such-lesson"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::one_line_error(&o).contains("unknown lesson 'no-such-lesson'"));
}

#[test]
fn bad_hostname_is_refused() {
    let long = "x".repeat(65);
    let o = common::workbench(&["lesson", "pid-ns", "--hostname", &long]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("hostname must be 1 to 64 bytes"));
}

#[test]
fn json_and_step_conflict() {
    let o = common::workbench(&["lesson", "pid-ns", "--json", "--step"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn list_shows_every_lesson() {
    let o = common::workbench(&["list"]);
    assert!(o.status.success());
    let out = common::stdout(&o);
    for id in ["chroot-busybox", "pid-ns", "mount-proc", "cgroup-cpu-quota", "cpu-shares", "memory-oom", "pids-limit"] {
        assert!(out.contains(id), "{id} missing from list");
    }
}

#[test]
fn not_root_is_a_clear_error_and_creates_nothing() {
    require_root!(); // we need root to become someone else
    let _g = common::serial();
    let before = workbench::hoststate::capture();
    let o = Command::new(common::bin()).args(["lesson", "pid-ns"]).uid(65534).gid(65534).env("NO_COLOR", "1").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = common::one_line_error(&o);
    assert!(e.contains("needs root") && e.contains("sudo"), "{e}");
    common::assert_host_unchanged(&before, "a non-root run");
}

#[test]
fn missing_busybox_is_a_clear_error_and_creates_nothing() {
    require_root!();
    let _g = common::serial();
    let before = workbench::hoststate::capture();
    for lesson in ["pid-ns", "chroot-busybox"] {
        let o = Command::new(common::bin()).args(["lesson", lesson]).env("WORKBENCH_BUSYBOX_PATHS", "/nonexistent/busybox").output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{lesson}");
        let e = common::one_line_error(&o);
        assert!(e.contains("busybox found") && e.contains("scripts/setup"), "{e}");
    }
    common::assert_host_unchanged(&before, "runs without busybox");
}

#[test]
fn doctor_reports_a_table_and_host_state_is_json() {
    let o = common::workbench(&["doctor"]);
    let out = common::stdout(&o);
    assert!(out.contains("namespaces") && out.contains("cgroup layout"), "{out}");
    let o = common::workbench(&["doctor", "--host-state"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("host state is JSON");
    assert!(v["sections"]["links"].as_array().unwrap().iter().any(|l| l == "lo"));
}

#[test]
fn colour_follows_the_flag() {
    let always = common::workbench(&["doctor", "--color", "always"]);
    assert!(common::stdout(&always).contains('\u{1b}'), "--color always must colour");
    let never = common::workbench(&["doctor", "--color", "never"]);
    assert!(!common::stdout(&never).contains('\u{1b}'), "--color never must not colour");
    // auto on a pipe (and NO_COLOR set by common::workbench) stays plain
    let auto = common::workbench(&["doctor"]);
    assert!(!common::stdout(&auto).contains('\u{1b}'));
}
