//! The lessons' actions, one module per lesson, and the registry.

pub mod cgroup_cpu_quota;
pub mod chroot_busybox;
pub mod cpu_shares;
pub mod image_layers;
pub mod memory_oom;
pub mod mount_proc;
pub mod nat_port_map;
pub mod net_modes;
pub mod overlay_demo;
pub mod pid_ns;
pub mod pids_limit;
pub mod veth_bridge;
pub mod vxlan_overlay;

use crate::lesson::LessonDef;

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
}
