//! Bad input: a clear one-line error, a non-zero exit, and nothing left behind (checked by looking).

use std::fs;

use serde_json::json;

use crate::harness::Sandbox;

#[test]
fn missing_bundle_fails_cleanly() {
    let sb = Sandbox::new("nobundle");
    let id = sb.new_id("nobundle");
    let missing = sb.dir.join("no-such-bundle");
    sb.cmd()
        .arg("create")
        .arg("--bundle")
        .arg(&missing)
        .arg(&id)
        .output()
        .one_line_error(&["no-such-bundle"]);
    sb.assert_nothing_left(&id);
}

#[test]
fn missing_rootfs_fails_cleanly() {
    let mut sb = Sandbox::new("norootfs");
    sb.config["root"]["path"] = json!("missing-rootfs");
    let id = sb.new_id("norootfs");
    sb.create(&id, &[]).one_line_error(&["missing-rootfs"]);
    sb.assert_nothing_left(&id);
}

#[test]
fn malformed_config_fails_cleanly() {
    let sb = Sandbox::new("malformed");
    let id = sb.new_id("malformed");
    fs::write(
        sb.bundle.join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": {",
    )
    .unwrap();
    sb.cmd()
        .arg("create")
        .arg("--bundle")
        .arg(&sb.bundle)
        .arg(&id)
        .output()
        .one_line_error(&[]);
    sb.assert_nothing_left(&id);
}

#[test]
fn wrong_typed_field_fails_cleanly() {
    let mut sb = Sandbox::new("wrongtype");
    sb.config["process"]["args"] = json!("sh -c true");
    let id = sb.new_id("wrongtype");
    sb.create(&id, &[]).one_line_error(&["args"]);
    sb.assert_nothing_left(&id);
}

#[test]
fn unknown_id_fails_for_state_start_kill_delete() {
    let sb = Sandbox::new("unknownid");
    let id = "no-such-container";
    for cmd in [
        vec!["state", id],
        vec!["start", id],
        vec!["kill", id],
        vec!["kill", id, "KILL"],
        vec!["delete", id],
    ] {
        sb.rt(&cmd).one_line_error(&["not exist"]);
    }
    assert!(!sb.state_root.join(id).exists());
}

#[test]
fn duplicate_id_on_create_fails_and_keeps_the_first() {
    let mut sb = Sandbox::new("dupid");
    let (id, _) = sb.create_script("dup", "sleep 60");
    let pid = sb.pid(&id);
    let second = Sandbox::new("dupid2");
    second.save_config();
    second
        .cmd()
        .arg("--root")
        .arg(&sb.state_root)
        .arg("create")
        .arg("--bundle")
        .arg(&second.bundle)
        .arg(&id)
        .output()
        .one_line_error(&["exist"]);
    // The first container is untouched, the second bundle holds nothing.
    let state = sb.state(&id);
    assert_eq!(state["status"], json!("created"));
    assert_eq!(sb.pid(&id), pid);
    assert_eq!(state["bundle"], json!(sb.bundle.to_str().unwrap()));
    assert!(second.processes_inside().is_empty());
    assert!(crate::harness::mounts_under(&second.dir).is_empty());
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn start_twice_fails() {
    let mut sb = Sandbox::new("starttwice");
    let (id, _) = sb.create_script("twice", "sleep 60");
    sb.rt(&["start", &id]).ok();
    sb.rt(&["start", &id]).one_line_error(&[]);
    assert_eq!(sb.status(&id), "running");
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn kill_of_a_stopped_container_fails() {
    let mut sb = Sandbox::new("killstopped");
    let (id, _) = sb.create_script("killstopped", "exit 0");
    sb.rt(&["start", &id]).ok();
    sb.wait_status(&id, "stopped");
    sb.rt(&["kill", &id, "KILL"])
        .one_line_error(&["not running"]);
    assert_eq!(sb.status(&id), "stopped");
    sb.rt(&["delete", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn invalid_signal_name_fails() {
    let mut sb = Sandbox::new("badsignal");
    let (id, _) = sb.create_script("badsig", "sleep 60");
    sb.rt(&["kill", &id, "SIGNOPE"])
        .one_line_error(&["signal", "NOPE"]);
    assert_eq!(
        sb.status(&id),
        "created",
        "an invalid signal changes nothing"
    );
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn delete_of_a_running_container_needs_force() {
    let mut sb = Sandbox::new("delrunning");
    let (id, _) = sb.create_script("delrun", "sleep 60");
    sb.rt(&["start", &id]).ok();
    sb.wait_status(&id, "running");
    sb.rt(&["delete", &id]).one_line_error(&["running"]);
    assert_eq!(
        sb.status(&id),
        "running",
        "a refused delete changes nothing"
    );
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn failing_program_at_create_leaves_nothing() {
    let mut sb = Sandbox::new("badexec");
    sb.config["process"]["args"] = json!(["/no/such/program"]);
    let id = sb.new_id("badexec");
    let out = sb.run(&id, &[]);
    assert_ne!(
        out.code,
        Some(0),
        "running a missing program must fail: {out:?}"
    );
    sb.assert_nothing_left(&id);
}

/// A program that passes create's checks (a regular file with an exec bit) but that the
/// kernel refuses at start: `run` fails and the container's stderr says why.
#[test]
fn a_program_the_kernel_cannot_execute_says_why() {
    let mut sb = Sandbox::new("enoexec");
    let program = sb.rootfs.join("garbage");
    fs::write(&program, b"\x00\x01 not an executable format\n").expect("write program");
    crate::harness::set_mode(&program, 0o755);
    sb.config["process"]["args"] = json!(["/garbage"]);
    sb.save_config();
    let id = sb.new_id("enoexec");
    let out = sb.run(&id, &[]).failed();
    assert!(out.stderr.contains("/garbage"), "stderr: {}", out.stderr);
    if !crate::harness::runtime_is_runc() {
        assert!(
            out.stderr
                .contains("not an executable format (ENOEXEC), errno 8"),
            "stderr: {}",
            out.stderr
        );
    }
    sb.rt(&["delete", "--force", &id]);
    sb.assert_nothing_left(&id);
}
