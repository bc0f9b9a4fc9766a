//! What the overlayfs lessons share: is overlayfs there, what a path in a
//! layer is (whiteout, opaque dir, file), trees, and the mountinfo rows of a
//! mount point.
//!
//! overlayfs merges read-only lower directories and one writable upper
//! directory into one view; deletions leave whiteouts (0/0 character devices)
//! and recreated directories the `trusted.overlay.opaque` xattr in upper. These
//! helpers read those marks the way `ls -l`, `getfattr` and `tree` would.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::observe::parse::parse_mountinfo;

/// overlayfs must be built in, loaded, or loadable (mount(2) loads the module on demand).
pub fn require_overlayfs() -> anyhow::Result<()> {
    let listed = std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"));
    if listed {
        return Ok(());
    }
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let module = Path::new("/lib/modules").join(&release).join("kernel/fs/overlayfs");
    if module.is_dir() {
        return Ok(());
    }
    anyhow::bail!("this kernel has no overlayfs (not in /proc/filesystems, no module in {}): run `modprobe overlay` or use a kernel with CONFIG_OVERLAY_FS", module.display())
}

/// The value of an extended attribute of `path` itself (not following a symlink).
pub fn xattr_value(path: &Path, name: &str) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let n = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are nul-terminated; buf is valid for buf.len() bytes.
    let len = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return None;
    }
    buf.truncate(len as usize);
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// What `path` is, in a few words: "absent", `file "text"`, "whiteout (char device 0/0)",
/// "dir [a, b] opaque (trusted.overlay.opaque=y)", "-> target".
pub fn describe(path: &Path) -> String {
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return "absent".into(),
        Err(e) => return format!("unreadable: {e}"),
    };
    let ft = m.file_type();
    if wb_image::is_whiteout(&m) {
        "whiteout (char device 0/0)".into()
    } else if ft.is_char_device() || ft.is_block_device() {
        let kind = if ft.is_char_device() { "char" } else { "block" };
        format!("{kind} device {}/{}", libc::major(m.rdev()), libc::minor(m.rdev()))
    } else if ft.is_symlink() {
        format!(
            "-> {}",
            std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_default()
        )
    } else if ft.is_dir() {
        let names = crate::host::snapshot::sorted_dir(path);
        let mut s = format!("dir [{}]", names.join(", "));
        if let Some(v) = xattr_value(path, wb_image::overlay::OPAQUE_XATTR) {
            s.push_str(&format!(" opaque ({}={v})", wb_image::overlay::OPAQUE_XATTR));
        }
        s
    } else if ft.is_file() {
        match std::fs::read(path) {
            Ok(b) if b.len() <= 80 && !b.contains(&0) => format!("file {:?}", String::from_utf8_lossy(&b).trim_end()),
            Ok(b) => format!("file, {} bytes", b.len()),
            Err(e) => format!("file, unreadable: {e}"),
        }
    } else {
        "other".into()
    }
}

/// The tree of a directory as text (`tree` of the tutorial), or the error.
pub fn tree_text(dir: &Path) -> String {
    match wb_image::tree(dir) {
        Ok(t) => wb_image::render_tree(&t).trim_end().to_string(),
        Err(e) => format!("tree: {e}"),
    }
}

/// The raw lines of /proc/PID/mountinfo for mount point `point` (what `grep` would show).
pub fn mountinfo_lines(pid: i32, point: &Path) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    let lines = lines_on(&text, point);
    if lines.is_empty() {
        "(no line)".into()
    } else {
        lines.join("\n")
    }
}

/// Pure part of [`mountinfo_lines`]: the lines of mountinfo `text` whose
/// mount point, as the one mountinfo parser reads it, is `point`.
fn lines_on<'a>(text: &'a str, point: &Path) -> Vec<&'a str> {
    let p = point.display().to_string();
    text.lines()
        .filter(|l| parse_mountinfo(l).is_ok_and(|m| m.iter().any(|m| m.mount_point == p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_on_a_mount_point_are_the_raw_rows() {
        let text = "1 0 0:1 / / rw - ext4 /dev/vda rw\n\
                    2 1 0:2 / /x/merged rw - overlay overlay rw,lowerdir=/x/l\n\
                    3 1 0:3 / /x/with\\040space rw - tmpfs tmpfs rw\n";
        assert_eq!(
            lines_on(text, Path::new("/x/merged")),
            vec!["2 1 0:2 / /x/merged rw - overlay overlay rw,lowerdir=/x/l"]
        );
        assert_eq!(
            lines_on(text, Path::new("/x/with space")),
            vec!["3 1 0:3 / /x/with\\040space rw - tmpfs tmpfs rw"]
        );
        assert!(lines_on(text, Path::new("/x")).is_empty());
        assert!(lines_on("garbage", Path::new("/x")).is_empty());
    }
}
