//! config-linux.md: namespaces, user namespace mappings, time offsets, devices and default
//! devices, sysctl, seccomp, rootfsPropagation, maskedPaths, readonlyPaths, mountLabel,
//! personality, intelRdt, and valid values.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use super::{t, Test};
use crate::harness::{read_namespaces, remove_namespace, set_namespace, Sandbox};
use crate::outcome::{skip, Context, TestResult};
use crate::{check, check_eq, fail};

pub fn tests() -> Vec<Test> {
    vec![
        t(
            "config-linux.md/namespaces: pid creates a new PID namespace",
            ns_pid,
        ),
        t(
            "config-linux.md/namespaces: network creates a new network namespace",
            ns_network,
        ),
        t(
            "config-linux.md/namespaces: mount creates a new mount namespace",
            ns_mount,
        ),
        t(
            "config-linux.md/namespaces: ipc creates a new IPC namespace",
            ns_ipc,
        ),
        t(
            "config-linux.md/namespaces: uts creates a new UTS namespace",
            ns_uts,
        ),
        t(
            "config-linux.md/namespaces: cgroup creates a new cgroup namespace",
            ns_cgroup,
        ),
        t(
            "config-linux.md/namespaces: user creates a new user namespace",
            ns_user,
        ),
        t(
            "config-linux.md/namespaces: time creates a new time namespace",
            ns_time,
        ),
        t(
            "config-linux.md/namespaces: a type not listed MUST be inherited from the runtime",
            ns_inherited,
        ),
        t(
            "config-linux.md/namespaces: path MUST place the process in that namespace",
            ns_join_path,
        ),
        t(
            "config-linux.md/namespaces: a PID namespace can be joined by path",
            ns_join_pid,
        ),
        t(
            "config-linux.md/namespaces: a path of another namespace type MUST be an error",
            ns_path_wrong_type,
        ),
        t(
            "config-linux.md/namespaces: a path that is no namespace MUST be an error",
            ns_path_not_namespace,
        ),
        t(
            "config-linux.md/namespaces: duplicated types MUST be an error",
            ns_duplicate,
        ),
        t(
            "config-linux.md/namespaces: an unknown type MUST be an error",
            ns_unknown_type,
        ),
        t(
            "config-linux.md/user-namespace-mappings: uidMappings and gidMappings are applied",
            user_mappings,
        ),
        t(
            "config-linux.md/user-namespace-mappings: SHOULD NOT change rootfs ownership",
            user_mappings_keep_ownership,
        ),
        t(
            "config-linux.md/offset-for-time-namespace: timeOffsets shift the clocks",
            time_offsets,
        ),
        t(
            "config-linux.md/devices: a character device is created as described",
            device_char,
        ),
        t(
            "config-linux.md/devices: a FIFO device is created",
            device_fifo,
        ),
        t("config-linux.md/devices: a path MAY be outside /dev", device_outside_dev),
        t("config-linux.md/devices: an existing file that does not match MUST be an error", device_mismatch),
        t(
            "config-linux.md/devices: a block device is created",
            device_block,
        ),
        t(
            "config-linux.md/default-devices: null, zero, full, random, urandom, tty, ptmx",
            default_devices,
        ),
        t(
            "config-linux.md/sysctl: values are set in the container",
            sysctl_applied,
        ),
        t(
            "config-linux.md/sysctl: an unknown key MUST be an error",
            sysctl_unknown,
        ),
        t(
            "config-linux.md/seccomp: a filter is installed",
            seccomp_installed,
        ),
        t(
            "config-linux.md/seccomp: SCMP_ACT_ERRNO returns errnoRet",
            seccomp_errno_ret,
        ),
        t(
            "config-linux.md/seccomp: SCMP_ACT_ERRNO without errnoRet returns EPERM",
            seccomp_default_errno,
        ),
        t(
            "config-linux.md/seccomp: args conditions select the calls",
            seccomp_args,
        ),
        t(
            "config-linux.md/seccomp: SCMP_ACT_KILL_PROCESS kills the process",
            seccomp_kill_process,
        ),
        t(
            "config-linux.md/seccomp: applied with noNewPrivileges false",
            seccomp_without_nnp,
        ),
        t(
            "config-linux.md/seccomp: docker's default profile runs a container",
            seccomp_docker_profile,
        ),
        t(
            "config-linux.md/seccomp: an unknown action MUST be an error",
            seccomp_unknown_action,
        ),
        t("config-linux.md/seccomp: errnoRet on an action without errno MUST be an error", seccomp_errno_on_kill),
        t("config-linux.md/seccomp: names MUST contain at least one entry", seccomp_empty_names),
        t("config-linux.md/seccomp: listenerMetadata without listenerPath MUST be an error", seccomp_metadata_without_path),
        t("config-linux.md/seccomp: SCMP_ACT_NOTIFY sends the process state and seccompFd to listenerPath", seccomp_notify),
        t(
            "config-linux.md/rootfs-mount-propagation: private",
            propagation_private,
        ),
        t(
            "config-linux.md/rootfs-mount-propagation: slave",
            propagation_slave,
        ),
        t(
            "config-linux.md/rootfs-mount-propagation: shared",
            propagation_shared,
        ),
        t(
            "config-linux.md/rootfs-mount-propagation: unbindable",
            propagation_unbindable,
        ),
        t(
            "config-linux.md/masked-paths: MUST mask paths so they cannot be read",
            masked_paths,
        ),
        t(
            "config-linux.md/readonly-paths: MUST make paths read-only",
            readonly_paths,
        ),
        t(
            "config-linux.md/readonly-paths: /proc/sys read-only in the default set",
            readonly_proc_sys,
        ),
        t(
            "config-linux.md/mount-label: mountLabel labels the mounts",
            mount_label,
        ),
        t(
            "config-linux.md/personality: LINUX32 domain is applied",
            personality_linux32,
        ),
        t(
            "config-linux.md/personality: an unknown domain MUST be an error",
            personality_unknown,
        ),
        t(
            "config-linux.md/intelrdt: without a mounted resctrl MUST be an error",
            intel_rdt,
        ),
    ]
}

/// The container's namespace link of one type differs from the runner's.
fn new_namespace(sb: &mut Sandbox, config_type: &str, file: &str) -> TestResult {
    if !sb.suite.has_namespace(file) {
        return skip(format!(
            "kernel has no {file} namespaces (/proc/self/ns/{file})"
        ));
    }
    set_namespace(&mut sb.config, json!({"type": config_type}));
    let report = sb.run_checker(&["ns", "pid"])?;
    let seen = report.get(&format!("ns.{file}"))?;
    let host = sb.suite.host_ns.get(file).cloned().unwrap_or_default();
    check!(
        seen != host,
        "the container's {file} namespace is the runtime's ({seen})"
    );
    Ok(())
}

// "pid processes inside the container will only be able to see other processes inside the
// same container or inside the same pid namespace."
fn ns_pid(sb: &mut Sandbox) -> TestResult {
    new_namespace(sb, "pid", "pid")?;
    let report = sb.run_checker(&["pid"])?;
    check_eq!(
        report.get("pid")?,
        "1",
        "the container process's pid in its own namespace"
    );
    Ok(())
}

fn ns_network(sb: &mut Sandbox) -> TestResult {
    new_namespace(sb, "network", "net")
}

fn ns_mount(sb: &mut Sandbox) -> TestResult {
    new_namespace(sb, "mount", "mnt")
}

fn ns_ipc(sb: &mut Sandbox) -> TestResult {
    new_namespace(sb, "ipc", "ipc")
}

fn ns_uts(sb: &mut Sandbox) -> TestResult {
    new_namespace(sb, "uts", "uts")
}

// "cgroup the container will have an isolated view of the cgroup hierarchy."
fn ns_cgroup(sb: &mut Sandbox) -> TestResult {
    new_namespace(sb, "cgroup", "cgroup")?;
    let report = sb.run_checker(&["cgroup"])?;
    for line in report.all("cgroup") {
        check!(
            line.ends_with(":/"),
            "in a new cgroup namespace the container's cgroup is its root, got {line}"
        );
    }
    Ok(())
}

fn user_ns_config(sb: &mut Sandbox) {
    set_namespace(&mut sb.config, json!({"type": "user"}));
    sb.config["linux"]["uidMappings"] =
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    sb.config["linux"]["gidMappings"] =
        json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
}

fn ns_user(sb: &mut Sandbox) -> TestResult {
    if !sb.suite.has_namespace("user") {
        return skip("kernel has no user namespaces");
    }
    user_ns_config(sb);
    let report = sb.run_checker(&["ns", "ids"])?;
    let host = sb.suite.host_ns.get("user").cloned().unwrap_or_default();
    check!(
        report.get("ns.user")? != host,
        "the container's user namespace is the runtime's"
    );
    check_eq!(report.get("uid")?, "0 0 0", "uid inside the user namespace");
    Ok(())
}

fn ns_time(sb: &mut Sandbox) -> TestResult {
    new_namespace(sb, "time", "time")
}

// "If a namespace type is not specified in the namespaces array, the container MUST inherit the
// runtime namespace of that type."
fn ns_inherited(sb: &mut Sandbox) -> TestResult {
    remove_namespace(&mut sb.config, "network");
    remove_namespace(&mut sb.config, "ipc");
    let report = sb.run_checker(&["ns"])?;
    for file in ["net", "ipc"] {
        let host = sb.suite.host_ns.get(file).cloned().unwrap_or_default();
        check_eq!(
            report.get(&format!("ns.{file}"))?,
            host.as_str(),
            format!("{file} namespace (the runtime's)")
        );
    }
    Ok(())
}

/// A sleeping process in new net, uts and ipc namespaces, killed with the sandbox.
fn namespace_holder(sb: &mut Sandbox) -> TestResult<u32> {
    let mut command = Command::new("/bin/sleep");
    command.arg("60");
    // SAFETY: unshare is async-signal-safe and touches only the child between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    sb.spawn_helper(command)
}

// "path (string, OPTIONAL) namespace file. ... The runtime MUST place the container process in
// the namespace associated with that path."
fn ns_join_path(sb: &mut Sandbox) -> TestResult {
    let holder = namespace_holder(sb)?;
    let want = read_namespaces(&holder.to_string());
    for (kind, file) in [("network", "net"), ("uts", "uts"), ("ipc", "ipc")] {
        set_namespace(
            &mut sb.config,
            json!({"type": kind, "path": format!("/proc/{holder}/ns/{file}")}),
        );
    }
    sb.config.as_object_mut().map(|m| m.remove("hostname"));
    let report = sb.run_checker(&["ns"])?;
    for file in ["net", "uts", "ipc"] {
        let expected = want.get(file).cloned().unwrap_or_default();
        check_eq!(
            report.get(&format!("ns.{file}"))?,
            expected.as_str(),
            format!("{file} namespace joined by path")
        );
    }
    Ok(())
}

/// Another container of this runtime holds a PID namespace; a second one joins it by path.
fn ns_join_pid(sb: &mut Sandbox) -> TestResult {
    sb.checker_args(&["wait-signal:20000"]);
    let holder = sb.new_id();
    sb.create_ok(&holder)?;
    sb.op_ok("start", &holder)?;
    sb.wait_output(&holder, "ready")?;
    let pid = sb.state(&holder)?["pid"].as_i64().unwrap_or(0);
    let want = read_namespaces(&pid.to_string())
        .remove("pid")
        .unwrap_or_default();
    set_namespace(
        &mut sb.config,
        json!({"type": "pid", "path": format!("/proc/{pid}/ns/pid")}),
    );
    let report = sb.run_checker(&["ns", "pid"])?;
    check_eq!(
        report.get("ns.pid")?,
        want.as_str(),
        "pid namespace joined by path"
    );
    check!(
        report.get("pid")? != "1",
        "the joining process is pid 1: it did not join the holder's namespace"
    );
    Ok(())
}

// "The runtime MUST generate an error if path is not associated with a namespace of type type."
fn ns_path_wrong_type(sb: &mut Sandbox) -> TestResult {
    let holder = namespace_holder(sb)?;
    set_namespace(
        &mut sb.config,
        json!({"type": "network", "path": format!("/proc/{holder}/ns/uts")}),
    );
    sb.expect_create_error()
}

fn ns_path_not_namespace(sb: &mut Sandbox) -> TestResult {
    let file = sb.dir.join("not-a-namespace");
    fs::write(&file, "x").ctx(|| "write not-a-namespace".into())?;
    set_namespace(
        &mut sb.config,
        json!({"type": "network", "path": file.display().to_string()}),
    );
    sb.expect_create_error()
}

// "If a namespaces field contains duplicated namespaces with same type, the runtime MUST
// generate an error."
fn ns_duplicate(sb: &mut Sandbox) -> TestResult {
    if let Some(list) = sb.config["linux"]["namespaces"].as_array_mut() {
        list.push(json!({"type": "network"}));
    }
    sb.expect_create_error()
}

// "type (string, REQUIRED) - namespace type. The following namespace types SHOULD be supported".
// Runtimes "MUST generate an error when invalid or unsupported values are encountered."
fn ns_unknown_type(sb: &mut Sandbox) -> TestResult {
    if let Some(list) = sb.config["linux"]["namespaces"].as_array_mut() {
        list.push(json!({"type": "conformance"}));
    }
    sb.expect_create_error()
}

// "uidMappings (array of objects, OPTIONAL) describes the user namespace uid mappings from the
// host to the container. gidMappings ..."
fn user_mappings(sb: &mut Sandbox) -> TestResult {
    if !sb.suite.has_namespace("user") {
        return skip("kernel has no user namespaces");
    }
    user_ns_config(sb);
    let report = sb.run_checker(&["maps"])?;
    check_eq!(report.all("uid_map"), vec!["0 100000 65536"], "uid_map");
    check_eq!(report.all("gid_map"), vec!["0 200000 65536"], "gid_map");
    Ok(())
}

// "The runtime SHOULD NOT modify the ownership of referenced filesystems to realize the mapping."
fn user_mappings_keep_ownership(sb: &mut Sandbox) -> TestResult {
    if !sb.suite.has_namespace("user") {
        return skip("kernel has no user namespaces");
    }
    user_ns_config(sb);
    sb.run_checker(&["ids"])?;
    for path in [
        sb.rootfs(),
        sb.rootfs().join("etc/passwd"),
        sb.rootfs().join("tmp"),
    ] {
        let meta = fs::metadata(&path).ctx(|| format!("stat {}", path.display()))?;
        check_eq!(
            (meta.uid(), meta.gid()),
            (0, 0),
            format!("owner of {}", path.display())
        );
    }
    Ok(())
}

// "timeOffsets (object, OPTIONAL) sets the offset for Time Namespace."
fn time_offsets(sb: &mut Sandbox) -> TestResult {
    if !sb.suite.has_namespace("time") {
        return skip("kernel has no time namespaces");
    }
    set_namespace(&mut sb.config, json!({"type": "time"}));
    sb.config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": 86400, "nanosecs": 0},
        "boottime": {"secs": 172800, "nanosecs": 0}
    });
    let report = sb.run_checker(&["clock"])?;
    let host_mono = clock_secs(libc::CLOCK_MONOTONIC);
    let host_boot = clock_secs(libc::CLOCK_BOOTTIME);
    let mono: i64 = report.get("clock.monotonic")?.parse().unwrap_or(0);
    let boot: i64 = report.get("clock.boottime")?.parse().unwrap_or(0);
    check!(
        (mono - host_mono - 86400).abs() < 30,
        "monotonic clock {mono}, host {host_mono}: offset is not 86400 s"
    );
    check!(
        (boot - host_boot - 172800).abs() < 30,
        "boottime clock {boot}, host {host_boot}: offset is not 172800 s"
    );
    Ok(())
}

fn clock_secs(clock: libc::clockid_t) -> i64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut now) };
    now.tv_sec
}

// "devices (array of objects, OPTIONAL) lists devices that MUST be available in the container."
fn device_char(sb: &mut Sandbox) -> TestResult {
    sb.config["linux"]["devices"] = json!([{
        "path": "/dev/conformance-null", "type": "c", "major": 1, "minor": 3,
        "fileMode": 0o640, "uid": 1000, "gid": 1001
    }]);
    let report = sb.run_checker(&["stat:/dev/conformance-null"])?;
    check_eq!(
        report.get("stat:/dev/conformance-null")?,
        "type=c mode=0640 uid=1000 gid=1001 rdev=1:3",
        "/dev/conformance-null"
    );
    Ok(())
}

fn device_block(sb: &mut Sandbox) -> TestResult {
    sb.config["linux"]["devices"] = json!([{
        "path": "/dev/conformance-loop", "type": "b", "major": 7, "minor": 0, "fileMode": 0o600
    }]);
    let report = sb.run_checker(&["stat:/dev/conformance-loop"])?;
    check_eq!(
        report.get("stat:/dev/conformance-loop")?,
        "type=b mode=0600 uid=0 gid=0 rdev=7:0",
        "/dev/conformance-loop"
    );
    Ok(())
}

// "The path MAY be anywhere in the container filesystem, notably outside of /dev."
fn device_outside_dev(sb: &mut Sandbox) -> TestResult {
    sb.config["linux"]["devices"] =
        json!([{"path": "/mnt/conformance-zero", "type": "c", "major": 1, "minor": 5}]);
    let report = sb.run_checker(&["stat:/mnt/conformance-zero"])?;
    let seen = report.get("stat:/mnt/conformance-zero")?;
    check!(
        seen.starts_with("type=c") && seen.ends_with("rdev=1:5"),
        "/mnt/conformance-zero: {seen}"
    );
    Ok(())
}

// "If a file already exists at path that does not match the requested device, the runtime MUST
// generate an error."
fn device_mismatch(sb: &mut Sandbox) -> TestResult {
    fs::write(sb.rootfs().join("mnt/not-a-device"), "plain file\n")
        .ctx(|| "write mnt/not-a-device".into())?;
    sb.config["linux"]["devices"] =
        json!([{"path": "/mnt/not-a-device", "type": "c", "major": 1, "minor": 3}]);
    sb.expect_create_error()
}

fn device_fifo(sb: &mut Sandbox) -> TestResult {
    sb.config["linux"]["devices"] =
        json!([{"path": "/dev/conformance-fifo", "type": "p", "fileMode": 0o600}]);
    let report = sb.run_checker(&["stat:/dev/conformance-fifo"])?;
    let seen = report.get("stat:/dev/conformance-fifo")?;
    check!(
        seen.starts_with("type=p mode=0600"),
        "/dev/conformance-fifo: expected a FIFO with mode 0600, got {seen}"
    );
    Ok(())
}

// "In addition to any devices configured with this setting, the runtime MUST also supply:
// /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom, /dev/tty, /dev/ptmx."
fn default_devices(sb: &mut Sandbox) -> TestResult {
    let devices = [
        ("/dev/null", "1:3"),
        ("/dev/zero", "1:5"),
        ("/dev/full", "1:7"),
        ("/dev/random", "1:8"),
        ("/dev/urandom", "1:9"),
        ("/dev/tty", "5:0"),
    ];
    let mut probes: Vec<String> = devices.iter().map(|(p, _)| format!("stat:{p}")).collect();
    probes.push("stat:/dev/ptmx".into());
    let refs: Vec<&str> = probes.iter().map(String::as_str).collect();
    let report = sb.run_checker(&refs)?;
    for (path, rdev) in devices {
        let seen = report.get(&format!("stat:{path}"))?;
        check!(
            seen.starts_with("type=c") && seen.ends_with(&format!("rdev={rdev}")),
            "{path}: expected character device {rdev}, got {seen}"
        );
    }
    let ptmx = report.get("stat:/dev/ptmx")?;
    check!(
        ptmx.starts_with("type=c") || ptmx.starts_with("type=l"),
        "/dev/ptmx: expected a device or a symlink, got {ptmx}"
    );
    Ok(())
}

// "sysctl (object, OPTIONAL) allows kernel parameters to be modified at runtime for the container."
fn sysctl_applied(sb: &mut Sandbox) -> TestResult {
    sb.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
    let report = sb.run_checker(&[
        "read:/proc/sys/net/ipv4/ip_forward",
        "read:/proc/sys/kernel/shmmni",
    ])?;
    check_eq!(
        report.get("read:/proc/sys/net/ipv4/ip_forward")?,
        "1",
        "net.ipv4.ip_forward"
    );
    check_eq!(
        report.get("read:/proc/sys/kernel/shmmni")?,
        "1234",
        "kernel.shmmni"
    );
    Ok(())
}

fn sysctl_unknown(sb: &mut Sandbox) -> TestResult {
    sb.config["linux"]["sysctl"] = json!({"net.conformance.no_such_key": "1"});
    sb.expect_create_error()
}

fn seccomp_available() -> bool {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .contains("Seccomp:")
}

/// A filter that fails getpgrp(2): a call no runtime needs between installing the filter and
/// exec (runc, for one, calls getppid there, so a getppid rule would break the runtime itself).
fn seccomp_rule(errno_ret: Option<u32>) -> Value {
    let mut rule = json!({"names": ["getpgrp"], "action": "SCMP_ACT_ERRNO"});
    if let Some(errno) = errno_ret {
        rule["errnoRet"] = json!(errno);
    }
    json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [rule]})
}

// "seccomp (object, OPTIONAL) ... defaultAction (string, REQUIRED) ... syscalls (array of
// objects, OPTIONAL) match a syscall in seccomp."
fn seccomp_installed(sb: &mut Sandbox) -> TestResult {
    if !seccomp_available() {
        return skip("kernel has no seccomp (CONFIG_SECCOMP)");
    }
    sb.config["linux"]["seccomp"] = seccomp_rule(None);
    let report = sb.run_checker(&["status"])?;
    check_eq!(report.get("Seccomp")?, "2", "seccomp mode (2 is filter)");
    Ok(())
}

// "errnoRet (uint, OPTIONAL) is the errno return code to use. ... When the action doesn't
// support an errno, the runtime MUST print and error and fail."
fn seccomp_errno_ret(sb: &mut Sandbox) -> TestResult {
    if !seccomp_available() {
        return skip("kernel has no seccomp (CONFIG_SECCOMP)");
    }
    sb.config["linux"]["seccomp"] = seccomp_rule(Some(libc::EDOM as u32));
    let report = sb.run_checker(&["syscall:getpgrp", "syscall:getpid"])?;
    check_eq!(
        report.get("syscall:getpgrp")?,
        "error=EDOM",
        "getpgrp under SCMP_ACT_ERRNO with errnoRet EDOM"
    );
    check_eq!(
        report.get("syscall:getpid")?,
        "ok",
        "getpid (not in the filter)"
    );
    Ok(())
}

// "If not specified, the default errno is EPERM" (errnoRet).
fn seccomp_default_errno(sb: &mut Sandbox) -> TestResult {
    if !seccomp_available() {
        return skip("kernel has no seccomp (CONFIG_SECCOMP)");
    }
    sb.config["linux"]["seccomp"] = seccomp_rule(None);
    let report = sb.run_checker(&["syscall:getpgrp"])?;
    check_eq!(
        report.get("syscall:getpgrp")?,
        "error=EPERM",
        "getpgrp under SCMP_ACT_ERRNO"
    );
    Ok(())
}

// "args (array of objects, OPTIONAL) is the specific syscall in seccomp. index, value, op."
fn seccomp_args(sb: &mut Sandbox) -> TestResult {
    if !seccomp_available() {
        return skip("kernel has no seccomp (CONFIG_SECCOMP)");
    }
    sb.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{
            "names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EDOM,
            "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"}]
        }]
    });
    let report = sb.run_checker(&["syscall:personality=0xffffffff", "personality"])?;
    check_eq!(
        report.get("syscall:personality=0xffffffff")?,
        "error=EDOM",
        "personality(0xffffffff)"
    );
    Ok(())
}

// "SCMP_ACT_KILL_PROCESS" is one of the valid actions: the whole process dies on the call.
fn seccomp_kill_process(sb: &mut Sandbox) -> TestResult {
    if !seccomp_available() {
        return skip("kernel has no seccomp (CONFIG_SECCOMP)");
    }
    sb.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpgrp"], "action": "SCMP_ACT_KILL_PROCESS"}]
    });
    let report = sb.run_checker(&["print:before", "syscall:getpgrp", "print:after"])?;
    report.get("before")?;
    check!(
        report.get("after").is_err(),
        "the process survived getpgrp under SCMP_ACT_KILL_PROCESS"
    );
    Ok(())
}

fn seccomp_without_nnp(sb: &mut Sandbox) -> TestResult {
    if !seccomp_available() {
        return skip("kernel has no seccomp (CONFIG_SECCOMP)");
    }
    sb.config["process"]["noNewPrivileges"] = json!(false);
    sb.config["linux"]["seccomp"] = seccomp_rule(None);
    let report = sb.run_checker(&["syscall:getpgrp", "status"])?;
    check_eq!(
        report.get("syscall:getpgrp")?,
        "error=EPERM",
        "getpgrp under SCMP_ACT_ERRNO"
    );
    check_eq!(report.get("NoNewPrivs")?, "0", "NoNewPrivs");
    Ok(())
}

/// `shared/seccomp/NAME` beside the repository (or under $CONFORMANCE_SHARED).
fn shared_file(name: &str) -> Option<PathBuf> {
    let mut roots: Vec<PathBuf> = std::env::var_os("CONFORMANCE_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    roots.push(PathBuf::from("../shared"));
    roots
        .into_iter()
        .map(|r| r.join(name))
        .find(|p| p.is_file())
}

fn seccomp_docker_profile(sb: &mut Sandbox) -> TestResult {
    if !seccomp_available() {
        return skip("kernel has no seccomp (CONFIG_SECCOMP)");
    }
    let Some(path) = shared_file("seccomp/docker-default.json") else {
        return skip("shared/seccomp/docker-default.json not found (set CONFORMANCE_SHARED)");
    };
    let text = fs::read_to_string(&path).ctx(|| format!("read {}", path.display()))?;
    let profile: Value = serde_json::from_str(&text).ctx(|| format!("parse {}", path.display()))?;
    // The file is either a bare linux.seccomp object or a whole config carrying one.
    let seccomp = if profile["linux"]["seccomp"].is_object() {
        profile["linux"]["seccomp"].clone()
    } else {
        profile
    };
    sb.config["linux"]["seccomp"] = seccomp;
    let report = sb.run_checker(&["status", "print:ran"])?;
    check_eq!(report.get("Seccomp")?, "2", "seccomp mode");
    report.get("ran")?;
    Ok(())
}

fn seccomp_unknown_action(sb: &mut Sandbox) -> TestResult {
    sb.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpgrp"], "action": "SCMP_ACT_CONFORMANCE"}]
    });
    sb.expect_create_error()
}

// errnoRet: "When the action doesn't support an errno, the runtime MUST print and error and fail."
fn seccomp_errno_on_kill(sb: &mut Sandbox) -> TestResult {
    sb.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpgrp"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]
    });
    sb.expect_create_error()
}

// "names (array of strings, REQUIRED) - the names of the syscalls. names MUST contain at least
// one entry."
fn seccomp_empty_names(sb: &mut Sandbox) -> TestResult {
    sb.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]
    });
    sb.expect_create_error()
}

// "listenerMetadata (string, OPTIONAL) ... This field MUST NOT be set if listenerPath is not set."
fn seccomp_metadata_without_path(sb: &mut Sandbox) -> TestResult {
    sb.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerMetadata": "conformance",
        "syscalls": [{"names": ["getpgrp"], "action": "SCMP_ACT_ERRNO"}]
    });
    sb.expect_create_error()
}

// "listenerPath ... The runtime MUST send exactly one container process state per connection
// ... seccompFd (string, REQUIRED) is the seccomp file descriptor returned by the seccomp
// syscall." The process state: ociVersion, fds, pid, metadata, state.
fn seccomp_notify(sb: &mut Sandbox) -> TestResult {
    if !seccomp_available() {
        return skip("kernel has no seccomp (CONFIG_SECCOMP)");
    }
    let socket = sb.dir.join("seccomp-agent.sock");
    let agent = crate::console::SeccompAgent::listen(&socket, std::time::Duration::from_secs(15))
        .ctx(|| "listen on the seccomp agent socket".into())?;
    sb.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket.display().to_string(),
        "listenerMetadata": "conformance-metadata",
        "syscalls": [{"names": ["getpgrp"], "action": "SCMP_ACT_NOTIFY"}]
    });
    // The program never calls getpgrp, so no notification needs an answer.
    sb.checker_args(&["print:ran"]);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    let (text, fds) = agent
        .received()
        .ctx(|| "receive from the runtime on listenerPath".into())?;
    let state: Value =
        serde_json::from_str(&text).ctx(|| format!("the process state is not JSON ({text:?})"))?;
    check!(state["ociVersion"].is_string(), "no ociVersion in {text}");
    check_eq!(state["fds"], json!(["seccompFd"]), "fds");
    check_eq!(fds, 1, "descriptors sent with SCM_RIGHTS");
    check_eq!(
        state["metadata"].as_str(),
        Some("conformance-metadata"),
        "metadata"
    );
    check_eq!(state["state"]["id"].as_str(), Some(id.as_str()), "state.id");
    check!(
        state["pid"].as_i64().is_some_and(|p| p > 0),
        "no pid in {text}"
    );
    sb.op_ok("start", &id)?;
    sb.wait_status(&id, "stopped")?;
    check!(
        sb.container_output(&id).contains("ran"),
        "the program did not run"
    );
    Ok(())
}

/// The optional fields of the container's root mount. The bundle is first made a shared mount
/// of its own, so that "slave" and "shared" have a peer group to show whatever the host's
/// propagation is.
fn root_propagation(sb: &mut Sandbox, mode: &str) -> TestResult<String> {
    make_shared_mount(&sb.bundle)?;
    sb.config["linux"]["rootfsPropagation"] = json!(mode);
    let report = sb.run_checker(&["mounts"])?;
    let root = report
        .all("mount")
        .into_iter()
        .rev()
        .find(|line| line.split(' ').nth(4) == Some("/"))
        .map(String::from);
    match root {
        Some(line) => {
            let left = line.split(" - ").next().unwrap_or_default();
            Ok(left.split(' ').skip(6).collect::<Vec<_>>().join(" "))
        }
        None => fail!("no mount at / in the container's mountinfo"),
    }
}

fn make_shared_mount(dir: &std::path::Path) -> TestResult {
    let path = std::ffi::CString::new(dir.display().to_string()).ctx(|| "bundle path".into())?;
    // SAFETY: valid C strings; a bind mount of the sandbox's own bundle onto itself (removed
    // by the sandbox's cleanup), then a propagation change of that mount only.
    let rc = unsafe {
        let bound = libc::mount(
            path.as_ptr(),
            path.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        );
        if bound == 0 {
            libc::mount(
                std::ptr::null(),
                path.as_ptr(),
                std::ptr::null(),
                libc::MS_SHARED,
                std::ptr::null(),
            )
        } else {
            bound
        }
    };
    check!(
        rc == 0,
        "make {} a shared mount: {}",
        dir.display(),
        std::io::Error::last_os_error()
    );
    Ok(())
}

// "rootfsPropagation (string, OPTIONAL) sets the rootfs's mount propagation. Its value is
// either shared, slave, private or unbindable."
fn propagation_private(sb: &mut Sandbox) -> TestResult {
    let optional = root_propagation(sb, "private")?;
    check!(
        !optional.contains("shared:") && !optional.contains("master:"),
        "/ is not private: {optional:?}"
    );
    Ok(())
}

fn propagation_slave(sb: &mut Sandbox) -> TestResult {
    let optional = root_propagation(sb, "slave")?;
    check!(
        optional.contains("master:") && !optional.contains("shared:"),
        "/ is not a slave mount: {optional:?}"
    );
    Ok(())
}

fn propagation_shared(sb: &mut Sandbox) -> TestResult {
    let optional = root_propagation(sb, "shared")?;
    check!(
        optional.contains("shared:"),
        "/ is not shared: {optional:?}"
    );
    Ok(())
}

fn propagation_unbindable(sb: &mut Sandbox) -> TestResult {
    let optional = root_propagation(sb, "unbindable")?;
    check!(
        optional.contains("unbindable"),
        "/ is not unbindable: {optional:?}"
    );
    Ok(())
}

// "maskedPaths (array of strings, OPTIONAL) will mask over the provided paths inside the
// container so that they cannot be read."
fn masked_paths(sb: &mut Sandbox) -> TestResult {
    let root = sb.rootfs();
    fs::create_dir_all(root.join("masked-dir")).ctx(|| "create masked-dir".into())?;
    fs::write(root.join("masked-dir/secret"), "secret\n")
        .ctx(|| "write masked-dir/secret".into())?;
    fs::write(root.join("masked-file"), "secret\n").ctx(|| "write masked-file".into())?;
    sb.config["linux"]["maskedPaths"] = json!(["/masked-dir", "/masked-file", "/proc/kcore"]);
    let report = sb.run_checker(&["ls:/masked-dir", "read:/masked-file", "readlen:/proc/kcore"])?;
    check_eq!(
        report.get("ls:/masked-dir")?,
        "",
        "entries of the masked directory"
    );
    let file = report.get("read:/masked-file")?;
    check!(
        file.is_empty() || file.starts_with("error="),
        "the masked file reads {file:?}"
    );
    let kcore = report.get("readlen:/proc/kcore")?;
    check!(
        kcore == "0" || kcore.starts_with("error="),
        "/proc/kcore reads {kcore} bytes"
    );
    Ok(())
}

// "readonlyPaths (array of strings, OPTIONAL) will set the provided paths as readonly inside
// the container."
fn readonly_paths(sb: &mut Sandbox) -> TestResult {
    fs::create_dir_all(sb.rootfs().join("ro-dir")).ctx(|| "create ro-dir".into())?;
    sb.config["linux"]["readonlyPaths"] = json!(["/ro-dir"]);
    let report = sb.run_checker(&["create:/ro-dir/new", "create:/tmp/new"])?;
    check_eq!(
        report.get("create:/ro-dir/new")?,
        "error=EROFS",
        "creating a file in a read-only path"
    );
    check_eq!(
        report.get("create:/tmp/new")?,
        "ok",
        "creating a file elsewhere"
    );
    Ok(())
}

fn readonly_proc_sys(sb: &mut Sandbox) -> TestResult {
    let report = sb.run_checker(&["write:/proc/sys/kernel/hostname=changed"])?;
    check_eq!(
        report.get("write:/proc/sys/kernel/hostname")?,
        "error=EROFS",
        "writing under /proc/sys"
    );
    Ok(())
}

// "mountLabel (string, OPTIONAL) will set the Selinux context for the mounts in the container."
fn mount_label(_sb: &mut Sandbox) -> TestResult {
    if !std::path::Path::new("/sys/fs/selinux/enforce").exists() {
        return skip("SELinux is not enabled in this kernel");
    }
    skip("SELinux labels are not checked by this suite yet")
}

// "personality ... domain (string, REQUIRED) the execution domain. The valid list of constants
// is shown below. LINUX32 will set the uname system call to show a 32 bit CPU type."
fn personality_linux32(sb: &mut Sandbox) -> TestResult {
    sb.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    let report = sb.run_checker(&["personality"])?;
    check_eq!(
        report.get("personality")?,
        "0x8",
        "personality (PER_LINUX32 is 0x8)"
    );
    Ok(())
}

fn personality_unknown(sb: &mut Sandbox) -> TestResult {
    sb.config["linux"]["personality"] = json!({"domain": "CONFORMANCE"});
    sb.expect_create_error()
}

// "If no mounted resctrl pseudo-filesystem is available in the runtime mount namespace, the
// runtime MUST generate an error."
fn intel_rdt(sb: &mut Sandbox) -> TestResult {
    let mounted = fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .contains(" resctrl ");
    if mounted {
        return skip("resctrl is mounted here: the no-resctrl error cannot be observed");
    }
    sb.config["linux"]["intelRdt"] = json!({"closID": "conformance"});
    sb.expect_create_error()
}
