//! The edge of the program: parse the command line, run the command, and turn
//! its result into one clear line and an exit code.
//!
//! Exit codes: 0 success; 1 a lesson check failed or doctor found a required
//! problem; 2 bad input or a missing prerequisite (nothing was created);
//! 3 inconclusive: no check failed, but a lesson could not judge its effect
//! because the host was busy (its CPUs taken by other processes).
//! With `--json`, a refusal is also a JSON object on stdout ([`crate::jsonl`]).

pub mod args;
pub mod dispatch;
pub mod manual;

use std::process::ExitCode;

use clap::Parser;

use crate::observe::render::Style;
use args::{Cli, ColorChoice, Command};

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => return dispatch::clap_refusal(&e, dispatch::json_requested(&args)),
    };
    let style = style_for(cli.color);
    colored::control::set_override(style.color);
    let json = wants_json(&cli.command);
    let result = dispatch::dispatch(cli.command, style);
    // A signal's teardown may be under way: its exit status wins.
    crate::state::signals::stop_if_caught();
    match result {
        Ok(code) => code,
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!("workbench: error: {message}");
            if json {
                crate::jsonl::error(&message, 2);
            }
            ExitCode::from(2)
        }
    }
}

/// Whether the command asked for `--json` (its refusals are JSON objects too).
fn wants_json(cmd: &Command) -> bool {
    match cmd {
        Command::List(l) => l.json,
        Command::Lesson(a) => a.json,
        Command::Tour(t) => t.json,
        Command::Doctor(d) => d.json,
        Command::Cleanup(c) => c.json,
        Command::Image(a) => a.json(),
        Command::Commit(c) => c.json,
        Command::External(args) => args.iter().take_while(|a| *a != "--").any(|a| a == "--json"),
        _ => false,
    }
}

fn style_for(choice: ColorChoice) -> Style {
    use std::io::IsTerminal;
    let tty = std::io::stdout().is_terminal();
    let color = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    let width = if tty { terminal_width().unwrap_or(120) } else { 120 };
    Style { color, width }
}

fn terminal_width() -> Option<u16> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointed-to struct.
    let r = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 20).then_some(ws.ws_col)
}
