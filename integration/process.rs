//! The process block, checked from inside the container.

use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use crate::harness::{cap_mask, host_bounding_set, status_field, Sandbox};

#[test]
fn args_env_and_cwd() {
    let mut sb = Sandbox::new("argsenv");
    sb.config["process"]["args"] = json!([
        "sh",
        "-c",
        "echo \"$0|$1\"; echo \"FOO=$FOO\"; pwd",
        "zero",
        "one two"
    ]);
    sb.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
    sb.config["process"]["cwd"] = json!("/etc");
    let id = sb.new_id("argsenv");
    let out = sb.run(&id, &[]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines, ["zero|one two", "FOO=bar baz", "/etc"]);
}

/// The environment is exactly the spec's, plus HOME from /etc/passwd when the spec has none
/// (as runc does).
#[test]
fn env_is_the_spec_plus_home() {
    let mut sb = Sandbox::new("envexact");
    sb.config["process"]["env"] = json!(["PATH=/bin", "ONLY=this"]);
    let script = "env | grep -v -e '^PWD=' -e '^SHLVL=' -e '^_=' | sort";
    let out = sb.run_script(script);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["HOME=/root", "ONLY=this", "PATH=/bin"]
    );

    sb.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let out = sb.run_script(script);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["HOME=/home/user", "ONLY=this", "PATH=/bin"]
    );

    sb.config["process"]["env"] = json!(["PATH=/bin", "HOME=/custom"]);
    let out = sb.run_script(script);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["HOME=/custom", "PATH=/bin"]
    );
}

#[test]
fn user_uid_gid_and_additional_gids() {
    let mut sb = Sandbox::new("user");
    sb.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20]});
    let out =
        sb.run_script("id -u; id -g; grep -e '^Uid' -e '^Gid' -e '^Groups' /proc/self/status");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1000");
    let status = out.as_str();
    assert_eq!(status_field(status, "Uid"), Some("1000\t1000\t1000\t1000"));
    assert_eq!(status_field(status, "Gid"), Some("1000\t1000\t1000\t1000"));
    let mut groups: Vec<&str> = status_field(status, "Groups")
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    groups.sort();
    assert_eq!(groups, ["10", "20"]);
}

#[test]
fn umask_is_applied() {
    let mut sb = Sandbox::new("umask");
    sb.config["process"]["user"]["umask"] = json!(0o027);
    let out = sb.run_script("umask; touch /tmp/f; stat -c %a /tmp/f");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["0027", "640"]);
}

#[test]
fn default_umask_is_0022() {
    let mut sb = Sandbox::new("umaskdefault");
    let out = sb.run_script("umask");
    assert_eq!(out.trim(), "0022");
}

fn limits_line<'a>(limits: &'a str, name: &str) -> Vec<&'a str> {
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} missing from /proc/self/limits:\n{limits}"));
    line[name.len()..].split_whitespace().collect()
}

#[test]
fn rlimits_are_applied() {
    let mut sb = Sandbox::new("rlimits");
    sb.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
    ]);
    let out = sb.run_script("cat /proc/self/limits; ulimit -n");
    assert_eq!(&limits_line(&out, "Max open files")[..2], ["1000", "2000"]);
    assert_eq!(&limits_line(&out, "Max processes")[..2], ["300", "400"]);
    assert_eq!(&limits_line(&out, "Max core file size")[..2], ["0", "4096"]);
    assert_eq!(out.lines().last(), Some("1000"));
}

#[test]
fn rlimit_above_the_hard_limit_fails_cleanly() {
    if host_bounding_set() & cap_mask(&["CAP_SYS_RESOURCE"]) != 0 {
        eprintln!("skipped: this host may raise hard limits (CAP_SYS_RESOURCE)");
        return;
    }
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit")
        .1;
    if hard == libc::RLIM_INFINITY {
        return;
    }
    let mut sb = Sandbox::new("rlimithigh");
    sb.config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]);
    sb.set_script("true");
    let id = sb.new_id("rlimithigh");
    sb.run(&id, &[]).failed();
    sb.assert_nothing_left(&id);
}

#[test]
fn oom_score_adj_is_applied() {
    let mut sb = Sandbox::new("oomscore");
    sb.config["process"]["oomScoreAdj"] = json!(500);
    assert_eq!(sb.run_script("cat /proc/self/oom_score_adj").trim(), "500");
}

#[test]
fn no_new_privileges_on_and_off() {
    let mut sb = Sandbox::new("nnp");
    sb.config["process"]["noNewPrivileges"] = json!(true);
    let on = sb.run_script("cat /proc/self/status");
    assert_eq!(status_field(&on, "NoNewPrivs"), Some("1"));
    sb.config["process"]["noNewPrivileges"] = json!(false);
    let off = sb.run_script("cat /proc/self/status");
    assert_eq!(status_field(&off, "NoNewPrivs"), Some("0"));
}

fn cap_field(status: &str, key: &str) -> u64 {
    let hex = status_field(status, key).unwrap_or_else(|| panic!("{key} missing:\n{status}"));
    u64::from_str_radix(hex, 16).expect("capability mask is hex")
}

#[test]
fn capabilities_root_sees_exactly_the_spec() {
    let mut sb = Sandbox::new("capsroot");
    let set = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    sb.config["process"]["capabilities"] = json!({
        "bounding": set, "effective": set, "permitted": set, "inheritable": set,
        "ambient": ["CAP_NET_BIND_SERVICE"],
    });
    let status = sb.run_script("cat /proc/self/status");
    assert_eq!(cap_field(&status, "CapBnd"), cap_mask(&set));
    assert_eq!(cap_field(&status, "CapEff"), cap_mask(&set));
    assert_eq!(cap_field(&status, "CapPrm"), cap_mask(&set));
    assert_eq!(cap_field(&status, "CapInh"), cap_mask(&set));
    assert_eq!(
        cap_field(&status, "CapAmb"),
        cap_mask(&["CAP_NET_BIND_SERVICE"])
    );
}

#[test]
fn capabilities_non_root_keeps_ambient_set() {
    let mut sb = Sandbox::new("capsuser");
    sb.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let kept = ["CAP_NET_BIND_SERVICE"];
    let bounding = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    sb.config["process"]["capabilities"] = json!({
        "bounding": bounding, "effective": kept, "permitted": kept, "inheritable": kept, "ambient": kept,
    });
    let status = sb.run_script("cat /proc/self/status");
    assert_eq!(cap_field(&status, "CapBnd"), cap_mask(&bounding));
    assert_eq!(cap_field(&status, "CapEff"), cap_mask(&kept));
    assert_eq!(cap_field(&status, "CapPrm"), cap_mask(&kept));
    assert_eq!(cap_field(&status, "CapInh"), cap_mask(&kept));
    assert_eq!(cap_field(&status, "CapAmb"), cap_mask(&kept));
}

#[test]
fn capabilities_empty_sets_give_nothing() {
    let mut sb = Sandbox::new("capsnone");
    sb.config["process"]["capabilities"] = json!({
        "bounding": [], "effective": [], "permitted": [], "inheritable": [], "ambient": [],
    });
    let status = sb.run_script("cat /proc/self/status");
    for key in ["CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(cap_field(&status, key), 0, "{key}");
    }
    // Without CAP_CHOWN, chown to another user fails inside.
    let mut sb2 = Sandbox::new("capsnochown");
    sb2.config["process"]["capabilities"] = sb.config["process"]["capabilities"].clone();
    let out = sb2
        .run_script("touch /tmp/x; chown 1000 /tmp/x 2>/dev/null && echo chowned || echo denied");
    assert_eq!(out.trim(), "denied");
}

// ---------------------------------------------------------------------------------------------
// process.scheduler and linux.memoryPolicy, for the init and each exec'd process
// ---------------------------------------------------------------------------------------------

/// (nice, policy) from a /proc/PID/stat line: fields 19 and 41 (the command, field 2, holds
/// no space for busybox's applets).
fn nice_and_policy(stat: &str) -> (i64, u32) {
    let fields: Vec<&str> = stat.split_whitespace().collect();
    (
        fields[18].parse().expect("nice"),
        fields[40].parse().expect("policy"),
    )
}

/// SCHED_BATCH (3) with nice -5 and SCHED_FLAG_RESET_ON_FORK: the shell runs with both; a
/// child it forks keeps the policy but gets nice 0 back (the flag's rule for a negative nice).
/// An exec'd process gets the container's scheduler too (exec starts from its process).
#[test]
fn scheduler_policy_nice_and_reset_on_fork_are_applied() {
    let (sb, id) = crate::exec::running("sched", |sb| {
        sb.config["process"]["scheduler"] = json!({
            "policy": "SCHED_BATCH", "nice": -5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]
        });
    });
    let init = fs::read_to_string(format!("/proc/{}/stat", sb.pid(&id))).expect("init stat");
    assert_eq!(nice_and_policy(&init), (-5, 3), "the init: {init}");
    let out = crate::exec::exec_script(
        &sb,
        &id,
        &[],
        "cat /proc/$$/stat; cat /proc/self/stat; true",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        nice_and_policy(lines[0]),
        (-5, 3),
        "the exec'd shell: {}",
        lines[0]
    );
    assert_eq!(nice_and_policy(lines[1]), (0, 3), "its child: {}", lines[1]);
    sb.rt(&["delete", "--force", &id]).ok();
}

/// MPOL_BIND to node 0: the init's memory and an exec'd process's are bound there, as
/// /proc/PID/numa_maps shows (it names the task's policy for mappings without their own).
#[test]
fn memory_policy_binds_the_init_and_exec() {
    if !Path::new("/proc/self/numa_maps").exists() {
        eprintln!("skipped: this kernel has no NUMA support");
        return;
    }
    let (sb, id) = crate::exec::running("mempolicy", |sb| {
        sb.config["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    });
    let init = fs::read_to_string(format!("/proc/{}/numa_maps", sb.pid(&id))).expect("numa_maps");
    let first = init.lines().next().unwrap_or_default();
    assert!(first.contains(" bind:0 "), "the init's numa_maps: {first}");
    let exec = crate::exec::exec_script(&sb, &id, &[], "head -n 1 /proc/self/numa_maps");
    assert!(
        exec.contains(" bind:0 "),
        "the exec'd process's numa_maps: {exec}"
    );
    sb.rt(&["delete", "--force", &id]).ok();
}

/// Invalid schedulers and memory policies, those berth refuses and those the kernel does: a
/// one-line error naming the field or the syscall, and nothing left behind.
#[test]
fn bad_scheduler_or_memory_policy_fails_cleanly() {
    let cases = [
        (
            json!({"policy": "SCHED_OTHER", "priority": 5}),
            None,
            &["priority"][..],
        ),
        (
            json!({"policy": "SCHED_BATCH", "flags": ["SCHED_FLAG_NOPE"]}),
            None,
            &["scheduler.flags"][..],
        ),
        (
            json!({"policy": "SCHED_DEADLINE", "runtime": 1, "deadline": 0, "period": 0}),
            None,
            &["sched_setattr"][..],
        ),
        (
            Value::Null,
            Some(json!({"mode": "MPOL_BIND"})),
            &["memoryPolicy", "nodes"][..],
        ),
        (
            Value::Null,
            Some(json!({"mode": "MPOL_BIND", "nodes": "1000"})),
            &["set_mempolicy"][..],
        ),
    ];
    for (scheduler, policy, needles) in cases {
        let mut sb = Sandbox::new("badsched");
        if !scheduler.is_null() {
            sb.config["process"]["scheduler"] = scheduler;
        }
        if let Some(policy) = policy {
            sb.config["linux"]["memoryPolicy"] = policy;
        }
        sb.set_script("true");
        let id = sb.new_id("badsched");
        sb.run(&id, &[]).one_line_error(needles);
        sb.assert_nothing_left(&id);
    }
}
