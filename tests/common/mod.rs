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

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_workbench")
}

pub fn workbench(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run workbench")
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
    use std::process::Stdio;
    let mut child = Command::new(bin())
        .args(["lesson", lesson, "--shell", "--color", "never"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run workbench");
    child.stdin.as_mut().unwrap().write_all(script).unwrap();
    let o = child.wait_with_output().unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    out
}

/// Run a lesson with --json and return (exit code, step objects, summary).
pub fn run_json(lesson: &str, extra: &[&str]) -> (i32, Vec<Value>, Value) {
    let mut args = vec!["lesson", lesson, "--json"];
    args.extend_from_slice(extra);
    let o = workbench(&args);
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

/// The step object with id `id`.
pub fn step<'a>(steps: &'a [Value], id: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id}"))
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

/// Assert the host looks exactly as before.
/// The one line a refused command prints on stderr (fails unless it is exactly one).
pub fn one_line_error(o: &Output) -> String {
    let e = stderr(o);
    let lines: Vec<&str> = e.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line of error, got:\n{e}");
    lines[0].to_string()
}

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
