//! veth-bridge: wire a "none" container to a bridge by hand, like docker0.
//!
//! A new network namespace holds only a loopback device, down. A veth pair
//! is a virtual cable: packets entering one end leave the other. Plug one end
//! into a bridge on the host (a software switch holding the gateway
//! address), move the other end into the namespace, name it eth0, give it an
//! address and a default route via the bridge, bring everything up — and the
//! container can ping the host and the host the container. This is what
//! Docker's bridge network driver does for every container.

use crate::kit::netlab::{self, Place, Subnet};
use crate::kit::check_namespaces;
use crate::kit::{child_snapshot, host_snapshot};
use crate::host::Host;
use crate::kernel::child::NsChild;
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};
use crate::observe::Capture;
use wb_net::Op;

pub const DEF: LessonDef = LessonDef::of::<VethBridge>(preflight).shell("inside the lesson").spots(&[("move", Spot::Present("link", 2))]);

/// Namespaces and the network view, for the first step's comparison.
pub const NS_NET: Capture = Capture { namespaces: true, cgroups: false, mounts: false, net: true };

fn preflight(host: &Host, opts: &LessonOptions) -> anyhow::Result<()> {
    netlab::require_bridge_lab(host, opts, "clone(CLONE_NEWNET) and netlink link changes need CAP_SYS_ADMIN and CAP_NET_ADMIN")
}

#[derive(Default)]
struct VethBridge {
    child: Option<NsChild>,
    sub: Option<Subnet>,
    bridge: String,
    host_end: String,
    peer: String,
}

impl VethBridge {
    fn pid(&self) -> anyhow::Result<i32> {
        self.child.as_ref().map(|c| c.pid()).ok_or_else(|| anyhow::anyhow!("no container: the container step did not run"))
    }

    fn sub(&self) -> anyhow::Result<Subnet> {
        self.sub.ok_or_else(|| anyhow::anyhow!("no subnet: the subnet step did not run"))
    }

    fn ns(&self) -> anyhow::Result<Place> {
        Ok(Place::Ns { pid: self.pid()?, label: "container".into() })
    }

    /// Do `ops`, showing the host's and the container's network before and after.
    fn wire(&self, r: &mut StepReport, ops: &[(Place, Op)]) -> anyhow::Result<()> {
        self.wire_then(r, ops, || Ok(()))
    }

    /// Like [`Self::wire`], running `settle` before the "after" snapshot.
    fn wire_then(&self, r: &mut StepReport, ops: &[(Place, Op)], settle: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
        let pid = self.pid()?;
        let me = crate::kernel::proc::self_pid();
        let sides = [("host", me), ("container", pid)];
        let before = netlab::lab_snapshot("host + container", &sides)?;
        netlab::apply_ops(r, ops)?;
        settle()?;
        let after = netlab::lab_snapshot("host + container", &sides)?;
        r.observe(before, after);
        Ok(())
    }

    fn inside(&self) -> anyhow::Result<wb_net::NetSnapshot> {
        Ok(wb_net::snapshot_of_pid(self.pid()?)?)
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

impl Lesson for VethBridge {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        match step {
            "container" => {
                let rootfs = netlab::build_container_rootfs(cx, "container", "container")?;
                let before = host_snapshot(NS_NET)?;
                let (mut child, said) = netlab::start_container(netlab::container_flags(), &rootfs, "container", None)?;
                for (place, s) in said {
                    r.say(place, s, "");
                }
                let after = child_snapshot(&child, NS_NET)?;
                let ip = netlab::run_in(&mut child, "/bin/busybox", &["ip".into(), "addr".into()])?;
                r.ran("container", "ip addr", &ip);
                check_namespaces(r, &before, &after, &["net", "pid", "mnt", "uts", "ipc"], &["user"]);
                let net = wb_net::snapshot_of_pid(child.pid())?;
                let all: Vec<&str> = net.links.iter().map(|l| l.name.as_str()).collect();
                let names = netlab::without_fallback_tunnels(&all);
                r.check("links in the new network namespace (besides the kernel's fallback tunnels)", "lo", names.join(" "), names == ["lo"]);
                let lo_up = net.link("lo").is_some_and(|l| l.up);
                r.check("lo is down", "down", if lo_up { "up" } else { "down" }, !lo_up);
                r.check_eq("addresses and routes inside", "0 and 0".to_string(), format!("{} and {}", net.addresses.len(), net.routes.len()));
                r.observe(before, after);
                self.child = Some(child);
            }
            "subnet" => {
                let host = wb_net::snapshot_current()?;
                let routes: Vec<String> = host.routes.iter().filter(|x| x.family == "inet").map(|x| format!("{}{}{}", x.dst, x.gateway.as_ref().map(|g| format!(" via {g}")).unwrap_or_default(), x.dev.as_ref().map(|d| format!(" dev {d}")).unwrap_or_default())).collect();
                r.say("host", "ip -4 route", routes.join("\n"));
                let sub = netlab::reserve_subnet(cx.options.subnet.as_deref(), netlab::CONTAINER_SUBNETS, &[])?;
                let origin = if cx.options.subnet.is_some() { "given with --subnet" } else { "the first free lab subnet no other run holds" };
                r.say("workbench", format!("pick a subnet ({origin})"), format!("{}: bridge (gateway) {}, container {}", sub.cidr(), sub.host_ip(), sub.peer_ip()));
                let clash = netlab::clash(&host, &sub);
                r.check("overlap with the host's routes and addresses", "none", clash.clone().unwrap_or_else(|| "none".into()), clash.is_none());
                self.sub = Some(sub);
                self.bridge = netlab::link_name(&cx.run_id, "br")?;
                self.host_end = netlab::link_name(&cx.run_id, "h0")?;
                self.peer = netlab::link_name(&cx.run_id, "c0")?;
            }
            "bridge" => {
                let sub = self.sub()?;
                self.wire(r, &netlab::bridge_ops(&self.bridge, &sub))?;
                let host = wb_net::snapshot_current()?;
                let br = host.link(&self.bridge);
                r.check("host link type", format!("{} bridge", self.bridge), br.map(|l| format!("{} {}", l.name, l.kind.clone().unwrap_or_default())).unwrap_or_else(|| "absent".into()), br.is_some_and(|l| l.kind.as_deref() == Some("bridge")));
                r.check("bridge is up (IFF_UP)", "yes", yes_no(br.is_some_and(|l| l.up)), br.is_some_and(|l| l.up));
                let has_addr = host.addresses_of(&self.bridge).any(|a| a.cidr == sub.host_cidr());
                r.check("gateway address on the bridge", sub.host_cidr(), if has_addr { sub.host_cidr() } else { "absent".into() }, has_addr);
                let route = host.routes_to(&sub.cidr()).any(|x| x.dev.as_deref() == Some(&self.bridge));
                r.check("connected route on the host", format!("{} dev {}", sub.cidr(), self.bridge), if route { format!("{} dev {}", sub.cidr(), self.bridge) } else { "absent".into() }, route);
            }
            "veth" => {
                self.wire(r, &netlab::veth_ops(&self.host_end, &self.peer, &self.bridge))?;
                let host = wb_net::snapshot_current()?;
                let h = host.link(&self.host_end);
                let p = host.link(&self.peer);
                let both = h.is_some_and(|l| l.kind.as_deref() == Some("veth")) && p.is_some_and(|l| l.kind.as_deref() == Some("veth"));
                r.check("a veth pair on the host", format!("{} and {}", self.host_end, self.peer), if both { format!("{} and {}", self.host_end, self.peer) } else { "missing".into() }, both);
                let master = h.and_then(|l| l.master.clone()).unwrap_or_else(|| "none".into());
                r.check_eq(format!("{} is a port of", self.host_end), self.bridge.clone(), master);
                r.check("the peer's index is the other end's IFLA_LINK", "yes", yes_no(h.zip(p).is_some_and(|(h, p)| h.peer_index == Some(p.index))), h.zip(p).is_some_and(|(h, p)| h.peer_index == Some(p.index)));
            }
            "move" => {
                let pid = self.pid()?;
                self.wire(r, &[(Place::Host, Op::MoveToNetnsPid { link: self.peer.clone(), pid })])?;
                let host = wb_net::snapshot_current()?;
                let inside = self.inside()?;
                r.check(format!("{} on the host", self.peer), "gone", if host.link(&self.peer).is_some() { "present" } else { "gone" }, host.link(&self.peer).is_none());
                let p = inside.link(&self.peer);
                r.check(format!("{} in the container", self.peer), "present, down", p.map(|l| if l.up { "present, up" } else { "present, down" }).unwrap_or("absent"), p.is_some_and(|l| !l.up));
                let nsid = host.link(&self.host_end).and_then(|l| l.peer_netns);
                r.check(format!("{} now points into another namespace (link-netnsid)", self.host_end), "set", nsid.map(|n| format!("netnsid {n}")).unwrap_or_else(|| "unset".into()), nsid.is_some());
            }
            "rename" => {
                let ns = self.ns()?;
                self.wire(r, &[(ns, Op::Rename { link: self.peer.clone(), new_name: "eth0".into() })])?;
                let inside = self.inside()?;
                let all: Vec<&str> = inside.links.iter().map(|l| l.name.as_str()).collect();
                let names = netlab::without_fallback_tunnels(&all);
                r.check("links in the container", "lo eth0", names.join(" "), names == ["lo", "eth0"]);
            }
            "address" => {
                let sub = self.sub()?;
                let ns = self.ns()?;
                self.wire(r, &[(ns, Op::AddAddress { link: "eth0".into(), cidr: sub.peer_cidr() })])?;
                let inside = self.inside()?;
                let has = inside.addresses_of("eth0").any(|a| a.cidr == sub.peer_cidr());
                r.check("address on eth0", sub.peer_cidr(), if has { sub.peer_cidr() } else { "absent".into() }, has);
                let route = inside.routes_to(&sub.cidr()).count();
                r.check("connected route while eth0 is down", "none yet", if route == 0 { "none yet".to_string() } else { format!("{route}") }, route == 0);
            }
            "up" => {
                let sub = self.sub()?;
                let ns = self.ns()?;
                let pid = self.pid()?;
                // The operational state follows IFF_UP a moment later (linkwatch).
                self.wire_then(r, &[(ns.clone(), Op::SetUp { link: "lo".into() }), (ns, Op::SetUp { link: "eth0".into() })], || netlab::wait_oper_up(pid, "eth0", std::time::Duration::from_secs(3)).map(drop))?;
                let inside = self.inside()?;
                let eth0 = inside.link("eth0");
                r.check("eth0 operational state", "UP", eth0.map(|l| l.state.clone()).unwrap_or_else(|| "absent".into()), eth0.is_some_and(|l| l.state == "UP"));
                let lo = inside.link("lo").is_some_and(|l| l.up);
                r.check("lo is up", "yes", yes_no(lo), lo);
                let route = inside.routes_to(&sub.cidr()).any(|x| x.dev.as_deref() == Some("eth0"));
                r.check("connected route in the container", format!("{} dev eth0", sub.cidr()), if route { format!("{} dev eth0", sub.cidr()) } else { "absent".into() }, route);
            }
            "route" => {
                let sub = self.sub()?;
                let ns = self.ns()?;
                self.wire(r, &[(ns, Op::AddRouteDefault { gateway: sub.host_ip() })])?;
                let inside = self.inside()?;
                let d = inside.routes_to("default").next().map(|x| format!("default via {} dev {}", x.gateway.clone().unwrap_or_default(), x.dev.clone().unwrap_or_default()));
                let want = format!("default via {} dev eth0", sub.host_ip());
                r.check("default route in the container", want.clone(), d.clone().unwrap_or_else(|| "absent".into()), d.as_deref() == Some(want.as_str()));
            }
            "ping" => {
                let sub = self.sub()?;
                let child = self.child.as_mut().ok_or_else(|| anyhow::anyhow!("no container"))?;
                let out = netlab::run_in(child, "/bin/busybox", &netlab::ping_argv(&sub.host_ip()))?;
                r.ran("container", netlab::ping_argv(&sub.host_ip()).join(" "), &out);
                let n = netlab::ping_received(&out.stdout);
                r.check(format!("container → bridge {}: replies", sub.host_ip()), "at least 1 of 2", format!("{n} of 2"), n >= 1);
                let out = netlab::host_busybox(cx, &netlab::ping_argv(&sub.peer_ip()), std::time::Duration::from_secs(5))?;
                r.ran("host", netlab::ping_argv(&sub.peer_ip()).join(" "), &out);
                let n = netlab::ping_received(&out.stdout);
                r.check(format!("host → container {}: replies", sub.peer_ip()), "at least 1 of 2", format!("{n} of 2"), n >= 1);
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        crate::kit::sh_in(self.child.as_mut().ok_or_else(|| anyhow::anyhow!("the lesson did not start its container"))?, cx.lesson)
    }
}
