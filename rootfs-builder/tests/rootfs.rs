//! Building rootfs trees with the real busybox binaries, and (as root)
//! checking that the kernel can actually exec inside them after chroot.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rootfs_builder::build::{applets, build_rootfs, copy_libraries, BuildReport, RootfsSpec};
use rootfs_builder::libs::LibSearch;

const DYNAMIC_BUSYBOX: &str = "/var/lib/workbench/busybox-dynamic/bin/busybox";
const STATIC_BUSYBOX: &str = "/bin/busybox";

/// Whether a test can run here: `busybox` is present (scripts/setup installs
/// it) and, for a test that chroots, this is root. If not, says why it skips.
fn can_run(busybox: &str, chroot: bool) -> bool {
    let why = if !Path::new(busybox).exists() {
        format!("{busybox} is absent (run scripts/setup)")
    } else if chroot && !nix::unistd::geteuid().is_root() {
        "needs root (chroot)".to_string()
    } else {
        return true;
    };
    eprintln!("skipping: {why}");
    false
}

/// When `can_run(busybox, chroot)`: a rootfs built in a temporary directory
/// from `spec(busybox, copy_libraries)`, as (directory, rootfs, report).
fn built(busybox: &str, copy_libraries: bool, chroot: bool) -> Option<(tempfile::TempDir, PathBuf, BuildReport)> {
    if !can_run(busybox, chroot) {
        return None;
    }
    let (tmp, root) = scratch();
    let report = build_rootfs(&spec(busybox, copy_libraries), &root).unwrap();
    Some((tmp, root, report))
}

/// A temporary directory, and the path of a rootfs (not made yet) in it.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    (tmp, root)
}

fn spec(busybox: &str, copy_libraries: bool) -> RootfsSpec {
    RootfsSpec {
        busybox: PathBuf::from(busybox),
        copy_libraries,
        hostname: "wb-test".to_string(),
    }
}

/// fork, chroot(root), chdir("/"), exec argv — what a container runtime
/// does in its last step. An exec failure comes back as the spawn error.
fn run_in_chroot(root: &Path, argv: &[&str]) -> io::Result<Output> {
    let root = root.to_path_buf();
    let mut cmd = Command::new(argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env("PATH", "/bin:/sbin:/usr/bin:/usr/sbin");
    // SAFETY: between fork and exec we only call chroot and chdir, both
    // async-signal-safe system calls (nix formats short paths on the stack).
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::chroot(&root)?;
            nix::unistd::chdir("/")?;
            Ok(())
        });
    }
    cmd.output()
}

#[test]
fn static_busybox_rootfs_layout() {
    let Some((_tmp, root, report)) = built(STATIC_BUSYBOX, true, false) else {
        return;
    };

    assert_eq!(report.root, root);
    assert!(!report.busybox_dynamic);
    assert!(report.libraries.is_empty(), "static busybox needs no libraries");
    assert!(report.applets.iter().any(|a| a == "bin/sh"), "{:?}", report.applets);

    // The binary, executable.
    let bb = fs::metadata(root.join("bin/busybox")).unwrap();
    assert!(bb.is_file());
    assert_eq!(bb.mode() & 0o7777, 0o755);
    assert_eq!(bb.len(), fs::metadata(STATIC_BUSYBOX).unwrap().len());

    // Applet links point at busybox, relatively, from the right directories.
    assert_eq!(fs::read_link(root.join("bin/sh")).unwrap(), Path::new("busybox"));
    for applet in &report.applets {
        let link = root.join(applet);
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink(), "{applet}");
        // Following the link from the host lands on our copy of busybox.
        assert_eq!(
            fs::canonicalize(&link).unwrap(),
            fs::canonicalize(root.join("bin/busybox")).unwrap()
        );
    }
    for expected in ["bin/ls", "usr/bin/awk"] {
        assert!(report.applets.iter().any(|a| a == expected), "missing {expected}");
    }

    // Directories and their modes.
    for (dir, mode) in [
        ("proc", 0o555),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("var/run", 0o755),
        ("usr/sbin", 0o755),
    ] {
        let m = fs::metadata(root.join(dir)).unwrap();
        assert!(m.is_dir(), "{dir}");
        assert_eq!(m.permissions().mode() & 0o7777, mode, "{dir}");
    }

    // /etc files.
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:x:0:0:root:/root:/bin/sh\n"));
    assert!(fs::read_to_string(root.join("etc/group"))
        .unwrap()
        .starts_with("root:x:0:"));
    assert_eq!(fs::read_to_string(root.join("etc/hostname")).unwrap(), "wb-test\n");
    let hosts = fs::read_to_string(root.join("etc/hosts")).unwrap();
    assert!(hosts.contains("127.0.0.1\tlocalhost") && hosts.contains("wb-test"));

    // /dev: device nodes only as root.
    let null = root.join("dev/null");
    if nix::unistd::geteuid().is_root() {
        use std::os::unix::fs::FileTypeExt;
        let m = fs::metadata(&null).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.mode() & 0o777, 0o666);
        assert_eq!(
            (nix::sys::stat::major(m.rdev()), nix::sys::stat::minor(m.rdev())),
            (1, 3)
        );
    } else {
        assert!(!null.exists());
    }
}

#[test]
fn refuses_non_empty_destination() {
    if !can_run(STATIC_BUSYBOX, false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("precious"), "x").unwrap();
    let err = build_rootfs(&spec(STATIC_BUSYBOX, false), tmp.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("build rootfs {}: destination is not empty", tmp.path().display())
    );
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1, "nothing was written");
}

#[test]
fn applets_of_non_busybox_is_an_error() {
    let err = applets(Path::new("/bin/true")).unwrap_err().to_string();
    assert!(err.starts_with("list applets of /bin/true:"), "{err}");
}

#[test]
fn dynamic_busybox_without_libraries_fails_in_chroot_with_enoent() {
    let Some((_tmp, root, report)) = built(DYNAMIC_BUSYBOX, false, true) else {
        return;
    };
    assert!(report.busybox_dynamic);
    assert!(report.libraries.is_empty());

    // The binary IS there...
    assert!(root.join("bin/busybox").is_file());
    // ...but exec fails with ENOENT: the missing file is the PT_INTERP loader.
    let err = run_in_chroot(&root, &["/bin/busybox", "true"]).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(nix::libc::ENOENT), "{err}");

    // Copy the loader and libraries: now the same exec works.
    let libs = copy_libraries(Path::new(DYNAMIC_BUSYBOX), &root, &LibSearch::host()).unwrap();
    assert_eq!(libs[0].path_in_rootfs, Path::new("/lib64/ld-linux-x86-64.so.2"));
    for lib in &libs {
        let copied = root.join(lib.path_in_rootfs.strip_prefix("/").unwrap());
        let m = fs::symlink_metadata(&copied).unwrap();
        assert!(m.is_file(), "{} is a real file", copied.display());
        assert_eq!(m.len(), fs::metadata(&lib.host_source).unwrap().len());
        assert_eq!(
            m.mode() & 0o7777,
            fs::metadata(&lib.host_source).unwrap().mode() & 0o7777
        );
    }
    let out = run_in_chroot(&root, &["/bin/busybox", "true"]).unwrap();
    assert!(out.status.success(), "{out:?}");

    // And the applet links work through the shell inside the new root.
    let out = run_in_chroot(&root, &["/bin/sh", "-c", "cat /etc/hostname; ls /usr/bin/awk"]).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "wb-test\n/usr/bin/awk\n");
}

#[test]
fn dynamic_busybox_with_libraries_runs_in_chroot() {
    let Some((_tmp, root, report)) = built(DYNAMIC_BUSYBOX, true, true) else {
        return;
    };
    assert!(report.libraries.iter().any(|l| l.name == "libc.so.6"));
    let out = run_in_chroot(&root, &["/bin/busybox", "echo", "inside"]).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"inside\n");
}

#[test]
fn static_busybox_runs_in_chroot_without_libraries() {
    let Some((_tmp, root, _)) = built(STATIC_BUSYBOX, false, true) else {
        return;
    };
    assert!(!root.join("lib64").exists());
    let out = run_in_chroot(&root, &["/bin/sh", "-c", "echo $(ls -d /proc /tmp)"]).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"/proc /tmp\n");
}

#[test]
fn missing_busybox_leaves_no_tree() {
    let (_tmp, root) = scratch();
    let err = build_rootfs(&spec("/nonexistent/wb-busybox", false), &root).unwrap_err();
    assert_eq!(
        err.to_string(),
        "read elf /nonexistent/wb-busybox: No such file or directory"
    );
    assert!(!root.exists());
}
