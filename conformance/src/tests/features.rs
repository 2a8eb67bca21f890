//! features.md: the `features` operation's JSON document.

use serde_json::Value;

use super::{t, Test};
use crate::harness::Sandbox;
use crate::outcome::{Context, TestResult};
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
