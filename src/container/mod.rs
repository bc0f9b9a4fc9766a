//! Kept containers: what stays on disk after `workbench run --keep` or `--detach`.
//!
//! A container's writable layer is the upper directory of an overlay mount:
//! every file it writes lands there, every file it deletes becomes a whiteout
//! (a 0/0 character device). Docker keeps that directory (and the container's
//! metadata and log) after the process exits, so that it can be inspected,
//! committed as an image layer or removed. workbench keeps the same in
//! `/var/lib/workbench/containers/NAME/`: `container.json` (the [`Record`]),
//! `upper/`, `work/` and, for a detached container, `log`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::error::UsageError;

pub mod cmd;

/// The record's file name inside a container's directory.
pub const RECORD_FILE: &str = "container.json";

/// The container's state as the record shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Exited,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Running => "running",
            State::Exited => "exited",
        })
    }
}

/// `container.json`: one kept container (shared with `workbench commit`: do not rename fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The record's format version (1).
    pub version: u32,
    pub name: String,
    /// The run id (as in the ledger and the cgroup/link names).
    pub id: String,
    /// The IMAGE|ROOTFS argument as typed.
    pub source: String,
    /// The store reference NAME:TAG when the source came from the image store.
    pub image: Option<String>,
    /// Absolute paths of the overlay's lower directories, top first, as mounted.
    pub lowers: Vec<PathBuf>,
    pub argv: Vec<String>,
    /// When the container was created (RFC 3339, UTC).
    pub created: String,
    pub state: State,
    /// Host pid of the container's init while it runs.
    pub pid: Option<i32>,
    /// The exit status (128+N for a signal) once it exited.
    pub exit_code: Option<i32>,
    /// Host pid of the `workbench shim` that is the container's parent (detached containers).
    pub shim_pid: Option<i32>,
}

impl Record {
    /// The record's current format version.
    pub const VERSION: u32 = 1;

    /// This container's directory.
    pub fn dir(&self) -> PathBuf {
        dir(&self.name)
    }
    /// The overlay upper directory (the container's changes).
    pub fn upper(&self) -> PathBuf {
        self.dir().join("upper")
    }
    /// The overlay work directory.
    pub fn work(&self) -> PathBuf {
        self.dir().join("work")
    }
    /// The stdout+stderr of a detached container.
    pub fn log(&self) -> PathBuf {
        self.dir().join("log")
    }

    /// Is the container still running? The record says "running" and the
    /// process that holds it is there: the shim of a detached container, or
    /// (in the foreground) the container's init itself, still an init of a
    /// PID namespace. After a SIGKILL of its shim the record still says
    /// "running", but nothing runs.
    pub fn is_running(&self) -> bool {
        if self.state != State::Running {
            return false;
        }
        match (self.shim_pid, self.pid) {
            (Some(shim), _) => is_shim(shim),
            (None, Some(pid)) => is_ns_init(pid),
            (None, None) => false,
        }
    }

    /// The state to show: "running" only while [`Record::is_running`].
    pub fn effective_state(&self) -> State {
        if self.is_running() {
            State::Running
        } else {
            State::Exited
        }
    }
}

/// Is `pid` a live `workbench shim` process?
pub fn is_shim(pid: i32) -> bool {
    crate::kernel::proc::is_running(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(b"shim".as_slice()))
}

/// Is `pid` a live process that is PID 1 of a PID namespace below ours?
pub fn is_ns_init(pid: i32) -> bool {
    crate::kernel::proc::is_running(pid)
        && crate::kernel::proc::ns_pids(Path::new("/proc"), pid).is_some_and(|p| p.len() >= 2 && p.last() == Some(&1))
}

/// A container name: what `--name` accepts (so it never leaves the base directory).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && !s.contains("..")
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Where kept containers live (override with `WORKBENCH_CONTAINERS_DIR`, as the tests do).
pub fn base_dir() -> PathBuf {
    std::env::var_os("WORKBENCH_CONTAINERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/workbench/containers"))
}

/// The directory of the container `name`.
pub fn dir(name: &str) -> PathBuf {
    base_dir().join(name)
}

/// Does a container named `name` exist (its directory, whatever state it is in)?
pub fn exists(name: &str) -> bool {
    dir(name).symlink_metadata().is_ok()
}

/// Read the record of the container `name`; exit 2 when there is none.
pub fn load(name: &str) -> anyhow::Result<Record> {
    if !valid_name(name) {
        return Err(UsageError(format!("no container named {name:?}: see workbench ps -a")).into());
    }
    let path = dir(name).join(RECORD_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(UsageError(format!("no container named {name}: see workbench ps -a")).into())
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    load_from(&path, &text)
}

fn load_from(path: &Path, text: &[u8]) -> anyhow::Result<Record> {
    let r: Record = serde_json::from_slice(text).with_context(|| format!("parsing {}", path.display()))?;
    if r.version != Record::VERSION {
        anyhow::bail!(
            "{}: record version {} (this workbench reads version {})",
            path.display(),
            r.version,
            Record::VERSION
        );
    }
    Ok(r)
}

/// Write the record atomically (a temporary file in the same directory, fsync, rename).
pub fn save(r: &Record) -> anyhow::Result<()> {
    let d = r.dir();
    let path = d.join(RECORD_FILE);
    let tmp = d.join(format!(".{RECORD_FILE}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(r).expect("the record serialises"))?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&d)?.sync_all()
    };
    write().with_context(|| format!("writing {}", path.display()))
}

/// Create the base directory and the container's own directory (mode 0700).
/// Fails with exit 2 if the name is taken.
pub fn create_dir(name: &str) -> anyhow::Result<PathBuf> {
    if !valid_name(name) {
        return Err(UsageError(format!("--name {name:?}: use 1 to 40 letters, digits, '.', '_' or '-'")).into());
    }
    use std::os::unix::fs::DirBuilderExt;
    let base = base_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&base)
        .with_context(|| format!("mkdir {}", base.display()))?;
    let d = dir(name);
    match std::fs::DirBuilder::new().mode(0o700).create(&d) {
        Ok(()) => Ok(d),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(in_use(name).into()),
        Err(e) => Err(e).with_context(|| format!("mkdir {}", d.display())),
    }
}

/// The refusal for a name that is taken.
pub fn in_use(name: &str) -> UsageError {
    UsageError(format!(
        "the container name {name} is in use: workbench rm {name}, or choose another --name"
    ))
}

/// Every container with a readable record, oldest first (directories without one —
/// being created, or broken — are left out).
pub fn list() -> anyhow::Result<Vec<Record>> {
    let base = base_dir();
    let entries = match std::fs::read_dir(&base) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", base.display())),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("reading {}", base.display()))?;
        let path = e.path().join(RECORD_FILE);
        if let Ok(text) = std::fs::read(&path) {
            if let Ok(r) = load_from(&path, &text) {
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}

/// Remove a container's directory and everything in it (its upper dir included).
pub fn remove_dir(name: &str) -> anyhow::Result<()> {
    if !valid_name(name) {
        anyhow::bail!("refusing to remove the container {name:?}: not a container name");
    }
    let d = dir(name);
    match std::fs::remove_dir_all(&d) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", d.display())),
    }
}

/// Now as RFC 3339 UTC with seconds (`2026-12-03T15:14:19Z`).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

/// Seconds since the epoch as RFC 3339 UTC (the civil calendar, no leap seconds).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The base directory is process-wide (an env var): tests that use it run one at a time.
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn with_base<T>(f: impl FnOnce(&Path) -> T) -> T {
        let _g = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("containers");
        std::env::set_var("WORKBENCH_CONTAINERS_DIR", &base);
        let out = f(&base);
        std::env::remove_var("WORKBENCH_CONTAINERS_DIR");
        out
    }

    fn record(name: &str, created: &str) -> Record {
        Record {
            version: 1,
            name: name.into(),
            id: "ab12cd".into(),
            source: "alpine:3.19".into(),
            image: Some("alpine:3.19".into()),
            lowers: vec!["/var/lib/workbench/images/layers/1".into()],
            argv: vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
            created: created.into(),
            state: State::Exited,
            pid: None,
            exit_code: Some(0),
            shim_pid: None,
        }
    }

    #[test]
    fn the_record_has_the_agreed_fields() {
        let v = serde_json::to_value(record("c1", "2026-12-03T15:00:00Z")).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "argv",
                "created",
                "exit_code",
                "id",
                "image",
                "lowers",
                "name",
                "pid",
                "shim_pid",
                "source",
                "state",
                "version"
            ]
        );
        assert_eq!(v["state"], "exited");
        assert_eq!(v["shim_pid"], serde_json::Value::Null);
    }

    #[test]
    fn save_load_list_remove_round_trip() {
        with_base(|base| {
            assert!(list().unwrap().is_empty(), "no base directory yet: nothing listed");
            let d = create_dir("c1").unwrap();
            assert_eq!(d, base.join("c1"));
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
            let mut r = record("c1", "2026-12-03T15:00:01Z");
            save(&r).unwrap();
            assert_eq!(load("c1").unwrap(), r);
            r.state = State::Running;
            r.pid = Some(4242);
            save(&r).unwrap();
            assert_eq!(load("c1").unwrap().pid, Some(4242));
            assert!(
                !d.join(".container.json.tmp").exists(),
                "the temporary file is renamed away"
            );

            create_dir("b0").unwrap();
            save(&record("b0", "2026-12-03T15:00:00Z")).unwrap();
            create_dir("half").unwrap(); // being created: no record yet
            let names: Vec<String> = list().unwrap().into_iter().map(|r| r.name).collect();
            assert_eq!(names, ["b0", "c1"], "oldest first, half-created left out");

            let e = create_dir("c1").unwrap_err();
            assert!(e.downcast_ref::<UsageError>().is_some(), "{e}");
            assert!(e.to_string().contains("in use"), "{e}");

            remove_dir("c1").unwrap();
            assert!(!exists("c1"));
            remove_dir("c1").unwrap();
        })
    }

    #[test]
    fn a_missing_container_is_a_usage_error() {
        with_base(|_| {
            let e = load("nope").unwrap_err();
            assert!(e.downcast_ref::<UsageError>().is_some());
            assert_eq!(e.to_string(), "no container named nope: see workbench ps -a");
        })
    }

    #[test]
    fn a_record_of_another_version_is_refused() {
        with_base(|_| {
            create_dir("v2").unwrap();
            let mut r = record("v2", "x");
            r.version = 2;
            save(&r).unwrap();
            assert!(load("v2").unwrap_err().to_string().contains("record version 2"));
            assert!(list().unwrap().is_empty());
        })
    }

    #[test]
    fn names_stay_inside_the_base_directory() {
        assert!(valid_name("c1") && valid_name("web.1_a-b"));
        for bad in ["", "../etc", "a/b", ".hidden", "a..b", &"x".repeat(41)] {
            assert!(!valid_name(bad), "{bad}");
        }
        with_base(|_| {
            assert!(load("../../etc").unwrap_err().downcast_ref::<UsageError>().is_some());
            assert!(remove_dir("..").is_err());
        })
    }

    #[test]
    fn an_exited_or_orphaned_record_is_not_running() {
        let mut r = record("c1", "x");
        assert!(!r.is_running());
        r.state = State::Running;
        r.shim_pid = Some(std::process::id() as i32); // the test binary: not a shim
        assert!(!r.is_running());
        assert_eq!(r.effective_state(), State::Exited);
        r.shim_pid = None;
        r.pid = Some(std::process::id() as i32); // not an init of a PID namespace
        assert!(!r.is_running());
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_310_859), "2026-12-03T15:14:19Z");
        assert!(now_rfc3339().starts_with("20"));
    }
}
