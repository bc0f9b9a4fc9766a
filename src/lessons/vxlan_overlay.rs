//! vxlan-overlay: one Ethernet segment stretched across two "hosts".
//!
//! Multi-host container networks (Docker swarm's overlay, Flannel, Calico in
//! VXLAN mode) give containers on different machines addresses in one
//! subnet. VXLAN does it by tunnelling: a `vxlan` device wraps each Ethernet
//! frame in a UDP datagram (port 4789, with a 24-bit network id) addressed to
//! the other host's real — "underlay" — address; the receiving host's kernel
//! unwraps it and delivers the frame to its own vxlan device. Here two
//! network namespaces play the two hosts, linked by a veth pair as their
//! underlay; nothing touches the real host's network.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::kit::netlab::{self, Place, Subnet};
use crate::host::Host;
use crate::kernel::child::NsChild;
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};
use crate::observe::Snapshot;
use wb_net::Op;

pub const DEF: LessonDef = LessonDef::of::<VxlanOverlay>(preflight).shell("inside the lesson").spots(&[("underlay", Spot::Procs(2))]);

/// The VXLAN network id and the IANA port of the tunnel.
pub const VNI: u32 = 42;
pub const VXLAN_PORT: u16 = 4789;
const VXLAN_DEV: &str = "vxlan42";
const DEFAULT_OVERLAY: &str = "10.216.0.0/24";
const UNDERLAYS: &[&str] = &["10.215.0.0/24", "10.215.1.0/24", "172.29.215.0/24"];

fn subnets(opts: &LessonOptions) -> Result<(Subnet, Subnet), String> {
    // Both subnets live only inside the two namespaces, so the host's routes
    // do not matter; they must only differ from each other.
    let overlay = netlab::parse_subnet(opts.subnet.as_deref().unwrap_or(DEFAULT_OVERLAY))?;
    let underlay = UNDERLAYS.iter().filter_map(|s| netlab::parse_subnet(s).ok()).find(|u| !u.overlaps(&overlay)).ok_or_else(|| "--subnet overlaps every underlay subnet: choose another".to_string())?;
    Ok((underlay, overlay))
}

fn preflight(host: &Host, opts: &LessonOptions) -> anyhow::Result<()> {
    host.require_root("clone(CLONE_NEWNET) and netlink link changes need CAP_SYS_ADMIN and CAP_NET_ADMIN")?;
    host.require_static_busybox()?;
    crate::host::features::require_link_kinds(&["veth", "vxlan"])?;
    subnets(opts).map_err(anyhow::Error::msg)?;
    Ok(())
}

/// Counters from `/proc/PID/net/snmp` (per network namespace): `("Udp",
/// "InDatagrams")` → value. The file pairs a header line with a value line.
pub fn parse_snmp(text: &str) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [head, vals] = pair else { continue };
        let (Some((proto, names)), Some((proto2, values))) = (head.split_once(':'), vals.split_once(':')) else { continue };
        if proto != proto2 {
            continue;
        }
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse() {
                out.insert((proto.to_string(), n.to_string()), v);
            }
        }
    }
    out
}

fn counters(pid: i32) -> BTreeMap<(String, String), u64> {
    parse_snmp(&std::fs::read_to_string(format!("/proc/{pid}/net/snmp")).unwrap_or_default())
}

#[derive(Default)]
struct VxlanOverlay {
    a: Option<NsChild>,
    b: Option<NsChild>,
    underlay: Option<Subnet>,
    overlay: Option<Subnet>,
}

impl VxlanOverlay {
    fn pids(&self) -> anyhow::Result<(i32, i32)> {
        match (&self.a, &self.b) {
            (Some(a), Some(b)) => Ok((a.pid(), b.pid())),
            _ => anyhow::bail!("no hosts: the hosts step did not run"),
        }
    }

    fn subs(&self) -> anyhow::Result<(Subnet, Subnet)> {
        self.underlay.zip(self.overlay).ok_or_else(|| anyhow::anyhow!("no subnets: the underlay step did not run"))
    }

    fn places(&self) -> anyhow::Result<(Place, Place)> {
        let (a, b) = self.pids()?;
        Ok((Place::Ns { pid: a, label: "host-a".into() }, Place::Ns { pid: b, label: "host-b".into() }))
    }

    /// Do `ops`, showing both hosts' networks (and the real host's) before and after.
    fn wire(&self, r: &mut StepReport, ops: &[(Place, Op)], with_host: bool, settle: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
        let (a, b) = self.pids()?;
        let me = crate::kernel::proc::self_pid();
        let mut sides = vec![("host-a", a), ("host-b", b)];
        if with_host {
            sides.insert(0, ("host", me));
        }
        let label = if with_host { "host + host-a + host-b" } else { "host-a + host-b" };
        let before = netlab::lab_snapshot(label, &sides)?;
        netlab::apply_ops(r, ops)?;
        settle()?;
        r.observe(before, netlab::lab_snapshot(label, &sides)?);
        Ok(())
    }
}

/// `ip -d link show DEV` run with iproute2 inside the namespace of `pid`, if `ip` exists.
fn ip_details(pid: i32, dev: &str) -> Option<String> {
    let out = wb_net::in_netns_of(pid, || Ok(std::process::Command::new("ip").args(["-d", "link", "show", dev]).output())).ok()?.ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

impl Lesson for VxlanOverlay {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        let me = crate::kernel::proc::self_pid();
        match step {
            "hosts" => {
                let rootfs = netlab::build_container_rootfs(cx, "hosts", "host")?;
                for name in ["host-a", "host-b"] {
                    let (child, said) = netlab::start_container(netlab::container_flags(), &rootfs, name, None)?;
                    for (place, s) in said {
                        r.say(place, s, "");
                    }
                    if name == "host-a" {
                        self.a = Some(child);
                    } else {
                        self.b = Some(child);
                    }
                }
                let (a, b) = self.pids()?;
                let inode = netlab::net_inode;
                let facts = |pid: i32| -> BTreeMap<String, String> {
                    [("net namespace inode".to_string(), inode(pid).to_string()), ("links".to_string(), netlab::link_names(pid).map(|l| l.join(" ")).unwrap_or_default())].into()
                };
                r.observe(Snapshot { label: format!("host-a (pid {a})"), facts: facts(a), ..Default::default() }, Snapshot { label: format!("host-b (pid {b})"), facts: facts(b), ..Default::default() });
                r.check("three different network namespaces (workbench, host-a, host-b)", "3", [inode(me), inode(a), inode(b)].iter().collect::<std::collections::BTreeSet<_>>().len().to_string(), inode(me) != inode(a) && inode(a) != inode(b) && inode(me) != inode(b));
                let (la, lb) = (netlab::without_fallback_tunnels(&netlab::link_names(a)?), netlab::without_fallback_tunnels(&netlab::link_names(b)?));
                r.check("links in each", "lo / lo", format!("{} / {}", la.join(" "), lb.join(" ")), la == ["lo"] && lb == ["lo"]);
            }
            "underlay" => {
                let (underlay, overlay) = subnets(&cx.options).map_err(anyhow::Error::msg)?;
                self.underlay = Some(underlay);
                self.overlay = Some(overlay);
                let (a, b) = self.pids()?;
                let (pa, pb) = self.places()?;
                let (ea, eb) = (netlab::link_name(&cx.run_id, "a0")?, netlab::link_name(&cx.run_id, "b0")?);
                let mut ops = vec![(Place::Host, Op::CreateVeth { name: ea.clone(), peer: eb.clone() })];
                ops.extend(netlab::inside_ops(&ea, &pa, a, &underlay.host_cidr(), None));
                ops.extend(netlab::inside_ops(&eb, &pb, b, &underlay.peer_cidr(), None));
                self.wire(r, &ops, true, || {
                    netlab::wait_oper_up(a, "eth0", Duration::from_secs(3))?;
                    netlab::wait_oper_up(b, "eth0", Duration::from_secs(3)).map(drop)
                })?;
                let c = self.a.as_mut().ok_or_else(|| anyhow::anyhow!("no host-a"))?;
                let ping = netlab::run_in(c, "/bin/busybox", &netlab::ping_argv(&underlay.peer_ip()))?;
                r.ran("host-a", netlab::ping_argv(&underlay.peer_ip()).join(" "), &ping);
                let n = netlab::ping_received(&ping.stdout);
                r.check(format!("host-a → host-b on the underlay ({})", underlay.peer_ip()), "replies", format!("{n} of 2 replies"), n >= 1);
                let left: Vec<String> = netlab::link_names(me)?.into_iter().filter(|l| *l == ea || *l == eb).collect();
                r.check("underlay links left on the real host", "none (both ends moved away)", if left.is_empty() { "none".to_string() } else { left.join(" ") }, left.is_empty());
            }
            "vxlan" => {
                let (underlay, _) = self.subs()?;
                let (pa, pb) = self.places()?;
                let (a, b) = self.pids()?;
                let vx = |local: String, remote: String| Op::CreateVxlan { name: VXLAN_DEV.into(), vni: VNI, local, remote, dev: "eth0".into(), port: VXLAN_PORT };
                let ops = vec![(pa, vx(underlay.host_ip(), underlay.peer_ip())), (pb, vx(underlay.peer_ip(), underlay.host_ip()))];
                self.wire(r, &ops, false, || Ok(()))?;
                if let Some(d) = ip_details(a, VXLAN_DEV) {
                    r.say("host-a", format!("ip -d link show {VXLAN_DEV}"), d);
                }
                for (name, pid) in [("host-a", a), ("host-b", b)] {
                    let snap = wb_net::snapshot_of_pid(pid)?;
                    let l = snap.link(VXLAN_DEV);
                    r.check(format!("{name}: {VXLAN_DEV} kind and MTU"), "vxlan, mtu 1450 (1500 minus 50 bytes of outer headers)", l.map(|l| format!("{}, mtu {}", l.kind.clone().unwrap_or_default(), l.mtu)).unwrap_or_else(|| "absent".into()), l.is_some_and(|l| l.kind.as_deref() == Some("vxlan") && l.mtu == 1450));
                }
            }
            "overlay" => {
                let (_, overlay) = self.subs()?;
                let (pa, pb) = self.places()?;
                let (a, b) = self.pids()?;
                let ops = vec![
                    (pa.clone(), Op::AddAddress { link: VXLAN_DEV.into(), cidr: overlay.host_cidr() }),
                    (pa, Op::SetUp { link: VXLAN_DEV.into() }),
                    (pb.clone(), Op::AddAddress { link: VXLAN_DEV.into(), cidr: overlay.peer_cidr() }),
                    (pb, Op::SetUp { link: VXLAN_DEV.into() }),
                ];
                self.wire(r, &ops, false, || {
                    netlab::wait_carrierless_up(a, VXLAN_DEV, Duration::from_secs(3))?;
                    netlab::wait_carrierless_up(b, VXLAN_DEV, Duration::from_secs(3)).map(drop)
                })?;
                for (name, pid) in [("host-a", a), ("host-b", b)] {
                    let snap = wb_net::snapshot_of_pid(pid)?;
                    let route = snap.routes_to(&overlay.cidr()).any(|x| x.dev.as_deref() == Some(VXLAN_DEV));
                    r.check(format!("{name}: route to the overlay"), format!("{} dev {VXLAN_DEV}", overlay.cidr()), if route { format!("{} dev {VXLAN_DEV}", overlay.cidr()) } else { "absent".into() }, route);
                }
            }
            "ping" => {
                let (_, overlay) = self.subs()?;
                let (_, b) = self.pids()?;
                let watched = [("Udp", "InDatagrams"), ("Icmp", "InEchos")];
                let facts = |pid: i32| -> BTreeMap<String, String> {
                    let c = counters(pid);
                    watched.iter().map(|(p, n)| (format!("host-b /proc/{pid}/net/snmp {p} {n}"), c.get(&(p.to_string(), n.to_string())).copied().unwrap_or(0).to_string())).collect()
                };
                let before_c = counters(b);
                let before = Snapshot { label: "host-b".into(), facts: facts(b), ..Default::default() };
                let c = self.a.as_mut().ok_or_else(|| anyhow::anyhow!("no host-a"))?;
                let ping = netlab::run_in(c, "/bin/busybox", &netlab::ping_argv(&overlay.peer_ip()))?;
                r.ran("host-a", netlab::ping_argv(&overlay.peer_ip()).join(" "), &ping);
                let after_c = counters(b);
                r.observe(before, Snapshot { label: "host-b".into(), facts: facts(b), ..Default::default() });
                let n = netlab::ping_received(&ping.stdout) as u64;
                r.check(format!("host-a → host-b over the overlay ({})", overlay.peer_ip()), "replies", format!("{n} of 2 replies"), n >= 1);
                let grew = |p: &str, k: &str| after_c.get(&(p.into(), k.into())).copied().unwrap_or(0).saturating_sub(before_c.get(&(p.into(), k.into())).copied().unwrap_or(0));
                let udp = grew("Udp", "InDatagrams");
                r.check("UDP datagrams host-b received (one per tunnelled echo request)", format!("at least {n}"), udp.to_string(), n >= 1 && udp >= n);
                let echos = grew("Icmp", "InEchos");
                r.check("ICMP echo requests host-b received (unwrapped from the UDP)", format!("at least {n}"), echos.to_string(), n >= 1 && echos >= n);
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        crate::kit::sh_in(self.a.as_mut().ok_or_else(|| anyhow::anyhow!("the lesson did not start its hosts"))?, cx.lesson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_snmp_counters() {
        let text = "Icmp: InMsgs InErrors InEchos\nIcmp: 5 0 2\nUdp: InDatagrams NoPorts\nUdp: 604 1\n";
        let c = parse_snmp(text);
        assert_eq!(c[&("Udp".to_string(), "InDatagrams".to_string())], 604);
        assert_eq!(c[&("Icmp".to_string(), "InEchos".to_string())], 2);
        assert_eq!(c.len(), 5);
        assert!(parse_snmp("garbage").is_empty());
    }

    #[test]
    fn overlay_and_underlay_never_overlap() {
        let (u, o) = subnets(&LessonOptions::default()).unwrap();
        assert_eq!((u.cidr().as_str(), o.cidr().as_str()), ("10.215.0.0/24", "10.216.0.0/24"));
        let (u, _) = subnets(&LessonOptions { subnet: Some("10.215.0.0/16".into()), ..Default::default() }).unwrap();
        assert_eq!(u.cidr(), "172.29.215.0/24");
        assert!(subnets(&LessonOptions { subnet: Some("8.8.8.0/24".into()), ..Default::default() }).is_err());
    }
}
