//! `bale commit`: a container's writable layer becomes a new image.

use std::fs;
use std::io::Write;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageManifest, MediaType};
use rustix::mount::{self as rmount, MountFlags, UnmountFlags};

use crate::bundle::{ensure_layers, BundleMeta, RootfsMode};
use crate::diff::{write_overlay_diff, write_tree_diff, LayerWriter};
use crate::digest::{Digest, HashingWriter};
use crate::error::{Context, Error, Result};
use crate::image::{load_image, Image, PlatformSpec};
use crate::layer::Limits;
use crate::reference::Reference;
use crate::store::{stage_blob, Store};
use crate::time::now_rfc3339;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerCompression {
    Gzip,
    Zstd,
    None,
}

impl LayerCompression {
    fn media_type(self) -> MediaType {
        match self {
            LayerCompression::Gzip => MediaType::ImageLayerGzip,
            LayerCompression::Zstd => MediaType::ImageLayerZstd,
            LayerCompression::None => MediaType::ImageLayer,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CommitOptions {
    pub message: Option<String>,
    pub author: Option<String>,
    pub compression: LayerCompression,
}

/// The result of a commit.
#[derive(Debug, Clone)]
pub struct Committed {
    pub manifest: Digest,
    pub layer: Digest,
    pub diff_id: Digest,
    pub layer_size: u64,
}

pub fn commit(
    store: &Store,
    bundle: &Path,
    target: &Reference,
    opts: &CommitOptions,
) -> Result<Committed> {
    let meta = BundleMeta::load(bundle)?;
    let manifest_digest: Digest = meta.manifest.parse()?;
    if !store.has_blob(&manifest_digest) {
        return Err(Error::BlobMissing(manifest_digest.to_string()));
    }
    let desc = Descriptor::new(
        MediaType::ImageManifest,
        store.verify_blob(&manifest_digest)?,
        manifest_digest.to_oci()?,
    );
    let base = load_image(store, &desc, &PlatformSpec::default())?;
    let (layer_blob, diff_id) = write_layer(store, bundle, &meta, &base, opts.compression)?;
    let layer = Descriptor::new(
        opts.compression.media_type(),
        layer_blob.size,
        layer_blob.digest.to_oci()?,
    );
    let layer_digest = layer_blob.digest.clone();
    let layer_size = layer_blob.size;
    store.adopt(layer_blob)?;
    let config = new_config(&base, &diff_id, opts)?;
    let config_digest = store.write_blob_bytes(&config)?;
    let manifest = new_manifest(&base.manifest, layer, config_digest, config.len() as u64)?;
    let manifest_digest = store.write_blob_bytes(&manifest)?;
    let desc = Descriptor::new(
        MediaType::ImageManifest,
        manifest.len() as u64,
        manifest_digest.to_oci()?,
    );
    store.set_tag(target, &desc)?;
    Ok(Committed {
        manifest: manifest_digest,
        layer: layer_digest,
        diff_id,
        layer_size,
    })
}

/// Write the change set of the bundle as a compressed layer blob staged in
/// the store's temp dir; returns it and its DiffID.
fn write_layer(
    store: &Store,
    bundle: &Path,
    meta: &BundleMeta,
    base: &Image,
    compression: LayerCompression,
) -> Result<(crate::store::StagedBlob, Digest)> {
    let tmp = tempfile::Builder::new()
        .prefix("layer-")
        .tempfile_in(store.tmp_dir())
        .ctx(|| "create temp layer file".to_owned())?;
    let file = tmp.reopen().ctx(|| "open temp layer file".to_owned())?;
    let compressed_out = HashingWriter::new(std::io::BufWriter::new(file));
    let diff_id = match compression {
        LayerCompression::Gzip => {
            let enc = flate2::write::GzEncoder::new(compressed_out, flate2::Compression::default());
            let (enc, diff_id) = tar_changes(store, bundle, meta, base, enc)?;
            finish(enc.finish().ctx(|| "finish gzip".to_owned())?)?;
            diff_id
        }
        LayerCompression::Zstd => {
            let enc = zstd::stream::write::Encoder::new(compressed_out, 3)
                .ctx(|| "start zstd".to_owned())?;
            let (enc, diff_id) = tar_changes(store, bundle, meta, base, enc)?;
            finish(enc.finish().ctx(|| "finish zstd".to_owned())?)?;
            diff_id
        }
        LayerCompression::None => {
            let (out, diff_id) = tar_changes(store, bundle, meta, base, compressed_out)?;
            finish(out)?;
            diff_id
        }
    };
    // Re-read the finished file to name it: cheap next to compression,
    // and it checks what actually reached the disk.
    let staged = stage_blob(
        &store.tmp_dir(),
        fs::File::open(tmp.path()).ctx(|| "reopen layer".to_owned())?,
        None,
    )?;
    Ok((staged, diff_id))
}

fn finish<W: Write>(out: HashingWriter<std::io::BufWriter<W>>) -> Result<()> {
    let (mut buf, _, _) = out.finish();
    buf.flush().ctx(|| "flush layer".to_owned())
}

/// Tar the changes into `out` through a DiffID hasher.
fn tar_changes<W: Write>(
    store: &Store,
    bundle: &Path,
    meta: &BundleMeta,
    base: &Image,
    out: W,
) -> Result<(W, Digest)> {
    let mut writer = LayerWriter::new(HashingWriter::new(out));
    match meta.mode {
        RootfsMode::Overlay => write_overlay_diff(&bundle.join("upper"), &mut writer)?,
        RootfsMode::Copy => {
            let view = BaseView::open(store, base)?;
            write_tree_diff(view.path(), &bundle.join("rootfs"), &mut writer)?;
        }
    }
    let hashing = writer.finish()?;
    let (out, diff_id, _) = hashing.finish();
    Ok((out, diff_id))
}

/// A read-only view of an image's layers: the single cached layer, an
/// overlay of several, or an empty directory.
struct BaseView {
    dir: tempfile::TempDir,
    mounted: bool,
    single: Option<std::path::PathBuf>,
}

impl BaseView {
    fn open(store: &Store, base: &Image) -> Result<BaseView> {
        let lowers = ensure_layers(store, base, Limits::default())?;
        let dir = tempfile::Builder::new()
            .prefix("base-")
            .tempdir_in(store.tmp_dir())
            .ctx(|| "create base view dir".to_owned())?;
        let mut view = BaseView {
            dir,
            mounted: false,
            single: None,
        };
        match lowers.len() {
            0 => {}
            1 => view.single = Some(lowers[0].clone()),
            _ => {
                let list: Vec<String> = lowers
                    .iter()
                    .rev()
                    .map(|p| p.display().to_string())
                    .collect();
                let data = std::ffi::CString::new(format!("lowerdir={}", list.join(":")))
                    .map_err(|_| Error::Invalid("NUL in layer path".into()))?;
                rmount::mount(
                    "overlay",
                    view.dir.path(),
                    "overlay",
                    MountFlags::RDONLY,
                    Some(data.as_c_str()),
                )
                .ctx(|| "mount base layers read-only".to_owned())?;
                view.mounted = true;
            }
        }
        Ok(view)
    }

    fn path(&self) -> &Path {
        self.single.as_deref().unwrap_or(self.dir.path())
    }
}

impl Drop for BaseView {
    fn drop(&mut self) {
        if self.mounted {
            let _ = rmount::unmount(self.dir.path(), UnmountFlags::DETACH);
        }
    }
}

/// The base config with the new layer's DiffID and a history entry; all
/// other fields (also those oci-spec does not model) are kept.
fn new_config(base: &Image, diff_id: &Digest, opts: &CommitOptions) -> Result<Vec<u8>> {
    let mut cfg = base.config_json.clone();
    let now = now_rfc3339();
    let obj = cfg
        .as_object_mut()
        .ok_or_else(|| Error::InvalidImage("image config is not a JSON object".into()))?;
    obj.insert("created".into(), now.clone().into());
    if let Some(author) = &opts.author {
        obj.insert("author".into(), author.clone().into());
    }
    let rootfs = obj
        .entry("rootfs")
        .or_insert_with(|| serde_json::json!({"type": "layers", "diff_ids": []}));
    rootfs["diff_ids"]
        .as_array_mut()
        .ok_or_else(|| Error::InvalidImage("rootfs.diff_ids is not a list".into()))?
        .push(diff_id.to_string().into());
    let mut entry = serde_json::json!({"created": now, "created_by": "bale commit"});
    if let Some(author) = &opts.author {
        entry["author"] = author.clone().into();
    }
    if let Some(message) = &opts.message {
        entry["comment"] = message.clone().into();
    }
    let history = obj
        .entry("history")
        .or_insert_with(|| serde_json::json!([]));
    match history.as_array_mut() {
        Some(list) => list.push(entry),
        None => *history = serde_json::json!([entry]),
    }
    serde_json::to_vec(&cfg).ctx(|| "serialize config".to_owned())
}

fn new_manifest(
    base: &ImageManifest,
    layer: Descriptor,
    config_digest: Digest,
    config_size: u64,
) -> Result<Vec<u8>> {
    let mut manifest = base.clone();
    let mut layers = manifest.layers().clone();
    layers.push(layer);
    manifest.set_layers(layers);
    manifest.set_config(Descriptor::new(
        MediaType::ImageConfig,
        config_size,
        config_digest.to_oci()?,
    ));
    manifest.set_media_type(Some(MediaType::ImageManifest));
    serde_json::to_vec(&manifest).ctx(|| "serialize manifest".to_owned())
}
