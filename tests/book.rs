//! The book (`book/`) is checked like code.
//!
//! - every lesson in `lessons/` has a chapter listed in `SUMMARY.md`, in tour order;
//! - every ```` ```sh ```` line that runs `workbench` (or `sudo workbench`) parses
//!   with the real CLI, and the lessons it names exist;
//! - every `{{#include file:anchor}}` names an existing file and anchor (mdBook
//!   itself only logs a missing file, and silently includes nothing for a
//!   missing anchor);
//! - every transcript was recorded from the lesson's current text (its stamp is
//!   the SHA-256 of `lessons/<id>.toml`) and shows every step, all passed;
//! - every lesson chapter is finished: no stub, each step's output included,
//!   a diagram, notes on the tables, the tutorial link and a `--shell` exercise;
//! - pages generated from code (the cgroup file list from `wb-cgroup`, the
//!   doctor table) agree with the code;
//! - the built HTML (`book/book`, when present) has no broken relative link or
//!   `#fragment`;
//! - screenshots taken by `scripts/book-screenshots` are not blank.
//!
//! With `WB_BOOK_BLESS=1` (scripts/book sets it) the tests write what they can
//! generate without root — a stub chapter and a SUMMARY.md entry for a lesson
//! that has none, the cgroup file list — instead of failing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Parser;
use workbench::cli::args::{Cli, Command};
use workbench::lesson::runner::{markdown_stamp, text_fingerprint};
use workbench::lesson::text::{self, LessonText};
use workbench::observe::render::md_escape;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn src() -> PathBuf {
    root().join("book/src")
}

fn env_is(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

fn bless() -> bool {
    env_is("WB_BOOK_BLESS")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Every Markdown file under `dir`, recursively, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display())).flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

// ---- SUMMARY.md -------------------------------------------------------------

/// The `.md` targets linked from SUMMARY.md, in order.
fn summary_targets(summary: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in summary.lines() {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(j) = after.find(')') else { break };
            out.push(after[..j].trim().to_string());
            rest = &after[j..];
        }
    }
    out
}

/// Insert `entry` (a SUMMARY line for lesson `id`) after the entry of the
/// closest lesson before it in tour order, or right under `# Lessons`, or at
/// the end.
fn insert_summary_entry(summary: &str, entry: &str, earlier_ids: &[&str]) -> String {
    let mut lines: Vec<String> = summary.lines().map(str::to_string).collect();
    let mut at = None;
    for id in earlier_ids.iter().rev() {
        if let Some(i) = lines.iter().position(|l| l.contains(&format!("]({id}.md)"))) {
            at = Some(i + 1);
            break;
        }
    }
    if at.is_none() {
        if let Some(i) = lines.iter().position(|l| l.trim() == "# Lessons") {
            // Right under the heading and its blank line, before any other entry.
            if !lines.get(i + 1).is_some_and(|l| l.trim().is_empty()) {
                lines.insert(i + 1, String::new());
            }
            at = Some(i + 2);
        }
    }
    match at {
        Some(i) => lines.insert(i, entry.to_string()),
        None => lines.push(entry.to_string()),
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

fn stub_chapter(l: &LessonText) -> String {
    read(&root().join("book/templates/lesson.md")).replace("@ID@", &l.id).replace("@TITLE@", &md_escape(&l.title))
}

#[test]
fn every_lesson_has_a_chapter_listed_in_summary() {
    let summary_path = src().join("SUMMARY.md");
    let mut summary = read(&summary_path);
    let lessons = text::all();
    let mut missing = Vec::new();
    for (i, l) in lessons.iter().enumerate() {
        let chapter = src().join(format!("{}.md", l.id));
        let listed = summary_targets(&summary).contains(&format!("{}.md", l.id));
        if chapter.exists() && listed {
            continue;
        }
        if !bless() {
            missing.push(format!("{} ({})", l.id, if chapter.exists() { "not in SUMMARY.md" } else { "no book/src/{id}.md" }.replace("{id}", &l.id)));
            continue;
        }
        if !chapter.exists() {
            std::fs::write(&chapter, stub_chapter(l)).unwrap();
            eprintln!("wrote a stub chapter {}: commit it, then finish it", rel(&chapter));
        }
        if !listed {
            let earlier: Vec<&str> = lessons[..i].iter().map(|e| e.id.as_str()).collect();
            summary = insert_summary_entry(&summary, &format!("- [{}]({}.md)", l.id, l.id), &earlier);
            std::fs::write(&summary_path, &summary).unwrap();
            eprintln!("added {} to {}", l.id, rel(&summary_path));
        }
    }
    assert!(missing.is_empty(), "lessons without a chapter in the book: {}.\nRun scripts/book: it writes a stub chapter from book/templates/lesson.md and the SUMMARY.md entry.", missing.join(", "));
}

/// SUMMARY.md with the lesson entries (lines linking `<id>.md`) moved into
/// tour order, other lines untouched.
fn reorder_lessons(summary: &str, ordered_ids: &[&str]) -> String {
    let entry_of = |id: &str| summary.lines().find(|l| l.contains(&format!("]({id}.md)"))).map(str::to_string);
    let entries: Vec<(&str, String)> = ordered_ids.iter().filter_map(|id| entry_of(id).map(|e| (*id, e))).collect();
    let mut out: String = summary.lines().filter(|l| !entries.iter().any(|(_, e)| e == l)).map(|l| format!("{l}\n")).collect();
    for (i, (_, e)) in entries.iter().enumerate() {
        let earlier: Vec<&str> = entries[..i].iter().map(|(id, _)| *id).collect();
        out = insert_summary_entry(&out, e, &earlier);
    }
    out
}

#[test]
fn lesson_chapters_follow_the_tour_order() {
    let path = src().join("SUMMARY.md");
    let summary = read(&path);
    let lessons = text::all();
    let ids: BTreeSet<String> = lessons.iter().map(|l| format!("{}.md", l.id)).collect();
    let listed: Vec<String> = summary_targets(&summary).into_iter().filter(|t| ids.contains(t)).collect();
    let expected: Vec<String> = lessons.iter().map(|l| format!("{}.md", l.id)).filter(|t| listed.contains(t)).collect();
    if listed != expected && bless() {
        let ordered: Vec<&str> = lessons.iter().map(|l| l.id.as_str()).collect();
        std::fs::write(&path, reorder_lessons(&summary, &ordered)).unwrap();
        eprintln!("reordered the lessons of {}", rel(&path));
        return;
    }
    assert_eq!(listed, expected, "SUMMARY.md lists the lesson chapters out of tour order (the `order` field of lessons/*.toml); scripts/book reorders them");
}

#[test]
fn summary_entries_are_inserted_in_tour_order() {
    let s = "# Summary\n\n[Intro](introduction.md)\n\n# Lessons\n\n- [a](a.md)\n- [c](c.md)\n\n# Reference\n\n- [G](glossary.md)\n";
    let out = insert_summary_entry(s, "- [b](b.md)", &["a"]);
    assert_eq!(summary_targets(&out), ["introduction.md", "a.md", "b.md", "c.md", "glossary.md"]);
    let out = insert_summary_entry(s, "- [z](z.md)", &[]);
    assert_eq!(summary_targets(&out), ["introduction.md", "z.md", "a.md", "c.md", "glossary.md"]);
    let out = insert_summary_entry("# Summary\n\n# Lessons\n", "- [z](z.md)", &[]);
    assert_eq!(out, "# Summary\n\n# Lessons\n\n- [z](z.md)\n");
    let out = insert_summary_entry("# Summary\n", "- [z](z.md)", &["nope"]);
    assert_eq!(out, "# Summary\n- [z](z.md)\n");
    let shuffled = "# Summary\n\n# Lessons\n\n- [c](c.md)\n- [a](a.md)\n\n# Reference\n\n- [b](b.md)\n- [G](glossary.md)\n";
    let out = reorder_lessons(shuffled, &["a", "b", "c"]);
    assert_eq!(out, "# Summary\n\n# Lessons\n\n- [a](a.md)\n- [b](b.md)\n- [c](c.md)\n\n# Reference\n\n- [G](glossary.md)\n");
}

// ---- includes ----------------------------------------------------------------

/// One `{{#include path[:anchor|:lines]}}` directive.
#[derive(Debug)]
struct Include {
    path: String,
    /// A named anchor, or a line range like `3:10`, or nothing.
    selector: Option<String>,
}

fn includes(text: &str) -> Vec<(usize, Include)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("{{#include ") {
            let after = &rest[i + "{{#include ".len()..];
            let Some(j) = after.find("}}") else { break };
            let arg = after[..j].trim();
            let (path, selector) = match arg.split_once(':') {
                Some((p, s)) => (p.to_string(), Some(s.to_string())),
                None => (arg.to_string(), None),
            };
            out.push((n + 1, Include { path, selector }));
            rest = &after[j..];
        }
    }
    out
}

/// Is `name` an mdBook anchor name? (`[\w_-]+`)
fn is_anchor_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') && !s.chars().all(|c| c.is_ascii_digit())
}

/// The lines between `ANCHOR: name` and `ANCHOR_END: name`, without other
/// anchor lines (what mdBook includes), or `None` if the anchor is missing.
fn anchored(text: &str, name: &str) -> Option<String> {
    let is_marker = |l: &str, kind: &str| {
        l.find(kind).is_some_and(|i| {
            let rest = l[i + kind.len()..].trim_start();
            rest.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-')).next() == Some(name)
        })
    };
    let mut inside = false;
    let mut found_end = false;
    let mut out = Vec::new();
    for l in text.lines() {
        if !inside {
            if is_marker(l, "ANCHOR:") {
                inside = true;
            }
            continue;
        }
        if is_marker(l, "ANCHOR_END:") {
            found_end = true;
            break;
        }
        if !(l.contains("ANCHOR:") || l.contains("ANCHOR_END:")) {
            out.push(l);
        }
    }
    (inside && found_end).then(|| out.join("\n"))
}

/// What an include directive expands to, or why it cannot.
fn resolve_include(from: &Path, inc: &Include) -> Result<String, String> {
    let target = from.parent().unwrap().join(&inc.path);
    let text = std::fs::read_to_string(&target).map_err(|e| format!("{}: {e}", inc.path))?;
    match inc.selector.as_deref() {
        None => Ok(text),
        Some(s) if is_anchor_name(s) => match anchored(&text, s) {
            Some(body) if !body.trim().is_empty() => Ok(body),
            Some(_) => Err(format!("{}: anchor `{s}` is empty", inc.path)),
            None => Err(format!("{}: no anchor `{s}` (ANCHOR: {s} … ANCHOR_END: {s})", inc.path)),
        },
        Some(range) => {
            let lines: Vec<&str> = text.lines().collect();
            let mut parts = range.splitn(2, ':');
            let parse = |p: Option<&str>, default: usize| -> Result<usize, String> {
                match p.map(str::trim) {
                    None | Some("") => Ok(default),
                    Some(n) => n.parse().map_err(|_| format!("{}: bad line range `{range}`", inc.path)),
                }
            };
            let start = parse(parts.next(), 1)?;
            let end = if range.contains(':') { parse(parts.next(), lines.len())? } else { start };
            if start == 0 || start > lines.len() || end > lines.len() || start > end {
                return Err(format!("{}: line range `{range}` outside its {} lines", inc.path, lines.len()));
            }
            Ok(lines[start - 1..end].join("\n"))
        }
    }
}

/// The file with every include expanded (recursively), as mdBook would.
fn expand(path: &Path, depth: usize) -> String {
    expand_text(path, &read(path), depth)
}

fn expand_text(path: &Path, text: &str, depth: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_string();
        for (_, inc) in includes(&line.clone()) {
            // A broken include expands to nothing here; the include test reports it.
            let body = resolve_include(path, &inc).unwrap_or_default();
            let target = path.parent().unwrap().join(&inc.path);
            let body = if depth < 5 && body.contains("{{#include") { expand_text(&target, &body, depth + 1) } else { body };
            let directive = format!("{{{{#include {}{}}}}}", inc.path, inc.selector.as_deref().map(|s| format!(":{s}")).unwrap_or_default());
            line = line.replacen(&directive, &body, 1);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn every_include_names_an_existing_file_and_anchor() {
    let mut problems = Vec::new();
    let mut count = 0;
    for f in markdown_files(&src()) {
        for (line, inc) in includes(&read(&f)) {
            count += 1;
            if let Err(e) = resolve_include(&f, &inc) {
                problems.push(format!("{}:{line}: {e}", rel(&f)));
            }
        }
    }
    assert!(count > 0, "no includes found: is book/src empty?");
    assert!(problems.is_empty(), "broken includes (a missing transcript? run scripts/book as root):\n{}", problems.join("\n"));
}

#[test]
fn include_parsing_and_anchors() {
    let incs = includes("a {{#include x.md:intro}} b {{#include ../y.toml}} {{#include z.rs:3:5}}");
    let got: Vec<(String, Option<String>)> = incs.into_iter().map(|(_, i)| (i.path, i.selector)).collect();
    assert_eq!(got, [("x.md".into(), Some("intro".into())), ("../y.toml".into(), None), ("z.rs".into(), Some("3:5".into()))]);
    let text = "x\n# ANCHOR: a\none\n<!-- ANCHOR: inner -->\ntwo\n<!-- ANCHOR_END: inner -->\n# ANCHOR_END: a\n# ANCHOR: ab\nno\n";
    assert_eq!(anchored(text, "a").as_deref(), Some("one\ntwo"));
    assert_eq!(anchored(text, "inner").as_deref(), Some("two"));
    assert_eq!(anchored(text, "ab"), None, "an anchor without its end is missing");
    assert_eq!(anchored(text, "b"), None);
}

// ---- commands in the chapters --------------------------------------------------

/// Split a shell command line into words (quotes and backslashes as in sh),
/// stopping at the first unquoted `#`, `|`, `>`, `<`, `;` or `&`: what follows
/// is not part of the first command's arguments.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut has = false;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                has = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    has = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if has {
                    words.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            (None, '#') if !has => break,
            (None, '|' | '>' | '<' | ';' | '&') => break,
            (None, c) => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        words.push(cur);
    }
    words
}

/// The command lines of every ```sh block (continuation lines joined).
fn sh_blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fence: Option<String> = None;
    let mut pending = String::new();
    for line in md.lines() {
        let t = line.trim_start();
        match &fence {
            None => {
                let ticks: String = t.chars().take_while(|c| *c == '`').collect();
                if ticks.len() >= 3 {
                    let info = t[ticks.len()..].trim();
                    fence = Some(if matches!(info, "sh" | "bash" | "shell" | "console") { ticks } else { format!("skip{ticks}") });
                }
            }
            Some(f) => {
                let ticks = f.trim_start_matches("skip");
                if t.starts_with(ticks) && t.trim_end().chars().all(|c| c == '`') {
                    fence = None;
                    continue;
                }
                if f.starts_with("skip") {
                    continue;
                }
                if let Some(head) = line.strip_suffix('\\') {
                    pending.push_str(head);
                    pending.push(' ');
                    continue;
                }
                pending.push_str(line);
                out.push(std::mem::take(&mut pending));
            }
        }
    }
    out
}

/// Check a `workbench` invocation; `None` if the line does not run workbench.
fn check_invocation(line: &str) -> Option<Result<(), String>> {
    let mut words = shell_words(line);
    if words.first().is_some_and(|w| w == "sudo") {
        words.remove(0);
    }
    if words.first().map(String::as_str) != Some("workbench") {
        return None;
    }
    // The lesson exists and takes the options given.
    let known = |a: &workbench::cli::args::LessonArgs| -> Result<(), String> {
        let def = workbench::lessons::find(&a.id).ok_or_else(|| format!("no lesson named '{}' (see `workbench list`)", a.id))?;
        let takes = text::find(def.id).map(|t| t.options).unwrap_or_default();
        a.options.refuse_others(def.id, &takes).map_err(|e| e.to_string())
    };
    Some(match Cli::try_parse_from(&words) {
        Err(e) => Err(e.to_string().lines().next().unwrap_or("").to_string()),
        Ok(cli) => match cli.command {
            Command::Lesson(a) => known(&a),
            Command::External(args) => {
                let mut argv = vec!["workbench".to_string(), "lesson".to_string()];
                argv.extend(args);
                match Cli::try_parse_from(&argv) {
                    Ok(Cli { command: Command::Lesson(a), .. }) => known(&a),
                    Ok(_) => Err("not a lesson".into()),
                    Err(e) => Err(e.to_string().lines().next().unwrap_or("").to_string()),
                }
            }
            _ => Ok(()),
        },
    })
}

#[test]
fn every_workbench_command_in_the_book_is_valid() {
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut runs_own_lesson: BTreeSet<String> = BTreeSet::new();
    let lessons = text::all();
    for f in markdown_files(&src()) {
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        for line in sh_blocks(&expand(&f, 0)) {
            match check_invocation(&line) {
                None => {}
                Some(Ok(())) => {
                    checked += 1;
                    let words = shell_words(&line);
                    if words.contains(&stem) || lessons.iter().find(|l| l.id == stem).is_some_and(|l| l.aliases.iter().any(|a| words.contains(a))) {
                        runs_own_lesson.insert(stem.clone());
                    }
                }
                Some(Err(e)) => problems.push(format!("{}: `{}`: {e}", rel(&f), line.trim())),
            }
        }
    }
    assert!(problems.is_empty(), "invalid workbench commands in the book:\n{}", problems.join("\n"));
    assert!(checked >= 5, "only {checked} workbench commands found: is the ```sh parsing broken?");
    let silent: Vec<&str> = lessons.iter().map(|l| l.id.as_str()).filter(|id| src().join(format!("{id}.md")).exists() && !runs_own_lesson.contains(*id)).collect();
    assert!(silent.is_empty(), "lesson chapters that never show the command to run their lesson: {silent:?}");
}

#[test]
fn command_checking_can_fail() {
    assert_eq!(shell_words("sudo workbench lesson pid-ns --hostname 'a b' # comment"), ["sudo", "workbench", "lesson", "pid-ns", "--hostname", "a b"]);
    assert_eq!(shell_words("workbench lesson pid-ns --markdown > out.md"), ["workbench", "lesson", "pid-ns", "--markdown"]);
    assert_eq!(shell_words(r#"echo "a\"b" x\ y"#), ["echo", "a\"b", "x y"]);
    assert!(check_invocation("ls -l").is_none());
    assert!(check_invocation("sudo workbench lesson pid-ns --step").unwrap().is_ok());
    assert!(check_invocation("workbench unshare-pid --shell").unwrap().is_ok(), "aliases and the short form are valid");
    assert!(check_invocation("workbench lesson no-such-lesson").unwrap().is_err());
    assert!(check_invocation("workbench no-such-lesson --step").unwrap().is_err());
    assert!(check_invocation("workbench lesson pid-ns --json --step").unwrap().is_err());
    assert!(check_invocation("workbench lesson pid-ns --no-such-flag").unwrap().is_err());
    assert!(check_invocation("workbench doctor --markdown").unwrap().is_ok());
    assert!(check_invocation("workbench lesson pid-ns --hostname box").unwrap().is_ok());
    assert!(check_invocation("workbench pid-ns --memory 64M").unwrap().is_err(), "an option the lesson does not take");
    let md = "```sh\nworkbench list\nworkbench lesson \\\n  pid-ns\n```\n```text\nworkbench nope\n```\n````sh\nworkbench doctor\n````\n";
    assert_eq!(sh_blocks(md), ["workbench list", "workbench lesson    pid-ns", "workbench doctor"]);
}

/// The widest line a code block may have and still fit mdBook's text column
/// on a laptop screen without scrolling.
const CODE_WIDTH: usize = 76;

#[test]
fn hand_written_code_blocks_fit_the_page() {
    let mut wide = Vec::new();
    for f in markdown_files(&src()) {
        if f.starts_with(src().join("transcripts")) || f.starts_with(src().join("generated")) {
            continue; // recorded output is what it is
        }
        let mut fence: Option<usize> = None;
        for (n, line) in read(&f).lines().enumerate() {
            let ticks = line.chars().take_while(|c| *c == '`').count();
            match fence {
                None if ticks >= 3 => fence = Some(ticks),
                Some(t) if ticks >= t && line.trim_end().chars().all(|c| c == '`') => fence = None,
                Some(_) if !line.contains("{{#include") && line.chars().count() > CODE_WIDTH => {
                    wide.push(format!("{}:{}: {} columns", rel(&f), n + 1, line.chars().count()));
                }
                _ => {}
            }
        }
    }
    assert!(wide.is_empty(), "code lines wider than {CODE_WIDTH} columns (they scroll sideways in the book):\n{}", wide.join("\n"));
}

// ---- transcripts -----------------------------------------------------------------

fn step_headings(transcript: &str) -> Vec<String> {
    transcript.lines().filter(|l| l.starts_with("### Step ")).map(str::to_string).collect()
}

#[test]
fn transcripts_are_recorded_from_the_current_lesson_text() {
    let mut problems = Vec::new();
    for l in text::all() {
        let path = src().join(format!("transcripts/{}.md", l.id));
        let Ok(t) = std::fs::read_to_string(&path) else {
            problems.push(format!("{}: missing", l.id));
            continue;
        };
        let toml = read(&root().join(format!("lessons/{}.toml", l.id)));
        let stamp = markdown_stamp(&l.id, &text_fingerprint(&toml));
        if t.lines().next() != Some(stamp.as_str()) {
            problems.push(format!("{}: stale (recorded from another version of lessons/{}.toml)", l.id, l.id));
        }
        let n = l.steps.len();
        let expected: Vec<String> = l.steps.iter().enumerate().map(|(i, s)| format!("### Step {}/{n}: {}", i + 1, md_escape(&s.title))).collect();
        let got = step_headings(&t);
        if got != expected {
            problems.push(format!("{}: step headings differ from the lesson's steps\n  expected {expected:?}\n  recorded {got:?}", l.id));
        }
        if !t.contains(&format!("**lesson {}: {n}/{n} steps passed", l.id)) {
            problems.push(format!("{}: the recorded run did not pass every step", l.id));
        }
    }
    assert!(problems.is_empty(), "transcripts in book/src/transcripts/ need recording (run scripts/book as root, then commit them):\n{}", problems.join("\n"));
}

/// What a finished lesson chapter has, judged on its source with the
/// includes expanded: the issue's list (goal, commands, real output, notes
/// on the tables, a diagram, the --shell exercise, the tutorial link).
fn chapter_gaps(id: &str, steps: &[&str], chapter: &str, expanded: &str) -> Vec<String> {
    let mut gaps = Vec::new();
    if chapter.contains("Stub chapter written by scripts/book") {
        gaps.push("still the stub (finish it, then delete the stub comment)".to_string());
    }
    for (what, ok) in [
        ("goal (transcripts/ID.md:goal)", chapter.contains(&format!("transcripts/{id}.md:goal"))),
        ("tutorial link (transcripts/ID.md:tutorial)", chapter.contains(&format!("transcripts/{id}.md:tutorial"))),
        ("watch list (transcripts/ID.md:watch)", chapter.contains(&format!("transcripts/{id}.md:watch"))),
        ("exercises (transcripts/ID.md:exercises)", chapter.contains(&format!("transcripts/{id}.md:exercises"))),
        ("diagram (a ```text block of its own)", chapter.contains("```text")),
        ("notes on the before/after tables (> **Notice:**)", chapter.contains("**Notice:**")),
        ("`workbench lesson ID --shell` command", chapter.contains(&format!("workbench lesson {id} --shell"))),
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
    for l in text::all() {
        let path = src().join(format!("{}.md", l.id));
        let Ok(chapter) = std::fs::read_to_string(&path) else { continue }; // every_lesson_has_a_chapter_listed_in_summary says so
        let steps: Vec<&str> = l.steps.iter().map(|s| s.id.as_str()).collect();
        for g in chapter_gaps(&l.id, &steps, &chapter, &expand(&path, 0)) {
            problems.push(format!("{}: {g}", rel(&path)));
        }
    }
    assert!(problems.is_empty(), "unfinished lesson chapters (see book/src/pid-ns.md for a finished one):\n{}", problems.join("\n"));
}

#[test]
fn chapter_gaps_can_be_found() {
    let stub = read(&root().join("book/templates/lesson.md")).replace("@ID@", "demo").replace("@TITLE@", "Demo");
    let gaps = chapter_gaps("demo", &["one"], &stub, "### Step 1/1: One");
    assert!(gaps.iter().any(|g| g.contains("stub")), "{gaps:?}");
    assert!(gaps.iter().any(|g| g.contains("diagram")), "{gaps:?}");
    assert!(gaps.iter().any(|g| g.contains("--shell")), "{gaps:?}");
    let done = "{{#include transcripts/demo.md:goal}} {{#include transcripts/demo.md:tutorial}} {{#include transcripts/demo.md:watch}}\n\
        {{#include transcripts/demo.md:step-one}}\n> **Notice:** x\n```text\n+--+\n```\n```sh\nsudo workbench lesson demo --shell\n```\n\
        {{#include transcripts/demo.md:exercises}}";
    assert_eq!(chapter_gaps("demo", &["one"], done, "### Step 1/1: One"), Vec::<String>::new());
    assert!(chapter_gaps("demo", &["one", "two"], done, "### Step 1/2: One").iter().any(|g| g.contains("step two")));
}

// ---- the record mode itself ----------------------------------------------------------

#[test]
fn record_mode_excludes_interactive_and_json_output() {
    assert!(Cli::try_parse_from(["workbench", "lesson", "pid-ns", "--markdown"]).is_ok());
    for other in ["--json", "--step", "--shell"] {
        assert!(Cli::try_parse_from(["workbench", "lesson", "pid-ns", "--markdown", other]).is_err(), "--markdown with {other}");
    }
    assert!(Cli::try_parse_from(["workbench", "doctor", "--markdown", "--json"]).is_err());
}

#[test]
fn record_mode_writes_a_real_run_as_markdown() {
    require_root!();
    let _g = common::serial();
    let before = workbench::hoststate::capture();
    let o = common::workbench(&["lesson", "pid-ns", "--markdown"]);
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), common::stderr(&o));
    let page = common::stdout(&o);
    let l = text::find("pid-ns").unwrap();
    let toml = read(&root().join("lessons/pid-ns.toml"));
    assert_eq!(page.lines().next(), Some(markdown_stamp("pid-ns", &text_fingerprint(&toml)).as_str()));
    let n = l.steps.len();
    let want: Vec<String> = l.steps.iter().enumerate().map(|(i, s)| format!("### Step {}/{n}: {}", i + 1, md_escape(&s.title))).collect();
    assert_eq!(step_headings(&page), want);
    for s in &l.steps {
        let body = anchored(&page, &format!("step-{}", s.id)).unwrap_or_else(|| panic!("no anchor step-{}", s.id));
        assert!(body.contains("| check | expected | actual | result |") && body.contains("**PASS**"), "step {} has no passing checks:\n{body}", s.id);
    }
    // The kernel's answers are in the tables: new pid namespace, PID 1 inside.
    let clone = anchored(&page, "step-clone").unwrap();
    assert!(clone.lines().any(|r| r.starts_with("| pid | ") && r.ends_with("| **CHANGED** |")), "{clone}");
    assert!(clone.lines().any(|r| r.starts_with("| net | ") && r.ends_with("| same |")), "{clone}");
    assert!(anchored(&page, "step-child-pid").unwrap().contains("| getpid() inside | - | `1` | **ADDED** |"));
    assert!(!page.contains('\u{1b}'), "no terminal colours in Markdown");
    assert!(page.contains(&format!("**lesson pid-ns: {n}/{n} steps passed")));
    common::assert_host_unchanged(&before, "pid-ns --markdown");
}

#[test]
fn doctor_markdown_lists_every_check_with_a_remedy() {
    let o = common::workbench(&["doctor", "--markdown"]);
    let out = common::stdout(&o);
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows[0], "| check | needed | on the recording host | remedy |");
    let checks = workbench::doctor::checks(&workbench::host::Host::probe());
    assert_eq!(rows.len() - 1, checks.len(), "{out}");
    for r in &rows[1..] {
        let cells: Vec<&str> = r.trim_matches('|').split(" | ").collect();
        assert_eq!(cells.len(), 4, "a | inside a cell is not escaped: {r}");
        assert!(!cells[3].trim().is_empty(), "no remedy: {r}");
    }
}

// ---- pages generated from code ------------------------------------------------------

/// (section, file name, doc) for every `pub const` in wb-cgroup's files.rs.
fn cgroup_files() -> Vec<(String, String, String)> {
    let text = read(&root().join("crates/wb-cgroup/src/files.rs"));
    let mut out = Vec::new();
    let mut section = String::from("core");
    let mut doc: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(s) = t.strip_prefix("// ----") {
            section = s.trim_matches(|c: char| c == '-' || c.is_whitespace()).to_string();
            doc.clear();
        } else if let Some(d) = t.strip_prefix("///") {
            doc.push(d.trim().to_string());
        } else if t.starts_with("pub const ") && t.contains(": &str = \"") {
            let value = t.split('"').nth(1).unwrap_or_default().to_string();
            out.push((section.clone(), value, doc.join(" ")));
            doc.clear();
        } else if !t.starts_with("//!") {
            doc.clear();
        }
    }
    out
}

fn cgroup_files_page() -> String {
    let mut out = String::from("<!-- Generated from crates/wb-cgroup/src/files.rs by tests/book.rs (WB_BOOK_BLESS=1 scripts/book); do not edit. -->\n");
    let mut last = String::new();
    for (section, file, doc) in cgroup_files() {
        if section != last {
            out.push_str(&format!("\n**{section}**\n\n| file | what it holds |\n|---|---|\n"));
            last = section;
        }
        out.push_str(&format!("| `{file}` | {} |\n", doc.replace('|', "\\|")));
    }
    out
}

#[test]
fn cgroup_files_page_matches_wb_cgroup() {
    let files = cgroup_files();
    assert!(files.len() >= 20, "parsed only {} constants from files.rs", files.len());
    assert!(files.iter().any(|(s, f, d)| s == "memory (v2)" && f == "memory.events" && d.contains("oom_kill")), "{files:?}");
    let path = src().join("generated/cgroup-files.md");
    let want = cgroup_files_page();
    if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
        if bless() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
            eprintln!("regenerated {}", rel(&path));
        } else {
            panic!("{} is out of date with crates/wb-cgroup/src/files.rs: run scripts/book (or WB_BOOK_BLESS=1 cargo test --test book)", rel(&path));
        }
    }
}

#[test]
fn cgroup_chapter_maps_every_file_and_names_no_unknown_one() {
    let chapter = read(&src().join("cgroup-v1-v2.md"));
    let known: BTreeSet<String> = cgroup_files().into_iter().map(|(_, f, _)| f).collect();
    let missing: Vec<&String> = known.iter().filter(|f| !chapter.contains(&format!("`{f}`"))).collect();
    assert!(missing.is_empty(), "cgroup-v1-v2.md does not map these files of crates/wb-cgroup/src/files.rs: {missing:?}");
    // Every `name.like_this` in backticks that looks like a cgroup file is real.
    let extra: BTreeSet<&str> = ["cgroup.threads"].into();
    let mut unknown = Vec::new();
    for span in chapter.split('`').skip(1).step_by(2) {
        let looks = ["cgroup.", "cpu.", "cpuacct.", "memory.", "pids."].iter().any(|p| span.starts_with(p)) && span.chars().all(|c| c.is_ascii_lowercase() || c == '.' || c == '_');
        if looks && !known.contains(span) && !extra.contains(span) {
            unknown.push(span);
        }
    }
    assert!(unknown.is_empty(), "cgroup-v1-v2.md names files wb-cgroup does not know (typo? or add them to files.rs): {unknown:?}");
}

#[test]
fn doctor_page_lists_every_check() {
    let path = src().join("generated/doctor.md");
    let Ok(page) = std::fs::read_to_string(&path) else {
        panic!("{} is missing: run scripts/book (it writes `workbench doctor --markdown` there)", rel(&path));
    };
    // Table rows after the header row and the |---| line; the first cell is the check.
    let rows = page.lines().filter(|l| l.starts_with("| ")).skip(1);
    let in_page: BTreeSet<String> = rows.filter_map(|l| l.split(" | ").next()).map(|c| c.trim_start_matches("| ").to_string()).collect();
    let checks: BTreeSet<String> = workbench::doctor::checks(&workbench::host::Host::probe()).iter().map(|f| md_escape(&f.check)).collect();
    assert_eq!(in_page, checks, "{} lists other checks than src/doctor.rs: run scripts/book as root", rel(&path));
}

#[test]
fn setup_chapter_shows_the_readme_commands() {
    let readme = read(&root().join("README.md"));
    let two = anchored(&readme, "two-commands").expect("README.md has the two-commands anchor");
    // As typed by root, who may have no sudo (a fresh root shell has none).
    let commands: Vec<&str> = two.lines().filter(|l| l.starts_with("scripts/")).collect();
    assert!(commands.len() == 2 && commands[0].starts_with("scripts/tour ") && commands[1].starts_with("scripts/test "), "{two}");
    let setup = expand(&src().join("setup.md"), 0);
    assert!(commands.iter().all(|c| setup.contains(c)), "setup.md does not include the README's two commands");
}

// ---- the built book ------------------------------------------------------------------

/// The values of `href="…"` and `src="…"` attributes in an HTML text.
fn html_links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in [" href=\"", " src=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            let after = &rest[i + attr.len()..];
            let Some(j) = after.find('"') else { break };
            out.push(after[..j].to_string());
            rest = &after[j..];
        }
    }
    out
}

fn html_ids(html: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for attr in [" id=\"", " name=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            let after = &rest[i + attr.len()..];
            let Some(j) = after.find('"') else { break };
            out.insert(after[..j].to_string());
            rest = &after[j..];
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn html_entities(s: &str) -> String {
    s.replace("&amp;", "&").replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">")
}

/// Broken relative links and fragments in the built book at `dir`.
fn broken_links(dir: &Path) -> (usize, Vec<String>) {
    let mut pages: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "html") {
                pages.insert(p.clone(), read(&p));
            }
        }
    }
    let mut ids: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    let mut checked = 0;
    let mut broken = Vec::new();
    for (page, html) in &pages {
        // 404.html is served from the site root (`<base href="/">`): its links resolve from `dir`.
        let base = if html.contains("<base href=\"/\"") { dir.to_path_buf() } else { page.parent().unwrap().to_path_buf() };
        for link in html_links(html) {
            let link = html_entities(&link);
            if link.is_empty() || link.starts_with("//") || link.contains("://") || ["mailto:", "javascript:", "data:", "tel:"].iter().any(|p| link.starts_with(p)) {
                continue;
            }
            checked += 1;
            let (path_part, frag) = match link.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (link.as_str(), None),
            };
            let path_part = path_part.split('?').next().unwrap_or("");
            let target = if path_part.is_empty() {
                page.clone()
            } else if let Some(abs) = path_part.strip_prefix('/') {
                // Site-absolute: the book is served from its root.
                dir.join(percent_decode(abs))
            } else {
                base.join(percent_decode(path_part))
            };
            let target = if target.is_dir() { target.join("index.html") } else { target };
            if !target.exists() {
                broken.push(format!("{}: {link} (no file {})", rel(page), rel(&target)));
                continue;
            }
            if let Some(f) = frag.filter(|f| !f.is_empty()) {
                if target.extension().is_some_and(|x| x == "html") {
                    let set = ids.entry(target.clone()).or_insert_with(|| html_ids(&read(&target)));
                    if !set.contains(&percent_decode(f)) {
                        broken.push(format!("{}: {link} (no id \"{f}\" in {})", rel(page), rel(&target)));
                    }
                }
            }
        }
        if html.contains("{{#") {
            broken.push(format!("{}: an unprocessed mdBook directive ({{{{#…}}}}) is in the page", rel(page)));
        }
    }
    (checked, broken)
}

#[test]
fn built_book_has_no_broken_links() {
    let dir = root().join("book/book");
    if !dir.join("index.html").exists() {
        assert!(!env_is("WB_BOOK_BUILT"), "WB_BOOK_BUILT=1 but {} has no index.html", rel(&dir));
        eprintln!("skipped: the book is not built (scripts/book builds it, then runs this test)");
        return;
    }
    let (checked, broken) = broken_links(&dir);
    assert!(checked > 50, "only {checked} links checked in {}", rel(&dir));
    assert!(broken.is_empty(), "broken links in the built book:\n{}", broken.join("\n"));
    let summary = read(&src().join("SUMMARY.md"));
    for t in summary_targets(&summary) {
        let html = dir.join(t.replace(".md", ".html"));
        assert!(html.exists(), "{t} is in SUMMARY.md but {} was not built", rel(&html));
    }
}

#[test]
fn link_checker_finds_broken_links() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.html"), r##"<a href="b.html#there">ok</a> <a href="b.html#nowhere">bad fragment</a> <img src="missing.png"> <a href="https://example.org/x">external</a> <a href="#top">self</a><h1 id="top">A</h1> <a href="c%20d.html">space</a>"##).unwrap();
    std::fs::write(d.path().join("b.html"), r#"<h2 id="there">B</h2>"#).unwrap();
    std::fs::write(d.path().join("c d.html"), "").unwrap();
    let (checked, broken) = broken_links(d.path());
    assert_eq!(checked, 5);
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(broken[0].contains("b.html#nowhere") && broken[1].contains("missing.png"), "{broken:?}");
}

// ---- screenshots --------------------------------------------------------------------

/// A decoded 8-bit RGB(A) PNG: width, height, RGB pixels.
fn decode_png(bytes: &[u8]) -> Result<(usize, usize, Vec<[u8; 3]>), String> {
    use std::io::Read;
    if bytes.len() < 8 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" {
        return Err("not a PNG".into());
    }
    let (mut w, mut h, mut channels) = (0usize, 0usize, 0usize);
    let mut idat = Vec::new();
    let mut i = 8;
    while i + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        let kind = &bytes[i + 4..i + 8];
        let data = bytes.get(i + 8..i + 8 + len).ok_or("truncated chunk")?;
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                h = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                let (depth, color, interlace) = (data[8], data[9], data[12]);
                channels = match (depth, color, interlace) {
                    (8, 2, 0) => 3,
                    (8, 6, 0) => 4,
                    _ => return Err(format!("unsupported PNG: depth {depth}, colour type {color}, interlace {interlace}")),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        i += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).map_err(|e| format!("inflate: {e}"))?;
    let stride = w * channels;
    if raw.len() < h * (stride + 1) {
        return Err(format!("{} bytes of image data for {w}x{h}", raw.len()));
    }
    let mut prev = vec![0u8; stride];
    let mut px = Vec::with_capacity(w * h);
    for y in 0..h {
        let line = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        let (filter, data) = (line[0], &line[1..]);
        let mut cur = vec![0u8; stride];
        for x in 0..stride {
            let a = if x >= channels { cur[x - channels] as i16 } else { 0 };
            let b = prev[x] as i16;
            let c = if x >= channels { prev[x - channels] as i16 } else { 0 };
            let pred = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => return Err(format!("bad filter {f}")),
            };
            cur[x] = data[x].wrapping_add(pred as u8);
        }
        for x in 0..w {
            px.push([cur[x * channels], cur[x * channels + 1], cur[x * channels + 2]]);
        }
        prev = cur;
    }
    Ok((w, h, px))
}

/// Why a screenshot looks blank, or `Ok` with a one-line description.
fn judge_screenshot(w: usize, h: usize, px: &[[u8; 3]]) -> Result<String, String> {
    let mut counts: BTreeMap<[u8; 3], usize> = BTreeMap::new();
    for p in px {
        *counts.entry(*p).or_default() += 1;
    }
    let (bg, bg_n) = counts.iter().max_by_key(|(_, n)| **n).map(|(c, n)| (*c, *n)).unwrap_or(([0; 3], 0));
    let total = w * h;
    let content = 1.0 - bg_n as f64 / total as f64;
    let luma = |p: &[u8; 3]| (p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114) / 1000;
    let bg_l = luma(&bg) as i64;
    // "Ink": pixels far from the background's brightness (text, rules, code).
    let ink = |x0: usize, x1: usize| {
        let mut n = 0;
        for y in 0..h {
            for x in x0..x1.min(w) {
                if (luma(&px[y * w + x]) as i64 - bg_l).abs() > 80 {
                    n += 1;
                }
            }
        }
        n as f64 / ((x1.min(w) - x0) * h) as f64
    };
    let sidebar = ink(0, w / 5);
    let main = ink(w / 3, w);
    let desc = format!("{w}x{h}, {} colours, {:.1}% non-background, ink: sidebar {:.2}%, main {:.2}%", counts.len(), content * 100.0, sidebar * 100.0, main * 100.0);
    if counts.len() < 16 || content < 0.02 || sidebar < 0.002 || main < 0.005 {
        return Err(format!("looks blank: {desc}"));
    }
    Ok(desc)
}

#[test]
fn screenshots_of_the_book_are_not_blank() {
    let Ok(dir) = std::env::var("WB_BOOK_SCREENSHOTS") else {
        eprintln!("skipped: WB_BOOK_SCREENSHOTS is not set (scripts/book-screenshots sets it)");
        return;
    };
    let mut shots: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")).flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "png")).collect();
    shots.sort();
    assert!(!shots.is_empty(), "no screenshots in {dir}");
    let mut problems = Vec::new();
    for s in &shots {
        let bytes = std::fs::read(s).unwrap();
        match decode_png(&bytes).and_then(|(w, h, px)| judge_screenshot(w, h, &px)) {
            Ok(desc) => eprintln!("{}: {desc}", s.display()),
            Err(e) => problems.push(format!("{}: {e}", s.display())),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A minimal PNG encoder (filter 0, RGB) for testing the decoder and judge.
fn encode_png(w: usize, h: usize, px: &[[u8; 3]]) -> Vec<u8> {
    use std::io::Write;
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&[0, 0, 0, 0]); // the decoder ignores CRCs
    }
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0);
        for x in 0..w {
            raw.extend_from_slice(&px[y * w + x]);
        }
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&raw).unwrap();
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(w as u32).to_be_bytes());
    ihdr.extend_from_slice(&(h as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn blank_screenshots_are_caught() {
    let (w, h) = (200, 100);
    let white = vec![[255u8; 3]; w * h];
    let (dw, dh, px) = decode_png(&encode_png(w, h, &white)).unwrap();
    assert_eq!((dw, dh, px.len()), (w, h, w * h));
    assert!(judge_screenshot(w, h, &px).is_err(), "a white page is blank");
    // "Text" in both the sidebar and the main column, in a few shades.
    let mut page = white.clone();
    for y in (10..90).step_by(4) {
        for x in (5..35).chain(80..190) {
            let shade = ((x * 7 + y * 3) % 40) as u8;
            page[y * w + x] = [shade, shade, shade + 20];
        }
    }
    let (_, _, px) = decode_png(&encode_png(w, h, &page)).unwrap();
    assert_eq!(px, page, "decoder round trip");
    assert!(judge_screenshot(w, h, &px).is_ok(), "{:?}", judge_screenshot(w, h, &px));
    // The same page without its sidebar (the table of contents did not render).
    let mut no_sidebar = page.clone();
    for y in 0..h {
        for x in 0..w / 5 {
            no_sidebar[y * w + x] = [255; 3];
        }
    }
    assert!(judge_screenshot(w, h, &no_sidebar).is_err());
}

// ---- the JSON chapter ---------------------------------------------------------------

/// The JSON lines of a recorded example in book/src/generated/json/, each
/// checked for the interface version, and their `type`s.
fn recorded_json(name: &str) -> (String, Vec<serde_json::Value>) {
    let path = src().join("generated/json").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}: run sudo scripts/book (it records the --json examples)", rel(&path)));
    let lines = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", rel(&path)));
            assert_eq!(v[workbench::jsonl::VERSION_KEY], workbench::jsonl::VERSION, "{}: recorded from another version of the JSON interface: run sudo scripts/book --record-all", rel(&path));
            v
        })
        .collect();
    (text, lines)
}

fn types(lines: &[serde_json::Value]) -> Vec<&str> {
    let mut t: Vec<&str> = lines.iter().map(|v| v["type"].as_str().expect("a type")).collect();
    t.dedup();
    t
}

#[test]
fn json_examples_are_real_current_output() {
    let (list, lines) = recorded_json("list.jsonl");
    assert_eq!(types(&lines), ["lesson"]);
    let fresh = common::workbench(&["list", "--json"]);
    assert_eq!(list, common::stdout(&fresh), "generated/json/list.jsonl is stale: run sudo scripts/book");
    assert_eq!(types(&recorded_json("pid-ns.jsonl").1), ["step", "summary"]);
    assert_eq!(types(&recorded_json("pid-ns-summary.jsonl").1), ["summary"]);
    assert_eq!(types(&recorded_json("refused.jsonl").1), ["error"]);
    assert_eq!(types(&recorded_json("tour-nobody.jsonl").1), ["skipped", "tour"]);
    assert_eq!(types(&recorded_json("doctor.jsonl").1), ["check", "summary"]);
    assert_eq!(recorded_json("cleanup.jsonl").1.last().expect("a summary")["type"], "summary");
    let step: serde_json::Value = serde_json::from_str(&read(&src().join("generated/json/pid-ns-step-2.json"))).unwrap();
    assert_eq!((step["type"].as_str(), step["id"].as_str()), (Some("step"), Some("child-pid")));
}

/// Run the chapter's grader (sh + jq) on a recorded run.
fn grade(recorded: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .arg(src().join("examples/grade-lesson.sh"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(read(&src().join("generated/json").join(recorded)).as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(!common::stderr(&o).contains("not found"), "the grader needs jq: run scripts/setup\n{}", common::stderr(&o));
    o
}

#[test]
fn the_chapters_grader_grades_the_recorded_runs() {
    let o = grade("pid-ns.jsonl");
    assert_eq!(o.status.code(), Some(0), "{}{}", common::stdout(&o), common::stderr(&o));
    // The chapter shows what it prints.
    let page = read(&src().join("json.md"));
    let shown = page.split("it\nprints:\n\n```text\n").nth(1).and_then(|r| r.split("```").next()).expect("json.md shows the grader's output");
    assert_eq!(common::stdout(&o), shown, "json.md shows other output than the grader prints on generated/json/pid-ns.jsonl");
    let o = grade("refused.jsonl");
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stdout(&o).starts_with("could not start: --memory does not apply to pid-ns"), "{}", common::stdout(&o));
}
