//! `workbench`: the thin binary over the library. See `workbench --help`.

fn main() -> std::process::ExitCode {
    workbench::cli::main()
}
