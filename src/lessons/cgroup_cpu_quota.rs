//! cgroup-cpu-quota: CFS bandwidth control caps a group's CPU time.
//!
//! The CFS scheduler can give a cgroup a budget: `quota` microseconds of CPU
//! time every `period` microseconds, shared by all its threads on all CPUs.
//! When the group has spent its quota it is throttled (taken off the CPUs)
//! until the next period starts, and `cpu.stat` counts the periods and the
//! throttled ones. cgroup v1 spells it `cpu.cfs_quota_us` + `cpu.cfs_period_us`,
//! v2 `cpu.max` = "quota period".
//!
//! A quota only shows when the CPUs could give the group more: on a host
//! whose CPUs other processes keep busy (a class running this lesson at
//! once), the hog gets less than its quota anyway and is never throttled.
//! So the lesson measures what the host leaves it, picks a quota that room
//! can fill (without --quota/--period), and when even that is not measurable
//! ends with the verdict "inconclusive", never a failure it cannot prove.

use std::time::Duration;

use wb_cgroup::{Controller, Group, Resource as Watch};

use crate::kit::cg;
use crate::kit::hog::{self, Hog, Spec};
use crate::host::Host;
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};
use crate::observe::render::Verdict;

pub const DEF: LessonDef = LessonDef::of::<CpuQuota>(preflight).shell("in a new cgroup with the lesson's limit").spots(&[
    ("create-group", Spot::Present("cgroup", 1)),
    ("join", Spot::InGroups(1)),
]);

/// Busy threads of the hog, as in the tutorial.
pub const THREADS: u32 = 2;
/// The hog stops by itself after this long (it is killed long before).
const HOG_SECONDS: u32 = 300;
pub const DEFAULT_PERIOD_US: u64 = 100_000;
pub const DEFAULT_QUOTA_US: u64 = 50_000;
/// How far the measured use may be from the quota, in points of one CPU.
const TOLERANCE_POINTS: f64 = 5.0;
/// The smallest quota the lesson picks on a busy host, in % of one CPU:
/// below it the tolerance would be as large as the quota itself.
pub const MIN_QUOTA_PCT: f64 = 10.0;
/// The default quota is kept while it is at most this part of the CPU the
/// host leaves the hog (what the hog gets unconfined is a floor: confined
/// runs leave more)...
const KEEP_BELOW: f64 = 0.9;
/// ...else the quota becomes this part of it (room for the other runs' noise).
const PICK_PART: f64 = 0.6;

/// What the host leaves this run, as measured before the quota.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Room {
    pub cpus: usize,
    /// The unconfined hog's use, in % of one CPU.
    pub unconfined: f64,
    /// Busy threads of other live workbench runs (their hogs).
    pub other_threads: usize,
}

impl Room {
    /// The CPU the hog can count on, in % of one CPU: what it measured
    /// unconfined, at most its fair part of the CPUs next to the other runs'
    /// busy threads (runs that start after the measurement compete too).
    pub fn available(&self, demand: f64) -> f64 {
        let fair = self.cpus as f64 * 100.0 * f64::from(THREADS) / (f64::from(THREADS) + self.other_threads as f64);
        self.unconfined.min(fair).min(demand)
    }
}

/// A quota of about `pct` % of one CPU for `period`, in whole milliseconds
/// (at least the kernel's 1000 µs).
fn quota_for(pct: f64, period: u64) -> u64 {
    let q = (pct * period as f64 / 100.0) as u64;
    (q / 1_000 * 1_000).max(1_000)
}

/// The quota to set (pure): the asked-for one when `--quota`/`--period`
/// were given (the learner's experiment, kept as it is) or when the host
/// leaves the hog enough CPU to fill it; else a smaller one the free CPU can
/// fill, never below [`MIN_QUOTA_PCT`]. Returns the quota and, when it was
/// changed, why (for the transcript).
pub fn choose_quota(explicit: bool, quota: u64, period: u64, demand: f64, room: &Room) -> (u64, Option<String>) {
    let pct = quota as f64 * 100.0 / period as f64;
    let avail = room.available(demand);
    if explicit || pct <= KEEP_BELOW * avail {
        return (quota, None);
    }
    let lower = quota_for((PICK_PART * avail).floor().max(MIN_QUOTA_PCT), period);
    if lower >= quota {
        return (quota, None);
    }
    let others = if room.other_threads > 0 { format!(", next to {} busy threads of other workbench runs", room.other_threads) } else { String::new() };
    let why = format!(
        "the host is busy: {} CPU(s) give this run ~{} (the hog measured {} unconfined{others}), too little to fill a quota of {} ({}), so the quota is {} ({}): one the free CPU can fill",
        room.cpus,
        cg::pct(avail),
        cg::pct(room.unconfined),
        quota,
        cg::pct(pct),
        lower,
        cg::pct(lower as f64 * 100.0 / period as f64)
    );
    (lower, Some(why))
}

/// One measuring window of the confined hog, all in % of one CPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub quota_pct: f64,
    /// What the hog could use without a quota (100% per thread, at most the CPUs).
    pub demand: f64,
    /// The group's CPU use (its usage counter).
    pub used: f64,
    /// The hog process's own CPU use (/proc/PID/stat): all of it should be the group's.
    pub hog: f64,
    /// Idle time of the CPUs workbench may use (the free CPU).
    pub idle: f64,
    pub cpus: usize,
    pub periods: u64,
    pub throttled: u64,
}

impl Window {
    /// Should the quota bind (hold the hog below what it wants)?
    pub fn throttles(&self) -> bool {
        self.quota_pct < self.demand * 0.9
    }
    /// The use the quota allows the hog.
    pub fn expected(&self) -> f64 {
        self.quota_pct.min(self.demand)
    }
    /// CPU other processes used during the window.
    pub fn others(&self) -> f64 {
        (self.cpus as f64 * 100.0 - self.idle - self.hog).max(0.0)
    }
    /// Below the quota without being throttled in most periods: the quota
    /// was not what held the hog back.
    pub fn starved(&self) -> bool {
        self.throttles() && self.used < self.expected() - TOLERANCE_POINTS && self.throttled * 2 < self.periods
    }
    /// Did other processes keep the CPUs too busy for the quota to be
    /// reached? CFS gives idle CPU to any runnable thread, so a hog that fell
    /// short of its quota while CPU time was idle was not held back by the
    /// host: only when less was idle than the hog lacked, other processes
    /// used at least that much, and the hog's CPU time all went to the group
    /// (else it is not in it), is the shortfall the host's doing.
    pub fn busy(&self) -> bool {
        let short = (self.expected() - self.used).max(0.0);
        self.idle < short + TOLERANCE_POINTS && self.others() >= short.max(TOLERANCE_POINTS) && self.hog <= self.used + TOLERANCE_POINTS
    }
    /// "measured CPU use within the tolerance of the quota": a use above it
    /// always fails (the quota did not hold); one below it is inconclusive
    /// only on a busy host.
    pub fn within_verdict(&self) -> Verdict {
        let off = self.used - self.expected();
        if off.abs() <= TOLERANCE_POINTS {
            Verdict::Pass
        } else if off < 0.0 && self.busy() {
            Verdict::Inconclusive
        } else {
            Verdict::Fail
        }
    }
    /// "nr_throttled grew": required whenever the quota binds; without it
    /// only a busy host (the hog never reached its quota) is inconclusive.
    pub fn throttled_verdict(&self, grew: bool) -> Verdict {
        if grew {
            Verdict::Pass
        } else if self.busy() {
            Verdict::Inconclusive
        } else {
            Verdict::Fail
        }
    }
    /// How busy the host was, for the checks' "actual" column.
    pub fn busy_note(&self) -> String {
        format!("the host is busy: {} of the CPUs idle, other processes used {}", cg::pct(self.idle), cg::pct(self.others()))
    }
}

/// "the hog burns CPU" (pure): more than a 40th of its demand passes; less
/// fails, unless the CPUs had no idle time and other processes used at least
/// half a CPU of them: then the hog could not run, and that proves nothing.
pub fn hog_runs_verdict(used: f64, demand: f64, idle: f64, cpus: usize) -> Verdict {
    let others = cpus as f64 * 100.0 - idle - used;
    if used > demand / 40.0 {
        Verdict::Pass
    } else if idle < TOLERANCE_POINTS && others >= 50.0 {
        Verdict::Inconclusive
    } else {
        Verdict::Fail
    }
}

/// A smaller quota the hog can fill, after a window in which it got only
/// `used` % (pure): [`PICK_PART`] of it, at least [`MIN_QUOTA_PCT`]; `None`
/// if that is not below `quota`.
pub fn lower_quota(quota: u64, period: u64, used: f64) -> Option<u64> {
    let lower = quota_for((PICK_PART * used).floor().max(MIN_QUOTA_PCT), period);
    (lower < quota).then_some(lower)
}

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
    /// --quota or --period given: the quota is never changed.
    explicit: bool,
    /// Why the quota is not the one asked for (a busy host), if it is not.
    quota_note: Option<String>,
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
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        match step {
            "start-hog" => {
                let cpus = hog::allowed_cpus().len();
                (self.quota, self.period) = quota_and_period(&cx.options, cpus)?;
                self.demand = 100.0 * THREADS.min(cpus as u32) as f64;
                let before = cg::facts_snapshot("before", [(HOG_FACT.to_string(), "not running".to_string())].into());
                let spec = Spec::cpu("cpu-hog", THREADS, HOG_SECONDS, &cx.workdir);
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
                let m = cg::measure(cg::WINDOW, &[&cg::proc_cpu(pid), &cg::cpu_idle(&hog::allowed_cpus())])?;
                let (used, idle) = (m[0], m[1]);
                self.unconfined = Some(used);
                self.explicit = cx.options.quota_us.is_some() || cx.options.period_us.is_some();
                let others = cg::other_runs_hogs();
                let room = Room { cpus, unconfined: used, other_threads: others.iter().map(|o| o.busy_threads).sum() };
                let (quota, note) = choose_quota(self.explicit, self.quota, self.period, self.demand, &room);
                self.quota = quota;
                self.quota_note = note;
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
                if let Some(note) = &self.quota_note {
                    r.say("workbench", "# what the host leaves this run", note.clone());
                } else if !others.is_empty() {
                    r.say("workbench", "# other workbench runs", format!("{} busy threads of {} other run(s): the hog can still fill a quota of {}", room.other_threads, others.len(), cg::pct(self.quota_pct())));
                }
                r.check_eq("threads of the hog", THREADS.to_string(), threads);
                let states = cg::thread_states(pid);
                let all_r = !states.is_empty() && states.iter().all(|(_, s)| *s == 'R');
                r.check(
                    "every thread is runnable, never sleeping (state R in /proc/PID/task/*/stat)",
                    "R for each thread",
                    states.iter().map(|(t, s)| format!("{t}: {s}")).collect::<Vec<_>>().join(", "),
                    all_r,
                );
                // A busy machine (a class running this at once) shares the CPUs
                // out, so only a hog that barely runs at all fails this — unless
                // other processes held every CPU: then it could not run.
                let v = hog_runs_verdict(used, self.demand, idle, cpus);
                let mut actual = cg::pct(used);
                if v == Verdict::Inconclusive {
                    actual.push_str(&format!(" (the host is busy: {} of the CPUs idle, other processes used {})", cg::pct(idle), cg::pct(cpus as f64 * 100.0 - idle - used)));
                }
                r.check_verdict(
                    "the hog burns CPU (on an idle machine about 100% per thread; a busy one shares it out)",
                    format!("> {} (at most {})", cg::pct(self.demand / 40.0), cg::pct(self.demand)),
                    actual,
                    v,
                );
                r.observe(before, after);
            }
            "create-group" => {
                let (g, before, facts) = cg::create_step(r, &cx.run_id, "cpu", Controller::Cpu, Watch::CpuQuota, "the CPU bandwidth files")?;
                let after = cg::facts_snapshot("group created", facts);
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
                cg::say_each(r, "host", &cg::echo_commands(&files, &before, &after, ""), String::new());
                let q = g.cpu_quota()?;
                r.check_eq("quota read back, µs", quota.to_string(), q.quota_us.map_or("unlimited".into(), |v| v.to_string()));
                r.check_eq("period read back, µs", period.to_string(), q.period_us.to_string());
                r.say("host", "# quota / period", format!("{quota} / {period} = {} of one CPU", cg::pct(self.quota_pct())));
                if let Some(note) = &self.quota_note {
                    r.say("workbench", "# why this quota", note.clone());
                }
                r.observe(cg::facts_snapshot("before", before), cg::facts_snapshot("quota set", after));
            }
            "join" => {
                let pid = self.hog()?.pid();
                let g = self.group()?.clone();
                let (before, after) = cg::join_step(r, &g, pid, "hog", Watch::Procs)?;
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
                let unconfined = self.unconfined.unwrap_or_default();
                let pid = self.hog()?.pid();
                let g = self.group()?.clone();
                let cpus = hog::allowed_cpus();
                let files = g.files_for(Watch::CpuStat);
                let quota_files = g.files_for(Watch::CpuQuota);
                let facts_now = || {
                    let mut f = cg::facts("", &files);
                    f.insert(USE_FACT.into(), format!("{} (unconfined)", cg::pct(unconfined)));
                    f
                };
                let mut before = facts_now();
                let usage = || -> anyhow::Result<u64> { Ok(g.cpu_usage_ns()?) };
                let (hog_cpu, idle) = (cg::proc_cpu(pid), cg::cpu_idle(&cpus));
                let (mut s0, mut s1, mut w);
                let mut attempt = 1;
                loop {
                    s0 = g.cpu_stat()?;
                    let m = cg::measure(cg::WINDOW, &[&usage, &hog_cpu, &idle])?;
                    s1 = g.cpu_stat()?;
                    w = Window {
                        quota_pct: self.quota_pct(),
                        demand: self.demand,
                        used: m[0],
                        hog: m[1],
                        idle: m[2],
                        cpus: cpus.len(),
                        periods: s1.nr_periods - s0.nr_periods,
                        throttled: s1.nr_throttled - s0.nr_throttled,
                    };
                    if !w.starved() || attempt == 3 {
                        break;
                    }
                    let seen = format!("{} in a window where the quota ran out in only {} of {} periods ({})", cg::pct(w.used), w.throttled, w.periods, w.busy_note());
                    match lower_quota(self.quota, self.period, w.used).filter(|_| !self.explicit && w.busy()) {
                        Some(lower) => {
                            let was = cg::facts("", &quota_files);
                            g.set_cpu_quota(lower, self.period)?;
                            let now = cg::facts("", &quota_files);
                            let why = format!("{seen}: other processes kept the hog off the CPUs, so the quota becomes {lower} ({}), one the free CPU can fill", cg::pct(lower as f64 * 100.0 / self.period as f64));
                            cg::say_each(r, "host", &cg::echo_commands(&quota_files, &was, &now, ""), why.clone());
                            self.quota = lower;
                            self.quota_note = Some(why);
                        }
                        None => r.say("host", "# the machine is busy: measuring again", format!("{seen}: other processes kept the hog off the CPUs")),
                    }
                    before = facts_now();
                    attempt += 1;
                }
                let quota_pct = self.quota_pct();
                let expected = w.expected();
                let mut after = cg::facts("", &files);
                after.insert(USE_FACT.into(), cg::pct(w.used));
                let cat: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
                r.say("host", format!("cat {}   # before and after {:.1} s", cat.join(" "), cg::WINDOW.as_secs_f64()), cg::meanings(&files));
                r.say(
                    "host",
                    "# CPU use = Δ(CPU time of the group) / Δ(wall time)",
                    format!("{} (quota {}/{} = {}; unconfined it used {})", cg::pct(w.used), self.quota, self.period, cg::pct(quota_pct), cg::pct(unconfined)),
                );
                r.say(
                    "host",
                    format!("# the CPUs around it: idle time of CPUs {:?} in /proc/stat, the hog's own time in /proc/{pid}/stat", cpus),
                    format!("{} of the CPUs idle; the hog used {}, other processes {}", cg::pct(w.idle), cg::pct(w.hog), cg::pct(w.others())),
                );
                r.check("the group never used more than its quota", format!("≤ {} + {TOLERANCE_POINTS}", cg::pct(quota_pct)), cg::pct(w.used), w.used <= quota_pct + TOLERANCE_POINTS);
                if w.throttles() {
                    let busy = |v: Verdict, actual: String| if v == Verdict::Inconclusive { format!("{actual} ({})", w.busy_note()) } else { actual };
                    let v = w.within_verdict();
                    r.check_verdict(format!("measured CPU use within {TOLERANCE_POINTS} points of the quota"), format!("{} ± {TOLERANCE_POINTS}", cg::pct(expected)), busy(v, cg::pct(w.used)), v);
                    let v = w.throttled_verdict(s1.nr_throttled > s0.nr_throttled);
                    r.check_verdict("nr_throttled grew (periods in which the quota ran out)", format!("> {}", s0.nr_throttled), busy(v, s1.nr_throttled.to_string()), v);
                    let v = w.throttled_verdict(s1.throttled_ns > s0.throttled_ns);
                    r.check_verdict("throttled time grew", format!("> {} ns", s0.throttled_ns), busy(v, format!("{} ns", s1.throttled_ns)), v);
                } else {
                    // The quota is as large as the hog's demand: it should hardly ever bite.
                    r.check(
                        format!("{THREADS} threads fit in the quota: throttled in few periods"),
                        format!("≤ 20% of {} periods", w.periods),
                        format!("{} of {}", w.throttled, w.periods),
                        w.throttled * 5 <= w.periods,
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
                let mut after = cg::remove_step(r, &[g], None);
                after.insert(HOG_FACT.into(), format!("gone: {}", hog::describe_status(&st)));
                let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
                r.check("the hog is gone", "gone", if alive { "still running" } else { "gone" }, !alive);
                r.observe(cg::facts_snapshot("before", before), cg::facts_snapshot("after", after));
                self.group = None;
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    /// `--shell`: a new group with the lesson's quota and a shell in it.
    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        let (g, dir) = cg::limited_shell_group(&cx.run_id, Controller::Cpu, Watch::CpuQuota, |g| g.set_cpu_quota(self.quota, self.period))?;
        let lines = vec![
            format!("This shell runs in the cgroup {} ($CG): {} = {} of one CPU.", dir.display(), cg::file_values(&g, Watch::CpuQuota), cg::pct(self.quota_pct())),
            "Try: `while :; do :; done &`, then `cat $CG/cpu.stat` twice (nr_throttled grows) or `top` in a second terminal; a second loop shares the same quota.".to_string(),
        ];
        cg::shell_in(cx.lesson, g, &dir, lines)
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

    fn room(cpus: usize, unconfined: f64, other_threads: usize) -> Room {
        Room { cpus, unconfined, other_threads }
    }

    #[test]
    fn a_quiet_host_keeps_the_quota_asked_for() {
        assert_eq!(choose_quota(false, 50_000, 100_000, 200.0, &room(2, 199.0, 0)), (50_000, None));
        // One CPU: the hog's two threads share it.
        assert_eq!(choose_quota(false, 50_000, 100_000, 100.0, &room(1, 99.0, 0)), (50_000, None));
        // Half the host is busy: 100% is still room enough for 50%.
        assert_eq!(choose_quota(false, 50_000, 100_000, 200.0, &room(2, 100.0, 0)), (50_000, None));
    }

    #[test]
    fn a_busy_host_gets_a_quota_its_free_cpu_can_fill() {
        // Six runs on two CPUs: each hog got ~17% unconfined.
        let (q, why) = choose_quota(false, 50_000, 100_000, 200.0, &room(2, 16.7, 10));
        assert_eq!(q, 10_000);
        let why = why.unwrap();
        assert!(why.starts_with("the host is busy: 2 CPU(s) give this run ~16.7%"), "{why}");
        assert!(why.contains("10 busy threads of other workbench runs") && why.ends_with("so the quota is 10000 (10.0%): one the free CPU can fill"), "{why}");
        // 60% left: enough for 50%. 50% left: not quite; 30% is.
        assert_eq!(choose_quota(false, 50_000, 100_000, 200.0, &room(2, 60.0, 0)).0, 50_000);
        assert_eq!(choose_quota(false, 50_000, 100_000, 200.0, &room(2, 50.0, 0)).0, 30_000);
        // Measured before the others started, the hog saw both CPUs; its fair
        // part next to 10 busy threads is a third of a CPU.
        assert_eq!(choose_quota(false, 50_000, 100_000, 200.0, &room(2, 200.0, 10)).0, 20_000);
        // Never below 10%, whatever is left.
        assert_eq!(choose_quota(false, 50_000, 100_000, 200.0, &room(2, 3.0, 30)).0, 10_000);
        // Other periods scale: 10% of 20000 µs.
        assert_eq!(choose_quota(false, 10_000, 20_000, 200.0, &room(2, 10.0, 0)).0, 2_000);
        // The learner's own --quota/--period is their experiment: kept.
        assert_eq!(choose_quota(true, 50_000, 100_000, 200.0, &room(2, 16.7, 10)), (50_000, None));
        // A quota already below what a busy host allows stays.
        assert_eq!(choose_quota(false, 5_000, 100_000, 200.0, &room(2, 16.7, 10)), (5_000, None));
    }

    #[test]
    fn a_hog_that_does_not_run_fails_unless_others_held_every_cpu() {
        assert_eq!(hog_runs_verdict(199.0, 200.0, 0.0, 2), Verdict::Pass);
        assert_eq!(hog_runs_verdict(6.0, 200.0, 0.0, 2), Verdict::Pass);
        // Not running on an idle host: fails.
        assert_eq!(hog_runs_verdict(0.0, 200.0, 199.0, 2), Verdict::Fail);
        // Nor with idle CPU left over.
        assert_eq!(hog_runs_verdict(3.0, 200.0, 40.0, 2), Verdict::Fail);
        // Sixteen busy threads of other runs on two CPUs: inconclusive.
        assert_eq!(hog_runs_verdict(3.3, 200.0, 0.0, 2), Verdict::Inconclusive);
    }

    #[test]
    fn lower_quotas_after_a_starved_window() {
        assert_eq!(lower_quota(50_000, 100_000, 16.6), Some(10_000));
        assert_eq!(lower_quota(50_000, 100_000, 40.0), Some(24_000));
        assert_eq!(lower_quota(10_000, 100_000, 5.0), None);
    }

    fn window(used: f64, hog: f64, idle: f64, throttled: u64) -> Window {
        Window { quota_pct: 50.0, demand: 200.0, used, hog, idle, cpus: 2, periods: 15, throttled }
    }

    #[test]
    fn a_quota_that_binds_passes() {
        let w = window(50.3, 50.3, 149.0, 15);
        assert!(!w.starved() && !w.busy());
        assert_eq!(w.within_verdict(), Verdict::Pass);
        assert_eq!(w.throttled_verdict(true), Verdict::Pass);
    }

    #[test]
    fn a_quota_never_applied_fails_on_an_idle_host() {
        // The hog takes both CPUs: above the quota, and nobody else was busy.
        let w = window(199.0, 199.0, 0.5, 0);
        assert!(!w.busy(), "{w:?}");
        assert_eq!(w.within_verdict(), Verdict::Fail);
        assert_eq!(w.throttled_verdict(false), Verdict::Fail);
    }

    #[test]
    fn a_hog_outside_its_group_fails_even_with_no_cpu_idle() {
        // The group's counter stands still while the hog burns both CPUs.
        let w = window(0.0, 199.0, 0.5, 0);
        assert!(w.starved() && !w.busy(), "{w:?}");
        assert_eq!(w.within_verdict(), Verdict::Fail);
        assert_eq!(w.throttled_verdict(false), Verdict::Fail);
    }

    #[test]
    fn a_short_hog_with_idle_cpu_around_it_fails() {
        // CFS would have given it the idle CPU: the host did not hold it back.
        let w = window(20.0, 20.0, 120.0, 0);
        assert!(w.starved() && !w.busy());
        assert_eq!(w.within_verdict(), Verdict::Fail);
        assert_eq!(w.throttled_verdict(false), Verdict::Fail);
    }

    #[test]
    fn a_hog_the_busy_host_kept_below_its_quota_is_inconclusive() {
        // "measured 33% of 50% ± 5", nr_throttled 0: others used the rest.
        let w = window(33.0, 33.0, 0.0, 0);
        assert!(w.starved() && w.busy());
        assert_eq!(w.within_verdict(), Verdict::Inconclusive);
        assert_eq!(w.throttled_verdict(false), Verdict::Inconclusive);
        assert!(w.busy_note().contains("other processes used 167.0%"), "{}", w.busy_note());
        // Near the quota but never throttled, on saturated CPUs: the quota may
        // not be there at all, and the host cannot tell. Inconclusive, not a pass.
        let w = window(48.0, 48.0, 0.0, 0);
        assert_eq!(w.within_verdict(), Verdict::Pass);
        assert_eq!(w.throttled_verdict(false), Verdict::Inconclusive);
        // Above the quota is never the host's fault.
        let w = window(80.0, 80.0, 0.0, 0);
        assert_eq!(w.within_verdict(), Verdict::Fail);
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
