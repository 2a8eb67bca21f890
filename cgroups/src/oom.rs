//! Waiting for OOM kills, for `events`: v1 through an eventfd registered
//! on memory.oom_control, v2 through inotify on memory.events. Both end
//! with the oom_kill counter, so the caller sees one number.

use crate::error::{Error, Result};
use crate::fsutil::{read_keyed, write_file};
use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fs::inotify;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest sleep between two reads of the counter.
const RECHECK: Duration = Duration::from_millis(250);

/// Blocks until the container's OOM-kill counter grows.
#[derive(Debug)]
pub struct OomWatcher {
    /// The fd that becomes readable on a memory event.
    wake: OwnedFd,
    /// v1 only: memory.oom_control must stay open while registered.
    _control: Option<std::fs::File>,
    /// The file holding `oom_kill N`.
    counter_file: PathBuf,
    last_count: u64,
}

impl OomWatcher {
    /// v1: eventfd + cgroup.event_control ("<eventfd> <oom_control fd>").
    pub fn v1(dir: &Path) -> Result<OomWatcher> {
        let control_path = dir.join("memory.oom_control");
        let control =
            std::fs::File::open(&control_path).map_err(|e| Error::io("open", &control_path, e))?;
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| Error::io("eventfd", &control_path, e.into()))?;
        let registration = format!("{} {}", wake.as_raw_fd(), control.as_raw_fd());
        write_file(&dir.join("cgroup.event_control"), &registration)?;
        Ok(OomWatcher {
            wake,
            _control: Some(control),
            last_count: read_count(&control_path)?,
            counter_file: control_path,
        })
    }

    /// v2: inotify IN_MODIFY on memory.events.
    pub fn v2(dir: &Path) -> Result<OomWatcher> {
        let events = dir.join("memory.events");
        let wake = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .map_err(|e| Error::io("inotify_init", &events, e.into()))?;
        inotify::add_watch(&wake, &events, inotify::WatchFlags::MODIFY)
            .map_err(|e| Error::io("inotify_add_watch", &events, e.into()))?;
        Ok(OomWatcher {
            wake,
            _control: None,
            last_count: read_count(&events)?,
            counter_file: events,
        })
    }

    /// OOM kills seen so far.
    pub fn count(&self) -> u64 {
        self.last_count
    }

    /// Waits up to `timeout` (forever if `None`) for new OOM kills; returns
    /// how many happened since the last call, 0 on timeout.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<u64> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let count = read_count(&self.counter_file)?;
            if count > self.last_count {
                let new = count - self.last_count;
                self.last_count = count;
                return Ok(new);
            }
            let remaining = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => return Ok(0),
                },
                None => None,
            };
            // v1 signals the OOM (under_oom) just before the kill counts
            // it: re-read at least every RECHECK so that race costs little.
            let nap = remaining.map_or(RECHECK, |r| r.min(RECHECK));
            self.sleep_until_event(Some(nap))?;
        }
    }

    fn sleep_until_event(&self, timeout: Option<Duration>) -> Result<()> {
        let timespec = timeout.map(|t| Timespec {
            tv_sec: t.as_secs() as _,
            tv_nsec: t.subsec_nanos() as _,
        });
        let mut fds = [PollFd::new(&self.wake, PollFlags::IN)];
        match poll(&mut fds, timespec.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::io("poll", &self.counter_file, e.into())),
        }
        if fds[0].revents().contains(PollFlags::IN) {
            self.drain();
        }
        Ok(())
    }

    /// Consumes the wake-up (the eventfd counter, or queued inotify events).
    fn drain(&self) {
        let mut buf = [0u8; 4096];
        let _ = rustix::io::read(self.wake.as_fd(), &mut buf);
    }
}

fn read_count(file: &Path) -> Result<u64> {
    Ok(read_keyed(file, "oom_kill")?.unwrap_or(0))
}
