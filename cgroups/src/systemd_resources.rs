//! The container's limits as systemd unit properties.
//!
//! berth writes every limit through cgroupfs itself, but systemd re-applies
//! a unit's own cgroup settings whenever it reloads (`systemctl
//! daemon-reload`) or a property changes, and for what the unit does not
//! say it writes its defaults: `cpu.weight` 100, `cpu.max` "max", `io.weight`
//! 100 on v2, `cpu.shares` 1024 and the blkio weight 500 on v1. Passing the
//! limits as properties makes systemd's re-apply write the container's
//! values instead.
//!
//! The names depend on how systemd drives the controllers: on a unified
//! host the v2 names (`CPUWeight`, `IOWeight`, `AllowedCPUs`, ...); on a
//! legacy or hybrid one the v1 names (`CPUShares`, `BlockIOWeight`, ...),
//! and nothing for what systemd leaves alone there (cpuset, memory.low,
//! swap, IOPS limits: berth's own writes are then the only ones).

use crate::convert::{
    blkio_weight_to_io_weight, cpu_shares_to_weight, list_bitmask, memory_swap_to_v2,
};
use crate::dbus::Value;
use crate::fsutil::read_file;
use crate::systemd::UnitLayout;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};
use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// systemd's "unlimited" (`CGROUP_LIMIT_MAX`, `USEC_INFINITY`).
const INFINITY: u64 = u64::MAX;
/// The CFS period systemd and the kernel assume when none is given.
const DEFAULT_PERIOD_USEC: u64 = 100_000;
/// systemd keeps a CPU quota as a percentage: round up to whole ones.
const QUOTA_GRANULARITY_USEC: u64 = 10_000;
/// The CPUWeight that means cpu.idle 1 (systemd 252 writes cpu.idle 0 for
/// any other weight).
const IDLE_WEIGHT: u64 = 0;
/// The highest CPU or memory node a cpuset mask is built for.
const MAX_CPUSET_INDEX: u32 = 1 << 16;

/// The properties, and the limits systemd is not told about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceProperties {
    pub properties: Vec<Value>,
    pub warnings: Vec<String>,
}

impl ResourceProperties {
    fn push(&mut self, name: &str, value: Value) {
        self.properties.push(Value::property(name, value));
    }
}

/// Finds the node systemd should be given for a block device (it takes
/// paths, not numbers).
pub trait BlockNodes {
    fn node(&self, major: i64, minor: i64) -> Option<String>;
}

/// The host's /dev, found through sysfs.
pub struct HostBlockNodes;

impl BlockNodes for HostBlockNodes {
    /// `/dev/NAME` from the device's uevent (udev's /dev/block/M:m
    /// links may not exist), checked to be that very block device.
    fn node(&self, major: i64, minor: i64) -> Option<String> {
        let uevent =
            read_file(Path::new(&format!("/sys/dev/block/{major}:{minor}/uevent"))).ok()?;
        let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
        if name.split('/').any(|c| c == "..") {
            return None;
        }
        let path = format!("/dev/{name}");
        let meta = std::fs::metadata(&path).ok()?;
        let rdev = meta.rdev();
        let same = meta.file_type().is_block_device()
            && i64::from(rustix::fs::major(rdev)) == major
            && i64::from(rustix::fs::minor(rdev)) == minor;
        same.then_some(path)
    }
}

/// Every limit of `resources` systemd can keep, for a unit on `layout`.
pub fn resource_properties(
    resources: &LinuxResources,
    layout: UnitLayout,
    nodes: &dyn BlockNodes,
) -> ResourceProperties {
    let mut out = ResourceProperties::default();
    if let Some(memory) = resources.memory() {
        memory_properties(memory, layout, &mut out);
    }
    if let Some(cpu) = resources.cpu() {
        cpu_properties(cpu, layout, &mut out);
    }
    let pids = resources.pids().as_ref().map(|p| p.limit());
    if let Some(max) = pids.and_then(limit_value) {
        out.push("TasksMax", Value::Uint64(max));
    }
    if let Some(blkio) = resources.block_io() {
        io_properties(blkio, layout, nodes, &mut out);
    }
    if let (Some(unified), UnitLayout::Unified) = (resources.unified(), layout) {
        unified_properties(unified, &mut out);
    }
    out
}

/// An OCI limit as a property value: -1 is unlimited, 0 or less "unset".
fn limit_value(limit: i64) -> Option<u64> {
    match limit {
        -1 => Some(INFINITY),
        n if n > 0 => u64::try_from(n).ok(),
        _ => None,
    }
}

/// MemoryMax everywhere (systemd writes memory.limit_in_bytes from it on
/// v1); MemoryLow and MemorySwapMax only on v2, where they exist.
fn memory_properties(memory: &LinuxMemory, layout: UnitLayout, out: &mut ResourceProperties) {
    let limit = memory.limit().filter(|&l| l != 0);
    if let Some(max) = limit.and_then(limit_value) {
        out.push("MemoryMax", Value::Uint64(max));
    }
    if layout == UnitLayout::Legacy {
        return;
    }
    if let Some(low) = memory.reservation().and_then(limit_value) {
        out.push("MemoryLow", Value::Uint64(low));
    }
    // An invalid pair is refused by the cgroupfs write with its reason.
    if let Ok(Some(swap)) = memory_swap_to_v2(memory.swap().filter(|&s| s != 0), limit) {
        if let Some(max) = limit_value(swap).or((swap == 0).then_some(0)) {
            out.push("MemorySwapMax", Value::Uint64(max));
        }
    }
}

fn cpu_properties(cpu: &LinuxCpu, layout: UnitLayout, out: &mut ResourceProperties) {
    if let Some(shares) = cpu.shares().filter(|&s| s != 0) {
        match layout {
            UnitLayout::Unified => {
                if let Some(weight) = cpu_shares_to_weight(shares) {
                    out.push("CPUWeight", Value::Uint64(weight));
                }
            }
            // systemd's range for CPUShares, the kernel's too.
            UnitLayout::Legacy => out.push("CPUShares", Value::Uint64(shares.clamp(2, 262_144))),
        }
    }
    let quota = cpu.quota().filter(|&q| q != 0);
    let period = cpu.period().filter(|&p| p != 0);
    quota_properties(quota, period, out);
    if layout == UnitLayout::Legacy {
        return;
    }
    if cpu.idle() == Some(1) {
        out.push("CPUWeight", Value::Uint64(IDLE_WEIGHT));
    }
    if let Some(cpus) = cpu.cpus().as_deref().filter(|c| !c.is_empty()) {
        cpuset_property("AllowedCPUs", cpus, out);
    }
    if let Some(mems) = cpu.mems().as_deref().filter(|m| !m.is_empty()) {
        cpuset_property("AllowedMemoryNodes", mems, out);
    }
}

/// CPUQuotaPerSecUSec (the quota per second of wall time) and
/// CPUQuotaPeriodUSec. A quota of -1, or a period alone, is unlimited.
fn quota_properties(quota: Option<i64>, period: Option<u64>, out: &mut ResourceProperties) {
    if quota.is_none() && period.is_none() {
        return;
    }
    if let Some(period) = period {
        out.push("CPUQuotaPeriodUSec", Value::Uint64(period));
    }
    let per_sec = match quota {
        Some(q) if q > 0 => quota_per_sec(q.unsigned_abs(), period.unwrap_or(DEFAULT_PERIOD_USEC)),
        _ => INFINITY,
    };
    out.push("CPUQuotaPerSecUSec", Value::Uint64(per_sec));
}

/// `quota/period` of a second, rounded up to a whole percent: systemd
/// keeps the value as a percentage across a reload, and rounding up never
/// gives the container less than asked (berth's own write is exact).
fn quota_per_sec(quota: u64, period: u64) -> u64 {
    let per_sec = quota.saturating_mul(1_000_000) / period.max(1);
    per_sec
        .div_ceil(QUOTA_GRANULARITY_USEC)
        .saturating_mul(QUOTA_GRANULARITY_USEC)
        .max(QUOTA_GRANULARITY_USEC)
}

fn cpuset_property(name: &str, list: &str, out: &mut ResourceProperties) {
    match cpuset_mask(list) {
        Some(mask) => out.push(
            name,
            Value::Array {
                elem: "y".into(),
                items: mask.into_iter().map(Value::Byte).collect(),
            },
        ),
        // The cgroupfs write refuses it with the kernel's reason.
        None => out
            .warnings
            .push(format!("{name}: {list:?} is no CPU or node list")),
    }
}

/// A cpuset list ("0-3,8") as systemd's bitmask: bit `n % 8` of byte
/// `n / 8` for each member `n`.
pub fn cpuset_mask(list: &str) -> Option<Vec<u8>> {
    list_bitmask(list, MAX_CPUSET_INDEX)
}

/// Weights and throttles: the v2 `IO*` family or the v1 `BlockIO*` one.
/// v1 has no IOPS properties and no property knows leaf weights.
fn io_properties(
    blkio: &LinuxBlockIo,
    layout: UnitLayout,
    nodes: &dyn BlockNodes,
    out: &mut ResourceProperties,
) {
    let weight_of = |w: u16| match layout {
        UnitLayout::Unified => blkio_weight_to_io_weight(w),
        UnitLayout::Legacy => Some(u64::from(w.clamp(10, 1000))),
    };
    let (weight, device_weight, read_bps, write_bps) = match layout {
        UnitLayout::Unified => (
            "IOWeight",
            "IODeviceWeight",
            "IOReadBandwidthMax",
            "IOWriteBandwidthMax",
        ),
        UnitLayout::Legacy => (
            "BlockIOWeight",
            "BlockIODeviceWeight",
            "BlockIOReadBandwidth",
            "BlockIOWriteBandwidth",
        ),
    };
    if let Some(w) = blkio.weight().filter(|&w| w != 0).and_then(weight_of) {
        out.push(weight, Value::Uint64(w));
    }
    let weights: Vec<(i64, i64, u64)> = blkio
        .weight_device()
        .iter()
        .flatten()
        .filter_map(|d| Some((d.major(), d.minor(), d.weight().and_then(weight_of)?)))
        .collect();
    device_list(device_weight, &weights, nodes, out);
    let rates =
        |list: &Option<Vec<oci_spec::runtime::LinuxThrottleDevice>>| -> Vec<(i64, i64, u64)> {
            list.iter()
                .flatten()
                // 0 lifts the limit (v1's files; v2 writes "max").
                .map(|d| {
                    (
                        d.major(),
                        d.minor(),
                        if d.rate() == 0 { INFINITY } else { d.rate() },
                    )
                })
                .collect()
        };
    device_list(
        read_bps,
        &rates(blkio.throttle_read_bps_device()),
        nodes,
        out,
    );
    device_list(
        write_bps,
        &rates(blkio.throttle_write_bps_device()),
        nodes,
        out,
    );
    // v1 has no IOPS properties; systemd leaves those files alone there.
    if layout == UnitLayout::Unified {
        device_list(
            "IOReadIOPSMax",
            &rates(blkio.throttle_read_iops_device()),
            nodes,
            out,
        );
        device_list(
            "IOWriteIOPSMax",
            &rates(blkio.throttle_write_iops_device()),
            nodes,
            out,
        );
    }
}

/// An `a(st)` of (device node, value); a device without a node under /dev
/// is left to berth's own write, with a warning.
fn device_list(
    name: &str,
    entries: &[(i64, i64, u64)],
    nodes: &dyn BlockNodes,
    out: &mut ResourceProperties,
) {
    if entries.is_empty() {
        return;
    }
    let mut items = Vec::new();
    for &(major, minor, value) in entries {
        match nodes.node(major, minor) {
            Some(path) => items.push(Value::Struct(vec![Value::Str(path), Value::Uint64(value)])),
            None => out.warnings.push(format!(
                "{name}: block device {major}:{minor} has no node in /dev, \
                 systemd is not told about its limit"
            )),
        }
    }
    if !items.is_empty() {
        out.push(
            name,
            Value::Array {
                elem: "(st)".into(),
                items,
            },
        );
    }
}

/// The `unified` keys systemd has properties for (after the typed limits,
/// so they win as the files do); the rest is berth's alone.
fn unified_properties(unified: &HashMap<String, String>, out: &mut ResourceProperties) {
    let mut keys: Vec<&String> = unified.keys().collect();
    keys.sort();
    for key in keys {
        let value = unified[key].trim();
        let name = match key.as_str() {
            "memory.min" => "MemoryMin",
            "memory.low" => "MemoryLow",
            "memory.high" => "MemoryHigh",
            "memory.max" => "MemoryMax",
            "memory.swap.max" => "MemorySwapMax",
            "pids.max" => "TasksMax",
            "cpu.weight" => "CPUWeight",
            "cpu.idle" => {
                if value == "1" {
                    out.push("CPUWeight", Value::Uint64(IDLE_WEIGHT));
                }
                continue;
            }
            "cpuset.cpus" => {
                cpuset_property("AllowedCPUs", value, out);
                continue;
            }
            "cpuset.mems" => {
                cpuset_property("AllowedMemoryNodes", value, out);
                continue;
            }
            "cpu.max" => {
                unified_cpu_max(value, out);
                continue;
            }
            _ => continue,
        };
        match unified_number(value) {
            Some(n) => out.push(name, Value::Uint64(n)),
            None => out
                .warnings
                .push(format!("unified {key}: {value:?} is not passed to systemd")),
        }
    }
}

/// A v2 file's number, "max" being unlimited.
fn unified_number(value: &str) -> Option<u64> {
    match value {
        "max" => Some(INFINITY),
        n => n.parse().ok(),
    }
}

/// cpu.max: "QUOTA [PERIOD]" or "max [PERIOD]".
fn unified_cpu_max(value: &str, out: &mut ResourceProperties) {
    let mut fields = value.split_whitespace();
    let quota = match fields.next() {
        Some("max") => Some(-1),
        Some(q) => q.parse::<i64>().ok().filter(|&q| q > 0),
        None => None,
    };
    let period = match fields.next() {
        Some(p) => p.parse::<u64>().ok().filter(|&p| p > 0),
        None => Some(DEFAULT_PERIOD_USEC),
    };
    match (quota, period) {
        (Some(q), Some(p)) => quota_properties(Some(q), Some(p), out),
        _ => out.warnings.push(format!(
            "unified cpu.max: {value:?} is not passed to systemd"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeNodes;

    impl BlockNodes for FakeNodes {
        fn node(&self, major: i64, minor: i64) -> Option<String> {
            (major == 8).then(|| format!("/dev/sd{}", char::from(b'a' + minor as u8 / 16)))
        }
    }

    fn resources(json: serde_json::Value) -> LinuxResources {
        serde_json::from_value(json).unwrap()
    }

    fn props(json: serde_json::Value, layout: UnitLayout) -> ResourceProperties {
        resource_properties(&resources(json), layout, &FakeNodes)
    }

    fn find<'a>(out: &'a ResourceProperties, name: &str) -> Option<&'a Value> {
        out.properties.iter().find_map(|p| match p {
            Value::Struct(f) if f[0].as_str() == Some(name) => match &f[1] {
                Value::Variant(v) => Some(v.as_ref()),
                _ => None,
            },
            _ => None,
        })
    }

    fn names(out: &ResourceProperties) -> Vec<&str> {
        out.properties
            .iter()
            .filter_map(|p| match p {
                Value::Struct(f) => f[0].as_str(),
                _ => None,
            })
            .collect()
    }

    fn devices(items: &[(&str, u64)]) -> Value {
        Value::Array {
            elem: "(st)".into(),
            items: items
                .iter()
                .map(|(p, v)| Value::Struct(vec![Value::Str((*p).into()), Value::Uint64(*v)]))
                .collect(),
        }
    }

    #[test]
    fn cpu_limits_use_the_layouts_names() {
        let json = serde_json::json!({"cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "1", "mems": "0"}});
        let v2 = props(json.clone(), UnitLayout::Unified);
        assert_eq!(
            names(&v2),
            [
                "CPUWeight",
                "CPUQuotaPeriodUSec",
                "CPUQuotaPerSecUSec",
                "AllowedCPUs",
                "AllowedMemoryNodes"
            ]
        );
        // 1 + (512-2)*9999/262142
        assert_eq!(find(&v2, "CPUWeight"), Some(&Value::Uint64(20)));
        assert_eq!(
            find(&v2, "CPUQuotaPerSecUSec"),
            Some(&Value::Uint64(500_000))
        );
        assert_eq!(
            find(&v2, "CPUQuotaPeriodUSec"),
            Some(&Value::Uint64(100_000))
        );
        assert_eq!(
            find(&v2, "AllowedCPUs"),
            Some(&Value::Array {
                elem: "y".into(),
                items: vec![Value::Byte(0b10)]
            })
        );
        let v1 = props(json, UnitLayout::Legacy);
        assert_eq!(
            names(&v1),
            ["CPUShares", "CPUQuotaPeriodUSec", "CPUQuotaPerSecUSec"]
        );
        assert_eq!(find(&v1, "CPUShares"), Some(&Value::Uint64(512)));
    }

    #[test]
    fn idle_is_the_zero_weight_on_v2() {
        let json = serde_json::json!({"cpu": {"shares": 512, "idle": 1}});
        let v2 = props(json.clone(), UnitLayout::Unified);
        // The idle weight comes last, so it is the one systemd keeps.
        assert_eq!(names(&v2), ["CPUWeight", "CPUWeight"]);
        assert_eq!(
            v2.properties[1],
            Value::property("CPUWeight", Value::Uint64(0))
        );
        assert_eq!(names(&props(json, UnitLayout::Legacy)), ["CPUShares"]);
        let raw = props(
            serde_json::json!({"unified": {"cpu.idle": "1"}}),
            UnitLayout::Unified,
        );
        assert_eq!(
            raw.properties,
            [Value::property("CPUWeight", Value::Uint64(0))]
        );
        let busy = props(serde_json::json!({"cpu": {"idle": 0}}), UnitLayout::Unified);
        assert!(busy.properties.is_empty());
    }

    #[test]
    fn quotas_round_up_to_whole_percents() {
        assert_eq!(quota_per_sec(50_000, 100_000), 500_000);
        assert_eq!(quota_per_sec(33_333, 100_000), 340_000);
        assert_eq!(quota_per_sec(1, 1_000_000), 10_000);
        let unlimited = props(
            serde_json::json!({"cpu": {"quota": -1}}),
            UnitLayout::Unified,
        );
        assert_eq!(names(&unlimited), ["CPUQuotaPerSecUSec"]);
        assert_eq!(
            find(&unlimited, "CPUQuotaPerSecUSec"),
            Some(&Value::Uint64(u64::MAX))
        );
        let default_period = props(
            serde_json::json!({"cpu": {"quota": 20000}}),
            UnitLayout::Unified,
        );
        assert_eq!(
            find(&default_period, "CPUQuotaPerSecUSec"),
            Some(&Value::Uint64(200_000))
        );
        let period_alone = props(
            serde_json::json!({"cpu": {"period": 50000}}),
            UnitLayout::Legacy,
        );
        assert_eq!(
            find(&period_alone, "CPUQuotaPerSecUSec"),
            Some(&Value::Uint64(u64::MAX))
        );
    }

    #[test]
    fn cpuset_lists_become_bitmasks() {
        assert_eq!(cpuset_mask("0"), Some(vec![1]));
        assert_eq!(cpuset_mask("0-3,8"), Some(vec![0x0f, 0x01]));
        assert_eq!(cpuset_mask("9,1-2"), Some(vec![0b110, 0b10]));
        assert_eq!(cpuset_mask("3-1"), None);
        assert_eq!(cpuset_mask("a"), None);
        assert_eq!(cpuset_mask("70000"), None);
        let bad = props(
            serde_json::json!({"cpu": {"cpus": "x"}}),
            UnitLayout::Unified,
        );
        assert!(bad.properties.is_empty());
        assert_eq!(bad.warnings.len(), 1);
    }

    #[test]
    fn memory_properties_by_layout() {
        let json = serde_json::json!({"memory": {"limit": 1048576, "reservation": 524288, "swap": 3145728}, "pids": {"limit": -1}});
        let v2 = props(json.clone(), UnitLayout::Unified);
        assert_eq!(
            names(&v2),
            ["MemoryMax", "MemoryLow", "MemorySwapMax", "TasksMax"]
        );
        // memory+swap 3 MiB over 1 MiB of memory: 2 MiB of swap.
        assert_eq!(find(&v2, "MemorySwapMax"), Some(&Value::Uint64(2 << 20)));
        assert_eq!(find(&v2, "TasksMax"), Some(&Value::Uint64(u64::MAX)));
        let v1 = props(json, UnitLayout::Legacy);
        assert_eq!(names(&v1), ["MemoryMax", "TasksMax"]);
        let no_swap = props(
            serde_json::json!({"memory": {"limit": 1048576, "swap": 1048576}}),
            UnitLayout::Unified,
        );
        assert_eq!(find(&no_swap, "MemorySwapMax"), Some(&Value::Uint64(0)));
    }

    #[test]
    fn io_limits_name_device_nodes() {
        let json = serde_json::json!({"blockIO": {
            "weight": 300,
            "weightDevice": [{"major": 8, "minor": 16, "weight": 500}],
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
            "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 0}],
            "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}, {"major": 253, "minor": 0, "rate": 5}]
        }});
        let v2 = props(json.clone(), UnitLayout::Unified);
        assert_eq!(
            names(&v2),
            [
                "IOWeight",
                "IODeviceWeight",
                "IOReadBandwidthMax",
                "IOWriteBandwidthMax",
                "IOReadIOPSMax"
            ]
        );
        assert_eq!(find(&v2, "IOWeight"), Some(&Value::Uint64(2930)));
        assert_eq!(
            find(&v2, "IODeviceWeight"),
            Some(&devices(&[("/dev/sdb", 4950)]))
        );
        assert_eq!(
            find(&v2, "IOReadBandwidthMax"),
            Some(&devices(&[("/dev/sda", 1 << 20)]))
        );
        assert_eq!(
            find(&v2, "IOWriteBandwidthMax"),
            Some(&devices(&[("/dev/sda", u64::MAX)]))
        );
        assert_eq!(
            find(&v2, "IOReadIOPSMax"),
            Some(&devices(&[("/dev/sda", 100)]))
        );
        // 253:0 has no node: its limit stays berth's.
        assert_eq!(v2.warnings.len(), 1, "{:?}", v2.warnings);
        assert!(v2.warnings[0].contains("253:0"));

        let v1 = props(json, UnitLayout::Legacy);
        assert_eq!(
            names(&v1),
            [
                "BlockIOWeight",
                "BlockIODeviceWeight",
                "BlockIOReadBandwidth",
                "BlockIOWriteBandwidth"
            ]
        );
        assert_eq!(find(&v1, "BlockIOWeight"), Some(&Value::Uint64(300)));
        assert_eq!(
            find(&v1, "BlockIODeviceWeight"),
            Some(&devices(&[("/dev/sdb", 500)]))
        );
        // No IOPS on v1: 253:0 is never looked up.
        assert!(v1.warnings.is_empty(), "{:?}", v1.warnings);
    }

    #[test]
    fn unified_keys_systemd_knows_become_properties() {
        let json = serde_json::json!({
            "memory": {"limit": 1048576},
            "unified": {"memory.high": "max", "memory.max": "2097152", "cpu.max": "25000 50000",
                        "cpuset.cpus": "0-1", "io.latency": "x", "cpu.weight": "oops"}
        });
        let v2 = props(json.clone(), UnitLayout::Unified);
        assert_eq!(
            names(&v2),
            [
                "MemoryMax",
                "CPUQuotaPeriodUSec",
                "CPUQuotaPerSecUSec",
                "AllowedCPUs",
                "MemoryHigh",
                "MemoryMax"
            ]
        );
        assert_eq!(find(&v2, "MemoryHigh"), Some(&Value::Uint64(u64::MAX)));
        assert_eq!(
            find(&v2, "CPUQuotaPerSecUSec"),
            Some(&Value::Uint64(500_000))
        );
        assert!(v2.warnings.iter().any(|w| w.contains("cpu.weight")));
        // The later MemoryMax (the unified one) is the one systemd keeps.
        let last = v2.properties.iter().rev().find_map(|p| match p {
            Value::Struct(f) if f[0].as_str() == Some("MemoryMax") => Some(f[1].clone()),
            _ => None,
        });
        assert_eq!(last, Some(Value::Variant(Box::new(Value::Uint64(2 << 20)))));
        assert_eq!(names(&props(json, UnitLayout::Legacy)), ["MemoryMax"]);
    }

    #[test]
    fn host_nodes_are_checked_against_their_numbers() {
        // /dev/ram0 or the like exists on few hosts; the lookup must at
        // least refuse numbers that are no block device.
        assert_eq!(HostBlockNodes.node(0, 0), None);
        assert_eq!(HostBlockNodes.node(-1, 5), None);
    }
}
