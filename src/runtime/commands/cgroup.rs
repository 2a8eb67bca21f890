//! pause, resume, ps, update and events: the commands that work through the
//! container's cgroup.

use std::path::Path;
use std::time::Duration;

use berth_cgroups::Manager;
use oci_spec::runtime::LinuxResources;

use crate::runtime::container::{Container, Status};
use crate::runtime::error::{Context, Error, Result};
use crate::runtime::{log, spec, spec_de};

fn cgroup_of(container: &Container) -> Result<&Manager> {
    container
        .saved()?
        .cgroup
        .as_ref()
        .ok_or_else(|| Error::State("the container has no cgroup".into()))
}

/// `berth pause ID`: freezes every process of the container.
pub fn pause(root: &Path, id: &str) -> Result<()> {
    let container = Container::load(root, id)?;
    match container.status()? {
        Status::Running | Status::Created => Ok(cgroup_of(&container)?.freeze()?),
        Status::Paused => Err(Error::State("container already paused".into())),
        status => Err(Error::State(format!("container not running: {status}"))),
    }
}

/// `berth resume ID`.
pub fn resume(root: &Path, id: &str) -> Result<()> {
    let container = Container::load(root, id)?;
    match container.status()? {
        Status::Paused => Ok(cgroup_of(&container)?.thaw()?),
        status => Err(Error::State(format!("container not paused: {status}"))),
    }
}

/// The pids of every process in the container's cgroup.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    let container = Container::load(root, id)?;
    if container.status()? == Status::Stopped {
        return Err(Error::State("container not running".into()));
    }
    Ok(cgroup_of(&container)?.pids()?)
}

/// `berth ps ID [ps-args]` in table form: runs `ps` (default `-ef`) and keeps the header
/// and the lines whose PID column is one of the container's processes.
pub fn ps_table(pids: &[i32], ps_args: &[String]) -> Result<String> {
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .ctx(|| "running ps")?;
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    filter_ps_output(&String::from_utf8_lossy(&out.stdout), pids)
}

fn filter_ps_output(text: &str, pids: &[i32]) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let column = header
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or_else(|| Error::Usage("ps output has no PID column".into()))?;
    let mut result = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            result.push_str(line);
            result.push('\n');
        }
    }
    Ok(result)
}

/// Parses a byte size as runc does: a number with an optional k/m/g/t suffix (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| Error::Usage(format!("invalid size {s:?}")))?;
    if value < 0.0 {
        return Err(Error::Usage(format!("invalid size {s:?}")));
    }
    Ok((value * mult as f64) as i64)
}

/// `berth update`: merges `patch` (linux.resources JSON) into the container's resources,
/// applies the result to the live cgroup and records it.
pub fn update(root: &Path, id: &str, patch: serde_json::Value) -> Result<()> {
    let mut container = Container::load(root, id)?;
    if container.status()? == Status::Stopped {
        return Err(Error::State("container not running".into()));
    }
    let mut saved = container.saved()?.clone();
    let current = saved
        .config
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let mut value = serde_json::to_value(&current)
        .map_err(|e| Error::State(format!("encoding resources: {e}")))?;
    spec::merge_json(&mut value, patch);
    let merged: LinuxResources =
        spec_de::from_value(value).map_err(|e| Error::Config(format!("linux.resources: {e}")))?;
    for warning in cgroup_of(&container)?.update(&merged)? {
        log::warn(&warning);
    }
    let mut linux = saved.config.linux().clone().unwrap_or_default();
    linux.set_resources(Some(merged));
    saved.config.set_linux(Some(linux));
    container.save(saved)
}

/// The `data` of a stats event, as JSON.
pub fn stats(root: &Path, id: &str) -> Result<serde_json::Value> {
    let container = Container::load(root, id)?;
    if container.status()? == Status::Stopped {
        return Err(Error::State("container not running".into()));
    }
    let stats = cgroup_of(&container)?.stats()?;
    serde_json::to_value(stats).map_err(|e| Error::State(format!("encoding stats: {e}")))
}

/// How long `events` still waits for an OOM count once the container has stopped.
const LATE_OOM_GRACE: Duration = Duration::from_millis(200);

/// `berth events`: a stats event every `interval` and an oom event for each OOM kill,
/// one JSON object per line, until the container stops.
pub fn events(
    root: &Path,
    id: &str,
    interval: Duration,
    mut emit: impl FnMut(serde_json::Value),
) -> Result<()> {
    let manager = {
        let container = Container::load(root, id)?;
        if container.status()? == Status::Stopped {
            return Err(Error::State("container not running".into()));
        }
        cgroup_of(&container)?.clone()
    };
    let mut watcher = manager.oom_watcher().ok();
    loop {
        let ooms = match watcher.as_mut() {
            Some(w) => w.wait(Some(interval)).unwrap_or(0),
            None => {
                std::thread::sleep(interval);
                0
            }
        };
        // Before the status check: an OOM kill of the init itself stops the container, and
        // that kill must still be reported.
        for _ in 0..ooms {
            emit(serde_json::json!({"type": "oom", "id": id}));
        }
        let container = match Container::load(root, id) {
            Ok(c) => c,
            Err(Error::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if container.status()? == Status::Stopped {
            // The kernel counts an OOM kill after it sends the SIGKILL, so the victim can be
            // gone before the counter moves: one last short wait catches a late count.
            let late = match watcher.as_mut() {
                Some(w) => w.wait(Some(LATE_OOM_GRACE)).unwrap_or(0),
                None => 0,
            };
            for _ in 0..late {
                emit(serde_json::json!({"type": "oom", "id": id}));
            }
            return Ok(());
        }
        if let Ok(stats) = manager.stats() {
            emit(serde_json::json!({"type": "stats", "id": id, "data": stats}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_like_runc() {
        assert_eq!(parse_bytes("64m").ok(), Some(64 << 20));
        assert_eq!(parse_bytes("1G").ok(), Some(1 << 30));
        assert_eq!(parse_bytes("1024").ok(), Some(1024));
        assert_eq!(parse_bytes("-1").ok(), Some(-1));
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn ps_output_is_filtered_by_pid_column() {
        let text = "UID PID PPID CMD\nroot 1 0 init\nroot 42 1 sh\nroot 43 42 sleep\n";
        let out = filter_ps_output(text, &[42]).expect("filter");
        assert_eq!(out, "UID PID PPID CMD\nroot 42 1 sh\n");
    }

    #[test]
    fn merge_replaces_leaves_and_keeps_siblings() {
        let mut base = serde_json::json!({"memory": {"limit": 1, "swap": 2}, "pids": {"limit": 3}});
        spec::merge_json(&mut base, serde_json::json!({"memory": {"limit": 5}}));
        assert_eq!(
            base,
            serde_json::json!({"memory": {"limit": 5, "swap": 2}, "pids": {"limit": 3}})
        );
    }
}
