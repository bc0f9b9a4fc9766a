//! Kernel features and host tools the lessons need, checked before anything is created.
//!
//! A kernel offers a feature built in, as a loaded module, or as a module file
//! loaded on first use; the kernel config (`/boot/config-*`, `/proc/config.gz`)
//! and the module lists under `/lib/modules` tell which. A check refuses only
//! what the host can be seen to lack.

use std::path::{Path, PathBuf};

use wb_cgroup::{Controller, Layout};

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
    let release = nix::sys::utsname::uname()
        .ok()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
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
        if dep.lines().any(|l| {
            l.split(':')
                .next()
                .is_some_and(|m| m.contains(&format!("/{module}.ko")))
        }) {
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

/// Refuse to start when the kernel cannot make the link kinds a lesson needs
/// (`veth`, `bridge`, `vxlan`): each is a kernel module or built in. The
/// kernel would load a module on the first netlink request, but a missing
/// one would only fail halfway through the lesson.
/// Only a kernel that can be seen to lack one is refused: when the host shows
/// neither its kernel config nor its modules directory, the lesson runs.
pub fn require_link_kinds(kinds: &[&str]) -> anyhow::Result<()> {
    for kind in kinds {
        let config = format!("CONFIG_{}", kind.to_ascii_uppercase());
        if kernel_feature(&config, kind) == Feature::Absent {
            anyhow::bail!(
                "this kernel cannot create {kind} links (no module {kind} loaded or installed, {config} not set): install the kernel's modules package (linux-modules-extra on Ubuntu) and run `modprobe {kind}`"
            );
        }
    }
    Ok(())
}

/// Inside a container /sys/fs/cgroup is often mounted read-only: say so
/// before anything is created, instead of failing at the first mkdir.
pub fn require_writable_cgroups(layout: &Layout, controllers: &[Controller]) -> anyhow::Result<()> {
    for planned in wb_cgroup::planned_paths(layout, "wb-probe", controllers)? {
        if let Some(dir) = planned.ancestors().skip(1).find(|p| p.is_dir()) {
            if let Err(nix::errno::Errno::EROFS) = nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK) {
                anyhow::bail!("{} is on a read-only cgroup mount (as inside a container): run workbench on a host or VM whose /sys/fs/cgroup is writable", dir.display());
            }
        }
    }
    Ok(())
}

/// A program on PATH, or else in the usual directories (`/usr/sbin` is not
/// on every root PATH), if installed.
pub fn which(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|d| !d.as_os_str().is_empty())
        .chain(["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

/// One line describing the host's cgroup layout: version and usable controllers
/// (on error, what /sys/fs/cgroup shows and why detection failed).
pub fn cgroup_layout_line() -> Result<String, String> {
    let layout = wb_cgroup::detect_system().map_err(|e| format!("{} ({e})", cgroup_layout_fallback()))?;
    let s = wb_cgroup::layout_summary(&layout);
    let usable: Vec<String> = s
        .workbench
        .iter()
        .map(|(c, r)| match r {
            Ok(v) => format!("{c} ({v})"),
            Err(why) => format!("{c}: {why}"),
        })
        .collect();
    Ok(format!("{} at {}; {}", s.version, s.root.display(), usable.join(", ")))
}

/// The cgroup layout as the directories under /sys/fs/cgroup show it (when detection failed).
fn cgroup_layout_fallback() -> String {
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
