//! Backend tests against fake cgroup trees in a temp dir.
//!
//! The fake trees contain the files the kernel would create, with realistic
//! content. `create()` only mkdirs a group directory (the kernel would fill
//! it), so each test populates the new group with kernel-like files before
//! exercising the operations, then checks the exact bytes written.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use wb_cgroup::*;

const UNLIMITED: &str = "9223372036854771712\n";

fn put(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn get(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

/// Write each (name, content) in `dir`.
fn put_all(dir: &Path, files: &[(&str, &str)]) {
    for (name, content) in files {
        put(&dir.join(name), content);
    }
}

/// The kernel-made files of a group, by controller and cgroup version.
const V1_CPU: &[(&str, &str)] = &[
    ("cgroup.procs", ""),
    ("cpu.cfs_quota_us", "-1\n"),
    ("cpu.cfs_period_us", "100000\n"),
    ("cpu.shares", "1024\n"),
    (
        "cpu.stat",
        "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n",
    ),
];
const V1_CPUACCT: &[(&str, &str)] = &[
    ("cgroup.procs", ""),
    ("cpuacct.usage", "0\n"),
    ("cpuacct.stat", "user 0\nsystem 0\n"),
];
const V1_MEMORY: &[(&str, &str)] = &[
    ("cgroup.procs", ""),
    ("memory.limit_in_bytes", UNLIMITED),
    ("memory.usage_in_bytes", "0\n"),
    ("memory.max_usage_in_bytes", "0\n"),
    ("memory.failcnt", "0\n"),
    ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"),
];
/// With swap accounting.
const V1_MEMSW: &[(&str, &str)] = &[
    ("memory.memsw.limit_in_bytes", UNLIMITED),
    ("memory.memsw.usage_in_bytes", "0\n"),
];
const PIDS: &[(&str, &str)] = &[
    ("cgroup.procs", ""),
    ("pids.max", "max\n"),
    ("pids.current", "0\n"),
    ("pids.events", "max 0\n"),
];

fn v1_cpu_files(dir: &Path) {
    put_all(dir, V1_CPU);
}

fn v1_memory_files(dir: &Path, memsw: bool) {
    put_all(dir, V1_MEMORY);
    if memsw {
        put_all(dir, V1_MEMSW);
    }
}

fn pids_files(dir: &Path) {
    put_all(dir, PIDS);
}

/// The files of a v1 group in the cpu, cpuacct and memory hierarchies; `dir`
/// names its directory in a hierarchy.
fn v1_groups(dir: impl Fn(&str) -> PathBuf, memsw: bool) {
    v1_cpu_files(&dir("cpu"));
    put_all(&dir("cpuacct"), V1_CPUACCT);
    v1_memory_files(&dir("memory"), memsw);
}

/// The cpu, cpuacct and memory hierarchies of a v1 host, in a temporary directory.
fn v1_tree(memsw: bool) -> TempDir {
    let t = TempDir::new().unwrap();
    v1_groups(|h| t.path().join(h), memsw);
    t
}

/// A v1 host like the development VM: separate cpu and cpuacct mounts.
fn fake_v1(memsw: bool) -> TempDir {
    let t = v1_tree(memsw);
    let r = t.path();
    // Root groups: the kernel shows no limits files at the root for pids.
    put(&r.join("pids/cgroup.procs"), "1\n");
    put(&r.join("systemd/cgroup.procs"), "1\n");
    put(&r.join("cpuset/cpuset.cpus"), "0-1\n");
    t
}

/// Fill in a freshly created v1 group the way the kernel would.
fn populate_v1(layout: &Layout, name: &str, memsw: bool) {
    let g = |h: &str| layout.hierarchy(h).unwrap().join("workbench").join(name);
    pids_files(&g("pids"));
    v1_groups(g, memsw);
}

fn fake_v2(root_subtree: &str) -> TempDir {
    let t = TempDir::new().unwrap();
    let r = t.path();
    put(
        &r.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    put(&r.join("cgroup.subtree_control"), root_subtree);
    put(&r.join("cgroup.procs"), "1\n");
    put(
        &r.join("cpu.stat"),
        "usage_usec 9000000\nuser_usec 6000000\nsystem_usec 3000000\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n",
    );
    // A sibling like systemd's system.slice, with cpu and memory enabled.
    let s = r.join("system.slice");
    put(&s.join("cpu.weight"), "100\n");
    put(&s.join("cpu.max"), "max 100000\n");
    put(&s.join("memory.max"), "max\n");
    put(&s.join("memory.swap.max"), "max\n");
    t
}

/// A cgroup2 mount at `<root>/unified` (a hybrid host) offering `controllers`,
/// `enabled` at its root.
fn unified(root: &Path, controllers: &str, enabled: &str) {
    put(&root.join("unified/cgroup.controllers"), controllers);
    put(&root.join("unified/cgroup.subtree_control"), enabled);
}

/// The kernel-made files of `<root>/workbench` (as if workbench mkdir'ed it earlier).
fn v2_parent(root: &Path, available: &str) {
    let p = root.join("workbench");
    put(&p.join("cgroup.controllers"), available);
    put(&p.join("cgroup.subtree_control"), "\n");
    put(&p.join("cgroup.procs"), "");
}

const V2_GROUP: &[(&str, &str)] = &[
    ("cgroup.controllers", "cpu memory pids\n"),
    ("cgroup.subtree_control", "\n"),
    ("cgroup.procs", ""),
    ("cgroup.kill", ""),
    ("cpu.max", "max 100000\n"),
    ("cpu.weight", "100\n"),
    (
        "cpu.stat",
        "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n",
    ),
    ("memory.max", "max\n"),
    ("memory.swap.max", "max\n"),
    ("memory.current", "0\n"),
    (
        "memory.events",
        "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    ),
];

fn populate_v2(dir: &Path, with_peak: bool) {
    put_all(dir, V2_GROUP);
    if with_peak {
        put(&dir.join("memory.peak"), "0\n");
    }
    pids_files(dir);
}

/// A v2 host with cpu, memory and pids enabled at the root and in workbench's parent.
fn v2_host() -> (TempDir, Layout) {
    let t = fake_v2("cpu memory pids\n");
    v2_parent(t.path(), "cpu memory pids\n");
    let l = detect(t.path()).unwrap();
    (t, l)
}

/// A group `name` with every controller on `v2_host()`, filled in as the
/// kernel would: the host, the group, and the group's directory.
fn v2_group(name: &str, with_peak: bool) -> (TempDir, Group, PathBuf) {
    let (t, l) = v2_host();
    let g = create(&l, name, &ALL).unwrap();
    let d = t.path().join("workbench").join(name);
    populate_v2(&d, with_peak);
    (t, g, d)
}

/// The labels of the files watched for `res`.
fn labels(g: &Group, res: Resource) -> Vec<String> {
    g.files_for(res).into_iter().map(|w| w.label).collect()
}

/// What a v2 group with every controller watches (no memory.peak).
const V2_WATCHED: [(Resource, &[&str]); 6] = [
    (Resource::CpuQuota, &["cpu.max"]),
    (Resource::CpuStat, &["cpu.stat"]),
    (Resource::CpuWeight, &["cpu.weight"]),
    (Resource::Memory, &["memory.max", "memory.swap.max", "memory.current"]),
    (Resource::MemoryEvents, &["memory.events"]),
    (Resource::Pids, &["pids.max", "pids.current", "pids.events"]),
];

/// Write `text` as the group's cpu.stat file `stat`; assert the group reads
/// (nr_periods, nr_throttled, throttled_ns) from it.
fn assert_cpu_stat(g: &Group, stat: &Path, text: &str, want: (u64, u64, u64)) {
    put(stat, text);
    let (nr_periods, nr_throttled, throttled_ns) = want;
    let want = CpuStat {
        nr_periods,
        nr_throttled,
        throttled_ns,
    };
    assert_eq!(g.cpu_stat().unwrap(), want);
}

fn assert_v2_watched(g: &Group) {
    for (res, want) in V2_WATCHED {
        assert_eq!(labels(g, res), want, "{res:?}");
    }
}

const ALL: [Controller; 3] = [Controller::Cpu, Controller::Memory, Controller::Pids];

// ---------------------------------------------------------------- detection

#[test]
fn detect_fake_v1() {
    let t = fake_v1(true);
    let l = detect(t.path()).unwrap();
    assert_eq!(l.version_label(), "v1");
    let Layout::V1 { root, hierarchies } = &l else {
        panic!("{l:?}")
    };
    assert_eq!(root, t.path());
    assert_eq!(hierarchies["cpu"], t.path().join("cpu"));
    assert_eq!(hierarchies["cpuacct"], t.path().join("cpuacct"));
    assert_eq!(hierarchies["memory"], t.path().join("memory"));
    assert_eq!(hierarchies["pids"], t.path().join("pids"));
    assert_eq!(hierarchies["cpuset"], t.path().join("cpuset"));
    assert!(!hierarchies.contains_key("systemd"));
    assert_eq!(l.unified(), None);
}

#[test]
fn detect_fake_v1_comount_with_symlinks() {
    let t = TempDir::new().unwrap();
    let r = t.path();
    v1_cpu_files(&r.join("cpu,cpuacct"));
    put(&r.join("cpu,cpuacct/cpuacct.usage"), "0\n");
    symlink("cpu,cpuacct", r.join("cpu")).unwrap();
    symlink("cpu,cpuacct", r.join("cpuacct")).unwrap();
    v1_memory_files(&r.join("memory"), false);
    let l = detect(r).unwrap();
    let cc = r.join("cpu,cpuacct");
    assert_eq!(l.hierarchy("cpu"), Some(cc.as_path()));
    assert_eq!(l.hierarchy("cpuacct"), Some(cc.as_path()));
    assert_eq!(l.hierarchy_roots(), vec![cc.clone(), r.join("memory")]);

    // The comounted group is one directory, created once.
    let g = create(&l, "co", &[Controller::Cpu]).unwrap();
    assert_eq!(g.paths(), vec![cc.join("workbench/co")]);
    put(&cc.join("workbench/co/cgroup.procs"), "");
    put(&cc.join("workbench/co/cpuacct.usage"), "777\n");
    g.add_process(42).unwrap();
    assert_eq!(get(&cc.join("workbench/co/cgroup.procs")), "42");
    assert_eq!(g.cpu_usage_ns().unwrap(), 777);
}

#[test]
fn detect_fake_v2_and_hybrid_and_nothing() {
    let t = fake_v2("cpu memory pids\n");
    let l = detect(t.path()).unwrap();
    assert_eq!(
        l,
        Layout::V2 {
            root: t.path().to_path_buf()
        }
    );
    assert_eq!(l.version_label(), "v2");

    let t = fake_v1(true);
    unified(t.path(), "hugetlb\n", "\n");
    let l = detect(t.path()).unwrap();
    assert_eq!(l.version_label(), "hybrid");
    assert_eq!(l.unified(), Some(t.path().join("unified").as_path()));
    assert_eq!(l.hierarchy("memory"), Some(t.path().join("memory").as_path()));

    let empty = TempDir::new().unwrap();
    fs::create_dir(empty.path().join("not-a-controller")).unwrap();
    assert!(matches!(detect(empty.path()), Err(Error::NotCgroupRoot { .. })));
    assert!(matches!(detect(&empty.path().join("missing")), Err(Error::Sys { .. })));
}

// ---------------------------------------------------------------- v1 backend

#[test]
fn v1_create_and_every_operation() {
    let t = fake_v1(true);
    let l = detect(t.path()).unwrap();
    let g = create(&l, "demo", &ALL).unwrap();
    let dir = |h: &str| t.path().join(h).join("workbench/demo");
    assert_eq!(g.paths(), vec![dir("cpu"), dir("cpuacct"), dir("memory"), dir("pids")]);
    for p in g.paths() {
        assert!(p.is_dir(), "{p:?}");
    }
    assert_eq!(g.version_of(Controller::Cpu), Some(Version::V1));
    assert!(!t.path().join("cpuset/workbench").exists(), "cpuset untouched");
    populate_v1(&l, "demo", true);

    // Processes go into every hierarchy.
    g.add_process(1234).unwrap();
    for h in ["cpu", "cpuacct", "memory", "pids"] {
        assert_eq!(get(&dir(h).join("cgroup.procs")), "1234", "{h}");
    }
    put(&dir("memory").join("cgroup.procs"), "1234\n1240\n");
    assert_eq!(g.procs().unwrap(), vec![1234, 1240]);
    assert!(g.add_process(0).is_err());

    // CPU bandwidth.
    g.set_cpu_quota(20_000, 100_000).unwrap();
    assert_eq!(get(&dir("cpu").join("cpu.cfs_quota_us")), "20000");
    assert_eq!(get(&dir("cpu").join("cpu.cfs_period_us")), "100000");
    let q = g.cpu_quota().unwrap();
    assert_eq!((q.quota_us, q.period_us), (Some(20_000), 100_000));
    g.clear_cpu_quota().unwrap();
    assert_eq!(get(&dir("cpu").join("cpu.cfs_quota_us")), "-1");
    assert_eq!(g.cpu_quota().unwrap().quota_us, None);
    for (q, p) in [(0, 100_000), (999, 100_000), (20_000, 500), (20_000, 2_000_000)] {
        assert!(matches!(g.set_cpu_quota(q, p), Err(Error::InvalidValue { .. })));
    }
    assert_eq!(get(&dir("cpu").join("cpu.cfs_quota_us")), "-1", "no write on invalid");

    // Usage and throttling.
    put(&dir("cpuacct").join("cpuacct.usage"), "123456789\n");
    assert_eq!(g.cpu_usage_ns().unwrap(), 123_456_789);
    assert_cpu_stat(
        &g,
        &dir("cpu").join("cpu.stat"),
        "nr_periods 10\nnr_throttled 8\nthrottled_time 640000000\nnr_bursts 0\nburst_time 0\n",
        (10, 8, 640_000_000),
    );

    // Weight → shares.
    g.set_cpu_weight(100).unwrap();
    assert_eq!(get(&dir("cpu").join("cpu.shares")), "2597");
    assert_eq!(g.cpu_weight().unwrap(), 100);
    g.set_cpu_weight(10_000).unwrap();
    assert_eq!(get(&dir("cpu").join("cpu.shares")), "262144");
    assert!(g.set_cpu_weight(0).is_err());
    assert!(g.set_cpu_weight(10_001).is_err());

    // Memory: limit plus memsw = limit + swap.
    g.set_memory_limit(32 << 20, Some(0)).unwrap();
    assert_eq!(get(&dir("memory").join("memory.limit_in_bytes")), "33554432");
    assert_eq!(get(&dir("memory").join("memory.memsw.limit_in_bytes")), "33554432");
    g.set_memory_limit(32 << 20, Some(16 << 20)).unwrap();
    assert_eq!(
        get(&dir("memory").join("memory.memsw.limit_in_bytes")),
        (48u64 << 20).to_string()
    );
    g.set_memory_limit(64 << 20, None).unwrap();
    assert_eq!(get(&dir("memory").join("memory.limit_in_bytes")), "67108864");
    assert_eq!(get(&dir("memory").join("memory.memsw.limit_in_bytes")), "-1");
    assert!(g.set_memory_limit(0, None).is_err());
    g.clear_memory_limit().unwrap();
    assert_eq!(get(&dir("memory").join("memory.limit_in_bytes")), "-1");

    put(&dir("memory").join("memory.usage_in_bytes"), "1048576\n");
    put(&dir("memory").join("memory.max_usage_in_bytes"), "33554432\n");
    put(&dir("memory").join("memory.failcnt"), "0\n");
    put(
        &dir("memory").join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    );
    assert_eq!(g.memory_current().unwrap(), 1 << 20);
    assert_eq!(g.memory_peak().unwrap(), Some(32 << 20));
    assert_eq!(g.oom_kill_count().unwrap(), 1);
    assert_eq!(g.failcnt().unwrap(), Some(0));

    // Pids.
    g.set_pids_max(3).unwrap();
    assert_eq!(get(&dir("pids").join("pids.max")), "3");
    assert_eq!(g.pids_max().unwrap(), Some(3));
    g.clear_pids_max().unwrap();
    assert_eq!(g.pids_max().unwrap(), None);
    assert!(g.set_pids_max(5_000_000).is_err());
    put(&dir("pids").join("pids.current"), "2\n");
    put(&dir("pids").join("pids.events"), "max 4\n");
    assert_eq!(g.pids_current().unwrap(), 2);
    assert_eq!(g.pids_max_events().unwrap(), 4);

    // Garbage in a file is a parse error naming the file.
    put(&dir("pids").join("pids.current"), "lots\n");
    let e = g.pids_current().unwrap_err().to_string();
    assert!(e.contains("pids.current"), "{e}");
}

#[test]
fn v1_memory_without_swap_accounting() {
    let t = fake_v1(false);
    let l = detect(t.path()).unwrap();
    let g = create(&l, "nosw", &[Controller::Memory]).unwrap();
    populate_v1(&l, "nosw", false);
    g.set_memory_limit(1 << 20, Some(0)).unwrap();
    let d = t.path().join("memory/workbench/nosw");
    assert_eq!(get(&d.join("memory.limit_in_bytes")), "1048576");
    assert!(!d.join("memory.memsw.limit_in_bytes").exists());
    let labels: Vec<String> = g.files_for(Resource::Memory).into_iter().map(|f| f.label).collect();
    assert!(!labels.contains(&"memory.memsw.limit_in_bytes".to_string()));
    // Operations on controllers the group lacks are typed errors.
    assert!(matches!(
        g.set_cpu_quota(20_000, 100_000),
        Err(Error::NotInGroup { .. })
    ));
    assert!(matches!(g.pids_current(), Err(Error::NotInGroup { .. })));
    assert!(g.files_for(Resource::CpuQuota).is_empty());
}

#[test]
fn v1_watched_files() {
    let t = fake_v1(true);
    let l = detect(t.path()).unwrap();
    let g = create(&l, "w", &ALL).unwrap();
    populate_v1(&l, "w", true);
    g.set_cpu_quota(20_000, 100_000).unwrap();

    let f = g.files_for(Resource::CpuQuota);
    let labels: Vec<&str> = f.iter().map(|w| w.label.as_str()).collect();
    assert_eq!(labels, ["cpu.cfs_quota_us", "cpu.cfs_period_us"]);
    assert_eq!(f[0].path, t.path().join("cpu/workbench/w/cpu.cfs_quota_us"));
    assert!(!f[0].meaning.is_empty());
    let vals = read_watched(&f);
    assert_eq!(vals["cpu.cfs_quota_us"], "20000");
    assert_eq!(vals["cpu.cfs_period_us"], "100000");

    let stat: Vec<String> = g
        .files_for(Resource::CpuStat)
        .into_iter()
        .map(|w| w.path.display().to_string())
        .collect();
    assert!(stat[0].ends_with("cpu/workbench/w/cpu.stat"));
    assert!(stat[1].ends_with("cpuacct/workbench/w/cpuacct.usage"));
    assert_eq!(g.files_for(Resource::CpuWeight)[0].label, "cpu.shares");
    let mem: Vec<String> = g.files_for(Resource::Memory).into_iter().map(|w| w.label).collect();
    assert_eq!(
        mem,
        [
            "memory.limit_in_bytes",
            "memory.memsw.limit_in_bytes",
            "memory.usage_in_bytes",
            "memory.max_usage_in_bytes",
            "memory.failcnt"
        ]
    );
    assert_eq!(g.files_for(Resource::MemoryEvents)[0].label, "memory.oom_control");
    let pids = g.files_for(Resource::Pids);
    assert_eq!(pids.len(), 3);
    assert_eq!(read_watched(&pids)["pids.max"], "max");
    assert_eq!(g.files_for(Resource::Procs).len(), 1);

    // Missing files read as a marker instead of failing the snapshot.
    fs::remove_file(t.path().join("pids/workbench/w/pids.events")).unwrap();
    assert_eq!(read_watched(&pids)["pids.events"], "(missing)");
}

#[test]
fn v2_watched_files_and_optional_ones() {
    let (t, g, d) = v2_group("w2", false);
    let l = detect(t.path()).unwrap();

    // memory.peak (Linux >= 5.19) is optional: absent here, so not listed.
    assert_v2_watched(&g);
    put(&d.join("memory.peak"), "0\n");
    assert_eq!(labels(&g, Resource::Memory).last().unwrap(), "memory.peak");
    fs::remove_file(d.join("memory.swap.max")).unwrap();
    assert!(!labels(&g, Resource::Memory).contains(&"memory.swap.max".to_string()));
    let procs = g.files_for(Resource::Procs);
    assert_eq!(procs.len(), 1);
    assert_eq!(procs[0].path, d.join("cgroup.procs"));
    for res in [Resource::CpuQuota, Resource::Memory, Resource::Pids] {
        for f in g.files_for(res) {
            assert_eq!(f.path.parent().unwrap(), d, "{f:?}");
            assert!(!f.meaning.is_empty(), "{f:?}");
        }
    }

    // A group without the controller shows nothing for it, and its knobs
    // say which controller is missing.
    let p = create(&l, "only-pids", &[Controller::Pids]).unwrap();
    assert!(p.files_for(Resource::CpuQuota).is_empty());
    assert!(p.files_for(Resource::Memory).is_empty());
    assert!(matches!(
        p.set_cpu_quota(20_000, 100_000),
        Err(Error::NotInGroup { .. })
    ));
    assert!(matches!(p.memory_current(), Err(Error::NotInGroup { .. })));
}

// ---------------------------------------------------------------- v2 backend

#[test]
fn v2_create_enables_controllers_in_own_parent_only() {
    let (t, l) = v2_host();
    let r = t.path();
    let g = create(&l, "demo", &ALL).unwrap();
    assert_eq!(g.paths(), vec![r.join("workbench/demo")]);
    assert!(r.join("workbench/demo").is_dir());
    assert_eq!(g.version_of(Controller::Memory), Some(Version::V2));
    assert_eq!(get(&r.join("workbench/cgroup.subtree_control")), "+cpu +memory +pids");
    assert_eq!(
        get(&r.join("cgroup.subtree_control")),
        "cpu memory pids\n",
        "root untouched"
    );

    // Already enabled → no write (the fake file keeps the kernel's format).
    put(&r.join("workbench/cgroup.subtree_control"), "cpu memory pids\n");
    let g2 = create(&l, "second", &[Controller::Cpu]).unwrap();
    assert_eq!(get(&r.join("workbench/cgroup.subtree_control")), "cpu memory pids\n");
    // Only the missing controller is added.
    put(&r.join("workbench/cgroup.subtree_control"), "cpu\n");
    let g3 = create(&l, "third", &[Controller::Cpu, Controller::Pids]).unwrap();
    assert_eq!(get(&r.join("workbench/cgroup.subtree_control")), "+pids");
    drop((g, g2, g3));

    // Names are validated before anything is touched.
    for bad in ["", "..", "a/b", "x y"] {
        assert!(matches!(create(&l, bad, &ALL), Err(Error::InvalidName { .. })));
    }
    // Creating twice is an error and leaves the first one alone.
    let e = create(&l, "demo", &ALL).unwrap_err();
    assert!(matches!(e, Error::Exists { .. }), "{e}");
    assert!(r.join("workbench/demo").is_dir());
}

#[test]
fn v2_root_without_controller_is_a_clear_error() {
    let t = fake_v2("cpu pids\n");
    let r = t.path();
    let l = detect(r).unwrap();
    let e = create(&l, "demo", &ALL).unwrap_err();
    match &e {
        Error::NotEnabledAtRoot { controller, path } => {
            assert_eq!(controller, "memory");
            assert_eq!(path, &r.join("cgroup.subtree_control"));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("memory"), "{e}");
    assert_eq!(get(&r.join("cgroup.subtree_control")), "cpu pids\n");
    assert!(!r.join("workbench").exists(), "nothing created");

    // Not even available at the root.
    put(&r.join("cgroup.controllers"), "cpu io\n");
    assert!(matches!(
        create(&l, "demo", &[Controller::Pids]),
        Err(Error::ControllerUnavailable { .. })
    ));
}

#[test]
fn v2_every_operation() {
    let (_t, g, d) = v2_group("ops", true);

    g.add_process(4321).unwrap();
    assert_eq!(get(&d.join("cgroup.procs")), "4321");
    put(&d.join("cgroup.procs"), "4321\n4330\n");
    assert_eq!(g.procs().unwrap(), vec![4321, 4330]);

    g.set_cpu_quota(20_000, 100_000).unwrap();
    assert_eq!(get(&d.join("cpu.max")), "20000 100000");
    put(&d.join("cpu.max"), "20000 100000\n");
    assert_eq!(g.cpu_quota().unwrap().cpus(), Some(0.2));
    g.clear_cpu_quota().unwrap();
    assert_eq!(get(&d.join("cpu.max")), "max");
    put(&d.join("cpu.max"), "max 100000\n");
    assert_eq!(g.cpu_quota().unwrap().quota_us, None);

    assert_cpu_stat(
        &g,
        &d.join("cpu.stat"),
        "usage_usec 200123\nuser_usec 200000\nsystem_usec 123\nnr_periods 11\nnr_throttled 9\nthrottled_usec 720000\nnr_bursts 0\nburst_usec 0\n",
        (11, 9, 720_000_000),
    );
    assert_eq!(g.cpu_usage_ns().unwrap(), 200_123_000);

    g.set_cpu_weight(250).unwrap();
    assert_eq!(get(&d.join("cpu.weight")), "250");
    assert_eq!(g.cpu_weight().unwrap(), 250);

    g.set_memory_limit(32 << 20, Some(0)).unwrap();
    assert_eq!(get(&d.join("memory.max")), "33554432");
    assert_eq!(get(&d.join("memory.swap.max")), "0");
    g.set_memory_limit(64 << 20, None).unwrap();
    assert_eq!(get(&d.join("memory.max")), "67108864");
    assert_eq!(get(&d.join("memory.swap.max")), "max");
    g.set_memory_limit(64 << 20, Some(1 << 20)).unwrap();
    assert_eq!(get(&d.join("memory.swap.max")), "1048576");
    g.clear_memory_limit().unwrap();
    assert_eq!(get(&d.join("memory.max")), "max");
    assert_eq!(get(&d.join("memory.swap.max")), "max");

    put(&d.join("memory.current"), "4096\n");
    put(&d.join("memory.peak"), "33554432\n");
    put(
        &d.join("memory.events"),
        "low 0\nhigh 0\nmax 57\noom 1\noom_kill 1\noom_group_kill 0\n",
    );
    assert_eq!(g.memory_current().unwrap(), 4096);
    assert_eq!(g.memory_peak().unwrap(), Some(32 << 20));
    assert_eq!(g.oom_kill_count().unwrap(), 1);
    assert_eq!(g.failcnt().unwrap(), Some(57));
    fs::remove_file(d.join("memory.peak")).unwrap();
    assert_eq!(g.memory_peak().unwrap(), None, "pre-5.19 kernel");

    g.set_pids_max(3).unwrap();
    assert_eq!(get(&d.join("pids.max")), "3");
    g.clear_pids_max().unwrap();
    assert_eq!(get(&d.join("pids.max")), "max");
    put(&d.join("pids.current"), "3\n");
    put(&d.join("pids.events"), "max 2\n");
    assert_eq!(g.pids_current().unwrap(), 3);
    assert_eq!(g.pids_max_events().unwrap(), 2);

    // cpu.stat without the cpu controller has no throttling keys.
    put(&d.join("cpu.stat"), "usage_usec 5\nuser_usec 5\nsystem_usec 0\n");
    assert_eq!(g.cpu_usage_ns().unwrap(), 5000);
    assert!(matches!(g.cpu_stat(), Err(Error::Parse { .. })));

    // Watched files.
    assert_v2_watched(&g);
    let vals = read_watched(&g.files_for(Resource::Memory));
    assert_eq!(vals["memory.max"], "max");
    assert_eq!(vals["memory.current"], "4096");
}

// ---------------------------------------------------------------- hybrid

#[test]
fn hybrid_uses_v1_hierarchies_and_leaves_unified_alone() {
    let t = fake_v1(true);
    let r = t.path();
    unified(r, "hugetlb\n", "\n");
    let l = detect(r).unwrap();
    let g = create(&l, "hy", &ALL).unwrap();
    assert!(g.paths().iter().all(|p| !p.starts_with(r.join("unified"))));
    assert!(!r.join("unified/workbench").exists());
    assert_eq!(g.version_of(Controller::Pids), Some(Version::V1));
}

#[test]
fn hybrid_routes_v2_only_controller_to_unified() {
    let t = v1_tree(true);
    let r = t.path();
    // pids only exists on the unified hierarchy, enabled at its root.
    unified(r, "pids\n", "pids\n");
    v2_parent(&r.join("unified"), "pids\n");
    let l = detect(r).unwrap();
    assert_eq!(l.version_label(), "hybrid");
    let g = create(&l, "mix", &ALL).unwrap();
    assert_eq!(g.version_of(Controller::Cpu), Some(Version::V1));
    assert_eq!(g.version_of(Controller::Pids), Some(Version::V2));
    let u = r.join("unified/workbench/mix");
    assert!(g.paths().contains(&u));
    assert_eq!(get(&r.join("unified/workbench/cgroup.subtree_control")), "+pids");
    assert_eq!(get(&r.join("unified/cgroup.subtree_control")), "pids\n");
    pids_files(&u);
    g.set_pids_max(7).unwrap();
    assert_eq!(get(&u.join("pids.max")), "7");
    put(&r.join("memory/workbench/mix/cgroup.procs"), "");
    put(&r.join("cpu/workbench/mix/cgroup.procs"), "");
    put(&r.join("cpuacct/workbench/mix/cgroup.procs"), "");
    g.add_process(99).unwrap();
    assert_eq!(get(&u.join("cgroup.procs")), "99");
    assert_eq!(get(&r.join("memory/workbench/mix/cgroup.procs")), "99");

    // Available on unified but not enabled at its root → clear error.
    put(&r.join("unified/cgroup.subtree_control"), "\n");
    let e = create(&l, "mix2", &[Controller::Pids]).unwrap_err();
    assert!(matches!(e, Error::NotEnabledAtRoot { .. }), "{e}");
}

// ---------------------------------------------------------------- lifecycle

#[test]
fn remove_list_open_and_cleanup_paths() {
    let t = fake_v1(true);
    let r = t.path();
    let l = detect(r).unwrap();
    let a = create(&l, "a", &ALL).unwrap();
    let _b = create(&l, "b", &[Controller::Memory]).unwrap();
    let owned = list_owned(&l);
    assert!(owned.contains(&r.join("cpu/workbench/a")));
    assert!(owned.contains(&r.join("memory/workbench/b")));
    assert_eq!(owned.len(), 5);

    let a2 = open(&l, "a", &ALL).unwrap();
    assert_eq!(a2.paths(), a.paths());
    assert!(open(&l, "zzz", &ALL).is_err());

    // Empty (kernel-less) group dirs can be rmdir'ed.
    a.remove().unwrap();
    for p in a.paths() {
        assert!(!p.exists(), "{p:?}");
    }
    assert!(!r.join("cpu/workbench").exists(), "empty parent removed");
    assert!(r.join("memory/workbench/b").exists(), "other group kept");
    a.remove().unwrap(); // already gone is fine
    assert_eq!(list_owned(&l), vec![r.join("memory/workbench/b")]);

    // Cleanup by path: refuses anything outside a workbench parent.
    for bad in [
        r.join("memory"),
        r.join("memory/workbench"),
        r.join("memory/process_api/x"),
        r.join("memory/workbench/../process_api"),
        PathBuf::from("/tmp/workbench/x"),
    ] {
        assert!(
            matches!(remove_by_path_in(r, &bad), Err(Error::Refused { .. })),
            "{bad:?}"
        );
    }
    fs::create_dir_all(r.join("memory/workbench/b/nested")).unwrap();
    remove_by_path_in(r, &r.join("memory/workbench/b")).unwrap();
    assert!(!r.join("memory/workbench").exists());
    assert!(list_owned(&l).is_empty());
    assert!(matches!(
        remove_by_path(&r.join("memory/workbench/b")),
        Err(Error::Refused { .. })
    ));

    // A RemoveOnDrop guard removes on scope exit, even on panic.
    let res = std::panic::catch_unwind(|| {
        let _g = create(&l, "guarded", &[Controller::Pids]).unwrap().remove_on_drop();
        assert!(r.join("pids/workbench/guarded").is_dir());
        panic!("test failure inside the guard's scope");
    });
    assert!(res.is_err());
    assert!(!r.join("pids/workbench/guarded").exists());
}

#[test]
fn v1_needs_a_controller_and_reports_missing_ones() {
    let t = TempDir::new().unwrap();
    v1_memory_files(&t.path().join("memory"), true);
    let l = detect(t.path()).unwrap();
    assert!(matches!(create(&l, "x", &[]), Err(Error::InvalidValue { .. })));
    let e = create(&l, "x", &[Controller::Memory, Controller::Cpu]).unwrap_err();
    assert!(matches!(e, Error::ControllerUnavailable { .. }), "{e}");
    assert!(
        !t.path().join("memory/workbench").exists(),
        "nothing created on failure"
    );
}

// ---------------------------------------------------------------- summary

#[test]
fn summaries() {
    let t = fake_v1(true);
    unified(t.path(), "hugetlb\n", "\n");
    let s = detect(t.path()).unwrap().summary();
    assert_eq!(s.version, "hybrid");
    assert_eq!(s.cpu_bandwidth, Some(true));
    assert_eq!(s.swap_accounting, Some(true));
    assert_eq!(s.workbench["cpu"], Ok("v1"));
    assert_eq!(s.workbench["pids"], Ok("v1"));
    let huge = s.controllers.iter().find(|c| c.name == "hugetlb").unwrap();
    assert_eq!((huge.version, huge.enabled_at_root), ("v2", false));

    let t = fake_v1(false);
    fs::remove_file(t.path().join("cpu/cpu.cfs_quota_us")).unwrap();
    let s = detect(t.path()).unwrap().summary();
    assert_eq!(s.version, "v1");
    assert_eq!(s.cpu_bandwidth, Some(false));
    assert_eq!(s.swap_accounting, Some(false));

    let t = fake_v2("cpu pids\n");
    let s = detect(t.path()).unwrap().summary();
    assert_eq!(s.version, "v2");
    assert_eq!(s.cpu_bandwidth, Some(true), "root cpu.stat has nr_throttled");
    assert!(s.workbench["memory"].as_ref().unwrap_err().contains("not enabled"));
    assert_eq!(s.workbench["cpu"], Ok("v2"));
    // memory is not delegated at the root, but the host does have swap accounting.
    assert_eq!(s.swap_accounting, Some(true));

    let t = fake_v2("cpu memory pids\n");
    fs::remove_dir_all(t.path().join("system.slice")).unwrap();
    let s = detect(t.path()).unwrap().summary();
    assert_eq!(s.swap_accounting, None, "no child with memory files to look at");

    let t = fake_v2("cpu memory pids\n");
    let s = detect(t.path()).unwrap().summary();
    assert_eq!(s.swap_accounting, Some(true), "system.slice has memory.swap.max");
    let mem = s.controllers.iter().find(|c| c.name == "memory").unwrap();
    assert!(mem.enabled_at_root);
}

// ---------------------------------------------------------------- planning

/// `planned_paths` names exactly the directories `create` then makes, and
/// touches nothing (so they can be recorded for cleanup before they exist).
#[test]
fn planned_paths_match_create_and_touch_nothing() {
    // v1: one directory per hierarchy, cpuacct joined for cpu.
    let t = fake_v1(true);
    let l = detect(t.path()).unwrap();
    let planned = planned_paths(&l, "plan", &[Controller::Cpu, Controller::Memory]).unwrap();
    let dir = |h: &str| t.path().join(h).join("workbench/plan");
    assert_eq!(planned, vec![dir("cpu"), dir("cpuacct"), dir("memory")]);
    assert!(!t.path().join("cpu/workbench").exists(), "planning created a directory");
    let g = create(&l, "plan", &[Controller::Cpu, Controller::Memory]).unwrap();
    assert_eq!(g.paths(), planned);

    // v2: one directory; neither the parent nor its subtree_control is written.
    let (t, l) = v2_host();
    let r = t.path();
    let planned = planned_paths(&l, "plan", &[Controller::Pids]).unwrap();
    assert_eq!(planned, vec![r.join("workbench/plan")]);
    assert_eq!(get(&r.join("workbench/cgroup.subtree_control")), "\n");
    assert!(!r.join("workbench/plan").exists());
    let g = create(&l, "plan", &[Controller::Pids]).unwrap();
    assert_eq!(g.paths(), planned);

    // The same validation as create: bad names and unusable controllers.
    assert!(matches!(
        planned_paths(&l, "a/b", &[Controller::Pids]),
        Err(Error::InvalidName { .. })
    ));
    put(&r.join("cgroup.subtree_control"), "cpu\n");
    assert!(matches!(
        planned_paths(&l, "x", &[Controller::Memory]),
        Err(Error::NotEnabledAtRoot { .. })
    ));
}
