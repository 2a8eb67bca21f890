//! Integration tests: real containers run as root against the runtime named by `$BERTH_RUNTIME`
//! (default: the freshly built berth). See integration/README.md.

mod harness;

mod cgroups;
mod cli;
mod client_specs;
mod errors;
mod exec;
mod hooks;
mod lifecycle;
mod lsm;
mod mounts;
mod namespaces;
mod process;
mod security;
mod systemd;
mod terminal;
