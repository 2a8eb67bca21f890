//! config.md "POSIX-platform Hooks" and the hook steps of runtime.md's lifecycle.
//!
//! Every hook is `/bin/sh -c SCRIPT NAME`: it appends NAME to an order log, saves the state it
//! read on stdin and its mount namespace. The log directory is bind-mounted at /hooklog so a
//! startContainer hook (which runs inside the container) writes to the same files.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{t, Test};
use crate::harness::{add_mount, read_namespaces, Sandbox};
use crate::outcome::{Context, TestResult};
use crate::{check, check_eq, fail};

pub fn tests() -> Vec<Test> {
    vec![
        t(
            "config.md/hooks: prestart, createRuntime, createContainer run during create, in order",
            create_hooks_order,
        ),
        t(
            "config.md/hooks: startContainer runs at start before the program",
            start_container_before_program,
        ),
        t(
            "config.md/hooks: poststart runs after the program starts, before start returns",
            poststart_after_start,
        ),
        t(
            "config.md/hooks: poststop runs at delete, before delete returns",
            poststop_at_delete,
        ),
        t(
            "config.md/hooks: hooks of one kind MUST be called in the listed order",
            listed_order,
        ),
        t(
            "config.md/hooks: the state of the container MUST be passed on stdin",
            state_on_stdin,
        ),
        t(
            "config.md/hooks: createRuntime runs in the runtime namespace",
            create_runtime_namespace,
        ),
        t(
            "config.md/hooks: createContainer and startContainer run in the container namespace",
            container_hooks_namespace,
        ),
        t(
            "config.md/hooks: args and env are passed to the hook",
            args_and_env,
        ),
        t(
            "config.md/hooks: a failing prestart MUST fail create and stop the container",
            failing_prestart,
        ),
        t(
            "config.md/hooks: a failing createRuntime MUST fail create and stop the container",
            failing_create_runtime,
        ),
        t(
            "config.md/hooks: a failing createContainer MUST fail create and stop the container",
            failing_create_container,
        ),
        t("config.md/hooks: after a failing create hook the lifecycle continues at step 12 (poststop runs)", failing_hook_runs_poststop),
        t(
            "config.md/hooks: a failing startContainer MUST fail start, the program MUST NOT run",
            failing_start_container,
        ),
        t(
            "config.md/hooks: a failing poststart is a warning, the lifecycle continues",
            failing_poststart,
        ),
        t(
            "config.md/hooks: a failing poststop is a warning, delete completes",
            failing_poststop,
        ),
        t(
            "config.md/hooks: a hook running past its timeout is aborted and is an error",
            hook_timeout,
        ),
        t(
            "config.md/hooks: timeout MUST be greater than zero",
            hook_timeout_zero,
        ),
        t("config.md/hooks: path MUST be absolute", hook_relative_path),
    ]
}

struct HookLog {
    host_dir: PathBuf,
}

impl HookLog {
    /// Makes the log directory and bind-mounts it at /hooklog.
    fn new(sb: &mut Sandbox) -> TestResult<HookLog> {
        let host_dir = sb.dir.join("hooklog");
        fs::create_dir_all(&host_dir).ctx(|| "create hooklog".into())?;
        crate::harness::set_mode(&host_dir, 0o777).ctx(|| "chmod hooklog".into())?;
        add_mount(
            &mut sb.config,
            json!({"destination": "/hooklog", "type": "bind", "source": host_dir.display().to_string(), "options": ["rbind"]}),
        );
        Ok(HookLog { host_dir })
    }

    /// A hook recording itself as `name`; `inside` for hooks that run in the container's root.
    fn hook(&self, name: &str, inside: bool, extra: &str) -> Value {
        let dir = if inside {
            "/hooklog".to_string()
        } else {
            self.host_dir.display().to_string()
        };
        let script = format!(
            "echo \"$0\" >> {dir}/order; cat > {dir}/\"$0\".json; \
             readlink /proc/self/ns/mnt > {dir}/\"$0\".mntns; {extra}"
        );
        json!({"path": "/bin/sh", "args": ["sh", "-c", script, name]})
    }

    fn order(&self) -> Vec<String> {
        fs::read_to_string(self.host_dir.join("order"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn file(&self, name: &str) -> String {
        fs::read_to_string(self.host_dir.join(name))
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

/// The program: logs "program" then waits for a signal.
fn logging_program(sb: &mut Sandbox) {
    sb.config["process"]["args"] = json!([
        "/bin/sh",
        "-c",
        "echo program >> /hooklog/order; exec /bin/conformance-checker wait-signal:20000"
    ]);
}

fn all_hooks(sb: &mut Sandbox, log: &HookLog) {
    sb.config["hooks"] = json!({
        "prestart": [log.hook("prestart", false, "")],
        "createRuntime": [log.hook("createRuntime", false, "")],
        "createContainer": [log.hook("createContainer", false, "")],
        "startContainer": [log.hook("startContainer", true, "")],
        "poststart": [log.hook("poststart", false, "")],
        "poststop": [log.hook("poststop", false, "")],
    });
}

fn position(order: &[String], name: &str) -> TestResult<usize> {
    match order.iter().position(|n| n == name) {
        Some(i) => Ok(i),
        None => fail!("the {name} hook never ran (ran: {order:?})"),
    }
}

// runtime.md lifecycle: "3. The prestart hooks MUST be invoked by the runtime ... 4. The
// createRuntime hooks MUST be invoked ... 5. The createContainer hooks MUST be invoked".
fn create_hooks_order(sb: &mut Sandbox) -> TestResult {
    let log = HookLog::new(sb)?;
    all_hooks(sb, &log);
    logging_program(sb);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    check_eq!(
        log.order(),
        vec!["prestart", "createRuntime", "createContainer"],
        "hooks run by create"
    );
    Ok(())
}

// "The startContainer hooks MUST be called before the user-specified process is executed as
// part of the start operation."
fn start_container_before_program(sb: &mut Sandbox) -> TestResult {
    let log = HookLog::new(sb)?;
    all_hooks(sb, &log);
    logging_program(sb);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    sb.op_ok("start", &id)?;
    sb.wait_output(&id, "ready")?;
    let order = log.order();
    check!(
        position(&order, "startContainer")? < position(&order, "program")?,
        "order {order:?}"
    );
    check!(
        position(&order, "createContainer")? < position(&order, "startContainer")?,
        "order {order:?}"
    );
    Ok(())
}

// "The poststart hooks MUST be called after the user-specified process is executed but before
// the start operation returns."
fn poststart_after_start(sb: &mut Sandbox) -> TestResult {
    let log = HookLog::new(sb)?;
    all_hooks(sb, &log);
    logging_program(sb);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    check!(
        !log.order().contains(&"poststart".to_string()),
        "poststart ran during create: {:?}",
        log.order()
    );
    sb.op_ok("start", &id)?;
    let order = log.order();
    check!(
        position(&order, "startContainer")? < position(&order, "poststart")?,
        "order {order:?}"
    );
    Ok(())
}

// "The poststop hooks MUST be called after the container is deleted but before the delete
// operation returns."
fn poststop_at_delete(sb: &mut Sandbox) -> TestResult {
    let log = HookLog::new(sb)?;
    all_hooks(sb, &log);
    sb.checker_args(&["exit:0"]);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    sb.op_ok("start", &id)?;
    sb.wait_status(&id, "stopped")?;
    check!(
        !log.order().contains(&"poststop".to_string()),
        "poststop ran before delete: {:?}",
        log.order()
    );
    sb.op_ok("delete", &id)?;
    check_eq!(
        log.order().last().map(String::as_str),
        Some("poststop"),
        "last hook after delete"
    );
    Ok(())
}

// "Hooks MUST be called in the listed order."
fn listed_order(sb: &mut Sandbox) -> TestResult {
    let log = HookLog::new(sb)?;
    let hooks: Vec<Value> = ["first", "second", "third"]
        .iter()
        .map(|n| log.hook(n, false, ""))
        .collect();
    sb.config["hooks"] = json!({"createRuntime": hooks});
    sb.checker_args(&["exit:0"]);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    check_eq!(
        log.order(),
        vec!["first", "second", "third"],
        "createRuntime hooks order"
    );
    Ok(())
}

/// The pid of a process as its own (innermost) PID namespace sees it (the last NSpid field).
fn pid_in_own_namespace(host_pid: i64) -> TestResult<i64> {
    let status = fs::read_to_string(format!("/proc/{host_pid}/status"))
        .ctx(|| format!("read /proc/{host_pid}/status"))?;
    let nspid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .unwrap_or_default();
    match nspid.split_whitespace().last().and_then(|p| p.parse().ok()) {
        Some(pid) => Ok(pid),
        None => fail!("no NSpid for {host_pid}"),
    }
}

// "The state of the container MUST be passed to hooks over stdin so that they may do work
// appropriate to the current state of the container." runtime.md state pid: "For hooks executed
// in the runtime namespace, it is the pid as seen by the runtime. For hooks executed in the
// container namespace, it is the pid as seen by the container."
fn state_on_stdin(sb: &mut Sandbox) -> TestResult {
    let log = HookLog::new(sb)?;
    all_hooks(sb, &log);
    logging_program(sb);
    sb.config["annotations"] = json!({"org.example.hook": "seen"});
    let id = sb.new_id();
    sb.create_ok(&id)?;
    sb.op_ok("start", &id)?;
    let host_pid = sb.state(&id)?["pid"].as_i64().unwrap_or(0);
    let container_pid = pid_in_own_namespace(host_pid)?;
    for (name, in_container) in [
        ("prestart", false),
        ("createRuntime", false),
        ("createContainer", true),
        ("startContainer", true),
        ("poststart", false),
    ] {
        let pid = json!(if in_container {
            container_pid
        } else {
            host_pid
        });
        let text = log.file(&format!("{name}.json"));
        let state: Value =
            serde_json::from_str(&text).ctx(|| format!("{name} read no JSON state ({text:?})"))?;
        check_eq!(
            state["id"].as_str().unwrap_or_default(),
            id.as_str(),
            format!("{name}: state id")
        );
        check_eq!(state["pid"], pid, format!("{name}: state pid"));
        check_eq!(
            state["bundle"].as_str().unwrap_or_default(),
            sb.bundle.display().to_string().as_str(),
            format!("{name}: state bundle")
        );
        check!(
            state["ociVersion"].is_string(),
            "{name}: state has no ociVersion"
        );
        check_eq!(
            state["annotations"]["org.example.hook"].as_str(),
            Some("seen"),
            format!("{name}: state annotations")
        );
    }
    Ok(())
}

// "The createRuntime hooks' path MUST resolve in the runtime namespace. The createRuntime hooks
// MUST be executed in the runtime namespace."
fn create_runtime_namespace(sb: &mut Sandbox) -> TestResult {
    let log = HookLog::new(sb)?;
    all_hooks(sb, &log);
    logging_program(sb);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    let host = read_namespaces("self").remove("mnt").unwrap_or_default();
    check_eq!(
        log.file("createRuntime.mntns"),
        host,
        "createRuntime's mount namespace (the runtime's)"
    );
    check_eq!(
        log.file("prestart.mntns"),
        host,
        "prestart's mount namespace (the runtime's)"
    );
    Ok(())
}

// "The createContainer hooks MUST be executed in the container namespace." "The startContainer
// hooks' path MUST resolve in the container namespace ... MUST be executed in the container
// namespace."
fn container_hooks_namespace(sb: &mut Sandbox) -> TestResult {
    let log = HookLog::new(sb)?;
    all_hooks(sb, &log);
    logging_program(sb);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    sb.op_ok("start", &id)?;
    sb.wait_output(&id, "ready")?;
    let pid = sb.state(&id)?["pid"].as_i64().unwrap_or(0);
    let container = read_namespaces(&pid.to_string())
        .remove("mnt")
        .unwrap_or_default();
    check!(
        !container.is_empty(),
        "cannot read the container's mount namespace"
    );
    check_eq!(
        log.file("createContainer.mntns"),
        container,
        "createContainer's mount namespace"
    );
    check_eq!(
        log.file("startContainer.mntns"),
        container,
        "startContainer's mount namespace"
    );
    Ok(())
}

// "args (array of strings, OPTIONAL) with the same semantics as IEEE Std 1003.1-2008 execv's
// argv. env (array of strings, OPTIONAL) with the same semantics as IEEE Std 1003.1-2008's environ."
fn args_and_env(sb: &mut Sandbox) -> TestResult {
    let dir = sb.dir.display().to_string();
    sb.config["hooks"] = json!({"createRuntime": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo \"$0 $1 $HOOK_VAR\" > {dir}/hook-out"), "zero", "one"],
        "env": ["HOOK_VAR=from-env", "PATH=/usr/bin:/bin"]
    }]});
    sb.checker_args(&["exit:0"]);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    let out = fs::read_to_string(sb.dir.join("hook-out")).unwrap_or_default();
    check_eq!(out.trim(), "zero one from-env", "hook's $0 $1 $HOOK_VAR");
    Ok(())
}

/// Create must fail, the program must never run, and nothing may be left running.
fn failing_create_hook(sb: &mut Sandbox, kind: &str) -> TestResult {
    sb.config["hooks"] = json!({ kind: [{"path": "/bin/false", "args": ["false"]}] });
    sb.checker_args(&["create:/tmp/program-ran"]);
    let id = sb.new_id();
    let out = sb.create(&id)?;
    check!(!out.ok(), "create succeeded although a {kind} hook failed");
    // The runtime may keep a stopped container to delete; nothing may run.
    let state = sb.runtime(&["state", &id])?;
    if state.ok() {
        let status: Value = serde_json::from_str(&state.stdout).unwrap_or_default();
        check_eq!(
            status["status"].as_str().unwrap_or_default(),
            "stopped",
            "status after the failed hook"
        );
        let _ = sb.runtime(&["delete", &id]);
    }
    let procs = crate::harness::processes_in(&sb.rootfs());
    check!(
        procs.is_empty(),
        "processes still running in the rootfs: {procs:?}"
    );
    check!(
        !sb.rootfs().join("tmp/program-ran").exists(),
        "the program ran"
    );
    Ok(())
}

// "If any prestart hook fails, the runtime MUST generate an error, stop the container, and
// continue the lifecycle at step 12."
fn failing_prestart(sb: &mut Sandbox) -> TestResult {
    failing_create_hook(sb, "prestart")
}

fn failing_create_runtime(sb: &mut Sandbox) -> TestResult {
    failing_create_hook(sb, "createRuntime")
}

fn failing_create_container(sb: &mut Sandbox) -> TestResult {
    failing_create_hook(sb, "createContainer")
}

// runtime.md lifecycle 4: "If any createRuntime hook fails, the runtime MUST generate an error,
// stop the container, and continue the lifecycle at step 12." 12: the container is destroyed;
// 13: "The poststop hooks MUST be invoked by the runtime."
fn failing_hook_runs_poststop(sb: &mut Sandbox) -> TestResult {
    let log = HookLog::new(sb)?;
    sb.config["hooks"] = json!({
        "createRuntime": [{"path": "/bin/false", "args": ["false"]}],
        "poststop": [log.hook("poststop", false, "")],
    });
    sb.checker_args(&["exit:0"]);
    let id = sb.new_id();
    let out = sb.create(&id)?;
    check!(
        !out.ok(),
        "create succeeded although a createRuntime hook failed"
    );
    // A runtime may leave a stopped container for the caller's delete (step 11) first.
    if sb.runtime(&["state", &id])?.ok() {
        let _ = sb.runtime(&["delete", &id]);
    }
    check!(
        log.order().contains(&"poststop".to_string()),
        "no poststop hook ran (hooks run: {:?})",
        log.order()
    );
    Ok(())
}

// "If any startContainer hook fails, the runtime MUST generate an error, stop the container,
// and continue the lifecycle at step 12."
fn failing_start_container(sb: &mut Sandbox) -> TestResult {
    sb.config["hooks"] = json!({"startContainer": [{"path": "/bin/false", "args": ["false"]}]});
    sb.checker_args(&["create:/tmp/program-ran"]);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    let out = sb.runtime(&["start", &id])?;
    check!(
        !out.ok(),
        "start succeeded although a startContainer hook failed"
    );
    std::thread::sleep(Duration::from_millis(200));
    check!(
        !sb.rootfs().join("tmp/program-ran").exists(),
        "the program ran"
    );
    let state = sb.runtime(&["state", &id])?;
    if state.ok() {
        let status: Value = serde_json::from_str(&state.stdout).unwrap_or_default();
        check_eq!(
            status["status"].as_str().unwrap_or_default(),
            "stopped",
            "status after the failed hook"
        );
    }
    Ok(())
}

// "If any poststart hook fails, the runtime MUST log a warning, but the remaining hooks and
// lifecycle continue as if the hook had succeeded."
fn failing_poststart(sb: &mut Sandbox) -> TestResult {
    let log = HookLog::new(sb)?;
    sb.config["hooks"] = json!({"poststart": [{"path": "/bin/false", "args": ["false"]}, log.hook("after", false, "")]});
    logging_program(sb);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    let out = sb.runtime(&["start", &id])?;
    check!(
        out.ok(),
        "start failed on a failing poststart hook: {}",
        out.describe()
    );
    sb.wait_output(&id, "ready")?;
    check!(
        log.order().contains(&"after".to_string()),
        "the poststart hook after the failing one did not run"
    );
    check_eq!(sb.status(&id)?, "running", "status");
    Ok(())
}

// "If any poststop hook fails, the runtime MUST log a warning, but the remaining hooks and
// lifecycle continue as if the hook had succeeded."
fn failing_poststop(sb: &mut Sandbox) -> TestResult {
    let log = HookLog::new(sb)?;
    sb.config["hooks"] = json!({"poststop": [{"path": "/bin/false", "args": ["false"]}, log.hook("after", false, "")]});
    sb.checker_args(&["exit:0"]);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    sb.op_ok("start", &id)?;
    sb.wait_status(&id, "stopped")?;
    let out = sb.runtime(&["delete", &id])?;
    check!(
        out.ok(),
        "delete failed on a failing poststop hook: {}",
        out.describe()
    );
    check!(
        log.order().contains(&"after".to_string()),
        "the poststop hook after the failing one did not run"
    );
    sb.check_no_container(&id)
}

// "timeout (int, OPTIONAL) is the number of seconds before aborting the hook."
fn hook_timeout(sb: &mut Sandbox) -> TestResult {
    sb.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    sb.checker_args(&["exit:0"]);
    let id = sb.new_id();
    let started = Instant::now();
    let out = sb.create(&id)?;
    let took = started.elapsed();
    check!(
        !out.ok(),
        "create succeeded although its hook ran past the timeout"
    );
    check!(
        took < Duration::from_secs(10),
        "create took {took:?}: the hook was not aborted after 1 s"
    );
    Ok(())
}

// "If set, timeout MUST be greater than zero."
fn hook_timeout_zero(sb: &mut Sandbox) -> TestResult {
    sb.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/true", "args": ["true"], "timeout": 0}]});
    sb.expect_create_error()
}

// "path (string, REQUIRED) with similar semantics to IEEE Std 1003.1-2008 execv's path. This
// specification extends the IEEE standard in that path MUST be absolute."
fn hook_relative_path(sb: &mut Sandbox) -> TestResult {
    sb.config["hooks"] = json!({"createRuntime": [{"path": "bin/true", "args": ["true"]}]});
    sb.expect_create_error()
}
