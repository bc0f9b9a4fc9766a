//! Facts about processes read from `/proc`: start times (to tell a PID from a
//! reused one), `NSpid` (the PID of a process in every nested PID namespace),
//! and liveness checks.

use std::path::Path;

/// The start time of a process in clock ticks since boot (field 22 of `/proc/PID/stat`).
/// Together with the PID it identifies one process even after PIDs are reused.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// Field `n` (1-based, as in proc(5)) of a `/proc/PID/stat` line, `n` ≥ 3: the
/// command name in field 2 may contain spaces and parentheses, so fields are
/// counted after its last `)`. The one reader of stat lines.
fn stat_field(stat: &str, n: usize) -> Option<&str> {
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(n.checked_sub(3)?)
}

/// Pure parser for [`start_time`]: field 22.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    stat_field(stat, 22)?.parse().ok()
}

/// The scheduler state of a stat line (field 3): 'R' running or runnable,
/// 'S' sleeping, 'Z' zombie...
pub fn parse_state(stat: &str) -> Option<char> {
    stat_field(stat, 3)?.chars().next()
}

/// Is the process `pid` alive and the same one that started at `start`?
/// A zombie is not alive: it has exited and released its namespaces, memory
/// and files, and only waits for its parent to read its status — which may
/// take a while when the parent is not workbench (an orphan waits for init).
pub fn is_same_process(pid: i32, start: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| parse_start_time(&stat) == Some(start) && !parse_exited(&stat))
}

/// Pure parser: does the state field of `/proc/PID/stat` (after the command
/// name's last `)`) say the process has exited — Z (zombie) or X (dead)?
pub fn parse_exited(stat: &str) -> bool {
    matches!(parse_state(stat), Some('Z' | 'X'))
}

/// Is process `pid` there and not exited (a zombie or dead entry)?
pub fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !parse_exited(&stat))
}

/// The `NSpid:` line of `/proc/PID/status`: the PID in each namespace, outermost first.
pub fn ns_pids(proc_root: &Path, pid: i32) -> Option<Vec<i32>> {
    let status = std::fs::read_to_string(proc_root.join(pid.to_string()).join("status")).ok()?;
    parse_ns_pids(&status)
}

pub fn parse_ns_pids(status: &str) -> Option<Vec<i32>> {
    parse_status_field(status, "NSpid")?
        .split_whitespace()
        .map(|s| s.parse().ok())
        .collect()
}

/// CPU time used by all threads of a process so far, in nanoseconds: `utime`
/// + `stime` of `/proc/PID/stat` (what `top` turns into %CPU).
pub fn cpu_time_ns(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_cpu_ticks(&stat)?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|h| *h > 0)
        .unwrap_or(100) as u64;
    Some(ticks.saturating_mul(1_000_000_000) / hz)
}

/// Pure parser for [`cpu_time_ns`]: `utime + stime` (fields 14 and 15) in clock ticks.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let utime: u64 = stat_field(stat, 14)?.parse().ok()?;
    let stime: u64 = stat_field(stat, 15)?.parse().ok()?;
    Some(utime + stime)
}

/// One field of `/proc/PID/status`, e.g. `Threads` or `Cpus_allowed_list`.
pub fn status_field(pid: i32, key: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_field(&status, key)
}

/// Pure parser for [`status_field`]: the value after `key:`, trimmed. The one
/// reader of status text.
pub fn parse_status_field(status: &str, key: &str) -> Option<String> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == key).then(|| v.trim().to_string())
    })
}

/// Our own PID as the host sees it.
pub fn self_pid() -> i32 {
    std::process::id() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_survives_odd_command_names() {
        let stat = "1234 (we (ird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn ns_pids_lists_outermost_first() {
        let status = "Name:\tsh\nNSpid:\t4711\t1\nNSpgid:\t4711\t1\n";
        assert_eq!(parse_ns_pids(status), Some(vec![4711, 1]));
        assert_eq!(parse_ns_pids("Name:\tsh\n"), None);
    }

    #[test]
    fn cpu_ticks_are_utime_plus_stime() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        let stat = "4711 (work bench) R 1 4711 4711 0 -1 4194304 90 0 0 0 150 50 0 0 20 0 3 0 123 4096 100";
        assert_eq!(parse_cpu_ticks(stat), Some(200));
        assert_eq!(parse_cpu_ticks("4711 (x) R 1"), None);
    }

    #[test]
    fn status_fields() {
        let status = "Name:\tworkbench\nThreads:\t3\nCpus_allowed_list:\t1\n";
        assert_eq!(parse_status_field(status, "Threads").as_deref(), Some("3"));
        assert_eq!(parse_status_field(status, "Cpus_allowed_list").as_deref(), Some("1"));
        assert_eq!(parse_status_field(status, "Cpus_allowed"), None);
    }

    #[test]
    fn own_process_is_same() {
        let me = self_pid();
        let st = start_time(me).expect("own start time");
        assert!(is_same_process(me, st));
        assert!(!is_same_process(me, st + 1));
    }

    #[test]
    fn zombies_and_dead_entries_have_exited() {
        assert!(parse_exited(
            "4711 (sh) Z 1 4711 4711 0 -1 4227084 0 0 0 0 0 0 0 0 20 0 1 0 123 0 0"
        ));
        assert!(parse_exited("4711 (a) b) X 1"));
        assert_eq!(parse_state("4711 (a) b) R 1"), Some('R'));
        assert_eq!(parse_state("garbage"), None);
        assert!(!parse_exited("4711 (Z) S 1 4711"));
        assert!(!parse_exited("4711 (x) R 1"));
        assert!(!parse_exited("garbage"));
    }
}
