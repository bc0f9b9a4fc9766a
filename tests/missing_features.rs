//! Hosts that lack what a lesson needs: a read-only cgroup mount (as inside
//! a container), a kernel without overlayfs, without veth/bridge/vxlan links.
//! Each must be refused before anything is created: one clear line naming
//! what to do, exit status 2, the host unchanged.
//!
//! The missing feature is made real for workbench alone: it runs in a private
//! mount namespace (`unshare -m`) where the cgroup mounts are remounted
//! read-only, or where the places the kernel lists its features
//! (`/proc/filesystems`, `/sys/module`, `/lib/modules/<release>`, the kernel
//! config) are covered. The host's own mounts never change.

mod common;

use std::process::{Command, Output};

/// Make the mount tree private, run `setup` (sh), then workbench with `args`.
fn in_private_mounts(setup: &str, args: &[&str]) -> Output {
    let script = format!("set -e\nmount --make-rprivate /\n{setup}\nexec \"$@\"");
    let mut argv = vec!["-m", "sh", "-c", script.as_str(), "sh", common::bin()];
    argv.extend_from_slice(args);
    Command::new("unshare").args(&argv).env("NO_COLOR", "1").output().expect("run unshare (util-linux)")
}

/// Every cgroup mount of the namespace, remounted read-only for it alone.
const RO_CGROUPS: &str = r#"for m in $(awk '$9 == "cgroup" || $9 == "cgroup2" {print $5}' /proc/self/mountinfo); do
  mount -o remount,bind,ro "$m"
done"#;

/// A kernel with no modules loaded or installed, nothing built in as
/// modules.builtin says, and an empty config: what a minimal kernel shows.
const NO_MODULES: &str = r#"mount -t tmpfs none /sys/module
rel=$(uname -r)
if [ -d "/lib/modules/$rel" ]; then mount -t tmpfs none "/lib/modules/$rel"
elif [ -d /lib/modules ]; then mount -t tmpfs none /lib/modules; mkdir "/lib/modules/$rel"
else echo "no /lib/modules to cover" >&2; exit 3; fi
: >"/lib/modules/$rel/modules.builtin"
if [ -f "/boot/config-$rel" ]; then mount --bind /dev/null "/boot/config-$rel"; fi
if [ -f /proc/config.gz ]; then mount --bind /dev/null /proc/config.gz; fi"#;

fn assert_refused(o: &Output, what: &str, needle: &str) {
    let err = common::stderr(o);
    assert_eq!(o.status.code(), Some(2), "{what}: exit status (stderr: {err})");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: one line of error, got:\n{err}");
    assert!(lines[0].contains(needle), "{what}: the error should say '{needle}': {}", lines[0]);
    assert!(common::stdout(o).trim().is_empty() || !common::stdout(o).contains("Step 1/"), "{what}: no step may run:\n{}", common::stdout(o));
}

#[test]
fn a_read_only_cgroup_mount_is_refused_before_anything_is_created() {
    require_root!();
    let _g = common::serial();
    let before = workbench::hoststate::capture();
    for args in [
        &["lesson", "cgroup-cpu-quota"][..],
        &["lesson", "cpu-shares"],
        &["lesson", "memory-oom"],
        &["lesson", "pids-limit"],
        &["run", "--memory", "64M", "--", "/bin/true"],
    ] {
        let o = in_private_mounts(RO_CGROUPS, args);
        assert_refused(&o, &args.join(" "), "read-only cgroup mount");
    }
    // workbench doctor names the problem too (and exits non-zero: a required check failed).
    let o = in_private_mounts(RO_CGROUPS, &["doctor"]);
    let row = common::stdout(&o).lines().find(|l| l.contains("cgroup mounts writable")).map(str::to_string).unwrap_or_default();
    assert!(row.contains("FAIL") && row.contains("read-only"), "doctor's row: {row:?}\n{}", common::stdout(&o));
    assert!(!o.status.success(), "doctor should fail with a read-only cgroup mount");
    common::assert_host_unchanged(&before, "runs on a read-only cgroup mount");
    // The same lessons work with the host's writable mounts: the refusal came from the remount.
    let o = common::workbench(&["lesson", "pids-limit", "--json"]);
    assert!(o.status.success(), "pids-limit on the host: {}", common::stderr(&o));
}

#[test]
fn a_kernel_without_overlayfs_is_refused() {
    require_root!();
    let _g = common::serial();
    let before = workbench::hoststate::capture();
    // /proc/filesystems as the host has it, minus overlay.
    let setup = format!(
        "{NO_MODULES}\nf=$(mktemp)\ngrep -v -w overlay /proc/filesystems >\"$f\"\nmount --bind \"$f\" /proc/filesystems\nrm -f \"$f\"\n! grep -qw overlay /proc/filesystems"
    );
    for lesson in ["overlay-demo", "image-layers"] {
        let o = in_private_mounts(&setup, &["lesson", lesson]);
        assert_refused(&o, lesson, "overlayfs");
    }
    common::assert_host_unchanged(&before, "overlay lessons without overlayfs");
}

#[test]
fn a_kernel_without_veth_bridge_or_vxlan_is_refused() {
    require_root!();
    let _g = common::serial();
    let before = workbench::hoststate::capture();
    for (args, needle) in [
        (&["lesson", "veth-bridge"][..], "cannot create veth links"),
        (&["lesson", "nat-port-map"], "cannot create veth links"),
        (&["lesson", "net-modes"], "cannot create veth links"),
        (&["lesson", "vxlan-overlay"], "cannot create veth links"),
        (&["run", "--net", "bridge", "--", "/bin/true"], "cannot create veth links"),
    ] {
        let o = in_private_mounts(NO_MODULES, args);
        if o.status.code() == Some(3) && common::stderr(&o).contains("no /lib/modules to cover") {
            eprintln!("skipped: this system has no /lib/modules to cover with an empty one (a VM's initramfs)");
            return;
        }
        assert_refused(&o, &args.join(" "), needle);
    }
    common::assert_host_unchanged(&before, "network lessons without veth");
}
