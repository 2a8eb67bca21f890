//! The parent side of `create`: validate, plan, clone the init with every namespace in
//! one `clone3`, write id maps, run the runtime-namespace hooks, and wait until the init
//! is blocked before the user program. On any failure the init is killed and the state
//! directory removed: nothing is left behind (mounts live in the init's mount namespace
//! and vanish with it).

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::container::{self, Container, Saved, Status};
use super::error::{Context, Error, Result};
use super::init::{self, msg, Fail, InitFds, Step};
use super::plan::{self, InitPlan, PlanOptions};
use super::{exe_guard, hooks, log, spec, sys};
use berth_cgroups::{CgroupConfig, Layout, Manager};

pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub root: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// `--systemd-cgroup`: cgroupsPath is `slice:prefix:name`.
    pub systemd_cgroup: bool,
    /// `run` in the foreground with a terminal and no console socket: berth receives the
    /// pty master itself and proxies it.
    pub keep_console: bool,
}

/// A created container, blocked before its user program.
pub struct Created {
    pub container: Container,
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub console_master: Option<OwnedFd>,
}

pub fn create(opts: &CreateOptions) -> Result<Created> {
    exe_guard::ensure_protected()?;
    container::validate_id(&opts.id)?;
    check_preserved_fds(opts.preserve_fds)?;
    let bundle =
        std::fs::canonicalize(&opts.bundle).ctx(|| format!("bundle {}", opts.bundle.display()))?;
    let config = spec::load(&bundle)?;
    let spec = config.spec;
    spec::validate(&spec)?;
    let rootfs = spec::rootfs_path(&spec, &bundle)?;
    let cgroup = resolve_cgroup(&spec, opts)?;
    let cgroup_views = cgroup.hierarchy_views();
    let plan = plan::build(
        &spec,
        &rootfs,
        &PlanOptions {
            id: &opts.id,
            no_new_keyring: opts.no_new_keyring,
            no_pivot: opts.no_pivot,
            preserve_fds: opts.preserve_fds,
            cgroups: &cgroup_views,
            bundle: &bundle,
            mount_mappings: &config.mount_mappings,
        },
    )?;
    let mut plan = plan;
    super::idmap::prepare_idmapped_mounts(&mut plan.mounts)?;
    let console = console_channel(opts, plan.process.terminal)?;
    let join_fds = open_join_fds(&plan)?;

    let mut container = Container::create_dir(&opts.root, &opts.id)?;
    let saved = Saved {
        id: opts.id.clone(),
        pid: 0,
        pid_start_time: 0,
        bundle: bundle.clone(),
        rootfs,
        created: container::now_rfc3339(),
        owner: owner_name(),
        annotations: spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        config: spec,
        cgroup: None,
        no_new_keyring: opts.no_new_keyring,
    };
    match spawn_init(
        &mut container,
        saved,
        cgroup,
        &plan,
        console,
        &join_fds,
        opts,
    ) {
        Ok((pid, pidfd, master)) => Ok(Created {
            container,
            pid,
            pidfd,
            console_master: master,
        }),
        Err(e) => {
            let _ = container.remove();
            Err(e)
        }
    }
}

/// Descriptors 3..3+N (N = --preserve-fds + `plan::listen_fds`) lose close-on-exec in the child:
/// each must be one the caller passed. A gap would let a descriptor berth opens later (the
/// container lock, a namespace fd) take that number and leak into the container, so this
/// runs before berth opens anything.
pub(crate) fn check_preserved_fds(preserve_fds: u32) -> Result<()> {
    // The same count the plan passes on (LISTEN_FDS only with our LISTEN_PID).
    let count = preserve_fds.saturating_add(plan::listen_fds());
    let last = RawFd::try_from(count).map_or(RawFd::MAX, |n| n.saturating_add(3));
    for fd in 3..last {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Error::Usage(format!(
                "--preserve-fds {count}: descriptor {fd} is not open"
            )));
        }
    }
    Ok(())
}

/// Resolves the container's cgroup (linux.cgroupsPath, runc's rules); creates nothing yet.
fn resolve_cgroup(spec: &oci_spec::runtime::Spec, opts: &CreateOptions) -> Result<Manager> {
    let path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.display().to_string());
    let manager = Manager::new(&CgroupConfig {
        cgroups_path: path.as_deref(),
        container_id: &opts.id,
        systemd: opts.systemd_cgroup,
    })?;
    for warning in manager.warnings() {
        log::warn(warning);
    }
    Ok(manager)
}

/// Makes the cgroup and applies linux.resources (device rules included).
fn create_cgroup(cgroup: &mut Manager, spec: &oci_spec::runtime::Spec) -> Result<()> {
    cgroup.create()?;
    let resources = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    if let Err(e) = cgroup.apply(&resources) {
        let _ = cgroup.destroy();
        return Err(e.into());
    }
    Ok(())
}

/// systemd mode, before GO: the blocked init goes into a new transient scope (checked to be
/// really there), then the hierarchies systemd left alone get their directories, the limits
/// are written and the init joins those too. The caller's `destroy` undoes all of it.
fn place_in_systemd_scope(
    cgroup: &mut Manager,
    pid: i32,
    spec: &oci_spec::runtime::Spec,
) -> Result<()> {
    let resources = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    for warning in cgroup.start_systemd_scope(pid, &resources)? {
        log::warn(&warning);
    }
    cgroup.create()?;
    cgroup.apply(&resources)?;
    cgroup.add_process(pid)?;
    Ok(())
}

/// The caller's user name from /etc/passwd, as runc looks it up (the file only, no NSS:
/// no nscd socket or nsswitch.conf on every create), or the uid when it has none.
fn owner_name() -> String {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| passwd_name(&passwd, uid))
        .unwrap_or_else(|| uid.to_string())
}

/// The name of `uid` in passwd(5) text.
fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let entry_uid = fields.nth(1)?;
        (entry_uid.parse() == Ok(uid) && !name.is_empty()).then(|| name.to_string())
    })
}

/// The socket the init sends the pty master over: the caller's console socket, or a
/// private socketpair when `run` proxies the terminal itself.
enum ConsoleChannel {
    None,
    Socket(UnixStream),
    Private {
        ours: UnixStream,
        theirs: UnixStream,
    },
}

fn console_channel(opts: &CreateOptions, terminal: bool) -> Result<ConsoleChannel> {
    match (&opts.console_socket, terminal) {
        (Some(path), true) => {
            let sock = UnixStream::connect(path)
                .ctx(|| format!("connecting to console socket {}", path.display()))?;
            Ok(ConsoleChannel::Socket(sock))
        }
        (Some(_), false) => Err(Error::Usage(
            "--console-socket was given but process.terminal is false".into(),
        )),
        (None, true) if opts.keep_console => {
            let (ours, theirs) = UnixStream::pair().ctx(|| "creating console socketpair")?;
            Ok(ConsoleChannel::Private { ours, theirs })
        }
        (None, true) => Err(Error::Usage(
            "process.terminal is true: a detached container needs --console-socket".into(),
        )),
        (None, false) => Ok(ConsoleChannel::None),
    }
}

fn open_join_fds(plan: &InitPlan) -> Result<Vec<File>> {
    plan.join
        .iter()
        .map(|j| {
            File::open(&j.path).ctx(|| format!("opening {} namespace {}", j.typ, j.path.display()))
        })
        .collect()
}

/// A SOCK_SEQPACKET pair (message boundaries kept), both ends close-on-exec: the
/// child's end closes at execve.
pub(crate) fn sync_pair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills two descriptors we then own.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "creating sync socketpair");
    }
    // SAFETY: the kernel just gave us these two descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Makes the exec fifo and opens it read-write (the init blocks reading it until `start`).
fn make_exec_fifo(container: &Container) -> Result<File> {
    let path = container.fifo_path();
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .ctx(|| format!("creating {}", path.display()))?;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()))
}

type Spawned = (i32, OwnedFd, Option<OwnedFd>);

fn spawn_init(
    container: &mut Container,
    saved: Saved,
    mut cgroup: Manager,
    plan: &InitPlan,
    console: ConsoleChannel,
    join_fds: &[File],
    opts: &CreateOptions,
) -> Result<Spawned> {
    let fifo = make_exec_fifo(container)?;
    // A systemd scope needs a live pid: it is made once the init exists.
    if cgroup.systemd_scope().is_none() {
        create_cgroup(&mut cgroup, &saved.config)?;
    }
    match spawn_in_cgroup(
        container,
        saved,
        &mut cgroup,
        plan,
        console,
        join_fds,
        opts,
        fifo,
    ) {
        Ok(spawned) => Ok(spawned),
        Err(e) => {
            if let Err(ce) = cgroup.destroy() {
                log::warn(&format!("removing the cgroup of a failed create: {ce}"));
            }
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn_in_cgroup(
    container: &mut Container,
    mut saved: Saved,
    cgroup: &mut Manager,
    plan: &InitPlan,
    console: ConsoleChannel,
    join_fds: &[File],
    opts: &CreateOptions,
    fifo: File,
) -> Result<Spawned> {
    let (parent_sock, child_sock) = sync_pair()?;
    let console_fd = match &console {
        ConsoleChannel::None => None,
        ConsoleChannel::Socket(s) => Some(s.as_raw_fd()),
        ConsoleChannel::Private { theirs, .. } => Some(theirs.as_raw_fd()),
    };
    let fds = InitFds {
        sync: child_sock.as_raw_fd(),
        fifo: fifo.as_raw_fd(),
        console_socket: console_fd,
        join: join_fds.iter().map(|f| f.as_raw_fd()).collect(),
        lock: container.lock_fd(),
    };
    // Allocated before the clone: the init receives the hooks' state JSON into it.
    let mut state_buf = Vec::with_capacity(256 * 1024);
    // The cgroup namespace is unshared by the init once it is in its cgroups.
    let clone_flags = if plan.all_new() {
        plan.new_ns_flags & !libc::CLONE_NEWCGROUP
    } else {
        0
    };
    // On a pure v2 host the init is born in its cgroup (CLONE_INTO_CGROUP), unless systemd
    // makes that cgroup around the running init.
    let into_cgroup = match cgroup.layout() {
        Layout::Unified if cgroup.systemd_scope().is_none() => cgroup.v2_dir_fd(),
        _ => None,
    };
    let (clone_pid, clone_pidfd) = match sys::clone3_fork(
        clone_flags as u64,
        into_cgroup.as_ref().map(|f| f.as_raw_fd()),
    )
    .ctx(|| "clone3 of the container init")?
    {
        sys::Forked::Child => init::run(plan, &fds, &mut state_buf),
        sys::Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_sock);
    drop(fds);
    let mut init = InitProcess {
        clone_pid,
        pid: clone_pid,
        pidfd: clone_pidfd,
        sock: parent_sock,
    };
    let hooks_started = std::cell::Cell::new(false);
    let saved_for_hooks = saved.clone();
    let result = (|| {
        init.handshake_namespaces(plan)?;
        if cgroup.systemd_scope().is_some() {
            place_in_systemd_scope(cgroup, init.pid, &saved.config)?;
        } else if into_cgroup.is_none() {
            // Before GO: the init runs no user code and has not made its cgroup namespace yet.
            cgroup.add_process(init.pid)?;
        }
        saved.cgroup = Some(cgroup.clone());
        write_oom_score_adj(init.pid, plan.oom_score_adj)?;
        move_net_devices(init.pid, plan)?;
        saved.pid = init.pid;
        saved.pid_start_time = container::proc_stat(init.pid)
            .map(|(_, start)| start)
            .ok_or_else(|| Error::Init("the container init exited during setup".into()))?;
        let state = serde_json::to_vec(&container::oci_state(&saved, Status::Creating))
            .map_err(|e| Error::State(format!("encoding state: {e}")))?;
        hooks_started.set(true);
        if let Some(h) = saved.config.hooks() {
            hooks::run_all(
                "prestart",
                h.prestart().as_deref().unwrap_or_default(),
                &state,
            )?;
            hooks::run_all(
                "createRuntime",
                h.create_runtime().as_deref().unwrap_or_default(),
                &state,
            )?;
        }
        init.send(msg::GO)?;
        // Hooks run by the init are in the container's pid namespace: their state carries
        // the pid as seen there (runtime.md).
        let mut inside = container::oci_state(&saved, Status::Creating);
        inside.pid = pid_in_own_namespace(init.pid).unwrap_or(init.pid);
        let inside = serde_json::to_vec(&inside)
            .map_err(|e| Error::State(format!("encoding state: {e}")))?;
        init.send_bytes(&inside)?;
        init.wait_created(plan, &saved)?;
        let master = match &console {
            ConsoleChannel::Private { ours, .. } => Some(receive_fd(ours.as_raw_fd())?),
            _ => None,
        };
        container.save(saved.clone())?;
        if let Some(path) = &opts.pid_file {
            write_pid_file(path, init.pid)?;
        }
        Ok(master)
    })();
    match result {
        Ok(master) => Ok((init.pid, init.pidfd, master)),
        Err(e) => {
            init.kill();
            // Lifecycle steps 12-13: once hooks ran, a failed create still runs poststop.
            if hooks_started.get() {
                run_poststop_after_failure(&saved_for_hooks);
            }
            Err(e)
        }
    }
}

/// The last pid in /proc/PID/status NSpid: the pid as seen in its own pid namespace.
fn pid_in_own_namespace(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

fn run_poststop_after_failure(saved: &Saved) {
    if let Some(h) = saved.config.hooks() {
        let Ok(state) = serde_json::to_vec(&container::oci_state(saved, Status::Stopped)) else {
            return;
        };
        for warning in hooks::run_all_warn(
            "poststop",
            h.poststop().as_deref().unwrap_or_default(),
            &state,
        ) {
            log::warn(&warning);
        }
    }
}

/// A decoded sync message: (kind, step, index, value).
type Msg = (u32, u32, u32, i32);

/// The parent's view of the init during create.
struct InitProcess {
    /// The process clone3 made (the init itself, or the intermediate on the slow path).
    clone_pid: i32,
    pid: i32,
    pidfd: OwnedFd,
    sock: OwnedFd,
}

impl InitProcess {
    fn send(&self, kind: u32) -> Result<()> {
        let b = msg::encode(kind, 0, 0, 0);
        self.send_bytes(&b)
    }

    fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        // SAFETY: bytes is a valid buffer.
        let n = unsafe {
            libc::send(
                self.sock.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            return Err(Error::Init(format!(
                "the container init went away: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    /// Receives one message; EOF means the init died without saying why.
    fn recv(&self, plan: &InitPlan) -> Result<(u32, u32, u32, i32)> {
        self.recv_with_fd(plan).map(|(m, _)| m)
    }

    /// Receives one message and the descriptor attached to it, if any.
    fn recv_with_fd(&self, plan: &InitPlan) -> Result<(Msg, Option<OwnedFd>)> {
        let mut b = [0u8; 16];
        let (n, fd) = recv_msg(self.sock.as_raw_fd(), &mut b).unwrap_or((0, None));
        if n != 16 {
            return Err(Error::Init(
                "the container init exited during setup without a report".into(),
            ));
        }
        let m = msg::decode(&b);
        if m.0 == msg::ERROR {
            let step = Step::from_u32(m.1).unwrap_or(Step::Sync);
            let fail = Fail {
                step,
                index: m.2,
                errno: m.3,
            };
            return Err(Error::Init(describe(plan, fail)));
        }
        Ok((m, fd))
    }

    /// Namespaces: write id maps when asked, learn the init's pid after the extra fork.
    fn handshake_namespaces(&mut self, plan: &InitPlan) -> Result<()> {
        if plan.all_new() {
            if plan.new_user {
                write_id_maps(self.pid, plan)?;
                self.send(msg::MAPS_DONE)?;
            }
            return Ok(());
        }
        if plan.new_user {
            self.expect(plan, msg::NEED_MAPS)?;
            write_id_maps(self.clone_pid, plan)?;
            self.send(msg::MAPS_DONE)?;
        }
        let pid_changes = plan.new_ns_flags & libc::CLONE_NEWPID != 0
            || plan.join.iter().any(|j| j.flag == libc::CLONE_NEWPID);
        if pid_changes {
            let (_, _, _, pid) = self.expect(plan, msg::PID)?;
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.clone_pid), None);
            self.pid = pid;
            self.pidfd = sys::pidfd_open(pid).ctx(|| "pidfd_open of the container init")?;
        }
        Ok(())
    }

    fn expect(&self, plan: &InitPlan, kind: u32) -> Result<(u32, u32, u32, i32)> {
        let m = self.recv(plan)?;
        if m.0 != kind {
            return Err(Error::Init(format!(
                "unexpected message {} from the container init (wanted {kind})",
                m.0
            )));
        }
        Ok(m)
    }

    /// Waits for CREATED; a seccomp notify fd sent before it goes to the agent at
    /// linux.seccomp.listenerPath with the container process state.
    fn wait_created(&self, plan: &InitPlan, saved: &Saved) -> Result<()> {
        loop {
            let (m, fd) = self.recv_with_fd(plan)?;
            match (m.0, fd) {
                (msg::CREATED, _) => return Ok(()),
                (msg::SECCOMP_FD, Some(fd)) => {
                    send_notify_fd(saved, self.pid, &fd, Status::Creating)?
                }
                (kind, _) => {
                    return Err(Error::Init(format!(
                        "unexpected message {kind} from the container init"
                    )))
                }
            }
        }
    }

    /// Kills the init after a failed create and reaps it if it is ours.
    fn kill(&self) {
        let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
        let _ = sys::wait_pidfd(self.pidfd.as_raw_fd(), 5000);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
        if self.clone_pid != self.pid {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.clone_pid), None);
        }
    }
}

/// `recvmsg` of one message with room for one SCM_RIGHTS descriptor (EINTR retried).
pub(crate) fn recv_msg(sock: RawFd, buf: &mut [u8]) -> std::io::Result<(usize, Option<OwnedFd>)> {
    loop {
        match recv_msg_once(sock, buf) {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            other => return other,
        }
    }
}

fn recv_msg_once(sock: RawFd, buf: &mut [u8]) -> std::io::Result<(usize, Option<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain old data; its pointers are valid for the call.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = control.as_mut_ptr().cast();
    m.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: recvmsg into the buffers above; the CMSG macros walk our own control buffer.
    unsafe {
        let n = libc::recvmsg(sock, &mut m, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let cmsg = libc::CMSG_FIRSTHDR(&m);
        let fd = if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            let raw = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
            Some(OwnedFd::from_raw_fd(raw))
        } else {
            None
        };
        Ok((n as usize, fd))
    }
}

/// Hands a seccomp notify fd to the agent at listenerPath (runtime spec, config-linux.md),
/// with the container's state as of `status` and the pid of the process it filters.
pub(crate) fn send_notify_fd(saved: &Saved, pid: i32, fd: &OwnedFd, status: Status) -> Result<()> {
    let seccomp = saved
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().clone())
        .unwrap_or_default();
    let Some(path) = seccomp.listener_path() else {
        return Err(Error::Config(
            "linux.seccomp uses SCMP_ACT_NOTIFY but has no listenerPath".into(),
        ));
    };
    let state = serde_json::to_value(container::oci_state(saved, status))
        .map_err(|e| Error::State(format!("encoding state: {e}")))?;
    let json =
        berth_seccomp::process_state_json(seccomp.listener_metadata().as_deref(), pid, state);
    use std::os::fd::AsFd;
    berth_seccomp::send_to_listener(path, fd.as_fd(), &json)
        .map_err(|e| Error::Init(format!("seccomp listener: {e}")))
}

/// linux.netDevices into the init's network namespace, before any hook or user code.
fn move_net_devices(pid: i32, plan: &InitPlan) -> Result<()> {
    if plan.net_devices.is_empty() {
        return Ok(());
    }
    let path = format!("/proc/{pid}/ns/net");
    let netns = std::fs::File::open(&path).ctx(|| format!("opening {path}"))?;
    super::netdev::move_devices(&plan.net_devices, netns.as_raw_fd())
}

/// Writes /proc/PID/{uid_map,gid_map} for a new user namespace.
fn write_id_maps(pid: i32, plan: &InitPlan) -> Result<()> {
    for (file, map) in [("uid_map", &plan.uid_map), ("gid_map", &plan.gid_map)] {
        write_proc_file(pid, file, map.as_bytes())
            .ctx(|| format!("writing /proc/{pid}/{file} ({:?})", map.trim()))?;
    }
    Ok(())
}

/// Sets the init's oom_score_adj through the host's procfs (the container cannot reach it).
fn write_oom_score_adj(pid: i32, value: Option<i32>) -> Result<()> {
    if let Some(v) = value {
        write_proc_file(pid, "oom_score_adj", v.to_string().as_bytes())
            .ctx(|| format!("writing /proc/{pid}/oom_score_adj"))?;
    }
    Ok(())
}

/// Writes `/proc/PID/FILE` in one write(2), through a descriptor checked to be on procfs.
fn write_proc_file(pid: i32, file: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/{file}"))?;
    super::rootfs::check_procfs(f.as_raw_fd())?;
    f.write_all(bytes)
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .ctx(|| "current directory")?
            .join(path)
    };
    container::write_atomic(&abs, pid.to_string().as_bytes(), 0o644)
}

/// Receives one descriptor sent with SCM_RIGHTS.
pub fn receive_fd(sock: RawFd) -> Result<OwnedFd> {
    let mut data = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain old data; its pointers are valid for the call.
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_iov = &mut iov;
    m.msg_iovlen = 1;
    m.msg_control = control.as_mut_ptr().cast();
    m.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: recvmsg into the buffers above; CMSG macros walk our own control buffer.
    unsafe {
        if libc::recvmsg(sock, &mut m, libc::MSG_CMSG_CLOEXEC) < 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "receiving the pty master");
        }
        let cmsg = libc::CMSG_FIRSTHDR(&m);
        if cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Err(Error::Init("the container init sent no pty master".into()));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int);
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

fn strerror(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno).to_string()
}

/// Turns the init's (step, index, errno) report into a sentence, using the plan.
pub fn describe(plan: &InitPlan, fail: Fail) -> String {
    let i = fail.index as usize;
    let err = strerror(fail.errno);
    let mount_what = || {
        plan.mounts
            .get(i)
            .map(|m| m.what.clone())
            .unwrap_or_default()
    };
    let mount_dest = || {
        plan.mounts
            .get(i)
            .map(|m| m.dest.display.clone())
            .unwrap_or_default()
    };
    match fail.step {
        Step::SetNs => format!(
            "joining namespace {}: {err}",
            plan.join
                .get(i)
                .map(|j| j.path.display().to_string())
                .unwrap_or_default()
        ),
        Step::Unshare => format!("creating namespaces: {err}"),
        Step::Fork => format!("forking into the new pid namespace: {err}"),
        Step::BecomeRoot => format!("becoming root in the user namespace: {err}"),
        Step::TimeOffsets => format!("setting up the time namespace offsets: {err}"),
        Step::Hostname => format!("setting hostname: {err}"),
        Step::Domainname => format!("setting domainname: {err}"),
        Step::RootPropagation => format!("setting rootfs propagation: {err}"),
        Step::RootBind => format!(
            "bind-mounting the rootfs {}: {err}",
            plan.rootfs.to_string_lossy()
        ),
        Step::MountDest => format!("creating mount destination {}: {err}", mount_dest()),
        Step::MountSource => format!("opening mount source of {}: {err}", mount_what()),
        Step::Mount => format!("mounting {}: {err}", mount_what()),
        Step::MountOption => format!("mounting {}: invalid option: {err}", mount_what()),
        Step::MountAttr => format!("setting mount flags of {}: {err}", mount_what()),
        Step::Propagation => format!("setting propagation of {}: {err}", mount_what()),
        Step::TmpCopyUp => format!("tmpcopyup for {}: {err}", mount_dest()),
        Step::Device => format!(
            "creating device {}: {err}",
            plan.devices
                .get(i)
                .map(|d| d.path.display.clone())
                .unwrap_or_default()
        ),
        Step::DevSymlink => format!("creating /dev symlinks: {err}"),
        Step::DevNull => format!("/dev/null in the container is not the null device (1:3): {err}"),
        Step::Console => format!("setting up the console (step {i}): {err}"),
        Step::ConsoleSend => format!("sending the pty master to the console socket: {err}"),
        Step::CreateContainerHook | Step::StartContainerHook => format!("running hook #{i}: {err}"),
        Step::HookTimeout => format!("{} hook #{i} timed out", hook_kind(fail.errno as u32)),
        Step::HookStatus => {
            let (kind, n) = (fail.index >> 16, fail.index & 0xffff);
            let status = fail.errno;
            let why = if libc::WIFEXITED(status) {
                format!("exit status {}", libc::WEXITSTATUS(status))
            } else {
                format!("killed by signal {}", libc::WTERMSIG(status))
            };
            format!("{} hook #{n} failed: {why}", hook_kind(kind))
        }
        Step::Pivot => format!("pivot_root into the rootfs (step {i}): {err}"),
        Step::Sysctl => format!(
            "writing sysctl {}: {err}",
            plan.sysctls.get(i).map(|s| s.2.clone()).unwrap_or_default()
        ),
        Step::Readonly => format!(
            "making {} read-only: {err}",
            plan.readonly
                .get(i)
                .map(|p| p.display.clone())
                .unwrap_or_default()
        ),
        Step::Mask => format!(
            "masking {}: {err}",
            plan.masked
                .get(i)
                .map(|p| p.display.clone())
                .unwrap_or_default()
        ),
        Step::RootReadonly => format!("making the rootfs read-only: {err}"),
        Step::Keyring => format!("creating a session keyring: {err}"),
        step => super::init::describe_process_step(
            &plan.process,
            step,
            i,
            std::io::Error::from_raw_os_error(fail.errno),
        ),
    }
}

fn hook_kind(step: u32) -> &'static str {
    match Step::from_u32(step) {
        Some(Step::CreateContainerHook) => "createContainer",
        Some(Step::StartContainerHook) => "startContainer",
        _ => "container",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_names_come_from_the_uid_field() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\n# comment\nbad\nalice:x:1000:1000::/home/a:/bin/sh\n";
        assert_eq!(passwd_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(passwd_name(passwd, 1), None);
    }
}
