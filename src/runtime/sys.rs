//! Thin wrappers over the Linux syscalls the runtime needs that `libc`, `nix` and
//! `rustix` do not all expose: clone3, openat2, the new mount API, pidfds,
//! capset and close_range.
//!
//! Every function here is async-signal-safe (a single syscall, no allocation) so the
//! container's init may call them between clone and exec.

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Result of a raw syscall: the return value, or the errno as `io::Error`.
fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Turns a syscall's returned descriptor into an owned fd.
fn owned_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = check(ret)? as RawFd;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// What `clone3` returned: in the parent, the child's pid and a pidfd for it.
pub enum Forked {
    Parent { pid: i32, pidfd: OwnedFd },
    Child,
}

/// `clone3` used like `fork` (the child runs on a copy of the caller's stack),
/// with extra `flags` (new namespaces) and `CLONE_PIDFD`. `cgroup_fd` places the child
/// in that cgroup v2 directory from birth (`CLONE_INTO_CGROUP`).
///
/// The caller must be single-threaded, and the child must only do async-signal-safe
/// work and finish with `_exit` or `execve`.
pub fn clone3_fork(flags: u64, cgroup_fd: Option<RawFd>) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut libc::c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= 0x200000000; // CLONE_INTO_CGROUP
        args.cgroup = fd as u64;
    }
    // SAFETY: args is a valid clone_args of the size we pass; with stack == 0 the child
    // continues on a copy-on-write copy of our stack, exactly like fork().
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    let pid = check(ret)?;
    if pid == 0 {
        return Ok(Forked::Child);
    }
    // SAFETY: CLONE_PIDFD made the kernel store a new descriptor in `pidfd`.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok(Forked::Parent {
        pid: pid as i32,
        pidfd,
    })
}

pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(2)`: open `path` relative to `dirfd` with the given resolve restrictions.
pub fn openat2(
    dirfd: RawFd,
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: `path` is NUL-terminated and `how` is a valid open_how of the given size.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match owned_fd(ret) {
            // EAGAIN: a rename raced the lookup; the kernel asks us to retry.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            other => return other,
        }
    }
}

/// Resolves `path` inside the root `root` (symlinks cannot leave it, magic links refused).
pub fn open_in_root(root: RawFd, path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    openat2(
        root,
        path,
        flags,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
}

pub const OPEN_TREE_CLONE: u32 = 1;
pub const AT_RECURSIVE: u32 = 0x8000;
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

/// `open_tree(fd, "", OPEN_TREE_CLONE)`: a detached copy of the mount at `fd`
/// (recursively with `recursive`), ready to be configured and attached elsewhere.
pub fn clone_tree(fd: RawFd, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: a plain syscall with a static empty path.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, fd, c"".as_ptr(), flags) };
    owned_fd(ret)
}

/// `move_mount(2)` from one mount fd onto the object that `to` refers to.
pub fn move_mount_fd(from: RawFd, to: RawFd) -> io::Result<()> {
    // SAFETY: a plain syscall with static empty paths.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            c"".as_ptr(),
            to,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(ret).map(drop)
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x01;
pub const MOUNT_ATTR_NOSUID: u64 = 0x02;
pub const MOUNT_ATTR_NODEV: u64 = 0x04;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x08;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x00;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;
pub const MOUNT_ATTR_IDMAP: u64 = 0x100000;

#[repr(C)]
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], attr)`.
pub fn mount_setattr(fd: RawFd, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: attr is a valid mount_attr of the size we pass.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(drop)
}

/// `fsopen(fstype)`: a new filesystem context.
pub fn fsopen(fstype: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: NUL-terminated string, FSOPEN_CLOEXEC flag.
    let ret = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), 1u32) };
    owned_fd(ret)
}

const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;

/// Sets `key` (with `value`, or as a flag) on a filesystem context.
pub fn fsconfig_set(fs: RawFd, key: &CStr, value: Option<&CStr>) -> io::Result<()> {
    let (cmd, val) = match value {
        Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
        None => (FSCONFIG_SET_FLAG, std::ptr::null()),
    };
    // SAFETY: key and value are NUL-terminated; aux is unused for these commands.
    let ret = unsafe { libc::syscall(libc::SYS_fsconfig, fs, cmd, key.as_ptr(), val, 0) };
    check(ret).map(drop)
}

/// Creates the superblock of a configured context.
pub fn fsconfig_create(fs: RawFd) -> io::Result<()> {
    // SAFETY: no pointers are passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    check(ret).map(drop)
}

/// `fsmount(fs, FSMOUNT_CLOEXEC, attrs)`: a detached mount of the created superblock.
pub fn fsmount(fs: RawFd, attrs: u64) -> io::Result<OwnedFd> {
    // SAFETY: no pointers are passed.
    let ret = unsafe { libc::syscall(libc::SYS_fsmount, fs, 1u32, attrs as libc::c_uint) };
    owned_fd(ret)
}

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: no pointers are passed.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    owned_fd(ret)
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`: signals exactly the process the fd names,
/// never a process that later reused its pid.
pub fn pidfd_send_signal(pidfd: RawFd, sig: i32) -> io::Result<()> {
    // SAFETY: a NULL siginfo is allowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    check(ret).map(drop)
}

/// Waits until the process behind `pidfd` exits, or `timeout_ms` passes (-1: forever).
/// Returns true if it exited.
pub fn wait_pidfd(pidfd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: pidfd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let ret = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        return Ok(ret > 0);
    }
}

/// Sets the effective, permitted and inheritable capability sets (bit masks).
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x20080522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let lo = |m: u64| m as u32;
    let hi = |m: u64| (m >> 32) as u32;
    let data = [
        Data {
            effective: lo(effective),
            permitted: lo(permitted),
            inheritable: lo(inheritable),
        },
        Data {
            effective: hi(effective),
            permitted: hi(permitted),
            inheritable: hi(inheritable),
        },
    ];
    // SAFETY: header and the two data structs are the v3 layout the kernel expects.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) };
    check(ret).map(drop)
}

/// Marks every descriptor from `first` upwards close-on-exec.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: no pointers are passed.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    check(ret).map(drop)
}

/// Writes all of `buf` to `fd` (retrying on EINTR and short writes).
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// The errno of the last failed libc call, for code that must not allocate.
pub fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Why an execve failed, in words, for the init to print without allocating (after
/// `start` nobody else is left to explain it).
pub fn exec_errno_text(errno: i32) -> &'static [u8] {
    match errno {
        libc::ENOENT => b"no such file or directory (ENOENT)",
        libc::EACCES => b"permission denied (EACCES)",
        libc::EPERM => b"operation not permitted (EPERM)",
        libc::ENOEXEC => b"not an executable format (ENOEXEC)",
        libc::ENOTDIR => b"a path component is not a directory (ENOTDIR)",
        libc::ELOOP => b"too many symbolic links (ELOOP)",
        libc::ETXTBSY => b"text file busy (ETXTBSY)",
        libc::E2BIG => b"argument list too long (E2BIG)",
        libc::ENOMEM => b"out of memory (ENOMEM)",
        libc::EINVAL => b"invalid argument (EINVAL)",
        libc::EISDIR => b"is a directory (EISDIR)",
        _ => b"an error",
    }
}

/// Formats `n` in decimal into `buf` without allocating.
pub fn format_decimal(buf: &mut [u8; 12], n: i32) -> &[u8] {
    let mut value = n.unsigned_abs();
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    if n < 0 {
        start -= 1;
        buf[start] = b'-';
    }
    &buf[start..]
}

/// Formats `/proc/self/fd/N` into `buf` without allocating; returns it as a C string.
pub fn proc_fd_path(buf: &mut [u8; 32], fd: RawFd) -> &CStr {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 12];
    let mut n = fd.max(0) as u32;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[PREFIX.len() + i] = digits[len - 1 - i];
    }
    buf[PREFIX.len() + len] = 0;
    // Cannot fail: we wrote exactly one NUL at the end and none before it.
    CStr::from_bytes_until_nul(&buf[..]).unwrap_or(c"/proc/self/fd/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_format_without_allocating() {
        let mut buf = [0u8; 12];
        assert_eq!(format_decimal(&mut buf, 0), b"0");
        assert_eq!(format_decimal(&mut buf, 8), b"8");
        assert_eq!(format_decimal(&mut buf, 1234), b"1234");
        assert_eq!(format_decimal(&mut buf, i32::MIN), b"-2147483648");
    }

    #[test]
    fn proc_fd_path_formats_numbers() {
        let mut buf = [0u8; 32];
        assert_eq!(proc_fd_path(&mut buf, 0).to_bytes(), b"/proc/self/fd/0");
        assert_eq!(
            proc_fd_path(&mut buf, 1234).to_bytes(),
            b"/proc/self/fd/1234"
        );
    }
}

/// `struct sched_attr` as of Linux 5.3 (SCHED_ATTR_SIZE_VER1): the utilization clamps
/// are there so SCHED_FLAG_UTIL_CLAMP_* are accepted (OCI has no values for them: 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
    pub util_min: u32,
    pub util_max: u32,
}

/// sched_setattr(2) for the calling thread.
pub fn sched_setattr(attr: &SchedAttr) -> io::Result<()> {
    // SAFETY: `attr` is a valid sched_attr whose `size` field says how much the kernel
    // may read; pid 0 is the calling thread.
    check(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) })
        .map(drop)
}

/// set_mempolicy(2): `mode` with its MPOL_F_* flags, and a node mask of `maxnode` bits.
pub fn set_mempolicy(
    mode: libc::c_int,
    nodemask: &[libc::c_ulong],
    maxnode: u64,
) -> io::Result<()> {
    let mask = if nodemask.is_empty() {
        std::ptr::null()
    } else {
        nodemask.as_ptr()
    };
    // SAFETY: `mask` is null or points at `nodemask`, which holds at least `maxnode - 1`
    // bits (the kernel reads that many).
    check(unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, mask, maxnode) }).map(drop)
}

/// sched_setaffinity(2) for the calling thread; `mask` is a CPU bitmask.
pub fn sched_setaffinity(mask: &[u8]) -> io::Result<()> {
    // SAFETY: the kernel reads `mask.len()` bytes from `mask`; pid 0 is the calling thread.
    check(unsafe { libc::syscall(libc::SYS_sched_setaffinity, 0, mask.len(), mask.as_ptr()) })
        .map(drop)
}
