//! chroot-busybox: a rootfs from a dynamically linked busybox, the ENOENT
//! trap, the libraries an ELF binary needs, and why chroot is no container.
//!
//! `chroot(2)` changes one attribute of a process — its root directory — and
//! nothing else. A dynamically linked program additionally needs its loader
//! (the ELF `PT_INTERP`) and libraries *inside* that root, or `execve` fails
//! with ENOENT.

use std::path::PathBuf;

use anyhow::Context;
use nix::sched::CloneFlags;
use rootfs_builder::build::{build_rootfs, copy_libraries, RootfsSpec};
use rootfs_builder::libs::{resolve, LibFile, LibSearch};

use crate::kit::{child_snapshot, file_facts, host_snapshot, spawn_child};
use crate::host::Host;
use crate::kernel::child::{NsChild, Request};
use crate::lesson::{Cx, Lesson, LessonDef, Spot, StepReport};
use crate::observe::capture::root_dir;
use crate::observe::{Capture, Snapshot};

pub const DEF: LessonDef = LessonDef::of::<ChrootBusybox>(preflight).shell("inside the lesson").spots(&[("build-rootfs", Spot::Present("dir", 1))]);

fn preflight(host: &Host, _opts: &crate::lesson::LessonOptions) -> anyhow::Result<()> {
    host.require_root("chroot(2) and mount(2) need CAP_SYS_ADMIN and CAP_SYS_CHROOT")?;
    host.require_dynamic_busybox()?;
    Ok(())
}

#[derive(Default)]
struct ChrootBusybox {
    rootfs: PathBuf,
    busybox: PathBuf,
    interpreter: String,
    libs: Vec<LibFile>,
    child: Option<NsChild>,
}

impl ChrootBusybox {
    /// A new child chrooted into the rootfs, and its root directory before and after.
    fn chrooted_child(&self) -> anyhow::Result<(NsChild, Snapshot, Snapshot)> {
        let mut child = spawn_child(CloneFlags::empty())?;
        let before = Snapshot { label: format!("child (pid {}) before chroot", child.pid()), facts: root_fact(child.pid()), ..Default::default() };
        child.act(&Request::Chroot(self.rootfs.clone()))?;
        let after = Snapshot { label: "after chroot".into(), facts: root_fact(child.pid()), ..Default::default() };
        Ok((child, before, after))
    }

    fn watched_files(&self) -> Vec<String> {
        let mut v = vec!["bin/busybox".to_string(), "bin/sh".to_string()];
        if !self.interpreter.is_empty() {
            v.push(self.interpreter.clone());
        }
        v
    }

    fn facts(&self, label: &str) -> Snapshot {
        Snapshot { label: label.into(), facts: file_facts(&self.rootfs, &self.watched_files()), ..Default::default() }
    }
}

impl Lesson for ChrootBusybox {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        match step {
            "build-rootfs" => {
                self.busybox = cx.host.require_dynamic_busybox()?.to_path_buf();
                self.rootfs = cx.workdir.join("rootfs");
                let needs = rootfs_builder::elf::read_needs(&self.busybox)?;
                self.interpreter = needs.interpreter.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                let before = self.facts("empty directory");
                let spec = RootfsSpec { busybox: self.busybox.clone(), copy_libraries: false, hostname: "workbench".into() };
                let report = build_rootfs(&spec, &self.rootfs).with_context(|| format!("build rootfs in {}", self.rootfs.display()))?;
                r.say("host", format!("ls {}", self.rootfs.display()), list_dir(&self.rootfs));
                r.say(
                    "host",
                    "file rootfs/bin/busybox",
                    format!("ELF, dynamically linked, interpreter {}, needs {}", self.interpreter, needs.needed.join(", ")),
                );
                r.say("host", "busybox --list | wc -l", report.applets.len().to_string());
                r.observe(before, self.facts("rootfs built"));
                let sh = std::fs::read_link(self.rootfs.join("bin/sh")).map(|p| p.display().to_string()).unwrap_or_default();
                r.check("rootfs/bin/sh is a busybox applet link", "-> ...busybox", format!("-> {sh}"), sh.ends_with("busybox"));
                r.check_eq("busybox is dynamically linked", true, report.busybox_dynamic);
                let loader_in_rootfs = self.rootfs.join(self.interpreter.trim_start_matches('/')).exists();
                r.check("its loader is inside the rootfs", "no", if loader_in_rootfs { "yes" } else { "no" }, !self.interpreter.is_empty() && !loader_in_rootfs);
            }
            "chroot-fails" => {
                let (mut child, before, after) = self.chrooted_child()?;
                let out = child.run(&["/bin/sh", "-c", "echo hello"])?;
                let shown = match &out.spawn_error {
                    Some((e, _)) => format!("chroot: failed to run command '/bin/sh': {e}"),
                    None => format!("(it ran: exit {:?})", out.code),
                };
                r.say("chroot", "/bin/sh", shown);
                r.observe(before, after);
                let errno = out.spawn_error.as_ref().map(|(_, n)| *n).unwrap_or(0);
                r.check("execve(\"/bin/sh\") error", "ENOENT (No such file or directory)", nix::errno::Errno::from_raw(errno).to_string(), errno == libc::ENOENT);
                let sh_exists = std::fs::symlink_metadata(self.rootfs.join("bin/sh")).is_ok() && self.rootfs.join("bin/busybox").is_file();
                r.check_eq("/bin/sh exists inside the rootfs", true, sh_exists);
                let loader = self.rootfs.join(self.interpreter.trim_start_matches('/'));
                r.check(format!("loader {} inside the rootfs", self.interpreter), "absent", if loader.exists() { "present" } else { "absent" }, !loader.exists());
                child.kill();
            }
            "find-libraries" => {
                let search = LibSearch::host();
                self.libs = resolve(&self.busybox, &search)?;
                let listing: Vec<String> = self.libs.iter().map(|l| format!("{} => {}", l.path_in_rootfs.display(), l.host_source.display())).collect();
                r.say("host", "ldd rootfs/bin/busybox   (read from the ELF headers, nothing executed)", listing.join("\n"));
                let has_loader = self.libs.iter().any(|l| l.path_in_rootfs.display().to_string() == self.interpreter);
                r.check("the loader (PT_INTERP) is resolved", self.interpreter.clone(), if has_loader { self.interpreter.clone() } else { "not found".into() }, has_loader);
                let has_libc = self.libs.iter().any(|l| l.name == "libc.so.6");
                r.check_eq("libc.so.6 (DT_NEEDED) is resolved", true, has_libc);
                r.check_eq("every resolved library exists on the host", true, self.libs.iter().all(|l| l.host_source.is_file()));
            }
            "copy-libraries" => {
                let files: Vec<String> = self.libs.iter().map(|l| l.path_in_rootfs.display().to_string()).collect();
                let before = Snapshot { label: "rootfs without libraries".into(), facts: file_facts(&self.rootfs, &files), ..Default::default() };
                let copied = copy_libraries(&self.busybox, &self.rootfs, &LibSearch::host())?;
                for l in &copied {
                    r.say("host", format!("cp {} rootfs{}", l.host_source.display(), l.path_in_rootfs.display()), "");
                }
                let after = Snapshot { label: "rootfs with libraries".into(), facts: file_facts(&self.rootfs, &files), ..Default::default() };
                let missing: Vec<&String> = files.iter().filter(|f| !self.rootfs.join(f.trim_start_matches('/')).is_file()).collect();
                r.observe(before, after);
                r.check("needed files present in the rootfs", format!("{} of {}", files.len(), files.len()), format!("{} of {}", files.len() - missing.len(), files.len()), missing.is_empty() && !files.is_empty());
            }
            "chroot-works" => {
                let (mut child, before, after) = self.chrooted_child()?;
                let out = child.run(&["/bin/sh", "-c", "echo hello from the chroot; ls /"])?;
                r.ran("chroot", "/bin/sh -c 'echo hello from the chroot; ls -C /'", &out);
                r.observe(before, after);
                r.check("the shell runs", "exit 0", out.describe(), out.success());
                r.check_eq("it printed its greeting", true, out.stdout.contains("hello from the chroot"));
                let root = root_dir(child.pid());
                let want = std::fs::canonicalize(&self.rootfs)?.display().to_string();
                r.check("readlink /proc/PID/root", want.clone(), root.clone(), root == want);
                child.kill();
            }
            "not-isolation" => {
                let host = host_snapshot(Capture::NS)?;
                let mut child = spawn_child(CloneFlags::CLONE_NEWNS)?;
                child.act(&Request::MakeRprivate)?;
                child.act(&Request::MountProc(self.rootfs.join("proc")))?;
                child.act(&Request::Chroot(self.rootfs.clone()))?;
                let after = child_snapshot(&child, Capture::NS)?;
                let host_name = nix::unistd::gethostname()?.to_string_lossy().into_owned();
                let hn = child.run(&["/bin/hostname"])?;
                r.ran("chroot", "hostname", &hn);
                let ps = child.run(&["/bin/ps"])?;
                let pids = crate::kit::ps_pids(&ps.stdout);
                let shown: Vec<&str> = ps.stdout.lines().take(8).collect();
                r.say("chroot", "ps | head -8", format!("{}\n... ({} processes in all)", shown.join("\n"), pids.len()));
                r.observe(host, after.clone());
                r.check_eq("hostname inside equals the host's", host_name, hn.stdout.trim().to_string());
                let me = crate::kernel::proc::self_pid();
                r.check("ps inside lists workbench's host PID", format!("pid {me} listed"), if pids.contains(&me) { format!("pid {me} listed") } else { "not listed".into() }, pids.contains(&me));
                let host_ns = &r.before.as_ref().expect("observed").namespaces;
                let same: Vec<&str> = ["pid", "uts", "ipc", "net", "user", "cgroup"].into_iter().filter(|k| host_ns.get(*k) == after.namespaces.get(*k)).collect();
                r.check("namespaces shared with the host", "pid uts ipc net user cgroup", same.join(" "), same.len() == 6);
                self.child = Some(child);
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        crate::kit::sh_in(self.child.as_mut().ok_or_else(|| anyhow::anyhow!("the lesson did not reach its chroot"))?, cx.lesson)
    }
}

fn root_fact(pid: i32) -> std::collections::BTreeMap<String, String> {
    [("root directory (readlink /proc/PID/root)".to_string(), root_dir(pid))].into_iter().collect()
}

fn list_dir(p: &std::path::Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(p).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    names.sort();
    names.join("  ")
}
