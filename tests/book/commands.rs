//! The `workbench` command lines of the chapters' ```sh blocks, parsed with the real CLI.

use super::*;

// ---- commands in the chapters --------------------------------------------------

/// Split a shell command line into words (quotes and backslashes as in sh),
/// stopping at the first unquoted `#`, `|`, `>`, `<`, `;` or `&`: what follows
/// is not part of the first command's arguments.
pub(crate) fn shell_words(line: &str) -> Vec<String> {
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
pub(crate) fn sh_blocks(md: &str) -> Vec<String> {
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
                    fence = Some(if matches!(info, "sh" | "bash" | "shell" | "console") {
                        ticks
                    } else {
                        format!("skip{ticks}")
                    });
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
pub(crate) fn check_invocation(line: &str) -> Option<Result<(), String>> {
    let mut words = shell_words(line);
    if words.first().is_some_and(|w| w == "sudo") {
        words.remove(0);
    }
    if words.first().map(String::as_str) != Some("workbench") {
        return None;
    }
    // The lesson exists and takes the options given.
    let known = |a: &workbench::cli::args::LessonArgs| -> Result<(), String> {
        let def = workbench::lessons::find(&a.id)
            .ok_or_else(|| format!("no lesson named '{}' (see `workbench list`)", a.id))?;
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
                    Ok(Cli {
                        command: Command::Lesson(a),
                        ..
                    }) => known(&a),
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
                    if words.contains(&stem)
                        || lessons
                            .iter()
                            .find(|l| l.id == stem)
                            .is_some_and(|l| l.aliases.iter().any(|a| words.contains(a)))
                    {
                        runs_own_lesson.insert(stem.clone());
                    }
                }
                Some(Err(e)) => problems.push(format!("{}: `{}`: {e}", rel(&f), line.trim())),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "invalid workbench commands in the book:\n{}",
        problems.join("\n")
    );
    assert!(
        checked >= 5,
        "only {checked} workbench commands found: is the ```sh parsing broken?"
    );
    let silent: Vec<&str> = lessons
        .iter()
        .map(|l| l.id.as_str())
        .filter(|id| src().join(format!("{id}.md")).exists() && !runs_own_lesson.contains(*id))
        .collect();
    assert!(
        silent.is_empty(),
        "lesson chapters that never show the command to run their lesson: {silent:?}"
    );
}

#[test]
fn command_checking_can_fail() {
    assert_eq!(
        shell_words("sudo workbench lesson pid-ns --hostname 'a b' # comment"),
        ["sudo", "workbench", "lesson", "pid-ns", "--hostname", "a b"]
    );
    assert_eq!(
        shell_words("workbench lesson pid-ns --markdown > out.md"),
        ["workbench", "lesson", "pid-ns", "--markdown"]
    );
    assert_eq!(shell_words(r#"echo "a\"b" x\ y"#), ["echo", "a\"b", "x y"]);
    assert!(check_invocation("ls -l").is_none());
    assert!(check_invocation("sudo workbench lesson pid-ns --step").unwrap().is_ok());
    assert!(
        check_invocation("workbench unshare-pid --shell").unwrap().is_ok(),
        "aliases and the short form are valid"
    );
    assert!(check_invocation("workbench lesson no-such-lesson").unwrap().is_err());
    assert!(check_invocation("workbench no-such-lesson --step").unwrap().is_err());
    assert!(check_invocation("workbench lesson pid-ns --json --step")
        .unwrap()
        .is_err());
    assert!(check_invocation("workbench lesson pid-ns --no-such-flag")
        .unwrap()
        .is_err());
    assert!(check_invocation("workbench doctor --markdown").unwrap().is_ok());
    assert!(check_invocation("workbench lesson pid-ns --hostname box")
        .unwrap()
        .is_ok());
    assert!(
        check_invocation("workbench pid-ns --memory 64M").unwrap().is_err(),
        "an option the lesson does not take"
    );
    let md = "```sh\nworkbench list\nworkbench lesson \\\n  pid-ns\n```\n```text\nworkbench nope\n```\n````sh\nworkbench doctor\n````\n";
    assert_eq!(
        sh_blocks(md),
        ["workbench list", "workbench lesson    pid-ns", "workbench doctor"]
    );
}

/// The widest line a code block may have and still fit mdBook's text column
/// on a laptop screen without scrolling.
pub(crate) const CODE_WIDTH: usize = 76;

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
    assert!(
        wide.is_empty(),
        "code lines wider than {CODE_WIDTH} columns (they scroll sideways in the book):\n{}",
        wide.join("\n")
    );
}
