//! The lesson engine: numbered steps, each printed, performed, diffed and checked.
//!
//! A lesson is two halves kept apart: its words (`lessons/<id>.toml`, see
//! [`text`]) and its actions (a [`Lesson`] implementation in `src/lessons/`).
//! The runner walks the steps in the order of the text, and for every step
//! prints what it does (syscall and classic command), lets the code do it for
//! real, then shows the before/after diff and the checks of the kernel effect.

pub mod report;
pub mod runner;
pub mod text;

use std::path::PathBuf;

pub use report::StepReport;

use crate::host::Host;

/// Options a learner can give a lesson. Each lesson reads the ones it
/// understands and validates them in its `preflight`, before anything is created.
#[derive(Debug, Clone, Default)]
pub struct LessonOptions {
    /// Hostname the UTS lessons set inside (default "In Namespace").
    pub hostname: Option<String>,
    /// CPU quota in microseconds per period (cgroup-cpu-quota).
    pub quota_us: Option<u64>,
    /// CFS period in microseconds (cgroup-cpu-quota).
    pub period_us: Option<u64>,
    /// Relative CPU weights of two competing hogs, "A:B" (cpu-shares).
    pub weights: Option<String>,
    /// Memory limit such as "64M" (memory-oom).
    pub memory: Option<String>,
    /// Maximum number of tasks (pids-limit).
    pub pids_max: Option<u64>,
    /// Container subnet such as "10.213.0.0/24" (network lessons).
    pub subnet: Option<String>,
    /// Host port of a port mapping (nat-port-map).
    pub host_port: Option<u16>,
    /// Container port of a port mapping (nat-port-map).
    pub container_port: Option<u16>,
}

impl LessonOptions {
    /// The lesson options' flag names (without `--`), as `options` in
    /// `lessons/<id>.toml` names them; a test checks them against the CLI.
    pub const NAMES: &'static [&'static str] = &["hostname", "quota", "period", "weights", "memory", "pids-max", "subnet", "host-port", "container-port"];

    /// The names of the options given, in the order of [`Self::NAMES`].
    pub fn given(&self) -> Vec<&'static str> {
        let set = [
            self.hostname.is_some(),
            self.quota_us.is_some(),
            self.period_us.is_some(),
            self.weights.is_some(),
            self.memory.is_some(),
            self.pids_max.is_some(),
            self.subnet.is_some(),
            self.host_port.is_some(),
            self.container_port.is_some(),
        ];
        Self::NAMES.iter().zip(set).filter(|(_, on)| *on).map(|(n, _)| *n).collect()
    }

    /// Refuse options the lesson does not take (`takes`: the `options` of its
    /// text), before anything is created: one line naming what it takes.
    pub fn refuse_others(&self, lesson: &str, takes: &[String]) -> anyhow::Result<()> {
        let others: Vec<String> = self.given().into_iter().filter(|g| !takes.iter().any(|t| t == g)).map(|g| format!("--{g}")).collect();
        if others.is_empty() {
            return Ok(());
        }
        let verb = if others.len() == 1 { "does" } else { "do" };
        let it_takes = if takes.is_empty() { "it takes no options".to_string() } else { format!("it takes: {}", takes.iter().map(|t| format!("--{t}")).collect::<Vec<_>>().join(", ")) };
        anyhow::bail!("{} {verb} not apply to {lesson} ({it_takes}); see `workbench lesson {lesson} --help`", others.join(", "))
    }
}

/// What a lesson's code gets to work with.
pub struct Cx {
    /// The run's private working directory (recorded; removed at the end).
    pub workdir: PathBuf,
    pub run_id: String,
    pub host: Host,
    pub options: LessonOptions,
}

/// The actions of a lesson. Step ids must match the lesson's text file.
pub trait Lesson {
    /// Perform one step and report what happened.
    fn run_step(&mut self, step: &str, cx: &mut Cx) -> anyhow::Result<StepReport>;

    /// `--shell`: an interactive shell where the tutorial would give one.
    fn shell(&mut self, _cx: &mut Cx) -> anyhow::Result<()> {
        anyhow::bail!("this lesson has no shell to drop into")
    }
}

/// A lesson known to the engine.
pub struct LessonDef {
    pub id: &'static str,
    /// The step ids the code implements, in order (checked against the text).
    pub steps: &'static [&'static str],
    /// Checks made before anything is created (root, tools, kernel features,
    /// option values). An error here is a one-line message and exit status 2.
    pub preflight: fn(&Host, &LessonOptions) -> anyhow::Result<()>,
    pub new: fn() -> Box<dyn Lesson>,
    /// `--shell`: where the lesson's shell runs, for the line printed before
    /// it starts ("inside the lesson"); `None` if [`Lesson::shell`] is not
    /// implemented, and then `--shell` is refused before anything is created.
    pub shell: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_a_lesson_does_not_take_are_refused_in_one_line() {
        let takes = vec!["hostname".to_string()];
        assert!(LessonOptions::default().refuse_others("pid-ns", &takes).is_ok());
        assert!(LessonOptions { hostname: Some("box".into()), ..Default::default() }.refuse_others("pid-ns", &takes).is_ok());
        let o = LessonOptions { memory: Some("64M".into()), ..Default::default() };
        assert_eq!(o.refuse_others("pid-ns", &takes).unwrap_err().to_string(), "--memory does not apply to pid-ns (it takes: --hostname); see `workbench lesson pid-ns --help`");
        let o = LessonOptions { quota_us: Some(5), subnet: Some("abc".into()), ..Default::default() };
        assert_eq!(o.refuse_others("overlay-demo", &[]).unwrap_err().to_string(), "--quota, --subnet do not apply to overlay-demo (it takes no options); see `workbench lesson overlay-demo --help`");
    }
}
