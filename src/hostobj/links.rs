//! Network links and named network namespaces that workbench created, removed by name.
//!
//! A veth pair or bridge lives in a network namespace until deleted; a named
//! netns is a bind mount of `/proc/PID/ns/net` under `/run/netns` that keeps
//! the namespace alive with no process in it. Only `wb…` names are touched.

/// Delete a link workbench created (names start with the `wb` prefix).
pub fn delete_link(name: &str) -> Result<(), String> {
    if !name.starts_with(super::PREFIX) {
        return Err(format!("refusing to delete link {name}: not a workbench name"));
    }
    wb_net::delete_link(name).map(|_| ()).map_err(|e| e.to_string())
}

/// Delete a named network namespace workbench created (`ip netns del NAME`).
pub fn delete_netns(name: &str) -> Result<(), String> {
    if !name.starts_with(super::PREFIX) || name.contains('/') || name.contains("..") {
        return Err(format!("refusing to delete netns {name}: not a workbench name"));
    }
    let path = std::path::Path::new("/run/netns").join(name);
    if !path.exists() {
        return Ok(());
    }
    let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
    std::fs::remove_file(&path).map_err(|e| format!("rm {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_foreign_names() {
        assert!(delete_link("eth0").is_err());
        assert!(delete_netns("wb/../x").is_err());
    }
}
