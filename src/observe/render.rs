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
    pub const PLAIN: Style = Style { color: false, width: 100 };
}

fn table(style: Style) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_width(style.width);
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

/// Draw the diff of a step: one table per section that has rows to show.
pub fn render_diff(sections: &[SectionDiff], before_label: &str, after_label: &str, style: Style) -> String {
    let mut out = String::new();
    for sec in sections {
        let show_all = SHOW_ALL.contains(&sec.name.as_str());
        let rows: Vec<_> = sec.rows.iter().filter(|r| show_all || r.change != Change::Same).collect();
        let unchanged = sec.rows.len() - sec.changed().count();
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

/// One checked expectation of a step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    pub name: String,
    pub expected: String,
    pub actual: String,
    pub pass: bool,
}

/// Draw the checks of a step.
pub fn render_checks(checks: &[Check], style: Style) -> String {
    if checks.is_empty() {
        return String::new();
    }
    let mut t = table(style);
    t.set_header(vec!["check", "expected", "actual", "result"]);
    for c in checks {
        let res = Cell::new(if c.pass { "PASS" } else { "FAIL" });
        let res = if style.color { res.fg(if c.pass { Color::Green } else { Color::Red }).add_attribute(Attribute::Bold) } else { res };
        t.add_row(vec![Cell::new(&c.name), Cell::new(&c.expected), Cell::new(&c.actual), res]);
    }
    format!("{t}\n")
}

/// A table from rows of strings (used by `list`, `doctor` and the tour).
/// Cells reading ok/pass, warn, FAIL are coloured green, yellow, red.
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
        "warn" => cell.fg(Color::Yellow),
        "FAIL" => cell.fg(Color::Red).add_attribute(Attribute::Bold),
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::diff::diff_pairs;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
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
            &pairs(&[("/", "ext4 /dev/vda (rw) private"), ("/sys", "sysfs sysfs (rw) private")]),
            &pairs(&[("/", "ext4 /dev/vda (rw) private"), ("/sys", "sysfs sysfs (rw) private"), ("/proc", "proc proc (rw) private")]),
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
        assert_eq!(render_diff(&[d], "a", "b", Style::PLAIN), "mounts: no change (1 entries)\n");
    }

    #[test]
    fn colour_only_when_asked() {
        let checks = vec![Check { name: "pid inside".into(), expected: "1".into(), actual: "1".into(), pass: true }];
        let plain = render_checks(&checks, Style::PLAIN);
        assert!(!plain.contains('\u{1b}'));
        let coloured = render_checks(&checks, Style { color: true, width: 100 });
        assert!(coloured.contains('\u{1b}'));
        insta::assert_snapshot!(plain);
    }
}
