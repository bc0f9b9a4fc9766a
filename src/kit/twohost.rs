//! Two "hosts" with a container each, for the multi-host network lessons.
//!
//! Kubernetes-style networks give every machine its own container subnet
//! behind a bridge; what differs between Flannel's backends (host-gw, vxlan,
//! udp) is only how a packet for the *other* machine's subnet gets there:
//! a plain route via the other machine's address, a kernel tunnel device,
//! or a user-space daemon. Here two network namespaces play the machines
//! (joined by a veth pair, their "underlay"), each with a bridge and one
//! container namespace; nothing touches the real host's network. The module
//! also measures a path: a burst of pings and a bulk TCP transfer between
//! the two containers, and nft counters in each host telling which path the
//! packets really took.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;
use wb_net::{Nexthop, Op};

use super::netlab::{self, Place, Subnet};
use crate::kernel::child::{NsChild, RunOutput};
use crate::lesson::{Cx, StepReport};

/// The hosts' underlay (their "physical" LAN) and each host's container subnet.
pub const UNDERLAY: &str = "10.217.0.0/24";
pub const PODS: [&str; 2] = ["10.218.1.0/24", "10.218.2.0/24"];
/// The containers' MTU: small enough for every path compared (a vxlan device
/// takes 50 bytes of the underlay's 1500, a UDP tunnel 28).
pub const POD_MTU: u32 = 1450;
/// The nft table each host counts its underlay input in (inside the host's
/// namespace: it goes with the namespace).
pub const TAP_TABLE: &str = "wbtap";

/// Start the two host namespaces (`host-a`, `host-b`), each in its own
/// network, PID, mount, UTS and IPC namespace, chrooted into a busybox rootfs.
pub fn start_hosts(cx: &Cx, r: &mut StepReport) -> anyhow::Result<(NsChild, NsChild)> {
    let rootfs = netlab::build_container_rootfs(cx, "hosts", "host")?;
    let mut out = vec![];
    for name in ["host-a", "host-b"] {
        let (child, said) = netlab::start_container(netlab::container_flags(), &rootfs, name, None)?;
        for (place, s) in said {
            r.say(place, s, "");
        }
        out.push(child);
    }
    let b = out.pop().expect("two hosts");
    let a = out.pop().expect("two hosts");
    Ok((a, b))
}

/// Start a container namespace (hostname `name`) with its own rootfs.
pub fn start_pod(cx: &Cx, r: &mut StepReport, name: &str) -> anyhow::Result<NsChild> {
    let rootfs = netlab::build_container_rootfs(cx, name, name)?;
    let (child, said) = netlab::start_container(netlab::container_flags(), &rootfs, name, None)?;
    for (place, s) in said {
        r.say(place, s, "");
    }
    Ok(child)
}

/// `Place` of a namespace child.
pub fn place(child: &NsChild, label: &str) -> Place {
    Place::Ns {
        pid: child.pid(),
        label: label.into(),
    }
}

/// The underlay: a veth pair made on the real host whose two ends move into
/// the hosts as `eth0`, `.1` and `.2` of `underlay`.
pub fn underlay_ops(run_id: &str, a: &NsChild, b: &NsChild, underlay: &Subnet) -> anyhow::Result<Vec<(Place, Op)>> {
    let (ea, eb) = (netlab::link_name(run_id, "a0")?, netlab::link_name(run_id, "b0")?);
    let mut ops = vec![(
        Place::Host,
        Op::CreateVeth {
            name: ea.clone(),
            peer: eb.clone(),
        },
    )];
    ops.extend(netlab::inside_ops(
        &ea,
        &place(a, "host-a"),
        a.pid(),
        &underlay.host_cidr(),
        None,
    ));
    ops.extend(netlab::inside_ops(
        &eb,
        &place(b, "host-b"),
        b.pid(),
        &underlay.peer_cidr(),
        None,
    ));
    Ok(ops)
}

/// One host's container network: a bridge with the subnet's `.1`, a veth
/// pair made on the real host, one end moved into the host and plugged into
/// the bridge, the other into the container as `eth0` (`.2`, MTU
/// [`POD_MTU`], default route via the bridge). `tag` ("a"/"b") keeps the
/// run's link names apart; every name carries the run id, so the ledger's
/// record of them can never name a stranger's link.
pub fn pod_ops(
    run_id: &str,
    tag: &str,
    host: &Place,
    host_pid: i32,
    pod: &Place,
    pod_pid: i32,
    pods: &Subnet,
) -> anyhow::Result<Vec<(Place, Op)>> {
    let br = netlab::link_name(run_id, &format!("{tag}br"))?;
    let (v, p) = (
        netlab::link_name(run_id, &format!("{tag}1"))?,
        netlab::link_name(run_id, &format!("{tag}2"))?,
    );
    let mut ops = vec![
        (host.clone(), Op::CreateBridge { name: br.clone() }),
        (
            host.clone(),
            Op::AddAddress {
                link: br.clone(),
                cidr: pods.host_cidr(),
            },
        ),
        (host.clone(), Op::SetUp { link: br.clone() }),
        (
            Place::Host,
            Op::CreateVeth {
                name: v.clone(),
                peer: p.clone(),
            },
        ),
        (
            Place::Host,
            Op::MoveToNetnsPid {
                link: v.clone(),
                pid: host_pid,
            },
        ),
        (
            host.clone(),
            Op::SetMaster {
                link: v.clone(),
                bridge: br,
            },
        ),
        (host.clone(), Op::SetUp { link: v }),
    ];
    ops.extend(netlab::inside_ops(
        &p,
        pod,
        pod_pid,
        &pods.peer_cidr(),
        Some(&pods.host_ip()),
    ));
    ops.push((
        pod.clone(),
        Op::SetMtu {
            link: "eth0".into(),
            mtu: POD_MTU,
        },
    ));
    Ok(ops)
}

/// Point the route to `dst` (the other host's container subnet) at `via`,
/// replacing whatever route to it there was.
pub fn reroute_ops(host: &Place, dst: &Subnet, via: Nexthop) -> Vec<(Place, Op)> {
    vec![
        (host.clone(), Op::DeleteRoute { dst: dst.cidr() }),
        (host.clone(), Op::AddRoute { dst: dst.cidr(), via }),
    ]
}

/// `sysctl -w net.ipv4.ip_forward=1` inside a host (its own namespace's switch).
pub fn forward_on(r: &mut StepReport, host: &mut NsChild, label: &str) -> anyhow::Result<bool> {
    let argv: Vec<String> = ["sysctl", "-w", "net.ipv4.ip_forward=1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = netlab::run_in(host, "/bin/busybox", &argv)?;
    r.ran(label, argv.join(" "), &out);
    // /proc/sys/net shows the network namespace of the thread that opens it.
    let now = wb_net::in_netns_of(host.pid(), || {
        Ok(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward"))
    })?
    .unwrap_or_default();
    Ok(now.trim() == "1")
}

/// What the underlay taps count, by the rule's comment.
pub const TAP_UDP: &str = "udp-8285";
pub const TAP_VXLAN: &str = "vxlan-8472";
pub const TAP_PLAIN: &str = "plain";

/// The nft ruleset of one host's tap: packets arriving on `eth0` from the
/// other host, counted by what they carry — Flannel's UDP port 8285, its
/// VXLAN port 8472, or the containers' own addresses (no encapsulation).
pub fn tap_ruleset(from: &str, to: &str, their_pods: &str, my_pods: &str) -> String {
    format!(
        "table ip {TAP_TABLE} {{\n  chain prerouting {{\n    type filter hook prerouting priority -300; policy accept;\n    iifname \"eth0\" ip saddr {from} ip daddr {to} udp dport 8285 counter comment \"{TAP_UDP}\"\n    iifname \"eth0\" ip saddr {from} ip daddr {to} udp dport 8472 counter comment \"{TAP_VXLAN}\"\n    iifname \"eth0\" ip saddr {their_pods} ip daddr {my_pods} counter comment \"{TAP_PLAIN}\"\n  }}\n}}\n"
    )
}

/// Run `nft ARGS` (with `stdin`) in the network namespace of `pid`: a
/// process forked from a thread that joined it.
fn nft_in(pid: i32, args: &[&str], stdin: &str) -> anyhow::Result<std::process::Output> {
    use std::process::{Command, Stdio};
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let input = stdin.to_string();
    let out = wb_net::in_netns_of(pid, move || {
        Ok((|| -> std::io::Result<std::process::Output> {
            let mut child = Command::new("nft")
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            child.stdin.take().expect("piped").write_all(input.as_bytes())?;
            child.wait_with_output()
        })())
    })?
    .context("run nft")?;
    Ok(out)
}

/// Install a host's tap (see [`tap_ruleset`]).
pub fn install_tap(r: &mut StepReport, pid: i32, label: &str, ruleset: &str) -> anyhow::Result<()> {
    let out = nft_in(pid, &["-f", "-"], ruleset)?;
    anyhow::ensure!(
        out.status.success(),
        "nft -f - in {label}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    r.say(label, format!("nft -f - <<'EOF'\n{}EOF", ruleset), "");
    Ok(())
}

/// The counters of a host's tap: comment → (packets, bytes).
pub fn tap_counters(pid: i32) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
    let out = nft_in(pid, &["list", "table", "ip", TAP_TABLE], "")?;
    anyhow::ensure!(
        out.status.success(),
        "nft list table ip {TAP_TABLE}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(parse_counters(&String::from_utf8_lossy(&out.stdout)))
}

/// Parse `nft list` output: every rule with `counter packets N bytes M` and
/// `comment "X"` gives X → (N, M).
pub fn parse_counters(text: &str) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |w: &str| words.iter().position(|x| *x == w).and_then(|i| words.get(i + 1));
        let (Some(p), Some(b)) = (
            after("packets").and_then(|s| s.parse().ok()),
            after("bytes").and_then(|s| s.parse().ok()),
        ) else {
            continue;
        };
        let Some(c) = line
            .split_once("comment \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(c, _)| c.to_string())
        else {
            continue;
        };
        out.insert(c, (p, b));
    }
    out
}

/// How many packets each tap counter grew by between two readings.
pub fn grown(before: &BTreeMap<String, (u64, u64)>, after: &BTreeMap<String, (u64, u64)>, key: &str) -> u64 {
    after
        .get(key)
        .map_or(0, |a| a.0)
        .saturating_sub(before.get(key).map_or(0, |b| b.0))
}

/// A burst of pings, each sent as soon as the last reply came (busybox
/// `ping -A`): the round trip is the path's latency.
pub fn ping_burst_argv(ip: &str, count: u32) -> Vec<String> {
    let secs = (10 + count / 10).to_string();
    ["ping", "-q", "-A", "-c", &count.to_string(), "-w", &secs, ip]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// `round-trip min/avg/max = 0.051/0.071/0.142 ms` → the average in ms.
pub fn rtt_avg_ms(out: &str) -> Option<f64> {
    let line = out.lines().find(|l| l.contains("min/avg/max"))?;
    let nums = line.split('=').nth(1)?.split_whitespace().next()?;
    nums.split('/').nth(1)?.parse().ok()
}

/// What one bulk transfer did.
#[derive(Debug, Clone, Default)]
pub struct Bulk {
    pub sent: u64,
    pub received: u64,
    pub elapsed: Duration,
}

/// Send `bytes` over TCP from the network namespace of `tx_pid` to
/// `rx_ip:port` in that of `rx_pid`: both sockets are opened by threads that
/// joined those namespaces (so they belong there), then used from here. Time
/// from the connect to the receiver's end of stream, bounded by `within`.
pub fn bulk_tcp(
    tx_pid: i32,
    rx_pid: i32,
    rx_ip: &str,
    port: u16,
    bytes: u64,
    within: Duration,
) -> anyhow::Result<Bulk> {
    let addr: SocketAddr = format!("{rx_ip}:{port}").parse().context("receiver address")?;
    let listener = wb_net::in_netns_of(rx_pid, move || Ok(TcpListener::bind(addr)))?
        .with_context(|| format!("bind {addr} in the receiver"))?;
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + within;
    let rx = std::thread::Builder::new()
        .name("wb-bulk-rx".into())
        .spawn(move || -> std::io::Result<u64> {
            let mut stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    Err(e) => return Err(e),
                }
            };
            stream.set_nonblocking(false)?;
            stream.set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(10)),
            ))?;
            let mut buf = vec![0u8; 1 << 16];
            let mut got = 0u64;
            loop {
                match stream.read(&mut buf)? {
                    0 => return Ok(got),
                    n => got += n as u64,
                }
            }
        })?;
    let start = Instant::now();
    let sent = (|| -> anyhow::Result<u64> {
        let mut s = wb_net::in_netns_of(tx_pid, move || Ok(TcpStream::connect_timeout(&addr, within)))?
            .with_context(|| format!("connect to {addr}"))?;
        s.set_write_timeout(Some(within))?;
        let chunk = vec![0x5au8; 1 << 16];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            s.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        s.shutdown(std::net::Shutdown::Write)?;
        Ok(bytes)
    })();
    let received = rx.join().map_err(|_| anyhow::anyhow!("the receiver thread panicked"))?;
    let elapsed = start.elapsed();
    let sent = sent?;
    let received = received.context("receive")?;
    Ok(Bulk {
        sent,
        received,
        elapsed,
    })
}

/// The transfer of median duration (pure).
pub fn median_bulk(mut runs: Vec<Bulk>) -> Option<Bulk> {
    runs.sort_by_key(|b| b.elapsed);
    let mid = runs.len() / 2;
    runs.into_iter().nth(mid)
}

/// One path's measurements.
#[derive(Debug, Clone)]
pub struct Measured {
    pub path: String,
    pub how: String,
    pub rtt_ms: Option<f64>,
    pub bulk: Bulk,
}

impl Measured {
    pub fn mb_per_s(&self) -> f64 {
        self.bulk.received as f64 / 1e6 / self.bulk.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The side-by-side table, ratios against the first row (pure).
pub fn render_table(rows: &[Measured]) -> String {
    let Some(base) = rows.first() else { return String::new() };
    let mut out = format!(
        "{:<14} {:<26} {:>12} {:>8} {:>10} {:>9} {:>8}\n",
        "path", "how", "ping rtt", "× rtt", "transfer", "MB/s", "× MB/s"
    );
    for m in rows {
        let rtt = m.rtt_ms.map_or("-".to_string(), |v| format!("{v:.3} ms"));
        let rr = match (m.rtt_ms, base.rtt_ms) {
            (Some(v), Some(b)) if b > 0.0 => format!("{:.2}", v / b),
            _ => "-".into(),
        };
        let ms = format!("{:.0} ms", m.bulk.elapsed.as_secs_f64() * 1000.0);
        let tr = if base.mb_per_s() > 0.0 {
            format!("{:.2}", m.mb_per_s() / base.mb_per_s())
        } else {
            "-".into()
        };
        out.push_str(&format!(
            "{:<14} {:<26} {:>12} {:>8} {:>10} {:>9.0} {:>8}\n",
            m.path,
            m.how,
            rtt,
            rr,
            ms,
            m.mb_per_s(),
            tr
        ));
    }
    out
}

/// Ping output: what a check quotes.
pub fn ping_summary(out: &RunOutput) -> String {
    out.stdout
        .lines()
        .filter(|l| l.contains("transmitted") || l.contains("min/avg"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nft_counters_by_comment() {
        let text = "table ip wbtap {\n\tchain prerouting {\n\t\ttype filter hook prerouting priority raw; policy accept;\n\t\tiifname \"eth0\" ip saddr 10.217.0.1 ip daddr 10.217.0.2 udp dport 8285 counter packets 7 bytes 812 comment \"udp-8285\"\n\t\tiifname \"eth0\" ip saddr 10.218.1.0/24 ip daddr 10.218.2.0/24 counter packets 0 bytes 0 comment \"plain\"\n\t\tcounter packets 3 bytes 9\n\t}\n}\n";
        let c = parse_counters(text);
        assert_eq!(c.len(), 2);
        assert_eq!(c["udp-8285"], (7, 812));
        assert_eq!(c["plain"], (0, 0));
        let mut after = c.clone();
        after.insert("udp-8285".into(), (10, 1000));
        assert_eq!(grown(&c, &after, TAP_UDP), 3);
        assert_eq!(grown(&c, &after, TAP_VXLAN), 0);
    }

    #[test]
    fn the_tap_counts_all_three_paths() {
        let r = tap_ruleset("10.217.0.1", "10.217.0.2", "10.218.1.0/24", "10.218.2.0/24");
        assert!(r.contains("udp dport 8285 counter comment \"udp-8285\""));
        assert!(r.contains("udp dport 8472 counter comment \"vxlan-8472\""));
        assert!(r.contains("ip saddr 10.218.1.0/24 ip daddr 10.218.2.0/24 counter comment \"plain\""));
    }

    #[test]
    fn reads_the_average_round_trip() {
        let out = "PING 10.218.2.2 (10.218.2.2): 56 data bytes\n\n--- 10.218.2.2 ping statistics ---\n200 packets transmitted, 200 packets received, 0% packet loss\nround-trip min/avg/max = 0.051/0.071/0.142 ms\n";
        assert_eq!(rtt_avg_ms(out), Some(0.071));
        assert_eq!(rtt_avg_ms("no reply"), None);
        assert_eq!(ping_burst_argv("10.0.0.1", 200)[..5], ["ping", "-q", "-A", "-c", "200"]);
    }

    #[test]
    fn the_table_gives_ratios_against_the_first_path() {
        let m = |path: &str, rtt: f64, ms: u64| Measured {
            path: path.into(),
            how: "x".into(),
            rtt_ms: Some(rtt),
            bulk: Bulk {
                sent: 8_000_000,
                received: 8_000_000,
                elapsed: Duration::from_millis(ms),
            },
        };
        let t = render_table(&[m("host-routes", 0.05, 10), m("udp-tunnel", 0.2, 80)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("1.00") && lines[1].contains("800"), "{t}");
        assert!(
            lines[2].contains("4.00") && lines[2].contains("0.12") && lines[2].contains("100"),
            "{t}"
        );
        assert!(render_table(&[]).is_empty());
        let b = |ms: u64| Bulk {
            sent: 1,
            received: 1,
            elapsed: Duration::from_millis(ms),
        };
        assert_eq!(
            median_bulk(vec![b(30), b(10), b(20)]).unwrap().elapsed,
            Duration::from_millis(20)
        );
        assert!(median_bulk(vec![]).is_none());
    }
}
