//! Packing a root filesystem as a tar archive, the format of image layers.
//!
//! A tar archive is a sequence of 512-byte headers, each followed by the file's
//! data. A header records the path, the type (file, directory, symlink, hard
//! link, character/block device, fifo), the permission bits, the mtime and the
//! owner as *numbers* (uid/gid) plus optional user/group *names*. Container
//! images use numeric owners only: the name `root` means nothing until the
//! container's own `/etc/passwd` is in place, and inside a user namespace uid 0
//! may map to an unprivileged uid on the host.
//!
//! [`pack_tar`] writes entries sorted by name, depth first, so that the same
//! tree always gives the same bytes, and so that every directory precedes
//! its contents. A file with several names (a hard link, `st_nlink > 1`) is
//! stored once and its other names become tar hard-link entries.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use nix::sys::stat::{self, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::{EntryType, Header, HeaderMode};

use crate::{running_as_root, Error, IoContext};

/// Write the tree under `root` as an uncompressed tar to `out` and return
/// `out`. Paths are relative to `root` (`bin/busybox`); `root` itself is not
/// an entry. Owners are numeric with empty user/group names. Sockets cannot be
/// represented in tar and are skipped.
pub fn pack_tar<W: Write>(root: &Path, out: W) -> Result<W, Error> {
    let meta = fs::symlink_metadata(root).ctx("pack", root)?;
    if !meta.is_dir() {
        return Err(Error::invalid("pack", root, "not a directory"));
    }
    let mut builder = tar::Builder::new(out);
    let mut seen_inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    append_dir_contents(&mut builder, root, Path::new(""), &mut seen_inodes)?;
    builder.into_inner().ctx("write tar for", root)
}

/// [`pack_tar`] through gzip (`.tar.gz`). The gzip header carries no mtime or
/// file name, so the output stays deterministic.
pub fn pack_tar_gz<W: Write>(root: &Path, out: W) -> Result<W, Error> {
    let encoder = GzEncoder::new(out, Compression::default());
    pack_tar(root, encoder)?.finish().ctx("write gzip for", root)
}

/// Append every entry below `dir` (the host directory for the relative path
/// `rel`), sorted by file name, recursing into subdirectories.
fn append_dir_contents<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &Path,
    rel: &Path,
    seen_inodes: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), Error> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .ctx("read dir", dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .ctx("read dir", dir)?;
    names.sort();
    for name in names {
        let host = dir.join(&name);
        let rel = rel.join(&name);
        let meta = fs::symlink_metadata(&host).ctx("stat", &host)?;
        append_entry(builder, &host, &rel, &meta, seen_inodes)?;
        if meta.is_dir() {
            append_dir_contents(builder, &host, &rel, seen_inodes)?;
        }
    }
    Ok(())
}

fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    host: &Path,
    rel: &Path,
    meta: &fs::Metadata,
    seen_inodes: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), Error> {
    // A GNU header starts zeroed: user and group *names* stay empty.
    let mut header = Header::new_gnu();
    // Complete mode = the real uid, gid, mtime and mode of the file.
    header.set_metadata_in_mode(meta, HeaderMode::Complete);
    header.set_mode(meta.mode() & 0o7777); // permission bits only, like GNU tar
    header.set_mtime(meta.mtime().max(0) as u64);
    header.set_size(0);
    let ft = meta.file_type();
    let write_err = |e| Error::io("write tar entry", host, e);

    // Second and later names of a multiply-linked inode become hard links.
    if !ft.is_dir() && meta.nlink() > 1 {
        let key = (meta.dev(), meta.ino());
        if let Some(first) = seen_inodes.get(&key) {
            header.set_entry_type(EntryType::Link);
            return builder.append_link(&mut header, rel, first).map_err(write_err);
        }
        seen_inodes.insert(key, rel.to_path_buf());
    }

    if ft.is_file() {
        header.set_size(meta.len());
        let file = fs::File::open(host).ctx("open", host)?;
        builder.append_data(&mut header, rel, file).map_err(write_err)
    } else if ft.is_symlink() {
        let target = fs::read_link(host).ctx("read link", host)?;
        builder.append_link(&mut header, rel, target).map_err(write_err)
    } else if ft.is_dir() || ft.is_fifo() {
        builder.append_data(&mut header, rel, io::empty()).map_err(write_err)
    } else if ft.is_char_device() || ft.is_block_device() {
        let rdev = meta.rdev();
        header.set_device_major(stat::major(rdev) as u32).map_err(write_err)?;
        header.set_device_minor(stat::minor(rdev) as u32).map_err(write_err)?;
        builder.append_data(&mut header, rel, io::empty()).map_err(write_err)
    } else {
        Ok(()) // a socket: tar has no type for it
    }
}

/// Unpack a tar stream into `dest` (created if missing). Modes and mtimes are
/// restored; numeric owners too when running as root (otherwise files belong
/// to the caller, as `chown` to other ids needs privilege). Device nodes need
/// root as well. Entries that are absolute, contain `..`, or would be written
/// through a symlink are rejected: a malicious archive could otherwise
/// overwrite files outside `dest`.
pub fn unpack_tar<R: Read>(input: R, dest: &Path) -> Result<(), Error> {
    fs::create_dir_all(dest).ctx("create dir", dest)?;
    let as_root = running_as_root();
    let mut archive = tar::Archive::new(input);
    // Directory attributes are applied at the end, deepest first: a read-only
    // directory must stay writable while its contents are unpacked.
    let mut dirs: Vec<(PathBuf, Attrs)> = Vec::new();

    for entry in archive.entries().ctx("read tar into", dest)? {
        let mut entry = entry.ctx("read tar into", dest)?;
        let raw = entry.path().ctx("read tar into", dest)?.into_owned();
        let rel =
            safe_relative(&raw).ok_or_else(|| Error::invalid("unpack", &raw, "entry is absolute or contains `..`"))?;
        let target = dest.join(&rel);
        check_no_symlink_parents(dest, &rel, &raw)?;
        let header = entry.header();
        let attrs = Attrs {
            mode: header.mode().ctx("read tar header", &raw)? & 0o7777,
            uid: header.uid().ctx("read tar header", &raw)? as u32,
            gid: header.gid().ctx("read tar header", &raw)? as u32,
            mtime: header.mtime().ctx("read tar header", &raw)? as i64,
        };
        let kind = header.entry_type();
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).ctx("create dir", parent)?;
        }

        match kind {
            EntryType::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove_existing(&target)?;
                        fs::create_dir(&target).ctx("create dir", &target)?;
                    }
                    Err(_) => fs::create_dir(&target).ctx("create dir", &target)?,
                }
                dirs.push((target, attrs));
            }
            EntryType::Regular | EntryType::Continuous => {
                remove_existing(&target)?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&target)
                    .ctx("create", &target)?;
                io::copy(&mut entry, &mut file).ctx("write", &target)?;
                drop(file);
                apply_attrs(&target, attrs, as_root, false)?;
            }
            EntryType::Symlink => {
                let link = link_target(&entry, &raw, "symlink without target")?;
                remove_existing(&target)?;
                std::os::unix::fs::symlink(&link, &target).ctx("symlink", &target)?;
                apply_attrs(&target, attrs, as_root, true)?;
            }
            EntryType::Link => {
                let link = link_target(&entry, &raw, "hard link without target")?;
                let src_rel = safe_relative(&link)
                    .ok_or_else(|| Error::invalid("unpack", &raw, "hard link target escapes the destination"))?;
                check_no_symlink_parents(dest, &src_rel, &raw)?;
                remove_existing(&target)?;
                fs::hard_link(dest.join(&src_rel), &target).ctx("hard link", &target)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let sflag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let major = header.device_major().ctx("read tar header", &raw)?.unwrap_or(0);
                let minor = header.device_minor().ctx("read tar header", &raw)?.unwrap_or(0);
                remove_existing(&target)?;
                stat::mknod(
                    &target,
                    sflag,
                    Mode::from_bits_truncate(0o600),
                    stat::makedev(major as u64, minor as u64),
                )
                .ctx("mknod", &target)?;
                apply_attrs(&target, attrs, as_root, false)?;
            }
            // Pax global headers and the like carry no file.
            EntryType::XGlobalHeader | EntryType::XHeader => {}
            EntryType::GNULongName | EntryType::GNULongLink => {}
            other => {
                return Err(Error::invalid(
                    "unpack",
                    &raw,
                    format!("unsupported tar entry type {:?}", other),
                ))
            }
        }
    }

    dirs.sort_by(|a, b| b.0.cmp(&a.0)); // children before parents
    for (dir, attrs) in dirs {
        apply_attrs(&dir, attrs, as_root, false)?;
    }
    Ok(())
}

/// Metadata restored on each unpacked entry.
#[derive(Debug, Clone, Copy)]
struct Attrs {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

/// Owner first (chown clears set-uid bits), then mode, then mtime. Symlinks
/// get owner and mtime only: their mode is meaningless on Linux.
/// The target of a symlink or hard link entry (`raw`: its path, for errors);
/// `missing` is the error when the header has none.
fn link_target<R: Read>(entry: &tar::Entry<R>, raw: &Path, missing: &str) -> Result<PathBuf, Error> {
    Ok(entry
        .link_name()
        .ctx("read tar header", raw)?
        .ok_or_else(|| Error::invalid("unpack", raw, missing))?
        .into_owned())
}

fn apply_attrs(path: &Path, a: Attrs, as_root: bool, is_symlink: bool) -> Result<(), Error> {
    if as_root {
        std::os::unix::fs::lchown(path, Some(a.uid), Some(a.gid)).ctx("chown", path)?;
    }
    if !is_symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(a.mode)).ctx("chmod", path)?;
    }
    let t = TimeSpec::new(a.mtime, 0);
    stat::utimensat(nix::fcntl::AT_FDCWD, path, &t, &t, UtimensatFlags::NoFollowSymlink).ctx("set mtime", path)
}

/// The path as a plain relative path (`./a/b` -> `a/b`), or `None` if it is
/// absolute or contains `..`. An empty result means the archive root itself.
fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Refuse to write `rel` if one of its parent directories inside `dest` is a
/// symlink: an archive holding `x -> /etc` then `x/passwd` must not reach the
/// host's `/etc/passwd`.
fn check_no_symlink_parents(dest: &Path, rel: &Path, entry: &Path) -> Result<(), Error> {
    let mut prefix = dest.to_path_buf();
    let mut parts = rel.components().peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            break; // the entry itself may be replaced
        }
        prefix.push(part);
        if let Ok(m) = fs::symlink_metadata(&prefix) {
            if m.file_type().is_symlink() {
                return Err(Error::invalid(
                    "unpack",
                    entry,
                    format!("parent {} is a symlink", prefix.display()),
                ));
            }
        }
    }
    Ok(())
}

/// Remove a non-directory (or empty directory) in the way of a new entry.
fn remove_existing(path: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir(path).ctx("remove dir", path),
        Ok(_) => fs::remove_file(path).ctx("remove", path),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_relative_paths() {
        assert_eq!(safe_relative(Path::new("./bin/sh")), Some(PathBuf::from("bin/sh")));
        assert_eq!(safe_relative(Path::new("bin/")), Some(PathBuf::from("bin")));
        assert_eq!(safe_relative(Path::new("./")), Some(PathBuf::new()));
        assert_eq!(safe_relative(Path::new("/etc/passwd")), None);
        assert_eq!(safe_relative(Path::new("a/../../etc")), None);
        assert_eq!(safe_relative(Path::new("a/../b")), None);
    }
}
