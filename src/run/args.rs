//! The command line of `workbench run` and its validation: every option is
//! checked, with the host facts it depends on passed in, before anything is
//! created, so a mistake ends with one line and exit status 2.

use std::path::{Path, PathBuf};

use clap::Args;
use nix::sched::CloneFlags;

use super::spec::{
    classify_source, parse_cpus, parse_env, parse_hostname, parse_memory, parse_name, parse_port, probe_path, CpuLimit,
    HostFacts, NetMode, PortMap, Source,
};
use crate::error::UsageError;

/// `workbench run [OPTIONS] IMAGE|ROOTFS CMD...`
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Memory limit (cgroup memory limit, no swap), e.g. 64M. Hitting it gets the command OOM-killed (exit 137).
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit in CPUs, e.g. 0.5: a CFS quota of N × 100 ms per 100 ms period.
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Network: `none` (a new namespace with only lo) or `bridge` (veth to a fresh wb bridge,
    /// a 10.x address, a default route). Default: none, or bridge when -p is given.
    #[arg(long, value_enum)]
    pub net: Option<NetMode>,
    /// Publish a container TCP port on the host, HOST:CONTAINER (e.g. -p 8080:80); needs the bridge network.
    #[arg(short = 'p', long = "publish", value_name = "HOST:CONTAINER")]
    pub publish: Vec<String>,
    /// Hostname inside the container (default: the container's name, or `wb-<run id>`).
    #[arg(long)]
    pub hostname: Option<String>,
    /// A name for the container (letters, digits, '.', '_', '-'), used in its cgroup name.
    #[arg(long)]
    pub name: Option<String>,
    /// The image's tag or NAME:TAG inside an OCI layout or docker-save archive (default: the only image).
    #[arg(long)]
    pub tag: Option<String>,
    /// Give a rootfs directory a writable overlay layer (discarded at exit) instead of a read-only bind mount.
    #[arg(long)]
    pub overlay: bool,
    /// Keep the container after it exits: its overlay upper dir (its changes) and its record
    /// in /var/lib/workbench/containers/NAME (needs an image or --overlay; see workbench ps -a, rm).
    #[arg(long)]
    pub keep: bool,
    /// Run in the background with a `workbench shim` as the container's parent; print its
    /// name and return (implies --keep; output goes to `workbench logs NAME`).
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set an environment variable, NAME=VALUE (or NAME to pass the host's value).
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Keep stdin attached (otherwise the command reads /dev/null).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Hand this terminal to the command (Ctrl-C goes to it); implies -i.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Also a user namespace: root inside is uid 100000 on the host and has no privileges there
    /// (a rootfs directory in its read-only mode only).
    #[arg(long)]
    pub userns: bool,
    /// Run an OCI runtime bundle: DIR/config.json (process, root, hostname, namespaces) and its rootfs
    /// (also written `bundle:DIR` as the source).
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// Print every kernel operation (the classic command and the system call) as it is done.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// A rootfs directory, an OCI layout (`oci:DIR[:TAG]` or `DIR:TAG`) or a docker-save archive
    /// (a .tar file, or `docker-archive:FILE[:NAME:TAG]`).
    #[arg(
        value_name = "IMAGE|ROOTFS",
        required_unless_present = "bundle",
        default_value = "",
        hide_default_value = true
    )]
    pub source: String,
    /// The command and its arguments (for an image, default: the image's Cmd).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The validated request.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    pub source: Source,
    pub argv: Vec<String>,
    pub memory: Option<u64>,
    pub memory_text: Option<String>,
    pub cpus: Option<CpuLimit>,
    pub net: NetMode,
    pub ports: Vec<PortMap>,
    pub hostname: Option<String>,
    pub name: Option<String>,
    pub overlay: bool,
    pub env: Vec<(String, String)>,
    pub keep_stdin: bool,
    pub tty: bool,
    pub verbose: bool,
    pub userns: bool,
    /// Keep the container's upper dir and record (--keep, or --detach).
    pub keep: bool,
    /// Run under a `workbench shim` in the background.
    pub detach: bool,
}

/// The default PATH inside the container (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// With `--userns`, container uids/gids 0..65535 are host ids 100000..165535.
pub const USERNS_BASE: u32 = 100_000;
pub const USERNS_SIZE: u32 = 65_536;

/// The first directory from `/` down to `path` that others may not search
/// (mode without o+x): the container's root in a user namespace could not reach `path`.
pub fn unsearchable_ancestor(path: &Path) -> Option<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut p = PathBuf::from("/");
    for c in path.components().skip(1) {
        p.push(c);
        let mode = std::fs::metadata(&p).ok()?.permissions().mode();
        if mode & 0o001 == 0 {
            return Some((p, mode & 0o7777));
        }
    }
    None
}

impl RunSpec {
    /// Check every option; `stdin_tty` tells whether stdin is a terminal (for -t).
    pub fn from_args(a: &RunArgs, facts: &HostFacts, stdin_tty: bool) -> Result<RunSpec, UsageError> {
        let u = |m: String| UsageError(m);
        let taken = [
            (a.hostname.is_some(), "--hostname"),
            (a.overlay, "--overlay"),
            (a.tag.is_some(), "--tag"),
        ];
        let bundle = super::bundle::resolve(a.bundle.as_deref(), &a.source, !a.command.is_empty(), &taken)?;
        let from_bundle = bundle.map(|b| RunArgs {
            source: b.rootfs.display().to_string(),
            command: b.args,
            hostname: b.hostname,
            overlay: !b.readonly,
            env: b.env.into_iter().chain(a.env.iter().cloned()).collect(),
            bundle: None,
            ..a.clone()
        });
        let a = from_bundle.as_ref().unwrap_or(a);
        let memory = a.memory.as_deref().map(|m| parse_memory(m, facts)).transpose()?;
        let cpus = a.cpus.as_deref().map(|c| parse_cpus(c, facts)).transpose()?;
        let ports = a.publish.iter().map(|p| parse_port(p)).collect::<Result<Vec<_>, _>>()?;
        for (i, p) in ports.iter().enumerate() {
            if ports[..i].iter().any(|q| q.host == p.host) {
                return Err(u(format!("-p: host port {} is published twice", p.host)));
            }
        }
        let net = match (a.net, ports.is_empty()) {
            (Some(NetMode::None), false) => {
                return Err(u(format!("-p {}: publishing a port needs --net bridge", a.publish[0])))
            }
            (Some(n), _) => n,
            (None, true) => NetMode::None,
            (None, false) => NetMode::Bridge,
        };
        let name = a.name.as_deref().map(parse_name).transpose()?;
        let hostname = a.hostname.as_deref().map(parse_hostname).transpose()?;
        let env = a
            .env
            .iter()
            .map(|e| parse_env(e, |k| std::env::var(k).ok()))
            .collect::<Result<Vec<_>, _>>()?;
        if a.tty && !stdin_tty {
            return Err(u(
                "-t: stdin is not a terminal; run it from a terminal or leave -t out".into()
            ));
        }
        let source = classify_source(&a.source, a.tag.as_deref(), probe_path)?;
        let source = match source {
            Source::Rootfs(p) => {
                let real = std::fs::canonicalize(&p).map_err(|e| u(format!("{}: {e}", p.display())))?;
                if real == Path::new("/") {
                    return Err(u("the rootfs must not be the host's / (give a directory such as one made by rootfs-builder build)".into()));
                }
                if !a.overlay {
                    for d in ["proc", "dev"] {
                        if !real.join(d).is_dir() {
                            return Err(u(format!(
                                "{}/{d} is missing: the container's /{d} is mounted there (mkdir it, or use --overlay)",
                                real.display()
                            )));
                        }
                    }
                }
                Source::Rootfs(real)
            }
            other => other,
        };
        if a.command.is_empty() && !source.is_image() {
            return Err(u(format!(
                "no command given: workbench run [OPTIONS] {} CMD [ARG...], e.g. /bin/sh",
                a.source
            )));
        }
        if a.userns {
            match &source {
                Source::Rootfs(real) if !a.overlay => {
                    if let Some((dir, mode)) = unsearchable_ancestor(real) {
                        return Err(u(format!(
                            "--userns: {} (mode {mode:o}) is not searchable by others, and the container's root is uid {USERNS_BASE} on the host: chmod o+x {}",
                            dir.display(),
                            dir.display()
                        )));
                    }
                }
                _ => {
                    return Err(u(
                        "--userns works with a rootfs directory in its read-only mode, not with images or --overlay"
                            .into(),
                    ))
                }
            }
        }
        if a.keep || a.detach {
            let flag = if a.detach { "--detach" } else { "--keep" };
            if matches!(source, Source::Rootfs(_)) && !a.overlay {
                return Err(u(format!(
                    "{flag} keeps the container's overlay upper dir: give an image, or --overlay with a rootfs directory"
                )));
            }
            if a.detach && (a.tty || a.interactive) {
                return Err(u(
                    "--detach runs without a terminal or stdin: leave -t and -i out".into()
                ));
            }
        }
        if let Some(bad) = a.command.first().filter(|c| c.is_empty()) {
            return Err(u(format!("the command {bad:?} is empty")));
        }
        Ok(RunSpec {
            source,
            argv: a.command.clone(),
            memory,
            memory_text: a.memory.clone(),
            cpus,
            net,
            ports,
            hostname,
            name,
            overlay: a.overlay,
            env,
            keep_stdin: a.interactive || a.tty,
            tty: a.tty,
            verbose: a.verbose,
            userns: a.userns,
            keep: a.keep || a.detach,
            detach: a.detach,
        })
    }

    /// The namespaces of the child.
    pub fn clone_flags(&self) -> CloneFlags {
        let f = CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWNET;
        if self.userns {
            f | CloneFlags::CLONE_NEWUSER
        } else {
            f
        }
    }
}

/// The container's environment: defaults, then the image's, then `-e`.
pub fn environment(
    hostname: &str,
    tty: bool,
    image_env: &[String],
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), "/root".into()),
        ("HOSTNAME".into(), hostname.into()),
    ];
    if tty {
        env.push(("TERM".into(), std::env::var("TERM").unwrap_or_else(|_| "xterm".into())));
    }
    let mut set = |k: String, v: String| match env.iter_mut().find(|(x, _)| *x == k) {
        Some(slot) => slot.1 = v,
        None => env.push((k, v)),
    };
    for kv in image_env {
        if let Some((k, v)) = kv.split_once('=') {
            set(k.to_string(), v.to_string());
        }
    }
    for (k, v) in extra {
        set(k.clone(), v.clone());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> RunArgs {
        let mut v = vec!["workbench", "run"];
        v.extend_from_slice(args);
        match crate::cli::args::Cli::try_parse_from(v).unwrap().command {
            crate::cli::args::Command::Run(a) => a,
            other => panic!("{other:?}"),
        }
    }

    const FACTS: HostFacts = HostFacts {
        cores: 2,
        mem_total: 1 << 30,
    };

    fn rootfs() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for d in ["proc", "dev", "bin"] {
            std::fs::create_dir(t.path().join(d)).unwrap();
        }
        t
    }

    #[test]
    fn command_after_the_source_keeps_its_flags() {
        let a = parse(&[
            "--memory", "64M", "-p", "8080:80", "/r", "/bin/sh", "-c", "echo $$", "-p",
        ]);
        assert_eq!(a.source, "/r");
        assert_eq!(a.command, vec!["/bin/sh", "-c", "echo $$", "-p"]);
        assert_eq!(a.publish, vec!["8080:80"]);
        let a = parse(&["-it", "/r", "sh"]);
        assert!(a.interactive && a.tty);
    }

    #[test]
    fn spec_defaults_and_network_choice() {
        let t = rootfs();
        let r = t.path().to_str().unwrap();
        let s = RunSpec::from_args(&parse(&[r, "/bin/true"]), &FACTS, false).unwrap();
        assert_eq!(s.net, NetMode::None);
        assert_eq!(s.source, Source::Rootfs(std::fs::canonicalize(t.path()).unwrap()));
        assert!(!s.keep_stdin);
        let s = RunSpec::from_args(&parse(&["-p", "8080:80", r, "httpd"]), &FACTS, false).unwrap();
        assert_eq!(s.net, NetMode::Bridge);
        let s = RunSpec::from_args(&parse(&["--cpus", "1.5", "--memory", "32M", r, "x"]), &FACTS, false).unwrap();
        assert_eq!(s.cpus.unwrap().quota_us, 150_000);
        assert_eq!(s.memory, Some(32 << 20));
    }

    #[test]
    fn bad_input_is_one_line() {
        let t = rootfs();
        let r = t.path().to_str().unwrap();
        let cases: Vec<Vec<&str>> = vec![
            vec![r],
            vec!["/nonexistent-rootfs", "sh"],
            vec!["--memory", "abc", r, "sh"],
            vec!["--cpus", "0", r, "sh"],
            vec!["--cpus", "3", r, "sh"],
            vec!["-p", "80", r, "sh"],
            vec!["-p", "80:80", "-p", "80:81", r, "sh"],
            vec!["--net", "none", "-p", "80:80", r, "sh"],
            vec!["--name", "a/b", r, "sh"],
            vec!["--name", "..", r, "sh"],
            vec!["--hostname", "a/../b", r, "sh"],
            vec!["-t", r, "sh"],
            vec!["/", "sh"],
            vec![r, ""],
            vec!["--userns", "--overlay", r, "sh"],
            vec!["--keep", r, "sh"],
            vec!["-d", r, "sh"],
            vec!["-d", "-i", "--overlay", r, "sh"],
        ];
        for c in cases {
            let e = RunSpec::from_args(&parse(&c), &FACTS, false).unwrap_err().0;
            assert!(!e.is_empty() && !e.contains('\n'), "{c:?}: {e}");
        }
        std::fs::remove_dir(t.path().join("proc")).unwrap();
        let e = RunSpec::from_args(&parse(&[r, "sh"]), &FACTS, false).unwrap_err().0;
        assert!(e.contains("/proc is missing"), "{e}");
        assert!(RunSpec::from_args(&parse(&["--overlay", r, "sh"]), &FACTS, false).is_ok());
        let s = RunSpec::from_args(&parse(&["-d", "--overlay", r, "sh"]), &FACTS, false).unwrap();
        assert!(s.keep && s.detach, "--detach keeps the container");
    }

    #[test]
    fn environment_layers() {
        let env = environment(
            "box",
            false,
            &["PATH=/img/bin".into(), "A=1".into()],
            &[("A".into(), "2".into())],
        );
        assert_eq!(env[0], ("PATH".into(), "/img/bin".into()));
        assert!(env.contains(&("HOSTNAME".into(), "box".into())));
        assert!(env.contains(&("A".into(), "2".into())));
        assert!(!env.iter().any(|(k, _)| k == "TERM"));
    }
}
