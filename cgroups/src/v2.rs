//! Writing OCI resources into cgroup v2 control files, with the documented
//! v1-to-v2 conversions.

use crate::convert::{
    blkio_weight_to_io_weight, cpu_max, cpu_shares_to_weight, limit_to_v2, memory_swap_to_v2,
};
use crate::devices::{device_program, effective_rules};
use crate::error::{Error, Result};
use crate::fsutil::{read_file, read_u64, write_file};
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory,
};
use std::path::Path;

fn unsupported(resource: &str, reason: &'static str) -> Error {
    Error::Unsupported {
        resource: resource.to_owned(),
        reason,
    }
}

/// memory.max, memory.low, memory.swap.max (swap minus memory).
/// swappiness and disableOOMKiller have no v2 file: asking for them fails.
pub fn set_memory(dir: &Path, memory: &LinuxMemory) -> Result<()> {
    if memory.swappiness().is_some() {
        return Err(unsupported(
            "memory.swappiness",
            "cgroup v2 has no per-cgroup swappiness",
        ));
    }
    if memory.disable_oom_killer() == Some(true) {
        return Err(unsupported(
            "memory.disableOOMKiller",
            "cgroup v2 cannot disable the OOM killer",
        ));
    }
    let limit = memory.limit().filter(|&l| l != 0);
    let swap = memory_swap_to_v2(memory.swap().filter(|&s| s != 0), limit)?;
    if let (Some(limit), true) = (limit, memory.check_before_update() == Some(true)) {
        crate::v1::check_usage(limit, read_u64(&dir.join("memory.current"))?)?;
    }
    // Swap first: it cannot be refused for being below memory.max.
    if let Some(swap) = swap {
        let path = dir.join("memory.swap.max");
        if !path.exists() {
            return Err(unsupported("memory.swap", "the kernel has no swap control"));
        }
        write_file(&path, &limit_to_v2(swap))?;
    }
    if let Some(limit) = limit {
        write_file(&dir.join("memory.max"), &limit_to_v2(limit))?;
    }
    if let Some(reservation) = memory.reservation().filter(|&r| r != 0) {
        write_file(&dir.join("memory.low"), &limit_to_v2(reservation))?;
    }
    Ok(())
}

/// cpu.weight, cpu.max, cpu.max.burst, cpu.idle; realtime is refused.
pub fn set_cpu(dir: &Path, cpu: &LinuxCpu) -> Result<()> {
    let realtime = cpu.realtime_runtime().is_some_and(|r| r != 0)
        || cpu.realtime_period().is_some_and(|p| p != 0);
    if realtime {
        return Err(unsupported(
            "cpu.realtimeRuntime/realtimePeriod",
            "cgroup v2 has no realtime CPU controller",
        ));
    }
    if let Some(weight) = cpu.shares().and_then(cpu_shares_to_weight) {
        write_file(&dir.join("cpu.weight"), &weight.to_string())?;
    }
    let quota = cpu.quota().filter(|&q| q != 0);
    let period = cpu.period().filter(|&p| p != 0);
    let cpu_max_path = dir.join("cpu.max");
    let current = if quota.is_some() || period.is_some() {
        Some(read_file(&cpu_max_path)?)
    } else {
        None
    };
    if let Some(value) = cpu_max(quota, period, current.as_deref()) {
        write_file(&cpu_max_path, &value)?;
    }
    if let Some(burst) = cpu.burst() {
        write_file(&dir.join("cpu.max.burst"), &burst.to_string())?;
    }
    if let Some(idle) = cpu.idle() {
        write_file(&dir.join("cpu.idle"), &idle.to_string())?;
    }
    Ok(())
}

/// pids.max.
pub fn set_pids(dir: &Path, limit: i64) -> Result<()> {
    write_file(&dir.join("pids.max"), &crate::convert::pids_limit(limit))
}

/// io.bfq.weight (raw blkio weight) or io.weight (converted), and io.max. What cannot be
/// written is refused before the first write: `update` must not be left half applied.
pub fn set_io(dir: &Path, blkio: &LinuxBlockIo) -> Result<()> {
    let devices = blkio.weight_device().as_deref().unwrap_or_default();
    let wants_leaf = blkio.leaf_weight().is_some_and(|w| w != 0)
        || devices.iter().any(|d| d.leaf_weight().is_some());
    if wants_leaf {
        return Err(unsupported(
            "blockIO.leafWeight",
            "cgroup v2 has no leaf weights",
        ));
    }
    let bfq = dir.join("io.bfq.weight");
    if devices.iter().any(|d| d.weight().is_some()) && !bfq.exists() {
        return Err(unsupported(
            "blockIO.weightDevice",
            "per-device weights need the BFQ scheduler (io.bfq.weight)",
        ));
    }
    if let Some(weight) = blkio.weight().filter(|&w| w != 0) {
        if bfq.exists() {
            write_file(&bfq, &weight.to_string())?;
        } else if let Some(converted) = blkio_weight_to_io_weight(weight) {
            let io_weight = dir.join("io.weight");
            if !io_weight.exists() {
                return Err(unsupported(
                    "blockIO.weight",
                    "no io.weight nor io.bfq.weight (no weight-aware I/O scheduler)",
                ));
            }
            write_file(&io_weight, &format!("default {converted}"))?;
        }
    }
    for device in devices {
        if let Some(weight) = device.weight() {
            // BFQ takes "MAJ:MIN WEIGHT" lines in the same file as the default weight.
            let line = format!("{}:{} {weight}", device.major(), device.minor());
            write_file(&bfq, &line)?;
        }
    }
    let throttles = [
        ("rbps", blkio.throttle_read_bps_device()),
        ("wbps", blkio.throttle_write_bps_device()),
        ("riops", blkio.throttle_read_iops_device()),
        ("wiops", blkio.throttle_write_iops_device()),
    ];
    for (key, devices) in throttles {
        for device in devices.iter().flatten() {
            // 0 means "no limit" in the v1 files; v2 spells it max.
            let rate = if device.rate() == 0 {
                "max".to_owned()
            } else {
                device.rate().to_string()
            };
            let line = format!("{}:{} {key}={rate}", device.major(), device.minor());
            write_file(&dir.join("io.max"), &line)?;
        }
    }
    Ok(())
}

/// hugetlb.<size>.max.
pub fn set_hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for limit in limits {
        crate::convert::check_hugepage_size(limit.page_size())?;
        let file = format!("hugetlb.{}.max", limit.page_size());
        write_file(&dir.join(file), &limit_to_v2(limit.limit()))?;
    }
    Ok(())
}

/// Checks a raw `unified` key: a plain file name of the cgroup directory.
pub fn check_unified_key(key: &str) -> Result<()> {
    let valid =
        !key.is_empty() && !key.contains('/') && key != "." && key != ".." && key.contains('.');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidResource {
            resource: "unified",
            reason: format!("{key:?} is not a cgroup v2 file name"),
        })
    }
}

/// The controller a unified key belongs to ("memory.high" -> "memory").
pub fn unified_key_controller(key: &str) -> &str {
    key.split('.').next().unwrap_or(key)
}

/// Writes one raw `unified` key; a missing file is reported as such.
pub fn set_unified(dir: &Path, key: &str, value: &str) -> Result<()> {
    check_unified_key(key)?;
    let path = dir.join(key);
    if !path.exists() {
        return Err(Error::Unsupported {
            resource: format!("unified key {key}"),
            reason: "no such file in the cgroup (controller not enabled?)",
        });
    }
    write_file(&path, value)
}

/// Generates the device program for the config's rules plus the defaults
/// and makes it the cgroup's only device program.
pub fn set_devices(dir: &Path, config: &[LinuxDeviceCgroup]) -> Result<()> {
    let rules = effective_rules(config)?;
    let program = device_program(&rules);
    let cgroup = std::fs::File::open(dir).map_err(|e| Error::io("open", dir, e))?;
    crate::bpf::replace_device_program(std::os::fd::AsFd::as_fd(&cgroup), &program)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::FakeCgroup;
    use oci_spec::runtime::{LinuxBlockIoBuilder, LinuxWeightDeviceBuilder};

    fn weights(leaf: Option<u16>) -> LinuxBlockIo {
        let mut device = LinuxWeightDeviceBuilder::default()
            .major(8)
            .minor(0)
            .weight(500u16);
        if let Some(leaf) = leaf {
            device = device.leaf_weight(leaf);
        }
        LinuxBlockIoBuilder::default()
            .weight(300u16)
            .weight_device(vec![device.build().unwrap()])
            .build()
            .unwrap()
    }

    #[test]
    fn device_weights_are_lines_of_io_bfq_weight() {
        let cg = FakeCgroup::new("v2-bfq", &["io.bfq.weight", "io.weight"]);
        set_io(&cg.0, &weights(None)).unwrap();
        // The default weight first, then the device line (each write from offset 0 here).
        assert_eq!(cg.read("io.bfq.weight"), "8:0 500");
        assert_eq!(cg.read("io.weight"), "");
    }

    #[test]
    fn device_weights_without_bfq_are_refused_before_any_write() {
        let cg = FakeCgroup::new("v2-nobfq", &["io.weight"]);
        let err = set_io(&cg.0, &weights(None)).unwrap_err();
        assert!(err.to_string().contains("weightDevice"), "{err}");
        assert_eq!(cg.read("io.weight"), "");
    }

    #[test]
    fn a_device_leaf_weight_is_refused_too() {
        let cg = FakeCgroup::new("v2-leaf", &["io.bfq.weight"]);
        let err = set_io(&cg.0, &weights(Some(200))).unwrap_err();
        assert!(err.to_string().contains("leafWeight"), "{err}");
        assert_eq!(cg.read("io.bfq.weight"), "");
    }

    #[test]
    fn unified_keys_are_plain_file_names() {
        assert!(check_unified_key("memory.high").is_ok());
        assert!(check_unified_key("../memory.high").is_err());
        assert!(check_unified_key("cgroup").is_err());
        assert!(check_unified_key("").is_err());
        assert_eq!(unified_key_controller("memory.high"), "memory");
        assert_eq!(unified_key_controller("cgroup.freeze"), "cgroup");
    }
}
