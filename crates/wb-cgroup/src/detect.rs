//! Which cgroup layout does this host use?
//!
//! Linux has two cgroup APIs. In v1 every controller (cpu, memory, pids, ...)
//! is its own hierarchy, mounted as its own `cgroup` filesystem under a tmpfs
//! at /sys/fs/cgroup; in v2 there is one "unified" `cgroup2` filesystem where
//! each group directory holds the files of all enabled controllers. "Hybrid"
//! hosts mount the v1 controllers as usual plus an (often controller-less)
//! cgroup2 tree at /sys/fs/cgroup/unified. We tell them apart by the
//! filesystem magic number of the root (statfs), by /proc/self/mountinfo, and
//! for fake trees built by tests in a temp dir, by marker files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, TMPFS_MAGIC};
use procfs_core::process::MountInfo;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::files;
use crate::parse::unescape_mountinfo;

/// Where the host mounts its cgroup filesystems.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Controller names a v1 `cgroup` mount can carry.
pub const KNOWN_V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// The cgroup layout of a host (or of a fake tree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Layout {
    /// One hierarchy per controller (or per comounted set, e.g. `cpu,cpuacct`).
    V1 {
        root: PathBuf,
        /// controller name → mount directory; comounted controllers share a path.
        hierarchies: BTreeMap<String, PathBuf>,
    },
    /// A single unified hierarchy.
    V2 { root: PathBuf },
    /// v1 hierarchies plus a cgroup2 mount (usually `<root>/unified`).
    Hybrid {
        root: PathBuf,
        hierarchies: BTreeMap<String, PathBuf>,
        unified: PathBuf,
    },
}

impl Layout {
    /// "v1", "v2" or "hybrid".
    pub fn version_label(&self) -> &'static str {
        match self {
            Layout::V1 { .. } => "v1",
            Layout::V2 { .. } => "v2",
            Layout::Hybrid { .. } => "hybrid",
        }
    }

    /// The directory `detect` was given.
    pub fn root(&self) -> &Path {
        match self {
            Layout::V1 { root, .. } | Layout::V2 { root } | Layout::Hybrid { root, .. } => root,
        }
    }

    /// The v1 hierarchies (empty map on pure v2).
    pub fn v1_hierarchies(&self) -> BTreeMap<String, PathBuf> {
        match self {
            Layout::V1 { hierarchies, .. } | Layout::Hybrid { hierarchies, .. } => hierarchies.clone(),
            Layout::V2 { .. } => BTreeMap::new(),
        }
    }

    /// Mount directory of a v1 controller, if any.
    pub fn hierarchy(&self, controller: &str) -> Option<&Path> {
        match self {
            Layout::V1 { hierarchies, .. } | Layout::Hybrid { hierarchies, .. } => {
                hierarchies.get(controller).map(PathBuf::as_path)
            }
            Layout::V2 { .. } => None,
        }
    }

    /// Root of the cgroup2 hierarchy: the root itself on v2, `unified` on hybrid.
    pub fn unified(&self) -> Option<&Path> {
        match self {
            Layout::V2 { root } => Some(root),
            Layout::Hybrid { unified, .. } => Some(unified),
            Layout::V1 { .. } => None,
        }
    }

    /// Every distinct hierarchy root (v1 mounts deduplicated, then the unified one).
    pub fn hierarchy_roots(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for p in self.v1_hierarchies().into_values() {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        if let Some(u) = self.unified() {
            if !out.iter().any(|p| p == u) {
                out.push(u.to_path_buf());
            }
        }
        out
    }
}

/// Detect the layout of the host's real cgroup root, /sys/fs/cgroup.
pub fn detect_system() -> Result<Layout> {
    detect(Path::new(DEFAULT_ROOT))
}

/// Detect the layout rooted at `root`.
///
/// * statfs says cgroup2 → [`Layout::V2`].
/// * statfs says tmpfs and /proc/self/mountinfo shows `cgroup` mounts below
///   `root` → [`Layout::V1`], or [`Layout::Hybrid`] if a `cgroup2` is mounted
///   below `root` too. Comounts like `cpu,cpuacct` map both names to one dir.
/// * otherwise (a fake tree on ext4/tmpfs): `root/cgroup.controllers` → V2;
///   subdirectories named after v1 controllers → V1, plus
///   `root/unified/cgroup.controllers` → Hybrid.
pub fn detect(root: &Path) -> Result<Layout> {
    let st = crate::fsio::statfs(root)?;
    let magic = st.filesystem_type();
    if magic == CGROUP2_SUPER_MAGIC {
        return Ok(Layout::V2 {
            root: root.to_path_buf(),
        });
    }
    if magic == CGROUP_SUPER_MAGIC {
        return Err(Error::NotCgroupRoot {
            path: root.to_path_buf(),
            reason: "this is a single cgroup v1 hierarchy; pass the directory holding all of them \
                     (usually /sys/fs/cgroup)"
                .into(),
        });
    }
    if magic == TMPFS_MAGIC {
        if let Ok(text) = fs::read_to_string("/proc/self/mountinfo") {
            let canon = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
            let scan = scan_mountinfo(&text, &canon);
            // Report paths under the name the caller used.
            let rebase = |p: PathBuf| match p.strip_prefix(&canon) {
                Ok(rel) => root.join(rel),
                Err(_) => p,
            };
            let hierarchies: BTreeMap<String, PathBuf> =
                scan.hierarchies.into_iter().map(|(k, v)| (k, rebase(v))).collect();
            match (hierarchies.is_empty(), scan.unified.map(rebase)) {
                (false, Some(unified)) => {
                    return Ok(Layout::Hybrid {
                        root: root.to_path_buf(),
                        hierarchies,
                        unified,
                    })
                }
                (false, None) => {
                    return Ok(Layout::V1 {
                        root: root.to_path_buf(),
                        hierarchies,
                    })
                }
                (true, Some(unified)) => return Ok(Layout::V2 { root: unified }),
                (true, None) => {} // a tmpfs without cgroup mounts: maybe a fake tree
            }
        }
    }
    detect_by_markers(root)
}

/// Marker-file detection for trees that are plain directories (tests).
fn detect_by_markers(root: &Path) -> Result<Layout> {
    if root.join(files::CGROUP_CONTROLLERS).is_file() {
        return Ok(Layout::V2 {
            root: root.to_path_buf(),
        });
    }
    let entries = fs::read_dir(root).map_err(|e| Error::io("read directory", root, e))?;
    let mut real = Vec::new();
    let mut links = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let parts: Vec<&str> = name.split(',').collect();
        if !parts.iter().all(|p| KNOWN_V1_CONTROLLERS.contains(p)) {
            continue; // unified, systemd, anything else
        }
        let is_link = entry.file_type().map(|t| t.is_symlink()).unwrap_or(false);
        let list = if is_link { &mut links } else { &mut real };
        list.push((parts.iter().map(|s| s.to_string()).collect::<Vec<_>>(), path));
    }
    real.sort();
    links.sort();
    let mut hierarchies = BTreeMap::new();
    // Real directories win; symlinks like `cpu -> cpu,cpuacct` only fill gaps.
    for (parts, path) in real.into_iter().chain(links) {
        for p in parts {
            hierarchies.entry(p).or_insert_with(|| path.clone());
        }
    }
    if hierarchies.is_empty() {
        return Err(Error::NotCgroupRoot {
            path: root.to_path_buf(),
            reason: "neither cgroup2 (no cgroup.controllers) nor v1 controller directories".into(),
        });
    }
    let unified = root.join("unified");
    if unified.join(files::CGROUP_CONTROLLERS).is_file() {
        Ok(Layout::Hybrid {
            root: root.to_path_buf(),
            hierarchies,
            unified,
        })
    } else {
        Ok(Layout::V1 {
            root: root.to_path_buf(),
            hierarchies,
        })
    }
}

/// cgroup mounts found below a root in /proc/self/mountinfo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountScan {
    /// v1 controller → mount point.
    pub hierarchies: BTreeMap<String, PathBuf>,
    /// The cgroup2 mount point, if any.
    pub unified: Option<PathBuf>,
}

/// Scan mountinfo text for `cgroup`/`cgroup2` mounts strictly below `root`.
///
/// A line looks like
/// `32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu`:
/// field 5 is the mount point, and after the ` - ` separator come the
/// filesystem type, the source, and the super options, which for v1 list the
/// controllers bound to that hierarchy (`rw,cpu,cpuacct`). procfs-core's
/// [`MountInfo`] splits each line (one it cannot read is skipped), the mount
/// point is unescaped by [`unescape_mountinfo`].
pub fn scan_mountinfo(text: &str, root: &Path) -> MountScan {
    let mut scan = MountScan::default();
    for m in text.lines().filter_map(|l| MountInfo::from_line(l).ok()) {
        let mount_point = PathBuf::from(unescape_mountinfo(&m.mount_point.to_string_lossy()));
        if mount_point == root || !mount_point.starts_with(root) {
            continue;
        }
        match m.fs_type.as_str() {
            "cgroup" => {
                for opt in m.super_options.keys() {
                    if KNOWN_V1_CONTROLLERS.contains(&opt.as_str()) {
                        scan.hierarchies.insert(opt.clone(), mount_point.clone());
                    }
                }
            }
            "cgroup2" => scan.unified = Some(mount_point),
            _ => {}
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
24 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn mountinfo_hybrid_separate_mounts() {
        let s = scan_mountinfo(HYBRID_MOUNTINFO, Path::new("/sys/fs/cgroup"));
        assert_eq!(s.hierarchies.get("cpu").unwrap(), Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(
            s.hierarchies.get("cpuacct").unwrap(),
            Path::new("/sys/fs/cgroup/cpuacct")
        );
        assert_eq!(s.hierarchies.len(), 4, "name=systemd is not a controller");
        assert_eq!(s.unified.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn mountinfo_comount_and_other_roots() {
        let text = "\
25 24 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:10 - cgroup cgroup rw,memory,clone_children
50 1 0:40 / /other/cg\\040dir rw - cgroup cgroup rw,pids
";
        let s = scan_mountinfo(text, Path::new("/sys/fs/cgroup"));
        let cc = Path::new("/sys/fs/cgroup/cpu,cpuacct");
        assert_eq!(s.hierarchies.get("cpu").unwrap(), cc);
        assert_eq!(s.hierarchies.get("cpuacct").unwrap(), cc);
        assert_eq!(s.hierarchies.get("memory").unwrap(), Path::new("/sys/fs/cgroup/memory"));
        assert!(!s.hierarchies.contains_key("pids"), "mount outside root");
        assert_eq!(s.unified, None);

        let s = scan_mountinfo(text, Path::new("/other"));
        assert_eq!(s.hierarchies.get("pids").unwrap(), Path::new("/other/cg dir"));
    }

    #[test]
    fn mountinfo_pure_v2_root_is_not_below_itself() {
        let text = "30 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let s = scan_mountinfo(text, Path::new("/sys/fs/cgroup"));
        assert_eq!(s, MountScan::default());
    }

    #[test]
    fn labels() {
        let v2 = Layout::V2 { root: "/x".into() };
        assert_eq!(v2.version_label(), "v2");
        assert_eq!(v2.unified(), Some(Path::new("/x")));
        let h = Layout::Hybrid {
            root: "/x".into(),
            hierarchies: [
                ("cpu".to_string(), PathBuf::from("/x/cpu,cpuacct")),
                ("cpuacct".to_string(), PathBuf::from("/x/cpu,cpuacct")),
            ]
            .into(),
            unified: "/x/unified".into(),
        };
        assert_eq!(h.version_label(), "hybrid");
        assert_eq!(
            h.hierarchy_roots(),
            vec![PathBuf::from("/x/cpu,cpuacct"), PathBuf::from("/x/unified")]
        );
    }
}
