//! The launch sequence: reserve ports, prepare the root, make the cgroup,
//! clone the child into its namespaces, let the parent write its maps, put it
//! into the cgroup and wire its network, then release it and wait.

use std::path::Path;

use anyhow::Context;

use super::args::{environment, RunSpec, DEFAULT_PATH, USERNS_BASE, USERNS_SIZE};
use super::cgroup::make_cgroup;
use super::rootfs::{mkdir, prepare_root};
use super::signals::{wait_for, ExitStatus, Interrupted, Signals};
use super::spec::{NetMode, Source};
use super::verbose::{shell_words, show, Trace};
use super::{child, net, plan};
use crate::error::UsageError;
use crate::state::{self, Resource};

/// Create everything, run the command, wait; returns its exit status.
pub(super) fn launch(
    spec: &RunSpec,
    image: Option<wb_image::LoadedImage>,
    run: &state::Run,
    signals: &Signals,
) -> anyhow::Result<u8> {
    let signals = &Signals {
        set: signals.set,
        ignore_int: spec.tty,
    };
    let trace = Trace::new();
    trace.mark("begin");
    let id = &run.run_id;
    let v = spec.verbose;
    let hostname = spec
        .hostname
        .clone()
        .or_else(|| spec.name.clone())
        .unwrap_or_else(|| format!("wb-{id}"));
    if v {
        eprintln!(
            "workbench run: container {hostname} (run {id}, {})",
            spec.source.describe()
        );
    }
    // Published ports first: one another run maps is refused before anything exists.
    net::reserve_ports(&spec.ports)?;
    // A read-only bind needs no directory of its own: the rootfs is bind-mounted
    // onto itself (in the container's mount namespace) and becomes the new root.
    let merged = match &spec.source {
        Source::Rootfs(rootfs) if !spec.overlay => rootfs.clone(),
        _ => {
            state::make_workdir(run)?;
            let m = run.workdir.join("merged");
            mkdir(&m)?;
            m
        }
    };
    let root = prepare_root(spec, image, &run.workdir, v)?;
    signals.check()?;
    trace.mark("rootfs ready");

    let cg_name = match &spec.name {
        Some(n) => format!("{n}-{id}"),
        None => format!("run-{id}"),
    };
    let group = make_cgroup(spec, &cg_name, v)?;
    signals.check()?;
    trace.mark("cgroup");

    let net_plan = match spec.net {
        NetMode::Bridge => Some(net::NetPlan::new(id, &net::reserve_subnet(id)?, &spec.ports)),
        NetMode::None => None,
    };

    let env = environment(&hostname, spec.tty, &root.image_env, &spec.env);
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, p)| p.as_str())
        .unwrap_or(DEFAULT_PATH);
    let exec = child::Exec::new(plan::exec_candidates(&root.argv[0], path), &root.argv, &env)
        .map_err(|e| UsageError(format!("command: {e}")))?;
    let mut ops = plan::build(&plan::PlanInput {
        root: root.mode.clone(),
        merged: merged.clone(),
        hostname: hostname.clone(),
        new_netns: true,
        devpts: false,
        sysfs: root.sysfs,
        keep_stdin: spec.keep_stdin,
        userns: spec.userns,
        keep_flags: match &root.mode {
            plan::RootMode::ReadOnlyBind { rootfs, .. } => plan::mount_flags_of(rootfs),
            plan::RootMode::Overlay { .. } => 0,
        },
    });
    if spec.tty {
        add_terminal(&mut ops, &merged);
    }
    super::keep::adjust_plan(&mut ops, &root.mode);
    let flags = spec.clone_flags();
    trace.mark("plan");

    let spawned = state::track(|| -> anyhow::Result<_> {
        let s = child::spawn(flags, &ops, &exec, spec.userns)?;
        let start = crate::kernel::proc::start_time(s.pid).unwrap_or(0);
        let r = Resource::Process {
            pid: s.pid,
            start_time: start,
        };
        Ok((s, r))
    })?;
    let pid = spawned.pid;
    trace.mark("clone");
    let user = if spec.userns { " --user" } else { "" };
    show(
        v,
        "host",
        &format!("unshare{user} --pid --mount --uts --ipc --net --fork   # pid {pid}"),
        &format!("clone({}|SIGCHLD)", crate::kernel::ns::flag_names(flags)),
    );

    let parent_side = (|| -> anyhow::Result<()> {
        if spec.userns {
            // Only a process outside the namespace can write its maps (once each).
            let map = format!("0 {USERNS_BASE} {USERNS_SIZE}\n");
            for f in ["uid_map", "gid_map"] {
                let p = format!("/proc/{pid}/{f}");
                std::fs::write(&p, &map).with_context(|| format!("write {p}"))?;
                show(v, "host", &format!("echo '{}' > {p}", map.trim()), "write(2)");
            }
        }
        if let Some(g) = &group {
            g.add_process(pid)?;
            for p in g.paths() {
                show(
                    v,
                    "host",
                    &format!("echo {pid} > {}/cgroup.procs", p.display()),
                    "write(2)",
                );
            }
        }
        if let Some(np) = &net_plan {
            net::setup(np, pid)?;
            for (c, sys) in np.commands(pid) {
                show(v, "host", &c, sys);
            }
        }
        signals.check()?;
        Ok(())
    })();
    if let Err(e) = parent_side {
        // The child may have failed first (and taken its namespaces with it):
        // its own report says more.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = wait_for(pid);
        if e.is::<Interrupted>() {
            return Err(e);
        }
        if let Some(report) = child::read_error(&spawned.errors) {
            report_child_failure(report, &ops, &root.argv[0]);
            return Ok(125);
        }
        return Err(e);
    }
    if v {
        for op in &ops {
            show(true, "container", &op.command(), &op.syscall());
        }
        let argv: Vec<String> = exec.argv().iter().map(|a| a.to_string_lossy().into_owned()).collect();
        show(
            true,
            "container",
            &format!("exec {}", shell_words(&argv)),
            "execve(2), as PID 1 of the new PID namespace",
        );
    }
    trace.mark("parent setup");

    super::keep::started(pid, &root.mode, &root.argv)?;
    // Release the child. If it already failed (and exited), the write fails
    // with EPIPE and its report is read from the error pipe below.
    let _ = nix::unistd::write(&spawned.go, b"g");
    drop(spawned.go);
    let status = match signals.wait_child(pid)? {
        Ok(status) => status,
        Err(stop) => {
            // The container dies with its PID 1; finish() removes the rest.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = wait_for(pid);
            return Err(stop.into());
        }
    };
    trace.mark("exited");
    if let Some(report) = child::read_error(&spawned.errors) {
        report_child_failure(report, &ops, &root.argv[0]);
    }
    let code = status.code();
    if let (Some(g), ExitStatus::Signaled(9)) = (&group, status) {
        if spec.memory.is_some() && g.oom_kill_count().unwrap_or(0) > 0 {
            eprintln!(
                "workbench: the command was killed by the OOM killer (--memory {})",
                spec.memory_text.as_deref().unwrap_or("?")
            );
        }
    }
    Ok(code)
}

/// Print what the child wrote into the error pipe.
fn report_child_failure((step, errno): (u32, i32), ops: &[plan::Op], argv0: &str) {
    let err = strip_os_error(&std::io::Error::from_raw_os_error(errno));
    if step == child::EXEC_STEP {
        eprintln!("workbench: error: exec {argv0} in the container: {err}");
    } else {
        let what = ops.get(step as usize).map(|o| o.command()).unwrap_or_default();
        eprintln!("workbench: error: container setup failed at `{what}`: {err}");
    }
}

/// With -t: make the terminal visible inside as /dev/console and at its own
/// path (e.g. /dev/pts/3), so `tty` and programs that reopen it work.
fn add_terminal(ops: &mut Vec<plan::Op>, merged: &Path) {
    let Ok(tty) = nix::unistd::ttyname(std::io::stdin()) else {
        return;
    };
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes().to_vec()).ok();
    let mut extra = Vec::new();
    let mut targets = vec![merged.join("dev/console")];
    if let Ok(rel) = tty.strip_prefix("/dev/") {
        let inside = merged.join("dev").join(rel);
        if let Some(dir) = inside.parent().filter(|d| *d != merged.join("dev")).and_then(c) {
            extra.push(plan::Op::Mkdir { path: dir, mode: 0o755 });
        }
        targets.push(inside);
    }
    for t in targets {
        let (Some(target), Some(source)) = (c(&t), c(&tty)) else {
            continue;
        };
        extra.push(plan::Op::Touch { path: target.clone() });
        extra.push(plan::Op::Mount(plan::MountCall {
            source,
            target,
            fstype: Default::default(),
            flags: libc::MS_BIND,
            data: None,
        }));
    }
    let pivot = ops
        .iter()
        .position(|o| matches!(o, plan::Op::PivotRoot { .. }))
        .unwrap_or(ops.len());
    ops.splice(pivot..pivot, extra);
}

fn strip_os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
