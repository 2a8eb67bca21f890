//! The seccomp(2) system call and what the running kernel supports.

use std::io;
use std::ptr;

pub const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
pub const SECCOMP_GET_ACTION_AVAIL: libc::c_uint = 2;

pub const FLAG_TSYNC: u32 = 1 << 0;
pub const FLAG_LOG: u32 = 1 << 1;
pub const FLAG_SPEC_ALLOW: u32 = 1 << 2;
pub const FLAG_NEW_LISTENER: u32 = 1 << 3;
pub const FLAG_TSYNC_ESRCH: u32 = 1 << 4;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 1 << 5;

/// Raw seccomp(2). Returns the non-negative result or the errno.
///
/// # Safety
/// `args` must be what the operation expects (a `sock_fprog` for
/// SET_MODE_FILTER, a `u32` for GET_ACTION_AVAIL) or null for probing.
pub unsafe fn seccomp(
    op: libc::c_uint,
    flags: u32,
    args: *const libc::c_void,
) -> io::Result<libc::c_long> {
    // SAFETY: the caller vouches for `args`; the call touches no Rust memory otherwise.
    let rc = unsafe { libc::syscall(libc::SYS_seccomp, op, flags, args) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Whether the kernel can return `action` (SECCOMP_GET_ACTION_AVAIL).
pub fn action_available(action: u32) -> bool {
    let value: u32 = action & crate::action::RET_ACTION_FULL;
    // SAFETY: GET_ACTION_AVAIL reads one u32, which lives for the whole call.
    unsafe { seccomp(SECCOMP_GET_ACTION_AVAIL, 0, ptr::from_ref(&value).cast()) }.is_ok()
}

/// Whether the kernel knows the filter flag(s) `flags`: with a null program it
/// checks the flags first (EINVAL when unknown) and only then fails to read
/// the program (EFAULT), so nothing is ever installed.
pub fn flags_supported(flags: u32) -> bool {
    // SAFETY: a null program is never dereferenced by a successful call; the
    // kernel rejects it with EFAULT after validating the flags.
    match unsafe { seccomp(SECCOMP_SET_MODE_FILTER, flags, ptr::null()) } {
        Err(e) => e.raw_os_error() == Some(libc::EFAULT),
        Ok(_) => false,
    }
}
