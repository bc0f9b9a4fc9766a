//! `workbench ps`, `logs`, `stop` and `rm`: the kept containers, read from
//! their records; signals go to the container's init, and its parent (the
//! shim, or a foreground `workbench run`) reaps it and writes the status.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{list, load, remove_dir, Record, State};
use crate::error::UsageError;
use crate::observe::render::{render_rows, Style};

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show exited containers too (by default only running ones).
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Print one JSON object per container (the record, its state as now seen).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The container's name.
    pub name: String,
    /// Keep printing what it writes until it exits.
    #[arg(short = 'f', long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// The container's name.
    pub name: String,
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(short = 't', long = "time", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub time: u32,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// The container's name.
    pub name: String,
    /// Remove a running container too (it is killed first).
    #[arg(short = 'f', long)]
    pub force: bool,
}

fn need_root(what: &str) -> anyhow::Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(UsageError(format!("{what} needs root: run it in a root shell or with sudo")).into())
    }
}

/// One row of `workbench ps`.
pub fn ps_row(r: &Record) -> Vec<String> {
    let dash = |v: Option<i32>| v.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
    let state = match (r.effective_state(), r.state, r.exit_code) {
        (State::Running, _, _) => "running".to_string(),
        (State::Exited, _, Some(c)) => format!("exited ({c})"),
        (State::Exited, State::Running, None) => "exited (lost its parent)".to_string(),
        (State::Exited, _, None) => "exited".to_string(),
    };
    let running = r.is_running();
    vec![
        r.name.clone(),
        r.id.clone(),
        state,
        if running { dash(r.pid) } else { "-".into() },
        if running { dash(r.shim_pid) } else { "-".into() },
        r.image.clone().unwrap_or_else(|| r.source.clone()),
        r.argv.join(" "),
        r.created.clone(),
    ]
}

/// `workbench ps [-a] [--json]`.
pub fn ps(a: &PsArgs, style: Style) -> anyhow::Result<ExitCode> {
    need_root("workbench ps (the records are root's)")?;
    let shown: Vec<Record> = list()?.into_iter().filter(|r| a.all || r.is_running()).collect();
    if a.json {
        for r in &shown {
            let mut v = serde_json::to_value(r)?;
            v["state"] = serde_json::to_value(r.effective_state())?;
            println!("{v}");
        }
    } else {
        let rows: Vec<Vec<String>> = shown.iter().map(ps_row).collect();
        print!(
            "{}",
            render_rows(
                &["name", "id", "state", "pid", "shim pid", "image", "command", "created"],
                &rows,
                style
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `workbench logs NAME [-f]`.
pub fn logs(a: &LogsArgs) -> anyhow::Result<ExitCode> {
    need_root("workbench logs")?;
    let r = load(&a.name)?;
    let mut f = match std::fs::File::open(r.log()) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(UsageError(format!(
            "{} has no log: it ran in the foreground (its output went to the terminal); run it with --detach to log",
            a.name
        ))
            .into())
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = std::io::stdout().lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        f.read_to_end(&mut buf)?;
        out.write_all(&buf)?;
        out.flush()?;
        if !a.follow {
            break;
        }
        // Stop following once it exited and everything it wrote is printed.
        let running = load(&a.name).map(|r| r.is_running()).unwrap_or(false);
        if !running {
            buf.clear();
            f.read_to_end(&mut buf)?;
            out.write_all(&buf)?;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(ExitCode::SUCCESS)
}

/// Wait until the container is no longer running and its parent is done
/// with it (the record says "exited", or the shim is gone).
fn wait_stopped(name: &str, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        match load(name) {
            Ok(r) => {
                let shim_gone = r.shim_pid.is_none_or(|s| !super::is_shim(s));
                if !r.is_running() && shim_gone {
                    return true;
                }
            }
            Err(_) => return true,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The container's init, if it is one (never signal a pid the kernel gave to another process).
fn init_of(r: &Record) -> Option<Pid> {
    r.pid.filter(|p| super::is_ns_init(*p)).map(Pid::from_raw)
}

/// `workbench stop NAME [-t SECS]`: SIGTERM, then SIGKILL after the grace time.
pub fn stop(a: &StopArgs) -> anyhow::Result<ExitCode> {
    need_root("workbench stop")?;
    let r = load(&a.name)?;
    if r.is_running() {
        if let Some(pid) = init_of(&r) {
            let _ = kill(pid, Signal::SIGTERM);
            // A PID namespace's init ignores SIGTERM unless it handles it (as docker stop finds).
            if !wait_stopped(&a.name, Duration::from_secs(a.time.into())) {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        if !wait_stopped(&a.name, Duration::from_secs(10)) {
            anyhow::bail!("{} did not stop within 10 s of SIGKILL", a.name);
        }
    }
    println!("{}", a.name);
    Ok(ExitCode::SUCCESS)
}

/// `workbench rm NAME [-f]`: remove the record, the upper dir and the log.
pub fn rm(a: &RmArgs) -> anyhow::Result<ExitCode> {
    need_root("workbench rm")?;
    let r = load(&a.name)?;
    if r.is_running() {
        if !a.force {
            return Err(UsageError(format!(
                "{} is running: workbench stop {} first, or workbench rm -f {}",
                a.name, a.name, a.name
            ))
            .into());
        }
        if let Some(pid) = init_of(&r) {
            let _ = kill(pid, Signal::SIGKILL);
        }
        if !wait_stopped(&a.name, Duration::from_secs(10)) {
            anyhow::bail!("{} did not stop within 10 s of SIGKILL", a.name);
        }
    }
    remove_dir(&a.name)?;
    println!("{}", a.name);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_show_what_is_known() {
        let mut r = Record {
            version: 1,
            name: "c1".into(),
            id: "ab12cd".into(),
            source: "/tmp/rootfs".into(),
            image: None,
            lowers: vec![],
            argv: vec!["sleep".into(), "5".into()],
            created: "2026-12-03T15:00:00Z".into(),
            state: State::Exited,
            pid: None,
            exit_code: Some(143),
            shim_pid: None,
        };
        assert_eq!(
            ps_row(&r),
            [
                "c1",
                "ab12cd",
                "exited (143)",
                "-",
                "-",
                "/tmp/rootfs",
                "sleep 5",
                "2026-12-03T15:00:00Z"
            ]
        );
        // The record says running, but the shim is gone (SIGKILLed).
        r.state = State::Running;
        r.exit_code = None;
        r.pid = Some(1);
        r.shim_pid = Some(i32::MAX);
        r.image = Some("alpine:3.19".into());
        let row = ps_row(&r);
        assert_eq!(row[2], "exited (lost its parent)");
        assert_eq!(row[3], "-");
        assert_eq!(row[5], "alpine:3.19");
    }
}
