//! The command line (clap only; no logic here).

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "workbench",
    version,
    about = "An educational, step-by-step Linux container workbench: real kernel operations, shown before and after.",
    after_help = "Lessons can also be run directly: `workbench pid-ns --step`. See `workbench list`."
)]
pub struct Cli {
    /// When to colour the output (NO_COLOR is respected with `auto`).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the lessons with their goals and the options each takes.
    List(ListArgs),
    /// Run one lesson, step by step.
    #[command(
        after_help = "Each lesson takes only its own options (the others are refused): `workbench list` shows which."
    )]
    Lesson(LessonArgs),
    /// Run every lesson in order (the classroom tour).
    Tour(TourArgs),
    /// Check that this host can run the lessons, with a remedy for each problem.
    Doctor(DoctorArgs),
    /// Remove whatever runs that were killed left behind.
    Cleanup(CleanupArgs),
    /// Run a command in a container: namespaces, pivot_root, cgroup limits, network.
    Run(crate::run::args::RunArgs),
    /// Manage the local image store: import, ls, save, load, inspect, layers, rm.
    Image(crate::image::args::ImageArgs),
    /// Turn a kept container's changes (its overlay upper dir) into a new image.
    Commit(crate::image::args::CommitArgs),
    /// List the kept containers (`run --keep`/`--detach`): running ones, or all with -a.
    Ps(crate::container::cmd::PsArgs),
    /// Print what a detached container wrote (stdout and stderr).
    Logs(crate::container::cmd::LogsArgs),
    /// Stop a running container: SIGTERM, then SIGKILL after the grace time.
    Stop(crate::container::cmd::StopArgs),
    /// Remove a kept container: its record, its upper dir and its log.
    Rm(crate::container::cmd::RmArgs),
    /// The parent of a detached container (started by `run --detach`, not meant to be typed).
    #[command(hide = true)]
    Shim(crate::run::args::RunArgs),
    /// Print a shell completion script (lesson ids included), e.g.
    /// `workbench completions bash > /etc/bash_completion.d/workbench`.
    Completions(CompletionsArgs),
    /// Write the man pages (workbench.1 and one per subcommand) into a directory
    /// (used by scripts/package, not meant to be typed).
    #[command(hide = true)]
    Man(ManArgs),
    /// The CPU hog of the cgroup lessons: threads spinning in a busy loop
    /// (started by workbench itself, not meant to be typed).
    #[command(hide = true)]
    InternalHog(HogArgs),
    /// `workbench <lesson>` is short for `workbench lesson <lesson>`.
    #[command(external_subcommand)]
    External(Vec<String>),
}

#[derive(Debug, Args)]
pub struct LessonArgs {
    /// The lesson id (or alias), e.g. pid-ns.
    pub id: String,
    /// Print one JSON object per step (and a summary) instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Wait for Enter between steps.
    #[arg(long, conflicts_with = "json")]
    pub step: bool,
    /// At the end, drop into a shell inside the lesson's namespaces.
    #[arg(long, conflicts_with = "json")]
    pub shell: bool,
    /// Record mode: print the run as one Markdown page (the book's transcripts).
    #[arg(long, conflicts_with_all = ["json", "step", "shell"])]
    pub markdown: bool,
    /// The lesson's own options (each lesson takes only those its text lists).
    #[command(flatten)]
    pub options: crate::lesson::LessonOptions,
}

#[derive(Debug, Args)]
pub struct HogArgs {
    /// Number of spinning threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub threads: u32,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub seconds: u32,
    /// Read one line from stdin before starting.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print one JSON object per lesson (JSON lines).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TourArgs {
    /// Print the lessons' JSON lines, then one `"type":"tour"` object (JSON lines).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print one JSON object per check, then a summary (JSON lines).
    #[arg(long)]
    pub json: bool,
    /// Print the checks as a Markdown table, every remedy included (the book's troubleshooting chapter).
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    /// Instead of the checks, print a JSON snapshot of the host state workbench
    /// could touch (links, netns, routes, firewall, mounts, cgroups, run files).
    #[arg(long)]
    pub host_state: bool,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Print one JSON object per removed resource and run, then a summary (JSON lines).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Where to write the pages.
    #[arg(long, default_value = ".")]
    pub dir: std::path::PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn lesson_options_are_flattened_after_the_ways_of_running() {
        // The lesson command's flags: the ways of running, then every lesson option.
        let cmd = Cli::command();
        let lesson = cmd.find_subcommand("lesson").unwrap();
        let flags: Vec<&str> = lesson
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| *l != "help")
            .collect();
        assert_eq!(flags[..4], ["json", "step", "shell", "markdown"]);
        assert_eq!(flags[4..], *crate::lesson::LessonOptions::NAMES);
    }

    #[test]
    fn lesson_flags_parse() {
        let cli = Cli::try_parse_from(["workbench", "lesson", "pid-ns", "--json", "--hostname", "box"]).unwrap();
        match cli.command {
            Command::Lesson(a) => {
                assert_eq!(a.id, "pid-ns");
                assert!(a.json);
                assert_eq!(a.options.hostname.as_deref(), Some("box"));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["workbench", "lesson", "pid-ns", "--json", "--step"]).is_err());
    }
}
