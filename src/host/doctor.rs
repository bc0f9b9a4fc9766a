//! `workbench doctor`: can this host run the lessons? One row per check, each
//! with a remedy, so a classroom can fix its lab VMs before the lesson starts.

use std::path::Path;

use serde::Serialize;

use super::{features, Host};

/// One doctor check.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: String,
    pub ok: bool,
    /// Required for the lessons of issue scope; optional ones only warn.
    pub required: bool,
    pub detail: String,
    /// What to do if the check fails (kept for passing checks too, so the
    /// book's troubleshooting table lists every remedy).
    pub remedy: String,
}

fn finding(check: &str, ok: bool, required: bool, detail: impl Into<String>, remedy: &str) -> Finding {
    Finding {
        check: check.into(),
        ok,
        required,
        detail: detail.into(),
        remedy: remedy.into(),
    }
}

/// Run every check.
pub fn checks(host: &Host) -> Vec<Finding> {
    let mut v = Vec::new();
    v.push(finding(
        "running as root",
        host.is_root,
        true,
        if host.is_root { "euid 0" } else { "not root" },
        "run workbench as root (or with sudo): lessons call clone(2), mount(2) and write cgroup files",
    ));
    let kinds: Vec<&str> = crate::kernel::ns::KINDS
        .iter()
        .map(|(k, _, _)| *k)
        .filter(|k| Path::new("/proc/self/ns").join(k).exists())
        .collect();
    let all = crate::kernel::ns::KINDS.len();
    v.push(finding(
        "namespaces",
        kinds.len() == all,
        true,
        format!("{} of {all}: {}", kinds.len(), kinds.join(" ")),
        "use a kernel built with CONFIG_NAMESPACES and all CONFIG_*_NS options (any distribution kernel has them)",
    ));
    let (ok, detail) = match features::cgroup_layout_line() {
        Ok(l) => (true, l),
        Err(e) => (false, e),
    };
    v.push(finding(
        "cgroup layout",
        ok,
        true,
        detail,
        "mount cgroup2 at /sys/fs/cgroup (systemd does this by default)",
    ));
    if let Ok(layout) = wb_cgroup::detect_system() {
        let (ok, detail) = match features::require_writable_cgroups(
            &layout,
            &[
                wb_cgroup::Controller::Cpu,
                wb_cgroup::Controller::Memory,
                wb_cgroup::Controller::Pids,
            ],
        ) {
            Ok(()) => (true, "writable".to_string()),
            Err(e) => (false, e.to_string().split(" (").next().unwrap_or_default().to_string()),
        };
        v.push(finding(
            "cgroup mounts writable",
            ok,
            true,
            detail,
            "run workbench on a host or VM whose /sys/fs/cgroup is writable (not inside a container)",
        ));
    }
    for (name, config, module, required) in [
        ("overlayfs", "CONFIG_OVERLAY_FS", "overlay", false),
        ("veth", "CONFIG_VETH", "veth", false),
        ("bridge", "CONFIG_BRIDGE", "bridge", false),
    ] {
        let how = features::kernel_feature(config, module);
        v.push(finding(name, how.offered().is_some(), required, how.offered().unwrap_or("not found"), "install your distribution's full kernel modules package (e.g. linux-modules-extra on Ubuntu), then modprobe it"));
    }
    v.push(finding(
        "busybox (static)",
        host.busybox_static.is_some(),
        true,
        host.busybox_static
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "not found".into()),
        "run scripts/setup, or apt-get install busybox-static",
    ));
    v.push(finding(
        "busybox (dynamic, for chroot-busybox)",
        host.busybox_dynamic.is_some(),
        false,
        host.busybox_dynamic.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "not found".into()),
        "run scripts/setup (it unpacks Debian's busybox into /var/lib/workbench/busybox-dynamic), or reinstall the workbench package (it ships one in /usr/lib/workbench)",
    ));
    let prop = crate::kernel::mount::root_propagation().unwrap_or_else(|| "unknown".into());
    v.push(finding(
        "mount propagation of /",
        true,
        false,
        format!("{prop} (lessons make their own namespace private before mounting)"),
        "",
    ));
    for tool in ["ip", "iptables", "nft"] {
        let found = features::which(tool).map(|p| p.display().to_string());
        v.push(finding(
            &format!("tool {tool}"),
            found.is_some(),
            false,
            found.unwrap_or_else(|| "not found".into()),
            "run scripts/setup, or apt-get install iproute2 iptables nftables",
        ));
    }
    let (ok, detail) = match crate::hostobj::firewall::detect() {
        Ok(b) => (true, b.name().to_string()),
        Err(e) => (false, e),
    };
    v.push(finding(
        "firewall for nat-port-map",
        ok,
        false,
        detail,
        "apt-get install nftables",
    ));
    let blockers = crate::hostobj::firewall::host_forward_blockers();
    v.push(finding(
        "forwarded packets allowed (nat-port-map)",
        blockers.is_empty(),
        false,
        if blockers.is_empty() { "no forward chain with policy drop".to_string() } else { format!("policy drop in {}", blockers.join(", ")) },
        "nat-port-map needs a host whose forward chains accept by default (docker and ufw set DROP); use a lab VM without them",
    ));
    let leftovers = leftover_runs();
    v.push(finding(
        "leftovers of killed runs",
        leftovers == 0,
        false,
        format!("{leftovers} run(s) with a dead owner"),
        "run `workbench cleanup`",
    ));
    v
}

fn leftover_runs() -> usize {
    let dir = crate::state::run_root().join("runs");
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter_map(|t| serde_json::from_str::<crate::state::RunState>(&t).ok())
                .filter(|s| !s.owner_alive())
                .count()
        })
        .unwrap_or(0)
}
