//! The container's side of `workbench run` as data: the list of system calls
//! the new process makes between `clone(2)` and `execve(2)`.
//!
//! The parent builds this list (every path and option already turned into a
//! C string), the child walks it with bare system calls, and `--verbose`
//! prints it with the classic shell command for each step. Keeping it as data
//! makes the recipe testable without root and lets the child run without
//! allocating memory (see [`super::child`]).

use std::ffi::CString;
use std::path::{Path, PathBuf};

use libc::c_ulong;

/// The arguments of one `mount(2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountCall {
    pub source: CString,
    pub target: CString,
    pub fstype: CString,
    pub flags: c_ulong,
    pub data: Option<CString>,
}

/// One step the child performs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `mount --make-rprivate /`: nothing mounted from now on propagates to the host.
    MakeRprivate,
    /// `mount(2)`.
    Mount(MountCall),
    /// `mkdir(2)`; an existing directory is fine.
    Mkdir { path: CString, mode: u32 },
    /// `mknod(2)` of a character device.
    Mknod {
        path: CString,
        mode: u32,
        major: u32,
        minor: u32,
    },
    /// Create an empty file (a mount point for a bind-mounted file).
    Touch { path: CString },
    /// `symlink(2)`.
    Symlink { target: CString, link: CString },
    /// `sethostname(2)` (in the new UTS namespace).
    Sethostname(CString),
    /// `ip link set lo up`, done with the SIOCSIFFLAGS ioctl.
    LoopbackUp,
    /// `chdir(new_root); pivot_root(".", "."); umount2(".", MNT_DETACH); chdir("/")`.
    PivotRoot { new_root: CString },
    /// Replace stdin with `/dev/null` (of the new root).
    StdinFromNull,
    /// `setresgid(0,0,0); setgroups(0, NULL); setresuid(0,0,0)`: become root
    /// of the new user namespace (once the parent has written its uid/gid maps).
    BecomeRoot,
}

fn c(s: impl AsRef<[u8]>) -> CString {
    CString::new(s.as_ref().to_vec()).expect("no NUL bytes in paths (checked by the caller)")
}

fn cp(p: &Path) -> CString {
    use std::os::unix::ffi::OsStrExt;
    c(p.as_os_str().as_bytes())
}

fn s(c: &CString) -> String {
    c.to_string_lossy().into_owned()
}

/// Mount flags by name, for the descriptions.
const MOUNT_FLAGS: [(c_ulong, &str, &str); 12] = [
    (libc::MS_BIND, "bind", "MS_BIND"),
    (libc::MS_REC, "rec", "MS_REC"),
    (libc::MS_REMOUNT, "remount", "MS_REMOUNT"),
    (libc::MS_RDONLY, "ro", "MS_RDONLY"),
    (libc::MS_NOSUID, "nosuid", "MS_NOSUID"),
    (libc::MS_NODEV, "nodev", "MS_NODEV"),
    (libc::MS_NOEXEC, "noexec", "MS_NOEXEC"),
    (libc::MS_STRICTATIME, "strictatime", "MS_STRICTATIME"),
    (libc::MS_PRIVATE, "private", "MS_PRIVATE"),
    (libc::MS_NOATIME, "noatime", "MS_NOATIME"),
    (libc::MS_NODIRATIME, "nodiratime", "MS_NODIRATIME"),
    (libc::MS_RELATIME, "relatime", "MS_RELATIME"),
];

/// The mount flags set in `flags`, by their `mount -o` names or (`c`) their C names.
fn flag_names(flags: c_ulong, c: bool) -> Vec<&'static str> {
    MOUNT_FLAGS
        .iter()
        .filter(|(f, _, _)| flags & f != 0)
        .map(|&(_, name, c_name)| if c { c_name } else { name })
        .collect()
}

/// A C string argument, or NULL when empty.
fn c_arg(c: &CString) -> String {
    if c.as_bytes().is_empty() {
        "NULL".into()
    } else {
        format!("{:?}", s(c))
    }
}

impl Op {
    /// The system call, C-style.
    pub fn syscall(&self) -> String {
        self.words().0
    }

    /// The classic shell command doing the same.
    pub fn command(&self) -> String {
        self.words().1
    }

    /// The system call and the classic command, from one list of the ops.
    fn words(&self) -> (String, String) {
        let (syscall, command): (String, String) = match self {
            Op::MakeRprivate => (
                r#"mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)"#.into(),
                "mount --make-rprivate /".into(),
            ),
            Op::Mount(m) => (m.syscall(), m.command()),
            Op::Mkdir { path, mode } => (
                format!("mkdir({:?}, {mode:#o})", s(path)),
                format!("mkdir -p -m {mode:o} {}", s(path)),
            ),
            Op::Mknod {
                path,
                mode,
                major,
                minor,
            } => (
                format!("mknod({:?}, S_IFCHR|{mode:#o}, makedev({major}, {minor}))", s(path)),
                format!("mknod -m {mode:o} {} c {major} {minor}", s(path)),
            ),
            Op::Touch { path } => (
                format!("close(open({:?}, O_CREAT))", s(path)),
                format!("touch {}", s(path)),
            ),
            Op::Symlink { target, link } => (
                format!("symlink({:?}, {:?})", s(target), s(link)),
                format!("ln -s {} {}", s(target), s(link)),
            ),
            Op::Sethostname(h) => (format!("sethostname({:?})", s(h)), format!("hostname {}", s(h))),
            Op::LoopbackUp => (
                r#"ioctl(sock, SIOCSIFFLAGS, {"lo", IFF_UP})"#.into(),
                "ip link set lo up".into(),
            ),
            Op::PivotRoot { new_root } => (
                format!(
                    r#"chdir({:?}); pivot_root(".", "."); umount2(".", MNT_DETACH); chdir("/")"#,
                    s(new_root)
                ),
                format!("cd {}; pivot_root . .; umount -l .; cd /", s(new_root)),
            ),
            Op::StdinFromNull => (r#"dup2(open("/dev/null"), 0)"#.into(), "exec </dev/null".into()),
            Op::BecomeRoot => (
                "setresgid(0, 0, 0); setgroups(0, NULL); setresuid(0, 0, 0)".into(),
                "setpriv --reuid=0 --regid=0 --clear-groups   # root of the user namespace".into(),
            ),
        };
        (syscall, command)
    }
}

impl MountCall {
    /// `mount(2)` as C: `mount("proc", "/proc", "proc", MS_NOSUID|MS_NODEV, NULL)`.
    fn syscall(&self) -> String {
        let f = flag_names(self.flags, true);
        let data = self.data.as_ref().map(c_arg).unwrap_or_else(|| "NULL".into());
        format!(
            "mount({}, {}, {}, {}, {data})",
            c_arg(&self.source),
            c_arg(&self.target),
            c_arg(&self.fstype),
            if f.is_empty() { "0".into() } else { f.join("|") }
        )
    }

    /// The `mount` command for the same call: a remount, a bind or a typed mount.
    fn command(&self) -> String {
        let (flags, source, target) = (self.flags, s(&self.source), s(&self.target));
        let names = flag_names(flags, false);
        if flags & libc::MS_REMOUNT != 0 {
            let o: Vec<&str> = names.into_iter().filter(|n| *n != "rec").collect();
            return format!("mount -o {} {target}", o.join(","));
        }
        if flags & libc::MS_BIND != 0 {
            let rec = if flags & libc::MS_REC != 0 { "--rbind" } else { "--bind" };
            return format!("mount {rec} {source} {target}");
        }
        let mut opts: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        if let Some(d) = &self.data {
            opts.push(s(d));
        }
        let o = if opts.is_empty() {
            String::new()
        } else {
            format!(" -o {}", opts.join(","))
        };
        format!("mount -t {}{o} {source} {target}", s(&self.fstype))
    }
}

/// How the root filesystem is put together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootMode {
    /// A read-only bind mount of an existing rootfs directory, plus a tmpfs on
    /// `/tmp`: nothing is copied and the given tree can never be changed.
    ReadOnlyBind { rootfs: PathBuf, has_tmp: bool },
    /// An overlay: the image layers (or the rootfs) read-only below, a
    /// writable upper dir on a tmpfs mounted at `scratch` (private to the
    /// container, gone with it).
    Overlay { lowers: Vec<PathBuf>, scratch: PathBuf },
}

/// Everything the child's recipe depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInput {
    pub root: RootMode,
    /// Where the new root is assembled (an empty directory in the run's workdir).
    pub merged: PathBuf,
    pub hostname: String,
    /// A new network namespace was created: bring `lo` up.
    pub new_netns: bool,
    /// Mount a fresh devpts on /dev/pts (for -t).
    pub devpts: bool,
    /// Mount sysfs read-only on /sys (when the rootfs has it or the root is writable).
    pub sysfs: bool,
    /// Keep the caller's stdin (-i / -t); otherwise it is /dev/null.
    pub keep_stdin: bool,
    /// The child is in a new user namespace: become its root first, and
    /// bind-mount the host's device nodes (mknod is not allowed there).
    pub userns: bool,
    /// Flags of the mount the rootfs lives on (nosuid, nodev, noexec, atime
    /// flags) that a read-only remount must keep: in a user namespace the
    /// kernel refuses to drop them.
    pub keep_flags: c_ulong,
}

/// `statvfs(2)` flags of the filesystem holding `path`, as `MS_*` mount flags.
pub fn mount_flags_of(path: &Path) -> c_ulong {
    use nix::sys::statvfs::FsFlags;
    let Ok(st) = nix::sys::statvfs::statvfs(path) else {
        return 0;
    };
    let f = st.flags();
    let mut out = 0;
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, libc::MS_NOSUID),
        (FsFlags::ST_NODEV, libc::MS_NODEV),
        (FsFlags::ST_NOEXEC, libc::MS_NOEXEC),
        (FsFlags::ST_NOATIME, libc::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, libc::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}

/// Character devices every container gets on its private /dev (mode 0666).
pub const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The overlayfs mount options for `lowers` (top-most first) over a scratch tmpfs.
pub fn overlay_options(lowers: &[PathBuf], scratch: &Path) -> String {
    let spec = wb_image::OverlaySpec::new(
        lowers.to_vec(),
        scratch.join("upper"),
        scratch.join("work"),
        PathBuf::new(),
    );
    spec.options_string()
}

/// Build the child's recipe.
pub fn build(input: &PlanInput) -> Vec<Op> {
    let m = &input.merged;
    let at = |rel: &str| cp(&m.join(rel));
    let mount = |source: &str, target: CString, fstype: &str, flags: c_ulong, data: Option<&str>| {
        Op::Mount(MountCall {
            source: c(source),
            target,
            fstype: c(fstype),
            flags,
            data: data.map(c),
        })
    };
    let mut ops = if input.userns {
        vec![Op::BecomeRoot, Op::MakeRprivate]
    } else {
        vec![Op::MakeRprivate]
    };
    let writable = matches!(input.root, RootMode::Overlay { .. });
    match &input.root {
        RootMode::ReadOnlyBind { rootfs, has_tmp } => {
            ops.push(Op::Mount(MountCall {
                source: cp(rootfs),
                target: cp(m),
                fstype: c(""),
                flags: libc::MS_BIND | libc::MS_REC,
                data: None,
            }));
            let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | input.keep_flags;
            ops.push(Op::Mount(MountCall {
                source: c(""),
                target: cp(m),
                fstype: c(""),
                flags,
                data: None,
            }));
            if *has_tmp {
                ops.push(mount(
                    "tmpfs",
                    at("tmp"),
                    "tmpfs",
                    libc::MS_NOSUID | libc::MS_NODEV,
                    Some("mode=1777"),
                ));
            }
        }
        RootMode::Overlay { lowers, scratch } => {
            ops.push(mount("tmpfs", cp(scratch), "tmpfs", 0, Some("mode=0700")));
            ops.push(Op::Mkdir {
                path: cp(&scratch.join("upper")),
                mode: 0o755,
            });
            ops.push(Op::Mkdir {
                path: cp(&scratch.join("work")),
                mode: 0o755,
            });
            ops.push(mount(
                "overlay",
                cp(m),
                "overlay",
                0,
                Some(&overlay_options(lowers, scratch)),
            ));
            for d in ["proc", "dev", "sys", "tmp"] {
                ops.push(Op::Mkdir {
                    path: at(d),
                    mode: if d == "tmp" { 0o1777 } else { 0o755 },
                });
            }
        }
    }
    ops.push(mount(
        "proc",
        at("proc"),
        "proc",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    ));
    ops.push(mount(
        "tmpfs",
        at("dev"),
        "tmpfs",
        libc::MS_NOSUID | libc::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    ));
    for (name, major, minor) in DEVICES {
        let path = at(&format!("dev/{name}"));
        if input.userns {
            // A user namespace may not create device nodes, but may bind the host's.
            ops.push(Op::Touch { path: path.clone() });
            ops.push(Op::Mount(MountCall {
                source: c(format!("/dev/{name}")),
                target: path,
                fstype: c(""),
                flags: libc::MS_BIND,
                data: None,
            }));
        } else {
            ops.push(Op::Mknod {
                path,
                mode: 0o666,
                major: *major,
                minor: *minor,
            });
        }
    }
    for (target, link) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ] {
        ops.push(Op::Symlink {
            target: c(target),
            link: at(&format!("dev/{link}")),
        });
    }
    ops.push(Op::Mkdir {
        path: at("dev/shm"),
        mode: 0o1777,
    });
    if input.devpts {
        ops.push(Op::Mkdir {
            path: at("dev/pts"),
            mode: 0o755,
        });
        ops.push(mount(
            "devpts",
            at("dev/pts"),
            "devpts",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        ));
        ops.push(Op::Symlink {
            target: c("pts/ptmx"),
            link: at("dev/ptmx"),
        });
    }
    if input.sysfs || writable {
        ops.push(mount(
            "sysfs",
            at("sys"),
            "sysfs",
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        ));
    }
    ops.push(Op::Sethostname(c(&input.hostname)));
    if input.new_netns {
        ops.push(Op::LoopbackUp);
    }
    ops.push(Op::PivotRoot { new_root: cp(m) });
    if !input.keep_stdin {
        ops.push(Op::StdinFromNull);
    }
    ops
}

/// The paths `execve` tries for `argv0`, like `execvp(3)` but with the
/// container's PATH (glibc's `execvpe` would search the *caller's* PATH).
pub fn exec_candidates(argv0: &str, path: &str) -> Vec<String> {
    if argv0.contains('/') {
        return vec![argv0.to_string()];
    }
    path.split(':')
        .map(|d| if d.is_empty() { "." } else { d })
        .map(|d| format!("{}/{argv0}", d.trim_end_matches('/')))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(root: RootMode) -> PlanInput {
        PlanInput {
            root,
            merged: "/run/wb/merged".into(),
            hostname: "box".into(),
            new_netns: true,
            devpts: false,
            sysfs: true,
            keep_stdin: false,
            userns: false,
            keep_flags: 0,
        }
    }

    #[test]
    fn user_namespace_recipe() {
        let mut i = input(RootMode::ReadOnlyBind {
            rootfs: "/r".into(),
            has_tmp: false,
        });
        i.userns = true;
        i.keep_flags = libc::MS_NOSUID | libc::MS_RELATIME;
        let ops = build(&i);
        assert_eq!(ops[0], Op::BecomeRoot);
        assert_eq!(
            ops[3].command(),
            "mount -o bind,remount,ro,nosuid,relatime /run/wb/merged"
        );
        let cmds: Vec<String> = ops.iter().map(Op::command).collect();
        assert!(!cmds.iter().any(|c| c.starts_with("mknod")));
        assert!(cmds.contains(&"mount --bind /dev/null /run/wb/merged/dev/null".to_string()));
    }

    #[test]
    fn read_only_bind_recipe() {
        let ops = build(&input(RootMode::ReadOnlyBind {
            rootfs: "/srv/rootfs".into(),
            has_tmp: true,
        }));
        let cmds: Vec<String> = ops.iter().map(Op::command).collect();
        assert_eq!(cmds[0], "mount --make-rprivate /");
        assert_eq!(cmds[1], "mount --rbind /srv/rootfs /run/wb/merged");
        assert_eq!(cmds[2], "mount -o bind,remount,ro /run/wb/merged");
        assert_eq!(
            cmds[3],
            "mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /run/wb/merged/tmp"
        );
        assert_eq!(cmds[4], "mount -t proc -o nosuid,nodev,noexec proc /run/wb/merged/proc");
        assert!(cmds.contains(&"mknod -m 666 /run/wb/merged/dev/null c 1 3".to_string()));
        assert!(cmds.contains(&"hostname box".to_string()));
        assert!(cmds.contains(&"ip link set lo up".to_string()));
        // pivot_root comes after every mount below the new root, stdin last.
        let pivot = cmds.iter().position(|c| c.contains("pivot_root")).unwrap();
        assert_eq!(pivot, cmds.len() - 2);
        assert_eq!(cmds.last().unwrap(), "exec </dev/null");
        assert!(ops.iter().all(|o| !o.syscall().is_empty()));
    }

    #[test]
    fn overlay_recipe() {
        let mut i = input(RootMode::Overlay {
            lowers: vec!["/l/2".into(), "/l/1".into()],
            scratch: "/run/wb/rw".into(),
        });
        i.new_netns = false;
        i.keep_stdin = true;
        i.devpts = true;
        let cmds: Vec<String> = build(&i).iter().map(Op::command).collect();
        assert_eq!(cmds[1], "mount -t tmpfs -o mode=0700 tmpfs /run/wb/rw");
        assert_eq!(cmds[4], "mount -t overlay -o lowerdir=/l/2:/l/1,upperdir=/run/wb/rw/upper,workdir=/run/wb/rw/work overlay /run/wb/merged");
        assert!(cmds.iter().any(|c| c.starts_with("mount -t devpts")));
        assert!(!cmds.contains(&"ip link set lo up".to_string()));
        assert!(cmds.last().unwrap().contains("pivot_root"));
    }

    #[test]
    fn syscalls_read_like_c() {
        let ops = build(&input(RootMode::ReadOnlyBind {
            rootfs: "/r".into(),
            has_tmp: false,
        }));
        assert_eq!(
            ops[1].syscall(),
            r#"mount("/r", "/run/wb/merged", NULL, MS_BIND|MS_REC, NULL)"#
        );
        assert_eq!(ops[0].syscall(), r#"mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)"#);
        assert_eq!(
            ops[2].syscall(),
            r#"mount(NULL, "/run/wb/merged", NULL, MS_BIND|MS_REMOUNT|MS_RDONLY, NULL)"#
        );
    }

    #[test]
    fn exec_search() {
        assert_eq!(exec_candidates("/bin/sh", "/usr/bin:/bin"), vec!["/bin/sh"]);
        assert_eq!(exec_candidates("sh", "/usr/bin/:/bin"), vec!["/usr/bin/sh", "/bin/sh"]);
        assert_eq!(exec_candidates("./x", "/bin"), vec!["./x"]);
    }
}
