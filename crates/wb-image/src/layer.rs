//! Image layers: an overlay upper dir written as a tar of differences, and
//! the reverse.
//!
//! A container image layer is a tar archive holding only what changed since
//! the layer below it. Tar cannot hold an overlayfs whiteout device, so the
//! OCI/Docker format spells a deleted `x` as an empty file `.wh.x`, and an
//! opaque directory `d` as a marker file `d/.wh..wh..opq`. Unpacking a stack
//! of layers either re-creates those overlay markers (one directory per layer,
//! ready to be a `lowerdir`) or *flattens* the stack into one directory by
//! actually deleting what each whiteout names, as `docker load` and
//! `umoci unpack` do.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use tar::{EntryType, Header};

use crate::error::{Error, IoContext, Result};
use crate::overlay::{is_opaque, is_whiteout};
use crate::sys;

/// Prefix of a whiteout file in a layer tar.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the opaque-directory marker in a layer tar.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

fn lossy(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn base_header(meta: &fs::Metadata) -> Header {
    let mut h = Header::new_gnu();
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid() as u64);
    h.set_gid(meta.gid() as u64);
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    h
}

fn empty_file_header(mtime: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_size(0);
    h
}

/// Refuse upper dirs using overlay features a layer tar cannot express.
fn check_overlay_xattrs(abs: &Path, rel: &Path, is_dir: bool) -> Result<()> {
    let (name, what) = if is_dir {
        (
            "trusted.overlay.redirect",
            "renamed directory (redirect_dir) cannot be expressed in a layer tar",
        )
    } else {
        (
            "trusted.overlay.metacopy",
            "metadata-only copy-up (metacopy) has no data in the upper dir",
        )
    };
    match xattr::get(abs, name) {
        Ok(Some(_)) => Err(Error::InvalidEntry {
            path: lossy(rel),
            reason: what.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Write the contents of an overlay upper dir as a layer tar into `out` and
/// return `out` when done.
///
/// Whiteouts (char 0/0) `x` become empty files `.wh.x`; an opaque dir `d`
/// becomes `d/` followed at once by `d/.wh..wh..opq`; everything else is
/// stored as is with numeric owners, permission bits, mtimes, symlinks and
/// hard links (second and later names of one inode become link entries).
/// Entries are sorted by name, so the same tree always gives the same bytes.
/// Sockets are skipped (tar cannot hold them); extended attributes are not stored.
pub fn upper_to_layer<W: Write>(upper: &Path, out: W) -> Result<W> {
    let mut b = tar::Builder::new(out);
    let out_err = |e: io::Error| Error::io("write layer tar for", upper, e);
    let mut inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for e in sys::walk(upper)? {
        let meta = &e.meta;
        let name = e.rel.file_name().unwrap_or_default();
        if is_whiteout(meta) {
            let mut wh = OsString::from(WHITEOUT_PREFIX);
            wh.push(name);
            let path = e.rel.with_file_name(wh);
            let mut h = empty_file_header(meta.mtime().max(0) as u64);
            b.append_data(&mut h, &path, io::empty()).map_err(out_err)?;
            continue;
        }
        if name.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return Err(Error::InvalidEntry {
                path: lossy(&e.rel),
                reason: format!("names starting with {WHITEOUT_PREFIX:?} are reserved for whiteouts"),
            });
        }
        let ft = meta.file_type();
        let mut h = base_header(meta);
        if ft.is_dir() {
            check_overlay_xattrs(&e.abs, &e.rel, true)?;
            h.set_entry_type(EntryType::Directory);
            let mut p = e.rel.as_os_str().to_os_string();
            p.push("/");
            b.append_data(&mut h, Path::new(&p), io::empty()).map_err(out_err)?;
            if is_opaque(&e.abs)? {
                let mut h = empty_file_header(meta.mtime().max(0) as u64);
                b.append_data(&mut h, e.rel.join(OPAQUE_MARKER), io::empty())
                    .map_err(out_err)?;
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(&e.abs).ctx("readlink", &e.abs)?;
            h.set_entry_type(EntryType::Symlink);
            b.append_link(&mut h, &e.rel, &target).map_err(out_err)?;
        } else if ft.is_file() {
            check_overlay_xattrs(&e.abs, &e.rel, false)?;
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = inodes.get(&key) {
                    h.set_entry_type(EntryType::Link);
                    b.append_link(&mut h, &e.rel, first).map_err(out_err)?;
                    continue;
                }
                inodes.insert(key, e.rel.clone());
            }
            h.set_entry_type(EntryType::Regular);
            h.set_size(meta.len());
            let f = File::open(&e.abs).ctx("open", &e.abs)?;
            // Exactly `len` bytes, even if the file changes while we read it.
            let data = f.take(meta.len()).chain(io::repeat(0)).take(meta.len());
            b.append_data(&mut h, &e.rel, data).map_err(out_err)?;
        } else if ft.is_char_device() || ft.is_block_device() {
            h.set_entry_type(if ft.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            });
            h.set_device_major(sys::dev_major(meta.rdev())).map_err(out_err)?;
            h.set_device_minor(sys::dev_minor(meta.rdev())).map_err(out_err)?;
            b.append_data(&mut h, &e.rel, io::empty()).map_err(out_err)?;
        } else if ft.is_fifo() {
            h.set_entry_type(EntryType::Fifo);
            b.append_data(&mut h, &e.rel, io::empty()).map_err(out_err)?;
        }
        // sockets: skipped
    }
    b.into_inner().map_err(out_err)
}

/// `upper_to_layer` into a file at `out`.
pub fn upper_to_layer_file(upper: &Path, out: &Path) -> Result<()> {
    let f = File::create(out).ctx("create", out)?;
    let mut f = upper_to_layer(upper, io::BufWriter::new(f))?;
    f.flush().ctx("write", out)?;
    Ok(())
}

/// How [`apply_layer`] treats whiteouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// Re-create overlayfs markers: `.wh.x` becomes a char device 0/0 and
    /// `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory. The
    /// result can be used as a `lowerdir`. Needs root (mknod, trusted xattrs).
    Overlay,
    /// Apply the layer on top of what `dest` already holds: `.wh.x` deletes
    /// `x`, `.wh..wh..opq` empties its directory of everything from earlier
    /// layers. Apply a stack base-first to get the image's root filesystem.
    Flatten,
}

/// What [`apply_layer`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Entries created or updated (whiteout markers not counted).
    pub entries: usize,
    /// Paths named by whiteouts (deleted in Flatten mode, marked in Overlay mode).
    pub whiteouts: Vec<String>,
    /// Directories marked opaque.
    pub opaque_dirs: Vec<String>,
}

/// Check a tar entry name and split it into normal components. Rejects
/// absolute paths and `..`; drops `.` and empty components.
fn sanitize(raw: &[u8]) -> Result<Vec<OsString>> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    if raw.first() == Some(&b'/') {
        return Err(Error::UnsafePath {
            path: shown(),
            reason: "absolute paths are not allowed",
        });
    }
    let mut comps = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::UnsafePath {
                    path: shown(),
                    reason: "'..' components are not allowed",
                })
            }
            c => comps.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Ok(comps)
}

fn join_rel(comps: &[OsString]) -> PathBuf {
    comps.iter().collect()
}

/// Resolve directory components below `root` the way a chroot would:
/// symlinks met on the way are followed (absolute targets start again at
/// `root`), and anything that would climb above `root` is rejected. Missing
/// directories are created (mode 0755) when `create` is set, otherwise
/// `Ok(None)` is returned.
fn resolve_dir(root: &Path, comps: &[OsString], create: bool, shown: &str) -> Result<Option<PathBuf>> {
    let mut queue: std::collections::VecDeque<OsString> = comps.iter().cloned().collect();
    let mut stack: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(c) = queue.pop_front() {
        match c.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                if stack.pop().is_none() {
                    return Err(Error::UnsafePath {
                        path: shown.to_string(),
                        reason: "a symlink on the way leads outside the destination",
                    });
                }
                continue;
            }
            _ => {}
        }
        let mut cand = root.join(join_rel(&stack));
        cand.push(&c);
        match fs::symlink_metadata(&cand) {
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(Error::UnsafePath {
                        path: shown.to_string(),
                        reason: "too many levels of symbolic links",
                    });
                }
                let target = fs::read_link(&cand).ctx("readlink", &cand)?;
                let tb = target.as_os_str().as_bytes();
                if tb.first() == Some(&b'/') {
                    stack.clear();
                }
                let parts: Vec<OsString> = tb
                    .split(|&b| b == b'/')
                    .map(|p| OsStr::from_bytes(p).to_os_string())
                    .collect();
                for p in parts.into_iter().rev() {
                    queue.push_front(p);
                }
            }
            Ok(m) if m.is_dir() => stack.push(c),
            Ok(_) => {
                return Err(Error::InvalidEntry {
                    path: shown.to_string(),
                    reason: format!("{} is not a directory", cand.display()),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    return Ok(None);
                }
                fs::create_dir(&cand).ctx("create directory", &cand)?;
                stack.push(c);
            }
            Err(e) => return Err(Error::io("lstat", &cand, e)),
        }
    }
    Ok(Some(root.join(join_rel(&stack))))
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

fn ignore_eperm_unless_root(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && !sys::is_root() => Ok(()),
        r => r,
    }
}

/// chown (ignored with EPERM when not root, like `tar` without
/// `--same-owner`), then chmod (after chown, which clears setuid), then mtime.
/// The target of a symlink or hard link entry (`shown`: its path, for
/// errors); `missing` is the error when the header has none.
fn link_target<R: Read>(entry: &tar::Entry<R>, shown: &str, missing: &str) -> Result<Vec<u8>> {
    Ok(entry
        .link_name_bytes()
        .ok_or_else(|| Error::InvalidEntry {
            path: shown.to_string(),
            reason: missing.into(),
        })?
        .into_owned())
}

fn apply_meta(path: &Path, m: &Meta, is_symlink: bool) -> Result<()> {
    ignore_eperm_unless_root(sys::lchown(path, m.uid, m.gid)).ctx("lchown", path)?;
    if !is_symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(m.mode)).ctx("chmod", path)?;
    }
    sys::set_mtime(path, m.mtime).ctx("utimensat", path)
}

/// Apply one layer tar read from `input` onto `dest` (created if missing).
///
/// Entry names are checked: absolute paths and `..` are refused, and
/// symlinks inside `dest` are followed only within `dest` (one pointing
/// outside makes the entry fail). Owners, modes, mtimes, symlinks, hard links,
/// devices and fifos are restored; directory metadata is set at the end so
/// that read-only directories can still be filled. When not root, ownership
/// is silently left to the current user.
pub fn apply_layer<R: Read>(input: R, dest: &Path, mode: ApplyMode) -> Result<ApplyReport> {
    fs::create_dir_all(dest).ctx("create directory", dest)?;
    let root = fs::canonicalize(dest).ctx("canonicalize", dest)?;
    let mut report = ApplyReport::default();
    let mut created: HashSet<PathBuf> = HashSet::new();
    let mut dir_meta: Vec<(PathBuf, Meta)> = Vec::new();
    let mut archive = tar::Archive::new(input);
    let read_err = |e: io::Error| Error::io("read layer tar for", dest, e);
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let comps = sanitize(&raw)?;
        let h = entry.header();
        let etype = h.entry_type();
        let meta = Meta {
            mode: h.mode().map_err(read_err)? & 0o7777,
            uid: h.uid().map_err(read_err)? as u32,
            gid: h.gid().map_err(read_err)? as u32,
            mtime: h.mtime().map_err(read_err)? as i64,
        };
        if matches!(etype, EntryType::XGlobalHeader | EntryType::XHeader) {
            continue;
        }
        let Some((base, parent)) = comps.split_last() else {
            // The root itself ("./"): its metadata applies to dest.
            if etype.is_dir() {
                dir_meta.push((root.clone(), meta));
            }
            continue;
        };
        let rel = join_rel(&comps);
        let bb = base.as_bytes();

        if bb.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            let create = mode == ApplyMode::Overlay;
            let Some(pdir) = resolve_dir(&root, parent, create, &shown)? else {
                continue; // Flatten: nothing there to delete.
            };
            let prel = join_rel(parent);
            if bb == OPAQUE_MARKER.as_bytes() {
                report.opaque_dirs.push(lossy(&prel));
                match mode {
                    ApplyMode::Overlay => crate::overlay::set_opaque(&pdir)?,
                    ApplyMode::Flatten => {
                        for child in fs::read_dir(&pdir).ctx("read directory", &pdir)? {
                            let child = child.ctx("read directory", &pdir)?;
                            if !created.contains(&prel.join(child.file_name())) {
                                sys::remove_any(&child.path())?;
                            }
                        }
                    }
                }
            } else {
                let name = &bb[WHITEOUT_PREFIX.len()..];
                if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
                    return Err(Error::UnsafePath {
                        path: shown,
                        reason: "whiteout names no valid file",
                    });
                }
                let target = pdir.join(OsStr::from_bytes(name));
                report.whiteouts.push(lossy(&prel.join(OsStr::from_bytes(name))));
                sys::remove_any(&target)?;
                if mode == ApplyMode::Overlay {
                    crate::overlay::make_whiteout(&target)?;
                    // The `.wh.` entry carries the whiteout's mtime: restore it,
                    // or a round trip differs whenever it crosses a second.
                    sys::set_mtime(&target, meta.mtime).ctx("utimensat", &target)?;
                }
            }
            continue;
        }

        let pdir = resolve_dir(&root, parent, true, &shown)?.expect("created");
        let target = pdir.join(base);
        let existing = fs::symlink_metadata(&target).ok();
        match etype {
            EntryType::Directory => {
                if !existing.as_ref().is_some_and(|m| m.is_dir()) {
                    sys::remove_any(&target)?;
                    fs::create_dir(&target).ctx("create directory", &target)?;
                }
                dir_meta.push((target.clone(), meta));
            }
            EntryType::Regular | EntryType::Continuous => {
                sys::remove_any(&target)?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .ctx("create", &target)?;
                io::copy(&mut entry, &mut f).ctx("write", &target)?;
                drop(f);
                apply_meta(&target, &meta, false)?;
            }
            EntryType::Symlink => {
                let link = link_target(&entry, &shown, "symlink without a target")?;
                sys::remove_any(&target)?;
                symlink(OsStr::from_bytes(&link), &target).ctx("symlink", &target)?;
                apply_meta(&target, &meta, true)?;
            }
            EntryType::Link => {
                let link = link_target(&entry, &shown, "hard link without a target")?;
                let lshown = String::from_utf8_lossy(&link).into_owned();
                let lcomps = sanitize(&link)?;
                let Some((lbase, lparent)) = lcomps.split_last() else {
                    return Err(Error::UnsafePath {
                        path: shown,
                        reason: "hard link to the root directory",
                    });
                };
                let src = resolve_dir(&root, lparent, false, &lshown)?
                    .map(|d| d.join(lbase))
                    .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()))
                    .ok_or_else(|| Error::InvalidEntry {
                        path: shown.clone(),
                        reason: format!("hard link target {lshown:?} is missing or a directory"),
                    })?;
                if src != target {
                    sys::remove_any(&target)?;
                    sys::hard_link(&src, &target).ctx("link", &target)?;
                }
            }
            EntryType::Char | EntryType::Block => {
                let major = entry.header().device_major().map_err(read_err)?.unwrap_or(0);
                let minor = entry.header().device_minor().map_err(read_err)?.unwrap_or(0);
                sys::remove_any(&target)?;
                let kind = if etype == EntryType::Char {
                    libc::S_IFCHR
                } else {
                    libc::S_IFBLK
                };
                sys::mknod(&target, kind, meta.mode, major, minor).ctx("mknod", &target)?;
                apply_meta(&target, &meta, false)?;
            }
            EntryType::Fifo => {
                sys::remove_any(&target)?;
                sys::mkfifo(&target, meta.mode).ctx("mkfifo", &target)?;
                apply_meta(&target, &meta, false)?;
            }
            other => {
                return Err(Error::InvalidEntry {
                    path: shown,
                    reason: format!("unsupported tar entry type {other:?}"),
                })
            }
        }
        created.insert(rel);
        report.entries += 1;
    }
    // Deepest first, so setting a parent's mtime is not undone by its children.
    for (path, meta) in dir_meta.iter().rev() {
        apply_meta(path, meta, false)?;
    }
    Ok(report)
}

/// Open a layer file for reading its tar stream, decompressing gzip
/// (detected by its magic bytes 1f 8b). zstd layers are refused.
pub fn open_layer_file(path: &Path) -> Result<Box<dyn Read + Send>> {
    let f = File::open(path).ctx("open", path)?;
    let mut r = BufReader::new(f);
    let head = r.fill_buf().ctx("read", path)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(MultiGzDecoder::new(r)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(Error::InvalidEntry {
            path: path.display().to_string(),
            reason: "zstd-compressed layers are not supported".into(),
        })
    } else {
        Ok(Box::new(r))
    }
}

/// [`apply_layer`] from a file, gzip-compressed or plain (detected by magic bytes).
pub fn apply_layer_file(layer: &Path, dest: &Path, mode: ApplyMode) -> Result<ApplyReport> {
    let r = open_layer_file(layer)?;
    apply_layer(r, dest, mode)
}

/// One entry of a layer tar, for listing and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    pub path: String,
    /// "file", "dir", "symlink", "hardlink", "char", "block", "fifo" or "other".
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
    pub link: Option<String>,
}

/// List the entries of a layer tar in stream order (like `tar tv`).
pub fn list_layer<R: Read>(input: R) -> Result<Vec<LayerEntry>> {
    let mut a = tar::Archive::new(input);
    let err = |e: io::Error| Error::io("read layer tar", "<stream>", e);
    let mut out = Vec::new();
    for entry in a.entries().map_err(err)? {
        let entry = entry.map_err(err)?;
        let h = entry.header();
        let kind = match h.entry_type() {
            EntryType::Regular | EntryType::Continuous => "file",
            EntryType::Directory => "dir",
            EntryType::Symlink => "symlink",
            EntryType::Link => "hardlink",
            EntryType::Char => "char",
            EntryType::Block => "block",
            EntryType::Fifo => "fifo",
            EntryType::XGlobalHeader | EntryType::XHeader => continue,
            _ => "other",
        };
        out.push(LayerEntry {
            path: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
            kind,
            mode: h.mode().map_err(err)? & 0o7777,
            uid: h.uid().map_err(err)?,
            gid: h.gid().map_err(err)?,
            size: h.size().map_err(err)?,
            mtime: h.mtime().map_err(err)?,
            link: entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_rejects_escapes() {
        assert!(sanitize(b"/etc/passwd").is_err());
        assert!(sanitize(b"../x").is_err());
        assert!(sanitize(b"a/../../x").is_err());
        assert_eq!(
            sanitize(b"./a//b/./c/").unwrap(),
            vec![OsString::from("a"), OsString::from("b"), OsString::from("c")]
        );
        assert!(sanitize(b"./").unwrap().is_empty());
    }
}
