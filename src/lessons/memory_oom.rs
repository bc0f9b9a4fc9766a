//! memory-oom: a memory limit, a hog that doubles a string, and the OOM killer.
//!
//! The memory controller charges every page a group's processes touch to the
//! group. When a charge would go over the limit the kernel first tries to
//! reclaim (drop caches, swap out — which we forbid here by giving the group
//! no swap); when nothing can be reclaimed it runs the OOM killer *inside the
//! group*: it picks a process of that group, SIGKILLs it and counts the kill.
//! v1 calls the limit memory.limit_in_bytes (plus memory.memsw.limit_in_bytes
//! for memory+swap), v2 memory.max (plus memory.swap.max).

use std::io::{Read, Seek};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use rootfs_builder::build::{build_rootfs, RootfsSpec};
use wb_cgroup::{Controller, Group, Resource as Watch};

use crate::kit::cg;
use crate::kit::hog::{self, Hog, Spec};
use crate::host::Host;
use crate::lesson::options::MemoryError;
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};

pub const DEF: LessonDef = LessonDef::of::<MemoryOom>(preflight).shell("in a new cgroup with the lesson's limit").spots(&[("start-hog", Spot::InGroups(1))]);

pub const DEFAULT_MEMORY: &str = "64M";
pub const MIN_MEMORY: u64 = 4 << 20;
pub const MAX_MEMORY: u64 = 256 << 20;
/// How long the hog may take to reach the limit.
const OOM_TIMEOUT: Duration = Duration::from_secs(30);

/// Validate `--memory`: a size like 64M between 4M and 256M.
pub fn memory_limit(opts: &LessonOptions) -> anyhow::Result<u64> {
    let text = opts.memory.as_deref().unwrap_or(DEFAULT_MEMORY);
    crate::lesson::options::parse_memory(text, MIN_MEMORY, MAX_MEMORY).map_err(|e| match e {
        MemoryError::Malformed(e) => anyhow::anyhow!("--memory: {e}"),
        MemoryError::TooSmall => anyhow::anyhow!("--memory {text} is too small: use at least 4M (the shell and the kernel's own charges need room)"),
        MemoryError::TooLarge => anyhow::anyhow!("--memory {text} is more than this lesson needs: use at most 256M"),
    })
}

/// Doublings the hog may do: enough to pass the limit for sure (the string
/// alone reaches at least the limit), few enough to stay bounded should the
/// limit not hold (then it stops at 2–4 × the limit).
pub fn doublings(limit: u64) -> u32 {
    64 - (limit - 1).leading_zeros() + 1
}

/// The tutorial's hog, bounded: `x=a; while :; do x=$x$x; done`.
pub fn hog_script(limit: u64) -> String {
    let n = doublings(limit);
    format!(
        "read go\nx=a\ni=0\nwhile [ $i -lt {n} ]; do\n  x=$x$x\n  i=$((i+1))\n  echo \"doubling $i: ${{#x}} bytes\"\ndone\necho \"survived {n} doublings: the limit did not hold\"\nexit 3\n"
    )
}

fn swap_active() -> bool {
    std::fs::read_to_string("/proc/swaps").map(|s| s.lines().count() > 1).unwrap_or(false)
}

fn preflight(host: &Host, opts: &LessonOptions) -> anyhow::Result<()> {
    let _already_set = opts.memory_bytes.set(memory_limit(opts)?);
    let layout = cg::require(host, &[Controller::Memory])?;
    host.require_static_busybox()?;
    if swap_active() && layout.summary().swap_accounting == Some(false) {
        anyhow::bail!("swap is on but the kernel does not account it per cgroup, so the hog would swap instead of being OOM-killed: boot with swapaccount=1 or run `swapoff -a` first");
    }
    Ok(())
}

#[derive(Default)]
struct MemoryOom {
    group: Option<Group>,
    hog: Option<Hog>,
    limit: u64,
    /// The limit as the kernel stores it (rounded down to whole pages).
    effective: u64,
}

impl MemoryOom {
    fn group(&self) -> anyhow::Result<&Group> {
        self.group.as_ref().ok_or_else(|| anyhow::anyhow!("no group: the create-group step did not run"))
    }
}

/// Facts about the group's memory: every watched file, flat-keyed ones split.
fn memory_facts(g: &Group) -> std::collections::BTreeMap<String, String> {
    let mut f = cg::facts("", &g.files_for(Watch::Memory));
    f.extend(cg::facts("", &g.files_for(Watch::MemoryEvents)));
    f
}

const HOG_FACT: &str = "hog";
const OOM_FACT: &str = "OOM kills in the group";

/// Kernel log records written after the reader was opened (`dmesg` lines).
struct Kmsg(Option<std::fs::File>);

impl Kmsg {
    fn open() -> Kmsg {
        let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg").ok().map(|mut f| {
            let _ = f.seek(std::io::SeekFrom::End(0));
            f
        });
        Kmsg(f)
    }

    /// The message part of each new record ("6,1234,5678,-;text" → "text").
    fn read_new(&mut self) -> Option<Vec<String>> {
        let f = self.0.as_mut()?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    let first = rec.lines().next().unwrap_or_default();
                    out.push(first.split_once(';').map_or(first, |(_, m)| m).to_string());
                }
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue, // overwritten records
                Err(_) => break,                                             // EAGAIN: no more
            }
        }
        Some(out)
    }
}

/// One `oom-kill:` record of the kernel log: whom the OOM killer of a
/// memory cgroup chose (`oom_memcg=` the group over its limit, `task_memcg=`
/// the victim's group, `pid=` the victim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomKill {
    pub pid: i32,
    pub task_memcg: String,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(',').find_map(|kv| kv.trim().strip_prefix(key)?.strip_prefix('='))
}

/// The OOM kills the kernel log records for the memory cgroup `memcg`
/// (`/workbench/wb-…-mem`), ignoring every other group's (pure).
pub fn own_oom_kills(lines: &[String], memcg: &str) -> Vec<OomKill> {
    lines
        .iter()
        .filter_map(|l| l.split_once("oom-kill:").map(|(_, rest)| rest))
        .filter(|rest| field(rest, "oom_memcg") == Some(memcg))
        .filter_map(|rest| Some(OomKill { pid: field(rest, "pid")?.parse().ok()?, task_memcg: field(rest, "task_memcg")?.to_string() }))
        .collect()
}

/// `Memory cgroup out of memory: Killed process 4636 (sh) …` → 4636.
fn killed_pid(line: &str) -> Option<i32> {
    line.split("Killed process ").nth(1)?.split_whitespace().next()?.parse().ok()
}

impl Lesson for MemoryOom {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        match step {
            "create-group" => {
                self.limit = *cx.options.memory_bytes.get().context("--memory was not checked: the preflight did not run")?;
                let (g, before, mut facts) = cg::create_step(r, &cx.run_id, "mem", Controller::Memory, Watch::Memory, "the memory files")?;
                facts.extend(memory_facts(&g));
                r.check_eq("memory charged to the new group, bytes", 0, g.memory_current()?);
                r.observe(before, cg::facts_snapshot("group created", facts));
                self.group = Some(g);
            }
            "set-limit" => {
                let limit = self.limit;
                let g = self.group()?;
                let files = g.files_for(Watch::Memory);
                let before = memory_facts(g);
                g.set_memory_limit(limit, Some(0))?;
                let after = memory_facts(g);
                cg::say_each(r, "host", &cg::echo_commands(&files, &before, &after, ""), String::new());
                let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(4096) as u64;
                self.effective = limit / page * page;
                // The first watched memory file is the limit on both versions.
                let limit_file = files.first().map(|f| f.label.clone()).unwrap_or_default();
                let got = after.get(&limit_file).cloned().unwrap_or_default();
                r.check(format!("{limit_file} reads back the limit (whole pages)"), self.effective.to_string(), got.clone(), got == self.effective.to_string());
                // With swap accounting, no swap on top of the limit: hitting it means OOM.
                for f in files.iter().filter(|f| f.label.contains("memsw") || f.label.contains("swap")) {
                    let v = after.get(&f.label).cloned().unwrap_or_default();
                    let ok = v == "0" || v == self.effective.to_string();
                    r.check(format!("{} leaves no room for swap", f.label), format!("0 (v2) or {} (v1: memory+swap = memory)", self.effective), v, ok);
                }
                r.observe(cg::facts_snapshot("before", before), cg::facts_snapshot("limit set", after));
            }
            "start-hog" => {
                let busybox = cx.host.require_static_busybox()?.to_path_buf();
                let rootfs: PathBuf = cx.workdir.join("rootfs");
                build_rootfs(&RootfsSpec { busybox: busybox.clone(), copy_libraries: false, hostname: "container".into() }, &rootfs).with_context(|| format!("build rootfs in {}", rootfs.display()))?;
                r.say("host", format!("rootfs-builder build --busybox /bin/busybox {}", rootfs.display()), "static busybox + applet links");
                let script = hog_script(self.limit);
                let spec = Spec { address_space: Some(8 * self.limit + (64 << 20)), ..Spec::gated_shell("memory-hog", &busybox, Some(rootfs.clone()), &script, 60, &cx.workdir) };
                let h = Hog::spawn(&spec)?;
                let pid = h.pid();
                self.hog = Some(h);
                r.say("host", format!("chroot {} /bin/sh -c '...' &    # waits on stdin before it starts", rootfs.display()), format!("[1] {pid}\n{}", script.trim_end()));
                let g = self.group()?.clone();
                let (before, after) = cg::join_step(r, &g, pid, "hog", Watch::Procs)?;
                let procs = g.procs()?;
                r.check("only the hog is in the group (the OOM killer chooses among its members)", format!("[{pid}]"), format!("{procs:?}"), procs == vec![pid]);
                let member = cg::membership(pid, &g, Controller::Memory);
                r.check_eq("/proc/PID/cgroup: the hog's memory cgroup", cg::proc_path(&g), member);
                r.observe(before, after);
            }
            "oom" => {
                let g = self.group()?.clone();
                let h = self.hog.as_mut().ok_or_else(|| anyhow::anyhow!("no hog: the start-hog step did not run"))?;
                let pid = h.pid();
                let mut before = memory_facts(&g);
                let kills_before = g.oom_kill_count()?;
                before.insert(OOM_FACT.into(), kills_before.to_string());
                before.insert(HOG_FACT.into(), format!("pid {pid}, waiting"));
                let mut kmsg = Kmsg::open();
                h.release()?;
                let status = h.wait_timeout(OOM_TIMEOUT);
                let status = match status {
                    Some(st) => st,
                    None => {
                        r.say("host", format!("# still running after {} s: kill -KILL {pid}", OOM_TIMEOUT.as_secs()), "");
                        h.kill();
                        anyhow::bail!("the hog was not OOM-killed within {} s (killed it)", OOM_TIMEOUT.as_secs());
                    }
                };
                let (out, err) = h.output();
                let tail: Vec<&str> = out.lines().rev().take(3).collect::<Vec<_>>().into_iter().rev().collect();
                let mut shown = tail.join("\n");
                if !err.trim().is_empty() {
                    shown.push('\n');
                    shown.push_str(err.trim_end());
                }
                shown.push_str(&format!("\n[{}]", hog::describe_status(&status)));
                r.say("chroot", "x=a; while :; do x=$x$x; done    # (bounded, with a progress line per doubling)", shown);
                let kills_after = g.oom_kill_count()?;
                let mut after = memory_facts(&g);
                after.insert(OOM_FACT.into(), kills_after.to_string());
                after.insert(HOG_FACT.into(), hog::describe_status(&status));
                let lines = kmsg.read_new();
                if let Some(lines) = &lines {
                    // Other runs (a class on one host) OOM-kill in their own
                    // groups at the same time: only this group's records count.
                    let memcg = cg::proc_path(&g);
                    let own = own_oom_kills(lines, &memcg);
                    let own_pids: Vec<i32> = own.iter().map(|k| k.pid).collect();
                    let shown: Vec<&str> = lines
                        .iter()
                        .filter(|l| (l.contains("oom-kill:") && l.contains(&format!("oom_memcg={memcg},"))) || killed_pid(l).is_some_and(|k| own_pids.contains(&k) || k == pid))
                        .map(|s| s.as_str())
                        .collect();
                    r.say("host", format!("dmesg | grep -e 'oom_memcg={memcg},' -e 'Killed process {pid} '"), shown.join("\n"));
                    if !own.is_empty() {
                        let outside: Vec<String> = own.iter().filter(|k| k.task_memcg != memcg).map(|k| format!("pid {} in {}", k.pid, k.task_memcg)).collect();
                        r.check(format!("the kernel log names only the hog as killed for {memcg}"), format!("[{pid}]"), format!("{own_pids:?}"), own_pids.iter().all(|k| *k == pid));
                        r.check(format!("no process outside {memcg} was killed for it"), "none", if outside.is_empty() { "none".into() } else { outside.join(", ") }, outside.is_empty());
                    } else if lines.iter().any(|l| killed_pid(l) == Some(pid)) {
                        // The kernel rate-limits the oom-kill summary line; the
                        // "Killed process" line is always printed.
                        r.check("the kernel log names the hog as killed", format!("Killed process {pid}"), format!("Killed process {pid}"), true);
                    }
                }
                r.check("the hog was killed by SIGKILL (exit status 137 in a shell)", "killed by SIGKILL", hog::describe_status(&status), status.signal() == Some(libc::SIGKILL));
                r.check("OOM kills counted by the group: exactly one more (only the hog)", (kills_before + 1).to_string(), kills_after.to_string(), kills_after == kills_before + 1);
                let progress: Vec<u64> = out.lines().filter_map(|l| l.split(": ").nth(1)?.split_whitespace().next()?.parse().ok()).collect();
                let reached = progress.last().copied().unwrap_or(0);
                r.check("the string grew until it approached the limit", format!("≥ {} bytes (a quarter of the limit)", self.effective / 4), format!("{reached} bytes"), reached >= self.effective / 4 && !out.contains("survived"));
                if let Some(peak) = g.memory_peak()? {
                    after.insert("peak memory charged".into(), peak.to_string());
                    r.check("peak memory stayed within the limit and came close to it", format!("{}..={} bytes", self.effective / 2, self.effective), peak.to_string(), peak <= self.effective && peak >= self.effective / 2);
                }
                r.check("the group is empty again", "[]", format!("{:?}", g.procs()?), g.procs()?.is_empty());
                r.observe(cg::facts_snapshot("before the hog runs", before), cg::facts_snapshot("after", after));
            }
            "remove" => {
                let g = self.group()?.clone();
                let paths = g.paths();
                let before = cg::dir_facts(&paths);
                let after = cg::remove_step(r, &[g], None);
                r.observe(cg::facts_snapshot("before", before), cg::facts_snapshot("after", after));
                self.group = None;
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    /// `--shell`: a new group with the lesson's limit (and no swap) and a shell in it.
    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        let (g, dir) = cg::limited_shell_group(&cx.run_id, Controller::Memory, Watch::Memory, |g| g.set_memory_limit(self.limit, Some(0)))?;
        let limits: Vec<String> = wb_cgroup::read_watched(&g.files_for(Watch::Memory))
            .into_iter()
            .filter(|(k, _)| k.contains("limit") || k.ends_with(".max"))
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let oom = g.files_for(Watch::MemoryEvents).first().map(|f| f.label.clone()).unwrap_or_default();
        let lines = vec![
            format!("This shell runs in the cgroup {} ($CG): {} (no room for swap).", dir.display(), limits.join(", ")),
            format!("Try: `tail /dev/zero; echo $?` (tail keeps one endless line in memory: OOM-killed, 137), then `cat $CG/{oom}`. The shell survives: the OOM killer picks the biggest process in the group."),
        ];
        cg::shell_in(cx.lesson, g, &dir, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(m: &str) -> LessonOptions {
        LessonOptions { memory: Some(m.into()), ..Default::default() }
    }

    #[test]
    fn memory_option() {
        assert_eq!(memory_limit(&LessonOptions::default()).unwrap(), 64 << 20);
        assert_eq!(memory_limit(&opts("32M")).unwrap(), 32 << 20);
        assert_eq!(memory_limit(&opts("4M")).unwrap(), 4 << 20);
        for (bad, why) in [("abc", "invalid size"), ("0", "invalid size"), ("3M", "at least 4M"), ("1G", "at most 256M"), ("64Q", "unknown unit"), ("-5M", "invalid size")] {
            let e = memory_limit(&opts(bad)).unwrap_err().to_string();
            assert!(e.contains(why) && e.starts_with("--memory"), "{bad}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn the_hog_passes_the_limit_but_stays_bounded() {
        for limit in [4u64 << 20, (4 << 20) + 1, 64 << 20, 100_000_000, 256 << 20] {
            let n = doublings(limit);
            let last_but_one = 1u64 << (n - 1);
            assert!(last_but_one >= limit, "{limit}: the string never reaches the limit");
            assert!(1u64 << n <= 4 * limit, "{limit}: {n} doublings go too far");
        }
        let s = hog_script(64 << 20);
        assert!(s.starts_with("read go\n") && s.contains("-lt 27 ") && s.contains("x=$x$x"), "{s}");
    }

    #[test]
    fn only_this_groups_oom_kills_count() {
        let log: Vec<String> = [
            "sh invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/workbench/wb-b38f8f-mem,task_memcg=/workbench/wb-b38f8f-mem,task=sh,pid=4637,uid=0",
            "Memory cgroup out of memory: Killed process 4637 (sh) total-vm:100580kB, anon-rss:65316kB",
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/workbench/wb-e24926-mem,task_memcg=/workbench/wb-e24926-mem,task=sh,pid=4636,uid=0",
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/workbench/wb-e24926-mem-x,task_memcg=/workbench/wb-e24926-mem-x,task=sh,pid=9,uid=0",
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/workbench/wb-e24926-mem,task_memcg=/user.slice,task=bash,pid=77,uid=0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(own_oom_kills(&log, "/workbench/wb-b38f8f-mem"), vec![OomKill { pid: 4637, task_memcg: "/workbench/wb-b38f8f-mem".into() }]);
        let other = own_oom_kills(&log, "/workbench/wb-e24926-mem");
        assert_eq!(other.iter().map(|k| k.pid).collect::<Vec<_>>(), vec![4636, 77]);
        assert_eq!(other[1].task_memcg, "/user.slice");
        assert!(own_oom_kills(&log, "/workbench/wb-000000-mem").is_empty());
        assert_eq!(killed_pid(&log[2]), Some(4637));
        assert_eq!(killed_pid(&log[0]), None);
    }
}
