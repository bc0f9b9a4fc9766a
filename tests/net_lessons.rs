//! Root integration tests of the network lessons (veth-bridge, nat-port-map,
//! net-modes): real pings and HTTP requests through the bridge and the port
//! map, read from the lessons' JSON, and a host — links, routes, firewall
//! rules, sysctls — identical afterwards. Bad options fail before anything
//! is created.

mod common;

use common::{assert_all_passed, keys_with, row, run_passing, step, transcript};
use serde_json::Value;
use workbench::state::Resource;

/// The output of the first command run at `place` whose text contains `needle`.
fn output_of(step: &Value, place: &str, needle: &str) -> String {
    transcript(step)
        .into_iter()
        .find(|(p, c, _)| p == place && c.contains(needle))
        .map(|(_, _, o)| o)
        .unwrap_or_else(|| {
            panic!(
                "no `{needle}` run at {place} in step {}: {:#?}",
                step["id"],
                transcript(step)
            )
        })
}

/// Every output of commands at `place` containing `needle`.
fn outputs_of(step: &Value, place: &str, needle: &str) -> Vec<String> {
    transcript(step)
        .into_iter()
        .filter(|(p, c, _)| p == place && c.contains(needle))
        .map(|(_, _, o)| o)
        .collect()
}

fn received(ping_output: &str) -> u32 {
    let line = ping_output
        .lines()
        .find(|l| l.contains("packets received"))
        .unwrap_or_else(|| panic!("no ping summary in {ping_output:?}"));
    line.split(',')
        .find(|p| p.contains("received"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn veth_bridge_pings_both_ways_and_leaves_the_host_unchanged() {
    let host = root_host!();
    let (steps, _) = run_passing("veth-bridge", &[]);

    // none mode: the child's namespace holds only lo, down.
    let c = step(&steps, "container");
    assert_eq!(row(c, "namespaces", "net")["change"], "changed");
    assert_eq!(
        row(c, "links", "lo")["after"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .nth(1),
        Some("down")
    );
    assert!(
        !keys_with(c, "links", "removed").is_empty(),
        "the host's links should be absent in the container"
    );

    // The bridge appears on the host with the gateway address.
    let b = step(&steps, "bridge");
    let added = keys_with(b, "links", "added");
    let bridge = added
        .iter()
        .find(|k| k.starts_with("host: wb") && k.ends_with("br"))
        .unwrap_or_else(|| panic!("no bridge added: {added:?}"))
        .trim_start_matches("host: ")
        .to_string();
    assert!(row(b, "links", &format!("host: {bridge}"))["after"]
        .as_str()
        .unwrap()
        .contains("type bridge"));
    assert_eq!(
        row(b, "addresses", &format!("host: {bridge} 10.213.0.1/24"))["change"],
        "added"
    );

    // Moving the peer: gone from the host, present in the container.
    let m = step(&steps, "move");
    let peer = bridge.trim_end_matches("br").to_string() + "c0";
    assert_eq!(row(m, "links", &format!("host: {peer}"))["change"], "removed");
    assert_eq!(row(m, "links", &format!("container: {peer}"))["change"], "added");

    // The default route via the bridge's address.
    let rt = step(&steps, "route");
    let default = row(rt, "routes", "container: inet table 254 default dev eth0");
    assert_eq!(default["change"], "added");
    assert!(default["after"]
        .as_str()
        .unwrap()
        .starts_with("default via 10.213.0.1 dev eth0"));

    // Real pings, both ways.
    let p = step(&steps, "ping");
    assert!(received(&output_of(p, "container", "ping")) >= 1);
    assert!(received(&output_of(p, "host", "ping")) >= 1);

    // Nothing left: the bridge is gone and the host is as before.
    assert!(
        !std::path::Path::new("/sys/class/net").join(&bridge).exists(),
        "{bridge} outlived the lesson"
    );
    host.assert_unchanged("veth-bridge");
}

#[test]
fn veth_bridge_uses_the_subnet_option() {
    let host = root_host!();
    let (steps, _) = run_passing("veth-bridge", &["--subnet", "192.168.77.0/28"]);
    let p = step(&steps, "ping");
    let inside = output_of(p, "container", "ping -c 2 -i 0.2 -w 3 192.168.77.1");
    assert!(received(&inside) >= 1, "{inside}");
    let from_host = output_of(p, "host", "192.168.77.2");
    assert!(received(&from_host) >= 1, "{from_host}");
    let a = step(&steps, "address");
    assert_eq!(
        row(a, "addresses", "container: eth0 192.168.77.2/28")["change"],
        "added"
    );
    host.assert_unchanged("veth-bridge --subnet");
}

fn check_nat_port_map(steps: &[Value], host_port: u16, container_port: u16) {
    let page = "hello from the container";
    // The container's own server, fetched by the host at the container's address.
    let h = step(steps, "httpd");
    assert_eq!(
        output_of(h, "host", &format!("wget -q -O - http://10.213.0.2:{container_port}/")),
        page
    );
    // Before any rule the outside world is refused on the host port.
    let o = step(steps, "outside-world");
    assert!(output_of(o, "outside", &format!(":{host_port}/")).contains("Connection refused"));
    // MASQUERADE: no reply first, then the outside world sees the host's address.
    let m = step(steps, "masquerade");
    assert_eq!(received(&output_of(m, "container", "ping -c 1 -w 1 -W 1")), 0);
    assert_eq!(output_of(m, "container", "whoami").trim(), "[::ffff:10.214.0.1]");
    // DNAT from the outside world: the container's page, and the real client's address.
    let d = step(steps, "dnat");
    assert_eq!(
        output_of(d, "outside", &format!("http://10.214.0.1:{host_port}/")),
        page
    );
    assert_eq!(output_of(d, "outside", "whoami").trim(), "[::ffff:10.214.0.2]");
    // The host itself (OUTPUT chain), then 127.0.0.1 (route_localnet + MASQUERADE).
    let f = step(steps, "from-host");
    assert_eq!(output_of(f, "host", &format!("http://10.214.0.1:{host_port}/")), page);
    let l = step(steps, "localhost");
    let local = outputs_of(l, "host", &format!("http://127.0.0.1:{host_port}/"));
    assert_eq!(local.len(), 3, "{local:?}");
    assert!(
        local[0].contains("no answer"),
        "DNAT alone should not reach the container: {local:?}"
    );
    assert_eq!(local[1], page);
    assert_eq!(
        row(
            l,
            "facts",
            "net.ipv4.conf.wbXX.route_localnet"
                .replace("wbXX", &bridge_of(steps))
                .as_str()
        )["after"],
        "1"
    );
    // Every rule matched packets, the fence none.
    let r = step(steps, "rules");
    assert!(
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"].as_str().unwrap().starts_with("fence"))
            .count()
            == 2
    );
}

/// Run nat-port-map with `extra` options and `env`, assert it all passed and
/// `check_nat_port_map` with `(host_port, container_port)`; its steps and what
/// `lister` printed of the rules.
fn nat_port_map_rules(
    extra: &[&str],
    env: &[(&str, &str)],
    (host_port, container_port): (u16, u16),
    lister: &str,
) -> (Vec<Value>, String) {
    let (code, steps, summary) = common::run_json_env("nat-port-map", extra, env);
    assert_all_passed(code, &steps, &summary);
    check_nat_port_map(&steps, host_port, container_port);
    let rules = output_of(step(&steps, "rules"), "host", lister);
    (steps, rules)
}

fn bridge_of(steps: &[Value]) -> String {
    let c = step(steps, "container");
    keys_with(c, "links", "added")
        .into_iter()
        .find(|k| k.starts_with("host: wb") && k.ends_with("br"))
        .expect("bridge")
        .trim_start_matches("host: ")
        .to_string()
}

#[test]
fn nat_port_map_serves_http_through_masquerade_and_dnat_and_restores_the_host() {
    let host = root_host!();
    let (steps, rules) = nat_port_map_rules(&[], &[], (8080, 80), "nft list table ip wb");
    // ip_forward went to 1 during the run (from whatever it was)...
    let fwd = step(&steps, "forwarding");
    assert_eq!(row(fwd, "facts", "net.ipv4.ip_forward")["after"], "1");
    // ...our own nft table held the rules...
    assert!(rules.starts_with("table ip wb"), "{rules}");
    common::assert_has(&rules, "dnat to 10.213.0.2:80");
    common::assert_has(&rules, "masquerade");
    // ...and the host's links, routes, sysctls and firewall are exactly as before.
    host.assert_unchanged("nat-port-map");
}

#[test]
fn nat_port_map_with_iptables_and_other_ports() {
    let host = root_host!();
    let (_, rules) = nat_port_map_rules(
        &["--host-port", "9090", "--container-port", "8000"],
        &[("WORKBENCH_FIREWALL", "iptables")],
        (9090, 8000),
        "iptables-save",
    );
    common::assert_has(&rules, "-j DNAT --to-destination 10.213.0.2:8000");
    common::assert_has(&rules, "--dport 9090");
    host.assert_unchanged("nat-port-map with iptables");
}

#[test]
fn net_modes_compare_namespace_inodes() {
    let host = root_host!();
    let (steps, _) = run_passing("net-modes", &[]);
    let inode = |s: &Value, key: &str| row(s, "facts", key)["after"].as_str().unwrap().to_string();
    let before_inode = |s: &Value, key: &str| row(s, "facts", key)["before"].as_str().unwrap().to_string();
    let host_net = std::fs::metadata("/proc/self/ns/net")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap()
        .to_string();
    let none = step(&steps, "none");
    assert_ne!(inode(none, "net namespace inode"), host_net);
    assert_eq!(before_inode(none, "net namespace inode"), host_net);
    let host_mode = step(&steps, "host");
    assert_eq!(inode(host_mode, "net namespace inode"), host_net);
    assert_ne!(
        inode(host_mode, "pid namespace inode"),
        before_inode(host_mode, "pid namespace inode")
    );
    let joined = step(&steps, "container");
    assert_eq!(row(joined, "facts", "net namespace inode")["change"], "same");
    assert_eq!(row(joined, "facts", "pid namespace inode")["change"], "changed");
    assert_eq!(output_of(joined, "joined", "wget"), "hello from the container");
    let bridge = step(&steps, "bridge");
    assert!(received(&output_of(bridge, "bridge-mode", "ping")) >= 1);
    let side = step(&steps, "side-by-side");
    let rows: Vec<String> = ["1 none", "3 bridge", "4 container:bridge"]
        .iter()
        .map(|k| inode(side, k))
        .collect();
    let net_of = |r: &str| r.split_whitespace().next().unwrap().to_string();
    assert_ne!(net_of(&rows[0]), net_of(&rows[1]));
    assert_eq!(net_of(&rows[1]), net_of(&rows[2]));
    assert!(rows[0].contains("links lo(down)"), "{}", rows[0]);
    host.assert_unchanged("net-modes");
}

#[test]
fn bad_network_options_fail_before_anything_is_created() {
    let host = root_host!();
    // A port something really listens on.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let busy = listener.local_addr().unwrap().port().to_string();
    let cases: [(&str, [&str; 2], &str); 9] = [
        ("veth-bridge", ["--subnet", "abc"], "--subnet"),
        ("veth-bridge", ["--subnet", "8.8.8.0/24"], "private range"),
        ("net-modes", ["--subnet", "10.213.0.0/31"], "between /8 and /30"),
        ("nat-port-map", ["--host-port", "0"], "--host-port"),
        ("nat-port-map", ["--host-port", "22"], "privileged"),
        ("nat-port-map", ["--container-port", "0"], "--container-port"),
        ("nat-port-map", ["--host-port", &busy], "already listens"),
        ("nat-port-map", ["--host-port", "abc"], "invalid value"),
        ("nat-port-map", ["--host-port", "70000"], "invalid value"),
    ];
    for (lesson, args, needle) in &cases {
        let o = common::lesson(lesson, args);
        if needle == &"invalid value" {
            common::refused_by_parser(&o, needle); // clap's own message
        } else {
            common::assert_has(&common::refused(&o, &format!("{lesson} {args:?}")), needle);
        }
    }
    let o = common::workbench_env(&["lesson", "nat-port-map"], &[("WORKBENCH_FIREWALL", "pf")]);
    common::assert_has(
        &common::refused(&o, "WORKBENCH_FIREWALL=pf"),
        "WORKBENCH_FIREWALL must be nft or iptables",
    );
    drop(listener);
    host.assert_unchanged("lessons refused in preflight");
}

#[test]
fn veth_bridge_shell_reaches_the_bridge() {
    let host = root_host!();
    let out = common::shell(
        "veth-bridge",
        &["--subnet", "10.213.9.0/24"],
        b"ping -c 1 -w 2 10.213.9.1 >/dev/null && echo marker-$(hostname)-$(ip -4 route | grep -c default)\nexit\n",
    );
    assert!(out.lines().any(|l| l == "marker-container-1"), "no marker in:\n{out}");
    host.assert_unchanged("veth-bridge --shell");
}

/// The joined container's PID 1 (workbench's child) ran `timeout wget`
/// probes whose helper processes outlive them; while the shell runs it reaps
/// them, as a container's init must, so `ps` inside shows no zombies.
#[test]
fn net_modes_shell_has_no_zombies() {
    let host = root_host!();
    // busybox `timeout` leaves a helper that exits up to a second after its
    // command: wait for it, then list every process's state.
    let out = common::shell(
        "net-modes",
        &[],
        b"sleep 2; for f in /proc/[0-9]*/status; do grep '^State' $f; done; echo states-listed\nexit\n",
    );
    assert!(
        out.contains("states-listed"),
        "the shell did not run the commands:\n{out}"
    );
    let states: Vec<&str> = out.lines().filter(|l| l.starts_with("State:")).collect();
    assert!(states.len() >= 2, "expected the states of PID 1 and the shell:\n{out}");
    let zombies: Vec<&&str> = states.iter().filter(|l| l.contains("zombie")).collect();
    assert!(
        zombies.is_empty(),
        "zombies in the joined container's PID namespace: {zombies:?}"
    );
    host.assert_unchanged("net-modes --shell");
}

#[test]
fn vxlan_overlay_tunnels_pings_in_udp() {
    let host = root_host!();
    let (steps, _) = run_passing("vxlan-overlay", &[]);
    let u = step(&steps, "underlay");
    assert!(received(&output_of(u, "host-a", "ping")) >= 1);
    let v = step(&steps, "vxlan");
    for side in ["host-a", "host-b"] {
        let l = row(v, "links", &format!("{side}: vxlan42"));
        assert_eq!(l["change"], "added");
        assert!(
            l["after"].as_str().unwrap().contains("type vxlan") && l["after"].as_str().unwrap().ends_with("mtu 1450"),
            "{l}"
        );
    }
    let p = step(&steps, "ping");
    let n = received(&output_of(p, "host-a", "ping -c 2 -i 0.2 -w 3 10.216.0.2"));
    assert!(n >= 1);
    // host-b's UDP counter grew by at least one datagram per echo request.
    let udp = common::rows(p, "facts")
        .into_iter()
        .find(|r| r["key"].as_str().unwrap().ends_with("Udp InDatagrams"))
        .unwrap();
    let grew = udp["after"].as_str().unwrap().parse::<u64>().unwrap()
        - udp["before"].as_str().unwrap().parse::<u64>().unwrap();
    assert!(grew >= n as u64, "{udp}");
    host.assert_unchanged("vxlan-overlay");
}

#[test]
fn subnets_another_live_run_holds_are_skipped_or_refused() {
    let mut host = root_host!();
    // Play another live run (owned by this test process) that holds two subnets.
    let subnets = ["10.213.0.0/24", "10.213.9.0/24"].map(|cidr| Resource::Subnet { cidr: cidr.into() });
    let held = host.hold("veth-bridge", subnets.to_vec());
    // Asked for explicitly: refused in preflight, one line, exit 2.
    let o = common::lesson("veth-bridge", &["--subnet", "10.213.9.0/24"]);
    common::assert_has(
        &common::refused(&o, "a held --subnet"),
        &format!(
            "--subnet 10.213.9.0/24 overlaps 10.213.9.0/24 held by run {} (veth-bridge)",
            held.run_id
        ),
    );
    // Chosen by workbench: the held first candidate is skipped.
    let o = common::workbench(&["lesson", "veth-bridge", "--json"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let out = common::stdout(&o);
    assert!(!out.contains("10.213.0.0/24: bridge (gateway)"), "{out}");
    assert!(out.contains("10.213.1.0/24: bridge (gateway) 10.213.1.1"), "{out}");
    host.assert_unchanged("veth-bridge next to a run holding subnets");
}

#[test]
fn host_ports_another_live_run_holds_are_skipped_or_refused() {
    let mut host = root_host!();
    // Play another live run (owned by this test process) that maps host ports 8080 and 9090.
    let held = host.hold(
        "nat-port-map",
        [8080, 9090].map(|port| Resource::HostPort { port }).to_vec(),
    );
    // Asked for explicitly: refused in preflight, one line naming the run, exit 2, nothing created.
    let o = common::lesson("nat-port-map", &["--host-port", "9090"]);
    common::assert_has(
        &common::refused(&o, "a held --host-port"),
        &format!(
            "--host-port 9090 is mapped by run {} (nat-port-map), which is still running",
            held.run_id
        ),
    );
    assert!(common::stdout(&o).is_empty(), "{}", common::stdout(&o));
    host.assert_unchanged("nat-port-map refused a held --host-port");
    // Chosen by workbench: 8080 is held, so the run takes 8081, says why, and passes on it.
    let (steps, _) = run_passing("nat-port-map", &[]);
    let plan = output_of(step(&steps, "container"), "workbench", "the plan");
    assert!(plan.contains(&format!("port map host 8081 → container 80 (8080 is mapped by run {} (nat-port-map): 8081 is the first free port after it)", held.run_id)), "{plan}");
    check_nat_port_map(&steps, 8081, 80);
    host.assert_unchanged("nat-port-map next to a run holding 8080");
}

/// Plays a live run that changed a kernel parameter: removes its state file
/// and puts the parameter back when dropped.
/// The other run's ip_forward, restored (and its state file removed) when dropped.
struct HeldSysctl {
    _run: common::HeldRun,
    key: String,
    previous: String,
    side_effects: Vec<(String, String)>,
}

impl Drop for HeldSysctl {
    fn drop(&mut self) {
        let _ = workbench::hostobj::sysctl::restore(&self.key, &self.previous, &self.side_effects);
    }
}

#[test]
fn ip_forward_held_by_another_live_run_is_left_to_it() {
    let host = root_host!();
    let key = "net/ipv4/ip_forward";
    let original = workbench::hostobj::sysctl::read(key).unwrap();
    if original != "0" {
        eprintln!("skipped: ip_forward is already {original} on this host");
        return;
    }
    let saved: Vec<(String, String)> = workbench::hostobj::sysctl::ip_forward_side_effects()
        .into_iter()
        .filter_map(|k| Some((k.clone(), workbench::hostobj::sysctl::read(&k).ok()?)))
        .collect();
    let held = common::hold(
        "nat-port-map",
        vec![Resource::Sysctl {
            key: key.into(),
            previous: original.clone(),
            side_effects: saved.clone(),
        }],
    );
    // The other run turned forwarding on; this one must not turn it off under it.
    workbench::hostobj::sysctl::write(key, "1").unwrap();
    let guard = HeldSysctl {
        _run: held,
        key: key.into(),
        previous: original,
        side_effects: saved,
    };
    let o = common::workbench(&["lesson", "nat-port-map", "--json", "--host-port", "18180"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert_eq!(
        workbench::hostobj::sysctl::read(key).unwrap(),
        "1",
        "nat-port-map turned ip_forward off while another run held it"
    );
    drop(guard);
    assert_eq!(workbench::hostobj::sysctl::read(key).unwrap(), "0");
    host.assert_unchanged("nat-port-map next to a run holding ip_forward");
}
