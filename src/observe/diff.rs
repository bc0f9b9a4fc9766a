//! Comparing two snapshots, section by section, key by key.

use serde::Serialize;

use super::parse::Snapshot;

/// How one key changed between the two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Same,
    Changed,
    Added,
    Removed,
}

/// One key of a section, e.g. the `pid` namespace or the `/proc` mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub key: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub change: Change,
}

/// The diff of one section: namespaces, cgroups, mounts, links, addresses, routes or facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionDiff {
    pub name: String,
    pub rows: Vec<Row>,
}

impl SectionDiff {
    pub fn changed(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.change != Change::Same)
    }
    pub fn has_changes(&self) -> bool {
        self.changed().next().is_some()
    }
    pub fn row(&self, key: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.key == key)
    }
}

type Pairs = Vec<(String, String)>;

/// The sections of a snapshot as ordered key/value pairs.
pub fn sections(s: &Snapshot) -> Vec<(&'static str, Pairs)> {
    let mut out: Vec<(&'static str, Pairs)> = Vec::new();
    out.push((
        "namespaces",
        s.namespaces.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
    ));
    out.push(("cgroups", s.cgroups.iter().map(|c| (c.key(), c.path.clone())).collect()));
    // Several mounts may stack on one mount point: number the later ones.
    let mut mounts: Pairs = Vec::new();
    for m in &s.mounts {
        let n = mounts
            .iter()
            .filter(|(k, _)| k == &m.mount_point || k.starts_with(&format!("{} #", m.mount_point)))
            .count();
        let key = if n == 0 {
            m.mount_point.clone()
        } else {
            format!("{} #{}", m.mount_point, n + 1)
        };
        mounts.push((key, m.describe()));
    }
    out.push(("mounts", mounts));
    if let Some(net) = &s.net {
        out.push(("links", net.links.clone().into_iter().collect()));
        out.push(("addresses", net.addresses.clone().into_iter().collect()));
        out.push(("routes", net.routes.clone().into_iter().collect()));
    }
    out.push(("facts", s.facts.clone().into_iter().collect()));
    out
}

/// Compare two key/value lists. Keys keep the order of `before`, with keys that
/// only `after` has following in their own order.
pub fn diff_pairs(name: &str, before: &Pairs, after: &Pairs) -> SectionDiff {
    let mut rows = Vec::new();
    for (k, v) in before {
        match after.iter().find(|(k2, _)| k2 == k) {
            Some((_, v2)) if v2 == v => rows.push(Row {
                key: k.clone(),
                before: Some(v.clone()),
                after: Some(v2.clone()),
                change: Change::Same,
            }),
            Some((_, v2)) => rows.push(Row {
                key: k.clone(),
                before: Some(v.clone()),
                after: Some(v2.clone()),
                change: Change::Changed,
            }),
            None => rows.push(Row {
                key: k.clone(),
                before: Some(v.clone()),
                after: None,
                change: Change::Removed,
            }),
        }
    }
    for (k, v) in after {
        if !before.iter().any(|(k1, _)| k1 == k) {
            rows.push(Row {
                key: k.clone(),
                before: None,
                after: Some(v.clone()),
                change: Change::Added,
            });
        }
    }
    SectionDiff {
        name: name.to_string(),
        rows,
    }
}

/// Compare two snapshots. Sections empty on both sides are left out.
pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<SectionDiff> {
    let a = sections(before);
    let b = sections(after);
    let mut out = Vec::new();
    for (name, pa) in &a {
        let pb = b
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        if pa.is_empty() && pb.is_empty() {
            continue;
        }
        out.push(diff_pairs(name, pa, &pb));
    }
    for (name, pb) in &b {
        if !pb.is_empty() && !a.iter().any(|(n, _)| n == name) {
            out.push(diff_pairs(name, &Vec::new(), pb));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::parse::{parse_mountinfo, MountEntry};

    fn snap(ns: &[(&str, u64)]) -> Snapshot {
        Snapshot {
            namespaces: ns.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn namespace_changes_are_detected() {
        let a = snap(&[("pid", 1), ("uts", 2), ("net", 3)]);
        let b = snap(&[("pid", 10), ("uts", 2), ("net", 3)]);
        let d = diff(&a, &b);
        assert_eq!(d.len(), 1);
        let ns = &d[0];
        assert_eq!(ns.name, "namespaces");
        assert_eq!(ns.row("pid").unwrap().change, Change::Changed);
        assert_eq!(ns.row("uts").unwrap().change, Change::Same);
        assert_eq!(ns.changed().count(), 1);
    }

    #[test]
    fn added_and_removed_keys() {
        let before = vec![("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())];
        let after = vec![("b".to_string(), "2".to_string()), ("c".to_string(), "3".to_string())];
        let d = diff_pairs("facts", &before, &after);
        let changes: Vec<(&str, Change)> = d.rows.iter().map(|r| (r.key.as_str(), r.change)).collect();
        assert_eq!(
            changes,
            vec![("a", Change::Removed), ("b", Change::Same), ("c", Change::Added)]
        );
    }

    #[test]
    fn stacked_mounts_get_distinct_keys() {
        let text = "1 0 0:1 / / rw - ext4 /dev/vda rw\n2 1 0:2 / /dev/pts rw - devpts devpts rw\n3 2 0:3 / /dev/pts rw - devpts devpts rw,mode=600\n";
        let s = Snapshot {
            mounts: parse_mountinfo(text).unwrap(),
            ..Default::default()
        };
        let secs = sections(&s);
        let mounts = &secs.iter().find(|(n, _)| *n == "mounts").unwrap().1;
        let keys: Vec<&str> = mounts.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["/", "/dev/pts", "/dev/pts #2"]);
    }

    #[test]
    fn new_proc_mount_shows_as_added() {
        let root = MountEntry {
            mount_point: "/".into(),
            fs_type: "ext4".into(),
            source: "/dev/vda".into(),
            root: "/".into(),
            options: "rw".into(),
            propagation: String::new(),
            layers: String::new(),
        };
        let proc_ = MountEntry {
            mount_point: "/proc".into(),
            fs_type: "proc".into(),
            source: "proc".into(),
            root: "/".into(),
            options: "rw".into(),
            propagation: String::new(),
            layers: String::new(),
        };
        let a = Snapshot {
            mounts: vec![root.clone()],
            ..Default::default()
        };
        let b = Snapshot {
            mounts: vec![root, proc_],
            ..Default::default()
        };
        let d = diff(&a, &b);
        let m = d.iter().find(|s| s.name == "mounts").unwrap();
        let added: Vec<&Row> = m.changed().collect();
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].key, "/proc");
        assert_eq!(added[0].change, Change::Added);
    }
}
