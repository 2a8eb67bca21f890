//! Turns a validated spec into an `InitPlan`: every string, path and number the
//! container's init needs, prepared before the clone so the init itself only makes
//! syscalls (no allocation, no parsing, no locks between clone and exec).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use berth_cgroups::HierarchyView;
use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, Mount, PosixRlimitType, Spec};

use super::error::{Error, Result};
use super::sys::{self, MountAttr};

/// A path inside the rootfs, as the list of its components, ready for an fd walk.
#[derive(Debug, Clone)]
pub struct RootPath {
    /// The whole relative path (`dev/pts`), for `openat2(RESOLVE_IN_ROOT)`.
    pub rel: CString,
    /// Each prefix (`dev`, `dev/pts`), to create missing directories one level at a time.
    pub prefixes: Vec<CString>,
    /// The last component of each prefix (`dev`, `pts`), for `mkdirat` in its parent.
    pub names: Vec<CString>,
    /// The path as written in the config, for error messages.
    pub display: String,
}

impl RootPath {
    pub fn new(path: &Path) -> Result<RootPath> {
        let mut names = Vec::new();
        for comp in path.components() {
            match comp {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(n) => names.push(n.to_owned()),
                // `..` is resolved by the kernel inside the root; keep it as a component.
                Component::ParentDir => names.push("..".into()),
                Component::Prefix(_) => {}
            }
        }
        let mut prefixes = Vec::with_capacity(names.len());
        let mut acc = std::path::PathBuf::new();
        for n in &names {
            acc.push(n);
            prefixes.push(cstring(acc.as_os_str().as_bytes())?);
        }
        let rel = if acc.as_os_str().is_empty() {
            cstring(b".")?
        } else {
            cstring(acc.as_os_str().as_bytes())?
        };
        Ok(RootPath {
            rel,
            prefixes,
            names: names
                .iter()
                .map(|n| cstring(n.as_bytes()))
                .collect::<Result<_>>()?,
            display: path.display().to_string(),
        })
    }
}

pub fn cstring(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes).map_err(|_| {
        Error::Config(format!(
            "{:?} contains a NUL byte",
            String::from_utf8_lossy(bytes)
        ))
    })
}

fn cstr_of(s: &str) -> Result<CString> {
    cstring(s.as_bytes())
}

/// How a mount's filesystem is made.
#[derive(Debug)]
pub enum MountSource {
    /// `open_tree(source, OPEN_TREE_CLONE [| AT_RECURSIVE])`, idmapped when the mount has
    /// uid/gid mappings (create prepares those: see [`MountSource::Prepared`]).
    Bind {
        source: CString,
        recursive: bool,
        idmap: Option<IdMap>,
    },
    /// A detached mount berth made before the clone, attributes set, for the init to
    /// attach: idmapped binds (MOUNT_ATTR_IDMAP needs privileges over the filesystem that
    /// an init inside a user namespace does not have).
    Prepared(std::os::fd::OwnedFd),
    /// `fsopen(fstype)` + `fsconfig` options + `fsmount`.
    New {
        fstype: CString,
        source: CString,
        options: Vec<(CString, Option<CString>)>,
    },
    /// No new mount: change the attributes of what is mounted at the destination.
    Reattr,
}

/// An idmapped bind mount's mappings (`mounts[].uidMappings`/`gidMappings`), in
/// /proc/PID/uid_map's format, and whether `ridmap` maps every mount of an rbind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap {
    pub uid_map: String,
    pub gid_map: String,
    pub recursive: bool,
}

#[derive(Debug)]
pub struct MountStep {
    pub dest: RootPath,
    pub source: MountSource,
    /// Mount attributes (ro, nosuid, ...) set when the mount is made.
    pub attr: MountAttr,
    /// Attributes applied to every mount of a recursive bind (`rro`, `rnosuid`, ...).
    pub recursive_attr: MountAttr,
    /// Propagation flag (MS_PRIVATE, MS_SHARED, ...) and whether it is recursive.
    pub propagation: u64,
    pub propagation_recursive: bool,
    /// The destination is a file (bind of a non-directory).
    pub dest_is_file: bool,
    /// Copy what the destination held before into the new tmpfs (podman's `tmpcopyup`).
    pub tmpcopyup: bool,
    /// An SELinux context for the new mount's root, set after mounting: linux.mountLabel on
    /// mqueue, which takes no `context=` (its superblock exists before the mount).
    pub root_label: Option<CString>,
    /// For error messages: `type source on destination`.
    pub what: String,
}

impl MountStep {
    /// A mount of `source` on `dest` with `attr`, nothing recursive, no propagation change.
    fn new(dest: RootPath, source: MountSource, attr: MountAttr, what: String) -> MountStep {
        MountStep {
            dest,
            source,
            attr,
            recursive_attr: MountAttr::default(),
            propagation: 0,
            propagation_recursive: false,
            dest_is_file: false,
            tmpcopyup: false,
            root_label: None,
            what,
        }
    }
}

#[derive(Debug)]
pub struct DeviceStep {
    pub path: RootPath,
    pub file_type: libc::mode_t,
    pub rdev: libc::dev_t,
    pub mode: libc::mode_t,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    /// Inside a user namespace mknod is refused: bind the host's node instead.
    pub host_path: CString,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CapMasks {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// A NULL-terminated `char *[]` kept together with the strings it points into.
#[derive(Debug)]
pub struct CArray {
    _strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl CArray {
    pub fn new(strings: Vec<CString>) -> CArray {
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CArray {
            _strings: strings,
            ptrs,
        }
    }

    pub fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }
}

/// A hook the init runs itself (createContainer, startContainer).
#[derive(Debug)]
pub struct HookExec {
    pub path: CString,
    pub argv: CArray,
    pub envp: CArray,
    /// Milliseconds, or -1 for none.
    pub timeout_ms: i32,
}

#[derive(Debug)]
pub struct ProcessPlan {
    pub argv: CArray,
    pub envp: CArray,
    /// Where to look for `args[0]`: itself if it holds a `/`, else each `$PATH` entry.
    pub exec_candidates: Vec<CString>,
    pub arg0: String,
    pub cwd: RootPath,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
    pub umask: Option<libc::mode_t>,
    pub rlimits: Vec<(libc::c_int, libc::rlimit, String)>,
    pub no_new_privs: bool,
    pub caps: Option<CapMasks>,
    pub terminal: bool,
    pub console_size: Option<libc::winsize>,
    /// Descriptors 3..3+N are passed to the process (`--preserve-fds`, LISTEN_FDS).
    pub preserve_fds: u32,
    pub personality: Option<libc::c_ulong>,
    /// `ioprio_set` value (class << 13 | data).
    pub io_priority: Option<libc::c_int>,
    /// process.scheduler, for sched_setattr.
    pub scheduler: Option<sys::SchedAttr>,
    /// linux.memoryPolicy, for set_mempolicy (the init's and every exec's).
    pub mem_policy: Option<super::sched::MemPolicy>,
    /// execCPUAffinity.final, the exec'd process's CPUs once in the container's cgroup
    /// (never the init's: the spec leaves it out).
    pub final_cpus: Option<Vec<u8>>,
    /// The compiled linux.seccomp filter, loaded as late as the process allows.
    pub seccomp: Option<berth_seccomp::Filter>,
    /// AppArmor profile / SELinux label taken at execve (only those the host applies).
    pub exec_labels: Vec<super::lsm::ExecLabel>,
    /// The SELinux label of the session keyring (`attr/keycreate`), set before joining it.
    pub key_label: Option<super::lsm::ExecLabel>,
}

/// A namespace joined by path: the fd is opened by the parent before the clone.
#[derive(Debug)]
pub struct JoinNs {
    pub typ: LinuxNamespaceType,
    pub flag: libc::c_int,
    pub path: std::path::PathBuf,
}

#[derive(Debug)]
pub struct InitPlan {
    /// CLONE_NEW* flags of the namespaces created new (time excluded, see `new_time`).
    pub new_ns_flags: libc::c_int,
    pub new_user: bool,
    pub new_time: bool,
    pub new_mount: bool,
    pub join: Vec<JoinNs>,
    pub uid_map: String,
    pub gid_map: String,
    pub time_offsets: CString,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    pub rootfs: CString,
    pub root_propagation: u64,
    /// rootfsPropagation applied to `/` after pivot_root, when it asks for shared.
    pub post_pivot_propagation: Option<u64>,
    pub root_readonly: bool,
    pub no_pivot: bool,
    pub mounts: Vec<MountStep>,
    pub dev_bound_from_host: bool,
    pub devices: Vec<DeviceStep>,
    pub masked: Vec<RootPath>,
    pub readonly: Vec<RootPath>,
    pub sysctls: Vec<(RootPath, CString, String)>,
    pub process: ProcessPlan,
    pub create_container_hooks: Vec<HookExec>,
    pub start_container_hooks: Vec<HookExec>,
    pub oom_score_adj: Option<i32>,
    /// Name of the new session keyring (`_ses.ID`), unless `--no-new-keyring`.
    pub session_keyring: Option<CString>,
    /// linux.netDevices, moved in by the parent before any hook runs.
    pub net_devices: Vec<super::netdev::NetDevice>,
}

impl InitPlan {
    /// True when every namespace is new: one clone3 makes them all (the fast path).
    pub fn all_new(&self) -> bool {
        self.join.is_empty()
    }
}

/// What a process `berth exec` starts in a running container needs: prepared before the
/// clone like the `InitPlan`, so the child only makes syscalls.
#[derive(Debug)]
pub struct ExecPlan {
    pub process: ProcessPlan,
    /// CLONE_NEW* flags of the container's namespaces the child joins (all where the
    /// container differs from berth, except pid: the parent joins that one before the
    /// clone, since only children enter a pid namespace).
    pub join_flags: libc::c_int,
    /// The container's session keyring (`_ses.ID`), joined like runc does for exec.
    pub session_keyring: Option<CString>,
    /// execCPUAffinity.initial: where berth itself runs from before the clone until the
    /// child is in the container's cgroup (the child inherits it).
    pub initial_cpus: Option<Vec<u8>>,
}

/// Options of `create` that shape the plan.
pub struct PlanOptions<'a> {
    pub id: &'a str,
    pub no_new_keyring: bool,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    /// The host's cgroup hierarchies with the container's directory in each (what a
    /// `cgroup` mount binds without a cgroup namespace).
    pub cgroups: &'a [HierarchyView<'a>],
    /// Relative bind sources are relative to the bundle (config.md).
    pub bundle: &'a Path,
    /// Each mount's uid/gid mappings (idmapped mounts), by mount index.
    pub mount_mappings: &'a [super::spec_de::MountMappings],
}

pub fn build(spec: &Spec, rootfs: &Path, opts: &PlanOptions) -> Result<InitPlan> {
    let linux = spec.linux().clone().unwrap_or_default();
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    let mut new_ns_flags = 0;
    let mut join = Vec::new();
    let mut new_user = false;
    let mut new_time = false;
    let mut new_mount = false;
    for ns in &namespaces {
        let flag = ns_flag(ns.typ());
        match ns.path() {
            Some(path) => join.push(JoinNs {
                typ: ns.typ(),
                flag,
                path: path.clone(),
            }),
            None => match ns.typ() {
                LinuxNamespaceType::Time => new_time = true,
                typ => {
                    new_ns_flags |= flag;
                    new_user |= typ == LinuxNamespaceType::User;
                    new_mount |= typ == LinuxNamespaceType::Mount;
                }
            },
        }
    }
    // The user namespace is joined first so the others are entered with its rights.
    join.sort_by_key(|j| j.typ != LinuxNamespaceType::User);
    let has_ns = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.typ() == t);
    if !has_ns(LinuxNamespaceType::Mount) {
        return Err(Error::Unsupported {
            field: "linux.namespaces".into(),
            why: "a container without its own mount namespace is not supported".into(),
        });
    }

    let process_spec = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Config("process is missing".into()))?;
    let hostname = match spec.hostname().as_deref() {
        Some(h) if !h.is_empty() => {
            if !has_ns(LinuxNamespaceType::Uts) {
                return Err(Error::Config(
                    "hostname is set but there is no new uts namespace".into(),
                ));
            }
            Some(cstr_of(h)?)
        }
        _ => None,
    };
    let domainname = match spec.domainname().as_deref() {
        Some(d) if !d.is_empty() => Some(cstr_of(d)?),
        _ => None,
    };

    let mounts_spec = spec.mounts().clone().unwrap_or_default();
    let mut mounts = Vec::new();
    let no_mappings = super::spec_de::MountMappings::default();
    for (i, m) in mounts_spec.iter().enumerate() {
        let mappings = opts.mount_mappings.get(i).unwrap_or(&no_mappings);
        plan_mount(
            m,
            mappings,
            &namespaces,
            opts.cgroups,
            opts.bundle,
            &mut mounts,
        )?;
    }
    if let Some(label) = linux.mount_label().as_deref().filter(|l| !l.is_empty()) {
        if super::lsm::selinux_enabled() {
            apply_mount_label(&mut mounts, label)?;
        }
    }
    let dev_bound_from_host = mounts_spec
        .iter()
        .any(|m| m.destination() == Path::new("/dev") && is_bind(m));
    let devices = plan_devices(&linux, dev_bound_from_host)?;

    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Config("root is missing".into()))?;
    let (root_propagation, post_pivot_propagation) =
        root_propagation(linux.rootfs_propagation().as_deref())?;

    let sysctls = linux
        .sysctl()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| plan_sysctl(&k, &v, &namespaces))
        .collect::<Result<Vec<_>>>()?;

    Ok(InitPlan {
        new_ns_flags,
        new_user,
        new_time,
        new_mount,
        join,
        uid_map: id_map(linux.uid_mappings()),
        gid_map: id_map(linux.gid_mappings()),
        time_offsets: time_offsets(&linux)?,
        hostname,
        domainname,
        rootfs: cstring(rootfs.as_os_str().as_bytes())?,
        root_propagation,
        post_pivot_propagation,
        root_readonly: root.readonly().unwrap_or(false),
        no_pivot: opts.no_pivot,
        mounts,
        dev_bound_from_host,
        devices,
        masked: root_paths(linux.masked_paths())?,
        readonly: root_paths(linux.readonly_paths())?,
        sysctls,
        process: {
            let mut process = plan_process(spec, rootfs, opts.preserve_fds)?;
            process.seccomp = compile_seccomp(spec)?;
            process
        },
        create_container_hooks: plan_hooks(
            spec.hooks()
                .as_ref()
                .and_then(|h| h.create_container().clone()),
        )?,
        start_container_hooks: plan_hooks(
            spec.hooks()
                .as_ref()
                .and_then(|h| h.start_container().clone()),
        )?,
        oom_score_adj: process_spec.oom_score_adj(),
        session_keyring: if opts.no_new_keyring {
            None
        } else {
            Some(cstr_of(&format!("_ses.{}", opts.id))?)
        },
        net_devices: plan_net_devices(&linux)?,
    })
}

pub fn ns_flag(typ: LinuxNamespaceType) -> libc::c_int {
    match typ {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => libc::CLONE_NEWTIME,
    }
}

fn id_map(maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>) -> String {
    maps.as_deref()
        .unwrap_or_default()
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

fn time_offsets(linux: &oci_spec::runtime::Linux) -> Result<CString> {
    let mut text = String::new();
    for (clock, off) in linux.time_offsets().clone().unwrap_or_default() {
        let id = match clock.as_str() {
            "monotonic" => "monotonic",
            "boottime" => "boottime",
            other => {
                return Err(Error::Config(format!(
                    "linux.timeOffsets: unknown clock {other:?} (monotonic or boottime)"
                )))
            }
        };
        text.push_str(&format!(
            "{id} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    cstr_of(&text)
}

fn root_paths(paths: &Option<Vec<String>>) -> Result<Vec<RootPath>> {
    paths
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            if !p.starts_with('/') {
                return Err(Error::Config(format!("path {p:?} must be absolute")));
            }
            RootPath::new(Path::new(p))
        })
        .collect()
}

fn root_propagation(value: Option<&str>) -> Result<(u64, Option<u64>)> {
    let rec = libc::MS_REC;
    let flags = match value.unwrap_or("") {
        "" | "rslave" | "slave" => (libc::MS_SLAVE | rec, None),
        "private" | "rprivate" => (libc::MS_PRIVATE | rec, None),
        // pivot_root refuses a shared parent: set up as slave, share after the pivot.
        "shared" | "rshared" => (libc::MS_SLAVE | rec, Some(libc::MS_SHARED | rec)),
        "unbindable" | "runbindable" => (libc::MS_SLAVE | rec, Some(libc::MS_UNBINDABLE | rec)),
        other => {
            return Err(Error::Config(format!(
                "linux.rootfsPropagation {other:?} is not a propagation mode"
            )))
        }
    };
    // MS_* are c_ulong, which is u64 on the 64-bit targets berth builds for.
    Ok(flags)
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

/// Mount option flags that become mount attributes, as (name, set, clear).
fn attr_option(opt: &str) -> Option<(u64, u64)> {
    use sys::*;
    Some(match opt {
        "ro" => (MOUNT_ATTR_RDONLY, 0),
        "rw" => (0, MOUNT_ATTR_RDONLY),
        "nosuid" => (MOUNT_ATTR_NOSUID, 0),
        "suid" => (0, MOUNT_ATTR_NOSUID),
        "nodev" => (MOUNT_ATTR_NODEV, 0),
        "dev" => (0, MOUNT_ATTR_NODEV),
        "noexec" => (MOUNT_ATTR_NOEXEC, 0),
        "exec" => (0, MOUNT_ATTR_NOEXEC),
        "noatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
        "strictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
        "relatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
        "nodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "diratime" => (0, MOUNT_ATTR_NODIRATIME),
        "nosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "symfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        "atime" | "norelatime" | "nostrictatime" => (0, 0),
        _ => return None,
    })
}

fn propagation_option(opt: &str) -> Option<(u64, bool)> {
    let (flag, rec) = match opt {
        "private" => (libc::MS_PRIVATE, false),
        "rprivate" => (libc::MS_PRIVATE, true),
        "shared" => (libc::MS_SHARED, false),
        "rshared" => (libc::MS_SHARED, true),
        "slave" => (libc::MS_SLAVE, false),
        "rslave" => (libc::MS_SLAVE, true),
        "unbindable" => (libc::MS_UNBINDABLE, false),
        "runbindable" => (libc::MS_UNBINDABLE, true),
        _ => return None,
    };
    Some((flag, rec))
}

/// Options that mean nothing to the kernel and are dropped (as runc and crun do), and
/// the superblock flags the new mount API has no way to set: `silent`/`loud` (MS_SILENT
/// only muted mount-time kernel messages) and `iversion`/`noiversion` (filesystems that
/// keep an i_version counter maintain it regardless; fsconfig would hand the word to the
/// filesystem, which refuses it).
fn ignored_option(opt: &str) -> bool {
    matches!(
        opt,
        "bind"
            | "rbind"
            | "defaults"
            | "auto"
            | "noauto"
            | "nouser"
            | "user"
            | "loud"
            | "silent"
            | "iversion"
            | "noiversion"
    ) || opt.starts_with("x-")
}

/// The mount's uidMappings/gidMappings (both or neither, runtime-spec config.md), with
/// `idmap` or `ridmap` (only those with the mappings); the maps in uid_map's format.
fn plan_idmap(
    m: &Mount,
    mappings: &super::spec_de::MountMappings,
    options: &[String],
) -> Result<Option<IdMap>> {
    let dest = m.destination().display();
    let recursive = options.iter().any(|o| o == "ridmap");
    let asked = recursive || options.iter().any(|o| o == "idmap");
    let maps = match (&mappings.uid, &mappings.gid) {
        (None, None) if asked => {
            return Err(Error::Config(format!(
                "mount {dest}: idmap/ridmap needs uidMappings and gidMappings"
            )))
        }
        (None, None) => return Ok(None),
        (Some(uids), Some(gids)) => (uids, gids),
        _ => {
            return Err(Error::Config(format!(
                "mount {dest}: uidMappings and gidMappings go together"
            )))
        }
    };
    let text = |what: &str, maps: &[oci_spec::runtime::LinuxIdMapping]| -> Result<String> {
        if maps.is_empty() || maps.iter().any(|m| m.size() == 0) {
            return Err(Error::Config(format!(
                "mount {dest}: {what} needs at least one mapping, none of size 0"
            )));
        }
        Ok(maps
            .iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect())
    };
    Ok(Some(IdMap {
        uid_map: text("uidMappings", maps.0)?,
        gid_map: text("gidMappings", maps.1)?,
        recursive,
    }))
}

fn plan_mount(
    m: &Mount,
    mappings: &super::spec_de::MountMappings,
    namespaces: &[oci_spec::runtime::LinuxNamespace],
    cgroups: &[HierarchyView<'_>],
    bundle: &Path,
    out: &mut Vec<MountStep>,
) -> Result<()> {
    let fstype = m.typ().clone().unwrap_or_default();
    let source = m
        .source()
        .as_ref()
        .map(|s| s.display().to_string())
        .unwrap_or_default();
    let options = m.options().clone().unwrap_or_default();
    let what = format!(
        "{} {} on {}",
        if fstype.is_empty() { "bind" } else { &fstype },
        source,
        m.destination().display()
    );
    let mut step = MountStep::new(
        RootPath::new(m.destination())?,
        MountSource::Reattr,
        MountAttr::default(),
        what,
    );
    let mut fs_options = Vec::new();
    for opt in &options {
        if let Some((set, clr)) = attr_option(opt) {
            step.attr.attr_set |= set;
            step.attr.attr_clr |= clr;
            step.attr.attr_set &= !(clr & !set);
        } else if let Some((set, clr)) = opt.strip_prefix('r').and_then(attr_option) {
            // rro, rnosuid, ...: recursive mount attributes (mount_setattr AT_RECURSIVE).
            step.recursive_attr.attr_set |= set;
            step.recursive_attr.attr_clr |= clr;
        } else if let Some((flag, rec)) = propagation_option(opt) {
            step.propagation = flag;
            step.propagation_recursive = rec;
        } else if opt == "tmpcopyup" {
            step.tmpcopyup = true;
        } else if opt == "idmap" || opt == "ridmap" {
            // Read below with the mappings.
        } else if ignored_option(opt) {
        } else {
            let (k, v) = match opt.split_once('=') {
                Some((k, v)) => (cstr_of(k)?, Some(cstr_of(v)?)),
                None => (cstr_of(opt)?, None),
            };
            fs_options.push((k, v));
        }
    }
    if is_bind(m) {
        if !fs_options.is_empty() {
            let names: Vec<_> = fs_options
                .iter()
                .map(|(k, _)| k.to_string_lossy().into_owned())
                .collect();
            return Err(Error::Config(format!(
                "mount {}: unknown bind mount options {}",
                m.destination().display(),
                names.join(",")
            )));
        }
        let source = if Path::new(&source).is_relative() {
            bundle.join(&source).display().to_string()
        } else {
            source
        };
        let src = Path::new(&source);
        let meta = std::fs::metadata(src).map_err(|e| {
            Error::Config(format!(
                "mount {}: bind source {source}: {e}",
                m.destination().display()
            ))
        })?;
        step.dest_is_file = !meta.is_dir();
        let recursive = options.iter().any(|o| o == "rbind");
        step.source = MountSource::Bind {
            source: cstr_of(&source)?,
            recursive,
            idmap: plan_idmap(m, mappings, &options)?,
        };
        out.push(step);
        return Ok(());
    }
    if plan_idmap(m, mappings, &options)?.is_some() {
        return Err(Error::Config(format!(
            "mount {}: uid/gid mappings are only supported on bind mounts",
            m.destination().display()
        )));
    }
    if fstype == "cgroup" || fstype == "cgroup2" {
        return plan_cgroup_mount(step, namespaces, cgroups, out);
    }
    if fstype.is_empty() {
        return Err(Error::Config(format!(
            "mount {}: no type and not a bind mount",
            m.destination().display()
        )));
    }
    if step.tmpcopyup && fstype != "tmpfs" {
        return Err(Error::Config(format!(
            "mount {}: tmpcopyup is only valid for tmpfs",
            m.destination().display()
        )));
    }
    step.source = MountSource::New {
        fstype: cstr_of(&fstype)?,
        source: cstr_of(if source.is_empty() { &fstype } else { &source })?,
        options: fs_options,
    };
    out.push(step);
    Ok(())
}

/// linux.mountLabel: the SELinux context of the filesystems berth makes that take one, as
/// runc labels them: tmpfs and devpts by `context=`, mqueue (whose superblock the ipc
/// namespace already made, so `context=` is EINVAL) on its root once mounted.
fn apply_mount_label(mounts: &mut [MountStep], label: &str) -> Result<()> {
    for step in mounts {
        if let MountSource::New {
            fstype, options, ..
        } = &mut step.source
        {
            match fstype.to_bytes() {
                b"tmpfs" | b"devpts" => {
                    options.push((cstr_of("context")?, Some(cstr_of(label)?)));
                }
                b"mqueue" => step.root_label = Some(cstr_of(label)?),
                _ => {}
            }
        }
    }
    Ok(())
}

/// A `cgroup` mount: on cgroup v2 one cgroup2 mount; on v1 and hybrid hosts a tmpfs
/// with one mount per hierarchy. With a cgroup namespace each is a fresh mount (the
/// namespace makes the container's cgroup its root); without, the container's own
/// cgroup directory is bound from the host.
fn plan_cgroup_mount(
    base: MountStep,
    namespaces: &[oci_spec::runtime::LinuxNamespace],
    cgroups: &[HierarchyView<'_>],
    out: &mut Vec<MountStep>,
) -> Result<()> {
    let cgroupns = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Cgroup);
    let attr = base.attr;
    let sub = |name: &str, source: MountSource, what: String, attr: MountAttr| {
        let mut dest = base.dest.display.trim_end_matches('/').to_string();
        if !name.is_empty() {
            dest.push('/');
            dest.push_str(name);
        }
        Ok::<_, Error>(MountStep::new(
            RootPath::new(Path::new(&dest))?,
            source,
            attr,
            what,
        ))
    };
    let source_of = |view: &HierarchyView<'_>| {
        if cgroupns {
            hierarchy_mount(view)
        } else {
            Ok(MountSource::Bind {
                source: cstr_of(&view.dir.display().to_string())?,
                recursive: false,
                idmap: None,
            })
        }
    };
    if let [view] = cgroups {
        if view.is_v2() && view.mount_point == Path::new("/sys/fs/cgroup") {
            out.push(sub("", source_of(view)?, base.what.clone(), attr)?);
            return Ok(());
        }
    }
    // v1 or hybrid: a tmpfs holding one directory per hierarchy; made read-only last.
    let mut writable = attr;
    writable.attr_set &= !sys::MOUNT_ATTR_RDONLY;
    out.push(sub(
        "",
        MountSource::New {
            fstype: cstr_of("tmpfs")?,
            source: cstr_of("cgroup")?,
            options: vec![(cstr_of("mode")?, Some(cstr_of("755")?))],
        },
        format!("tmpfs cgroup on {}", base.dest.display),
        writable,
    )?);
    for view in cgroups {
        let name = match view.mount_point.strip_prefix("/sys/fs/cgroup") {
            Ok(n) if n.components().count() == 1 => n.display().to_string(),
            _ => continue,
        };
        let fstype = if view.is_v2() { "cgroup2" } else { "cgroup" };
        out.push(sub(
            &name,
            source_of(view)?,
            format!("{fstype} on {}/{name}", base.dest.display),
            attr,
        )?);
    }
    if attr.attr_set & sys::MOUNT_ATTR_RDONLY != 0 {
        let ro = MountAttr {
            attr_set: sys::MOUNT_ATTR_RDONLY,
            ..Default::default()
        };
        out.push(sub(
            "",
            MountSource::Reattr,
            format!("read-only {}", base.dest.display),
            ro,
        )?);
    }
    Ok(())
}

/// A fresh mount of the hierarchy (inside the container's cgroup namespace, whose root
/// is the container's cgroup): cgroup2, or cgroup with the hierarchy's controllers and
/// `name=` label as options.
fn hierarchy_mount(view: &HierarchyView<'_>) -> Result<MountSource> {
    let options = view
        .controllers
        .iter()
        .map(|c| match c.split_once('=') {
            Some((k, v)) => Ok((cstr_of(k)?, Some(cstr_of(v)?))),
            None => Ok((cstr_of(c)?, None)),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(MountSource::New {
        fstype: cstr_of(if view.is_v2() { "cgroup2" } else { "cgroup" })?,
        source: cstr_of("cgroup")?,
        options,
    })
}

/// The devices every container gets (runc's list), as (path, major, minor).
const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

fn plan_devices(
    linux: &oci_spec::runtime::Linux,
    dev_bound_from_host: bool,
) -> Result<Vec<DeviceStep>> {
    let mut steps = Vec::new();
    let configured = linux.devices().clone().unwrap_or_default();
    for d in &configured {
        let file_type = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(Error::Config(format!(
                    "linux.devices {}: type must be c, b, u or p",
                    d.path().display()
                )))
            }
        };
        steps.push(DeviceStep {
            path: RootPath::new(d.path())?,
            file_type,
            rdev: libc::makedev(d.major() as u32, d.minor() as u32),
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
            host_path: cstring(d.path().as_os_str().as_bytes())?,
        });
    }
    if dev_bound_from_host {
        return Ok(steps);
    }
    for (path, major, minor) in DEFAULT_DEVICES {
        if configured.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        steps.push(DeviceStep {
            path: RootPath::new(Path::new(path))?,
            file_type: libc::S_IFCHR,
            rdev: libc::makedev(major, minor),
            mode: 0o666,
            uid: 0,
            gid: 0,
            host_path: cstr_of(path)?,
        });
    }
    Ok(steps)
}

fn plan_sysctl(
    key: &str,
    value: &str,
    namespaces: &[oci_spec::runtime::LinuxNamespace],
) -> Result<(RootPath, CString, String)> {
    let has = |t| namespaces.iter().any(|n| n.typ() == t);
    let namespaced = if key.starts_with("net.") {
        has(LinuxNamespaceType::Network)
    } else if key.starts_with("kernel.shm")
        || key.starts_with("kernel.msg")
        || key == "kernel.sem"
        || key.starts_with("fs.mqueue.")
    {
        has(LinuxNamespaceType::Ipc)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        has(LinuxNamespaceType::Uts)
    } else {
        false
    };
    if !namespaced {
        return Err(Error::Config(format!(
            "sysctl {key:?} is not namespaced by the container's namespaces and would change the host"
        )));
    }
    if key.contains("..") || key.contains('/') && key.split('/').any(|p| p == "..") {
        return Err(Error::Config(format!("sysctl {key:?} is not a valid name")));
    }
    let rel = format!("/proc/sys/{}", key.replace('.', "/"));
    Ok((
        RootPath::new(Path::new(&rel))?,
        cstr_of(value)?,
        key.to_string(),
    ))
}

fn rlimit_resource(t: PosixRlimitType) -> libc::c_int {
    (match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

/// The highest capability number this kernel knows.
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

fn cap_mask(set: &Option<oci_spec::runtime::Capabilities>, last: u32) -> Result<u64> {
    let mut mask = 0u64;
    for cap in set.iter().flatten() {
        let name = format!("CAP_{cap}");
        let parsed: caps::Capability = name
            .parse()
            .map_err(|_| Error::Config(format!("unknown capability {name}")))?;
        let index = parsed.index() as u32;
        // Capabilities newer than this kernel are skipped, as runc does.
        if index <= last {
            mask |= 1u64 << index;
        }
    }
    Ok(mask)
}

pub fn cap_masks(caps: &oci_spec::runtime::LinuxCapabilities) -> Result<CapMasks> {
    let last = last_cap();
    Ok(CapMasks {
        bounding: cap_mask(caps.bounding(), last)?,
        effective: cap_mask(caps.effective(), last)?,
        permitted: cap_mask(caps.permitted(), last)?,
        inheritable: cap_mask(caps.inheritable(), last)?,
        ambient: cap_mask(caps.ambient(), last)?,
    })
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where `arg0` may be found, in `$PATH` order (the lookup itself happens inside the
/// container, after pivot_root).
pub fn exec_candidates(arg0: &str, env: &[String]) -> Result<Vec<CString>> {
    if arg0.contains('/') {
        return Ok(vec![cstr_of(arg0)?]);
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| if dir.is_empty() { "." } else { dir })
        .map(|dir| cstr_of(&format!("{}/{arg0}", dir.trim_end_matches('/'))))
        .collect()
}

/// The home directory of `uid` in the container's /etc/passwd (read through
/// RESOLVE_IN_ROOT, so a symlinked passwd cannot point at the host's), or "/".
pub fn container_home(rootfs: &Path, uid: u32) -> String {
    let read = || -> Option<String> {
        let root = std::fs::File::open(rootfs).ok()?;
        use std::os::fd::AsRawFd;
        let fd = sys::open_in_root(root.as_raw_fd(), c"etc/passwd", libc::O_RDONLY).ok()?;
        let mut text = String::new();
        use std::io::Read;
        std::fs::File::from(fd)
            .take(1 << 20)
            .read_to_string(&mut text)
            .ok()?;
        text.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() >= 6 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[5].to_string())
        })
    };
    read()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string())
}

pub fn plan_process_spec(
    process: &oci_spec::runtime::Process,
    preserve_fds: u32,
    personality: Option<libc::c_ulong>,
    home: Option<String>,
) -> Result<ProcessPlan> {
    let args = process.args().clone().unwrap_or_default();
    let mut env = process.env().clone().unwrap_or_default();
    // Like runc: HOME from the user's passwd entry when the config does not set it.
    if let Some(home) = home {
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={home}"));
        }
    }
    let user = process.user();
    let rlimits = process
        .rlimits()
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                rlimit_resource(r.typ()),
                libc::rlimit {
                    rlim_cur: r.soft(),
                    rlim_max: r.hard(),
                },
                format!("{:?}", r.typ()),
            )
        })
        .collect();
    let caps = process.capabilities().as_ref().map(cap_masks).transpose()?;
    let console_size = process.console_size().as_ref().map(|b| libc::winsize {
        ws_row: b.height() as u16,
        ws_col: b.width() as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    let io_priority = process.io_priority().as_ref().map(|p| {
        use oci_spec::runtime::IOPriorityClass::*;
        let class = match p.class() {
            IoprioClassRt => 1,
            IoprioClassBe => 2,
            IoprioClassIdle => 3,
        };
        (class << 13) | (p.priority() as libc::c_int & 0x1fff)
    });
    let scheduler = process
        .scheduler()
        .as_ref()
        .map(super::sched::sched_attr)
        .transpose()?;
    let listen_fds = listen_fds();
    let mut env_strings = Vec::with_capacity(env.len() + 1);
    for e in &env {
        env_strings.push(cstr_of(e)?);
    }
    if listen_fds > 0 && !env.iter().any(|e| e.starts_with("LISTEN_FDS=")) {
        // Socket activation passes through, as with runc: the fds follow 0-2 and --preserve-fds.
        env_strings.push(cstr_of(&format!("LISTEN_FDS={listen_fds}"))?);
    }
    Ok(ProcessPlan {
        exec_candidates: exec_candidates(&args[0], &env)?,
        arg0: args[0].clone(),
        argv: CArray::new(args.iter().map(|a| cstr_of(a)).collect::<Result<_>>()?),
        envp: CArray::new(env_strings),
        cwd: RootPath::new(process.cwd())?,
        uid: user.uid(),
        gid: user.gid(),
        groups: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask().map(|u| u as libc::mode_t),
        rlimits,
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        caps,
        terminal: process.terminal().unwrap_or(false),
        console_size,
        preserve_fds: preserve_fds + listen_fds,
        personality,
        io_priority,
        scheduler,
        mem_policy: None,
        final_cpus: None,
        seccomp: None,
        exec_labels: super::lsm::exec_labels(process)?,
        key_label: super::lsm::key_label(process)?,
    })
}

/// How many socket-activation descriptors (from 3 up, after --preserve-fds) berth was
/// given: `LISTEN_FDS`, honoured only when `LISTEN_PID` names this process, as systemd's
/// protocol (and runc) require. A LISTEN_FDS merely inherited from some ancestor's
/// environment must not hand that ancestor's descriptors to a container.
pub fn listen_fds() -> u32 {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    if !for_us {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0)
}

/// Compiles linux.seccomp (before the clone: all allocation happens here). Names this
/// kernel does not know are skipped, as runc does, and logged at debug level.
pub fn compile_seccomp(spec: &Spec) -> Result<Option<berth_seccomp::Filter>> {
    let Some(cfg) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    let filter =
        berth_seccomp::compile(cfg).map_err(|e| Error::Config(format!("linux.seccomp: {e}")))?;
    // The init makes these calls after loading a NOTIFY filter and before the agent has
    // its fd: a notified one would hang the container forever (runc refuses them too).
    const INIT_SYSCALLS: [&str; 24] = [
        "setgroups",
        "setresuid",
        "setresgid",
        "capset",
        "capget",
        "prctl",
        "sendmsg",
        "sendto",
        "recvfrom",
        "read",
        "write",
        "poll",
        "ppoll",
        "clone",
        "clone3",
        "execve",
        "wait4",
        "close",
        "close_range",
        "fcntl",
        "dup2",
        "ioctl",
        "setsid",
        "rt_sigprocmask",
    ];
    if filter.uses_notify() {
        if let Some(name) = INIT_SYSCALLS.iter().find(|n| filter.may_notify(n)) {
            return Err(Error::Config(format!(
                "linux.seccomp: SCMP_ACT_NOTIFY on {name} would block the container's start"
            )));
        }
    }
    for ignored in filter.ignored_flags() {
        super::log::warn(&format!(
            "linux.seccomp: {} not used: {}",
            ignored.flag.name(),
            ignored.reason
        ));
    }
    if !filter.skipped_syscalls().is_empty() {
        super::log::debug(&format!(
            "seccomp: skipped syscalls unknown here: {}",
            filter.skipped_syscalls().join(", ")
        ));
    }
    Ok(Some(filter))
}

fn plan_process(spec: &Spec, rootfs: &Path, preserve_fds: u32) -> Result<ProcessPlan> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Config("process is missing".into()))?;
    let personality = match spec.linux().as_ref().and_then(|l| l.personality().clone()) {
        None => None,
        Some(p) => {
            use oci_spec::runtime::LinuxPersonalityDomain::*;
            if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
                return Err(Error::Unsupported {
                    field: "linux.personality.flags".into(),
                    why: "no personality flags are supported".into(),
                });
            }
            Some(match p.domain() {
                PerLinux => 0x0000,
                PerLinux32 => 0x0008,
            })
        }
    };
    let home = container_home(rootfs, process.user().uid());
    let mut plan = plan_process_spec(process, preserve_fds, personality, Some(home))?;
    plan.mem_policy = plan_mem_policy(spec)?;
    Ok(plan)
}

/// linux.netDevices, names checked, sorted by host name (the config is a map); they need
/// a network namespace of the container's own (new, or joined by path).
fn plan_net_devices(linux: &oci_spec::runtime::Linux) -> Result<Vec<super::netdev::NetDevice>> {
    let Some(devices) = linux.net_devices().as_ref().filter(|d| !d.is_empty()) else {
        return Ok(Vec::new());
    };
    let has_netns = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Network);
    if !has_netns {
        return Err(Error::Config(
            "linux.netDevices needs a network namespace in linux.namespaces".into(),
        ));
    }
    let mut planned = Vec::new();
    for (host, device) in devices {
        let container = device.name().clone().unwrap_or_else(|| host.clone());
        super::netdev::check_name(host)?;
        super::netdev::check_name(&container)?;
        planned.push(super::netdev::NetDevice {
            host: host.clone(),
            container,
        });
    }
    planned.sort_by(|a, b| a.host.cmp(&b.host));
    Ok(planned)
}

/// linux.memoryPolicy as set_mempolicy's arguments: the init's, and each exec's (a
/// process berth forks does not inherit the init's policy).
pub fn plan_mem_policy(spec: &Spec) -> Result<Option<super::sched::MemPolicy>> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.memory_policy().as_ref())
        .map(super::sched::mem_policy)
        .transpose()
}

fn plan_hooks(hooks: Option<Vec<oci_spec::runtime::Hook>>) -> Result<Vec<HookExec>> {
    hooks
        .unwrap_or_default()
        .iter()
        .map(|h| {
            let path = cstring(h.path().as_os_str().as_bytes())?;
            let args = match h.args() {
                Some(a) if !a.is_empty() => a.iter().map(|s| cstr_of(s)).collect::<Result<_>>()?,
                _ => vec![path.clone()],
            };
            let env = h
                .env()
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|s| cstr_of(s))
                .collect::<Result<_>>()?;
            Ok(HookExec {
                path,
                argv: CArray::new(args),
                envp: CArray::new(env),
                timeout_ms: h
                    .timeout()
                    .map(|t| t.saturating_mul(1000).min(i32::MAX as i64) as i32)
                    .unwrap_or(-1),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_path_splits_components() {
        let p = RootPath::new(Path::new("/dev/pts/")).expect("path");
        assert_eq!(p.rel.to_bytes(), b"dev/pts");
        assert_eq!(p.prefixes.len(), 2);
        assert_eq!(p.prefixes[0].to_bytes(), b"dev");
        assert_eq!(p.names[1].to_bytes(), b"pts");
        let root = RootPath::new(Path::new("/")).expect("root");
        assert_eq!(root.rel.to_bytes(), b".");
    }

    #[test]
    fn exec_candidates_follow_path() {
        let env = vec!["PATH=/bin:/usr/bin/".to_string()];
        let c = exec_candidates("sh", &env).expect("candidates");
        assert_eq!(c, vec![c"/bin/sh".to_owned(), c"/usr/bin/sh".to_owned()]);
        let abs = exec_candidates("/x/y", &env).expect("abs");
        assert_eq!(abs, vec![c"/x/y".to_owned()]);
    }

    #[test]
    fn mount_label_is_context_on_tmpfs_and_the_root_label_of_mqueue() {
        let mut out = Vec::new();
        for (dest, fstype) in [
            ("/dev", "tmpfs"),
            ("/dev/mqueue", "mqueue"),
            ("/proc", "proc"),
        ] {
            let m: Mount = serde_json::from_value(serde_json::json!({
                "destination": dest, "type": fstype, "source": fstype
            }))
            .expect("mount");
            plan_mount(&m, &Default::default(), &[], &[], Path::new("/"), &mut out).expect("plan");
        }
        let label = "system_u:object_r:container_file_t:s0:c1,c2";
        apply_mount_label(&mut out, label).expect("label");
        let context = |step: &MountStep| match &step.source {
            MountSource::New { options, .. } => options
                .iter()
                .find(|(k, _)| k.as_c_str() == c"context")
                .and_then(|(_, v)| v.clone()),
            _ => None,
        };
        let want = Some(cstr_of(label).expect("label"));
        assert_eq!(
            (context(&out[0]), &out[0].root_label),
            (want.clone(), &None)
        );
        // mqueue takes no context=: its root is labelled once mounted.
        assert_eq!((context(&out[1]), &out[1].root_label), (None, &want));
        assert_eq!((context(&out[2]), &out[2].root_label), (None, &None));
    }

    fn idmap_of(mount: serde_json::Value) -> Result<Option<IdMap>> {
        let m: Mount = serde_json::from_value(mount.clone()).expect("mount");
        let mappings: super::super::spec_de::MountMappings =
            serde_json::from_value(mount).expect("mappings");
        let mut out = Vec::new();
        plan_mount(&m, &mappings, &[], &[], Path::new("/"), &mut out)?;
        Ok(match &out[0].source {
            MountSource::Bind { idmap, .. } => idmap.clone(),
            _ => None,
        })
    }

    #[test]
    fn idmapped_binds_carry_their_maps() {
        let map = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 10}]);
        let two = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1},
                                     {"containerID": 1, "hostID": 2000, "size": 5}]);
        let idmap = idmap_of(serde_json::json!({
            "destination": "/data", "source": "/tmp", "options": ["rbind", "ridmap"],
            "uidMappings": map, "gidMappings": two
        }))
        .expect("plan");
        assert_eq!(
            idmap,
            Some(IdMap {
                uid_map: "0 1000 10\n".into(),
                gid_map: "0 1000 1\n1 2000 5\n".into(),
                recursive: true
            })
        );
        // The mappings alone make the mount idmapped (not recursively).
        let plain = idmap_of(serde_json::json!({
            "destination": "/data", "source": "/tmp", "options": ["bind"],
            "uidMappings": map, "gidMappings": map
        }))
        .expect("plan");
        assert_eq!(plain.map(|m| m.recursive), Some(false));
        let none = idmap_of(
            serde_json::json!({"destination": "/data", "source": "/tmp", "options": ["bind"]}),
        );
        assert_eq!(none.expect("plan"), None);
    }

    #[test]
    fn idmapped_mounts_are_checked() {
        let map = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 10}]);
        for (mount, needle) in [
            (
                serde_json::json!({"destination": "/d", "source": "/tmp", "options": ["bind", "idmap"]}),
                "needs uidMappings",
            ),
            (
                serde_json::json!({"destination": "/d", "source": "/tmp", "options": ["bind"], "uidMappings": map}),
                "go together",
            ),
            (
                serde_json::json!({"destination": "/d", "source": "/tmp", "options": ["bind"], "uidMappings": [], "gidMappings": map}),
                "at least one",
            ),
            (
                serde_json::json!({"destination": "/d", "type": "tmpfs", "source": "tmpfs", "uidMappings": map, "gidMappings": map}),
                "only supported on bind",
            ),
        ] {
            let err = idmap_of(mount.clone()).expect_err("refused").to_string();
            assert!(err.contains(needle), "{mount}: {err}");
        }
    }

    #[test]
    fn mount_options_split_into_attrs_propagation_and_data() {
        let m: Mount = serde_json::from_value(serde_json::json!({
            "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "ro", "rprivate", "mode=1777", "size=10k", "tmpcopyup"]
        }))
        .expect("mount");
        let mut out = Vec::new();
        plan_mount(&m, &Default::default(), &[], &[], Path::new("/"), &mut out).expect("plan");
        let step = &out[0];
        assert_eq!(
            step.attr.attr_set,
            sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_RDONLY
        );
        assert_eq!(step.propagation, libc::MS_PRIVATE);
        assert!(step.propagation_recursive);
        assert!(step.tmpcopyup);
        match &step.source {
            MountSource::New { options, .. } => assert_eq!(options.len(), 2),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn host_sysctls_are_refused() {
        assert!(plan_sysctl("kernel.panic", "1", &[]).is_err());
        let netns: Vec<oci_spec::runtime::LinuxNamespace> =
            serde_json::from_value(serde_json::json!([{"type": "network"}])).expect("ns");
        let (path, _, _) = plan_sysctl("net.ipv4.ip_forward", "1", &netns).expect("net sysctl");
        assert_eq!(path.rel.to_bytes(), b"proc/sys/net/ipv4/ip_forward");
    }

    #[test]
    fn unknown_rootfs_propagation_is_an_error() {
        assert!(root_propagation(Some("sideways")).is_err());
        assert_eq!(
            root_propagation(None).expect("default").0,
            libc::MS_SLAVE | libc::MS_REC
        );
    }
}
