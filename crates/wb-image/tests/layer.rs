//! Layer tar conversion both ways: overlay upper dir -> tar -> overlay
//! markers or a flattened rootfs; path traversal is refused.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use common::{describe, hardlink_groups, mkdir, owner, tempdir, write_file, TarFixture};
use wb_image::layer::{apply_layer, list_layer, upper_to_layer, ApplyMode};
use wb_image::overlay::{is_opaque, is_whiteout, make_whiteout, render_tree, set_opaque, tree};

/// An upper dir as overlayfs would leave it: changed files, a whiteout, an
/// opaque dir, a symlink, hard links, odd modes and owners.
fn fixture_upper(root: &Path) {
    mkdir(root, 0o755);
    write_file(&root.join("a"), "hello\n", 0o640);
    std::os::unix::fs::lchown(root.join("a"), Some(1000), Some(100)).unwrap();
    mkdir(&root.join("d"), 0o750);
    set_opaque(&root.join("d")).unwrap();
    write_file(&root.join("d/new"), "new\n", 0o644);
    mkdir(&root.join("sub"), 0o755);
    make_whiteout(&root.join("sub/x")).unwrap();
    make_whiteout(&root.join("gone")).unwrap();
    symlink("a", root.join("ln")).unwrap();
    write_file(&root.join("h1"), "linked\n", 0o4755);
    fs::hard_link(root.join("h1"), root.join("h2")).unwrap();
    nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// A temporary directory with `fixture_upper` in "upper", and that upper dir
/// as a layer.
fn upper_layer() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let t = tempdir();
    let upper = t.path().join("upper");
    fixture_upper(&upper);
    let bytes = upper_to_layer(&upper, Vec::new()).unwrap();
    (t, upper, bytes)
}

#[test]
fn upper_dir_whiteouts_and_opaque_dirs_become_wh_files() {
    require_root!("upper_dir_whiteouts_and_opaque_dirs_become_wh_files");
    let (_t, upper, bytes) = upper_layer();
    let listing: Vec<String> = list_layer(&bytes[..])
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {:o} {}:{}{}",
                e.path,
                e.kind,
                e.mode,
                e.uid,
                e.gid,
                e.link.as_ref().map(|l| format!(" -> {l}")).unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        listing,
        vec![
            "a file 640 1000:100",
            "d/ dir 750 0:0",
            "d/.wh..wh..opq file 0 0:0",
            "d/new file 644 0:0",
            "fifo fifo 600 0:0",
            ".wh.gone file 0 0:0",
            "h1 file 4755 0:0",
            "h2 hardlink 4755 0:0 -> h1",
            "ln symlink 777 0:0 -> a",
            "sub/ dir 755 0:0",
            "sub/.wh.x file 0 0:0",
        ]
    );
    // mtimes are kept; the output is deterministic.
    let a_mtime = fs::metadata(upper.join("a")).unwrap().mtime() as u64;
    assert_eq!(list_layer(&bytes[..]).unwrap()[0].mtime, a_mtime);
    assert_eq!(upper_to_layer(&upper, Vec::new()).unwrap(), bytes);
}

#[test]
fn layer_applied_in_overlay_mode_recreates_markers() {
    require_root!("layer_applied_in_overlay_mode_recreates_markers");
    let (t, upper, bytes) = upper_layer();

    let back = t.path().join("back");
    let report = apply_layer(&bytes[..], &back, ApplyMode::Overlay).unwrap();
    assert_eq!(report.opaque_dirs, vec!["d"]);
    assert_eq!(report.whiteouts, vec!["gone", "sub/x"]);

    let gone = fs::symlink_metadata(back.join("gone")).unwrap();
    assert!(
        gone.file_type().is_char_device() && gone.rdev() == 0,
        "gone is a 0/0 char device"
    );
    assert!(is_whiteout(&fs::symlink_metadata(back.join("sub/x")).unwrap()));
    assert!(is_opaque(&back.join("d")).unwrap());
    assert!(!is_opaque(&back.join("sub")).unwrap());

    assert_eq!(describe(&tree(&back).unwrap()), describe(&tree(&upper).unwrap()));
    assert_eq!(hardlink_groups(&back), vec![vec!["h1".to_string(), "h2".to_string()]]);
    for p in ["a", "d", "h1", "ln"] {
        let (x, y) = (
            fs::symlink_metadata(upper.join(p)).unwrap(),
            fs::symlink_metadata(back.join(p)).unwrap(),
        );
        assert_eq!(x.mtime(), y.mtime(), "mtime of {p}");
    }
    // And converting the re-created upper dir again gives the very same tar.
    assert_eq!(upper_to_layer(&back, Vec::new()).unwrap(), bytes);
}

#[test]
fn reserved_wh_names_in_upper_are_refused() {
    let t = tempdir();
    write_file(&t.path().join(".wh.sneaky"), "", 0o644);
    let err = upper_to_layer(t.path(), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("reserved for whiteouts"), "{err}");
}

fn base_layer() -> TarFixture {
    TarFixture::new()
        .dir("etc", 0o755, 0, 0)
        .file("etc/passwd", 0o644, 0, 0, "root:x:0:0\n")
        .file("etc/hosts", 0o644, 0, 0, "127.0.0.1 localhost\n")
        .dir("d", 0o755, 0, 0)
        .file("d/old1", 0o644, 0, 0, "old\n")
        .dir("d/sub", 0o700, owner(1000), owner(1000))
        .file("d/sub/old2", 0o600, owner(1000), owner(1000), "old\n")
        .dir("gone", 0o755, 0, 0)
        .file("gone/inside", 0o644, 0, 0, "x\n")
        .dir("keep", 0o755, 0, 0)
        .file("keep/x", 0o644, 0, 0, "v1\n")
        .symlink("keep/ln", "x")
        .hardlink("keep/hl", "keep/x")
}

fn diff_layer() -> TarFixture {
    TarFixture::new()
        .whiteout("etc/passwd")
        .dir("d", 0o755, 0, 0)
        .opaque("d")
        .file("d/new", 0o644, 0, 0, "new\n")
        .whiteout("gone")
        .file("keep/x", 0o664, owner(1000), owner(50), "v2\n")
        .whiteout("never-existed")
}

#[test]
fn flatten_deletes_whited_out_paths_and_clears_opaque_dirs() {
    let t = tempdir();
    let dest = t.path().join("rootfs");
    apply_layer(&base_layer().bytes()[..], &dest, ApplyMode::Flatten).unwrap();
    assert_eq!(
        hardlink_groups(&dest),
        vec![vec!["keep/hl".to_string(), "keep/x".to_string()]]
    );
    let r = apply_layer(&diff_layer().bytes()[..], &dest, ApplyMode::Flatten).unwrap();
    assert_eq!(r.whiteouts, vec!["etc/passwd", "gone", "never-existed"]);
    assert_eq!(r.opaque_dirs, vec!["d"]);

    let entries = tree(&dest).unwrap();
    insta::assert_snapshot!(render_tree(&entries), @r"
    .
    |-- d/
    |   `-- new
    |-- etc/
    |   `-- hosts
    `-- keep/
        |-- hl
        |-- ln -> x
        `-- x
    ");
    // keep/x was replaced by a new file: the old hard link keeps the old content.
    assert_eq!(fs::read_to_string(dest.join("keep/x")).unwrap(), "v2\n");
    assert_eq!(fs::read_to_string(dest.join("keep/hl")).unwrap(), "v1\n");
    let x = fs::metadata(dest.join("keep/x")).unwrap();
    assert_eq!((x.mode() & 0o7777, x.uid(), x.gid()), (0o664, owner(1000), owner(50)));
    assert_eq!(x.mtime(), 1_700_000_000);
    assert_eq!(fs::metadata(dest.join("d")).unwrap().mtime(), 1_700_000_000);
    // No markers are left behind in Flatten mode.
    assert!(entries
        .iter()
        .all(|e| !e.path.contains(".wh.") && e.kind != "whiteout" && !e.opaque));
}

#[test]
fn opaque_marker_keeps_what_the_same_layer_added_before_it() {
    let t = tempdir();
    let dest = t.path().join("rootfs");
    apply_layer(&base_layer().bytes()[..], &dest, ApplyMode::Flatten).unwrap();
    // "+early" sorts before ".wh..wh..opq" in some writers' order.
    let layer = TarFixture::new()
        .dir("d", 0o755, 0, 0)
        .file("d/+early", 0o644, 0, 0, "e\n")
        .opaque("d")
        .file("d/late", 0o644, 0, 0, "l\n");
    apply_layer(&layer.bytes()[..], &dest, ApplyMode::Flatten).unwrap();
    let mut names: Vec<String> = fs::read_dir(dest.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["+early", "late"]);
}

#[test]
fn read_only_dirs_are_filled_then_locked() {
    /// Makes `ro` writable again before the temp dir is removed (a non-root
    /// user could not empty it otherwise).
    struct Unlock(std::path::PathBuf);
    impl Drop for Unlock {
        fn drop(&mut self) {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
        }
    }
    let t = tempdir();
    let dest = t.path().join("rootfs");
    let _unlock = Unlock(dest.join("ro"));
    let layer = TarFixture::new()
        .dir("ro", 0o555, owner(0), owner(0))
        .file("ro/f", 0o444, owner(0), owner(0), "f\n");
    apply_layer(&layer.bytes()[..], &dest, ApplyMode::Flatten).unwrap();
    assert_eq!(fs::read_to_string(dest.join("ro/f")).unwrap(), "f\n");
    assert_eq!(fs::metadata(dest.join("ro")).unwrap().mode() & 0o7777, 0o555);
}

fn assert_unsafe(layer: TarFixture, what: &str) {
    let t = tempdir();
    let dest = t.path().join("a/b/rootfs");
    fs::create_dir_all(&dest).unwrap();
    let err = apply_layer(&layer.bytes()[..], &dest, ApplyMode::Flatten).expect_err(&format!("{what} must be refused"));
    assert!(
        matches!(
            err,
            wb_image::Error::UnsafePath { .. } | wb_image::Error::InvalidEntry { .. }
        ),
        "{what}: unexpected error {err}"
    );
    // Nothing appeared beside the destination.
    let mut around: Vec<String> = Vec::new();
    for d in [t.path().to_path_buf(), t.path().join("a"), t.path().join("a/b")] {
        for e in fs::read_dir(&d).unwrap() {
            around.push(e.unwrap().path().display().to_string());
        }
    }
    around.sort();
    let expected: Vec<String> = ["a", "a/b", "a/b/rootfs"]
        .iter()
        .map(|p| t.path().join(p).display().to_string())
        .collect();
    assert_eq!(around, expected, "{what}: files written outside the destination");
}

#[test]
fn path_traversal_is_refused() {
    use tar::EntryType::*;
    assert_unsafe(TarFixture::new().raw(Regular, "../evil", "", "x"), "a '..' entry");
    assert_unsafe(
        TarFixture::new().raw(Regular, "ok/../../evil", "", "x"),
        "an inner '..'",
    );
    assert_unsafe(TarFixture::new().raw(Regular, "/abs-evil", "", "x"), "an absolute path");
    assert_unsafe(
        TarFixture::new()
            .symlink("esc", "../..")
            .raw(Regular, "esc/evil", "", "x"),
        "a write through a symlink leading out",
    );
    assert_unsafe(
        TarFixture::new()
            .symlink("esc", "../../..")
            .raw(Directory, "esc/evil/", "", ""),
        "a directory through a symlink leading out",
    );
    assert_unsafe(
        TarFixture::new().symlink("esc", "..").raw(Regular, "esc/.wh.b", "", ""),
        "a whiteout through a symlink leading out",
    );
    assert_unsafe(
        TarFixture::new().raw(Link, "hl", "../../../etc/passwd", ""),
        "a hard link to a file outside",
    );
    assert_unsafe(
        TarFixture::new().symlink("esc", "../..").raw(Link, "hl", "esc/x", ""),
        "a hard link through a symlink leading out",
    );
    assert_unsafe(TarFixture::new().raw(Regular, ".wh...", "", ""), "a whiteout of '..'");
}

#[test]
fn symlinks_on_the_way_resolve_inside_the_destination() {
    let t = tempdir();
    let dest = t.path().join("rootfs");
    // usrmerge style: lib -> usr/lib (relative) and an absolute one.
    let layer = TarFixture::new()
        .dir("usr", 0o755, 0, 0)
        .dir("usr/lib", 0o755, 0, 0)
        .symlink("lib", "usr/lib")
        .symlink("abs", "/usr/lib")
        .file("lib/one", 0o644, 0, 0, "1\n")
        .file("abs/two", 0o644, 0, 0, "2\n");
    apply_layer(&layer.bytes()[..], &dest, ApplyMode::Flatten).unwrap();
    assert_eq!(fs::read_to_string(dest.join("usr/lib/one")).unwrap(), "1\n");
    assert_eq!(fs::read_to_string(dest.join("usr/lib/two")).unwrap(), "2\n");
    assert_eq!(fs::read_link(dest.join("abs")).unwrap(), Path::new("/usr/lib"));
}

#[test]
fn long_names_and_link_targets_survive_a_round_trip() {
    let t = tempdir();
    let upper = t.path().join("upper");
    let deep = format!("{}/{}", "d".repeat(90), "e".repeat(90));
    let long_target = format!("../{}", "t".repeat(150));
    write_file(&upper.join(&deep).join("file"), "deep\n", 0o644);
    symlink(&long_target, upper.join("long-link")).unwrap();
    fs::hard_link(upper.join(&deep).join("file"), upper.join("z-hard")).unwrap();
    let bytes = upper_to_layer(&upper, Vec::new()).unwrap();
    let back = t.path().join("back");
    apply_layer(&bytes[..], &back, ApplyMode::Flatten).unwrap();
    assert_eq!(fs::read_to_string(back.join(&deep).join("file")).unwrap(), "deep\n");
    assert_eq!(fs::read_link(back.join("long-link")).unwrap(), Path::new(&long_target));
    assert_eq!(describe(&tree(&back).unwrap()), describe(&tree(&upper).unwrap()));
    assert_eq!(
        hardlink_groups(&back),
        vec![vec![format!("{deep}/file"), "z-hard".to_string()]]
    );
}
