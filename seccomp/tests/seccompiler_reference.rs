//! Differential test: for profiles both can express (one match action,
//! rules ORed, conditions on distinct arguments ANDed), our BPF and the BPF
//! of `seccompiler` (an independent generator) must decide every input alike.

use std::collections::BTreeMap;

use berth_seccomp::{evaluate_program, SeccompData, AUDIT_ARCH_X86_64};
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn value(&mut self) -> u64 {
        const EDGES: [u64; 8] = [
            0,
            1,
            0xffff_ffff,
            1 << 32,
            (1 << 32) + 1,
            u64::MAX,
            0x8000_0000,
            0x7e02_0000,
        ];
        match self.below(3) {
            0 => EDGES[self.below(EDGES.len() as u64) as usize],
            1 => self.below(4),
            _ => self.next(),
        }
    }
}

const SYSCALLS: [(&str, i64); 4] = [
    ("read", 0),
    ("write", 1),
    ("getppid", 110),
    ("personality", 135),
];
const ERRNO: u32 = 5;

struct Pair {
    ours: serde_json::Value,
    theirs: BTreeMap<i64, Vec<SeccompRule>>,
}

fn random_condition(rng: &mut Rng, index: u8) -> (serde_json::Value, SeccompCondition) {
    let value = rng.value();
    let (name, op, json_value, value_two) = match rng.below(7) {
        0 => ("SCMP_CMP_EQ", SeccompCmpOp::Eq, value, None),
        1 => ("SCMP_CMP_NE", SeccompCmpOp::Ne, value, None),
        2 => ("SCMP_CMP_LT", SeccompCmpOp::Lt, value, None),
        3 => ("SCMP_CMP_LE", SeccompCmpOp::Le, value, None),
        4 => ("SCMP_CMP_GE", SeccompCmpOp::Ge, value, None),
        5 => ("SCMP_CMP_GT", SeccompCmpOp::Gt, value, None),
        _ => {
            let mask = rng.value();
            (
                "SCMP_CMP_MASKED_EQ",
                SeccompCmpOp::MaskedEq(mask),
                mask,
                Some(value & mask),
            )
        }
    };
    let compared = value_two.unwrap_or(value);
    let theirs = SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, compared).unwrap();
    let mut ours = serde_json::json!({"index": index, "value": json_value, "op": name});
    if let Some(v2) = value_two {
        ours["valueTwo"] = v2.into();
    }
    (ours, theirs)
}

fn random_pair(rng: &mut Rng) -> Pair {
    let mut ours = Vec::new();
    let mut theirs = BTreeMap::new();
    for (name, nr) in SYSCALLS {
        if rng.below(4) == 0 {
            continue;
        }
        let mut rules = Vec::new();
        if rng.below(4) == 0 {
            ours.push(
                serde_json::json!({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": ERRNO}),
            );
        } else {
            for _ in 0..1 + rng.below(3) {
                let mut indexes: Vec<u8> = (0..6).collect();
                let mut conds_ours = Vec::new();
                let mut conds_theirs = Vec::new();
                for _ in 0..1 + rng.below(3) {
                    let index = indexes.remove(rng.below(indexes.len() as u64) as usize);
                    let (o, t) = random_condition(rng, index);
                    conds_ours.push(o);
                    conds_theirs.push(t);
                }
                ours.push(serde_json::json!({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": ERRNO, "args": conds_ours}));
                rules.push(SeccompRule::new(conds_theirs).unwrap());
            }
        }
        theirs.insert(nr, rules);
    }
    Pair {
        ours: serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": ours}),
        theirs,
    }
}

fn probe(rng: &mut Rng, pair: &Pair) -> SeccompData {
    let used: Vec<u64> = pair.ours["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["args"].as_array().cloned().unwrap_or_default())
        .flat_map(|a| {
            [
                a["value"].as_u64().unwrap_or(0),
                a["valueTwo"].as_u64().unwrap_or(0),
            ]
        })
        .collect();
    let mut args = [0u64; 6];
    for arg in &mut args {
        *arg = if !used.is_empty() && rng.below(2) == 0 {
            let v = used[rng.below(used.len() as u64) as usize];
            v.wrapping_add([0, 1, u64::MAX, 1 << 32][rng.below(4) as usize])
        } else {
            rng.value()
        };
    }
    let nr = if rng.below(8) == 0 {
        rng.below(500) as u32
    } else {
        SYSCALLS[rng.below(4) as usize].1 as u32
    };
    SeccompData {
        nr,
        arch: AUDIT_ARCH_X86_64,
        instruction_pointer: 0,
        args,
    }
}

#[test]
fn our_filters_decide_like_seccompilers() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let (mut denied, mut total) = (0usize, 0usize);
    for round in 0..300 {
        let pair = random_pair(&mut rng);
        let ours =
            berth_seccomp::compile(&serde_json::from_value(pair.ours.clone()).unwrap()).unwrap();
        let reference = SeccompFilter::new(
            pair.theirs.clone(),
            SeccompAction::Allow,
            SeccompAction::Errno(ERRNO),
            TargetArch::x86_64,
        )
        .unwrap();
        let reference: seccompiler::BpfProgram = reference.try_into().unwrap();
        let reference: Vec<libc::sock_filter> = reference
            .iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        for _ in 0..300 {
            let data = probe(&mut rng, &pair);
            let expected = evaluate_program(&reference, &data).unwrap();
            assert_eq!(
                ours.evaluate(&data).unwrap(),
                expected,
                "round {round}: {}\n{data:?}",
                pair.ours
            );
            total += 1;
            denied += usize::from(expected != berth_seccomp::RET_ALLOW);
        }
    }
    // The inputs must exercise both outcomes, or the comparison proves little.
    assert!(
        denied * 10 > total && denied * 10 < total * 9,
        "{denied} of {total} denied"
    );
}
