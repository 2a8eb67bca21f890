//! Pull against a fake registry on 127.0.0.1: the auth flow, Docker
//! schema 2 conversion, corrupt blobs, interrupted downloads, retries.
//! (Push and interoperability are tested against the real distribution
//! server by integration/bale/registry.sh.)

mod common;

#[path = "common/fake_registry.rs"]
mod fake_registry;

use std::collections::HashMap;
use std::fs;
use std::time::Duration;

use bale::digest::Digest;
use bale::image::{load_image, PlatformSpec};
use bale::layer::Limits;
use bale::registry::{
    self, ClientOptions, Credentials, PullOptions, PushOptions, Quiet, RemoteRef,
};
use bale::store::Store;
use bale::Error;
use common::{gzip, layer_tar, E};
use fake_registry::{Auth, FakeRegistry, State};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// An image as a registry holds it.
struct TestImage {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
}

impl TestImage {
    /// Two layers; the second holds incompressible bytes so a download
    /// can be cut in the middle.
    fn new(docker: bool) -> TestImage {
        TestImage::with_seed(docker, 12345)
    }

    fn with_seed(docker: bool, seed: u32) -> TestImage {
        let mut noise = Vec::with_capacity(400_000);
        let mut x: u32 = seed;
        for _ in 0..400_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            noise.push((x >> 16) as u8);
        }
        let tars = [
            layer_tar(&[E::Dir("etc", 0o755), E::File("etc/hello", b"hi\n", 0o644)]),
            layer_tar(&[E::File("noise", &noise, 0o644)]),
        ];
        let layers: Vec<Vec<u8>> = tars.iter().map(|t| gzip(t)).collect();
        let diff_ids: Vec<String> = tars
            .iter()
            .map(|t| Digest::of_bytes(t).to_string())
            .collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let (mt, config_mt, layer_mt) = if docker {
            (
                DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            )
        } else {
            (
                OCI_MANIFEST,
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        };
        let layer_descs: Vec<_> = layers
            .iter()
            .map(|l| {
                serde_json::json!({"mediaType": layer_mt, "size": l.len(),
                                   "digest": Digest::of_bytes(l).to_string()})
            })
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": mt,
            "config": {"mediaType": config_mt, "size": config.len(),
                       "digest": Digest::of_bytes(&config).to_string()},
            "layers": layer_descs,
        }))
        .unwrap();
        TestImage {
            manifest,
            config,
            layers,
        }
    }

    fn digest(&self) -> Digest {
        Digest::of_bytes(&self.manifest)
    }

    fn config_digest(&self) -> Digest {
        Digest::of_bytes(&self.config)
    }

    /// Rewrites the image config and points the manifest at the new config blob.
    fn edit_config(&mut self, edit: impl FnOnce(&mut serde_json::Value)) {
        let mut config: serde_json::Value = serde_json::from_slice(&self.config).unwrap();
        edit(&mut config);
        self.config = serde_json::to_vec(&config).unwrap();
        let mut manifest: serde_json::Value = serde_json::from_slice(&self.manifest).unwrap();
        manifest["config"]["digest"] = self.config_digest().to_string().into();
        manifest["config"]["size"] = self.config.len().into();
        self.manifest = serde_json::to_vec(&manifest).unwrap();
    }

    fn layer_digest(&self, i: usize) -> Digest {
        Digest::of_bytes(&self.layers[i])
    }

    /// Registry state serving this image as `team/app:v1` (and by digest).
    fn state(&self, media_type: &str) -> State {
        let mut blobs = HashMap::new();
        blobs.insert(self.config_digest().to_string(), self.config.clone());
        for l in &self.layers {
            blobs.insert(Digest::of_bytes(l).to_string(), l.clone());
        }
        let mut manifests = HashMap::new();
        let entry = (media_type.to_owned(), self.manifest.clone());
        manifests.insert("v1".to_owned(), entry.clone());
        manifests.insert(self.digest().to_string(), entry);
        State {
            manifests,
            blobs,
            ..State::default()
        }
    }
}

fn options(attempts: u32) -> PullOptions {
    PullOptions {
        client: ClientOptions {
            attempts,
            backoff: Duration::from_millis(10),
            ..ClientOptions::default()
        },
        platform: PlatformSpec::default(),
        jobs: 3,
        extract: None,
        all_platforms: false,
    }
}

fn remote(reg: &FakeRegistry, rest: &str) -> RemoteRef {
    RemoteRef::parse(&format!("{}/team/app{rest}", reg.addr)).unwrap()
}

/// (index.json, blob names, tmp entries): what a failed pull must not change.
fn snapshot(store: &Store) -> (Vec<u8>, Vec<String>, Vec<String>) {
    let mut blobs = store.blob_names().unwrap();
    blobs.sort();
    let mut tmp: Vec<String> = fs::read_dir(store.tmp_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    tmp.sort();
    (
        fs::read(store.root().join("index.json")).unwrap(),
        blobs,
        tmp,
    )
}

fn assert_image_stored(store: &Store, name: &str, img: &TestImage) -> Digest {
    let (_, desc) = store.resolve(name).unwrap();
    let image = load_image(store, &desc, &PlatformSpec::default()).unwrap();
    assert_eq!(image.config_digest, img.config_digest());
    for (i, layer) in image.layers().iter().enumerate() {
        let d = Digest::from_oci(layer.digest()).unwrap();
        assert_eq!(d, img.layer_digest(i));
        assert_eq!(store.verify_blob(&d).unwrap(), img.layers[i].len() as u64);
    }
    image.manifest_digest
}

/// Both layers are in the cache, whole, and no temp directory is left.
fn assert_extracted(store: &Store, img: &TestImage) {
    let (_, desc) = store.resolve(&store.tagged().unwrap()[0].0).unwrap();
    let image = load_image(store, &desc, &PlatformSpec::default()).unwrap();
    let chains = bale::digest::chain_ids(&image.diff_ids);
    let mut cached = store.cached_layers().unwrap();
    cached.sort();
    let mut want: Vec<String> = chains.iter().map(|c| c.hex().to_owned()).collect();
    want.sort();
    assert_eq!(cached, want, "only the two layers, no temp dirs");
    let hello = fs::read(store.layer_dir(&chains[0]).join("etc/hello")).unwrap();
    assert_eq!(hello, b"hi\n");
    let noise = fs::read(store.layer_dir(&chains[1]).join("noise")).unwrap();
    assert_eq!(noise.len(), 400_000);
    let _ = img;
}

#[test]
fn pulls_with_a_bearer_token_and_follows_blob_redirects() {
    let img = TestImage::new(false);
    let mut state = img.state(OCI_MANIFEST);
    state.auth = Auth::Bearer {
        user: "alice".into(),
        password: "s3cret".into(),
    };
    state.redirect_blobs = true;
    // The token endpoint has a hiccup too: retried like the registry.
    state.fail_token_gets = 1;
    let reg = FakeRegistry::start(state);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();

    // Without credentials: a clear auth error and no change.
    let before = snapshot(&store);
    let err = registry::pull(&store, &remote(&reg, ":v1"), &options(2), &Quiet).unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert_eq!(snapshot(&store), before);

    let mut opts = options(2);
    opts.client.credentials = Some(Credentials {
        username: "alice".into(),
        password: "s3cret".into(),
    });
    let pulled = registry::pull(&store, &remote(&reg, ":v1"), &opts, &Quiet).unwrap();
    let name = format!("{}/team/app:v1", reg.addr);
    assert_eq!(pulled.name.to_string(), name);
    assert_eq!(
        pulled.manifest,
        img.digest(),
        "OCI bytes are stored as served"
    );
    assert!(!pulled.converted);
    assert_eq!(pulled.blobs_downloaded, 3);
    assert_eq!(assert_image_stored(&store, &name, &img), img.digest());

    // The token was asked for with the user's credentials and this
    // repository's pull scope.
    let tokens = reg.seen_paths("GET", "/token");
    assert!(!tokens.is_empty());
    assert!(tokens
        .iter()
        .all(|t| t.path.contains("scope=repository%3Ateam%2Fapp%3Apull")));
    assert!(tokens.iter().all(|t| t.path.contains("service=fake")));
    // Redirected downloads never carry the registry's token.
    let cdn = reg.seen_paths("GET", "/cdn/");
    assert_eq!(cdn.len(), 3);
    assert!(cdn.iter().all(|s| !s.headers.contains_key("authorization")));
    assert!(fs::read_dir(store.tmp_dir()).unwrap().next().is_none());

    // A second pull finds every blob present and downloads nothing.
    let again = registry::pull(&store, &remote(&reg, ":v1"), &opts, &Quiet).unwrap();
    assert_eq!(again.blobs_downloaded, 0);
}

#[test]
fn docker_manifest_lists_are_resolved_and_converted_to_oci() {
    let img = TestImage::new(true);
    let mut state = img.state(DOCKER_MANIFEST);
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "size": 10,
             "digest": format!("sha256:{}", "c".repeat(64)),
             "platform": {"architecture": "arm64", "os": "linux"}},
            {"mediaType": DOCKER_MANIFEST, "size": img.manifest.len(),
             "digest": img.digest().to_string(),
             "platform": {"architecture": "amd64", "os": "linux"}},
        ],
    }))
    .unwrap();
    state
        .manifests
        .insert("multi".into(), (DOCKER_LIST.into(), list.clone()));
    let reg = FakeRegistry::start(state);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut opts = options(2);
    opts.extract = Some(Limits::default());
    let pulled = registry::pull(&store, &remote(&reg, ":multi"), &opts, &Quiet).unwrap();
    assert!(pulled.converted);
    assert_eq!(pulled.remote_digest, Digest::of_bytes(&list));
    assert_ne!(pulled.manifest, img.digest(), "the manifest was rewritten");
    let name = format!("{}/team/app:multi", reg.addr);
    assert_image_stored(&store, &name, &img);
    let stored: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&pulled.manifest).unwrap()).unwrap();
    assert_eq!(stored["mediaType"], OCI_MANIFEST);
    assert_eq!(
        stored["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(
        stored["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    // --extract: the layers are in the cache.
    assert_eq!(store.cached_layers().unwrap().len(), 2);

    // Asking for a platform the list lacks names what there is.
    let mut opts = options(1);
    opts.platform = "linux/s390x".parse().unwrap();
    let err = registry::pull(&store, &remote(&reg, ":multi"), &opts, &Quiet).unwrap_err();
    assert!(
        err.to_string().contains("linux/arm64, linux/amd64"),
        "{err}"
    );
}

#[test]
fn a_corrupt_blob_is_rejected_and_leaves_the_store_unchanged() {
    let img = TestImage::new(false);
    let mut state = img.state(OCI_MANIFEST);
    let bad = img.layer_digest(1);
    state.corrupt.insert(bad.to_string());
    let reg = FakeRegistry::start(state);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let before = snapshot(&store);
    let err = registry::pull(&store, &remote(&reg, ":v1"), &options(3), &Quiet).unwrap_err();
    match &err {
        Error::DigestMismatch { expected, .. } => assert_eq!(expected, &bad.to_string()),
        other => panic!("expected a digest mismatch, got {other}"),
    }
    assert!(err.to_string().contains(&bad.to_string()));
    assert_eq!(
        snapshot(&store),
        before,
        "no blob, tag or partial file kept"
    );
}

#[test]
fn a_cut_download_resumes_with_range_in_the_same_pull() {
    let img = TestImage::new(false);
    let mut state = img.state(OCI_MANIFEST);
    let big = img.layer_digest(1);
    state.cut_once.insert(big.to_string());
    let reg = FakeRegistry::start(state);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Extracting while downloading: the resumed bytes continue the stream.
    let mut opts = options(3);
    opts.extract = Some(Limits::default());
    let pulled = registry::pull(&store, &remote(&reg, ":v1"), &opts, &Quiet).unwrap();
    assert_eq!(pulled.extracted_while_downloading, 2);
    assert_extracted(&store, &img);
    let half = img.layers[1].len() / 2;
    let ranged: Vec<_> = reg
        .seen_paths("GET", &format!("/v2/team/app/blobs/{big}"))
        .into_iter()
        .filter_map(|s| s.headers.get("range").cloned())
        .collect();
    assert_eq!(ranged, vec![format!("bytes={half}-")]);
    assert_image_stored(&store, &format!("{}/team/app:v1", reg.addr), &img);
}

#[test]
fn an_interrupted_pull_is_resumed_by_the_next_one() {
    let img = TestImage::new(false);
    let mut state = img.state(OCI_MANIFEST);
    let big = img.layer_digest(1);
    state.cut_once.insert(big.to_string());
    let reg = FakeRegistry::start(state);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let before_index = fs::read(store.root().join("index.json")).unwrap();
    // One try only: the cut ends this pull, keeping the partial file.
    let err = registry::pull(&store, &remote(&reg, ":v1"), &options(1), &Quiet).unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    assert_eq!(
        fs::read(store.root().join("index.json")).unwrap(),
        before_index
    );
    assert!(!store.has_blob(&big));
    let partial = store.tmp_dir().join(format!("partial-{}", big.hex()));
    let half = img.layers[1].len() / 2;
    assert_eq!(fs::metadata(&partial).unwrap().len(), half as u64);

    // The next pull extracts while it downloads: what the partial file
    // holds is fed to the extractor first.
    let mut opts = options(1);
    opts.extract = Some(Limits::default());
    let pulled = registry::pull(&store, &remote(&reg, ":v1"), &opts, &Quiet).unwrap();
    // The failed pull stored no blob, so both layers stream through the
    // extractor now (the big one starting from its partial file).
    assert_eq!(pulled.extracted_while_downloading, 2);
    assert_extracted(&store, &img);
    let last = reg
        .seen_paths("GET", &format!("/v2/team/app/blobs/{big}"))
        .pop()
        .unwrap();
    assert_eq!(last.headers.get("range"), Some(&format!("bytes={half}-")));
    assert!(!partial.exists());
    assert_image_stored(&store, &format!("{}/team/app:v1", reg.addr), &img);
}

#[test]
fn transient_failures_are_retried_then_reported() {
    let img = TestImage::new(false);
    let mut state = img.state(OCI_MANIFEST);
    state.fail_blob_gets = 2;
    let reg = FakeRegistry::start(state);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    registry::pull(&store, &remote(&reg, ":v1"), &options(3), &Quiet).unwrap();
    assert_eq!(reg.seen_paths("GET", "/v2/team/app/blobs/").len(), 5);

    let mut state = img.state(OCI_MANIFEST);
    state.fail_blob_gets = 100;
    let reg = FakeRegistry::start(state);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let err = registry::pull(&store, &remote(&reg, ":v1"), &options(2), &Quiet).unwrap_err();
    assert!(
        matches!(err, Error::HttpStatus { status: 503, .. })
            && err.to_string().contains("UNAVAILABLE"),
        "{err}"
    );
}

#[test]
fn pulls_by_digest_check_the_manifest_bytes() {
    let img = TestImage::new(false);
    let mut state = img.state(OCI_MANIFEST);
    // A registry that answers a digest with other bytes is caught.
    let other = format!("sha256:{}", "d".repeat(64));
    state
        .manifests
        .insert(other.clone(), (OCI_MANIFEST.into(), img.manifest.clone()));
    let reg = FakeRegistry::start(state);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let pulled = registry::pull(
        &store,
        &remote(&reg, &format!("@{}", img.digest())),
        &options(1),
        &Quiet,
    )
    .unwrap();
    assert_eq!(
        pulled.name.to_string(),
        format!("{}/team/app:sha256-{}", reg.addr, img.digest().hex())
    );
    let before = snapshot(&store);
    let err = registry::pull(
        &store,
        &remote(&reg, &format!("@{other}")),
        &options(1),
        &Quiet,
    )
    .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert_eq!(snapshot(&store), before);
    let err = registry::pull(&store, &remote(&reg, ":nope"), &options(1), &Quiet).unwrap_err();
    assert!(matches!(err, Error::ImageNotFound(_)), "{err}");
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_not_extracted_or_stored() {
    let mut img = TestImage::new(false);
    // The config names another diff ID for layer 0; the blobs are fine.
    img.edit_config(|config| {
        config["rootfs"]["diff_ids"][0] = format!("sha256:{}", "e".repeat(64)).into();
    });
    let reg = FakeRegistry::start(img.state(OCI_MANIFEST));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let before = snapshot(&store);
    let mut opts = options(1);
    opts.extract = Some(Limits::default());
    let err = registry::pull(&store, &remote(&reg, ":v1"), &opts, &Quiet).unwrap_err();
    assert!(
        matches!(err, Error::DigestMismatch { .. }) && err.to_string().contains("diff ID"),
        "{err}"
    );
    assert_eq!(snapshot(&store), before);
    assert!(
        store.cached_layers().unwrap().is_empty(),
        "no layer or temp dir left"
    );
}

#[test]
fn pushes_with_push_scoped_tokens_chunks_and_cross_repository_mounts() {
    let reg = FakeRegistry::start(State {
        auth: Auth::Bearer {
            user: "alice".into(),
            password: "s3cret".into(),
        },
        ..State::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tars = vec![
        layer_tar(&[E::File("a", b"a", 0o644)]),
        layer_tar(&[E::File("b", &[7u8; 5000], 0o644)]),
    ];
    let digest = common::make_image(&store, "local:1", &tars, &["/bin/sh"]);
    let mut opts = PushOptions {
        client: ClientOptions {
            credentials: Some(Credentials {
                username: "alice".into(),
                password: "s3cret".into(),
            }),
            attempts: 2,
            backoff: Duration::from_millis(10),
            ..ClientOptions::default()
        },
        platform: PlatformSpec::default(),
        jobs: 2,
        chunk_size: 64,
        all_platforms: false,
    };
    let to = |repo: &str| RemoteRef::parse(&format!("{}/{repo}:v1", reg.addr)).unwrap();

    let pushed = registry::push(&store, "local:1", &to("team/app"), &opts, &Quiet).unwrap();
    assert_eq!(pushed.manifest, digest);
    assert_eq!((pushed.uploaded, pushed.existed, pushed.mounted), (3, 0, 0));
    {
        let st = reg.state.lock().unwrap();
        let (media_type, bytes) = &st.manifests["v1"];
        assert_eq!(media_type, OCI_MANIFEST);
        assert_eq!(
            Digest::of_bytes(bytes),
            digest,
            "the stored manifest bytes, unchanged"
        );
        for name in store.blob_names().unwrap() {
            let d = Digest::from_hex(&name).unwrap();
            if d != digest {
                assert_eq!(
                    st.blobs[&d.to_string()],
                    fs::read(store.blob_path(&d)).unwrap()
                );
            }
        }
    }
    // Blobs over 64 bytes went in chunks that followed on from each other.
    let patches = reg.seen_paths("PATCH", "/v2/team/app/blobs/uploads/");
    assert!(patches.len() > 3, "{} PATCHes", patches.len());
    assert!(patches
        .iter()
        .all(|p| p.headers.contains_key("content-range")));
    let tokens = reg.seen_paths("GET", "/token");
    assert!(tokens.iter().any(|t| t
        .path
        .contains("scope=repository%3Ateam%2Fapp%3Apull%2Cpush")));

    // Same image, other repository: mounted from team/app, which the
    // token must cover too.
    opts.chunk_size = 0;
    let pushed = registry::push(&store, "local:1", &to("other/app"), &opts, &Quiet).unwrap();
    assert_eq!((pushed.uploaded, pushed.existed, pushed.mounted), (0, 0, 3));
    let last_token = reg.seen_paths("GET", "/token").pop().unwrap();
    assert!(last_token
        .path
        .contains("scope=repository%3Aother%2Fapp%3Apull%2Cpush"));
    assert!(last_token
        .path
        .contains("scope=repository%3Ateam%2Fapp%3Apull"));

    // Again: everything is there already.
    let pushed = registry::push(&store, "local:1", &to("other/app"), &opts, &Quiet).unwrap();
    assert_eq!((pushed.uploaded, pushed.existed, pushed.mounted), (0, 3, 0));

    // And it pulls back whole into another store.
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(dir2.path()).unwrap();
    let mut pull_opts = options(2);
    pull_opts.client.credentials = opts.client.credentials.clone();
    let pulled = registry::pull(&store2, &to("other/app"), &pull_opts, &Quiet).unwrap();
    assert_eq!(pulled.manifest, digest);

    // A push of a digest that is not this image's is refused up front.
    let wrong = RemoteRef::parse(&format!("{}/x/y@sha256:{}", reg.addr, "f".repeat(64))).unwrap();
    let err = registry::push(&store, "local:1", &wrong, &opts, &Quiet).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
}

#[test]
fn an_image_whose_config_does_not_fit_is_refused_after_download_and_rolled_back() {
    let mut img = TestImage::new(false);
    img.edit_config(|config| {
        config["rootfs"]["diff_ids"].as_array_mut().unwrap().pop();
    });
    let reg = FakeRegistry::start(img.state(OCI_MANIFEST));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let before = snapshot(&store);
    let err = registry::pull(&store, &remote(&reg, ":v1"), &options(1), &Quiet).unwrap_err();
    assert!(matches!(err, Error::InvalidImage(_)), "{err}");
    assert!(err.to_string().contains("diff IDs"), "{err}");
    assert_eq!(snapshot(&store), before, "blobs taken out again");
}

#[test]
fn all_platforms_of_a_docker_list_are_pulled_as_an_oci_index_and_pushed_back_whole() {
    let amd = TestImage::with_seed(true, 1);
    let arm = TestImage::with_seed(true, 2);
    let mut state = amd.state(DOCKER_MANIFEST);
    let arm_state = arm.state(DOCKER_MANIFEST);
    state.blobs.extend(arm_state.blobs);
    state.manifests.insert(
        arm.digest().to_string(),
        (DOCKER_MANIFEST.into(), arm.manifest.clone()),
    );
    let entry = |img: &TestImage, arch: &str| {
        serde_json::json!({"mediaType": DOCKER_MANIFEST, "size": img.manifest.len(),
            "digest": img.digest().to_string(),
            "platform": {"architecture": arch, "os": "linux"}})
    };
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [entry(&amd, "amd64"), entry(&arm, "arm64")],
    }))
    .unwrap();
    state
        .manifests
        .insert("multi".into(), (DOCKER_LIST.into(), list.clone()));
    let reg = FakeRegistry::start(state);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut opts = options(2);
    opts.all_platforms = true;
    let pulled = registry::pull(&store, &remote(&reg, ":multi"), &opts, &Quiet).unwrap();
    assert!(pulled.converted);
    assert_eq!(pulled.remote_digest, Digest::of_bytes(&list));
    // Two configs, two noise layers, and one first layer both share.
    assert_eq!(pulled.blobs_downloaded, 5);
    let name = format!("{}/team/app:multi", reg.addr);
    let (_, desc) = store.resolve(&name).unwrap();
    assert_eq!(
        desc.media_type().to_string(),
        "application/vnd.oci.image.index.v1+json"
    );
    let index: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&pulled.manifest).unwrap()).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index["manifests"][1]["platform"]["architecture"], "arm64");
    // Both images load, by platform, with their blobs' digests kept.
    for (img, platform) in [(&amd, "linux/amd64"), (&arm, "linux/arm64")] {
        let image = load_image(&store, &desc, &platform.parse().unwrap()).unwrap();
        assert_eq!(image.config_digest, img.config_digest());
        assert_eq!(
            Digest::from_oci(image.layers()[1].digest()).unwrap(),
            img.layer_digest(1)
        );
    }

    // Push it all to another registry: images by digest, then the index.
    let target = FakeRegistry::start(State::default());
    let to = RemoteRef::parse(&format!("{}/mirror/app:multi", target.addr)).unwrap();
    let push_opts = PushOptions {
        client: options(2).client,
        platform: PlatformSpec::default(),
        jobs: 2,
        chunk_size: 0,
        all_platforms: true,
    };
    let pushed = registry::push(&store, &name, &to, &push_opts, &Quiet).unwrap();
    assert_eq!(pushed.manifest, pulled.manifest);
    assert_eq!(pushed.uploaded, 5);
    let puts: Vec<String> = target
        .seen_paths("PUT", "/v2/mirror/app/manifests/")
        .into_iter()
        .map(|s| s.path)
        .collect();
    assert_eq!(puts.len(), 3);
    assert!(
        puts[..2].iter().all(|p| p.contains("/manifests/sha256:")),
        "{puts:?}"
    );
    assert!(puts[2].ends_with("/manifests/multi"), "{puts:?}");
    // And back again: an OCI index now, so its digest is kept.
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(dir2.path()).unwrap();
    let back = registry::pull(&store2, &to, &opts, &Quiet).unwrap();
    assert_eq!(back.manifest, pulled.manifest);
    assert!(!back.converted);

    // Without --all only this platform's image is pushed.
    let mut one = push_opts;
    one.all_platforms = false;
    let to = RemoteRef::parse(&format!("{}/single/app:v1", target.addr)).unwrap();
    let pushed = registry::push(&store, &name, &to, &one, &Quiet).unwrap();
    let amd_in_store = load_image(&store, &desc, &PlatformSpec::default()).unwrap();
    assert_eq!(pushed.manifest, amd_in_store.manifest_digest);
}
