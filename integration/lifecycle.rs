//! Container lifecycle seen from outside: create, start, state, list, kill, delete, run.

use std::fs;

use serde_json::{json, Value};

use crate::harness::{is_warning_line, Sandbox, SETTLE_TIMEOUT};

const SLEEPER: &str = "sleep 60";

#[test]
fn create_start_state_go_created_running_stopped() {
    let mut sb = Sandbox::new("states");
    sb.config["annotations"] = json!({"org.example.key": "value"});
    let (id, _) = sb.create_script("states", SLEEPER);

    assert!(
        sb.state_root.join(&id).is_dir(),
        "state is kept under --root/<id>"
    );
    let state = sb.state(&id);
    assert_eq!(state["id"], json!(id));
    assert_eq!(state["status"], json!("created"));
    assert!(
        state["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{state}"
    );
    assert_eq!(state["bundle"], json!(sb.bundle.to_str().unwrap()));
    assert_eq!(
        state["annotations"]["org.example.key"],
        json!("value"),
        "{state}"
    );
    let pid = state["pid"]
        .as_i64()
        .expect("a created container has a pid");
    assert!(pid > 0);
    // The created container's process exists and has not run the user program yet.
    let comm = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        !comm.contains("sleep"),
        "user program ran before start: {comm:?}"
    );

    sb.rt(&["start", &id]).ok();
    sb.wait_status(&id, "running");
    assert_eq!(sb.pid(&id) as i64, pid, "start keeps the pid");

    sb.rt(&["kill", &id, "KILL"]).ok();
    sb.wait_status(&id, "stopped");

    sb.rt(&["delete", &id]).ok();
    sb.rt(&["state", &id]).failed();
    sb.assert_nothing_left(&id);
}

#[test]
fn created_container_runs_program_only_after_start() {
    let mut sb = Sandbox::new("startgate");
    let (id, created) =
        sb.create_script("gate", "echo started > /tmp/marker; echo out-after-start");
    assert!(
        !sb.rootfs.join("tmp/marker").exists(),
        "program ran before start"
    );
    sb.rt(&["start", &id]).ok();
    assert_eq!(sb.wait_rootfs_file("/tmp/marker").trim(), "started");
    sb.wait_status(&id, "stopped");
    assert_eq!(created.fresh_stdout().trim(), "out-after-start");
    sb.rt(&["delete", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn dead_init_reports_stopped() {
    let mut sb = Sandbox::new("deadinit");
    let (id, _) = sb.create_script("dead", "exit 3");
    sb.rt(&["start", &id]).ok();
    sb.wait_status(&id, "stopped");
    let state = sb.state(&id);
    assert_eq!(state["status"], json!("stopped"));
    sb.rt(&["delete", &id]).ok();
    sb.assert_nothing_left(&id);
}

/// The init killed behind the runtime's back (not through `kill`) still reports stopped.
#[test]
fn externally_killed_init_reports_stopped() {
    let mut sb = Sandbox::new("extkill");
    let (id, _) = sb.create_script("extkill", SLEEPER);
    sb.rt(&["start", &id]).ok();
    sb.wait_status(&id, "running");
    let pid = sb.pid(&id);
    // SAFETY: kill(2) on the container's init pid, just read from the runtime's state.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill {pid}");
    sb.wait_status(&id, "stopped");
    sb.rt(&["delete", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn pid_file_holds_the_container_pid() {
    let mut sb = Sandbox::new("pidfile");
    sb.set_script(SLEEPER);
    let id = sb.new_id("pidfile");
    let pid_file = sb.dir.join("container.pid");
    sb.create(&id, &["--pid-file", pid_file.to_str().unwrap()])
        .ok();
    let written = fs::read_to_string(&pid_file).expect("pid file written");
    assert_eq!(
        written
            .trim()
            .parse::<i32>()
            .expect("pid file holds a number"),
        sb.pid(&id)
    );
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
}

fn list_json(sb: &Sandbox) -> Vec<Value> {
    let out = sb.rt(&["list", "--format", "json"]).ok();
    let value: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("list --format json is not JSON ({e}): {}", out.stdout));
    match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => panic!("list --format json is not an array: {other}"),
    }
}

#[test]
fn list_shows_table_json_and_quiet() {
    let mut sb = Sandbox::new("list");
    let (first, _) = sb.create_script("lista", SLEEPER);
    let (second, _) = sb.create_script("listb", SLEEPER);
    sb.rt(&["start", &second]).ok();
    sb.wait_status(&second, "running");

    let table = sb.rt(&["list"]).ok().stdout;
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{table}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let row = |id: &str| {
        rows.iter()
            .find(|r| r.first() == Some(&id))
            .unwrap_or_else(|| panic!("{id} missing from list:\n{table}"))
            .clone()
    };
    assert_eq!(row(&first)[2], "created");
    assert_eq!(row(&second)[2], "running");
    assert_eq!(row(&first)[1], sb.pid(&first).to_string());
    assert_eq!(row(&first)[3], sb.bundle.to_str().unwrap());

    let quiet = sb.rt(&["list", "-q"]).ok().stdout;
    let mut ids: Vec<&str> = quiet.lines().collect();
    ids.sort();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort();
    assert_eq!(ids, expected);

    let items = list_json(&sb);
    assert_eq!(items.len(), 2, "{items:?}");
    for item in &items {
        let id = item["id"].as_str().expect("list entry has an id");
        assert_eq!(item["status"], json!(sb.status(id)));
        assert_eq!(item["pid"], json!(sb.pid(id)));
        assert_eq!(item["bundle"], json!(sb.bundle.to_str().unwrap()));
    }

    for id in [&first, &second] {
        sb.rt(&["delete", "--force", id]).ok();
    }
    for id in [&first, &second] {
        sb.assert_nothing_left(id);
    }
    assert!(list_json(&sb).is_empty());
    let table = sb.rt(&["list"]).ok().stdout;
    assert_eq!(
        table.lines().count(),
        1,
        "only the header is left:\n{table}"
    );
    assert!(sb.rt(&["list", "-q"]).ok().stdout.trim().is_empty());
}

/// Starts a container whose init traps SIGTERM and SIGUSR1, writing the signal's name to
/// /tmp/signal, and waits until the trap is installed.
fn trapping_container(sb: &mut Sandbox, tag: &str) -> String {
    let (id, _) = sb.create_script(
        tag,
        "trap 'echo TERM > /tmp/signal; exit 0' TERM; \
         trap 'echo USR1 > /tmp/signal; exit 0' USR1; \
         echo ready > /tmp/ready; sleep 60 & wait",
    );
    sb.rt(&["start", &id]).ok();
    sb.wait_rootfs_file("/tmp/ready");
    id
}

fn assert_signal_delivered(sb: &Sandbox, id: &str, kill_args: &[&str], expected: &str) {
    let mut args = vec!["kill", id];
    args.extend_from_slice(kill_args);
    sb.rt(&args).ok();
    assert_eq!(
        sb.wait_rootfs_file("/tmp/signal").trim(),
        expected,
        "kill {kill_args:?}"
    );
    sb.wait_status(id, "stopped");
    sb.rt(&["delete", id]).ok();
    sb.assert_nothing_left(id);
    let _ = fs::remove_file(sb.rootfs.join("tmp/signal"));
    let _ = fs::remove_file(sb.rootfs.join("tmp/ready"));
}

#[test]
fn kill_defaults_to_sigterm() {
    let mut sb = Sandbox::new("killdefault");
    let id = trapping_container(&mut sb, "killdef");
    assert_signal_delivered(&sb, &id, &[], "TERM");
}

#[test]
fn kill_by_name_with_and_without_sig_prefix() {
    let mut sb = Sandbox::new("killname");
    let id = trapping_container(&mut sb, "killname");
    assert_signal_delivered(&sb, &id, &["USR1"], "USR1");
    let id = trapping_container(&mut sb, "killsig");
    assert_signal_delivered(&sb, &id, &["SIGTERM"], "TERM");
}

#[test]
fn kill_by_number() {
    let mut sb = Sandbox::new("killnum");
    let id = trapping_container(&mut sb, "killnum");
    assert_signal_delivered(&sb, &id, &[&libc::SIGUSR1.to_string()], "USR1");
    let id = trapping_container(&mut sb, "killnine");
    sb.rt(&["kill", &id, "9"]).ok();
    sb.wait_status(&id, "stopped");
    sb.rt(&["delete", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn kill_all_reaches_every_process() {
    let mut sb = Sandbox::new("killall");
    let (id, _) = sb.create_script(
        "killall",
        "sleep 60 & sleep 60 & echo ready > /tmp/ready; wait",
    );
    sb.rt(&["start", &id]).ok();
    sb.wait_rootfs_file("/tmp/ready");
    sb.rt(&["kill", "--all", &id, "KILL"]).ok();
    sb.wait_status(&id, "stopped");
    sb.rt(&["delete", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn delete_force_removes_a_running_container() {
    let mut sb = Sandbox::new("delforce");
    let (id, _) = sb.create_script("delforce", SLEEPER);
    sb.rt(&["start", &id]).ok();
    sb.wait_status(&id, "running");
    sb.rt(&["delete", "--force", &id]).ok();
    sb.rt(&["state", &id]).failed();
    sb.assert_nothing_left(&id);
}

#[test]
fn delete_force_removes_a_created_container() {
    let mut sb = Sandbox::new("delcreated");
    let (id, _) = sb.create_script("delcreated", SLEEPER);
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn run_returns_the_exit_code_and_deletes() {
    let mut sb = Sandbox::new("runexit");
    sb.set_script("echo from-run; exit 7");
    let id = sb.new_id("runexit");
    let out = sb.run(&id, &[]).code_is(7);
    assert_eq!(out.stdout.trim(), "from-run");
    sb.assert_nothing_left(&id);
}

#[test]
fn run_returns_128_plus_signal_when_killed() {
    let mut sb = Sandbox::new("runsignal");
    sb.set_script("echo ready > /tmp/ready; sleep 60");
    let id = sb.new_id("runsig");
    let running = sb.run_cmd(&id, &[]).spawn();
    sb.wait_rootfs_file("/tmp/ready");
    sb.rt(&["kill", &id, "KILL"]).ok();
    running.wait().code_is(128 + libc::SIGKILL);
    sb.assert_nothing_left(&id);
}

#[test]
fn run_forwards_signals_to_the_container() {
    let mut sb = Sandbox::new("runforward");
    sb.set_script("trap 'exit 42' TERM; echo ready > /tmp/ready; sleep 60 & wait");
    let id = sb.new_id("runfwd");
    let running = sb.run_cmd(&id, &[]).spawn();
    sb.wait_rootfs_file("/tmp/ready");
    running.signal(libc::SIGTERM);
    running.wait().code_is(42);
    sb.assert_nothing_left(&id);
}

#[test]
fn run_detach_leaves_it_running() {
    let mut sb = Sandbox::new("rundetach");
    sb.set_script(SLEEPER);
    let id = sb.new_id("detach");
    let pid_file = sb.dir.join("run.pid");
    let out = sb
        .run(&id, &["--detach", "--pid-file", pid_file.to_str().unwrap()])
        .ok();
    assert!(out.elapsed < SETTLE_TIMEOUT);
    assert_eq!(sb.status(&id), "running");
    let written = fs::read_to_string(&pid_file).expect("run writes the pid file");
    assert_eq!(written.trim(), sb.pid(&id).to_string());
    sb.rt(&["delete", "--force", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn short_bundle_flag_and_cwd_as_default_bundle() {
    let mut sb = Sandbox::new("bundleflag");
    sb.set_script("echo via-flag");
    sb.save_config();
    let id = sb.new_id("shortb");
    let out = sb
        .cmd()
        .arg("run")
        .arg("-b")
        .arg(&sb.bundle)
        .arg(&id)
        .output()
        .ok();
    assert_eq!(out.stdout.trim(), "via-flag");
    sb.assert_nothing_left(&id);

    sb.set_script("echo via-cwd");
    sb.save_config();
    let id = sb.new_id("cwdbundle");
    let out = sb
        .cmd()
        .args(["run", &id])
        .current_dir(&sb.bundle)
        .output()
        .ok();
    assert_eq!(out.stdout.trim(), "via-cwd");
    sb.assert_nothing_left(&id);
}

#[test]
fn run_keep_leaves_a_stopped_container() {
    let mut sb = Sandbox::new("runkeep");
    sb.set_script("exit 0");
    let id = sb.new_id("keep");
    sb.run(&id, &["--keep"]).ok();
    assert_eq!(sb.status(&id), "stopped");
    sb.rt(&["delete", &id]).ok();
    sb.assert_nothing_left(&id);
}

/// The container's lines on a stderr it shares with the runtime (whose warnings may be there too).
fn container_stderr(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !is_warning_line(l))
        .collect()
}

#[test]
fn foreground_run_connects_stdio() {
    let mut sb = Sandbox::new("stdiorun");
    let input = sb.dir.join("stdin.txt");
    fs::write(&input, "line-from-stdin\n").unwrap();
    sb.set_script("cat; echo to-stderr >&2");
    let id = sb.new_id("stdiorun");
    let out = sb
        .run_cmd(&id, &[])
        .stdin(fs::File::open(&input).unwrap().into())
        .output()
        .ok();
    assert_eq!(out.stdout.trim(), "line-from-stdin");
    assert_eq!(container_stderr(&out.stderr), ["to-stderr"]);
    sb.assert_nothing_left(&id);
}

/// containerd creates containers with pipes and fifos as stdio and expects the container process
/// to hold exactly those (no relay through the runtime).
#[test]
fn created_container_inherits_stdio_unchanged() {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let mut sb = Sandbox::new("stdio");
    let input = sb.dir.join("stdin.txt");
    fs::write(&input, "line-from-stdin\n").unwrap();
    sb.set_script("cat; readlink /proc/self/fd/1; echo to-stderr >&2");
    let id = sb.new_id("stdio");
    let (reader, writer) = nix::unistd::pipe().expect("pipe");
    let (err_reader, err_writer) = nix::unistd::pipe().expect("pipe");
    let mut reader = fs::File::from(reader);
    let mut err_reader = fs::File::from(err_reader);
    let pipe_inode = reader.metadata().unwrap().ino();
    sb.save_config();
    sb.cmd()
        .arg("create")
        .arg("--bundle")
        .arg(&sb.bundle)
        .arg(&id)
        .stdin(fs::File::open(&input).unwrap().into())
        .stdout(writer.into())
        .stderr(err_writer.into())
        .output()
        .ok();
    sb.rt(&["start", &id]).ok();
    // EOF once the container exits: nothing else holds the write ends.
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    let mut err_text = String::new();
    err_reader.read_to_string(&mut err_text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        ["line-from-stdin", format!("pipe:[{pipe_inode}]").as_str()],
        "stdout is our pipe, not a relay"
    );
    assert_eq!(container_stderr(&err_text), ["to-stderr"]);
    sb.wait_status(&id, "stopped");
    sb.rt(&["delete", &id]).ok();
    sb.assert_nothing_left(&id);
}

/// containerd's shim hands the container named fifos as stdio.
#[test]
fn created_container_writes_to_a_fifo() {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut sb = Sandbox::new("fifo");
    let fifo = sb.dir.join("stdout.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    // Open the read end first (non-blocking, so open does not wait for a writer).
    let mut reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open fifo for reading");
    let writer = fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("open fifo for writing");
    sb.set_script("echo through-the-fifo; stat -L -c %F /proc/self/fd/1");
    let id = sb.new_id("fifo");
    sb.save_config();
    sb.cmd()
        .arg("create")
        .arg("--bundle")
        .arg(&sb.bundle)
        .arg(&id)
        .stdout(writer.into())
        .output()
        .ok();
    sb.rt(&["start", &id]).ok();
    sb.wait_status(&id, "stopped");
    let mut text = String::new();
    reader.read_to_string(&mut text).expect("read the fifo");
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["through-the-fifo", "fifo"]
    );
    sb.rt(&["delete", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn preserve_fds_passes_extra_descriptors() {
    let mut sb = Sandbox::new("preservefds");
    let extra = sb.dir.join("extra.txt");
    fs::write(&extra, "preserved-fd\n").unwrap();
    sb.set_script("cat /proc/self/fd/3");
    let id = sb.new_id("fds");
    let file = fs::File::open(&extra).unwrap();
    let out = sb
        .run_cmd(&id, &["--preserve-fds", "1"])
        .pass_fd(file.into(), 3)
        .output()
        .ok();
    assert_eq!(out.stdout.trim(), "preserved-fd");
    sb.assert_nothing_left(&id);
}

#[test]
fn create_accepts_no_new_keyring_and_no_pivot() {
    let mut sb = Sandbox::new("createflags");
    sb.set_script("ls /bin/busybox && echo flags-ok");
    let id = sb.new_id("flags");
    let out = sb.run(&id, &["--no-new-keyring", "--no-pivot"]).ok();
    assert!(out.stdout.contains("flags-ok"), "{}", out.stdout);
    sb.assert_nothing_left(&id);
}

/// `state` racing `start`, then `delete --force` racing itself: every state read is whole
/// JSON, the start succeeds, and the deletes leave nothing behind. (Two concurrent `start`s are
/// not raced here: runc 1.1.5 can hang the loser on its exec fifo.)
#[test]
fn concurrent_commands_on_one_id_do_not_corrupt_state() {
    let mut sb = Sandbox::new("concurrent");
    let (id, _) = sb.create_script("conc", SLEEPER);
    let start = sb.cmd().args(["start", &id]).spawn();
    let states: Vec<_> = (0..5)
        .map(|_| sb.cmd().args(["state", &id]).spawn())
        .collect();
    start.wait().ok();
    for out in states.into_iter().map(|r| r.wait().ok()) {
        let state: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!("state under concurrency is not JSON ({e}): {}", out.stdout)
        });
        assert_eq!(state["id"], json!(id));
        let status = state["status"].as_str().unwrap_or_default();
        assert!(["created", "running"].contains(&status), "{state}");
    }
    sb.wait_status(&id, "running");

    let deletes: Vec<_> = (0..3)
        .map(|_| sb.cmd().args(["delete", "--force", &id]).spawn())
        .collect();
    let outs: Vec<_> = deletes.into_iter().map(|r| r.wait()).collect();
    assert!(
        outs.iter().any(|o| o.success()),
        "no delete succeeded: {outs:#?}"
    );
    sb.rt(&["state", &id]).failed();
    sb.assert_nothing_left(&id);
}
