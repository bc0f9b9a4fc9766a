//! Root tests against the host's real cgroup hierarchy.
//!
//! They work on whichever layout the host has (the development VM is hybrid
//! with v1 controllers; a pure v2 VM exercises the v2 backend), create groups
//! only as `workbench/wbtest-<random>`, run only children they spawn, and
//! remove everything through Drop guards even when an assertion fails.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use wb_cgroup::*;

/// Returns the layout, or None (with the reason printed) when the test must skip.
fn setup(needs: &[Controller]) -> Option<Layout> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: needs root (geteuid() != 0)");
        return None;
    }
    let layout = match detect_system() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("SKIP: no cgroup hierarchy: {e}");
            return None;
        }
    };
    let summary = layout.summary();
    for c in needs {
        if let Err(why) = &summary.workbench[c.name()] {
            eprintln!("SKIP: controller {c} unusable here: {why}");
            return None;
        }
    }
    Some(layout)
}

/// When `setup(controllers)`: the layout, and a new group `unique(prefix)`
/// with those controllers (removed when dropped) and its name.
fn new_group(prefix: &str, controllers: &[Controller]) -> Option<(Layout, String, RemoveOnDrop)> {
    let layout = setup(controllers)?;
    let name = unique(prefix);
    let g = create(&layout, &name, controllers).unwrap().remove_on_drop();
    Some((layout, name, g))
}

fn unique(prefix: &str) -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("wbtest-{prefix}-{:08x}", h.finish() as u32)
}

/// A child we spawned; killed and reaped on drop, whatever happens.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    /// `sh -c script` with piped stdin; the script should start with
    /// `read _` so it only proceeds after we moved it into the group.
    fn spawn_waiting(script: &str) -> Self {
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn /bin/sh");
        ChildGuard(Some(child))
    }

    /// `spawn_waiting`, moved into `g`.
    fn spawn_in(g: &Group, script: &str) -> Self {
        let child = Self::spawn_waiting(script);
        g.add_process(child.pid()).unwrap();
        child
    }

    fn pid(&self) -> i32 {
        self.0.as_ref().unwrap().id() as i32
    }

    fn release(&mut self) {
        let stdin = self.0.as_mut().unwrap().stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Wait up to `timeout` for exit; returns status and stderr.
    fn wait_for(&mut self, timeout: Duration) -> Option<(ExitStatus, String)> {
        let child = self.0.as_mut().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Some((st, err));
            }
            if Instant::now() > deadline {
                return None;
            }
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn lifecycle_membership_and_remove() {
    let Some((layout, name, g)) = new_group("life", &[Controller::Cpu, Controller::Memory, Controller::Pids]) else {
        return;
    };
    let paths = g.paths();
    for p in &paths {
        assert!(p.is_dir(), "{p:?}");
        assert!(is_workbench_path(layout.root(), p), "{p:?}");
        assert!(list_owned(&layout).contains(p), "{p:?}");
    }
    if let Some(cpu) = layout.hierarchy("cpu") {
        assert!(paths.contains(&cpu.join("workbench").join(&name)));
        let acct = layout.hierarchy("cpuacct").unwrap();
        assert!(paths.contains(&acct.join("workbench").join(&name)));
    }

    let mut child = ChildGuard::spawn_in(&g, "read _; exec sleep 30");
    assert_eq!(g.procs().unwrap(), vec![child.pid()]);
    // The kernel agrees: /proc/PID/cgroup shows the group in each hierarchy.
    let member = read_proc_cgroup(child.pid()).unwrap();
    let want = format!("/workbench/{name}");
    let mut seen = 0;
    let in_unified = layout.unified().is_some_and(|u| paths.iter().any(|p| p.starts_with(u)));
    for m in &member {
        let relevant = if m.is_unified() {
            in_unified
        } else {
            m.controllers
                .iter()
                .any(|c| ["cpu", "cpuacct", "memory", "pids"].contains(&c.as_str()))
        };
        if relevant {
            assert_eq!(m.path, want, "{m:?}");
            seen += 1;
        }
    }
    assert!(seen >= 1, "{member:?}");
    assert!(g.pids_current().unwrap() >= 1);

    // remove() kills the member and deletes every directory.
    g.remove().unwrap();
    let (st, _) = child.wait_for(Duration::from_secs(5)).expect("child killed");
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    for p in &paths {
        assert!(!p.exists(), "{p:?} left behind");
        assert!(!list_owned(&layout).contains(p));
    }
    g.remove().unwrap(); // idempotent
}

#[test]
fn cpu_quota_throttles_a_busy_loop() {
    let Some((_, _, g)) = new_group("cpu", &[Controller::Cpu]) else {
        return;
    };
    g.set_cpu_quota(20_000, 100_000).unwrap();
    let q = g.cpu_quota().unwrap();
    assert_eq!((q.quota_us, q.period_us), (Some(20_000), 100_000));
    let shown = read_watched(&g.files_for(Resource::CpuQuota));
    assert!(
        shown.values().any(|v| v.contains("20000")),
        "watched files show the quota: {shown:?}"
    );

    // Bounded: the loop runs under `timeout 20` even if everything else fails.
    let mut child = ChildGuard::spawn_in(&g, "read _; exec timeout 20 sh -c 'while :; do :; done'");
    child.release();
    sleep(Duration::from_millis(300)); // let it start and hit the quota
    let (u0, t0) = (g.cpu_usage_ns().unwrap(), Instant::now());
    let s0 = g.cpu_stat().unwrap();
    sleep(Duration::from_millis(1200));
    let (u1, t1) = (g.cpu_usage_ns().unwrap(), Instant::now());
    let s1 = g.cpu_stat().unwrap();
    let rate = (u1 - u0) as f64 / (t1 - t0).as_nanos() as f64;
    eprintln!("cpu rate {rate:.3}, stat {s0:?} -> {s1:?}");
    assert!(s1.nr_throttled > s0.nr_throttled, "{s0:?} -> {s1:?}");
    assert!(s1.throttled_ns > s0.throttled_ns);
    assert!(s1.nr_periods > s0.nr_periods);
    assert!(
        (0.10..=0.30).contains(&rate),
        "usage rate {rate:.3} should be near 0.20"
    );

    // Lifting the quota lets it run at a full CPU.
    g.clear_cpu_quota().unwrap();
    assert_eq!(g.cpu_quota().unwrap().quota_us, None);
    let (u0, t0) = (g.cpu_usage_ns().unwrap(), Instant::now());
    sleep(Duration::from_millis(600));
    let rate = (g.cpu_usage_ns().unwrap() - u0) as f64 / t0.elapsed().as_nanos() as f64;
    eprintln!("cpu rate without quota {rate:.3}");
    assert!(rate > 0.5, "unthrottled rate {rate:.3}");
    drop(child);
}

#[test]
fn cpu_weight_roundtrip_on_kernel() {
    let Some((_, _, g)) = new_group("weight", &[Controller::Cpu]) else {
        return;
    };
    for w in [1, 100, 250, 10_000] {
        g.set_cpu_weight(w).unwrap();
        assert_eq!(g.cpu_weight().unwrap(), w);
    }
    g.set_cpu_weight(100).unwrap();
    let shown = read_watched(&g.files_for(Resource::CpuWeight));
    let expected = match g.version_of(Controller::Cpu).unwrap() {
        Version::V1 => "2597",
        Version::V2 => "100",
    };
    assert_eq!(shown.values().next().unwrap(), expected, "{shown:?}");
    assert!(matches!(g.set_cpu_weight(0), Err(Error::InvalidValue { .. })));
}

#[test]
fn memory_limit_oom_kills_a_hog() {
    let Some((_, _, g)) = new_group("mem", &[Controller::Memory]) else {
        return;
    };
    // Raising and lowering exercises the memsw ordering rule on v1.
    g.set_memory_limit(32 << 20, Some(0)).unwrap();
    g.set_memory_limit(64 << 20, Some(0)).unwrap();
    g.set_memory_limit(32 << 20, Some(0)).unwrap();
    let shown = read_watched(&g.files_for(Resource::Memory));
    eprintln!("{shown:?}");
    let limit_label = if g.version_of(Controller::Memory) == Some(Version::V1) {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    };
    assert_eq!(shown[limit_label], "33554432");
    if let Some(sw) = shown.get("memory.memsw.limit_in_bytes") {
        assert_eq!(sw, "33554432");
    }
    if let Some(sw) = shown.get("memory.swap.max") {
        assert_eq!(sw, "0");
    }
    let before = g.oom_kill_count().unwrap();

    // Doubles a shell string; 28 doublings would be 256 MiB, far above the
    // limit, and the bound keeps a broken limit from eating the host.
    let mut child =
        ChildGuard::spawn_waiting("read _; x=a; i=0; while [ $i -lt 28 ]; do x=$x$x; i=$((i+1)); done; exit 3");
    g.add_process(child.pid()).unwrap();
    child.release();
    let (st, _) = child
        .wait_for(Duration::from_secs(20))
        .expect("memory hog should have been OOM-killed");
    assert_eq!(st.signal(), Some(libc::SIGKILL), "status {st:?}");
    let after = g.oom_kill_count().unwrap();
    assert!(after > before, "oom_kill {before} -> {after}");
    let peak = g.memory_peak().unwrap();
    if let Some(p) = peak {
        assert!(p <= 32 << 20, "peak {p} above the limit");
        assert!(p > 16 << 20, "peak {p}: the hog never got close");
    }
    eprintln!(
        "oom_kill {before}->{after}, peak {peak:?}, failcnt {:?}, events {:?}",
        g.failcnt().unwrap(),
        read_watched(&g.files_for(Resource::MemoryEvents))
    );
    assert!(g.memory_current().unwrap() < 32 << 20);
}

#[test]
fn pids_max_refuses_forks() {
    let Some((_, _, g)) = new_group("pids", &[Controller::Pids]) else {
        return;
    };
    g.set_pids_max(3).unwrap();
    assert_eq!(g.pids_max().unwrap(), Some(3));
    assert_eq!(g.pids_max_events().unwrap(), 0);

    // sh + 2 sleeps fit; the third fork must fail.
    let mut child = ChildGuard::spawn_in(
        &g,
        // The sleeps must not hold our stderr pipe open, or reading it would wait for them.
        "read _; for i in 1 2 3 4; do sleep 30 2>/dev/null & done; wait; exit 0",
    );
    child.release();
    let (st, stderr) = child
        .wait_for(Duration::from_secs(10))
        .expect("shell should give up when fork fails");
    eprintln!("status {st:?}, stderr {stderr:?}");
    assert!(!st.success(), "fork should have failed: {st:?}");
    assert!(stderr.to_lowercase().contains("fork"), "{stderr:?}");
    assert!(g.pids_max_events().unwrap() >= 1);
    let current = g.pids_current().unwrap();
    assert!((1..=3).contains(&current), "pids.current {current}");
    let left = g.procs().unwrap();
    assert_eq!(left.len() as u64, current, "orphaned sleeps still in the group");

    // kill_all empties the group (the sleeps are orphans, not our children).
    g.kill_all().unwrap();
    assert!(g.procs().unwrap().is_empty());
    for pid in left {
        assert!(!running(pid), "pid {pid} survived");
    }
}

/// True if `pid` exists and is not a zombie (orphans are reaped by init,
/// which may take a moment after they die).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next());
            !matches!(state, Some(Some('Z' | 'X')))
        }
        Err(_) => false,
    }
}

#[test]
fn cleanup_by_path_removes_only_workbench_groups() {
    let Some((layout, _, g)) = new_group("cleanup", &[Controller::Memory]) else {
        return;
    };
    let dir = g.paths().remove(0);
    let mut child = ChildGuard::spawn_in(&g, "read _; exec sleep 30");

    // Someone else's group and hierarchy roots are refused and stay intact.
    let mem_root = layout
        .hierarchy("memory")
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| layout.root().to_path_buf());
    for other in [
        mem_root.clone(),
        mem_root.join("workbench"),
        mem_root.join("process_api"),
    ] {
        let existed = other.exists();
        assert!(
            matches!(remove_by_path(&other), Err(Error::Refused { .. })),
            "{other:?}"
        );
        assert_eq!(other.exists(), existed);
    }

    remove_by_path(&dir).unwrap();
    assert!(!dir.exists());
    let (st, _) = child.wait_for(Duration::from_secs(5)).expect("member killed");
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    remove_by_path(&dir).unwrap(); // already gone
}

#[test]
fn detect_system_matches_mountinfo() {
    let Some(layout) = setup(&[]) else {
        return;
    };
    let s = layout.summary();
    eprintln!("{s:#?}");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let has_v1 = mountinfo.lines().any(|l| l.contains(" - cgroup cgroup "));
    let has_v2 = mountinfo.lines().any(|l| l.contains(" - cgroup2 "));
    let expected = match (has_v1, has_v2) {
        (true, true) => "hybrid",
        (true, false) => "v1",
        (false, true) => "v2",
        (false, false) => panic!("no cgroup mounts at all"),
    };
    assert_eq!(layout.version_label(), expected);
    assert_eq!(s.version, expected);
    if expected != "v2" {
        assert!(!s.controllers.is_empty());
        assert!(s.controllers.iter().any(|c| c.name == "memory" && c.version == "v1"));
    }
}
