//! The image store and its commands: `workbench image import|ls|save|load|
//! inspect|layers|rm`, `workbench commit`, `workbench run NAME:TAG`. Every
//! test has its own store (`WORKBENCH_STORE` in a temporary directory), so
//! none touches /var/lib/workbench. The first tests need no root; the root
//! ones round-trip with skopeo and umoci (skipped when they are absent:
//! `scripts/setup --dev` installs them) and run what was stored.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        Lab {
            dir: tempfile::Builder::new().prefix("wb-image-test-").tempdir().unwrap(),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn p(&self, p: &str) -> String {
        self.path(p).display().to_string()
    }

    fn wb(&self, args: &[&str]) -> Output {
        let store = self.p("store");
        let containers = self.p("containers");
        common::workbench_env(
            args,
            &[("WORKBENCH_STORE", &store), ("WORKBENCH_CONTAINERS_DIR", &containers)],
        )
    }

    /// `wb` that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.wb(args);
        assert!(
            o.status.success(),
            "{args:?}: {}{}",
            common::stdout(&o),
            common::stderr(&o)
        );
        common::stdout(&o)
    }

    /// `wb` that must be refused with exit 2 and one line; that line.
    fn refused(&self, args: &[&str]) -> String {
        let o = self.wb(args);
        let err = common::stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}{err}", common::stdout(&o));
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        err
    }

    fn refs(&self) -> String {
        fs::read_to_string(self.path("store/refs.json")).unwrap_or_default()
    }

    fn blobs(&self) -> usize {
        fs::read_dir(self.path("store/blobs/sha256"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// A tar header with a raw (possibly hostile) name.
fn raw_header(name: &str, size: u64, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    h
}

fn tar_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let kind = if name.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        };
        b.append(&raw_header(name, data.len() as u64, kind), *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A docker-save archive of one layer whose digests are all consistent.
fn docker_archive(layer: &[u8], repo_tag: &str) -> Vec<u8> {
    let diff = wb_image::image::sha256_digest(layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff]},
    })
    .to_string();
    let cfg_hex = wb_image::image::sha256_digest(config.as_bytes())
        .trim_start_matches("sha256:")
        .to_string();
    let manifest = serde_json::json!([{
        "Config": format!("{cfg_hex}.json"), "RepoTags": [repo_tag], "Layers": ["l1/layer.tar"],
    }])
    .to_string();
    tar_bytes(&[
        ("l1/", b""),
        ("l1/layer.tar", layer),
        (&format!("{cfg_hex}.json"), config.as_bytes()),
        ("manifest.json", manifest.as_bytes()),
    ])
}

#[test]
fn import_save_load_rm_and_refusals() {
    let lab = Lab::new();
    let rootfs = tar_bytes(&[
        ("./", b""),
        ("./etc/", b""),
        ("./etc/motd", b"hello\n"),
        ("./bin/", b""),
    ]);
    fs::write(lab.path("base.tar"), &rootfs).unwrap();
    let base = lab.p("base.tar");

    // A plain rootfs tar is not an image archive: refused, saying what to run instead.
    let e = lab.refused(&["image", "load", &base]);
    assert!(
        e.contains("plain filesystem tar") && e.contains("workbench image import"),
        "{e}"
    );
    assert!(
        !lab.path("store").exists(),
        "a refused load creates nothing, not even the store"
    );

    let out = lab.ok(&["image", "import", &base, "bb:v1"]);
    assert!(out.contains("imported bb:v1"), "{out}");
    let ls: Value = serde_json::from_str(lab.ok(&["image", "ls", "--json"]).trim()).unwrap();
    assert_eq!(ls["name"], "bb");
    assert_eq!(ls["tag"], "v1");
    assert_eq!(ls["layers"], 1);
    assert_eq!(ls["size"], rootfs.len() as u64);
    let config: Value = serde_json::from_str(&lab.ok(&["image", "inspect", "bb:v1"])).unwrap();
    assert_eq!(config["rootfs"]["diff_ids"][0], wb_image::image::sha256_digest(&rootfs));

    // Save in docker-save layout: the post's <id>/{VERSION,json,layer.tar} and repositories.
    lab.ok(&["image", "save", "bb:v1", "-o", &lab.p("saved.tar")]);
    let mut names = Vec::new();
    let mut a = tar::Archive::new(fs::File::open(lab.path("saved.tar")).unwrap());
    for e in a.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    for want in ["manifest.json", "repositories"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    for f in ["VERSION", "json", "layer.tar"] {
        assert!(names.iter().any(|n| n.ends_with(&format!("/{f}"))), "{f} in {names:?}");
    }
    // Loading it back under another tag shares the layer blob.
    let blobs = lab.blobs();
    lab.ok(&["image", "load", &lab.p("saved.tar"), "bb:v2"]);
    assert_eq!(lab.blobs(), blobs, "same content, same blobs");
    // And the OCI layout tar.
    lab.ok(&["image", "save", "bb:v1", "--format", "oci", "-o", &lab.p("oci.tar")]);
    lab.ok(&["image", "load", &lab.p("oci.tar"), "bb:oci"]);
    assert_eq!(lab.blobs(), blobs);

    // Hostile or damaged archives: refused, the store unchanged.
    let before = (lab.refs(), lab.blobs());
    let mut tampered = docker_archive(b"not the layer", "evil:x");
    let i = tampered.windows(13).position(|w| w == b"not the layer").unwrap();
    tampered[i] = b'N';
    let evil_layer = tar_bytes(&[("/etc/cron.d/evil", b"x")]);
    let climbing_layer = tar_bytes(&[("../../outside", b"x")]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("digest.tar", tampered, "digest mismatch"),
        ("abs.tar", docker_archive(&evil_layer, "evil:x"), "absolute path"),
        ("dots.tar", docker_archive(&climbing_layer, "evil:x"), "'..'"),
        (
            "outer.tar",
            tar_bytes(&[("../escape", b"x"), ("manifest.json", b"[]")]),
            "'..'",
        ),
    ];
    for (name, bytes, why) in cases {
        fs::write(lab.path(name), bytes).unwrap();
        let e = lab.refused(&["image", "load", &lab.p(name)]);
        assert!(e.contains(why), "{name}: {e}");
    }
    // A symlink leaving the archive.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = raw_header("manifest.json", 0, tar::EntryType::Symlink);
    b.append_link(&mut h, "manifest.json", "/etc/passwd").unwrap();
    fs::write(lab.path("link.tar"), b.into_inner().unwrap()).unwrap();
    let e = lab.refused(&["image", "load", &lab.p("link.tar")]);
    assert!(e.contains("outside the archive"), "{e}");
    assert!(!lab.dir.path().parent().unwrap().join("escape").exists());
    assert_eq!((lab.refs(), lab.blobs()), before, "refused loads change nothing");

    // Bad references and missing images.
    for bad in [
        vec!["image", "import", &base, "Bad:Name"],
        vec!["image", "inspect", "nosuch:v1"],
        vec!["image", "rm", "nosuch:v1"],
        vec!["image", "layers", "/abs:v1"],
        vec!["image", "import", &base as &str, "x:a b"],
        vec!["image", "save", "bb:v1", "-o", "/nonexistent/dir/x.tar"],
        vec!["commit", "nosuch", "x:y"],
    ] {
        lab.refused(&bad);
    }
    let e = lab.refused(&["image", "import", &lab.p("saved.tar"), "x:y"]);
    assert!(e.contains("workbench image load"), "{e}");

    // A corrupted blob is found on read.
    let digest = wb_image::image::sha256_digest(&rootfs);
    let blob = lab.path(&format!("store/blobs/sha256/{}", digest.trim_start_matches("sha256:")));
    let good = fs::read(&blob).unwrap();
    let mut bad = good.clone();
    bad[520] ^= 0x20;
    fs::write(&blob, &bad).unwrap();
    let e = lab.refused(&["image", "layers", "bb:v1"]);
    assert!(e.contains("digest mismatch"), "{e}");
    fs::write(&blob, &good).unwrap();

    // rm: the tag goes, shared blobs stay until the last tag using them goes.
    let out = lab.ok(&["image", "rm", "bb:v2"]);
    assert!(out.contains("untagged: bb:v2") && !out.contains(&digest), "{out}");
    lab.ok(&["image", "layers", "bb:v1"]);
    lab.ok(&["image", "rm", "bb:oci"]);
    let out = lab.ok(&["image", "rm", "bb:v1"]);
    assert!(out.contains(&digest), "{out}");
    assert_eq!(lab.blobs(), 0);
}

#[test]
fn layers_mark_whiteouts_and_opaque_dirs() {
    let lab = Lab::new();
    let layer = tar_bytes(&[
        ("etc/", b""),
        ("etc/.wh.motd", b""),
        ("var/", b""),
        ("var/cache/", b""),
        ("var/cache/.wh..wh..opq", b""),
        ("root/", b""),
        ("root/.ash_history", b"echo hi\n"),
    ]);
    fs::write(lab.path("a.tar"), docker_archive(&layer, "lab/diff:v1")).unwrap();
    lab.ok(&["image", "load", &lab.p("a.tar")]);
    let out = lab.ok(&["image", "layers", "lab/diff:v1", "--json"]);
    let l: Value = serde_json::from_str(out.trim()).unwrap();
    let entry = |p: &str| {
        l["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == p)
            .cloned()
            .unwrap_or_else(|| panic!("{p} in {l}"))
    };
    assert_eq!(entry("etc/.wh.motd")["mark"], "whiteout");
    assert_eq!(entry("etc/.wh.motd")["target"], "etc/motd");
    assert_eq!(entry("var/cache/.wh..wh..opq")["mark"], "opaque");
    assert_eq!(entry("root/.ash_history")["mark"], Value::Null);
    let text = lab.ok(&["image", "layers", "lab/diff:v1"]);
    assert!(
        text.contains("deletes etc/motd") && text.contains("hides the layers below"),
        "{text}"
    );
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sh(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", common::stderr(&o));
    common::stdout(&o)
}

/// A busybox rootfs at `dir` with a marker file.
fn busybox_rootfs(dir: &Path, marker: &str) {
    let busybox = workbench::host::Host::probe()
        .busybox_static
        .expect("a static busybox (scripts/setup installs busybox-static)");
    for d in ["bin", "etc", "proc", "dev", "sys", "tmp", "root"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    symlink("busybox", dir.join("bin/sh")).unwrap();
    fs::write(dir.join("etc/motd"), "base motd\n").unwrap();
    fs::write(dir.join("marker"), marker).unwrap();
}

#[test]
fn skopeo_and_umoci_round_trip_and_run() {
    let host = root_host!();
    if !tool("skopeo") || !tool("umoci") {
        eprintln!("skipped: needs skopeo and umoci (scripts/setup --dev installs them)");
        return;
    }
    let lab = Lab::new();
    busybox_rootfs(&lab.path("rootfs"), "from workbench\n");
    sh(Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(lab.path("rootfs"))
        .args(["-cf"])
        .arg(lab.path("base.tar"))
        .arg("."));
    lab.ok(&["image", "import", &lab.p("base.tar"), "bb:v1"]);

    // workbench saves, skopeo copies, umoci unpacks: the files are there.
    lab.ok(&["image", "save", "bb:v1", "-o", &lab.p("saved.tar")]);
    sh(Command::new("skopeo").args([
        "copy",
        &format!("docker-archive:{}", lab.p("saved.tar")),
        &format!("oci:{}:copied", lab.p("layout")),
    ]));
    sh(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:copied", lab.p("layout")),
        &lab.p("bundle"),
    ]));
    assert_eq!(
        fs::read_to_string(lab.path("bundle/rootfs/marker")).unwrap(),
        "from workbench\n"
    );
    assert!(lab.path("bundle/rootfs/bin/busybox").is_file());
    // The OCI layout workbench writes is read by skopeo too.
    lab.ok(&["image", "save", "bb:v1", "--format", "oci", "-o", &lab.p("oci.tar")]);
    sh(Command::new("skopeo").args(["inspect", &format!("oci-archive:{}:v1", lab.p("oci.tar"))]));

    // umoci writes an image (init, new, unpack, add files, repack): workbench loads and runs it.
    let um = lab.p("um");
    sh(Command::new("umoci").args(["init", "--layout", &um]));
    sh(Command::new("umoci").args(["new", "--image", &format!("{um}:v1")]));
    sh(Command::new("umoci").args(["unpack", "--image", &format!("{um}:v1"), &lab.p("ub")]));
    busybox_rootfs(&lab.path("ub/rootfs"), "from umoci\n");
    sh(Command::new("umoci").args(["repack", "--image", &format!("{um}:v1"), &lab.p("ub")]));
    sh(Command::new("umoci").args([
        "config",
        "--image",
        &format!("{um}:v1"),
        "--config.cmd",
        "/bin/sh",
        "--config.cmd",
        "-c",
        "--config.cmd",
        "cat /marker",
    ]));
    sh(Command::new("tar")
        .arg("-C")
        .arg(&um)
        .arg("-cf")
        .arg(lab.path("um.tar"))
        .arg("."));
    // Its index names only a tag, no repository: the load asks for NAME:TAG.
    let e = lab.refused(&["image", "load", &lab.p("um.tar")]);
    assert!(e.contains("NAME:TAG"), "{e}");
    lab.ok(&["image", "load", &lab.p("um.tar"), "umoci/img:v1"]);
    lab.ok(&["image", "load", &um, "umoci/img:dir"]);
    let o = lab.wb(&["run", "umoci/img:v1"]);
    assert_eq!(common::stdout(&o), "from umoci\n", "{}", common::stderr(&o));
    assert!(o.status.success());
    let o = lab.wb(&["run", "-v", "umoci/img:dir", "/bin/sh", "-c", "echo $((6*7))"]);
    assert_eq!(common::stdout(&o), "42\n");
    assert!(
        common::stderr(&o).contains("stored image umoci/img:dir"),
        "{}",
        common::stderr(&o)
    );
    // Nothing is left in the store's scratch directory after the runs.
    assert_eq!(fs::read_dir(lab.path("store/tmp")).unwrap().count(), 0);
    host.assert_unchanged("after the runs from the store");
}

/// A container record as `workbench run --name NAME --keep` writes it.
fn fake_container(lab: &Lab, name: &str, image: Option<&str>, lowers: &[PathBuf]) -> PathBuf {
    let dir = lab.path(&format!("containers/{name}"));
    fs::create_dir_all(dir.join("upper")).unwrap();
    fs::create_dir_all(dir.join("work")).unwrap();
    let rec = serde_json::json!({
        "version": 1, "name": name, "id": "abc123", "source": image.unwrap_or("rootfs"),
        "image": image, "lowers": lowers, "argv": ["/bin/sh"], "created": "2026-01-01T00:00:00Z",
        "state": "exited", "pid": null, "exit_code": 0, "shim_pid": null,
    });
    let mut f = fs::File::create(dir.join("container.json")).unwrap();
    writeln!(f, "{rec}").unwrap();
    dir.join("upper")
}

/// An upper dir as a busybox shell leaves it: a new file, a history file,
/// a deleted file (whiteout: a 0/0 char device) and a replaced directory (opaque).
fn shell_changes(upper: &Path) {
    fs::create_dir_all(upper.join("root")).unwrap();
    fs::write(
        upper.join("root/.ash_history"),
        "echo secret > /img_test_file\nrm /etc/motd\n",
    )
    .unwrap();
    fs::write(upper.join("img_test_file"), "secret\n").unwrap();
    fs::create_dir_all(upper.join("etc")).unwrap();
    wb_image::overlay::make_whiteout(&upper.join("etc/motd")).unwrap();
    fs::create_dir_all(upper.join("tmp")).unwrap();
    wb_image::overlay::set_opaque(&upper.join("tmp")).unwrap();
}

#[test]
fn commit_turns_the_upper_dir_into_a_layer() {
    let host = root_host!();
    let lab = Lab::new();
    busybox_rootfs(&lab.path("rootfs"), "base\n");
    fs::write(lab.path("rootfs/tmp/old"), "old\n").unwrap();
    sh(Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(lab.path("rootfs"))
        .args(["-cf"])
        .arg(lab.path("base.tar"))
        .arg("."));
    lab.ok(&["image", "import", &lab.p("base.tar"), "bb:v1"]);

    // From a stored image: the image's layer plus the changes.
    shell_changes(&fake_container(&lab, "c1", Some("bb:v1"), &[]));
    lab.ok(&["commit", "c1", "bb:v2"]);
    // From a rootfs directory: the directory as the base layer.
    shell_changes(&fake_container(&lab, "c2", None, &[lab.path("rootfs")]));
    lab.ok(&["commit", "c2", "bb:dir"]);

    for tag in ["bb:v2", "bb:dir"] {
        let out = lab.ok(&["image", "layers", tag, "--json"]);
        let layers: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(layers.len(), 2, "{tag}");
        let top: Vec<(String, Value)> = layers[1]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["path"].as_str().unwrap().to_string(), e["mark"].clone()))
            .collect();
        let has = |p: &str, m: Value| top.iter().any(|(q, n)| q == p && *n == m);
        assert!(has("root/.ash_history", Value::Null), "{tag}: {top:?}");
        assert!(has("img_test_file", Value::Null), "{tag}: {top:?}");
        assert!(has("etc/.wh.motd", "whiteout".into()), "{tag}: {top:?}");
        assert!(has("tmp/.wh..wh..opq", "opaque".into()), "{tag}: {top:?}");
    }
    // The committed image runs with the changes applied on the base.
    let o = lab.wb(&[
        "run",
        "bb:v2",
        "/bin/sh",
        "-c",
        "cat /img_test_file /root/.ash_history; ls /etc/motd /tmp/old 2>&1; cat /marker",
    ]);
    let out = common::stdout(&o);
    assert!(out.starts_with("secret\necho secret"), "{out}{}", common::stderr(&o));
    assert!(
        out.contains("/etc/motd: No such file") && out.contains("/tmp/old: No such file"),
        "{out}"
    );
    assert!(out.ends_with("base\n"), "{out}");
    // Saved, the history is in the diff layer's layer.tar.
    lab.ok(&["image", "save", "bb:v2", "-o", &lab.p("v2.tar")]);
    let manifest: Value = {
        let mut a = tar::Archive::new(fs::File::open(lab.path("v2.tar")).unwrap());
        a.unpack(lab.path("v2")).unwrap();
        serde_json::from_slice(&fs::read(lab.path("v2/manifest.json")).unwrap()).unwrap()
    };
    let top = manifest[0]["Layers"][1].as_str().unwrap();
    let mut a = tar::Archive::new(fs::File::open(lab.path("v2").join(top)).unwrap());
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.contains(&"root/.ash_history".to_string()), "{names:?}");
    // A real kept container (`run --name --keep`) from the store, committed.
    fs::create_dir_all(lab.path("containers")).unwrap();
    lab.ok(&[
        "run",
        "--name",
        "real",
        "--keep",
        "bb:v1",
        "/bin/sh",
        "-c",
        "echo made > /made; rm /marker; echo 'rm /marker' >> /root/.ash_history",
    ]);
    lab.ok(&["commit", "real", "bb:real"]);
    let o = lab.wb(&[
        "run",
        "bb:real",
        "/bin/sh",
        "-c",
        "cat /made /root/.ash_history; ls /marker 2>&1",
    ]);
    let out = common::stdout(&o);
    assert!(
        out.starts_with(
            "made
rm /marker
"
        ) && out.contains("No such file"),
        "{out}"
    );
    lab.ok(&["rm", "real"]);
    // A container whose image is gone cannot be committed.
    lab.ok(&["image", "rm", "bb:v1"]);
    shell_changes(&fake_container(&lab, "c3", Some("bb:v1"), &[]));
    lab.refused(&["commit", "c3", "bb:v3"]);
    host.assert_unchanged("after commit and run");
}
