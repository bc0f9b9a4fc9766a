//! cgroup v2 backend: one directory holds every controller's files.
//!
//! In the unified hierarchy a group is a single directory. A controller's
//! files only appear in it when the *parent* lists the controller in its
//! `cgroup.subtree_control` (which in turn requires the grandparent to have
//! enabled it, up to the root). Processes may only live in leaves of the tree
//! that have controllers enabled ("no internal processes"), which is why
//! workbench keeps its own `workbench/` parent empty and puts processes in
//! `workbench/<name>`. Semantics follow Documentation/admin-guide/cgroup-v2.rst.

use std::path::Path;

use crate::error::Result;
use crate::files::*;
use crate::fsio;
use crate::parse::{self, CpuMax};
use crate::CpuStat;

/// Write `"$QUOTA $PERIOD"` to cpu.max.
pub(crate) fn set_cpu_quota(dir: &Path, quota_us: u64, period_us: u64) -> Result<()> {
    let v = parse::format_cpu_max(&CpuMax {
        quota_us: Some(quota_us),
        period_us,
    });
    fsio::write(&dir.join(V2_CPU_MAX), &v)
}

/// Writing only `max` lifts the limit and keeps the period.
pub(crate) fn clear_cpu_quota(dir: &Path) -> Result<()> {
    fsio::write(&dir.join(V2_CPU_MAX), "max")
}

pub(crate) fn cpu_quota(dir: &Path) -> Result<CpuMax> {
    let path = dir.join(V2_CPU_MAX);
    parse::parse_cpu_max(&fsio::read(&path)?).map_err(|e| fsio::reattach(e, &path))
}

/// cpu.stat `usage_usec` is present in every group (even without the cpu
/// controller enabled); convert to nanoseconds.
pub(crate) fn cpu_usage_ns(dir: &Path) -> Result<u64> {
    Ok(fsio::flat_key(&dir.join(V2_CPU_STAT), "usage_usec")?.saturating_mul(1000))
}

pub(crate) fn cpu_stat(dir: &Path) -> Result<CpuStat> {
    let path = dir.join(V2_CPU_STAT);
    let m = fsio::read_flat_keyed(&path)?;
    let what = path.display().to_string();
    Ok(CpuStat {
        nr_periods: parse::require_key(&m, "nr_periods", &what)?,
        nr_throttled: parse::require_key(&m, "nr_throttled", &what)?,
        throttled_ns: parse::require_key(&m, "throttled_usec", &what)?.saturating_mul(1000),
    })
}

pub(crate) fn set_cpu_weight(dir: &Path, weight: u64) -> Result<()> {
    fsio::write(&dir.join(V2_CPU_WEIGHT), &weight.to_string())
}

pub(crate) fn cpu_weight(dir: &Path) -> Result<u64> {
    fsio::read_u64(&dir.join(V2_CPU_WEIGHT))
}

/// memory.max = bytes; memory.swap.max = swap (`None` = `max`), when the
/// swap file exists (it is absent without swap accounting).
pub(crate) fn set_memory_limit(dir: &Path, bytes: u64, swap: Option<u64>) -> Result<()> {
    fsio::write(&dir.join(V2_MEMORY_MAX), &bytes.to_string())?;
    let swap_path = dir.join(V2_MEMORY_SWAP_MAX);
    if swap_path.is_file() {
        let v = swap.map_or_else(|| "max".to_string(), |s| s.to_string());
        fsio::write(&swap_path, &v)?;
    }
    Ok(())
}

pub(crate) fn clear_memory_limit(dir: &Path) -> Result<()> {
    fsio::write(&dir.join(V2_MEMORY_MAX), "max")?;
    let swap_path = dir.join(V2_MEMORY_SWAP_MAX);
    if swap_path.is_file() {
        fsio::write(&swap_path, "max")?;
    }
    Ok(())
}

pub(crate) fn memory_current(dir: &Path) -> Result<u64> {
    fsio::read_u64(&dir.join(V2_MEMORY_CURRENT))
}

/// memory.peak exists since Linux 5.19.
pub(crate) fn memory_peak(dir: &Path) -> Result<Option<u64>> {
    let p = dir.join(V2_MEMORY_PEAK);
    if p.is_file() {
        fsio::read_u64(&p).map(Some)
    } else {
        Ok(None)
    }
}

pub(crate) fn oom_kill_count(dir: &Path) -> Result<u64> {
    fsio::flat_key(&dir.join(V2_MEMORY_EVENTS), "oom_kill")
}

/// v2 has no memory.failcnt; memory.events `max` (times usage was about to
/// exceed memory.max) is the closest equivalent.
pub(crate) fn failcnt(dir: &Path) -> Result<Option<u64>> {
    let p = dir.join(V2_MEMORY_EVENTS);
    if !p.is_file() {
        return Ok(None);
    }
    Ok(fsio::read_flat_keyed(&p)?.get("max").copied())
}
