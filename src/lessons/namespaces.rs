//! namespaces: the eight kinds, an lsns table, setns(2), and a namespace's lifetime.
//!
//! A namespace is a kernel object that gives the processes in it their own
//! copy of one global resource; `/proc/PID/ns/KIND` names the one a process is
//! in by its inode on the nsfs filesystem. Opening that file and calling
//! `setns(2)` joins it, and the namespace lives as long as a process, an open
//! descriptor or a bind mount still refers to it.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use nix::sched::CloneFlags;

use crate::host::Host;
use crate::kernel::child::{NsChild, Request};
use crate::kit::{check_namespaces, child_snapshot, host_snapshot, shell_env, spawn_child};
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};
use crate::observe::{Capture, Snapshot};
use crate::state::{self, Resource};

pub const DEF: LessonDef = LessonDef::of::<Namespaces>(preflight)
    .shell("in a new network namespace (unshare -n sh)")
    .spots(&[
        ("unshare-net", Spot::Procs(1)),
        ("uts-ipc", Spot::Procs(2)),
        ("pin", Spot::Present("mount", 1)),
    ]);

/// The hostname the UTS step gives the child (`--hostname` overrides it).
pub const DEFAULT_HOSTNAME: &str = "wb-ns-child";

/// The SysV message queue key of the IPC step ("wbns" in ASCII).
pub const QUEUE_KEY: i32 = 0x7762_6e73;

/// The file the network namespace is bind-mounted on, under the run's workdir.
const PIN_FILE: &str = "wb-netns-pin";

/// How long to wait for the kernel to drop the last references after the unmount
/// (generous: the pure-v2 VM runs under emulation).
const VANISH_WITHIN: Duration = Duration::from_secs(30);

/// One namespace kind: its `/proc/PID/ns` name, its clone flag, the kernel
/// version that brought it (first → completed), what seed 002 says, what it isolates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    pub name: &'static str,
    pub flag: &'static str,
    /// The kernel version the flag first appeared in.
    pub first: (u32, u32, u32),
    /// "2.6.24", or "2.6.24–2.6.29" when it took several releases to finish.
    pub since: &'static str,
    /// The version seed 002's table gives, if it lists the kind.
    pub post_says: Option<&'static str>,
    pub isolates: &'static str,
}

/// The eight kinds, in the order they arrived.
pub const KINDS: [Kind; 8] = [
    Kind {
        name: "mnt",
        flag: "CLONE_NEWNS",
        first: (2, 4, 19),
        since: "2.4.19",
        post_says: Some("2.4.19"),
        isolates: "mount points",
    },
    Kind {
        name: "uts",
        flag: "CLONE_NEWUTS",
        first: (2, 6, 19),
        since: "2.6.19",
        post_says: Some("2.6.19"),
        isolates: "hostname and NIS domain name",
    },
    Kind {
        name: "ipc",
        flag: "CLONE_NEWIPC",
        first: (2, 6, 19),
        since: "2.6.19",
        post_says: Some("2.6.19"),
        isolates: "System V IPC, POSIX message queues",
    },
    Kind {
        name: "user",
        flag: "CLONE_NEWUSER",
        first: (2, 6, 23),
        since: "2.6.23–3.8",
        post_says: Some("3.8"),
        isolates: "user and group IDs, capabilities",
    },
    Kind {
        name: "pid",
        flag: "CLONE_NEWPID",
        first: (2, 6, 24),
        since: "2.6.24",
        post_says: Some("2.6.24"),
        isolates: "process IDs",
    },
    Kind {
        name: "net",
        flag: "CLONE_NEWNET",
        first: (2, 6, 24),
        since: "2.6.24–2.6.29",
        post_says: Some("2.6.29"),
        isolates: "network devices, addresses, routes, ports, /proc/net",
    },
    Kind {
        name: "cgroup",
        flag: "CLONE_NEWCGROUP",
        first: (4, 6, 0),
        since: "4.6",
        post_says: None,
        isolates: "the cgroup root directory",
    },
    Kind {
        name: "time",
        flag: "CLONE_NEWTIME",
        first: (5, 6, 0),
        since: "5.6",
        post_says: None,
        isolates: "CLOCK_MONOTONIC and CLOCK_BOOTTIME offsets",
    },
];

fn preflight(host: &Host, _opts: &LessonOptions) -> anyhow::Result<()> {
    host.require_root("clone(CLONE_NEWNET|CLONE_NEWUTS|CLONE_NEWIPC), setns(2) and mount(2) need CAP_SYS_ADMIN")?;
    host.require_static_busybox()?;
    for kind in ["net", "uts", "ipc"] {
        if !Path::new("/proc/self/ns").join(kind).exists() {
            anyhow::bail!("this kernel has no {kind} namespaces (/proc/self/ns/{kind} is missing): use a kernel built with CONFIG_{}_NS", kind.to_uppercase());
        }
    }
    Ok(())
}

/// `"6.18.44-fc-v1147"` → `(6, 18, 44)`.
pub fn parse_release(release: &str) -> Option<(u32, u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    Some((major, minor, patch))
}

/// The kinds a kernel of this version has, by the versions of [`KINDS`].
pub fn kinds_of_release(release: (u32, u32, u32)) -> Vec<&'static str> {
    KINDS.iter().filter(|k| k.first <= release).map(|k| k.name).collect()
}

/// The kinds of a `/proc/PID/ns` listing, without the `*_for_children` links.
pub fn kinds_listed(ns: &BTreeMap<String, u64>) -> Vec<String> {
    ns.keys().filter(|k| !k.ends_with("_for_children")).cloned().collect()
}

// ---- the lsns table -------------------------------------------------------------------------------

/// One row of `lsns`: a namespace, how many processes are in it, the lowest PID and its command.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NsRow {
    pub inode: u64,
    pub kind: String,
    pub nprocs: usize,
    pub pid: i32,
    pub command: String,
}

impl NsRow {
    /// `net:[4026531833]`, the form of the `/proc/PID/ns` links.
    pub fn key(&self) -> String {
        format!("{}:[{}]", self.kind, self.inode)
    }

    fn describe(&self) -> String {
        format!("{} process(es), lowest PID {} ({})", self.nprocs, self.pid, self.command)
    }
}

/// One process as lsns sees it: PID, command, namespace links (kind → inode).
pub type ProcNs = (i32, String, BTreeMap<String, u64>);

/// Group processes by namespace, as lsns does: a row per (kind, inode), sorted by inode.
pub fn group_namespaces(procs: &[ProcNs]) -> Vec<NsRow> {
    let mut rows: BTreeMap<(u64, String), NsRow> = BTreeMap::new();
    let mut sorted: Vec<&ProcNs> = procs.iter().collect();
    sorted.sort_by_key(|(pid, _, _)| *pid);
    for (pid, command, ns) in sorted {
        for (kind, inode) in ns {
            if kind.ends_with("_for_children") {
                continue;
            }
            let row = rows.entry((*inode, kind.clone())).or_insert_with(|| NsRow {
                inode: *inode,
                kind: kind.clone(),
                nprocs: 0,
                pid: *pid,
                command: command.clone(),
            });
            row.nprocs += 1;
        }
    }
    rows.into_values().collect()
}

/// `/proc/PID/cmdline` with its NULs as spaces, or the `comm` name for a
/// kernel thread (an empty command line), as lsns shows them.
pub fn command_of(cmdline: &[u8], comm: &str) -> String {
    let text: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if text.is_empty() {
        comm.trim_end().to_string()
    } else {
        text.join(" ")
    }
}

fn numeric_dirs(dir: &Path) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(dir)
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Every process under a proc root with its namespaces (processes whose links
/// cannot be read, or that exit meanwhile, are left out, as lsns leaves them).
pub fn read_procs(proc_root: &Path) -> Vec<ProcNs> {
    numeric_dirs(proc_root)
        .into_iter()
        .filter_map(|pid| {
            let ns = crate::kernel::ns::read_namespaces(proc_root, pid).ok()?;
            if ns.is_empty() {
                return None;
            }
            let dir = proc_root.join(pid.to_string());
            let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            Some((pid, command_of(&cmdline, &comm), ns))
        })
        .collect()
}

/// The host's lsns table, from `/proc`.
pub fn lsns_rows() -> Vec<NsRow> {
    group_namespaces(&read_procs(Path::new("/proc")))
}

/// Rows as `lsns -o NS,TYPE,NPROCS,PID,COMMAND` prints them.
pub fn render_lsns(rows: &[NsRow]) -> String {
    let mut out = format!("{:>10} {:<6} {:>6} {:>7} COMMAND", "NS", "TYPE", "NPROCS", "PID");
    for r in rows {
        out.push_str(&format!(
            "\n{:>10} {:<6} {:>6} {:>7} {}",
            r.inode, r.kind, r.nprocs, r.pid, r.command
        ));
    }
    out
}

/// `lsns --json --list -o NS,TYPE,NPROCS,PID,COMMAND` → rows, sorted (rows
/// nested under `children`, as the tree format prints them, are flattened).
pub fn parse_lsns_json(text: &str) -> anyhow::Result<Vec<NsRow>> {
    fn walk(list: &[serde_json::Value], rows: &mut Vec<NsRow>) -> anyhow::Result<()> {
        let num = |x: &serde_json::Value| x.as_u64().or_else(|| x.as_str().and_then(|s| s.parse().ok()));
        for n in list {
            rows.push(NsRow {
                inode: num(&n["ns"]).context("lsns --json: a row without ns")?,
                kind: n["type"].as_str().unwrap_or_default().to_string(),
                nprocs: num(&n["nprocs"]).unwrap_or(0) as usize,
                pid: num(&n["pid"]).unwrap_or(0) as i32,
                command: n["command"].as_str().unwrap_or_default().to_string(),
            });
            if let Some(children) = n["children"].as_array() {
                walk(children, rows)?;
            }
        }
        Ok(())
    }
    let v: serde_json::Value = serde_json::from_str(text).context("lsns --json is not JSON")?;
    let list = v["namespaces"].as_array().context("lsns --json: no \"namespaces\" array")?;
    let mut rows = Vec::new();
    walk(list, &mut rows)?;
    rows.sort();
    Ok(rows)
}

fn rows_facts(rows: &[NsRow], kind: &str) -> BTreeMap<String, String> {
    rows.iter()
        .filter(|r| r.kind == kind)
        .map(|r| (r.key(), r.describe()))
        .collect()
}

// ---- references to a namespace ------------------------------------------------------------------

/// Where a namespace is still referred to: tasks in it, descriptors open on it, mounts of it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refs {
    /// `pid/tid` of tasks whose `ns/KIND` link names it.
    pub tasks: Vec<String>,
    /// `pid fd N` of open descriptors on it.
    pub fds: Vec<String>,
    /// `mount point (mnt:[inode])` of nsfs mounts of it, one per mount namespace.
    pub mounts: Vec<String>,
}

impl Refs {
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.fds.is_empty() && self.mounts.is_empty()
    }
}

/// The mount points of a mountinfo text whose root is `ns` (`net:[4026532...]`): nsfs bind mounts.
pub fn nsfs_mounts(mountinfo: &str, ns: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 4 && f[3] == ns).then(|| f[4].to_string())
        })
        .collect()
}

/// Scan `/proc` for every reference to namespace `kind:[inode]`.
pub fn references(kind: &str, inode: u64) -> Refs {
    let ns = format!("{kind}:[{inode}]");
    let proc_root = Path::new("/proc");
    let link_is = |p: PathBuf| std::fs::read_link(p).is_ok_and(|t| t.as_os_str() == ns.as_str());
    let mut refs = Refs::default();
    let mut mount_namespaces = BTreeSet::new();
    for pid in numeric_dirs(proc_root) {
        let dir = proc_root.join(pid.to_string());
        for tid in numeric_dirs(&dir.join("task")) {
            if link_is(dir.join(format!("task/{tid}/ns/{kind}"))) {
                refs.tasks.push(format!("{pid}/{tid}"));
            }
        }
        for fd in numeric_dirs(&dir.join("fd")) {
            if link_is(dir.join(format!("fd/{fd}"))) {
                refs.fds.push(format!("{pid} fd {fd}"));
            }
        }
        let Ok(mnt) = std::fs::read_link(dir.join("ns/mnt")) else { continue };
        if mount_namespaces.insert(mnt.clone()) {
            let text = std::fs::read_to_string(dir.join("mountinfo")).unwrap_or_default();
            for m in nsfs_mounts(&text, &ns) {
                refs.mounts.push(format!("{m} ({})", mnt.display()));
            }
        }
    }
    refs
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

// ---- SysV message queues -----------------------------------------------------------------------

/// `/proc/sysvipc/msg` → `(key, msqid)` of each queue.
pub fn msg_queues(text: &str) -> Vec<(i64, i64)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
        .collect()
}

fn queue_listed(text: &str) -> bool {
    msg_queues(text).iter().any(|(k, _)| *k == QUEUE_KEY as i64)
}

/// `msgget(key, IPC_CREAT|IPC_EXCL|0600)` in the IPC namespace behind `ns_file`,
/// from a helper thread that joins it with `setns(2)` (nsproxy is per thread,
/// so the rest of workbench stays where it is). The thread checks that it really
/// is in that namespace before creating anything, so a queue never lands on the host.
fn msgget_in(ns_file: &Path, key: i32) -> anyhow::Result<i32> {
    let file = std::fs::File::open(ns_file).with_context(|| format!("open {}", ns_file.display()))?;
    let target = file.metadata()?.ino();
    std::thread::scope(|s| {
        s.spawn(move || -> anyhow::Result<i32> {
            nix::sched::setns(&file, CloneFlags::CLONE_NEWIPC)
                .with_context(|| format!("setns {} (CLONE_NEWIPC)", ns_file.display()))?;
            let now = std::fs::metadata("/proc/thread-self/ns/ipc")?.ino();
            anyhow::ensure!(now == target, "setns left the thread in ipc:[{now}], not ipc:[{target}]");
            // SAFETY: msgget takes no pointers.
            let id = unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
            if id < 0 {
                anyhow::bail!("msgget({key:#x}): {}", std::io::Error::last_os_error());
            }
            Ok(id)
        })
        .join()
        .unwrap_or_else(|_| anyhow::bail!("the msgget thread panicked"))
    })
}

// ---- the lesson ----------------------------------------------------------------------------------

#[derive(Default)]
struct Namespaces {
    /// The `unshare -fn` child.
    net: Option<NsChild>,
    net_inode: u64,
    /// The net rows of the lsns table before the child existed.
    lsns_before: Vec<NsRow>,
    /// The child with new UTS and IPC namespaces.
    uts_ipc: Option<NsChild>,
    /// The file the network namespace is bind-mounted on.
    pin: Option<PathBuf>,
    /// The `--shell` child.
    shell: Option<NsChild>,
}

fn net_child(s: &mut Option<NsChild>) -> anyhow::Result<&mut NsChild> {
    s.as_mut().context("no network-namespace child: the unshare-net step did not run")
}

fn inode_of(path: impl AsRef<Path>) -> u64 {
    std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0)
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn facts_snapshot(label: &str, facts: BTreeMap<String, String>) -> Snapshot {
    Snapshot {
        label: label.into(),
        facts,
        ..Default::default()
    }
}

/// Fork a helper (no new namespaces), join the network namespace behind
/// `ns_file` with setns(2) and run `ip link` there. Returns the helper's net
/// inode after the setns and the output; the helper is killed and forgotten.
fn enter_and_list(r: &mut StepReport, cx: &Cx, ns_file: &Path, shown_as: &str) -> anyhow::Result<(u64, u64, String)> {
    let busybox = cx.host.require_static_busybox()?.display().to_string();
    let mut helper = spawn_child(CloneFlags::empty())?;
    let pid = helper.pid();
    let start = crate::kernel::proc::start_time(pid).unwrap_or(0);
    let before = inode_of(format!("/proc/{pid}/ns/net"));
    helper.act(&Request::SetnsNet(ns_file.to_path_buf()))?;
    let after = inode_of(format!("/proc/{pid}/ns/net"));
    r.say(
        "helper",
        format!("setns(open(\"{}\"), CLONE_NEWNET)", ns_file.display()),
        format!("helper pid {pid}: net:[{before}] -> net:[{after}]"),
    );
    let out = helper.run(&[&busybox, "ip", "link"])?;
    r.ran("helper", format!("{shown_as}   # = ip link after the setns"), &out);
    drop(helper);
    state::forget(&Resource::Process { pid, start_time: start });
    Ok((before, after, out.stdout))
}

/// The link names of `ip link` output, and whether each is UP (`<...,UP,...>`).
pub fn ip_links(out: &str) -> Vec<(String, bool)> {
    out.lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| {
            let mut f = l.split(": ");
            f.next()?.trim().parse::<u32>().ok()?;
            let name = f.next()?.split('@').next()?.to_string();
            let flags = l.split('<').nth(1)?.split('>').next()?;
            Some((name, flags.split(',').any(|x| x == "UP")))
        })
        .collect()
}

impl Lesson for Namespaces {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        match step {
            "kinds" => {
                let me = host_snapshot(Capture::NS)?;
                let release = nix::sys::utsname::uname()
                    .map(|u| u.release().to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut table = format!("{:<7} {:<16} {:<14} {:<12} {:<20} ISOLATES", "KIND", "FLAG", "SINCE", "SEED 002", "THIS HOST");
                let mut post = BTreeMap::new();
                let mut kernel = BTreeMap::new();
                for k in &KINDS {
                    let here = me.namespaces.get(k.name).map(|i| format!("{}:[{i}]", k.name)).unwrap_or_else(|| "absent".into());
                    table.push_str(&format!("\n{:<7} {:<16} {:<14} {:<12} {:<20} {}", k.name, k.flag, k.since, k.post_says.unwrap_or("(missing)"), here, k.isolates));
                    if let Some(v) = k.post_says {
                        post.insert(format!("{} ({}) since", k.name, k.flag), v.to_string());
                    }
                    kernel.insert(format!("{} ({}) since", k.name, k.flag), k.since.to_string());
                }
                r.say("host", format!("ls -l /proc/self/ns   # on Linux {release}, side by side with seed 002's table"), table);
                let listed = kinds_listed(&me.namespaces);
                let known: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
                let unknown: Vec<&String> = listed.iter().filter(|k| !known.contains(&k.as_str())).collect();
                r.check(
                    "every kind in /proc/self/ns is one of the eight",
                    "no other kind",
                    if unknown.is_empty() { "no other kind".to_string() } else { format!("unknown: {unknown:?}") },
                    unknown.is_empty(),
                );
                if let Some(rel) = parse_release(&release) {
                    let expected = kinds_of_release(rel);
                    let missing: Vec<&str> = expected.iter().copied().filter(|k| !listed.iter().any(|l| l == k)).collect();
                    r.check(
                        format!("the kinds Linux {}.{} should have are all there", rel.0, rel.1),
                        expected.join(" "),
                        if missing.is_empty() { expected.join(" ") } else { format!("missing {}", missing.join(" ")) },
                        missing.is_empty(),
                    );
                }
                let mismatched: Vec<String> = me
                    .namespaces
                    .iter()
                    .filter(|(k, i)| inode_of(format!("/proc/self/ns/{k}")) != **i)
                    .map(|(k, _)| k.clone())
                    .collect();
                r.check(
                    "each link's [number] is the inode stat(2) gives",
                    format!("{} links agree", me.namespaces.len()),
                    if mismatched.is_empty() { format!("{} links agree", me.namespaces.len()) } else { format!("differ: {}", mismatched.join(" ")) },
                    mismatched.is_empty() && !me.namespaces.is_empty(),
                );
                let before = facts_snapshot("seed 002's table", post);
                r.observe(before, facts_snapshot("the kernel's history", kernel));
            }
            "unshare-net" => {
                self.lsns_before = lsns_rows().into_iter().filter(|r| r.kind == "net").collect();
                let before = host_snapshot(Capture::NS)?;
                let child = spawn_child(CloneFlags::CLONE_NEWNET)?;
                r.say(
                    "parent",
                    "clone(child_fn, stack, CLONE_NEWNET|SIGCHLD, NULL)",
                    format!("clone() = {}   (recorded; it dies with workbench)", child.pid()),
                );
                let after = child_snapshot(&child, Capture::NS)?;
                let shared: Vec<&str> = kinds_listed(&before.namespaces)
                    .iter()
                    .filter(|k| *k != "net")
                    .filter_map(|k| KINDS.iter().find(|x| x.name == k).map(|x| x.name))
                    .collect();
                check_namespaces(r, &before, &after, &["net"], &shared);
                self.net_inode = after.namespaces.get("net").copied().unwrap_or(0);
                r.observe(before, after);
                self.net = Some(child);
            }
            "lsns" => {
                let child_pid = net_child(&mut self.net)?.pid();
                let inode = self.net_inode;
                let rows = lsns_rows();
                let net_rows: Vec<NsRow> = rows.iter().filter(|r| r.kind == "net").cloned().collect();
                r.say("host", "lsns -t net -o NS,TYPE,NPROCS,PID,COMMAND", render_lsns(&net_rows));
                r.say(
                    "host",
                    "lsns --noheadings | wc -l   # the namespaces of every kind",
                    rows.len().to_string(),
                );
                let mine = net_rows.iter().find(|r| r.inode == inode);
                let was_there = self.lsns_before.iter().any(|r| r.inode == inode);
                r.check(
                    "the child's net namespace has a row",
                    format!("net:[{inode}]"),
                    mine.map(NsRow::key).unwrap_or_else(|| "absent".into()),
                    mine.is_some(),
                );
                r.check(
                    "that row is new (not in the table before the clone)",
                    "absent before",
                    if was_there { "present before" } else { "absent before" },
                    !was_there,
                );
                r.check_eq("processes in it", 1, mine.map(|m| m.nprocs).unwrap_or(0));
                r.check_eq("its lowest PID is the child", child_pid, mine.map(|m| m.pid).unwrap_or(0));
                r.observe(
                    facts_snapshot("lsns -t net before the clone", rows_facts(&self.lsns_before, "net")),
                    facts_snapshot("lsns -t net now", rows_facts(&rows, "net")),
                );
            }
            "nsenter" => {
                let child_pid = net_child(&mut self.net)?.pid();
                let inode = self.net_inode;
                let host_inode = inode_of("/proc/self/ns/net");
                let ns_file = PathBuf::from(format!("/proc/{child_pid}/ns/net"));
                let (before, after, out) = enter_and_list(r, cx, &ns_file, &format!("nsenter -t {child_pid} -n ip link"))?;
                let links = ip_links(&out);
                let host_links = wb_net::snapshot_of_pid(crate::kernel::proc::self_pid())?;
                // The same namespace seen from a thread of workbench (setns on a helper thread).
                let thread_view = wb_net::snapshot_of_pid(child_pid)?;
                let show = |l: &[(String, bool)]| l.iter().map(|(n, up)| format!("{n} {}", if *up { "UP" } else { "DOWN" })).collect::<Vec<_>>().join(", ");
                let host_view: Vec<(String, bool)> = host_links.links.iter().map(|l| (l.name.clone(), l.up)).collect();
                let facts = |label: &str, ino: u64, l: &[(String, bool)]| {
                    facts_snapshot(
                        label,
                        [("helper's net namespace".to_string(), format!("net:[{ino}]")), ("ip link".to_string(), show(l))].into(),
                    )
                };
                r.observe(facts("helper before setns", before, &host_view), facts("helper after setns", after, &links));
                r.check_eq("the helper started in the host's net namespace", format!("net:[{host_inode}]"), format!("net:[{before}]"));
                r.check_eq("after setns it is in the child's", format!("net:[{inode}]"), format!("net:[{after}]"));
                r.check_eq("ip link inside lists only lo", "lo".to_string(), links.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>().join(" "));
                r.check_eq("lo is DOWN", "lo DOWN".to_string(), show(&links));
                let thread_names: Vec<String> = thread_view.links.iter().map(|l| format!("{} {}", l.name, if l.up { "UP" } else { "DOWN" })).collect();
                r.check_eq("a thread's setns sees the same (netlink)", "lo DOWN".to_string(), thread_names.join(", "));
            }
            "uts-ipc" => {
                let name = cx.options.hostname.clone().unwrap_or_else(|| DEFAULT_HOSTNAME.to_string());
                let busybox = cx.host.require_static_busybox()?.display().to_string();
                let host_ns = host_snapshot(Capture::NS)?;
                let mut child = spawn_child(CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC)?;
                let pid = child.pid();
                r.say("parent", "clone(child_fn, stack, CLONE_NEWUTS|CLONE_NEWIPC|SIGCHLD, NULL)", format!("clone() = {pid}"));
                let child_ns = child_snapshot(&child, Capture::NS)?;
                let others: Vec<&str> = ["mnt", "net", "pid", "user", "cgroup", "time"].into_iter().filter(|k| host_ns.namespaces.contains_key(*k)).collect();
                check_namespaces(r, &host_ns, &child_ns, &["uts", "ipc"], &others);
                let inside_msg = |child: &mut NsChild| -> anyhow::Result<String> {
                    let out = child.run(&[&busybox, "cat", "/proc/sysvipc/msg"])?;
                    anyhow::ensure!(out.success(), "cat /proc/sysvipc/msg inside: {}", out.describe());
                    Ok(out.stdout)
                };
                let host_msg = || std::fs::read_to_string("/proc/sysvipc/msg").unwrap_or_default();
                let yes = |b: bool| if b { "listed" } else { "not listed" }.to_string();
                let snap = |label: &str, inside_name: &str, host_name: &str, inside: bool, host: bool| {
                    facts_snapshot(
                        label,
                        [
                            ("hostname inside".to_string(), inside_name.to_string()),
                            ("hostname on the host".to_string(), host_name.to_string()),
                            (format!("queue key {QUEUE_KEY:#x} inside"), yes(inside)),
                            (format!("queue key {QUEUE_KEY:#x} on the host"), yes(host)),
                        ]
                        .into(),
                    )
                };
                let host_name_before = hostname();
                let (_, _, inside_name_before) = child.whoami()?;
                let before = snap("before", &inside_name_before, &host_name_before, queue_listed(&inside_msg(&mut child)?), queue_listed(&host_msg()));
                child.act(&Request::SetHostname(name.clone()))?;
                r.say("child", format!("sethostname(\"{name}\", {})", name.len()), "");
                let id = msgget_in(Path::new(&format!("/proc/{pid}/ns/ipc")), QUEUE_KEY)?;
                r.say(
                    "thread",
                    format!("setns(open(\"/proc/{pid}/ns/ipc\"), CLONE_NEWIPC); msgget({QUEUE_KEY:#x}, IPC_CREAT|IPC_EXCL|0600)"),
                    format!("msqid {id}   # = nsenter -t {pid} -i ipcmk -Q"),
                );
                let (_, _, inside_name) = child.whoami()?;
                let inside_text = inside_msg(&mut child)?;
                let host_text = host_msg();
                r.say("child", "hostname", inside_name.clone());
                r.say("host", "hostname", hostname());
                r.say("child", "cat /proc/sysvipc/msg   # what ipcs -q reads", inside_text.trim_end().to_string());
                r.say("host", "cat /proc/sysvipc/msg", host_text.trim_end().to_string());
                if Path::new("/usr/bin/ipcs").exists() {
                    let out = child.run(&["/usr/bin/ipcs", "-q"])?;
                    r.ran("child", "ipcs -q", &out);
                    let out = crate::kit::netlab::host_run(&["/usr/bin/ipcs".into(), "-q".into()], Duration::from_secs(10))?;
                    r.ran("host", "ipcs -q", &out);
                }
                let after = snap("after", &inside_name, &hostname(), queue_listed(&inside_text), queue_listed(&host_text));
                r.observe(before, after);
                r.check_eq("hostname inside", name, inside_name);
                r.check_eq("hostname on the host is unchanged", host_name_before, hostname());
                r.check_eq("the queue is in the child's /proc/sysvipc/msg", "listed".to_string(), yes(queue_listed(&inside_text)));
                r.check_eq("and not in the host's", "not listed".to_string(), yes(queue_listed(&host_text)));
                self.uts_ipc = Some(child);
            }
            "pin" => {
                let child_pid = net_child(&mut self.net)?.pid();
                let inode = self.net_inode;
                let file = cx.workdir.join(PIN_FILE);
                let ns = format!("net:[{inode}]");
                let mounts_of = || nsfs_mounts(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(), &ns);
                std::fs::File::create(&file).with_context(|| format!("touch {}", file.display()))?;
                let facts = |label: &str| {
                    facts_snapshot(
                        label,
                        [
                            (format!("stat {PIN_FILE}: inode"), inode_of(&file).to_string()),
                            (format!("mounts of {ns}"), list_or_none(&mounts_of())),
                        ]
                        .into(),
                    )
                };
                let before = facts("an empty file");
                let source = PathBuf::from(format!("/proc/{child_pid}/ns/net"));
                state::record_and_create(vec![Resource::Mount { target: file.clone() }], || -> anyhow::Result<()> {
                    nix::mount::mount(Some(&source), &file, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
                        .with_context(|| format!("mount --bind {} {}", source.display(), file.display()))
                })?;
                self.pin = Some(file.clone());
                r.say("host", format!("touch {0}; mount --bind {1} {0}", file.display(), source.display()), "");
                let line = std::fs::read_to_string("/proc/self/mountinfo")
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains(&ns))
                    .collect::<Vec<_>>()
                    .join("\n");
                r.say("host", format!("grep '{ns}' /proc/self/mountinfo"), line);
                let after = facts("bind-mounted namespace file");
                r.observe(before, after);
                let on_file = mounts_of();
                r.check_eq("an nsfs mount of the namespace on the file", file.display().to_string(), on_file.join(" "));
                r.check_eq("stat(2) of the file gives the namespace's inode", inode, inode_of(&file));
            }
            "exit-reenter" => {
                let file = self.pin.clone().context("no namespace file: the pin step did not run")?;
                let inode = self.net_inode;
                let mut child = self.net.take().context("no network-namespace child")?;
                let pid = child.pid();
                let start = crate::kernel::proc::start_time(pid).unwrap_or(0);
                let before_refs = references("net", inode);
                child.kill();
                drop(child);
                state::forget(&Resource::Process { pid, start_time: start });
                r.say("parent", format!("kill -KILL {pid}; wait"), "");
                let after_kill = references("net", inode);
                r.say("host", format!("ls -l /proc/*/task/*/ns/net | grep -c 'net:\\[{inode}\\]'   # tasks left in the namespace"), after_kill.tasks.len().to_string());
                r.check_eq("no task is left in the namespace", "none".to_string(), list_or_none(&after_kill.tasks));
                r.check("the mount still refers to it", "at least 1 mount", format!("{} mount(s)", after_kill.mounts.len()), !after_kill.mounts.is_empty());
                let (_, entered, out) = enter_and_list(r, cx, &file, &format!("nsenter --net={} ip link", file.display()))?;
                let links = ip_links(&out);
                r.check_eq("setns through the file joins the same namespace", format!("net:[{inode}]"), format!("net:[{entered}]"));
                r.check_eq("ip link there lists lo, DOWN", "lo DOWN".to_string(), links.iter().map(|(n, up)| format!("{n} {}", if *up { "UP" } else { "DOWN" })).collect::<Vec<_>>().join(", "));
                let after_refs = references("net", inode);
                let facts = |label: &str, refs: &Refs| {
                    facts_snapshot(
                        label,
                        [
                            (format!("tasks in net:[{inode}]"), list_or_none(&refs.tasks)),
                            (format!("mounts of net:[{inode}]"), refs.mounts.len().to_string()),
                        ]
                        .into(),
                    )
                };
                r.observe(facts("the child alive", &before_refs), facts("the child and the helper gone", &after_refs));
            }
            "unmount" => {
                let file = self.pin.clone().context("no namespace file: the pin step did not run")?;
                let inode = self.net_inode;
                let before = references("net", inode);
                state::release(&Resource::Mount { target: file.clone() }).map_err(|e| anyhow::anyhow!(e))?;
                r.say("host", format!("umount {}", file.display()), "");
                let mut after = references("net", inode);
                let deadline = std::time::Instant::now() + VANISH_WITHIN;
                while !after.is_empty() && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                    after = references("net", inode);
                }
                let file_inode = inode_of(&file);
                let setns = std::thread::scope(|s| {
                    s.spawn(|| match std::fs::File::open(&file) {
                        Ok(f) => match nix::sched::setns(&f, CloneFlags::CLONE_NEWNET) {
                            Ok(()) => "succeeded".to_string(),
                            Err(e) => e.to_string(),
                        },
                        Err(e) => format!("open: {e}"),
                    })
                    .join()
                    .unwrap_or_default()
                });
                let einval = setns.contains("EINVAL");
                r.say("thread", format!("setns(open(\"{}\"), CLONE_NEWNET)", file.display()), setns.clone());
                let facts = |label: &str, refs: &Refs, ino: u64| {
                    facts_snapshot(
                        label,
                        [
                            (format!("mounts of net:[{inode}]"), list_or_none(&refs.mounts)),
                            (format!("tasks in net:[{inode}]"), list_or_none(&refs.tasks)),
                            (format!("descriptors on net:[{inode}]"), list_or_none(&refs.fds)),
                            (format!("stat {PIN_FILE}: inode"), ino.to_string()),
                        ]
                        .into(),
                    )
                };
                r.observe(facts("mounted", &before, inode), facts("unmounted", &after, file_inode));
                r.check_eq("no mount in any mount namespace refers to the inode", "none".to_string(), list_or_none(&after.mounts));
                r.check_eq("no task is in it", "none".to_string(), list_or_none(&after.tasks));
                r.check_eq("no descriptor is open on it", "none".to_string(), list_or_none(&after.fds));
                r.check("the file is an ordinary file again", format!("inode != {inode}"), file_inode.to_string(), file_inode != inode && file_inode != 0);
                r.check("setns(2) on the file is refused", "EINVAL", setns, einval);
                self.pin = None;
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        let busybox = cx.host.require_static_busybox()?.display().to_string();
        let child = self.shell.insert(spawn_child(CloneFlags::CLONE_NEWNET)?);
        child.call(&Request::Interactive {
            argv: vec![busybox, "sh".into()],
            env: shell_env("namespaces"),
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kinds_are_eight_with_distinct_flags_in_order_of_arrival() {
        assert_eq!(KINDS.len(), 8);
        let names: BTreeSet<&str> = KINDS.iter().map(|k| k.name).collect();
        let all: BTreeSet<&str> = crate::kernel::ns::KINDS.iter().map(|k| k.0).collect();
        assert_eq!(names, all, "the same kinds as kernel::ns::KINDS");
        for k in &KINDS {
            let flag = crate::kernel::ns::KINDS.iter().find(|x| x.0 == k.name).unwrap().1;
            assert_eq!(k.flag, flag, "{}", k.name);
            assert!(k.since.starts_with(&format!("{}.{}", k.first.0, k.first.1)), "{}", k.name);
        }
        assert!(KINDS.windows(2).all(|w| w[0].first <= w[1].first));
        // Seed 002 lists six; the two it misses are the newest.
        let missing: Vec<&str> = KINDS.iter().filter(|k| k.post_says.is_none()).map(|k| k.name).collect();
        assert_eq!(missing, ["cgroup", "time"]);
    }

    #[test]
    fn releases_parse_and_name_the_kinds_they_have() {
        assert_eq!(parse_release("6.18.44-fc-v1147"), Some((6, 18, 44)));
        assert_eq!(parse_release("5.6.0"), Some((5, 6, 0)));
        assert_eq!(parse_release("4.19"), Some((4, 19, 0)));
        assert_eq!(parse_release("bogus"), None);
        assert_eq!(kinds_of_release((6, 1, 0)).len(), 8);
        assert_eq!(kinds_of_release((5, 4, 0)), ["mnt", "uts", "ipc", "user", "pid", "net", "cgroup"]);
        assert_eq!(kinds_of_release((2, 6, 19)), ["mnt", "uts", "ipc"]);
        assert_eq!(kinds_of_release((2, 6, 18)), ["mnt"]);
    }

    fn procs() -> Vec<ProcNs> {
        let ns = |net: u64, uts: u64| -> BTreeMap<String, u64> {
            [("net".to_string(), net), ("uts".to_string(), uts), ("pid_for_children".to_string(), 9)].into()
        };
        vec![
            (42, "workbench lesson ns".into(), ns(100, 200)),
            (2, "kthreadd".into(), ns(100, 200)),
            (43, "workbench lesson ns".into(), ns(101, 200)),
            (7, "sleep 60".into(), ns(100, 201)),
        ]
    }

    #[test]
    fn lsns_groups_processes_by_namespace_with_the_lowest_pid() {
        let rows = group_namespaces(&procs());
        let net: Vec<String> = rows
            .iter()
            .filter(|r| r.kind == "net")
            .map(|r| format!("{} {} {} {}", r.key(), r.nprocs, r.pid, r.command))
            .collect();
        assert_eq!(net, ["net:[100] 3 2 kthreadd", "net:[101] 1 43 workbench lesson ns"]);
        assert_eq!(rows.len(), 4, "pid_for_children is no namespace row: {rows:?}");
        let uts = rows.iter().find(|r| r.key() == "uts:[201]").unwrap();
        assert_eq!((uts.nprocs, uts.pid), (1, 7));
        let text = render_lsns(&rows[..1]);
        assert_eq!(text, "        NS TYPE   NPROCS     PID COMMAND\n       100 net         3       2 kthreadd");
    }

    #[test]
    fn commands_are_the_command_line_or_the_thread_name() {
        assert_eq!(command_of(b"unshare\0-fn\0sleep\x0060\0", "unshare\n"), "unshare -fn sleep 60");
        assert_eq!(command_of(b"", "kthreadd\n"), "kthreadd");
    }

    #[test]
    fn parses_lsns_json() {
        let text = r#"{"namespaces": [
            {"ns": 4026531833, "type": "net", "nprocs": 83, "pid": 2, "command": "kthreadd"},
            {"ns": "4026532664", "type": "net", "nprocs": "2", "pid": "4104", "command": "unshare -fn sleep 60"}
        ]}"#;
        let rows = parse_lsns_json(text).unwrap();
        assert_eq!(rows[1].key(), "net:[4026532664]");
        assert_eq!((rows[1].nprocs, rows[1].pid), (2, 4104));
        assert!(parse_lsns_json("{}").is_err());
        assert!(parse_lsns_json("not json").is_err());
    }

    #[test]
    fn finds_nsfs_mounts_and_message_queues() {
        let mi = "27 1 254:0 / / rw - ext4 /dev/vda rw\n\
                  612 27 0:4 net:[4026532664] /run/workbench/tmp/wb-1/wb-netns-pin rw - nsfs nsfs rw\n";
        assert_eq!(nsfs_mounts(mi, "net:[4026532664]"), ["/run/workbench/tmp/wb-1/wb-netns-pin"]);
        assert!(nsfs_mounts(mi, "net:[4026532665]").is_empty());
        let msg = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n\
                   2002939507          0   600           0          0     0     0     0     0     0     0          0          0 1764765000\n";
        assert_eq!(msg_queues(msg), [(2002939507, 0)]);
        assert!(queue_listed(msg));
        assert!(!queue_listed(msg.lines().next().unwrap()));
        assert_eq!(QUEUE_KEY as i64, 2002939507);
    }

    #[test]
    fn reads_ip_link_output() {
        let busybox = "1: lo: <LOOPBACK> mtu 65536 qdisc noop qlen 1000\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n";
        assert_eq!(ip_links(busybox), [("lo".to_string(), false)]);
        let host = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\n\
                    5: wbv0@if4: <BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue\n    link/ether 02:00:00:00:00:01\n";
        assert_eq!(ip_links(host), [("lo".to_string(), true), ("wbv0".to_string(), true)]);
    }

    #[test]
    fn this_hosts_table_has_this_process() {
        let me = crate::kernel::proc::self_pid();
        let procs = read_procs(Path::new("/proc"));
        let mine = procs.iter().find(|p| p.0 == me).expect("this process is listed");
        assert!(mine.2.contains_key("net"));
        let rows = group_namespaces(&procs);
        let net = inode_of("/proc/self/ns/net");
        assert!(rows.iter().any(|r| r.kind == "net" && r.inode == net && r.nprocs >= 1));
    }

    /// The table is what util-linux `lsns` prints (as root, where lsns exists).
    /// lsns counts itself, so the expected table is ours plus the lsns process
    /// (in our namespaces). Processes come and go on a busy host: a try counts
    /// when our reading is the same just before and just after lsns ran.
    #[test]
    fn the_table_matches_lsns_json() {
        let _serial = crate::kit::root_test_lock();
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: lsns needs root to read every process's namespaces");
            return;
        }
        let Some(lsns) = ["/usr/bin/lsns", "/bin/lsns"].into_iter().find(|p| Path::new(p).exists()) else {
            eprintln!("skipped: lsns (util-linux) is not installed");
            return;
        };
        let args = ["--json", "--list", "-o", "NS,TYPE,NPROCS,PID,COMMAND"];
        let mine = crate::kernel::ns::read_namespaces(Path::new("/proc"), crate::kernel::proc::self_pid()).unwrap();
        let mut last = String::new();
        let mut stable = 0;
        for _ in 0..60 {
            let a = read_procs(Path::new("/proc"));
            let child = std::process::Command::new(lsns)
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start lsns");
            let lsns_pid = child.id() as i32;
            let out = child.wait_with_output().expect("run lsns");
            assert!(out.status.success(), "lsns: {}", String::from_utf8_lossy(&out.stderr));
            let theirs = parse_lsns_json(&String::from_utf8_lossy(&out.stdout)).unwrap();
            let b = read_procs(Path::new("/proc"));
            if a != b {
                continue;
            }
            stable += 1;
            let mut with_lsns = a.clone();
            with_lsns.push((lsns_pid, format!("{lsns} {}", args.join(" ")), mine.clone()));
            let mut ours = group_namespaces(&with_lsns);
            ours.sort();
            if ours == theirs {
                return;
            }
            last = format!("ours:\n{}\nlsns:\n{}", render_lsns(&ours), render_lsns(&theirs));
        }
        if stable == 0 {
            eprintln!("skipped: the host never kept still while lsns ran (60 tries)");
            return;
        }
        panic!("our table never matched lsns --json ({stable} stable tries); the last:\n{last}");
    }

    /// The whole lesson as root, through the runner (`--json`): every step
    /// passes, and the run leaves no state file, no nsfs mount and no process
    /// behind. This is also how the pure cgroup v2 VM runs it (`scripts/v2-vm
    /// --exe 'workbench (unit tests)' --only namespaces`). Skipped unless root
    /// with a static busybox; on the shared machine run it under
    /// `flock /tmp/wb-root.lock`.
    #[test]
    fn the_lesson_passes_and_leaves_nothing_as_root() {
        let Some((_serial, _summary)) = crate::kit::run_whole_lesson_as_root("namespaces") else {
            return;
        };
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let left: Vec<&str> = mountinfo.lines().filter(|l| l.contains(PIN_FILE)).collect();
        assert!(left.is_empty(), "the bind mount is left: {left:?}");
        // The lesson's children are clones of this test binary (other tests may run other programs).
        let me = crate::kernel::proc::self_pid();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let clones: Vec<i32> = numeric_dirs(Path::new(&format!("/proc/{me}/task")))
            .into_iter()
            .flat_map(|tid| {
                std::fs::read_to_string(format!("/proc/{me}/task/{tid}/children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                    .collect::<Vec<_>>()
            })
            .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == exe))
            .collect();
        assert!(clones.is_empty(), "namespace children are left: {clones:?}");
    }

    #[test]
    fn references_find_this_process_in_its_own_namespace() {
        let net = inode_of("/proc/self/ns/net");
        let refs = references("net", net);
        let me = crate::kernel::proc::self_pid();
        assert!(refs.tasks.iter().any(|t| t.starts_with(&format!("{me}/"))), "{refs:?}");
        assert!(references("net", 1).is_empty());
    }
}
