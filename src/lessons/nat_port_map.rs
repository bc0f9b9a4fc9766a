//! nat-port-map: MASQUERADE out of the container subnet, DNAT a host port into it.
//!
//! A bridged container has a private address nobody outside knows a route
//! to. Two NAT rules fix both directions: MASQUERADE rewrites the source of
//! the container's outgoing connections to the host's address, and DNAT
//! rewrites the destination of connections to a host port (8080, or the
//! first free one after it when other runs hold it) to the container's
//! address and port (80) — `docker run -p 8080:80`. Connection
//! tracking applies each rewrite to the whole connection and reverses it for
//! the replies. The "outside world" here is one more network namespace wired
//! to the host by its own veth pair: no packet ever leaves the machine.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sched::CloneFlags;

use crate::kit::netlab::{self, Place, Subnet};
use crate::kit::spawn_child;
use crate::hostobj::firewall::{self, Action, Firewall, Hook, Rule};
use crate::host::Host;
use crate::kernel::child::{NsChild, Request, RunOutput};
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};
use crate::observe::Snapshot;
use crate::hostobj::sysctl;

pub const DEF: LessonDef = LessonDef::of::<NatPortMap>(preflight).shell("inside the lesson").spots(&[
    // Two namespaces with a web server each, the bridge, veth and outside link, our table, forwarding on.
    ("masquerade", Spot::Procs(4)),
    ("masquerade", Spot::Present("link", 3)),
    ("masquerade", Spot::Present("nft_table", 1)),
    ("masquerade", Spot::Sysctl("net/ipv4/ip_forward", "1")),
    ("masquerade", Spot::Present("sysctl", 1)),
]);

/// The port the outside world's own web server listens on.
const OUTSIDE_PORT: u16 = 8000;

/// Everything preflight decides, recomputed identically by the lesson.
struct Plan {
    sub: Subnet,
    outside: Subnet,
    host_port: netlab::HostPort,
    container_port: u16,
    backend: firewall::Backend,
}

fn no_outside() -> String {
    format!("no free subnet for the outside-world link among {}: free one of them, or pick a --subnet outside them", netlab::OUTSIDE_SUBNETS.join(", "))
}

/// The plan; with `reserve`, the host port and both subnets are also
/// reserved host-wide for this run (so concurrent runs get different ones).
///
/// The host port must differ between runs: each run's rules match only its
/// own outside link's address, except the localhost step's `127.0.0.1:PORT`,
/// which is the same on every run. With two runs on one port, the first
/// table whose DNAT rule sees a connection to 127.0.0.1:PORT takes it, and
/// the other run's request lands in that run's container.
fn plan(opts: &LessonOptions, reserve: bool) -> anyhow::Result<Plan> {
    let (given_port, container_port) = netlab::check_ports(opts).map_err(anyhow::Error::msg)?;
    let backend = firewall::detect().map_err(anyhow::Error::msg)?;
    // First, so that a port another run took since preflight refuses the run
    // before anything else is created.
    let host_port = if reserve {
        netlab::reserve_host_port(given_port)?
    } else {
        netlab::choose_host_port(given_port, netlab::host_port_in_use, &netlab::held_ports_elsewhere()).map_err(anyhow::Error::msg)?
    };
    let (sub, outside) = plan_subnets(opts, reserve).map_err(anyhow::Error::msg)?;
    Ok(Plan { sub, outside, host_port, container_port, backend })
}

/// The container's and the outside world's subnets (reserved with `reserve`).
fn plan_subnets(opts: &LessonOptions, reserve: bool) -> Result<(Subnet, Subnet), String> {
    let (sub, outside) = if reserve {
        let sub = netlab::reserve_subnet(opts.subnet.as_deref(), netlab::CONTAINER_SUBNETS, &[]).map_err(|e| e.to_string())?;
        let outside = netlab::reserve_subnet(None, netlab::OUTSIDE_SUBNETS, &[sub]).map_err(|_| no_outside())?;
        (sub, outside)
    } else {
        let host = wb_net::snapshot_current().map_err(|e| e.to_string())?;
        let held = netlab::held_elsewhere();
        let sub = netlab::choose_subnet(&host, opts.subnet.as_deref(), netlab::CONTAINER_SUBNETS, &[], &held)?;
        let outside = netlab::choose_subnet(&host, None, netlab::OUTSIDE_SUBNETS, &[sub], &held).map_err(|_| no_outside())?;
        (sub, outside)
    };
    Ok((sub, outside))
}

fn preflight(host: &Host, opts: &LessonOptions) -> anyhow::Result<()> {
    host.require_root("netlink link changes, sysctl and netfilter rules need CAP_NET_ADMIN")?;
    host.require_static_busybox()?;
    crate::host::features::require_link_kinds(&["veth", "bridge"])?;
    plan(opts, false)?;
    let blockers = firewall::host_forward_blockers();
    if !blockers.is_empty() {
        anyhow::bail!(
            "the host's firewall drops forwarded packets ({} has policy drop, as docker and ufw set it) and workbench never changes existing chains: run this lesson on a lab VM without them",
            blockers.join(", ")
        );
    }
    Ok(())
}

#[derive(Default)]
struct NatPortMap {
    container: Option<NsChild>,
    outside: Option<NsChild>,
    sub: Option<Subnet>,
    out_sub: Option<Subnet>,
    bridge: String,
    out_host: String,
    host_port: u16,
    container_port: u16,
    fw: Option<Firewall>,
    outside_busybox: String,
    scratch: Option<NsChild>,
}

fn need<T>(v: Option<T>, what: &str) -> anyhow::Result<T> {
    v.ok_or_else(|| anyhow::anyhow!("{what}: an earlier step did not run"))
}

impl NatPortMap {
    fn subs(&self) -> anyhow::Result<(Subnet, Subnet)> {
        Ok((need(self.sub, "no container subnet")?, need(self.out_sub, "no outside subnet")?))
    }

    fn fw(&mut self) -> anyhow::Result<&mut Firewall> {
        self.fw.as_mut().ok_or_else(|| anyhow::anyhow!("no firewall: the forwarding step did not run"))
    }

    /// Firewall rules with their packet counters, and the forwarding switches, as facts.
    fn facts(&self, label: &str) -> anyhow::Result<Snapshot> {
        let mut facts = BTreeMap::new();
        for key in ["net/ipv4/ip_forward".to_string(), format!("net/ipv4/conf/{}/route_localnet", self.bridge)] {
            if let Ok(v) = sysctl::read(&key) {
                facts.insert(sysctl::dotted(&key), v);
            }
        }
        if let Some(fw) = &self.fw {
            for (rule, n) in fw.counters()? {
                facts.insert(format!("rule {rule}"), format!("{n} packets"));
            }
        }
        Ok(Snapshot { label: label.into(), facts, ..Default::default() })
    }

    fn in_container(&mut self, argv: &[String]) -> anyhow::Result<RunOutput> {
        let c = self.container.as_mut().ok_or_else(|| anyhow::anyhow!("no container"))?;
        netlab::run_in(c, "/bin/busybox", argv)
    }

    fn in_outside(&mut self, argv: &[String]) -> anyhow::Result<RunOutput> {
        let bb = self.outside_busybox.clone();
        let c = self.outside.as_mut().ok_or_else(|| anyhow::anyhow!("no outside world"))?;
        netlab::run_in(c, &bb, argv)
    }

    fn add_rules(&mut self, r: &mut StepReport, rules: &[Rule]) -> anyhow::Result<()> {
        for rule in rules {
            let fw = self.fw()?;
            for o in fw.objects_for(rule) {
                crate::state::record(o)?;
            }
            for cmd in fw.add(rule)? {
                r.say("host", cmd, "");
            }
        }
        Ok(())
    }
}

/// `wget -q -O - URL` on the host with a time limit.
fn host_wget(cx: &Cx, r: &mut StepReport, url: &str, secs: u64) -> anyhow::Result<RunOutput> {
    let argv = ["wget", "-q", "-O", "-", url].map(String::from);
    let out = netlab::host_busybox(cx, &argv, Duration::from_secs(secs))?;
    let shown = if out.signal.is_some() { RunOutput { stderr: format!("(no answer within {secs} s: stopped it)"), ..Default::default() } } else { out.clone() };
    r.ran("host", argv.join(" "), &shown);
    Ok(out)
}

fn ok_text(out: &RunOutput) -> String {
    if out.success() {
        out.stdout.trim().to_string()
    } else {
        out.describe()
    }
}

/// One echo request, given up after a second. `-W 1` matters: once its
/// `-c` requests are sent, busybox ping waits `-W` seconds (default 10) for
/// a reply, whatever `-w` says.
fn ping1(ip: &str) -> Vec<String> {
    ["ping", "-c", "1", "-w", "1", "-W", "1", ip].map(String::from).to_vec()
}

/// Docker's own NAT rules for this run's values, in `iptables-save` form
/// (pure): the `DOCKER` chain jumped to for local destinations, the port map
/// in it, and the subnet's MASQUERADE, as dockerd writes them with
/// `userland-proxy: false` (so the OUTPUT jump also covers 127.0.0.1, and
/// local sources are masqueraded onto the bridge, like the localhost step).
pub fn docker_nat_rules(bridge: &str, subnet: &str, host_port: u16, container: &str, port: u16) -> Vec<String> {
    vec![
        "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER".to_string(),
        "-A OUTPUT -m addrtype --dst-type LOCAL -j DOCKER".to_string(),
        format!("-A POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE"),
        format!("-A POSTROUTING -o {bridge} -m addrtype --src-type LOCAL -j MASQUERADE"),
        format!("-A DOCKER -i {bridge} -j RETURN"),
        format!("-A DOCKER ! -i {bridge} -p tcp -m tcp --dport {host_port} -j DNAT --to-destination {container}:{port}"),
    ]
}

/// The rules as an `iptables-restore` file for the nat table.
pub fn restore_file(rules: &[String]) -> String {
    let mut s = String::from("*nat\n:DOCKER - [0:0]\n");
    for r in rules {
        s.push_str(r);
        s.push('\n');
    }
    s.push_str("COMMIT\n");
    s
}

/// What each of Docker's rules does in the lesson, and why it is the same
/// here (pure; `out` is the outside link, `out_ip` the host's address on it).
pub fn docker_equivalents(rules: &[String], bridge: &str, subnet: &str, out: &str, out_ip: &str, host_port: u16) -> Vec<(String, String)> {
    vec![
        (rules[0].clone(), format!("step dnat matches `ip daddr {out_ip}`: the only local address the outside world can reach, so `--dst-type LOCAL` picks the same packets")),
        (rules[1].clone(), format!("steps from-host and localhost: `output ip daddr {out_ip}` and `ip daddr 127.0.0.1`, both local addresses")),
        (rules[2].clone(), format!("step masquerade: `ip saddr {subnet} oifname {out}`; the fence drops every other way out of {bridge}, so `! -o {bridge}` and `-o {out}` leave by the same link")),
        (rules[3].clone(), format!("step localhost: `ip saddr 127.0.0.0/8 oifname {bridge} masquerade`, the only local source that needs it")),
        (rules[4].clone(), format!("not needed: the lesson's DNAT rules match no packet from {bridge} (they name `iifname {out}` or the OUTPUT hook)")),
        (rules[5].clone(), format!("steps dnat, from-host, localhost: `tcp dport {host_port} dnat to` the container; `! -i {bridge}` is the lesson's `iifname {out}` or OUTPUT")),
    ]
}

/// Run a program inside the network namespace of `pid`.
fn run_in_netns(pid: i32, argv: &[&str]) -> anyhow::Result<RunOutput> {
    let (prog, args) = argv.split_first().ok_or_else(|| anyhow::anyhow!("empty command"))?;
    let out = wb_net::in_netns_of(pid, || Ok(std::process::Command::new(prog).args(args).output()))?;
    Ok(match out {
        Ok(o) => RunOutput { code: o.status.code(), signal: None, stdout: String::from_utf8_lossy(&o.stdout).into(), stderr: String::from_utf8_lossy(&o.stderr).into(), spawn_error: None },
        Err(e) => RunOutput { spawn_error: Some((e.to_string(), e.raw_os_error().unwrap_or(0))), ..Default::default() },
    })
}

impl Lesson for NatPortMap {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        let me = crate::kernel::proc::self_pid();
        match step {
            "container" => {
                let p = plan(&cx.options, true)?;
                self.sub = Some(p.sub);
                self.out_sub = Some(p.outside);
                self.host_port = p.host_port.port;
                self.container_port = p.container_port;
                self.fw = Some(Firewall::new(p.backend, &format!("{}{}", crate::hostobj::PREFIX, cx.run_id))?);
                self.bridge = netlab::link_name(&cx.run_id, "br")?;
                self.out_host = netlab::link_name(&cx.run_id, "o0")?;
                let host_end = netlab::link_name(&cx.run_id, "h0")?;
                let peer = netlab::link_name(&cx.run_id, "c0")?;
                let rootfs = netlab::build_container_rootfs(cx, "container", "container")?;
                let (child, said) = netlab::start_container(netlab::container_flags(), &rootfs, "container", None)?;
                for (place, s) in said {
                    r.say(place, s, "");
                }
                let pid = child.pid();
                self.container = Some(child);
                let sides = [("host", me), ("container", pid)];
                let before = netlab::lab_snapshot("host + container", &sides)?;
                let ns = Place::Ns { pid, label: "container".into() };
                let mut ops = netlab::bridge_ops(&self.bridge, &p.sub);
                ops.extend(netlab::veth_ops(&host_end, &peer, &self.bridge));
                ops.extend(netlab::inside_ops(&peer, &ns, pid, &p.sub.peer_cidr(), Some(&p.sub.host_ip())));
                netlab::apply_ops(r, &ops)?;
                netlab::wait_oper_up(pid, "eth0", Duration::from_secs(3))?;
                let after = netlab::lab_snapshot("host + container", &sides)?;
                r.observe(before, after);
                let out = netlab::host_busybox(cx, &netlab::ping_argv(&p.sub.peer_ip()), Duration::from_secs(5))?;
                r.ran("host", netlab::ping_argv(&p.sub.peer_ip()).join(" "), &out);
                let n = netlab::ping_received(&out.stdout);
                r.check(format!("host → container {}", p.sub.peer_ip()), "replies", format!("{n} of 2 replies"), n >= 1);
                r.say("workbench", "the plan", format!(
                        "container subnet {}, outside-world subnet {}, port map host {} → container {} ({}), firewall: {}",
                        p.sub.cidr(),
                        p.outside.cidr(),
                        p.host_port.port,
                        p.container_port,
                        p.host_port.why,
                        p.backend.name()
                    ));
            }
            "httpd" => {
                let (sub, _) = self.subs()?;
                let port = self.container_port;
                let c = self.container.as_mut().ok_or_else(|| anyhow::anyhow!("no container"))?;
                let before = Snapshot { label: "container".into(), facts: [("httpd in the container".to_string(), "not running".to_string())].into(), ..Default::default() };
                let argv = ["/bin/busybox", "httpd", "-f", "-p", &port.to_string(), "-h", "/www"];
                let inner = c.spawn_inside(&argv)?;
                r.say("container", format!("httpd -f -p {port} -h /www &"), format!("[1] {inner}"));
                let up = netlab::wait_until(Duration::from_secs(3), || Ok(netlab::tcp_open(&sub.peer_ip(), port)))?;
                let ns = netlab::run_in(c, "/bin/busybox", &["netstat".into(), "-ltn".into()])?;
                r.ran("container", "netstat -ltn", &ns);
                let after = Snapshot { label: "container".into(), facts: [("httpd in the container".to_string(), format!("pid {inner} (inside), listening on :{port}"))].into(), ..Default::default() };
                r.observe(before, after);
                r.check_eq(format!("something listens on {}:{port}", sub.peer_ip()), true, up);
                let out = host_wget(cx, r, &format!("http://{}:{port}/", sub.peer_ip()), 3)?;
                r.check("the host fetches the page straight from the container", netlab::INDEX_HTML.trim(), ok_text(&out), out.success() && out.stdout == netlab::INDEX_HTML);
            }
            "outside-world" => {
                let (sub, out_sub) = self.subs()?;
                self.outside_busybox = cx.host.require_static_busybox()?.display().to_string();
                let out_peer = netlab::link_name(&cx.run_id, "p0")?;
                let www = cx.workdir.join("outside-www");
                netlab::write_web_root(&www)?;
                let flags = CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
                let mut child = spawn_child(flags)?;
                child.act(&Request::MakeRprivate)?;
                child.act(&Request::SetHostname("outside".into()))?;
                let pid = child.pid();
                r.say("parent", format!("clone(..., {}) = {pid}   (the outside world: a namespace of its own, not the real network)", crate::kernel::ns::flag_names(flags)), "");
                let bb = self.outside_busybox.clone();
                child.spawn_inside(&[&bb, "httpd", "-f", "-p", &OUTSIDE_PORT.to_string(), "-h", &www.display().to_string()])?;
                r.say("outside", format!("httpd -f -p {OUTSIDE_PORT} -h {} &   (its /cgi-bin/whoami prints the client's address)", www.display()), "");
                self.outside = Some(child);
                let sides = [("host", me), ("outside", pid)];
                let before = netlab::lab_snapshot("host + outside", &sides)?;
                let ns = Place::Ns { pid, label: "outside".into() };
                let mut ops = vec![
                    (Place::Host, wb_net::Op::CreateVeth { name: self.out_host.clone(), peer: out_peer.clone() }),
                    (Place::Host, wb_net::Op::AddAddress { link: self.out_host.clone(), cidr: out_sub.host_cidr() }),
                    (Place::Host, wb_net::Op::SetUp { link: self.out_host.clone() }),
                ];
                ops.extend(netlab::inside_ops(&out_peer, &ns, pid, &out_sub.peer_cidr(), None));
                netlab::apply_ops(r, &ops)?;
                netlab::wait_oper_up(pid, "eth0", Duration::from_secs(3))?;
                let after = netlab::lab_snapshot("host + outside", &sides)?;
                r.observe(before, after);
                let ping = self.in_outside(&netlab::ping_argv(&out_sub.host_ip()))?;
                r.ran("outside", netlab::ping_argv(&out_sub.host_ip()).join(" "), &ping);
                let n = netlab::ping_received(&ping.stdout);
                r.check(format!("outside → host {}", out_sub.host_ip()), "replies", format!("{n} of 2 replies"), n >= 1);
                let ping = self.in_outside(&ping1(&sub.peer_ip()))?;
                r.ran("outside", ping1(&sub.peer_ip()).join(" "), &ping);
                let n = netlab::ping_received(&ping.stdout);
                r.check(format!("outside → container {} (no route to it)", sub.peer_ip()), "no reply", format!("{n} replies"), n == 0 && !ping.success());
                let url = format!("http://{}:{}/", out_sub.host_ip(), self.host_port);
                let get = self.in_outside(&netlab::wget_argv(&url, 3))?;
                r.ran("outside", netlab::wget_argv(&url, 3).join(" "), &get);
                r.check(format!("outside → host port {} (nothing mapped yet)", self.host_port), "refused", if get.success() { "answered".to_string() } else if get.stderr.contains("refused") { "refused".to_string() } else { get.describe() }, !get.success() && get.stderr.contains("refused"));
            }
            "forwarding" => {
                let before = self.facts("host")?;
                let bridge = self.bridge.clone();
                let out_host = self.out_host.clone();
                // Fence the lab first: whatever enters from one of our links may
                // only leave through the other one — never through a real interface.
                let fence = [
                    Rule { iif: Some(bridge.clone()), oif_not: Some(out_host.clone()), ..Rule::new(Hook::Forward, Action::Drop) },
                    Rule { iif: Some(out_host.clone()), oif_not: Some(bridge.clone()), ..Rule::new(Hook::Forward, Action::Drop) },
                ];
                self.add_rules(r, &fence)?;
                let key = "net/ipv4/ip_forward";
                let prev = crate::state::set_sysctl(key, "1", &sysctl::ip_forward_side_effects())?;
                r.say("host", "sysctl -w net.ipv4.ip_forward=1", format!("net.ipv4.ip_forward = 1   (was {prev}; restored at the end)"));
                let after = self.facts("host")?;
                r.observe(before, after);
                r.check_eq("net.ipv4.ip_forward", "1".to_string(), sysctl::read(key)?);
                let drops = self.fw()?.counters()?.iter().filter(|(rule, _)| rule.contains("drop") || rule.contains("DROP")).count();
                r.check_eq("our fence rules", 2, drops);
            }
            "masquerade" => {
                let (sub, out_sub) = self.subs()?;
                let target = out_sub.peer_ip();
                let ping = self.in_container(&ping1(&target))?;
                r.ran("container", ping1(&target).join(" "), &ping);
                let lost = netlab::ping_received(&ping.stdout) == 0;
                r.check(format!("container → outside {target} without NAT (no route back to {})", sub.cidr()), "no reply", if lost { "no reply" } else { "reply" }, lost);
                let before = self.facts("host")?;
                let masq = Rule { saddr: Some(sub.cidr()), oif: Some(self.out_host.clone()), ..Rule::new(Hook::Postrouting, Action::Masquerade) };
                self.add_rules(r, &[masq])?;
                let ping = self.in_container(&netlab::ping_argv(&target))?;
                r.ran("container", netlab::ping_argv(&target).join(" "), &ping);
                let n = netlab::ping_received(&ping.stdout);
                let url = format!("http://{target}:{OUTSIDE_PORT}/cgi-bin/whoami");
                let who = self.in_container(&netlab::wget_argv(&url, 3))?;
                r.ran("container", netlab::wget_argv(&url, 3).join(" "), &who);
                let after = self.facts("host")?;
                r.observe(before, after);
                r.check(format!("container → outside {target} with MASQUERADE"), "replies", format!("{n} of 2 replies"), n >= 1);
                let seen = netlab::client_address(&who.stdout);
                r.check("the outside world sees the request come from", out_sub.host_ip(), if who.success() { seen.clone() } else { who.describe() }, who.success() && seen == out_sub.host_ip());
            }
            "dnat" => {
                let (sub, out_sub) = self.subs()?;
                let before = self.facts("host")?;
                let dnat = Rule {
                    iif: Some(self.out_host.clone()),
                    daddr: Some(out_sub.host_ip()),
                    tcp_dport: Some(self.host_port),
                    ..Rule::new(Hook::Prerouting, Action::Dnat { addr: sub.peer_ip(), port: self.container_port })
                };
                self.add_rules(r, &[dnat])?;
                let base = format!("http://{}:{}", out_sub.host_ip(), self.host_port);
                let page = self.in_outside(&netlab::wget_argv(&format!("{base}/"), 3))?;
                r.ran("outside", netlab::wget_argv(&format!("{base}/"), 3).join(" "), &page);
                let who = self.in_outside(&netlab::wget_argv(&format!("{base}/cgi-bin/whoami"), 3))?;
                r.ran("outside", netlab::wget_argv(&format!("{base}/cgi-bin/whoami"), 3).join(" "), &who);
                let after = self.facts("host")?;
                r.observe(before, after);
                r.check(format!("outside → host port {} answers with the container's page", self.host_port), netlab::INDEX_HTML.trim(), ok_text(&page), page.success() && page.stdout == netlab::INDEX_HTML);
                let seen = netlab::client_address(&who.stdout);
                r.check("the container sees the real client (DNAT keeps the source)", out_sub.peer_ip(), if who.success() { seen.clone() } else { who.describe() }, who.success() && seen == out_sub.peer_ip());
            }
            "from-host" => {
                let (sub, out_sub) = self.subs()?;
                let before = self.facts("host")?;
                let rule = Rule { daddr: Some(out_sub.host_ip()), tcp_dport: Some(self.host_port), ..Rule::new(Hook::Output, Action::Dnat { addr: sub.peer_ip(), port: self.container_port }) };
                self.add_rules(r, &[rule])?;
                let base = format!("http://{}:{}", out_sub.host_ip(), self.host_port);
                let page = host_wget(cx, r, &format!("{base}/"), 3)?;
                let who = host_wget(cx, r, &format!("{base}/cgi-bin/whoami"), 3)?;
                let after = self.facts("host")?;
                r.observe(before, after);
                r.check(format!("host → {base}/ (OUTPUT chain DNAT)"), netlab::INDEX_HTML.trim(), ok_text(&page), page.success() && page.stdout == netlab::INDEX_HTML);
                let seen = netlab::client_address(&who.stdout);
                r.check("the container sees the host's own address", out_sub.host_ip(), if who.success() { seen.clone() } else { who.describe() }, who.success() && seen == out_sub.host_ip());
            }
            "localhost" => {
                let (sub, _) = self.subs()?;
                let before = self.facts("host")?;
                let base = format!("http://127.0.0.1:{}", self.host_port);
                let rule = Rule { daddr: Some("127.0.0.1".into()), tcp_dport: Some(self.host_port), ..Rule::new(Hook::Output, Action::Dnat { addr: sub.peer_ip(), port: self.container_port }) };
                self.add_rules(r, &[rule])?;
                let stuck = host_wget(cx, r, &format!("{base}/"), 2)?;
                r.check("with DNAT alone, 127.0.0.1 → the container", "no answer (source 127.0.0.1 may not leave through a real link)", if stuck.success() { "answered".to_string() } else { "no answer".to_string() }, !stuck.success());
                let key = format!("net/ipv4/conf/{}/route_localnet", self.bridge);
                let prev = crate::state::set_sysctl(&key, "1", &[])?;
                r.say("host", format!("sysctl -w {}=1", sysctl::dotted(&key)), format!("{} = 1   (was {prev}; on our bridge only)", sysctl::dotted(&key)));
                let masq = Rule { saddr: Some("127.0.0.0/8".into()), oif: Some(self.bridge.clone()), ..Rule::new(Hook::Postrouting, Action::Masquerade) };
                self.add_rules(r, &[masq])?;
                let page = host_wget(cx, r, &format!("{base}/"), 3)?;
                let who = host_wget(cx, r, &format!("{base}/cgi-bin/whoami"), 3)?;
                let after = self.facts("host")?;
                r.observe(before, after);
                r.check("with route_localnet and MASQUERADE, 127.0.0.1 → the container", netlab::INDEX_HTML.trim(), ok_text(&page), page.success() && page.stdout == netlab::INDEX_HTML);
                let seen = netlab::client_address(&who.stdout);
                r.check("the container sees the bridge's address", sub.host_ip(), if who.success() { seen.clone() } else { who.describe() }, who.success() && seen == sub.host_ip());
            }
            "rules" => {
                let fw = self.fw()?;
                let listing = fw.list()?;
                r.say("host", fw.list_command(), listing.trim_end().to_string());
                let counters = fw.counters()?;
                for (rule, n) in &counters {
                    let is_fence = rule.contains(" drop") || rule.contains("-j DROP");
                    if is_fence {
                        r.check(format!("fence: {rule}"), "0 packets (nothing tried to leave the lab)", format!("{n} packets"), *n == 0);
                    } else {
                        r.check(format!("used: {rule}"), "at least 1 packet", format!("{n} packets"), *n >= 1);
                    }
                }
                r.check_eq("our rules", 7, counters.len());
            }
            "docker-rules" => {
                let (sub, out_sub) = self.subs()?;
                let rules = docker_nat_rules(&self.bridge, &sub.cidr(), self.host_port, &sub.peer_ip(), self.container_port);
                r.say("dockerd", "iptables -t nat -S   # what Docker would write for this run's bridge, subnet and port map", rules.join("\n"));
                for (rule, why) in docker_equivalents(&rules, &self.bridge, &sub.cidr(), &self.out_host, &out_sub.host_ip(), self.host_port) {
                    r.say("workbench", rule, why);
                }
                // Why the address matches: the lesson's DNAT destination is a local address of the host.
                let host = wb_net::snapshot_current()?;
                let local = host.addresses.iter().any(|a| a.cidr.split('/').next() == Some(out_sub.host_ip().as_str()));
                r.check(format!("{} is a local address of the host (so `--dst-type LOCAL` matches it)", out_sub.host_ip()), format!("on {}", self.out_host), if local { format!("on {}", self.out_host) } else { "not local".into() }, local);
                // Docker's forms, loaded for real, but only into a scratch network
                // namespace of the lesson's own: never into the host's tables.
                let file = cx.workdir.join("docker-nat.rules");
                std::fs::write(&file, restore_file(&rules))?;
                let scratch = spawn_child(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)?;
                let pid = scratch.pid();
                self.scratch = Some(scratch);
                r.say("parent", format!("clone(..., CLONE_NEWNET|CLONE_NEWNS) = {pid}   (a scratch network namespace: its own, empty netfilter tables)"), "");
                let path = file.display().to_string();
                let restore = run_in_netns(pid, &["iptables-restore", &path])?;
                r.ran("scratch", format!("iptables-restore {path}"), &restore);
                let save = run_in_netns(pid, &["iptables-save", "-t", "nat"])?;
                let listed: Vec<&str> = save.stdout.lines().filter(|l| l.starts_with("-A ")).collect();
                r.ran("scratch", "iptables-save -t nat | grep -- '^-A'", &RunOutput { stdout: listed.join("\n"), ..save.clone() });
                r.check("the kernel holds Docker's six nat rules in the scratch namespace, as written", rules.len().to_string(), format!("{} ({} equal to the rendered ones)", listed.len(), listed.iter().filter(|l| rules.iter().any(|x| x == *l)).count()), restore.success() && listed.len() == rules.len() && rules.iter().all(|x| listed.contains(&x.as_str())));
                if firewall::iptables_is_nft_variant() {
                    let nft = run_in_netns(pid, &["nft", "list", "table", "ip", "nat"])?;
                    r.ran("scratch", "nft list table ip nat   # iptables-nft stored them as nftables rules", &nft);
                    let dnat = format!("dnat to {}:{}", sub.peer_ip(), self.container_port);
                    let ours = self.fw()?.list()?;
                    // The lesson's own table lists it as nft or as iptables-save (`-j DNAT --to-destination`), by backend.
                    let ours_has = ours.contains(&dnat) || ours.contains(&format!("--to-destination {}:{}", sub.peer_ip(), self.container_port));
                    let both = nft.stdout.contains(&dnat) && nft.stdout.contains(&format!("tcp dport {}", self.host_port)) && ours_has;
                    r.check("the same DNAT action in Docker's chain and in the lesson's table", dnat.clone(), if both { dnat } else { "differs (see the listings)".into() }, both);
                    let local = nft.stdout.contains("fib daddr type local");
                    r.check("`-m addrtype --dst-type LOCAL` in nftables", "fib daddr type local", if local { "fib daddr type local" } else { "absent" }, local);
                }
                drop(self.scratch.take());
                r.say("parent", format!("kill {pid}   (the scratch namespace and its rules go with it)"), "");
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        crate::kit::sh_in(self.container.as_mut().ok_or_else(|| anyhow::anyhow!("the lesson did not start its container"))?, cx.lesson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_rules_take_this_runs_values() {
        let rules = docker_nat_rules("wbab12cdbr", "10.213.0.0/24", 8081, "10.213.0.2", 80);
        assert_eq!(rules[2], "-A POSTROUTING -s 10.213.0.0/24 ! -o wbab12cdbr -j MASQUERADE");
        assert_eq!(
            rules[5],
            "-A DOCKER ! -i wbab12cdbr -p tcp -m tcp --dport 8081 -j DNAT --to-destination 10.213.0.2:80"
        );
        assert!(rules[0].ends_with("--dst-type LOCAL -j DOCKER"));
        let file = restore_file(&rules);
        assert!(file.starts_with("*nat\n:DOCKER - [0:0]\n-A PREROUTING"), "{file}");
        assert!(file.ends_with("COMMIT\n"));
        assert_eq!(file.lines().filter(|l| l.starts_with("-A ")).count(), 6);
    }

    #[test]
    fn every_docker_rule_has_its_lesson_counterpart() {
        let rules = docker_nat_rules("wbab12cdbr", "10.213.0.0/24", 8080, "10.213.0.2", 80);
        let eq = docker_equivalents(&rules, "wbab12cdbr", "10.213.0.0/24", "wbab12cdo0", "10.214.0.1", 8080);
        assert_eq!(eq.len(), rules.len());
        assert_eq!(eq[5].0, rules[5]);
        assert!(eq.iter().all(|(rule, why)| rule.starts_with("-A ") && !why.is_empty()));
        assert!(eq[2].1.contains("oifname wbab12cdo0") && eq[0].1.contains("10.214.0.1"));
    }
}
