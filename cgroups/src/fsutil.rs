//! Small file helpers for cgroupfs: every failure carries the path.

use crate::error::{Error, Result};
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::Path;

/// Writes `value` to a cgroup control file in a single write(2), as the
/// kernel parses each write on its own (no O_TRUNC, no O_CREAT: cgroupfs
/// files always exist, and a missing one is an error worth reporting).
pub fn write_file(path: &Path, value: &str) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open", path, e))?;
    file.write_all(value.as_bytes())
        .map_err(|source| Error::Write {
            path: path.to_owned(),
            value: value.to_owned(),
            source,
        })
}

/// Reads a control file as a trimmed string.
pub fn read_file(path: &Path) -> Result<String> {
    fs::read_to_string(path)
        .map(|s| s.trim_end().to_owned())
        .map_err(|e| Error::io("read", path, e))
}

/// Reads a control file holding a single unsigned number ("max" reads as
/// `u64::MAX`).
pub fn read_u64(path: &Path) -> Result<u64> {
    let text = read_file(path)?;
    parse_u64(&text).ok_or_else(|| Error::Parse {
        file: "cgroup control file",
        line: format!("{}: {text}", path.display()),
    })
}

/// Parses a cgroup number, where v2 spells "unlimited" as `max`.
pub fn parse_u64(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return Some(u64::MAX);
    }
    text.parse().ok()
}

/// Parses "key value" lines (memory.stat, cpu.stat, memory.events...).
pub fn parse_flat_keyed(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let key = parts.next()?;
            let value = parse_u64(parts.next()?)?;
            Some((key.to_owned(), value))
        })
        .collect()
}

/// Looks one key up in a "key value" file.
pub fn read_keyed(path: &Path, key: &str) -> Result<Option<u64>> {
    let text = read_file(path)?;
    Ok(parse_flat_keyed(&text)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v))
}

/// Creates a directory; returns whether this call created it.
pub fn mkdir_if_missing(path: &Path) -> Result<bool> {
    match fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io("mkdir", path, e)),
    }
}

/// Removes an empty cgroup directory; a missing one is already gone.
pub fn rmdir_if_present(path: &Path) -> Result<()> {
    match fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("rmdir", path, e)),
    }
}

/// Reads the pids listed in a cgroup.procs file.
pub fn read_pids(procs: &Path) -> Result<Vec<i32>> {
    let text = match fs::read_to_string(procs) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", procs, e)),
    };
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// The sub-directories (child cgroups) of a cgroup directory.
pub fn child_cgroups(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("readdir", dir, e)),
    };
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("readdir", dir, e))?;
        let is_dir = entry
            .file_type()
            .map_err(|e| Error::io("stat", entry.path(), e))?
            .is_dir();
        if is_dir {
            children.push(entry.path());
        }
    }
    Ok(children)
}

/// A plain directory standing in for a cgroup in unit tests: the named control files, empty;
/// removed on drop. Writes land as on cgroupfs, from offset 0, without truncation.
#[cfg(test)]
pub(crate) struct FakeCgroup(pub(crate) std::path::PathBuf);

#[cfg(test)]
impl FakeCgroup {
    pub(crate) fn new(name: &str, files: &[&str]) -> FakeCgroup {
        let dir =
            std::env::temp_dir().join(format!("berth-cgroups-fake-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for file in files {
            fs::write(dir.join(file), "").unwrap();
        }
        FakeCgroup(dir)
    }

    pub(crate) fn read(&self, file: &str) -> String {
        fs::read_to_string(self.0.join(file)).unwrap()
    }
}

#[cfg(test)]
impl Drop for FakeCgroup {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_max_and_numbers() {
        assert_eq!(parse_u64("max\n"), Some(u64::MAX));
        assert_eq!(parse_u64(" 42 "), Some(42));
        assert_eq!(parse_u64("-1"), None);
    }

    #[test]
    fn parses_keyed_files() {
        let parsed = parse_flat_keyed("low 0\nhigh 3\noom_kill 2\nbad\n");
        assert_eq!(
            parsed,
            vec![
                ("low".to_owned(), 0),
                ("high".to_owned(), 3),
                ("oom_kill".to_owned(), 2)
            ]
        );
    }
}
