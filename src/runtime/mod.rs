//! The OCI runtime: config, container state, process creation and the commands.

pub mod commands;
pub mod container;
pub mod create;
pub mod error;
pub mod exe_guard;
pub mod hooks;
pub mod idmap;
pub mod init;
pub mod log;
pub mod lsm;
pub mod netdev;
pub mod plan;
pub mod rootfs;
pub mod sched;
pub mod signal;
pub mod spec;
pub mod spec_de;
pub mod sys;

pub use error::{Error, Result};
