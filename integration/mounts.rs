//! Rootfs and mounts, checked from inside through /proc/self/mountinfo and file access.

use std::fs;

use serde_json::json;

use crate::harness::{parse_mountinfo, runc_diverges, MountInfo, Sandbox};

fn mount_at<'a>(mounts: &'a [MountInfo], point: &str) -> &'a MountInfo {
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == point)
        .unwrap_or_else(|| panic!("no mount at {point}: {mounts:#?}"))
}

fn has(options: &[String], opt: &str) -> bool {
    options.iter().any(|o| o == opt)
}

#[test]
fn mounts_are_applied_in_order_with_options() {
    let mut sb = Sandbox::new("mountorder");
    sb.add_mount(
        json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=750"]}),
    );
    sb.add_mount(
        json!({"destination": "/mnt/noatime", "type": "tmpfs", "source": "tmpfs",
        "options": ["noatime", "nodiratime"]}),
    );
    sb.add_mount(
        json!({"destination": "/mnt/strict", "type": "tmpfs", "source": "tmpfs",
        "options": ["strictatime"]}),
    );
    // Mounted after /mnt/t, so it must land inside the new tmpfs.
    sb.add_mount(
        json!({"destination": "/mnt/t/inner", "type": "tmpfs", "source": "tmpfs",
        "options": ["ro", "relatime"]}),
    );
    let out = sb.run_script("cat /proc/self/mountinfo; echo ==; stat -c %a /mnt/t");
    let (info, mode) = out.split_once("==").expect("separator");
    let mounts = parse_mountinfo(info);
    let t = mount_at(&mounts, "/mnt/t");
    assert_eq!(t.fs_type, "tmpfs");
    assert_eq!(t.source, "tmpfs");
    for opt in ["nosuid", "nodev", "noexec", "rw"] {
        assert!(has(&t.mount_options, opt), "/mnt/t lacks {opt}: {t:?}");
    }
    assert!(has(&t.super_options, "size=1024k"), "{t:?}");
    assert_eq!(mode.trim(), "750");
    let noatime = &mount_at(&mounts, "/mnt/noatime").mount_options;
    assert!(
        has(noatime, "noatime") && has(noatime, "nodiratime"),
        "{noatime:?}"
    );
    let strict = &mount_at(&mounts, "/mnt/strict").mount_options;
    assert!(
        !has(strict, "relatime") && !has(strict, "noatime"),
        "strictatime: {strict:?}"
    );
    let inner = mount_at(&mounts, "/mnt/t/inner");
    assert!(
        has(&inner.mount_options, "ro") && has(&inner.mount_options, "relatime"),
        "{inner:?}"
    );
    let t_index = mounts
        .iter()
        .position(|m| m.mount_point == "/mnt/t")
        .unwrap();
    let inner_index = mounts
        .iter()
        .position(|m| m.mount_point == "/mnt/t/inner")
        .unwrap();
    assert!(t_index < inner_index, "mounts out of order");
}

#[test]
fn bind_mount_read_only() {
    let mut sb = Sandbox::new("bindro");
    let src = sb.scratch("bindsrc");
    fs::write(src.join("hello"), "from-host\n").unwrap();
    sb.add_mount(
        json!({"destination": "/mnt/b", "type": "bind", "source": src, "options": ["bind", "ro"]}),
    );
    let out = sb.run_script(
        "cat /mnt/b/hello; touch /mnt/b/new 2>/dev/null && echo writable || echo read-only; \
         grep ' /mnt/b ' /proc/self/mountinfo",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "from-host");
    assert_eq!(lines[1], "read-only");
    let mounts = parse_mountinfo(&out);
    assert!(has(&mount_at(&mounts, "/mnt/b").mount_options, "ro"));
    assert!(!src.join("new").exists());
}

#[test]
fn bind_mount_read_write_reaches_the_host() {
    let mut sb = Sandbox::new("bindrw");
    let src = sb.scratch("bindsrc");
    sb.add_mount(
        json!({"destination": "/mnt/w", "type": "none", "source": src, "options": ["rbind", "rw"]}),
    );
    sb.run_script("echo written > /mnt/w/out");
    assert_eq!(
        fs::read_to_string(src.join("out")).unwrap().trim(),
        "written"
    );
}

/// A tmpfs mounted at `dir/sub`, a submount under a bind source (the sandbox that owns
/// `dir` unmounts it on drop).
fn tmpfs_submount(dir: &std::path::Path) -> std::path::PathBuf {
    let sub = dir.join("sub");
    fs::create_dir(&sub).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .expect("mount a tmpfs submount");
    sub
}

#[test]
fn recursive_read_only_reaches_submounts() {
    let mut sb = Sandbox::new("rro");
    let src = sb.scratch("rrosrc");
    tmpfs_submount(&src);
    sb.add_mount(
        json!({"destination": "/mnt/r", "type": "bind", "source": src,
        "options": ["rbind", "rro", "rnosuid", "rnoexec"]}),
    );
    let out = sb.run_script(
        "touch /mnt/r/sub/x 2>/dev/null && echo sub-writable || echo sub-read-only; \
         touch /mnt/r/y 2>/dev/null && echo top-writable || echo top-read-only; \
         cat /proc/self/mountinfo",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["sub-read-only", "top-read-only"]);
    let mounts = parse_mountinfo(&out);
    for point in ["/mnt/r", "/mnt/r/sub"] {
        let options = &mount_at(&mounts, point).mount_options;
        for opt in ["ro", "nosuid", "noexec"] {
            assert!(has(options, opt), "{point} lacks {opt}: {options:?}");
        }
    }
}

#[test]
fn propagation_flags_per_mount() {
    use nix::mount::{mount, MsFlags};
    let mut sb = Sandbox::new("propagation");
    let src = sb.scratch("propsrc");
    // A shared host mount as the bind source, so that "slave" has a master to follow.
    // The sandbox unmounts it on drop.
    mount(
        Some("tmpfs"),
        &src,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    )
    .expect("mount the source tmpfs");
    mount(
        None::<&str>,
        &src,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
    .expect("make the source shared");
    for (dest, flag) in [
        ("/mnt/shared", "shared"),
        ("/mnt/slave", "slave"),
        ("/mnt/private", "private"),
        ("/mnt/unbindable", "unbindable"),
    ] {
        sb.add_mount(
            json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", flag]}),
        );
    }
    let out = sb.run_script("cat /proc/self/mountinfo");
    let mounts = parse_mountinfo(&out);
    let fields = |point: &str| mount_at(&mounts, point).optional_fields.clone();
    let has_prefix = |fields: &[String], prefix: &str| fields.iter().any(|f| f.starts_with(prefix));
    let shared = fields("/mnt/shared");
    assert!(has_prefix(&shared, "shared:"), "/mnt/shared: {shared:?}");
    let slave = fields("/mnt/slave");
    assert!(has_prefix(&slave, "master:"), "/mnt/slave: {slave:?}");
    assert!(!has_prefix(&slave, "shared:"), "/mnt/slave: {slave:?}");
    let private = fields("/mnt/private");
    assert!(private.is_empty(), "/mnt/private: {private:?}");
    let unbindable = fields("/mnt/unbindable");
    assert_eq!(unbindable, ["unbindable"], "/mnt/unbindable");
}

#[test]
fn rootfs_propagation_private() {
    let mut sb = Sandbox::new("rootprop");
    sb.config["linux"]["rootfsPropagation"] = json!("private");
    let out = sb.run_script("cat /proc/self/mountinfo");
    let root = mount_at(&parse_mountinfo(&out), "/").clone();
    assert!(root.optional_fields.is_empty(), "private root: {root:?}");
}

#[test]
fn rootfs_propagation_shared() {
    runc_diverges(
        "runc 1.1.5 makes the rootfs parent private, so a shared rootfsPropagation is lost",
        || {
            let mut sb = Sandbox::new("rootpropshared");
            sb.config["linux"]["rootfsPropagation"] = json!("shared");
            let out = sb.run_script("cat /proc/self/mountinfo");
            let root = mount_at(&parse_mountinfo(&out), "/").clone();
            assert!(
                root.optional_fields
                    .iter()
                    .any(|f| f.starts_with("shared:")),
                "shared root: {root:?}"
            );
        },
    );
}

#[test]
fn readonly_root() {
    let mut sb = Sandbox::new("roroot");
    sb.config["root"]["readonly"] = json!(true);
    let out = sb.run_script(
        "touch /newfile 2>/dev/null && echo writable || echo read-only; cat /proc/self/mountinfo",
    );
    assert_eq!(out.lines().next(), Some("read-only"));
    assert!(has(
        &mount_at(&parse_mountinfo(&out), "/").mount_options,
        "ro"
    ));
    assert!(!sb.rootfs.join("newfile").exists());
}

#[test]
fn no_pivot_still_confines_to_the_rootfs() {
    let mut sb = Sandbox::new("nopivot");
    fs::write(sb.rootfs.join("marker-in-rootfs"), "x").unwrap();
    sb.set_script("ls /marker-in-rootfs && ls / | wc -l");
    let id = sb.new_id("nopivot");
    let out = sb.run(&id, &["--no-pivot"]).ok();
    assert!(out.stdout.contains("/marker-in-rootfs"), "{}", out.stdout);
    sb.assert_nothing_left(&id);
}

/// (kind, major, minor) for `ls -l` device lines, or the symlink target.
fn ls_dev(listing: &str, name: &str) -> String {
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 3 {
            continue;
        }
        if let Some(pos) = fields.iter().position(|f| *f == "->") {
            if pos > 0 && fields[pos - 1] == name {
                return format!("-> {}", fields.get(pos + 1).unwrap_or(&""));
            }
            continue;
        }
        if fields.last() != Some(&name) {
            continue;
        }
        let kind = &fields[0][..1];
        if kind == "c" || kind == "b" {
            let major = fields[4].trim_end_matches(',');
            return format!("{} {kind} {major} {}", fields[0], fields[5]);
        }
        return fields[0].to_string();
    }
    panic!("/dev/{name} missing from:\n{listing}");
}

#[test]
fn dev_has_the_default_devices_and_links() {
    let mut sb = Sandbox::new("devdefault");
    let out = sb.run_script("ls -l /dev");
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        assert_eq!(
            ls_dev(&out, name),
            format!("crw-rw-rw- c {major} {minor}"),
            "/dev/{name}"
        );
    }
    assert_eq!(ls_dev(&out, "ptmx"), "-> pts/ptmx");
    assert_eq!(ls_dev(&out, "fd"), "-> /proc/self/fd");
    assert_eq!(ls_dev(&out, "stdin"), "-> /proc/self/fd/0");
    assert_eq!(ls_dev(&out, "stdout"), "-> /proc/self/fd/1");
    assert_eq!(ls_dev(&out, "stderr"), "-> /proc/self/fd/2");
    assert!(ls_dev(&out, "pts").starts_with('d'));
    assert!(
        !out.contains(" console"),
        "/dev/console without a terminal:\n{out}"
    );
}

#[test]
fn linux_devices_are_created() {
    let mut sb = Sandbox::new("devices");
    sb.config["linux"]["devices"] = json!([
        {"path": "/dev/berth-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 1000},
        {"path": "/dev/berth-loop", "type": "b", "major": 7, "minor": 0, "fileMode": 0o600},
    ]);
    let out = sb.run_script("ls -ln /dev/berth-null /dev/berth-loop");
    let null_line = out
        .lines()
        .find(|l| l.ends_with("berth-null"))
        .expect("berth-null listed");
    let fields: Vec<&str> = null_line.split_whitespace().collect();
    assert_eq!(fields[0], "crw-r-----");
    assert_eq!((fields[2], fields[3]), ("1000", "1000"));
    assert_eq!((fields[4], fields[5]), ("1,", "3"));
    let loop_line = out
        .lines()
        .find(|l| l.ends_with("berth-loop"))
        .expect("berth-loop listed");
    let fields: Vec<&str> = loop_line.split_whitespace().collect();
    assert_eq!(fields[0], "brw-------");
    assert_eq!((fields[4], fields[5]), ("7,", "0"));
}

#[test]
fn masked_paths_read_empty() {
    let mut sb = Sandbox::new("masked");
    fs::write(sb.rootfs.join("etc/secret"), "do-not-show\n").unwrap();
    fs::create_dir(sb.rootfs.join("secretdir")).unwrap();
    fs::write(sb.rootfs.join("secretdir/inside"), "hidden\n").unwrap();
    sb.config["linux"]["maskedPaths"] = json!([
        "/etc/secret",
        "/secretdir",
        "/proc/cpuinfo",
        "/does/not/exist"
    ]);
    let out = sb.run_script(
        "echo \"[$(cat /etc/secret)]\"; echo \"[$(ls /secretdir)]\"; wc -c < /proc/cpuinfo",
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["[]", "[]", "0"]);
}

#[test]
fn readonly_paths_refuse_writes() {
    let mut sb = Sandbox::new("readonlypaths");
    fs::create_dir(sb.rootfs.join("rodir")).unwrap();
    sb.config["linux"]["readonlyPaths"] = json!(["/rodir", "/proc/sys"]);
    let out = sb.run_script(
        "touch /rodir/x 2>/dev/null && echo writable || echo read-only; \
         echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo writable || echo read-only; \
         touch /tmp/ok && echo tmp-writable",
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["read-only", "read-only", "tmp-writable"]
    );
}

#[test]
fn tmpcopyup_copies_the_image_content() {
    let mut sb = Sandbox::new("tmpcopyup");
    sb.add_mount(
        json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
        "options": ["rw", "nosuid", "nodev", "tmpcopyup"]}),
    );
    let out = sb.run_script(
        "grep ' /etc ' /proc/self/mountinfo; cat /etc/passwd | head -1; touch /etc/new",
    );
    assert!(out.contains(" - tmpfs "), "{out}");
    assert!(out.contains("root:x:0:0"), "{out}");
    assert!(
        !sb.rootfs.join("etc/new").exists(),
        "wrote through the tmpfs to the image"
    );
}

#[test]
fn sysctls_are_set() {
    let mut sb = Sandbox::new("sysctl");
    sb.config["linux"]["sysctl"] = json!({
        "net.ipv4.ip_unprivileged_port_start": "123",
        "kernel.msgmax": "12345",
    });
    let out =
        sb.run_script("cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/msgmax");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["123", "12345"]);
}

#[test]
fn hostname_is_set() {
    let mut sb = Sandbox::new("hostname");
    sb.config["hostname"] = json!("berth-test-host");
    let out = sb.run_script("hostname; cat /proc/sys/kernel/hostname");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["berth-test-host", "berth-test-host"]
    );
}

#[test]
fn domainname_is_set() {
    runc_diverges("runc 1.1.5 ignores the domainname field", || {
        let mut sb = Sandbox::new("domainname");
        sb.config["domainname"] = json!("berth.example");
        let out = sb.run_script("cat /proc/sys/kernel/domainname");
        assert_eq!(out.trim(), "berth.example");
    });
}

/// A bind source holding a file owned by root and one owned by uid/gid 1000, and a tmpfs
/// submount with a root-owned file (the sandbox unmounts it on drop).
fn owned_files_source(sb: &mut Sandbox, name: &str) -> std::path::PathBuf {
    use std::os::unix::fs::chown;
    let src = sb.scratch(name);
    fs::write(src.join("root-file"), "").unwrap();
    fs::write(src.join("u1000"), "").unwrap();
    chown(src.join("u1000"), Some(1000), Some(1000)).unwrap();
    let sub = tmpfs_submount(&src);
    fs::write(sub.join("sub-file"), "").unwrap();
    src
}

fn mapping(container: u32, host: u32, size: u32) -> serde_json::Value {
    json!([{"containerID": container, "hostID": host, "size": size}])
}

/// `stat -c '%u:%g %n'` of the files `owned_files_source` made, as the container sees them.
const OWNERS: &str = "cd /data && stat -c '%u:%g %n' root-file u1000 sub/sub-file";

/// An idmapped bind (no user namespace): on-disk root shows as the mapping's host id, an id
/// the mapping leaves out as the overflow id; `idmap` leaves the submount of an rbind as it
/// is, `ridmap` maps it too. The host's files keep their owners.
#[test]
fn idmapped_bind_shows_mapped_owners() {
    for (option, sub_owner) in [("idmap", "0:0"), ("ridmap", "1000:1000")] {
        let mut sb = Sandbox::new("idmap");
        let src = owned_files_source(&mut sb, "idmapsrc");
        sb.add_mount(json!({
            "destination": "/data", "type": "bind", "source": src, "options": ["rbind", option],
            "uidMappings": mapping(0, 1000, 1), "gidMappings": mapping(0, 1000, 1)
        }));
        let out = sb.run_script(OWNERS);
        let owners: Vec<&str> = out.lines().collect();
        assert_eq!(
            owners,
            [
                "1000:1000 root-file",
                "65534:65534 u1000",
                &format!("{sub_owner} sub/sub-file")
            ],
            "{option}"
        );
        use std::os::unix::fs::MetadataExt;
        let host = fs::metadata(src.join("root-file")).unwrap();
        assert_eq!(
            (host.uid(), host.gid()),
            (0, 0),
            "the host's file is untouched"
        );
    }
}

/// The Kubernetes user-namespace case: a container in its own user namespace (0 is host
/// 100000) with a volume idmapped the same way sees the volume's owners as they are on disk,
/// and what its root creates is owned by root on disk.
#[test]
fn idmapped_bind_in_a_user_namespace_keeps_owners() {
    let mut sb = Sandbox::new("idmapuserns");
    let src = owned_files_source(&mut sb, "idmapnssrc");
    if let Some(ns) = sb.config["linux"]["namespaces"].as_array_mut() {
        ns.push(json!({"type": "user"}));
    }
    sb.config["linux"]["uidMappings"] = mapping(0, 100000, 65536);
    sb.config["linux"]["gidMappings"] = mapping(0, 100000, 65536);
    // A cgroup filesystem cannot be mounted from an unprivileged user namespace.
    if let Some(mounts) = sb.config["mounts"].as_array_mut() {
        mounts.retain(|m| m["type"] != json!("cgroup"));
    }
    // The rootfs is host root's: the namespace's root may not make the mount point.
    fs::create_dir(sb.rootfs.join("data")).unwrap();
    sb.add_mount(json!({
        "destination": "/data", "type": "bind", "source": src, "options": ["rbind", "ridmap"],
        "uidMappings": mapping(0, 100000, 65536), "gidMappings": mapping(0, 100000, 65536)
    }));
    let out = sb.run_script(&format!("{OWNERS}; touch /data/made-inside"));
    let owners: Vec<&str> = out.lines().collect();
    assert_eq!(
        owners,
        ["0:0 root-file", "1000:1000 u1000", "0:0 sub/sub-file"]
    );
    use std::os::unix::fs::MetadataExt;
    let made = fs::metadata(src.join("made-inside")).unwrap();
    assert_eq!((made.uid(), made.gid()), (0, 0), "owner on disk");
}

/// Mappings without idmap's conditions: a one-line error and nothing left behind.
#[test]
fn bad_idmapped_mounts_fail_cleanly() {
    let map = mapping(0, 1000, 1);
    let cases = [
        (
            json!({"destination": "/data", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]}),
            "uidMappings",
        ),
        (
            json!({"destination": "/data", "type": "bind", "source": "/tmp", "options": ["bind"], "uidMappings": map}),
            "go together",
        ),
        (
            json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "uidMappings": map, "gidMappings": map}),
            "bind mounts",
        ),
    ];
    for (mount, needle) in cases {
        let mut sb = Sandbox::new("idmapbad");
        sb.add_mount(mount);
        sb.set_script("true");
        let id = sb.new_id("idmapbad");
        sb.run(&id, &[]).one_line_error(&[needle]);
        sb.assert_nothing_left(&id);
    }
}
