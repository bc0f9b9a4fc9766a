//! host-routes: container subnets routed between hosts, with no tunnel.
//!
//! Flannel's host-gw backend (and Calico, which spreads the same routes with
//! BGP) connects the container subnets of different machines with plain IP
//! routing: each host has a route `OTHER-SUBNET via OTHER-HOST` and forwards
//! between its bridge and its underlay link. Packets cross the underlay with
//! the containers' own addresses, each host lowering their TTL; the price is
//! that the next hop must be reachable on the same layer-2 segment.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::host::Host;
use crate::kit::netlab::{self, CONTAINER_SUBNETS};
use crate::kit::twohosts::{self, PacketTap, SeenPacket, TwoHosts, CONTAINERS, HOSTS, UNDERLAY_DEV};
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};
use crate::lessons::vxlan_overlay::parse_snmp;
use crate::observe::Snapshot;
use wb_net::{Nexthop, Op};

pub const DEF: LessonDef = LessonDef::of::<HostRoutes>(preflight)
    .shell("inside the lesson")
    .spots(&[("containers", Spot::Procs(4)), ("forward", Spot::Procs(4))]);

/// The TTL a Linux sender puts in its packets (`net.ipv4.ip_default_ttl`).
pub const DEFAULT_TTL: u8 = 64;
/// The routers between c1 and c2: host-a and host-b.
pub const ROUTED_HOPS: u8 = 2;
/// The off-link gateway and destination of the last step.
const OFF_LINK_GW: &str = "10.99.0.1";
const OFF_LINK_DST: &str = "10.99.2.0/24";
/// Link kinds that wrap packets (none may exist in the lab).
const TUNNEL_KINDS: &[&str] =
    &["vxlan", "geneve", "tun", "ipip", "gre", "gretap", "sit", "ip6tnl", "ip6gre", "wireguard", "vti", "bareudp"];

fn preflight(host: &Host, _opts: &LessonOptions) -> anyhow::Result<()> {
    host.require_root("clone(CLONE_NEWNET) and netlink route changes need CAP_SYS_ADMIN and CAP_NET_ADMIN")?;
    host.require_static_busybox()?;
    crate::host::features::require_link_kinds(&["veth", "bridge"])?;
    let first = netlab::free_subnet(None, CONTAINER_SUBNETS, &[])?;
    netlab::free_subnet(None, CONTAINER_SUBNETS, &[first])?;
    Ok(())
}

/// The TTLs of ping's reply lines (`... ttl=62 time=...`), in order (pure).
pub fn reply_ttls(out: &str) -> Vec<u8> {
    out.lines()
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("ttl=")?.parse().ok()))
        .collect()
}

/// Packets transmitted, from ping's summary line (pure).
pub fn ping_sent(out: &str) -> u64 {
    out.lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The routes of `snap` that would carry a packet to `ip` (pure): `default`
/// and every prefix containing it, as `DST via GW dev DEV`.
pub fn routes_covering(snap: &wb_net::NetSnapshot, ip: Ipv4Addr) -> Vec<String> {
    snap.routes
        .iter()
        .filter(|r| r.family == "inet" && r.table == 254)
        .filter(|r| match wb_net::parse_route_dst(&r.dst) {
            Ok(None) => true,
            Ok(Some(net)) => net.contains(&std::net::IpAddr::V4(ip)),
            Err(_) => false,
        })
        .map(route_line)
        .collect()
}

fn route_line(r: &wb_net::Route) -> String {
    let mut s = r.dst.clone();
    if let Some(g) = &r.gateway {
        s.push_str(&format!(" via {g}"));
    }
    if let Some(d) = &r.dev {
        s.push_str(&format!(" dev {d}"));
    }
    s
}

/// The links of one namespace that wrap packets, by `name (kind)` (pure): a
/// tunnel kind, except the kernel's own fallback devices while they are down.
pub fn tunnel_links(snap: &wb_net::NetSnapshot) -> Vec<String> {
    snap.links
        .iter()
        .filter(|l| l.kind.as_deref().is_some_and(|k| TUNNEL_KINDS.contains(&k)) || l.name.starts_with("flannel"))
        .filter(|l| l.up || !netlab::FALLBACK_TUNNELS.contains(&l.name.as_str()))
        .map(|l| format!("{} ({})", l.name, l.kind.clone().unwrap_or_default()))
        .collect()
}

/// What the tap saw between the two containers (pure): requests c1 → c2,
/// replies c2 → c1, and anything else that is not plain ICMP between them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Underlay {
    pub requests: Vec<u8>,
    pub replies: Vec<u8>,
    pub wrapped: usize,
}

pub fn classify(seen: &[SeenPacket], c1: Ipv4Addr, c2: Ipv4Addr) -> Underlay {
    let mut u = Underlay::default();
    for p in seen {
        match (p.src, p.dst, p.proto) {
            (s, d, 1) if s == c1 && d == c2 && p.outgoing => u.requests.push(p.ttl),
            (s, d, 1) if s == c2 && d == c1 && !p.outgoing => u.replies.push(p.ttl),
            (_, _, 4 | 17 | 41 | 47) => u.wrapped += 1,
            _ => {}
        }
    }
    u
}

fn snmp(pid: i32) -> BTreeMap<(String, String), u64> {
    parse_snmp(&std::fs::read_to_string(format!("/proc/{pid}/net/snmp")).unwrap_or_default())
}

fn in_addr_errors(pid: i32) -> u64 {
    snmp(pid).get(&("Ip".to_string(), "InAddrErrors".to_string())).copied().unwrap_or(0)
}

fn forward_text(on: bool) -> String {
    if on { "1" } else { "0" }.to_string()
}

#[derive(Default)]
struct HostRoutes {
    lab: TwoHosts,
}

impl HostRoutes {
    /// c1 pings c2 while host-a's counters are watched: the ping fails and
    /// host-a's Ip InAddrErrors grows (it received packets it may not forward).
    fn ping_dropped_at_host_a(&mut self, r: &mut StepReport) -> anyhow::Result<()> {
        let a = self.lab.host_pid(0)?;
        let c2 = self.lab.container_ip(1)?;
        let fact = |pid: i32| -> BTreeMap<String, String> {
            [(format!("host-a /proc/{pid}/net/snmp Ip InAddrErrors"), in_addr_errors(pid).to_string())].into()
        };
        let before_n = in_addr_errors(a);
        let before = Snapshot { label: "host-a".into(), facts: fact(a), ..Default::default() };
        let out = self.lab.ping_from_container(r, 0, &c2)?;
        let grew = in_addr_errors(a).saturating_sub(before_n);
        r.observe(before, Snapshot { label: "host-a".into(), facts: fact(a), ..Default::default() });
        let got = netlab::ping_received(&out);
        r.check(format!("c1 → c2 ({c2})"), "no reply", format!("{got} replies"), got == 0);
        let sent = ping_sent(&out);
        r.check(
            "echo requests host-a dropped instead of forwarding (Ip InAddrErrors)",
            format!("at least {sent} (one per request sent)"),
            grew.to_string(),
            sent >= 1 && grew >= sent,
        );
        Ok(())
    }
}

impl Lesson for HostRoutes {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        let me = crate::kernel::proc::self_pid();
        match step {
            "hosts" => {
                self.lab.start_hosts(cx, r)?;
                let (a, b) = (self.lab.host_pid(0)?, self.lab.host_pid(1)?);
                let inode = netlab::net_inode;
                let facts = |pid: i32| -> BTreeMap<String, String> {
                    [
                        ("net namespace inode".to_string(), inode(pid).to_string()),
                        ("links".to_string(), netlab::link_names(pid).map(|l| l.join(" ")).unwrap_or_default()),
                        (
                            "net.ipv4.ip_forward".to_string(),
                            twohosts::forwarding(pid).map(forward_text).unwrap_or_default(),
                        ),
                    ]
                    .into()
                };
                for (i, pid) in [a, b].into_iter().enumerate() {
                    if twohosts::forwarding(pid)? {
                        twohosts::set_forwarding(pid, false)?;
                        r.say(HOSTS[i], "sysctl -w net.ipv4.ip_forward=0", "inherited 1 from the real host's namespace: reset to a plain machine's 0");
                    }
                }
                // As in vxlan-overlay: the table compares host-a (before) with host-b (after).
                r.observe(
                    Snapshot { label: format!("host-a (pid {a})"), facts: facts(a), ..Default::default() },
                    Snapshot { label: format!("host-b (pid {b})"), facts: facts(b), ..Default::default() },
                );
                let set: std::collections::BTreeSet<u64> = [inode(me), inode(a), inode(b)].into();
                r.check("three different network namespaces (workbench, host-a, host-b)", "3", set.len().to_string(), set.len() == 3);
                let (la, lb) = (
                    netlab::without_fallback_tunnels(&netlab::link_names(a)?),
                    netlab::without_fallback_tunnels(&netlab::link_names(b)?),
                );
                r.check("links in each", "lo / lo", format!("{} / {}", la.join(" "), lb.join(" ")), la == ["lo"] && lb == ["lo"]);
                let (fa, fb) = (twohosts::forwarding(a)?, twohosts::forwarding(b)?);
                r.check("net.ipv4.ip_forward in host-a / host-b", "0 / 0", format!("{} / {}", forward_text(fa), forward_text(fb)), !fa && !fb);
            }
            "underlay" => {
                self.lab.underlay = Some(twohosts::underlay_for(&[])?);
                let host_links = netlab::link_names(me)?;
                let ops = self.lab.underlay_ops()?;
                self.lab.wire(r, &ops)?;
                let (a, b) = (self.lab.host_pid(0)?, self.lab.host_pid(1)?);
                netlab::wait_oper_up(a, UNDERLAY_DEV, std::time::Duration::from_secs(5))?;
                netlab::wait_oper_up(b, UNDERLAY_DEV, std::time::Duration::from_secs(5))?;
                let peer = self.lab.underlay_ip(1)?;
                let out = self.lab.ping_from_host(r, 0, &peer)?;
                let n = netlab::ping_received(&out);
                r.check(format!("host-a → host-b on the underlay ({peer})"), "replies", format!("{n} of 2 replies"), n >= 1);
                let now = netlab::link_names(me)?;
                let stray: Vec<&String> = now.iter().filter(|l| !host_links.contains(l)).collect();
                r.check(
                    "new links on the real host",
                    "none (the pair was made inside host-a)",
                    if stray.is_empty() { "none".to_string() } else { format!("{stray:?}") },
                    stray.is_empty(),
                );
            }
            "containers" => {
                let first = netlab::reserve_subnet(None, CONTAINER_SUBNETS, &[])?;
                let second = netlab::reserve_subnet(None, CONTAINER_SUBNETS, &[first])?;
                self.lab.pods = vec![first, second];
                // The underlay was chosen before the container subnets: keep it clear of them.
                let u = self.lab.underlay()?;
                anyhow::ensure!(!first.overlaps(&u) && !second.overlaps(&u), "the container subnets overlap the underlay {}", u.cidr());
                r.say("workbench", format!("container subnets: host-a {} , host-b {} (free on this host, reserved for this run)", first.cidr(), second.cidr()), "");
                self.lab.start_containers(cx, r)?;
                let mut ops = self.lab.container_ops(0)?;
                ops.extend(self.lab.container_ops(1)?);
                self.lab.wire(r, &ops)?;
                for i in 0..2 {
                    netlab::wait_oper_up(self.lab.container_pid(i)?, "eth0", std::time::Duration::from_secs(5))?;
                }
                for i in 0..2 {
                    let gw = self.lab.pod(i)?.host_ip();
                    let out = self.lab.ping_from_container(r, i, &gw)?;
                    let n = netlab::ping_received(&out);
                    r.check(format!("{} → its gateway, {}'s {} ({gw})", CONTAINERS[i], HOSTS[i], twohosts::BRIDGE), "replies", format!("{n} of 2 replies"), n >= 1);
                }
            }
            "no-route" => {
                let a = self.lab.host_pid(0)?;
                let c2: Ipv4Addr = self.lab.container_ip(1)?.parse()?;
                let snap = wb_net::snapshot_of_pid(a)?;
                let covering = routes_covering(&snap, c2);
                r.say("host-a", "ip route", snap.routes.iter().filter(|x| x.family == "inet" && x.table == 254).map(route_line).collect::<Vec<_>>().join("\n"));
                r.check(format!("host-a's routes to c2 ({c2})"), "none (no default route either)", if covering.is_empty() { "none".to_string() } else { covering.join("; ") }, covering.is_empty());
                self.ping_dropped_at_host_a(r)?;
            }
            "routes" => {
                let (pa, pb) = (self.lab.host_place(0)?, self.lab.host_place(1)?);
                let ops = vec![
                    (pa, Op::AddRoute { dst: self.lab.pod(1)?.cidr(), via: Nexthop::Gateway(self.lab.underlay_ip(1)?) }),
                    (pb, Op::AddRoute { dst: self.lab.pod(0)?.cidr(), via: Nexthop::Gateway(self.lab.underlay_ip(0)?) }),
                ];
                self.lab.wire(r, &ops)?;
                for (i, other) in [(0usize, 1usize), (1, 0)] {
                    let snap = wb_net::snapshot_of_pid(self.lab.host_pid(i)?)?;
                    let want = format!("{} via {} dev {UNDERLAY_DEV}", self.lab.pod(other)?.cidr(), self.lab.underlay_ip(other)?);
                    let got: Vec<String> = snap.routes_to(&self.lab.pod(other)?.cidr()).map(route_line).collect();
                    r.check(format!("{}: route to {}'s container subnet", HOSTS[i], HOSTS[other]), want.clone(), if got.is_empty() { "absent".to_string() } else { got.join("; ") }, got.contains(&want));
                }
                self.ping_dropped_at_host_a(r)?;
            }
            "forward" => {
                let (a, b) = (self.lab.host_pid(0)?, self.lab.host_pid(1)?);
                let read = |pid: i32| twohosts::forwarding(pid).map(forward_text).unwrap_or_else(|e| format!("unreadable: {e}"));
                let facts = || -> BTreeMap<String, String> {
                    [("host", me), ("host-a", a), ("host-b", b)].iter().map(|(l, p)| (format!("{l}: net.ipv4.ip_forward"), read(*p))).collect()
                };
                let host_before = read(me);
                let before = Snapshot { label: "ip_forward".into(), facts: facts(), ..Default::default() };
                for (h, name) in self.lab.hosts.iter_mut().zip(HOSTS) {
                    let argv = ["sysctl", "-w", "net.ipv4.ip_forward=1"].map(String::from);
                    let out = netlab::run_in(h, "/bin/busybox", &argv)?;
                    r.ran(name, argv.join(" "), &out);
                }
                r.observe(before, Snapshot { label: "ip_forward".into(), facts: facts(), ..Default::default() });
                r.check("net.ipv4.ip_forward in host-a / host-b", "1 / 1", format!("{} / {}", read(a), read(b)), read(a) == "1" && read(b) == "1");
                r.check("the real host's net.ipv4.ip_forward", format!("{host_before} (unchanged)"), read(me), read(me) == host_before);
            }
            "ping" => {
                let a = self.lab.host_pid(0)?;
                let (c1, c2): (Ipv4Addr, Ipv4Addr) = (self.lab.container_ip(0)?.parse()?, self.lab.container_ip(1)?.parse()?);
                let tap = PacketTap::open(a, UNDERLAY_DEV)?;
                r.say("host-a", format!("socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL)); bind(ifindex of {UNDERLAY_DEV})   # tcpdump -nn -i {UNDERLAY_DEV} ip"), "");
                let out = self.lab.ping_from_container(r, 0, &c2.to_string())?;
                let seen = tap.drain();
                let shown: Vec<String> = seen.iter().map(SeenPacket::line).collect();
                r.say("host-a", format!("recvfrom(packet socket on {UNDERLAY_DEV}) × {}", seen.len()), shown.join("\n"));
                let n = netlab::ping_received(&out);
                r.check(format!("c1 → c2 ({c2})"), "replies", format!("{n} of 2 replies"), n >= 1);
                let ttls = reply_ttls(&out);
                let want = DEFAULT_TTL - ROUTED_HOPS;
                r.check(
                    "TTL of c2's replies in c1",
                    format!("{want} (sent with {DEFAULT_TTL}, minus 1 at host-b, minus 1 at host-a)"),
                    format!("{ttls:?}"),
                    !ttls.is_empty() && ttls.iter().all(|t| *t == want),
                );
                let u = classify(&seen, c1, c2);
                r.check(
                    format!("echo requests {c1} → {c2} leaving host-a's {UNDERLAY_DEV} (TTL)"),
                    format!("at least {n}, TTL {} (host-a forwarded them)", DEFAULT_TTL - 1),
                    format!("{} {:?}", u.requests.len(), u.requests),
                    n >= 1 && u.requests.len() >= n as usize && u.requests.iter().all(|t| *t == DEFAULT_TTL - 1),
                );
                r.check(
                    format!("echo replies {c2} → {c1} arriving on host-a's {UNDERLAY_DEV} (TTL)"),
                    format!("at least {n}, TTL {} (host-b forwarded them)", DEFAULT_TTL - 1),
                    format!("{} {:?}", u.replies.len(), u.replies),
                    n >= 1 && u.replies.len() >= n as usize && u.replies.iter().all(|t| *t == DEFAULT_TTL - 1),
                );
                r.check("encapsulated packets on the underlay (UDP, IP-in-IP, GRE)", "0", u.wrapped.to_string(), u.wrapped == 0);
                let mut tunnels = Vec::new();
                let mut sides = self.lab.sides();
                sides.push(("host", me));
                for (label, pid) in sides.iter().filter(|(l, _)| *l != "host") {
                    tunnels.extend(tunnel_links(&wb_net::snapshot_of_pid(*pid)?).into_iter().map(|t| format!("{label}: {t}")));
                }
                r.check("tunnel devices (vxlan, tun, ipip, gre, …) in the lab's four namespaces", "none", if tunnels.is_empty() { "none".to_string() } else { tunnels.join(", ") }, tunnels.is_empty());
                let mtu = |pid: i32, dev: &str| wb_net::snapshot_of_pid(pid).ok().and_then(|s| s.link(dev).map(|l| l.mtu)).unwrap_or(0);
                let (cm, um) = (mtu(self.lab.container_pid(0)?, "eth0"), mtu(a, UNDERLAY_DEV));
                r.check("c1's eth0 MTU / host-a's underlay MTU", "1500 / 1500 (no bytes lost to headers)", format!("{cm} / {um}"), cm == 1500 && um == 1500);
            }
            "off-link" => {
                let a = self.lab.host_pid(0)?;
                let op = Op::AddRoute { dst: OFF_LINK_DST.into(), via: Nexthop::Gateway(OFF_LINK_GW.into()) };
                let before = self.lab.snapshot()?;
                let res = wb_net::in_netns_of(a, || wb_net::apply(&op));
                let answer = match &res {
                    Ok(_) => "accepted".to_string(),
                    Err(e) => e.to_string(),
                };
                r.say("host-a", netlab::command_at(&self.lab.host_place(0)?, &op), answer.clone());
                r.observe(before, self.lab.snapshot()?);
                let errno = res.as_ref().err().and_then(wb_net::Error::errno);
                r.check(
                    format!("RTM_NEWROUTE {OFF_LINK_DST} via {OFF_LINK_GW} (on no subnet of host-a)"),
                    "refused: ENETUNREACH",
                    answer,
                    errno == Some(libc::ENETUNREACH),
                );
                let left = wb_net::snapshot_of_pid(a)?.routes_to(OFF_LINK_DST).count();
                r.check(format!("host-a's routes to {OFF_LINK_DST}"), "0", left.to_string(), left == 0);
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        let c = self.lab.containers.first_mut().ok_or_else(|| anyhow::anyhow!("the lesson did not start its containers"))?;
        crate::kit::sh_in(c, cx.lesson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: &str, gw: Option<&str>, dev: &str) -> wb_net::Route {
        let mut r = wb_net::Route::kernel_link(dst, dev);
        r.gateway = gw.map(String::from);
        r
    }

    #[test]
    fn finds_the_routes_that_cover_an_address() {
        let mut snap = wb_net::NetSnapshot {
            routes: vec![route("192.168.215.0/24", None, "eth0"), route("10.213.0.0/24", None, "cni0")],
            ..Default::default()
        };
        let c2: Ipv4Addr = "10.213.1.2".parse().unwrap();
        assert!(routes_covering(&snap, c2).is_empty());
        snap.routes.push(route("10.213.1.0/24", Some("192.168.215.2"), "eth0"));
        assert_eq!(routes_covering(&snap, c2), vec!["10.213.1.0/24 via 192.168.215.2 dev eth0"]);
        snap.routes.push(route("default", Some("192.168.215.254"), "eth0"));
        assert_eq!(routes_covering(&snap, c2).len(), 2);
    }

    #[test]
    fn reads_ttls_and_counts_from_ping() {
        let out = "PING 10.213.1.2 (10.213.1.2): 56 data bytes\n64 bytes from 10.213.1.2: seq=0 ttl=62 time=0.2 ms\n64 bytes from 10.213.1.2: seq=1 ttl=62 time=0.1 ms\n\n--- 10.213.1.2 ping statistics ---\n2 packets transmitted, 2 packets received, 0% packet loss\n";
        assert_eq!(reply_ttls(out), vec![62, 62]);
        assert_eq!(ping_sent(out), 2);
        assert!(reply_ttls("2 packets transmitted, 0 packets received").is_empty());
        assert_eq!(ping_sent(""), 0);
    }

    fn link(name: &str, kind: Option<&str>, up: bool) -> wb_net::Link {
        wb_net::Link {
            index: 1,
            name: name.into(),
            kind: kind.map(String::from),
            state: if up { "UP" } else { "DOWN" }.into(),
            up,
            mac: None,
            master: None,
            peer_netns: None,
            peer_index: None,
            mtu: 1500,
        }
    }

    #[test]
    fn tunnel_devices_are_found_and_down_fallbacks_are_not() {
        let mut snap = wb_net::NetSnapshot {
            links: vec![
                link("lo", None, true),
                link("eth0", Some("veth"), true),
                link("cni0", Some("bridge"), true),
                link("tunl0", Some("ipip"), false),
            ],
            ..Default::default()
        };
        assert!(tunnel_links(&snap).is_empty());
        snap.links.push(link("flannel.1", Some("vxlan"), true));
        snap.links.push(link("tunl0", Some("ipip"), true));
        assert_eq!(tunnel_links(&snap), vec!["flannel.1 (vxlan)", "tunl0 (ipip)"]);
    }

    #[test]
    fn classifies_underlay_packets() {
        let ip = |s: &str| -> Ipv4Addr { s.parse().unwrap() };
        let p = |out, src, dst, proto, ttl| SeenPacket { outgoing: out, src: ip(src), dst: ip(dst), proto, ttl, dst_port: None };
        let seen = vec![
            p(true, "10.213.0.2", "10.213.1.2", 1, 63),
            p(false, "10.213.1.2", "10.213.0.2", 1, 63),
            p(true, "192.168.215.1", "192.168.215.2", 1, 64),
            p(true, "192.168.215.1", "192.168.215.2", 17, 64),
        ];
        let u = classify(&seen, ip("10.213.0.2"), ip("10.213.1.2"));
        assert_eq!(u, Underlay { requests: vec![63], replies: vec![63], wrapped: 1 });
        assert_eq!(classify(&[], ip("10.213.0.2"), ip("10.213.1.2")), Underlay::default());
    }

    /// The whole lesson as root, through the runner (`--json`): every step
    /// passes and the run leaves no state file. This is how the pure cgroup
    /// v2 VM runs it (`scripts/v2-vm --exe 'workbench (unit tests)' --only
    /// host_routes`). Skipped unless root with a static busybox; on the shared
    /// machine run it under `flock /tmp/wb-root.lock`.
    #[test]
    fn the_lesson_passes_as_root() {
        let _ = crate::kit::run_whole_lesson_as_root("host-routes");
    }
}
