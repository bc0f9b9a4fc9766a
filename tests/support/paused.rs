//! A lesson run with `--step`, paused between steps so that a test can look
//! at the kernel objects it made (the layer directories, the namespace
//! child's mounts) from outside, then continue, signal or abandon it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub struct Paused {
    child: Child,
    prompts: Receiver<usize>,
    seen: usize,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// Set when stderr reached end of file.
    stderr_eof: Arc<std::sync::atomic::AtomicBool>,
}

impl Paused {
    /// Start `workbench lesson LESSON --step` and wait until it pauses after `steps` steps.
    pub fn start(lesson: &str, steps: usize) -> Paused {
        let mut child = crate::common::spawn_lesson(lesson, &["--step", "--color", "never"], &[]);
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let errors = Arc::new(Mutex::new(String::new()));
        let err_sink = errors.clone();
        let eof = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let eof_flag = eof.clone();
        std::thread::spawn(move || {
            // The prompt has no newline: read byte chunks.
            let mut r = BufReader::new(stderr);
            loop {
                let buf = match r.fill_buf() {
                    Ok(b) if !b.is_empty() => b.to_vec(),
                    _ => break,
                };
                r.consume(buf.len());
                let mut seen = err_sink.lock().unwrap();
                seen.push_str(&String::from_utf8_lossy(&buf));
                let _ = tx.send(seen.matches("press Enter").count());
            }
            eof_flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        // Drain stdout so that a long transcript never blocks the lesson.
        let stdout = crate::common::drain(child.stdout.take().unwrap());
        let mut p = Paused {
            child,
            prompts: rx,
            seen: 0,
            stdout,
            stderr: errors,
            stderr_eof: eof,
        };
        p.wait_prompts(1);
        while p.seen < steps {
            p.next();
        }
        p
    }

    fn wait_prompts(&mut self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.seen < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.prompts.recv_timeout(left) {
                Ok(k) => self.seen = self.seen.max(k),
                Err(_) => panic!(
                    "the lesson did not pause after step {n}; output so far:\n{}",
                    self.output()
                ),
            }
        }
    }

    /// Press Enter: run one more step and wait for the next pause.
    pub fn next(&mut self) {
        self.child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
        let n = self.seen + 1;
        self.wait_prompts(n);
    }

    /// Steps done so far.
    pub fn steps_done(&self) -> usize {
        self.seen
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything printed on stdout so far.
    pub fn output(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything printed on stderr so far (the prompts, a teardown's problems).
    pub fn errors(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Direct children of workbench (its namespace children).
    pub fn children(&self) -> Vec<i32> {
        let pid = self.pid();
        let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        text.split_whitespace().filter_map(|s| s.parse().ok()).collect()
    }

    /// The run's working directory, from its state file.
    pub fn workdir(&self) -> PathBuf {
        let runs = workbench::state::run_root().join("runs");
        for e in std::fs::read_dir(&runs).unwrap().flatten() {
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if v["owner_pid"] == self.pid() {
                let dir = v["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["kind"] == "dir")
                    .expect("a working directory");
                return PathBuf::from(dir["path"].as_str().unwrap());
            }
        }
        panic!("no state file of run {}", self.pid());
    }

    /// Send `sig`: assert workbench exits with `code` and every process it
    /// had started (its descendants when signalled) is gone.
    pub fn interrupt(self, sig: Signal, code: i32) {
        let procs = descendants(self.pid());
        let status = self.signal(sig);
        assert_eq!(status.code(), Some(code), "exit status after {sig}");
        assert!(wait_gone(&procs), "processes {procs:?} of the run survived {sig}");
    }

    /// Ctrl-C at this pause: `interrupt` (exit 130, every process gone) and
    /// the run's working directory removed.
    pub fn ctrl_c_cleans_up(self) {
        let wd = self.workdir();
        self.interrupt(Signal::SIGINT, 130);
        assert!(!wd.exists(), "{} survived Ctrl-C", wd.display());
    }

    /// Send a signal and wait for the exit.
    pub fn signal(self, sig: Signal) -> ExitStatus {
        self.signal_and_report(sig).0
    }

    /// Send a signal, wait for the exit, and return what workbench printed on
    /// stderr after its last prompt (e.g. the teardown's problems).
    pub fn signal_and_report(mut self, sig: Signal) -> (ExitStatus, String) {
        kill(Pid::from_raw(self.pid()), sig).unwrap();
        let st = self.child.wait().unwrap();
        // Let the reader thread take the last bytes (a process that outlived
        // workbench may hold the pipe open: wait a little, not for ever).
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.stderr_eof.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let all = self.errors();
        let tail = all
            .rfind("press Enter")
            .and_then(|i| all[i..].find('\n').map(|j| all[i + j + 1..].to_string()))
            .unwrap_or(all);
        (st, tail)
    }

    /// Press Enter once more and wait for the exit with stdin left open, so
    /// that a pause after that step shows: another prompt, or no exit within
    /// `within`. Returns the exit status and stdout, or what went wrong.
    pub fn enter_and_expect_exit(mut self, within: Duration) -> Result<(ExitStatus, String), String> {
        let prompts = self.seen;
        self.child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
        let deadline = Instant::now() + within;
        let st = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no exit within {within:?} after Enter at the last pause; output:\n{}",
                    self.output()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Give the reader threads a moment to take the last bytes.
        std::thread::sleep(Duration::from_millis(50));
        while let Ok(k) = self.prompts.try_recv() {
            self.seen = self.seen.max(k);
        }
        if self.seen > prompts {
            return Err(format!(
                "paused again after step {}; output:\n{}",
                prompts + 1,
                self.output()
            ));
        }
        Ok((st, self.output()))
    }

    /// `finish`, asserting that the run exits 0 with all its `steps` steps
    /// passed; its output.
    pub fn finish_passing(self, steps: usize) -> String {
        let (status, out) = self.finish();
        assert_eq!(status.code(), Some(0), "{out}");
        assert!(out.contains(&format!("{steps}/{steps} steps passed")), "{out}");
        out
    }

    /// Let the rest of the lesson run (EOF on stdin answers every prompt) and wait.
    pub fn finish(mut self) -> (ExitStatus, String) {
        drop(self.child.stdin.take());
        let st = self.child.wait().unwrap();
        // Give the reader thread a moment to take the last bytes.
        std::thread::sleep(Duration::from_millis(50));
        (st, self.output())
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// Every descendant of `pid` (namespace children, hogs, servers inside namespaces).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        for task in std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for c in text.split_whitespace().filter_map(|s| s.parse::<i32>().ok()) {
                out.push(c);
                stack.push(c);
            }
        }
    }
    out
}

/// Have all of `pids` exited (or become zombies) within a few seconds?
pub fn wait_gone(pids: &[i32]) -> bool {
    crate::common::gone_within(pids, Duration::from_secs(5))
}

/// The value of an extended attribute, read with lgetxattr(2).
pub fn xattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: nul-terminated strings and a buffer of buf.len() bytes.
    let len = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| {
        buf.truncate(len as usize);
        buf
    })
}

/// (is a char device, major, minor) of `path` itself.
pub fn char_device(path: &std::path::Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::symlink_metadata(path).ok()?;
    m.file_type()
        .is_char_device()
        .then(|| (libc::major(m.rdev()), libc::minor(m.rdev())))
}

/// Mount points in /proc/PID/mountinfo with their file system type.
pub fn mounts_of(pid: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dash = f.iter().position(|x| *x == "-")?;
            Some((f.get(4)?.to_string(), f.get(dash + 1)?.to_string()))
        })
        .collect()
}
