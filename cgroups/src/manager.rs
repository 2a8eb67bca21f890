//! The cgroup manager the runtime calls: one container, every hierarchy.

use crate::dbus::Value;
use crate::devices::effective_rules;
use crate::error::{Error, Result};
use crate::fsutil::{
    child_cgroups, mkdir_if_missing, read_file, read_keyed, read_pids, rmdir_if_present, write_file,
};
use crate::layout::{Hierarchies, Layout, OwnCgroups};
use crate::path::{
    join_under_mount, parse_systemd, place, resolve_cgroupfs, systemd_is_running, CgroupPath,
};
use crate::stats::{self, Stats};
use crate::systemd::{self as sd, SystemdScope};
use crate::systemd_devices::{device_properties, DeviceProperties};
use crate::systemd_resources::{resource_properties, HostBlockNodes};
use crate::{v1, v2};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxResources};
use serde::{Deserialize, Serialize};
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long freeze, thaw and destroy wait for the kernel.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The sub-cgroup `add_process` falls back to when the v2 leaf cannot take
/// processes (its subtree_control was turned on from inside).
pub const EXEC_SUBCGROUP: &str = "berth-exec";

/// What the runtime knows about the container's cgroup.
#[derive(Clone, Debug)]
pub struct CgroupConfig<'a> {
    /// `linux.cgroupsPath` from config.json.
    pub cgroups_path: Option<&'a str>,
    /// The container id (the default cgroup name).
    pub container_id: &'a str,
    /// `--systemd-cgroup` was given.
    pub systemd: bool,
}

/// The container's directory in one v1 hierarchy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Dir {
    pub controllers: Vec<String>,
    pub dir: PathBuf,
    /// Where the hierarchy is mounted: only `create` needs it (for the container's
    /// `cgroup` mount), from a freshly resolved manager, so the state file leaves it out
    /// (`list` parses one state file per container).
    #[serde(skip)]
    pub mount_point: PathBuf,
}

/// One hierarchy as a container's `cgroup` mount shows it: where the host
/// mounts it, what it carries, and the container's directory in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HierarchyView<'a> {
    pub mount_point: &'a Path,
    /// The v1 controllers and `name=` labels; empty on cgroup2.
    pub controllers: &'a [String],
    pub dir: &'a Path,
}

impl HierarchyView<'_> {
    pub fn is_v2(&self) -> bool {
        self.controllers.is_empty()
    }
}

/// Where a resource's files live.
enum Target<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

/// A container's cgroups on every hierarchy of the host.
///
/// Serializable, so the runtime keeps it in its state file between
/// `create` and `delete` and never resolves paths twice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    layout: Layout,
    v1: Vec<V1Dir>,
    unified: Option<PathBuf>,
    unified_mount: Option<PathBuf>,
    /// Controllers driven through cgroup2: all of them on a Unified host,
    /// those no v1 hierarchy carries on a Hybrid one.
    v2_controllers: Vec<String>,
    /// Directories `create` made, parents before children.
    #[serde(default)]
    created: Vec<PathBuf>,
    /// The transient scope, when `--systemd-cgroup` found systemd running.
    #[serde(default)]
    systemd: Option<SystemdScope>,
    /// Things the runtime should print (systemd fallback...).
    #[serde(skip)]
    warnings: Vec<String>,
}

impl Manager {
    /// Resolves the container's cgroup on every mounted hierarchy. Touches
    /// nothing: [`Manager::create`] makes the directories.
    pub fn new(cfg: &CgroupConfig<'_>) -> Result<Manager> {
        let hierarchies = Hierarchies::detect()?;
        let own = OwnCgroups::detect()?;
        let mut warnings = Vec::new();
        let (request, systemd) = if cfg.systemd {
            systemd_request(cfg, &mut warnings)?
        } else {
            (resolve_cgroupfs(cfg.cgroups_path, cfg.container_id)?, None)
        };
        let v2_available = match &hierarchies.unified {
            Some(u) => read_file(&u.mount_point.join("cgroup.controllers"))?
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            None => Vec::new(),
        };
        let mut manager = Manager::resolve(&hierarchies, &own, &request, &v2_available);
        manager.warnings = warnings;
        manager.systemd = systemd;
        Ok(manager)
    }

    /// The pure part of [`Manager::new`].
    pub fn resolve(
        hierarchies: &Hierarchies,
        own: &OwnCgroups,
        request: &CgroupPath,
        v2_available: &[String],
    ) -> Manager {
        let v1 = hierarchies
            .v1
            .iter()
            .map(|mount| {
                let own_path = mount
                    .controllers
                    .iter()
                    .find_map(|c| own.v1.get(c))
                    .map_or("/", String::as_str);
                V1Dir {
                    controllers: mount.controllers.clone(),
                    dir: join_under_mount(
                        &mount.mount_point,
                        &mount.root,
                        &place(request, own_path),
                    ),
                    mount_point: mount.mount_point.clone(),
                }
            })
            .collect();
        let unified = hierarchies.unified.as_ref().map(|mount| {
            let own_path = own.unified.as_deref().unwrap_or("/");
            join_under_mount(&mount.mount_point, &mount.root, &place(request, own_path))
        });
        let v2_controllers = v2_available
            .iter()
            .filter(|c| hierarchies.v1_mount(c).is_none())
            .cloned()
            .collect();
        Manager {
            layout: hierarchies.layout(),
            v1,
            unified,
            unified_mount: hierarchies.unified.as_ref().map(|m| m.mount_point.clone()),
            v2_controllers,
            created: Vec::new(),
            systemd: None,
            warnings: Vec::new(),
        }
    }

    /// The systemd scope the container's cgroup is, if systemd manages it.
    /// Then the init cannot be born in its cgroup: the runtime clones it,
    /// calls [`Manager::start_systemd_scope`] with its pid, and only then
    /// [`Manager::create`], [`Manager::apply`] and [`Manager::add_process`].
    pub fn systemd_scope(&self) -> Option<&SystemdScope> {
        self.systemd.as_ref()
    }

    /// Starts the transient scope around `pid` (a process that runs no
    /// container code yet) and checks that `pid` really landed in the
    /// scope's cgroup; if not, stops the unit again and fails, so no limit
    /// is ever written into another unit's cgroup. Returns warnings for the
    /// runtime to print (device rules systemd cannot be given exactly).
    pub fn start_systemd_scope(
        &mut self,
        pid: i32,
        resources: &LinuxResources,
    ) -> Result<Vec<String>> {
        let Some(scope) = self.systemd.clone() else {
            return Ok(Vec::new());
        };
        let pid_u32 = u32::try_from(pid).map_err(|_| Error::InvalidResource {
            resource: "pid",
            reason: format!("{pid} is no process id"),
        })?;
        let mut properties = sd::scope_properties(&scope, pid_u32, self.unit_layout());
        let (limits, warnings) = self.systemd_limit_properties(resources)?;
        properties.extend(limits);
        sd::start_scope(&scope, properties)?;
        if let Some(s) = self.systemd.as_mut() {
            s.started = true;
        }
        if let Err(e) = self.check_scope_placement(pid, &scope) {
            // Our unit, but the wrong process set: take it down.
            let _ = sd::stop_unit(&scope.unit);
            return Err(e);
        }
        Ok(warnings)
    }

    /// How systemd drives the controllers here: v2 on a unified host; on
    /// a hybrid one systemd uses the v1 hierarchies.
    fn unit_layout(&self) -> sd::UnitLayout {
        match self.layout {
            Layout::Unified => sd::UnitLayout::Unified,
            Layout::V1 | Layout::Hybrid => sd::UnitLayout::Legacy,
        }
    }

    /// The limits and device rules as unit properties, and what systemd
    /// could not be told exactly.
    fn systemd_limit_properties(
        &self,
        resources: &LinuxResources,
    ) -> Result<(Vec<Value>, Vec<String>)> {
        let limits = resource_properties(resources, self.unit_layout(), &HostBlockNodes);
        let devices = systemd_device_properties(resources)?;
        let mut properties = limits.properties;
        properties.extend(devices.properties);
        let mut warnings = limits.warnings;
        warnings.extend(devices.warnings);
        Ok((properties, warnings))
    }

    fn check_scope_placement(&self, pid: i32, scope: &SystemdScope) -> Result<()> {
        let file = PathBuf::from(format!("/proc/{pid}/cgroup"));
        let text = read_file(&file)?;
        sd::check_placement(&text, &scope.cgroup, self.layout == Layout::Unified).map_err(|found| {
            Error::ScopeMismatch {
                unit: scope.unit.clone(),
                pid,
                expected: scope.cgroup.clone(),
                found,
            }
        })
    }

    /// The host's layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Warnings for the runtime to print (e.g. the systemd fallback).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The container's directory in each v1 hierarchy.
    pub fn v1_dirs(&self) -> &[V1Dir] {
        &self.v1
    }

    /// The container's directory on the cgroup2 hierarchy, if mounted.
    pub fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// Every hierarchy with the container's directory in it: what the
    /// runtime needs to give the container its `cgroup` mount, without
    /// reading mountinfo a second time.
    pub fn hierarchy_views(&self) -> Vec<HierarchyView<'_>> {
        let v1 = self.v1.iter().map(|d| HierarchyView {
            mount_point: &d.mount_point,
            controllers: &d.controllers,
            dir: &d.dir,
        });
        let unified = match (&self.unified_mount, &self.unified) {
            (Some(mount_point), Some(dir)) => Some(HierarchyView {
                mount_point,
                controllers: &[],
                dir,
            }),
            _ => None,
        };
        v1.chain(unified).collect()
    }

    /// Controllers driven through cgroup2.
    pub fn v2_controllers(&self) -> &[String] {
        &self.v2_controllers
    }

    /// The directory of a controller's files, v1 or v2.
    pub fn controller_dir(&self, controller: &'static str) -> Option<&Path> {
        match self.target(controller, controller) {
            Ok(Target::V1(d) | Target::V2(d)) => Some(d),
            Err(_) => None,
        }
    }

    /// Every leaf directory, v1 ones first.
    fn leaves(&self) -> impl Iterator<Item = &Path> {
        self.v1
            .iter()
            .map(|d| d.dir.as_path())
            .chain(self.unified.as_deref())
    }

    fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
            .map(|d| d.dir.as_path())
    }

    fn target(&self, v1_name: &'static str, v2_name: &str) -> Result<Target<'_>> {
        if let Some(dir) = self.v1_dir(v1_name) {
            return Ok(Target::V1(dir));
        }
        match &self.unified {
            Some(dir) if self.v2_controllers.iter().any(|c| c == v2_name) => Ok(Target::V2(dir)),
            _ => Err(Error::ControllerMissing(v1_name)),
        }
    }

    /// Makes the directories on every hierarchy: copies cpuset.cpus/mems
    /// into new v1 cpuset levels, and turns the v2 controllers on along the
    /// path. On failure, removes whatever it made.
    pub fn create(&mut self) -> Result<()> {
        let result = self.create_all();
        if result.is_err() {
            self.remove_created_dirs();
        }
        result
    }

    fn create_all(&mut self) -> Result<()> {
        for index in 0..self.v1.len() {
            let dir = self.v1[index].dir.clone();
            let is_cpuset = self.v1[index].controllers.iter().any(|c| c == "cpuset");
            for made in mkdir_all(&dir, &mut self.created)? {
                if is_cpuset {
                    inherit_cpuset(&made)?;
                }
            }
        }
        if let (Some(dir), Some(mount)) = (self.unified.clone(), self.unified_mount.clone()) {
            mkdir_v2(&mount, &dir, &self.v2_controllers, &mut self.created)?;
        }
        Ok(())
    }

    /// Sets every resource present in `resources` (used by create and by
    /// update). Absent or zero values leave the files alone.
    pub fn apply(&self, resources: &LinuxResources) -> Result<()> {
        if let Some(memory) = resources.memory() {
            if memory_is_set(memory) {
                match self.target("memory", "memory")? {
                    Target::V1(d) => v1::set_memory(d, memory)?,
                    Target::V2(d) => v2::set_memory(d, memory)?,
                }
            }
        }
        if let Some(cpu) = resources.cpu() {
            self.apply_cpu(cpu)?;
        }
        if let Some(pids) = resources.pids() {
            match self.target("pids", "pids")? {
                Target::V1(d) | Target::V2(d) => v2::set_pids(d, pids.limit())?,
            }
        }
        if let Some(blkio) = resources.block_io().as_ref().filter(|b| blkio_is_set(b)) {
            match self.target("blkio", "io")? {
                Target::V1(d) => v1::set_blkio(d, blkio)?,
                Target::V2(d) => v2::set_io(d, blkio)?,
            }
        }
        if let Some(limits) = resources
            .hugepage_limits()
            .as_ref()
            .filter(|l| !l.is_empty())
        {
            match self.target("hugetlb", "hugetlb")? {
                Target::V1(d) => v1::set_hugetlb(d, limits)?,
                Target::V2(d) => v2::set_hugetlb(d, limits)?,
            }
        }
        if let Some(network) = resources.network() {
            self.apply_network(network)?;
        }
        if let Some(rdma) = resources.rdma().as_ref().filter(|r| !r.is_empty()) {
            match self.target("rdma", "rdma")? {
                Target::V1(d) | Target::V2(d) => v1::set_rdma(d, rdma)?,
            }
        }
        if let Some(unified) = resources.unified().as_ref().filter(|u| !u.is_empty()) {
            self.apply_unified(unified)?;
        }
        if let Some(devices) = resources.devices() {
            self.apply_devices(devices)?;
        }
        Ok(())
    }

    /// [`Manager::apply`] for `update`: with a systemd scope, the limits
    /// systemd has properties for and the device rules also become unit properties,
    /// so systemd keeps them. Returns warnings for the runtime to print.
    ///
    /// The properties go first: systemd then re-applies all of the unit's
    /// cgroup settings, its device list included, which can only
    /// approximate some rule lists. Writing the files after it puts the
    /// container's exact device rules back.
    pub fn update(&self, resources: &LinuxResources) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        if let Some(scope) = self.systemd.as_ref().filter(|s| s.started) {
            let (properties, limit_warnings) = self.systemd_limit_properties(resources)?;
            warnings = limit_warnings;
            sd::set_properties(&scope.unit, properties)?;
        }
        self.apply(resources)?;
        Ok(warnings)
    }

    fn apply_cpu(&self, cpu: &LinuxCpu) -> Result<()> {
        let cpu_set = cpu.shares().is_some_and(|s| s != 0)
            || cpu.quota().is_some_and(|q| q != 0)
            || cpu.period().is_some_and(|p| p != 0)
            || cpu.burst().is_some()
            || cpu.realtime_runtime().is_some_and(|r| r != 0)
            || cpu.realtime_period().is_some_and(|p| p != 0)
            || cpu.idle().is_some();
        if cpu_set {
            match self.target("cpu", "cpu")? {
                Target::V1(d) => v1::set_cpu(d, cpu)?,
                Target::V2(d) => v2::set_cpu(d, cpu)?,
            }
        }
        let cpuset_set = cpu.cpus().as_ref().is_some_and(|c| !c.is_empty())
            || cpu.mems().as_ref().is_some_and(|m| !m.is_empty());
        if cpuset_set {
            match self.target("cpuset", "cpuset")? {
                Target::V1(d) | Target::V2(d) => v1::set_cpuset(d, cpu)?,
            }
        }
        Ok(())
    }

    fn apply_network(&self, network: &oci_spec::runtime::LinuxNetwork) -> Result<()> {
        let wants_classid = network.class_id().is_some();
        let wants_prio = network.priorities().as_ref().is_some_and(|p| !p.is_empty());
        if (wants_classid || wants_prio) && self.layout == Layout::Unified {
            return Err(Error::Unsupported {
                resource: "network (classID, priorities)".into(),
                reason: "net_cls and net_prio exist only on cgroup v1",
            });
        }
        if wants_classid {
            let dir = self
                .v1_dir("net_cls")
                .ok_or(Error::ControllerMissing("net_cls"))?;
            v1::set_net_cls(dir, network)?;
        }
        if wants_prio {
            let dir = self
                .v1_dir("net_prio")
                .ok_or(Error::ControllerMissing("net_prio"))?;
            v1::set_net_prio(dir, network)?;
        }
        Ok(())
    }

    fn apply_unified(&self, unified: &std::collections::HashMap<String, String>) -> Result<()> {
        let dir = match (&self.unified, self.layout) {
            (Some(dir), Layout::Unified | Layout::Hybrid) => dir,
            _ => {
                return Err(Error::Unsupported {
                    resource: "unified".into(),
                    reason: "raw cgroup v2 keys need a cgroup2 hierarchy",
                })
            }
        };
        let mut keys: Vec<_> = unified.iter().collect();
        keys.sort();
        for (key, value) in keys {
            v2::check_unified_key(key)?;
            let controller = v2::unified_key_controller(key);
            let routed_to_v2 =
                controller == "cgroup" || self.v2_controllers.iter().any(|c| c == controller);
            if self.layout == Layout::Hybrid && !routed_to_v2 {
                return Err(Error::Unsupported {
                    resource: format!("unified key {key}"),
                    reason: "on this hybrid host that controller is on cgroup v1",
                });
            }
            v2::set_unified(dir, key, value)?;
        }
        Ok(())
    }

    fn apply_devices(&self, devices: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<()> {
        if let Some(dir) = self.v1_dir("devices") {
            return v1::set_devices(dir, devices);
        }
        match &self.unified {
            Some(dir) => v2::set_devices(dir, devices),
            None => Err(Error::ControllerMissing("devices")),
        }
    }

    /// A descriptor of the v2 leaf, for clone3(CLONE_INTO_CGROUP). On a
    /// Unified host that alone places the child; on V1 and Hybrid hosts
    /// the runtime must still call [`Manager::add_process`].
    pub fn v2_dir_fd(&self) -> Option<OwnedFd> {
        let dir = self.unified.as_ref()?;
        std::fs::File::open(dir).ok().map(OwnedFd::from)
    }

    /// Moves a process (and the threads of it) into the container's cgroup
    /// on every hierarchy. On v2, a leaf that refuses processes because
    /// controllers were enabled in its subtree_control gets the process in
    /// a sub-cgroup instead (what crun does for exec).
    pub fn add_process(&self, pid: i32) -> Result<()> {
        let pid_text = pid.to_string();
        for v1 in &self.v1 {
            write_file(&v1.dir.join("cgroup.procs"), &pid_text)?;
        }
        if let Some(dir) = &self.unified {
            match write_file(&dir.join("cgroup.procs"), &pid_text) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    let sub = dir.join(EXEC_SUBCGROUP);
                    mkdir_if_missing(&sub)?;
                    write_file(&sub.join("cgroup.procs"), &pid_text)?;
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// The directory whose cgroup.procs (recursively) lists the container.
    fn primary_dir(&self) -> Option<&Path> {
        if self.layout == Layout::Unified {
            return self.unified.as_deref();
        }
        ["freezer", "pids", "memory"]
            .iter()
            .find_map(|c| self.v1_dir(c))
            .or_else(|| self.v1.first().map(|d| d.dir.as_path()))
            .or(self.unified.as_deref())
    }

    /// Every process in the container's cgroup, sub-cgroups included.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut pids = Vec::new();
        if let Some(dir) = self.primary_dir() {
            collect_pids(dir, &mut pids)?;
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Freezes every process (v1 freezer, else v2 cgroup.freeze) and waits
    /// until the kernel reports the cgroup frozen.
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    /// Thaws the cgroup and waits until it runs again.
    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    /// Whether the cgroup is (fully) frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        match self.freezer()? {
            Freezer::V1(dir) => Ok(read_file(&dir.join("freezer.state"))? == "FROZEN"),
            Freezer::V2(dir) => Ok(read_keyed(&dir.join("cgroup.events"), "frozen")? == Some(1)),
        }
    }

    /// Whether someone asked for the cgroup to be frozen (pause), even if
    /// the kernel has not finished, or a killed task briefly left the
    /// frozen state (v2 lets fatal signals through).
    pub fn freeze_requested(&self) -> Result<bool> {
        match self.freezer()? {
            Freezer::V1(dir) => Ok(read_file(&dir.join("freezer.state"))? != "THAWED"),
            Freezer::V2(dir) => Ok(read_file(&dir.join("cgroup.freeze"))? == "1"),
        }
    }

    fn freezer(&self) -> Result<Freezer<'_>> {
        if let Some(dir) = self.v1_dir("freezer") {
            return Ok(Freezer::V1(dir));
        }
        match &self.unified {
            Some(dir) if dir.join("cgroup.freeze").exists() || self.layout == Layout::Unified => {
                Ok(Freezer::V2(dir))
            }
            _ => Err(Error::ControllerMissing("freezer")),
        }
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let freezer = self.freezer()?;
        let (file, value, path) = match freezer {
            Freezer::V1(dir) => (
                dir.join("freezer.state"),
                if frozen { "FROZEN" } else { "THAWED" },
                dir,
            ),
            Freezer::V2(dir) => (
                dir.join("cgroup.freeze"),
                if frozen { "1" } else { "0" },
                dir,
            ),
        };
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            // v1 can stall in FREEZING when a task is busy in the kernel:
            // writing again retries the freeze.
            write_file(&file, value)?;
            if self.is_frozen()? == frozen {
                return Ok(());
            }
            if Instant::now() > deadline {
                if frozen {
                    // Leave nothing half-frozen behind.
                    let _ = write_file(
                        &file,
                        if file.ends_with("cgroup.freeze") {
                            "0"
                        } else {
                            "THAWED"
                        },
                    );
                }
                return Err(Error::FreezeTimeout {
                    path: path.to_owned(),
                    state: if frozen { "frozen" } else { "thawed" },
                });
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends `signal` to every process of the container. SIGKILL uses v2's
    /// cgroup.kill where the kernel has it (no pid races); otherwise the
    /// cgroup is frozen while the signals go out, so no process can fork
    /// past the list.
    pub fn kill_all(&self, signal: i32) -> Result<()> {
        if signal == libc::SIGKILL {
            if let Some(dir) = &self.unified {
                let kill_file = dir.join("cgroup.kill");
                if kill_file.exists() {
                    return write_file(&kill_file, "1");
                }
            }
        }
        // A paused container stays paused: only freeze (and thaw) here if
        // it was running.
        let running = self.freezer().is_ok() && !self.freeze_requested().unwrap_or(true);
        let froze = running && self.freeze().is_ok();
        let result = self.signal_each(signal);
        if froze {
            self.thaw()?;
        }
        result
    }

    fn signal_each(&self, signal: i32) -> Result<()> {
        for pid in self.pids()? {
            // SAFETY: kill(2) takes plain integers; a pid that exited in
            // the meantime gives ESRCH, which is fine.
            let ret = unsafe { libc::kill(pid, signal) };
            if ret != 0 {
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::ESRCH) {
                    return Err(Error::io("kill", format!("/proc/{pid}"), err));
                }
            }
        }
        Ok(())
    }

    /// Kills what is left, stops the systemd scope if there is one, then
    /// removes the container's directories on every hierarchy and every
    /// parent level `create` made (if empty).
    pub fn destroy(&mut self) -> Result<()> {
        if self.systemd.as_ref().is_some_and(|s| !s.started) {
            // systemd never accepted our unit: whatever sits at its path
            // belongs to someone else.
            self.remove_created_dirs();
            return Ok(());
        }
        self.kill_leftovers()?;
        let mut first_error = None;
        if let Some(scope) = &self.systemd {
            if let Err(e) = sd::stop_unit(&scope.unit) {
                first_error = Some(e);
            }
        }
        let leaves: Vec<PathBuf> = self.leaves().map(Path::to_owned).collect();
        for leaf in &leaves {
            if let Err(e) = remove_cgroup_tree(leaf) {
                first_error.get_or_insert(e);
            }
        }
        self.remove_created_dirs();
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn kill_leftovers(&self) -> Result<()> {
        if self.pids()?.is_empty() {
            return Ok(());
        }
        // A frozen cgroup would keep SIGKILLed processes alive.
        if self.freezer().is_ok() && self.freeze_requested().unwrap_or(false) {
            self.thaw()?;
        }
        self.kill_all(libc::SIGKILL)?;
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while !self.pids()?.is_empty() {
            if Instant::now() > deadline {
                let dir = self.primary_dir().unwrap_or(Path::new("/")).to_owned();
                return Err(Error::ProcessesRemain(dir));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        Ok(())
    }

    /// rmdir of the recorded directories, children first; a parent still
    /// used by someone else (ENOTEMPTY, EBUSY) stays.
    fn remove_created_dirs(&mut self) {
        while let Some(dir) = self.created.pop() {
            let _ = rmdir_if_present(&dir);
        }
    }

    /// Resource usage in runc's `events --stats` shape.
    pub fn stats(&self) -> Result<Stats> {
        let mut out = Stats::default();
        match (self.v1_dir("cpuacct"), self.target("cpu", "cpu")) {
            (_, Ok(Target::V2(d))) => out.cpu = stats::cpu_v2(d),
            (acct, cpu) => {
                let cpu_dir = match cpu {
                    Ok(Target::V1(d)) => Some(d),
                    _ => None,
                };
                out.cpu = stats::cpu_v1(acct, cpu_dir);
            }
        }
        match self.target("memory", "memory") {
            Ok(Target::V1(d)) => out.memory = stats::memory_v1(d),
            Ok(Target::V2(d)) => out.memory = stats::memory_v2(d),
            Err(_) => {}
        }
        if let Ok(Target::V1(d) | Target::V2(d)) = self.target("pids", "pids") {
            out.pids = stats::pids(d);
        }
        match self.target("blkio", "io") {
            Ok(Target::V1(d)) => out.blkio = stats::blkio_v1(d),
            Ok(Target::V2(d)) => out.blkio = stats::blkio_v2(d),
            Err(_) => {}
        }
        match self.target("hugetlb", "hugetlb") {
            Ok(Target::V1(d)) => out.hugetlb = stats::hugetlb_v1(d),
            Ok(Target::V2(d)) => out.hugetlb = stats::hugetlb_v2(d),
            Err(_) => {}
        }
        Ok(out)
    }

    /// How many processes the OOM killer has killed in the container
    /// (v2 memory.events, v1 memory.oom_control).
    pub fn oom_kill_count(&self) -> Result<u64> {
        match self.target("memory", "memory")? {
            Target::V1(d) => {
                Ok(read_keyed(&d.join("memory.oom_control"), "oom_kill")?.unwrap_or(0))
            }
            Target::V2(d) => Ok(read_keyed(&d.join("memory.events"), "oom_kill")?.unwrap_or(0)),
        }
    }

    /// A handle `events` can block on until the next OOM kill.
    pub fn oom_watcher(&self) -> Result<crate::oom::OomWatcher> {
        match self.target("memory", "memory")? {
            Target::V1(d) => crate::oom::OomWatcher::v1(d),
            Target::V2(d) => crate::oom::OomWatcher::v2(d),
        }
    }
}

/// The cgroup request for `--systemd-cgroup`: the scope when systemd runs,
/// else the same path on cgroupfs with a warning.
fn systemd_request(
    cfg: &CgroupConfig<'_>,
    warnings: &mut Vec<String>,
) -> Result<(CgroupPath, Option<SystemdScope>)> {
    let unit = parse_systemd(cfg.cgroups_path, cfg.container_id)?;
    let request = CgroupPath::Absolute(unit.cgroup.clone());
    if !systemd_is_running() {
        warnings.push(format!(
            "systemd is not running: using the cgroupfs path {} instead of a systemd scope",
            unit.cgroup
        ));
        return Ok((request, None));
    }
    if !unit.unit.ends_with(".scope") {
        return Err(Error::InvalidPath {
            path: cfg.cgroups_path.unwrap_or_default().to_owned(),
            reason: "with systemd running the container is a scope: its name cannot be a slice",
        });
    }
    let scope = SystemdScope {
        unit: unit.unit,
        slice: unit.slice,
        cgroup: unit.cgroup,
        description: format!("berth container {}", cfg.container_id),
        started: false,
    };
    Ok((request, Some(scope)))
}

/// DevicePolicy and DeviceAllow for the config's device rules; none when
/// the config has no device list, as `apply` then writes no rules either.
fn systemd_device_properties(resources: &LinuxResources) -> Result<DeviceProperties> {
    let Some(config) = resources.devices() else {
        return Ok(DeviceProperties::default());
    };
    let rules = effective_rules(config)?;
    let mut warnings = Vec::new();
    // Only rules for all minors of one major need it: without it, they are
    // left out with a warning each.
    let proc_devices = read_file(Path::new("/proc/devices")).unwrap_or_else(|e| {
        warnings.push(format!("device names for systemd: {e}"));
        String::new()
    });
    let mut devices = device_properties(&rules, &proc_devices);
    warnings.append(&mut devices.warnings);
    devices.warnings = warnings;
    Ok(devices)
}

enum Freezer<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

fn memory_is_set(memory: &oci_spec::runtime::LinuxMemory) -> bool {
    memory.limit().is_some_and(|v| v != 0)
        || memory.reservation().is_some_and(|v| v != 0)
        || memory.swap().is_some_and(|v| v != 0)
        || memory.kernel_tcp().is_some_and(|v| v != 0)
        || memory.swappiness().is_some()
        || memory.disable_oom_killer() == Some(true)
}

fn blkio_is_set(blkio: &LinuxBlockIo) -> bool {
    let any = |list: &Option<Vec<_>>| list.as_ref().is_some_and(|l: &Vec<_>| !l.is_empty());
    blkio.weight().is_some_and(|w| w != 0)
        || blkio.leaf_weight().is_some_and(|w| w != 0)
        || blkio
            .weight_device()
            .as_ref()
            .is_some_and(|l| !l.is_empty())
        || any(blkio.throttle_read_bps_device())
        || any(blkio.throttle_write_bps_device())
        || any(blkio.throttle_read_iops_device())
        || any(blkio.throttle_write_iops_device())
}

/// mkdir -p that records each directory it made (parents first) in
/// `created` and returns them.
fn mkdir_all(dir: &Path, created: &mut Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(path) = cursor {
        if path.exists() {
            break;
        }
        missing.push(path.to_owned());
        cursor = path.parent();
    }
    let mut made = Vec::new();
    for path in missing.into_iter().rev() {
        if mkdir_if_missing(&path)? {
            created.push(path.clone());
            made.push(path);
        }
    }
    Ok(made)
}

/// A new v1 cpuset cgroup starts with no CPUs and no memory nodes, which
/// makes it unusable: copy the parent's.
fn inherit_cpuset(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if read_file(&dir.join(file))?.is_empty() {
            let value = read_file(&parent.join(file))?;
            write_file(&dir.join(file), &value)?;
        }
    }
    Ok(())
}

/// mkdir -p on cgroup2 that turns the v2 controllers on in each level's
/// cgroup.subtree_control before making the next, from the mount root down
/// to the leaf's parent, so the leaf gets their files. Controllers a level
/// refuses (a threaded subtree, a busy level) are skipped: writing their
/// limits then fails naming the missing file.
fn mkdir_v2(
    mount: &Path,
    leaf: &Path,
    controllers: &[String],
    created: &mut Vec<PathBuf>,
) -> Result<()> {
    let Ok(relative) = leaf.strip_prefix(mount) else {
        return mkdir_all(leaf, created).map(drop);
    };
    let mut level = mount.to_owned();
    for component in relative.components() {
        enable_controllers(&level, controllers);
        level.push(component);
        if mkdir_if_missing(&level)? {
            created.push(level.clone());
        }
    }
    Ok(())
}

fn enable_controllers(level: &Path, controllers: &[String]) {
    let Ok(available) = read_file(&level.join("cgroup.controllers")) else {
        return;
    };
    let enabled = read_file(&level.join("cgroup.subtree_control")).unwrap_or_default();
    for controller in controllers {
        let offered = available.split_whitespace().any(|c| c == controller);
        let already = enabled.split_whitespace().any(|c| c == controller);
        if offered && !already {
            let _ = write_file(
                &level.join("cgroup.subtree_control"),
                &format!("+{controller}"),
            );
        }
    }
}

fn collect_pids(dir: &Path, pids: &mut Vec<i32>) -> Result<()> {
    pids.extend(read_pids(&dir.join("cgroup.procs"))?);
    for child in child_cgroups(dir)? {
        collect_pids(&child, pids)?;
    }
    Ok(())
}

/// rmdir of a cgroup and its sub-cgroups, children first. EBUSY right
/// after a kill is the kernel still tearing tasks down: retry briefly.
fn remove_cgroup_tree(dir: &Path) -> Result<()> {
    for child in child_cgroups(dir)? {
        remove_cgroup_tree(&child)?;
    }
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        match rmdir_if_present(dir) {
            Ok(()) => return Ok(()),
            Err(Error::Io { source, .. })
                if source.kind() == ErrorKind::ResourceBusy && Instant::now() < deadline =>
            {
                std::thread::sleep(POLL_INTERVAL);
            }
            Err(e) => return Err(e),
        }
    }
}
