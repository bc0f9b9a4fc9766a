//! Mount operations.
//!
//! A new mount namespace starts as a copy of its parent's mount table. If the
//! copied mounts are *shared* (systemd makes `/` shared), mounts made inside
//! would propagate back to the host, so every lesson first makes its whole
//! tree private (`mount --make-rprivate /`), exactly like `unshare --mount` does.

use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

use super::{sys, Result};

/// `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)` — stop propagation both ways.
pub fn make_rprivate() -> Result<()> {
    sys(wb_image::overlay::make_rprivate(), "mount", "--make-rprivate /")
}

/// `mount -t proc proc TARGET`: a procfs showing the PID namespace of the caller.
pub fn mount_proc(target: &Path) -> Result<()> {
    sys(
        nix::mount::mount(
            Some("proc"),
            target,
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        ),
        "mount",
        format!("-t proc proc {}", target.display()),
    )
}

/// `mount -t overlay overlay -o lowerdir=...,upperdir=...,workdir=... MERGED`.
///
/// Like every mount here, it is meant to be made inside a private mount
/// namespace, so that the host's mount table never sees it.
pub fn mount_overlay(spec: &wb_image::OverlaySpec) -> Result<()> {
    let what = wb_image::classic_command(spec);
    let what = what.strip_prefix("mount ").unwrap_or(&what).to_string();
    let opts = spec
        .checked_options()
        .map_err(|reason| super::KernelError::Child(format!("mount {what}: {reason}")))?;
    sys(spec.mount_with(&opts), "mount", what)
}

/// `umount -l TARGET` (lazy, so a busy mount still leaves the tree at once).
pub fn unmount(target: &Path) -> Result<()> {
    sys(
        nix::mount::umount2(target, MntFlags::MNT_DETACH),
        "umount",
        target.display().to_string(),
    )
}

/// The propagation of the mount at `/` in our mount namespace: "shared:N", "master:N" or "private".
pub fn root_propagation() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    root_propagation_of(&text)
}

/// Pure part of [`root_propagation`].
pub fn root_propagation_of(mountinfo: &str) -> Option<String> {
    // The last mount on "/" is the one that is visible.
    let mounts = crate::observe::parse::parse_mountinfo(mountinfo).ok()?;
    let root = mounts.iter().rfind(|m| m.mount_point == "/")?;
    Some(if root.propagation.is_empty() {
        "private".to_string()
    } else {
        root.propagation.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propagation_of_root() {
        let shared =
            "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n23 22 0:5 / /proc rw shared:2 - proc proc rw\n";
        assert_eq!(root_propagation_of(shared).as_deref(), Some("shared:1"));
        let private = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n";
        assert_eq!(root_propagation_of(private).as_deref(), Some("private"));
        assert_eq!(root_propagation_of(""), None);
    }
}
