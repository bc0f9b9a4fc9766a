//! Finding shared libraries the way the dynamic loader does.
//!
//! For each `DT_NEEDED` name (a *soname* like `libc.so.6`) the glibc loader
//! tries, in order: the `DT_RPATH` directories of the object that needs it
//! (only if that object has no `DT_RUNPATH`) and of the executable, then the
//! object's `DT_RUNPATH`, then the directories listed in `/etc/ld.so.conf`
//! (through the `/etc/ld.so.cache` that `ldconfig` builds), then built-in
//! defaults such as `/lib/x86_64-linux-gnu` and `/usr/lib`. `$ORIGIN` in a
//! search path means "the directory of the object being loaded". A candidate
//! whose ELF class or machine differs (a 32-bit `libc.so.6`, say) is skipped.
//!
//! Every library found can itself have `DT_NEEDED` entries, so the full set is
//! a transitive closure. To make a dynamic binary run inside a new root, each
//! of these files must exist there *at the path the loader will look it up*,
//! which is what [`LibFile::path_in_rootfs`] records.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use crate::elf::{self, ElfKind};
use crate::Error;

/// Where to look for libraries: a list of absolute directories, interpreted
/// inside `root` (which is `/` for the running host, or a fixture tree in
/// tests). Symlinks met under `root` are resolved inside `root` too, like
/// they would be after a `chroot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibSearch {
    dirs: Vec<PathBuf>,
    root: PathBuf,
}

/// One file a dynamic binary needs at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibFile {
    /// The soname as written in `DT_NEEDED` (`libc.so.6`), or the full
    /// interpreter path from `PT_INTERP` (`/lib64/ld-linux-x86-64.so.2`).
    pub name: String,
    /// The absolute path at which the binary (or its loader) will look the
    /// file up, e.g. `/lib/x86_64-linux-gnu/libc.so.6`. Copy the file here
    /// inside a rootfs.
    pub path_in_rootfs: PathBuf,
    /// The real file on the host, with every symlink resolved.
    pub host_source: PathBuf,
}

impl LibSearch {
    /// The search path of the running host: the directories from
    /// `/etc/ld.so.conf` (following its `include` globs), then the default
    /// directories for the running architecture.
    pub fn host() -> LibSearch {
        LibSearch::from_root(Path::new("/"))
    }

    /// Like [`LibSearch::host`] but for the system installed under `root`:
    /// reads `root/etc/ld.so.conf`. A missing or unreadable configuration
    /// just leaves the default directories.
    pub fn from_root(root: &Path) -> LibSearch {
        let mut dirs = Vec::new();
        read_ld_so_conf(root, Path::new("/etc/ld.so.conf"), 0, &mut dirs);
        dirs.extend(default_dirs());
        LibSearch::with_dirs(root, dirs)
    }

    /// An explicit search path (absolute directories inside `root`), mostly
    /// for tests. Duplicates are removed, keeping the first occurrence.
    pub fn with_dirs<R, I, D>(root: R, dirs: I) -> LibSearch
    where
        R: Into<PathBuf>,
        I: IntoIterator<Item = D>,
        D: Into<PathBuf>,
    {
        let mut seen = HashSet::new();
        let dirs = dirs
            .into_iter()
            .map(Into::into)
            .filter(|d: &PathBuf| seen.insert(d.clone()))
            .collect();
        LibSearch {
            dirs,
            root: root.into(),
        }
    }

    /// The directories searched after rpath/runpath, in order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The tree the directories are interpreted in (`/` for the host).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolve the absolute `path` inside `root`, following symlinks inside
    /// `root`, and return the real host path.
    pub fn host_path(&self, path: &Path) -> io::Result<PathBuf> {
        let logical = resolve_in_root(&self.root, path)?;
        Ok(self.root.join(strip_root(&logical)))
    }
}

/// The multiarch directories Debian/Ubuntu use for the architecture this
/// program was built for, then the classic ones.
fn default_dirs() -> Vec<PathBuf> {
    let triplet = if cfg!(target_arch = "x86_64") {
        Some("x86_64-linux-gnu")
    } else if cfg!(target_arch = "aarch64") {
        Some("aarch64-linux-gnu")
    } else if cfg!(target_arch = "x86") {
        Some("i386-linux-gnu")
    } else if cfg!(target_arch = "arm") {
        Some("arm-linux-gnueabihf")
    } else if cfg!(target_arch = "riscv64") {
        Some("riscv64-linux-gnu")
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        Some("powerpc64le-linux-gnu")
    } else if cfg!(target_arch = "s390x") {
        Some("s390x-linux-gnu")
    } else {
        None
    };
    let mut dirs = Vec::new();
    if let Some(t) = triplet {
        dirs.push(PathBuf::from(format!("/lib/{t}")));
        dirs.push(PathBuf::from(format!("/usr/lib/{t}")));
    }
    for d in ["/lib64", "/usr/lib64", "/lib", "/usr/lib"] {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

/// One meaningful line of an `ld.so.conf` file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConfLine {
    /// `include /etc/ld.so.conf.d/*.conf` (one entry per pattern).
    Include(String),
    /// A library directory.
    Dir(PathBuf),
}

/// Parse the text of an `ld.so.conf`: `#` comments, `include PATTERN...`
/// lines, `hwcap` lines (ignored) and directories (several per line may be
/// separated by spaces, tabs, colons or commas; relative ones are ignored,
/// as ldconfig does).
fn parse_ld_so_conf(text: &str) -> Vec<ConfLine> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("include") => out.extend(words.map(|p| ConfLine::Include(p.to_string()))),
            Some("hwcap") => {}
            _ => out.extend(
                line.split(|c: char| c.is_whitespace() || c == ':' || c == ',')
                    .filter(|d| d.starts_with('/'))
                    .map(|d| ConfLine::Dir(PathBuf::from(d))),
            ),
        }
    }
    out
}

/// Read `conf` (an absolute path inside `root`) and append its directories to
/// `out`, recursing into includes. Errors are ignored: a broken config must
/// not stop us from using the default directories.
fn read_ld_so_conf(root: &Path, conf: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    if depth > 8 {
        return; // an include loop
    }
    let Ok(text) = fs::read_to_string(root.join(strip_root(conf))) else {
        return;
    };
    for line in parse_ld_so_conf(&text) {
        match line {
            ConfLine::Dir(d) => out.push(d),
            ConfLine::Include(pattern) => {
                // Relative include patterns are relative to the including file.
                let pattern = match Path::new(&pattern).is_absolute() {
                    true => PathBuf::from(pattern),
                    false => conf.parent().unwrap_or(Path::new("/")).join(pattern),
                };
                for file in expand_glob(root, &pattern) {
                    read_ld_so_conf(root, &file, depth + 1, out);
                }
            }
        }
    }
}

/// Expand a glob pattern with `*` and `?` (in any component) against the
/// tree under `root`. Results are sorted, like glob(3).
fn expand_glob(root: &Path, pattern: &Path) -> Vec<PathBuf> {
    let mut current = vec![PathBuf::from("/")];
    for comp in pattern.components() {
        let Component::Normal(part) = comp else {
            continue;
        };
        let part = part.to_string_lossy();
        if !part.contains(['*', '?']) {
            current.iter_mut().for_each(|p| p.push(&*part));
            continue;
        }
        let mut next = Vec::new();
        for dir in &current {
            let Ok(entries) = fs::read_dir(root.join(strip_root(dir))) else {
                continue;
            };
            let mut names: Vec<OsString> = entries
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .filter(|n| glob_match(&part, &n.to_string_lossy()))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        current = next;
    }
    current
        .into_iter()
        .filter(|p| root.join(strip_root(p)).exists())
        .collect()
}

/// Shell-style match of `*` (any run) and `?` (one character). As in glob(3),
/// a leading `.` in `name` must be matched literally.
fn glob_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// `/a/b` -> `a/b`, so that `root.join(...)` stays under `root`.
pub(crate) fn strip_root(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

/// Resolve every symlink in the absolute `path` as if `root` were `/`
/// (absolute link targets and `..` cannot leave `root`). Returns the resolved
/// absolute path *inside* root. Fails like the kernel would: ENOENT for a
/// missing component, ELOOP after 40 links.
fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut resolved = PathBuf::from("/");
    let mut pending: VecDeque<OsString> = components(path);
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let on_host = root.join(strip_root(&candidate));
        let meta = fs::symlink_metadata(&on_host)?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > 40 {
                return Err(io::Error::from_raw_os_error(nix::libc::ELOOP));
            }
            let target = fs::read_link(&on_host)?;
            if target.is_absolute() {
                resolved = PathBuf::from("/");
            }
            for c in components(&target).into_iter().rev() {
                pending.push_front(c);
            }
        } else {
            resolved = candidate;
        }
    }
    Ok(resolved)
}

/// The `Normal` and `..` components of a path (`.` and `/` dropped).
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// What the search needs to know about an object whose `DT_NEEDED` entries
/// are being resolved.
struct Loader {
    /// For error messages: the binary's host path or the library's rootfs path.
    shown_as: PathBuf,
    /// The directory `$ORIGIN` stands for (inside the root).
    origin: PathBuf,
    runpath: Vec<String>,
    rpath: Vec<String>,
}

/// The interpreter and the transitive closure of `DT_NEEDED` for `binary`
/// (a path on the host), in a deterministic order: the interpreter first, then
/// libraries breadth-first in `DT_NEEDED` order. Each soname appears once; a
/// `DT_NEEDED` naming the interpreter (glibc's `libc.so.6` needs
/// `ld-linux-x86-64.so.2`) is satisfied by the interpreter, as at run time.
/// A static binary yields an empty list.
pub fn resolve(binary: &Path, search: &LibSearch) -> Result<Vec<LibFile>, Error> {
    let needs = elf::read_needs(binary)?;
    let kind = elf::read_kind(binary)?;
    let mut found = Vec::new();
    let mut loaded: HashSet<String> = HashSet::new();

    if let Some(interp) = &needs.interpreter {
        let host_source = search.host_path(interp).map_err(|_| Error::LibraryNotFound {
            name: interp.display().to_string(),
            needed_by: binary.to_path_buf(),
            searched: search.root.display().to_string(),
        })?;
        if let Some(file_name) = interp.file_name() {
            loaded.insert(file_name.to_string_lossy().into_owned());
        }
        found.push(LibFile {
            name: interp.display().to_string(),
            path_in_rootfs: interp.clone(),
            host_source,
        });
    }

    // $ORIGIN of the executable: its directory, seen from inside the root.
    let absolute = std::path::absolute(binary).unwrap_or_else(|_| binary.to_path_buf());
    let exe_dir = absolute.parent().unwrap_or(Path::new("/"));
    let exe_origin = match exe_dir.strip_prefix(&search.root) {
        Ok(rel) => Path::new("/").join(rel),
        Err(_) => exe_dir.to_path_buf(),
    };
    let exe = Rc::new(Loader {
        shown_as: binary.to_path_buf(),
        origin: exe_origin,
        runpath: needs.runpath,
        rpath: needs.rpath,
    });

    let mut queue: VecDeque<(String, Rc<Loader>)> = needs.needed.into_iter().map(|n| (n, exe.clone())).collect();
    while let Some((name, loader)) = queue.pop_front() {
        if loaded.contains(&name) {
            continue;
        }
        let lib = find_library(&name, &loader, &exe, search, kind)?;
        loaded.insert(name);
        let lib_needs = elf::read_needs(&lib.host_source)?;
        let lib_loader = Rc::new(Loader {
            shown_as: lib.path_in_rootfs.clone(),
            origin: lib.path_in_rootfs.parent().unwrap_or(Path::new("/")).to_path_buf(),
            runpath: lib_needs.runpath,
            rpath: lib_needs.rpath,
        });
        queue.extend(lib_needs.needed.into_iter().map(|n| (n, lib_loader.clone())));
        found.push(lib);
    }
    Ok(found)
}

/// Look one soname up for `loader`, following the glibc search order.
fn find_library(
    name: &str,
    loader: &Loader,
    exe: &Loader,
    search: &LibSearch,
    kind: ElfKind,
) -> Result<LibFile, Error> {
    // A name with a slash is a path, used as is (no search).
    if name.contains('/') {
        let path = PathBuf::from(name);
        return match candidate(&path, search, kind) {
            Some(host_source) => Ok(LibFile {
                name: name.to_string(),
                path_in_rootfs: path,
                host_source,
            }),
            None => Err(Error::LibraryNotFound {
                name: name.to_string(),
                needed_by: loader.shown_as.clone(),
                searched: search.root.display().to_string(),
            }),
        };
    }

    let mut dirs: Vec<PathBuf> = Vec::new();
    if loader.runpath.is_empty() {
        // DT_RPATH of the loading object, then of the executable (inherited).
        dirs.extend(expand_origin(&loader.rpath, &loader.origin));
        if !std::ptr::eq(loader, exe) && exe.runpath.is_empty() {
            dirs.extend(expand_origin(&exe.rpath, &exe.origin));
        }
    }
    dirs.extend(expand_origin(&loader.runpath, &loader.origin));
    dirs.extend(search.dirs.iter().cloned());

    let mut searched: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        if searched.contains(&dir) {
            continue;
        }
        let path = dir.join(name);
        searched.push(dir);
        if let Some(host_source) = candidate(&path, search, kind) {
            return Ok(LibFile {
                name: name.to_string(),
                path_in_rootfs: path,
                host_source,
            });
        }
    }
    Err(Error::LibraryNotFound {
        name: name.to_string(),
        needed_by: loader.shown_as.clone(),
        searched: searched
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The real host file for `path` if it exists, is a regular file and is an
/// ELF object of the same class, byte order and machine as the binary.
fn candidate(path: &Path, search: &LibSearch, kind: ElfKind) -> Option<PathBuf> {
    let host = search.host_path(path).ok()?;
    if !fs::metadata(&host).ok()?.is_file() {
        return None;
    }
    match elf::read_kind(&host) {
        Ok(k) if k == kind => Some(host),
        _ => None,
    }
}

/// Replace `$ORIGIN` / `${ORIGIN}` by `origin`; keep only absolute results
/// (relative rpath entries depend on the current directory: ignored here).
fn expand_origin(entries: &[String], origin: &Path) -> Vec<PathBuf> {
    let origin = origin.to_string_lossy();
    entries
        .iter()
        .map(|e| e.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin))
        .filter(|e| e.starts_with('/'))
        .map(|e| normalize(Path::new(&e)))
        .collect()
}

/// Lexically clean an absolute path (`/a/b/../c` -> `/a/c`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::tests::{present, DYNAMIC_BUSYBOX, STATIC_BUSYBOX};
    use std::os::unix::fs::symlink;

    #[test]
    fn parses_ld_so_conf_lines() {
        let text = "# comment\ninclude /etc/ld.so.conf.d/*.conf\n\n/usr/local/lib  # trailing\n\
                    hwcap 0 nosegneg\n/opt/a:/opt/b, /opt/c relative\ninclude x.conf y.conf\n";
        assert_eq!(
            parse_ld_so_conf(text),
            vec![
                ConfLine::Include("/etc/ld.so.conf.d/*.conf".into()),
                ConfLine::Dir("/usr/local/lib".into()),
                ConfLine::Dir("/opt/a".into()),
                ConfLine::Dir("/opt/b".into()),
                ConfLine::Dir("/opt/c".into()),
                ConfLine::Include("x.conf".into()),
                ConfLine::Include("y.conf".into()),
            ]
        );
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match("*.conf", "libc.conf"));
        assert!(glob_match("x?.conf", "x1.conf"));
        assert!(!glob_match("*.conf", "libc.conf.bak"));
        assert!(!glob_match("*.conf", ".hidden.conf"));
        assert!(glob_match("*", "a"));
        assert!(!glob_match("a?", "a"));
    }

    #[test]
    fn ld_so_conf_includes_are_followed_in_sorted_order() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        fs::create_dir_all(etc.join("ld.so.conf.d")).unwrap();
        fs::write(etc.join("ld.so.conf"), "/first\ninclude ld.so.conf.d/*.conf\n/last\n").unwrap();
        fs::write(etc.join("ld.so.conf.d/b.conf"), "/from-b\n").unwrap();
        fs::write(etc.join("ld.so.conf.d/a.conf"), "/from-a\n# /not-this\n").unwrap();
        fs::write(etc.join("ld.so.conf.d/c.disabled"), "/not-this-either\n").unwrap();
        let search = LibSearch::from_root(root.path());
        let dirs: Vec<_> = search.dirs().iter().map(|d| d.to_str().unwrap()).collect();
        assert_eq!(&dirs[..4], &["/first", "/from-a", "/from-b", "/last"]);
        assert!(dirs.contains(&"/usr/lib"));
        assert!(!dirs.contains(&"/not-this-either"));
    }

    #[test]
    fn host_search_includes_multiarch_defaults() {
        let search = LibSearch::host();
        assert_eq!(search.root(), Path::new("/"));
        assert!(search.dirs().contains(&PathBuf::from("/usr/lib")));
        if cfg!(target_arch = "x86_64") {
            assert!(search.dirs().contains(&PathBuf::from("/lib/x86_64-linux-gnu")));
        }
    }

    #[test]
    fn symlinks_resolve_inside_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("usr/lib/real")).unwrap();
        fs::write(r.join("usr/lib/real/libx.so.1.2"), b"x").unwrap();
        // Absolute targets are relative to the root, not to the host's `/`.
        symlink("/usr/lib", r.join("lib")).unwrap();
        symlink("real/libx.so.1.2", r.join("usr/lib/libx.so.1")).unwrap();
        symlink("../../usr/lib/real", r.join("usr/lib/up")).unwrap();
        let search = LibSearch::with_dirs(r, ["/lib"]);
        assert_eq!(
            search.host_path(Path::new("/lib/libx.so.1")).unwrap(),
            r.join("usr/lib/real/libx.so.1.2")
        );
        assert_eq!(
            search.host_path(Path::new("/usr/lib/up/libx.so.1.2")).unwrap(),
            r.join("usr/lib/real/libx.so.1.2")
        );
        // A loop fails with ELOOP, a missing file with ENOENT.
        symlink("loop", r.join("loop")).unwrap();
        let e = search.host_path(Path::new("/loop")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(nix::libc::ELOOP));
        let e = search.host_path(Path::new("/lib/nope")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn origin_is_expanded_and_normalized() {
        let got = expand_origin(
            &["$ORIGIN/../lib".into(), "${ORIGIN}".into(), "relative".into()],
            Path::new("/opt/app/bin"),
        );
        assert_eq!(got, vec![PathBuf::from("/opt/app/lib"), PathBuf::from("/opt/app/bin")]);
    }

    #[test]
    fn resolves_dynamic_busybox_on_host() {
        if !present(DYNAMIC_BUSYBOX) {
            return;
        }
        let libs = resolve(Path::new(DYNAMIC_BUSYBOX), &LibSearch::host()).unwrap();
        // The interpreter comes first, at the path written in PT_INTERP.
        assert_eq!(libs[0].name, "/lib64/ld-linux-x86-64.so.2");
        assert_eq!(libs[0].path_in_rootfs, Path::new("/lib64/ld-linux-x86-64.so.2"));
        // On Debian /lib64/ld-linux-x86-64.so.2 is a symlink: the source is the real file.
        assert!(!fs::symlink_metadata(&libs[0].host_source).unwrap().is_symlink());
        let libc = libs.iter().find(|l| l.name == "libc.so.6").expect("libc.so.6 resolved");
        assert!(libc.path_in_rootfs.ends_with("libc.so.6"));
        assert!(libc.path_in_rootfs.is_absolute());
        assert!(fs::metadata(&libc.host_source).unwrap().is_file());
        // libc's own DT_NEEDED ld-linux-x86-64.so.2 is satisfied by the interpreter.
        assert_eq!(libs.iter().filter(|l| l.name.contains("ld-linux")).count(), 1);
        // Each soname only once, and the order is stable.
        let names: HashSet<_> = libs.iter().map(|l| &l.name).collect();
        assert_eq!(names.len(), libs.len());
        assert_eq!(libs, resolve(Path::new(DYNAMIC_BUSYBOX), &LibSearch::host()).unwrap());
    }

    #[test]
    fn static_binary_needs_nothing() {
        if !present(STATIC_BUSYBOX) {
            return;
        }
        assert_eq!(resolve(Path::new(STATIC_BUSYBOX), &LibSearch::host()).unwrap(), vec![]);
    }

    #[test]
    fn missing_library_is_an_error_naming_it() {
        if !present(DYNAMIC_BUSYBOX) {
            return;
        }
        // A fixture root holding only the interpreter: libc cannot be found.
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("lib64")).unwrap();
        fs::create_dir_all(r.join("usr/lib")).unwrap();
        let host = LibSearch::host();
        let interp = host.host_path(Path::new("/lib64/ld-linux-x86-64.so.2")).unwrap();
        fs::copy(interp, r.join("lib64/ld-linux-x86-64.so.2")).unwrap();
        let search = LibSearch::with_dirs(r, ["/lib", "/usr/lib"]);
        let err = resolve(Path::new(DYNAMIC_BUSYBOX), &search).unwrap_err().to_string();
        assert!(
            err.starts_with("library lib")
                && err.ends_with(&format!("needed by {DYNAMIC_BUSYBOX} not found in /lib, /usr/lib")),
            "{err}"
        );
    }

    #[test]
    fn fixture_root_skips_wrong_class_and_finds_right_one() {
        if !present(DYNAMIC_BUSYBOX) {
            return;
        }
        let host = LibSearch::host();
        let host_libs = resolve(Path::new(DYNAMIC_BUSYBOX), &host).unwrap();
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in ["lib32", "lib64", "lib"] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        // The first search dir holds same-named libraries built for another
        // machine (we patch e_machine to EM_AARCH64): the loader would skip
        // them, and so must we.
        for lib in &host_libs[1..] {
            let mut bytes = fs::read(&lib.host_source).unwrap();
            bytes[18..20].copy_from_slice(&goblin::elf::header::EM_AARCH64.to_le_bytes());
            fs::write(r.join("lib32").join(&lib.name), bytes).unwrap();
            fs::copy(&lib.host_source, r.join("lib").join(&lib.name)).unwrap();
        }
        fs::copy(&host_libs[0].host_source, r.join("lib/ld-real.so")).unwrap();
        symlink("/lib/ld-real.so", r.join("lib64/ld-linux-x86-64.so.2")).unwrap();
        let search = LibSearch::with_dirs(r, ["/lib32", "/lib"]);
        let libs = resolve(Path::new(DYNAMIC_BUSYBOX), &search).unwrap();
        assert_eq!(libs[0].host_source, r.join("lib/ld-real.so"));
        assert_eq!(libs.len(), host_libs.len());
        for lib in &libs[1..] {
            assert_eq!(lib.path_in_rootfs, Path::new("/lib").join(&lib.name));
            assert_eq!(lib.host_source, r.join("lib").join(&lib.name));
        }
    }
}
