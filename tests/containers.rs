//! Kept and detached containers: `workbench run --keep` leaves the overlay
//! upper dir (the container's changes, whiteouts included) and nothing else;
//! `--detach` leaves a `workbench shim` as the container's parent after the
//! CLI exits, with its output in the log; `stop`, `rm`, and `cleanup` after
//! the shim is SIGKILLed, each leaving the host as it was.
//!
//! The containers' base directory is a temporary one (WORKBENCH_CONTAINERS_DIR).

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

/// A busybox rootfs and a containers base, both in one temporary directory.
struct Setup {
    _t: tempfile::TempDir,
    rootfs: String,
    base: PathBuf,
}

fn setup() -> Setup {
    let t = tempfile::Builder::new()
        .prefix("wb-containers-test-")
        .tempdir()
        .unwrap();
    let busybox = workbench::host::Host::probe()
        .busybox_static
        .expect("a static busybox (scripts/setup installs busybox-static)");
    let root = t.path().join("rootfs");
    let spec = rootfs_builder::build::RootfsSpec {
        busybox,
        ..Default::default()
    };
    rootfs_builder::build::build_rootfs(&spec, &root).unwrap();
    std::fs::write(root.join("marker-of-the-rootfs"), "").unwrap();
    Setup {
        rootfs: root.display().to_string(),
        base: t.path().join("containers"),
        _t: t,
    }
}

impl Setup {
    fn wb(&self, args: &[&str]) -> Output {
        common::workbench_env(args, &[("WORKBENCH_CONTAINERS_DIR", self.base.to_str().unwrap())])
    }

    fn record(&self, name: &str) -> Value {
        let text = std::fs::read(self.base.join(name).join("container.json")).unwrap();
        serde_json::from_slice(&text).unwrap()
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn ppid(pid: i32) -> i32 {
    common::status_field(pid, "PPid").parse().unwrap()
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn keep_leaves_the_upper_dir_with_the_changes_and_nothing_else() {
    let host = root_host!();
    let s = setup();
    let o = s.wb(&[
        "run",
        "--name",
        "wbt-keep",
        "--keep",
        "--overlay",
        &s.rootfs,
        "sh",
        "-c",
        "echo written > /new-file; rm /marker-of-the-rootfs; exit 3",
    ]);
    assert_eq!(code(&o), 3, "{}", common::stderr(&o));
    let dir = s.base.join("wbt-keep");
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    let upper = dir.join("upper");
    assert_eq!(std::fs::read_to_string(upper.join("new-file")).unwrap(), "written\n");
    let wh = std::fs::symlink_metadata(upper.join("marker-of-the-rootfs")).unwrap();
    assert!(
        wh.file_type().is_char_device(),
        "the deleted file is a whiteout: {wh:?}"
    );
    assert_eq!(wh.rdev(), 0, "a whiteout is the 0/0 character device");
    assert!(
        Path::new(&s.rootfs).join("marker-of-the-rootfs").exists(),
        "the lower dir is untouched"
    );
    let r = s.record("wbt-keep");
    assert_eq!(r["version"], 1);
    assert_eq!(r["name"], "wbt-keep");
    assert_eq!(r["state"], "exited");
    assert_eq!(r["exit_code"], 3);
    assert_eq!(r["pid"], Value::Null);
    assert_eq!(r["shim_pid"], Value::Null);
    assert_eq!(r["source"], s.rootfs.as_str());
    assert_eq!(
        r["lowers"][0],
        std::fs::canonicalize(&s.rootfs).unwrap().to_str().unwrap()
    );
    assert_eq!(r["argv"][0], "sh");
    assert!(r["created"].as_str().unwrap().ends_with('Z'));
    // Only the record's directory stays: no cgroup, link, mount, state file or working dir.
    host.assert_unchanged("workbench run --keep (its record directory aside)");

    // A name in use is refused before anything is created.
    let o = s.wb(&["run", "--name", "wbt-keep", "--keep", "--overlay", &s.rootfs, "true"]);
    assert_eq!(code(&o), 2, "{}", common::stderr(&o));
    common::assert_has(&common::stderr(&o), "in use");
    let o = s.wb(&["ps", "-a"]);
    common::assert_has(&common::stdout(&o), "exited (3)");
    assert!(
        !common::stdout(&s.wb(&["ps"])).contains("wbt-keep"),
        "ps without -a: running only"
    );
    let o = s.wb(&["rm", "wbt-keep"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(!dir.exists());
    host.assert_unchanged("workbench rm");
}

#[test]
fn detach_leaves_the_shim_as_the_parent_then_stop_and_rm() {
    let host = root_host!();
    let s = setup();
    let o = s.wb(&[
        "run",
        "-d",
        "--name",
        "wbt-det",
        "--overlay",
        &s.rootfs,
        "sh",
        "-c",
        "trap 'echo got-term; exit 143' TERM; echo out-marker; echo err-marker >&2; while :; do sleep 0.1; done",
    ]);
    // output() returned: the CLI has exited.
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    assert_eq!(common::stdout(&o), "wbt-det\n");
    let r = s.record("wbt-det");
    assert_eq!(r["state"], "running");
    let (pid, shim) = (
        r["pid"].as_i64().unwrap() as i32,
        r["shim_pid"].as_i64().unwrap() as i32,
    );
    assert_eq!(ppid(pid), shim, "the container's parent is the shim");
    assert_ne!(ppid(shim), std::process::id() as i32);
    let cmdline = std::fs::read(format!("/proc/{shim}/cmdline")).unwrap();
    assert!(cmdline.starts_with(b"workbench\0shim\0"), "{cmdline:?}");
    assert_eq!(
        common::status_field(shim, "NSpid").split(' ').count(),
        1,
        "the shim is on the host"
    );
    // A new session: the CLI's terminal (and its Ctrl-C) is not the shim's.
    let sid = |p: i32| nix::unistd::getsid(Some(Pid::from_raw(p))).unwrap().as_raw();
    assert_eq!(sid(shim), shim);
    assert_ne!(sid(shim), sid(std::process::id() as i32));

    wait_until("the output in the log", Duration::from_secs(10), || {
        common::stdout(&s.wb(&["logs", "wbt-det"])).contains("err-marker")
    });
    common::assert_has(&common::stdout(&s.wb(&["logs", "wbt-det"])), "out-marker");
    let o = s.wb(&["ps", "--json"]);
    let line: Value = serde_json::from_str(common::stdout(&o).lines().next().unwrap()).unwrap();
    assert_eq!(line["name"], "wbt-det");
    assert_eq!(line["state"], "running");

    let o = s.wb(&["rm", "wbt-det"]);
    assert_eq!(code(&o), 2, "a running container is not removed without -f");
    common::assert_has(&common::stderr(&o), "is running");
    assert!(s.base.join("wbt-det").exists());

    let o = s.wb(&["stop", "-t", "5", "wbt-det"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let r = s.record("wbt-det");
    assert_eq!(r["state"], "exited");
    let status = r["exit_code"].as_i64().unwrap();
    assert!(status == 143 || status == 137, "exit status {status}");
    assert!(common::gone_within(&[pid, shim], Duration::from_secs(5)));
    common::assert_has(&common::stdout(&s.wb(&["logs", "wbt-det"])), "out-marker");
    let o = s.wb(&["rm", "wbt-det"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(!s.base.join("wbt-det").exists());
    host.assert_unchanged("run --detach, stop, rm");
}

#[test]
fn a_sigkilled_shim_leaves_what_cleanup_removes_and_the_record() {
    let host = root_host!();
    let s = setup();
    let o = s.wb(&[
        "run",
        "-d",
        "--name",
        "wbt-kill",
        "--memory",
        "32M",
        "--net",
        "bridge",
        "--overlay",
        &s.rootfs,
        "sleep",
        "30",
    ]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    let r = s.record("wbt-kill");
    let (pid, shim) = (
        r["pid"].as_i64().unwrap() as i32,
        r["shim_pid"].as_i64().unwrap() as i32,
    );
    kill(Pid::from_raw(shim), Signal::SIGKILL).unwrap();
    assert!(common::gone_within(&[shim], Duration::from_secs(5)));
    let after_kill = workbench::host::snapshot::capture();
    assert!(
        !workbench::host::snapshot::differences(&host.before, &after_kill).is_empty(),
        "SIGKILL left the shim's state file, cgroup and links"
    );
    let o = s.wb(&["cleanup"]);
    assert!(o.status.success(), "{}{}", common::stdout(&o), common::stderr(&o));
    assert!(common::gone_within(&[pid], Duration::from_secs(5)));
    assert!(
        s.base.join("wbt-kill/upper").is_dir(),
        "cleanup leaves a kept container alone"
    );
    let o = s.wb(&["ps", "-a", "--json"]);
    let line: Value = serde_json::from_str(common::stdout(&o).lines().next().unwrap()).unwrap();
    assert_eq!(
        line["state"], "exited",
        "the record says running, but nothing runs: {line}"
    );
    assert_eq!(line["exit_code"], Value::Null, "nobody reaped it to learn its status");
    host.assert_unchanged("the shim SIGKILLed, then workbench cleanup");
    let o = s.wb(&["rm", "wbt-kill"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
}

#[test]
fn cleanup_removes_a_half_made_container_and_keeps_the_others() {
    let host = root_host!();
    let s = setup();
    let o = s.wb(&["run", "--name", "wbt-done", "--keep", "--overlay", &s.rootfs, "true"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    // A run killed while making wbt-half: its state file names the directory, its owner is dead.
    let half = s.base.join("wbt-half");
    std::fs::create_dir_all(half.join("upper")).unwrap();
    let dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id() as i32;
    let _ = dead.wait_with_output();
    let state = workbench::state::RunState {
        run_id: workbench::state::random_id(),
        lesson: "run".into(),
        owner_pid: dead_pid,
        owner_start: 1,
        resources: vec![workbench::state::Resource::Dir { path: half.clone() }],
    };
    let runs = workbench::state::run_root().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let file = runs.join(format!("{}.json", state.run_id));
    std::fs::write(&file, serde_json::to_vec(&state).unwrap()).unwrap();
    let o = s.wb(&["cleanup"]);
    assert!(o.status.success(), "{}{}", common::stdout(&o), common::stderr(&o));
    assert!(!half.exists(), "the half-made container is removed");
    assert!(!file.exists());
    assert!(s.base.join("wbt-done/container.json").exists(), "the kept one stays");
    assert!(s.wb(&["rm", "wbt-done"]).status.success());
    host.assert_unchanged("cleanup of a half-made container");
}

#[test]
fn bad_input_is_one_line_exit_2_and_changes_nothing() {
    let host = root_host!();
    let s = setup();
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", "--keep", &s.rootfs, "true"],
        vec!["run", "-d", &s.rootfs, "true"],
        vec!["run", "-d", "-i", "--overlay", &s.rootfs, "true"],
        vec!["logs", "nope"],
        vec!["stop", "nope"],
        vec!["rm", "nope"],
        vec!["rm", "../etc"],
        vec!["shim", "--overlay", &s.rootfs, "true"],
    ];
    for c in cases {
        let o = s.wb(&c);
        let err = common::stderr(&o);
        assert_eq!(code(&o), 2, "{c:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{c:?}: {err}");
    }
    assert!(!s.base.exists(), "nothing was created");
    host.assert_unchanged("bad input to the container commands");
}

#[test]
fn sigterm_to_the_shim_stops_the_container_and_tears_down() {
    let host = root_host!();
    let s = setup();
    let o = s.wb(&["run", "-d", "--name", "wbt-term", "--overlay", &s.rootfs, "sleep", "30"]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    let r = s.record("wbt-term");
    let (pid, shim) = (
        r["pid"].as_i64().unwrap() as i32,
        r["shim_pid"].as_i64().unwrap() as i32,
    );
    kill(Pid::from_raw(shim), Signal::SIGTERM).unwrap();
    assert!(common::gone_within(&[pid, shim], Duration::from_secs(10)));
    let r = s.record("wbt-term");
    assert_eq!(r["state"], "exited");
    assert_eq!(r["exit_code"], 137, "the shim kills the container when told to stop");
    common::assert_has(&common::stdout(&s.wb(&["logs", "wbt-term"])), "caught SIGTERM");
    assert!(s.wb(&["rm", "wbt-term"]).status.success());
    host.assert_unchanged("SIGTERM to the shim, then rm");
}

#[test]
fn an_image_is_kept_too_with_its_cmd_in_the_record() {
    let host = root_host!();
    let s = setup();
    let t = s.base.parent().unwrap();
    let layer = t.join("layer.tar.gz");
    rootfs_builder::pack::pack_tar_gz(Path::new(&s.rootfs), std::fs::File::create(&layer).unwrap()).unwrap();
    let cfg = wb_image::ImageConfig {
        name: "wbtest".into(),
        tag: "v1".into(),
        cmd: vec!["/bin/sh".into(), "-c".into(), "echo from-image > /etc/motd".into()],
        env: vec![],
    };
    wb_image::save_oci(std::slice::from_ref(&layer), &cfg, &t.join("oci")).unwrap();
    let source = format!("oci:{}:v1", t.join("oci").display());
    let o = s.wb(&["run", "--keep", &source]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    // No --name: one is made up and printed.
    let err = common::stderr(&o);
    let name = err
        .lines()
        .find_map(|l| l.strip_prefix("workbench: container "))
        .unwrap_or_else(|| panic!("no name printed: {err}"))
        .to_string();
    let r = s.record(&name);
    assert_eq!(r["source"], source.as_str());
    assert_eq!(r["argv"][2], "echo from-image > /etc/motd", "the image's Cmd");
    assert_eq!(r["lowers"].as_array().unwrap().len(), 1, "one layer");
    assert_eq!(
        std::fs::read_to_string(s.base.join(&name).join("upper/etc/motd")).unwrap(),
        "from-image\n"
    );
    assert!(s.wb(&["rm", &name]).status.success());
    host.assert_unchanged("run --keep IMAGE, then rm");
}
