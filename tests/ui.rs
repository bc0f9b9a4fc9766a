//! The CLI's output as snapshots (trycmd): each `tests/ui/*.toml` runs
//! `workbench` with its `args` and compares the exit status, stdout and stderr
//! with the file. `TRYCMD=overwrite cargo test --test ui` rewrites them after a
//! deliberate change of the output (then review the diff).
//!
//! Only commands whose output does not depend on the host or on root: help,
//! `list`, and refusals that come before anything is created.

#[test]
fn cli_output() {
    let cases = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui/*.toml");
    // trycmd passes when the glob matches nothing: make sure it does not.
    let n = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ui"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
        .count();
    assert!(n >= 12, "only {n} cases in tests/ui");
    trycmd::TestCases::new()
        .register_bin("workbench", std::path::Path::new(env!("CARGO_BIN_EXE_workbench")))
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .case(cases);
}
