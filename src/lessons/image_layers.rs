//! image-layers: a base layer, a container's changes as a diff layer, and the
//! image saved, loaded and mounted again.
//!
//! An image is a stack of layer tars. The base layer is a root filesystem
//! packed with numeric owners; a container runs on an overlay whose lower dir
//! is that layer, and its upper dir — only what changed — becomes the next
//! layer, with deletions spelled as `.wh.NAME` files and recreated directories
//! as `.wh..wh..opq` markers. Saved as `docker save` or OCI layout, loaded,
//! and unpacked one directory per layer, the stack mounts back to the same tree.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use nix::sched::CloneFlags;
use rootfs_builder::build::{build_rootfs, RootfsSpec};
use wb_image::layer::{list_layer, LayerEntry};
use wb_image::{ImageConfig, OverlaySpec, TreeEntry};

use crate::kit::overlay::{describe, mountinfo_lines, require_overlayfs, tree_text, xattr_value};
use crate::kit::{child_snapshot, host_snapshot, spawn_child};
use crate::host::Host;
use crate::kernel::child::{NsChild, Request};
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};
use crate::observe::{Capture, MountEntry, Snapshot};
use crate::state::Resource;

pub const DEF: LessonDef = LessonDef::of::<ImageLayers>(preflight).shell("inside the lesson").spots(&[("run-container", Spot::Procs(1))]);

/// Image name and tag as `repositories` and `index.json` record them.
const IMAGE: &str = "workbench/busybox";
const TAG: &str = "demo";
/// The base image as `workbench image import` names it (the post's `busyboxtest`).
const BASE_REF: &str = "workbench/busybox:base";
/// What the shell of the history-leak step exports: a secret it should not keep.
const SECRET: &str = "s3cr3t-t0ken";

fn preflight(host: &Host, _opts: &LessonOptions) -> anyhow::Result<()> {
    host.require_root("mount(2) of overlays, chroot(2), mknod of whiteouts and trusted.* xattrs need CAP_SYS_ADMIN")?;
    host.require_static_busybox()?;
    require_overlayfs()?;
    // Step history-leak runs an interactive bash (Debian's busybox ash keeps no history file).
    if crate::host::features::which("bash").is_none() {
        anyhow::bail!("no bash on the host (step history-leak types into an interactive bash): apt-get install bash");
    }
    Ok(())
}

/// `tar -tv`-like line of one layer entry: "-rw-r--r-- 0/0      12 hello.txt".
pub fn tar_line(e: &LayerEntry) -> String {
    let kind = match e.kind {
        "hardlink" => "file",
        k => k,
    };
    let mut s = format!("{} {}/{} {:>8} {}", wb_image::overlay::mode_string(kind, e.mode), e.uid, e.gid, e.size, e.path);
    match (e.kind, &e.link) {
        ("symlink", Some(l)) => s.push_str(&format!(" -> {l}")),
        ("hardlink", Some(l)) => s.push_str(&format!(" link to {l}")),
        _ => {}
    }
    s
}

/// The differences between two trees, at most `max` lines ("only in a: x", "differs: y").
pub fn tree_differences(a: &[TreeEntry], b: &[TreeEntry], max: usize) -> Vec<String> {
    let ma: BTreeMap<&str, &TreeEntry> = a.iter().map(|e| (e.path.as_str(), e)).collect();
    let mb: BTreeMap<&str, &TreeEntry> = b.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut out = Vec::new();
    for (p, e) in &ma {
        match mb.get(p) {
            None => out.push(format!("only in the first: {p}")),
            Some(f) if f != e => out.push(format!("differs: {p} ({} {:o} {}:{} {} vs {} {:o} {}:{} {})", e.kind, e.mode, e.uid, e.gid, e.size, f.kind, f.mode, f.uid, f.gid, f.size)),
            _ => {}
        }
    }
    for p in mb.keys() {
        if !ma.contains_key(p) {
            out.push(format!("only in the second: {p}"));
        }
    }
    out.truncate(max);
    out
}

/// Run an external tool (skopeo, umoci) to completion, recorded in the state
/// file while it runs and killed with workbench, so that Ctrl-C never leaves
/// it writing into a directory being removed.
fn run_tool(cmd: &mut Command) -> anyhow::Result<std::process::Output> {
    use std::os::unix::process::CommandExt;
    let prog = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    // SAFETY: prctl(2) is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            Ok(())
        });
    }
    let (child, res) = crate::state::track(|| -> anyhow::Result<_> {
        let child = cmd.spawn().with_context(|| format!("run {prog}"))?;
        let pid = child.id() as i32;
        let r = Resource::Process { pid, start_time: crate::kernel::proc::start_time(pid).unwrap_or(0) };
        Ok(((child, r.clone()), r))
    })?;
    let out = child.wait_with_output().with_context(|| format!("wait for {prog}"));
    crate::state::forget(&res);
    out
}

fn read_json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
}

fn file_size(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{} bytes", m.len()),
        Err(_) => "absent".into(),
    }
}

#[derive(Default)]
struct ImageLayers {
    /// The run's working directory: every path below is shown relative to it.
    base: PathBuf,
    base_layer: PathBuf,
    diff_layer: PathBuf,
    container: Option<NsChild>,
    container_spec: Option<OverlaySpec>,
    container_tree: Vec<TreeEntry>,
    docker_dir: PathBuf,
    oci_dir: PathBuf,
    diff_ids: Vec<String>,
    loader: Option<NsChild>,
    loaded_spec: Option<OverlaySpec>,
    host_mounts_at_start: Vec<MountEntry>,
}

impl ImageLayers {
    fn rel(&self, p: &Path) -> String {
        p.strip_prefix(&self.base).map(|p| p.display().to_string()).unwrap_or_else(|_| p.display().to_string())
    }

    fn container_spec(&self) -> anyhow::Result<OverlaySpec> {
        self.container_spec.clone().ok_or_else(|| anyhow::anyhow!("no container: the run-container step did not run"))
    }

    /// Facts about the container's layers: upper as on disk, merged as the container sees it.
    fn container_facts(&self, label: &str, merged_view: Option<&Path>) -> anyhow::Result<Snapshot> {
        let spec = self.container_spec()?;
        let mut facts = BTreeMap::new();
        for n in ["hello.txt", "etc/hosts", "var", "var/run"] {
            facts.insert(format!("upper/{n}"), describe(&spec.upper.join(n)));
            if let Some(m) = merged_view {
                facts.insert(format!("merged/{n} (container's view)"), describe(&m.join(n)));
            }
        }
        Ok(Snapshot { label: label.into(), facts, ..Default::default() })
    }
}

impl Lesson for ImageLayers {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        match step {
            "base-layer" => {
                self.host_mounts_at_start = host_snapshot(Capture::MOUNTS)?.mounts;
                self.base = cx.workdir.clone();
                let busybox = cx.host.require_static_busybox()?.to_path_buf();
                let rootfs = cx.workdir.join("rootfs");
                let layers = cx.workdir.join("layers");
                self.base_layer = layers.join("base.tar.gz");
                let before = Snapshot { label: "before".into(), facts: [("layers/base.tar.gz".to_string(), file_size(&self.base_layer))].into(), ..Default::default() };
                r.say("host", format!("cd {}", cx.workdir.display()), "");
                let spec = RootfsSpec { busybox: busybox.clone(), copy_libraries: false, hostname: "container".into() };
                let built = build_rootfs(&spec, &rootfs).with_context(|| format!("build rootfs in {}", rootfs.display()))?;
                r.say("host", format!("rootfs-builder build --busybox {} rootfs", busybox.display()), format!("static busybox, {} applet links, /etc, /dev", built.applets.len()));
                std::fs::create_dir_all(&layers).with_context(|| format!("mkdir {}", layers.display()))?;
                let f = std::fs::File::create(&self.base_layer).with_context(|| format!("create {}", self.base_layer.display()))?;
                rootfs_builder::pack::pack_tar_gz(&rootfs, std::io::BufWriter::new(f)).with_context(|| format!("pack {}", rootfs.display()))?;
                r.say("host", "tar --numeric-owner --sort=name -C rootfs -czf layers/base.tar.gz .", "");
                let entries = list_layer(wb_image::image::open_layer_file(&self.base_layer)?)?;
                let mut listing: Vec<String> = entries.iter().take(12).map(tar_line).collect();
                listing.push(format!("... ({} entries)", entries.len()));
                r.say("host", "tar -tvzf layers/base.tar.gz | head -12", listing.join("\n"));
                // Owner names in the headers: numeric owners leave them empty.
                let mut named = 0;
                let mut archive = tar::Archive::new(wb_image::image::open_layer_file(&self.base_layer)?);
                for e in archive.entries().context("read layers/base.tar.gz")? {
                    let e = e.context("read layers/base.tar.gz")?;
                    let h = e.header();
                    if h.username_bytes().is_some_and(|u| !u.is_empty()) || h.groupname_bytes().is_some_and(|g| !g.is_empty()) {
                        named += 1;
                    }
                }
                let on_disk = wb_image::tree(&rootfs)?.len();
                let mut magic = [0u8; 2];
                std::fs::File::open(&self.base_layer)?.read_exact(&mut magic)?;
                let after = Snapshot {
                    label: "after".into(),
                    facts: [("layers/base.tar.gz".to_string(), format!("{}, gzip, {} entries", file_size(&self.base_layer), entries.len()))].into(),
                    ..Default::default()
                };
                r.check_eq("gzip magic bytes", "1f8b".to_string(), format!("{:02x}{:02x}", magic[0], magic[1]));
                r.check_eq("entries in the layer = files in the rootfs", on_disk, entries.len());
                r.check_eq("entries carrying owner names (numeric owners only)", 0, named);
                let bb = entries.iter().find(|e| e.path == "bin/busybox");
                r.check("bin/busybox in the layer", "file 0755 0/0", bb.map(|e| format!("{} {:04o} {}/{}", e.kind, e.mode, e.uid, e.gid)).unwrap_or_else(|| "missing".into()), bb.is_some_and(|e| e.kind == "file" && e.mode == 0o755 && e.uid == 0 && e.gid == 0));
                r.observe(before, after);
            }
            "import" => {
                let rootfs = cx.workdir.join("rootfs");
                let plain = cx.workdir.join("layers/rootfs.tar");
                let store_root = cx.workdir.join("store");
                let facts = |plain: &Path, store: &Path| -> BTreeMap<String, String> {
                    [("layers/rootfs.tar".to_string(), file_size(plain)), ("store/".to_string(), store_summary(store))].into()
                };
                let before = Snapshot { label: "before".into(), facts: facts(&plain, &store_root), ..Default::default() };
                let f = std::fs::File::create(&plain).with_context(|| format!("create {}", plain.display()))?;
                let mut w = rootfs_builder::pack::pack_tar(&rootfs, std::io::BufWriter::new(f)).with_context(|| format!("pack {}", rootfs.display()))?;
                std::io::Write::flush(&mut w).with_context(|| format!("write {}", plain.display()))?;
                drop(w);
                let plain_sha = wb_image::image::sha256_file(&plain)?;
                r.say("host", "tar --numeric-owner --sort=name -C rootfs -cf layers/rootfs.tar .   (no gzip: the post's BusyBox-test.tar)", format!("{}, {}…", file_size(&plain), &plain_sha[..19]));
                let strip = format!("{}/", cx.workdir.display());
                // The store's own load code, into a store in the working directory.
                let refused = match crate::image::cmds::load_into(&store_root, &plain, None) {
                    Ok((r, _, _)) => Err(format!("loaded as {r}")),
                    Err(e) => Ok(e.to_string().replace(&strip, "")),
                };
                let shown = match &refused {
                    Ok(msg) => format!("{msg}\n(exit 2)"),
                    Err(msg) => msg.clone(),
                };
                r.say("host", "workbench image load layers/rootfs.tar   (docker load -i layers/rootfs.tar)", shown);
                let store_after_refusal = store_summary(&store_root);
                r.say("host", "ls store/", store_after_refusal.clone());
                let reference = wb_image::store::Reference::parse(BASE_REF).map_err(anyhow::Error::msg)?;
                let (manifest, layers) = crate::image::cmds::import_into(&store_root, &plain, &reference)?;
                r.say(
                    "host",
                    format!("workbench image import layers/rootfs.tar {BASE_REF}   (docker import layers/rootfs.tar {BASE_REF})"),
                    std::iter::once(format!("imported {BASE_REF} (manifest {}…)", &manifest[..19])).chain(layers.iter().enumerate().map(|(i, l)| format!("  layer {}: {} {} bytes", i + 1, l.digest, l.size))).collect::<Vec<_>>().join("\n"),
                );
                let store = wb_image::store::Store::existing(&store_root).ok_or_else(|| anyhow::anyhow!("no store at {} after the import", store_root.display()))?;
                let img = store.get(&reference, true)?;
                r.say("host", "workbench image ls   (docker images; here the lesson's store/, not /var/lib/workbench/images)", format!("{BASE_REF}  {}  {} layer(s)  {} bytes", &img.manifest_digest[7..19], img.layers.len(), img.size()));
                let blobs = store_root.join("blobs/sha256");
                r.say("host", "ls store/blobs/sha256   (the layer, the config, the manifest: each named by its sha256)", names_in(&blobs));
                let after = Snapshot { label: "after".into(), facts: facts(&plain, &store_root), ..Default::default() };
                let want_reason = "refused: not an image (no manifest.json, repositories or oci-layout)";
                let got_reason = match &refused {
                    Ok(msg) if msg.contains("not an image") && msg.contains("manifest.json") && msg.contains("oci-layout") => want_reason.to_string(),
                    Ok(msg) => msg.clone(),
                    Err(msg) => msg.clone(),
                };
                r.check_eq("image load of the plain tar", want_reason.to_string(), got_reason);
                r.check_eq("the store after the refused load (nothing created)", "absent".to_string(), store_after_refusal);
                r.check_eq("layers of the imported image", 1, img.layers.len());
                let layer = img.layers.first().map(|l| l.digest.clone()).unwrap_or_default();
                r.check_eq("the layer's digest = sha256 of layers/rootfs.tar", plain_sha.clone(), layer.clone());
                let rehash = match store.verify_blob(&layer) {
                    Ok(n) => format!("re-hashed: {n} bytes match their name"),
                    Err(e) => e.to_string(),
                };
                r.check_eq("the stored blob, re-hashed", format!("re-hashed: {} bytes match their name", std::fs::metadata(&plain).map(|m| m.len()).unwrap_or(0)), rehash);
                r.observe(before, after);
            }
            "run-container" => {
                let dir = cx.workdir.join("container");
                let spec = OverlaySpec::under(&dir, 1);
                self.container_spec = Some(spec.clone());
                let report = wb_image::layer::apply_layer_file(&self.base_layer, &spec.lowers[0], wb_image::ApplyMode::Overlay)?;
                r.say("host", "mkdir -p container/lower && tar --numeric-owner -xzf layers/base.tar.gz -C container/lower", format!("{} entries", report.entries));
                spec.create_dirs().context("create the container's overlay directories")?;
                r.say("host", "mkdir container/upper container/work container/merged", "");
                let flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
                let mut child = spawn_child(flags)?;
                let pid = child.pid();
                r.say("parent", "clone(..., CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWUTS|CLONE_NEWIPC|SIGCHLD)", format!("clone() = {pid}"));
                child.act(&Request::MakeRprivate)?;
                child.act(&Request::SetHostname("container".into()))?;
                r.say("child", "mount --make-rprivate / && hostname container", "");
                let mut before = child_snapshot(&child, Capture::MOUNTS)?;
                child.act(&Request::mount_overlay(&spec))?;
                let mut after = child_snapshot(&child, Capture::MOUNTS)?;
                r.say("child", wb_image::classic_command(&OverlaySpec::under(Path::new("container"), 1)), "");
                r.say("host", format!("grep ' container/merged ' /proc/{pid}/mountinfo"), mountinfo_lines(pid, &spec.merged));
                child.act(&Request::Chroot(spec.merged.clone()))?;
                r.say("child", "cd container/merged && chroot . /bin/sh", "");
                self.container = Some(child);
                let view = PathBuf::from(format!("/proc/{pid}/root/."));
                before.facts = self.container_facts("before", Some(&view))?.facts;
                let child = self.container.as_mut().expect("just set");
                let mut ok = true;
                for (shown, argv) in [
                    ("echo 'hello from the container' > /hello.txt", vec!["/bin/sh", "-c", "echo 'hello from the container' > /hello.txt"]),
                    ("rm /etc/hosts", vec!["/bin/rm", "/etc/hosts"]),
                    ("rm -r /var && mkdir -p /var/log && echo started > /var/log/app.log", vec!["/bin/sh", "-c", "rm -r /var && mkdir -p /var/log && echo started > /var/log/app.log"]),
                    ("ls -A / /var", vec!["/bin/ls", "-A", "/", "/var"]),
                ] {
                    let out = child.run(&argv)?;
                    ok &= out.success();
                    r.ran("container", shown, &out);
                }
                r.say("host", "tree container/upper", tree_text(&spec.upper));
                after.facts = self.container_facts("after", Some(&view))?.facts;
                self.container_tree = wb_image::tree(&view)?;
                r.check_eq("commands in the container exited 0", true, ok);
                r.check_eq("upper/hello.txt (a new file)", "file \"hello from the container\"".to_string(), describe(&spec.upper.join("hello.txt")));
                let wh = std::fs::symlink_metadata(spec.upper.join("etc/hosts")).ok();
                let wh_kind = match &wh {
                    Some(m) if m.file_type().is_char_device() => format!("char device {}/{}", libc::major(m.rdev()), libc::minor(m.rdev())),
                    Some(_) => "not a char device".into(),
                    None => "absent".into(),
                };
                r.check_eq("upper/etc/hosts (deleted: a whiteout)", "char device 0/0".to_string(), wh_kind);
                r.check_eq("trusted.overlay.opaque on upper/var (recreated)", "y".to_string(), xattr_value(&spec.upper.join("var"), wb_image::overlay::OPAQUE_XATTR).unwrap_or_else(|| "(not set)".into()));
                r.check_eq("merged/var/run (base layer's, hidden by the opaque var)", "absent".to_string(), describe(&view.join("var/run")));
                r.observe(before, after);
            }
            "commit" => {
                let spec = self.container_spec()?;
                let mut child = self.container.take().ok_or_else(|| anyhow::anyhow!("no container: the run-container step did not run"))?;
                let pid = child.pid();
                let alive = |pid: i32| if Path::new(&format!("/proc/{pid}/root")).exists() { "running".to_string() } else { "gone".to_string() };
                let mut before = Snapshot { label: "before".into(), ..Default::default() };
                before.facts.insert(format!("container (pid {pid})"), alive(pid));
                before.facts.insert("layers/diff.tar".into(), file_size(&cx.workdir.join("layers/diff.tar")));
                child.kill();
                drop(child);
                r.say("host", format!("kill -9 {pid}   (the container stops; its mount namespace and the overlay go with it)"), "");
                self.diff_layer = cx.workdir.join("layers/diff.tar");
                wb_image::layer::upper_to_layer_file(&spec.upper, &self.diff_layer)?;
                r.say("host", "tar --numeric-owner -C container/upper -cf layers/diff.tar .   (whiteouts become .wh.NAME, opaque dirs get .wh..wh..opq)", "");
                let entries = list_layer(wb_image::image::open_layer_file(&self.diff_layer)?)?;
                r.say("host", "tar -tvf layers/diff.tar", entries.iter().map(tar_line).collect::<Vec<_>>().join("\n"));
                let mut after = Snapshot { label: "after".into(), ..Default::default() };
                after.facts.insert(format!("container (pid {pid})"), alive(pid));
                after.facts.insert("layers/diff.tar".into(), format!("{}, {} entries", file_size(&self.diff_layer), entries.len()));
                let find = |p: &str| entries.iter().find(|e| e.path.trim_end_matches('/') == p);
                let wh = find("etc/.wh.hosts");
                r.check("etc/.wh.hosts in the layer (the whiteout)", "empty file", wh.map(|e| format!("{} of {} bytes", e.kind, e.size)).unwrap_or_else(|| "missing".into()), wh.is_some_and(|e| e.kind == "file" && e.size == 0));
                let opq = find("var/.wh..wh..opq");
                r.check("var/.wh..wh..opq in the layer (the opaque dir)", "empty file", opq.map(|e| format!("{} of {} bytes", e.kind, e.size)).unwrap_or_else(|| "missing".into()), opq.is_some_and(|e| e.kind == "file" && e.size == 0));
                r.check_eq("hello.txt in the layer", true, find("hello.txt").is_some());
                r.check_eq("bin/busybox in the layer (unchanged: only in the base)", false, find("bin/busybox").is_some());
                let upper_entries = wb_image::tree(&spec.upper)?;
                let opaque_dirs = upper_entries.iter().filter(|e| e.opaque).count();
                r.check_eq("entries = upper's entries + one marker per opaque dir", upper_entries.len() + opaque_dirs, entries.len());
                r.check_eq("the container's process", "gone".to_string(), alive(pid));
                r.observe(before, after);
            }
            "history-leak" => {
                let bash = crate::host::features::which("bash").ok_or_else(|| anyhow::anyhow!("no bash on the host: apt-get install bash"))?;
                let dir = cx.workdir.join("shell");
                let tools = dir.join("tools");
                let base_lower = self.container_spec()?.lowers[0].clone();
                // bash and its libraries, as a layer of their own under the shell's container.
                std::fs::create_dir_all(tools.join("bin")).with_context(|| format!("mkdir {}", tools.display()))?;
                std::fs::copy(&bash, tools.join("bin/bash")).with_context(|| format!("copy {}", bash.display()))?;
                let libs = rootfs_builder::build::copy_libraries(&bash, &tools, &rootfs_builder::libs::LibSearch::host()).context("copy bash's libraries")?;
                r.say("host", format!("mkdir -p shell/tools/bin && cp {} shell/tools/bin/ && cp --parents $(ldd bash libraries) shell/tools/", bash.display()), libs.iter().map(|l| l.path_in_rootfs.display().to_string()).collect::<Vec<_>>().join("\n"));
                let tools_layer = cx.workdir.join("layers/bash.tar");
                let f = std::fs::File::create(&tools_layer).with_context(|| format!("create {}", tools_layer.display()))?;
                let mut w = rootfs_builder::pack::pack_tar(&tools, std::io::BufWriter::new(f)).context("pack shell/tools")?;
                std::io::Write::flush(&mut w).context("write layers/bash.tar")?;
                drop(w);
                r.say("host", "tar --numeric-owner -C shell/tools -cf layers/bash.tar .   (a layer with bash in it, on top of the base)", file_size(&tools_layer));
                let spec = OverlaySpec::new(vec![tools.clone(), base_lower], dir.join("upper"), dir.join("work"), dir.join("merged"));
                spec.create_dirs().context("create the shell container's overlay directories")?;
                let flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
                let mut child = spawn_child(flags)?;
                let pid = child.pid();
                child.act(&Request::MakeRprivate)?;
                child.act(&Request::SetHostname("container".into()))?;
                child.act(&Request::mount_overlay(&spec))?;
                let rel_spec = OverlaySpec::new(vec!["shell/tools".into(), "container/lower".into()], "shell/upper", "shell/work", "shell/merged");
                r.say("parent", format!("clone(..., CLONE_NEWNS|CLONE_NEWPID|...) = {pid}; {}", wb_image::classic_command(&rel_spec)), "");
                child.act(&Request::Chroot(spec.merged.clone()))?;
                let before = Snapshot {
                    label: "before".into(),
                    facts: [
                        ("shell/upper".to_string(), names_in(&spec.upper)),
                        ("layers/shell.tar".to_string(), file_size(&cx.workdir.join("layers/shell.tar"))),
                    ]
                    .into(),
                    ..Default::default()
                };
                // What the user types at the prompt of `docker run -it IMAGE bash`.
                let typed = ["echo shellbox > /etc/hostname", "rm /etc/group", &format!("export API_TOKEN={SECRET}"), "exit"];
                let script = format!("printf '%s\\n' {} | env -i HOME=/ PATH=/bin:/usr/bin:/sbin:/usr/sbin TERM=dumb /bin/bash -i", typed.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(" "));
                let out = child.run(&["/bin/sh", "-c", &script])?;
                r.say("container", "bash -i   (HOME=/; typed at its prompt, one line each:)", typed.join("\n"));
                r.say("container", "(bash exits and writes its history to $HOME/.bash_history)", if out.success() { "exit 0".to_string() } else { format!("failed: {}", out.stderr.trim()) });
                child.kill();
                drop(child);
                r.say("host", format!("kill -9 {pid}; ls -A shell/upper shell/upper/etc"), format!("{}\n\nshell/upper/etc:\n{}", names_in(&spec.upper), names_in(&spec.upper.join("etc"))));
                // Commit the upper dir, save the three layers docker-style, open the saved top layer.
                let diff = cx.workdir.join("layers/shell-diff.tar");
                wb_image::layer::upper_to_layer_file(&spec.upper, &diff)?;
                r.say("host", "tar --numeric-owner -C shell/upper -cf layers/shell-diff.tar .   (docker commit c2 workbench/busybox:shell)", "");
                let archive = cx.workdir.join("layers/shell.tar");
                let cfg = ImageConfig { name: IMAGE.into(), tag: "shell".into(), cmd: vec!["/bin/bash".into()], env: vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()] };
                let saved = wb_image::save_docker_archive(&[self.base_layer.clone(), tools_layer.clone(), diff.clone()], &cfg, &archive)?;
                let top = saved.layer_ids.last().cloned().unwrap_or_default();
                r.say("host", format!("docker save -o layers/shell.tar {IMAGE}:shell"), format!("{}, {} layers", file_size(&archive), saved.layer_ids.len()));
                let inner = format!("{top}/layer.tar");
                let layer_bytes = tar_member(&archive, &inner)?;
                let entries = list_layer(&layer_bytes[..])?;
                r.say("host", format!("tar -xOf layers/shell.tar {}…/layer.tar | tar -tv", &top[..12.min(top.len())]), entries.iter().map(tar_line).collect::<Vec<_>>().join("\n"));
                let history = tar_member_bytes(&layer_bytes, ".bash_history").map(|b| String::from_utf8_lossy(&b).into_owned());
                r.say("host", format!("tar -xOf layers/shell.tar {}…/layer.tar | tar -xO .bash_history", &top[..12.min(top.len())]), history.clone().unwrap_or_else(|| "(no .bash_history in the layer)".into()));
                let after = Snapshot {
                    label: "after".into(),
                    facts: [("shell/upper".to_string(), names_in(&spec.upper)), ("layers/shell.tar".to_string(), format!("{}, {} layers", file_size(&archive), saved.layer_ids.len()))].into(),
                    ..Default::default()
                };
                let find = |p: &str| entries.iter().find(|e| e.path.trim_end_matches('/') == p);
                let hostname = tar_member_bytes(&layer_bytes, "etc/hostname").map(|b| String::from_utf8_lossy(&b).trim().to_string());
                r.check_eq("etc/hostname in the saved diff layer (changed)", "shellbox".to_string(), hostname.unwrap_or_else(|| "missing".into()));
                let wh = find("etc/.wh.group");
                r.check("etc/.wh.group in the saved diff layer (deleted)", "empty file", wh.map(|e| format!("{} of {} bytes", e.kind, e.size)).unwrap_or_else(|| "missing".into()), wh.is_some_and(|e| e.kind == "file" && e.size == 0));
                let typed_lines: Vec<String> = typed.iter().map(|t| t.to_string()).collect();
                let got_lines: Vec<String> = history.as_deref().unwrap_or("").lines().map(str::to_string).collect();
                r.check_eq(".bash_history in the saved diff layer: the typed lines", typed_lines.join(" ⏎ "), if history.is_some() { got_lines.join(" ⏎ ") } else { "missing".into() });
                let leaked = layer_bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
                r.check_eq(format!("the secret {SECRET:?} in the saved layer.tar's bytes"), true, leaked);
                r.check_eq("bin/bash in the diff layer (it is in the layer below)", false, find("bin/bash").is_some());
                r.observe(before, after);
            }
            "save-docker" => {
                self.docker_dir = cx.workdir.join("image/docker-save");
                let cfg = image_config();
                let layers = vec![self.base_layer.clone(), self.diff_layer.clone()];
                let before = Snapshot { label: "before".into(), facts: [("image/docker-save".to_string(), dir_summary(&self.docker_dir))].into(), ..Default::default() };
                let saved = wb_image::save_docker_dir(&layers, &cfg, &self.docker_dir)?;
                let archive = cx.workdir.join("image/busybox-demo.tar");
                wb_image::save_docker_archive(&layers, &cfg, &archive)?;
                self.diff_ids = saved.diff_ids.clone();
                r.say("host", format!("(docker save {IMAGE}:{TAG} | tar -x -C image/docker-save)"), "");
                r.say("host", "tree image/docker-save", tree_text(&self.docker_dir));
                let repos = std::fs::read_to_string(self.docker_dir.join("repositories")).unwrap_or_default();
                r.say("host", "cat image/docker-save/repositories", repos.trim_end());
                let top = saved.layer_ids.last().cloned().unwrap_or_default();
                let base_id = saved.layer_ids.first().cloned().unwrap_or_default();
                let top_json = read_json(&self.docker_dir.join(&top).join("json"))?;
                r.say("host", format!("cat image/docker-save/{}…/json", &top[..12.min(top.len())]), serde_json::to_string_pretty(&top_json).unwrap_or_default());
                r.say("host", format!("docker save -o image/busybox-demo.tar {IMAGE}:{TAG}   (the same files as one tar)"), file_size(&archive));
                let mut complete = 0;
                for id in &saved.layer_ids {
                    let d = self.docker_dir.join(id);
                    let version = std::fs::read_to_string(d.join("VERSION")).unwrap_or_default();
                    if version.trim() == "1.0" && d.join("json").is_file() && d.join("layer.tar").is_file() {
                        complete += 1;
                    }
                }
                let after = Snapshot {
                    label: "after".into(),
                    facts: [
                        ("image/docker-save".to_string(), dir_summary(&self.docker_dir)),
                        ("image/busybox-demo.tar".to_string(), file_size(&archive)),
                    ]
                    .into(),
                    ..Default::default()
                };
                r.check_eq("layer dirs with VERSION 1.0, json and layer.tar", 2, complete);
                let repo_top = serde_json::from_str::<serde_json::Value>(&repos).ok().and_then(|v| v[IMAGE][TAG].as_str().map(str::to_string)).unwrap_or_default();
                r.check_eq(format!("repositories: {IMAGE}:{TAG} names the top layer"), top.clone(), repo_top);
                r.check_eq("top layer's json names the base as parent", base_id, top_json["parent"].as_str().unwrap_or("").to_string());
                let top_sha = wb_image::image::sha256_file(&self.docker_dir.join(&top).join("layer.tar"))?;
                let diff_sha = wb_image::image::sha256_file(&self.diff_layer)?;
                r.check_eq("top layer.tar is layers/diff.tar (sha256)", diff_sha, top_sha);
                r.observe(before, after);
            }
            "save-oci" => {
                self.oci_dir = cx.workdir.join("image/oci");
                let before = Snapshot { label: "before".into(), facts: [("image/oci".to_string(), dir_summary(&self.oci_dir))].into(), ..Default::default() };
                let saved = wb_image::save_oci(&[self.base_layer.clone(), self.diff_layer.clone()], &image_config(), &self.oci_dir)?;
                r.say("host", format!("(skopeo copy docker-archive:image/busybox-demo.tar oci:image/oci:{TAG})"), "");
                r.say("host", "tree image/oci", tree_text(&self.oci_dir));
                let index = read_json(&self.oci_dir.join("index.json"))?;
                r.say("host", "cat image/oci/index.json", serde_json::to_string_pretty(&index).unwrap_or_default());
                let mhex = saved.manifest_digest.trim_start_matches("sha256:");
                let manifest = read_json(&self.oci_dir.join("blobs/sha256").join(mhex))?;
                r.say("host", format!("cat image/oci/blobs/sha256/{}…   (the manifest)", &mhex[..12]), serde_json::to_string_pretty(&manifest).unwrap_or_default());
                let after = Snapshot { label: "after".into(), facts: [("image/oci".to_string(), dir_summary(&self.oci_dir))].into(), ..Default::default() };
                let ref_name = index["manifests"][0]["annotations"][wb_image::image::ANNOTATION_REF_NAME].as_str().unwrap_or("").to_string();
                r.check_eq("index.json names the image", TAG.to_string(), ref_name);
                r.check_eq("OCI diff_ids equal the docker-save ones", same_ids(&self.diff_ids, &self.diff_ids), same_ids(&self.diff_ids, &saved.diff_ids));
                let layer_types: Vec<String> = manifest["layers"].as_array().map(|v| v.iter().map(|l| l["mediaType"].as_str().unwrap_or("").to_string()).collect()).unwrap_or_default();
                r.check_eq("manifest layers (gzip tars, base first)", 2, layer_types.iter().filter(|t| *t == wb_image::image::MEDIA_TYPE_LAYER_GZIP).count());
                match crate::host::features::which("skopeo") {
                    Some(skopeo) => {
                        let target = format!("oci:{}:{TAG}", self.oci_dir.display());
                        let out = run_tool(Command::new(&skopeo).args(["inspect", &target]))?;
                        let text = String::from_utf8_lossy(&out.stdout).into_owned();
                        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                        let shown = format!("Digest: {}\nLayers: {}\nArchitecture: {}  Os: {}", v["Digest"].as_str().unwrap_or("?"), v["Layers"].as_array().map(|l| l.len()).unwrap_or(0), v["Architecture"].as_str().unwrap_or("?"), v["Os"].as_str().unwrap_or("?"));
                        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
                        r.say("host", format!("skopeo inspect oci:image/oci:{TAG}"), if out.status.success() { shown } else { err.clone() });
                        let digest = v["Digest"].as_str().unwrap_or("").to_string();
                        r.check("skopeo inspect accepts the layout", format!("exit 0, digest {}…", &saved.manifest_digest[..19]), if out.status.success() { format!("exit 0, digest {}…", &digest[..19.min(digest.len())]) } else { err }, out.status.success() && digest == saved.manifest_digest);
                    }
                    None => r.say("host", format!("skopeo inspect oci:image/oci:{TAG}"), "skopeo is not installed (scripts/setup --dev installs it): this check is skipped"),
                }
                r.observe(before, after);
            }
            "load" => {
                let from_oci = wb_image::load_oci(&self.oci_dir, TAG)?;
                let from_docker = wb_image::load_docker_archive(&self.docker_dir, &format!("{IMAGE}:{TAG}"))?;
                r.say("host", format!("load image/oci:{TAG} and image/docker-save {IMAGE}:{TAG} (every layer checked against its diff_id)"), format!("{} layers, {}/{}", from_oci.layers.len(), from_oci.os, from_oci.architecture));
                let dir = cx.workdir.join("loaded");
                let lowers = from_oci.unpack_for_overlay(&dir.join("layers"))?;
                r.say("host", "for each layer, base first: mkdir loaded/layers/NN-<diff_id> && tar -xf LAYER -C it   (.wh. files become whiteouts again)", lowers.iter().rev().map(|l| self.rel(l)).collect::<Vec<_>>().join("\n"));
                if let Some(top) = lowers.first() {
                    r.say("host", format!("tree {}", self.rel(top)), tree_text(top));
                }
                let spec = OverlaySpec::new(lowers.clone(), dir.join("upper"), dir.join("work"), dir.join("merged"));
                spec.create_dirs().context("create the loaded image's overlay directories")?;
                let flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
                let mut child = spawn_child(flags)?;
                let pid = child.pid();
                child.act(&Request::MakeRprivate)?;
                child.act(&Request::SetHostname("container".into()))?;
                r.say("parent", "clone(..., CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWUTS|CLONE_NEWIPC|SIGCHLD); mount --make-rprivate /; hostname container", format!("clone() = {pid}"));
                let before = child_snapshot(&child, Capture::MOUNTS)?;
                child.act(&Request::mount_overlay(&spec))?;
                let after = child_snapshot(&child, Capture::MOUNTS)?;
                let rel_spec = OverlaySpec::new(lowers.iter().map(|l| PathBuf::from(self.rel(l))).collect(), "loaded/upper", "loaded/work", "loaded/merged");
                r.say("child", wb_image::classic_command(&rel_spec), "");
                r.say("host", format!("grep ' loaded/merged ' /proc/{pid}/mountinfo"), mountinfo_lines(pid, &spec.merged));
                let view = PathBuf::from(format!("/proc/{pid}/root")).join(spec.merged.strip_prefix("/").unwrap_or(&spec.merged));
                let loaded_tree = wb_image::tree(&view)?;
                let diffs = tree_differences(&self.container_tree, &loaded_tree, 10);
                r.say("host", "diff <(tree container's merged view) <(tree loaded/merged)", if diffs.is_empty() { format!("(no differences: {} entries each)", loaded_tree.len()) } else { diffs.join("\n") });
                self.loader = Some(child);
                self.loaded_spec = Some(spec);
                // An independent implementation: umoci flattens the layers itself.
                let umoci_diffs = match crate::host::features::which("umoci") {
                    Some(umoci) => {
                        let bundle = dir.join("umoci-bundle");
                        let image = format!("{}:{TAG}", self.oci_dir.display());
                        let out = run_tool(Command::new(&umoci).args(["unpack", "--image", &image]).arg(&bundle))?;
                        let shown = format!("umoci unpack --image image/oci:{TAG} loaded/umoci-bundle && diff <(tree container's view) <(tree loaded/umoci-bundle/rootfs)");
                        if out.status.success() {
                            let flat = wb_image::tree(&bundle.join("rootfs"))?;
                            let d = tree_differences(&self.container_tree, &flat, 10);
                            r.say("host", shown, if d.is_empty() { format!("(no differences: {} entries each)", flat.len()) } else { d.join("\n") });
                            Some(d.len())
                        } else {
                            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
                            r.say("host", shown, err);
                            Some(usize::MAX)
                        }
                    }
                    None => {
                        r.say("host", format!("umoci unpack --image image/oci:{TAG} loaded/umoci-bundle"), "umoci is not installed (scripts/setup --dev installs it): this check is skipped");
                        None
                    }
                };
                let want = same_ids(&self.diff_ids, &self.diff_ids);
                let (oci, docker) = (same_ids(&self.diff_ids, &from_oci.diff_ids), same_ids(&self.diff_ids, &from_docker.diff_ids));
                let ok = oci == want && docker == want;
                r.check("diff_ids read back from OCI and docker-save = saved", format!("{want} (both)"), if ok { format!("{want} (both)") } else { format!("oci: {oci}; docker-save: {docker}") }, ok);
                let top = lowers.first().cloned().unwrap_or_default();
                r.check_eq("top layer dir: etc/hosts", "whiteout (char device 0/0)".to_string(), describe(&top.join("etc/hosts")));
                r.check_eq("top layer dir: trusted.overlay.opaque on var", "y".to_string(), xattr_value(&top.join("var"), wb_image::overlay::OPAQUE_XATTR).unwrap_or_else(|| "(not set)".into()));
                r.check("the loaded image's tree equals the container's merged view", format!("{} entries, identical", self.container_tree.len()), if diffs.is_empty() { format!("{} entries, identical", loaded_tree.len()) } else { format!("{} differences", diffs.len()) }, diffs.is_empty() && !loaded_tree.is_empty());
                if let Some(n) = umoci_diffs {
                    r.check("umoci unpack of the OCI layout equals the container's view", "identical", if n == 0 { "identical".to_string() } else if n == usize::MAX { "umoci failed".to_string() } else { format!("{n} differences") }, n == 0);
                }
                r.observe(before, after);
            }
            "host-unchanged" => {
                crate::kit::check_host_mounts_unchanged(r, &self.host_mounts_at_start)?;
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        let spec = self.loaded_spec.clone().ok_or_else(|| anyhow::anyhow!("no loaded image: the load step did not run"))?;
        let child = self.loader.as_mut().ok_or_else(|| anyhow::anyhow!("no loaded image: the load step did not run"))?;
        // Like `docker run -it workbench/busybox:demo sh`: the image as root, its own /proc.
        child.act(&Request::Chroot(spec.merged.clone()))?;
        child.act(&Request::MountProc(PathBuf::from("/proc")))?;
        crate::kit::sh_in(child, cx.lesson)
    }
}

/// "2 diff_ids, equal" or the first differing pair, shortened.
fn same_ids(want: &[String], got: &[String]) -> String {
    if want == got {
        return format!("{} diff_ids, equal", want.len());
    }
    let short = |s: &str| s.trim_start_matches("sha256:").chars().take(12).collect::<String>();
    match want.iter().zip(got).position(|(a, b)| a != b) {
        Some(i) => format!("layer {i}: {} ≠ {}", short(&want[i]), short(&got[i])),
        None => format!("{} vs {} layers", want.len(), got.len()),
    }
}

/// The bytes of member `name` of the tar file `archive`.
fn tar_member(archive: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let f = std::fs::File::open(archive).with_context(|| format!("open {}", archive.display()))?;
    let mut a = tar::Archive::new(f);
    for e in a.entries().with_context(|| format!("read {}", archive.display()))? {
        let mut e = e.with_context(|| format!("read {}", archive.display()))?;
        if e.path_bytes().as_ref() == name.as_bytes() {
            let mut v = Vec::new();
            e.read_to_end(&mut v).with_context(|| format!("read {name} in {}", archive.display()))?;
            return Ok(v);
        }
    }
    anyhow::bail!("{}: no member {name}", archive.display())
}

/// The contents of the regular file `name` (with or without `./`) in a tar held in memory.
fn tar_member_bytes(tar_bytes: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut a = tar::Archive::new(tar_bytes);
    for e in a.entries().ok()? {
        let mut e = e.ok()?;
        let p = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        if p.trim_start_matches("./") == name && e.header().entry_type().is_file() {
            let mut v = Vec::new();
            e.read_to_end(&mut v).ok()?;
            return Some(v);
        }
    }
    None
}

/// "absent", or what an image store holds: "N image(s), M blob(s)".
fn store_summary(root: &Path) -> String {
    if !root.exists() {
        return "absent".into();
    }
    let images = wb_image::store::Store::existing(root).and_then(|s| s.refs().ok()).map(|r| r.len()).unwrap_or(0);
    let blobs = std::fs::read_dir(root.join("blobs/sha256")).map(|d| d.flatten().filter(|e| !e.file_name().to_string_lossy().starts_with('.')).count()).unwrap_or(0);
    format!("{images} image(s), {blobs} blob(s)")
}

/// The names in a directory, one a line, sorted.
fn names_in(dir: &Path) -> String {
    let mut v: Vec<String> = std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    v.sort();
    if v.is_empty() {
        return "(empty)".into();
    }
    v.join("\n")
}

/// "dir with N entries" / "absent": a short fact for a directory.
fn dir_summary(path: &Path) -> String {
    match std::fs::read_dir(path) {
        Ok(d) => format!("dir with {} entries", d.count()),
        Err(_) => "absent".into(),
    }
}

fn image_config() -> ImageConfig {
    ImageConfig { name: IMAGE.into(), tag: TAG.into(), cmd: vec!["/bin/sh".into()], env: vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()] }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: &'static str, mode: u32, size: u64, link: Option<&str>) -> LayerEntry {
        LayerEntry { path: path.into(), kind, mode, uid: 0, gid: 0, size, mtime: 0, link: link.map(str::to_string) }
    }

    #[test]
    fn tar_lines_look_like_tar_tv() {
        assert_eq!(tar_line(&entry("etc/", "dir", 0o755, 0, None)), "drwxr-xr-x 0/0        0 etc/");
        assert_eq!(tar_line(&entry("etc/.wh.hosts", "file", 0, 0, None)), "---------- 0/0        0 etc/.wh.hosts");
        assert_eq!(tar_line(&entry("bin/sh", "symlink", 0o777, 0, Some("busybox"))), "lrwxrwxrwx 0/0        0 bin/sh -> busybox");
        assert_eq!(tar_line(&entry("b", "hardlink", 0o644, 0, Some("a"))), "-rw-r--r-- 0/0        0 b link to a");
    }

    fn te(path: &str, size: u64) -> TreeEntry {
        TreeEntry { path: path.into(), kind: "file".into(), mode: 0o644, uid: 0, gid: 0, size, link_target: None, opaque: false, device: None }
    }

    #[test]
    fn tree_differences_name_each_path() {
        let a = vec![te("a", 1), te("b", 2), te("c", 3)];
        let b = vec![te("a", 1), te("b", 5), te("d", 4)];
        assert_eq!(
            tree_differences(&a, &b, 10),
            vec!["differs: b (file 644 0:0 2 vs file 644 0:0 5)", "only in the first: c", "only in the second: d"]
        );
        assert!(tree_differences(&a, &a, 10).is_empty());
        assert_eq!(tree_differences(&a, &b, 1).len(), 1);
    }

    /// The import step's claims, on a tiny tar in a temporary store: the load
    /// is refused and creates nothing, the import stores the tar as its one layer.
    #[test]
    fn a_plain_tar_is_refused_by_load_and_taken_by_import() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("rootfs");
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::write(tree.join("bin/hello"), "hi\n").unwrap();
        let plain = dir.path().join("rootfs.tar");
        let f = std::fs::File::create(&plain).unwrap();
        rootfs_builder::pack::pack_tar(&tree, f).unwrap();
        let store = dir.path().join("store");
        assert_eq!(store_summary(&store), "absent");
        let err = crate::image::cmds::load_into(&store, &plain, None).unwrap_err().to_string();
        assert!(err.contains("not an image") && err.contains("manifest.json") && err.contains("oci-layout"), "{err}");
        assert_eq!(store_summary(&store), "absent");
        let r = wb_image::store::Reference::parse(BASE_REF).unwrap();
        let (_, layers) = crate::image::cmds::import_into(&store, &plain, &r).unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0].digest, wb_image::image::sha256_file(&plain).unwrap());
        assert_eq!(store_summary(&store), "1 image(s), 3 blob(s)");
    }

    #[test]
    fn diff_id_comparison_is_short() {
        let a = vec!["sha256:aaaaaaaaaaaaaaaa".to_string(), "sha256:bbbbbbbbbbbbbbbb".to_string()];
        let b = vec!["sha256:aaaaaaaaaaaaaaaa".to_string(), "sha256:cccccccccccccccc".to_string()];
        assert_eq!(same_ids(&a, &a), "2 diff_ids, equal");
        assert_eq!(same_ids(&a, &b), "layer 1: bbbbbbbbbbbb ≠ cccccccccccc");
        assert_eq!(same_ids(&a, &a[..1]), "2 vs 1 layers");
    }
}
