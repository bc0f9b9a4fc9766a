//! Cleanup under faults: Ctrl-C and SIGTERM make workbench tear down what it
//! created; after SIGKILL, `workbench cleanup` does. In every case the host
//! state afterwards equals the state before, and no process of the run survives.

mod common;
#[path = "support/paused.rs"]
mod paused;

use nix::sys::signal::Signal;
use paused::{wait_gone, Paused};

fn signal_run(lesson: &str, steps: usize, has_child: bool, sig: Signal, expect_code: i32) {
    let before = workbench::hoststate::capture();
    let run = Paused::start(common::bin(), lesson, steps);
    let kids = run.children();
    assert_eq!(!kids.is_empty(), has_child, "{lesson} after {steps} steps: namespace children {kids:?}");
    let during = workbench::hoststate::capture();
    assert!(!workbench::hoststate::differences(&before, &during).is_empty(), "the paused run should have created something");
    let status = run.signal(sig);
    assert_eq!(status.code(), Some(expect_code), "exit status after {sig}");
    assert!(wait_gone(&kids), "namespace children {kids:?} survived {sig}");
    common::assert_host_unchanged(&before, &format!("{lesson} interrupted by {sig}"));
}

#[test]
fn sigint_cleans_up() {
    require_root!();
    let _g = common::serial();
    signal_run("mount-proc", 3, true, Signal::SIGINT, 130);
}

#[test]
fn sigterm_cleans_up() {
    require_root!();
    let _g = common::serial();
    signal_run("chroot-busybox", 1, false, Signal::SIGTERM, 143);
    signal_run("pid-ns", 2, true, Signal::SIGTERM, 143);
}

#[test]
fn sigkill_then_cleanup_command_restores_the_host() {
    require_root!();
    let _g = common::serial();
    // Leftovers of earlier killed runs would be cleaned below too: clear them first.
    let _ = common::workbench(&["cleanup"]);
    let before = workbench::hoststate::capture();
    let run = Paused::start(common::bin(), "mount-proc", 3);
    let kids = run.children();
    run.signal(Signal::SIGKILL);
    // The namespace child dies with its parent (PR_SET_PDEATHSIG)...
    assert!(wait_gone(&kids), "namespace children {kids:?} survived SIGKILL of workbench");
    // ...but the state file and working directory remain for `cleanup`.
    let left = workbench::hoststate::capture();
    assert!(!workbench::hoststate::differences(&before, &left).is_empty(), "a SIGKILLed run should leave its state file behind");
    let o = common::workbench(&["cleanup"]);
    assert!(o.status.success(), "cleanup failed: {}", common::stderr(&o));
    assert!(common::stdout(&o).contains("cleaned run"), "cleanup output: {}", common::stdout(&o));
    common::assert_host_unchanged(&before, "mount-proc killed, then cleanup");
    // A second cleanup has nothing to do.
    let o = common::workbench(&["cleanup"]);
    assert!(common::stdout(&o).contains("nothing to clean up"));
}
