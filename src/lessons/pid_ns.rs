//! pid-ns: `clone()` into new UTS, IPC, PID and mount namespaces.
//!
//! A PID namespace numbers processes afresh: the first process in it is PID 1
//! and has the duties of init, while the host still knows it by its ordinary
//! PID. The UTS namespace gives it its own hostname. Neither gives it a new
//! /proc — that needs a mount, shown in the next lesson.

use nix::sched::CloneFlags;

use crate::kit::{check_namespaces, child_snapshot, host_snapshot, shell_env, spawn_child_held};
use crate::host::Host;
use crate::kernel::child::{NsChild, Request};
use crate::lesson::{Cx, Lesson, LessonDef, Spot, StepReport};
use crate::observe::{Capture, Snapshot};

pub const DEF: LessonDef = LessonDef::of::<PidNs>(preflight).shell("inside the lesson").spots(&[("child-pid", Spot::Procs(1))]);

/// The hostname of the classic tutorial.
pub const DEFAULT_HOSTNAME: &str = "In Namespace";

fn preflight(host: &Host, _opts: &crate::lesson::LessonOptions) -> anyhow::Result<()> {
    host.require_root("clone(CLONE_NEWPID|CLONE_NEWUTS|...) needs CAP_SYS_ADMIN")?;
    host.require_static_busybox()?;
    Ok(())
}

pub fn flags() -> CloneFlags {
    CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS
}

#[derive(Default)]
struct PidNs {
    child: Option<NsChild>,
    host_pid: i32,
}

impl PidNs {
    fn child(&mut self) -> anyhow::Result<&mut NsChild> {
        self.child.as_mut().ok_or_else(|| anyhow::anyhow!("no child: the clone step did not run"))
    }
}

impl Lesson for PidNs {
    fn run_step(&mut self, step: &str, cx: &mut Cx, r: &mut StepReport) -> anyhow::Result<()> {
        match step {
            "clone" => {
                let before = host_snapshot(Capture::NS)?;
                let child = spawn_child_held(flags())?;
                self.host_pid = child.pid();
                r.say("parent", "clone(child_fn, ..., CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNS|SIGCHLD)", format!("clone() = {}   (the child's PID as the parent sees it; the child now waits on the pipe)", child.pid()));
                let after = child_snapshot(&child, Capture::NS)?;
                // time namespaces arrived in Linux 5.6: shared where the host has them.
                let shared: &[&str] = if before.namespaces.contains_key("time") {
                    &["net", "user", "cgroup", "time"]
                } else {
                    &["net", "user", "cgroup"]
                };
                check_namespaces(r, &before, &after, &["pid", "uts", "ipc", "mnt"], shared);
                r.observe(before, after);
                self.child = Some(child);
            }
            "child-pid" => {
                let host_pid = self.host_pid;
                let before = Snapshot { label: "child blocked on the pipe".into(), facts: [("PID seen by the parent".to_string(), host_pid.to_string())].into(), ..Default::default() };
                let child = self.child()?;
                child.act(&Request::Go)?;
                let (pid, ppid, _) = child.whoami()?;
                r.say("child", "printf(\"PID: %ld\\n\", (long)getpid())", format!("PID: {pid}"));
                r.say("parent", "printf(\"clone() = %ld\\n\", (long)child_pid)", format!("clone() = {host_pid}"));
                let nspid = crate::kernel::proc::ns_pids(std::path::Path::new("/proc"), host_pid).unwrap_or_default();
                let nspid_text = nspid.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" ");
                r.say("host", format!("grep NSpid /proc/{host_pid}/status"), format!("NSpid:\t{}", nspid.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\t")));
                let mut facts = before.facts.clone();
                facts.insert("getpid() inside".into(), pid.to_string());
                facts.insert("getppid() inside".into(), ppid.to_string());
                facts.insert("NSpid (host, inside)".into(), nspid_text.clone());
                let after = Snapshot { label: "child released".into(), facts, ..Default::default() };
                r.observe(before, after);
                r.check_eq("getpid() inside the namespace", 1, pid);
                r.check_eq("getppid() inside (parent is outside)", 0, ppid);
                r.check_eq("NSpid: host PID, then namespace PID", format!("{host_pid} 1"), nspid_text);
            }
            "hostname" => {
                let name = cx.options.hostname.clone().unwrap_or_else(|| DEFAULT_HOSTNAME.to_string());
                let host_name = || nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
                let host_before = host_name();
                let child = self.child()?;
                let (_, _, inside_before) = child.whoami()?;
                child.act(&Request::SetHostname(name.clone()))?;
                let (_, _, inside_after) = child.whoami()?;
                let host_after = host_name();
                r.say("child", format!("sethostname(\"{name}\", {})", name.len()), "");
                r.say("child", "hostname", inside_after.clone());
                r.say("host", "hostname", host_after.clone());
                let snap = |label: &str, inside: &str, host: &str| Snapshot {
                    label: label.into(),
                    facts: [("hostname inside".to_string(), inside.to_string()), ("hostname on the host".to_string(), host.to_string())].into(),
                    ..Default::default()
                };
                r.observe(snap("before sethostname", &inside_before, &host_before), snap("after sethostname", &inside_after, &host_after));
                r.check_eq("hostname inside", name, inside_after);
                r.check_eq("hostname on the host is unchanged", host_before, host_after);
            }
            "ps-sees-host" => {
                let busybox = cx.host.require_static_busybox()?.display().to_string();
                let host_pid = self.host_pid;
                let child = self.child()?;
                let ps = child.run(&[&busybox, "ps"])?;
                let pids = crate::kit::ps_pids(&ps.stdout);
                let me = crate::kernel::proc::self_pid();
                let shown: Vec<&str> = ps.stdout.lines().filter(|l| l.contains("PID") || crate::kit::ps_pids(l).first().is_some_and(|p| *p == 1 || *p == me || *p == host_pid)).collect();
                r.say("child", "ps   (the lines for PID 1, workbench and the child)", format!("{}\n... ({} processes in all)", shown.join("\n"), pids.len()));
                r.check("ps inside lists workbench (a host process)", format!("pid {me}"), if pids.contains(&me) { format!("pid {me}") } else { "absent".into() }, pids.contains(&me));
                r.check("the child appears under its host PID, not 1", format!("pid {host_pid}"), if pids.contains(&host_pid) { format!("pid {host_pid}") } else { "absent".into() }, pids.contains(&host_pid));
                r.check("processes visible", "more than the 2 in the namespace", pids.len().to_string(), pids.len() > 2);
            }
            other => anyhow::bail!("unknown step {other}"),
        }
        Ok(())
    }

    fn shell(&mut self, cx: &mut Cx) -> anyhow::Result<()> {
        let busybox = cx.host.require_static_busybox()?.display().to_string();
        let child = self.child()?;
        child.call(&Request::Interactive { argv: vec![busybox, "sh".into()], env: shell_env("pid-ns") })?;
        Ok(())
    }
}
