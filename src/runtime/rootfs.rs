//! Building the container's root filesystem, from inside the init, through file
//! descriptors: every path in the rootfs is resolved with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` and every mount is attached with
//! `move_mount` onto the descriptor it resolved to, so a symlink in the rootfs can never
//! redirect a mount, mknod or write to the host.
//!
//! Async-signal-safe: only syscalls on data prepared in the plan (the single exception,
//! podman's `tmpcopyup`, is documented at `copy_tree`).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::init::{Fail, Step};
use super::plan::{DeviceStep, InitPlan, MountSource, MountStep, RootPath};
use super::sys::{self, MountAttr};

type R<T> = Result<T, Fail>;

fn os(step: Step, index: usize) -> impl Fn(io::Error) -> Fail {
    move |e| Fail::new(step, index, e.raw_os_error().unwrap_or(libc::EIO))
}

fn last(step: Step, index: usize) -> Fail {
    Fail::new(step, index, sys::errno())
}

fn is_enoent(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

/// Opens `path` in the rootfs, creating missing directories (and the last component as
/// an empty file when `leaf_is_file`), each with an fd-relative `mkdirat`.
pub fn ensure_path(root: RawFd, path: &RootPath, leaf_is_file: bool) -> io::Result<OwnedFd> {
    match sys::open_in_root(root, &path.rel, libc::O_PATH) {
        Err(e) if is_enoent(&e) => {}
        other => return other,
    }
    let mut parent: Option<OwnedFd> = None;
    let count = path.prefixes.len();
    for k in 0..count {
        let leaf = k + 1 == count;
        let dir_flag = if leaf && leaf_is_file {
            0
        } else {
            libc::O_DIRECTORY
        };
        match sys::open_in_root(root, &path.prefixes[k], libc::O_PATH | dir_flag) {
            Ok(fd) => {
                parent = Some(fd);
                continue;
            }
            Err(e) if is_enoent(&e) => {}
            Err(e) => return Err(e),
        }
        let parent_fd = parent.as_ref().map_or(root, |f| f.as_raw_fd());
        create_entry(parent_fd, &path.names[k], leaf && leaf_is_file)?;
        parent = Some(sys::open_in_root(
            root,
            &path.prefixes[k],
            libc::O_PATH | dir_flag,
        )?);
    }
    match parent {
        Some(fd) => Ok(fd),
        // An empty path is the root itself.
        None => sys::open_in_root(root, c".", libc::O_PATH),
    }
}

/// Creates one directory or empty file in `parent`; an existing entry is fine.
fn create_entry(parent: RawFd, name: &CStr, file: bool) -> io::Result<()> {
    // SAFETY: name is NUL-terminated; O_NOFOLLOW and O_EXCL never follow a symlink.
    let ret = unsafe {
        if file {
            let fd = libc::openat(
                parent,
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            );
            if fd >= 0 {
                libc::close(fd);
            }
            fd
        } else {
            libc::mkdirat(parent, name.as_ptr(), 0o755)
        }
    };
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EEXIST) {
            return Err(err);
        }
    }
    Ok(())
}

/// Opens the directory that holds the last component of `path`, creating it if needed.
fn ensure_parent(root: RawFd, path: &RootPath) -> io::Result<OwnedFd> {
    let n = path.prefixes.len();
    if n < 2 {
        return sys::open_in_root(root, c".", libc::O_PATH | libc::O_DIRECTORY);
    }
    let parent = RootPath {
        rel: path.prefixes[n - 2].clone(),
        prefixes: path.prefixes[..n - 1].to_vec(),
        names: path.names[..n - 1].to_vec(),
        display: String::new(),
    };
    ensure_path(root, &parent, false)
}

/// Makes the rootfs a mount of its own in a non-shared tree, so it can be pivoted into.
pub fn prepare_root(plan: &InitPlan) -> R<OwnedFd> {
    // SAFETY: plain mount(2) calls with NUL-terminated strings from the plan.
    unsafe {
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            plan.root_propagation as libc::c_ulong,
            std::ptr::null(),
        ) < 0
        {
            return Err(last(Step::RootPropagation, 0));
        }
        if libc::mount(
            plan.rootfs.as_ptr(),
            plan.rootfs.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        ) < 0
        {
            return Err(last(Step::RootBind, 0));
        }
    }
    sys::openat2(
        libc::AT_FDCWD,
        &plan.rootfs,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
    )
    .map_err(os(Step::RootBind, 0))
}

/// Makes the detached mount for one step.
fn make_tree(step: &MountStep, index: usize) -> R<OwnedFd> {
    match &step.source {
        MountSource::Bind {
            source, recursive, ..
        } => {
            let src = sys::openat2(libc::AT_FDCWD, source, libc::O_PATH, 0, 0)
                .map_err(os(Step::MountSource, index))?;
            let tree =
                sys::clone_tree(src.as_raw_fd(), *recursive).map_err(os(Step::Mount, index))?;
            set_tree_attrs(tree.as_raw_fd(), step).map_err(os(Step::MountAttr, index))?;
            Ok(tree)
        }
        MountSource::New {
            fstype,
            source,
            options,
        } => {
            let fs = sys::fsopen(fstype).map_err(os(Step::Mount, index))?;
            let fs_fd = fs.as_raw_fd();
            sys::fsconfig_set(fs_fd, c"source", Some(source)).map_err(os(Step::Mount, index))?;
            for (key, value) in options {
                sys::fsconfig_set(fs_fd, key, value.as_deref())
                    .map_err(os(Step::MountOption, index))?;
            }
            sys::fsconfig_create(fs_fd).map_err(os(Step::Mount, index))?;
            let attrs = step.attr.attr_set & !sys::MOUNT_ATTR_NOSYMFOLLOW;
            let tree = sys::fsmount(fs_fd, attrs).map_err(os(Step::Mount, index))?;
            // fsmount takes no NOSYMFOLLOW on older kernels: set it on the mount instead.
            if step.attr.attr_set & sys::MOUNT_ATTR_NOSYMFOLLOW != 0 {
                let nosymfollow = MountAttr {
                    attr_set: sys::MOUNT_ATTR_NOSYMFOLLOW,
                    ..Default::default()
                };
                sys::mount_setattr(tree.as_raw_fd(), false, &nosymfollow)
                    .map_err(os(Step::MountAttr, index))?;
            }
            Ok(tree)
        }
        MountSource::Reattr | MountSource::Prepared(_) => unreachable_reattr(index),
    }
}

/// A bind's mount attributes: the step's own, then the recursive ones (`rro`, ...).
pub fn set_tree_attrs(tree: RawFd, step: &MountStep) -> io::Result<()> {
    if step.attr != MountAttr::default() {
        sys::mount_setattr(tree, false, &step.attr)?;
    }
    if step.recursive_attr != MountAttr::default() {
        sys::mount_setattr(tree, true, &step.recursive_attr)?;
    }
    Ok(())
}

fn unreachable_reattr(index: usize) -> R<OwnedFd> {
    Err(Fail::new(Step::Mount, index, libc::EINVAL))
}

/// Performs one `mounts` entry.
pub fn mount_one(root: RawFd, step: &MountStep, index: usize) -> R<()> {
    let dest =
        ensure_path(root, &step.dest, step.dest_is_file).map_err(os(Step::MountDest, index))?;
    if let MountSource::Reattr = step.source {
        return sys::mount_setattr(dest.as_raw_fd(), false, &step.attr)
            .map_err(os(Step::MountAttr, index));
    }
    // tmpcopyup needs the directory as it was before the tmpfs covers it.
    let before = if step.tmpcopyup {
        Some(
            sys::open_in_root(root, &step.dest.rel, libc::O_RDONLY | libc::O_DIRECTORY)
                .map_err(os(Step::TmpCopyUp, index))?,
        )
    } else {
        None
    };
    let made;
    let tree = match &step.source {
        MountSource::Prepared(tree) => tree.as_raw_fd(),
        _ => {
            made = make_tree(step, index)?;
            made.as_raw_fd()
        }
    };
    if let Some(label) = &step.root_label {
        set_root_label(tree, label).map_err(os(Step::Mount, index))?;
    }
    sys::move_mount_fd(tree, dest.as_raw_fd()).map_err(os(Step::Mount, index))?;
    if step.propagation != 0 {
        let attr = MountAttr {
            propagation: step.propagation,
            ..Default::default()
        };
        sys::mount_setattr(tree, step.propagation_recursive, &attr)
            .map_err(os(Step::Propagation, index))?;
    }
    if let Some(before) = before {
        copy_tree(before.as_raw_fd(), tree).map_err(os(Step::TmpCopyUp, index))?;
    }
    Ok(())
}

/// Sets the SELinux context of a new mount's root (see `MountStep::root_label`).
fn set_root_label(tree: RawFd, label: &CStr) -> io::Result<()> {
    // The fsmount descriptor is O_PATH, which fsetxattr refuses: open the root itself.
    let root = sys::openat2(tree, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0, 0)?;
    let value = label.to_bytes();
    // SAFETY: a valid descriptor, a NUL-terminated name and a buffer of `value.len()` bytes.
    let rc = unsafe {
        libc::fsetxattr(
            root.as_raw_fd(),
            c"security.selinux".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Copies a directory tree (podman's `tmpcopyup`: a tmpfs starts with what the image had
/// there). The one place the init allocates: it runs single-threaded, so the allocator
/// is in a consistent state, and only for mounts that ask for it.
fn copy_tree(from: RawFd, to: RawFd) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut path_buf = [0u8; 32];
    let from_path = std::path::PathBuf::from(
        sys::proc_fd_path(&mut path_buf, from)
            .to_string_lossy()
            .into_owned(),
    );
    let to_path = std::path::PathBuf::from(
        sys::proc_fd_path(&mut path_buf, to)
            .to_string_lossy()
            .into_owned(),
    );
    let root_meta = std::fs::metadata(&from_path)?;
    std::fs::set_permissions(
        &to_path,
        std::fs::Permissions::from_mode(root_meta.mode() & 0o7777),
    )?;
    copy_dir_contents(&from_path, &to_path)
}

fn copy_dir_contents(from: &std::path::Path, to: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ft = meta.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&dst)?;
            copy_dir_contents(&src, &dst)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if ft.is_file() {
            std::fs::copy(&src, &dst)?;
        } else {
            continue;
        }
        lchown(&dst, Some(meta.uid()), Some(meta.gid()))?;
        if !ft.is_symlink() {
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
    }
    Ok(())
}

/// Creates one device node: mknod, or (in a user namespace, where mknod is refused) a
/// bind mount of the host's node onto an empty file.
pub fn make_device(root: RawFd, dev: &DeviceStep, index: usize, in_userns: bool) -> R<()> {
    let parent = ensure_parent(root, &dev.path).map_err(os(Step::Device, index))?;
    let pfd = parent.as_raw_fd();
    let name = match dev.path.names.last() {
        Some(n) => n,
        None => return Err(Fail::new(Step::Device, index, libc::EINVAL)),
    };
    // O_PATH parent fds cannot be used for mknodat: reopen the directory for real.
    let dir = sys::openat2(
        pfd,
        c".",
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_NO_SYMLINKS,
    )
    .map_err(os(Step::Device, index))?;
    let dfd = dir.as_raw_fd();
    if in_userns {
        create_entry(dfd, name, true).map_err(os(Step::Device, index))?;
        let src = sys::openat2(libc::AT_FDCWD, &dev.host_path, libc::O_PATH, 0, 0)
            .map_err(os(Step::Device, index))?;
        let tree = sys::clone_tree(src.as_raw_fd(), false).map_err(os(Step::Device, index))?;
        let target = sys::openat2(dfd, name, libc::O_PATH, 0, sys::RESOLVE_NO_SYMLINKS)
            .map_err(os(Step::Device, index))?;
        return sys::move_mount_fd(tree.as_raw_fd(), target.as_raw_fd())
            .map_err(os(Step::Device, index));
    }
    // SAFETY: stat is plain old data; fstatat with a single-component name, no follow.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatat(dfd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } == 0 {
        // config-linux.md: an existing file that is not the requested device is an error;
        // the same device is left as it is.
        let same = st.st_mode & libc::S_IFMT == dev.file_type
            && (dev.file_type == libc::S_IFIFO || st.st_rdev == dev.rdev);
        if same {
            return Ok(());
        }
        return Err(Fail::new(Step::Device, index, libc::EEXIST));
    }
    // SAFETY: plain syscalls on a directory fd with a NUL-terminated single-component name.
    unsafe {
        if libc::mknodat(dfd, name.as_ptr(), dev.file_type | dev.mode, dev.rdev) < 0 {
            return Err(last(Step::Device, index));
        }
        if libc::fchownat(
            dfd,
            name.as_ptr(),
            dev.uid,
            dev.gid,
            libc::AT_SYMLINK_NOFOLLOW,
        ) < 0
        {
            return Err(last(Step::Device, index));
        }
    }
    Ok(())
}

/// The standard /dev symlinks: fd, stdin, stdout, stderr, ptmx (and core when the host has /proc/kcore).
pub fn dev_symlinks(root: RawFd) -> R<()> {
    let dev = match sys::open_in_root(root, c"dev", libc::O_RDONLY | libc::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(e) => {
            return Err(Fail::new(
                Step::DevSymlink,
                0,
                e.raw_os_error().unwrap_or(libc::EIO),
            ))
        }
    };
    let links: [(&CStr, &CStr); 6] = [
        (c"/proc/self/fd", c"fd"),
        (c"/proc/self/fd/0", c"stdin"),
        (c"/proc/self/fd/1", c"stdout"),
        (c"/proc/self/fd/2", c"stderr"),
        (c"pts/ptmx", c"ptmx"),
        (c"/proc/kcore", c"core"),
    ];
    for (i, (target, name)) in links.iter().enumerate() {
        // SAFETY: NUL-terminated strings and a directory fd.
        unsafe {
            if *name == c"ptmx" {
                // /dev/ptmx must point at this container's devpts instance.
                libc::unlinkat(dev.as_raw_fd(), name.as_ptr(), 0);
            }
            if libc::symlinkat(target.as_ptr(), dev.as_raw_fd(), name.as_ptr()) < 0
                && sys::errno() != libc::EEXIST
            {
                return Err(last(Step::DevSymlink, i));
            }
        }
    }
    Ok(())
}

/// Moves into the new root: pivot_root(".", ".") then detaches the old root, which is
/// stacked on the same directory (no temporary directory in the rootfs needed).
pub fn pivot(root: RawFd, no_pivot: bool) -> R<()> {
    // The old root: after pivot_root it is stacked on the new one, and it is what we
    // must make slave and detach (through ".", with the cwd on it), not the new root.
    let old_root = sys::openat2(libc::AT_FDCWD, c"/", libc::O_PATH | libc::O_DIRECTORY, 0, 0)
        .map_err(|e| Fail::new(Step::Pivot, 7, e.raw_os_error().unwrap_or(libc::EIO)))?;
    // SAFETY: plain syscalls with static NUL-terminated paths.
    unsafe {
        if libc::fchdir(root) < 0 {
            return Err(last(Step::Pivot, 0));
        }
        if no_pivot {
            if libc::mount(
                c".".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_MOVE,
                std::ptr::null(),
            ) < 0
            {
                return Err(last(Step::Pivot, 1));
            }
            if libc::chroot(c".".as_ptr()) < 0 {
                return Err(last(Step::Pivot, 2));
            }
        } else {
            if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) < 0 {
                return Err(last(Step::Pivot, 3));
            }
            if libc::fchdir(old_root.as_raw_fd()) < 0 {
                return Err(last(Step::Pivot, 8));
            }
            // The old root must not propagate our unmount back to the host.
            if libc::mount(
                std::ptr::null(),
                c".".as_ptr(),
                std::ptr::null(),
                libc::MS_SLAVE | libc::MS_REC,
                std::ptr::null(),
            ) < 0
            {
                return Err(last(Step::Pivot, 4));
            }
            if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) < 0 {
                return Err(last(Step::Pivot, 5));
            }
        }
        if libc::chdir(c"/".as_ptr()) < 0 {
            return Err(last(Step::Pivot, 6));
        }
    }
    Ok(())
}

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Fails unless `fd` is on a real procfs (a container could have mounted something else there).
pub fn check_procfs(fd: RawFd) -> io::Result<()> {
    // SAFETY: statfs is plain old data; fstatfs fills it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and pointer.
    if unsafe { libc::fstatfs(fd, &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if st.f_type as i64 != PROC_SUPER_MAGIC {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    Ok(())
}

/// Writes the namespaced sysctls through verified procfs descriptors.
pub fn write_sysctls(root: RawFd, plan: &InitPlan) -> R<()> {
    for (i, (path, value, _)) in plan.sysctls.iter().enumerate() {
        let fd = sys::openat2(
            root,
            &path.rel,
            libc::O_WRONLY | libc::O_NOFOLLOW,
            0,
            sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_SYMLINKS,
        )
        .map_err(os(Step::Sysctl, i))?;
        check_procfs(fd.as_raw_fd()).map_err(os(Step::Sysctl, i))?;
        sys::write_all(fd.as_raw_fd(), value.to_bytes()).map_err(os(Step::Sysctl, i))?;
    }
    Ok(())
}

/// readonlyPaths: a recursive read-only bind of each path over itself.
pub fn make_readonly(root: RawFd, plan: &InitPlan) -> R<()> {
    let ro = MountAttr {
        attr_set: sys::MOUNT_ATTR_RDONLY,
        ..Default::default()
    };
    for (i, path) in plan.readonly.iter().enumerate() {
        let fd = match sys::open_in_root(root, &path.rel, libc::O_PATH) {
            Ok(fd) => fd,
            Err(e) if is_enoent(&e) => continue,
            Err(e) => return Err(os(Step::Readonly, i)(e)),
        };
        let tree = sys::clone_tree(fd.as_raw_fd(), true).map_err(os(Step::Readonly, i))?;
        sys::mount_setattr(tree.as_raw_fd(), true, &ro).map_err(os(Step::Readonly, i))?;
        sys::move_mount_fd(tree.as_raw_fd(), fd.as_raw_fd()).map_err(os(Step::Readonly, i))?;
    }
    Ok(())
}

/// Opens /dev/null in the container and checks it really is the 1:3 character device.
fn verified_dev_null(root: RawFd) -> io::Result<OwnedFd> {
    let fd = sys::open_in_root(root, c"dev/null", libc::O_PATH | libc::O_NOFOLLOW)?;
    // SAFETY: stat is plain old data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH.
    if unsafe { libc::fstatat(fd.as_raw_fd(), c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    Ok(fd)
}

/// maskedPaths: /dev/null over files, an empty read-only tmpfs over directories.
pub fn mask_paths(root: RawFd, plan: &InitPlan) -> R<()> {
    let mut dev_null: Option<OwnedFd> = None;
    for (i, path) in plan.masked.iter().enumerate() {
        let fd = match sys::open_in_root(root, &path.rel, libc::O_PATH) {
            Ok(fd) => fd,
            Err(e) if is_enoent(&e) => continue,
            Err(e) => return Err(os(Step::Mask, i)(e)),
        };
        // SAFETY: stat is plain old data.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd, empty path with AT_EMPTY_PATH.
        if unsafe { libc::fstatat(fd.as_raw_fd(), c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH) } < 0
        {
            return Err(last(Step::Mask, i));
        }
        let tree = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let fs = sys::fsopen(c"tmpfs").map_err(os(Step::Mask, i))?;
            sys::fsconfig_create(fs.as_raw_fd()).map_err(os(Step::Mask, i))?;
            sys::fsmount(fs.as_raw_fd(), sys::MOUNT_ATTR_RDONLY).map_err(os(Step::Mask, i))?
        } else {
            if dev_null.is_none() {
                dev_null = Some(verified_dev_null(root).map_err(os(Step::DevNull, i))?);
            }
            let null_fd = dev_null.as_ref().map_or(-1, |f| f.as_raw_fd());
            sys::clone_tree(null_fd, false).map_err(os(Step::Mask, i))?
        };
        sys::move_mount_fd(tree.as_raw_fd(), fd.as_raw_fd()).map_err(os(Step::Mask, i))?;
    }
    Ok(())
}

/// root.readonly: the root mount itself becomes read-only (other mounts keep their flags).
pub fn seal_root(root: RawFd) -> R<()> {
    let ro = MountAttr {
        attr_set: sys::MOUNT_ATTR_RDONLY,
        ..Default::default()
    };
    sys::mount_setattr(root, false, &ro).map_err(os(Step::RootReadonly, 0))
}

/// Applies rootfsPropagation modes that pivot_root cannot start from (shared, unbindable).
pub fn root_propagation_after_pivot(flags: u64) -> R<()> {
    // SAFETY: plain mount(2) changing propagation of "/".
    if unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            flags as libc::c_ulong,
            std::ptr::null(),
        )
    } < 0
    {
        return Err(last(Step::RootPropagation, 1));
    }
    Ok(())
}

/// Sets up the pty: a new master in the container's devpts, its peer bound over
/// /dev/console. Returns (master, slave).
pub fn open_console(root: RawFd, size: Option<libc::winsize>) -> R<(OwnedFd, OwnedFd)> {
    let master = sys::open_in_root(root, c"dev/ptmx", libc::O_RDWR | libc::O_NOCTTY)
        .map_err(os(Step::Console, 0))?;
    let m = master.as_raw_fd();
    let unlock: libc::c_int = 0;
    // SAFETY: ioctls on the pty master with valid pointers.
    let slave = unsafe {
        if libc::ioctl(m, libc::TIOCSPTLCK, &unlock) < 0 {
            return Err(last(Step::Console, 1));
        }
        let fd = libc::ioctl(
            m,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return Err(last(Step::Console, 2));
        }
        OwnedFd::from_raw_fd(fd)
    };
    if let Some(ws) = size {
        // SAFETY: valid fd and winsize pointer.
        if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            return Err(last(Step::Console, 3));
        }
    }
    let console = RootPath {
        rel: c"dev/console".to_owned(),
        prefixes: vec![c"dev".to_owned(), c"dev/console".to_owned()],
        names: vec![c"dev".to_owned(), c"console".to_owned()],
        display: String::new(),
    };
    let target = ensure_path(root, &console, true).map_err(os(Step::Console, 4))?;
    let tree = sys::clone_tree(slave.as_raw_fd(), false).map_err(os(Step::Console, 5))?;
    sys::move_mount_fd(tree.as_raw_fd(), target.as_raw_fd()).map_err(os(Step::Console, 6))?;
    Ok((master, slave))
}

/// Sends `fd` over the unix socket `sock` with SCM_RIGHTS (the console socket protocol).
pub fn send_fd(sock: RawFd, fd: RawFd, name: &[u8]) -> io::Result<()> {
    const SPACE: usize = 24; // CMSG_SPACE(sizeof(int)) on 64-bit
    let mut control = [0u64; SPACE / 8];
    let mut iov = libc::iovec {
        iov_base: name.as_ptr() as *mut libc::c_void,
        iov_len: name.len(),
    };
    // SAFETY: msghdr is plain old data; all pointers below stay valid for the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = SPACE;
    // SAFETY: msg has a control buffer large enough for one descriptor.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut libc::c_int, fd);
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
