//! The record a run keeps of each host object it creates: what to remove,
//! and how to find it again after a crash.
//!
//! One list for every kind, firewall objects included: [`super::firewall`]
//! says which of them a rule needs ([`super::firewall::Firewall::objects_for`]),
//! the ledger in [`crate::state`] records them and teardown removes them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A host object created by a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    /// A directory under the run root, removed recursively (after unmounting anything below it).
    Dir { path: PathBuf },
    /// A mount in the host's mount namespace.
    Mount { target: PathBuf },
    /// A process we started (PID plus start time, so a reused PID is never killed).
    Process { pid: i32, start_time: u64 },
    /// A cgroup directory under a workbench-owned parent.
    Cgroup { path: PathBuf },
    /// A network link (veth or bridge) in the host's network namespace.
    Link { name: String },
    /// A named network namespace (`/run/netns/NAME`).
    Netns { name: String },
    /// An nftables table of our own (`nft delete table FAMILY NAME` removes it with all its rules).
    NftTable { family: String, name: String },
    /// An iptables rule tagged with a `wb…` comment, deleted by its exact specification.
    IptablesRule {
        table: String,
        chain: String,
        spec: Vec<String>,
    },
    /// A built-in chain (and maybe its table) that iptables-nft created in nft
    /// for our rules; deleted once no rule is left in it.
    XtablesChain {
        table: String,
        chain: String,
        drop_table: bool,
    },
    /// A kernel parameter (`/proc/sys/KEY`) we changed: its old value, and the
    /// old values of the keys the kernel changed along with it, put back in that order.
    Sysctl {
        key: String,
        previous: String,
        #[serde(default)]
        side_effects: Vec<(String, String)>,
    },
    /// A lab subnet this run holds, so concurrent runs pick different ones
    /// (see [`crate::state::reserve`]). Nothing on the host to remove: the reservation
    /// ends with the run's state file, or when its owner dies.
    Subnet { cidr: String },
    /// A host TCP port this run maps into its container (nat-port-map), so
    /// concurrent runs map different ones: like a subnet, a reservation only.
    HostPort { port: u16 },
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Dir { path } => write!(f, "directory {}", path.display()),
            Resource::Mount { target } => write!(f, "mount {}", target.display()),
            Resource::Process { pid, .. } => write!(f, "process {pid}"),
            Resource::Cgroup { path } => write!(f, "cgroup {}", path.display()),
            Resource::Link { name } => write!(f, "link {name}"),
            Resource::Netns { name } => write!(f, "netns {name}"),
            Resource::NftTable { family, name } => write!(f, "nft table {family} {name}"),
            Resource::IptablesRule { table, chain, spec } => {
                write!(f, "iptables -t {table} {chain} {}", spec.join(" "))
            }
            Resource::XtablesChain { table, chain, .. } => {
                write!(f, "nft chain ip {table} {chain} (made by iptables-nft)")
            }
            Resource::Sysctl { key, previous, .. } => {
                write!(f, "sysctl {} (back to {previous})", super::sysctl::dotted(key))
            }
            Resource::Subnet { cidr } => write!(f, "subnet reservation {cidr}"),
            Resource::HostPort { port } => write!(f, "host port reservation {port}"),
        }
    }
}
