//! Writing OCI resources into cgroup v1 control files.

use crate::devices::{effective_rules, DeviceRule};
use crate::error::{Error, Result};
use crate::fsutil::{read_u64, write_file};
use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxNetwork,
    LinuxRdma, LinuxThrottleDevice,
};
use std::collections::HashMap;
use std::path::Path;

/// memory.*: limit, memsw (ordered so the kernel never sees memsw < limit),
/// reservation, swappiness, kernelTCP and the OOM killer switch.
/// `kernel` (kmem) is ignored, as runc does: kernels since 5.16 refuse it.
pub fn set_memory(dir: &Path, memory: &LinuxMemory) -> Result<()> {
    let limit = memory.limit().filter(|&l| l != 0);
    let mut swap = memory.swap().filter(|&s| s != 0);
    if limit == Some(-1) && swap.is_none() && dir.join("memory.memsw.limit_in_bytes").exists() {
        swap = Some(-1);
    }
    if let (Some(limit), true) = (limit, memory.check_before_update() == Some(true)) {
        check_usage(limit, read_u64(&dir.join("memory.usage_in_bytes"))?)?;
    }
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    if swap.is_some() && !memsw.exists() {
        return Err(Error::Unsupported {
            resource: "memory.swap".into(),
            reason: "swap accounting is off (no memory.memsw.limit_in_bytes)",
        });
    }
    let write_limit = |l: i64| write_file(&dir.join("memory.limit_in_bytes"), &l.to_string());
    let write_swap = |s: i64| write_file(&memsw, &s.to_string());
    match (limit, swap) {
        (Some(l), Some(s)) => {
            // Raising: memsw first; lowering: the limit first.
            let current = read_u64(&dir.join("memory.limit_in_bytes"))?;
            if s == -1 || current < s as u64 {
                write_swap(s)?;
                write_limit(l)?;
            } else {
                write_limit(l)?;
                write_swap(s)?;
            }
        }
        (Some(l), None) => write_limit(l)?,
        (None, Some(s)) => write_swap(s)?,
        (None, None) => {}
    }
    if let Some(reservation) = memory.reservation().filter(|&r| r != 0) {
        write_file(
            &dir.join("memory.soft_limit_in_bytes"),
            &reservation.to_string(),
        )?;
    }
    if let Some(swappiness) = memory.swappiness() {
        check_swappiness(swappiness)?;
        write_file(&dir.join("memory.swappiness"), &swappiness.to_string())?;
    }
    if let Some(tcp) = memory.kernel_tcp().filter(|&t| t != 0) {
        write_file(
            &dir.join("memory.kmem.tcp.limit_in_bytes"),
            &tcp.to_string(),
        )?;
    }
    if memory.disable_oom_killer() == Some(true) {
        write_file(&dir.join("memory.oom_control"), "1")?;
    }
    Ok(())
}

/// memory.checkBeforeUpdate: refuse a limit below what is in use.
pub fn check_usage(limit: i64, usage: u64) -> Result<()> {
    if limit > 0 && (limit as u64) < usage {
        return Err(Error::MemoryBelowUsage { limit, usage });
    }
    Ok(())
}

pub fn check_swappiness(swappiness: u64) -> Result<()> {
    if swappiness > 100 {
        return Err(Error::InvalidResource {
            resource: "memory.swappiness",
            reason: format!("{swappiness} is above 100"),
        });
    }
    Ok(())
}

/// cpu.*: shares, CFS period before quota, burst, realtime, idle.
pub fn set_cpu(dir: &Path, cpu: &LinuxCpu) -> Result<()> {
    if let Some(shares) = cpu.shares().filter(|&s| s != 0) {
        write_file(&dir.join("cpu.shares"), &shares.to_string())?;
    }
    if let Some(period) = cpu.period().filter(|&p| p != 0) {
        write_file(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
    }
    if let Some(quota) = cpu.quota().filter(|&q| q != 0) {
        write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
    }
    if let Some(burst) = cpu.burst() {
        write_file(&dir.join("cpu.cfs_burst_us"), &burst.to_string())?;
    }
    // The realtime period must allow the runtime: period first.
    if let Some(period) = cpu.realtime_period().filter(|&p| p != 0) {
        write_file(&dir.join("cpu.rt_period_us"), &period.to_string())?;
    }
    if let Some(runtime) = cpu.realtime_runtime().filter(|&r| r != 0) {
        write_file(&dir.join("cpu.rt_runtime_us"), &runtime.to_string())?;
    }
    if let Some(idle) = cpu.idle() {
        write_file(&dir.join("cpu.idle"), &idle.to_string())?;
    }
    Ok(())
}

/// cpuset.cpus and cpuset.mems (same file names on v1 and v2).
pub fn set_cpuset(dir: &Path, cpu: &LinuxCpu) -> Result<()> {
    if let Some(cpus) = cpu.cpus().as_deref().filter(|c| !c.is_empty()) {
        write_file(&dir.join("cpuset.cpus"), cpus)?;
    }
    if let Some(mems) = cpu.mems().as_deref().filter(|m| !m.is_empty()) {
        write_file(&dir.join("cpuset.mems"), mems)?;
    }
    Ok(())
}

/// blkio.*: weights (CFQ or BFQ file names) and throttles. The weight files are checked before
/// the first write: a refused leaf weight must not leave `update` half applied.
pub fn set_blkio(dir: &Path, blkio: &LinuxBlockIo) -> Result<()> {
    let weight_file = if dir.join("blkio.weight").exists() {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    };
    let devices = blkio.weight_device().as_deref().unwrap_or_default();
    let wants_leaf = blkio.leaf_weight().is_some_and(|w| w != 0)
        || devices.iter().any(|d| d.leaf_weight().is_some());
    if wants_leaf && !dir.join("blkio.leaf_weight").exists() {
        return Err(Error::Unsupported {
            resource: "blockIO.leafWeight".into(),
            reason: "no blkio.leaf_weight: leaf weights were CFQ's (gone since Linux 5.0), \
                     BFQ has none",
        });
    }
    let wants_weight =
        blkio.weight().is_some_and(|w| w != 0) || devices.iter().any(|d| d.weight().is_some());
    if wants_weight && !dir.join(weight_file).exists() {
        return Err(Error::Unsupported {
            resource: "blockIO.weight".into(),
            reason: "no blkio.weight nor blkio.bfq.weight (the I/O scheduler has no weights: \
                     CFQ or BFQ needed)",
        });
    }
    if let Some(weight) = blkio.weight().filter(|&w| w != 0) {
        write_file(&dir.join(weight_file), &weight.to_string())?;
    }
    if let Some(leaf) = blkio.leaf_weight().filter(|&w| w != 0) {
        write_file(&dir.join("blkio.leaf_weight"), &leaf.to_string())?;
    }
    for device in devices {
        let dev = format!("{}:{}", device.major(), device.minor());
        if let Some(weight) = device.weight() {
            // blkio.weight_device (CFQ) or blkio.bfq.weight_device.
            let file = dir.join(format!("{weight_file}_device"));
            write_file(&file, &format!("{dev} {weight}"))?;
        }
        if let Some(leaf) = device.leaf_weight() {
            let file = dir.join("blkio.leaf_weight_device");
            write_file(&file, &format!("{dev} {leaf}"))?;
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            blkio.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            blkio.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            blkio.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            blkio.throttle_write_iops_device(),
        ),
    ];
    for (file, devices) in throttles {
        for device in devices.iter().flatten() {
            write_file(&dir.join(file), &throttle_line(device))?;
        }
    }
    Ok(())
}

pub fn throttle_line(device: &LinuxThrottleDevice) -> String {
    format!("{}:{} {}", device.major(), device.minor(), device.rate())
}

/// hugetlb.<size>.limit_in_bytes.
pub fn set_hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for limit in limits {
        crate::convert::check_hugepage_size(limit.page_size())?;
        let file = format!("hugetlb.{}.limit_in_bytes", limit.page_size());
        write_file(&dir.join(file), &limit.limit().to_string())?;
    }
    Ok(())
}

/// net_cls.classid.
pub fn set_net_cls(dir: &Path, network: &LinuxNetwork) -> Result<()> {
    if let Some(class_id) = network.class_id() {
        write_file(&dir.join("net_cls.classid"), &class_id.to_string())?;
    }
    Ok(())
}

/// net_prio.ifpriomap, one interface per write.
pub fn set_net_prio(dir: &Path, network: &LinuxNetwork) -> Result<()> {
    for priority in network.priorities().iter().flatten() {
        let line = format!("{} {}", priority.name(), priority.priority());
        write_file(&dir.join("net_prio.ifpriomap"), &line)?;
    }
    Ok(())
}

/// rdma.max lines (same syntax on v1 and v2).
pub fn rdma_lines(rdma: &HashMap<String, LinuxRdma>) -> Vec<String> {
    let mut lines: Vec<String> = rdma
        .iter()
        .map(|(device, limit)| {
            let handles = limit
                .hca_handles()
                .map_or_else(|| "max".to_owned(), |h| h.to_string());
            let objects = limit
                .hca_objects()
                .map_or_else(|| "max".to_owned(), |o| o.to_string());
            format!("{device} hca_handle={handles} hca_object={objects}")
        })
        .collect();
    lines.sort();
    lines
}

pub fn set_rdma(dir: &Path, rdma: &HashMap<String, LinuxRdma>) -> Result<()> {
    for line in rdma_lines(rdma) {
        write_file(&dir.join("rdma.max"), &line)?;
    }
    Ok(())
}

/// devices.allow / devices.deny, in order, after the defaults are added.
pub fn set_devices(dir: &Path, config: &[LinuxDeviceCgroup]) -> Result<()> {
    let rules: Vec<DeviceRule> = effective_rules(config)?;
    for rule in &rules {
        write_file(&dir.join(rule.v1_file()), &rule.v1_line())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::FakeCgroup;
    use oci_spec::runtime::{LinuxBlockIoBuilder, LinuxRdmaBuilder, LinuxWeightDeviceBuilder};

    fn blkio(weight: u16, leaf: Option<u16>, device_weight: u16) -> LinuxBlockIo {
        let device = LinuxWeightDeviceBuilder::default()
            .major(8)
            .minor(0)
            .weight(device_weight)
            .build()
            .unwrap();
        let mut builder = LinuxBlockIoBuilder::default()
            .weight(weight)
            .weight_device(vec![device]);
        if let Some(leaf) = leaf {
            builder = builder.leaf_weight(leaf);
        }
        builder.build().unwrap()
    }

    const BFQ_FILES: [&str; 2] = ["blkio.bfq.weight", "blkio.bfq.weight_device"];

    #[test]
    fn bfq_weights_go_to_the_bfq_files() {
        let cg = FakeCgroup::new("v1-bfq", &BFQ_FILES);
        set_blkio(&cg.0, &blkio(300, None, 500)).unwrap();
        assert_eq!(cg.read("blkio.bfq.weight"), "300");
        assert_eq!(cg.read("blkio.bfq.weight_device"), "8:0 500");
    }

    #[test]
    fn leaf_weight_without_cfq_is_refused_before_any_write() {
        let cg = FakeCgroup::new("v1-leaf", &BFQ_FILES);
        let err = set_blkio(&cg.0, &blkio(300, Some(300), 500)).unwrap_err();
        assert!(err.to_string().contains("leafWeight"), "{err}");
        // An update asking for both must not leave the new weight behind.
        assert_eq!(cg.read("blkio.bfq.weight"), "");
        assert_eq!(cg.read("blkio.bfq.weight_device"), "");
    }

    #[test]
    fn weights_without_a_weight_file_are_refused() {
        let cg = FakeCgroup::new("v1-noweight", &[]);
        let err = set_blkio(&cg.0, &blkio(300, None, 500)).unwrap_err();
        assert!(err.to_string().contains("blockIO.weight"), "{err}");
    }

    #[test]
    fn rdma_lines_use_max_for_missing_limits() {
        let mut map = HashMap::new();
        map.insert(
            "mlx5_0".to_owned(),
            LinuxRdmaBuilder::default()
                .hca_handles(3u32)
                .build()
                .unwrap(),
        );
        assert_eq!(rdma_lines(&map), vec!["mlx5_0 hca_handle=3 hca_object=max"]);
    }

    #[test]
    fn usage_check_refuses_lower_limits() {
        assert!(check_usage(100, 200).is_err());
        assert!(check_usage(300, 200).is_ok());
        assert!(check_usage(-1, 200).is_ok());
        assert!(check_swappiness(101).is_err());
    }
}
