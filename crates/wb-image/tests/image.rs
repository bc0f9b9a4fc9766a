//! Save a base + diff layer stack in both image formats, load it back, and
//! flatten it: the result must equal applying the raw tars directly and hold
//! the expected files (modes, numeric owners, symlinks, hard links).

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{describe, hardlink_groups, owner, tempdir, TarFixture};
use serde_json::Value;
use wb_image::image::{
    load_docker_archive, load_oci, save_docker_archive, save_docker_dir, save_oci, sha256_file, ImageConfig,
    LoadedImage, MEDIA_TYPE_CONFIG, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_MANIFEST,
};
use wb_image::layer::{apply_layer, ApplyMode};
use wb_image::overlay::tree;

fn layers(dir: &Path) -> Vec<PathBuf> {
    let base = TarFixture::new()
        .dir("bin", 0o755, 0, 0)
        .file("bin/tool", 0o4755, 0, 0, "#!/bin/sh\necho tool\n")
        .symlink("bin/sh", "tool")
        .hardlink("bin/tool-again", "bin/tool")
        .dir("etc", 0o755, 0, 0)
        .file("etc/passwd", 0o644, 0, 0, "root:x:0:0\n")
        .file("etc/shadow", 0o640, 0, owner(42), "root:*:\n")
        .dir("home", 0o755, 0, 0)
        .dir("home/user", 0o750, owner(1000), owner(1000))
        .file("home/user/.profile", 0o644, owner(1000), owner(1000), "PS1=$\n")
        .dir("cache", 0o755, 0, 0)
        .file("cache/a", 0o644, 0, 0, "a\n")
        .file("cache/b", 0o644, 0, 0, "b\n")
        .write_to(&dir.join("base.tar"));
    let diff = TarFixture::new()
        .whiteout("etc/shadow")
        .file("etc/motd", 0o644, 0, 0, "hello\n")
        .dir("cache", 0o700, 0, 0)
        .opaque("cache")
        .file("cache/c", 0o644, 0, 0, "c\n")
        .whiteout("home/user/.profile")
        .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .write_to(&dir.join("diff.tar"));
    vec![base, diff]
}

fn cfg() -> ImageConfig {
    common::image_config("wb-test", &["/bin/sh", "-c", "echo hi"])
}

/// A temporary directory with the two `layers` and, in "reference", the
/// `expected_rootfs` of them.
fn stack() -> (tempfile::TempDir, Vec<PathBuf>, PathBuf) {
    let t = tempdir();
    let ls = layers(t.path());
    let reference = t.path().join("reference");
    expected_rootfs(&ls, &reference);
    (t, ls, reference)
}

/// The reference rootfs: the raw tars applied directly.
fn expected_rootfs(layers: &[PathBuf], dest: &Path) {
    for l in layers {
        apply_layer(fs::File::open(l).unwrap(), dest, ApplyMode::Flatten).unwrap();
    }
}

fn check_flattened(img: &LoadedImage, reference: &Path, scratch: &Path, label: &str) {
    let dest = scratch.join(format!("flat-{label}"));
    img.flatten_into(&dest).unwrap();
    assert_eq!(
        describe(&tree(&dest).unwrap()),
        describe(&tree(reference).unwrap()),
        "{label}: flattened tree"
    );
    assert_eq!(
        hardlink_groups(&dest),
        vec![vec!["bin/tool".to_string(), "bin/tool-again".to_string()]]
    );
    assert!(!dest.join("etc/shadow").exists() && !dest.join("home/user/.profile").exists());
    assert!(!dest.join("cache/a").exists() && dest.join("cache/c").exists());
    let tool = fs::metadata(dest.join("bin/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755);
    assert_eq!(fs::metadata(dest.join("home/user")).unwrap().uid(), owner(1000));
    assert_eq!(
        fs::read_link(dest.join("etc/localtime")).unwrap(),
        Path::new("/usr/share/zoneinfo/UTC")
    );
    assert_eq!(img.config, cfg(), "{label}: config");
}

#[test]
fn oci_layout_round_trip() {
    let (t, ls, reference) = stack();

    let dir = t.path().join("oci");
    let saved = save_oci(&ls, &cfg(), &dir).unwrap();

    // Layout files and media types as the spec wants them.
    let layout: Value = serde_json::from_slice(&fs::read(dir.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    let m = &index["manifests"][0];
    assert_eq!(m["mediaType"], MEDIA_TYPE_MANIFEST);
    assert_eq!(m["digest"], saved.manifest_digest.as_str());
    assert_eq!(m["annotations"]["org.opencontainers.image.ref.name"], "v1");
    let blob = |d: &str| dir.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let manifest: Value = serde_json::from_slice(&fs::read(blob(&saved.manifest_digest)).unwrap()).unwrap();
    assert_eq!(manifest["config"]["mediaType"], MEDIA_TYPE_CONFIG);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 2);
    for (i, l) in manifest["layers"].as_array().unwrap().iter().enumerate() {
        assert_eq!(l["mediaType"], MEDIA_TYPE_LAYER_GZIP);
        assert_eq!(l["digest"], saved.layer_digests[i].as_str());
        let p = blob(&saved.layer_digests[i]);
        assert_eq!(
            sha256_file(&p).unwrap(),
            saved.layer_digests[i],
            "blob named after its digest"
        );
        assert_eq!(fs::read(&p).unwrap()[..2], [0x1f, 0x8b], "layer blobs are gzip");
        assert_eq!(l["size"], fs::metadata(&p).unwrap().len());
    }
    let config: Value = serde_json::from_slice(&fs::read(blob(&saved.config_digest)).unwrap()).unwrap();
    // diff_ids are the sha256 of the UNCOMPRESSED tars.
    let diff_ids: Vec<String> = ls.iter().map(|l| sha256_file(l).unwrap()).collect();
    assert_eq!(saved.diff_ids, diff_ids);
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
    assert_eq!(config["architecture"], wb_image::image::host_architecture());
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["Env"][0], "PATH=/bin");

    // Same input, same digests.
    let again = save_oci(&ls, &cfg(), &t.path().join("oci2")).unwrap();
    assert_eq!(again, saved);

    let img = load_oci(&dir, "v1").unwrap();
    assert_eq!(img.diff_ids, diff_ids);
    assert_eq!(img.manifest_digest.as_deref(), Some(saved.manifest_digest.as_str()));
    check_flattened(&img, &reference, t.path(), "oci");
    // Also by containerd's full name, and the only image with an empty reference.
    assert_eq!(load_oci(&dir, "wb-test:v1").unwrap().diff_ids, diff_ids);
    assert_eq!(load_oci(&dir, "").unwrap().diff_ids, diff_ids);
}

#[test]
fn oci_layout_holds_several_images_and_rejects_bad_ones() {
    let t = tempdir();
    let ls = layers(t.path());
    let dir = t.path().join("oci");
    save_oci(
        &ls[..1],
        &ImageConfig {
            tag: "base".into(),
            ..cfg()
        },
        &dir,
    )
    .unwrap();
    save_oci(&ls, &cfg(), &dir).unwrap();
    save_oci(&ls, &cfg(), &dir).unwrap(); // re-saving a tag replaces it
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(load_oci(&dir, "base").unwrap().layers.len(), 1);
    assert_eq!(load_oci(&dir, "v1").unwrap().layers.len(), 2);

    let err = load_oci(&dir, "nope").unwrap_err().to_string();
    assert!(err.contains("\"nope\" not found") && err.contains("base, v1"), "{err}");
    let err = load_oci(&dir, "").unwrap_err().to_string();
    assert!(err.contains("not found"), "{err}");

    // A tampered layer blob is caught.
    let img = load_oci(&dir, "v1").unwrap();
    let top = img.layers[1].clone();
    let mut data = fs::read(&top).unwrap();
    let n = data.len();
    data[n / 2] ^= 0xff;
    fs::write(&top, data).unwrap();
    let err = load_oci(&dir, "v1").unwrap_err();
    assert!(matches!(err, wb_image::Error::DigestMismatch { .. }), "{err}");
}

#[test]
fn docker_save_directory_and_tar_round_trip() {
    let (t, ls, reference) = stack();

    let dir = t.path().join("docker-dir");
    let saved = save_docker_dir(&ls, &cfg(), &dir).unwrap();
    assert_eq!(saved.layer_ids.len(), 2);
    for (i, id) in saved.layer_ids.iter().enumerate() {
        assert_eq!(fs::read_to_string(dir.join(id).join("VERSION")).unwrap(), "1.0");
        let j: Value = serde_json::from_slice(&fs::read(dir.join(id).join("json")).unwrap()).unwrap();
        assert_eq!(j["id"], id.as_str());
        if i > 0 {
            assert_eq!(j["parent"], saved.layer_ids[i - 1].as_str());
        }
        // layer.tar is the uncompressed tar, byte for byte.
        assert_eq!(
            fs::read(dir.join(id).join("layer.tar")).unwrap(),
            fs::read(&ls[i]).unwrap()
        );
    }
    let repos: Value = serde_json::from_slice(&fs::read(dir.join("repositories")).unwrap()).unwrap();
    assert_eq!(repos["wb-test"]["v1"], saved.layer_ids[1].as_str());
    let manifest: Value = serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest[0]["RepoTags"][0], "wb-test:v1");
    assert_eq!(manifest[0]["Layers"][1], format!("{}/layer.tar", saved.layer_ids[1]));
    let cfg_file = manifest[0]["Config"].as_str().unwrap();
    assert_eq!(
        format!("sha256:{}", cfg_file.trim_end_matches(".json")),
        saved.config_digest
    );

    let img = load_docker_archive(&dir, "wb-test:v1").unwrap();
    check_flattened(&img, &reference, t.path(), "docker-dir");

    let tar_path = t.path().join("image.tar");
    let saved_tar = save_docker_archive(&ls, &cfg(), &tar_path).unwrap();
    assert_eq!(saved_tar, saved);
    let img = load_docker_archive(&tar_path, "wb-test:v1").unwrap();
    check_flattened(&img, &reference, t.path(), "docker-tar");
    assert!(
        load_docker_archive(&tar_path, "wb-test").is_err(),
        "wb-test means wb-test:latest"
    );
    assert!(load_docker_archive(&tar_path, "").is_ok());
    // No staging leftovers beside the archive.
    let leftovers: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".wb-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The legacy path: without manifest.json, repositories + parent chain.
    fs::remove_file(dir.join("manifest.json")).unwrap();
    let img = load_docker_archive(&dir, "wb-test:v1").unwrap();
    assert_eq!(img.diff_ids, saved.diff_ids);
    check_flattened(&img, &reference, t.path(), "docker-legacy");
}

#[test]
fn gzip_input_layers_are_accepted() {
    let t = tempdir();
    let ls = layers(t.path());
    let gz = t.path().join("base.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    std::io::copy(&mut fs::File::open(&ls[0]).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
    let saved = save_oci(&[gz.clone(), ls[1].clone()], &cfg(), &t.path().join("oci")).unwrap();
    assert_eq!(saved.diff_ids[0], sha256_file(&ls[0]).unwrap());
    let d = save_docker_dir(&[gz], &cfg(), &t.path().join("docker")).unwrap();
    assert_eq!(d.diff_ids[0], sha256_file(&ls[0]).unwrap());
}
