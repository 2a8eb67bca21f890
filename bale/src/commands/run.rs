//! `bale run`: unpack to a fresh bundle and run it with the runtime in the
//! foreground, returning the container's exit status.

use std::io::IsTerminal;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use bale::bundle;
use bale::image::PlatformSpec;
use nix::sys::signal::{signal, SigHandler, Signal};

use super::{open, unpack, unpack_options};
use crate::LimitArgs;

pub struct RunOptions {
    pub remove: bool,
    pub runtime: Option<PathBuf>,
    pub id: Option<String>,
    pub copy: bool,
    pub tty: bool,
    pub image: String,
    pub command: Vec<String>,
}

/// Signals the foreground container gets straight from the terminal; bale
/// ignores them while it waits so it can still clean up afterwards.
const FORWARDED: [Signal; 3] = [Signal::SIGINT, Signal::SIGQUIT, Signal::SIGTERM];

pub fn run(root: &Path, platform: &PlatformSpec, opts: RunOptions) -> Result<ExitCode> {
    let runtime = find_runtime(opts.runtime.as_deref())?;
    let id = opts.id.clone().unwrap_or_else(generated_id);
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        bail!("invalid container name {id:?}");
    }
    let bundle_dir = root.join("bale/run").join(&id);
    let terminal = opts.tty || std::io::stdin().is_terminal();
    {
        // The store lock is held only while unpacking, not while running.
        let store = open(root)?;
        std::fs::create_dir_all(root.join("bale/run")).context("create run directory")?;
        let limits = LimitArgs {
            max_layer_bytes: 64 << 30,
            max_layer_entries: 4_000_000,
        };
        let unpack_opts = unpack_options(opts.copy, terminal, opts.command.clone(), &limits);
        unpack(&store, platform, &opts.image, &bundle_dir, &unpack_opts)?;
    }
    let status = run_runtime(&runtime, &bundle_dir, &id);
    if opts.remove {
        // The runtime deletes a foreground container when it exits; make
        // sure, quietly, before the bundle goes.
        let _ = Command::new(&runtime)
            .args(["delete", "--force", &id])
            .stderr(std::process::Stdio::null())
            .status();
        let store = open(root)?;
        bundle::remove_bundle(&store, &bundle_dir)
            .with_context(|| format!("remove bundle {}", bundle_dir.display()))?;
    } else {
        eprintln!(
            "bale: bundle kept at {} (commit it with `bale commit`)",
            bundle_dir.display()
        );
    }
    let status = status?;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn run_runtime(runtime: &Path, bundle_dir: &Path, id: &str) -> Result<std::process::ExitStatus> {
    let mut cmd = Command::new(runtime);
    cmd.arg("run").arg("--bundle").arg(bundle_dir).arg(id);
    // SAFETY: between fork and exec only async-signal-safe calls are
    // allowed; signal(2) resetting dispositions is one.
    unsafe {
        cmd.pre_exec(|| {
            for sig in FORWARDED {
                signal(sig, SigHandler::SigDfl).map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {}", runtime.display()))?;
    for sig in FORWARDED {
        // SAFETY: SIG_IGN installs no handler code, so no reentrancy issue.
        unsafe { signal(sig, SigHandler::SigIgn) }.context("ignore signals while waiting")?;
    }
    let status = child.wait().context("wait for the runtime");
    for sig in FORWARDED {
        // SAFETY: restoring the default disposition, as above.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
    status
}

/// `--runtime`, else `berth` next to bale's own executable, else `berth`
/// in $PATH.
fn find_runtime(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path.to_owned());
        }
        bail!("runtime {} not found", path.display());
    }
    if let Some(sibling) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("berth")))
        .filter(|p| p.is_file())
    {
        return Ok(sibling);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("berth"))
        .find(|p| p.is_file())
        .context("no berth runtime found next to bale or in $PATH; use --runtime")
}

fn generated_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("bale-{}-{nanos:x}", std::process::id())
}
