//! What an ELF binary asks the kernel and the dynamic loader for.
//!
//! When you `execve(2)` an ELF file, the kernel looks at its *program headers*.
//! A statically linked binary has no `PT_INTERP` header: the kernel maps it and
//! jumps straight to its entry point. A dynamically linked binary carries a
//! `PT_INTERP` header holding a path such as `/lib64/ld-linux-x86-64.so.2`: the
//! kernel opens *that* file (the dynamic loader) and runs it instead, and the
//! loader then reads the binary's `DT_NEEDED` entries (`libc.so.6`, ...) and
//! finds each library using `DT_RPATH`/`DT_RUNPATH` and its search path.
//!
//! This is why `chroot /new /bin/busybox` can fail with "No such file or
//! directory" although `/new/bin/busybox` exists: the path that is missing is
//! the interpreter, which the kernel looks up *inside* the new root. Here we
//! read those headers directly, like `ldd` would report them but without
//! running anything (`ldd` actually runs the loader, which is unsafe on
//! untrusted binaries).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use goblin::elf::Elf;

use crate::{Error, IoContext};

/// The dynamic-linking requests of one ELF file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ElfNeeds {
    /// `PT_INTERP`: the dynamic loader the kernel must run first, e.g.
    /// `/lib64/ld-linux-x86-64.so.2`. `None` for static binaries (and for most
    /// shared libraries, which are loaded by an already running loader).
    pub interpreter: Option<PathBuf>,
    /// `DT_NEEDED`: library names (sonames), in the order they appear.
    pub needed: Vec<String>,
    /// `DT_RUNPATH`: extra directories searched for *this* object's needs,
    /// split on `:`; may contain `$ORIGIN`.
    pub runpath: Vec<String>,
    /// `DT_RPATH`: the older form, searched before the system directories and
    /// also inherited by the libraries this object loads. Ignored by the loader
    /// when `DT_RUNPATH` is present.
    pub rpath: Vec<String>,
}

/// The identity fields of an ELF header. The dynamic loader only accepts
/// libraries with the same class (32/64 bit), byte order and machine as the
/// program, so a `/usr/lib32/libc.so.6` is skipped for a 64-bit binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfKind {
    pub is_64: bool,
    pub little_endian: bool,
    /// `e_machine`, e.g. 62 (`EM_X86_64`) or 183 (`EM_AARCH64`).
    pub machine: u16,
}

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// Read `PT_INTERP` and the `DT_NEEDED`/`DT_RUNPATH`/`DT_RPATH` entries of
/// the ELF file at `path`.
pub fn read_needs(path: &Path) -> Result<ElfNeeds, Error> {
    let bytes = fs::read(path).ctx("read elf", path)?;
    check_magic(path, &bytes)?;
    let elf = Elf::parse(&bytes).map_err(|e| elf_error(path, e))?;
    Ok(ElfNeeds {
        interpreter: elf.interpreter.map(PathBuf::from),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        runpath: split_search_path(&elf.runpaths),
        rpath: split_search_path(&elf.rpaths),
    })
}

/// What goblin said about the ELF file at `path`, as our error.
fn elf_error(path: &Path, e: goblin::error::Error) -> Error {
    Error::Elf {
        path: path.to_path_buf(),
        reason: lowercase_first(&e.to_string()),
    }
}

/// True if the binary has a `PT_INTERP` program header, i.e. the kernel will
/// hand it to a dynamic loader. Static binaries (including static-pie ones)
/// return false.
pub fn is_dynamic(path: &Path) -> Result<bool, Error> {
    Ok(read_needs(path)?.interpreter.is_some())
}

/// Read just the ELF header of `path` (the first 64 bytes).
pub fn read_kind(path: &Path) -> Result<ElfKind, Error> {
    let mut file = fs::File::open(path).ctx("read elf", path)?;
    let mut head = Vec::with_capacity(64);
    file.by_ref().take(64).read_to_end(&mut head).ctx("read elf", path)?;
    check_magic(path, &head)?;
    let header = Elf::parse_header(&head).map_err(|e| elf_error(path, e))?;
    Ok(ElfKind {
        is_64: header.e_ident[goblin::elf::header::EI_CLASS] == goblin::elf::header::ELFCLASS64,
        little_endian: header.e_ident[goblin::elf::header::EI_DATA] == goblin::elf::header::ELFDATA2LSB,
        machine: header.e_machine,
    })
}

fn check_magic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if bytes.len() < 4 || &bytes[..4] != ELF_MAGIC {
        return Err(Error::Elf {
            path: path.to_path_buf(),
            reason: "not an ELF file".into(),
        });
    }
    Ok(())
}

/// `DT_RUNPATH`/`DT_RPATH` strings are colon-separated lists; an object may
/// even carry several entries. Flatten them, dropping empty elements.
fn split_search_path(entries: &[&str]) -> Vec<String> {
    entries
        .iter()
        .flat_map(|e| e.split(':'))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const DYNAMIC_BUSYBOX: &str = "/var/lib/workbench/busybox-dynamic/bin/busybox";
    pub(crate) const STATIC_BUSYBOX: &str = "/bin/busybox";

    /// Is the test binary `path` there (else say how to get it)?
    pub(crate) fn present(path: &str) -> bool {
        if Path::new(path).exists() {
            true
        } else {
            eprintln!("skipping: {path} is absent (run scripts/setup)");
            false
        }
    }

    #[test]
    fn dynamic_busybox_has_interpreter_and_needs_libc() {
        if !present(DYNAMIC_BUSYBOX) {
            return;
        }
        let needs = read_needs(Path::new(DYNAMIC_BUSYBOX)).unwrap();
        assert_eq!(
            needs.interpreter.as_deref(),
            Some(Path::new("/lib64/ld-linux-x86-64.so.2"))
        );
        assert!(needs.needed.iter().any(|n| n == "libc.so.6"), "{needs:?}");
        assert!(is_dynamic(Path::new(DYNAMIC_BUSYBOX)).unwrap());
    }

    #[test]
    fn static_busybox_has_no_interpreter() {
        if !present(STATIC_BUSYBOX) {
            return;
        }
        let needs = read_needs(Path::new(STATIC_BUSYBOX)).unwrap();
        assert_eq!(needs.interpreter, None);
        assert!(needs.needed.is_empty(), "{needs:?}");
        assert!(!is_dynamic(Path::new(STATIC_BUSYBOX)).unwrap());
    }

    #[test]
    fn kind_of_host_binary_matches_build_target() {
        if !present(STATIC_BUSYBOX) {
            return;
        }
        let kind = read_kind(Path::new(STATIC_BUSYBOX)).unwrap();
        assert_eq!(kind.is_64, cfg!(target_pointer_width = "64"));
        assert_eq!(kind.little_endian, cfg!(target_endian = "little"));
        if cfg!(target_arch = "x86_64") {
            assert_eq!(kind.machine, goblin::elf::header::EM_X86_64);
        }
    }

    #[test]
    fn non_elf_file_is_rejected_with_path() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("script.sh");
        fs::write(&f, "#!/bin/sh\necho hi\n").unwrap();
        let err = read_needs(&f).unwrap_err().to_string();
        assert_eq!(err, format!("read elf {}: not an ELF file", f.display()));
        assert!(read_kind(&f).is_err());
    }

    #[test]
    fn missing_file_error_names_path() {
        let err = read_needs(Path::new("/nonexistent/wb-busybox")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "read elf /nonexistent/wb-busybox: No such file or directory"
        );
    }

    #[test]
    fn search_paths_are_split_on_colons() {
        assert_eq!(
            split_search_path(&["$ORIGIN/../lib:/opt/x", "", "/y"]),
            vec!["$ORIGIN/../lib", "/opt/x", "/y"]
        );
    }
}
