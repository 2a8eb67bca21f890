//! The suite (runtime under test, checker, base rootfs, host facts) and one sandbox per test:
//! a bundle with a generated config.json, its own state root, the spec's operations run with a
//! deadline, and cleanup that leaves nothing behind even when the test failed.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::outcome::{Context, Outcome, TestResult};
use crate::{check, fail};

/// How long one runtime command may take before it is killed and the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a container may take to reach a state the test expects soon.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the checker lives inside every rootfs (on the config's PATH).
pub const CHECKER_IN_ROOTFS: &str = "/bin/conformance-checker";

/// Everything shared by all tests of one run.
pub struct Suite {
    pub runtime: PathBuf,
    pub dir: PathBuf,
    base: PathBuf,
    applets: Vec<String>,
    /// The runner's own namespaces (`/proc/self/ns/*` links), which the runtime inherits.
    pub host_ns: HashMap<String, String>,
    /// The runner's oom_score_adj, which a container without oomScoreAdj must keep.
    pub host_oom_score_adj: String,
}

impl Suite {
    /// Builds the base rootfs (busybox-static plus the checker) in a fresh scratch directory.
    pub fn new(runtime: PathBuf, checker: &Path, busybox: &Path) -> Result<Suite, String> {
        let dir = std::env::temp_dir().join(format!("berth-conformance-{}", std::process::id()));
        let base = dir.join("base");
        fs::create_dir_all(&base).map_err(|e| format!("create {}: {e}", base.display()))?;
        let suite = Suite {
            runtime,
            applets: busybox_applets(busybox)?,
            host_ns: read_namespaces("self"),
            host_oom_score_adj: raise_own_oom_score_adj(),
            dir,
            base,
        };
        set_mode(&suite.dir, 0o755).map_err(|e| e.to_string())?;
        for (from, name) in [(busybox, "busybox"), (checker, "conformance-checker")] {
            let to = suite.base.join(name);
            fs::copy(from, &to)
                .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))?;
            set_mode(&to, 0o755).map_err(|e| e.to_string())?;
        }
        Ok(suite)
    }

    /// Removes the scratch directory (each sandbox already removed its own part).
    pub fn cleanup(&self) {
        if mounts_under(&self.dir).is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("# leaving {}: mounts remain under it", self.dir.display());
        }
    }

    /// True when the kernel offers namespaces of this type (`/proc/self/ns/<file>`).
    pub fn has_namespace(&self, file: &str) -> bool {
        self.host_ns.contains_key(file)
    }
}

fn busybox_applets(busybox: &Path) -> Result<Vec<String>, String> {
    let out = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|e| format!("run {} --list: {e}", busybox.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
        .map(String::from)
        .collect())
}

/// Raises the runner's own oom_score_adj (allowed without privilege) to a value the host is
/// unlikely to use, so "the runtime MUST NOT change it" is observable; returns the value in force.
fn raise_own_oom_score_adj() -> String {
    let path = "/proc/self/oom_score_adj";
    let current: i32 = fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if current < 77 {
        let _ = fs::write(path, "77");
    }
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `/proc/<pid>/ns/*` links by file name.
pub fn read_namespaces(pid: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for kind in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        if let Ok(link) = fs::read_link(format!("/proc/{pid}/ns/{kind}")) {
            map.insert(kind.to_string(), link.display().to_string());
        }
    }
    map
}

pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// The result of one runtime command.
#[derive(Debug)]
pub struct CmdOut {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOut {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Stdout and stderr, trimmed, for failure messages.
    pub fn describe(&self) -> String {
        let mut text = format!("exit {:?}", self.code);
        for (name, stream) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let trimmed = stream.trim();
            if !trimmed.is_empty() {
                let short: String = trimmed.chars().take(400).collect();
                text.push_str(&format!("; {name}: {}", short.replace('\n', " | ")));
            }
        }
        text
    }
}

/// What the checker printed: `KEY VALUE` lines, several values per key allowed.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<(String, String)>,
}

impl Report {
    pub fn parse(text: &str) -> Report {
        let lines = text
            .lines()
            .map(|line| match line.split_once(' ') {
                Some((key, value)) => (key.to_string(), value.to_string()),
                None => (line.to_string(), String::new()),
            })
            .collect();
        Report { lines }
    }

    /// The first value printed for `key`.
    pub fn get(&self, key: &str) -> TestResult<&str> {
        self.lines
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| {
                Outcome::Fail(format!(
                    "the checker printed no {key:?} (output: {})",
                    self.summary()
                ))
            })
    }

    /// Every value printed for `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn summary(&self) -> String {
        let text: Vec<String> = self
            .lines
            .iter()
            .take(12)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        text.join(" | ")
    }
}

/// One test's bundle, state root and containers.
pub struct Sandbox<'s> {
    pub suite: &'s Suite,
    pub dir: PathBuf,
    pub bundle: PathBuf,
    pub state_root: PathBuf,
    /// The config.json written before each create; tests edit it freely.
    pub config: Value,
    tag: String,
    ids: Vec<String>,
    cmd_seq: usize,
    helpers: Vec<Child>,
    cgroups: Vec<String>,
}

impl<'s> Sandbox<'s> {
    pub fn new(suite: &'s Suite, index: usize) -> TestResult<Sandbox<'s>> {
        let dir = suite.dir.join(format!("t{index:03}"));
        let bundle = dir.join("bundle");
        let state_root = dir.join("state");
        let sandbox = Sandbox {
            suite,
            bundle: bundle.clone(),
            state_root: state_root.clone(),
            config: base_config(),
            tag: format!("conf-{}-{index}", std::process::id()),
            ids: Vec::new(),
            cmd_seq: 0,
            helpers: Vec::new(),
            cgroups: Vec::new(),
            dir,
        };
        for path in [&sandbox.dir, &bundle, &state_root] {
            fs::create_dir_all(path).ctx(|| format!("create {}", path.display()))?;
            set_mode(path, 0o755).ctx(|| format!("chmod {}", path.display()))?;
        }
        sandbox.build_rootfs()?;
        Ok(sandbox)
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// A fresh rootfs: directories, hardlinks to the base busybox and checker, applet symlinks.
    fn build_rootfs(&self) -> TestResult {
        let root = self.rootfs();
        for sub in [
            "bin",
            "proc",
            "sys",
            "dev",
            "tmp",
            "etc",
            "root",
            "home/user",
            "var",
            "run",
            "mnt",
        ] {
            let path = root.join(sub);
            fs::create_dir_all(&path).ctx(|| format!("create {}", path.display()))?;
            set_mode(&path, 0o755).ctx(|| format!("chmod {}", path.display()))?;
        }
        set_mode(&root, 0o755).ctx(|| "chmod rootfs".into())?;
        set_mode(&root.join("tmp"), 0o1777).ctx(|| "chmod rootfs/tmp".into())?;
        for name in ["busybox", "conformance-checker"] {
            let to = root.join("bin").join(name);
            fs::hard_link(self.suite.base.join(name), &to)
                .ctx(|| format!("link {}", to.display()))?;
        }
        for applet in &self.suite.applets {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
                .ctx(|| format!("symlink applet {applet}"))?;
        }
        let passwd = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n";
        fs::write(root.join("etc/passwd"), passwd).ctx(|| "write etc/passwd".into())?;
        fs::write(root.join("etc/group"), "root:x:0:\nuser:x:1000:\n")
            .ctx(|| "write etc/group".into())?;
        Ok(())
    }

    /// A new container id, unique in this run, remembered for cleanup.
    pub fn new_id(&mut self) -> String {
        let id = format!("{}-{}", self.tag, self.ids.len());
        self.ids.push(id.clone());
        id
    }

    /// A cgroupsPath unique to this test; the cgroup is removed at cleanup if the runtime left it.
    pub fn new_cgroups_path(&mut self) -> String {
        // One level under the root: a nested parent would start with no real-time budget.
        let path = format!("/berth-conformance-{}-{}", self.tag, self.cgroups.len());
        self.cgroups.push(path.clone());
        path
    }

    /// Sets process.args to the checker with these probes.
    pub fn checker_args(&mut self, probes: &[&str]) {
        let mut args = vec![Value::from(CHECKER_IN_ROOTFS)];
        args.extend(probes.iter().map(|p| Value::from(*p)));
        self.config["process"]["args"] = Value::Array(args);
    }

    pub fn write_config(&self) -> TestResult {
        let text =
            serde_json::to_string_pretty(&self.config).ctx(|| "serialise config.json".into())?;
        let path = self.bundle.join("config.json");
        fs::write(&path, text).ctx(|| format!("write {}", path.display()))
    }

    /// Runs `RUNTIME --root STATE args...` with a deadline; stdio go to files in the sandbox.
    pub fn runtime(&mut self, args: &[&str]) -> TestResult<CmdOut> {
        self.cmd_seq += 1;
        let out = self.dir.join(format!("cmd{}.out", self.cmd_seq));
        let err = self.dir.join(format!("cmd{}.err", self.cmd_seq));
        self.runtime_to(args, &out, &err)
    }

    fn runtime_to(&self, args: &[&str], out: &Path, err: &Path) -> TestResult<CmdOut> {
        let stdout = fs::File::create(out).ctx(|| format!("create {}", out.display()))?;
        let stderr = fs::File::create(err).ctx(|| format!("create {}", err.display()))?;
        let mut child = Command::new(&self.suite.runtime)
            .arg("--root")
            .arg(&self.state_root)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .ctx(|| format!("run {}", self.suite.runtime.display()))?;
        let code = wait_with_deadline(&mut child, COMMAND_TIMEOUT)
            .map_err(|e| Outcome::Fail(format!("runtime {}: {e}", args.join(" "))))?;
        Ok(CmdOut {
            code,
            stdout: fs::read_to_string(out).unwrap_or_default(),
            stderr: fs::read_to_string(err).unwrap_or_default(),
        })
    }

    /// The file the container's stdout goes to (create's stdout, inherited by the container).
    pub fn output_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.out"))
    }

    pub fn container_output(&self, id: &str) -> String {
        fs::read_to_string(self.output_path(id)).unwrap_or_default()
    }

    /// `create --bundle BUNDLE ID` after writing config.json; the container's stdio are files.
    pub fn create(&mut self, id: &str) -> TestResult<CmdOut> {
        self.create_with(id, &[])
    }

    /// `create` with extra flags (e.g. `--console-socket PATH`) before the id.
    pub fn create_with(&mut self, id: &str, extra: &[&str]) -> TestResult<CmdOut> {
        self.write_config()?;
        let bundle = self.bundle.display().to_string();
        let out = self.output_path(id);
        let err = self.dir.join(format!("{id}.err"));
        let mut args = vec!["create", "--bundle", &bundle];
        args.extend_from_slice(extra);
        args.push(id);
        self.runtime_to(&args, &out, &err)
    }

    pub fn create_ok(&mut self, id: &str) -> TestResult<CmdOut> {
        let out = self.create(id)?;
        check!(out.ok(), "create {id} failed: {}", out.describe());
        Ok(out)
    }

    pub fn op_ok(&mut self, op: &str, id: &str) -> TestResult<CmdOut> {
        let out = self.runtime(&[op, id])?;
        check!(out.ok(), "{op} {id} failed: {}", out.describe());
        Ok(out)
    }

    /// Any runtime command that must succeed.
    pub fn op_ok_args(&mut self, args: &[&str]) -> TestResult<CmdOut> {
        let out = self.runtime(args)?;
        check!(out.ok(), "`{}` failed: {}", args.join(" "), out.describe());
        Ok(out)
    }

    /// The state JSON of a container, which must parse.
    pub fn state(&mut self, id: &str) -> TestResult<Value> {
        let out = self.op_ok("state", id)?;
        serde_json::from_str(&out.stdout)
            .ctx(|| format!("state {id} is not JSON ({})", out.stdout.trim()))
    }

    pub fn status(&mut self, id: &str) -> TestResult<String> {
        let state = self.state(id)?;
        Ok(state["status"].as_str().unwrap_or_default().to_string())
    }

    /// Polls `state` until the status is `want`.
    pub fn wait_status(&mut self, id: &str, want: &str) -> TestResult {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let status = self.status(id)?;
            if status == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                fail!("container {id} stayed {status:?}, expected {want:?}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until the container's output contains `text` (e.g. the checker's "ready").
    pub fn wait_output(&self, id: &str, text: &str) -> TestResult {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while !self.container_output(id).contains(text) {
            if Instant::now() > deadline {
                fail!(
                    "container {id} never printed {text:?} (output: {:?})",
                    self.container_output(id)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// create, start, wait until stopped, delete: what the checker printed.
    pub fn run_checker(&mut self, probes: &[&str]) -> TestResult<Report> {
        self.checker_args(probes);
        let id = self.new_id();
        self.run_to_completion(&id)?;
        Ok(Report::parse(&self.container_output(&id)))
    }

    /// Runs the process exactly as configured (process.args set by the test).
    pub fn run_checker_with_config(&mut self) -> TestResult<Report> {
        let id = self.new_id();
        self.run_to_completion(&id)?;
        Ok(Report::parse(&self.container_output(&id)))
    }

    /// Drives an already configured container through the whole lifecycle.
    pub fn run_to_completion(&mut self, id: &str) -> TestResult {
        self.create_ok(id)?;
        self.op_ok("start", id)?;
        self.wait_status(id, "stopped")?;
        self.op_ok("delete", id)?;
        Ok(())
    }

    /// create must fail, and leave no container, process or mount behind.
    pub fn expect_create_error(&mut self) -> TestResult {
        let id = self.new_id();
        let out = self.create(&id)?;
        if out.ok() {
            let _ = self.runtime(&["delete", "--force", &id]);
            fail!("create {id} succeeded; the spec requires an error");
        }
        self.check_no_container(&id)
    }

    /// The id is unknown to the runtime, and nothing of the sandbox is mounted or running.
    pub fn check_no_container(&mut self, id: &str) -> TestResult {
        let state = self.runtime(&["state", id])?;
        check!(
            !state.ok(),
            "after the error, state {id} still answers: {}",
            state.stdout.trim()
        );
        let mounts = mounts_under(&self.dir);
        check!(mounts.is_empty(), "mounts left behind: {mounts:?}");
        let procs = processes_in(&self.rootfs());
        check!(
            procs.is_empty(),
            "processes left running in the rootfs: {procs:?}"
        );
        Ok(())
    }

    /// Starts a helper process that lives until the sandbox is dropped.
    pub fn spawn_helper(&mut self, mut command: Command) -> TestResult<u32> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ctx(|| format!("spawn helper {command:?}"))?;
        let pid = child.id();
        self.helpers.push(child);
        Ok(pid)
    }

    fn cleanup(&mut self) {
        for id in self.ids.clone() {
            let _ = self.runtime(&["delete", "--force", &id]);
        }
        for child in &mut self.helpers {
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in processes_in(&self.rootfs()) {
            // SAFETY: kill has no memory effects; the pid was just seen using our rootfs.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for cgroup in &self.cgroups {
            remove_cgroup(cgroup);
        }
        let mut mounts = mounts_under(&self.dir);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in &mounts {
            if let Ok(c_path) = std::ffi::CString::new(mount.as_str()) {
                // SAFETY: a valid C string; a lazy unmount of a mount under our own sandbox.
                unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) };
            }
        }
        if mounts_under(&self.dir).is_empty() {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("# leaving {}: mounts remain under it", self.dir.display());
        }
    }
}

impl Drop for Sandbox<'_> {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Waits for a child, killing it at the deadline; the exit code (None if killed by a signal).
fn wait_with_deadline(child: &mut Child, timeout: Duration) -> io::Result<Option<i32>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.code());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out, killed"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Mount points under `dir` in the runner's mount namespace.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect()
}

fn unescape_mount_path(path: &str) -> String {
    path.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Pids whose root directory is `rootfs` (compared by device and inode, since a pivoted
/// container's root reads as `/`).
pub fn processes_in(rootfs: &Path) -> Vec<i32> {
    let Ok(want) = fs::metadata(rootfs) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(meta) = fs::metadata(format!("/proc/{pid}/root")) {
            if meta.dev() == want.dev() && meta.ino() == want.ino() {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Cgroup hierarchies of the host: controller (or "" for cgroup2) to mount point.
pub fn cgroup_mounts() -> HashMap<String, PathBuf> {
    let mut map = HashMap::new();
    for line in fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
    {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let rest: Vec<&str> = right.split(' ').collect();
        if fields.len() < 5 || rest.len() < 3 || fields[3] != "/" {
            continue;
        }
        let mount_point = PathBuf::from(unescape_mount_path(fields[4]));
        match rest[0] {
            "cgroup2" => {
                map.entry(String::new()).or_insert(mount_point);
            }
            "cgroup" => {
                for option in rest[2].split(',') {
                    if !matches!(option, "rw" | "ro") {
                        map.entry(option.to_string())
                            .or_insert_with(|| mount_point.clone());
                    }
                }
            }
            _ => {}
        }
    }
    map
}

/// The host directory of a process's cgroup for one controller ("" for cgroup2).
pub fn cgroup_dir_of(pid: i64, controller: &str) -> TestResult<PathBuf> {
    let mounts = cgroup_mounts();
    let Some(mount) = mounts.get(controller) else {
        return crate::outcome::skip(format!(
            "no {controller} cgroup hierarchy mounted on this host"
        ));
    };
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ctx(|| format!("read /proc/{pid}/cgroup"))?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let matches = if controller.is_empty() {
            list.is_empty()
        } else {
            list.split(',').any(|c| c == controller)
        };
        if matches {
            return Ok(mount.join(path.trim_start_matches('/')));
        }
    }
    fail!("/proc/{pid}/cgroup has no line for {controller:?}: {text}")
}

/// Removes a cgroup directory (and its parents below the mount point) in every hierarchy.
fn remove_cgroup(path: &str) {
    for mount in cgroup_mounts().values() {
        let mut dir = mount.join(path.trim_start_matches('/'));
        while dir.starts_with(mount) && dir != *mount {
            if fs::remove_dir(&dir).is_err() && dir.exists() {
                break;
            }
            if !dir.pop() {
                break;
            }
        }
    }
}

/// The config every test starts from: what a minimal runc-like bundle needs, written from the
/// spec (not from any runtime's `spec` command, so every runtime gets the same input).
pub fn base_config() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": [CHECKER_IN_ROOTFS],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps
            },
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": "conformance",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] }
        ],
        "linux": {
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// Adds an entry to `linux.namespaces` (replacing one of the same type).
pub fn set_namespace(config: &mut Value, entry: Value) {
    let kind = entry["type"].clone();
    if let Some(list) = config["linux"]["namespaces"].as_array_mut() {
        list.retain(|ns| ns["type"] != kind);
        list.push(entry);
    }
}

/// Removes a namespace type from `linux.namespaces`.
pub fn remove_namespace(config: &mut Value, kind: &str) {
    if let Some(list) = config["linux"]["namespaces"].as_array_mut() {
        list.retain(|ns| ns["type"] != kind);
    }
}

/// Appends a mount to `mounts`.
pub fn add_mount(config: &mut Value, mount: Value) {
    if let Some(list) = config["mounts"].as_array_mut() {
        list.push(mount);
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn reports_keep_every_value_and_empty_ones() {
        let report = Report::parse("uid 0 0 0\nenv A=1\nenv B=2\nread:/x \nready\n");
        assert_eq!(report.get("uid").ok(), Some("0 0 0"));
        assert_eq!(report.all("env"), vec!["A=1", "B=2"]);
        assert_eq!(report.get("read:/x").ok(), Some(""));
        assert_eq!(report.get("ready").ok(), Some(""));
        assert!(report.get("missing").is_err());
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b\\134c"), "/a b\\c");
    }

    #[test]
    fn namespaces_are_replaced_by_type() {
        let mut config = base_config();
        set_namespace(
            &mut config,
            json!({"type": "network", "path": "/proc/1/ns/net"}),
        );
        let nets: Vec<&Value> = config["linux"]["namespaces"]
            .as_array()
            .map(|l| l.iter().filter(|n| n["type"] == "network").collect())
            .unwrap_or_default();
        assert_eq!(nets.len(), 1);
        assert_eq!(nets[0]["path"], "/proc/1/ns/net");
        remove_namespace(&mut config, "network");
        assert!(!config.to_string().contains("\"network\""));
    }
}
