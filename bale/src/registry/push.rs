//! `bale push`: blobs first (skipped when the registry has them, mounted
//! from another repository it has them in, else uploaded monolithically
//! or in chunks), then the manifest.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use ureq::http::Method;

use super::client::{self, Body, Client, ClientOptions, Request};
use super::media;
use super::reference::RemoteRef;
use super::sources::Sources;
use super::{run_parallel, BlobProgress, Progress};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{is_index_media_type, load_image, PlatformSpec};
use crate::store::{check_digest, Store};

#[derive(Clone, Debug)]
pub struct PushOptions {
    pub client: ClientOptions,
    pub platform: PlatformSpec,
    /// Blobs uploaded at once.
    pub jobs: usize,
    /// Upload blobs larger than this in PATCH chunks of this size;
    /// 0 uploads every blob in one PUT.
    pub chunk_size: u64,
    /// When the image is an index, push it and every image in it (else
    /// only `platform`'s image).
    pub all_platforms: bool,
}

/// What a push did.
#[derive(Debug)]
pub struct Pushed {
    pub manifest: Digest,
    pub uploaded: usize,
    pub existed: usize,
    pub mounted: usize,
    pub bytes_uploaded: u64,
}

/// How one blob got to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Existed,
    Mounted,
    Uploaded(u64),
}

/// One blob to push, with the repositories it could be mounted from.
struct BlobJob {
    digest: Digest,
    size: u64,
    mount_from: Vec<String>,
}

pub fn push(
    store: &Store,
    image_name: &str,
    remote: &RemoteRef,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<Pushed> {
    let (_, desc) = store.resolve(image_name)?;
    let plan = plan_push(store, &desc, opts)?;
    if let Some(want) = &remote.digest {
        check_digest(
            &format!("push of {image_name} to {remote}"),
            want,
            &plan.top.digest,
        )?;
    }
    let mut sources = Sources::load(store)?;
    let jobs = blob_jobs(store, &plan.blobs, &sources, remote)?;

    let mut scopes = vec![format!("repository:{}:pull,push", remote.repository)];
    let mounts: BTreeSet<&String> = jobs.iter().flat_map(|j| j.mount_from.first()).collect();
    scopes.extend(mounts.iter().map(|src| format!("repository:{src}:pull")));
    let client = Client::connect(remote.api_host(), scopes, &opts.client)?;
    let repo = PushRepo {
        client: &client,
        name: &remote.repository,
        chunk_size: opts.chunk_size,
    };

    let cancel = AtomicBool::new(false);
    let outcomes = run_parallel(&jobs, opts.jobs, &cancel, |job| {
        let bar = progress.blob(&job.digest, job.size);
        let outcome = repo.push_blob(store, job, &*bar)?;
        bar.finish(match outcome {
            Outcome::Existed => "exists",
            Outcome::Mounted => "mounted",
            Outcome::Uploaded(_) => "done",
        });
        Ok(outcome)
    })?;
    let tag = remote.tag.clone().unwrap_or_else(|| match &remote.digest {
        Some(d) => d.to_string(),
        None => "latest".to_owned(),
    });
    // Images before the index that names them.
    for doc in &plan.children {
        repo.put_manifest(&doc.digest.to_string(), doc)?;
    }
    repo.put_manifest(&tag, &plan.top)?;

    for job in &jobs {
        sources.add(&job.digest, &remote.registry, &remote.repository);
    }
    sources.save(store)?;
    let mut pushed = Pushed {
        manifest: plan.top.digest.clone(),
        uploaded: 0,
        existed: 0,
        mounted: 0,
        bytes_uploaded: 0,
    };
    for outcome in outcomes {
        match outcome {
            Outcome::Existed => pushed.existed += 1,
            Outcome::Mounted => pushed.mounted += 1,
            Outcome::Uploaded(n) => {
                pushed.uploaded += 1;
                pushed.bytes_uploaded += n;
            }
        }
    }
    Ok(pushed)
}

/// A manifest or index as it is PUT.
struct Doc {
    bytes: Vec<u8>,
    media_type: String,
    digest: Digest,
}

impl Doc {
    fn load(store: &Store, digest: Digest, media_type: Option<String>) -> Result<Doc> {
        let bytes = store.read_blob(&digest)?;
        // The document's own mediaType wins over the descriptor's.
        let own = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_owned));
        Ok(Doc {
            media_type: own
                .or(media_type)
                .unwrap_or_else(|| media::OCI_MANIFEST.to_owned()),
            bytes,
            digest,
        })
    }
}

/// What a push sends: blobs, the images of an index (by digest), and the
/// document the tag names.
struct PushPlan {
    blobs: Vec<Descriptor>,
    children: Vec<Doc>,
    top: Doc,
}

fn plan_push(store: &Store, desc: &Descriptor, opts: &PushOptions) -> Result<PushPlan> {
    let digest = Digest::from_oci(desc.digest())?;
    let is_index = is_index_media_type(desc.media_type().as_ref())
        || serde_json::from_slice::<serde_json::Value>(&store.read_blob(&digest)?)
            .is_ok_and(|v| v.get("manifests").is_some() && v.get("layers").is_none());
    if opts.all_platforms && is_index {
        let top = Doc::load(store, digest.clone(), Some(media::OCI_INDEX.to_owned()))?;
        let index: ImageIndex = serde_json::from_slice(&top.bytes)
            .map_err(|e| Error::InvalidImage(format!("index {digest}: {e}")))?;
        let mut blobs = Vec::new();
        let mut children = Vec::new();
        for entry in index.manifests() {
            let child = Doc::load(
                store,
                Digest::from_oci(entry.digest())?,
                Some(entry.media_type().to_string()),
            )?;
            let manifest: ImageManifest = serde_json::from_slice(&child.bytes).map_err(|e| {
                Error::InvalidImage(format!("manifest {} in index {digest}: {e}", child.digest))
            })?;
            blobs.extend(manifest.layers().iter().cloned());
            blobs.push(manifest.config().clone());
            children.push(child);
        }
        return Ok(PushPlan {
            blobs,
            children,
            top,
        });
    }
    let image = load_image(store, desc, &opts.platform)?;
    let mut blobs: Vec<Descriptor> = image.layers().to_vec();
    blobs.push(image.manifest.config().clone());
    let media_type = image.manifest.media_type().as_ref().map(|m| m.to_string());
    Ok(PushPlan {
        blobs,
        children: Vec::new(),
        top: Doc::load(store, image.manifest_digest.clone(), media_type)?,
    })
}

fn blob_jobs(
    store: &Store,
    wanted: &[Descriptor],
    sources: &Sources,
    remote: &RemoteRef,
) -> Result<Vec<BlobJob>> {
    let mut jobs: Vec<BlobJob> = Vec::new();
    for d in wanted {
        let digest = Digest::from_oci(d.digest())?;
        if jobs.iter().any(|j| j.digest == digest) {
            continue;
        }
        if !store.has_blob(&digest) {
            return Err(Error::BlobMissing(digest.to_string()));
        }
        let mount_from = sources.repositories_on(&digest, &remote.registry, &remote.repository);
        jobs.push(BlobJob {
            digest,
            size: d.size(),
            mount_from,
        });
    }
    Ok(jobs)
}

struct PushRepo<'a> {
    client: &'a Client,
    name: &'a str,
    chunk_size: u64,
}

impl PushRepo<'_> {
    fn url(&self, rest: &str) -> String {
        self.client.url(&format!("/v2/{}/{rest}", self.name))
    }

    fn push_blob(&self, store: &Store, job: &BlobJob, bar: &dyn BlobProgress) -> Result<Outcome> {
        if self.has_blob(job)? {
            return Ok(Outcome::Existed);
        }
        let location = match job.mount_from.first() {
            Some(from) => match self.try_mount(job, from)? {
                Some(location) => location,
                None => return Ok(Outcome::Mounted),
            },
            None => self.start_upload(&job.digest)?,
        };
        let path = store.blob_path(&job.digest);
        if self.chunk_size == 0 || job.size <= self.chunk_size {
            let sent = |n: u64| bar.position(n);
            let body = Body::File {
                path: &path,
                offset: 0,
                len: job.size,
                sent: Some(&sent),
            };
            self.finish_upload(&location, &job.digest, body)?;
        } else {
            let location = self.upload_chunks(location, job, &path, bar)?;
            self.finish_upload(&location, &job.digest, Body::Bytes(&[]))?;
        }
        Ok(Outcome::Uploaded(job.size))
    }

    fn has_blob(&self, job: &BlobJob) -> Result<bool> {
        let what = format!("check blob {} in {}", job.digest, self.name);
        let req = Request::new(Method::HEAD, self.url(&format!("blobs/{}", job.digest)));
        let mut resp = self.client.send(&req, &what)?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(client::status_error(&what, &mut resp)),
        }
    }

    /// Ask for a cross-repository mount. `None` when it was mounted, else
    /// the upload session the registry opened instead.
    fn try_mount(&self, job: &BlobJob, from: &str) -> Result<Option<String>> {
        let what = format!("mount blob {} from {from} into {}", job.digest, self.name);
        let url = client::with_query(
            &self.url("blobs/uploads/"),
            "mount",
            &job.digest.to_string(),
        );
        let url = client::with_query(&url, "from", from);
        let req = Request::new(Method::POST, url).body(Body::Bytes(&[]));
        let mut resp = self.client.send(&req, &what)?;
        match resp.status().as_u16() {
            201 => Ok(None),
            202 => self.location(&resp, &what).map(Some),
            _ => Err(client::status_error(&what, &mut resp)),
        }
    }

    fn start_upload(&self, digest: &Digest) -> Result<String> {
        let what = format!("start upload of blob {digest} to {}", self.name);
        let req = Request::new(Method::POST, self.url("blobs/uploads/")).body(Body::Bytes(&[]));
        let mut resp = self.client.send(&req, &what)?;
        if resp.status() != 202 {
            return Err(client::status_error(&what, &mut resp));
        }
        self.location(&resp, &what)
    }

    fn location(&self, resp: &client::HttpResponse, what: &str) -> Result<String> {
        client::header(resp, "location")
            .map(|l| self.client.location_url(&l))
            .ok_or_else(|| Error::Registry {
                registry: self.client.registry().to_owned(),
                reason: format!("{what}: no Location in the answer"),
            })
    }

    /// PATCH the blob in chunks; returns the session's last location.
    fn upload_chunks(
        &self,
        mut location: String,
        job: &BlobJob,
        path: &std::path::Path,
        bar: &dyn BlobProgress,
    ) -> Result<String> {
        let sent = |n: u64| bar.position(n);
        let mut offset = 0;
        while offset < job.size {
            let len = self.chunk_size.min(job.size - offset);
            let what = format!(
                "upload bytes {offset}-{} of blob {}",
                offset + len - 1,
                job.digest
            );
            let req = Request::new(Method::PATCH, location.clone())
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{offset}-{}", offset + len - 1))
                .body(Body::File {
                    path,
                    offset,
                    len,
                    sent: Some(&sent),
                });
            let mut resp = self.client.send(&req, &what)?;
            if resp.status() != 202 {
                return Err(client::status_error(&what, &mut resp));
            }
            location = self.location(&resp, &what)?;
            offset += len;
            bar.position(offset);
        }
        Ok(location)
    }

    /// The closing PUT with the digest (and, for monolithic uploads, the
    /// whole blob as body).
    fn finish_upload(&self, location: &str, digest: &Digest, body: Body<'_>) -> Result<()> {
        let what = format!("upload blob {digest} to {}", self.name);
        let url = client::with_query(location, "digest", &digest.to_string());
        let req = Request::new(Method::PUT, url)
            .header("content-type", "application/octet-stream")
            .body(body);
        let mut resp = self.client.send(&req, &what)?;
        if resp.status() != 201 {
            return Err(client::status_error(&what, &mut resp));
        }
        Ok(())
    }

    fn put_manifest(&self, reference: &str, doc: &Doc) -> Result<()> {
        let (bytes, media_type, digest) = (&doc.bytes, &doc.media_type, &doc.digest);
        let what = format!("put manifest {}:{reference}", self.name);
        let req = Request::new(Method::PUT, self.url(&format!("manifests/{reference}")))
            .header("content-type", media_type)
            .body(Body::Bytes(bytes));
        let mut resp = self.client.send(&req, &what)?;
        if resp.status() != 201 {
            return Err(client::status_error(&what, &mut resp));
        }
        if let Some(announced) = client::header(&resp, "docker-content-digest") {
            if let Ok(announced) = announced.parse::<Digest>() {
                check_digest(&what, digest, &announced)?;
            }
        }
        Ok(())
    }
}
