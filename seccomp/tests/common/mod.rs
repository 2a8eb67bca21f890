//! Helpers for tests that load filters for real: a forked child loads the
//! filter and makes system calls; only raw syscalls run in the child (the
//! test process has threads, so the child must not allocate).

#![allow(dead_code)]

use std::path::PathBuf;

use oci_spec::runtime::LinuxSeccomp;

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// Forks; the child runs `body` and exits with its result.
pub fn in_child(body: impl FnOnce() -> i32) -> Exit {
    // SAFETY: the child runs only `body`, which makes raw system calls on data
    // prepared before the fork, then _exit()s without running destructors.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = body();
        // SAFETY: leaving the forked child without unwinding into the test harness.
        unsafe { libc::_exit(code) }
    }
    wait(pid)
}

pub fn wait(pid: libc::pid_t) -> Exit {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child; `status` is a valid out pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.raw_os_error(), Some(libc::EINTR), "waitpid: {err}");
    }
    if libc::WIFEXITED(status) {
        Exit::Code(libc::WEXITSTATUS(status))
    } else {
        Exit::Signal(libc::WTERMSIG(status))
    }
}

/// What a system call should do under the filter.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Succeeds (any non-negative result).
    Ok,
    /// Returns exactly this value.
    Value(libc::c_long),
    /// Fails with this errno.
    Errno(i32),
}

/// One system call with its arguments and the expected result.
#[derive(Clone, Copy, Debug)]
pub struct Check {
    pub what: &'static str,
    pub nr: libc::c_long,
    pub args: [u64; 6],
    pub expect: Expect,
}

impl Check {
    pub fn new(what: &'static str, nr: libc::c_long, args: [u64; 6], expect: Expect) -> Check {
        Check {
            what,
            nr,
            args,
            expect,
        }
    }

    /// Makes the call; true when it did what was expected. Child-safe.
    pub fn passes(&self) -> bool {
        let a = self.args;
        // SAFETY: every check passes plain integers or null/garbage pointers that the
        // kernel validates; a filtered call never reaches the kernel's implementation.
        let rc = unsafe { libc::syscall(self.nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
        // SAFETY: reading this thread's errno.
        let errno = unsafe { *libc::__errno_location() };
        match self.expect {
            Expect::Ok => rc >= 0,
            Expect::Value(v) => rc == v,
            Expect::Errno(e) => rc == -1 && errno == e,
        }
    }
}

/// Body for `in_child`: optionally sets no_new_privs, loads, runs the checks.
/// Exit codes: 0 all passed, 100 + i check i failed, 90 load failed, 91 prctl failed.
pub fn load_and_check(filter: &berth_seccomp::Filter, no_new_privs: bool, checks: &[Check]) -> i32 {
    if no_new_privs {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return 91;
        }
    }
    if filter.load().is_err() {
        return 90;
    }
    for (i, check) in checks.iter().enumerate() {
        if !check.passes() {
            return 100 + i as i32;
        }
    }
    0
}

/// Runs `checks` in a child under `filter` and names the failing check.
pub fn assert_checks(filter: &berth_seccomp::Filter, no_new_privs: bool, checks: &[Check]) {
    match in_child(|| load_and_check(filter, no_new_privs, checks)) {
        Exit::Code(0) => {}
        Exit::Code(90) => panic!("loading the filter failed"),
        Exit::Code(91) => panic!("PR_SET_NO_NEW_PRIVS failed"),
        Exit::Code(c) if c >= 100 && ((c - 100) as usize) < checks.len() => {
            panic!("check failed: {:?}", checks[(c - 100) as usize])
        }
        other => panic!("child ended with {other:?}"),
    }
}

/// The shared test data (read-only, beside the repository).
pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// `linux.seccomp` of a config.json captured from a container engine.
pub fn engine_profile(file: &str) -> LinuxSeccomp {
    let path = shared_dir().join("client-specs").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let config: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::from_value(config["linux"]["seccomp"].clone()).unwrap()
}

pub fn profile(json: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(json).unwrap()
}

pub fn compile(json: serde_json::Value) -> berth_seccomp::Filter {
    berth_seccomp::compile(&profile(json)).unwrap()
}
