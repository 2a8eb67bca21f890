//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while compiling a profile or talking to a seccomp agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// This crate only knows the x86 system call tables.
    #[error("seccomp is supported on x86_64 hosts only (this is {0})")]
    UnsupportedHost(&'static str),

    /// A rule or the default action is not valid as written.
    #[error("linux.seccomp: {0}")]
    InvalidProfile(String),

    /// The running kernel cannot return this action.
    #[error("linux.seccomp: the kernel does not support the action {0}")]
    ActionUnsupported(&'static str),

    /// The program is longer than the kernel accepts (BPF_MAXINSNS).
    #[error(
        "linux.seccomp: the compiled filter has {0} instructions, the kernel accepts at most 4096"
    )]
    TooLong(usize),

    /// A bug in the code generator (a jump out of range, a missing return): never a user error.
    #[error("seccomp code generator: {0}")]
    Internal(String),

    /// Talking to the seccomp agent at listenerPath failed.
    #[error("seccomp listener {path}: {step}: {source}")]
    Listener {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: io::Error,
    },
}

pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidProfile(msg.into())
}
