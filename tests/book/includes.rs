//! `{{#include file:anchor}}` directives: parsed, resolved and expanded as mdBook does.

use super::*;

// ---- includes ----------------------------------------------------------------

/// One `{{#include path[:anchor|:lines]}}` directive.
#[derive(Debug)]
pub(crate) struct Include {
    path: String,
    /// A named anchor, or a line range like `3:10`, or nothing.
    selector: Option<String>,
}

pub(crate) fn includes(text: &str) -> Vec<(usize, Include)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("{{#include ") {
            let after = &rest[i + "{{#include ".len()..];
            let Some(j) = after.find("}}") else { break };
            let arg = after[..j].trim();
            let (path, selector) = match arg.split_once(':') {
                Some((p, s)) => (p.to_string(), Some(s.to_string())),
                None => (arg.to_string(), None),
            };
            out.push((n + 1, Include { path, selector }));
            rest = &after[j..];
        }
    }
    out
}

/// Is `name` an mdBook anchor name? (`[\w_-]+`)
pub(crate) fn is_anchor_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        && !s.chars().all(|c| c.is_ascii_digit())
}

/// The lines between `ANCHOR: name` and `ANCHOR_END: name`, without other
/// anchor lines (what mdBook includes), or `None` if the anchor is missing.
pub(crate) fn anchored(text: &str, name: &str) -> Option<String> {
    let is_marker = |l: &str, kind: &str| {
        l.find(kind).is_some_and(|i| {
            let rest = l[i + kind.len()..].trim_start();
            rest.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
                .next()
                == Some(name)
        })
    };
    let mut inside = false;
    let mut found_end = false;
    let mut out = Vec::new();
    for l in text.lines() {
        if !inside {
            if is_marker(l, "ANCHOR:") {
                inside = true;
            }
            continue;
        }
        if is_marker(l, "ANCHOR_END:") {
            found_end = true;
            break;
        }
        if !(l.contains("ANCHOR:") || l.contains("ANCHOR_END:")) {
            out.push(l);
        }
    }
    (inside && found_end).then(|| out.join("\n"))
}

/// What an include directive expands to, or why it cannot.
pub(crate) fn resolve_include(from: &Path, inc: &Include) -> Result<String, String> {
    let target = from.parent().unwrap().join(&inc.path);
    let text = std::fs::read_to_string(&target).map_err(|e| format!("{}: {e}", inc.path))?;
    match inc.selector.as_deref() {
        None => Ok(text),
        Some(s) if is_anchor_name(s) => match anchored(&text, s) {
            Some(body) if !body.trim().is_empty() => Ok(body),
            Some(_) => Err(format!("{}: anchor `{s}` is empty", inc.path)),
            None => Err(format!("{}: no anchor `{s}` (ANCHOR: {s} … ANCHOR_END: {s})", inc.path)),
        },
        Some(range) => {
            let lines: Vec<&str> = text.lines().collect();
            let mut parts = range.splitn(2, ':');
            let parse = |p: Option<&str>, default: usize| -> Result<usize, String> {
                match p.map(str::trim) {
                    None | Some("") => Ok(default),
                    Some(n) => n.parse().map_err(|_| format!("{}: bad line range `{range}`", inc.path)),
                }
            };
            let start = parse(parts.next(), 1)?;
            let end = if range.contains(':') {
                parse(parts.next(), lines.len())?
            } else {
                start
            };
            if start == 0 || start > lines.len() || end > lines.len() || start > end {
                return Err(format!(
                    "{}: line range `{range}` outside its {} lines",
                    inc.path,
                    lines.len()
                ));
            }
            Ok(lines[start - 1..end].join("\n"))
        }
    }
}

/// The file with every include expanded (recursively), as mdBook would.
pub(crate) fn expand(path: &Path, depth: usize) -> String {
    expand_text(path, &read(path), depth)
}

pub(crate) fn expand_text(path: &Path, text: &str, depth: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_string();
        for (_, inc) in includes(&line.clone()) {
            // A broken include expands to nothing here; the include test reports it.
            let body = resolve_include(path, &inc).unwrap_or_default();
            let target = path.parent().unwrap().join(&inc.path);
            let body = if depth < 5 && body.contains("{{#include") {
                expand_text(&target, &body, depth + 1)
            } else {
                body
            };
            let directive = format!(
                "{{{{#include {}{}}}}}",
                inc.path,
                inc.selector.as_deref().map(|s| format!(":{s}")).unwrap_or_default()
            );
            line = line.replacen(&directive, &body, 1);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn every_include_names_an_existing_file_and_anchor() {
    let mut problems = Vec::new();
    let mut count = 0;
    for f in markdown_files(&src()) {
        for (line, inc) in includes(&read(&f)) {
            count += 1;
            if let Err(e) = resolve_include(&f, &inc) {
                problems.push(format!("{}:{line}: {e}", rel(&f)));
            }
        }
    }
    assert!(count > 0, "no includes found: is book/src empty?");
    assert!(
        problems.is_empty(),
        "broken includes (a missing transcript? run scripts/book as root):\n{}",
        problems.join("\n")
    );
}

#[test]
fn include_parsing_and_anchors() {
    let incs = includes("a {{#include x.md:intro}} b {{#include ../y.toml}} {{#include z.rs:3:5}}");
    let got: Vec<(String, Option<String>)> = incs.into_iter().map(|(_, i)| (i.path, i.selector)).collect();
    assert_eq!(
        got,
        [
            ("x.md".into(), Some("intro".into())),
            ("../y.toml".into(), None),
            ("z.rs".into(), Some("3:5".into()))
        ]
    );
    let text = "x\n# ANCHOR: a\none\n<!-- ANCHOR: inner -->\ntwo\n<!-- ANCHOR_END: inner -->\n# ANCHOR_END: a\n# ANCHOR: ab\nno\n";
    assert_eq!(anchored(text, "a").as_deref(), Some("one\ntwo"));
    assert_eq!(anchored(text, "inner").as_deref(), Some("two"));
    assert_eq!(anchored(text, "ab"), None, "an anchor without its end is missing");
    assert_eq!(anchored(text, "b"), None);
}
