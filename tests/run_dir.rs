//! The run directory on a restricted filesystem. Most hosts mount `/run`
//! `nodev` (systemd) and often `noexec` too (initramfs-tools), so a rootfs
//! built in `/run/workbench/tmp/...` could neither execute its busybox nor
//! open its `/dev/null`. Workbench then works in `/var/lib/workbench/tmp`, or,
//! as a last resort, gives each working directory a tmpfs of its own. These
//! tests pin the run directory (WORKBENCH_RUN_DIR) to such a filesystem to
//! exercise the last resort.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde_json::Value;

/// A tmpfs mounted with `flags` on a fresh `wb-` directory, private,
/// unmounted (lazily, so a failed test cannot leave it busy) on drop.
struct TestTmpfs {
    dir: tempfile::TempDir,
}

impl TestTmpfs {
    fn new(flags: MsFlags) -> TestTmpfs {
        let dir = tempfile::Builder::new()
            .prefix("wb-rundir-")
            .tempdir()
            .expect("tempdir");
        mount(Some("wbtest"), dir.path(), Some("tmpfs"), flags, Some("mode=0755")).expect("mount tmpfs");
        let t = TestTmpfs { dir };
        mount(None::<&str>, t.path(), None::<&str>, MsFlags::MS_PRIVATE, None::<&str>).expect("make private");
        t
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestTmpfs {
    fn drop(&mut self) {
        let _ = umount2(self.dir.path(), MntFlags::MNT_DETACH);
    }
}

fn restricted() -> MsFlags {
    MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID
}

/// Mount points at or below `dir` in our mount namespace.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn run_lesson(run_dir: &Path, lesson: &str) -> (i32, Vec<Value>, String) {
    let o = Command::new(common::bin())
        .args(["lesson", lesson, "--json"])
        .env("NO_COLOR", "1")
        .env("WORKBENCH_RUN_DIR", run_dir)
        .output()
        .expect("run workbench");
    let lines = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (
        o.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn restricted_filesystems_are_detected() {
    require_root!();
    let _g = common::serial();
    let nodev = TestTmpfs::new(MsFlags::MS_NODEV);
    assert!(workbench::state::fs_restricted(nodev.path()));
    let noexec = TestTmpfs::new(MsFlags::MS_NOEXEC);
    assert!(workbench::state::fs_restricted(noexec.path()));
    let plain = TestTmpfs::new(MsFlags::MS_NOSUID);
    assert!(!workbench::state::fs_restricted(plain.path()));
}

#[test]
fn lessons_run_when_the_run_directory_is_nodev_noexec() {
    require_root!();
    let _g = common::serial();
    let fs = TestTmpfs::new(restricted());
    let run_dir = fs.path().join("run");
    for lesson in ["chroot-busybox", "mount-proc"] {
        let (code, lines, stderr) = run_lesson(&run_dir, lesson);
        let summary = lines
            .iter()
            .find(|v| v["type"] == "summary")
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            code, 0,
            "{lesson} on a nodev,noexec run directory: {summary}\nstderr: {stderr}"
        );
        assert_eq!(summary["pass"], true);
        // The working directory's own tmpfs is gone, and so is the directory.
        assert_eq!(
            mounts_under(fs.path()),
            vec![fs.path().to_path_buf()],
            "{lesson} left mounts behind"
        );
        let left: Vec<_> = std::fs::read_dir(run_dir.join("tmp"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{lesson} left working directories: {left:?}");
    }
    let (_, lines, _) = run_lesson(&run_dir, "chroot-busybox");
    let works = lines
        .iter()
        .find(|v| v["id"] == "chroot-works")
        .expect("chroot-works step");
    assert!(
        works["transcript"][0]["output"]
            .as_str()
            .unwrap_or_default()
            .contains("hello from the chroot"),
        "{works}"
    );
}
