//! What the host must offer for the options given (cgroup controllers, CFS
//! bandwidth, nft, veth and bridge links), checked before anything is created:
//! a missing prerequisite is bad input (exit 2), not a failed setup.

use super::args::RunSpec;
use super::spec::NetMode;
use crate::error::UsageError;

/// Host prerequisites of the options, checked before anything is created.
pub(super) fn preflight_host(spec: &RunSpec) -> anyhow::Result<()> {
    if spec.memory.is_some() || spec.cpus.is_some() {
        let layout =
            wb_cgroup::detect_system().map_err(|e| UsageError(format!("--memory/--cpus need cgroups: {e}")))?;
        let summary = wb_cgroup::layout_summary(&layout);
        for (flag, wanted, ctrl) in [
            ("--memory", spec.memory.is_some(), "memory"),
            ("--cpus", spec.cpus.is_some(), "cpu"),
        ] {
            if let (true, Some(Err(why))) = (wanted, summary.workbench.get(ctrl)) {
                return Err(UsageError(format!("{flag} needs the {ctrl} cgroup controller: {why}")).into());
            }
        }
        if spec.cpus.is_some() && summary.cpu_bandwidth == Some(false) {
            return Err(UsageError(
                "--cpus needs CFS bandwidth control (CONFIG_CFS_BANDWIDTH), which this kernel lacks".into(),
            )
            .into());
        }
        let wanted: Vec<wb_cgroup::Controller> = [
            (spec.memory.is_some(), wb_cgroup::Controller::Memory),
            (spec.cpus.is_some(), wb_cgroup::Controller::Cpu),
        ]
        .into_iter()
        .filter(|(w, _)| *w)
        .map(|(_, c)| c)
        .collect();
        crate::host::features::require_writable_cgroups(&layout, &wanted).map_err(|e| UsageError(format!("{e:#}")))?;
    }
    if spec.net == NetMode::Bridge && crate::host::features::which("nft").is_none() {
        return Err(UsageError(
            "--net bridge needs nft (the nftables package): run scripts/setup or apt-get install nftables".into(),
        )
        .into());
    }
    if spec.net == NetMode::Bridge {
        crate::host::features::require_link_kinds(&["veth", "bridge"])
            .map_err(|e| UsageError(format!("--net bridge: {e:#}")))?;
    }
    Ok(())
}
