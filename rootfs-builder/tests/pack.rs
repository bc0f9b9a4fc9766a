//! Pack/unpack round trip on a fixture tree with every kind of entry.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{self, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use rootfs_builder::pack::{pack_tar, pack_tar_gz, unpack_tar};
use tar::EntryType;

const MTIME: i64 = 1_000_000_000;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn set_mtime(path: &Path, secs: i64) {
    let t = TimeSpec::new(secs, 0);
    stat::utimensat(nix::fcntl::AT_FDCWD, path, &t, &t, UtimensatFlags::NoFollowSymlink).unwrap();
}

/// root/
///   a/        0750
///   a/f       0640 "hello", uid 1234 gid 5678 (root only), mtime MTIME
///   a/h       hard link to a/f
///   a/up  ->  ../b-file
///   abs   ->  /etc/passwd
///   b-file    0644
///   empty/
///   fifo      0600
///   null      char 1,3 (root only)
///
/// Returns the temporary directory and `root` in it.
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    fixture_in(&root);
    (tmp, root)
}

fn fixture_in(root: &Path) {
    fs::create_dir(root.join("a")).unwrap();
    fs::write(root.join("a/f"), "hello").unwrap();
    fs::set_permissions(root.join("a/f"), fs::Permissions::from_mode(0o640)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(root.join("a/f"), Some(1234), Some(5678)).unwrap();
    } else {
        eprintln!("not root: skipping chown 1234:5678 and the device node in the fixture");
    }
    fs::hard_link(root.join("a/f"), root.join("a/h")).unwrap();
    std::os::unix::fs::symlink("../b-file", root.join("a/up")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).unwrap();
    fs::write(root.join("b-file"), "b").unwrap();
    fs::set_permissions(root.join("b-file"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    fs::set_permissions(root.join("fifo"), fs::Permissions::from_mode(0o600)).unwrap();
    if is_root() {
        stat::mknod(
            &root.join("null"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            stat::makedev(1, 3),
        )
        .unwrap();
        fs::set_permissions(root.join("null"), fs::Permissions::from_mode(0o666)).unwrap();
    }
    set_mtime(&root.join("a/f"), MTIME);
    set_mtime(&root.join("a/up"), MTIME + 1);
    fs::set_permissions(root.join("a"), fs::Permissions::from_mode(0o750)).unwrap();
    set_mtime(&root.join("a"), MTIME + 2);
}

#[test]
fn tar_headers_are_sorted_numeric_and_typed() {
    let (_tmp, root) = fixture();

    let bytes = pack_tar(&root, Vec::new()).unwrap();
    // Deterministic: packing again gives the same bytes, gzip included.
    assert_eq!(bytes, pack_tar(&root, Vec::new()).unwrap());
    assert_eq!(
        pack_tar_gz(&root, Vec::new()).unwrap(),
        pack_tar_gz(&root, Vec::new()).unwrap()
    );

    let mut archive = tar::Archive::new(&bytes[..]);
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let h = entry.header().clone();
        // Numeric owners only: no user or group names.
        assert_eq!(h.username_bytes(), Some(&b""[..]), "{path}");
        assert_eq!(h.groupname_bytes(), Some(&b""[..]), "{path}");
        let meta = fs::symlink_metadata(root.join(&path)).unwrap();
        assert_eq!(h.uid().unwrap(), meta.uid() as u64, "{path}");
        assert_eq!(h.gid().unwrap(), meta.gid() as u64, "{path}");
        match path.as_str() {
            "a" => {
                assert_eq!(h.entry_type(), EntryType::Directory);
                assert_eq!(h.mode().unwrap(), 0o750);
                assert_eq!(h.mtime().unwrap(), (MTIME + 2) as u64);
            }
            "a/f" => {
                assert_eq!(h.entry_type(), EntryType::Regular);
                assert_eq!(h.mode().unwrap(), 0o640);
                assert_eq!(h.mtime().unwrap(), MTIME as u64);
                if is_root() {
                    assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (1234, 5678));
                }
                let mut s = String::new();
                entry.read_to_string(&mut s).unwrap();
                assert_eq!(s, "hello");
            }
            "a/h" => {
                assert_eq!(h.entry_type(), EntryType::Link);
                assert_eq!(h.link_name().unwrap().unwrap(), Path::new("a/f"));
                assert_eq!(h.size().unwrap(), 0);
            }
            "a/up" => {
                assert_eq!(h.entry_type(), EntryType::Symlink);
                assert_eq!(h.link_name().unwrap().unwrap(), Path::new("../b-file"));
            }
            "abs" => assert_eq!(h.link_name().unwrap().unwrap(), Path::new("/etc/passwd")),
            "fifo" => assert_eq!(h.entry_type(), EntryType::Fifo),
            "null" => {
                assert_eq!(h.entry_type(), EntryType::Char);
                assert_eq!(h.device_major().unwrap(), Some(1));
                assert_eq!(h.device_minor().unwrap(), Some(3));
            }
            _ => {}
        }
        seen.push(path);
    }
    let mut expected = vec!["a", "a/f", "a/h", "a/up", "abs", "b-file", "empty", "fifo"];
    if is_root() {
        expected.push("null");
    }
    // Sorted, depth first, every directory before its contents.
    assert_eq!(seen, expected);
}

#[test]
fn round_trip_preserves_tree() {
    let (tmp, root) = fixture();
    let gz = pack_tar_gz(&root, Vec::new()).unwrap();
    let out = tmp.path().join("out");
    unpack_tar(flate2::read::GzDecoder::new(&gz[..]), &out).unwrap();

    let f = fs::metadata(out.join("a/f")).unwrap();
    assert_eq!(fs::read_to_string(out.join("a/f")).unwrap(), "hello");
    assert_eq!(f.mode() & 0o7777, 0o640);
    assert_eq!(f.mtime(), MTIME);
    if is_root() {
        assert_eq!((f.uid(), f.gid()), (1234, 5678));
    }
    // The hard link is a second name of the same inode, not a copy.
    let h = fs::metadata(out.join("a/h")).unwrap();
    assert_eq!(h.ino(), f.ino());
    assert_eq!(f.nlink(), 2);
    // Symlinks are kept as symlinks, targets verbatim.
    assert_eq!(fs::read_link(out.join("a/up")).unwrap(), Path::new("../b-file"));
    assert_eq!(fs::read_link(out.join("abs")).unwrap(), Path::new("/etc/passwd"));
    assert_eq!(fs::symlink_metadata(out.join("a/up")).unwrap().mtime(), MTIME + 1);
    // Directories get their mode and mtime after their contents were written.
    let a = fs::metadata(out.join("a")).unwrap();
    assert_eq!(a.mode() & 0o7777, 0o750);
    assert_eq!(a.mtime(), MTIME + 2);
    assert!(out.join("empty").is_dir());
    assert!(fs::metadata(out.join("fifo")).unwrap().file_type().is_fifo());
    if is_root() {
        let null = fs::metadata(out.join("null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), stat::makedev(1, 3));
        assert_eq!(null.mode() & 0o7777, 0o666);
    }
    // Packing the unpacked tree gives the same archive.
    assert_eq!(
        pack_tar(&out, Vec::new()).unwrap(),
        pack_tar(&root, Vec::new()).unwrap()
    );
}

/// A tar with one entry whose name is written raw (the tar crate refuses to
/// *create* such names, but an attacker's archive can contain anything).
fn raw_tar(entries: &[(&str, EntryType, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, data_or_link) in entries {
        let mut h = tar::Header::new_gnu();
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME as u64);
        if *kind == EntryType::Symlink {
            h.set_link_name(data_or_link).unwrap();
            h.set_size(0);
            h.set_cksum();
            builder.append(&h, &[][..]).unwrap();
        } else {
            h.set_size(data_or_link.len() as u64);
            h.set_cksum();
            builder.append(&h, data_or_link.as_bytes()).unwrap();
        }
    }
    builder.into_inner().unwrap()
}

#[test]
fn unpack_rejects_parent_dir_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let tar = raw_tar(&[("../evil", EntryType::Regular, "x")]);
    let err = unpack_tar(&tar[..], &dest).unwrap_err();
    assert_eq!(err.to_string(), "unpack ../evil: entry is absolute or contains `..`");
    assert!(!tmp.path().join("evil").exists());
}

#[test]
fn unpack_rejects_absolute_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("{}/evil", tmp.path().display());
    let tar = raw_tar(&[(&name, EntryType::Regular, "x")]);
    let err = unpack_tar(&tar[..], &tmp.path().join("dest")).unwrap_err();
    assert!(err.to_string().ends_with("entry is absolute or contains `..`"), "{err}");
    assert!(!tmp.path().join("evil").exists());
}

#[test]
fn unpack_refuses_to_write_through_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let tar = raw_tar(&[
        ("x", EntryType::Symlink, outside.to_str().unwrap()),
        ("x/pwned", EntryType::Regular, "gotcha"),
    ]);
    let dest = tmp.path().join("dest");
    let err = unpack_tar(&tar[..], &dest).unwrap_err().to_string();
    assert!(
        err.starts_with("unpack x/pwned: parent ") && err.ends_with("is a symlink"),
        "{err}"
    );
    assert!(!outside.join("pwned").exists());
}

#[test]
fn pack_missing_dir_names_it() {
    let err = pack_tar(Path::new("/nonexistent/wb-rootfs"), Vec::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pack /nonexistent/wb-rootfs: No such file or directory"
    );
}
