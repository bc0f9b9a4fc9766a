//! What a step reports back to the runner: snapshots, transcript, checks.

use serde::Serialize;

use crate::kernel::child::RunOutput;
use crate::observe::render::{Check, Verdict};
use crate::observe::Snapshot;

/// A command run during a step and what it printed.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// Where it ran: "host", "child", "chroot"...
    pub place: String,
    pub command: String,
    pub output: String,
}

/// The outcome of one step, filled by the lesson code.
#[derive(Debug, Default, Serialize)]
pub struct StepReport {
    pub before: Option<Snapshot>,
    pub after: Option<Snapshot>,
    pub transcript: Vec<Exchange>,
    pub checks: Vec<Check>,
}

impl StepReport {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record the before/after pair to diff.
    pub fn observe(&mut self, before: Snapshot, after: Snapshot) {
        self.before = Some(before);
        self.after = Some(after);
    }

    /// Record a check.
    pub fn check(
        &mut self,
        name: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
        pass: bool,
    ) {
        let verdict = if pass { Verdict::Pass } else { Verdict::Fail };
        self.check_verdict(name, expected, actual, verdict);
    }

    /// Record a check with a three-way outcome: `Verdict::Inconclusive` when
    /// the step could not judge the effect (the host was too busy), which is
    /// neither a pass nor a failure.
    pub fn check_verdict(
        &mut self,
        name: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
        verdict: Verdict,
    ) {
        self.checks.push(Check {
            name: name.into(),
            expected: expected.into(),
            actual: actual.into(),
            pass: verdict == Verdict::Pass,
            inconclusive: verdict == Verdict::Inconclusive,
        });
    }

    /// Check that two values are equal.
    pub fn check_eq<T: PartialEq + std::fmt::Display>(&mut self, name: impl Into<String>, expected: T, actual: T) {
        let pass = expected == actual;
        self.check(name, expected.to_string(), actual.to_string(), pass);
    }

    /// Record a line of transcript.
    pub fn say(&mut self, place: &str, command: impl Into<String>, output: impl Into<String>) {
        self.transcript.push(Exchange {
            place: place.into(),
            command: command.into(),
            output: output.into(),
        });
    }

    /// Record a command's result as transcript, the way a shell would show it.
    pub fn ran(&mut self, place: &str, command: impl Into<String>, out: &RunOutput) {
        let command = command.into();
        let mut text = String::new();
        if let Some((err, _)) = &out.spawn_error {
            text.push_str(&format!(
                "{}: {err}",
                command.split_whitespace().next().unwrap_or("exec")
            ));
        } else {
            text.push_str(&out.stdout);
            text.push_str(&out.stderr);
            match (out.code, out.signal) {
                (Some(0), _) => {}
                (Some(c), _) => text.push_str(&format!("[exit status {c}]")),
                (None, Some(s)) => text.push_str(&format!("[killed by signal {s}]")),
                _ => {}
            }
        }
        self.say(place, command, text.trim_end().to_string());
    }

    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }

    /// The step's verdict from its checks (a step without checks proves
    /// nothing: it fails).
    pub fn verdict(&self) -> Verdict {
        if self.checks.is_empty() {
            return Verdict::Fail;
        }
        Verdict::combine(self.checks.iter().map(Check::verdict))
    }
}
