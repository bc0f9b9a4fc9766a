//! The CLI's output as snapshots (trycmd): each `tests/ui/*.toml` runs
//! `workbench` with its `args` and compares the exit status, stdout and stderr
//! with the file. `TRYCMD=overwrite cargo test --test ui` rewrites them after a
//! deliberate change of the output (then review the diff).
//!
//! Only commands whose output does not depend on the host or on root: help,
//! `list`, and refusals that come before anything is created.

#[test]
fn cli_output() {
    trycmd::TestCases::new()
        .register_bin("workbench", std::path::Path::new(env!("CARGO_BIN_EXE_workbench")))
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .case("tests/ui/*.toml");
}
