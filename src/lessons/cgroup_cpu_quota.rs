//! cgroup-cpu-quota: CFS bandwidth control caps a group's CPU time.
//!
//! The CFS scheduler can give a cgroup a budget: `quota` microseconds of CPU
//! time every `period` microseconds, shared by all its threads on all CPUs.
//! When the group has spent its quota it is throttled (taken off the CPUs)
//! until the next period starts, and `cpu.stat` counts the periods and the
//! throttled ones. cgroup v1 spells it `cpu.cfs_quota_us` + `cpu.cfs_period_us`,
//! v2 `cpu.max` = "quota period".

use std::time::Duration;

use wb_cgroup::{Controller, Group, Resource as Watch};

use super::cg;
use super::hog::{self, Hog, Program, Spec};
use crate::host::Host;
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, StepReport};
use crate::observe::{capture, Capture};

pub const DEF: LessonDef = LessonDef {
    id: "cgroup-cpu-quota",
    steps: &["start-hog", "create-group", "set-quota", "join", "measure", "remove"],
    preflight,
    new: || Box::new(CpuQuota::default()),
    shell: Some("in a new cgroup with the lesson's limit"),
};

/// Busy threads of the hog, as in the tutorial.
pub const THREADS: u32 = 2;
/// The hog stops by itself after this long (it is killed long before).
const HOG_SECONDS: u32 = 300;
pub const DEFAULT_PERIOD_US: u64 = 100_000;
pub const DEFAULT_QUOTA_US: u64 = 50_000;
/// How far the measured use may be from the quota, in points of one CPU.
const TOLERANCE_POINTS: f64 = 5.0;

/// Validate `--quota` / `--period` against the kernel's rules and this machine.
/// Without `--quota` the quota is half a CPU (half the period).
pub fn quota_and_period(opts: &LessonOptions, cpus: usize) -> anyhow::Result<(u64, u64)> {
    let period = opts.period_us.unwrap_or(DEFAULT_PERIOD_US);
    if !(1_000..=1_000_000).contains(&period) {
        anyhow::bail!("--period must be between 1000 and 1000000 µs (1 ms to 1 s), got {period}");
    }
    let quota = opts.quota_us.unwrap_or(if opts.period_us.is_some() { period / 2 } else { DEFAULT_QUOTA_US });
    if quota < 1_000 && opts.quota_us.is_none() {
        anyhow::bail!("--period {period} makes the default quota (half a period, {quota} µs) smaller than the kernel's minimum of 1000 µs: give --quota too, or a --period of at least 2000");
    }
    if quota < 1_000 {
        anyhow::bail!("--quota must be at least 1000 µs (the kernel's minimum), got {quota}");
    }
    let most = cpus as u64 * period;
    if quota > most {
        anyhow::bail!("--quota {quota} is more than this machine's {cpus} CPU(s) × --period {period} = {most} µs: use at most {most}");
    }
    Ok((quota, period))
}

fn preflight(host: &Host, opts: &LessonOptions) -> anyhow::Result<()> {
    quota_and_period(opts, hog::allowed_cpus().len())?;
    let layout = cg::require(host, &[Controller::Cpu])?;
    if layout.summary().cpu_bandwidth == Some(false) {
        anyhow::bail!("this kernel has no CFS bandwidth control (no cpu.cfs_quota_us / cpu.max): it needs CONFIG_CFS_BANDWIDTH=y");
    }
    std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find workbench's own executable for the CPU hog: {e}"))?;
    Ok(())
}

#[derive(Default)]
struct CpuQuota {
    hog: Option<Hog>,
    group: Option<Group>,
    quota: u64,
    period: u64,
    /// What the hog can use at most without a quota, in % of one CPU.
    demand: f64,
    unconfined: Option<f64>,
}

impl CpuQuota {
    fn hog(&mut self) -> anyhow::Result<&mut Hog> {
        self.hog.as_mut().ok_or_else(|| anyhow::anyhow!("no hog: the start-hog step did not run"))
    }
    fn group(&self) -> anyhow::Result<&Group> {
        self.group.as_ref().ok_or_else(|| anyhow::anyhow!("no group: the create-group step did not run"))
    }
    fn quota_pct(&self) -> f64 {
        self.quota as f64 * 100.0 / self.period as f64
    }
}

const HOG_FACT: &str = "hog process";
const USE_FACT: &str = "CPU use of the hog (100% = one CPU)";

impl Lesson for CpuQuota {
    fn run_step(&mut self, step: &str, cx: &mut Cx) -> anyhow::Result<StepReport> {
        let mut r = StepReport::new();
        match step {
            "start-hog" => {
                let cpus = hog::allowed_cpus().len();
                (self.quota, self.period) = quota_and_period(&cx.options, cpus)?;
                self.demand = 100.0 * THREADS.min(cpus as u32) as f64;
                let before = cg::facts_snapshot("before", [(HOG_FACT.to_string(), "not running".to_string())].into());
                let spec = Spec {
                    name: "cpu-hog".into(),
                    program: Program::Cpu { threads: THREADS, seconds: HOG_SECONDS },
                    gated: false,
                    pin_cpu: None,
                    cpu_seconds: u64::from(HOG_SECONDS) * u64::from(THREADS) + 10,
                    address_space: None,
                    output_dir: cx.workdir.clone(),
                };
                let hog = Hog::spawn(&spec)?;
                let pid = hog.pid();
                self.hog = Some(hog);
                r.say("host", format!("workbench internal-hog --threads {THREADS} &    # {THREADS} threads, each: while (1) {{}}"), format!("[1] {pid}"));
                // Until every thread runs (a busy or emulated machine may take a
                // while to schedule the new process), at least 200 ms.
                let started = std::time::Instant::now();
                loop {
                    std::thread::sleep(Duration::from_millis(50));
                    let n = crate::kernel::proc::status_field(pid, "Threads").and_then(|t| t.parse::<usize>().ok());
                    let waited = started.elapsed();
                    if (n == Some(THREADS as usize) && waited >= Duration::from_millis(200)) || waited >= Duration::from_secs(5) {
                        break;
                    }
                }
                let used = cg::measure(cg::WINDOW, &[&cg::proc_cpu(pid)])?[0];
                self.unconfined = Some(used);
                let threads = crate::kernel::proc::status_field(pid, "Threads").unwrap_or_default();
                r.say(
                    "host",
                    format!("top -b -d {:.1} -n 2 -p {pid}    # %CPU from utime+stime in /proc/{pid}/stat", cg::WINDOW.as_secs_f64()),
                    format!("  PID  THREADS  %CPU\n{pid:>5}  {threads:>7}  {used:.1}"),
                );
                let after = cg::facts_snapshot(
                    "hog running, unconfined",
                    [
                        (HOG_FACT.to_string(), format!("pid {pid} (workbench internal-hog)")),
                        ("threads (/proc/PID/status)".to_string(), threads.clone()),
                        (USE_FACT.to_string(), cg::pct(used)),
                    ]
                    .into(),
                );
                r.check_eq("threads of the hog", THREADS.to_string(), threads);
                let states = cg::thread_states(pid);
                let all_r = !states.is_empty() && states.iter().all(|(_, s)| *s == 'R');
                r.check(
                    "every thread is runnable, never sleeping (state R in /proc/PID/task/*/stat)",
                    "R for each thread",
                    states.iter().map(|(t, s)| format!("{t}: {s}")).collect::<Vec<_>>().join(", "),
                    all_r,
                );
                r.check(
                    // A busy machine (a class running this at once) shares the CPUs
                    // out, so only a hog that barely runs at all fails this.
                    "the hog burns CPU (on an idle machine about 100% per thread; a busy one shares it out)",
                    format!("> {} (at most {})", cg::pct(self.demand / 40.0), cg::pct(self.demand)),
                    cg::pct(used),
                    used > self.demand / 40.0,
                );
                r.observe(before, after);
            }
            "create-group" => {
                let layout = wb_cgroup::detect_system()?;
                let name = format!("wb-{}-cpu", cx.run_id);
                let planned = wb_cgroup::planned_paths(&layout, &name, &[Controller::Cpu])?;
                let before = cg::facts_snapshot("before", cg::dir_facts(&planned));
                let g = cg::create_group(&layout, &name, &[Controller::Cpu])?;
                cg::say_each(&mut r, "host", &cg::mkdir_commands(&g), format!("cgroup layout: {}", cg::layout_label(&layout)));
                let files = g.files_for(Watch::CpuQuota);
                r.say("host", format!("# the CPU bandwidth files in {}", g.paths()[0].display()), cg::meanings(&files));
                let mut facts = cg::dir_facts(&planned);
                facts.extend(cg::facts("", &files));
                let after = cg::facts_snapshot("group created", facts);
                for p in &planned {
                    r.check(format!("{} exists", p.display()), "directory", if p.is_dir() { "directory" } else { "missing" }, p.is_dir());
                }
                let q = g.cpu_quota()?;
                r.check("a new group has no quota", "unlimited", q.quota_us.map_or("unlimited".to_string(), |v| v.to_string()), q.quota_us.is_none());
                r.observe(before, after);
                self.group = Some(g);
            }
            "set-quota" => {
                let (quota, period) = (self.quota, self.period);
                let g = self.group()?;
                let files = g.files_for(Watch::CpuQuota);
                let before = cg::facts("", &files);
                g.set_cpu_quota(quota, period)?;
                let after = cg::facts("", &files);
                cg::say_each(&mut r, "host", &cg::echo_commands(&files, &before, &after, ""), String::new());
                let q = g.cpu_quota()?;
                r.check_eq("quota read back, µs", quota.to_string(), q.quota_us.map_or("unlimited".into(), |v| v.to_string()));
                r.check_eq("period read back, µs", period.to_string(), q.period_us.to_string());
                r.say("host", "# quota / period", format!("{quota} / {period} = {} of one CPU", cg::pct(self.quota_pct())));
                r.observe(cg::facts_snapshot("before", before), cg::facts_snapshot("quota set", after));
            }
            "join" => {
                let pid = self.hog()?.pid();
                let g = self.group()?.clone();
                let files = g.files_for(Watch::Procs);
                let mut before = capture(format!("hog (pid {pid})"), pid, Capture { cgroups: true, ..Capture::FACTS })?;
                before.facts = cg::facts("", &files);
                g.add_process(pid)?;
                let mut after = capture(format!("hog (pid {pid})"), pid, Capture { cgroups: true, ..Capture::FACTS })?;
                after.facts = cg::facts("", &files);
                let cmds: Vec<String> = g.paths().iter().map(|p| format!("echo {pid} > {}", p.join(wb_cgroup::files::CGROUP_PROCS).display())).collect();
                cg::say_each(&mut r, "host", &cmds.join("\n"), String::new());
                r.say("host", format!("cat /proc/{pid}/cgroup"), std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default().trim_end().to_string());
                r.check("the hog is in the group (cgroup.procs)", pid.to_string(), format!("{:?}", g.procs()?), g.procs()?.contains(&pid));
                let want = cg::proc_path(&g);
                let threads = cg::thread_memberships(pid, &g, Controller::Cpu);
                let all_in = !threads.is_empty() && threads.iter().all(|(_, p)| *p == want);
                r.check(
                    "every thread moved with it (/proc/PID/task/*/cgroup)",
                    format!("{} threads in {want}", THREADS),
                    threads.iter().map(|(t, p)| format!("{t}: {p}")).collect::<Vec<_>>().join(", "),
                    all_in && threads.len() == THREADS as usize,
                );
                r.observe(before, after);
            }
            "measure" => {
                let quota_pct = self.quota_pct();
                let expected = quota_pct.min(self.demand);
                let throttles = quota_pct < self.demand * 0.9;
                let unconfined = self.unconfined.unwrap_or_default();
                let g = self.group()?.clone();
                let files = g.files_for(Watch::CpuStat);
                let mut before = cg::facts("", &files);
                before.insert(USE_FACT.into(), format!("{} (unconfined)", cg::pct(unconfined)));
                let usage = || -> anyhow::Result<u64> { Ok(g.cpu_usage_ns()?) };
                let (mut s0, mut s1, mut used);
                let mut attempt = 1;
                loop {
                    s0 = g.cpu_stat()?;
                    used = cg::measure(cg::WINDOW, &[&usage])?[0];
                    s1 = g.cpu_stat()?;
                    let (periods, throttled) = (s1.nr_periods - s0.nr_periods, s1.nr_throttled - s0.nr_throttled);
                    // Below the quota without being throttled in most periods: other
                    // processes took the CPUs, the quota was not what held the hog back.
                    let starved = throttles && used < expected - TOLERANCE_POINTS && throttled * 2 < periods;
                    if !starved || attempt == 3 {
                        break;
                    }
                    r.say(
                        "host",
                        "# the machine is busy: measuring again",
                        format!("{} in a window where the quota ran out in only {throttled} of {periods} periods: other processes kept the hog off the CPUs", cg::pct(used)),
                    );
                    before = cg::facts("", &files);
                    before.insert(USE_FACT.into(), format!("{} (unconfined)", cg::pct(unconfined)));
                    attempt += 1;
                }
                let mut after = cg::facts("", &files);
                after.insert(USE_FACT.into(), cg::pct(used));
                let cat: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
                r.say("host", format!("cat {}   # before and after {:.1} s", cat.join(" "), cg::WINDOW.as_secs_f64()), cg::meanings(&files));
                r.say(
                    "host",
                    "# CPU use = Δ(CPU time of the group) / Δ(wall time)",
                    format!("{} (quota {}/{} = {}; unconfined it used {})", cg::pct(used), self.quota, self.period, cg::pct(quota_pct), cg::pct(unconfined)),
                );
                r.check("the group never used more than its quota", format!("≤ {} + {TOLERANCE_POINTS}", cg::pct(quota_pct)), cg::pct(used), used <= quota_pct + TOLERANCE_POINTS);
                if throttles {
                    r.check(
                        format!("measured CPU use within {TOLERANCE_POINTS} points of the quota"),
                        format!("{} ± {TOLERANCE_POINTS}", cg::pct(expected)),
                        cg::pct(used),
                        (used - expected).abs() <= TOLERANCE_POINTS,
                    );
                    r.check("nr_throttled grew (periods in which the quota ran out)", format!("> {}", s0.nr_throttled), s1.nr_throttled.to_string(), s1.nr_throttled > s0.nr_throttled);
                    r.check("throttled time grew", format!("> {} ns", s0.throttled_ns), format!("{} ns", s1.throttled_ns), s1.throttled_ns > s0.throttled_ns);
                } else {
                    // The quota is as large as the hog's demand: it should hardly ever bite.
                    let (periods, throttled) = (s1.nr_periods - s0.nr_periods, s1.nr_throttled - s0.nr_throttled);
                    r.check(
                        format!("{THREADS} threads fit in the quota: throttled in few periods"),
                        format!("≤ 20% of {periods} periods"),
                        format!("{throttled} of {periods}"),
                        throttled * 5 <= periods,
                    );
                }
                r.check("nr_periods grew (the group had runnable threads)", format!("> {}", s0.nr_periods), s1.nr_periods.to_string(), s1.nr_periods > s0.nr_periods);
                r.observe(cg::facts_snapshot("before the window", before), cg::facts_snapshot(format!("after {:.1} s", cg::WINDOW.as_secs_f64()), after));
            }
            "remove" => {
                let g = self.group()?.clone();
                let paths = g.paths();
                let h = self.hog()?;
                let pid = h.pid();
                let mut before = cg::dir_facts(&paths);
                before.insert(HOG_FACT.into(), format!("pid {pid} running"));
                let (msg, errno) = cg::rmdir_while_populated(&paths[0]);
                r.say("host", format!("rmdir {}", paths[0].display()), msg.clone());
                r.check("rmdir of a group with processes is refused", "EBUSY (Device or resource busy)", msg, errno == Some(libc::EBUSY));
                let st = h.kill();
                r.say("host", format!("kill -KILL {pid}; wait {pid}"), hog::describe_status(&st));
                let problems = cg::remove_group(&g);
                cg::say_each(&mut r, "host", &paths.iter().map(|p| format!("rmdir {}", p.display())).collect::<Vec<_>>().join("\n"), problems.join("\n"));
                let mut after = cg::dir_facts(&paths);
                after.insert(HOG_FACT.into(), format!("gone: {}", hog::describe_status(&st)));
                cg::check_removed(&mut r, &paths, &problems);
                let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
                r.check("the hog is gone", "gone", if alive { "still running" } else { "gone" }, !alive);
                r.observe(cg::facts_snapshot("before", before), cg::facts_snapshot("after", after));
                self.group = None;
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(r)
    }

    /// `--shell`: a new group with the lesson's quota and a shell in it.
    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        let g = cg::shell_group(&cx.run_id, "shell", &[Controller::Cpu])?;
        g.set_cpu_quota(self.quota, self.period)?;
        let dir = cg::dir_of(&g, Watch::CpuQuota);
        let lines = vec![
            format!("This shell runs in the cgroup {} ($CG): {} = {} of one CPU.", dir.display(), cg::file_values(&g, Watch::CpuQuota), cg::pct(self.quota_pct())),
            "Try: `while :; do :; done &`, then `cat $CG/cpu.stat` twice (nr_throttled grows) or `top` in a second terminal; a second loop shares the same quota.".to_string(),
        ];
        cg::run_shell(cg::ShellSpec { lesson: DEF.id, groups: vec![g], env: vec![("CG".into(), dir.display().to_string())], pin_cpu: None, lines })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(quota: Option<u64>, period: Option<u64>) -> LessonOptions {
        LessonOptions { quota_us: quota, period_us: period, ..Default::default() }
    }

    #[test]
    fn defaults_are_half_a_cpu() {
        assert_eq!(quota_and_period(&opts(None, None), 2).unwrap(), (50_000, 100_000));
        assert_eq!(quota_and_period(&opts(None, Some(20_000)), 2).unwrap(), (10_000, 20_000));
        assert_eq!(quota_and_period(&opts(Some(150_000), None), 2).unwrap(), (150_000, 100_000));
    }

    #[test]
    fn bad_values_are_one_clear_line() {
        let e = quota_and_period(&opts(Some(0), None), 2).unwrap_err().to_string();
        assert!(e.contains("--quota must be at least 1000"), "{e}");
        let e = quota_and_period(&opts(Some(250_000), None), 2).unwrap_err().to_string();
        assert!(e.contains("2 CPU(s)") && e.contains("use at most 200000"), "{e}");
        for p in [0, 999, 1_000_001] {
            let e = quota_and_period(&opts(None, Some(p)), 2).unwrap_err().to_string();
            assert!(e.contains("--period must be between 1000 and 1000000"), "{e}");
        }
        let e = quota_and_period(&opts(None, Some(1_500)), 2).unwrap_err().to_string();
        assert!(e.contains("give --quota too"), "{e}");
        assert_eq!(quota_and_period(&opts(Some(1_000), Some(1_500)), 2).unwrap(), (1_000, 1_500));
        for e in [quota_and_period(&opts(Some(0), None), 2), quota_and_period(&opts(None, Some(5)), 1)] {
            assert!(!e.unwrap_err().to_string().contains('\n'));
        }
    }
}
