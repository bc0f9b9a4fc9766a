//! The edge of the program: turn a parsed command line into actions, errors
//! into one clear line and an exit code.
//!
//! Exit codes: 0 success; 1 a lesson check failed or doctor found a required
//! problem; 2 bad input or a missing prerequisite (nothing was created).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::cli::{Cli, ColorChoice, Command, LessonFlags};
use crate::lesson::runner::{self, RunOptions};
use crate::lesson::LessonOptions;
use crate::observe::render::{markdown_rows, render_rows, Style};
use crate::{doctor, host::Host, lessons, state};

/// A failure before anything ran: bad input or missing prerequisite (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let style = style_for(cli.color);
    colored::control::set_override(style.color);
    let result = dispatch(cli.command, style);
    // A signal's teardown may be under way: its exit status wins.
    crate::signals::stop_if_caught();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("workbench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn style_for(choice: ColorChoice) -> Style {
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    let color = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    let width = if tty { terminal_width().unwrap_or(120) } else { 120 };
    Style { color, width }
}

fn terminal_width() -> Option<u16> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointed-to struct.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 20).then_some(ws.ws_col)
}

fn dispatch(cmd: Command, style: Style) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::List => {
            let rows: Vec<Vec<String>> = crate::lesson::text::all()
                .into_iter()
                .map(|t| vec![t.order.to_string(), t.id.clone(), t.aliases.join(", "), t.goal.clone()])
                .collect();
            print!("{}", render_rows(&["#", "lesson", "aliases", "goal"], &rows, style));
            println!("Run one with `workbench lesson <lesson>` (add --step to pause, --shell to explore, --json for graders).");
            Ok(ExitCode::SUCCESS)
        }
        Command::Lesson(a) => run_lesson(&a.id, &a.opts, style),
        Command::External(args) => {
            // `workbench pid-ns --step` → `workbench lesson pid-ns --step`
            let mut argv = vec!["workbench".to_string(), "lesson".to_string()];
            argv.extend(args);
            match Cli::try_parse_from(&argv) {
                Ok(Cli { command: Command::Lesson(a), .. }) => run_lesson(&a.id, &a.opts, style),
                Ok(_) => unreachable!("lesson subcommand parses as a lesson"),
                Err(e) => {
                    let _ = e.print();
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Tour(t) => tour(t.json, style),
        Command::Run(a) => crate::run::main(&a),
        Command::Completions(c) => {
            crate::manual::completions(c.shell, &mut std::io::stdout().lock());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(m) => {
            for name in crate::manual::write_man_pages(&m.dir).with_context(|| format!("writing man pages into {}", m.dir.display()))? {
                println!("{}", m.dir.join(name).display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::InternalHog(h) => {
            lessons::hog::busy_loop(h.threads, h.seconds, h.wait);
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor(d) if d.host_state => {
            println!("{}", serde_json::to_string_pretty(&crate::hoststate::capture())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor(d) => {
            let host = Host::probe();
            let findings = doctor::checks(&host);
            if d.json {
                println!("{}", serde_json::to_string_pretty(&findings)?);
            } else if d.markdown {
                let rows: Vec<Vec<String>> = findings
                    .iter()
                    .map(|f| vec![f.check.clone(), if f.required { "required".into() } else { "optional".into() }, format!("{}: {}", if f.ok { "ok" } else { "not ok" }, f.detail), if f.remedy.is_empty() { "nothing to do".into() } else { f.remedy.clone() }])
                    .collect();
                print!("{}", markdown_rows(&["check", "needed", "on the recording host", "remedy"], &rows));
            } else {
                let rows: Vec<Vec<String>> = findings
                    .iter()
                    .map(|f| {
                        let status = match (f.ok, f.required) {
                            (true, _) => "ok",
                            (false, true) => "FAIL",
                            (false, false) => "warn",
                        };
                        let remedy = if f.ok { String::new() } else { f.remedy.clone() };
                        vec![f.check.clone(), status.to_string(), f.detail.clone(), remedy]
                    })
                    .collect();
                print!("{}", render_rows(&["check", "status", "detail", "remedy"], &rows, style));
            }
            let bad = findings.iter().any(|f| f.required && !f.ok);
            Ok(if bad { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Cleanup(c) => {
            let host = Host::probe();
            host.require_root("removing mounts, cgroups and links")?;
            let report = state::cleanup_leftovers().context("cleanup")?;
            if c.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for r in &report.runs_cleaned {
                    println!("cleaned run {r}");
                }
                for r in &report.removed {
                    println!("  removed {r}");
                }
                for r in &report.runs_alive {
                    println!("skipped run {r}: still running");
                }
                for p in &report.problems {
                    eprintln!("problem: {p}");
                }
                if report.runs_cleaned.is_empty() && report.problems.is_empty() {
                    println!("nothing to clean up");
                }
            }
            Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

/// Validate a lesson name and find it, with a "did you mean" for typos.
pub fn resolve_lesson(name: &str) -> Result<&'static crate::lesson::LessonDef, UsageError> {
    if let Some(def) = lessons::find(name) {
        return Ok(def);
    }
    let hint = match lessons::closest(name) {
        Some(c) => format!("did you mean '{c}'? "),
        None => String::new(),
    };
    Err(UsageError(format!("unknown lesson '{name}': {hint}run `workbench list` to see all lessons")))
}

fn run_lesson(name: &str, flags: &LessonFlags, style: Style) -> anyhow::Result<ExitCode> {
    let def = resolve_lesson(name)?;
    crate::signals::install()?;
    let opts = RunOptions {
        json: flags.json,
        markdown: flags.markdown,
        step: flags.step,
        shell: flags.shell,
        style,
        lesson: flags.lesson_options(),
    };
    let summary = runner::run(def, &opts)?;
    Ok(if summary.pass { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn tour(json: bool, style: Style) -> anyhow::Result<ExitCode> {
    crate::signals::install()?;
    let mut rows = Vec::new();
    let mut all = true;
    for def in lessons::ALL {
        let opts = RunOptions { json, markdown: false, step: false, shell: false, style, lesson: LessonOptions::default() };
        let summary = runner::run(def, &opts).with_context(|| format!("lesson {}", def.id))?;
        all &= summary.pass;
        rows.push(vec![def.id.to_string(), format!("{}/{}", summary.steps_passed, summary.steps), if summary.pass { "pass".into() } else { "FAIL".into() }]);
    }
    if !json {
        println!("\nTour summary:");
        print!("{}", render_rows(&["lesson", "steps passed", "result"], &rows, style));
    }
    Ok(if all { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
