//! The freezer, cpuset, devices and cpuacct backends against fake trees.
//!
//! As in fake_tree.rs: `create()` only mkdirs, so each test fills the new
//! group with the files the kernel would make, then checks what the
//! operations wrote and read.

use std::fs;
use std::path::Path;

use tempfile::TempDir;
use wb_cgroup::*;

fn put(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn get(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

const NEW: [Controller; 4] = [
    Controller::Cpu,
    Controller::Cpuset,
    Controller::Freezer,
    Controller::Devices,
];

/// A hybrid host like the development VM: cpu, cpuacct, cpuset, freezer,
/// devices each a hierarchy of its own, a controller-less cgroup2 at unified/.
fn fake_hybrid() -> TempDir {
    let t = TempDir::new().unwrap();
    let r = t.path();
    for h in ["cpu", "cpuacct", "cpuset", "freezer", "devices", "memory", "pids"] {
        put(&r.join(h).join("cgroup.procs"), "1\n");
    }
    put(&r.join("cpu/cpu.cfs_quota_us"), "-1\n");
    put(&r.join("cpuacct/cpuacct.stat"), "user 100\nsystem 50\n");
    put(&r.join("cpuset/cpuset.cpus"), "0-1\n");
    put(&r.join("cpuset/cpuset.mems"), "0\n");
    put(&r.join("devices/devices.list"), "a *:* rwm\n");
    put(&r.join("unified/cgroup.controllers"), "\n");
    put(&r.join("unified/cgroup.subtree_control"), "\n");
    t
}

/// The files the kernel puts in a new v1 group of each hierarchy (a new
/// cpuset group starts with empty lists).
fn populate_v1(r: &Path, name: &str) {
    let g = |h: &str| r.join(h).join("workbench").join(name);
    put(&g("cpuacct").join("cpuacct.stat"), "user 0\nsystem 0\n");
    put(&g("cpuacct").join("cpuacct.usage"), "0\n");
    put(&g("cpuset").join("cpuset.cpus"), "\n");
    put(&g("cpuset").join("cpuset.mems"), "\n");
    put(&g("cpuset").join("cpuset.effective_cpus"), "\n");
    put(&g("freezer").join("freezer.state"), "THAWED\n");
    put(&g("devices").join("devices.deny"), "");
    put(&g("devices").join("devices.list"), "a *:* rwm\n");
}

#[test]
fn hybrid_routes_the_new_controllers_to_their_v1_hierarchies() {
    let t = fake_hybrid();
    let r = t.path();
    let l = detect(r).unwrap();
    // The kernel would make these files in workbench/ when it is created.
    put(&r.join("cpuset/workbench/cpuset.cpus"), "\n");
    put(&r.join("cpuset/workbench/cpuset.mems"), "\n");
    let planned = planned_paths(&l, "demo", &NEW).unwrap();
    let g = create(&l, "demo", &NEW).unwrap();
    assert_eq!(g.paths(), planned);
    for h in ["cpu", "cpuacct", "cpuset", "devices", "freezer"] {
        assert!(planned.contains(&r.join(h).join("workbench/demo")), "{h}: {planned:?}");
    }
    assert!(!r.join("unified/workbench").exists(), "nothing on the v2 side");
    for c in NEW {
        assert_eq!(g.version_of(c), Some(Version::V1), "{c}");
    }
    // workbench/ took its CPUs and memory nodes from the root, which is not written.
    assert_eq!(get(&r.join("cpuset/workbench/cpuset.cpus")), "0-1");
    assert_eq!(get(&r.join("cpuset/workbench/cpuset.mems")), "0");
    assert_eq!(get(&r.join("cpuset/cpuset.cpus")), "0-1\n");

    populate_v1(r, "demo");
    let d = |h: &str, f: &str| r.join(h).join("workbench/demo").join(f);

    g.freeze().unwrap();
    assert_eq!(get(&d("freezer", "freezer.state")), "FROZEN");
    put(&d("freezer", "freezer.state"), "FREEZING\n");
    assert_eq!(g.freezer_state().unwrap(), FreezerState::Freezing);
    put(&d("freezer", "freezer.state"), "FROZEN\n");
    assert_eq!(g.freezer_state().unwrap(), FreezerState::Frozen);
    g.thaw().unwrap();
    assert_eq!(get(&d("freezer", "freezer.state")), "THAWED");

    g.set_cpuset_cpus("1").unwrap();
    assert_eq!(get(&d("cpuset", "cpuset.cpus")), "1");
    assert_eq!(g.cpuset_cpus().unwrap(), "1");
    assert!(matches!(g.set_cpuset_cpus("1-0"), Err(Error::InvalidValue { .. })));
    assert_eq!(get(&d("cpuset", "cpuset.cpus")), "1", "a bad list is not written");

    g.deny_device(&DeviceRule::char_write(1, 3)).unwrap();
    assert_eq!(get(&d("devices", "devices.deny")), "c 1:3 w");
    assert_eq!(g.device_rules().unwrap(), "a *:* rwm");

    put(&d("cpuacct", "cpuacct.stat"), "user 120\nsystem 30\n");
    assert_eq!(
        g.cpu_times().unwrap(),
        CpuTimes {
            user_ns: 1_200_000_000,
            system_ns: 300_000_000
        }
    );

    let label = |res| g.files_for(res).into_iter().map(|f| f.label).collect::<Vec<_>>();
    assert_eq!(label(Resource::Freezer), ["freezer.state"]);
    assert_eq!(
        label(Resource::Cpuset),
        ["cpuset.cpus", "cpuset.mems", "cpuset.effective_cpus"]
    );
    assert_eq!(label(Resource::Devices), ["devices.list"]);
    assert_eq!(label(Resource::CpuTimes), ["cpuacct.stat", "cpuacct.usage"]);
    // The cpu lessons' resources are unchanged by the new entries.
    assert_eq!(label(Resource::CpuQuota), ["cpu.cfs_quota_us", "cpu.cfs_period_us"]);
}

/// A pure v2 host whose root delegates every controller.
fn fake_v2() -> TempDir {
    let t = TempDir::new().unwrap();
    let r = t.path();
    put(
        &r.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    put(&r.join("cgroup.subtree_control"), "cpuset cpu io memory pids\n");
    put(&r.join("cgroup.procs"), "1\n");
    put(&r.join("cpu.stat"), "usage_usec 9\nuser_usec 6\nsystem_usec 3\n");
    put(&r.join("workbench/cgroup.controllers"), "cpuset cpu io memory pids\n");
    put(&r.join("workbench/cgroup.subtree_control"), "\n");
    t
}

#[test]
fn v2_freezer_and_devices_need_no_controller_and_cpuset_is_delegated() {
    let t = fake_v2();
    let r = t.path();
    let l = detect(r).unwrap();
    let s = l.summary();
    assert_eq!(s.workbench["freezer"], Ok("v2"), "freezer is a core file on v2");
    assert_eq!(s.workbench["devices"], Ok("v2"), "devices is a BPF program on v2");
    assert_eq!(s.workbench["cpuset"], Ok("v2"));

    let g = create(&l, "demo", &NEW).unwrap();
    assert_eq!(g.paths(), vec![r.join("workbench/demo")]);
    // Only real controllers are enabled in workbench's parent.
    assert_eq!(get(&r.join("workbench/cgroup.subtree_control")), "+cpu +cpuset");
    assert_eq!(
        get(&r.join("cgroup.subtree_control")),
        "cpuset cpu io memory pids\n",
        "root untouched"
    );

    let d = r.join("workbench/demo");
    put(&d.join("cgroup.procs"), "");
    put(&d.join("cgroup.freeze"), "0\n");
    put(&d.join("cgroup.events"), "populated 1\nfrozen 0\n");
    put(&d.join("cpuset.cpus"), "\n");
    put(&d.join("cpuset.mems"), "\n");
    put(&d.join("cpuset.cpus.effective"), "0-1\n");
    put(
        &d.join("cpu.stat"),
        "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
    );

    assert_eq!(g.freezer_state().unwrap(), FreezerState::Thawed);
    g.freeze().unwrap();
    assert_eq!(get(&d.join("cgroup.freeze")), "1");
    assert_eq!(
        g.freezer_state().unwrap(),
        FreezerState::Freezing,
        "asked, not yet frozen"
    );
    put(&d.join("cgroup.events"), "populated 1\nfrozen 1\n");
    assert_eq!(g.freezer_state().unwrap(), FreezerState::Frozen);
    g.thaw().unwrap();
    assert_eq!(get(&d.join("cgroup.freeze")), "0");

    assert_eq!(g.cpuset_cpus().unwrap(), "");
    g.set_cpuset_cpus("0").unwrap();
    assert_eq!(get(&d.join("cpuset.cpus")), "0");
    assert_eq!(g.cpuset_effective_cpus().unwrap(), "0-1");

    assert_eq!(
        g.cpu_times().unwrap(),
        CpuTimes {
            user_ns: 2_000_000,
            system_ns: 500_000
        }
    );
    let label = |res| g.files_for(res).into_iter().map(|f| f.label).collect::<Vec<_>>();
    assert_eq!(label(Resource::Freezer), ["cgroup.freeze", "cgroup.events"]);
    assert_eq!(
        label(Resource::Cpuset),
        ["cpuset.cpus", "cpuset.mems", "cpuset.cpus.effective"]
    );
    assert!(label(Resource::Devices).is_empty(), "v2 has no devices file");
    assert_eq!(label(Resource::CpuTimes), ["cpu.stat"]);
}

#[test]
fn v2_cpuset_must_be_delegated_at_the_root() {
    let t = fake_v2();
    let r = t.path();
    put(&r.join("cgroup.subtree_control"), "cpu memory\n");
    let l = detect(r).unwrap();
    let e = create(&l, "demo", &[Controller::Cpuset]).unwrap_err();
    assert!(matches!(e, Error::NotEnabledAtRoot { .. }), "{e}");
    assert!(!r.join("workbench/demo").exists());
    // The freezer alone makes a group on any cgroup2 tree.
    create(&l, "frz", &[Controller::Freezer]).unwrap();
    assert_eq!(
        get(&r.join("workbench/cgroup.subtree_control")),
        "\n",
        "nothing to enable"
    );
}
