//! The runtime library's one error type.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or file operation failed; `context` says what berth was doing.
    #[error("{context}: {err}")]
    Io {
        context: String,
        // Not named `source`: the message carries it already, and anyhow would repeat it.
        err: io::Error,
    },
    /// config.json (or a process.json) is unreadable, malformed or breaks a rule of the spec.
    #[error("invalid config: {0}")]
    Config(String),
    /// A config field that berth does not implement yet: never silently ignored.
    #[error("unsupported config field {field}: {why}")]
    Unsupported { field: String, why: String },
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    #[error("container with id \"{0}\" already exists")]
    Exists(String),
    /// An operation not allowed in the container's current state.
    #[error("{0}")]
    State(String),
    /// A bad command-line argument (id, signal name, ...).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Hook(String),
    /// The cgroup manager refused (a limit the kernel rejected, a missing controller...).
    #[error("cgroup: {0}")]
    Cgroup(String),
    /// The container's init reported a failure while setting the container up.
    #[error("container init failed: {0}")]
    Init(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<berth_cgroups::Error> for Error {
    fn from(e: berth_cgroups::Error) -> Error {
        Error::Cgroup(e.to_string())
    }
}

/// Adds what berth was doing to an I/O or syscall error.
pub trait Context<T> {
    fn ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|err| Error::Io {
            context: context().into(),
            err,
        })
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|errno| Error::Io {
            context: context().into(),
            err: io::Error::from_raw_os_error(errno as i32),
        })
    }
}
