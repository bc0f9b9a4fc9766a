//! Links, addresses and routes of a process's network namespace, for snapshots.
//!
//! A network namespace has its own interfaces, addresses and routing table.
//! The view is read over netlink from inside the namespace (see the `wb-net`
//! crate) and turned into key → description maps that diff like the rest.

use crate::observe::NetState;

/// The network view of the namespace process `pid` is in.
pub fn net_state_of(pid: i32) -> anyhow::Result<NetState> {
    anyhow::bail!("network capture of pid {pid}: not available in this build")
}

/// Delete a link workbench created (names start with the `wb` prefix).
pub fn delete_link(name: &str) -> Result<(), String> {
    if !name.starts_with(crate::state::PREFIX) {
        return Err(format!("refusing to delete link {name}: not a workbench name"));
    }
    Err(format!("delete link {name}: network support not available in this build"))
}

/// Delete a named network namespace workbench created.
pub fn delete_netns(name: &str) -> Result<(), String> {
    if !name.starts_with(crate::state::PREFIX) {
        return Err(format!("refusing to delete netns {name}: not a workbench name"));
    }
    Err(format!("delete netns {name}: network support not available in this build"))
}
