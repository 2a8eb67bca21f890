//! The system call ABIs a filter can see on an x86_64 host, and their name tables.

use oci_spec::runtime::Arch;

use crate::tables;

/// `AUDIT_ARCH_X86_64`: the value of `seccomp_data.arch` for 64-bit and x32 system calls.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386`: the value of `seccomp_data.arch` for 32-bit (int 0x80, sysenter) calls.
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// x32 system calls arrive as AUDIT_ARCH_X86_64 with this bit set in the number.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// One system call ABI of the x86 family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Abi {
    X86_64,
    I386,
    X32,
}

impl Abi {
    /// The `seccomp_data.arch` value the kernel reports for this ABI.
    pub fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::I386 => AUDIT_ARCH_I386,
        }
    }

    /// The system call number of `name` in this ABI, if this ABI has it.
    pub fn syscall_number(self, name: &str) -> Option<u32> {
        let table = match self {
            Abi::X86_64 => tables::X86_64,
            Abi::I386 => tables::I386,
            Abi::X32 => tables::X32,
        };
        table
            .binary_search_by(|(known, _)| (*known).cmp(name))
            .ok()
            .map(|i| table[i].1)
    }

    /// The libseccomp name of the ABI, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Abi::X86_64 => "SCMP_ARCH_X86_64",
            Abi::I386 => "SCMP_ARCH_X86",
            Abi::X32 => "SCMP_ARCH_X32",
        }
    }
}

/// The ABIs a profile's `architectures` asks for, as far as this host can run them.
///
/// The native ABI is always filtered (as libseccomp does). Architectures of other
/// families (arm, ppc, ...) are accepted and need no code: an x86_64 kernel never
/// reports them, so their system calls cannot reach this filter.
pub fn requested_abis(architectures: Option<&Vec<Arch>>) -> Vec<Abi> {
    let mut abis = vec![Abi::X86_64];
    for arch in architectures.into_iter().flatten() {
        let abi = match arch {
            Arch::ScmpArchNative | Arch::ScmpArchX86_64 => Abi::X86_64,
            Arch::ScmpArchX86 => Abi::I386,
            Arch::ScmpArchX32 => Abi::X32,
            _ => continue,
        };
        if !abis.contains(&abi) {
            abis.push(abi);
        }
    }
    abis.sort();
    abis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_for_binary_search() {
        for table in [tables::X86_64, tables::I386, tables::X32] {
            assert!(table.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }

    #[test]
    fn numbers_match_the_kernel_abi() {
        assert_eq!(Abi::X86_64.syscall_number("read"), Some(0));
        assert_eq!(Abi::X86_64.syscall_number("unshare"), Some(272));
        assert_eq!(Abi::X86_64.syscall_number("clone3"), Some(435));
        assert_eq!(Abi::X86_64.syscall_number("mseal"), Some(462));
        assert_eq!(Abi::I386.syscall_number("read"), Some(3));
        assert_eq!(Abi::I386.syscall_number("socketcall"), Some(102));
        assert_eq!(Abi::X32.syscall_number("read"), Some(X32_SYSCALL_BIT));
        assert_eq!(Abi::X86_64.syscall_number("socketcall"), None);
        assert_eq!(Abi::X86_64.syscall_number("no_such_call"), None);
    }

    #[test]
    fn native_is_always_present_and_foreign_families_are_ignored() {
        assert_eq!(requested_abis(None), vec![Abi::X86_64]);
        let archs = vec![
            Arch::ScmpArchX32,
            Arch::ScmpArchAarch64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX86_64,
        ];
        assert_eq!(
            requested_abis(Some(&archs)),
            vec![Abi::X86_64, Abi::I386, Abi::X32]
        );
    }
}
