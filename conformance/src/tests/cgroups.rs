//! config-linux.md "Control groups": cgroupsPath and each resource, checked from the host in the
//! container's cgroup files while it is created (cgroup v1 file names, or v2 where a controller
//! lives on the unified hierarchy).

use std::fs;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::{t, Test};
use crate::harness::{cgroup_dir_of, cgroup_mounts, Sandbox};
use crate::outcome::{skip, Context, TestResult};
use crate::{check, check_eq};

pub fn tests() -> Vec<Test> {
    vec![
        t(
            "config-linux.md/cgroups-path: the container is placed at cgroupsPath",
            cgroups_path_placement,
        ),
        t(
            "config-linux.md/cgroups-path: delete removes the cgroup create made",
            cgroups_path_removed,
        ),
        t(
            "config-linux.md/cgroups-path: a failed create leaves no cgroup",
            cgroups_path_failed_create,
        ),
        t(
            "config-linux.md/cgroup-ownership: SHOULD NOT change ownership on cgroup v1",
            cgroup_ownership_v1,
        ),
        t("config-linux.md/memory: limit", memory_limit),
        t(
            "config-linux.md/memory: -1 means unlimited",
            memory_unlimited,
        ),
        t("config-linux.md/memory: reservation", memory_reservation),
        t("config-linux.md/memory: swap", memory_swap),
        t("config-linux.md/memory: swappiness", memory_swappiness),
        t(
            "config-linux.md/memory: disableOOMKiller",
            memory_disable_oom_killer,
        ),
        t("config-linux.md/cpu: shares", cpu_shares),
        t("config-linux.md/cpu: quota and period", cpu_quota),
        t("config-linux.md/cpu: burst", cpu_burst),
        t(
            "config-linux.md/cpu: realtimeRuntime and realtimePeriod",
            cpu_realtime,
        ),
        t("config-linux.md/cpu: cpus and mems", cpu_cpuset),
        t("config-linux.md/pids: limit", pids_limit),
        t("config-linux.md/block-io: weight", blkio_weight),
        t(
            "config-linux.md/block-io: throttleReadBpsDevice",
            blkio_throttle,
        ),
        t(
            "config-linux.md/block-io: throttleWriteIOPSDevice",
            blkio_throttle_write_iops,
        ),
        t(
            "config-linux.md/huge-page-limits: limit per page size",
            hugepage_limits,
        ),
        t("config-linux.md/network: classID", network_class_id),
        t("config-linux.md/network: priorities", network_priorities),
        t(
            "config-linux.md/rdma: hcaHandles and hcaObjects",
            rdma_limits,
        ),
        t(
            "config-linux.md/unified: cgroup v2 files are written as given",
            unified,
        ),
        t(
            "config-linux.md/unified: a controller that is not present MUST be an error",
            unified_unknown_controller,
        ),
        t(
            "config-linux.md/allowed-device-list: entries are applied in order",
            device_allowlist,
        ),
    ]
}

/// True when a v1 hierarchy carries this controller.
fn on_v1(controller: &str) -> bool {
    cgroup_mounts().contains_key(controller)
}

/// True when the host is cgroup v2 only and its hierarchy has this controller. On a hybrid host
/// the controllers left to the unified hierarchy are not counted: runtimes manage v1 there.
fn on_v2(controller: &str) -> bool {
    let mounts = cgroup_mounts();
    if mounts.keys().any(|k| !k.is_empty()) {
        return false;
    }
    mounts
        .get("")
        .and_then(|m| fs::read_to_string(m.join("cgroup.controllers")).ok())
        .is_some_and(|list| list.split_whitespace().any(|c| c == controller))
}

fn require(controller: &str) -> TestResult {
    if on_v1(controller) || on_v2(controller) {
        Ok(())
    } else {
        skip(format!(
            "no {controller} cgroup controller on this host (on a hybrid host: none on v1)"
        ))
    }
}

/// Creates a held container with these resources under a fresh cgroupsPath: the path, its
/// host pid and the container id.
fn create_with_resources(sb: &mut Sandbox, resources: Value) -> TestResult<(String, i64, String)> {
    let path = sb.new_cgroups_path();
    sb.config["linux"]["cgroupsPath"] = json!(path);
    sb.config["linux"]["resources"] = resources;
    sb.checker_args(&["wait-signal:20000"]);
    let id = sb.new_id();
    sb.create_ok(&id)?;
    let pid = sb.state(&id)?["pid"].as_i64().unwrap_or(0);
    check!(pid > 0, "state of {id} has no pid");
    Ok((path, pid, id))
}

/// Reads a cgroup file of the container: `v1` on a v1 controller, else `v2` on cgroup2.
fn read_file(pid: i64, controller: &str, v1: &str, v2: &str) -> TestResult<String> {
    let (dir, file) = if on_v1(controller) {
        (cgroup_dir_of(pid, controller)?, v1)
    } else {
        (cgroup_dir_of(pid, "")?, v2)
    };
    let path = dir.join(file);
    fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .ctx(|| format!("read {}", path.display()))
}

// "cgroupsPath (string, OPTIONAL) path to the cgroups. ... If the value is specified, the
// runtime MUST consistently attach to the same place in the cgroups hierarchy given the same
// value of cgroupsPath." (absolute: relative to the cgroups mount point)
fn cgroups_path_placement(sb: &mut Sandbox) -> TestResult {
    let (path, pid, _) = create_with_resources(sb, json!({}))?;
    let controllers: Vec<&str> = ["memory", "pids", "cpu"]
        .into_iter()
        .filter(|c| on_v1(c))
        .collect();
    if controllers.is_empty() {
        let dir = cgroup_dir_of(pid, "")?;
        let want = cgroup_mounts()
            .get("")
            .cloned()
            .unwrap_or_default()
            .join(path.trim_start_matches('/'));
        check_eq!(dir, want, "the container's cgroup2 directory");
    }
    for controller in controllers {
        let dir = cgroup_dir_of(pid, controller)?;
        let want: PathBuf = cgroup_mounts()[controller].join(path.trim_start_matches('/'));
        check_eq!(dir, want, format!("the container's {controller} cgroup"));
    }
    Ok(())
}

// runtime.md: "Deleting a container MUST delete the resources that were created during the
// create step."
fn cgroups_path_removed(sb: &mut Sandbox) -> TestResult {
    let (path, pid, id) = create_with_resources(sb, json!({"pids": {"limit": 100}}))?;
    let dir = if on_v1("pids") {
        cgroup_dir_of(pid, "pids")?
    } else {
        cgroup_dir_of(pid, "")?
    };
    check!(
        dir.ends_with(path.trim_start_matches('/')),
        "the container is not at its cgroupsPath: {}",
        dir.display()
    );
    sb.op_ok_args(&["kill", &id, "KILL"])?;
    sb.wait_status(&id, "stopped")?;
    sb.op_ok("delete", &id)?;
    check!(
        !dir.exists(),
        "{} is still there after delete",
        dir.display()
    );
    Ok(())
}

// runtime.md: "generating an error MUST leave the state of the environment as if the operation
// were never attempted".
fn cgroups_path_failed_create(sb: &mut Sandbox) -> TestResult {
    require("pids")?;
    let path = sb.new_cgroups_path();
    sb.config["linux"]["cgroupsPath"] = json!(path);
    sb.config["linux"]["resources"] = json!({"pids": {"limit": 100}});
    crate::harness::add_mount(
        &mut sb.config,
        json!({"destination": "/missing", "type": "bind",
               "source": sb.dir.join("no-such-source").display().to_string(), "options": ["bind"]}),
    );
    sb.expect_create_error()?;
    for (controller, mount) in cgroup_mounts() {
        let dir = mount.join(path.trim_start_matches('/'));
        check!(
            !dir.exists(),
            "the failed create left {} ({controller:?})",
            dir.display()
        );
    }
    Ok(())
}

// "Runtimes SHOULD NOT change the ownership of container cgroups when cgroups v1 is in use."
fn cgroup_ownership_v1(sb: &mut Sandbox) -> TestResult {
    if !on_v1("pids") {
        return skip("no cgroup v1 pids hierarchy on this host");
    }
    sb.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    crate::harness::set_namespace(&mut sb.config, json!({"type": "cgroup"}));
    let (_, pid, _) = create_with_resources(sb, json!({"pids": {"limit": 100}}))?;
    let dir = cgroup_dir_of(pid, "pids")?;
    for path in [dir.clone(), dir.join("cgroup.procs"), dir.join("tasks")] {
        let meta = fs::metadata(&path).ctx(|| format!("stat {}", path.display()))?;
        check_eq!(
            std::os::unix::fs::MetadataExt::uid(&meta),
            0,
            format!("owner of {}", path.display())
        );
    }
    Ok(())
}

const MIB: i64 = 1024 * 1024;

// "Values for memory specify the limit in bytes, or -1 for unlimited memory."
fn memory_unlimited(sb: &mut Sandbox) -> TestResult {
    require("memory")?;
    let (_, pid, _) = create_with_resources(sb, json!({"memory": {"limit": -1}}))?;
    let value = read_file(pid, "memory", "memory.limit_in_bytes", "memory.max")?;
    // v1 reports "unlimited" as the largest page-aligned value; v2 as "max".
    let unlimited = value == "max" || value.parse::<u64>().is_ok_and(|v| v >= 1 << 62);
    check!(unlimited, "memory limit {value} is not unlimited");
    Ok(())
}

// "limit (int64, OPTIONAL) - sets limit of memory usage in bytes"
fn memory_limit(sb: &mut Sandbox) -> TestResult {
    require("memory")?;
    let (_, pid, _) = create_with_resources(sb, json!({"memory": {"limit": 64 * MIB}}))?;
    check_eq!(
        read_file(pid, "memory", "memory.limit_in_bytes", "memory.max")?,
        (64 * MIB).to_string(),
        "memory limit"
    );
    Ok(())
}

// "reservation (int64, OPTIONAL) - sets soft limit of memory usage in bytes"
fn memory_reservation(sb: &mut Sandbox) -> TestResult {
    require("memory")?;
    let (_, pid, _) = create_with_resources(
        sb,
        json!({"memory": {"limit": 64 * MIB, "reservation": 32 * MIB}}),
    )?;
    check_eq!(
        read_file(pid, "memory", "memory.soft_limit_in_bytes", "memory.low")?,
        (32 * MIB).to_string(),
        "memory reservation"
    );
    Ok(())
}

// "swap (int64, OPTIONAL) - sets limit of memory+Swap usage"
fn memory_swap(sb: &mut Sandbox) -> TestResult {
    require("memory")?;
    if on_v1("memory")
        && !cgroup_mounts()["memory"]
            .join("memory.memsw.limit_in_bytes")
            .exists()
    {
        return skip("no swap accounting (memory.memsw.*) in this kernel");
    }
    let (_, pid, _) = create_with_resources(
        sb,
        json!({"memory": {"limit": 64 * MIB, "swap": 128 * MIB}}),
    )?;
    let want = if on_v1("memory") { 128 * MIB } else { 64 * MIB };
    check_eq!(
        read_file(
            pid,
            "memory",
            "memory.memsw.limit_in_bytes",
            "memory.swap.max"
        )?,
        want.to_string(),
        "swap limit"
    );
    Ok(())
}

// "swappiness (uint64, OPTIONAL) - sets swappiness parameter of vmscan"
fn memory_swappiness(sb: &mut Sandbox) -> TestResult {
    if !on_v1("memory") {
        return skip("memory.swappiness exists only on cgroup v1 (no v1 memory controller)");
    }
    let (_, pid, _) = create_with_resources(sb, json!({"memory": {"swappiness": 10}}))?;
    check_eq!(
        read_file(pid, "memory", "memory.swappiness", "")?,
        "10",
        "swappiness"
    );
    Ok(())
}

// "disableOOMKiller (bool, OPTIONAL) - enables or disables the OOM killer"
fn memory_disable_oom_killer(sb: &mut Sandbox) -> TestResult {
    if !on_v1("memory") {
        return skip("memory.oom_control exists only on cgroup v1 (no v1 memory controller)");
    }
    let (_, pid, _) = create_with_resources(
        sb,
        json!({"memory": {"limit": 64 * MIB, "disableOOMKiller": true}}),
    )?;
    let control = read_file(pid, "memory", "memory.oom_control", "")?;
    check!(
        control.contains("oom_kill_disable 1"),
        "memory.oom_control: {control}"
    );
    Ok(())
}

// "shares (uint64, OPTIONAL) - specifies a relative share of CPU time available to the tasks"
fn cpu_shares(sb: &mut Sandbox) -> TestResult {
    require("cpu")?;
    let (_, pid, _) = create_with_resources(sb, json!({"cpu": {"shares": 512}}))?;
    // On cgroup v2 shares map to cpu.weight = 1 + (shares - 2) * 9999 / 262142.
    let want = if on_v1("cpu") {
        "512".to_string()
    } else {
        (1 + (512 - 2) * 9999 / 262142).to_string()
    };
    check_eq!(
        read_file(pid, "cpu", "cpu.shares", "cpu.weight")?,
        want,
        "cpu shares"
    );
    Ok(())
}

// "quota (int64, OPTIONAL) ... period (uint64, OPTIONAL) - specifies a period of time in
// microseconds for how regularly a cgroup's access to CPU resources should be reallocated"
fn cpu_quota(sb: &mut Sandbox) -> TestResult {
    require("cpu")?;
    let (_, pid, _) =
        create_with_resources(sb, json!({"cpu": {"quota": 50000, "period": 100000}}))?;
    if on_v1("cpu") {
        check_eq!(
            read_file(pid, "cpu", "cpu.cfs_quota_us", "")?,
            "50000",
            "cfs quota"
        );
        check_eq!(
            read_file(pid, "cpu", "cpu.cfs_period_us", "")?,
            "100000",
            "cfs period"
        );
    } else {
        check_eq!(
            read_file(pid, "cpu", "", "cpu.max")?,
            "50000 100000",
            "cpu.max"
        );
    }
    Ok(())
}

// "burst (uint64, OPTIONAL) - specifies the maximum amount of accumulated time in microseconds
// for which tasks in a cgroup can run additionally for burst during one period"
fn cpu_burst(sb: &mut Sandbox) -> TestResult {
    require("cpu")?;
    let file = if on_v1("cpu") {
        "cpu.cfs_burst_us"
    } else {
        "cpu.max.burst"
    };
    let root = if on_v1("cpu") {
        cgroup_mounts()["cpu"].clone()
    } else {
        cgroup_mounts()[""].clone()
    };
    if !root.join(file).exists() {
        return skip(format!("no CPU burst support ({file}) in this kernel"));
    }
    let (_, pid, _) = create_with_resources(
        sb,
        json!({"cpu": {"quota": 50000, "period": 100000, "burst": 20000}}),
    )?;
    check_eq!(read_file(pid, "cpu", file, file)?, "20000", file);
    Ok(())
}

// "realtimeRuntime (int64, OPTIONAL) ... realtimePeriod (uint64, OPTIONAL)"
fn cpu_realtime(sb: &mut Sandbox) -> TestResult {
    if !on_v1("cpu") || !cgroup_mounts()["cpu"].join("cpu.rt_runtime_us").exists() {
        return skip("no real-time group scheduling (CONFIG_RT_GROUP_SCHED, cpu.rt_runtime_us)");
    }
    let (_, pid, _) = create_with_resources(
        sb,
        json!({"cpu": {"realtimeRuntime": 10000, "realtimePeriod": 1000000}}),
    )?;
    check_eq!(
        read_file(pid, "cpu", "cpu.rt_period_us", "")?,
        "1000000",
        "rt period"
    );
    check_eq!(
        read_file(pid, "cpu", "cpu.rt_runtime_us", "")?,
        "10000",
        "rt runtime"
    );
    Ok(())
}

// "cpus (string, OPTIONAL) - list of CPUs the container will run on. mems (string, OPTIONAL) -
// list of memory nodes the container will run on."
fn cpu_cpuset(sb: &mut Sandbox) -> TestResult {
    require("cpuset")?;
    let (_, pid, _) = create_with_resources(sb, json!({"cpu": {"cpus": "0", "mems": "0"}}))?;
    check_eq!(
        read_file(pid, "cpuset", "cpuset.cpus", "cpuset.cpus")?,
        "0",
        "cpuset.cpus"
    );
    check_eq!(
        read_file(pid, "cpuset", "cpuset.mems", "cpuset.mems")?,
        "0",
        "cpuset.mems"
    );
    Ok(())
}

// "limit (int64, REQUIRED) - specifies the maximum number of tasks in the cgroup"
fn pids_limit(sb: &mut Sandbox) -> TestResult {
    require("pids")?;
    let (_, pid, _) = create_with_resources(sb, json!({"pids": {"limit": 64}}))?;
    check_eq!(
        read_file(pid, "pids", "pids.max", "pids.max")?,
        "64",
        "pids.max"
    );
    Ok(())
}

// "weight (uint16, OPTIONAL) - specifies per-cgroup weight."
fn blkio_weight(sb: &mut Sandbox) -> TestResult {
    require("blkio").or_else(|_| require("io"))?;
    let file = if on_v1("blkio") {
        let root = &cgroup_mounts()["blkio"];
        ["blkio.weight", "blkio.bfq.weight"]
            .into_iter()
            .find(|f| root.join(f).exists())
    } else {
        Some("io.bfq.weight")
            .filter(|f| cgroup_mounts()[""].join(f).exists())
            .or(Some("io.weight"))
    };
    let Some(file) = file else {
        return skip("no blkio weight file (CFQ/BFQ I/O scheduler support) in this kernel");
    };
    let (_, pid, _) = create_with_resources(sb, json!({"blockIO": {"weight": 500}}))?;
    let text = read_file(pid, "blkio", file, file)?;
    check!(
        text.split_whitespace().any(|w| w == "500"),
        "{file}: {text}"
    );
    Ok(())
}

/// The first real block device's "major:minor".
fn some_block_device() -> Option<String> {
    let mut names: Vec<String> = fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .iter()
        .find(|n| !n.starts_with("loop") && !n.starts_with("zram") && !n.starts_with("ram"))
        .or(names.first())
        .and_then(|n| fs::read_to_string(format!("/sys/block/{n}/dev")).ok())
        .map(|s| s.trim().to_string())
}

/// A block device to throttle ("MAJ:MIN", major, minor), or a skip without blkio/io or
/// without a block device.
fn throttle_target() -> TestResult<(String, i64, i64)> {
    require("blkio").or_else(|_| require("io"))?;
    let Some(device) = some_block_device() else {
        return skip("no block device on this host");
    };
    let (major, minor) = device.split_once(':').unwrap_or(("0", "0"));
    let (major, minor): (i64, i64) = (major.parse().unwrap_or(0), minor.parse().unwrap_or(0));
    Ok((device, major, minor))
}

// "throttleReadBpsDevice ... (array of objects, OPTIONAL) - specify the list of devices which
// will be IO rate limited. major, minor (int64, REQUIRED) rate (uint64, REQUIRED)"
fn blkio_throttle(sb: &mut Sandbox) -> TestResult {
    let (device, major, minor) = throttle_target()?;
    let (_, pid, _) = create_with_resources(
        sb,
        json!({"blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}]}}),
    )?;
    let text = read_file(pid, "blkio", "blkio.throttle.read_bps_device", "io.max")?;
    let ok = text
        .lines()
        .any(|l| l.starts_with(&device) && (l.ends_with(" 1048576") || l.contains("rbps=1048576")));
    check!(ok, "no read limit of 1048576 for {device}: {text:?}");
    Ok(())
}

fn blkio_throttle_write_iops(sb: &mut Sandbox) -> TestResult {
    let (device, major, minor) = throttle_target()?;
    let (_, pid, _) = create_with_resources(
        sb,
        json!({"blockIO": {"throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 300}]}}),
    )?;
    let text = read_file(pid, "blkio", "blkio.throttle.write_iops_device", "io.max")?;
    let ok = text
        .lines()
        .any(|l| l.starts_with(&device) && (l.ends_with(" 300") || l.contains("wiops=300")));
    check!(ok, "no write IOPS limit of 300 for {device}: {text:?}");
    Ok(())
}

// "hugepageLimits (array of objects, OPTIONAL) ... pageSize (string, REQUIRED) limit (uint64, REQUIRED)"
fn hugepage_limits(sb: &mut Sandbox) -> TestResult {
    require("hugetlb")?;
    let (_, pid, _) = create_with_resources(
        sb,
        json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * 2 * MIB}]}),
    )?;
    let value = read_file(
        pid,
        "hugetlb",
        "hugetlb.2MB.limit_in_bytes",
        "hugetlb.2MB.max",
    )?;
    check_eq!(value, (8 * MIB).to_string(), "hugetlb 2MB limit");
    Ok(())
}

// "classID (uint32, OPTIONAL) - is the network class identifier the cgroup's network packets
// will be tagged with"
fn network_class_id(sb: &mut Sandbox) -> TestResult {
    if !on_v1("net_cls") {
        return skip("no net_cls cgroup controller on this host");
    }
    let (_, pid, _) = create_with_resources(sb, json!({"network": {"classID": 1048577}}))?;
    check_eq!(
        read_file(pid, "net_cls", "net_cls.classid", "")?,
        "1048577",
        "net_cls.classid"
    );
    Ok(())
}

// "priorities (array of objects, OPTIONAL) - specifies a list of objects of the priorities
// assigned to traffic originating from processes in the group"
fn network_priorities(sb: &mut Sandbox) -> TestResult {
    if !on_v1("net_prio") {
        return skip("no net_prio cgroup controller on this host");
    }
    let (_, pid, _) = create_with_resources(
        sb,
        json!({"network": {"priorities": [{"name": "lo", "priority": 7}]}}),
    )?;
    let map = read_file(pid, "net_prio", "net_prio.ifpriomap", "")?;
    check!(
        map.lines().any(|l| l == "lo 7"),
        "net_prio.ifpriomap: {map}"
    );
    Ok(())
}

// "rdma (object, OPTIONAL) represents the cgroup subsystem rdma."
fn rdma_limits(_sb: &mut Sandbox) -> TestResult {
    if !on_v1("rdma") && !on_v2("rdma") {
        return skip("no rdma cgroup controller on this host");
    }
    let devices = fs::read_dir("/sys/class/infiniband")
        .map(|d| d.count())
        .unwrap_or(0);
    if devices == 0 {
        return skip("no RDMA (infiniband) device on this host");
    }
    skip("RDMA limits are not checked by this suite yet")
}

// "unified (object, OPTIONAL) allows cgroup v2 parameters to be to be set and modified for the
// container. Each key in the map refers to a file in the cgroup unified hierarchy."
fn unified(sb: &mut Sandbox) -> TestResult {
    if !on_v2("pids") {
        return skip(
            "the pids controller is not on a cgroup v2 hierarchy here (v1 or hybrid host)",
        );
    }
    let (_, pid, _) = create_with_resources(sb, json!({"unified": {"pids.max": "42"}}))?;
    check_eq!(
        read_file(pid, "pids", "", "pids.max")?,
        "42",
        "pids.max set through unified"
    );
    Ok(())
}

// "The runtime MUST generate an error when the configuration refers to a cgroup controller that
// is not present or that cannot be enabled."
fn unified_unknown_controller(sb: &mut Sandbox) -> TestResult {
    sb.config["linux"]["cgroupsPath"] = json!(sb.new_cgroups_path());
    sb.config["linux"]["resources"] = json!({"unified": {"conformance.max": "1"}});
    sb.expect_create_error()
}

// "devices (array of objects, OPTIONAL) configures the device allowlist. The runtime MUST apply
// entries in the listed order."
fn device_allowlist(sb: &mut Sandbox) -> TestResult {
    // cgroup v2 has no devices controller file: the allowlist is an eBPF program there.
    let pure_v2 = cgroup_mounts().keys().all(String::is_empty) && cgroup_mounts().contains_key("");
    if !on_v1("devices") && !pure_v2 {
        return skip("no devices cgroup controller on this host");
    }
    sb.config["linux"]["devices"] = json!([
        {"path": "/dev/conformance-kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o600}
    ]);
    sb.config["linux"]["cgroupsPath"] = json!(sb.new_cgroups_path());
    sb.config["linux"]["resources"] = json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "r"}
    ]});
    let report = sb.run_checker(&["open:/dev/conformance-kmsg", "stat:/dev/conformance-kmsg"])?;
    let stat = report.get("stat:/dev/conformance-kmsg")?;
    check!(
        stat.starts_with("type=c"),
        "/dev/conformance-kmsg was not created: {stat}"
    );
    check_eq!(
        report.get("open:/dev/conformance-kmsg")?,
        "error=EPERM",
        "reading a device whose read access the last rule denies"
    );
    Ok(())
}
