//! cpu: CFS bandwidth (quota per period), relative weight, usage.
//!
//! v1 splits this over two hierarchies: `cpu` (cpu.cfs_quota_us,
//! cpu.cfs_period_us, cpu.shares, cpu.stat) and `cpuacct` (cpuacct.usage, in
//! ns). v2 has cpu.max (`"$QUOTA $PERIOD"`), cpu.weight and one cpu.stat in µs.

use serde::{Deserialize, Serialize};

use crate::backend::{Dirs, Watch, V1, V2};
use crate::error::Result;
use crate::files::*;
use crate::fsio;
use crate::parse::{self, CpuMax};
use crate::watch::Resource as R;

/// CFS bandwidth throttling counters of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuStat {
    /// Enforcement periods that elapsed while the group had runnable tasks.
    pub nr_periods: u64,
    /// Periods in which the group used up its quota and was throttled.
    pub nr_throttled: u64,
    /// Total time the group's tasks spent throttled, nanoseconds.
    pub throttled_ns: u64,
}

/// The cpu controller's knobs, on v1 or v2.
pub(crate) trait Cpu: Sync {
    fn set_cpu_quota(&self, d: &Dirs, quota_us: u64, period_us: u64) -> Result<()>;
    fn clear_cpu_quota(&self, d: &Dirs) -> Result<()>;
    fn cpu_quota(&self, d: &Dirs) -> Result<CpuMax>;
    /// Total CPU time used, in nanoseconds.
    fn cpu_usage_ns(&self, d: &Dirs) -> Result<u64>;
    fn cpu_stat(&self, d: &Dirs) -> Result<CpuStat>;
    /// `weight` on the v2 scale 1..=10000.
    fn set_cpu_weight(&self, d: &Dirs, weight: u64) -> Result<()>;
    fn cpu_weight(&self, d: &Dirs) -> Result<u64>;
    fn cpu_watched(&self) -> &'static [Watch];
}

/// Read a cpu.stat; `throttled` is the key of the throttled time and
/// `to_ns` converts its unit to nanoseconds.
fn read_cpu_stat(path: &std::path::Path, throttled: &str, to_ns: u64) -> Result<CpuStat> {
    let m = fsio::read_flat_keyed(path)?;
    let what = path.display().to_string();
    Ok(CpuStat {
        nr_periods: parse::require_key(&m, "nr_periods", &what)?,
        nr_throttled: parse::require_key(&m, "nr_throttled", &what)?,
        throttled_ns: parse::require_key(&m, throttled, &what)?.saturating_mul(to_ns),
    })
}

const WEIGHT_MEANING_V1: &str = "relative CPU weight when CPUs are contended (default 1024)";
const WEIGHT_MEANING_V2: &str = "relative CPU weight when CPUs are contended (default 100)";

impl Cpu for V1 {
    /// Write period first, then quota (quota/period is checked against the
    /// parent's bandwidth on each write; the parent is unlimited here).
    fn set_cpu_quota(&self, d: &Dirs, quota_us: u64, period_us: u64) -> Result<()> {
        fsio::write(&d.file("cpu", V1_CPU_CFS_PERIOD_US)?, &period_us.to_string())?;
        fsio::write(&d.file("cpu", V1_CPU_CFS_QUOTA_US)?, &quota_us.to_string())
    }

    fn clear_cpu_quota(&self, d: &Dirs) -> Result<()> {
        fsio::write(&d.file("cpu", V1_CPU_CFS_QUOTA_US)?, "-1")
    }

    fn cpu_quota(&self, d: &Dirs) -> Result<CpuMax> {
        let qpath = d.file("cpu", V1_CPU_CFS_QUOTA_US)?;
        let quota_us = parse::parse_v1_quota(&fsio::read(&qpath)?).map_err(|e| fsio::reattach(e, &qpath))?;
        let period_us = fsio::read_u64(&d.file("cpu", V1_CPU_CFS_PERIOD_US)?)?;
        Ok(CpuMax { quota_us, period_us })
    }

    /// cpuacct.usage is already in nanoseconds.
    fn cpu_usage_ns(&self, d: &Dirs) -> Result<u64> {
        fsio::read_u64(&d.file("cpuacct", V1_CPUACCT_USAGE)?)
    }

    /// v1 cpu.stat reports throttled_time in nanoseconds.
    fn cpu_stat(&self, d: &Dirs) -> Result<CpuStat> {
        read_cpu_stat(&d.file("cpu", V1_CPU_STAT)?, "throttled_time", 1)
    }

    fn set_cpu_weight(&self, d: &Dirs, weight: u64) -> Result<()> {
        let shares = parse::weight_to_shares(weight);
        fsio::write(&d.file("cpu", V1_CPU_SHARES)?, &shares.to_string())
    }

    fn cpu_weight(&self, d: &Dirs) -> Result<u64> {
        Ok(parse::from_shares(fsio::read_u64(&d.file("cpu", V1_CPU_SHARES)?)?))
    }

    fn cpu_watched(&self) -> &'static [Watch] {
        #[rustfmt::skip]
        const W: &[Watch] = &[
            Watch::new(R::CpuQuota, "cpu", V1_CPU_CFS_QUOTA_US, "CPU time allowed per period, µs (-1 = unlimited)"),
            Watch::new(R::CpuQuota, "cpu", V1_CPU_CFS_PERIOD_US, "length of the accounting period, µs"),
            Watch::new(R::CpuStat, "cpu", V1_CPU_STAT, "periods, periods throttled, total throttled time (ns)"),
            Watch::new(R::CpuStat, "cpuacct", V1_CPUACCT_USAGE, "total CPU time used, ns"),
            Watch::new(R::CpuWeight, "cpu", V1_CPU_SHARES, WEIGHT_MEANING_V1),
        ];
        W
    }
}

impl Cpu for V2 {
    /// Write `"$QUOTA $PERIOD"` to cpu.max.
    fn set_cpu_quota(&self, d: &Dirs, quota_us: u64, period_us: u64) -> Result<()> {
        let v = parse::format_cpu_max(&CpuMax {
            quota_us: Some(quota_us),
            period_us,
        });
        fsio::write(&d.file("cpu", V2_CPU_MAX)?, &v)
    }

    /// Writing only `max` lifts the limit and keeps the period.
    fn clear_cpu_quota(&self, d: &Dirs) -> Result<()> {
        fsio::write(&d.file("cpu", V2_CPU_MAX)?, "max")
    }

    fn cpu_quota(&self, d: &Dirs) -> Result<CpuMax> {
        let path = d.file("cpu", V2_CPU_MAX)?;
        parse::parse_cpu_max(&fsio::read(&path)?).map_err(|e| fsio::reattach(e, &path))
    }

    /// cpu.stat `usage_usec` is present in every group (even without the cpu
    /// controller enabled); convert to nanoseconds.
    fn cpu_usage_ns(&self, d: &Dirs) -> Result<u64> {
        Ok(fsio::flat_key(&d.file("cpu", V2_CPU_STAT)?, "usage_usec")?.saturating_mul(1000))
    }

    fn cpu_stat(&self, d: &Dirs) -> Result<CpuStat> {
        read_cpu_stat(&d.file("cpu", V2_CPU_STAT)?, "throttled_usec", 1000)
    }

    fn set_cpu_weight(&self, d: &Dirs, weight: u64) -> Result<()> {
        fsio::write(&d.file("cpu", V2_CPU_WEIGHT)?, &weight.to_string())
    }

    fn cpu_weight(&self, d: &Dirs) -> Result<u64> {
        fsio::read_u64(&d.file("cpu", V2_CPU_WEIGHT)?)
    }

    fn cpu_watched(&self) -> &'static [Watch] {
        #[rustfmt::skip]
        const W: &[Watch] = &[
            Watch::new(R::CpuQuota, "cpu", V2_CPU_MAX, "\"quota period\" in µs (max = unlimited)"),
            Watch::new(R::CpuStat, "cpu", V2_CPU_STAT, "CPU time used and throttling counters, µs"),
            Watch::new(R::CpuWeight, "cpu", V2_CPU_WEIGHT, WEIGHT_MEANING_V2),
        ];
        W
    }
}
