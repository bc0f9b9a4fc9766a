//! Ctrl-C and SIGTERM: tear down what the run created, then exit.
//!
//! A dedicated thread waits for the signals (signal-hook), takes the state
//! lock — so it never races a half-finished creation — removes every recorded
//! object and exits with 128+signal, as a shell would report.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static INTERACTIVE: AtomicBool = AtomicBool::new(false);

/// The signal being handled (0: none), stored by the signal handler itself.
///
/// Not by the signal thread: a Ctrl-C often arrives together with end of
/// input (a closed terminal, a parent that signals and then closes our stdin,
/// as Rust's `Child::wait` does), and the main thread may read that EOF before
/// the signal thread has even been scheduled. The handler, however, has run
/// by then: the kernel delivers a process-directed signal to the main thread
/// when it does not block it, and a thread runs its pending handler before
/// its interrupted read(2) can return.
static CAUGHT: AtomicI32 = AtomicI32::new(0);

/// Has a signal started the teardown? The main thread must then stop: a main
/// thread that read EOF would carry on with the next step — creating objects
/// behind the teardown's back (files in the working directory the teardown is
/// removing: "Directory not empty") — and exit with the lesson's status
/// instead of 128+signal.
pub fn caught() -> bool {
    CAUGHT.load(Ordering::SeqCst) != 0
}

/// Called by the main thread where it could go on after a signal (after a
/// read, before exiting): wait for the signal thread, which exits the process
/// when its teardown is done.
pub fn stop_if_caught() {
    let sig = CAUGHT.load(Ordering::SeqCst);
    if sig == 0 {
        return;
    }
    // The teardown takes milliseconds; a minute means it hangs: exit anyway.
    std::thread::sleep(std::time::Duration::from_secs(60));
    std::process::exit(128 + sig);
}

/// While a `--shell` runs, Ctrl-C belongs to the shell, not to workbench.
pub fn set_interactive(on: bool) {
    INTERACTIVE.store(on, Ordering::SeqCst);
}

/// Start the signal thread.
pub fn install() -> anyhow::Result<()> {
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // SAFETY: the action only reads and writes atomics (async-signal-safe).
        unsafe {
            signal_hook::low_level::register(sig, move || {
                if !(sig == SIGINT && INTERACTIVE.load(Ordering::SeqCst)) {
                    let _ = CAUGHT.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
                }
            })?;
        }
    }
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
            // Normally the handler has stored it already (see CAUGHT).
            let _ = CAUGHT.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
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
