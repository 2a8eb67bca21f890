//! Resource usage in the JSON shape of `runc events --stats` (its `data`
//! member): cpu, memory, pids, blkio and hugetlb, read from v1 or v2 files.

use crate::fsutil::{parse_flat_keyed, parse_u64, read_file};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Nanoseconds per USER_HZ tick (cpuacct.stat counts in 1/100 s).
const NANOS_PER_TICK: u64 = 10_000_000;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero", default)]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero", default)]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub throttled_time: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero", default)]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero", default)]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub limit: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero", default)]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub value: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero", default)]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub max: u64,
    pub failcnt: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A file read as a number; a missing or odd file counts as 0, because
/// stats are best effort (controllers differ by kernel).
fn number(dir: &Path, file: &str) -> u64 {
    read_file(&dir.join(file))
        .ok()
        .and_then(|t| parse_u64(&t))
        .unwrap_or(0)
}

fn keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    read_file(&dir.join(file))
        .map(|t| parse_flat_keyed(&t).into_iter().collect())
        .unwrap_or_default()
}

/// cpu.stat on v2 (microseconds, converted to nanoseconds).
pub fn cpu_v2(dir: &Path) -> Cpu {
    let stat = keyed(dir, "cpu.stat");
    let micros = |k: &str| stat.get(k).copied().unwrap_or(0) * 1000;
    Cpu {
        usage: CpuUsage {
            total: micros("usage_usec"),
            percpu: Vec::new(),
            kernel: micros("system_usec"),
            user: micros("user_usec"),
        },
        throttling: Throttling {
            periods: stat.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: stat.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: micros("throttled_usec"),
        },
    }
}

/// cpuacct.* for usage, cpu.stat for throttling, on v1.
pub fn cpu_v1(cpuacct: Option<&Path>, cpu: Option<&Path>) -> Cpu {
    let mut out = Cpu::default();
    if let Some(dir) = cpuacct {
        let stat = keyed(dir, "cpuacct.stat");
        out.usage = CpuUsage {
            total: number(dir, "cpuacct.usage"),
            percpu: read_file(&dir.join("cpuacct.usage_percpu"))
                .map(|t| {
                    t.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
            kernel: stat.get("system").copied().unwrap_or(0) * NANOS_PER_TICK,
            user: stat.get("user").copied().unwrap_or(0) * NANOS_PER_TICK,
        };
    }
    if let Some(dir) = cpu {
        let stat = keyed(dir, "cpu.stat");
        out.throttling = Throttling {
            periods: stat.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: stat.get("nr_throttled").copied().unwrap_or(0),
            throttled_time: stat.get("throttled_time").copied().unwrap_or(0),
        };
    }
    out
}

/// memory.* on v2. Swap is reported as memory+swap, as runc does, so it
/// compares with the v1 memsw counters.
pub fn memory_v2(dir: &Path) -> Memory {
    let raw = keyed(dir, "memory.stat");
    let usage = number(dir, "memory.current");
    let limit = number(dir, "memory.max");
    let events = keyed(dir, "memory.events");
    let swap_usage = number(dir, "memory.swap.current");
    let swap_limit = number(dir, "memory.swap.max");
    Memory {
        cache: raw.get("file").copied().unwrap_or(0),
        usage: MemoryEntry {
            limit,
            usage,
            max: number(dir, "memory.peak"),
            failcnt: events.get("max").copied().unwrap_or(0),
        },
        swap: MemoryEntry {
            limit: swap_limit.saturating_add(limit),
            usage: swap_usage + usage,
            max: number(dir, "memory.swap.peak"),
            failcnt: events.get("max").copied().unwrap_or(0),
        },
        kernel: MemoryEntry::default(),
        kernel_tcp: MemoryEntry::default(),
        raw,
    }
}

fn memory_entry_v1(dir: &Path, prefix: &str) -> MemoryEntry {
    MemoryEntry {
        limit: number(dir, &format!("{prefix}.limit_in_bytes")),
        usage: number(dir, &format!("{prefix}.usage_in_bytes")),
        max: number(dir, &format!("{prefix}.max_usage_in_bytes")),
        failcnt: number(dir, &format!("{prefix}.failcnt")),
    }
}

/// memory.* on v1.
pub fn memory_v1(dir: &Path) -> Memory {
    let raw = keyed(dir, "memory.stat");
    Memory {
        cache: raw.get("cache").copied().unwrap_or(0),
        usage: memory_entry_v1(dir, "memory"),
        swap: memory_entry_v1(dir, "memory.memsw"),
        kernel: memory_entry_v1(dir, "memory.kmem"),
        kernel_tcp: memory_entry_v1(dir, "memory.kmem.tcp"),
        raw,
    }
}

/// pids.current and pids.max (same on v1 and v2; "max" reads as 0).
pub fn pids(dir: &Path) -> Pids {
    let limit = number(dir, "pids.max");
    Pids {
        current: number(dir, "pids.current"),
        limit: if limit == u64::MAX { 0 } else { limit },
    }
}

/// io.stat on v2: `maj:min rbytes=.. wbytes=.. rios=.. wios=..`.
pub fn blkio_v2(dir: &Path) -> Blkio {
    let text = read_file(&dir.join("io.stat")).unwrap_or_default();
    parse_io_stat(&text)
}

pub fn parse_io_stat(text: &str) -> Blkio {
    let mut blkio = Blkio::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(parse_dev) else {
            continue;
        };
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let Ok(value) = value.parse() else { continue };
            let (list, op) = match key {
                "rbytes" => (&mut blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut blkio.io_service_bytes_recursive, "Write"),
                "rios" => (&mut blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut blkio.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_owned(),
                value,
            });
        }
    }
    blkio
}

fn parse_dev(text: &str) -> Option<(u64, u64)> {
    let (major, minor) = text.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// blkio.throttle.*_recursive on v1: `maj:min Op value` lines.
pub fn blkio_v1(dir: &Path) -> Blkio {
    let entries = |file: &str| {
        read_file(&dir.join(file))
            .map(|t| parse_blkio_v1(&t))
            .unwrap_or_default()
    };
    Blkio {
        io_service_bytes_recursive: entries("blkio.throttle.io_service_bytes_recursive"),
        io_serviced_recursive: entries("blkio.throttle.io_serviced_recursive"),
    }
}

pub fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (major, minor) = parse_dev(fields.next()?)?;
            let op = fields.next()?.to_owned();
            let value = fields.next()?.parse().ok()?;
            Some(BlkioEntry {
                major,
                minor,
                op,
                value,
            })
        })
        .collect()
}

/// Hugepage sizes the kernel offers, as hugetlb file names spell them.
pub fn hugepage_sizes() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut sizes: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(hugepage_size_name(kb))
        })
        .collect();
    sizes.sort();
    sizes
}

/// 2048 kB -> "2MB", 1048576 kB -> "1GB", 64 kB -> "64KB".
pub fn hugepage_size_name(kb: u64) -> String {
    if kb >= 1 << 20 && kb.is_multiple_of(1 << 20) {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 && kb.is_multiple_of(1 << 10) {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

pub fn hugetlb_v2(dir: &Path) -> BTreeMap<String, Hugetlb> {
    hugepage_sizes()
        .into_iter()
        .map(|size| {
            let stat = Hugetlb {
                usage: number(dir, &format!("hugetlb.{size}.current")),
                max: 0,
                failcnt: keyed(dir, &format!("hugetlb.{size}.events"))
                    .get("max")
                    .copied()
                    .unwrap_or(0),
            };
            (size, stat)
        })
        .collect()
}

pub fn hugetlb_v1(dir: &Path) -> BTreeMap<String, Hugetlb> {
    hugepage_sizes()
        .into_iter()
        .map(|size| {
            let stat = Hugetlb {
                usage: number(dir, &format!("hugetlb.{size}.usage_in_bytes")),
                max: number(dir, &format!("hugetlb.{size}.max_usage_in_bytes")),
                failcnt: number(dir, &format!("hugetlb.{size}.failcnt")),
            };
            (size, stat)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_stat_becomes_runc_entries() {
        let blkio = parse_io_stat("8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n");
        assert_eq!(blkio.io_service_bytes_recursive.len(), 2);
        assert_eq!(blkio.io_service_bytes_recursive[0].op, "Read");
        assert_eq!(blkio.io_service_bytes_recursive[0].value, 4096);
        assert_eq!(blkio.io_serviced_recursive[0].value, 1);
    }

    #[test]
    fn blkio_v1_lines_parse() {
        let entries = parse_blkio_v1("8:0 Read 10\n8:0 Write 20\nTotal 30\n");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].op, "Write");
        assert_eq!(entries[1].value, 20);
    }

    #[test]
    fn hugepage_names_match_the_kernel() {
        assert_eq!(hugepage_size_name(2048), "2MB");
        assert_eq!(hugepage_size_name(1_048_576), "1GB");
        assert_eq!(hugepage_size_name(64), "64KB");
    }

    #[test]
    fn json_shape_matches_runc() {
        let mut stats = Stats::default();
        stats.pids.current = 3;
        stats.memory.usage.limit = 10;
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["pids"]["current"], 3);
        assert!(json["pids"].get("limit").is_none());
        assert_eq!(json["memory"]["usage"]["limit"], 10);
        assert!(json["memory"].get("kernelTCP").is_some());
        assert_eq!(json["cpu"]["usage"]["kernel"], 0);
        assert!(json["cpu"]["throttling"].as_object().unwrap().is_empty());
    }
}
