//! The one place JSON becomes `oci_spec` types.
//!
//! Every document berth reads (config.json, a saved state's config, `exec --process`,
//! `update`'s resources, the default spec) goes through [`from_value`]: a single,
//! path-tracking deserializer over `serde_json::Value`, so a type error names its field
//! (`process.args: invalid type ...`) and the deserialization code exists once in the
//! binary instead of once per input kind (it was three copies, a third of the binary).
//!
//! `Spec` and `Process` are deserialized through mirrors of their own ([`RawSpec`],
//! [`RawProcess`]) whose fields are the `oci_spec` types, then assembled with the
//! setters: `oci_spec::runtime::Process`'s own `Deserialize` checks `execCPUAffinity`
//! with the `regex` crate, which alone was 600 KiB of berth's text and of every
//! container start's resident memory; berth's mirror checks the CPU lists itself.

use std::collections::HashMap;
use std::path::PathBuf;

use oci_spec::runtime::{
    ExecCPUAffinity, Hooks, Linux, LinuxCapabilities, LinuxIOPriority, LinuxIdMapping,
    LinuxSchedulerPolicy, Mount, PosixRlimit, Process, Root, Scheduler, Solaris, Spec, User,
    Windows, VM, ZOS,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Deserializes `value` into `T`; the error names the field (`linux.resources: ...`).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(path_error)
}

/// `path: error`, or the error alone at the document's root.
fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    if path == "." {
        e.inner().to_string()
    } else {
        format!("{path}: {}", e.inner())
    }
}

/// A whole config.json (or a saved config) as a `Spec`.
pub fn spec_from_value(value: serde_json::Value) -> Result<Spec, String> {
    from_value::<RawSpec>(value)?.into_spec()
}

/// A mount's `uidMappings` and `gidMappings` (runtime-spec 1.2, idmapped mounts), which
/// oci-spec 0.8's `Mount` has no field for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct MountMappings {
    #[serde(default, rename = "uidMappings")]
    pub uid: Option<Vec<LinuxIdMapping>>,
    #[serde(default, rename = "gidMappings")]
    pub gid: Option<Vec<LinuxIdMapping>>,
}

/// Each mount's mappings, in the order of `mounts` (empty without `mounts`).
pub fn mount_mappings_from_value(value: &serde_json::Value) -> Result<Vec<MountMappings>, String> {
    let Some(mounts) = value.get("mounts").and_then(|m| m.as_array()) else {
        return Ok(Vec::new());
    };
    mounts
        .iter()
        .enumerate()
        // Read from the borrowed mount: only two fields are wanted, nothing is copied.
        .map(|(i, m)| {
            serde_path_to_error::deserialize::<_, MountMappings>(m)
                .map_err(|e| format!("mounts[{i}].{}", path_error(e)))
        })
        .collect()
}

/// A process document (`exec --process FILE`) as a `Process`.
pub fn process_from_value(value: serde_json::Value) -> Result<Process, String> {
    from_value::<RawProcess>(value)?.into_process()
}

/// `#[serde(deserialize_with)]` for a `Spec` field of berth's own state documents.
pub fn deserialize_spec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Spec, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    spec_from_value(value).map_err(serde::de::Error::custom)
}

/// `oci_spec::runtime::Spec`, field for field, with the process mirrored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    #[serde(default, rename = "ociVersion")]
    version: String,
    #[serde(default)]
    root: Option<Root>,
    #[serde(default)]
    mounts: Option<Vec<Mount>>,
    #[serde(default)]
    process: Option<RawProcess>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    domainname: Option<String>,
    #[serde(default)]
    hooks: Option<Hooks>,
    #[serde(default)]
    annotations: Option<HashMap<String, String>>,
    #[serde(default)]
    linux: Option<Linux>,
    #[serde(default)]
    solaris: Option<Solaris>,
    #[serde(default)]
    windows: Option<Windows>,
    #[serde(default)]
    vm: Option<VM>,
    #[serde(default)]
    zos: Option<ZOS>,
    #[serde(default)]
    uid_mappings: Option<Vec<LinuxIdMapping>>,
    #[serde(default)]
    gid_mappings: Option<Vec<LinuxIdMapping>>,
}

impl RawSpec {
    fn into_spec(self) -> Result<Spec, String> {
        let process = match self.process {
            Some(p) => Some(p.into_process().map_err(|e| format!("process.{e}"))?),
            None => None,
        };
        // Spec::default() fills in a sample container: every field is overwritten below.
        let mut spec = Spec::default();
        spec.set_version(self.version)
            .set_root(self.root)
            .set_mounts(self.mounts)
            .set_process(process)
            .set_hostname(self.hostname)
            .set_domainname(self.domainname)
            .set_hooks(self.hooks)
            .set_annotations(self.annotations)
            .set_linux(self.linux)
            .set_solaris(self.solaris)
            .set_windows(self.windows)
            .set_vm(self.vm)
            .set_zos(self.zos)
            .set_uid_mappings(self.uid_mappings)
            .set_gid_mappings(self.gid_mappings);
        Ok(spec)
    }
}

/// `oci_spec::runtime::Process`, field for field.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProcess {
    #[serde(default)]
    terminal: Option<bool>,
    #[serde(default)]
    console_size: Option<oci_spec::runtime::Box>,
    user: User,
    #[serde(default)]
    args: Option<Vec<String>>,
    #[serde(default)]
    command_line: Option<String>,
    #[serde(default)]
    env: Option<Vec<String>>,
    cwd: PathBuf,
    #[serde(default)]
    capabilities: Option<LinuxCapabilities>,
    #[serde(default)]
    rlimits: Option<Vec<PosixRlimit>>,
    #[serde(default)]
    no_new_privileges: Option<bool>,
    #[serde(default)]
    apparmor_profile: Option<String>,
    #[serde(default)]
    oom_score_adj: Option<i32>,
    #[serde(default)]
    selinux_label: Option<String>,
    #[serde(default)]
    io_priority: Option<LinuxIOPriority>,
    #[serde(default)]
    scheduler: Option<RawScheduler>,
    #[serde(default, rename = "execCPUAffinity")]
    exec_cpu_affinity: Option<RawExecCpuAffinity>,
}

impl RawProcess {
    fn into_process(self) -> Result<Process, String> {
        let exec_cpu_affinity = self
            .exec_cpu_affinity
            .map(RawExecCpuAffinity::into_affinity)
            .transpose()?;
        // Process::default() fills in a sample shell: every field is overwritten below.
        let mut p = Process::default();
        p.set_terminal(self.terminal)
            .set_console_size(self.console_size)
            .set_user(self.user)
            .set_args(self.args)
            .set_command_line(self.command_line)
            .set_env(self.env)
            .set_cwd(self.cwd)
            .set_capabilities(self.capabilities)
            .set_rlimits(self.rlimits)
            .set_no_new_privileges(self.no_new_privileges)
            .set_apparmor_profile(self.apparmor_profile)
            .set_oom_score_adj(self.oom_score_adj)
            .set_selinux_label(self.selinux_label)
            .set_io_priority(self.io_priority)
            .set_scheduler(
                self.scheduler
                    .map(RawScheduler::into_scheduler)
                    .transpose()?,
            )
            .set_exec_cpu_affinity(exec_cpu_affinity);
        Ok(p)
    }
}

/// `oci_spec::runtime::ExecCPUAffinity`, its CPU lists checked here (oci-spec checks
/// them with a regex).
#[derive(Deserialize)]
struct RawExecCpuAffinity {
    #[serde(default)]
    initial: Option<String>,
    #[serde(default, rename = "final")]
    final_cpus: Option<String>,
}

impl RawExecCpuAffinity {
    fn into_affinity(self) -> Result<ExecCPUAffinity, String> {
        let checked = |field: &str, list: Option<String>| match list {
            Some(l) if !l.trim().is_empty() => match super::sched::cpu_mask(&l) {
                Some(_) => Ok(Some(l)),
                None => Err(format!(
                    "execCPUAffinity.{field}: {l:?} is not a list of CPU numbers"
                )),
            },
            // Empty means "not given" (runtime-spec config.md).
            _ => Ok(None),
        };
        let mut affinity = ExecCPUAffinity::default();
        affinity
            .set_initial(checked("initial", self.initial)?)
            .set_cpu_affinity_final(checked("final", self.final_cpus)?);
        Ok(affinity)
    }
}

/// `oci_spec::runtime::Scheduler`, whose own flag names are not the spec's
/// (`SCHED_RESET_ON_FORK` for `SCHED_FLAG_RESET_ON_FORK`): flags are read by name.
#[derive(Deserialize)]
struct RawScheduler {
    policy: LinuxSchedulerPolicy,
    #[serde(default)]
    nice: Option<i32>,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    #[serde(default)]
    runtime: Option<u64>,
    #[serde(default)]
    deadline: Option<u64>,
    #[serde(default)]
    period: Option<u64>,
}

impl RawScheduler {
    fn into_scheduler(self) -> Result<Scheduler, String> {
        let flags = self
            .flags
            .map(|names| {
                names
                    .iter()
                    .map(|n| {
                        super::sched::scheduler_flag(n)
                            .ok_or_else(|| format!("scheduler.flags: unknown flag {n:?}"))
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .transpose()?;
        let mut s = Scheduler::default();
        s.set_policy(self.policy)
            .set_nice(self.nice)
            .set_priority(self.priority)
            .set_flags(flags)
            .set_runtime(self.runtime)
            .set_deadline(self.deadline)
            .set_period(self.period);
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> serde_json::Value {
        json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}}
        })
    }

    #[test]
    fn every_field_round_trips_like_oci_specs_own_parser() {
        let value = json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs", "readonly": true},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "process": {
                "terminal": true, "consoleSize": {"height": 24, "width": 80},
                "user": {"uid": 1, "gid": 2, "umask": 18, "additionalGids": [3]},
                "args": ["sh", "-c", "true"], "env": ["A=b"], "cwd": "/tmp",
                "capabilities": {"bounding": ["CAP_KILL"]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 5}],
                "noNewPrivileges": true, "apparmorProfile": "p", "oomScoreAdj": 7,
                "selinuxLabel": "l", "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
                "scheduler": {"policy": "SCHED_OTHER"}
            },
            "hostname": "h", "domainname": "d",
            "hooks": {"prestart": [{"path": "/bin/true"}]},
            "annotations": {"a": "b"},
            "linux": {"namespaces": [{"type": "pid"}], "resources": {"pids": {"limit": 5}}},
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]
        });
        let ours = spec_from_value(value.clone()).expect("ours");
        let theirs: Spec = serde_json::from_value(value).expect("oci-spec's");
        assert_eq!(ours, theirs);
    }

    #[test]
    fn absent_fields_stay_absent_not_defaulted() {
        let spec = spec_from_value(json!({"ociVersion": "1.2.0"})).expect("spec");
        assert!(spec.process().is_none());
        assert!(spec.mounts().is_none());
        assert!(spec.linux().is_none());
        assert!(spec.hostname().is_none());
        let p = spec_from_value(minimal()).expect("spec");
        let p = p.process().as_ref().expect("process");
        assert!(p.env().is_none() && p.capabilities().is_none() && p.rlimits().is_none());
        assert_eq!(p.no_new_privileges(), None);
    }

    #[test]
    fn type_errors_name_the_field() {
        let mut v = minimal();
        v["process"]["args"] = json!("sh");
        let err = spec_from_value(v).expect_err("args is a string");
        assert!(err.starts_with("process.args: invalid type"), "{err}");
        let err = spec_from_value(json!({"linux": {"resources": {"pids": {"limit": "x"}}}}))
            .expect_err("bad limit");
        assert!(err.starts_with("linux.resources.pids.limit:"), "{err}");
    }

    #[test]
    fn exec_cpu_affinity_lists_are_checked() {
        let mut v = minimal();
        v["process"]["execCPUAffinity"] = json!({"initial": "0-1", "final": "1"});
        let spec = spec_from_value(v.clone()).expect("valid lists");
        let affinity = spec
            .process()
            .as_ref()
            .and_then(|p| p.exec_cpu_affinity().clone())
            .expect("kept");
        assert_eq!(affinity.initial().as_deref(), Some("0-1"));
        assert_eq!(affinity.cpu_affinity_final().as_deref(), Some("1"));
        v["process"]["execCPUAffinity"] = json!({"final": "1-x"});
        let err = spec_from_value(v).expect_err("bad list");
        assert!(err.starts_with("process.execCPUAffinity.final:"), "{err}");
    }

    #[test]
    fn a_process_document_parses_alone() {
        let p =
            process_from_value(json!({"cwd": "/", "args": ["ls"], "user": {"uid": 0, "gid": 0}}))
                .expect("process");
        assert_eq!(p.args().as_deref(), Some(&["ls".to_string()][..]));
        let err = process_from_value(json!({"args": ["ls"], "user": {"uid": 0, "gid": 0}}))
            .expect_err("no cwd");
        assert!(err.contains("cwd"), "{err}");
    }
}
