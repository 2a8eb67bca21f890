//! `--pidfd-socket PATH` (create, run, exec): the process's pidfd is sent over that unix
//! socket with SCM_RIGHTS, as runc does, so the caller can signal and wait for exactly
//! that process even after its pid is reused.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::lifecycle;
use crate::runtime::create::Created;
use crate::runtime::error::{Context, Error, Result};
use crate::runtime::{log, rootfs, sys};

/// The caller's pidfd socket. The path is checked when the command starts, so a typo fails
/// before anything is made; the connection is made when sending, because berth may
/// re-execute itself in between (its CVE-2019-5736 guard), which would drop an open one.
pub struct PidfdSocket {
    path: PathBuf,
}

impl PidfdSocket {
    /// Checks that `path` is a unix socket (connecting happens in [`PidfdSocket::send`]).
    pub fn connect(path: &Path) -> Result<PidfdSocket> {
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::metadata(path).ctx(|| format!("pidfd socket {}", path.display()))?;
        if !meta.file_type().is_socket() {
            return Err(Error::Usage(format!(
                "pidfd socket {} is not a unix socket",
                path.display()
            )));
        }
        Ok(PidfdSocket {
            path: path.to_path_buf(),
        })
    }

    /// Connects and sends `pidfd` (the message names it, like runc's `pidfd`).
    pub fn send(&self, pidfd: &OwnedFd) -> Result<()> {
        let stream = UnixStream::connect(&self.path)
            .ctx(|| format!("connecting to pidfd socket {}", self.path.display()))?;
        rootfs::send_fd(stream.as_raw_fd(), pidfd.as_raw_fd(), b"pidfd")
            .ctx(|| format!("sending the pidfd to {}", self.path.display()))
    }
}

/// Sends a just-created container's init pidfd; when that fails, the container is killed
/// and destroyed so the failed command leaves nothing behind.
pub fn send_or_destroy(created: Created, sock: &PidfdSocket) -> Result<Created> {
    match sock.send(&created.pidfd) {
        Ok(()) => Ok(created),
        Err(e) => {
            let _ = sys::pidfd_send_signal(created.pidfd.as_raw_fd(), libc::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(created.pid), None);
            if let Err(de) = lifecycle::destroy(created.container) {
                log::warn(&format!(
                    "removing the container after a failed pidfd hand-over: {de}"
                ));
            }
            Err(e)
        }
    }
}
