//! bale: a layered OCI image store beside the berth runtime.
//!
//! Images are read-only stacks of layers kept in a standard OCI image
//! layout; a container adds one writable layer on top, and committing that
//! layer makes a new image.

pub mod archive;
pub mod bundle;
pub mod commit;
pub mod diff;
pub mod digest;
pub mod error;
pub mod fsutil;
pub mod gc;
pub mod image;
pub mod layer;
pub mod reference;
pub mod registry;
pub mod store;
pub mod time;
pub mod user;

pub use error::{Error, Result};
