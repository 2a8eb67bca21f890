//! Linux security modules, as runc treats them: `process.apparmorProfile` is applied when
//! the host runs AppArmor and ignored when it does not; `process.selinuxLabel` and
//! `linux.mountLabel` are applied when the host runs SELinux and are an error when it does
//! not. The process's label is set by writing its `attr/exec` in procfs right before
//! execve (the kernel switches at exec), through a descriptor checked to be on procfs.

use std::ffi::{CStr, CString};
use std::io;
use std::path::Path;

use super::error::Result;
use super::plan::cstring;

/// Whether the host runs AppArmor.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

/// Whether the host runs SELinux (selinuxfs is mounted and has a policy loaded).
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lsm {
    AppArmor,
    SELinux,
}

/// A label the process takes at its next execve: `value` written to the first of `files`
/// (procfs paths, tried in order) that exists.
#[derive(Debug)]
pub struct ExecLabel {
    pub lsm: Lsm,
    pub files: &'static [&'static CStr],
    pub value: CString,
    /// The profile or label as the config names it.
    pub name: String,
}

impl ExecLabel {
    /// For error messages: "AppArmor profile foo".
    pub fn what(&self) -> String {
        match self.lsm {
            Lsm::AppArmor => format!("AppArmor profile {}", self.name),
            Lsm::SELinux => format!("SELinux label {}", self.name),
        }
    }
}

/// Added to a label's index in the init's failure report when none of its `files` exists
/// (no procfs at /proc in the container), to tell that from the kernel refusing the label.
pub const NO_ATTR_FILE: usize = 1 << 16;

/// The labels `process` asks for that this host applies (see the module comment for what
/// is ignored; `spec::validate` refuses what cannot be applied).
pub fn exec_labels(process: &oci_spec::runtime::Process) -> Result<Vec<ExecLabel>> {
    let mut labels = Vec::new();
    if let Some(profile) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        if apparmor_enabled() {
            labels.push(ExecLabel {
                lsm: Lsm::AppArmor,
                // The per-LSM file first (Linux 5.1+), then the shared one.
                files: &[
                    c"/proc/thread-self/attr/apparmor/exec",
                    c"/proc/thread-self/attr/exec",
                ],
                value: cstring(format!("exec {profile}").as_bytes())?,
                name: profile.to_string(),
            });
        }
    }
    if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        if selinux_enabled() {
            labels.push(ExecLabel {
                lsm: Lsm::SELinux,
                // SELinux has no per-LSM directory.
                files: &[c"/proc/thread-self/attr/exec"],
                value: cstring(label.as_bytes())?,
                name: label.to_string(),
            });
        }
    }
    Ok(labels)
}

/// The SELinux context for the session keyring the process creates or joins, written to
/// `attr/keycreate` before (as runc does): the process's own label, so its keys are not
/// labelled with the runtime's context. None without SELinux or a label.
pub fn key_label(process: &oci_spec::runtime::Process) -> Result<Option<ExecLabel>> {
    let label = process.selinux_label().as_deref().filter(|l| !l.is_empty());
    match label {
        Some(label) if selinux_enabled() => Ok(Some(ExecLabel {
            lsm: Lsm::SELinux,
            files: &[c"/proc/thread-self/attr/keycreate"],
            value: cstring(label.as_bytes())?,
            name: label.to_string(),
        })),
        _ => Ok(None),
    }
}

/// The init's or exec'd process's failure to apply `labels[index]` as a sentence. The
/// kernel's errno alone misleads: AppArmor says ENOENT for a profile it has not loaded,
/// SELinux EINVAL for a label its policy does not know.
pub fn describe_failure(labels: &[ExecLabel], index: usize, errno: i32) -> String {
    let err = io::Error::from_raw_os_error(errno);
    let Some(label) = labels.get(index & !NO_ATTR_FILE) else {
        return format!("applying an LSM label: {err}");
    };
    let what = label.what();
    if index & NO_ATTR_FILE != 0 {
        return format!("applying the {what}: no procfs at /proc in the container to write it to");
    }
    match (label.lsm, errno) {
        (Lsm::AppArmor, libc::ENOENT) => {
            format!("applying the {what}: the profile is not loaded in the kernel ({err})")
        }
        (Lsm::SELinux, libc::EINVAL) => {
            format!("applying the {what}: not a valid context in the loaded policy ({err})")
        }
        _ => format!("applying the {what}: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(json: serde_json::Value) -> oci_spec::runtime::Process {
        serde_json::from_value(json).expect("process")
    }

    #[test]
    fn labels_follow_what_the_host_runs() {
        let p = process(serde_json::json!({
            "cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
            "apparmorProfile": "berth-default", "selinuxLabel": "system_u:system_r:container_t:s0"
        }));
        let labels = exec_labels(&p).expect("labels");
        let apparmor = labels.iter().any(|l| l.lsm == Lsm::AppArmor);
        let selinux = labels.iter().any(|l| l.lsm == Lsm::SELinux);
        assert_eq!(apparmor, apparmor_enabled());
        assert_eq!(selinux, selinux_enabled());
        if let Some(l) = labels.iter().find(|l| l.lsm == Lsm::AppArmor) {
            assert_eq!(l.value.to_bytes(), b"exec berth-default");
        }
    }

    #[test]
    fn empty_requests_ask_for_nothing() {
        let p = process(serde_json::json!({
            "cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
            "apparmorProfile": "", "selinuxLabel": ""
        }));
        assert!(exec_labels(&p).expect("labels").is_empty());
    }

    #[test]
    fn failures_say_what_the_errno_means() {
        let labels = [ExecLabel {
            lsm: Lsm::AppArmor,
            files: &[c"/proc/thread-self/attr/exec"],
            value: c"exec p".into(),
            name: "p".into(),
        }];
        let not_loaded = describe_failure(&labels, 0, libc::ENOENT);
        assert!(not_loaded.contains("AppArmor profile p: the profile is not loaded"));
        let no_proc = describe_failure(&labels, NO_ATTR_FILE, libc::ENOENT);
        assert!(no_proc.contains("no procfs at /proc"), "{no_proc}");
        assert!(describe_failure(&labels, 3, libc::EPERM).starts_with("applying an LSM label"));
    }
}
