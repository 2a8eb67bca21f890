//! start, state, kill and delete: the lifecycle operations of the runtime spec.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::runtime::container::{self, Container, OciState, Saved, Status};
use crate::runtime::error::{Context, Error, Result};
use crate::runtime::{hooks, log, sys};

/// `berth start ID`.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let container = Container::load(root, id)?;
    start_container(&container)
}

/// Releases a created container's init from the exec fifo, then runs poststart hooks.
pub fn start_container(container: &Container) -> Result<()> {
    match container.status()? {
        Status::Created => {}
        Status::Stopped => {
            return Err(Error::State(
                "cannot start a container that has stopped".into(),
            ))
        }
        status => {
            return Err(Error::State(format!(
                "cannot start a container that is {status}"
            )))
        }
    }
    let path = container.fifo_path();
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| match e.raw_os_error() {
            // No reader: the init died between our status check and now.
            Some(libc::ENXIO) => Error::State("the container init is no longer waiting".into()),
            _ => Error::Io {
                context: format!("opening {}", path.display()),
                err: e,
            },
        })?;
    fifo.write_all(b"0")
        .ctx(|| "releasing the container init")?;
    wait_for_exec(&fifo);
    // Our write end keeps the pipe alive: whatever the init left in it is still there.
    let failed = start_failed(&path);
    std::fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
    if failed {
        return Err(Error::State(
            "the container's process did not start: a startContainer hook or execve failed".into(),
        ));
    }
    let saved = container.saved()?;
    if let Some(h) = saved.config.hooks() {
        let state = state_json(saved, Status::Running)?;
        for warning in hooks::run_all_warn(
            "poststart",
            h.poststart().as_deref().unwrap_or_default(),
            &state,
        ) {
            log::warn(&warning);
        }
    }
    Ok(())
}

/// Waits until the init has exec'd the user program (or died): its copy of the fifo is
/// close-on-exec, and the write end reports POLLERR once no reader is left. Poststart
/// hooks must run after the user process started.
fn wait_for_exec(fifo: &std::fs::File) {
    let mut pfd = libc::pollfd {
        fd: fifo.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd; events 0 waits for POLLERR/POLLHUP only.
    while unsafe { libc::poll(&mut pfd, 1, -1) } < 0 && sys::errno() == libc::EINTR {}
}

/// Whether the init left `init::START_FAILED` in the fifo before exiting.
fn start_failed(path: &Path) -> bool {
    let Ok(mut reader) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    else {
        return false;
    };
    let mut byte = [0u8; 1];
    use std::io::Read;
    matches!(reader.read(&mut byte), Ok(1) if byte == *crate::runtime::init::START_FAILED)
}

fn state_json(saved: &Saved, status: Status) -> Result<Vec<u8>> {
    serde_json::to_vec(&container::oci_state(saved, status))
        .map_err(|e| Error::State(format!("encoding state: {e}")))
}

/// `berth state ID`.
pub fn state(root: &Path, id: &str) -> Result<OciState> {
    Container::load(root, id)?.oci_state()
}

/// Opens a pidfd for the container's init and checks it is still that process (not a
/// recycled pid): signals then reach exactly it.
pub fn init_pidfd(saved: &Saved) -> Result<OwnedFd> {
    let pidfd =
        sys::pidfd_open(saved.pid).map_err(|_| Error::State("container not running".into()))?;
    if !container::process_alive(saved.pid, saved.pid_start_time) {
        return Err(Error::State("container not running".into()));
    }
    Ok(pidfd)
}

/// `berth kill ID SIGNAL [--all]`.
pub fn kill(root: &Path, id: &str, signal: i32, all: bool) -> Result<()> {
    let container = Container::load(root, id)?;
    if container.status()? == Status::Stopped {
        return Err(Error::State("container not running".into()));
    }
    let saved = container.saved()?;
    if all {
        if let Some(cg) = &saved.cgroup {
            return cg.kill_all(signal).map_err(Error::from);
        }
        for pid in pids_in_pid_namespace(saved.pid)? {
            if pid != saved.pid {
                if let Ok(fd) = sys::pidfd_open(pid) {
                    let _ = sys::pidfd_send_signal(fd.as_raw_fd(), signal);
                }
            }
        }
    }
    let pidfd = init_pidfd(saved)?;
    sys::pidfd_send_signal(pidfd.as_raw_fd(), signal)
        .ctx(|| format!("sending signal {signal} to the container"))
}

/// The processes in the init's pid namespace, when it has one of its own (without one,
/// only the init: its other processes cannot be told apart without a cgroup).
fn pids_in_pid_namespace(init: i32) -> Result<Vec<i32>> {
    let ns_of = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let own = ns_of(init);
    if own.is_none() || own == ns_of(std::process::id() as i32) {
        return Ok(vec![init]);
    }
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .ctx(|| "reading /proc")?
        .flatten()
    {
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        {
            if ns_of(pid) == own {
                pids.push(pid);
            }
        }
    }
    Ok(pids)
}

/// `berth delete ID [--force]`.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let container = match Container::load(root, id) {
        Err(Error::NotFound(_)) if force => return Ok(()),
        other => other?,
    };
    match container.status()? {
        Status::Stopped => {}
        // A created container never ran user code: runc deletes it without --force.
        Status::Created => kill_and_wait(container.saved()?)?,
        status if force => {
            let _ = status;
            kill_and_wait(container.saved()?)?
        }
        status => {
            return Err(Error::State(format!(
                "cannot delete container {id} that is not stopped: {status}"
            )))
        }
    }
    destroy(container)
}

/// SIGKILL the init and wait until it is gone (a zombie counts: its mounts are gone).
fn kill_and_wait(saved: &Saved) -> Result<()> {
    let pidfd = match init_pidfd(saved) {
        Ok(fd) => fd,
        Err(_) => return Ok(()),
    };
    sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL).ctx(|| "killing the container")?;
    if !sys::wait_pidfd(pidfd.as_raw_fd(), 10_000).ctx(|| "waiting for the container to die")? {
        return Err(Error::State(
            "the container's init did not die within 10s of SIGKILL".into(),
        ));
    }
    Ok(())
}

/// Removes the container's cgroups (killing any process left in them), runs poststop
/// hooks (failures are warnings) and removes the container's state.
pub fn destroy(container: Container) -> Result<()> {
    let saved = container.saved()?;
    if let Some(mut cg) = saved.cgroup.clone() {
        cg.destroy()?;
    }
    if let Some(h) = saved.config.hooks() {
        let state = state_json(saved, Status::Stopped)?;
        for warning in hooks::run_all_warn(
            "poststop",
            h.poststop().as_deref().unwrap_or_default(),
            &state,
        ) {
            log::warn(&warning);
        }
    }
    container.remove()
}
