//! Runtime bundles made from images: `config.json` derived from the image
//! config, and `rootfs/` as an overlay of cached layers (or a plain copy).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{ProcessBuilder, RootBuilder, Spec, UserBuilder};
use rustix::mount::{self as rmount, MountFlags, UnmountFlags};
use serde::{Deserialize, Serialize};

use crate::digest::{chain_ids, Digest};
use crate::error::{Context, Error, Result};
use crate::fsutil;
use crate::image::Image;
use crate::layer::{self, Limits, Whiteouts};
use crate::store::{BundleRecord, Store};
use crate::user::{resolve_user, ResolvedUser};

pub const META_FILE: &str = "bale.json";
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootfsMode {
    Overlay,
    Copy,
}

/// What bale remembers about a bundle it made (`BUNDLE/bale.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleMeta {
    pub store: PathBuf,
    pub image: String,
    pub manifest: String,
    pub mode: RootfsMode,
    /// ChainIDs of the image's layers, bottom first.
    pub chain_ids: Vec<String>,
}

impl BundleMeta {
    pub fn load(bundle: &Path) -> Result<BundleMeta> {
        let path = bundle.join(META_FILE);
        let data = fs::read(&path).map_err(|e| Error::Bundle {
            path: bundle.to_owned(),
            reason: format!("not a bale bundle ({}: {e})", path.display()),
        })?;
        serde_json::from_slice(&data).ctx(|| path.display().to_string())
    }

    pub fn chain_digests(&self) -> Result<Vec<Digest>> {
        self.chain_ids.iter().map(|c| c.parse()).collect()
    }
}

/// Options for [`unpack`].
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    pub mode: RootfsMode,
    pub terminal: bool,
    /// Replaces the image's Cmd when non-empty.
    pub args: Vec<String>,
    pub limits: Limits,
}

/// Make sure every layer of `image` is extracted in the cache, returning
/// the layer directories bottom first. Each layer is extracted into a temp
/// directory and renamed into place, so a failure never leaves a
/// half-extracted cached layer.
pub fn ensure_layers(store: &Store, image: &Image, limits: Limits) -> Result<Vec<PathBuf>> {
    let chains = chain_ids(&image.diff_ids);
    let mut dirs = Vec::with_capacity(chains.len());
    for ((desc, diff_id), chain) in image.layers().iter().zip(&image.diff_ids).zip(&chains) {
        let dir = store.layer_dir(chain);
        if !dir.is_dir() {
            let blob = Digest::from_oci(desc.digest())?;
            let tmp = tempfile::Builder::new()
                .prefix(".tmp-")
                .tempdir_in(store.layers_dir())
                .ctx(|| "create temp layer directory".to_owned())?;
            layer::apply_blob(
                store,
                &blob,
                diff_id,
                tmp.path(),
                Whiteouts::Overlay,
                limits,
            )?;
            // 0755 root: the directory itself becomes the overlay's root.
            fs::set_permissions(
                tmp.path(),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .ctx(|| "chmod layer directory".to_owned())?;
            let tmp_path = tmp.keep();
            if let Err(e) = fs::rename(&tmp_path, &dir) {
                let _ = fsutil::remove_path_tree(&tmp_path);
                return Err(e).ctx(|| format!("rename layer into {}", dir.display()));
            }
        }
        dirs.push(dir);
    }
    Ok(dirs)
}

/// Unpack `image` (known as `name`) into a new bundle directory.
pub fn unpack(
    store: &Store,
    name: &str,
    image: &Image,
    bundle: &Path,
    opts: &UnpackOptions,
) -> Result<()> {
    let created = create_bundle_dir(bundle)?;
    let result = unpack_into(store, name, image, &created, opts);
    if result.is_err() {
        let rootfs = created.join("rootfs");
        if fsutil::is_mountpoint(&rootfs).unwrap_or(false) {
            let _ = rmount::unmount(&rootfs, UnmountFlags::DETACH);
        }
        let _ = fsutil::remove_path_tree(&created);
        let _ = store.unregister_bundle(&created);
    }
    result
}

fn create_bundle_dir(bundle: &Path) -> Result<PathBuf> {
    if bundle.exists() {
        return Err(Error::Bundle {
            path: bundle.to_owned(),
            reason: "already exists".into(),
        });
    }
    fs::create_dir_all(bundle).ctx(|| format!("create bundle {}", bundle.display()))?;
    bundle
        .canonicalize()
        .ctx(|| format!("resolve {}", bundle.display()))
}

fn unpack_into(
    store: &Store,
    name: &str,
    image: &Image,
    bundle: &Path,
    opts: &UnpackOptions,
) -> Result<()> {
    let chains = chain_ids(&image.diff_ids);
    let meta = BundleMeta {
        store: store.root().to_owned(),
        image: name.to_owned(),
        manifest: image.manifest_digest.to_string(),
        mode: opts.mode,
        chain_ids: chains.iter().map(Digest::to_string).collect(),
    };
    // Register first: from here on, gc keeps the image's blobs and layers.
    store.register_bundle(&BundleRecord {
        bundle: bundle.to_owned(),
        manifest: meta.manifest.clone(),
        chain_ids: meta.chain_ids.clone(),
    })?;
    let rootfs = bundle.join("rootfs");
    fs::create_dir(&rootfs).ctx(|| format!("create {}", rootfs.display()))?;
    match opts.mode {
        RootfsMode::Overlay => {
            let lowers = ensure_layers(store, image, opts.limits)?;
            for dir in ["upper", "work"] {
                fs::create_dir(bundle.join(dir)).ctx(|| format!("create {dir} in bundle"))?;
            }
            mount_overlay(bundle, &lowers)?;
        }
        RootfsMode::Copy => {
            for (desc, diff_id) in image.layers().iter().zip(&image.diff_ids) {
                let blob = Digest::from_oci(desc.digest())?;
                layer::apply_blob(
                    store,
                    &blob,
                    diff_id,
                    &rootfs,
                    Whiteouts::Apply,
                    opts.limits,
                )?;
            }
        }
    }
    let user = resolve_user(&rootfs, image_user(image))?;
    let spec = runtime_spec(image, name, &user, opts)?;
    let data = serde_json::to_vec_pretty(&spec).ctx(|| "serialize config.json".to_owned())?;
    fsutil::atomic_write(&bundle.join("config.json"), &data)?;
    let meta_json = serde_json::to_vec_pretty(&meta).ctx(|| "serialize bale.json".to_owned())?;
    fsutil::atomic_write(&bundle.join(META_FILE), &meta_json)
}

fn image_user(image: &Image) -> &str {
    image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.user().as_deref())
        .unwrap_or("")
}

/// Mount the overlay for `bundle`: the topmost layer comes first in
/// lowerdir, upper and work live in the bundle.
pub fn mount_overlay(bundle: &Path, lowers: &[PathBuf]) -> Result<()> {
    let fail = |reason: String| Error::Bundle {
        path: bundle.to_owned(),
        reason,
    };
    let mut lowers: Vec<PathBuf> = lowers.iter().rev().cloned().collect();
    if lowers.is_empty() {
        // An image without layers: overlay still needs one lower dir.
        let empty = bundle.join("empty");
        fs::create_dir_all(&empty).ctx(|| "create empty lower dir".to_owned())?;
        lowers.push(empty);
    }
    let mut parts = Vec::new();
    for dir in &lowers {
        let s = dir
            .to_str()
            .ok_or_else(|| fail("non UTF-8 layer path".into()))?;
        if s.contains([':', ',', '\\']) {
            return Err(fail(format!("layer path {s:?} contains ':' ',' or '\\'")));
        }
        parts.push(s.to_owned());
    }
    let upper = bundle.join("upper");
    let work = bundle.join("work");
    // redirect_dir and metacopy off: the upper dir must hold whole files
    // and directories for commit to read the change set from it alone;
    // index off: bundles share lower dirs, which index would tie to one.
    let data = format!(
        "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off",
        parts.join(":"),
        upper.display(),
        work.display()
    );
    if data.len() >= 4096 {
        return Err(fail(format!(
            "too many layers ({}) for one overlay mount",
            lowers.len()
        )));
    }
    let data = std::ffi::CString::new(data).map_err(|_| fail("NUL in layer path".into()))?;
    rmount::mount(
        "overlay",
        bundle.join("rootfs"),
        "overlay",
        MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .ctx(|| format!("mount overlay on {}/rootfs", bundle.display()))
}

/// Re-mount the overlay of an existing overlay bundle (after a reboot or
/// `bale umount`). Missing cached layers are extracted again.
pub fn mount_bundle(store: &Store, bundle: &Path, image: &Image) -> Result<()> {
    let meta = BundleMeta::load(bundle)?;
    if meta.mode != RootfsMode::Overlay {
        return Err(Error::Bundle {
            path: bundle.to_owned(),
            reason: "made with --copy; nothing to mount".into(),
        });
    }
    if fsutil::is_mountpoint(&bundle.join("rootfs"))? {
        return Ok(());
    }
    let lowers = ensure_layers(store, image, Limits::default())?;
    mount_overlay(bundle, &lowers)
}

/// Release the overlay of a bundle; not mounted is fine.
pub fn umount_bundle(bundle: &Path) -> Result<()> {
    let rootfs = bundle.join("rootfs");
    if !fsutil::is_mountpoint(&rootfs)? {
        return Ok(());
    }
    rmount::unmount(&rootfs, UnmountFlags::empty()).ctx(|| format!("unmount {}", rootfs.display()))
}

/// Unmount and delete a bundle made by bale, and forget it in the store.
pub fn remove_bundle(store: &Store, bundle: &Path) -> Result<()> {
    BundleMeta::load(bundle)?;
    umount_bundle(bundle)?;
    fsutil::remove_path_tree(bundle)?;
    store.unregister_bundle(bundle)
}

/// The runtime config for `image`: berth's default spec with the image's
/// process settings applied.
pub fn runtime_spec(
    image: &Image,
    name: &str,
    user: &ResolvedUser,
    opts: &UnpackOptions,
) -> Result<Spec> {
    let mut spec = berth::runtime::spec::default_spec(false);
    let cfg = image.config.config().clone().unwrap_or_default();
    let mut args: Vec<String> = cfg.entrypoint().clone().unwrap_or_default();
    if opts.args.is_empty() {
        args.extend(cfg.cmd().clone().unwrap_or_default());
    } else {
        args.extend(opts.args.iter().cloned());
    }
    if args.is_empty() {
        return Err(Error::InvalidImage(format!(
            "image {name} has no Entrypoint or Cmd; give a command"
        )));
    }
    let env = process_env(cfg.env().clone().unwrap_or_default(), user);
    let cwd = cfg
        .working_dir()
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    let base_process = spec.process().clone().unwrap_or_default();
    let process = ProcessBuilder::default()
        .terminal(opts.terminal)
        .args(args)
        .env(env)
        .cwd(cwd)
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .additional_gids(user.additional_gids.clone())
                .build()
                .map_err(|e| Error::Invalid(format!("build process user: {e}")))?,
        )
        .capabilities(base_process.capabilities().clone().unwrap_or_default())
        .rlimits(base_process.rlimits().clone().unwrap_or_default())
        .no_new_privileges(base_process.no_new_privileges().unwrap_or(true))
        .build()
        .map_err(|e| Error::Invalid(format!("build process: {e}")))?;
    spec.set_process(Some(process));
    spec.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(false)
            .build()
            .map_err(|e| Error::Invalid(format!("build root: {e}")))?,
    ));
    spec.set_annotations(Some(image_annotations(image, name, &cfg)));
    Ok(spec)
}

/// Image env plus PATH (and HOME for a known user) when the image lacks them.
fn process_env(mut env: Vec<String>, user: &ResolvedUser) -> Vec<String> {
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_owned());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home.as_deref().unwrap_or("/")));
    }
    env
}

/// Labels become annotations as they are; the rest uses the keys of the
/// image spec's conversion rules where it defines them.
fn image_annotations(
    image: &Image,
    name: &str,
    cfg: &oci_spec::image::Config,
) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = cfg.labels().clone().unwrap_or_default();
    if let Some(ports) = cfg.exposed_ports().as_ref().filter(|p| !p.is_empty()) {
        let mut ports = ports.clone();
        ports.sort();
        out.insert(
            "org.opencontainers.image.exposedPorts".into(),
            ports.join(","),
        );
    }
    if let Some(volumes) = cfg.volumes().as_ref().filter(|v| !v.is_empty()) {
        let mut volumes = volumes.clone();
        volumes.sort();
        out.insert("org.opencontainers.image.volumes".into(), volumes.join(","));
    }
    if let Some(signal) = cfg.stop_signal() {
        out.insert("org.opencontainers.image.stopSignal".into(), signal.clone());
    }
    out.insert(
        "org.opencontainers.image.os".into(),
        image.config.os().to_string(),
    );
    out.insert(
        "org.opencontainers.image.architecture".into(),
        image.config.architecture().to_string(),
    );
    if let Some(author) = image.config.author() {
        out.insert("org.opencontainers.image.author".into(), author.clone());
    }
    if let Some(created) = image.config.created() {
        out.insert("org.opencontainers.image.created".into(), created.clone());
    }
    out.insert("org.opencontainers.image.ref.name".into(), name.to_owned());
    out.insert(
        "org.opencontainers.image.manifest.digest".into(),
        image.manifest_digest.to_string(),
    );
    out
}
