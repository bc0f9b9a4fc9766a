//! image-layers as root: the diff layer holds only the container's changes
//! with `.wh.` whiteouts and the opaque marker; the docker-save directory and
//! the OCI layout have the expected shape and are accepted by skopeo; the
//! loaded image mounts back to the container's tree; Ctrl-C cleans up.

mod common;
#[path = "support/paused.rs"]
mod paused;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{run_passing, step};
use paused::{char_device, mounts_of, wait_gone, xattr, Paused};

fn step_no(id: &str) -> usize {
    let t = workbench::lesson::text::find("image-layers").unwrap();
    t.steps.iter().position(|s| s.id == id).unwrap() + 1
}

/// (path, entry type, size) of every entry of a tar file (gzip or plain).
fn tar_entries(path: &Path) -> Vec<(String, tar::EntryType, u64)> {
    let mut raw = Vec::new();
    std::fs::File::open(path).unwrap().read_to_end(&mut raw).unwrap();
    let r: Box<dyn Read> = if raw.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(&raw[..]))
    } else {
        Box::new(&raw[..])
    };
    let mut a = tar::Archive::new(r);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
                e.header().size().unwrap(),
            )
        })
        .collect()
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn layers_images_and_the_loaded_tree_are_real() {
    let host = root_host!();
    let mut run = Paused::start("image-layers", step_no("run-container"));
    let wd = run.workdir();

    // The base layer: gzip, numeric owners only.
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(wd.join("layers/base.tar.gz")).unwrap(),
    ));
    let mut n = 0;
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert!(
            h.username().ok().flatten().unwrap_or("").is_empty(),
            "owner name in {:?}",
            e.path()
        );
        n += 1;
    }
    assert!(n > 100, "base layer has only {n} entries");

    // The running container: its changes are in upper, its view is the overlay.
    let upper = wd.join("container/upper");
    assert_eq!(
        char_device(&upper.join("etc/hosts")),
        Some((0, 0)),
        "etc/hosts is not a whiteout"
    );
    assert_eq!(
        xattr(&upper.join("var"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        std::fs::read_to_string(upper.join("hello.txt")).unwrap(),
        "hello from the container\n"
    );
    assert!(!upper.join("bin").exists(), "unchanged files must not be copied up");
    let kids = run.children();
    assert_eq!(kids.len(), 1);
    let container = kids[0];
    let root = PathBuf::from(format!("/proc/{container}/root"));
    assert!(root.join("hello.txt").is_file() && root.join("bin/busybox").is_file());
    assert!(!root.join("etc/hosts").exists() && !root.join("var/run").exists());
    // The container is chrooted into merged: its only visible mount is the overlay at "/".
    assert!(mounts_of(&container.to_string())
        .iter()
        .any(|(p, t)| p == "/" && t == "overlay"));
    let merged = wd.join("container/merged").display().to_string();
    assert!(
        !mounts_of("self").iter().any(|(p, _)| *p == merged),
        "the overlay leaked into the host's mount namespace"
    );

    // The diff layer: only the changes, in the image spelling.
    run.next();
    assert_eq!(run.steps_done(), step_no("commit"));
    assert!(wait_gone(&kids), "the container survived the commit step");
    let diff = tar_entries(&wd.join("layers/diff.tar"));
    let names: Vec<&str> = diff.iter().map(|(p, _, _)| p.trim_end_matches('/')).collect();
    assert_eq!(
        names,
        vec![
            "etc",
            "etc/.wh.hosts",
            "hello.txt",
            "var",
            "var/.wh..wh..opq",
            "var/log",
            "var/log/app.log"
        ]
    );
    for (p, t, size) in &diff {
        if p.contains(".wh.") {
            assert!(t.is_file() && *size == 0, "{p} should be an empty regular file");
        }
    }

    // The shell container: bash wrote its history into the upper dir, and
    // the deletion is a real whiteout there.
    run.next();
    assert_eq!(run.steps_done(), step_no("history-leak"));
    let history = std::fs::read_to_string(wd.join("shell/upper/.bash_history")).unwrap();
    assert!(history.lines().any(|l| l.starts_with("export API_TOKEN=")), "{history}");
    assert_eq!(
        char_device(&wd.join("shell/upper/etc/group")),
        Some((0, 0)),
        "etc/group should be a whiteout"
    );

    // docker save shape, then the OCI layout.
    run.next();
    run.next();
    assert_eq!(run.steps_done(), step_no("save-oci"));
    let docker = wd.join("image/docker-save");
    let repos: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(docker.join("repositories")).unwrap()).unwrap();
    let top = repos["workbench/busybox"]["demo"].as_str().unwrap().to_string();
    let top_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(docker.join(&top).join("json")).unwrap()).unwrap();
    let base_id = top_json["parent"].as_str().unwrap().to_string();
    for id in [&top, &base_id] {
        assert_eq!(
            std::fs::read_to_string(docker.join(id).join("VERSION")).unwrap().trim(),
            "1.0"
        );
        assert!(docker.join(id).join("layer.tar").is_file());
    }
    assert_eq!(
        std::fs::read(docker.join(&top).join("layer.tar")).unwrap(),
        std::fs::read(wd.join("layers/diff.tar")).unwrap()
    );
    let oci = wd.join("image/oci");
    assert!(oci.join("oci-layout").is_file() && oci.join("index.json").is_file());
    if tool("skopeo") {
        let o = Command::new("skopeo")
            .args(["inspect", &format!("oci:{}:demo", oci.display())])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "skopeo inspect: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    } else {
        eprintln!("skopeo not installed: skipping its part of the test");
    }

    // Loaded and mounted: the same files as in the container.
    run.next();
    assert_eq!(run.steps_done(), step_no("load"));
    let kids = run.children();
    assert_eq!(kids.len(), 1, "one child holding the loaded image's overlay");
    let merged = wd.join("loaded/merged");
    let view = PathBuf::from(format!("/proc/{}/root", kids[0])).join(merged.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(view.join("hello.txt")).unwrap(),
        "hello from the container\n"
    );
    assert_eq!(
        std::fs::read_to_string(view.join("var/log/app.log")).unwrap(),
        "started\n"
    );
    assert!(view.join("bin/busybox").is_file() && view.join("etc/passwd").is_file());
    assert!(
        !view.join("etc/hosts").exists(),
        "the whiteout did not survive save and load"
    );
    assert!(
        !view.join("var/run").exists(),
        "the opaque dir did not survive save and load"
    );
    assert_eq!(
        std::fs::read_dir(&merged).unwrap().count(),
        0,
        "the host sees the loaded overlay"
    );

    run.finish_passing(9);
    assert!(!wd.exists());
    assert!(wait_gone(&kids));
    host.assert_unchanged("image-layers");
}

#[test]
fn json_run_passes_every_check() {
    let host = root_host!();
    let (steps, summary) = run_passing("image-layers", &[]);
    assert_eq!(summary["steps_passed"], 9);
    let commit = step(&steps, "commit");
    let listing = common::transcript(commit)
        .into_iter()
        .find(|(_, c, _)| c == "tar -tvf layers/diff.tar")
        .unwrap()
        .2;
    assert!(
        listing.contains("etc/.wh.hosts") && listing.contains("var/.wh..wh..opq"),
        "{listing}"
    );
    let import = step(&steps, "import");
    for name in [
        "image load of the plain tar",
        "the store after the refused load (nothing created)",
        "the layer's digest = sha256 of layers/rootfs.tar",
    ] {
        assert!(
            import["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == name && c["pass"] == true),
            "{name}: {import}"
        );
    }
    let leak = step(&steps, "history-leak");
    assert!(
        leak["checks"].as_array().unwrap().iter().all(|c| c["pass"] == true),
        "{leak}"
    );
    let history = common::transcript(leak)
        .into_iter()
        .find(|(_, c, _)| c.ends_with("tar -xO .bash_history"))
        .unwrap()
        .2;
    assert!(history.contains("export API_TOKEN="), "{history}");
    let load = step(&steps, "load");
    let same = load["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "the loaded image's tree equals the container's merged view")
        .unwrap();
    assert_eq!(same["pass"], true, "{same}");
    if tool("skopeo") {
        let oci = step(&steps, "save-oci");
        assert!(oci["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "skopeo inspect accepts the layout" && c["pass"] == true));
    }
    host.assert_unchanged("image-layers");
}

#[test]
fn bad_input_and_missing_busybox_are_refused() {
    let host = root_host!();
    let o = common::lesson("image-layers", &["--memory", "abc"]);
    common::assert_has(
        &common::refused(&o, "--memory"),
        "--memory does not apply to image-layers (it takes no options)",
    );
    let o = common::workbench_env(&["lesson", "image-layers"], &[common::NO_BUSYBOX]);
    assert_eq!(o.status.code(), Some(2));
    common::assert_has(&common::stderr(&o), "busybox found");
    host.assert_unchanged("refused image-layers runs");
}

#[test]
fn ctrl_c_with_the_container_running_cleans_up() {
    let host = root_host!();
    let run = Paused::start("image-layers", step_no("run-container"));
    assert_eq!(run.children().len(), 1, "one container");
    run.ctrl_c_cleans_up();
    host.assert_unchanged("image-layers interrupted by SIGINT");
}

#[test]
fn shell_opens_inside_the_loaded_image() {
    let host = root_host!();
    let marker = common::shell_marker(
        "image-layers",
        &[],
        b"echo marker-$(wc -c < /hello.txt)-$(hostname)-$(ls /etc | grep -c hosts)-$(ps | wc -l)\nexit\n",
    );
    // hello.txt from the diff layer, the UTS name set for the container, no etc/hosts, and
    // ps (a fresh /proc) showing only header, PID 1, sh, the subshell and ps.
    let parts: Vec<&str> = marker.split('-').collect();
    assert_eq!(&parts[1..4], &["25", "container", "0"], "{marker}");
    assert!(
        parts[4].trim().parse::<usize>().unwrap() <= 6,
        "the shell sees host processes: {marker}"
    );
    host.assert_unchanged("image-layers --shell");
}
