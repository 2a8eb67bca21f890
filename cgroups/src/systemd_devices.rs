//! The container's device rules as systemd unit properties, so a
//! `systemctl daemon-reload` (which makes systemd re-apply each unit's
//! cgroup settings) re-applies the container's rules instead of its own
//! default of "every device".
//!
//! systemd takes `DevicePolicy` (`auto`: allow all when nothing is listed,
//! `strict`: only what `DeviceAllow` lists) and `DeviceAllow`, entries of
//! (device, access): `/dev/char/MAJ:MIN` or `/dev/block/MAJ:MIN` for one
//! device, `char-NAME`/`block-NAME` for every device of the majors
//! /proc/devices calls NAME (a glob on its side), `char-*`/`block-*` for
//! every device of a type.

use crate::dbus::Value;
use crate::devices::{access_string, allow_list, DeviceKind, DeviceRule};
use std::collections::BTreeMap;

/// The properties, and what could not be said exactly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceProperties {
    pub properties: Vec<Value>,
    pub warnings: Vec<String>,
}

/// `DevicePolicy` and `DeviceAllow` for the effective rules (config rules
/// then defaults); `proc_devices` is the text of /proc/devices.
///
/// An empty `DeviceAllow` comes first: on `SetUnitProperties` systemd adds
/// entries to the unit's list, and only an empty array clears it.
pub fn device_properties(rules: &[DeviceRule], proc_devices: &str) -> DeviceProperties {
    let list = allow_list(rules);
    let mut warnings = list.inexact;
    let policy = if list.strict { "strict" } else { "auto" };
    let mut properties = vec![
        Value::property("DevicePolicy", Value::Str(policy.into())),
        Value::property("DeviceAllow", allow_array(Vec::new())),
    ];
    if list.strict {
        let entries = allow_entries(&list.allowed, proc_devices, &mut warnings);
        properties.push(Value::property("DeviceAllow", allow_array(entries)));
    }
    DeviceProperties {
        properties,
        warnings,
    }
}

/// `a(ss)` of (device, access) pairs.
fn allow_array(entries: Vec<(String, String)>) -> Value {
    let items = entries
        .into_iter()
        .map(|(device, access)| Value::Struct(vec![Value::Str(device), Value::Str(access)]))
        .collect();
    Value::Array {
        elem: "(ss)".into(),
        items,
    }
}

/// One entry per systemd device name, in first-seen order. systemd keeps
/// one access string per name (the last one given), so rules that land
/// on the same name are merged.
fn allow_entries(
    allowed: &[DeviceRule],
    proc_devices: &str,
    warnings: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut order: Vec<String> = Vec::new();
    let mut access: BTreeMap<String, u32> = BTreeMap::new();
    for rule in allowed {
        for name in device_names(rule, proc_devices, warnings) {
            let bits = access.entry(name.clone()).or_insert_with(|| {
                order.push(name.clone());
                0
            });
            if *bits != 0 && *bits & rule.access != *bits && *bits & rule.access != rule.access {
                warnings.push(format!(
                    "device rules {name} {} and {} are merged into one systemd entry",
                    access_string(*bits),
                    access_string(rule.access)
                ));
            }
            *bits |= rule.access;
        }
    }
    order
        .into_iter()
        .map(|name| {
            let bits = access.get(&name).copied().unwrap_or(0);
            (name, access_string(bits))
        })
        .collect()
}

/// The systemd names of one rule's devices: two for a rule of type `a`.
fn device_names(rule: &DeviceRule, proc_devices: &str, warnings: &mut Vec<String>) -> Vec<String> {
    let kinds: &[DeviceKind] = match rule.kind {
        DeviceKind::All => &[DeviceKind::Char, DeviceKind::Block],
        DeviceKind::Char => &[DeviceKind::Char],
        DeviceKind::Block => &[DeviceKind::Block],
    };
    let mut names = Vec::new();
    for &kind in kinds {
        match device_name(kind, rule.major, rule.minor, proc_devices) {
            Ok(name) => names.push(name),
            Err(reason) => warnings.push(format!(
                "device rule {:?} is not passed to systemd: {reason}",
                rule.v1_line()
            )),
        }
    }
    names
}

/// "char" or "block".
fn type_word(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::Block => "block",
        DeviceKind::Char | DeviceKind::All => "char",
    }
}

/// The systemd name of the devices of one type a rule names, or why
/// there is none.
fn device_name(
    kind: DeviceKind,
    major: Option<u32>,
    minor: Option<u32>,
    proc_devices: &str,
) -> std::result::Result<String, String> {
    let word = type_word(kind);
    match (major, minor) {
        (None, None) => Ok(format!("{word}-*")),
        // "char-*" would allow every minor of every major.
        (None, Some(_)) => Err("systemd has no name for one minor of every major".into()),
        (Some(major), Some(minor)) => Ok(format!("/dev/{word}/{major}:{minor}")),
        (Some(major), None) => driver_name(proc_devices, kind, major)
            .map(|name| format!("{word}-{name}"))
            .ok_or_else(|| format!("/proc/devices gives {word} major {major} no name of its own")),
    }
}

/// A name /proc/devices gives `major` in `kind`'s section and no other
/// major, free of glob characters (systemd matches it as a pattern), so
/// it stands for exactly that major (one major may have several names).
pub fn driver_name(proc_devices: &str, kind: DeviceKind, major: u32) -> Option<String> {
    let entries = section_entries(proc_devices, kind);
    entries
        .iter()
        .filter(|(m, _)| *m == major)
        .map(|(_, name)| *name)
        .filter(|name| {
            !name.contains(['*', '?', '[', ']', '\\'])
                && entries.iter().all(|(m, n)| n != name || *m == major)
        })
        // A plain driver name reads better than a node path like /dev/vc/0.
        .min_by_key(|name| name.contains('/'))
        .map(str::to_owned)
}

/// The (major, name) lines of the "Character devices:" or "Block
/// devices:" section.
fn section_entries(proc_devices: &str, kind: DeviceKind) -> Vec<(u32, &str)> {
    let header = match kind {
        DeviceKind::Block => "Block devices:",
        DeviceKind::Char | DeviceKind::All => "Character devices:",
    };
    proc_devices
        .lines()
        .skip_while(|line| line.trim() != header)
        .skip(1)
        .take_while(|line| !line.trim().ends_with(':'))
        .filter_map(|line| {
            let (major, name) = line.trim().split_once(' ')?;
            Some((major.parse().ok()?, name.trim()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::effective_rules;
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

    const PROC_DEVICES: &str = "Character devices:
  1 mem
  4 /dev/vc/0
  4 tty
  4 ttyS
  5 /dev/tty
  5 /dev/console
  5 /dev/ptmx
 10 misc
136 pts
180 usb
180 usb_device

Block devices:
  8 sd
259 blkext
";

    fn rule(typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>) -> LinuxDeviceCgroup {
        rule_with(typ, major, minor, "rwm")
    }

    fn rule_with(
        typ: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        crate::devices::tests::oci(true, typ, major, minor, access)
    }

    fn deny_all() -> LinuxDeviceCgroup {
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap()
    }

    fn props(config: &[LinuxDeviceCgroup]) -> DeviceProperties {
        device_properties(&effective_rules(config).unwrap(), PROC_DEVICES)
    }

    /// The policy and the entries of the filling DeviceAllow.
    fn policy_and_entries(p: &DeviceProperties) -> (String, Vec<(String, String)>) {
        let value = |i: usize| match &p.properties[i] {
            Value::Struct(f) => f[1].unwrap_variant().clone(),
            other => panic!("not a property: {other:?}"),
        };
        let policy = value(0).as_str().unwrap().to_owned();
        assert_eq!(value(1), allow_array(Vec::new()), "the list is reset first");
        let entries = match p.properties.get(2).map(|_| value(2)) {
            Some(Value::Array { items, .. }) => items
                .iter()
                .map(|i| match i {
                    Value::Struct(f) => (
                        f[0].as_str().unwrap().to_owned(),
                        f[1].as_str().unwrap().to_owned(),
                    ),
                    other => panic!("not an entry: {other:?}"),
                })
                .collect(),
            _ => Vec::new(),
        };
        (policy, entries)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(d, a)| (d.to_string(), a.to_string()))
            .collect()
    }

    const DEFAULTS: [(&str, &str); 11] = [
        ("char-*", "m"),
        ("block-*", "m"),
        ("/dev/char/1:3", "rwm"),
        ("/dev/char/1:5", "rwm"),
        ("/dev/char/1:7", "rwm"),
        ("/dev/char/1:8", "rwm"),
        ("/dev/char/1:9", "rwm"),
        ("/dev/char/5:0", "rwm"),
        ("/dev/char/5:1", "rwm"),
        ("/dev/char/5:2", "rwm"),
        ("char-pts", "rwm"),
    ];

    #[test]
    fn default_rules_are_a_strict_list() {
        let p = props(&[deny_all()]);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(
            policy_and_entries(&p),
            ("strict".to_owned(), pairs(&DEFAULTS))
        );
    }

    #[test]
    fn single_devices_and_wildcard_minors_get_systemd_names() {
        let config = [
            deny_all(),
            rule_with(LinuxDeviceType::C, Some(10), Some(229), "rw"), // fuse
            rule(LinuxDeviceType::B, Some(8), None),
            rule(LinuxDeviceType::C, Some(136), None),
            rule(LinuxDeviceType::A, Some(180), Some(0)),
        ];
        let p = props(&config);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let (policy, entries) = policy_and_entries(&p);
        assert_eq!(policy, "strict");
        let mut want = pairs(&[
            ("/dev/char/10:229", "rw"),
            ("block-sd", "rwm"),
            ("char-pts", "rwm"),
            ("/dev/char/180:0", "rwm"),
            ("/dev/block/180:0", "rwm"),
        ]);
        // The default pts rule merges into the config's.
        want.extend(
            pairs(&DEFAULTS)
                .into_iter()
                .filter(|(d, _)| d != "char-pts"),
        );
        let mut sorted = entries.clone();
        sorted.sort();
        want.sort();
        assert_eq!(sorted, want);
    }

    #[test]
    fn majors_without_a_name_of_their_own_are_skipped_with_a_warning() {
        let config = [
            deny_all(),
            rule(LinuxDeviceType::C, Some(4), None), // several names, each its own
            rule(LinuxDeviceType::C, Some(180), None),
            rule(LinuxDeviceType::C, Some(99), None), // not listed
            rule(LinuxDeviceType::B, Some(136), None), // pts is a char name
            rule(LinuxDeviceType::C, None, Some(5)),
        ];
        let p = props(&config);
        let (_, entries) = policy_and_entries(&p);
        assert!(entries.contains(&("char-tty".into(), "rwm".into())));
        assert!(entries.contains(&("char-usb".into(), "rwm".into())));
        assert_eq!(p.warnings.len(), 3, "{:?}", p.warnings);
        assert!(p.warnings[0].contains("c 99:* rwm"), "{:?}", p.warnings);
        assert!(p.warnings[1].contains("b 136:* rwm"), "{:?}", p.warnings);
        assert!(p.warnings[2].contains("c *:5 rwm"), "{:?}", p.warnings);
        assert!(!entries
            .iter()
            .any(|(d, _)| d.contains("99") || d == "block-pts"));
    }

    #[test]
    fn allow_all_is_policy_auto_with_an_empty_list() {
        let config = [deny_all(), rule(LinuxDeviceType::A, None, None)];
        let p = props(&config);
        assert!(p.warnings.is_empty());
        assert_eq!(p.properties.len(), 2);
        assert_eq!(policy_and_entries(&p), ("auto".to_owned(), Vec::new()));
    }

    #[test]
    fn driver_names_come_from_the_right_section() {
        assert_eq!(
            driver_name(PROC_DEVICES, DeviceKind::Char, 136).as_deref(),
            Some("pts")
        );
        assert_eq!(
            driver_name(PROC_DEVICES, DeviceKind::Block, 8).as_deref(),
            Some("sd")
        );
        assert_eq!(driver_name(PROC_DEVICES, DeviceKind::Block, 136), None);
        assert_eq!(driver_name("", DeviceKind::Char, 1), None);
    }

    #[test]
    fn device_allow_marshals_as_an_array_of_string_pairs() {
        let prop = Value::property(
            "DeviceAllow",
            allow_array(pairs(&[("/dev/char/1:3", "rwm")])),
        );
        let body = crate::dbus::encode_body(std::slice::from_ref(&prop));
        let expected: Vec<u8> = [
            &[11, 0, 0, 0][..], // "DeviceAllow"
            b"DeviceAllow\0",   //
            &[5],               // variant signature "a(ss)"
            b"a(ss)\0",         //
            &[0],               // pad to 4 for the array length
            &[28, 0, 0, 0],     // 28 bytes of elements
            &[0, 0, 0, 0],      // pad to 8 for the first struct
            &[13, 0, 0, 0],     // "/dev/char/1:3"
            b"/dev/char/1:3\0", //
            &[0, 0],            // pad to 4
            &[3, 0, 0, 0],      // "rwm"
            b"rwm\0",           //
        ]
        .concat();
        assert_eq!(body, expected);
        let back = crate::dbus::decode_body(&body, "(sv)", false).unwrap();
        assert_eq!(back, [prop]);
    }
}
