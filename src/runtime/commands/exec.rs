//! `berth exec`: start another process in a running container. The process is planned
//! before the clone like the init (`ExecPlan`), born in the container's pid namespace,
//! put in its cgroup, then joins every other namespace and the container's root, gets the
//! same process setup as the init (rlimits, cwd, user, groups, capabilities,
//! no_new_privs, umask) and execs. In the foreground berth waits for it, forwarding
//! signals and proxying its terminal, and exits with its exit code.
//!
//! What the process inherits from the container's config when neither `--process` nor a
//! flag says otherwise follows runc: capabilities, rlimits, AppArmor profile and
//! no_new_privs come from the config; `terminal` is false unless `--tty`.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Component, Path, PathBuf};

use berth_cgroups::{Layout, Manager};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use oci_spec::runtime::{Capability, LinuxCapabilities, Process, Spec};

use super::pidfd::PidfdSocket;
use super::supervise::{forwarded_signals, supervise};
use crate::runtime::container::{self, Container, Saved, Status};
use crate::runtime::create::{self, receive_fd};
use crate::runtime::error::{Context, Error, Result};
use crate::runtime::init::{self, msg, ExecFds, Fail, Step};
use crate::runtime::plan::{self, ExecPlan};
use crate::runtime::{exe_guard, rootfs, spec, spec_de, sys};

/// Everything `berth exec` was asked to do.
#[derive(Debug, Default)]
pub struct ExecOptions {
    pub root: PathBuf,
    pub id: String,
    /// `--process FILE`: an OCI process JSON instead of the flags below.
    pub process: Option<PathBuf>,
    /// The command and its arguments (after the container id).
    pub args: Vec<String>,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    pub tty: bool,
    /// `uid[:gid]`, numeric.
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub preserve_fds: u32,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub pidfd_socket: Option<PathBuf>,
    pub detach: bool,
    pub ignore_paused: bool,
    /// `[controller[,controller]:]path`: an existing sub-cgroup of the container's.
    pub cgroup: Vec<String>,
}

/// Runs `berth exec`; returns the exit code to exit with (0 when detached).
pub fn exec(opts: &ExecOptions) -> Result<i32> {
    exe_guard::ensure_protected()?;
    create::check_preserved_fds(opts.preserve_fds)?;
    let container = Container::load(&opts.root, &opts.id)?;
    let paused = check_status(&container, opts.ignore_paused)? == Status::Paused;
    let saved = container.saved()?.clone();
    let plan = exec_plan(&saved, opts)?;
    let targets = cgroup_targets(saved.cgroup.as_ref(), &opts.cgroup)?;
    let console = ConsoleChannel::open(opts, plan.process.terminal)?;
    let pidfd_socket = opts
        .pidfd_socket
        .as_deref()
        .map(PidfdSocket::connect)
        .transpose()?;
    let signals = if opts.detach {
        None
    } else {
        Some(block_forwarded_signals()?)
    };
    let spawned = spawn(container, &saved, plan, &targets, &console, paused)?;
    let (child, master) = started(spawned, &console)?;
    if let Err(e) = hand_over(opts, &child, pidfd_socket.as_ref()) {
        child.kill();
        return Err(e);
    }
    match signals {
        None => Ok(0),
        Some(sigfd) => Ok(supervise(child.pid, &child.pidfd, master, &sigfd)),
    }
}

/// Everything the child needs, prepared before the clone.
fn exec_plan(saved: &Saved, opts: &ExecOptions) -> Result<ExecPlan> {
    let process = exec_process(&saved.config, opts)?;
    // HOME from the container's own view of its passwd, mounts included.
    let live_root = PathBuf::from(format!("/proc/{}/root", saved.pid));
    let home = plan::container_home(&live_root, process.user().uid());
    let mut process_plan = plan::plan_process_spec(&process, opts.preserve_fds, None, Some(home))?;
    // The exec'd process gets the container's seccomp filter, as with runc, and its
    // memory policy.
    process_plan.seccomp = plan::compile_seccomp(&saved.config)?;
    process_plan.mem_policy = plan::plan_mem_policy(&saved.config)?;
    let affinity = process.exec_cpu_affinity().clone().unwrap_or_default();
    let initial_cpus = affinity_mask(affinity.initial().as_deref())?;
    process_plan.final_cpus = match affinity_mask(affinity.cpu_affinity_final().as_deref())? {
        Some(cpus) => Some(cpus),
        // Without `final` the process gets the container's default CPUs, not the
        // `initial` it inherited: every CPU, which the kernel narrows to the cgroup's cpuset.
        None if initial_cpus.is_some() => Some(crate::runtime::sched::all_cpus()),
        None => None,
    };
    Ok(ExecPlan {
        initial_cpus,
        process: process_plan,
        join_flags: 0,
        session_keyring: if saved.no_new_keyring {
            None
        } else {
            Some(plan::cstring(format!("_ses.{}", saved.id).as_bytes())?)
        },
    })
}

/// An execCPUAffinity list as a mask (checked when the config was read).
fn affinity_mask(list: Option<&str>) -> Result<Option<Vec<u8>>> {
    list.map(|l| {
        crate::runtime::sched::cpu_mask(l)
            .ok_or_else(|| Error::Config(format!("execCPUAffinity: {l:?} is not a CPU list")))
    })
    .transpose()
}

/// Blocks the signals a foreground exec forwards (before the clone, so none is lost; the
/// child unblocks them before execve) and returns a signalfd for them.
fn block_forwarded_signals() -> Result<SignalFd> {
    let set = forwarded_signals();
    set.thread_block().ctx(|| "blocking signals")?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC).ctx(|| "signalfd")
}

/// The child once it exec'd, with the pty master when berth proxies the terminal; a
/// child that failed on the way is killed and reaped.
fn started(spawned: Spawned, console: &ConsoleChannel) -> Result<(Child, Option<OwnedFd>)> {
    let master = match (&spawned.error, console) {
        (None, ConsoleChannel::Private { ours, .. }) => receive_fd(ours.as_raw_fd()).map(Some),
        _ => Ok(None),
    };
    match (spawned.error, master) {
        (None, Ok(master)) => Ok((spawned.child, master)),
        (Some(e), _) | (None, Err(e)) => {
            spawned.child.kill();
            Err(e)
        }
    }
}

/// runc's rules: a stopped container takes no exec, a paused one only with --ignore-paused
/// (the process then starts frozen).
fn check_status(container: &Container, ignore_paused: bool) -> Result<Status> {
    match container.status()? {
        Status::Stopped => Err(Error::State("cannot exec in a stopped container".into())),
        Status::Paused if !ignore_paused => Err(Error::State(
            "cannot exec in a paused container (use --ignore-paused to override)".into(),
        )),
        status => Ok(status),
    }
}

/// Passes the pidfd on and writes the pid file, once the process has exec'd (the pid
/// file last, so a failed hand-over leaves no pid file of a killed process behind).
fn hand_over(opts: &ExecOptions, child: &Child, pidfd_socket: Option<&PidfdSocket>) -> Result<()> {
    if let Some(sock) = pidfd_socket {
        sock.send(&child.pidfd)?;
    }
    if let Some(path) = &opts.pid_file {
        write_pid_file(path, child.pid)?;
    }
    Ok(())
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

// ---------------------------------------------------------------------------------------
// The process: --process FILE, or the container's process with the flags applied
// ---------------------------------------------------------------------------------------

/// The process to start, validated with the container's config around it.
fn exec_process(config: &Spec, opts: &ExecOptions) -> Result<Process> {
    let container_process = config
        .process()
        .as_ref()
        .ok_or_else(|| Error::State("the container's config has no process".into()))?;
    let process = match &opts.process {
        Some(path) => {
            if !opts.args.is_empty() {
                return Err(Error::Usage(
                    "give either --process or a command, not both".into(),
                ));
            }
            inherit_defaults(load_process(path)?, container_process)
        }
        None => process_from_flags(container_process, opts)?,
    };
    let mut whole = config.clone();
    whole.set_process(Some(process.clone()));
    spec::validate(&whole)?;
    Ok(process)
}

fn load_process(path: &Path) -> Result<Process> {
    let bytes = std::fs::read(path).ctx(|| format!("reading process file {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| e.to_string())
        .and_then(spec_de::process_from_value)
        .map_err(|e| Error::Config(format!("process file {}: {e}", path.display())))
}

/// What a process JSON leaves out comes from the container, as in runc: capabilities,
/// rlimits, AppArmor profile, SELinux label, and (berth: only when the field is absent,
/// not when it is false) no_new_privs and execCPUAffinity.
fn inherit_defaults(mut p: Process, container: &Process) -> Process {
    if p.capabilities().is_none() {
        p.set_capabilities(container.capabilities().clone());
    }
    if p.rlimits().as_ref().is_none_or(|r| r.is_empty()) {
        p.set_rlimits(container.rlimits().clone());
    }
    if p.apparmor_profile().as_ref().is_none_or(|a| a.is_empty()) {
        p.set_apparmor_profile(container.apparmor_profile().clone());
    }
    if p.selinux_label().as_ref().is_none_or(|l| l.is_empty()) {
        p.set_selinux_label(container.selinux_label().clone());
    }
    if p.no_new_privileges().is_none() {
        p.set_no_new_privileges(container.no_new_privileges());
    }
    if p.exec_cpu_affinity().is_none() {
        p.set_exec_cpu_affinity(container.exec_cpu_affinity().clone());
    }
    p
}

/// The container's process with the command and runc's exec flags applied.
fn process_from_flags(container: &Process, opts: &ExecOptions) -> Result<Process> {
    if opts.args.is_empty() {
        return Err(Error::Usage("process args cannot be empty".into()));
    }
    let mut p = container.clone();
    p.set_args(Some(opts.args.clone()));
    if let Some(cwd) = &opts.cwd {
        p.set_cwd(PathBuf::from(cwd));
    }
    if let Some(profile) = &opts.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &opts.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    if !opts.caps.is_empty() {
        p.set_capabilities(Some(add_caps(p.capabilities().clone(), &opts.caps)?));
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(opts.env.iter().cloned());
    p.set_env(Some(env));
    p.set_terminal(Some(opts.tty));
    // The container's size does not fit another terminal.
    p.set_console_size(None);
    if opts.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(user) = &opts.user {
        let (uid, gid) = parse_user(user)?;
        p.user_mut().set_uid(uid);
        if let Some(gid) = gid {
            p.user_mut().set_gid(gid);
        }
    }
    if !opts.additional_gids.is_empty() {
        let mut gids = p.user().additional_gids().clone().unwrap_or_default();
        gids.extend(&opts.additional_gids);
        p.user_mut().set_additional_gids(Some(gids));
    }
    Ok(p)
}

/// `--user uid[:gid]`, numbers only (as runc).
fn parse_user(text: &str) -> Result<(u32, Option<u32>)> {
    let number = |s: &str, what: &str| {
        s.parse::<u32>()
            .map_err(|_| Error::Usage(format!("--user {text:?}: {what} {s:?} is not a number")))
    };
    match text.split_once(':') {
        Some((uid, gid)) => Ok((number(uid, "uid")?, Some(number(gid, "gid")?))),
        None => Ok((number(text, "uid")?, None)),
    }
}

/// `--cap NAME`: added to the bounding, effective, permitted and ambient sets (as runc;
/// an ambient cap outside the inheritable set is then skipped by the kernel rules).
fn add_caps(caps: Option<LinuxCapabilities>, names: &[String]) -> Result<LinuxCapabilities> {
    let empty = || Some(Default::default());
    let mut caps = caps.unwrap_or_else(|| {
        let mut none = LinuxCapabilities::default();
        none.set_bounding(empty());
        none.set_effective(empty());
        none.set_inheritable(empty());
        none.set_permitted(empty());
        none.set_ambient(empty());
        none
    });
    for name in names {
        let cap = parse_cap(name)?;
        let add = |set: &Option<oci_spec::runtime::Capabilities>| {
            let mut set = set.clone().unwrap_or_default();
            set.insert(cap);
            Some(set)
        };
        caps.set_bounding(add(caps.bounding()));
        caps.set_effective(add(caps.effective()));
        caps.set_permitted(add(caps.permitted()));
        caps.set_ambient(add(caps.ambient()));
    }
    Ok(caps)
}

fn parse_cap(name: &str) -> Result<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    serde_json::from_value(serde_json::Value::String(full.clone()))
        .map_err(|_| Error::Usage(format!("--cap: unknown capability {full}")))
}

// ---------------------------------------------------------------------------------------
// Terminal
// ---------------------------------------------------------------------------------------

/// Where the child sends the pty master: the caller's console socket, or (foreground
/// without one) a private socketpair so berth proxies the terminal itself.
enum ConsoleChannel {
    None,
    Socket(UnixStream),
    Private {
        ours: UnixStream,
        theirs: UnixStream,
    },
}

impl ConsoleChannel {
    fn open(opts: &ExecOptions, terminal: bool) -> Result<ConsoleChannel> {
        match (&opts.console_socket, terminal) {
            (Some(path), true) => UnixStream::connect(path)
                .map(ConsoleChannel::Socket)
                .ctx(|| format!("connecting to console socket {}", path.display())),
            (Some(_), false) => Err(Error::Usage(
                "--console-socket was given but the process has no terminal (--tty)".into(),
            )),
            (None, true) if opts.detach => Err(Error::Usage(
                "a detached exec with a terminal needs a console socket (--console-socket)".into(),
            )),
            (None, true) => {
                let (ours, theirs) = UnixStream::pair().ctx(|| "creating console socketpair")?;
                Ok(ConsoleChannel::Private { ours, theirs })
            }
            (None, false) => Ok(ConsoleChannel::None),
        }
    }

    /// The end the child sends on.
    fn child_end(&self) -> Option<RawFd> {
        match self {
            ConsoleChannel::None => None,
            ConsoleChannel::Socket(s) => Some(s.as_raw_fd()),
            ConsoleChannel::Private { theirs, .. } => Some(theirs.as_raw_fd()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Namespaces and cgroups
// ---------------------------------------------------------------------------------------

/// The namespace types, as named in /proc/PID/ns, user first (joined first when joining
/// one by one).
const NAMESPACES: [(&str, libc::c_int); 8] = [
    ("user", libc::CLONE_NEWUSER),
    ("mnt", libc::CLONE_NEWNS),
    ("pid", libc::CLONE_NEWPID),
    ("net", libc::CLONE_NEWNET),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("time", libc::CLONE_NEWTIME),
];

/// The init's namespaces that differ from berth's, opened (for kernels without setns on
/// pidfds and for the parent's pid namespace join).
struct InitNamespaces {
    flags: libc::c_int,
    files: Vec<(libc::c_int, File)>,
}

fn ns_identity(path: &str) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn open_init_namespaces(pid: i32) -> Result<InitNamespaces> {
    let mut ns = InitNamespaces {
        flags: 0,
        files: Vec::new(),
    };
    for (name, flag) in NAMESPACES {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let Some(id) = ns_identity(&theirs) else {
            continue; // a namespace type this kernel lacks
        };
        if ns_identity(&format!("/proc/self/ns/{name}")) == Some(id) {
            continue;
        }
        let file = File::open(&theirs).ctx(|| format!("opening {theirs}"))?;
        ns.flags |= flag;
        ns.files.push((flag, file));
    }
    Ok(ns)
}

/// Joins the init's pid namespace for our children only (berth itself stays where it
/// is): the exec'd process is then born in it, as our direct child.
fn join_pid_namespace_for_children(pidfd: &OwnedFd, ns: &InitNamespaces) -> Result<()> {
    let Some((_, file)) = ns.files.iter().find(|(f, _)| *f == libc::CLONE_NEWPID) else {
        return Ok(());
    };
    // SAFETY: setns on our own pidfd / namespace fd.
    if unsafe { libc::setns(pidfd.as_raw_fd(), libc::CLONE_NEWPID) } == 0 {
        return Ok(());
    }
    // SAFETY: as above (kernels before 5.8 take only namespace fds).
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWPID) } == 0 {
        return Ok(());
    }
    Err(std::io::Error::last_os_error()).ctx(|| "joining the container's pid namespace")
}

/// Where the process goes: the container's cgroup, or `--cgroup` sub-cgroups of it.
enum CgroupTargets {
    /// No cgroup recorded for the container.
    None,
    /// The container's own cgroup (`Manager::add_process`).
    Container(Manager),
    /// Explicit directories (`--cgroup`), each must exist.
    Dirs {
        manager: Manager,
        dirs: Vec<PathBuf>,
    },
}

/// Resolves `--cgroup [ctrl[,ctrl]:]path` against the container's cgroups (runc's form:
/// without a controller prefix the path applies to every hierarchy).
fn cgroup_targets(cgroup: Option<&Manager>, args: &[String]) -> Result<CgroupTargets> {
    let Some(manager) = cgroup else {
        if !args.is_empty() {
            return Err(Error::State("--cgroup: the container has no cgroup".into()));
        }
        return Ok(CgroupTargets::None);
    };
    if args.is_empty() {
        return Ok(CgroupTargets::Container(manager.clone()));
    }
    let subs = parse_sub_cgroups(args)?;
    let mut used = Vec::new();
    let mut dirs = Vec::new();
    for v1 in manager.v1_dirs() {
        let pick = v1
            .controllers
            .iter()
            .find_map(|c| subs.get(c.as_str()).map(|s| (c.clone(), s)));
        let dir = match pick {
            Some((ctrl, sub)) => {
                used.push(ctrl);
                v1.dir.join(sub)
            }
            None => match subs.get("") {
                Some(sub) => v1.dir.join(sub),
                None => v1.dir.clone(),
            },
        };
        dirs.push(dir);
    }
    if let Some(unified) = manager.unified_dir() {
        let v2_sub = manager
            .v2_controllers()
            .iter()
            .find_map(|c| subs.get(c.as_str()).map(|s| (c.clone(), s)));
        let dir = match (v2_sub, subs.get("")) {
            (Some((ctrl, sub)), _) => {
                used.push(ctrl);
                unified.join(sub)
            }
            (None, Some(sub)) => unified.join(sub),
            (None, None) => unified.to_path_buf(),
        };
        dirs.push(dir);
    }
    if let Some(unknown) = subs
        .keys()
        .find(|c| !c.is_empty() && !used.iter().any(|u| u == *c))
    {
        return Err(Error::Usage(format!(
            "--cgroup: the container has no {unknown:?} controller"
        )));
    }
    for dir in &dirs {
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "--cgroup: sub-cgroup {} does not exist",
                dir.display()
            )));
        }
    }
    Ok(CgroupTargets::Dirs {
        manager: manager.clone(),
        dirs,
    })
}

/// `[ctrl[,ctrl]:]path` arguments into controller -> relative path ("" = every hierarchy).
fn parse_sub_cgroups(args: &[String]) -> Result<HashMap<String, PathBuf>> {
    let mut subs = HashMap::new();
    for arg in args {
        let (ctrls, path) = match arg.split_once(':') {
            Some((c, p)) => (c, p),
            None if args.len() == 1 => ("", arg.as_str()),
            None => {
                return Err(Error::Usage(format!(
                    "--cgroup {arg:?}: with several --cgroup, each needs a controller: prefix"
                )))
            }
        };
        let rel = Path::new(path.trim_start_matches('/'));
        let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
        if path.contains(':') || rel.as_os_str().is_empty() || !plain {
            return Err(Error::Usage(format!(
                "--cgroup {arg:?}: the path must name a sub-cgroup, without \"..\""
            )));
        }
        for ctrl in ctrls.split(',') {
            subs.insert(ctrl.to_string(), rel.to_path_buf());
        }
    }
    Ok(subs)
}

impl CgroupTargets {
    /// A v2 directory to be born in (CLONE_INTO_CGROUP), on a pure cgroup2 host.
    fn clone_into(&self) -> Option<OwnedFd> {
        match self {
            CgroupTargets::Container(m) if m.layout() == Layout::Unified => m.v2_dir_fd(),
            CgroupTargets::Dirs { manager, dirs } if manager.layout() == Layout::Unified => dirs
                .last()
                .and_then(|d| File::open(d).ok())
                .map(OwnedFd::from),
            _ => None,
        }
    }

    /// Moves `pid` into the target cgroups (before it runs any code of its own).
    fn add(&self, pid: i32) -> Result<()> {
        match self {
            CgroupTargets::None => Ok(()),
            CgroupTargets::Container(m) => Ok(m.add_process(pid)?),
            CgroupTargets::Dirs { dirs, .. } => {
                for dir in dirs {
                    let procs = dir.join("cgroup.procs");
                    std::fs::write(&procs, pid.to_string())
                        .ctx(|| format!("writing {}", procs.display()))?;
                }
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Spawning
// ---------------------------------------------------------------------------------------

/// The exec'd process, our direct child.
struct Child {
    pid: i32,
    pidfd: OwnedFd,
}

impl Child {
    /// Kills and reaps the child after a failed exec.
    fn kill(&self) {
        let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
    }
}

/// A child that was cloned; `error` is set when it failed before exec.
struct Spawned {
    child: Child,
    error: Option<Error>,
}

/// Clones the child and drives it to its execve. The container stays locked until the
/// child is in the cgroup and released, no longer: a frozen child (--ignore-paused) must
/// not keep `resume` waiting for the lock.
fn spawn(
    container: Container,
    saved: &Saved,
    mut plan: ExecPlan,
    targets: &CgroupTargets,
    console: &ConsoleChannel,
    paused: bool,
) -> Result<Spawned> {
    let init_pidfd = open_init_pidfd(saved)?;
    let namespaces = open_init_namespaces(saved.pid)?;
    let root =
        File::open(format!("/proc/{}/root", saved.pid)).ctx(|| "opening the container's root")?;
    // The namespaces and root we opened are the init's only if it is still alive now.
    if !container::process_alive(saved.pid, saved.pid_start_time) {
        return Err(Error::State("cannot exec in a stopped container".into()));
    }
    plan.join_flags = namespaces.flags & !libc::CLONE_NEWPID;
    join_pid_namespace_for_children(&init_pidfd, &namespaces)?;
    let (parent_sock, child_sock) = create::sync_pair()?;
    let fds = ExecFds {
        sync: child_sock.as_raw_fd(),
        lock: container.lock_fd(),
        init_pidfd: init_pidfd.as_raw_fd(),
        ns: namespaces
            .files
            .iter()
            .filter(|(flag, _)| *flag != libc::CLONE_NEWPID)
            .map(|(flag, file)| (*flag, file.as_raw_fd()))
            .collect(),
        root: root.as_raw_fd(),
        console_socket: console.child_end(),
    };
    // Born in a frozen cgroup, the child could not close its copy of the container lock.
    let mut into = if paused { None } else { targets.clone_into() };
    if let Some(cpus) = &plan.initial_cpus {
        sys::sched_setaffinity(cpus).ctx(|| "setting execCPUAffinity.initial")?;
    }
    // The child is born in the container's pid namespace: born not dumpable, its
    // /proc/PID/exe (berth) and /proc/PID/fd are never reachable from the container.
    let was_dumpable = exe_guard::dumpable();
    exe_guard::set_dumpable(false);
    let forked = match sys::clone3_fork(0, into.as_ref().map(|f| f.as_raw_fd())) {
        // A v2 leaf with controllers in its subtree refuses processes: add_process knows
        // the way around that.
        Err(e) if into.is_some() && e.raw_os_error() == Some(libc::EBUSY) => {
            // Not placed by the clone: `targets.add` below puts it in the sub-cgroup.
            into = None;
            sys::clone3_fork(0, None)
        }
        other => other,
    };
    if !matches!(forked, Ok(sys::Forked::Child)) {
        exe_guard::set_dumpable(was_dumpable);
    }
    let (pid, pidfd) = match forked.ctx(|| "clone3 of the exec'd process")? {
        sys::Forked::Child => init::run_exec(&plan, &fds),
        sys::Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_sock);
    drop(fds);
    let child = Child { pid, pidfd };
    let placed = wait_ready(&parent_sock)
        .and_then(|()| write_oom_score_adj(pid, &saved.config))
        .and_then(|()| match into {
            Some(_) => Ok(()),
            None => targets.add(pid),
        });
    let released = placed.and_then(|()| send_go(&parent_sock));
    drop(container);
    let error = released
        .and_then(|()| wait_exec(&parent_sock, &plan, saved, pid))
        .err();
    Ok(Spawned { child, error })
}

/// A pidfd of the init, checked to still be the container's process.
fn open_init_pidfd(saved: &Saved) -> Result<OwnedFd> {
    let pidfd = sys::pidfd_open(saved.pid)
        .map_err(|_| Error::State("cannot exec in a stopped container".into()))?;
    if !container::process_alive(saved.pid, saved.pid_start_time) {
        return Err(Error::State("cannot exec in a stopped container".into()));
    }
    Ok(pidfd)
}

/// The container's process.oomScoreAdj applies to exec'd processes too (as runc; the
/// process file's own value is ignored, as there).
fn write_oom_score_adj(pid: i32, config: &Spec) -> Result<()> {
    use std::io::Write;
    let Some(value) = config.process().as_ref().and_then(|p| p.oom_score_adj()) else {
        return Ok(());
    };
    let path = format!("/proc/{pid}/oom_score_adj");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .ctx(|| format!("opening {path}"))?;
    rootfs::check_procfs(file.as_raw_fd()).ctx(|| format!("checking {path}"))?;
    file.write_all(value.to_string().as_bytes())
        .ctx(|| format!("writing {path}"))
}

/// Waits until the child has closed its copy of the container lock (EXEC_READY).
fn wait_ready(sock: &OwnedFd) -> Result<()> {
    let mut b = [0u8; 16];
    let (n, _) =
        create::recv_msg(sock.as_raw_fd(), &mut b).ctx(|| "waiting for the exec'd process")?;
    if n != 16 || msg::decode(&b).0 != msg::EXEC_READY {
        return Err(Error::State("the exec'd process died before exec".into()));
    }
    Ok(())
}

fn send_go(sock: &OwnedFd) -> Result<()> {
    let b = msg::encode(msg::GO, 0, 0, 0);
    // SAFETY: b is a valid 16-byte buffer.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            b.as_ptr().cast(),
            b.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        return Err(Error::State(format!(
            "the exec'd process went away: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Waits until the child execs (EOF: its end of the socket was close-on-exec) or reports
/// where it failed. A seccomp notify fd it sends on the way goes to the agent at
/// linux.seccomp.listenerPath.
fn wait_exec(sock: &OwnedFd, plan: &ExecPlan, saved: &Saved, pid: i32) -> Result<()> {
    loop {
        let mut b = [0u8; 16];
        let (n, fd) =
            create::recv_msg(sock.as_raw_fd(), &mut b).ctx(|| "waiting for the exec'd process")?;
        if n == 0 {
            return Ok(());
        }
        if n != 16 {
            return Err(Error::State("the exec'd process died before exec".into()));
        }
        let (kind, step, index, errno) = msg::decode(&b);
        match (kind, fd) {
            (msg::SECCOMP_FD, Some(fd)) => {
                create::send_notify_fd(saved, pid, &fd, Status::Running)?
            }
            (msg::ERROR, _) => {
                let fail = Fail {
                    step: Step::from_u32(step).unwrap_or(Step::Sync),
                    index,
                    errno,
                };
                return Err(Error::State(describe(plan, fail)));
            }
            (kind, _) => {
                return Err(Error::State(format!(
                    "unexpected message {kind} from the exec'd process"
                )))
            }
        }
    }
}

/// The child's (step, index, errno) as a sentence.
fn describe(plan: &ExecPlan, fail: Fail) -> String {
    let err = std::io::Error::from_raw_os_error(fail.errno);
    let i = fail.index as usize;
    match fail.step {
        Step::SetNs if i == init::EXEC_SETNS_PIDFD => {
            format!("joining the container's namespaces: {err}")
        }
        Step::SetNs => {
            let name = NAMESPACES
                .iter()
                .filter(|(_, f)| plan.join_flags & f != 0)
                .nth(i - 1)
                .map(|(n, _)| *n)
                .unwrap_or("?");
            format!("joining the container's {name} namespace: {err}")
        }
        Step::Pivot if i == init::EXEC_ROOT_FCHDIR || i == init::EXEC_ROOT_CHROOT => {
            format!("entering the container's root: {err}")
        }
        Step::Console => format!("allocating a pty in the container (step {i}): {err}"),
        Step::ConsoleSend => format!("sending the pty master to the console socket: {err}"),
        step => init::describe_process_step(&plan.process, step, i, err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_flag_is_numeric_uid_and_gid() {
        assert_eq!(parse_user("1000").ok(), Some((1000, None)));
        assert_eq!(parse_user("1000:10").ok(), Some((1000, Some(10))));
        assert!(parse_user("root").is_err());
        assert!(parse_user("1:x").is_err());
    }

    #[test]
    fn caps_are_added_to_four_sets() {
        let caps = add_caps(None, &["net_admin".into(), "CAP_SYS_TIME".into()]).expect("caps");
        for set in [
            caps.bounding(),
            caps.effective(),
            caps.permitted(),
            caps.ambient(),
        ] {
            let set = set.as_ref().expect("set");
            assert!(set.contains(&Capability::NetAdmin));
            assert!(set.contains(&Capability::SysTime));
        }
        assert!(caps.inheritable().as_ref().is_some_and(|s| s.is_empty()));
        assert!(add_caps(None, &["CAP_NOPE".into()]).is_err());
    }

    #[test]
    fn sub_cgroups_parse_like_runc() {
        let one = parse_sub_cgroups(&["sub".into()]).expect("one");
        assert_eq!(one.get(""), Some(&PathBuf::from("sub")));
        let many = parse_sub_cgroups(&["memory,pids:a/b".into(), "cpu:c".into()]).expect("many");
        assert_eq!(many.get("pids"), Some(&PathBuf::from("a/b")));
        assert_eq!(many.get("cpu"), Some(&PathBuf::from("c")));
        assert!(parse_sub_cgroups(&["a".into(), "b".into()]).is_err());
        assert!(parse_sub_cgroups(&["../x".into()]).is_err());
        assert!(parse_sub_cgroups(&["memory:".into()]).is_err());
    }

    #[test]
    fn process_json_inherits_what_it_leaves_out() {
        let container: Process = serde_json::from_value(serde_json::json!({
            "user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["sh"],
            "noNewPrivileges": true,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 100, "soft": 100}],
            "capabilities": {"bounding": ["CAP_KILL"]}
        }))
        .expect("container process");
        let bare: Process = serde_json::from_value(serde_json::json!({
            "user": {"uid": 1, "gid": 1}, "cwd": "/tmp", "args": ["id"]
        }))
        .expect("bare");
        let p = inherit_defaults(bare, &container);
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(p.rlimits().as_ref().map(Vec::len), Some(1));
        assert!(p.capabilities().is_some());
        let explicit: Process = serde_json::from_value(serde_json::json!({
            "user": {"uid": 0, "gid": 0}, "cwd": "/", "args": ["id"], "noNewPrivileges": false
        }))
        .expect("explicit");
        assert_eq!(
            inherit_defaults(explicit, &container).no_new_privileges(),
            Some(false)
        );
    }

    #[test]
    fn flags_shape_the_container_process() {
        let container: Process = serde_json::from_value(serde_json::json!({
            "user": {"uid": 0, "gid": 0, "additionalGids": [5]}, "cwd": "/", "args": ["sh"],
            "env": ["PATH=/bin"], "terminal": true
        }))
        .expect("container process");
        let opts = ExecOptions {
            args: vec!["id".into()],
            cwd: Some("/tmp".into()),
            env: vec!["A=b".into()],
            user: Some("7:8".into()),
            additional_gids: vec![9],
            ..Default::default()
        };
        let p = process_from_flags(&container, &opts).expect("process");
        assert_eq!(p.args().as_deref(), Some(&["id".to_string()][..]));
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!(
            p.env().as_deref(),
            Some(&["PATH=/bin".to_string(), "A=b".to_string()][..])
        );
        assert_eq!((p.user().uid(), p.user().gid()), (7, 8));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[5, 9][..]));
        assert_eq!(p.terminal(), Some(false), "terminal only with --tty");
        let none = ExecOptions::default();
        assert!(process_from_flags(&container, &none).is_err());
    }
}
