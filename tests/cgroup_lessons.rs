//! Root integration tests of the cgroup lessons: run each as a learner would
//! (`--json`), assert the kernel effects it observed (throttling, measured CPU
//! use near the quota, the weighted split, the OOM kill, refused forks), that
//! its hogs are gone and that the host is unchanged. Bad options must fail
//! before anything is created, with one line and exit status 2.
//!
//! They run on whatever cgroup layout the host has: this VM is hybrid (v1
//! controllers), scripts/v2-vm runs them on a pure cgroup v2 kernel.

mod common;

use common::{gone, row, run_json, step};
use serde_json::Value;

/// (before, after) of a fact; "" when absent on that side.
fn fact<'a>(st: &'a Value, key: &str) -> (&'a str, &'a str) {
    let r = row(st, "facts", key);
    (r["before"].as_str().unwrap_or(""), r["after"].as_str().unwrap_or(""))
}

/// The leading number of "49.8%", "2.01 : 1", "max 3"'s last word...
fn num(s: &str) -> f64 {
    let t = s.trim().trim_start_matches("max ").trim();
    let end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    t[..end].parse().unwrap_or_else(|_| panic!("no number in {s:?}"))
}

fn has_fact(st: &Value, key: &str) -> bool {
    common::rows(st, "facts").iter().any(|r| r["key"] == key)
}

fn failed_checks(steps: &[Value]) -> String {
    steps
        .iter()
        .flat_map(|s| {
            s["checks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |c| (s["id"].clone(), c))
        })
        .filter(|(_, c)| c["pass"] != true)
        .map(|(id, c)| format!("{id}: {} expected {} got {}", c["name"], c["expected"], c["actual"]))
        .chain(
            steps
                .iter()
                .filter_map(|s| s["error"].as_str().map(|e| format!("{}: error {e}", s["id"]))),
        )
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rows of a section that changed.
fn changed<'a>(st: &'a Value, section: &str) -> Vec<&'a Value> {
    common::rows(st, section)
        .into_iter()
        .filter(|r| r["change"] != "same")
        .collect()
}

fn pid_in(s: &str) -> i32 {
    s.split_whitespace()
        .skip_while(|w| *w != "pid")
        .nth(1)
        .and_then(|p| p.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no pid in {s:?}"))
}

/// The output of the transcript line whose command starts with `command`.
fn said(st: &Value, command: &str) -> Option<String> {
    common::transcript(st)
        .into_iter()
        .find(|(_, c, _)| c.starts_with(command))
        .map(|(_, _, o)| o)
}

/// The quota and period the measure step measured with: "(quota 50000/100000 = 50.0%; …".
fn measured_quota(m: &Value) -> (f64, f64) {
    let line = said(m, "# CPU use").expect("the CPU use line");
    let q = line
        .split("(quota ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .expect("quota in the CPU use line");
    let (a, b) = q.split_once('/').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

/// A run the busy host left inconclusive (exit 3): no check failed, every
/// check that did not pass is marked inconclusive and says the host was
/// busy. Returns whether it was one (and then the effect cannot be asserted).
fn inconclusive_on_a_busy_host(code: i32, steps: &[Value], summary: &Value) -> bool {
    if code != 3 {
        return false;
    }
    assert_eq!(summary["verdict"], "inconclusive", "{summary}");
    assert_eq!(summary["pass"], false, "{summary}");
    for st in steps {
        for c in st["checks"].as_array().unwrap() {
            if c["pass"] != true {
                assert_eq!(c["inconclusive"], true, "a failed check in an inconclusive run: {c}");
                assert!(c["actual"].as_str().unwrap().contains("the host is busy"), "{c}");
            }
        }
    }
    eprintln!("inconclusive: the host was busy ({})", failed_checks(steps));
    true
}

#[test]
fn cpu_quota_throttles_the_hog_to_its_quota() {
    let host = root_host!();
    let (code, steps, summary) = run_json("cgroup-cpu-quota", &[]);
    if inconclusive_on_a_busy_host(code, &steps, &summary) {
        host.assert_unchanged("cgroup-cpu-quota");
        return;
    }
    assert_eq!(code, 0, "summary: {summary}\n{}", failed_checks(&steps));
    assert_eq!(summary["verdict"], "pass");

    let start = step(&steps, "start-hog");
    let hog = pid_in(fact(start, "hog process").1);
    assert_eq!(fact(start, "threads (/proc/PID/status)").1, "2");

    // The hog moved: its cpu line in /proc/PID/cgroup now names the group.
    // (v1: the cpu and cpuacct lines, v2: the unified line.)
    let moved = changed(step(&steps, "join"), "cgroups");
    assert!(!moved.is_empty(), "the hog's /proc/PID/cgroup did not change");
    for m in moved {
        let group = m["after"].as_str().unwrap();
        assert!(group.starts_with("/workbench/wb-") && group.ends_with("-cpu"), "{m}");
    }

    // The kernel throttled it, and the group got about its quota (50%).
    let m = step(&steps, "measure");
    let (t0, t1) = fact(m, "cpu.stat nr_throttled");
    assert!(num(t1) > num(t0), "nr_throttled {t0} -> {t1}");
    let (p0, p1) = fact(m, "cpu.stat nr_periods");
    assert!(num(p1) > num(p0), "nr_periods {p0} -> {p1}");
    let throttled = if has_fact(m, "cpu.stat throttled_time") {
        "cpu.stat throttled_time"
    } else {
        "cpu.stat throttled_usec"
    };
    let (a, b) = fact(m, throttled);
    assert!(num(b) > num(a), "{throttled} {a} -> {b}");
    // 50000/100000, unless the host was busy: then the lesson said why it took a smaller one.
    let (quota, period) = measured_quota(m);
    let note = said(start, "# what the host leaves this run").or(said(m, "echo "));
    match note {
        None => assert_eq!((quota, period), (50000.0, 100000.0)),
        Some(note) => {
            assert!((10000.0..50000.0).contains(&quota), "{quota}");
            assert!(note.contains("the host is busy"), "{note}");
        }
    }
    let used = num(fact(m, "CPU use of the hog (100% = one CPU)").1);
    let want = quota * 100.0 / period;
    assert!(
        (used - want).abs() <= 5.0,
        "measured {used}% with quota {quota}/{period}"
    );

    assert!(gone(hog), "the hog {hog} outlived the lesson");
    host.assert_unchanged("cgroup-cpu-quota");
}

#[test]
fn cpu_quota_takes_quota_and_period_options() {
    let host = root_host!();
    let (code, steps, summary) = run_json("cpu-quota", &["--quota", "20000", "--period", "50000"]);
    let busy = inconclusive_on_a_busy_host(code, &steps, &summary);
    assert!(busy || code == 0, "summary: {summary}\n{}", failed_checks(&steps));
    let set = step(&steps, "set-quota");
    if has_fact(set, "cpu.max") {
        assert_eq!(fact(set, "cpu.max"), ("max 100000", "20000 50000"));
    } else {
        assert_eq!(fact(set, "cpu.cfs_quota_us"), ("-1", "20000"));
        assert_eq!(fact(set, "cpu.cfs_period_us"), ("100000", "50000"));
    }
    // The learner's own quota is never changed, busy host or not.
    assert_eq!(measured_quota(step(&steps, "measure")), (20000.0, 50000.0));
    let used = num(fact(step(&steps, "measure"), "CPU use of the hog (100% = one CPU)").1);
    assert!(
        busy || (used - 40.0).abs() <= 5.0,
        "measured {used}% with quota 20000/50000"
    );
    host.assert_unchanged("cgroup-cpu-quota --quota 20000 --period 50000");
}

fn shares_run(extra: &[&str], a: f64, b: f64) {
    let before = workbench::host::snapshot::capture();
    let (code, steps, summary) = run_json("cpu-shares", extra);
    let busy = inconclusive_on_a_busy_host(code, &steps, &summary);
    assert!(busy || code == 0, "summary: {summary}\n{}", failed_checks(&steps));
    let start = step(&steps, "start-hogs");
    let pins = (
        fact(start, "hog A: Cpus_allowed_list").1,
        fact(start, "hog B: Cpus_allowed_list").1,
    );
    assert_eq!(pins.0, pins.1, "hogs pinned to different CPUs");
    assert!(pins.0.parse::<usize>().is_ok(), "pinned to one CPU, not {:?}", pins.0);
    let hogs = [pid_in(fact(start, "hog A").1), pid_in(fact(start, "hog B").1)];
    let m = step(&steps, "measure");
    let (ua, ub) = (num(fact(m, "hog A: CPU use").1), num(fact(m, "hog B: CPU use").1));
    assert!(ua + ub <= 105.0, "pinned hogs used {ua}% + {ub}% of one CPU");
    let share = ua * 100.0 / (ua + ub);
    let want = a * 100.0 / (a + b);
    assert!(
        busy || (share - want).abs() <= 5.0,
        "A got {share:.1}% of the CPU, weights {a}:{b} say {want:.1}%"
    );
    for h in hogs {
        assert!(gone(h), "hog {h} outlived the lesson");
    }
    common::assert_host_unchanged(&before, "cpu-shares");
}

#[test]
fn cpu_shares_split_follows_the_weights() {
    require_root!();
    let _g = common::serial();
    shares_run(&[], 2.0, 1.0);
    shares_run(&["--weights", "1:3"], 1.0, 3.0);
}

#[test]
fn memory_oom_kills_only_the_hog_with_sigkill() {
    let host = root_host!();
    let (code, steps, summary) = run_json("memory-oom", &["--memory", "32M"]);
    assert_eq!(code, 0, "summary: {summary}\n{}", failed_checks(&steps));
    let limit = step(&steps, "set-limit");
    let v1 = has_fact(limit, "memory.limit_in_bytes");
    let limit_key = if v1 { "memory.limit_in_bytes" } else { "memory.max" };
    assert_eq!(fact(limit, limit_key).1, (32u64 << 20).to_string());
    if has_fact(limit, "memory.memsw.limit_in_bytes") {
        assert_eq!(fact(limit, "memory.memsw.limit_in_bytes").1, (32u64 << 20).to_string());
    }
    if has_fact(limit, "memory.swap.max") {
        assert_eq!(fact(limit, "memory.swap.max").1, "0");
    }

    let oom = step(&steps, "oom");
    let hog = pid_in(fact(oom, "hog").0);
    assert!(
        fact(oom, "hog").1.starts_with("killed by SIGKILL"),
        "{:?}",
        fact(oom, "hog")
    );
    // The kernel's own counter, in the file of this cgroup version.
    let counter = if v1 {
        "memory.oom_control oom_kill"
    } else {
        "memory.events oom_kill"
    };
    assert_eq!(fact(oom, counter), ("0", "1"), "{counter}");
    assert_eq!(fact(oom, "OOM kills in the group"), ("0", "1"));
    let peak_key = if v1 { "memory.max_usage_in_bytes" } else { "memory.peak" };
    if has_fact(oom, peak_key) {
        let peak = num(fact(oom, peak_key).1);
        assert!(
            peak <= (32u64 << 20) as f64 && peak >= (16u64 << 20) as f64,
            "peak {peak}"
        );
    }
    let out = common::output(oom, 0);
    assert!(out.contains("doubling") && !out.contains("survived"), "{out}");
    assert!(gone(hog));
    host.assert_unchanged("memory-oom");
}

#[test]
fn pids_limit_refuses_forks() {
    require_root!();
    let _g = common::serial();
    for (max, extra) in [(5u64, vec![]), (3, vec!["--pids-max", "3"])] {
        let before = workbench::host::snapshot::capture();
        let (code, steps, summary) = run_json("pids-limit", &extra);
        assert_eq!(code, 0, "summary: {summary}\n{}", failed_checks(&steps));
        let f = step(&steps, "fork");
        assert_eq!(
            fact(f, "pids.max"),
            (max.to_string().as_str(), max.to_string().as_str())
        );
        assert_eq!(fact(f, "pids.events"), ("max 0", "max 1"));
        assert_eq!(fact(f, "background sleeps started").1, (max - 1).to_string());
        assert!(num(fact(f, "pids.current").1) <= max as f64);
        let out = common::output(f, 0);
        assert!(out.contains("can't fork: Resource temporarily unavailable"), "{out}");
        // The orphaned sleeps died with the group.
        let sleeps: Vec<i32> = out.lines().filter(|l| l.starts_with("fork ")).map(pid_in).collect();
        assert_eq!(sleeps.len() as u64, max - 1);
        for s in sleeps {
            assert!(gone(s), "sleep {s} survived the lesson");
        }
        common::assert_host_unchanged(&before, "pids-limit");
    }
}

#[test]
fn bad_options_fail_before_anything_is_created() {
    let _g = common::serial();
    let before = workbench::host::snapshot::capture();
    // The one line each refusal says, where several cases share it.
    const PERIOD: &str = "--period must be between 1000 and 1000000";
    const WEIGHTS: &str = "--weights must be two whole numbers";
    const PIDS_MAX: &str = "--pids-max must be between 1 and 100";
    let cases: &[(&str, &[&str], &str)] = &[
        ("cgroup-cpu-quota", &["--quota", "0"], "--quota must be at least 1000"),
        ("cgroup-cpu-quota", &["--quota", "999"], "--quota must be at least 1000"),
        ("cgroup-cpu-quota", &["--quota", "999999999"], "use at most"),
        ("cgroup-cpu-quota", &["--period", "999"], PERIOD),
        ("cgroup-cpu-quota", &["--period", "2000000"], PERIOD),
        (
            "cgroup-cpu-quota",
            &["--quota", "50000", "--period", "0"],
            "--period must be between",
        ),
        ("memory-oom", &["--memory", "abc"], "--memory: invalid size"),
        ("memory-oom", &["--memory", "0"], "--memory: invalid size"),
        ("memory-oom", &["--memory", "1M"], "use at least 4M"),
        ("memory-oom", &["--memory", "10G"], "use at most 256M"),
        ("memory-oom", &["--memory", "12X"], "unknown unit"),
        ("cpu-shares", &["--weights", "abc"], WEIGHTS),
        ("cpu-shares", &["--weights", "0:1"], WEIGHTS),
        ("cpu-shares", &["--weights", "1:1000"], WEIGHTS),
        ("pids-limit", &["--pids-max", "0"], PIDS_MAX),
        ("pids-limit", &["--pids-max", "100000"], PIDS_MAX),
    ];
    for (lesson, args, want) in cases {
        let o = common::lesson(lesson, args);
        let e = common::refused(&o, &format!("{lesson} {args:?}"));
        assert!(e.contains(want), "{lesson} {args:?}: {e}");
        assert!(e.starts_with("workbench: error: "), "{e}");
    }
    // Negative numbers never reach the lesson: the parser refuses them.
    for (lesson, flag) in [
        ("cgroup-cpu-quota", "--quota"),
        ("cgroup-cpu-quota", "--period"),
        ("pids-limit", "--pids-max"),
    ] {
        common::refused_by_parser(&common::lesson(lesson, &[flag, "-5"]), "-5");
    }
    common::assert_host_unchanged(&before, "lessons refused for bad options");
}

#[test]
fn cgroup_lessons_need_root() {
    let host = root_host!(); // to become someone else
    for lesson in ["cgroup-cpu-quota", "cpu-shares", "memory-oom", "pids-limit"] {
        let o = common::workbench_as_nobody(&["lesson", lesson]);
        let e = common::refused(&o, lesson);
        assert!(e.contains("needs root") && e.contains("sudo"), "{e}");
    }
    host.assert_unchanged("non-root cgroup lessons");
}
