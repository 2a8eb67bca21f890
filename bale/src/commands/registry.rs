//! pull, push, login, logout, tags: the registry commands.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bale::digest::Digest;
use bale::image::PlatformSpec;
use bale::layer::Limits;
use bale::registry::{
    self, auth, tags::list_tags, BlobProgress, ClientOptions, Credentials, Progress, PullOptions,
    PushOptions, Quiet, RemoteRef,
};
use bale::store::Store;

use crate::RegistryArgs;

fn auth_file(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(auth::default_auth_file)
}

/// Client options for `registry`: flags, then stored credentials.
fn client_options(args: &RegistryArgs, registry: &str) -> Result<ClientOptions> {
    let credentials = match &args.creds {
        Some(pair) => {
            let (username, password) = pair
                .split_once(':')
                .context("--creds takes USER:PASSWORD")?;
            Some(Credentials {
                username: username.to_owned(),
                password: password.to_owned(),
            })
        }
        None => auth::lookup(&auth_file(args.authfile.clone()), registry)?,
    };
    Ok(ClientOptions {
        tls_verify: args.tls_verify,
        cert_dir: args.cert_dir.clone(),
        credentials,
        attempts: args.retry_times.saturating_add(1),
        ..ClientOptions::default()
    })
}

/// Bars on a terminal, silence otherwise.
fn progress() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bars::default())
    } else {
        Box::new(Quiet)
    }
}

/// The flags pull and push share.
pub struct Transfer<'a> {
    pub platform: &'a PlatformSpec,
    pub registry: &'a RegistryArgs,
    pub jobs: usize,
    pub all: bool,
}

pub fn pull(
    store: &Store,
    how: &Transfer<'_>,
    extract: Option<Limits>,
    reference: &str,
) -> Result<ExitCode> {
    let remote = RemoteRef::parse(reference)?;
    let opts = PullOptions {
        client: client_options(how.registry, &remote.registry)?,
        platform: how.platform.clone(),
        jobs: how.jobs,
        extract,
        all_platforms: how.all,
    };
    let pulled = registry::pull(store, &remote, &opts, &*progress())
        .with_context(|| format!("pull {remote}"))?;
    println!("{} {}", pulled.name, pulled.manifest);
    Ok(ExitCode::SUCCESS)
}

pub fn push(
    store: &Store,
    how: &Transfer<'_>,
    chunk_size: u64,
    image: &str,
    reference: &str,
) -> Result<ExitCode> {
    let remote = RemoteRef::parse(reference)?;
    let opts = PushOptions {
        client: client_options(how.registry, &remote.registry)?,
        platform: how.platform.clone(),
        jobs: how.jobs,
        chunk_size,
        all_platforms: how.all,
    };
    let pushed = registry::push(store, image, &remote, &opts, &*progress())
        .with_context(|| format!("push {image} to {remote}"))?;
    println!(
        "{remote} {} uploaded={} existed={} mounted={}",
        pushed.manifest, pushed.uploaded, pushed.existed, pushed.mounted
    );
    Ok(ExitCode::SUCCESS)
}

pub fn login(
    args: &RegistryArgs,
    username: Option<String>,
    password: Option<String>,
    password_stdin: bool,
    server: &str,
) -> Result<ExitCode> {
    let server = registry_name(server)?;
    let username = match username {
        Some(u) => u,
        None => prompt("Username: ", true)?,
    };
    let password = match (password, password_stdin) {
        (Some(p), _) => p,
        (None, true) => read_stdin_line()?,
        (None, false) => prompt("Password: ", false)?,
    };
    if username.is_empty() || password.is_empty() {
        bail!("login needs a user name and a password");
    }
    let creds = Credentials { username, password };
    let mut opts = client_options(args, &server)?;
    opts.credentials = Some(creds.clone());
    // Connecting answers the registry's challenge with the credentials:
    // wrong ones fail here, before anything is stored.
    registry::Client::connect(registry::reference::api_host(&server), Vec::new(), &opts)
        .with_context(|| format!("log in to {server}"))?;
    let path = auth_file(args.authfile.clone());
    auth::store(&path, &server, &creds)?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

pub fn logout(authfile: Option<PathBuf>, server: &str) -> Result<ExitCode> {
    let server = registry_name(server)?;
    let path = auth_file(authfile);
    if !auth::remove(&path, &server)? {
        bail!("not logged in to {server} (in {})", path.display());
    }
    println!("Removed login credentials for {server}");
    Ok(ExitCode::SUCCESS)
}

pub fn tags(args: &RegistryArgs, repository: &str) -> Result<ExitCode> {
    let repo = RemoteRef::parse_repository(repository)?;
    let tags = list_tags(&repo, &client_options(args, &repo.registry)?)
        .with_context(|| format!("list tags of {}", repo.name()))?;
    let mut out = std::io::stdout().lock();
    for tag in tags {
        writeln!(out, "{tag}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A registry name as given to login/logout: `host[:port]`, with an
/// optional scheme or path dropped.
fn registry_name(server: &str) -> Result<String> {
    let s = server
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or("");
    // Parse through a reference to reuse the domain validation.
    let parsed = RemoteRef::parse(&format!("{host}/x"))
        .ok()
        .filter(|r| r.registry == host);
    match parsed {
        Some(r) => Ok(r.registry),
        None => bail!("invalid registry name {server:?}"),
    }
}

fn read_stdin_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("read password from stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Ask on the terminal; the password without echo.
fn prompt(label: &str, echo: bool) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "{} not given and stdin is not a terminal",
            label.trim_end_matches(": ")
        );
    }
    eprint!("{label}");
    std::io::stderr().flush()?;
    let saved = rustix::termios::tcgetattr(&stdin).context("read terminal settings")?;
    if !echo {
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet)
            .context("turn off echo")?;
    }
    let line = read_stdin_line();
    if !echo {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &saved);
        eprintln!();
    }
    line
}

/// One indicatif bar per blob, under a MultiProgress.
#[derive(Default)]
struct Bars {
    multi: indicatif::MultiProgress,
}

impl Progress for Bars {
    fn blob(&self, digest: &Digest, size: u64) -> Box<dyn BlobProgress> {
        let bar = self.multi.add(indicatif::ProgressBar::new(size));
        let style = indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        bar.set_prefix(digest.short().to_owned());
        Box::new(Bar(bar))
    }
}

struct Bar(indicatif::ProgressBar);

impl BlobProgress for Bar {
    fn position(&self, done: u64) {
        self.0.set_position(done);
    }
    fn finish(&self, note: &str) {
        self.0.finish_with_message(note.to_owned());
    }
}
