//! OCI seccomp actions as seccomp return values.

use oci_spec::runtime::LinuxSeccompAction;

use crate::error::{invalid, Error};

pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_KILL_THREAD: u32 = 0x0000_0000;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;
/// The action part of a return value (SECCOMP_RET_ACTION_FULL).
pub const RET_ACTION_FULL: u32 = 0xffff_0000;

/// The largest errno the kernel passes back (MAX_ERRNO).
const MAX_ERRNO: u32 = 4095;
const EPERM: u32 = libc::EPERM as u32;

/// The spec's name of an action, for messages.
pub fn name(action: LinuxSeccompAction) -> &'static str {
    match action {
        LinuxSeccompAction::ScmpActKill => "SCMP_ACT_KILL",
        LinuxSeccompAction::ScmpActKillThread => "SCMP_ACT_KILL_THREAD",
        LinuxSeccompAction::ScmpActKillProcess => "SCMP_ACT_KILL_PROCESS",
        LinuxSeccompAction::ScmpActTrap => "SCMP_ACT_TRAP",
        LinuxSeccompAction::ScmpActErrno => "SCMP_ACT_ERRNO",
        LinuxSeccompAction::ScmpActNotify => "SCMP_ACT_NOTIFY",
        LinuxSeccompAction::ScmpActTrace => "SCMP_ACT_TRACE",
        LinuxSeccompAction::ScmpActLog => "SCMP_ACT_LOG",
        LinuxSeccompAction::ScmpActAllow => "SCMP_ACT_ALLOW",
    }
}

/// The seccomp return value of `action`. `errno` (errnoRet / defaultErrnoRet) is
/// only meaningful for ERRNO and TRACE, where it defaults to EPERM; the spec
/// says a runtime must fail when it is given to any other action.
pub fn return_value(
    action: LinuxSeccompAction,
    errno: Option<u32>,
    what: &str,
) -> Result<u32, Error> {
    let with_data = |base: u32| -> Result<u32, Error> {
        let data = errno.unwrap_or(EPERM);
        if data > MAX_ERRNO {
            return Err(invalid(format!(
                "{what}: errno {data} is larger than {MAX_ERRNO}"
            )));
        }
        Ok(base | data)
    };
    let plain = |value: u32| -> Result<u32, Error> {
        match errno {
            None => Ok(value),
            Some(e) => Err(invalid(format!(
                "{what}: {} does not take an errno (got {e})",
                name(action)
            ))),
        }
    };
    match action {
        LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace => {
            with_data(base(action))
        }
        _ => plain(base(action)),
    }
}

/// The return value of `action` without its data, to ask the kernel about it.
pub fn base(action: LinuxSeccompAction) -> u32 {
    match action {
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE,
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActNotify => RET_USER_NOTIF,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
    }
}

/// Orders return values the way the kernel picks between stacked filters:
/// the smaller key wins (KILL_PROCESS first, ALLOW last).
pub fn precedence(ret: u32) -> i32 {
    (ret & RET_ACTION_FULL) as i32
}

/// The more restrictive of two return values (the first on a tie, e.g. two errnos).
pub fn stricter(a: u32, b: u32) -> u32 {
    if precedence(b) < precedence(a) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_and_trace_carry_their_errno_defaulting_to_eperm() {
        let errno = LinuxSeccompAction::ScmpActErrno;
        assert_eq!(return_value(errno, None, "t").unwrap(), RET_ERRNO | 1);
        assert_eq!(return_value(errno, Some(38), "t").unwrap(), RET_ERRNO | 38);
        assert_eq!(return_value(errno, Some(0), "t").unwrap(), RET_ERRNO);
        assert_eq!(
            return_value(LinuxSeccompAction::ScmpActTrace, Some(5), "t").unwrap(),
            RET_TRACE | 5
        );
        assert!(return_value(errno, Some(70000), "t").is_err());
    }

    #[test]
    fn errno_on_other_actions_is_an_error() {
        for action in [
            LinuxSeccompAction::ScmpActAllow,
            LinuxSeccompAction::ScmpActKill,
            LinuxSeccompAction::ScmpActKillProcess,
            LinuxSeccompAction::ScmpActTrap,
            LinuxSeccompAction::ScmpActLog,
            LinuxSeccompAction::ScmpActNotify,
        ] {
            let err = return_value(action, Some(1), "syscalls[0]")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(name(action)) && err.contains("syscalls[0]"),
                "{err}"
            );
        }
    }

    #[test]
    fn kernel_precedence() {
        let order = [
            RET_KILL_PROCESS,
            RET_KILL_THREAD,
            RET_TRAP,
            RET_ERRNO | 1,
            RET_USER_NOTIF,
            RET_TRACE,
            RET_LOG,
            RET_ALLOW,
        ];
        for w in order.windows(2) {
            assert_eq!(stricter(w[0], w[1]), w[0]);
            assert_eq!(stricter(w[1], w[0]), w[0]);
        }
        assert_eq!(stricter(RET_ERRNO | 1, RET_ERRNO | 38), RET_ERRNO | 1);
    }
}
