//! Turning a container's changes into an OCI layer tar.
//!
//! - [`write_overlay_diff`]: the overlay upper dir *is* the change set;
//!   its whiteouts (0:0 char devices) and opaque dirs
//!   (`trusted.overlay.opaque=y`) become `.wh.NAME` and `.wh..wh..opq`.
//!   Cost follows the size of the change, not of the image.
//! - [`write_tree_diff`]: for `--copy` bundles, compare the rootfs with a
//!   view of the base layers.

use std::collections::{BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rustix::fs::{self as rfs, OFlags};
use tar::{EntryType, Header};

use crate::error::{Context, Result};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Writes layer entries, tracking hardlinks by (device, inode).
pub struct LayerWriter<W: Write> {
    builder: tar::Builder<W>,
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> LayerWriter<W> {
    pub fn new(out: W) -> Self {
        LayerWriter {
            builder: tar::Builder::new(out),
            links: HashMap::new(),
        }
    }

    pub fn finish(self) -> Result<W> {
        self.builder
            .into_inner()
            .ctx(|| "finish layer tar".to_owned())
    }

    /// Add the file system object at `full` under the name `rel`.
    pub fn add(&mut self, rel: &[u8], full: &Path, md: &fs::Metadata) -> Result<()> {
        let ft = md.file_type();
        let mut header = Header::new_gnu();
        header.set_uid(u64::from(md.uid()));
        header.set_gid(u64::from(md.gid()));
        header.set_mode(md.mode() & 0o7777);
        header.set_mtime(u64::try_from(md.mtime()).unwrap_or(0));
        header.set_size(0);
        let name = Path::new(OsStr::from_bytes(rel));
        self.add_xattrs(full, rel)?;
        let ctx = || format!("add {} to layer", full.display());
        if ft.is_dir() {
            header.set_entry_type(EntryType::Directory);
            self.builder
                .append_data(&mut header, name, io::empty())
                .ctx(ctx)
        } else if ft.is_symlink() {
            let target = fs::read_link(full).ctx(ctx)?;
            header.set_entry_type(EntryType::Symlink);
            self.builder.append_link(&mut header, name, target).ctx(ctx)
        } else if ft.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                    header.set_entry_type(EntryType::Link);
                    let first = Path::new(OsStr::from_bytes(first)).to_owned();
                    return self.builder.append_link(&mut header, name, first).ctx(ctx);
                }
                self.links.insert((md.dev(), md.ino()), rel.to_vec());
            }
            header.set_entry_type(EntryType::Regular);
            header.set_size(md.len());
            let file = open_nofollow(full).ctx(ctx)?;
            let data = ExactSize::new(file, md.len());
            self.builder.append_data(&mut header, name, data).ctx(ctx)
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                EntryType::Char
            } else if ft.is_block_device() {
                EntryType::Block
            } else {
                EntryType::Fifo
            };
            header.set_entry_type(kind);
            let rdev = md.rdev();
            header.set_device_major(rfs::major(rdev)).ctx(ctx)?;
            header.set_device_minor(rfs::minor(rdev)).ctx(ctx)?;
            self.builder
                .append_data(&mut header, name, io::empty())
                .ctx(ctx)
        } else {
            Ok(()) // sockets are not archived
        }
    }

    /// `.wh.NAME` in `dir_rel` (empty for the root).
    pub fn whiteout(&mut self, dir_rel: &[u8], name: &OsStr) -> Result<()> {
        let mut path = prefix(dir_rel);
        path.extend_from_slice(b".wh.");
        path.extend_from_slice(name.as_bytes());
        self.marker(&path)
    }

    /// `.wh..wh..opq` in `dir_rel`.
    pub fn opaque(&mut self, dir_rel: &[u8]) -> Result<()> {
        let mut path = prefix(dir_rel);
        path.extend_from_slice(b".wh..wh..opq");
        self.marker(&path)
    }

    fn marker(&mut self, path: &[u8]) -> Result<()> {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_size(0);
        header.set_mode(0o644);
        header.set_mtime(0);
        let name = Path::new(OsStr::from_bytes(path));
        self.builder
            .append_data(&mut header, name, io::empty())
            .ctx(|| format!("add whiteout {}", String::from_utf8_lossy(path)))
    }

    /// xattrs go in a PAX header before the entry, as SCHILY.xattr.NAME.
    /// Overlay's private xattrs are not part of the change.
    fn add_xattrs(&mut self, full: &Path, rel: &[u8]) -> Result<()> {
        let xattrs = read_xattrs(full)?;
        if xattrs.is_empty() {
            return Ok(());
        }
        let mut body = Vec::new();
        for (key, value) in &xattrs {
            pax_record(&mut body, &format!("SCHILY.xattr.{key}"), value);
        }
        let mut header = Header::new_ustar();
        header.set_entry_type(EntryType::XHeader);
        header.set_mode(0o644);
        header.set_size(body.len() as u64);
        let short: Vec<u8> = rel.iter().rev().take(90).rev().copied().collect();
        let mut pax_name = b"PaxHeaders/".to_vec();
        pax_name.extend_from_slice(&short);
        let _ = header.set_path(Path::new(OsStr::from_bytes(&pax_name)));
        header.set_cksum();
        self.builder
            .append(&header, &body[..])
            .ctx(|| format!("add xattrs of {}", full.display()))
    }
}

fn prefix(dir_rel: &[u8]) -> Vec<u8> {
    let mut path = dir_rel.to_vec();
    if !path.is_empty() {
        path.push(b'/');
    }
    path
}

/// One PAX record: "LEN KEY=VALUE\n" where LEN counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn read_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut names = vec![0u8; 4096];
    let n = match rfs::llistxattr(path, &mut names) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(|| format!("list xattrs of {}", path.display())),
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        let mut value = vec![0u8; 65536];
        let len = rfs::lgetxattr(path, name, &mut value)
            .ctx(|| format!("read xattr {name} of {}", path.display()))?;
        value.truncate(len);
        out.push((name.to_owned(), value));
    }
    out.sort();
    Ok(out)
}

fn open_nofollow(path: &Path) -> io::Result<File> {
    let fd = rfs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        rfs::Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// Reader giving exactly `size` bytes: a file that shrank while being
/// archived is padded with zeros so the tar stays well-formed.
struct ExactSize<R> {
    inner: io::Take<R>,
    left: u64,
}

impl<R: Read> ExactSize<R> {
    fn new(inner: R, size: u64) -> Self {
        ExactSize {
            inner: inner.take(size),
            left: size,
        }
    }
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let mut n = self.inner.read(buf)?;
        if n == 0 {
            n = buf
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            buf[..n].fill(0);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn sorted_children(dir: &Path) -> Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).ctx(|| format!("read {}", dir.display()))? {
        names.push(entry.ctx(|| format!("read {}", dir.display()))?.file_name());
    }
    names.sort();
    Ok(names)
}

fn child_rel(dir_rel: &[u8], name: &OsStr) -> Vec<u8> {
    let mut rel = prefix(dir_rel);
    rel.extend_from_slice(name.as_bytes());
    rel
}

fn is_overlay_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    let mut value = [0u8; 8];
    matches!(rfs::lgetxattr(path, OPAQUE_XATTR, &mut value), Ok(1) if value[0] == b'y')
}

/// Write the change set held in an overlay upper dir as a layer tar.
pub fn write_overlay_diff<W: Write>(upper: &Path, out: &mut LayerWriter<W>) -> Result<()> {
    overlay_dir(upper, b"", out)
}

fn overlay_dir<W: Write>(dir: &Path, dir_rel: &[u8], out: &mut LayerWriter<W>) -> Result<()> {
    for name in sorted_children(dir)? {
        let full = dir.join(&name);
        let md = fs::symlink_metadata(&full).ctx(|| format!("stat {}", full.display()))?;
        if is_overlay_whiteout(&md) {
            out.whiteout(dir_rel, &name)?;
            continue;
        }
        let rel = child_rel(dir_rel, &name);
        out.add(&rel, &full, &md)?;
        if md.is_dir() {
            if is_opaque(&full) {
                out.opaque(&rel)?;
            }
            overlay_dir(&full, &rel, out)?;
        }
    }
    Ok(())
}

/// Write the differences from `base` to `new` as a layer tar.
pub fn write_tree_diff<W: Write>(base: &Path, new: &Path, out: &mut LayerWriter<W>) -> Result<()> {
    let mut pending = Vec::new();
    tree_dir(Some(base), new, b"", out, &mut pending)
}

/// An unchanged directory not yet written: it goes into the layer only
/// if something below it changes, so that the layer carries the parent's
/// real owner and mode (an overlay would otherwise show a default one).
struct PendingDir {
    rel: Vec<u8>,
    full: std::path::PathBuf,
    md: fs::Metadata,
}

fn flush_pending<W: Write>(pending: &mut Vec<PendingDir>, out: &mut LayerWriter<W>) -> Result<()> {
    for dir in pending.drain(..) {
        out.add(&dir.rel, &dir.full, &dir.md)?;
    }
    Ok(())
}

fn tree_dir<W: Write>(
    base: Option<&Path>,
    new: &Path,
    dir_rel: &[u8],
    out: &mut LayerWriter<W>,
    pending: &mut Vec<PendingDir>,
) -> Result<()> {
    let new_names = sorted_children(new)?;
    for name in &new_names {
        let full = new.join(name);
        let md = fs::symlink_metadata(&full).ctx(|| format!("stat {}", full.display()))?;
        let base_path = base.map(|b| b.join(name));
        let base_md = base_path
            .as_ref()
            .and_then(|p| fs::symlink_metadata(p).ok());
        let rel = child_rel(dir_rel, name);
        let unchanged = match &base_md {
            Some(b) => same_entry(b, &md, base_path.as_deref(), &full),
            None => false,
        };
        if !unchanged {
            flush_pending(pending, out)?;
            out.add(&rel, &full, &md)?;
        }
        if md.is_dir() {
            let depth = pending.len();
            if unchanged {
                pending.push(PendingDir {
                    rel: rel.clone(),
                    full: full.clone(),
                    md: md.clone(),
                });
            }
            let base_dir = base_path.filter(|_| base_md.as_ref().is_some_and(|b| b.is_dir()));
            tree_dir(base_dir.as_deref(), &full, &rel, out, pending)?;
            pending.truncate(depth);
        }
    }
    if let Some(base) = base {
        let kept: BTreeSet<&OsString> = new_names.iter().collect();
        for name in sorted_children(base)? {
            if !kept.contains(&name) {
                flush_pending(pending, out)?;
                out.whiteout(dir_rel, &name)?;
            }
        }
    }
    Ok(())
}

/// Same type, owner, mode and (for non-directories) size, mtime, device or
/// link target: the rsync-style quick check. Directory mtimes change with
/// their children, which are compared on their own.
fn same_entry(a: &fs::Metadata, b: &fs::Metadata, a_path: Option<&Path>, b_path: &Path) -> bool {
    if a.file_type() != b.file_type()
        || a.mode() != b.mode()
        || a.uid() != b.uid()
        || a.gid() != b.gid()
    {
        return false;
    }
    if a.is_dir() {
        return true;
    }
    if a.mtime() != b.mtime() || a.mtime_nsec() != b.mtime_nsec() || a.size() != b.size() {
        return false;
    }
    if a.file_type().is_symlink() {
        let ta = a_path.and_then(|p| fs::read_link(p).ok());
        return ta.is_some() && ta == fs::read_link(b_path).ok();
    }
    if a.file_type().is_char_device() || a.file_type().is_block_device() {
        return a.rdev() == b.rdev();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        pax_record(&mut out, "SCHILY.xattr.user.a", b"xyz");
        let text = String::from_utf8(out.clone()).unwrap();
        let (len, _) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), out.len());
    }
}
