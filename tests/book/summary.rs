//! SUMMARY.md: every lesson has a chapter, listed in tour order.

use super::*;

// ---- SUMMARY.md -------------------------------------------------------------

/// The `.md` targets linked from SUMMARY.md, in order.
pub(crate) fn summary_targets(summary: &str) -> Vec<String> {
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
pub(crate) fn insert_summary_entry(summary: &str, entry: &str, earlier_ids: &[&str]) -> String {
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

pub(crate) fn stub_chapter(l: &LessonText) -> String {
    read(&root().join("book/templates/lesson.md"))
        .replace("@ID@", &l.id)
        .replace("@TITLE@", &md_escape(&l.title))
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
            missing.push(format!(
                "{} ({})",
                l.id,
                if chapter.exists() {
                    "not in SUMMARY.md"
                } else {
                    "no book/src/{id}.md"
                }
                .replace("{id}", &l.id)
            ));
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
pub(crate) fn reorder_lessons(summary: &str, ordered_ids: &[&str]) -> String {
    let entry_of = |id: &str| {
        summary
            .lines()
            .find(|l| l.contains(&format!("]({id}.md)")))
            .map(str::to_string)
    };
    let entries: Vec<(&str, String)> = ordered_ids
        .iter()
        .filter_map(|id| entry_of(id).map(|e| (*id, e)))
        .collect();
    let mut out: String = summary
        .lines()
        .filter(|l| !entries.iter().any(|(_, e)| e == l))
        .map(|l| format!("{l}\n"))
        .collect();
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
    let listed: Vec<String> = summary_targets(&summary)
        .into_iter()
        .filter(|t| ids.contains(t))
        .collect();
    let expected: Vec<String> = lessons
        .iter()
        .map(|l| format!("{}.md", l.id))
        .filter(|t| listed.contains(t))
        .collect();
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
    assert_eq!(
        summary_targets(&out),
        ["introduction.md", "a.md", "b.md", "c.md", "glossary.md"]
    );
    let out = insert_summary_entry(s, "- [z](z.md)", &[]);
    assert_eq!(
        summary_targets(&out),
        ["introduction.md", "z.md", "a.md", "c.md", "glossary.md"]
    );
    let out = insert_summary_entry("# Summary\n\n# Lessons\n", "- [z](z.md)", &[]);
    assert_eq!(out, "# Summary\n\n# Lessons\n\n- [z](z.md)\n");
    let out = insert_summary_entry("# Summary\n", "- [z](z.md)", &["nope"]);
    assert_eq!(out, "# Summary\n- [z](z.md)\n");
    let shuffled =
        "# Summary\n\n# Lessons\n\n- [c](c.md)\n- [a](a.md)\n\n# Reference\n\n- [b](b.md)\n- [G](glossary.md)\n";
    let out = reorder_lessons(shuffled, &["a", "b", "c"]);
    assert_eq!(
        out,
        "# Summary\n\n# Lessons\n\n- [a](a.md)\n- [b](b.md)\n- [c](c.md)\n\n# Reference\n\n- [G](glossary.md)\n"
    );
}

// ---- README.md's lesson table ----------------------------------------------

const README_BEGIN: &str = "<!-- BEGIN lessons: generated by scripts/book from lessons/*.toml, do not edit -->";
const README_END: &str = "<!-- END lessons -->";

/// The README's lesson table, from the lesson texts: order, id and aliases,
/// goal, options.
fn readme_lesson_table(lessons: &[LessonText]) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out =
        format!("{README_BEGIN}\n| # | lesson | what you see | options |\n|---|--------|--------------|---------|\n");
    for l in lessons {
        let aliases: Vec<String> = l.aliases.iter().map(|a| format!("`{a}`")).collect();
        let name = if aliases.is_empty() {
            format!("`{}`", l.id)
        } else {
            format!("`{}` ({})", l.id, aliases.join(", "))
        };
        let options: Vec<String> = l.options.iter().map(|o| format!("`--{o}`")).collect();
        out.push_str(&format!(
            "| {} | {name} | {} | {} |\n",
            l.order,
            cell(&l.goal),
            options.join(" ")
        ));
    }
    out.push_str(README_END);
    out
}

/// README.md with the text between the lesson markers replaced.
fn with_lesson_table(readme: &str, table: &str) -> Option<String> {
    let start = readme.find(README_BEGIN)?;
    let end = readme[start..].find(README_END)? + start + README_END.len();
    Some(format!("{}{table}{}", &readme[..start], &readme[end..]))
}

#[test]
fn readme_lesson_table_is_generated_from_the_lessons() {
    let path = root().join("README.md");
    let readme = read(&path);
    let fresh =
        with_lesson_table(&readme, &readme_lesson_table(&text::all())).expect("README.md has the lesson table markers");
    if fresh == readme {
        return;
    }
    if bless() {
        std::fs::write(&path, &fresh).unwrap();
        eprintln!("regenerated the lesson table in README.md");
        return;
    }
    panic!("README.md's lesson table is stale: run scripts/book (it regenerates the table between the markers from lessons/*.toml)");
}

#[test]
fn readme_lesson_table_escapes_and_replaces() {
    let mut l: LessonText = text::all().into_iter().next().unwrap();
    l.goal = "a|b".into();
    let table = readme_lesson_table(&[l]);
    assert!(table.contains("a\\|b"), "{table}");
    let doc = format!("top\n{README_BEGIN}\nold\n{README_END}\nbottom\n");
    assert_eq!(with_lesson_table(&doc, "NEW").unwrap(), "top\nNEW\nbottom\n");
    assert_eq!(with_lesson_table("no markers", "NEW"), None);
}
