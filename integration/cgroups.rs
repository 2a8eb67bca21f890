//! Container-level cgroup tests (issue 4): each resource set through config.json is read back
//! from inside the container (its cgroup namespace's `/sys/fs/cgroup`) and from the host; an OOM
//! kill shows up in `events`; a fork bomb hits pids.max; denied devices cannot be opened;
//! `pause` stops a busy loop and `resume` restarts it; `update` changes live limits; `exec`
//! joins the container's cgroup (a sub-cgroup when the v2 leaf is busy); `delete` leaves no
//! cgroup directory behind.
//!
//! The same tests run on this hybrid host (v1 controllers plus a cgroup2 mount), on a pure
//! cgroup v2 kernel (integration/cgroups-vm/run.sh --integration) and on a hybrid kernel with
//! every v1 controller mounted (run.sh --hybrid). File names and expected values follow the
//! host's layout, discovered from /proc/self/mountinfo. The VM runs set
//! `BERTH_TEST_REQUIRE_LAYOUT` and the `BERTH_TEST_REQUIRE_*` of what their guest provides (an
//! rdma device, a BFQ disk, v1 net_cls/net_prio): there a skip or a refusal branch fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{
    assert_not_required, parse_mountinfo, present_or_skip, wait_until, Sandbox, SETTLE_TIMEOUT,
};

const MIB: i64 = 1 << 20;

// ---------------------------------------------------------------------------------------------
// The host's cgroup hierarchies
// ---------------------------------------------------------------------------------------------

/// One mounted cgroup hierarchy of the host.
#[derive(Debug, Clone)]
pub(crate) struct Hierarchy {
    pub(crate) mount: PathBuf,
    /// v1: the controllers (and `name=...`) it carries; empty for cgroup2.
    controllers: Vec<String>,
    pub(crate) v2: bool,
}

impl Hierarchy {
    /// The same hierarchy as the container sees it: its `cgroup` mount is at /sys/fs/cgroup
    /// with one sub-directory per host hierarchy (none on a pure v2 host).
    fn inside(&self, file: &str) -> String {
        let sub = self
            .mount
            .strip_prefix("/sys/fs/cgroup")
            .unwrap_or(Path::new(""));
        Path::new("/sys/fs/cgroup")
            .join(sub)
            .join(file)
            .display()
            .to_string()
    }

    /// The directory of a process in this hierarchy, from /proc/PID/cgroup.
    pub(crate) fn dir_of(&self, pid: i32) -> PathBuf {
        let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/cgroup: {e}"));
        let path = text
            .lines()
            .find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
                let mut listed: Vec<&str> = ctrls.split(',').filter(|c| !c.is_empty()).collect();
                listed.sort_unstable();
                let mut mine: Vec<&str> = self.controllers.iter().map(String::as_str).collect();
                mine.sort_unstable();
                (listed == mine).then(|| path.to_string())
            })
            .unwrap_or_else(|| panic!("no line for {self:?} in /proc/{pid}/cgroup:\n{text}"));
        self.mount.join(path.trim_start_matches('/'))
    }
}

/// The cgroup hierarchies mounted under /sys/fs/cgroup (every test finds them here, so this is
/// where the layout a run requires is checked).
pub(crate) fn hierarchies() -> Vec<Hierarchy> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let all: Vec<Hierarchy> = parse_mountinfo(&text)
        .into_iter()
        .filter(|m| m.mount_point.starts_with("/sys/fs/cgroup"))
        .filter_map(|m| match m.fs_type.as_str() {
            "cgroup2" => Some(Hierarchy {
                mount: PathBuf::from(&m.mount_point),
                controllers: Vec::new(),
                v2: true,
            }),
            "cgroup" => Some(Hierarchy {
                mount: PathBuf::from(&m.mount_point),
                controllers: m
                    .super_options
                    .iter()
                    .filter(|o| is_v1_controller_option(o))
                    .cloned()
                    .collect(),
                v2: false,
            }),
            _ => None,
        })
        .collect();
    if let Ok(wanted) = std::env::var("BERTH_TEST_REQUIRE_LAYOUT") {
        assert_eq!(layout_of(&all), wanted, "the cgroup layout of this host");
    }
    all
}

/// The layout in BERTH_TEST_REQUIRE_LAYOUT's words: unified, hybrid or legacy.
fn layout_of(all: &[Hierarchy]) -> &'static str {
    let v1 = all.iter().filter(|h| !h.v2).count();
    match (v1, all.len() - v1) {
        (0, 0) => "none",
        (0, _) => "unified",
        (_, 0) => "legacy",
        _ => "hybrid",
    }
}

/// v1 super options are the controllers plus mount flags; keep the controllers and `name=`.
fn is_v1_controller_option(option: &str) -> bool {
    const NOT_CONTROLLERS: [&str; 6] = [
        "rw",
        "ro",
        "relatime",
        "noprefix",
        "xattr",
        "clone_children",
    ];
    if option.starts_with("name=") {
        return true;
    }
    !NOT_CONTROLLERS.contains(&option) && !option.contains('=')
}

/// True on a pure cgroup v2 host (no v1 hierarchy at all).
fn pure_v2() -> bool {
    hierarchies().iter().all(|h| h.v2)
}

fn unified() -> Option<Hierarchy> {
    hierarchies().into_iter().find(|h| h.v2)
}

/// The hierarchy a controller's files live in: its v1 mount, else cgroup2 if the root offers it.
pub(crate) fn home_of(controller: &str) -> Option<Hierarchy> {
    let all = hierarchies();
    if let Some(v1) = all
        .iter()
        .find(|h| !h.v2 && h.controllers.iter().any(|c| c == controller))
    {
        return Some(v1.clone());
    }
    let v2 = all.into_iter().find(|h| h.v2)?;
    let offered = fs::read_to_string(v2.mount.join("cgroup.controllers")).unwrap_or_default();
    offered
        .split_whitespace()
        .any(|c| c == controller)
        .then_some(v2)
}

/// Like `home_of`, but a missing controller skips the test on this host.
fn home_or_skip(controller: &str) -> Option<Hierarchy> {
    let home = home_of(controller);
    if home.is_none() {
        eprintln!("skipped: no {controller} controller on this host");
    }
    home
}

/// Every directory of process `pid` on every hierarchy.
fn all_dirs_of(pid: i32) -> Vec<PathBuf> {
    hierarchies().iter().map(|h| h.dir_of(pid)).collect()
}

// ---------------------------------------------------------------------------------------------
// Containers with limits
// ---------------------------------------------------------------------------------------------

/// One control file to read from inside the container and from the host.
#[derive(Clone)]
struct Probe {
    home: Hierarchy,
    file: String,
}

impl Probe {
    fn new(home: &Hierarchy, file: &str) -> Probe {
        Probe {
            home: home.clone(),
            file: file.to_string(),
        }
    }
}

/// A started container whose script printed the probed files and then sleeps.
struct Started {
    sb: Sandbox,
    id: String,
    pid: i32,
    /// What the container read, in probe order.
    inside: Vec<String>,
    /// Its directory on every hierarchy, recorded while it ran.
    dirs: Vec<PathBuf>,
}

impl Started {
    /// The probed file as the host reads it in the container's cgroup.
    fn host(&self, probe: &Probe) -> String {
        let path = probe.home.dir_of(self.pid).join(&probe.file);
        read_trimmed(&path)
    }

    /// Reads `file` of `home` from inside through `exec`.
    fn exec_read(&self, home: &Hierarchy, file: &str) -> String {
        let out = self
            .sb
            .rt(&["exec", &self.id, "cat", &home.inside(file)])
            .ok();
        out.stdout.trim().to_string()
    }

    /// Deletes the container and asserts nothing is left, cgroup directories included.
    #[track_caller]
    fn delete_and_check(self) {
        self.sb.rt(&["delete", "--force", &self.id]).ok();
        self.sb.assert_nothing_left(&self.id);
        assert_no_dirs(&self.dirs);
    }
}

fn read_trimmed(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

#[track_caller]
fn assert_no_dirs(dirs: &[PathBuf]) {
    let left: Vec<&PathBuf> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroup directories left behind: {left:?}");
}

/// The shell lines that copy each probed file, one line each, into /tmp/probes and then
/// rename it into place, so the test never reads a half-written file.
fn probe_script(probes: &[Probe]) -> String {
    let mut script = String::from(": > /tmp/probes.tmp; ");
    for probe in probes {
        // One line per file, even for multi-line files (io.max, devices.list).
        script.push_str(&format!(
            "echo \"$(tr '\\n' ';' < {} 2>&1)\" >> /tmp/probes.tmp; ",
            probe.home.inside(&probe.file)
        ));
    }
    script.push_str("mv /tmp/probes.tmp /tmp/probes; ");
    script
}

/// Creates and starts a container with `resources` (merged into linux.resources), which reads
/// every probe from inside and then runs `then`.
#[track_caller]
fn start_with(tag: &str, resources: Value, probes: &[Probe], then: &str) -> Started {
    let mut sb = Sandbox::new(tag);
    merge(&mut sb.config["linux"]["resources"], resources);
    sb.set_script(&format!("{}{then}", probe_script(probes)));
    let id = sb.new_id(tag);
    sb.create(&id, &[]).ok();
    let pid = sb.pid(&id);
    let dirs = all_dirs_of(pid);
    sb.rt(&["start", &id]).ok();
    let probes_file = sb.rootfs.join("tmp/probes");
    wait_until("the container's probes", SETTLE_TIMEOUT, || {
        probes_file.exists()
    });
    let inside = fs::read_to_string(&probes_file)
        .expect("read probes")
        .lines()
        .map(|l| l.trim_end_matches(';').to_string())
        .collect();
    Started {
        sb,
        id,
        pid,
        inside,
        dirs,
    }
}

/// Asserts each probe reads `expected` from inside and from the host.
#[track_caller]
fn assert_probes(started: &Started, probes: &[Probe], expected: &[&str]) {
    assert_eq!(probes.len(), expected.len());
    for (i, (probe, want)) in probes.iter().zip(expected).enumerate() {
        assert_eq!(
            started.inside.get(i).map(String::as_str),
            Some(*want),
            "{} read from inside the container",
            probe.home.inside(&probe.file)
        );
        // Multi-line files: the probe script joins the lines with ';'.
        assert_eq!(
            started.host(probe).replace('\n', ";"),
            *want,
            "{} read from the host",
            probe.file
        );
    }
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// A sandbox whose container uses its own absolute cgroupsPath `/berth-itest-cg-<id>/c`, so the
/// test knows exactly which directories (and parents) must not exist afterwards.
fn sandbox_with_own_path(tag: &str) -> (Sandbox, String, String) {
    let mut sb = Sandbox::new(tag);
    let id = sb.new_id(tag);
    let parent = format!("/berth-itest-cg-{id}");
    sb.config["linux"]["cgroupsPath"] = json!(format!("{parent}/c"));
    (sb, id, parent)
}

/// The directory `cgroup_path` names on every hierarchy.
fn dirs_named(cgroup_path: &str) -> Vec<PathBuf> {
    hierarchies()
        .iter()
        .map(|h| h.mount.join(cgroup_path.trim_start_matches('/')))
        .collect()
}

/// A create with `resources` fails with a one-line error naming `needle` and leaves nothing
/// behind, no cgroup directory either.
#[track_caller]
fn assert_refused(tag: &str, resources: Value, needle: &str) {
    let (mut sb, id, parent) = sandbox_with_own_path(tag);
    merge(&mut sb.config["linux"]["resources"], resources);
    sb.set_script("true");
    sb.create(&id, &[]).one_line_error(&[needle]);
    sb.assert_nothing_left(&id);
    assert_no_dirs(&dirs_named(&parent));
}

// ---------------------------------------------------------------------------------------------
// Each resource, read back from inside and from the host
// ---------------------------------------------------------------------------------------------

/// memory: limit, reservation and swap (v2: memory.swap.max is swap minus memory); v1 also
/// swappiness.
#[test]
fn memory_limits_read_back() {
    let Some(home) = home_or_skip("memory") else {
        return;
    };
    let mut resources =
        json!({"memory": {"limit": 64 * MIB, "reservation": 32 * MIB, "swap": 96 * MIB}});
    let (probes, expected): (Vec<Probe>, Vec<String>) = if home.v2 {
        (
            vec![
                Probe::new(&home, "memory.max"),
                Probe::new(&home, "memory.low"),
                Probe::new(&home, "memory.swap.max"),
            ],
            vec![
                (64 * MIB).to_string(),
                (32 * MIB).to_string(),
                (32 * MIB).to_string(),
            ],
        )
    } else {
        resources["memory"]["swappiness"] = json!(30);
        (
            vec![
                Probe::new(&home, "memory.limit_in_bytes"),
                Probe::new(&home, "memory.soft_limit_in_bytes"),
                Probe::new(&home, "memory.memsw.limit_in_bytes"),
                Probe::new(&home, "memory.swappiness"),
            ],
            vec![
                (64 * MIB).to_string(),
                (32 * MIB).to_string(),
                (96 * MIB).to_string(),
                "30".into(),
            ],
        )
    };
    let started = start_with("cgmem", resources, &probes, "exec sleep 1000");
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_probes(&started, &probes, &expected);
    started.delete_and_check();
}

/// cpu: shares (v2: weight 1 + (shares-2)*9999/262142), quota and period, burst.
#[test]
fn cpu_limits_read_back() {
    let Some(home) = home_or_skip("cpu") else {
        return;
    };
    let resources =
        json!({"cpu": {"shares": 512, "quota": 25000, "period": 50000, "burst": 10000}});
    let (probes, expected) = if home.v2 {
        (
            vec![
                Probe::new(&home, "cpu.weight"),
                Probe::new(&home, "cpu.max"),
                Probe::new(&home, "cpu.max.burst"),
            ],
            // 1 + (510 * 9999) / 262142 = 1 + 19
            vec!["20", "25000 50000", "10000"],
        )
    } else {
        (
            vec![
                Probe::new(&home, "cpu.shares"),
                Probe::new(&home, "cpu.cfs_quota_us"),
                Probe::new(&home, "cpu.cfs_period_us"),
                Probe::new(&home, "cpu.cfs_burst_us"),
            ],
            vec!["512", "25000", "50000", "10000"],
        )
    };
    let started = start_with("cgcpu", resources, &probes, "exec sleep 1000");
    assert_probes(&started, &probes, &expected);
    started.delete_and_check();
}

/// cpuset: cpus and mems; the container's own affinity follows.
#[test]
fn cpuset_read_back_and_applies() {
    let Some(home) = home_or_skip("cpuset") else {
        return;
    };
    let last_cpu = std::thread::available_parallelism().map_or(1, |n| n.get()) - 1;
    let cpus = last_cpu.to_string();
    let probes = [
        Probe::new(&home, "cpuset.cpus"),
        Probe::new(&home, "cpuset.mems"),
    ];
    let started = start_with(
        "cgcpuset",
        json!({"cpu": {"cpus": cpus, "mems": "0"}}),
        &probes,
        "grep Cpus_allowed_list /proc/self/status > /tmp/affinity; exec sleep 1000",
    );
    assert_probes(&started, &probes, &[&cpus, "0"]);
    let affinity = started.sb.wait_rootfs_file("/tmp/affinity");
    assert_eq!(
        affinity.split_whitespace().last(),
        Some(cpus.as_str()),
        "the container's CPU affinity: {affinity}"
    );
    started.delete_and_check();
}

/// pids: pids.max is set, and a fork bomb is capped by it: forks past the limit fail, the
/// kernel counts them in pids.events, and the count stays at the limit.
#[test]
fn pids_limit_caps_a_fork_bomb() {
    let Some(home) = home_or_skip("pids") else {
        return;
    };
    let probes = [Probe::new(&home, "pids.max")];
    // A subshell forks up to 60 sleeps against a limit of 16; ash exits on the first failed
    // fork, leaving init + 14 sleeps. Only builtins are used afterwards (`read`, `echo`).
    let bomb = format!(
        "(i=0; while [ $i -lt 60 ]; do sleep 1000 & i=$((i+1)); done) 2>/tmp/fork-errors; \
         read n < {}; echo $n > /tmp/count; exec sleep 1000",
        home.inside("pids.current")
    );
    let started = start_with("cgpids", json!({"pids": {"limit": 16}}), &probes, &bomb);
    assert_probes(&started, &probes, &["16"]);
    let count = started.sb.wait_rootfs_file("/tmp/count");
    assert_eq!(
        count.trim(),
        "15",
        "pids.current read from inside after the bomb"
    );
    let current = started.host(&Probe::new(&home, "pids.current"));
    assert_eq!(current, "15", "pids.current from the host");
    let events = started.host(&Probe::new(&home, "pids.events"));
    assert!(
        events
            .lines()
            .any(|l| l.starts_with("max ") && l != "max 0"),
        "pids.events should count refused forks: {events}"
    );
    let errors = fs::read_to_string(started.sb.rootfs.join("tmp/fork-errors")).unwrap_or_default();
    assert!(
        errors.to_lowercase().contains("fork"),
        "the shell should report a failed fork: {errors:?}"
    );
    started.delete_and_check();
}

/// hugepageLimits: on this hybrid host hugetlb is only on cgroup2 (hugetlb.2MB.max), on v1
/// hosts it is hugetlb.2MB.limit_in_bytes.
#[test]
fn hugetlb_limit_read_back() {
    let Some(home) = home_or_skip("hugetlb") else {
        return;
    };
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        eprintln!("skipped: no 2MB huge pages on this kernel");
        return;
    }
    let file = if home.v2 {
        "hugetlb.2MB.max"
    } else {
        "hugetlb.2MB.limit_in_bytes"
    };
    let probes = [Probe::new(&home, file)];
    let started = start_with(
        "cghuge",
        json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MIB}]}),
        &probes,
        "exec sleep 1000",
    );
    assert_probes(&started, &probes, &[&(4 * MIB).to_string()]);
    started.delete_and_check();
}

/// The major:minor of a block device of this machine (throttles need a real disk).
pub(crate) fn some_block_device() -> Option<String> {
    let mut names: Vec<_> = fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    names
        .iter()
        .find_map(|p| fs::read_to_string(p.join("dev")).ok())
        .map(|d| d.trim().to_string())
}

/// blockIO: weight (v2: io.bfq.weight raw or io.weight converted) and throttles (v2: io.max).
#[test]
fn blkio_limits_read_back() {
    let Some(home) = home_of("blkio").or_else(|| home_of("io")) else {
        eprintln!("skipped: no blkio or io controller on this host");
        return;
    };
    let Some(device) = some_block_device() else {
        eprintln!("skipped: no block device");
        return;
    };
    let (major, minor) = device.split_once(':').expect("major:minor");
    let (major, minor): (i64, i64) = (major.parse().expect("major"), minor.parse().expect("minor"));
    let resources = json!({"blockIO": {
        "weight": 300,
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": MIB}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}],
    }});
    let (probes, expected): (Vec<Probe>, Vec<String>) = if home.v2 {
        (
            vec![Probe::new(&home, "io.max")],
            vec![format!("{device} rbps={MIB} wbps=max riops=max wiops=100")],
        )
    } else {
        (
            vec![
                Probe::new(&home, "blkio.throttle.read_bps_device"),
                Probe::new(&home, "blkio.throttle.write_iops_device"),
            ],
            vec![format!("{device} {MIB}"), format!("{device} 100")],
        )
    };
    let started = start_with("cgblkio", resources, &probes, "exec sleep 1000");
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_probes(&started, &probes, &expected);
    let dir = home.dir_of(started.pid);
    let (file, want) = weight_300_file(&home, &dir);
    let host = read_trimmed(&dir.join(file));
    assert_eq!(host.lines().next(), Some(want), "{file} from the host");
    assert_eq!(started.exec_read(&home, file), host, "{file} from inside");
    started.delete_and_check();
}

/// The file a blkio weight of 300 lands in and its first line. BFQ's file takes the blkio value
/// as is; io.weight gets the converted one, 1 + (300-10)*9999/990 = 2930. Which file exists
/// depends on the kernel's I/O schedulers.
fn weight_300_file(home: &Hierarchy, dir: &Path) -> (&'static str, &'static str) {
    let candidates: &[(&'static str, &'static str)] = if home.v2 {
        &[
            ("io.bfq.weight", "default 300"),
            ("io.weight", "default 2930"),
        ]
    } else {
        &[("blkio.bfq.weight", "300"), ("blkio.weight", "300")]
    };
    *candidates
        .iter()
        .find(|(f, _)| dir.join(f).exists())
        .expect("a weight file (berth accepted the weight, so one must exist)")
}

/// The major:minor of a disk whose I/O scheduler is BFQ: per-device weights need one.
fn bfq_disk() -> Option<String> {
    let mut disks: Vec<PathBuf> = fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    disks.sort();
    disks
        .iter()
        .find(|d| fs::read_to_string(d.join("queue/scheduler")).is_ok_and(|s| s.contains("[bfq]")))
        .and_then(|d| fs::read_to_string(d.join("dev")).ok())
        .map(|d| d.trim().to_string())
}

/// blockIO under BFQ: weight and weightDevice land in BFQ's files, read back from the host and
/// inside (v1: blkio.bfq.weight and blkio.bfq.weight_device; v2: io.bfq.weight, the default and
/// a `MAJ:MIN weight` line). leafWeight (CFQ's, gone since Linux 5.0) is refused in one line
/// at create, and by `update`, which leaves the weights as they were.
#[test]
fn blkio_bfq_weights_land_on_a_bfq_disk() {
    const REQUIRE: &str = "BERTH_TEST_REQUIRE_BFQ";
    let home = home_of("blkio").or_else(|| home_of("io"));
    if !present_or_skip(
        home.is_some(),
        REQUIRE,
        "no blkio or io controller on this host",
    ) {
        return;
    }
    let disk = bfq_disk();
    if !present_or_skip(
        disk.is_some(),
        REQUIRE,
        "no block device with the BFQ scheduler",
    ) {
        return;
    }
    let (home, disk) = (home.unwrap(), disk.unwrap());
    let (major, minor) = disk.split_once(':').expect("major:minor");
    let (major, minor): (i64, i64) = (major.parse().expect("major"), minor.parse().expect("minor"));
    let weights = json!({"blockIO": {
        "weight": 300,
        "weightDevice": [{"major": major, "minor": minor, "weight": 500}],
    }});
    let device_lines = format!("default 300;{disk} 500");
    let (probes, expected): (Vec<Probe>, Vec<&str>) = if home.v2 {
        (
            vec![Probe::new(&home, "io.bfq.weight")],
            vec![&device_lines],
        )
    } else {
        (
            vec![
                Probe::new(&home, "blkio.bfq.weight"),
                Probe::new(&home, "blkio.bfq.weight_device"),
            ],
            vec!["300", &device_lines],
        )
    };
    let started = start_with("cgbfq", weights, &probes, "exec sleep 1000");
    assert_probes(&started, &probes, &expected);

    if home.mount.join("blkio.leaf_weight").exists() {
        eprintln!("leafWeight not checked: this kernel has CFQ's leaf weights");
    } else {
        let update = started.sb.dir.join("leaf.json");
        let leaf = json!({"blockIO": {"weight": 400, "leafWeight": 400}});
        fs::write(&update, leaf.to_string()).expect("write the update");
        started
            .sb
            .rt(&["update", "-r", &update.display().to_string(), &started.id])
            .one_line_error(&["leaf"]);
        for (probe, want) in probes.iter().zip(&expected) {
            let host = started.host(probe).replace('\n', ";");
            assert_eq!(host, *want, "{} after the refused update", probe.file);
        }
        assert_refused("cgleaf", leaf, "leaf");
    }
    started.delete_and_check();
}

/// `unified`: raw v2 keys are written on cgroup2; on a hybrid host a key of a controller that
/// lives on v1 is refused with a one-line error and nothing left behind.
#[test]
fn unified_keys_follow_the_layout() {
    let Some(v2) = unified() else {
        eprintln!("skipped: no cgroup2 hierarchy");
        return;
    };
    if pure_v2() {
        let probes = [Probe::new(&v2, "memory.high")];
        let started = start_with(
            "cgunified",
            json!({"unified": {"memory.high": (48 * MIB).to_string()}}),
            &probes,
            "exec sleep 1000",
        );
        assert_probes(&started, &probes, &[&(48 * MIB).to_string()]);
        started.delete_and_check();
        return;
    }
    // Hybrid: memory is a v1 controller here.
    assert_refused(
        "cgunifiedbad",
        json!({"unified": {"memory.high": "50331648"}}),
        "memory.high",
    );
    // A key of a controller that is on cgroup2 here is written.
    if home_of("hugetlb").is_some_and(|h| h.v2)
        && Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists()
    {
        let probes = [Probe::new(&v2, "hugetlb.2MB.max")];
        let started = start_with(
            "cgunified",
            json!({"unified": {"hugetlb.2MB.max": (6 * MIB).to_string()}}),
            &probes,
            "exec sleep 1000",
        );
        assert_probes(&started, &probes, &[&(6 * MIB).to_string()]);
        started.delete_and_check();
    }
}

/// The v1 hierarchy of `controller`, if it has one (net_cls and net_prio have no v2 files).
fn v1_home(controller: &str) -> Option<Hierarchy> {
    home_of(controller).filter(|h| !h.v2)
}

/// network: classID lands in net_cls.classid, priorities in net_prio.ifpriomap (which lists the
/// interfaces of the host's initial network namespace: `lo 5` for the host's lo), read back
/// from the host and inside where v1 net_cls and net_prio are mounted; elsewhere (cgroup v2, a
/// hybrid host without them) each is refused in one line naming its controller.
#[test]
fn network_class_id_and_priorities_or_clear_refusal() {
    const REQUIRE: &str = "BERTH_TEST_REQUIRE_NET_CLS";
    let class_id = json!({"network": {"classID": 1048577}});
    match v1_home("net_cls") {
        Some(home) => {
            let probes = [Probe::new(&home, "net_cls.classid")];
            let started = start_with("cgnetcls", class_id, &probes, "exec sleep 1000");
            assert_probes(&started, &probes, &["1048577"]);
            started.delete_and_check();
        }
        None => {
            assert_not_required(REQUIRE, "net_cls is not mounted as cgroup v1");
            assert_refused("cgnetcls", class_id, "net_cls");
        }
    }
    let priorities = json!({"network": {"priorities": [{"name": "lo", "priority": 5}]}});
    match v1_home("net_prio") {
        Some(home) => {
            let probe = Probe::new(&home, "net_prio.ifpriomap");
            let started = start_with(
                "cgnetprio",
                priorities,
                std::slice::from_ref(&probe),
                "exec sleep 1000",
            );
            let host = started.host(&probe);
            assert!(
                host.lines().any(|l| l == "lo 5"),
                "net_prio.ifpriomap from the host: {host:?}"
            );
            let inside = started.inside.first().map_or("", String::as_str);
            assert!(
                inside.split(';').any(|l| l == "lo 5"),
                "net_prio.ifpriomap from inside: {inside:?}"
            );
            started.delete_and_check();
        }
        None => {
            assert_not_required(REQUIRE, "net_prio is not mounted as cgroup v1");
            assert_refused("cgnetprio", priorities, "net_prio");
        }
    }
}

/// The first RDMA device of the host, e.g. the VM runs' soft-RoCE rxe0.
fn some_rdma_device() -> Option<String> {
    let mut names: Vec<String> = fs::read_dir("/sys/class/infiniband")
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().next()
}

/// The line of `device` in an rdma.max text (lines joined by '\n' or, from inside, ';'),
/// without the kernel's trailing blank.
fn rdma_line<'a>(text: &'a str, device: &str) -> Option<&'a str> {
    text.split(['\n', ';'])
        .map(str::trim)
        .find(|l| l.split_whitespace().next() == Some(device))
}

/// rdma: hcaHandles and hcaObjects for a real RDMA device land in rdma.max, read from the host
/// and inside; `update -r` changes them live, keeping the limit the update does not name.
#[test]
fn rdma_limits_read_back_and_update() {
    const REQUIRE: &str = "BERTH_TEST_REQUIRE_RDMA";
    let device = some_rdma_device();
    if !present_or_skip(device.is_some(), REQUIRE, "no rdma device") {
        return;
    }
    let home = home_of("rdma");
    if !present_or_skip(home.is_some(), REQUIRE, "no rdma controller on this host") {
        return;
    }
    let (device, home) = (device.unwrap(), home.unwrap());
    let probes = [Probe::new(&home, "rdma.max")];
    let started = start_with(
        "cgrdma",
        json!({"rdma": {(device.clone()): {"hcaHandles": 2, "hcaObjects": 100}}}),
        &probes,
        "exec sleep 1000",
    );
    let want = format!("{device} hca_handle=2 hca_object=100");
    let inside = started.inside.first().map_or("", String::as_str);
    assert_eq!(
        rdma_line(inside, &device),
        Some(want.as_str()),
        "rdma.max from inside"
    );
    let host = started.host(&probes[0]);
    assert_eq!(
        rdma_line(&host, &device),
        Some(want.as_str()),
        "rdma.max from the host"
    );

    let update = started.sb.dir.join("rdma-update.json");
    fs::write(
        &update,
        json!({"rdma": {(device.clone()): {"hcaHandles": 3}}}).to_string(),
    )
    .expect("write the update");
    started
        .sb
        .rt(&["update", "-r", &update.display().to_string(), &started.id])
        .ok();
    let want = format!("{device} hca_handle=3 hca_object=100");
    let host = started.host(&probes[0]);
    assert_eq!(
        rdma_line(&host, &device),
        Some(want.as_str()),
        "rdma.max after update"
    );
    let inside = started.exec_read(&home, "rdma.max");
    assert_eq!(
        rdma_line(&inside, &device),
        Some(want.as_str()),
        "rdma.max inside after update"
    );
    started.delete_and_check();
}

/// A v1-only resource on a pure v2 host (swappiness) is refused, leaving nothing behind.
#[test]
fn v1_only_resource_is_refused_on_v2() {
    if !pure_v2() {
        eprintln!("skipped: only meaningful on a pure cgroup v2 host");
        return;
    }
    assert_refused(
        "cgswappiness",
        json!({"memory": {"limit": 64 * MIB, "swappiness": 10}}),
        "swappiness",
    );
}

// ---------------------------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------------------------

/// A device node the container gets (/dev/kmsg's numbers, under another name): char 1:11 is
/// not among the default allowed devices.
fn add_kmsg_node(sb: &mut Sandbox) {
    sb.config["linux"]["devices"] = json!([
        {"path": "/dev/testkmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o620, "uid": 0, "gid": 0}
    ]);
}

/// Opens both the extra node and /dev/null for writing, printing `name=ok|denied`.
const OPEN_BOTH: &str = "for d in testkmsg null; do \
     if (: > /dev/$d) 2>/dev/null; then echo $d=ok; else echo $d=denied; fi; done > /tmp/opens.tmp; \
     mv /tmp/opens.tmp /tmp/opens; exec sleep 1000";

/// Runs a container with the kmsg node and `rules`, returns what it could open.
fn opens_with(tag: &str, rules: Value) -> (Sandbox, String, String) {
    let mut sb = Sandbox::new(tag);
    add_kmsg_node(&mut sb);
    sb.config["linux"]["resources"]["devices"] = rules;
    sb.set_script(OPEN_BOTH);
    let id = sb.new_id(tag);
    sb.create(&id, &[]).ok();
    sb.rt(&["start", &id]).ok();
    let path = sb.rootfs.join("tmp/opens");
    wait_until("the device opens", SETTLE_TIMEOUT, || path.exists());
    let opens = fs::read_to_string(&path).expect("read opens");
    (sb, id, opens)
}

/// Device rules: with the default deny-all, a device outside the defaults cannot be opened
/// while /dev/null can; an explicit allow rule makes it openable.
#[test]
fn denied_device_cannot_be_opened_allowed_one_can() {
    let deny_all = json!([{"allow": false, "access": "rwm"}]);
    let (sb, id, opens) = opens_with("cgdevdeny", deny_all);
    assert_eq!(opens, "testkmsg=denied\nnull=ok\n");
    if let Some(home) = home_of("devices").filter(|h| !h.v2) {
        let list = read_trimmed(&home.dir_of(sb.pid(&id)).join("devices.list"));
        assert!(list.contains("c 1:3 rwm"), "devices.list: {list}");
        assert!(!list.contains("c 1:11"), "devices.list: {list}");
    }
    sb.rt(&["delete", "--force", &id]).ok();

    let allow_kmsg = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}
    ]);
    let (sb, id, opens) = opens_with("cgdevallow", allow_kmsg);
    assert_eq!(opens, "testkmsg=ok\nnull=ok\n");
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
}

// ---------------------------------------------------------------------------------------------
// OOM, pause/resume, update, ps, kill --all, exec, delete
// ---------------------------------------------------------------------------------------------

/// A process exceeding the memory limit is OOM-killed, and `events` reports an oom event.
#[test]
fn oom_kill_is_reported_by_events() {
    oom_scenario(
        "cgoom",
        "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo $? > /tmp/dd; exec sleep 1000",
        |sb, _| {
            assert_eq!(
                sb.wait_rootfs_file("/tmp/dd").trim(),
                "137",
                "dd was SIGKILLed"
            )
        },
    );
}

/// When the OOM killer takes the init itself the container stops, and `events` still reports
/// the kill before it ends.
#[test]
fn oom_kill_of_the_init_is_reported_before_events_ends() {
    oom_scenario(
        "cgoominit",
        "exec dd if=/dev/zero of=/dev/null bs=64M count=1",
        |sb, id| sb.wait_status(id, "stopped"),
    );
}

/// A container limited to 32 MiB (no swap) waits for /tmp/go, then runs `hog`; `events` runs
/// from before the release; `killed` waits for the kill's visible effect.
fn oom_scenario(tag: &str, hog: &str, killed: impl FnOnce(&Sandbox, &str)) {
    let Some(home) = home_or_skip("memory") else {
        return;
    };
    let mut sb = Sandbox::new(tag);
    // memory+swap equal to memory: no swap to escape into.
    sb.config["linux"]["resources"]["memory"] = json!({"limit": 32 * MIB, "swap": 32 * MIB});
    sb.set_script(&format!(
        "while [ ! -e /tmp/go ]; do sleep 0.1; done; {hog}"
    ));
    let id = sb.new_id(tag);
    sb.create(&id, &[]).ok();
    let pid = sb.pid(&id);
    let dirs = all_dirs_of(pid);
    let memory_dir = home.dir_of(pid);
    sb.rt(&["start", &id]).ok();
    let events_path = sb.dir.join("events.out");
    let events_file = fs::File::create(&events_path).expect("create events file");
    let events = sb
        .cmd()
        .args(["events", "--interval", "200ms", &id])
        .stdout(Stdio::from(events_file))
        .timeout(Duration::from_secs(60))
        .spawn();
    // The first stats event means the OOM watcher is registered.
    wait_until("a first stats event", SETTLE_TIMEOUT, || {
        fs::read_to_string(&events_path).is_ok_and(|t| t.contains("\"stats\""))
    });
    fs::write(sb.rootfs.join("tmp/go"), "").expect("release the memory hog");
    killed(&sb, &id);
    wait_until("an oom event", SETTLE_TIMEOUT, || {
        fs::read_to_string(&events_path).is_ok_and(|t| t.contains("\"oom\""))
    });
    let text = fs::read_to_string(&events_path).expect("read events");
    let oom: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "oom")
        .expect("an oom event line");
    assert_eq!(oom["id"], json!(id));
    let counter = if home.v2 {
        read_trimmed(&memory_dir.join("memory.events"))
    } else {
        read_trimmed(&memory_dir.join("memory.oom_control"))
    };
    assert!(
        counter
            .lines()
            .any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0"),
        "the kernel's oom_kill counter: {counter}"
    );
    sb.rt(&["delete", "--force", &id]).ok();
    // events ends by itself once the container is stopped or gone.
    let out = events.wait();
    assert!(
        out.success(),
        "events exited {:?}: {}",
        out.code,
        out.stderr
    );
    sb.assert_nothing_left(&id);
    assert_no_dirs(&dirs);
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat; after the comm, state is index 0, so utime is index 11.
    let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).expect("utime");
    let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).expect("stime");
    utime + stime
}

/// CPU ticks the process used over `period`.
fn ticks_over(pid: i32, period: Duration) -> u64 {
    let before = cpu_ticks(pid);
    std::thread::sleep(period);
    cpu_ticks(pid) - before
}

/// `pause` stops a busy loop (its CPU time stops growing), `state` says paused, the freezer
/// says frozen; `resume` restarts it.
#[test]
fn pause_stops_a_busy_loop_and_resume_restarts_it() {
    let mut sb = Sandbox::new("cgpause");
    sb.set_script("while :; do :; done");
    let id = sb.new_id("cgpause");
    sb.create(&id, &[]).ok();
    let pid = sb.pid(&id);
    sb.rt(&["start", &id]).ok();
    let window = Duration::from_millis(500);
    assert!(ticks_over(pid, window) > 0, "the loop should be running");

    sb.rt(&["pause", &id]).ok();
    assert_eq!(sb.status(&id), "paused");
    assert_frozen(pid, true);
    assert_eq!(ticks_over(pid, window), 0, "a paused loop used CPU");
    sb.rt(&["pause", &id]).failed();

    sb.rt(&["resume", &id]).ok();
    assert_eq!(sb.status(&id), "running");
    assert_frozen(pid, false);
    assert!(ticks_over(pid, window) > 0, "the resumed loop should run");
    sb.rt(&["resume", &id]).failed();

    let dirs = all_dirs_of(pid);
    sb.rt(&["kill", &id, "KILL"]).ok();
    sb.wait_status(&id, "stopped");
    sb.rt(&["delete", &id]).ok();
    sb.assert_nothing_left(&id);
    assert_no_dirs(&dirs);
}

/// The freezer's state from the host: v1 freezer.state, v2 cgroup.freeze / cgroup.events.
#[track_caller]
fn assert_frozen(pid: i32, frozen: bool) {
    if let Some(home) = home_of("freezer").filter(|h| !h.v2) {
        let state = read_trimmed(&home.dir_of(pid).join("freezer.state"));
        assert_eq!(state, if frozen { "FROZEN" } else { "THAWED" });
    } else if let Some(v2) = unified() {
        let events = read_trimmed(&v2.dir_of(pid).join("cgroup.events"));
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        assert!(events.lines().any(|l| l == want), "cgroup.events: {events}");
    }
}

/// A running container to update: memory and pids limited, sleeping.
fn updatable(tag: &str) -> Started {
    let mut probes = Vec::new();
    if let Some(pids) = home_of("pids") {
        probes.push(Probe::new(&pids, "pids.max"));
    }
    start_with(
        tag,
        json!({"memory": {"limit": 64 * MIB}, "pids": {"limit": 30}}),
        &probes,
        "exec sleep 1000",
    )
}

/// `update` with runc's flags changes the live limits, seen from the host and from inside; the
/// container keeps running and a later update keeps what an earlier one set.
#[test]
fn update_flags_change_live_limits() {
    let (Some(memory), Some(pids), Some(cpu)) =
        (home_of("memory"), home_of("pids"), home_of("cpu"))
    else {
        eprintln!("skipped: memory, pids or cpu controller missing");
        return;
    };
    let started = updatable("cgupdate");
    assert_eq!(started.inside, ["30"]);
    started
        .sb
        .rt(&[
            "update",
            "--memory",
            "96m",
            "--memory-swap",
            "128m",
            "--memory-reservation",
            "48m",
            "--pids-limit",
            "40",
            "--cpu-shares",
            "512",
            "--cpu-quota",
            "30000",
            "--cpu-period",
            "60000",
            &started.id,
        ])
        .ok();
    let expect: Vec<(&Hierarchy, &str, String)> = if pure_v2() {
        vec![
            (&memory, "memory.max", (96 * MIB).to_string()),
            (&memory, "memory.swap.max", (32 * MIB).to_string()),
            (&memory, "memory.low", (48 * MIB).to_string()),
            (&pids, "pids.max", "40".into()),
            (&cpu, "cpu.weight", "20".into()),
            (&cpu, "cpu.max", "30000 60000".into()),
        ]
    } else {
        vec![
            (&memory, "memory.limit_in_bytes", (96 * MIB).to_string()),
            (
                &memory,
                "memory.memsw.limit_in_bytes",
                (128 * MIB).to_string(),
            ),
            (
                &memory,
                "memory.soft_limit_in_bytes",
                (48 * MIB).to_string(),
            ),
            (&pids, "pids.max", "40".into()),
            (&cpu, "cpu.shares", "512".into()),
            (&cpu, "cpu.cfs_quota_us", "30000".into()),
            (&cpu, "cpu.cfs_period_us", "60000".into()),
        ]
    };
    for (home, file, want) in &expect {
        assert_eq!(
            read_trimmed(&home.dir_of(started.pid).join(file)),
            *want,
            "{file} from the host after update"
        );
    }
    // From inside, through the container's cgroup namespace.
    assert_eq!(started.exec_read(&pids, "pids.max"), "40");
    let memory_file = if pure_v2() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    assert_eq!(
        started.exec_read(&memory, memory_file),
        (96 * MIB).to_string()
    );
    // The update is recorded: a flag-less update of another resource keeps the memory limit.
    started
        .sb
        .rt(&["update", "--pids-limit", "41", &started.id])
        .ok();
    assert_eq!(
        read_trimmed(&memory.dir_of(started.pid).join(memory_file)),
        (96 * MIB).to_string()
    );
    assert_eq!(started.sb.status(&started.id), "running");
    started.delete_and_check();
}

/// `update --cpuset-cpus --cpuset-mems --blkio-weight` change the live cpuset and I/O weight.
#[test]
fn update_cpuset_and_blkio_weight_flags() {
    let (Some(cpuset), Some(io)) = (
        home_of("cpuset"),
        home_of("blkio").or_else(|| home_of("io")),
    ) else {
        eprintln!("skipped: cpuset or blkio/io controller missing");
        return;
    };
    let started = updatable("cgupdatecpuset");
    started
        .sb
        .rt(&[
            "update",
            "--cpuset-cpus",
            "0",
            "--cpuset-mems",
            "0",
            "--blkio-weight",
            "300",
            &started.id,
        ])
        .ok();
    let cpuset_dir = cpuset.dir_of(started.pid);
    assert_eq!(read_trimmed(&cpuset_dir.join("cpuset.cpus")), "0");
    assert_eq!(read_trimmed(&cpuset_dir.join("cpuset.mems")), "0");
    assert_eq!(started.exec_read(&cpuset, "cpuset.cpus"), "0");
    let io_dir = io.dir_of(started.pid);
    let (file, want) = weight_300_file(&io, &io_dir);
    assert_eq!(
        read_trimmed(&io_dir.join(file)).lines().next(),
        Some(want),
        "{file} from the host after update"
    );
    started.delete_and_check();
}

/// `update -r FILE`, `--resources=FILE`, `--resources FILE` and `-r -` (stdin) apply
/// linux.resources JSON; bad JSON fails with a one-line error and changes nothing.
#[test]
fn update_resources_json_in_every_form() {
    let Some(pids) = home_or_skip("pids") else {
        return;
    };
    let started = updatable("cgupdatejson");
    let sb = &started.sb;
    let id = started.id.as_str();
    let pids_max = || read_trimmed(&pids.dir_of(started.pid).join("pids.max"));
    let file_with = |limit: i64| {
        let path = sb.dir.join(format!("resources-{limit}.json"));
        fs::write(&path, json!({"pids": {"limit": limit}}).to_string()).expect("write resources");
        path.display().to_string()
    };

    sb.rt(&["update", "-r", &file_with(31), id]).ok();
    assert_eq!(pids_max(), "31");
    sb.rt(&["update", &format!("--resources={}", file_with(32)), id])
        .ok();
    assert_eq!(pids_max(), "32");
    sb.rt(&["update", "--resources", &file_with(33), id]).ok();
    assert_eq!(pids_max(), "33");

    let stdin = fs::File::open(file_with(34)).expect("open resources");
    sb.cmd()
        .args(["update", "-r", "-", id])
        .stdin(Stdio::from(stdin))
        .output()
        .ok();
    assert_eq!(pids_max(), "34");
    assert_eq!(started.exec_read(&pids, "pids.max"), "34");

    let bad = sb.dir.join("bad.json");
    fs::write(&bad, "{\"pids\": ").expect("write bad json");
    sb.rt(&["update", "-r", &bad.display().to_string(), id])
        .one_line_error(&["bad.json"]);
    assert_eq!(pids_max(), "34");
    started.delete_and_check();
}

/// `ps --format json` lists exactly the processes of the container's cgroup; `kill --all`
/// signals every one of them.
#[test]
fn ps_lists_and_kill_all_reaches_every_process() {
    let started = start_with(
        "cgps",
        json!({}),
        &[],
        "sleep 1001 & sleep 1002 & echo started > /tmp/children; wait",
    );
    started.sb.wait_rootfs_file("/tmp/children");
    let primary = home_of("pids")
        .or_else(unified)
        .expect("a pids or cgroup2 hierarchy");
    let procs = read_trimmed(&primary.dir_of(started.pid).join("cgroup.procs"));
    let mut host: Vec<i64> = procs.lines().map(|l| l.parse().expect("pid")).collect();
    host.sort_unstable();
    assert_eq!(host.len(), 3, "init and two sleeps: {procs}");

    let out = started.sb.rt(&["ps", "--format", "json", &started.id]).ok();
    let mut listed: Vec<i64> = serde_json::from_str(&out.stdout).expect("ps json");
    listed.sort_unstable();
    assert_eq!(listed, host);

    // SIGTERM would not stop the init (pid 1 ignores it without a handler), but the sleeps die.
    started.sb.rt(&["kill", "--all", &started.id, "TERM"]).ok();
    wait_until("the sleeps to die", SETTLE_TIMEOUT, || {
        host.iter()
            .filter(|&&p| p != i64::from(started.pid))
            .all(|p| !Path::new(&format!("/proc/{p}")).exists() || is_zombie(*p))
    });
    started.delete_and_check();
}

fn is_zombie(pid: i64) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// An exec'd process joins the container's cgroup on every hierarchy.
#[test]
fn exec_joins_the_container_cgroup_everywhere() {
    let started = start_with("cgexec", json!({}), &[], "exec sleep 1000");
    let pid = exec_detached(&started, &[]);
    for h in hierarchies() {
        assert_eq!(
            h.dir_of(pid),
            h.dir_of(started.pid),
            "{}",
            h.mount.display()
        );
    }
    started.delete_and_check();
}

/// `exec -d --pid-file F ID sleep 1000`, returning the exec'd pid.
fn exec_detached(started: &Started, extra: &[&str]) -> i32 {
    let pid_file = started.sb.dir.join(format!("exec-{}.pid", extra.len()));
    let pid_file_arg = pid_file.display().to_string();
    let mut args = vec!["exec", "-d", "--pid-file", pid_file_arg.as_str()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&started.id, "sleep", "1000"]);
    started.sb.rt(&args).ok();
    fs::read_to_string(&pid_file)
        .expect("exec pid file")
        .trim()
        .parse()
        .expect("exec pid")
}

/// On cgroup2, when the container moved its init into a sub-cgroup and enabled a controller in
/// its own subtree_control (what systemd in a container does), the leaf can no longer take
/// processes: exec falls back to the `berth-exec` sub-cgroup instead of failing.
#[test]
fn exec_into_a_busy_v2_leaf_uses_a_sub_cgroup() {
    let Some(v2) = unified() else {
        eprintln!("skipped: no cgroup2 hierarchy");
        return;
    };
    // On a hybrid host whose v1 hierarchies took every controller, nothing can make it busy.
    let offered = read_trimmed(&v2.mount.join("cgroup.controllers"));
    if offered.is_empty() {
        eprintln!("skipped: cgroup2 has no controller here (all of them are on v1)");
        return;
    }
    let mut sb = Sandbox::new("cgexecbusy");
    // The cgroup mount writable, so the init can rearrange its own subtree.
    for mount in sb.config["mounts"].as_array_mut().expect("mounts") {
        if mount["type"] == "cgroup" {
            mount["options"] = json!(["nosuid", "noexec", "nodev", "relatime"]);
        }
    }
    let cg = v2.inside("");
    let cg = cg.trim_end_matches('/');
    sb.set_script(&format!(
        "mkdir {cg}/init && echo $$ > {cg}/init/cgroup.procs && \
         c=$(cut -d' ' -f1 {cg}/cgroup.controllers) && echo +$c > {cg}/cgroup.subtree_control && \
         cat {cg}/cgroup.subtree_control > /tmp/busy; exec sleep 1000"
    ));
    let id = sb.new_id("cgexecbusy");
    sb.create(&id, &[]).ok();
    let pid = sb.pid(&id);
    let leaf = v2.dir_of(pid);
    sb.rt(&["start", &id]).ok();
    let enabled = sb.wait_rootfs_file("/tmp/busy");
    assert!(
        !enabled.trim().is_empty(),
        "no controller enabled in the leaf"
    );
    assert_eq!(v2.dir_of(pid), leaf.join("init"));

    let started = Started {
        sb,
        id,
        pid,
        inside: Vec::new(),
        dirs: vec![leaf.clone()],
    };
    let exec_pid = exec_detached(&started, &[]);
    assert_eq!(v2.dir_of(exec_pid), leaf.join("berth-exec"));
    assert!(Path::new(&format!("/proc/{exec_pid}")).exists());
    let mut dirs = all_dirs_of(exec_pid);
    dirs.extend(started.dirs.iter().cloned());
    started.sb.rt(&["delete", "--force", &started.id]).ok();
    started.sb.assert_nothing_left(&started.id);
    assert_no_dirs(&dirs);
}

/// After `delete` no directory of the container is left on any hierarchy, including the
/// parent levels created for a nested cgroupsPath.
#[test]
fn delete_leaves_no_cgroup_directory() {
    let (mut sb, id, parent) = sandbox_with_own_path("cgdelete");
    sb.set_script("sleep 1000 & exec sleep 1000");
    sb.create(&id, &[]).ok();
    let pid = sb.pid(&id);
    let dirs = dirs_named(&format!("{parent}/c"));
    for (h, dir) in hierarchies().iter().zip(&dirs) {
        assert_eq!(
            &h.dir_of(pid),
            dir,
            "the container's cgroup on {}",
            h.mount.display()
        );
    }
    sb.rt(&["start", &id]).ok();
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
    assert_no_dirs(&dirs);
    assert_no_dirs(&dirs_named(&parent));
}

/// A create that fails after the cgroup was made (a bad limit) removes it again.
#[test]
fn failed_create_removes_its_cgroup() {
    let (mut sb, id, parent) = sandbox_with_own_path("cgbadlimit");
    // cpuset.cpus naming a CPU that does not exist: the kernel refuses the write.
    sb.config["linux"]["resources"]["cpu"] = json!({"cpus": "4095"});
    sb.set_script("true");
    let started = Instant::now();
    sb.create(&id, &[]).one_line_error(&["cpuset"]);
    assert!(started.elapsed() < SETTLE_TIMEOUT);
    sb.assert_nothing_left(&id);
    assert_no_dirs(&dirs_named(&parent));
}
