//! Root tests: real cgroups on the host's layout (hybrid on the dev
//! machines, pure v2 in the VM of integration/cgroups-vm). Each test makes
//! its own cgroup below the test's own (a relative cgroupsPath), moves real
//! processes in and reads the values back from cgroupfs. Guards kill the
//! processes and remove the cgroups even when an assertion fails.

use berth_cgroups::devices::{device_program, effective_rules};
use berth_cgroups::{bpf, CgroupConfig, Error, Layout, Manager};
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources,
    LinuxResourcesBuilder, LinuxThrottleDeviceBuilder,
};
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MIB: i64 = 1 << 20;

/// A cgroup that is destroyed when the test ends, however it ends.
struct TestCgroup {
    manager: Manager,
    /// Every directory that must be gone after destroy.
    dirs: Vec<PathBuf>,
}

impl TestCgroup {
    fn new(name: &str) -> TestCgroup {
        Self::with_path(None, name)
    }

    fn with_path(path: Option<&str>, name: &str) -> TestCgroup {
        assert!(
            rustix::process::geteuid().is_root(),
            "the cgroup root tests need root"
        );
        let id = unique_id(name);
        let cfg = CgroupConfig {
            cgroups_path: path,
            container_id: &id,
            systemd: false,
        };
        let mut manager = Manager::new(&cfg).expect("resolve cgroup");
        manager.create().expect("create cgroup");
        let dirs = manager
            .v1_dirs()
            .iter()
            .map(|d| d.dir.clone())
            .chain(manager.unified_dir().map(Path::to_owned))
            .collect();
        TestCgroup { manager, dirs }
    }

    fn dir(&self, controller: &'static str) -> PathBuf {
        self.manager
            .controller_dir(controller)
            .unwrap_or_else(|| panic!("no {controller} controller"))
            .to_owned()
    }

    /// Whether a controller's files are the v2 ones.
    fn on_v2(&self, controller: &str) -> bool {
        self.manager
            .v2_controllers()
            .iter()
            .any(|c| c == controller)
            && !self
                .manager
                .v1_dirs()
                .iter()
                .any(|d| d.controllers.iter().any(|c| c == controller))
    }

    fn apply(&self, resources: &LinuxResources) {
        self.manager.apply(resources).expect("apply resources");
    }

    fn destroy_and_check(mut self) {
        self.manager.destroy().expect("destroy");
        for dir in &self.dirs {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = self.manager.destroy();
    }
}

fn unique_id(name: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "berth-test-{}-{}-{name}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A `sh -c` process held on `read` until released, so it can be moved
/// into the cgroup before its script runs (as the runtime does with init).
struct HeldProcess {
    child: Child,
}

impl HeldProcess {
    fn spawn(script: &str) -> HeldProcess {
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("read _go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        HeldProcess { child }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn release(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("release");
        stdin.flush().expect("flush");
    }

    fn wait_output(mut self) -> std::process::Output {
        drop(self.child.stdin.take());
        let child = std::mem::replace(&mut self.child, dummy_child());
        child.wait_with_output().expect("wait")
    }

    fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A finished child standing in for one moved out of a HeldProcess.
fn dummy_child() -> Child {
    let mut child = Command::new("/bin/true").spawn().expect("spawn true");
    let _ = child.wait();
    child
}

impl Drop for HeldProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}/{file}: {e}", dir.display()))
        .trim()
        .to_owned()
}

/// utime + stime of a process, in ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_comm = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn proc_state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    stat[stat.rfind(')').expect("comm") + 2..]
        .chars()
        .next()
        .unwrap()
}

#[test]
fn layout_matches_the_host() {
    let cg = TestCgroup::new("layout");
    let root_is_v2 = berth_cgroups::layout::is_cgroup2(Path::new("/sys/fs/cgroup"));
    assert_eq!(cg.manager.layout() == Layout::Unified, root_is_v2);
    println!(
        "layout {:?}, v2 controllers {:?}",
        cg.manager.layout(),
        cg.manager.v2_controllers()
    );
    // A relative path lands below the test's own cgroup on every hierarchy.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    if let Some(unified) = cg.manager.unified_dir() {
        let own_v2 = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        assert!(
            unified
                .to_string_lossy()
                .contains(own_v2.trim_end_matches('/')),
            "{} not below {own_v2}",
            unified.display()
        );
    }
    cg.destroy_and_check();
}

#[test]
fn memory_limits_are_written_and_read_back() {
    let cg = TestCgroup::new("memory");
    let mut sleeper = HeldProcess::spawn("exec sleep 1000");
    cg.manager.add_process(sleeper.pid()).unwrap();
    sleeper.release();
    let memory = LinuxMemoryBuilder::default()
        .limit(64 * MIB)
        .swap(128 * MIB)
        .reservation(32 * MIB)
        .build()
        .unwrap();
    cg.apply(
        &LinuxResourcesBuilder::default()
            .memory(memory)
            .build()
            .unwrap(),
    );
    let dir = cg.dir("memory");
    if cg.on_v2("memory") {
        assert_eq!(read(&dir, "memory.max"), (64 * MIB).to_string());
        assert_eq!(read(&dir, "memory.swap.max"), (64 * MIB).to_string());
        assert_eq!(read(&dir, "memory.low"), (32 * MIB).to_string());
    } else {
        assert_eq!(read(&dir, "memory.limit_in_bytes"), (64 * MIB).to_string());
        assert_eq!(
            read(&dir, "memory.memsw.limit_in_bytes"),
            (128 * MIB).to_string()
        );
        assert_eq!(
            read(&dir, "memory.soft_limit_in_bytes"),
            (32 * MIB).to_string()
        );
    }
    // update: lower, then unlimited.
    let lower = LinuxMemoryBuilder::default()
        .limit(48 * MIB)
        .swap(48 * MIB)
        .build()
        .unwrap();
    cg.apply(
        &LinuxResourcesBuilder::default()
            .memory(lower)
            .build()
            .unwrap(),
    );
    let unlimited = LinuxMemoryBuilder::default().limit(-1).build().unwrap();
    if cg.on_v2("memory") {
        assert_eq!(read(&dir, "memory.max"), (48 * MIB).to_string());
        assert_eq!(read(&dir, "memory.swap.max"), "0");
        cg.apply(
            &LinuxResourcesBuilder::default()
                .memory(unlimited)
                .build()
                .unwrap(),
        );
        assert_eq!(read(&dir, "memory.max"), "max");
        assert_eq!(read(&dir, "memory.swap.max"), "max");
    } else {
        assert_eq!(read(&dir, "memory.limit_in_bytes"), (48 * MIB).to_string());
        assert_eq!(
            read(&dir, "memory.memsw.limit_in_bytes"),
            (48 * MIB).to_string()
        );
        cg.apply(
            &LinuxResourcesBuilder::default()
                .memory(unlimited)
                .build()
                .unwrap(),
        );
        let max: u64 = read(&dir, "memory.limit_in_bytes").parse().unwrap();
        assert!(max > 1 << 60, "unlimited reads as a huge number, got {max}");
    }
    // checkBeforeUpdate refuses a limit under the current usage.
    std::thread::sleep(Duration::from_millis(100));
    let tiny = LinuxMemoryBuilder::default()
        .limit(4096)
        .check_before_update(true)
        .build()
        .unwrap();
    let err = cg
        .manager
        .apply(
            &LinuxResourcesBuilder::default()
                .memory(tiny)
                .build()
                .unwrap(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::MemoryBelowUsage { .. }), "{err}");
    drop(sleeper);
    cg.destroy_and_check();
}

#[test]
fn cpu_and_cpuset_limits_are_written_and_read_back() {
    let cg = TestCgroup::new("cpu");
    let cpu = LinuxCpuBuilder::default()
        .shares(512u64)
        .quota(50_000i64)
        .period(100_000u64)
        .cpus("0")
        .mems("0")
        .build()
        .unwrap();
    cg.apply(&LinuxResourcesBuilder::default().cpu(cpu).build().unwrap());
    let dir = cg.dir("cpu");
    if cg.on_v2("cpu") {
        assert_eq!(read(&dir, "cpu.weight"), "20");
        assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    } else {
        assert_eq!(read(&dir, "cpu.shares"), "512");
        assert_eq!(read(&dir, "cpu.cfs_quota_us"), "50000");
        assert_eq!(read(&dir, "cpu.cfs_period_us"), "100000");
    }
    let cpuset = cg.dir("cpuset");
    assert_eq!(read(&cpuset, "cpuset.cpus"), "0");
    assert_eq!(read(&cpuset, "cpuset.mems"), "0");
    // update only the period: the quota stays.
    let period = LinuxCpuBuilder::default()
        .period(200_000u64)
        .build()
        .unwrap();
    cg.apply(
        &LinuxResourcesBuilder::default()
            .cpu(period)
            .build()
            .unwrap(),
    );
    if cg.on_v2("cpu") {
        assert_eq!(read(&dir, "cpu.max"), "50000 200000");
    } else {
        assert_eq!(read(&dir, "cpu.cfs_period_us"), "200000");
        assert_eq!(read(&dir, "cpu.cfs_quota_us"), "50000");
    }
    cg.destroy_and_check();
}

#[test]
fn cpuset_of_a_new_v1_cgroup_is_usable() {
    let cg = TestCgroup::new("cpuset-inherit");
    let cpuset = cg.dir("cpuset");
    assert!(!read(&cpuset, "cpuset.cpus").is_empty() || cg.on_v2("cpuset"));
    let mut p = HeldProcess::spawn("exit 0");
    cg.manager.add_process(p.pid()).unwrap();
    p.release();
    assert!(p.wait_timeout(Duration::from_secs(5)).unwrap().success());
    drop(p);
    cg.destroy_and_check();
}

#[test]
fn pids_limit_caps_a_fork_bomb() {
    let cg = TestCgroup::new("pids");
    let pids = LinuxPidsBuilder::default().limit(8i64).build().unwrap();
    cg.apply(&LinuxResourcesBuilder::default().pids(pids).build().unwrap());
    let dir = cg.dir("pids");
    assert_eq!(read(&dir, "pids.max"), "8");
    let mut bomb =
        HeldProcess::spawn("i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; sleep 30");
    cg.manager.add_process(bomb.pid()).unwrap();
    bomb.release();
    std::thread::sleep(Duration::from_millis(800));
    let count = cg.manager.pids().unwrap().len();
    assert!(count <= 8, "{count} processes despite pids.max 8");
    assert!(count >= 2, "the bomb did not run ({count} processes)");
    let events = std::fs::read_to_string(dir.join("pids.events")).unwrap_or_default();
    println!("pids in cgroup: {count}; pids.events: {}", events.trim());
    drop(bomb);
    cg.destroy_and_check();
}

/// The first real block device (not loop, not zram), for io throttling.
fn block_device() -> Option<(i64, i64)> {
    let entries = std::fs::read_dir("/sys/block").ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("loop") || name.starts_with("zram") {
            continue;
        }
        let dev = std::fs::read_to_string(entry.path().join("dev")).ok()?;
        let (major, minor) = dev.trim().split_once(':')?;
        return Some((major.parse().ok()?, minor.parse().ok()?));
    }
    None
}

#[test]
fn blkio_throttles_are_written_and_read_back() {
    let Some((major, minor)) = block_device() else {
        println!("no block device: blkio throttle test has nothing to throttle");
        return;
    };
    let cg = TestCgroup::new("blkio");
    let throttle = |rate: u64| {
        LinuxThrottleDeviceBuilder::default()
            .major(major)
            .minor(minor)
            .rate(rate)
            .build()
            .unwrap()
    };
    let blkio = LinuxBlockIoBuilder::default()
        .throttle_read_bps_device(vec![throttle(1_048_576)])
        .throttle_write_iops_device(vec![throttle(100)])
        .build()
        .unwrap();
    cg.apply(
        &LinuxResourcesBuilder::default()
            .block_io(blkio)
            .build()
            .unwrap(),
    );
    let dev = format!("{major}:{minor}");
    if cg.on_v2("io") {
        let dir = cg.dir("io");
        let max = read(&dir, "io.max");
        assert!(
            max.contains(&format!("{dev} rbps=1048576")),
            "io.max: {max}"
        );
        assert!(max.contains("wiops=100"), "io.max: {max}");
    } else {
        let dir = cg.dir("blkio");
        assert_eq!(
            read(&dir, "blkio.throttle.read_bps_device"),
            format!("{dev} 1048576")
        );
        assert_eq!(
            read(&dir, "blkio.throttle.write_iops_device"),
            format!("{dev} 100")
        );
    }
    cg.destroy_and_check();
}

#[test]
fn hugetlb_limits_are_written_and_read_back() {
    let cg = TestCgroup::new("hugetlb");
    if cg.manager.controller_dir("hugetlb").is_none() {
        println!("hugetlb controller not available here");
        return;
    }
    let limit = LinuxHugepageLimitBuilder::default()
        .page_size("2MB")
        .limit(4 * 2 * MIB)
        .build()
        .unwrap();
    cg.apply(
        &LinuxResourcesBuilder::default()
            .hugepage_limits(vec![limit])
            .build()
            .unwrap(),
    );
    let dir = cg.dir("hugetlb");
    let file = if cg.on_v2("hugetlb") {
        "hugetlb.2MB.max"
    } else {
        "hugetlb.2MB.limit_in_bytes"
    };
    assert_eq!(read(&dir, file), (8 * MIB).to_string());
    cg.destroy_and_check();
}

#[test]
fn unified_keys_follow_the_layout() {
    let cg = TestCgroup::new("unified");
    let mut keys = HashMap::new();
    match cg.manager.layout() {
        Layout::Unified => {
            keys.insert("memory.high".to_owned(), (100 * MIB).to_string());
            cg.apply(
                &LinuxResourcesBuilder::default()
                    .unified(keys)
                    .build()
                    .unwrap(),
            );
            assert_eq!(
                read(&cg.dir("memory"), "memory.high"),
                (100 * MIB).to_string()
            );
        }
        Layout::Hybrid => {
            keys.insert("memory.high".to_owned(), "1".to_owned());
            let err = cg
                .manager
                .apply(
                    &LinuxResourcesBuilder::default()
                        .unified(keys)
                        .build()
                        .unwrap(),
                )
                .unwrap_err();
            assert!(matches!(err, Error::Unsupported { .. }), "{err}");
            if cg.on_v2("hugetlb") {
                let mut keys = HashMap::new();
                keys.insert("hugetlb.2MB.max".to_owned(), (2 * MIB).to_string());
                cg.apply(
                    &LinuxResourcesBuilder::default()
                        .unified(keys)
                        .build()
                        .unwrap(),
                );
                assert_eq!(
                    read(&cg.dir("hugetlb"), "hugetlb.2MB.max"),
                    (2 * MIB).to_string()
                );
            }
        }
        Layout::V1 => {
            keys.insert("memory.high".to_owned(), "1".to_owned());
            assert!(cg
                .manager
                .apply(
                    &LinuxResourcesBuilder::default()
                        .unified(keys)
                        .build()
                        .unwrap()
                )
                .is_err());
        }
    }
    let mut bad = HashMap::new();
    bad.insert("../escape".to_owned(), "1".to_owned());
    assert!(cg
        .manager
        .apply(
            &LinuxResourcesBuilder::default()
                .unified(bad)
                .build()
                .unwrap()
        )
        .is_err());
    cg.destroy_and_check();
}

fn deny_all_rule() -> oci_spec::runtime::LinuxDeviceCgroup {
    LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap()
}

/// Runs `script` inside the cgroup and returns whether it exited 0.
fn runs_ok_inside(cg: &TestCgroup, script: &str) -> bool {
    let mut p = HeldProcess::spawn(script);
    cg.manager.add_process(p.pid()).unwrap();
    p.release();
    let output = p.wait_output();
    output.status.success()
}

#[test]
fn device_rules_deny_and_allow() {
    let cg = TestCgroup::new("devices");
    let devices = vec![deny_all_rule()];
    cg.apply(
        &LinuxResourcesBuilder::default()
            .devices(devices)
            .build()
            .unwrap(),
    );
    // /dev/null is in the defaults, /dev/kmsg is not.
    assert!(runs_ok_inside(&cg, "exec 3</dev/null"));
    assert!(!runs_ok_inside(&cg, "exec 3</dev/kmsg"));
    // update: allow kmsg read-only.
    let kmsg = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(LinuxDeviceType::C)
        .major(1i64)
        .minor(11i64)
        .access("r")
        .build()
        .unwrap();
    cg.apply(
        &LinuxResourcesBuilder::default()
            .devices(vec![deny_all_rule(), kmsg])
            .build()
            .unwrap(),
    );
    assert!(runs_ok_inside(&cg, "exec 3</dev/kmsg"));
    assert!(!runs_ok_inside(&cg, "exec 3>/dev/kmsg"));
    cg.destroy_and_check();
}

/// The v2 eBPF device program on the cgroup2 hierarchy, also on a hybrid
/// host (where /sys/fs/cgroup/unified takes it next to the v1 rules).
#[test]
fn ebpf_device_program_is_enforced_and_replaced() {
    let cg = TestCgroup::new("ebpf");
    let Some(unified) = cg.manager.unified_dir().map(Path::to_owned) else {
        println!("no cgroup2 hierarchy: nothing to attach to");
        return;
    };
    let dir = std::fs::File::open(&unified).unwrap();
    let deny_kmsg = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .typ(LinuxDeviceType::C)
        .major(1i64)
        .minor(11i64)
        .access("rwm")
        .build()
        .unwrap();
    let rules = effective_rules(&[deny_kmsg]).unwrap();
    bpf::replace_device_program(dir.as_fd(), &device_program(&rules)).unwrap();
    assert_eq!(bpf::attached_device_programs(dir.as_fd()).unwrap().len(), 1);
    assert!(runs_ok_inside(&cg, "exec 3</dev/null"));
    assert!(!runs_ok_inside(&cg, "exec 3</dev/kmsg"));
    // Replacing with a deny-all program: one program, and the new rules.
    let rules = effective_rules(&[deny_all_rule()]).unwrap();
    bpf::replace_device_program(dir.as_fd(), &device_program(&rules)).unwrap();
    assert_eq!(bpf::attached_device_programs(dir.as_fd()).unwrap().len(), 1);
    assert!(runs_ok_inside(&cg, "exec 3</dev/zero"));
    assert!(!runs_ok_inside(&cg, "exec 3</dev/kmsg"));
    assert!(!runs_ok_inside(&cg, "exec 3</dev/tty0"));
    // And back to allow-everything.
    bpf::replace_device_program(dir.as_fd(), &device_program(&[])).unwrap();
    assert!(runs_ok_inside(&cg, "exec 3</dev/kmsg"));
    drop(dir);
    cg.destroy_and_check();
}

#[test]
fn freeze_stops_a_busy_loop_and_thaw_restarts_it() {
    let cg = TestCgroup::new("freeze");
    let mut busy = HeldProcess::spawn("while :; do :; done");
    cg.manager.add_process(busy.pid()).unwrap();
    busy.release();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!cg.manager.is_frozen().unwrap());
    cg.manager.freeze().unwrap();
    assert!(cg.manager.is_frozen().unwrap());
    let frozen_state = proc_state(busy.pid());
    let before = cpu_ticks(busy.pid());
    std::thread::sleep(Duration::from_millis(500));
    let after = cpu_ticks(busy.pid());
    println!("frozen: /proc state {frozen_state:?}, cpu ticks {before} -> {after}");
    assert_eq!(before, after, "a frozen loop kept using CPU");
    assert_ne!(frozen_state, 'R');
    cg.manager.thaw().unwrap();
    assert!(!cg.manager.is_frozen().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    let resumed = cpu_ticks(busy.pid());
    assert!(
        resumed > after,
        "the thawed loop did not run ({after} -> {resumed})"
    );
    drop(busy);
    cg.destroy_and_check();
}

#[test]
fn kill_all_reaches_every_process() {
    let cg = TestCgroup::new("killall");
    let mut held = HeldProcess::spawn("sleep 1000 & sleep 1000 & exec sleep 1000");
    cg.manager.add_process(held.pid()).unwrap();
    held.release();
    let deadline = Instant::now() + Duration::from_secs(5);
    while cg.manager.pids().unwrap().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(cg.manager.pids().unwrap().len(), 3);
    // kill_all must not resume a paused container by itself (v1 delivers
    // the signals on resume; v2 lets fatal ones through at once).
    cg.manager.freeze().unwrap();
    cg.manager.kill_all(libc::SIGTERM).unwrap();
    assert!(cg.manager.freeze_requested().unwrap());
    cg.manager.thaw().unwrap();
    assert!(!cg.manager.freeze_requested().unwrap());
    let status = held
        .wait_timeout(Duration::from_secs(5))
        .expect("SIGTERM ignored");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    // The two orphans (reparented away) went too.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cg.manager.pids().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(cg.manager.pids().unwrap().is_empty());
    drop(held);
    cg.destroy_and_check();
}

#[test]
fn destroy_kills_leftovers_and_removes_every_level() {
    let cg = TestCgroup::with_path(Some(&unique_id("parent/child")), "unused");
    let mut held = HeldProcess::spawn("exec sleep 1000");
    cg.manager.add_process(held.pid()).unwrap();
    held.release();
    let parents: Vec<PathBuf> = cg
        .dirs
        .iter()
        .map(|d| d.parent().unwrap().to_owned())
        .collect();
    assert!(parents.iter().all(|p| p.exists()));
    cg.destroy_and_check();
    for parent in parents {
        assert!(!parent.exists(), "parent {} left", parent.display());
    }
    let status = held
        .wait_timeout(Duration::from_secs(5))
        .expect("not killed");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

#[test]
fn exec_into_a_busy_v2_leaf_uses_a_sub_cgroup() {
    let cg = TestCgroup::new("exec-fallback");
    let Some(unified) = cg.manager.unified_dir().map(Path::to_owned) else {
        return;
    };
    let available = read(&unified, "cgroup.controllers");
    // Only a domain controller makes the leaf refuse processes: with just
    // threaded ones (cpu, cpuset, pids) it could still become a thread root.
    let threaded = ["cpu", "cpuset", "pids", "perf_event"];
    let Some(controller) = available.split_whitespace().find(|c| !threaded.contains(c)) else {
        println!("no domain controller on the v2 leaf: cannot make it busy");
        return;
    };
    std::fs::write(
        unified.join("cgroup.subtree_control"),
        format!("+{controller}"),
    )
    .unwrap();
    let mut held = HeldProcess::spawn("exec sleep 1000");
    cg.manager.add_process(held.pid()).unwrap();
    held.release();
    let sub = unified.join(berth_cgroups::EXEC_SUBCGROUP);
    assert!(read(&sub, "cgroup.procs").contains(&held.pid().to_string()));
    if cg.manager.layout() == Layout::Unified {
        assert_eq!(cg.manager.pids().unwrap(), vec![held.pid()]);
    }
    cg.destroy_and_check();
    assert!(held.wait_timeout(Duration::from_secs(5)).is_some());
}

#[test]
fn oom_kill_is_reported() {
    let cg = TestCgroup::new("oom");
    let memory = LinuxMemoryBuilder::default()
        .limit(16 * MIB)
        .swap(16 * MIB)
        .build()
        .unwrap();
    cg.apply(
        &LinuxResourcesBuilder::default()
            .memory(memory)
            .build()
            .unwrap(),
    );
    let mut watcher = cg.manager.oom_watcher().unwrap();
    assert_eq!(watcher.count(), 0);
    // tail keeps a line in memory, and /dev/zero has no newline.
    let mut hog = HeldProcess::spawn("exec tail /dev/zero");
    cg.manager.add_process(hog.pid()).unwrap();
    hog.release();
    let kills = watcher.wait(Some(Duration::from_secs(20))).unwrap();
    assert!(kills >= 1, "no OOM kill reported");
    let status = hog.wait_timeout(Duration::from_secs(5)).expect("hog alive");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(cg.manager.oom_kill_count().unwrap() >= 1);
    drop(hog);
    cg.destroy_and_check();
}

#[test]
fn stats_report_usage_in_runc_shape() {
    let cg = TestCgroup::new("stats");
    let pids = LinuxPidsBuilder::default().limit(20i64).build().unwrap();
    let memory = LinuxMemoryBuilder::default()
        .limit(256 * MIB)
        .build()
        .unwrap();
    cg.apply(
        &LinuxResourcesBuilder::default()
            .pids(pids)
            .memory(memory)
            .build()
            .unwrap(),
    );
    let mut held =
        HeldProcess::spawn("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 1000");
    cg.manager.add_process(held.pid()).unwrap();
    held.release();
    std::thread::sleep(Duration::from_millis(500));
    let stats = cg.manager.stats().unwrap();
    assert_eq!(stats.pids.current, 1);
    assert_eq!(stats.pids.limit, 20);
    assert_eq!(stats.memory.usage.limit, (256 * MIB) as u64);
    assert!(stats.memory.usage.usage > 0);
    assert!(stats.cpu.usage.total > 0, "cpu usage: {:?}", stats.cpu);
    let json = serde_json::to_value(&stats).unwrap();
    assert!(json["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    println!("{}", serde_json::to_string(&stats).unwrap());
    drop(held);
    cg.destroy_and_check();
}

#[test]
fn systemd_path_falls_back_to_cgroupfs_without_systemd() {
    if Path::new("/run/systemd/system").exists() {
        // With systemd the path is a scope to start over D-Bus, no fallback.
        let cfg = CgroupConfig {
            cgroups_path: Some("system.slice:berth:x"),
            container_id: "x",
            systemd: true,
        };
        let manager = Manager::new(&cfg).unwrap();
        assert!(manager.warnings().is_empty());
        let scope = manager.systemd_scope().expect("a systemd scope");
        assert_eq!(scope.unit, "berth-x.scope");
        assert!(!scope.started);
        return;
    }
    let id = unique_id("systemd");
    let path = format!("berth-test.slice:berth:{id}");
    let cfg = CgroupConfig {
        cgroups_path: Some(&path),
        container_id: &id,
        systemd: true,
    };
    let mut manager = Manager::new(&cfg).unwrap();
    assert_eq!(manager.warnings().len(), 1);
    let expected = format!("berth-test.slice/berth-{id}.scope");
    for dir in manager.v1_dirs() {
        assert!(dir.dir.ends_with(&expected), "{}", dir.dir.display());
    }
    manager.create().unwrap();
    let slice_dirs: Vec<PathBuf> = manager
        .v1_dirs()
        .iter()
        .map(|d| d.dir.parent().unwrap().to_owned())
        .collect();
    manager.destroy().unwrap();
    for dir in slice_dirs {
        assert!(!dir.exists(), "{} left", dir.display());
    }
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let cfg = CgroupConfig {
        cgroups_path: Some("a:b"),
        container_id: "x",
        systemd: true,
    };
    assert!(Manager::new(&cfg).is_err());
    let cg = TestCgroup::new("bad");
    let bad_swap = LinuxMemoryBuilder::default()
        .limit(64 * MIB)
        .swap(32 * MIB)
        .build()
        .unwrap();
    let err = cg.manager.apply(
        &LinuxResourcesBuilder::default()
            .memory(bad_swap)
            .build()
            .unwrap(),
    );
    if cg.on_v2("memory") {
        assert!(matches!(err, Err(Error::InvalidResource { .. })), "{err:?}");
    } else {
        assert!(err.is_err(), "memsw below limit accepted");
    }
    let bad_device = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .access("rwx")
        .build()
        .unwrap();
    assert!(cg
        .manager
        .apply(
            &LinuxResourcesBuilder::default()
                .devices(vec![bad_device])
                .build()
                .unwrap()
        )
        .is_err());
    cg.destroy_and_check();
}

#[test]
fn manager_round_trips_through_the_state_file() {
    let cg = TestCgroup::new("serde");
    let json = serde_json::to_string(&cg.manager).unwrap();
    let mut restored: Manager = serde_json::from_str(&json).unwrap();
    // What the state file holds comes back whole; the hierarchies' mount points are
    // create's alone and not saved.
    assert_eq!(serde_json::to_string(&restored).unwrap(), json);
    let dirs = |m: &Manager| {
        m.v1_dirs()
            .iter()
            .map(|d| d.dir.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(dirs(&restored), dirs(&cg.manager));
    assert_eq!(restored.unified_dir(), cg.manager.unified_dir());
    restored.destroy().unwrap();
    for dir in &cg.dirs {
        assert!(!dir.exists());
    }
}

/// clone3's argument block (struct clone_args, CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[test]
fn clone_into_cgroup_places_the_child_in_the_v2_leaf() {
    let cg = TestCgroup::new("clone3");
    let Some(fd) = cg.manager.v2_dir_fd() else {
        println!("no cgroup2 hierarchy: nothing to clone into");
        return;
    };
    let unified = cg.manager.unified_dir().unwrap().to_owned();
    let program = std::ffi::CString::new("/bin/sleep").unwrap();
    let arg0 = std::ffi::CString::new("sleep").unwrap();
    let arg1 = std::ffi::CString::new("30").unwrap();
    let argv = [arg0.as_ptr(), arg1.as_ptr(), std::ptr::null()];
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: std::os::fd::AsRawFd::as_raw_fd(&fd) as u64,
        ..Default::default()
    };
    // SAFETY: a fork-like clone3 (no CLONE_VM): the child only calls
    // execv and _exit, both async-signal-safe, on memory prepared before.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // SAFETY: see above; argv is NULL-terminated and outlives the call.
        unsafe {
            libc::execv(program.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    assert!(pid > 0, "clone3: {}", std::io::Error::last_os_error());
    let pid = pid as i32;
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let v2_line = own.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    let leaf = unified.file_name().unwrap().to_string_lossy().into_owned();
    let placed = v2_line.ends_with(&format!("/{leaf}"));
    if cg.manager.layout() == Layout::Unified {
        assert_eq!(cg.manager.pids().unwrap(), vec![pid]);
    }
    // SAFETY: plain syscalls on the child we just made.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    assert!(placed, "child is in {v2_line}, not below {leaf}");
    drop(fd);
    cg.destroy_and_check();
}
