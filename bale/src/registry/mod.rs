//! An OCI distribution client: pull images from and push them to any
//! registry that speaks the distribution spec (and Docker's v2 API).
//!
//! - [`client`]: one registry connection. `GET /v2/` first (API version
//!   check); HTTPS with the system roots, plain HTTP only for loopback
//!   registries or with `tls_verify: false`, never after a refused
//!   certificate. A 401 challenge is answered once per request: Basic
//!   with the stored credentials, or a Bearer token fetched from the
//!   realm with the repository scopes of the operation. Transient
//!   failures (network, 408/429/5xx) are retried with backoff.
//! - [`pull`](mod@pull): manifests are negotiated (OCI manifest/index, Docker
//!   schema 2 manifest/list) and checked against the digest asked for or
//!   announced; Docker manifests become OCI in the store (config and
//!   layer bytes, hence digests, unchanged). Blobs download in parallel
//!   into `bale/tmp/partial-<hex>`, hashed as they stream (and extracted,
//!   when asked), resumed with `Range` after an interruption, even by a
//!   later pull. Nothing enters the store until every blob matches its
//!   digest and size; a mismatch removes the partial files too.
//! - [`push`](mod@push): per blob, HEAD (skip), else a cross-repository mount from
//!   a repository bale knows holds it ([`sources`]), else an upload in
//!   one PUT or in PATCH chunks; then the manifest(s).
//! - [`auth`]: credentials in docker's `config.json` format.

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
/// raises `cancel` so the other workers stop early, and is the error
/// returned.
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
                        // Exactly one failure raises the flag: that is the
                        // cause, and it replaces any "cancelled" error a
                        // worker that saw the flag may have stored first.
                        let first = !cancel.swap(true, Ordering::Relaxed);
                        if let Ok(mut slot) = first_error.lock() {
                            if first {
                                *slot = Some(e);
                            } else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parallel_results_keep_job_order() {
        let cancel = AtomicBool::new(false);
        let jobs: Vec<u64> = (0..20).collect();
        let out = run_parallel(&jobs, 3, &cancel, |j| {
            std::thread::sleep(Duration::from_millis(20 - j));
            Ok(j * 2)
        })
        .unwrap();
        assert_eq!(out, jobs.iter().map(|j| j * 2).collect::<Vec<_>>());
    }

    #[test]
    fn the_first_failure_is_reported_not_the_cancellations_it_caused() {
        for _ in 0..20 {
            let cancel = AtomicBool::new(false);
            let result = run_parallel(&[0, 1, 2], 3, &cancel, |&j| {
                if j == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                    return Err(Error::Invalid("boom".into()));
                }
                while !cancel.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err::<(), _>(Error::Invalid("cancelled".into()))
            });
            assert_eq!(result.unwrap_err().to_string(), "boom");
        }
    }
}
