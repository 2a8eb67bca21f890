//! Filters loaded into real processes (run as root): the engines' profiles,
//! every action, every operator on real registers, ABIs and flags.

mod common;

use common::{
    assert_checks, compile, engine_profile, in_child, load_and_check, Check, Exit, Expect,
};
use libc::{SYS_getpid, SYS_getppid};

const EPERM: i32 = libc::EPERM;
const ENOSYS: i32 = libc::ENOSYS;

/// No core files from the SIGSYS kills. Child-safe.
fn no_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct on our stack.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
}

fn docker_checks() -> Vec<Check> {
    let missing = c"/nonexistent-berth-seccomp-test".as_ptr() as u64;
    let tmpfs = c"tmpfs".as_ptr() as u64;
    vec![
        Check::new("getpid works", SYS_getpid, [0; 6], Expect::Ok),
        Check::new(
            "uname works",
            libc::SYS_uname,
            [0; 6],
            Expect::Errno(libc::EFAULT),
        ),
        Check::new(
            "unshare(CLONE_NEWUTS) is EPERM",
            libc::SYS_unshare,
            [libc::CLONE_NEWUTS as u64, 0, 0, 0, 0, 0],
            Expect::Errno(EPERM),
        ),
        // Unfiltered this would be ENOENT (the mount point does not exist).
        Check::new(
            "mount is EPERM",
            libc::SYS_mount,
            [tmpfs, missing, tmpfs, 0, 0, 0],
            Expect::Errno(EPERM),
        ),
        Check::new(
            "keyctl is EPERM",
            libc::SYS_keyctl,
            [0, (-3i64) as u64, 0, 0, 0, 0],
            Expect::Errno(EPERM),
        ),
        Check::new(
            "clone3 is ENOSYS",
            libc::SYS_clone3,
            [0; 6],
            Expect::Errno(ENOSYS),
        ),
        Check::new(
            "personality query is allowed",
            libc::SYS_personality,
            [0xffff_ffff, 0, 0, 0, 0, 0],
            Expect::Ok,
        ),
        Check::new(
            "personality(ADDR_NO_RANDOMIZE) is EPERM",
            libc::SYS_personality,
            [0x0040000, 0, 0, 0, 0, 0],
            Expect::Errno(EPERM),
        ),
        // CLONE_NEWNS|CLONE_FS: EINVAL from the kernel if the namespace flag got through.
        Check::new(
            "clone with a namespace flag is EPERM",
            libc::SYS_clone,
            [(libc::CLONE_NEWNS | libc::CLONE_FS) as u64, 0, 0, 0, 0, 0],
            Expect::Errno(EPERM),
        ),
        Check::new(
            "clone without namespace flags reaches the kernel",
            libc::SYS_clone,
            [
                (libc::CLONE_NEWNS | libc::CLONE_FS) as u64 & !(libc::CLONE_NEWNS as u64)
                    | libc::CLONE_SIGHAND as u64,
                0,
                0,
                0,
                0,
                0,
            ],
            Expect::Errno(libc::EINVAL),
        ),
    ]
}

#[test]
fn docker_profile_blocks_what_docker_blocks_with_and_without_no_new_privs() {
    for file in [
        "docker-run.json",
        "docker-run-limits.json",
        "containerd-run-seccomp.json",
    ] {
        let filter = berth_seccomp::compile(&engine_profile(file)).unwrap();
        assert!(!filter.uses_notify());
        assert_checks(&filter, true, &docker_checks());
        assert_checks(&filter, false, &docker_checks());
    }
}

#[test]
fn podman_profile_returns_its_default_errno_enosys_for_unlisted_calls() {
    let filter = berth_seccomp::compile(&engine_profile("podman-run.json")).unwrap();
    let key_type = c"user".as_ptr() as u64;
    let checks = [
        Check::new("getpid works", SYS_getpid, [0; 6], Expect::Ok),
        // Unfiltered: EFAULT (null params).
        Check::new(
            "io_uring_setup (unlisted) is ENOSYS",
            libc::SYS_io_uring_setup,
            [1, 0, 0, 0, 0, 0],
            Expect::Errno(ENOSYS),
        ),
        Check::new(
            "add_key (unlisted) is ENOSYS",
            libc::SYS_add_key,
            [key_type, 0, 0, 0, 0, 0],
            Expect::Errno(ENOSYS),
        ),
        // Allowed in the big list, denied by a later rule: the denial wins (EBADF if allowed).
        Check::new(
            "setns is EPERM",
            libc::SYS_setns,
            [(-1i64) as u64, 0, 0, 0, 0, 0],
            Expect::Errno(EPERM),
        ),
        Check::new(
            "acct is EPERM",
            libc::SYS_acct,
            [0; 6],
            Expect::Errno(EPERM),
        ),
    ];
    assert_checks(&filter, true, &checks);
    assert_checks(&filter, false, &checks);
}

fn one_rule(action: &str, errno: Option<u32>) -> berth_seccomp::Filter {
    let mut rule = serde_json::json!({"names": ["getppid"], "action": action});
    if let Some(e) = errno {
        rule["errnoRet"] = e.into();
    }
    compile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}))
}

#[test]
fn errno_action_returns_the_rule_errno() {
    let checks = |e| {
        [
            Check::new("getppid fails", SYS_getppid, [0; 6], Expect::Errno(e)),
            Check::new("getpid works", SYS_getpid, [0; 6], Expect::Ok),
        ]
    };
    assert_checks(&one_rule("SCMP_ACT_ERRNO", Some(42)), true, &checks(42));
    assert_checks(&one_rule("SCMP_ACT_ERRNO", None), true, &checks(EPERM));
    // errnoRet 0 fakes success without running the call (getppid is never 0 here).
    let zero = [Check::new(
        "getppid returns 0",
        SYS_getppid,
        [0; 6],
        Expect::Value(0),
    )];
    assert_checks(&one_rule("SCMP_ACT_ERRNO", Some(0)), true, &zero);
}

#[test]
fn kill_actions_end_the_process_with_sigsys() {
    for action in [
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
    ] {
        let filter = one_rule(action, None);
        let exit = in_child(|| {
            no_core_dumps();
            load_and_check(
                &filter,
                true,
                &[Check::new("getppid", SYS_getppid, [0; 6], Expect::Ok)],
            )
        });
        assert_eq!(exit, Exit::Signal(libc::SIGSYS), "{action}");
    }
}

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    const SYS_SECCOMP: i32 = 1;
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(if code == SYS_SECCOMP { 77 } else { 78 }) }
}

#[test]
fn trap_delivers_a_catchable_sigsys() {
    let filter = one_rule("SCMP_ACT_TRAP", None);
    let exit = in_child(|| {
        no_core_dumps();
        // SAFETY: installing a plain C handler with a zeroed, then filled, sigaction.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigsys as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut());
        }
        load_and_check(
            &filter,
            true,
            &[Check::new("getppid", SYS_getppid, [0; 6], Expect::Ok)],
        )
    });
    assert_eq!(exit, Exit::Code(77), "the handler saw a seccomp SIGSYS");
}

#[test]
fn log_allows_and_trace_without_tracer_is_enosys() {
    // SAFETY: getppid has no preconditions.
    let ppid = unsafe { libc::getpid() } as libc::c_long; // the child's parent is this process
    assert_checks(
        &one_rule("SCMP_ACT_LOG", None),
        true,
        &[Check::new(
            "getppid runs",
            SYS_getppid,
            [0; 6],
            Expect::Value(ppid),
        )],
    );
    assert_checks(
        &one_rule("SCMP_ACT_TRACE", None),
        true,
        &[Check::new(
            "no tracer: ENOSYS",
            SYS_getppid,
            [0; 6],
            Expect::Errno(ENOSYS),
        )],
    );
}

/// The kernel passes every argument register to the filter, even to calls
/// that take none: conditions on getppid's "arguments" test the comparisons
/// against real seccomp_data.
#[test]
fn every_operator_on_real_64_bit_arguments() {
    let values: [u64; 6] = [0, 7, 0xffff_ffff, 1 << 32, 0x1_0000_0007, u64::MAX];
    type Holds = fn(u64, u64) -> bool;
    let ops: [(&str, Holds); 6] = [
        ("SCMP_CMP_NE", |a, v| a != v),
        ("SCMP_CMP_LT", |a, v| a < v),
        ("SCMP_CMP_LE", |a, v| a <= v),
        ("SCMP_CMP_EQ", |a, v| a == v),
        ("SCMP_CMP_GE", |a, v| a >= v),
        ("SCMP_CMP_GT", |a, v| a > v),
    ];
    for (op, holds) in ops {
        for v in [7u64, 1 << 32, 0x1_0000_0007] {
            let filter = compile(
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 33, "args": [{"index": 3, "value": v, "op": op}]}]}),
            );
            let checks: Vec<Check> = values
                .iter()
                .map(|&a| {
                    let expect = if holds(a, v) {
                        Expect::Errno(33)
                    } else {
                        Expect::Ok
                    };
                    Check::new(op, SYS_getppid, [0, 0, 0, a, 0, 0], expect)
                })
                .collect();
            assert_checks(&filter, true, &checks);
        }
    }
    // MASKED_EQ the way Docker uses it on clone's flags, on a 64-bit mask too.
    for (mask, value) in [
        (0x7e02_0000u64, 0u64),
        (0xffff_0000_0000_000f, 0x1_0000_0007),
    ] {
        let filter = compile(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 34,
             "args": [{"index": 5, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"}]}]}),
        );
        let checks: Vec<Check> = values
            .iter()
            .chain(&[0x1_0000_0017, 0x2000_0000, 0x11])
            .map(|&a| {
                let expect = if a & mask == value {
                    Expect::Errno(34)
                } else {
                    Expect::Ok
                };
                Check::new(
                    "SCMP_CMP_MASKED_EQ",
                    SYS_getppid,
                    [0, 0, 0, 0, 0, a],
                    expect,
                )
            })
            .collect();
        assert_checks(&filter, true, &checks);
    }
}

/// A 32-bit system call through `int 0x80` (seen as AUDIT_ARCH_I386).
fn int80(nr: u32) -> i32 {
    let ret: i32;
    // SAFETY: int 0x80 with a syscall number that takes no arguments; it
    // clobbers only eax (the result) on x86_64 kernels.
    unsafe { std::arch::asm!("int 0x80", inlateout("eax") nr as i32 => ret, options(nostack)) };
    ret
}

const I386_GETPID: u32 = 20;

#[test]
fn i386_calls_are_killed_unless_listed_and_then_use_i386_numbers() {
    if int80(I386_GETPID) < 0 {
        eprintln!("skipped: this kernel has no ia32 emulation");
        return;
    }
    let native_only = compile(
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"]}),
    );
    let exit = in_child(|| {
        no_core_dumps();
        if native_only.load().is_err() {
            return 90;
        }
        int80(I386_GETPID)
    });
    assert_eq!(exit, Exit::Signal(libc::SIGSYS));

    let with_x86 = compile(
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 21}]}),
    );
    let exit = in_child(|| {
        if with_x86.load().is_err() {
            return 90;
        }
        let native = Check::new("x86_64 getpid", SYS_getpid, [0; 6], Expect::Errno(21));
        match (int80(I386_GETPID), native.passes()) {
            (-21, true) => 0,
            _ => 1,
        }
    });
    assert_eq!(
        exit,
        Exit::Code(0),
        "i386 getpid (20) and x86_64 getpid (39) both hit the rule"
    );
}

#[test]
fn x32_numbers_are_killed_when_x32_is_not_listed_even_if_allowed_by_default() {
    let filter = compile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    let exit = in_child(|| {
        no_core_dumps();
        load_and_check(
            &filter,
            true,
            &[Check::new(
                "x32 getpid",
                0x4000_0000 | SYS_getpid,
                [0; 6],
                Expect::Ok,
            )],
        )
    });
    assert_eq!(exit, Exit::Signal(libc::SIGSYS));
}

#[test]
fn without_no_new_privs_loading_needs_cap_sys_admin() {
    let filter = one_rule("SCMP_ACT_ERRNO", None);
    for (no_new_privs, expected) in [(false, Exit::Code(libc::EACCES)), (true, Exit::Code(0))] {
        let exit = in_child(|| {
            // SAFETY: dropping to nobody in the child (clears the effective capabilities).
            if unsafe { libc::setresuid(65534, 65534, 65534) } != 0 {
                return 92;
            }
            // SAFETY: prctl with integer arguments.
            if no_new_privs && unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return 91;
            }
            match filter.load() {
                Ok(_) => 0,
                Err(e) => e.raw_os_error().unwrap_or(1),
            }
        });
        assert_eq!(exit, expected, "no_new_privs={no_new_privs}");
    }
}

#[test]
fn flags_are_passed_to_the_kernel() {
    for flag in [
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ] {
        let filter = compile(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9}]}),
        );
        let flag = berth_seccomp::Flag::from_name(flag).unwrap();
        if filter.ignored_flags().iter().any(|i| i.flag == flag) {
            eprintln!("skipped {}: {:?}", flag.name(), filter.ignored_flags());
            continue;
        }
        assert_ne!(filter.flags(), 0, "{}", flag.name());
        assert_checks(
            &filter,
            true,
            &[Check::new("getppid", SYS_getppid, [0; 6], Expect::Errno(9))],
        );
    }
}

#[test]
fn wait_killable_recv_without_notify_is_reported_not_used() {
    let cfg = common::profile(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"}));
    let filter =
        berth_seccomp::compile_with_flags(&cfg, &[berth_seccomp::Flag::WaitKillableRecv]).unwrap();
    assert_eq!(filter.flags(), 0);
    assert_eq!(filter.ignored_flags().len(), 1);
    assert!(filter.ignored_flags()[0].reason.contains("NOTIFY"));
}

#[test]
fn shared_profiles_compile_fast_and_small() {
    for file in [
        "docker-run.json",
        "podman-run.json",
        "containerd-run-seccomp.json",
    ] {
        let cfg = engine_profile(file);
        let start = std::time::Instant::now();
        let filter = berth_seccomp::compile(&cfg).unwrap();
        let took = start.elapsed();
        assert!(
            filter.program().len() < 1500,
            "{file}: {} instructions",
            filter.program().len()
        );
        eprintln!(
            "{file}: {} instructions, compiled in {took:?}, skipped {:?}",
            filter.program().len(),
            filter.skipped_syscalls()
        );
    }
}
