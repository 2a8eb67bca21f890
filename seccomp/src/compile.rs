//! From an OCI `linux.seccomp` to a BPF program.
//!
//! Two stages: `Plan::from_oci` resolves names to numbers per ABI and gathers
//! the rules of each system call; `Plan::program` lays out the BPF:
//!
//! ```text
//! ld arch
//! arch == X86_64 ? ld nr; binary search on nr over ranges -> return / rule chain
//! arch == I386   ? ld nr; binary search ...                 (only if listed)
//! return KILL_PROCESS                                       (an ABI not listed)
//! ```
//!
//! Within a system call, rules with argument conditions are tried first, in
//! the order of the config (the first whose conditions all hold decides);
//! then the unconditional rule; then the default action. When several
//! unconditional rules name the same call, the most restrictive action wins,
//! as if each were its own stacked filter (Podman's profile allows `setns` in
//! its big allow list and denies it again in a later rule: it stays denied).

use std::collections::BTreeMap;

use libc::sock_filter;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSyscall};

use crate::action::{self, RET_KILL_PROCESS, RET_USER_NOTIF};
use crate::arch::{requested_abis, Abi, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use crate::bpf::{self, branch, ret, stmt, DATA_ARCH, DATA_NR, JMP_JEQ_K, JMP_JGE_K, LD_W_ABS};
use crate::condition::Cond;
use crate::error::{invalid, Error};

/// What a system call of an ABI that the profile does not list gets
/// (libseccomp's bad-arch action, as a whole-process kill).
pub const BAD_ARCH_RET: u32 = RET_KILL_PROCESS;

/// A rule with argument conditions (all must hold).
#[derive(Clone, Debug)]
struct Rule {
    conds: Vec<Cond>,
    ret: u32,
}

/// Everything the profile says about one system call of one ABI.
#[derive(Clone, Debug, Default)]
struct SyscallRules {
    conditional: Vec<Rule>,
    unconditional: Option<u32>,
}

/// The profile with names resolved, ready for code generation.
#[derive(Debug)]
pub struct Plan {
    default_ret: u32,
    abis: Vec<Abi>,
    rules: BTreeMap<(Abi, u32), SyscallRules>,
    /// Names no listed ABI knows (skipped like runc does).
    pub skipped: Vec<String>,
    /// Every action the profile uses, to check the kernel has them.
    pub actions: Vec<LinuxSeccompAction>,
}

impl Plan {
    pub fn from_oci(cfg: &LinuxSeccomp) -> Result<Plan, Error> {
        let default_action = cfg.default_action();
        if default_action == LinuxSeccompAction::ScmpActNotify {
            return Err(invalid("SCMP_ACT_NOTIFY cannot be the default action"));
        }
        let default_ret =
            action::return_value(default_action, cfg.default_errno_ret(), "defaultAction")?;
        let mut plan = Plan {
            default_ret,
            abis: requested_abis(cfg.architectures().as_ref()),
            rules: BTreeMap::new(),
            skipped: Vec::new(),
            actions: vec![default_action],
        };
        for (i, syscall) in cfg.syscalls().iter().flatten().enumerate() {
            plan.add(i, syscall)?;
        }
        if plan.actions.contains(&LinuxSeccompAction::ScmpActNotify)
            && cfg.listener_path().is_none()
        {
            return Err(invalid(
                "SCMP_ACT_NOTIFY is used but listenerPath is not set",
            ));
        }
        Ok(plan)
    }

    fn add(&mut self, i: usize, syscall: &LinuxSyscall) -> Result<(), Error> {
        let what = format!("syscalls[{i}]");
        if syscall.names().is_empty() {
            return Err(invalid(format!("{what}: names is empty")));
        }
        let ret = action::return_value(syscall.action(), syscall.errno_ret(), &what)?;
        let args = syscall.args().as_deref().unwrap_or_default();
        let cond_sets = condition_sets(args).map_err(|e| invalid(format!("{what}: {e}")))?;
        if !self.actions.contains(&syscall.action()) {
            self.actions.push(syscall.action());
        }
        for (n, name) in syscall.names().iter().enumerate() {
            if syscall.names()[..n].contains(name) {
                continue;
            }
            let mut known = false;
            for &abi in &self.abis {
                let Some(nr) = abi.syscall_number(name) else {
                    continue;
                };
                known = true;
                let entry = self.rules.entry((abi, nr)).or_default();
                for conds in &cond_sets {
                    if conds.is_empty() {
                        entry.unconditional = Some(
                            entry
                                .unconditional
                                .map_or(ret, |old| action::stricter(old, ret)),
                        );
                    } else {
                        entry.conditional.push(Rule {
                            conds: conds.clone(),
                            ret,
                        });
                    }
                }
            }
            if !known && !self.skipped.contains(name) {
                self.skipped.push(name.clone());
            }
        }
        Ok(())
    }

    /// Native system call numbers for which the filter may return USER_NOTIF.
    pub fn notify_syscalls(&self) -> Vec<u32> {
        self.rules
            .iter()
            .filter(|((abi, _), rules)| {
                *abi == Abi::X86_64
                    && (rules.unconditional == Some(RET_USER_NOTIF)
                        || rules.conditional.iter().any(|r| r.ret == RET_USER_NOTIF))
            })
            .map(|((_, nr), _)| *nr)
            .collect()
    }

    /// Lays out and checks the BPF program.
    pub fn program(&self) -> Result<Vec<sock_filter>, Error> {
        let mut dispatch = vec![ret(BAD_ARCH_RET)];
        if self.abis.contains(&Abi::I386) {
            dispatch = branch(
                JMP_JEQ_K,
                AUDIT_ARCH_I386,
                self.abi_block(AUDIT_ARCH_I386)?,
                dispatch,
            );
        }
        dispatch = branch(
            JMP_JEQ_K,
            AUDIT_ARCH_X86_64,
            self.abi_block(AUDIT_ARCH_X86_64)?,
            dispatch,
        );
        let mut program = vec![stmt(LD_W_ABS, DATA_ARCH)];
        program.extend(dispatch);
        bpf::verify(&program)?;
        Ok(program)
    }

    /// The code for every system call reported with `audit_arch`.
    fn abi_block(&self, audit_arch: u32) -> Result<Vec<sock_filter>, Error> {
        let mut pieces: Vec<(u32, u64, Outcome)> = Vec::new();
        for ((abi, nr), rules) in &self.rules {
            if abi.audit_arch() == audit_arch {
                pieces.push((*nr, u64::from(*nr) + 1, self.outcome(rules)?));
            }
        }
        // x32 calls share AUDIT_ARCH_X86_64: when x32 is not listed they must not
        // fall to the default action (an allow-by-default profile would let them
        // bypass every rule), so they get the bad-arch action like libseccomp's.
        if audit_arch == AUDIT_ARCH_X86_64 && !self.abis.contains(&Abi::X32) {
            pieces.push((X32_SYSCALL_BIT, 0x8000_0000, Outcome::Ret(BAD_ARCH_RET)));
        }
        pieces.sort_by_key(|p| p.0);
        let segments = segments(pieces, self.default_ret);
        let mut block = vec![stmt(LD_W_ABS, DATA_NR)];
        block.extend(search(&segments));
        Ok(block)
    }

    /// The code that decides one system call: a return, or a chain of rules.
    fn outcome(&self, rules: &SyscallRules) -> Result<Outcome, Error> {
        let fallback = rules.unconditional.unwrap_or(self.default_ret);
        let mut conditional = rules.conditional.as_slice();
        // Trailing rules that return the fallback anyway change nothing.
        while let [rest @ .., last] = conditional {
            if last.ret != fallback {
                break;
            }
            conditional = rest;
        }
        if conditional.is_empty() {
            return Ok(Outcome::Ret(fallback));
        }
        let mut code = Vec::new();
        for rule in conditional {
            code.extend(rule_code(rule)?);
        }
        code.push(ret(fallback));
        Ok(Outcome::Code(code))
    }
}

/// The condition sets of one OCI rule. Like runc: when two conditions name the
/// same argument, each becomes a rule of its own (libseccomp cannot AND them),
/// so they are ORed; otherwise all conditions must hold.
fn condition_sets(args: &[oci_spec::runtime::LinuxSeccompArg]) -> Result<Vec<Vec<Cond>>, String> {
    let conds = args
        .iter()
        .map(Cond::from_oci)
        .collect::<Result<Vec<_>, _>>()?;
    let repeats = conds
        .iter()
        .enumerate()
        .any(|(i, c)| conds[..i].iter().any(|d| d.index == c.index));
    Ok(if repeats {
        conds.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conds]
    })
}

/// One rule: its conditions in order, then its return. A failed condition
/// jumps past the return, to the next rule.
fn rule_code(rule: &Rule) -> Result<Vec<sock_filter>, Error> {
    let mut tail = vec![ret(rule.ret)];
    for cond in rule.conds.iter().rev() {
        let mut code = cond.emit(tail.len())?;
        code.extend(tail);
        tail = code;
    }
    Ok(tail)
}

#[derive(Clone, Debug)]
enum Outcome {
    Ret(u32),
    /// A terminal fragment (every path returns).
    Code(Vec<sock_filter>),
}

impl Outcome {
    fn code(&self) -> Vec<sock_filter> {
        match self {
            Outcome::Ret(value) => vec![ret(*value)],
            Outcome::Code(code) => code.clone(),
        }
    }
}

/// Covers all numbers from 0 with (start, outcome) segments: `pieces` (sorted,
/// disjoint [start, end) ranges) with the gaps given the default, and
/// neighbours that return the same value merged.
fn segments(pieces: Vec<(u32, u64, Outcome)>, default_ret: u32) -> Vec<(u32, Outcome)> {
    let mut out: Vec<(u32, Outcome)> = Vec::new();
    let mut push = |start: u32, outcome: Outcome| {
        if let (Some((_, Outcome::Ret(prev))), Outcome::Ret(next)) = (out.last(), &outcome) {
            if prev == next {
                return;
            }
        }
        out.push((start, outcome));
    };
    let mut covered_to: u64 = 0;
    for (start, end, outcome) in pieces {
        if u64::from(start) > covered_to {
            push(covered_to as u32, Outcome::Ret(default_ret));
        }
        push(start, outcome);
        covered_to = end;
    }
    if covered_to <= u64::from(u32::MAX) {
        push(covered_to as u32, Outcome::Ret(default_ret));
    }
    out
}

/// Binary search over the segments on the number in A: O(log n) jumps per call.
fn search(segments: &[(u32, Outcome)]) -> Vec<sock_filter> {
    match segments {
        [] => vec![],
        [(_, outcome)] => outcome.code(),
        _ => {
            let mid = segments.len() / 2;
            branch(
                JMP_JGE_K,
                segments[mid].0,
                search(&segments[mid..]),
                search(&segments[..mid]),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::SeccompData;
    use crate::condition::{Op, MAX_ARGS};
    use oci_spec::runtime::LinuxSeccompArg;

    impl Plan {
        /// The documented semantics, evaluated directly on the plan.
        fn decide(&self, data: &SeccompData) -> u32 {
            let abi = match (data.arch, data.nr & X32_SYSCALL_BIT != 0) {
                (AUDIT_ARCH_X86_64, false) => Abi::X86_64,
                (AUDIT_ARCH_X86_64, true) if data.nr < 0x8000_0000 => Abi::X32,
                (AUDIT_ARCH_X86_64, true) => return self.default_ret,
                (AUDIT_ARCH_I386, _) => Abi::I386,
                _ => return BAD_ARCH_RET,
            };
            if !self.abis.contains(&abi) {
                return BAD_ARCH_RET;
            }
            let Some(rules) = self.rules.get(&(abi, data.nr)) else {
                return self.default_ret;
            };
            for rule in &rules.conditional {
                if rule.conds.iter().all(|c| c.holds(&data.args)) {
                    return rule.ret;
                }
            }
            rules.unconditional.unwrap_or(self.default_ret)
        }
    }

    /// xorshift64*: reproducible pseudo-random tests without a dependency.
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
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len() as u64) as usize]
        }
        /// Values that stress 64-bit comparisons made of 32-bit halves.
        fn value(&mut self) -> u64 {
            let interesting = [
                0,
                1,
                2,
                0xffff_ffff,
                1 << 32,
                (1 << 32) + 1,
                u64::MAX,
                0x8000_0000,
                0x7e02_0000,
            ];
            match self.below(3) {
                0 => self.pick(&interesting),
                1 => self.below(8),
                _ => self.next(),
            }
        }
    }

    const NAMES: [&str; 10] = [
        "read",
        "write",
        "personality",
        "clone",
        "unshare",
        "mount",
        "socketcall",
        "_llseek",
        "no_such_call",
        "mseal",
    ];
    const ACTIONS: [&str; 7] = [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_LOG",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_KILL",
    ];
    const OPS: [&str; 7] = [
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ];

    fn random_profile(rng: &mut Rng) -> serde_json::Value {
        let archs = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
        let arch_list: Vec<&str> = archs
            .iter()
            .copied()
            .filter(|_| rng.below(2) == 0)
            .collect();
        let syscalls: Vec<serde_json::Value> = (0..rng.below(8))
            .map(|_| {
                let names: Vec<&str> = (0..1 + rng.below(3)).map(|_| rng.pick(&NAMES)).collect();
                let action = rng.pick(&ACTIONS);
                let args: Vec<serde_json::Value> = (0..rng.below(4))
                    .map(|_| {
                        serde_json::json!({"index": rng.below(3), "value": rng.value(), "valueTwo": rng.value(), "op": rng.pick(&OPS)})
                    })
                    .collect();
                let mut rule = serde_json::json!({"names": names, "action": action, "args": args});
                if matches!(action, "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE") && rng.below(2) == 0 {
                    rule["errnoRet"] = serde_json::json!(rng.below(100));
                }
                rule
            })
            .collect();
        let default = rng.pick(&["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_LOG"]);
        serde_json::json!({"defaultAction": default, "architectures": arch_list, "syscalls": syscalls})
    }

    /// Inputs that hit the profile's rules and their boundaries.
    fn random_data(rng: &mut Rng, profile: &serde_json::Value) -> SeccompData {
        let abi = rng.pick(&[Abi::X86_64, Abi::I386, Abi::X32]);
        let name = rng.pick(&NAMES);
        let nr = match rng.below(6) {
            0 => rng.next() as u32,
            1 => X32_SYSCALL_BIT + rng.below(600) as u32,
            _ => abi.syscall_number(name).unwrap_or(0),
        };
        let arch = if rng.below(20) == 0 {
            0xc000_00b7
        } else {
            abi.audit_arch()
        };
        let mut args = [0u64; MAX_ARGS];
        let used: Vec<u64> = profile["syscalls"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["args"].as_array().cloned().unwrap_or_default())
            .flat_map(|a| {
                [
                    a["value"].as_u64().unwrap_or(0),
                    a["valueTwo"].as_u64().unwrap_or(0),
                ]
            })
            .collect();
        for arg in args.iter_mut() {
            *arg = match (rng.below(3), used.is_empty()) {
                (0, false) => {
                    let v = rng.pick(&used);
                    v.wrapping_add(rng.pick(&[0, 1, u64::MAX, 1 << 32]))
                }
                _ => rng.value(),
            };
        }
        SeccompData {
            nr,
            arch,
            instruction_pointer: 0,
            args,
        }
    }

    #[test]
    fn generated_bpf_agrees_with_the_rules_on_random_profiles() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..400 {
            let profile = random_profile(&mut rng);
            let cfg: LinuxSeccomp = serde_json::from_value(profile.clone()).unwrap();
            let plan = Plan::from_oci(&cfg).unwrap();
            let program = plan.program().unwrap();
            for _ in 0..200 {
                let data = random_data(&mut rng, &profile);
                let got = crate::bpf::run(&program, &data).unwrap();
                assert_eq!(
                    got,
                    plan.decide(&data),
                    "round {round}: {profile}\n{data:?}"
                );
            }
        }
    }

    fn plan(json: serde_json::Value) -> Plan {
        Plan::from_oci(&serde_json::from_value(json).unwrap()).unwrap()
    }

    fn decide(plan: &Plan, name: &str, args: [u64; MAX_ARGS]) -> u32 {
        let data = SeccompData {
            nr: Abi::X86_64.syscall_number(name).unwrap(),
            arch: AUDIT_ARCH_X86_64,
            instruction_pointer: 0,
            args,
        };
        let program = plan.program().unwrap();
        let got = crate::bpf::run(&program, &data).unwrap();
        assert_eq!(got, plan.decide(&data));
        got
    }

    #[test]
    fn conditional_rules_come_before_the_unconditional_one() {
        let p = plan(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            ]}),
        );
        assert_eq!(
            decide(&p, "personality", [8, 0, 0, 0, 0, 0]),
            crate::action::RET_ALLOW
        );
        assert_eq!(
            decide(&p, "personality", [9, 0, 0, 0, 0, 0]),
            crate::action::RET_ERRNO | 22
        );
        assert_eq!(
            decide(&p, "read", [9, 0, 0, 0, 0, 0]),
            crate::action::RET_ALLOW
        );
    }

    #[test]
    fn first_matching_conditional_rule_wins() {
        let p = plan(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_GE"}]},
                {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2, "args": [{"index": 0, "value": 20, "op": "SCMP_CMP_GE"}]},
            ]}),
        );
        assert_eq!(
            decide(&p, "read", [25, 0, 0, 0, 0, 0]),
            crate::action::RET_ERRNO | 1
        );
        assert_eq!(
            decide(&p, "read", [5, 0, 0, 0, 0, 0]),
            crate::action::RET_ALLOW
        );
    }

    #[test]
    fn conflicting_unconditional_rules_take_the_stricter_action() {
        // Podman's profile: setns in the allow list, then in an ERRNO group.
        let p = plan(
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [
                {"names": ["setns", "read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["setns"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            ]}),
        );
        assert_eq!(decide(&p, "setns", [0; 6]), crate::action::RET_ERRNO | 1);
        assert_eq!(decide(&p, "read", [0; 6]), crate::action::RET_ALLOW);
        assert_eq!(decide(&p, "write", [0; 6]), crate::action::RET_ERRNO | 38);
    }

    #[test]
    fn conditions_on_different_arguments_are_anded() {
        let p = plan(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["write"], "action": "SCMP_ACT_ERRNO", "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 100, "op": "SCMP_CMP_GT"}]},
            ]}),
        );
        assert_eq!(
            decide(&p, "write", [1, 0, 101, 0, 0, 0]),
            crate::action::RET_ERRNO | 1
        );
        assert_eq!(
            decide(&p, "write", [1, 0, 100, 0, 0, 0]),
            crate::action::RET_ALLOW
        );
        assert_eq!(
            decide(&p, "write", [2, 0, 101, 0, 0, 0]),
            crate::action::RET_ALLOW
        );
    }

    #[test]
    fn conditions_on_the_same_argument_are_ored_like_runc() {
        let args: Vec<LinuxSeccompArg> = serde_json::from_value(serde_json::json!([
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]))
        .unwrap();
        let sets = condition_sets(&args).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[1][0].op, Op::Eq(5));
        let p = plan(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["write"], "action": "SCMP_ACT_ERRNO", "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 5, "op": "SCMP_CMP_EQ"}]},
            ]}),
        );
        assert_eq!(
            decide(&p, "write", [5, 0, 0, 0, 0, 0]),
            crate::action::RET_ERRNO | 1
        );
        assert_eq!(
            decide(&p, "write", [1, 0, 0, 0, 0, 0]),
            crate::action::RET_ERRNO | 1
        );
        assert_eq!(
            decide(&p, "write", [2, 0, 0, 0, 0, 0]),
            crate::action::RET_ALLOW
        );
    }

    #[test]
    fn unlisted_abis_get_the_bad_arch_action_even_under_allow_by_default() {
        let p = plan(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["unshare"], "action": "SCMP_ACT_ERRNO"}]}),
        );
        let program = p.program().unwrap();
        let run = |arch, nr| {
            crate::bpf::run(
                &program,
                &SeccompData {
                    nr,
                    arch,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        assert_eq!(run(AUDIT_ARCH_X86_64, 272), crate::action::RET_ERRNO | 1);
        assert_eq!(run(AUDIT_ARCH_X86_64, X32_SYSCALL_BIT + 272), BAD_ARCH_RET);
        assert_eq!(run(AUDIT_ARCH_I386, 310), BAD_ARCH_RET);
        assert_eq!(run(0xc000_00b7, 97), BAD_ARCH_RET);
    }

    #[test]
    fn listed_i386_and_x32_use_their_own_numbers() {
        let p = plan(serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["read", "socketcall"], "action": "SCMP_ACT_ALLOW"}]}));
        let program = p.program().unwrap();
        let run = |arch, nr| {
            crate::bpf::run(
                &program,
                &SeccompData {
                    nr,
                    arch,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        assert_eq!(run(AUDIT_ARCH_X86_64, 0), crate::action::RET_ALLOW);
        assert_eq!(
            run(AUDIT_ARCH_X86_64, X32_SYSCALL_BIT),
            crate::action::RET_ALLOW
        );
        assert_eq!(run(AUDIT_ARCH_I386, 3), crate::action::RET_ALLOW);
        assert_eq!(run(AUDIT_ARCH_I386, 102), crate::action::RET_ALLOW);
        assert_eq!(run(AUDIT_ARCH_I386, 0), crate::action::RET_ERRNO | 1);
        assert!(p.skipped.is_empty());
    }

    #[test]
    fn unknown_names_are_skipped_and_reported() {
        let p = plan(
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read", "no_such_call", "socketcall"], "action": "SCMP_ACT_ALLOW"}]}),
        );
        assert_eq!(
            p.skipped,
            vec!["no_such_call".to_string(), "socketcall".to_string()]
        );
        assert_eq!(decide(&p, "read", [0; 6]), crate::action::RET_ALLOW);
    }

    #[test]
    fn invalid_profiles_are_rejected_with_the_rule_named() {
        let bad = [
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
                "default action",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}),
                "defaultAction",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}),
                "syscalls[0]: names is empty",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}),
                "syscalls[0]",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}),
                "listenerPath",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
                "syscalls[0]: argument index 9",
            ),
        ];
        for (json, expected) in bad {
            let cfg: LinuxSeccomp = serde_json::from_value(json.clone()).unwrap();
            let err = Plan::from_oci(&cfg).unwrap_err().to_string();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }

    #[test]
    fn segments_fill_gaps_and_merge_equal_neighbours() {
        let pieces = vec![
            (1, 2, Outcome::Ret(7)),
            (2, 3, Outcome::Ret(7)),
            (5, 6, Outcome::Ret(9)),
            (6, 7, Outcome::Code(vec![ret(1)])),
        ];
        let segs = segments(pieces, 0);
        let starts: Vec<u32> = segs.iter().map(|s| s.0).collect();
        assert_eq!(starts, vec![0, 1, 3, 5, 6, 7]);
    }

    #[test]
    fn segments_reaching_the_top_need_no_tail() {
        let segs = segments(
            vec![
                (10, u64::from(u32::MAX), Outcome::Ret(1)),
                (u32::MAX, 1 << 32, Outcome::Ret(2)),
            ],
            0,
        );
        assert_eq!(segs.len(), 3);
    }
}
