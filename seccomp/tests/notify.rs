//! SCMP_ACT_NOTIFY end to end: the filtered process hands its notify fd to
//! the "runtime" (this test process, as berth's init hands it to its parent),
//! which sends it with the container process state to a seccomp agent at
//! listenerPath; the agent answers the notified call with a chosen value.

mod common;

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_seccomp::{compile_with_flags, process_state_json, send_to_listener, Flag};
use common::{profile, Exit};
use nix::sys::socket::{
    recvmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};

/// The value the agent makes getppid return.
const ANSWER: i64 = 4242;

/// A temp dir removed on drop, even when the test fails.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("berth-seccomp-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Child-safe: sends one fd over a connected AF_UNIX socket with a stack buffer.
fn send_fd(sock: RawFd, fd: RawFd) -> bool {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 4]; // CMSG_SPACE(sizeof(int)) = 24 bytes, 8-aligned
                                 // SAFETY: msghdr is plain data; every pointer in it refers to locals that
                                 // outlive the sendmsg call, and the control buffer holds one cmsg with an int.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        libc::sendmsg(sock, &msg, 0) == 1
    }
}

/// Receives the fd and the whole process state from one agent connection:
/// the fd rides on the first segment, the rest is read until the runtime closes.
fn recv_state(conn: &UnixStream) -> (OwnedFd, Vec<u8>) {
    let (fd, mut bytes) = recv_fd(conn.as_raw_fd(), 64 * 1024);
    (&*conn).read_to_end(&mut bytes).unwrap();
    (fd, bytes)
}

/// One message with an SCM_RIGHTS fd: the fd and the message's bytes.
fn recv_fd(sock: RawFd, max: usize) -> (OwnedFd, Vec<u8>) {
    let mut buf = vec![0u8; max];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let (fd, len) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg =
            recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).unwrap();
        let fd = msg
            .cmsgs()
            .unwrap()
            .find_map(|c| match c {
                ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
            .expect("an fd came with the message");
        (fd, msg.bytes)
    };
    buf.truncate(len);
    // SAFETY: SCM_RIGHTS gave us a new fd that nothing else owns.
    (unsafe { OwnedFd::from_raw_fd(fd) }, buf)
}

/// The seccomp agent: takes one connection, then answers one notification.
fn agent(listener: UnixListener) -> (serde_json::Value, u32, i32) {
    let (conn, _) = listener.accept().unwrap();
    let (notify_fd, bytes) = recv_state(&conn);
    let state: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    // SAFETY: zeroed seccomp_notif is the required input of NOTIF_RECV.
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: NOTIF_RECV fills `notif`, which lives across the call.
    let rc = unsafe {
        libc::ioctl(
            notify_fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut notif,
        )
    };
    assert_eq!(rc, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
    let resp = libc::seccomp_notif_resp {
        id: notif.id,
        val: ANSWER,
        error: 0,
        flags: 0,
    };
    // SAFETY: NOTIF_SEND reads `resp`, which lives across the call.
    let rc = unsafe { libc::ioctl(notify_fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    assert_eq!(rc, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
    (state, notif.pid, notif.data.nr)
}

fn wait_with_deadline(pid: libc::pid_t, limit: Duration) -> Exit {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: polling our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            return if libc::WIFEXITED(status) {
                Exit::Code(libc::WEXITSTATUS(status))
            } else {
                Exit::Signal(libc::WTERMSIG(status))
            };
        }
        if start.elapsed() > limit {
            // SAFETY: killing our own stuck child, then reaping it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            common::wait(pid);
            panic!("the notified child did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn notify_round_trip(extra_flags: &[Flag], cfg_flags: serde_json::Value) {
    let dir = TempDir::new("notify");
    let socket_path = dir.0.join("agent.sock");
    let cfg = profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": socket_path,
        "listenerMetadata": "answer=4242",
        "flags": cfg_flags,
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}],
    }));
    let filter = compile_with_flags(&cfg, extra_flags).unwrap();
    assert!(filter.uses_notify());
    assert!(
        filter.may_notify("getppid")
            && !filter.may_notify("sendmsg")
            && !filter.may_notify("write")
    );
    let listener = UnixListener::bind(&socket_path).unwrap();
    let agent = std::thread::spawn(move || agent(listener));

    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    let child = {
        // SAFETY: the child only loads the filter, sends an fd and makes raw calls.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            let code = match filter.load() {
                Ok(Some(fd)) if send_fd(theirs.as_raw_fd(), fd.as_raw_fd()) => {
                    // SAFETY: a raw getppid; the agent decides what it returns.
                    let got = unsafe { libc::syscall(libc::SYS_getppid) };
                    if got == ANSWER {
                        0
                    } else {
                        3
                    }
                }
                Ok(_) => 2,
                Err(_) => 1,
            };
            // SAFETY: leaving the forked child.
            unsafe { libc::_exit(code) }
        }
        pid
    };
    drop(theirs);
    let (notify_fd, _) = recv_fd(ours.as_raw_fd(), 16);
    let state = serde_json::json!({"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": child, "bundle": "/b"});
    send_to_listener(
        &socket_path,
        notify_fd.as_fd(),
        &process_state_json(Some("answer=4242"), child, state.clone()),
    )
    .unwrap();
    drop(notify_fd);

    assert_eq!(
        wait_with_deadline(child, Duration::from_secs(20)),
        Exit::Code(0),
        "getppid returned the agent's answer"
    );
    let (received, pid, nr) = agent.join().unwrap();
    assert_eq!(pid, child as u32);
    assert_eq!(nr, libc::SYS_getppid as i32);
    assert_eq!(received["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(received["pid"], child);
    assert_eq!(received["metadata"], "answer=4242");
    assert_eq!(received["ociVersion"], "1.2.0");
    assert_eq!(received["state"], state);
}

#[test]
fn agent_answers_a_notified_syscall() {
    notify_round_trip(&[], serde_json::json!([]));
}

#[test]
fn notify_with_tsync_uses_tsync_esrch() {
    notify_round_trip(&[], serde_json::json!(["SECCOMP_FILTER_FLAG_TSYNC"]));
}

#[test]
fn notify_with_wait_killable_recv() {
    if !Flag::WaitKillableRecv.supported() {
        eprintln!("skipped: the kernel has no SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV");
        return;
    }
    notify_round_trip(&[Flag::WaitKillableRecv], serde_json::json!([]));
}

#[test]
fn notify_filter_flags() {
    let cfg = |flags: serde_json::Value| {
        profile(
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "flags": flags,
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}),
        )
    };
    const NEW_LISTENER: u32 = 8;
    const TSYNC_ESRCH: u32 = 16;
    let plain = compile_with_flags(&cfg(serde_json::json!([])), &[]).unwrap();
    assert_eq!(plain.flags(), NEW_LISTENER);
    let tsync =
        compile_with_flags(&cfg(serde_json::json!(["SECCOMP_FILTER_FLAG_TSYNC"])), &[]).unwrap();
    assert_eq!(tsync.flags(), NEW_LISTENER | TSYNC_ESRCH | 1);
}

#[test]
fn unreachable_listener_is_a_clear_error() {
    let dir = TempDir::new("nolistener");
    let path = dir.0.join("missing.sock");
    let (a, _b) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    let err = send_to_listener(&path, a.as_fd(), b"{}")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing.sock") && err.contains("connect"),
        "{err}"
    );
    let long = Path::new("/tmp").join("x".repeat(200));
    let err = send_to_listener(&long, a.as_fd(), b"{}")
        .unwrap_err()
        .to_string();
    assert!(err.contains("address"), "{err}");
    assert_eq!(
        std::fs::read_dir(&dir.0).unwrap().count(),
        0,
        "nothing left behind"
    );
}
