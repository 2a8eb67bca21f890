//! Extracting a layer while it downloads: the downloader hands each chunk
//! to a thread that decompresses and applies it into a temp directory of
//! the layer cache. The result is renamed into place only after the blob
//! has been verified, so nothing unverified is ever used.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::digest::{Digest, HashingReader};
use crate::error::{Context, Error, Result};
use crate::layer::{self, Limits, Whiteouts};
use crate::store::{check_digest, Store};

/// Chunks in flight between the downloader and the extractor; bounded so
/// a slow disk slows the download instead of filling memory.
const QUEUE: usize = 16;

/// Where a layer goes once its blob is verified.
#[derive(Clone, Debug)]
pub struct Target {
    pub diff_id: Digest,
    pub chain_id: Digest,
}

/// An extraction in progress.
pub struct Extraction {
    target: Target,
    sender: Option<SyncSender<Vec<u8>>>,
    thread: Option<JoinHandle<Result<()>>>,
    dir: Option<tempfile::TempDir>,
}

/// A layer extracted from a download, waiting for the pull to commit.
pub struct Extracted {
    dir: tempfile::TempDir,
    chain_id: Digest,
}

impl Extraction {
    pub fn start(store: &Store, target: Target, limits: Limits) -> Result<Extraction> {
        let dir = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(store.layers_dir())
            .ctx(|| "create temp layer directory".to_owned())?;
        let (sender, receiver) = sync_channel(QUEUE);
        let root = dir.path().to_owned();
        let diff_id = target.diff_id.clone();
        let thread = std::thread::Builder::new()
            .name("bale-extract".into())
            .spawn(move || apply(ChunkReader::new(receiver), root, &diff_id, limits))
            .ctx(|| "start extraction thread".to_owned())?;
        Ok(Extraction {
            target,
            sender: Some(sender),
            thread: Some(thread),
            dir: Some(dir),
        })
    }

    /// Hand over the next bytes of the blob. When the extractor has
    /// already stopped (its error comes from [`Extraction::finish`]),
    /// the bytes are dropped.
    pub fn feed(&mut self, data: &[u8]) {
        let gone = match &self.sender {
            Some(s) => s.send(data.to_vec()).is_err(),
            None => false,
        };
        if gone {
            self.sender = None;
        }
    }

    /// End of the blob: wait for the extractor and return its result.
    pub fn finish(mut self) -> Result<Extracted> {
        self.sender = None;
        let outcome = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => Err(Error::Invalid("the extraction thread panicked".into())),
        };
        outcome?;
        let dir = self
            .dir
            .take()
            .ok_or_else(|| Error::Invalid("extraction finished twice".into()))?;
        Ok(Extracted {
            dir,
            chain_id: self.target.chain_id.clone(),
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }
}

impl Drop for Extraction {
    // An abandoned extraction: close the stream so the thread ends, wait
    // for it, and let the temp dir go.
    fn drop(&mut self) {
        self.sender = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Extracted {
    /// Move the layer into the cache (it may be there already: another
    /// image shares it).
    pub fn commit(self, store: &Store) -> Result<()> {
        let target = store.layer_dir(&self.chain_id);
        if target.is_dir() {
            return Ok(());
        }
        // 0755 root: the directory itself becomes the overlay's root.
        fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o755))
            .ctx(|| "chmod layer directory".to_owned())?;
        let tmp: PathBuf = self.dir.keep();
        fs::rename(&tmp, &target).map_err(|e| {
            let _ = crate::fsutil::remove_path_tree(&tmp);
            Error::Io {
                context: format!("rename layer into {}", target.display()),
                source: e,
            }
        })
    }
}

/// The extractor: decompress, apply, and check the diff ID.
fn apply(reader: ChunkReader, root: PathBuf, diff_id: &Digest, limits: Limits) -> Result<()> {
    let decompressed = layer::decompress(reader)?;
    let mut hashing = HashingReader::with_limit(decompressed, limits.max_bytes);
    layer::apply_tar(&mut hashing, &root, Whiteouts::Overlay, limits)?;
    hashing
        .drain()
        .ctx(|| format!("read layer with diff ID {diff_id}"))?;
    let (actual, _) = hashing.finish();
    check_digest(&format!("diff ID of layer {diff_id}"), diff_id, &actual)
}

/// `Read` over the chunks the downloader sends.
struct ChunkReader {
    receiver: Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    fn new(receiver: Receiver<Vec<u8>>) -> ChunkReader {
        ChunkReader {
            receiver,
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.receiver.recv() {
                Ok(chunk) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                // The sender is gone: end of the blob.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
