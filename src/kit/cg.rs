//! What the cgroup lessons share: finding a usable hierarchy, creating groups
//! that are recorded before they exist, turning watched cgroup files into
//! snapshot facts, and measuring CPU use over a time window.
//!
//! A control group is a directory in a cgroup filesystem; its files are the
//! knobs and counters. The lessons never spell those file names: the
//! `wb-cgroup` crate knows which files stand for a resource on cgroup v1
//! (`cpu.cfs_quota_us`, `memory.limit_in_bytes`...) and on v2 (`cpu.max`,
//! `memory.max`...), and the lesson shows whichever ones this host has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use wb_cgroup::{Controller, Group, Layout, Version, WatchedFile};

use crate::host::Host;
use crate::observe::Snapshot;
use crate::state::{self, Resource};

/// How long CPU use is sampled.
pub const WINDOW: Duration = Duration::from_millis(1500);

/// Preflight of every cgroup lesson: root, a cgroup filesystem, and the
/// controllers usable below a `workbench/` parent. Returns the layout.
pub fn require(host: &Host, controllers: &[Controller]) -> anyhow::Result<Layout> {
    host.require_root("creating cgroups under /sys/fs/cgroup and moving processes into them")?;
    let layout = wb_cgroup::detect_system()
        .map_err(|e| anyhow::anyhow!("{e}: mount the cgroup filesystems (systemd does) and try again"))?;
    let summary = layout.summary();
    for c in controllers {
        match summary.workbench.get(c.name()) {
            Some(Ok(_)) => {}
            Some(Err(why)) => anyhow::bail!("the {c} cgroup controller is not usable: {why}"),
            None => anyhow::bail!("the {c} cgroup controller is unknown to this host"),
        }
    }
    crate::host::features::require_writable_cgroups(&layout, controllers)?;
    Ok(layout)
}

/// "v1", "v2" or "hybrid (v1 controllers)" for narration.
pub fn layout_label(layout: &Layout) -> String {
    match layout {
        Layout::Hybrid { .. } => "hybrid (this lesson uses the v1 controller hierarchies)".into(),
        other => other.version_label().to_string(),
    }
}

/// Create `workbench/<name>`: every directory is written into the state file
/// first, then created, under the state lock.
pub fn create_group(layout: &Layout, name: &str, controllers: &[Controller]) -> anyhow::Result<Group> {
    let planned = wb_cgroup::planned_paths(layout, name, controllers)?;
    let records = planned.iter().map(|p| Resource::Cgroup { path: p.clone() }).collect();
    state::record_and_create(records, || -> anyhow::Result<Group> {
        Ok(wb_cgroup::create(layout, name, controllers)?)
    })
}

/// Remove a group now (killing what is left in it) and drop it from the state file.
pub fn remove_group(g: &Group) -> Vec<String> {
    g.paths()
        .into_iter()
        .filter_map(|p| state::release(&Resource::Cgroup { path: p }).err())
        .collect()
}

/// The shell commands that make a group, as a learner would type them. On
/// cgroup v2 the controllers are first enabled in workbench's own parent
/// (controllers are handed down top-down, and a group that hands them down
/// may hold no processes itself: processes live only in the leaves).
pub fn mkdir_commands(g: &Group) -> String {
    let mut lines = Vec::new();
    let v2: Vec<String> = g
        .controllers()
        .into_iter()
        .filter(|c| g.version_of(*c) == Some(Version::V2))
        .map(|c| format!("+{c}"))
        .collect();
    for p in g.paths() {
        let is_v2 = !v2.is_empty() && g.paths().last() == Some(&p);
        match p.parent() {
            Some(parent) if is_v2 => {
                lines.push(format!("mkdir -p {}", parent.display()));
                lines.push(format!(
                    "echo '{}' > {}",
                    v2.join(" "),
                    parent.join(wb_cgroup::files::CGROUP_SUBTREE_CONTROL).display()
                ));
                lines.push(format!("mkdir {}", p.display()));
            }
            _ => lines.push(format!("mkdir -p {}", p.display())),
        }
    }
    lines.join("\n")
}

/// Facts from watched files, keyed `<prefix><file>`; flat-keyed files such as
/// cpu.stat or memory.events become one fact per key (`cpu.stat nr_throttled`).
pub fn facts(prefix: &str, files: &[WatchedFile]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (label, value) in wb_cgroup::read_watched(files) {
        let lines: Vec<&str> = value.lines().collect();
        let flat = lines.len() > 1 && lines.iter().all(|l| l.split_whitespace().count() == 2);
        if flat {
            for l in lines {
                let mut it = l.split_whitespace();
                let (k, v) = (it.next().unwrap_or_default(), it.next().unwrap_or_default());
                out.insert(format!("{prefix}{label} {k}"), v.to_string());
            }
        } else {
            out.insert(format!("{prefix}{label}"), value.lines().collect::<Vec<_>>().join(" "));
        }
    }
    out
}

/// `echo VALUE > FILE` for every watched file whose value changed: the
/// classic commands equal to what the step just did, on this host's files.
pub fn echo_commands(
    files: &[WatchedFile],
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    prefix: &str,
) -> String {
    files
        .iter()
        .filter_map(|f| {
            let key = format!("{prefix}{}", f.label);
            let (b, a) = (before.get(&key), after.get(&key)?);
            (b != Some(a)).then(|| {
                let v = if a.contains(' ') { format!("'{a}'") } else { a.clone() };
                format!("echo {v} > {}", f.path.display())
            })
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Record several shell commands (one per line of `commands`) as transcript,
/// `output` going with the last one.
pub fn say_each(r: &mut crate::lesson::StepReport, place: &str, commands: &str, output: impl Into<String>) {
    let lines: Vec<&str> = commands.lines().filter(|l| !l.trim().is_empty()).collect();
    let output = output.into();
    for (i, l) in lines.iter().enumerate() {
        r.say(
            place,
            *l,
            if i + 1 == lines.len() {
                output.clone()
            } else {
                String::new()
            },
        );
    }
    if lines.is_empty() && !output.is_empty() {
        r.say(place, "", output);
    }
}

/// Scheduler state of every thread of a process ('R' running or runnable,
/// 'S' sleeping...), from /proc/PID/task/TID/stat.
pub fn thread_states(pid: i32) -> Vec<(i32, char)> {
    let mut out: Vec<(i32, char)> = per_thread(pid, "stat")
        .into_iter()
        .filter_map(|(tid, stat)| Some((tid, crate::kernel::proc::parse_state(&stat)?)))
        .collect();
    out.sort();
    out
}

/// The text of `/proc/PID/task/TID/FILE` for every thread TID of a process
/// (empty where a thread ended while it was read).
fn per_thread(pid: i32, file: &str) -> Vec<(i32, String)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let tid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
            Some((tid, std::fs::read_to_string(e.path().join(file)).unwrap_or_default()))
        })
        .collect()
}

/// What each watched file means, for the transcript.
pub fn meanings(files: &[WatchedFile]) -> String {
    files
        .iter()
        .map(|f| format!("{:<28} {}", f.label, f.meaning))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The check every cgroup lesson ends with: none of the group's directories
/// is left, and removing them reported no problem.
pub fn check_removed(r: &mut crate::lesson::StepReport, paths: &[PathBuf], problems: &[String]) {
    let left: Vec<String> = paths
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    r.check(
        "group directories removed",
        "none left",
        if left.is_empty() {
            "none left".into()
        } else {
            left.join(", ")
        },
        left.is_empty() && problems.is_empty(),
    );
}

/// The "create-group" step of a one-group lesson: mkdir the group
/// `wb-<run>-<suffix>` (said as the commands and the layout), list the files
/// of `watch` with their meanings (`what`: "the memory files"), and check its
/// directories exist. Returns the group, the snapshot before it, and the facts
/// after (its directories and the files of `watch`).
pub fn create_step(
    r: &mut crate::lesson::StepReport,
    run_id: &str,
    suffix: &str,
    controller: Controller,
    watch: wb_cgroup::Resource,
    what: &str,
) -> anyhow::Result<(Group, Snapshot, BTreeMap<String, String>)> {
    let layout = wb_cgroup::detect_system()?;
    let name = format!("wb-{run_id}-{suffix}");
    let planned = wb_cgroup::planned_paths(&layout, &name, &[controller])?;
    let before = facts_snapshot("before", dir_facts(&planned));
    let g = create_group(&layout, &name, &[controller])?;
    say_each(
        r,
        "host",
        &mkdir_commands(&g),
        format!("cgroup layout: {}", layout_label(&layout)),
    );
    let files = g.files_for(watch);
    r.say(
        "host",
        format!("# {what} in {}", g.paths()[0].display()),
        meanings(&files),
    );
    let mut facts = dir_facts(&planned);
    facts.extend(self::facts("", &files));
    check_dirs_exist(r, &planned);
    Ok((g, before, facts))
}

/// A check per directory that it exists.
pub fn check_dirs_exist(r: &mut crate::lesson::StepReport, paths: &[PathBuf]) {
    for p in paths {
        r.check(
            format!("{} exists", p.display()),
            "directory",
            if p.is_dir() { "directory" } else { "missing" },
            p.is_dir(),
        );
    }
}

/// The "remove" step's common part: remove the groups and say so (`first`, a
/// command said before the rmdirs, e.g. the kill of what is left), check no
/// directory is left, and return the directories' facts after.
pub fn remove_step(
    r: &mut crate::lesson::StepReport,
    groups: &[Group],
    first: Option<String>,
) -> BTreeMap<String, String> {
    let paths: Vec<PathBuf> = groups.iter().flat_map(|g| g.paths()).collect();
    let problems: Vec<String> = groups.iter().flat_map(remove_group).collect();
    let commands: Vec<String> = first
        .into_iter()
        .chain(paths.iter().map(|p| format!("rmdir {}", p.display())))
        .collect();
    say_each(r, "host", &commands.join("\n"), problems.join("\n"));
    let after = dir_facts(&paths);
    check_removed(r, &paths, &problems);
    after
}

/// The last step of a lesson with named hogs in groups: kill each hog, remove
/// the groups, check no hog survived, and show the groups and hogs before and
/// after.
pub fn stop_hogs_and_remove(
    r: &mut crate::lesson::StepReport,
    names: &[&str],
    hogs: &mut [super::hog::Hog],
    groups: &[Group],
) {
    let paths: Vec<PathBuf> = groups.iter().flat_map(|g| g.paths()).collect();
    let pids: Vec<i32> = hogs.iter().map(|h| h.pid()).collect();
    let mut before = dir_facts(&paths);
    for (n, p) in names.iter().zip(&pids) {
        before.insert(format!("hog {n}"), format!("pid {p} running"));
    }
    let mut after_hogs = Vec::new();
    for (n, h) in names.iter().zip(hogs.iter_mut()) {
        let st = h.kill();
        r.say(
            "host",
            format!("kill -KILL {}", h.pid()),
            super::hog::describe_status(&st),
        );
        after_hogs.push((
            format!("hog {n}"),
            format!("gone: {}", super::hog::describe_status(&st)),
        ));
    }
    let mut after = remove_step(r, groups, None);
    after.extend(after_hogs);
    let alive: Vec<i32> = pids
        .iter()
        .copied()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .collect();
    r.check("both hogs are gone", "[]", format!("{alive:?}"), alive.is_empty());
    r.observe(facts_snapshot("before", before), facts_snapshot("after", after));
}

/// "present" / "absent" for each group directory.
pub fn dir_facts(paths: &[PathBuf]) -> BTreeMap<String, String> {
    paths
        .iter()
        .map(|p| {
            (
                p.display().to_string(),
                if p.is_dir() {
                    "present".to_string()
                } else {
                    "absent".to_string()
                },
            )
        })
        .collect()
}

/// A snapshot holding only facts.
pub fn facts_snapshot(label: impl Into<String>, facts: BTreeMap<String, String>) -> Snapshot {
    Snapshot {
        label: label.into(),
        facts,
        ..Default::default()
    }
}

/// Sample counters (nanoseconds of CPU time) at the start and end of `window`;
/// returns each one's use in percent of one CPU.
pub fn measure(window: Duration, counters: &[&dyn Fn() -> anyhow::Result<u64>]) -> anyhow::Result<Vec<f64>> {
    let start: Vec<u64> = counters.iter().map(|c| c()).collect::<anyhow::Result<_>>()?;
    let t0 = Instant::now();
    std::thread::sleep(window);
    let end: Vec<u64> = counters.iter().map(|c| c()).collect::<anyhow::Result<_>>()?;
    let elapsed = t0.elapsed().as_nanos() as f64;
    Ok(start
        .iter()
        .zip(&end)
        .map(|(a, b)| b.saturating_sub(*a) as f64 * 100.0 / elapsed)
        .collect())
}

/// CPU time of a process from /proc (what `top` uses), as a counter for [`measure`].
pub fn proc_cpu(pid: i32) -> impl Fn() -> anyhow::Result<u64> {
    move || crate::kernel::proc::cpu_time_ns(pid).with_context(|| format!("read /proc/{pid}/stat"))
}

/// Idle time of `cpus` in nanoseconds, summed (`idle` + `iowait` of their
/// `cpuN` lines in /proc/stat), from the given /proc/stat text (pure).
/// `None` when a CPU has no line.
pub fn idle_ns_of(proc_stat: &str, cpus: &[usize], ticks_per_second: u64) -> Option<u64> {
    let mut total = 0u64;
    for cpu in cpus {
        let name = format!("cpu{cpu}");
        let line = proc_stat
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
        let f: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        total += f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    }
    Some(total * 1_000_000_000 / ticks_per_second.max(1))
}

/// The idle time of `cpus` as a counter for [`measure`]: the free CPU during
/// a window, in percent of one CPU (200% = two idle CPUs).
pub fn cpu_idle(cpus: &[usize]) -> impl Fn() -> anyhow::Result<u64> {
    let cpus = cpus.to_vec();
    move || {
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|h| *h > 0)
            .unwrap_or(100) as u64;
        let text = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
        idle_ns_of(&text, &cpus, hz).with_context(|| format!("no line for CPUs {cpus:?} in /proc/stat"))
    }
}

/// A process another live workbench run recorded that has busy threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherHog {
    /// `run 1a2b3c (cgroup-cpu-quota)`
    pub run: String,
    pub pid: i32,
    /// Threads in state R (running or runnable).
    pub busy_threads: usize,
    /// Its `Cpus_allowed_list` ("1", "0-1").
    pub cpus: String,
}

/// The processes of other live workbench runs (from their state files) that
/// have runnable threads now: the hogs of a class running the cgroup
/// lessons at once. (A throttled thread is runnable too: it counts.)
pub fn other_runs_hogs() -> Vec<OtherHog> {
    let mut out = Vec::new();
    for run in state::other_live_runs() {
        for r in &run.resources {
            let Resource::Process { pid, start_time } = r else {
                continue;
            };
            if !crate::kernel::proc::is_same_process(*pid, *start_time) {
                continue;
            }
            let busy = thread_states(*pid).iter().filter(|(_, s)| *s == 'R').count();
            if busy > 0 {
                let cpus = crate::kernel::proc::status_field(*pid, "Cpus_allowed_list").unwrap_or_default();
                out.push(OtherHog {
                    run: format!("run {} ({})", run.run_id, run.lesson),
                    pid: *pid,
                    busy_threads: busy,
                    cpus,
                });
            }
        }
    }
    out
}

/// The CPU to pin a lesson's competing hogs to (pure): the allowed CPU with the fewest busy
/// threads of other workbench runs pinned to it alone (`Cpus_allowed_list`
/// is just that CPU); the last one on a tie (the first is where the host's
/// own work tends to go). Returns the CPU and, when others were counted, a
/// line for the transcript.
pub fn choose_cpu(allowed: &[usize], others: &[OtherHog]) -> (usize, Option<String>) {
    let pinned = |cpu: usize| {
        others
            .iter()
            .filter(|o| o.cpus == cpu.to_string())
            .map(|o| o.busy_threads)
            .sum::<usize>()
    };
    let cpu = allowed.iter().rev().copied().min_by_key(|c| pinned(*c)).unwrap_or(0);
    if others.is_empty() {
        return (cpu, None);
    }
    let counts: Vec<String> = allowed.iter().map(|c| format!("CPU {c}: {}", pinned(*c))).collect();
    (
        cpu,
        Some(format!(
            "busy threads of other workbench runs pinned to each CPU — {}: CPU {cpu} has the fewest",
            counts.join(", ")
        )),
    )
}

/// `49.8%`.
pub fn pct(p: f64) -> String {
    format!("{p:.1}%")
}

/// The leading number of a fact such as "49.8%" or "2.01 : 1".
pub fn leading_number(s: &str) -> Option<f64> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(s.len());
    s[..end].parse().ok()
}

/// Where `pid` sits for `controller`: the v1 hierarchy's path, or the v2 one.
pub fn membership(pid: i32, g: &Group, controller: Controller) -> String {
    let Ok(m) = wb_cgroup::read_proc_cgroup(pid) else {
        return "(process gone)".into();
    };
    let v2 = g.version_of(controller) == Some(Version::V2);
    m.iter()
        .find(|e| {
            if v2 {
                e.is_unified()
            } else {
                e.controllers.iter().any(|c| c == controller.name())
            }
        })
        .map(|e| e.path.clone())
        .unwrap_or_else(|| "(not listed)".into())
}

/// The group's path as /proc/PID/cgroup shows it: `/workbench/<name>`.
pub fn proc_path(g: &Group) -> String {
    format!("/{}/{}", wb_cgroup::PARENT, g.name())
}

/// Try to rmdir a group directory that still has processes: the kernel
/// refuses with EBUSY. Returns the error text (or "removed" if it was not busy).
pub fn rmdir_while_populated(dir: &Path) -> (String, Option<i32>) {
    match std::fs::remove_dir(dir) {
        Ok(()) => ("removed".into(), None),
        Err(e) => {
            let code = e.raw_os_error();
            let msg = code
                .map(|c| nix::errno::Errno::from_raw(c).desc().to_string())
                .unwrap_or_else(|| e.to_string());
            (format!("rmdir: failed to remove '{}': {msg}", dir.display()), code)
        }
    }
}

/// The pids of every thread of a process, and the cgroup path each thread is in for `controller`.
pub fn thread_memberships(pid: i32, g: &Group, controller: Controller) -> Vec<(i32, String)> {
    let v2 = g.version_of(controller) == Some(Version::V2);
    let mut out: Vec<(i32, String)> = per_thread(pid, "cgroup")
        .into_iter()
        .map(|(tid, text)| {
            let path = wb_cgroup::parse_proc_cgroup(&text)
                .ok()
                .and_then(|m| {
                    m.into_iter().find(|e| {
                        if v2 {
                            e.is_unified()
                        } else {
                            e.controllers.iter().any(|c| c == controller.name())
                        }
                    })
                })
                .map(|e| e.path)
                .unwrap_or_default();
            (tid, path)
        })
        .collect();
    out.sort();
    out
}

// ---- `--shell`: an interactive shell inside a limited group --------------------
//
// The tutorials hand the learner a shell *inside* the cgroup (`echo $$ >
// .../cgroup.procs`, then run a hog from it). `--shell` does that at the end
// of a cgroup lesson: a fresh group under workbench's parent with the lesson's
// limit, recorded in the state file like every group; /bin/sh started in it
// (it writes itself into cgroup.procs between fork and exec, before it runs
// anything); and when the shell exits — or workbench is signalled — the group
// is removed, killing whatever the learner left running in it.

/// The shell of `--shell`.
pub const SHELL: &str = "/bin/sh";

/// What a cgroup lesson's `--shell` starts the shell in, and what it tells the learner.
pub struct ShellSpec {
    pub lesson: &'static str,
    /// Every group made for the shell, all removed when it exits; the shell starts in the first.
    pub groups: Vec<Group>,
    /// Names for group directories in the shell's environment (`CG`, or `A` and `B`).
    pub env: Vec<(String, String)>,
    /// Pin the shell, and so everything it starts, to this CPU.
    pub pin_cpu: Option<usize>,
    /// Printed before the shell starts: where it is, what to try.
    pub lines: Vec<String>,
}

/// A group `workbench/wb-<run>-<suffix>` for the shell, recorded before it is made.
pub fn shell_group(run_id: &str, suffix: &str, controllers: &[Controller]) -> anyhow::Result<Group> {
    let layout = wb_cgroup::detect_system()?;
    create_group(&layout, &format!("wb-{run_id}-{suffix}"), controllers)
}

/// `echo PID > cgroup.procs` in each directory of `g`, one line each: how the
/// tutorial moves a process into a group.
pub fn echo_into(g: &Group, pid: i32) -> String {
    g.paths()
        .iter()
        .map(|p| format!("echo {pid} > {}", p.join(wb_cgroup::files::CGROUP_PROCS).display()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Move process `pid` (`who`: "hog", "shell") into `g`, shown as the
/// tutorial's `echo`s: its cgroups and the `watch` files of the group before
/// and after, for `r.observe`.
pub fn join_step(
    r: &mut crate::lesson::StepReport,
    g: &Group,
    pid: i32,
    who: &str,
    watch: wb_cgroup::Resource,
) -> anyhow::Result<(Snapshot, Snapshot)> {
    let files = g.files_for(watch);
    let look = || -> anyhow::Result<Snapshot> {
        let mut s = crate::observe::capture(
            format!("{who} (pid {pid})"),
            pid,
            crate::observe::Capture {
                cgroups: true,
                ..crate::observe::Capture::FACTS
            },
        )?;
        s.facts = facts("", &files);
        Ok(s)
    };
    let before = look()?;
    g.add_process(pid)?;
    let after = look()?;
    say_each(r, "host", &echo_into(g, pid), String::new());
    Ok((before, after))
}

/// The group of a one-group lesson's `--shell`: `workbench/wb-<run>-shell`
/// with `controller`, given the lesson's limit by `set`, and the directory of
/// its `watch` files (the shell's `$CG`).
pub fn limited_shell_group(
    run_id: &str,
    controller: Controller,
    watch: wb_cgroup::Resource,
    set: impl FnOnce(&Group) -> wb_cgroup::Result<()>,
) -> anyhow::Result<(Group, PathBuf)> {
    let g = shell_group(run_id, "shell", &[controller])?;
    set(&g)?;
    let dir = dir_of(&g, watch);
    Ok((g, dir))
}

/// `--shell` of a one-group lesson: the shell in `g`, `$CG` its directory
/// `dir`, `lines` printed first.
pub fn shell_in(lesson: &'static str, g: Group, dir: &Path, lines: Vec<String>) -> anyhow::Result<()> {
    run_shell(ShellSpec {
        lesson,
        groups: vec![g],
        env: vec![("CG".into(), dir.display().to_string())],
        pin_cpu: None,
        lines,
    })
}

/// The directory of a group that holds a resource's files: on v1 the
/// controller's own hierarchy (cpu, not cpuacct), on v2 the group's one directory.
pub fn dir_of(g: &Group, what: wb_cgroup::Resource) -> PathBuf {
    g.files_for(what)
        .first()
        .and_then(|f| f.path.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| g.paths()[0].clone())
}

/// "cpu.max 50000 100000" or "cpu.cfs_quota_us 50000, cpu.cfs_period_us 100000":
/// the files behind `what` with their values, as this host names them.
pub fn file_values(g: &Group, what: wb_cgroup::Resource) -> String {
    wb_cgroup::read_watched(&g.files_for(what))
        .into_iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The prompt of a cgroup lesson's shell. dash (Debian's /bin/sh) expands no
/// backslash escapes in PS1, only parameters, so this one has none.
pub fn shell_prompt(lesson: &str) -> String {
    format!("[workbench {lesson}] $PWD# ")
}

/// Start the shell in the first group, wait for it, then remove every group
/// of the spec (killing what is left in them) and say so.
pub fn run_shell(spec: ShellSpec) -> anyhow::Result<()> {
    use std::io::Write;
    let first = spec.groups.first().context("no group for the shell")?;
    let mut env: Vec<(String, String)> = super::shell_env(spec.lesson)
        .into_iter()
        .filter(|(k, _)| k != "PS1")
        .collect();
    env.push(("PS1".into(), shell_prompt(spec.lesson)));
    env.extend(spec.env.iter().cloned());
    let procs: Vec<PathBuf> = first
        .paths()
        .iter()
        .map(|p| p.join(wb_cgroup::files::CGROUP_PROCS))
        .collect();
    let mut out = std::io::stdout();
    for l in &spec.lines {
        let _ = writeln!(out, "{l}");
    }
    let _ = out.flush();
    let (mut child, record) = spawn_in_group(&procs, &env, spec.pin_cpu)?;
    let shell_pid = child.id() as i32;
    let status = child.wait();
    // SIGTERM or SIGHUP meanwhile: the signal thread is removing the group; let it finish.
    crate::state::signals::stop_if_caught();
    state::forget(&record);
    reclaim_terminal(shell_pid);
    let left: std::collections::BTreeSet<i32> =
        spec.groups.iter().flat_map(|g| g.procs().unwrap_or_default()).collect();
    let mut problems = Vec::new();
    for g in &spec.groups {
        problems.extend(remove_group(g));
    }
    let status = match status {
        Ok(st) => super::hog::describe_status(&st),
        Err(e) => format!("wait: {e}"),
    };
    let killed = match left.len() {
        0 => String::new(),
        n => format!(
            "killed what was left in it (pid{} {}), ",
            if n == 1 { "" } else { "s" },
            left.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ")
        ),
    };
    let dirs: Vec<String> = spec
        .groups
        .iter()
        .flat_map(|g| g.paths())
        .map(|p| p.display().to_string())
        .collect();
    let _ = writeln!(
        out,
        "workbench: the shell ended ({status}); {killed}removed {}",
        dirs.join(", ")
    );
    anyhow::ensure!(
        problems.is_empty(),
        "removing the shell's groups: {}",
        problems.join("; ")
    );
    Ok(())
}

/// fork; in the child write "0" (the writer itself) to each `cgroup.procs`,
/// pin it to a CPU if asked, then exec the shell: it is in the group before
/// it runs a single instruction of its own. Recorded in the state file.
fn spawn_in_group(
    procs: &[PathBuf],
    env: &[(String, String)],
    pin: Option<usize>,
) -> anyhow::Result<(std::process::Child, Resource)> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let files: Vec<std::ffi::CString> = procs
        .iter()
        .map(|p| std::ffi::CString::new(p.as_os_str().as_bytes()))
        .collect::<Result<_, _>>()
        .context("a cgroup path contains NUL")?;
    let cpuset = pin.map(super::hog::cpu_set).transpose()?;
    let parent = nix::unistd::getpid().as_raw();
    let mut cmd = std::process::Command::new(SHELL);
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    // SAFETY: the closure runs in the forked child and makes only raw system
    // calls (prctl, getppid, open, write, close, sched_setaffinity), which are
    // async-signal-safe; nothing allocates.
    unsafe {
        cmd.pre_exec(move || {
            super::hog::die_with_parent(parent)?;
            // echo 0 > cgroup.procs: PID 0 means "the writing process".
            for f in &files {
                let fd = libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, c"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if n != 1 {
                    return Err(err);
                }
            }
            if let Some(set) = &cpuset {
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), set)?;
            }
            Ok(())
        });
    }
    let into = procs
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    state::track(|| -> anyhow::Result<_> {
        let child = cmd
            .spawn()
            .with_context(|| format!("start {SHELL} with its PID written to {into}"))?;
        let pid = child.id() as i32;
        let r = Resource::Process {
            pid,
            start_time: crate::kernel::proc::start_time(pid).unwrap_or(0),
        };
        Ok(((child, r.clone()), r))
    })
}

/// An interactive shell with job control makes its own process group the
/// terminal's foreground group. If it died without handing the terminal back
/// (the OOM killer may pick it), take it back for workbench's last lines.
fn reclaim_terminal(shell_pid: i32) {
    // SAFETY: plain terminal ioctls on fd 0; SIGTTOU is ignored around
    // tcsetpgrp because a background process changing the foreground gets it.
    unsafe {
        if libc::isatty(0) != 1 || libc::tcgetpgrp(0) != shell_pid {
            return;
        }
        let old = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        libc::tcsetpgrp(0, libc::getpgrp());
        libc::signal(libc::SIGTTOU, old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_fewest_others_are_pinned_to() {
        let hog = |cpus: &str, n: usize| OtherHog {
            run: "run x (cpu-shares)".into(),
            pid: 1,
            busy_threads: n,
            cpus: cpus.into(),
        };
        // Alone: the last CPU, as before, and nothing to say.
        assert_eq!(choose_cpu(&[0, 1], &[]), (1, None));
        // Two other runs' hogs on CPU 1: CPU 0.
        let (cpu, note) = choose_cpu(&[0, 1], &[hog("1", 1), hog("1", 1), hog("0-1", 2)]);
        assert_eq!(cpu, 0);
        assert_eq!(
            note.unwrap(),
            "busy threads of other workbench runs pinned to each CPU — CPU 0: 0, CPU 1: 2: CPU 0 has the fewest"
        );
        // A tie: the last.
        assert_eq!(choose_cpu(&[0, 1, 2], &[hog("0", 1), hog("2", 1)]).0, 1);
        assert_eq!(choose_cpu(&[0, 1], &[hog("0", 1), hog("1", 1)]).0, 1);
    }

    fn wf(dir: &Path, name: &str) -> WatchedFile {
        WatchedFile {
            path: dir.join(name),
            label: name.into(),
            meaning: "m".into(),
        }
    }

    #[test]
    fn flat_keyed_files_become_one_fact_per_key() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("cpu.stat"),
            "nr_periods 12\nnr_throttled 9\nthrottled_time 812\n",
        )
        .unwrap();
        std::fs::write(t.path().join("cpu.cfs_quota_us"), "50000\n").unwrap();
        std::fs::write(t.path().join("cpu.max"), "50000 100000\n").unwrap();
        let files = [
            wf(t.path(), "cpu.stat"),
            wf(t.path(), "cpu.cfs_quota_us"),
            wf(t.path(), "cpu.max"),
            wf(t.path(), "gone"),
        ];
        let f = facts("A: ", &files);
        assert_eq!(f["A: cpu.stat nr_throttled"], "9");
        assert_eq!(f["A: cpu.stat nr_periods"], "12");
        assert_eq!(f["A: cpu.cfs_quota_us"], "50000");
        assert_eq!(f["A: cpu.max"], "50000 100000");
        assert_eq!(f["A: gone"], "(missing)");
        assert!(!f.contains_key("A: cpu.stat"));
    }

    #[test]
    fn echo_commands_name_changed_files_only() {
        let d = Path::new("/sys/fs/cgroup/x");
        let files = [wf(d, "cpu.cfs_quota_us"), wf(d, "cpu.cfs_period_us"), wf(d, "cpu.max")];
        let before: BTreeMap<String, String> = [
            ("cpu.cfs_quota_us".into(), "-1".into()),
            ("cpu.cfs_period_us".into(), "100000".into()),
            ("cpu.max".into(), "max 100000".into()),
        ]
        .into();
        let after: BTreeMap<String, String> = [
            ("cpu.cfs_quota_us".into(), "50000".into()),
            ("cpu.cfs_period_us".into(), "100000".into()),
            ("cpu.max".into(), "50000 100000".into()),
        ]
        .into();
        assert_eq!(
            echo_commands(&files, &before, &after, ""),
            "echo 50000 > /sys/fs/cgroup/x/cpu.cfs_quota_us\necho '50000 100000' > /sys/fs/cgroup/x/cpu.max"
        );
    }

    #[test]
    fn shell_prompt_needs_no_backslash_escapes() {
        let p = shell_prompt("pids-limit");
        assert_eq!(p, "[workbench pids-limit] $PWD# ");
        assert!(!p.contains('\\'), "dash would print a backslash escape literally: {p}");
    }

    #[test]
    fn idle_time_of_some_cpus() {
        let stat = "cpu  10 0 10 900 100 0 0 0 0 0\ncpu0 5 0 5 400 50 0 0 0 0 0\ncpu1 5 0 5 500 50 0 0 0 0 0\nintr 1\n";
        // idle + iowait, 100 ticks a second.
        assert_eq!(idle_ns_of(stat, &[1], 100), Some(5_500_000_000));
        assert_eq!(idle_ns_of(stat, &[0, 1], 100), Some(10_000_000_000));
        assert_eq!(idle_ns_of(stat, &[2], 100), None);
        // The aggregate `cpu` line is never taken for `cpu0`.
        assert_eq!(
            idle_ns_of("cpu 1 1 1 999 0\ncpu0 0 0 0 1 0\n", &[0], 1),
            Some(1_000_000_000)
        );
    }

    #[test]
    fn leading_numbers() {
        assert_eq!(leading_number("49.8%"), Some(49.8));
        assert_eq!(leading_number("2.01 : 1"), Some(2.01));
        assert_eq!(leading_number("abc"), None);
    }

    #[test]
    fn measure_reports_percent_of_one_cpu() {
        // A counter that grows by exactly the elapsed time is 100% of one CPU.
        let t0 = Instant::now();
        let wall = move || -> anyhow::Result<u64> { Ok(t0.elapsed().as_nanos() as u64) };
        let idle = || -> anyhow::Result<u64> { Ok(7) };
        // The counters are read just before and after the clock; on a busy or
        // emulated CPU (scripts/v2-vm) the thread may lose the CPU in between
        // for a scheduler tick or two, hence the margin (a wrong unit or factor
        // would still be far off).
        let v = measure(Duration::from_millis(200), &[&wall, &idle]).unwrap();
        assert!((90.0..=110.0).contains(&v[0]), "{v:?}");
        assert_eq!(v[1], 0.0);
    }
}
