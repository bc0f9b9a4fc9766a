//! Bad input gets one clear line, a non-zero exit, and leaves the host untouched.
//! The exact output of help, `list` and the refusals is in tests/ui/ (trycmd).

mod common;

#[test]
fn unknown_lesson_suggests_the_closest() {
    let o = common::workbench(&["lesson", "pid-nss"]);
    assert_eq!(o.status.code(), Some(2));
    let e = common::one_line_error(&o);
    assert!(
        e.contains("unknown lesson 'pid-nss'") && e.contains("did you mean 'pid-ns'"),
        "{e}"
    );
}

#[test]
fn lesson_names_with_slashes_or_dots_are_unknown() {
    for bad in ["../etc", "pid-ns/..", "/bin/sh", ".."] {
        let o = common::workbench(&["lesson", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(common::one_line_error(&o).contains("unknown lesson"), "{bad}");
    }
}

#[test]
fn bad_hostname_is_refused() {
    let long = "x".repeat(65);
    let o = common::workbench(&["lesson", "pid-ns", "--hostname", &long]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("hostname must be 1 to 64 bytes"));
}

#[test]
fn list_shows_every_lesson() {
    let o = common::workbench(&["list"]);
    assert!(o.status.success());
    let out = common::stdout(&o);
    for id in [
        "chroot-busybox",
        "pid-ns",
        "mount-proc",
        "cgroup-cpu-quota",
        "cpu-shares",
        "memory-oom",
        "pids-limit",
    ] {
        assert!(out.contains(id), "{id} missing from list");
    }
}

#[test]
fn not_root_is_a_clear_error_and_creates_nothing() {
    let host = root_host!(); // we need root to become someone else
    let o = common::workbench_as_nobody(&["lesson", "pid-ns"]);
    let e = common::refused(&o, "a non-root run");
    assert!(e.contains("needs root") && e.contains("sudo"), "{e}");
    host.assert_unchanged("a non-root run");
}

#[test]
fn missing_busybox_is_a_clear_error_and_creates_nothing() {
    let host = root_host!();
    for lesson in ["pid-ns", "chroot-busybox"] {
        let o = common::workbench_env(&["lesson", lesson], &[common::NO_BUSYBOX]);
        let e = common::refused(&o, lesson);
        assert!(e.contains("busybox found") && e.contains("scripts/setup"), "{e}");
    }
    host.assert_unchanged("runs without busybox");
}

#[test]
fn doctor_reports_a_table_and_host_state_is_json() {
    let o = common::workbench(&["doctor"]);
    let out = common::stdout(&o);
    assert!(out.contains("namespaces") && out.contains("cgroup layout"), "{out}");
    let o = common::workbench(&["doctor", "--host-state"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("host state is JSON");
    assert!(v["sections"]["links"].as_array().unwrap().iter().any(|l| l == "lo"));
}

#[test]
fn colour_follows_the_flag() {
    let always = common::workbench(&["doctor", "--color", "always"]);
    assert!(common::stdout(&always).contains('\u{1b}'), "--color always must colour");
    let never = common::workbench(&["doctor", "--color", "never"]);
    assert!(
        !common::stdout(&never).contains('\u{1b}'),
        "--color never must not colour"
    );
    // auto on a pipe (and NO_COLOR set by common::workbench) stays plain
    let auto = common::workbench(&["doctor"]);
    assert!(!common::stdout(&auto).contains('\u{1b}'));
}

// ---- options a lesson does not take ----------------------------------------

#[test]
fn an_option_the_lesson_does_not_take_is_refused_and_creates_nothing() {
    let _g = common::serial();
    let before = common::is_root().then(workbench::host::snapshot::capture);
    let o = common::workbench(&["lesson", "pid-ns", "--memory", "64M"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(common::one_line_error(&o), "workbench: error: --memory does not apply to pid-ns (it takes: --hostname); see `workbench lesson pid-ns --help`");
    assert!(o.stdout.is_empty(), "{}", common::stdout(&o));
    // The shorthand goes the same way, and a lesson without options says so.
    let o = common::workbench(&["overlay-demo", "--quota", "5", "--subnet", "10.0.0.0/24"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::one_line_error(&o).contains("--quota, --subnet do not apply to overlay-demo (it takes no options)"));
    // An option the lesson takes is not refused by this check.
    let o = common::workbench(&["lesson", "pids-limit", "--pids-max", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!common::one_line_error(&o).contains("does not apply"));
    if let Some(before) = before {
        common::assert_host_unchanged(&before, "refused options");
    }
}

#[test]
fn options_are_declared_once_in_the_lesson_text() {
    // `list --json` shows what lessons/<id>.toml declares, and the CLI accepts exactly those.
    let o = common::workbench(&["list", "--json"]);
    for v in json_lines(&o) {
        let id = v["id"].as_str().unwrap();
        let text = workbench::lesson::text::find(id).unwrap();
        let options: Vec<String> = v["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        assert_eq!(options, text.options, "{id}");
    }
}

// ---- typos -----------------------------------------------------------------

#[test]
fn mistyped_commands_suggest_the_command() {
    for (typo, meant) in [
        ("lis", "list"),
        ("docter", "doctor"),
        ("clenaup", "cleanup"),
        ("tuor", "tour"),
    ] {
        let o = common::workbench(&[typo]);
        assert_eq!(o.status.code(), Some(2), "{typo}");
        let e = common::one_line_error(&o);
        assert!(
            e.contains(&format!("unknown command '{typo}': did you mean '{meant}'?")),
            "{typo}: {e}"
        );
    }
    // A lesson typo still suggests the lesson...
    let e = common::one_line_error(&common::workbench(&["pid-nss"]));
    assert!(e.contains("unknown lesson 'pid-nss': did you mean 'pid-ns'?"), "{e}");
    // ...and after `lesson` only lessons are suggested.
    let e = common::one_line_error(&common::workbench(&["lesson", "lis"]));
    assert!(e.contains("unknown lesson 'lis'") && !e.contains("'list'"), "{e}");
}

// ---- the tour --------------------------------------------------------------

#[test]
fn tour_skips_lessons_that_cannot_start_and_ends_with_its_summary() {
    let host = root_host!(); // to become someone else, for whom no lesson can start
    let n = workbench::lessons::ALL.len();
    let nobody = |json: bool| {
        let mut args = vec!["tour"];
        if json {
            args.push("--json");
        }
        common::workbench_as_nobody(&args)
    };
    let o = nobody(false);
    let out = common::stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a tour where no lesson could start exits 2:\n{out}{}",
        common::stderr(&o)
    );
    for def in workbench::lessons::ALL {
        assert!(
            out.contains(&format!("lesson {}: skipped: ", def.id)),
            "{} not marked skipped:\n{out}",
            def.id
        );
    }
    assert!(out.contains("Tour summary:") && out.contains("needs root"), "{out}");
    assert_eq!(
        out.lines().last(),
        Some(
            format!("tour: 0 of {n} lessons passed, {n} skipped (could not start on this host: the reasons are above)")
                .as_str()
        ),
        "{out}"
    );

    let o = nobody(true);
    assert_eq!(o.status.code(), Some(2));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), n + 1, "one skipped object per lesson, then the tour");
    for (v, def) in lines.iter().zip(workbench::lessons::ALL) {
        assert_eq!(
            (v["type"].as_str(), v["lesson"].as_str()),
            (Some("skipped"), Some(def.id))
        );
        assert!(!v["reason"].as_str().unwrap().is_empty());
    }
    let tour = lines.last().unwrap();
    assert_eq!(tour["type"], "tour");
    assert_eq!(
        (
            tour["passed"].as_u64(),
            tour["failed"].as_u64(),
            tour["skipped"].as_u64(),
            tour["exit"].as_u64()
        ),
        (Some(0), Some(0), Some(n as u64), Some(2))
    );
    let results: Vec<&str> = tour["lessons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, vec!["skipped"; n]);
    host.assert_unchanged("tours as nobody");
}

#[test]
fn tour_goes_on_past_lessons_that_cannot_start_and_runs_the_others() {
    // Without busybox, the lessons that need it cannot start; the others
    // (the cgroup CPU lessons and overlay-demo need none) still run.
    let host = root_host!();
    let o = common::workbench_env(&["tour", "--json"], &[common::NO_BUSYBOX]);
    let lines = json_lines(&o);
    let tour = lines.last().unwrap();
    assert_eq!(tour["type"], "tour", "the tour ends with its summary");
    let entries = tour["lessons"].as_array().unwrap();
    let ids: Vec<&str> = entries.iter().map(|e| e["lesson"].as_str().unwrap()).collect();
    assert_eq!(ids, workbench::lessons::ALL.iter().map(|d| d.id).collect::<Vec<_>>());
    let (mut ran, mut skipped) = (0, 0);
    for e in entries {
        let id = e["lesson"].as_str().unwrap();
        let of = |t: &str| {
            lines
                .iter()
                .filter(|l| l["type"] == t && l["lesson"] == id)
                .collect::<Vec<_>>()
        };
        match e["result"].as_str().unwrap() {
            "skipped" => {
                skipped += 1;
                let s = of("skipped");
                assert_eq!(s.len(), 1, "{id}");
                assert!(
                    s[0]["reason"].as_str().unwrap().contains("busybox found"),
                    "{id}: {}",
                    s[0]
                );
                assert!(
                    of("step").is_empty() && of("summary").is_empty(),
                    "{id} was skipped yet ran"
                );
            }
            result => {
                ran += 1;
                let s = of("summary");
                assert_eq!(s.len(), 1, "{id}");
                assert_eq!(
                    result == "pass",
                    s[0]["pass"] == true,
                    "{id}: result {result}, summary {}",
                    s[0]
                );
                assert!(!of("step").is_empty(), "{id}: no steps");
            }
        }
    }
    assert!(ran >= 1 && skipped >= 1, "{ran} ran, {skipped} skipped");
    assert_eq!(tour["skipped"].as_u64(), Some(skipped));
    let results: Vec<&str> = entries.iter().map(|e| e["result"].as_str().unwrap()).collect();
    if results.iter().all(|r| ["pass", "skipped"].contains(r)) {
        assert_eq!(
            (o.status.code(), tour["exit"].as_i64()),
            (Some(0), Some(0)),
            "skips alone do not fail the tour"
        );
    } else if results.contains(&"fail") {
        assert_eq!((o.status.code(), tour["exit"].as_i64()), (Some(1), Some(1)));
    }
    host.assert_unchanged("a tour without busybox");
}

// ---- --json: the interface for graders -------------------------------------

/// Every stdout line of `o` as JSON, each checked for the interface version.
fn json_lines(o: &std::process::Output) -> Vec<serde_json::Value> {
    let out = common::stdout(o);
    assert!(!out.is_empty(), "no JSON on stdout; stderr: {}", common::stderr(o));
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert_eq!(
                v[workbench::jsonl::VERSION_KEY],
                workbench::jsonl::VERSION,
                "no version in {l}"
            );
            assert!(v["type"].is_string(), "no type in {l}");
            v
        })
        .collect()
}

/// The one `"type":"error"` object a refused `--json` command prints.
fn json_error(args: &[&str]) -> serde_json::Value {
    let o = common::workbench(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}");
    let line = common::one_line_error(&o); // humans still get their line on stderr
    let v = json_lines(&o);
    assert_eq!(v.len(), 1, "{args:?}: one object expected");
    let e = v.into_iter().next().unwrap();
    assert_eq!(
        (e["type"].as_str(), e["exit"].as_u64()),
        (Some("error"), Some(2)),
        "{e}"
    );
    assert!(
        line.contains(e["message"].as_str().unwrap()),
        "{args:?}: stderr says {line}, JSON says {e}"
    );
    e
}

#[test]
fn refusals_in_json_mode_are_json_objects() {
    let e = json_error(&["lesson", "pid-nss", "--json"]);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("unknown lesson 'pid-nss': did you mean 'pid-ns'?"),
        "{e}"
    );
    let e = json_error(&["lesson", "pid-ns", "--json", "--memory", "64M"]);
    assert_eq!(
        e["message"],
        "--memory does not apply to pid-ns (it takes: --hostname); see `workbench lesson pid-ns --help`"
    );
    let e = json_error(&["pid-ns", "--json", "--memory", "64M"]);
    assert!(
        e["message"].as_str().unwrap().starts_with("--memory does not apply"),
        "{e}"
    );
    let e = json_error(&["lis", "--json"]);
    assert!(e["message"].as_str().unwrap().contains("did you mean 'list'?"), "{e}");
    // What clap refuses too (the stderr is clap's own, several lines).
    let o = common::workbench(&["lesson", "pid-ns", "--json", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    let v = json_lines(&o);
    assert_eq!(
        (v.len(), v[0]["type"].as_str(), v[0]["exit"].as_u64()),
        (1, Some("error"), Some(2))
    );
    assert!(v[0]["message"].as_str().unwrap().contains("--no-such-flag"), "{}", v[0]);
    // Without --json, nothing on stdout.
    assert!(common::workbench(&["lesson", "pid-nss"]).stdout.is_empty());
}

#[test]
fn list_json_is_one_object_per_lesson() {
    let o = common::workbench(&["list", "--json"]);
    assert!(o.status.success());
    let v = json_lines(&o);
    let ids: Vec<&str> = v.iter().map(|l| l["id"].as_str().unwrap()).collect();
    let tour: Vec<&str> = workbench::lessons::ALL.iter().map(|d| d.id).collect();
    assert_eq!(ids, tour, "in tour order");
    for l in &v {
        assert_eq!(l["type"], "lesson");
        for key in [
            "order",
            "aliases",
            "options",
            "title",
            "goal",
            "tutorial",
            "tutorial_url",
            "steps",
            "shell",
        ] {
            assert!(!l[key].is_null(), "{}: no {key}", l["id"]);
        }
    }
    let pid = &v[ids.iter().position(|i| *i == "pid-ns").unwrap()];
    assert_eq!(pid["options"], serde_json::json!(["hostname"]));
    assert_eq!(pid["steps"][0], "clone");
}

#[test]
fn doctor_json_is_checks_then_a_summary() {
    let o = common::workbench(&["doctor", "--json"]);
    let v = json_lines(&o);
    let (summary, checks) = v.split_last().unwrap();
    assert!(
        checks.len() > 5
            && checks.iter().all(|c| c["type"] == "check"
                && c["check"].is_string()
                && c["ok"].is_boolean()
                && c["required"].is_boolean())
    );
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["checks"].as_u64(), Some(checks.len() as u64));
    let failed_required = checks
        .iter()
        .filter(|c| c["required"] == true && c["ok"] == false)
        .count() as u64;
    assert_eq!(summary["failed_required"].as_u64(), Some(failed_required));
    assert_eq!(summary["exit"].as_i64(), o.status.code().map(i64::from));
}

#[test]
fn cleanup_json_ends_with_a_summary_and_refuses_as_json() {
    if common::is_root() {
        let _g = common::serial();
        let o = common::workbench(&["cleanup", "--json"]);
        let v = json_lines(&o);
        let summary = v.last().unwrap();
        assert_eq!(summary["type"], "summary", "{v:?}");
        assert_eq!(summary["exit"].as_i64(), o.status.code().map(i64::from));
        let removed = v.iter().filter(|l| l["type"] == "removed").count() as u64;
        assert_eq!(summary["removed"].as_u64(), Some(removed));
        // Not root: a refusal, as JSON.
        let o = common::workbench_as_nobody(&["cleanup", "--json"]);
        assert_eq!(o.status.code(), Some(2));
        let v = json_lines(&o);
        assert_eq!((v.len(), v[0]["type"].as_str()), (1, Some("error")));
        assert!(v[0]["message"].as_str().unwrap().contains("root"), "{}", v[0]);
    } else {
        let e = json_error(&["cleanup", "--json"]);
        assert!(e["message"].as_str().unwrap().contains("root"), "{e}");
    }
}
