//! The hand-written D-Bus client against a real bus daemon: a private
//! `dbus-daemon --session` on a socket of its own (skipped when dbus-daemon
//! is not installed). systemd itself is exercised by the container tests
//! in the systemd VM (integration/cgroups-vm/run.sh --systemd).

use berth_cgroups::dbus::{Connection, DbusError, Kind, Message, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A bus daemon that is killed when dropped.
struct Daemon {
    child: Child,
    socket: PathBuf,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_daemon() -> Option<Daemon> {
    if !Path::new("/usr/bin/dbus-daemon").exists() {
        eprintln!("skipped: /usr/bin/dbus-daemon is not installed");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("berth-dbus-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let socket = dir.join("bus");
    let mut child = Command::new("/usr/bin/dbus-daemon")
        .arg("--session")
        .arg(format!("--address=unix:path={}", socket.display()))
        .args(["--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dbus-daemon");
    // The address line comes once the socket listens.
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the address");
    assert!(line.starts_with("unix:path="), "dbus-daemon said {line:?}");
    Some(Daemon { child, socket, dir })
}

fn bus_call(member: &str, args: &[Value]) -> Message {
    Message::method_call(
        Some("org.freedesktop.DBus"),
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        member,
        args,
    )
}

#[test]
fn calls_errors_and_signals_through_a_real_bus() {
    let Some(daemon) = start_daemon() else {
        return;
    };
    let mut conn = Connection::bus(&daemon.socket, TIMEOUT).expect("connect and Hello");
    assert!(conn.on_bus());

    // A reply with a body: the bus id, 32 hex digits.
    let reply = conn.call(bus_call("GetId", &[]), TIMEOUT).expect("GetId");
    let args = reply.args().expect("GetId body");
    let id = args[0].as_str().expect("a string");
    assert_eq!(id.len(), 32, "{id}");

    // An array reply: our own unique name is among the names.
    let reply = conn
        .call(bus_call("ListNames", &[]), TIMEOUT)
        .expect("ListNames");
    let Value::Array { elem, items } = &reply.args().expect("ListNames body")[0] else {
        panic!("ListNames did not return an array");
    };
    assert_eq!(elem, "s");
    assert!(items
        .iter()
        .any(|n| n.as_str() == Some("org.freedesktop.DBus")));

    // An error reply carries its name and message.
    let err = conn
        .call(bus_call("NoSuchMethod", &[]), TIMEOUT)
        .expect_err("an unknown method fails");
    assert_eq!(
        err.remote_name(),
        Some("org.freedesktop.DBus.Error.UnknownMethod"),
        "{err}"
    );
    assert!(err.to_string().contains("NoSuchMethod"), "{err}");

    // A signal we matched comes back to us through the daemon.
    conn.add_match(
        "type='signal',interface='org.berth.Test',member='Ping'",
        TIMEOUT,
    )
    .expect("AddMatch");
    let mut ping = Message::method_call(
        None,
        "/org/berth/Test",
        "org.berth.Test",
        "Ping",
        &[Value::Uint32(7), Value::Str("job".into())],
    );
    ping.kind = Kind::Signal;
    conn.send(&ping).expect("send the signal");
    let got = conn
        .wait_signal(Instant::now() + TIMEOUT, |m| {
            m.is_signal("org.berth.Test", "Ping")
        })
        .expect("the signal");
    assert_eq!(
        got.args().expect("signal body"),
        [Value::Uint32(7), Value::Str("job".into())]
    );

    // Nothing else is coming: waiting times out instead of hanging.
    let err = conn
        .wait_signal(Instant::now() + Duration::from_millis(200), |m| {
            m.is_signal("org.berth.Test", "Never")
        })
        .expect_err("no such signal");
    assert!(matches!(err, DbusError::Timeout(_)), "{err}");
}

#[test]
fn a_missing_socket_is_a_clear_error() {
    let err = Connection::bus(Path::new("/nonexistent/berth-bus"), TIMEOUT)
        .err()
        .expect("no socket, no connection");
    assert!(err.to_string().contains("/nonexistent/berth-bus"), "{err}");
}
