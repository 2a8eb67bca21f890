//! `--systemd-cgroup` with systemd running (issue 4): the container's cgroup is a transient
//! scope `prefix-name.scope` in the slice of `slice:prefix:name`, made over D-Bus around the
//! blocked init; its limits are read back from the scope's files and from systemd; `exec`
//! joins it, `update` changes it (and leaves the limits and device rules in place, also across
//! a `systemctl daemon-reload`), `delete` makes the
//! unit and its directories disappear; a bad slice or a taken unit name is a clear error that
//! leaves nothing behind (and leaves the other unit alone).
//!
//! The same assertions hold on both layouts systemd sets up: pure cgroup v2, and hybrid (v1
//! controllers, name=systemd, cgroup2 at /sys/fs/cgroup/unified), where the scope must be on
//! every hierarchy: those systemd manages (name=systemd, memory, pids, ...) and the v1 ones berth
//! adds itself (freezer, cpuset, ...). File names follow the layout found in mountinfo.
//!
//! systemd does not run on the development and CI hosts: there every test here skips. They run
//! in a VM booted with systemd as PID 1 (integration/cgroups-vm/run.sh --systemd, and
//! --systemd-hybrid for the hybrid layout).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::cgroups::{hierarchies, home_of, some_block_device};
use crate::harness::{host_ok, wait_until, Output, Sandbox, SETTLE_TIMEOUT};

const MIB: i64 = 1 << 20;

/// sd_booted(3): skips (with the reason printed) when systemd is not the running init.
fn systemd_or_skip() -> bool {
    let running = Path::new("/run/systemd/system").is_dir();
    if !running {
        eprintln!(
            "skipped: systemd is not running here (these tests run in \
             integration/cgroups-vm/run.sh --systemd)"
        );
    }
    if running {
        // The VM runs set BERTH_TEST_REQUIRE_LAYOUT, which `hierarchies` checks: a guest whose
        // systemd set up another layout than asked for fails instead of passing on it.
        hierarchies();
    }
    running
}

/// True when cgroup2 is the only hierarchy (systemd's unified mode).
fn unified() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The scope's directory holding `controller`'s files: its v1 hierarchy if it has one, else
/// cgroup2.
fn scope_dir(controller: &str, cgroup: &str) -> PathBuf {
    let home = home_of(controller).unwrap_or_else(|| panic!("no {controller} controller here"));
    home.mount.join(cgroup.trim_start_matches('/'))
}

/// The file of the memory limit: memory.max on cgroup2, memory.limit_in_bytes on v1.
fn memory_limit_file(cgroup: &str) -> PathBuf {
    let dir = scope_dir("memory", cgroup);
    match home_of("memory") {
        Some(h) if !h.v2 => dir.join("memory.limit_in_bytes"),
        _ => dir.join("memory.max"),
    }
}

/// The scope's directory on every hierarchy.
fn scope_dirs(cgroup: &str) -> Vec<PathBuf> {
    hierarchies()
        .iter()
        .map(|h| h.mount.join(cgroup.trim_start_matches('/')))
        .collect()
}

/// `pid` is in the scope on every hierarchy (on hybrid: each v1 one and cgroup2).
#[track_caller]
fn assert_in_scope_everywhere(pid: i32, cgroup: &str) {
    let all = hierarchies();
    for h in &all {
        let expected = h.mount.join(cgroup.trim_start_matches('/'));
        assert_eq!(
            h.dir_of(pid),
            expected,
            "pid {pid} on {}",
            h.mount.display()
        );
    }
    eprintln!("pid {pid} is in {cgroup} on {} hierarchies", all.len());
}

#[track_caller]
fn assert_no_dirs(dirs: &[PathBuf]) {
    let left: Vec<&PathBuf> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroup directories were left: {left:?}");
}

fn read_trimmed(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The cgroup systemd tracks `pid` in: the `0::` line on a unified host, else name=systemd.
fn systemd_cgroup_of(pid: i32) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
    let wanted = if unified() { "0::" } else { "name=systemd:" };
    text.lines()
        .find_map(|l| {
            let (_, rest) = l.split_once(':')?;
            if wanted == "0::" {
                l.strip_prefix("0::")
            } else {
                rest.strip_prefix("name=systemd:")
            }
        })
        .unwrap_or_else(|| panic!("no {wanted} line in /proc/{pid}/cgroup:\n{text}"))
        .to_string()
}

/// `systemctl show -P PROPERTY UNIT`.
fn unit_property(unit: &str, property: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-P", property, unit])
        .output()
        .expect("run systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits until systemd no longer knows the unit (a stopped transient unit is collected).
#[track_caller]
fn assert_unit_gone(unit: &str) {
    wait_until(&format!("{unit} to be gone"), SETTLE_TIMEOUT, || {
        unit_property(unit, "LoadState") == "not-found"
    });
}

/// `berth --systemd-cgroup --root STATE create --bundle B ID`, optionally with an environment
/// variable for berth.
fn create_systemd(sb: &Sandbox, id: &str, env: Option<(&str, &str)>) -> Output {
    sb.save_config();
    let mut cmd = sb
        .bare_cmd()
        .arg("--systemd-cgroup")
        .arg("--root")
        .arg(&sb.state_root);
    if let Some((key, value)) = env {
        cmd = cmd.env(key, value);
    }
    cmd.args(["create", "--bundle"])
        .arg(&sb.bundle)
        .arg(id)
        .output()
}

/// A sandbox sleeping in a container whose cgroupsPath is `path` (none when `None`).
fn sleeper(tag: &str, path: Option<&str>, resources: Value) -> (Sandbox, String) {
    let mut sb = Sandbox::new(tag);
    let id = sb.new_id(tag);
    match path {
        Some(p) => sb.config["linux"]["cgroupsPath"] = json!(p.replace("{id}", &id)),
        None => {
            if let Some(linux) = sb.config["linux"].as_object_mut() {
                linux.remove("cgroupsPath");
            }
        }
    }
    sb.config["linux"]["resources"] = resources;
    sb.set_script("exec sleep 1000");
    (sb, id)
}

/// The one flow a systemd-managed container goes through: create lands the init in the scope
/// with the limits on the scope's files and in systemd's properties; exec joins the scope;
/// update changes both; delete removes the unit and its directory.
#[test]
fn scope_holds_the_container_through_its_life() {
    if !systemd_or_skip() {
        return;
    }
    let (sb, id) = sleeper(
        "sdlife",
        Some("system.slice:berth:{id}"),
        json!({"memory": {"limit": 64 * MIB}, "pids": {"limit": 30}}),
    );
    create_systemd(&sb, &id, None).ok();
    let unit = format!("berth-{id}.scope");
    let cgroup = format!("/system.slice/{unit}");
    let pid = sb.pid(&id);
    assert_eq!(systemd_cgroup_of(pid), cgroup);
    assert_eq!(unit_property(&unit, "ActiveState"), "active");
    assert_eq!(unit_property(&unit, "ControlGroup"), cgroup);
    assert_eq!(unit_property(&unit, "Delegate"), "yes");
    // Block IO accounting has a v1 name of its own.
    let io_accounting = if unified() {
        "IOAccounting"
    } else {
        "BlockIOAccounting"
    };
    assert_eq!(unit_property(&unit, io_accounting), "yes");
    assert_in_scope_everywhere(pid, &cgroup);

    let memory = memory_limit_file(&cgroup);
    let pids = scope_dir("pids", &cgroup).join("pids.max");
    assert_eq!(read_trimmed(&memory), (64 * MIB).to_string());
    assert_eq!(read_trimmed(&pids), "30");
    assert_eq!(unit_property(&unit, "MemoryMax"), (64 * MIB).to_string());
    assert_eq!(unit_property(&unit, "TasksMax"), "30");

    sb.rt(&["start", &id]).ok();
    let pid_file = sb.dir.join("exec.pid");
    sb.rt(&[
        "exec",
        "-d",
        "--pid-file",
        &pid_file.display().to_string(),
        &id,
        "sleep",
        "1000",
    ])
    .ok();
    let exec_pid: i32 = read_trimmed(&pid_file).parse().expect("exec pid");
    assert_eq!(systemd_cgroup_of(exec_pid), cgroup, "exec joins the scope");
    assert_in_scope_everywhere(exec_pid, &cgroup);

    sb.rt(&["update", "--pids-limit", "50", "--memory", "96m", &id])
        .ok();
    assert_eq!(read_trimmed(&pids), "50");
    assert_eq!(read_trimmed(&memory), (96 * MIB).to_string());
    assert_eq!(unit_property(&unit, "TasksMax"), "50");
    assert_eq!(unit_property(&unit, "MemoryMax"), (96 * MIB).to_string());

    let dirs = scope_dirs(&cgroup);
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
    assert_unit_gone(&unit);
    assert_no_dirs(&dirs);
}

/// A node with /dev/kmsg's numbers (char 1:11, not among the default allowed devices).
fn add_kmsg_node(sb: &mut Sandbox) {
    sb.config["linux"]["devices"] = json!([
        {"path": "/dev/testkmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o620, "uid": 0, "gid": 0}
    ]);
}

/// Whether a process exec'd into the container can open /dev/testkmsg for writing.
fn exec_can_open_kmsg(sb: &Sandbox, id: &str) -> bool {
    exec_can_open(sb, id, "/dev/testkmsg", ">")
}

/// Whether a process exec'd into the container can open `path`, for writing with `redirect`
/// ">" or for reading with "<".
fn exec_can_open(sb: &Sandbox, id: &str, path: &str, redirect: &str) -> bool {
    let script =
        format!("if (: {redirect} {path}) 2>/dev/null; then echo ok; else echo denied; fi");
    let out = sb.rt(&["exec", id, "sh", "-c", &script]).ok();
    out.stdout.trim() == "ok"
}

/// A misc device (char major 10) the guest kernel registered, as (name, minor): one that any
/// root process can open without a capability or hardware behind it.
fn openable_misc_device() -> (String, u32) {
    let misc = fs::read_to_string("/proc/misc").expect("read /proc/misc");
    ["fuse", "cpu_dma_latency"]
        .iter()
        .find_map(|wanted| {
            misc.lines().find_map(|line| {
                let (minor, name) = line.trim().split_once(' ')?;
                if name != *wanted {
                    return None;
                }
                Some((name.to_string(), minor.parse().ok()?))
            })
        })
        .unwrap_or_else(|| panic!("no fuse or cpu_dma_latency in /proc/misc:\n{misc}"))
}

/// The scope's v1 devices.list, when the devices controller is on v1.
fn v1_devices_list(cgroup: &str) -> Option<String> {
    let home = home_of("devices").filter(|h| !h.v2)?;
    let file = home
        .mount
        .join(cgroup.trim_start_matches('/'))
        .join("devices.list");
    Some(read_trimmed(&file))
}

/// `systemctl daemon-reload`: systemd re-reads its units and re-applies their cgroup settings.
#[track_caller]
fn daemon_reload() {
    host_ok("systemctl", &["daemon-reload"]);
}

/// After a reload, the devices are still those of the config: the restricted list on v1 (not
/// systemd's "a *:* rwm"), kmsg (char 1:11) denied, the misc device and /dev/null open.
#[track_caller]
fn assert_devices_restricted(sb: &Sandbox, id: &str, cgroup: &str, when: &str) {
    if let Some(list) = v1_devices_list(cgroup) {
        eprintln!("devices.list {when}:\n{list}");
        assert!(!list.contains("a *:* rwm"), "devices.list {when}: {list}");
        for line in ["c 1:3 rwm", "c 10:* rw", "c 136:* rwm"] {
            assert!(
                list.lines().any(|l| l == line),
                "no {line:?} {when}: {list}"
            );
        }
    }
    assert!(!exec_can_open_kmsg(sb, id), "kmsg opened {when}");
    assert!(
        exec_can_open(sb, id, "/dev/testmisc", ">"),
        "the allowed misc device could not be opened {when}"
    );
    assert!(
        exec_can_open(sb, id, "/dev/null", ">"),
        "/dev/null could not be opened {when}"
    );
}

/// `systemctl daemon-reload` makes systemd re-apply every unit's cgroup settings, the device
/// policy included: the container's device rules are the scope's DevicePolicy/DeviceAllow,
/// so a reload after create, and after update, leaves them in force.
#[test]
fn device_rules_hold_after_daemon_reload() {
    if !systemd_or_skip() {
        return;
    }
    let (misc_name, misc_minor) = openable_misc_device();
    eprintln!("misc device: {misc_name} (10:{misc_minor})");
    let (mut sb, id) = sleeper(
        "sdreload",
        Some("system.slice:berth:{id}"),
        json!({"devices": [
            {"allow": false, "access": "rwm"},
            // A whole major: systemd's "char-misc", named from /proc/devices.
            {"allow": true, "type": "c", "major": 10, "access": "rw"}
        ], "pids": {"limit": 30}}),
    );
    sb.config["linux"]["devices"] = json!([
        {"path": "/dev/testkmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o620, "uid": 0, "gid": 0},
        {"path": "/dev/testmisc", "type": "c", "major": 10, "minor": misc_minor, "fileMode": 0o600, "uid": 0, "gid": 0}
    ]);
    create_systemd(&sb, &id, None).ok();
    let unit = format!("berth-{id}.scope");
    let cgroup = format!("/system.slice/{unit}");
    sb.rt(&["start", &id]).ok();
    assert_eq!(unit_property(&unit, "DevicePolicy"), "strict");
    let allowed = unit_property(&unit, "DeviceAllow");
    eprintln!("DeviceAllow: {allowed}");
    assert!(allowed.contains("char-misc rw"), "DeviceAllow: {allowed}");
    assert!(
        allowed.contains("/dev/char/1:3 rwm"),
        "DeviceAllow: {allowed}"
    );
    assert_devices_restricted(&sb, &id, &cgroup, "after create");

    daemon_reload();
    assert_devices_restricted(&sb, &id, &cgroup, "after create and daemon-reload");

    sb.rt(&["update", "--pids-limit", "40", &id]).ok();
    assert_eq!(unit_property(&unit, "TasksMax"), "40");
    assert_eq!(
        unit_property(&unit, "DeviceAllow"),
        allowed,
        "update keeps the list"
    );
    assert_devices_restricted(&sb, &id, &cgroup, "after update");

    daemon_reload();
    assert_devices_restricted(&sb, &id, &cgroup, "after update and daemon-reload");

    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
    assert_unit_gone(&unit);
    assert_no_dirs(&scope_dirs(&cgroup));
}

/// A limit file of the scope and the value it must hold.
type Expected = Vec<(PathBuf, String)>;

/// The CPU, cpuset, memory and IO files of the scope for the limits of
/// `limits_hold_after_daemon_reload`, in the layout's names: cpu.weight of shares 512 is
/// 1 + (512-2)*9999/262142 = 20, of 1024 it is 39.
fn cpu_io_expectations(cgroup: &str, device: &str, shares: u64, quota: u64) -> Expected {
    let cpu = scope_dir("cpu", cgroup);
    let io =
        home_of("blkio").map_or_else(|| scope_dir("io", cgroup), |_| scope_dir("blkio", cgroup));
    let mut files = vec![(
        scope_dir("cpuset", cgroup).join("cpuset.cpus"),
        "1".to_string(),
    )];
    if unified() {
        let weight = 1 + ((shares - 2) * 9999) / 262_142;
        files.push((cpu.join("cpu.weight"), weight.to_string()));
        files.push((cpu.join("cpu.max"), format!("{quota} 100000")));
        files.push((
            scope_dir("memory", cgroup).join("memory.low"),
            (32 * MIB).to_string(),
        ));
        files.push((
            io.join("io.max"),
            format!("{device} rbps={MIB} wbps=max riops=max wiops=100"),
        ));
    } else {
        files.push((cpu.join("cpu.shares"), shares.to_string()));
        files.push((cpu.join("cpu.cfs_quota_us"), quota.to_string()));
        files.push((cpu.join("cpu.cfs_period_us"), "100000".to_string()));
        files.push((
            io.join("blkio.throttle.read_bps_device"),
            format!("{device} {MIB}"),
        ));
        // systemd has no IOPS limit on v1: berth's write is left alone.
        files.push((
            io.join("blkio.throttle.write_iops_device"),
            format!("{device} 100"),
        ));
    }
    files
}

#[track_caller]
fn assert_files(files: &[(PathBuf, String)], when: &str) {
    for (file, want) in files {
        assert_eq!(&read_trimmed(file), want, "{} {when}", file.display());
    }
}

/// The scope's block I/O weight file (BFQ's or io.weight), if the kernel offers one here.
fn io_weight_file(cgroup: &str) -> Option<(PathBuf, &'static str)> {
    let candidates: &[(&str, &str, &'static str)] = if unified() {
        &[
            ("io", "io.bfq.weight", "default 300"),
            ("io", "io.weight", "default 2930"),
        ]
    } else {
        &[
            ("blkio", "blkio.bfq.weight", "300"),
            ("blkio", "blkio.weight", "300"),
        ]
    };
    candidates.iter().find_map(|(controller, file, want)| {
        let path = scope_dir(controller, cgroup).join(file);
        path.exists().then_some((path, *want))
    })
}

/// systemd re-applies a unit's CPU, cpuset, memory and IO settings on `systemctl
/// daemon-reload`, writing its defaults (cpu.weight 100, cpu.max "max", an empty cpuset, the
/// default I/O weight) for what the unit does not say. berth passes the container's limits as
/// unit properties, so after a reload, on create and on update, the files still hold them.
#[test]
fn limits_hold_after_daemon_reload() {
    if !systemd_or_skip() {
        return;
    }
    let device = some_block_device().expect("a block device (the VM has /dev/ram0)");
    let (major, minor) = device.split_once(':').expect("major:minor");
    let (major, minor): (i64, i64) = (major.parse().expect("major"), minor.parse().expect("minor"));
    let (sb, id) = sleeper(
        "sdlimits",
        Some("system.slice:berth:{id}"),
        json!({
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "1"},
            "memory": {"limit": 64 * MIB, "reservation": 32 * MIB},
            "blockIO": {
                "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": MIB}],
                "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]
            }
        }),
    );
    create_systemd(&sb, &id, None).ok();
    let unit = format!("berth-{id}.scope");
    let cgroup = format!("/system.slice/{unit}");
    sb.rt(&["start", &id]).ok();
    assert_eq!(unit_property(&unit, "CPUQuotaPerSecUSec"), "500ms");
    let read_bps = if unified() {
        "IOReadBandwidthMax"
    } else {
        "BlockIOReadBandwidth"
    };
    let listed = unit_property(&unit, read_bps);
    assert!(listed.ends_with(&format!(" {MIB}")), "{read_bps}: {listed}");
    let files = cpu_io_expectations(&cgroup, &device, 512, 50000);
    assert_files(&files, "after create");
    daemon_reload();
    assert_files(&files, "after create and daemon-reload");

    sb.rt(&[
        "update",
        "--cpu-shares",
        "1024",
        "--cpu-quota",
        "30000",
        &id,
    ])
    .ok();
    let files = cpu_io_expectations(&cgroup, &device, 1024, 30000);
    assert_files(&files, "after update");
    daemon_reload();
    assert_files(&files, "after update and daemon-reload");

    match io_weight_file(&cgroup) {
        Some((file, want)) => {
            sb.rt(&["update", "--blkio-weight", "300", &id]).ok();
            assert_eq!(
                read_trimmed(&file).lines().next(),
                Some(want),
                "{}",
                file.display()
            );
            daemon_reload();
            assert_eq!(
                read_trimmed(&file).lines().next(),
                Some(want),
                "{} after daemon-reload",
                file.display()
            );
        }
        None => eprintln!("no I/O weight file on this kernel: the weight is not checked"),
    }

    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
    assert_unit_gone(&unit);
    assert_no_dirs(&scope_dirs(&cgroup));
}

/// cpu.idle (v2 only): systemd 252 writes cpu.idle 0 on a reload unless the unit's CPUWeight
/// is its "idle" value, which berth passes for `idle: 1`.
#[test]
fn idle_cpu_holds_after_daemon_reload() {
    if !systemd_or_skip() {
        return;
    }
    if !unified() {
        eprintln!("skipped: cpu.idle exists on cgroup v2 only");
        return;
    }
    let (sb, id) = sleeper(
        "sdidle",
        Some("system.slice:berth:{id}"),
        json!({"cpu": {"idle": 1}}),
    );
    create_systemd(&sb, &id, None).ok();
    let unit = format!("berth-{id}.scope");
    let cgroup = format!("/system.slice/{unit}");
    let idle = scope_dir("cpu", &cgroup).join("cpu.idle");
    assert_eq!(read_trimmed(&idle), "1", "after create");
    eprintln!("CPUWeight: {}", unit_property(&unit, "CPUWeight"));
    daemon_reload();
    assert_eq!(read_trimmed(&idle), "1", "after daemon-reload");
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
    assert_unit_gone(&unit);
}

/// The container's device rules outlast `update`: systemd re-applies a unit's cgroup settings
/// when its properties change, and on v1 that includes the devices controller of the
/// delegated scope ("a" into devices.allow when the unit has no device policy).
#[test]
fn device_rules_hold_after_update() {
    if !systemd_or_skip() {
        return;
    }
    let (mut sb, id) = sleeper(
        "sddevices",
        Some("system.slice:berth:{id}"),
        json!({"devices": [{"allow": false, "access": "rwm"}], "pids": {"limit": 30}}),
    );
    add_kmsg_node(&mut sb);
    create_systemd(&sb, &id, None).ok();
    let cgroup = format!("/system.slice/berth-{id}.scope");
    sb.rt(&["start", &id]).ok();
    assert!(!exec_can_open_kmsg(&sb, &id), "kmsg opened after create");

    sb.rt(&["update", "--pids-limit", "40", "--memory", "80m", &id])
        .ok();
    assert_eq!(
        unit_property(&format!("berth-{id}.scope"), "TasksMax"),
        "40"
    );
    if let Some(home) = home_of("devices").filter(|h| !h.v2) {
        let list = read_trimmed(
            &home
                .mount
                .join(cgroup.trim_start_matches('/'))
                .join("devices.list"),
        );
        assert!(
            !list.contains("a *:* rwm"),
            "devices.list after update: {list}"
        );
    }
    assert!(!exec_can_open_kmsg(&sb, &id), "kmsg opened after update");
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
    assert_no_dirs(&scope_dirs(&cgroup));
}

/// No cgroupsPath under --systemd-cgroup: `system.slice:berth:<id>`, runc's default shape.
#[test]
fn empty_cgroups_path_is_a_berth_scope_in_system_slice() {
    if !systemd_or_skip() {
        return;
    }
    let (sb, id) = sleeper("sddefault", None, json!({}));
    create_systemd(&sb, &id, None).ok();
    let unit = format!("berth-{id}.scope");
    assert_eq!(
        systemd_cgroup_of(sb.pid(&id)),
        format!("/system.slice/{unit}")
    );
    assert_eq!(unit_property(&unit, "ActiveState"), "active");
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
    assert_unit_gone(&unit);
}

/// A slice name berth cannot parse, one systemd refuses, and a container named as a slice:
/// each a one-line error, with no state, no unit and no directory left.
#[test]
fn bad_slice_names_fail_clearly_and_leave_nothing() {
    if !systemd_or_skip() {
        return;
    }
    for (path, needles) in [
        ("system:berth:{id}", &["cgroupsPath", ".slice"][..]),
        ("bad name.slice:berth:{id}", &["systemd", "berth-"][..]),
        // A slice holds no processes: systemd refuses PIDs for one (runc 1.1 fails there).
        ("system.slice::{id}.slice", &["scope", "slice"][..]),
    ] {
        let (sb, id) = sleeper("sdbadslice", Some(path), json!({}));
        let out = create_systemd(&sb, &id, None).one_line_error(needles);
        eprintln!("{path}: {}", out.stderr.trim());
        sb.assert_nothing_left(&id);
        let unit = if path.ends_with(".slice") {
            // systemd loads a slice without a unit file, so never started is all to check.
            let slice = format!("{id}.slice");
            assert_eq!(unit_property(&slice, "ActiveState"), "inactive");
            slice
        } else {
            let scope = format!("berth-{id}.scope");
            assert_unit_gone(&scope);
            scope
        };
        let slice_dir = path.split(':').next().unwrap_or_default();
        assert_no_dirs(&scope_dirs(&format!("/{slice_dir}/{unit}")));
    }
}

/// A second container asking for the same unit gets a clear error, and the first container,
/// its unit and its cgroup are left untouched.
#[test]
fn a_taken_unit_name_is_refused_and_left_alone() {
    if !systemd_or_skip() {
        return;
    }
    let (first, first_id) = sleeper("sdtaken", Some("system.slice:berth:{id}"), json!({}));
    create_systemd(&first, &first_id, None).ok();
    let unit = format!("berth-{first_id}.scope");
    let first_pid = first.pid(&first_id);

    let (second, second_id) = sleeper(
        "sdtaken2",
        Some(&format!("system.slice:berth:{first_id}")),
        json!({}),
    );
    let out = create_systemd(&second, &second_id, None).one_line_error(&["already exists", &unit]);
    eprintln!("taken: {}", out.stderr.trim());
    second.assert_nothing_left(&second_id);

    assert_eq!(first.status(&first_id), "created");
    assert_eq!(unit_property(&unit, "ActiveState"), "active");
    let cgroup = format!("/system.slice/{unit}");
    assert_eq!(systemd_cgroup_of(first_pid), cgroup);
    // Also the directories berth made itself (v1 freezer, cpuset, ... on hybrid).
    assert_in_scope_everywhere(first_pid, &cgroup);
    first.rt(&["delete", "--force", &first_id]).ok();
    assert_unit_gone(&unit);
    assert_no_dirs(&scope_dirs(&cgroup));
}

/// Without a system bus, berth talks to systemd's private socket (root only).
#[test]
fn private_socket_works_without_the_bus() {
    if !systemd_or_skip() {
        return;
    }
    let (sb, id) = sleeper(
        "sdprivate",
        Some("system.slice:berthpriv:{id}"),
        json!({"pids": {"limit": 20}}),
    );
    let no_bus = (
        "DBUS_SYSTEM_BUS_ADDRESS",
        "unix:path=/nonexistent/system_bus_socket",
    );
    create_systemd(&sb, &id, Some(no_bus)).ok();
    let unit = format!("berthpriv-{id}.scope");
    let cgroup = format!("/system.slice/{unit}");
    assert_eq!(systemd_cgroup_of(sb.pid(&id)), cgroup);
    assert_in_scope_everywhere(sb.pid(&id), &cgroup);
    assert_eq!(
        read_trimmed(&scope_dir("pids", &cgroup).join("pids.max")),
        "20"
    );
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
    assert_unit_gone(&unit);
    assert_no_dirs(&scope_dirs(&cgroup));
}
