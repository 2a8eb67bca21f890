//! Namespaces: new ones, user mappings, time offsets, joining by path.

use std::fs;

use serde_json::json;

use crate::harness::{runc_diverges, Sandbox};

fn host_ns(kind: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{kind}"))
        .expect("read own namespace link")
        .display()
        .to_string()
}

/// Adds a namespace of `ns["type"]` to the config, replacing one of the same type if present.
fn add_namespace(sb: &mut Sandbox, ns: serde_json::Value) {
    let list = sb.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces array");
    list.retain(|existing| existing["type"] != ns["type"]);
    list.push(ns);
}

#[test]
fn new_namespaces_differ_from_the_host() {
    let mut sb = Sandbox::new("newns");
    add_namespace(&mut sb, json!({"type": "cgroup"}));
    let kinds = ["pid", "mnt", "uts", "ipc", "net", "cgroup"];
    let script: String = kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k}; "))
        .collect();
    let out = sb.run_script(&format!("{script} echo $$"));
    let lines: Vec<&str> = out.lines().collect();
    for (kind, inside) in kinds.iter().zip(&lines) {
        assert_ne!(*inside, host_ns(kind), "{kind} namespace is the host's");
        assert!(inside.starts_with(&format!("{kind}:[")), "{inside}");
    }
    assert_eq!(
        lines[kinds.len()],
        "1",
        "the container process is pid 1 in its pid namespace"
    );
}

/// In a cgroup namespace the container's own cgroups are its root.
#[test]
fn cgroup_namespace_roots_the_container_cgroups() {
    let mut sb = Sandbox::new("cgroupns");
    add_namespace(&mut sb, json!({"type": "cgroup"}));
    let out = sb.run_script("cat /proc/self/cgroup");
    assert!(!out.trim().is_empty());
    for line in out.lines() {
        assert!(
            line.ends_with(":/"),
            "cgroup path is not the namespace root: {line}"
        );
    }
}

#[test]
fn network_namespace_has_only_loopback() {
    let mut sb = Sandbox::new("netns");
    let out = sb.run_script("ls /sys/class/net");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"]);
}

#[test]
fn user_namespace_with_mappings() {
    let mut sb = Sandbox::new("userns");
    add_namespace(&mut sb, json!({"type": "user"}));
    sb.config["linux"]["uidMappings"] =
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    sb.config["linux"]["gidMappings"] =
        json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    // A cgroup filesystem cannot be mounted from an unprivileged user namespace.
    sb.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["type"] != json!("cgroup"));
    // In a user namespace mknod is not allowed: devices are bind mounted from the host.
    let host_device = std::path::Path::new("/dev/net/tun").exists();
    if host_device {
        sb.config["linux"]["devices"] = json!([{"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 0o600}]);
    }
    let out = sb.run_script(
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; readlink /proc/self/ns/user; ls -l /dev/null; \
         ls -l /dev/net/tun 2>/dev/null || echo no-tun",
    );
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", "100000", "65536"]);
    assert_eq!(lines[1], ["0", "200000", "65536"]);
    assert_eq!(lines[2], ["0"]);
    assert_ne!(lines[3][0], host_ns("user"));
    assert!(
        lines[4][0].starts_with('c'),
        "/dev/null is a character device: {out}"
    );
    if host_device {
        assert!(
            lines[5][0].starts_with('c'),
            "/dev/net/tun is a character device: {out}"
        );
        assert_eq!(lines[5][4..6], ["10,", "200"], "{out}");
    }
}

#[test]
fn time_namespace_offsets() {
    runc_diverges("runc 1.1.5 does not support the time namespace", || {
        let mut sb = Sandbox::new("timens");
        add_namespace(&mut sb, json!({"type": "time"}));
        let offset: u64 = 10 * 365 * 24 * 3600;
        sb.config["linux"]["timeOffsets"] = json!({
            "boottime": {"secs": offset, "nanosecs": 0},
            "monotonic": {"secs": offset, "nanosecs": 0},
        });
        let out = sb.run_script("cut -d. -f1 /proc/uptime; readlink /proc/self/ns/time");
        let lines: Vec<&str> = out.lines().collect();
        let uptime: u64 = lines[0].parse().expect("uptime seconds");
        assert!(
            uptime >= offset,
            "boottime offset not applied: uptime {uptime}"
        );
        assert_ne!(lines[1], host_ns("time"));
    });
}

#[test]
fn join_namespaces_by_path() {
    let mut first = Sandbox::new("joinfirst");
    first.config["hostname"] = json!("shared-uts");
    first.set_script("sleep 60");
    let owner = first.new_id("nsowner");
    first.run(&owner, &["--detach"]).ok();
    let pid = first.pid(&owner);
    let owner_net = fs::read_link(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .display()
        .to_string();
    let owner_ipc = fs::read_link(format!("/proc/{pid}/ns/ipc"))
        .unwrap()
        .display()
        .to_string();

    let mut second = Sandbox::new("joinsecond");
    second.config["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"},
        {"type": "network", "path": format!("/proc/{pid}/ns/net")},
        {"type": "ipc", "path": format!("/proc/{pid}/ns/ipc")},
        {"type": "uts", "path": format!("/proc/{pid}/ns/uts")},
    ]);
    if let Some(obj) = second.config.as_object_mut() {
        obj.remove("hostname");
    }
    let out = second.run_script("hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/ipc");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["shared-uts", owner_net.as_str(), owner_ipc.as_str()]
    );
    first.rt(&["delete", "--force", &owner]).ok();
    first.assert_nothing_left(&owner);
}
