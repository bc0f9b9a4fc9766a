//! pids: the number of tasks (threads count too) a group may hold.
//!
//! The only controller whose files have the same names and formats in v1 and
//! v2 (pids.max, pids.current, pids.events), so both backends use the
//! trait's default methods.

use crate::backend::{Dirs, Watch, V1, V2};
use crate::error::Result;
use crate::files::*;
use crate::fsio;
use crate::watch::Resource as R;

/// The pids controller's knobs, the same on v1 and v2.
pub(crate) trait Pids: Sync {
    fn set_pids_max(&self, d: &Dirs, n: u64) -> Result<()> {
        fsio::write(&d.file("pids", PIDS_MAX)?, &n.to_string())
    }

    fn clear_pids_max(&self, d: &Dirs) -> Result<()> {
        fsio::write(&d.file("pids", PIDS_MAX)?, "max")
    }

    /// `None` = unlimited.
    fn pids_max(&self, d: &Dirs) -> Result<Option<u64>> {
        fsio::read_max_or_u64(&d.file("pids", PIDS_MAX)?)
    }

    fn pids_current(&self, d: &Dirs) -> Result<u64> {
        fsio::read_u64(&d.file("pids", PIDS_CURRENT)?)
    }

    /// Forks refused because of pids.max (pids.events `max`).
    fn pids_max_events(&self, d: &Dirs) -> Result<u64> {
        fsio::flat_key(&d.file("pids", PIDS_EVENTS)?, "max")
    }

    fn pids_watched(&self) -> &'static [Watch] {
        #[rustfmt::skip]
        const W: &[Watch] = &[
            Watch::new(R::Pids, "pids", PIDS_MAX, "most tasks allowed (max = unlimited)"),
            Watch::new(R::Pids, "pids", PIDS_CURRENT, "tasks in the group now"),
            Watch::new(R::Pids, "pids", PIDS_EVENTS, "forks refused by pids.max"),
        ];
        W
    }
}

impl Pids for V1 {}
impl Pids for V2 {}
