//! A snapshot of the host state workbench could touch, to prove it left none
//! behind: links, named netns, routes, firewall rules, mounts, cgroup dirs
//! under workbench's parents, run state files and working directories.
//!
//! `workbench doctor --host-state` prints it as JSON; the tests take one
//! before and one after each lesson and require them to be equal.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// Everything compared, each as a sorted list of lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    pub sections: BTreeMap<String, Vec<String>>,
}

/// The names in directory `p`, sorted (none when it cannot be read).
pub fn sorted_dir(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn lines_of(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .map(str::to_string)
        .filter(|l| !l.trim().is_empty())
        .collect();
    v.sort();
    v
}

fn tool_output(prog: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(prog).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every directory below each cgroup hierarchy's `workbench` parent.
pub fn workbench_cgroups(cgroup_root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack: Vec<std::path::PathBuf> = Vec::new();
    // v2 (or the unified mount of a hybrid host) and every v1 hierarchy.
    stack.push(cgroup_root.join("workbench"));
    for h in sorted_dir(cgroup_root) {
        stack.push(cgroup_root.join(h).join("workbench"));
    }
    while let Some(dir) = stack.pop() {
        if !dir.is_dir() {
            continue;
        }
        out.push(dir.display().to_string());
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Take the snapshot (as root, to read firewall rules).
pub fn capture() -> HostState {
    let mut s = BTreeMap::new();
    s.insert("links".into(), sorted_dir(Path::new("/sys/class/net")));
    s.insert("netns (/run/netns)".into(), sorted_dir(Path::new("/run/netns")));
    let mut routes = lines_of(&std::fs::read_to_string("/proc/net/route").unwrap_or_default());
    routes.extend(lines_of(
        &std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default(),
    ));
    s.insert("routes".into(), routes);
    let mounts =
        crate::observe::parse::parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .map(|m| format!("{} {}", m.mount_point, m.describe()))
            .collect::<Vec<_>>();
    s.insert("mounts".into(), mounts);
    s.insert(
        "cgroups under workbench/".into(),
        workbench_cgroups(Path::new("/sys/fs/cgroup")),
    );
    let root = crate::state::run_root();
    s.insert("state files".into(), sorted_dir(&root.join("runs")));
    let mut work: Vec<String> = Vec::new();
    for dir in [root.join("tmp"), std::path::PathBuf::from(crate::state::VAR_TMP_DIR)] {
        work.extend(sorted_dir(&dir).into_iter().map(|e| dir.join(e).display().to_string()));
    }
    s.insert("working dirs".into(), work);
    s.insert("sysctl".into(), net_sysctls());
    if let Some(t) = tool_output("iptables-save", &[]) {
        s.insert(
            "iptables".into(),
            lines_of(&t)
                .into_iter()
                .filter(|l| !l.starts_with('#'))
                .map(strip_counters)
                .collect(),
        );
    }
    if let Some(t) = tool_output("nft", &["list", "ruleset"]) {
        s.insert("nft".into(), lines_of(&t));
    }
    HostState { sections: s }
}

/// The IPv4 forwarding switches the network lessons flip and restore:
/// `net.ipv4.ip_forward` and, per interface (workbench's own `wb…` links
/// excepted), `forwarding`, `route_localnet` and `accept_redirects`.
fn net_sysctls() -> Vec<String> {
    let root = Path::new("/proc/sys/net/ipv4");
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|_| "?".into())
    };
    let mut v = vec![format!("net.ipv4.ip_forward = {}", read(&root.join("ip_forward")))];
    for dev in sorted_dir(&root.join("conf"))
        .into_iter()
        .filter(|d| !d.starts_with(crate::hostobj::PREFIX))
    {
        for key in ["forwarding", "route_localnet", "accept_redirects"] {
            v.push(format!(
                "net.ipv4.conf.{dev}.{key} = {}",
                read(&root.join("conf").join(&dev).join(key))
            ));
        }
    }
    v.sort();
    v
}

/// `:INPUT ACCEPT [12:345]` → `:INPUT ACCEPT` (packet counters change on their own).
fn strip_counters(l: String) -> String {
    match (l.starts_with(':'), l.rfind(" [")) {
        (true, Some(i)) => l[..i].to_string(),
        _ => l,
    }
}

/// Human-readable differences between two host states (empty when equal).
pub fn differences(before: &HostState, after: &HostState) -> Vec<String> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> = before.sections.keys().chain(after.sections.keys()).collect();
    for k in keys {
        let a = before.sections.get(k).cloned().unwrap_or_default();
        let b = after.sections.get(k).cloned().unwrap_or_default();
        for l in b.iter().filter(|l| !a.contains(l)) {
            out.push(format!("{k}: + {l}"));
        }
        for l in a.iter().filter(|l| !b.contains(l)) {
            out.push(format!("{k}: - {l}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_section_and_line() {
        let mut a = HostState::default();
        a.sections.insert("links".into(), vec!["eth0".into(), "lo".into()]);
        let mut b = a.clone();
        b.sections.get_mut("links").unwrap().push("wbbr0".into());
        assert_eq!(differences(&a, &b), vec!["links: + wbbr0"]);
        assert_eq!(differences(&b, &a), vec!["links: - wbbr0"]);
        assert!(differences(&a, &a).is_empty());
    }

    #[test]
    fn counters_are_ignored() {
        assert_eq!(strip_counters(":INPUT ACCEPT [12:345]".into()), ":INPUT ACCEPT");
        assert_eq!(strip_counters("-A INPUT -j ACCEPT".into()), "-A INPUT -j ACCEPT");
    }

    #[test]
    fn finds_cgroups_in_a_fake_tree() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("memory/workbench/run1")).unwrap();
        std::fs::create_dir_all(t.path().join("memory/other")).unwrap();
        std::fs::create_dir_all(t.path().join("pids")).unwrap();
        let found = workbench_cgroups(t.path());
        let rel: Vec<String> = found
            .iter()
            .map(|p| p.trim_start_matches(&t.path().display().to_string()).to_string())
            .collect();
        assert_eq!(rel, vec!["/memory/workbench", "/memory/workbench/run1"]);
    }
}
