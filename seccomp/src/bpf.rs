//! Classic BPF as seccomp uses it: instruction encoding, composition of
//! "terminal" fragments (every path ends in a return), a verifier and an
//! interpreter that runs a program the way the kernel would.

use libc::sock_filter;

use crate::error::Error;

/// The kernel's limit on the length of one filter (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

// Opcodes (linux/bpf_common.h): class | size/operation | source.
const BPF_LD: u16 = 0x00;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_AND: u16 = 0x50;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_K: u16 = 0x00;

pub const LD_W_ABS: u16 = BPF_LD | BPF_W | BPF_ABS;
pub const ALU_AND_K: u16 = BPF_ALU | BPF_AND | BPF_K;
pub const JMP_JA: u16 = BPF_JMP | BPF_JA;
pub const JMP_JEQ_K: u16 = BPF_JMP | BPF_JEQ | BPF_K;
pub const JMP_JGT_K: u16 = BPF_JMP | BPF_JGT | BPF_K;
pub const JMP_JGE_K: u16 = BPF_JMP | BPF_JGE | BPF_K;
pub const RET_K: u16 = BPF_RET | BPF_K;

/// Offsets in `struct seccomp_data`.
pub const DATA_NR: u32 = 0;
pub const DATA_ARCH: u32 = 4;
const DATA_IP: u32 = 8;
const DATA_ARGS: u32 = 16;
const DATA_LEN: u32 = 64;

/// Offsets of the low and high 32-bit halves of argument `index` (little endian).
pub fn arg_words(index: u8) -> (u32, u32) {
    let low = DATA_ARGS + 8 * u32::from(index);
    (low, low + 4)
}

pub fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

pub fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

pub fn ret(value: u32) -> sock_filter {
    stmt(RET_K, value)
}

/// `if (A <code> k) on_true else on_false`, both terminal fragments.
///
/// Layout: the test, then `on_false`, then `on_true`. A conditional jump only
/// reaches 255 instructions ahead, so a long `on_false` is jumped over with an
/// unconditional `ja` (32-bit offset) instead.
pub fn branch(
    code: u16,
    k: u32,
    on_true: Vec<sock_filter>,
    on_false: Vec<sock_filter>,
) -> Vec<sock_filter> {
    let mut out = Vec::with_capacity(on_true.len() + on_false.len() + 2);
    match u8::try_from(on_false.len()) {
        Ok(skip) => out.push(jump(code, k, skip, 0)),
        Err(_) => {
            out.push(jump(code, k, 0, 1));
            // A program longer than u32::MAX is rejected long before (MAX_INSNS).
            out.push(stmt(JMP_JA, on_false.len() as u32));
        }
    }
    out.extend(on_false);
    out.extend(on_true);
    out
}

/// Checks what the kernel's checker would: known opcodes, loads inside
/// `seccomp_data` and aligned, every jump forward and inside the program,
/// and a return at the end (so no path falls off).
pub fn verify(program: &[sock_filter]) -> Result<(), Error> {
    if program.is_empty() {
        return Err(Error::Internal("empty program".into()));
    }
    if program.len() > MAX_INSNS {
        return Err(Error::TooLong(program.len()));
    }
    for (pc, insn) in program.iter().enumerate() {
        let rest = program.len() - pc - 1;
        let in_range = |off: usize| -> Result<(), Error> {
            if off < rest {
                Ok(())
            } else {
                Err(Error::Internal(format!(
                    "instruction {pc} jumps {off} past the end"
                )))
            }
        };
        match insn.code {
            LD_W_ABS if insn.k % 4 != 0 || insn.k >= DATA_LEN => {
                return Err(Error::Internal(format!(
                    "instruction {pc} loads offset {}",
                    insn.k
                )))
            }
            LD_W_ABS | ALU_AND_K | RET_K => {}
            JMP_JA => in_range(insn.k as usize)?,
            JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K => {
                in_range(insn.jt.into())?;
                in_range(insn.jf.into())?;
            }
            code => {
                return Err(Error::Internal(format!(
                    "instruction {pc} has opcode {code:#x}"
                )))
            }
        }
    }
    match program.last() {
        Some(last) if last.code == RET_K => Ok(()),
        _ => Err(Error::Internal(
            "the program does not end in a return".into(),
        )),
    }
}

/// The input of a seccomp filter (`struct seccomp_data`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompData {
    pub nr: u32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    fn word(&self, offset: u32) -> Option<u32> {
        let half = |v: u64| {
            if offset.is_multiple_of(8) {
                v as u32
            } else {
                (v >> 32) as u32
            }
        };
        match offset {
            DATA_NR => Some(self.nr),
            DATA_ARCH => Some(self.arch),
            o if (DATA_IP..DATA_ARGS).contains(&o) => Some(half(self.instruction_pointer)),
            o if (DATA_ARGS..DATA_LEN).contains(&o) && o % 4 == 0 => {
                Some(half(self.args[((o - DATA_ARGS) / 8) as usize]))
            }
            _ => None,
        }
    }
}

/// Runs `program` on `data` and returns the seccomp return value, as the kernel would.
pub fn run(program: &[sock_filter], data: &SeccompData) -> Result<u32, Error> {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    while let Some(insn) = program.get(pc) {
        let taken = |cond: bool| pc + 1 + usize::from(if cond { insn.jt } else { insn.jf });
        pc = match insn.code {
            LD_W_ABS => {
                acc = data
                    .word(insn.k)
                    .ok_or_else(|| Error::Internal(format!("bad load offset {}", insn.k)))?;
                pc + 1
            }
            ALU_AND_K => {
                acc &= insn.k;
                pc + 1
            }
            JMP_JA => pc + 1 + insn.k as usize,
            JMP_JEQ_K => taken(acc == insn.k),
            JMP_JGT_K => taken(acc > insn.k),
            JMP_JGE_K => taken(acc >= insn.k),
            RET_K => return Ok(insn.k),
            code => return Err(Error::Internal(format!("opcode {code:#x} at {pc}"))),
        };
    }
    Err(Error::Internal("ran off the end of the program".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rets(n: usize, value: u32) -> Vec<sock_filter> {
        (0..n).map(|_| ret(value)).collect()
    }

    #[test]
    fn short_branch_uses_jt_and_falls_through_to_false() {
        let prog = [
            vec![stmt(LD_W_ABS, DATA_NR)],
            branch(JMP_JEQ_K, 7, vec![ret(1)], vec![ret(2)]),
        ]
        .concat();
        verify(&prog).unwrap();
        let data = |nr| SeccompData {
            nr,
            ..Default::default()
        };
        assert_eq!(run(&prog, &data(7)).unwrap(), 1);
        assert_eq!(run(&prog, &data(8)).unwrap(), 2);
    }

    #[test]
    fn long_false_side_is_jumped_over_with_ja() {
        let on_false = rets(300, 2);
        let prog = [
            vec![stmt(LD_W_ABS, DATA_NR)],
            branch(JMP_JGE_K, 10, vec![ret(1)], on_false),
        ]
        .concat();
        verify(&prog).unwrap();
        assert!(prog.iter().any(|i| i.code == JMP_JA));
        let data = |nr| SeccompData {
            nr,
            ..Default::default()
        };
        assert_eq!(run(&prog, &data(10)).unwrap(), 1);
        assert_eq!(run(&prog, &data(9)).unwrap(), 2);
    }

    #[test]
    fn verify_rejects_out_of_range_jumps_and_missing_return() {
        assert!(verify(&[jump(JMP_JEQ_K, 0, 1, 0)]).is_err());
        assert!(verify(&[stmt(LD_W_ABS, DATA_NR)]).is_err());
        assert!(verify(&[stmt(LD_W_ABS, 66), ret(0)]).is_err());
        assert!(verify(&[]).is_err());
    }

    #[test]
    fn loads_see_both_halves_of_arguments() {
        let data = SeccompData {
            args: [0, 0, 0x1122_3344_5566_7788, 0, 0, 0],
            ..Default::default()
        };
        let (lo, hi) = arg_words(2);
        assert_eq!(data.word(lo), Some(0x5566_7788));
        assert_eq!(data.word(hi), Some(0x1122_3344));
    }
}
