//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while managing a container's cgroups.
///
/// Every variant names the file or the value at fault, so the runtime can
/// print it as is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A read, write, mkdir or rmdir on cgroupfs failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The kernel refused a value written to a control file.
    #[error("write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },

    /// No cgroup hierarchy at all is mounted.
    #[error("no cgroup filesystem is mounted (looked in {0})")]
    NoCgroupMounts(PathBuf),

    /// A line of /proc/self/mountinfo or /proc/self/cgroup could not be read.
    #[error("cannot parse {file} line {line:?}")]
    Parse { file: &'static str, line: String },

    /// `linux.cgroupsPath` is not usable.
    #[error("invalid cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },

    /// A resource value is out of range or contradicts another one.
    #[error("invalid resource {resource}: {reason}")]
    InvalidResource {
        resource: &'static str,
        reason: String,
    },

    /// The resource was asked for but the host cannot honour it.
    #[error("{resource} is not supported here: {reason}")]
    Unsupported {
        resource: String,
        reason: &'static str,
    },

    /// A controller needed by a resource is not mounted or not enabled.
    #[error("cgroup controller {0} is not available on this host")]
    ControllerMissing(&'static str),

    /// memory.checkBeforeUpdate refused a limit under the current usage.
    #[error("memory limit {limit} is below the current usage {usage}")]
    MemoryBelowUsage { limit: i64, usage: u64 },

    /// Talking to systemd over D-Bus failed.
    #[error("systemd unit {unit}: {op}: {source}")]
    Systemd {
        unit: String,
        op: &'static str,
        #[source]
        source: crate::dbus::DbusError,
    },

    /// The scope's name is taken: another container (or a leftover) uses
    /// the same cgroupsPath.
    #[error("systemd unit {0} already exists: is another container using the same cgroupsPath?")]
    UnitExists(String),

    /// A start or stop job did not end in "done".
    #[error("systemd could not {op} unit {unit}: {result}")]
    SystemdJob {
        unit: String,
        op: &'static str,
        result: String,
    },

    /// After the scope was started, the init was not in its cgroup: no
    /// limit is written anywhere else.
    #[error("systemd unit {unit} started but process {pid} is not in {expected} (found {found:?}): refusing to apply limits")]
    ScopeMismatch {
        unit: String,
        pid: i32,
        expected: String,
        found: String,
    },

    /// A bpf(2) call failed; `log` carries the verifier's output if any.
    #[error("bpf {op}: {source}{log}")]
    Bpf {
        op: &'static str,
        #[source]
        source: io::Error,
        log: String,
    },

    /// Processes stayed in the cgroup after they were killed.
    #[error("processes remain in {0} after SIGKILL")]
    ProcessesRemain(PathBuf),

    /// Freezing or thawing did not complete in time.
    #[error("cgroup {path} did not reach state {state} in time")]
    FreezeTimeout { path: PathBuf, state: &'static str },
}

/// Shorthand used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The errno behind an I/O failure, if this is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::Write { source, .. } | Error::Bpf { source, .. } => {
                source.raw_os_error()
            }
            _ => None,
        }
    }
}
