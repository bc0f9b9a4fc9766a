//! `workbench run`: the container's kernel view (PID 1, hostname, its own
//! /proc, pivot_root, lo only or a bridge), its limits (memory OOM kill, CPU
//! quota in the cgroup files), port mapping from the host, images, exit
//! codes, bad input, and that the host looks exactly as before afterwards,
//! also after Ctrl-C, SIGTERM and SIGKILL + `workbench cleanup`.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A busybox rootfs in a temporary directory, with a web page in /www and a
/// marker file: the directory and the rootfs's path in it.
fn rootfs() -> (tempfile::TempDir, String) {
    let t = tempfile::Builder::new().prefix("wb-run-test-").tempdir().unwrap();
    let host = workbench::host::Host::probe();
    let busybox = host
        .busybox_static
        .clone()
        .expect("a static busybox (scripts/setup installs busybox-static)");
    let spec = rootfs_builder::build::RootfsSpec {
        busybox,
        ..Default::default()
    };
    let root = t.path().join("rootfs");
    rootfs_builder::build::build_rootfs(&spec, &root).unwrap();
    std::fs::create_dir(root.join("www")).unwrap();
    std::fs::write(root.join("www/index.html"), "hello from the container\n").unwrap();
    std::fs::write(root.join("marker-of-the-rootfs"), "").unwrap();
    let path = root.display().to_string();
    (t, path)
}

/// Skip unless root; else `(host, dir, rootfs)`: the host held (`common::RootHost`) and a
/// fresh `rootfs()`.
macro_rules! root_and_rootfs {
    () => {{
        let host = root_host!();
        let (t, r) = rootfs();
        (host, t, r)
    }};
}

fn run(args: &[&str]) -> Output {
    let mut v = vec!["run"];
    v.extend_from_slice(args);
    common::workbench(&v)
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A `workbench run` in the background, ended with SIGKILL if the test fails first.
struct Bg(Child);

impl Drop for Bg {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
            let _ = self.0.wait();
        }
    }
}

fn start(args: &[&str]) -> Bg {
    let mut v = vec!["run"];
    v.extend_from_slice(args);
    Bg(Command::new(common::bin())
        .args(&v)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap())
}

/// The container's PID 1 as the host sees it: the child of workbench's main thread.
fn container_pid(bg: &Bg) -> i32 {
    let wb = bg.0.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let kids = std::fs::read_to_string(format!("/proc/{wb}/task/{wb}/children")).unwrap_or_default();
        if let Some(pid) = kids.split_whitespace().filter_map(|p| p.parse::<i32>().ok()).next() {
            // Wait until it has exec'd (its command line is no longer workbench's).
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if !cmd.is_empty() && !String::from_utf8_lossy(&cmd).contains("workbench") {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no container process under workbench {wb}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finish(mut bg: Bg, sig: Signal) -> Output {
    kill(Pid::from_raw(bg.0.id() as i32), sig).unwrap();
    let child = std::mem::replace(&mut bg.0, Command::new("true").spawn().unwrap());
    std::mem::forget(bg);
    child.wait_with_output().unwrap()
}

/// End a background run with `sig`: assert its exit status and that the
/// container `pid` died with it; the run's output.
fn stop(bg: Bg, pid: i32, sig: Signal, status: Option<i32>) -> Output {
    let o = finish(bg, sig);
    assert_eq!(o.status.code(), status, "{}", common::stderr(&o));
    assert!(process_gone(pid), "the container {pid} outlived the run ended by {sig}");
    o
}

fn process_gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn command_is_pid_1_and_its_exit_code_comes_back() {
    let (host, _t, r) = root_and_rootfs!();
    let o = run(&[&r, "/bin/sh", "-c", "echo $$"]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    assert_eq!(common::stdout(&o), "1\n");
    let o = run(&[&r, "/bin/sh", "-c", "exit 7"]);
    assert_eq!(code(&o), 7);
    // PATH lookup inside the container, and a command that is not there.
    let o = run(&[&r, "true"]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    let o = run(&[&r, "/bin/no-such-command"]);
    assert_eq!(code(&o), 127);
    common::assert_has(
        &common::stderr(&o),
        "exec /bin/no-such-command in the container: No such file or directory",
    );
    host.assert_unchanged("workbench run");
}

#[test]
fn hostname_proc_and_network_are_the_containers_own() {
    let (host, _t, r) = root_and_rootfs!();
    let host_name = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let o = run(&["--hostname", "box-1", &r, "hostname"]);
    assert_eq!(common::stdout(&o), "box-1\n", "{}", common::stderr(&o));
    assert_eq!(nix::unistd::gethostname().unwrap().into_string().unwrap(), host_name);
    // The shell expands the glob itself: no other process exists to be listed.
    let o = run(&[&r, "/bin/sh", "-c", "echo /proc/[0-9]*"]);
    assert_eq!(common::stdout(&o), "/proc/1\n", "{}", common::stderr(&o));
    // --net none: a network namespace with loopback only, and it is up.
    let o = run(&[
        "--net",
        "none",
        &r,
        "/bin/sh",
        "-c",
        "ls /sys/class/net; cat /sys/class/net/lo/operstate; ip -o link | wc -l",
    ]);
    assert_eq!(common::stdout(&o), "lo\nunknown\n1\n", "{}", common::stderr(&o));
    let o = run(&[&r, "/bin/sh", "-c", "ping -c 1 -W 1 127.0.0.1 >/dev/null && echo ok"]);
    assert_eq!(common::stdout(&o), "ok\n", "{}", common::stderr(&o));
    host.assert_unchanged("workbench run --hostname, --net none");
}

#[test]
fn pivot_root_leaves_no_way_back_to_the_host() {
    let (host, _t, r) = root_and_rootfs!();
    let o = run(&[
        &r,
        "/bin/sh",
        "-c",
        "ls /; echo ---; cat /proc/self/mountinfo; echo ---; ls /proc/1/root/",
    ]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    let out = common::stdout(&o);
    let parts: Vec<&str> = out.split("---\n").collect();
    assert!(
        parts[0].lines().any(|l| l == "marker-of-the-rootfs"),
        "ls / shows the rootfs: {}",
        parts[0]
    );
    assert_eq!(parts[0], parts[2], "/proc/1/root is the container's root");
    // Only the container's own mounts: the host's (e.g. /sys/fs/cgroup, /run) are gone.
    let points: Vec<&str> = parts[1].lines().filter_map(|l| l.split_whitespace().nth(4)).collect();
    assert_eq!(points.first(), Some(&"/"), "{points:?}");
    for p in &points {
        assert!(
            ["/", "/tmp", "/proc", "/dev", "/sys"].contains(p),
            "host mount {p} visible inside: {points:?}"
        );
    }
    let root_opts = parts[1].lines().next().unwrap().split_whitespace().nth(5).unwrap();
    assert!(root_opts.starts_with("ro,"), "the rootfs is read-only: {}", parts[1]);

    // From the host: the container's root is the rootfs directory, not the host's /.
    let bg = start(&[&r, "sleep", "30"]);
    let pid = container_pid(&bg);
    let croot = std::fs::metadata(format!("/proc/{pid}/root/")).unwrap();
    let rootfs = std::fs::metadata(&r).unwrap();
    let host_root = std::fs::metadata("/").unwrap();
    assert_eq!((croot.dev(), croot.ino()), (rootfs.dev(), rootfs.ino()));
    assert_ne!((croot.dev(), croot.ino()), (host_root.dev(), host_root.ino()));
    stop(bg, pid, Signal::SIGTERM, Some(143));
    host.assert_unchanged("workbench run");
}

#[test]
fn rootfs_stays_read_only_and_overlay_writes_vanish() {
    let (host, _t, r) = root_and_rootfs!();
    let o = run(&[&r, "/bin/sh", "-c", "touch /new-file"]);
    assert_ne!(code(&o), 0);
    common::assert_has(&common::stderr(&o), "Read-only file system");
    let o = run(&[&r, "/bin/sh", "-c", "echo x > /tmp/f && cat /tmp/f"]);
    assert_eq!(common::stdout(&o), "x\n");
    let o = run(&[
        "--overlay",
        &r,
        "/bin/sh",
        "-c",
        "echo y > /new-file && rm /marker-of-the-rootfs && cat /new-file && ls /marker-of-the-rootfs",
    ]);
    assert_eq!(common::stdout(&o), "y\n");
    assert_ne!(code(&o), 0, "the deleted file is hidden by a whiteout");
    assert!(!Path::new(&r).join("new-file").exists());
    assert!(Path::new(&r).join("marker-of-the-rootfs").exists());
    assert!(!Path::new(&r).join("tmp/f").exists());
    host.assert_unchanged("workbench run --overlay");
}

#[test]
fn memory_limit_gets_a_hog_oom_killed() {
    let (host, _t, r) = root_and_rootfs!();
    // tail keeps the whole "line" of /dev/zero (it never ends) in memory.
    let o = run(&["--memory", "16M", &r, "tail", "/dev/zero"]);
    assert_eq!(code(&o), 137, "{}", common::stderr(&o));
    common::assert_has(&common::stderr(&o), "OOM killer");
    host.assert_unchanged("workbench run --memory");
}

#[test]
fn limits_are_in_the_cgroup_files() {
    let (host, _t, r) = root_and_rootfs!();
    let bg = start(&[
        "--memory", "32M", "--cpus", "0.5", "--name", "limits", &r, "sleep", "30",
    ]);
    let pid = container_pid(&bg);
    let memberships = wb_cgroup::read_proc_cgroup(pid).unwrap();
    let layout = wb_cgroup::detect_system().unwrap();
    let mut seen = Vec::new();
    for m in memberships {
        assert!(!m.path.contains(".."));
        let in_wb = |ctrl: &str| {
            m.controllers.iter().any(|c| c == ctrl) || (m.hierarchy_id == 0 && layout.hierarchy(ctrl).is_none())
        };
        if !m.path.starts_with("/workbench/limits-") {
            continue;
        }
        let base = if m.hierarchy_id == 0 {
            layout.unified().unwrap().to_path_buf()
        } else {
            layout.hierarchy(&m.controllers[0]).unwrap().to_path_buf()
        };
        let dir = base.join(m.path.trim_start_matches('/'));
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        if in_wb("memory") && dir.join("memory.limit_in_bytes").exists() {
            assert_eq!(read("memory.limit_in_bytes"), (32u64 << 20).to_string());
            if dir.join("memory.memsw.limit_in_bytes").exists() {
                assert_eq!(
                    read("memory.memsw.limit_in_bytes"),
                    (32u64 << 20).to_string(),
                    "no swap on top"
                );
            }
            seen.push("memory");
        }
        if in_wb("memory") && dir.join("memory.max").exists() {
            assert_eq!(read("memory.max"), (32u64 << 20).to_string());
            seen.push("memory");
        }
        if in_wb("cpu") && dir.join("cpu.cfs_quota_us").exists() {
            assert_eq!(read("cpu.cfs_quota_us"), "50000");
            assert_eq!(read("cpu.cfs_period_us"), "100000");
            seen.push("cpu");
        }
        if in_wb("cpu") && dir.join("cpu.max").exists() {
            assert_eq!(read("cpu.max"), "50000 100000");
            seen.push("cpu");
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, vec!["cpu", "memory"]);
    stop(bg, pid, Signal::SIGINT, Some(130));
    host.assert_unchanged("workbench run with limits, ended by SIGINT");
}

#[test]
fn bridge_network_reaches_the_gateway() {
    let (host, _t, r) = root_and_rootfs!();
    let script = "ip -o -4 addr show eth0 | grep -q 'inet 10\\.' && gw=$(ip route | awk '/^default/ {print $3}') && echo gw=$gw && ping -c 1 -W 2 $gw >/dev/null && echo reached";
    let o = run(&["--net", "bridge", &r, "/bin/sh", "-c", script]);
    assert_eq!(code(&o), 0, "{}{}", common::stdout(&o), common::stderr(&o));
    let out = common::stdout(&o);
    assert!(out.starts_with("gw=10.") && out.ends_with("reached\n"), "{out}");
    host.assert_unchanged("workbench run --net bridge");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16) -> Option<String> {
    let mut s =
        std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn published_port_serves_the_containers_httpd_to_the_host() {
    let (host, _t, r) = root_and_rootfs!();
    let port = free_port();
    let map = format!("{port}:8080");
    let bg = start(&["-p", &map, &r, "httpd", "-f", "-p", "8080", "-h", "/www"]);
    let pid = container_pid(&bg);
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        match http_get(port) {
            Some(p) if p.contains("200") => break p,
            _ if Instant::now() > deadline => panic!("no answer on 127.0.0.1:{port}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert!(page.contains("hello from the container"), "{page}");
    stop(bg, pid, Signal::SIGTERM, Some(143));
    assert!(
        http_get(port).is_none_or(|p| !p.contains("hello")),
        "the mapping is gone"
    );
    host.assert_unchanged("workbench run -p");
}

#[test]
fn a_published_port_another_run_or_program_holds_is_refused() {
    let (mut host, _t, r) = root_and_rootfs!();
    // Play another live run (owned by this test process) that maps a host port,
    // as a nat-port-map run does.
    // The held port is one no other live run on this host maps: a real run
    // elsewhere (another student, another checkout's tests) may hold any port.
    let held_elsewhere = workbench::kit::netlab::held_ports_elsewhere();
    let held_port = std::iter::repeat_with(free_port)
        .find(|p| held_elsewhere.iter().all(|(h, _)| h != p))
        .unwrap();
    let listened = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let listened_port = listened.local_addr().unwrap().port();
    let held = host.hold(
        "nat-port-map",
        vec![workbench::state::Resource::HostPort { port: held_port }],
    );
    for (port, why) in [
        (
            held_port,
            format!(
                "is mapped by run {} (nat-port-map), which is still running",
                held.run_id
            ),
        ),
        (listened_port, "has a program on this host listening on it".to_string()),
    ] {
        let o = run(&["-p", &format!("{port}:80"), &r, "true"]);
        assert_eq!(code(&o), 2, "{}", common::stderr(&o));
        let line = common::one_line_error(&o);
        assert!(
            line.contains(&format!(
                "-p {port}:80: host port {port} {why}: publish another host port"
            )),
            "{line}"
        );
        host.assert_unchanged("workbench run -p refused a held port");
    }
    drop(listened);
}

fn make_images(t: &tempfile::TempDir) -> (PathBuf, PathBuf) {
    let layer = t.path().join("layer.tar.gz");
    let f = std::fs::File::create(&layer).unwrap();
    rootfs_builder::pack::pack_tar_gz(&t.path().join("rootfs"), f).unwrap();
    let cfg = wb_image::ImageConfig {
        name: "wbtest".into(),
        tag: "v1".into(),
        cmd: vec!["/bin/sh".into(), "-c".into(), "echo from the image $GREETING".into()],
        env: vec!["GREETING=hi".into()],
    };
    let oci = t.path().join("oci");
    wb_image::save_oci(std::slice::from_ref(&layer), &cfg, &oci).unwrap();
    let docker = t.path().join("image.tar");
    wb_image::save_docker_archive(std::slice::from_ref(&layer), &cfg, &docker).unwrap();
    (oci, docker)
}

#[test]
fn images_run_on_an_overlay_of_their_layers() {
    let (host, t, _) = root_and_rootfs!();
    let (oci, docker) = make_images(&t);
    let oci_ref = format!("oci:{}:v1", oci.display());
    let o = run(&[&oci_ref]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    assert_eq!(common::stdout(&o), "from the image hi\n");
    let o = run(&["-e", "GREETING=there", &oci_ref]);
    assert_eq!(common::stdout(&o), "from the image there\n", "{}", common::stderr(&o));
    let o = run(&[
        docker.to_str().unwrap(),
        "/bin/sh",
        "-c",
        "echo w > /written && cat /written /www/index.html",
    ]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    assert_eq!(common::stdout(&o), "w\nhello from the container\n");
    let o = run(&["--tag", "nope", oci.to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", common::stderr(&o));
    host.assert_unchanged("workbench run IMAGE");
}

#[test]
fn bad_input_is_one_line_exit_2_and_creates_nothing() {
    let (host, _t, r) = root_and_rootfs!();
    let cases: Vec<Vec<&str>> = vec![
        vec!["/nonexistent/rootfs", "/bin/true"],
        vec![&r],
        vec!["--memory", "abc", &r, "/bin/true"],
        vec!["--memory", "0", &r, "/bin/true"],
        vec!["--cpus", "0", &r, "/bin/true"],
        vec!["--cpus", "1000", &r, "/bin/true"],
        vec!["-p", "8080", &r, "/bin/true"],
        vec!["-p", "99999:80", &r, "/bin/true"],
        vec!["--net", "none", "-p", "8080:80", &r, "/bin/true"],
        vec!["--name", "../x", &r, "/bin/true"],
        vec!["--name", "a/b", &r, "/bin/true"],
        vec!["--hostname", "a/b", &r, "/bin/true"],
        vec!["--net", "wifi", &r, "/bin/true"],
        vec!["-t", &r, "/bin/true"],
    ];
    for c in &cases {
        let o = run(c);
        // clap's own errors add a usage hint; ours are exactly one line.
        if c.contains(&"wifi") {
            common::refused_by_parser(&o, "invalid value 'wifi'");
        } else {
            common::refused(&o, &format!("{c:?}"));
        }
    }
    let o = common::workbench_as_nobody(&["run", &r, "/bin/true"]);
    assert_eq!(code(&o), 2);
    assert!(
        common::stderr(&o).contains("needs root") && common::stderr(&o).contains("sudo"),
        "{}",
        common::stderr(&o)
    );
    host.assert_unchanged("bad input to workbench run");
}

#[test]
fn sigkill_leaves_nothing_that_cleanup_cannot_remove() {
    let (host, _t, r) = root_and_rootfs!();
    let bg = start(&[
        "--memory",
        "32M",
        "-p",
        &format!("{}:80", free_port()),
        &r,
        "sleep",
        "30",
    ]);
    let pid = container_pid(&bg);
    // PR_SET_PDEATHSIG kills the container with workbench.
    stop(bg, pid, Signal::SIGKILL, None);
    let after_kill = workbench::host::snapshot::capture();
    assert!(
        !workbench::host::snapshot::differences(&host.before, &after_kill).is_empty(),
        "SIGKILL left the bridge, cgroup and state file"
    );
    let o = common::workbench(&["cleanup"]);
    assert!(o.status.success(), "{}{}", common::stdout(&o), common::stderr(&o));
    common::assert_has(&common::stdout(&o), "nft table ip wbrun");
    host.assert_unchanged("workbench run killed with SIGKILL, then workbench cleanup");
}

#[test]
fn user_namespace_root_is_an_unprivileged_host_uid() {
    let (host, t, r) = root_and_rootfs!();
    // With the directory at 0700, uid 100000 could not even reach the rootfs.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = run(&["--userns", &r, "true"]);
    assert_eq!(code(&o), 2, "{}", common::stderr(&o));
    common::assert_has(&common::stderr(&o), "chmod o+x");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = run(&[
        "--userns",
        &r,
        "/bin/sh",
        "-c",
        "id -u; cat /proc/self/uid_map; stat -c %u /bin/busybox; echo x >/dev/null && echo dev-ok",
    ]);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    let out: Vec<String> = common::stdout(&o)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        out,
        vec!["0", "0 100000 65536", "65534", "dev-ok"],
        "root inside; the host's root is unmapped (nobody)"
    );
    let bg = start(&["--userns", &r, "sleep", "30"]);
    let pid = container_pid(&bg);
    assert_eq!(
        common::status_field(pid, "Uid"),
        "100000 100000 100000 100000",
        "seen from the host"
    );
    stop(bg, pid, Signal::SIGTERM, Some(143));
    host.assert_unchanged("workbench run --userns");
}

/// Not a test on its own: when started with WB_ESCAPE=1 (inside a chroot or a
/// container, see below) it performs the classic chroot escape and prints
/// what `/` then contains.
#[test]
fn escape_helper() {
    if std::env::var_os("WB_ESCAPE").is_none() {
        return;
    }
    // chroot into a subdirectory but stay (cwd) outside it, climb with "..",
    // then make wherever we ended up the root.
    std::fs::create_dir_all("/tmp/escape-x").unwrap();
    nix::unistd::chroot("/tmp/escape-x").unwrap();
    for _ in 0..64 {
        let _ = nix::unistd::chdir("..");
    }
    nix::unistd::chroot(".").unwrap();
    println!("ROOT-AFTER-ESCAPE {}", root_names().join(","));
}

/// The names in `/`, sorted.
fn root_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn chroot_can_be_escaped_but_pivot_root_cannot() {
    require_root!();
    let _g = common::serial();
    let (_t, r) = rootfs();
    // This very test binary is the escape tool: copy it and its libraries in.
    let me = std::env::current_exe().unwrap();
    rootfs_builder::build::copy_libraries(&me, Path::new(&r), &rootfs_builder::libs::LibSearch::host()).unwrap();
    std::fs::copy(&me, Path::new(&r).join("escape")).unwrap();
    let args = ["escape_helper", "--exact", "--nocapture", "--test-threads=1"];
    let escaped = |o: &Output| -> Vec<String> {
        let out = common::stdout(o);
        let line = out
            .lines()
            .find_map(|l| l.split_once("ROOT-AFTER-ESCAPE ").map(|x| x.1))
            .unwrap_or_else(|| panic!("no result: {out}{}", common::stderr(o)));
        line.split(',').map(str::to_string).collect()
    };
    let host_root = root_names();

    // Plain chroot (what the chroot-busybox lesson does): the escape reaches the host's /.
    let o = Command::new("chroot")
        .arg(&r)
        .arg("/escape")
        .args(args)
        .env("WB_ESCAPE", "1")
        .output()
        .unwrap();
    assert_eq!(
        escaped(&o),
        host_root,
        "out of a chroot, root walks back to the host's /"
    );

    // workbench run: after pivot_root and unmounting the old root there is nothing to climb to.
    let before = workbench::host::snapshot::capture();
    let mut v = vec!["-e", "WB_ESCAPE=1", &r, "/escape"];
    v.extend_from_slice(&args);
    let o = run(&v);
    assert_eq!(code(&o), 0, "{}", common::stderr(&o));
    let inside = escaped(&o);
    assert!(
        inside.contains(&"marker-of-the-rootfs".to_string()),
        "still in the container's rootfs: {inside:?}"
    );
    assert_ne!(inside, host_root);
    common::assert_host_unchanged(&before, "workbench run with an escape attempt");
}
