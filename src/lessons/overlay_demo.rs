//! overlay-demo: lower, upper, work and merged, exactly as the tutorial lays them out.
//!
//! overlayfs shows one directory (`merged`) made of read-only *lower* dirs and
//! one writable *upper* dir: a name is looked up in upper first, then in each
//! lower from top to bottom. Writes copy a lower file up into upper first;
//! deletions leave a *whiteout* (a 0/0 character device) in upper; a
//! directory deleted and created again is marked *opaque*
//! (`trusted.overlay.opaque=y`) so nothing below shows through. All mounts
//! happen in a child's private mount namespace: the host never sees them.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::sched::CloneFlags;
use wb_image::{OverlaySpec, TreeEntry};

use crate::kit::overlay::{describe, mountinfo_lines, require_overlayfs, tree_text, xattr_value};
use crate::kit::{child_snapshot, host_snapshot, spawn_child};
use crate::host::Host;
use crate::kernel::child::{NsChild, Request};
use crate::lesson::{Cx, Lesson, LessonDef, LessonOptions, Spot, StepReport};
use crate::observe::{Capture, MountEntry, Snapshot};

pub const DEF: LessonDef = LessonDef::of::<OverlayDemo>(preflight).shell("inside the lesson").spots(&[("mount", Spot::Procs(1))]);

fn preflight(host: &Host, _opts: &LessonOptions) -> anyhow::Result<()> {
    host.require_root("mount(2) of an overlay, mknod of whiteouts and trusted.* xattrs need CAP_SYS_ADMIN")?;
    require_overlayfs()?;
    Ok(())
}

/// `ls -ld`-like line for one path: "c--------- 0:0 0, 0 upper/to_delete".
fn ls_line(path: &Path, shown: &str) -> String {
    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            let kind = if wb_image::is_whiteout(&m) { "whiteout" } else if m.is_dir() { "dir" } else if m.file_type().is_char_device() { "char" } else { "file" };
            let size = if m.file_type().is_char_device() { format!("{}, {}", libc::major(m.rdev()), libc::minor(m.rdev())) } else { m.len().to_string() };
            format!("{} {}:{} {size} {shown}", wb_image::overlay::mode_string(kind, m.mode() & 0o7777), m.uid(), m.gid())
        }
        Err(e) => format!("ls: {shown}: {e}"),
    }
}

/// Names directly in a directory, sorted ("(empty)" when there are none).
fn names(dir: &Path) -> String {
    let v = crate::host::snapshot::sorted_dir(dir);
    if v.is_empty() {
        "(empty)".into()
    } else {
        v.join(" ")
    }
}

/// Mount rows of a snapshot at `point`.
fn mounts_at<'a>(mounts: &'a [MountEntry], point: &Path) -> Vec<&'a MountEntry> {
    let p = point.display().to_string();
    mounts.iter().filter(|m| m.mount_point == p).collect()
}

/// The overlay layers (`lowerdir=…,upperdir=…,workdir=…`) of the mount rows at `point`.
fn layers_at(mounts: &[MountEntry], point: &Path) -> String {
    mounts_at(mounts, point).iter().map(|m| m.layers.as_str()).collect::<Vec<_>>().join(",")
}

/// The value of `key=` in a comma-separated option list.
fn option_value(opts: &str, key: &str) -> Option<String> {
    opts.split(',').find_map(|o| o.strip_prefix(key).and_then(|r| r.strip_prefix('=')).map(str::to_string))
}

#[derive(Default)]
struct OverlayDemo {
    /// The tutorial's directory: lower, upper, work, merged (and stack/).
    base: PathBuf,
    spec: Option<OverlaySpec>,
    stack: Option<OverlaySpec>,
    child: Option<NsChild>,
    host_mounts_at_start: Vec<MountEntry>,
    lower_at_start: Vec<TreeEntry>,
}

const FILES: &[&str] = &["in_lower", "in_upper", "in_both", "to_delete", "dir"];

impl OverlayDemo {
    fn child(&mut self) -> anyhow::Result<&mut NsChild> {
        self.child.as_mut().ok_or_else(|| anyhow::anyhow!("no child: the private-ns step did not run"))
    }

    fn spec(&self) -> anyhow::Result<&OverlaySpec> {
        self.spec.as_ref().ok_or_else(|| anyhow::anyhow!("no overlay layout: the layout step did not run"))
    }

    /// `path` as the child sees it (through its mount namespace), or as the host does before the child exists.
    fn seen(&self, path: &Path) -> PathBuf {
        match &self.child {
            Some(c) => PathBuf::from(format!("/proc/{}/root", c.pid())).join(path.strip_prefix("/").unwrap_or(path)),
            None => path.to_path_buf(),
        }
    }

    /// Path relative to the tutorial directory, for display.
    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.base).map(|p| p.display().to_string()).unwrap_or_else(|_| path.display().to_string())
    }

    /// Facts: `name` in lower, upper and merged (merged as the child sees it).
    fn facts(&self, label: &str, names: &[&str]) -> anyhow::Result<Snapshot> {
        let spec = self.spec()?;
        let mut facts = BTreeMap::new();
        for n in names {
            facts.insert(format!("lower/{n}"), describe(&spec.lowers[0].join(n)));
            facts.insert(format!("upper/{n}"), describe(&spec.upper.join(n)));
            facts.insert(format!("merged/{n}"), describe(&self.seen(&spec.merged.join(n))));
        }
        Ok(Snapshot { label: label.into(), facts, ..Default::default() })
    }

    /// "lowerdir=A:B upperdir=U workdir=W" from overlay super options, paths relative to the tutorial dir.
    fn layer_options(&self, opts: &str) -> String {
        ["lowerdir", "upperdir", "workdir"]
            .iter()
            .map(|k| {
                let v = option_value(opts, k).unwrap_or_default();
                let rel: Vec<String> = v.split(':').map(|p| self.rel(Path::new(p))).collect();
                format!("{k}={}", rel.join(":"))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Mount `spec` in the child: the child's pid and its mount table before and after.
    fn mount_in_child(&mut self, spec: &OverlaySpec) -> anyhow::Result<(i32, Snapshot, Snapshot)> {
        let child = self.child()?;
        let before = child_snapshot(child, Capture::MOUNTS)?;
        child.act(&Request::mount_overlay(spec))?;
        let after = child_snapshot(child, Capture::MOUNTS)?;
        Ok((child.pid(), before, after))
    }

    fn label(&self) -> String {
        match &self.child {
            Some(c) => format!("child (pid {}) view", c.pid()),
            None => "host view".into(),
        }
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}

impl Lesson for OverlayDemo {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        match step {
            "layout" => {
                self.base = cx.workdir.join("overlay");
                let spec = OverlaySpec::under(&self.base, 1);
                self.spec = Some(spec.clone());
                let before = self.facts("before", FILES)?;
                spec.create_dirs().context("create the overlay directories")?;
                let lower = &spec.lowers[0];
                write(&lower.join("in_lower"), "from lower\n")?;
                write(&lower.join("in_both"), "from lower\n")?;
                write(&lower.join("to_delete"), "from lower, soon deleted\n")?;
                std::fs::create_dir(lower.join("dir")).with_context(|| format!("mkdir {}", lower.join("dir").display()))?;
                write(&lower.join("dir/a"), "a from lower\n")?;
                write(&lower.join("dir/b"), "b from lower\n")?;
                write(&spec.upper.join("in_upper"), "from upper\n")?;
                write(&spec.upper.join("in_both"), "from upper\n")?;
                r.say("host", format!("cd {}", self.base.display()), "");
                for cmd in [
                    "mkdir lower upper work merged",
                    "echo 'from lower' > lower/in_lower; echo 'from lower' > lower/in_both",
                    "echo 'from lower, soon deleted' > lower/to_delete",
                    "mkdir lower/dir; echo 'a from lower' > lower/dir/a; echo 'b from lower' > lower/dir/b",
                    "echo 'from upper' > upper/in_upper; echo 'from upper' > upper/in_both",
                ] {
                    r.say("host", cmd, "");
                }
                for (name, dir) in [("lower", lower), ("upper", &spec.upper), ("work", &spec.work), ("merged", &spec.merged)] {
                    r.say("host", format!("tree {name}"), tree_text(dir));
                }
                self.lower_at_start = wb_image::tree(lower)?;
                let after = self.facts("after", FILES)?;
                r.check_eq("names in lower", "dir in_both in_lower to_delete".to_string(), names(lower));
                r.check_eq("names in upper", "in_both in_upper".to_string(), names(&spec.upper));
                r.check_eq("names in merged (nothing mounted yet)", "(empty)".to_string(), names(&spec.merged));
                r.observe(before, after);
            }
            "private-ns" => {
                let before = host_snapshot(Capture::NS_MOUNTS)?;
                self.host_mounts_at_start = before.mounts.clone();
                let mut child = spawn_child(CloneFlags::CLONE_NEWNS)?;
                r.say("parent", "clone(..., CLONE_NEWNS|SIGCHLD)", format!("clone() = {}", child.pid()));
                child.act(&Request::MakeRprivate)?;
                r.say("child", "mount --make-rprivate /", "");
                let after = child_snapshot(&child, Capture::NS_MOUNTS)?;
                crate::kit::check_namespaces(r, &before, &after, &["mnt"], &["pid", "net", "uts", "ipc", "user"]);
                let shared = after.mounts.iter().filter(|m| m.propagation.contains("shared")).count();
                r.check_eq("shared mounts in the child's namespace", 0, shared);
                r.observe(before, after);
                self.child = Some(child);
            }
            "mount" => {
                let spec = self.spec()?.clone();
                let (pid, before, after) = self.mount_in_child(&spec)?;
                r.say("child", wb_image::classic_command(&OverlaySpec::under(Path::new(""), 1)), "");
                r.say("host", format!("grep ' {} ' /proc/{pid}/mountinfo   (before)", self.rel(&spec.merged)), "(no line)");
                r.say("host", format!("grep ' {} ' /proc/{pid}/mountinfo   (after)", self.rel(&spec.merged)), mountinfo_lines(pid, &spec.merged));
                let new = mounts_at(&after.mounts, &spec.merged);
                let is_overlay = new.len() == 1 && new[0].fs_type == "overlay";
                r.check("overlay mounted on merged in the child", "1 overlay row", if is_overlay { "1 overlay row".to_string() } else { format!("{} rows: {}", new.len(), new.iter().map(|m| m.fs_type.as_str()).collect::<Vec<_>>().join(",")) }, is_overlay);
                let got = self.layer_options(&layers_at(&after.mounts, &spec.merged));
                r.check_eq("layers named in the mount options", "lowerdir=lower upperdir=upper workdir=work".to_string(), got);
                let host = host_snapshot(Capture::MOUNTS)?;
                r.check_eq("overlay rows on merged in the host's mountinfo", 0, mounts_at(&host.mounts, &spec.merged).len());
                r.observe(before, after);
            }
            "merged-view" => {
                let spec = self.spec()?.clone();
                let before = Snapshot { label: "host view of merged/".into(), facts: FILES.iter().map(|n| (format!("merged/{n}"), describe(&spec.merged.join(n)))).collect(), ..Default::default() };
                let seen = self.seen(&spec.merged);
                let after = Snapshot { label: format!("{} of merged/", self.label()), facts: FILES.iter().map(|n| (format!("merged/{n}"), describe(&seen.join(n)))).collect(), ..Default::default() };
                r.say("child", "tree merged", tree_text(&seen));
                let both = std::fs::read_to_string(seen.join("in_both")).unwrap_or_default();
                r.say("child", "cat merged/in_both", both.trim_end());
                r.check_eq("names in merged (the union)", "dir in_both in_lower in_upper to_delete".to_string(), names(&seen));
                r.check_eq("merged/in_both comes from", "upper".to_string(), both.trim_end().trim_start_matches("from ").to_string());
                r.check_eq("merged/ as the host sees it (the mount is not in its namespace)", "(empty)".to_string(), names(&spec.merged));
                r.observe(before, after);
            }
            "copy-up" => {
                let spec = self.spec()?.clone();
                let before = self.facts("before", &["in_lower"])?;
                let target = spec.merged.join("in_lower");
                self.child()?.act(&Request::WriteFile { path: target, contents: "written through merged\n".into(), append: true })?;
                r.say("child", "echo 'written through merged' >> merged/in_lower", "");
                r.say("host", "tree upper", tree_text(&spec.upper));
                let after = self.facts("after", &["in_lower"])?;
                let upper = std::fs::read_to_string(spec.upper.join("in_lower")).unwrap_or_default();
                let lower = std::fs::read_to_string(spec.lowers[0].join("in_lower")).unwrap_or_default();
                let merged = std::fs::read_to_string(self.seen(&spec.merged.join("in_lower"))).unwrap_or_default();
                r.check("upper/in_lower (copied up, then written)", "from lower + written through merged", format!("{upper:?}"), upper == "from lower\nwritten through merged\n");
                r.check("lower/in_lower", "unchanged: \"from lower\"", format!("{lower:?}"), lower == "from lower\n");
                r.check("merged/in_lower shows the upper copy", "same as upper", if merged == upper { "same as upper".to_string() } else { format!("{merged:?}") }, merged == upper);
                r.observe(before, after);
            }
            "whiteout" => {
                let spec = self.spec()?.clone();
                let before = self.facts("before", &["to_delete"])?;
                self.child()?.act(&Request::Remove { path: spec.merged.join("to_delete"), recursive: false })?;
                r.say("child", "rm merged/to_delete", "");
                let up = spec.upper.join("to_delete");
                r.say("host", "ls -l upper/to_delete", ls_line(&up, "upper/to_delete"));
                r.say("host", "tree upper", tree_text(&spec.upper));
                let after = self.facts("after", &["to_delete"])?;
                let m = std::fs::symlink_metadata(&up).ok();
                let kind = match &m {
                    Some(m) if m.file_type().is_char_device() => format!("char device {}/{}", libc::major(m.rdev()), libc::minor(m.rdev())),
                    Some(_) => "not a char device".into(),
                    None => "absent".into(),
                };
                r.check_eq("upper/to_delete", "char device 0/0".to_string(), kind);
                r.check_eq("lower/to_delete (lower layers are never written)", "present".to_string(), if spec.lowers[0].join("to_delete").is_file() { "present" } else { "missing" }.to_string());
                r.check_eq("merged/to_delete", "absent".to_string(), describe(&self.seen(&spec.merged.join("to_delete"))));
                r.observe(before, after);
            }
            "opaque" => {
                let spec = self.spec()?.clone();
                let before = self.facts("before", &["dir"])?;
                let dir = spec.merged.join("dir");
                let child = self.child()?;
                child.act(&Request::Remove { path: dir.clone(), recursive: true })?;
                child.act(&Request::Mkdir { path: dir.clone(), mode: 0o755 })?;
                child.act(&Request::WriteFile { path: dir.join("new"), contents: "new in the recreated dir\n".into(), append: false })?;
                r.say("child", "rm -r merged/dir && mkdir merged/dir && echo 'new in the recreated dir' > merged/dir/new", "");
                let up = spec.upper.join("dir");
                let value = xattr_value(&up, wb_image::overlay::OPAQUE_XATTR);
                r.say("host", "getfattr -n trusted.overlay.opaque upper/dir", match &value {
                    Some(v) => format!("# file: upper/dir\ntrusted.overlay.opaque=\"{v}\""),
                    None => "upper/dir: trusted.overlay.opaque: No such attribute".into(),
                });
                r.say("host", "tree upper", tree_text(&spec.upper));
                let after = self.facts("after", &["dir"])?;
                r.check_eq("trusted.overlay.opaque on upper/dir", "y".to_string(), value.unwrap_or_else(|| "(not set)".into()));
                r.check_eq("names in merged/dir (lower's a and b hidden)", "new".to_string(), names(&self.seen(&dir)));
                r.check_eq("names in lower/dir (untouched)", "a b".to_string(), names(&spec.lowers[0].join("dir")));
                r.observe(before, after);
            }
            "stack" => {
                let stack = OverlaySpec::under(&self.base.join("stack"), 3);
                stack.create_dirs().context("create the stacked layers")?;
                for (i, l) in stack.lowers.iter().enumerate() {
                    let n = i + 1;
                    write(&l.join("version"), &format!("from lower{n}\n"))?;
                    write(&l.join(format!("only_in_lower{n}")), &format!("lower{n}\n"))?;
                }
                self.stack = Some(stack.clone());
                r.say("host", "mkdir -p stack/lower1 stack/lower2 stack/lower3 stack/upper stack/work stack/merged", "");
                r.say("host", "for n in 1 2 3; do echo \"from lower$n\" > stack/lower$n/version; echo lower$n > stack/lower$n/only_in_lower$n; done", "");
                for (i, l) in stack.lowers.iter().enumerate() {
                    r.say("host", format!("tree stack/lower{}", i + 1), tree_text(l));
                }
                let (pid, before, after) = self.mount_in_child(&stack)?;
                r.say("child", wb_image::classic_command(&OverlaySpec::under(Path::new("stack"), 3)), "");
                r.say("host", format!("grep ' {} ' /proc/{pid}/mountinfo", self.rel(&stack.merged)), mountinfo_lines(pid, &stack.merged));
                let seen = self.seen(&stack.merged);
                r.say("child", "tree stack/merged", tree_text(&seen));
                let version = std::fs::read_to_string(seen.join("version")).unwrap_or_default();
                r.say("child", "cat stack/merged/version", version.trim_end());
                r.check_eq("stack/merged/version (lowerdir= lists the top-most first)", "from lower1".to_string(), version.trim_end().to_string());
                r.check_eq("names in stack/merged", "only_in_lower1 only_in_lower2 only_in_lower3 version".to_string(), names(&seen));
                let got = self.layer_options(&layers_at(&after.mounts, &stack.merged));
                r.check_eq("layers named in the mount options (top-most first)", "lowerdir=stack/lower1:stack/lower2:stack/lower3 upperdir=stack/upper workdir=stack/work".to_string(), got);
                r.observe(before, after);
            }
            "unmount" => {
                let spec = self.spec()?.clone();
                let stack = self.stack.clone().ok_or_else(|| anyhow::anyhow!("no stack: the stack step did not run"))?;
                let child = self.child()?;
                let before = child_snapshot(child, Capture::MOUNTS)?;
                child.act(&Request::Unmount(stack.merged.clone()))?;
                child.act(&Request::Unmount(spec.merged.clone()))?;
                let after = child_snapshot(child, Capture::MOUNTS)?;
                r.say("child", "umount stack/merged merged", "");
                for (name, dir) in [("lower", &spec.lowers[0]), ("upper", &spec.upper)] {
                    r.say("host", format!("tree {name}"), tree_text(dir));
                }
                r.check_eq("overlay rows left in the child's mountinfo", 0, mounts_at(&after.mounts, &spec.merged).len() + mounts_at(&after.mounts, &stack.merged).len());
                r.check_eq("names in merged after umount", "(empty)".to_string(), names(&self.seen(&spec.merged)));
                let upper = describe(&spec.upper.join("to_delete"));
                r.check_eq("the whiteout stays in upper", "whiteout (char device 0/0)".to_string(), upper);
                let opaque = xattr_value(&spec.upper.join("dir"), wb_image::overlay::OPAQUE_XATTR).is_some();
                r.check_eq("the opaque dir stays in upper", true, opaque);
                let lower_now = wb_image::tree(&spec.lowers[0])?;
                r.check("lower's tree equals the one at the start", "identical", if lower_now == self.lower_at_start { "identical" } else { "differs" }, lower_now == self.lower_at_start);
                r.observe(before, after);
            }
            "host-unchanged" => {
                crate::kit::check_host_mounts_unchanged(r, &self.host_mounts_at_start)?;
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    fn shell(&mut self, _cx: &mut Cx) -> anyhow::Result<()> {
        let spec = self.spec()?.clone();
        let base = self.base.clone();
        let child = self.child()?;
        // The unmount step took the overlay away: mount it again for the learner.
        child.act(&Request::mount_overlay(&spec))?;
        let cd = format!("cd '{}' && exec /bin/sh -i", base.display().to_string().replace('\'', r"'\''"));
        child.call(&Request::Interactive { argv: vec!["/bin/sh".into(), "-c".into(), cd], env: vec![("PS1".into(), "[workbench overlay-demo] $ ".into())] })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_files_dirs_and_absence() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), "hello\n").unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d/x"), "").unwrap();
        std::os::unix::fs::symlink("f", t.path().join("l")).unwrap();
        std::fs::write(t.path().join("big"), vec![b'x'; 200]).unwrap();
        assert_eq!(describe(&t.path().join("f")), "file \"hello\"");
        assert_eq!(describe(&t.path().join("d")), "dir [x]");
        assert_eq!(describe(&t.path().join("l")), "-> f");
        assert_eq!(describe(&t.path().join("big")), "file, 200 bytes");
        assert_eq!(describe(&t.path().join("nope")), "absent");
        assert_eq!(names(&t.path().join("d")), "x");
        assert_eq!(names(&t.path().join("nope")), "(empty)");
    }

    #[test]
    fn mount_rows_are_found_by_mount_point() {
        let text = "1 0 0:1 / / rw - ext4 /dev/vda rw\n2 1 0:2 / /x/merged rw - overlay overlay rw,lowerdir=/x/lower\n";
        let m = crate::observe::parse::parse_mountinfo(text).unwrap();
        assert_eq!(mounts_at(&m, Path::new("/x/merged")).len(), 1);
        assert_eq!(mounts_at(&m, Path::new("/x")).len(), 0);
        let line = "97 52 0:41 / /x/merged rw,relatime - overlay overlay rw,lowerdir=/x/l\\134,upperdir=/x/u,workdir=/x/w,uuid=on\n";
        let m = crate::observe::parse::parse_mountinfo(line).unwrap();
        assert_eq!(layers_at(&m, Path::new("/x/merged")), "lowerdir=/x/l\\,upperdir=/x/u,workdir=/x/w");
        assert_eq!(layers_at(&m, Path::new("/x")), "");
        assert_eq!(option_value("rw,lowerdir=/a:/b,upperdir=/u", "lowerdir").as_deref(), Some("/a:/b"));
        assert_eq!(option_value("rw,lowerdir=/a", "upperdir"), None);
    }
}
