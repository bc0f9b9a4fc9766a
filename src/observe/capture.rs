//! Reading a [`Snapshot`] of a live process from `/proc`.

use std::path::Path;

use super::parse::{parse_cgroup, parse_mountinfo, Snapshot};
use crate::kernel::ns::read_namespaces;

/// Which parts to capture.
#[derive(Debug, Clone, Copy, Default)]
pub struct Capture {
    pub namespaces: bool,
    pub cgroups: bool,
    pub mounts: bool,
    pub net: bool,
}

impl Capture {
    /// Nothing from /proc: a lesson fills the facts itself.
    pub const FACTS: Capture = Capture {
        namespaces: false,
        cgroups: false,
        mounts: false,
        net: false,
    };
    pub const NS: Capture = Capture {
        namespaces: true,
        ..Capture::FACTS
    };
    pub const NS_MOUNTS: Capture = Capture {
        mounts: true,
        ..Capture::NS
    };
    pub const MOUNTS: Capture = Capture {
        mounts: true,
        ..Capture::FACTS
    };
    pub const ALL: Capture = Capture {
        namespaces: true,
        cgroups: true,
        mounts: true,
        net: true,
    };
}

/// Capture a snapshot of process `pid` as seen through `/proc`.
pub fn capture(label: impl Into<String>, pid: i32, what: Capture) -> anyhow::Result<Snapshot> {
    use anyhow::Context;
    let proc_root = Path::new("/proc");
    let mut s = Snapshot {
        label: label.into(),
        pid,
        ..Default::default()
    };
    if what.namespaces {
        s.namespaces = read_namespaces(proc_root, pid)?;
    }
    if what.cgroups {
        let path = format!("/proc/{pid}/cgroup");
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        s.cgroups = parse_cgroup(&text)?;
    }
    if what.mounts {
        let path = format!("/proc/{pid}/mountinfo");
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        s.mounts = parse_mountinfo(&text)?;
    }
    if what.net {
        s.net = Some(crate::observe::net::net_state_of(pid)?);
    }
    Ok(s)
}

/// The root directory of a process (`readlink /proc/PID/root`): changes with `chroot`.
pub fn root_dir(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/root"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("(unreadable: {e})"))
}
