//! The one error type of the bale library.

use std::path::PathBuf;

/// Everything that can go wrong inside the library, with enough context to
/// tell the user what and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: rustix::io::Errno,
    },
    #[error("{context}: invalid JSON: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid digest {0:?} (only sha256:<64 lowercase hex> is supported)")]
    InvalidDigest(String),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("invalid image reference {0:?}")]
    InvalidReference(String),
    #[error("image {0} not found")]
    ImageNotFound(String),
    #[error("blob {0} is missing from the store")]
    BlobMissing(String),
    #[error("unsafe layer entry {path:?}: {reason}")]
    UnsafeEntry { path: String, reason: String },
    #[error("layer is too large: {0}")]
    LayerTooLarge(String),
    #[error("invalid image: {0}")]
    InvalidImage(String),
    #[error("no image for platform {wanted} (available: {available})")]
    NoMatchingPlatform { wanted: String, available: String },
    #[error("invalid archive: {0}")]
    InvalidArchive(String),
    #[error("bundle {path}: {reason}")]
    Bundle { path: PathBuf, reason: String },
    #[error("user {user:?}: {reason}")]
    User { user: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    // The cause is shown inline and not as `source`, so that `{:#}`
    // chains at the CLI edge do not print it twice.
    #[error("{what}: {cause}")]
    Transport {
        what: String,
        cause: Box<ureq::Error>,
    },
    #[error("{what}: registry answered {status}{detail}")]
    HttpStatus {
        what: String,
        status: u16,
        /// The registry's own explanation (from its error JSON), if any.
        detail: String,
    },
    #[error("{what}: authentication required{detail}")]
    Unauthorized { what: String, detail: String },
    #[error("registry {registry}: {reason}")]
    Registry { registry: String, reason: String },
    #[error("credentials file {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach context to io / errno / serde errors in one call.
pub trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, rustix::io::Errno> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys {
            context: context(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, serde_json::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Json {
            context: context(),
            source,
        })
    }
}
