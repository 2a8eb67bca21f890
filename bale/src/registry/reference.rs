//! Remote image references: `[registry/]repository[:tag][@sha256:…]`.

use std::fmt;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::{valid_domain, valid_path_component, valid_tag, Reference};

/// Docker Hub's name in references and its real API host.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed remote reference. Without a domain the registry is Docker Hub
/// (and one-part names live under `library/`), as docker and podman do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRef {
    /// The registry as written (`localhost:5000`, `docker.io`).
    pub registry: String,
    /// The repository path inside the registry (`team/app`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl RemoteRef {
    pub fn parse(input: &str) -> Result<RemoteRef> {
        let invalid = || Error::InvalidReference(input.to_owned());
        let raw = input.strip_prefix("docker://").unwrap_or(input);
        let (rest, digest) = match raw.split_once('@') {
            Some((rest, d)) => (rest, Some(d.parse::<Digest>()?)),
            None => (raw, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_owned()),
            ),
            None => (rest, None),
        };
        if tag.as_deref().is_some_and(|t| !valid_tag(t)) {
            return Err(invalid());
        }
        let (registry, repository) = split_registry(name).ok_or_else(invalid)?;
        if repository.is_empty()
            || repository.len() > 255
            || !repository.split('/').all(valid_path_component)
        {
            return Err(invalid());
        }
        Ok(RemoteRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Parse a bare repository (`host/repo`, no tag or digest), as
    /// `bale tags` takes.
    pub fn parse_repository(input: &str) -> Result<RemoteRef> {
        let r = RemoteRef::parse(input)?;
        if r.tag.is_some() || r.digest.is_some() {
            return Err(Error::Invalid(format!(
                "{input:?}: expected a repository without tag or digest"
            )));
        }
        Ok(r)
    }

    /// The `host[:port]` to talk to.
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// What the manifest endpoint is asked for: the digest if pinned,
    /// else the tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name the image gets in the local store: the tag as given, or
    /// `sha256-<hex>` for a pull by digest alone.
    pub fn store_reference(&self) -> Result<Reference> {
        let tag = match (&self.tag, &self.digest) {
            (Some(t), _) => t.clone(),
            (None, Some(d)) => format!("sha256-{}", d.hex()),
            (None, None) => "latest".to_owned(),
        };
        Reference::parse(&format!("{}:{tag}", self.name()))
    }
}

impl fmt::Display for RemoteRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Map a registry name to the host that serves its API.
pub fn api_host(registry: &str) -> &str {
    match registry {
        DOCKER_HUB | "index.docker.io" => DOCKER_HUB_API,
        other => other,
    }
}

/// Split `name` into (registry, repository). The first component is a
/// registry when it looks like a host: has a dot or port, or is localhost.
fn split_registry(name: &str) -> Option<(String, String)> {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') =>
        {
            valid_domain(first).then(|| (first.to_owned(), rest.to_owned()))
        }
        Some(_) => Some((DOCKER_HUB.to_owned(), name.to_owned())),
        None => Some((DOCKER_HUB.to_owned(), format!("library/{name}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registry_repository_tag_and_digest() {
        let r = RemoteRef::parse("localhost:5000/team/app:v1").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.manifest_reference(), "v1");
        let hex = "a".repeat(64);
        let r = RemoteRef::parse(&format!("127.0.0.1:5000/app@sha256:{hex}")).unwrap();
        assert_eq!(r.manifest_reference(), format!("sha256:{hex}"));
        assert_eq!(
            r.store_reference().unwrap().to_string(),
            format!("127.0.0.1:5000/app:sha256-{hex}")
        );
        let r = RemoteRef::parse("alpine").unwrap();
        assert_eq!(r.name(), "docker.io/library/alpine");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.manifest_reference(), "latest");
        let r = RemoteRef::parse("docker://quay.io/x/y").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("quay.io", "x/y")
        );
    }

    #[test]
    fn rejects_bad_remote_references() {
        for bad in [
            "",
            "host:5000/",
            "host:5000/App",
            "host:5000/app:",
            "host:5000/app@sha256:zz",
            "host:5000/a/../b",
            "../x/y",
            "host:x5/app",
        ] {
            assert!(RemoteRef::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
