//! What each command does: a parsed command line becomes actions, and a
//! refusal becomes one line (and, with `--json`, one JSON object).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use super::args::{Cli, Command, LessonArgs};
use crate::error::UsageError;
use crate::host::{doctor, Host};
use crate::lesson::runner::{self, RunOptions};
use crate::lesson::LessonOptions;
use crate::observe::render::{markdown_rows, render_rows, Style, Verdict};
use crate::{lessons, state};

/// A command line clap refused (exit 2), or `--help`/`--version` (exit 0).
/// With `--json`, a refusal is also a JSON object on stdout.
pub(super) fn clap_refusal(e: &clap::Error, json: bool) -> ExitCode {
    let _ = e.print();
    if !e.use_stderr() {
        return ExitCode::SUCCESS;
    }
    if json {
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or_default();
        crate::jsonl::error(first.strip_prefix("error: ").unwrap_or(first).trim(), 2);
    }
    ExitCode::from(2)
}

/// Whether a command line that did not parse asked for `--json` (its
/// refusal is then a JSON object too). `workbench run` takes no `--json`:
/// a `--json` after `run` belongs to the container's command.
pub(super) fn json_requested(args: &[String]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--" && *a != "run")
        .any(|a| a == "--json")
}

pub(super) fn dispatch(cmd: Command, style: Style) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::List(l) => {
            list(l.json, style);
            Ok(ExitCode::SUCCESS)
        }
        Command::Lesson(a) => run_lesson(a, style),
        Command::External(args) => {
            // A mistyped command (`workbench lis`) rather than a lesson?
            if let Some(cmd) = args
                .first()
                .filter(|n| lessons::find(n).is_none())
                .and_then(|n| closest_command(n))
            {
                return Err(UsageError(format!("unknown command '{}': did you mean '{cmd}'? run `workbench --help` for the commands, `workbench list` for the lessons", args[0])).into());
            }
            // `workbench pid-ns --step` → `workbench lesson pid-ns --step`
            let mut argv = vec!["workbench".to_string(), "lesson".to_string()];
            argv.extend(args);
            match Cli::try_parse_from(&argv) {
                Ok(Cli {
                    command: Command::Lesson(a),
                    ..
                }) => run_lesson(a, style),
                Ok(_) => unreachable!("lesson subcommand parses as a lesson"),
                Err(e) => Ok(clap_refusal(&e, json_requested(&argv))),
            }
        }
        Command::Tour(t) => tour(t.json, style),
        Command::Run(a) => crate::run::main(&a),
        Command::Image(a) => crate::image::main(&a, style),
        Command::Commit(a) => crate::image::commit::main(&a),
        Command::Shim(a) => crate::run::shim::main(&a),
        Command::Ps(a) => crate::container::cmd::ps(&a, style),
        Command::Logs(a) => crate::container::cmd::logs(&a),
        Command::Stop(a) => crate::container::cmd::stop(&a),
        Command::Rm(a) => crate::container::cmd::rm(&a),
        Command::Completions(c) => {
            super::manual::completions(c.shell, &mut std::io::stdout().lock());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man(m) => {
            for name in super::manual::write_man_pages(&m.dir)
                .with_context(|| format!("writing man pages into {}", m.dir.display()))?
            {
                println!("{}", m.dir.join(name).display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::InternalHog(h) => {
            crate::kit::hog::busy_loop(h.threads, h.seconds, h.wait);
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor(d) if d.host_state => {
            println!("{}", serde_json::to_string_pretty(&crate::host::snapshot::capture())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor(d) => {
            let host = Host::probe();
            let findings = doctor::checks(&host);
            if d.json {
                doctor_json(&findings);
            } else if d.markdown {
                let rows: Vec<Vec<String>> = findings
                    .iter()
                    .map(|f| {
                        vec![
                            f.check.clone(),
                            if f.required {
                                "required".into()
                            } else {
                                "optional".into()
                            },
                            format!("{}: {}", if f.ok { "ok" } else { "not ok" }, f.detail),
                            if f.remedy.is_empty() {
                                "nothing to do".into()
                            } else {
                                f.remedy.clone()
                            },
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    markdown_rows(&["check", "needed", "on the recording host", "remedy"], &rows)
                );
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
                print!(
                    "{}",
                    render_rows(&["check", "status", "detail", "remedy"], &rows, style)
                );
            }
            Ok(ExitCode::from(doctor_exit(&findings)))
        }
        Command::Cleanup(c) => {
            let host = Host::probe();
            host.require_root("removing mounts, cgroups and links")?;
            let report = state::cleanup_leftovers().context("cleanup")?;
            if c.json {
                cleanup_json(&report);
            } else {
                for r in &report.runs_cleaned {
                    println!("cleaned run {} ({})", r.run_id, r.lesson);
                }
                for r in &report.removed {
                    println!("  removed {}", r.resource);
                }
                for r in &report.runs_alive {
                    println!(
                        "skipped run {} ({}, pid {}): still running",
                        r.run_id, r.lesson, r.owner_pid
                    );
                }
                for p in &report.problems {
                    eprintln!("problem: {p}");
                }
                if report.runs_cleaned.is_empty() && report.problems.is_empty() {
                    println!("nothing to clean up");
                }
            }
            Ok(if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
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
    Err(UsageError(format!(
        "unknown lesson '{name}': {hint}run `workbench list` to see all lessons"
    )))
}

fn run_lesson(a: LessonArgs, style: Style) -> anyhow::Result<ExitCode> {
    let def = resolve_lesson(&a.id)?;
    crate::state::signals::install()?;
    let opts = RunOptions {
        json: a.json,
        markdown: a.markdown,
        step: a.step,
        shell: a.shell,
        style,
    };
    let summary = runner::run(def, &opts, a.options)?;
    Ok(ExitCode::from(summary.exit_code()))
}

/// `workbench list`: a table, or with `--json` one `"type":"lesson"` object per lesson.
fn list(json: bool, style: Style) {
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        id: &'a str,
        order: u32,
        aliases: &'a [String],
        options: &'a [String],
        title: &'a str,
        goal: &'a str,
        tutorial: &'a str,
        tutorial_url: &'a str,
        steps: Vec<&'a str>,
        shell: bool,
    }
    let texts = crate::lesson::text::all();
    if json {
        for t in &texts {
            let shell = lessons::find(&t.id).is_some_and(|d| d.shell.is_some());
            let steps = t.steps.iter().map(|s| s.id.as_str()).collect();
            crate::jsonl::print(&Entry {
                kind: "lesson",
                id: &t.id,
                order: t.order,
                aliases: &t.aliases,
                options: &t.options,
                title: &t.title,
                goal: &t.goal,
                tutorial: &t.tutorial,
                tutorial_url: &t.tutorial_url,
                steps,
                shell,
            });
        }
        return;
    }
    let rows: Vec<Vec<String>> = texts
        .iter()
        .map(|t| {
            vec![
                t.order.to_string(),
                t.id.clone(),
                t.aliases.join(", "),
                t.options.iter().map(|o| format!("--{o}")).collect::<Vec<_>>().join(" "),
                t.goal.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        render_rows(&["#", "lesson", "aliases", "options", "goal"], &rows, style)
    );
    println!("Run one with `workbench lesson <lesson>` (add --step to pause, --shell to explore, --json for graders).");
}

/// 1 if a required doctor check failed, else 0.
fn doctor_exit(findings: &[doctor::Finding]) -> u8 {
    u8::from(findings.iter().any(|f| f.required && !f.ok))
}

/// `doctor --json`: one `"type":"check"` object per check, then a `"type":"summary"`.
fn doctor_json(findings: &[doctor::Finding]) {
    #[derive(serde::Serialize)]
    struct CheckLine<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(flatten)]
        finding: &'a doctor::Finding,
    }
    #[derive(serde::Serialize)]
    struct DoctorSummary {
        #[serde(rename = "type")]
        kind: &'static str,
        checks: usize,
        ok: usize,
        failed_required: usize,
        warnings: usize,
        exit: u8,
    }
    for f in findings {
        crate::jsonl::print(&CheckLine {
            kind: "check",
            finding: f,
        });
    }
    let failed_required = findings.iter().filter(|f| f.required && !f.ok).count();
    let warnings = findings.iter().filter(|f| !f.required && !f.ok).count();
    crate::jsonl::print(&DoctorSummary {
        kind: "summary",
        checks: findings.len(),
        ok: findings.iter().filter(|f| f.ok).count(),
        failed_required,
        warnings,
        exit: doctor_exit(findings),
    });
}

/// `cleanup --json`: `"type":"removed"` per resource, `"type":"run"` per run
/// found (cleaned, or left alone because its owner still runs),
/// `"type":"problem"` per problem, then a `"type":"summary"`.
fn cleanup_json(report: &state::CleanupReport) {
    #[derive(serde::Serialize)]
    struct Line<'a, T: serde::Serialize> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(flatten)]
        item: &'a T,
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<&'static str>,
    }
    #[derive(serde::Serialize)]
    struct Problem<'a> {
        message: &'a str,
    }
    #[derive(serde::Serialize)]
    struct CleanupSummary {
        #[serde(rename = "type")]
        kind: &'static str,
        runs_cleaned: usize,
        runs_alive: usize,
        removed: usize,
        problems: usize,
        exit: u8,
    }
    for r in &report.removed {
        crate::jsonl::print(&Line {
            kind: "removed",
            item: r,
            result: None,
        });
    }
    for r in &report.runs_cleaned {
        crate::jsonl::print(&Line {
            kind: "run",
            item: r,
            result: Some("cleaned"),
        });
    }
    for r in &report.runs_alive {
        crate::jsonl::print(&Line {
            kind: "run",
            item: r,
            result: Some("alive"),
        });
    }
    for p in &report.problems {
        crate::jsonl::print(&Line {
            kind: "problem",
            item: &Problem { message: p },
            result: None,
        });
    }
    let exit = u8::from(!report.problems.is_empty());
    crate::jsonl::print(&CleanupSummary {
        kind: "summary",
        runs_cleaned: report.runs_cleaned.len(),
        runs_alive: report.runs_alive.len(),
        removed: report.removed.len(),
        problems: report.problems.len(),
        exit,
    });
}

/// The subcommand a mistyped first word most likely meant, if a subcommand
/// (not a lesson id or alias) is the closest of all names `workbench` takes there.
fn closest_command(word: &str) -> Option<String> {
    use clap::CommandFactory;
    let commands: Vec<String> = Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect();
    let mut names: Vec<(String, bool)> = commands.into_iter().map(|c| (c, true)).collect();
    for t in crate::lesson::text::all() {
        names.push((t.id.clone(), false));
        names.extend(t.aliases.iter().map(|a| (a.clone(), false)));
    }
    let (score, name, is_command) = names
        .into_iter()
        .map(|(n, c)| (strsim::jaro_winkler(word, &n), n, c))
        .max_by(|a, b| a.0.total_cmp(&b.0))?;
    (is_command && score > 0.7).then_some(name)
}

/// A lesson's place in the tour's summary.
#[derive(Debug, serde::Serialize)]
struct TourEntry {
    lesson: String,
    /// "pass", "fail", "inconclusive" (the busy host kept a check from
    /// judging) or "skipped" (it could not start on this host).
    result: &'static str,
    steps: usize,
    steps_passed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// The tour's exit status and last line. 1 if a lesson failed; 3 if none
/// failed but one was inconclusive; 2 if no lesson could start at all (as a
/// single lesson that cannot start); else 0: lessons skipped next to lessons
/// that passed do not fail the tour, the last line counts them.
fn tour_outcome(entries: &[TourEntry]) -> (u8, String) {
    let count = |r: &str| entries.iter().filter(|e| e.result == r).count();
    let (failed, skipped, inconclusive) = (count("fail"), count("skipped"), count("inconclusive"));
    let passed = count("pass");
    let code = if failed > 0 {
        1
    } else if inconclusive > 0 {
        3
    } else if skipped == entries.len() {
        2
    } else {
        0
    };
    let mut line = format!("tour: {passed} of {} lessons passed", entries.len());
    for (n, what) in [
        (failed, "failed"),
        (inconclusive, "inconclusive"),
        (skipped, "skipped (could not start on this host: the reasons are above)"),
    ] {
        if n > 0 {
            line.push_str(&format!(", {n} {what}"));
        }
    }
    (code, line)
}

/// `workbench tour`: every lesson in order. A lesson that cannot start here
/// (not root, a missing tool or kernel feature) is skipped with its reason and
/// the tour goes on; the summary table and the last line say what happened.
fn tour(json: bool, style: Style) -> anyhow::Result<ExitCode> {
    #[derive(serde::Serialize)]
    struct Skipped<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        lesson: &'a str,
        reason: &'a str,
    }
    #[derive(serde::Serialize)]
    struct TourSummary<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        lessons: &'a [TourEntry],
        passed: usize,
        failed: usize,
        inconclusive: usize,
        skipped: usize,
        exit: u8,
    }
    crate::state::signals::install()?;
    let mut entries = Vec::new();
    for def in lessons::ALL {
        let opts = RunOptions {
            json,
            markdown: false,
            step: false,
            shell: false,
            style,
        };
        let entry = match runner::run(def, &opts, LessonOptions::default()) {
            Ok(summary) => TourEntry {
                lesson: def.id.into(),
                result: match summary.verdict {
                    Verdict::Pass => "pass",
                    Verdict::Fail => "fail",
                    Verdict::Inconclusive => "inconclusive",
                },
                steps: summary.steps,
                steps_passed: summary.steps_passed,
                reason: None,
            },
            Err(e) => {
                let reason = format!("{e:#}");
                if json {
                    crate::jsonl::print(&Skipped {
                        kind: "skipped",
                        lesson: def.id,
                        reason: &reason,
                    });
                } else {
                    println!("\nlesson {}: skipped: {reason}", def.id);
                }
                TourEntry {
                    lesson: def.id.into(),
                    result: "skipped",
                    steps: def.steps.len(),
                    steps_passed: 0,
                    reason: Some(reason),
                }
            }
        };
        entries.push(entry);
    }
    let (code, line) = tour_outcome(&entries);
    if json {
        let count = |r: &str| entries.iter().filter(|e| e.result == r).count();
        crate::jsonl::print(&TourSummary {
            kind: "tour",
            lessons: &entries,
            passed: count("pass"),
            failed: count("fail"),
            inconclusive: count("inconclusive"),
            skipped: count("skipped"),
            exit: code,
        });
    } else {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                let result = if e.result == "fail" {
                    "FAIL".to_string()
                } else {
                    e.result.to_string()
                };
                let steps = if e.result == "skipped" {
                    "-".to_string()
                } else {
                    format!("{}/{}", e.steps_passed, e.steps)
                };
                vec![e.lesson.clone(), steps, result, e.reason.clone().unwrap_or_default()]
            })
            .collect();
        println!("\nTour summary:");
        print!(
            "{}",
            render_rows(&["lesson", "steps passed", "result", "why"], &rows, style)
        );
        println!("{line}");
    }
    Ok(ExitCode::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(result: &'static str) -> TourEntry {
        TourEntry {
            lesson: "x".into(),
            result,
            steps: 3,
            steps_passed: if result == "pass" { 3 } else { 0 },
            reason: (result == "skipped").then(|| "needs root".into()),
        }
    }

    #[test]
    fn tour_outcome_counts_verdicts() {
        let t = |rs: &[&'static str]| tour_outcome(&rs.iter().map(|r| entry(r)).collect::<Vec<_>>());
        assert_eq!(t(&["pass", "pass"]), (0, "tour: 2 of 2 lessons passed".into()));
        assert_eq!(
            t(&["pass", "skipped"]),
            (
                0,
                "tour: 1 of 2 lessons passed, 1 skipped (could not start on this host: the reasons are above)".into()
            )
        );
        assert_eq!(t(&["pass", "fail", "skipped"]).0, 1);
        assert_eq!(
            t(&["skipped", "skipped"]).0,
            2,
            "a tour where nothing could start proves nothing"
        );
        assert_eq!(t(&["pass", "inconclusive", "skipped"]).0, 3);
        assert_eq!(
            t(&["fail", "inconclusive"]),
            (1, "tour: 0 of 2 lessons passed, 1 failed, 1 inconclusive".into())
        );
    }

    #[test]
    fn typos_of_commands_suggest_the_command() {
        assert_eq!(closest_command("lis").as_deref(), Some("list"));
        assert_eq!(closest_command("docter").as_deref(), Some("doctor"));
        assert_eq!(closest_command("clenaup").as_deref(), Some("cleanup"));
        assert_eq!(closest_command("tuor").as_deref(), Some("tour"));
        // Closer to a lesson: the lesson path suggests it.
        assert_eq!(closest_command("pid-nss"), None);
        assert_eq!(closest_command("mount_proc"), None);
        assert_eq!(closest_command("zzzzzz"), None);
    }

    #[test]
    fn json_is_requested_before_run_and_double_dash_only() {
        let a = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert!(json_requested(&a("workbench lesson pid-ns --json --bogus")));
        assert!(json_requested(&a("workbench lis --json")));
        assert!(!json_requested(&a("workbench lesson pid-ns")));
        assert!(!json_requested(&a("workbench run rootfs echo --json")));
        assert!(!json_requested(&a("workbench x -- --json")));
    }
}
