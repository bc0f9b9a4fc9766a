//! cpu-shares: relative CPU weights decide who gets a contended CPU.
//!
//! A weight is not a limit: a group alone on an idle CPU may use all of it.
//! Only when runnable tasks of several groups compete for the same CPU does the
//! scheduler split the time in proportion to their weights — cpu.shares on
//! cgroup v1 (default 1024), cpu.weight on v2 (1..10000, default 100). To make
//! the competition real, both hogs are pinned to one CPU with
//! `sched_setaffinity(2)`.
//!
//! On a shared host (a class running this at once) the lesson pins its hogs
//! to the CPU the fewest other runs' hogs are pinned to. The split between
//! A and B holds however many others compete (siblings share by weight), but
//! when the two get only a sliver of the CPU it is too noisy to judge: then
//! a split off the weights is "inconclusive", never a failure.

use wb_cgroup::{Controller, Group, Resource as Watch};

use crate::kit::cg;
use crate::kit::hog::{self, Hog, Spec};
use crate::host::Host;
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};
use crate::observe::render::Verdict;

pub const DEF: LessonDef = LessonDef::of::<CpuShares>(preflight).shell("in a new cgroup weighted like the lesson's group A").spots(&[
    // Before the groups have members the hogs are only children of workbench.
    ("start-hogs", Spot::Procs(2)),
    ("join", Spot::InGroups(2)),
]);

pub const DEFAULT_WEIGHTS: &str = "2:1";
/// Each part of --weights times this is the v2 cpu.weight (default 100).
const WEIGHT_UNIT: u64 = 100;
const HOG_SECONDS: u32 = 300;
/// How far A's measured part of the CPU may be from A/(A+B), in points.
const TOLERANCE_POINTS: f64 = 5.0;
/// Below this much of their CPU together (in %), A and B got too little
/// time for their split to be judged, if other processes took the rest.
pub const MIN_TOGETHER: f64 = 30.0;

/// The verdict on A's part of the CPU (pure). Off the weights by more than
/// the tolerance fails, unless A and B together got less than
/// [`MIN_TOGETHER`] of their CPU because other processes used it (less
/// than the tolerance of it idle): then it is inconclusive.
pub fn split_verdict(share: f64, want: f64, together: f64, idle: f64) -> Verdict {
    if (share - want).abs() <= TOLERANCE_POINTS {
        Verdict::Pass
    } else if together < MIN_TOGETHER && idle < TOLERANCE_POINTS {
        Verdict::Inconclusive
    } else {
        Verdict::Fail
    }
}

/// Validate `--weights A:B`: two whole numbers from 1 to 100.
pub fn weights(opts: &LessonOptions) -> anyhow::Result<(u64, u64)> {
    let text = opts.weights.as_deref().unwrap_or(DEFAULT_WEIGHTS);
    let bad = || anyhow::anyhow!("--weights must be two whole numbers from 1 to 100 like 2:1, got {text:?}");
    let (a, b) = text.split_once(':').ok_or_else(bad)?;
    let parse = |s: &str| s.trim().parse::<u64>().ok().filter(|n| (1..=100).contains(n));
    Ok((parse(a).ok_or_else(bad)?, parse(b).ok_or_else(bad)?))
}

fn preflight(host: &Host, opts: &LessonOptions) -> anyhow::Result<()> {
    weights(opts)?;
    cg::require(host, &[Controller::Cpu])?;
    std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find workbench's own executable for the CPU hogs: {e}"))?;
    Ok(())
}

#[derive(Default)]
struct CpuShares {
    groups: Vec<Group>,
    hogs: Vec<Hog>,
    parts: (u64, u64),
    cpu: usize,
    unweighted: Vec<f64>,
}

const NAMES: [&str; 2] = ["A", "B"];

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2} : 1", a / b)
    } else {
        "— (B got nothing)".into()
    }
}

impl CpuShares {
    fn need_groups(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.groups.len() == 2, "no groups: the create-groups step did not run");
        Ok(())
    }
    fn need_hogs(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.hogs.len() == 2, "no hogs: the start-hogs step did not run");
        Ok(())
    }
    fn weight_facts(&self) -> std::collections::BTreeMap<String, String> {
        let mut f = std::collections::BTreeMap::new();
        for (n, g) in NAMES.iter().zip(&self.groups) {
            f.extend(cg::facts(&format!("{n}: "), &g.files_for(Watch::CpuWeight)));
        }
        f
    }
}

impl Lesson for CpuShares {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        match step {
            "create-groups" => {
                self.parts = weights(&cx.options)?;
                let layout = wb_cgroup::detect_system()?;
                let names: Vec<String> = ["a", "b"].iter().map(|s| format!("wb-{}-{s}", cx.run_id)).collect();
                let mut planned = Vec::new();
                for n in &names {
                    planned.extend(wb_cgroup::planned_paths(&layout, n, &[Controller::Cpu])?);
                }
                let before = cg::facts_snapshot("before", cg::dir_facts(&planned));
                for n in &names {
                    let g = cg::create_group(&layout, n, &[Controller::Cpu])?;
                    cg::say_each(r, "host", &cg::mkdir_commands(&g), "");
                    self.groups.push(g);
                }
                r.say("host", "# cgroup layout", cg::layout_label(&layout));
                let mut after = cg::dir_facts(&planned);
                after.extend(self.weight_facts());
                cg::check_dirs_exist(r, &planned);
                let w: Vec<String> = self.groups.iter().map(|g| wb_cgroup::read_watched(&g.files_for(Watch::CpuWeight)).into_values().next().unwrap_or_default()).collect();
                r.check("both groups start with the same default weight", "equal", w.join(" and "), w[0] == w[1] && !w[0].is_empty());
                r.observe(before, cg::facts_snapshot("groups created", after));
            }
            "set-weights" => {
                self.need_groups()?;
                let (a, b) = self.parts;
                let before = self.weight_facts();
                for (g, part) in self.groups.iter().zip([a, b]) {
                    g.set_cpu_weight(part * WEIGHT_UNIT)?;
                }
                let after = self.weight_facts();
                for (n, g) in NAMES.iter().zip(&self.groups) {
                    cg::say_each(r, "host", &cg::echo_commands(&g.files_for(Watch::CpuWeight), &before, &after, &format!("{n}: ")), "");
                }
                r.say("host", "# weights (v2 cpu.weight scale; v1 cpu.shares = 2 + (weight − 1) × 262142 / 9999, as runc and systemd convert)", format!("A = {}, B = {}", a * WEIGHT_UNIT, b * WEIGHT_UNIT));
                for (n, (g, part)) in NAMES.iter().zip(self.groups.iter().zip([a, b])) {
                    r.check_eq(format!("{n}: weight read back (v2 scale)"), part * WEIGHT_UNIT, g.cpu_weight()?);
                }
                r.observe(cg::facts_snapshot("before", before), cg::facts_snapshot("weights set", after));
            }
            "start-hogs" => {
                let (cpu, note) = cg::choose_cpu(&hog::allowed_cpus(), &cg::other_runs_hogs());
                self.cpu = cpu;
                if let Some(note) = note {
                    r.say("workbench", "# which CPU", note);
                }
                let mut before = std::collections::BTreeMap::new();
                for n in NAMES {
                    before.insert(format!("hog {n}"), "not running".to_string());
                }
                for (i, n) in NAMES.iter().enumerate() {
                    let spec = Spec { pin_cpu: Some(self.cpu), ..Spec::cpu(format!("cpu-hog-{}", n.to_lowercase()), 1, HOG_SECONDS, &cx.workdir) };
                    let h = Hog::spawn(&spec)?;
                    r.say("host", format!("taskset -c {} workbench internal-hog --threads 1 &    # hog {n}: sched_setaffinity(0, {{CPU {}}}) then while (1) {{}}", self.cpu, self.cpu), format!("[{}] {}", i + 1, h.pid()));
                    self.hogs.push(h);
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
                let pids: Vec<i32> = self.hogs.iter().map(|h| h.pid()).collect();
                let (ca, cb) = (cg::proc_cpu(pids[0]), cg::proc_cpu(pids[1]));
                let used = cg::measure(cg::WINDOW, &[&ca, &cb])?;
                self.unweighted = used.clone();
                let mut after = std::collections::BTreeMap::new();
                let mut pinned = Vec::new();
                for (i, n) in NAMES.iter().enumerate() {
                    let cpus = crate::kernel::proc::status_field(pids[i], "Cpus_allowed_list").unwrap_or_default();
                    after.insert(format!("hog {n}"), format!("pid {}", pids[i]));
                    after.insert(format!("hog {n}: Cpus_allowed_list"), cpus.clone());
                    after.insert(format!("hog {n}: CPU use"), cg::pct(used[i]));
                    pinned.push(cpus);
                }
                after.insert("A : B".into(), ratio(used[0], used[1]));
                r.say("host", format!("top -b -d {:.1} -n 2 -p {},{}", cg::WINDOW.as_secs_f64(), pids[0], pids[1]), format!("  PID  %CPU\n{:>5}  {:.1}\n{:>5}  {:.1}", pids[0], used[0], pids[1], used[1]));
                let want = self.cpu.to_string();
                r.check("both hogs may run only on the same CPU (Cpus_allowed_list)", format!("{want} and {want}"), pinned.join(" and "), pinned.iter().all(|c| *c == want));
                let total = used[0] + used[1];
                r.check("together they use at most one CPU", "≤ 105%", cg::pct(total), total <= 105.0);
                r.check("in the same cgroup they split it evenly", "within 10 points", format!("{} vs {}", cg::pct(used[0]), cg::pct(used[1])), (used[0] - used[1]).abs() <= 10.0);
                r.observe(cg::facts_snapshot("before", before), cg::facts_snapshot("both hogs on one CPU", after));
            }
            "join" => {
                self.need_groups()?;
                self.need_hogs()?;
                let cpu = self.cpu;
                let snapshot = |s: &Self| -> std::collections::BTreeMap<String, String> {
                    let mut f = std::collections::BTreeMap::new();
                    for (n, (h, g)) in NAMES.iter().zip(s.hogs.iter().zip(&s.groups)) {
                        f.insert(format!("hog {n} (pid {}): cpu cgroup", h.pid()), cg::membership(h.pid(), g, Controller::Cpu));
                        f.insert(format!("hog {n}: Cpus_allowed_list"), crate::kernel::proc::status_field(h.pid(), "Cpus_allowed_list").unwrap_or_default());
                    }
                    f
                };
                let before = snapshot(self);
                for (h, g) in self.hogs.iter().zip(&self.groups) {
                    g.add_process(h.pid())?;
                    cg::say_each(r, "host", &cg::echo_into(g, h.pid()), "");
                }
                // On cgroup v2 the move may also change the hog's cpuset (when the
                // cpuset controller is on), and older kernels then reset its CPU
                // affinity to the new cpuset's CPUs: pin it again.
                for (n, h) in NAMES.iter().zip(&self.hogs) {
                    let now = crate::kernel::proc::status_field(h.pid(), "Cpus_allowed_list").unwrap_or_default();
                    if now != cpu.to_string() {
                        hog::pin(h.pid(), cpu)?;
                        r.say("host", format!("taskset -p -c {cpu} {}    # hog {n}", h.pid()), format!("the move reset its affinity to {now} (it joined another cpuset); pinned to CPU {cpu} again"));
                    }
                }
                let after = snapshot(self);
                for (n, (h, g)) in NAMES.iter().zip(self.hogs.iter().zip(&self.groups)) {
                    r.check_eq(format!("hog {n} is in group {n} (/proc/PID/cgroup)"), cg::proc_path(g), cg::membership(h.pid(), g, Controller::Cpu));
                    r.check_eq(format!("hog {n} still runs only on CPU {cpu}"), cpu.to_string(), crate::kernel::proc::status_field(h.pid(), "Cpus_allowed_list").unwrap_or_default());
                }
                r.observe(cg::facts_snapshot("before", before), cg::facts_snapshot("after", after));
            }
            "measure" => {
                self.need_groups()?;
                let (a, b) = self.parts;
                let (ga, gb) = (self.groups[0].clone(), self.groups[1].clone());
                let usage_facts = |ga: &Group, gb: &Group| {
                    let mut f = cg::facts("A: ", &ga.files_for(Watch::CpuStat));
                    f.extend(cg::facts("B: ", &gb.files_for(Watch::CpuStat)));
                    // Only CPU time matters here; throttling is the other lesson's.
                    f.retain(|k, _| k.ends_with("usage") || k.ends_with("usage_usec"));
                    f
                };
                let mut before = usage_facts(&ga, &gb);
                let unweighted = self.unweighted.clone();
                if unweighted.len() == 2 {
                    before.insert("hog A: CPU use".into(), cg::pct(unweighted[0]));
                    before.insert("hog B: CPU use".into(), cg::pct(unweighted[1]));
                    before.insert("A : B".into(), ratio(unweighted[0], unweighted[1]));
                }
                let (ua, ub) = (|| -> anyhow::Result<u64> { Ok(ga.cpu_usage_ns()?) }, || -> anyhow::Result<u64> { Ok(gb.cpu_usage_ns()?) });
                let idle_of = cg::cpu_idle(&[self.cpu]);
                let m = cg::measure(cg::WINDOW, &[&ua, &ub, &idle_of])?;
                let (used, idle) = (m[..2].to_vec(), m[2]);
                let mut after = usage_facts(&ga, &gb);
                after.insert("hog A: CPU use".into(), cg::pct(used[0]));
                after.insert("hog B: CPU use".into(), cg::pct(used[1]));
                after.insert("A : B".into(), ratio(used[0], used[1]));
                // The usage counter is the last CPU-stat file: cpuacct.usage (v1), cpu.stat (v2).
                let cat: Vec<String> = [&ga, &gb].iter().filter_map(|g| g.files_for(Watch::CpuStat).last().map(|f| f.path.display().to_string())).collect();
                r.say("host", format!("cat {}   # before and after {:.1} s", cat.join(" "), cg::WINDOW.as_secs_f64()), "");
                let total = used[0] + used[1];
                let share = if total > 0.0 { used[0] * 100.0 / total } else { 0.0 };
                let want = a as f64 * 100.0 / (a + b) as f64;
                r.say("host", "# A's part of the CPU = A / (A + B)", format!("measured {} (A {} + B {}); weights {a}:{b} give {}", cg::pct(share), cg::pct(used[0]), cg::pct(used[1]), cg::pct(want)));
                let others = (100.0 - idle - total).max(0.0);
                r.say("host", format!("# CPU {}: idle time in /proc/stat", self.cpu), format!("{} idle; other processes used {}", cg::pct(idle), cg::pct(others)));
                let v = split_verdict(share, want, total, idle);
                let mut actual = format!("{} ({})", cg::pct(share), ratio(used[0], used[1]));
                if v == Verdict::Inconclusive {
                    actual.push_str(&format!(" (the host is busy: A and B got only {} of CPU {}, other processes {})", cg::pct(total), self.cpu, cg::pct(others)));
                }
                r.check_verdict(format!("A's part of the contended CPU matches the weights (±{TOLERANCE_POINTS} points)"), format!("{} ({a}:{b})", cg::pct(want)), actual, v);
                r.check("together they still use at most one CPU", "≤ 105%", cg::pct(total), total <= 105.0 && total > 0.0);
                r.observe(cg::facts_snapshot("before (same group, equal weight)", before), cg::facts_snapshot(format!("after {:.1} s in weighted groups", cg::WINDOW.as_secs_f64()), after));
            }
            "remove" => {
                self.need_groups()?;
                cg::stop_hogs_and_remove(r, &NAMES, &mut self.hogs, &self.groups);
                self.groups.clear();
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    /// `--shell`: two new groups weighted like A and B, a shell in A pinned
    /// to the lesson's CPU (everything it starts inherits both).
    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        let (a, b) = self.parts;
        let cpu = self.cpu;
        let ga = cg::shell_group(&cx.run_id, "shell-a", &[Controller::Cpu])?;
        let gb = cg::shell_group(&cx.run_id, "shell-b", &[Controller::Cpu])?;
        ga.set_cpu_weight(a * WEIGHT_UNIT)?;
        gb.set_cpu_weight(b * WEIGHT_UNIT)?;
        let (da, db) = (cg::dir_of(&ga, Watch::CpuWeight), cg::dir_of(&gb, Watch::CpuWeight));
        let lines = vec![
            format!(
                "This shell runs in group A, {} ($A, {}), pinned to CPU {cpu} like everything it starts; group B, {} ($B, {}), is empty.",
                da.display(),
                cg::file_values(&ga, Watch::CpuWeight),
                db.display(),
                cg::file_values(&gb, Watch::CpuWeight)
            ),
            format!("Try: `while :; do :; done & while :; do :; done & echo $! > $B/cgroup.procs`, then `top`: the two loops split CPU {cpu} about {a}:{b}."),
        ];
        let env = vec![("A".into(), da.display().to_string()), ("B".into(), db.display().to_string())];
        cg::run_shell(cg::ShellSpec { lesson: cx.lesson, groups: vec![ga, gb], env, pin_cpu: Some(cpu), lines })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(w: &str) -> LessonOptions {
        LessonOptions { weights: Some(w.into()), ..Default::default() }
    }

    #[test]
    fn weights_option() {
        assert_eq!(weights(&LessonOptions::default()).unwrap(), (2, 1));
        assert_eq!(weights(&opts("1:3")).unwrap(), (1, 3));
        assert_eq!(weights(&opts(" 100 : 1 ")).unwrap(), (100, 1));
        for bad in ["abc", "2", "2:", ":1", "0:1", "1:0", "101:1", "-1:2", "2:1:1", "1.5:1", ""] {
            let e = weights(&opts(bad)).unwrap_err().to_string();
            assert!(e.starts_with("--weights must be two whole numbers from 1 to 100"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_split_off_the_weights_fails_unless_others_took_the_cpu() {
        let want = 200.0 / 3.0;
        // The weights hold: pass, however busy.
        assert_eq!(split_verdict(65.0, want, 100.0, 0.0), Verdict::Pass);
        assert_eq!(split_verdict(70.0, want, 12.0, 0.0), Verdict::Pass);
        // Weights never applied on an idle CPU: 50:50 of the whole CPU fails.
        assert_eq!(split_verdict(50.0, want, 99.0, 0.0), Verdict::Fail);
        // ...and on a CPU with room to spare, however little A and B got.
        assert_eq!(split_verdict(50.0, want, 20.0, 60.0), Verdict::Fail);
        // A sliver of a CPU others kept busy: inconclusive.
        assert_eq!(split_verdict(55.0, want, 20.0, 1.0), Verdict::Inconclusive);
        // Enough of it to judge: fails.
        assert_eq!(split_verdict(55.0, want, 40.0, 1.0), Verdict::Fail);
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(66.0, 33.0), "2.00 : 1");
        assert!(ratio(1.0, 0.0).contains("nothing"));
    }
}
