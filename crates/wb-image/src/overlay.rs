//! overlayfs: one merged view made of read-only lower directories and one
//! writable upper directory.
//!
//! The kernel looks a name up in the upper dir first, then in each lower dir
//! from top to bottom, so the top-most copy wins. Writing to a file that only
//! exists in a lower dir first *copies it up* into the upper dir; deleting it
//! leaves a *whiteout* (a character device with device number 0/0) in the
//! upper dir that hides the lower copy, and a directory recreated over a
//! deleted one is marked *opaque* (xattr `trusted.overlay.opaque=y`) so that
//! nothing below it shows through. Container images are exactly this: each
//! image layer is a lower dir, and the container's writes land in the upper dir.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use crate::error::{Error, IoContext, Result};
use crate::sys;

/// xattr overlayfs sets on a directory that hides everything below it.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Same marker when the overlay is mounted with `userxattr` (rootless overlays).
pub const USER_OPAQUE_XATTR: &str = "user.overlay.opaque";

/// The four directories of one overlay mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlaySpec {
    /// Read-only layers, top-most first, as overlayfs' `lowerdir=` lists them.
    pub lowers: Vec<PathBuf>,
    /// Writable layer receiving copy-ups, new files, whiteouts and opaque dirs.
    pub upper: PathBuf,
    /// Scratch dir overlayfs needs for atomic copy-up; same filesystem as `upper`, empty.
    pub work: PathBuf,
    /// Where the merged view appears.
    pub merged: PathBuf,
}

/// Escape the characters overlayfs' option parser treats specially
/// (`,` separates options, `:` separates lower dirs, `\` escapes).
fn escape_opt(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ',' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Quote a word for a POSIX shell only if it needs it.
fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-,:=+@%".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl OverlaySpec {
    /// Convenience constructor.
    pub fn new(
        lowers: Vec<PathBuf>,
        upper: impl Into<PathBuf>,
        work: impl Into<PathBuf>,
        merged: impl Into<PathBuf>,
    ) -> Self {
        OverlaySpec {
            lowers,
            upper: upper.into(),
            work: work.into(),
            merged: merged.into(),
        }
    }

    /// The classic layout under one base dir: `base/lower` (or `base/lower1..N`
    /// for several, `lower1` top-most), `base/upper`, `base/work`, `base/merged`.
    pub fn under(base: &Path, n_lowers: usize) -> Self {
        let lowers = if n_lowers == 1 {
            vec![base.join("lower")]
        } else {
            (1..=n_lowers).map(|i| base.join(format!("lower{i}"))).collect()
        };
        OverlaySpec::new(lowers, base.join("upper"), base.join("work"), base.join("merged"))
    }

    /// `mkdir -p` every directory of the spec.
    pub fn create_dirs(&self) -> Result<()> {
        for d in self.lowers.iter().chain([&self.upper, &self.work, &self.merged]) {
            fs::create_dir_all(d).ctx("create directory", d)?;
        }
        Ok(())
    }

    /// The mount data string: `lowerdir=a:b,upperdir=u,workdir=w`.
    pub fn options_string(&self) -> String {
        let lowers: Vec<String> = self.lowers.iter().map(|p| escape_opt(p)).collect();
        format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            escape_opt(&self.upper),
            escape_opt(&self.work)
        )
    }

    /// `mount(2)` the overlay on `merged`.
    ///
    /// The caller is responsible for mount propagation (typically a private
    /// mount namespace); this function changes nothing but this one mount.
    pub fn mount(&self) -> Result<()> {
        let opts = self
            .checked_options()
            .map_err(|reason| Error::Invalid(format!("mount overlay on {}: {reason}", self.merged.display())))?;
        self.mount_with(&opts)
            .map_err(|e| Error::io("mount overlay on", &self.merged, io::Error::from(e)))
    }

    /// The [`options_string`](Self::options_string) as mount(2) takes it: at
    /// least one lower dir, and under one page (mount(2) copies at most one
    /// page of option data). `Err` says why not.
    pub fn checked_options(&self) -> std::result::Result<String, String> {
        if self.lowers.is_empty() {
            return Err("at least one lower dir is required".into());
        }
        let opts = self.options_string();
        if opts.len() >= 4096 {
            return Err(format!(
                "options are {} bytes, over the 4095-byte limit of mount(2); use fewer or shorter lower dirs",
                opts.len()
            ));
        }
        Ok(opts)
    }

    /// The bare `mount(2)` of the overlay on `merged` with `opts` (from
    /// [`checked_options`](Self::checked_options)).
    pub fn mount_with(&self, opts: &str) -> nix::Result<()> {
        nix::mount::mount(
            Some("overlay"),
            &self.merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts),
        )
    }

    /// Mount and return a guard that unmounts when dropped.
    pub fn mount_guarded(&self) -> Result<MountGuard> {
        self.mount()?;
        Ok(MountGuard {
            path: Some(self.merged.clone()),
        })
    }
}

/// `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)` (`mount --make-rprivate
/// /`): in a private mount namespace, so that mounts made next (an overlay)
/// never propagate to the host, nor the host's to it.
pub fn make_rprivate() -> nix::Result<()> {
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
}

/// `umount(2)` a path (the merged dir of an overlay).
pub fn unmount(path: &Path) -> Result<()> {
    nix::mount::umount2(path, MntFlags::empty()).map_err(|e| Error::io("umount", path, io::Error::from(e)))
}

/// Unmounts its path when dropped (lazily, with `MNT_DETACH`, if a plain
/// unmount fails because the mount is busy).
#[derive(Debug)]
pub struct MountGuard {
    path: Option<PathBuf>,
}

impl MountGuard {
    /// The mounted path.
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("guard already released")
    }

    /// Unmount now and report the error, instead of at drop.
    pub fn unmount(mut self) -> Result<()> {
        let p = self.path.take().expect("guard already released");
        unmount(&p)
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            if unmount(&p).is_err() {
                let _ = nix::mount::umount2(&p, MntFlags::MNT_DETACH);
            }
        }
    }
}

/// The shell command a tutorial would show for this mount:
/// `mount -t overlay overlay -o lowerdir=...,upperdir=...,workdir=... merged`.
pub fn classic_command(spec: &OverlaySpec) -> String {
    format!(
        "mount -t overlay overlay -o {} {}",
        shell_quote(&spec.options_string()),
        shell_quote(&spec.merged.to_string_lossy())
    )
}

/// Is this (lstat) metadata an overlayfs whiteout, i.e. a character device 0/0?
pub fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Is `path` an opaque directory (`trusted.overlay.opaque` = "y", or the
/// `user.overlay.opaque` equivalent of userxattr mounts)?
///
/// Only root can read `trusted.*` xattrs: for anyone else they look absent.
/// Filesystems without xattr support report `false`.
pub fn is_opaque(path: &Path) -> Result<bool> {
    for name in [OPAQUE_XATTR, USER_OPAQUE_XATTR] {
        match xattr::get(path, name) {
            Ok(Some(v)) if v == b"y" => return Ok(true),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOTSUP) | Some(libc::ENODATA) | Some(libc::EPERM)
                ) => {}
            Err(e) => return Err(Error::io("getxattr", path, e)),
        }
    }
    Ok(false)
}

/// Mark a directory opaque (needs CAP_SYS_ADMIN for `trusted.*`).
pub fn set_opaque(path: &Path) -> Result<()> {
    xattr::set(path, OPAQUE_XATTR, b"y").ctx("setxattr trusted.overlay.opaque", path)
}

/// Create an overlayfs whiteout (char device 0/0, mode 0) at `path`; needs CAP_MKNOD.
pub fn make_whiteout(path: &Path) -> Result<()> {
    sys::mknod(path, libc::S_IFCHR, 0, 0, 0).ctx("mknod whiteout", path)
}

/// One file of a directory tree, as [`tree`] sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TreeEntry {
    /// Path relative to the root, components joined by `/`, no leading `./`.
    pub path: String,
    /// "file", "dir", "symlink", "whiteout", "char", "block", "fifo" or "socket".
    pub kind: String,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes for files and symlinks; 0 for everything else (directory sizes
    /// depend on the filesystem, so they are left out).
    pub size: u64,
    /// Target of a symlink.
    pub link_target: Option<String>,
    /// Directory carries the overlay opaque marker.
    pub opaque: bool,
    /// Major/minor of a char or block device that is not a whiteout.
    pub device: Option<(u32, u32)>,
}

pub(crate) fn kind_of(meta: &Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if is_whiteout(meta) {
        "whiteout"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "socket"
    }
}

/// Walk `root` (not following symlinks) and describe every entry below it,
/// sorted so that each directory is followed by its contents.
pub fn tree(root: &Path) -> Result<Vec<TreeEntry>> {
    let mut out = Vec::new();
    for e in sys::walk(root)? {
        let kind = kind_of(&e.meta);
        let link_target = if kind == "symlink" {
            Some(
                fs::read_link(&e.abs)
                    .ctx("readlink", &e.abs)?
                    .to_string_lossy()
                    .into_owned(),
            )
        } else {
            None
        };
        let opaque = kind == "dir" && is_opaque(&e.abs)?;
        let device = if kind == "char" || kind == "block" {
            Some((sys::dev_major(e.meta.rdev()), sys::dev_minor(e.meta.rdev())))
        } else {
            None
        };
        out.push(TreeEntry {
            path: e.rel.to_string_lossy().into_owned(),
            kind: kind.to_string(),
            mode: e.meta.mode() & 0o7777,
            uid: e.meta.uid(),
            gid: e.meta.gid(),
            size: if kind == "file" || kind == "symlink" {
                e.meta.len()
            } else {
                0
            },
            link_target,
            opaque,
            device,
        });
    }
    Ok(out)
}

/// `ls -l`-style mode string ("drwxr-xr-x", "crw-------", "-rwsr-xr-x").
pub fn mode_string(kind: &str, mode: u32) -> String {
    let t = match kind {
        "dir" => 'd',
        "symlink" => 'l',
        "whiteout" | "char" => 'c',
        "block" => 'b',
        "fifo" => 'p',
        "socket" => 's',
        _ => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, shift) in [6u32, 3, 0].iter().enumerate() {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        let (flag, set, unset) = special[i];
        s.push(match (mode & flag != 0, x) {
            (true, true) => set,
            (true, false) => unset,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

#[derive(Default)]
struct Node<'a> {
    entry: Option<&'a TreeEntry>,
    children: std::collections::BTreeMap<String, Node<'a>>,
}

fn label(name: &str, e: Option<&TreeEntry>) -> String {
    let Some(e) = e else {
        return format!("{name}/");
    };
    match e.kind.as_str() {
        "dir" if e.opaque => format!("{name}/ (opaque)"),
        "dir" => format!("{name}/"),
        "symlink" => format!("{name} -> {}", e.link_target.as_deref().unwrap_or("?")),
        "whiteout" => format!("{name} (whiteout c 0/0)"),
        "char" | "block" => {
            let (ma, mi) = e.device.unwrap_or((0, 0));
            format!("{name} ({} {ma}/{mi})", &e.kind[..1])
        }
        "fifo" => format!("{name} (fifo)"),
        "socket" => format!("{name} (socket)"),
        _ => name.to_string(),
    }
}

fn render(entries: &[TreeEntry], detail: bool) -> String {
    let mut root = Node::default();
    for e in entries {
        let mut node = &mut root;
        for comp in e.path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            node = node.children.entry(comp.to_string()).or_default();
        }
        node.entry = Some(e);
    }
    let mut out = String::from(".\n");
    fn walk(node: &Node, prefix: &str, detail: bool, out: &mut String) {
        let n = node.children.len();
        for (i, (name, child)) in node.children.iter().enumerate() {
            let last = i + 1 == n;
            out.push_str(prefix);
            out.push_str(if last { "`-- " } else { "|-- " });
            if detail {
                if let Some(e) = child.entry {
                    out.push_str(&format!(
                        "[{} {}:{}{}] ",
                        mode_string(&e.kind, e.mode),
                        e.uid,
                        e.gid,
                        if e.kind == "file" {
                            format!(" {}", e.size)
                        } else {
                            String::new()
                        }
                    ));
                }
            }
            out.push_str(&label(name, child.entry));
            out.push('\n');
            let next = format!("{prefix}{}", if last { "    " } else { "|   " });
            walk(child, &next, detail, out);
        }
    }
    walk(&root, "", detail, &mut out);
    out
}

/// Draw entries as an ASCII tree like `tree --charset=ascii -F`: directories
/// end in `/`, symlinks show `-> target`, whiteouts `(whiteout c 0/0)` and
/// opaque directories `(opaque)`. Pure: snapshot-testable.
pub fn render_tree(entries: &[TreeEntry]) -> String {
    render(entries, false)
}

/// Like [`render_tree`] with `[mode uid:gid size]` before each name (like `tree -pug`).
pub fn render_tree_detailed(entries: &[TreeEntry]) -> String {
    render(entries, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> OverlaySpec {
        OverlaySpec::new(
            vec!["/l/top".into(), "/l/base".into()],
            "/o/upper",
            "/o/work",
            "/o/merged",
        )
    }

    #[test]
    fn options_list_lowers_top_first() {
        assert_eq!(
            spec().options_string(),
            "lowerdir=/l/top:/l/base,upperdir=/o/upper,workdir=/o/work"
        );
    }

    #[test]
    fn options_escape_separators() {
        let s = OverlaySpec::new(vec!["/a:b".into(), "/c,d".into()], "/u", "/w", "/m");
        assert_eq!(s.options_string(), r"lowerdir=/a\:b:/c\,d,upperdir=/u,workdir=/w");
    }

    #[test]
    fn classic_command_matches_the_tutorial() {
        assert_eq!(
            classic_command(&spec()),
            "mount -t overlay overlay -o lowerdir=/l/top:/l/base,upperdir=/o/upper,workdir=/o/work /o/merged"
        );
        let s = OverlaySpec::new(vec!["/my dir".into()], "/u", "/w", "/m m");
        assert_eq!(
            classic_command(&s),
            "mount -t overlay overlay -o 'lowerdir=/my dir,upperdir=/u,workdir=/w' '/m m'"
        );
    }

    #[test]
    fn under_names_the_classic_dirs() {
        let s = OverlaySpec::under(Path::new("/t"), 2);
        assert_eq!(s.lowers, vec![PathBuf::from("/t/lower1"), PathBuf::from("/t/lower2")]);
        assert_eq!(s.merged, PathBuf::from("/t/merged"));
        assert_eq!(
            OverlaySpec::under(Path::new("/t"), 1).lowers,
            vec![PathBuf::from("/t/lower")]
        );
    }

    #[test]
    fn mount_rejects_no_lowers_and_huge_options() {
        let s = OverlaySpec::new(vec![], "/u", "/w", "/m");
        assert!(s.mount().unwrap_err().to_string().contains("at least one lower"));
        let long: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/{}/{i}", "x".repeat(60))))
            .collect();
        let s = OverlaySpec::new(long, "/u", "/w", "/m");
        assert!(s.mount().unwrap_err().to_string().contains("4095-byte limit"));
    }

    #[test]
    fn mode_strings() {
        assert_eq!(mode_string("dir", 0o755), "drwxr-xr-x");
        assert_eq!(mode_string("file", 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string("dir", 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string("file", 0o2644), "-rw-r-Sr--");
        assert_eq!(mode_string("whiteout", 0), "c---------");
        assert_eq!(mode_string("symlink", 0o777), "lrwxrwxrwx");
    }

    fn e(path: &str, kind: &str) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind: kind.into(),
            mode: if kind == "dir" { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            size: if kind == "file" { 3 } else { 0 },
            link_target: None,
            opaque: false,
            device: None,
        }
    }

    fn fixture() -> Vec<TreeEntry> {
        let mut v = vec![
            e("bin", "dir"),
            e("bin/busybox", "file"),
            e("bin/sh", "symlink"),
            e("etc", "dir"),
            e("etc/hostname", "file"),
            e("etc/passwd", "whiteout"),
            e("dev", "dir"),
            e("dev/null", "char"),
            e("in_both", "file"),
            e("in_lower", "whiteout"),
            e("var-x", "file"),
            e("var", "dir"),
            e("var/cache", "dir"),
            e("var/cache/apt", "dir"),
            e("var/cache/apt/x", "file"),
            e("var/log", "dir"),
        ];
        v[2].link_target = Some("busybox".into());
        v[3].opaque = true;
        v[5].mode = 0;
        v[7].device = Some((1, 3));
        v[11].uid = 1000;
        v
    }

    #[test]
    fn render_tree_snapshot() {
        insta::assert_snapshot!(render_tree(&fixture()), @r"
        .
        |-- bin/
        |   |-- busybox
        |   `-- sh -> busybox
        |-- dev/
        |   `-- null (c 1/3)
        |-- etc/ (opaque)
        |   |-- hostname
        |   `-- passwd (whiteout c 0/0)
        |-- in_both
        |-- in_lower (whiteout c 0/0)
        |-- var/
        |   |-- cache/
        |   |   `-- apt/
        |   |       `-- x
        |   `-- log/
        `-- var-x
        ");
    }

    #[test]
    fn render_tree_detailed_snapshot() {
        let entries: Vec<TreeEntry> = fixture()
            .into_iter()
            .filter(|e| e.path.starts_with("etc") || e.path.starts_with("var/"))
            .collect();
        insta::assert_snapshot!(render_tree_detailed(&entries), @r"
        .
        |-- [drwxr-xr-x 0:0] etc/ (opaque)
        |   |-- [-rw-r--r-- 0:0 3] hostname
        |   `-- [c--------- 0:0] passwd (whiteout c 0/0)
        `-- var/
            |-- [drwxr-xr-x 0:0] cache/
            |   `-- [drwxr-xr-x 0:0] apt/
            |       `-- [-rw-r--r-- 0:0 3] x
            `-- [drwxr-xr-x 0:0] log/
        ");
    }

    #[test]
    fn render_empty_tree() {
        assert_eq!(render_tree(&[]), ".\n");
    }
}
