//! Acceptance by real tools: skopeo reads our OCI layout and docker archive,
//! umoci unpacks our OCI layout, and we read what skopeo writes.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{describe, tempdir, which, TarFixture};
use serde_json::Value;
use wb_image::image::{load_oci, save_docker_archive, save_oci, ImageConfig};
use wb_image::layer::{apply_layer, ApplyMode};
use wb_image::overlay::tree;

macro_rules! require_tool {
    ($tool:expr, $test:expr) => {
        if which($tool).is_none() {
            eprintln!(
                "skipping {}: {} is not installed (scripts/setup --dev installs it)",
                $test, $tool
            );
            return;
        }
    };
}

fn layers(dir: &Path) -> Vec<PathBuf> {
    let base = TarFixture::new()
        .dir("bin", 0o755, 0, 0)
        .file("bin/hello", 0o755, 0, 0, "#!/bin/sh\necho hello\n")
        .symlink("bin/hi", "hello")
        .dir("etc", 0o755, 0, 0)
        .file("etc/secret", 0o600, 0, 0, "s\n")
        .file("etc/os-release", 0o644, 0, 0, "ID=wb\n")
        .dir("data", 0o755, 0, 0)
        .file("data/old", 0o644, 0, 0, "old\n")
        .write_to(&dir.join("base.tar"));
    let diff = TarFixture::new()
        .whiteout("etc/secret")
        .dir("data", 0o755, 0, 0)
        .opaque("data")
        .file("data/new", 0o644, 0, 0, "new\n")
        .file("etc/motd", 0o644, 0, 0, "hi\n")
        .write_to(&dir.join("diff.tar"));
    vec![base, diff]
}

fn cfg() -> ImageConfig {
    common::image_config("wb-tools", &["/bin/hello"])
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn inspect(transport_ref: &str) -> Value {
    serde_json::from_str(&run(Command::new("skopeo").args(["inspect", transport_ref]))).unwrap()
}

#[test]
fn skopeo_inspects_our_oci_layout() {
    require_tool!("skopeo", "skopeo_inspects_our_oci_layout");
    let t = tempdir();
    let dir = t.path().join("oci");
    let saved = save_oci(&layers(t.path()), &cfg(), &dir).unwrap();
    let v = inspect(&format!("oci:{}:v1", dir.display()));
    assert_eq!(v["Layers"], serde_json::json!(saved.layer_digests));
    assert_eq!(v["Digest"], saved.manifest_digest.as_str());
    assert_eq!(v["Architecture"], wb_image::image::host_architecture());
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Env"][0], "PATH=/bin");
}

#[test]
fn skopeo_reads_our_docker_archive_and_we_read_its_oci_copy() {
    require_tool!("skopeo", "skopeo_reads_our_docker_archive_and_we_read_its_oci_copy");
    let t = tempdir();
    let ls = layers(t.path());
    let archive = t.path().join("image.tar");
    let saved = save_docker_archive(&ls, &cfg(), &archive).unwrap();
    let v = inspect(&format!("docker-archive:{}", archive.display()));
    // docker-archive layers are uncompressed: their digests are the diff_ids.
    assert_eq!(v["Layers"], serde_json::json!(saved.diff_ids));

    // skopeo copy checks every layer against the config's diff_ids.
    let oci = t.path().join("copied");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "--quiet",
        &format!("docker-archive:{}:wb-tools:v1", archive.display()),
        &format!("oci:{}:copied", oci.display()),
    ]));
    let img = load_oci(&oci, "copied").unwrap();
    assert_eq!(img.diff_ids, saved.diff_ids);
    assert_eq!(img.config.cmd, vec!["/bin/hello"]);

    let flat = t.path().join("flat");
    img.flatten_into(&flat).unwrap();
    let reference = t.path().join("reference");
    for l in &ls {
        apply_layer(fs::File::open(l).unwrap(), &reference, ApplyMode::Flatten).unwrap();
    }
    assert_eq!(describe(&tree(&flat).unwrap()), describe(&tree(&reference).unwrap()));
}

#[test]
fn umoci_unpacks_our_oci_layout() {
    require_root!("umoci_unpacks_our_oci_layout");
    require_tool!("umoci", "umoci_unpacks_our_oci_layout");
    let t = tempdir();
    let dir = t.path().join("oci");
    save_oci(&layers(t.path()), &cfg(), &dir).unwrap();
    let bundle = t.path().join("bundle");
    run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:v1", dir.display()),
        &bundle.display().to_string(),
    ]));
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs::read_to_string(rootfs.join("bin/hello")).unwrap(),
        "#!/bin/sh\necho hello\n"
    );
    assert_eq!(fs::read_link(rootfs.join("bin/hi")).unwrap(), Path::new("hello"));
    assert_eq!(fs::read_to_string(rootfs.join("etc/motd")).unwrap(), "hi\n");
    assert_eq!(fs::read_to_string(rootfs.join("data/new")).unwrap(), "new\n");
    assert!(rootfs.join("etc/os-release").exists());
    assert!(!rootfs.join("etc/secret").exists(), "whited-out file is gone");
    assert!(
        !rootfs.join("data/old").exists(),
        "opaque dir hides the base layer's content"
    );
    assert!(!rootfs.join("etc/.wh.secret").exists() && !rootfs.join("data/.wh..wh..opq").exists());
    // umoci turns our config into an OCI runtime spec.
    let spec: Value = serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["process"]["args"], serde_json::json!(["/bin/hello"]));
}
