//! Hosts that lack what a lesson needs: a read-only cgroup mount (as inside
//! a container), a kernel without overlayfs, without veth/bridge/vxlan links.
//! Each must be refused before anything is created: one clear line naming
//! what to do, exit status 2, the host unchanged.
//!
//! The missing feature is made real for workbench alone: it runs in a private
//! mount namespace (`unshare -m`) where the cgroup mounts are remounted
//! read-only, or where the places the kernel lists its features
//! (`/proc/filesystems`, `/sys/module`, `/lib/modules/<release>`, the kernel
//! config) are covered. The host's own mounts and files never change.
//!
//! A kernel without a module tree (many VMs and containers have no
//! `/lib/modules` at all) and one whose tree lacks the module are both valid
//! hosts, so every refusal is proven on both, whichever of them this host is:
//! a tree that exists is hidden under an empty tmpfs, and a tree that does not
//! is added for the namespace alone (its parent is covered by a tmpfs that
//! holds bind mounts of the parent's entries and the new directory). The same
//! added tree, listing the modules, then shows that workbench reads it: the
//! refusal came from their absence.

mod common;

use std::process::{Command, Output};

/// Make the mount tree private, run `setup` (sh), then workbench with `args`.
/// A setup that cannot simulate the host on this system exits with [`SKIP`]
/// and says why on stderr.
fn in_private_mounts(setup: &str, args: &[&str]) -> Output {
    let script = format!("set -e\nmount --make-rprivate /\n{PRELUDE}\n{setup}\nexec \"$@\"");
    let mut argv = vec!["-m", "sh", "-c", script.as_str(), "sh", common::bin()];
    argv.extend_from_slice(args);
    Command::new("unshare")
        .args(&argv)
        .env("NO_COLOR", "1")
        .output()
        .expect("run unshare (util-linux)")
}

/// The exit status of a setup that cannot make its host here.
const SKIP: i32 = 97;

/// Shell functions for the setups: `wb_dir DIR` makes DIR an empty, writable
/// directory in this namespace, whether it exists or not.
const PRELUDE: &str = r#"rel=$(uname -r)
wb_shadow() { # PARENT NAME: PARENT's entries plus an empty directory NAME
  p=$(readlink -f "$1"); t=$(mktemp -d); mount -t tmpfs wbtest "$t"
  for e in "$p"/* "$p"/.[!.]* "$p"/..?*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    b=${e##*/}
    if [ -L "$e" ]; then cp -P "$e" "$t/$b"
    elif [ -d "$e" ]; then mkdir "$t/$b"; mount --rbind "$e" "$t/$b"
    else : >"$t/$b"; mount --bind "$e" "$t/$b"; fi
  done
  mkdir "$t/$2"
  mount --move "$t" "$p"
  rmdir "$t"
}
wb_dir() {
  if [ -d "$1" ]; then mount -t tmpfs wbtest "$1"
  elif [ -d "$(dirname "$1")" ]; then wb_shadow "$(dirname "$1")" "$(basename "$1")"
  else wb_dir "$(dirname "$1")"; mkdir "$1"; fi
}"#;

/// Every cgroup mount of the namespace, remounted read-only for it alone.
const RO_CGROUPS: &str = r#"for m in $(awk '$9 == "cgroup" || $9 == "cgroup2" {print $5}' /proc/self/mountinfo); do
  mount -o remount,bind,ro "$m"
done"#;

/// The kernel's module trees a host may show; each names the kernel's
/// release. A kernel with no module tree at all: `/lib/modules` hidden if it
/// exists.
const NO_TREE: &str = r#"if [ -d /lib/modules ]; then mount -t tmpfs wbtest /lib/modules; fi
[ ! -e "/lib/modules/$rel" ]"#;

/// A module tree that lists nothing: no module file, nothing built in.
const EMPTY_TREE: &str = r#"wb_dir "/lib/modules/$rel"
: >"/lib/modules/$rel/modules.builtin"
: >"/lib/modules/$rel/modules.dep""#;

/// A module tree in which overlay, veth, bridge and vxlan are modules.
const LISTED_TREE: &str = r#"wb_dir "/lib/modules/$rel"
d=/lib/modules/$rel
mkdir -p "$d/kernel/fs/overlayfs" "$d/kernel/drivers/net" "$d/kernel/net/bridge"
: >"$d/modules.builtin"
printf '%s\n' kernel/fs/overlayfs/overlay.ko: kernel/drivers/net/veth.ko: kernel/drivers/net/vxlan/vxlan.ko: 'kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko' >"$d/modules.dep""#;

/// The module trees without the feature: (what the host is, its setup).
const TREES: [(&str, &str); 2] = [
    ("no module tree", NO_TREE),
    ("a module tree without the module", EMPTY_TREE),
];

/// No module loaded, and a kernel config that sets nothing (in /boot, where
/// Debian keeps it, and in /proc/config.gz if the kernel has one); `cfg` says
/// whether there was a place for one.
const NOTHING_LOADED_OR_CONFIGURED: &str = r#"mount -t tmpfs wbtest /sys/module
cfg=
if [ -f /proc/config.gz ]; then f=$(mktemp); gzip -c </dev/null >"$f"; mount --bind "$f" /proc/config.gz; rm -f "$f"; cfg=1; fi
if [ -d /boot ]; then mount -t tmpfs wbtest /boot; : >"/boot/config-$rel"; cfg=1; fi"#;

/// Without a module tree, only the kernel's config can say that a module is
/// absent (workbench does not refuse what it cannot judge).
const CONFIG_NEEDED: &str =
    r#"[ -n "$cfg" ] || { echo "no /boot or /proc/config.gz to put an empty kernel config in" >&2; exit 97; }"#;

/// /proc/filesystems as the host has it, minus overlay.
const NO_OVERLAY_LISTED: &str = r#"f=$(mktemp)
grep -v -w overlay /proc/filesystems >"$f"
mount --bind "$f" /proc/filesystems
rm -f "$f"
! grep -qw overlay /proc/filesystems"#;

/// Whether a setup said it cannot make its host here (and say so).
fn skipped(o: &Output, what: &str) -> bool {
    if o.status.code() == Some(SKIP) {
        eprintln!("skipped {what}: {}", common::stderr(o).trim());
        return true;
    }
    false
}

fn assert_refused(o: &Output, what: &str, needle: &str) {
    let line = common::refused(o, what);
    assert!(line.contains(needle), "{what}: the error should say '{needle}': {line}");
    assert!(
        common::stdout(o).trim().is_empty() || !common::stdout(o).contains("Step 1/"),
        "{what}: no step may run:\n{}",
        common::stdout(o)
    );
}

#[test]
fn a_read_only_cgroup_mount_is_refused_before_anything_is_created() {
    let host = root_host!();
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
    let row = common::stdout(&o)
        .lines()
        .find(|l| l.contains("cgroup mounts writable"))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        row.contains("FAIL") && row.contains("read-only"),
        "doctor's row: {row:?}\n{}",
        common::stdout(&o)
    );
    assert!(!o.status.success(), "doctor should fail with a read-only cgroup mount");
    host.assert_unchanged("runs on a read-only cgroup mount");
    // The same lessons work with the host's writable mounts: the refusal came from the remount.
    let o = common::workbench(&["lesson", "pids-limit", "--json"]);
    assert!(o.status.success(), "pids-limit on the host: {}", common::stderr(&o));
}

#[test]
fn a_kernel_without_overlayfs_is_refused() {
    let host = root_host!();
    for (host, tree) in TREES {
        let setup = format!("{tree}\n{NO_OVERLAY_LISTED}");
        for lesson in ["overlay-demo", "image-layers"] {
            let o = in_private_mounts(&setup, &["lesson", lesson]);
            assert_refused(&o, &format!("{lesson} ({host})"), "overlayfs");
        }
    }
    // The same, with overlay a module of the tree: workbench finds it there
    // (mount(2) loads it), and the lesson runs.
    let o = in_private_mounts(
        &format!("{LISTED_TREE}\n{NO_OVERLAY_LISTED}"),
        &["lesson", "overlay-demo", "--json"],
    );
    assert!(
        o.status.success(),
        "overlay-demo with overlayfs as a module of the tree: exit {:?}\n{}",
        o.status.code(),
        common::stderr(&o)
    );
    host.assert_unchanged("overlay lessons without overlayfs");
}

#[test]
fn a_kernel_without_veth_bridge_or_vxlan_is_refused() {
    let host = root_host!();
    let mut proven = 0;
    for (host, tree) in TREES {
        let needs = if tree == NO_TREE { CONFIG_NEEDED } else { "" };
        let setup = format!("{NOTHING_LOADED_OR_CONFIGURED}\n{tree}\n{needs}");
        for (args, needle) in [
            (&["lesson", "veth-bridge"][..], "cannot create veth links"),
            (&["lesson", "nat-port-map"], "cannot create veth links"),
            (&["lesson", "net-modes"], "cannot create veth links"),
            (&["lesson", "vxlan-overlay"], "cannot create veth links"),
            (&["lesson", "underlay"], "cannot create veth links"),
            (
                &["run", "--net", "bridge", "--", "/bin/true"],
                "cannot create veth links",
            ),
        ] {
            let o = in_private_mounts(&setup, args);
            if skipped(&o, host) {
                break;
            }
            assert_refused(&o, &format!("{} ({host})", args.join(" ")), needle);
            proven += 1;
        }
    }
    assert!(proven >= 5, "the refusals were proven for no kind of host");
    // With the same kernel config and veth, bridge, vxlan modules of the tree,
    // workbench finds them there.
    let o = in_private_mounts(
        &format!("{NOTHING_LOADED_OR_CONFIGURED}\n{LISTED_TREE}"),
        &["doctor", "--json"],
    );
    if !skipped(&o, "the listed tree") {
        // doctor --json: JSON lines, one "check" object per check, then a summary.
        let checks: Vec<serde_json::Value> = common::stdout(&o)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap_or_else(|e| panic!("doctor --json ({e}): {l}\n{}", common::stderr(&o)))
            })
            .filter(|v| v["type"] == "check")
            .collect();
        assert!(
            !checks.is_empty(),
            "doctor --json printed no check: {}",
            common::stdout(&o)
        );
        for name in ["veth", "bridge"] {
            let detail = checks
                .iter()
                .find(|c| c["check"] == name)
                .map(|c| c["detail"].clone())
                .unwrap_or_default();
            assert_eq!(
                detail, "module (loaded on first use)",
                "doctor's {name} check with a module tree that lists it"
            );
        }
    }
    host.assert_unchanged("network lessons without veth");
}

/// No module loaded, and a kernel config that builds in veth and bridge and
/// nothing else (like [`NOTHING_LOADED_OR_CONFIGURED`], which it replaces).
const VETH_AND_BRIDGE_ONLY: &str = r#"mount -t tmpfs wbtest /sys/module
c='CONFIG_VETH=y
CONFIG_BRIDGE=y'
cfg=
if [ -f /proc/config.gz ]; then f=$(mktemp); printf '%s\n' "$c" | gzip -c >"$f"; mount --bind "$f" /proc/config.gz; rm -f "$f"; cfg=1; fi
if [ -d /boot ]; then mount -t tmpfs wbtest /boot; printf '%s\n' "$c" >"/boot/config-$rel"; cfg=1; fi"#;

#[test]
fn a_kernel_without_macvlan_is_refused_by_underlay() {
    let host = root_host!();
    // Without a place for a kernel config (the v2 VM has no /boot), veth and
    // bridge cannot be shown as built in: skip rather than test veth's refusal.
    let setup = format!("{VETH_AND_BRIDGE_ONLY}\n{CONFIG_NEEDED}\n{EMPTY_TREE}");
    let o = in_private_mounts(&setup, &["lesson", "underlay"]);
    if !skipped(&o, "veth and bridge only") {
        assert_refused(&o, "lesson underlay (no macvlan)", "cannot create macvlan links");
        assert!(common::refused(&o, "lesson underlay").contains("modprobe macvlan"));
    }
    host.assert_unchanged("underlay without macvlan");
}
