//! Namespaces: new ones, user mappings, time offsets, joining by path.

use std::fs;

use serde_json::json;

use crate::harness::{host_ok, runc_diverges, Sandbox};

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

/// A veth pair on the host: `moved` for the container, `peer` left on the host; deleting the
/// peer on drop removes both wherever the moved end is.
struct VethPair {
    moved: String,
    peer: String,
}

impl VethPair {
    fn new(tag: &str) -> VethPair {
        let n = std::process::id() % 100_000;
        let pair = VethPair {
            moved: format!("b{tag}{n}a"),
            peer: format!("b{tag}{n}b"),
        };
        ip(&[
            "link",
            "add",
            &pair.moved,
            "type",
            "veth",
            "peer",
            "name",
            &pair.peer,
        ]);
        pair
    }

    fn on_host(&self) -> bool {
        std::path::Path::new(&format!("/sys/class/net/{}", self.moved)).exists()
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.peer])
            .output();
    }
}

#[track_caller]
fn ip(args: &[&str]) {
    host_ok("ip", args);
}

/// linux.netDevices: the host's device is moved into the container's network namespace under
/// its new name, with its permanent addresses (IPv4 and IPv6) and up; the host no longer has
/// it. Without a name it keeps the host's.
#[test]
fn net_devices_are_moved_with_their_addresses_and_up() {
    let pair = VethPair::new("nd");
    ip(&["addr", "add", "10.213.0.1/24", "dev", &pair.moved]);
    ip(&[
        "-6",
        "addr",
        "add",
        "fd00:213::1/64",
        "dev",
        &pair.moved,
        "nodad",
    ]);
    ip(&["link", "set", &pair.peer, "up"]);
    let mut sb = Sandbox::new("netdev");
    sb.config["linux"]["netDevices"] = json!({&pair.moved: {"name": "ctr0"}});
    let out = sb.run_script("ip -o addr show dev ctr0; ip -o link show dev ctr0");
    for want in ["inet 10.213.0.1/24", "inet6 fd00:213::1/64", ",UP,"] {
        assert!(out.contains(want), "no {want:?} inside:\n{out}");
    }
    let global6 = out
        .lines()
        .find(|l| l.contains("fd00:213::1"))
        .unwrap_or_default();
    assert!(!global6.contains("tentative"), "nodad was lost: {global6}");
    assert!(!pair.on_host(), "{} is still on the host", pair.moved);

    let pair = VethPair::new("nk");
    let mut sb = Sandbox::new("netdevkeep");
    sb.config["linux"]["netDevices"] = json!({&pair.moved: {}});
    let out = sb.run_script(&format!("cat /sys/class/net/{}/flags", pair.moved));
    assert_eq!(out.trim(), "0x1003", "IFF_UP|IFF_BROADCAST|IFF_MULTICAST");
}

/// Devices that cannot be moved: a one-line error, and nothing left behind (the device stays
/// on the host when it was never moved).
#[test]
fn bad_net_devices_fail_cleanly() {
    let pair = VethPair::new("nb");
    let cases = [
        (json!({"bnodev0": {}}), true, "no network device"),
        (
            json!({&pair.moved: {"name": "lo"}}),
            true,
            "already has a device",
        ),
        (
            json!({&pair.moved: {"name": "a/b"}}),
            true,
            "not a network device name",
        ),
        (json!({&pair.moved: {}}), false, "network namespace"),
    ];
    for (devices, netns, needle) in cases {
        let mut sb = Sandbox::new("netdevbad");
        sb.config["linux"]["netDevices"] = devices;
        if !netns {
            if let Some(ns) = sb.config["linux"]["namespaces"].as_array_mut() {
                ns.retain(|n| n["type"] != json!("network"));
            }
        }
        sb.set_script("true");
        let id = sb.new_id("netdevbad");
        sb.run(&id, &[]).one_line_error(&[needle]);
        sb.assert_nothing_left(&id);
        assert!(pair.on_host(), "{needle}: {} left the host", pair.moved);
    }
}
