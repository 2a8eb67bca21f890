//! How the kernel runs the container's processes: `process.scheduler` (sched_setattr(2)),
//! `linux.memoryPolicy` (set_mempolicy(2)) and an exec's `process.execCPUAffinity`
//! (sched_setaffinity(2)), turned into the syscalls' arguments before the clone so the
//! init only makes the calls.

use oci_spec::runtime::{
    LinuxMemoryPolicy, LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType,
    MemoryPolicyModeType, Scheduler,
};

use super::error::{Error, Result};
use super::sys::SchedAttr;

/// `sizeof(struct sched_attr)` for [`SchedAttr`] (SCHED_ATTR_SIZE_VER1).
const SCHED_ATTR_SIZE: u32 = 56;
/// The highest NUMA node a memory policy may name (the kernel's MAX_NUMNODES is 1024
/// on x86-64 distribution kernels).
const MAX_NODES: u32 = 1024;

/// The highest CPU a CPU list may name (the kernel's NR_CPUS on x86-64 distribution
/// kernels).
const MAX_CPUS: u32 = 8192;
/// sched_setaffinity's mask is at least this long (1024 CPUs, glibc's cpu_set_t), so a
/// short list still covers every CPU the kernel has.
const MIN_AFFINITY_BYTES: usize = 128;

/// A CPU list ("0-3,7") as sched_setaffinity's mask.
pub fn cpu_mask(list: &str) -> Option<Vec<u8>> {
    let mut mask = berth_cgroups::convert::list_bitmask(list, MAX_CPUS)?;
    if mask.len() < MIN_AFFINITY_BYTES {
        mask.resize(MIN_AFFINITY_BYTES, 0);
    }
    Some(mask)
}

/// Every CPU the kernel can have, as an affinity mask.
pub fn all_cpus() -> Vec<u8> {
    vec![0xff; usize::try_from(MAX_CPUS / 8).unwrap_or(MIN_AFFINITY_BYTES)]
}

/// The memory policy modes and flags berth applies (`berth features`).
pub const MEMORY_POLICY_MODES: [&str; 7] = [
    "MPOL_DEFAULT",
    "MPOL_BIND",
    "MPOL_INTERLEAVE",
    "MPOL_WEIGHTED_INTERLEAVE",
    "MPOL_PREFERRED",
    "MPOL_PREFERRED_MANY",
    "MPOL_LOCAL",
];
pub const MEMORY_POLICY_FLAGS: [&str; 3] = [
    "MPOL_F_NUMA_BALANCING",
    "MPOL_F_RELATIVE_NODES",
    "MPOL_F_STATIC_NODES",
];

/// The scheduler flags by their config.json names (runtime-spec config.md).
const SCHED_FLAGS: [(&str, LinuxSchedulerFlag, u64); 7] = [
    (
        "SCHED_FLAG_RESET_ON_FORK",
        LinuxSchedulerFlag::SchedResetOnFork,
        0x01,
    ),
    (
        "SCHED_FLAG_RECLAIM",
        LinuxSchedulerFlag::SchedFlagReclaim,
        0x02,
    ),
    (
        "SCHED_FLAG_DL_OVERRUN",
        LinuxSchedulerFlag::SchedFlagDLOverrun,
        0x04,
    ),
    (
        "SCHED_FLAG_KEEP_POLICY",
        LinuxSchedulerFlag::SchedFlagKeepPolicy,
        0x08,
    ),
    (
        "SCHED_FLAG_KEEP_PARAMS",
        LinuxSchedulerFlag::SchedFlagKeepParams,
        0x10,
    ),
    (
        "SCHED_FLAG_UTIL_CLAMP_MIN",
        LinuxSchedulerFlag::SchedFlagUtilClampMin,
        0x20,
    ),
    (
        "SCHED_FLAG_UTIL_CLAMP_MAX",
        LinuxSchedulerFlag::SchedFlagUtilClampMax,
        0x40,
    ),
];

/// A scheduler flag from its config.json name; oci-spec's own serde names (which differ
/// from the spec's) are accepted too, as berth's saved configs may carry them.
pub fn scheduler_flag(name: &str) -> Option<LinuxSchedulerFlag> {
    SCHED_FLAGS.iter().find_map(|(spec_name, flag, _)| {
        let serde_name = serde_json::to_value(flag).ok();
        let matches =
            *spec_name == name || serde_name.as_ref().and_then(|v| v.as_str()) == Some(name);
        matches.then_some(*flag)
    })
}

fn flag_bits(flag: LinuxSchedulerFlag) -> u64 {
    SCHED_FLAGS
        .iter()
        .find(|(_, f, _)| *f == flag)
        .map_or(0, |(_, _, bits)| *bits)
}

fn policy_number(policy: LinuxSchedulerPolicy) -> u32 {
    use LinuxSchedulerPolicy::*;
    match policy {
        SchedOther => 0,
        SchedFifo => 1,
        SchedRr => 2,
        SchedBatch => 3,
        SchedIso => 4,
        SchedIdle => 5,
        SchedDeadline => 6,
    }
}

fn invalid(what: &str, why: String) -> Error {
    Error::Config(format!("{what}: {why}"))
}

/// Checks `process.scheduler` the way runc does (the kernel checks the rest) and
/// builds the sched_attr.
pub fn sched_attr(scheduler: &Scheduler) -> Result<SchedAttr> {
    use LinuxSchedulerPolicy::*;
    let policy = *scheduler.policy();
    let nice = scheduler.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(invalid(
            "process.scheduler.nice",
            format!("{nice} is outside -20..19"),
        ));
    }
    let priority = scheduler.priority().unwrap_or(0);
    let realtime = matches!(policy, SchedFifo | SchedRr);
    if priority != 0 && !realtime {
        return Err(invalid(
            "process.scheduler.priority",
            format!("{priority} is only allowed with SCHED_FIFO and SCHED_RR, not {policy}"),
        ));
    }
    let priority = u32::try_from(priority).map_err(|_| {
        invalid(
            "process.scheduler.priority",
            format!("{priority} is negative"),
        )
    })?;
    let deadline_fields = [
        scheduler.runtime(),
        scheduler.deadline(),
        scheduler.period(),
    ];
    if policy != SchedDeadline && deadline_fields.iter().any(|f| f.is_some_and(|v| v != 0)) {
        return Err(invalid(
            "process.scheduler",
            format!(
                "runtime, deadline and period are only allowed with SCHED_DEADLINE, not {policy}"
            ),
        ));
    }
    let flags = scheduler
        .flags()
        .iter()
        .flatten()
        .fold(0, |bits, f| bits | flag_bits(*f));
    Ok(SchedAttr {
        size: SCHED_ATTR_SIZE,
        policy: policy_number(policy),
        flags,
        nice,
        priority,
        runtime: scheduler.runtime().unwrap_or(0),
        deadline: scheduler.deadline().unwrap_or(0),
        period: scheduler.period().unwrap_or(0),
        util_min: 0,
        util_max: 0,
    })
}

/// set_mempolicy(2)'s arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemPolicy {
    /// The MPOL_* mode with its MPOL_F_* flags.
    pub mode: libc::c_int,
    pub nodemask: Vec<libc::c_ulong>,
    /// Bits in `nodemask` plus one, as the syscall counts them.
    pub maxnode: u64,
}

/// Checks `linux.memoryPolicy` and builds set_mempolicy's arguments.
pub fn mem_policy(policy: &LinuxMemoryPolicy) -> Result<MemPolicy> {
    use MemoryPolicyModeType::*;
    let what = "linux.memoryPolicy";
    let mode = policy.mode();
    let (number, needs_nodes, takes_nodes) = match mode {
        MpolDefault => (0, false, false),
        MpolPreferred => (1, false, true),
        MpolBind => (2, true, true),
        MpolInterleave => (3, true, true),
        MpolLocal => (4, false, false),
        MpolPreferredMany => (5, true, true),
        MpolWeightedInterleave => (6, true, true),
    };
    let nodes = policy
        .nodes()
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let nodemask = match nodes {
        Some(_) if !takes_nodes => {
            return Err(invalid(what, format!("mode {mode:?} takes no nodes")));
        }
        Some(list) => node_mask(list).ok_or_else(|| {
            invalid(
                what,
                format!("nodes {list:?} is not a list of node numbers below {MAX_NODES}"),
            )
        })?,
        None if needs_nodes => return Err(invalid(what, format!("mode {mode:?} needs nodes"))),
        None => Vec::new(),
    };
    let mut flags = 0;
    for flag in policy.flags().iter().flatten() {
        flags |= match flag {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    if flags & (3 << 14) == 3 << 14 {
        return Err(invalid(
            what,
            "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other".into(),
        ));
    }
    let bits = u64::try_from(nodemask.len() * libc::c_ulong::BITS as usize).unwrap_or(0);
    Ok(MemPolicy {
        mode: number | flags,
        maxnode: if nodemask.is_empty() { 0 } else { bits + 1 },
        nodemask,
    })
}

/// A node list ("0-3,8") as a bitmask of longs.
fn node_mask(list: &str) -> Option<Vec<libc::c_ulong>> {
    let bytes = berth_cgroups::convert::list_bitmask(list, MAX_NODES)?;
    let words = bytes
        .chunks(std::mem::size_of::<libc::c_ulong>())
        .map(|chunk| {
            let mut word = [0u8; std::mem::size_of::<libc::c_ulong>()];
            word[..chunk.len()].copy_from_slice(chunk);
            libc::c_ulong::from_le_bytes(word)
        })
        .collect();
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheduler(json: serde_json::Value) -> Scheduler {
        serde_json::from_value(json).unwrap()
    }

    fn memory_policy(json: serde_json::Value) -> LinuxMemoryPolicy {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn scheduler_becomes_a_sched_attr() {
        let attr = sched_attr(&scheduler(serde_json::json!({
            "policy": "SCHED_FIFO", "priority": 10,
            "flags": ["SCHED_RESET_ON_FORK"]
        })))
        .unwrap();
        assert_eq!(
            (attr.size, attr.policy, attr.priority, attr.flags),
            (56, 1, 10, 1)
        );
        let batch = sched_attr(&scheduler(
            serde_json::json!({"policy": "SCHED_BATCH", "nice": -5}),
        ))
        .unwrap();
        assert_eq!((batch.policy, batch.nice, batch.priority), (3, -5, 0));
        let dl = sched_attr(&scheduler(serde_json::json!({
            "policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 20, "period": 30
        })))
        .unwrap();
        assert_eq!(
            (dl.policy, dl.runtime, dl.deadline, dl.period),
            (6, 10, 20, 30)
        );
        assert_eq!(std::mem::size_of::<SchedAttr>(), SCHED_ATTR_SIZE as usize);
    }

    #[test]
    fn scheduler_fields_are_checked_like_runc() {
        for (json, needle) in [
            (
                serde_json::json!({"policy": "SCHED_OTHER", "nice": 20}),
                "nice",
            ),
            (
                serde_json::json!({"policy": "SCHED_OTHER", "priority": 5}),
                "priority",
            ),
            (
                serde_json::json!({"policy": "SCHED_RR", "priority": -1}),
                "negative",
            ),
            (
                serde_json::json!({"policy": "SCHED_FIFO", "priority": 1, "runtime": 5}),
                "SCHED_DEADLINE",
            ),
        ] {
            let err = sched_attr(&scheduler(json.clone()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn flag_names_are_the_specs_and_oci_specs() {
        assert_eq!(
            scheduler_flag("SCHED_FLAG_RESET_ON_FORK"),
            Some(LinuxSchedulerFlag::SchedResetOnFork)
        );
        assert_eq!(
            scheduler_flag("SCHED_FLAG_DL_OVERRUN"),
            Some(LinuxSchedulerFlag::SchedFlagDLOverrun)
        );
        for (_, flag, _) in SCHED_FLAGS {
            let serialized = serde_json::to_value(flag).unwrap();
            assert_eq!(scheduler_flag(serialized.as_str().unwrap()), Some(flag));
        }
        assert_eq!(scheduler_flag("SCHED_FLAG_NOPE"), None);
    }

    #[test]
    fn memory_policy_becomes_mode_and_mask() {
        let bind = mem_policy(&memory_policy(serde_json::json!({
            "mode": "MPOL_BIND", "nodes": "0-2,65", "flags": ["MPOL_F_STATIC_NODES"]
        })))
        .unwrap();
        assert_eq!(bind.mode, 2 | 1 << 15);
        assert_eq!(bind.nodemask, vec![0b111, 0b10]);
        assert_eq!(bind.maxnode, 129);
        let local = mem_policy(&memory_policy(serde_json::json!({"mode": "MPOL_LOCAL"}))).unwrap();
        assert_eq!((local.mode, local.maxnode), (4, 0));
        assert!(local.nodemask.is_empty());
        let preferred = mem_policy(&memory_policy(
            serde_json::json!({"mode": "MPOL_PREFERRED"}),
        ))
        .unwrap();
        assert_eq!(preferred.mode, 1);
    }

    #[test]
    fn cpu_lists_become_affinity_masks() {
        let mask = cpu_mask("0,2-3").unwrap();
        assert_eq!(mask.len(), MIN_AFFINITY_BYTES);
        assert_eq!(mask[0], 0b1101);
        assert_eq!(cpu_mask("9000"), None);
        assert_eq!(all_cpus().len() * 8, MAX_CPUS as usize);
        assert_eq!(cpu_mask("1-x"), None);
    }

    #[test]
    fn every_reported_mode_and_flag_parses() {
        for mode in MEMORY_POLICY_MODES {
            let nodes = if matches!(mode, "MPOL_DEFAULT" | "MPOL_LOCAL") {
                None
            } else {
                Some("0")
            };
            let policy = memory_policy(serde_json::json!({"mode": mode, "nodes": nodes}));
            assert!(mem_policy(&policy).is_ok(), "{mode}");
        }
        for flag in MEMORY_POLICY_FLAGS {
            let policy = memory_policy(
                serde_json::json!({"mode": "MPOL_BIND", "nodes": "0", "flags": [flag]}),
            );
            assert!(mem_policy(&policy).is_ok(), "{flag}");
        }
    }

    #[test]
    fn memory_policy_is_checked() {
        for (json, needle) in [
            (serde_json::json!({"mode": "MPOL_BIND"}), "needs nodes"),
            (
                serde_json::json!({"mode": "MPOL_DEFAULT", "nodes": "0"}),
                "takes no nodes",
            ),
            (
                serde_json::json!({"mode": "MPOL_INTERLEAVE", "nodes": "x"}),
                "not a list",
            ),
            (
                serde_json::json!({"mode": "MPOL_BIND", "nodes": "5000"}),
                "not a list",
            ),
            (
                serde_json::json!({"mode": "MPOL_BIND", "nodes": "0",
                    "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
                "exclude",
            ),
        ] {
            let err = mem_policy(&memory_policy(json.clone()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }
}
