//! cpuacct: how the CPU time of a group splits into user mode and kernel.
//!
//! The kernel charges every tick a task runs to its group, as user time
//! (its own code) or system time (system calls, page faults, in the
//! kernel). v1 has the `cpuacct` hierarchy: cpuacct.stat `user`/`system` in
//! USER_HZ ticks next to cpuacct.usage in ns. v2 folded it into the cpu
//! controller's cpu.stat (`user_usec`, `system_usec`), present in every group
//! even when the cpu controller is not enabled. It is served here by the
//! group's cpu route ([`crate::Controller::Cpu`], whose v1 companion
//! hierarchy is cpuacct).

use serde::{Deserialize, Serialize};

use crate::backend::{Dirs, Watch, V1, V2};
use crate::error::Result;
use crate::files::*;
use crate::fsio;
use crate::parse;
use crate::watch::Resource as R;

/// User and system CPU time of a group, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuTimes {
    pub user_ns: u64,
    pub system_ns: u64,
}

/// The accounting knobs (read-only), on v1 or v2.
pub(crate) trait CpuAcct: Sync {
    fn cpu_times(&self, d: &Dirs) -> Result<CpuTimes>;
    fn cpuacct_watched(&self) -> &'static [Watch];
}

/// USER_HZ, the unit of v1 cpuacct.stat (and of /proc/PID/stat times).
pub(crate) fn user_hz() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

/// cpuacct.stat's flat keys in ticks of `hz` → nanoseconds.
pub(crate) fn v1_times(m: &std::collections::BTreeMap<String, u64>, hz: u64, what: &str) -> Result<CpuTimes> {
    let ns = |ticks: u64| ticks.saturating_mul(1_000_000_000) / hz.max(1);
    Ok(CpuTimes {
        user_ns: ns(parse::require_key(m, "user", what)?),
        system_ns: ns(parse::require_key(m, "system", what)?),
    })
}

impl CpuAcct for V1 {
    fn cpu_times(&self, d: &Dirs) -> Result<CpuTimes> {
        let p = d.file("cpuacct", V1_CPUACCT_STAT)?;
        v1_times(&fsio::read_flat_keyed(&p)?, user_hz(), &p.display().to_string())
    }

    fn cpuacct_watched(&self) -> &'static [Watch] {
        #[rustfmt::skip]
        const W: &[Watch] = &[
            Watch::new(R::CpuTimes, "cpuacct", V1_CPUACCT_STAT, "user and system CPU time, USER_HZ ticks (1/100 s)"),
            Watch::new(R::CpuTimes, "cpuacct", V1_CPUACCT_USAGE, "total CPU time used, ns"),
        ];
        W
    }
}

impl CpuAcct for V2 {
    fn cpu_times(&self, d: &Dirs) -> Result<CpuTimes> {
        let p = d.file("cpu", V2_CPU_STAT)?;
        let m = fsio::read_flat_keyed(&p)?;
        let what = p.display().to_string();
        Ok(CpuTimes {
            user_ns: parse::require_key(&m, "user_usec", &what)?.saturating_mul(1000),
            system_ns: parse::require_key(&m, "system_usec", &what)?.saturating_mul(1000),
        })
    }

    fn cpuacct_watched(&self) -> &'static [Watch] {
        #[rustfmt::skip]
        const W: &[Watch] = &[
            Watch::new(R::CpuTimes, "cpu", V2_CPU_STAT, "usage_usec = user_usec + system_usec (and throttling), µs"),
        ];
        W
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_become_nanoseconds() {
        let m = crate::parse::parse_flat_keyed("user 150\nsystem 25\n").unwrap();
        let t = v1_times(&m, 100, "cpuacct.stat").unwrap();
        assert_eq!(
            t,
            CpuTimes {
                user_ns: 1_500_000_000,
                system_ns: 250_000_000
            }
        );
        let m = crate::parse::parse_flat_keyed("user 1\n").unwrap();
        assert!(v1_times(&m, 100, "cpuacct.stat").is_err(), "system is missing");
        assert!(user_hz() > 0);
    }
}
