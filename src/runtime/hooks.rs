//! Hooks run by berth itself, in the runtime's namespaces: prestart, createRuntime
//! (during create), poststart (after start) and poststop (during delete). The hooks
//! that run inside the container (createContainer, startContainer) are run by the init.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

use oci_spec::runtime::Hook;

use super::error::{Error, Result};
use super::sys;

/// Runs each hook in order with `state` on stdin; the first failure stops the list.
pub fn run_all(kind: &str, hooks: &[Hook], state: &[u8]) -> Result<()> {
    for (i, hook) in hooks.iter().enumerate() {
        run_one(hook, state).map_err(|why| {
            Error::Hook(format!(
                "{kind} hook #{i} ({}) failed: {why}",
                hook.path().display()
            ))
        })?;
    }
    Ok(())
}

/// Runs every hook even if some fail, returning the failures (poststart, poststop:
/// the spec makes those warnings).
pub fn run_all_warn(kind: &str, hooks: &[Hook], state: &[u8]) -> Vec<String> {
    hooks
        .iter()
        .enumerate()
        .filter_map(|(i, hook)| {
            run_one(hook, state)
                .err()
                .map(|why| format!("{kind} hook #{i} ({}) failed: {why}", hook.path().display()))
        })
        .collect()
}

fn run_one(hook: &Hook, state: &[u8]) -> std::result::Result<(), String> {
    let mut cmd = Command::new(hook.path());
    if let Some([arg0, rest @ ..]) = hook.args().as_deref() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for var in hook.env().as_deref().unwrap_or_default() {
        if let Some((k, v)) = var.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine (EPIPE ignored).
        let _ = stdin.write_all(state);
    }
    let timeout_ms = hook
        .timeout()
        .map(|t| t.saturating_mul(1000).min(i32::MAX as i64) as i32)
        .unwrap_or(-1);
    let pidfd = sys::pidfd_open(child.id() as i32).map_err(|e| e.to_string())?;
    let exited = sys::wait_pidfd(pidfd.as_raw_fd(), timeout_ms).map_err(|e| e.to_string())?;
    if !exited {
        let _ = sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL);
        let _ = child.wait();
        return Err(format!("timed out after {}s", hook.timeout().unwrap_or(0)));
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        return Ok(());
    }
    Err(match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (_, Some(sig)) => format!("killed by signal {sig}"),
        _ => "failed".to_string(),
    })
}
