//! udp-tunnel: Flannel's original `udp` backend, with workbench as flanneld.
//!
//! A TUN device is a network interface whose other end is a file descriptor:
//! every packet the kernel routes to it can be `read(2)` by the process
//! holding the descriptor, and every packet that process `write(2)`s comes
//! out of the device as if received. Flannel's UDP backend put one
//! (`flannel0`) on each host, routed the other hosts' container subnets to
//! it, and let its daemon wrap each packet it read in a UDP datagram to the
//! other host's port 8285, where the other daemon wrote it into its own TUN.
//! Here two network namespaces play the hosts and threads of workbench play
//! the daemon; the lesson then measures this path against a kernel VXLAN
//! tunnel and plain routes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::host::Host;
use crate::kernel::child::NsChild;
use crate::kit::netlab::{self, Place, Subnet};
use crate::kit::twohost::{self, Measured};
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};
use crate::observe::Snapshot;
use wb_net::{Nexthop, Op};

pub const DEF: LessonDef = LessonDef::of::<UdpTunnel>(preflight).shell("in container a (ctr-a)").spots(&[("pods", Spot::Procs(4)), ("daemon", Spot::Procs(4))]);

/// flanneld's UDP port and its device, wb-prefixed.
pub const PORT: u16 = 8285;
pub const TUN: &str = "wbflannel0";
/// 1500 minus the outer IPv4 (20) and UDP (8) headers, as flanneld set it.
pub const TUN_MTU: u32 = 1472;
// 1472 + 20 (outer IPv4) + 8 (UDP) is the underlay's 1500, and the
// containers' MTU fits both tunnels (vxlan leaves 1450).
const _: () = assert!(TUN_MTU + 28 == 1500 && twohost::POD_MTU <= TUN_MTU && twohost::POD_MTU <= 1450);

/// The VXLAN path of the comparison: Flannel's vxlan backend numbers.
const VXLAN_DEV: &str = "wbflannel.1";
const VXLAN_PORT: u16 = 8472;
const VXLAN_NET: &str = "10.219.0.0/24";
/// The comparison's workload.
const PINGS: u32 = 500;
const BULK_BYTES: u64 = 8 << 20;
const BULK_PORT: u16 = 5001;
/// Transfers per path; the table shows the median.
const BULK_RUNS: usize = 3;

fn preflight(host: &Host, _opts: &LessonOptions) -> anyhow::Result<()> {
    host.require_root("clone(CLONE_NEWNET), netlink link changes and TUNSETIFF need CAP_SYS_ADMIN and CAP_NET_ADMIN")?;
    host.require_static_busybox()?;
    crate::host::features::require_link_kinds(&["veth", "bridge", "vxlan"])?;
    require_tun(std::path::Path::new("/dev/net/tun"))?;
    if crate::host::features::which("nft").is_none() {
        anyhow::bail!("nft is not installed (the lesson counts the underlay's packets with nft counters): apt-get install nftables");
    }
    Ok(())
}

/// The TUN driver answers on `/dev/net/tun`: opening it creates nothing (a
/// device appears only with TUNSETIFF).
fn require_tun(path: &std::path::Path) -> anyhow::Result<()> {
    match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "{} is missing: load the TUN driver (`modprobe tun`; CONFIG_TUN) or make its node (`mkdir -p /dev/net && mknod {} c 10 200`)",
            path.display(),
            path.display()
        ),
        Err(e) => anyhow::bail!("cannot open {} ({e}): load the TUN driver with `modprobe tun` (CONFIG_TUN)", path.display()),
    }
}

/// `ioctl(fd, TUNSETIFF, {name, IFF_TUN|IFF_NO_PI})` on a fresh
/// `/dev/net/tun` descriptor: the device appears in the network namespace
/// of the thread that opened the file, and lives as long as the descriptor.
fn open_tun(name: &str) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open("/dev/net/tun")?;
    // struct ifreq: 16 bytes of name, then a short of flags (in a 24-byte union).
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&((libc::IFF_TUN | libc::IFF_NO_PI) as i16).to_ne_bytes());
    // SAFETY: TUNSETIFF reads (and writes back) a struct ifreq, which ifr is large enough for.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF, ifr.as_mut_ptr()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// `iff:\twbflannel0` of `/proc/self/fdinfo/FD`: the device a TUN descriptor serves.
pub fn fdinfo_iff(text: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix("iff:")).map(|s| s.trim().to_string())
}

/// `/proc/PID/net/dev` → device → (rx packets, tx packets).
pub fn parse_net_dev(text: &str) -> BTreeMap<String, (u64, u64)> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let v: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if v.len() >= 10 {
            out.insert(name.trim().to_string(), (v[1], v[9]));
        }
    }
    out
}

/// What the daemon did in one direction.
#[derive(Default)]
struct Counters {
    wrapped: AtomicU64,
    wrapped_bytes: AtomicU64,
    unwrapped: AtomicU64,
    unwrapped_bytes: AtomicU64,
}

/// The user-space daemon: one thread per host, each polling its TUN and its
/// UDP socket, as flanneld's proxy loop did.
struct Daemon {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Daemon {
    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One host's loop: TUN → UDP to `peer` (wrap), UDP from `peer` → TUN (unwrap).
fn serve(tun: Arc<File>, udp: UdpSocket, peer: SocketAddr, c: Arc<Counters>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::SeqCst) && !crate::state::signals::caught() {
        let mut fds = [
            libc::pollfd { fd: tun.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: udp.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: fds is a valid array of two pollfd for the whole call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 100) };
        if n <= 0 {
            continue;
        }
        if fds[0].revents & libc::POLLIN != 0 {
            if let Ok(n) = (&*tun).read(&mut buf) {
                if n > 0 && udp.send_to(&buf[..n], peer).is_ok() {
                    c.wrapped.fetch_add(1, Ordering::Relaxed);
                    c.wrapped_bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
        if fds[1].revents & libc::POLLIN != 0 {
            if let Ok((n, from)) = udp.recv_from(&mut buf) {
                if from.ip() == peer.ip() && n > 0 && (&*tun).write(&buf[..n]).is_ok() {
                    c.unwrapped.fetch_add(1, Ordering::Relaxed);
                    c.unwrapped_bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
    }
}

#[derive(Default)]
struct UdpTunnel {
    a: Option<NsChild>,
    b: Option<NsChild>,
    ca: Option<NsChild>,
    cb: Option<NsChild>,
    underlay: Option<Subnet>,
    pods: Option<(Subnet, Subnet)>,
    /// The TUN descriptors of host-a and host-b: held by workbench, so the
    /// devices live until the run ends (or the process dies).
    tuns: Vec<Arc<File>>,
    counters: [Arc<Counters>; 2],
    daemon: Option<Daemon>,
}

impl Drop for UdpTunnel {
    fn drop(&mut self) {
        // Stop the threads before the descriptors they read close.
        self.daemon.take();
        self.tuns.clear();
    }
}

fn sub(s: &str) -> Subnet {
    netlab::parse_subnet(s).expect("a constant subnet")
}

impl UdpTunnel {
    fn hosts(&self) -> anyhow::Result<(&NsChild, &NsChild)> {
        self.a.as_ref().zip(self.b.as_ref()).ok_or_else(|| anyhow::anyhow!("no hosts: the hosts step did not run"))
    }
    fn places(&self) -> anyhow::Result<(Place, Place)> {
        let (a, b) = self.hosts()?;
        Ok((twohost::place(a, "host-a"), twohost::place(b, "host-b")))
    }
    fn pods(&self) -> anyhow::Result<(Subnet, Subnet)> {
        self.pods.ok_or_else(|| anyhow::anyhow!("no container subnets: the pods step did not run"))
    }
    fn underlay(&self) -> anyhow::Result<Subnet> {
        self.underlay.ok_or_else(|| anyhow::anyhow!("no underlay: the hosts step did not run"))
    }

    /// Both hosts' networks, before and after `ops`.
    fn wire(&self, r: &mut StepReport, label: &str, ops: &[(Place, Op)], with_pods: bool) -> anyhow::Result<()> {
        let (a, b) = self.hosts()?;
        let mut sides = vec![("host-a", a.pid()), ("host-b", b.pid())];
        if with_pods {
            if let (Some(ca), Some(cb)) = (&self.ca, &self.cb) {
                sides.extend([("ctr-a", ca.pid()), ("ctr-b", cb.pid())]);
            }
        }
        let before = netlab::lab_snapshot(label, &sides)?;
        netlab::apply_ops(r, ops)?;
        r.observe(before, netlab::lab_snapshot(label, &sides)?);
        Ok(())
    }

    /// The daemon's counters and the hosts' taps, as facts.
    fn facts(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut f = BTreeMap::new();
        for (i, name) in ["host-a", "host-b"].iter().enumerate() {
            let c = &self.counters[i];
            f.insert(format!("daemon {name}: wrapped TUN → UDP"), format!("{} packets, {} bytes", c.wrapped.load(Ordering::Relaxed), c.wrapped_bytes.load(Ordering::Relaxed)));
            f.insert(format!("daemon {name}: unwrapped UDP → TUN"), format!("{} packets, {} bytes", c.unwrapped.load(Ordering::Relaxed), c.unwrapped_bytes.load(Ordering::Relaxed)));
        }
        let (a, b) = self.hosts()?;
        for (name, pid) in [("host-a", a.pid()), ("host-b", b.pid())] {
            for (k, (p, by)) in twohost::tap_counters(pid)? {
                f.insert(format!("{name} nft {} counter {k}", twohost::TAP_TABLE), format!("{p} packets, {by} bytes"));
            }
        }
        f.insert("daemon".into(), if self.daemon.is_some() { "running (2 threads)".into() } else { "stopped".into() });
        Ok(f)
    }

    fn snap(&self, label: &str) -> anyhow::Result<Snapshot> {
        Ok(Snapshot { label: label.into(), facts: self.facts()?, ..Default::default() })
    }

    fn wrapped(&self) -> [u64; 2] {
        [self.counters[0].wrapped.load(Ordering::Relaxed), self.counters[1].wrapped.load(Ordering::Relaxed)]
    }

    /// Start the daemon: a UDP socket bound to each host's underlay address
    /// (opened by a thread inside the host's namespace), one thread per host.
    fn start_daemon(&mut self, r: &mut StepReport) -> anyhow::Result<()> {
        anyhow::ensure!(self.tuns.len() == 2, "no TUN devices: the tun step did not run");
        let u = self.underlay()?;
        let (a, b) = self.hosts()?;
        let ends = [(a.pid(), u.host_ip(), u.peer_ip(), "host-a"), (b.pid(), u.peer_ip(), u.host_ip(), "host-b")];
        // Both sockets first: a thread that started before the other host's
        // socket existed would send its first datagrams to a closed port.
        let mut socks = vec![];
        for (pid, me, peer, label) in ends {
            let bind: SocketAddr = format!("{me}:{PORT}").parse()?;
            let peer: SocketAddr = format!("{peer}:{PORT}").parse()?;
            let sock = wb_net::in_netns_of(pid, move || Ok(UdpSocket::bind(bind)))?.map_err(|e| anyhow::anyhow!("bind udp {bind} in {label}: {e}"))?;
            sock.set_nonblocking(true)?;
            r.say(label, format!("socket(AF_INET, SOCK_DGRAM) + bind({bind}); poll([{TUN} fd, udp fd]) loop: read(tun) → sendto({peer}), recvfrom() → write(tun)"), "");
            socks.push((sock, peer, label));
        }
        // Held by the lesson before any thread starts: whatever fails next, Drop stops what did start.
        let daemon = self.daemon.insert(Daemon { stop: Arc::new(AtomicBool::new(false)), threads: vec![] });
        for (i, (sock, peer, label)) in socks.into_iter().enumerate() {
            let (tun, c, st) = (self.tuns[i].clone(), self.counters[i].clone(), daemon.stop.clone());
            daemon.threads.push(std::thread::Builder::new().name(format!("wb-flanneld-{label}")).spawn(move || serve(tun, sock, peer, c, st))?);
        }
        Ok(())
    }

    fn ping_pods(&mut self, r: &mut StepReport) -> anyhow::Result<u32> {
        let (_, pb) = self.pods()?;
        let ca = self.ca.as_mut().ok_or_else(|| anyhow::anyhow!("no container a"))?;
        let argv = netlab::ping_argv(&pb.peer_ip());
        let out = netlab::run_in(ca, "/bin/busybox", &argv)?;
        r.ran("ctr-a", argv.join(" "), &out);
        Ok(netlab::ping_received(&out.stdout))
    }

    /// Point both hosts' routes to the other's container subnet at `via`.
    fn route_both(&self, r: &mut StepReport, via: [Nexthop; 2]) -> anyhow::Result<()> {
        let (pa, pb) = self.places()?;
        let (sa, sb) = self.pods()?;
        let [va, vb] = via;
        let mut ops = twohost::reroute_ops(&pa, &sb, va);
        ops.extend(twohost::reroute_ops(&pb, &sa, vb));
        netlab::apply_ops(r, &ops)
    }

    /// Ping burst and bulk transfer between the containers over the current path.
    fn measure(&mut self, r: &mut StepReport, path: &str, how: &str, tap: &str) -> anyhow::Result<Measured> {
        let (_, pb) = self.pods()?;
        let (b_pid, a_pid) = (self.b.as_ref().map(|c| c.pid()).unwrap_or(0), self.a.as_ref().map(|c| c.pid()).unwrap_or(0));
        let taps_before = [twohost::tap_counters(a_pid)?, twohost::tap_counters(b_pid)?];
        let wrapped_before = self.wrapped();
        let ca = self.ca.as_mut().ok_or_else(|| anyhow::anyhow!("no container a"))?;
        let argv = twohost::ping_burst_argv(&pb.peer_ip(), PINGS);
        let ping = netlab::run_in(ca, "/bin/busybox", &argv)?;
        r.ran("ctr-a", argv.join(" "), &ping);
        let (tx, rx) = (ca.pid(), self.cb.as_ref().map(|c| c.pid()).unwrap_or(0));
        let mut runs = vec![];
        for i in 0..BULK_RUNS {
            let port = BULK_PORT + i as u16;
            let bulk = twohost::bulk_tcp(tx, rx, &pb.peer_ip(), port, BULK_BYTES, Duration::from_secs(120))?;
            r.say("ctr-a → ctr-b", format!("TCP {BULK_BYTES} bytes to {}:{port}", pb.peer_ip()), format!("{} bytes received in {:.1} ms", bulk.received, bulk.elapsed.as_secs_f64() * 1000.0));
            runs.push(bulk);
        }
        let complete = runs.iter().filter(|b| b.sent == BULK_BYTES && b.received == BULK_BYTES).count();
        let bulk = twohost::median_bulk(runs).ok_or_else(|| anyhow::anyhow!("no transfer ran"))?;
        let taps_after = [twohost::tap_counters(a_pid)?, twohost::tap_counters(b_pid)?];
        let wrapped_after = self.wrapped();
        let n = netlab::ping_received(&ping.stdout);
        r.check(format!("{path}: ping burst ctr-a → ctr-b"), format!("at least {} of {PINGS} replies", PINGS * 9 / 10), twohost::ping_summary(&ping), n >= PINGS * 9 / 10);
        r.check(format!("{path}: transfers in which ctr-b received all {BULK_BYTES} bytes ctr-a sent"), BULK_RUNS.to_string(), complete.to_string(), complete == BULK_RUNS);
        // Which way the packets went: only this path's tap counter grows, on both hosts.
        let grew: Vec<String> = [twohost::TAP_UDP, twohost::TAP_VXLAN, twohost::TAP_PLAIN]
            .iter()
            .filter(|k| twohost::grown(&taps_before[1], &taps_after[1], k) > 0 && twohost::grown(&taps_before[0], &taps_after[0], k) > 0)
            .map(|k| k.to_string())
            .collect();
        r.check(format!("{path}: the tap counters that grew on both hosts' underlay"), tap.to_string(), if grew.is_empty() { "none".into() } else { grew.join(", ") }, grew == [tap]);
        let daemon_moved = wrapped_after[0] > wrapped_before[0] || wrapped_after[1] > wrapped_before[1];
        let by_daemon = tap == twohost::TAP_UDP;
        r.check(
            format!("{path}: the daemon wrapped packets"),
            if by_daemon { "yes, both ways" } else { "none (the kernel carried them)" },
            format!("{} a→b, {} b→a", wrapped_after[0] - wrapped_before[0], wrapped_after[1] - wrapped_before[1]),
            if by_daemon { wrapped_after[0] > wrapped_before[0] && wrapped_after[1] > wrapped_before[1] } else { !daemon_moved },
        );
        Ok(Measured { path: path.into(), how: how.into(), rtt_ms: twohost::rtt_avg_ms(&ping.stdout), bulk })
    }
}

impl Lesson for UdpTunnel {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        match step {
            "hosts" => {
                let underlay = sub(twohost::UNDERLAY);
                self.underlay = Some(underlay);
                let (a, b) = twohost::start_hosts(cx, r)?;
                self.a = Some(a);
                self.b = Some(b);
                let ops = {
                    let (a, b) = self.hosts()?;
                    twohost::underlay_ops(&cx.run_id, a, b, &underlay)?
                };
                let (ap, bp) = self.hosts().map(|(a, b)| (a.pid(), b.pid()))?;
                let me = crate::kernel::proc::self_pid();
                let sides = [("host", me), ("host-a", ap), ("host-b", bp)];
                let before = netlab::lab_snapshot("host + host-a + host-b", &sides)?;
                netlab::apply_ops(r, &ops)?;
                netlab::wait_oper_up(ap, "eth0", Duration::from_secs(5))?;
                netlab::wait_oper_up(bp, "eth0", Duration::from_secs(5))?;
                let (sa, sb) = (sub(twohost::PODS[0]), sub(twohost::PODS[1]));
                twohost::install_tap(r, ap, "host-a", &twohost::tap_ruleset(&underlay.peer_ip(), &underlay.host_ip(), &sb.cidr(), &sa.cidr()))?;
                twohost::install_tap(r, bp, "host-b", &twohost::tap_ruleset(&underlay.host_ip(), &underlay.peer_ip(), &sa.cidr(), &sb.cidr()))?;
                r.observe(before, netlab::lab_snapshot("host + host-a + host-b", &sides)?);
                let inodes = [netlab::net_inode(me), netlab::net_inode(ap), netlab::net_inode(bp)];
                r.check("three different network namespaces (workbench, host-a, host-b)", "3", inodes.iter().collect::<std::collections::BTreeSet<_>>().len().to_string(), inodes[0] != inodes[1] && inodes[1] != inodes[2] && inodes[0] != inodes[2]);
                let a = self.a.as_mut().ok_or_else(|| anyhow::anyhow!("no host-a"))?;
                let argv = netlab::ping_argv(&underlay.peer_ip());
                let ping = netlab::run_in(a, "/bin/busybox", &argv)?;
                r.ran("host-a", argv.join(" "), &ping);
                let n = netlab::ping_received(&ping.stdout);
                r.check(format!("host-a → host-b on the underlay ({})", underlay.peer_ip()), "replies", format!("{n} of 2 replies"), n >= 1);
                let taps = twohost::tap_counters(bp)?;
                r.check("host-b's tap: three counters, all at zero", "udp-8285, vxlan-8472, plain at 0", format!("{taps:?}"), taps.len() == 3 && taps.values().all(|v| v.0 == 0));
            }
            "pods" => {
                let (sa, sb) = (sub(twohost::PODS[0]), sub(twohost::PODS[1]));
                self.pods = Some((sa, sb));
                self.ca = Some(twohost::start_pod(cx, r, "ctr-a")?);
                self.cb = Some(twohost::start_pod(cx, r, "ctr-b")?);
                let (pa, pb) = self.places()?;
                let (ap, bp) = self.hosts().map(|(a, b)| (a.pid(), b.pid()))?;
                let (ca, cb) = (self.ca.as_ref().map(|c| c.pid()).unwrap_or(0), self.cb.as_ref().map(|c| c.pid()).unwrap_or(0));
                let mut ops = twohost::pod_ops(&cx.run_id, "a", &pa, ap, &Place::Ns { pid: ca, label: "ctr-a".into() }, ca, &sa)?;
                ops.extend(twohost::pod_ops(&cx.run_id, "b", &pb, bp, &Place::Ns { pid: cb, label: "ctr-b".into() }, cb, &sb)?);
                self.wire(r, "host-a + host-b + ctr-a + ctr-b", &ops, true)?;
                netlab::wait_oper_up(ca, "eth0", Duration::from_secs(5))?;
                netlab::wait_oper_up(cb, "eth0", Duration::from_secs(5))?;
                for (label, child) in [("host-a", &mut self.a), ("host-b", &mut self.b)] {
                    let c = child.as_mut().ok_or_else(|| anyhow::anyhow!("no {label}"))?;
                    let on = twohost::forward_on(r, c, label)?;
                    r.check(format!("{label}: net.ipv4.ip_forward (its own namespace's)"), "1", if on { "1" } else { "0" }, on);
                }
                let ca_child = self.ca.as_mut().ok_or_else(|| anyhow::anyhow!("no container a"))?;
                let argv = netlab::ping_argv(&sa.host_ip());
                let out = netlab::run_in(ca_child, "/bin/busybox", &argv)?;
                r.ran("ctr-a", argv.join(" "), &out);
                let n = netlab::ping_received(&out.stdout);
                r.check(format!("ctr-a → its bridge {} on host-a", sa.host_ip()), "replies", format!("{n} of 2 replies"), n >= 1);
                let n = self.ping_pods(r)?;
                r.check(format!("ctr-a → ctr-b ({}) before any tunnel", sb.peer_ip()), "no reply: host-a has no route to host-b's containers", format!("{n} of 2 replies"), n == 0);
            }
            "tun" => {
                let (pa, pb) = self.places()?;
                let (sa, sb) = self.pods()?;
                let (ap, bp) = self.hosts().map(|(a, b)| (a.pid(), b.pid()))?;
                let sides = [("host-a", ap), ("host-b", bp)];
                let before = netlab::lab_snapshot("host-a + host-b", &sides)?;
                for (pid, label) in [(ap, "host-a"), (bp, "host-b")] {
                    let f = wb_net::in_netns_of(pid, || Ok(open_tun(TUN)))?.map_err(|e| anyhow::anyhow!("TUNSETIFF {TUN} in {label}: {e}"))?;
                    r.say(label, format!("fd = open(\"/dev/net/tun\", O_RDWR); ioctl(fd, TUNSETIFF, {{ifr_name=\"{TUN}\", ifr_flags=IFF_TUN|IFF_NO_PI}})   # ip tuntap add dev {TUN} mode tun"), format!("fd {} of workbench (pid {})", f.as_raw_fd(), std::process::id()));
                    self.tuns.push(Arc::new(f));
                }
                let ops = vec![
                    (pa.clone(), Op::SetMtu { link: TUN.into(), mtu: TUN_MTU }),
                    (pa.clone(), Op::SetUp { link: TUN.into() }),
                    (pa, Op::AddRoute { dst: sb.cidr(), via: Nexthop::Dev(TUN.into()) }),
                    (pb.clone(), Op::SetMtu { link: TUN.into(), mtu: TUN_MTU }),
                    (pb.clone(), Op::SetUp { link: TUN.into() }),
                    (pb, Op::AddRoute { dst: sa.cidr(), via: Nexthop::Dev(TUN.into()) }),
                ];
                netlab::apply_ops(r, &ops)?;
                r.observe(before, netlab::lab_snapshot("host-a + host-b", &sides)?);
                for (i, (pid, label, other)) in [(ap, "host-a", sb), (bp, "host-b", sa)].into_iter().enumerate() {
                    let snap = wb_net::snapshot_of_pid(pid)?;
                    let l = snap.link(TUN);
                    r.check(format!("{label}: {TUN} kind and MTU"), format!("tun, mtu {TUN_MTU}"), l.map(|l| format!("{}, mtu {}", l.kind.clone().unwrap_or_default(), l.mtu)).unwrap_or_else(|| "absent".into()), l.is_some_and(|l| l.kind.as_deref() == Some("tun") && l.mtu == TUN_MTU));
                    let route = snap.routes_to(&other.cidr()).any(|x| x.dev.as_deref() == Some(TUN));
                    r.check(format!("{label}: route to the other host's containers"), format!("{} dev {TUN}", other.cidr()), if route { format!("{} dev {TUN}", other.cidr()) } else { "absent".into() }, route);
                    let fd = self.tuns[i].as_raw_fd();
                    let iff = fdinfo_iff(&std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default());
                    r.check(format!("/proc/{}/fdinfo/{fd} (workbench's descriptor for {label}'s device)", std::process::id()), format!("iff: {TUN}"), iff.clone().map(|i| format!("iff: {i}")).unwrap_or_else(|| "no iff line".into()), iff.as_deref() == Some(TUN));
                }
                let taps_before = twohost::tap_counters(bp)?;
                let n = self.ping_pods(r)?;
                let taps_after = twohost::tap_counters(bp)?;
                r.check(format!("ctr-a → ctr-b ({}) with nobody reading the TUN", sb.peer_ip()), "no reply", format!("{n} of 2 replies"), n == 0);
                let udp = twohost::grown(&taps_before, &taps_after, twohost::TAP_UDP);
                r.check("UDP 8285 datagrams host-b's underlay received", "0 (no daemon wraps the packets)", udp.to_string(), udp == 0);
            }
            "daemon" => {
                let before = self.snap("daemon + taps")?;
                self.start_daemon(r)?;
                let (_, bp) = self.hosts().map(|(a, b)| (a.pid(), b.pid()))?;
                let (ap, _) = self.hosts().map(|(a, b)| (a.pid(), b.pid()))?;
                let (ta, tb) = (twohost::tap_counters(ap)?, twohost::tap_counters(bp)?);
                let w0 = self.wrapped();
                let n = self.ping_pods(r)?;
                let w1 = self.wrapped();
                let (ta2, tb2) = (twohost::tap_counters(ap)?, twohost::tap_counters(bp)?);
                r.observe(before, self.snap("daemon + taps")?);
                let (_, sb) = self.pods()?;
                r.check(format!("ctr-a → ctr-b ({}) through the daemon", sb.peer_ip()), "replies", format!("{n} of 2 replies"), n >= 1);
                let n = n as u64;
                r.check("packets the daemon wrapped on host-a (echo requests) / on host-b (replies)", format!("at least {n} / {n}"), format!("{} / {}", w1[0] - w0[0], w1[1] - w0[1]), n >= 1 && w1[0] - w0[0] >= n && w1[1] - w0[1] >= n);
                let (gb, ga) = (twohost::grown(&tb, &tb2, twohost::TAP_UDP), twohost::grown(&ta, &ta2, twohost::TAP_UDP));
                r.check("UDP datagrams to port 8285 on the underlay, counted by nft in host-b / host-a", format!("at least {n} / {n}"), format!("{gb} / {ga}"), n >= 1 && gb >= n && ga >= n);
                let plain = twohost::grown(&tb, &tb2, twohost::TAP_PLAIN);
                r.check("packets with container addresses on host-b's underlay", "0 (all inside UDP)", plain.to_string(), plain == 0);
            }
            "stop" => {
                let before = self.snap("daemon + taps")?;
                let (ap, bp) = self.hosts().map(|(a, b)| (a.pid(), b.pid()))?;
                let dev_before = parse_net_dev(&std::fs::read_to_string(format!("/proc/{ap}/net/dev")).unwrap_or_default());
                let mut d = self.daemon.take().ok_or_else(|| anyhow::anyhow!("the daemon is not running: the daemon step did not run"))?;
                d.halt();
                r.say("workbench", "stop the daemon threads (join); the UDP sockets close, the TUN descriptors stay open", "");
                let tb = twohost::tap_counters(bp)?;
                let n = self.ping_pods(r)?;
                let tb2 = twohost::tap_counters(bp)?;
                r.observe(before, self.snap("daemon + taps")?);
                r.check("ctr-a → ctr-b with the daemon stopped", "no reply", format!("{n} of 2 replies"), n == 0);
                let gb = twohost::grown(&tb, &tb2, twohost::TAP_UDP);
                r.check("UDP 8285 datagrams host-b's underlay received meanwhile", "0", gb.to_string(), gb == 0);
                let snap = wb_net::snapshot_of_pid(ap)?;
                let (_, sb) = self.pods()?;
                let still = snap.link(TUN).is_some() && snap.routes_to(&sb.cidr()).any(|x| x.dev.as_deref() == Some(TUN));
                r.check(format!("host-a: {TUN} and its route"), "still there (the kernel routes into the TUN; nobody reads it)", if still { "present" } else { "gone" }, still);
                let dev_after = parse_net_dev(&std::fs::read_to_string(format!("/proc/{ap}/net/dev")).unwrap_or_default());
                let tx = |m: &BTreeMap<String, (u64, u64)>| m.get(TUN).map_or(0, |v| v.1);
                r.say("host-a", format!("grep {TUN} /proc/{ap}/net/dev   # TX packets: counted only when read"), format!("TX {} → {}", tx(&dev_before), tx(&dev_after)));
            }
            "compare" => {
                let u = self.underlay()?;
                let (pa, pb) = self.places()?;
                let vnet = sub(VXLAN_NET);
                let mut rows = vec![];
                // 1. host-routes: the other host's containers via its underlay address.
                self.route_both(r, [Nexthop::Gateway(u.peer_ip()), Nexthop::Gateway(u.host_ip())])?;
                rows.push(self.measure(r, "host-routes", "none: plain routes", twohost::TAP_PLAIN)?);
                // 2. vxlan: a kernel tunnel device on each host, Flannel's port.
                let vx = |local: String, remote: String| Op::CreateVxlan { name: VXLAN_DEV.into(), vni: 1, local, remote, dev: "eth0".into(), port: VXLAN_PORT };
                let ops = vec![
                    (pa.clone(), vx(u.host_ip(), u.peer_ip())),
                    (pa.clone(), Op::AddAddress { link: VXLAN_DEV.into(), cidr: vnet.host_cidr() }),
                    (pa.clone(), Op::SetUp { link: VXLAN_DEV.into() }),
                    (pb.clone(), vx(u.peer_ip(), u.host_ip())),
                    (pb.clone(), Op::AddAddress { link: VXLAN_DEV.into(), cidr: vnet.peer_cidr() }),
                    (pb.clone(), Op::SetUp { link: VXLAN_DEV.into() }),
                ];
                netlab::apply_ops(r, &ops)?;
                self.route_both(r, [Nexthop::Gateway(vnet.peer_ip()), Nexthop::Gateway(vnet.host_ip())])?;
                rows.push(self.measure(r, "vxlan-overlay", "kernel: vxlan, UDP 8472", twohost::TAP_VXLAN)?);
                // Gone before the next path, so no late neighbour probe of it blurs the taps.
                netlab::apply_ops(r, &[(pa.clone(), Op::DeleteLink { name: VXLAN_DEV.into() }), (pb.clone(), Op::DeleteLink { name: VXLAN_DEV.into() })])?;
                // 3. udp-tunnel: back to the TUN, with the daemon running.
                self.route_both(r, [Nexthop::Dev(TUN.into()), Nexthop::Dev(TUN.into())])?;
                let before = self.snap("daemon + taps")?;
                self.start_daemon(r)?;
                rows.push(self.measure(r, "udp-tunnel", "user space: TUN, UDP 8285", twohost::TAP_UDP)?);
                r.observe(before, self.snap("daemon + taps")?);
                r.say("workbench", format!("{PINGS} pings (ping -A) and the median of {BULK_RUNS} TCP transfers of {} MiB per path, ratios against host-routes", BULK_BYTES >> 20), twohost::render_table(&rows));
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        crate::kit::sh_in(self.ca.as_mut().ok_or_else(|| anyhow::anyhow!("the lesson did not start its containers"))?, cx.lesson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_device_of_a_tun_descriptor() {
        let text = "pos:\t0\nflags:\t02004002\nmnt_id:\t25\nino:\t1093\niff:\twbflannel0\n";
        assert_eq!(fdinfo_iff(text).as_deref(), Some("wbflannel0"));
        assert_eq!(fdinfo_iff("pos:\t0\nflags:\t02\n"), None);
    }

    #[test]
    fn parses_proc_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\nwbflannel0:     840      10    0    0    0     0          0         0     1260      15    0    3    0     0       0          0\n";
        let m = parse_net_dev(text);
        assert_eq!(m["wbflannel0"], (10, 15));
        assert_eq!(m["lo"], (0, 0));
    }

    #[test]
    fn a_missing_tun_node_is_refused_with_the_remedy() {
        let e = require_tun(std::path::Path::new("/nonexistent/net/tun")).unwrap_err().to_string();
        assert!(e.contains("modprobe tun") && e.contains("mknod"), "{e}");
    }

    /// Threads of this process named like the daemon's, and descriptors of
    /// this process open on /dev/net/tun.
    fn daemon_leftovers() -> (Vec<String>, Vec<String>) {
        let names = |dir: &str| -> Vec<String> {
            std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
        };
        let threads = names("/proc/self/task")
            .into_iter()
            .filter_map(|t| std::fs::read_to_string(format!("/proc/self/task/{t}/comm")).ok())
            .map(|c| c.trim().to_string())
            .filter(|c| c.starts_with("wb-flanneld"))
            .collect();
        let tuns = names("/proc/self/fd")
            .into_iter()
            .filter(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|p| p == std::path::Path::new("/dev/net/tun")))
            .collect();
        (threads, tuns)
    }

    /// The whole lesson as root, through the runner (`--json`): every step
    /// passes, the daemon's threads are gone and its TUN descriptors closed,
    /// and no state file is left. This is how the pure cgroup v2 VM runs it
    /// (`scripts/v2-vm --exe 'workbench (unit tests)' --only udp_tunnel`);
    /// on the shared machine run it under `flock /tmp/wb-root.lock`.
    #[test]
    fn the_lesson_passes_and_the_daemon_is_gone_as_root() {
        let _serial = crate::kit::root_test_lock();
        let host = Host::probe();
        if !host.is_root || host.busybox_static.is_none() {
            eprintln!("skipped: the lesson needs root and a static busybox");
            return;
        }
        preflight(&host, &LessonOptions::default()).expect("preflight (TUN driver, nft, vxlan) on a host that runs the lessons");
        let def = crate::lessons::find("udp-tunnel").expect("the lesson is registered");
        let summary = crate::lesson::runner::run(def, &crate::lesson::runner::RunOptions::JSON, LessonOptions::default()).expect("the lesson runs");
        assert_eq!((summary.steps_passed, summary.steps), (def.steps.len(), def.steps.len()), "{summary:?}");
        assert!(summary.pass && summary.cleanup_problems.is_empty(), "{summary:?}");
        let state_file = crate::state::run_root().join(format!("runs/{}.json", summary.run_id));
        assert!(!state_file.exists(), "{} is left", state_file.display());
        let (threads, tuns) = daemon_leftovers();
        assert!(threads.is_empty(), "daemon threads are left: {threads:?}");
        assert!(tuns.is_empty(), "TUN descriptors are left open: {tuns:?}");
    }
}
