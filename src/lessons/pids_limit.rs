//! pids-limit: pids.max caps the number of tasks in a group; forks beyond it fail.
//!
//! The pids controller counts the tasks (processes and threads) in a group and
//! its descendants. When a fork or clone would make the count exceed pids.max,
//! the kernel refuses it with EAGAIN ("Resource temporarily unavailable") and
//! counts the refusal in pids.events. It is the cgroup answer to fork bombs.
//! The files have the same names on cgroup v1 and v2.

use std::time::Duration;

use wb_cgroup::{Controller, Group, Resource as Watch};

use crate::kit::cg;
use crate::kit::hog::{self, Hog, Spec};
use crate::host::Host;
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};

pub const DEF: LessonDef = LessonDef::of::<PidsLimit>(preflight).shell("in a new cgroup with the lesson's limit").spots(&[
    // After "fork" the shell has exited; its sleeps are orphans, not our children.
    ("fork", Spot::InGroups(4)),
]);

pub const DEFAULT_PIDS_MAX: u64 = 5;
pub const MAX_PIDS_MAX: u64 = 100;
/// How long each background `sleep` of the shell lasts (they are killed sooner).
const SLEEP_SECONDS: u32 = 30;

/// Validate `--pids-max`: 1 to 100.
pub fn pids_max(opts: &LessonOptions) -> anyhow::Result<u64> {
    let n = opts.pids_max.unwrap_or(DEFAULT_PIDS_MAX);
    if !(1..=MAX_PIDS_MAX).contains(&n) {
        anyhow::bail!("--pids-max must be between 1 and {MAX_PIDS_MAX} (the lesson forks a few more than that), got {n}");
    }
    Ok(n)
}

/// The shell tries `tries` background forks, one `sleep` each, reporting every success.
pub fn fork_script(tries: u64) -> String {
    format!(
        "read go\ni=0\nwhile [ $i -lt {tries} ]; do\n  i=$((i+1))\n  sleep {SLEEP_SECONDS} &\n  echo \"fork $i: started sleep, pid $!\"\ndone\necho \"all {tries} forks succeeded\"\n"
    )
}

fn preflight(host: &Host, opts: &LessonOptions) -> anyhow::Result<()> {
    pids_max(opts)?;
    cg::require(host, &[Controller::Pids])?;
    host.require_static_busybox()?;
    Ok(())
}

#[derive(Default)]
struct PidsLimit {
    group: Option<Group>,
    shell: Option<Hog>,
    max: u64,
}

impl PidsLimit {
    fn group(&self) -> anyhow::Result<&Group> {
        self.group.as_ref().ok_or_else(|| anyhow::anyhow!("no group: the create-group step did not run"))
    }
}

const SHELL_FACT: &str = "shell";
const STARTED_FACT: &str = "background sleeps started";

impl Lesson for PidsLimit {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        match step {
            "create-group" => {
                self.max = pids_max(&cx.options)?;
                let (g, before, facts) = cg::create_step(r, &cx.run_id, "pids", Controller::Pids, Watch::Pids, "the pids files")?;
                r.check("a new group has no task limit", "max", g.pids_max()?.map_or("max".to_string(), |n| n.to_string()), g.pids_max()?.is_none());
                r.observe(before, cg::facts_snapshot("group created", facts));
                self.group = Some(g);
            }
            "set-max" => {
                let max = self.max;
                let g = self.group()?;
                let files = g.files_for(Watch::Pids);
                let before = cg::facts("", &files);
                g.set_pids_max(max)?;
                let after = cg::facts("", &files);
                cg::say_each(r, "host", &cg::echo_commands(&files, &before, &after, ""), String::new());
                r.check_eq("pids.max reads back", Some(max).map(|n| n.to_string()).unwrap_or_default(), g.pids_max()?.map_or("max".into(), |n| n.to_string()));
                r.observe(cg::facts_snapshot("before", before), cg::facts_snapshot("limit set", after));
            }
            "start-shell" => {
                // No chroot here: busybox sh opens /dev/null for every background
                // job, and a rootfs under /run (a nodev tmpfs on systemd hosts)
                // cannot offer a usable one.
                let busybox = cx.host.require_static_busybox()?.to_path_buf();
                let script = fork_script(self.max + 2);
                let spec = Spec::gated_shell("fork-shell", &busybox, None, &script, 30, &cx.workdir);
                let h = Hog::spawn(&spec)?;
                let pid = h.pid();
                self.shell = Some(h);
                r.say("host", format!("{} sh -c '...' &    # waits on stdin before it starts", busybox.display()), format!("[1] {pid}\n{}", script.trim_end()));
                let g = self.group()?.clone();
                let (before, after) = cg::join_step(r, &g, pid, "shell", Watch::Pids)?;
                r.check_eq("tasks in the group (pids.current): the shell", 1, g.pids_current()?);
                r.check_eq("/proc/PID/cgroup: the shell's pids cgroup", cg::proc_path(&g), cg::membership(pid, &g, Controller::Pids));
                r.observe(before, after);
            }
            "fork" => {
                let max = self.max;
                let g = self.group()?.clone();
                let files = g.files_for(Watch::Pids);
                let h = self.shell.as_mut().ok_or_else(|| anyhow::anyhow!("no shell: the start-shell step did not run"))?;
                let pid = h.pid();
                let mut before = cg::facts("", &files);
                before.insert(SHELL_FACT.into(), format!("pid {pid}, waiting"));
                before.insert(STARTED_FACT.into(), "0".into());
                let refused_before = g.pids_max_events()?;
                h.release()?;
                let Some(status) = h.wait_timeout(Duration::from_secs(10)) else {
                    h.kill();
                    anyhow::bail!("the shell did not finish its forks within 10 s (killed it)");
                };
                let (out, err) = h.output();
                let started = out.lines().filter(|l| l.starts_with("fork ")).count() as u64;
                let mut shown = out.trim_end().to_string();
                if !err.trim().is_empty() {
                    shown.push('\n');
                    shown.push_str(err.trim_end());
                }
                shown.push_str(&format!("\n[{}]", hog::describe_status(&status)));
                r.say("sh", format!("for i in $(seq {}); do sleep {SLEEP_SECONDS} & done", max + 2), shown);
                let mut after = cg::facts("", &files);
                after.insert(SHELL_FACT.into(), hog::describe_status(&status));
                after.insert(STARTED_FACT.into(), started.to_string());
                let refused = g.pids_max_events()?;
                let current = g.pids_current()?;
                r.check("the shell's fork was refused", "sh: can't fork: Resource temporarily unavailable (EAGAIN)", err.trim().to_string(), err.contains("can't fork") && !out.contains("succeeded"));
                r.check_eq("background sleeps started (pids.max minus the shell)", max - 1, started);
                r.check("pids.events max counted the refusal", format!("> {refused_before}"), refused.to_string(), refused > refused_before);
                r.check("tasks in the group never exceeded pids.max", format!("≤ {max}"), current.to_string(), current <= max);
                r.observe(cg::facts_snapshot("before the forks", before), cg::facts_snapshot("after", after));
            }
            "remove" => {
                let g = self.group()?.clone();
                let paths = g.paths();
                let left_procs = g.procs()?;
                let mut before = cg::dir_facts(&paths);
                before.insert("processes in the group".into(), format!("{left_procs:?}"));
                cg::say_each(r, "host", &format!("cat {}", paths[0].join(wb_cgroup::files::CGROUP_PROCS).display()), left_procs.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"));
                let kill = format!("kill -KILL $(cat {})", paths[0].join(wb_cgroup::files::CGROUP_PROCS).display());
                let mut after = cg::remove_step(r, &[g], Some(kill));
                // killed orphans are zombies until init reaps them: those count as gone
                let alive: Vec<i32> = left_procs.iter().copied().filter(|p| crate::kernel::proc::is_running(*p)).collect();
                after.insert("processes in the group".into(), format!("{alive:?}"));
                r.check("the orphaned sleeps are gone", "[]", format!("{alive:?}"), alive.is_empty());
                r.observe(cg::facts_snapshot("before", before), cg::facts_snapshot("after", after));
                self.group = None;
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    /// `--shell`: a new group with the lesson's pids.max and a shell in it.
    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        let max = self.max;
        let (g, dir) = cg::limited_shell_group(&cx.run_id, Controller::Pids, Watch::Pids, |g| g.set_pids_max(max))?;
        let lines = vec![
            format!("This shell runs in the cgroup {} ($CG): pids.max {max}, and the shell itself is one of those tasks.", dir.display()),
            format!("Try: `i=0; while [ $i -lt {max} ]; do sleep 100 & i=$((i+1)); done` (fork number {max} fails), then `read n < $CG/pids.current; echo $n` (cat would need a fork too)."),
        ];
        cg::shell_in(cx.lesson, g, &dir, lines)
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_max_option() {
        assert_eq!(pids_max(&LessonOptions::default()).unwrap(), 5);
        for ok in [1, 42, 100] {
            assert_eq!(pids_max(&LessonOptions { pids_max: Some(ok), ..Default::default() }).unwrap(), ok);
        }
        for bad in [0, 101, u64::MAX] {
            let e = pids_max(&LessonOptions { pids_max: Some(bad), ..Default::default() }).unwrap_err().to_string();
            assert!(e.contains("--pids-max must be between 1 and 100"), "{e}");
        }
    }

    #[test]
    fn script_is_bounded_and_gated() {
        let s = fork_script(7);
        assert!(s.starts_with("read go\n"));
        assert!(s.contains("-lt 7 ") && s.contains("sleep 30 &"), "{s}");
    }
}
