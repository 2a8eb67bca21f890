//! Terminals: --console-socket hands over the pty master; foreground run proxies the pty.

use std::os::fd::OwnedFd;
use std::process::Stdio;

use serde_json::json;

use crate::harness::{read_pty, ConsoleSocket, Sandbox, SETTLE_TIMEOUT};

#[test]
fn console_socket_receives_the_pty_master() {
    let mut sb = Sandbox::new("console");
    sb.config["process"]["terminal"] = json!(true);
    sb.set_script("tty; ls -l /dev/console; echo console-done");
    let socket = ConsoleSocket::bind(sb.dir.join("console.sock"));
    let id = sb.new_id("console");
    sb.create(&id, &["--console-socket", socket.path.to_str().unwrap()])
        .ok();
    let master = socket.receive_master(SETTLE_TIMEOUT);
    sb.rt(&["start", &id]).ok();
    let text = read_pty(&master, SETTLE_TIMEOUT);
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    assert!(lines[0].starts_with("/dev/pts/"), "tty output: {text:?}");
    assert!(
        lines[1].starts_with('c'),
        "/dev/console is a character device: {text:?}"
    );
    assert!(lines.contains(&"console-done"), "{text:?}");
    sb.wait_status(&id, "stopped");
    sb.rt(&["delete", &id]).ok();
    sb.assert_nothing_left(&id);
}

#[test]
fn foreground_run_proxies_the_pty() {
    let mut sb = Sandbox::new("ptyproxy");
    sb.config["process"]["terminal"] = json!(true);
    sb.set_script("tty; exit 5");
    let id = sb.new_id("ptyproxy");
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave: OwnedFd = pty.slave;
    let running = sb
        .run_cmd(&id, &[])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn();
    let text = read_pty(&pty.master, SETTLE_TIMEOUT);
    let out = running.wait();
    assert_eq!(
        out.code,
        Some(5),
        "exit code through the pty proxy: {out:?}\n{text:?}"
    );
    assert!(text.contains("/dev/pts/"), "{text:?}");
    sb.assert_nothing_left(&id);
}

#[test]
fn console_size_is_applied() {
    let mut sb = Sandbox::new("consolesize");
    sb.config["process"]["terminal"] = json!(true);
    sb.config["process"]["consoleSize"] = json!({"height": 33, "width": 111});
    sb.set_script("stty size");
    let socket = ConsoleSocket::bind(sb.dir.join("console.sock"));
    let id = sb.new_id("consolesize");
    sb.create(&id, &["--console-socket", socket.path.to_str().unwrap()])
        .ok();
    let master = socket.receive_master(SETTLE_TIMEOUT);
    sb.rt(&["start", &id]).ok();
    let text = read_pty(&master, SETTLE_TIMEOUT);
    assert_eq!(text.trim(), "33 111", "{text:?}");
    sb.wait_status(&id, "stopped");
    sb.rt(&["delete", &id]).ok();
    sb.assert_nothing_left(&id);
}
