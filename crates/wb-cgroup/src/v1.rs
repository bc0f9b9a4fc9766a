//! cgroup v1 backend: one directory per controller hierarchy.
//!
//! In v1 a "group" is really a set of same-named directories, one in each
//! controller's hierarchy (cpu/workbench/x, memory/workbench/x, ...), and a
//! process must be written into each of them. Each function here works on the
//! group directory of one hierarchy.

use std::path::Path;

use crate::error::{Error, Result};
use crate::files::*;
use crate::fsio;
use crate::parse::{self, CpuMax};
use crate::CpuStat;

/// Write period first, then quota (quota/period is checked against the
/// parent's bandwidth on each write; the parent is unlimited here).
pub(crate) fn set_cpu_quota(cpu_dir: &Path, quota_us: u64, period_us: u64) -> Result<()> {
    fsio::write(&cpu_dir.join(V1_CPU_CFS_PERIOD_US), &period_us.to_string())?;
    fsio::write(&cpu_dir.join(V1_CPU_CFS_QUOTA_US), &quota_us.to_string())
}

pub(crate) fn clear_cpu_quota(cpu_dir: &Path) -> Result<()> {
    fsio::write(&cpu_dir.join(V1_CPU_CFS_QUOTA_US), "-1")
}

pub(crate) fn cpu_quota(cpu_dir: &Path) -> Result<CpuMax> {
    let qpath = cpu_dir.join(V1_CPU_CFS_QUOTA_US);
    let quota_us =
        parse::parse_v1_quota(&fsio::read(&qpath)?).map_err(|e| fsio::reattach(e, &qpath))?;
    let period_us = fsio::read_u64(&cpu_dir.join(V1_CPU_CFS_PERIOD_US))?;
    Ok(CpuMax {
        quota_us,
        period_us,
    })
}

/// cpuacct.usage is already in nanoseconds.
pub(crate) fn cpu_usage_ns(cpuacct_dir: &Path) -> Result<u64> {
    fsio::read_u64(&cpuacct_dir.join(V1_CPUACCT_USAGE))
}

/// v1 cpu.stat reports throttled_time in nanoseconds.
pub(crate) fn cpu_stat(cpu_dir: &Path) -> Result<CpuStat> {
    let path = cpu_dir.join(V1_CPU_STAT);
    let m = fsio::read_flat_keyed(&path)?;
    let what = path.display().to_string();
    Ok(CpuStat {
        nr_periods: parse::require_key(&m, "nr_periods", &what)?,
        nr_throttled: parse::require_key(&m, "nr_throttled", &what)?,
        throttled_ns: parse::require_key(&m, "throttled_time", &what)?,
    })
}

pub(crate) fn set_cpu_weight(cpu_dir: &Path, weight: u64) -> Result<()> {
    fsio::write(
        &cpu_dir.join(V1_CPU_SHARES),
        &parse::weight_to_shares(weight).to_string(),
    )
}

pub(crate) fn cpu_weight(cpu_dir: &Path) -> Result<u64> {
    Ok(parse::from_shares(fsio::read_u64(
        &cpu_dir.join(V1_CPU_SHARES),
    )?))
}

/// Set memory.limit_in_bytes and, when swap accounting exists,
/// memory.memsw.limit_in_bytes = limit + swap (`None` = unlimited swap).
///
/// The kernel insists that memsw >= limit after every single write, so the
/// order depends on whether the memory limit grows past the current memsw.
pub(crate) fn set_memory_limit(mem_dir: &Path, bytes: u64, swap: Option<u64>) -> Result<()> {
    let limit = mem_dir.join(V1_MEMORY_LIMIT);
    let memsw = mem_dir.join(V1_MEMORY_MEMSW_LIMIT);
    if !memsw.is_file() {
        return fsio::write(&limit, &bytes.to_string());
    }
    let new_memsw = match swap {
        Some(s) => bytes
            .checked_add(s)
            .ok_or_else(|| Error::InvalidValue {
                what: "memory+swap limit",
                value: format!("{bytes}+{s}"),
                reason: "overflows 64 bits".into(),
            })?
            .to_string(),
        None => "-1".to_string(),
    };
    let current_memsw = fsio::read_u64(&memsw)?;
    if bytes <= current_memsw {
        fsio::write(&limit, &bytes.to_string())?;
        fsio::write(&memsw, &new_memsw)
    } else {
        fsio::write(&memsw, &new_memsw)?;
        fsio::write(&limit, &bytes.to_string())
    }
}

pub(crate) fn clear_memory_limit(mem_dir: &Path) -> Result<()> {
    let memsw = mem_dir.join(V1_MEMORY_MEMSW_LIMIT);
    if memsw.is_file() {
        fsio::write(&memsw, "-1")?;
    }
    fsio::write(&mem_dir.join(V1_MEMORY_LIMIT), "-1")
}

pub(crate) fn memory_current(mem_dir: &Path) -> Result<u64> {
    fsio::read_u64(&mem_dir.join(V1_MEMORY_USAGE))
}

pub(crate) fn memory_peak(mem_dir: &Path) -> Result<Option<u64>> {
    fsio::read_u64(&mem_dir.join(V1_MEMORY_MAX_USAGE)).map(Some)
}

pub(crate) fn oom_kill_count(mem_dir: &Path) -> Result<u64> {
    fsio::flat_key(&mem_dir.join(V1_MEMORY_OOM_CONTROL), "oom_kill")
}

pub(crate) fn failcnt(mem_dir: &Path) -> Result<Option<u64>> {
    fsio::read_u64(&mem_dir.join(V1_MEMORY_FAILCNT)).map(Some)
}
