//! Facts about the host: privileges, busybox binaries, kernel features,
//! tools on PATH, the cgroup layout, and a snapshot of host state.
//!
//! A lesson changes the machine it runs on, so it first asks what that
//! machine offers (and refuses early, before creating anything); `doctor`
//! reports the same facts, and the snapshot lets tests prove a run left
//! the host as it found it.

pub mod doctor;
pub mod features;
mod probe;
pub mod snapshot;

pub use probe::{Host, BUSYBOX_CANDIDATES};
