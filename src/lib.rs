//! workbench: an educational, step-by-step Linux container workbench.
//!
//! A container is an ordinary process that the kernel shows a different view
//! of the machine: namespaces decide what it can see, cgroups decide how much
//! it may use, and a layered root filesystem decides which files it has.
//! Every lesson here performs those kernel operations for real and shows
//! before and after what changed.

pub mod cli;
pub mod container;
pub mod error;
pub mod host;
pub mod hostobj;
pub mod image;
pub mod jsonl;
pub mod kernel;
pub mod kit;
pub mod lesson;
pub mod lessons;
pub mod observe;
pub mod run;
pub mod state;
