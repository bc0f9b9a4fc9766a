//! `--json`: the interface for graders and scripts. Every command prints JSON
//! lines (one object per line), each with a `type` naming what it is and
//! `wb_json`, the version of this interface, so a grader can refuse output it
//! does not know. A refusal is an object too: `{"type":"error",…}` on stdout
//! (the one line for humans still goes to stderr). The book's chapter "JSON
//! output for graders" documents every object. This writer is a leaf: the
//! lesson engine and the commands both print through it.

use std::io::Write;

use serde::Serialize;

/// The version of the JSON interface (`"wb_json": 1`). Raise it when a field
/// changes meaning or goes away; adding a field or a `type` keeps it.
pub const VERSION: u32 = 1;

/// The name of the version field.
pub const VERSION_KEY: &str = "wb_json";

#[derive(Serialize)]
struct Versioned<'a, T: Serialize> {
    wb_json: u32,
    #[serde(flatten)]
    obj: &'a T,
}

/// One JSON line: `obj` (a struct or map) with the version field first.
pub fn line<T: Serialize>(obj: &T) -> String {
    serde_json::to_string(&Versioned { wb_json: VERSION, obj }).expect("JSON objects serialise")
}

/// Print one JSON line on stdout, flushed (a grader may read it while the run goes on).
pub fn print<T: Serialize>(obj: &T) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line(obj));
    let _ = out.flush();
}

/// A refusal: what went wrong and the exit status that follows.
#[derive(Debug, Serialize)]
pub struct Error<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: &'a str,
    pub exit: u8,
}

/// Print a refusal as `{"type":"error","message":…,"exit":…}`.
pub fn error(message: &str, exit: u8) {
    print(&Error {
        kind: "error",
        message,
        exit,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_version_first() {
        let l = line(&Error {
            kind: "error",
            message: "no \"such\" lesson",
            exit: 2,
        });
        assert_eq!(
            l,
            r#"{"wb_json":1,"type":"error","message":"no \"such\" lesson","exit":2}"#
        );
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v[VERSION_KEY], VERSION);
        assert!(!l.contains('\n'));
    }
}
