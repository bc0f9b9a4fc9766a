//! net-modes: Docker's four network modes as namespace choices.
//!
//! `--network none` is a fresh network namespace left alone (only `lo`,
//! down); `--network host` is no new network namespace at all; `--network
//! bridge` is a fresh one wired to a bridge with a veth pair; and
//! `--network container:X` is no fresh one either but `setns(2)` into X's —
//! two containers sharing one network stack, as the containers of a
//! Kubernetes pod do. The `/proc/PID/ns/net` inodes tell them apart.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nix::sched::CloneFlags;

use crate::kit::netlab::{self, Place, Subnet};
use crate::host::Host;
use crate::kernel::child::NsChild;
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};
use crate::observe::Snapshot;

pub const DEF: LessonDef = LessonDef::of::<NetModes>(preflight).shell("inside the lesson").spots(&[("container", Spot::Procs(4))]);

fn preflight(host: &Host, opts: &LessonOptions) -> anyhow::Result<()> {
    netlab::require_bridge_lab(host, opts, "clone(CLONE_NEWNET), setns(2) and netlink link changes need CAP_SYS_ADMIN and CAP_NET_ADMIN")
}

/// Every namespace but the network one: what host and container mode clone.
fn flags_without_net() -> CloneFlags {
    netlab::container_flags() - CloneFlags::CLONE_NEWNET
}

#[derive(Default)]
struct NetModes {
    rootfs: PathBuf,
    none: Option<NsChild>,
    host: Option<NsChild>,
    bridge: Option<NsChild>,
    joined: Option<NsChild>,
    sub: Option<Subnet>,
}

fn inode(pid: i32, kind: &str) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}")).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap_or(0)
}

/// One mode's row: `net:[inode] pid:[inode]; links ...; inet ...`.
fn describe(pid: i32) -> anyhow::Result<String> {
    let s = wb_net::snapshot_of_pid(pid)?;
    let links: Vec<String> = s.links.iter().map(|l| format!("{}{}", l.name, if l.up { "" } else { "(down)" })).collect();
    let v4: Vec<&str> = s.addresses.iter().filter(|a| a.family == "inet").map(|a| a.cidr.as_str()).collect();
    Ok(format!("net:[{}] pid:[{}]; links {}; inet {}", inode(pid, "net"), inode(pid, "pid"), links.join(" "), if v4.is_empty() { "-".to_string() } else { v4.join(" ") }))
}

fn ns_facts(label: &str, pid: i32) -> Snapshot {
    Snapshot {
        label: label.into(),
        facts: [("net namespace inode".to_string(), inode(pid, "net").to_string()), ("pid namespace inode".to_string(), inode(pid, "pid").to_string())].into(),
        ..Default::default()
    }
}

fn same(a: u64, b: u64) -> &'static str {
    if a == b {
        "same"
    } else {
        "different"
    }
}

impl NetModes {
    fn rootfs(&mut self, cx: &Cx) -> anyhow::Result<PathBuf> {
        if self.rootfs.as_os_str().is_empty() {
            self.rootfs = netlab::build_container_rootfs(cx, "containers", "container")?;
        }
        Ok(self.rootfs.clone())
    }
}

fn pid_of(c: &Option<NsChild>, what: &str) -> anyhow::Result<i32> {
    c.as_ref().map(|c| c.pid()).ok_or_else(|| anyhow::anyhow!("no {what} container: an earlier step did not run"))
}

impl Lesson for NetModes {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        let me = crate::kernel::proc::self_pid();
        match step {
            "none" => {
                let rootfs = self.rootfs(cx)?;
                let (mut child, said) = netlab::start_container(netlab::container_flags(), &rootfs, "none", None)?;
                for (place, s) in said {
                    r.say(place, s, "");
                }
                let ip = netlab::run_in(&mut child, "/bin/busybox", &["ip".into(), "link".into()])?;
                r.ran("none", "ip link", &ip);
                let pid = child.pid();
                r.observe(ns_facts("workbench (host)", me), ns_facts(&format!("none (pid {pid})"), pid));
                r.check("net namespace vs the host's", "different", same(inode(me, "net"), inode(pid, "net")), inode(me, "net") != inode(pid, "net"));
                let names = netlab::without_fallback_tunnels(&netlab::link_names(pid)?);
                r.check("links (besides the kernel's fallback tunnels)", "lo", names.join(" "), names == ["lo"]);
                self.none = Some(child);
            }
            "host" => {
                let rootfs = self.rootfs(cx)?;
                let (mut child, said) = netlab::start_container(flags_without_net(), &rootfs, "host-mode", None)?;
                for (place, s) in said {
                    r.say(place, s, "");
                }
                let ip = netlab::run_in(&mut child, "/bin/busybox", &["ip".into(), "-4".into(), "addr".into()])?;
                r.ran("host-mode", "ip -4 addr", &ip);
                let pid = child.pid();
                r.observe(ns_facts("workbench (host)", me), ns_facts(&format!("host-mode (pid {pid})"), pid));
                r.check("net namespace vs the host's", "same", same(inode(me, "net"), inode(pid, "net")), inode(me, "net") == inode(pid, "net"));
                r.check("pid namespace vs the host's", "different", same(inode(me, "pid"), inode(pid, "pid")), inode(me, "pid") != inode(pid, "pid"));
                // Both lists at (nearly) the same moment: other programs may add links meanwhile.
                let (mut host_links, mut its) = (netlab::link_names(me)?, netlab::link_names(pid)?);
                for _ in 0..5 {
                    if host_links == its {
                        break;
                    }
                    (host_links, its) = (netlab::link_names(me)?, netlab::link_names(pid)?);
                }
                r.check("links it sees", host_links.join(" "), its.join(" "), host_links == its && its.len() > 1);
                self.host = Some(child);
            }
            "bridge" => {
                let rootfs = self.rootfs(cx)?;
                let sub = netlab::reserve_subnet(cx.options.subnet.as_deref(), netlab::CONTAINER_SUBNETS, &[])?;
                self.sub = Some(sub);
                let (mut child, said) = netlab::start_container(netlab::container_flags(), &rootfs, "bridge-mode", None)?;
                for (place, s) in said {
                    r.say(place, s, "");
                }
                let pid = child.pid();
                let bridge = netlab::link_name(&cx.run_id, "br")?;
                let host_end = netlab::link_name(&cx.run_id, "h0")?;
                let peer = netlab::link_name(&cx.run_id, "c0")?;
                let sides = [("host", me), ("bridge-mode", pid)];
                let before = netlab::lab_snapshot("host + bridge-mode", &sides)?;
                let ns = Place::Ns { pid, label: "bridge-mode".into() };
                let mut ops = netlab::bridge_ops(&bridge, &sub);
                ops.extend(netlab::veth_ops(&host_end, &peer, &bridge));
                ops.extend(netlab::inside_ops(&peer, &ns, pid, &sub.peer_cidr(), Some(&sub.host_ip())));
                netlab::apply_ops(r, &ops)?;
                netlab::wait_oper_up(pid, "eth0", std::time::Duration::from_secs(3))?;
                // A server only its own network namespace can reach: bound to 127.0.0.1.
                let inner = child.spawn_inside(&["/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:80", "-h", "/www"])?;
                r.say("bridge-mode", "httpd -f -p 127.0.0.1:80 -h /www &   (loopback only)", format!("[1] {inner}"));
                let after = netlab::lab_snapshot("host + bridge-mode", &sides)?;
                r.observe(before, after);
                let ping = netlab::run_in(&mut child, "/bin/busybox", &netlab::ping_argv(&sub.host_ip()))?;
                r.ran("bridge-mode", netlab::ping_argv(&sub.host_ip()).join(" "), &ping);
                let n = netlab::ping_received(&ping.stdout);
                r.check(format!("bridge-mode → bridge {}", sub.host_ip()), "replies", format!("{n} of 2 replies"), n >= 1);
                r.check("net namespace vs the host's", "different", same(inode(me, "net"), inode(pid, "net")), inode(me, "net") != inode(pid, "net"));
                self.bridge = Some(child);
            }
            "container" => {
                let rootfs = self.rootfs(cx)?;
                let sub = self.sub.ok_or_else(|| anyhow::anyhow!("no subnet: the bridge step did not run"))?;
                let target = pid_of(&self.bridge, "bridge-mode")?;
                let path = wb_net::netns_path_of_pid(target);
                let (mut child, said) = netlab::start_container(flags_without_net(), &rootfs, "joined", Some(&path))?;
                for (place, s) in said {
                    r.say(place, s, "");
                }
                let pid = child.pid();
                let ip = netlab::run_in(&mut child, "/bin/busybox", &["ip".into(), "-4".into(), "addr".into(), "show".into(), "eth0".into()])?;
                r.ran("joined", "ip -4 addr show eth0", &ip);
                let ok = netlab::wait_until(std::time::Duration::from_secs(3), || {
                    let probe = netlab::run_in(&mut child, "/bin/busybox", &netlab::wget_argv("http://127.0.0.1:80/", 2))?;
                    Ok(probe.success())
                })?;
                let get = netlab::run_in(&mut child, "/bin/busybox", &netlab::wget_argv("http://127.0.0.1:80/", 2))?;
                r.ran("joined", netlab::wget_argv("http://127.0.0.1:80/", 2).join(" "), &get);
                r.observe(ns_facts(&format!("bridge-mode (pid {target})"), target), ns_facts(&format!("joined (pid {pid})"), pid));
                r.check("net namespace vs bridge-mode's", "same", same(inode(target, "net"), inode(pid, "net")), inode(target, "net") == inode(pid, "net"));
                r.check("pid namespace vs bridge-mode's", "different", same(inode(target, "pid"), inode(pid, "pid")), inode(target, "pid") != inode(pid, "pid"));
                let has = ip.stdout.contains(&sub.peer_cidr());
                r.check("eth0 address it sees", sub.peer_cidr(), if has { sub.peer_cidr() } else { "absent".into() }, has);
                r.check("127.0.0.1:80 (bridge-mode's loopback-only httpd)", netlab::INDEX_HTML.trim(), if get.success() { get.stdout.trim().to_string() } else { get.describe() }, ok && get.stdout == netlab::INDEX_HTML);
                self.joined = Some(child);
            }
            "side-by-side" => {
                let rows = [
                    ("0 workbench (the host)", Some(me)),
                    ("1 none", self.none.as_ref().map(NsChild::pid)),
                    ("2 host", self.host.as_ref().map(NsChild::pid)),
                    ("3 bridge", self.bridge.as_ref().map(NsChild::pid)),
                    ("4 container:bridge", self.joined.as_ref().map(NsChild::pid)),
                ];
                let mut facts = BTreeMap::new();
                for (name, pid) in rows {
                    let pid = pid.ok_or_else(|| anyhow::anyhow!("{name}: an earlier step did not run"))?;
                    facts.insert(name.to_string(), describe(pid)?);
                }
                let table: Vec<String> = facts.iter().map(|(k, v)| format!("{k:<22} {v}")).collect();
                r.say("host", "for p in <pids>; do readlink /proc/$p/ns/net /proc/$p/ns/pid; nsenter -t $p -n ip -br addr; done", table.join("\n"));
                let before = Snapshot { label: "the host".into(), facts: facts.iter().filter(|(k, _)| k.starts_with('0')).map(|(k, v)| (k.clone(), v.clone())).collect(), ..Default::default() };
                r.observe(before, Snapshot { label: "all modes".into(), facts, ..Default::default() });
                let net = |c: &Option<NsChild>| c.as_ref().map(|c| inode(c.pid(), "net")).unwrap_or(0);
                let host_net = inode(me, "net");
                let (none, host, bridge, joined) = (net(&self.none), net(&self.host), net(&self.bridge), net(&self.joined));
                r.check("none: its own net namespace", "differs from host", same(none, host), none != host);
                r.check("host: the host's net namespace", "same as host", same(host, host_net), host == host_net);
                r.check("bridge: its own net namespace", "differs from host and none", format!("{} / {}", same(bridge, host_net), same(bridge, none)), bridge != host_net && bridge != none);
                r.check("container: bridge's net namespace", "same as bridge", same(joined, bridge), joined == bridge);
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        crate::kit::sh_in(self.joined.as_mut().ok_or_else(|| anyhow::anyhow!("the lesson did not start its containers"))?, cx.lesson)
    }
}
