//! The container's init, from clone to execve. Runs in the child of `clone3`, on data
//! prepared in the `InitPlan`: only syscalls, no allocation (see `rootfs::copy_tree` for
//! the one exception). Failures are reported to the parent as (step, index, errno) over
//! the sync socket; the parent turns them into a message with the plan at hand.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::plan::{ExecPlan, HookExec, InitPlan, ProcessPlan};
use super::rootfs;
use super::sys;

/// Where the init was when something failed.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    SetNs = 1,
    Unshare,
    Fork,
    BecomeRoot,
    TimeOffsets,
    Hostname,
    Domainname,
    RootPropagation,
    RootBind,
    MountDest,
    MountSource,
    Mount,
    MountOption,
    MountAttr,
    Propagation,
    TmpCopyUp,
    Device,
    DevSymlink,
    DevNull,
    Console,
    ConsoleSend,
    CreateContainerHook,
    StartContainerHook,
    HookTimeout,
    HookStatus,
    Pivot,
    Sysctl,
    Readonly,
    Mask,
    RootReadonly,
    Rlimit,
    Personality,
    IoPriority,
    Scheduler,
    MemoryPolicy,
    CpuAffinity,
    Cwd,
    CwdEscape,
    Umask,
    Groups,
    SetUser,
    Caps,
    NoNewPrivs,
    ExecLookup,
    Sync,
    Exec,
    Keyring,
    Seccomp,
    Lsm,
    KeyLabel,
}

impl Step {
    pub fn from_u32(v: u32) -> Option<Step> {
        const ALL: [Step; 50] = [
            Step::SetNs,
            Step::Unshare,
            Step::Fork,
            Step::BecomeRoot,
            Step::TimeOffsets,
            Step::Hostname,
            Step::Domainname,
            Step::RootPropagation,
            Step::RootBind,
            Step::MountDest,
            Step::MountSource,
            Step::Mount,
            Step::MountOption,
            Step::MountAttr,
            Step::Propagation,
            Step::TmpCopyUp,
            Step::Device,
            Step::DevSymlink,
            Step::DevNull,
            Step::Console,
            Step::ConsoleSend,
            Step::CreateContainerHook,
            Step::StartContainerHook,
            Step::HookTimeout,
            Step::HookStatus,
            Step::Pivot,
            Step::Sysctl,
            Step::Readonly,
            Step::Mask,
            Step::RootReadonly,
            Step::Rlimit,
            Step::Personality,
            Step::IoPriority,
            Step::Scheduler,
            Step::MemoryPolicy,
            Step::CpuAffinity,
            Step::Cwd,
            Step::CwdEscape,
            Step::Umask,
            Step::Groups,
            Step::SetUser,
            Step::Caps,
            Step::NoNewPrivs,
            Step::ExecLookup,
            Step::Sync,
            Step::Exec,
            Step::Keyring,
            Step::Seccomp,
            Step::Lsm,
            Step::KeyLabel,
        ];
        ALL.into_iter().find(|s| *s as u32 == v)
    }
}

/// A failure in the init: which step, which item of the plan, which errno (or, for
/// hooks, the wait status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fail {
    pub step: Step,
    pub index: u32,
    pub errno: i32,
}

impl Fail {
    pub fn new(step: Step, index: usize, errno: i32) -> Fail {
        Fail {
            step,
            index: index as u32,
            errno,
        }
    }
}

type R<T> = Result<T, Fail>;

/// Sync-socket messages: fixed 16-byte records (kind, step, index, value).
pub mod msg {
    /// init -> parent: setup failed; step/index/value say where and why.
    pub const ERROR: u32 = 1;
    /// init -> parent: created, blocked before the user program.
    pub const CREATED: u32 = 2;
    /// init -> parent: a new user namespace exists; please write the id maps.
    pub const NEED_MAPS: u32 = 3;
    /// intermediate -> parent: the init's pid (value), after the fork into a pid namespace.
    pub const PID: u32 = 4;
    /// parent -> init: id maps written.
    pub const MAPS_DONE: u32 = 5;
    /// parent -> init: hooks ran; go on. The next message is the state JSON for hooks.
    pub const GO: u32 = 6;
    /// init -> parent: the seccomp notify fd is attached (SCM_RIGHTS) for the listener.
    pub const SECCOMP_FD: u32 = 7;
    /// exec'd process -> parent: our copy of the container lock is closed; put us in the
    /// cgroup now (frozen there, we must not keep `resume` waiting for the lock).
    pub const EXEC_READY: u32 = 8;

    pub fn encode(kind: u32, step: u32, index: u32, value: i32) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&kind.to_ne_bytes());
        b[4..8].copy_from_slice(&step.to_ne_bytes());
        b[8..12].copy_from_slice(&index.to_ne_bytes());
        b[12..16].copy_from_slice(&value.to_ne_bytes());
        b
    }

    pub fn decode(b: &[u8; 16]) -> (u32, u32, u32, i32) {
        let word = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        (
            u32::from_ne_bytes(word(0)),
            u32::from_ne_bytes(word(4)),
            u32::from_ne_bytes(word(8)),
            i32::from_ne_bytes(word(12)),
        )
    }
}

/// Descriptors the parent opened for the init before the clone.
pub struct InitFds {
    pub sync: RawFd,
    pub fifo: RawFd,
    pub console_socket: Option<RawFd>,
    /// One per `plan.join` entry, in the same order.
    pub join: Vec<RawFd>,
    /// The parent's copy of the container lock: closed first thing.
    pub lock: RawFd,
}

fn send(fd: RawFd, kind: u32, step: u32, index: u32, value: i32) -> io::Result<()> {
    let b = msg::encode(kind, step, index, value);
    // SAFETY: b is a valid 16-byte buffer.
    if unsafe { libc::send(fd, b.as_ptr().cast(), b.len(), libc::MSG_NOSIGNAL) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one 16-byte message; EOF (the parent died) is an error.
fn recv(fd: RawFd) -> io::Result<(u32, u32, u32, i32)> {
    let mut b = [0u8; 16];
    loop {
        // SAFETY: b is a valid 16-byte buffer.
        let n = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), b.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        if n as usize != b.len() {
            return Err(io::Error::from_raw_os_error(libc::EPIPE));
        }
        return Ok(msg::decode(&b));
    }
}

fn expect(fd: RawFd, kind: u32) -> R<()> {
    match recv(fd) {
        Ok((k, _, _, _)) if k == kind => Ok(()),
        Ok(_) => Err(Fail::new(Step::Sync, 0, libc::EPROTO)),
        Err(e) => Err(Fail::new(
            Step::Sync,
            0,
            e.raw_os_error().unwrap_or(libc::EPIPE),
        )),
    }
}

fn last(step: Step, index: usize) -> Fail {
    Fail::new(step, index, sys::errno())
}

fn os(step: Step, index: usize) -> impl Fn(io::Error) -> Fail {
    move |e| Fail::new(step, index, e.raw_os_error().unwrap_or(libc::EIO))
}

/// The init's entry point: never returns.
pub fn run(plan: &InitPlan, fds: &InitFds, state_buf: &mut Vec<u8>) -> ! {
    exit_reporting(fds.sync, setup_and_exec(plan, fds, state_buf))
}

/// Ends the init or an exec'd child that did not reach execve: the failure goes to the
/// parent over the sync socket, then `_exit`.
fn exit_reporting(sync: RawFd, result: R<()>) -> ! {
    let code = match result {
        Ok(()) => 0,
        Err(fail) => {
            let _ = send(sync, msg::ERROR, fail.step as u32, fail.index, fail.errno);
            1
        }
    };
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

fn setup_and_exec(plan: &InitPlan, fds: &InitFds, state_buf: &mut Vec<u8>) -> R<()> {
    // With a new user namespace the parent (maybe not root) must first write our id maps,
    // which needs us dumpable; until then we are seen from no container (see become_root).
    if !plan.new_user {
        hide_from_container();
    }
    // SAFETY: signal(2) and umask(2) are async-signal-safe. SIGPIPE is ignored while we
    // feed hooks their state (restored before exec); umask 0 so devices and mount points get
    // exactly the modes asked for.
    unsafe {
        libc::close(fds.lock);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::umask(0);
    }
    if plan.all_new() {
        if plan.new_user {
            expect(fds.sync, msg::MAPS_DONE)?;
            become_root();
        }
    } else {
        enter_namespaces(plan, fds)?;
    }
    if plan.new_time {
        enter_new_time_namespace(plan)?;
    }
    expect(fds.sync, msg::GO)?;
    receive_state(fds.sync, state_buf)?;
    // The cgroup namespace is made only now, once the parent has put us in the
    // container's cgroups, so its root is the container's cgroup.
    // SAFETY: unshare is a plain syscall.
    if plan.new_ns_flags & libc::CLONE_NEWCGROUP != 0
        && unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } < 0
    {
        return Err(last(Step::Unshare, 2));
    }
    set_names(plan)?;
    join_session_keyring(
        plan.session_keyring.as_deref(),
        plan.process.key_label.as_ref(),
    )?;

    let root = rootfs::prepare_root(plan)?;
    let root_fd = root.as_raw_fd();
    for (i, step) in plan.mounts.iter().enumerate() {
        rootfs::mount_one(root_fd, step, i)?;
    }
    let in_userns = plan.new_user || plan.join.iter().any(|j| j.flag == libc::CLONE_NEWUSER);
    for (i, dev) in plan.devices.iter().enumerate() {
        rootfs::make_device(root_fd, dev, i, in_userns)?;
    }
    if !plan.dev_bound_from_host {
        rootfs::dev_symlinks(root_fd)?;
    }
    rootfs::ensure_path(root_fd, &plan.process.cwd, false).map_err(os(Step::Cwd, 0))?;
    let console = if plan.process.terminal {
        Some(setup_console(root_fd, plan, fds)?)
    } else {
        None
    };
    for (i, hook) in plan.create_container_hooks.iter().enumerate() {
        run_hook(hook, state_buf, Step::CreateContainerHook, i)?;
    }
    rootfs::pivot(root_fd, plan.no_pivot)?;
    rootfs::write_sysctls(root_fd, plan)?;
    rootfs::make_readonly(root_fd, plan)?;
    rootfs::mask_paths(root_fd, plan)?;
    if let Some(flags) = plan.post_pivot_propagation {
        rootfs::root_propagation_after_pivot(flags)?;
    }
    if plan.root_readonly {
        rootfs::seal_root(root_fd)?;
    }
    drop(root);

    let (exec_index, notify_fd) = prepare_process(&plan.process)?;
    if let Some(fd) = notify_fd {
        // The parent hands it to the seccomp agent at listenerPath before create returns.
        rootfs::send_fd(
            fds.sync,
            fd.as_raw_fd(),
            &msg::encode(msg::SECCOMP_FD, 0, 0, 0),
        )
        .map_err(os(Step::Seccomp, 1))?;
    }
    // The pty goes onto 0-2 now, not at exec: the caller's stdio must be released when
    // create returns (containerd's shim reads its pipe to EOF before it calls start).
    if let Some(slave) = &console {
        attach_console(slave)?;
    }
    drop(console);
    send(fds.sync, msg::CREATED, 0, 0, 0).map_err(os(Step::Sync, 1))?;
    wait_for_start(fds.fifo)?;
    let started = (|| {
        for (i, hook) in plan.start_container_hooks.iter().enumerate() {
            run_hook(hook, state_buf, Step::StartContainerHook, i)?;
        }
        exec(&plan.process, exec_index, None, true)
    })();
    // `start` waits for our end of the fifo to close; a byte left in it says the user
    // program never ran (a startContainer hook or execve failed).
    let _ = sys::write_all(fds.fifo, START_FAILED);
    started
}

/// Until execve this process is a clone of berth: its /proc/PID/exe is berth's binary and
/// /proc/PID/fd holds host descriptors (state dir, rootfs, sockets). Not dumpable, none of
/// it (nor ptrace) is reachable by container processes without CAP_SYS_PTRACE in the
/// host's user namespace; execve of the user program makes the process dumpable again.
fn hide_from_container() {
    super::exe_guard::set_dumpable(false);
}

/// What the init leaves in the exec fifo when the user program could not be started.
pub const START_FAILED: &[u8] = b"E";

/// After the parent wrote the id maps: hide from containers, and become root of the new
/// user namespace when root is mapped.
fn become_root() {
    hide_from_container();
    // SAFETY: setresgid/setresuid are async-signal-safe; EINVAL (0 not mapped) is fine.
    unsafe {
        libc::setresgid(0, 0, 0);
        libc::setresuid(0, 0, 0);
    }
}

/// The slow path: join namespaces by path (user first), create the rest with unshare,
/// and fork once more when the pid namespace changes (only children enter it).
fn enter_namespaces(plan: &InitPlan, fds: &InitFds) -> R<()> {
    for (i, (join, fd)) in plan.join.iter().zip(&fds.join).enumerate() {
        if join.flag != libc::CLONE_NEWUSER {
            continue;
        }
        // SAFETY: setns on a namespace fd opened by the parent.
        if unsafe { libc::setns(*fd, join.flag) } < 0 {
            return Err(last(Step::SetNs, i));
        }
    }
    if plan.new_user {
        // SAFETY: unshare is a plain syscall.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER) } < 0 {
            return Err(last(Step::Unshare, 0));
        }
        send(fds.sync, msg::NEED_MAPS, 0, 0, 0).map_err(os(Step::Sync, 2))?;
        expect(fds.sync, msg::MAPS_DONE)?;
        become_root();
    }
    for (i, (join, fd)) in plan.join.iter().zip(&fds.join).enumerate() {
        if join.flag == libc::CLONE_NEWUSER {
            continue;
        }
        // SAFETY: setns on a namespace fd opened by the parent.
        if unsafe { libc::setns(*fd, join.flag) } < 0 {
            return Err(last(Step::SetNs, i));
        }
    }
    let rest = plan.new_ns_flags & !(libc::CLONE_NEWUSER | libc::CLONE_NEWCGROUP);
    // SAFETY: unshare is a plain syscall.
    if rest != 0 && unsafe { libc::unshare(rest) } < 0 {
        return Err(last(Step::Unshare, 1));
    }
    let pid_changes = plan.new_ns_flags & libc::CLONE_NEWPID != 0
        || plan.join.iter().any(|j| j.flag == libc::CLONE_NEWPID);
    if pid_changes {
        match sys::clone3_fork(0, None).map_err(os(Step::Fork, 0))? {
            sys::Forked::Child => {}
            sys::Forked::Parent { pid, .. } => {
                let _ = send(fds.sync, msg::PID, 0, 0, pid);
                // SAFETY: the intermediate process is done.
                unsafe { libc::_exit(0) }
            }
        }
    }
    Ok(())
}

/// A new time namespace: unshare it (it applies to children only), write the clock
/// offsets while no process is inside yet, then enter it ourselves.
fn enter_new_time_namespace(plan: &InitPlan) -> R<()> {
    // SAFETY: plain syscalls with NUL-terminated static paths.
    unsafe {
        if libc::unshare(libc::CLONE_NEWTIME) < 0 {
            return Err(last(Step::TimeOffsets, 0));
        }
        let offsets = plan.time_offsets.to_bytes();
        if !offsets.is_empty() {
            let fd = libc::open(
                c"/proc/self/timens_offsets".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Err(last(Step::TimeOffsets, 1));
            }
            // A joined mount namespace's /proc could be anything: write only to procfs.
            let written = rootfs::check_procfs(fd).and_then(|()| sys::write_all(fd, offsets));
            libc::close(fd);
            written.map_err(os(Step::TimeOffsets, 2))?;
        }
        let ns = libc::open(
            c"/proc/self/ns/time_for_children".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if ns < 0 {
            return Err(last(Step::TimeOffsets, 3));
        }
        let ret = libc::setns(ns, libc::CLONE_NEWTIME);
        libc::close(ns);
        if ret < 0 {
            return Err(last(Step::TimeOffsets, 4));
        }
    }
    Ok(())
}

/// Reads the state JSON the parent sends with GO (hooks get it on stdin) into a buffer
/// allocated before the clone.
fn receive_state(sync: RawFd, buf: &mut Vec<u8>) -> R<()> {
    let cap = buf.capacity();
    // SAFETY: recv writes at most `cap` bytes into the vector's spare capacity; the length
    // is set to what was written.
    unsafe {
        let n = libc::recv(sync, buf.as_mut_ptr().cast(), cap, 0);
        if n < 0 {
            return Err(last(Step::Sync, 3));
        }
        buf.set_len(n as usize);
    }
    Ok(())
}

fn set_names(plan: &InitPlan) -> R<()> {
    // SAFETY: NUL-terminated names from the plan.
    unsafe {
        if let Some(h) = &plan.hostname {
            if libc::sethostname(h.as_ptr(), h.to_bytes().len()) < 0 {
                return Err(last(Step::Hostname, 0));
            }
        }
        if let Some(d) = &plan.domainname {
            if libc::setdomainname(d.as_ptr(), d.to_bytes().len()) < 0 {
                return Err(last(Step::Domainname, 0));
            }
        }
    }
    Ok(())
}

/// A session keyring of the container's own, so it never sees the caller's keys; with
/// SELinux, labelled with the process's context (execve resets `keycreate`).
fn join_session_keyring(
    name: Option<&std::ffi::CStr>,
    label: Option<&super::lsm::ExecLabel>,
) -> R<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    if let Some(name) = name {
        if let Some(label) = label {
            write_label(label, Step::KeyLabel, 0)?;
        }
        // SAFETY: keyctl with a NUL-terminated name.
        let ret =
            unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
        // Kernels without keyrings (ENOSYS) are fine, as with runc.
        if ret < 0 && sys::errno() != libc::ENOSYS {
            return Err(last(Step::Keyring, 0));
        }
    }
    Ok(())
}

fn setup_console(root: RawFd, plan: &InitPlan, fds: &InitFds) -> R<OwnedFd> {
    let (master, slave) = rootfs::open_console(root, plan.process.console_size)?;
    if let Some(sock) = fds.console_socket {
        rootfs::send_fd(sock, master.as_raw_fd(), b"/dev/ptmx")
            .map_err(os(Step::ConsoleSend, 0))?;
    }
    drop(master);
    Ok(slave)
}

/// Runs a hook inside the container's namespaces: fork, state on stdin, wait with timeout.
fn run_hook(hook: &HookExec, state: &[u8], step: Step, index: usize) -> R<()> {
    let mut pipe = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(last(step, index));
    }
    let (rd, wr) = (pipe[0], pipe[1]);
    let forked = sys::clone3_fork(0, None).map_err(os(step, index));
    let (pid, pidfd) = match forked {
        Ok(sys::Forked::Child) => {
            // SAFETY: in the hook's child: wire stdin and exec, or exit 127.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::dup2(rd, 0);
                libc::execve(hook.path.as_ptr(), hook.argv.as_ptr(), hook.envp.as_ptr());
                libc::_exit(127);
            }
        }
        Ok(sys::Forked::Parent { pid, pidfd }) => (pid, pidfd),
        Err(f) => {
            // SAFETY: closing our own pipe ends.
            unsafe {
                libc::close(rd);
                libc::close(wr);
            }
            return Err(f);
        }
    };
    // SAFETY: closing the read end we no longer need; writing the state (EPIPE ignored:
    // a hook may not read its stdin).
    unsafe { libc::close(rd) };
    let _ = sys::write_all(wr, state);
    // SAFETY: closing our write end gives the hook EOF.
    unsafe { libc::close(wr) };
    let exited = sys::wait_pidfd(pidfd.as_raw_fd(), hook.timeout_ms).unwrap_or(true);
    if !exited {
        let _ = sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL);
    }
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if !exited {
        return Err(Fail::new(Step::HookTimeout, index, step as i32));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(Fail {
            step: Step::HookStatus,
            index: ((step as u32) << 16) | index as u32,
            errno: status,
        });
    }
    Ok(())
}

/// Whether the seccomp filter is loaded in `prepare_process` rather than right before
/// execve: without no_new_privs loading needs CAP_SYS_ADMIN, which the process is about
/// to lose; a NOTIFY filter's fd must reach the parent before create returns.
fn load_seccomp_early(p: &ProcessPlan) -> bool {
    p.seccomp
        .as_ref()
        .is_some_and(|f| !p.no_new_privs || f.uses_notify())
}

/// Everything about the process except the final exec: limits, cwd, identity and
/// capabilities, and the executable's path. Returns which exec candidate to use, and
/// the seccomp notify fd when the filter has one.
fn prepare_process(p: &ProcessPlan) -> R<(usize, Option<OwnedFd>)> {
    for (i, (resource, limit, _)) in p.rlimits.iter().enumerate() {
        // SAFETY: setrlimit with a valid rlimit struct.
        if unsafe { libc::setrlimit(*resource as _, limit) } < 0 {
            return Err(last(Step::Rlimit, i));
        }
    }
    if let Some(persona) = p.personality {
        // SAFETY: plain syscall.
        if unsafe { libc::personality(persona) } < 0 {
            return Err(last(Step::Personality, 0));
        }
    }
    if let Some(prio) = p.io_priority {
        // SAFETY: ioprio_set(IOPRIO_WHO_PROCESS, self, prio).
        if unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) } < 0 {
            return Err(last(Step::IoPriority, 0));
        }
    }
    // Before the identity changes: a real-time policy needs CAP_SYS_NICE.
    if let Some(attr) = &p.scheduler {
        sys::sched_setattr(attr).map_err(os(Step::Scheduler, 0))?;
    }
    if let Some(policy) = &p.mem_policy {
        sys::set_mempolicy(policy.mode, &policy.nodemask, policy.maxnode)
            .map_err(os(Step::MemoryPolicy, 0))?;
    }
    // The process is in the container's cgroup by now (born there, or placed before GO).
    if let Some(cpus) = &p.final_cpus {
        sys::sched_setaffinity(cpus).map_err(os(Step::CpuAffinity, 0))?;
    }
    change_dir(p)?;
    let exec_index = find_executable(p)?;
    for (i, label) in p.exec_labels.iter().enumerate() {
        write_label(label, Step::Lsm, i)?;
    }
    let mut notify_fd = None;
    if load_seccomp_early(p) {
        if let Some(filter) = &p.seccomp {
            notify_fd = filter.load().map_err(os(Step::Seccomp, 0))?;
        }
    }
    set_identity(p)?;
    // SAFETY: umask cannot fail; 0022 is the default when the config has none, as in runc.
    unsafe { libc::umask(p.umask.unwrap_or(0o022)) };
    if p.no_new_privs {
        // SAFETY: plain prctl.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
            return Err(last(Step::NoNewPrivs, 0));
        }
    }
    Ok((exec_index, notify_fd))
}

/// Writes an AppArmor profile or SELinux label into one of our own procfs `attr` files
/// (`exec` for the next execve, `keycreate` for new keys), through a descriptor checked
/// to be on procfs (a container could have mounted something else over /proc). `step`
/// and `index` say which label failed, for the failure report.
fn write_label(label: &super::lsm::ExecLabel, step: Step, index: usize) -> R<()> {
    let no_procfs = os(step, index | super::lsm::NO_ATTR_FILE);
    for file in label.files {
        let fd = match sys::openat2(
            libc::AT_FDCWD,
            file,
            libc::O_WRONLY,
            0,
            sys::RESOLVE_NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(os(step, index)(e)),
        };
        rootfs::check_procfs(fd.as_raw_fd()).map_err(&no_procfs)?;
        return sys::write_all(fd.as_raw_fd(), label.value.to_bytes()).map_err(os(step, index));
    }
    Err(no_procfs(io::Error::from_raw_os_error(libc::ENOENT)))
}

/// chdir to process.cwd, then check the kernel still sees it inside our root (a cwd that
/// leads outside, e.g. through a leaked fd, has no path from "/").
fn change_dir(p: &ProcessPlan) -> R<()> {
    let mut buf = [0u8; 4096];
    let mut path = [0u8; 4098];
    path[0] = b'/';
    let rel = p.cwd.rel.to_bytes();
    let len = if rel == b"." { 1 } else { rel.len() + 1 };
    if len >= path.len() - 1 {
        return Err(Fail::new(Step::Cwd, 0, libc::ENAMETOOLONG));
    }
    if rel != b"." {
        path[1..len].copy_from_slice(rel);
    }
    // SAFETY: path is NUL-terminated (zero-filled beyond len); buf is a valid buffer.
    unsafe {
        if libc::chdir(path.as_ptr().cast()) < 0 {
            return Err(last(Step::Cwd, 0));
        }
        let ret = libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len());
        if ret < 0 {
            return Err(last(Step::CwdEscape, 0));
        }
    }
    if buf[0] != b'/' {
        return Err(Fail::new(Step::CwdEscape, 0, libc::EPERM));
    }
    Ok(())
}

/// Finds args[0] (a regular executable file) inside the container; like runc, create
/// fails when it does not exist rather than start.
fn find_executable(p: &ProcessPlan) -> R<usize> {
    let mut err = libc::ENOENT;
    for (i, cand) in p.exec_candidates.iter().enumerate() {
        // SAFETY: stat is plain old data; NUL-terminated path.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::stat(cand.as_ptr(), &mut st) } < 0 {
            continue;
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            err = libc::EACCES;
            continue;
        }
        if st.st_mode & 0o111 == 0 {
            err = libc::EACCES;
            continue;
        }
        return Ok(i);
    }
    Err(Fail::new(Step::ExecLookup, 0, err))
}

/// Groups, uid/gid and the five capability sets, in the order that keeps the rights
/// needed for each next step: bounding set first, ids with KEEPCAPS, then capset, then
/// ambient.
fn set_identity(p: &ProcessPlan) -> R<()> {
    // SAFETY: prctl/setgroups/setres*id/capset are plain syscalls on prepared data.
    unsafe {
        if let Some(caps) = &p.caps {
            for cap in 0..64u64 {
                if caps.bounding & (1 << cap) == 0 {
                    let r = libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
                    if r < 0 && sys::errno() != libc::EINVAL {
                        return Err(last(Step::Caps, 0));
                    }
                }
            }
        }
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 {
            return Err(last(Step::Caps, 1));
        }
        if libc::setgroups(p.groups.len(), p.groups.as_ptr()) < 0 {
            // setgroups is denied in a user namespace with /proc/PID/setgroups "deny".
            if !(p.groups.is_empty() && sys::errno() == libc::EPERM) {
                return Err(last(Step::Groups, 0));
            }
        }
        if libc::setresgid(p.gid, p.gid, p.gid) < 0 {
            return Err(last(Step::SetUser, 0));
        }
        if libc::setresuid(p.uid, p.uid, p.uid) < 0 {
            return Err(last(Step::SetUser, 1));
        }
        if let Some(caps) = &p.caps {
            sys::capset(caps.effective, caps.permitted, caps.inheritable)
                .map_err(os(Step::Caps, 2))?;
            for cap in 0..64u64 {
                if caps.ambient & (1 << cap) != 0 {
                    let r = libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                        cap as libc::c_ulong,
                        0,
                        0,
                    );
                    // Like runc: an ambient cap outside permitted+inheritable is skipped.
                    if r < 0 && sys::errno() != libc::EPERM {
                        return Err(last(Step::Caps, 3));
                    }
                }
            }
        }
        if libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0 {
            return Err(last(Step::Caps, 4));
        }
    }
    Ok(())
}

/// Blocks until `start` writes to the exec fifo (we hold it open read-write, so the read
/// waits for data rather than seeing EOF).
fn wait_for_start(fifo: RawFd) -> R<()> {
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: reading one byte into a valid buffer.
        let n = unsafe { libc::read(fifo, byte.as_mut_ptr().cast(), 1) };
        if n == 1 {
            return Ok(());
        }
        if n < 0 && sys::errno() == libc::EINTR {
            continue;
        }
        return Err(last(Step::Sync, 4));
    }
}

/// A new session with the pty slave as its controlling terminal and as stdin/out/err.
fn attach_console(slave: &OwnedFd) -> R<()> {
    let fd = slave.as_raw_fd();
    // SAFETY: setsid/ioctl/dup2 on our own descriptors.
    unsafe {
        libc::setsid();
        if libc::ioctl(fd, libc::TIOCSCTTY, 0) < 0 {
            return Err(last(Step::Console, 7));
        }
        for target in 0..3 {
            if libc::dup2(fd, target) < 0 {
                return Err(last(Step::Console, 8));
            }
        }
    }
    Ok(())
}

/// The last moments: stdio onto the terminal, every descriptor berth opened closed
/// (close-on-exec from 3 + preserved fds up), signals back to defaults, execve.
/// `tell_stderr`: say on stderr that execve failed (the init's parent is gone by then).
fn exec(p: &ProcessPlan, index: usize, console: Option<&OwnedFd>, tell_stderr: bool) -> R<()> {
    // SAFETY: async-signal-safe calls on prepared data; execve only returns on failure.
    unsafe {
        match console {
            Some(slave) => attach_console(slave)?,
            None => {
                libc::setsid();
            }
        }
        // Preserved fds must survive exec even if the caller made them close-on-exec.
        for fd in 3..3 + p.preserve_fds as RawFd {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            }
        }
        sys::cloexec_from(3 + p.preserve_fds).map_err(os(Step::Exec, 0))?;
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        // With no_new_privs the filter goes on last, so it only has to allow execve.
        if !load_seccomp_early(p) {
            if let Some(filter) = &p.seccomp {
                filter.load().map_err(os(Step::Seccomp, 0))?;
            }
        }
        let path = &p.exec_candidates[index];
        libc::execve(path.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr());
    }
    let errno = sys::errno();
    if tell_stderr {
        // The parent is gone by now (`create` returned): tell the container's stderr.
        let mut digits = [0u8; 12];
        for part in [
            &b"berth: exec "[..],
            p.exec_candidates[index].to_bytes(),
            b" failed: ",
            sys::exec_errno_text(errno),
            b", errno ",
            sys::format_decimal(&mut digits, errno),
            b"\n",
        ] {
            let _ = sys::write_all(2, part);
        }
    }
    Err(Fail::new(Step::Exec, 0, errno))
}

/// Descriptors `berth exec` opened for its child before the clone.
pub struct ExecFds {
    pub sync: RawFd,
    /// The parent's copy of the container lock: closed first thing.
    pub lock: RawFd,
    /// A pidfd of the container's init: `setns(pidfd, flags)` joins every namespace at once.
    pub init_pidfd: RawFd,
    /// `/proc/<init>/ns/*` (flag, fd), user namespace first, for kernels without setns
    /// on pidfds.
    pub ns: Vec<(libc::c_int, RawFd)>,
    /// The init's root directory (O_PATH), entered after the mount namespace.
    pub root: RawFd,
    pub console_socket: Option<RawFd>,
}

/// Where `Fail.index` points for `Step::SetNs` in an exec: the pidfd, or `ns[index - 1]`.
pub const EXEC_SETNS_PIDFD: usize = 0;
/// `Step::Pivot` indexes in an exec: fchdir to the init's root, then chroot.
pub const EXEC_ROOT_FCHDIR: usize = 0;
pub const EXEC_ROOT_CHROOT: usize = 1;

/// The entry point of a process `berth exec` starts in a running container: never returns.
pub fn run_exec(plan: &ExecPlan, fds: &ExecFds) -> ! {
    exit_reporting(fds.sync, exec_in_container(plan, fds))
}

/// Joins the container (namespaces, root, keyring), then the same process setup and exec
/// as the init. The parent waits for EOF on the close-on-exec sync socket: that is the
/// sign execve succeeded.
fn exec_in_container(plan: &ExecPlan, fds: &ExecFds) -> R<()> {
    hide_from_container();
    // SAFETY: close/signal are async-signal-safe. SIGPIPE is restored before exec.
    unsafe {
        libc::close(fds.lock);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    send(fds.sync, msg::EXEC_READY, 0, 0, 0).map_err(os(Step::Sync, 5))?;
    // GO comes once the parent has put us in the container's cgroups, so the cgroup
    // namespace we join next sees us under its root.
    expect(fds.sync, msg::GO)?;
    join_container_namespaces(plan.join_flags, fds)?;
    enter_root(fds.root)?;
    join_session_keyring(
        plan.session_keyring.as_deref(),
        plan.process.key_label.as_ref(),
    )?;
    let console = if plan.process.terminal {
        Some(open_exec_console(&plan.process, fds.console_socket)?)
    } else {
        None
    };
    let (exec_index, notify_fd) = prepare_process(&plan.process)?;
    if let Some(fd) = notify_fd {
        // `berth exec` hands it to the agent at listenerPath, as create does for the init
        // (and runc for exec'd processes).
        rootfs::send_fd(
            fds.sync,
            fd.as_raw_fd(),
            &msg::encode(msg::SECCOMP_FD, 0, 0, 0),
        )
        .map_err(os(Step::Seccomp, 1))?;
    }
    exec(&plan.process, exec_index, console.as_ref(), false)
}

/// `setns(pidfd, flags)` (Linux 5.8+: all namespaces at once, user namespace handled
/// first by the kernel); on EINVAL (an older kernel) one `/proc/<init>/ns/*` at a time.
fn join_container_namespaces(flags: libc::c_int, fds: &ExecFds) -> R<()> {
    if flags == 0 {
        return Ok(());
    }
    // SAFETY: setns on a pidfd the parent opened.
    if unsafe { libc::setns(fds.init_pidfd, flags) } == 0 {
        return Ok(());
    }
    let errno = sys::errno();
    if errno != libc::EINVAL || fds.ns.is_empty() {
        return Err(Fail::new(Step::SetNs, EXEC_SETNS_PIDFD, errno));
    }
    for (i, (flag, fd)) in fds.ns.iter().enumerate() {
        // SAFETY: setns on a namespace fd the parent opened.
        if unsafe { libc::setns(*fd, *flag) } < 0 {
            return Err(last(Step::SetNs, i + 1));
        }
    }
    Ok(())
}

/// Makes the init's root our root: after pivot_root it is the mount namespace's root
/// anyway, but with `--no-pivot` the namespace's root is still the host's.
fn enter_root(root: RawFd) -> R<()> {
    // SAFETY: fchdir on an O_PATH directory fd, chroot on a static path.
    unsafe {
        if libc::fchdir(root) < 0 {
            return Err(last(Step::Pivot, EXEC_ROOT_FCHDIR));
        }
        if libc::chroot(c".".as_ptr()) < 0 {
            return Err(last(Step::Pivot, EXEC_ROOT_CHROOT));
        }
    }
    Ok(())
}

/// A new pty in the container's devpts; the master goes to the console socket, the
/// slave becomes the process's stdio in `exec`.
fn open_exec_console(p: &ProcessPlan, socket: Option<RawFd>) -> R<OwnedFd> {
    use std::os::fd::FromRawFd;
    let sock = socket.ok_or(Fail::new(Step::ConsoleSend, 0, libc::EBADF))?;
    // SAFETY: open/ioctl on valid fds and pointers; each returned fd is owned once.
    let (master, slave) = unsafe {
        let m = libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if m < 0 {
            return Err(last(Step::Console, 0));
        }
        let master = OwnedFd::from_raw_fd(m);
        let unlock: libc::c_int = 0;
        if libc::ioctl(m, libc::TIOCSPTLCK, &unlock) < 0 {
            return Err(last(Step::Console, 1));
        }
        let s = libc::ioctl(
            m,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if s < 0 {
            return Err(last(Step::Console, 2));
        }
        (master, OwnedFd::from_raw_fd(s))
    };
    if let Some(ws) = p.console_size {
        // SAFETY: valid fd and winsize pointer.
        if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            return Err(last(Step::Console, 3));
        }
    } else {
        // The caller's terminal size, before the program can ask for it: the foreground
        // `berth exec` only copies it once the program runs.
        // SAFETY: winsize is plain old data; a failing ioctl (stdin not a tty) changes nothing.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
                libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws);
            }
        }
    }
    rootfs::send_fd(sock, master.as_raw_fd(), b"/dev/ptmx").map_err(os(Step::ConsoleSend, 0))?;
    Ok(slave)
}

/// The steps of the container's process, the init's or an exec'd one (`prepare_process`
/// and `exec`), as a sentence.
pub fn describe_process_step(p: &ProcessPlan, step: Step, i: usize, err: std::io::Error) -> String {
    match step {
        Step::Keyring => format!("joining the container's session keyring: {err}"),
        Step::Rlimit => format!(
            "setting rlimit {}: {err}",
            p.rlimits.get(i).map(|r| r.2.as_str()).unwrap_or("?")
        ),
        Step::Personality => format!("setting personality: {err}"),
        Step::IoPriority => format!("setting io priority: {err}"),
        Step::Scheduler => format!("setting the scheduler (sched_setattr): {err}"),
        Step::MemoryPolicy => format!("setting the memory policy (set_mempolicy): {err}"),
        Step::CpuAffinity => format!("setting execCPUAffinity.final (sched_setaffinity): {err}"),
        Step::Cwd => format!("changing to cwd {}: {err}", p.cwd.display),
        Step::CwdEscape => format!("cwd {} is outside the container's root", p.cwd.display),
        Step::Umask => format!("setting umask: {err}"),
        Step::Groups => format!("setting additional groups: {err}"),
        Step::SetUser => format!("setting uid {} gid {}: {err}", p.uid, p.gid),
        Step::Caps => format!("applying capabilities: {err}"),
        Step::NoNewPrivs => format!("setting no_new_privs: {err}"),
        Step::ExecLookup if err.raw_os_error() == Some(libc::ENOENT) => {
            format!("exec: {:?}: executable file not found in $PATH", p.arg0)
        }
        Step::ExecLookup => format!("exec: {:?}: {err}", p.arg0),
        Step::Exec => format!("exec {:?}: {err}", p.arg0),
        Step::Sync => format!("talking to berth: {err}"),
        Step::Seccomp => format!("loading the container's seccomp filter: {err}"),
        Step::Lsm => {
            super::lsm::describe_failure(&p.exec_labels, i, err.raw_os_error().unwrap_or(0))
        }
        Step::KeyLabel => format!(
            "session keyring: {}",
            super::lsm::describe_failure(
                p.key_label.as_slice(),
                i,
                err.raw_os_error().unwrap_or(0)
            )
        ),
        other => format!("{other:?} (item {i}): {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let b = msg::encode(msg::ERROR, Step::Mount as u32, 7, -3);
        assert_eq!(msg::decode(&b), (msg::ERROR, Step::Mount as u32, 7, -3));
    }

    #[test]
    fn every_step_decodes() {
        for v in 1..=50 {
            let step = Step::from_u32(v).expect("step");
            assert_eq!(step as u32, v);
        }
        assert!(Step::from_u32(0).is_none());
        assert!(Step::from_u32(51).is_none());
    }
}
