//! `berth`: the runc-compatible command line over the runtime library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use berth::runtime::commands::pidfd::PidfdSocket;
use berth::runtime::commands::{cgroup, exec, info, lifecycle, run};
use berth::runtime::create::CreateOptions;
use berth::runtime::{log, signal};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "berth",
    args_override_self = true,
    about = "A low-level OCI container runtime, command-line compatible with runc",
    disable_version_flag = true
)]
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
    /// cgroupsPath is slice:prefix:name: a systemd scope (cgroupfs when systemd is not running)
    #[arg(long = "systemd-cgroup")]
    systemd_cgroup: bool,
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
    /// Unix socket that receives a pidfd of the container's init
    #[arg(long = "pidfd-socket")]
    pidfd_socket: Option<PathBuf>,
    /// Container id
    id: String,
}

#[derive(Args)]
struct ExecArgs {
    /// Unix socket that receives the pty master when --tty (or process.terminal) is set
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Unix socket that receives a pidfd of the new process
    #[arg(long = "pidfd-socket")]
    pidfd_socket: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long)]
    cwd: Option<String>,
    /// Set an environment variable (NAME=VALUE), repeatable
    #[arg(short = 'e', long)]
    env: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Run as UID[:GID] (numbers)
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Additional group ids, repeatable
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// An OCI process JSON instead of the command and flags
    #[arg(short = 'p', long)]
    process: Option<PathBuf>,
    /// Return once the process has started
    #[arg(short = 'd', long)]
    detach: bool,
    /// Write the new process's pid to this file
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// SELinux label for the process
    #[arg(long = "process-label")]
    process_label: Option<String>,
    /// AppArmor profile for the process
    #[arg(long)]
    apparmor: Option<String>,
    /// Set no_new_privs for the process
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Add a capability (bounding, effective, permitted, ambient), repeatable
    #[arg(short = 'c', long = "cap")]
    cap: Vec<String>,
    /// Pass this many extra descriptors (from 3 up) to the process
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Run in an existing sub-cgroup: [CONTROLLER[,CONTROLLER]:]PATH, repeatable
    #[arg(long)]
    cgroup: Vec<String>,
    /// Allow exec in a paused container
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    /// Container id
    id: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
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
    /// Run a new process in a running container
    Exec(ExecArgs),
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// List the processes of a container
    Ps {
        /// table or json
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        id: String,
        /// Options passed to ps (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Change a running container's resource limits
    Update(UpdateArgs),
    /// Print container events (stats, OOM kills) as JSON lines
    Events {
        /// Print one stats event and exit
        #[arg(long)]
        stats: bool,
        /// Time between stats events (e.g. 5s, 500ms)
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
}

#[derive(Args)]
struct UpdateArgs {
    /// linux.resources JSON from a file, or - for stdin
    #[arg(short = 'r', long)]
    resources: Option<PathBuf>,
    #[arg(long)]
    memory: Option<String>,
    #[arg(long = "memory-swap")]
    memory_swap: Option<String>,
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    #[arg(long = "kernel-memory", hide = true)]
    kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", hide = true)]
    kernel_memory_tcp: Option<String>,
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    cpu_shares: Option<u64>,
    #[arg(long = "cpu-quota")]
    cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    id: String,
}

/// runc (urfave/cli) also accepts long flags with one dash (`-root`); clap wants two.
fn normalize_args(args: impl Iterator<Item = String>) -> Vec<String> {
    const LONG: &[&str] = &[
        "root",
        "log",
        "log-format",
        "debug",
        "systemd-cgroup",
        "rootless",
        "criu",
        "bundle",
        "console-socket",
        "pid-file",
        "no-pivot",
        "no-new-keyring",
        "preserve-fds",
        "detach",
        "keep",
        "no-subreaper",
        "force",
        "all",
        "format",
        "quiet",
        "version",
        "pidfd-socket",
        "cwd",
        "env",
        "tty",
        "user",
        "additional-gids",
        "process",
        "process-label",
        "apparmor",
        "no-new-privs",
        "cap",
        "cgroup",
        "ignore-paused",
    ];
    // Nothing after `--` is a flag of ours (an exec'd command's own arguments).
    let mut after_dashes = false;
    args.map(|a| {
        if after_dashes || a == "--" {
            after_dashes = true;
            return a;
        }
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
            report(&e);
            ExitCode::from(1)
        }
    }
}

/// The one error line: to the log and to stderr.
fn report(e: &anyhow::Error) {
    let msg = format!("{e:#}");
    log::error(&msg);
    eprintln!("berth: {msg}");
}

fn exec_options(root: PathBuf, a: ExecArgs) -> exec::ExecOptions {
    exec::ExecOptions {
        root,
        id: a.id,
        process: a.process,
        args: a.command,
        cwd: a.cwd,
        env: a.env,
        tty: a.tty,
        user: a.user,
        additional_gids: a.additional_gids,
        caps: a.cap,
        no_new_privs: a.no_new_privs,
        apparmor: a.apparmor,
        process_label: a.process_label,
        preserve_fds: a.preserve_fds,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        pidfd_socket: a.pidfd_socket,
        detach: a.detach,
        ignore_paused: a.ignore_paused,
        cgroup: a.cgroup,
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
        systemd_cgroup: false,
    }
}

/// The linux.resources patch `update` applies: the -r JSON, then each flag over it.
fn update_patch(a: &UpdateArgs) -> anyhow::Result<serde_json::Value> {
    let mut patch = match &a.resources {
        Some(p) if p.as_os_str() == "-" => serde_json::from_reader(std::io::stdin().lock())
            .context("parsing resources from stdin")?,
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            serde_json::from_reader(f).with_context(|| format!("parsing {}", p.display()))?
        }
        None => serde_json::json!({}),
    };
    let mut set = |section: &str, key: &str, value: serde_json::Value| {
        patch[section][key] = value;
    };
    if let Some(v) = &a.memory {
        set("memory", "limit", cgroup::parse_bytes(v)?.into());
    }
    if let Some(v) = &a.memory_swap {
        set("memory", "swap", cgroup::parse_bytes(v)?.into());
    }
    if let Some(v) = &a.memory_reservation {
        set("memory", "reservation", cgroup::parse_bytes(v)?.into());
    }
    if a.kernel_memory.is_some() || a.kernel_memory_tcp.is_some() {
        log::warn("kernel memory limits are deprecated and ignored");
    }
    if let Some(v) = a.cpu_shares {
        set("cpu", "shares", v.into());
    }
    if let Some(v) = a.cpu_quota {
        set("cpu", "quota", v.into());
    }
    if let Some(v) = a.cpu_period {
        set("cpu", "period", v.into());
    }
    if let Some(v) = a.cpu_rt_period {
        set("cpu", "realtimePeriod", v.into());
    }
    if let Some(v) = a.cpu_rt_runtime {
        set("cpu", "realtimeRuntime", v.into());
    }
    if let Some(v) = &a.cpuset_cpus {
        set("cpu", "cpus", v.clone().into());
    }
    if let Some(v) = &a.cpuset_mems {
        set("cpu", "mems", v.clone().into());
    }
    if let Some(v) = a.pids_limit {
        set("pids", "limit", v.into());
    }
    if let Some(v) = a.blkio_weight {
        set("blockIO", "weight", v.into());
    }
    Ok(patch)
}

/// Parses `5s`, `500ms`, `1m` or a bare number of seconds.
fn parse_interval(s: &str) -> anyhow::Result<std::time::Duration> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => anyhow::bail!("invalid interval {s:?}"),
    };
    if secs <= 0.0 {
        anyhow::bail!("invalid interval {s:?}");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Writes to stdout; a closed pipe (`berth list | head`) is not an error worth a panic.
fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("encoding JSON")?;
    text.push('\n');
    out(&text);
    Ok(())
}

fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    if cli.version {
        out(&format!(
            "berth version {}\nspec: {}\n",
            env!("CARGO_PKG_VERSION"),
            berth::runtime::container::OCI_VERSION
        ));
        return Ok(0);
    }
    let root = cli.root;
    let systemd_cgroup = cli.systemd_cgroup;
    let Some(command) = cli.command else {
        anyhow::bail!("no command given: see berth --help");
    };
    match command {
        Command::Create(a) => {
            // Before the pidfd socket connection, which a re-exec would drop.
            berth::runtime::exe_guard::ensure_protected()?;
            let pidfd_socket = a
                .pidfd_socket
                .as_deref()
                .map(PidfdSocket::connect)
                .transpose()?;
            let mut opts = create_options(root, a);
            opts.systemd_cgroup = systemd_cgroup;
            let created = run::create_with(&opts, pidfd_socket.as_ref())?;
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
            let pidfd_socket = create.pidfd_socket.clone();
            let mut create = create_options(root, create);
            create.systemd_cgroup = systemd_cgroup;
            let code = run::run(run::RunOptions {
                create,
                detach,
                keep,
                no_subreaper,
                pidfd_socket,
            })?;
            return Ok(code.clamp(0, 255) as u8);
        }
        Command::List { format, quiet } => {
            let states = info::list(&root)?;
            if quiet {
                for s in &states {
                    out(&format!("{}\n", s.id));
                }
            } else if format == "json" {
                print_json(&states)?;
            } else if format == "table" {
                out(&info::format_table(&states));
            } else {
                anyhow::bail!("invalid format option {format:?}: table or json");
            }
        }
        Command::Spec { bundle, rootless } => info::write_spec(&bundle, rootless)?,
        Command::Features => print_json(&info::features())?,
        // runc's code for a failed exec is 255, apart from the process's own exit codes.
        Command::Exec(a) => match exec::exec(&exec_options(root, a)) {
            Ok(code) => return Ok(code.clamp(0, 255) as u8),
            Err(e) => {
                report(&anyhow::Error::from(e).context("exec failed"));
                return Ok(255);
            }
        },
        Command::Pause { id } => cgroup::pause(&root, &id)?,
        Command::Resume { id } => cgroup::resume(&root, &id)?,
        Command::Ps {
            format,
            id,
            ps_args,
        } => {
            let pids = cgroup::pids(&root, &id)?;
            match format.as_str() {
                "json" => print_json(&pids)?,
                "table" => out(&cgroup::ps_table(&pids, &ps_args)?),
                other => anyhow::bail!("invalid format option {other:?}: table or json"),
            }
        }
        Command::Update(a) => cgroup::update(&root, &a.id, update_patch(&a)?)?,
        Command::Events {
            stats,
            interval,
            id,
        } => {
            if stats {
                let data = cgroup::stats(&root, &id)?;
                out(&format!(
                    "{}\n",
                    serde_json::json!({"type": "stats", "id": id, "data": data})
                ));
            } else {
                let interval = parse_interval(&interval)?;
                cgroup::events(&root, &id, interval, |event| {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{event}");
                    let _ = out.flush();
                })?;
            }
        }
    }
    Ok(0)
}
