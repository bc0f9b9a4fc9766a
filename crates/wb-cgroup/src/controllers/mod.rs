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
pub(crate) mod cpuacct;
pub(crate) mod cpuset;
pub(crate) mod devices;
pub(crate) mod freezer;
pub(crate) mod memory;
pub(crate) mod pids;

use crate::backend::{Watch, V1, V2};
use crate::controller::Controller;
use crate::placement::Version;
use cpu::Cpu;
use cpuacct::CpuAcct;
use cpuset::Cpuset;
use devices::Devices;
use freezer::Freezer;
use memory::Memory;
use pids::Pids;

/// The files controller `c` shows through API `v`, for every resource.
///
/// The cpuacct files (user/system time) come with the cpu controller; see
/// [`watched_extra`].
pub(crate) fn watched(c: Controller, v: Version) -> &'static [Watch] {
    match (c, v) {
        (Controller::Cpu, Version::V1) => V1.cpu_watched(),
        (Controller::Cpu, Version::V2) => V2.cpu_watched(),
        (Controller::Cpuset, Version::V1) => V1.cpuset_watched(),
        (Controller::Cpuset, Version::V2) => V2.cpuset_watched(),
        (Controller::Freezer, Version::V1) => V1.freezer_watched(),
        (Controller::Freezer, Version::V2) => V2.freezer_watched(),
        (Controller::Devices, Version::V1) => V1.devices_watched(),
        (Controller::Devices, Version::V2) => V2.devices_watched(),
        (Controller::Memory, Version::V1) => V1.memory_watched(),
        (Controller::Memory, Version::V2) => V2.memory_watched(),
        (Controller::Pids, Version::V1) => V1.pids_watched(),
        (Controller::Pids, Version::V2) => V2.pids_watched(),
    }
}

/// Files a controller shows besides its own table: the cpu route also
/// carries the user/system accounting (cpuacct on v1, cpu.stat on v2).
pub(crate) fn watched_extra(c: Controller, v: Version) -> &'static [Watch] {
    match (c, v) {
        (Controller::Cpu, Version::V1) => V1.cpuacct_watched(),
        (Controller::Cpu, Version::V2) => V2.cpuacct_watched(),
        _ => &[],
    }
}
