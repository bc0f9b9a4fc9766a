//! The network lab shared by veth-bridge, nat-port-map and net-modes.
//!
//! A container's network is a network namespace: its own links, addresses
//! and routing table. At birth (`clone(CLONE_NEWNET)`) it holds only a
//! loopback device that is down — Docker's `--network none`. Wiring it to
//! the host takes a veth pair (two virtual Ethernet devices joined like a
//! cable): one end stays on the host, plugged into a bridge (a software
//! switch, Docker's `docker0`), the other end moves into the namespace.
//! This module holds the pieces: subnets that never clash with the host's
//! routes, `wb…` link names, the container itself, the wiring operations
//! (each with its classic `ip` command), and ping/HTTP helpers with timeouts.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sched::CloneFlags;
use rootfs_builder::build::{build_rootfs, RootfsSpec};
use wb_net::{IpNet, NetSnapshot, Op};

use super::spawn_child;
use crate::kernel::child::{NsChild, Request, RunOutput};
use crate::lesson::{Cx, LessonOptions, StepReport};
use crate::observe::{NetState, Snapshot};
use crate::state::{self, Resource};

/// Candidate container subnets, tried in order; the first that clashes with
/// no host route or address wins.
pub const CONTAINER_SUBNETS: &[&str] = &[
    "10.213.0.0/24",
    "10.213.1.0/24",
    "10.213.2.0/24",
    "10.213.3.0/24",
    "10.213.4.0/24",
    "10.213.5.0/24",
    "10.213.6.0/24",
    "10.213.7.0/24",
    "10.213.8.0/24",
    "10.213.9.0/24",
    "10.213.10.0/24",
    "10.213.11.0/24",
    "10.213.12.0/24",
    "10.213.13.0/24",
    "10.213.14.0/24",
    "10.213.15.0/24",
    "172.29.213.0/24",
    "192.168.213.0/24",
];

/// Candidate subnets for the "outside world" link of nat-port-map.
pub const OUTSIDE_SUBNETS: &[&str] = &[
    "10.214.0.0/24",
    "10.214.1.0/24",
    "10.214.2.0/24",
    "10.214.3.0/24",
    "10.214.4.0/24",
    "10.214.5.0/24",
    "10.214.6.0/24",
    "10.214.7.0/24",
    "10.214.8.0/24",
    "10.214.9.0/24",
    "10.214.10.0/24",
    "10.214.11.0/24",
    "172.29.214.0/24",
    "192.168.214.0/24",
];

/// The default port mapping: host port 8080 → container port 80.
pub const DEFAULT_HOST_PORT: u16 = 8080;
pub const DEFAULT_CONTAINER_PORT: u16 = 80;
/// Without `--host-port`, a run takes the first free port from 8080 on,
/// among this many.
pub const HOST_PORT_CANDIDATES: u16 = 100;

/// Namespaces of a container in the bridge (and none) network mode.
pub fn container_flags() -> CloneFlags {
    CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
}

/// An IPv4 lab subnet: `.1` is the host's side, `.2` the namespace's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + n)
    }
    /// `10.213.0.0/24`
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network, self.prefix)
    }
    /// The host's (bridge's) address, the container's gateway: `10.213.0.1`.
    pub fn host_ip(&self) -> String {
        self.nth(1).to_string()
    }
    pub fn host_cidr(&self) -> String {
        format!("{}/{}", self.nth(1), self.prefix)
    }
    /// The namespace's address: `10.213.0.2`.
    pub fn peer_ip(&self) -> String {
        self.nth(2).to_string()
    }
    pub fn peer_cidr(&self) -> String {
        format!("{}/{}", self.nth(2), self.prefix)
    }
    fn as_ipnet(&self) -> IpNet {
        wb_net::parse_cidr(&self.cidr()).expect("a subnet prints as a valid cidr")
    }
    pub fn overlaps(&self, other: &Subnet) -> bool {
        wb_net::networks_overlap(&self.as_ipnet(), &other.as_ipnet())
    }
}

fn is_private(a: Ipv4Addr, prefix: u8) -> bool {
    let o = a.octets();
    (o[0] == 10 && prefix >= 8)
        || (o[0] == 172 && (16..=31).contains(&o[1]) && prefix >= 12)
        || (o[0] == 192 && o[1] == 168 && prefix >= 16)
}

/// Parse and validate a `--subnet` value (pure): an IPv4 subnet inside the
/// private ranges with room for two addresses. Host bits are dropped
/// (`10.213.0.7/24` means `10.213.0.0/24`).
pub fn parse_subnet(s: &str) -> Result<Subnet, String> {
    let net =
        wb_net::parse_cidr(s.trim()).map_err(|e| format!("--subnet: {e}: give a subnet such as 10.213.0.0/24"))?;
    let IpNet::V4(v4) = net.trunc() else {
        return Err(format!(
            "--subnet must be an IPv4 subnet such as 10.213.0.0/24, not {s}"
        ));
    };
    let prefix = v4.prefix_len();
    if !(8..=30).contains(&prefix) {
        return Err(format!("--subnet prefix must be between /8 and /30 (the host and the container each need an address), not /{prefix}"));
    }
    let network = v4.network();
    if !is_private(network, prefix) {
        return Err(format!(
            "--subnet must lie inside a private range (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16), not {}/{prefix}",
            network
        ));
    }
    Ok(Subnet { network, prefix })
}

/// The host route or address `sub` clashes with, described (`10.0.0.0/8 dev eth1`).
pub fn clash(host: &NetSnapshot, sub: &Subnet) -> Option<String> {
    let me = sub.as_ipnet();
    for r in &host.routes {
        if let Ok(Some(net)) = wb_net::parse_route_dst(&r.dst) {
            if wb_net::networks_overlap(&net, &me) {
                return Some(format!(
                    "route {}{}",
                    r.dst,
                    r.dev.as_ref().map(|d| format!(" dev {d}")).unwrap_or_default()
                ));
            }
        }
    }
    for a in &host.addresses {
        if let Ok(net) = wb_net::parse_cidr(&a.cidr) {
            if wb_net::networks_overlap(&net.trunc(), &me) {
                return Some(format!("address {} on {}", a.cidr, a.link));
            }
        }
    }
    None
}

/// The container subnet: `--subnet` if given (refused when it clashes with a
/// host route or address, or another live run holds it), else the first free
/// candidate not in `avoid` and not `held` by another run (pure).
pub fn choose_subnet(
    host: &NetSnapshot,
    given: Option<&str>,
    candidates: &[&str],
    avoid: &[Subnet],
    held: &[(Subnet, String)],
) -> Result<Subnet, String> {
    let free = candidates.iter().filter_map(|c| parse_subnet(c).ok()).find(|s| {
        clash(host, s).is_none() && !avoid.iter().any(|a| a.overlaps(s)) && !held.iter().any(|(h, _)| h.overlaps(s))
    });
    let hint = || {
        free.map(|f| format!(": choose a free one such as {}", f.cidr()))
            .unwrap_or_default()
    };
    if let Some(g) = given {
        let sub = parse_subnet(g)?;
        if let Some(c) = clash(host, &sub) {
            return Err(format!("--subnet {} overlaps the host's {c}{}", sub.cidr(), hint()));
        }
        if let Some((h, who)) = held.iter().find(|(h, _)| h.overlaps(&sub)) {
            return Err(format!(
                "--subnet {} overlaps {} held by {who}{}, or wait until it ends",
                sub.cidr(),
                h.cidr(),
                hint()
            ));
        }
        return Ok(sub);
    }
    free.ok_or_else(|| {
        format!(
            "none of the lab subnets ({}) is free on this host or unheld by other runs: give one with --subnet",
            candidates.join(", ")
        )
    })
}

/// The subnets other live runs hold (their state files' `subnet`
/// reservations), each with who holds it (`run 1a2b3c (veth-bridge)`).
pub fn held_elsewhere() -> Vec<(Subnet, String)> {
    let mut out = Vec::new();
    for run in state::other_live_runs() {
        for r in &run.resources {
            if let Resource::Subnet { cidr } = r {
                if let Ok(s) = parse_subnet(cidr) {
                    out.push((s, format!("run {} ({})", run.run_id, run.lesson)));
                }
            }
        }
    }
    out
}

/// [`choose_subnet`] on this host now, against the other live runs'
/// reservations: what a preflight checks (reserving nothing), and what
/// [`reserve_subnet`] records.
pub fn free_subnet(given: Option<&str>, candidates: &[&str], avoid: &[Subnet]) -> anyhow::Result<Subnet> {
    let host = wb_net::snapshot_current()?;
    choose_subnet(&host, given, candidates, avoid, &held_elsewhere()).map_err(anyhow::Error::msg)
}

/// The preflight of a one-bridge lab (veth-bridge, net-modes): root (`why`
/// the lesson needs it), a static busybox for the containers, veth and bridge
/// links, and a free container subnet.
pub fn require_bridge_lab(host: &crate::host::Host, opts: &LessonOptions, why: &str) -> anyhow::Result<()> {
    host.require_root(why)?;
    host.require_static_busybox()?;
    crate::host::features::require_link_kinds(&["veth", "bridge"])?;
    free_subnet(opts.subnet.as_deref(), CONTAINER_SUBNETS, &[])?;
    Ok(())
}

/// Choose a subnet as [`choose_subnet`] does and reserve it for this run,
/// host-wide: under an exclusive lock, look at the host's routes and
/// addresses and at the other live runs' reservations, then record the
/// choice in this run's state file. Two runs started at once cannot pick the
/// same one (the host's routes alone would not tell them: a run's routes
/// appear only once its links are up).
pub fn reserve_subnet(given: Option<&str>, candidates: &[&str], avoid: &[Subnet]) -> anyhow::Result<Subnet> {
    state::reserve("subnets", || -> anyhow::Result<Subnet> {
        let sub = free_subnet(given, candidates, avoid)?;
        state::record(Resource::Subnet { cidr: sub.cidr() })?;
        Ok(sub)
    })?
}

/// Validate the port options of nat-port-map (pure part): the host port
/// if given (else `None`: a free one is chosen, see [`choose_host_port`]) and
/// the container port.
pub fn check_ports(opts: &LessonOptions) -> Result<(Option<u16>, u16), String> {
    let cont = opts.container_port.unwrap_or(DEFAULT_CONTAINER_PORT);
    if let Some(host) = opts.host_port {
        if host == 0 {
            return Err("--host-port must be between 1024 and 65535, not 0".into());
        }
        if host < 1024 {
            return Err(format!("--host-port {host} is a privileged port that host services use (ssh is 22): choose one between 1024 and 65535"));
        }
    }
    if cont == 0 {
        return Err("--container-port must be between 1 and 65535, not 0".into());
    }
    Ok((opts.host_port, cont))
}

/// The host port of a port map and why it was taken, for the plan line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub port: u16,
    pub why: String,
}

/// The host port of nat-port-map (pure). `--host-port` if given, refused
/// when a program on the host listens on it or another live run maps it
/// (its DNAT rules for 127.0.0.1:PORT would take this run's connections).
/// Without it, 8080 (the post's port) when free, else the first port after
/// it that nothing listens on and no other run holds.
pub fn choose_host_port(
    given: Option<u16>,
    in_use: impl Fn(u16) -> bool,
    held: &[(u16, String)],
) -> Result<HostPort, String> {
    let holder = |p: u16| held.iter().find(|(h, _)| *h == p).map(|(_, who)| who.clone());
    if let Some(p) = given {
        if let Some(who) = holder(p) {
            return Err(format!("--host-port {p} is mapped by {who}, which is still running: choose another --host-port, or leave it out to take a free port"));
        }
        if in_use(p) {
            return Err(format!(
                "--host-port {p}: a program on this host already listens on it: choose another with --host-port"
            ));
        }
        return Ok(HostPort {
            port: p,
            why: "--host-port".into(),
        });
    }
    let last = DEFAULT_HOST_PORT + HOST_PORT_CANDIDATES - 1;
    let port = (DEFAULT_HOST_PORT..=last).find(|p| holder(*p).is_none() && !in_use(*p)).ok_or_else(|| {
        format!("no free host port between {DEFAULT_HOST_PORT} and {last} (other programs listen on them or other runs map them): give one with --host-port")
    })?;
    let why = if port == DEFAULT_HOST_PORT {
        format!("{port} is free: the post's port")
    } else {
        let taken = match holder(DEFAULT_HOST_PORT) {
            Some(who) => format!("mapped by {who}"),
            None => "in use on this host".to_string(),
        };
        format!("{DEFAULT_HOST_PORT} is {taken}: {port} is the first free port after it")
    };
    Ok(HostPort { port, why })
}

/// The host ports other live runs map (their state files' `host_port`
/// reservations), each with who holds it (`run 1a2b3c (nat-port-map)`).
pub fn held_ports_elsewhere() -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for run in state::other_live_runs() {
        for r in &run.resources {
            if let Resource::HostPort { port } = r {
                out.push((*port, format!("run {} ({})", run.run_id, run.lesson)));
            }
        }
    }
    out
}

/// Choose the host port as [`choose_host_port`] does and reserve it for this
/// run, host-wide (under an exclusive lock, recorded in the state file, so
/// two runs started at once never map the same port; the reservation ends
/// with the run, or with its owner's death). A port that cannot be had is a
/// [`UsageError`](crate::error::UsageError): the run was refused, like in
/// preflight (a run started at the same moment took it in between).
pub fn reserve_host_port(given: Option<u16>) -> anyhow::Result<HostPort> {
    state::reserve("ports", || -> anyhow::Result<HostPort> {
        let chosen =
            choose_host_port(given, host_port_in_use, &held_ports_elsewhere()).map_err(crate::error::UsageError)?;
        state::record(Resource::HostPort { port: chosen.port })?;
        Ok(chosen)
    })?
}

/// Ports with a TCP socket in LISTEN state, from `/proc/net/tcp` or `tcp6` text.
pub fn listening_ports(proc_net_tcp: &str) -> Vec<u16> {
    let mut v: Vec<u16> = proc_net_tcp
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let local = f.nth(1)?;
            let state = f.nth(1)?;
            (state == "0A").then_some(())?;
            u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Is something on the host listening on TCP `port`?
pub fn host_port_in_use(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .any(|p| listening_ports(&std::fs::read_to_string(p).unwrap_or_default()).contains(&port))
}

/// `wb` + run id + suffix: a link name of this run (at most 15 bytes).
pub fn link_name(run_id: &str, suffix: &str) -> anyhow::Result<String> {
    let name = format!("{}{run_id}{suffix}", crate::hostobj::PREFIX);
    wb_net::validate_ifname(&name)?;
    Ok(name)
}

/// Where a wiring operation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// workbench's own (the host's) network namespace.
    Host,
    /// The network namespace of process `pid`, shown as `label`.
    Ns { pid: i32, label: String },
}

/// Create a bridge with the gateway address, up.
pub fn bridge_ops(bridge: &str, sub: &Subnet) -> Vec<(Place, Op)> {
    vec![
        (Place::Host, Op::CreateBridge { name: bridge.into() }),
        (
            Place::Host,
            Op::AddAddress {
                link: bridge.into(),
                cidr: sub.host_cidr(),
            },
        ),
        (Place::Host, Op::SetUp { link: bridge.into() }),
    ]
}

/// A veth pair whose host end is plugged into `bridge` and up.
pub fn veth_ops(host_end: &str, peer: &str, bridge: &str) -> Vec<(Place, Op)> {
    vec![
        (
            Place::Host,
            Op::CreateVeth {
                name: host_end.into(),
                peer: peer.into(),
            },
        ),
        (
            Place::Host,
            Op::SetMaster {
                link: host_end.into(),
                bridge: bridge.into(),
            },
        ),
        (Place::Host, Op::SetUp { link: host_end.into() }),
    ]
}

/// Move `peer` into the namespace, name it eth0, address it, bring it and
/// lo up and (with a gateway) add the default route.
pub fn inside_ops(peer: &str, ns: &Place, pid: i32, cidr: &str, gateway: Option<&str>) -> Vec<(Place, Op)> {
    let mut v = vec![
        (Place::Host, Op::MoveToNetnsPid { link: peer.into(), pid }),
        (
            ns.clone(),
            Op::Rename {
                link: peer.into(),
                new_name: "eth0".into(),
            },
        ),
        (
            ns.clone(),
            Op::AddAddress {
                link: "eth0".into(),
                cidr: cidr.into(),
            },
        ),
        (ns.clone(), Op::SetUp { link: "lo".into() }),
        (ns.clone(), Op::SetUp { link: "eth0".into() }),
    ];
    if let Some(gw) = gateway {
        v.push((ns.clone(), Op::AddRouteDefault { gateway: gw.into() }));
    }
    v
}

/// The classic command for an operation at a place.
pub fn command_at(place: &Place, op: &Op) -> String {
    match place {
        Place::Host => op.classic_command(),
        Place::Ns { pid, .. } => wb_net::classic_command_in_netns(op, *pid),
    }
}

/// Perform operations in order through netlink, printing each classic
/// command. Links created on the host are recorded in the state file before
/// they are created (and a name already taken is refused, so we never delete
/// a stranger's link); links created inside a lab namespace die with it.
pub fn apply_ops(r: &mut StepReport, ops: &[(Place, Op)]) -> anyhow::Result<()> {
    for (place, op) in ops {
        let new_links: Vec<&String> = match (place, op) {
            (Place::Host, Op::CreateBridge { name }) => vec![name],
            (Place::Host, Op::CreateVeth { name, peer }) => vec![name, peer],
            _ => vec![],
        };
        for name in new_links {
            if wb_net::link_exists(name)? {
                anyhow::bail!("link {name} already exists on the host: run `workbench cleanup`, or remove it with `ip link del {name}` if it is not yours");
            }
            state::record(Resource::Link { name: name.clone() })?;
        }
        let res = match place {
            Place::Host => wb_net::apply(op),
            Place::Ns { pid, .. } => wb_net::in_netns_of(*pid, || wb_net::apply(op)),
        };
        res.with_context(|| command_at(place, op))?;
        let where_ = match place {
            Place::Host => "host".to_string(),
            Place::Ns { label, .. } => label.clone(),
        };
        r.say(&where_, command_at(place, op), "");
    }
    Ok(())
}

/// Network state of the host and of a namespace in one view: every key is
/// prefixed with `host:` or `LABEL:`, so one diff shows both sides.
pub fn lab_state(sides: &[(&str, i32)]) -> anyhow::Result<NetState> {
    let mut all = NetState::default();
    for (label, pid) in sides {
        let s = crate::observe::net::net_state_of(*pid)?;
        let pre = |m: BTreeMap<String, String>| {
            m.into_iter()
                .map(|(k, v)| (format!("{label}: {k}"), v))
                .collect::<BTreeMap<_, _>>()
        };
        all.links.extend(pre(s.links));
        all.addresses.extend(pre(s.addresses));
        all.routes.extend(pre(s.routes));
    }
    Ok(all)
}

/// A snapshot of the host's and a namespace's network, for diffs.
pub fn lab_snapshot(label: &str, sides: &[(&str, i32)]) -> anyhow::Result<Snapshot> {
    Ok(Snapshot {
        label: label.into(),
        net: Some(lab_state(sides)?),
        ..Default::default()
    })
}

/// The page and the CGI program every lab container serves.
pub const INDEX_HTML: &str = "hello from the container\n";
pub const WHOAMI_CGI: &str = "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"$REMOTE_ADDR\"\n";

/// Write a web root: `index.html` and `cgi-bin/whoami` (prints the client's address).
pub fn write_web_root(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir.join("cgi-bin")).with_context(|| format!("mkdir {}", dir.display()))?;
    std::fs::write(dir.join("index.html"), INDEX_HTML)
        .with_context(|| format!("write {}/index.html", dir.display()))?;
    let cgi = dir.join("cgi-bin/whoami");
    std::fs::write(&cgi, WHOAMI_CGI).with_context(|| format!("write {}", cgi.display()))?;
    std::fs::set_permissions(&cgi, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", cgi.display()))?;
    Ok(())
}

/// Build a static-busybox rootfs with a web root at `/www` under the run's
/// working directory.
pub fn build_container_rootfs(cx: &Cx, name: &str, hostname: &str) -> anyhow::Result<PathBuf> {
    let busybox = cx.host.require_static_busybox()?.to_path_buf();
    let rootfs = cx.workdir.join(format!("{name}-rootfs"));
    let spec = RootfsSpec {
        busybox,
        copy_libraries: false,
        hostname: hostname.into(),
    };
    build_rootfs(&spec, &rootfs).with_context(|| format!("build rootfs in {}", rootfs.display()))?;
    write_web_root(&rootfs.join("www"))?;
    Ok(rootfs)
}

/// Start a container: clone a child with `flags`, optionally join another
/// process's network namespace (`setns`, before the chroot hides the host's
/// /proc), make mounts private, set the hostname, chroot into `rootfs` and
/// mount a fresh /proc. Returns the child and (place, command) pairs for the transcript.
pub fn start_container(
    flags: CloneFlags,
    rootfs: &Path,
    hostname: &str,
    join_net: Option<&Path>,
) -> anyhow::Result<(NsChild, Vec<(&'static str, String)>)> {
    let mut child = spawn_child(flags)?;
    let mut said = vec![(
        "parent",
        format!("clone(..., {}) = {}", crate::kernel::ns::flag_names(flags), child.pid()),
    )];
    if let Some(ns) = join_net {
        child.act(&Request::SetnsNet(ns.to_path_buf()))?;
        said.push((
            "child",
            format!(
                "setns(open(\"{}\"), CLONE_NEWNET)   # nsenter --net={}",
                ns.display(),
                ns.display()
            ),
        ));
    }
    child.act(&Request::MakeRprivate)?;
    child.act(&Request::SetHostname(hostname.into()))?;
    child.act(&Request::Chroot(rootfs.to_path_buf()))?;
    child.act(&Request::MountProc(PathBuf::from("/proc")))?;
    said.push((
        "child",
        format!(
            "mount --make-rprivate /; hostname {hostname}; chroot {}; mount -t proc proc /proc",
            rootfs.display()
        ),
    ));
    Ok((child, said))
}

/// `ping -c 2 -i 0.2 -w 3 IP`: bounded by `-w`, so it never hangs.
pub fn ping_argv(ip: &str) -> Vec<String> {
    ["ping", "-c", "2", "-i", "0.2", "-w", "3", ip]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// `timeout SECS wget -q -O - URL` (busybox's own `wget -T` crashes in
/// Debian's static build, so the `timeout` applet bounds it).
pub fn wget_argv(url: &str, secs: u32) -> Vec<String> {
    ["timeout", &secs.to_string(), "wget", "-q", "-O", "-", url]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Packets received, from ping's summary line.
pub fn ping_received(out: &str) -> u32 {
    out.lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(',').find(|p| p.contains("received")))
        .and_then(|p| p.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `[::ffff:10.214.0.2]` (busybox httpd's REMOTE_ADDR on a dual-stack socket) → `10.214.0.2`.
pub fn client_address(out: &str) -> String {
    let s = out.trim().trim_start_matches('[').trim_end_matches(']');
    s.strip_prefix("::ffff:").unwrap_or(s).to_string()
}

/// Run a busybox applet command inside a namespace child. `busybox` is the
/// binary's path as the child sees it (`/bin/busybox` after the chroot).
pub fn run_in(child: &mut NsChild, busybox: &str, argv: &[String]) -> anyhow::Result<RunOutput> {
    let mut full = vec![busybox.to_string()];
    let mut argv = argv.to_vec();
    // `timeout N prog ...` must name busybox again to run the applet.
    if argv.first().is_some_and(|a| a == "timeout") && argv.len() > 2 {
        argv.insert(2, busybox.to_string());
    }
    full.extend(argv);
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    Ok(child.run(&refs)?)
}

/// Run a command on the host (in workbench's namespaces), killed after
/// `timeout`; it also dies if workbench does (PR_SET_PDEATHSIG).
pub fn host_run(argv: &[String], timeout: Duration) -> anyhow::Result<RunOutput> {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, Stdio};
    let (prog, args) = argv.split_first().context("empty command")?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Ok(RunOutput {
                spawn_error: Some((e.to_string(), e.raw_os_error().unwrap_or(0))),
                ..Default::default()
            })
        }
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    Ok(RunOutput {
        code: status.code(),
        signal: status.signal(),
        stdout,
        stderr,
        spawn_error: None,
    })
}

/// Run a busybox applet on the host, bounded by `timeout`.
pub fn host_busybox(cx: &Cx, argv: &[String], timeout: Duration) -> anyhow::Result<RunOutput> {
    let bb = cx.host.require_static_busybox()?.display().to_string();
    let mut full = vec![bb];
    full.extend(argv.iter().cloned());
    host_run(&full, timeout)
}

/// Poll `probe` until it succeeds or `within` has passed (servers need a
/// moment to bind their port).
pub fn wait_until(within: Duration, mut probe: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<bool> {
    let deadline = Instant::now() + within;
    loop {
        if probe()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until link `name` in the namespace of `pid` is operationally UP.
/// The kernel sets IFF_UP at once but updates the operational state (and
/// attaches the queueing discipline) a moment later, from its linkwatch work.
pub fn wait_oper_up(pid: i32, name: &str, within: Duration) -> anyhow::Result<bool> {
    wait_until(within, || {
        Ok(wb_net::snapshot_of_pid(pid)?
            .link(name)
            .is_some_and(|l| l.state == "UP"))
    })
}

/// Wait until link `name` in the namespace of `pid` is up, for a device
/// without a carrier of its own (vxlan): the kernel never runs linkwatch for
/// it, so its operational state stays UNKNOWN once IFF_UP is set — waiting
/// for UP would only time out.
pub fn wait_carrierless_up(pid: i32, name: &str, within: Duration) -> anyhow::Result<bool> {
    wait_until(within, || {
        Ok(wb_net::snapshot_of_pid(pid)?
            .link(name)
            .is_some_and(|l| l.up && (l.state == "UP" || l.state == "UNKNOWN")))
    })
}

/// Is a TCP port open at `ip`? (a plain connect from workbench, bounded)
pub fn tcp_open(ip: &str, port: u16) -> bool {
    let Ok(addr) = format!("{ip}:{port}").parse::<std::net::SocketAddr>() else {
        return false;
    };
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// The `/proc/PID/ns/net` inode of a process (`net:[4026531840]` → number).
pub fn net_inode(pid: i32) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap_or(0)
}

/// The fallback devices a tunnel module puts in every network namespace while
/// it is loaded (ipip's `tunl0`, sit's `sit0`, ip_gre's `gre0`, …, unless
/// `net.core.fb_tunnels_only_for_init_net` is set). The kernel makes them, not
/// the host's configuration, so a fresh namespace may hold them beside `lo`.
pub const FALLBACK_TUNNELS: &[&str] = &[
    "tunl0", "sit0", "gre0", "gretap0", "erspan0", "ip_vti0", "ip6_vti0", "ip6tnl0", "ip6gre0",
];

/// `names` without the kernel's fallback tunnel devices: what a lesson put in
/// the namespace, or what came from the host.
pub fn without_fallback_tunnels<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    names
        .iter()
        .map(|n| n.as_ref().to_string())
        .filter(|n| !FALLBACK_TUNNELS.contains(&n.as_str()))
        .collect()
}

/// The names of the links in the network namespace of `pid`.
pub fn link_names(pid: i32) -> anyhow::Result<Vec<String>> {
    Ok(wb_net::snapshot_of_pid(pid)?
        .links
        .into_iter()
        .map(|l| l.name)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> NetSnapshot {
        let route = wb_net::Route::kernel_link;
        NetSnapshot {
            links: vec![],
            addresses: vec![
                wb_net::Address {
                    link: "eth0".into(),
                    cidr: "192.168.1.2/24".into(),
                    family: "inet".into(),
                },
                wb_net::Address {
                    link: "wg0".into(),
                    cidr: "10.213.1.9/32".into(),
                    family: "inet".into(),
                },
            ],
            routes: vec![
                route("default", "eth0"),
                route("192.168.1.0/24", "eth0"),
                route("10.213.0.0/24", "docker1"),
            ],
        }
    }

    #[test]
    fn subnets_parse_and_name_their_addresses() {
        let s = parse_subnet("10.213.0.7/24").unwrap();
        assert_eq!(s.cidr(), "10.213.0.0/24");
        assert_eq!(s.host_cidr(), "10.213.0.1/24");
        assert_eq!(s.peer_cidr(), "10.213.0.2/24");
        assert_eq!(s.host_ip(), "10.213.0.1");
        assert_eq!(parse_subnet("192.168.7.0/30").unwrap().peer_ip(), "192.168.7.2");
        assert_eq!(parse_subnet("172.20.0.0/16").unwrap().prefix, 16);
    }

    #[test]
    fn bad_subnets_are_refused_with_a_reason() {
        for (bad, why) in [
            ("abc", "give a subnet such as"),
            ("10.213.0.0", "missing /prefix"),
            ("10.213.0.0/33", "above 32"),
            ("fd00::/64", "must be an IPv4 subnet"),
            ("10.213.0.0/31", "between /8 and /30"),
            ("10.0.0.0/7", "between /8 and /30"),
            ("8.8.8.0/24", "private range"),
            ("172.32.0.0/24", "private range"),
            ("0.0.0.0/8", "private range"),
        ] {
            let e = parse_subnet(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.starts_with("--subnet"), "{bad}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn chooses_a_subnet_that_clashes_with_nothing() {
        let h = host();
        // 10.213.0.0/24 is routed, 10.213.1.0/24 holds an address: the third is free.
        let got = choose_subnet(&h, None, CONTAINER_SUBNETS, &[], &[]).unwrap();
        assert_eq!(got.cidr(), "10.213.2.0/24");
        // ...and the outside world avoids the container's subnet.
        let outside = choose_subnet(&h, None, &["10.213.2.0/24", "10.214.0.0/24"], &[got], &[]).unwrap();
        assert_eq!(outside.cidr(), "10.214.0.0/24");
        let e = choose_subnet(&h, Some("10.213.0.0/16"), CONTAINER_SUBNETS, &[], &[]).unwrap_err();
        assert_eq!(e, "--subnet 10.213.0.0/16 overlaps the host's route 10.213.0.0/24 dev docker1: choose a free one such as 10.213.2.0/24");
        let e = choose_subnet(&h, Some("192.168.0.0/16"), CONTAINER_SUBNETS, &[], &[]).unwrap_err();
        assert!(e.contains("route 192.168.1.0/24 dev eth0"), "{e}");
        let e = choose_subnet(&h, Some("10.213.1.0/28"), CONTAINER_SUBNETS, &[], &[]).unwrap_err();
        assert!(e.contains("address 10.213.1.9/32 on wg0"), "{e}");
        assert_eq!(
            choose_subnet(&h, Some("10.99.0.0/24"), CONTAINER_SUBNETS, &[], &[])
                .unwrap()
                .cidr(),
            "10.99.0.0/24"
        );
        assert!(choose_subnet(&h, None, &["10.213.0.0/24"], &[], &[])
            .unwrap_err()
            .contains("--subnet"));
        // Subnets other live runs hold are skipped, and refused when asked for.
        let held = vec![(
            parse_subnet("10.213.2.0/24").unwrap(),
            "run 1a2b3c (veth-bridge)".to_string(),
        )];
        assert_eq!(
            choose_subnet(&h, None, CONTAINER_SUBNETS, &[], &held).unwrap().cidr(),
            "10.213.3.0/24"
        );
        let e = choose_subnet(&h, Some("10.213.2.128/25"), CONTAINER_SUBNETS, &[], &held).unwrap_err();
        assert_eq!(e, "--subnet 10.213.2.128/25 overlaps 10.213.2.0/24 held by run 1a2b3c (veth-bridge): choose a free one such as 10.213.3.0/24, or wait until it ends");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn ports_are_validated() {
        let o = |h: Option<u16>, c: Option<u16>| LessonOptions {
            host_port: h,
            container_port: c,
            ..Default::default()
        };
        assert_eq!(check_ports(&o(None, None)).unwrap(), (None, 80));
        assert_eq!(check_ports(&o(Some(9000), Some(8000))).unwrap(), (Some(9000), 8000));
        assert!(check_ports(&o(Some(0), None)).unwrap_err().contains("not 0"));
        assert!(check_ports(&o(Some(22), None)).unwrap_err().contains("privileged"));
        assert!(check_ports(&o(None, Some(0)))
            .unwrap_err()
            .starts_with("--container-port"));
    }

    #[test]
    fn host_port_prefers_8080_and_skips_what_is_taken() {
        let nothing = |_: u16| false;
        // A lone run on a quiet host looks like the post.
        let p = choose_host_port(None, nothing, &[]).unwrap();
        assert_eq!(
            p,
            HostPort {
                port: 8080,
                why: "8080 is free: the post's port".into()
            }
        );
        // Held by other live runs: the first port after it that nobody holds.
        let held = vec![
            (8080, "run 1a2b3c (nat-port-map)".to_string()),
            (8081, "run 4d5e6f (nat-port-map)".to_string()),
        ];
        let p = choose_host_port(None, nothing, &held).unwrap();
        assert_eq!(p.port, 8082);
        assert_eq!(
            p.why,
            "8080 is mapped by run 1a2b3c (nat-port-map): 8082 is the first free port after it"
        );
        // Listened on by a host program: skipped too.
        let p = choose_host_port(None, |p| p == 8082, &held).unwrap();
        assert_eq!(p.port, 8083);
        let p = choose_host_port(None, |p| p == 8080, &[]).unwrap();
        assert_eq!(p.port, 8081);
        assert_eq!(
            p.why,
            "8080 is in use on this host: 8081 is the first free port after it"
        );
        // Eight runs at once get eight different ports.
        let mut held = Vec::new();
        for i in 0..8 {
            let p = choose_host_port(None, nothing, &held).unwrap();
            held.push((p.port, format!("run {i}")));
        }
        let mut ports: Vec<u16> = held.iter().map(|(p, _)| *p).collect();
        ports.dedup();
        assert_eq!(ports, (8080..8088).collect::<Vec<_>>());
        // All taken: one line naming the option.
        let e = choose_host_port(None, |_| true, &[]).unwrap_err();
        assert!(
            e.contains("between 8080 and 8179") && e.ends_with("give one with --host-port"),
            "{e}"
        );
    }

    #[test]
    fn an_explicit_host_port_another_run_holds_is_refused() {
        let held = vec![(9090, "run 1a2b3c (nat-port-map)".to_string())];
        let e = choose_host_port(Some(9090), |_| false, &held).unwrap_err();
        assert_eq!(e, "--host-port 9090 is mapped by run 1a2b3c (nat-port-map), which is still running: choose another --host-port, or leave it out to take a free port");
        let e = choose_host_port(Some(9091), |p| p == 9091, &held).unwrap_err();
        assert!(e.contains("already listens on it"), "{e}");
        assert_eq!(
            choose_host_port(Some(9091), |_| false, &held).unwrap(),
            HostPort {
                port: 9091,
                why: "--host-port".into()
            }
        );
    }

    #[test]
    fn parses_listening_sockets() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   1: 0100007F:0016 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n";
        assert_eq!(listening_ports(tcp), vec![8080]);
        let tcp6 = "  sl  local_address                         remote_address                        st\n   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000\n";
        assert_eq!(listening_ports(tcp6), vec![80]);
    }

    #[test]
    fn wiring_commands_read_like_the_tutorial() {
        let sub = parse_subnet("10.213.0.0/24").unwrap();
        let ns = Place::Ns {
            pid: 42,
            label: "container".into(),
        };
        let mut ops = bridge_ops("wbab12cdbr", &sub);
        ops.extend(veth_ops("wbab12cdh0", "wbab12cdc0", "wbab12cdbr"));
        ops.extend(inside_ops(
            "wbab12cdc0",
            &ns,
            42,
            &sub.peer_cidr(),
            Some(&sub.host_ip()),
        ));
        let cmds: Vec<String> = ops.iter().map(|(p, o)| command_at(p, o)).collect();
        assert_eq!(
            cmds,
            vec![
                "ip link add wbab12cdbr type bridge",
                "ip addr add 10.213.0.1/24 dev wbab12cdbr",
                "ip link set wbab12cdbr up",
                "ip link add wbab12cdh0 type veth peer name wbab12cdc0",
                "ip link set wbab12cdh0 master wbab12cdbr",
                "ip link set wbab12cdh0 up",
                "ip link set wbab12cdc0 netns 42",
                "nsenter -t 42 -n ip link set wbab12cdc0 name eth0",
                "nsenter -t 42 -n ip addr add 10.213.0.2/24 dev eth0",
                "nsenter -t 42 -n ip link set lo up",
                "nsenter -t 42 -n ip link set eth0 up",
                "nsenter -t 42 -n ip route add default via 10.213.0.1",
            ]
        );
    }

    #[test]
    fn fallback_tunnels_are_left_out_and_host_links_are_not() {
        assert_eq!(without_fallback_tunnels(&["lo", "tunl0", "sit0", "gre0"]), ["lo"]);
        assert_eq!(without_fallback_tunnels(&["lo", "ip6tnl0", "eth0"]), ["lo", "eth0"]);
        // The host's own devices stay, so a namespace that is the host's fails `== ["lo"]`.
        assert_eq!(
            without_fallback_tunnels(&["lo", "eth0", "docker0"]),
            ["lo", "eth0", "docker0"]
        );
        assert!(without_fallback_tunnels::<&str>(&[]).is_empty());
    }

    #[test]
    fn link_names_fit_ifnamsiz() {
        assert_eq!(link_name("ab12cd", "br").unwrap(), "wbab12cdbr");
        assert!(link_name("ab12cd", "toolongsuffix").is_err());
    }

    #[test]
    fn reads_ping_and_httpd_output() {
        let out = "PING 10.213.0.1 (10.213.0.1): 56 data bytes\n64 bytes from 10.213.0.1: seq=0 ttl=64 time=0.1 ms\n\n--- 10.213.0.1 ping statistics ---\n2 packets transmitted, 2 packets received, 0% packet loss\n";
        assert_eq!(ping_received(out), 2);
        assert_eq!(
            ping_received("2 packets transmitted, 0 packets received, 100% packet loss"),
            0
        );
        assert_eq!(ping_received(""), 0);
        assert_eq!(client_address("[::ffff:10.214.0.2]\n"), "10.214.0.2");
        assert_eq!(client_address("10.1.2.3"), "10.1.2.3");
        assert_eq!(wget_argv("http://x/", 3).join(" "), "timeout 3 wget -q -O - http://x/");
    }
}
