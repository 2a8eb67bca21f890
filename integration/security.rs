//! Known runtime escapes, each replayed against the runtime: the test performs the attack
//! and checks that it fails and that the host is untouched.
//!
//! - CVE-2019-5736 class: the runtime's binary reached through /proc/PID/exe of a runtime
//!   process in the container (a created init in a shared pid namespace, an exec'd process,
//!   an entrypoint `#!/proc/self/exe`). These tests run a *copy* of the runtime, so a
//!   successful attack corrupts only the copy, and compare it byte for byte afterwards.
//! - CVE-2024-21626 class: host descriptors leaking into the container; `process.cwd` of
//!   /proc/self/fd/N.
//! - CVE-2025-31133 / 52565 / 52881 class: hostile rootfses whose proc, etc, dev, dev/null
//!   or mount destinations are symlinks to the host, and a fake /dev/null for maskedPaths.
//! - /proc writes (sysctls) into something that is not procfs.
//! - Privileges of exec'd processes.
//!
//! Against runc 1.1.5 (Debian, BERTH_RUNTIME=/usr/sbin/runc) every test passes except these,
//! marked with `runc_diverges`: `masking_refuses_a_dev_null_that_is_not_the_null_device` (runc
//! binds a fake /dev/null over masked paths: CVE-2025-31133, fixed in runc 1.2.8),
//! `only_stdio_preserved_and_listen_fds_reach_an_exec` (runc's exec ignores LISTEN_FDS), and
//! the LSM tests (runc 1.1.5 reports AppArmor from its build, fails an AppArmor profile on a
//! host without AppArmor, and ignores SELinux labels on a host without SELinux).

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{
    host_bounding_set, parse_mountinfo, runc_diverges, runtime_path, set_mode, status_field,
    wait_until, Cmd, Output, Sandbox, SETTLE_TIMEOUT,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A private copy of the runtime binary, so an attack that works damages only the copy.
struct RuntimeCopy {
    path: PathBuf,
    original: Vec<u8>,
}

impl RuntimeCopy {
    fn new(sb: &Sandbox) -> RuntimeCopy {
        let original = fs::read(runtime_path()).expect("read the runtime binary");
        let path = sb.dir.join("runtime-copy");
        fs::write(&path, &original).expect("copy the runtime binary");
        set_mode(&path, 0o755);
        RuntimeCopy { path, original }
    }

    /// `COPY --root STATE args...` with the sandbox's output directory.
    fn cmd(&self, sb: &Sandbox) -> Cmd {
        Cmd::new(&self.path, &sb.dir.join("out"))
            .arg("--root")
            .arg(&sb.state_root)
    }

    #[track_caller]
    fn assert_unchanged(&self) {
        let now = fs::read(&self.path).expect("read the runtime copy");
        assert!(
            now == self.original,
            "the runtime binary was modified from inside the container ({} bytes, was {})",
            now.len(),
            self.original.len()
        );
    }
}

/// Descriptor numbers open in a process, read from the host.
fn open_fds(pid: i32) -> BTreeSet<i32> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list /proc/PID/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The pid of `pid` in the innermost pid namespace it belongs to (NSpid's last field).
fn inner_pid(pid: i32) -> i32 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status_field(&status, "NSpid")
        .and_then(|f| f.split_whitespace().last())
        .and_then(|p| p.parse().ok())
        .expect("NSpid in status")
}

/// Identity and permission bits of a host path, to prove it was left alone.
#[derive(Debug, PartialEq, Eq)]
struct Stat {
    dev: u64,
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    rdev: u64,
    size: u64,
}

fn lstat(path: &Path) -> Option<Stat> {
    fs::symlink_metadata(path).ok().map(|m| Stat {
        dev: m.dev(),
        ino: m.ino(),
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev(),
        size: m.size(),
    })
}

/// How many host mounts sit exactly on each of `points`.
fn mounts_on(points: &[&str]) -> Vec<usize> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let mounts = parse_mountinfo(&text);
    points
        .iter()
        .map(|p| mounts.iter().filter(|m| m.mount_point == *p).count())
        .collect()
}

/// A snapshot of host state a hostile rootfs aims at.
struct HostSnapshot {
    points: Vec<String>,
    mounts: Vec<usize>,
    stats: Vec<(PathBuf, Option<Stat>)>,
}

impl HostSnapshot {
    fn take(points: &[&str], paths: &[&Path]) -> HostSnapshot {
        HostSnapshot {
            points: points.iter().map(|p| p.to_string()).collect(),
            mounts: mounts_on(points),
            stats: paths.iter().map(|p| (p.to_path_buf(), lstat(p))).collect(),
        }
    }

    #[track_caller]
    fn assert_unchanged(&self) {
        let points: Vec<&str> = self.points.iter().map(String::as_str).collect();
        assert_eq!(
            mounts_on(&points),
            self.mounts,
            "host mounts on {:?} changed",
            self.points
        );
        for (path, before) in &self.stats {
            assert_eq!(
                &lstat(path),
                before,
                "{} changed on the host",
                path.display()
            );
        }
    }
}

/// Replaces `rel` in the rootfs (file, directory or link) by a symlink to `target`.
fn make_symlink(sb: &Sandbox, rel: &str, target: &str) {
    let path = sb.rootfs.join(rel);
    if let Ok(meta) = fs::symlink_metadata(&path) {
        if meta.is_dir() {
            fs::remove_dir_all(&path).expect("remove rootfs dir");
        } else {
            fs::remove_file(&path).expect("remove rootfs entry");
        }
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent");
    }
    std::os::unix::fs::symlink(target, &path).expect("create hostile symlink");
}

/// Drops every mount whose destination is under `prefix` (e.g. "/dev").
fn remove_mounts_under(sb: &mut Sandbox, prefix: &str) {
    let mounts = sb.config["mounts"].as_array_mut().expect("mounts array");
    mounts.retain(|m| {
        let dest = m["destination"].as_str().unwrap_or_default();
        dest != prefix && !dest.starts_with(&format!("{prefix}/"))
    });
}

/// A run that either succeeds or fails with one clean error line and nothing left behind.
#[track_caller]
fn succeeds_or_fails_cleanly(sb: &Sandbox, id: &str, out: Output) -> Option<Output> {
    if out.success() {
        return Some(out);
    }
    out.one_line_error(&[]);
    sb.assert_nothing_left(id);
    None
}

/// A directory on the host outside every sandbox, removed on drop.
struct HostDir(PathBuf);

impl HostDir {
    fn new(tag: &str) -> HostDir {
        let path = std::env::temp_dir().join(format!("berth-sec-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create host dir");
        HostDir(path)
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The runtime binary (CVE-2019-5736)
// ---------------------------------------------------------------------------------------------

/// The strongest attacker (host root, every capability) keeps /proc/PID/exe of a created
/// init, lets the runtime exit and the container go, then reopens the binary for writing
/// through the kept descriptor: the runtime's processes run from a read-only (or sealed)
/// file, so the write fails.
#[test]
fn exe_of_a_created_init_cannot_be_written_back() {
    let mut sb = Sandbox::new("sec-exe-ro");
    let copy = RuntimeCopy::new(&sb);
    sb.set_script("exec sleep 100000");
    sb.save_config();
    let id = sb.new_id("exero");
    copy.cmd(&sb)
        .args(["create", "--bundle"])
        .arg(&sb.bundle)
        .arg(&id)
        .output()
        .ok();
    let pid = sb.pid(&id);
    let exe = fs::File::open(format!("/proc/{pid}/exe")).expect("host root opens the init's exe");
    copy.cmd(&sb).args(["delete", "--force", &id]).output().ok();
    wait_until("the init to be gone", SETTLE_TIMEOUT, || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    let reopened = fs::OpenOptions::new()
        .append(true)
        .open(format!("/proc/self/fd/{}", exe.as_raw_fd()));
    let written = reopened.and_then(|mut f| f.write_all(b"PWNED"));
    assert!(
        written.is_err(),
        "the runtime binary was writable through /proc/PID/exe of its init"
    );
    copy.assert_unchanged();
}

/// A created container whose init shares the pid namespace of a running one: processes of
/// the running container see the init (a runtime process until start) and try its exe, fds
/// and environ.
#[test]
fn created_init_is_hidden_from_a_shared_pid_namespace() {
    let mut sb = Sandbox::new("sec-pidns");
    sb.set_script("exec sleep 100000");
    let first = sb.new_id("pidns-a");
    sb.run(&first, &["--detach"]).ok();
    let first_pid = sb.pid(&first);
    for ns in sb.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
    {
        if ns["type"] == "pid" {
            *ns = json!({"type": "pid", "path": format!("/proc/{first_pid}/ns/pid")});
        }
    }
    let second = sb.new_id("pidns-b");
    sb.create(&second, &[]).ok();
    let seen = inner_pid(sb.pid(&second));
    // Listing /proc/PID/fd shows numbers only; following an entry is the leak.
    let probe = format!(
        "cat /proc/{seen}/exe >/dev/null 2>&1 && echo exe-readable; \
         for f in /proc/{seen}/fd/*; do readlink $f >/dev/null 2>&1 && echo fd-followed; done; \
         cat /proc/{seen}/environ >/dev/null 2>&1 && echo environ-readable; \
         ls /proc/{seen}/root/ >/dev/null 2>&1 && echo root-reachable; \
         ls /proc/{seen}/cwd/ >/dev/null 2>&1 && echo cwd-reachable; \
         test -e /proc/{seen} && echo seen"
    );
    let out = sb.rt(&["exec", &first, "sh", "-c", &probe]).ok();
    assert_eq!(
        out.stdout.trim(),
        "seen",
        "a runtime process was reachable from the container"
    );
}

/// The container itself races to open /proc/PID/exe of every process that is not its own
/// (busybox) while the runtime runs a container in its pid namespace with the entrypoint
/// `#!/proc/self/exe`, execs plain programs into it, and execs `#!/proc/self/exe` into it;
/// whatever it opened, it then tries to write until told to stop.
#[test]
fn proc_self_exe_entrypoint_via_run_and_exec_cannot_overwrite_the_runtime() {
    const ATTACK: &str = r#"
        got=
        while [ ! -e /tmp/stop ]; do
          for d in /proc/[0-9]*; do
            p=${d##*/}
            case $p in 1|$$) continue;; esac
            if [ -z "$got" ] && command exec 5<$d/exe 2>/dev/null; then
              case "$(readlink /proc/self/fd/5)" in
                */busybox) command exec 5<&- ;;
                *) got=$p; echo "opened $p" >> /tmp/attack.log ;;
              esac
            fi
          done
          if [ -n "$got" ] && command exec 6>>/proc/self/fd/5 2>/dev/null; then
            echo PWNED >&6 && echo wrote >> /tmp/attack.log
          fi
        done
        echo finished >> /tmp/attack.log
        exec sleep 100000
    "#;
    let mut sb = Sandbox::new("sec-selfexe");
    let copy = RuntimeCopy::new(&sb);
    let evil = sb.rootfs.join("evil");
    fs::write(&evil, "#!/proc/self/exe\n").expect("write the evil entrypoint");
    set_mode(&evil, 0o755);
    sb.set_script(ATTACK);
    sb.save_config();
    let attacker = sb.new_id("attacker");
    copy.cmd(&sb)
        .args(["run", "--detach", "--bundle"])
        .arg(&sb.bundle)
        .arg(&attacker)
        .output()
        .ok();
    let attacker_pid = sb.pid(&attacker);
    // `run` of a container in the attacker's pid namespace whose entrypoint is the runtime.
    sb.config["process"]["args"] = json!(["/evil"]);
    for ns in sb.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
    {
        if ns["type"] == "pid" {
            *ns = json!({"type": "pid", "path": format!("/proc/{attacker_pid}/ns/pid")});
        }
    }
    sb.save_config();
    for _ in 0..3 {
        let victim = sb.new_id("victim");
        let _ = copy
            .cmd(&sb)
            .args(["run", "--bundle"])
            .arg(&sb.bundle)
            .arg(&victim)
            .output();
        let _ = copy.cmd(&sb).args(["delete", "--force", &victim]).output();
    }
    // Plain execs: each child is a runtime process in the attacker's pid namespace until
    // it execs `true`.
    for _ in 0..5 {
        let _ = copy
            .cmd(&sb)
            .args(["exec", "--detach", &attacker, "true"])
            .output();
    }
    // `exec` of the runtime-as-interpreter into the attacker's container.
    for _ in 0..3 {
        let _ = copy
            .cmd(&sb)
            .args(["exec", "--detach", &attacker, "/evil"])
            .output();
    }
    // Every runtime process is gone now: a kept descriptor would be writable (no ETXTBSY).
    std::thread::sleep(Duration::from_millis(300));
    fs::write(sb.rootfs.join("tmp/stop"), "").expect("tell the attacker to stop");
    let log = sb.wait_rootfs_file("/tmp/attack.log");
    wait_until("the attacker to finish", SETTLE_TIMEOUT, || {
        fs::read_to_string(sb.rootfs.join("tmp/attack.log"))
            .unwrap_or_default()
            .contains("finished")
    });
    let log = fs::read_to_string(sb.rootfs.join("tmp/attack.log")).unwrap_or(log);
    assert!(!log.contains("wrote"), "the attack wrote: {log}");
    copy.assert_unchanged();
}

/// berth's fallback where the mount API is refused (a caller without CAP_SYS_ADMIN): it
/// re-executes from a sealed memfd copy. Checked through its debug log: the re-executed
/// berth says how its binary is protected before it fails for want of privilege.
#[test]
fn unprivileged_caller_runs_from_a_sealed_memfd() {
    if crate::harness::runtime_is_runc() {
        return; // berth's own mechanism; runc always uses a memfd.
    }
    let sb = Sandbox::new("sec-memfd");
    let logs = sb.scratch("logs");
    set_mode(&logs, 0o777);
    let log = logs.join("log");
    sb.save_config();
    let out = Cmd::new("/usr/bin/setpriv", &sb.dir.join("out"))
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(runtime_path())
        .args(["--debug", "--log"])
        .arg(&log)
        .arg("--root")
        .arg(logs.join("state"))
        .args(["create", "--bundle"])
        .arg(&sb.bundle)
        .arg("unprivileged")
        .output();
    let text = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("protected by SealedMemfd"),
        "no sealed memfd re-exec: {text}\n{}",
        out.stderr
    );
    assert!(!out.stderr.contains("sealed copy"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------------
// 2. Leaked descriptors and cwd (CVE-2024-21626)
// ---------------------------------------------------------------------------------------------

/// Descriptors the runtime gets beyond 0-2: fd 3 and 4 for `--preserve-fds 1` plus
/// `LISTEN_FDS=1`, then a host directory and a host file that must not reach the container.
fn with_host_fds(cmd: Cmd, sb: &Sandbox) -> Cmd {
    let secret = sb.scratch("secret");
    fs::write(secret.join("key"), "host secret").expect("write host secret");
    let dir = fs::File::open(&secret).expect("open host dir");
    let file = fs::File::open(secret.join("key")).expect("open host file");
    let (_r3, w3) = nix::unistd::pipe().expect("pipe");
    let (_r4, w4) = nix::unistd::pipe().expect("pipe");
    cmd.pass_fd(w3, 3)
        .pass_fd(w4, 4)
        .pass_fd(OwnedFd::from(dir), 5)
        .pass_fd(OwnedFd::from(file), 6)
}

/// The runtime socket-activated with one descriptor (LISTEN_FDS=1), with this sandbox's
/// --root. `for_runtime`: LISTEN_PID names the runtime (as systemd sets it), or its parent
/// (a LISTEN_FDS merely inherited, which must pass nothing).
fn socket_activated(sb: &Sandbox, for_runtime: bool) -> Cmd {
    let pid = if for_runtime { "$$" } else { "$PPID" };
    Cmd::new("/bin/sh", &sb.dir.join("out"))
        .arg("-c")
        .arg(format!("LISTEN_PID={pid} LISTEN_FDS=1 exec \"$0\" \"$@\""))
        .arg(runtime_path())
        .arg("--root")
        .arg(&sb.state_root)
}

#[test]
fn only_stdio_preserved_and_listen_fds_reach_the_container() {
    let mut sb = Sandbox::new("sec-fds");
    sb.set_script("exec sleep 100000");
    sb.save_config();
    for (for_runtime, expected) in [(true, vec![0, 1, 2, 3, 4]), (false, vec![0, 1, 2, 3])] {
        let id = sb.new_id("fds");
        let cmd = socket_activated(&sb, for_runtime)
            .args(["run", "--detach", "--preserve-fds", "1", "--bundle"])
            .arg(&sb.bundle)
            .arg(&id);
        with_host_fds(cmd, &sb).output().ok();
        let expected: BTreeSet<i32> = expected.into_iter().collect();
        assert_eq!(open_fds(sb.pid(&id)), expected, "descriptors of the init");
    }
}

#[test]
fn only_stdio_preserved_and_listen_fds_reach_an_exec() {
    runc_diverges("runc 1.1.5 exec ignores LISTEN_FDS", exec_descriptors);
}

fn exec_descriptors() {
    let mut sb = Sandbox::new("sec-execfds");
    sb.set_script("exec sleep 100000");
    let id = sb.new_id("execfds");
    sb.run(&id, &["--detach"]).ok();
    for (for_runtime, expected) in [(true, vec![0, 1, 2, 3, 4]), (false, vec![0, 1, 2, 3])] {
        let pid_file = sb.dir.join(format!("exec-{for_runtime}.pid"));
        let cmd = socket_activated(&sb, for_runtime)
            .args(["exec", "--detach", "--preserve-fds", "1", "--pid-file"])
            .arg(&pid_file)
            .args([&id, "sleep", "100000"]);
        with_host_fds(cmd, &sb).output().ok();
        let exec_pid: i32 = fs::read_to_string(&pid_file)
            .expect("exec pid file")
            .trim()
            .parse()
            .expect("pid");
        let expected: BTreeSet<i32> = expected.into_iter().collect();
        assert_eq!(
            open_fds(exec_pid),
            expected,
            "descriptors of an exec'd process"
        );
    }
    // Seen from inside: stdio and the directory `ls` itself reads, nothing else.
    let cmd = sb.cmd().args(["exec", &id, "ls", "/proc/self/fd/"]);
    let out = with_host_fds(cmd, &sb).output().ok();
    let inside: BTreeSet<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(
        inside,
        ["0", "1", "2", "3"].into(),
        "descriptors seen inside an exec'd ls"
    );
}

/// `process.cwd` of /proc/self/fd/N for every N the runtime could hold (a host directory is
/// open at 5 in the caller): the container either fails cleanly or stays inside its root.
#[test]
fn cwd_through_proc_self_fd_never_reaches_the_host() {
    let mut sb = Sandbox::new("sec-cwd");
    sb.set_script("pwd; ls");
    for n in 3..=12 {
        sb.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        sb.save_config();
        let id = sb.new_id("cwd");
        let cmd = sb.cmd().args(["run", "--bundle"]).arg(&sb.bundle).arg(&id);
        let out = with_host_fds(cmd, &sb).output();
        if let Some(out) = succeeds_or_fails_cleanly(&sb, &id, out) {
            assert!(
                out.stdout.starts_with('/') && !out.stdout.contains("key"),
                "cwd /proc/self/fd/{n} reached the host: {}",
                out.stdout
            );
        }
    }
}

#[test]
fn exec_cwd_through_proc_self_fd_never_reaches_the_host() {
    let mut sb = Sandbox::new("sec-execcwd");
    sb.set_script("exec sleep 100000");
    let id = sb.new_id("execcwd");
    sb.run(&id, &["--detach"]).ok();
    for n in 3..=16 {
        let cwd = format!("/proc/self/fd/{n}");
        let cmd = sb
            .cmd()
            .args(["exec", "--cwd", &cwd, &id, "sh", "-c", "pwd; ls"]);
        let out = with_host_fds(cmd, &sb).output();
        if out.success() {
            assert!(
                out.stdout.starts_with('/') && !out.stdout.contains("key"),
                "exec --cwd {cwd} reached the host: {}",
                out.stdout
            );
        } else {
            out.one_line_error(&[]);
        }
    }
    assert_eq!(sb.status(&id), "running");
}

// ---------------------------------------------------------------------------------------------
// 3. Hostile rootfses (symlinks to the host, fake /dev/null)
// ---------------------------------------------------------------------------------------------

#[test]
fn proc_and_etc_symlinked_to_the_host_root() {
    let mut sb = Sandbox::new("sec-procroot");
    make_symlink(&sb, "proc", "/");
    make_symlink(&sb, "etc", "/");
    sb.set_script("echo ran");
    sb.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let host = HostSnapshot::take(
        &["/", "/proc", "/etc"],
        &[
            Path::new("/"),
            Path::new("/etc/passwd"),
            Path::new("/etc/hostname"),
        ],
    );
    let id = sb.new_id("procroot");
    let out = sb.run(&id, &[]);
    succeeds_or_fails_cleanly(&sb, &id, out);
    host.assert_unchanged();
}

#[test]
fn dev_symlinked_to_the_hosts_dev() {
    let host_devs: Vec<PathBuf> = ["null", "zero", "full", "random", "urandom", "tty", "ptmx"]
        .iter()
        .map(|d| Path::new("/dev").join(d))
        .collect();
    let paths: Vec<&Path> = host_devs.iter().map(PathBuf::as_path).collect();
    let points = ["/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"];
    for (target, keep_dev_mounts) in [("/dev", true), ("/dev", false), ("../../../dev", false)] {
        let mut sb = Sandbox::new("sec-devlink");
        make_symlink(&sb, "dev", target);
        if !keep_dev_mounts {
            remove_mounts_under(&mut sb, "/dev");
        }
        sb.set_script("ls -l /dev/null; echo ran");
        let host = HostSnapshot::take(&points, &paths);
        let id = sb.new_id("devlink");
        let out = sb.run(&id, &[]);
        succeeds_or_fails_cleanly(&sb, &id, out);
        host.assert_unchanged();
    }
}

/// The rootfs's /dev/null is a symlink to a host file (0600), with the rootfs's own /dev
/// in use: creating the devices and masking must not chmod, chown or bind that file.
#[test]
fn dev_null_symlink_to_a_host_file() {
    let mut sb = Sandbox::new("sec-devnull");
    let sentinel = sb.scratch("host").join("sentinel");
    fs::write(&sentinel, "host data\n").expect("write sentinel");
    fs::set_permissions(&sentinel, fs::Permissions::from_mode(0o600)).expect("chmod");
    remove_mounts_under(&mut sb, "/dev");
    fs::create_dir_all(sb.rootfs.join("dev")).expect("rootfs dev");
    make_symlink(&sb, "dev/null", &sentinel.display().to_string());
    sb.set_script("test -c /dev/null && echo chr; cat /proc/timer_list | wc -c; echo ran");
    let host = HostSnapshot::take(&[], &[sentinel.as_path()]);
    let id = sb.new_id("devnull");
    let out = sb.run(&id, &[]);
    if let Some(out) = succeeds_or_fails_cleanly(&sb, &id, out) {
        assert!(
            out.stdout.contains("chr"),
            "/dev/null is not a device: {}",
            out.stdout
        );
    }
    host.assert_unchanged();
    assert_eq!(
        fs::read_to_string(&sentinel).expect("sentinel"),
        "host data\n"
    );
}

/// /dev bound from a host directory whose `null` is a regular file, then the zero device:
/// masking a file must refuse either instead of binding it over /proc/timer_list.
#[test]
fn masking_refuses_a_dev_null_that_is_not_the_null_device() {
    runc_diverges(
        "runc 1.1.5 binds whatever /dev/null is over masked files (CVE-2025-31133)",
        masking_with_a_fake_dev_null,
    );
}

fn masking_with_a_fake_dev_null() {
    for fake in ["regular", "zero-device"] {
        let mut sb = Sandbox::new("sec-fakenull");
        let dev = sb.scratch("fake-dev");
        let null = dev.join("null");
        match fake {
            "regular" => fs::write(&null, "not null\n").expect("write fake null"),
            _ => nix::sys::stat::mknod(
                &null,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o666),
                nix::sys::stat::makedev(1, 5),
            )
            .expect("mknod fake null"),
        }
        remove_mounts_under(&mut sb, "/dev");
        sb.add_mount(json!({
            "destination": "/dev", "type": "bind", "source": dev, "options": ["rbind"]
        }));
        sb.config["linux"]["maskedPaths"] = json!(["/proc/timer_list"]);
        sb.set_script("cat /proc/timer_list | head -c 16 | wc -c");
        let id = sb.new_id("fakenull");
        let out = sb.run(&id, &[]);
        out.one_line_error(&["null"]);
        sb.assert_nothing_left(&id);
        if fake == "regular" {
            assert_eq!(fs::read_to_string(&null).expect("fake null"), "not null\n");
        }
    }
}

/// Mount destinations that are symlinks: absolute to a host directory, and relative far
/// above the rootfs. The mounts land inside the rootfs; the host gets no mount and no file.
#[test]
fn mount_destinations_through_symlinks_stay_in_the_rootfs() {
    let mut sb = Sandbox::new("sec-mountlink");
    let host_target = HostDir::new("mnt");
    let unique = format!("berth-sec-up-{}", std::process::id());
    let host_up = PathBuf::from("/").join(&unique);
    let target = host_target.0.display().to_string();
    make_symlink(&sb, "mnt/abs", &target);
    fs::create_dir_all(sb.rootfs.join(target.trim_start_matches('/'))).expect("inside target");
    make_symlink(&sb, "mnt/up", "../../../../../../../..");
    sb.add_mount(json!({"destination": "/mnt/abs", "type": "tmpfs", "source": "tmpfs"}));
    sb.add_mount(json!({
        "destination": format!("/mnt/up/{unique}"), "type": "tmpfs", "source": "tmpfs"
    }));
    sb.set_script(&format!(
        "echo inside > /mnt/abs/written && echo inside > /{unique}/written && echo ran"
    ));
    let host = HostSnapshot::take(&[&target], &[&host_target.0]);
    let id = sb.new_id("mountlink");
    let out = sb.run(&id, &[]);
    if let Some(out) = succeeds_or_fails_cleanly(&sb, &id, out) {
        assert!(out.stdout.contains("ran"), "{}", out.stdout);
    }
    host.assert_unchanged();
    assert!(
        fs::read_dir(&host_target.0)
            .expect("host dir")
            .next()
            .is_none(),
        "a file appeared in the host directory"
    );
    let escaped = host_up.exists();
    let _ = fs::remove_dir_all(&host_up);
    assert!(!escaped, "{} was created on the host", host_up.display());
}

// ---------------------------------------------------------------------------------------------
// 4. /proc writes only reach procfs
// ---------------------------------------------------------------------------------------------

/// A directory bound over /proc/sys/net with a fake ipv4/ip_forward: the sysctl must not be
/// written into it.
#[test]
fn sysctl_writes_refuse_what_is_not_procfs() {
    let mut sb = Sandbox::new("sec-sysctl");
    let fake = sb.scratch("fake-net");
    fs::create_dir_all(fake.join("ipv4")).expect("fake ipv4");
    fs::write(fake.join("ipv4/ip_forward"), "0\n").expect("fake ip_forward");
    sb.add_mount(json!({
        "destination": "/proc/sys/net", "type": "bind", "source": fake, "options": ["bind"]
    }));
    sb.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    sb.set_script("echo ran");
    let id = sb.new_id("sysctl");
    // berth: "writing sysctl net.ipv4.ip_forward: Invalid cross-device link"; runc 1.1.5
    // refuses any mount inside /proc instead.
    let out = sb.run(&id, &[]);
    out.one_line_error(&[]);
    sb.assert_nothing_left(&id);
    assert_eq!(
        fs::read_to_string(fake.join("ipv4/ip_forward")).expect("fake ip_forward"),
        "0\n"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Exec'd processes keep the container's limits on privilege
// ---------------------------------------------------------------------------------------------

fn cap_line(status: &str, key: &str) -> u64 {
    u64::from_str_radix(status_field(status, key).expect("cap line"), 16).expect("hex")
}

#[test]
fn exec_gets_no_privilege_beyond_the_config() {
    let mut sb = Sandbox::new("sec-execpriv");
    sb.set_script("exec sleep 100000");
    let config: Value = sb.config["process"]["capabilities"].clone();
    let id = sb.new_id("execpriv");
    sb.run(&id, &["--detach"]).ok();
    let names = |set: &str| -> Vec<String> {
        config[set]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mask = |set: &str| {
        let names = names(set);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        crate::harness::cap_mask(&refs) & host_bounding_set()
    };
    for user in ["0", "1000:1000"] {
        let out = sb
            .rt(&[
                "exec",
                "--user",
                user,
                &id,
                "sh",
                "-c",
                "cat /proc/self/status; mount -t tmpfs x /mnt 2>/dev/null && echo MOUNTED; \
                 echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo SYSCTL; true",
            ])
            .ok();
        let status = &out.stdout;
        assert_eq!(
            cap_line(status, "CapBnd"),
            mask("bounding"),
            "bounding set ({user})"
        );
        assert_eq!(
            status_field(status, "NoNewPrivs"),
            Some("1"),
            "no_new_privs ({user})"
        );
        assert!(
            !status.contains("MOUNTED"),
            "exec'd process could mount ({user})"
        );
        assert!(
            !status.contains("SYSCTL"),
            "exec'd process wrote a host sysctl ({user})"
        );
        let effective = cap_line(status, "CapEff");
        if user == "0" {
            assert_eq!(effective, mask("effective"), "effective ({user})");
        } else {
            assert_eq!(effective & !mask("effective"), 0, "effective ({user})");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6. LSMs: applied where the host runs them, never silently where it does not
// ---------------------------------------------------------------------------------------------

fn host_runs_apparmor() -> bool {
    fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y")
}

fn host_runs_selinux() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

#[test]
fn features_report_the_hosts_lsms() {
    runc_diverges(
        "runc 1.1.5 reports AppArmor as enabled when compiled in",
        features_lsms,
    );
}

fn features_lsms() {
    let sb = Sandbox::new("sec-features");
    let out = sb.bare_cmd().arg("features").output().ok();
    let features: Value = serde_json::from_str(&out.stdout).expect("features is JSON");
    assert_eq!(
        features["linux"]["apparmor"]["enabled"],
        json!(host_runs_apparmor())
    );
    assert_eq!(
        features["linux"]["selinux"]["enabled"],
        json!(host_runs_selinux())
    );
}

/// An AppArmor profile is applied (a profile the host does not have fails the start
/// cleanly) or, on a host without AppArmor, ignored (what the issue asks, and newer runc).
#[test]
fn apparmor_profile_is_applied_or_ignored_like_runc() {
    runc_diverges(
        "runc 1.1.5 writes the profile even without AppArmor, and fails with EINVAL",
        apparmor_profile,
    );
}

fn apparmor_profile() {
    let mut sb = Sandbox::new("sec-apparmor");
    sb.config["process"]["apparmorProfile"] = json!("berth-test-no-such-profile");
    sb.set_script("echo ran");
    let id = sb.new_id("apparmor");
    let out = sb.run(&id, &[]);
    if host_runs_apparmor() {
        out.one_line_error(&[]);
        sb.assert_nothing_left(&id);
    } else {
        assert_eq!(out.ok().stdout, "ran\n");
    }
}

/// SELinux labels on a host without SELinux: a clear error naming the field, before
/// anything is made.
#[test]
fn selinux_labels_without_selinux_are_a_clear_error() {
    if host_runs_selinux() {
        return; // The host applies them; nothing to refuse.
    }
    runc_diverges(
        "runc 1.1.5 ignores SELinux labels on a host without SELinux",
        selinux_refusals,
    );
}

fn selinux_refusals() {
    let label = "system_u:system_r:container_t:s0:c1,c2";
    for (field, needle) in [("process", "selinuxLabel"), ("linux", "mountLabel")] {
        let mut sb = Sandbox::new("sec-selinux");
        sb.config[field][needle] = json!(label);
        sb.set_script("echo ran");
        let id = sb.new_id("selinux");
        let out = sb.run(&id, &[]);
        out.one_line_error(&[needle, "selinux"]);
        sb.assert_nothing_left(&id);
    }
}
