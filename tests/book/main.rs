//! The book (`book/`) is checked like code; one module per kind of check.
//!
//! - every lesson in `lessons/` has a chapter listed in `SUMMARY.md`, in tour order;
//! - every ```` ```sh ```` line that runs `workbench` (or `sudo workbench`) parses
//!   with the real CLI, and the lessons it names exist;
//! - every `{{#include file:anchor}}` names an existing file and anchor (mdBook
//!   itself only logs a missing file, and silently includes nothing for a
//!   missing anchor);
//! - every transcript was recorded from the lesson's current text (its stamp is
//!   the SHA-256 of `lessons/<id>.toml`) and shows every step, all passed;
//! - every lesson chapter is finished: no stub, each step's output included,
//!   a diagram, notes on the tables, the tutorial link and a `--shell` exercise;
//! - pages generated from code (the cgroup file list from `wb-cgroup`, the
//!   doctor table) agree with the code;
//! - the built HTML (`book/book`, when present) has no broken relative link or
//!   `#fragment`;
//! - screenshots taken by `scripts/book-screenshots` are not blank.
//!
//! With `WB_BOOK_BLESS=1` (scripts/book sets it) the tests write what they can
//! generate without root — a stub chapter and a SUMMARY.md entry for a lesson
//! that has none, the cgroup file list — instead of failing.

mod commands;
#[path = "../common/mod.rs"]
mod common;
mod generated;
mod includes;
mod json;
mod links;
mod screenshots;
mod summary;
mod transcripts;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Parser;
use includes::*;
use summary::*;
use workbench::cli::args::{Cli, Command};
use workbench::lesson::runner::{markdown_stamp, text_fingerprint};
use workbench::lesson::text::{self, LessonText};
use workbench::observe::render::md_escape;

pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn src() -> PathBuf {
    root().join("book/src")
}

pub(crate) fn env_is(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

pub(crate) fn bless() -> bool {
    env_is("WB_BOOK_BLESS")
}

pub(crate) fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Every Markdown file under `dir`, recursively, sorted.
pub(crate) fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display()))
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub(crate) fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}
