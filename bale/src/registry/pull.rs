//! `bale pull`: manifest negotiation, platform choice, parallel blob
//! downloads streamed to disk while hashing, resumed with Range, and a
//! store that changes only once everything is verified.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use oci_spec::image::{Descriptor, ImageManifest, MediaType};
use sha2::{Digest as _, Sha256};
use ureq::http::Method;

use super::client::{self, Body, Client, ClientOptions, Request};
use super::extract::{Extracted, Extraction, Target};
use super::media::{self, Kind};
use super::reference::RemoteRef;
use super::sources::Sources;
use super::{run_parallel, BlobProgress, Progress};
use crate::digest::{chain_ids, Digest};
use crate::error::{Context, Error, Result};
use crate::image::{load_image, select_platform, PlatformSpec};
use crate::layer::Limits;
use crate::reference::Reference;
use crate::store::{check_digest, Store, MAX_JSON_BLOB};

#[derive(Clone, Debug)]
pub struct PullOptions {
    pub client: ClientOptions,
    pub platform: PlatformSpec,
    /// Blobs downloaded at once.
    pub jobs: usize,
    /// Extract the layers into the layer cache too, with these limits
    /// (for `platform`'s image).
    pub extract: Option<Limits>,
    /// From an index, pull every image and keep the index (else only
    /// `platform`'s image).
    pub all_platforms: bool,
}

/// What a pull did.
#[derive(Debug)]
pub struct Pulled {
    pub name: Reference,
    /// The manifest digest in the store.
    pub manifest: Digest,
    /// The digest the registry knows the image by (differs from
    /// `manifest` when an index was resolved or Docker schema 2 converted).
    pub remote_digest: Digest,
    pub converted: bool,
    pub blobs_downloaded: usize,
    pub bytes_downloaded: u64,
    /// Layers extracted while they downloaded (others, whose blobs were
    /// already stored, are extracted after).
    pub extracted_while_downloading: usize,
}

/// Pull `remote` into `store`. On failure the store's index and blobs are
/// unchanged; partial downloads are kept for the next try to resume,
/// unless the failure was a blob that did not match its digest.
pub fn pull(
    store: &Store,
    remote: &RemoteRef,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<Pulled> {
    let name = remote.store_reference()?;
    let scope = format!("repository:{}:pull", remote.repository);
    let client = Client::connect(remote.api_host(), vec![scope], &opts.client)?;
    let repo = Repo {
        client: &client,
        name: &remote.repository,
    };
    let top = repo.manifest(&remote.manifest_reference(), remote.digest.as_ref())?;
    let remote_digest = top.digest.clone();
    let plan = if top.kind.is_index() && opts.all_platforms {
        plan_all(&repo, top)?
    } else {
        plan_one(&repo, top, &opts.platform)?
    };
    let wanted = plan.blobs();
    let jobs = missing_blobs(store, &wanted)?;
    let fetcher = Fetcher {
        store,
        repo: &repo,
        progress,
        limits: opts.extract,
    };
    let extracted = fetcher.fetch_all_or_clean(&jobs, &plan, opts.jobs)?;
    let bytes_downloaded = jobs.iter().map(|j| j.size).sum();
    let (manifest_digest, image) = commit_blobs(store, &jobs, &plan, &name, opts)?;
    remember_sources(store, remote, &wanted)?;
    let extracted_while_downloading = extracted.iter().flatten().count();
    for layer in extracted.into_iter().flatten() {
        layer.commit(store)?;
    }
    if let (Some(limits), Some(image)) = (opts.extract, &image) {
        // Layers whose blobs were already here are extracted now.
        crate::bundle::ensure_layers(store, image, limits)?;
    }
    Ok(Pulled {
        name,
        manifest: manifest_digest,
        remote_digest,
        converted: plan.converted,
        blobs_downloaded: jobs.len(),
        bytes_downloaded,
        extracted_while_downloading,
    })
}

/// What a pull stores: image manifests (OCI bytes) and, for a pull of
/// all platforms, the index that is tagged.
struct Plan {
    manifests: Vec<media::OciManifest>,
    index: Option<Vec<u8>>,
    converted: bool,
}

impl Plan {
    /// Configs and layers of every image, in manifest order.
    fn blobs(&self) -> Vec<Descriptor> {
        let mut out = Vec::new();
        for m in &self.manifests {
            out.push(m.manifest.config().clone());
            out.extend(m.manifest.layers().iter().cloned());
        }
        out
    }
}

/// One image: the manifest itself, or `platform`'s entry of an index.
fn plan_one(repo: &Repo<'_>, top: Fetched, platform: &PlatformSpec) -> Result<Plan> {
    let doc = if top.kind.is_index() {
        let index = media::parse_index(&top.bytes, &top.digest)?;
        let chosen = select_platform(&index, platform)?;
        let digest = Digest::from_oci(chosen.digest())?;
        repo.manifest(&digest.to_string(), Some(&digest))?
    } else {
        top
    };
    let oci = media::to_oci(&doc.bytes, doc.kind, &doc.digest)?;
    Ok(Plan {
        converted: oci.converted,
        manifests: vec![oci],
        index: None,
    })
}

/// Every image of an index, and the index (rewritten to OCI, with the
/// new manifest digests, when any part was Docker's).
fn plan_all(repo: &Repo<'_>, top: Fetched) -> Result<Plan> {
    let index = media::parse_index(&top.bytes, &top.digest)?;
    let mut children = Vec::new();
    for entry in index.manifests() {
        let digest = Digest::from_oci(entry.digest())?;
        let doc = repo.manifest(&digest.to_string(), Some(&digest))?;
        if doc.kind.is_index() {
            return Err(Error::InvalidImage(format!(
                "index {} holds another index ({digest}): not supported",
                top.digest
            )));
        }
        children.push((
            digest.clone(),
            media::to_oci(&doc.bytes, doc.kind, &digest)?,
        ));
    }
    let (index_bytes, converted) = media::oci_index(&top.bytes, top.kind, &children)?;
    Ok(Plan {
        manifests: children.into_iter().map(|(_, m)| m).collect(),
        index: Some(index_bytes),
        converted,
    })
}

/// Move the downloaded blobs and the manifests into the store and name
/// the image once it loads whole (an artifact that is not an image, or a
/// config that does not fit its manifest, is refused here). On failure
/// the blobs this pull added are taken out again.
fn commit_blobs(
    store: &Store,
    jobs: &[BlobJob],
    plan: &Plan,
    name: &Reference,
    opts: &PullOptions,
) -> Result<(Digest, Option<crate::image::Image>)> {
    let mut docs: Vec<&[u8]> = plan.manifests.iter().map(|m| m.bytes.as_slice()).collect();
    let (tagged, media_type) = match &plan.index {
        Some(index) => (index.as_slice(), MediaType::ImageIndex),
        None => (docs[0], MediaType::ImageManifest),
    };
    if let Some(index) = &plan.index {
        docs.push(index);
    }
    let tagged_digest = Digest::of_bytes(tagged);
    let mut added: Vec<Digest> = docs
        .iter()
        .map(|d| Digest::of_bytes(d))
        .filter(|d| !store.has_blob(d))
        .collect();
    let result = (|| {
        for job in jobs {
            store.adopt_file(&partial_path(store, &job.digest), &job.digest)?;
            added.push(job.digest.clone());
        }
        for doc in &docs {
            store.write_blob_bytes(doc)?;
        }
        let desc = Descriptor::new(media_type, tagged.len() as u64, tagged_digest.to_oci()?);
        let image = match load_image(store, &desc, &opts.platform) {
            Ok(image) => Some(image),
            // All platforms were asked for; this host's may not be there.
            Err(Error::NoMatchingPlatform { .. }) if plan.index.is_some() => None,
            Err(e) => return Err(e),
        };
        store.set_tag(name, &desc)?;
        Ok(image)
    })();
    match result {
        Ok(image) => Ok((tagged_digest, image)),
        Err(e) => {
            for digest in &added {
                let _ = fs::remove_file(store.blob_path(digest));
            }
            for job in jobs {
                let _ = fs::remove_file(partial_path(store, &job.digest));
            }
            Err(e)
        }
    }
}

/// Failures of the data itself (not of the network): nothing of them is
/// worth keeping for a later resume.
fn is_bad_content(e: &Error) -> bool {
    matches!(
        e,
        Error::DigestMismatch { .. }
            | Error::SizeMismatch { .. }
            | Error::UnsafeEntry { .. }
            | Error::LayerTooLarge(_)
            | Error::InvalidImage(_)
    )
}

/// Downloads the blobs of one pull.
struct Fetcher<'a> {
    store: &'a Store,
    repo: &'a Repo<'a>,
    progress: &'a dyn Progress,
    /// Extract layers while they download, with these limits.
    limits: Option<Limits>,
}

impl Fetcher<'_> {
    /// [`Fetcher::fetch_all`]; when the data itself was bad, the partial
    /// files of every job go too (nothing of them is worth resuming).
    fn fetch_all_or_clean(
        &self,
        jobs: &[BlobJob],
        plan: &Plan,
        threads: usize,
    ) -> Result<Vec<Option<Extracted>>> {
        // Streamed extraction follows one image's config; with several,
        // the platform's image is extracted after the download.
        let stream_extract = match plan.manifests.as_slice() {
            [one] => Some(&one.manifest),
            _ => None,
        };
        let result = self.fetch_all(jobs, stream_extract, threads);
        if let Err(e) = &result {
            if is_bad_content(e) {
                for job in jobs {
                    let _ = fs::remove_file(partial_path(self.store, &job.digest));
                }
            }
        }
        result
    }

    /// Download `jobs` in parallel. With extraction on, the config comes
    /// first (its diff IDs name the layers), then the layers stream into
    /// the extractors as they arrive.
    fn fetch_all(
        &self,
        jobs: &[BlobJob],
        manifest: Option<&ImageManifest>,
        threads: usize,
    ) -> Result<Vec<Option<Extracted>>> {
        let cancel = AtomicBool::new(false);
        let (Some(limits), Some(manifest)) = (self.limits, manifest) else {
            return run_parallel(jobs, threads, &cancel, |job| {
                self.download(job, None, &cancel)
            });
        };
        let config = Digest::from_oci(manifest.config().digest())?;
        let (config_jobs, layer_jobs): (Vec<&BlobJob>, Vec<&BlobJob>) =
            jobs.iter().partition(|j| j.digest == config);
        for job in config_jobs {
            self.download(job, None, &cancel)?;
        }
        let targets = self.layer_targets(manifest, &config)?;
        run_parallel(&layer_jobs, threads, &cancel, |job| {
            let target = targets
                .iter()
                .find(|(d, _)| *d == job.digest)
                .map(|(_, t)| (t.clone(), limits));
            self.download(job, target, &cancel)
        })
    }

    /// (layer digest, target) for the layers not yet in the cache. The
    /// config is read from the store or from its finished download.
    fn layer_targets(
        &self,
        manifest: &ImageManifest,
        config: &Digest,
    ) -> Result<Vec<(Digest, Target)>> {
        let data = if self.store.has_blob(config) {
            self.store.read_blob(config)?
        } else {
            let path = partial_path(self.store, config);
            let mut data = Vec::new();
            File::open(&path)
                .and_then(|f| f.take(MAX_JSON_BLOB).read_to_end(&mut data))
                .ctx(|| format!("read {}", path.display()))?;
            data
        };
        let value: serde_json::Value =
            serde_json::from_slice(&data).ctx(|| format!("image config {config}"))?;
        let diff_ids = value["rootfs"]["diff_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d.as_str().unwrap_or("").parse::<Digest>())
            .collect::<Result<Vec<Digest>>>()?;
        if diff_ids.len() != manifest.layers().len() {
            return Err(Error::InvalidImage(format!(
                "config {config} lists {} diff IDs for {} layers",
                diff_ids.len(),
                manifest.layers().len()
            )));
        }
        let chains = chain_ids(&diff_ids);
        let mut targets = Vec::new();
        for ((layer, diff_id), chain_id) in manifest.layers().iter().zip(diff_ids).zip(chains) {
            if !self.store.layer_dir(&chain_id).is_dir() {
                let target = Target { diff_id, chain_id };
                targets.push((Digest::from_oci(layer.digest())?, target));
            }
        }
        Ok(targets)
    }

    fn download(
        &self,
        job: &BlobJob,
        extract: Option<(Target, Limits)>,
        cancel: &AtomicBool,
    ) -> Result<Option<Extracted>> {
        download_blob(self.store, self.repo, job, extract, cancel, self.progress)
    }
}

fn remember_sources(store: &Store, remote: &RemoteRef, blobs: &[Descriptor]) -> Result<()> {
    let mut sources = Sources::load(store)?;
    for d in blobs {
        sources.add(
            &Digest::from_oci(d.digest())?,
            &remote.registry,
            &remote.repository,
        );
    }
    sources.save(store)
}

/// One repository on a connected registry.
pub(crate) struct Repo<'a> {
    pub client: &'a Client,
    pub name: &'a str,
}

/// A manifest document as the registry sent it.
pub(crate) struct Fetched {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub kind: Kind,
}

impl Repo<'_> {
    fn url(&self, rest: &str) -> String {
        self.client.url(&format!("/v2/{}/{rest}", self.name))
    }

    /// GET a manifest by tag or digest, checked against the digest we
    /// asked for or, for tags, the one the registry announces.
    fn manifest(&self, reference: &str, expected: Option<&Digest>) -> Result<Fetched> {
        let what = format!("manifest {}:{reference}", self.name);
        let req = Request::new(Method::GET, self.url(&format!("manifests/{reference}")))
            .header("accept", media::ACCEPT);
        let mut resp = self.client.send(&req, &what)?;
        if resp.status() == 404 {
            return Err(Error::ImageNotFound(format!(
                "{}/{}:{reference}",
                self.client.registry(),
                self.name
            )));
        }
        if !resp.status().is_success() {
            return Err(client::status_error(&what, &mut resp));
        }
        let content_type = client::header(&resp, "content-type");
        let announced = client::header(&resp, "docker-content-digest");
        let bytes = client::read_small(&mut resp, &what)?;
        let digest = Digest::of_bytes(&bytes);
        let announced = announced.and_then(|a| a.parse::<Digest>().ok());
        if let Some(want) = expected.or(announced.as_ref()) {
            check_digest(&what, want, &digest)?;
        }
        let kind = media::classify(&bytes, content_type.as_deref())?;
        Ok(Fetched {
            bytes,
            digest,
            kind,
        })
    }
}

/// One blob to download.
pub(crate) struct BlobJob {
    digest: Digest,
    size: u64,
}

fn missing_blobs(store: &Store, wanted: &[Descriptor]) -> Result<Vec<BlobJob>> {
    let mut jobs: Vec<BlobJob> = Vec::new();
    for d in wanted {
        let digest = Digest::from_oci(d.digest())?;
        if !store.has_blob(&digest) && !jobs.iter().any(|j| j.digest == digest) {
            jobs.push(BlobJob {
                digest,
                size: d.size(),
            });
        }
    }
    Ok(jobs)
}

/// Where a blob is downloaded to; stable, so a later pull resumes it.
fn partial_path(store: &Store, digest: &Digest) -> PathBuf {
    store.tmp_dir().join(format!("partial-{}", digest.hex()))
}

/// A download in progress: the partial file, the hash of its content,
/// and the extraction it feeds (if asked for).
struct Partial<'a> {
    store: &'a Store,
    file: File,
    hasher: Sha256,
    have: u64,
    extract: Option<(Target, Limits)>,
    extraction: Option<Extraction>,
}

impl<'a> Partial<'a> {
    /// Open (or create) the partial file and take in what it already
    /// holds (hashing it, and extracting it when asked).
    fn open(
        store: &'a Store,
        path: &Path,
        size: u64,
        extract: Option<(Target, Limits)>,
    ) -> Result<Partial<'a>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .ctx(|| format!("open {}", path.display()))?;
        let mut partial = Partial {
            store,
            file,
            hasher: Sha256::new(),
            have: 0,
            extract,
            extraction: None,
        };
        partial.start_extraction()?;
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = partial
                .file
                .read(&mut buf)
                .ctx(|| format!("read {}", path.display()))?;
            if n == 0 {
                break;
            }
            partial.take_in(&buf[..n]);
            if partial.have > size {
                partial.restart()?;
                break;
            }
        }
        Ok(partial)
    }

    fn start_extraction(&mut self) -> Result<()> {
        self.extraction = None;
        if let Some((target, limits)) = &self.extract {
            self.extraction = Some(Extraction::start(self.store, target.clone(), *limits)?);
        }
        Ok(())
    }

    fn restart(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .ctx(|| "truncate partial blob".to_owned())?;
        self.file
            .seek(SeekFrom::Start(0))
            .ctx(|| "rewind partial blob".to_owned())?;
        self.hasher = Sha256::new();
        self.have = 0;
        self.start_extraction()
    }

    fn append(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_all(data)
            .ctx(|| "write partial blob".to_owned())?;
        self.take_in(data);
        Ok(())
    }

    fn take_in(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.have += data.len() as u64;
        if let Some(x) = &mut self.extraction {
            x.feed(data);
        }
    }
}

/// How one body read ended.
enum Streamed {
    Complete,
    /// The connection broke or ended early: resume from `have`.
    Interrupted(ureq::Error),
}

fn download_blob(
    store: &Store,
    repo: &Repo<'_>,
    job: &BlobJob,
    extract: Option<(Target, Limits)>,
    cancel: &AtomicBool,
    progress: &dyn Progress,
) -> Result<Option<Extracted>> {
    let what = format!("blob {}", job.digest);
    let path = partial_path(store, &job.digest);
    let bar = progress.blob(&job.digest, job.size);
    let mut partial = Partial::open(store, &path, job.size, extract)?;
    let mut interruptions = 0;
    while partial.have < job.size {
        bar.position(partial.have);
        match fetch_into(repo, job, &mut partial, cancel, &*bar, &what)? {
            Streamed::Complete => {}
            Streamed::Interrupted(e) => {
                interruptions += 1;
                if interruptions >= repo.client.attempts() {
                    return Err(Error::Transport {
                        what: format!("download {what}"),
                        cause: Box::new(e),
                    });
                }
                std::thread::sleep(repo.client.delay(interruptions - 1));
            }
        }
    }
    partial
        .file
        .sync_all()
        .ctx(|| format!("sync {}", path.display()))?;
    let actual = Digest::from_hex(&hex::encode(partial.hasher.finalize()))?;
    check_digest(&format!("{what} from {}", repo.name), &job.digest, &actual)?;
    let extracted = partial
        .extraction
        .take()
        .map(Extraction::finish)
        .transpose()?;
    bar.finish(if extracted.is_some() {
        "extracted"
    } else {
        "done"
    });
    Ok(extracted)
}

/// One GET of the blob (from `have` on, with Range), streamed into the
/// partial file while hashing.
fn fetch_into(
    repo: &Repo<'_>,
    job: &BlobJob,
    partial: &mut Partial<'_>,
    cancel: &AtomicBool,
    bar: &dyn BlobProgress,
    what: &str,
) -> Result<Streamed> {
    let mut req = Request::new(Method::GET, repo.url(&format!("blobs/{}", job.digest)));
    if partial.have > 0 {
        req = req.header("range", format!("bytes={}-", partial.have));
    }
    let mut resp = repo.client.send(&req.body(Body::Empty), what)?;
    match resp.status().as_u16() {
        206 if partial.have > 0 && range_start(&resp) == Some(partial.have) => {}
        200 | 206 => partial.restart()?,
        // The range is off (the file changed under us): start over.
        416 => {
            partial.restart()?;
            return Ok(Streamed::Complete);
        }
        404 => {
            return Err(Error::BlobMissing(format!(
                "{} in {}",
                job.digest, repo.name
            )))
        }
        _ => return Err(client::status_error(what, &mut resp)),
    }
    let mut body = resp.body_mut().as_reader();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Invalid(format!("{what}: cancelled")));
        }
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Ok(Streamed::Interrupted(ureq::Error::Io(e))),
        };
        if partial.have + n as u64 > job.size {
            return Err(Error::SizeMismatch {
                what: what.to_owned(),
                expected: job.size,
                actual: partial.have + n as u64,
            });
        }
        partial.append(&buf[..n])?;
        bar.position(partial.have);
    }
    if partial.have < job.size {
        let early = io::Error::new(io::ErrorKind::UnexpectedEof, "body ended early");
        return Ok(Streamed::Interrupted(ureq::Error::Io(early)));
    }
    Ok(Streamed::Complete)
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` answer.
fn range_start(resp: &client::HttpResponse) -> Option<u64> {
    let value = client::header(resp, "content-range")?;
    let range = value.trim().strip_prefix("bytes")?.trim();
    range.split('-').next()?.trim().parse().ok()
}
