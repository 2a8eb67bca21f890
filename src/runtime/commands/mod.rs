//! The runtime's subcommands, called by the thin `berth` CLI.

pub mod cgroup;
pub mod info;
pub mod lifecycle;
pub mod run;
