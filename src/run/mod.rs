//! `workbench run`: the capstone, a small container runtime made of the pieces
//! the lessons take apart one at a time. One `clone(2)` with new PID, mount,
//! UTS, IPC and network namespaces, a root filesystem entered with
//! `pivot_root(2)`, a cgroup for the limits, a veth to a bridge for the
//! network; the book's chapter "workbench run" tells the whole story.

pub mod args;
pub mod bundle;
pub mod cgroup;
pub mod child;
pub mod keep;
pub mod launch;
pub mod net;
pub mod plan;
pub mod preflight;
pub mod rootfs;
pub mod shim;
pub mod signals;
pub mod spec;
pub mod verbose;

use std::process::ExitCode;

use crate::error::UsageError;
use crate::state;
use args::{RunArgs, RunSpec};
use signals::{Interrupted, Signals};
use spec::HostFacts;
use verbose::Trace;

/// `workbench run`: validate, create, run, wait, remove; exit with the command's status.
pub fn main(args: &RunArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let (spec, generated) = validate(args, std::io::stdin().is_terminal())?;
    if spec.detach {
        return shim::detach(&spec, generated.as_deref());
    }
    if let Some(n) = &generated {
        eprintln!("workbench: container {n}");
    }
    execute(args, &spec, None)
}

/// Check the options and the host before anything is created; a kept
/// container without `--name` gets one (returned, to be printed).
fn validate(args: &RunArgs, stdin_tty: bool) -> anyhow::Result<(RunSpec, Option<String>)> {
    // Cores and memory size matter only for the limits (probing reads several files).
    let facts = if args.memory.is_some() || args.cpus.is_some() {
        HostFacts::probe()
    } else {
        HostFacts {
            cores: u32::MAX,
            mem_total: u64::MAX,
        }
    };
    let mut spec = RunSpec::from_args(args, &facts, stdin_tty)?;
    if !nix::unistd::geteuid().is_root() {
        return Err(UsageError(
            "this needs root (clone(2) with namespace flags, mount(2), cgroups): run it in a root shell or with sudo"
                .into(),
        )
        .into());
    }
    let mut generated = None;
    if spec.keep {
        let name = spec.name.get_or_insert_with(|| {
            let n = format!("wb-{}", state::random_id());
            generated = Some(n.clone());
            n
        });
        keep::check_name(name)?;
    }
    preflight::preflight_host(&spec)?;
    Ok((spec, generated))
}

/// Create, run, wait, remove (a shim passes the pipe its CLI waits on).
fn execute(args: &RunArgs, spec: &RunSpec, shim: Option<std::os::fd::OwnedFd>) -> anyhow::Result<ExitCode> {
    let signals = Signals::block()?;
    let image = rootfs::load_image(spec, None, spec.verbose)?;
    let trace = Trace::new();
    let run = state::begin_bare(if shim.is_some() { "shim" } else { "run" })?;
    trace.mark("state begun");
    let outcome = (|| {
        if spec.keep {
            let name = spec.name.as_deref().expect("a kept container has a name");
            keep::begin(name, &args.source, &run, shim)?;
        }
        launch::launch(spec, image, &run, &signals)
    })();
    trace.mark("launch returned");
    keep::finished(match &outcome {
        Ok(code) => Some(i32::from(*code)),
        // The container was killed (SIGKILL) when the run was interrupted.
        Err(e) if e.is::<Interrupted>() => Some(137),
        Err(_) => None,
    });
    let problems = state::finish();
    trace.mark("state finished");
    for p in &problems {
        eprintln!("workbench: cleanup: {p}");
    }
    match outcome {
        Ok(code) => Ok(ExitCode::from(code)),
        Err(e) if e.is::<UsageError>() => Err(e),
        Err(e) if e.is::<Interrupted>() => Ok(ExitCode::from(
            e.downcast::<Interrupted>().map(|i| i.code()).unwrap_or(130),
        )),
        Err(e) => {
            eprintln!("workbench: error: {e:#}");
            Ok(ExitCode::from(125))
        }
    }
}
