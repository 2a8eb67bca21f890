//! Store-level behaviour: layer sharing, verification on unpack, atomic
//! imports, gc, and commit-then-unpack cycles.

mod common;

use std::fs;
use std::path::Path;

use bale::archive::{self, Format, ImportOptions};
use bale::bundle::{self, RootfsMode, UnpackOptions};
use bale::commit::{self, CommitOptions, LayerCompression};
use bale::image::{load_image, Image, PlatformSpec};
use bale::layer::Limits;
use bale::reference::Reference;
use bale::store::Store;
use bale::Error;
use common::{layer_tar, make_image, Scratch, E};

fn image(store: &Store, name: &str) -> Image {
    let (_, desc) = store.resolve(name).unwrap();
    load_image(store, &desc, &PlatformSpec::default()).unwrap()
}

fn opts(mode: RootfsMode) -> UnpackOptions {
    UnpackOptions {
        mode,
        terminal: false,
        args: Vec::new(),
        limits: Limits::default(),
    }
}

/// (index.json, sorted blob names, cached layers, tmp entries).
fn snapshot(store: &Store) -> (Vec<u8>, Vec<String>, Vec<String>, usize) {
    let mut blobs = store.blob_names().unwrap();
    blobs.sort();
    let mut layers = store.cached_layers().unwrap();
    layers.sort();
    let tmp = fs::read_dir(store.tmp_dir()).unwrap().count();
    (
        fs::read(store.root().join("index.json")).unwrap(),
        blobs,
        layers,
        tmp,
    )
}

fn base() -> Vec<u8> {
    layer_tar(&[
        E::Dir("etc", 0o755),
        E::File("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644),
        E::Dir("keep", 0o755),
        E::File("keep/a", b"a", 0o644),
        E::Dir("gone", 0o755),
        E::File("gone/x", b"x", 0o644),
        E::File("file", b"f", 0o644),
        E::Dir("swap", 0o755),
        E::File("swap/y", b"y", 0o644),
        E::Dir("opq", 0o755),
        E::File("opq/old1", b"o", 0o644),
        E::File("opq/old2", b"o", 0o644),
    ])
}

#[test]
fn images_sharing_base_layers_share_extracted_copies() {
    let s = Scratch::new();
    let store = Store::open(&s.path().join("store")).unwrap();
    let top_a = layer_tar(&[E::File("a", b"a", 0o644)]);
    let top_b = layer_tar(&[E::File("b", b"b", 0o644)]);
    make_image(&store, "one:1", &[base(), top_a], &["sh"]);
    make_image(&store, "two:1", &[base(), top_b], &["sh"]);
    let d1 = bundle::ensure_layers(&store, &image(&store, "one:1"), Limits::default()).unwrap();
    let d2 = bundle::ensure_layers(&store, &image(&store, "two:1"), Limits::default()).unwrap();
    assert_eq!(d1[0], d2[0], "base layer extracted once");
    assert_ne!(d1[1], d2[1]);
    assert_eq!(store.cached_layers().unwrap().len(), 3);
}

#[test]
fn a_corrupted_blob_fails_unpack_and_caches_nothing() {
    let s = Scratch::new();
    let store = Store::open(&s.path().join("store")).unwrap();
    make_image(&store, "img:1", &[base()], &["sh"]);
    let img = image(&store, "img:1");
    let blob = bale::digest::Digest::from_oci(img.layers()[0].digest()).unwrap();
    let path = store.blob_path(&blob);
    let mut data = fs::read(&path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    fs::write(&path, &data).unwrap();
    let before = snapshot(&store);
    let target = s.path().join("bundle");
    let err =
        bundle::unpack(&store, "img:1", &img, &target, &opts(RootfsMode::Overlay)).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert_eq!(snapshot(&store), before);
    assert!(!target.exists());
    let err = bundle::unpack(&store, "img:1", &img, &target, &opts(RootfsMode::Copy)).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(!target.exists());
}

#[test]
fn truncated_gzip_and_wrong_diff_id_fail_cleanly() {
    let s = Scratch::new();
    let store = Store::open(&s.path().join("store")).unwrap();
    let tar = base();
    let gz = common::gzip(&tar);
    let truncated = &gz[..gz.len() / 2];
    let d = store.write_blob_bytes(truncated).unwrap();
    let desc = oci_spec::image::Descriptor::new(
        oci_spec::image::MediaType::ImageLayerGzip,
        truncated.len() as u64,
        d.to_oci().unwrap(),
    );
    let diff_id = bale::digest::Digest::of_bytes(&tar).to_string();
    common::tag_image(&store, "trunc:1", vec![desc], vec![diff_id], &["sh"]);
    // A complete layer whose config names another DiffID.
    let d = store.write_blob_bytes(&gz).unwrap();
    let desc = oci_spec::image::Descriptor::new(
        oci_spec::image::MediaType::ImageLayerGzip,
        gz.len() as u64,
        d.to_oci().unwrap(),
    );
    let wrong = bale::digest::Digest::of_bytes(b"other").to_string();
    common::tag_image(&store, "wrongdiff:1", vec![desc], vec![wrong], &["sh"]);
    let before = snapshot(&store);
    let target = s.path().join("bundle");
    for (name, mode) in [
        ("trunc:1", RootfsMode::Overlay),
        ("trunc:1", RootfsMode::Copy),
        ("wrongdiff:1", RootfsMode::Overlay),
        ("wrongdiff:1", RootfsMode::Copy),
    ] {
        let img = image(&store, name);
        let err = bundle::unpack(&store, name, &img, &target, &opts(mode)).unwrap_err();
        let text = err.to_string();
        if name == "trunc:1" {
            assert!(text.contains("layer sha256:"), "{text}");
        } else {
            assert!(matches!(err, Error::DigestMismatch { .. }), "{text}");
        }
        assert_eq!(snapshot(&store), before, "{name} {mode:?}");
        assert!(!target.exists());
    }
}

/// An oci-archive whose blob does not match its name.
fn bad_oci_archive(path: &Path, good_store: &Store) {
    let img = image(good_store, "img:1");
    let layer = bale::digest::Digest::from_oci(img.layers()[0].digest()).unwrap();
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    for d in bale::image::image_blobs(&img).unwrap() {
        let mut data = fs::read(good_store.blob_path(&d)).unwrap();
        if d == layer {
            data.push(0);
        }
        add(&format!("blobs/sha256/{}", d.hex()), &data);
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": img.manifest_digest.to_string(), "size": img.manifest_desc.size(),
        "annotations": {"org.opencontainers.image.ref.name": "bad:1"}}]});
    add("index.json", &serde_json::to_vec(&index).unwrap());
    b.finish().unwrap();
}

#[test]
fn imports_are_verified_and_atomic() {
    let s = Scratch::new();
    let src = Store::open(&s.path().join("src")).unwrap();
    make_image(&src, "img:1", &[base()], &["sh"]);
    let archive_path = s.path().join("bad.tar");
    bad_oci_archive(&archive_path, &src);
    drop(src);
    let store = Store::open(&s.path().join("store")).unwrap();
    let before = snapshot(&store);
    let import_opts = ImportOptions {
        platform: PlatformSpec::default(),
        name: None,
    };
    let err = archive::import(
        &store,
        &archive_path,
        Format::OciArchive,
        &import_opts,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert_eq!(snapshot(&store), before);
    // A truncated archive: also an error, also nothing kept.
    let data = fs::read(&archive_path).unwrap();
    fs::write(&archive_path, &data[..data.len() / 3]).unwrap();
    assert!(archive::import(
        &store,
        &archive_path,
        Format::OciArchive,
        &import_opts,
        &mut |_, _| {}
    )
    .is_err());
    assert_eq!(snapshot(&store), before);
}

#[test]
fn export_and_import_round_trip_both_formats() {
    let s = Scratch::new();
    let src = Store::open(&s.path().join("src")).unwrap();
    make_image(
        &src,
        "app:1",
        &[base(), layer_tar(&[E::File("top", b"t", 0o644)])],
        &["sh"],
    );
    let img = image(&src, "app:1");
    let images = vec![(Reference::parse("app:1").unwrap(), img.clone())];
    let oci = s.path().join("oci.tar");
    let docker = s.path().join("docker.tar");
    archive::export(
        &src,
        &images,
        Format::OciArchive,
        fs::File::create(&oci).unwrap(),
    )
    .unwrap();
    archive::export(
        &src,
        &images,
        Format::DockerArchive,
        fs::File::create(&docker).unwrap(),
    )
    .unwrap();
    drop(src);
    let dst = Store::open(&s.path().join("dst")).unwrap();
    let import_opts = ImportOptions {
        platform: PlatformSpec::default(),
        name: None,
    };
    assert_eq!(archive::detect_format(&oci).unwrap(), Format::OciArchive);
    assert_eq!(
        archive::detect_format(&docker).unwrap(),
        Format::DockerArchive
    );
    let got =
        archive::import(&dst, &oci, Format::OciArchive, &import_opts, &mut |_, _| {}).unwrap();
    assert_eq!(
        got,
        vec![(
            Reference::parse("app:1").unwrap(),
            img.manifest_digest.clone()
        )]
    );
    let named = ImportOptions {
        platform: PlatformSpec::default(),
        name: Some(Reference::parse("fromdocker:1").unwrap()),
    };
    archive::import(&dst, &docker, Format::DockerArchive, &named, &mut |_, _| {}).unwrap();
    let back = image(&dst, "fromdocker:1");
    assert_eq!(
        back.config_digest, img.config_digest,
        "config kept byte for byte"
    );
    assert_eq!(back.diff_ids, img.diff_ids);
    // Both unpack to the same tree.
    let (b1, b2) = (s.path().join("b1"), s.path().join("b2"));
    bundle::unpack(
        &dst,
        "app:1",
        &image(&dst, "app:1"),
        &b1,
        &opts(RootfsMode::Copy),
    )
    .unwrap();
    bundle::unpack(&dst, "fromdocker:1", &back, &b2, &opts(RootfsMode::Copy)).unwrap();
    assert_eq!(
        common::tree(&b1.join("rootfs")),
        common::tree(&b2.join("rootfs"))
    );
}

#[test]
fn gc_keeps_referenced_and_drops_the_rest() {
    let s = Scratch::new();
    let store = Store::open(&s.path().join("store")).unwrap();
    make_image(&store, "keep:1", &[base()], &["sh"]);
    make_image(
        &store,
        "drop:1",
        &[base(), layer_tar(&[E::File("d", b"d", 0o644)])],
        &["sh"],
    );
    make_image(
        &store,
        "used:1",
        &[layer_tar(&[E::File("u", b"u", 0o644)])],
        &["sh"],
    );
    for name in ["keep:1", "drop:1"] {
        bundle::ensure_layers(&store, &image(&store, name), Limits::default()).unwrap();
    }
    let used = image(&store, "used:1");
    let b = s.path().join("bundle");
    bundle::unpack(&store, "used:1", &used, &b, &opts(RootfsMode::Overlay)).unwrap();
    store.remove_tag("drop:1").unwrap();
    store.remove_tag("used:1").unwrap();
    let report = bale::gc::collect(&store).unwrap();
    // drop:1 had its own manifest, config and top layer.
    assert_eq!((report.blobs_removed, report.layers_removed), (3, 1));
    image(&store, "keep:1");
    bundle::ensure_layers(&store, &image(&store, "keep:1"), Limits::default()).unwrap();
    assert_eq!(
        store.cached_layers().unwrap().len(),
        2,
        "keep:1 and the bundle's layer"
    );
    // Once the bundle is gone, its image goes too.
    bundle::remove_bundle(&store, &b).unwrap();
    let report = bale::gc::collect(&store).unwrap();
    assert_eq!((report.blobs_removed, report.layers_removed), (3, 1));
    assert_eq!(
        bale::gc::collect(&store).unwrap(),
        bale::gc::GcReport::default()
    );
}

/// Change the container's root the four ways whiteouts exist for.
fn change_rootfs(rootfs: &Path) {
    fs::remove_file(rootfs.join("file")).unwrap(); // delete a file
    fs::remove_dir_all(rootfs.join("gone")).unwrap(); // delete a directory
    fs::remove_dir_all(rootfs.join("swap")).unwrap(); // replace a dir by a file
    fs::write(rootfs.join("swap"), "now a file").unwrap();
    fs::remove_dir_all(rootfs.join("opq")).unwrap(); // recreate: opaque dir
    fs::create_dir(rootfs.join("opq")).unwrap();
    fs::write(rootfs.join("opq/new"), "new").unwrap();
    fs::write(rootfs.join("keep/b"), "b").unwrap(); // plain additions
    fs::hard_link(rootfs.join("keep/b"), rootfs.join("keep/b-link")).unwrap();
    rustix::fs::setxattr(
        rootfs.join("keep/b"),
        "user.bale",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
}

/// Hardlinks and xattrs made in the container survive the cycle.
fn check_links_and_xattrs(rootfs: &Path) {
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(rootfs.join("keep/b")).unwrap().nlink(), 2);
    let mut buf = [0u8; 8];
    let n = rustix::fs::getxattr(rootfs.join("keep/b-link"), "user.bale", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"v");
}

fn commit_cycle(mode: RootfsMode, compression: LayerCompression) {
    let s = Scratch::new();
    let store = Store::open(&s.path().join("store")).unwrap();
    make_image(&store, "base:1", &[base()], &["sh"]);
    let b = s.path().join("bundle");
    bundle::unpack(&store, "base:1", &image(&store, "base:1"), &b, &opts(mode)).unwrap();
    change_rootfs(&b.join("rootfs"));
    let want = common::tree(&b.join("rootfs"));
    let target = Reference::parse("base:2").unwrap();
    let commit_opts = CommitOptions {
        message: Some("cycle".into()),
        author: Some("tester".into()),
        compression,
    };
    let done = commit::commit(&store, &b, &target, &commit_opts).unwrap();
    let new = image(&store, "base:2");
    assert_eq!(new.manifest_digest, done.manifest);
    assert_eq!(new.layers().len(), 2);
    assert_eq!(new.diff_ids[1], done.diff_id);
    let history = new.config.history().clone().unwrap();
    assert_eq!(history.last().unwrap().comment().as_deref(), Some("cycle"));
    for (i, m) in [RootfsMode::Overlay, RootfsMode::Copy]
        .into_iter()
        .enumerate()
    {
        let again = s.path().join(format!("again{i}"));
        bundle::unpack(&store, "base:2", &new, &again, &opts(m)).unwrap();
        assert_eq!(
            common::tree(&again.join("rootfs")),
            want,
            "{mode:?} -> {m:?}"
        );
        check_links_and_xattrs(&again.join("rootfs"));
        bundle::remove_bundle(&store, &again).unwrap();
    }
    bundle::remove_bundle(&store, &b).unwrap();
}

#[test]
fn overlay_commit_then_unpack_gives_the_same_tree() {
    commit_cycle(RootfsMode::Overlay, LayerCompression::Gzip);
}

#[test]
fn copy_commit_then_unpack_gives_the_same_tree() {
    commit_cycle(RootfsMode::Copy, LayerCompression::Zstd);
}

#[test]
fn uncompressed_commit_round_trips() {
    commit_cycle(RootfsMode::Overlay, LayerCompression::None);
}

#[test]
fn unpack_refuses_an_existing_bundle_and_leaves_it() {
    let s = Scratch::new();
    let store = Store::open(&s.path().join("store")).unwrap();
    make_image(&store, "img:1", &[base()], &["sh"]);
    let b = s.path().join("bundle");
    fs::create_dir(&b).unwrap();
    fs::write(b.join("mine"), "x").unwrap();
    assert!(bundle::unpack(
        &store,
        "img:1",
        &image(&store, "img:1"),
        &b,
        &opts(RootfsMode::Overlay)
    )
    .is_err());
    assert_eq!(fs::read(b.join("mine")).unwrap(), b"x");
}
