//! Test harness: a busybox-static rootfs built once per run, one sandbox (bundle, state root, ids)
//! per test, runtime invocations with a deadline, and the "nothing left behind" checks.
//!
//! The runtime under test is `$BERTH_RUNTIME` (a path) or the freshly built `berth` binary.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long one runtime command may take before the harness kills it and fails the test.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the harness waits for a state change it expects soon (a status, a file).
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn next_seq() -> usize {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// The runtime binary under test.
pub fn runtime_path() -> PathBuf {
    match std::env::var_os("BERTH_RUNTIME") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_berth")),
    }
}

/// True when the runtime under test says it is runc (`--version` starts with "runc").
pub fn runtime_is_runc() -> bool {
    static IS_RUNC: OnceLock<bool> = OnceLock::new();
    *IS_RUNC.get_or_init(|| {
        Command::new(runtime_path())
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).starts_with("runc"))
            .unwrap_or(false)
    })
}

/// A test written to the demand where runc 1.1.5 behaves differently.
///
/// Against berth the body runs normally. Against runc the body must fail (panic): that proves the
/// test can fail, and a runc that starts passing it is reported so the divergence list is updated.
/// The list of such tests is in integration/README.md.
pub fn runc_diverges(reason: &str, body: impl FnOnce() + std::panic::UnwindSafe) {
    if !runtime_is_runc() {
        body();
        return;
    }
    let outcome = std::panic::catch_unwind(body);
    assert!(
        outcome.is_err(),
        "runc was expected to fail this test ({reason}) but it passed: update the divergence list"
    );
    eprintln!("known runc divergence, failed as expected: {reason}");
}

// ---------------------------------------------------------------------------------------------
// Suite directory and the base rootfs
// ---------------------------------------------------------------------------------------------

static SUITE_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Per-run scratch directory, removed when the test binary exits.
pub fn suite_dir() -> &'static Path {
    SUITE_DIR.get_or_init(|| {
        remove_stale_suite_dirs();
        let dir = std::env::temp_dir().join(format!("berth-itest-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        // 0755 so a container root mapped to an unprivileged host uid can still reach its bundle.
        set_mode(&dir, 0o755);
        // SAFETY: registering a plain extern "C" function with no captured state is sound.
        unsafe {
            libc::atexit(remove_suite_dir_at_exit);
        }
        dir
    })
}

/// Removes scratch directories of earlier runs that were killed before their exit handler ran
/// (their pid is gone). Directories that still hold mounts are left alone.
fn remove_stale_suite_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("berth-itest-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_tree_safely(&entry.path());
        }
    }
}

extern "C" fn remove_suite_dir_at_exit() {
    if let Some(dir) = SUITE_DIR.get() {
        remove_tree_safely(dir);
    }
}

/// The busybox-static rootfs every sandbox copies, built once per test run.
pub fn base_rootfs() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = suite_dir().join("rootfs-base");
        build_busybox_rootfs(&dir);
        dir
    })
}

fn busybox_binary() -> PathBuf {
    for candidate in ["/bin/busybox", "/usr/bin/busybox"] {
        let path = PathBuf::from(candidate);
        if path.exists() {
            return path;
        }
    }
    panic!("busybox not found: install it with `apt-get install -y busybox-static`");
}

fn build_busybox_rootfs(dir: &Path) {
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
        fs::create_dir_all(dir.join(sub)).expect("create rootfs dirs");
    }
    set_mode(&dir.join("tmp"), 0o1777);
    let busybox = busybox_binary();
    fs::copy(&busybox, dir.join("bin/busybox")).expect("copy busybox into the rootfs");
    set_mode(&dir.join("bin/busybox"), 0o755);
    let list = Command::new(&busybox)
        .arg("--list")
        .output()
        .expect("run busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet))
            .expect("symlink a busybox applet");
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         user:x:1000:1000:user:/home/user:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .expect("write /etc/passwd");
    fs::write(
        dir.join("etc/group"),
        "root:x:0:\nuser:x:1000:\nnobody:x:65534:\n",
    )
    .expect("write /etc/group");
}

pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Copies a rootfs tree: directories and symlinks recreated, busybox hardlinked, small files copied.
pub fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap_or_else(|e| panic!("mkdir {}: {e}", dst.display()));
    let meta = fs::symlink_metadata(src).expect("stat source dir");
    set_mode(dst, meta.mode() & 0o7777);
    for entry in fs::read_dir(src).expect("read source dir") {
        let entry = entry.expect("read dir entry");
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let file_type = entry.file_type().expect("file type");
        if file_type.is_dir() {
            copy_tree(&from, &to);
        } else if file_type.is_symlink() {
            let target = fs::read_link(&from).expect("readlink");
            std::os::unix::fs::symlink(target, &to).expect("symlink");
        } else if entry.file_name() == "busybox" {
            fs::hard_link(&from, &to).expect("hardlink busybox");
        } else {
            fs::copy(&from, &to).expect("copy file");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running the runtime
// ---------------------------------------------------------------------------------------------

/// What one runtime invocation did.
#[derive(Debug, Clone)]
pub struct Output {
    pub desc: String,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_path: Option<PathBuf>,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    fn describe(&self) -> String {
        format!(
            "`{}` exited {:?} (signal {:?})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.desc, self.code, self.signal, self.stdout, self.stderr
        )
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.success(), "expected success: {}", self.describe());
        self
    }

    /// Asserts a non-zero exit (and no crash by signal).
    #[track_caller]
    pub fn failed(self) -> Self {
        assert!(
            matches!(self.code, Some(code) if code != 0),
            "expected a non-zero exit: {}",
            self.describe()
        );
        self
    }

    /// Asserts the given exit code.
    #[track_caller]
    pub fn code_is(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code: {}",
            self.describe()
        );
        self
    }

    /// Asserts a failure with exactly one non-empty error line on stderr that mentions every
    /// `needles` (case-insensitive). Warning lines (such as "linux.resources ignored") are not
    /// part of the error and are not counted.
    #[track_caller]
    pub fn one_line_error(self, needles: &[&str]) -> Self {
        let out = self.failed();
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !is_warning_line(l))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "expected a one-line error: {}",
            out.describe()
        );
        let lower = lines[0].to_lowercase();
        for needle in needles {
            assert!(
                lower.contains(&needle.to_lowercase()),
                "error line should mention {needle:?}: {}",
                out.describe()
            );
        }
        out
    }

    /// Re-reads the captured stdout: a created container keeps writing to the runtime's stdout
    /// after the runtime itself has exited.
    pub fn fresh_stdout(&self) -> String {
        match &self.stdout_path {
            Some(path) => fs::read_to_string(path).unwrap_or_default(),
            None => self.stdout.clone(),
        }
    }
}

/// A log line at warning level, in text (`level=warning`, `WARN[...]`, `warning: ...`) or JSON.
pub fn is_warning_line(line: &str) -> bool {
    let lower = line.trim_start().to_lowercase();
    lower.starts_with("warn") || lower.contains("level=warn") || lower.contains("\"level\":\"warn")
}

/// A runtime command line being built.
pub struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
    out_dir: PathBuf,
    stdin: Option<Stdio>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
    extra_fds: Vec<(OwnedFd, RawFd)>,
    current_dir: Option<PathBuf>,
    envs: Vec<(OsString, OsString)>,
    timeout: Duration,
}

impl Cmd {
    pub fn new(program: impl AsRef<Path>, out_dir: &Path) -> Self {
        Cmd {
            program: program.as_ref().to_path_buf(),
            args: Vec::new(),
            out_dir: out_dir.to_path_buf(),
            stdin: None,
            stdout: None,
            stderr: None,
            extra_fds: Vec::new(),
            current_dir: None,
            envs: Vec::new(),
            timeout: COMMAND_TIMEOUT,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self.args.push(arg.as_ref().to_os_string());
        }
        self
    }

    pub fn stdin(mut self, stdin: Stdio) -> Self {
        self.stdin = Some(stdin);
        self
    }

    pub fn stdout(mut self, stdout: Stdio) -> Self {
        self.stdout = Some(stdout);
        self
    }

    pub fn stderr(mut self, stderr: Stdio) -> Self {
        self.stderr = Some(stderr);
        self
    }

    /// Passes `fd` to the runtime as descriptor number `target` (for `--preserve-fds`).
    pub fn pass_fd(mut self, fd: OwnedFd, target: RawFd) -> Self {
        self.extra_fds.push((fd, target));
        self
    }

    /// Runs the command in `dir` (the runtime's default bundle is its working directory).
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.current_dir = Some(dir.to_path_buf());
        self
    }

    /// Sets an environment variable for the runtime.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn description(&self) -> String {
        let mut desc = self.program.display().to_string();
        for arg in &self.args {
            desc.push(' ');
            desc.push_str(&arg.to_string_lossy());
        }
        desc
    }

    /// Starts the command. Stdout and stderr go to files (not pipes) unless given: a container
    /// created by the runtime inherits them and may outlive the runtime.
    pub fn spawn(self) -> Running {
        self.try_spawn().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like `spawn`, but reports failure instead of panicking (for cleanup code).
    pub fn try_spawn(self) -> Result<Running, String> {
        let desc = self.description();
        let n = next_seq();
        let stdout_path = self.out_dir.join(format!("cmd-{n}.out"));
        let stderr_path = self.out_dir.join(format!("cmd-{n}.err"));
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        command.stdin(self.stdin.unwrap_or_else(Stdio::null));
        let captured_stdout = self.stdout.is_none();
        let capture = |path: &Path| {
            fs::File::create(path)
                .map(Stdio::from)
                .map_err(|e| format!("create {}: {e}", path.display()))
        };
        command.stdout(match self.stdout {
            Some(stdio) => stdio,
            None => capture(&stdout_path)?,
        });
        command.stderr(match self.stderr {
            Some(stdio) => stdio,
            None => capture(&stderr_path)?,
        });
        let fd_map: Vec<(RawFd, RawFd)> = self
            .extra_fds
            .iter()
            .map(|(fd, target)| (fd.as_raw_fd(), *target))
            .collect();
        if !fd_map.is_empty() {
            // SAFETY: the closure only calls dup2 and fcntl, which are async-signal-safe, on descriptors
            // that stay open in the parent until spawn returns.
            unsafe {
                command.pre_exec(move || {
                    for (fd, target) in &fd_map {
                        // dup2 onto itself keeps FD_CLOEXEC, so clear it by hand in that case.
                        let rc = if fd == target {
                            libc::fcntl(*fd, libc::F_SETFD, 0)
                        } else {
                            libc::dup2(*fd, *target)
                        };
                        if rc < 0 {
                            return Err(io::Error::last_os_error());
                        }
                    }
                    Ok(())
                });
            }
        }
        let started = Instant::now();
        let child = command
            .spawn()
            .map_err(|e| format!("spawn `{desc}`: {e}"))?;
        drop(self.extra_fds);
        Ok(Running {
            child: Some(child),
            desc,
            stdout_path: captured_stdout.then_some(stdout_path),
            stderr_path,
            started,
            timeout: self.timeout,
        })
    }

    /// Runs the command to completion (bounded by its timeout).
    pub fn output(self) -> Output {
        self.spawn().wait()
    }

    /// Like `output`, but reports failure instead of panicking (for cleanup code: a panic in a
    /// destructor while a failed test unwinds would abort the whole test binary).
    pub fn try_output(self) -> Result<Output, String> {
        self.try_spawn()?.try_wait()
    }
}

/// A runtime command still running.
pub struct Running {
    child: Option<Child>,
    desc: String,
    stdout_path: Option<PathBuf>,
    stderr_path: PathBuf,
    started: Instant,
    timeout: Duration,
}

impl Running {
    pub fn pid(&self) -> i32 {
        let child = self.child.as_ref().expect("child present until waited");
        i32::try_from(child.id()).expect("pid fits in i32")
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own un-reaped child's pid cannot hit another process.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.pid());
    }

    /// Waits for the command to exit; kills it and panics after its timeout.
    pub fn wait(self) -> Output {
        self.try_wait().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like `wait`, but reports a timeout or wait failure instead of panicking.
    pub fn try_wait(mut self) -> Result<Output, String> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| format!("`{}` was already waited for", self.desc))?;
        let remaining = self.timeout.saturating_sub(self.started.elapsed());
        if !wait_exit(&child, remaining) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "`{}` did not finish within {:?}",
                self.desc, self.timeout
            ));
        }
        let status = child
            .wait()
            .map_err(|e| format!("wait for `{}`: {e}", self.desc))?;
        let stdout = self
            .stdout_path
            .as_ref()
            .map(|p| fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default();
        let stderr = fs::read_to_string(&self.stderr_path).unwrap_or_default();
        Ok(Output {
            desc: self.desc.clone(),
            code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
            stdout_path: self.stdout_path.clone(),
            elapsed: self.started.elapsed(),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits (without reaping) until `child` exits or `timeout` passes, via a pidfd: no polling.
fn wait_exit(child: &Child, timeout: Duration) -> bool {
    let pid = child.id() as libc::pid_t;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        eprintln!("pidfd_open({pid}): {}", io::Error::last_os_error());
        return false;
    }
    // SAFETY: the syscall just returned this descriptor and nothing else owns it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
    poll_readable(pidfd.as_fd(), timeout)
}

/// True when `fd` becomes readable (or hangs up) within `timeout`.
pub fn poll_readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("poll: {e}");
                return false;
            }
        }
    }
}

/// Polls `cond` until it holds, failing the test after `timeout`.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Fails the test when the run set `require`: the VM runs set it for what their guest provides,
/// so a setup that went wrong fails instead of passing quietly on a fallback or a skip.
#[track_caller]
pub fn assert_not_required(require: &str, missing: &str) {
    assert!(
        std::env::var_os(require).is_none(),
        "{require} is set, but {missing}"
    );
}

/// True when the test can go on; otherwise it prints `skipped: MISSING`, or fails when the run
/// sets `require` (see `assert_not_required`).
#[track_caller]
pub fn present_or_skip(present: bool, require: &str, missing: &str) -> bool {
    if !present {
        assert_not_required(require, missing);
        eprintln!("skipped: {missing}");
    }
    present
}

// ---------------------------------------------------------------------------------------------
// Sandbox: one bundle, one state root, the ids a test created
// ---------------------------------------------------------------------------------------------

pub struct Sandbox {
    /// Everything this sandbox owns lives under `dir`.
    pub dir: PathBuf,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// The runtime's `--root`.
    pub state_root: PathBuf,
    /// The bundle's config.json, written out before each create/run.
    pub config: Value,
    out_dir: PathBuf,
    rootfs_identity: (u64, u64),
    ids: Mutex<Vec<String>>,
}

impl Sandbox {
    /// A fresh bundle (copy of the base rootfs, config.json from `RUNTIME spec`) and state root.
    pub fn new(name: &str) -> Sandbox {
        let base = base_rootfs();
        let dir = suite_dir().join(format!("{name}-{}", next_seq()));
        let bundle = dir.join("bundle");
        let rootfs = bundle.join("rootfs");
        let state_root = dir.join("state");
        let out_dir = dir.join("out");
        for d in [&bundle, &state_root, &out_dir] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        set_mode(&dir, 0o755);
        copy_tree(base, &rootfs);
        let meta = fs::metadata(&rootfs).expect("stat rootfs");
        let mut sandbox = Sandbox {
            dir,
            bundle,
            rootfs,
            state_root,
            config: Value::Null,
            out_dir,
            rootfs_identity: (meta.dev(), meta.ino()),
            ids: Mutex::new(Vec::new()),
        };
        sandbox.config = sandbox.default_spec();
        sandbox
    }

    /// `RUNTIME spec` in the bundle, loaded and adjusted for tests: no terminal, writable root.
    fn default_spec(&self) -> Value {
        Cmd::new(runtime_path(), &self.out_dir)
            .args(["spec", "--bundle"])
            .arg(&self.bundle)
            .output()
            .ok();
        let path = self.bundle.join("config.json");
        let text = fs::read_to_string(&path).expect("read the spec the runtime wrote");
        let mut config: Value = serde_json::from_str(&text).expect("spec output is JSON");
        config["process"]["terminal"] = json!(false);
        config["root"]["readonly"] = json!(false);
        config
    }

    /// A command line for the runtime with this sandbox's `--root`.
    pub fn cmd(&self) -> Cmd {
        Cmd::new(runtime_path(), &self.out_dir)
            .arg("--root")
            .arg(&self.state_root)
    }

    /// A runtime command line without `--root` (for spec, features, global-flag tests).
    pub fn bare_cmd(&self) -> Cmd {
        Cmd::new(runtime_path(), &self.out_dir)
    }

    /// Runs `RUNTIME --root STATE args...` to completion.
    pub fn rt<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.cmd().args(args).output()
    }

    /// A new container id, unique across parallel tests and runs, deleted on drop.
    pub fn new_id(&self, tag: &str) -> String {
        let id = format!("{tag}-{}-{}", std::process::id(), next_seq());
        self.ids.lock().expect("ids lock").push(id.clone());
        id
    }

    pub fn save_config(&self) {
        let text = serde_json::to_string_pretty(&self.config).expect("serialise config");
        fs::write(self.bundle.join("config.json"), text).expect("write config.json");
    }

    /// Sets `process.args` to `sh -c SCRIPT`.
    pub fn set_script(&mut self, script: &str) {
        self.config["process"]["args"] = json!(["sh", "-c", script]);
    }

    /// `create --bundle BUNDLE [extra...] ID` with the current config.
    pub fn create(&self, id: &str, extra: &[&str]) -> Output {
        self.save_config();
        self.cmd()
            .arg("create")
            .arg("--bundle")
            .arg(&self.bundle)
            .args(extra)
            .arg(id)
            .output()
    }

    /// `run --bundle BUNDLE [extra...] ID` in the foreground, to completion.
    pub fn run(&self, id: &str, extra: &[&str]) -> Output {
        self.run_cmd(id, extra).output()
    }

    /// The `run` command line, to spawn or adjust.
    pub fn run_cmd(&self, id: &str, extra: &[&str]) -> Cmd {
        self.save_config();
        self.cmd()
            .arg("run")
            .arg("--bundle")
            .arg(&self.bundle)
            .args(extra)
            .arg(id)
    }

    /// Runs SCRIPT in a new container in the foreground; asserts exit 0; returns its stdout.
    #[track_caller]
    pub fn run_script(&mut self, script: &str) -> String {
        self.set_script(script);
        let id = self.new_id("run");
        let out = self.run(&id, &[]).ok();
        out.stdout
    }

    /// Creates a container running SCRIPT, waits for it to be `created`.
    #[track_caller]
    pub fn create_script(&mut self, tag: &str, script: &str) -> (String, Output) {
        self.set_script(script);
        let id = self.new_id(tag);
        let out = self.create(&id, &[]).ok();
        (id, out)
    }

    /// `state ID` parsed; panics when it fails.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]).ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state output is not JSON ({e}): {}", out.stdout))
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn pid(&self, id: &str) -> i32 {
        let pid = self.state(id)["pid"].as_i64().expect("state has a pid");
        i32::try_from(pid).expect("pid fits in i32")
    }

    #[track_caller]
    pub fn wait_status(&self, id: &str, status: &str) {
        wait_until(&format!("{id} to be {status}"), SETTLE_TIMEOUT, || {
            self.status(id) == status
        });
    }

    /// Waits until the container wrote a whole line (ending in a newline) to FILE, a path inside
    /// its rootfs, and returns the contents. Waiting for the newline, not for the file, avoids
    /// reading between the shell's create and its write.
    #[track_caller]
    pub fn wait_rootfs_file(&self, file: &str) -> String {
        let path = self.rootfs.join(file.trim_start_matches('/'));
        let mut contents = String::new();
        wait_until(
            &format!("a line in {}", path.display()),
            SETTLE_TIMEOUT,
            || {
                contents = fs::read_to_string(&path).unwrap_or_default();
                contents.ends_with('\n')
            },
        );
        contents
    }

    /// A scratch directory under the sandbox (host side), for bind sources and hook output.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        fs::create_dir_all(&path).expect("create scratch dir");
        set_mode(&path, 0o755);
        path
    }

    /// Appends a mount entry to the config.
    pub fn add_mount(&mut self, mount: Value) {
        self.config["mounts"]
            .as_array_mut()
            .expect("mounts is an array")
            .push(mount);
    }

    /// Asserts that nothing of container ID is left: no state dir, no mount under the sandbox,
    /// no process rooted or working inside the bundle.
    #[track_caller]
    pub fn assert_nothing_left(&self, id: &str) {
        let state_dir = self.state_root.join(id);
        assert!(
            !state_dir.exists(),
            "state dir {} was left behind",
            state_dir.display()
        );
        let mounts = mounts_under(&self.dir);
        assert!(mounts.is_empty(), "mounts were left behind: {mounts:?}");
        let procs = self.processes_inside();
        assert!(procs.is_empty(), "processes were left behind: {procs:?}");
    }

    /// Pids whose root or cwd is the bundle's rootfs or anywhere under this sandbox.
    pub fn processes_inside(&self) -> Vec<i32> {
        processes_inside(&self.dir, self.rootfs_identity)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        for id in ids.iter().rev() {
            if self.state_root.join(id).exists() {
                let cleanup = self
                    .cmd()
                    .args(["delete", "--force", id])
                    .timeout(Duration::from_secs(10))
                    .try_output();
                if let Err(e) = cleanup {
                    eprintln!("cleanup: {e}");
                }
            }
        }
        kill_processes_inside(&self.dir, self.rootfs_identity);
        remove_tree_safely(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Looking for leftovers
// ---------------------------------------------------------------------------------------------

/// Decodes the octal escapes mountinfo uses for spaces, tabs, newlines and backslashes.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of a mountinfo file.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub mount_point: String,
    pub mount_options: Vec<String>,
    pub optional_fields: Vec<String>,
    pub fs_type: String,
    pub source: String,
    pub super_options: Vec<String>,
}

/// Parses mountinfo text (from the host or printed by a container).
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    let (left, right) = line.split_once(" - ")?;
    let fields: Vec<&str> = left.split_whitespace().collect();
    let right: Vec<&str> = right.split_whitespace().collect();
    if fields.len() < 6 || right.len() < 3 {
        return None;
    }
    Some(MountInfo {
        mount_point: unescape_mountinfo(fields[4]),
        mount_options: fields[5].split(',').map(str::to_string).collect(),
        optional_fields: fields[6..].iter().map(|s| s.to_string()).collect(),
        fs_type: right[0].to_string(),
        source: unescape_mountinfo(right[1]),
        super_options: right[2].split(',').map(str::to_string).collect(),
    })
}

/// Host mount points at or under `dir`, deepest last.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_mountinfo(&text)
        .into_iter()
        .map(|m| PathBuf::from(m.mount_point))
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Unmounts everything under `dir` and removes it. Refuses to remove a tree that still has
/// mounts (removing through a leaked bind mount could delete files outside the sandbox).
pub fn remove_tree_safely(dir: &Path) {
    for _ in 0..8 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            break;
        }
        for mount in mounts.iter().rev() {
            let _ = nix::mount::umount2(mount, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let left = mounts_under(dir);
    if left.is_empty() {
        let _ = fs::remove_dir_all(dir);
    } else {
        eprintln!("not removing {}: mounts remain: {left:?}", dir.display());
    }
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Pids whose root or cwd is the rootfs (by device and inode: a pivoted container reads "/")
/// or a path under `dir`, or whose command line names `dir`.
pub fn processes_inside(dir: &Path, rootfs_identity: (u64, u64)) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let proc_dir = entry.path();
        // A runtime that forks its init without exec keeps its argv, which names the sandbox.
        let named = fs::read(proc_dir.join("cmdline"))
            .map(|cmdline| contains_bytes(&cmdline, dir.as_os_str().as_encoded_bytes()))
            .unwrap_or(false);
        let inside = named
            || ["root", "cwd"].iter().any(|link| {
                let link = proc_dir.join(link);
                let by_path = fs::read_link(&link)
                    .map(|target| target.starts_with(dir))
                    .unwrap_or(false);
                by_path || identity(&link) == Some(rootfs_identity)
            });
        if inside {
            found.push(pid);
        }
    }
    found
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn kill_processes_inside(dir: &Path, rootfs_identity: (u64, u64)) {
    let pids = processes_inside(dir, rootfs_identity);
    if pids.is_empty() {
        return;
    }
    eprintln!("killing processes left in {}: {pids:?}", dir.display());
    for pid in &pids {
        // SAFETY: kill(2) with a pid we just found rooted in our sandbox.
        unsafe {
            libc::kill(*pid, libc::SIGKILL);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !processes_inside(dir, rootfs_identity).is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// Reading from inside the container
// ---------------------------------------------------------------------------------------------

/// The value of `Key:` in /proc/<pid>/status text.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        line.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// Capability names (CAP_*) to the bitmask /proc/self/status prints.
pub fn cap_mask(names: &[&str]) -> u64 {
    names
        .iter()
        .fold(0, |mask, name| mask | (1u64 << cap_number(name)))
}

pub fn cap_number(name: &str) -> u32 {
    const NAMES: [&str; 41] = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
    NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("unknown capability {name}")) as u32
}

/// The host's bounding set, to leave out capabilities the host itself lacks.
pub fn host_bounding_set() -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("read own status");
    let hex = status_field(&status, "CapBnd").expect("CapBnd in status");
    u64::from_str_radix(hex, 16).expect("CapBnd is hex")
}

// ---------------------------------------------------------------------------------------------
// Terminals
// ---------------------------------------------------------------------------------------------

/// The receiving end of `--console-socket`.
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn bind(path: PathBuf) -> ConsoleSocket {
        let listener =
            UnixListener::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        ConsoleSocket { path, listener }
    }

    /// Accepts the runtime's connection and receives the pty master it sends with SCM_RIGHTS.
    pub fn receive_master(&self, timeout: Duration) -> OwnedFd {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        assert!(
            poll_readable(self.listener.as_fd(), timeout),
            "the runtime never connected to the console socket"
        );
        let (stream, _) = self.listener.accept().expect("accept console connection");
        assert!(
            poll_readable(stream.as_fd(), timeout),
            "the runtime sent nothing on the console socket"
        );
        let mut buf = [0u8; 4096];
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .expect("recvmsg on the console socket");
        let mut received = None;
        for cmsg in msg.cmsgs().expect("read control messages") {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for fd in fds {
                    // SAFETY: SCM_RIGHTS just installed this descriptor in our table; we own it.
                    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                    received.get_or_insert(owned);
                }
            }
        }
        received.expect("no file descriptor arrived over SCM_RIGHTS")
    }
}

/// Reads a pty master until every slave is closed (EIO) or `timeout` passes.
pub fn read_pty(master: &OwnedFd, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut file = fs::File::from(master.try_clone().expect("dup pty master"));
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !poll_readable(master.as_fd(), left) {
            break;
        }
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break, // EIO: the last slave closed
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Runs a command on the host and asserts it succeeded (its stderr in the failure).
#[track_caller]
pub fn host_ok(program: &str, args: &[&str]) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
