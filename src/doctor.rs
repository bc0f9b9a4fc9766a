//! `workbench doctor`: can this host run the lessons? One row per check, each
//! with a remedy, so a classroom can fix its lab VMs before the lesson starts.

use std::path::Path;

use serde::Serialize;

use crate::host::Host;

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
    Finding { check: check.into(), ok, required, detail: detail.into(), remedy: remedy.into() }
}

/// Whether the kernel offers a feature, as far as the host shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    /// How: built in, a loaded module, a module file.
    Offered(String),
    /// The kernel's config or its list of built-in modules was read and names it nowhere.
    Absent,
    /// Not found, but the host shows neither its kernel config nor its modules list.
    Unknown,
}

impl Feature {
    pub fn offered(&self) -> Option<&str> {
        match self {
            Feature::Offered(how) => Some(how),
            _ => None,
        }
    }
}

/// How the kernel offers a feature: built in, a loaded module, a module file, or not at all.
pub fn kernel_feature(config: &str, module: &str) -> Feature {
    if Path::new("/sys/module").join(module).exists() {
        return Feature::Offered("loaded".into());
    }
    let release = nix::sys::utsname::uname().ok().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    let configs = [format!("/boot/config-{release}")];
    let mut text = configs.iter().filter_map(|p| std::fs::read_to_string(p).ok()).next();
    if text.is_none() {
        if let Ok(f) = std::fs::File::open("/proc/config.gz") {
            let mut s = String::new();
            use std::io::Read;
            if flate2::read::GzDecoder::new(f).read_to_string(&mut s).is_ok() {
                text = Some(s);
            }
        }
    }
    if let Some(t) = &text {
        if t.lines().any(|l| l == format!("{config}=y")) {
            return Feature::Offered("built in".into());
        }
    }
    let moddir = Path::new("/lib/modules").join(&release);
    let builtin = std::fs::read_to_string(moddir.join("modules.builtin"));
    if let Ok(builtin) = &builtin {
        if builtin.lines().any(|l| l.ends_with(&format!("/{module}.ko"))) {
            return Feature::Offered("built in".into());
        }
    }
    if let Ok(dep) = std::fs::read_to_string(moddir.join("modules.dep")) {
        if dep.lines().any(|l| l.split(':').next().is_some_and(|m| m.contains(&format!("/{module}.ko")))) {
            return Feature::Offered("module (loaded on first use)".into());
        }
    }
    if let Some(t) = &text {
        if t.lines().any(|l| l == format!("{config}=m")) {
            return Feature::Offered("module".into());
        }
    }
    // Nothing names it: absent, if anything that would have named it was read.
    if text.is_some() || builtin.is_ok() {
        Feature::Absent
    } else {
        Feature::Unknown
    }
}

/// The cgroup layout of the host, from the filesystem types under /sys/fs/cgroup.
pub fn cgroup_layout() -> String {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        "v2 (unified)".into()
    } else if root.join("unified/cgroup.controllers").exists() {
        "hybrid (v1 controllers + cgroup2 at /sys/fs/cgroup/unified)".into()
    } else if root.join("memory").exists() || root.join("cpu").exists() {
        "v1".into()
    } else {
        "none mounted".into()
    }
}

fn which(tool: &str) -> Option<String> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path.split(':').chain(["/usr/sbin", "/sbin"]).map(|d| Path::new(d).join(tool)).find(|p| p.is_file());
    found.map(|p| p.display().to_string())
}

/// Run every check.
pub fn checks(host: &Host) -> Vec<Finding> {
    let mut v = Vec::new();
    v.push(finding("running as root", host.is_root, true, if host.is_root { "euid 0" } else { "not root" }, "run workbench as root (or with sudo): lessons call clone(2), mount(2) and write cgroup files"));
    let kinds: Vec<&str> = crate::kernel::ns::KINDS.iter().map(|(k, _, _)| *k).filter(|k| Path::new("/proc/self/ns").join(k).exists()).collect();
    let all = crate::kernel::ns::KINDS.len();
    v.push(finding("namespaces", kinds.len() == all, true, format!("{} of {all}: {}", kinds.len(), kinds.join(" ")), "use a kernel built with CONFIG_NAMESPACES and all CONFIG_*_NS options (any distribution kernel has them)"));
    let (ok, detail) = match crate::cgroupview::layout_line() {
        Ok(l) => (true, l),
        Err(e) => (false, format!("{} ({e})", cgroup_layout())),
    };
    v.push(finding("cgroup layout", ok, true, detail, "mount cgroup2 at /sys/fs/cgroup (systemd does this by default)"));
    if let Ok(layout) = wb_cgroup::detect_system() {
        let (ok, detail) = match crate::kit::cg::require_writable(&layout, &[wb_cgroup::Controller::Cpu, wb_cgroup::Controller::Memory, wb_cgroup::Controller::Pids]) {
            Ok(()) => (true, "writable".to_string()),
            Err(e) => (false, e.to_string().split(" (").next().unwrap_or_default().to_string()),
        };
        v.push(finding("cgroup mounts writable", ok, true, detail, "run workbench on a host or VM whose /sys/fs/cgroup is writable (not inside a container)"));
    }
    for (name, config, module, required) in [("overlayfs", "CONFIG_OVERLAY_FS", "overlay", false), ("veth", "CONFIG_VETH", "veth", false), ("bridge", "CONFIG_BRIDGE", "bridge", false)] {
        let how = kernel_feature(config, module);
        v.push(finding(name, how.offered().is_some(), required, how.offered().unwrap_or("not found"), "install your distribution's full kernel modules package (e.g. linux-modules-extra on Ubuntu), then modprobe it"));
    }
    v.push(finding(
        "busybox (static)",
        host.busybox_static.is_some(),
        true,
        host.busybox_static.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "not found".into()),
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
    v.push(finding("mount propagation of /", true, false, format!("{prop} (lessons make their own namespace private before mounting)"), ""));
    for tool in ["ip", "iptables", "nft"] {
        let found = which(tool);
        v.push(finding(&format!("tool {tool}"), found.is_some(), false, found.unwrap_or_else(|| "not found".into()), "run scripts/setup, or apt-get install iproute2 iptables nftables"));
    }
    let (ok, detail) = match crate::firewall::detect() {
        Ok(b) => (true, b.name().to_string()),
        Err(e) => (false, e),
    };
    v.push(finding("firewall for nat-port-map", ok, false, detail, "apt-get install nftables"));
    let blockers = crate::firewall::host_forward_blockers();
    v.push(finding(
        "forwarded packets allowed (nat-port-map)",
        blockers.is_empty(),
        false,
        if blockers.is_empty() { "no forward chain with policy drop".to_string() } else { format!("policy drop in {}", blockers.join(", ")) },
        "nat-port-map needs a host whose forward chains accept by default (docker and ufw set DROP); use a lab VM without them",
    ));
    let leftovers = leftover_runs();
    v.push(finding("leftovers of killed runs", leftovers == 0, false, format!("{leftovers} run(s) with a dead owner"), "run `workbench cleanup`"));
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
