//! Linux security modules, as runc treats them: `process.apparmorProfile` is applied when
//! the host runs AppArmor and ignored when it does not; `process.selinuxLabel` and
//! `linux.mountLabel` are applied when the host runs SELinux and are an error when it does
//! not. The process's label is set by writing its `attr/exec` in procfs right before
//! execve (the kernel switches at exec), through a descriptor checked to be on procfs.

use std::ffi::{CStr, CString};
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

/// A label the process takes at its next execve: `value` written to the first of `files`
/// (procfs paths, tried in order) that exists.
#[derive(Debug)]
pub struct ExecLabel {
    pub files: [&'static CStr; 2],
    pub value: CString,
    /// For error messages: "AppArmor profile foo".
    pub what: String,
}

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
                // The per-LSM file first (Linux 5.1+), then the shared one.
                files: [
                    c"/proc/thread-self/attr/apparmor/exec",
                    c"/proc/thread-self/attr/exec",
                ],
                value: cstring(format!("exec {profile}").as_bytes())?,
                what: format!("AppArmor profile {profile}"),
            });
        }
    }
    if let Some(label) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        if selinux_enabled() {
            labels.push(ExecLabel {
                files: [
                    c"/proc/thread-self/attr/exec",
                    c"/proc/thread-self/attr/exec",
                ],
                value: cstring(label.as_bytes())?,
                what: format!("SELinux label {label}"),
            });
        }
    }
    Ok(labels)
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
        let apparmor = labels.iter().any(|l| l.what.starts_with("AppArmor"));
        let selinux = labels.iter().any(|l| l.what.starts_with("SELinux"));
        assert_eq!(apparmor, apparmor_enabled());
        assert_eq!(selinux, selinux_enabled());
        if let Some(l) = labels.iter().find(|l| l.what.starts_with("AppArmor")) {
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
}
