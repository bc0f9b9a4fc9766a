//! Ctrl-C and SIGTERM: tear down what the run created, then exit.
//!
//! A dedicated thread waits for the signals (signal-hook), takes the state
//! lock — so it never races a half-finished creation — removes every recorded
//! object and exits with 128+signal, as a shell would report.

use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static INTERACTIVE: AtomicBool = AtomicBool::new(false);

/// While a `--shell` runs, Ctrl-C belongs to the shell, not to workbench.
pub fn set_interactive(on: bool) {
    INTERACTIVE.store(on, Ordering::SeqCst);
}

/// Start the signal thread.
pub fn install() -> anyhow::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for sig in signals.forever() {
            if sig == SIGINT && INTERACTIVE.load(Ordering::SeqCst) {
                continue;
            }
            let name = match sig {
                SIGINT => "SIGINT",
                SIGTERM => "SIGTERM",
                _ => "SIGHUP",
            };
            eprintln!("\nworkbench: caught {name}, removing what this run created");
            let problems = crate::state::finish();
            for p in &problems {
                eprintln!("workbench: cleanup: {p}");
            }
            std::process::exit(128 + sig);
        }
    })?;
    Ok(())
}
