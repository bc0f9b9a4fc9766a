//! Cleanup under faults: Ctrl-C and SIGTERM make workbench tear down what it
//! created; after SIGKILL, `workbench cleanup` does. In every case the host
//! state afterwards equals the state before, and no process of the run survives.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A workbench run that is ended (SIGTERM) if the test fails before it does.
struct Run(Child);

impl std::ops::Deref for Run {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}
impl std::ops::DerefMut for Run {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}
impl Drop for Run {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
            let _ = self.0.wait();
        }
    }
}

/// Start a lesson with --step and wait until it pauses after `steps` steps.
/// Returns the process and the PIDs of namespace children it reported.
fn start_paused(lesson: &str, steps: usize) -> (Run, Vec<i32>) {
    let mut child = Command::new(common::bin())
        .args(["lesson", lesson, "--step", "--color", "never"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(Run)
        .expect("start workbench");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // The prompt has no newline: read byte chunks.
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
    let deadline = Instant::now() + Duration::from_secs(30);
    while paused < steps {
        let n = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("lesson did not pause in time");
        if n > paused {
            paused = n;
            if paused < steps {
                child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
            }
        }
    }
    let kids = child_pids(child.id() as i32);
    (child, kids)
}

/// Direct children of `pid` (the namespace children of a lesson).
fn child_pids(pid: i32) -> Vec<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    text.split_whitespace().filter_map(|s| s.parse().ok()).collect()
}

fn gone(pids: &[i32]) -> bool {
    pids.iter().all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists() || std::fs::read_to_string(format!("/proc/{p}/stat")).map(|s| s.contains(") Z ")).unwrap_or(true))
}

fn wait_gone(pids: &[i32]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if gone(pids) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn signal_run(lesson: &str, steps: usize, has_child: bool, sig: Signal, expect_code: i32) {
    let before = workbench::hoststate::capture();
    let (mut child, kids) = start_paused(lesson, steps);
    assert_eq!(!kids.is_empty(), has_child, "{lesson} after {steps} steps: namespace children {kids:?}");
    let during = workbench::hoststate::capture();
    assert!(!workbench::hoststate::differences(&before, &during).is_empty(), "the paused run should have created something");
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
    let status = child.wait().unwrap();
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
    let (mut child, kids) = start_paused("mount-proc", 3);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = child.wait();
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
