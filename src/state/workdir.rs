//! Per-run working directories: where they go (a tmpfs, or the root
//! filesystem when /run is mounted noexec or nodev) and how they are made.

use super::*;

/// The second place for working directories, on the root filesystem.
pub const VAR_TMP_DIR: &str = "/var/lib/workbench/tmp";

/// Parent of the per-run working directories. Lessons build root filesystems
/// there, execute their binaries after chroot(2) and open their `/dev/null`,
/// which a filesystem mounted `nodev` or `noexec` refuses with EACCES — and
/// most hosts mount `/run` `nodev` (systemd), often `noexec` too
/// (initramfs-tools). So: `<run root>/tmp` if its filesystem allows both,
/// else `/var/lib/workbench/tmp` if that one does, else `<run root>/tmp` with a
/// tmpfs per run (see [`begin`]). `WORKBENCH_RUN_DIR` pins `<run root>/tmp`.
pub fn tmp_dir() -> PathBuf {
    let run_tmp = run_root().join("tmp");
    if std::env::var_os("WORKBENCH_RUN_DIR").is_some() {
        return run_tmp;
    }
    choose_tmp_dir(&[run_tmp, PathBuf::from(VAR_TMP_DIR)], |d| {
        fs_restricted(&nearest_existing(d))
    })
}

/// The first candidate that is not restricted; the first one if all are.
pub fn choose_tmp_dir(candidates: &[PathBuf], restricted: impl Fn(&Path) -> bool) -> PathBuf {
    candidates
        .iter()
        .find(|c| !restricted(c))
        .unwrap_or(&candidates[0])
        .clone()
}

/// `dir` or its closest existing ancestor.
fn nearest_existing(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|a| a.exists())
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

/// Is the filesystem of `dir` mounted `nodev` or `noexec`?
pub fn fs_restricted(dir: &Path) -> bool {
    use nix::sys::statvfs::{statvfs, FsFlags};
    statvfs(dir).is_ok_and(|st| st.flags().intersects(FsFlags::ST_NODEV | FsFlags::ST_NOEXEC))
}

/// Create the run's working directory: a random name, mode 0700, recorded before it exists.
pub fn make_workdir(run: &Run) -> Result<(), StateError> {
    record(Resource::Dir {
        path: run.workdir.clone(),
    })?;
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&run.workdir)
        .map_err(ioerr("mkdir", &run.workdir))?;
    // No unrestricted place (see tmp_dir): the run's own tmpfs. It is a host
    // mount for the length of the run, which concurrent runs comparing the
    // host's mount table would notice; hence the last resort.
    if fs_restricted(&run.workdir) {
        record(Resource::Mount {
            target: run.workdir.clone(),
        })?;
        mount_workdir_tmpfs(&run.workdir)?;
    }
    Ok(())
}

/// `mount -t tmpfs -o mode=0700,nosuid wb-workdir DIR` then `mount --make-private DIR`,
/// so mounts below it never propagate to the host's other mount namespaces.
fn mount_workdir_tmpfs(dir: &Path) -> Result<(), StateError> {
    use nix::mount::{mount, MsFlags};
    let err = |e: nix::Error| StateError::Io {
        what: "mount tmpfs on",
        path: dir.to_path_buf(),
        source: std::io::Error::from(e),
    };
    mount(
        Some("wb-workdir"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some("mode=0700"),
    )
    .map_err(err)?;
    mount(None::<&str>, dir, None::<&str>, MsFlags::MS_PRIVATE, None::<&str>).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_directories_go_to_the_first_unrestricted_place() {
        let run = PathBuf::from("/run/workbench/tmp");
        let var = PathBuf::from(VAR_TMP_DIR);
        let both = [run.clone(), var.clone()];
        assert_eq!(choose_tmp_dir(&both, |_| false), run);
        assert_eq!(choose_tmp_dir(&both, |d| d.starts_with("/run")), var);
        // Nowhere unrestricted: the first place, where the run mounts its own tmpfs.
        assert_eq!(choose_tmp_dir(&both, |_| true), run);
    }

    #[test]
    fn the_closest_existing_ancestor_is_probed() {
        assert_eq!(
            nearest_existing(Path::new("/proc/self/no/such/dir")),
            PathBuf::from("/proc/self")
        );
        assert_eq!(nearest_existing(Path::new("/")), PathBuf::from("/"));
    }
}
