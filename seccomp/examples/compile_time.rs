//! Measures what a seccomp profile adds to container start: compiling it
//! (in the runtime, before clone) and loading it (in the init).
//!
//! cargo run --release -p berth-seccomp --example compile_time -- [CONFIG.json ...]
//! Default: the Docker and Podman configs in ../shared/client-specs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const ROUNDS: usize = 200;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Times one `Filter::load` inside a forked child (the child writes the
/// nanoseconds it took to a pipe).
fn load_in_child(filter: &berth_seccomp::Filter) -> Result<Duration> {
    let mut fds = [0; 2];
    // SAFETY: pipe fills the two-element array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: single-threaded program; the child makes a few raw calls and _exit()s.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        let start = Instant::now();
        let loaded = filter.load();
        let nanos = start.elapsed().as_nanos() as u64;
        let bytes = nanos.to_ne_bytes();
        // SAFETY: writing 8 bytes from the stack to our pipe, then leaving the child.
        unsafe {
            libc::write(fds[1], bytes.as_ptr().cast(), bytes.len());
            libc::_exit(i32::from(loaded.is_err()))
        }
    }
    let mut bytes = [0u8; 8];
    // SAFETY: reading 8 bytes into a stack buffer, closing our pipe ends, reaping the child.
    let (n, status) = unsafe {
        libc::close(fds[1]);
        let n = libc::read(fds[0], bytes.as_mut_ptr().cast(), bytes.len());
        libc::close(fds[0]);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        (n, status)
    };
    if n != 8 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("the child failed to load the filter");
    }
    Ok(Duration::from_nanos(u64::from_ne_bytes(bytes)))
}

fn main() -> Result<()> {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/client-specs");
    let mut files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        files = vec![
            shared.join("docker-run.json"),
            shared.join("podman-run.json"),
        ];
    }
    // SAFETY: prctl with integer arguments; children inherit no_new_privs.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
        let config: serde_json::Value = serde_json::from_str(&text)?;
        let cfg: oci_spec::runtime::LinuxSeccomp =
            serde_json::from_value(config["linux"]["seccomp"].clone())
                .with_context(|| format!("{}: linux.seccomp", file.display()))?;
        let mut compile = Vec::new();
        let mut filter = None;
        for _ in 0..ROUNDS {
            let start = Instant::now();
            filter = Some(berth_seccomp::compile(&cfg)?);
            compile.push(start.elapsed());
        }
        let filter = filter.context("no rounds")?;
        let load = (0..ROUNDS)
            .map(|_| load_in_child(&filter))
            .collect::<Result<Vec<_>>>()?;
        println!(
            "{}: {} instructions; median of {ROUNDS}: compile {:?}, load {:?}",
            file.file_name().unwrap_or_default().to_string_lossy(),
            filter.program().len(),
            median(compile),
            median(load),
        );
    }
    Ok(())
}
