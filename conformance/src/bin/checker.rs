//! The conformance checker: runs as the container's process and prints what it finds.
//!
//! Each argument is a probe, `NAME` or `NAME:ARG`; each probe prints lines `KEY VALUE` on stdout
//! for the runner to compare with the config it wrote. A probe that cannot read something prints
//! `KEY error=ERRNO_NAME` instead of failing, so one missing file never hides the other results.
//! It is built static (std + libc only) because it runs inside a bare busybox rootfs.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The last signal the wait-signal probe caught (0: none yet).
static CAUGHT_SIGNAL: AtomicI32 = AtomicI32::new(0);

fn main() {
    let out = io::stdout();
    let mut out = out.lock();
    let mut code = 0;
    for arg in std::env::args().skip(1) {
        let (name, value) = arg.split_once(':').unwrap_or((arg.as_str(), ""));
        match run_probe(&mut out, name, value) {
            Ok(Some(exit)) => {
                code = exit;
                break;
            }
            Ok(None) => {}
            Err(e) => {
                let _ = writeln!(out, "probe-error {arg}: {e}");
                code = 2;
            }
        }
        // Flush after every probe: a later probe may block or the container may be killed.
        let _ = out.flush();
    }
    let _ = out.flush();
    std::process::exit(code);
}

/// Runs one probe; `Some(code)` means "exit now with code".
fn run_probe(out: &mut impl Write, name: &str, arg: &str) -> io::Result<Option<i32>> {
    match name {
        "argv" => print_argv(out)?,
        "ids" => print_ids(out)?,
        "status" => print_status(out)?,
        "cwd" => writeln!(
            out,
            "cwd {}",
            describe(std::env::current_dir().map(|p| p.display().to_string()))
        )?,
        "env" => {
            for (key, value) in std::env::vars_os() {
                writeln!(
                    out,
                    "env {}={}",
                    key.to_string_lossy(),
                    value.to_string_lossy()
                )?;
            }
        }
        "uts" => print_uts(out)?,
        "rlimits" => print_rlimits(out)?,
        "oom" => writeln!(
            out,
            "oom_score_adj {}",
            read_trimmed("/proc/self/oom_score_adj")
        )?,
        "ns" => print_namespaces(out)?,
        "maps" => print_id_maps(out)?,
        "tty" => print_ttys(out)?,
        "winsize" => print_winsize(out)?,
        "personality" => print_personality(out)?,
        "ioprio" => print_ioprio(out)?,
        "sched" => print_sched(out)?,
        "affinity" => print_affinity(out)?,
        "clock" => print_clocks(out)?,
        "pid" => writeln!(out, "pid {}\nppid {}", std::process::id(), parent_pid())?,
        "umask" => print_umask(out)?,
        "mounts" => {
            for line in read_lossy("/proc/self/mountinfo").lines() {
                writeln!(out, "mount {line}")?;
            }
        }
        "cgroup" => {
            for line in read_lossy("/proc/self/cgroup").lines() {
                writeln!(out, "cgroup {line}")?;
            }
        }
        "fds" => print_fds(out)?,
        "stat" => writeln!(out, "stat:{arg} {}", stat_path(arg))?,
        "read" => writeln!(out, "read:{arg} {}", read_first_line(arg))?,
        "readlen" => writeln!(out, "readlen:{arg} {}", read_length(arg))?,
        "open" => writeln!(out, "open:{arg} {}", open_nonblocking(arg))?,
        "ls" => writeln!(out, "ls:{arg} {}", list_dir(arg))?,
        "write" => {
            let (path, data) = arg.split_once('=').unwrap_or((arg, ""));
            writeln!(out, "write:{path} {}", write_file(path, data))?
        }
        "create" => writeln!(out, "create:{arg} {}", create_file(arg))?,
        "syscall" => writeln!(out, "syscall:{arg} {}", call_syscall(arg))?,
        "print" => writeln!(out, "{arg}")?,
        "sleep" => {
            out.flush()?;
            std::thread::sleep(Duration::from_millis(parse_num(arg)?));
        }
        "wait-signal" => wait_signal(out, parse_num(arg)?)?,
        "exit" => return Ok(Some(parse_num(arg)? as i32)),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown probe {other}"),
            ))
        }
    }
    Ok(None)
}

fn parse_num(text: &str) -> io::Result<u64> {
    text.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a number: {text:?}"),
        )
    })
}

/// Turns a result into `VALUE` or `error=ERRNO_NAME`.
fn describe(result: io::Result<String>) -> String {
    match result {
        Ok(value) => value,
        Err(e) => format!("error={}", errno_name(e.raw_os_error().unwrap_or(0))),
    }
}

fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EROFS => "EROFS",
        libc::EDOM => "EDOM",
        libc::ENOSYS => "ENOSYS",
        libc::EAGAIN => "EAGAIN",
        libc::ENXIO => "ENXIO",
        libc::ENODEV => "ENODEV",
        _ => return format!("errno{errno}"),
    };
    name.to_string()
}

fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn read_lossy(path: &str) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn read_trimmed(path: &str) -> String {
    describe(fs::read_to_string(path).map(|s| s.trim().to_string()))
}

fn print_argv(out: &mut impl Write) -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    writeln!(out, "argv {}", args.join("|"))
}

fn print_ids(out: &mut impl Write) -> io::Result<()> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are to live, writable u32 locals.
    unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
    writeln!(out, "uid {r} {e} {s}")?;
    // SAFETY: as above.
    unsafe { libc::getresgid(&mut r, &mut e, &mut s) };
    writeln!(out, "gid {r} {e} {s}")?;
    let mut groups = [0 as libc::gid_t; 256];
    // SAFETY: the buffer holds 256 gids and its length is passed.
    let count = unsafe { libc::getgroups(groups.len() as i32, groups.as_mut_ptr()) };
    let mut list: Vec<u32> = groups[..count.max(0) as usize].to_vec();
    list.sort_unstable();
    let text: Vec<String> = list.iter().map(u32::to_string).collect();
    writeln!(out, "groups {}", text.join(","))
}

/// Capability sets, no_new_privs and seccomp mode as the kernel reports them.
fn print_status(out: &mut impl Write) -> io::Result<()> {
    const KEYS: [&str; 8] = [
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
        "Seccomp_filters",
    ];
    for line in read_lossy("/proc/self/status").lines() {
        if let Some((key, value)) = line.split_once(':') {
            if KEYS.contains(&key) {
                writeln!(out, "{key} {}", value.trim())?;
            }
        }
    }
    Ok(())
}

fn print_uts(out: &mut impl Write) -> io::Result<()> {
    // SAFETY: utsname is plain data; uname fills it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    writeln!(out, "hostname {}", c_chars(&uts.nodename))?;
    writeln!(out, "domainname {}", c_chars(&uts.domainname))
}

fn c_chars(chars: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn print_rlimits(out: &mut impl Write) -> io::Result<()> {
    let limits = [
        ("CPU", libc::RLIMIT_CPU),
        ("FSIZE", libc::RLIMIT_FSIZE),
        ("DATA", libc::RLIMIT_DATA),
        ("STACK", libc::RLIMIT_STACK),
        ("CORE", libc::RLIMIT_CORE),
        ("RSS", libc::RLIMIT_RSS),
        ("NPROC", libc::RLIMIT_NPROC),
        ("NOFILE", libc::RLIMIT_NOFILE),
        ("MEMLOCK", libc::RLIMIT_MEMLOCK),
        ("AS", libc::RLIMIT_AS),
        ("LOCKS", libc::RLIMIT_LOCKS),
        ("SIGPENDING", libc::RLIMIT_SIGPENDING),
        ("MSGQUEUE", libc::RLIMIT_MSGQUEUE),
        ("NICE", libc::RLIMIT_NICE),
        ("RTPRIO", libc::RLIMIT_RTPRIO),
        ("RTTIME", libc::RLIMIT_RTTIME),
    ];
    for (name, resource) in limits {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid, writable rlimit.
        if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
            writeln!(out, "rlimit.{name} error={}", errno_name(last_errno()))?;
            continue;
        }
        writeln!(
            out,
            "rlimit.{name} {} {}",
            rlim_text(limit.rlim_cur),
            rlim_text(limit.rlim_max)
        )?;
    }
    Ok(())
}

fn rlim_text(value: libc::rlim_t) -> String {
    if value == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        value.to_string()
    }
}

fn print_namespaces(out: &mut impl Write) -> io::Result<()> {
    for kind in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        let link = fs::read_link(format!("/proc/self/ns/{kind}")).map(|p| p.display().to_string());
        writeln!(out, "ns.{kind} {}", describe(link))?;
    }
    Ok(())
}

fn print_id_maps(out: &mut impl Write) -> io::Result<()> {
    for file in ["uid_map", "gid_map"] {
        for line in read_lossy(&format!("/proc/self/{file}")).lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            writeln!(out, "{file} {}", fields.join(" "))?;
        }
    }
    Ok(())
}

fn print_ttys(out: &mut impl Write) -> io::Result<()> {
    for fd in 0..3 {
        // SAFETY: isatty only inspects the descriptor number.
        let tty = unsafe { libc::isatty(fd) };
        writeln!(out, "tty.{fd} {tty}")?;
    }
    Ok(())
}

fn print_winsize(out: &mut impl Write) -> io::Result<()> {
    // SAFETY: winsize is plain data.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into the valid pointer.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut size) } != 0 {
        return writeln!(out, "winsize error={}", errno_name(last_errno()));
    }
    writeln!(out, "winsize {} {}", size.ws_row, size.ws_col)
}

fn print_personality(out: &mut impl Write) -> io::Result<()> {
    // SAFETY: 0xffffffff only queries the current persona.
    let persona = unsafe { libc::personality(0xffff_ffff) };
    writeln!(out, "personality {persona:#x}")
}

fn print_ioprio(out: &mut impl Write) -> io::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    // SAFETY: ioprio_get(WHO_PROCESS, 0) reads the calling process's I/O priority.
    let value = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) };
    if value < 0 {
        return writeln!(out, "ioprio error={}", errno_name(last_errno()));
    }
    writeln!(out, "ioprio {} {}", value >> 13, value & 0x1fff)
}

/// The kernel's `struct sched_attr` (first version plus utilisation clamps).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

fn print_sched(out: &mut impl Write) -> io::Result<()> {
    let mut attr = SchedAttr::default();
    let size = std::mem::size_of::<SchedAttr>() as libc::c_uint;
    // SAFETY: the kernel writes at most `size` bytes into `attr`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0,
            &mut attr as *mut SchedAttr,
            size,
            0,
        )
    };
    if rc != 0 {
        return writeln!(out, "sched error={}", errno_name(last_errno()));
    }
    writeln!(out, "sched.policy {}", attr.policy)?;
    writeln!(out, "sched.flags {}", attr.flags)?;
    writeln!(out, "sched.nice {}", attr.nice)?;
    writeln!(out, "sched.priority {}", attr.priority)?;
    writeln!(out, "sched.runtime {}", attr.runtime)?;
    writeln!(out, "sched.deadline {}", attr.deadline)?;
    writeln!(out, "sched.period {}", attr.period)
}

fn print_affinity(out: &mut impl Write) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the size passed is the size of `set`.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0
    {
        return writeln!(out, "affinity error={}", errno_name(last_errno()));
    }
    let cpus: Vec<String> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .map(|cpu| cpu.to_string())
        .collect();
    writeln!(out, "affinity {}", cpus.join(","))
}

fn print_clocks(out: &mut impl Write) -> io::Result<()> {
    for (name, clock) in [
        ("monotonic", libc::CLOCK_MONOTONIC),
        ("boottime", libc::CLOCK_BOOTTIME),
    ] {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec.
        unsafe { libc::clock_gettime(clock, &mut now) };
        writeln!(out, "clock.{name} {}", now.tv_sec)?;
    }
    Ok(())
}

fn parent_pid() -> i32 {
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() }
}

fn print_umask(out: &mut impl Write) -> io::Result<()> {
    // SAFETY: umask only swaps the mask; the old one is put back at once.
    let mask = unsafe { libc::umask(0) };
    // SAFETY: as above.
    unsafe { libc::umask(mask) };
    writeln!(out, "umask {mask:04o}")
}

/// Open descriptors, leaving out the one used to list the directory.
fn print_fds(out: &mut impl Write) -> io::Result<()> {
    let mut fds = Vec::new();
    for entry in fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let target = fs::read_link(entry.path())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() {
            // The listing's own descriptor points at /proc/<pid>/fd and is gone by now.
            if !target.is_empty() && !target.ends_with("/fd") {
                fds.push(fd);
            }
        }
    }
    fds.sort_unstable();
    let text: Vec<String> = fds.iter().map(i32::to_string).collect();
    writeln!(out, "fds {}", text.join(","))
}

fn stat_path(path: &str) -> String {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return describe(Err(e)),
    };
    let kind = meta.file_type();
    let letter = if kind.is_symlink() {
        "l"
    } else if kind.is_dir() {
        "d"
    } else if kind.is_char_device() {
        "c"
    } else if kind.is_block_device() {
        "b"
    } else if kind.is_fifo() {
        "p"
    } else if kind.is_socket() {
        "s"
    } else {
        "f"
    };
    let rdev = meta.rdev();
    let mut text = format!(
        "type={letter} mode={:04o} uid={} gid={} rdev={}:{}",
        meta.mode() & 0o7777,
        meta.uid(),
        meta.gid(),
        libc::major(rdev),
        libc::minor(rdev)
    );
    if kind.is_symlink() {
        let target = fs::read_link(path)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        text.push_str(&format!(" link={target}"));
    }
    text
}

fn read_first_line(path: &str) -> String {
    describe(fs::read(path).map(|bytes| {
        let text = String::from_utf8_lossy(&bytes);
        text.lines().next().unwrap_or("").trim().to_string()
    }))
}

fn read_length(path: &str) -> String {
    describe(fs::File::open(path).and_then(|mut file| {
        let mut buf = vec![0u8; 65536];
        let n = file.read(&mut buf)?;
        Ok(n.to_string())
    }))
}

fn open_nonblocking(path: &str) -> String {
    let Ok(c_path) = CString::new(path) else {
        return "error=EINVAL".to_string();
    };
    // SAFETY: c_path is a valid NUL-terminated string; the fd is closed right away.
    let fd = unsafe {
        libc::open(
            c_path.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return format!("error={}", errno_name(last_errno()));
    }
    // SAFETY: fd was just opened by us.
    unsafe { libc::close(fd) };
    "ok".to_string()
}

fn list_dir(path: &str) -> String {
    describe(fs::read_dir(path).and_then(|entries| {
        let mut names = Vec::new();
        for entry in entries {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names.join(","))
    }))
}

fn write_file(path: &str, data: &str) -> String {
    describe(
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .and_then(|mut file| file.write_all(data.as_bytes()))
            .map(|_| "ok".to_string()),
    )
}

fn create_file(path: &str) -> String {
    describe(
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map(|_| "ok".to_string()),
    )
}

/// A few side-effect-free system calls, for seccomp rules to match.
fn call_syscall(spec: &str) -> String {
    let (name, arg) = spec.split_once('=').unwrap_or((spec, "0"));
    let arg: libc::c_ulong = match arg.strip_prefix("0x") {
        Some(hex) => libc::c_ulong::from_str_radix(hex, 16).unwrap_or(0),
        None => arg.parse().unwrap_or(0),
    };
    let number = match name {
        "getppid" => libc::SYS_getppid,
        "getpgrp" => libc::SYS_getpgrp,
        "getpid" => libc::SYS_getpid,
        "getuid" => libc::SYS_getuid,
        "sched_yield" => libc::SYS_sched_yield,
        "personality" => libc::SYS_personality,
        _ => return "error=unknown-syscall".to_string(),
    };
    // SAFETY: every call above takes at most one integer argument and changes nothing
    // (personality is only ever called with the query value 0xffffffff by the runner).
    let rc = unsafe { libc::syscall(number, arg) };
    if rc == -1 {
        format!("error={}", errno_name(last_errno()))
    } else {
        "ok".to_string()
    }
}

extern "C" fn remember_signal(signal: libc::c_int) {
    CAUGHT_SIGNAL.store(signal, Ordering::SeqCst);
}

/// Catches the usual termination signals, says "ready", and reports the first one that arrives.
fn wait_signal(out: &mut impl Write, timeout_ms: u64) -> io::Result<()> {
    for signal in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(
                signal,
                remember_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
    writeln!(out, "ready")?;
    out.flush()?;
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    while Instant::now() < deadline {
        let caught = CAUGHT_SIGNAL.load(Ordering::SeqCst);
        if caught != 0 {
            return writeln!(out, "signal {caught}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    writeln!(out, "signal none")
}
