//! config.json: load, validate every rule berth relies on before any syscall, and the
//! default configuration `berth spec` writes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::error::{Context, Error, Result};
use super::spec_de;

/// Reads and parses `BUNDLE/config.json`.
pub fn load(bundle: &Path) -> Result<Config> {
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).ctx(|| format!("reading {}", path.display()))?;
    parse_config(&bytes).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// config.json as berth reads it: the spec, and what oci-spec's types cannot hold.
pub struct Config {
    pub spec: Spec,
    /// Each mount's uidMappings/gidMappings, by index into `spec.mounts`.
    pub mount_mappings: Vec<spec_de::MountMappings>,
}

/// Parses config.json bytes into a spec (types checked by serde).
/// A type error names the field it is in (`process.args: invalid type ...`).
pub fn parse(bytes: &[u8]) -> std::result::Result<Spec, String> {
    parse_config(bytes).map(|c| c.spec)
}

/// [`parse`], keeping the mounts' id mappings too.
pub fn parse_config(bytes: &[u8]) -> std::result::Result<Config, String> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    drop_unknown_capabilities(&mut value);
    let mount_mappings = spec_de::mount_mappings_from_value(&value)?;
    let spec = spec_de::spec_from_value(value)?;
    Ok(Config {
        spec,
        mount_mappings,
    })
}

/// config.md: a capability this runtime does not know is logged and SHOULD NOT fail
/// the container; it is removed before the typed parse (which would reject it).
fn drop_unknown_capabilities(value: &mut serde_json::Value) {
    let Some(caps) = value
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    else {
        return;
    };
    for (set, list) in caps.iter_mut() {
        let Some(names) = list.as_array_mut() else {
            continue;
        };
        names.retain(|name| {
            let known =
                serde_json::from_value::<oci_spec::runtime::Capability>(name.clone()).is_ok();
            if !known {
                super::log::warn(&format!(
                    "unknown capability {name} in process.capabilities.{set}: ignored"
                ));
            }
            known
        });
    }
}

/// Merges `patch` into `base` (objects key by key, everything else replaced).
pub fn merge_json(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                merge_json(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// The absolute path of the container's root filesystem.
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Config("root is missing".into()))?;
    let path = bundle.join(root.path());
    let canonical = std::fs::canonicalize(&path).ctx(|| format!("root.path {}", path.display()))?;
    if !canonical.is_dir() {
        return Err(Error::Config(format!(
            "root.path {} is not a directory",
            canonical.display()
        )));
    }
    Ok(canonical)
}

/// Checks the rules of the runtime spec that would otherwise fail half-way through
/// creating the container. Nothing has been created when this runs.
pub fn validate(spec: &Spec) -> Result<()> {
    if spec.version().trim().is_empty() {
        return Err(Error::Config("ociVersion is missing".into()));
    }
    validate_process(spec)?;
    validate_rlimits(spec)?;
    validate_seccomp_listener(spec)?;
    validate_mounts(spec)?;
    validate_namespaces(spec)?;
    validate_devices(spec)?;
    validate_hooks(spec)?;
    reject_unsupported(spec)
}

/// config.md: each rlimit type at most once.
fn validate_rlimits(spec: &Spec) -> Result<()> {
    let rlimits = spec
        .process()
        .as_ref()
        .and_then(|p| p.rlimits().as_deref())
        .unwrap_or_default();
    for (i, r) in rlimits.iter().enumerate() {
        if rlimits[..i].iter().any(|earlier| earlier.typ() == r.typ()) {
            return Err(Error::Config(format!(
                "process.rlimits: {:?} is listed twice",
                r.typ()
            )));
        }
    }
    Ok(())
}

/// config-linux.md: listenerMetadata only makes sense with a listenerPath.
fn validate_seccomp_listener(spec: &Spec) -> Result<()> {
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    if let Some(s) = seccomp {
        if s.listener_metadata().is_some() && s.listener_path().is_none() {
            return Err(Error::Config(
                "linux.seccomp: listenerMetadata is set without listenerPath".into(),
            ));
        }
    }
    Ok(())
}

fn validate_process(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Config("process is missing".into()))?;
    let args = process.args().as_deref().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return Err(Error::Config("process.args must not be empty".into()));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::Config(format!(
            "process.cwd {} must be an absolute path",
            process.cwd().display()
        )));
    }
    for var in process.env().as_deref().unwrap_or_default() {
        if !var.contains('=') {
            return Err(Error::Config(format!(
                "process.env entry {var:?} is not KEY=VALUE"
            )));
        }
    }
    validate_limits(process)
}

/// Values the kernel would refuse once the namespaces exist: refused here instead.
fn validate_limits(process: &oci_spec::runtime::Process) -> Result<()> {
    for r in process.rlimits().as_deref().unwrap_or_default() {
        if r.soft() > r.hard() {
            // The name as written in config.json (RLIMIT_NOFILE).
            let name = serde_json::to_value(r.typ())
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_else(|| format!("{:?}", r.typ()));
            return Err(Error::Config(format!(
                "process.rlimits {name}: soft limit {} is above the hard limit {}",
                r.soft(),
                r.hard()
            )));
        }
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(Error::Config(format!(
                "process.oomScoreAdj {adj} is outside -1000..1000"
            )));
        }
    }
    if let Some(prio) = process.io_priority() {
        if !(0..=7).contains(&prio.priority()) {
            return Err(Error::Config(format!(
                "process.ioPriority.priority {} is outside 0..7",
                prio.priority()
            )));
        }
    }
    Ok(())
}

/// config.md: a destination SHOULD be absolute; a relative one MUST be taken relative
/// to "/" (which is how the plan resolves every destination: inside the root). Empty
/// destinations are refused.
fn validate_mounts(spec: &Spec) -> Result<()> {
    for m in spec.mounts().as_deref().unwrap_or_default() {
        if m.destination().as_os_str().is_empty() {
            return Err(Error::Config("a mount has an empty destination".into()));
        }
        if !m.destination().is_absolute() {
            super::log::warn(&format!(
                "mount destination {} is relative: taken relative to /",
                m.destination().display()
            ));
        }
    }
    Ok(())
}

/// linux.devices: absolute paths that do not climb with "..". config-linux.md allows any
/// path in the container; each is created through an fd resolved inside the root.
fn validate_devices(spec: &Spec) -> Result<()> {
    let devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default();
    for d in devices {
        let path = d.path();
        let climbs = path
            .components()
            .any(|c| c == std::path::Component::ParentDir);
        if !path.is_absolute() || climbs {
            return Err(Error::Config(format!(
                "linux.devices {}: must be an absolute path without \"..\"",
                path.display()
            )));
        }
    }
    Ok(())
}

fn validate_namespaces(spec: &Spec) -> Result<()> {
    let linux = match spec.linux() {
        Some(l) => l,
        None => return Ok(()),
    };
    let mut seen = HashSet::new();
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    for ns in namespaces {
        if !seen.insert(ns.typ()) {
            return Err(Error::Config(format!(
                "namespace {} is listed twice",
                ns.typ()
            )));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(Error::Config(format!(
                    "namespace {} path {} must be absolute",
                    ns.typ(),
                    p.display()
                )));
            }
        }
    }
    let user = namespaces
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::User);
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    match user {
        None if has_maps => {
            return Err(Error::Config(
                "uid/gid mappings are given but there is no user namespace".into(),
            ))
        }
        Some(ns) if ns.path().is_none() && !has_maps => {
            return Err(Error::Config(
                "a new user namespace needs linux.uidMappings and linux.gidMappings".into(),
            ))
        }
        Some(ns) if ns.path().is_some() && has_maps => {
            return Err(Error::Config(
                "uid/gid mappings cannot be set when joining a user namespace by path".into(),
            ))
        }
        _ => {}
    }
    let has_time_ns = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Time && n.path().is_none());
    if linux.time_offsets().is_some() && !has_time_ns {
        return Err(Error::Config(
            "linux.timeOffsets needs a new time namespace".into(),
        ));
    }
    Ok(())
}

fn validate_hooks(spec: &Spec) -> Result<()> {
    let hooks = match spec.hooks() {
        Some(h) => h,
        None => return Ok(()),
    };
    let lists = [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    for (name, list) in lists {
        for hook in list.as_deref().unwrap_or_default() {
            if !hook.path().is_absolute() {
                return Err(Error::Config(format!(
                    "hooks.{name}: path {} must be absolute",
                    hook.path().display()
                )));
            }
            if hook.timeout().is_some_and(|t| t <= 0) {
                return Err(Error::Config(format!(
                    "hooks.{name}: timeout must be greater than zero"
                )));
            }
        }
    }
    Ok(())
}

/// Fields berth does not implement yet: a clear error, never silently ignored.
fn reject_unsupported(spec: &Spec) -> Result<()> {
    let unsupported = |field: &str, why: &str| {
        Err(Error::Unsupported {
            field: field.into(),
            why: why.into(),
        })
    };
    if let Some(process) = spec.process() {
        // An AppArmor profile is applied, or ignored on a host without AppArmor (as runc).
        if process
            .selinux_label()
            .as_deref()
            .is_some_and(|l| !l.is_empty())
            && !super::lsm::selinux_enabled()
        {
            return unsupported(
                "process.selinuxLabel",
                "SELinux is not enabled on this host",
            );
        }
    }
    if let Some(linux) = spec.linux() {
        if linux
            .mount_label()
            .as_deref()
            .is_some_and(|l| !l.is_empty())
            && !super::lsm::selinux_enabled()
        {
            return unsupported("linux.mountLabel", "SELinux is not enabled on this host");
        }
        if linux.intel_rdt().is_some() {
            return unsupported("linux.intelRdt", "not implemented");
        }
    }
    Ok(())
}

/// The default configuration `berth spec` writes: a busybox-friendly container with the
/// usual namespaces, mounts, masked paths and a small capability set, like runc's.
pub fn default_spec(rootless: bool) -> Spec {
    let mut value = serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    if rootless {
        make_rootless(&mut value);
    }
    // The JSON above is a fixed, valid document; parsing it cannot fail.
    spec_de::spec_from_value(value).unwrap_or_default()
}

/// Adjusts the default spec for a container run by an unprivileged user, as runc does:
/// a user namespace mapping the caller, no network namespace, /sys bound from the host.
fn make_rootless(value: &mut serde_json::Value) {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let linux = &mut value["linux"];
    linux["resources"] = serde_json::json!({});
    linux["namespaces"] = serde_json::json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
        {"type": "cgroup"}, {"type": "user"}
    ]);
    linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    let mounts = value["mounts"].as_array_mut();
    if let Some(mounts) = mounts {
        mounts.retain(|m| m["destination"] != "/sys/fs/cgroup");
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
            if m["destination"] == "/dev/pts" {
                if let Some(opts) = m["options"].as_array_mut() {
                    opts.retain(|o| o != "gid=5");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_is_valid() {
        let spec = default_spec(false);
        assert_eq!(spec.hostname().as_deref(), Some("berth"));
        assert_eq!(spec.mounts().as_ref().map(Vec::len), Some(7));
        validate(&spec).expect("the default spec validates");
    }

    #[test]
    fn rootless_spec_has_user_namespace_and_maps() {
        let spec = default_spec(true);
        let linux = spec.linux().as_ref().expect("linux section");
        let namespaces = linux.namespaces().as_ref().expect("namespaces");
        assert!(namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::User));
        assert!(!namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Network));
        assert_eq!(linux.uid_mappings().as_ref().map(Vec::len), Some(1));
        validate(&spec).expect("the rootless spec validates");
    }

    fn with(json_patch: serde_json::Value) -> Spec {
        let mut value = serde_json::to_value(default_spec(false)).expect("serialize");
        merge_json(&mut value, json_patch);
        serde_json::from_value(value).expect("patched spec parses")
    }

    #[test]
    fn relative_mount_destination_is_taken_relative_to_root() {
        let spec = with(serde_json::json!({"mounts": [{"destination": "proc", "type": "proc"}]}));
        validate(&spec).expect("relative destinations are relative to /");
        let empty = with(serde_json::json!({"mounts": [{"destination": "", "type": "proc"}]}));
        assert!(validate(&empty).is_err());
    }

    #[test]
    fn maps_without_user_namespace_are_rejected() {
        let spec = with(serde_json::json!({"linux": {"uidMappings": [
            {"containerID": 0, "hostID": 1000, "size": 1}]}}));
        let err = validate(&spec).expect_err("maps without userns");
        assert!(err.to_string().contains("no user namespace"), "{err}");
    }

    #[test]
    fn relative_hook_path_is_rejected() {
        let spec = with(serde_json::json!({"hooks": {"prestart": [{"path": "bin/true"}]}}));
        assert!(validate(&spec).is_err());
    }

    #[test]
    fn empty_args_are_rejected() {
        let spec = with(serde_json::json!({"process": {"args": []}}));
        assert!(validate(&spec).is_err());
    }

    #[test]
    fn duplicate_namespace_is_rejected() {
        let spec = with(serde_json::json!({"linux": {"namespaces": [
            {"type": "pid"}, {"type": "pid"}]}}));
        assert!(validate(&spec).is_err());
    }

    #[test]
    fn unknown_namespace_type_fails_to_parse() {
        let mut value = serde_json::to_value(default_spec(false)).expect("serialize");
        value["linux"]["namespaces"] = serde_json::json!([{"type": "bogus"}]);
        let bytes = serde_json::to_vec(&value).expect("bytes");
        assert!(parse(&bytes).is_err());
    }

    #[test]
    fn intel_rdt_is_reported_unsupported_by_name() {
        let spec = with(serde_json::json!({"linux": {"intelRdt": {"closID": "x"}}}));
        let err = validate(&spec).expect_err("intelRdt unsupported");
        assert!(err.to_string().contains("linux.intelRdt"), "{err}");
    }
}
