//! Running a lesson: print, perform, diff, check — step after step.

use std::io::{BufRead, Write};

use colored::Colorize;
use serde::Serialize;

use super::text::{self, LessonText, StepText};
use super::{Cx, LessonDef, LessonOptions};
use crate::host::Host;
use crate::observe::diff::{diff, SectionDiff};
use crate::observe::render::{
    markdown_checks, markdown_diff, md_code, md_escape, md_escape_prose, md_fence, render_checks, render_diff, Check,
    Style, Verdict,
};
use crate::state::{self, signals};

/// How the learner asked to run the lesson.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Machine-readable output: one JSON object per step, then a summary.
    pub json: bool,
    /// Record mode: the run as one Markdown page (for the book).
    pub markdown: bool,
    /// Wait for Enter between steps.
    pub step: bool,
    /// Drop into a shell inside the lesson's namespaces at the end.
    pub shell: bool,
    pub style: Style,
}

impl RunOptions {
    /// `--json` and nothing else, as graders (and the lessons' own root
    /// tests) run a lesson.
    pub const JSON: RunOptions = RunOptions {
        json: true,
        markdown: false,
        step: false,
        shell: false,
        style: Style::PLAIN,
    };
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
    /// pass, fail, or inconclusive (a check could not judge: the host was busy).
    pub verdict: Verdict,
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
    /// Steps whose effect could not be judged because the host was busy.
    pub steps_inconclusive: usize,
    /// Every step passed and the cleanup went well.
    pub pass: bool,
    /// "pass"; "fail" (a step failed or did not run, or the cleanup had a
    /// problem); "inconclusive" (no failure, but a step could not judge its
    /// effect: the host was busy). Exit status 0, 1, 3.
    pub verdict: Verdict,
    pub cleanup_problems: Vec<String>,
}

impl Summary {
    /// The lesson's verdict from what its steps gave.
    pub fn verdict_of(steps: usize, steps_passed: usize, steps_inconclusive: usize, cleanup_ok: bool) -> Verdict {
        if !cleanup_ok || steps_passed + steps_inconclusive < steps {
            Verdict::Fail
        } else if steps_inconclusive > 0 {
            Verdict::Inconclusive
        } else {
            Verdict::Pass
        }
    }

    /// The exit status of `workbench lesson`: 0 pass, 1 fail, 3 inconclusive.
    pub fn exit_code(&self) -> u8 {
        match self.verdict {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Inconclusive => 3,
        }
    }
}

/// What the summary line says after "lesson ID: ".
fn summary_words(s: &Summary) -> String {
    let inconclusive = if s.steps_inconclusive > 0 {
        format!(", {} inconclusive", s.steps_inconclusive)
    } else {
        String::new()
    };
    let removed = if s.cleanup_problems.is_empty() {
        ", everything it created is removed"
    } else {
        ""
    };
    let verdict = if s.verdict == Verdict::Inconclusive {
        "inconclusive: the host is busy — "
    } else {
        ""
    };
    format!(
        "{verdict}{}/{} steps passed{inconclusive}{removed}",
        s.steps_passed, s.steps
    )
}

/// Run one lesson from start to end. `Err` means it could not start (bad
/// input, not root, a missing tool) and nothing was created; a failed check
/// is reported in the returned summary. `options` are the lesson's own
/// (`--memory`…), handed to its code in [`Cx`].
pub fn run(def: &LessonDef, opts: &RunOptions, options: LessonOptions) -> anyhow::Result<Summary> {
    let text = text::find(def.id).ok_or_else(|| anyhow::anyhow!("lesson {} has no text in lessons/", def.id))?;
    if opts.shell && def.shell.is_none() {
        anyhow::bail!("lesson {} has no shell to drop into: run it without --shell", def.id);
    }
    options.refuse_others(def.id, &text.options)?;
    let host = Host::probe();
    (def.preflight)(&host, &options)?;

    let run = state::begin(def.id)?;
    let mut cx = Cx {
        workdir: run.workdir.clone(),
        run_id: run.run_id.clone(),
        lesson: def.id,
        host,
        options,
    };
    let mut lesson = (def.new)();
    let out = &mut std::io::stdout();

    if opts.markdown {
        let _ = write!(out, "{}", markdown_intro(&text));
    } else if !opts.json {
        print_intro(out, &text, opts.style);
    }
    let total = text.steps.len();
    let mut passed = 0;
    let mut inconclusive = 0;
    let mut all_ok = true;
    for (i, st) in text.steps.iter().enumerate() {
        // A signal's teardown is under way: start nothing more (it exits the process).
        signals::stop_if_caught();
        let n = i + 1;
        if !opts.json && !opts.markdown {
            print_step_header(out, n, total, st, opts.style);
        }
        let mut step = StepResult {
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
            verdict: Verdict::Fail,
            error: None,
        };
        let mut rep = super::StepReport::new();
        match lesson.run_step(&st.id, &mut cx, &mut rep) {
            Ok(()) => {
                if let (Some(b), Some(a)) = (&rep.before, &rep.after) {
                    step.diff = diff(b, a);
                }
                // A step with no check proves nothing: it does not pass.
                step.verdict = rep.verdict();
                step.pass = step.verdict == Verdict::Pass;
                step.transcript = rep.transcript;
                step.before = rep.before.map(|s| s.label);
                step.after = rep.after.map(|s| s.label);
                step.checks = rep.checks;
            }
            // Refused at its start, before it created anything (a host port
            // another run took since preflight): as if preflight had said so.
            Err(e) if n == 1 && e.downcast_ref::<crate::error::UsageError>().is_some() => {
                drop(lesson);
                let problems = state::finish();
                anyhow::ensure!(problems.is_empty(), "{e}; cleanup: {}", problems.join("; "));
                return Err(e);
            }
            Err(e) => step.error = Some(format!("{e:#}")),
        }
        if opts.json {
            let _ = writeln!(out, "{}", crate::jsonl::line(&step));
        } else if opts.markdown {
            let _ = write!(out, "{}", markdown_step(n, total, st, &step));
        } else {
            print_step_result(out, &step, opts.style);
        }
        let _ = out.flush();
        match step.verdict {
            Verdict::Pass => passed += 1,
            Verdict::Inconclusive => inconclusive += 1,
            Verdict::Fail => all_ok = false,
        }
        if step.error.is_some() {
            break;
        }
        if opts.step && n < total {
            wait_for_enter(n + 1, total);
        }
    }

    if opts.shell && all_ok {
        if !opts.json && !opts.markdown {
            let place = def.shell.unwrap_or("inside the lesson");
            let _ = writeln!(
                out,
                "\n{}",
                paint(
                    &format!("Dropping you into a shell {place}. Type `exit` to finish and clean up."),
                    opts.style,
                    |s| s.bold()
                )
            );
            let _ = out.flush();
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
        steps_inconclusive: inconclusive,
        pass: all_ok && passed == total && cleanup_problems.is_empty(),
        verdict: Summary::verdict_of(total, passed, inconclusive, all_ok && cleanup_problems.is_empty()),
        cleanup_problems,
    };
    if opts.json {
        let _ = writeln!(out, "{}", crate::jsonl::line(&summary));
    } else if opts.markdown {
        let _ = write!(out, "{}", markdown_summary(&summary, &text));
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
    let _ = writeln!(
        out,
        "{}",
        paint(&format!("Lesson {} — {}", t.id, t.title), style, |s| s.bold().cyan())
    );
    let _ = writeln!(
        out,
        "{}",
        paint(&format!("Reproduces: {}", t.tutorial), style, |s| s.dimmed())
    );
    let _ = writeln!(
        out,
        "{}",
        paint(&format!("Read it at: {}", t.tutorial_url), style, |s| s.dimmed())
    );
    for p in &t.posts {
        let line = format!("From the post: 《{}》 — {}", p.title, p.sections.join("; "));
        let _ = writeln!(out, "{}", paint(&line, style, |s| s.dimmed()));
    }
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
        let _ = writeln!(
            out,
            "\n  {}",
            paint(&format!("[{}] $ {}", ex.place, ex.command), style, |s| s.green())
        );
        for line in ex.output.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !step.diff.is_empty() {
        let _ = writeln!(out);
        let _ = write!(
            out,
            "{}",
            render_diff(
                &step.diff,
                step.before.as_deref().unwrap_or("before"),
                step.after.as_deref().unwrap_or("after"),
                style
            )
        );
    }
    if let Some(e) = &step.error {
        let _ = writeln!(
            out,
            "\n{}",
            paint(&format!("step failed: {e}"), style, |s| s.red().bold())
        );
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
    let line = format!("lesson {}: {}", s.lesson, summary_words(s));
    let _ = writeln!(
        out,
        "{}",
        paint(&line, style, |x| match s.verdict {
            Verdict::Pass => x.green().bold(),
            Verdict::Inconclusive => x.yellow().bold(),
            Verdict::Fail => x.red().bold(),
        })
    );
    if s.verdict == Verdict::Inconclusive {
        let _ = writeln!(out, "{}", paint("Not a failure: other processes kept the CPUs busy, so the lesson could not measure its effect. Run it again when the host is quieter (exit status 3).", style, |x| x.yellow()));
    }
    if s.verdict != Verdict::Fail {
        let _ = writeln!(out, "\nTry next:");
        for e in &t.exercises {
            let _ = writeln!(out, "  • {e}");
        }
    }
}

// ---- `--markdown`: the run recorded as a page of the book ------------------
//
// The page carries mdBook anchors (`<!-- ANCHOR: name -->`, invisible HTML
// comments) so a chapter can include any part of it: `goal`, `tutorial`,
// `intro`, `watch`, `steps`, `step-<id>` for each step, `summary`,
// `exercises`. The first line names the lesson text's SHA-256, so a test can
// tell a transcript recorded from older text.

/// The SHA-256 of a lesson's text as the record mode stamps it
/// (`sha256:<hex>` of the TOML file's bytes).
pub fn text_fingerprint(toml_source: &str) -> String {
    wb_image::image::sha256_digest(toml_source.as_bytes())
}

/// The stamp line at the top of a recorded page, e.g.
/// `<!-- lessons/pid-ns.toml sha256:ab12… -->`. Tests and scripts/book read it.
pub fn markdown_stamp(id: &str, fingerprint: &str) -> String {
    format!("<!-- lessons/{id}.toml {fingerprint} -->")
}

fn anchored(name: &str, body: &str) -> String {
    // The blank line ends a table or list before the closing comment.
    format!(
        "<!-- ANCHOR: {name} -->\n{}\n\n<!-- ANCHOR_END: {name} -->\n",
        body.trim_end()
    )
}

/// The top of the recorded page: stamp, title, goal, tutorial, intro, watch list.
pub fn markdown_intro(t: &LessonText) -> String {
    let source = text::FILES
        .iter()
        .find(|(n, _)| *n == format!("{}.toml", t.id))
        .map(|(_, s)| *s)
        .unwrap_or("");
    let mut out = markdown_stamp(&t.id, &text_fingerprint(source));
    out.push('\n');
    out.push_str(&format!(
        "<!-- Recorded as root by `scripts/book` from `workbench lesson {} --markdown` (workbench {}): do not edit by hand. -->\n\n",
        t.id,
        env!("CARGO_PKG_VERSION")
    ));
    out.push_str(&format!("# Lesson {}: {}\n\n", t.order, md_escape(&t.id)));
    out.push_str(&anchored(
        "goal",
        &format!(
            "**{}.** {}",
            md_escape(t.title.trim_end_matches('.')),
            md_escape(&t.goal)
        ),
    ));
    out.push('\n');
    out.push_str(&anchored(
        "tutorial",
        &format!("[{}]({})", md_escape(&t.tutorial), t.tutorial_url),
    ));
    out.push('\n');
    out.push_str(&anchored("posts", &markdown_posts(t)));
    out.push('\n');
    out.push_str(&anchored("intro", t.intro.trim()));
    out.push('\n');
    let watch: Vec<String> = t.watch.iter().map(|w| format!("- {w}")).collect();
    out.push_str(&anchored("watch", &watch.join("\n")));
    out.push_str("\n<!-- ANCHOR: steps -->\n");
    out
}

/// The post map (anchor `posts`): per seed post, its title and sections, a
/// table "the post's step → the lesson's step" with the post's values and
/// where the lesson differs, then what the post gets wrong.
pub fn markdown_posts(t: &LessonText) -> String {
    let cell = |s: &str| md_escape_prose(s.trim());
    let mut out = String::new();
    for p in &t.posts {
        let by = [p.author.as_str(), p.date.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        let by = if by.is_empty() {
            String::new()
        } else {
            format!(" ({by})")
        };
        out.push_str(&format!(
            "**The post:** 《{}》{by}, seed `{}`; sections: {}.\n\n",
            cell(&p.title),
            p.seed,
            p.sections.iter().map(|s| cell(s)).collect::<Vec<_>>().join("; ")
        ));
        out.push_str(
            "| the post's step | its values | the lesson's step | where the lesson differs |\n|---|---|---|---|\n",
        );
        for s in &p.steps {
            let step = match t.steps.iter().position(|x| x.id == s.step) {
                Some(i) => format!("{} `{}`", i + 1, s.step),
                None => "—".to_string(),
            };
            out.push_str(&format!(
                "| {} | {} | {step} | {} |\n",
                cell(&s.post),
                cell(&s.values),
                cell(&s.differs)
            ));
        }
        for c in &p.corrections {
            out.push_str(&format!(
                "\n> **The post says:** {} **The kernel does:** {}\n",
                md_escape_prose(c.says.trim()),
                md_escape_prose(c.kernel.trim())
            ));
        }
        out.push('\n');
    }
    out
}

/// One step of the recorded page: heading, narration, syscall/shell/expect,
/// the transcript, the before/after tables and the checks.
pub fn markdown_step(n: usize, total: usize, st: &StepText, step: &StepResult) -> String {
    let mut body = format!(
        "### Step {n}/{total}: {}\n\n{}\n\n",
        md_escape(&st.title),
        st.narration.trim()
    );
    body.push_str(&format!(
        "- **syscall:** {}\n- **shell:** {}\n- **expect:** {}\n",
        md_code(&st.syscall),
        md_code(&st.command),
        md_escape(&st.expect)
    ));
    if !step.transcript.is_empty() {
        let text: Vec<String> = step
            .transcript
            .iter()
            .map(|ex| {
                if ex.output.is_empty() {
                    format!("[{}] $ {}", ex.place, ex.command)
                } else {
                    format!("[{}] $ {}\n{}", ex.place, ex.command, ex.output)
                }
            })
            .collect();
        body.push('\n');
        body.push_str(&md_fence("text", &text.join("\n\n")));
    }
    if !step.diff.is_empty() {
        body.push('\n');
        body.push_str(&markdown_diff(
            &step.diff,
            step.before.as_deref().unwrap_or("before"),
            step.after.as_deref().unwrap_or("after"),
        ));
    }
    if let Some(e) = &step.error {
        body.push_str(&format!("\n> **step failed:** {}\n", md_escape(e)));
    } else if !step.checks.is_empty() {
        body.push('\n');
        body.push_str(&markdown_checks(&step.checks));
    }
    format!("\n{}", anchored(&format!("step-{}", st.id), &body))
}

/// The end of the recorded page: the result line and the exercises.
pub fn markdown_summary(s: &Summary, t: &LessonText) -> String {
    let mut out = String::from("<!-- ANCHOR_END: steps -->\n\n");
    let mut line = format!("**lesson {}: {}**", md_escape(&s.lesson), summary_words(s));
    for p in &s.cleanup_problems {
        line.push_str(&format!("\n\n> **cleanup problem:** {}", md_escape(p)));
    }
    out.push_str(&anchored("summary", &line));
    out.push('\n');
    let ex: Vec<String> = t.exercises.iter().map(|e| format!("- {e}")).collect();
    out.push_str(&anchored("exercises", &ex.join("\n")));
    out
}

fn wait_for_enter(next: usize, total: usize) {
    eprint!("\n── press Enter for step {next}/{total} (Ctrl-C stops and cleans up) ──");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    // Ctrl-C together with end of input: do not start the next step.
    signals::stop_if_caught();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lesson::report::Exchange;
    use crate::observe::diff::diff_pairs;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    fn fixture_text() -> LessonText {
        LessonText {
            id: "demo-ns".into(),
            order: 7,
            aliases: vec![],
            options: vec![],
            title: "A demo lesson".into(),
            goal: "Show the record mode: <tables> & *checks*.".into(),
            tutorial: "A tutorial section".into(),
            tutorial_url: "https://example.org/tutorial#section".into(),
            posts: vec![text::PostMap {
                seed: "003".into(),
                title: "Docker核心技术".into(),
                author: String::new(),
                date: "2018".into(),
                sections: vec!["Namespace".into()],
                steps: vec![
                    text::PostStep {
                        post: "`unshare -fn sleep 60` | a pipe".into(),
                        values: "60 s".into(),
                        step: "clone".into(),
                        differs: String::new(),
                    },
                    text::PostStep {
                        post: "`lsns`".into(),
                        values: String::new(),
                        step: String::new(),
                        differs: "left for the exercises".into(),
                    },
                ],
                corrections: vec![text::Correction {
                    says: "quota is relative".into(),
                    kernel: "it is an absolute cap".into(),
                }],
            }],
            intro: "Some `intro` text\nover two lines.\n".into(),
            watch: vec!["the `pid` row".into(), "the checks".into()],
            exercises: vec!["Run `workbench lesson demo-ns --shell`.".into(), "Think.".into()],
            steps: vec![StepText {
                id: "clone".into(),
                title: "clone() a child".into(),
                syscall: "clone(CLONE_NEWPID|CLONE_NEWNS)".into(),
                command: "unshare --pid --fork sh".into(),
                narration: "The child is *new*.\n".into(),
                expect: "pid differs".into(),
            }],
        }
    }

    fn fixture_step(t: &LessonText) -> StepResult {
        let st = &t.steps[0];
        StepResult {
            kind: "step",
            lesson: t.id.clone(),
            number: 1,
            id: st.id.clone(),
            title: st.title.clone(),
            syscall: st.syscall.clone(),
            command: st.command.clone(),
            expect: st.expect.clone(),
            transcript: vec![
                Exchange {
                    place: "parent".into(),
                    command: "clone(...)".into(),
                    output: "clone() = 4242".into(),
                },
                Exchange {
                    place: "child".into(),
                    command: "hostname x".into(),
                    output: String::new(),
                },
                Exchange {
                    place: "child".into(),
                    command: "cat notes".into(),
                    output: "a ``` fence\nand a | pipe".into(),
                },
            ],
            before: Some("host (pid 100)".into()),
            after: Some("child (pid 4242)".into()),
            diff: vec![
                diff_pairs(
                    "namespaces",
                    &pairs(&[("net", "4026531840"), ("pid", "4026531836")]),
                    &pairs(&[("net", "4026531840"), ("pid", "4026532203")]),
                ),
                diff_pairs(
                    "mounts",
                    &pairs(&[("/", "ext4 /dev/vda (rw) shared:1")]),
                    &pairs(&[
                        ("/", "ext4 /dev/vda (rw) shared:1"),
                        ("/proc", "proc proc (rw) private"),
                    ]),
                ),
            ],
            checks: vec![
                Check {
                    name: "new pid namespace".into(),
                    expected: "differs".into(),
                    actual: "differs".into(),
                    pass: true,
                    inconclusive: false,
                },
                Check {
                    name: "a|b_c".into(),
                    expected: "1".into(),
                    actual: "2".into(),
                    pass: false,
                    inconclusive: false,
                },
            ],
            pass: false,
            verdict: Verdict::Fail,
            error: None,
        }
    }

    /// The markdown page of a run of the fixture lesson: its one step, then a
    /// summary with `run_id`, the step passed or not, and `cleanup_problems`.
    fn fixture_page(run_id: &str, pass: bool, cleanup_problems: Vec<String>) -> String {
        let t = fixture_text();
        let step = fixture_step(&t);
        let summary = Summary {
            kind: "summary",
            lesson: t.id.clone(),
            run_id: run_id.into(),
            steps: 1,
            steps_passed: usize::from(pass),
            steps_inconclusive: 0,
            pass,
            verdict: if pass { Verdict::Pass } else { Verdict::Fail },
            cleanup_problems,
        };
        format!(
            "{}{}{}",
            markdown_intro(&t),
            markdown_step(1, 1, &t.steps[0], &step),
            markdown_summary(&summary, &t)
        )
    }

    #[test]
    fn markdown_page_of_a_run() {
        let page = fixture_page("wb-000000", false, vec![]);
        // The fixture lesson has no file in lessons/: its stamp is the hash of "".
        assert!(
            page.starts_with(&markdown_stamp("demo-ns", &text_fingerprint(""))),
            "{page}"
        );
        insta::assert_snapshot!(page);
    }

    #[test]
    fn anchors_are_balanced_and_nested() {
        let page = fixture_page("x", true, vec!["rmdir x: busy".into()]);
        let mut open: Vec<String> = vec![];
        for line in page.lines() {
            if let Some(name) = line.strip_prefix("<!-- ANCHOR: ").and_then(|l| l.strip_suffix(" -->")) {
                open.push(name.to_string());
            } else if let Some(name) = line
                .strip_prefix("<!-- ANCHOR_END: ")
                .and_then(|l| l.strip_suffix(" -->"))
            {
                assert_eq!(open.pop().as_deref(), Some(name), "anchor {name} closed out of order");
            }
        }
        assert!(open.is_empty(), "unclosed anchors {open:?}");
        for a in [
            "goal",
            "tutorial",
            "intro",
            "watch",
            "steps",
            "step-clone",
            "summary",
            "exercises",
        ] {
            assert!(page.contains(&format!("<!-- ANCHOR: {a} -->")), "anchor {a} missing");
        }
        assert!(page.contains("> **cleanup problem:** rmdir x: busy"));
    }

    #[test]
    fn failed_step_says_why_instead_of_checks() {
        let t = fixture_text();
        let mut step = fixture_step(&t);
        step.error = Some("clone: Operation not permitted".into());
        let md = markdown_step(1, 1, &t.steps[0], &step);
        assert!(md.contains("> **step failed:** clone: Operation not permitted"), "{md}");
        assert!(!md.contains("| check |"), "{md}");
    }

    #[test]
    fn shell_is_refused_before_anything_when_the_lesson_has_none() {
        fn no_preflight(_: &Host, _: &LessonOptions) -> anyhow::Result<()> {
            panic!("preflight ran for a refused --shell")
        }
        fn no_lesson() -> Box<dyn crate::lesson::Lesson> {
            panic!("a lesson was made for a refused --shell")
        }
        let def = LessonDef {
            id: "pid-ns",
            steps: &[],
            preflight: no_preflight,
            new: no_lesson,
            shell: None,
            spots: &[],
        };
        let opts = RunOptions {
            json: false,
            markdown: false,
            step: false,
            shell: true,
            style: Style {
                color: false,
                width: 80,
            },
        };
        let e = run(&def, &opts, LessonOptions::default()).unwrap_err().to_string();
        assert_eq!(e, "lesson pid-ns has no shell to drop into: run it without --shell");
    }

    #[test]
    fn a_busy_host_is_neither_a_pass_nor_a_failure() {
        assert_eq!(Summary::verdict_of(6, 6, 0, true), Verdict::Pass);
        assert_eq!(Summary::verdict_of(6, 5, 1, true), Verdict::Inconclusive);
        // A failed (or unrun) step, or a cleanup problem, outweighs it.
        assert_eq!(Summary::verdict_of(6, 4, 1, true), Verdict::Fail);
        assert_eq!(Summary::verdict_of(6, 5, 1, false), Verdict::Fail);
        assert_eq!(Summary::verdict_of(6, 6, 0, false), Verdict::Fail);
        let mut s = Summary {
            kind: "summary",
            lesson: "cgroup-cpu-quota".into(),
            run_id: "x".into(),
            steps: 6,
            steps_passed: 5,
            steps_inconclusive: 1,
            pass: false,
            verdict: Verdict::Inconclusive,
            cleanup_problems: vec![],
        };
        assert_eq!(s.exit_code(), 3);
        assert_eq!(
            summary_words(&s),
            "inconclusive: the host is busy — 5/6 steps passed, 1 inconclusive, everything it created is removed"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            (
                json["verdict"].as_str(),
                json["pass"].as_bool(),
                json["steps_inconclusive"].as_u64()
            ),
            (Some("inconclusive"), Some(false), Some(1))
        );
        (s.verdict, s.steps_passed, s.steps_inconclusive, s.pass) = (Verdict::Pass, 6, 0, true);
        assert_eq!(s.exit_code(), 0);
        assert_eq!(summary_words(&s), "6/6 steps passed, everything it created is removed");
        s.verdict = Verdict::Fail;
        assert_eq!(s.exit_code(), 1);
    }

    #[test]
    fn an_inconclusive_step_is_marked_in_the_record_and_the_json() {
        let t = fixture_text();
        let mut step = fixture_step(&t);
        step.checks = vec![Check {
            name: "nr_throttled grew".into(),
            expected: "> 0".into(),
            actual: "0 (the host is busy)".into(),
            pass: false,
            inconclusive: true,
        }];
        step.verdict = Verdict::Inconclusive;
        let md = markdown_step(1, 1, &t.steps[0], &step);
        assert!(md.contains("| **INCONCLUSIVE** |"), "{md}");
        let json = serde_json::to_value(&step).unwrap();
        assert_eq!(json["verdict"], "inconclusive");
        assert_eq!(json["checks"][0]["inconclusive"], true);
        // A plain check keeps its old shape.
        let plain = serde_json::to_value(fixture_step(&t)).unwrap();
        assert!(plain["checks"][0].get("inconclusive").is_none(), "{plain}");
    }

    #[test]
    fn fingerprint_is_sha256_of_the_file() {
        // Known answer: sha256("abc").
        assert_eq!(
            text_fingerprint("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
