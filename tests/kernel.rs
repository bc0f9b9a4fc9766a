//! The kernel wrappers on their own (root): what the lessons build on.

mod common;

use nix::sched::CloneFlags;
use workbench::kernel::child::{NsChild, Reply, Request};
use workbench::kernel::ns::read_namespaces;
use workbench::observe::{capture, Capture};

#[test]
fn child_in_new_pid_namespace_is_pid_1_and_has_new_inodes() {
    require_root!();
    let mut c = NsChild::spawn(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS).unwrap();
    c.act(&Request::Go).unwrap();
    let (pid, ppid, _) = c.whoami().unwrap();
    assert_eq!((pid, ppid), (1, 0));
    let me = read_namespaces(std::path::Path::new("/proc"), std::process::id() as i32).unwrap();
    let it = read_namespaces(std::path::Path::new("/proc"), c.pid()).unwrap();
    assert_ne!(me["pid"], it["pid"]);
    assert_ne!(me["uts"], it["uts"]);
    assert_eq!(me["net"], it["net"]);
    assert_eq!(me["mnt"], it["mnt"]);
    c.kill();
    assert!(c.exited());
}

#[test]
fn child_waits_for_the_pipe_before_serving() {
    require_root!();
    let mut c = NsChild::spawn(CloneFlags::empty()).unwrap();
    match c.call(&Request::Whoami).unwrap() {
        Reply::Failed(e) => assert!(e.contains("not released"), "{e}"),
        other => panic!("a held child answered {other:?}"),
    }
    c.act(&Request::Go).unwrap();
    assert!(matches!(c.call(&Request::Whoami).unwrap(), Reply::Whoami { .. }));
}

#[test]
fn hostname_in_uts_namespace_does_not_touch_the_host() {
    require_root!();
    let host = nix::unistd::gethostname().unwrap();
    let mut c = NsChild::spawn(CloneFlags::CLONE_NEWUTS).unwrap();
    c.act(&Request::Go).unwrap();
    c.act(&Request::SetHostname("wb-test-host".into())).unwrap();
    assert_eq!(c.whoami().unwrap().2, "wb-test-host");
    assert_eq!(nix::unistd::gethostname().unwrap(), host);
}

#[test]
fn net_namespace_capture_shows_only_loopback_down() {
    require_root!();
    let mut c = NsChild::spawn(CloneFlags::CLONE_NEWNET).unwrap();
    c.act(&Request::Go).unwrap();
    let s = capture("child", c.pid(), Capture::ALL).unwrap();
    let net = s.net.expect("net captured");
    // lo, plus the fallback device of any tunnel module loaded on this host
    // (tunl0, sit0, ...), which the kernel adds to every new namespace.
    let names: Vec<&String> = net.links.keys().collect();
    assert_eq!(workbench::kit::netlab::without_fallback_tunnels(&names), vec!["lo"]);
    assert!(net.links["lo"].contains("down"), "{:?}", net.links);
    assert!(net.routes.is_empty());
    let host = capture("host", std::process::id() as i32, Capture::ALL).unwrap();
    assert!(host.net.unwrap().links.len() > 1, "the host has more than lo");
}

#[test]
fn proc_mount_in_private_namespace_never_reaches_the_host() {
    require_root!();
    let _g = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut c = NsChild::spawn(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID).unwrap();
    c.act(&Request::Go).unwrap();
    c.act(&Request::MakeRprivate).unwrap();
    c.act(&Request::MountProc(dir.path().to_path_buf())).unwrap();
    let inside = std::fs::read_to_string(format!("/proc/{}/mountinfo", c.pid())).unwrap();
    let d = dir.path().display().to_string();
    assert!(
        inside.lines().any(|l| l.contains(&d) && l.contains(" - proc ")),
        "no proc mount inside"
    );
    assert_eq!(std::fs::read_to_string("/proc/self/mountinfo").unwrap(), before);
    // The new proc shows the new PID namespace: only PID 1 is there.
    let pids: Vec<String> = std::fs::read_dir(format!("/proc/{}/root{}", c.pid(), d))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(pids, vec!["1"]);
}

#[test]
fn chroot_exec_of_missing_program_reports_enoent() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let mut c = NsChild::spawn(CloneFlags::empty()).unwrap();
    c.act(&Request::Go).unwrap();
    c.act(&Request::Chroot(dir.path().to_path_buf())).unwrap();
    let out = c.run(&["/bin/sh"]).unwrap();
    assert_eq!(out.spawn_error.map(|e| e.1), Some(libc::ENOENT));
}
