//! runtime.md (state, lifecycle, operations, errors) and runtime-linux.md (file descriptors,
//! dev symbolic links).

use std::fs;

use super::{t, Test};
use crate::harness::{processes_in, Report, Sandbox};
use crate::outcome::TestResult;
use crate::{check, check_eq, fail};

pub fn tests() -> Vec<Test> {
    vec![
        t("runtime.md/state: ociVersion, id, status, pid and bundle are present and right", state_fields),
        t("runtime.md/state: pid is the container process as seen by the host", state_pid_is_container),
        t("runtime.md/state: annotations are the config's annotations", state_annotations),
        t("runtime.md/lifecycle: create MUST NOT run the user-specified program", create_does_not_run_program),
        t("runtime.md/lifecycle: changes to config.json after create MUST NOT affect the container", config_changes_after_create),
        t("runtime.md/lifecycle: status is stopped after the process exits", stopped_after_exit),
        t("runtime.md/operations/create: status MUST be created after create", status_created),
        t("runtime.md/operations/create: MUST error without a container id", create_without_id),
        t("runtime.md/operations/create: MUST error on a bundle that does not exist", create_missing_bundle),
        t("runtime.md/operations/create: MUST error on a duplicate id and not create a container", create_duplicate_id),
        t("runtime.md/operations/create: MUST error on an invalid id", create_invalid_id),
        t("runtime.md/operations/create: a failed create leaves nothing behind", failed_create_leaves_nothing),
        t("runtime.md/operations/state: MUST error without a container id", state_without_id),
        t("runtime.md/operations/state: MUST error for a container that does not exist", state_unknown),
        t("runtime.md/operations/start: MUST run the program and status MUST be running", start_runs_program),
        t("runtime.md/operations/start: MUST error without a container id", start_without_id),
        t("runtime.md/operations/start: MUST error for a container that does not exist", start_unknown),
        t("runtime.md/operations/start: starting a running container MUST error and have no effect", start_twice),
        t("runtime.md/operations/start: starting a stopped container MUST error", start_stopped),
        t("runtime.md/operations/start: MUST error when process was not set", start_without_process),
        t("runtime.md/operations/kill: MUST send the specified signal", kill_sends_signal),
        t("runtime.md/operations/kill: a signal to a created container is delivered", kill_created),
        t("runtime.md/operations/kill: MUST error without a container id", kill_without_id),
        t("runtime.md/operations/kill: MUST error for a container that does not exist", kill_unknown),
        t("runtime.md/operations/kill: a stopped container MUST error and have no effect", kill_stopped),
        t("runtime.md/operations/delete: MUST error without a container id", delete_without_id),
        t("runtime.md/operations/delete: MUST error for a container that does not exist", delete_unknown),
        t("runtime.md/operations/delete: a running container MUST error and have no effect", delete_running),
        t("runtime.md/operations/delete: a created container (not stopped) MUST error", delete_created),
        t("runtime.md/operations/delete: MUST delete the resources created by create", delete_removes_resources),
        t("runtime.md/operations/delete: the id MAY be reused once deleted", delete_then_reuse_id),
        t("runtime-linux.md/file-descriptors: only stdin, stdout and stderr are open", only_stdio_fds),
        t("runtime-linux.md/dev-symlinks: /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr", dev_symlinks),
    ]
}

/// A container that waits for a signal (up to 20 s) so it stays running.
fn hold(sb: &mut Sandbox) {
    sb.checker_args(&["wait-signal:20000"]);
}

fn create_and_start(sb: &mut Sandbox) -> TestResult<String> {
    let id = sb.new_id();
    sb.create_ok(&id)?;
    sb.op_ok("start", &id)?;
    Ok(id)
}

// "The state of a container MUST include ... ociVersion, id, status, pid (REQUIRED when status is
// created or running on Linux), bundle (the absolute path to the container's bundle directory)."
fn state_fields(sb: &mut Sandbox) -> TestResult {
    hold(sb);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    let state = sb.state(&id)?;
    let version = state["ociVersion"].as_str().unwrap_or_default();
    check!(
        version.split('.').count() >= 3
            && version.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "ociVersion {:?} is not a SemVer version",
        state["ociVersion"]
    );
    check_eq!(
        state["id"].as_str().unwrap_or_default(),
        id.as_str(),
        "state id"
    );
    check_eq!(
        state["status"].as_str().unwrap_or_default(),
        "created",
        "state status"
    );
    check!(
        state["pid"].as_i64().is_some_and(|p| p > 0),
        "state pid {:?} is not a positive integer",
        state["pid"]
    );
    let bundle = state["bundle"].as_str().unwrap_or_default();
    check_eq!(
        bundle,
        sb.bundle.display().to_string().as_str(),
        "state bundle"
    );
    Ok(())
}

// "pid (int, REQUIRED when status is created or running on Linux) is the ID of the container
// process, as seen by the host."
fn state_pid_is_container(sb: &mut Sandbox) -> TestResult {
    hold(sb);
    let id = create_and_start(sb)?;
    sb.wait_output(&id, "ready")?;
    let pid = sb.state(&id)?["pid"].as_i64().unwrap_or(0);
    let exe = fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    check!(
        exe.ends_with("conformance-checker"),
        "state pid {pid} runs {exe:?}, not the container's program"
    );
    Ok(())
}

// "annotations (map, OPTIONAL) contains the list of annotations associated with the container."
fn state_annotations(sb: &mut Sandbox) -> TestResult {
    hold(sb);
    sb.config["annotations"] =
        serde_json::json!({"org.example.conformance": "yes", "other": "x=y"});
    let id = sb.new_id();
    sb.create_ok(&id)?;
    let state = sb.state(&id)?;
    check_eq!(
        state["annotations"],
        sb.config["annotations"],
        "state annotations"
    );
    Ok(())
}

// "the user-specified program (from process) MUST NOT be run at this time."
fn create_does_not_run_program(sb: &mut Sandbox) -> TestResult {
    sb.checker_args(&["create:/tmp/program-ran", "print:done"]);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    let marker = sb.rootfs().join("tmp/program-ran");
    check!(
        !marker.exists(),
        "the program ran during create (it made {})",
        marker.display()
    );
    sb.op_ok("start", &id)?;
    sb.wait_status(&id, "stopped")?;
    check!(marker.exists(), "the program did not run after start");
    Ok(())
}

// "Any updates to config.json after this step MUST NOT affect the container."
fn config_changes_after_create(sb: &mut Sandbox) -> TestResult {
    sb.checker_args(&["print:original-args"]);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    sb.checker_args(&["print:changed-args"]);
    sb.write_config()?;
    sb.op_ok("start", &id)?;
    sb.wait_status(&id, "stopped")?;
    let out = sb.container_output(&id);
    check!(
        out.contains("original-args"),
        "the container printed {out:?}, not the args it was created with"
    );
    Ok(())
}

// "When the container process exits ... the status property of this container MUST be stopped."
fn stopped_after_exit(sb: &mut Sandbox) -> TestResult {
    sb.checker_args(&["exit:3"]);
    let id = create_and_start(sb)?;
    sb.wait_status(&id, "stopped")
}

// "Upon successful completion of this operation the status property of this container MUST be created."
fn status_created(sb: &mut Sandbox) -> TestResult {
    hold(sb);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    check_eq!(sb.status(&id)?, "created", "status after create");
    Ok(())
}

/// The command must fail (non-zero exit).
fn expect_error(sb: &mut Sandbox, args: &[&str]) -> TestResult {
    let out = sb.runtime(args)?;
    check!(
        !out.ok(),
        "`{}` succeeded; the spec requires an error",
        args.join(" ")
    );
    Ok(())
}

// "This operation MUST generate an error if it is not provided a path to the bundle and the
// container ID to associate with the container."
fn create_without_id(sb: &mut Sandbox) -> TestResult {
    sb.write_config()?;
    let bundle = sb.bundle.display().to_string();
    expect_error(sb, &["create", "--bundle", &bundle])
}

fn create_missing_bundle(sb: &mut Sandbox) -> TestResult {
    let id = sb.new_id();
    let missing = sb.dir.join("no-such-bundle").display().to_string();
    expect_error(sb, &["create", "--bundle", &missing, &id])?;
    sb.check_no_container(&id)
}

// "If the ID provided is not unique ... the implementation MUST generate an error and a new
// container MUST NOT be created."
fn create_duplicate_id(sb: &mut Sandbox) -> TestResult {
    hold(sb);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    let pid = sb.state(&id)?["pid"].clone();
    let second = sb.runtime(&["create", "--bundle", &sb.bundle.display().to_string(), &id])?;
    check!(!second.ok(), "a second create with id {id} succeeded");
    let state = sb.state(&id)?;
    check_eq!(
        state["pid"],
        pid,
        "pid of the first container after the duplicate create"
    );
    check_eq!(
        state["status"].as_str().unwrap_or_default(),
        "created",
        "status of the first container"
    );
    let procs = processes_in(&sb.rootfs());
    check_eq!(
        procs.len(),
        1,
        "processes in the rootfs (only the first container's)"
    );
    Ok(())
}

// "... or is not valid in any other way, the implementation MUST generate an error."
fn create_invalid_id(sb: &mut Sandbox) -> TestResult {
    sb.write_config()?;
    let bundle = sb.bundle.display().to_string();
    for bad in ["../escape", "a/b", ""] {
        expect_error(sb, &["create", "--bundle", &bundle, bad])?;
    }
    check!(
        !sb.dir.join("escape").exists(),
        "an id with '..' made a directory outside the state root"
    );
    Ok(())
}

// "Unless otherwise stated, generating an error MUST leave the state of the environment as if
// the operation were never attempted."
fn failed_create_leaves_nothing(sb: &mut Sandbox) -> TestResult {
    crate::harness::add_mount(
        &mut sb.config,
        serde_json::json!({"destination": "/missing", "type": "bind",
                           "source": sb.dir.join("no-such-source").display().to_string(),
                           "options": ["bind"]}),
    );
    sb.expect_create_error()?;
    let left: Vec<_> = fs::read_dir(&sb.state_root)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    check!(left.is_empty(), "the state root still holds {left:?}");
    Ok(())
}

// "This operation MUST generate an error if it is not provided the ID of a container."
fn state_without_id(sb: &mut Sandbox) -> TestResult {
    expect_error(sb, &["state"])
}

// "Attempting to query a container that does not exist MUST generate an error."
fn state_unknown(sb: &mut Sandbox) -> TestResult {
    let id = sb.new_id();
    expect_error(sb, &["state", &id])
}

// "This operation MUST run the user-specified program ... Upon successful completion of this
// operation the status property of this container MUST be running."
fn start_runs_program(sb: &mut Sandbox) -> TestResult {
    hold(sb);
    let id = create_and_start(sb)?;
    check_eq!(sb.status(&id)?, "running", "status after start");
    sb.wait_output(&id, "ready")
}

fn start_without_id(sb: &mut Sandbox) -> TestResult {
    expect_error(sb, &["start"])
}

fn start_unknown(sb: &mut Sandbox) -> TestResult {
    let id = sb.new_id();
    expect_error(sb, &["start", &id])
}

// "Attempting to start a container that is not created MUST have no effect on the container
// and MUST generate an error."
fn start_twice(sb: &mut Sandbox) -> TestResult {
    hold(sb);
    let id = create_and_start(sb)?;
    sb.wait_output(&id, "ready")?;
    let pid = sb.state(&id)?["pid"].clone();
    expect_error(sb, &["start", &id])?;
    let state = sb.state(&id)?;
    check_eq!(
        state["status"].as_str().unwrap_or_default(),
        "running",
        "status after the second start"
    );
    check_eq!(state["pid"], pid, "pid after the second start");
    check_eq!(
        sb.container_output(&id).matches("ready").count(),
        1,
        "times the program ran"
    );
    Ok(())
}

fn start_stopped(sb: &mut Sandbox) -> TestResult {
    sb.checker_args(&["print:ran"]);
    let id = create_and_start(sb)?;
    sb.wait_status(&id, "stopped")?;
    expect_error(sb, &["start", &id])?;
    check_eq!(
        sb.status(&id)?,
        "stopped",
        "status after starting a stopped container"
    );
    check_eq!(
        sb.container_output(&id).matches("ran").count(),
        1,
        "times the program ran"
    );
    Ok(())
}

// "This operation MUST generate an error if process was not set." (config.md: process is
// "REQUIRED when start is called"; a runtime may already refuse it at create.)
fn start_without_process(sb: &mut Sandbox) -> TestResult {
    if let Some(map) = sb.config.as_object_mut() {
        map.remove("process");
    }
    let id = sb.new_id();
    let created = sb.create(&id)?;
    if !created.ok() {
        return sb.check_no_container(&id);
    }
    expect_error(sb, &["start", &id])?;
    let status = sb.status(&id)?;
    check!(
        status != "running",
        "the container is running without a process"
    );
    Ok(())
}

// "This operation MUST send the specified signal to the container process."
fn kill_sends_signal(sb: &mut Sandbox) -> TestResult {
    hold(sb);
    let id = create_and_start(sb)?;
    sb.wait_output(&id, "ready")?;
    sb.op_ok_args(&["kill", &id, "SIGUSR1"])?;
    sb.wait_status(&id, "stopped")?;
    let report = Report::parse(&sb.container_output(&id));
    check_eq!(
        report.get("signal")?,
        "10",
        "signal the container received (SIGUSR1 is 10)"
    );
    Ok(())
}

// "Attempting to send a signal to a container that is neither created nor running MUST have no
// effect on the container and MUST generate an error." (so created containers take signals)
fn kill_created(sb: &mut Sandbox) -> TestResult {
    hold(sb);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    sb.op_ok_args(&["kill", &id, "KILL"])?;
    sb.wait_status(&id, "stopped")?;
    check!(
        !sb.container_output(&id).contains("ready"),
        "the program ran although never started"
    );
    Ok(())
}

fn kill_without_id(sb: &mut Sandbox) -> TestResult {
    expect_error(sb, &["kill"])
}

fn kill_unknown(sb: &mut Sandbox) -> TestResult {
    let id = sb.new_id();
    expect_error(sb, &["kill", &id, "KILL"])
}

fn kill_stopped(sb: &mut Sandbox) -> TestResult {
    sb.checker_args(&["exit:0"]);
    let id = create_and_start(sb)?;
    sb.wait_status(&id, "stopped")?;
    expect_error(sb, &["kill", &id, "KILL"])?;
    check_eq!(
        sb.status(&id)?,
        "stopped",
        "status after killing a stopped container"
    );
    sb.op_ok("delete", &id)?;
    Ok(())
}

fn delete_without_id(sb: &mut Sandbox) -> TestResult {
    expect_error(sb, &["delete"])
}

fn delete_unknown(sb: &mut Sandbox) -> TestResult {
    let id = sb.new_id();
    expect_error(sb, &["delete", &id])
}

// "Attempting to delete a container that is not stopped MUST have no effect on the container
// and MUST generate an error."
fn delete_running(sb: &mut Sandbox) -> TestResult {
    hold(sb);
    let id = create_and_start(sb)?;
    sb.wait_output(&id, "ready")?;
    expect_error(sb, &["delete", &id])?;
    check_eq!(sb.status(&id)?, "running", "status after a refused delete");
    Ok(())
}

fn delete_created(sb: &mut Sandbox) -> TestResult {
    hold(sb);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    expect_error(sb, &["delete", &id])?;
    check_eq!(sb.status(&id)?, "created", "status after a refused delete");
    Ok(())
}

// "Deleting a container MUST delete the resources that were created during the create step."
fn delete_removes_resources(sb: &mut Sandbox) -> TestResult {
    sb.checker_args(&["exit:0"]);
    let id = create_and_start(sb)?;
    sb.wait_status(&id, "stopped")?;
    sb.op_ok("delete", &id)?;
    sb.check_no_container(&id)?;
    let left: Vec<_> = fs::read_dir(&sb.state_root)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    check!(left.is_empty(), "the state root still holds {left:?}");
    Ok(())
}

// "Once a container is deleted its ID MAY be used by a subsequent container."
fn delete_then_reuse_id(sb: &mut Sandbox) -> TestResult {
    sb.checker_args(&["print:first"]);
    let id = sb.new_id();
    sb.run_to_completion(&id)?;
    sb.checker_args(&["print:second"]);
    sb.run_to_completion(&id)?;
    check!(
        sb.container_output(&id).contains("second"),
        "the reused id did not run the new program"
    );
    Ok(())
}

// "By default, only the stdin, stdout and stderr file descriptors are kept open for the
// application by the runtime."
fn only_stdio_fds(sb: &mut Sandbox) -> TestResult {
    let report = sb.run_checker(&["fds"])?;
    check_eq!(report.get("fds")?, "0,1,2", "open descriptors");
    Ok(())
}

// "While creating the container (step 2 in the lifecycle), runtimes MUST create the following
// symlinks if the source file exists after processing mounts: /dev/fd -> /proc/self/fd, ..."
fn dev_symlinks(sb: &mut Sandbox) -> TestResult {
    let links = [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ];
    let probes: Vec<String> = links.iter().map(|(p, _)| format!("stat:{p}")).collect();
    let probe_refs: Vec<&str> = probes.iter().map(String::as_str).collect();
    let report = sb.run_checker(&probe_refs)?;
    for (path, target) in links {
        let seen = report.get(&format!("stat:{path}"))?;
        if !seen.starts_with("type=l") || !seen.ends_with(&format!("link={target}")) {
            fail!("{path}: expected a symlink to {target}, got {seen}");
        }
    }
    Ok(())
}
