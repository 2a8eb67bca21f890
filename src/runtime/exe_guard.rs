//! The CVE-2019-5736 defence: berth's binary can never be written through a container.
//!
//! berth never re-executes itself into the container: the init and `berth exec`'s child are
//! clones of this process until they execve the user program, so until then their
//! `/proc/PID/exe` is berth's binary. A process in the container can reach that file (a
//! pid namespace shared with a created container, or an entrypoint `#!/proc/self/exe` that
//! makes the kernel run berth's binary inside the container, dumpable again), keep a
//! descriptor and reopen it for writing once no berth runs any more: the next `berth` run
//! on the host would be the attacker's program.
//!
//! So before `create`, `run` or `exec` clones anything, berth re-executes itself from a
//! read-only, detached bind mount of its own binary (`open_tree(OPEN_TREE_CLONE)`,
//! `mount_setattr(MOUNT_ATTR_RDONLY)`, `execveat(AT_EMPTY_PATH)`): every clone's
//! `/proc/PID/exe` is then a file on a read-only mount that no container can remount, and
//! opening it for writing fails with EROFS. No copy is made: the cost is one execve
//! (measured by `make bench`). Where the mount API is refused (a caller without
//! CAP_SYS_ADMIN) berth runs from a sealed memfd copy instead (F_SEAL_WRITE: EPERM on write),
//! which costs a copy of the binary.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use super::error::{Context, Error, Result};
use super::log;
use super::sys::{self, MountAttr};

/// Set in the environment of the re-executed berth, and removed by it: a second pass
/// never re-executes again, whatever it finds.
const REEXEC_MARKER: &str = "_BERTH_EXE_GUARDED";

/// How the running binary is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// `/proc/self/exe` is on a read-only mount.
    ReadOnlyMount,
    /// `/proc/self/exe` is a memfd sealed against writes.
    SealedMemfd,
    /// Neither (a re-exec that did not help): berth goes on and says so in the log.
    None,
}

/// Makes sure the running binary cannot be written through `/proc/PID/exe`, re-executing
/// berth from a read-only copy of itself when it is not yet. Call it first thing in a
/// command that clones container processes, while berth is single-threaded and has done
/// nothing the new image would do twice. Returns only when the binary is protected (or
/// when this already is the re-executed berth).
pub fn ensure_protected() -> Result<()> {
    if std::env::var_os(REEXEC_MARKER).is_some() {
        // The environment is not shared with other threads yet (none exist).
        std::env::remove_var(REEXEC_MARKER);
        match current_protection()? {
            Protection::None => {
                log::warn("berth's binary could not be protected against CVE-2019-5736")
            }
            how => log::debug(&format!("berth runs from its binary protected by {how:?}")),
        }
        return Ok(());
    }
    if current_protection()? != Protection::None {
        return Ok(());
    }
    let argv = c_args(std::env::args_os())?;
    let envp = c_env()?;
    let err = match read_only_mount_of_self() {
        Ok(tree) => exec_fd(&tree, &argv, &envp),
        Err(e) => e,
    };
    log::debug(&format!(
        "read-only mount of berth's binary refused ({err}): running from a sealed memfd"
    ));
    let memfd = sealed_memfd_of_self()?;
    let err = exec_fd(&memfd, &argv, &envp);
    Err(err).ctx(|| "re-executing berth from a sealed copy of itself")
}

/// Whether `/proc/self/exe` is protected already (a read-only mount, or a sealed memfd).
pub fn current_protection() -> Result<Protection> {
    let exe = File::open("/proc/self/exe").ctx(|| "opening /proc/self/exe")?;
    // SAFETY: statvfs is plain old data; fstatvfs fills it from a valid descriptor.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and pointer.
    if unsafe { libc::fstatvfs(exe.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error()).ctx(|| "fstatvfs of /proc/self/exe");
    }
    if st.f_flag & libc::ST_RDONLY != 0 {
        return Ok(Protection::ReadOnlyMount);
    }
    // SAFETY: F_GET_SEALS on a valid fd; EINVAL for files that are not memfds.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    if seals >= 0 && seals & libc::F_SEAL_WRITE != 0 {
        return Ok(Protection::SealedMemfd);
    }
    Ok(Protection::None)
}

/// PR_SET_DUMPABLE: a process that is not dumpable has its /proc/PID entries (exe, fd,
/// environ, mem...) and ptrace closed to processes without CAP_SYS_PTRACE over it.
/// Async-signal-safe (one prctl).
pub fn set_dumpable(dumpable: bool) {
    // SAFETY: plain prctl; it cannot fail with 0 or 1.
    unsafe {
        libc::prctl(
            libc::PR_SET_DUMPABLE,
            libc::c_ulong::from(dumpable),
            0,
            0,
            0,
        )
    };
}

/// PR_GET_DUMPABLE: whether this process is dumpable now.
pub fn dumpable() -> bool {
    // SAFETY: plain prctl; returns 0, 1 or 2 (2: dumpable by root only).
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) == 1 }
}

/// A detached, read-only bind mount whose root is berth's own binary.
fn read_only_mount_of_self() -> io::Result<OwnedFd> {
    let exe = sys::openat2(libc::AT_FDCWD, c"/proc/self/exe", libc::O_PATH, 0, 0)?;
    let tree = sys::clone_tree(exe.as_raw_fd(), false)?;
    let ro = MountAttr {
        attr_set: sys::MOUNT_ATTR_RDONLY,
        ..Default::default()
    };
    sys::mount_setattr(tree.as_raw_fd(), false, &ro)?;
    Ok(tree)
}

/// A memfd holding a copy of berth's binary, sealed so nothing can ever change it, and
/// reopened read-only (execve refuses a file that is open for writing).
fn sealed_memfd_of_self() -> Result<OwnedFd> {
    // SAFETY: memfd_create with a NUL-terminated name returns a new descriptor or -1.
    let raw = unsafe {
        libc::memfd_create(
            c"berth".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error()).ctx(|| "memfd_create");
    }
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    let mut copy = unsafe { File::from_raw_fd(raw) };
    let mut exe = File::open("/proc/self/exe").ctx(|| "opening /proc/self/exe")?;
    io::copy(&mut exe, &mut copy).ctx(|| "copying berth's binary into a memfd")?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our own memfd.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error()).ctx(|| "sealing the memfd copy of berth");
    }
    let mut path = [0u8; 32];
    let reopened = sys::openat2(
        libc::AT_FDCWD,
        sys::proc_fd_path(&mut path, copy.as_raw_fd()),
        libc::O_RDONLY,
        0,
        0,
    )
    .ctx(|| "reopening the memfd copy of berth read-only")?;
    drop(copy);
    Ok(reopened)
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: returns only on failure.
fn exec_fd(fd: &OwnedFd, argv: &CArgs, envp: &CArgs) -> io::Error {
    // SAFETY: argv/envp are NULL-terminated arrays of NUL-terminated strings that outlive
    // the call; the path is a static empty string.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.ptrs.as_ptr(),
            envp.ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

/// A NULL-terminated `char *[]` and the strings it points into.
struct CArgs {
    _strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl CArgs {
    fn new(strings: Vec<CString>) -> CArgs {
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CArgs {
            _strings: strings,
            ptrs,
        }
    }
}

fn c_string(bytes: Vec<u8>) -> Result<CString> {
    CString::new(bytes).map_err(|_| Error::Usage("an argument contains a NUL byte".into()))
}

fn c_args(args: impl Iterator<Item = OsString>) -> Result<CArgs> {
    let strings = args
        .map(|a| c_string(a.into_vec()))
        .collect::<Result<_>>()?;
    Ok(CArgs::new(strings))
}

/// Our environment plus the marker that stops a second re-exec.
fn c_env() -> Result<CArgs> {
    let mut strings = Vec::new();
    for (key, value) in std::env::vars_os() {
        let mut entry = key.into_vec();
        entry.push(b'=');
        entry.extend(value.into_vec());
        strings.push(c_string(entry)?);
    }
    strings.push(c_string(format!("{REEXEC_MARKER}=1").into_bytes())?);
    Ok(CArgs::new(strings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_become_a_null_terminated_array() {
        let args =
            c_args(vec![OsString::from("berth"), OsString::from("run")].into_iter()).expect("args");
        assert_eq!(args.ptrs.len(), 3);
        assert!(args.ptrs[2].is_null());
        assert!(c_args(vec![OsString::from("a\0b")].into_iter()).is_err());
    }
}
