//! Command-line surface: spec, features, global flags, JSON error logs.

use std::fs;

use serde_json::{json, Value};

use crate::harness::{runc_diverges, Sandbox};

fn spec_in(sb: &Sandbox, dir: &std::path::Path, extra: &[&str]) -> Value {
    fs::create_dir_all(dir).unwrap();
    sb.bare_cmd()
        .arg("spec")
        .args(extra)
        .arg("--bundle")
        .arg(dir)
        .output()
        .ok();
    let text = fs::read_to_string(dir.join("config.json")).expect("spec writes config.json");
    serde_json::from_str(&text).expect("spec writes JSON")
}

fn namespace_types(config: &Value) -> Vec<String> {
    config["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces is an array")
        .iter()
        .filter_map(|ns| ns["type"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn spec_writes_a_default_config_like_runc() {
    let sb = Sandbox::new("spec");
    let config = spec_in(&sb, &sb.dir.join("specdir"), &[]);
    assert!(config["ociVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("1.")));
    assert_eq!(config["process"]["args"], json!(["sh"]));
    assert_eq!(config["process"]["terminal"], json!(true));
    assert_eq!(config["process"]["cwd"], json!("/"));
    assert_eq!(config["process"]["user"]["uid"], json!(0));
    assert_eq!(config["root"]["path"], json!("rootfs"));
    assert_eq!(config["root"]["readonly"], json!(true));
    assert_eq!(config["process"]["noNewPrivileges"], json!(true));
    let mut types = namespace_types(&config);
    types.sort();
    for ns in ["ipc", "mount", "network", "pid", "uts"] {
        assert!(
            types.iter().any(|t| t == ns),
            "default spec lacks {ns}: {types:?}"
        );
    }
    assert!(!types.iter().any(|t| t == "user"));
    let destinations: Vec<&str> = config["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["destination"].as_str())
        .collect();
    for dest in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ] {
        assert!(
            destinations.contains(&dest),
            "default spec lacks {dest}: {destinations:?}"
        );
    }
    assert!(config["linux"]["maskedPaths"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    assert!(config["linux"]["readonlyPaths"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    let bounding = config["process"]["capabilities"]["bounding"]
        .as_array()
        .expect("caps");
    assert!(bounding.contains(&json!("CAP_KILL")) && bounding.contains(&json!("CAP_AUDIT_WRITE")));
}

#[test]
fn spec_refuses_to_overwrite() {
    let sb = Sandbox::new("specexists");
    let dir = sb.dir.join("specdir");
    spec_in(&sb, &dir, &[]);
    fs::write(dir.join("config.json"), "keep me").unwrap();
    sb.bare_cmd()
        .arg("spec")
        .arg("--bundle")
        .arg(&dir)
        .output()
        .one_line_error(&["config.json"]);
    assert_eq!(
        fs::read_to_string(dir.join("config.json")).unwrap(),
        "keep me"
    );
}

#[test]
fn spec_rootless_adds_a_user_namespace() {
    let sb = Sandbox::new("specrootless");
    let config = spec_in(&sb, &sb.dir.join("specdir"), &["--rootless"]);
    assert!(namespace_types(&config).iter().any(|t| t == "user"));
    let uid_map = config["linux"]["uidMappings"]
        .as_array()
        .expect("uidMappings");
    assert_eq!(uid_map.len(), 1);
    assert_eq!(uid_map[0]["containerID"], json!(0));
    assert!(config["linux"]["gidMappings"]
        .as_array()
        .is_some_and(|a| a.len() == 1));
}

fn features(sb: &Sandbox) -> Value {
    let out = sb.bare_cmd().arg("features").output().ok();
    serde_json::from_str(&out.stdout).expect("features prints JSON")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {value}"))
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

#[test]
fn features_reports_what_is_supported() {
    let sb = Sandbox::new("features");
    let f = features(&sb);
    assert!(
        f["ociVersionMin"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{f}"
    );
    assert!(
        f["ociVersionMax"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{f}"
    );
    let hooks = strings(&f["hooks"]);
    for hook in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(
            hooks.iter().any(|h| h == hook),
            "features.hooks lacks {hook}"
        );
    }
    let options = strings(&f["mountOptions"]);
    for opt in [
        "bind",
        "rbind",
        "ro",
        "rw",
        "nosuid",
        "nodev",
        "noexec",
        "relatime",
        "private",
        "rprivate",
        "slave",
        "rslave",
        "shared",
        "rshared",
        "unbindable",
        "runbindable",
        "rro",
        "tmpcopyup",
    ] {
        assert!(
            options.iter().any(|o| o == opt),
            "features.mountOptions lacks {opt}"
        );
    }
    let namespaces = strings(&f["linux"]["namespaces"]);
    for ns in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"] {
        assert!(
            namespaces.iter().any(|n| n == ns),
            "features lacks namespace {ns}"
        );
    }
    let caps = strings(&f["linux"]["capabilities"]);
    for cap in [
        "CAP_CHOWN",
        "CAP_SYS_ADMIN",
        "CAP_NET_BIND_SERVICE",
        "CAP_AUDIT_READ",
    ] {
        assert!(caps.iter().any(|c| c == cap), "features lacks {cap}");
    }
    for field in ["cgroup", "seccomp", "apparmor", "selinux"] {
        assert!(
            f["linux"][field].is_object(),
            "features.linux.{field} missing: {f}"
        );
    }
    assert!(f["linux"]["seccomp"]["enabled"].is_boolean());
}

#[test]
fn features_reports_time_namespace_and_intel_rdt() {
    runc_diverges(
        "runc 1.1.5 has no time namespace and no intelRdt feature field",
        || {
            let sb = Sandbox::new("featurestime");
            let f = features(&sb);
            assert!(
                strings(&f["linux"]["namespaces"])
                    .iter()
                    .any(|n| n == "time"),
                "{f}"
            );
            assert!(
                f["linux"]["intelRdt"].is_object(),
                "features.linux.intelRdt missing: {f}"
            );
        },
    );
}

#[test]
fn global_flags_are_accepted() {
    let sb = Sandbox::new("globalflags");
    let log = sb.dir.join("debug.log");
    for flags in [
        vec!["--debug".to_string()],
        vec!["--systemd-cgroup".to_string()],
        vec!["--rootless".to_string(), "false".to_string()],
        vec!["--log".to_string(), log.display().to_string()],
        vec!["--log-format".to_string(), "text".to_string()],
    ] {
        sb.bare_cmd()
            .arg("--root")
            .arg(&sb.state_root)
            .args(&flags)
            .arg("list")
            .output()
            .ok();
    }
}

fn assert_json_error_log(log: &std::path::Path, needle: &str) {
    let text = fs::read_to_string(log).expect("the log file was written");
    let errors: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["level"] == json!("error"))
        .collect();
    assert!(!errors.is_empty(), "no JSON error line in the log:\n{text}");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
    }
    let error = &errors[0];
    assert!(
        error["msg"].as_str().is_some_and(|m| m.contains(needle)),
        "{error}"
    );
    assert!(
        error["time"].as_str().is_some_and(|t| !t.is_empty()),
        "{error}"
    );
}

#[test]
fn log_format_json_reports_create_failures() {
    let mut sb = Sandbox::new("logjsoncreate");
    sb.config["root"]["path"] = json!("missing-rootfs");
    sb.save_config();
    let id = sb.new_id("logcreate");
    let log = sb.dir.join("create.log");
    sb.cmd()
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "create", "--bundle"])
        .arg(&sb.bundle)
        .arg(&id)
        .output()
        .failed();
    assert_json_error_log(&log, "missing-rootfs");
    sb.assert_nothing_left(&id);
}

#[test]
fn log_format_json_writes_error_lines() {
    let sb = Sandbox::new("logjson");
    let id = "no-such-container-for-log";
    let log = sb.dir.join("a.log");
    sb.bare_cmd()
        .arg("--root")
        .arg(&sb.state_root)
        .arg("--log")
        .arg(&log)
        .args(["--log-format", "json", "state", id])
        .output()
        .failed();
    assert_json_error_log(&log, "not exist");

    let log_eq = sb.dir.join("b.log");
    sb.bare_cmd()
        .arg("--root")
        .arg(&sb.state_root)
        .arg(format!("--log={}", log_eq.display()))
        .args(["--log-format=json", "kill", id])
        .output()
        .failed();
    assert_json_error_log(&log_eq, "not exist");
}
