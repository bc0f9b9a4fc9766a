//! The two cgroup APIs as backends, and what every controller offers on each.
//!
//! In v1 a "group" is really a set of same-named directories, one in each
//! controller's hierarchy (cpu/workbench/x, memory/workbench/x, ...), and a
//! process must be written into each of them. In the unified v2 hierarchy a
//! group is a single directory, and a controller's files only appear in it
//! when the *parent* lists the controller in its `cgroup.subtree_control`
//! (Documentation/admin-guide/cgroup-v2.rst). Each controller (one file in
//! `controllers/`) implements its knobs once for [`V1`] and once for [`V2`],
//! on the [`Dirs`] of a group, in the shape of youki's libcgroups.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::watch::Resource;

/// The cgroup v1 backend: one directory per controller hierarchy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct V1;

/// The cgroup v2 backend: one directory holds every controller's files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct V2;

/// The directories of one group, as a controller's backend sees them.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dirs<'a> {
    /// v1 hierarchy name ("cpu", "cpuacct", "memory", "pids") → group dir.
    V1 {
        group: &'a str,
        dirs: &'a BTreeMap<&'static str, PathBuf>,
    },
    /// The group's single cgroup2 directory.
    V2(&'a Path),
}

impl<'a> Dirs<'a> {
    /// Where the files of v1 hierarchy `hierarchy` are; on v2 every file is
    /// in the one directory.
    pub(crate) fn dir(&self, hierarchy: &str) -> Result<&'a Path> {
        match *self {
            Dirs::V2(d) => Ok(d),
            Dirs::V1 { group, dirs } => dirs
                .get(hierarchy)
                .map(PathBuf::as_path)
                .ok_or_else(|| Error::NotInGroup {
                    group: group.to_string(),
                    controller: hierarchy.to_string(),
                }),
        }
    }

    /// `dir(hierarchy)/file`.
    pub(crate) fn file(&self, hierarchy: &str, file: &str) -> Result<PathBuf> {
        Ok(self.dir(hierarchy)?.join(file))
    }
}

/// One cgroup file worth showing for a [`Resource`], as a backend names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watch {
    pub resource: Resource,
    /// The v1 hierarchy holding the file (ignored on v2).
    pub hierarchy: &'static str,
    pub file: &'static str,
    /// One line on what the value means.
    pub meaning: &'static str,
    /// Shown only when the kernel provides it (memsw, memory.peak, ...).
    pub optional: bool,
}

impl Watch {
    pub(crate) const fn new(
        resource: Resource,
        hierarchy: &'static str,
        file: &'static str,
        meaning: &'static str,
    ) -> Watch {
        Watch {
            resource,
            hierarchy,
            file,
            meaning,
            optional: false,
        }
    }

    /// The same, shown only when the file exists.
    pub(crate) const fn optional(self) -> Watch {
        Watch { optional: true, ..self }
    }
}
