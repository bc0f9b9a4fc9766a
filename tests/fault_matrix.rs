//! The fault matrix: every lesson of `workbench::lessons::ALL`, paused after
//! every step at which `--step` pauses (after step 1, 2, …, last-1; the runner
//! does not pause after the last step, `the_runner_pauses_only_between_steps`
//! holds it to that), is ended three ways:
//!
//! - SIGINT: workbench removes what the run created and exits 130;
//! - SIGTERM: the same, exit 143;
//! - SIGKILL: nothing is removed, the state file stays; `workbench cleanup`
//!   then removes the run.
//!
//! For every case: the exit status; no process of the run survives (every
//! descendant of workbench and every member of the run's cgroups captured
//! while paused, known by PID and start time, is gone or a zombie within a few
//! seconds); every resource the run's state file listed while paused existed
//! in the kernel then and is gone afterwards (directories, mounts in
//! /proc/self/mountinfo, cgroup directories in every hierarchy, links, named
//! netns, nft tables, iptables rules, sysctls back to their old values); the
//! state file is gone; no line of the host state (`workbench::host::snapshot`)
//! names the run's id. After a SIGKILL, before `cleanup`: the state file and
//! everything the kernel keeps when processes die (directories, mounts,
//! cgroups, nft tables, sysctls, …) are still there; `cleanup` names each of
//! the run's resources, cleans no other run and skips live ones; a second
//! `cleanup` finds nothing of it. Around the whole batch, the host state
//! before and after must be equal. A new lesson is covered without editing
//! this file.
//!
//! The signal is sent as a parent would: `Child::wait` closes workbench's
//! stdin right after it, so every case also exercises a signal arriving
//! together with end of input (see src/state/signals.rs).
//!
//! Lessons run two at a time (each lesson's cases one after another), so a
//! case cannot compare the whole host state before and after itself: the
//! other lesson's run would show. The phase from the signal to the end of a
//! case's checks is serialised, so one case's `workbench cleanup` never
//! removes (and hides) what another case's run left behind.
//!
//! Environment:
//!
//! - `WB_FAULT_LESSONS=id1,id2` — only these lessons (ids or aliases;
//!   unset or empty: all of them). An unknown name fails the test.
//! - `WB_FAULT_SHARD=K/N` — only the K-th of N shares of those lessons
//!   (1-based), balanced by their number of cases; the N shares together are
//!   the whole selection (scripts/v2-vm runs the shares in different guests).
//! - `WB_FAULT_JOBS=N` — lessons run at once (default 2). With 1, every case
//!   also requires the whole host state after it to equal the state before.
//! - `WB_FAULT_VERBOSE=1` — print each case's wall time too.
//!
//! `cargo test --test fault_matrix -- --nocapture` prints each lesson's wall
//! time. Each lesson's `DEF.spots` (src/lessons/<id>.rs) adds what must exist
//! at chosen pause points (hogs in their groups, servers, forwarding on); a
//! lesson without spots is still run through every pause point and ending.

mod common;
#[path = "support/paused.rs"]
mod paused;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use paused::{descendants, Paused};
use workbench::lesson::{LessonDef, Spot};
use workbench::state::{Resource, RunState};

/// How a case ends the paused run.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Sigint,
    Sigterm,
    /// SIGKILL, then `workbench cleanup`.
    SigkillCleanup,
}

const ENDINGS: [Ending; 3] = [Ending::Sigint, Ending::Sigterm, Ending::SigkillCleanup];

/// Held from the signal to the end of a case's checks (see the top).
static ENDING_PHASE: Mutex<()> = Mutex::new(());

type Outcome = Result<(), String>;

fn ensure(ok: bool, msg: impl FnOnce() -> String) -> Outcome {
    if ok {
        Ok(())
    } else {
        Err(msg())
    }
}

// ---- processes ----------------------------------------------------------------

/// A process as seen while paused: PID and start time, so a reused PID is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: i32,
    start: u64,
}

fn proc_of(pid: i32) -> Option<Proc> {
    workbench::kernel::proc::start_time(pid).map(|start| Proc { pid, start })
}

/// Gone: reaped, a zombie or dead entry waiting for its parent, or its PID reused.
fn gone(p: &Proc) -> bool {
    match std::fs::read_to_string(format!("/proc/{}/stat", p.pid)) {
        Ok(s) => {
            let state_z = s
                .rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z') || r.starts_with('X'));
            state_z || workbench::kernel::proc::parse_start_time(&s) != Some(p.start)
        }
        Err(_) => true,
    }
}

/// The processes of `procs` still alive after waiting up to five seconds.
fn survivors(procs: &[Proc]) -> Vec<Proc> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive: Vec<Proc> = procs.iter().filter(|p| !gone(p)).copied().collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Members of a cgroup and of the groups below it.
fn cgroup_members(dir: &Path) -> Vec<i32> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        out.extend(procs.split_whitespace().filter_map(|s| s.parse::<i32>().ok()));
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out
}

// ---- the run's resources in the kernel ------------------------------------------------

fn mount_points() -> Vec<PathBuf> {
    paused::mounts_of("self")
        .into_iter()
        .map(|(m, _)| PathBuf::from(m))
        .collect()
}

fn tool_ok(prog: &str, args: &[&str]) -> bool {
    Command::new(prog).args(args).output().is_ok_and(|o| o.status.success())
}

fn sysctl_value(key: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/proc/sys").join(key))
        .ok()
        .map(|v| v.trim().to_string())
}

/// Does another live run (not `me`) hold a record of sysctl `key`? Then it, not this run, restores it.
fn sysctl_held_by_other(key: &str, me: &str) -> bool {
    live_states()
        .iter()
        .filter(|s| s.run_id != me && s.owner_alive())
        .flat_map(|s| &s.resources)
        .any(|r| matches!(r, Resource::Sysctl { key: k, .. } if k == key))
}

/// Is the resource present in the kernel now? `None`: nothing to look at (a subnet or port reservation).
fn present(r: &Resource, run_id: &str) -> Option<bool> {
    Some(match r {
        Resource::Dir { path } => path.exists(),
        Resource::Mount { target } => mount_points().contains(target),
        Resource::Process { pid, start_time } => !gone(&Proc {
            pid: *pid,
            start: *start_time,
        }),
        Resource::Cgroup { path } => path.is_dir(),
        Resource::Link { name } => Path::new("/sys/class/net").join(name).exists(),
        Resource::Netns { name } => Path::new("/run/netns").join(name).exists(),
        Resource::NftTable { family, name } => tool_ok("nft", &["list", "table", family, name]),
        Resource::IptablesRule { table, chain, spec } => {
            let mut args = vec!["-t", table.as_str(), "-C", chain.as_str()];
            args.extend(spec.iter().map(String::as_str));
            tool_ok("iptables", &args)
        }
        Resource::XtablesChain { table, chain, .. } => tool_ok("nft", &["list", "chain", "ip", table, chain]),
        // In effect: the key (or a key the kernel changed with it) differs from its recorded value.
        Resource::Sysctl {
            key,
            previous,
            side_effects,
        } => {
            if sysctl_held_by_other(key, run_id) {
                return None;
            }
            std::iter::once((key, previous))
                .chain(side_effects.iter().map(|(k, v)| (k, v)))
                .any(|(k, v)| sysctl_value(k).is_some_and(|now| now != *v))
        }
        Resource::Subnet { .. } | Resource::HostPort { .. } => return None,
    })
}

// ---- state files ------------------------------------------------------------------------------

fn runs_dir() -> PathBuf {
    workbench::state::run_root().join("runs")
}

fn live_states() -> Vec<RunState> {
    std::fs::read_dir(runs_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_str::<RunState>(&std::fs::read_to_string(e.path()).ok()?).ok())
        .collect()
}

fn state_file(run_id: &str) -> PathBuf {
    runs_dir().join(format!("{run_id}.json"))
}

/// Lines of the host state that name the run: `wb<id>…` links, nft tables and
/// routes, `wb-<id>-…` directories, cgroups and mounts, its state file.
fn lines_naming(s: &workbench::host::snapshot::HostState, run_id: &str) -> Vec<String> {
    let (a, b, c) = (format!("wb{run_id}"), format!("wb-{run_id}"), format!("{run_id}.json"));
    s.sections
        .iter()
        .flat_map(|(k, v)| {
            v.iter()
                .filter(|l| l.contains(&a) || l.contains(&b) || **l == c)
                .map(move |l| format!("{k}: {l}"))
        })
        .collect()
}

// ---- one case ----------------------------------------------------------------------------------

/// What a paused run had made.
struct Seen {
    state: RunState,
    /// Every process of the run: descendants of workbench, members of its cgroups, recorded processes.
    procs: Vec<Proc>,
    /// The descendants of workbench alone (they die with it, PR_SET_PDEATHSIG).
    descendants: Vec<Proc>,
    /// Resources present in the kernel while paused.
    present: Vec<Resource>,
}

fn look_at(run: &Paused) -> Result<Seen, String> {
    let state = live_states()
        .into_iter()
        .find(|s| s.owner_pid == run.pid())
        .ok_or("no state file names the paused run as its owner")?;
    ensure(!state.resources.is_empty(), || "the state file lists nothing".into())?;
    let kin: Vec<Proc> = descendants(run.pid()).into_iter().filter_map(proc_of).collect();
    let mut pids = kin.iter().map(|p| p.pid).collect::<Vec<_>>();
    for r in &state.resources {
        match r {
            Resource::Cgroup { path } => pids.extend(cgroup_members(path)),
            Resource::Process { pid, .. } => pids.push(*pid),
            _ => {}
        }
    }
    pids.sort();
    pids.dedup();
    let procs: Vec<Proc> = pids
        .into_iter()
        .filter(|p| *p != run.pid())
        .filter_map(proc_of)
        .collect();
    let mut here = Vec::new();
    for r in &state.resources {
        match present(r, &state.run_id) {
            Some(true) => here.push(r.clone()),
            // A recorded process may have ended by itself (a shell done with its
            // forks, an OOM kill); a link may have moved into a namespace of the
            // run (a veth's container end), out of the host's sight.
            Some(false) if matches!(r, Resource::Process { .. } | Resource::Link { .. }) => {}
            Some(false) => {
                return Err(format!(
                    "the state file lists {r}, but it is not in the kernel while paused"
                ))
            }
            None => {}
        }
    }
    Ok(Seen {
        state,
        procs,
        descendants: kin,
        present: here,
    })
}

/// Everything the run had made is gone: processes, resources, state file, host-state lines.
fn all_gone(seen: &Seen) -> Outcome {
    let left = survivors(&seen.procs);
    ensure(left.is_empty(), || {
        format!("processes survived: {:?} (of {:?})", left, seen.procs)
    })?;
    let id = &seen.state.run_id;
    let mut still = Vec::new();
    for r in &seen.state.resources {
        if present(r, id) == Some(true) {
            still.push(r.to_string());
        }
    }
    if let Some(Resource::Dir { path }) = seen.state.resources.iter().find(|r| matches!(r, Resource::Dir { .. })) {
        still.extend(
            mount_points()
                .into_iter()
                .filter(|m| m.starts_with(path))
                .map(|m| format!("mount {}", m.display())),
        );
    }
    ensure(still.is_empty(), || format!("left behind: {}", still.join("; ")))?;
    ensure(!state_file(id).exists(), || {
        format!("state file {} left behind", state_file(id).display())
    })?;
    let named = lines_naming(&workbench::host::snapshot::capture(), id);
    ensure(named.is_empty(), || {
        format!("the host state still names run {id}:\n{}", named.join("\n"))
    })
}

fn run_case(def: &LessonDef, after: usize, ending: Ending, strict_host: bool) -> Outcome {
    let before = strict_host.then(workbench::host::snapshot::capture);
    let run = Paused::start(def.id, after);
    let seen = look_at(&run)?;
    spot_checks(def.id, def.steps[after - 1], &seen)?;
    let _phase = ENDING_PHASE.lock().unwrap_or_else(|e| e.into_inner());
    let id = seen.state.run_id.clone();
    match ending {
        Ending::Sigint | Ending::Sigterm => {
            let (sig, code) = if matches!(ending, Ending::Sigint) {
                (Signal::SIGINT, 130)
            } else {
                (Signal::SIGTERM, 143)
            };
            let (status, said) = run.signal_and_report(sig);
            let said = said.trim().to_string();
            ensure(status.code() == Some(code), || {
                format!("exit status {status} after {sig}, expected {code}; stderr: {said}")
            })?;
            all_gone(&seen).map_err(|e| format!("{e}\nworkbench said on stderr: {said}"))?;
        }
        Ending::SigkillCleanup => {
            use std::os::unix::process::ExitStatusExt;
            let status = run.signal(Signal::SIGKILL);
            ensure(status.signal() == Some(9), || {
                format!("exit status {status} after SIGKILL")
            })?;
            // Its namespace children, hogs and their servers die with it...
            let left = survivors(&seen.descendants);
            ensure(left.is_empty(), || {
                format!(
                    "processes survived the SIGKILL of workbench: {left:?} (of {:?})",
                    seen.descendants
                )
            })?;
            // ...but nothing was torn down: the state file and everything the kernel
            // does not remove when processes die wait for `cleanup` (processes
            // die with workbench; a veth may die with its peer's namespace).
            ensure(state_file(&id).exists(), || {
                "no state file left for `cleanup` after SIGKILL".into()
            })?;
            let vanished: Vec<String> = seen
                .present
                .iter()
                .filter(|r| !matches!(r, Resource::Process { .. } | Resource::Link { .. }))
                .filter(|r| present(r, &id) != Some(true))
                .map(|r| r.to_string())
                .collect();
            ensure(vanished.is_empty(), || {
                format!("after SIGKILL, before `cleanup`, already gone: {}", vanished.join("; "))
            })?;
            // Runs of other cases in progress (the other job's lesson): cleanup must leave them alone.
            let others: Vec<RunState> = live_states()
                .into_iter()
                .filter(|s| s.run_id != id && s.owner_alive())
                .collect();
            let o = common::workbench(&["cleanup"]);
            let out = common::stdout(&o);
            ensure(o.status.success(), || {
                format!("workbench cleanup failed ({}): {}{}", o.status, out, common::stderr(&o))
            })?;
            ensure(out.contains(&format!("cleaned run {id} ({})", def.id)), || {
                format!("cleanup did not clean run {id}:\n{out}")
            })?;
            let cleaned: Vec<&str> = out
                .lines()
                .filter(|l| l.starts_with("cleaned run ") && !l.contains(&id))
                .collect();
            ensure(cleaned.is_empty(), || {
                format!("cleanup cleaned other runs too: {cleaned:?}")
            })?;
            for other in others.iter().filter(|s| s.owner_alive()) {
                ensure(
                    out.contains(&format!("skipped run {} (", other.run_id)) && state_file(&other.run_id).exists(),
                    || {
                        format!(
                            "cleanup did not leave the live run {} ({}) alone:\n{out}",
                            other.run_id, other.lesson
                        )
                    },
                )?;
            }
            for r in &seen.state.resources {
                ensure(out.contains(&format!("  removed {r}\n")), || {
                    format!("cleanup output does not name {r}:\n{out}")
                })?;
            }
            let again = common::stdout(&common::workbench(&["cleanup"]));
            ensure(!again.contains(&id), || {
                format!("a second cleanup found run {id} again:\n{again}")
            })?;
            all_gone(&seen)?;
        }
    }
    if let Some(before) = before {
        let d = workbench::host::snapshot::differences(&before, &workbench::host::snapshot::capture());
        ensure(d.is_empty(), || format!("the host state changed:\n{}", d.join("\n")))?;
    }
    Ok(())
}

// ---- spot checks ---------------------------------------------------------------------------------

fn kind_of(r: &Resource) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v["kind"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn spot_checks(lesson: &str, step: &str, seen: &Seen) -> Outcome {
    let def = workbench::lessons::find(lesson).expect("a lesson of ALL");
    for (_, spot) in def.spots.iter().filter(|(s, _)| *s == step) {
        match spot {
            Spot::Procs(n) => ensure(seen.procs.len() >= *n, || {
                format!("expected at least {n} processes of the run, found {:?}", seen.procs)
            })?,
            Spot::InGroups(n) => {
                let mut inside: Vec<i32> = seen
                    .state
                    .resources
                    .iter()
                    .filter_map(|r| {
                        if let Resource::Cgroup { path } = r {
                            Some(cgroup_members(path))
                        } else {
                            None
                        }
                    })
                    .flatten()
                    .collect();
                inside.sort();
                inside.dedup();
                ensure(inside.len() >= *n, || {
                    format!("expected at least {n} processes in the run's cgroups, found {inside:?}")
                })?
            }
            Spot::Sysctl(key, value) => ensure(sysctl_value(key).as_deref() == Some(*value), || {
                format!("expected {key} = {value}, found {:?}", sysctl_value(key))
            })?,
            Spot::Present(kind, n) => {
                let k = seen.present.iter().filter(|r| kind_of(r) == *kind).count();
                ensure(k >= *n, || {
                    format!(
                        "expected at least {n} {kind} resources present, found {k}: {:?}",
                        seen.present
                    )
                })?
            }
        }
    }
    Ok(())
}

// ---- the matrix ------------------------------------------------------------------------------------

/// The lessons to run: `WB_FAULT_LESSONS` (ids or aliases), else all.
fn selected() -> Vec<&'static LessonDef> {
    match std::env::var("WB_FAULT_LESSONS") {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|name| {
                workbench::lessons::find(name).unwrap_or_else(|| panic!("WB_FAULT_LESSONS: unknown lesson {name}"))
            })
            .collect(),
        _ => workbench::lessons::ALL.iter().collect(),
    }
}

/// `WB_FAULT_SHARD=K/N`: (k, n), 0-based k; `None` when unset.
fn shard_spec() -> Option<(usize, usize)> {
    let v = std::env::var("WB_FAULT_SHARD").ok().filter(|v| !v.trim().is_empty())?;
    let parsed = v
        .trim()
        .split_once('/')
        .and_then(|(k, n)| Some((k.parse::<usize>().ok()?, n.parse::<usize>().ok()?)));
    match parsed {
        Some((k, n)) if n >= 1 && (1..=n).contains(&k) => Some((k - 1, n)),
        _ => panic!("WB_FAULT_SHARD={v}: give K/N with 1 <= K <= N, e.g. 1/2"),
    }
}

/// The lessons (given by their case counts) of share `k` of `n`: the largest
/// first, each to the least loaded share (ties to the lowest share), so the
/// shares are disjoint, cover every lesson and cost about the same.
fn shard_of(cases: &[usize], k: usize, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cases.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(cases[i]), i));
    let mut load = vec![0usize; n];
    let mut mine = Vec::new();
    for i in order {
        let best = (0..n).min_by_key(|&s| (load[s], s)).unwrap();
        load[best] += cases[i];
        if best == k {
            mine.push(i);
        }
    }
    mine.sort_unstable();
    mine
}

#[test]
fn the_shards_split_the_lessons_evenly_and_cover_them_all() {
    let cases = [9, 3, 12, 6, 6, 15, 3];
    let shares: Vec<Vec<usize>> = (0..3).map(|k| shard_of(&cases, k, 3)).collect();
    let mut all: Vec<usize> = shares.concat();
    all.sort_unstable();
    assert_eq!(all, (0..cases.len()).collect::<Vec<_>>());
    let loads: Vec<usize> = shares.iter().map(|s| s.iter().map(|&i| cases[i]).sum()).collect();
    assert_eq!(loads, vec![18, 18, 18]);
    assert_eq!(shard_of(&cases, 0, 1), (0..cases.len()).collect::<Vec<_>>());
}

fn jobs() -> usize {
    std::env::var("WB_FAULT_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(2)
}

/// What one lesson's cases came to.
struct LessonResult {
    failures: Vec<String>,
    cases: usize,
    took: Duration,
}

/// Run every case of one lesson, one after another.
fn lesson_cases(def: &LessonDef, strict_host: bool) -> LessonResult {
    let t0 = Instant::now();
    let mut failures = Vec::new();
    let mut cases = 0;
    for after in 1..def.steps.len() {
        for ending in ENDINGS {
            cases += 1;
            let t = Instant::now();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_case(def, after, ending, strict_host)
            }));
            let r = r.unwrap_or_else(|p| {
                Err(p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into()))
            });
            if std::env::var_os("WB_FAULT_VERBOSE").is_some() {
                eprintln!(
                    "fault matrix: {} after {after}, {ending:?}: {:.2} s",
                    def.id,
                    t.elapsed().as_secs_f64()
                );
            }
            if let Err(e) = r {
                failures.push(format!(
                    "{} paused after step {after} ({}), {ending:?}: {e}",
                    def.id,
                    def.steps[after - 1]
                ));
            }
        }
    }
    LessonResult {
        failures,
        cases,
        took: t0.elapsed(),
    }
}

#[test]
fn every_lesson_every_pause_every_signal_cleans_up() {
    require_root!();
    let _g = common::serial();
    let mut lessons = selected();
    if let Some((k, n)) = shard_spec() {
        let cases: Vec<usize> = lessons
            .iter()
            .map(|d| ENDINGS.len() * d.steps.len().saturating_sub(1))
            .collect();
        let mine = shard_of(&cases, k, n);
        lessons = mine.into_iter().map(|i| lessons[i]).collect();
        eprintln!("fault matrix: share {}/{n}: {} lessons", k + 1, lessons.len());
    }
    let jobs = jobs();
    // Leftovers of earlier killed runs would be cleaned (and reported) below too: clear them first.
    let _ = common::workbench(&["cleanup"]);
    let before = workbench::host::snapshot::capture();
    let t0 = Instant::now();
    let queue: Mutex<VecDeque<&LessonDef>> = Mutex::new(lessons.iter().copied().collect());
    let results: Mutex<BTreeMap<usize, LessonResult>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(lessons.len()) {
            s.spawn(|| loop {
                let Some(def) = queue.lock().unwrap().pop_front() else {
                    break;
                };
                let r = lesson_cases(def, jobs == 1);
                let failed = if r.failures.is_empty() {
                    String::new()
                } else {
                    format!(", {} failed", r.failures.len())
                };
                eprintln!(
                    "fault matrix: {}: {} cases in {:.1} s{failed}",
                    def.id,
                    r.cases,
                    r.took.as_secs_f64()
                );
                let order = lessons.iter().position(|d| d.id == def.id).unwrap();
                results.lock().unwrap().insert(order, r);
            });
        }
    });
    let results = results.into_inner().unwrap();
    let cases: usize = results.values().map(|r| r.cases).sum();
    eprintln!(
        "fault matrix: {} lessons, {cases} cases, {jobs} at a time, {:.1} s",
        results.len(),
        t0.elapsed().as_secs_f64()
    );
    let failures: Vec<String> = results.into_values().flat_map(|r| r.failures).collect();
    let d = workbench::host::snapshot::differences(&before, &workbench::host::snapshot::capture());
    if !failures.is_empty() || !d.is_empty() {
        // Put the host back for the tests that follow.
        let _ = common::workbench(&["cleanup"]);
    }
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(d.is_empty(), "the fault matrix changed the host:\n{}", d.join("\n"));
}

#[test]
fn the_runner_pauses_only_between_steps() {
    require_root!();
    let _g = common::serial();
    // The lesson with the fewest steps: paused before its last step, Enter runs it and the run ends.
    let def = workbench::lessons::ALL.iter().min_by_key(|d| d.steps.len()).unwrap();
    let n = def.steps.len();
    let before = workbench::host::snapshot::capture();
    let run = Paused::start(def.id, n - 1);
    let (status, out) = run
        .enter_and_expect_exit(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{}: {e}", def.id));
    assert!(status.success(), "{}: {status}\n{out}", def.id);
    assert!(out.contains(&format!("{n}/{n} steps passed")), "{out}");
    common::assert_host_unchanged(&before, def.id);
}
