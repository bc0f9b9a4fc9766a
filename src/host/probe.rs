//! Facts about the host that lessons depend on: privileges and tools.
//!
//! The chroot lesson needs a *dynamically* linked busybox and every other
//! lesson a *static* one. Debian's `busybox` and `busybox-static` packages
//! conflict, so `scripts/setup` installs the static one and unpacks the
//! dynamic one under /var/lib/workbench, and the workbench package ships it
//! under /usr/lib/workbench (see `scripts/package`); either may also be named with
//! `WORKBENCH_BUSYBOX_STATIC` / `WORKBENCH_BUSYBOX_DYNAMIC`, and the search
//! list replaced with `WORKBENCH_BUSYBOX_PATHS` (colon-separated).

use std::path::{Path, PathBuf};

/// Where to look for busybox binaries.
pub const BUSYBOX_CANDIDATES: &[&str] = &[
    "/bin/busybox",
    "/usr/bin/busybox",
    "/sbin/busybox",
    "/usr/sbin/busybox",
    // The Debian package's copy (scripts/package), then scripts/setup's.
    "/usr/lib/workbench/busybox-dynamic/bin/busybox",
    "/var/lib/workbench/busybox-dynamic/bin/busybox",
    "/usr/lib/initramfs-tools/bin/busybox",
];

/// Facts gathered once per command.
#[derive(Debug, Clone, Default)]
pub struct Host {
    pub is_root: bool,
    pub busybox_static: Option<PathBuf>,
    pub busybox_dynamic: Option<PathBuf>,
}

impl Host {
    pub fn probe() -> Host {
        let mut h = Host {
            is_root: nix::unistd::geteuid().is_root(),
            ..Default::default()
        };
        let mut candidates: Vec<PathBuf> = Vec::new();
        for var in ["WORKBENCH_BUSYBOX_STATIC", "WORKBENCH_BUSYBOX_DYNAMIC"] {
            if let Some(p) = std::env::var_os(var) {
                candidates.push(PathBuf::from(p));
            }
        }
        match std::env::var("WORKBENCH_BUSYBOX_PATHS") {
            // Replaces the default search list (for unusual hosts, and for tests).
            Ok(list) => candidates.extend(list.split(':').filter(|s| !s.is_empty()).map(PathBuf::from)),
            Err(_) => candidates.extend(BUSYBOX_CANDIDATES.iter().map(PathBuf::from)),
        }
        let mut seen: Vec<PathBuf> = Vec::new();
        for c in candidates {
            if h.busybox_static.is_some() && h.busybox_dynamic.is_some() {
                break;
            }
            let Ok(real) = std::fs::canonicalize(&c) else { continue };
            // /bin/busybox and /usr/bin/busybox are one file on a merged-/usr host: read it once.
            if seen.contains(&real) {
                continue;
            }
            seen.push(real.clone());
            match rootfs_builder::elf::is_dynamic(&real) {
                Ok(true) if h.busybox_dynamic.is_none() => h.busybox_dynamic = Some(real),
                Ok(false) if h.busybox_static.is_none() => h.busybox_static = Some(real),
                _ => {}
            }
        }
        h
    }

    /// Fail unless running as root, naming why the lesson needs it.
    pub fn require_root(&self, why: &str) -> anyhow::Result<()> {
        if !self.is_root {
            anyhow::bail!("this needs root ({why}): run it in a root shell or with sudo");
        }
        Ok(())
    }

    pub fn require_static_busybox(&self) -> anyhow::Result<&Path> {
        self.busybox_static.as_deref().ok_or_else(|| {
            anyhow::anyhow!("no statically linked busybox found (looked in {}): run scripts/setup, or apt-get install busybox-static", BUSYBOX_CANDIDATES.join(", "))
        })
    }

    pub fn require_dynamic_busybox(&self) -> anyhow::Result<&Path> {
        self.busybox_dynamic.as_deref().ok_or_else(|| {
            anyhow::anyhow!("no dynamically linked busybox found (looked in {}): run scripts/setup, which unpacks Debian's busybox into /var/lib/workbench/busybox-dynamic (the workbench package ships one)", BUSYBOX_CANDIDATES.join(", "))
        })
    }
}
