//! `workbench run --bundle DIR`: an OCI runtime bundle — a `config.json` and
//! the root filesystem it names — run by workbench's own runtime.
//!
//! The runtime spec describes a container as data: the process (argv, env,
//! cwd), the root, the hostname, the namespaces to create. runc and crun honour
//! all of it; workbench honours the subset it implements and refuses, with one
//! line, any field it would otherwise silently get wrong. Hardening fields
//! (capabilities, rlimits, masked paths, seccomp, cgroup resources) are not
//! applied: see the book's `oci-runtime` chapter.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::UsageError;

/// The namespaces `workbench run` always creates (without `--userns`): a bundle
/// must ask for exactly these, none of them joined by path.
pub const NAMESPACES: [LinuxNamespaceType; 5] = [
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Mount,
];

/// Mount destinations a bundle may list: workbench mounts its own /proc, /dev
/// (and /sys when the rootfs has the directory) in their place, as `runc
/// spec`'s defaults expect.
pub const STANDARD_MOUNTS: [&str; 7] = [
    "/proc",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/sys",
    "/sys/fs/cgroup",
];

/// What `workbench run` takes from a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleRun {
    /// `root.path`, made absolute against the bundle directory.
    pub rootfs: PathBuf,
    /// `root.readonly`: false gives the rootfs a writable overlay layer, discarded at exit.
    pub readonly: bool,
    pub args: Vec<String>,
    /// `process.env` as NAME=VALUE strings.
    pub env: Vec<String>,
    pub hostname: Option<String>,
}

/// `source` of `workbench run` written as `bundle:DIR`.
pub fn bundle_source(source: &str) -> Option<&str> {
    source.strip_prefix("bundle:")
}

/// Read `DIR/config.json` and check it (see [`check`]).
pub fn read(dir: &Path) -> Result<BundleRun, UsageError> {
    let file = dir.join("config.json");
    if !file.is_file() {
        return Err(UsageError(format!(
            "{}: no config.json: a bundle is a directory with config.json and its rootfs (runc spec writes one)",
            dir.display()
        )));
    }
    let spec = Spec::load(&file).map_err(|e| UsageError(format!("{}: {e}", file.display())))?;
    check(&spec, dir)
}

/// The subset of the spec workbench can honour, or one line naming the first field it cannot.
pub fn check(spec: &Spec, dir: &Path) -> Result<BundleRun, UsageError> {
    let no = |m: String| Err(UsageError(format!("config.json: {m}")));
    let Some(p) = spec.process() else {
        return no("no process: nothing to run".into());
    };
    if p.terminal() == Some(true) {
        return no("process.terminal is true: workbench run --bundle gives no terminal (set it to false)".into());
    }
    let args = p.args().clone().unwrap_or_default();
    if args.first().is_none_or(|a| a.is_empty()) {
        return no("process.args is empty: name the program to run".into());
    }
    let cwd = p.cwd().to_string_lossy().into_owned();
    if cwd != "/" {
        return no(format!(
            "process.cwd {cwd:?}: workbench run starts the program in / (set \"cwd\": \"/\")"
        ));
    }
    if p.user().uid() != 0 || p.user().gid() != 0 {
        return no(format!(
            "process.user {}:{}: workbench run starts the program as root (uid 0, gid 0)",
            p.user().uid(),
            p.user().gid()
        ));
    }
    let env = p.env().clone().unwrap_or_default();
    if let Some(bad) = env.iter().find(|kv| !kv.contains('=') || kv.starts_with('=')) {
        return no(format!("process.env {bad:?}: expected NAME=VALUE"));
    }
    let Some(root) = spec.root() else {
        return no("no root: name the rootfs directory in root.path".into());
    };
    let rootfs = dir.join(root.path());
    if spec.hooks().is_some() {
        return no("hooks: workbench run does not run OCI hooks (remove \"hooks\")".into());
    }
    for m in spec.mounts().iter().flatten() {
        let d = m.destination().to_string_lossy();
        if !STANDARD_MOUNTS.contains(&d.as_ref()) {
            return no(format!(
                "mounts: {d} is not one workbench run provides (it gives /proc, /dev and /sys only)"
            ));
        }
    }
    let Some(linux) = spec.linux() else {
        return no("no linux section: name the namespaces in linux.namespaces".into());
    };
    let asked = linux.namespaces().clone().unwrap_or_default();
    if let Some(ns) = asked.iter().find(|n| n.path().is_some()) {
        return no(format!(
            "linux.namespaces: joining the {} namespace at {} is not supported (workbench run creates new ones)",
            ns.typ(),
            ns.path().as_ref().map(|p| p.display().to_string()).unwrap_or_default()
        ));
    }
    if let Some(ns) = asked.iter().find(|n| !NAMESPACES.contains(&n.typ())) {
        return no(format!(
            "linux.namespaces: a {} namespace is not supported; workbench run creates pid, network, ipc, uts and mount ones",
            ns.typ()
        ));
    }
    if let Some(missing) = NAMESPACES.iter().find(|t| !asked.iter().any(|n| n.typ() == **t)) {
        return no(format!(
            "linux.namespaces lacks {missing}: workbench run always creates pid, network, ipc, uts and mount namespaces"
        ));
    }
    let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
    Ok(BundleRun {
        rootfs,
        readonly: root.readonly().unwrap_or(false),
        args,
        env,
        hostname,
    })
}

/// The bundle `workbench run` was given, read and checked: `--bundle DIR`
/// (`flag`) or `bundle:DIR` as the `source`; `None` when neither. A bundle
/// names the rootfs and the command itself, so neither may be given too, and
/// the flags in `taken` (set, name) that it also sets are refused.
pub fn resolve(
    flag: Option<&Path>,
    source: &str,
    command_given: bool,
    taken: &[(bool, &str)],
) -> Result<Option<BundleRun>, UsageError> {
    let dir = match (flag, bundle_source(source)) {
        (None, None) => return Ok(None),
        (Some(d), None) if source.is_empty() && !command_given => d.to_path_buf(),
        (None, Some(d)) if !command_given => PathBuf::from(d),
        _ => {
            return Err(UsageError(
                "--bundle: the bundle's config.json names the rootfs and the command; give no IMAGE|ROOTFS or CMD"
                    .into(),
            ))
        }
    };
    if let Some((_, flag)) = taken.iter().find(|(set, _)| *set) {
        return Err(UsageError(format!(
            "--bundle: {flag} is not taken with a bundle (its config.json sets the hostname and root.readonly)"
        )));
    }
    read(&dir).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bundle's config as `runc spec` writes it (1.1), with the lesson's edits.
    const RUNC_SPEC: &str = r#"{
  "ociVersion": "1.0.2-dev",
  "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["/bin/sleep", "1000"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
    "cwd": "/", "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": true},
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "wb-oci",
  "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}],
  "linux": {"cgroupsPath": "/workbench/wb-x", "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
    {"type": "uts"}, {"type": "mount"}], "maskedPaths": ["/proc/kcore"]}
}"#;

    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;

    fn spec(edit: impl FnOnce(&mut serde_json::Value)) -> Spec {
        let mut v: serde_json::Value = serde_json::from_str(RUNC_SPEC).unwrap();
        edit(&mut v);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_runc_style_bundle_is_read() {
        let b = check(&spec(|_| {}), Path::new("/b")).unwrap();
        assert_eq!(b.rootfs, PathBuf::from("/b/rootfs"));
        assert!(b.readonly);
        assert_eq!(b.args, vec!["/bin/sleep", "1000"]);
        assert_eq!(b.env[1], "TERM=xterm");
        assert_eq!(b.hostname.as_deref(), Some("wb-oci"));
        // An absolute root.path stays as it is.
        let b = check(&spec(|v| v["root"]["path"] = "/srv/root".into()), Path::new("/b")).unwrap();
        assert_eq!(b.rootfs, PathBuf::from("/srv/root"));
    }

    #[test]
    fn what_workbench_cannot_honour_is_one_line() {
        let cases: Vec<(&str, Edit)> = vec![
            ("process.terminal", Box::new(|v| v["process"]["terminal"] = true.into())),
            (
                "process.args is empty",
                Box::new(|v| v["process"]["args"] = serde_json::json!([])),
            ),
            ("process.cwd", Box::new(|v| v["process"]["cwd"] = "/tmp".into())),
            (
                "process.user 1000:0",
                Box::new(|v| v["process"]["user"]["uid"] = 1000.into()),
            ),
            (
                "process.env",
                Box::new(|v| v["process"]["env"] = serde_json::json!(["NOEQUALS"])),
            ),
            (
                "mounts: /data",
                Box::new(|v| v["mounts"][0]["destination"] = "/data".into()),
            ),
            (
                "a user namespace",
                Box::new(|v| v["linux"]["namespaces"][0]["type"] = "user".into()),
            ),
            (
                "a cgroup namespace",
                Box::new(|v| v["linux"]["namespaces"][1]["type"] = "cgroup".into()),
            ),
            (
                "lacks net",
                Box::new(|v| {
                    v["linux"]["namespaces"].as_array_mut().unwrap().remove(1);
                }),
            ),
            (
                "joining the net namespace at /proc/1/ns/net",
                Box::new(|v| v["linux"]["namespaces"][1]["path"] = "/proc/1/ns/net".into()),
            ),
            (
                "no process",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("process");
                }),
            ),
            (
                "no linux",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("linux");
                }),
            ),
            ("hooks", Box::new(|v| v["hooks"] = serde_json::json!({"prestart": []}))),
        ];
        for (want, edit) in cases {
            let e = check(&spec(edit), Path::new("/b")).unwrap_err().0;
            assert!(
                e.starts_with("config.json: ") && e.contains(want) && !e.contains('\n'),
                "{want}: {e}"
            );
        }
    }

    #[test]
    fn a_missing_config_is_refused_with_the_remedy() {
        let t = tempfile::tempdir().unwrap();
        let e = read(t.path()).unwrap_err().0;
        assert!(e.contains("no config.json") && e.contains("runc spec"), "{e}");
        std::fs::write(t.path().join("config.json"), "{not json").unwrap();
        let e = read(t.path()).unwrap_err().0;
        assert!(e.contains("config.json") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn bundle_prefix() {
        assert_eq!(bundle_source("bundle:/x"), Some("/x"));
        assert_eq!(bundle_source("/x"), None);
    }
}
