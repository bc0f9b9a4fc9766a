//! Observation: what the kernel shows about a process, before and after a step.
//!
//! A [`Snapshot`] gathers a process's namespace inodes, cgroup membership,
//! mount table and (for network lessons) links, addresses and routes. Two
//! snapshots are compared by [`diff`](diff::diff) and drawn as tables by
//! [`render`]. Parsing and diffing are pure functions over text, so they are
//! tested on fixtures; only [`capture`] touches `/proc`.

pub mod capture;
pub mod diff;
pub mod net;
pub mod parse;
pub mod render;

pub use capture::{capture, Capture};
pub use diff::{diff, Change, Row, SectionDiff};
pub use parse::{CgroupEntry, MountEntry, NetState, Snapshot};
