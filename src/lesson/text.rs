//! Lesson text as data: `lessons/<id>.toml`, compiled into the binary.
//!
//! The engine never hard-codes narration; the same files feed the book through
//! mdBook's `{{#include}}`, so what a learner reads is what the CLI prints.

use serde::Deserialize;

/// The text of one lesson.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LessonText {
    pub id: String,
    pub order: u32,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The lesson options it takes, by flag name without `--` (one of
    /// [`crate::lesson::LessonOptions::NAMES`]); any other is refused.
    pub options: Vec<String>,
    pub title: String,
    pub goal: String,
    /// Which section of which classic tutorial the lesson reproduces, in words.
    pub tutorial: String,
    /// Where to read that tutorial (an https URL; the book links it, the CLI prints it).
    pub tutorial_url: String,
    pub intro: String,
    pub watch: Vec<String>,
    pub exercises: Vec<String>,
    pub steps: Vec<StepText>,
}

/// The text of one step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepText {
    pub id: String,
    pub title: String,
    /// The system call(s) the step performs.
    pub syscall: String,
    /// The classic shell command it equals.
    pub command: String,
    pub narration: String,
    /// The expected kernel effect, in words (what the checks verify).
    pub expect: String,
}

/// Every lesson text file, by file name. A test checks this list against `lessons/`.
pub const FILES: &[(&str, &str)] = &[
    ("chroot-busybox.toml", include_str!("../../lessons/chroot-busybox.toml")),
    ("pid-ns.toml", include_str!("../../lessons/pid-ns.toml")),
    ("mount-proc.toml", include_str!("../../lessons/mount-proc.toml")),
    ("cgroup-cpu-quota.toml", include_str!("../../lessons/cgroup-cpu-quota.toml")),
    ("cpu-shares.toml", include_str!("../../lessons/cpu-shares.toml")),
    ("memory-oom.toml", include_str!("../../lessons/memory-oom.toml")),
    ("pids-limit.toml", include_str!("../../lessons/pids-limit.toml")),
    ("overlay-demo.toml", include_str!("../../lessons/overlay-demo.toml")),
    ("image-layers.toml", include_str!("../../lessons/image-layers.toml")),
    ("veth-bridge.toml", include_str!("../../lessons/veth-bridge.toml")),
    ("nat-port-map.toml", include_str!("../../lessons/nat-port-map.toml")),
    ("net-modes.toml", include_str!("../../lessons/net-modes.toml")),
    ("vxlan-overlay.toml", include_str!("../../lessons/vxlan-overlay.toml")),
];

/// Parse every lesson text, ordered by `order` (once per process: a lesson
/// run looks its text up several times).
pub fn all() -> Vec<LessonText> {
    static PARSED: std::sync::OnceLock<Vec<LessonText>> = std::sync::OnceLock::new();
    PARSED
        .get_or_init(|| {
            let mut v: Vec<LessonText> = FILES
                .iter()
                .map(|(name, text)| toml::from_str(text).unwrap_or_else(|e| panic!("lessons/{name} does not parse: {e}")))
                .collect();
            v.sort_by_key(|l| l.order);
            v
        })
        .clone()
}

/// The text of lesson `id` (or one of its aliases).
pub fn find(id: &str) -> Option<LessonText> {
    all().into_iter().find(|l| l.id == id || l.aliases.iter().any(|a| a == id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_lessons_dir_is_compiled_in() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/lessons");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn texts_are_complete_and_consistent() {
        let all = all();
        let mut orders: Vec<u32> = all.iter().map(|l| l.order).collect();
        orders.dedup();
        assert_eq!(orders.len(), all.len(), "two lessons share an order");
        for (name, _) in FILES {
            let l = all.iter().find(|l| format!("{}.toml", l.id) == *name).unwrap_or_else(|| panic!("{name}: id does not match file name"));
            assert!(!l.goal.is_empty() && !l.intro.trim().is_empty() && !l.tutorial.is_empty(), "{}: empty goal/intro/tutorial", l.id);
            let url = &l.tutorial_url;
            assert!(url.starts_with("https://") && url.len() > 12 && !url.contains(char::is_whitespace) && !url.contains(['(', ')', '<', '>']), "{}: tutorial_url must be one https URL, got {url:?}", l.id);
            assert!(l.watch.len() >= 2, "{}: say what to watch", l.id);
            assert!(l.exercises.len() >= 2, "{}: give exercises", l.id);
            assert!(!l.steps.is_empty(), "{}: no steps", l.id);
            for s in &l.steps {
                for (what, v) in [("title", &s.title), ("syscall", &s.syscall), ("command", &s.command), ("narration", &s.narration), ("expect", &s.expect)] {
                    assert!(!v.trim().is_empty(), "{} step {}: empty {what}", l.id, s.id);
                }
            }
            let mut ids: Vec<&str> = l.steps.iter().map(|s| s.id.as_str()).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), l.steps.len(), "{}: duplicate step ids", l.id);
        }
    }

    #[test]
    fn options_name_known_flags_once() {
        for l in all() {
            for o in &l.options {
                assert!(crate::lesson::LessonOptions::NAMES.contains(&o.as_str()), "{}: options names --{o}, which is not a lesson option ({:?})", l.id, crate::lesson::LessonOptions::NAMES);
            }
            let mut v = l.options.clone();
            v.sort();
            v.dedup();
            assert_eq!(v.len(), l.options.len(), "{}: an option is listed twice", l.id);
        }
    }

    #[test]
    fn aliases_resolve() {
        assert_eq!(find("unshare-pid").unwrap().id, "pid-ns");
        assert!(find("nope").is_none());
    }

    #[test]
    fn every_name_means_one_lesson() {
        // `find` takes the first match: a name two lessons claim would
        // silently run the earlier one.
        let mut seen: std::collections::BTreeMap<String, String> = Default::default();
        for l in all() {
            for name in std::iter::once(&l.id).chain(&l.aliases) {
                if let Some(other) = seen.insert(name.clone(), l.id.clone()) {
                    panic!("\"{name}\" names both {other} and {}", l.id);
                }
            }
        }
    }
}
