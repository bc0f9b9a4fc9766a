//! One file per controller, each with its v1 and its v2 backend.
//!
//! Adding a controller (freezer, cpuset, ...) means:
//! 1. its file names, with what they hold, in `files.rs` under a
//!    `// ---- name (v1)` / `(v2)` section (the book's file table is generated
//!    from there);
//! 2. a variant of [`crate::Controller`] with its name and v1 hierarchies
//!    (and in [`crate::Controller::ALL`]), and a [`crate::Resource`] per thing
//!    a lesson watches;
//! 3. a file here: a trait for its knobs, implemented for
//!    [`crate::backend::V1`] and [`crate::backend::V2`] on a group's
//!    [`crate::backend::Dirs`], each with a [`crate::backend::Watch`] table;
//! 4. its two lines in [`watched`], and on [`crate::Group`] one method per
//!    knob that picks the backend (`Group::backend`) and calls it.

pub(crate) mod cpu;
pub(crate) mod memory;
pub(crate) mod pids;

use crate::backend::{Watch, V1, V2};
use crate::controller::Controller;
use crate::placement::Version;
use cpu::Cpu;
use memory::Memory;
use pids::Pids;

/// The files controller `c` shows through API `v`, for every resource.
pub(crate) fn watched(c: Controller, v: Version) -> &'static [Watch] {
    match (c, v) {
        (Controller::Cpu, Version::V1) => V1.cpu_watched(),
        (Controller::Cpu, Version::V2) => V2.cpu_watched(),
        (Controller::Memory, Version::V1) => V1.memory_watched(),
        (Controller::Memory, Version::V2) => V2.memory_watched(),
        (Controller::Pids, Version::V1) => V1.pids_watched(),
        (Controller::Pids, Version::V2) => V2.pids_watched(),
    }
}
