//! Snapshot types and the pure parsers that fill them from `/proc` text.

use std::collections::BTreeMap;
use std::io::Cursor;

use procfs_core::FromBufRead;
use serde::{Deserialize, Serialize};
use wb_cgroup::unescape_mountinfo;

/// Everything observed about one process at one moment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Who was observed, e.g. "host (workbench, pid 4242)" or "child (pid 4243)".
    pub label: String,
    pub pid: i32,
    /// `/proc/PID/ns/*`: kind → inode.
    pub namespaces: BTreeMap<String, u64>,
    /// `/proc/PID/cgroup`.
    pub cgroups: Vec<CgroupEntry>,
    /// `/proc/PID/mountinfo`.
    pub mounts: Vec<MountEntry>,
    /// Links, addresses and routes of the process's network namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net: Option<NetState>,
    /// Lesson-specific facts: hostname, getpid(), root directory, files present...
    pub facts: BTreeMap<String, String>,
}

/// One line of `/proc/PID/cgroup`: `hierarchy-ID:controllers:path`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupEntry {
    pub hierarchy: u32,
    pub controllers: Vec<String>,
    pub path: String,
}

impl CgroupEntry {
    /// The diff key: the controllers of a v1 hierarchy, or "(v2 unified)".
    pub fn key(&self) -> String {
        if self.hierarchy == 0 && self.controllers.is_empty() {
            "(v2 unified)".to_string()
        } else if self.controllers.is_empty() {
            format!("hierarchy {}", self.hierarchy)
        } else {
            self.controllers.join(",")
        }
    }
}

/// One line of `/proc/PID/mountinfo`, reduced to what a learner compares.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_point: String,
    pub fs_type: String,
    pub source: String,
    /// The root of the mount within its filesystem (for bind mounts).
    pub root: String,
    /// Per-mount options, sorted: "rw,nosuid,relatime".
    pub options: String,
    /// "shared:1", "master:3", "" for private.
    pub propagation: String,
    /// For overlay mounts, the layers from the superblock options:
    /// "lowerdir=...,upperdir=...,workdir=..."; empty for other filesystems.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub layers: String,
}

impl MountEntry {
    /// How the diff shows a mount: `proc on /proc (rw,nosuid) shared:5`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {} ({})", self.fs_type, self.source, self.options);
        if self.root != "/" {
            s.push_str(&format!(" root={}", self.root));
        }
        s.push_str(if self.propagation.is_empty() { " private" } else { " " });
        s.push_str(&self.propagation);
        if !self.layers.is_empty() {
            s.push_str(&format!(" [{}]", self.layers));
        }
        s
    }
}

/// Links, addresses and routes, each as key → description, so they diff like the rest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NetState {
    pub links: BTreeMap<String, String>,
    pub addresses: BTreeMap<String, String>,
    pub routes: BTreeMap<String, String>,
}

/// Errors from the parsers; they name the file that did not parse.
#[derive(Debug, thiserror::Error)]
#[error("parse {file}: {message}")]
pub struct ParseError {
    pub file: &'static str,
    pub message: String,
}

/// Parse `/proc/PID/mountinfo` text.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountEntry>, ParseError> {
    let infos = procfs_core::process::MountInfos::from_buf_read(Cursor::new(text)).map_err(|e| ParseError {
        file: "mountinfo",
        message: e.to_string(),
    })?;
    Ok(infos
        .into_iter()
        .map(|m| {
            let mut opts: Vec<String> = m
                .mount_options
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.clone(),
                })
                .collect();
            opts.sort();
            let propagation = m
                .opt_fields
                .iter()
                .map(|f| {
                    use procfs_core::process::MountOptFields::*;
                    match f {
                        Shared(n) => format!("shared:{n}"),
                        Master(n) => format!("master:{n}"),
                        PropagateFrom(n) => format!("propagate_from:{n}"),
                        Unbindable => "unbindable".to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
            let layers = if m.fs_type == "overlay" {
                ["lowerdir", "upperdir", "workdir"]
                    .iter()
                    .filter_map(|k| {
                        m.super_options
                            .get(*k)
                            .and_then(|v| v.as_ref())
                            .map(|v| format!("{k}={}", unescape_mountinfo(v)))
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                String::new()
            };
            MountEntry {
                layers,
                mount_point: unescape_mountinfo(&m.mount_point.to_string_lossy()),
                fs_type: m.fs_type,
                source: m.mount_source.unwrap_or_else(|| "none".into()),
                root: unescape_mountinfo(&m.root),
                options: opts.join(","),
                propagation,
            }
        })
        .collect())
}

/// Parse `/proc/PID/cgroup` text (v1 lines `4:cpu,cpuacct:/x`, v2 line `0::/x`)
/// with wb-cgroup's parser, sorted by [`CgroupEntry::key`].
pub fn parse_cgroup(text: &str) -> Result<Vec<CgroupEntry>, ParseError> {
    let groups = wb_cgroup::parse_proc_cgroup(text).map_err(|e| ParseError {
        file: "cgroup",
        message: e.to_string(),
    })?;
    let mut v: Vec<CgroupEntry> = groups
        .into_iter()
        .map(|g| CgroupEntry {
            hierarchy: g.hierarchy_id,
            controllers: g.controllers,
            path: g.path,
        })
        .collect();
    v.sort_by_key(|e| e.key());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = include_str!("../../tests/fixtures/mountinfo-hybrid.txt");

    #[test]
    fn parses_mountinfo_fixture() {
        let m = parse_mountinfo(HYBRID_MOUNTINFO).unwrap();
        assert_eq!(m.len(), 20);
        let root = &m[0];
        assert_eq!(
            (root.mount_point.as_str(), root.fs_type.as_str(), root.source.as_str()),
            ("/", "ext4", "/dev/vda")
        );
        assert_eq!(root.options, "relatime,rw");
        assert_eq!(root.propagation, "shared:1");
        let unified = m.iter().find(|e| e.mount_point == "/sys/fs/cgroup/unified").unwrap();
        assert_eq!(unified.fs_type, "cgroup2");
        let spaced = m
            .iter()
            .find(|e| e.fs_type == "tmpfs" && e.mount_point.contains(' '))
            .unwrap();
        assert_eq!(spaced.mount_point, "/run/with space");
    }

    #[test]
    fn describes_mounts() {
        let e = MountEntry {
            mount_point: "/proc".into(),
            fs_type: "proc".into(),
            source: "proc".into(),
            root: "/".into(),
            options: "nosuid,rw".into(),
            propagation: String::new(),
            layers: String::new(),
        };
        assert_eq!(e.describe(), "proc proc (nosuid,rw) private");
    }

    #[test]
    fn overlay_mounts_show_their_layers() {
        let line = "90 27 0:50 / /m rw,relatime - overlay overlay rw,lowerdir=/l2:/l1,upperdir=/u,workdir=/w\n";
        let m = parse_mountinfo(line).unwrap();
        assert_eq!(m[0].layers, "lowerdir=/l2:/l1,upperdir=/u,workdir=/w");
        assert!(m[0]
            .describe()
            .ends_with("private [lowerdir=/l2:/l1,upperdir=/u,workdir=/w]"));
        let plain = parse_mountinfo("1 0 0:1 / / rw - ext4 /dev/vda rw,discard\n").unwrap();
        assert_eq!(plain[0].layers, "");
    }

    #[test]
    fn parses_cgroup_v1_v2_hybrid() {
        let v1 = "12:pids:/user.slice\n4:cpu,cpuacct:/\n1:name=systemd:/init.scope\n0::/init.scope\n";
        let e = parse_cgroup(v1).unwrap();
        let keys: Vec<String> = e.iter().map(|e| e.key()).collect();
        assert_eq!(keys, vec!["(v2 unified)", "cpu,cpuacct", "name=systemd", "pids"]);
        assert_eq!(e[3].path, "/user.slice");
        let v2 = parse_cgroup("0::/user.slice/user-0.slice/session-1.scope\n").unwrap();
        assert_eq!(v2.len(), 1);
        assert_eq!(v2[0].key(), "(v2 unified)");
        assert!(parse_cgroup("not a cgroup line\n").is_err());
    }
}
