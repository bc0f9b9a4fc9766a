//! `workbench run --bundle DIR` (and `bundle:DIR`): an OCI bundle's
//! config.json decides the command, its environment, the hostname and the
//! rootfs; what workbench cannot honour is refused with one line, exit 2,
//! and nothing created.

mod common;

use std::path::Path;

use serde_json::{json, Value};

/// A bundle in a temporary directory: a busybox rootfs and a config.json as
/// `runc spec` writes it, with the command, env and hostname of the test.
fn bundle(edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let t = tempfile::Builder::new().prefix("wb-bundle-test-").tempdir().unwrap();
    let busybox = workbench::host::Host::probe()
        .busybox_static
        .expect("scripts/setup installs busybox-static");
    let rootfs = t.path().join("rootfs");
    rootfs_builder::build::build_rootfs(
        &rootfs_builder::build::RootfsSpec {
            busybox,
            ..Default::default()
        },
        &rootfs,
    )
    .unwrap();
    let mut config = json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false, "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", "echo \"$GREETING from $(hostname) as pid $$\"; exit 7"],
            "env": ["PATH=/bin:/sbin", "GREETING=hello"], "cwd": "/",
            "capabilities": {"bounding": ["CAP_KILL"]}, "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "wb-bundle",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
                  "maskedPaths": ["/proc/kcore"]}
    });
    edit(&mut config);
    std::fs::write(
        t.path().join("config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    t
}

type Edit = Box<dyn FnOnce(&mut Value)>;

fn dir(t: &tempfile::TempDir) -> &str {
    t.path().to_str().unwrap()
}

#[test]
fn a_bundle_runs_its_command_with_its_env_and_hostname() {
    let host = root_host!();
    let t = bundle(|_| {});
    for args in [
        vec!["run", "--bundle", dir(&t)],
        vec!["run", &format!("bundle:{}", dir(&t))],
    ] {
        let o = common::workbench(&args);
        assert_eq!(
            o.status.code(),
            Some(7),
            "{args:?}: the command's status; stderr: {}",
            common::stderr(&o)
        );
        assert_eq!(common::stdout(&o).trim(), "hello from wb-bundle as pid 1", "{args:?}");
    }
    // A writable root (readonly false) is an overlay whose writes vanish at exit.
    let t = bundle(|c| {
        c["root"]["readonly"] = false.into();
        c["process"]["args"] = json!(["/bin/sh", "-c", "echo x > /written && cat /written"]);
    });
    let o = common::workbench(&["run", "--bundle", dir(&t)]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", common::stderr(&o));
    assert!(!Path::new(dir(&t)).join("rootfs/written").exists());
    host.assert_unchanged("workbench run --bundle");
}

#[test]
fn what_workbench_cannot_honour_is_refused_before_anything_exists() {
    let host = root_host!();
    let good = bundle(|_| {});
    let refusals: Vec<(Edit, &str)> = vec![
        (Box::new(|c| c["process"]["terminal"] = true.into()), "process.terminal"),
        (Box::new(|c| c["process"]["cwd"] = "/tmp".into()), "process.cwd"),
        (
            Box::new(|c| c["linux"]["namespaces"][0]["type"] = "user".into()),
            "user namespace",
        ),
        (
            Box::new(|c| c["linux"]["namespaces"][1]["path"] = "/proc/1/ns/net".into()),
            "joining",
        ),
        (Box::new(|c| c["mounts"][1]["destination"] = "/data".into()), "/data"),
    ];
    for (edit, what) in refusals {
        let t = bundle(edit);
        let line = common::refused(&common::workbench(&["run", "--bundle", dir(&t)]), what);
        common::assert_has(&line, what);
    }
    let empty = tempfile::tempdir().unwrap();
    common::assert_has(
        &common::refused(&common::workbench(&["run", "--bundle", dir(&empty)]), "no config"),
        "no config.json",
    );
    let line = common::refused(
        &common::workbench(&["run", "--bundle", dir(&good), "/bin/true"]),
        "a command too",
    );
    common::assert_has(&line, "give no IMAGE|ROOTFS or CMD");
    let line = common::refused(
        &common::workbench(&["run", "--hostname", "x", "--bundle", dir(&good)]),
        "--hostname",
    );
    common::assert_has(&line, "--hostname");
    host.assert_unchanged("refused bundles");
}
