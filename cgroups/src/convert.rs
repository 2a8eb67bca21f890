//! The documented conversions from OCI's v1-style values to cgroup v2 files
//! (the same formulas runc and crun use, so a container gets the same share
//! whichever runtime starts it).

use crate::error::{Error, Result};

/// cpu.shares (2..=262144) to cpu.weight (1..=10000). 0 means "not set".
pub fn cpu_shares_to_weight(shares: u64) -> Option<u64> {
    if shares == 0 {
        return None;
    }
    let shares = shares.clamp(2, 262_144);
    Some(1 + ((shares - 2) * 9999) / 262_142)
}

/// blkio.weight (10..=1000) to io.weight (1..=10000). 0 means "not set".
pub fn blkio_weight_to_io_weight(weight: u16) -> Option<u64> {
    if weight == 0 {
        return None;
    }
    let weight = u64::from(weight.clamp(10, 1000));
    Some(1 + ((weight - 10) * 9999) / 990)
}

/// A v2 limit: negative means unlimited, written "max".
pub fn limit_to_v2(value: i64) -> String {
    if value < 0 {
        "max".to_owned()
    } else {
        value.to_string()
    }
}

/// OCI's memory.swap is memory+swap (the v1 memsw counter); v2's
/// memory.swap.max is swap alone, so it is `swap - limit`.
///
/// Returns `None` when nothing should be written, `Some(-1)` for "max".
pub fn memory_swap_to_v2(swap: Option<i64>, limit: Option<i64>) -> Result<Option<i64>> {
    let Some(swap) = swap else {
        // Unlimited memory with no swap asked for: unlimited swap too, as
        // v1 would have it.
        return Ok(if limit == Some(-1) { Some(-1) } else { None });
    };
    let bad = |reason: String| Error::InvalidResource {
        resource: "memory.swap",
        reason,
    };
    match (swap, limit.unwrap_or(0)) {
        (-1, _) => Ok(Some(-1)),
        (0, -1) => Ok(Some(-1)),
        (0, _) => Ok(None),
        (s, _) if s < 0 => Err(bad(format!("{s} is neither -1 nor a byte count"))),
        (_, 0) | (_, -1) => Err(bad("a swap limit needs a memory limit".to_owned())),
        (_, l) if l < 0 => Err(bad(format!("invalid memory limit {l}"))),
        (s, l) if s < l => Err(bad(format!(
            "memory+swap {s} is below the memory limit {l}"
        ))),
        (s, l) => Ok(Some(s - l)),
    }
}

/// The content for cpu.max from quota and period; `current` is the file's
/// present content, so that changing only one keeps the other.
pub fn cpu_max(quota: Option<i64>, period: Option<u64>, current: Option<&str>) -> Option<String> {
    if quota.is_none() && period.is_none() {
        return None;
    }
    let mut current_fields = current.unwrap_or("max 100000").split_whitespace();
    let current_quota = current_fields.next().unwrap_or("max").to_owned();
    let current_period = current_fields.next().unwrap_or("100000").to_owned();
    let quota = match quota {
        Some(q) if q > 0 => q.to_string(),
        Some(_) => "max".to_owned(),
        None => current_quota,
    };
    let period = match period {
        Some(p) if p > 0 => p.to_string(),
        _ => current_period,
    };
    Some(format!("{quota} {period}"))
}

/// pids.max: zero or negative means unlimited (runtime-spec and runc).
pub fn pids_limit(limit: i64) -> String {
    if limit <= 0 {
        "max".to_owned()
    } else {
        limit.to_string()
    }
}

/// Hugepage sizes as OCI gives them ("2MB", "1GB") are the names used in
/// hugetlb file names; accept only what the kernel could have.
pub fn check_hugepage_size(size: &str) -> Result<()> {
    let digits = size.trim_end_matches(['K', 'M', 'G', 'B']);
    let unit = &size[digits.len()..];
    let valid = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(unit, "KB" | "MB" | "GB");
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidResource {
            resource: "hugepageLimits.pageSize",
            reason: format!("{size:?} is not a size such as 2MB or 1GB"),
        })
    }
}

/// A kernel list of CPUs or NUMA nodes ("0-3,8") as a little-endian
/// bitmask: bit `n % 8` of byte `n / 8` for each member `n`, every member
/// below `limit`.
pub fn list_bitmask(list: &str, limit: u32) -> Option<Vec<u8>> {
    let mut mask = Vec::new();
    for part in list.trim().split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?),
            None => {
                let n = part.trim().parse::<u32>().ok()?;
                (n, n)
            }
        };
        if first > last || last >= limit {
            return None;
        }
        let bytes = usize::try_from(last / 8 + 1).ok()?;
        if mask.len() < bytes {
            mask.resize(bytes, 0);
        }
        for n in first..=last {
            mask[usize::try_from(n / 8).ok()?] |= 1 << (n % 8);
        }
    }
    Some(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_map_to_weights_at_both_ends() {
        assert_eq!(cpu_shares_to_weight(0), None);
        assert_eq!(cpu_shares_to_weight(2), Some(1));
        assert_eq!(cpu_shares_to_weight(1024), Some(39));
        assert_eq!(cpu_shares_to_weight(262_144), Some(10_000));
        assert_eq!(cpu_shares_to_weight(1_000_000), Some(10_000));
    }

    #[test]
    fn blkio_weights_map_to_io_weights() {
        assert_eq!(blkio_weight_to_io_weight(0), None);
        assert_eq!(blkio_weight_to_io_weight(10), Some(1));
        assert_eq!(blkio_weight_to_io_weight(500), Some(4950));
        assert_eq!(blkio_weight_to_io_weight(1000), Some(10_000));
    }

    #[test]
    fn swap_becomes_swap_minus_memory() {
        let m = 64 << 20;
        assert_eq!(memory_swap_to_v2(Some(2 * m), Some(m)).unwrap(), Some(m));
        assert_eq!(memory_swap_to_v2(Some(m), Some(m)).unwrap(), Some(0));
        assert_eq!(memory_swap_to_v2(Some(-1), Some(m)).unwrap(), Some(-1));
        assert_eq!(memory_swap_to_v2(None, Some(-1)).unwrap(), Some(-1));
        assert_eq!(memory_swap_to_v2(Some(0), Some(-1)).unwrap(), Some(-1));
        assert_eq!(memory_swap_to_v2(None, Some(m)).unwrap(), None);
        assert_eq!(memory_swap_to_v2(Some(0), Some(m)).unwrap(), None);
    }

    #[test]
    fn swap_errors_are_explained() {
        assert!(memory_swap_to_v2(Some(10), Some(20)).is_err());
        assert!(memory_swap_to_v2(Some(10), None).is_err());
        assert!(memory_swap_to_v2(Some(10), Some(-1)).is_err());
        assert!(memory_swap_to_v2(Some(-5), Some(1)).is_err());
    }

    #[test]
    fn limits_use_max_for_unlimited() {
        assert_eq!(limit_to_v2(-1), "max");
        assert_eq!(limit_to_v2(4096), "4096");
        assert_eq!(pids_limit(0), "max");
        assert_eq!(pids_limit(-1), "max");
        assert_eq!(pids_limit(32), "32");
    }

    #[test]
    fn cpu_max_keeps_the_part_not_given() {
        assert_eq!(cpu_max(None, None, Some("max 100000")), None);
        assert_eq!(
            cpu_max(Some(50_000), Some(100_000), None).as_deref(),
            Some("50000 100000")
        );
        assert_eq!(
            cpu_max(None, Some(200_000), Some("30000 100000")).as_deref(),
            Some("30000 200000")
        );
        assert_eq!(
            cpu_max(Some(-1), None, Some("30000 100000")).as_deref(),
            Some("max 100000")
        );
    }

    #[test]
    fn hugepage_sizes_are_checked() {
        assert!(check_hugepage_size("2MB").is_ok());
        assert!(check_hugepage_size("1GB").is_ok());
        assert!(check_hugepage_size("64KB").is_ok());
        assert!(check_hugepage_size("2M").is_err());
        assert!(check_hugepage_size("../x").is_err());
        assert!(check_hugepage_size("MB").is_err());
    }
}
