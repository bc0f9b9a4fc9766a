//! One file per controller, each with its v1 and its v2 backend.
//!
//! Adding a controller means: a variant of [`crate::Controller`], a file here
//! with a trait for its knobs implemented for [`crate::backend::V1`] and
//! [`crate::backend::V2`] (file names from `files.rs`, watched files as
//! [`crate::backend::Watch`] tables), and its lines in [`watched`].

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
