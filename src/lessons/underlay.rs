//! underlay: containers as peers on the LAN, with no NAT and no tunnel.
//!
//! A container on an underlay network holds an address of the machines' own
//! LAN and answers ARP with its own MAC. A Linux bridge can do it once it owns
//! the host's NIC (the NIC becomes a port, the bridge takes its address), with
//! the containers' veth ends as further ports; a macvlan device does it with a
//! second MAC address on the NIC, though the NIC's own host cannot reach it.
//! The LAN is simulated: a switch and two hosts, each a network namespace.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::host::Host;
use crate::kernel::child::{NsChild, RunOutput};
use crate::kit::netlab::{self, Place, Subnet};
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};
use crate::state::{self, Resource};
use wb_net::{Nexthop, Op};

pub const DEF: LessonDef = LessonDef::of::<Underlay>(preflight)
    .shell("inside the lesson")
    .spots(&[("container", Spot::Procs(4)), ("macvlan", Spot::Procs(5))]);

/// Lab subnets for the simulated LAN, tried in order (reserved per run).
pub const LAN_SUBNETS: &[&str] = &[
    "10.217.0.0/24",
    "10.217.1.0/24",
    "10.217.2.0/24",
    "10.217.3.0/24",
    "10.217.4.0/24",
    "10.217.5.0/24",
    "10.217.6.0/24",
    "10.217.7.0/24",
    "172.29.217.0/24",
    "192.168.217.0/24",
];

/// Host numbers on the LAN: host B (the gateway), host A, the bridged
/// container, the macvlan container, host B's own macvlan.
const HOST_B: u32 = 1;
const HOST_A: u32 = 2;
const C1: u32 = 10;
const C2: u32 = 11;
const B_MACVLAN: u32 = 12;

/// The LAN address `n` of `sub` (`10.217.0.10`).
pub fn nth(sub: &Subnet, n: u32) -> String {
    Ipv4Addr::from(u32::from(sub.network) + n).to_string()
}

fn nth_cidr(sub: &Subnet, n: u32) -> String {
    format!("{}/{}", nth(sub, n), sub.prefix)
}

/// The LAN needs host numbers up to 12 and a broadcast address above them.
pub fn check_lan_prefix(sub: &Subnet) -> Result<(), String> {
    if sub.prefix > 28 {
        return Err(format!(
            "--subnet {} is too small for the LAN: it needs addresses up to .{B_MACVLAN}, so give a /28 or larger",
            sub.cidr()
        ));
    }
    Ok(())
}

fn preflight(host: &Host, opts: &LessonOptions) -> anyhow::Result<()> {
    host.require_root("clone(CLONE_NEWNET) and netlink link changes need CAP_SYS_ADMIN and CAP_NET_ADMIN")?;
    host.require_static_busybox()?;
    crate::host::features::require_link_kinds(&["veth", "bridge", "macvlan"])?;
    let sub = netlab::free_subnet(opts.subnet.as_deref(), LAN_SUBNETS, &[])?;
    check_lan_prefix(&sub).map_err(anyhow::Error::msg)?;
    Ok(())
}

/// The ARP table of a network namespace (`/proc/PID/net/arp`): complete
/// entries only (flag 0x2), IP → MAC, with the device.
pub fn parse_arp(text: &str) -> BTreeMap<String, (String, String)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [ip, _hw, flags, mac, _mask, dev] = f.as_slice() else {
                return None;
            };
            let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
            (flags & 0x2 != 0).then(|| (ip.to_string(), (mac.to_lowercase(), dev.to_string())))
        })
        .collect()
}

fn arp_of(pid: i32) -> BTreeMap<String, (String, String)> {
    parse_arp(&std::fs::read_to_string(format!("/proc/{pid}/net/arp")).unwrap_or_default())
}

/// The addresses ping's reply lines came from (`64 bytes from 10.217.0.10: …`).
pub fn reply_sources(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_once("bytes from ")?.1.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    v.dedup();
    v
}

/// One echo request given up after a second (busybox ping waits `-W`
/// seconds for the last reply, 10 by default).
fn ping1(ip: &str) -> Vec<String> {
    ["ping", "-c", "1", "-w", "1", "-W", "1", ip].map(String::from).to_vec()
}

/// The NAT rules a namespace holds: nft's ruleset lines with `nat`, and the
/// legacy iptables tables loaded in it (`/proc/PID/net/ip_tables_names`).
fn nat_rules(pid: i32) -> String {
    let legacy = std::fs::read_to_string(format!("/proc/{pid}/net/ip_tables_names")).unwrap_or_default();
    let nft = wb_net::in_netns_of(pid, || Ok(std::process::Command::new("nft").args(["list", "ruleset"]).output()))
        .ok()
        .and_then(|o| o.ok())
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    let mut found: Vec<String> = nft
        .lines()
        .filter(|l| l.contains("nat") || l.contains("masquerade"))
        .map(|l| l.trim().to_string())
        .collect();
    found.extend(legacy.lines().filter(|l| *l == "nat").map(|l| format!("iptables table {l}")));
    found.join("; ")
}

#[derive(Default)]
struct Underlay {
    lan: Option<NsChild>,
    a: Option<NsChild>,
    b: Option<NsChild>,
    c1: Option<NsChild>,
    c2: Option<NsChild>,
    sub: Option<Subnet>,
    bridge: String,
}

fn pid_of(c: &Option<NsChild>, what: &str) -> anyhow::Result<i32> {
    c.as_ref().map(|c| c.pid()).ok_or_else(|| anyhow::anyhow!("no {what}: an earlier step did not run"))
}

fn place(pid: i32, label: &str) -> Place {
    Place::Ns { pid, label: label.into() }
}

/// Apply `ops` that create `links` in a namespace: recorded in the ledger first.
fn record_links(links: &[&str]) -> anyhow::Result<()> {
    for l in links {
        state::record(Resource::Link { name: l.to_string() })?;
    }
    Ok(())
}

impl Underlay {
    fn sub(&self) -> anyhow::Result<Subnet> {
        self.sub.ok_or_else(|| anyhow::anyhow!("no LAN subnet: the lan step did not run"))
    }

    fn sides(&self) -> Vec<(&'static str, i32)> {
        let mut v = Vec::new();
        for (name, c) in [("host-a", &self.a), ("host-b", &self.b), ("c1", &self.c1), ("c2", &self.c2)] {
            if let Some(c) = c {
                v.push((name, c.pid()));
            }
        }
        v
    }

    /// Do `ops`, showing the lab's namespaces before and after.
    fn wire(&self, r: &mut StepReport, ops: &[(Place, Op)], settle: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
        let before = netlab::lab_snapshot("the lab", &self.sides())?;
        netlab::apply_ops(r, ops)?;
        settle()?;
        let sides = self.sides();
        let after = netlab::lab_snapshot("the lab", &sides)?;
        r.observe(before, after);
        Ok(())
    }

    /// Run a busybox applet in one of the lab's namespaces and show it.
    fn run(&mut self, r: &mut StepReport, who: &str, argv: &[String]) -> anyhow::Result<RunOutput> {
        let c = match who {
            "host-a" => self.a.as_mut(),
            "host-b" => self.b.as_mut(),
            "c1" => self.c1.as_mut(),
            _ => self.c2.as_mut(),
        }
        .ok_or_else(|| anyhow::anyhow!("no {who}: an earlier step did not run"))?;
        let out = netlab::run_in(c, "/bin/busybox", argv)?;
        r.ran(who, argv.join(" "), &out);
        Ok(out)
    }

    /// Ping `ip` from `who` (2 echoes) and check the replies come from `ip` itself.
    fn ping_ok(&mut self, r: &mut StepReport, who: &str, ip: &str, what: &str) -> anyhow::Result<()> {
        let out = self.run(r, who, &netlab::ping_argv(ip))?;
        let n = netlab::ping_received(&out.stdout);
        let from = reply_sources(&out.stdout);
        r.check(
            format!("{who} → {what} {ip}: replies, from the address pinged"),
            format!("replies from {ip}"),
            format!("{n} of 2 replies{}", if from.is_empty() { String::new() } else { format!(" from {}", from.join(", ")) }),
            n >= 1 && from == [ip.to_string()],
        );
        Ok(())
    }

    /// Check that `who`'s ARP table maps `ip` to `mac` (and that it is not `not_mac`, the host's).
    fn arp_check(&self, r: &mut StepReport, who: &str, pid: i32, ip: &str, mac: &str, not: (&str, &str)) {
        let arp = arp_of(pid);
        let got = arp.get(ip).map(|(m, _)| m.clone());
        r.check(
            format!("{who}'s ARP table: {ip} is at the container's own MAC, not {}'s ({})", not.0, not.1),
            mac.to_string(),
            got.clone().unwrap_or_else(|| "no entry".into()),
            got.as_deref() == Some(mac) && mac != not.1,
        );
    }
}

fn mac_of(pid: i32, link: &str) -> anyhow::Result<String> {
    wb_net::snapshot_of_pid(pid)?
        .link(link)
        .and_then(|l| l.mac.clone())
        .ok_or_else(|| anyhow::anyhow!("no {link} with a MAC address in the namespace of pid {pid}"))
}

impl Lesson for Underlay {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        let me = crate::kernel::proc::self_pid();
        match step {
            "lan" => {
                let sub = netlab::reserve_subnet(cx.options.subnet.as_deref(), LAN_SUBNETS, &[])?;
                check_lan_prefix(&sub).map_err(crate::error::UsageError)?;
                self.sub = Some(sub);
                let rootfs = netlab::build_container_rootfs(cx, "lab", "lab")?;
                for name in ["lan", "host-a", "host-b"] {
                    let (child, said) = netlab::start_container(netlab::container_flags(), &rootfs, name, None)?;
                    for (p, s) in said {
                        r.say(p, s, "");
                    }
                    match name {
                        "lan" => self.lan = Some(child),
                        "host-a" => self.a = Some(child),
                        _ => self.b = Some(child),
                    }
                }
                let (lan, a, b) = (pid_of(&self.lan, "lan")?, pid_of(&self.a, "host-a")?, pid_of(&self.b, "host-b")?);
                let l = |s: &str| netlab::link_name(&cx.run_id, s);
                let (sw, a0, a1, b0, b1) = (l("sw")?, l("a0")?, l("a1")?, l("b0")?, l("b1")?);
                let pl = place(lan, "lan");
                let mut ops = Vec::new();
                for (inner, outer, pid, label, addr, gw) in [
                    (&a0, &a1, a, "host-a", nth_cidr(&sub, HOST_A), Some(nth(&sub, HOST_B))),
                    (&b0, &b1, b, "host-b", nth_cidr(&sub, HOST_B), None),
                ] {
                    ops.push((Place::Host, Op::CreateVeth { name: inner.clone(), peer: outer.clone() }));
                    ops.push((Place::Host, Op::MoveToNetnsPid { link: outer.clone(), pid: lan }));
                    ops.push((pl.clone(), Op::SetMaster { link: outer.clone(), bridge: sw.clone() }));
                    ops.push((pl.clone(), Op::SetUp { link: outer.clone() }));
                    ops.extend(netlab::inside_ops(inner, &place(pid, label), pid, &addr, gw.as_deref()));
                }
                let mut all = vec![(pl.clone(), Op::CreateBridge { name: sw.clone() }), (pl, Op::SetUp { link: sw.clone() })];
                all.extend(ops);
                let mut sides = vec![("lan", lan)];
                sides.extend(self.sides());
                let before = netlab::lab_snapshot("lan + host-a + host-b", &sides)?;
                // apply_ops records every bridge and veth in the ledger before
                // creating it, wherever it is created.
                netlab::apply_ops(r, &all)?;
                netlab::wait_oper_up(a, "eth0", Duration::from_secs(3))?;
                netlab::wait_oper_up(b, "eth0", Duration::from_secs(3))?;
                r.observe(before, netlab::lab_snapshot("lan + host-a + host-b", &sides)?);
                r.say("workbench", "the plan", format!("LAN {}: host B {} (the gateway), host A {}, containers {} and {}", sub.cidr(), nth(&sub, HOST_B), nth(&sub, HOST_A), nth(&sub, C1), nth(&sub, C2)));
                let inodes: std::collections::BTreeSet<u64> = [me, lan, a, b].iter().map(|p| netlab::net_inode(*p)).collect();
                r.check_eq("network namespaces: workbench, lan, host-a, host-b", 4, inodes.len());
                self.ping_ok(r, "host-a", &nth(&sub, HOST_B), "host B")?;
                let left: Vec<String> = netlab::link_names(me)?.into_iter().filter(|n| [&sw, &a0, &a1, &b0, &b1].contains(&n)).collect();
                r.check("lab links left on the real host", "none", if left.is_empty() { "none".into() } else { left.join(" ") }, left.is_empty());
            }
            "bridge" => {
                let sub = self.sub()?;
                let a = pid_of(&self.a, "host-a")?;
                self.bridge = netlab::link_name(&cx.run_id, "dr0")?;
                let br = self.bridge.clone();
                let pa = place(a, "host-a");
                let ops = vec![
                    (pa.clone(), Op::CreateBridge { name: br.clone() }),
                    (pa.clone(), Op::SetUp { link: br.clone() }),
                    (pa.clone(), Op::SetMaster { link: "eth0".into(), bridge: br.clone() }),
                    (pa.clone(), Op::DeleteRoute { dst: "default".into() }),
                    (pa.clone(), Op::DeleteAddress { link: "eth0".into(), cidr: nth_cidr(&sub, HOST_A) }),
                    (pa.clone(), Op::AddAddress { link: br.clone(), cidr: nth_cidr(&sub, HOST_A) }),
                    (pa, Op::AddRouteDefault { gateway: nth(&sub, HOST_B) }),
                ];
                self.wire(r, &ops, || netlab::wait_oper_up(a, &br, Duration::from_secs(3)).map(drop))?;
                let snap = wb_net::snapshot_of_pid(a)?;
                let eth0 = snap.link("eth0");
                r.check(
                    "host-a: eth0 is a port of the bridge",
                    format!("master {br}"),
                    eth0.and_then(|l| l.master.clone()).map(|m| format!("master {m}")).unwrap_or_else(|| "no master".into()),
                    eth0.and_then(|l| l.master.as_deref()) == Some(br.as_str()),
                );
                let addrs = |link: &str| -> Vec<String> { snap.addresses.iter().filter(|x| x.link == link && x.family == "inet").map(|x| x.cidr.clone()).collect() };
                let (on_eth0, on_br) = (addrs("eth0"), addrs(&br));
                r.check("host-a: IPv4 addresses on eth0", "none", if on_eth0.is_empty() { "none".into() } else { on_eth0.join(" ") }, on_eth0.is_empty());
                r.check(format!("host-a: IPv4 address on {br}"), nth_cidr(&sub, HOST_A), on_br.join(" "), on_br == [nth_cidr(&sub, HOST_A)]);
                let default = snap.routes.iter().find(|x| x.dst == "default").and_then(|x| x.dev.clone());
                r.check("host-a: the default route's device", br.clone(), default.clone().unwrap_or_else(|| "no default route".into()), default.as_deref() == Some(br.as_str()));
                self.ping_ok(r, "host-a", &nth(&sub, HOST_B), "host B (through the bridge now)")?;
            }
            "container" => {
                let sub = self.sub()?;
                let (a, b) = (pid_of(&self.a, "host-a")?, pid_of(&self.b, "host-b")?);
                let rootfs = cx.workdir.join("lab-rootfs");
                let (child, said) = netlab::start_container(netlab::container_flags(), &rootfs, "c1", None)?;
                for (p, s) in said {
                    r.say(p, s, "");
                }
                let c1 = child.pid();
                self.c1 = Some(child);
                let (h1, p1) = (netlab::link_name(&cx.run_id, "h1")?, netlab::link_name(&cx.run_id, "c1")?);
                let pa = place(a, "host-a");
                let mut ops = vec![
                    (Place::Host, Op::CreateVeth { name: h1.clone(), peer: p1.clone() }),
                    (Place::Host, Op::MoveToNetnsPid { link: h1.clone(), pid: a }),
                    (pa.clone(), Op::SetMaster { link: h1.clone(), bridge: self.bridge.clone() }),
                    (pa, Op::SetUp { link: h1 }),
                ];
                ops.extend(netlab::inside_ops(&p1, &place(c1, "c1"), c1, &nth_cidr(&sub, C1), Some(&nth(&sub, HOST_B))));
                self.wire(r, &ops, || netlab::wait_oper_up(c1, "eth0", Duration::from_secs(3)).map(drop))?;
                let ip = nth(&sub, C1);
                self.ping_ok(r, "host-b", &ip, "container c1")?;
                let arp = std::fs::read_to_string(format!("/proc/{b}/net/arp")).unwrap_or_default();
                r.say("host-b", "cat /proc/net/arp", arp.trim_end().to_string());
                let (c1_mac, a_mac) = (mac_of(c1, "eth0")?, mac_of(a, &self.bridge)?);
                self.arp_check(r, "host-b", b, &ip, &c1_mac, ("host A", &a_mac));
                let lan = pid_of(&self.lan, "lan")?;
                let mut nat = Vec::new();
                for (name, pid) in [("lan", lan), ("host-a", a), ("host-b", b), ("c1", c1)] {
                    let n = nat_rules(pid);
                    if !n.is_empty() {
                        nat.push(format!("{name}: {n}"));
                    }
                }
                r.check("NAT rules in the lab's namespaces (nft ruleset, iptables nat table)", "none", if nat.is_empty() { "none".into() } else { nat.join("; ") }, nat.is_empty());
            }
            "macvlan" => {
                let sub = self.sub()?;
                let (a, b) = (pid_of(&self.a, "host-a")?, pid_of(&self.b, "host-b")?);
                // First: host A's NIC is a bridge port, and refuses a macvlan.
                let mx = netlab::link_name(&cx.run_id, "mx")?;
                record_links(&[&mx])?;
                let op = Op::CreateMacvlan { name: mx.clone(), dev: "eth0".into() };
                let res = wb_net::in_netns_of(a, || wb_net::apply(&op));
                let cmd = netlab::command_at(&place(a, "host-a"), &op);
                let errno = res.as_ref().err().and_then(|e| e.errno());
                r.say("host-a", cmd, match &res {
                    Ok(_) => "(created)".to_string(),
                    Err(e) => format!("RTNETLINK answers: {e}"),
                });
                r.check("host-a: a macvlan on eth0, a bridge port", "refused: EBUSY (the bridge holds eth0's receive path)", match errno {
                    Some(e) => format!("refused: {}", nix::errno::Errno::from_raw(e)),
                    None if res.is_ok() => "created".into(),
                    None => format!("{:?}", res.err()),
                }, errno == Some(libc::EBUSY));
                // Then host B's NIC: a macvlan child moved into c2.
                let rootfs = cx.workdir.join("lab-rootfs");
                let (child, said) = netlab::start_container(netlab::container_flags(), &rootfs, "c2", None)?;
                for (p, s) in said {
                    r.say(p, s, "");
                }
                let c2 = child.pid();
                self.c2 = Some(child);
                let mv = netlab::link_name(&cx.run_id, "mv")?;
                record_links(&[&mv])?;
                let pb = place(b, "host-b");
                let pc = place(c2, "c2");
                let ops = vec![
                    (pb.clone(), Op::CreateMacvlan { name: mv.clone(), dev: "eth0".into() }),
                    (pb, Op::MoveToNetnsPid { link: mv.clone(), pid: c2 }),
                    (pc.clone(), Op::Rename { link: mv, new_name: "eth0".into() }),
                    (pc.clone(), Op::AddAddress { link: "eth0".into(), cidr: nth_cidr(&sub, C2) }),
                    (pc.clone(), Op::SetUp { link: "lo".into() }),
                    (pc.clone(), Op::SetUp { link: "eth0".into() }),
                    (pc, Op::AddRouteDefault { gateway: nth(&sub, HOST_B) }),
                ];
                self.wire(r, &ops, || netlab::wait_oper_up(c2, "eth0", Duration::from_secs(3)).map(drop))?;
                let snap = wb_net::snapshot_of_pid(c2)?;
                let kind = snap.link("eth0").and_then(|l| l.kind.clone());
                r.check("c2: eth0's kind", "macvlan", kind.clone().unwrap_or_else(|| "none".into()), kind.as_deref() == Some("macvlan"));
                let ip = nth(&sub, C2);
                self.ping_ok(r, "host-a", &ip, "container c2")?;
                let (c2_mac, b_mac) = (mac_of(c2, "eth0")?, mac_of(b, "eth0")?);
                self.arp_check(r, "host-a", a, &ip, &c2_mac, ("host B", &b_mac));
                let out = self.run(r, "host-b", &ping1(&ip))?;
                let n = netlab::ping_received(&out.stdout);
                r.check(format!("host-b → its own macvlan container {ip} (parent and child are isolated)"), "no reply", format!("{n} replies"), n == 0 && !out.success());
            }
            "host-side" => {
                let sub = self.sub()?;
                let b = pid_of(&self.b, "host-b")?;
                let mh = netlab::link_name(&cx.run_id, "mh")?;
                record_links(&[&mh])?;
                let pb = place(b, "host-b");
                let ip = nth(&sub, C2);
                let ops = vec![
                    (pb.clone(), Op::CreateMacvlan { name: mh.clone(), dev: "eth0".into() }),
                    (pb.clone(), Op::AddAddress { link: mh.clone(), cidr: format!("{}/32", nth(&sub, B_MACVLAN)) }),
                    (pb.clone(), Op::SetUp { link: mh.clone() }),
                    (pb, Op::AddRoute { dst: format!("{ip}/32"), via: Nexthop::Dev(mh.clone()) }),
                ];
                self.wire(r, &ops, || netlab::wait_oper_up(b, &mh, Duration::from_secs(3)).map(drop))?;
                let snap = wb_net::snapshot_of_pid(b)?;
                let route = snap.routes_to(&format!("{ip}/32")).any(|x| x.dev.as_deref() == Some(mh.as_str())) || snap.routes_to(&ip).any(|x| x.dev.as_deref() == Some(mh.as_str()));
                r.check(format!("host-b: route to c2 {ip}"), format!("dev {mh}"), if route { format!("dev {mh}") } else { "absent".into() }, route);
                self.ping_ok(r, "host-b", &ip, "container c2 (through its own macvlan)")?;
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        crate::kit::sh_in(self.b.as_mut().ok_or_else(|| anyhow::anyhow!("the lesson did not start its hosts"))?, cx.lesson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_addresses_follow_the_plan() {
        let sub = netlab::parse_subnet("10.217.0.0/24").unwrap();
        assert_eq!(nth(&sub, HOST_B), "10.217.0.1");
        assert_eq!(nth_cidr(&sub, C1), "10.217.0.10/24");
        assert_eq!(nth(&sub, C2), "10.217.0.11");
        assert!(check_lan_prefix(&sub).is_ok());
        assert!(check_lan_prefix(&netlab::parse_subnet("10.217.0.0/28").unwrap()).is_ok());
        let e = check_lan_prefix(&netlab::parse_subnet("10.217.0.0/29").unwrap()).unwrap_err();
        assert!(e.starts_with("--subnet 10.217.0.0/29") && e.contains("/28") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn parses_the_arp_table() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device\n\
                    10.217.0.10      0x1         0x2         AE:3a:82:d5:b7:ac     *        eth0\n\
                    10.217.0.11      0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        let arp = parse_arp(text);
        assert_eq!(arp.len(), 1, "incomplete entries are left out");
        assert_eq!(arp["10.217.0.10"], ("ae:3a:82:d5:b7:ac".to_string(), "eth0".to_string()));
        assert!(parse_arp("").is_empty());
        assert!(parse_arp("header\ngarbage line\n").is_empty());
    }

    #[test]
    fn reads_who_replied() {
        let out = "PING 10.217.0.10 (10.217.0.10): 56 data bytes\n64 bytes from 10.217.0.10: seq=0 ttl=64 time=0.1 ms\n64 bytes from 10.217.0.10: seq=1 ttl=64 time=0.1 ms\n";
        assert_eq!(reply_sources(out), ["10.217.0.10"]);
        assert_eq!(reply_sources("64 bytes from 10.217.0.2: seq=0\n64 bytes from 10.217.0.10: seq=1\n"), ["10.217.0.2", "10.217.0.10"]);
        assert!(reply_sources("2 packets transmitted, 0 packets received").is_empty());
    }

    /// The whole lesson as root (this covers the pure v2 VM too:
    /// `scripts/v2-vm --exe 'workbench (unit tests)' --only underlay`).
    /// Skipped unless root with a static busybox; on the shared machine run it
    /// under `flock /tmp/wb-root.lock`.
    #[test]
    fn the_lesson_passes_and_leaves_nothing_as_root() {
        let Some((_serial, summary)) = crate::kit::run_whole_lesson_as_root("underlay") else {
            return;
        };
        let left: Vec<String> = netlab::link_names(crate::kernel::proc::self_pid())
            .unwrap()
            .into_iter()
            .filter(|l| l.starts_with(&format!("wb{}", summary.run_id)))
            .collect();
        assert!(left.is_empty(), "links left on the host: {left:?}");
    }
}
