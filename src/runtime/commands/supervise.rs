//! The foreground side shared by `run` and `exec`: wait for one process while forwarding
//! signals to it, proxying its terminal (with window size changes) and reaping orphans.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::termios;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::runtime::sys;

/// Signals a foreground `run` or `exec` forwards to its process (or handles itself).
pub fn forwarded_signals() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGTRAP,
        Signal::SIGABRT,
        Signal::SIGSYS,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGTSTP,
    ] {
        set.remove(s);
    }
    set
}

/// Puts the caller's terminal in raw mode for the proxy and restores it on drop.
struct RawMode {
    fd: RawFd,
    saved: termios::Termios,
}

impl RawMode {
    fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: fd 0 stays open for the life of the process.
        let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
        let saved = termios::tcgetattr(bfd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(bfd, termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: see enter.
        let bfd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(bfd, termios::SetArg::TCSANOW, &self.saved);
    }
}

fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: winsize is plain old data; ioctls with valid pointers.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Copies what is readable on `from` to `to`; false at EOF or error.
fn pump(from: RawFd, to: RawFd) -> bool {
    let mut buf = [0u8; 8192];
    // SAFETY: reading into a valid buffer.
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return n < 0 && sys::errno() == libc::EINTR;
    }
    sys::write_all(to, &buf[..n as usize]).is_ok()
}

fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Waits for the process, forwarding signals and proxying the terminal; returns its
/// exit code (128 + signal when killed).
pub fn supervise(pid: i32, pidfd: &OwnedFd, master: Option<OwnedFd>, sigfd: &SignalFd) -> i32 {
    let _raw = master.as_ref().and_then(|_| RawMode::enter(0));
    if let Some(m) = &master {
        copy_winsize(0, m.as_raw_fd());
    }
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut code: Option<i32> = None;
    while code.is_none() || master_open {
        let mut fds = vec![
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
        ];
        let stdin = std::io::stdin();
        if let Some(m) = &master {
            if master_open {
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            }
            if stdin_open && code.is_none() {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        // Once the init is gone, drain the terminal without blocking forever.
        let timeout = if code.is_some() {
            PollTimeout::from(100u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) if code.is_some() => break,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (sig_ready, pid_ready) = (ready(0), ready(1));
        let (master_ready, stdin_ready) = match (&master, master_open) {
            (Some(_), true) => (ready(2), ready(3)),
            (Some(_), false) => (false, ready(2)),
            _ => (false, false),
        };
        drop(fds);
        if sig_ready {
            if let Ok(Some(info)) = sigfd.read_signal() {
                handle_signal(
                    info.ssi_signo as i32,
                    pid,
                    pidfd,
                    master.as_ref(),
                    &mut code,
                );
            }
        }
        if pid_ready && code.is_none() {
            code = reap_init(pid);
        }
        if let Some(m) = &master {
            if master_ready && !pump(m.as_raw_fd(), 1) {
                master_open = false;
            }
            if stdin_ready && !pump(0, m.as_raw_fd()) {
                stdin_open = false;
            }
        }
    }
    code.unwrap_or(255)
}

fn handle_signal(
    sig: i32,
    pid: i32,
    pidfd: &OwnedFd,
    master: Option<&OwnedFd>,
    code: &mut Option<i32>,
) {
    match sig {
        libc::SIGCHLD => reap_orphans(pid, code),
        libc::SIGWINCH if master.is_some() => {
            if let Some(m) = master {
                copy_winsize(0, m.as_raw_fd());
            }
        }
        _ => {
            let _ = sys::pidfd_send_signal(pidfd.as_raw_fd(), sig);
        }
    }
}

/// Reaps every exited child; records the init's exit code if it is among them.
fn reap_orphans(init: i32, code: &mut Option<i32>) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => {
                if status.pid() == Some(Pid::from_raw(init)) && code.is_none() {
                    *code = exit_code(status);
                }
            }
        }
    }
}

fn reap_init(pid: i32) -> Option<i32> {
    match waitpid(Pid::from_raw(pid), None) {
        Ok(status) => exit_code(status),
        // Not our child (joined pid namespace with --no-subreaper): the status is lost.
        Err(_) => Some(255),
    }
}
