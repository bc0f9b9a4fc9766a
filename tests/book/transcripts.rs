//! Transcripts, lesson chapters and the record mode that writes them.

use super::*;

// ---- transcripts -----------------------------------------------------------------

pub(crate) fn step_headings(transcript: &str) -> Vec<String> {
    transcript
        .lines()
        .filter(|l| l.starts_with("### Step "))
        .map(str::to_string)
        .collect()
}

/// Every lesson, with the path of its page `page(id)` under book/src and the
/// page's text (None when it is missing).
fn lessons_with_page(page: impl Fn(&str) -> String) -> Vec<(LessonText, PathBuf, Option<String>)> {
    text::all()
        .into_iter()
        .map(|l| {
            let path = src().join(page(&l.id));
            let text = std::fs::read_to_string(&path).ok();
            (l, path, text)
        })
        .collect()
}

/// The first line of a transcript of `l` recorded from the current lessons/<id>.toml.
fn current_stamp(l: &LessonText) -> String {
    let toml = read(&root().join(format!("lessons/{}.toml", l.id)));
    markdown_stamp(&l.id, &text_fingerprint(&toml))
}

/// The step headings a transcript of `l` has, in order.
fn headings_of(l: &LessonText) -> Vec<String> {
    let n = l.steps.len();
    l.steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("### Step {}/{n}: {}", i + 1, md_escape(&s.title)))
        .collect()
}

#[test]
fn transcripts_are_recorded_from_the_current_lesson_text() {
    let mut problems = Vec::new();
    for (l, _, t) in lessons_with_page(|id| format!("transcripts/{id}.md")) {
        let Some(t) = t else {
            problems.push(format!("{}: missing", l.id));
            continue;
        };
        if t.lines().next() != Some(current_stamp(&l).as_str()) {
            problems.push(format!(
                "{}: stale (recorded from another version of lessons/{}.toml)",
                l.id, l.id
            ));
        }
        let expected = headings_of(&l);
        let got = step_headings(&t);
        if got != expected {
            problems.push(format!(
                "{}: step headings differ from the lesson's steps\n  expected {expected:?}\n  recorded {got:?}",
                l.id
            ));
        }
        let n = l.steps.len();
        if !t.contains(&format!("**lesson {}: {n}/{n} steps passed", l.id)) {
            problems.push(format!("{}: the recorded run did not pass every step", l.id));
        }
    }
    assert!(
        problems.is_empty(),
        "transcripts in book/src/transcripts/ need recording (run scripts/book as root, then commit them):\n{}",
        problems.join("\n")
    );
}

/// What a finished lesson chapter has, judged on its source with the
/// includes expanded: the issue's list (goal, commands, real output, notes
/// on the tables, a diagram, the --shell exercise, the tutorial link).
pub(crate) fn chapter_gaps(id: &str, steps: &[&str], chapter: &str, expanded: &str) -> Vec<String> {
    let mut gaps = Vec::new();
    if chapter.contains("Stub chapter written by scripts/book") {
        gaps.push("still the stub (finish it, then delete the stub comment)".to_string());
    }
    for (what, ok) in [
        (
            "goal (transcripts/ID.md:goal)",
            chapter.contains(&format!("transcripts/{id}.md:goal")),
        ),
        (
            "tutorial link (transcripts/ID.md:tutorial)",
            chapter.contains(&format!("transcripts/{id}.md:tutorial")),
        ),
        (
            "post map (transcripts/ID.md:posts, under a heading \"From the post\")",
            chapter.contains(&format!("transcripts/{id}.md:posts")) && chapter.contains("From the post"),
        ),
        (
            "watch list (transcripts/ID.md:watch)",
            chapter.contains(&format!("transcripts/{id}.md:watch")),
        ),
        (
            "exercises (transcripts/ID.md:exercises)",
            chapter.contains(&format!("transcripts/{id}.md:exercises")),
        ),
        ("diagram (a ```text block of its own)", chapter.contains("```text")),
        (
            "notes on the before/after tables (> **Notice:**)",
            chapter.contains("**Notice:**"),
        ),
        (
            "`workbench lesson ID --shell` command",
            chapter.contains(&format!("workbench lesson {id} --shell")),
        ),
    ] {
        if !ok {
            gaps.push(format!("no {}", what.replace("ID", id)));
        }
    }
    let all_steps = chapter.contains(&format!("transcripts/{id}.md:steps"));
    for s in steps {
        if !all_steps && !chapter.contains(&format!("transcripts/{id}.md:step-{s}}}}}")) {
            gaps.push(format!("step {s} is not included (transcripts/{id}.md:step-{s})"));
        }
    }
    if !expanded.contains("### Step 1/") {
        gaps.push("no recorded output once the includes are expanded".to_string());
    }
    gaps
}

#[test]
fn every_lesson_chapter_is_finished() {
    let mut problems = Vec::new();
    for (l, path, chapter) in lessons_with_page(|id| format!("{id}.md")) {
        let Some(chapter) = chapter else {
            continue;
        }; // every_lesson_has_a_chapter_listed_in_summary says so
        let steps: Vec<&str> = l.steps.iter().map(|s| s.id.as_str()).collect();
        for g in chapter_gaps(&l.id, &steps, &chapter, &expand(&path, 0)) {
            problems.push(format!("{}: {g}", rel(&path)));
        }
    }
    assert!(
        problems.is_empty(),
        "unfinished lesson chapters (see book/src/pid-ns.md for a finished one):\n{}",
        problems.join("\n")
    );
}

#[test]
fn chapter_gaps_can_be_found() {
    let stub = read(&root().join("book/templates/lesson.md"))
        .replace("@ID@", "demo")
        .replace("@TITLE@", "Demo");
    let gaps = chapter_gaps("demo", &["one"], &stub, "### Step 1/1: One");
    assert!(gaps.iter().any(|g| g.contains("stub")), "{gaps:?}");
    assert!(gaps.iter().any(|g| g.contains("diagram")), "{gaps:?}");
    assert!(gaps.iter().any(|g| g.contains("--shell")), "{gaps:?}");
    let done = "{{#include transcripts/demo.md:goal}} {{#include transcripts/demo.md:tutorial}} {{#include transcripts/demo.md:watch}}\n\
        ## From the post\n{{#include transcripts/demo.md:posts}}\n\
        {{#include transcripts/demo.md:step-one}}\n> **Notice:** x\n```text\n+--+\n```\n```sh\nsudo workbench lesson demo --shell\n```\n\
        {{#include transcripts/demo.md:exercises}}";
    assert_eq!(
        chapter_gaps("demo", &["one"], done, "### Step 1/1: One"),
        Vec::<String>::new()
    );
    let no_map = done.replace("{{#include transcripts/demo.md:posts}}", "");
    assert!(chapter_gaps("demo", &["one"], &no_map, "### Step 1/1: One")
        .iter()
        .any(|g| g.contains("post map")));
    assert!(chapter_gaps("demo", &["one", "two"], done, "### Step 1/2: One")
        .iter()
        .any(|g| g.contains("step two")));
}

// ---- the record mode itself ----------------------------------------------------------

#[test]
fn record_mode_excludes_interactive_and_json_output() {
    assert!(Cli::try_parse_from(["workbench", "lesson", "pid-ns", "--markdown"]).is_ok());
    for other in ["--json", "--step", "--shell"] {
        assert!(
            Cli::try_parse_from(["workbench", "lesson", "pid-ns", "--markdown", other]).is_err(),
            "--markdown with {other}"
        );
    }
    assert!(Cli::try_parse_from(["workbench", "doctor", "--markdown", "--json"]).is_err());
}

#[test]
fn record_mode_writes_a_real_run_as_markdown() {
    let host = root_host!();
    let o = common::workbench(&["lesson", "pid-ns", "--markdown"]);
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), common::stderr(&o));
    let page = common::stdout(&o);
    let l = text::find("pid-ns").unwrap();
    assert_eq!(page.lines().next(), Some(current_stamp(&l).as_str()));
    assert_eq!(step_headings(&page), headings_of(&l));
    for s in &l.steps {
        let body = anchored(&page, &format!("step-{}", s.id)).unwrap_or_else(|| panic!("no anchor step-{}", s.id));
        assert!(
            body.contains("| check | expected | actual | result |") && body.contains("**PASS**"),
            "step {} has no passing checks:\n{body}",
            s.id
        );
    }
    // The kernel's answers are in the tables: new pid namespace, PID 1 inside.
    let clone = anchored(&page, "step-clone").unwrap();
    assert!(
        clone
            .lines()
            .any(|r| r.starts_with("| pid | ") && r.ends_with("| **CHANGED** |")),
        "{clone}"
    );
    assert!(
        clone
            .lines()
            .any(|r| r.starts_with("| net | ") && r.ends_with("| same |")),
        "{clone}"
    );
    assert!(anchored(&page, "step-child-pid")
        .unwrap()
        .contains("| getpid() inside | - | `1` | **ADDED** |"));
    assert!(!page.contains('\u{1b}'), "no terminal colours in Markdown");
    let n = l.steps.len();
    assert!(page.contains(&format!("**lesson pid-ns: {n}/{n} steps passed")));
    host.assert_unchanged("pid-ns --markdown");
}

#[test]
fn doctor_markdown_lists_every_check_with_a_remedy() {
    let o = common::workbench(&["doctor", "--markdown"]);
    let out = common::stdout(&o);
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows[0], "| check | needed | on the recording host | remedy |");
    let checks = workbench::host::doctor::checks(&workbench::host::Host::probe());
    assert_eq!(rows.len() - 1, checks.len(), "{out}");
    for r in &rows[1..] {
        let cells: Vec<&str> = r.trim_matches('|').split(" | ").collect();
        assert_eq!(cells.len(), 4, "a | inside a cell is not escaped: {r}");
        assert!(!cells[3].trim().is_empty(), "no remedy: {r}");
    }
}
