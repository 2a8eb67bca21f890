//! An OCI distribution client: pull images from and push them to any
//! registry that speaks the distribution spec (and Docker's v2 API).

pub mod auth;
pub mod client;
pub mod extract;
pub mod media;
pub mod pull;
pub mod push;
pub mod reference;
pub mod sources;
pub mod tags;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub use auth::Credentials;
pub use client::{Client, ClientOptions};
pub use pull::{pull, PullOptions, Pulled};
pub use push::{push, PushOptions, Pushed};
pub use reference::RemoteRef;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Progress of blob transfers, one line (or bar) per blob. Shared by the
/// worker threads, hence `Sync`.
pub trait Progress: Sync {
    fn blob(&self, digest: &Digest, size: u64) -> Box<dyn BlobProgress>;
}

pub trait BlobProgress: Send {
    /// Bytes done so far (may go back when a download restarts).
    fn position(&self, done: u64);
    /// The blob is finished; `note` says how ("done", "exists", "mounted").
    fn finish(&self, note: &str);
}

/// No output at all (not a terminal, or a library caller).
pub struct Quiet;

impl Progress for Quiet {
    fn blob(&self, _: &Digest, _: u64) -> Box<dyn BlobProgress> {
        Box::new(Quiet)
    }
}

impl BlobProgress for Quiet {
    fn position(&self, _: u64) {}
    fn finish(&self, _: &str) {}
}

/// Run `work` over `jobs` on up to `threads` threads. The first failure
/// raises `cancel` so the other workers stop early; it is the error
/// returned (errors of workers that only saw the cancel come later).
pub(crate) fn run_parallel<J: Sync, T: Send>(
    jobs: &[J],
    threads: usize,
    cancel: &AtomicBool,
    work: impl Fn(&J) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, jobs.len().max(1)) {
            scope.spawn(|| loop {
                let i = {
                    let Ok(mut n) = next.lock() else { return };
                    let i = *n;
                    *n += 1;
                    i
                };
                if i >= jobs.len() || cancel.load(Ordering::Relaxed) {
                    return;
                }
                match work(&jobs[i]) {
                    Ok(v) => {
                        if let Ok(mut r) = results.lock() {
                            r[i] = Some(v);
                        }
                    }
                    Err(e) => {
                        let already = cancel.swap(true, Ordering::Relaxed);
                        if let Ok(mut slot) = first_error.lock() {
                            if !already || slot.is_none() {
                                slot.get_or_insert(e);
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let results = results
        .into_inner()
        .map_err(|_| Error::Invalid("a transfer thread panicked".into()))?;
    results
        .into_iter()
        .map(|r| r.ok_or_else(|| Error::Invalid("transfer cancelled".into())))
        .collect()
}
