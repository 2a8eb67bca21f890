//! `exec` into a running container, observed from inside the exec'd process: namespaces,
//! identity, environment, capabilities, limits, terminals, pid files, pidfds, exit codes,
//! signals, the error cases, and a stress run that must leak nothing.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use serde_json::json;

use crate::harness::{
    cap_mask, read_pty, runc_diverges, runtime_is_runc, status_field, wait_until, ConsoleSocket,
    Sandbox, SETTLE_TIMEOUT,
};

/// A sandbox with a detached container whose init sleeps; returns (sandbox, id).
pub(crate) fn running(tag: &str, adjust: impl FnOnce(&mut Sandbox)) -> (Sandbox, String) {
    let mut sb = Sandbox::new(tag);
    sb.set_script("echo ready > /tmp/init-ready; exec sleep 100000");
    adjust(&mut sb);
    let id = sb.new_id(tag);
    sb.run(&id, &["--detach"]).ok();
    sb.wait_status(&id, "running");
    // "running" is as soon as the shell exec'd; its first line may not have run yet.
    sb.wait_rootfs_file("tmp/init-ready");
    (sb, id)
}

/// `exec ID sh -c SCRIPT` with extra flags before the id; asserts success, returns stdout.
#[track_caller]
pub(crate) fn exec_script(sb: &Sandbox, id: &str, flags: &[&str], script: &str) -> String {
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[id, "sh", "-c", script]);
    sb.rt(&args).ok().stdout
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().map(str::trim_end).collect()
}

#[test]
fn exec_joins_every_namespace_of_the_init() {
    let (sb, id) = running("execns", |_| {});
    let names = ["mnt", "pid", "net", "ipc", "uts", "cgroup"];
    let script = names
        .iter()
        .map(|n| format!("readlink /proc/self/ns/{n}"))
        .collect::<Vec<_>>()
        .join("; ");
    let inside = exec_script(&sb, &id, &[], &script);
    let init = sb.pid(&id);
    let expected: Vec<String> = names
        .iter()
        .map(|n| {
            fs::read_link(format!("/proc/{init}/ns/{n}"))
                .expect("read the init's namespace")
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        lines(&inside),
        expected,
        "exec'd process namespaces vs the init's"
    );
    // Born in the container's pid namespace: the init is pid 1 there, we are not.
    let pids = exec_script(&sb, &id, &[], "echo $$; cat /proc/1/cmdline | tr '\\0' ' '");
    let pids = lines(&pids);
    assert_ne!(pids[0], "1");
    assert!(pids[1].starts_with("sleep"), "{pids:?}");
    // Same root as the init: the file the init made is there.
    exec_script(&sb, &id, &[], "test -e /tmp/init-ready");
}

/// With --no-pivot the mount namespace's root is still the host's: exec must land in the
/// container's root all the same. In a user namespace the ids are the container's.
#[test]
fn exec_after_no_pivot_and_into_a_user_namespace() {
    let mut sb = Sandbox::new("execnopivot");
    sb.set_script("echo ready > /tmp/init-ready; exec sleep 100000");
    let id = sb.new_id("execnopivot");
    sb.run(&id, &["--detach", "--no-pivot"]).ok();
    sb.wait_status(&id, "running");
    sb.wait_rootfs_file("tmp/init-ready");
    exec_script(&sb, &id, &[], "test -e /tmp/init-ready");

    let (sb, id) = running("execuserns", |sb| {
        sb.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(json!({"type": "user"}));
        sb.config["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        sb.config["linux"]["gidMappings"] =
            json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        sb.config["mounts"]
            .as_array_mut()
            .expect("mounts")
            .retain(|m| m["type"] != json!("cgroup"));
    });
    let out = exec_script(
        &sb,
        &id,
        &["-u", "1000:1000"],
        "id -u; id -g; readlink /proc/self/ns/user",
    );
    let init = sb.pid(&id);
    let init_userns = fs::read_link(format!("/proc/{init}/ns/user")).expect("init's user ns");
    assert_eq!(
        lines(&out),
        ["1000", "1000", init_userns.to_str().expect("utf-8")]
    );
    // Seen from the host, the process runs as the mapped ids.
    let pid_file = sb.dir.join("userns.pid");
    sb.rt(&[
        "exec",
        "-d",
        "-u",
        "1000:1000",
        "--pid-file",
        pid_file.to_str().expect("utf-8"),
        &id,
        "sleep",
        "1000",
    ])
    .ok();
    let pid = fs::read_to_string(&pid_file).expect("pid file");
    let status = fs::read_to_string(format!("/proc/{}/status", pid.trim())).expect("status");
    assert_eq!(
        status_field(&status, "Uid"),
        Some("101000\t101000\t101000\t101000")
    );
    assert_eq!(
        status_field(&status, "Gid"),
        Some("201000\t201000\t201000\t201000")
    );
}

#[test]
fn exit_codes_pass_through() {
    let (sb, id) = running("execcode", |_| {});
    sb.rt(&["exec", &id, "true"]).code_is(0);
    sb.rt(&["exec", &id, "sh", "-c", "exit 3"]).code_is(3);
    sb.rt(&["exec", &id, "sh", "-c", "kill -9 $$"]).code_is(137);
}

#[test]
fn user_groups_cwd_and_env_flags() {
    let (sb, id) = running("execuser", |sb| {
        sb.config["process"]["env"] = json!(["PATH=/bin", "KEPT=yes"]);
    });
    let out = exec_script(
        &sb,
        &id,
        &["--user", "1000:1000", "-g", "10", "-g", "20", "--cwd", "/tmp", "-e", "FOO=bar baz", "-e", "KEPT=over"],
        "id -u; id -g; grep ^Groups /proc/self/status; pwd; echo \"$FOO\"; echo \"$KEPT\"; echo \"$HOME\"",
    );
    let l = lines(&out);
    assert_eq!(l[0], "1000");
    assert_eq!(l[1], "1000");
    let groups: BTreeSet<&str> = status_field(l[2], "Groups")
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(groups, BTreeSet::from(["10", "20"]));
    assert_eq!(&l[3..], ["/tmp", "bar baz", "over", "/home/user"]);
    // A uid alone keeps the config's gid.
    let out = exec_script(&sb, &id, &["-u", "1000"], "id -u; id -g");
    assert_eq!(lines(&out), ["1000", "0"]);
}

#[test]
fn capabilities_rlimits_and_no_new_privs_come_from_the_container() {
    let (sb, id) = running("execcaps", |sb| {
        let caps = json!(["CAP_KILL", "CAP_CHOWN"]);
        sb.config["process"]["capabilities"] = json!({
            "bounding": caps, "effective": caps, "permitted": caps
        });
        sb.config["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "hard": 321, "soft": 123}]);
        sb.config["process"]["noNewPrivileges"] = json!(false);
        sb.config["process"]["oomScoreAdj"] = json!(345);
    });
    let adj = exec_script(&sb, &id, &[], "cat /proc/self/oom_score_adj");
    assert_eq!(adj.trim(), "345", "oomScoreAdj applies to exec'd processes");
    let script = "grep -e ^Cap -e ^NoNewPrivs /proc/self/status; ulimit -n; ulimit -Hn";
    let status = exec_script(&sb, &id, &[], script);
    let container_caps = cap_mask(&["CAP_KILL", "CAP_CHOWN"]);
    for key in ["CapBnd", "CapEff", "CapPrm"] {
        let hex = status_field(&status, key).expect(key);
        assert_eq!(
            u64::from_str_radix(hex, 16).ok(),
            Some(container_caps),
            "{key}: {status}"
        );
    }
    assert_eq!(status_field(&status, "NoNewPrivs"), Some("0"));
    assert!(status.ends_with("123\n321\n"), "{status}");

    let status = exec_script(
        &sb,
        &id,
        &["--cap", "CAP_NET_RAW", "--no-new-privs"],
        script,
    );
    let with_raw = container_caps | cap_mask(&["CAP_NET_RAW"]);
    for key in ["CapBnd", "CapEff", "CapPrm"] {
        let hex = status_field(&status, key).expect(key);
        assert_eq!(
            u64::from_str_radix(hex, 16).ok(),
            Some(with_raw),
            "{key}: {status}"
        );
    }
    assert_eq!(status_field(&status, "NoNewPrivs"), Some("1"));
}

#[test]
fn process_file_runs_as_described() {
    let (sb, id) = running("execproc", |_| {});
    let path = sb.dir.join("process.json");
    let process = json!({
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [20]},
        "args": ["sh", "-c", "id; pwd; echo \"$X\"; grep ^CapEff /proc/self/status; ulimit -n"],
        "env": ["PATH=/bin", "X=from-file"],
        "cwd": "/etc",
        "capabilities": {"bounding": ["CAP_KILL"], "effective": [], "permitted": []},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 77, "soft": 77}],
        "noNewPrivileges": true
    });
    fs::write(&path, process.to_string()).expect("write process.json");
    let out = sb
        .rt(&["exec", "--process", path.to_str().expect("utf-8 path"), &id])
        .ok()
        .stdout;
    let l = lines(&out);
    assert_eq!(l[0], "uid=1000(user) gid=1000(user) groups=20");
    assert_eq!(&l[1..3], ["/etc", "from-file"]);
    assert_eq!(status_field(l[3], "CapEff"), Some("0000000000000000"));
    assert_eq!(l[4], "77");

    // A process file that is not JSON.
    fs::write(&path, "{not json").expect("write bad process.json");
    let out = sb
        .rt(&["exec", "-p", path.to_str().expect("utf-8 path"), &id])
        .code_is(255)
        .one_line_error(&[]);
    // runc prints only the JSON decoder's message.
    if !runtime_is_runc() {
        assert!(out.stderr.contains("process file"), "{}", out.stderr);
    }
}

/// A process file without noNewPrivileges keeps the container's (runc resets it to false).
#[test]
fn process_file_without_no_new_privileges_keeps_the_containers() {
    runc_diverges(
        "runc turns no_new_privs off when the process file omits it",
        || {
            let (sb, id) = running("execnnp", |sb| {
                sb.config["process"]["noNewPrivileges"] = json!(true);
            });
            let path = sb.dir.join("process.json");
            let process = json!({
                "user": {"uid": 0, "gid": 0},
                "args": ["grep", "^NoNewPrivs", "/proc/self/status"],
                "env": ["PATH=/bin"],
                "cwd": "/"
            });
            fs::write(&path, process.to_string()).expect("write process.json");
            let out = sb
                .rt(&["exec", "-p", path.to_str().expect("utf-8 path"), &id])
                .ok()
                .stdout;
            assert_eq!(status_field(&out, "NoNewPrivs"), Some("1"));
        },
    );
}

#[test]
fn tty_through_the_console_socket() {
    let (sb, id) = running("exectty", |_| {});
    let socket = ConsoleSocket::bind(sb.dir.join("exec-console.sock"));
    let sock = socket.path.to_str().expect("utf-8 path").to_string();
    let cmd = sb
        .cmd()
        .args(["exec", "--tty", "--detach", "--console-socket", &sock, &id])
        .args(["sh", "-c", "tty; echo exec-tty-done"]);
    let running_exec = cmd.spawn();
    let master = socket.receive_master(SETTLE_TIMEOUT);
    running_exec.wait().ok();
    let text = read_pty(&master, SETTLE_TIMEOUT);
    let l = lines(&text);
    assert!(l[0].starts_with("/dev/pts/"), "tty output: {text:?}");
    assert!(l.contains(&"exec-tty-done"), "{text:?}");
}

#[test]
fn foreground_tty_is_proxied() {
    let (sb, id) = running("exectty2", |_| {});
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave: OwnedFd = pty.slave;
    let exec = sb
        .cmd()
        .args(["exec", "-t", &id, "sh", "-c", "tty; exit 6"])
        .stdin(std::process::Stdio::from(
            slave.try_clone().expect("dup slave"),
        ))
        .stdout(std::process::Stdio::from(
            slave.try_clone().expect("dup slave"),
        ))
        .stderr(std::process::Stdio::from(slave))
        .spawn();
    let text = read_pty(&pty.master, SETTLE_TIMEOUT);
    let out = exec.wait();
    assert_eq!(
        out.code,
        Some(6),
        "exit code through the pty proxy: {out:?}\n{text:?}"
    );
    assert!(text.contains("/dev/pts/"), "{text:?}");
}

#[test]
fn detach_writes_the_pid_file_of_a_process_in_the_container() {
    let (sb, id) = running("execpid", |_| {});
    let pid_file = sb.dir.join("exec.pid");
    sb.rt(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().expect("utf-8 path"),
        &id,
        "sleep",
        "1000",
    ])
    .ok();
    let pid: i32 = fs::read_to_string(&pid_file)
        .expect("pid file written")
        .trim()
        .parse()
        .expect("pid file holds a number");
    let init = sb.pid(&id);
    let ns = |p: i32| fs::read_link(format!("/proc/{p}/ns/pid")).expect("pid ns");
    assert_eq!(
        ns(pid),
        ns(init),
        "the exec'd process is in the container's pid namespace"
    );
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(cmdline.starts_with(b"sleep\0"), "{cmdline:?}");
    // `kill --all` reaches it too.
    sb.rt(&["kill", "--all", &id, "KILL"]).ok();
    wait_until("the exec'd process to die", SETTLE_TIMEOUT, || {
        fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z"))
    });
}

#[test]
fn signals_are_forwarded_to_a_foreground_exec() {
    let (sb, id) = running("execsig", |_| {});
    let exec = sb
        .cmd()
        .args(["exec", &id, "sh", "-c"])
        .arg("trap 'exit 42' TERM; echo > /tmp/trap-set; while :; do sleep 0.05; done")
        .spawn();
    sb.wait_rootfs_file("tmp/trap-set");
    exec.signal(libc::SIGTERM);
    exec.wait().code_is(42);
}

#[test]
fn preserve_fds_passes_descriptors() {
    let (sb, id) = running("execfds", |_| {});
    let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
    sb.cmd()
        .args([
            "exec",
            "--preserve-fds",
            "1",
            &id,
            "sh",
            "-c",
            "echo through-fd-3 >&3",
        ])
        .pass_fd(write_end, 3)
        .output()
        .ok();
    let mut text = String::new();
    fs::File::from(read_end)
        .read_to_string(&mut text)
        .expect("read the pipe");
    assert_eq!(text, "through-fd-3\n");
}

/// The pidfd sent over --pidfd-socket names the right process (fdinfo's Pid line).
#[track_caller]
fn pid_of_pidfd(fd: &OwnedFd) -> i32 {
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).expect("fdinfo");
    status_field(&info, "Pid")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a pidfd: {info}"))
}

#[test]
fn pidfd_socket_for_exec_and_create() {
    runc_diverges("runc 1.1.5 has no --pidfd-socket", pidfd_socket_checks);
}

fn pidfd_socket_checks() {
    let (sb, id) = running("execpidfd", |_| {});
    let socket = ConsoleSocket::bind(sb.dir.join("pidfd.sock"));
    let sock = socket.path.to_str().expect("utf-8 path").to_string();
    let pid_file = sb.dir.join("exec.pid");
    let exec = sb
        .cmd()
        .args(["exec", "-d", "--pidfd-socket", &sock, "--pid-file"])
        .arg(&pid_file)
        .args([&id, "sleep", "1000"])
        .spawn();
    let pidfd = socket.receive_master(SETTLE_TIMEOUT);
    exec.wait().ok();
    let pid: i32 = fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(pid_of_pidfd(&pidfd), pid);

    let mut sb2 = Sandbox::new("createpidfd");
    sb2.set_script("sleep 1000");
    let socket2 = ConsoleSocket::bind(sb2.dir.join("pidfd.sock"));
    let id2 = sb2.new_id("createpidfd");
    sb2.save_config();
    let create = sb2
        .cmd()
        .args(["create", "--pidfd-socket"])
        .arg(&socket2.path)
        .arg("--bundle")
        .arg(&sb2.bundle)
        .arg(&id2)
        .spawn();
    let init_pidfd = socket2.receive_master(SETTLE_TIMEOUT);
    create.wait().ok();
    assert_eq!(pid_of_pidfd(&init_pidfd), sb2.pid(&id2));
    // A socket nobody listens on: create fails and leaves nothing.
    let id3 = sb2.new_id("createpidfd");
    let missing = sb2.dir.join("missing.sock");
    sb2.rt(&[
        "create",
        "--pidfd-socket",
        missing.to_str().expect("utf-8"),
        "--bundle",
        sb2.bundle.to_str().expect("utf-8"),
        &id3,
    ])
    .one_line_error(&["pidfd"]);
    assert!(!sb2.state_root.join(&id3).exists());
}

#[test]
fn exec_fails_clearly() {
    let (sb, id) = running("execerr", |_| {});
    sb.rt(&["exec", "no-such-container", "true"])
        .code_is(255)
        .one_line_error(&["does not exist"]);
    sb.rt(&["exec", &id]).code_is(255).one_line_error(&["args"]);
    sb.rt(&["exec", &id, "/no/such/binary"])
        .code_is(255)
        .one_line_error(&["/no/such/binary"]);
    sb.rt(&["exec", "--cwd", "relative", &id, "true"])
        .code_is(255)
        .one_line_error(&["cwd"]);
    sb.rt(&["exec", "-u", "root", &id, "true"])
        .one_line_error(&["uid"]);
    sb.rt(&["exec", "-t", "-d", &id, "tty"])
        .one_line_error(&["console socket"]);
    let sock = sb.dir.join("nobody.sock");
    sb.rt(&[
        "exec",
        "--console-socket",
        sock.to_str().expect("utf-8"),
        &id,
        "true",
    ])
    .one_line_error(&["tty"]);
    // The container keeps running, and nothing was left inside it.
    assert_eq!(sb.status(&id), "running");
    assert_eq!(
        sb.processes_inside(),
        [sb.pid(&id)],
        "only the init is left"
    );
}

/// Bad input runc 1.1.5 lets through: an unknown capability (runc drops it with a
/// warning; berth refuses it, as `create` does), a command beside --process (runc ignores
/// the command), --preserve-fds beyond the descriptors passed (runc then hands its own
/// descriptors, such as /sys/fs/cgroup, to the process).
#[test]
fn exec_refuses_unknown_caps_and_ambiguous_commands() {
    runc_diverges(
        "runc ignores unknown --cap names, a command given with --process, missing preserved fds",
        || {
            let (sb, id) = running("execbad", |_| {});
            sb.rt(&["exec", "--cap", "CAP_NOT_A_CAP", &id, "true"])
                .code_is(255)
                .one_line_error(&["CAP_NOT_A_CAP"]);
            let path = sb.dir.join("process.json");
            let process = json!({"user": {"uid": 0, "gid": 0}, "args": ["true"], "cwd": "/"});
            fs::write(&path, process.to_string()).expect("write process.json");
            sb.rt(&[
                "exec",
                "--process",
                path.to_str().expect("utf-8 path"),
                &id,
                "true",
            ])
            .code_is(255)
            .one_line_error(&["--process"]);
            // --preserve-fds beyond what was passed (runc hands over its own descriptors).
            sb.rt(&["exec", "--preserve-fds", "2", &id, "true"])
                .code_is(255)
                .one_line_error(&["descriptor 3"]);
            assert_eq!(
                sb.processes_inside(),
                [sb.pid(&id)],
                "only the init is left"
            );
        },
    );
}

#[test]
fn exec_into_a_stopped_or_paused_container() {
    let (sb, id) = running("execstate", |_| {});
    sb.rt(&["pause", &id]).ok();
    sb.rt(&["exec", &id, "true"])
        .code_is(255)
        .one_line_error(&["paused"]);
    // --ignore-paused: the processes start frozen and run on resume (several at once: none
    // may keep the container locked while frozen, or `resume` would wait forever).
    let execs: Vec<_> = (0..5)
        .map(|i| {
            sb.cmd()
                .args(["exec", "--ignore-paused", &id, "sh", "-c"])
                .arg(format!("echo ran-after-resume-{i}"))
                .spawn()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    sb.rt(&["resume", &id]).ok();
    for (i, exec) in execs.into_iter().enumerate() {
        let out = exec.wait().ok();
        assert_eq!(out.stdout, format!("ran-after-resume-{i}\n"));
    }

    sb.rt(&["kill", &id, "KILL"]).ok();
    sb.wait_status(&id, "stopped");
    sb.rt(&["exec", &id, "true"])
        .code_is(255)
        .one_line_error(&["stopped"]);
    sb.rt(&["delete", &id]).ok();
    sb.assert_nothing_left(&id);
}

/// 200 execs one after another, then 20 at once, into one container: every one succeeds,
/// sees only stdio as its descriptors, and nothing is left running but the init.
#[test]
fn stress_sequential_and_parallel_execs_leak_nothing() {
    let (sb, id) = running("execstress", |_| {});
    // ls's own descriptors: stdio, and 3 for the directory it reads.
    let fds_script = "exec ls -1 /proc/self/fd";
    for i in 0..200 {
        let out = sb
            .rt(&["exec", &id, "sh", "-c", &format!("echo {i}; {fds_script}")])
            .ok();
        assert_eq!(
            lines(&out.stdout),
            [i.to_string().as_str(), "0", "1", "2", "3"],
            "exec #{i}"
        );
    }
    let parallel: Vec<_> = (0..20)
        .map(|i| {
            sb.cmd()
                .args(["exec", &id, "sh", "-c", &format!("sleep 0.2; echo p{i}")])
                .timeout(Duration::from_secs(60))
                .spawn()
        })
        .collect();
    for (i, exec) in parallel.into_iter().enumerate() {
        let out = exec.wait().ok();
        assert_eq!(out.stdout, format!("p{i}\n"));
    }
    let init = sb.pid(&id);
    wait_until("only the init to be left", SETTLE_TIMEOUT, || {
        sb.processes_inside() == vec![init]
    });
    assert_eq!(sb.status(&id), "running");
}

/// The exec'd process gets the container's seccomp filter.
#[test]
fn exec_inherits_the_containers_seccomp_filter() {
    let (sb, id) = running("execseccomp", |sb| {
        sb.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let out = sb
        .rt(&[
            "exec",
            &id,
            "sh",
            "-c",
            "grep ^Seccomp: /proc/self/status; mkdir /tmp/denied",
        ])
        .failed();
    assert_eq!(status_field(&out.stdout, "Seccomp"), Some("2"), "{out:?}");
    assert!(
        out.stderr.contains("Operation not permitted"),
        "{}",
        out.stderr
    );
    assert!(!sb.rootfs.join("tmp/denied").exists());
}

/// The `exec --process FILE --detach --pid-file F [--console-socket S]` calls containerd,
/// docker and podman make, with the process files they wrote (../shared/client-specs).
#[test]
fn engine_exec_process_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/client-specs");
    let (sb, id) = running("execengines", |_| {});
    for engine in ["containerd", "docker", "podman"] {
        let file = dir.join(format!("{engine}-exec-process.json"));
        let mut process: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&file).expect("read process file"))
                .expect("process file is JSON");
        process["args"] = json!(["sh", "-c", format!("echo {engine}-exec-ran; id -u")]);
        let path = sb.dir.join(format!("{engine}-process.json"));
        fs::write(&path, process.to_string()).expect("write process file");
        let pid_file = sb.dir.join(format!("{engine}.pid"));
        let out = sb
            .rt(&[
                "exec",
                "--process",
                path.to_str().expect("utf-8"),
                "--detach",
                "--pid-file",
                pid_file.to_str().expect("utf-8"),
                &id,
            ])
            .ok();
        let pid = fs::read_to_string(&pid_file).expect("pid file");
        wait_until("the exec'd process to exit", SETTLE_TIMEOUT, || {
            !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists()
        });
        assert_eq!(
            lines(&out.fresh_stdout()),
            [format!("{engine}-exec-ran").as_str(), "0"],
            "{engine}"
        );

        let tty_file = dir.join(format!("{engine}-exec-process-tty.json"));
        let mut process: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&tty_file).expect("read tty process file"))
                .expect("tty process file is JSON");
        process["args"] = json!(["sh", "-c", "tty; echo tty-exec-done"]);
        fs::write(&path, process.to_string()).expect("write process file");
        let socket = ConsoleSocket::bind(sb.dir.join(format!("{engine}-console.sock")));
        let exec = sb
            .cmd()
            .args([
                "exec",
                "--process",
                path.to_str().expect("utf-8"),
                "--detach",
                "--pid-file",
                pid_file.to_str().expect("utf-8"),
            ])
            .arg("--console-socket")
            .arg(&socket.path)
            .arg(&id)
            .spawn();
        let master = socket.receive_master(SETTLE_TIMEOUT);
        exec.wait().ok();
        let text = read_pty(&master, SETTLE_TIMEOUT);
        let l = lines(&text);
        assert!(l[0].starts_with("/dev/pts/"), "{engine}: {text:?}");
        assert!(l.contains(&"tty-exec-done"), "{engine}: {text:?}");
    }
}

/// With a SCMP_ACT_NOTIFY profile the exec'd process's listener fd goes to the agent at
/// listenerPath too; once the agent closes it, the notified syscall fails with ENOSYS.
#[test]
fn exec_hands_its_seccomp_notify_fd_to_the_agent() {
    let mut sb = Sandbox::new("execnotify");
    let agent = ConsoleSocket::bind(sb.dir.join("agent.sock"));
    sb.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": agent.path,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    sb.set_script("exec sleep 100000");
    let id = sb.new_id("execnotify");
    sb.save_config();
    let run = sb
        .cmd()
        .args(["run", "--detach", "--bundle"])
        .arg(&sb.bundle)
        .arg(&id)
        .spawn();
    drop(agent.receive_master(SETTLE_TIMEOUT));
    run.wait().ok();
    let exec = sb
        .cmd()
        .args([
            "exec",
            &id,
            "sh",
            "-c",
            "mkdir /tmp/notified; echo mkdir-done",
        ])
        .spawn();
    // Closing the listener fd answers every pending and future notification with ENOSYS.
    drop(agent.receive_master(SETTLE_TIMEOUT));
    let out = exec.wait().ok();
    assert_eq!(out.stdout, "mkdir-done\n");
    assert!(
        out.stderr.contains("Function not implemented"),
        "{}",
        out.stderr
    );
    assert!(!sb.rootfs.join("tmp/notified").exists());
}

/// The v1 `pids` directory of process `pid`, from /proc/PID/cgroup.
fn pids_cgroup_of(pid: i32) -> String {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup");
    text.lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            ctrls
                .split(',')
                .any(|c| c == "pids")
                .then(|| path.to_string())
        })
        .expect("a pids line in /proc/PID/cgroup")
}

/// The exec'd process joins the container's cgroup, or with `--cgroup CTRL:SUB` an
/// existing sub-cgroup of it in that hierarchy.
#[test]
fn exec_joins_the_container_cgroup_or_a_sub_cgroup() {
    if !std::path::Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists() {
        eprintln!("skipped: no cgroup v1 pids hierarchy on this host");
        return;
    }
    let (sb, id) = running("execcgroup", |_| {});
    let init = sb.pid(&id);
    let container_cgroup = pids_cgroup_of(init);
    let pid_file = sb.dir.join("cg.pid");
    let pid_file_arg = pid_file.to_str().expect("utf-8").to_string();
    let detached = |flags: &[&str]| -> i32 {
        let mut args = vec!["exec", "-d", "--pid-file", &pid_file_arg];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[&id, "sleep", "1000"]);
        sb.rt(&args).ok();
        fs::read_to_string(&pid_file)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    };
    assert_eq!(pids_cgroup_of(detached(&[])), container_cgroup);

    let sub_dir = std::path::Path::new("/sys/fs/cgroup/pids")
        .join(container_cgroup.trim_start_matches('/'))
        .join("sub");
    fs::create_dir(&sub_dir).expect("make the sub-cgroup");
    let in_sub = detached(&["--cgroup", "pids:sub"]);
    assert_eq!(pids_cgroup_of(in_sub), format!("{container_cgroup}/sub"));
    sb.rt(&["exec", "--cgroup", "pids:missing", &id, "true"])
        .code_is(255)
        .one_line_error(&["missing"]);
    // delete removes the sub-cgroup with the container's.
    sb.rt(&["delete", "--force", &id]).ok();
    assert!(!sub_dir.exists(), "{} left behind", sub_dir.display());
}

/// Pipes given to `exec` reach the process unchanged (what a shim passes).
#[test]
fn non_tty_stdio_is_passed_through() {
    let (sb, id) = running("execstdio", |_| {});
    let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
    let mut writer = fs::File::from(write_end);
    std::io::Write::write_all(&mut writer, b"line one\nline two\n").expect("write stdin");
    drop(writer);
    let out = sb
        .cmd()
        .args([
            "exec",
            &id,
            "sh",
            "-c",
            "tr a-z A-Z; ls -l /proc/self/fd/0 >&2",
        ])
        .stdin(std::process::Stdio::from(read_end))
        .output()
        .ok();
    assert_eq!(out.stdout, "LINE ONE\nLINE TWO\n");
    assert!(
        out.stderr.contains("pipe:"),
        "stdin is the caller's pipe: {}",
        out.stderr
    );
}

/// Reads from a pty master until `needle` shows up (or panics after the settle timeout).
fn read_until(master: &OwnedFd, needle: &str) -> String {
    use std::os::fd::AsFd;
    let mut file = fs::File::from(master.try_clone().expect("dup master"));
    let deadline = std::time::Instant::now() + SETTLE_TIMEOUT;
    let mut text = String::new();
    let mut buf = [0u8; 1024];
    while !text.contains(needle) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(
            !left.is_zero() && crate::harness::poll_readable(master.as_fd(), left),
            "timed out waiting for {needle:?} in {text:?}"
        );
        let n = file.read(&mut buf).expect("read the pty");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text
}

/// In the foreground with --tty, a window size change of berth's terminal (SIGWINCH)
/// reaches the process's pty.
#[test]
fn foreground_tty_follows_window_size_changes() {
    let (sb, id) = running("execwinch", |_| {});
    let size = |rows: u16, cols: u16| libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size(24, 80)), None).expect("openpty");
    let slave: OwnedFd = pty.slave;
    let exec = sb
        .cmd()
        .args([
            "exec",
            "-t",
            &id,
            "sh",
            "-c",
            "stty size; read go; stty size",
        ])
        .stdin(std::process::Stdio::from(
            slave.try_clone().expect("dup slave"),
        ))
        .stdout(std::process::Stdio::from(
            slave.try_clone().expect("dup slave"),
        ))
        .stderr(std::process::Stdio::from(slave))
        .spawn();
    read_until(&pty.master, "24 80");
    // SAFETY: TIOCSWINSZ on our own pty master with a valid winsize.
    let rc = unsafe { libc::ioctl(pty.master.as_raw_fd(), libc::TIOCSWINSZ, &size(33, 101)) };
    assert_eq!(rc, 0, "resize the pty");
    exec.signal(libc::SIGWINCH);
    // Give berth the signal before the process reads its size again.
    std::thread::sleep(Duration::from_millis(200));
    let mut master = fs::File::from(pty.master.try_clone().expect("dup master"));
    std::io::Write::write_all(&mut master, b"go\r").expect("write to the pty");
    read_until(&pty.master, "33 101");
    exec.wait().ok();
}

/// Issue 5's `run` options: the foreground `run` is a subreaper, so an orphan of the
/// container (no pid namespace here, so it is not the init's) is reparented to it;
/// `--no-subreaper` leaves orphans to the host.
#[test]
fn foreground_run_is_a_subreaper_unless_told_not_to() {
    for (flags, berth_adopts) in [(&[][..], true), (&["--no-subreaper"][..], false)] {
        let mut sb = Sandbox::new("subreaper");
        sb.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .retain(|n| n["type"] != json!("pid"));
        sb.set_script(
            "(sleep 2 & echo $! > /tmp/orphan.pid); sleep 0.5; \
             grep ^PPid: /proc/$(cat /tmp/orphan.pid)/status",
        );
        let id = sb.new_id("subreaper");
        let run = sb.run_cmd(&id, flags).spawn();
        let berth = run.pid();
        let out = run.wait().ok();
        let ppid: i32 = status_field(&out.stdout, "PPid")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no PPid line: {out:?}"));
        assert_eq!(
            ppid == berth,
            berth_adopts,
            "{flags:?}: orphan's parent {ppid}, berth {berth}"
        );
        // The sandbox kills the orphan (rooted in its rootfs) when dropped.
    }
}

/// The CPUs a process may run on, from /proc/PID/status (`self` for the test itself).
fn cpus_allowed(pid: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status_field(&status, "Cpus_allowed_list")
        .expect("Cpus_allowed_list")
        .to_string()
}

/// process.execCPUAffinity: `final` is where an exec'd process runs once in the container's
/// cgroup, `initial` only where berth runs while setting it up (without `final` the process
/// gets the container's CPUs); the init is left alone (the spec excludes it). A process file without the field inherits the container's; one with its
/// own uses that.
#[test]
fn exec_cpu_affinity_final_applies_to_exec_only() {
    let ours = cpus_allowed("self");
    if !ours.contains(['-', ',']) {
        eprintln!("skipped: this test needs two CPUs (allowed: {ours})");
        return;
    }
    let (sb, id) = running("execaff", |sb| {
        sb.config["process"]["execCPUAffinity"] = json!({"initial": "0", "final": "1"});
    });
    assert_eq!(cpus_allowed(&sb.pid(&id).to_string()), ours, "the init");
    let script = "grep Cpus_allowed_list /proc/self/status";
    let plain = exec_script(&sb, &id, &[], script);
    assert!(plain.trim().ends_with("\t1"), "exec: {plain}");
    // `exec --process` with the process file's own execCPUAffinity, or none.
    let exec_file = |affinity: Option<serde_json::Value>| {
        let path = sb.dir.join("process.json");
        let mut process =
            json!({"user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", script], "cwd": "/"});
        if let Some(affinity) = affinity {
            process["execCPUAffinity"] = affinity;
        }
        fs::write(&path, process.to_string()).expect("write process.json");
        let file = path.to_str().expect("utf-8 path");
        sb.rt(&["exec", "--process", file, &id]).ok().stdout
    };
    let inherited = exec_file(None);
    assert!(
        inherited.trim().ends_with("\t1"),
        "exec --process, inherited: {inherited}"
    );
    let own = exec_file(Some(json!({"final": "0"})));
    assert!(
        own.trim().ends_with("\t0"),
        "exec --process, its own: {own}"
    );
    // `initial` alone: the process ends up on the container's CPUs, not on `initial`'s.
    let initial_only = exec_file(Some(json!({"initial": "0"})));
    assert!(
        initial_only.trim().ends_with(&format!("\t{ours}")),
        "exec --process with initial only: {initial_only}"
    );
    sb.rt(&["delete", "--force", &id]).ok();
}

/// A CPU list that is no list fails create in one line, leaving nothing; a CPU the machine
/// does not have fails the exec (sched_setaffinity) in one line, the container running on.
#[test]
fn bad_exec_cpu_affinity_fails_cleanly() {
    let mut sb = Sandbox::new("execaffbad");
    sb.config["process"]["execCPUAffinity"] = json!({"final": "1-x"});
    sb.set_script("true");
    let id = sb.new_id("execaffbad");
    sb.run(&id, &[]).one_line_error(&["execCPUAffinity.final"]);
    sb.assert_nothing_left(&id);

    let (sb, id) = running("execaffmissing", |sb| {
        sb.config["process"]["execCPUAffinity"] = json!({"final": "8000"});
    });
    sb.rt(&["exec", &id, "true"])
        .one_line_error(&["execCPUAffinity.final", "sched_setaffinity"]);
    assert_eq!(sb.status(&id), "running");
    sb.rt(&["delete", "--force", &id]).ok();
}
