//! Linux security modules applied for real: AppArmor profiles of the tests' own, loaded with
//! `apparmor_parser`, confine the container's process and processes `exec` starts (the
//! container's profile, or the one `--apparmor` names); a profile that is not loaded fails
//! cleanly. On a host without AppArmor these tests say why they skip (the ignored-profile
//! behaviour is `security::apparmor_profile_is_applied_or_ignored_like_runc`); the exec flags
//! are checked there too: `--apparmor` ignored, `--process-label` a clear error without SELinux.
//!
//! The kernel of integration/cgroups-vm runs AppArmor: `run.sh --lsm` runs this file there with
//! `BERTH_TEST_REQUIRE_APPARMOR=1`, which turns a skip into a failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::harness::{parse_mountinfo, suite_dir, Sandbox};

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
/// requires AppArmor, as the VM run does).
fn apparmor_or_skip(test: &str) -> bool {
    if apparmor_enabled() {
        return true;
    }
    assert!(
        std::env::var_os("BERTH_TEST_REQUIRE_APPARMOR").is_none(),
        "BERTH_TEST_REQUIRE_APPARMOR is set but AppArmor is not enabled on this kernel"
    );
    eprintln!("skipped {test}: AppArmor is not enabled on this host");
    false
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

/// Prints the process's AppArmor label, then whether /secret and /other can be read.
const PROBE: &str = "cat /proc/self/attr/current; \
    for f in /secret /other; do cat $f >/dev/null 2>&1 && echo \"$f read\" || echo \"$f denied\"; done";

fn probe_lines(stdout: &str) -> Vec<String> {
    stdout.lines().map(|l| l.trim().to_string()).collect()
}

fn expected(profile: &Profile, secret: &str, other: &str) -> Vec<String> {
    vec![
        profile.current(),
        format!("/secret {secret}"),
        format!("/other {other}"),
    ]
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
    assert_eq!(probe_lines(&out), expected(&profile, "denied", "read"));
}

/// `exec` runs the container's profile unless `--apparmor` (or the process file's
/// apparmorProfile) names another, as runc does.
#[test]
fn exec_takes_the_containers_profile_or_the_one_asked_for() {
    if !apparmor_or_skip("exec_takes_the_containers_profile_or_the_one_asked_for") {
        return;
    }
    let container = Profile::load("exec-container", &["deny /secret r"]);
    let flag = Profile::load("exec-flag", &["deny /other r"]);
    let mut sb = sandbox("lsm-exec");
    sb.config["process"]["apparmorProfile"] = json!(container.name);
    sb.set_script("exec sleep 100000");
    let id = sb.new_id("lsm-exec");
    sb.run(&id, &["--detach"]).ok();
    sb.wait_status(&id, "running");
    assert_eq!(host_label(sb.pid(&id)), container.current(), "the init");

    let exec = |flags: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[&id, "sh", "-c", PROBE]);
        probe_lines(&sb.rt(&args).ok().stdout)
    };
    assert_eq!(exec(&[]), expected(&container, "denied", "read"));
    assert_eq!(
        exec(&["--apparmor", &flag.name]),
        expected(&flag, "read", "denied")
    );

    let process = |profile: Option<&str>| {
        let mut p = sb.config["process"].clone();
        p["args"] = json!(["sh", "-c", PROBE]);
        match profile {
            Some(name) => p["apparmorProfile"] = json!(name),
            None => drop(p.as_object_mut().map(|o| o.remove("apparmorProfile"))),
        }
        let path = sb
            .dir
            .join(format!("process-{}.json", profile.unwrap_or("none")));
        fs::write(&path, p.to_string()).expect("write the process file");
        let out = sb.rt(&["exec", "--process", path.to_str().expect("utf-8 path"), &id]);
        probe_lines(&out.ok().stdout)
    };
    assert_eq!(process(None), expected(&container, "denied", "read"));
    assert_eq!(process(Some(&flag.name)), expected(&flag, "read", "denied"));
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
    let id = sb.new_id("lsm-missing");
    let cgroup = format!("/berth-itest-lsm-{id}");
    sb.config["linux"]["cgroupsPath"] = json!(cgroup);
    sb.config["process"]["apparmorProfile"] = json!(missing);
    sb.set_script("echo ran");
    sb.create(&id, &[])
        .one_line_error(&[&missing, "not loaded"]);
    sb.assert_nothing_left(&id);
    let left = existing_cgroup_dirs(&cgroup);
    assert!(left.is_empty(), "cgroups were left behind: {left:?}");

    sb.config["process"]
        .as_object_mut()
        .expect("process is an object")
        .remove("apparmorProfile");
    sb.set_script("exec sleep 100000");
    let id = sb.new_id("lsm-missing-exec");
    sb.run(&id, &["--detach"]).ok();
    sb.wait_status(&id, "running");
    let before = sb.processes_inside();
    sb.rt(&["exec", "--apparmor", &missing, &id, "echo", "ran"])
        .one_line_error(&[&missing, "not loaded"]);
    assert_eq!(
        sb.processes_inside(),
        before,
        "the failed exec left a process"
    );
    assert_eq!(sb.status(&id), "running");
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
// The exec flags on a host without the LSM
// ---------------------------------------------------------------------------------------------

/// Without AppArmor `exec --apparmor` is ignored (as the config's profile is); without SELinux
/// `exec --process-label` is refused with one line naming SELinux, and nothing starts.
#[test]
fn exec_lsm_flags_without_the_lsm() {
    let mut sb = Sandbox::new("lsm-flags");
    sb.set_script("exec sleep 100000");
    let id = sb.new_id("lsm-flags");
    sb.run(&id, &["--detach"]).ok();
    sb.wait_status(&id, "running");
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
