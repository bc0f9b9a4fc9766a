//! Two "hosts" on one underlay, each with a container behind its own bridge.
//!
//! A multi-host container network is two layers: the machines' own network
//! (the underlay, where each host has an address) and, on every host, a
//! bridge with that host's container subnet (Flannel's `cni0`). Here each
//! host is a network namespace; a veth pair made inside host-a, one end
//! moved to host-b, is the cable between them, and every container is one
//! more namespace wired to its host's bridge. Nothing is ever created in the
//! real host's namespace, so the whole lab vanishes with its processes.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::Context;
use wb_net::Op;

use super::netlab::{self, Place, Subnet};
use crate::kernel::child::NsChild;
use crate::lesson::{Cx, StepReport};
use crate::observe::Snapshot;

/// The hosts' and the containers' names, as the transcript shows them.
pub const HOSTS: [&str; 2] = ["host-a", "host-b"];
pub const CONTAINERS: [&str; 2] = ["c1", "c2"];
/// The container bridge inside each host (Flannel's name for it).
pub const BRIDGE: &str = "cni0";
/// The underlay device inside each host.
pub const UNDERLAY_DEV: &str = "eth0";
/// Candidate underlay subnets: the first that overlaps no container subnet wins.
/// They exist only inside the hosts' namespaces.
pub const UNDERLAYS: &[&str] = &["192.168.215.0/24", "172.29.215.0/24", "10.215.9.0/24"];

/// The underlay subnet for these container subnets (pure).
pub fn underlay_for(pods: &[Subnet]) -> anyhow::Result<Subnet> {
    UNDERLAYS
        .iter()
        .filter_map(|s| netlab::parse_subnet(s).ok())
        .find(|u| !pods.iter().any(|p| p.overlaps(u)))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "every underlay subnet ({}) overlaps a container subnet",
                UNDERLAYS.join(", ")
            )
        })
}

/// The lab: `hosts[i]` and `containers[i]` (started by the steps that need
/// them), the underlay subnet (host-a `.1`, host-b `.2`) and each host's
/// container subnet (bridge `.1`, container `.2`).
#[derive(Default)]
pub struct TwoHosts {
    /// host-a, host-b
    pub hosts: Vec<NsChild>,
    /// c1 (behind host-a), c2 (behind host-b)
    pub containers: Vec<NsChild>,
    pub underlay: Option<Subnet>,
    /// host-a's container subnet, host-b's
    pub pods: Vec<Subnet>,
}

/// Start one namespace child per name (its hostname), chrooted into the
/// lab's busybox rootfs (built on first use).
fn start_all(cx: &Cx, r: &mut StepReport, names: &[&str]) -> anyhow::Result<Vec<NsChild>> {
    let rootfs = cx.workdir.join("lab-rootfs");
    let rootfs = if rootfs.is_dir() {
        rootfs
    } else {
        netlab::build_container_rootfs(cx, "lab", "lab")?
    };
    let mut out = Vec::new();
    for name in names {
        let (child, said) = netlab::start_container(netlab::container_flags(), &rootfs, name, None)?;
        for (place, s) in said {
            r.say(place, s, "");
        }
        out.push(child);
    }
    Ok(out)
}

impl TwoHosts {
    /// Clone the two host namespaces (net, pid, mount, uts, ipc), each
    /// chrooted into a busybox rootfs under the run's workdir.
    pub fn start_hosts(&mut self, cx: &Cx, r: &mut StepReport) -> anyhow::Result<()> {
        self.hosts = start_all(cx, r, &HOSTS)?;
        Ok(())
    }

    /// Clone the two container namespaces (one per host), on the same rootfs.
    pub fn start_containers(&mut self, cx: &Cx, r: &mut StepReport) -> anyhow::Result<()> {
        self.containers = start_all(cx, r, &CONTAINERS)?;
        Ok(())
    }

    pub fn host_pid(&self, i: usize) -> anyhow::Result<i32> {
        self.hosts
            .get(i)
            .map(NsChild::pid)
            .ok_or_else(|| anyhow::anyhow!("no {}: the hosts step did not run", HOSTS[i]))
    }

    pub fn container_pid(&self, i: usize) -> anyhow::Result<i32> {
        self.containers
            .get(i)
            .map(NsChild::pid)
            .ok_or_else(|| anyhow::anyhow!("no {}: the containers step did not run", CONTAINERS[i]))
    }

    pub fn host_place(&self, i: usize) -> anyhow::Result<Place> {
        Ok(Place::Ns {
            pid: self.host_pid(i)?,
            label: HOSTS[i].into(),
        })
    }

    pub fn container_place(&self, i: usize) -> anyhow::Result<Place> {
        Ok(Place::Ns {
            pid: self.container_pid(i)?,
            label: CONTAINERS[i].into(),
        })
    }

    pub fn underlay(&self) -> anyhow::Result<Subnet> {
        self.underlay
            .ok_or_else(|| anyhow::anyhow!("no underlay: the underlay step did not run"))
    }

    pub fn pod(&self, i: usize) -> anyhow::Result<Subnet> {
        self.pods
            .get(i)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("no container subnets: the containers step did not run"))
    }

    /// Host `i`'s underlay address: host-a `.1`, host-b `.2`.
    pub fn underlay_ip(&self, i: usize) -> anyhow::Result<String> {
        let u = self.underlay()?;
        Ok(if i == 0 { u.host_ip() } else { u.peer_ip() })
    }

    /// Container `i`'s address (`.2` of its host's subnet).
    pub fn container_ip(&self, i: usize) -> anyhow::Result<String> {
        Ok(self.pod(i)?.peer_ip())
    }

    /// The underlay: a veth pair created inside host-a, its peer moved into
    /// host-b; both ends named eth0, addressed and up.
    pub fn underlay_ops(&self) -> anyhow::Result<Vec<(Place, Op)>> {
        let u = self.underlay()?;
        let (pa, pb) = (self.host_place(0)?, self.host_place(1)?);
        let peer = "eth0b".to_string();
        let dev = UNDERLAY_DEV.to_string();
        Ok(vec![
            (
                pa.clone(),
                Op::CreateVeth {
                    name: dev.clone(),
                    peer: peer.clone(),
                },
            ),
            (
                pa.clone(),
                Op::MoveToNetnsPid {
                    link: peer.clone(),
                    pid: self.host_pid(1)?,
                },
            ),
            (
                pb.clone(),
                Op::Rename {
                    link: peer,
                    new_name: dev.clone(),
                },
            ),
            (
                pa.clone(),
                Op::AddAddress {
                    link: dev.clone(),
                    cidr: u.host_cidr(),
                },
            ),
            (
                pb.clone(),
                Op::AddAddress {
                    link: dev.clone(),
                    cidr: u.peer_cidr(),
                },
            ),
            (pa.clone(), Op::SetUp { link: "lo".into() }),
            (pb.clone(), Op::SetUp { link: "lo".into() }),
            (pa, Op::SetUp { link: dev.clone() }),
            (pb, Op::SetUp { link: dev }),
        ])
    }

    /// Host `i`'s bridge with the gateway address of its container subnet, and
    /// container `i` behind it: a veth pair made inside the host (`vethcN`
    /// plugged into the bridge), its peer moved into the container as eth0,
    /// addressed, with a default route via the bridge.
    pub fn container_ops(&self, i: usize) -> anyhow::Result<Vec<(Place, Op)>> {
        let sub = self.pod(i)?;
        let (h, c) = (self.host_place(i)?, self.container_place(i)?);
        let host_end = format!("veth{}", CONTAINERS[i]);
        let peer = format!("eth0{}", CONTAINERS[i]);
        let mut ops = vec![
            (h.clone(), Op::CreateBridge { name: BRIDGE.into() }),
            (
                h.clone(),
                Op::AddAddress {
                    link: BRIDGE.into(),
                    cidr: sub.host_cidr(),
                },
            ),
            (h.clone(), Op::SetUp { link: BRIDGE.into() }),
            (
                h.clone(),
                Op::CreateVeth {
                    name: host_end.clone(),
                    peer: peer.clone(),
                },
            ),
            (
                h.clone(),
                Op::SetMaster {
                    link: host_end.clone(),
                    bridge: BRIDGE.into(),
                },
            ),
            (h.clone(), Op::SetUp { link: host_end }),
        ];
        // netlab's inside_ops moves the peer from the real host; here it sits in host i.
        let mut inside = netlab::inside_ops(
            &peer,
            &c,
            self.container_pid(i)?,
            &sub.peer_cidr(),
            Some(&sub.host_ip()),
        );
        inside[0].0 = h;
        ops.extend(inside);
        Ok(ops)
    }

    /// The (label, pid) of every namespace started so far, hosts first.
    pub fn sides(&self) -> Vec<(&'static str, i32)> {
        let hosts = self.hosts.iter().zip(HOSTS).map(|(c, n)| (n, c.pid()));
        hosts
            .chain(self.containers.iter().zip(CONTAINERS).map(|(c, n)| (n, c.pid())))
            .collect()
    }

    /// Links, addresses and routes of every namespace of the lab, in one view.
    pub fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let sides = self.sides();
        let label = sides.iter().map(|(l, _)| *l).collect::<Vec<_>>().join(" + ");
        netlab::lab_snapshot(&label, &sides)
    }

    /// Do `ops`, showing the lab's networks before and after.
    pub fn wire(&self, r: &mut StepReport, ops: &[(Place, Op)]) -> anyhow::Result<()> {
        let before = self.snapshot()?;
        netlab::apply_ops(r, ops)?;
        r.observe(before, self.snapshot()?);
        Ok(())
    }

    /// Ping `ip` from container `i` (`ping -c 2`, bounded), shown in the report.
    pub fn ping_from_container(&mut self, r: &mut StepReport, i: usize, ip: &str) -> anyhow::Result<String> {
        ping(self.containers.get_mut(i), CONTAINERS[i], r, ip)
    }

    /// Ping `ip` from host `i`, shown in the report.
    pub fn ping_from_host(&mut self, r: &mut StepReport, i: usize, ip: &str) -> anyhow::Result<String> {
        ping(self.hosts.get_mut(i), HOSTS[i], r, ip)
    }
}

/// `ping -c 2 IP` (bounded) run by busybox in `child`, shown as run at `label`.
fn ping(child: Option<&mut NsChild>, label: &str, r: &mut StepReport, ip: &str) -> anyhow::Result<String> {
    let c = child.ok_or_else(|| anyhow::anyhow!("no {label}: the step that starts it did not run"))?;
    let out = netlab::run_in(c, "/bin/busybox", &netlab::ping_argv(ip))?;
    r.ran(label, netlab::ping_argv(ip).join(" "), &out);
    Ok(out.stdout)
}

/// `net.ipv4.ip_forward` of the network namespace of `pid` (each namespace
/// has its own; a new one starts with init_net's value, see
/// `net.core.devconf_inherit_init_net`).
pub fn forwarding(pid: i32) -> anyhow::Result<bool> {
    let v = wb_net::in_netns_of(pid, || {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map_err(|source| wb_net::Error::Socket {
            op: "read net.ipv4.ip_forward".into(),
            syscall: "read",
            source,
        })
    })?;
    Ok(v.trim() == "1")
}

/// Set `net.ipv4.ip_forward` in the network namespace of `pid` only.
pub fn set_forwarding(pid: i32, on: bool) -> anyhow::Result<()> {
    wb_net::in_netns_of(pid, || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", if on { "1" } else { "0" }).map_err(|source| {
            wb_net::Error::Socket {
                op: "write net.ipv4.ip_forward".into(),
                syscall: "write",
                source,
            }
        })
    })?;
    Ok(())
}

/// One IPv4 packet a [`PacketTap`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenPacket {
    /// Sent by this namespace (`PACKET_OUTGOING`) rather than received.
    pub outgoing: bool,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// The IP protocol number: 1 ICMP, 6 TCP, 17 UDP, 4 IP-in-IP, 47 GRE.
    pub proto: u8,
    pub ttl: u8,
    /// For UDP, the destination port (VXLAN 4789, Flannel UDP 8285).
    pub dst_port: Option<u16>,
}

impl SeenPacket {
    /// `out 10.213.0.2 > 10.213.1.2 icmp ttl 63`
    pub fn line(&self) -> String {
        let proto = match self.proto {
            1 => "icmp".to_string(),
            6 => "tcp".to_string(),
            17 => format!("udp dport {}", self.dst_port.unwrap_or(0)),
            4 => "ipip".to_string(),
            47 => "gre".to_string(),
            p => format!("proto {p}"),
        };
        let dir = if self.outgoing { "out" } else { "in " };
        format!("{dir} {} > {} {proto} ttl {}", self.src, self.dst, self.ttl)
    }
}

/// Parse the IPv4 header at the start of `pkt` (pure). `None` for anything
/// that is not a well-formed IPv4 header.
pub fn parse_ipv4(pkt: &[u8], outgoing: bool) -> Option<SeenPacket> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    if ihl < 20 || pkt.len() < ihl {
        return None;
    }
    let proto = pkt[9];
    let dst_port = (proto == 17 && pkt.len() >= ihl + 4).then(|| u16::from_be_bytes([pkt[ihl + 2], pkt[ihl + 3]]));
    Some(SeenPacket {
        outgoing,
        src: Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]),
        dst: Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]),
        proto,
        ttl: pkt[8],
        dst_port,
    })
}

/// A packet socket (`socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL))`) bound
/// to one device of another namespace: the kernel hands it a copy of every
/// packet that device sends or receives, as tcpdump's capture does (only
/// ETH_P_ALL sockets see the outgoing ones); the IPv4 ones are kept.
pub struct PacketTap {
    fd: OwnedFd,
}

impl PacketTap {
    /// Open the tap on device `dev` in the network namespace of `pid`.
    pub fn open(pid: i32, dev: &str) -> anyhow::Result<PacketTap> {
        let dev = dev.to_string();
        let fd = wb_net::in_netns_of(pid, move || {
            let sock_err = |syscall: &'static str| wb_net::Error::Socket {
                op: format!("packet socket on {dev}"),
                syscall,
                source: std::io::Error::last_os_error(),
            };
            let index = wb_net::link_index(&dev)?.ok_or_else(|| wb_net::Error::NoSuchLink {
                op: "packet socket".into(),
                name: dev.clone(),
            })?;
            let proto = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain socket(2); the fd is owned at once.
            let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, i32::from(proto)) };
            if raw < 0 {
                return Err(sock_err("socket"));
            }
            // SAFETY: raw is a fresh, valid descriptor nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
            let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sa.sll_family = libc::AF_PACKET as u16;
            sa.sll_protocol = proto;
            sa.sll_ifindex = index as i32;
            // SAFETY: sa is a valid sockaddr_ll of the length given.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    &sa as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if rc < 0 {
                return Err(sock_err("bind"));
            }
            Ok(fd)
        })
        .context("open a packet socket")?;
        Ok(PacketTap { fd })
    }

    /// Every packet queued since the tap was opened (or last drained).
    pub fn drain(&self) -> Vec<SeenPacket> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            // SAFETY: sockaddr_ll is plain data.
            let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buf and sa are valid for the lengths given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    &mut sa as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                    &mut len,
                )
            };
            if n <= 0 {
                break;
            }
            if sa.sll_protocol != (libc::ETH_P_IP as u16).to_be() {
                continue;
            }
            let outgoing = sa.sll_pkttype == libc::PACKET_OUTGOING;
            if let Some(p) = parse_ipv4(&buf[..n as usize], outgoing) {
                out.push(p);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4_headers() {
        // 45 00 len id flags ttl=63 proto=1 csum src 10.213.0.2 dst 10.213.1.2
        let mut icmp = vec![0x45, 0, 0, 84, 0, 1, 0x40, 0, 63, 1, 0, 0, 10, 213, 0, 2, 10, 213, 1, 2];
        icmp.extend([8, 0, 0, 0]);
        let p = parse_ipv4(&icmp, true).unwrap();
        assert_eq!(
            (p.src, p.dst, p.proto, p.ttl, p.dst_port),
            (
                "10.213.0.2".parse().unwrap(),
                "10.213.1.2".parse().unwrap(),
                1,
                63,
                None
            )
        );
        assert_eq!(p.line(), "out 10.213.0.2 > 10.213.1.2 icmp ttl 63");
        let mut udp = vec![
            0x45, 0, 0, 84, 0, 1, 0x40, 0, 64, 17, 0, 0, 192, 168, 215, 1, 192, 168, 215, 2,
        ];
        udp.extend([0x12, 0x34, 0x12, 0xb5, 0, 8, 0, 0]);
        let p = parse_ipv4(&udp, false).unwrap();
        assert_eq!(p.dst_port, Some(4789));
        assert_eq!(p.line(), "in  192.168.215.1 > 192.168.215.2 udp dport 4789 ttl 64");
        assert!(parse_ipv4(&icmp[..19], true).is_none());
        let mut v6 = icmp.clone();
        v6[0] = 0x60;
        assert!(parse_ipv4(&v6, true).is_none());
    }

    #[test]
    fn the_underlay_avoids_the_container_subnets() {
        let p = |s| netlab::parse_subnet(s).unwrap();
        assert_eq!(
            underlay_for(&[p("10.213.0.0/24"), p("10.213.1.0/24")]).unwrap().cidr(),
            "192.168.215.0/24"
        );
        assert_eq!(underlay_for(&[p("192.168.0.0/16")]).unwrap().cidr(), "172.29.215.0/24");
        assert!(underlay_for(&[p("192.168.0.0/16"), p("172.16.0.0/12"), p("10.0.0.0/8")]).is_err());
    }
}
