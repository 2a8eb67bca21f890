//! Linux security modules applied for real.
//!
//! AppArmor: profiles of the tests' own, loaded with `apparmor_parser`, confine the container's
//! process and the processes `exec` starts (the container's profile, or the one `--apparmor` or
//! the process file names); a profile that is not loaded fails cleanly.
//!
//! SELinux: with the tiny policy of integration/cgroups-vm/selinux-test.cil loaded and enforced,
//! `process.selinuxLabel` and `exec --process-label` set the process's context (a file labelled
//! `secret_t` cannot be read from `container_t`), `linux.mountLabel` labels the container's
//! tmpfs mounts, and a context the policy does not know fails cleanly.
//!
//! On a host without the LSM these tests say why they skip (the ignored-profile and
//! refused-label behaviour is in `security.rs`); the exec flags are checked there too:
//! `--apparmor` ignored, `--process-label` a clear error without SELinux.
//!
//! The kernel of integration/cgroups-vm runs AppArmor, or SELinux when booted with
//! `security=selinux`: `run.sh --lsm` and `run.sh --selinux` run this file there with
//! `BERTH_TEST_REQUIRE_APPARMOR=1` or `BERTH_TEST_REQUIRE_SELINUX=1`, which turn a skip into a
//! failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::harness::{parse_mountinfo, present_or_skip, runc_diverges, suite_dir, Sandbox};

// ---------------------------------------------------------------------------------------------
// The host's LSMs and the tests' own AppArmor profiles
// ---------------------------------------------------------------------------------------------

fn apparmor_enabled() -> bool {
    fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y")
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// True when the test can go on; otherwise prints why it skips (or fails when the run
/// requires the LSM, as the VM runs do).
fn lsm_or_skip(enabled: bool, lsm: &str, require: &str, test: &str) -> bool {
    present_or_skip(
        enabled,
        require,
        &format!("{lsm} is not enabled on this host ({test})"),
    )
}

fn apparmor_or_skip(test: &str) -> bool {
    lsm_or_skip(
        apparmor_enabled(),
        "AppArmor",
        "BERTH_TEST_REQUIRE_APPARMOR",
        test,
    )
}

fn selinux_or_skip(test: &str) -> bool {
    lsm_or_skip(
        selinux_enabled(),
        "SELinux",
        "BERTH_TEST_REQUIRE_SELINUX",
        test,
    )
}

/// An AppArmor profile loaded for one test, removed from the kernel on drop.
struct Profile {
    name: String,
    file: PathBuf,
}

impl Profile {
    /// Loads `profile NAME` allowing everything but `rules` (deny rules). Self-contained: no
    /// abi, include or variable, so it needs nothing from /etc/apparmor.d.
    fn load(tag: &str, rules: &[&str]) -> Profile {
        let name = format!("berth-itest-{tag}-{}", std::process::id());
        let file = suite_dir().join(format!("{name}.apparmor"));
        let mut text = format!("profile {name} flags=(attach_disconnected,mediate_deleted) {{\n");
        for rule in ["file", "capability", "network", "signal", "ptrace", "unix"]
            .iter()
            .chain(rules)
        {
            text.push_str(&format!("  {rule},\n"));
        }
        text.push_str("}\n");
        fs::write(&file, text).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        parser(&["--replace"], &file)
            .unwrap_or_else(|e| panic!("loading AppArmor profile {name}: {e}"));
        Profile { name, file }
    }

    /// What /proc/PID/attr/current shows for a process confined by this profile.
    fn current(&self) -> String {
        format!("{} (enforce)", self.name)
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        if let Err(e) = parser(&["--remove"], &self.file) {
            eprintln!("cleanup: removing AppArmor profile {}: {e}", self.name);
        }
    }
}

/// Runs apparmor_parser on a profile file without its cache or /etc/apparmor/parser.conf.
fn parser(action: &[&str], file: &Path) -> Result<(), String> {
    let out = Command::new("apparmor_parser")
        .args(["--config-file", "/dev/null", "--skip-cache"])
        .args(action)
        .arg(file)
        .output()
        .map_err(|e| format!("running apparmor_parser (package apparmor): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "apparmor_parser {action:?} exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------------------

/// A sandbox whose rootfs has /secret and /other, files the profiles deny.
fn sandbox(tag: &str) -> Sandbox {
    let sb = Sandbox::new(tag);
    for file in ["secret", "other"] {
        fs::write(sb.rootfs.join(file), format!("{file} contents\n")).expect("write a file");
    }
    sb
}

/// The SELinux context of a file (its security.selinux attribute).
fn file_label(path: &str) -> String {
    let c_path = std::ffi::CString::new(path).expect("no NUL in the path");
    let mut buf = [0u8; 256];
    // SAFETY: NUL-terminated path and name; `buf` is writable for its whole length.
    let len = unsafe {
        libc::getxattr(
            c_path.as_ptr(),
            c"security.selinux".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let len = usize::try_from(len)
        .unwrap_or_else(|_| panic!("getxattr {path}: {}", std::io::Error::last_os_error()));
    String::from_utf8_lossy(&buf[..len])
        .trim_end_matches('\0')
        .to_string()
}

fn remove_process_field(sb: &mut Sandbox, field: &str) {
    sb.config["process"]
        .as_object_mut()
        .expect("process is an object")
        .remove(field);
}

/// Prints the process's LSM label (SELinux ends it with a NUL, AppArmor with a newline),
/// then whether /secret and /other can be read.
const PROBE: &str = "echo \"$(tr -d '\\000' </proc/self/attr/current)\"; \
    for f in /secret /other; do cat $f >/dev/null 2>&1 && echo \"$f read\" || echo \"$f denied\"; done";

fn probe_lines(stdout: &str) -> Vec<String> {
    stdout.lines().map(|l| l.trim().to_string()).collect()
}

fn expected(label: &str, secret: &str, other: &str) -> Vec<String> {
    vec![
        label.to_string(),
        format!("/secret {secret}"),
        format!("/other {other}"),
    ]
}

/// Starts a detached container that sleeps; returns its id once it runs.
fn start_sleeping(sb: &mut Sandbox, tag: &str) -> String {
    sb.set_script("exec sleep 100000");
    let id = sb.new_id(tag);
    sb.run(&id, &["--detach"]).ok();
    sb.wait_status(&id, "running");
    id
}

/// `exec ID sh -c PROBE` with `flags`; the probe's lines.
fn exec_probe(sb: &Sandbox, id: &str, flags: &[&str]) -> Vec<String> {
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[id, "sh", "-c", PROBE]);
    probe_lines(&sb.rt(&args).ok().stdout)
}

/// `exec --process FILE ID` running PROBE, the process being the container's with `field`
/// set to `value` or (None) left out; the probe's lines.
fn exec_process_probe(sb: &Sandbox, id: &str, field: &str, value: Option<&str>) -> Vec<String> {
    let mut p = sb.config["process"].clone();
    p["args"] = json!(["sh", "-c", PROBE]);
    let obj = p.as_object_mut().expect("process is an object");
    match value {
        Some(v) => obj.insert(field.to_string(), json!(v)),
        None => obj.remove(field),
    };
    let path = sb.dir.join(format!("process-{}.json", value.is_some()));
    fs::write(&path, p.to_string()).expect("write the process file");
    let path = path.to_str().expect("utf-8 path");
    probe_lines(&sb.rt(&["exec", "--process", path, id]).ok().stdout)
}

/// What exec runs with, as runc: the container's label (`container`, the probe's lines),
/// unless `flag` or the process file's `field` asks for `other` (whose lines are `others`).
fn assert_exec_labels(
    sb: &Sandbox,
    id: &str,
    (flag, field): (&str, &str),
    container: &[String],
    (other, others): (&str, &[String]),
) {
    assert_eq!(exec_probe(sb, id, &[]), container, "exec without {flag}");
    assert_eq!(exec_probe(sb, id, &[flag, other]), others, "exec {flag}");
    let inherited = exec_process_probe(sb, id, field, None);
    assert_eq!(inherited, container, "a process file without {field}");
    let asked = exec_process_probe(sb, id, field, Some(other));
    assert_eq!(asked, others, "a process file with {field}");
}

/// A create that must fail in one line naming `needles`, leaving nothing behind (state,
/// mounts, processes, its own cgroup).
fn assert_create_fails_cleanly(sb: &mut Sandbox, tag: &str, needles: &[&str]) {
    let id = sb.new_id(tag);
    let cgroup = format!("/berth-itest-lsm-{id}");
    sb.config["linux"]["cgroupsPath"] = json!(cgroup);
    sb.set_script("echo ran");
    sb.create(&id, &[]).one_line_error(needles);
    sb.assert_nothing_left(&id);
    let left = existing_cgroup_dirs(&cgroup);
    assert!(left.is_empty(), "cgroups were left behind: {left:?}");
}

/// An exec with `flags` that must fail in one line naming `needles`; the container (whose
/// config asks for no label) runs on with no process more.
fn assert_exec_fails_cleanly(sb: &mut Sandbox, flags: &[&str], needles: &[&str]) {
    let id = start_sleeping(sb, "lsm-badexec");
    let before = sb.processes_inside();
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[&id, "echo", "ran"]);
    sb.rt(&args).one_line_error(needles);
    assert_eq!(
        sb.processes_inside(),
        before,
        "the failed exec left a process"
    );
    assert_eq!(sb.status(&id), "running");
}

fn host_label(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/attr/current"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/attr/current: {e}"))
        .trim_end_matches(['\n', '\0'])
        .to_string()
}

/// Cgroup directories named `path` on every cgroup hierarchy of the host that exist.
fn existing_cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    parse_mountinfo(&text)
        .into_iter()
        .filter(|m| m.fs_type == "cgroup" || m.fs_type == "cgroup2")
        .map(|m| Path::new(&m.mount_point).join(path.trim_start_matches('/')))
        .filter(|dir| dir.exists())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// AppArmor enabled
// ---------------------------------------------------------------------------------------------

/// process.apparmorProfile confines the container's process: its label is the profile, in
/// enforce mode, and the profile's deny rule holds while the rest of the rootfs is readable.
#[test]
fn container_runs_confined_by_its_profile() {
    if !apparmor_or_skip("container_runs_confined_by_its_profile") {
        return;
    }
    let profile = Profile::load("run", &["deny /secret r"]);
    let mut sb = sandbox("lsm-run");
    sb.config["process"]["apparmorProfile"] = json!(profile.name);
    let out = sb.run_script(PROBE);
    assert_eq!(
        probe_lines(&out),
        expected(&profile.current(), "denied", "read")
    );
}

/// `exec` runs the container's profile unless `--apparmor` (or the process file's
/// apparmorProfile) names another, as runc does.
#[test]
fn exec_takes_the_containers_profile_or_the_one_asked_for() {
    if !apparmor_or_skip("exec_takes_the_containers_profile_or_the_one_asked_for") {
        return;
    }
    let container = Profile::load("exec-container", &["deny /secret r"]);
    let other = Profile::load("exec-other", &["deny /other r"]);
    let mut sb = sandbox("lsm-exec");
    sb.config["process"]["apparmorProfile"] = json!(container.name);
    let id = start_sleeping(&mut sb, "lsm-exec");
    assert_eq!(host_label(sb.pid(&id)), container.current(), "the init");
    assert_exec_labels(
        &sb,
        &id,
        ("--apparmor", "apparmorProfile"),
        &expected(&container.current(), "denied", "read"),
        (&other.name, &expected(&other.current(), "read", "denied")),
    );
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
}

/// A profile the kernel does not have: create fails with one line naming it, and leaves no
/// state directory, cgroup, mount or process; an exec asking for one fails the same way and
/// the container runs on.
#[test]
fn profile_not_loaded_fails_cleanly() {
    if !apparmor_or_skip("profile_not_loaded_fails_cleanly") {
        return;
    }
    let missing = format!("berth-itest-not-loaded-{}", std::process::id());
    let mut sb = sandbox("lsm-missing");
    sb.config["process"]["apparmorProfile"] = json!(missing);
    assert_create_fails_cleanly(&mut sb, "lsm-missing", &[&missing, "not loaded"]);
    remove_process_field(&mut sb, "apparmorProfile");
    assert_exec_fails_cleanly(
        &mut sb,
        &["--apparmor", &missing],
        &[&missing, "not loaded"],
    );
}

/// The profile is written to the container's /proc/thread-self/attr: a container without
/// procfs at /proc fails with one line saying so (no silent unconfined run).
#[test]
fn profile_without_procfs_fails_cleanly() {
    if !apparmor_or_skip("profile_without_procfs_fails_cleanly") {
        return;
    }
    let profile = Profile::load("noproc", &[]);
    let mut sb = sandbox("lsm-noproc");
    sb.config["mounts"]
        .as_array_mut()
        .expect("mounts is an array")
        .retain(|m| m["destination"] != "/proc");
    sb.config["process"]["apparmorProfile"] = json!(profile.name);
    sb.set_script("echo ran");
    let id = sb.new_id("lsm-noproc");
    sb.run(&id, &[])
        .one_line_error(&[&profile.name, "no procfs"]);
    sb.assert_nothing_left(&id);
}

// ---------------------------------------------------------------------------------------------
// SELinux enforcing (the policy of integration/cgroups-vm/selinux-test.cil)
// ---------------------------------------------------------------------------------------------

const CONTAINER_LABEL: &str = "system_u:system_r:container_t:s0:c1,c2";
const EXEC_LABEL: &str = "system_u:system_r:container_t:s0:c3";
const MOUNT_LABEL: &str = "system_u:object_r:container_file_t:s0:c1,c2";
const SECRET_LABEL: &str = "system_u:object_r:secret_t:s0";

/// A sandbox whose /secret is labelled secret_t, which container_t may not read.
fn selinux_sandbox(tag: &str) -> Sandbox {
    let sb = sandbox(tag);
    let path = std::ffi::CString::new(sb.rootfs.join("secret").as_os_str().as_encoded_bytes())
        .expect("no NUL in the path");
    // SAFETY: NUL-terminated path and attribute name; the value is a valid buffer of its length.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"security.selinux".as_ptr(),
            SECRET_LABEL.as_ptr().cast(),
            SECRET_LABEL.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "label {path:?} {SECRET_LABEL}: {}",
        std::io::Error::last_os_error()
    );
    sb
}

/// process.selinuxLabel is the container process's context and the policy holds (no read of
/// secret_t); linux.mountLabel is the context of the container's tmpfs mounts.
#[test]
fn container_runs_with_its_selinux_labels() {
    if !selinux_or_skip("container_runs_with_its_selinux_labels") {
        return;
    }
    let mut sb = selinux_sandbox("lsm-se-run");
    sb.config["process"]["selinuxLabel"] = json!(CONTAINER_LABEL);
    sb.config["linux"]["mountLabel"] = json!(MOUNT_LABEL);
    let out = sb.run_script(&format!(
        "{PROBE}; grep -E ' /dev(/shm)? ' /proc/self/mountinfo"
    ));
    let lines = probe_lines(&out);
    assert_eq!(lines[..3], expected(CONTAINER_LABEL, "denied", "read"));
    let mounts = &lines[3..];
    assert_eq!(mounts.len(), 2, "/dev and /dev/shm: {mounts:?}");
    for mount in mounts {
        assert!(
            mount.contains(&format!("context=\"{MOUNT_LABEL}\"")),
            "mountLabel is not on {mount}"
        );
    }
}

/// The SELinux context of the key named `name` (KEYCTL_GET_SECURITY), found in /proc/keys.
fn key_context(name: &str) -> Option<String> {
    const KEYCTL_GET_SECURITY: libc::c_int = 17;
    let keys = fs::read_to_string("/proc/keys").expect("read /proc/keys");
    let serial = keys.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let described = fields.get(8)?.trim_end_matches(':');
        (described == name).then(|| i32::from_str_radix(fields[0], 16).ok())?
    })?;
    let mut buf = [0u8; 256];
    // SAFETY: keyctl writes at most `buf.len()` bytes into `buf`.
    let len = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_SECURITY,
            serial,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    assert!(
        len > 0,
        "KEYCTL_GET_SECURITY {name}: {}",
        std::io::Error::last_os_error()
    );
    let len = usize::try_from(len).expect("length").min(buf.len());
    Some(
        String::from_utf8_lossy(&buf[..len])
            .trim_end_matches('\0')
            .to_string(),
    )
}

/// The container's session keyring (`_ses.ID`) is labelled with the container's context, not
/// the runtime's: berth writes it to `attr/keycreate` before joining the keyring, as runc.
#[test]
fn session_keyring_has_the_containers_selinux_label() {
    if !selinux_or_skip("session_keyring_has_the_containers_selinux_label") {
        return;
    }
    let mut sb = selinux_sandbox("lsm-se-key");
    sb.config["process"]["selinuxLabel"] = json!(CONTAINER_LABEL);
    let id = start_sleeping(&mut sb, "lsm-se-key");
    let keyring = format!("_ses.{id}");
    let context = key_context(&keyring).unwrap_or_else(|| panic!("no {keyring} in /proc/keys"));
    assert_eq!(context, CONTAINER_LABEL, "the context of {keyring}");
    sb.rt(&["delete", "--force", &id]).ok();
}

/// `exec` runs with the container's context unless `--process-label` (or the process file's
/// selinuxLabel) names another, as runc does.
#[test]
fn exec_takes_the_containers_selinux_label_or_the_one_asked_for() {
    if !selinux_or_skip("exec_takes_the_containers_selinux_label_or_the_one_asked_for") {
        return;
    }
    let mut sb = selinux_sandbox("lsm-se-exec");
    sb.config["process"]["selinuxLabel"] = json!(CONTAINER_LABEL);
    sb.config["linux"]["mountLabel"] = json!(MOUNT_LABEL);
    let id = start_sleeping(&mut sb, "lsm-se-exec");
    let pid = sb.pid(&id);
    assert_eq!(host_label(pid), CONTAINER_LABEL, "the init");
    // mqueue takes no context= option: its root is labelled once mounted.
    let mqueue = format!("/proc/{pid}/root/dev/mqueue");
    assert_eq!(file_label(&mqueue), MOUNT_LABEL, "{mqueue}");
    assert_exec_labels(
        &sb,
        &id,
        ("--process-label", "selinuxLabel"),
        &expected(CONTAINER_LABEL, "denied", "read"),
        (EXEC_LABEL, &expected(EXEC_LABEL, "denied", "read")),
    );
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
}

/// A context the loaded policy does not know: create and exec fail in one line naming it,
/// leaving nothing behind.
#[test]
fn selinux_label_not_in_the_policy_fails_cleanly() {
    if !selinux_or_skip("selinux_label_not_in_the_policy_fails_cleanly") {
        return;
    }
    let unknown = "system_u:system_r:berth_no_such_t:s0";
    let needles = [unknown, "not a valid context"];
    let mut sb = sandbox("lsm-se-bad");
    sb.config["process"]["selinuxLabel"] = json!(unknown);
    assert_create_fails_cleanly(&mut sb, "lsm-se-bad", &needles);
    remove_process_field(&mut sb, "selinuxLabel");
    assert_exec_fails_cleanly(&mut sb, &["--process-label", unknown], &needles);
}

// ---------------------------------------------------------------------------------------------
// The exec flags on a host without the LSM
// ---------------------------------------------------------------------------------------------

/// Without AppArmor `exec --apparmor` is ignored (as the config's profile is); without SELinux
/// `exec --process-label` is refused with one line naming SELinux, and nothing starts.
#[test]
fn exec_lsm_flags_without_the_lsm() {
    runc_diverges(
        "runc 1.1.5 writes --apparmor without AppArmor (EINVAL), ignores --process-label without SELinux",
        exec_lsm_flags,
    );
}

fn exec_lsm_flags() {
    let mut sb = Sandbox::new("lsm-flags");
    let id = start_sleeping(&mut sb, "lsm-flags");
    if apparmor_enabled() {
        eprintln!("exec --apparmor without AppArmor: not checked, AppArmor is enabled here");
    } else {
        let out = sb.rt(&["exec", "--apparmor", "berth-itest-any", &id, "echo", "ran"]);
        assert_eq!(out.ok().stdout, "ran\n");
    }
    if selinux_enabled() {
        eprintln!("exec --process-label without SELinux: not checked, SELinux is enabled here");
    } else {
        let before = sb.processes_inside();
        let label = "system_u:system_r:container_t:s0:c1,c2";
        sb.rt(&["exec", "--process-label", label, &id, "echo", "ran"])
            .one_line_error(&["selinux"]);
        assert_eq!(
            sb.processes_inside(),
            before,
            "the refused exec left a process"
        );
    }
}
