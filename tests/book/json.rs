//! The JSON chapter: recorded examples are real, current output.

use super::*;

// ---- the JSON chapter ---------------------------------------------------------------

/// The JSON lines of a recorded example in book/src/generated/json/, each
/// checked for the interface version, and their `type`s.
pub(crate) fn recorded_json(name: &str) -> (String, Vec<serde_json::Value>) {
    let path = src().join("generated/json").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: run sudo scripts/book (it records the --json examples)",
            rel(&path)
        )
    });
    let lines = text
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", rel(&path)));
            assert_eq!(
                v[workbench::jsonl::VERSION_KEY],
                workbench::jsonl::VERSION,
                "{}: recorded from another version of the JSON interface: run sudo scripts/book --record-all",
                rel(&path)
            );
            v
        })
        .collect();
    (text, lines)
}

pub(crate) fn types(lines: &[serde_json::Value]) -> Vec<&str> {
    let mut t: Vec<&str> = lines.iter().map(|v| v["type"].as_str().expect("a type")).collect();
    t.dedup();
    t
}

#[test]
fn json_examples_are_real_current_output() {
    let (list, lines) = recorded_json("list.jsonl");
    assert_eq!(types(&lines), ["lesson"]);
    let fresh = common::workbench(&["list", "--json"]);
    assert_eq!(
        list,
        common::stdout(&fresh),
        "generated/json/list.jsonl is stale: run sudo scripts/book"
    );
    assert_eq!(types(&recorded_json("pid-ns.jsonl").1), ["step", "summary"]);
    assert_eq!(types(&recorded_json("pid-ns-summary.jsonl").1), ["summary"]);
    assert_eq!(types(&recorded_json("refused.jsonl").1), ["error"]);
    assert_eq!(types(&recorded_json("tour-nobody.jsonl").1), ["skipped", "tour"]);
    assert_eq!(types(&recorded_json("doctor.jsonl").1), ["check", "summary"]);
    assert_eq!(
        recorded_json("cleanup.jsonl").1.last().expect("a summary")["type"],
        "summary"
    );
    let step: serde_json::Value =
        serde_json::from_str(&read(&src().join("generated/json/pid-ns-step-2.json"))).unwrap();
    assert_eq!(
        (step["type"].as_str(), step["id"].as_str()),
        (Some("step"), Some("child-pid"))
    );
}

/// Run the chapter's grader (sh + jq) on a recorded run.
pub(crate) fn grade(recorded: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("sh")
        .arg(src().join("examples/grade-lesson.sh"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(read(&src().join("generated/json").join(recorded)).as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        !common::stderr(&o).contains("not found"),
        "the grader needs jq: run scripts/setup\n{}",
        common::stderr(&o)
    );
    o
}

#[test]
fn the_chapters_grader_grades_the_recorded_runs() {
    let o = grade("pid-ns.jsonl");
    assert_eq!(o.status.code(), Some(0), "{}{}", common::stdout(&o), common::stderr(&o));
    // The chapter shows what it prints.
    let page = read(&src().join("json.md"));
    let shown = page
        .split("it\nprints:\n\n```text\n")
        .nth(1)
        .and_then(|r| r.split("```").next())
        .expect("json.md shows the grader's output");
    assert_eq!(
        common::stdout(&o),
        shown,
        "json.md shows other output than the grader prints on generated/json/pid-ns.jsonl"
    );
    let o = grade("refused.jsonl");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stdout(&o).starts_with("could not start: --memory does not apply to pid-ns"),
        "{}",
        common::stdout(&o)
    );
}
