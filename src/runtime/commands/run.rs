//! `berth run`: create + start, then (in the foreground) forward signals, proxy the
//! terminal, reap orphans as a subreaper, and return the container's exit code.

use std::os::fd::AsRawFd;

use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::lifecycle;
use super::pidfd::{self, PidfdSocket};
use super::supervise::{forwarded_signals, supervise};
use crate::runtime::container::Container;
use crate::runtime::create::{self, CreateOptions, Created};
use crate::runtime::error::{Context, Result};
use crate::runtime::exe_guard;
use crate::runtime::sys;

pub struct RunOptions {
    pub create: CreateOptions,
    pub detach: bool,
    pub keep: bool,
    pub no_subreaper: bool,
    /// `--pidfd-socket`: where to send the init's pidfd.
    pub pidfd_socket: Option<std::path::PathBuf>,
}

/// Runs the container; returns the exit code `berth run` exits with.
pub fn run(mut opts: RunOptions) -> Result<i32> {
    // Before anything a re-exec would do twice (the pidfd socket connection).
    exe_guard::ensure_protected()?;
    let pidfd_socket = opts
        .pidfd_socket
        .as_deref()
        .map(PidfdSocket::connect)
        .transpose()?;
    if opts.detach {
        let created = create_with(&opts.create, pidfd_socket.as_ref())?;
        lifecycle::start_container(&created.container)?;
        return Ok(0);
    }
    if !opts.no_subreaper {
        // SAFETY: plain prctl: orphans of the container are reparented to us and reaped.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    // Blocked before the clone so none is lost; the init unblocks them before exec.
    let signals = forwarded_signals();
    signals.thread_block().ctx(|| "blocking signals")?;
    let sigfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC).ctx(|| "signalfd")?;
    opts.create.keep_console = true;
    let root = opts.create.root.clone();
    let id = opts.create.id.clone();
    let created = create_with(&opts.create, pidfd_socket.as_ref())?;
    let started = lifecycle::start_container(&created.container);
    let (pid, pidfd, master) = (created.pid, created.pidfd, created.console_master);
    // Unlock: `state`, `kill` and `exec` from other shells must work while we wait.
    drop(created.container);
    let code = match started {
        Ok(()) => supervise(pid, &pidfd, master, &sigfd),
        Err(e) => {
            let _ = sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
            let _ = lifecycle::destroy(Container::load(&root, &id)?);
            return Err(e);
        }
    };
    if !opts.keep {
        lifecycle::destroy(Container::load(&root, &id)?)?;
    }
    Ok(code)
}

/// `create`, then the init's pidfd to the `--pidfd-socket` if there is one.
pub fn create_with(opts: &CreateOptions, pidfd_socket: Option<&PidfdSocket>) -> Result<Created> {
    let created = create::create(opts)?;
    match pidfd_socket {
        Some(sock) => pidfd::send_or_destroy(created, sock),
        None => Ok(created),
    }
}
