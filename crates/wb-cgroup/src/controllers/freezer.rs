//! freezer: stop every task of a group at once, and let them go again.
//!
//! A frozen task is taken off the run queue wherever it is and gets no CPU
//! time until the group is thawed; it does not notice, unlike a SIGSTOP its
//! parent could see. v1 has a freezer hierarchy with `freezer.state`
//! (THAWED, FREEZING, FROZEN). v2 has no freezer controller: every non-root
//! group has the core files `cgroup.freeze` (write 1 or 0) and
//! `cgroup.events`, whose `frozen 1` says the freeze is complete.
//!
//! A v1 frozen task does not even die of SIGKILL until it is thawed (the
//! signal waits), which is why removing a group thaws it first
//! ([`thaw_for_kill`]); on v2 a fatal signal ends a frozen task.

use std::path::Path;

use serde::Serialize;

use crate::backend::{Dirs, Watch, V1, V2};
use crate::error::Result;
use crate::files::*;
use crate::fsio;
use crate::watch::Resource as R;

/// Where a group's freeze stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FreezerState {
    Thawed,
    /// Asked to freeze; some task has not stopped yet.
    Freezing,
    Frozen,
}

impl std::fmt::Display for FreezerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FreezerState::Thawed => "THAWED",
            FreezerState::Freezing => "FREEZING",
            FreezerState::Frozen => "FROZEN",
        })
    }
}

/// The freezer's knobs, on v1 or v2.
pub(crate) trait Freezer: Sync {
    fn freeze(&self, d: &Dirs) -> Result<()>;
    fn thaw(&self, d: &Dirs) -> Result<()>;
    fn freezer_state(&self, d: &Dirs) -> Result<FreezerState>;
    fn freezer_watched(&self) -> &'static [Watch];
}

/// v1 `freezer.state` text → state.
pub(crate) fn parse_v1_state(text: &str) -> Option<FreezerState> {
    match text.trim() {
        "THAWED" => Some(FreezerState::Thawed),
        "FREEZING" => Some(FreezerState::Freezing),
        "FROZEN" => Some(FreezerState::Frozen),
        _ => None,
    }
}

/// v2: what was asked (`cgroup.freeze`) and what is (`cgroup.events` frozen).
pub(crate) fn v2_state(asked: bool, frozen: bool) -> FreezerState {
    match (asked, frozen) {
        (_, true) => FreezerState::Frozen,
        (true, false) => FreezerState::Freezing,
        (false, false) => FreezerState::Thawed,
    }
}

impl Freezer for V1 {
    fn freeze(&self, d: &Dirs) -> Result<()> {
        fsio::write(&d.file("freezer", V1_FREEZER_STATE)?, "FROZEN")
    }

    fn thaw(&self, d: &Dirs) -> Result<()> {
        fsio::write(&d.file("freezer", V1_FREEZER_STATE)?, "THAWED")
    }

    fn freezer_state(&self, d: &Dirs) -> Result<FreezerState> {
        let p = d.file("freezer", V1_FREEZER_STATE)?;
        let text = fsio::read(&p)?;
        parse_v1_state(&text).ok_or_else(|| crate::error::Error::Parse {
            what: p.display().to_string(),
            input: text.trim().to_string(),
            reason: "expected THAWED, FREEZING or FROZEN".into(),
        })
    }

    fn freezer_watched(&self) -> &'static [Watch] {
        #[rustfmt::skip]
        const W: &[Watch] = &[
            Watch::new(R::Freezer, "freezer", V1_FREEZER_STATE, "THAWED, FREEZING (on its way) or FROZEN"),
        ];
        W
    }
}

impl Freezer for V2 {
    fn freeze(&self, d: &Dirs) -> Result<()> {
        fsio::write(&d.file("freezer", CGROUP_FREEZE)?, "1")
    }

    fn thaw(&self, d: &Dirs) -> Result<()> {
        fsio::write(&d.file("freezer", CGROUP_FREEZE)?, "0")
    }

    fn freezer_state(&self, d: &Dirs) -> Result<FreezerState> {
        let asked = fsio::read_u64(&d.file("freezer", CGROUP_FREEZE)?)? == 1;
        let frozen = fsio::flat_key(&d.file("freezer", CGROUP_EVENTS)?, "frozen")? == 1;
        Ok(v2_state(asked, frozen))
    }

    fn freezer_watched(&self) -> &'static [Watch] {
        #[rustfmt::skip]
        const W: &[Watch] = &[
            Watch::new(R::Freezer, "freezer", CGROUP_FREEZE, "1 = asked to freeze, 0 = thawed"),
            Watch::new(R::Freezer, "freezer", CGROUP_EVENTS, "populated (has tasks), frozen (freeze complete)"),
        ];
        W
    }
}

/// Before killing what is in `dir`: a v1 group that is frozen (or freezing)
/// is thawed, or its tasks would sit on their SIGKILL forever and the rmdir
/// would fail with EBUSY. v2 frozen tasks die of SIGKILL; they are thawed
/// too, which costs nothing. Returns whether something was thawed.
pub(crate) fn thaw_for_kill(dir: &Path) -> Result<bool> {
    let v1 = dir.join(V1_FREEZER_STATE);
    if v1.is_file() {
        if parse_v1_state(&fsio::read(&v1)?) != Some(FreezerState::Thawed) {
            fsio::write(&v1, "THAWED")?;
            return Ok(true);
        }
        return Ok(false);
    }
    let v2 = dir.join(CGROUP_FREEZE);
    if v2.is_file() && fsio::read(&v2)?.trim() == "1" {
        fsio::write(&v2, "0")?;
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        assert_eq!(parse_v1_state("FROZEN\n"), Some(FreezerState::Frozen));
        assert_eq!(parse_v1_state("FREEZING\n"), Some(FreezerState::Freezing));
        assert_eq!(parse_v1_state("THAWED"), Some(FreezerState::Thawed));
        assert_eq!(parse_v1_state("frozen"), None);
        assert_eq!(v2_state(true, true), FreezerState::Frozen);
        assert_eq!(v2_state(true, false), FreezerState::Freezing);
        assert_eq!(v2_state(false, false), FreezerState::Thawed);
        assert_eq!(FreezerState::Frozen.to_string(), "FROZEN");
    }

    #[test]
    fn a_frozen_group_is_thawed_before_the_kill() {
        let t = tempfile::tempdir().unwrap();
        let v1 = t.path().join("v1");
        std::fs::create_dir(&v1).unwrap();
        std::fs::write(v1.join(V1_FREEZER_STATE), "FROZEN\n").unwrap();
        assert!(thaw_for_kill(&v1).unwrap());
        assert_eq!(std::fs::read_to_string(v1.join(V1_FREEZER_STATE)).unwrap(), "THAWED");
        assert!(!thaw_for_kill(&v1).unwrap(), "already thawed: nothing written");

        let v2 = t.path().join("v2");
        std::fs::create_dir(&v2).unwrap();
        std::fs::write(v2.join(CGROUP_FREEZE), "1\n").unwrap();
        assert!(thaw_for_kill(&v2).unwrap());
        assert_eq!(std::fs::read_to_string(v2.join(CGROUP_FREEZE)).unwrap(), "0");

        let none = t.path().join("memory-only");
        std::fs::create_dir(&none).unwrap();
        assert!(!thaw_for_kill(&none).unwrap());
    }
}
