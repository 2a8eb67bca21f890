//! The image store: a standard OCI image layout (readable and writable by
//! skopeo and umoci) plus bale's private state under `bale/`: the cache of
//! extracted layers keyed by ChainID, temp space, and the bundles that use
//! the store.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder};
use rustix::fs::{self as rfs, FlockOperation, Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, HashingReader};
use crate::error::{Context, Error, Result};
use crate::fsutil;
use crate::reference::Reference;

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
const LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// JSON blobs (manifests, configs, indexes) larger than this are refused.
pub const MAX_JSON_BLOB: u64 = 8 << 20;

/// An open store. Holding it holds an exclusive lock on the store, so two
/// bale processes never interleave index updates or garbage collection.
pub struct Store {
    root: PathBuf,
    _lock: OwnedFd,
}

/// A bundle registered as a user of the store: its image and layers stay
/// referenced (safe from `gc`) while the bundle exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleRecord {
    pub bundle: PathBuf,
    pub manifest: String,
    pub chain_ids: Vec<String>,
}

impl Store {
    pub fn open(root: &Path) -> Result<Store> {
        for dir in ["blobs/sha256", "bale/layers", "bale/tmp", "bale/bundles"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).ctx(|| format!("create {}", path.display()))?;
        }
        let root = root
            .canonicalize()
            .ctx(|| format!("resolve {}", root.display()))?;
        let lock = lock_file(&root.join("bale/lock"))?;
        let store = Store { root, _lock: lock };
        store.init_layout()?;
        Ok(store)
    }

    fn init_layout(&self) -> Result<()> {
        let layout = self.root.join("oci-layout");
        if !layout.exists() {
            fsutil::atomic_write(&layout, LAYOUT.as_bytes())?;
        }
        if !self.root.join("index.json").exists() {
            self.save_index(&empty_index()?)?;
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("bale/tmp")
    }

    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("bale/layers")
    }

    /// Where the layer stack ending in `chain_id` is extracted.
    pub fn layer_dir(&self, chain_id: &Digest) -> PathBuf {
        self.layers_dir().join(chain_id.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Open a blob for reading; callers that need it checked use
    /// [`Store::verify_blob`] or [`Store::read_blob`].
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        File::open(self.blob_path(digest)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::BlobMissing(digest.to_string()),
            _ => Error::Io {
                context: format!("open blob {digest}"),
                source: e,
            },
        })
    }

    /// Hash a stored blob end to end and compare with its name.
    pub fn verify_blob(&self, digest: &Digest) -> Result<u64> {
        let mut reader = HashingReader::new(self.open_blob(digest)?);
        reader.drain().ctx(|| format!("read blob {digest}"))?;
        let (actual, size) = reader.finish();
        check_digest(&format!("blob {digest}"), digest, &actual)?;
        Ok(size)
    }

    /// Read a small (JSON) blob, verified against its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let file = self.open_blob(digest)?;
        let mut reader = HashingReader::new(file.take(MAX_JSON_BLOB + 1));
        let mut data = Vec::new();
        reader
            .read_to_end(&mut data)
            .ctx(|| format!("read blob {digest}"))?;
        if data.len() as u64 > MAX_JSON_BLOB {
            return Err(Error::InvalidImage(format!(
                "blob {digest} is larger than {MAX_JSON_BLOB} bytes"
            )));
        }
        check_digest(&format!("blob {digest}"), digest, &reader.finish().0)?;
        Ok(data)
    }

    /// Store a stream as a blob. The data goes to a temp file, is hashed on
    /// the way, checked against `expected` (digest and size) if given, and
    /// only then renamed into place; a mismatch keeps nothing.
    pub fn write_blob(
        &self,
        reader: impl Read,
        expected: Option<(&Digest, Option<u64>)>,
    ) -> Result<(Digest, u64)> {
        let staged = stage_blob(&self.tmp_dir(), reader, expected)?;
        let digest = staged.digest.clone();
        let size = staged.size;
        self.adopt(staged)?;
        Ok((digest, size))
    }

    pub fn write_blob_bytes(&self, data: &[u8]) -> Result<Digest> {
        Ok(self.write_blob(data, None)?.0)
    }

    /// Move a staged (already verified) blob into the store.
    pub fn adopt(&self, staged: StagedBlob) -> Result<()> {
        let target = self.blob_path(&staged.digest);
        if target.exists() {
            return Ok(());
        }
        staged
            .file
            .persist(&target)
            .map_err(|e| e.error)
            .ctx(|| format!("rename blob into {}", target.display()))?;
        Ok(())
    }

    /// Move a file that was already verified as `digest` (and synced)
    /// into the store.
    pub fn adopt_file(&self, path: &Path, digest: &Digest) -> Result<()> {
        let target = self.blob_path(digest);
        if target.exists() {
            return fs::remove_file(path).ctx(|| format!("remove {}", path.display()));
        }
        fs::rename(path, &target).ctx(|| format!("rename blob into {}", target.display()))
    }

    pub fn load_index(&self) -> Result<ImageIndex> {
        let path = self.root.join("index.json");
        let data = fs::read(&path).ctx(|| format!("read {}", path.display()))?;
        serde_json::from_slice(&data).ctx(|| path.display().to_string())
    }

    pub fn save_index(&self, index: &ImageIndex) -> Result<()> {
        let data = serde_json::to_vec_pretty(index).ctx(|| "serialize index.json".to_owned())?;
        fsutil::atomic_write(&self.root.join("index.json"), &data)
    }

    /// All tagged images: (ref name, descriptor), in index order.
    pub fn tagged(&self) -> Result<Vec<(String, Descriptor)>> {
        let index = self.load_index()?;
        Ok(index
            .manifests()
            .iter()
            .filter_map(|d| ref_name(d).map(|n| (n.to_owned(), d.clone())))
            .collect())
    }

    /// Find an image by `name[:tag]`, or by manifest digest (full or a hex
    /// prefix of at least 6 characters).
    pub fn resolve(&self, wanted: &str) -> Result<(String, Descriptor)> {
        let index = self.load_index()?;
        if let Ok(reference) = Reference::parse(wanted) {
            let full = reference.to_string();
            let hit = index
                .manifests()
                .iter()
                .find(|d| ref_name(d) == Some(full.as_str()));
            if let Some(d) = hit {
                return Ok((full, d.clone()));
            }
        }
        // Names written by other tools (skopeo `oci:DIR:latest`) may be a
        // bare tag; match those as written.
        if let Some(d) = index
            .manifests()
            .iter()
            .find(|d| ref_name(d) == Some(wanted))
        {
            return Ok((wanted.to_owned(), d.clone()));
        }
        let hex = wanted.strip_prefix("sha256:").unwrap_or(wanted);
        if hex.len() >= 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: Vec<&Descriptor> = index
                .manifests()
                .iter()
                .filter(|d| d.digest().to_string().starts_with(&format!("sha256:{hex}")))
                .collect();
            let distinct: BTreeSet<String> = hits.iter().map(|d| d.digest().to_string()).collect();
            if distinct.len() == 1 {
                let d = hits[0];
                let name = ref_name(d).unwrap_or(wanted).to_owned();
                return Ok((name, d.clone()));
            }
        }
        Err(Error::ImageNotFound(wanted.to_owned()))
    }

    /// Point `reference` at `desc`, replacing any previous image of that name.
    pub fn set_tag(&self, reference: &Reference, desc: &Descriptor) -> Result<()> {
        let name = reference.to_string();
        let mut index = self.load_index()?;
        let mut manifests: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| ref_name(d) != Some(name.as_str()))
            .cloned()
            .collect();
        let mut tagged = desc.clone();
        let mut annotations = tagged.annotations().clone().unwrap_or_default();
        annotations.insert(REF_NAME.to_owned(), name);
        tagged.set_annotations(Some(annotations));
        manifests.push(tagged);
        index.set_manifests(manifests);
        self.save_index(&index)
    }

    /// Remove a tag; the blobs stay until `gc`.
    pub fn remove_tag(&self, name: &str) -> Result<()> {
        let mut index = self.load_index()?;
        let before = index.manifests().len();
        let manifests: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| ref_name(d) != Some(name))
            .cloned()
            .collect();
        if manifests.len() == before {
            return Err(Error::ImageNotFound(name.to_owned()));
        }
        index.set_manifests(manifests);
        self.save_index(&index)
    }

    fn bundle_record_path(&self, bundle: &Path) -> PathBuf {
        let key = Digest::of_bytes(bundle.as_os_str().as_encoded_bytes());
        self.root
            .join("bale/bundles")
            .join(format!("{}.json", key.hex()))
    }

    pub fn register_bundle(&self, record: &BundleRecord) -> Result<()> {
        let data =
            serde_json::to_vec_pretty(record).ctx(|| "serialize bundle record".to_owned())?;
        fsutil::atomic_write(&self.bundle_record_path(&record.bundle), &data)
    }

    pub fn unregister_bundle(&self, bundle: &Path) -> Result<()> {
        match fs::remove_file(self.bundle_record_path(bundle)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).ctx(|| format!("unregister bundle {}", bundle.display()))
            }
            _ => Ok(()),
        }
    }

    /// Bundles that still exist on disk; records of vanished bundles are
    /// dropped on the way.
    pub fn live_bundles(&self) -> Result<Vec<BundleRecord>> {
        let dir = self.root.join("bale/bundles");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
            let path = entry.ctx(|| format!("read {}", dir.display()))?.path();
            let Ok(data) = fs::read(&path) else { continue };
            let Ok(record) = serde_json::from_slice::<BundleRecord>(&data) else {
                continue;
            };
            if record.bundle.join("bale.json").exists() {
                out.push(record);
            } else {
                let _ = fs::remove_file(&path);
            }
        }
        Ok(out)
    }

    /// Names of cached layer directories (ChainID hex).
    pub fn cached_layers(&self) -> Result<Vec<String>> {
        let dir = self.layers_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
            let entry = entry.ctx(|| format!("read {}", dir.display()))?;
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }

    /// Hex names of all stored blobs.
    pub fn blob_names(&self) -> Result<Vec<String>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).ctx(|| format!("read {}", dir.display()))? {
            let entry = entry.ctx(|| format!("read {}", dir.display()))?;
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(out)
    }
}

/// A blob written to a temp file and verified, not yet in the store.
pub struct StagedBlob {
    pub file: tempfile::NamedTempFile,
    pub digest: Digest,
    pub size: u64,
}

/// Copy `reader` into a temp file in `dir`, hashing on the way, and check
/// it against `expected`. On error the temp file is deleted.
pub fn stage_blob(
    dir: &Path,
    reader: impl Read,
    expected: Option<(&Digest, Option<u64>)>,
) -> Result<StagedBlob> {
    let mut file = tempfile::Builder::new()
        .prefix("blob-")
        .tempfile_in(dir)
        .ctx(|| format!("create temp file in {}", dir.display()))?;
    let mut hashing = HashingReader::new(reader);
    io::copy(&mut hashing, file.as_file_mut()).ctx(|| "write blob".to_owned())?;
    file.as_file().sync_all().ctx(|| "sync blob".to_owned())?;
    let (digest, size) = hashing.finish();
    if let Some((want, want_size)) = expected {
        check_digest(&format!("blob {want}"), want, &digest)?;
        if let Some(want_size) = want_size.filter(|&s| s != size) {
            return Err(Error::SizeMismatch {
                what: format!("blob {want}"),
                expected: want_size,
                actual: size,
            });
        }
    }
    Ok(StagedBlob { file, digest, size })
}

pub fn check_digest(what: &str, expected: &Digest, actual: &Digest) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            what: what.to_owned(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

pub fn ref_name(desc: &Descriptor) -> Option<&str> {
    desc.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

pub fn empty_index() -> Result<ImageIndex> {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .manifests(Vec::<Descriptor>::new())
        .build()
        .map_err(|e| Error::Invalid(format!("build empty index: {e}")))
}

fn lock_file(path: &Path) -> Result<OwnedFd> {
    let fd = rfs::open(
        path,
        OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .ctx(|| format!("open lock {}", path.display()))?;
    rfs::flock(&fd, FlockOperation::LockExclusive).ctx(|| format!("lock {}", path.display()))?;
    Ok(fd)
}

/// Annotations map helper used when building descriptors.
pub fn annotations_with(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}
