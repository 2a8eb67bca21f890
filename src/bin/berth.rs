//! `berth`: the runc-compatible command line over the runtime library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use berth::runtime::commands::{info, lifecycle, run};
use berth::runtime::create::{self, CreateOptions};
use berth::runtime::{log, signal};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "berth", about = "A low-level OCI container runtime, command-line compatible with runc", disable_version_flag = true)]
struct Cli {
    /// Directory for the containers' state
    #[arg(long, default_value = "/run/berth")]
    root: PathBuf,
    /// Write log lines (and errors) to this file
    #[arg(long)]
    log: Option<PathBuf>,
    /// Format of the log lines
    #[arg(long = "log-format", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log debug lines too
    #[arg(long)]
    debug: bool,
    /// Accepted for runc compatibility: cgroups through systemd
    #[arg(long = "systemd-cgroup")]
    _systemd_cgroup: bool,
    /// Accepted for runc compatibility (true, false or auto)
    #[arg(id = "global_rootless", long = "rootless", num_args = 0..=1, default_missing_value = "true")]
    _rootless: Option<String>,
    /// Accepted for runc compatibility (checkpointing is not supported)
    #[arg(long, hide = true)]
    _criu: Option<String>,
    /// Print the version
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
struct CreateArgs {
    /// Path to the bundle (the directory holding config.json)
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Write the container's init pid to this file
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not give the container a session keyring of its own
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass this many extra descriptors (from 3 up) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Container id
    id: String,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container, blocked before its user program
    Create(CreateArgs),
    /// Start a created container's user program
    Start { id: String },
    /// Print the OCI state of a container
    State { id: String },
    /// Send a signal to a container's init (default SIGTERM)
    Kill {
        /// Signal every process of the container
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and its state
    Delete {
        /// Kill the container first if it is running
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Create and start a container, and wait for it unless detached
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return after starting the container
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container's state after it exits
        #[arg(long)]
        keep: bool,
        /// Do not become a subreaper for the container's orphans
        #[arg(long = "no-subreaper")]
        no_subreaper: bool,
    },
    /// List containers
    #[command(alias = "ps-list")]
    List {
        /// table or json
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        /// Print only container ids
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Write a default config.json
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// A config for a container started by an unprivileged user
        #[arg(long)]
        rootless: bool,
    },
    /// Print the features this build supports, as JSON
    Features,
}

/// runc (urfave/cli) also accepts long flags with one dash (`-root`); clap wants two.
fn normalize_args(args: impl Iterator<Item = String>) -> Vec<String> {
    const LONG: &[&str] = &[
        "root", "log", "log-format", "debug", "systemd-cgroup", "rootless", "criu", "bundle",
        "console-socket", "pid-file", "no-pivot", "no-new-keyring", "preserve-fds", "detach",
        "keep", "no-subreaper", "force", "all", "format", "quiet", "version",
    ];
    args.map(|a| {
        let name = a.strip_prefix('-').filter(|rest| !rest.starts_with('-'));
        match name.map(|n| n.split('=').next().unwrap_or(n)) {
            Some(n) if LONG.contains(&n) => format!("-{a}"),
            _ => a,
        }
    })
    .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(normalize_args(std::env::args()));
    let format = match cli.log_format {
        LogFormat::Text => log::Format::Text,
        LogFormat::Json => log::Format::Json,
    };
    log::init(cli.log.clone(), format, cli.debug);
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = format!("{e:#}");
            log::error(&msg);
            eprintln!("berth: {msg}");
            ExitCode::from(1)
        }
    }
}

fn create_options(root: PathBuf, a: CreateArgs) -> CreateOptions {
    CreateOptions {
        id: a.id,
        bundle: a.bundle,
        root,
        console_socket: a.console_socket,
        pid_file: a.pid_file,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        keep_console: false,
    }
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).context("writing JSON")?;
    writeln!(out).context("writing JSON")?;
    Ok(())
}

fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    if cli.version {
        println!("berth version {}\nspec: {}", env!("CARGO_PKG_VERSION"), berth::runtime::container::OCI_VERSION);
        return Ok(0);
    }
    let root = cli.root;
    let Some(command) = cli.command else {
        anyhow::bail!("no command given: see berth --help");
    };
    match command {
        Command::Create(a) => {
            let created = create::create(&create_options(root, a))?;
            drop(created);
        }
        Command::Start { id } => lifecycle::start(&root, &id)?,
        Command::State { id } => print_json(&lifecycle::state(&root, &id)?)?,
        Command::Kill { all, id, signal } => {
            let sig = signal::parse(&signal)?;
            lifecycle::kill(&root, &id, sig, all)?;
        }
        Command::Delete { force, id } => lifecycle::delete(&root, &id, force)?,
        Command::Run {
            create,
            detach,
            keep,
            no_subreaper,
        } => {
            let code = run::run(run::RunOptions {
                create: create_options(root, create),
                detach,
                keep,
                no_subreaper,
            })?;
            return Ok(code.clamp(0, 255) as u8);
        }
        Command::List { format, quiet } => {
            let states = info::list(&root)?;
            if quiet {
                for s in &states {
                    println!("{}", s.id);
                }
            } else if format == "json" {
                print_json(&states)?;
            } else if format == "table" {
                print!("{}", info::format_table(&states));
            } else {
                anyhow::bail!("invalid format option {format:?}: table or json");
            }
        }
        Command::Spec { bundle, rootless } => info::write_spec(&bundle, rootless)?,
        Command::Features => print_json(&info::features())?,
    }
    Ok(0)
}
