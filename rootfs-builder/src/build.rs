//! Laying out a minimal root filesystem around busybox.
//!
//! busybox is one executable that implements hundreds of commands ("applets"):
//! it looks at the name it was started under (`argv[0]`), so `/bin/sh` and
//! `/bin/ls` can simply be symlinks to `/bin/busybox`. Add the mount points the
//! kernel's pseudo filesystems expect (`/proc`, `/sys`, `/dev`), a writable
//! `/tmp`, and the few `/etc` files programs read (`passwd`, `group`,
//! `hostname`, `hosts`), and you have a tree a container can use as `/`.
//!
//! If the busybox is dynamically linked, that is not enough: `execve` inside
//! the new root fails with ENOENT ("No such file or directory") because the
//! kernel cannot find the program interpreter named in `PT_INTERP`. Copying
//! the interpreter and libraries ([`copy_libraries`]) fixes it.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use nix::sys::stat::{self, Mode, SFlag};

use crate::elf;
use crate::libs::{self, LibFile, LibSearch};
use crate::{running_as_root, Error, IoContext};

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsSpec {
    /// The busybox binary on the host to install as `/bin/busybox`.
    pub busybox: PathBuf,
    /// Also copy the interpreter and shared libraries busybox needs.
    pub copy_libraries: bool,
    /// Written to `/etc/hostname` and `/etc/hosts`.
    pub hostname: String,
}

impl Default for RootfsSpec {
    fn default() -> Self {
        RootfsSpec {
            busybox: PathBuf::from("/bin/busybox"),
            copy_libraries: false,
            hostname: "workbench".to_string(),
        }
    }
}

/// What was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    /// The destination directory.
    pub root: PathBuf,
    /// Whether the installed busybox has a `PT_INTERP` (needs a loader).
    pub busybox_dynamic: bool,
    /// Applet paths relative to the root, as listed by `busybox --list-full`
    /// (`bin/sh`, `usr/bin/awk`, ...), sorted. Each is a symlink to busybox.
    pub applets: Vec<String>,
    /// The libraries copied in (empty unless `copy_libraries`).
    pub libraries: Vec<LibFile>,
}

/// Directories created in every rootfs, with their modes. `/tmp` is 1777:
/// writable by everyone, with the sticky bit so users can only delete their
/// own files. `/proc` and `/sys` are only mount points.
const DIRS: &[(&str, u32)] = &[
    ("bin", 0o755),
    ("sbin", 0o755),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("etc", 0o755),
    ("tmp", 0o1777),
    ("root", 0o700),
    ("var", 0o755),
    ("var/run", 0o755),
];

/// The basic character devices: (name, major, minor). Any process may read and
/// write them (mode 0666).
const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Build a busybox rootfs at `dest`, which must not exist or be an empty
/// directory. Device nodes in `/dev` are created only when running as root
/// (and silently skipped if even root may not `mknod`, e.g. in a user
/// namespace); later lessons usually mount a tmpfs on `/dev` anyway.
pub fn build_rootfs(spec: &RootfsSpec, dest: &Path) -> Result<BuildReport, Error> {
    // Check the inputs before touching `dest`, so a wrong busybox path does
    // not leave a half-built tree behind.
    check_hostname(&spec.hostname, dest)?;
    let busybox_dynamic = elf::is_dynamic(&spec.busybox)?;
    let applet_paths = applets(&spec.busybox)?;
    prepare_dest(dest)?;

    for (dir, mode) in DIRS {
        make_dir(&dest.join(dir), *mode)?;
    }

    // The one real binary.
    let installed = dest.join("bin/busybox");
    fs::copy(&spec.busybox, &installed).map_err(|e| Error::io("copy", &spec.busybox, e))?;
    chmod(&installed, 0o755)?;

    // Applet links, e.g. usr/bin/awk -> ../../bin/busybox.
    for applet in &applet_paths {
        let rel = Path::new(applet);
        let link = dest.join(rel);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).ctx("create dir", parent)?;
        }
        if fs::symlink_metadata(&link).is_ok() {
            continue; // listed twice
        }
        symlink(relative_target(rel), &link).ctx("symlink", &link)?;
    }

    write_etc(dest, &spec.hostname)?;
    if running_as_root() {
        make_devices(&dest.join("dev"))?;
    }

    let libraries = if spec.copy_libraries {
        copy_libraries(&spec.busybox, dest, &LibSearch::host())?
    } else {
        Vec::new()
    };

    Ok(BuildReport {
        root: dest.to_path_buf(),
        busybox_dynamic,
        applets: applet_paths,
        libraries,
    })
}

/// Copy the interpreter and every library `binary_on_host` needs into
/// `rootfs`, each at its [`LibFile::path_in_rootfs`] (file contents, mode
/// preserved; symlinks on the host are resolved). Directories are created as
/// needed; symlinked directories already in `rootfs` are followed *inside*
/// `rootfs`. Returns what was copied. A static binary copies nothing.
pub fn copy_libraries(binary_on_host: &Path, rootfs: &Path, search: &LibSearch) -> Result<Vec<LibFile>, Error> {
    let libraries = libs::resolve(binary_on_host, search)?;
    for lib in &libraries {
        let parent = lib.path_in_rootfs.parent().unwrap_or(Path::new("/"));
        let dir = ensure_dir_in_root(rootfs, parent)?;
        let file_name = lib
            .path_in_rootfs
            .file_name()
            .ok_or_else(|| Error::invalid("copy library", &lib.path_in_rootfs, "no file name"))?;
        let target = dir.join(file_name);
        // Never write through an existing symlink: replace it.
        if fs::symlink_metadata(&target).is_ok() {
            fs::remove_file(&target).ctx("remove", &target)?;
        }
        fs::copy(&lib.host_source, &target).ctx("copy library to", &target)?;
    }
    Ok(libraries)
}

/// The applets `busybox` implements, as paths relative to `/`
/// (`bin/sh`, `sbin/ip`, `usr/bin/awk`), sorted, from `busybox --list-full`.
/// Older builds without `--list-full` fall back to `--list`, placing every
/// applet in `bin/`. `bin/busybox` itself is left out. This runs the binary
/// on the host.
pub fn applets(busybox: &Path) -> Result<Vec<String>, Error> {
    let mut list = match run_list(busybox, "--list-full")? {
        Some(out) => out.lines().map(str::trim).map(str::to_string).collect::<Vec<_>>(),
        None => match run_list(busybox, "--list")? {
            Some(out) => out.lines().map(|a| format!("bin/{}", a.trim())).collect(),
            None => {
                return Err(Error::invalid(
                    "list applets of",
                    busybox,
                    "neither --list-full nor --list succeeded; is this busybox?",
                ))
            }
        },
    };
    // Some builds list `bin/busybox` itself: that is the binary, not a link.
    list.retain(|a| !a.is_empty() && !a.ends_with('/') && a != "bin/busybox");
    for a in &list {
        let ok = Path::new(a).components().all(|c| matches!(c, Component::Normal(_)));
        if !ok {
            return Err(Error::invalid(
                "list applets of",
                busybox,
                format!("unsafe applet path {a:?}"),
            ));
        }
    }
    list.sort();
    list.dedup();
    if list.is_empty() {
        return Err(Error::invalid(
            "list applets of",
            busybox,
            "no applets listed; is this busybox?",
        ));
    }
    Ok(list)
}

/// Run `busybox FLAG`; `Ok(None)` if it exits unsuccessfully.
fn run_list(busybox: &Path, flag: &str) -> Result<Option<String>, Error> {
    let out = Command::new(busybox).arg(flag).output().ctx("run", busybox)?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// The symlink target that reaches `/bin/busybox` from the applet at `rel`,
/// relative so the tree also works when inspected from the host:
/// `bin/sh` -> `busybox`, `usr/bin/awk` -> `../../bin/busybox`.
fn relative_target(rel: &Path) -> PathBuf {
    let depth = rel.components().count().saturating_sub(1);
    if rel.parent() == Some(Path::new("bin")) {
        return PathBuf::from("busybox");
    }
    let mut target = PathBuf::new();
    for _ in 0..depth {
        target.push("..");
    }
    target.join("bin/busybox")
}

fn check_hostname(name: &str, dest: &Path) -> Result<(), Error> {
    let valid =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "build rootfs",
            dest,
            format!("invalid hostname {name:?}: use 1-64 letters, digits, '-' or '.'"),
        ))
    }
}

/// `dest` must not exist, or be an empty directory.
fn prepare_dest(dest: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).ctx("create dir", dest)?;
        }
        Err(e) => return Err(Error::io("stat", dest, e)),
        Ok(m) if !m.is_dir() => return Err(Error::invalid("build rootfs", dest, "exists and is not a directory")),
        Ok(_) => {
            if fs::read_dir(dest).ctx("read dir", dest)?.next().is_some() {
                return Err(Error::invalid("build rootfs", dest, "destination is not empty"));
            }
        }
    }
    chmod(dest, 0o755)
}

/// Create a directory (and parents) and set its exact mode, ignoring umask.
fn make_dir(path: &Path, mode: u32) -> Result<(), Error> {
    fs::create_dir_all(path).ctx("create dir", path)?;
    chmod(path, mode)
}

fn chmod(path: &Path, mode: u32) -> Result<(), Error> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).ctx("chmod", path)
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), Error> {
    fs::write(path, contents).ctx("write", path)?;
    chmod(path, mode)
}

/// The minimal `/etc`: a root user whose shell is busybox's `sh`, and the
/// names `localhost` and the hostname resolving to loopback addresses.
fn write_etc(dest: &Path, hostname: &str) -> Result<(), Error> {
    let etc = dest.join("etc");
    write_file(
        &etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    )?;
    write_file(&etc.join("group"), "root:x:0:\nnobody:x:65534:\n", 0o644)?;
    write_file(&etc.join("hostname"), &format!("{hostname}\n"), 0o644)?;
    write_file(
        &etc.join("hosts"),
        &format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"),
        0o644,
    )
}

/// mknod the basic devices. EPERM (no CAP_MKNOD, e.g. in a user namespace)
/// means "not allowed here": skip quietly, as documented.
fn make_devices(dev: &Path) -> Result<(), Error> {
    for (name, major, minor) in DEVICES {
        let path = dev.join(name);
        if fs::symlink_metadata(&path).is_ok() {
            continue;
        }
        match stat::mknod(
            &path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            stat::makedev(*major, *minor),
        ) {
            Ok(()) => chmod(&path, 0o666)?,
            Err(nix::errno::Errno::EPERM) => return Ok(()),
            Err(e) => return Err(Error::io("mknod", &path, e.into())),
        }
    }
    Ok(())
}

/// Make sure the absolute directory `dir` exists inside `rootfs` and return
/// its host path. Missing components are created (0755); symlinks already in
/// the tree (say `lib -> usr/lib`, or even `lib -> /usr/lib`) are followed as
/// if `rootfs` were `/`, so nothing is ever created outside `rootfs`.
fn ensure_dir_in_root(rootfs: &Path, dir: &Path) -> Result<PathBuf, Error> {
    let mut resolved = PathBuf::from("/");
    for comp in dir.components() {
        let Component::Normal(part) = comp else {
            continue;
        };
        let next = resolved.join(part);
        let host = rootfs.join(libs::strip_root(&next));
        match fs::symlink_metadata(&host) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                make_dir(&host, 0o755)?;
                resolved = next;
            }
            Err(e) => return Err(Error::io("stat", &host, e)),
            Ok(m) if m.file_type().is_symlink() => {
                let in_root = LibSearch::with_dirs(rootfs, Vec::<PathBuf>::new());
                let real = in_root.host_path(&next).ctx("resolve", &host)?;
                if !fs::metadata(&real).ctx("stat", &real)?.is_dir() {
                    return Err(Error::invalid("create dir", &host, "not a directory"));
                }
                resolved = Path::new("/").join(real.strip_prefix(rootfs).unwrap_or(&real));
            }
            Ok(m) if m.is_dir() => resolved = next,
            Ok(_) => return Err(Error::invalid("create dir", &host, "not a directory")),
        }
    }
    Ok(rootfs.join(libs::strip_root(&resolved)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applet_link_targets_are_relative() {
        assert_eq!(relative_target(Path::new("bin/sh")), PathBuf::from("busybox"));
        assert_eq!(relative_target(Path::new("sbin/ip")), PathBuf::from("../bin/busybox"));
        assert_eq!(
            relative_target(Path::new("usr/bin/awk")),
            PathBuf::from("../../bin/busybox")
        );
        assert_eq!(relative_target(Path::new("linuxrc")), PathBuf::from("bin/busybox"));
    }

    #[test]
    fn hostnames_are_checked() {
        let d = Path::new("/x");
        assert!(check_hostname("wb-box.local", d).is_ok());
        assert!(check_hostname("", d).is_err());
        let e = check_hostname("a b", d).unwrap_err().to_string();
        assert!(e.starts_with("build rootfs /x: invalid hostname \"a b\""), "{e}");
    }

    #[test]
    fn ensure_dir_follows_symlinks_inside_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("usr/lib")).unwrap();
        // An absolute link must resolve inside r, not to the host's /usr/lib.
        symlink("/usr/lib", r.join("lib")).unwrap();
        let got = ensure_dir_in_root(r, Path::new("/lib/x86_64-linux-gnu")).unwrap();
        assert_eq!(got, r.join("usr/lib/x86_64-linux-gnu"));
        assert!(got.is_dir());
        let got = ensure_dir_in_root(r, Path::new("/lib64")).unwrap();
        assert_eq!(got, r.join("lib64"));
    }
}
