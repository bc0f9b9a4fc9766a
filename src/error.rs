//! The one error type that is not a failure of the kernel or the host: the
//! learner asked for something that cannot be done as given. It is a leaf
//! (it depends on nothing in the crate), so every layer can refuse input with
//! it, and the command line turns it into one line and exit status 2.

/// A failure before anything ran: bad input or missing prerequisite (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
