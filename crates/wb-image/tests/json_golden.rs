//! The JSON that `save_oci` and `save_docker_dir` write, byte for byte.
//!
//! Digests of these files appear in the book's recorded transcripts, so a
//! change of field order, spacing or an extra field would make them stale.
//! The expected text was recorded from the `serde_json::Value` version of the
//! writers; the typed oci-spec version must write the same bytes. Only the
//! host architecture (and the digests that depend on it) is filled in.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{tempdir, TarFixture};
use wb_image::image::{host_architecture, save_docker_dir, save_oci, sha256_digest, ImageConfig};

fn layers(dir: &Path) -> Vec<PathBuf> {
    let a = TarFixture::new()
        .dir("etc", 0o755, 0, 0)
        .file("etc/a", 0o644, 0, 0, "a\n")
        .write_to(&dir.join("a.tar"));
    let b = TarFixture::new()
        .whiteout("etc/a")
        .file("etc/b", 0o600, 0, 0, "b\n")
        .write_to(&dir.join("b.tar"));
    vec![a, b]
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn blob(dir: &Path, digest: &str) -> String {
    read(&dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:")))
}

const DIFF_A: &str = "sha256:cafedfe225ddb2aaebe8fd08f26167aeb192282622ebe5f1beb456675cb0cf23";
const DIFF_B: &str = "sha256:65ea2987ab1dbf71d040a1095baffd5ed9af75560295929d56d9427dc520a912";
const GZ_A: &str = "sha256:bf1998affb7fa7f402c176d8b74d8df3dd0c2aea22c23373b4e2588650f1f2c5";
const GZ_B: &str = "sha256:7f1466ec6487f19531b0cb6c2b842d81e8c852366cca15753cebda1a87b2cf66";

fn full() -> ImageConfig {
    ImageConfig {
        name: "wb-golden".into(),
        tag: "v1".into(),
        cmd: vec!["/bin/sh".into(), "-c".into(), "echo \"hi\"".into()],
        env: vec!["PATH=/bin".into(), "A=1".into()],
    }
}

/// The config JSON for `cmd_env` (the `config` object) and diff_ids.
fn config_json(cmd_env: &str, diff_ids: &[&str]) -> String {
    let history: Vec<String> = (1..=diff_ids.len())
        .map(|i| format!(r#"{{"created":"1970-01-01T00:00:00Z","created_by":"wb-image layer {i}"}}"#))
        .collect();
    let ids: Vec<String> = diff_ids.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        r#"{{"architecture":"{}","config":{cmd_env},"created":"1970-01-01T00:00:00Z","history":[{}],"os":"linux","rootfs":{{"diff_ids":[{}],"type":"layers"}}}}"#,
        host_architecture(),
        history.join(","),
        ids.join(",")
    )
}

const CMD_ENV: &str = r#"{"Cmd":["/bin/sh","-c","echo \"hi\""],"Env":["PATH=/bin","A=1"]}"#;

fn manifest_json(config: &str, layers: &[(&str, u64)]) -> String {
    let ls: Vec<String> = layers
        .iter()
        .map(|(d, n)| {
            format!(r#"{{"digest":"{d}","mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":{n}}}"#)
        })
        .collect();
    format!(
        r#"{{"config":{{"digest":"{}","mediaType":"application/vnd.oci.image.config.v1+json","size":{}}},"layers":[{}],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}}"#,
        sha256_digest(config.as_bytes()),
        config.len(),
        ls.join(",")
    )
}

fn index_entry(annotations: &str, manifest: &str) -> String {
    format!(
        r#"{{"annotations":{annotations},"digest":"{}","mediaType":"application/vnd.oci.image.manifest.v1+json","platform":{{"architecture":"{}","os":"linux"}},"size":{}}}"#,
        sha256_digest(manifest.as_bytes()),
        host_architecture(),
        manifest.len()
    )
}

/// A temporary directory with the two `layers` in it.
fn saved_layers() -> (tempfile::TempDir, Vec<PathBuf>) {
    let t = tempdir();
    let ls = layers(t.path());
    (t, ls)
}

#[test]
fn oci_layout_json_is_unchanged() {
    let (t, ls) = saved_layers();
    let oci = t.path().join("oci");
    let s1 = save_oci(&ls, &full(), &oci).unwrap();
    let bare = ImageConfig {
        tag: "bare".into(),
        ..Default::default()
    };
    let s2 = save_oci(&ls[..1], &bare, &oci).unwrap();

    let c1 = config_json(CMD_ENV, &[DIFF_A, DIFF_B]);
    let m1 = manifest_json(&c1, &[(GZ_A, 109), (GZ_B, 110)]);
    let c2 = config_json("{}", &[DIFF_A]);
    let m2 = manifest_json(&c2, &[(GZ_A, 109)]);
    assert_eq!(s1.diff_ids, [DIFF_A, DIFF_B]);
    assert_eq!(s1.layer_digests, [GZ_A, GZ_B]);
    assert_eq!(blob(&oci, &s1.config_digest), c1);
    assert_eq!(blob(&oci, &s1.manifest_digest), m1);
    assert_eq!(blob(&oci, &s2.config_digest), c2);
    assert_eq!(blob(&oci, &s2.manifest_digest), m2);
    assert_eq!(s1.manifest_digest, sha256_digest(m1.as_bytes()));
    assert_eq!(read(&oci.join("oci-layout")), "{\"imageLayoutVersion\":\"1.0.0\"}\n");
    let e1 = index_entry(
        r#"{"io.containerd.image.name":"wb-golden:v1","org.opencontainers.image.ref.name":"v1"}"#,
        &m1,
    );
    let e2 = index_entry(r#"{"org.opencontainers.image.ref.name":"bare"}"#, &m2);
    let index = |entries: &[&str]| {
        format!(
            "{{\"manifests\":[{}],\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"schemaVersion\":2}}\n",
            entries.join(",")
        )
    };
    assert_eq!(read(&oci.join("index.json")), index(&[&e1, &e2]));

    // Saving "v1" again replaces its entry and keeps "bare", now first.
    save_oci(&ls, &full(), &oci).unwrap();
    assert_eq!(read(&oci.join("index.json")), index(&[&e2, &e1]));
}

#[test]
fn docker_save_json_is_unchanged() {
    let (t, ls) = saved_layers();
    let d = t.path().join("docker");
    let s = save_docker_dir(&ls, &full(), &d).unwrap();
    let config = config_json(CMD_ENV, &[DIFF_A, DIFF_B]);
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    assert_eq!(s.config_digest, sha256_digest(config.as_bytes()));
    assert_eq!(read(&d.join(format!("{}.json", hex(&s.config_digest)))), config);
    // v1 layer ids chain over the parent id and the diff_id.
    let id1 = hex(&sha256_digest(format!("\n{DIFF_A}").as_bytes()));
    let id2 = hex(&sha256_digest(format!("{id1}\n{DIFF_B}").as_bytes()));
    assert_eq!(s.layer_ids, [id1.clone(), id2.clone()]);
    let empty = r#"{"AttachStderr":false,"AttachStdin":false,"AttachStdout":false,"Cmd":null,"Domainname":"","Entrypoint":null,"Env":null,"Hostname":"","Image":"","Labels":null,"OnBuild":null,"OpenStdin":false,"StdinOnce":false,"Tty":false,"User":"","Volumes":null,"WorkingDir":""}"#;
    assert_eq!(
        read(&d.join(&id1).join("json")),
        format!(r#"{{"container_config":{empty},"created":"1970-01-01T00:00:00Z","id":"{id1}","os":"linux"}}"#) + "\n"
    );
    assert_eq!(
        read(&d.join(&id2).join("json")),
        format!(
            r#"{{"architecture":"{}","config":{CMD_ENV},"container_config":{empty},"created":"1970-01-01T00:00:00Z","id":"{id2}","os":"linux","parent":"{id1}"}}"#,
            host_architecture()
        ) + "\n"
    );
    assert_eq!(read(&d.join(&id1).join("VERSION")), "1.0");
    assert_eq!(
        read(&d.join("manifest.json")),
        format!(
            r#"[{{"Config":"{}.json","Layers":["{id1}/layer.tar","{id2}/layer.tar"],"RepoTags":["wb-golden:v1"]}}]"#,
            hex(&s.config_digest)
        ) + "\n"
    );
    assert_eq!(
        read(&d.join("repositories")),
        format!(r#"{{"wb-golden":{{"v1":"{id2}"}}}}"#) + "\n"
    );
}
