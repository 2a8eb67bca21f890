//! berth-cgroups: the cgroup manager of the berth OCI runtime.
//!
//! It works on cgroup v1 hosts, on pure cgroup v2 hosts and on hybrid
//! hosts (v1 controllers plus a cgroup2 mount), with plain file syscalls
//! on cgroupfs and bpf(2) for v2 device rules.
//!
//! The runtime's side of the contract:
//!
//! ```no_run
//! use berth_cgroups::{CgroupConfig, Manager};
//! # fn run(resources: &oci_spec::runtime::LinuxResources, init_pid: i32) -> Result<(), berth_cgroups::Error> {
//! let cfg = CgroupConfig { cgroups_path: Some("/berth/c1"), container_id: "c1", systemd: false };
//! let mut cgroup = Manager::new(&cfg)?;        // resolve paths, touch nothing
//! for warning in cgroup.warnings() { eprintln!("warning: {warning}"); }
//! cgroup.create()?;                             // mkdir on every hierarchy
//! cgroup.apply(resources)?;                     // limits and device rules
//! cgroup.add_process(init_pid)?;                // before init is released
//! // ... store `cgroup` (serde) in the state file; later:
//! cgroup.freeze()?; cgroup.thaw()?;             // pause / resume
//! let _json = cgroup.stats()?;                  // events --stats
//! cgroup.kill_all(libc::SIGKILL)?;              // kill --all
//! cgroup.destroy()?;                            // delete
//! # Ok(()) }
//! ```

pub mod bpf;
pub mod convert;
pub mod dbus;
pub mod devices;
mod error;
mod fsutil;
pub mod layout;
mod manager;
pub mod oom;
pub mod path;
pub mod stats;
pub mod systemd;
pub mod systemd_devices;
pub mod systemd_resources;
mod v1;
mod v2;

pub use error::{Error, Result};
pub use layout::Layout;
pub use manager::{CgroupConfig, HierarchyView, Manager, V1Dir, EXEC_SUBCGROUP};
pub use oom::OomWatcher;
pub use stats::Stats;
pub use systemd::SystemdScope;
