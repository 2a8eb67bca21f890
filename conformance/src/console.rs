//! The receiving end of `--console-socket`: the runtime sends the pty master over a unix socket
//! (SCM_RIGHTS); a thread takes it and reads everything the container writes to its terminal.

use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A listening console socket and the thread that will read the terminal.
pub struct ConsoleSocket {
    reader: JoinHandle<io::Result<String>>,
}

impl ConsoleSocket {
    /// Listens at `path`; the reader gives up `timeout` after it starts.
    pub fn listen(path: &Path, timeout: Duration) -> io::Result<ConsoleSocket> {
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let reader = std::thread::spawn(move || read_terminal(listener, Instant::now() + timeout));
        Ok(ConsoleSocket { reader })
    }

    /// Everything the container wrote to its terminal, once it closed (or the deadline passed).
    pub fn output(self) -> io::Result<String> {
        self.reader
            .join()
            .map_err(|_| io::Error::other("the console reader panicked"))?
    }
}

fn read_terminal(listener: UnixListener, deadline: Instant) -> io::Result<String> {
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    };
    stream.set_nonblocking(false)?;
    let master = receive_fd(std::os::fd::AsRawFd::as_raw_fd(&stream))?;
    let mut file = std::fs::File::from(master);
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if !readable_within(std::os::fd::AsRawFd::as_raw_fd(&file), 100)? {
            continue;
        }
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            // EIO: every slave end is closed, the container is gone.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&text).replace('\r', ""))
}

fn readable_within(fd: RawFd, millis: i32) -> io::Result<bool> {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, count 1.
    let rc = unsafe { libc::poll(&mut poll, 1, millis) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc > 0)
}

/// Receives one descriptor sent with SCM_RIGHTS.
fn receive_fd(socket: RawFd) -> io::Result<OwnedFd> {
    let mut data = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // Room for one control message carrying one int, aligned like cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; every pointer set below outlives the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg points at live buffers of the sizes it states.
    let n = unsafe { libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: msg was filled by recvmsg; CMSG_FIRSTHDR stays within msg_control.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    // SAFETY: cmsg is either null or points at a complete header inside `control`.
    if cmsg.is_null() || unsafe { (*cmsg).cmsg_type } != libc::SCM_RIGHTS {
        return Err(io::Error::other(
            "the console socket message carried no descriptor",
        ));
    }
    // SAFETY: an SCM_RIGHTS message's data holds at least one int; read it unaligned.
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>()) };
    // SAFETY: the kernel just installed this descriptor for us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
