//! Namespaces as the kernel shows them: `/proc/PID/ns/*`.
//!
//! Each entry in `/proc/PID/ns` is a magic link such as `pid:[4026531836]`.
//! The number is the inode of the namespace: two processes are in the same
//! namespace exactly when their inodes are equal. This is how every lesson
//! proves that a `clone(2)` flag really created something new.

use std::collections::BTreeMap;
use std::path::Path;

use nix::sched::CloneFlags;

/// The namespace kinds, with the clone flag that creates each and its `unshare(1)` option.
pub const KINDS: &[(&str, &str, &str)] = &[
    ("cgroup", "CLONE_NEWCGROUP", "--cgroup"),
    ("ipc", "CLONE_NEWIPC", "--ipc"),
    ("mnt", "CLONE_NEWNS", "--mount"),
    ("net", "CLONE_NEWNET", "--net"),
    ("pid", "CLONE_NEWPID", "--pid"),
    ("time", "CLONE_NEWTIME", "--time"),
    ("user", "CLONE_NEWUSER", "--user"),
    ("uts", "CLONE_NEWUTS", "--uts"),
];

/// Parse the target of a `/proc/PID/ns/*` link, `"pid:[4026531836]"` → `("pid", 4026531836)`.
pub fn parse_ns_link(target: &str) -> Option<(String, u64)> {
    let (kind, rest) = target.split_once(":[")?;
    let inode = rest.strip_suffix(']')?.parse().ok()?;
    Some((kind.to_string(), inode))
}

/// Read every namespace link of a process under a proc root (normally `/proc`).
pub fn read_namespaces(proc_root: &Path, pid: i32) -> super::Result<BTreeMap<String, u64>> {
    let dir = proc_root.join(pid.to_string()).join("ns");
    let entries = super::io(std::fs::read_dir(&dir), format!("read {}", dir.display()))?;
    let mut out = BTreeMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Ok(target) = std::fs::read_link(entry.path()) {
            if let Some((_, inode)) = parse_ns_link(&target.to_string_lossy()) {
                out.insert(name, inode);
            }
        }
    }
    Ok(out)
}

/// The C-style spelling of a set of clone flags, e.g. `CLONE_NEWUTS|CLONE_NEWPID`.
pub fn flag_names(flags: CloneFlags) -> String {
    let known = [
        (CloneFlags::CLONE_NEWUTS, "CLONE_NEWUTS"),
        (CloneFlags::CLONE_NEWIPC, "CLONE_NEWIPC"),
        (CloneFlags::CLONE_NEWPID, "CLONE_NEWPID"),
        (CloneFlags::CLONE_NEWNS, "CLONE_NEWNS"),
        (CloneFlags::CLONE_NEWNET, "CLONE_NEWNET"),
        (CloneFlags::CLONE_NEWUSER, "CLONE_NEWUSER"),
        (CloneFlags::CLONE_NEWCGROUP, "CLONE_NEWCGROUP"),
    ];
    let names: Vec<&str> = known
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "0".to_string()
    } else {
        names.join("|")
    }
}

/// The namespace names (as in `/proc/PID/ns`) a set of clone flags creates.
pub fn kinds_created(flags: CloneFlags) -> Vec<&'static str> {
    let mut v = Vec::new();
    for (flag, kinds) in [
        (CloneFlags::CLONE_NEWUTS, &["uts"][..]),
        (CloneFlags::CLONE_NEWIPC, &["ipc"]),
        (CloneFlags::CLONE_NEWPID, &["pid", "pid_for_children"]),
        (CloneFlags::CLONE_NEWNS, &["mnt"]),
        (CloneFlags::CLONE_NEWNET, &["net"]),
        (CloneFlags::CLONE_NEWUSER, &["user"]),
        (CloneFlags::CLONE_NEWCGROUP, &["cgroup"]),
    ] {
        if flags.contains(flag) {
            v.extend_from_slice(kinds);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ns_links() {
        assert_eq!(parse_ns_link("pid:[4026531836]"), Some(("pid".into(), 4026531836)));
        assert_eq!(
            parse_ns_link("pid_for_children:[4026532200]"),
            Some(("pid_for_children".into(), 4026532200))
        );
        assert_eq!(parse_ns_link("pid:4026531836"), None);
        assert_eq!(parse_ns_link("pid:[abc]"), None);
    }

    #[test]
    fn names_flags() {
        let f = CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWPID;
        assert_eq!(flag_names(f), "CLONE_NEWUTS|CLONE_NEWPID");
        assert_eq!(flag_names(CloneFlags::empty()), "0");
        assert_eq!(kinds_created(f), vec!["uts", "pid", "pid_for_children"]);
    }

    #[test]
    fn reads_own_namespaces() {
        let ns = read_namespaces(Path::new("/proc"), std::process::id() as i32).unwrap();
        for kind in ["ipc", "mnt", "net", "pid", "uts"] {
            assert!(ns.get(kind).copied().unwrap_or(0) > 0, "no inode for {kind}: {ns:?}");
        }
    }
}
