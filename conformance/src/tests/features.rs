//! features.md: the `features` operation's JSON document.

use serde_json::{json, Value};

use super::{t, Test};
use crate::harness::{set_namespace, Sandbox};
use crate::outcome::{skip, Context, TestResult};
use crate::{check, fail};

pub fn tests() -> Vec<Test> {
    vec![
        t(
            "features.md: the document is JSON with ociVersionMin and ociVersionMax (REQUIRED)",
            versions,
        ),
        t("features.md: hooks lists known hook names", hooks),
        t(
            "features.md: mountOptions is a list of strings",
            mount_options,
        ),
        t(
            "features.md/linux: namespaces lists known namespace types",
            namespaces,
        ),
        t(
            "features.md/linux: capabilities lists capability names",
            capabilities,
        ),
        t(
            "features.md/linux: cgroup, seccomp, apparmor, selinux, intelRdt have the right shapes",
            linux_shapes,
        ),
        t(
            "features.md: annotations maps strings to strings",
            annotations,
        ),
        t(
            "features.md: ociVersionMin and ociVersionMax MUST be accepted as ociVersion",
            versions_accepted,
        ),
        t(
            "features-linux.md: every listed namespace MUST be recognized in config.json",
            namespaces_recognized,
        ),
        t(
            "features-linux.md: every listed capability MUST be recognized in config.json",
            capabilities_recognized,
        ),
        t(
            "features-linux.md: every listed seccomp action and operator (and x86 arch) MUST be recognized",
            seccomp_recognized,
        ),
    ]
}

fn features(sb: &mut Sandbox) -> TestResult<Value> {
    let out = sb.op_ok_args(&["features"])?;
    serde_json::from_str(&out.stdout)
        .ctx(|| format!("features printed no JSON ({})", out.stdout.trim()))
}

fn semver(text: &str) -> Option<(u64, u64, u64)> {
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

// "ociVersionMin (string, REQUIRED) The minimum recognized version of the Open Container
// Initiative Runtime Specification. ... ociVersionMax (string, REQUIRED) The maximum ..."
fn versions(sb: &mut Sandbox) -> TestResult {
    let doc = features(sb)?;
    let min = doc["ociVersionMin"].as_str().and_then(semver);
    let max = doc["ociVersionMax"].as_str().and_then(semver);
    match (min, max) {
        (Some(min), Some(max)) => check!(
            min <= max,
            "ociVersionMin {min:?} is above ociVersionMax {max:?}"
        ),
        _ => fail!(
            "ociVersionMin {:?} / ociVersionMax {:?} are not SemVer strings",
            doc["ociVersionMin"],
            doc["ociVersionMax"]
        ),
    }
    Ok(())
}

/// An OPTIONAL list: absent or null is fine, otherwise every entry must be a string `ok`.
fn string_list(doc: &Value, what: &str, ok: impl Fn(&str) -> bool) -> TestResult {
    if doc.is_null() {
        return Ok(());
    }
    let Some(list) = doc.as_array() else {
        fail!("{what} is not an array: {doc}");
    };
    for entry in list {
        match entry.as_str() {
            Some(text) if ok(text) => {}
            _ => fail!("{what} holds {entry}, not a valid entry"),
        }
    }
    Ok(())
}

// "hooks (array of strings, OPTIONAL) The list of the recognized hook names."
fn hooks(sb: &mut Sandbox) -> TestResult {
    const KNOWN: [&str; 6] = [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ];
    string_list(&features(sb)?["hooks"], "hooks", |h| KNOWN.contains(&h))
}

// "mountOptions (array of strings, OPTIONAL) The list of the recognized mount options."
fn mount_options(sb: &mut Sandbox) -> TestResult {
    string_list(&features(sb)?["mountOptions"], "mountOptions", |o| {
        !o.is_empty()
    })
}

// "namespaces (array of strings, OPTIONAL) The list of the recognized namespaces."
fn namespaces(sb: &mut Sandbox) -> TestResult {
    const KNOWN: [&str; 8] = [
        "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time",
    ];
    string_list(
        &features(sb)?["linux"]["namespaces"],
        "linux.namespaces",
        |n| KNOWN.contains(&n),
    )
}

// "capabilities (array of strings, OPTIONAL) The list of the recognized capabilities."
fn capabilities(sb: &mut Sandbox) -> TestResult {
    string_list(
        &features(sb)?["linux"]["capabilities"],
        "linux.capabilities",
        |c| {
            c.starts_with("CAP_")
                && c[4..]
                    .chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch == '_')
        },
    )
}

/// An OPTIONAL object whose listed fields are booleans when present.
fn bool_fields(doc: &Value, what: &str, fields: &[&str]) -> TestResult {
    if doc.is_null() {
        return Ok(());
    }
    check!(doc.is_object(), "{what} is not an object: {doc}");
    for field in fields {
        let value = &doc[*field];
        check!(
            value.is_null() || value.is_boolean(),
            "{what}.{field} is not a boolean: {value}"
        );
    }
    Ok(())
}

// "cgroup (object, OPTIONAL) ... v1 (bool), v2 (bool), systemd (bool), systemdUser (bool),
// rdma (bool)"; "seccomp (object, OPTIONAL) enabled (bool), actions, operators, archs
// (arrays of strings)"; "apparmor/selinux/intelRdt (object, OPTIONAL) enabled (bool)".
fn linux_shapes(sb: &mut Sandbox) -> TestResult {
    let doc = features(sb)?;
    let linux = &doc["linux"];
    bool_fields(
        &linux["cgroup"],
        "linux.cgroup",
        &["v1", "v2", "systemd", "systemdUser", "rdma"],
    )?;
    bool_fields(&linux["seccomp"], "linux.seccomp", &["enabled"])?;
    for list in [
        "actions",
        "operators",
        "archs",
        "knownFlags",
        "supportedFlags",
    ] {
        string_list(
            &linux["seccomp"][list],
            &format!("linux.seccomp.{list}"),
            |s| !s.is_empty(),
        )?;
    }
    for name in ["apparmor", "selinux", "intelRdt"] {
        bool_fields(&linux[name], &format!("linux.{name}"), &["enabled"])?;
    }
    Ok(())
}

// "annotations (object, OPTIONAL) contains arbitrary metadata of the runtime. ... the keys and
// values MUST be strings."
fn annotations(sb: &mut Sandbox) -> TestResult {
    let doc = features(sb)?;
    let annotations = &doc["annotations"];
    if annotations.is_null() {
        return Ok(());
    }
    let Some(map) = annotations.as_object() else {
        fail!("annotations is not an object: {annotations}");
    };
    for (key, value) in map {
        check!(
            value.is_string(),
            "annotation {key} is not a string: {value}"
        );
    }
    Ok(())
}

/// The strings of an OPTIONAL list (absent or null: none).
fn strings(doc: &Value) -> Vec<String> {
    doc.as_array()
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

// "ociVersionMin ... The runtime MUST accept this value as the ociVersion property of
// config.json." (and the same for ociVersionMax)
fn versions_accepted(sb: &mut Sandbox) -> TestResult {
    let doc = features(sb)?;
    for field in ["ociVersionMin", "ociVersionMax"] {
        let Some(version) = doc[field].as_str() else {
            fail!("features has no {field}");
        };
        sb.config["ociVersion"] = json!(version);
        let report = sb.run_checker(&["print:ran"])?;
        check!(
            report.get("ran").is_ok(),
            "ociVersion {version} ({field}): the program did not run"
        );
    }
    Ok(())
}

// features-linux.md namespaces: "The runtime MUST recognize the elements in this array as the
// type of linux.namespaces objects in config.json."
fn namespaces_recognized(sb: &mut Sandbox) -> TestResult {
    let listed = strings(&features(sb)?["linux"]["namespaces"]);
    if listed.is_empty() {
        return skip("the runtime lists no namespaces in features");
    }
    let base = sb.config.clone();
    let mut refused = Vec::new();
    for kind in &listed {
        let file = match kind.as_str() {
            "network" => "net",
            "mount" => "mnt",
            other => other,
        };
        if !sb.suite.has_namespace(file) {
            continue; // recognized but not offered by this kernel: nothing to observe
        }
        sb.config = base.clone();
        set_namespace(&mut sb.config, json!({"type": kind}));
        if kind == "user" {
            sb.config["linux"]["uidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            sb.config["linux"]["gidMappings"] =
                json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        }
        if let Err(why) = sb.run_checker(&["print:ran"]) {
            refused.push(format!(
                "{kind} ({})",
                why.to_string().chars().take(160).collect::<String>()
            ));
        }
    }
    sb.config = base;
    check!(
        refused.is_empty(),
        "listed namespaces refused: {}",
        refused.join("; ")
    );
    Ok(())
}

/// The runner's own bounding set: capabilities that can actually be granted here.
fn grantable_mask() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

// features-linux.md capabilities: "The runtime MUST recognize the elements in this array in the
// process.capabilities object of config.json."
fn capabilities_recognized(sb: &mut Sandbox) -> TestResult {
    let listed = strings(&features(sb)?["linux"]["capabilities"]);
    if listed.is_empty() {
        return skip("the runtime lists no capabilities in features");
    }
    // Only those this host can grant: a missing one is a separate (SHOULD NOT fail) matter.
    let mask = grantable_mask();
    let names = super::config::CAP_NAMES;
    let grantable: Vec<&String> = listed
        .iter()
        .filter(|c| {
            names
                .iter()
                .position(|n| *n == c.trim_start_matches("CAP_"))
                .is_some_and(|bit| mask & (1u64 << bit) != 0)
        })
        .collect();
    sb.config["process"]["capabilities"] =
        json!({"bounding": grantable, "effective": grantable, "permitted": grantable});
    let report = sb.run_checker(&["print:ran"])?;
    check!(report.get("ran").is_ok(), "the program did not run");
    Ok(())
}

// features-linux.md seccomp: "actions ... operators ... archs: The runtime MUST recognize the
// elements in this array" in linux.seccomp of config.json.
fn seccomp_recognized(sb: &mut Sandbox) -> TestResult {
    let doc = features(sb)?;
    let seccomp = &doc["linux"]["seccomp"];
    if seccomp["enabled"] == json!(false) || seccomp.is_null() {
        return skip("the runtime reports no seccomp support in features");
    }
    // Rarely used system calls that neither runtimes nor the checker call before or after exec.
    let mut spare = [
        "acct",
        "add_key",
        "request_key",
        "syslog",
        "vhangup",
        "quotactl",
        "uselib",
        "ustat",
        "swapoff",
        "kexec_load",
    ]
    .into_iter();
    let mut rules = Vec::new();
    for action in strings(&seccomp["actions"]) {
        // NOTIFY needs a listener and is covered by its own test; ALLOW is the default action.
        if action == "SCMP_ACT_NOTIFY" || action == "SCMP_ACT_ALLOW" {
            continue;
        }
        let Some(name) = spare.next() else { break };
        rules.push(json!({"names": [name], "action": action}));
    }
    for (i, op) in strings(&seccomp["operators"]).into_iter().enumerate() {
        let value_two = if op == "SCMP_CMP_MASKED_EQ" {
            json!(1)
        } else {
            json!(0)
        };
        rules.push(json!({"names": ["swapon"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 0, "value": 12345 + i, "valueTwo": value_two, "op": op}]}));
    }
    // One filter cannot mix byte orders (libseccomp refuses), so only the x86 family is used.
    let archs: Vec<String> = strings(&seccomp["archs"])
        .into_iter()
        .filter(|a| {
            matches!(
                a.as_str(),
                "SCMP_ARCH_X86_64" | "SCMP_ARCH_X86" | "SCMP_ARCH_X32"
            )
        })
        .collect();
    sb.config["linux"]["seccomp"] =
        json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": archs, "syscalls": rules});
    let report = sb.run_checker(&["print:ran"])?;
    check!(report.get("ran").is_ok(), "the program did not run");
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::semver;

    #[test]
    fn semver_needs_three_numbers() {
        assert_eq!(semver("1.2.0"), Some((1, 2, 0)));
        assert_eq!(semver("1.0.2-dev"), Some((1, 0, 2)));
        assert_eq!(semver("1.2"), None);
        assert_eq!(semver("1.2.x"), None);
        assert_eq!(semver("1.2.3.4"), None);
    }
}
