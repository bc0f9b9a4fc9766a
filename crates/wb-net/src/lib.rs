//! Links, addresses and routes, observed and changed through netlink.
//!
//! Every Linux network namespace has its own set of network devices
//! ("links"), its own IP addresses on them and its own routing tables. Tools
//! like `ip` do not read files to learn about them: they talk to the kernel
//! over a `NETLINK_ROUTE` socket, sending messages such as `RTM_NEWLINK`
//! ("create a bridge") or `RTM_GETROUTE` with `NLM_F_DUMP` ("list all
//! routes"). This crate does the same from Rust, without running `ip`.
//!
//! A netlink socket is tied to the network namespace of the thread that
//! created it. To look into (or change) another namespace, the `*_of_pid`
//! and [`in_netns_of`] functions start a short-lived helper thread that
//! joins that namespace with `setns(2)`, does the work there and exits; the
//! calling thread never changes namespace.

mod cidr;
mod error;
mod names;
mod netns;
mod ops;
mod rtnl;
mod snapshot;

use serde::{Deserialize, Serialize};

pub use cidr::{first_free_subnet, networks_overlap, parse_cidr, parse_ip, parse_route_dst, routes_overlap};
pub use error::{Error, Result};
pub use ipnet::IpNet;
pub use names::{validate_ifname, IFNAME_MAX};
pub use netns::{in_netns_file, in_netns_of, netns_path_of_pid};
pub use ops::{
    add_address, add_route, add_route_default, apply, classic_command, classic_command_in_netns, create_bridge,
    create_veth, delete_address, delete_link, delete_route, link_exists, link_index, move_to_netns_file,
    move_to_netns_pid, rename, set_down, set_master, set_mtu, set_nomaster, set_up, Nexthop, Op,
};
pub use snapshot::{snapshot_current, snapshot_of_netns_file, snapshot_of_pid};

/// Everything this crate shows about one network namespace, each list
/// sorted deterministically (links by index, addresses by link and
/// address, routes by family, table and destination).
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug, Default)]
pub struct NetSnapshot {
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
}

/// One network device, as `ip link show` prints it.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Link {
    /// The interface index: unique within the namespace, never reused soon.
    pub index: u32,
    pub name: String,
    /// The driver kind of a virtual device: `veth`, `bridge`, `ifb`,
    /// `dummy`, ... (`None` for loopback and physical devices).
    pub kind: Option<String>,
    /// The operational state (RFC 2863 `operstate`): `UP`, `DOWN`,
    /// `UNKNOWN` (loopback reports this), `LOWERLAYERDOWN`, `DORMANT`, ...
    pub state: String,
    /// The administrative flag `IFF_UP`, set by `ip link set X up`.
    pub up: bool,
    /// The link-layer (MAC) address, lowercase `aa:bb:cc:dd:ee:ff`.
    pub mac: Option<String>,
    /// The name of the bridge (or bond) this device is a port of.
    pub master: Option<String>,
    /// For a veth whose peer lives in another namespace: that namespace's
    /// id *as numbered by this namespace* (`ip link` prints `link-netnsid`).
    pub peer_netns: Option<i32>,
    /// The interface index of the peer / lower device (`IFLA_LINK`; `ip
    /// link` prints `veth0@if7`). Relative to `peer_netns` when that is set.
    pub peer_index: Option<u32>,
    pub mtu: u32,
}

/// One IP address on one link, as `ip addr show` prints it.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Address {
    /// Name of the link holding the address.
    pub link: String,
    /// Address and prefix length, e.g. `10.0.0.2/24`.
    pub cidr: String,
    /// `inet` (IPv4) or `inet6` (IPv6).
    pub family: String,
}

/// One route of the main routing table, as `ip route show` (and `ip -6
/// route show`) print it.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
pub struct Route {
    /// `inet` or `inet6`.
    pub family: String,
    /// `default` or a prefix such as `10.0.0.0/24` (host routes are `/32`).
    pub dst: String,
    /// The next-hop router, for routes `via` a gateway.
    pub gateway: Option<String>,
    /// The outgoing device.
    pub dev: Option<String>,
    /// The preferred source address (`src`).
    pub src: Option<String>,
    /// The routing table id (254 = `main`).
    pub table: u32,
    /// Who installed the route: `kernel` (connected routes made when an
    /// address was added), `boot` (`ip route add`), `static`, `dhcp`, `ra`, ...
    pub protocol: String,
    /// `global`, `link` (directly reachable), `host`, `site` or `nowhere`.
    pub scope: String,
    /// The route type: `unicast`, `blackhole`, `unreachable`, `prohibit`, ...
    pub kind: String,
    /// The route's priority (`metric`), when set.
    pub metric: Option<u32>,
}

impl Route {
    /// The route the kernel adds with an address (`proto kernel scope link`):
    /// the subnet `dst` reached directly on device `dev`, in the main table.
    pub fn kernel_link(dst: &str, dev: &str) -> Route {
        Route {
            family: if dst.contains(':') { "inet6" } else { "inet" }.into(),
            dst: dst.into(),
            gateway: None,
            dev: Some(dev.into()),
            src: None,
            table: 254,
            protocol: "kernel".into(),
            scope: "link".into(),
            kind: "unicast".into(),
            metric: None,
        }
    }
}

impl Link {
    /// A stable key for diffing: the name (unique within a namespace).
    pub fn key(&self) -> String {
        self.name.clone()
    }
}

impl Address {
    /// A stable key for diffing: `LINK CIDR`.
    pub fn key(&self) -> String {
        format!("{} {}", self.link, self.cidr)
    }
}

impl Route {
    /// A stable key for diffing: family, table, destination, device and
    /// metric, e.g. `inet table 254 default dev eth0`. The gateway is not part
    /// of the key, so a changed gateway shows as a change of the same route.
    pub fn key(&self) -> String {
        let mut k = format!("{} table {} {}", self.family, self.table, self.dst);
        if let Some(dev) = &self.dev {
            k.push_str(" dev ");
            k.push_str(dev);
        }
        if let Some(m) = self.metric {
            k.push_str(&format!(" metric {m}"));
        }
        k
    }
}

impl NetSnapshot {
    /// The link called `name`, if any.
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The addresses on link `name`.
    pub fn addresses_of<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Address> + 'a {
        let name = name.to_string();
        self.addresses.iter().filter(move |a| a.link == name)
    }

    /// The routes whose destination is `dst` (`default`, `10.0.0.0/24`).
    pub fn routes_to<'a>(&'a self, dst: &str) -> impl Iterator<Item = &'a Route> + 'a {
        let dst = dst.to_string();
        self.routes.iter().filter(move |r| r.dst == dst)
    }

    /// Sorts the three lists the way [`snapshot_current`] does.
    pub fn sort(&mut self) {
        self.links.sort_by(|a, b| (a.index, &a.name).cmp(&(b.index, &b.name)));
        self.addresses
            .sort_by(|a, b| (&a.link, &a.family, &a.cidr).cmp(&(&b.link, &b.family, &b.cidr)));
        self.routes.sort_by(|a, b| {
            let k = |r: &Route| {
                (
                    r.family.clone(),
                    r.table,
                    r.dst != "default",
                    r.dst.clone(),
                    r.metric,
                    r.dev.clone(),
                )
            };
            k(a).cmp(&k(b))
        });
    }
}
