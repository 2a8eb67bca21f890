//! A container on disk: `ROOT/<id>/state.json` (what berth remembers, small: `list`
//! reads only this) and `ROOT/<id>/config.json` (the config it was created with), both
//! written atomically, the exec fifo that holds a created container before `start`, and
//! an exclusive lock so two commands on one id never interleave.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use super::error::{Context, Error, Result};

pub const OCI_VERSION: &str = "1.2.0";
const STATE_FILE: &str = "state.json";
const CONFIG_FILE: &str = "config.json";
pub const EXEC_FIFO: &str = "exec.fifo";

/// The lifecycle states of the runtime spec (plus paused, as runc reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What berth remembers about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub id: String,
    /// Host pid of the container's init.
    pub pid: i32,
    /// The init's start time (clock ticks since boot, /proc/PID/stat field 22), so a
    /// recycled pid is never mistaken for the container.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub owner: String,
    /// The config's annotations (the state document carries them; kept here so `list`
    /// never reads the config).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The config the container was created with (hooks, namespaces for exec): stored in
    /// its own file beside the state.
    #[serde(skip)]
    pub config: Spec,
    /// The container's cgroups, as resolved and created at create time.
    #[serde(default)]
    pub cgroup: Option<berth_cgroups::Manager>,
    /// `create --no-new-keyring`: exec'd processes do not join a `_ses.ID` keyring either.
    #[serde(default)]
    pub no_new_keyring: bool,
}

/// The OCI state document (`berth state`, hooks' stdin, `list --format json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OciState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A container directory held under an exclusive lock for the life of this value.
pub struct Container {
    dir: PathBuf,
    /// The open directory; its flock is the container's lock.
    _lock: File,
    pub saved: Option<Saved>,
}

/// Checks a container id the way runc does: letters, digits, `_ + - .`, not `.`/`..`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_+-.".contains(c);
    if id.is_empty() || id == "." || id == ".." || !id.chars().all(ok_char) {
        return Err(Error::Usage(format!("invalid container id {id:?}")));
    }
    Ok(())
}

fn lock_dir(dir: &Path) -> Result<File> {
    let file = File::open(dir).ctx(|| format!("opening {}", dir.display()))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(std::io::Error::from)
        .ctx(|| format!("locking {}", dir.display()))?;
    Ok(file)
}

impl Container {
    /// Makes the directory of a new container; fails if the id is taken.
    pub fn create_dir(root: &Path, id: &str) -> Result<Container> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(root)
            .ctx(|| format!("creating state root {}", root.display()))?;
        let dir = root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(id.to_string()))
            }
            Err(e) => return Err(e).ctx(|| format!("creating {}", dir.display())),
        }
        let lock = lock_dir(&dir)?;
        Ok(Container {
            dir,
            _lock: lock,
            saved: None,
        })
    }

    /// Opens and locks an existing container.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        validate_id(id)?;
        let dir = root.join(id);
        let lock = match File::open(&dir) {
            Ok(_) => lock_dir(&dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(e).ctx(|| format!("opening {}", dir.display())),
        };
        let path = dir.join(STATE_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            // Removed by a concurrent delete, or a create that never finished.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
        };
        let mut saved: Saved = serde_json::from_slice(&bytes)
            .map_err(|e| Error::State(format!("corrupt state file {}: {e}", path.display())))?;
        saved.config = read_config(&dir.join(CONFIG_FILE))?;
        Ok(Container {
            dir,
            _lock: lock,
            saved: Some(saved),
        })
    }

    /// The descriptor holding the lock; the init closes its inherited copy at once, or
    /// the lock would live on in the init until exec.
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self._lock.as_raw_fd()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    /// The saved state; `load` always has one.
    pub fn saved(&self) -> Result<&Saved> {
        self.saved
            .as_ref()
            .ok_or_else(|| Error::State("container has no saved state".into()))
    }

    /// Writes config.json when the config changed, then state.json, each atomically
    /// (temp file, fsync-free rename: the state dir lives on tmpfs). state.json is what
    /// marks the container as existing, so it is written last.
    pub fn save(&mut self, saved: Saved) -> Result<()> {
        let encode = |e: serde_json::Error| Error::State(format!("encoding state: {e}"));
        if self
            .saved
            .as_ref()
            .is_none_or(|old| old.config != saved.config)
        {
            let config = serde_json::to_vec(&saved.config).map_err(encode)?;
            write_atomic(&self.dir.join(CONFIG_FILE), &config, 0o600)?;
        }
        let bytes = serde_json::to_vec(&saved).map_err(encode)?;
        write_atomic(&self.dir.join(STATE_FILE), &bytes, 0o600)?;
        self.saved = Some(saved);
        Ok(())
    }

    /// The container's status, read from the live process, the exec fifo and the freezer.
    pub fn status(&self) -> Result<Status> {
        Ok(status_of(self.saved()?, &self.dir))
    }

    /// The OCI state document as of now.
    pub fn oci_state(&self) -> Result<OciState> {
        let status = self.status()?;
        let saved = self.saved()?;
        Ok(oci_state(saved, status))
    }

    /// Removes the container's directory (the lock goes with it).
    pub fn remove(self) -> Result<()> {
        fs::remove_dir_all(&self.dir).ctx(|| format!("removing {}", self.dir.display()))
    }
}

/// Reads a saved config (written by `Container::save`).
fn read_config(path: &Path) -> Result<Spec> {
    let corrupt = |e: String| Error::State(format!("corrupt config file {}: {e}", path.display()));
    let bytes = fs::read(path).ctx(|| format!("reading {}", path.display()))?;
    let value = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    super::spec_de::spec_from_value(value).map_err(corrupt)
}

/// The status of the container saved in `dir`: stopped once its init is gone (a zombie
/// counts as gone), created while the init waits on the exec fifo, paused while its
/// cgroup is frozen, else running.
pub fn status_of(saved: &Saved, dir: &Path) -> Status {
    live_status(saved.pid, saved.pid_start_time, saved.cgroup.as_ref(), dir)
}

/// `status_of` from the few fields it needs.
pub fn live_status(
    pid: i32,
    pid_start_time: u64,
    cgroup: Option<&berth_cgroups::Manager>,
    dir: &Path,
) -> Status {
    if !process_alive(pid, pid_start_time) {
        return Status::Stopped;
    }
    status_of_live(cgroup, dir)
}

/// The status of a container whose init is known to be alive: created while it waits on
/// the exec fifo, paused while its cgroup is frozen, else running.
pub fn status_of_live(cgroup: Option<&berth_cgroups::Manager>, dir: &Path) -> Status {
    if dir.join(EXEC_FIFO).exists() {
        return Status::Created;
    }
    let frozen = cgroup.is_some_and(|cg| cg.freeze_requested().unwrap_or(false));
    if frozen {
        Status::Paused
    } else {
        Status::Running
    }
}

/// Builds the OCI state document for `saved` in `status`.
pub fn oci_state(saved: &Saved, status: Status) -> OciState {
    OciState {
        oci_version: OCI_VERSION.to_string(),
        id: saved.id.clone(),
        pid: if status == Status::Stopped {
            0
        } else {
            saved.pid
        },
        status: status.as_str().to_string(),
        bundle: saved.bundle.clone(),
        rootfs: saved.rootfs.clone(),
        created: saved.created.clone(),
        owner: saved.owner.clone(),
        annotations: saved.annotations.clone(),
    }
}

/// Writes `bytes` to `path` through a temp file and a rename, so readers see either the
/// old or the new content, never half of it.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.ctx(|| format!("writing {}", path.display()))
}

/// Reads the state letter and start time (field 22) of /proc/PID/stat.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After ')' come fields 3..: state is field 3, starttime is field 22.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// True if `pid` is still the container's init and has not exited (a zombie counts as exited).
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match proc_stat(pid) {
        Some((state, start)) => start == start_time && state != 'Z' && state != 'X',
        None => false,
    }
}

/// Lists the names under `root`, sorted: the ids of its containers, plus whatever else is
/// there (a reader skips entries without a state file rather than checking each twice).
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(|| format!("reading {}", root.display())),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// The current time as RFC 3339 with nanoseconds, in UTC.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// Formats seconds since the epoch as RFC 3339 (UTC), using the civil-from-days algorithm.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{nanos:09}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_000_000, 0), "2026-11-18T11:06:40.000000000Z");
    }

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "../x"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn own_process_is_alive_and_start_time_guards_reuse() {
        let pid = std::process::id() as i32;
        let (state, start) = proc_stat(pid).expect("own stat");
        assert_ne!(state, 'Z');
        assert!(process_alive(pid, start));
        assert!(!process_alive(pid, start + 1));
        assert!(!process_alive(0, 0));
    }
}
