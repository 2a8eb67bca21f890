//! bale: the layered OCI image tool beside the berth runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod commands;

#[derive(Parser, Debug)]
#[command(
    name = "bale",
    version,
    about = "Layered OCI images for the berth runtime"
)]
struct Cli {
    /// Image store (an OCI image layout plus bale's layer cache).
    #[arg(long, global = true, default_value = "/var/lib/bale")]
    root: PathBuf,
    /// Platform to pick from multi-platform images (os/arch[/variant]).
    #[arg(long, global = true, default_value = "linux/amd64")]
    platform: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum OutputFormat {
    Table,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum ArchiveFormat {
    OciArchive,
    DockerArchive,
    OciDir,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum CompressionArg {
    Gzip,
    Zstd,
    None,
}

#[derive(clap::Args, Debug, Clone)]
struct LimitArgs {
    /// Largest decompressed size of one layer, in bytes.
    #[arg(long, default_value_t = 64 << 30)]
    max_layer_bytes: u64,
    /// Largest number of entries in one layer.
    #[arg(long, default_value_t = 4_000_000)]
    max_layer_entries: u64,
}

/// How to reach registries (pull, push, login, tags).
#[derive(clap::Args, Debug, Clone)]
struct RegistryArgs {
    /// Verify TLS certificates; `--tls-verify=false` also allows plain
    /// HTTP (always allowed for registries on localhost).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// Directory of extra CA certificates (*.crt) to trust.
    #[arg(long)]
    cert_dir: Option<PathBuf>,
    /// Credentials file (docker config.json format).
    #[arg(long)]
    authfile: Option<PathBuf>,
    /// USER:PASSWORD to use instead of stored credentials.
    #[arg(long)]
    creds: Option<String>,
    /// Retries of a request that failed for a transient reason (network,
    /// 5xx, 429), with exponential backoff.
    #[arg(long, default_value_t = 3)]
    retry_times: u32,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Pull an image from a registry (REF: host[:port]/repo[:tag][@sha256:…]).
    Pull {
        #[command(flatten)]
        registry: RegistryArgs,
        /// Blobs downloaded in parallel.
        #[arg(short, long, default_value_t = 4)]
        jobs: usize,
        /// Also extract the layers into the layer cache (while they
        /// download).
        #[arg(long)]
        extract: bool,
        /// From a multi-platform index, pull every image and keep the
        /// index (default: only --platform's image).
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        limits: LimitArgs,
        reference: String,
    },
    /// Push an image to a registry.
    Push {
        #[command(flatten)]
        registry: RegistryArgs,
        /// Blobs uploaded in parallel.
        #[arg(short, long, default_value_t = 4)]
        jobs: usize,
        /// Upload blobs larger than this many bytes in chunks of this size
        /// (0: one request per blob).
        #[arg(long, default_value_t = 0)]
        chunk_size: u64,
        /// When the image is a multi-platform index, push the index and
        /// every image in it (default: only --platform's image).
        #[arg(long)]
        all: bool,
        image: String,
        reference: String,
    },
    /// Store credentials for a registry.
    Login {
        #[command(flatten)]
        registry: RegistryArgs,
        #[arg(short, long)]
        username: Option<String>,
        #[arg(short, long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
        server: String,
    },
    /// Forget the credentials for a registry.
    Logout {
        /// Credentials file (docker config.json format).
        #[arg(long)]
        authfile: Option<PathBuf>,
        server: String,
    },
    /// List the tags of a repository in a registry.
    Tags {
        #[command(flatten)]
        registry: RegistryArgs,
        repository: String,
    },
    /// Import images from an oci-archive, docker-archive or OCI layout directory.
    Import {
        /// Source format; guessed from the source when left out.
        #[arg(long)]
        format: Option<ArchiveFormat>,
        source: PathBuf,
        /// Name for the image (needed when the source names none).
        name: Option<String>,
    },
    /// Export images as an oci-archive or docker-archive.
    Export {
        #[arg(long, value_enum, default_value = "oci-archive")]
        format: ArchiveFormat,
        /// Output file, `-` for stdout.
        #[arg(short, long)]
        output: PathBuf,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// List images.
    Images {
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Show an image's manifest, config, layers and history.
    Inspect {
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        image: String,
    },
    /// Show an image's history.
    History {
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        image: String,
    },
    /// Give an image another name.
    Tag { source: String, target: String },
    /// Remove image names (blobs go with `bale gc`).
    Rm {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Drop blobs and extracted layers nothing refers to.
    Gc,
    /// Unpack an image into a runtime bundle.
    Unpack {
        /// Plain directory instead of an overlay mount.
        #[arg(long)]
        copy: bool,
        /// Allocate a terminal for the process.
        #[arg(short, long)]
        tty: bool,
        #[command(flatten)]
        limits: LimitArgs,
        image: String,
        bundle: PathBuf,
    },
    /// Mount a bundle's overlay again (after a reboot or umount).
    Mount { bundle: PathBuf },
    /// Release a bundle's overlay.
    Umount { bundle: PathBuf },
    /// Unmount and delete a bundle made by bale.
    Delete { bundle: PathBuf },
    /// Turn a bundle's writable layer into a new image.
    Commit {
        #[arg(short, long)]
        message: Option<String>,
        #[arg(short, long)]
        author: Option<String>,
        #[arg(long, value_enum, default_value = "gzip")]
        compression: CompressionArg,
        bundle: PathBuf,
        image: String,
    },
    /// Unpack an image to a fresh bundle and run it in the foreground.
    Run {
        /// Delete the container's bundle after it exits.
        #[arg(long)]
        rm: bool,
        /// Runtime binary (default: berth next to bale, then $PATH).
        #[arg(long)]
        runtime: Option<PathBuf>,
        /// Container ID (default: generated).
        #[arg(long)]
        name: Option<String>,
        /// Plain directory instead of an overlay mount.
        #[arg(long)]
        copy: bool,
        /// Allocate a terminal (default: when stdin is one).
        #[arg(short, long)]
        tty: bool,
        image: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when the reader of our output
    // goes away (`bale images | head`) instead of panicking on EPIPE.
    // SAFETY: restoring the default disposition installs no handler code.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("bale: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: library errors already carry
/// their cause in their own message, which `{:#}` would repeat.
fn one_line(err: &anyhow::Error) -> String {
    let mut msg = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
    }
    msg
}
