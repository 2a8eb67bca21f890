//! Hooks: order, state on stdin, args, env, timeout, failure handling.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{runc_diverges, wait_until, Sandbox, SETTLE_TIMEOUT};

const IN_CONTAINER_LOG: &str = "/hooklog";

/// A hook that records, under `dir`, its stdin in `<name>.json`, its mount namespace in
/// `<name>.mnt`, and its name in `order`.
fn recording_hook(dir: &str, name: &str) -> Value {
    let script = format!(
        "cat > {dir}/{name}.json; readlink /proc/self/ns/mnt > {dir}/{name}.mnt; \
         echo {name} >> {dir}/order"
    );
    json!({"path": "/bin/sh", "args": ["sh", "-c", script, name]})
}

fn hook_mount_ns(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(format!("{name}.mnt")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn read_state(dir: &Path, name: &str) -> Value {
    let text = fs::read_to_string(dir.join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("hook {name} wrote no state: {e}"));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("hook {name} got invalid state JSON ({e}): {text}"))
}

const ALL_HOOKS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// A sandbox with all six hooks recording into a host directory, and a created container.
fn container_with_all_hooks(tag: &str) -> (Sandbox, PathBuf, String) {
    let mut sb = Sandbox::new(tag);
    let log = sb.scratch("hooklog");
    let host = log.to_str().unwrap().to_string();
    sb.add_mount(json!({"destination": IN_CONTAINER_LOG, "type": "bind", "source": log, "options": ["rbind", "rw"]}));
    sb.config["hooks"] = json!({
        "prestart": [recording_hook(&host, "prestart")],
        "createRuntime": [recording_hook(&host, "createRuntime")],
        "createContainer": [recording_hook(&host, "createContainer")],
        // startContainer runs inside the container: its path and files are the container's.
        "startContainer": [recording_hook(IN_CONTAINER_LOG, "startContainer")],
        "poststart": [recording_hook(&host, "poststart")],
        "poststop": [recording_hook(&host, "poststop")],
    });
    let (id, _) = sb.create_script(tag, "echo ready > /tmp/ready; sleep 60");
    (sb, log, id)
}

fn hook_order(log: &Path) -> Vec<String> {
    fs::read_to_string(log.join("order"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn every_hook_runs_in_order_with_the_state() {
    let (sb, log, id) = container_with_all_hooks("hooksorder");
    let pid = sb.pid(&id);
    let container_mnt = fs::read_link(format!("/proc/{pid}/ns/mnt")).expect("container mnt ns");
    let host_mnt = fs::read_link("/proc/self/ns/mnt").expect("own mnt ns");
    let at_create = hook_order(&log);
    assert_eq!(
        at_create[..3],
        ["prestart", "createRuntime", "createContainer"],
        "{at_create:?}"
    );
    assert!(
        !at_create.iter().any(|h| h == "startContainer"),
        "startContainer ran at create"
    );

    sb.rt(&["start", &id]).ok();
    sb.wait_rootfs_file("/tmp/ready");
    wait_until("poststart", SETTLE_TIMEOUT, || {
        hook_order(&log).iter().any(|h| h == "poststart")
    });
    sb.rt(&["delete", "--force", &id]).ok();
    let order = hook_order(&log);
    let position = |name: &str| {
        order
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("hook {name} never ran: {order:?}"))
    };
    assert_eq!(order.len(), 6, "each hook runs once: {order:?}");
    assert!(
        position("createContainer") < position("startContainer"),
        "{order:?}"
    );
    assert_eq!(
        order.last().map(String::as_str),
        Some("poststop"),
        "{order:?}"
    );
    for name in ALL_HOOKS {
        let state = read_state(&log, name);
        assert_eq!(state["id"], json!(id), "{name}: {state}");
        assert_eq!(
            state["bundle"],
            json!(sb.bundle.to_str().unwrap()),
            "{name}: {state}"
        );
        assert!(state["ociVersion"].is_string(), "{name}: {state}");
        match name {
            "poststop" => {}
            // Run inside the container's pid namespace: runc reports the pid seen there (1).
            "createContainer" | "startContainer" => assert!(
                state["pid"] == json!(pid) || state["pid"] == json!(1),
                "{name}: {state}"
            ),
            _ => assert_eq!(state["pid"], json!(pid), "{name}: {state}"),
        }
    }
    for name in ["prestart", "createRuntime", "createContainer"] {
        assert_eq!(
            read_state(&log, name)["status"],
            json!("creating"),
            "{name}"
        );
    }
    assert_eq!(read_state(&log, "poststop")["status"], json!("stopped"));
    // Each hook runs in the namespace the spec names: the runtime's or the container's.
    for name in ["prestart", "createRuntime", "poststart", "poststop"] {
        assert_eq!(
            hook_mount_ns(&log, name),
            host_mnt.display().to_string(),
            "{name}"
        );
    }
    for name in ["createContainer", "startContainer"] {
        assert_eq!(
            hook_mount_ns(&log, name),
            container_mnt.display().to_string(),
            "{name}"
        );
    }
    sb.assert_nothing_left(&id);
}

#[test]
fn poststart_runs_after_start_not_at_create() {
    runc_diverges("runc 1.1.5 runs poststart hooks during create", || {
        let (sb, log, id) = container_with_all_hooks("hookspoststart");
        assert_eq!(
            hook_order(&log),
            ["prestart", "createRuntime", "createContainer"]
        );
        sb.rt(&["start", &id]).ok();
        wait_until("poststart", SETTLE_TIMEOUT, || hook_order(&log).len() >= 5);
        assert_eq!(hook_order(&log), ALL_HOOKS[..5]);
        sb.rt(&["delete", "--force", &id]).ok();
        assert_eq!(hook_order(&log), ALL_HOOKS);
        sb.assert_nothing_left(&id);
    });
}

#[test]
fn hook_args_and_env_are_passed() {
    let mut sb = Sandbox::new("hookenv");
    let log = sb.scratch("hooklog");
    let out = log.join("out");
    sb.config["hooks"] = json!({
        "createRuntime": [{
            "path": "/bin/sh",
            "args": ["custom-argv0", "-c", format!("echo \"$0 $HOOK_VAR $PATH\" > {}", out.display())],
            "env": ["HOOK_VAR=hook-value", "PATH=/hook/path"],
        }],
    });
    let (id, _) = sb.create_script("hookenv", "true");
    assert_eq!(
        fs::read_to_string(&out).unwrap().trim(),
        "custom-argv0 hook-value /hook/path"
    );
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    let mut sb = Sandbox::new("hookfail");
    sb.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]});
    sb.set_script("true");
    let id = sb.new_id("hookfail");
    sb.create(&id, &[]).failed();
    sb.assert_nothing_left(&id);
}

#[test]
fn hook_timeout_fails_create_quickly() {
    let mut sb = Sandbox::new("hooktimeout");
    sb.config["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "exec sleep 20"], "timeout": 1}]});
    sb.set_script("true");
    let id = sb.new_id("hooktimeout");
    let out = sb
        .cmd()
        .arg("create")
        .arg("--bundle")
        .arg(&sb.bundle)
        .arg(&id);
    sb.save_config();
    let out = out.timeout(Duration::from_secs(15)).output().failed();
    assert!(
        out.elapsed < Duration::from_secs(10),
        "the hook timeout was not enforced: {:?}",
        out.elapsed
    );
    sb.assert_nothing_left(&id);
}

#[test]
fn failing_poststop_hook_only_warns() {
    let mut sb = Sandbox::new("poststopfail");
    sb.config["hooks"] = json!({"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 1"]}]});
    let (id, _) = sb.create_script("poststop", "true");
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn failing_prestart_or_create_container_hook_fails_create_and_leaves_nothing() {
    for kind in ["prestart", "createContainer"] {
        let mut sb = Sandbox::new("hookfailcreate");
        sb.config["hooks"] = json!({kind: [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}]});
        sb.set_script("true");
        let id = sb.new_id("hookfailcreate");
        sb.create(&id, &[]).failed();
        sb.assert_nothing_left(&id);
    }
}

/// A failing startContainer hook stops the container before the user program runs.
#[test]
fn failing_start_container_hook_stops_the_container() {
    let mut sb = Sandbox::new("hookfailstart");
    sb.config["hooks"] =
        json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 5"]}]});
    let (id, _) = sb.create_script("hookfailstart", "echo ran > /tmp/ran");
    let _ = sb.rt(&["start", &id]);
    sb.wait_status(&id, "stopped");
    assert!(
        !sb.rootfs.join("tmp/ran").exists(),
        "the program ran after its startContainer hook failed"
    );
    sb.rt(&["delete", &id]).ok();
    sb.assert_nothing_left(&id);
}

/// The spec: "If any startContainer hook fails, the runtime MUST generate an error".
/// berth's start waits until the init exec'd or failed; runc 1.1.5 returns before.
#[test]
fn failing_start_container_hook_fails_start() {
    runc_diverges(
        "runc 1.1.5 start returns 0 before its init runs the startContainer hooks",
        || {
            let mut sb = Sandbox::new("hookfailstart2");
            sb.config["hooks"] =
                json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 5"]}]});
            let (id, _) = sb.create_script("hookfailstart2", "echo ran > /tmp/ran");
            sb.rt(&["start", &id]).failed();
            let _ = sb.rt(&["delete", "--force", &id]);
            sb.assert_nothing_left(&id);
        },
    );
}
