//! The lessons' actions, one module per lesson, and the registry.

pub mod cg;
pub mod cgroup_cpu_quota;
pub mod chroot_busybox;
pub mod cpu_shares;
pub mod hog;
pub mod image_layers;
pub mod memory_oom;
pub mod mount_proc;
pub mod nat_port_map;
pub mod net_modes;
pub mod netlab;
pub mod overlay_demo;
pub mod pid_ns;
pub mod pids_limit;
pub mod veth_bridge;
pub mod vxlan_overlay;

use std::collections::BTreeMap;
use std::path::Path;

use nix::sched::CloneFlags;

use crate::kernel::child::{NsChild, Request};
use crate::lesson::LessonDef;
use crate::observe::{capture, Capture, Snapshot};
use crate::state::{self, Resource};

/// Every lesson, in tour order.
pub const ALL: &[LessonDef] = &[
    chroot_busybox::DEF,
    pid_ns::DEF,
    mount_proc::DEF,
    cgroup_cpu_quota::DEF,
    cpu_shares::DEF,
    memory_oom::DEF,
    pids_limit::DEF,
    overlay_demo::DEF,
    image_layers::DEF,
    veth_bridge::DEF,
    nat_port_map::DEF,
    net_modes::DEF,
    vxlan_overlay::DEF,
];

/// Find a lesson by id or alias.
pub fn find(name: &str) -> Option<&'static LessonDef> {
    let text = crate::lesson::text::find(name)?;
    ALL.iter().find(|d| d.id == text.id)
}

/// The closest lesson id to a mistyped name, for "did you mean".
pub fn closest(name: &str) -> Option<String> {
    let mut names: Vec<String> = Vec::new();
    for t in crate::lesson::text::all() {
        names.push(t.id.clone());
        names.extend(t.aliases.clone());
    }
    names
        .into_iter()
        .map(|n| (strsim::jaro_winkler(name, &n), n))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| crate::lesson::text::find(&n).map(|t| t.id).unwrap_or(n))
}

/// `clone(2)` a namespace child, recorded in the state file in the same breath,
/// then released (the end of the pipe synchronisation).
pub fn spawn_child(flags: CloneFlags) -> anyhow::Result<NsChild> {
    let mut child = spawn_child_held(flags)?;
    child.act(&Request::Go)?;
    Ok(child)
}

/// Like [`spawn_child`] but the child stays blocked until sent [`Request::Go`].
pub fn spawn_child_held(flags: CloneFlags) -> anyhow::Result<NsChild> {
    state::track(|| -> anyhow::Result<_> {
        let child = NsChild::spawn(flags)?;
        let start = crate::kernel::proc::start_time(child.pid()).unwrap_or(0);
        let r = Resource::Process { pid: child.pid(), start_time: start };
        Ok((child, r))
    })
}

/// A snapshot of workbench itself, the "host" side of every comparison.
pub fn host_snapshot(what: Capture) -> anyhow::Result<Snapshot> {
    let me = crate::kernel::proc::self_pid();
    capture(format!("host (workbench, pid {me})"), me, what)
}

/// The last step of the mount lessons: the host's mount table equals the one
/// captured at the start (everything was mounted in a private namespace).
pub fn check_host_mounts_unchanged(r: &mut crate::lesson::StepReport, at_start: &[crate::observe::MountEntry]) -> anyhow::Result<()> {
    let before = Snapshot { label: "host mounts at the start".into(), mounts: at_start.to_vec(), ..Default::default() };
    let after = host_snapshot(Capture::MOUNTS)?;
    let same = before.mounts == after.mounts;
    r.check("host mountinfo equals the one at the start", "identical", if same { "identical" } else { "differs" }, same);
    r.observe(before, after);
    Ok(())
}

/// A snapshot of a namespace child.
pub fn child_snapshot(child: &NsChild, what: Capture) -> anyhow::Result<Snapshot> {
    capture(format!("child (pid {})", child.pid()), child.pid(), what)
}

/// Facts about files in a tree: "present", "-> target" for links, or "absent".
pub fn file_facts(root: &Path, rel: &[String]) -> BTreeMap<String, String> {
    rel.iter()
        .map(|r| {
            let p = root.join(r.trim_start_matches('/'));
            let v = match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => format!("-> {}", std::fs::read_link(&p).map(|t| t.display().to_string()).unwrap_or_default()),
                Ok(m) => format!("present ({} bytes)", m.len()),
                Err(_) => "absent".to_string(),
            };
            (format!("rootfs/{}", r.trim_start_matches('/')), v)
        })
        .collect()
}

/// PIDs from `ps` output (first column, header skipped).
pub fn ps_pids(output: &str) -> Vec<i32> {
    output.lines().filter_map(|l| l.split_whitespace().next()?.parse().ok()).collect()
}

/// The prompt for `--shell`.
pub fn shell_env(lesson: &str) -> Vec<(String, String)> {
    vec![("PS1".into(), format!("[workbench {lesson}] \\h:\\w\\$ ")), ("HOME".into(), "/root".into())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_and_text_have_the_same_steps() {
        let texts = crate::lesson::text::all();
        assert_eq!(texts.len(), ALL.len(), "a lesson has text but no code, or code but no text");
        for def in ALL {
            let t = texts.iter().find(|t| t.id == def.id).unwrap_or_else(|| panic!("no text for {}", def.id));
            let ids: Vec<&str> = t.steps.iter().map(|s| s.id.as_str()).collect();
            assert_eq!(ids, def.steps, "{}: steps in lessons/{}.toml and in the code differ", def.id, def.id);
        }
    }

    #[test]
    fn tour_order_follows_the_order_field() {
        let by_order: Vec<String> = crate::lesson::text::all().into_iter().map(|t| t.id).collect();
        let tour: Vec<&str> = ALL.iter().map(|d| d.id).collect();
        assert_eq!(tour, by_order, "ALL must list lessons in the `order` of their text files");
    }

    #[test]
    fn suggests_closest_lesson() {
        assert_eq!(closest("pid-nss").as_deref(), Some("pid-ns"));
        assert_eq!(closest("mount_proc").as_deref(), Some("mount-proc"));
        assert_eq!(closest("zzzzzz"), None);
        assert_eq!(find("unshare-pid").unwrap().id, "pid-ns");
    }

    #[test]
    fn parses_ps_output() {
        let out = "PID   USER     TIME  COMMAND\n    1 root      0:00 workbench\n    7 root      0:00 ps\n";
        assert_eq!(ps_pids(out), vec![1, 7]);
    }
}
