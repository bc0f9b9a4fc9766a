//! Root integration tests: real network namespaces, bridges and veth pairs.
//!
//! Each test makes its own network namespace by starting a `cat` process
//! that first calls `unshare(CLONE_NEWNET)`; the namespace lives as long as
//! that process (which also exits by itself when our end of its stdin pipe
//! closes, even if this test binary is killed). Host-side links carry the
//! `wb` prefix plus a random id and are deleted by guards, on panic too.
//! Packets only travel between those namespaces and our own bridge.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wb_net::*;

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        true
    } else {
        eprintln!("skipping: needs root (creates network namespaces and links)");
        false
    }
}

/// When root: a child in a new network namespace (see `ChildNs`), its PID and
/// a random id for the names of the links a test makes in it.
fn child_ns() -> Option<(ChildNs, i32, String)> {
    if !is_root() {
        return None;
    }
    let ns = ChildNs::new();
    let pid = ns.pid();
    Some((ns, pid, rand_id(6)))
}

/// A few random hex characters, for unique `wb...` names.
fn rand_id(n: usize) -> String {
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid").expect("read uuid");
    uuid.chars().filter(|c| c.is_ascii_hexdigit()).take(n).collect()
}

/// A process living in a fresh network namespace of its own.
struct ChildNs {
    child: Child,
}

impl ChildNs {
    fn new() -> ChildNs {
        let mut cmd = Command::new("cat");
        cmd.stdin(Stdio::piped()).stdout(Stdio::null());
        // SAFETY: only async-signal-safe syscalls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn cat in a new netns");
        let ns = ChildNs { child };
        // wait until the child has really unshared (exec done)
        for _ in 0..200 {
            if netns_id(ns.pid()) != netns_id(std::process::id() as i32) {
                return ns;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("child {} never got its own network namespace", ns.pid());
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

impl Drop for ChildNs {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), nix::sys::signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn netns_id(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn thread_netns() -> String {
    std::fs::read_link("/proc/thread-self/ns/net")
        .unwrap()
        .display()
        .to_string()
}

/// Deletes host links by name when dropped (also while unwinding a panic).
struct HostLinks(Vec<String>);

impl Drop for HostLinks {
    fn drop(&mut self) {
        for name in &self.0 {
            if let Err(e) = delete_link(name) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// Runs a command inside the child's netns (spawned from the helper thread
/// that joined it).
fn run_in(pid: i32, prog: &str, args: &[&str]) -> std::process::Output {
    let (prog, args): (String, Vec<String>) = (prog.into(), args.iter().map(|s| s.to_string()).collect());
    in_netns_of(pid, move || {
        Ok(Command::new(&prog).args(&args).output().expect("spawn"))
    })
    .unwrap()
}

fn ip_json(pid: i32, args: &[&str]) -> Value {
    let out = run_in(pid, "ip", args);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Host links and routes that are not `wb*` objects (which concurrent tests
/// of other crates may be creating right now).
fn host_view(s: &NetSnapshot) -> (Vec<Link>, Vec<Route>) {
    let links = s.links.iter().filter(|l| !l.name.starts_with("wb")).cloned().collect();
    let routes = s
        .routes
        .iter()
        .filter(|r| !r.dev.as_deref().unwrap_or("").starts_with("wb"))
        .cloned()
        .collect();
    (links, routes)
}

#[test]
fn fresh_netns_has_only_lo_down() {
    if !is_root() {
        return;
    }
    let ns = ChildNs::new();
    let before = thread_netns();
    let snap = snapshot_of_pid(ns.pid()).unwrap();
    assert_eq!(thread_netns(), before, "the calling thread must not change namespace");
    assert_eq!(snap.links.len(), 1, "{snap:#?}");
    let lo = &snap.links[0];
    assert_eq!(lo.name, "lo");
    assert_eq!(lo.state, "DOWN");
    assert!(!lo.up);
    assert_eq!(lo.kind, None);
    assert!(snap.addresses.is_empty(), "{:?}", snap.addresses);
    assert!(snap.routes.is_empty(), "{:?}", snap.routes);

    // bringing lo up gives it its addresses and makes it "UNKNOWN" (loopback
    // has no carrier to report)
    in_netns_of(ns.pid(), || set_up("lo")).unwrap();
    let snap = snapshot_of_pid(ns.pid()).unwrap();
    assert!(snap.links[0].up);
    assert_eq!(snap.links[0].state, "UNKNOWN");
    assert!(
        snap.addresses_of("lo")
            .any(|a| a.cidr == "127.0.0.1/8" && a.family == "inet"),
        "{snap:#?}"
    );
    assert_eq!(thread_netns(), before);
}

#[test]
fn missing_netns_is_a_clear_error() {
    let e = snapshot_of_pid(i32::MAX).unwrap_err();
    assert!(matches!(e, Error::OpenNetns { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("open /proc/{}/ns/net: no such file or directory", i32::MAX)
    );
}

/// The snapshot must agree with what iproute2 reports for the same
/// namespace (links, addresses, routes), after a few changes.
#[test]
fn snapshot_agrees_with_iproute2() {
    let Some((_ns, pid, id)) = child_ns() else {
        return;
    };
    let (br, va, vb) = (format!("wbbr{id}"), format!("wbva{id}"), format!("wbvb{id}"));
    in_netns_of(pid, || {
        set_up("lo")?;
        create_bridge(&br)?;
        create_veth(&va, &vb)?;
        set_master(&va, &br)?;
        add_address(&br, "10.77.1.1/24")?;
        add_address(&vb, "10.77.1.2/24")?;
        set_mtu(&vb, 1400)?;
        set_up(&br)?;
        set_up(&va)?;
        set_up(&vb)?;
        add_route("10.78.0.0/16", "10.77.1.1")?;
        add_route("10.79.0.0/16", &br)?;
        Ok(())
    })
    .unwrap();
    // Operational state follows carrier changes asynchronously (the kernel's
    // "linkwatch" work), and IPv6 link-local addresses appear with it: wait
    // until all three links are UP and two snapshots in a row agree.
    let mut snap = snapshot_of_pid(pid).unwrap();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let next = snapshot_of_pid(pid).unwrap();
        let all_up = [&br, &va, &vb]
            .iter()
            .all(|n| next.link(n).is_some_and(|l| l.state == "UP"));
        let settled = next == snap;
        snap = next;
        if all_up && settled {
            break;
        }
    }

    // links
    let links = ip_json(pid, &["-j", "-d", "link", "show"]);
    let links = links.as_array().unwrap();
    assert_eq!(links.len(), snap.links.len(), "{snap:#?}");
    for (j, l) in links.iter().zip(&snap.links) {
        assert_eq!(j["ifindex"].as_u64().unwrap() as u32, l.index);
        assert_eq!(j["ifname"].as_str().unwrap(), l.name);
        assert_eq!(j["operstate"].as_str().unwrap(), l.state, "{}", l.name);
        assert_eq!(j["mtu"].as_u64().unwrap() as u32, l.mtu, "{}", l.name);
        assert_eq!(j["address"].as_str(), l.mac.as_deref(), "{}", l.name);
        assert_eq!(j["master"].as_str(), l.master.as_deref(), "{}", l.name);
        assert_eq!(j["linkinfo"]["info_kind"].as_str(), l.kind.as_deref(), "{}", l.name);
        let up = j["flags"].as_array().unwrap().iter().any(|f| f == "UP");
        assert_eq!(up, l.up, "{}", l.name);
    }
    let va_link = snap.link(&va).unwrap();
    assert_eq!(va_link.kind.as_deref(), Some("veth"));
    assert_eq!(va_link.master.as_deref(), Some(br.as_str()));
    assert_eq!(
        va_link.peer_index,
        Some(snap.link(&vb).unwrap().index),
        "veth peer index"
    );
    assert_eq!(snap.link(&vb).unwrap().mtu, 1400);

    // addresses (both families)
    let mut want = BTreeSet::new();
    for j in ip_json(pid, &["-j", "addr", "show"]).as_array().unwrap() {
        for a in j["addr_info"].as_array().unwrap() {
            want.insert(format!(
                "{} {} {}/{}",
                j["ifname"].as_str().unwrap(),
                a["family"].as_str().unwrap(),
                a["local"].as_str().unwrap(),
                a["prefixlen"]
            ));
        }
    }
    let got: BTreeSet<String> = snap
        .addresses
        .iter()
        .map(|a| format!("{} {} {}", a.link, a.family, a.cidr))
        .collect();
    assert_eq!(got, want);
    assert!(got.contains(&format!("{br} inet 10.77.1.1/24")), "{got:?}");

    // IPv4 main-table routes
    let mut want = BTreeSet::new();
    for r in ip_json(pid, &["-j", "-4", "route", "show", "table", "main"])
        .as_array()
        .unwrap()
    {
        let mut dst = r["dst"].as_str().unwrap().to_string();
        if dst != "default" && !dst.contains('/') {
            dst.push_str("/32");
        }
        want.insert(format!(
            "{dst} via {} dev {} proto {} scope {}",
            r["gateway"].as_str().unwrap_or("-"),
            r["dev"].as_str().unwrap_or("-"),
            r["protocol"].as_str().unwrap_or("boot"),
            r["scope"].as_str().unwrap_or("global"),
        ));
    }
    let got: BTreeSet<String> = snap
        .routes
        .iter()
        .filter(|r| r.family == "inet")
        .map(|r| {
            format!(
                "{} via {} dev {} proto {} scope {}",
                r.dst,
                r.gateway.as_deref().unwrap_or("-"),
                r.dev.as_deref().unwrap_or("-"),
                r.protocol,
                r.scope
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(
        got.contains(&format!("10.78.0.0/16 via 10.77.1.1 dev {br} proto boot scope global")),
        "{got:?}"
    );
    assert!(
        got.contains(&format!("10.79.0.0/16 via - dev {br} proto boot scope link")),
        "{got:?}"
    );
    assert!(
        got.contains(&format!("10.77.1.0/24 via - dev {vb} proto kernel scope link")),
        "{got:?}"
    );
}

#[test]
fn errors_name_the_operation_and_deletes_of_missing_things_are_not_errors() {
    let Some((ns, _, id)) = child_ns() else {
        return;
    };
    let br = format!("wbbr{id}");
    let (br2, missing) = (br.clone(), format!("wbno{id}"));
    in_netns_of(ns.pid(), move || {
        let br = br2;
        create_bridge(&br)?;
        let e = create_bridge(&br).unwrap_err();
        assert!(e.is_exists(), "{e:?}");
        assert_eq!(e.to_string(), format!("netlink: create bridge {br}: file exists"));

        assert!(link_exists(&br)?);
        assert!(!link_exists(&missing)?);
        assert_eq!(link_index(&missing)?, None);

        let e = set_up(&missing).unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("netlink: set {missing} up: no such link {missing}")
        );
        let e = set_master("lo", &missing).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("netlink: set lo master {missing}: no such link {missing}")
        );

        // a bridge cannot be a port of a bridge: the kernel says why (extended ACK)
        let br_b = format!("{br}b");
        create_bridge(&br_b)?;
        let e = set_master(&br_b, &br).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ELOOP), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "netlink: set {br_b} master {br}: too many levels of symbolic links \
                 (kernel says: can not enslave a bridge to a bridge)"
            )
        );
        rename(&br_b, "wbrenamed0")?;
        assert!(link_exists("wbrenamed0")? && !link_exists(&br_b)?);
        assert!(delete_link("wbrenamed0")?);

        // a gateway that is not on any connected subnet
        let e = add_route_default("10.250.0.1").unwrap_err();
        assert!(
            e.to_string().starts_with("netlink: add route default via 10.250.0.1: "),
            "{e}"
        );

        assert!(!delete_link(&missing)?);
        assert!(!delete_route("10.251.0.0/16")?);
        add_address(&br, "10.252.0.1/24")?;
        assert!(delete_address(&br, "10.252.0.1/24")?);
        assert!(!delete_address(&br, "10.252.0.1/24")?);
        assert!(delete_link(&br)?);
        assert!(!delete_link(&br)?);
        assert!(!link_exists(&br)?);
        Ok(())
    })
    .unwrap();
    // none of that happened on the host
    assert!(!link_exists(&br).unwrap());
}

/// The full lesson scenario: host bridge + veth pair, one end moved into the
/// child netns and renamed eth0, addresses, default route, a real ping both
/// ways, then everything removed and the host back as it was.
#[test]
fn veth_bridge_between_host_and_netns() {
    if !is_root() {
        return;
    }
    let host_before = snapshot_current().unwrap();
    let ns = ChildNs::new();
    let pid = ns.pid();
    let id = rand_id(6);
    let (br, vh, vc) = (format!("wbbr{id}"), format!("wbvh{id}"), format!("wbvc{id}"));
    let guard = HostLinks(vec![vh.clone(), br.clone()]);

    // a 10.213.x.0/24 subnet the host does not use yet
    let start = u8::from_str_radix(&rand_id(2), 16).unwrap();
    let x = (0..=255u16)
        .map(|i| start.wrapping_add(i as u8))
        .find(|x| !routes_overlap(&host_before, &format!("10.213.{x}.0/24")))
        .expect("a free 10.213.x.0/24");
    let (br_ip, ns_ip) = (format!("10.213.{x}.1"), format!("10.213.{x}.2"));
    assert!(!routes_overlap(&host_before, &format!("{br_ip}/24")));

    create_bridge(&br).unwrap();
    create_veth(&vh, &vc).unwrap();
    set_master(&vh, &br).unwrap();
    move_to_netns_pid(&vc, pid).unwrap();
    assert!(!link_exists(&vc).unwrap(), "moved end must leave the host");
    add_address(&br, &format!("{br_ip}/24")).unwrap();
    set_up(&br).unwrap();
    set_up(&vh).unwrap();
    {
        let (vc, ns_ip, br_ip) = (vc.clone(), ns_ip.clone(), br_ip.clone());
        in_netns_of(pid, move || {
            rename(&vc, "eth0")?;
            set_up("lo")?;
            add_address("eth0", &format!("{ns_ip}/24"))?;
            set_up("eth0")?;
            add_route_default(&br_ip)
        })
        .unwrap();
    }

    // host side
    let host = snapshot_current().unwrap();
    let b = host.link(&br).expect("bridge on host");
    assert_eq!(b.kind.as_deref(), Some("bridge"));
    assert!(b.up);
    let h = host.link(&vh).expect("veth host end");
    assert_eq!(h.kind.as_deref(), Some("veth"));
    assert_eq!(h.master.as_deref(), Some(br.as_str()));
    assert!(h.up);
    assert!(h.peer_netns.is_some(), "peer lives in another netns: {h:?}");
    assert!(host.link(&vc).is_none());
    assert!(host.addresses.contains(&Address {
        link: br.clone(),
        cidr: format!("{br_ip}/24"),
        family: "inet".into()
    }));
    let r = host
        .routes_to(&format!("10.213.{x}.0/24"))
        .next()
        .expect("connected route on host");
    assert_eq!(
        (r.dev.as_deref(), r.protocol.as_str(), r.scope.as_str()),
        (Some(br.as_str()), "kernel", "link")
    );
    assert!(routes_overlap(&host, &format!("10.213.{x}.128/25")), "now taken");

    // namespace side
    let inside = snapshot_of_pid(pid).unwrap();
    let names: Vec<&str> = inside.links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lo", "eth0"]);
    let eth0 = inside.link("eth0").unwrap();
    assert_eq!(eth0.kind.as_deref(), Some("veth"));
    assert!(eth0.up);
    assert!(eth0.peer_netns.is_some());
    assert_eq!(eth0.peer_index, Some(h.index), "eth0's peer is the host end");
    assert!(inside.addresses.contains(&Address {
        link: "eth0".into(),
        cidr: format!("{ns_ip}/24"),
        family: "inet".into()
    }));
    let def = inside
        .routes_to("default")
        .find(|r| r.family == "inet")
        .expect("default route");
    assert_eq!(def.gateway.as_deref(), Some(br_ip.as_str()));
    assert_eq!(def.dev.as_deref(), Some("eth0"));
    assert_eq!(def.protocol, "boot");
    assert!(inside
        .routes_to(&format!("10.213.{x}.0/24"))
        .any(|r| r.dev.as_deref() == Some("eth0")));

    // real reachability, both ways (retry: the bridge port may need a moment)
    let ping_ok = |from_ns: bool, target: &str| {
        (0..10).any(|_| {
            let out = if from_ns {
                run_in(pid, "ping", &["-c1", "-W2", target])
            } else {
                Command::new("ping").args(["-c1", "-W2", target]).output().unwrap()
            };
            out.status.success() || {
                std::thread::sleep(Duration::from_millis(300));
                false
            }
        })
    };
    assert!(ping_ok(true, &br_ip), "ping {br_ip} from inside the netns failed");
    assert!(ping_ok(false, &ns_ip), "ping {ns_ip} from the host failed");

    // tear down: deleting the host end removes eth0 in the netns too
    assert!(delete_link(&vh).unwrap());
    let inside = snapshot_of_pid(pid).unwrap();
    assert!(inside.link("eth0").is_none(), "{inside:#?}");
    assert!(
        inside.routes.is_empty(),
        "routes via eth0 vanish with it: {:?}",
        inside.routes
    );
    assert!(delete_link(&br).unwrap());
    drop(guard);
    drop(ns);

    let host_after = snapshot_current().unwrap();
    for name in [&br, &vh, &vc] {
        assert!(host_after.link(name).is_none(), "{name} left behind");
    }
    assert_eq!(host_view(&host_after), host_view(&host_before), "host changed");
}

/// A VXLAN endpoint created through netlink carries the id, addresses,
/// lower device and UDP port that iproute2 reads back.
#[test]
fn vxlan_endpoint_matches_iproute2() {
    let Some((_ns, pid, id)) = child_ns() else {
        return;
    };
    let (va, vb) = (format!("wbxa{id}"), format!("wbxb{id}"));
    in_netns_of(pid, || {
        create_veth(&va, &vb)?;
        add_address(&va, "10.77.9.1/24")?;
        apply(&Op::CreateVxlan {
            name: "vxlan42".into(),
            vni: 42,
            local: "10.77.9.1".into(),
            remote: "10.77.9.2".into(),
            dev: va.clone(),
            port: 4789,
        })?;
        Ok(())
    })
    .unwrap();
    let snap = snapshot_of_pid(pid).unwrap();
    assert_eq!(snap.link("vxlan42").unwrap().kind.as_deref(), Some("vxlan"));
    let j = ip_json(pid, &["-j", "-d", "link", "show", "vxlan42"]);
    let data = &j[0]["linkinfo"]["info_data"];
    assert_eq!(data["id"], 42, "{j}");
    assert_eq!(data["remote"], "10.77.9.2", "{j}");
    assert_eq!(data["local"], "10.77.9.1", "{j}");
    assert_eq!(data["link"], va.as_str(), "{j}");
    assert_eq!(data["port"], 4789, "{j}");
    // IPv6 endpoints are refused before the kernel is asked.
    let e = in_netns_of(pid, || {
        apply(&Op::CreateVxlan {
            name: "vxlan43".into(),
            vni: 43,
            local: "fd00::1".into(),
            remote: "10.77.9.2".into(),
            dev: va.clone(),
            port: 4789,
        })
    })
    .unwrap_err();
    assert!(matches!(e, Error::InvalidAddress { .. }), "{e}");
}
