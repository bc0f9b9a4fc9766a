//! Pages generated from code (cgroup files, doctor table) agree with the code.

use super::*;

// ---- pages generated from code ------------------------------------------------------

/// (section, file name, doc) for every `pub const` in wb-cgroup's files.rs.
pub(crate) fn cgroup_files() -> Vec<(String, String, String)> {
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

pub(crate) fn cgroup_files_page() -> String {
    let mut out = String::from("<!-- Generated from crates/wb-cgroup/src/files.rs by tests/book/generated.rs (WB_BOOK_BLESS=1 scripts/book); do not edit. -->\n");
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
    assert!(
        files
            .iter()
            .any(|(s, f, d)| s == "memory (v2)" && f == "memory.events" && d.contains("oom_kill")),
        "{files:?}"
    );
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
    assert!(
        missing.is_empty(),
        "cgroup-v1-v2.md does not map these files of crates/wb-cgroup/src/files.rs: {missing:?}"
    );
    // Every `name.like_this` in backticks that looks like a cgroup file is real.
    let extra: BTreeSet<&str> = ["cgroup.threads"].into();
    let mut unknown = Vec::new();
    for span in chapter.split('`').skip(1).step_by(2) {
        let looks = ["cgroup.", "cpu.", "cpuacct.", "memory.", "pids."]
            .iter()
            .any(|p| span.starts_with(p))
            && span.chars().all(|c| c.is_ascii_lowercase() || c == '.' || c == '_');
        if looks && !known.contains(span) && !extra.contains(span) {
            unknown.push(span);
        }
    }
    assert!(
        unknown.is_empty(),
        "cgroup-v1-v2.md names files wb-cgroup does not know (typo? or add them to files.rs): {unknown:?}"
    );
}

#[test]
fn doctor_page_lists_every_check() {
    let path = src().join("generated/doctor.md");
    let Ok(page) = std::fs::read_to_string(&path) else {
        panic!(
            "{} is missing: run scripts/book (it writes `workbench doctor --markdown` there)",
            rel(&path)
        );
    };
    // Table rows after the header row and the |---| line; the first cell is the check.
    let rows = page.lines().filter(|l| l.starts_with("| ")).skip(1);
    let in_page: BTreeSet<String> = rows
        .filter_map(|l| l.split(" | ").next())
        .map(|c| c.trim_start_matches("| ").to_string())
        .collect();
    let checks: BTreeSet<String> = workbench::host::doctor::checks(&workbench::host::Host::probe())
        .iter()
        .map(|f| md_escape(&f.check))
        .collect();
    assert_eq!(
        in_page,
        checks,
        "{} lists other checks than src/host/doctor.rs: run scripts/book as root",
        rel(&path)
    );
}

#[test]
fn setup_chapter_shows_the_readme_commands() {
    let readme = read(&root().join("README.md"));
    let two = anchored(&readme, "two-commands").expect("README.md has the two-commands anchor");
    // As typed by root, who may have no sudo (a fresh root shell has none).
    let commands: Vec<&str> = two.lines().filter(|l| l.starts_with("scripts/")).collect();
    assert!(
        commands.len() == 2 && commands[0].starts_with("scripts/tour ") && commands[1].starts_with("scripts/test "),
        "{two}"
    );
    let setup = expand(&src().join("setup.md"), 0);
    assert!(
        commands.iter().all(|c| setup.contains(c)),
        "setup.md does not include the README's two commands"
    );
}
