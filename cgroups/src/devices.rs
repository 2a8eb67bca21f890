//! Device access rules: the runtime's defaults, the v1 `devices.allow` /
//! `devices.deny` lines, and the v2 eBPF program that enforces the same
//! rules.
//!
//! Semantics (identical on v1 and v2): rules apply in order and the last
//! rule matching an access decides. With no matching rule the access is
//! allowed, as in a fresh v1 devices cgroup; OCI configs therefore start
//! with a deny-all rule. An allow rule matches only if it grants every
//! requested access bit; a deny rule matches if it covers any of them.

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

/// Device type of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    All,
    Char,
    Block,
}

/// One normalised device rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceKind,
    /// `None` is the wildcard `*`.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Bits of [`ACCESS_MKNOD`], [`ACCESS_READ`], [`ACCESS_WRITE`].
    pub access: u32,
}

/// Access bits, as the kernel passes them to BPF_CGROUP_DEVICE programs.
pub const ACCESS_MKNOD: u32 = 1;
pub const ACCESS_READ: u32 = 2;
pub const ACCESS_WRITE: u32 = 4;
const ACCESS_ALL: u32 = ACCESS_MKNOD | ACCESS_READ | ACCESS_WRITE;

/// Device types in `bpf_cgroup_dev_ctx.access_type`'s low half.
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

impl DeviceRule {
    /// Converts an OCI rule, rejecting what no kernel could enforce.
    pub fn from_oci(rule: &LinuxDeviceCgroup) -> Result<DeviceRule> {
        let kind = match rule.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => DeviceKind::All,
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::P => {
                return Err(invalid(
                    "type p (FIFO) cannot appear in a device cgroup rule",
                ))
            }
        };
        Ok(DeviceRule {
            allow: rule.allow(),
            kind,
            major: device_number(rule.major(), "major")?,
            minor: device_number(rule.minor(), "minor")?,
            access: parse_access(rule.access().as_deref().unwrap_or("rwm"))?,
        })
    }

    /// A rule allowing one character device with all access.
    const fn char_device(major: u32, minor: Option<u32>) -> DeviceRule {
        DeviceRule {
            allow: true,
            kind: DeviceKind::Char,
            major: Some(major),
            minor,
            access: ACCESS_ALL,
        }
    }

    /// The v1 line, e.g. `c 1:3 rwm`.
    pub fn v1_line(&self) -> String {
        let kind = match self.kind {
            DeviceKind::All => "a",
            DeviceKind::Char => "c",
            DeviceKind::Block => "b",
        };
        let number = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        format!(
            "{kind} {}:{} {}",
            number(self.major),
            number(self.minor),
            access_string(self.access)
        )
    }

    /// The v1 file this rule is written to.
    pub fn v1_file(&self) -> &'static str {
        if self.allow {
            "devices.allow"
        } else {
            "devices.deny"
        }
    }

    /// Whether the rule matches every device of every type.
    fn is_wildcard(&self) -> bool {
        self.kind == DeviceKind::All && self.major.is_none() && self.minor.is_none()
    }

    /// Whether every device `other` names is also one of this rule's.
    fn covers(&self, other: &DeviceRule) -> bool {
        let number = |outer: Option<u32>, inner: Option<u32>| outer.is_none() || outer == inner;
        (self.kind == DeviceKind::All || self.kind == other.kind)
            && number(self.major, other.major)
            && number(self.minor, other.minor)
    }

    /// Whether some device is named by both rules.
    fn overlaps(&self, other: &DeviceRule) -> bool {
        let number = |a: Option<u32>, b: Option<u32>| a.is_none() || b.is_none() || a == b;
        (self.kind == DeviceKind::All || other.kind == DeviceKind::All || self.kind == other.kind)
            && number(self.major, other.major)
            && number(self.minor, other.minor)
    }

    /// The rule's decision for one access, or `None` if it does not match.
    /// This is the reference the eBPF program is tested against.
    pub fn decide(&self, kind: DeviceKind, major: u32, minor: u32, access: u32) -> Option<bool> {
        let kind_matches = self.kind == DeviceKind::All || self.kind == kind;
        let access_matches = if self.allow {
            access & !self.access == 0
        } else {
            access & self.access != 0
        };
        let number_matches =
            self.major.is_none_or(|m| m == major) && self.minor.is_none_or(|m| m == minor);
        (kind_matches && access_matches && number_matches).then_some(self.allow)
    }
}

/// The decision of a whole rule list (last match wins, default allow).
pub fn evaluate(
    rules: &[DeviceRule],
    kind: DeviceKind,
    major: u32,
    minor: u32,
    access: u32,
) -> bool {
    rules
        .iter()
        .rev()
        .find_map(|r| r.decide(kind, major, minor, access))
        .unwrap_or(true)
}

/// The devices every container may use whatever its config says (the same
/// list runc appends): mknod of anything, /dev/null, zero, full, random,
/// urandom, tty, console, ptmx and the pty slaves.
pub fn default_rules() -> Vec<DeviceRule> {
    let mknod_any = |kind| DeviceRule {
        allow: true,
        kind,
        major: None,
        minor: None,
        access: ACCESS_MKNOD,
    };
    vec![
        mknod_any(DeviceKind::Char),
        mknod_any(DeviceKind::Block),
        DeviceRule::char_device(1, Some(3)), // null
        DeviceRule::char_device(1, Some(5)), // zero
        DeviceRule::char_device(1, Some(7)), // full
        DeviceRule::char_device(1, Some(8)), // random
        DeviceRule::char_device(1, Some(9)), // urandom
        DeviceRule::char_device(5, Some(0)), // tty
        DeviceRule::char_device(5, Some(1)), // console
        DeviceRule::char_device(5, Some(2)), // ptmx
        DeviceRule::char_device(136, None),  // pts/*
    ]
}

/// The config's rules followed by the defaults, so the defaults win.
pub fn effective_rules(config: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>> {
    let mut rules = config
        .iter()
        .map(DeviceRule::from_oci)
        .collect::<Result<Vec<_>>>()?;
    rules.extend(default_rules());
    Ok(rules)
}

/// A rule list said as an allow list, the only form systemd's
/// `DevicePolicy=`/`DeviceAllow=` can take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowList {
    /// Devices not allowed by an entry are denied (the rules start from a
    /// deny-all rule); `false`: every device is allowed.
    pub strict: bool,
    /// Allow rules, each granting its access bits to its devices.
    pub allowed: Vec<DeviceRule>,
    /// The rules the list could not follow exactly, with what was done.
    pub inexact: Vec<String>,
}

/// The allow list with the decisions of [`evaluate`] on `rules`.
///
/// Rules before the last unconditional one (`a *:* rwm`) cannot decide
/// anything. From a deny-all base, an allow rule adds an entry and a deny
/// rule takes its bits from the entries it covers; one that covers only
/// part of an entry takes them from the whole entry (no list can say
/// "136:* but not 136:3"), denying more rather than less. From an
/// allow-all base no deny rule can be said at all.
pub fn allow_list(rules: &[DeviceRule]) -> AllowList {
    let base = rules
        .iter()
        .rposition(|r| r.is_wildcard() && r.access == ACCESS_ALL);
    let (strict, rest) = match base {
        Some(at) => (!rules[at].allow, &rules[at + 1..]),
        None => (false, rules),
    };
    let mut list = AllowList {
        strict,
        allowed: Vec::new(),
        inexact: Vec::new(),
    };
    for rule in rest {
        match (strict, rule.allow) {
            (true, true) => list.allowed.push(rule.clone()),
            (true, false) => apply_deny(&mut list, rule),
            // Every device is allowed already.
            (false, true) => {}
            (false, false) => list.inexact.push(format!(
                "deny rule {:?} follows no deny-all rule: dropped, every device is allowed",
                rule.v1_line()
            )),
        }
    }
    list.allowed.retain(|r| r.access != 0);
    list
}

/// Takes a deny rule's bits from the entries it touches.
fn apply_deny(list: &mut AllowList, deny: &DeviceRule) {
    for entry in &mut list.allowed {
        if !deny.overlaps(entry) || entry.access & deny.access == 0 {
            continue;
        }
        if !deny.covers(entry) {
            list.inexact.push(format!(
                "deny rule {:?} covers part of allow rule {:?}: its bits are taken from all of it",
                deny.v1_line(),
                entry.v1_line()
            ));
        }
        entry.access &= !deny.access;
    }
}

/// The access bits as `rwm` letters, in that order.
pub fn access_string(access: u32) -> String {
    [(ACCESS_READ, 'r'), (ACCESS_WRITE, 'w'), (ACCESS_MKNOD, 'm')]
        .iter()
        .filter(|(bit, _)| access & bit != 0)
        .map(|(_, letter)| *letter)
        .collect()
}

fn invalid(reason: &str) -> Error {
    Error::InvalidResource {
        resource: "devices",
        reason: reason.to_owned(),
    }
}

fn device_number(n: Option<i64>, what: &str) -> Result<Option<u32>> {
    match n {
        None | Some(-1) => Ok(None),
        Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err(invalid(&format!("{what} number {n} is out of range"))),
    }
}

fn parse_access(access: &str) -> Result<u32> {
    let mut bits = 0;
    for c in access.chars() {
        bits |= match c {
            'r' => ACCESS_READ,
            'w' => ACCESS_WRITE,
            'm' => ACCESS_MKNOD,
            _ => return Err(invalid(&format!("access {access:?} may hold only r, w, m"))),
        };
    }
    if bits == 0 {
        // An empty access string means all access in the runtime-spec.
        bits = ACCESS_ALL;
    }
    Ok(bits)
}

/// One eBPF instruction (struct bpf_insn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BpfInsn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes used (class | op | source).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU64_MOV_X: u8 = 0xbf; // dst = src
const ALU64_MOV_K: u8 = 0xb7; // dst = imm
const ALU64_AND_K: u8 = 0x57; // dst &= imm
const ALU64_RSH_K: u8 = 0x77; // dst >>= imm
const JMP_JNE_K: u8 = 0x55; // if dst != imm goto +off
const JMP_JEQ_K: u8 = 0x15; // if dst == imm goto +off
const JMP_EXIT: u8 = 0x95;

// Registers: r1 is the context on entry.
const R0: u8 = 0;
const R1: u8 = 1;
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;
const R_SCRATCH: u8 = 6;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// Generates a BPF_PROG_TYPE_CGROUP_DEVICE program returning 1 (allow) or
/// 0 (deny) with exactly the semantics of [`evaluate`].
///
/// Layout: load type, access, major and minor from `bpf_cgroup_dev_ctx`,
/// then one block per rule from the last to the first; a block whose test
/// fails jumps to the next block, a block that matches returns its verdict.
pub fn device_program(rules: &[DeviceRule]) -> Vec<BpfInsn> {
    let mut prog = vec![
        insn(LDX_MEM_W, R_TYPE, R1, 0, 0),
        insn(ALU64_MOV_X, R_ACCESS, R_TYPE, 0, 0),
        insn(ALU64_AND_K, R_TYPE, 0, 0, 0xffff),
        insn(ALU64_RSH_K, R_ACCESS, 0, 0, 16),
        insn(LDX_MEM_W, R_MAJOR, R1, 4, 0),
        insn(LDX_MEM_W, R_MINOR, R1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        prog.extend(rule_block(rule));
        if rule.is_wildcard() && rule.access == ACCESS_ALL {
            // An unconditional verdict: anything after it would be
            // unreachable, which the verifier rejects.
            return prog;
        }
    }
    prog.push(insn(ALU64_MOV_K, R0, 0, 0, 1));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    prog
}

/// One rule's tests and verdict; every failing test jumps past the block.
fn rule_block(rule: &DeviceRule) -> Vec<BpfInsn> {
    // Tests are built with a placeholder offset, patched once the block's
    // length is known: "jump to the end of this block".
    let mut tests: Vec<BpfInsn> = Vec::new();
    match rule.kind {
        DeviceKind::All => {}
        DeviceKind::Char => tests.push(insn(JMP_JNE_K, R_TYPE, 0, 0, BPF_DEVCG_DEV_CHAR)),
        DeviceKind::Block => tests.push(insn(JMP_JNE_K, R_TYPE, 0, 0, BPF_DEVCG_DEV_BLOCK)),
    }
    if rule.access != ACCESS_ALL {
        tests.push(insn(ALU64_MOV_X, R_SCRATCH, R_ACCESS, 0, 0));
        if rule.allow {
            // Any requested bit the rule does not grant: no match.
            tests.push(insn(
                ALU64_AND_K,
                R_SCRATCH,
                0,
                0,
                (!rule.access & ACCESS_ALL) as i32,
            ));
            tests.push(insn(JMP_JNE_K, R_SCRATCH, 0, 0, 0));
        } else {
            // No requested bit covered by the deny: no match.
            tests.push(insn(ALU64_AND_K, R_SCRATCH, 0, 0, rule.access as i32));
            tests.push(insn(JMP_JEQ_K, R_SCRATCH, 0, 0, 0));
        }
    }
    if let Some(major) = rule.major {
        tests.push(insn(JMP_JNE_K, R_MAJOR, 0, 0, major as i32));
    }
    if let Some(minor) = rule.minor {
        tests.push(insn(JMP_JNE_K, R_MINOR, 0, 0, minor as i32));
    }
    let verdict = [
        insn(ALU64_MOV_K, R0, 0, 0, i32::from(rule.allow)),
        insn(JMP_EXIT, 0, 0, 0, 0),
    ];
    let block_len = tests.len() + verdict.len();
    for (index, test) in tests.iter_mut().enumerate() {
        if matches!(test.code, JMP_JNE_K | JMP_JEQ_K) {
            // Offsets count from the instruction after the jump.
            test.off = (block_len - index - 1) as i16;
        }
    }
    tests.extend(verdict);
    tests
}

/// A tiny interpreter for the instructions [`device_program`] emits, so
/// unit tests can check the program against [`evaluate`] without a kernel.
#[cfg(test)]
pub(crate) fn interpret(prog: &[BpfInsn], ctx: [u32; 3]) -> u64 {
    let mut regs = [0u64; 11];
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        pc += 1;
        match i.code {
            LDX_MEM_W => regs[dst] = u64::from(ctx[i.off as usize / 4]),
            ALU64_MOV_X => regs[dst] = regs[src],
            ALU64_MOV_K => regs[dst] = i.imm as i64 as u64,
            ALU64_AND_K => regs[dst] &= i.imm as i64 as u64,
            ALU64_RSH_K => regs[dst] >>= i.imm,
            JMP_JNE_K if regs[dst] != i.imm as i64 as u64 => pc += i.off as usize,
            JMP_JEQ_K if regs[dst] == i.imm as i64 as u64 => pc += i.off as usize,
            JMP_JNE_K | JMP_JEQ_K => {}
            JMP_EXIT => return regs[0],
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    /// A device cgroup rule (also used by the systemd translation's tests).
    pub(crate) fn oci(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    fn sample_rules() -> Vec<DeviceRule> {
        let config = vec![
            oci(false, LinuxDeviceType::A, None, None, "rwm"),
            oci(true, LinuxDeviceType::C, Some(10), Some(200), "rw"),
            oci(true, LinuxDeviceType::B, Some(8), None, "r"),
            oci(false, LinuxDeviceType::C, Some(1), Some(9), "w"),
        ];
        effective_rules(&config).unwrap()
    }

    #[test]
    fn v1_lines_match_the_kernel_syntax() {
        let rules = sample_rules();
        assert_eq!(rules[0].v1_line(), "a *:* rwm");
        assert_eq!(rules[0].v1_file(), "devices.deny");
        assert_eq!(rules[1].v1_line(), "c 10:200 rw");
        assert_eq!(rules[2].v1_line(), "b 8:* r");
        assert_eq!(rules[2].v1_file(), "devices.allow");
    }

    #[test]
    fn rejects_bad_rules() {
        assert!(
            DeviceRule::from_oci(&oci(true, LinuxDeviceType::C, Some(1), Some(3), "rx")).is_err()
        );
        assert!(DeviceRule::from_oci(&oci(true, LinuxDeviceType::P, None, None, "r")).is_err());
        assert!(DeviceRule::from_oci(&oci(true, LinuxDeviceType::C, Some(-7), None, "r")).is_err());
    }

    #[test]
    fn evaluation_follows_last_match() {
        let rules = sample_rules();
        let c = DeviceKind::Char;
        let b = DeviceKind::Block;
        assert!(evaluate(&rules, c, 1, 3, ACCESS_READ | ACCESS_WRITE)); // null by default
        assert!(!evaluate(&rules, c, 4, 1, ACCESS_READ)); // denied by wildcard
        assert!(evaluate(&rules, c, 10, 200, ACCESS_READ | ACCESS_WRITE));
        assert!(!evaluate(&rules, c, 10, 201, ACCESS_READ));
        assert!(evaluate(&rules, b, 8, 1, ACCESS_READ));
        assert!(!evaluate(&rules, b, 8, 1, ACCESS_WRITE));
        assert!(evaluate(&rules, b, 8, 1, ACCESS_MKNOD)); // default mknod
        assert!(evaluate(&rules, c, 136, 4, ACCESS_WRITE)); // pts
    }

    #[test]
    fn program_agrees_with_evaluation_everywhere() {
        let rules = sample_rules();
        let prog = device_program(&rules);
        let kinds = [
            (DeviceKind::Char, BPF_DEVCG_DEV_CHAR),
            (DeviceKind::Block, BPF_DEVCG_DEV_BLOCK),
        ];
        for (kind, kind_code) in kinds {
            for major in [0, 1, 4, 5, 8, 10, 136] {
                for minor in [0, 1, 3, 5, 9, 200, 201] {
                    for access in 1..=7 {
                        let ctx = [(access << 16) | kind_code as u32, major, minor];
                        let expected = evaluate(&rules, kind, major, minor, access);
                        assert_eq!(
                            interpret(&prog, ctx) == 1,
                            expected,
                            "{kind:?} {major}:{minor} access {access}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn empty_rule_list_allows_everything() {
        let prog = device_program(&[]);
        assert_eq!(interpret(&prog, [(ACCESS_READ << 16) | 2, 4, 1]), 1);
    }

    /// Every decision of `rules` against those of its allow list.
    fn assert_list_agrees(rules: &[DeviceRule]) {
        let list = allow_list(rules);
        assert!(list.inexact.is_empty(), "{:?}", list.inexact);
        let mut flat = vec![DeviceRule {
            allow: !list.strict,
            kind: DeviceKind::All,
            major: None,
            minor: None,
            access: ACCESS_ALL,
        }];
        flat.extend(list.allowed);
        for kind in [DeviceKind::Char, DeviceKind::Block] {
            for major in [1, 4, 5, 8, 10, 136] {
                for minor in [0, 1, 3, 9, 200, 229] {
                    for access in 1..=7 {
                        assert_eq!(
                            evaluate(&flat, kind, major, minor, access),
                            evaluate(rules, kind, major, minor, access),
                            "{kind:?} {major}:{minor} access {access}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn allow_lists_decide_as_the_rules_do() {
        let rules = sample_rules();
        let list = allow_list(&rules);
        assert!(list.strict);
        // The rules after the deny-all, "c 1:9 w" taken from no entry yet.
        assert_eq!(list.allowed.len(), rules.len() - 2);
        assert_list_agrees(&rules);
        // A deny covering a whole earlier entry narrows it exactly.
        let config = vec![
            oci(false, LinuxDeviceType::A, None, None, "rwm"),
            oci(true, LinuxDeviceType::C, Some(10), None, "rwm"),
            oci(false, LinuxDeviceType::C, Some(10), None, "w"),
            oci(true, LinuxDeviceType::C, Some(10), Some(229), "rwm"),
        ];
        assert_list_agrees(&effective_rules(&config).unwrap());
    }

    #[test]
    fn allow_lists_start_from_the_last_unconditional_rule() {
        let allow_all = oci(true, LinuxDeviceType::A, None, None, "rwm");
        let deny_all = oci(false, LinuxDeviceType::A, None, None, "rwm");
        let rules = effective_rules(&[deny_all.clone(), allow_all.clone()]).unwrap();
        let list = allow_list(&rules);
        assert!(!list.strict);
        assert!(list.allowed.is_empty() && list.inexact.is_empty());
        let rules = effective_rules(&[allow_all, deny_all]).unwrap();
        assert_eq!(allow_list(&rules).allowed, default_rules());
    }

    #[test]
    fn denies_an_allow_list_cannot_say_are_reported() {
        // Part of a wildcard entry: the whole entry loses the bit.
        let config = vec![
            oci(false, LinuxDeviceType::A, None, None, "rwm"),
            oci(true, LinuxDeviceType::C, Some(10), None, "rw"),
            oci(false, LinuxDeviceType::C, Some(10), Some(229), "w"),
        ];
        let list = allow_list(&effective_rules(&config).unwrap());
        assert_eq!(list.allowed[0].v1_line(), "c 10:* r");
        assert_eq!(list.inexact.len(), 1);
        // No deny-all base: the deny is dropped.
        let config = vec![oci(false, LinuxDeviceType::C, Some(1), Some(11), "rwm")];
        let list = allow_list(&effective_rules(&config).unwrap());
        assert!(!list.strict && list.allowed.is_empty());
        assert_eq!(list.inexact.len(), 1);
    }

    #[test]
    fn trailing_rules_after_an_unconditional_verdict_are_dropped() {
        let allow_all = DeviceRule {
            allow: true,
            kind: DeviceKind::All,
            major: None,
            minor: None,
            access: ACCESS_ALL,
        };
        let prog = device_program(&[DeviceRule::char_device(1, Some(3)), allow_all]);
        assert_eq!(prog.len(), 6 + 2);
    }
}
