//! Root integration tests: run each lesson as a learner would (`--json`) and
//! assert the kernel effects it reports, then that the host is unchanged.

mod common;

use common::{assert_namespaces, row, run_json, run_passing, step};

#[test]
fn pid_ns_child_is_pid_1_in_new_namespaces() {
    let host = root_host!();
    let (steps, _) = run_passing("pid-ns", &[]);
    let clone = step(&steps, "clone");
    assert_namespaces(clone, &["pid", "uts", "ipc", "mnt"], "changed");
    assert_namespaces(clone, &["net", "user", "cgroup"], "same");
    let pid = step(&steps, "child-pid");
    assert_eq!(row(pid, "facts", "getpid() inside")["after"], "1");
    let host_pid = row(pid, "facts", "PID seen by the parent")["after"]
        .as_str()
        .unwrap()
        .parse::<i32>()
        .unwrap();
    assert!(host_pid > 1);
    assert_eq!(
        row(pid, "facts", "NSpid (host, inside)")["after"],
        format!("{host_pid} 1")
    );
    let hn = step(&steps, "hostname");
    assert_eq!(row(hn, "facts", "hostname inside")["after"], "In Namespace");
    assert_eq!(row(hn, "facts", "hostname on the host")["change"], "same");
    // The child is gone: its PID no longer names our process.
    let cmdline = std::fs::read_to_string(format!("/proc/{host_pid}/cmdline")).unwrap_or_default();
    assert!(
        !cmdline.contains("workbench"),
        "the namespace child {host_pid} outlived the lesson"
    );
    host.assert_unchanged("pid-ns");
}

#[test]
fn pid_ns_takes_a_hostname_option() {
    require_root!();
    let _g = common::serial();
    let (code, steps, _) = run_json("unshare-pid", &["--hostname", "box42"]);
    assert_eq!(code, 0);
    assert_eq!(
        row(step(&steps, "hostname"), "facts", "hostname inside")["after"],
        "box42"
    );
}

#[test]
fn mount_proc_shows_only_namespace_processes_and_leaves_host_mounts() {
    let host = root_host!();
    let (steps, _) = run_passing("mount-proc", &[]);
    let m = step(&steps, "mount-proc");
    let proc_row = row(m, "mounts", "/proc");
    assert_eq!(proc_row["change"], "added");
    assert!(proc_row["after"].as_str().unwrap().starts_with("proc "));
    let ps = step(&steps, "ps-inside");
    let out = common::output(ps, 0);
    let pids: Vec<i32> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(pids.contains(&1), "ps output: {out}");
    assert!(pids.iter().all(|p| *p < 10), "host processes visible: {out}");
    assert_eq!(step(&steps, "host-unchanged")["pass"], true);
    host.assert_unchanged("mount-proc");
}

#[test]
fn chroot_busybox_fails_without_loader_then_works() {
    let host = root_host!();
    let (steps, _) = run_passing("chroot-busybox", &[]);
    let fails = step(&steps, "chroot-fails");
    common::assert_has(&common::output(fails, 0), "No such file or directory");
    let works = step(&steps, "chroot-works");
    common::assert_has(&common::output(works, 0), "hello from the chroot");
    assert_eq!(
        row(works, "facts", "root directory (readlink /proc/PID/root)")["change"],
        "changed"
    );
    // chroot changes no namespace.
    let iso = step(&steps, "not-isolation");
    assert_namespaces(iso, &["pid", "uts", "ipc", "net", "user", "cgroup"], "same");
    host.assert_unchanged("chroot-busybox");
}

#[test]
fn tour_runs_every_lesson() {
    let host = root_host!();
    let o = common::workbench(&["tour"]);
    let out = common::stdout(&o);
    assert!(o.status.success(), "tour failed:\n{out}\n{}", common::stderr(&o));
    for id in workbench::lessons::ALL.iter().map(|d| d.id) {
        assert!(out.contains(&format!("lesson {id}: ")), "no summary for {id}");
    }
    assert!(out.contains("Tour summary"));
    host.assert_unchanged("tour");
}

#[test]
fn shell_runs_inside_the_namespaces() {
    require_root!();
    let _g = common::serial();
    let marker = common::shell_marker(
        "mount-proc",
        &[],
        b"echo marker-$(ps | wc -l)-$(cat /etc/hostname)\nexit\n",
    );
    // ps inside the shell: header, PID 1, sh, ps, wc → at most 6 lines; the rootfs hostname file.
    let n: usize = marker.split('-').nth(1).unwrap().parse().unwrap();
    assert!(n <= 6, "the shell sees host processes: {marker}");
    assert!(marker.ends_with("-container"), "{marker}");
}
