//! `--shell` of the cgroup lessons: after the lesson, a shell in a new group
//! with the lesson's limit. Each test drives the shell through its stdin,
//! looks at the kernel's files from outside while the shell runs (its line in
//! /proc/PID/cgroup, the group's limit files, what its children met), then
//! ends it and checks that the group and everything left in it are gone and
//! the host is unchanged. A SIGTERM to workbench while the shell runs must
//! remove the group too.
//!
//! They run on whatever cgroup layout the host has: this VM is hybrid (v1
//! controllers), scripts/v2-vm runs them on a pure cgroup v2 kernel.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A lesson run with `--shell`, its shell fed through stdin.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
    before: workbench::host::snapshot::HostState,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Session {
    /// Start the lesson (serialised with the other tests, the host's state
    /// captured first).
    fn start(lesson: &str, extra: &[&str]) -> Session {
        let serial = common::serial();
        let before = workbench::host::snapshot::capture();
        let mut child = common::spawn_lesson(lesson, &["--shell", "--color", "never"], extra);
        let out = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stderr = common::drain(child.stderr.take().unwrap());
        Session {
            stdin: child.stdin.take(),
            child,
            lines,
            stdout: Vec::new(),
            stderr,
            before,
            _serial: serial,
        }
    }

    /// The shell's PID and its group for `controller`, checked to be
    /// workbench's `wb-<run>-<suffix>`.
    fn shell_group(&mut self, controller: &str, suffix: &str) -> (i32, PathBuf) {
        self.send("echo \"pid $$\"");
        let shell = self.number("pid ");
        let dir = group_dir(shell, controller);
        assert_shell_group(&dir, suffix);
        (shell, dir)
    }

    fn send(&mut self, commands: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(commands.as_bytes()).expect("write to the shell");
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The first line of output starting with `prefix`, after what was already read.
    fn until(&mut self, prefix: &str) -> String {
        // The lesson runs first; an emulated CPU (scripts/v2-vm) is slow.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.stdout.push(l.clone());
                    if l.starts_with(prefix) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no line starting with {prefix:?}; output so far:\n{}\nstderr:\n{}",
                    self.stdout.join("\n"),
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// The number after `prefix` on the next line that starts with it.
    fn number(&mut self, prefix: &str) -> i32 {
        let l = self.until(prefix);
        l[prefix.len()..]
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no number in {l:?}"))
    }

    /// Close stdin (after `exit`), wait, return the exit code, the rest of
    /// stdout, and what checks the host afterwards.
    /// Type `exit` in the shell: assert workbench then exits 0, its output
    /// contains each of `says`, and the shell's groups `dirs` are gone; what
    /// is left to check.
    fn exit_ok(mut self, says: &[&str], dirs: &[&Path]) -> Ended {
        self.send("exit");
        let (code, out, ended) = self.finish();
        assert_eq!(code, Some(0), "{out}");
        for s in says {
            common::assert_has(&out, s);
        }
        for d in dirs {
            assert!(!d.exists(), "{} is left", d.display());
        }
        ended
    }

    fn finish(mut self) -> (Option<i32>, String, Ended) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "workbench did not end after the shell's exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push(l);
        }
        let out = format!("{}\nstderr:\n{}", self.stdout.join("\n"), self.stderr.lock().unwrap());
        (
            status.code(),
            out,
            Ended {
                before: self.before,
                _serial: self._serial,
            },
        )
    }
}

/// A finished session: the host's state before it, still serialised.
struct Ended {
    before: workbench::host::snapshot::HostState,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Ended {
    fn assert_host_unchanged(&self, what: &str) {
        common::assert_host_unchanged(&self.before, what);
    }
}

/// The directory of `pid`'s group for `controller`, from /proc/PID/cgroup:
/// the controller's v1 hierarchy when it has one, else the v2 tree.
fn group_dir(pid: i32, controller: &str) -> PathBuf {
    let layout = wb_cgroup::detect_system().expect("cgroup layout");
    let lines = wb_cgroup::read_proc_cgroup(pid).unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    let (root, line) = match layout.hierarchy(controller) {
        Some(mount) => (
            mount.to_path_buf(),
            lines.iter().find(|l| l.controllers.iter().any(|c| c == controller)),
        ),
        None => (
            layout.unified().expect("a cgroup2 tree").to_path_buf(),
            lines.iter().find(|l| l.is_unified()),
        ),
    };
    let line = line.unwrap_or_else(|| panic!("no {controller} line in /proc/{pid}/cgroup: {lines:?}"));
    root.join(line.path.trim_start_matches('/'))
}

/// `workbench/wb-<run>-<suffix>`: a group of the shell, under workbench's parent.
fn assert_shell_group(dir: &Path, suffix: &str) {
    let name = dir.file_name().unwrap().to_string_lossy();
    assert!(
        name.starts_with("wb-") && name.ends_with(&format!("-{suffix}")),
        "the shell is in {}",
        dir.display()
    );
    assert_eq!(
        dir.parent().unwrap().file_name().unwrap(),
        "workbench",
        "{}",
        dir.display()
    );
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

/// The value of `key` in a flat-keyed file such as cpu.stat or memory.events.
fn key(dir: &Path, file: &str, key: &str) -> u64 {
    let text = read(dir, file);
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {file}: {text}"))
}

fn procs(dir: &Path) -> Vec<i32> {
    read(dir, "cgroup.procs")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn wait_gone(pid: i32) -> bool {
    common::gone_within(&[pid], Duration::from_secs(10))
}

#[test]
fn pids_limit_shell_forks_until_pids_max() {
    require_root!();
    let mut s = Session::start("pids-limit", &[]);
    let (shell, dir) = s.shell_group("pids", "shell");
    assert_eq!(read(&dir, "pids.max"), "5");
    assert_eq!(read(&dir, "pids.current"), "1", "the shell alone");
    assert!(
        s.stdout.iter().any(|l| l.starts_with("This shell runs in the cgroup ")
            && l.contains(&dir.display().to_string())
            && l.contains("pids.max 5")),
        "{:?}",
        s.stdout
    );

    // A child shell forks sleeps until the kernel refuses: shell + child
    // shell + 3 sleeps = 5 tasks. (In a non-interactive shell a failed fork
    // would end the shell itself, hence the child shell.)
    s.send("sh -c 'i=0; while [ $i -lt 10 ]; do sleep 100 & i=$((i+1)); done'; echo \"forks ended $?\"");
    let status = s.number("forks ended ");
    assert_ne!(status, 0, "every fork succeeded");
    assert_eq!(
        key(&dir, "pids.events", "max"),
        1,
        "pids.events counts the refused fork"
    );
    let left = procs(&dir);
    let sleeps: Vec<i32> = left.iter().copied().filter(|p| *p != shell).collect();
    assert_eq!(sleeps.len(), 3, "the shell and 3 sleeps stay in the group: {left:?}");
    assert_eq!(read(&dir, "pids.current"), "4");
    // Builtins need no fork: the shell can still read the count itself.
    s.send("read n < $CG/pids.current; echo \"current $n\"");
    assert_eq!(s.number("current "), 4);

    let ended = s.exit_ok(
        &["workbench: the shell ended (exit status 0); killed what was left in it (pids "],
        &[&dir],
    );
    for p in sleeps.iter().chain([&shell]) {
        assert!(wait_gone(*p), "pid {p} outlived the shell's group");
    }
    ended.assert_host_unchanged("pids-limit --shell");
}

#[test]
fn memory_oom_shell_survives_the_oom_kill_of_its_child() {
    require_root!();
    let mut s = Session::start("memory-oom", &["--memory", "32M"]);
    let (shell, dir) = s.shell_group("memory", "shell");
    let limit = (32u64 << 20).to_string();
    let v1 = dir.join("memory.limit_in_bytes").exists();
    if v1 {
        assert_eq!(read(&dir, "memory.limit_in_bytes"), limit);
        if dir.join("memory.memsw.limit_in_bytes").exists() {
            assert_eq!(read(&dir, "memory.memsw.limit_in_bytes"), limit, "no room for swap");
        }
    } else {
        assert_eq!(read(&dir, "memory.max"), limit);
        if dir.join("memory.swap.max").exists() {
            assert_eq!(read(&dir, "memory.swap.max"), "0");
        }
    }
    let events = if v1 { "memory.oom_control" } else { "memory.events" };
    assert_eq!(key(&dir, events, "oom_kill"), 0);

    // tail keeps the one endless "line" of /dev/zero in memory.
    s.send("tail /dev/zero; echo \"tail ended $?\"");
    assert_eq!(s.number("tail ended "), 137, "tail was not SIGKILLed");
    assert_eq!(key(&dir, events, "oom_kill"), 1, "{events} counts one OOM kill");
    // The OOM killer chose the biggest process of the group, not the shell.
    s.send("echo \"alive $$\"");
    assert_eq!(s.number("alive "), shell);
    assert_eq!(procs(&dir), vec![shell]);

    let ended = s.exit_ok(&["workbench: the shell ended (exit status 0); removed "], &[&dir]);
    ended.assert_host_unchanged("memory-oom --shell");
}

#[test]
fn cpu_quota_shell_throttles_its_busy_loop() {
    require_root!();
    let mut s = Session::start("cgroup-cpu-quota", &["--quota", "10000"]);
    let (_shell, dir) = s.shell_group("cpu", "shell");
    if dir.join("cpu.max").exists() {
        assert_eq!(read(&dir, "cpu.max"), "10000 100000");
    } else {
        assert_eq!(read(&dir, "cpu.cfs_quota_us"), "10000");
        assert_eq!(read(&dir, "cpu.cfs_period_us"), "100000");
    }
    s.send("while :; do :; done & echo \"loop $!\"");
    let lp = s.number("loop ");
    assert_eq!(group_dir(lp, "cpu"), dir, "the loop inherits the shell's group");
    // A loop that wants a whole CPU runs out of a 10% quota in every period it
    // gets to run in; wait until the kernel has counted one.
    let deadline = Instant::now() + Duration::from_secs(60);
    while key(&dir, "cpu.stat", "nr_throttled") == 0 {
        assert!(Instant::now() < deadline, "never throttled: {}", read(&dir, "cpu.stat"));
        std::thread::sleep(Duration::from_millis(100));
    }

    let ended = s.exit_ok(&[&format!("killed what was left in it (pid {lp})")], &[&dir]);
    assert!(wait_gone(lp), "the busy loop {lp} outlived the shell's group");
    ended.assert_host_unchanged("cgroup-cpu-quota --shell");
}

#[test]
fn cpu_shares_shell_runs_in_group_a_pinned_to_one_cpu() {
    require_root!();
    let mut s = Session::start("cpu-shares", &["--weights", "3:1"]);
    let (shell, a) = s.shell_group("cpu", "shell-a");
    let b = a.with_file_name(a.file_name().unwrap().to_string_lossy().replace("-shell-a", "-shell-b"));
    assert!(b.is_dir(), "no group B next to {}", a.display());
    if a.join("cpu.weight").exists() {
        assert_eq!(
            (read(&a, "cpu.weight"), read(&b, "cpu.weight")),
            ("300".to_string(), "100".to_string())
        );
    } else {
        let shares = |w| wb_cgroup::weight_to_shares(w).to_string();
        assert_eq!(
            (read(&a, "cpu.shares"), read(&b, "cpu.shares")),
            (shares(300), shares(100))
        );
    }
    let pinned = common::status_field(shell, "Cpus_allowed_list");
    assert!(
        pinned.parse::<usize>().is_ok(),
        "the shell may run on {pinned:?}, not on one CPU"
    );

    // What the shell starts inherits group A and the CPU; $B moves it to B.
    s.send("sleep 100 & echo $! > $B/cgroup.procs; echo \"moved $!\"");
    let sl = s.number("moved ");
    assert_eq!(group_dir(sl, "cpu"), b);
    assert_eq!(
        common::status_field(sl, "Cpus_allowed_list"),
        pinned,
        "the sleep's CPUs"
    );
    assert_eq!(procs(&a), vec![shell]);

    let ended = s.exit_ok(&[], &[&a, &b]);
    assert!(wait_gone(sl), "the sleep {sl} in group B outlived the shell");
    ended.assert_host_unchanged("cpu-shares --shell");
}

#[test]
fn sigterm_while_the_shell_runs_removes_its_group() {
    require_root!();
    let mut s = Session::start("pids-limit", &[]);
    s.send("sleep 100 & echo \"bg $!\"");
    let bg = s.number("bg ");
    let (shell, dir) = s.shell_group("pids", "shell");
    assert_eq!(group_dir(bg, "pids"), dir);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (code, out, ended) = s.finish();
    assert_eq!(code, Some(143), "{out}");
    assert!(out.contains("caught SIGTERM, removing what this run created"), "{out}");
    assert!(!dir.exists(), "{} is left", dir.display());
    for p in [bg, shell] {
        assert!(wait_gone(p), "pid {p} outlived the SIGTERM");
    }
    ended.assert_host_unchanged("pids-limit --shell, then SIGTERM");
}
