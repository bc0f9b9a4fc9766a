//! Names of the cgroup interface files workbench reads and writes.
//!
//! A cgroup is a directory; the kernel populates it with small text files,
//! one per knob or statistic, and every operation is a `read(2)` or a
//! `write(2)` on one of them. Keeping the names here (with the format of what
//! they contain) means the rest of the crate, and the lessons above it, never
//! spell a cgroup file name by hand.

// ---- core files (both versions) -------------------------------------------

/// Process IDs (thread-group leaders) in the group, one decimal per line.
/// Writing one PID moves that whole process into the group (one PID per write).
pub const CGROUP_PROCS: &str = "cgroup.procs";

// ---- core files (v2 only) --------------------------------------------------

/// Space-separated controllers available to this group, e.g. `cpu memory pids`.
/// Read-only; it mirrors the parent's `cgroup.subtree_control`.
pub const CGROUP_CONTROLLERS: &str = "cgroup.controllers";
/// Space-separated controllers enabled for the *children* of this group.
/// Written as `+cpu +memory -pids`; a controller can only be enabled here if
/// it is listed in this group's own `cgroup.controllers`.
pub const CGROUP_SUBTREE_CONTROL: &str = "cgroup.subtree_control";
/// Write-only (kernel >= 5.14): writing `1` SIGKILLs every process in the
/// group and its descendants.
pub const CGROUP_KILL: &str = "cgroup.kill";

// ---- cpu (v1) -------------------------------------------------------------

/// CFS bandwidth quota in microseconds per period, decimal; `-1` = unlimited.
pub const V1_CPU_CFS_QUOTA_US: &str = "cpu.cfs_quota_us";
/// CFS bandwidth period in microseconds, decimal (1000..=1000000, default 100000).
pub const V1_CPU_CFS_PERIOD_US: &str = "cpu.cfs_period_us";
/// Relative CPU weight, decimal 2..=262144 (default 1024).
pub const V1_CPU_SHARES: &str = "cpu.shares";
/// Flat-keyed: `nr_periods N`, `nr_throttled N`, `throttled_time NS` (nanoseconds),
/// and on newer kernels `nr_bursts N`, `burst_time NS`.
pub const V1_CPU_STAT: &str = "cpu.stat";

// ---- cpuacct (v1) ---------------------------------------------------------

/// Total CPU time consumed by the group, decimal nanoseconds.
pub const V1_CPUACCT_USAGE: &str = "cpuacct.usage";
/// Flat-keyed: `user N`, `system N`: CPU time the group spent in user mode and
/// in the kernel, in USER_HZ ticks (`getconf CLK_TCK`, 100 a second).
pub const V1_CPUACCT_STAT: &str = "cpuacct.stat";

// ---- cpu (v2) -------------------------------------------------------------

/// `"$MAX $PERIOD"` in microseconds, e.g. `max 100000` (unlimited) or
/// `20000 100000` (20% of one CPU). Writing only `max` keeps the period.
pub const V2_CPU_MAX: &str = "cpu.max";
/// Relative weight, decimal 1..=10000 (default 100).
pub const V2_CPU_WEIGHT: &str = "cpu.weight";
/// Flat-keyed, microseconds: `usage_usec`, `user_usec`, `system_usec`, and with
/// the cpu controller enabled `nr_periods`, `nr_throttled`, `throttled_usec`,
/// `nr_bursts`, `burst_usec`.
pub const V2_CPU_STAT: &str = "cpu.stat";

// ---- memory (v1) ----------------------------------------------------------

/// Hard limit in bytes (decimal; writes accept suffixes like `32M`, and `-1` = unlimited).
pub const V1_MEMORY_LIMIT: &str = "memory.limit_in_bytes";
/// Limit on memory+swap in bytes; must always be >= `memory.limit_in_bytes`.
/// Only present when swap accounting is enabled.
pub const V1_MEMORY_MEMSW_LIMIT: &str = "memory.memsw.limit_in_bytes";
/// Current usage in bytes, decimal.
pub const V1_MEMORY_USAGE: &str = "memory.usage_in_bytes";
/// Peak usage in bytes since creation (or the last reset), decimal.
pub const V1_MEMORY_MAX_USAGE: &str = "memory.max_usage_in_bytes";
/// Number of times usage hit the limit, decimal. Note: with memsw limits set
/// the charge fails on the memsw counter, so this one can stay at 0.
pub const V1_MEMORY_FAILCNT: &str = "memory.failcnt";
/// Flat-keyed: `oom_kill_disable 0|1`, `under_oom 0|1`, `oom_kill N` (kernel >= 4.13).
pub const V1_MEMORY_OOM_CONTROL: &str = "memory.oom_control";

// ---- memory (v2) ----------------------------------------------------------

/// Hard limit in bytes, decimal or `max`.
pub const V2_MEMORY_MAX: &str = "memory.max";
/// Swap limit in bytes, decimal or `max`. Only present with swap accounting.
pub const V2_MEMORY_SWAP_MAX: &str = "memory.swap.max";
/// Current usage in bytes (memory + kernel memory charged to the group).
pub const V2_MEMORY_CURRENT: &str = "memory.current";
/// Peak usage in bytes (kernel >= 5.19).
pub const V2_MEMORY_PEAK: &str = "memory.peak";
/// Flat-keyed counters: `low`, `high`, `max` (times usage was about to exceed
/// memory.max), `oom`, `oom_kill`, `oom_group_kill`. Hierarchical by default.
pub const V2_MEMORY_EVENTS: &str = "memory.events";

// ---- pids (both versions) -------------------------------------------------

/// Maximum number of tasks (threads and processes), decimal or `max`.
pub const PIDS_MAX: &str = "pids.max";
/// Current number of tasks in the group, decimal.
pub const PIDS_CURRENT: &str = "pids.current";
/// Flat-keyed: `max N` = number of forks refused because of a pids.max limit.
pub const PIDS_EVENTS: &str = "pids.events";

// ---- cpuset (v1) ----------------------------------------------------------

/// CPUs the group's tasks may run on, a list like `0-1,3`. Empty in a new
/// group: it must be filled (and `cpuset.mems` too) before a task can join.
pub const V1_CPUSET_CPUS: &str = "cpuset.cpus";
/// Memory nodes the group's tasks may allocate from, a list like `0`.
pub const V1_CPUSET_MEMS: &str = "cpuset.mems";
/// The CPUs the group really gets (its cpus within its parent's), a list.
pub const V1_CPUSET_EFFECTIVE_CPUS: &str = "cpuset.effective_cpus";

// ---- cpuset (v2) ----------------------------------------------------------

/// CPUs asked for, a list; empty = the parent's.
pub const V2_CPUSET_CPUS: &str = "cpuset.cpus";
/// Memory nodes asked for, a list; empty = the parent's.
pub const V2_CPUSET_MEMS: &str = "cpuset.mems";
/// The CPUs the group really gets, a list.
pub const V2_CPUSET_CPUS_EFFECTIVE: &str = "cpuset.cpus.effective";

// ---- freezer (v1) ---------------------------------------------------------

/// `THAWED`, `FREEZING` or `FROZEN`; writing `FROZEN` or `THAWED` asks for it.
/// The root group has no such file.
pub const V1_FREEZER_STATE: &str = "freezer.state";

// ---- freezer (v2: core files of every non-root group, kernel >= 5.2) -----

/// `0` or `1`: writing `1` asks the kernel to freeze the group and its descendants.
pub const CGROUP_FREEZE: &str = "cgroup.freeze";
/// Flat-keyed: `populated 0|1`, `frozen 0|1` (1 once every task is frozen).
pub const CGROUP_EVENTS: &str = "cgroup.events";

// ---- devices (v1) ---------------------------------------------------------

/// Write-only: a rule `TYPE MAJOR:MINOR ACCESS` (`c 1:3 w`, `a *:* rwm`) to allow.
pub const V1_DEVICES_ALLOW: &str = "devices.allow";
/// Write-only: a rule of the same form to deny.
pub const V1_DEVICES_DENY: &str = "devices.deny";
/// The group's rules, one a line; `a *:* rwm` = everything allowed.
pub const V1_DEVICES_LIST: &str = "devices.list";
// (v2 has no devices files: a BPF_PROG_TYPE_CGROUP_DEVICE program attached
// to the group's directory decides; see controllers/devices.rs.)
