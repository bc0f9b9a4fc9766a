//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

/// Tests that compare host state before and after must not overlap.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Read `r` to its end on a thread, appending what comes to the returned text,
/// so that a child writing much to a pipe never blocks on it.
pub fn drain(mut r: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    text
}

/// No process with this PID any more: reaped, or a zombie or dead entry
/// waiting for its parent.
pub fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, r)| r.starts_with('Z') || r.starts_with('X')),
    }
}

/// Have all of `pids` gone (see `gone`) within `within`?
pub fn gone_within(pids: &[i32], within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if pids.iter().all(|p| gone(*p)) {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The value of field `name` in /proc/PID/status, its words separated by one space.
pub fn status_field(pid: i32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status:\n{status}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Skip (pass with a message) unless root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

/// A root test's hold on the host while it runs: the serial lock (root tests
/// compare the host before and after, so they must not overlap) and the host
/// as it was when the test began.
pub struct RootHost {
    _serial: MutexGuard<'static, ()>,
    pub before: workbench::host::snapshot::HostState,
}

impl RootHost {
    /// Wait for the other root tests, then take the host's snapshot.
    pub fn take() -> RootHost {
        let serial = serial();
        RootHost {
            _serial: serial,
            before: workbench::host::snapshot::capture(),
        }
    }

    /// Assert the host looks exactly as when the test began.
    pub fn assert_unchanged(&self, what: &str) {
        assert_host_unchanged(&self.before, what);
    }

    /// Play another live run that holds `resources` (see `hold`); the host
    /// is from now on taken as it is with that run's state file in it.
    pub fn hold(&mut self, lesson: &str, resources: Vec<workbench::state::Resource>) -> HeldRun {
        let held = hold(lesson, resources);
        self.before = workbench::host::snapshot::capture();
        held
    }
}

/// Skip (pass with a message) unless root; else `common::RootHost::take()`.
#[macro_export]
macro_rules! root_host {
    () => {{
        require_root!();
        common::RootHost::take()
    }};
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_workbench")
}

pub fn workbench(args: &[&str]) -> Output {
    workbench_env(args, &[])
}

/// Run workbench with `args` and these environment variables set.
pub fn workbench_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .output()
        .expect("run workbench")
}

/// The environment under which workbench finds no busybox.
pub const NO_BUSYBOX: (&str, &str) = ("WORKBENCH_BUSYBOX_PATHS", "/nonexistent/busybox");

/// Run workbench as nobody (uid and gid 65534), for what must refuse a user who is not root.
pub fn workbench_as_nobody(args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    Command::new(bin())
        .args(args)
        .uid(65534)
        .gid(65534)
        .env("NO_COLOR", "1")
        .output()
        .expect("run workbench")
}

/// `workbench lesson LESSON ARGS...`
pub fn lesson(lesson: &str, args: &[&str]) -> Output {
    let mut a = vec!["lesson", lesson];
    a.extend_from_slice(args);
    workbench(&a)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run `workbench lesson LESSON --shell --color never EXTRA...` with `script`
/// (ending in `exit`) on the shell's stdin; assert it succeeded; its stdout.
pub fn shell(lesson: &str, extra: &[&str], script: &[u8]) -> String {
    use std::io::Write;
    let mut child = spawn_lesson(lesson, &["--shell", "--color", "never"], extra);
    child.stdin.as_mut().unwrap().write_all(script).unwrap();
    let o = child.wait_with_output().unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    out
}

/// `shell(...)`'s line that starts with "marker-" (what the script echoed).
pub fn shell_marker(lesson: &str, extra: &[&str], script: &[u8]) -> String {
    let out = shell(lesson, extra, script);
    out.lines()
        .find(|l| l.starts_with("marker-"))
        .unwrap_or_else(|| panic!("no marker in:\n{out}"))
        .to_string()
}

/// Start `workbench lesson LESSON MODE... EXTRA...` with its stdin, stdout
/// and stderr piped to this test.
pub fn spawn_lesson(lesson: &str, mode: &[&str], extra: &[&str]) -> std::process::Child {
    use std::process::Stdio;
    Command::new(bin())
        .args(["lesson", lesson])
        .args(mode)
        .args(extra)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start workbench")
}

/// Run a lesson with --json and return (exit code, step objects, summary).
pub fn run_json(lesson: &str, extra: &[&str]) -> (i32, Vec<Value>, Value) {
    run_json_env(lesson, extra, &[])
}

/// `run_json` with these environment variables set for workbench.
pub fn run_json_env(lesson: &str, extra: &[&str], env: &[(&str, &str)]) -> (i32, Vec<Value>, Value) {
    let mut args = vec!["lesson", lesson, "--json"];
    args.extend_from_slice(extra);
    let o = workbench_env(&args, env);
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\nstderr: {}", stderr(&o))))
        .collect();
    let (summary, steps): (Vec<Value>, Vec<Value>) = lines.into_iter().partition(|v| v["type"] == "summary");
    assert_eq!(summary.len(), 1, "one summary expected; stderr: {}", stderr(&o));
    (
        o.status.code().unwrap_or(-1),
        steps,
        summary.into_iter().next().unwrap(),
    )
}

/// Assert that every step and the run passed (exit 0) and the teardown had no problems.
pub fn assert_all_passed(code: i32, steps: &[Value], summary: &Value) {
    for s in steps {
        assert_eq!(
            s["pass"],
            true,
            "step {} failed: {}",
            s["id"],
            serde_json::to_string_pretty(s).unwrap()
        );
    }
    assert_eq!(code, 0, "summary: {summary}");
    assert_eq!(summary["pass"], true, "summary: {summary}");
    assert!(summary["cleanup_problems"].as_array().unwrap().is_empty(), "{summary}");
}

/// Run a lesson with --json, assert that all of it passed; its steps and summary.
pub fn run_passing(lesson: &str, extra: &[&str]) -> (Vec<Value>, Value) {
    let (code, steps, summary) = run_json(lesson, extra);
    assert_all_passed(code, &steps, &summary);
    (steps, summary)
}

/// Assert each namespace in `kinds` has `change` ("changed" or "same") in a step's diff.
#[track_caller]
pub fn assert_namespaces(step: &Value, kinds: &[&str], change: &str) {
    for kind in kinds {
        assert_eq!(
            row(step, "namespaces", kind)["change"],
            change,
            "the {kind} namespace in step {}",
            step["id"]
        );
    }
}

/// The step object with id `id`.
pub fn step<'a>(steps: &'a [Value], id: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

/// Every row of a step's diff section `section` (none when it has no such section).
pub fn rows<'a>(step: &'a Value, section: &str) -> Vec<&'a Value> {
    step["diff"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == section)
        .flat_map(|s| s["rows"].as_array().unwrap().iter())
        .collect()
}

/// The keys of a diff section's rows that changed in a given way ("added", "removed", ...).
pub fn keys_with(step: &Value, section: &str, change: &str) -> Vec<String> {
    rows(step, section)
        .into_iter()
        .filter(|r| r["change"] == change)
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect()
}

/// Every transcript entry of a step: (place, command, output).
pub fn transcript(step: &Value) -> Vec<(String, String, String)> {
    step["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["place"].as_str().unwrap().to_string(),
                e["command"].as_str().unwrap().to_string(),
                e["output"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The output of the `n`th command (from 0) a step ran.
pub fn output(step: &Value, n: usize) -> String {
    transcript(step)
        .into_iter()
        .nth(n)
        .unwrap_or_else(|| panic!("step {} ran no command {n}", step["id"]))
        .2
}

/// The diff row `key` of section `section` in a step.
pub fn row<'a>(step: &'a Value, section: &str, key: &str) -> &'a Value {
    let sec = step["diff"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == section)
        .unwrap_or_else(|| panic!("no section {section} in {}", step["id"]));
    sec["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no row {key} in {section}"))
}

/// The one line a refused command prints on stderr (fails unless it is exactly one).
pub fn one_line_error(o: &Output) -> String {
    let e = stderr(o);
    let lines: Vec<&str> = e.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line of error, got:\n{e}");
    lines[0].to_string()
}

/// Assert `o` was refused as bad input (`what`): exit 2 and exactly one line
/// on stderr, which is returned.
pub fn refused(o: &Output, what: &str) -> String {
    assert_eq!(o.status.code(), Some(2), "{what}: exit status (stderr: {})", stderr(o));
    one_line_error(o)
}

/// Assert clap's parser refused `o`'s arguments: exit 2 and its message (which
/// adds a usage hint, so it is more than one line) naming `needle`.
#[track_caller]
pub fn refused_by_parser(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(2), "exit status (stderr: {})", stderr(o));
    assert_has(&stderr(o), needle);
}

/// Assert `text` contains `needle`, showing `text` when it does not.
#[track_caller]
pub fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "no {needle:?} in:\n{text}");
}

/// Assert the host looks exactly as before.
pub fn assert_host_unchanged(before: &workbench::host::snapshot::HostState, what: &str) {
    let after = workbench::host::snapshot::capture();
    let d = workbench::host::snapshot::differences(before, &after);
    assert!(d.is_empty(), "{what} changed the host:\n{}", d.join("\n"));
}

/// A play of another live run, owned by this test process, that holds
/// `resources`: its state file is in workbench's run directory until this is
/// dropped.
pub struct HeldRun {
    pub run_id: String,
    path: std::path::PathBuf,
}

pub fn hold(lesson: &str, resources: Vec<workbench::state::Resource>) -> HeldRun {
    let me = std::process::id() as i32;
    let held = workbench::state::RunState {
        run_id: workbench::state::random_id(),
        lesson: lesson.into(),
        owner_pid: me,
        owner_start: workbench::kernel::proc::start_time(me).unwrap(),
        resources,
    };
    let runs = workbench::state::run_root().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let path = runs.join(format!("{}.json", held.run_id));
    std::fs::write(&path, serde_json::to_vec(&held).unwrap()).unwrap();
    HeldRun {
        run_id: held.run_id,
        path,
    }
}

impl Drop for HeldRun {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
