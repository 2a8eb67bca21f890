//! File system helpers: atomic writes and symlink-proof walks below a root.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Context, Error, Result};

/// Write `data` to `path` atomically: a temp file in the same directory,
/// fsync, rename. A crash leaves either the old or the new file, never half.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .ctx(|| format!("create temp file in {}", dir.display()))?;
    tmp.write_all(data)
        .and_then(|()| tmp.as_file().sync_all())
        .ctx(|| format!("write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .ctx(|| format!("rename into {}", path.display()))?;
    sync_dir(dir)
}

/// fsync a directory so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let fd = rfs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {}", dir.display()))?;
    rfs::fsync(&fd).ctx(|| format!("fsync {}", dir.display()))
}

pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open directory {}", path.display()))
}

/// Split a path found inside a layer or archive into safe components:
/// leading `/` and `.` components are dropped, `..` is refused.
pub fn safe_components(raw: &[u8]) -> Result<Vec<OsString>> {
    let mut out = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => continue,
            b".." => {
                return Err(Error::UnsafeEntry {
                    path: String::from_utf8_lossy(raw).into_owned(),
                    reason: "contains a '..' component".into(),
                })
            }
            _ => out.push(OsStr::from_bytes(part).to_owned()),
        }
    }
    Ok(out)
}

/// Open the directory `comps` below `root` one component at a time with
/// O_NOFOLLOW, so neither a symlink nor `..` can lead outside `root`.
/// Missing directories are created (mode 0755) when `create` is set.
pub fn open_beneath(root: &OwnedFd, comps: &[OsString], create: bool) -> Result<OwnedFd> {
    let mut cur = rfs::openat(
        root,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "reopen root directory".to_owned())?;
    for (i, comp) in comps.iter().enumerate() {
        cur = match open_child_dir(&cur, comp) {
            Ok(fd) => fd,
            Err(Errno::NOENT) if create => {
                match rfs::mkdirat(&cur, comp.as_os_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(walk_error(comps, i, e)),
                }
                open_child_dir(&cur, comp).map_err(|e| walk_error(comps, i, e))?
            }
            Err(e) => return Err(walk_error(comps, i, e)),
        };
    }
    Ok(cur)
}

fn open_child_dir(dir: &OwnedFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn walk_error(comps: &[OsString], i: usize, e: Errno) -> Error {
    let path = join(&comps[..=i]);
    match e {
        Errno::LOOP | Errno::NOTDIR => Error::UnsafeEntry {
            path,
            reason: "a parent is a symlink or not a directory".into(),
        },
        other => Error::Sys {
            context: format!("open directory {path}"),
            source: other,
        },
    }
}

pub fn join(comps: &[OsString]) -> String {
    comps
        .iter()
        .map(|c| c.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Remove `name` in `dir` and everything below it, never following symlinks.
pub fn remove_tree_at(dir: &impl AsFd, name: &OsStr) -> Result<()> {
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("stat {}", name.to_string_lossy())),
    };
    if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory {
        let child = open_child_dir_any(dir, name)?;
        for entry_name in list_dir(&child)? {
            remove_tree_at(&child, &entry_name)?;
        }
        rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)
            .ctx(|| format!("remove directory {}", name.to_string_lossy()))
    } else {
        rfs::unlinkat(dir, name, AtFlags::empty())
            .ctx(|| format!("remove {}", name.to_string_lossy()))
    }
}

fn open_child_dir_any(dir: &impl AsFd, name: &OsStr) -> Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open directory {}", name.to_string_lossy()))
}

/// Names in a directory, without `.` and `..`, sorted for determinism.
pub fn list_dir(dir: &impl AsFd) -> Result<Vec<OsString>> {
    let mut d = rfs::Dir::read_from(dir).ctx(|| "read directory".to_owned())?;
    let mut names = Vec::new();
    while let Some(entry) = d.read() {
        let entry = entry.ctx(|| "read directory entry".to_owned())?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Remove a whole directory tree by path (used for temp dirs and bundles).
pub fn remove_path_tree(path: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::Invalid(format!(
            "refusing to remove {}",
            path.display()
        )));
    };
    let parent_fd = match open_dir(parent) {
        Ok(fd) => fd,
        Err(_) if !path.exists() => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_tree_at(&parent_fd, name)
}

/// True when `path` is the root of a mount (its device differs from its
/// parent's), e.g. a mounted overlay rootfs.
pub fn is_mountpoint(path: &Path) -> Result<bool> {
    let Some(parent) = path.parent() else {
        return Ok(true);
    };
    let st = match rfs::lstat(path) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(e).ctx(|| format!("stat {}", path.display())),
    };
    let parent_st = rfs::stat(parent).ctx(|| format!("stat {}", parent.display()))?;
    Ok(st.st_dev != parent_st.st_dev || st.st_ino == parent_st.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_refuse_dotdot_and_strip_absolute() {
        assert!(safe_components(b"a/../../etc").is_err());
        let c = safe_components(b"/./etc//passwd").unwrap();
        assert_eq!(join(&c), "etc/passwd");
    }

    #[test]
    fn open_beneath_refuses_symlinked_parents() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("evil")).unwrap();
        let root = open_dir(dir.path()).unwrap();
        let comps = safe_components(b"evil/tmp").unwrap();
        let err = open_beneath(&root, &comps, true).unwrap_err();
        assert!(matches!(err, Error::UnsafeEntry { .. }), "{err}");
        let comps = safe_components(b"a/b/c").unwrap();
        open_beneath(&root, &comps, true).unwrap();
        assert!(dir.path().join("a/b/c").is_dir());
    }
}
