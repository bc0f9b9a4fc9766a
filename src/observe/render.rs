//! Drawing diffs and checks as tables for the terminal (or a projector).
//!
//! Rendering is a pure function of its input and [`Style`], so the output is
//! snapshot-tested with colour off and a fixed width.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Attribute, Cell, Color, ContentArrangement, Table};

use super::diff::{Change, SectionDiff};

/// How to draw: with ANSI colours or not, and how wide.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub width: u16,
}

impl Style {
    pub const PLAIN: Style = Style {
        color: false,
        width: 100,
    };
}

fn table(style: Style) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(style.width);
    if style.color {
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
    t
}

fn change_cell(c: Change, style: Style) -> Cell {
    let (text, color) = match c {
        Change::Same => ("same", Color::DarkGrey),
        Change::Changed => ("CHANGED", Color::Yellow),
        Change::Added => ("ADDED", Color::Green),
        Change::Removed => ("REMOVED", Color::Red),
    };
    let cell = Cell::new(text);
    if style.color {
        let cell = cell.fg(color);
        if c == Change::Same {
            cell
        } else {
            cell.add_attribute(Attribute::Bold)
        }
    } else {
        cell
    }
}

/// Sections where every row is worth showing, even unchanged ones: which
/// namespaces did *not* change is half of the lesson.
const SHOW_ALL: &[&str] = &["namespaces", "facts"];

/// The rows of a section worth showing, whether all rows are shown, and how
/// many rows did not change (the terminal and the Markdown record agree).
fn shown_rows(sec: &SectionDiff) -> (Vec<&super::diff::Row>, bool, usize) {
    let show_all = SHOW_ALL.contains(&sec.name.as_str());
    let rows: Vec<_> = sec
        .rows
        .iter()
        .filter(|r| show_all || r.change != Change::Same)
        .collect();
    let unchanged = sec.rows.len() - sec.changed().count();
    (rows, show_all, unchanged)
}

/// Draw the diff of a step: one table per section that has rows to show.
pub fn render_diff(sections: &[SectionDiff], before_label: &str, after_label: &str, style: Style) -> String {
    let mut out = String::new();
    for sec in sections {
        let (rows, show_all, unchanged) = shown_rows(sec);
        if rows.is_empty() {
            out.push_str(&format!("{}: no change ({} entries)\n", sec.name, sec.rows.len()));
            continue;
        }
        let mut t = table(style);
        t.set_header(vec![
            Cell::new(&sec.name),
            Cell::new(format!("before: {before_label}")),
            Cell::new(format!("after: {after_label}")),
            Cell::new("change"),
        ]);
        for r in rows {
            t.add_row(vec![
                Cell::new(&r.key),
                Cell::new(r.before.as_deref().unwrap_or("-")),
                Cell::new(r.after.as_deref().unwrap_or("-")),
                change_cell(r.change, style),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
        if !show_all && unchanged > 0 {
            out.push_str(&format!("  ({unchanged} more {} unchanged)\n", sec.name));
        }
    }
    out
}

/// The outcome of a check, a step or a lesson. `Inconclusive`: the effect
/// could not be judged because the host was busy (other processes held the
/// CPUs the measurement needed); it is neither a pass nor a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    Inconclusive,
}

impl Verdict {
    /// "pass", "fail", "inconclusive" (as in `--json`).
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// The verdict of several: any failure fails, else any inconclusive one
    /// makes it inconclusive, else it passes (nothing at all passes).
    pub fn combine(all: impl IntoIterator<Item = Verdict>) -> Verdict {
        let mut out = Verdict::Pass;
        for v in all {
            match v {
                Verdict::Fail => return Verdict::Fail,
                Verdict::Inconclusive => out = Verdict::Inconclusive,
                Verdict::Pass => {}
            }
        }
        out
    }
}

/// One checked expectation of a step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    pub name: String,
    pub expected: String,
    pub actual: String,
    pub pass: bool,
    /// Not passed, yet not failed either: the host was too busy to judge
    /// (only present in `--json` when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inconclusive: bool,
}

impl Check {
    pub fn verdict(&self) -> Verdict {
        match (self.pass, self.inconclusive) {
            (true, _) => Verdict::Pass,
            (false, true) => Verdict::Inconclusive,
            (false, false) => Verdict::Fail,
        }
    }

    /// The result column: PASS, FAIL or INCONCLUSIVE.
    pub fn result_word(&self) -> &'static str {
        match self.verdict() {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Inconclusive => "INCONCLUSIVE",
        }
    }
}

/// Draw the checks of a step.
pub fn render_checks(checks: &[Check], style: Style) -> String {
    if checks.is_empty() {
        return String::new();
    }
    let mut t = table(style);
    t.set_header(vec!["check", "expected", "actual", "result"]);
    for c in checks {
        let res = Cell::new(c.result_word());
        let color = match c.verdict() {
            Verdict::Pass => Color::Green,
            Verdict::Fail => Color::Red,
            Verdict::Inconclusive => Color::Yellow,
        };
        let res = if style.color {
            res.fg(color).add_attribute(Attribute::Bold)
        } else {
            res
        };
        t.add_row(vec![
            Cell::new(&c.name),
            Cell::new(&c.expected),
            Cell::new(&c.actual),
            res,
        ]);
    }
    format!("{t}\n")
}

/// A table from rows of strings (used by `list`, `doctor` and the tour).
/// Cells reading ok/pass, warn/inconclusive, FAIL are coloured green, yellow, red.
pub fn render_rows(header: &[&str], rows: &[Vec<String>], style: Style) -> String {
    let mut t = table(style);
    t.set_header(header.to_vec());
    for r in rows {
        t.add_row(r.iter().map(|c| status_cell(c, style)).collect::<Vec<_>>());
    }
    format!("{t}\n")
}

fn status_cell(text: &str, style: Style) -> Cell {
    let cell = Cell::new(text);
    if !style.color {
        return cell;
    }
    match text {
        "ok" | "pass" | "PASS" => cell.fg(Color::Green),
        "warn" | "inconclusive" | "INCONCLUSIVE" => cell.fg(Color::Yellow),
        "FAIL" => cell.fg(Color::Red).add_attribute(Attribute::Bold),
        _ => cell,
    }
}

// ---- Markdown (the `--markdown` record mode that feeds the book) ----------

/// Escape prose for Markdown: every ASCII punctuation character that could
/// start emphasis, a link, HTML or a table cell boundary gets a backslash.
pub fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// Escape prose but keep its `code spans` (text between single backticks)
/// as code; `|` is escaped everywhere so the text fits in a table cell.
pub fn md_escape_prose(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    if parts.len() % 2 == 0 {
        // An unmatched backtick: treat it all as prose.
        return md_escape(s);
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i % 2 == 1 {
                md_code(p).replace('|', "\\|")
            } else {
                md_escape(p)
            }
        })
        .collect()
}

/// An inline code span holding `s` verbatim, with a fence longer than any
/// run of backticks inside (CommonMark). In a table cell, escape `|` after.
pub fn md_code(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    let longest = s.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// A fenced code block holding `body` verbatim (fence longer than any
/// backtick run in the body).
pub fn md_fence(info: &str, body: &str) -> String {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{info}\n{}\n{fence}\n", body.trim_end_matches('\n'))
}

/// A value cell: each line a code span, lines joined by `<br>`; `-` if absent.
fn md_value(v: Option<&str>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.trim().is_empty() => "(empty)".into(),
        // GFM: a `|` in a table cell is escaped even inside a code span.
        Some(v) => v
            .lines()
            .map(|l| md_code(l).replace('|', "\\|"))
            .collect::<Vec<_>>()
            .join("<br>"),
    }
}

fn md_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for r in rows {
        out.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    out
}

/// The diff of a step as Markdown tables: the same rows as [`render_diff`].
pub fn markdown_diff(sections: &[SectionDiff], before_label: &str, after_label: &str) -> String {
    let mut out = String::new();
    for sec in sections {
        let (rows, show_all, unchanged) = shown_rows(sec);
        if !out.is_empty() {
            out.push('\n');
        }
        if rows.is_empty() {
            out.push_str(&format!(
                "*{}: no change ({} entries)*\n",
                md_escape(&sec.name),
                sec.rows.len()
            ));
            continue;
        }
        let header = [
            md_escape(&sec.name),
            format!("before: {}", md_escape(before_label)),
            format!("after: {}", md_escape(after_label)),
            "change".into(),
        ];
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let change = match r.change {
                    Change::Same => "same".to_string(),
                    Change::Changed => "**CHANGED**".into(),
                    Change::Added => "**ADDED**".into(),
                    Change::Removed => "**REMOVED**".into(),
                };
                vec![
                    md_escape(&r.key),
                    md_value(r.before.as_deref()),
                    md_value(r.after.as_deref()),
                    change,
                ]
            })
            .collect();
        out.push_str(&md_table(&header, &rows));
        if !show_all && unchanged > 0 {
            out.push_str(&format!("\n*({unchanged} more {} unchanged)*\n", md_escape(&sec.name)));
        }
    }
    out
}

/// The checks of a step as a Markdown table.
pub fn markdown_checks(checks: &[Check]) -> String {
    if checks.is_empty() {
        return String::new();
    }
    let header = ["check", "expected", "actual", "result"].map(String::from);
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            vec![
                md_escape(&c.name),
                md_escape(&c.expected),
                md_escape(&c.actual),
                format!("**{}**", c.result_word()),
            ]
        })
        .collect();
    md_table(&header, &rows)
}

/// A Markdown table from rows of prose (escaped, `code spans` kept), e.g.
/// `doctor --markdown`.
pub fn markdown_rows(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| md_escape(h)).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| md_escape_prose(c)).collect())
        .collect();
    md_table(&header, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::diff::diff_pairs;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn inconclusive_checks_read_apart_from_failures() {
        let c = |pass, inconclusive| Check {
            name: "n".into(),
            expected: "e".into(),
            actual: "a".into(),
            pass,
            inconclusive,
        };
        let table = render_checks(&[c(true, false), c(false, false), c(false, true)], Style::PLAIN);
        assert!(
            table.contains("PASS") && table.contains("FAIL") && table.contains("INCONCLUSIVE"),
            "{table}"
        );
        assert_eq!(table.matches("FAIL").count(), 1, "{table}");
        // In colour: yellow, not red. (crossterm, under comfy-table, drops
        // every colour when NO_COLOR is set, as the v2 VM's payload does;
        // then only "not red" can be checked.)
        let coloured = render_checks(
            &[c(false, true)],
            Style {
                color: true,
                width: 100,
            },
        );
        if std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) {
            assert!(
                coloured.contains("\u{1b}[38;5;11m")
                    || coloured.contains("\u{1b}[33m")
                    || coloured.contains("\u{1b}[93m"),
                "{coloured:?}"
            );
        }
        assert!(
            !coloured.contains("\u{1b}[31m") && !coloured.contains("\u{1b}[38;5;9m"),
            "{coloured:?}"
        );
        assert_eq!(
            Verdict::combine([Verdict::Pass, Verdict::Inconclusive]),
            Verdict::Inconclusive
        );
        assert_eq!(
            Verdict::combine([Verdict::Inconclusive, Verdict::Fail, Verdict::Pass]),
            Verdict::Fail
        );
        assert_eq!(Verdict::combine([]), Verdict::Pass);
        assert_eq!(
            serde_json::to_string(&Verdict::Inconclusive).unwrap(),
            "\"inconclusive\""
        );
    }

    #[test]
    fn renders_namespace_diff_plain() {
        let d = diff_pairs(
            "namespaces",
            &pairs(&[("ipc", "4026531839"), ("net", "4026531840"), ("pid", "4026531836")]),
            &pairs(&[("ipc", "4026532201"), ("net", "4026531840"), ("pid", "4026532203")]),
        );
        let text = render_diff(&[d], "host (pid 100)", "child (pid 101)", Style::PLAIN);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn hides_unchanged_mounts_but_counts_them() {
        let d = diff_pairs(
            "mounts",
            &pairs(&[
                ("/", "ext4 /dev/vda (rw) private"),
                ("/sys", "sysfs sysfs (rw) private"),
            ]),
            &pairs(&[
                ("/", "ext4 /dev/vda (rw) private"),
                ("/sys", "sysfs sysfs (rw) private"),
                ("/proc", "proc proc (rw) private"),
            ]),
        );
        let text = render_diff(&[d], "before", "after", Style::PLAIN);
        assert!(text.contains("/proc") && text.contains("ADDED"));
        assert!(!text.contains("/sys "), "unchanged rows must be hidden:\n{text}");
        assert!(text.contains("(2 more mounts unchanged)"));
        insta::assert_snapshot!(text);
    }

    #[test]
    fn says_no_change() {
        let d = diff_pairs("mounts", &pairs(&[("/", "x")]), &pairs(&[("/", "x")]));
        assert_eq!(
            render_diff(&[d], "a", "b", Style::PLAIN),
            "mounts: no change (1 entries)\n"
        );
    }

    #[test]
    fn markdown_code_spans_survive_backticks_and_pipes() {
        assert_eq!(md_code("a|b"), "`a|b`");
        assert_eq!(md_code("echo `x`"), "`` echo `x` ``");
        assert_eq!(md_code("``"), "``` `` ```");
        assert_eq!(md_fence("text", "a\n```\nb\n"), "````text\na\n```\nb\n````\n");
        assert_eq!(md_escape("a_b *c* <d> | [e]"), "a\\_b \\*c\\* &lt;d&gt; \\| \\[e\\]");
        assert_eq!(
            md_escape_prose("run `workbench cleanup` or a|b_c"),
            "run `workbench cleanup` or a\\|b\\_c"
        );
        assert_eq!(md_escape_prose("`a|b`"), "`a\\|b`");
        assert_eq!(md_escape_prose("one ` tick"), "one \\` tick");
    }

    #[test]
    fn markdown_diff_hides_like_the_terminal() {
        let d = diff_pairs("mounts", &pairs(&[("/", "x")]), &pairs(&[("/", "x")]));
        assert_eq!(markdown_diff(&[d], "a", "b"), "*mounts: no change (1 entries)*\n");
        let d = diff_pairs(
            "facts",
            &pairs(&[("cpu.max", "max 100000"), ("multi", "l1\nl2")]),
            &pairs(&[("cpu.max", "20000 100000"), ("multi", "l1\nl2")]),
        );
        let md = markdown_diff(&[d], "before", "after");
        assert!(
            md.contains("| cpu.max | `max 100000` | `20000 100000` | **CHANGED** |"),
            "{md}"
        );
        assert!(md.contains("| multi | `l1`<br>`l2` | `l1`<br>`l2` | same |"), "{md}");
        insta::assert_snapshot!(markdown_checks(&[Check {
            name: "x|y".into(),
            expected: "1".into(),
            actual: "1".into(),
            pass: true,
            inconclusive: false
        }]));
    }

    #[test]
    fn colour_only_when_asked() {
        let checks = vec![Check {
            name: "pid inside".into(),
            expected: "1".into(),
            actual: "1".into(),
            pass: true,
            inconclusive: false,
        }];
        let plain = render_checks(&checks, Style::PLAIN);
        assert!(!plain.contains('\u{1b}'));
        let coloured = render_checks(
            &checks,
            Style {
                color: true,
                width: 100,
            },
        );
        assert!(coloured.contains('\u{1b}'));
        insta::assert_snapshot!(plain);
    }
}
