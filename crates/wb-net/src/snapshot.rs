//! Reading the current links, addresses and routes.
//!
//! Three netlink dumps give the whole picture of a namespace: `RTM_GETLINK`
//! lists the devices, `RTM_GETADDR` the addresses on them and
//! `RTM_GETROUTE` the routes of every table. Addresses and routes refer to
//! devices by interface index, which this module turns back into names.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::netns::in_netns_file;
use crate::rtnl::Rtnl;
use crate::{Address, Link, NetSnapshot, Route};

/// The main routing table (`ip route` shows this one).
pub(crate) const RT_TABLE_MAIN: u32 = 254;

/// Snapshot of the calling thread's network namespace.
pub fn snapshot_current() -> Result<NetSnapshot> {
    let mut nl = Rtnl::open("snapshot")?;
    let links: Vec<RawLink> = nl
        .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), "dump links")?
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(raw_link(&l)),
            _ => None,
        })
        .collect();
    let names: HashMap<u32, String> = links.iter().map(|l| (l.link.index, l.link.name.clone())).collect();
    let links = links.into_iter().map(|l| l.resolve(&names)).collect();

    let addresses = nl
        .dump(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            "dump addresses",
        )?
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) => convert_address(&a, &names),
            _ => None,
        })
        .collect();

    let routes = nl
        .dump(RouteNetlinkMessage::GetRoute(RouteMessage::default()), "dump routes")?
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => convert_route(&r, &names),
            _ => None,
        })
        .filter(|r| r.table == RT_TABLE_MAIN)
        .collect();

    let mut snap = NetSnapshot {
        links,
        addresses,
        routes,
    };
    snap.sort();
    Ok(snap)
}

/// Snapshot of the network namespace of process `pid` (via
/// `/proc/PID/ns/net`, on a helper thread).
pub fn snapshot_of_pid(pid: i32) -> Result<NetSnapshot> {
    snapshot_of_netns_file(crate::netns_path_of_pid(pid))
}

/// Snapshot of the network namespace behind a namespace file
/// (`/proc/PID/ns/net`, `/run/netns/NAME`).
pub fn snapshot_of_netns_file(path: impl AsRef<Path>) -> Result<NetSnapshot> {
    in_netns_file(path, snapshot_current)
}

/// A link whose master is still an index.
struct RawLink {
    link: Link,
    master_index: Option<u32>,
}

impl RawLink {
    fn resolve(mut self, names: &HashMap<u32, String>) -> Link {
        self.link.master = self.master_index.map(|i| name_of(i, names));
        self.link
    }
}

fn name_of(index: u32, names: &HashMap<u32, String>) -> String {
    names.get(&index).cloned().unwrap_or_else(|| format!("if{index}"))
}

fn raw_link(m: &LinkMessage) -> RawLink {
    let mut link = Link {
        index: m.header.index,
        name: format!("if{}", m.header.index),
        kind: None,
        state: "UNKNOWN".into(),
        up: m.header.flags.contains(LinkFlags::Up),
        mac: None,
        master: None,
        peer_netns: None,
        peer_index: None,
        mtu: 0,
    };
    let mut master_index = None;
    for attr in &m.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Address(mac) => link.mac = Some(format_mac(mac)),
            LinkAttribute::Controller(i) if *i != 0 => master_index = Some(*i),
            LinkAttribute::OperState(s) => link.state = operstate_name(*s),
            LinkAttribute::LinkNetNsId(id) => link.peer_netns = Some(*id),
            LinkAttribute::Link(i) if *i != 0 => link.peer_index = Some(*i),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(k) = info {
                        link.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    RawLink { link, master_index }
}

/// Names used by `ip link` for `IF_OPER_*`.
pub(crate) fn operstate_name(s: State) -> String {
    match s {
        State::Unknown => "UNKNOWN".into(),
        State::NotPresent => "NOTPRESENT".into(),
        State::Down => "DOWN".into(),
        State::LowerLayerDown => "LOWERLAYERDOWN".into(),
        State::Testing => "TESTING".into(),
        State::Dormant => "DORMANT".into(),
        State::Up => "UP".into(),
        State::Other(n) => n.to_string(),
        _ => "UNKNOWN".into(),
    }
}

pub(crate) fn format_mac(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn family_name(f: AddressFamily) -> Option<&'static str> {
    match f {
        AddressFamily::Inet => Some("inet"),
        AddressFamily::Inet6 => Some("inet6"),
        _ => None,
    }
}

fn convert_address(m: &AddressMessage, names: &HashMap<u32, String>) -> Option<Address> {
    let family = family_name(m.header.family)?;
    let mut local = None;
    let mut address = None;
    for attr in &m.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    // For IPv4, IFA_LOCAL is the interface's own address and IFA_ADDRESS the
    // peer's on point-to-point links; IPv6 only has IFA_ADDRESS.
    let ip: IpAddr = if family == "inet" {
        local.or(address)?
    } else {
        address.or(local)?
    };
    Some(Address {
        link: name_of(m.header.index, names),
        cidr: format!("{ip}/{}", m.header.prefix_len),
        family: family.into(),
    })
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn convert_route(m: &RouteMessage, names: &HashMap<u32, String>) -> Option<Route> {
    let family = family_name(m.header.address_family)?;
    let mut route = Route {
        family: family.into(),
        dst: "default".into(),
        gateway: None,
        dev: None,
        src: None,
        table: u32::from(m.header.table),
        protocol: protocol_name(m.header.protocol.into()),
        scope: scope_name(m.header.scope.into()),
        kind: route_type_name(m.header.kind.into()),
        metric: None,
    };
    let mut dst = None;
    for attr in &m.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = route_addr(a),
            RouteAttribute::Gateway(a) => route.gateway = route_addr(a).map(|ip| ip.to_string()),
            RouteAttribute::PrefSource(a) => route.src = route_addr(a).map(|ip| ip.to_string()),
            RouteAttribute::Oif(i) => route.dev = Some(name_of(*i, names)),
            RouteAttribute::Table(t) => route.table = *t,
            RouteAttribute::Priority(p) => route.metric = Some(*p),
            _ => {}
        }
    }
    let plen = m.header.destination_prefix_length;
    if let Some(ip) = dst {
        route.dst = format!("{ip}/{plen}");
    } else if plen != 0 {
        return None; // a prefix without an address: malformed, skip
    }
    Some(route)
}

/// `rtm_protocol` names, as in iproute2's `rt_protos`.
pub(crate) fn protocol_name(p: u8) -> String {
    match p {
        0 => "unspec",
        1 => "redirect",
        2 => "kernel",
        3 => "boot",
        4 => "static",
        8 => "gated",
        9 => "ra",
        10 => "mrt",
        11 => "zebra",
        12 => "bird",
        13 => "dnrouted",
        14 => "xorp",
        15 => "ntk",
        16 => "dhcp",
        18 => "keepalived",
        42 => "babel",
        99 => "openr",
        186 => "bgp",
        187 => "isis",
        188 => "ospf",
        189 => "rip",
        192 => "eigrp",
        n => return n.to_string(),
    }
    .into()
}

/// `rtm_scope` names, as in iproute2's `rt_scopes`.
pub(crate) fn scope_name(s: u8) -> String {
    match s {
        0 => "global",
        200 => "site",
        253 => "link",
        254 => "host",
        255 => "nowhere",
        n => return n.to_string(),
    }
    .into()
}

/// `rtm_type` names (`RTN_*`).
pub(crate) fn route_type_name(t: u8) -> String {
    match t {
        0 => "unspec",
        1 => "unicast",
        2 => "local",
        3 => "broadcast",
        4 => "anycast",
        5 => "multicast",
        6 => "blackhole",
        7 => "unreachable",
        8 => "prohibit",
        9 => "throw",
        10 => "nat",
        11 => "xresolve",
        n => return n.to_string(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::link::InfoKind;
    use netlink_packet_route::route::{RouteProtocol, RouteScope, RouteType};

    #[test]
    fn names_follow_iproute2() {
        assert_eq!(protocol_name(2), "kernel");
        assert_eq!(protocol_name(3), "boot");
        assert_eq!(protocol_name(77), "77");
        assert_eq!(scope_name(0), "global");
        assert_eq!(scope_name(253), "link");
        assert_eq!(route_type_name(1), "unicast");
        assert_eq!(route_type_name(6), "blackhole");
        assert_eq!(operstate_name(State::LowerLayerDown), "LOWERLAYERDOWN");
        assert_eq!(format_mac(&[0x02, 0xfc, 0, 0, 0, 0x1a]), "02:fc:00:00:00:1a");
    }

    /// Builds a link message the way the kernel would send it, serializes
    /// and re-parses it (so the fixture goes through the real decoder), then
    /// converts it.
    #[test]
    fn converts_a_veth_link_message() {
        let mut m = LinkMessage::default();
        m.header.index = 7;
        m.header.flags = LinkFlags::Up | LinkFlags::Broadcast;
        m.attributes = vec![
            LinkAttribute::IfName("wbvh1".into()),
            LinkAttribute::Mtu(1500),
            LinkAttribute::Address(vec![0xaa, 0xbb, 0xcc, 0, 1, 2]),
            LinkAttribute::Controller(5),
            LinkAttribute::OperState(State::LowerLayerDown),
            LinkAttribute::Link(2),
            LinkAttribute::LinkNetNsId(0),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
        ];
        let mut packet = NetlinkMessage::new(
            Default::default(),
            NetlinkPayload::from(RouteNetlinkMessage::NewLink(m)),
        );
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).unwrap();
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) = parsed.payload else {
            panic!("not a link")
        };
        let names: HashMap<u32, String> = [(5, "wbbr1".to_string())].into();
        let l = raw_link(&m).resolve(&names);
        assert_eq!(
            l,
            Link {
                index: 7,
                name: "wbvh1".into(),
                kind: Some("veth".into()),
                state: "LOWERLAYERDOWN".into(),
                up: true,
                mac: Some("aa:bb:cc:00:01:02".into()),
                master: Some("wbbr1".into()),
                peer_netns: Some(0),
                peer_index: Some(2),
                mtu: 1500,
            }
        );
    }

    #[test]
    fn converts_routes_and_addresses() {
        let names: HashMap<u32, String> = [(3, "eth0".to_string())].into();
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.header.table = 254;
        r.header.protocol = RouteProtocol::Boot;
        r.header.scope = RouteScope::Universe;
        r.header.kind = RouteType::Unicast;
        r.attributes = vec![
            RouteAttribute::Gateway(RouteAddress::Inet("10.88.0.1".parse().unwrap())),
            RouteAttribute::Oif(3),
        ];
        let got = convert_route(&r, &names).unwrap();
        assert_eq!(got.dst, "default");
        assert_eq!(got.gateway.as_deref(), Some("10.88.0.1"));
        assert_eq!(got.dev.as_deref(), Some("eth0"));
        assert_eq!(
            (got.protocol.as_str(), got.scope.as_str(), got.kind.as_str()),
            ("boot", "global", "unicast")
        );
        assert_eq!(got.key(), "inet table 254 default dev eth0");

        r.header.destination_prefix_length = 24;
        r.header.protocol = RouteProtocol::Kernel;
        r.header.scope = RouteScope::Link;
        r.attributes = vec![
            RouteAttribute::Destination(RouteAddress::Inet("10.88.0.0".parse().unwrap())),
            RouteAttribute::PrefSource(RouteAddress::Inet("10.88.0.2".parse().unwrap())),
            RouteAttribute::Oif(9),
            RouteAttribute::Table(1000),
        ];
        let got = convert_route(&r, &names).unwrap();
        assert_eq!(got.dst, "10.88.0.0/24");
        assert_eq!(got.src.as_deref(), Some("10.88.0.2"));
        assert_eq!(got.dev.as_deref(), Some("if9"), "unknown index falls back to ifN");
        assert_eq!(got.table, 1000, "RTA_TABLE wins over the 8-bit header field");

        let mut a = AddressMessage::default();
        a.header.family = AddressFamily::Inet;
        a.header.prefix_len = 24;
        a.header.index = 3;
        a.attributes = vec![
            AddressAttribute::Address("10.88.0.9".parse().unwrap()),
            AddressAttribute::Local("10.88.0.2".parse().unwrap()),
        ];
        let got = convert_address(&a, &names).unwrap();
        assert_eq!(
            got,
            Address {
                link: "eth0".into(),
                cidr: "10.88.0.2/24".into(),
                family: "inet".into()
            }
        );
        assert_eq!(got.key(), "eth0 10.88.0.2/24");
    }
}
