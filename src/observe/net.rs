//! Links, addresses and routes of a process's network namespace, for snapshots.
//!
//! A network namespace has its own interfaces, addresses and routing table.
//! The view is read over netlink from inside the namespace (the `wb-net`
//! crate) and turned into key → description maps that diff like the rest.

use std::collections::BTreeMap;

use crate::observe::NetState;

/// Pure conversion of a netlink snapshot into diffable rows.
pub fn to_state(s: &wb_net::NetSnapshot) -> NetState {
    let links: BTreeMap<String, String> = s
        .links
        .iter()
        .map(|l| {
            let mut d = format!("{} {}", l.state, if l.up { "up" } else { "down" });
            if let Some(k) = &l.kind {
                d.push_str(&format!(" type {k}"));
            }
            if let Some(m) = &l.master {
                d.push_str(&format!(" master {m}"));
            }
            if let Some(mac) = &l.mac {
                d.push_str(&format!(" {mac}"));
            }
            d.push_str(&format!(" mtu {}", l.mtu));
            (l.key(), d)
        })
        .collect();
    let addresses = s
        .addresses
        .iter()
        .map(|a| (a.key(), format!("{} {}", a.family, a.cidr)))
        .collect();
    let routes = s
        .routes
        .iter()
        .map(|r| {
            let mut d = r.dst.clone();
            if let Some(g) = &r.gateway {
                d.push_str(&format!(" via {g}"));
            }
            if let Some(dev) = &r.dev {
                d.push_str(&format!(" dev {dev}"));
            }
            d.push_str(&format!(" proto {} scope {}", r.protocol, r.scope));
            (r.key(), d)
        })
        .collect();
    NetState {
        links,
        addresses,
        routes,
    }
}

/// The network view of the namespace process `pid` is in.
pub fn net_state_of(pid: i32) -> anyhow::Result<NetState> {
    Ok(to_state(&wb_net::snapshot_of_pid(pid)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_a_snapshot_into_rows() {
        let snap = wb_net::NetSnapshot {
            links: vec![wb_net::Link {
                index: 1,
                name: "lo".into(),
                kind: None,
                state: "UNKNOWN".into(),
                up: true,
                mac: None,
                master: None,
                peer_netns: None,
                peer_index: None,
                mtu: 65536,
            }],
            addresses: vec![wb_net::Address {
                link: "lo".into(),
                cidr: "127.0.0.1/8".into(),
                family: "inet".into(),
            }],
            routes: vec![],
        };
        let st = to_state(&snap);
        assert_eq!(st.links["lo"], "UNKNOWN up mtu 65536");
        assert_eq!(st.addresses["lo 127.0.0.1/8"], "inet 127.0.0.1/8");
        assert!(st.routes.is_empty());
    }
}
