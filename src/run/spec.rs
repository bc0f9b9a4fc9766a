//! What `workbench run` was asked to do, validated before anything exists.
//!
//! Every option is checked here, with the host facts it depends on (number
//! of cores, memory size, what a path is) passed in, so the checks are pure
//! functions with unit tests. A mistake ends with one line naming what to
//! do and exit status 2; nothing on the host has been touched at that point.

use std::path::{Path, PathBuf};

use crate::error::UsageError;
use crate::lesson::options::MemoryError;

/// CFS period used for `--cpus`: 100 ms, the kernel's and Docker's default.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The smallest memory limit accepted: below a few MiB even `/bin/true` is OOM-killed.
pub const MIN_MEMORY: u64 = 4 << 20;

/// Where the container's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory that already is a root filesystem (e.g. `rootfs-builder build`).
    Rootfs(PathBuf),
    /// An OCI image layout directory and the image's ref name (empty: the only one).
    Oci { dir: PathBuf, reference: String },
    /// A `docker save` archive (tar, optionally gzip) or its extracted directory.
    Docker { path: PathBuf, reference: String },
    /// An image in workbench's store (`workbench image ls`), `NAME:TAG`: chosen
    /// when no file or directory of that name exists.
    Store { reference: String },
}

impl Source {
    pub fn is_image(&self) -> bool {
        !matches!(self, Source::Rootfs(_))
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Rootfs(p) => format!("rootfs {}", p.display()),
            Source::Oci { dir, reference } => format!("oci image {}:{}", dir.display(), reference),
            Source::Docker { path, reference } => format!("docker archive {}:{}", path.display(), reference),
            Source::Store { reference } => format!("stored image {reference}"),
        }
    }
}

/// The network the container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetMode {
    /// A new network namespace with only `lo` (up): no packet leaves the container.
    None,
    /// A new network namespace with a veth pair to a fresh `wb` bridge, an address
    /// from a free 10.x subnet, a default route and (with -p) port mappings.
    Bridge,
}

/// `-p HOST:CONTAINER` (TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMap {
    pub host: u16,
    pub container: u16,
}

/// A CPU limit as the CFS bandwidth controller takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuLimit {
    pub quota_us: u64,
    pub period_us: u64,
}

/// Facts about the host the checks need (gathered cheaply, or made up in tests).
#[derive(Debug, Clone, Copy)]
pub struct HostFacts {
    pub cores: u32,
    pub mem_total: u64,
}

impl HostFacts {
    pub fn probe() -> HostFacts {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        let mem_total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| parse_mem_total(&t))
            .unwrap_or(u64::MAX);
        HostFacts { cores, mem_total }
    }
}

/// `MemTotal:       24684484 kB` → bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// `--memory 64M` → bytes, between [`MIN_MEMORY`] and the machine's memory.
pub fn parse_memory(s: &str, facts: &HostFacts) -> Result<u64, UsageError> {
    crate::lesson::options::parse_memory(s, MIN_MEMORY, facts.mem_total).map_err(|e| match e {
        MemoryError::Malformed(_) => usage(format!("--memory {s:?}: expected a size like 64M, 512k or 1G")),
        MemoryError::TooSmall => usage(format!(
            "--memory {s}: must be at least 4M (smaller limits kill even /bin/true)"
        )),
        MemoryError::TooLarge => usage(format!(
            "--memory {s}: more than this machine has ({} MiB); give a smaller limit",
            facts.mem_total >> 20
        )),
    })
}

/// `--cpus 1.5` → quota 150000 µs per 100000 µs period; more than 0, at most the cores.
pub fn parse_cpus(s: &str, facts: &HostFacts) -> Result<CpuLimit, UsageError> {
    let bad = || {
        usage(format!(
            "--cpus {s}: must be a number of CPUs greater than 0 and at most {} (the cores of this machine), e.g. 0.5",
            facts.cores
        ))
    };
    let n: f64 = s.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n <= 0.0 || n > facts.cores as f64 {
        return Err(bad());
    }
    let quota_us = (n * CPU_PERIOD_US as f64).round() as u64;
    if quota_us < 1000 {
        return Err(usage(format!(
            "--cpus {s}: must be at least 0.01 (the kernel's smallest quota is 1 ms per period)"
        )));
    }
    Ok(CpuLimit {
        quota_us,
        period_us: CPU_PERIOD_US,
    })
}

/// `-p 8080:80` (optionally `/tcp`).
pub fn parse_port(s: &str) -> Result<PortMap, UsageError> {
    let bad = || {
        usage(format!(
            "-p {s}: expected HOST:CONTAINER with ports 1-65535, e.g. -p 8080:80"
        ))
    };
    let t = s.strip_suffix("/tcp").unwrap_or(s);
    let (h, c) = t.split_once(':').ok_or_else(bad)?;
    let port = |x: &str| {
        x.parse::<u16>()
            .ok()
            .filter(|p| *p > 0 && x.bytes().all(|b| b.is_ascii_digit()))
    };
    Ok(PortMap {
        host: port(h).ok_or_else(bad)?,
        container: port(c).ok_or_else(bad)?,
    })
}

/// A container name: used in the cgroup name and shown by `workbench cleanup`.
pub fn parse_name(s: &str) -> Result<String, UsageError> {
    let ok = !s.is_empty()
        && s.len() <= 40
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && !s.contains("..")
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(usage(format!("--name {s:?}: use 1 to 40 letters, digits, '.', '_' or '-', starting with a letter or digit (no '/' or '..')")))
    }
}

/// A hostname for sethostname(2): 1 to 64 bytes of letters, digits, '-' and '.'.
pub fn parse_hostname(s: &str) -> Result<String, UsageError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.contains("..")
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(usage(format!(
            "--hostname {s:?}: use 1 to 64 letters, digits, '-' or '.' (no '/' or '..')"
        )))
    }
}

/// `-e KEY=VALUE`, or `-e KEY` to pass the host's value on.
pub fn parse_env(s: &str, host_value: impl Fn(&str) -> Option<String>) -> Result<(String, String), UsageError> {
    let (k, v) = match s.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (s.to_string(), None),
    };
    let valid =
        !k.is_empty() && !k.as_bytes()[0].is_ascii_digit() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid || s.contains('\0') {
        return Err(usage(format!(
            "-e {s:?}: expected NAME=VALUE with a NAME of letters, digits and '_'"
        )));
    }
    let v = v
        .or_else(|| host_value(&k))
        .ok_or_else(|| usage(format!("-e {k}: not set on the host; give -e {k}=VALUE")))?;
    Ok((k, v))
}

/// What a path on the host turned out to be (probed by [`probe_path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Missing,
    /// A directory with an `oci-layout` file.
    OciLayout,
    /// A directory with a `manifest.json` or `repositories` (an extracted docker save).
    DockerDir,
    /// Any other directory.
    Dir,
    /// A regular file (a docker-save tar).
    File,
    Other,
}

pub fn probe_path(p: &Path) -> PathKind {
    match std::fs::metadata(p) {
        Err(_) => PathKind::Missing,
        Ok(m) if m.is_dir() => {
            if p.join("oci-layout").is_file() {
                PathKind::OciLayout
            } else if p.join("manifest.json").is_file() || p.join("repositories").is_file() {
                PathKind::DockerDir
            } else {
                PathKind::Dir
            }
        }
        Ok(m) if m.is_file() => PathKind::File,
        Ok(_) => PathKind::Other,
    }
}

/// Decide what IMAGE|ROOTFS names. Accepted spellings:
/// `oci:DIR[:TAG]`, `docker-archive:PATH[:NAME:TAG]`, `DIR:TAG` (an OCI
/// layout), or a plain path: an OCI layout dir, a docker-save tar or dir, or
/// a rootfs dir. `--tag` gives the image reference for plain paths.
pub fn classify_source(arg: &str, tag: Option<&str>, probe: impl Fn(&Path) -> PathKind) -> Result<Source, UsageError> {
    let missing = |p: &str| {
        usage(format!(
            "{p}: no such rootfs or image; give a root filesystem directory, an OCI layout (oci:DIR:TAG), a docker-save archive (docker-archive:FILE) or a stored image NAME:TAG (workbench image ls)"
        ))
    };
    let tag_or = |t: Option<&str>| t.or(tag).unwrap_or("").to_string();
    if let Some(rest) = arg.strip_prefix("oci:") {
        let (dir, t) = match rest.split_once(':') {
            Some((d, t)) => (d, Some(t)),
            None => (rest, None),
        };
        return match probe(Path::new(dir)) {
            PathKind::OciLayout => Ok(Source::Oci {
                dir: dir.into(),
                reference: tag_or(t),
            }),
            PathKind::Missing => Err(missing(dir)),
            _ => Err(usage(format!("{dir}: not an OCI image layout (no oci-layout file)"))),
        };
    }
    if let Some(rest) = arg.strip_prefix("docker-archive:") {
        let (path, r) = match rest.split_once(':') {
            Some((p, r)) => (p, Some(r)),
            None => (rest, None),
        };
        return match probe(Path::new(path)) {
            PathKind::File | PathKind::DockerDir => Ok(Source::Docker {
                path: path.into(),
                reference: tag_or(r),
            }),
            PathKind::Missing => Err(missing(path)),
            _ => Err(usage(format!(
                "{path}: not a docker-save archive (a tar file, or a directory with manifest.json)"
            ))),
        };
    }
    match probe(Path::new(arg)) {
        PathKind::OciLayout => Ok(Source::Oci {
            dir: arg.into(),
            reference: tag_or(None),
        }),
        PathKind::DockerDir | PathKind::File => Ok(Source::Docker {
            path: arg.into(),
            reference: tag_or(None),
        }),
        PathKind::Dir => {
            if tag.is_some() {
                return Err(usage(format!("--tag: {arg} is a rootfs directory, not an image")));
            }
            Ok(Source::Rootfs(arg.into()))
        }
        PathKind::Other => Err(usage(format!("{arg}: not a directory or an archive"))),
        PathKind::Missing => {
            // `DIR:TAG` for an OCI layout, as umoci spells it.
            if let Some((dir, t)) = arg.rsplit_once(':') {
                if probe(Path::new(dir)) == PathKind::OciLayout {
                    return Ok(Source::Oci {
                        dir: dir.into(),
                        reference: t.to_string(),
                    });
                }
            }
            // Last: a reference to an image in the store (`busybox:v1`, `busybox`).
            if tag.is_none() {
                if let Ok(r) = wb_image::store::Reference::parse(arg) {
                    return Ok(Source::Store {
                        reference: r.to_string(),
                    });
                }
            }
            Err(missing(arg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FACTS: HostFacts = HostFacts {
        cores: 2,
        mem_total: 1 << 30,
    };

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("64M", &FACTS).unwrap(), 64 << 20);
        assert_eq!(parse_memory("4m", &FACTS).unwrap(), 4 << 20);
        for bad in ["abc", "", "0", "-1", "1M", "64X", "2G"] {
            let e = parse_memory(bad, &FACTS).unwrap_err().0;
            assert!(e.starts_with("--memory"), "{bad}: {e}");
            assert!(!e.contains('\n'));
        }
        assert!(parse_memory("2G", &FACTS).unwrap_err().0.contains("1024 MiB"));
    }

    #[test]
    fn cpu_counts() {
        assert_eq!(
            parse_cpus("1", &FACTS).unwrap(),
            CpuLimit {
                quota_us: 100_000,
                period_us: 100_000
            }
        );
        assert_eq!(parse_cpus("0.5", &FACTS).unwrap().quota_us, 50_000);
        assert_eq!(parse_cpus("2", &FACTS).unwrap().quota_us, 200_000);
        for bad in ["0", "-1", "3", "abc", "NaN", "inf", "", "0.001"] {
            assert!(parse_cpus(bad, &FACTS).is_err(), "{bad}");
        }
        assert!(parse_cpus("3", &FACTS).unwrap_err().0.contains("at most 2"));
    }

    #[test]
    fn ports() {
        assert_eq!(
            parse_port("8080:80").unwrap(),
            PortMap {
                host: 8080,
                container: 80
            }
        );
        assert_eq!(
            parse_port("1:65535/tcp").unwrap(),
            PortMap {
                host: 1,
                container: 65535
            }
        );
        for bad in [
            "80",
            "0:80",
            "80:0",
            "65536:80",
            "a:b",
            ":80",
            "80:",
            "8080:80/udp",
            "+80:80",
            "80:80:80",
        ] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_hostnames() {
        assert_eq!(parse_name("web-1.test_x").unwrap(), "web-1.test_x");
        for bad in ["", "a/b", "..", "a..b", "-x", ".x", "a b", &"x".repeat(41)] {
            assert!(parse_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_hostname("box-1.lab").unwrap(), "box-1.lab");
        for bad in ["", "a/b", "a..b", "a b", &"x".repeat(65)] {
            assert!(parse_hostname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn env_vars() {
        let none = |_: &str| None;
        assert_eq!(parse_env("A=1=2", none).unwrap(), ("A".into(), "1=2".into()));
        assert_eq!(
            parse_env("TERM", |k: &str| (k == "TERM").then(|| "xterm".to_string())).unwrap(),
            ("TERM".into(), "xterm".into())
        );
        assert!(parse_env("TERM", none).is_err());
        assert!(parse_env("=x", none).is_err());
        assert!(parse_env("1A=x", none).is_err());
        assert!(parse_env("A-B=x", none).is_err());
    }

    #[test]
    fn sources() {
        let fake = |p: &Path| match p.to_str().unwrap() {
            "/img/oci" => PathKind::OciLayout,
            "/img/save.tar" => PathKind::File,
            "/img/saved" => PathKind::DockerDir,
            "/rootfs" => PathKind::Dir,
            "/dev/null" => PathKind::Other,
            _ => PathKind::Missing,
        };
        let oci = |d: &str, r: &str| Source::Oci {
            dir: d.into(),
            reference: r.into(),
        };
        let docker = |d: &str, r: &str| Source::Docker {
            path: d.into(),
            reference: r.into(),
        };
        let cases = [
            ("/rootfs", None, Source::Rootfs("/rootfs".into())),
            ("oci:/img/oci:v1", None, oci("/img/oci", "v1")),
            ("oci:/img/oci", Some("v2"), oci("/img/oci", "v2")),
            ("/img/oci:v3", None, oci("/img/oci", "v3")),
            ("/img/oci", None, oci("/img/oci", "")),
            ("/img/save.tar", Some("bb:1"), docker("/img/save.tar", "bb:1")),
            (
                "docker-archive:/img/save.tar:bb:1",
                None,
                docker("/img/save.tar", "bb:1"),
            ),
            ("/img/saved", None, docker("/img/saved", "")),
            // No such path: a store reference, the tag defaulting to latest.
            (
                "busybox:v1",
                None,
                Source::Store {
                    reference: "busybox:v1".into(),
                },
            ),
            (
                "busybox",
                None,
                Source::Store {
                    reference: "busybox:latest".into(),
                },
            ),
            (
                "lab/bb",
                None,
                Source::Store {
                    reference: "lab/bb:latest".into(),
                },
            ),
            // A path wins over a store reference of the same spelling.
            ("/img/oci:v3", None, oci("/img/oci", "v3")),
        ];
        for (input, tag, want) in cases {
            assert_eq!(
                classify_source(input, tag, fake).unwrap(),
                want,
                "{input} (--tag {tag:?})"
            );
        }
        for bad in [
            "/nope",
            "oci:/rootfs",
            "oci:/nope:x",
            "docker-archive:/rootfs",
            "/dev/null",
            "/nope:tag",
            "./nope",
            "Busy:x",
            "nope:a b",
        ] {
            let e = classify_source(bad, None, fake).unwrap_err().0;
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(classify_source("/rootfs", Some("x"), fake).is_err());
        // --tag is for image files, never a store reference.
        assert!(classify_source("busybox", Some("v1"), fake).is_err());
    }

    #[test]
    fn mem_total_from_meminfo() {
        assert_eq!(
            parse_mem_total("MemTotal:       1024 kB\nMemFree: 1 kB\n"),
            Some(1 << 20)
        );
        assert_eq!(parse_mem_total("nothing"), None);
    }
}
