//! The lesson engine: numbered steps, each printed, performed, diffed and checked.
//!
//! A lesson is two halves kept apart: its words (`lessons/<id>.toml`, see
//! [`text`]) and its actions (a [`Lesson`] implementation in `src/lessons/`).
//! The runner walks the steps in the order of the text, and for every step
//! prints what it does (syscall and classic command), lets the code do it for
//! real, then shows the before/after diff and the checks of the kernel effect.

pub mod options;
pub mod report;
pub mod runner;
pub mod text;

use std::path::PathBuf;

pub use options::LessonOptions;
pub use report::StepReport;

use crate::host::Host;

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
