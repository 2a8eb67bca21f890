//! Manifest media types, and turning Docker's schema 2 into OCI.

use oci_spec::image::{ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::error::{Context, Error, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";

/// What we ask registries for, best first.
pub const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// The kinds of manifest documents we handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    OciManifest,
    OciIndex,
    DockerManifest,
    DockerList,
}

impl Kind {
    pub fn is_index(self) -> bool {
        matches!(self, Kind::OciIndex | Kind::DockerList)
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Kind::OciManifest => OCI_MANIFEST,
            Kind::OciIndex => OCI_INDEX,
            Kind::DockerManifest => DOCKER_MANIFEST,
            Kind::DockerList => DOCKER_LIST,
        }
    }
}

/// Decide what a manifest is: its `mediaType` field, else the
/// Content-Type the registry sent, else its shape (OCI allows leaving
/// `mediaType` out).
pub fn classify(data: &[u8], content_type: Option<&str>) -> Result<Kind> {
    let value: serde_json::Value = serde_json::from_slice(data).ctx(|| "manifest".to_owned())?;
    let field = value.get("mediaType").and_then(|m| m.as_str());
    let header = content_type.map(|c| c.split(';').next().unwrap_or("").trim());
    for candidate in [field, header].into_iter().flatten() {
        match candidate {
            OCI_MANIFEST => return Ok(Kind::OciManifest),
            OCI_INDEX => return Ok(Kind::OciIndex),
            DOCKER_MANIFEST => return Ok(Kind::DockerManifest),
            DOCKER_LIST => return Ok(Kind::DockerList),
            t if t.starts_with(DOCKER_SCHEMA1) => {
                return Err(Error::InvalidImage(
                    "Docker schema 1 manifests are not supported".into(),
                ))
            }
            _ => {}
        }
    }
    if value.get("manifests").is_some() {
        Ok(Kind::OciIndex)
    } else if value.get("layers").is_some() && value.get("config").is_some() {
        Ok(Kind::OciManifest)
    } else {
        Err(Error::InvalidImage(format!(
            "unsupported manifest type {:?}",
            field.or(header).unwrap_or("(none)")
        )))
    }
}

pub fn parse_index(data: &[u8], digest: &Digest) -> Result<ImageIndex> {
    serde_json::from_slice(data).ctx(|| format!("image index {digest}"))
}

/// An image manifest ready for the store: OCI bytes (the registry's own
/// bytes when it served OCI, so the digest stays) and the parsed form.
pub struct OciManifest {
    pub bytes: Vec<u8>,
    pub manifest: ImageManifest,
    /// True when the bytes were rewritten from Docker schema 2.
    pub converted: bool,
}

pub fn to_oci(data: &[u8], kind: Kind, digest: &Digest) -> Result<OciManifest> {
    let bytes = match kind {
        Kind::OciManifest => data.to_vec(),
        Kind::DockerManifest => docker_to_oci(data, digest)?,
        Kind::OciIndex | Kind::DockerList => {
            return Err(Error::InvalidImage(format!(
                "{digest} is an index where an image manifest was expected"
            )))
        }
    };
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).ctx(|| format!("manifest {digest}"))?;
    Ok(OciManifest {
        bytes,
        manifest,
        converted: kind == Kind::DockerManifest,
    })
}

/// Rewrite the media types of a Docker schema 2 manifest into their OCI
/// equivalents. Config and layer blobs are byte-identical between the
/// two formats, so their digests stay; only the manifest's changes.
fn docker_to_oci(data: &[u8], digest: &Digest) -> Result<Vec<u8>> {
    let what = || format!("Docker manifest {digest}");
    let mut value: serde_json::Value = serde_json::from_slice(data).ctx(what)?;
    let obj = value
        .as_object_mut()
        .ok_or_else(|| Error::InvalidImage(format!("{}: not an object", what())))?;
    obj.insert("mediaType".into(), OCI_MANIFEST.into());
    let config = obj
        .get_mut("config")
        .and_then(|c| c.as_object_mut())
        .ok_or_else(|| Error::InvalidImage(format!("{}: no config", what())))?;
    let config_type = config.get("mediaType").and_then(|m| m.as_str());
    if config_type.is_some_and(|t| t != DOCKER_CONFIG && t != OCI_CONFIG) {
        return Err(Error::InvalidImage(format!(
            "{}: unsupported config type {config_type:?}",
            what()
        )));
    }
    config.insert("mediaType".into(), OCI_CONFIG.into());
    let layers = obj
        .get_mut("layers")
        .and_then(|l| l.as_array_mut())
        .ok_or_else(|| Error::InvalidImage(format!("{}: no layers", what())))?;
    for layer in layers {
        let media_type = layer
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or("");
        let oci = oci_layer_type(media_type).ok_or_else(|| {
            Error::InvalidImage(format!("{}: unsupported layer type {media_type:?}", what()))
        })?;
        if let Some(l) = layer.as_object_mut() {
            l.insert("mediaType".into(), oci.into());
        }
    }
    serde_json::to_vec(&value).ctx(|| "serialize converted manifest".to_owned())
}

fn oci_layer_type(docker: &str) -> Option<&'static str> {
    Some(match docker {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.oci.image.layer.v1.tar+gzip" => {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        }
        "application/vnd.docker.image.rootfs.diff.tar.zstd"
        | "application/vnd.oci.image.layer.v1.tar+zstd" => {
            "application/vnd.oci.image.layer.v1.tar+zstd"
        }
        "application/vnd.docker.image.rootfs.diff.tar"
        | "application/vnd.oci.image.layer.v1.tar" => "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        }
        _ => return None,
    })
}

/// The index to store for a pull of all platforms. An OCI index of OCI
/// manifests is kept byte for byte (same digest); otherwise it becomes
/// an OCI index pointing at the converted manifests. Returns the bytes
/// and whether they were rewritten.
pub fn oci_index(
    data: &[u8],
    kind: Kind,
    children: &[(Digest, OciManifest)],
) -> Result<(Vec<u8>, bool)> {
    let rewrite = kind == Kind::DockerList || children.iter().any(|(_, m)| m.converted);
    if !rewrite {
        return Ok((data.to_vec(), false));
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(data).ctx(|| "image index".to_owned())?;
    value["mediaType"] = OCI_INDEX.into();
    let entries = value
        .get_mut("manifests")
        .and_then(|m| m.as_array_mut())
        .ok_or_else(|| Error::InvalidImage("index without manifests".into()))?;
    for entry in entries {
        let old = entry.get("digest").and_then(|d| d.as_str()).unwrap_or("");
        let child = children.iter().find(|(d, _)| d.to_string() == old);
        let Some((_, m)) = child else {
            return Err(Error::InvalidImage(format!(
                "index entry {old:?} was not fetched"
            )));
        };
        entry["digest"] = Digest::of_bytes(&m.bytes).to_string().into();
        entry["size"] = m.bytes.len().into();
        entry["mediaType"] = OCI_MANIFEST.into();
    }
    let bytes = serde_json::to_vec(&value).ctx(|| "serialize converted index".to_owned())?;
    Ok((bytes, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
      "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":7,"digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
      "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":9,"digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}]}"#;

    #[test]
    fn docker_schema2_becomes_oci_with_blob_digests_kept() {
        let d = Digest::of_bytes(DOCKER.as_bytes());
        let kind = classify(DOCKER.as_bytes(), None).unwrap();
        assert_eq!(kind, Kind::DockerManifest);
        let oci = to_oci(DOCKER.as_bytes(), kind, &d).unwrap();
        assert!(oci.converted);
        let m = &oci.manifest;
        assert_eq!(m.media_type().as_ref().unwrap().to_string(), OCI_MANIFEST);
        assert_eq!(m.config().media_type().to_string(), OCI_CONFIG);
        assert_eq!(
            m.config().digest().to_string(),
            format!("sha256:{}", "a".repeat(64))
        );
        assert_eq!(
            m.layers()[0].media_type().to_string(),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(
            m.layers()[0].digest().to_string(),
            format!("sha256:{}", "b".repeat(64))
        );
    }

    #[test]
    fn oci_bytes_are_kept_and_unknown_types_refused() {
        let oci = DOCKER.replace(DOCKER_MANIFEST, OCI_MANIFEST);
        let d = Digest::of_bytes(oci.as_bytes());
        let kind = classify(oci.as_bytes(), Some("text/plain")).unwrap();
        assert_eq!(
            to_oci(oci.as_bytes(), kind, &d).unwrap().bytes,
            oci.as_bytes()
        );
        let v1 = r#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#;
        assert!(classify(v1.as_bytes(), None).is_err());
        let odd = DOCKER.replace("rootfs.diff.tar.gzip", "rootfs.weird");
        let d = Digest::of_bytes(odd.as_bytes());
        assert!(to_oci(odd.as_bytes(), Kind::DockerManifest, &d).is_err());
        assert_eq!(
            classify(br#"{"manifests":[]}"#, None).unwrap(),
            Kind::OciIndex
        );
    }
}
