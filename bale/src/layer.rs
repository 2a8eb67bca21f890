//! Applying layer tars to a directory, following the image spec's
//! changeset rules, safely against hostile layers.
//!
//! Two modes:
//! - [`Whiteouts::Overlay`]: the layer is extracted alone into an empty
//!   directory that later serves as an overlay lowerdir, so OCI whiteouts
//!   become overlay whiteouts (0:0 char devices, `trusted.overlay.opaque`).
//! - [`Whiteouts::Apply`]: the layer is applied on top of the layers below
//!   it in the same directory (`--copy` bundles); whiteouts delete lower
//!   files, but never what this same layer wrote.
//!
//! Safety: every path is resolved one component at a time with O_NOFOLLOW
//! below the root ([`fsutil::open_beneath`]), `..` is refused, hardlink
//! targets are resolved the same way, and the decompressed size and entry
//! count are bounded.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use crate::digest::{Digest, HashingReader};
use crate::error::{Context, Error, Result};
use crate::fsutil::{self, join, open_beneath, remove_tree_at, safe_components};
use crate::store::{check_digest, Store};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const XATTR_PAX_PREFIX: &str = "SCHILY.xattr.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whiteouts {
    Overlay,
    Apply,
}

/// Bounds against tar bombs.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Maximum decompressed bytes of one layer.
    pub max_bytes: u64,
    /// Maximum number of entries in one layer.
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
        }
    }
}

/// Compression of a layer blob, sniffed from its first bytes (media types
/// in the wild are not always accurate; the magic numbers are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn sniff_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Wrap a blob reader in the matching decompressor.
pub fn decompress<'a>(reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut reader = BufReader::new(reader);
    let head = io::BufRead::fill_buf(&mut reader).ctx(|| "read layer header".to_owned())?;
    Ok(match sniff_compression(head) {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(reader)
                .ctx(|| "start zstd decoder".to_owned())?,
        ),
        Compression::None => Box::new(reader),
    })
}

/// Apply the layer blob `blob` (any supported compression) to `root`,
/// after checking the blob against its digest; the uncompressed stream is
/// checked against `diff_id`.
pub fn apply_blob(
    store: &Store,
    blob: &Digest,
    diff_id: &Digest,
    root: &Path,
    mode: Whiteouts,
    limits: Limits,
) -> Result<()> {
    store.verify_blob(blob)?;
    let file: File = store.open_blob(blob)?;
    let decompressed = decompress(file)?;
    let mut hashing = HashingReader::with_limit(decompressed, limits.max_bytes);
    apply_tar(&mut hashing, root, mode, limits).map_err(|e| layer_error(blob, e))?;
    hashing
        .drain()
        .ctx(|| format!("read layer {blob}"))
        .map_err(|e| layer_error(blob, e))?;
    let (actual, _) = hashing.finish();
    check_digest(&format!("diff ID of layer {blob}"), diff_id, &actual)
}

fn layer_error(blob: &Digest, e: Error) -> Error {
    match e {
        Error::Io { context, source } if source.to_string().contains("exceeds the limit") => {
            Error::LayerTooLarge(format!("layer {blob}: {context}: {source}"))
        }
        Error::Io { context, source } => Error::Io {
            context: format!("layer {blob}: {context}"),
            source,
        },
        other => other,
    }
}

/// Apply an uncompressed layer tar stream to `root`.
pub fn apply_tar(reader: impl Read, root: &Path, mode: Whiteouts, limits: Limits) -> Result<()> {
    let root_fd = fsutil::open_dir(root)?;
    let mut state = ApplyState {
        root: root_fd,
        mode,
        written: HashSet::new(),
        deferred_whiteouts: Vec::new(),
        dir_times: Vec::new(),
    };
    let mut archive = tar::Archive::new(reader);
    let mut count: u64 = 0;
    for entry in archive.entries().ctx(|| "read layer tar".to_owned())? {
        let mut entry = entry.ctx(|| "read layer tar entry".to_owned())?;
        count += 1;
        if count > limits.max_entries {
            return Err(Error::LayerTooLarge(format!(
                "more than {} entries",
                limits.max_entries
            )));
        }
        state.apply_entry(&mut entry)?;
    }
    state.finish()
}

struct ApplyState {
    root: OwnedFd,
    mode: Whiteouts,
    /// Paths this layer wrote (Apply mode): whiteouts spare them.
    written: HashSet<Vec<u8>>,
    /// Whiteouts of Apply mode, run once the whole layer is known.
    deferred_whiteouts: Vec<Vec<OsString>>,
    /// Directory mtimes, set last since adding children changes them.
    dir_times: Vec<(Vec<OsString>, u64)>,
}

/// Metadata of one tar entry, gathered before touching the disk.
struct EntryMeta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: u64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl ApplyState {
    fn apply_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw_path = entry.path_bytes().into_owned();
        let comps = safe_components(&raw_path)?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
            return Ok(());
        }
        let Some((name, parent)) = comps.split_last() else {
            // The layer root itself ("./"): only its metadata matters.
            let meta = entry_meta(entry)?;
            return set_dir_meta(&self.root, &meta, &raw_path);
        };
        let name_bytes = name.as_bytes();
        if name_bytes.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(parent, name_bytes, &raw_path);
        }
        let dir = open_beneath(&self.root, parent, true)?;
        let meta = entry_meta(entry)?;
        self.mark_written(&comps);
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                replace_existing(&dir, name, false)?;
                write_file(&dir, name, entry, &meta)
            }
            EntryType::Directory => {
                replace_existing(&dir, name, true)?;
                make_dir(&dir, name, &meta)?;
                self.dir_times.push((comps.clone(), meta.mtime));
                Ok(())
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                replace_existing(&dir, name, false)?;
                rfs::symlinkat(OsStr::from_bytes(&target), &dir, name.as_os_str())
                    .ctx(|| format!("create symlink {}", join(&comps)))?;
                set_link_meta(&dir, name, &meta, &comps)
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                replace_existing(&dir, name, false)?;
                self.hardlink(&dir, name, &target, &comps)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let file_type = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                replace_existing(&dir, name, false)?;
                rfs::mknodat(
                    &dir,
                    name.as_os_str(),
                    file_type,
                    Mode::from_raw_mode(0o600),
                    rfs::makedev(major, minor),
                )
                .ctx(|| format!("create device {}", join(&comps)))?;
                set_node_meta(&dir, name, &meta, &comps)
            }
            // Other types (sockets cannot be archived; vendor extensions)
            // carry nothing to extract.
            _ => Ok(()),
        }
    }

    fn mark_written(&mut self, comps: &[OsString]) {
        if self.mode == Whiteouts::Apply {
            self.written.insert(join(comps).into_bytes());
        }
    }

    fn whiteout(&mut self, parent: &[OsString], name: &[u8], raw: &[u8]) -> Result<()> {
        let opaque = name == OPAQUE_MARKER;
        let target = &name[WHITEOUT_PREFIX.len()..];
        if !opaque && matches!(target, b"" | b"." | b"..") {
            return Err(Error::UnsafeEntry {
                path: String::from_utf8_lossy(raw).into_owned(),
                reason: "invalid whiteout name".into(),
            });
        }
        match (self.mode, opaque) {
            (Whiteouts::Overlay, true) => {
                let dir = open_beneath(&self.root, parent, true)?;
                rfs::fsetxattr(&dir, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .ctx(|| format!("mark {} opaque", join(parent)))
            }
            (Whiteouts::Overlay, false) => {
                let dir = open_beneath(&self.root, parent, true)?;
                let target = OsStr::from_bytes(target);
                remove_tree_at(&dir, target)?;
                rfs::mknodat(
                    &dir,
                    target,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rfs::makedev(0, 0),
                )
                .ctx(|| format!("create whiteout for {}", String::from_utf8_lossy(raw)))
            }
            (Whiteouts::Apply, true) => {
                self.deferred_whiteouts.push(parent.to_vec());
                Ok(())
            }
            (Whiteouts::Apply, false) => {
                let mut path = parent.to_vec();
                path.push(OsStr::from_bytes(target).to_owned());
                // Marker: a trailing empty component means "the path itself".
                path.push(OsString::new());
                self.deferred_whiteouts.push(path);
                Ok(())
            }
        }
    }

    fn hardlink(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        target: &[u8],
        comps: &[OsString],
    ) -> Result<()> {
        let target_comps = safe_components(target)?;
        let Some((target_name, target_parent)) = target_comps.split_last() else {
            return Err(Error::UnsafeEntry {
                path: join(comps),
                reason: "hardlink to the layer root".into(),
            });
        };
        let target_dir = open_beneath(&self.root, target_parent, false)?;
        rfs::linkat(
            &target_dir,
            target_name.as_os_str(),
            dir,
            name,
            AtFlags::empty(),
        )
        .ctx(|| format!("hardlink {} to {}", join(comps), join(&target_comps)))
    }

    /// Run Apply-mode whiteouts and set directory mtimes.
    fn finish(mut self) -> Result<()> {
        for path in std::mem::take(&mut self.deferred_whiteouts) {
            match path.split_last() {
                Some((last, target)) if last.is_empty() => self.remove_lower(target)?,
                _ => self.remove_lower_children(&path)?,
            }
        }
        for (comps, mtime) in &self.dir_times {
            let Ok(fd) = open_beneath(&self.root, comps, false) else {
                continue; // replaced later in the layer; nothing to date
            };
            set_times(&fd, *mtime).ctx(|| format!("set mtime of {}", join(comps)))?;
        }
        Ok(())
    }

    /// Remove `path` as it came from lower layers: if this layer wrote it,
    /// keep it but prune lower children below it.
    fn remove_lower(&self, path: &[OsString]) -> Result<()> {
        let Some((name, parent)) = path.split_last() else {
            return Ok(());
        };
        let Ok(dir) = open_beneath(&self.root, parent, false) else {
            return Ok(()); // nothing there to remove
        };
        if self.written.contains(join(path).as_bytes()) {
            if is_dir_at(&dir, name) {
                self.remove_lower_children(path)?;
            }
            return Ok(());
        }
        remove_tree_at(&dir, name)
    }

    fn remove_lower_children(&self, dir_path: &[OsString]) -> Result<()> {
        let Ok(dir) = open_beneath(&self.root, dir_path, false) else {
            return Ok(());
        };
        for child in fsutil::list_dir(&dir)? {
            let mut path = dir_path.to_vec();
            path.push(child);
            self.remove_lower(&path)?;
        }
        Ok(())
    }
}

fn is_dir_at(dir: &impl AsFd, name: &OsStr) -> bool {
    rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
        .unwrap_or(false)
}

fn entry_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<EntryMeta> {
    let header = entry.header();
    let bad = |what: &str| Error::InvalidArchive(format!("tar header: bad {what}"));
    let uid = header.uid().map_err(|_| bad("uid"))?;
    let gid = header.gid().map_err(|_| bad("gid"))?;
    let mode = header.mode().map_err(|_| bad("mode"))? & 0o7777;
    let mtime = header.mtime().map_err(|_| bad("mtime"))?;
    let mut xattrs = Vec::new();
    if let Some(exts) = entry
        .pax_extensions()
        .ctx(|| "read pax headers".to_owned())?
    {
        for ext in exts {
            let ext = ext.ctx(|| "read pax header".to_owned())?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix(XATTR_PAX_PREFIX) {
                // Overlay's own xattrs would let a layer rewrite how the
                // overlay resolves paths; opaque dirs come from whiteouts.
                if !name.starts_with("trusted.overlay.") {
                    xattrs.push((name.to_owned(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    Ok(EntryMeta {
        uid: u32::try_from(uid).map_err(|_| bad("uid"))?,
        gid: u32::try_from(gid).map_err(|_| bad("gid"))?,
        mode,
        mtime,
        xattrs,
    })
}

/// Make room for a new entry: anything in the way goes, except a directory
/// that is being replaced by a directory (its contents merge).
fn replace_existing(dir: &OwnedFd, name: &OsStr, new_is_dir: bool) -> Result<()> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("stat {}", name.to_string_lossy())),
        Ok(st) => {
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            if new_is_dir && is_dir {
                Ok(())
            } else {
                remove_tree_at(dir, name)
            }
        }
    }
}

fn write_file<R: Read>(
    dir: &OwnedFd,
    name: &OsStr,
    entry: &mut tar::Entry<'_, R>,
    meta: &EntryMeta,
) -> Result<()> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .ctx(|| format!("create {}", name.to_string_lossy()))?;
    let mut file = File::from(fd);
    io::copy(entry, &mut file).ctx(|| format!("write {}", name.to_string_lossy()))?;
    apply_fd_meta(&file, meta).ctx(|| format!("set metadata of {}", name.to_string_lossy()))
}

fn make_dir(dir: &OwnedFd, name: &OsStr, meta: &EntryMeta) -> Result<()> {
    match rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e).ctx(|| format!("create directory {}", name.to_string_lossy())),
    }
    let fd = rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open directory {}", name.to_string_lossy()))?;
    apply_owner_mode_xattrs(&fd, meta).ctx(|| format!("set metadata of {}", name.to_string_lossy()))
}

fn set_dir_meta(root: &OwnedFd, meta: &EntryMeta, raw: &[u8]) -> Result<()> {
    apply_owner_mode_xattrs(root, meta)
        .ctx(|| format!("set metadata of {}", String::from_utf8_lossy(raw)))
}

/// chown before chmod: chown clears setuid/setgid bits.
fn apply_owner_mode_xattrs(fd: &impl AsFd, meta: &EntryMeta) -> rustix::io::Result<()> {
    rfs::fchown(
        fd,
        Some(rfs::Uid::from_raw(meta.uid)),
        Some(rfs::Gid::from_raw(meta.gid)),
    )?;
    rfs::fchmod(fd, Mode::from_raw_mode(meta.mode))?;
    for (key, value) in &meta.xattrs {
        rfs::fsetxattr(fd, key.as_str(), value, XattrFlags::empty())?;
    }
    Ok(())
}

fn apply_fd_meta(fd: &impl AsFd, meta: &EntryMeta) -> io::Result<()> {
    apply_owner_mode_xattrs(fd, meta)?;
    set_times(fd, meta.mtime)?;
    Ok(())
}

fn set_times(fd: &impl AsFd, mtime: u64) -> rustix::io::Result<()> {
    let ts = timespec(mtime);
    rfs::futimens(
        fd,
        &Timestamps {
            last_access: ts,
            last_modification: ts,
        },
    )
}

fn timespec(secs: u64) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(secs).unwrap_or(i64::MAX),
        tv_nsec: 0,
    }
}

/// Metadata for symlinks: no fd can be opened on them, so use the *at
/// calls with AT_SYMLINK_NOFOLLOW (mode bits of symlinks do not exist).
fn set_link_meta(dir: &OwnedFd, name: &OsStr, meta: &EntryMeta, comps: &[OsString]) -> Result<()> {
    rfs::chownat(
        dir,
        name,
        Some(rfs::Uid::from_raw(meta.uid)),
        Some(rfs::Gid::from_raw(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .ctx(|| format!("chown {}", join(comps)))?;
    let ts = timespec(meta.mtime);
    rfs::utimensat(
        dir,
        name,
        &Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .ctx(|| format!("set mtime of {}", join(comps)))
}

/// Metadata for devices and fifos, which we just created in a directory
/// only we write to; opening a fifo or device could block or have effects,
/// so use the *at calls.
fn set_node_meta(dir: &OwnedFd, name: &OsStr, meta: &EntryMeta, comps: &[OsString]) -> Result<()> {
    set_link_meta(dir, name, meta, comps)?;
    rfs::chmodat(dir, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())
        .ctx(|| format!("chmod {}", join(comps)))?;
    // Setting xattrs on device nodes needs a path; go through the
    // directory fd's /proc link so the parent cannot be swapped.
    for (key, value) in &meta.xattrs {
        let path = proc_path(dir, name);
        rfs::lsetxattr(&path, key.as_str(), value, XattrFlags::empty())
            .ctx(|| format!("set xattr {key} on {}", join(comps)))?;
    }
    Ok(())
}

fn proc_path(dir: &impl AsFd, name: &OsStr) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    Path::new(&format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd())).join(name)
}
