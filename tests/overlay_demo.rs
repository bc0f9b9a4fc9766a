//! overlay-demo as root: the upper dir really records copy-up, a 0/0
//! whiteout and an opaque directory; the overlay exists only in the child's
//! mount namespace; bad input and Ctrl-C leave the host as it was.

mod common;
#[path = "support/paused.rs"]
mod paused;

use common::{row, run_passing, step};
use paused::{char_device, mounts_of, wait_gone, xattr, Paused};

/// Index of a step in the lesson (1-based), from the text, so the tests follow the TOML.
fn step_no(id: &str) -> usize {
    let t = workbench::lesson::text::find("overlay-demo").unwrap();
    t.steps.iter().position(|s| s.id == id).unwrap() + 1
}

#[test]
fn upper_records_copy_up_whiteout_and_opaque_dir() {
    let host = root_host!();
    let run = Paused::start("overlay-demo", step_no("opaque"));
    let base = run.workdir().join("overlay");
    let kids = run.children();
    assert_eq!(kids.len(), 1, "one namespace child expected, got {kids:?}");
    let child = kids[0];

    // Copy-up: the whole lower file, then the write, in upper; lower untouched.
    assert_eq!(
        std::fs::read_to_string(base.join("upper/in_lower")).unwrap(),
        "from lower\nwritten through merged\n"
    );
    assert_eq!(
        std::fs::read_to_string(base.join("lower/in_lower")).unwrap(),
        "from lower\n"
    );
    // Whiteout: a character device 0/0 in upper, the lower file still there.
    assert_eq!(
        char_device(&base.join("upper/to_delete")),
        Some((0, 0)),
        "upper/to_delete is not a 0/0 char device"
    );
    assert!(base.join("lower/to_delete").is_file());
    // Opaque dir: the xattr, and only the new file inside.
    assert_eq!(
        xattr(&base.join("upper/dir"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    let mut names: Vec<String> = std::fs::read_dir(base.join("upper/dir"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["new"]);
    assert!(base.join("lower/dir/a").is_file() && base.join("lower/dir/b").is_file());

    // The merged view exists only in the child's mount namespace.
    let merged = base.join("merged");
    let in_child = std::path::PathBuf::from(format!("/proc/{child}/root")).join(merged.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(in_child.join("in_both")).unwrap(),
        "from upper\n"
    );
    assert!(
        !in_child.join("to_delete").exists(),
        "the whiteout must hide lower/to_delete"
    );
    assert!(!in_child.join("dir/a").exists(), "the opaque dir must hide lower/dir/a");
    assert_eq!(
        std::fs::read_dir(&merged).unwrap().count(),
        0,
        "the host sees the overlay's files"
    );
    let m = merged.display().to_string();
    assert!(
        mounts_of(&child.to_string())
            .iter()
            .any(|(p, t)| *p == m && t == "overlay"),
        "no overlay on merged in the child"
    );
    assert!(
        !mounts_of("self").iter().any(|(p, _)| *p == m),
        "the overlay leaked into the host's mount namespace"
    );

    run.finish_passing(10);
    assert!(!base.exists(), "the layer directories outlived the run");
    assert!(wait_gone(&kids));
    host.assert_unchanged("overlay-demo");
}

#[test]
fn json_report_shows_the_mount_and_the_layers() {
    let host = root_host!();
    let (steps, summary) = run_passing("overlay-demo", &[]);
    assert_eq!(summary["steps_passed"], 10);
    let mount = step(&steps, "mount");
    let added: Vec<&serde_json::Value> = common::rows(mount, "mounts")
        .into_iter()
        .filter(|r| r["change"] == "added")
        .collect();
    assert_eq!(added.len(), 1, "one new mount: {added:?}");
    assert!(added[0]["key"].as_str().unwrap().ends_with("/overlay/merged"));
    assert!(added[0]["after"].as_str().unwrap().starts_with("overlay "));
    let raw = common::transcript(mount)
        .into_iter()
        .map(|(_, _, o)| o)
        .collect::<String>();
    assert!(
        raw.contains("lowerdir=") && raw.contains("upperdir=") && raw.contains("workdir="),
        "mountinfo line missing: {raw}"
    );
    // (step, fact, field of its row, value)
    for (id, fact, field, want) in [
        ("merged-view", "merged/in_both", "after", "file \"from upper\""),
        ("whiteout", "upper/to_delete", "after", "whiteout (char device 0/0)"),
        (
            "opaque",
            "upper/dir",
            "after",
            "dir [new] opaque (trusted.overlay.opaque=y)",
        ),
        ("copy-up", "lower/in_lower", "change", "same"),
    ] {
        assert_eq!(row(step(&steps, id), "facts", fact)[field], want, "{id}: {fact}");
    }
    // Each layer's tree is in the transcript.
    let layout = common::transcript(step(&steps, "layout"))
        .into_iter()
        .map(|(_, c, _)| c)
        .collect::<Vec<_>>();
    for t in ["tree lower", "tree upper", "tree work", "tree merged"] {
        assert!(layout.iter().any(|c| c == t), "{t} missing from {layout:?}");
    }
    let stack = step(&steps, "stack");
    assert!(common::transcript(stack).iter().any(|(_, _, o)| o == "from lower1"));
    assert_eq!(step(&steps, "host-unchanged")["pass"], true);
    host.assert_unchanged("overlay-demo");
}

#[test]
fn options_of_other_lessons_and_non_root_are_refused_before_anything_is_made() {
    let host = root_host!();
    for args in [
        &["--quota", "5"][..],
        &["--hostname", "abc"],
        &["--pids-max", "0"],
        &["--subnet", "abc"],
    ] {
        let o = common::lesson("overlay-demo", args);
        let e = common::refused(&o, &format!("{args:?}"));
        common::assert_has(&e, "does not apply to overlay-demo (it takes no options)");
        common::assert_has(&e, args[0]);
    }
    let o = common::workbench_as_nobody(&["lesson", "overlay-demo"]);
    assert_eq!(o.status.code(), Some(2));
    common::assert_has(&common::stderr(&o), "needs root");
    host.assert_unchanged("refused overlay-demo runs");
}

#[test]
fn ctrl_c_with_the_overlay_mounted_cleans_up() {
    let host = root_host!();
    let run = Paused::start("overlay-demo", step_no("mount"));
    assert!(run.workdir().join("overlay/upper/in_upper").exists());
    assert_eq!(run.children().len(), 1);
    run.ctrl_c_cleans_up();
    host.assert_unchanged("overlay-demo interrupted by SIGINT");
}

#[test]
fn shell_sees_the_overlay_again() {
    let host = root_host!();
    let marker = common::shell_marker(
        "overlay-demo",
        &[],
        b"echo marker-$(cat merged/in_both)-$(ls merged | tr '\\n' ,)\nexit\n",
    );
    assert_eq!(marker, "marker-from upper-dir,in_both,in_lower,in_upper,");
    host.assert_unchanged("overlay-demo --shell");
}
