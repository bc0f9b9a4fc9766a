//! A classroom runs many lessons on one host: 8 runs of each lesson at once
//! must all pass, with no name clashes, and leave the host as it was.

mod common;

use std::process::{Command, Stdio};

const RUNS: usize = 8;

#[test]
fn eight_runs_of_each_lesson_at_once() {
    require_root!();
    let _g = common::serial();
    let before = workbench::hoststate::capture();
    for def in workbench::lessons::ALL {
        let children: Vec<_> = (0..RUNS)
            .map(|_| {
                Command::new(common::bin())
                    .args(["lesson", def.id, "--json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start workbench")
            })
            .collect();
        // Wait for every run before judging any: a failed assertion must not
        // leave the others running into the next test's host snapshot.
        let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let mut run_ids = Vec::new();
        for o in outputs {
            let out = common::stdout(&o);
            assert!(o.status.success(), "{}: a concurrent run failed:\n{out}\n{}", def.id, common::stderr(&o));
            let summary: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
            assert_eq!(summary["pass"], true, "{}: {summary}", def.id);
            run_ids.push(summary["run_id"].as_str().unwrap().to_string());
        }
        run_ids.sort();
        run_ids.dedup();
        assert_eq!(run_ids.len(), RUNS, "{}: run ids clashed", def.id);
    }
    common::assert_host_unchanged(&before, "concurrent runs");
}
