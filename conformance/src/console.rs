//! Unix sockets the runtime sends descriptors to (SCM_RIGHTS): `--console-socket` (the pty
//! master; a thread reads everything the container writes to its terminal) and the seccomp
//! `listenerPath` (the container process state as JSON plus the seccomp notify descriptor).

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

/// A listening seccomp agent socket: takes one connection and what was sent over it.
pub struct SeccompAgent {
    reader: JoinHandle<io::Result<(String, usize)>>,
}

impl SeccompAgent {
    pub fn listen(path: &Path, timeout: Duration) -> io::Result<SeccompAgent> {
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        let reader =
            std::thread::spawn(move || read_process_state(listener, Instant::now() + timeout));
        Ok(SeccompAgent { reader })
    }

    /// The payload (the container process state) and how many descriptors came with it.
    pub fn received(self) -> io::Result<(String, usize)> {
        self.reader
            .join()
            .map_err(|_| io::Error::other("the seccomp agent thread panicked"))?
    }
}

fn read_process_state(listener: UnixListener, deadline: Instant) -> io::Result<(String, usize)> {
    let mut stream = accept_before(&listener, deadline)?;
    stream.set_read_timeout(Some(
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1)),
    ))?;
    let (mut data, fds) = receive_with_fds(std::os::fd::AsRawFd::as_raw_fd(&stream))?;
    // Further sendmsg calls carry the rest of the JSON; the runtime closes the connection after.
    stream.read_to_end(&mut data)?;
    Ok((String::from_utf8_lossy(&data).into_owned(), fds.len()))
}

fn accept_before(
    listener: &UnixListener,
    deadline: Instant,
) -> io::Result<std::os::unix::net::UnixStream> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

fn read_terminal(listener: UnixListener, deadline: Instant) -> io::Result<String> {
    let stream = accept_before(&listener, deadline)?;
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
    let (_, mut fds) = receive_with_fds(socket)?;
    if fds.is_empty() {
        return Err(io::Error::other("the socket message carried no descriptor"));
    }
    Ok(fds.swap_remove(0))
}

/// One recvmsg: the bytes and every descriptor that came with them.
fn receive_with_fds(socket: RawFd) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut data = vec![0u8; 65536];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // Room for a control message carrying a few ints, aligned like cmsghdr.
    let mut control = [0u64; 16];
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
    data.truncate(n as usize);
    let mut fds = Vec::new();
    // SAFETY: msg was filled by recvmsg; CMSG_FIRSTHDR/CMSG_NXTHDR stay within msg_control.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: cmsg points at a complete header inside `control`.
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN(0) is a constant computation.
            let payload = header.cmsg_len as usize - unsafe { libc::CMSG_LEN(0) } as usize;
            for i in 0..payload / std::mem::size_of::<RawFd>() {
                // SAFETY: the data holds `payload` bytes of ints; read each unaligned.
                let fd = unsafe {
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>().add(i))
                };
                // SAFETY: the kernel just installed this descriptor for us; nobody else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        // SAFETY: as above.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok((data, fds))
}
