//! The run's cgroup: `--memory` and `--cpus` become a group under
//! `workbench/` in each controller needed (v1 or v2 alike through wb-cgroup),
//! recorded in the state file before it exists.

use super::args::RunSpec;
use super::verbose::show;
use crate::state::{self, Resource};

/// The cgroup of a run, recorded path by path before it exists.
pub(super) fn make_cgroup(spec: &RunSpec, name: &str, verbose: bool) -> anyhow::Result<Option<wb_cgroup::Group>> {
    use wb_cgroup::Controller;
    let mut ctrls = Vec::new();
    if spec.memory.is_some() {
        ctrls.push(Controller::Memory);
    }
    if spec.cpus.is_some() {
        ctrls.push(Controller::Cpu);
    }
    if ctrls.is_empty() {
        return Ok(None);
    }
    let layout = wb_cgroup::detect_system()?;
    // Every directory of the group is in the state file before it exists.
    let planned = wb_cgroup::planned_paths(&layout, name, &ctrls)?;
    let records = planned.iter().map(|p| Resource::Cgroup { path: p.clone() }).collect();
    let group = state::record_and_create(records, || -> anyhow::Result<_> {
        Ok(wb_cgroup::create(&layout, name, &ctrls)?)
    })?;
    let used = group.paths();
    for p in &used {
        show(
            verbose,
            "host",
            &format!("mkdir {}", p.display()),
            &format!("mkdir({:?})", p.display().to_string()),
        );
    }
    if let Some(bytes) = spec.memory {
        group.set_memory_limit(bytes, Some(0))?;
        show(
            verbose,
            "host",
            &format!("echo {bytes} > memory limit (and memory+swap limit, so no swap) of {name}"),
            "write(2) to memory.limit_in_bytes / memory.max",
        );
    }
    if let Some(c) = spec.cpus {
        group.set_cpu_quota(c.quota_us, c.period_us)?;
        show(
            verbose,
            "host",
            &format!("echo {} {} > cpu quota/period of {name}", c.quota_us, c.period_us),
            "write(2) to cpu.cfs_quota_us / cpu.max",
        );
    }
    Ok(Some(group))
}
