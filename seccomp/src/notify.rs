//! Handing the seccomp notify fd to the agent at `listenerPath`.
//!
//! Runtime spec (config-linux.md, "seccomp"): the runtime connects to the
//! AF_UNIX SOCK_STREAM socket, sends exactly one container process state per
//! connection with the fds named in its `fds` array attached (SCM_RIGHTS, same
//! order), and closes the connection.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{
    connect, send, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
    UnixAddr,
};

use crate::error::Error;

/// The `ociVersion` sent when the state has none.
const DEFAULT_OCI_VERSION: &str = "1.0.2";

/// The container process state for the agent:
/// `{"ociVersion", "fds": ["seccompFd"], "pid", "metadata", "state"}`.
///
/// `state` is the container state (as `berth state` prints it); its
/// `ociVersion` is reused. `metadata` (listenerMetadata) is left out when the
/// config has none.
pub fn process_state_json(
    listener_metadata: Option<&str>,
    pid: i32,
    state: serde_json::Value,
) -> Vec<u8> {
    let oci_version = state
        .get("ociVersion")
        .and_then(|v| v.as_str())
        .unwrap_or(DEFAULT_OCI_VERSION)
        .to_owned();
    let mut process_state = serde_json::json!({
        "ociVersion": oci_version,
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if let Some(metadata) = listener_metadata {
        process_state["metadata"] = serde_json::Value::from(metadata);
    }
    process_state.to_string().into_bytes()
}

/// Connects to the agent at `path` and sends `process_state_json` with
/// `notify_fd` attached, then closes the connection.
pub fn send_to_listener(
    path: &Path,
    notify_fd: BorrowedFd<'_>,
    process_state_json: &[u8],
) -> Result<(), Error> {
    let fail = |step: &'static str| {
        move |source: io::Error| Error::Listener {
            path: path.to_path_buf(),
            step,
            source,
        }
    };
    if process_state_json.is_empty() {
        return Err(fail("send")(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty process state",
        )));
    }
    let addr = UnixAddr::new(path).map_err(|e| fail("address")(e.into()))?;
    let sock: OwnedFd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| fail("socket")(e.into()))?;
    connect(sock.as_raw_fd(), &addr).map_err(|e| fail("connect")(e.into()))?;
    // The fd rides on the first bytes; a short write sends the rest plainly.
    let fds = [notify_fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(process_state_json)];
    let mut sent = sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(|e| fail("sendmsg")(e.into()))?;
    while sent < process_state_json.len() {
        sent += send(
            sock.as_raw_fd(),
            &process_state_json[sent..],
            MsgFlags::MSG_NOSIGNAL,
        )
        .map_err(|e| fail("send")(e.into()))?;
    }
    drop(sock);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_follows_the_spec_shape() {
        let state = serde_json::json!({"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 42, "bundle": "/b"});
        let json: serde_json::Value = serde_json::from_slice(&process_state_json(
            Some("MKNOD=/dev/null"),
            42,
            state.clone(),
        ))
        .unwrap();
        assert_eq!(json["ociVersion"], "1.2.0");
        assert_eq!(json["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(json["pid"], 42);
        assert_eq!(json["metadata"], "MKNOD=/dev/null");
        assert_eq!(json["state"], state);
        let bare: serde_json::Value =
            serde_json::from_slice(&process_state_json(None, 1, serde_json::json!({}))).unwrap();
        assert_eq!(bare["ociVersion"], DEFAULT_OCI_VERSION);
        assert!(bare.get("metadata").is_none());
    }
}
