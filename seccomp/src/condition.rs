//! Argument conditions: the seven libseccomp comparison operators on 64-bit
//! arguments, compiled to 32-bit BPF comparisons of the two halves.

use libc::sock_filter;
use oci_spec::runtime::{LinuxSeccompArg, LinuxSeccompOperator};

use crate::bpf::{arg_words, jump, stmt, ALU_AND_K, JMP_JEQ_K, JMP_JGE_K, JMP_JGT_K, LD_W_ABS};
use crate::error::{invalid, Error};

/// Number of system call arguments the kernel passes to filters.
pub const MAX_ARGS: usize = 6;

/// One comparison of a 64-bit argument, unsigned like libseccomp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Ne(u64),
    Lt(u64),
    Le(u64),
    Eq(u64),
    Ge(u64),
    Gt(u64),
    /// `(arg & mask) == value`
    MaskedEq {
        mask: u64,
        value: u64,
    },
}

/// A condition on argument `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond {
    pub index: u8,
    pub op: Op,
}

impl Cond {
    /// Reads an OCI `args` entry. For MASKED_EQ `value` is the mask and `valueTwo`
    /// the value compared with (runtime spec, libseccomp's datum_a/datum_b).
    pub fn from_oci(arg: &LinuxSeccompArg) -> Result<Cond, String> {
        let index = u8::try_from(arg.index())
            .ok()
            .filter(|i| usize::from(*i) < MAX_ARGS)
            .ok_or_else(|| format!("argument index {} is out of range (0..=5)", arg.index()))?;
        let v = arg.value();
        let op = match arg.op() {
            LinuxSeccompOperator::ScmpCmpNe => Op::Ne(v),
            LinuxSeccompOperator::ScmpCmpLt => Op::Lt(v),
            LinuxSeccompOperator::ScmpCmpLe => Op::Le(v),
            LinuxSeccompOperator::ScmpCmpEq => Op::Eq(v),
            LinuxSeccompOperator::ScmpCmpGe => Op::Ge(v),
            LinuxSeccompOperator::ScmpCmpGt => Op::Gt(v),
            LinuxSeccompOperator::ScmpCmpMaskedEq => Op::MaskedEq {
                mask: v,
                value: arg.value_two().unwrap_or(0),
            },
        };
        Ok(Cond { index, op })
    }

    #[cfg(test)]
    /// What the condition means, evaluated directly (the reference the BPF is tested against).
    pub fn holds(&self, args: &[u64; MAX_ARGS]) -> bool {
        let a = args[usize::from(self.index)];
        match self.op {
            Op::Ne(v) => a != v,
            Op::Lt(v) => a < v,
            Op::Le(v) => a <= v,
            Op::Eq(v) => a == v,
            Op::Ge(v) => a >= v,
            Op::Gt(v) => a > v,
            Op::MaskedEq { mask, value } => a & mask == value,
        }
    }

    /// The condition as BPF: falls through to the instruction after it when the
    /// condition holds, jumps `fail_skip` instructions past its end when it does not.
    pub fn emit(&self, fail_skip: usize) -> Result<Vec<sock_filter>, Error> {
        let (lo_off, hi_off) = arg_words(self.index);
        let split = |v: u64| ((v >> 32) as u32, v as u32);
        // Each step: (load offset, optional AND mask, comparisons). A comparison
        // names where its true and false edges go: the next comparison, PASS
        // (end of the block) or FAIL (end of the block + fail_skip).
        let steps: Vec<Step> = match self.op {
            Op::Eq(v) => {
                let (hi, lo) = split(v);
                vec![
                    (hi_off, None, vec![(JMP_JEQ_K, hi, Edge::Next, Edge::Fail)]),
                    (lo_off, None, vec![(JMP_JEQ_K, lo, Edge::Pass, Edge::Fail)]),
                ]
            }
            Op::Ne(v) => {
                let (hi, lo) = split(v);
                vec![
                    (hi_off, None, vec![(JMP_JEQ_K, hi, Edge::Next, Edge::Pass)]),
                    (lo_off, None, vec![(JMP_JEQ_K, lo, Edge::Fail, Edge::Pass)]),
                ]
            }
            Op::Gt(v) | Op::Ge(v) => {
                let (hi, lo) = split(v);
                let last = if matches!(self.op, Op::Gt(_)) {
                    JMP_JGT_K
                } else {
                    JMP_JGE_K
                };
                vec![
                    (
                        hi_off,
                        None,
                        vec![
                            (JMP_JGT_K, hi, Edge::Pass, Edge::Next),
                            (JMP_JEQ_K, hi, Edge::Next, Edge::Fail),
                        ],
                    ),
                    (lo_off, None, vec![(last, lo, Edge::Pass, Edge::Fail)]),
                ]
            }
            // a < v  is  !(a >= v);  a <= v  is  !(a > v).
            Op::Lt(v) | Op::Le(v) => {
                let (hi, lo) = split(v);
                let last = if matches!(self.op, Op::Lt(_)) {
                    JMP_JGE_K
                } else {
                    JMP_JGT_K
                };
                vec![
                    (
                        hi_off,
                        None,
                        vec![
                            (JMP_JGE_K, hi, Edge::Next, Edge::Pass),
                            (JMP_JEQ_K, hi, Edge::Next, Edge::Fail),
                        ],
                    ),
                    (lo_off, None, vec![(last, lo, Edge::Fail, Edge::Pass)]),
                ]
            }
            Op::MaskedEq { mask, value } => {
                let (mhi, mlo) = split(mask);
                let (vhi, vlo) = split(value);
                vec![
                    (
                        hi_off,
                        Some(mhi),
                        vec![(JMP_JEQ_K, vhi, Edge::Next, Edge::Fail)],
                    ),
                    (
                        lo_off,
                        Some(mlo),
                        vec![(JMP_JEQ_K, vlo, Edge::Pass, Edge::Fail)],
                    ),
                ]
            }
        };
        assemble(&steps, fail_skip)
    }
}

/// Where one edge of a comparison goes.
#[derive(Clone, Copy)]
enum Edge {
    /// The instruction right after this comparison.
    Next,
    /// The end of the condition: it holds.
    Pass,
    /// `fail_skip` instructions past the end: it does not hold.
    Fail,
}

/// A comparison: opcode, constant, where the true and false edges go.
type Compare = (u16, u32, Edge, Edge);
/// Load a word (offset), optionally AND it with a mask, then compare.
type Step = (u32, Option<u32>, Vec<Compare>);

fn assemble(steps: &[Step], fail_skip: usize) -> Result<Vec<sock_filter>, Error> {
    let len: usize = steps
        .iter()
        .map(|(_, mask, cmps)| 1 + usize::from(mask.is_some()) + cmps.len())
        .sum();
    let mut out = Vec::with_capacity(len);
    for (offset, mask, cmps) in steps {
        out.push(stmt(LD_W_ABS, *offset));
        if let Some(mask) = mask {
            out.push(stmt(ALU_AND_K, *mask));
        }
        for &(code, k, on_true, on_false) in cmps {
            let after = len - out.len() - 1;
            let offset_of = |edge: Edge| -> Result<u8, Error> {
                let skip = match edge {
                    Edge::Next => 0,
                    Edge::Pass => after,
                    Edge::Fail => after + fail_skip,
                };
                u8::try_from(skip)
                    .map_err(|_| invalid("a rule has too many argument conditions to compile"))
            };
            out.push(jump(code, k, offset_of(on_true)?, offset_of(on_false)?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::{ret, run, verify, SeccompData};

    /// Boundary values around `v` in both halves: where 64-bit compares built from
    /// two 32-bit compares go wrong.
    fn probes(v: u64) -> Vec<u64> {
        let mut out = vec![
            0,
            1,
            u64::MAX,
            u64::MAX - 1,
            1 << 32,
            (1 << 32) - 1,
            0x8000_0000,
            0x8000_0000_0000_0000,
        ];
        for d in [0u64, 1, 1 << 32, (1 << 32) + 1, 0xffff_ffff] {
            out.push(v.wrapping_add(d));
            out.push(v.wrapping_sub(d));
        }
        out.push(v ^ 0xffff_ffff);
        out.push(v ^ 0xffff_ffff_0000_0000);
        out
    }

    fn check(cond: Cond) {
        let mut prog = cond.emit(1).unwrap();
        prog.push(ret(1)); // holds
        prog.push(ret(0)); // does not hold
        verify(&prog).unwrap();
        let v = match cond.op {
            Op::Ne(v) | Op::Lt(v) | Op::Le(v) | Op::Eq(v) | Op::Ge(v) | Op::Gt(v) => v,
            Op::MaskedEq { value, .. } => value,
        };
        for a in probes(v) {
            let mut args = [0u64; MAX_ARGS];
            args[usize::from(cond.index)] = a;
            let data = SeccompData {
                args,
                ..Default::default()
            };
            let got = run(&prog, &data).unwrap() == 1;
            assert_eq!(got, cond.holds(&args), "{cond:?} with argument {a:#x}");
        }
    }

    #[test]
    fn every_operator_matches_its_64_bit_meaning() {
        let values = [
            0,
            1,
            0xffff_ffff,
            1 << 32,
            0x1_0000_0001,
            0x7e02_0000,
            u64::MAX,
            0x8000_0000_0000_0001,
        ];
        for (index, v) in values.into_iter().enumerate() {
            let index = (index % MAX_ARGS) as u8;
            for op in [
                Op::Ne(v),
                Op::Lt(v),
                Op::Le(v),
                Op::Eq(v),
                Op::Ge(v),
                Op::Gt(v),
            ] {
                check(Cond { index, op });
            }
            for mask in [0, u64::MAX, 0x7e02_0000, 0xffff_0000_0000_ffff] {
                check(Cond {
                    index,
                    op: Op::MaskedEq {
                        mask,
                        value: v & mask,
                    },
                });
                check(Cond {
                    index,
                    op: Op::MaskedEq { mask, value: v },
                });
            }
        }
    }

    #[test]
    fn index_past_five_is_rejected() {
        let arg: LinuxSeccompArg =
            serde_json::from_str(r#"{"index":6,"value":1,"op":"SCMP_CMP_EQ"}"#).unwrap();
        let err = Cond::from_oci(&arg).unwrap_err();
        assert!(err.to_string().contains("index 6"), "{err}");
    }

    #[test]
    fn masked_eq_takes_mask_from_value_and_operand_from_value_two() {
        let arg: LinuxSeccompArg = serde_json::from_str(
            r#"{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}"#,
        )
        .unwrap();
        let cond = Cond::from_oci(&arg).unwrap();
        assert_eq!(
            cond.op,
            Op::MaskedEq {
                mask: 0x7e02_0000,
                value: 0
            }
        );
        assert!(cond.holds(&[0x11, 0, 0, 0, 0, 0])); // CLONE_VM-ish flags: no namespace bits
        assert!(!cond.holds(&[0x1000_0000, 0, 0, 0, 0, 0])); // CLONE_NEWUSER
    }
}
