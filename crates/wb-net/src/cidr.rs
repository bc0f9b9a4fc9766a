//! Addresses, prefixes and subnet clashes.
//!
//! An interface address like `10.88.0.2/24` is two things at once: the
//! host's own address (`10.88.0.2`) and, through the prefix length, the
//! subnet it sits in (`10.88.0.0/24`). Adding such an address makes the
//! kernel install a "connected" route for the subnet, so a new subnet must
//! not overlap any subnet already routed on the host, or traffic for it
//! would silently go elsewhere.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::NetSnapshot;

/// Parses `ADDRESS/PREFIX` (`10.88.0.2/24`, `fd00::1/64`). The address part
/// keeps its host bits: use [`IpNet::trunc`] for the subnet.
pub fn parse_cidr(s: &str) -> Result<IpNet> {
    let bad = |reason: &str| Error::InvalidCidr {
        input: s.to_string(),
        reason: reason.to_string(),
    };
    let Some((addr, prefix)) = s.split_once('/') else {
        return Err(bad("missing /prefix"));
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad("not an ip address before the /"))?;
    let prefix: u8 = prefix.parse().map_err(|_| bad("prefix length is not a number"))?;
    IpNet::new(addr, prefix).map_err(|_| {
        bad(if addr.is_ipv4() {
            "prefix length above 32"
        } else {
            "prefix length above 128"
        })
    })
}

/// Parses a plain IPv4 or IPv6 address.
pub fn parse_ip(s: &str) -> Result<IpAddr> {
    s.parse().map_err(|_| Error::InvalidAddress { input: s.to_string() })
}

/// Parses a route destination: `default`, a CIDR, or a bare address (a host
/// route, `/32` or `/128`).
pub fn parse_route_dst(s: &str) -> Result<Option<IpNet>> {
    if s == "default" {
        return Ok(None);
    }
    if s.contains('/') {
        return parse_cidr(s).map(|n| Some(n.trunc()));
    }
    let ip = parse_ip(s).map_err(|_| Error::InvalidCidr {
        input: s.to_string(),
        reason: "expected `default`, ADDRESS/PREFIX or ADDRESS".to_string(),
    })?;
    Ok(Some(IpNet::from(ip)))
}

/// Do two subnets share at least one address? (Two prefixes overlap exactly
/// when one contains the other's network address.)
pub fn networks_overlap(a: &IpNet, b: &IpNet) -> bool {
    let (a, b) = (a.trunc(), b.trunc());
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Would the subnet `cidr` clash with what `host` already routes?
///
/// Checks every route destination (except `default`, which by definition
/// covers everything and is exactly where traffic goes when nothing more
/// specific matches) and every interface address's subnet. An unparsable
/// `cidr` counts as clashing, so a caller never uses it by mistake.
pub fn routes_overlap(host: &NetSnapshot, cidr: &str) -> bool {
    let Ok(proposed) = parse_cidr(cidr) else {
        return true;
    };
    let route_nets = host
        .routes
        .iter()
        .filter_map(|r| parse_route_dst(&r.dst).ok().flatten());
    let addr_nets = host.addresses.iter().filter_map(|a| parse_cidr(&a.cidr).ok());
    route_nets.chain(addr_nets).any(|net| networks_overlap(&net, &proposed))
}

/// The first of `candidates` that [`routes_overlap`] says is free on `host`.
pub fn first_free_subnet<'a>(host: &NetSnapshot, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .find(|c| !routes_overlap(host, c))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Address, Route};

    fn route(dst: &str, dev: &str) -> Route {
        Route::kernel_link(dst, dev)
    }

    fn host() -> NetSnapshot {
        NetSnapshot {
            links: vec![],
            addresses: vec![
                Address {
                    link: "lo".into(),
                    cidr: "127.0.0.1/8".into(),
                    family: "inet".into(),
                },
                Address {
                    link: "eth0".into(),
                    cidr: "192.0.2.2/24".into(),
                    family: "inet".into(),
                },
                Address {
                    link: "wg0".into(),
                    cidr: "10.1.2.3/32".into(),
                    family: "inet".into(),
                },
                Address {
                    link: "eth0".into(),
                    cidr: "fd00::2/64".into(),
                    family: "inet6".into(),
                },
            ],
            routes: vec![
                Route {
                    gateway: Some("192.0.2.1".into()),
                    dev: Some("eth0".into()),
                    ..route("default", "eth0")
                },
                route("192.0.2.0/24", "eth0"),
                route("10.200.0.0/16", "tun0"),
                route("172.17.0.0/16", "docker0"),
                route("fd00::/64", "eth0"),
            ],
        }
    }

    #[test]
    fn parses_cidrs() {
        let n = parse_cidr("10.88.0.2/24").unwrap();
        assert_eq!(n.addr().to_string(), "10.88.0.2");
        assert_eq!(n.prefix_len(), 24);
        assert_eq!(n.trunc().to_string(), "10.88.0.0/24");
        assert_eq!(parse_cidr("fd00::1/64").unwrap().trunc().to_string(), "fd00::/64");
    }

    #[test]
    fn rejects_bad_cidrs_with_reasons() {
        for (input, reason) in [
            ("10.88.0.2", "missing /prefix"),
            ("10.88.0/24", "not an ip address"),
            ("10.88.0.2/x", "not a number"),
            ("10.88.0.2/33", "above 32"),
            ("::1/129", "above 128"),
        ] {
            let e = parse_cidr(input).unwrap_err().to_string();
            assert!(e.starts_with(&format!("invalid cidr {input:?}")), "{e}");
            assert!(e.contains(reason), "{e}");
        }
    }

    #[test]
    fn route_destinations() {
        assert_eq!(parse_route_dst("default").unwrap(), None);
        assert_eq!(
            parse_route_dst("10.0.0.7/24").unwrap().unwrap().to_string(),
            "10.0.0.0/24"
        );
        assert_eq!(parse_route_dst("10.0.0.7").unwrap().unwrap().to_string(), "10.0.0.7/32");
        assert!(parse_route_dst("nonsense").is_err());
    }

    #[test]
    fn overlap_of_two_networks() {
        let n = |s: &str| parse_cidr(s).unwrap();
        assert!(networks_overlap(&n("10.0.0.0/8"), &n("10.213.5.0/24")));
        assert!(networks_overlap(&n("10.213.5.0/24"), &n("10.0.0.0/8")));
        assert!(networks_overlap(&n("10.213.5.1/24"), &n("10.213.5.200/24")));
        assert!(networks_overlap(&n("10.213.5.9/32"), &n("10.213.5.0/24")));
        assert!(!networks_overlap(&n("10.213.5.0/24"), &n("10.213.6.0/24")));
        assert!(!networks_overlap(&n("10.213.4.0/23"), &n("10.213.6.0/24")));
        assert!(networks_overlap(&n("10.213.4.0/22"), &n("10.213.6.0/24")));
        // different families never overlap
        assert!(!networks_overlap(&n("0.0.0.0/0"), &n("::/0")));
    }

    #[test]
    fn proposed_subnets_against_a_host() {
        let h = host();
        // the default route does not make everything clash
        assert!(!routes_overlap(&h, "10.88.0.0/24"));
        assert!(!routes_overlap(&h, "10.213.7.0/24"));
        // clashes with a route
        assert!(routes_overlap(&h, "10.200.3.0/24"));
        assert!(routes_overlap(&h, "10.0.0.0/8")); // contains 10.200.0.0/16
        assert!(routes_overlap(&h, "172.17.0.1/16"));
        // clashes with an address' subnet even without a route
        assert!(routes_overlap(&h, "10.1.2.0/24"));
        assert!(routes_overlap(&h, "127.0.0.0/16"));
        assert!(routes_overlap(&h, "192.0.2.128/25"));
        // IPv6
        assert!(routes_overlap(&h, "fd00::/48"));
        assert!(!routes_overlap(&h, "fd01::/64"));
        // unparsable counts as a clash
        assert!(routes_overlap(&h, "banana"));
    }

    #[test]
    fn first_free_subnet_skips_taken_ones() {
        let h = host();
        let got = first_free_subnet(&h, ["10.200.1.0/24", "172.17.5.0/24", "10.88.0.0/24", "10.89.0.0/24"]);
        assert_eq!(got.as_deref(), Some("10.88.0.0/24"));
        assert_eq!(first_free_subnet(&h, ["10.200.1.0/24"]), None);
    }
}
