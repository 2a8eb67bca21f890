//! `linux.netDevices`: host network devices moved into the container's network namespace
//! (runtime-spec config-linux.md), over a small rtnetlink client of berth's own.
//!
//! `create` does it from the parent, after the init's namespaces exist and before any
//! hook or user code runs: for each device it reads the permanent, global-scope
//! addresses on the host, moves the link (renamed when the config says so) with
//! RTM_NEWLINK + IFLA_NET_NS_FD, adds the addresses back inside (the kernel drops them on
//! the move) and sets the link up. Nothing is moved back: when the namespace goes away the
//! kernel returns physical devices to the host and destroys virtual ones, as the spec
//! wants.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::error::{Error, Result};

const NETLINK_ROUTE: libc::c_int = 0;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFA_F_PERMANENT: u32 = 0x80;
/// The flags RTM_NEWADDR takes from userspace: NODAD, HOMEADDRESS, MANAGETEMPADDR,
/// NOPREFIXROUTE, MCAUTOJOIN; kept so the address comes back as it was.
const IFA_SETTABLE_FLAGS: u32 = 0x02 | 0x10 | 0x100 | 0x200 | 0x400;
const RT_SCOPE_UNIVERSE: u8 = 0;
const IFF_UP: u32 = 0x1;
/// struct nlmsghdr, struct ifinfomsg, struct ifaddrmsg.
const NLMSG_HDR: usize = 16;
const IFINFO_LEN: usize = 16;
const IFADDR_LEN: usize = 8;
/// IFNAMSIZ, the terminating NUL included.
const IFNAMSIZ: usize = 16;

/// One device to move: its host name and its name in the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDevice {
    pub host: String,
    pub container: String,
}

/// Checks a device name as the kernel would (dev_valid_name); `%d` is the kernel's
/// template for "the first free number".
pub fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace);
    if valid {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "linux.netDevices: {name:?} is not a network device name"
        )))
    }
}

/// One address of a device, with what RTM_NEWADDR needs to make it again.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Address {
    family: u8,
    prefix_len: u8,
    /// (IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST) as the kernel reported them.
    attrs: Vec<(u16, Vec<u8>)>,
}

/// Moves every device into the network namespace `netns` (a descriptor of it).
pub fn move_devices(devices: &[NetDevice], netns: RawFd) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let fail =
        |what: String| move |e: io::Error| Error::Init(format!("linux.netDevices: {what}: {e}"));
    let mut host = Netlink::open().map_err(fail("netlink socket".into()))?;
    let mut inside =
        Netlink::open_in(netns).map_err(fail("netlink socket in the container".into()))?;
    for device in devices {
        let index = host
            .link_index(&device.host)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENODEV) => Error::Init(format!(
                    "linux.netDevices: no network device {:?} on the host",
                    device.host
                )),
                _ => fail(format!("looking up {}", device.host))(e),
            })?;
        let templated = device.container.contains("%d");
        if !templated && inside.link_index(&device.container).is_ok() {
            return Err(Error::Init(format!(
                "linux.netDevices: the container already has a device {:?}",
                device.container
            )));
        }
        let addresses = host
            .permanent_addresses(index)
            .map_err(fail(format!("reading the addresses of {}", device.host)))?;
        host.move_link(index, netns, &device.container)
            .map_err(fail(format!("moving {} into the container", device.host)))?;
        // The kernel keeps the index when it is free there, and a template's final
        // name is only known by it.
        let moved = if templated {
            index
        } else {
            inside.link_index(&device.container).map_err(fail(format!(
                "finding {} in the container",
                device.container
            )))?
        };
        for address in &addresses {
            inside.add_address(moved, address).map_err(fail(format!(
                "restoring an address of {}",
                device.container
            )))?;
        }
        inside
            .set_up(moved)
            .map_err(fail(format!("setting {} up", device.container)))?;
    }
    Ok(())
}

/// An rtnetlink socket and its request sequence.
struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2).
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: socket(2) just returned this descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Netlink { fd, seq: 0 })
    }

    /// A socket of the namespace `netns`: a socket belongs to the network namespace it
    /// was made in, so berth enters it for the socket(2) call and comes back.
    fn open_in(netns: RawFd) -> io::Result<Netlink> {
        let ours = std::fs::File::open("/proc/thread-self/ns/net")?;
        // SAFETY: setns with a namespace descriptor; berth is single-threaded here.
        if unsafe { libc::setns(netns, libc::CLONE_NEWNET) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let socket = Netlink::open();
        // SAFETY: as above; returning to our own namespace cannot be refused to root.
        if unsafe { libc::setns(ours.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
            // Staying in the container's namespace would be worse than dying.
            panic!(
                "cannot return to berth's network namespace: {}",
                io::Error::last_os_error()
            );
        }
        socket
    }

    /// Sends one request and collects the reply messages (type, payload) up to the
    /// ACK or NLMSG_DONE; an error reply becomes its errno.
    fn request(&mut self, kind: u16, flags: u16, body: &[u8]) -> io::Result<Vec<(u16, Vec<u8>)>> {
        self.seq = self.seq.wrapping_add(1);
        let message = message(kind, NLM_F_REQUEST | flags, self.seq, body);
        // SAFETY: sends `message.len()` bytes from `message` to the kernel (address 0).
        let sent = unsafe {
            let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
            kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            libc::sendto(
                self.fd.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: receives into `buf`, at most its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = usize::try_from(n).unwrap_or(0);
            for (kind, seq, payload) in split_messages(&buf[..n])? {
                if seq != self.seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => return Ok(replies),
                    NLMSG_ERROR => {
                        let errno = payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(-libc::EIO);
                        if errno != 0 {
                            return Err(io::Error::from_raw_os_error(-errno));
                        }
                        return Ok(replies);
                    }
                    _ => {
                        replies.push((kind, payload.to_vec()));
                        if !dump && flags & NLM_F_ACK == 0 {
                            return Ok(replies);
                        }
                    }
                }
            }
        }
    }

    /// The index of the device called `name` (ENODEV when there is none).
    fn link_index(&mut self, name: &str) -> io::Result<i32> {
        let mut body = ifinfo(0, 0, 0);
        push_attr(&mut body, IFLA_IFNAME, &c_string(name));
        let replies = self.request(RTM_GETLINK, 0, &body)?;
        replies
            .iter()
            .find(|(kind, _)| *kind == RTM_NEWLINK)
            .and_then(|(_, payload)| payload.get(4..8))
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))
    }

    /// The device's permanent addresses of global scope, any family.
    fn permanent_addresses(&mut self, index: i32) -> io::Result<Vec<Address>> {
        let body = [0u8; IFADDR_LEN];
        let replies = self.request(RTM_GETADDR, NLM_F_DUMP, &body)?;
        Ok(replies
            .iter()
            .filter(|(kind, _)| *kind == RTM_NEWADDR)
            .filter_map(|(_, payload)| parse_address(payload, index))
            .collect())
    }

    fn move_link(&mut self, index: i32, netns: RawFd, name: &str) -> io::Result<()> {
        let mut body = ifinfo(index, 0, 0);
        let fd = u32::try_from(netns).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        push_attr(&mut body, IFLA_NET_NS_FD, &fd.to_ne_bytes());
        push_attr(&mut body, IFLA_IFNAME, &c_string(name));
        self.request(RTM_NEWLINK, NLM_F_ACK, &body).map(drop)
    }

    fn add_address(&mut self, index: i32, address: &Address) -> io::Result<()> {
        let mut body = ifaddr(address.family, address.prefix_len, index);
        for (kind, value) in &address.attrs {
            push_attr(&mut body, *kind, value);
        }
        self.request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &body)
            .map(drop)
    }

    fn set_up(&mut self, index: i32) -> io::Result<()> {
        let body = ifinfo(index, IFF_UP, IFF_UP);
        self.request(RTM_NEWLINK, NLM_F_ACK, &body).map(drop)
    }
}

/// A netlink message: header, then `body`.
fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(NLMSG_HDR + body.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(NLMSG_HDR + body.len());
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(body);
    out
}

/// struct ifinfomsg for device `index` (AF_UNSPEC).
fn ifinfo(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(IFINFO_LEN);
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&index.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&change.to_ne_bytes());
    out
}

/// struct ifaddrmsg for device `index`, global scope.
fn ifaddr(family: u8, prefix_len: u8, index: i32) -> Vec<u8> {
    let mut out = vec![family, prefix_len, 0, RT_SCOPE_UNIVERSE];
    out.extend_from_slice(&index.to_ne_bytes());
    out
}

/// Appends an rtattr, padded to 4 bytes.
fn push_attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = u16::try_from(4 + value.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

fn c_string(s: &str) -> Vec<u8> {
    let mut bytes = s.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// Splits a datagram into (type, seq, payload) messages.
fn split_messages(mut buf: &[u8]) -> io::Result<Vec<(u16, u32, &[u8])>> {
    let malformed = || io::Error::new(io::ErrorKind::InvalidData, "malformed netlink reply");
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDR {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < NLMSG_HDR || len > buf.len() {
            return Err(malformed());
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        out.push((kind, seq, &buf[NLMSG_HDR..len]));
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    Ok(out)
}

/// The attributes of an rtattr list: (type, value).
fn attributes(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        if len < 4 || len > buf.len() {
            break;
        }
        // The high bits of the type are flags (NLA_F_NESTED, ...).
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        out.push((kind, &buf[4..len]));
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    out
}

/// An RTM_NEWADDR payload, if it is a permanent global address of device `index`.
fn parse_address(payload: &[u8], index: i32) -> Option<Address> {
    let head = payload.get(..IFADDR_LEN)?;
    let (family, prefix_len, flags8, scope) = (head[0], head[1], head[2], head[3]);
    let owner = i32::from_ne_bytes([head[4], head[5], head[6], head[7]]);
    if owner != index || scope != RT_SCOPE_UNIVERSE {
        return None;
    }
    let attrs = attributes(&payload[IFADDR_LEN..]);
    // IFA_FLAGS has all 32 bits; the header's byte only the low 8.
    let flags = attrs
        .iter()
        .find(|(kind, _)| *kind == IFA_FLAGS)
        .and_then(|(_, v)| v.get(..4))
        .map_or(u32::from(flags8), |b| {
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
        });
    if flags & IFA_F_PERMANENT == 0 {
        return None;
    }
    let mut kept: Vec<(u16, Vec<u8>)> = attrs
        .into_iter()
        .filter(|(kind, _)| matches!(*kind, IFA_ADDRESS | IFA_LOCAL | IFA_BROADCAST))
        .map(|(kind, value)| (kind, value.to_vec()))
        .collect();
    let settable = flags & IFA_SETTABLE_FLAGS;
    if settable != 0 {
        kept.push((IFA_FLAGS, settable.to_ne_bytes().to_vec()));
    }
    Some(Address {
        family,
        prefix_len,
        attrs: kept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr_payload(index: i32, scope: u8, flags: u32, local: [u8; 4]) -> Vec<u8> {
        let mut p = vec![libc::AF_INET as u8, 24, (flags & 0xff) as u8, scope];
        p.extend_from_slice(&index.to_ne_bytes());
        push_attr(&mut p, IFA_ADDRESS, &local);
        push_attr(&mut p, IFA_LOCAL, &local);
        push_attr(&mut p, 3, b"eth0\0"); // IFA_LABEL: not carried over
        push_attr(&mut p, IFA_FLAGS, &flags.to_ne_bytes());
        p
    }

    #[test]
    fn only_permanent_global_addresses_of_the_device_are_kept() {
        let kept =
            parse_address(&addr_payload(7, 0, IFA_F_PERMANENT, [10, 0, 0, 1]), 7).expect("kept");
        assert_eq!((kept.family, kept.prefix_len), (libc::AF_INET as u8, 24));
        assert_eq!(
            kept.attrs,
            [
                (IFA_ADDRESS, vec![10, 0, 0, 1]),
                (IFA_LOCAL, vec![10, 0, 0, 1])
            ]
        );
        assert_eq!(
            parse_address(&addr_payload(8, 0, IFA_F_PERMANENT, [1; 4]), 7),
            None
        );
        // Link scope (253), and a dynamic address.
        assert_eq!(
            parse_address(&addr_payload(7, 253, IFA_F_PERMANENT, [1; 4]), 7),
            None
        );
        assert_eq!(parse_address(&addr_payload(7, 0, 0, [1; 4]), 7), None);
    }

    #[test]
    fn messages_round_trip() {
        let mut body = ifinfo(5, IFF_UP, IFF_UP);
        push_attr(&mut body, IFLA_IFNAME, &c_string("eth1"));
        let msg = message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, 9, &body);
        assert_eq!(msg.len() % 4, 0);
        let split = split_messages(&msg).expect("split");
        assert_eq!(split.len(), 1);
        let (kind, seq, payload) = split[0];
        assert_eq!((kind, seq), (RTM_NEWLINK, 9));
        assert_eq!(&payload[4..8], &5i32.to_ne_bytes());
        assert_eq!(
            attributes(&payload[IFINFO_LEN..]),
            [(IFLA_IFNAME, &b"eth1\0"[..])]
        );
        assert!(split_messages(&msg[..msg.len() - 4]).is_err());
    }

    #[test]
    fn device_names_are_checked() {
        for good in ["eth0", "ctr_eth0", "net%d", "a"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "eth:0", "sixteen-chars-xx"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
