//! Garbage collection: drop blobs and extracted layers nothing refers to.

use std::collections::HashSet;
use std::fs;

use oci_spec::image::{ImageIndex, ImageManifest};

use crate::digest::{chain_ids, Digest};
use crate::error::{Context, Result};
use crate::fsutil;
use crate::image::is_index_media_type;
use crate::store::Store;

/// What a collection removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub blobs_removed: usize,
    pub bytes_removed: u64,
    pub layers_removed: usize,
}

/// Mark everything reachable from the index and from live bundles, then
/// sweep the rest. A blob that cannot be parsed while marking aborts the
/// collection rather than risking a referenced blob.
pub fn collect(store: &Store) -> Result<GcReport> {
    let mut blobs: HashSet<Digest> = HashSet::new();
    let mut chains: HashSet<String> = HashSet::new();
    let index = store.load_index()?;
    for desc in index.manifests() {
        let digest = Digest::from_oci(desc.digest())?;
        mark(
            store,
            &digest,
            desc.media_type().as_ref(),
            &mut blobs,
            &mut chains,
            0,
        )?;
    }
    for record in store.live_bundles()? {
        if let Ok(digest) = record.manifest.parse::<Digest>() {
            mark(store, &digest, "", &mut blobs, &mut chains, 0)?;
        }
        for chain in &record.chain_ids {
            if let Ok(d) = chain.parse::<Digest>() {
                chains.insert(d.hex().to_owned());
            }
        }
    }
    sweep(store, &blobs, &chains)
}

fn mark(
    store: &Store,
    digest: &Digest,
    media_type: &str,
    blobs: &mut HashSet<Digest>,
    chains: &mut HashSet<String>,
    depth: usize,
) -> Result<()> {
    if !blobs.insert(digest.clone()) || !store.has_blob(digest) || depth > 4 {
        return Ok(());
    }
    let data = store.read_blob(digest)?;
    let value: serde_json::Value =
        serde_json::from_slice(&data).ctx(|| format!("blob {digest}"))?;
    let is_index = is_index_media_type(media_type)
        || (value.get("manifests").is_some() && value.get("layers").is_none());
    if is_index {
        let index: ImageIndex = serde_json::from_value(value).ctx(|| format!("index {digest}"))?;
        for child in index.manifests() {
            let d = Digest::from_oci(child.digest())?;
            mark(
                store,
                &d,
                child.media_type().as_ref(),
                blobs,
                chains,
                depth + 1,
            )?;
        }
        return Ok(());
    }
    let manifest: ImageManifest =
        serde_json::from_value(value).ctx(|| format!("manifest {digest}"))?;
    let config = Digest::from_oci(manifest.config().digest())?;
    blobs.insert(config.clone());
    for layer in manifest.layers() {
        blobs.insert(Digest::from_oci(layer.digest())?);
    }
    if store.has_blob(&config) {
        let cfg: serde_json::Value = serde_json::from_slice(&store.read_blob(&config)?)
            .ctx(|| format!("config {config}"))?;
        let diff_ids: Vec<Digest> = cfg["rootfs"]["diff_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str()?.parse().ok())
            .collect();
        for chain in chain_ids(&diff_ids) {
            chains.insert(chain.hex().to_owned());
        }
    }
    Ok(())
}

fn sweep(store: &Store, blobs: &HashSet<Digest>, chains: &HashSet<String>) -> Result<GcReport> {
    let mut report = GcReport::default();
    for name in store.blob_names()? {
        let keep = Digest::from_hex(&name).is_ok_and(|d| blobs.contains(&d));
        if keep {
            continue;
        }
        let path = store.root().join("blobs/sha256").join(&name);
        let size = fs::symlink_metadata(&path).map_or(0, |m| m.len());
        fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?;
        report.blobs_removed += 1;
        report.bytes_removed += size;
    }
    for name in store.cached_layers()? {
        if chains.contains(&name) {
            continue;
        }
        // Also catches temp dirs of extractions that crashed: the store
        // lock guarantees none is in progress now.
        fsutil::remove_path_tree(&store.layers_dir().join(&name))?;
        report.layers_removed += 1;
    }
    clean_tmp(store)?;
    Ok(report)
}

fn clean_tmp(store: &Store) -> Result<()> {
    let tmp = store.tmp_dir();
    for entry in fs::read_dir(&tmp).ctx(|| format!("read {}", tmp.display()))? {
        let entry = entry.ctx(|| format!("read {}", tmp.display()))?;
        fsutil::remove_path_tree(&entry.path())?;
    }
    Ok(())
}
