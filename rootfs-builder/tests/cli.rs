//! The `rootfs-builder` binary: output format and error reporting.

use std::fs;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rootfs-builder");
const DYNAMIC_BUSYBOX: &str = "/var/lib/workbench/busybox-dynamic/bin/busybox";

#[test]
fn needs_prints_like_ldd() {
    if !Path::new(DYNAMIC_BUSYBOX).exists() {
        eprintln!("skipping: {DYNAMIC_BUSYBOX} is absent (run scripts/setup)");
        return;
    }
    let out = Command::new(BIN).args(["needs", DYNAMIC_BUSYBOX]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("libc.so.6 => /") && l.ends_with("/libc.so.6")),
        "{text}"
    );
    assert!(
        text.ends_with("\t/lib64/ld-linux-x86-64.so.2 (interpreter)\n"),
        "{text}"
    );
}

#[test]
fn errors_are_one_lowercase_line() {
    let out = Command::new(BIN).args(["needs", "/etc/passwd"]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rootfs-builder: read elf /etc/passwd: not an ELF file\n"
    );
}

#[test]
fn pack_writes_gzip_to_stdout_and_plain_tar_to_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tree");
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::write(dir.join("bin/hello"), "hi").unwrap();

    let out = Command::new(BIN)
        .arg("pack")
        .arg(&dir)
        .args(["-o", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(&out.stdout[..2], b"\x1f\x8b", "gzip magic");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&out.stdout[..]));
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["bin", "bin/hello"]);

    let tar_path = tmp.path().join("tree.tar");
    let out = Command::new(BIN)
        .arg("pack")
        .arg(&dir)
        .arg("-o")
        .arg(&tar_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let bytes = fs::read(&tar_path).unwrap();
    assert_eq!(&bytes[257..262], b"ustar", "plain tar, not gzip");
}
