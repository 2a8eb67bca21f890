//! Reading images out of the store: manifests, configs, platform choice.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::error::{Context, Error, Result};
use crate::store::Store;

/// `os/arch[/variant]`, default linux/amd64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Default for PlatformSpec {
    fn default() -> Self {
        PlatformSpec {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
        }
    }
}

impl std::str::FromStr for PlatformSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(PlatformSpec {
                os: (*os).into(),
                arch: (*arch).into(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() => Ok(PlatformSpec {
                os: (*os).into(),
                arch: (*arch).into(),
                variant: Some((*variant).into()),
            }),
            _ => Err(Error::Invalid(format!(
                "invalid platform {s:?}, expected os/arch[/variant]"
            ))),
        }
    }
}

impl std::fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// True for OCI image indexes and Docker manifest lists.
pub fn is_index_media_type(media_type: &str) -> bool {
    media_type.contains("image.index") || media_type.contains("manifest.list")
}

/// Pick the manifest for `platform` out of an index.
pub fn select_platform(index: &ImageIndex, platform: &PlatformSpec) -> Result<Descriptor> {
    let mut available = Vec::new();
    for desc in index.manifests() {
        let Some(p) = desc.platform() else {
            continue;
        };
        let (os, arch) = (p.os().to_string(), p.architecture().to_string());
        let variant_ok = match (&platform.variant, p.variant()) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
            (None, _) => true,
        };
        if os == platform.os && arch == platform.arch && variant_ok {
            return Ok(desc.clone());
        }
        available.push(format!("{os}/{arch}"));
    }
    Err(Error::NoMatchingPlatform {
        wanted: platform.to_string(),
        available: if available.is_empty() {
            "none".into()
        } else {
            available.join(", ")
        },
    })
}

/// A fully loaded image.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest_desc: Descriptor,
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
    /// The config as raw JSON, so a commit keeps fields oci-spec ignores.
    pub config_json: serde_json::Value,
    pub diff_ids: Vec<Digest>,
}

impl Image {
    pub fn layers(&self) -> &[Descriptor] {
        self.manifest.layers()
    }

    /// Total size of manifest, config and layer blobs.
    pub fn size(&self) -> u64 {
        self.manifest_desc.size()
            + self.manifest.config().size()
            + self.layers().iter().map(|l| l.size()).sum::<u64>()
    }

    pub fn created(&self) -> Option<&str> {
        self.config.created().as_deref()
    }
}

/// Load the image a store descriptor points at, descending into an index
/// by platform when needed.
pub fn load_image(store: &Store, desc: &Descriptor, platform: &PlatformSpec) -> Result<Image> {
    let mut desc = desc.clone();
    // Bounded descent: an index pointing at an index is legal but rare.
    for _ in 0..4 {
        let digest = Digest::from_oci(desc.digest())?;
        let data = store.read_blob(&digest)?;
        if is_index_media_type(desc.media_type().as_ref()) || looks_like_index(&data) {
            let index: ImageIndex =
                serde_json::from_slice(&data).ctx(|| format!("image index {digest}"))?;
            desc = select_platform(&index, platform)?;
            continue;
        }
        return image_from_manifest(store, desc, digest, &data);
    }
    Err(Error::InvalidImage(
        "image indexes nested too deeply".into(),
    ))
}

fn looks_like_index(data: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(data)
        .map(|v| v.get("manifests").is_some() && v.get("layers").is_none())
        .unwrap_or(false)
}

fn image_from_manifest(
    store: &Store,
    manifest_desc: Descriptor,
    manifest_digest: Digest,
    data: &[u8],
) -> Result<Image> {
    let manifest: ImageManifest =
        serde_json::from_slice(data).ctx(|| format!("manifest {manifest_digest}"))?;
    let config_digest = Digest::from_oci(manifest.config().digest())?;
    let config_data = store.read_blob(&config_digest)?;
    let config: ImageConfiguration =
        serde_json::from_slice(&config_data).ctx(|| format!("image config {config_digest}"))?;
    let config_json: serde_json::Value =
        serde_json::from_slice(&config_data).ctx(|| format!("image config {config_digest}"))?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| d.parse())
        .collect::<Result<Vec<Digest>>>()?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(Error::InvalidImage(format!(
            "manifest {manifest_digest} has {} layers but its config lists {} diff IDs",
            manifest.layers().len(),
            diff_ids.len()
        )));
    }
    Ok(Image {
        manifest_desc,
        manifest_digest,
        manifest,
        config_digest,
        config,
        config_json,
        diff_ids,
    })
}

/// Every blob an image needs (manifest, config, layers).
pub fn image_blobs(image: &Image) -> Result<Vec<Digest>> {
    let mut out = vec![image.manifest_digest.clone(), image.config_digest.clone()];
    for layer in image.layers() {
        out.push(Digest::from_oci(layer.digest())?);
    }
    Ok(out)
}
