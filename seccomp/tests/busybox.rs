//! A real program under the engines' profiles: busybox (Makefile `deps`
//! installs busybox-static) runs a shell session normally, and the calls the
//! profile denies fail with its errno.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;

const BUSYBOX: &str = "/bin/busybox";

/// Runs `script` in busybox sh with `filter` loaded right before execve.
fn run_under(filter: berth_seccomp::Filter, script: &str) -> (bool, String, String) {
    let mut cmd = Command::new(BUSYBOX);
    cmd.args(["sh", "-c", script]);
    // SAFETY: the closure runs between fork and exec; it only makes prctl and
    // seccomp calls on data prepared before the fork (no allocation).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            filter.load().map(|_| ())
        });
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{BUSYBOX}: {e} (install busybox-static)"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SESSION: &str = "set -e; echo hello > /dev/null; ls / > /dev/null; x=$(echo sub); \
    for i in 1 2 3; do :; done; sleep 0.01; grep '^Seccomp:' /proc/self/status; \
    grep '^Seccomp_filters:' /proc/self/status; echo done";

#[test]
fn busybox_runs_normally_under_the_engines_profiles() {
    for file in [
        "docker-run.json",
        "podman-run.json",
        "containerd-run-seccomp.json",
    ] {
        let filter = berth_seccomp::compile(&common::engine_profile(file)).unwrap();
        let (ok, stdout, stderr) = run_under(filter, SESSION);
        assert!(ok, "{file}: {stderr}");
        assert!(
            stdout.contains("Seccomp:\t2"),
            "{file}: filter mode in {stdout}"
        );
        assert!(stdout.contains("Seccomp_filters:\t1"), "{file}: {stdout}");
        assert!(stdout.ends_with("done\n"), "{file}: {stdout}");
    }
}

#[test]
fn docker_profile_denies_unshare_and_mount_to_busybox() {
    for (applet, expected) in [
        ("unshare -u true", "Operation not permitted"), // Unfiltered this would fail with ENOENT: the mount point does not exist.
        (
            "mount -t tmpfs none /nonexistent-berth-seccomp",
            "permission denied",
        ),
    ] {
        let filter = berth_seccomp::compile(&common::engine_profile("docker-run.json")).unwrap();
        let (ok, _, stderr) = run_under(filter, applet);
        assert!(!ok, "{applet} succeeded under the docker profile");
        assert!(stderr.contains(expected), "{applet}: {stderr}");
    }
}
