//! Running a lesson: print, perform, diff, check — step after step.

use std::io::{BufRead, Write};

use colored::Colorize;
use serde::Serialize;

use super::text::{self, LessonText, StepText};
use super::{Cx, LessonDef, LessonOptions};
use crate::host::Host;
use crate::observe::diff::{diff, SectionDiff};
use crate::observe::render::{render_checks, render_diff, Check, Style};
use crate::{signals, state};

/// How the learner asked to run the lesson.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Machine-readable output: one JSON object per step, then a summary.
    pub json: bool,
    /// Wait for Enter between steps.
    pub step: bool,
    /// Drop into a shell inside the lesson's namespaces at the end.
    pub shell: bool,
    pub style: Style,
    pub lesson: LessonOptions,
}

/// One step's result, as printed with `--json`.
#[derive(Debug, Serialize)]
pub struct StepResult {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub lesson: String,
    pub number: usize,
    pub id: String,
    pub title: String,
    pub syscall: String,
    pub command: String,
    pub expect: String,
    pub transcript: Vec<super::report::Exchange>,
    pub before: Option<String>,
    pub after: Option<String>,
    pub diff: Vec<SectionDiff>,
    pub checks: Vec<Check>,
    pub pass: bool,
    pub error: Option<String>,
}

/// The end of a lesson, as printed with `--json`.
#[derive(Debug, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub lesson: String,
    pub run_id: String,
    pub steps: usize,
    pub steps_passed: usize,
    pub pass: bool,
    pub cleanup_problems: Vec<String>,
}

/// Run one lesson from start to end. `Err` means it could not start (bad
/// input, not root, a missing tool) and nothing was created; a failed check
/// is reported in the returned summary.
pub fn run(def: &LessonDef, opts: &RunOptions) -> anyhow::Result<Summary> {
    let text = text::find(def.id).ok_or_else(|| anyhow::anyhow!("lesson {} has no text in lessons/", def.id))?;
    let host = Host::probe();
    (def.preflight)(&host, &opts.lesson)?;

    let run = state::begin(def.id)?;
    let mut cx = Cx { workdir: run.workdir.clone(), run_id: run.run_id.clone(), host, options: opts.lesson.clone() };
    let mut lesson = (def.new)();
    let out = &mut std::io::stdout();

    if !opts.json {
        print_intro(out, &text, opts.style);
    }
    let total = text.steps.len();
    let mut passed = 0;
    let mut all_ok = true;
    for (i, st) in text.steps.iter().enumerate() {
        let n = i + 1;
        if !opts.json {
            print_step_header(out, n, total, st, opts.style);
        }
        let result = lesson.run_step(&st.id, &mut cx);
        let step = match result {
            Ok(rep) => {
                let d = match (&rep.before, &rep.after) {
                    (Some(b), Some(a)) => diff(b, a),
                    _ => vec![],
                };
                let pass = rep.passed() && !rep.checks.is_empty();
                StepResult {
                    kind: "step",
                    lesson: def.id.into(),
                    number: n,
                    id: st.id.clone(),
                    title: st.title.clone(),
                    syscall: st.syscall.clone(),
                    command: st.command.clone(),
                    expect: st.expect.clone(),
                    transcript: rep.transcript,
                    before: rep.before.map(|s| s.label),
                    after: rep.after.map(|s| s.label),
                    diff: d,
                    checks: rep.checks,
                    pass,
                    error: None,
                }
            }
            Err(e) => StepResult {
                kind: "step",
                lesson: def.id.into(),
                number: n,
                id: st.id.clone(),
                title: st.title.clone(),
                syscall: st.syscall.clone(),
                command: st.command.clone(),
                expect: st.expect.clone(),
                transcript: vec![],
                before: None,
                after: None,
                diff: vec![],
                checks: vec![],
                pass: false,
                error: Some(format!("{e:#}")),
            },
        };
        if opts.json {
            let _ = writeln!(out, "{}", serde_json::to_string(&step).expect("step serialises"));
        } else {
            print_step_result(out, &step, opts.style);
        }
        let _ = out.flush();
        if step.pass {
            passed += 1;
        } else {
            all_ok = false;
        }
        if step.error.is_some() {
            break;
        }
        if opts.step && n < total {
            wait_for_enter(n + 1, total);
        }
    }

    if opts.shell && all_ok {
        if !opts.json {
            let _ = writeln!(out, "\n{}", paint("Dropping you into a shell inside the lesson. Type `exit` to finish and clean up.", opts.style, |s| s.bold()));
        }
        signals::set_interactive(true);
        let r = lesson.shell(&mut cx);
        signals::set_interactive(false);
        if let Err(e) = r {
            eprintln!("workbench: --shell: {e:#}");
        }
    }

    drop(lesson);
    let cleanup_problems = state::finish();
    let summary = Summary {
        kind: "summary",
        lesson: def.id.into(),
        run_id: run.run_id,
        steps: total,
        steps_passed: passed,
        pass: all_ok && passed == total && cleanup_problems.is_empty(),
        cleanup_problems,
    };
    if opts.json {
        let _ = writeln!(out, "{}", serde_json::to_string(&summary).expect("summary serialises"));
    } else {
        print_summary(out, &summary, &text, opts.style);
    }
    Ok(summary)
}

fn paint(s: &str, style: Style, f: impl Fn(&str) -> colored::ColoredString) -> String {
    if style.color {
        f(s).to_string()
    } else {
        s.to_string()
    }
}

fn print_intro(out: &mut impl Write, t: &LessonText, style: Style) {
    let _ = writeln!(out, "{}", paint(&format!("Lesson {} — {}", t.id, t.title), style, |s| s.bold().cyan()));
    let _ = writeln!(out, "{}", paint(&format!("Reproduces: {}", t.tutorial), style, |s| s.dimmed()));
    let _ = writeln!(out, "\n{}", t.intro.trim());
    let _ = writeln!(out, "\nWatch for:");
    for w in &t.watch {
        let _ = writeln!(out, "  • {w}");
    }
}

fn print_step_header(out: &mut impl Write, n: usize, total: usize, st: &StepText, style: Style) {
    let head = format!("── Step {n}/{total}: {} ", st.title);
    let pad = "─".repeat(78usize.saturating_sub(head.chars().count()));
    let _ = writeln!(out, "\n{}", paint(&format!("{head}{pad}"), style, |s| s.bold().cyan()));
    let _ = writeln!(out, "{}", st.narration.trim());
    let _ = writeln!(out, "  {} {}", paint("syscall:", style, |s| s.bold()), st.syscall);
    let _ = writeln!(out, "  {} {}", paint("shell:  ", style, |s| s.bold()), st.command);
    let _ = writeln!(out, "  {} {}", paint("expect: ", style, |s| s.bold()), st.expect);
}

fn print_step_result(out: &mut impl Write, step: &StepResult, style: Style) {
    for ex in &step.transcript {
        let _ = writeln!(out, "\n  {}", paint(&format!("[{}] $ {}", ex.place, ex.command), style, |s| s.green()));
        for line in ex.output.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !step.diff.is_empty() {
        let _ = writeln!(out);
        let _ = write!(out, "{}", render_diff(&step.diff, step.before.as_deref().unwrap_or("before"), step.after.as_deref().unwrap_or("after"), style));
    }
    if let Some(e) = &step.error {
        let _ = writeln!(out, "\n{}", paint(&format!("step failed: {e}"), style, |s| s.red().bold()));
    } else {
        let _ = writeln!(out);
        let _ = write!(out, "{}", render_checks(&step.checks, style));
    }
}

fn print_summary(out: &mut impl Write, s: &Summary, t: &LessonText, style: Style) {
    let _ = writeln!(out);
    for p in &s.cleanup_problems {
        let _ = writeln!(out, "{}", paint(&format!("cleanup problem: {p}"), style, |s| s.red()));
    }
    let line = format!("lesson {}: {}/{} steps passed{}", s.lesson, s.steps_passed, s.steps, if s.cleanup_problems.is_empty() { ", everything it created is removed" } else { "" });
    let _ = writeln!(out, "{}", paint(&line, style, |x| if s.pass { x.green().bold() } else { x.red().bold() }));
    if s.pass {
        let _ = writeln!(out, "\nTry next:");
        for e in &t.exercises {
            let _ = writeln!(out, "  • {e}");
        }
    }
}

fn wait_for_enter(next: usize, total: usize) {
    eprint!("\n── press Enter for step {next}/{total} (Ctrl-C stops and cleans up) ──");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    // Ctrl-C together with end of input: do not start the next step.
    signals::stop_if_caught();
}
