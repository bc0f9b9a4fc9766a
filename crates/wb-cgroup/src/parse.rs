//! Pure parsers and conversions for cgroup file contents.
//!
//! cgroup files use a handful of tiny text formats: a single number, a number
//! or the word `max`, a "flat-keyed" list of `key value` lines (cpu.stat,
//! memory.events, pids.events), and a few one-offs like cpu.max's
//! `"$QUOTA $PERIOD"`. These functions only look at strings, so they are unit
//! tested on fixtures copied from real kernels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Parse a flat-keyed file: one `key value` pair per line, value an unsigned
/// integer. Blank lines are ignored; anything else is an error.
pub fn parse_flat_keyed(text: &str) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some(key), Some(value), None) = (it.next(), it.next(), it.next()) else {
            return Err(Error::parse("flat-keyed content", line, "expected `key value`"));
        };
        let value: u64 = value
            .parse()
            .map_err(|_| Error::parse("flat-keyed content", line, "value is not an unsigned integer"))?;
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

/// Fetch a key from a parsed flat-keyed map, with a parse error naming `what` if missing.
pub(crate) fn require_key(map: &BTreeMap<String, u64>, key: &str, what: &str) -> Result<u64> {
    map.get(key)
        .copied()
        .ok_or_else(|| Error::parse(what, &format!("{map:?}"), format!("missing key {key:?}")))
}

/// Parse a single unsigned decimal (surrounding whitespace allowed).
pub fn parse_u64(text: &str) -> Result<u64> {
    let t = text.trim();
    t.parse()
        .map_err(|_| Error::parse("number", t, "not an unsigned integer"))
}

/// Parse "a number or `max`": `max` → `None` (unlimited).
pub fn parse_max_or_u64(text: &str) -> Result<Option<u64>> {
    let t = text.trim();
    if t == "max" {
        Ok(None)
    } else {
        parse_u64(t).map(Some)
    }
}

/// Parse a v1 `cpu.cfs_quota_us` value: `-1` → `None` (unlimited).
pub fn parse_v1_quota(text: &str) -> Result<Option<u64>> {
    let t = text.trim();
    let v: i64 = t
        .parse()
        .map_err(|_| Error::parse("cpu.cfs_quota_us content", t, "not an integer"))?;
    match v {
        -1 => Ok(None),
        v if v > 0 => Ok(Some(v as u64)),
        _ => Err(Error::parse(
            "cpu.cfs_quota_us content",
            t,
            "expected -1 or a positive number",
        )),
    }
}

/// The CFS bandwidth setting of a group: at most `quota_us` of CPU time every
/// `period_us`. `quota_us == None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuMax {
    pub quota_us: Option<u64>,
    pub period_us: u64,
}

impl CpuMax {
    /// Fraction of one CPU the group may use, e.g. 0.2; `None` when unlimited.
    pub fn cpus(&self) -> Option<f64> {
        self.quota_us.map(|q| q as f64 / self.period_us as f64)
    }
}

/// Parse v2 `cpu.max`: `"max 100000"` or `"20000 100000"`.
pub fn parse_cpu_max(text: &str) -> Result<CpuMax> {
    let t = text.trim();
    let mut it = t.split_whitespace();
    let (Some(q), Some(p), None) = (it.next(), it.next(), it.next()) else {
        return Err(Error::parse("cpu.max content", t, "expected `$MAX $PERIOD`"));
    };
    let quota_us = if q == "max" {
        None
    } else {
        Some(
            q.parse()
                .map_err(|_| Error::parse("cpu.max content", t, "quota is neither a number nor max"))?,
        )
    };
    let period_us = p
        .parse()
        .map_err(|_| Error::parse("cpu.max content", t, "period is not a number"))?;
    Ok(CpuMax { quota_us, period_us })
}

/// Format a v2 `cpu.max` value.
pub fn format_cpu_max(m: &CpuMax) -> String {
    match m.quota_us {
        Some(q) => format!("{q} {}", m.period_us),
        None => format!("max {}", m.period_us),
    }
}

/// Parse `cgroup.procs`: one PID per line.
pub fn parse_procs(text: &str) -> Result<Vec<i32>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.parse::<i32>()
                .map_err(|_| Error::parse("cgroup.procs content", l, "not a pid"))
        })
        .collect()
}

/// One line of `/proc/PID/cgroup`: which group a process is in, per hierarchy.
///
/// v1 lines look like `4:cpu,cpuacct:/x` (one per mounted hierarchy, named
/// hierarchies as `name=systemd`); the v2 line is `0::/x` (empty controller
/// list). A hybrid host shows both kinds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupMembership {
    pub hierarchy_id: u32,
    /// Controllers bound to the hierarchy; empty for the v2 unified hierarchy.
    pub controllers: Vec<String>,
    /// Path relative to the hierarchy's root (as seen from the reader's cgroup namespace).
    pub path: String,
}

impl CgroupMembership {
    /// True for the cgroup v2 line (`0::/path`).
    pub fn is_unified(&self) -> bool {
        self.hierarchy_id == 0 && self.controllers.is_empty()
    }
}

/// Parse the content of `/proc/PID/cgroup`.
pub fn parse_proc_cgroup(text: &str) -> Result<Vec<CgroupMembership>> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        // The path may itself contain ':', so split only twice.
        let mut it = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
            return Err(Error::parse(
                "/proc/PID/cgroup line",
                line,
                "expected `id:controllers:path`",
            ));
        };
        let hierarchy_id = id
            .parse()
            .map_err(|_| Error::parse("/proc/PID/cgroup line", line, "hierarchy id is not a number"))?;
        let controllers = if ctrls.is_empty() {
            Vec::new()
        } else {
            ctrls.split(',').map(str::to_string).collect()
        };
        out.push(CgroupMembership {
            hierarchy_id,
            controllers,
            path: path.to_string(),
        });
    }
    Ok(out)
}

/// Undo mountinfo's escapes: the kernel writes space, tab, newline and
/// backslash in paths as `\ooo` octal (`/run/with\040space`).
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse a human size: plain bytes (`1048576`) or a binary-unit suffix
/// `k`/`K`, `m`/`M`, `g`/`G`, `t`/`T`, optionally followed by `B` or `iB`
/// (`64M`, `1G`, `512k`, `64MiB`). Zero and garbage are errors.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let err = |reason: &str| Error::InvalidValue {
        what: "size",
        value: format!("{s:?}"),
        reason: reason.to_string(),
    };
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(err("expected a number like 64M, 1G, 512k or 1048576"));
    }
    let n: u64 = num.parse().map_err(|_| err("number too large"))?;
    let shift = match suffix {
        "" | "b" | "B" => 0,
        "k" | "K" | "kB" | "KB" | "KiB" | "kiB" => 10,
        "m" | "M" | "MB" | "MiB" | "mB" => 20,
        "g" | "G" | "GB" | "GiB" | "gB" => 30,
        "t" | "T" | "TB" | "TiB" | "tB" => 40,
        _ => return Err(err("unknown unit (use k, M, G or T)")),
    };
    let bytes = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| err("size overflows 64 bits"))?;
    if bytes == 0 {
        return Err(err("size must be greater than zero"));
    }
    Ok(bytes)
}

/// Convert a v2 `cpu.weight` (1..=10000, default 100) to v1 `cpu.shares`
/// (2..=262144) with the formula used by runc/crun/systemd:
/// `shares = 2 + ((weight - 1) * 262142) / 9999`. Out-of-range weights are clamped.
pub fn weight_to_shares(weight: u64) -> u64 {
    let w = weight.clamp(1, 10_000);
    2 + ((w - 1) * 262_142) / 9_999
}

/// Inverse of [`weight_to_shares`]: `weight = 1 + round((shares - 2) * 9999 / 262142)`.
///
/// Rounding (rather than runc's truncating `1 + ((shares - 2) * 9999) / 262142`)
/// makes `from_shares(weight_to_shares(w)) == w` for every valid weight, so a
/// learner who sets weight 100 reads back 100. The v1 default of 1024 shares
/// maps to 40 (runc says 39). Out-of-range shares are clamped.
pub fn from_shares(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9_999 + 262_142 / 2) / 262_142
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_v1_cpu_stat() {
        let m =
            parse_flat_keyed("nr_periods 12\nnr_throttled 9\nthrottled_time 812345678\nnr_bursts 0\nburst_time 0\n")
                .unwrap();
        assert_eq!(m["nr_periods"], 12);
        assert_eq!(m["nr_throttled"], 9);
        assert_eq!(m["throttled_time"], 812_345_678);
        assert_eq!(m.len(), 5);
    }

    #[test]
    fn flat_keyed_v2_cpu_stat_and_events() {
        let m = parse_flat_keyed(
            "usage_usec 53211\nuser_usec 40110\nsystem_usec 13101\ncore_sched.force_idle_usec 0\n\
             nr_periods 10\nnr_throttled 8\nthrottled_usec 640000\nnr_bursts 0\nburst_usec 0\n",
        )
        .unwrap();
        assert_eq!(m["usage_usec"], 53211);
        assert_eq!(m["throttled_usec"], 640_000);
        let ev = parse_flat_keyed("low 0\nhigh 0\nmax 17\noom 1\noom_kill 1\noom_group_kill 0\n").unwrap();
        assert_eq!(ev["oom_kill"], 1);
        assert_eq!(ev["max"], 17);
        assert_eq!(parse_flat_keyed("max 3\n").unwrap()["max"], 3);
        let oc = parse_flat_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").unwrap();
        assert_eq!(oc["oom_kill"], 2);
        assert!(parse_flat_keyed("").unwrap().is_empty());
    }

    #[test]
    fn flat_keyed_rejects_garbage() {
        assert!(parse_flat_keyed("nr_periods\n").is_err());
        assert!(parse_flat_keyed("nr_periods x\n").is_err());
        assert!(parse_flat_keyed("a 1 2\n").is_err());
        assert!(parse_flat_keyed("a -1\n").is_err());
    }

    #[test]
    fn cpu_max_roundtrip() {
        let m = parse_cpu_max("max 100000\n").unwrap();
        assert_eq!(
            m,
            CpuMax {
                quota_us: None,
                period_us: 100_000
            }
        );
        assert_eq!(m.cpus(), None);
        let m = parse_cpu_max("20000 100000").unwrap();
        assert_eq!(m.quota_us, Some(20_000));
        assert_eq!(m.cpus(), Some(0.2));
        assert_eq!(format_cpu_max(&m), "20000 100000");
        assert_eq!(
            format_cpu_max(&CpuMax {
                quota_us: None,
                period_us: 50_000
            }),
            "max 50000"
        );
        assert!(parse_cpu_max("max").is_err());
        assert!(parse_cpu_max("x 100000").is_err());
        assert!(parse_cpu_max("1 2 3").is_err());
    }

    #[test]
    fn numbers_and_max() {
        assert_eq!(parse_u64(" 42\n").unwrap(), 42);
        assert!(parse_u64("-1").is_err());
        assert_eq!(parse_max_or_u64("max\n").unwrap(), None);
        assert_eq!(parse_max_or_u64("33554432\n").unwrap(), Some(33_554_432));
        assert_eq!(parse_v1_quota("-1\n").unwrap(), None);
        assert_eq!(parse_v1_quota("20000\n").unwrap(), Some(20_000));
        assert!(parse_v1_quota("0").is_err());
        assert_eq!(parse_procs("12\n345\n\n").unwrap(), vec![12, 345]);
        assert!(parse_procs("").unwrap().is_empty());
        assert!(parse_procs("x\n").is_err());
    }

    #[test]
    fn proc_cgroup_v1_v2_hybrid() {
        let v1 = parse_proc_cgroup("4:cpu,cpuacct:/x\n2:name=systemd:/user.slice\n").unwrap();
        assert_eq!(
            v1[0],
            CgroupMembership {
                hierarchy_id: 4,
                controllers: vec!["cpu".into(), "cpuacct".into()],
                path: "/x".into()
            }
        );
        assert_eq!(v1[1].controllers, vec!["name=systemd".to_string()]);
        assert!(!v1[0].is_unified());

        let v2 = parse_proc_cgroup("0::/workbench/demo\n").unwrap();
        assert_eq!(v2.len(), 1);
        assert!(v2[0].is_unified());
        assert!(v2[0].controllers.is_empty());
        assert_eq!(v2[0].path, "/workbench/demo");

        // A hybrid host, as on the workbench development VM.
        let hybrid = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/d289\n1:cpu:/\n0::/\n";
        let h = parse_proc_cgroup(hybrid).unwrap();
        assert_eq!(h.len(), 5);
        assert_eq!(h[2].controllers, vec!["memory".to_string()]);
        assert_eq!(h[2].path, "/process_api/d289");
        assert!(h[4].is_unified());

        // Paths may contain ':'.
        let c = parse_proc_cgroup("0::/a:b\n").unwrap();
        assert_eq!(c[0].path, "/a:b");

        assert!(parse_proc_cgroup("garbage\n").is_err());
        assert!(parse_proc_cgroup("x:cpu:/\n").is_err());
    }

    #[test]
    fn unescapes_mountinfo_octal() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/tail\\04"), "/tail\\04");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("512K").unwrap(), 512 << 10);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size(" 32m ").unwrap(), 32 << 20);
        for bad in ["abc", "0", "0M", "", "M", "12X", "-5", "1.5G", "99999999999999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_size("abc").unwrap_err().to_string().contains("\"abc\""));
    }

    #[test]
    fn weight_shares_conversion() {
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
        assert_eq!(weight_to_shares(100), 2597);
        assert_eq!(from_shares(2), 1);
        assert_eq!(from_shares(262_144), 10_000);
        assert_eq!(from_shares(1024), 40);
        assert_eq!(from_shares(2597), 100);
        assert_eq!(from_shares(0), 1, "clamped");
        assert_eq!(from_shares(1 << 30), 10_000, "clamped");
        // Exact round trip over the whole weight range.
        for w in 1..=10_000 {
            assert_eq!(from_shares(weight_to_shares(w)), w);
        }
    }
}
