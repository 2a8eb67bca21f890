//! Idmapped bind mounts (`mounts[].uidMappings`/`gidMappings`, the `idmap` and `ridmap`
//! options), made by `create` before the clone.
//!
//! `mount_setattr(MOUNT_ATTR_IDMAP)` takes a user namespace holding the mapping and needs
//! privileges over the filesystem the init no longer has once it is inside the
//! container's own user namespace. So berth, still root on the host, clones the source
//! tree, idmaps it and sets its attributes; the init only attaches the detached mount
//! (see [`MountSource::Prepared`]). Each distinct mapping gets a user namespace of a
//! short-lived child, which is reaped before create goes on.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::error::{Context, Result};
use super::plan::{IdMap, MountSource, MountStep};
use super::rootfs;
use super::sys::{self, MountAttr};

/// Replaces every idmapped bind of `mounts` by its prepared, detached mount.
pub fn prepare_idmapped_mounts(mounts: &mut [MountStep]) -> Result<()> {
    let mut namespaces: Vec<(IdMap, OwnedFd)> = Vec::new();
    for step in mounts.iter_mut() {
        let MountSource::Bind {
            source,
            recursive,
            idmap: Some(map),
        } = &step.source
        else {
            continue;
        };
        let known = namespaces
            .iter()
            .find(|(m, _)| m.uid_map == map.uid_map && m.gid_map == map.gid_map)
            .map(|(_, fd)| fd.as_raw_fd());
        let userns = match known {
            Some(fd) => fd,
            None => {
                let fd = mapping_userns(map)
                    .ctx(|| format!("user namespace for the idmapped mount {}", step.what))?;
                let raw = fd.as_raw_fd();
                namespaces.push((map.clone(), fd));
                raw
            }
        };
        let tree = idmapped_tree(source, *recursive, map.recursive, userns, step)
            .ctx(|| format!("idmapped mount {}", step.what))?;
        step.source = MountSource::Prepared(tree);
    }
    Ok(())
}

/// A detached clone of `source`, idmapped through `userns`, with the step's attributes.
fn idmapped_tree(
    source: &CStr,
    recursive: bool,
    map_recursively: bool,
    userns: RawFd,
    step: &MountStep,
) -> io::Result<OwnedFd> {
    let src = sys::openat2(libc::AT_FDCWD, source, libc::O_PATH, 0, 0)?;
    let tree = sys::clone_tree(src.as_raw_fd(), recursive)?;
    let idmap = MountAttr {
        attr_set: sys::MOUNT_ATTR_IDMAP,
        userns_fd: u64::try_from(userns).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?,
        ..Default::default()
    };
    sys::mount_setattr(tree.as_raw_fd(), map_recursively, &idmap)?;
    rootfs::set_tree_attrs(tree.as_raw_fd(), step)?;
    Ok(tree)
}

/// A user namespace with `map`'s uid_map and gid_map: a child is cloned into a new one
/// and waits on a pipe while its maps are written and its namespace opened, then exits.
fn mapping_userns(map: &IdMap) -> io::Result<OwnedFd> {
    let mut pipe = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these descriptors; nothing else owns them.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
    let pid = match sys::clone3_fork(libc::CLONE_NEWUSER as u64, None)? {
        sys::Forked::Child => wait_for_eof(read_end.as_raw_fd(), write_end.as_raw_fd()),
        sys::Forked::Parent { pid, .. } => pid,
    };
    drop(read_end);
    let opened = write_maps(pid, map).and_then(|()| {
        let path = format!("/proc/{pid}/ns/user");
        std::fs::File::open(&path).map(OwnedFd::from)
    });
    // EOF on the pipe lets the child exit; it is reaped whatever happened.
    drop(write_end);
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    opened
}

/// The child's side: close its copy of the write end, block until the parent closes
/// its own, exit. Async-signal-safe only.
fn wait_for_eof(read_end: RawFd, write_end: RawFd) -> ! {
    let mut byte = 0u8;
    // SAFETY: close, read and _exit are async-signal-safe; `byte` is a valid buffer.
    unsafe {
        libc::close(write_end);
        while libc::read(read_end, (&mut byte as *mut u8).cast(), 1) < 0
            && *libc::__errno_location() == libc::EINTR
        {}
        libc::_exit(0)
    }
}

fn write_maps(pid: i32, map: &IdMap) -> io::Result<()> {
    std::fs::write(format!("/proc/{pid}/uid_map"), &map.uid_map)?;
    std::fs::write(format!("/proc/{pid}/gid_map"), &map.gid_map)
}
