//! Changing links, addresses and routes.
//!
//! Each change is one netlink request: `RTM_NEWLINK` creates a device (with
//! `IFLA_LINKINFO` naming its kind, e.g. `bridge` or `veth` plus the peer's
//! name) or, sent for an existing interface index, changes it (`IFF_UP`,
//! `IFLA_MASTER`, `IFLA_IFNAME`, `IFLA_NET_NS_PID`, ...); `RTM_NEWADDR` and
//! `RTM_NEWROUTE` add addresses and routes, and the `RTM_DEL*` twins remove
//! them. Every operation also knows the classic `ip` command that does the
//! same, so a lesson can print it next to what the kernel did.
//!
//! All functions act on the calling thread's network namespace; wrap them
//! in [`crate::in_netns_of`] to act inside another one.

use std::fmt;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use serde::{Deserialize, Serialize};

use crate::cidr::{parse_cidr, parse_ip, parse_route_dst};
use crate::error::{Error, Result};
use crate::names::validate_ifname;
use crate::rtnl::Rtnl;

/// Where a route sends its traffic: to a next-hop router, or straight out
/// of a device (the destination is on that link).
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Nexthop {
    /// `via 10.88.0.1`
    Gateway(String),
    /// `dev eth0`
    Dev(String),
}

impl Nexthop {
    /// An IP address means a gateway; anything else is a device name.
    pub fn parse(gateway_or_dev: &str) -> Nexthop {
        if gateway_or_dev.parse::<IpAddr>().is_ok() {
            Nexthop::Gateway(gateway_or_dev.to_string())
        } else {
            Nexthop::Dev(gateway_or_dev.to_string())
        }
    }
}

impl fmt::Display for Nexthop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nexthop::Gateway(g) => write!(f, "via {g}"),
            Nexthop::Dev(d) => write!(f, "dev {d}"),
        }
    }
}

/// One change to a network namespace. [`apply`] performs it through
/// netlink; [`Op::classic_command`] gives the equivalent `ip` command.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    CreateBridge {
        name: String,
    },
    CreateVeth {
        name: String,
        peer: String,
    },
    /// A VXLAN tunnel endpoint: Ethernet frames sent to it travel inside UDP
    /// datagrams from `local` to `remote` (IPv4) on port `port`, over `dev`.
    CreateVxlan {
        name: String,
        vni: u32,
        local: String,
        remote: String,
        dev: String,
        port: u16,
    },
    /// A macvlan child of `dev` in bridge mode: a second MAC address on the
    /// same wire; children of one parent reach each other, the parent does not.
    CreateMacvlan {
        name: String,
        dev: String,
    },
    SetMaster {
        link: String,
        bridge: String,
    },
    SetNomaster {
        link: String,
    },
    MoveToNetnsPid {
        link: String,
        pid: i32,
    },
    MoveToNetnsFile {
        link: String,
        path: String,
    },
    Rename {
        link: String,
        new_name: String,
    },
    SetUp {
        link: String,
    },
    SetDown {
        link: String,
    },
    SetMtu {
        link: String,
        mtu: u32,
    },
    AddAddress {
        link: String,
        cidr: String,
    },
    DeleteAddress {
        link: String,
        cidr: String,
    },
    AddRouteDefault {
        gateway: String,
    },
    AddRoute {
        dst: String,
        via: Nexthop,
    },
    DeleteRoute {
        dst: String,
    },
    DeleteLink {
        name: String,
    },
}

impl Op {
    /// A short lowercase description, used in error messages:
    /// `create bridge wbbr0`.
    pub fn describe(&self) -> String {
        self.words().0
    }

    /// The classic iproute2 command doing the same thing, e.g. `ip link add
    /// wbbr0 type bridge`.
    pub fn classic_command(&self) -> String {
        self.words().1
    }

    /// What the op does in words and as the classic `ip` command, from one
    /// list of the ops.
    fn words(&self) -> (String, String) {
        let v6 = |addr: &str| if addr.contains(':') { "-6 " } else { "" };
        match self {
            Op::CreateBridge { name } => (
                format!("create bridge {name}"),
                format!("ip link add {name} type bridge"),
            ),
            Op::CreateVeth { name, peer } => (
                format!("create veth {name} peer {peer}"),
                format!("ip link add {name} type veth peer name {peer}"),
            ),
            Op::CreateVxlan {
                name,
                vni,
                local,
                remote,
                dev,
                port,
            } => (
                format!("create vxlan {name} id {vni}"),
                format!(
                    "ip link add {name} type vxlan id {vni} local {local} remote {remote} dev {dev} dstport {port}"
                ),
            ),
            Op::CreateMacvlan { name, dev } => (
                format!("create macvlan {name} on {dev}"),
                format!("ip link add {name} link {dev} type macvlan mode bridge"),
            ),
            Op::SetMaster { link, bridge } => (
                format!("set {link} master {bridge}"),
                format!("ip link set {link} master {bridge}"),
            ),
            Op::SetNomaster { link } => (format!("set {link} nomaster"), format!("ip link set {link} nomaster")),
            Op::MoveToNetnsPid { link, pid } => (
                format!("move {link} to netns of pid {pid}"),
                format!("ip link set {link} netns {pid}"),
            ),
            Op::MoveToNetnsFile { link, path } => (
                format!("move {link} to netns {path}"),
                format!("ip link set {link} netns {path}"),
            ),
            Op::Rename { link, new_name } => (
                format!("rename {link} to {new_name}"),
                format!("ip link set {link} name {new_name}"),
            ),
            Op::SetUp { link } => (format!("set {link} up"), format!("ip link set {link} up")),
            Op::SetDown { link } => (format!("set {link} down"), format!("ip link set {link} down")),
            Op::SetMtu { link, mtu } => (format!("set {link} mtu {mtu}"), format!("ip link set {link} mtu {mtu}")),
            Op::AddAddress { link, cidr } => (
                format!("add address {cidr} to {link}"),
                format!("ip addr add {cidr} dev {link}"),
            ),
            Op::DeleteAddress { link, cidr } => (
                format!("delete address {cidr} from {link}"),
                format!("ip addr del {cidr} dev {link}"),
            ),
            Op::AddRouteDefault { gateway } => (
                format!("add route default via {gateway}"),
                format!("ip {}route add default via {gateway}", v6(gateway)),
            ),
            Op::AddRoute { dst, via } => (
                format!("add route {dst} {via}"),
                format!("ip {}route add {dst} {via}", v6(dst)),
            ),
            Op::DeleteRoute { dst } => (format!("delete route {dst}"), format!("ip {}route del {dst}", v6(dst))),
            Op::DeleteLink { name } => (format!("delete link {name}"), format!("ip link del {name}")),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The classic `ip` command for `op` (see [`Op::classic_command`]).
pub fn classic_command(op: &Op) -> String {
    op.classic_command()
}

/// The classic command for `op` run inside the network namespace of
/// process `pid`: `nsenter -t PID -n ip ...`.
pub fn classic_command_in_netns(op: &Op, pid: i32) -> String {
    format!("nsenter -t {pid} -n {}", op.classic_command())
}

// ---------------------------------------------------------------------------
// The public one-call functions.

/// What a one-call function returns from [`apply`]'s "something changed":
/// nothing for the ops that fail when there is nothing to do, the flag itself
/// for deletions.
trait Outcome {
    fn of(changed: bool) -> Self;
}

impl Outcome for () {
    fn of(_: bool) {}
}

impl Outcome for bool {
    fn of(changed: bool) -> bool {
        changed
    }
}

/// The public one-call functions: each builds one [`Op`] from its arguments
/// (every field through `.into()`) and [`apply`]s it.
macro_rules! one_call {
    ($($(#[$doc:meta])* fn $f:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $op:ident { $($field:ident: $val:expr),* };)*) => {
        $(
            $(#[$doc])*
            pub fn $f($($arg: $ty),*) -> Result<$ret> {
                apply(&Op::$op { $($field: $val.into()),* }).map(Outcome::of)
            }
        )*
    };
}

one_call! {
    /// `ip link add NAME type bridge`: creates a software switch. Fails with
    /// `file exists` if NAME is taken.
    fn create_bridge(name: &str) -> () = CreateBridge { name: name };
    /// `ip link add NAME type veth peer name PEER`: creates a pair of virtual
    /// Ethernet devices; whatever enters one leaves the other.
    fn create_veth(name: &str, peer: &str) -> () = CreateVeth { name: name, peer: peer };
    /// `ip link set LINK master BRIDGE`: plugs LINK into BRIDGE as a port.
    fn set_master(link: &str, bridge: &str) -> () = SetMaster { link: link, bridge: bridge };
    /// `ip link set LINK nomaster`: unplugs LINK from its bridge.
    fn set_nomaster(link: &str) -> () = SetNomaster { link: link };
    /// `ip link set LINK netns PID`: moves LINK into the network namespace of
    /// process PID. It disappears from here, keeping its name there (it is
    /// also set down, and loses its addresses).
    fn move_to_netns_pid(link: &str, pid: i32) -> () = MoveToNetnsPid { link: link, pid: pid };
    /// `ip link set LINK netns PATH`: moves LINK into the namespace behind a
    /// namespace file (`/proc/PID/ns/net`, `/run/netns/NAME`).
    fn move_to_netns_file(link: &str, path: impl AsRef<std::path::Path>) -> () = MoveToNetnsFile {
        link: link,
        path: path.as_ref().to_string_lossy()
    };
    /// `ip link set LINK name NEW`: renames a link (kernels before 6.2 refuse
    /// with `EBUSY` while it is up).
    fn rename(link: &str, new_name: &str) -> () = Rename { link: link, new_name: new_name };
    /// `ip link set LINK up`: sets `IFF_UP`.
    fn set_up(link: &str) -> () = SetUp { link: link };
    /// `ip link set LINK down`: clears `IFF_UP`.
    fn set_down(link: &str) -> () = SetDown { link: link };
    /// `ip link set LINK mtu MTU`.
    fn set_mtu(link: &str, mtu: u32) -> () = SetMtu { link: link, mtu: mtu };
    /// `ip addr add CIDR dev LINK` (e.g. `10.88.0.2/24`). When LINK is up, the
    /// kernel also adds the connected route for the subnet.
    fn add_address(link: &str, cidr: &str) -> () = AddAddress { link: link, cidr: cidr };
    /// `ip addr del CIDR dev LINK`. `Ok(false)` if the address was not there.
    fn delete_address(link: &str, cidr: &str) -> bool = DeleteAddress { link: link, cidr: cidr };
    /// `ip route add default via GATEWAY` (main table). The gateway must be
    /// reachable through a connected route.
    fn add_route_default(gateway: &str) -> () = AddRouteDefault { gateway: gateway };
    /// `ip route add DST via GATEWAY` or `ip route add DST dev DEV`
    /// (`gateway_or_dev`: an IP address means a gateway, see [`Nexthop::parse`]).
    fn add_route(dst_cidr: &str, gateway_or_dev: &str) -> () = AddRoute {
        dst: dst_cidr,
        via: Nexthop::parse(gateway_or_dev)
    };
    /// `ip route del DST` (main table). `Ok(false)` if there was no such route.
    fn delete_route(dst: &str) -> bool = DeleteRoute { dst: dst };
    /// `ip link del NAME`. `Ok(false)` if no such link existed (never an error
    /// for a missing link). Deleting one end of a veth pair deletes both.
    fn delete_link(name: &str) -> bool = DeleteLink { name: name };
}

/// Is there a link called `name` in this namespace?
pub fn link_exists(name: &str) -> Result<bool> {
    Ok(link_index(name)?.is_some())
}

/// The interface index of link `name`, or `None` if there is none.
pub fn link_index(name: &str) -> Result<Option<u32>> {
    validate_ifname(name)?;
    let op = format!("look up link {name}");
    lookup(&mut Rtnl::open(&op)?, name, &op)
}

// ---------------------------------------------------------------------------
// The machinery.

/// Performs `op` in the calling thread's network namespace. Returns
/// `Ok(true)` when something changed and `Ok(false)` for deletions of
/// things that were already absent.
pub fn apply(op: &Op) -> Result<bool> {
    validate(op)?;
    let desc = op.describe();
    let d = desc.as_str();
    let mut nl = Rtnl::open(d)?;
    let nl = &mut nl;
    let create = NLM_F_CREATE | NLM_F_EXCL;
    match op {
        Op::CreateBridge { name } => {
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName(name.clone()));
            m.attributes
                .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
            nl.ack(RouteNetlinkMessage::NewLink(m), create, d)?;
        }
        Op::CreateVeth { name, peer } => {
            let mut peer_msg = LinkMessage::default();
            peer_msg.attributes.push(LinkAttribute::IfName(peer.clone()));
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName(name.clone()));
            m.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
            ]));
            nl.ack(RouteNetlinkMessage::NewLink(m), create, d)?;
        }
        Op::CreateVxlan {
            name,
            vni,
            local,
            remote,
            dev,
            port,
        } => {
            let v4 = |s: &str| match parse_ip(s)? {
                IpAddr::V4(a) => Ok(a),
                IpAddr::V6(_) => Err(Error::InvalidAddress { input: s.to_string() }),
            };
            let (local, remote) = (v4(local)?, v4(remote)?);
            let lower = require(nl, dev, d)?;
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName(name.clone()));
            m.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Vxlan),
                LinkInfo::Data(InfoData::Vxlan(vec![
                    InfoVxlan::Id(*vni),
                    // a unicast remote travels in IFLA_VXLAN_GROUP, as with iproute2
                    InfoVxlan::Group(remote),
                    InfoVxlan::Local(local),
                    InfoVxlan::Link(lower),
                    InfoVxlan::Port(*port),
                ])),
            ]));
            nl.ack(RouteNetlinkMessage::NewLink(m), create, d)?;
        }
        Op::CreateMacvlan { name, dev } => {
            let lower = require(nl, dev, d)?;
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName(name.clone()));
            m.attributes.push(LinkAttribute::Link(lower));
            m.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::MacVlan),
                LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(MacVlanMode::Bridge)])),
            ]));
            nl.ack(RouteNetlinkMessage::NewLink(m), create, d)?;
        }
        Op::SetMaster { link, bridge } => {
            let idx = require(nl, link, d)?;
            let br = require(nl, bridge, d)?;
            set_link(nl, idx, |m| m.attributes.push(LinkAttribute::Controller(br)), d)?;
        }
        Op::SetNomaster { link } => {
            let idx = require(nl, link, d)?;
            set_link(nl, idx, |m| m.attributes.push(LinkAttribute::Controller(0)), d)?;
        }
        Op::MoveToNetnsPid { link, pid } => {
            let idx = require(nl, link, d)?;
            let pid = u32::try_from(*pid).map_err(|_| Error::Kernel {
                op: desc.clone(),
                errno: libc::ESRCH,
                kernel_msg: None,
            })?;
            set_link(nl, idx, |m| m.attributes.push(LinkAttribute::NetNsPid(pid)), d)?;
        }
        Op::MoveToNetnsFile { link, path } => {
            let idx = require(nl, link, d)?;
            let file = File::open(path).map_err(|source| Error::OpenNetns {
                path: path.into(),
                source,
            })?;
            let fd = file.as_raw_fd();
            set_link(nl, idx, |m| m.attributes.push(LinkAttribute::NetNsFd(fd)), d)?;
            drop(file); // only after the kernel has answered
        }
        Op::Rename { link, new_name } => {
            let idx = require(nl, link, d)?;
            set_link(
                nl,
                idx,
                |m| m.attributes.push(LinkAttribute::IfName(new_name.clone())),
                d,
            )?;
        }
        Op::SetUp { link } | Op::SetDown { link } => {
            let up = matches!(op, Op::SetUp { .. });
            let idx = require(nl, link, d)?;
            set_link(
                nl,
                idx,
                |m| {
                    m.header.flags = if up { LinkFlags::Up } else { LinkFlags::empty() };
                    m.header.change_mask = LinkFlags::Up;
                },
                d,
            )?;
        }
        Op::SetMtu { link, mtu } => {
            let idx = require(nl, link, d)?;
            set_link(nl, idx, |m| m.attributes.push(LinkAttribute::Mtu(*mtu)), d)?;
        }
        Op::AddAddress { link, cidr } | Op::DeleteAddress { link, cidr } => {
            let net = parse_cidr(cidr)?;
            let idx = require(nl, link, d)?;
            let ip = net.addr();
            let mut m = AddressMessage::default();
            m.header.family = family_of(&ip);
            m.header.prefix_len = net.prefix_len();
            m.header.index = idx;
            // like iproute2's default_scope(): 127.0.0.0/8 is host-scoped
            m.header.scope = match ip {
                IpAddr::V4(v4) if v4.is_loopback() => AddressScope::Host,
                _ => AddressScope::Universe,
            };
            m.attributes.push(AddressAttribute::Local(ip));
            m.attributes.push(AddressAttribute::Address(ip));
            if matches!(op, Op::AddAddress { .. }) {
                nl.ack(RouteNetlinkMessage::NewAddress(m), create, d)?;
            } else {
                match nl.ack(RouteNetlinkMessage::DelAddress(m), 0, d) {
                    Ok(_) => {}
                    Err(e) if e.errno() == Some(libc::EADDRNOTAVAIL) => return Ok(false),
                    Err(e) => return Err(e),
                }
            }
        }
        Op::AddRouteDefault { gateway } => {
            let gw = parse_ip(gateway)?;
            let mut m = new_route(family_of(&gw), None);
            m.attributes.push(RouteAttribute::Gateway(RouteAddress::from(gw)));
            nl.ack(RouteNetlinkMessage::NewRoute(m), create, d)?;
        }
        Op::AddRoute { dst, via } => {
            let net = parse_route_dst(dst)?;
            match via {
                Nexthop::Gateway(g) => {
                    let gw = parse_ip(g)?;
                    let mut m = new_route(family_of(&gw), net);
                    m.attributes.push(RouteAttribute::Gateway(RouteAddress::from(gw)));
                    nl.ack(RouteNetlinkMessage::NewRoute(m), create, d)?;
                }
                Nexthop::Dev(dev) => {
                    let idx = require(nl, dev, d)?;
                    let family = net.map(|n| family_of(&n.addr())).unwrap_or(AddressFamily::Inet);
                    let mut m = new_route(family, net);
                    m.header.scope = RouteScope::Link;
                    m.attributes.push(RouteAttribute::Oif(idx));
                    nl.ack(RouteNetlinkMessage::NewRoute(m), create, d)?;
                }
            }
        }
        Op::DeleteRoute { dst } => {
            let net = parse_route_dst(dst)?;
            let family = net.map(|n| family_of(&n.addr())).unwrap_or(AddressFamily::Inet);
            let mut m = new_route(family, net);
            // like `ip route del`: match any scope, type and protocol
            m.header.scope = RouteScope::NoWhere;
            m.header.kind = RouteType::Unspec;
            m.header.protocol = RouteProtocol::Unspec;
            match nl.ack(RouteNetlinkMessage::DelRoute(m), 0, d) {
                Ok(_) => {}
                Err(e) if e.errno() == Some(libc::ESRCH) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Op::DeleteLink { name } => {
            let Some(idx) = lookup(nl, name, d)? else {
                return Ok(false);
            };
            let mut m = LinkMessage::default();
            m.header.index = idx;
            match nl.ack(RouteNetlinkMessage::DelLink(m), 0, d) {
                Ok(_) => {}
                // it vanished in between (e.g. its veth peer was deleted)
                Err(e) if e.errno() == Some(libc::ENODEV) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(true)
}

/// Checks every interface name an op mentions before talking to the kernel.
fn validate(op: &Op) -> Result<()> {
    let names: Vec<&str> = match op {
        Op::CreateBridge { name } | Op::DeleteLink { name } => vec![name],
        Op::CreateVeth { name, peer } => vec![name, peer],
        Op::CreateVxlan { name, dev, .. } | Op::CreateMacvlan { name, dev } => vec![name, dev],
        Op::SetMaster { link, bridge } => vec![link, bridge],
        Op::Rename { link, new_name } => vec![link, new_name],
        Op::SetNomaster { link }
        | Op::MoveToNetnsPid { link, .. }
        | Op::MoveToNetnsFile { link, .. }
        | Op::SetUp { link }
        | Op::SetDown { link }
        | Op::SetMtu { link, .. }
        | Op::AddAddress { link, .. }
        | Op::DeleteAddress { link, .. } => vec![link],
        Op::AddRoute {
            via: Nexthop::Dev(dev), ..
        } => vec![dev],
        Op::AddRoute { .. } | Op::AddRouteDefault { .. } | Op::DeleteRoute { .. } => vec![],
    };
    names.into_iter().try_for_each(validate_ifname)
}

fn family_of(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// A unicast route in the main table, installed "by the admin"
/// (`proto boot`, what `ip route add` uses), global scope.
fn new_route(family: AddressFamily, dst: Option<ipnet::IpNet>) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Boot;
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    if let Some(net) = dst {
        m.header.destination_prefix_length = net.prefix_len();
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(net.network())));
    }
    m
}

/// `RTM_NEWLINK` for an existing interface index, with changes made by `f`.
fn set_link(nl: &mut Rtnl, index: u32, f: impl FnOnce(&mut LinkMessage), op: &str) -> Result<()> {
    let mut m = LinkMessage::default();
    m.header.index = index;
    f(&mut m);
    nl.ack(RouteNetlinkMessage::NewLink(m), 0, op)?;
    Ok(())
}

/// `RTM_GETLINK` by name: the interface index, or `None` (`ENODEV`).
fn lookup(nl: &mut Rtnl, name: &str, op: &str) -> Result<Option<u32>> {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    match nl.ack(RouteNetlinkMessage::GetLink(m), 0, op) {
        Ok(msgs) => Ok(msgs.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
            _ => None,
        })),
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

fn require(nl: &mut Rtnl, name: &str, op: &str) -> Result<u32> {
    lookup(nl, name, op)?.ok_or_else(|| Error::NoSuchLink {
        op: op.to_string(),
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_commands() {
        let cases = [
            (
                Op::CreateBridge { name: "wbbr0".into() },
                "ip link add wbbr0 type bridge",
            ),
            (
                Op::CreateVeth {
                    name: "veth0".into(),
                    peer: "veth1".into(),
                },
                "ip link add veth0 type veth peer name veth1",
            ),
            (
                Op::CreateVxlan {
                    name: "vxlan42".into(),
                    vni: 42,
                    local: "10.215.0.1".into(),
                    remote: "10.215.0.2".into(),
                    dev: "eth0".into(),
                    port: 4789,
                },
                "ip link add vxlan42 type vxlan id 42 local 10.215.0.1 remote 10.215.0.2 dev eth0 dstport 4789",
            ),
            (
                Op::CreateMacvlan {
                    name: "wbmv0".into(),
                    dev: "eth0".into(),
                },
                "ip link add wbmv0 link eth0 type macvlan mode bridge",
            ),
            (
                Op::SetMaster {
                    link: "veth0".into(),
                    bridge: "wbbr0".into(),
                },
                "ip link set veth0 master wbbr0",
            ),
            (Op::SetNomaster { link: "veth0".into() }, "ip link set veth0 nomaster"),
            (
                Op::MoveToNetnsPid {
                    link: "veth1".into(),
                    pid: 4242,
                },
                "ip link set veth1 netns 4242",
            ),
            (
                Op::MoveToNetnsFile {
                    link: "veth1".into(),
                    path: "/run/netns/wb-a".into(),
                },
                "ip link set veth1 netns /run/netns/wb-a",
            ),
            (
                Op::Rename {
                    link: "veth1".into(),
                    new_name: "eth0".into(),
                },
                "ip link set veth1 name eth0",
            ),
            (Op::SetUp { link: "eth0".into() }, "ip link set eth0 up"),
            (Op::SetDown { link: "eth0".into() }, "ip link set eth0 down"),
            (
                Op::SetMtu {
                    link: "eth0".into(),
                    mtu: 1400,
                },
                "ip link set eth0 mtu 1400",
            ),
            (
                Op::AddAddress {
                    link: "eth0".into(),
                    cidr: "10.88.0.2/24".into(),
                },
                "ip addr add 10.88.0.2/24 dev eth0",
            ),
            (
                Op::DeleteAddress {
                    link: "eth0".into(),
                    cidr: "10.88.0.2/24".into(),
                },
                "ip addr del 10.88.0.2/24 dev eth0",
            ),
            (
                Op::AddRouteDefault {
                    gateway: "10.88.0.1".into(),
                },
                "ip route add default via 10.88.0.1",
            ),
            (
                Op::AddRouteDefault {
                    gateway: "fd00::1".into(),
                },
                "ip -6 route add default via fd00::1",
            ),
            (
                Op::AddRoute {
                    dst: "10.99.0.0/16".into(),
                    via: Nexthop::parse("10.88.0.1"),
                },
                "ip route add 10.99.0.0/16 via 10.88.0.1",
            ),
            (
                Op::AddRoute {
                    dst: "10.99.0.0/16".into(),
                    via: Nexthop::parse("eth0"),
                },
                "ip route add 10.99.0.0/16 dev eth0",
            ),
            (
                Op::DeleteRoute {
                    dst: "10.99.0.0/16".into(),
                },
                "ip route del 10.99.0.0/16",
            ),
            (Op::DeleteLink { name: "wbbr0".into() }, "ip link del wbbr0"),
        ];
        for (op, want) in cases {
            assert_eq!(classic_command(&op), want, "{op:?}");
        }
        assert_eq!(
            classic_command_in_netns(&Op::SetUp { link: "lo".into() }, 77),
            "nsenter -t 77 -n ip link set lo up"
        );
    }

    #[test]
    fn descriptions_are_lowercase_and_name_the_object() {
        assert_eq!(
            Op::CreateBridge { name: "wbbr0".into() }.to_string(),
            "create bridge wbbr0"
        );
        assert_eq!(
            Op::AddRoute {
                dst: "default".into(),
                via: Nexthop::Dev("eth0".into())
            }
            .describe(),
            "add route default dev eth0"
        );
        assert_eq!(
            Op::MoveToNetnsPid {
                link: "v".into(),
                pid: 3
            }
            .describe(),
            "move v to netns of pid 3"
        );
    }

    #[test]
    fn nexthop_parsing() {
        assert_eq!(Nexthop::parse("10.0.0.1"), Nexthop::Gateway("10.0.0.1".into()));
        assert_eq!(Nexthop::parse("fe80::1"), Nexthop::Gateway("fe80::1".into()));
        assert_eq!(Nexthop::parse("wbbr0"), Nexthop::Dev("wbbr0".into()));
    }

    #[test]
    fn invalid_names_fail_before_any_netlink_traffic() {
        // These must fail on validation even without privileges.
        let e = create_bridge("this-name-is-too-long").unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{e}");
        let e = create_veth("ok0", "bad/name").unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{e}");
        let e = rename("eth0", "a b").unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{e}");
        let e = delete_link("..").unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{e}");
        let e = link_exists("").unwrap_err();
        assert!(matches!(e, Error::InvalidName { .. }), "{e}");
    }

    #[test]
    fn ops_serialize_with_a_tag() {
        let op = Op::AddRoute {
            dst: "10.1.0.0/16".into(),
            via: Nexthop::Gateway("10.0.0.1".into()),
        };
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(
            json,
            r#"{"op":"add_route","dst":"10.1.0.0/16","via":{"gateway":"10.0.0.1"}}"#
        );
        assert_eq!(serde_json::from_str::<Op>(&json).unwrap(), op);
    }
}
