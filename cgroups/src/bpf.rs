//! bpf(2) for cgroup v2 device control: load a BPF_PROG_TYPE_CGROUP_DEVICE
//! program and attach it to a cgroup, replacing the one an earlier
//! `create` or `update` attached, without a window where no program runs.

use crate::devices::BpfInsn;
use crate::error::{Error, Result};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Verifier log size when a load fails and we ask why.
const LOG_SIZE: usize = 64 * 1024;

/// bpf_attr for BPF_PROG_LOAD (the prefix this crate fills).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// bpf_attr for BPF_PROG_ATTACH / BPF_PROG_DETACH.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// bpf_attr for BPF_PROG_QUERY; `pad` keeps the hole the kernel reads
/// as a field in newer versions at zero.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}

/// bpf_attr for BPF_PROG_GET_FD_BY_ID.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// Calls bpf(2) with one of the attr structs above.
fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, fully initialised #[repr(C)] struct without
    // padding holes and the size passed is its own; the kernel reads at
    // most that many bytes and writes only within it (query results).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn fd_from_ret(ret: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new descriptor to us and
    // nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(ret as i32) }
}

/// Loads a cgroup device program; on failure reloads with the verifier log
/// on, so the error says why.
pub fn load_device_program(insns: &[BpfInsn]) -> Result<OwnedFd> {
    match load(insns, None) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            let mut log = vec![0u8; LOG_SIZE];
            let detail = match load(insns, Some(&mut log)) {
                Ok(fd) => return Ok(fd),
                Err(_) => verifier_log(&log),
            };
            Err(Error::Bpf {
                op: "BPF_PROG_LOAD",
                source: first,
                log: detail,
            })
        }
    }
}

fn load(insns: &[BpfInsn], log: Option<&mut Vec<u8>>) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..5].copy_from_slice(b"berth");
    if let Some(log) = log {
        attr.log_level = 1;
        attr.log_size = log.len() as u32;
        attr.log_buf = log.as_mut_ptr() as u64;
    }
    bpf(BPF_PROG_LOAD, &mut attr).map(fd_from_ret)
}

fn verifier_log(log: &[u8]) -> String {
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(" (verifier: {text})")
    }
}

/// The ids of the device programs attached directly to a cgroup.
pub fn attached_device_programs(cgroup: BorrowedFd<'_>) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|e| Error::Bpf {
        op: "BPF_PROG_QUERY",
        source: e,
        log: String::new(),
    })?;
    ids.truncate(attr.prog_cnt.min(64) as usize);
    Ok(ids)
}

fn program_fd(id: u32) -> Result<OwnedFd> {
    let mut attr = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)
        .map(fd_from_ret)
        .map_err(|e| Error::Bpf {
            op: "BPF_PROG_GET_FD_BY_ID",
            source: e,
            log: String::new(),
        })
}

fn attach(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>, flags: u32) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(drop)
}

fn detach(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> Result<()> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_DETACH, &mut attr)
        .map(drop)
        .map_err(|e| Error::Bpf {
            op: "BPF_PROG_DETACH",
            source: e,
            log: String::new(),
        })
}

/// Loads `insns` and makes it the only device program on `cgroup`.
///
/// The new program is attached next to the old ones first (multi mode),
/// then the old ones are detached, so some program always guards the
/// cgroup. A cgroup whose program was attached in exclusive mode by
/// someone else gets it overridden instead.
pub fn replace_device_program(cgroup: BorrowedFd<'_>, insns: &[BpfInsn]) -> Result<()> {
    let new_prog = load_device_program(insns)?;
    let old_progs = attached_device_programs(cgroup)?
        .into_iter()
        .map(program_fd)
        .collect::<Result<Vec<_>>>()?;
    match attach(cgroup, new_prog.as_fd(), BPF_F_ALLOW_MULTI) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && !old_progs.is_empty() => {
            // The existing program was attached without ALLOW_MULTI:
            // attaching in the same mode replaces it atomically.
            return attach(cgroup, new_prog.as_fd(), 0).map_err(|e| Error::Bpf {
                op: "BPF_PROG_ATTACH",
                source: e,
                log: String::new(),
            });
        }
        Err(e) => {
            return Err(Error::Bpf {
                op: "BPF_PROG_ATTACH",
                source: e,
                log: String::new(),
            })
        }
    }
    for old in &old_progs {
        detach(cgroup, old.as_fd())?;
    }
    Ok(())
}
