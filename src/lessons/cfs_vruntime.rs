//! cfs-vruntime: the fair scheduler's virtual clock, read from /proc/PID/sched.
//!
//! Every task of the fair class (SCHED_NORMAL, the default policy) carries a
//! virtual runtime that grows by its CPU time × 1024 / its weight, and its
//! weight comes from its nice value (`sched_prio_to_weight`: nice 0 = 1024,
//! nice 5 = 335). The scheduler keeps the virtual runtimes of the tasks of a
//! run queue together, so a lighter task gets less real CPU. Since Linux 6.6
//! (EEVDF) the pick is by eligible virtual deadline, but vruntime still
//! advances the same way; kernels with the scheduler's debug interface
//! (CONFIG_SCHED_DEBUG) show both clocks and the weight in `/proc/PID/sched`.
//!
//! Two hogs pinned to one CPU share a cgroup of their own, so that their
//! scheduling entities sit on one run queue (a group's tasks are queued on
//! the group's own queue) and their vruntimes can be compared.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use wb_cgroup::{Controller, Group};

use crate::host::Host;
use crate::kit::cg;
use crate::kit::hog::{self, Hog, Program, Spec};
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};
use crate::observe::render::Verdict;

pub const DEF: LessonDef = LessonDef::of::<CfsVruntime>(preflight)
    .shell("in a new cgroup, pinned to the lesson's CPU")
    .spots(&[("start-hogs", Spot::InGroups(2)), ("renice", Spot::InGroups(2))]);

/// The weight of a nice-0 task (`NICE_0_LOAD` without the fixed-point shift).
pub const NICE_0_LOAD: u64 = 1024;

/// The kernel's `sched_prio_to_weight`, nice −20 to 19 (kernel/sched/core.c).
pub const PRIO_TO_WEIGHT: [u64; 40] = [
    88761, 71755, 56483, 46273, 36291, 29154, 23254, 18705, 14949, 11916, 9548, 7620, 6100, 4904, 3906, 3121, 2501, 1991,
    1586, 1277, 1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15,
];

/// The nice value hog B is given.
pub const NICE_B: i32 = 5;
const HOG_SECONDS: u32 = 300;
const NAMES: [&str; 2] = ["A", "B"];
/// How often and how many times /proc/PID/sched is read.
const INTERVAL: Duration = Duration::from_millis(500);
const EQUAL_SAMPLES: usize = 4;
const WEIGHTED_SAMPLES: usize = 6;
/// How far Δvruntime / Δruntime may be from 1024 / weight (relative).
pub const FORMULA_TOLERANCE: f64 = 0.05;
/// How far A's part of the runtime may be from its weight's part, in points.
pub const SPLIT_TOLERANCE: f64 = 6.0;
/// Below this much of their CPU together (%), with other processes using
/// the rest, the two hogs got too little time to judge their split.
pub const MIN_TOGETHER: f64 = 30.0;
/// The vruntimes may drift apart by this many milliseconds, or by
/// [`GAP_FRACTION`] of what they advanced, whichever is more.
pub const GAP_FLOOR_MS: f64 = 30.0;
pub const GAP_FRACTION: f64 = 0.05;
/// Less CPU time than this (ms) in a window says nothing about a ratio.
const MIN_RUN_MS: f64 = 1.0;

/// The weight of a nice value (clamped to −20..19).
pub fn weight_of_nice(nice: i32) -> u64 {
    PRIO_TO_WEIGHT[(nice.clamp(-20, 19) + 20) as usize]
}

/// The fields of a `/proc/PID/sched` text (pure): `key : value` lines, key
/// and value trimmed; the header line and the rest are left out.
pub fn parse_sched(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, v)| !k.is_empty() && !k.contains(' ') && !v.is_empty())
        .collect()
}

/// The lines of a `/proc/PID/sched` text that `grep -E KEYS` would print
/// (the header line first): the excerpt the lesson shows.
pub fn sched_excerpt(text: &str, keys: &[&str]) -> String {
    let mut out: Vec<&str> = text.lines().take(1).collect();
    out.extend(text.lines().skip(1).filter(|l| {
        l.split_once(':')
            .is_some_and(|(k, _)| keys.contains(&k.trim()))
    }));
    out.join("\n")
}

/// The fields the lesson shows from /proc/PID/sched, those a kernel has.
pub const SHOWN: [&str; 8] = [
    "se.vruntime",
    "se.sum_exec_runtime",
    "se.load.weight",
    "se.slice",
    "se.deadline",
    "nr_involuntary_switches",
    "policy",
    "prio",
];

/// A task's weight as the scheduler counts it: 64-bit kernels print
/// `se.load.weight` in fixed point, × 1024 (`scale_load`), 32-bit ones do
/// not. No weight of the table is a multiple of 1024 above nice 0, and the
/// smallest one scaled (15 × 1024) is above every unscaled multiple.
pub fn unscale_weight(raw: u64) -> u64 {
    if raw >= 15 * 1024 && raw % 1024 == 0 { raw / 1024 } else { raw }
}

/// The scheduling policy's name and the class that runs it.
pub fn policy_class(policy: &str) -> String {
    let (name, class) = match policy.trim() {
        "0" => ("SCHED_NORMAL", "fair_sched_class"),
        "1" => ("SCHED_FIFO", "rt_sched_class"),
        "2" => ("SCHED_RR", "rt_sched_class"),
        "3" => ("SCHED_BATCH", "fair_sched_class"),
        "5" => ("SCHED_IDLE", "fair_sched_class"),
        "6" => ("SCHED_DEADLINE", "dl_sched_class"),
        "7" => ("SCHED_EXT", "ext_sched_class"),
        other => return format!("{other} (unknown)"),
    };
    format!("{} ({name}: {class})", policy.trim())
}

/// One reading of a task's clocks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clocks {
    /// se.sum_exec_runtime, ms.
    pub runtime: f64,
    /// se.vruntime, ms.
    pub vruntime: f64,
    /// se.load.weight, unscaled.
    pub weight: u64,
}

impl Clocks {
    pub fn of(fields: &BTreeMap<String, String>) -> Option<Clocks> {
        let num = |k: &str| fields.get(k).and_then(|v| v.parse::<f64>().ok());
        Some(Clocks {
            runtime: num("se.sum_exec_runtime")?,
            vruntime: num("se.vruntime")?,
            weight: unscale_weight(fields.get("se.load.weight")?.parse().ok()?),
        })
    }
}

/// Preflight's test of the kernel (pure): the text of /proc/self/sched, or
/// `None` when it cannot be read.
pub fn sched_file_usable(text: Option<&str>) -> anyhow::Result<()> {
    let ok = text.map(parse_sched).is_some_and(|f| Clocks::of(&f).is_some());
    anyhow::ensure!(
        ok,
        "this kernel shows no se.vruntime in /proc/PID/sched (it needs CONFIG_SCHED_DEBUG=y, which Debian's and Ubuntu's kernels have): run the lesson on such a kernel"
    );
    Ok(())
}

fn preflight(host: &Host, _opts: &LessonOptions) -> anyhow::Result<()> {
    cg::require(host, &[Controller::Cpu])?;
    sched_file_usable(std::fs::read_to_string("/proc/self/sched").ok().as_deref())?;
    std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find workbench's own executable for the CPU hogs: {e}"))?;
    Ok(())
}

/// How a ratio check came out: `Fail` unless it holds, but `Inconclusive`
/// when the two hogs got less than [`MIN_TOGETHER`] of their CPU because
/// others used it (less than `tolerance` of it idle) (pure).
pub fn busy_verdict(holds: bool, together: f64, idle: f64, tolerance: f64) -> Verdict {
    if holds {
        Verdict::Pass
    } else if together < MIN_TOGETHER && idle < tolerance {
        Verdict::Inconclusive
    } else {
        Verdict::Fail
    }
}

/// A's part of the two runtimes (%) against the weights' (pure).
pub fn split_verdict(share: f64, want: f64, tolerance: f64, together: f64, idle: f64) -> Verdict {
    busy_verdict((share - want).abs() <= tolerance, together, idle, tolerance)
}

/// Δvruntime / Δruntime against 1024 / weight (pure). Too little runtime to
/// tell is judged like a split: inconclusive only on a busy CPU.
pub fn formula_verdict(d_runtime: f64, d_vruntime: f64, weight: u64, together: f64, idle: f64) -> Verdict {
    let want = NICE_0_LOAD as f64 / weight.max(1) as f64;
    let holds = d_runtime >= MIN_RUN_MS && ((d_vruntime / d_runtime) / want - 1.0).abs() <= FORMULA_TOLERANCE;
    busy_verdict(holds, together, idle, 5.0)
}

/// How far the vruntime gap A − B moved from its first value, at most, over
/// the samples, and the bound it must stay within (pure): the larger of
/// [`GAP_FLOOR_MS`] and [`GAP_FRACTION`] of the smaller Δvruntime.
pub fn gap_drift(a: &[Clocks], b: &[Clocks]) -> (f64, f64) {
    let gaps: Vec<f64> = a.iter().zip(b).map(|(x, y)| x.vruntime - y.vruntime).collect();
    let first = gaps.first().copied().unwrap_or(0.0);
    let drift = gaps.iter().map(|g| (g - first).abs()).fold(0.0, f64::max);
    let advanced = |s: &[Clocks]| match (s.first(), s.last()) {
        (Some(f), Some(l)) => l.vruntime - f.vruntime,
        _ => 0.0,
    };
    let bound = GAP_FLOOR_MS.max(GAP_FRACTION * advanced(a).min(advanced(b)));
    (drift, bound)
}

/// Samples of both hogs' clocks and of the CPU's idle time.
struct Series {
    /// Seconds since the first sample.
    times: Vec<f64>,
    clocks: [Vec<Clocks>; 2],
    /// The last raw text of each file.
    raw: [String; 2],
    /// Idle time of the CPU over the whole series, % of one CPU.
    idle: f64,
    elapsed: f64,
}

impl Series {
    fn delta(&self, i: usize) -> (f64, f64) {
        let s = &self.clocks[i];
        match (s.first(), s.last()) {
            (Some(f), Some(l)) => (l.runtime - f.runtime, l.vruntime - f.vruntime),
            _ => (0.0, 0.0),
        }
    }
    /// Each hog's runtime in the window, % of one CPU.
    fn used(&self) -> [f64; 2] {
        let pct = |d: f64| if self.elapsed > 0.0 { d * 100.0 / (self.elapsed * 1000.0) } else { 0.0 };
        [pct(self.delta(0).0), pct(self.delta(1).0)]
    }
    fn table(&self) -> String {
        let mut out = format!(
            "{:>5}  {:>12} {:>12}  {:>12} {:>12}  {:>9}\n",
            "t (s)", "A runtime", "A vruntime", "B runtime", "B vruntime", "vA − vB"
        );
        for (i, t) in self.times.iter().enumerate() {
            let (a, b) = (self.clocks[0][i], self.clocks[1][i]);
            out.push_str(&format!(
                "{t:>5.2}  {:>12.3} {:>12.3}  {:>12.3} {:>12.3}  {:>9.3}\n",
                a.runtime,
                a.vruntime,
                b.runtime,
                b.vruntime,
                a.vruntime - b.vruntime
            ));
        }
        out.push_str("(milliseconds, from se.sum_exec_runtime and se.vruntime)");
        out
    }
}

fn read_sched(pid: i32) -> anyhow::Result<(String, Clocks)> {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/sched")).map_err(|e| anyhow::anyhow!("read /proc/{pid}/sched: {e}"))?;
    let c = Clocks::of(&parse_sched(&text))
        .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/sched has no se.vruntime, se.sum_exec_runtime or se.load.weight"))?;
    Ok((text, c))
}

fn sample(pids: [i32; 2], cpu: usize, n: usize) -> anyhow::Result<Series> {
    let idle = cg::cpu_idle(&[cpu]);
    let idle0 = idle()?;
    let t0 = Instant::now();
    let mut s = Series { times: vec![], clocks: [vec![], vec![]], raw: Default::default(), idle: 0.0, elapsed: 0.0 };
    for k in 0..n {
        if k > 0 {
            std::thread::sleep(INTERVAL);
        }
        s.times.push(t0.elapsed().as_secs_f64());
        for (i, pid) in pids.iter().enumerate() {
            let (text, c) = read_sched(*pid)?;
            s.clocks[i].push(c);
            s.raw[i] = text;
        }
    }
    s.elapsed = t0.elapsed().as_secs_f64();
    let idle1 = idle()?;
    if s.elapsed > 0.0 {
        s.idle = idle1.saturating_sub(idle0) as f64 / 1e9 * 100.0 / s.elapsed;
    }
    Ok(s)
}

fn nice_of(pid: i32) -> anyhow::Result<i32> {
    // SAFETY: getpriority and errno are plain; -1 is a valid nice value, so
    // errno tells an error apart.
    unsafe {
        *libc::__errno_location() = 0;
        let n = libc::getpriority(libc::PRIO_PROCESS as _, pid as libc::id_t);
        if n == -1 && *libc::__errno_location() != 0 {
            anyhow::bail!("getpriority(PRIO_PROCESS, {pid}): {}", std::io::Error::last_os_error());
        }
        Ok(n)
    }
}

fn set_nice(pid: i32, nice: i32) -> anyhow::Result<()> {
    // SAFETY: a plain system call.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS as _, pid as libc::id_t, nice) };
    anyhow::ensure!(
        rc == 0,
        "setpriority(PRIO_PROCESS, {pid}, {nice}): {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

fn ms(v: f64) -> String {
    format!("{v:.3} ms")
}

#[derive(Default)]
struct CfsVruntime {
    group: Option<Group>,
    hogs: Vec<Hog>,
    cpu: usize,
}

impl CfsVruntime {
    fn pids(&self) -> anyhow::Result<[i32; 2]> {
        anyhow::ensure!(self.hogs.len() == 2, "no hogs: the start-hogs step did not run");
        Ok([self.hogs[0].pid(), self.hogs[1].pid()])
    }

    /// Each hog's nice, prio, policy and weight, as facts.
    fn sched_facts(&self) -> BTreeMap<String, String> {
        let mut f = BTreeMap::new();
        for (n, h) in NAMES.iter().zip(&self.hogs) {
            let fields = std::fs::read_to_string(format!("/proc/{}/sched", h.pid()))
                .map(|t| parse_sched(&t))
                .unwrap_or_default();
            let get = |k: &str| fields.get(k).cloned().unwrap_or_else(|| "—".into());
            f.insert(format!("hog {n}: nice"), nice_of(h.pid()).map(|n| n.to_string()).unwrap_or_else(|_| "—".into()));
            f.insert(format!("hog {n}: prio"), get("prio"));
            f.insert(format!("hog {n}: policy"), policy_class(&get("policy")));
            let raw = get("se.load.weight");
            let w = raw.parse().map(unscale_weight).map(|w| w.to_string()).unwrap_or_else(|_| "—".into());
            f.insert(format!("hog {n}: se.load.weight"), format!("{w} (file: {raw})"));
        }
        f
    }

    fn say_excerpt(&self, r: &mut StepReport, raw: &[String; 2]) {
        for (n, (h, text)) in NAMES.iter().zip(self.hogs.iter().zip(raw)) {
            let keys: Vec<&str> = SHOWN.to_vec();
            r.say(
                "host",
                format!("grep -E '^(se\\.(vruntime|sum_exec_runtime|load\\.weight|slice|deadline)|nr_involuntary_switches|policy|prio) ' /proc/{}/sched   # hog {n}", h.pid()),
                sched_excerpt(text, &keys),
            );
        }
    }

    /// Check the formula for both hogs on a series; returns (together, idle).
    fn check_formula(&self, r: &mut StepReport, s: &Series) -> (f64, f64) {
        let used = s.used();
        let together = used[0] + used[1];
        for (i, n) in NAMES.iter().enumerate() {
            let (dr, dv) = s.delta(i);
            let w = s.clocks[i].last().map(|c| c.weight).unwrap_or(0);
            let want = NICE_0_LOAD as f64 / w.max(1) as f64;
            let got = if dr > 0.0 { dv / dr } else { 0.0 };
            r.check_verdict(
                format!("hog {n}: Δvruntime / Δruntime = 1024 / weight (±{:.0}%)", FORMULA_TOLERANCE * 100.0),
                format!("1024 / {w} = {want:.3}"),
                format!("{} / {} = {got:.3}", ms(dv), ms(dr)),
                formula_verdict(dr, dv, w, together, s.idle),
            );
        }
        (together, s.idle)
    }

    fn split(&self, r: &mut StepReport, s: &Series, want: f64, tolerance: f64, name: &str) {
        let used = s.used();
        let together = used[0] + used[1];
        let share = if together > 0.0 { used[0] * 100.0 / together } else { 0.0 };
        let others = (100.0 - s.idle - together).max(0.0);
        r.say(
            "host",
            format!("# CPU {}: the hogs' runtime over {:.1} s, and the idle time in /proc/stat", self.cpu, s.elapsed),
            format!(
                "A {} + B {} of the CPU; idle {}; other processes {}",
                cg::pct(used[0]),
                cg::pct(used[1]),
                cg::pct(s.idle),
                cg::pct(others)
            ),
        );
        let v = split_verdict(share, want, tolerance, together, s.idle);
        let mut actual = format!("{} (A {} : B {})", cg::pct(share), ms(s.delta(0).0), ms(s.delta(1).0));
        if v == Verdict::Inconclusive {
            actual.push_str(&format!(
                " (the host is busy: A and B got only {} of CPU {}, other processes {})",
                cg::pct(together),
                self.cpu,
                cg::pct(others)
            ));
        }
        r.check_verdict(format!("{name} (±{tolerance:.0} points)"), cg::pct(want), actual, v);
    }
}

fn clocks_facts(s: &Series, k: usize) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    for (i, n) in NAMES.iter().enumerate() {
        if let Some(c) = s.clocks[i].get(k) {
            f.insert(format!("hog {n}: se.sum_exec_runtime"), ms(c.runtime));
            f.insert(format!("hog {n}: se.vruntime"), ms(c.vruntime));
        }
    }
    if let (Some(a), Some(b)) = (s.clocks[0].get(k), s.clocks[1].get(k)) {
        f.insert("vruntime A − B".into(), ms(a.vruntime - b.vruntime));
        f.insert("runtime A − B".into(), ms(a.runtime - b.runtime));
    }
    f
}

impl Lesson for CfsVruntime {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        match step {
            "start-hogs" => {
                let layout = wb_cgroup::detect_system()?;
                let name = format!("wb-{}-fair", cx.run_id);
                let planned = wb_cgroup::planned_paths(&layout, &name, &[Controller::Cpu])?;
                let mut before = cg::dir_facts(&planned);
                for n in NAMES {
                    before.insert(format!("hog {n}"), "not running".into());
                }
                let (cpu, note) = cg::choose_cpu(&hog::allowed_cpus(), &cg::other_runs_hogs());
                self.cpu = cpu;
                if let Some(note) = note {
                    r.say("workbench", "# which CPU", note);
                }
                let g = cg::create_group(&layout, &name, &[Controller::Cpu])?;
                cg::say_each(r, "host", &cg::mkdir_commands(&g), "");
                r.say("host", "# cgroup layout", cg::layout_label(&layout));
                self.group = Some(g.clone());
                for (i, n) in NAMES.iter().enumerate() {
                    let spec = Spec {
                        name: format!("fair-hog-{}", n.to_lowercase()),
                        program: Program::Cpu { threads: 1, seconds: HOG_SECONDS },
                        gated: true,
                        pin_cpu: Some(cpu),
                        cpu_seconds: u64::from(HOG_SECONDS) + 10,
                        address_space: None,
                        output_dir: cx.workdir.clone(),
                    };
                    let h = Hog::spawn(&spec)?;
                    g.add_process(h.pid())?;
                    r.say(
                        "host",
                        format!(
                            "taskset -c {cpu} workbench internal-hog --threads 1 &    # hog {n}: sched_setaffinity(0, {{CPU {cpu}}}), PR_SET_PDEATHSIG(SIGKILL)"
                        ),
                        format!("[{}] {}", i + 1, h.pid()),
                    );
                    cg::say_each(
                        r,
                        "host",
                        &g.paths()
                            .iter()
                            .map(|p| format!("echo {} > {}", h.pid(), p.join(wb_cgroup::files::CGROUP_PROCS).display()))
                            .collect::<Vec<_>>()
                            .join("\n"),
                        "",
                    );
                    // A move into another cpuset (cgroup v2 with cpuset on) may
                    // reset the affinity on older kernels: pin it again.
                    let now = crate::kernel::proc::status_field(h.pid(), "Cpus_allowed_list").unwrap_or_default();
                    if now != cpu.to_string() {
                        hog::pin(h.pid(), cpu)?;
                        r.say("host", format!("taskset -p -c {cpu} {}    # hog {n}", h.pid()), format!("the move reset its affinity to {now}; pinned to CPU {cpu} again"));
                    }
                    // An inherited nice (workbench started with `nice`) would skew the weights.
                    let nice = nice_of(h.pid())?;
                    if nice != 0 {
                        set_nice(h.pid(), 0)?;
                        r.say("host", format!("renice -n 0 -p {}    # hog {n}", h.pid()), format!("it inherited nice {nice} from workbench"));
                    }
                    self.hogs.push(h);
                }
                for h in &mut self.hogs {
                    h.release()?;
                }
                let mut after = cg::dir_facts(&planned);
                let mut pinned = Vec::new();
                for (n, h) in NAMES.iter().zip(&self.hogs) {
                    after.insert(format!("hog {n}"), format!("pid {}", h.pid()));
                    after.insert(format!("hog {n}: cpu cgroup"), cg::membership(h.pid(), &g, Controller::Cpu));
                    let cpus = crate::kernel::proc::status_field(h.pid(), "Cpus_allowed_list").unwrap_or_default();
                    after.insert(format!("hog {n}: Cpus_allowed_list"), cpus.clone());
                    pinned.push(cpus);
                }
                after.extend(self.sched_facts());
                cg::check_dirs_exist(r, &planned);
                for (n, h) in NAMES.iter().zip(&self.hogs) {
                    r.check_eq(format!("hog {n} is in the group (/proc/PID/cgroup)"), cg::proc_path(&g), cg::membership(h.pid(), &g, Controller::Cpu));
                }
                let want = cpu.to_string();
                r.check("both hogs may run only on the same CPU (Cpus_allowed_list)", format!("{want} and {want}"), pinned.join(" and "), pinned.iter().all(|c| *c == want));
                let pids = self.pids()?;
                let mut raw: [String; 2] = Default::default();
                for (i, n) in NAMES.iter().enumerate() {
                    let (text, c) = read_sched(pids[i])?;
                    let f = parse_sched(&text);
                    r.check_eq(format!("hog {n}: policy (fair class)"), policy_class("0"), policy_class(f.get("policy").map(String::as_str).unwrap_or("?")));
                    r.check_eq(format!("hog {n}: se.load.weight (nice 0)"), NICE_0_LOAD, c.weight);
                    raw[i] = text;
                }
                self.say_excerpt(r, &raw);
                r.observe(cg::facts_snapshot("before", before), cg::facts_snapshot("two hogs in the group on one CPU", after));
            }
            "equal-weights" => {
                let pids = self.pids()?;
                let s = sample(pids, self.cpu, EQUAL_SAMPLES)?;
                r.say(
                    "host",
                    format!("for i in $(seq {EQUAL_SAMPLES}); do grep -E 'se\\.(sum_exec_runtime|vruntime) ' /proc/{}/sched /proc/{}/sched; sleep {:.1}; done", pids[0], pids[1], INTERVAL.as_secs_f64()),
                    s.table(),
                );
                self.check_formula(r, &s);
                self.split(r, &s, 50.0, 10.0, "equal weights: A gets half of their runtime");
                r.observe(cg::facts_snapshot("first sample", clocks_facts(&s, 0)), cg::facts_snapshot(format!("after {:.1} s", s.elapsed), clocks_facts(&s, s.times.len() - 1)));
            }
            "renice" => {
                let pids = self.pids()?;
                let before = self.sched_facts();
                set_nice(pids[1], NICE_B)?;
                r.say("host", format!("renice -n {NICE_B} -p {}    # setpriority(PRIO_PROCESS, {}, {NICE_B})", pids[1], pids[1]), format!("{}: old priority 0, new priority {NICE_B}", pids[1]));
                let after = self.sched_facts();
                let (_, b) = read_sched(pids[1])?;
                let (text_a, a) = read_sched(pids[0])?;
                let text_b = std::fs::read_to_string(format!("/proc/{}/sched", pids[1]))?;
                r.check_eq("hog B: nice (getpriority)", NICE_B, nice_of(pids[1])?);
                r.check_eq(
                    format!("hog B: se.load.weight = sched_prio_to_weight[nice {NICE_B}]"),
                    weight_of_nice(NICE_B),
                    b.weight,
                );
                r.check_eq(
                    "hog B: prio = 120 + nice",
                    (120 + NICE_B).to_string(),
                    parse_sched(&text_b).get("prio").cloned().unwrap_or_default(),
                );
                r.check_eq("hog A: se.load.weight unchanged", NICE_0_LOAD, a.weight);
                self.say_excerpt(r, &[text_a, text_b]);
                r.observe(cg::facts_snapshot("before", before), cg::facts_snapshot("after renice", after));
            }
            "sample" => {
                let pids = self.pids()?;
                let s = sample(pids, self.cpu, WEIGHTED_SAMPLES)?;
                r.say(
                    "host",
                    format!("for i in $(seq {WEIGHTED_SAMPLES}); do grep -E 'se\\.(sum_exec_runtime|vruntime) ' /proc/{}/sched /proc/{}/sched; sleep {:.1}; done", pids[0], pids[1], INTERVAL.as_secs_f64()),
                    s.table(),
                );
                let (wa, wb) = (NICE_0_LOAD, weight_of_nice(NICE_B));
                let (together, idle) = self.check_formula(r, &s);
                let want = wa as f64 * 100.0 / (wa + wb) as f64;
                r.say("host", "# A's part = weight A / (weight A + weight B)", format!("{wa} / ({wa} + {wb}) = {}", cg::pct(want)));
                self.split(r, &s, want, SPLIT_TOLERANCE, &format!("weights {wa} : {wb}: A's part of their runtime"));
                let (drift, bound) = gap_drift(&s.clocks[0], &s.clocks[1]);
                let (ra, rb) = (s.delta(0).0, s.delta(1).0);
                let v = busy_verdict(drift <= bound, together, idle, 5.0);
                r.check_verdict(
                    "the vruntimes stay together while the runtimes drift apart",
                    format!("vruntime gap moves ≤ {}", ms(bound)),
                    format!("moved at most {}; the runtime gap moved {}", ms(drift), ms(ra - rb)),
                    v,
                );
                self.say_excerpt(r, &s.raw);
                let eevdf: Vec<String> = ["se.slice", "se.deadline"]
                    .iter()
                    .filter_map(|k| parse_sched(&s.raw[1]).get(*k).map(|v| format!("{k} {v}")))
                    .collect();
                r.say(
                    "host",
                    "# EEVDF (Linux 6.6 and later) in /proc/PID/sched",
                    if eevdf.is_empty() {
                        "no se.slice or se.deadline: this kernel's fair class is CFS, picking the smallest vruntime".to_string()
                    } else {
                        format!("{} (ns): the pick is the eligible task with the earliest virtual deadline", eevdf.join(", "))
                    },
                );
                r.observe(cg::facts_snapshot("first sample", clocks_facts(&s, 0)), cg::facts_snapshot(format!("after {:.1} s", s.elapsed), clocks_facts(&s, s.times.len() - 1)));
            }
            "stop" => {
                let g = self.group.clone().ok_or_else(|| anyhow::anyhow!("no group: the start-hogs step did not run"))?;
                cg::stop_hogs_and_remove(r, &NAMES, &mut self.hogs, std::slice::from_ref(&g));
                self.group = None;
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    /// `--shell`: a shell in a new cgroup, pinned to the lesson's CPU, so the
    /// loops it starts compete on one run queue and die with the group.
    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        let cpu = self.cpu;
        let g = cg::shell_group(&cx.run_id, "shell", &[Controller::Cpu])?;
        let dir = g.paths()[0].clone();
        let lines = vec![
            format!("This shell runs in the new cgroup {} ($CG), pinned to CPU {cpu} like everything it starts.", dir.display()),
            "Try: `while :; do :; done & A=$!; nice -n 5 sh -c 'while :; do :; done' & B=$!`, then a few times `grep -E 'vruntime|sum_exec|load.weight' /proc/$A/sched /proc/$B/sched`.".to_string(),
        ];
        cg::run_shell(cg::ShellSpec {
            lesson: cx.lesson,
            groups: vec![g],
            env: vec![("CG".into(), dir.display().to_string())],
            pin_cpu: Some(cpu),
            lines,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/PID/sched of a nice-5 hog on Linux 6.18 (EEVDF, 64-bit).
    const EEVDF: &str = "workbench (4242, #threads: 1)
-------------------------------------------------------------------
se.exec_start                                :      17259165.361643
se.vruntime                                  :          5127.019743
se.sum_exec_runtime                          :          1701.811256
se.nr_migrations                             :                    0
nr_switches                                  :                  812
nr_voluntary_switches                        :                    0
nr_involuntary_switches                      :                  812
se.load.weight                               :               343040
se.avg.load_sum                              :                47463
policy                                       :                    0
prio                                         :                  125
se.slice                                     :              1400000
clock-delta                                  :                   41
mm->numa_scan_seq                            :                    0
current_node=0, numa_group_id=0
";

    /// The same on Linux 6.1 (CFS): no se.slice.
    const CFS: &str = "workbench (4242, #threads: 1)
---------------------------------------------------------
se.exec_start                                :        912345.123456
se.vruntime                                  :          3001.500000
se.sum_exec_runtime                          :          3001.000000
se.nr_migrations                             :                    0
se.load.weight                               :              1048576
policy                                       :                    0
prio                                         :                  120
";

    #[test]
    fn the_weight_table_is_the_kernels() {
        assert_eq!(weight_of_nice(0), 1024);
        assert_eq!(weight_of_nice(5), 335);
        assert_eq!(weight_of_nice(-20), 88761);
        assert_eq!(weight_of_nice(19), 15);
        assert_eq!(weight_of_nice(99), 15);
        // Each step of nice is about a factor of 1.25.
        for w in PRIO_TO_WEIGHT.windows(2) {
            let f = w[0] as f64 / w[1] as f64;
            assert!((1.2..1.3).contains(&f), "{w:?}");
        }
    }

    #[test]
    fn weights_are_read_scaled_or_not() {
        assert_eq!(unscale_weight(1048576), 1024);
        assert_eq!(unscale_weight(343040), 335);
        assert_eq!(unscale_weight(15 * 1024), 15);
        assert_eq!(unscale_weight(88761 * 1024), 88761);
        // 32-bit kernels print the table's values as they are.
        for w in PRIO_TO_WEIGHT {
            assert_eq!(unscale_weight(w), w);
            assert_eq!(unscale_weight(w * 1024), w);
        }
    }

    #[test]
    fn sched_files_parse_on_eevdf_and_cfs_kernels() {
        let f = parse_sched(EEVDF);
        assert_eq!(f["se.slice"], "1400000");
        assert_eq!(f["policy"], "0");
        assert!(!f.contains_key("current_node=0, numa_group_id=0"));
        assert_eq!(Clocks::of(&f), Some(Clocks { runtime: 1701.811256, vruntime: 5127.019743, weight: 335 }));
        let c = Clocks::of(&parse_sched(CFS)).unwrap();
        assert_eq!((c.weight, c.runtime), (1024, 3001.0));
        assert!(!parse_sched(CFS).contains_key("se.slice"));
        assert_eq!(Clocks::of(&parse_sched("cat (1, #threads: 1)\nse.vruntime : 1.0\n")), None);
    }

    #[test]
    fn the_excerpt_is_what_grep_prints() {
        let e = sched_excerpt(EEVDF, &SHOWN);
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines[0], "workbench (4242, #threads: 1)");
        let keys: Vec<&str> = lines[1..].iter().map(|l| l.split(':').next().unwrap().trim()).collect();
        assert_eq!(
            keys,
            ["se.vruntime", "se.sum_exec_runtime", "nr_involuntary_switches", "se.load.weight", "policy", "prio", "se.slice"]
        );
    }

    #[test]
    fn preflight_refuses_a_kernel_without_the_clocks() {
        assert!(sched_file_usable(Some(EEVDF)).is_ok());
        assert!(sched_file_usable(Some(CFS)).is_ok());
        for bad in [None, Some(""), Some("cat (1, #threads: 1)\nnr_switches : 3\n")] {
            let e = sched_file_usable(bad).unwrap_err().to_string();
            assert!(e.contains("CONFIG_SCHED_DEBUG") && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn policies_name_their_class() {
        assert_eq!(policy_class("0"), "0 (SCHED_NORMAL: fair_sched_class)");
        assert_eq!(policy_class("5"), "5 (SCHED_IDLE: fair_sched_class)");
        assert_eq!(policy_class("2"), "2 (SCHED_RR: rt_sched_class)");
        assert_eq!(policy_class("6"), "6 (SCHED_DEADLINE: dl_sched_class)");
        assert!(policy_class("9").contains("unknown"));
    }

    #[test]
    fn the_formula_holds_or_fails_unless_the_cpu_was_taken() {
        // nice 0: 1:1; nice 5: × 1024/335.
        assert_eq!(formula_verdict(1500.0, 1500.2, 1024, 100.0, 0.0), Verdict::Pass);
        assert_eq!(formula_verdict(500.0, 500.0 * 1024.0 / 335.0, 335, 100.0, 0.0), Verdict::Pass);
        // vruntime at the speed of runtime for a light task: fails.
        assert_eq!(formula_verdict(500.0, 500.0, 335, 100.0, 0.0), Verdict::Fail);
        // No runtime at all on an idle CPU: fails; on a CPU others took: inconclusive.
        assert_eq!(formula_verdict(0.0, 0.0, 335, 100.0, 0.0), Verdict::Fail);
        assert_eq!(formula_verdict(0.0, 0.0, 335, 3.0, 1.0), Verdict::Inconclusive);
    }

    #[test]
    fn a_split_off_the_weights_fails_unless_others_took_the_cpu() {
        let want = 1024.0 * 100.0 / 1359.0;
        assert_eq!(split_verdict(74.0, want, SPLIT_TOLERANCE, 99.0, 0.0), Verdict::Pass);
        assert_eq!(split_verdict(72.0, want, SPLIT_TOLERANCE, 10.0, 0.0), Verdict::Pass);
        // Weights never applied on an idle CPU: 50:50 fails.
        assert_eq!(split_verdict(50.0, want, SPLIT_TOLERANCE, 99.0, 0.0), Verdict::Fail);
        // ...and with room to spare, however little the hogs got.
        assert_eq!(split_verdict(50.0, want, SPLIT_TOLERANCE, 20.0, 60.0), Verdict::Fail);
        // A sliver of a CPU others kept busy: inconclusive.
        assert_eq!(split_verdict(55.0, want, SPLIT_TOLERANCE, 20.0, 1.0), Verdict::Inconclusive);
        assert_eq!(split_verdict(55.0, want, SPLIT_TOLERANCE, 40.0, 1.0), Verdict::Fail);
    }

    /// As root, with the workbench binary built next to this test executable
    /// (`target/debug/workbench`, also in the pure cgroup v2 VM of
    /// scripts/v2-vm): the lesson runs and passes, or is inconclusive only by
    /// the checks a busy CPU may keep from judging. Hold /tmp/wb-root.lock.
    #[test]
    fn the_lesson_passes_on_this_kernel() {
        let _serial = crate::kit::root_test_lock();
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: not root");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let Some(exe) = exe.parent().and_then(|d| d.parent()).map(|d| d.join("workbench")).filter(|p| p.exists()) else {
            eprintln!("skipped: no workbench binary next to {} (cargo build --bin workbench)", exe.display());
            return;
        };
        let out = std::process::Command::new(&exe).args(["lesson", "cfs-vruntime", "--json"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}; stderr: {stderr}")))
            .collect();
        let code = out.status.code();
        assert!(matches!(code, Some(0) | Some(3)), "exit {code:?}; stderr: {stderr}; {lines:#?}");
        let steps: Vec<&serde_json::Value> = lines.iter().filter(|v| v["type"] == "step").collect();
        // What this kernel showed (with --nocapture or RUST_TEST_NOCAPTURE=1).
        for s in steps.iter().filter(|s| ["equal-weights", "sample"].contains(&s["id"].as_str().unwrap_or(""))) {
            for c in s["checks"].as_array().into_iter().flatten() {
                eprintln!("{}: {}: expected {}, got {} ({})", s["id"], c["name"], c["expected"], c["actual"], c["pass"]);
            }
        }
        let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["start-hogs", "equal-weights", "renice", "sample", "stop"]);
        for s in &steps {
            for c in s["checks"].as_array().unwrap() {
                // Only the ratio checks may be inconclusive, and only in the sampling steps.
                let ok = c["pass"] == true
                    || (c["inconclusive"] == true && ["equal-weights", "sample"].contains(&s["id"].as_str().unwrap()));
                assert!(ok, "step {}: check failed: {c}", s["id"]);
            }
        }
        // The weight the kernel took for nice 5, and the formula for it, on this kernel.
        let renice = steps[2]["checks"].to_string();
        assert!(renice.contains("\"actual\":\"335\""), "{renice}");
        let summary = lines.iter().find(|v| v["type"] == "summary").expect("a summary");
        assert_eq!(summary["cleanup_problems"].as_array().map(Vec::len), Some(0), "{summary}");
    }

    fn clocks(points: &[(f64, f64)], weight: u64) -> Vec<Clocks> {
        points.iter().map(|&(runtime, vruntime)| Clocks { runtime, vruntime, weight }).collect()
    }

    #[test]
    fn the_vruntime_gap_is_measured_from_its_start() {
        // A at 75%, B at 25% with 3.06× vruntime: the gap wobbles by a few ms.
        let a = clocks(&[(0.0, 100.0), (375.0, 475.0), (750.0, 850.0)], 1024);
        let b = clocks(&[(0.0, 90.0), (125.0, 472.0), (250.0, 855.0)], 335);
        let (drift, bound) = gap_drift(&a, &b);
        assert!((drift - 15.0).abs() < 1e-9, "{drift}");
        assert_eq!(bound, GAP_FLOOR_MS.max(GAP_FRACTION * 750.0));
        // Equal runtime at different weights: B's vruntime runs away.
        let b = clocks(&[(0.0, 90.0), (375.0, 1236.0), (750.0, 2382.0)], 335);
        let (drift, bound) = gap_drift(&a, &b);
        assert!(drift > bound);
        assert_eq!(gap_drift(&[], &[]), (0.0, GAP_FLOOR_MS));
    }
}
