//! Root tests of the freezer and devices backends on the real kernel.
//!
//! Groups are only `workbench/wbtest-<random>`; children are our own
//! `sh`, killed and reaped whatever happens. The BPF device program is
//! tried on the host's cgroup2 tree (pure v2, or `unified/` of a hybrid
//! host, where a controller-less group can still run it).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wb_cgroup::*;

fn root() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: needs root (geteuid() != 0)");
        return false;
    }
    true
}

fn name(what: &str) -> String {
    format!("wbtest-{what}-{}", std::process::id())
}

/// `sh -c script` after moving itself into `procs` (read from stdin: the
/// test writes the go); returns (exit code, stderr).
fn run_in(procs: &[std::path::PathBuf], script: &str) -> (Option<i32>, String) {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("read _; {script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for p in procs {
        std::fs::write(p.join("cgroup.procs"), child.id().to_string()).unwrap();
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_bpf_device_program_denies_writing_dev_null() {
    if !root() {
        return;
    }
    let layout = detect_system().unwrap();
    let Some(unified) = layout.unified() else {
        eprintln!("SKIP: no cgroup2 mount");
        return;
    };
    let v2 = detect(unified).unwrap();
    let g = create(&v2, &name("bpf"), &[Controller::Devices])
        .unwrap()
        .remove_on_drop();
    assert_eq!(g.device_rules().unwrap(), "0 BPF device program(s) attached");
    let (code, err) = run_in(&g.paths(), "echo x > /dev/null");
    assert_eq!(code, Some(0), "before the program: {err}");
    g.deny_device(&DeviceRule::char_write(1, 3)).unwrap();
    assert_eq!(g.device_rules().unwrap(), "1 BPF device program(s) attached");
    let (code, err) = run_in(&g.paths(), "echo x > /dev/null");
    assert_ne!(code, Some(0));
    assert!(err.contains("Operation not permitted"), "{err}");
    let (code, err) = run_in(&g.paths(), "cat /dev/null && echo x > /dev/zero");
    assert_eq!(code, Some(0), "reading it and writing /dev/zero stay allowed: {err}");
}

#[test]
fn a_frozen_group_is_thawed_and_removed_with_its_task() {
    if !root() {
        return;
    }
    let layout = detect_system().unwrap();
    if let Err(why) = &layout.summary().workbench["freezer"] {
        eprintln!("SKIP: no freezer: {why}");
        return;
    }
    let g = create(&layout, &name("frz"), &[Controller::Freezer]).unwrap();
    let mut child = Command::new("/bin/sh")
        .args(["-c", "while :; do :; done"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    g.add_process(pid).unwrap();
    g.freeze().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while g.freezer_state().unwrap() != FreezerState::Frozen {
        assert!(Instant::now() < deadline, "never froze");
        std::thread::sleep(Duration::from_millis(10));
    }
    // What a SIGKILLed workbench leaves behind: the group frozen, its task in
    // it. Removal must thaw it, or the task would never die.
    let paths = g.paths();
    if let Err(e) = g.remove() {
        // Leave nothing behind for the next test: thaw, kill, reap, remove.
        let _ = g.thaw();
        let _ = child.kill();
        let _ = child.wait();
        let _ = g.remove();
        panic!("removing the frozen group failed: {e}");
    }
    let status = child.wait().unwrap();
    assert!(!status.success());
    for p in paths {
        assert!(!Path::new(&p).exists(), "{} left", p.display());
    }
}
