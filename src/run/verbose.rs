//! What `workbench run -v` prints: each kernel operation as the classic
//! command and the system call, with where it runs (`[host]` or
//! `[container]`); and phase timestamps with `WORKBENCH_TRACE=1`.

use std::time::Instant;

/// Phase timestamps for `WORKBENCH_TRACE=1` (measuring where start-up time goes).
pub(super) struct Trace(Option<Instant>);

static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

impl Trace {
    pub(super) fn new() -> Trace {
        Trace(std::env::var_os("WORKBENCH_TRACE").map(|_| *T0.get_or_init(Instant::now)))
    }
    pub(super) fn mark(&self, what: &str) {
        if let Some(t) = self.0 {
            eprintln!("trace {:>8.3} ms  {what}", t.elapsed().as_secs_f64() * 1e3);
        }
    }
}

/// Verbose output: `[where] command   # syscall`.
pub(super) fn show(on: bool, place: &str, command: &str, syscall: &str) {
    if on {
        let first = command.lines().next().unwrap_or("");
        if syscall.is_empty() {
            eprintln!("[{place}] {command}");
        } else {
            eprintln!("[{place}] {first:<58} # {syscall}");
            for l in command.lines().skip(1) {
                eprintln!("{:>12}{l}", "");
            }
        }
    }
}

/// Quote argv for display.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/._-=:,+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            shell_words(&["/bin/sh".into(), "-c".into(), "echo $$".into()]),
            "/bin/sh -c 'echo $$'"
        );
    }
}
