//! The CLI edge: each subcommand opens the store, calls the library and
//! prints. Errors become anyhow errors with context here.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bale::archive::{self, Format, ImportOptions};
use bale::bundle::{self, BundleMeta, RootfsMode, UnpackOptions};
use bale::commit::{self, CommitOptions, LayerCompression};
use bale::digest::Digest;
use bale::image::{load_image, Image, PlatformSpec};
use bale::layer::Limits;
use bale::reference::Reference;
use bale::store::Store;

use self::registry as reg;
use crate::{ArchiveFormat, Cli, Command, CompressionArg, LimitArgs, OutputFormat};

mod inspect;
mod registry;
mod run;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let platform: PlatformSpec = cli.platform.parse()?;
    let root = cli.root;
    match cli.command {
        Command::Pull {
            registry,
            jobs,
            extract,
            all,
            limits,
            reference,
        } => {
            let limits = extract.then(|| unpack_options(false, false, Vec::new(), &limits).limits);
            let how = reg::Transfer {
                platform: &platform,
                registry: &registry,
                jobs,
                all,
            };
            reg::pull(&open(&root)?, &how, limits, &reference)
        }
        Command::Push {
            registry,
            jobs,
            chunk_size,
            all,
            image,
            reference,
        } => {
            let how = reg::Transfer {
                platform: &platform,
                registry: &registry,
                jobs,
                all,
            };
            reg::push(&open(&root)?, &how, chunk_size, &image, &reference)
        }
        Command::Login {
            registry,
            username,
            password,
            password_stdin,
            server,
        } => reg::login(&registry, username, password, password_stdin, &server),
        Command::Logout { authfile, server } => reg::logout(authfile, &server),
        Command::Tags {
            registry,
            repository,
        } => reg::tags(&registry, &repository),
        Command::Import {
            format,
            source,
            name,
        } => import(&root, &platform, format, &source, name.as_deref()),
        Command::Export {
            format,
            output,
            images,
        } => export(&root, &platform, format, &output, &images),
        Command::Images { format } => inspect::images(&open(&root)?, &platform, format),
        Command::Inspect { format, image } => {
            inspect::inspect(&open(&root)?, &platform, &image, format)
        }
        Command::History { format, image } => {
            inspect::history(&open(&root)?, &platform, &image, format)
        }
        Command::Tag { source, target } => tag(&root, &source, &target),
        Command::Rm { images } => remove(&root, &images),
        Command::Gc => gc(&root),
        Command::Unpack {
            copy,
            tty,
            limits,
            image,
            bundle,
        } => {
            let store = open(&root)?;
            let opts = unpack_options(copy, tty, Vec::new(), &limits);
            unpack(&store, &platform, &image, &bundle, &opts)?;
            println!("{}", bundle.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Mount { bundle } => mount(&root, &platform, &bundle),
        Command::Umount { bundle } => {
            bundle::umount_bundle(&bundle)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Delete { bundle } => {
            let store = open_for_bundle(&root, &bundle)?;
            bundle::remove_bundle(&store, &absolute(&bundle)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Commit {
            message,
            author,
            compression,
            bundle,
            image,
        } => commit_bundle(&root, &bundle, &image, message, author, compression),
        Command::Run {
            rm,
            runtime,
            name,
            copy,
            tty,
            image,
            command,
        } => {
            let opts = run::RunOptions {
                remove: rm,
                runtime,
                id: name,
                copy,
                tty,
                image,
                command,
            };
            run::run(&root, &platform, opts)
        }
    }
}

fn open(root: &Path) -> Result<Store> {
    Store::open(root).with_context(|| format!("open store {}", root.display()))
}

/// Bundles remember their store; prefer it over --root.
fn open_for_bundle(root: &Path, bundle: &Path) -> Result<Store> {
    let meta = BundleMeta::load(bundle)?;
    if meta.store.is_dir() {
        open(&meta.store)
    } else {
        open(root)
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    path.canonicalize()
        .with_context(|| format!("resolve {}", path.display()))
}

pub(crate) fn resolve_image(
    store: &Store,
    platform: &PlatformSpec,
    wanted: &str,
) -> Result<(String, Image)> {
    let (name, desc) = store.resolve(wanted)?;
    let image = load_image(store, &desc, platform).with_context(|| format!("load image {name}"))?;
    Ok((name, image))
}

fn import(
    root: &Path,
    platform: &PlatformSpec,
    format: Option<ArchiveFormat>,
    source: &Path,
    name: Option<&str>,
) -> Result<ExitCode> {
    let store = open(root)?;
    let format = match format {
        Some(ArchiveFormat::OciArchive) => Format::OciArchive,
        Some(ArchiveFormat::DockerArchive) => Format::DockerArchive,
        Some(ArchiveFormat::OciDir) => Format::OciDir,
        None => archive::detect_format(source)?,
    };
    let opts = ImportOptions {
        platform: platform.clone(),
        name: name.map(Reference::parse).transpose()?,
    };
    let bar = progress_bar();
    let mut progress = |what: &str, bytes: u64| {
        if let Some(bar) = &bar {
            bar.set_message(format!("{what} ({})", human_size(bytes)));
            bar.tick();
        }
    };
    let imported = archive::import(&store, source, format, &opts, &mut progress)
        .with_context(|| format!("import {}", source.display()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for (name, digest) in imported {
        println!("{name} {digest}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A spinner on stderr, only when stderr is a terminal.
fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} importing {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    Some(bar)
}

fn export(
    root: &Path,
    platform: &PlatformSpec,
    format: ArchiveFormat,
    output: &Path,
    wanted: &[String],
) -> Result<ExitCode> {
    let store = open(root)?;
    let format = match format {
        ArchiveFormat::OciArchive => Format::OciArchive,
        ArchiveFormat::DockerArchive => Format::DockerArchive,
        ArchiveFormat::OciDir => bail!("export writes archives: oci-archive or docker-archive"),
    };
    let mut images = Vec::new();
    for w in wanted {
        let (name, image) = resolve_image(&store, platform, w)?;
        let reference = Reference::parse(&name)
            .with_context(|| format!("image {w} has no name:tag to export under"))?;
        images.push((reference, image));
    }
    if output == Path::new("-") {
        let stdout = std::io::stdout().lock();
        archive::export(&store, &images, format, std::io::BufWriter::new(stdout))?;
        return Ok(ExitCode::SUCCESS);
    }
    // Temp file beside the output, renamed on success: no half archives.
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".bale-export-")
        .tempfile_in(dir)
        .with_context(|| format!("create temp file in {}", dir.display()))?;
    archive::export(
        &store,
        &images,
        format,
        std::io::BufWriter::new(tmp.as_file_mut()),
    )?;
    tmp.as_file().sync_all().context("sync archive")?;
    tmp.persist(output)
        .map_err(|e| e.error)
        .with_context(|| format!("write {}", output.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn tag(root: &Path, source: &str, target: &str) -> Result<ExitCode> {
    let store = open(root)?;
    let (_, desc) = store.resolve(source)?;
    let target = Reference::parse(target)?;
    store.set_tag(&target, &desc)?;
    Ok(ExitCode::SUCCESS)
}

fn remove(root: &Path, images: &[String]) -> Result<ExitCode> {
    let store = open(root)?;
    for wanted in images {
        let (name, _) = store.resolve(wanted)?;
        store.remove_tag(&name)?;
        println!("untagged {name}");
    }
    Ok(ExitCode::SUCCESS)
}

fn gc(root: &Path) -> Result<ExitCode> {
    let store = open(root)?;
    let report = bale::gc::collect(&store)?;
    println!(
        "removed {} blobs ({}) and {} extracted layers",
        report.blobs_removed,
        human_size(report.bytes_removed),
        report.layers_removed
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn unpack_options(
    copy: bool,
    tty: bool,
    args: Vec<String>,
    limits: &LimitArgs,
) -> UnpackOptions {
    UnpackOptions {
        mode: if copy {
            RootfsMode::Copy
        } else {
            RootfsMode::Overlay
        },
        terminal: tty,
        args,
        limits: Limits {
            max_bytes: limits.max_layer_bytes,
            max_entries: limits.max_layer_entries,
        },
    }
}

pub(crate) fn unpack(
    store: &Store,
    platform: &PlatformSpec,
    wanted: &str,
    bundle: &Path,
    opts: &UnpackOptions,
) -> Result<()> {
    let (name, image) = resolve_image(store, platform, wanted)?;
    bundle::unpack(store, &name, &image, bundle, opts)
        .with_context(|| format!("unpack {name} to {}", bundle.display()))
}

fn mount(root: &Path, platform: &PlatformSpec, bundle: &Path) -> Result<ExitCode> {
    let store = open_for_bundle(root, bundle)?;
    let meta = BundleMeta::load(bundle)?;
    let digest: Digest = meta.manifest.parse()?;
    let desc = oci_spec::image::Descriptor::new(
        oci_spec::image::MediaType::ImageManifest,
        store.verify_blob(&digest)?,
        digest.to_oci()?,
    );
    let image = load_image(&store, &desc, platform)?;
    bundle::mount_bundle(&store, &absolute(bundle)?, &image)?;
    Ok(ExitCode::SUCCESS)
}

fn commit_bundle(
    root: &Path,
    bundle: &Path,
    image: &str,
    message: Option<String>,
    author: Option<String>,
    compression: CompressionArg,
) -> Result<ExitCode> {
    let store = open_for_bundle(root, bundle)?;
    let target = Reference::parse(image)?;
    let opts = CommitOptions {
        message,
        author,
        compression: match compression {
            CompressionArg::Gzip => LayerCompression::Gzip,
            CompressionArg::Zstd => LayerCompression::Zstd,
            CompressionArg::None => LayerCompression::None,
        },
    };
    let done = commit::commit(&store, &absolute(bundle)?, &target, &opts)
        .with_context(|| format!("commit {} as {target}", bundle.display()))?;
    println!("{target} {}", done.manifest);
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Print JSON to stdout.
pub(crate) fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

pub(crate) fn is_json(format: OutputFormat) -> bool {
    format == OutputFormat::Json
}
