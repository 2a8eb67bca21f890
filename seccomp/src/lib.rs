//! OCI `linux.seccomp` for the berth runtime.
//!
//! * [`compile`] turns a profile into a seccomp BPF program before the
//!   container's init is cloned: every allocation, name lookup and kernel
//!   probe happens here.
//! * [`Filter::load`] installs it in the calling thread with one seccomp(2)
//!   call on prepared data (async-signal-safe) and returns the notify fd when
//!   the profile uses SCMP_ACT_NOTIFY.
//! * [`send_to_listener`] hands that fd and the container process state to the
//!   seccomp agent at `listenerPath`, as the runtime spec describes.
//!
//! The BPF is generated here rather than by `seccompiler`, which has one match
//! action per filter, no NOTIFY, no flags and no public syscall table; it is
//! used in the tests as an independent reference instead. See README.md.

mod action;
mod arch;
mod bpf;
mod compile;
mod condition;
mod error;
mod kernel;
mod notify;
mod tables;

use std::fmt;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompFilterFlag};

pub use action::{
    RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, RET_KILL_THREAD, RET_LOG, RET_TRACE, RET_TRAP,
    RET_USER_NOTIF,
};
pub use arch::{Abi, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
pub use bpf::SeccompData;
pub use compile::BAD_ARCH_RET;
pub use error::Error;
pub use notify::{process_state_json, send_to_listener};

/// A seccomp filter flag a profile can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    Tsync,
    Log,
    SpecAllow,
    /// Linux 5.19+; only meaningful with a NOTIFY action.
    WaitKillableRecv,
}

impl Flag {
    pub const ALL: [Flag; 4] = [
        Flag::Tsync,
        Flag::Log,
        Flag::SpecAllow,
        Flag::WaitKillableRecv,
    ];

    /// The spec's name, e.g. `SECCOMP_FILTER_FLAG_TSYNC`.
    pub fn name(self) -> &'static str {
        match self {
            Flag::Tsync => "SECCOMP_FILTER_FLAG_TSYNC",
            Flag::Log => "SECCOMP_FILTER_FLAG_LOG",
            Flag::SpecAllow => "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            Flag::WaitKillableRecv => "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
        }
    }

    /// Parses a spec name (also the ones oci-spec 0.8 has no variant for).
    pub fn from_name(name: &str) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.name() == name)
    }

    fn bits(self) -> u32 {
        match self {
            Flag::Tsync => kernel::FLAG_TSYNC,
            Flag::Log => kernel::FLAG_LOG,
            Flag::SpecAllow => kernel::FLAG_SPEC_ALLOW,
            Flag::WaitKillableRecv => kernel::FLAG_WAIT_KILLABLE_RECV,
        }
    }

    /// Whether the running kernel knows this flag.
    pub fn supported(self) -> bool {
        match self {
            // The kernel only accepts it together with NEW_LISTENER.
            Flag::WaitKillableRecv => {
                kernel::flags_supported(self.bits() | kernel::FLAG_NEW_LISTENER)
            }
            _ => kernel::flags_supported(self.bits()),
        }
    }
}

impl From<LinuxSeccompFilterFlag> for Flag {
    fn from(flag: LinuxSeccompFilterFlag) -> Flag {
        match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => Flag::Tsync,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => Flag::Log,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => Flag::SpecAllow,
        }
    }
}

/// A flag the profile asked for that the filter is loaded without.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IgnoredFlag {
    pub flag: Flag,
    pub reason: &'static str,
}

/// A compiled profile, ready to load.
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: u32,
    uses_notify: bool,
    notify_syscalls: Vec<u32>,
    skipped_syscalls: Vec<String>,
    ignored_flags: Vec<IgnoredFlag>,
}

/// Compiles `cfg` with the flags it lists.
pub fn compile(cfg: &LinuxSeccomp) -> Result<Filter, Error> {
    compile_with_flags(cfg, &[])
}

/// Compiles `cfg` with its own flags plus `extra_flags` (for flags the config
/// types cannot carry yet, such as WAIT_KILLABLE_RECV with oci-spec 0.8).
pub fn compile_with_flags(cfg: &LinuxSeccomp, extra_flags: &[Flag]) -> Result<Filter, Error> {
    if !cfg!(target_arch = "x86_64") {
        return Err(Error::UnsupportedHost(std::env::consts::ARCH));
    }
    let plan = compile::Plan::from_oci(cfg)?;
    for &action in &plan.actions {
        if !kernel::action_available(action::base(action)) {
            return Err(Error::ActionUnsupported(action::name(action)));
        }
    }
    let program = plan.program()?;
    let notify_syscalls = plan.notify_syscalls();
    let uses_notify = plan
        .actions
        .contains(&oci_spec::runtime::LinuxSeccompAction::ScmpActNotify);
    let requested: Vec<Flag> = cfg
        .flags()
        .iter()
        .flatten()
        .map(|f| Flag::from(*f))
        .chain(extra_flags.iter().copied())
        .collect();
    let (flags, ignored_flags) = filter_flags(&requested, uses_notify);
    Ok(Filter {
        program,
        flags,
        uses_notify,
        notify_syscalls,
        skipped_syscalls: plan.skipped,
        ignored_flags,
    })
}

/// The seccomp(2) flags for the requested ones: unsupported flags are left
/// out (and reported), NEW_LISTENER is added for NOTIFY, and TSYNC_ESRCH with
/// it when TSYNC is asked for (the kernel refuses TSYNC + NEW_LISTENER alone).
fn filter_flags(requested: &[Flag], uses_notify: bool) -> (u32, Vec<IgnoredFlag>) {
    let mut flags = if uses_notify {
        kernel::FLAG_NEW_LISTENER
    } else {
        0
    };
    let mut ignored = Vec::new();
    for &flag in requested {
        if ignored.iter().any(|i: &IgnoredFlag| i.flag == flag) || flags & flag.bits() != 0 {
            continue;
        }
        if flag == Flag::WaitKillableRecv && !uses_notify {
            ignored.push(IgnoredFlag {
                flag,
                reason: "the profile has no SCMP_ACT_NOTIFY action",
            });
        } else if !flag.supported() {
            ignored.push(IgnoredFlag {
                flag,
                reason: "the running kernel does not support it",
            });
        } else {
            flags |= flag.bits();
        }
    }
    if flags & kernel::FLAG_TSYNC != 0 && uses_notify {
        flags |= kernel::FLAG_TSYNC_ESRCH;
    }
    (flags, ignored)
}

impl Filter {
    /// Loads the filter into the calling thread (all threads with TSYNC).
    ///
    /// Async-signal-safe: one seccomp(2) call on data prepared by [`compile`],
    /// no allocation, so it can run in the container init between clone and
    /// exec. Needs `no_new_privs` or CAP_SYS_ADMIN in the caller's user
    /// namespace (EACCES otherwise). Returns the notify fd when the profile uses
    /// SCMP_ACT_NOTIFY.
    pub fn load(&self) -> io::Result<Option<OwnedFd>> {
        let prog = libc::sock_fprog {
            // compile() checked the length against BPF_MAXINSNS (4096).
            len: self.program.len() as libc::c_ushort,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points into `self.program`, alive and unchanged for the call.
        let rc = unsafe {
            kernel::seccomp(
                kernel::SECCOMP_SET_MODE_FILTER,
                self.flags,
                std::ptr::from_ref(&prog).cast(),
            )
        }?;
        if self.uses_notify {
            let fd = i32::try_from(rc).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
            // SAFETY: with NEW_LISTENER the kernel returns a new fd that nothing else owns.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
        if rc != 0 {
            // TSYNC without a listener reports the thread that could not sync.
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        Ok(None)
    }

    /// Whether the profile has SCMP_ACT_NOTIFY (so [`Filter::load`] returns a listener fd).
    pub fn uses_notify(&self) -> bool {
        self.uses_notify
    }

    /// Whether the filter may return NOTIFY for this (x86_64) system call: the
    /// runtime must not make such a call itself between load and handing the
    /// notify fd out, or it waits for an agent that never gets the fd.
    pub fn may_notify(&self, syscall: &str) -> bool {
        Abi::X86_64
            .syscall_number(syscall)
            .is_some_and(|nr| self.notify_syscalls.contains(&nr))
    }

    /// The BPF program.
    pub fn program(&self) -> &[libc::sock_filter] {
        &self.program
    }

    /// The seccomp(2) flags it is loaded with.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Names in the profile that no listed ABI of this host knows (skipped, like runc).
    pub fn skipped_syscalls(&self) -> &[String] {
        &self.skipped_syscalls
    }

    /// Flags the profile asked for that are not used, and why.
    pub fn ignored_flags(&self) -> &[IgnoredFlag] {
        &self.ignored_flags
    }

    /// Runs the program on `data` like the kernel would and returns the seccomp return value.
    pub fn evaluate(&self, data: &SeccompData) -> Result<u32, Error> {
        bpf::run(&self.program, data)
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("uses_notify", &self.uses_notify)
            .field("skipped_syscalls", &self.skipped_syscalls)
            .field("ignored_flags", &self.ignored_flags)
            .finish()
    }
}

/// Runs any classic-BPF seccomp program on `data` like the kernel would (the
/// subset of opcodes seccomp programs use) and returns its return value.
pub fn evaluate_program(program: &[libc::sock_filter], data: &SeccompData) -> Result<u32, Error> {
    bpf::run(program, data)
}

/// The `linux.seccomp` object of `berth features` (runtime spec features.md),
/// with the flags this kernel supports.
pub fn features() -> serde_json::Value {
    let actions = [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_TRAP",
    ];
    let operators = [
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_LE",
        "SCMP_CMP_LT",
        "SCMP_CMP_MASKED_EQ",
        "SCMP_CMP_NE",
    ];
    let known: Vec<&str> = Flag::ALL.iter().map(|f| f.name()).collect();
    let supported: Vec<&str> = Flag::ALL
        .iter()
        .filter(|f| f.supported())
        .map(|f| f.name())
        .collect();
    serde_json::json!({
        "enabled": cfg!(target_arch = "x86_64"),
        "actions": actions,
        "operators": operators,
        "archs": ["SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
        "knownFlags": known,
        "supportedFlags": supported,
    })
}
