//! The runtime's subcommands, called by the thin `berth` CLI.

pub mod cgroup;
pub mod exec;
pub mod info;
pub mod lifecycle;
pub mod pidfd;
pub mod run;
pub mod supervise;
