//! config.md: version, root, mounts, process (terminal, cwd, env, args, rlimits, user,
//! capabilities, noNewPrivileges, oomScoreAdj, ioPriority, scheduler, apparmor,
//! selinux), hostname, domainname, annotations, extensibility and valid values.

use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::{t, Test};
use crate::console::ConsoleSocket;
use crate::harness::{add_mount, Report, Sandbox};
use crate::outcome::{skip, Context, TestResult};
use crate::{check, check_eq, fail};

pub fn tests() -> Vec<Test> {
    vec![
        t(
            "config.md/version: a config without the REQUIRED ociVersion MUST be rejected",
            missing_oci_version,
        ),
        t(
            "config.md/extensibility: unknown properties MUST be ignored, not an error",
            unknown_properties,
        ),
        t(
            "config.md/annotations: an unknown annotation key MUST NOT be an error",
            unknown_annotations,
        ),
        t(
            "config.md/root/path: an absolute path is the rootfs",
            root_absolute_path,
        ),
        t(
            "config.md/root/path: a path relative to the bundle is the rootfs",
            root_relative_path,
        ),
        t(
            "config.md/root/path: a rootfs that does not exist MUST be an error",
            root_missing,
        ),
        t(
            "config.md/root/readonly: true MUST make the root filesystem read-only",
            root_readonly,
        ),
        t(
            "config.md/mounts: MUST be mounted in the listed order",
            mounts_in_order,
        ),
        t(
            "config.md/mounts: type, source and options are applied",
            mount_options_applied,
        ),
        t(
            "config.md/mounts: a bind mount shows the host directory",
            bind_mount,
        ),
        t(
            "config.md/mounts: a ro bind mount is read-only",
            bind_mount_readonly,
        ),
        t(
            "config.md/mounts: a file can be bind-mounted",
            bind_mount_file,
        ),
        t(
            "config.md/mounts: rro makes a bind mount and its submounts read-only",
            bind_mount_rro,
        ),
        t(
            "config.md/mounts: a relative destination MUST be relative to /",
            mount_relative_destination,
        ),
        t(
            "config.md/mounts: a relative bind source is relative to the bundle",
            bind_source_relative,
        ),
        t(
            "config.md/mounts/options: every MUST option string is accepted",
            mount_options_accepted,
        ),
        t(
            "config.md/mounts/options: noatime, nodiratime, ro are applied",
            mount_options_atime,
        ),
        t(
            "config.md/mounts/options: sync, dirsync, lazytime reach the superblock",
            mount_options_superblock,
        ),
        t(
            "config.md/mounts/options: nosymfollow (SHOULD)",
            mount_option_nosymfollow,
        ),
        t(
            "config.md/mounts/options: rnosuid, rnoexec apply to submounts (SHOULD)",
            mount_options_recursive,
        ),
        t(
            "config.md/mounts/options: runbindable and shared set bind propagation",
            mount_options_propagation,
        ),
        t(
            "config.md/process/terminal: consoleSize MUST be ignored without a terminal",
            console_size_ignored,
        ),
        t(
            "config.md/process/terminal: true MUST connect stdio to a pseudoterminal",
            terminal_true,
        ),
        t(
            "config.md/process/terminal: false leaves stdio as given (not a terminal)",
            terminal_false,
        ),
        t(
            "config.md/process/cwd: the process runs in cwd",
            cwd_applied,
        ),
        t(
            "config.md/process/cwd: MUST be an absolute path (relative is an error)",
            cwd_relative_rejected,
        ),
        t(
            "config.md/process/env: the environment is exactly env",
            env_applied,
        ),
        t(
            "config.md/process/args: args are passed and args[0] is looked up like execvp",
            args_execvp,
        ),
        t(
            "config.md/process/args: at least one entry is REQUIRED",
            args_empty_rejected,
        ),
        t(
            "config.md/process/rlimits: soft and hard MUST match getrlimit",
            rlimits_applied,
        ),
        t(
            "config.md/process/rlimits: duplicated types MUST be an error",
            rlimits_duplicate_rejected,
        ),
        t(
            "config.md/process/rlimits: a type with no kernel interface MUST be an error",
            rlimits_unknown_rejected,
        ),
        t("config.md/process/user: uid and gid are applied", user_ids),
        t(
            "config.md/process/user: additionalGids are the supplementary groups",
            user_additional_gids,
        ),
        t("config.md/process/user: umask is applied", user_umask),
        t(
            "config.md/process/user: without umask the umask is not changed",
            user_umask_unset,
        ),
        t(
            "config.md/process/capabilities: bounding and inheritable sets are applied",
            capabilities_root,
        ),
        t(
            "config.md/process/capabilities: ambient, permitted, effective for a non-root user",
            capabilities_ambient,
        ),
        t(
            "config.md/process/capabilities: an unknown capability SHOULD NOT fail, MUST warn",
            capabilities_unknown,
        ),
        t(
            "config.md/process/noNewPrivileges: true sets no_new_privs",
            no_new_privileges_true,
        ),
        t(
            "config.md/process/noNewPrivileges: false leaves no_new_privs unset",
            no_new_privileges_false,
        ),
        t(
            "config.md/process/oomScoreAdj: MUST be set to the given value",
            oom_score_adj_set,
        ),
        t(
            "config.md/process/oomScoreAdj: unset MUST NOT change oom_score_adj",
            oom_score_adj_unset,
        ),
        t(
            "config.md/process/ioPriority: class and priority are applied",
            io_priority,
        ),
        t(
            "config.md/process/scheduler: policy and nice are applied",
            scheduler,
        ),
        t(
            "config.md/process/apparmorProfile: the profile is applied",
            apparmor_profile,
        ),
        t(
            "config.md/process/selinuxLabel: the label is applied",
            selinux_label,
        ),
        t("config.md/hostname: the container's hostname", hostname),
        t(
            "config.md/domainname: the container's domainname",
            domainname,
        ),
    ]
}

// "ociVersion (string, REQUIRED)"; "Runtimes ... MUST generate an error when invalid or
// unsupported values are encountered."
fn missing_oci_version(sb: &mut Sandbox) -> TestResult {
    if let Some(map) = sb.config.as_object_mut() {
        map.remove("ociVersion");
    }
    sb.expect_create_error()
}

// "Runtimes that are reading or processing this configuration file MUST NOT generate an error
// if they encounter an unknown property. Instead they MUST ignore unknown properties."
fn unknown_properties(sb: &mut Sandbox) -> TestResult {
    sb.config["org.example.conformance"] = json!({"nested": [1, 2]});
    sb.config["process"]["org.example.unknown"] = json!(true);
    sb.config["linux"]["org.example.unknown"] = json!("x");
    let report = sb.run_checker(&["print:ran"])?;
    report.get("ran")?;
    Ok(())
}

// "Implementations that are reading/processing this configuration file MUST NOT generate an
// error if they encounter an unknown annotation key."
fn unknown_annotations(sb: &mut Sandbox) -> TestResult {
    sb.config["annotations"] = json!({"org.example.never-heard-of-it": "1", "x": ""});
    sb.run_checker(&["print:ran"])?.get("ran")?;
    Ok(())
}

fn root_marker(sb: &Sandbox) -> TestResult {
    fs::write(sb.rootfs().join("root-marker"), "this-rootfs\n").ctx(|| "write root-marker".into())
}

// "path (string, REQUIRED) Specifies the path to the root filesystem for the container. ...
// either an absolute path or a relative path to the bundle."
fn root_absolute_path(sb: &mut Sandbox) -> TestResult {
    root_marker(sb)?;
    sb.config["root"]["path"] = json!(sb.rootfs().display().to_string());
    let report = sb.run_checker(&["read:/root-marker"])?;
    check_eq!(
        report.get("read:/root-marker")?,
        "this-rootfs",
        "marker file in /"
    );
    Ok(())
}

fn root_relative_path(sb: &mut Sandbox) -> TestResult {
    root_marker(sb)?;
    sb.config["root"]["path"] = json!("rootfs");
    let report = sb.run_checker(&["read:/root-marker"])?;
    check_eq!(
        report.get("read:/root-marker")?,
        "this-rootfs",
        "marker file in /"
    );
    Ok(())
}

fn root_missing(sb: &mut Sandbox) -> TestResult {
    sb.config["root"]["path"] = json!("no-such-rootfs");
    sb.expect_create_error()
}

// "readonly (bool, OPTIONAL) If true then the root filesystem MUST be read-only inside the container."
fn root_readonly(sb: &mut Sandbox) -> TestResult {
    sb.config["root"]["readonly"] = json!(true);
    let report = sb.run_checker(&["create:/new-file", "create:/tmp/new-file"])?;
    check_eq!(
        report.get("create:/new-file")?,
        "error=EROFS",
        "creating a file in /"
    );
    Ok(())
}

/// The fields of one mountinfo line that the tests compare.
#[derive(Clone)]
struct MountLine {
    id: String,
    parent: String,
    point: String,
    options: String,
    fstype: String,
    super_options: String,
    /// Propagation fields (shared:N, master:N, unbindable).
    optional: String,
}

fn parse_mounts(report: &Report) -> Vec<MountLine> {
    report
        .all("mount")
        .iter()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(MountLine {
                id: f.first()?.to_string(),
                parent: f.get(1)?.to_string(),
                point: f.get(4)?.to_string(),
                options: f.get(5)?.to_string(),
                fstype: r.first()?.to_string(),
                super_options: r.get(2).unwrap_or(&"").to_string(),
                optional: f.get(6..).map(|o| o.join(" ")).unwrap_or_default(),
            })
        })
        .collect()
}

/// The last (topmost) mount at a mount point.
fn mount_at<'a>(mounts: &'a [MountLine], point: &str) -> TestResult<&'a MountLine> {
    match mounts.iter().rev().find(|m| m.point == point) {
        Some(m) => Ok(m),
        None => fail!("nothing is mounted at {point} in the container"),
    }
}

fn container_mounts(sb: &mut Sandbox, extra: &[&str]) -> TestResult<(Vec<MountLine>, Report)> {
    let mut probes = vec!["mounts"];
    probes.extend_from_slice(extra);
    let report = sb.run_checker(&probes)?;
    Ok((parse_mounts(&report), report))
}

// "The runtime MUST mount entries in the listed order."
fn mounts_in_order(sb: &mut Sandbox) -> TestResult {
    add_mount(
        &mut sb.config,
        json!({"destination": "/mnt/outer", "type": "tmpfs", "source": "tmpfs"}),
    );
    add_mount(
        &mut sb.config,
        json!({"destination": "/mnt/outer/inner", "type": "tmpfs", "source": "tmpfs"}),
    );
    let (mounts, _) = container_mounts(sb, &[])?;
    let outer = mount_at(&mounts, "/mnt/outer")?;
    let inner = mount_at(&mounts, "/mnt/outer/inner")?;
    check_eq!(
        inner.parent,
        outer.id,
        "parent of /mnt/outer/inner (must sit on /mnt/outer)"
    );
    Ok(())
}

// "type: the type of the filesystem to be mounted"; "options: mount options of the filesystem".
fn mount_options_applied(sb: &mut Sandbox) -> TestResult {
    add_mount(
        &mut sb.config,
        json!({"destination": "/mnt/opts", "type": "tmpfs", "source": "conformance-tmpfs",
               "options": ["nosuid", "nodev", "noexec", "mode=700", "size=1m"]}),
    );
    let (mounts, report) = container_mounts(sb, &["stat:/mnt/opts"])?;
    let m = mount_at(&mounts, "/mnt/opts")?;
    check_eq!(m.fstype, "tmpfs", "filesystem type at /mnt/opts");
    for flag in ["nosuid", "nodev", "noexec"] {
        check!(
            m.options.split(',').any(|o| o == flag),
            "/mnt/opts lacks {flag}: {}",
            m.options
        );
    }
    check!(
        m.super_options.contains("size=1024k"),
        "/mnt/opts lacks size=1m: {}",
        m.super_options
    );
    let stat = report.get("stat:/mnt/opts")?;
    check!(
        stat.contains("mode=0700"),
        "/mnt/opts: expected mode 0700, got {stat}"
    );
    Ok(())
}

fn shared_host_dir(sb: &Sandbox) -> TestResult<String> {
    let dir = sb.dir.join("host-share");
    fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
    fs::write(dir.join("hello"), "from-host\n").ctx(|| "write host-share/hello".into())?;
    Ok(dir.display().to_string())
}

/// `shared_host_dir` with a tmpfs mounted on its `sub` directory, for the recursive mount
/// options (unmounted by the sandbox's cleanup). Returns (source, sub).
fn shared_host_dir_with_submount(sb: &Sandbox) -> TestResult<(String, std::path::PathBuf)> {
    let source = shared_host_dir(sb)?;
    let sub = sb.dir.join("host-share/sub");
    fs::create_dir_all(&sub).ctx(|| "create host-share/sub".into())?;
    let sub_c = std::ffi::CString::new(sub.display().to_string()).ctx(|| "path".into())?;
    // SAFETY: valid C strings; a tmpfs on a directory of our own sandbox.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            sub_c.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    check!(
        rc == 0,
        "mount a tmpfs on {}: {}",
        sub.display(),
        std::io::Error::last_os_error()
    );
    Ok((source, sub))
}

fn bind_mount(sb: &mut Sandbox) -> TestResult {
    let source = shared_host_dir(sb)?;
    add_mount(
        &mut sb.config,
        json!({"destination": "/mnt/share", "type": "bind", "source": source, "options": ["rbind"]}),
    );
    let report = sb.run_checker(&["read:/mnt/share/hello", "create:/mnt/share/from-container"])?;
    check_eq!(
        report.get("read:/mnt/share/hello")?,
        "from-host",
        "file seen through the bind mount"
    );
    check!(
        sb.dir.join("host-share/from-container").exists(),
        "a file made in the bind mount is not on the host"
    );
    Ok(())
}

fn bind_mount_readonly(sb: &mut Sandbox) -> TestResult {
    let source = shared_host_dir(sb)?;
    add_mount(
        &mut sb.config,
        json!({"destination": "/mnt/share", "type": "bind", "source": source, "options": ["rbind", "ro"]}),
    );
    let report = sb.run_checker(&["read:/mnt/share/hello", "create:/mnt/share/from-container"])?;
    check_eq!(
        report.get("read:/mnt/share/hello")?,
        "from-host",
        "file seen through the bind mount"
    );
    check_eq!(
        report.get("create:/mnt/share/from-container")?,
        "error=EROFS",
        "creating a file in a ro bind"
    );
    Ok(())
}

fn bind_mount_file(sb: &mut Sandbox) -> TestResult {
    let source = sb.dir.join("host-file");
    fs::write(&source, "single file\n").ctx(|| "write host-file".into())?;
    add_mount(
        &mut sb.config,
        json!({"destination": "/etc/conformance-file", "type": "bind",
               "source": source.display().to_string(), "options": ["bind"]}),
    );
    let report = sb.run_checker(&["read:/etc/conformance-file", "stat:/etc/conformance-file"])?;
    check_eq!(
        report.get("read:/etc/conformance-file")?,
        "single file",
        "bind-mounted file"
    );
    check!(
        report
            .get("stat:/etc/conformance-file")?
            .starts_with("type=f"),
        "the destination is not a file"
    );
    Ok(())
}

// Linux mount options: "rro: Recursive read-only ... applied to all submounts" (Linux 5.12+).
fn bind_mount_rro(sb: &mut Sandbox) -> TestResult {
    let (source, sub) = shared_host_dir_with_submount(sb)?;
    add_mount(
        &mut sb.config,
        json!({"destination": "/mnt/share", "type": "bind", "source": source, "options": ["rbind", "rro"]}),
    );
    fs::write(sub.join("marker"), "in-submount\n").ctx(|| "write the submount marker".into())?;
    let report = sb.run_checker(&[
        "read:/mnt/share/sub/marker",
        "create:/mnt/share/top",
        "create:/mnt/share/sub/below",
    ])?;
    // The submount must be there (rbind), so its read-only state comes from rro itself.
    check_eq!(
        report.get("read:/mnt/share/sub/marker")?,
        "in-submount",
        "file on the submount"
    );
    check_eq!(
        report.get("create:/mnt/share/top")?,
        "error=EROFS",
        "creating a file in the rro mount"
    );
    check_eq!(
        report.get("create:/mnt/share/sub/below")?,
        "error=EROFS",
        "creating a file in its submount"
    );
    Ok(())
}

// "destination ... For compatibility with old tools and configurations, it MAY be a relative
// path, in which case it MUST be interpreted as relative to "/"."
fn mount_relative_destination(sb: &mut Sandbox) -> TestResult {
    add_mount(
        &mut sb.config,
        json!({"destination": "mnt/relative", "type": "tmpfs", "source": "tmpfs"}),
    );
    let (mounts, _) = container_mounts(sb, &[])?;
    mount_at(&mounts, "/mnt/relative")?;
    Ok(())
}

// "Path values for bind mounts are either absolute or relative to the bundle."
fn bind_source_relative(sb: &mut Sandbox) -> TestResult {
    let dir = sb.bundle.join("bundle-share");
    fs::create_dir_all(&dir).ctx(|| "create bundle-share".into())?;
    fs::write(dir.join("hello"), "from-bundle\n").ctx(|| "write bundle-share/hello".into())?;
    add_mount(
        &mut sb.config,
        json!({"destination": "/mnt/rel", "type": "bind", "source": "bundle-share", "options": ["rbind"]}),
    );
    let report = sb.run_checker(&["read:/mnt/rel/hello"])?;
    check_eq!(
        report.get("read:/mnt/rel/hello")?,
        "from-bundle",
        "file seen through the relative bind source"
    );
    Ok(())
}

/// A tmpfs at /mnt/opts with these options; the container's mountinfo line for it.
fn tmpfs_with(
    sb: &mut Sandbox,
    options: &[&str],
    extra: &[&str],
) -> TestResult<(MountLine, Report)> {
    add_mount(
        &mut sb.config,
        json!({"destination": "/mnt/opts", "type": "tmpfs", "source": "tmpfs", "options": options}),
    );
    let (mounts, report) = container_mounts(sb, extra)?;
    let line = mount_at(&mounts, "/mnt/opts")?;
    let line = line.clone();
    Ok((line, report))
}

fn has_option(list: &str, option: &str) -> bool {
    list.split(',').any(|o| o == option)
}

// Linux mount options: async, atime, defaults, dev, diratime, exec, iversion, loud, noiversion,
// nolazytime, norelatime, nostrictatime, rw, silent, suid ... are MUST. (remount is MUST too,
// but it only means something on an existing mount, which a fresh destination is not.)
fn mount_options_accepted(sb: &mut Sandbox) -> TestResult {
    let options = [
        "async",
        "atime",
        "defaults",
        "dev",
        "diratime",
        "exec",
        "iversion",
        "loud",
        "noiversion",
        "nolazytime",
        "norelatime",
        "nostrictatime",
        "silent",
        "suid",
        "relatime",
        "strictatime",
        "rw",
    ];
    // One container per option, so the report names every option the runtime refuses.
    let base = sb.config.clone();
    let mut refused = Vec::new();
    for option in options {
        sb.config = base.clone();
        if let Err(why) = tmpfs_with(sb, &[option], &[]) {
            let why = why.to_string();
            refused.push(format!(
                "{option} ({})",
                why.chars().take(160).collect::<String>()
            ));
        }
    }
    sb.config = base;
    check!(
        refused.is_empty(),
        "options refused: {}",
        refused.join("; ")
    );
    Ok(())
}

fn mount_options_atime(sb: &mut Sandbox) -> TestResult {
    let (line, _) = tmpfs_with(sb, &["noatime", "nodiratime", "ro"], &[])?;
    for option in ["noatime", "nodiratime", "ro"] {
        check!(
            has_option(&line.options, option),
            "/mnt/opts lacks {option}: {}",
            line.options
        );
    }
    Ok(())
}

fn mount_options_superblock(sb: &mut Sandbox) -> TestResult {
    let (line, _) = tmpfs_with(sb, &["sync", "dirsync", "lazytime"], &[])?;
    for option in ["sync", "dirsync", "lazytime"] {
        check!(
            has_option(&line.super_options, option) || has_option(&line.options, option),
            "/mnt/opts lacks {option}: {} / {}",
            line.options,
            line.super_options
        );
    }
    Ok(())
}

fn mount_option_nosymfollow(sb: &mut Sandbox) -> TestResult {
    let (line, _) = tmpfs_with(sb, &["nosymfollow"], &[])?;
    check!(
        has_option(&line.options, "nosymfollow"),
        "/mnt/opts lacks nosymfollow: {}",
        line.options
    );
    Ok(())
}

// "rnosuid: Recursive nosuid", "rnoexec: Recursive noexec" (SHOULD, Linux 5.12+).
fn mount_options_recursive(sb: &mut Sandbox) -> TestResult {
    let (source, _sub) = shared_host_dir_with_submount(sb)?;
    add_mount(
        &mut sb.config,
        json!({"destination": "/mnt/share", "type": "bind", "source": source, "options": ["rbind", "rnosuid", "rnoexec"]}),
    );
    let (mounts, _) = container_mounts(sb, &[])?;
    for point in ["/mnt/share", "/mnt/share/sub"] {
        let line = mount_at(&mounts, point)?;
        for option in ["nosuid", "noexec"] {
            check!(
                has_option(&line.options, option),
                "{point} lacks {option}: {}",
                line.options
            );
        }
    }
    Ok(())
}

// "shared, runbindable ... MUST: Bind mount propagation".
fn mount_options_propagation(sb: &mut Sandbox) -> TestResult {
    let source = shared_host_dir(sb)?;
    add_mount(
        &mut sb.config,
        json!({"destination": "/mnt/unbindable", "type": "bind", "source": source.clone(), "options": ["rbind", "runbindable"]}),
    );
    add_mount(
        &mut sb.config,
        json!({"destination": "/mnt/shared", "type": "bind", "source": source, "options": ["rbind", "shared"]}),
    );
    let (mounts, _) = container_mounts(sb, &[])?;
    let unbindable = mount_at(&mounts, "/mnt/unbindable")?;
    check!(
        unbindable.optional.contains("unbindable"),
        "/mnt/unbindable is not unbindable: {:?}",
        unbindable.optional
    );
    let shared = mount_at(&mounts, "/mnt/shared")?;
    check!(
        shared.optional.contains("shared:"),
        "/mnt/shared is not shared: {:?}",
        shared.optional
    );
    Ok(())
}

// "Runtimes MUST ignore consoleSize if terminal is false or unset."
fn console_size_ignored(sb: &mut Sandbox) -> TestResult {
    sb.config["process"]["terminal"] = json!(false);
    sb.config["process"]["consoleSize"] = json!({"height": 31, "width": 97});
    let report = sb.run_checker(&["tty"])?;
    check_eq!(report.get("tty.1")?, "0", "stdout is a terminal");
    Ok(())
}

// "terminal (bool, OPTIONAL) specifies whether a terminal is attached to the process ...
// consoleSize ... specifies the console size in characters of the terminal."
// config-linux.md default devices: "/dev/console is set up if terminal is enabled".
fn terminal_true(sb: &mut Sandbox) -> TestResult {
    sb.config["process"]["terminal"] = json!(true);
    sb.config["process"]["consoleSize"] = json!({"height": 31, "width": 97});
    sb.checker_args(&["tty", "winsize", "stat:/dev/console"]);
    let socket_path = sb.dir.join("console.sock");
    let console = ConsoleSocket::listen(&socket_path, Duration::from_secs(15))
        .ctx(|| "listen on the console socket".into())?;
    let id = sb.new_id();
    let socket = socket_path.display().to_string();
    let out = sb.create_with(&id, &["--console-socket", &socket])?;
    check!(
        out.ok(),
        "create with a terminal failed: {}",
        out.describe()
    );
    sb.op_ok("start", &id)?;
    sb.wait_status(&id, "stopped")?;
    sb.op_ok("delete", &id)?;
    let text = console
        .output()
        .ctx(|| "read the container's terminal".into())?;
    let report = Report::parse(&text);
    for fd in 0..3 {
        check_eq!(
            report.get(&format!("tty.{fd}"))?,
            "1",
            format!("fd {fd} is a terminal")
        );
    }
    check_eq!(
        report.get("winsize")?,
        "31 97",
        "terminal rows and columns (consoleSize)"
    );
    let console_stat = report.get("stat:/dev/console")?;
    check!(
        console_stat.starts_with("type=c"),
        "/dev/console: expected a character device, got {console_stat}"
    );
    Ok(())
}

fn terminal_false(sb: &mut Sandbox) -> TestResult {
    let report = sb.run_checker(&["tty"])?;
    for fd in 0..3 {
        check_eq!(
            report.get(&format!("tty.{fd}"))?,
            "0",
            format!("fd {fd} is a terminal")
        );
    }
    Ok(())
}

// "cwd (string, REQUIRED) is the working directory that will be set for the executable."
fn cwd_applied(sb: &mut Sandbox) -> TestResult {
    fs::create_dir_all(sb.rootfs().join("home/user/work")).ctx(|| "create the cwd".into())?;
    sb.config["process"]["cwd"] = json!("/home/user/work");
    check_eq!(
        sb.run_checker(&["cwd"])?.get("cwd")?,
        "/home/user/work",
        "working directory"
    );
    Ok(())
}

// "This value MUST be an absolute path."
fn cwd_relative_rejected(sb: &mut Sandbox) -> TestResult {
    sb.config["process"]["cwd"] = json!("home/user");
    sb.expect_create_error()
}

// "env (array of strings, OPTIONAL) with the same semantics as IEEE Std 1003.1-2008's environ."
fn env_applied(sb: &mut Sandbox) -> TestResult {
    let env = [
        "PATH=/bin:/usr/bin",
        "CONFORMANCE_A=1",
        "CONFORMANCE_B=two words",
        "EMPTY=",
    ];
    sb.config["process"]["env"] = json!(env);
    let report = sb.run_checker(&["env"])?;
    let mut seen: Vec<&str> = report.all("env");
    seen.retain(|e| !e.starts_with("HOME="));
    seen.sort_unstable();
    let mut want = env.to_vec();
    want.sort_unstable();
    check_eq!(seen, want, "environment (HOME aside)");
    Ok(())
}

// "args ... with similar semantics to IEEE Std 1003.1-2008 execvp's argv ... at least one entry
// is REQUIRED, and that entry is used with the same semantics as execvp's file."
fn args_execvp(sb: &mut Sandbox) -> TestResult {
    sb.config["process"]["args"] = json!(["conformance-checker", "argv", "two words", ""]);
    let report = sb.run_checker_with_config()?;
    check_eq!(
        report.get("argv")?,
        "conformance-checker|argv|two words|",
        "argv"
    );
    Ok(())
}

fn args_empty_rejected(sb: &mut Sandbox) -> TestResult {
    sb.config["process"]["args"] = json!([]);
    sb.expect_create_error()
}

fn host_hard_limit(resource: libc::__rlimit_resource_t) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    unsafe { libc::getrlimit(resource, &mut limit) };
    limit.rlim_max
}

// "soft (uint64, REQUIRED) the value of the limit enforced for the corresponding resource.
// rlim.rlim_cur MUST match the configured value. hard ... rlim.rlim_max MUST match."
fn rlimits_applied(sb: &mut Sandbox) -> TestResult {
    if host_hard_limit(libc::RLIMIT_NOFILE) < 1024 || host_hard_limit(libc::RLIMIT_CORE) < 2048 {
        return skip("the host's hard NOFILE/CORE limits are below the test values");
    }
    sb.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
        {"type": "RLIMIT_CORE", "soft": 1024, "hard": 2048}
    ]);
    let report = sb.run_checker(&["rlimits"])?;
    check_eq!(
        report.get("rlimit.NOFILE")?,
        "512 1024",
        "RLIMIT_NOFILE soft hard"
    );
    check_eq!(
        report.get("rlimit.CORE")?,
        "1024 2048",
        "RLIMIT_CORE soft hard"
    );
    Ok(())
}

// "If rlimits contains duplicated entries with same type, the runtime MUST generate an error."
fn rlimits_duplicate_rejected(sb: &mut Sandbox) -> TestResult {
    sb.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
        {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512}
    ]);
    sb.expect_create_error()
}

// "the runtime MUST generate an error for any values which cannot be mapped to a relevant
// kernel interface."
fn rlimits_unknown_rejected(sb: &mut Sandbox) -> TestResult {
    sb.config["process"]["rlimits"] = json!([{"type": "RLIMIT_CONFORMANCE", "soft": 1, "hard": 1}]);
    sb.expect_create_error()
}

// "uid (int, REQUIRED) specifies the user ID in the container namespace. gid (int, REQUIRED)
// specifies the group ID in the container namespace."
fn user_ids(sb: &mut Sandbox) -> TestResult {
    sb.config["process"]["user"] = json!({"uid": 1000, "gid": 1001});
    let report = sb.run_checker(&["ids"])?;
    check_eq!(
        report.get("uid")?,
        "1000 1000 1000",
        "real, effective, saved uid"
    );
    check_eq!(
        report.get("gid")?,
        "1001 1001 1001",
        "real, effective, saved gid"
    );
    Ok(())
}

// "additionalGids (array of ints, OPTIONAL) specifies additional group IDs in the container
// namespace to be added to the process."
fn user_additional_gids(sb: &mut Sandbox) -> TestResult {
    sb.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20]});
    let report = sb.run_checker(&["ids"])?;
    let groups: Vec<&str> = report
        .get("groups")?
        .split(',')
        .filter(|g| !g.is_empty())
        .collect();
    for gid in ["10", "20"] {
        check!(
            groups.contains(&gid),
            "supplementary groups {groups:?} lack {gid}"
        );
    }
    for gid in &groups {
        check!(
            ["10", "20", "1000"].contains(gid),
            "unexpected supplementary group {gid} in {groups:?}"
        );
    }
    Ok(())
}

// "umask (int, OPTIONAL) is the user's file mode creation mask."
fn user_umask(sb: &mut Sandbox) -> TestResult {
    sb.config["process"]["user"]["umask"] = json!(0o077);
    check_eq!(sb.run_checker(&["umask"])?.get("umask")?, "0077", "umask");
    Ok(())
}

// "If unspecified, the umask should not be changed from the calling process' umask."
fn user_umask_unset(sb: &mut Sandbox) -> TestResult {
    check_eq!(
        sb.run_checker(&["umask"])?.get("umask")?,
        "0022",
        "umask (the runner's is 0022)"
    );
    Ok(())
}

/// Capability names by bit number (capabilities(7)), without the CAP_ prefix.
pub const CAP_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

fn cap_number(name: &str) -> TestResult<u32> {
    let short = name.trim_start_matches("CAP_");
    match CAP_NAMES.iter().position(|n| *n == short) {
        Some(i) => Ok(i as u32),
        None => fail!("unknown capability {name} in the test"),
    }
}

fn cap_mask(names: &[&str]) -> TestResult<u64> {
    let mut mask = 0u64;
    for name in names {
        mask |= 1u64 << cap_number(name)?;
    }
    Ok(mask)
}

fn reported_mask(report: &Report, key: &str) -> TestResult<u64> {
    let text = report.get(key)?;
    u64::from_str_radix(text, 16).ctx(|| format!("{key} {text:?} is not hex"))
}

// "bounding (array of strings, OPTIONAL) the bounding capabilities ... inheritable ...
// effective ... permitted ... ambient ..."
fn capabilities_root(sb: &mut Sandbox) -> TestResult {
    let bounding = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_AUDIT_WRITE",
        "CAP_SETUID",
        "CAP_SETGID",
    ];
    let effective = ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"];
    let inheritable = ["CAP_KILL"];
    sb.config["process"]["capabilities"] = json!({
        "bounding": bounding, "effective": effective, "permitted": effective, "inheritable": inheritable
    });
    let report = sb.run_checker(&["status"])?;
    check_eq!(
        reported_mask(&report, "CapBnd")?,
        cap_mask(&bounding)?,
        "CapBnd"
    );
    check_eq!(
        reported_mask(&report, "CapInh")?,
        cap_mask(&inheritable)?,
        "CapInh"
    );
    let eff = reported_mask(&report, "CapEff")?;
    let want = cap_mask(&effective)?;
    check!(
        eff & want == want,
        "CapEff {eff:#x} lacks configured effective caps {want:#x}"
    );
    check!(
        eff & !cap_mask(&bounding)? == 0,
        "CapEff {eff:#x} holds caps outside the bounding set"
    );
    check_eq!(reported_mask(&report, "CapAmb")?, 0, "CapAmb");
    Ok(())
}

fn capabilities_ambient(sb: &mut Sandbox) -> TestResult {
    let bounding = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_RAW",
    ];
    let kept = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let ambient = ["CAP_NET_BIND_SERVICE"];
    sb.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    sb.config["process"]["capabilities"] = json!({
        "bounding": bounding, "effective": kept, "permitted": kept, "inheritable": kept, "ambient": ambient
    });
    let report = sb.run_checker(&["status"])?;
    check_eq!(
        reported_mask(&report, "CapBnd")?,
        cap_mask(&bounding)?,
        "CapBnd"
    );
    check_eq!(
        reported_mask(&report, "CapInh")?,
        cap_mask(&kept)?,
        "CapInh"
    );
    check_eq!(
        reported_mask(&report, "CapAmb")?,
        cap_mask(&ambient)?,
        "CapAmb"
    );
    // After execve a non-root process keeps exactly its ambient set as permitted and effective.
    check_eq!(
        reported_mask(&report, "CapPrm")?,
        cap_mask(&ambient)?,
        "CapPrm"
    );
    check_eq!(
        reported_mask(&report, "CapEff")?,
        cap_mask(&ambient)?,
        "CapEff"
    );
    Ok(())
}

// "Any value which cannot be mapped to a relevant kernel interface, or cannot be granted
// otherwise MUST be logged as a warning by the runtime. Runtimes SHOULD NOT fail if the
// container configuration requests capabilities that cannot be granted."
fn capabilities_unknown(sb: &mut Sandbox) -> TestResult {
    let caps = json!(["CAP_KILL", "CAP_CONFORMANCE_UNKNOWN"]);
    sb.config["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    sb.checker_args(&["print:ran"]);
    let id = sb.new_id();
    let out = sb.create(&id)?;
    check!(
        out.ok(),
        "create failed on an unknown capability: {}",
        out.describe()
    );
    check!(
        out.stderr.contains("CAP_CONFORMANCE_UNKNOWN"),
        "no warning naming CAP_CONFORMANCE_UNKNOWN on stderr: {}",
        out.describe()
    );
    sb.op_ok("start", &id)?;
    sb.wait_status(&id, "stopped")?;
    check!(
        sb.container_output(&id).contains("ran"),
        "the program did not run"
    );
    Ok(())
}

// "noNewPrivileges (bool, OPTIONAL) setting noNewPrivileges to true prevents the process from
// gaining additional privileges."
fn no_new_privileges_true(sb: &mut Sandbox) -> TestResult {
    sb.config["process"]["noNewPrivileges"] = json!(true);
    check_eq!(
        sb.run_checker(&["status"])?.get("NoNewPrivs")?,
        "1",
        "NoNewPrivs"
    );
    Ok(())
}

fn no_new_privileges_false(sb: &mut Sandbox) -> TestResult {
    let own = fs::read_to_string("/proc/self/status").unwrap_or_default();
    if own
        .lines()
        .any(|l| l.starts_with("NoNewPrivs:") && l.trim_end().ends_with('1'))
    {
        return skip("the runner itself runs with no_new_privs set");
    }
    sb.config["process"]["noNewPrivileges"] = json!(false);
    check_eq!(
        sb.run_checker(&["status"])?.get("NoNewPrivs")?,
        "0",
        "NoNewPrivs"
    );
    Ok(())
}

// "If oomScoreAdj is set, the runtime MUST set oom_score_adj to the given value."
fn oom_score_adj_set(sb: &mut Sandbox) -> TestResult {
    sb.config["process"]["oomScoreAdj"] = json!(321);
    check_eq!(
        sb.run_checker(&["oom"])?.get("oom_score_adj")?,
        "321",
        "oom_score_adj"
    );
    Ok(())
}

// "If oomScoreAdj is not set, the runtime MUST NOT change the value of oom_score_adj."
fn oom_score_adj_unset(sb: &mut Sandbox) -> TestResult {
    let want = sb.suite.host_oom_score_adj.clone();
    check_eq!(
        sb.run_checker(&["oom"])?.get("oom_score_adj")?,
        want.as_str(),
        "oom_score_adj (the runner's)"
    );
    Ok(())
}

// "ioPriority (object, OPTIONAL) configures the I/O priority settings for the container's
// processes. class (string, REQUIRED) ... priority (int, REQUIRED)"
fn io_priority(sb: &mut Sandbox) -> TestResult {
    sb.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    check_eq!(
        sb.run_checker(&["ioprio"])?.get("ioprio")?,
        "2 6",
        "ioprio class and level (BE is 2)"
    );
    Ok(())
}

// "scheduler (object, OPTIONAL) is an object describing the scheduler properties for the
// process. policy (string, REQUIRED) ... nice (int32, OPTIONAL)"
fn scheduler(sb: &mut Sandbox) -> TestResult {
    sb.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    let report = sb.run_checker(&["sched"])?;
    check_eq!(
        report.get("sched.policy")?,
        "3",
        "scheduling policy (SCHED_BATCH is 3)"
    );
    check_eq!(report.get("sched.nice")?, "7", "nice");
    Ok(())
}

// "apparmorProfile (string, OPTIONAL) specifies the name of the AppArmor profile for the process."
fn apparmor_profile(sb: &mut Sandbox) -> TestResult {
    let enabled = fs::read_to_string("/sys/module/apparmor/parameters/enabled").unwrap_or_default();
    if !enabled.starts_with('Y') {
        return skip("AppArmor is not enabled in this kernel");
    }
    sb.config["process"]["apparmorProfile"] = json!("unconfined");
    let report = sb.run_checker(&["read:/proc/self/attr/current"])?;
    check_eq!(
        report.get("read:/proc/self/attr/current")?,
        "unconfined",
        "AppArmor label"
    );
    Ok(())
}

// "selinuxLabel (string, OPTIONAL) specifies the SELinux label for the process."
fn selinux_label(_sb: &mut Sandbox) -> TestResult {
    if !Path::new("/sys/fs/selinux/enforce").exists() {
        return skip("SELinux is not enabled in this kernel");
    }
    skip("SELinux labels are not checked by this suite yet")
}

// "hostname (string, OPTIONAL) specifies the container's hostname as seen by processes
// running inside the container."
fn hostname(sb: &mut Sandbox) -> TestResult {
    sb.config["hostname"] = json!("conformance-host");
    check_eq!(
        sb.run_checker(&["uts"])?.get("hostname")?,
        "conformance-host",
        "hostname"
    );
    Ok(())
}

// "domainname (string, OPTIONAL) specifies the container's domainname as seen by processes
// running inside the container."
fn domainname(sb: &mut Sandbox) -> TestResult {
    sb.config["domainname"] = json!("conformance.example");
    check_eq!(
        sb.run_checker(&["uts"])?.get("domainname")?,
        "conformance.example",
        "domainname"
    );
    Ok(())
}
