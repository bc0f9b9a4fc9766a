//! `--net bridge`: a veth pair from a fresh `wb` bridge into the container,
//! an address from a free 10.x subnet, a default route, and `-p` port
//! mappings as destination NAT in an nftables table of the run's own.
//!
//! A veth pair is a virtual cable: a frame sent into one end comes out of the
//! other. One end is plugged into a bridge (a software switch) on the host,
//! the other is moved into the container's network namespace and renamed
//! `eth0`. The bridge holds the gateway address; `-p 8080:80` rewrites the
//! destination of TCP connections to the host's port 8080 into the
//! container's address and port 80 (DNAT), for connections from outside
//! (`prerouting`) and from the host itself (`output`). A `forward` rule drops
//! whatever the container starts towards other networks, so no packet of it
//! leaves the machine even on hosts that forward IP traffic.

use super::spec::PortMap;
use crate::state::{self, Resource};

/// The names and addresses of one container network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetPlan {
    pub bridge: String,
    pub host_veth: String,
    pub peer_veth: String,
    /// e.g. 10.231.7.0/24
    pub subnet: String,
    pub gateway: String,
    pub address: String,
    pub prefix: u8,
    pub table: String,
    pub ports: Vec<PortMap>,
}

/// Candidate /24 subnets, starting at an offset derived from the run id so
/// that concurrent runs rarely try the same one first.
pub fn candidate_subnets(run_id: &str) -> Vec<String> {
    let seed = u32::from_str_radix(run_id.get(..4).unwrap_or("0"), 16).unwrap_or(0);
    let n = 24 * 256;
    (0..n)
        .map(|i| {
            let k = (seed + i) % n;
            format!("10.{}.{}.0/24", 231 + k / 256, k % 256)
        })
        .collect()
}

impl NetPlan {
    pub fn new(run_id: &str, subnet: &str, ports: &[PortMap]) -> NetPlan {
        let base = subnet.trim_end_matches("0/24");
        NetPlan {
            bridge: format!("wbr{run_id}"),
            host_veth: format!("wbh{run_id}"),
            peer_veth: format!("wbc{run_id}"),
            subnet: subnet.to_string(),
            gateway: format!("{base}1"),
            address: format!("{base}2"),
            prefix: 24,
            table: format!("wbrun{run_id}"),
            ports: ports.to_vec(),
        }
    }

    /// The nftables ruleset of this run (`nft -f -`): one table of its own,
    /// named with letters and digits only (what workbench's firewall cleanup
    /// accepts), so that removing it is `nft delete table ip wbrun<id>`.
    pub fn ruleset(&self) -> String {
        let mut dnat = String::new();
        for p in &self.ports {
            dnat.push_str(&format!(
                "    fib daddr type local tcp dport {} dnat to {}:{}\n",
                p.host, self.address, p.container
            ));
        }
        let mut t = format!("table ip {} {{\n", self.table);
        if !self.ports.is_empty() {
            t.push_str(&format!(
                "  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n{dnat}  }}\n"
            ));
            t.push_str(&format!(
                "  chain output {{\n    type nat hook output priority -100; policy accept;\n{dnat}  }}\n"
            ));
            // Connections from the host's 127.0.0.1 need a source the container can answer.
            t.push_str(&format!(
                "  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    ip saddr 127.0.0.0/8 ip daddr {} masquerade\n  }}\n",
                self.address
            ));
        }
        t.push_str(&format!(
            "  chain forward {{\n    type filter hook forward priority filter; policy accept;\n    iifname \"{}\" ct state != {{ established, related }} drop\n  }}\n}}\n",
            self.bridge
        ));
        t
    }

    /// The classic commands and the kernel interface each uses, for `--verbose`.
    pub fn commands(&self, pid: i32) -> Vec<(String, &'static str)> {
        const LINK: &str = "netlink RTM_NEWLINK";
        let mut v = vec![
            (format!("ip link add {} type bridge", self.bridge), LINK),
            (
                format!("ip link add {} type veth peer name {}", self.host_veth, self.peer_veth),
                LINK,
            ),
            (format!("ip link set {} master {}", self.host_veth, self.bridge), LINK),
            (
                format!("ip addr add {}/{} dev {}", self.gateway, self.prefix, self.bridge),
                "netlink RTM_NEWADDR",
            ),
            (
                format!("ip link set {} up; ip link set {} up", self.bridge, self.host_veth),
                LINK,
            ),
            (
                format!("ip link set {} netns {pid}", self.peer_veth),
                "netlink RTM_NEWLINK with IFLA_NET_NS_PID",
            ),
            (
                format!("nsenter -t {pid} -n ip link set {} name eth0", self.peer_veth),
                "setns(CLONE_NEWNET) + RTM_NEWLINK",
            ),
            (
                format!(
                    "nsenter -t {pid} -n ip addr add {}/{} dev eth0",
                    self.address, self.prefix
                ),
                "setns(CLONE_NEWNET) + RTM_NEWADDR",
            ),
            (
                format!("nsenter -t {pid} -n ip link set eth0 up"),
                "setns(CLONE_NEWNET) + RTM_NEWLINK",
            ),
            (
                format!("nsenter -t {pid} -n ip route add default via {}", self.gateway),
                "setns(CLONE_NEWNET) + RTM_NEWROUTE",
            ),
        ];
        if !self.ports.is_empty() {
            v.push((
                format!("sysctl -w net.ipv4.conf.{}.route_localnet=1", self.bridge),
                "write(2) to /proc/sys/net/ipv4/conf/*/route_localnet",
            ));
        }
        v.push((
            format!("nft -f - <<'EOF'\n{}EOF", self.ruleset()),
            "netlink NFNL_SUBSYS_NFTABLES (via nft)",
        ));
        v
    }
}

/// Pick a /24 no route or address of the host overlaps and no other live
/// run holds, and reserve it host-wide in this run's state file, as the
/// network lessons do: two runs started at once never take the same one.
pub fn reserve_subnet(run_id: &str) -> anyhow::Result<String> {
    let cands = candidate_subnets(run_id);
    let cands: Vec<&str> = cands.iter().map(String::as_str).collect();
    let sub = crate::kit::netlab::reserve_subnet(None, &cands, &[])
        .map_err(|e| anyhow::anyhow!("no free subnet in 10.231.0.0-10.254.255.0/24 for --net bridge: {e:#}"))?;
    Ok(sub.cidr())
}

/// Reserve every published host port host-wide (recorded in this run's
/// state file, under the same lock as nat-port-map's ports): a port another
/// live run maps, or a program on the host listens on, is refused with one
/// line (exit 2) before anything exists.
pub fn reserve_ports(ports: &[PortMap]) -> anyhow::Result<()> {
    use crate::kit::netlab;
    if ports.is_empty() {
        return Ok(());
    }
    state::reserve("ports", || -> anyhow::Result<()> {
        let held = netlab::held_ports_elsewhere();
        for p in ports {
            let refuse = |why: String| {
                crate::error::UsageError(format!(
                    "-p {}:{}: host port {} {why}: publish another host port",
                    p.host, p.container, p.host
                ))
            };
            if let Some((_, who)) = held.iter().find(|(h, _)| *h == p.host) {
                return Err(refuse(format!("is mapped by {who}, which is still running")).into());
            }
            if netlab::host_port_in_use(p.host) {
                return Err(refuse("has a program on this host listening on it".into()).into());
            }
        }
        for p in ports {
            state::record(Resource::HostPort { port: p.host })?;
        }
        Ok(())
    })?
}

fn link(name: &str) -> Resource {
    Resource::Link { name: name.to_string() }
}

/// Build the host side and the container side. Every object is recorded in
/// the state file before it is created.
pub fn setup(plan: &NetPlan, pid: i32) -> anyhow::Result<()> {
    use anyhow::Context;
    state::record(link(&plan.bridge))?;
    wb_net::create_bridge(&plan.bridge)?;
    state::record(link(&plan.host_veth))?;
    wb_net::create_veth(&plan.host_veth, &plan.peer_veth)?;
    wb_net::set_master(&plan.host_veth, &plan.bridge)?;
    wb_net::add_address(&plan.bridge, &format!("{}/{}", plan.gateway, plan.prefix))?;
    wb_net::set_up(&plan.bridge)?;
    wb_net::set_up(&plan.host_veth)?;
    wb_net::move_to_netns_pid(&plan.peer_veth, pid)?;
    let (peer, addr, gw) = (
        plan.peer_veth.clone(),
        format!("{}/{}", plan.address, plan.prefix),
        plan.gateway.clone(),
    );
    wb_net::in_netns_of(pid, move || {
        wb_net::rename(&peer, "eth0")?;
        wb_net::add_address("eth0", &addr)?;
        wb_net::set_up("eth0")?;
        wb_net::add_route_default(&gw)
    })
    .context("configure eth0 in the container")?;
    if !plan.ports.is_empty() {
        // Let DNATed connections from 127.0.0.1 be routed out of the bridge (our own link).
        let p = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", plan.bridge);
        std::fs::write(&p, "1").with_context(|| format!("write {p}"))?;
    }
    state::record(Resource::NftTable {
        family: "ip".into(),
        name: plan.table.clone(),
    })?;
    nft_apply(&plan.ruleset()).with_context(|| format!("nft add table ip {}", plan.table))?;
    Ok(())
}

/// `nft -f -` with a ruleset on stdin.
pub fn nft_apply(ruleset: &str) -> anyhow::Result<()> {
    Ok(crate::hostobj::firewall::apply_ruleset(ruleset)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_interfaces() {
        let p = NetPlan::new("a1b2c3", "10.231.7.0/24", &[]);
        for n in [&p.bridge, &p.host_veth, &p.peer_veth] {
            assert!(n.starts_with("wb") && n.len() <= 15, "{n}");
            wb_net::validate_ifname(n).unwrap();
        }
        assert_eq!((p.gateway.as_str(), p.address.as_str()), ("10.231.7.1", "10.231.7.2"));
    }

    #[test]
    fn subnets_are_private_and_spread() {
        let a = candidate_subnets("0000a1");
        let b = candidate_subnets("ffffa1");
        assert_eq!(a.len(), 24 * 256);
        assert_eq!(a[0], "10.231.0.0/24");
        assert_ne!(a[0], b[0]);
        assert!(a.iter().all(|s| wb_net::parse_cidr(s).is_ok()));
        let mut sorted = a.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), a.len());
    }

    #[test]
    fn ruleset_maps_ports_and_blocks_forwarding() {
        let p = NetPlan::new(
            "a1b2c3",
            "10.231.7.0/24",
            &[PortMap {
                host: 8080,
                container: 80,
            }],
        );
        let r = p.ruleset();
        assert!(r.starts_with("table ip wbruna1b2c3 {"));
        assert_eq!(r.matches("tcp dport 8080 dnat to 10.231.7.2:80").count(), 2);
        assert!(r.contains("ip saddr 127.0.0.0/8 ip daddr 10.231.7.2 masquerade"));
        assert!(r.contains(r#"iifname "wbra1b2c3" ct state != { established, related } drop"#));
        let none = NetPlan::new("a1b2c3", "10.231.7.0/24", &[]).ruleset();
        assert!(!none.contains("nat"));
        assert!(none.contains("hook forward"));
    }
}
