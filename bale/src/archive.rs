//! Import and export of images: oci-archive, docker-archive and OCI
//! layout directories.
//!
//! Imports stage every blob in a temp directory inside the store, checked
//! against its digest as it is written; only when the whole image is
//! present and consistent are the blobs renamed into the store and the
//! index updated. A bad archive leaves the store as it was.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, HashingReader};
use crate::error::{Context, Error, Result};
use crate::image::{is_index_media_type, select_platform, Image, PlatformSpec};
use crate::layer::decompress;
use crate::reference::Reference;
use crate::store::{self, ref_name, stage_blob, StagedBlob, Store, MAX_JSON_BLOB, REF_NAME};

const CONTAINERD_NAME: &str = "io.containerd.image.name";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OciArchive,
    DockerArchive,
    OciDir,
}

impl std::str::FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "oci-archive" => Ok(Format::OciArchive),
            "docker-archive" => Ok(Format::DockerArchive),
            "oci" | "oci-dir" => Ok(Format::OciDir),
            other => Err(Error::Invalid(format!(
                "unknown format {other:?} (oci-archive, docker-archive, oci-dir)"
            ))),
        }
    }
}

/// Called with (what, bytes) as blobs are staged.
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64);

pub struct ImportOptions {
    pub platform: PlatformSpec,
    /// Name for the imported image (required when the source names none).
    pub name: Option<Reference>,
}

/// Guess the format of `path`: a directory is an OCI layout; an archive
/// with manifest.json is a docker-archive, one with index.json an
/// oci-archive.
pub fn detect_format(path: &Path) -> Result<Format> {
    if path.is_dir() {
        return Ok(Format::OciDir);
    }
    let file = File::open(path).ctx(|| format!("open {}", path.display()))?;
    let mut archive = tar::Archive::new(file);
    let (mut docker, mut oci) = (false, false);
    let not_tar = || {
        format!(
            "{} is not a tar archive or OCI layout directory",
            path.display()
        )
    };
    for entry in archive.entries_with_seek().ctx(not_tar)? {
        let entry = entry.ctx(not_tar)?;
        match archive_path(&entry.path_bytes()).as_deref() {
            Some("manifest.json") => docker = true,
            Some("index.json") => oci = true,
            _ => {}
        }
    }
    match (docker, oci) {
        (true, _) => Ok(Format::DockerArchive),
        (false, true) => Ok(Format::OciArchive),
        _ => Err(Error::InvalidArchive(format!(
            "{}: neither manifest.json nor index.json found",
            path.display()
        ))),
    }
}

/// Normalise a path inside an archive ("./a//b" -> "a/b"); None for
/// anything that tries to leave the archive root.
fn archive_path(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut parts = Vec::new();
    for comp in Path::new(text).components() {
        match comp {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// Blobs staged for an import, plus the store for blobs it already has.
struct Staging<'s> {
    store: &'s Store,
    blobs: HashMap<Digest, StagedBlob>,
    /// For OCI layout directories: where to fetch blobs from on demand.
    source_dir: Option<PathBuf>,
}

impl<'s> Staging<'s> {
    fn new(store: &'s Store, source_dir: Option<PathBuf>) -> Self {
        Staging {
            store,
            blobs: HashMap::new(),
            source_dir,
        }
    }

    fn add(&mut self, staged: StagedBlob) {
        self.blobs.entry(staged.digest.clone()).or_insert(staged);
    }

    /// Make sure blob `d` (of `size`, if known) is available, fetching it
    /// from a source directory when there is one.
    fn ensure(&mut self, d: &Digest, size: Option<u64>, progress: Progress<'_>) -> Result<()> {
        if let Some(staged) = self.blobs.get(d) {
            return check_size(d, size, staged.size);
        }
        if self.store.has_blob(d) {
            return Ok(());
        }
        let Some(dir) = &self.source_dir else {
            return Err(Error::InvalidArchive(format!("archive lacks blob {d}")));
        };
        let path = dir.join("blobs/sha256").join(d.hex());
        let file = File::open(&path)
            .map_err(|_| Error::BlobMissing(format!("{d} in {}", dir.display())))?;
        progress(&d.to_string(), size.unwrap_or(0));
        let staged = stage_blob(&self.store.tmp_dir(), file, Some((d, size)))?;
        self.blobs.insert(d.clone(), staged);
        Ok(())
    }

    fn read_json(
        &mut self,
        d: &Digest,
        size: Option<u64>,
        progress: Progress<'_>,
    ) -> Result<Vec<u8>> {
        self.ensure(d, size, progress)?;
        match self.blobs.get(d) {
            Some(staged) => {
                let mut data = Vec::new();
                File::open(staged.file.path())
                    .and_then(|f| f.take(MAX_JSON_BLOB).read_to_end(&mut data))
                    .ctx(|| format!("read staged blob {d}"))?;
                Ok(data)
            }
            None => self.store.read_blob(d),
        }
    }

    /// Move the blobs of the imported images into the store.
    fn commit(mut self, needed: &[Digest]) -> Result<()> {
        for d in needed {
            if let Some(staged) = self.blobs.remove(d) {
                self.store.adopt(staged)?;
            }
        }
        Ok(())
    }
}

fn check_size(d: &Digest, want: Option<u64>, have: u64) -> Result<()> {
    match want {
        Some(w) if w != have => Err(Error::SizeMismatch {
            what: format!("blob {d}"),
            expected: w,
            actual: have,
        }),
        _ => Ok(()),
    }
}

/// Import every image of `path`; returns the names and manifest digests.
pub fn import(
    store: &Store,
    path: &Path,
    format: Format,
    opts: &ImportOptions,
    progress: Progress<'_>,
) -> Result<Vec<(Reference, Digest)>> {
    let (mut staging, candidates) = match format {
        Format::OciDir => {
            let mut staging = Staging::new(store, Some(path.to_owned()));
            let index = read_layout_dir(path)?;
            let candidates = oci_candidates(&index, opts)?;
            let _ = &mut staging;
            (staging, candidates)
        }
        Format::OciArchive => {
            let mut staging = Staging::new(store, None);
            let index = stage_oci_archive(&mut staging, path, progress)?;
            let candidates = oci_candidates(&index, opts)?;
            (staging, candidates)
        }
        Format::DockerArchive => {
            let mut staging = Staging::new(store, None);
            let candidates = stage_docker_archive(&mut staging, path, opts, progress)?;
            (staging, candidates)
        }
    };
    let mut needed = Vec::new();
    let mut imported = Vec::new();
    for (name, desc) in candidates {
        let (manifest_desc, blobs) = collect_image(&mut staging, &desc, &opts.platform, progress)?;
        needed.extend(blobs);
        imported.push((name, manifest_desc));
    }
    staging.commit(&needed)?;
    let mut out = Vec::new();
    for (name, desc) in imported {
        store.set_tag(&name, &desc)?;
        out.push((name, Digest::from_oci(desc.digest())?));
    }
    Ok(out)
}

fn read_layout_dir(dir: &Path) -> Result<ImageIndex> {
    let layout = dir.join("oci-layout");
    if !layout.is_file() {
        return Err(Error::InvalidArchive(format!(
            "{} is not an OCI image layout (no oci-layout file)",
            dir.display()
        )));
    }
    let path = dir.join("index.json");
    let data = fs::read(&path).ctx(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&data).ctx(|| path.display().to_string())
}

/// Stream an oci-archive: blobs are staged (verified against their file
/// names), index.json is kept in memory.
fn stage_oci_archive(
    staging: &mut Staging<'_>,
    path: &Path,
    progress: Progress<'_>,
) -> Result<ImageIndex> {
    let file = File::open(path).ctx(|| format!("open {}", path.display()))?;
    let mut archive = tar::Archive::new(file);
    let mut index = None;
    for entry in archive
        .entries()
        .ctx(|| format!("read {}", path.display()))?
    {
        let mut entry = entry.ctx(|| format!("read {}", path.display()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let Some(name) = archive_path(&entry.path_bytes()) else {
            return Err(Error::InvalidArchive(format!(
                "entry {:?} leaves the archive",
                String::from_utf8_lossy(&entry.path_bytes())
            )));
        };
        if name == "index.json" {
            index = Some(read_small_json::<ImageIndex>(&mut entry, "index.json")?);
        } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            let digest = Digest::from_hex(hex)?;
            let size = entry.header().size().ok();
            progress(&digest.to_string(), size.unwrap_or(0));
            let staged = stage_blob(&staging.store.tmp_dir(), &mut entry, Some((&digest, size)))?;
            staging.add(staged);
        }
    }
    index.ok_or_else(|| Error::InvalidArchive("no index.json in oci-archive".into()))
}

fn read_small_json<T: serde::de::DeserializeOwned>(reader: impl Read, what: &str) -> Result<T> {
    let mut data = Vec::new();
    reader
        .take(MAX_JSON_BLOB)
        .read_to_end(&mut data)
        .ctx(|| format!("read {what}"))?;
    serde_json::from_slice(&data).ctx(|| what.to_owned())
}

/// Images named by an OCI index, with the names they are imported under.
fn oci_candidates(
    index: &ImageIndex,
    opts: &ImportOptions,
) -> Result<Vec<(Reference, Descriptor)>> {
    let entries = index.manifests();
    if entries.is_empty() {
        return Err(Error::InvalidArchive("the index lists no images".into()));
    }
    if let Some(name) = &opts.name {
        if entries.len() > 1 && !is_platform_set(entries) {
            return Err(Error::Invalid(format!(
                "the source holds {} images; import it without a name to keep theirs",
                entries.len()
            )));
        }
        return Ok(vec![(name.clone(), entries[0].clone())]);
    }
    if is_platform_set(entries) {
        return Err(Error::Invalid(
            "the source index lists platforms but no names; give a name".into(),
        ));
    }
    entries
        .iter()
        .map(|d| Ok((oci_entry_name(d)?, d.clone())))
        .collect()
}

/// A top-level index listing one image per platform without names (as
/// `docker buildx` writes) is one image.
fn is_platform_set(entries: &[Descriptor]) -> bool {
    entries
        .iter()
        .all(|d| d.platform().is_some() && ref_name(d).is_none())
}

fn oci_entry_name(desc: &Descriptor) -> Result<Reference> {
    let annotations = desc.annotations().clone().unwrap_or_default();
    if let Some(full) = annotations.get(CONTAINERD_NAME) {
        return Reference::parse(full.trim_start_matches("docker.io/library/"));
    }
    match annotations.get(REF_NAME) {
        Some(r) if r.contains(':') || r.contains('/') => Reference::parse(r),
        Some(tag) => Err(Error::Invalid(format!(
            "the image is tagged only {tag:?}, with no name; give a name"
        ))),
        None => Err(Error::Invalid(
            "an image in the source has no name; give a name".into(),
        )),
    }
}

/// Resolve `desc` to a single-platform manifest and make sure all of its
/// blobs are staged; returns the manifest descriptor and its blobs.
fn collect_image(
    staging: &mut Staging<'_>,
    desc: &Descriptor,
    platform: &PlatformSpec,
    progress: Progress<'_>,
) -> Result<(Descriptor, Vec<Digest>)> {
    let mut desc = desc.clone();
    for _ in 0..4 {
        let digest = Digest::from_oci(desc.digest())?;
        let data = staging.read_json(&digest, Some(desc.size()), progress)?;
        let value: serde_json::Value =
            serde_json::from_slice(&data).ctx(|| format!("manifest {digest}"))?;
        if is_index_media_type(desc.media_type().as_ref())
            || (value.get("manifests").is_some() && value.get("layers").is_none())
        {
            let index: ImageIndex =
                serde_json::from_value(value).ctx(|| format!("index {digest}"))?;
            desc = select_platform(&index, platform)?;
            continue;
        }
        let manifest: ImageManifest =
            serde_json::from_value(value).ctx(|| format!("manifest {digest}"))?;
        let mut blobs = vec![digest.clone()];
        let config = Digest::from_oci(manifest.config().digest())?;
        staging.ensure(&config, Some(manifest.config().size()), progress)?;
        blobs.push(config);
        for layer in manifest.layers() {
            let d = Digest::from_oci(layer.digest())?;
            staging.ensure(&d, Some(layer.size()), progress)?;
            blobs.push(d);
        }
        let mut clean = Descriptor::new(
            desc.media_type().clone(),
            desc.size(),
            desc.digest().clone(),
        );
        if let Some(p) = desc.platform() {
            clean.set_platform(Some(p.clone()));
        }
        return Ok((clean, blobs));
    }
    Err(Error::InvalidImage(
        "image indexes nested too deeply".into(),
    ))
}

/// One entry of a docker-archive's manifest.json.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Stream a docker-archive: every file is staged under its content
/// digest; manifest.json then says which is the config and the layers,
/// from which an OCI manifest is built.
fn stage_docker_archive(
    staging: &mut Staging<'_>,
    path: &Path,
    opts: &ImportOptions,
    progress: Progress<'_>,
) -> Result<Vec<(Reference, Descriptor)>> {
    let file = File::open(path).ctx(|| format!("open {}", path.display()))?;
    let mut archive = tar::Archive::new(file);
    let mut files: HashMap<String, (Digest, u64)> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    let mut manifests: Option<Vec<DockerManifest>> = None;
    for entry in archive
        .entries()
        .ctx(|| format!("read {}", path.display()))?
    {
        let mut entry = entry.ctx(|| format!("read {}", path.display()))?;
        let Some(name) = archive_path(&entry.path_bytes()) else {
            return Err(Error::InvalidArchive("an entry leaves the archive".into()));
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            // Old `docker save` links duplicate layers to one copy.
            let target = entry.link_name_bytes().unwrap_or_default().into_owned();
            let base = Path::new(&name).parent().unwrap_or(Path::new(""));
            let joined = base.join(String::from_utf8_lossy(&target).as_ref());
            if let Some(t) = archive_path(joined.as_os_str().as_encoded_bytes()) {
                links.insert(name, t);
            }
        } else if kind.is_file() {
            if name == "manifest.json" {
                manifests = Some(read_small_json(&mut entry, "manifest.json")?);
                continue;
            }
            progress(&name, entry.header().size().unwrap_or(0));
            let staged = stage_blob(&staging.store.tmp_dir(), &mut entry, None)?;
            files.insert(name, (staged.digest.clone(), staged.size));
            staging.add(staged);
        }
    }
    let manifests = manifests
        .ok_or_else(|| Error::InvalidArchive("no manifest.json in docker-archive".into()))?;
    if manifests.is_empty() {
        return Err(Error::InvalidArchive(
            "manifest.json lists no images".into(),
        ));
    }
    if opts.name.is_some() && manifests.len() > 1 {
        return Err(Error::Invalid(format!(
            "the archive holds {} images; import it without a name to keep theirs",
            manifests.len()
        )));
    }
    let lookup = |p: &str| -> Result<(Digest, u64)> {
        let mut p = archive_path(p.as_bytes()).unwrap_or_default();
        for _ in 0..8 {
            match links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        files
            .get(&p)
            .cloned()
            .ok_or_else(|| Error::InvalidArchive(format!("manifest.json names missing file {p}")))
    };
    let mut out = Vec::new();
    for m in &manifests {
        let (config, config_size) = lookup(&m.config)?;
        let mut layers = Vec::new();
        for l in &m.layers {
            let (d, size) = lookup(l)?;
            let media_type = docker_layer_media_type(staging, &d)?;
            layers.push(Descriptor::new(media_type, size, d.to_oci()?));
        }
        let manifest = build_manifest(config, config_size, layers)?;
        let data = serde_json::to_vec(&manifest).ctx(|| "serialize manifest".to_owned())?;
        let staged = stage_blob(&staging.store.tmp_dir(), &data[..], None)?;
        let desc = Descriptor::new(
            MediaType::ImageManifest,
            staged.size,
            staged.digest.to_oci()?,
        );
        staging.add(staged);
        let names: Vec<Reference> = match &opts.name {
            Some(n) => vec![n.clone()],
            None => m
                .repo_tags
                .iter()
                .flatten()
                .map(|t| Reference::parse(t.trim_start_matches("docker.io/library/")))
                .collect::<Result<_>>()?,
        };
        if names.is_empty() {
            return Err(Error::Invalid(
                "an image in the archive has no tag; give a name".into(),
            ));
        }
        out.extend(names.into_iter().map(|n| (n, desc.clone())));
    }
    Ok(out)
}

fn docker_layer_media_type(staging: &Staging<'_>, d: &Digest) -> Result<MediaType> {
    let staged = staging
        .blobs
        .get(d)
        .ok_or_else(|| Error::InvalidArchive(format!("layer {d} not staged")))?;
    let mut head = [0u8; 4];
    let n = File::open(staged.file.path())
        .and_then(|mut f| f.read(&mut head))
        .ctx(|| format!("read layer {d}"))?;
    Ok(match crate::layer::sniff_compression(&head[..n]) {
        crate::layer::Compression::Gzip => MediaType::ImageLayerGzip,
        crate::layer::Compression::Zstd => MediaType::ImageLayerZstd,
        crate::layer::Compression::None => MediaType::ImageLayer,
    })
}

fn build_manifest(
    config: Digest,
    config_size: u64,
    layers: Vec<Descriptor>,
) -> Result<ImageManifest> {
    oci_spec::image::ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_size,
            config.to_oci()?,
        ))
        .layers(layers)
        .build()
        .map_err(|e| Error::Invalid(format!("build manifest: {e}")))
}

// ---------------------------------------------------------------- export

/// Write `images` (name, image) as an archive of `format` to `out`.
pub fn export(
    store: &Store,
    images: &[(Reference, Image)],
    format: Format,
    out: impl Write,
) -> Result<()> {
    match format {
        Format::OciArchive => export_oci(store, images, out),
        Format::DockerArchive => export_docker(store, images, out),
        Format::OciDir => Err(Error::Invalid(
            "export writes archives; use skopeo copy oci:STORE:NAME oci:DIR for a directory".into(),
        )),
    }
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, data)
        .ctx(|| format!("write {name} to archive"))
}

/// Append a stored blob, verifying it as it is copied.
fn append_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    store: &Store,
    name: &str,
    d: &Digest,
) -> Result<()> {
    let file = store.open_blob(d)?;
    let size = file.metadata().ctx(|| format!("stat blob {d}"))?.len();
    let mut header = tar::Header::new_ustar();
    header.set_mode(0o644);
    header.set_size(size);
    header.set_entry_type(tar::EntryType::Regular);
    let mut reader = HashingReader::new(file);
    tar.append_data(&mut header, name, &mut reader)
        .ctx(|| format!("write {name} to archive"))?;
    store::check_digest(&format!("blob {d}"), d, &reader.finish().0)
}

fn export_oci(store: &Store, images: &[(Reference, Image)], out: impl Write) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut written = std::collections::HashSet::new();
    let mut entries = Vec::new();
    for (name, image) in images {
        for d in crate::image::image_blobs(image)? {
            if written.insert(d.clone()) {
                append_blob(&mut tar, store, &format!("blobs/sha256/{}", d.hex()), &d)?;
            }
        }
        let mut desc = Descriptor::new(
            MediaType::ImageManifest,
            image.manifest_desc.size(),
            image.manifest_digest.to_oci()?,
        );
        desc.set_annotations(Some(store::annotations_with(&[
            (REF_NAME, name.to_string()),
            (CONTAINERD_NAME, name.to_string()),
        ])));
        entries.push(desc);
    }
    let mut index = store::empty_index()?;
    index.set_manifests(entries);
    index.set_media_type(Some(MediaType::ImageIndex));
    let data = serde_json::to_vec(&index).ctx(|| "serialize index".to_owned())?;
    append_bytes(&mut tar, "index.json", &data)?;
    tar.into_inner().ctx(|| "finish archive".to_owned())?;
    Ok(())
}

/// The classic `docker save` layout: manifest.json, the config as
/// `<id>.json`, and uncompressed layers as `<diffid>/layer.tar`, which
/// docker, podman and containerd all load.
fn export_docker(store: &Store, images: &[(Reference, Image)], out: impl Write) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    let mut written = std::collections::HashSet::new();
    let mut manifests = Vec::new();
    let mut repositories: HashMap<String, HashMap<String, String>> = HashMap::new();
    for (name, image) in images {
        let config_name = format!("{}.json", image.config_digest.hex());
        if written.insert(config_name.clone()) {
            append_blob(&mut tar, store, &config_name, &image.config_digest)?;
        }
        let mut layer_names = Vec::new();
        for (desc, diff_id) in image.layers().iter().zip(&image.diff_ids) {
            let layer_name = format!("{}/layer.tar", diff_id.hex());
            if written.insert(layer_name.clone()) {
                let blob = Digest::from_oci(desc.digest())?;
                append_uncompressed_layer(&mut tar, store, &layer_name, &blob, diff_id)?;
            }
            layer_names.push(layer_name);
        }
        if let Some(top) = image.diff_ids.last() {
            repositories
                .entry(name.name.clone())
                .or_default()
                .insert(name.tag.clone(), top.hex().to_owned());
        }
        manifests.push(DockerManifest {
            config: config_name,
            repo_tags: Some(vec![name.to_string()]),
            layers: layer_names,
        });
    }
    let data = serde_json::to_vec(&manifests).ctx(|| "serialize manifest.json".to_owned())?;
    append_bytes(&mut tar, "manifest.json", &data)?;
    let data = serde_json::to_vec(&repositories).ctx(|| "serialize repositories".to_owned())?;
    append_bytes(&mut tar, "repositories", &data)?;
    tar.into_inner().ctx(|| "finish archive".to_owned())?;
    Ok(())
}

/// Decompress a layer to a temp file (tar needs the size up front),
/// checking its DiffID, then append it.
fn append_uncompressed_layer<W: Write>(
    tar: &mut tar::Builder<W>,
    store: &Store,
    name: &str,
    blob: &Digest,
    diff_id: &Digest,
) -> Result<()> {
    store.verify_blob(blob)?;
    let mut tmp = tempfile::tempfile_in(store.tmp_dir()).ctx(|| "create temp file".to_owned())?;
    let mut reader = HashingReader::new(decompress(store.open_blob(blob)?)?);
    io::copy(&mut reader, &mut tmp).ctx(|| format!("decompress layer {blob}"))?;
    let (actual, size) = reader.finish();
    store::check_digest(&format!("diff ID of layer {blob}"), diff_id, &actual)?;
    tmp.rewind().ctx(|| "rewind temp file".to_owned())?;
    let mut header = tar::Header::new_ustar();
    header.set_mode(0o644);
    header.set_size(size);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, tmp)
        .ctx(|| format!("write {name} to archive"))
}
