//! list, spec and features: the commands that read or describe rather than run.

use std::io::Write;
use std::path::Path;

use crate::runtime::container::{self, OciState};
use crate::runtime::error::{Context, Error, Result};
use crate::runtime::spec;

/// The state of every container under `root`, read without taking their locks (a
/// container being created shows as "creating" rather than blocking the listing).
pub fn list(root: &Path) -> Result<Vec<OciState>> {
    let mut states = Vec::new();
    for id in container::list_ids(root)? {
        let dir = root.join(&id);
        let Ok(bytes) = std::fs::read(dir.join("state.json")) else {
            continue;
        };
        // Only what the listing shows (the config is in a file of its own).
        let Ok(s) = serde_json::from_slice::<Summary>(&bytes) else {
            continue;
        };
        // The cgroup (paused or not) matters only for a live init: most of a crowded
        // root is stopped containers, whose cgroup part is skipped unparsed.
        let status = if container::process_alive(s.pid, s.pid_start_time) {
            let cgroup = serde_json::from_slice::<CgroupOnly>(&bytes)
                .ok()
                .and_then(|c| c.cgroup);
            container::status_of_live(cgroup.as_ref(), &dir)
        } else {
            container::Status::Stopped
        };
        states.push(OciState {
            oci_version: container::OCI_VERSION.to_string(),
            id: s.id,
            pid: if status == container::Status::Stopped {
                0
            } else {
                s.pid
            },
            status: status.as_str().to_string(),
            bundle: s.bundle,
            rootfs: s.rootfs,
            created: s.created,
            owner: s.owner,
            annotations: s.annotations,
        });
    }
    Ok(states)
}

/// The fields of a saved state (`container::Saved`) that `list` needs.
#[derive(serde::Deserialize)]
struct Summary {
    id: String,
    pid: i32,
    pid_start_time: u64,
    bundle: std::path::PathBuf,
    rootfs: std::path::PathBuf,
    created: String,
    owner: String,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// The cgroup of a saved state, read only for containers whose init is alive.
#[derive(serde::Deserialize)]
struct CgroupOnly {
    #[serde(default)]
    cgroup: Option<berth_cgroups::Manager>,
}

/// runc's `list` table: left-aligned columns at least 12 wide, 3 spaces apart.
pub fn format_table(states: &[OciState]) -> String {
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"];
    let rows: Vec<[String; 6]> = states
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.pid.to_string(),
                s.status.clone(),
                s.bundle.display().to_string(),
                s.created.clone(),
                s.owner.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let width = (widths[i] + 3).max(12);
                out.push_str(&format!("{cell:<width$}"));
            }
        }
        out.push('\n');
        out
    };
    let mut text = line(header);
    for row in &rows {
        text.push_str(&line(row.each_ref().map(String::as_str)));
    }
    text
}

/// `berth spec`: writes the default config.json into the bundle.
pub fn write_spec(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::Usage(format!(
            "{} exists: remove it first",
            path.display()
        )));
    }
    let spec = spec::default_spec(rootless);
    let mut text = serde_json::to_string_pretty(&spec)
        .map_err(|e| Error::State(format!("encoding config.json: {e}")))?;
    text.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .ctx(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .ctx(|| format!("writing {}", path.display()))
}

/// Mount options berth understands (features.md `mountOptions`).
const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "exec",
    "idmap",
    "iversion",
    "loud",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "ridmap",
    "rnoatime",
    "rrelatime",
    "rstrictatime",
    "rnodiratime",
    "rdiratime",
    "rnosymfollow",
    "rsymfollow",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// `berth features`: what this build of berth really supports (runtime spec features.md).
pub fn features() -> serde_json::Value {
    let mut caps: Vec<caps::Capability> = caps::all().into_iter().collect();
    caps.sort_by_key(|c| c.index());
    let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": container::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": true},
            "seccomp": berth_seccomp::features(),
            "apparmor": {"enabled": crate::runtime::lsm::apparmor_enabled()},
            "selinux": {"enabled": crate::runtime::lsm::selinux_enabled()},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}},
            "netDevices": {"enabled": true},
            "memoryPolicy": {
                "modes": crate::runtime::sched::MEMORY_POLICY_MODES,
                "flags": crate::runtime::sched::MEMORY_POLICY_FLAGS
            }
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.version": container::OCI_VERSION,
            "io.berth.version": env!("CARGO_PKG_VERSION")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let state = OciState {
            oci_version: "1.2.0".into(),
            id: "a".into(),
            pid: 42,
            status: "running".into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            owner: "root".into(),
            annotations: Default::default(),
        };
        let table = format_table(&[state]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("ID          PID         STATUS"));
        assert!(lines[1].starts_with("a           42          running"));
    }

    #[test]
    fn features_lists_namespaces_and_hooks() {
        let f = features();
        assert_eq!(f["hooks"].as_array().map(Vec::len), Some(6));
        assert!(f["linux"]["capabilities"]
            .as_array()
            .is_some_and(|c| c.iter().any(|x| x == "CAP_SYS_ADMIN")));
        assert_eq!(f["linux"]["seccomp"]["enabled"], true);
        assert_eq!(
            f["linux"]["seccomp"]["operators"].as_array().map(Vec::len),
            Some(7)
        );
        assert_eq!(
            f["linux"]["memoryPolicy"]["modes"].as_array().map(Vec::len),
            Some(7)
        );
    }
}
