//! mount-proc: a private mount namespace, a chroot and a fresh procfs.
//!
//! procfs shows the PID namespace of the process that mounted it. Mounting a
//! new one inside a new PID + mount namespace makes `ps` truthful inside, and
//! because the mount namespace is private, the host's mount table never sees
//! it. This is what `unshare --pid --fork --mount-proc` does.

use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::sched::CloneFlags;
use rootfs_builder::build::{build_rootfs, RootfsSpec};

use crate::kit::{child_snapshot, host_snapshot, spawn_child};
use crate::host::Host;
use crate::kernel::child::{NsChild, Request};
use crate::lesson::{Cx, Lesson, LessonDef, Spot, StepReport};
use crate::observe::capture::root_dir;
use crate::observe::{Capture, MountEntry, Snapshot};

pub const DEF: LessonDef = LessonDef::of::<MountProc>(preflight).shell("inside the lesson").spots(&[("chroot", Spot::Procs(1))]);

fn preflight(host: &Host, _opts: &crate::lesson::LessonOptions) -> anyhow::Result<()> {
    host.require_root("clone(CLONE_NEWPID|CLONE_NEWNS) and mount(2) need CAP_SYS_ADMIN")?;
    host.require_static_busybox()?;
    Ok(())
}

#[derive(Default)]
struct MountProc {
    child: Option<NsChild>,
    rootfs: PathBuf,
    host_mounts_at_start: Vec<MountEntry>,
}

impl MountProc {
    fn child(&mut self) -> anyhow::Result<&mut NsChild> {
        self.child.as_mut().ok_or_else(|| anyhow::anyhow!("no child: the clone step did not run"))
    }
}

/// Mounts of the host at or below `dir`.
fn host_mounts_under(dir: &Path) -> anyhow::Result<Vec<MountEntry>> {
    let dir = dir.display().to_string();
    Ok(host_snapshot(Capture::MOUNTS)?.mounts.into_iter().filter(|m| m.mount_point.starts_with(&dir)).collect())
}

impl Lesson for MountProc {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        match step {
            "clone" => {
                let before = host_snapshot(Capture::NS_MOUNTS)?;
                self.host_mounts_at_start = before.mounts.clone();
                let flags = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
                let child = spawn_child(flags)?;
                r.say("parent", "clone(..., CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|SIGCHLD)", format!("clone() = {}", child.pid()));
                let after = child_snapshot(&child, Capture::NS_MOUNTS)?;
                crate::kit::check_namespaces(r, &before, &after, &["pid", "mnt", "uts", "ipc"], &["net", "user"]);
                r.check_eq("mounts copied into the child's namespace", before.mounts.len(), after.mounts.len());
                r.observe(before, after);
                self.child = Some(child);
            }
            "make-private" => {
                let child = self.child()?;
                let before = child_snapshot(child, Capture::MOUNTS)?;
                child.act(&Request::MakeRprivate)?;
                let after = child_snapshot(child, Capture::MOUNTS)?;
                let shared_before = before.mounts.iter().filter(|m| m.propagation.contains("shared")).count();
                let shared = after.mounts.iter().filter(|m| m.propagation.contains("shared")).count();
                r.say("child", "findmnt -o TARGET,PROPAGATION / (before → after)", format!("{} shared mounts → {shared} shared mounts", shared_before));
                r.check_eq("shared mounts left in the child's namespace", 0, shared);
                r.observe(before, after);
            }
            "chroot" => {
                let busybox = cx.host.require_static_busybox()?.to_path_buf();
                self.rootfs = cx.workdir.join("rootfs");
                let spec = RootfsSpec { busybox, copy_libraries: false, hostname: "container".into() };
                build_rootfs(&spec, &self.rootfs).with_context(|| format!("build rootfs in {}", self.rootfs.display()))?;
                r.say("host", format!("rootfs-builder build --busybox /bin/busybox {}", self.rootfs.display()), "static busybox + applet links, empty /proc");
                let rootfs = self.rootfs.clone();
                let child = self.child()?;
                let fact = |pid| -> std::collections::BTreeMap<String, String> { [("root directory (readlink /proc/PID/root)".to_string(), root_dir(pid))].into() };
                let before = Snapshot { label: "before chroot".into(), facts: fact(child.pid()), ..Default::default() };
                child.act(&Request::Chroot(rootfs.clone()))?;
                let after = Snapshot { label: "after chroot".into(), facts: fact(child.pid()), ..Default::default() };
                let ls = child.run(&["/bin/ls", "-A", "/proc"])?;
                r.ran("chroot", "ls -A /proc", &ls);
                let want = std::fs::canonicalize(&rootfs)?.display().to_string();
                let got = after.facts.values().next().cloned().unwrap_or_default();
                r.check("readlink /proc/PID/root", want.clone(), got.clone(), want == got);
                r.check("/proc inside the rootfs", "empty", if ls.stdout.trim().is_empty() && ls.success() { "empty".to_string() } else { format!("{:?}", ls.stdout.trim()) }, ls.stdout.trim().is_empty() && ls.success());
                r.observe(before, after);
            }
            "mount-proc" => {
                let rootfs = self.rootfs.clone();
                let child = self.child()?;
                let before = child_snapshot(child, Capture::MOUNTS)?;
                child.act(&Request::MountProc(PathBuf::from("/proc")))?;
                let after = child_snapshot(child, Capture::MOUNTS)?;
                let d = crate::observe::diff(&before, &after);
                let added: Vec<String> = d.iter().flat_map(|s| s.changed()).filter(|row| row.change == crate::observe::Change::Added).map(|row| format!("{} {}", row.key, row.after.clone().unwrap_or_default())).collect();
                r.say("child", "mount -t proc proc /proc", "");
                r.say("host", format!("grep proc /proc/{}/mountinfo   (new rows)", child.pid()), added.join("\n"));
                let proc_added = added.iter().any(|a| a.starts_with("/proc proc "));
                r.check("new proc mount at /proc in the child", "added", if proc_added { "added" } else { "missing" }, proc_added);
                let leaked = host_mounts_under(&rootfs)?;
                r.check_eq("mounts under the rootfs in the host's table", 0, leaked.len());
                r.observe(before, after);
            }
            "ps-inside" => {
                let child = self.child()?;
                let ps = child.run(&["/bin/ps"])?;
                r.ran("chroot", "ps", &ps);
                let pids = crate::kit::ps_pids(&ps.stdout);
                let me = crate::kernel::proc::self_pid();
                r.check_eq("PID 1 (the child) is listed", true, pids.contains(&1));
                r.check("processes visible", "2 (the child and ps)", pids.len().to_string(), pids.len() == 2);
                r.check("workbench's host PID is visible", "no", if pids.contains(&me) { "yes" } else { "no" }, !pids.contains(&me));
            }
            "host-unchanged" => {
                crate::kit::check_host_mounts_unchanged(r, &self.host_mounts_at_start)?;
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        crate::kit::sh_in(self.child()?, cx.lesson)
    }
}
