//! Helpers for bale's integration tests: a tmpfs scratch area, and images
//! built in-process from tar entries.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use bale::digest::Digest;
use bale::reference::Reference;
use bale::store::Store;
use oci_spec::image::{Descriptor, MediaType};
use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};

/// A temp dir with a fresh tmpfs on it (the root file system here is slow
/// at creating files right after deleting many), unmounted on drop.
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("temp dir");
        mount("tmpfs", dir.path(), "tmpfs", MountFlags::empty(), None).expect("mount tmpfs");
        Scratch { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Bundles mounted below go with a lazy unmount of the tmpfs.
        let _ = unmount(self.dir.path(), UnmountFlags::DETACH);
    }
}

/// One entry of a test layer.
pub enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Fifo(&'a str),
    CharDev(&'a str, u32, u32),
    /// Raw path bytes with a regular file body, for hostile names.
    RawFile(&'a [u8], &'a [u8]),
}

pub fn layer_tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            E::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::File(p, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).unwrap();
            }
            E::Symlink(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
            E::Hardlink(p, t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                // Raw names: append_link would refuse '..'.
                raw_name(&mut h, p.as_bytes());
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
            E::Fifo(p) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::CharDev(p, major, minor) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o666);
                h.set_size(0);
                h.set_device_major(*major).unwrap();
                h.set_device_minor(*minor).unwrap();
                b.append_data(&mut h, p, std::io::empty()).unwrap();
            }
            E::RawFile(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                raw_name(&mut h, p);
                h.set_cksum();
                b.append(&h, *data).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Write a name into the header without the tar crate's '..' checks.
fn raw_name(h: &mut tar::Header, name: &[u8]) {
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name);
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Store an image made of `layers` (uncompressed tars, stored gzipped) and
/// tag it `name`. Returns the manifest digest.
pub fn make_image(store: &Store, name: &str, layers: &[Vec<u8>], cmd: &[&str]) -> Digest {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in layers {
        diff_ids.push(Digest::of_bytes(tar).to_string());
        let gz = gzip(tar);
        let d = store.write_blob_bytes(&gz).unwrap();
        descs.push(Descriptor::new(
            MediaType::ImageLayerGzip,
            gz.len() as u64,
            d.to_oci().unwrap(),
        ));
    }
    tag_image(store, name, descs, diff_ids, cmd)
}

pub fn tag_image(
    store: &Store,
    name: &str,
    layers: Vec<Descriptor>,
    diff_ids: Vec<String>,
    cmd: &[&str],
) -> Digest {
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": cmd, "Env": ["A=1"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [],
    });
    let config = serde_json::to_vec(&config).unwrap();
    let cd = store.write_blob_bytes(&config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cd.to_string(), "size": config.len()},
        "layers": layers,
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let md = store.write_blob_bytes(&manifest).unwrap();
    let desc = Descriptor::new(
        MediaType::ImageManifest,
        manifest.len() as u64,
        md.to_oci().unwrap(),
    );
    store
        .set_tag(&Reference::parse(name).unwrap(), &desc)
        .unwrap();
    md
}

/// Every path below `root` with its type, mode and content (files) or
/// target (symlinks): a comparable picture of a tree.
pub fn tree(root: &Path) -> Vec<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            let p = root.join(&r);
            let md = std::fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let desc = if ft.is_dir() {
                stack.push(r.clone());
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("link->{}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                format!(
                    "file:{}",
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap())
                )
            } else if ft.is_fifo() {
                "fifo".into()
            } else if ft.is_char_device() {
                format!("char:{}", md.rdev())
            } else {
                "other".into()
            };
            out.push(format!("{} {:o} {}", r.display(), md.mode() & 0o7777, desc));
        }
    }
    out.sort();
    out
}
