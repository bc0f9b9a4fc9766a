//! Ctrl-C together with end of input. A closed terminal or a parent that
//! closes our stdin right after signalling (as `Child::wait` does) wakes the
//! main thread with EOF while the signal thread tears the run down. The main
//! thread must not start the next step or exit with the lesson's status: the
//! exit status stays 128+signal and the host ends up unchanged. Seen as a
//! flaky `sigint_cleans_up` (exit 1) under a slow emulated CPU (scripts/v2-vm).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Start `mount-proc --step`, wait for the third pause, then send `sig` and
/// close stdin at once; return the exit code.
fn interrupt_at_third_pause(sig: Signal) -> Option<i32> {
    let mut child = Command::new(common::bin())
        .args(["lesson", "mount-proc", "--step", "--color", "never"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start workbench");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    let mut pauses = 0;
    while pauses < 3 {
        assert!(Instant::now() < deadline, "lesson did not pause in time:\n{seen}");
        let buf = stderr.fill_buf().expect("read stderr").to_vec();
        assert!(!buf.is_empty(), "workbench ended early:\n{seen}");
        stderr.consume(buf.len());
        seen.push_str(&String::from_utf8_lossy(&buf));
        let n = seen.matches("press Enter").count();
        while pauses < n {
            pauses += 1;
            if pauses < 3 {
                stdin.write_all(b"\n").unwrap();
            }
        }
    }
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
    drop(stdin);
    // Keep draining stderr so workbench never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    child.wait().unwrap().code()
}

#[test]
fn signal_with_end_of_input_still_cleans_up_and_exits_128_plus_signal() {
    let host = root_host!();
    for round in 0..8 {
        let (sig, code) = if round % 2 == 0 {
            (Signal::SIGINT, 130)
        } else {
            (Signal::SIGTERM, 143)
        };
        assert_eq!(
            interrupt_at_third_pause(sig),
            Some(code),
            "round {round}: exit status after {sig} and EOF"
        );
        host.assert_unchanged(&format!("round {round}: {sig} with EOF"));
    }
}
