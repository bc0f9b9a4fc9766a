//! The host objects a run creates and teardown removes: netfilter rules,
//! kernel parameters, network links and namespaces, cgroup directories.
//!
//! Each lives in the kernel, not in a process, so it outlives the run that
//! made it unless removed. Functions here only create, inspect and remove;
//! recording an object in the run ledger before creating it is the caller's
//! job ([`crate::state`] sits above this module and never the other way round).

pub mod firewall;
pub mod groups;
pub mod links;
mod resource;
pub mod sysctl;

pub use resource::Resource;

/// The prefix of every object workbench names (links, netns, nft tables, rule tags, work dirs).
pub const PREFIX: &str = "wb";
