//! Hostile input for the config parser, the validator and the plan builder: arbitrary
//! bytes, arbitrary JSON, and arbitrary but well-typed configs (the default spec with
//! fields replaced by generated values, good and bad). Never a panic; every error is one
//! clear line; whatever validates obeys the spec's MUST rules that `validate` promises to
//! check before any namespace or mount is made.
//!
//! Bounded: a few hundred cases per property, seconds in CI. No I/O beyond reads (the plan
//! builder reads /proc/self/mountinfo and stats bind sources; the rootfs does not exist).

use std::path::Path;

use berth::runtime::plan::{self, PlanOptions};
use berth::runtime::spec;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Value};

fn config(cases: u32) -> Config {
    Config {
        cases,
        // No regression files written into the repository.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Parse, validate and plan `bytes`; returns the first error, if any, after checking it is
/// one non-empty line.
fn check_pipeline(bytes: &[u8]) -> Result<(), String> {
    let spec = spec::parse(bytes).map_err(one_line)?;
    spec::validate(&spec).map_err(|e| one_line(e.to_string()))?;
    assert_validated_rules(&spec);
    let opts = PlanOptions {
        id: "fuzz",
        no_new_keyring: false,
        no_pivot: false,
        preserve_fds: 0,
        cgroups: &[],
        mount_mappings: &[],
        bundle: Path::new("/nonexistent-berth-fuzz-bundle"),
    };
    plan::build(&spec, Path::new("/nonexistent-berth-fuzz-rootfs"), &opts)
        .map(drop)
        .map_err(|e| one_line(e.to_string()))
}

fn one_line(msg: String) -> String {
    assert!(!msg.trim().is_empty(), "an empty error message");
    assert!(!msg.contains('\n'), "a multi-line error message: {msg:?}");
    msg
}

/// What `validate` accepting a spec guarantees.
fn assert_validated_rules(spec: &oci_spec::runtime::Spec) {
    let process = spec
        .process()
        .as_ref()
        .expect("validated spec has a process");
    let args = process.args().as_deref().unwrap_or_default();
    assert!(
        !args.is_empty() && !args[0].is_empty(),
        "empty args validated"
    );
    assert!(process.cwd().is_absolute(), "relative cwd validated");
    // config.md: a relative destination is taken relative to "/"; an empty one is refused.
    for m in spec.mounts().as_deref().unwrap_or_default() {
        assert!(
            !m.destination().as_os_str().is_empty(),
            "empty mount destination validated"
        );
    }
    if let Some(hooks) = spec.hooks() {
        let all = [
            hooks.prestart(),
            hooks.create_runtime(),
            hooks.create_container(),
            hooks.start_container(),
            hooks.poststart(),
            hooks.poststop(),
        ];
        for hook in all.iter().flat_map(|l| l.as_deref().unwrap_or_default()) {
            assert!(hook.path().is_absolute(), "relative hook path validated");
        }
    }
    if let Some(linux) = spec.linux() {
        let namespaces = linux.namespaces().as_deref().unwrap_or_default();
        let has_userns = namespaces
            .iter()
            .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User);
        let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        assert!(
            !has_maps || has_userns,
            "id maps without a user namespace validated"
        );
        let mut types: Vec<_> = namespaces.iter().map(|n| n.typ()).collect();
        let count = types.len();
        types.sort_by_key(|t| format!("{t:?}"));
        types.dedup();
        assert_eq!(types.len(), count, "a namespace listed twice validated");
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Arbitrary JSON, a few levels deep, with the config's own keys mixed in so generated
/// objects often reach deep into the typed structure.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("ociVersion".to_string()),
        Just("process".to_string()),
        Just("root".to_string()),
        Just("mounts".to_string()),
        Just("linux".to_string()),
        Just("hooks".to_string()),
        Just("args".to_string()),
        Just("namespaces".to_string()),
        Just("type".to_string()),
        Just("path".to_string()),
        "[a-zA-Z]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Paths good and bad: absolute, relative, `..`, empty, NUL, symlink-looking, long.
fn any_path() -> impl Strategy<Value = String> {
    prop_oneof![
        "/[a-z]{1,8}(/[a-z.]{1,8}){0,3}",
        "[a-z]{1,8}(/[a-z]{1,8}){0,2}",
        Just("".to_string()),
        Just("/".to_string()),
        Just("/../../etc".to_string()),
        Just("../proc".to_string()),
        Just("/proc/self/fd/3".to_string()),
        Just("/dev/../etc/x".to_string()),
        Just("/a\u{0}b".to_string()),
        "/[a-z]{200,300}",
        any::<String>(),
    ]
}

fn namespace_type() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("pid"),
        4 => Just("network"),
        8 => Just("mount"),
        4 => Just("ipc"),
        4 => Just("uts"),
        2 => Just("user"),
        4 => Just("cgroup"),
        2 => Just("time"),
        1 => Just("bogus"),
        1 => Just(""),
    ]
    .prop_map(String::from)
}

fn namespaces() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (namespace_type(), prop::option::weighted(0.1, any_path())),
        0..9,
    )
    .prop_map(|list| {
        Value::Array(
            list.into_iter()
                .map(|(typ, path)| match path {
                    Some(p) => json!({"type": typ, "path": p}),
                    None => json!({"type": typ}),
                })
                .collect(),
        )
    })
}

fn id_maps() -> impl Strategy<Value = Value> {
    prop::collection::vec((any::<u32>(), any::<u32>(), any::<u32>()), 0..3).prop_map(|maps| {
        Value::Array(
            maps.into_iter()
                .map(|(c, h, s)| json!({"containerID": c, "hostID": h, "size": s}))
                .collect(),
        )
    })
}

fn mounts() -> impl Strategy<Value = Value> {
    let options = prop::collection::vec(
        prop_oneof![
            Just("bind".to_string()),
            Just("rbind".to_string()),
            Just("ro".to_string()),
            Just("rro".to_string()),
            Just("nosuid".to_string()),
            Just("rprivate".to_string()),
            Just("tmpcopyup".to_string()),
            Just("mode=755".to_string()),
            "[a-z=0-9]{0,10}",
        ],
        0..5,
    );
    let fstype = prop_oneof![
        Just(None),
        Just(Some("tmpfs".to_string())),
        Just(Some("proc".to_string())),
        Just(Some("bind".to_string())),
        Just(Some("cgroup".to_string())),
        "[a-z]{0,6}".prop_map(Some),
    ];
    prop::collection::vec((any_path(), fstype, any_path(), options), 0..5).prop_map(|list| {
        Value::Array(
            list.into_iter()
                .map(|(dest, typ, source, options)| {
                    let mut m = json!({"destination": dest, "source": source, "options": options});
                    if let Some(t) = typ {
                        m["type"] = json!(t);
                    }
                    m
                })
                .collect(),
        )
    })
}

fn hooks() -> impl Strategy<Value = Value> {
    let hook =
        (any_path(), prop::option::of(any::<i64>())).prop_map(|(path, timeout)| match timeout {
            Some(t) => json!({"path": path, "timeout": t}),
            None => json!({"path": path}),
        });
    prop::collection::vec(hook, 0..3).prop_flat_map(|list| {
        prop_oneof![
            Just("prestart"),
            Just("createRuntime"),
            Just("createContainer"),
            Just("startContainer"),
            Just("poststart"),
            Just("poststop"),
        ]
        .prop_map(move |kind| json!({ kind: list.clone() }))
    })
}

fn rlimits() -> impl Strategy<Value = Value> {
    let typ = prop_oneof![
        3 => Just("RLIMIT_NOFILE"),
        3 => Just("RLIMIT_CORE"),
        3 => Just("RLIMIT_NPROC"),
        1 => Just("RLIMIT_BOGUS"),
    ];
    let limit = prop_oneof![0..4096u64, any::<u64>()];
    prop::collection::vec((typ, limit.clone(), limit), 0..3).prop_map(|list| {
        Value::Array(
            list.into_iter()
                .map(|(t, soft, hard)| json!({"type": t, "soft": soft, "hard": hard}))
                .collect(),
        )
    })
}

fn devices() -> impl Strategy<Value = Value> {
    let typ = prop_oneof![
        4 => Just("c"),
        2 => Just("b"),
        2 => Just("u"),
        2 => Just("p"),
        1 => Just("a"),
        1 => Just("x"),
    ];
    let path = prop_oneof![3 => "/dev/[a-z]{1,8}", 1 => any_path()];
    prop::collection::vec((path, typ, 0..300i64, 0..300i64), 0..3).prop_map(|list| {
        Value::Array(
            list.into_iter()
                .map(|(path, t, major, minor)| {
                    json!({"path": path, "type": t, "major": major, "minor": minor})
                })
                .collect(),
        )
    })
}

fn sysctls() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop_oneof![
            Just("net.ipv4.ip_forward".to_string()),
            Just("kernel.panic".to_string()),
            Just("kernel.shmmax".to_string()),
            Just("net/../../../etc/passwd".to_string()),
            Just("net.ipv4..x".to_string()),
            "[a-z.]{0,20}",
        ],
        any::<String>(),
        0..3,
    )
    .prop_map(|m| json!(m))
}

/// A JSON patch of the default spec: each field either left alone or replaced.
fn typed_config() -> impl Strategy<Value = Value> {
    (
        (
            prop::option::weighted(0.3, prop::collection::vec(any::<String>(), 0..3)),
            prop::option::weighted(0.3, any_path()),
            prop::option::weighted(
                0.3,
                prop::collection::vec("[A-Z_]{1,4}=[a-z]{0,4}|[a-z]{0,4}", 0..3),
            ),
            prop::option::weighted(0.3, rlimits()),
            prop::option::weighted(0.3, prop_oneof![-1000..1000i32, any::<i32>()]),
            prop::option::of(any::<bool>()),
        ),
        (
            prop::option::weighted(0.5, mounts()),
            prop::option::weighted(0.3, hooks()),
            prop::option::weighted(0.2, any_path()),
            prop::option::weighted(0.3, "[a-z.\u{0}]{0,12}"),
        ),
        (
            prop::option::weighted(0.3, namespaces()),
            prop::option::weighted(0.2, id_maps()),
            prop::option::weighted(0.2, id_maps()),
            prop::option::weighted(0.3, devices()),
            prop::option::weighted(0.3, sysctls()),
            prop::option::weighted(0.3, prop::collection::vec(any_path(), 0..3)),
            prop::option::weighted(
                0.2,
                prop_oneof![
                    Just("rslave".to_string()),
                    Just("shared".to_string()),
                    "[a-z]{0,8}"
                ],
            ),
        ),
    )
        .prop_map(|(process, other, linux)| {
            let mut spec = serde_json::to_value(spec::default_spec(false)).unwrap_or(Value::Null);
            let (args, cwd, env, rlimits, oom, terminal) = process;
            let (mounts, hooks, root_path, hostname) = other;
            let (ns, uid_maps, gid_maps, devices, sysctl, masked, propagation) = linux;
            let mut set = |path: &[&str], value: Option<Value>| {
                if let Some(v) = value {
                    let mut at = &mut spec;
                    for key in path {
                        at = &mut at[*key];
                    }
                    *at = v;
                }
            };
            set(&["process", "args"], args.map(|a| json!(a)));
            set(&["process", "cwd"], cwd.map(Value::String));
            set(&["process", "env"], env.map(|e| json!(e)));
            set(&["process", "rlimits"], rlimits);
            set(&["process", "oomScoreAdj"], oom.map(|o| json!(o)));
            set(&["process", "terminal"], terminal.map(Value::Bool));
            set(&["mounts"], mounts);
            set(&["hooks"], hooks);
            set(&["root", "path"], root_path.map(Value::String));
            set(&["hostname"], hostname.map(Value::String));
            set(&["linux", "namespaces"], ns);
            set(&["linux", "uidMappings"], uid_maps);
            set(&["linux", "gidMappings"], gid_maps);
            set(&["linux", "devices"], devices);
            set(&["linux", "sysctl"], sysctl);
            set(&["linux", "maskedPaths"], masked.map(|m| json!(m)));
            set(
                &["linux", "rootfsPropagation"],
                propagation.map(Value::String),
            );
            spec
        })
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = check_pipeline(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        let _ = check_pipeline(&bytes);
    }

    #[test]
    fn mutated_default_bytes_never_panic(
        cut in any::<prop::sample::Index>(),
        insert in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let mut bytes = serde_json::to_vec(&spec::default_spec(false)).unwrap_or_default();
        let at = cut.index(bytes.len() + 1);
        bytes.splice(at..at, insert);
        let _ = check_pipeline(&bytes);
    }

    #[test]
    fn well_typed_configs_never_panic_and_obey_the_rules(value in typed_config()) {
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        let _ = check_pipeline(&bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// The MUST rules, one by one: rejected by `validate`, before anything is made
// ---------------------------------------------------------------------------------------------

fn patched(patch: Value) -> Vec<u8> {
    let mut spec = serde_json::to_value(spec::default_spec(false)).unwrap_or(Value::Null);
    merge(&mut spec, patch);
    serde_json::to_vec(&spec).unwrap_or_default()
}

fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

#[track_caller]
fn rejected(patch: Value, needle: &str) {
    let bytes = patched(patch);
    let spec = match spec::parse(&bytes) {
        Err(e) => {
            assert!(
                e.contains(needle),
                "parse error {e:?} should mention {needle:?}"
            );
            return;
        }
        Ok(spec) => spec,
    };
    let err = spec::validate(&spec).expect_err("validate must reject this");
    let msg = err.to_string();
    assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
}

#[test]
fn spec_must_rules_are_enforced_by_validate() {
    // A relative destination is taken relative to "/" (config.md); an empty one is refused.
    rejected(
        json!({"mounts": [{"destination": "", "type": "proc"}]}),
        "empty destination",
    );
    rejected(
        json!({"linux": {"namespaces": [{"type": "bogus"}]}}),
        "bogus",
    );
    rejected(
        json!({"linux": {"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}}),
        "user namespace",
    );
    rejected(
        json!({"hooks": {"poststop": [{"path": "bin/true"}]}}),
        "absolute",
    );
    rejected(
        json!({"hooks": {"prestart": [{"path": "/bin/true", "timeout": 0}]}}),
        "timeout",
    );
    rejected(json!({"process": {"cwd": "tmp"}}), "cwd");
    rejected(json!({"process": {"args": []}}), "args");
    rejected(json!({"process": {"env": ["NOEQUALS"]}}), "KEY=VALUE");
    rejected(
        json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}]}}),
        "twice",
    );
    rejected(
        json!({"linux": {"namespaces": [{"type": "mount", "path": "proc/1/ns/mnt"}]}}),
        "absolute",
    );
    rejected(
        json!({"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]}}),
        "RLIMIT_NOFILE",
    );
    rejected(json!({"process": {"oomScoreAdj": 1001}}), "oomScoreAdj");
    rejected(
        json!({"linux": {"devices": [{"path": "/dev/../etc/x", "type": "c", "major": 1, "minor": 3}]}}),
        "..",
    );
}
