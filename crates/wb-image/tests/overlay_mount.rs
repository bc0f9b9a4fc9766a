//! Real overlay mounts (root only), each inside a private mount namespace on
//! its own thread so the host mount table never changes.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};

use common::{
    describe, hardlink_groups, in_private_mount_ns, in_scratch_mount_ns, mkdir, mount_points, tempdir, write_file,
    TarFixture,
};
use wb_image::image::{load_docker_archive, load_oci, save_docker_archive, save_oci, ImageConfig};
use wb_image::layer::upper_to_layer_file;
use wb_image::overlay::{is_opaque, is_whiteout, render_tree, tree, OverlaySpec};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn read(p: PathBuf) -> String {
    fs::read_to_string(p).unwrap()
}

#[test]
fn classic_overlay_tutorial() {
    require_root!("classic_overlay_tutorial");
    let t = tempdir();
    let base = t.path().to_path_buf();
    let merged_str = base.join("merged").display().to_string();

    let result = in_private_mount_ns(move || {
        let spec = OverlaySpec::under(&base, 1);
        spec.create_dirs().unwrap();
        let lower = &spec.lowers[0];
        write_file(&lower.join("in_lower"), "from lower\n", 0o644);
        write_file(&lower.join("in_both"), "lower\n", 0o644);
        write_file(&lower.join("to_delete"), "bye\n", 0o644);
        write_file(&lower.join("dir/a"), "a\n", 0o644);
        write_file(&lower.join("dir/b"), "b\n", 0o644);
        write_file(&spec.upper.join("in_upper"), "from upper\n", 0o644);
        write_file(&spec.upper.join("in_both"), "upper\n", 0o644);

        let guard = spec.mount_guarded().unwrap();
        let m = spec.merged.clone();
        assert!(
            fs::read_to_string("/proc/thread-self/mountinfo")
                .unwrap()
                .contains(" - overlay overlay "),
            "overlay visible in our namespace"
        );

        // The merged view: union of both, upper wins.
        assert_eq!(names(&m), ["dir", "in_both", "in_lower", "in_upper", "to_delete"]);
        assert_eq!(read(m.join("in_both")), "upper\n");
        assert_eq!(read(m.join("in_lower")), "from lower\n");

        // Writing a lower file copies it up; the lower copy is untouched.
        fs::write(m.join("in_lower"), "changed\n").unwrap();
        assert_eq!(read(spec.upper.join("in_lower")), "changed\n");
        assert_eq!(read(lower.join("in_lower")), "from lower\n");

        // Deleting a lower file leaves a 0/0 char device whiteout in upper.
        fs::remove_file(m.join("to_delete")).unwrap();
        assert!(!m.join("to_delete").exists());
        let wh = fs::symlink_metadata(spec.upper.join("to_delete")).unwrap();
        assert!(is_whiteout(&wh), "upper/to_delete is a whiteout");
        assert!(lower.join("to_delete").exists());

        // rm -r of a lower dir, then mkdir again: an opaque dir hides the old content.
        fs::remove_dir_all(m.join("dir")).unwrap();
        fs::create_dir(m.join("dir")).unwrap();
        fs::write(m.join("dir/new"), "new\n").unwrap();
        assert_eq!(names(&m.join("dir")), ["new"]);
        assert!(is_opaque(&spec.upper.join("dir")).unwrap());
        assert_eq!(names(&lower.join("dir")), ["a", "b"]);

        let upper_tree = render_tree(&tree(&spec.upper).unwrap());
        guard.unmount().unwrap();
        assert!(!mount_points("/proc/thread-self/mountinfo").contains(&m.display().to_string()));
        // Unmounted: merged is an empty dir again.
        assert!(names(&m).is_empty());
        upper_tree
    });
    insta::assert_snapshot!(result, @r"
    .
    |-- dir/ (opaque)
    |   `-- new
    |-- in_both
    |-- in_lower
    |-- in_upper
    `-- to_delete (whiteout c 0/0)
    ");
    // The host never saw the mount.
    assert!(!mount_points("/proc/self/mountinfo").contains(&merged_str));
}

#[test]
fn several_lowers_stack_top_first() {
    require_root!("several_lowers_stack_top_first");
    in_scratch_mount_ns(move |base| {
        let spec = OverlaySpec::under(&base, 3);
        spec.create_dirs().unwrap();
        let [l1, l2, l3] = [&spec.lowers[0], &spec.lowers[1], &spec.lowers[2]];
        for (l, n) in [(l1, "1"), (l2, "2"), (l3, "3")] {
            write_file(&l.join("same"), n, 0o644);
            write_file(&l.join(format!("only{n}")), n, 0o644);
        }
        write_file(&l3.join("dir/old"), "old", 0o644);
        write_file(&l3.join("hidden"), "x", 0o644);
        // lower2 carries markers like an unpacked image layer would.
        wb_image::overlay::make_whiteout(&l2.join("hidden")).unwrap();
        mkdir(&l2.join("dir"), 0o755);
        wb_image::overlay::set_opaque(&l2.join("dir")).unwrap();
        write_file(&l2.join("dir/newer"), "n", 0o644);

        assert!(spec.options_string().starts_with(&format!(
            "lowerdir={}:{}:{},",
            l1.display(),
            l2.display(),
            l3.display()
        )));
        let _g = spec.mount_guarded().unwrap();
        let m = &spec.merged;
        assert_eq!(read(m.join("same")), "1", "top-most lower wins");
        assert_eq!(names(m), ["dir", "only1", "only2", "only3", "same"]);
        assert_eq!(names(&m.join("dir")), ["newer"], "opaque lower2/dir hides lower3/dir");
        // Writing creates the file in upper only.
        fs::write(m.join("only3"), "w").unwrap();
        assert_eq!(read(spec.upper.join("only3")), "w");
        assert_eq!(read(l3.join("only3")), "3");
    });
}

/// Lower with modes, owners, a symlink and hard links; changes through the
/// merged view; then base layer (the lower) + diff layer (the upper) through
/// both image formats, flattened, must give exactly the merged view.
#[test]
fn image_of_lower_plus_upper_flattens_to_the_merged_view() {
    require_root!("image_of_lower_plus_upper_flattens_to_the_merged_view");
    in_scratch_mount_ns(move |base| {
        let spec = OverlaySpec::under(&base.join("ovl"), 1);
        spec.create_dirs().unwrap();
        let lower = &spec.lowers[0];
        write_file(&lower.join("bin/tool"), "tool\n", 0o4755);
        fs::hard_link(lower.join("bin/tool"), lower.join("bin/tool2")).unwrap();
        symlink("tool", lower.join("bin/sh")).unwrap();
        write_file(&lower.join("home/u/file"), "mine\n", 0o600);
        std::os::unix::fs::lchown(lower.join("home/u/file"), Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::lchown(lower.join("home/u"), Some(1000), Some(1000)).unwrap();
        write_file(&lower.join("etc/shadow"), "s\n", 0o640);
        write_file(&lower.join("var/cache/a"), "a\n", 0o644);
        write_file(&lower.join("keep"), "keep\n", 0o644);

        let guard = spec.mount_guarded().unwrap();
        let m = spec.merged.clone();
        fs::remove_file(m.join("etc/shadow")).unwrap();
        fs::remove_dir_all(m.join("var/cache")).unwrap();
        fs::create_dir(m.join("var/cache")).unwrap();
        write_file(&m.join("var/cache/b"), "b\n", 0o644);
        fs::write(m.join("home/u/file"), "changed\n").unwrap(); // copy-up keeps owner/mode
        write_file(&m.join("new"), "new\n", 0o644);
        fs::hard_link(m.join("new"), m.join("new-link")).unwrap();
        symlink("/etc/passwd", m.join("abs-link")).unwrap();

        let base_tar = base.join("base.tar");
        let diff_tar = base.join("diff.tar");
        upper_to_layer_file(lower, &base_tar).unwrap();
        upper_to_layer_file(&spec.upper, &diff_tar).unwrap();
        let layers = vec![base_tar, diff_tar];
        let cfg = ImageConfig {
            name: "wb-ovl".into(),
            tag: "latest".into(),
            cmd: vec!["/bin/sh".into()],
            env: vec![],
        };

        let merged_tree = describe(&tree(&m).unwrap());
        let merged_links = hardlink_groups(&m);
        assert_eq!(
            merged_links,
            vec![
                vec!["bin/tool".to_string(), "bin/tool2".to_string()],
                vec!["new".to_string(), "new-link".to_string()]
            ]
        );

        save_oci(&layers, &cfg, &base.join("oci")).unwrap();
        save_docker_archive(&layers, &cfg, &base.join("docker.tar")).unwrap();
        let images = [
            ("oci", load_oci(&base.join("oci"), "latest").unwrap()),
            (
                "docker",
                load_docker_archive(&base.join("docker.tar"), "wb-ovl").unwrap(),
            ),
        ];
        for (label, img) in images {
            let flat = base.join(format!("flat-{label}"));
            img.flatten_into(&flat).unwrap();
            assert_eq!(describe(&tree(&flat).unwrap()), merged_tree, "{label}");
            assert_eq!(hardlink_groups(&flat), merged_links, "{label}");
            let f = fs::metadata(flat.join("home/u/file")).unwrap();
            assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (1000, 1000, 0o600));
            assert!(!flat.join("etc/shadow").exists() && !flat.join("var/cache/a").exists());

            // The same image as overlay lowers: mounting them gives the same view again.
            let lowers = img.unpack_for_overlay(&base.join(format!("layers-{label}"))).unwrap();
            let spec2 = OverlaySpec::new(
                lowers,
                base.join(format!("u2-{label}")),
                base.join(format!("w2-{label}")),
                base.join(format!("m2-{label}")),
            );
            spec2.create_dirs().unwrap();
            let _g2 = spec2.mount_guarded().unwrap();
            assert_eq!(
                describe(&tree(&spec2.merged).unwrap()),
                merged_tree,
                "{label} as overlay"
            );
        }
        drop(guard);
    });
}

#[test]
fn mount_errors_name_the_mount_point() {
    require_root!("mount_errors_name_the_mount_point");
    let err = in_scratch_mount_ns(move |base| {
        let spec = OverlaySpec::under(&base, 1);
        // No directories created: the kernel refuses.
        spec.mount().unwrap_err().to_string()
    });
    assert!(
        err.starts_with("mount overlay on ") && err.contains("/merged: "),
        "{err}"
    );
}

#[test]
fn fixture_tar_flattened_through_image_hides_whiteouts_in_overlay_too() {
    require_root!("fixture_tar_flattened_through_image_hides_whiteouts_in_overlay_too");
    in_scratch_mount_ns(move |base| {
        let l1 = TarFixture::new()
            .dir("etc", 0o755, 0, 0)
            .file("etc/a", 0o644, 0, 0, "a")
            .file("etc/b", 0o644, 0, 0, "b")
            .write_to(&base.join("l1.tar"));
        let l2 = TarFixture::new().whiteout("etc/a").write_to(&base.join("l2.tar"));
        let l3 = TarFixture::new()
            .dir("etc", 0o700, 0, 0)
            .opaque("etc")
            .file("etc/c", 0o644, 0, 0, "c")
            .write_to(&base.join("l3.tar"));
        let cfg = ImageConfig {
            name: "x".into(),
            tag: "t".into(),
            ..Default::default()
        };
        save_oci(&[l1, l2, l3], &cfg, &base.join("oci")).unwrap();
        let img = load_oci(&base.join("oci"), "t").unwrap();
        // Two layers deep: after l2 only etc/b is left; after l3 only etc/c.
        let lowers = img.unpack_for_overlay(&base.join("layers")).unwrap();
        assert_eq!(lowers.len(), 3);
        let spec = OverlaySpec::new(lowers[1..].to_vec(), base.join("u"), base.join("w"), base.join("m"));
        spec.create_dirs().unwrap();
        {
            let _g = spec.mount_guarded().unwrap();
            assert_eq!(names(&base.join("m/etc")), ["b"]);
        }
        let spec = OverlaySpec { lowers, ..spec };
        let _g = spec.mount_guarded().unwrap();
        assert_eq!(names(&base.join("m/etc")), ["c"]);
        assert_eq!(fs::metadata(base.join("m/etc")).unwrap().mode() & 0o7777, 0o700);
    });
}
