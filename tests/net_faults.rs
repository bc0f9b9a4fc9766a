//! The network lessons under faults, beyond what tests/fault_matrix.rs checks
//! for every lesson, pause point and signal: a subnet a paused run holds is
//! refused to a second run, and a SIGKILLed nat-port-map leaves ip_forward on
//! and its nft table for `workbench cleanup`, which names and restores them.

mod common;
#[path = "support/paused.rs"]
mod paused;

use nix::sys::signal::Signal;
use paused::{descendants, wait_gone, Paused};

fn start_paused(lesson: &str, steps: usize) -> Paused {
    Paused::start(lesson, steps)
}

fn section(s: &workbench::host::snapshot::HostState, name: &str) -> Vec<String> {
    s.sections.get(name).cloned().unwrap_or_default()
}

#[test]
fn a_subnet_held_by_a_paused_run_is_refused() {
    let host = root_host!();
    let run = start_paused("veth-bridge", 3);
    let out = run.output();
    // "10.213.0.0/24: bridge (gateway) 10.213.0.1, container 10.213.0.2"
    let taken = out
        .lines()
        .find_map(|l| l.trim().split_once(": bridge (gateway)").map(|(s, _)| s.to_string()))
        .unwrap_or_else(|| panic!("no subnet line in:\n{out}"));
    let o = common::lesson("veth-bridge", &["--subnet", &taken]);
    common::assert_has(
        &common::refused(&o, "a held --subnet"),
        &format!("--subnet {taken} overlaps the host's route {taken} dev wb"),
    );
    // A second run without --subnet picks another, free one.
    let (code, steps, _) = common::run_json("veth-bridge", &[]);
    assert_eq!(code, 0);
    let sub = common::output(common::step(&steps, "subnet"), 1);
    assert!(!sub.starts_with(&taken), "the second run reused {taken}: {sub}");
    run.interrupt(Signal::SIGINT, 130);
    host.assert_unchanged("veth-bridge interrupted by SIGINT");
}

#[test]
fn sigkill_during_nat_port_map_then_cleanup_restores_the_host() {
    require_root!();
    let _g = common::serial();
    // Leftovers of earlier killed runs would be cleaned below too: clear them first.
    let _ = common::workbench(&["cleanup"]);
    let before = workbench::host::snapshot::capture();
    let run = start_paused("nat-port-map", 6);
    let procs = descendants(run.pid());
    run.signal(Signal::SIGKILL);
    // The namespaces die with workbench (PR_SET_PDEATHSIG, then their PID namespaces)...
    assert!(wait_gone(&procs), "processes {procs:?} survived SIGKILL of workbench");
    // ...but the bridge, the nft table and ip_forward=1 wait for `cleanup`.
    let left = workbench::host::snapshot::capture();
    assert!(section(&left, "sysctl").contains(&"net.ipv4.ip_forward = 1".to_string()));
    assert!(section(&left, "nft").iter().any(|l| l.starts_with("table ip wb")));
    let o = common::workbench(&["cleanup"]);
    assert!(o.status.success(), "cleanup failed: {}", common::stderr(&o));
    let out = common::stdout(&o);
    assert!(
        out.contains("removed nft table ip wb") && out.contains("removed sysctl net.ipv4.ip_forward"),
        "{out}"
    );
    common::assert_host_unchanged(&before, "nat-port-map killed, then cleanup");
}
