//! Real config.json files from containerd, podman and docker (../shared/client-specs), adapted
//! to this host as the issue allows, must run and exit 0.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::harness::{cap_number, host_bounding_set, Sandbox};

fn client_specs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/client-specs")
}

/// Adapts an engine's spec to this host (its seccomp profile is kept): the test rootfs, no bind
/// mounts of engine files that do not exist here, no docker libnetwork hook, no terminal, a short
/// command, and no capability the host's own bounding set lacks.
fn adapt(mut spec: Value, rootfs: &Path) -> Value {
    spec["root"]["path"] = json!(rootfs);
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        mounts.retain(|m| {
            let is_bind = m["type"] == json!("bind")
                || m["options"]
                    .as_array()
                    .is_some_and(|o| o.contains(&json!("bind")) || o.contains(&json!("rbind")));
            !is_bind || m["source"].as_str().is_some_and(|s| Path::new(s).exists())
        });
    }
    if let Some(hooks) = spec["hooks"].as_object_mut() {
        for list in hooks.values_mut() {
            if let Some(list) = list.as_array_mut() {
                list.retain(|h| {
                    !h["args"]
                        .as_array()
                        .is_some_and(|a| a.contains(&json!("libnetwork-setkey")))
                });
            }
        }
    }
    spec["process"]["terminal"] = json!(false);
    spec["process"]["args"] = json!(["sh", "-c", "echo client-spec-ok"]);
    let host = host_bounding_set();
    if let Some(caps) = spec["process"]["capabilities"].as_object_mut() {
        for set in caps.values_mut() {
            if let Some(list) = set.as_array_mut() {
                list.retain(|c| {
                    c.as_str()
                        .is_some_and(|c| host & (1u64 << cap_number(c)) != 0)
                });
            }
        }
    }
    spec
}

fn run_client_spec(file: &str) {
    let path = client_specs_dir().join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let spec: Value = serde_json::from_str(&text).expect("client spec is JSON");
    let mut sb = Sandbox::new(file.trim_end_matches(".json"));
    sb.config = adapt(spec, &sb.rootfs);
    let id = sb.new_id("client");
    // Same engine path form, but unique to this run: other suites (and a parallel run of this
    // one) use these specs too, and must not share the cgroup.
    if let Some(path) = sb.config["linux"]["cgroupsPath"].as_str() {
        sb.config["linux"]["cgroupsPath"] = json!(format!("{path}-{id}"));
    }
    let out = sb.run(&id, &[]).ok();
    assert_eq!(out.stdout.trim(), "client-spec-ok", "{file}");
    sb.assert_nothing_left(&id);
}

#[test]
fn every_run_spec_is_covered() {
    let mut found: Vec<String> = fs::read_dir(client_specs_dir())
        .expect("../shared/client-specs exists")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-run") && n.ends_with(".json"))
        .collect();
    found.sort();
    let mut covered: Vec<&str> = COVERED.to_vec();
    covered.sort();
    assert_eq!(
        found, covered,
        "a client spec has no test: add it to client_specs.rs"
    );
}

macro_rules! client_spec_tests {
    ($($name:ident => $file:literal),* $(,)?) => {
        const COVERED: &[&str] = &[$($file),*];
        $(
            #[test]
            fn $name() {
                run_client_spec($file);
            }
        )*
    };
}

client_spec_tests! {
    containerd_run => "containerd-run.json",
    containerd_run_tty => "containerd-run-tty.json",
    containerd_run_seccomp => "containerd-run-seccomp.json",
    docker_run => "docker-run.json",
    docker_run_limits => "docker-run-limits.json",
    docker_run_privileged => "docker-run-privileged.json",
    docker_run_tty => "docker-run-tty.json",
    podman_run => "podman-run.json",
    podman_run_limits => "podman-run-limits.json",
    podman_run_tty => "podman-run-tty.json",
}
