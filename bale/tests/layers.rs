//! Layer extraction: whiteouts in both modes and hostile layers.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use bale::layer::{apply_tar, Limits, Whiteouts};
use bale::Error;
use common::{layer_tar, Scratch, E};
use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};

fn base_layer() -> Vec<u8> {
    layer_tar(&[
        E::Dir("a", 0o755),
        E::File("a/x", b"x", 0o644),
        E::File("a/y", b"y", 0o644),
        E::Dir("b", 0o755),
        E::File("b/z", b"z", 0o644),
        E::File("c", b"c", 0o644),
        E::Dir("d", 0o755),
        E::File("d/1", b"1", 0o644),
        E::File("keep", b"keep", 0o4755),
        E::Hardlink("keep-link", "keep"),
        E::Symlink("sym", "/keep"),
        E::Fifo("fifo"),
        E::CharDev("null", 1, 3),
    ])
}

fn change_layer() -> Vec<u8> {
    layer_tar(&[
        E::File(".wh.c", b"", 0o644),
        E::File(".wh.b", b"", 0o644),
        // Opaque dir, with an entry of this same layer listed before the
        // marker: the marker must not remove it.
        E::Dir("a", 0o750),
        E::File("a/new", b"new", 0o600),
        E::File("a/.wh..wh..opq", b"", 0o644),
        // Directory replaced by a file.
        E::File("d", b"now a file", 0o644),
        // Whiteout of something this layer itself adds: kept.
        E::File("e", b"e", 0o644),
        E::File(".wh.e", b"", 0o644),
    ])
}

fn expected() -> Vec<String> {
    let mut v = vec![
        "a 750 dir".to_string(),
        "a/new 600 file:new".into(),
        "d 644 file:now a file".into(),
        "e 644 file:e".into(),
        "fifo 644 fifo".into(),
        "keep 4755 file:keep".into(),
        "keep-link 4755 file:keep".into(),
        format!("null 666 char:{}", rustix::fs::makedev(1, 3)),
        "sym 777 link->/keep".into(),
    ];
    v.sort();
    v
}

#[test]
fn apply_mode_follows_whiteout_rules() {
    let s = Scratch::new();
    let root = s.path().join("root");
    fs::create_dir(&root).unwrap();
    apply_tar(
        &base_layer()[..],
        &root,
        Whiteouts::Apply,
        Limits::default(),
    )
    .unwrap();
    apply_tar(
        &change_layer()[..],
        &root,
        Whiteouts::Apply,
        Limits::default(),
    )
    .unwrap();
    assert_eq!(common::tree(&root), expected());
    let keep = fs::metadata(root.join("keep")).unwrap();
    assert_eq!(keep.nlink(), 2, "hardlink kept");
    assert_eq!(keep.mtime(), 1_600_000_000);
    assert_eq!(fs::metadata(root.join("a")).unwrap().mtime(), 1_600_000_000);
}

#[test]
fn overlay_mode_gives_the_same_merged_tree() {
    let s = Scratch::new();
    let (l1, l2, merged) = (s.path().join("l1"), s.path().join("l2"), s.path().join("m"));
    for d in [&l1, &l2, &merged] {
        fs::create_dir(d).unwrap();
    }
    apply_tar(
        &base_layer()[..],
        &l1,
        Whiteouts::Overlay,
        Limits::default(),
    )
    .unwrap();
    apply_tar(
        &change_layer()[..],
        &l2,
        Whiteouts::Overlay,
        Limits::default(),
    )
    .unwrap();
    // The whiteouts are overlay whiteouts in the layer itself.
    let wh = fs::symlink_metadata(l2.join("c")).unwrap();
    assert_eq!((wh.rdev(), wh.mode() & 0o170000), (0, 0o020000));
    let data = format!("lowerdir={}:{}", l2.display(), l1.display());
    let data = std::ffi::CString::new(data).unwrap();
    mount(
        "overlay",
        &merged,
        "overlay",
        MountFlags::RDONLY,
        Some(data.as_c_str()),
    )
    .unwrap();
    let seen = common::tree(&merged);
    unmount(&merged, UnmountFlags::empty()).unwrap();
    // In overlay mode the same layer's own `e` + `.wh.e` order is the
    // tar's: the whiteout wins, as with containerd's overlay snapshotter.
    let want: Vec<String> = expected()
        .into_iter()
        .filter(|l| !l.starts_with("e "))
        .collect();
    assert_eq!(seen, want);
}

fn expect_unsafe(entries: &[E<'_>]) -> String {
    let s = Scratch::new();
    let root = s.path().join("root");
    let outside = s.path().join("outside");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), "secret").unwrap();
    let tar = layer_tar(entries);
    let err = apply_tar(&tar[..], &root, Whiteouts::Apply, Limits::default()).unwrap_err();
    assert_eq!(
        common::tree(&outside),
        vec!["secret 644 file:secret".to_string()]
    );
    assert!(!s.path().join("escaped").exists());
    err.to_string()
}

#[test]
fn dotdot_names_are_refused() {
    let err = expect_unsafe(&[E::RawFile(b"../escaped", b"x")]);
    assert!(err.contains(".."), "{err}");
    let err = expect_unsafe(&[E::RawFile(b"a/../../outside/secret", b"x")]);
    assert!(err.contains(".."), "{err}");
}

#[test]
fn symlinked_parents_are_refused() {
    // Absolute and relative links out of the root, then a write through them.
    let err = expect_unsafe(&[
        E::Symlink("evil", "../outside"),
        E::RawFile(b"evil/secret", b"pwned"),
    ]);
    assert!(err.contains("symlink"), "{err}");
    let s_err = expect_unsafe(&[E::Symlink("evil", "/"), E::RawFile(b"evil/escaped", b"x")]);
    assert!(s_err.contains("symlink"), "{s_err}");
}

#[test]
fn hardlinks_cannot_reach_outside() {
    let err = expect_unsafe(&[E::Hardlink("h", "../outside/secret")]);
    assert!(err.contains(".."), "{err}");
    let err = expect_unsafe(&[
        E::Symlink("evil", "../outside"),
        E::Hardlink("h", "evil/secret"),
    ]);
    assert!(err.contains("symlink"), "{err}");
}

#[test]
fn absolute_names_land_inside_the_root() {
    let s = Scratch::new();
    let root = s.path().join("root");
    fs::create_dir(&root).unwrap();
    let tar = layer_tar(&[E::RawFile(b"/abs/file", b"in")]);
    apply_tar(&tar[..], &root, Whiteouts::Apply, Limits::default()).unwrap();
    assert_eq!(fs::read(root.join("abs/file")).unwrap(), b"in");
}

#[test]
fn a_symlink_hardlink_target_links_the_symlink_not_its_target() {
    let s = Scratch::new();
    let root = s.path().join("root");
    fs::create_dir(&root).unwrap();
    let tar = layer_tar(&[E::Symlink("s", "/etc/hostname"), E::Hardlink("h", "s")]);
    apply_tar(&tar[..], &root, Whiteouts::Apply, Limits::default()).unwrap();
    assert!(fs::symlink_metadata(root.join("h"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn tar_bombs_are_bounded() {
    let s = Scratch::new();
    let root = s.path().join("root");
    fs::create_dir(&root).unwrap();
    let big = vec![0u8; 1 << 20];
    let tar = layer_tar(&[E::File("big", &big, 0o644)]);
    let limits = Limits {
        max_bytes: 64 << 10,
        max_entries: 100,
    };
    let mut reader = bale::digest::HashingReader::with_limit(&tar[..], limits.max_bytes);
    let err = apply_tar(&mut reader, &root, Whiteouts::Apply, limits).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
    let many: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
    let entries: Vec<E<'_>> = many.iter().map(|n| E::File(n, b"", 0o644)).collect();
    let limits = Limits {
        max_bytes: 1 << 30,
        max_entries: 10,
    };
    let err = apply_tar(&layer_tar(&entries)[..], &root, Whiteouts::Apply, limits).unwrap_err();
    assert!(matches!(err, Error::LayerTooLarge(_)), "{err}");
}

#[test]
fn overlay_xattrs_from_a_layer_are_ignored() {
    let s = Scratch::new();
    let root = s.path().join("root");
    fs::create_dir(&root).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut pax = Vec::new();
    for (k, v) in [
        ("SCHILY.xattr.trusted.overlay.redirect", "/etc"),
        ("SCHILY.xattr.user.ok", "yes"),
    ] {
        let rec = format!(" {k}={v}\n");
        // The length prefix counts its own digits (all records here < 100).
        let len = rec.len() + 2;
        pax.extend_from_slice(format!("{len}{rec}").as_bytes());
    }
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(pax.len() as u64);
    h.set_path("pax").unwrap();
    h.set_cksum();
    b.append(&h, &pax[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, "dir", std::io::empty()).unwrap();
    let tar = b.into_inner().unwrap();
    apply_tar(&tar[..], &root, Whiteouts::Overlay, Limits::default()).unwrap();
    let mut buf = [0u8; 16];
    let n = rustix::fs::getxattr(root.join("dir"), "user.ok", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"yes");
    assert!(rustix::fs::getxattr(root.join("dir"), "trusted.overlay.redirect", &mut buf).is_err());
    assert_eq!(
        fs::metadata(root.join("dir")).unwrap().permissions().mode() & 0o777,
        0o755
    );
}
