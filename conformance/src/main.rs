//! berth-conformance: an OCI runtime-spec conformance suite run against any runtime binary with
//! runc's command line.
//!
//! Usage: berth-conformance --runtime PATH --checker PATH [--busybox PATH] [--jobs N]
//!                          [--filter TEXT[|TEXT...]] [--results FILE] [--list]
//!
//! Prints TAP (one line per test, named after the spec section and requirement), then a table
//! per section and the line `conformance: N passed, N failed, N skipped`. Exits 1 when a test
//! failed, 2 on bad usage or a broken setup.

mod console;
mod harness;
mod outcome;
mod report;
mod tests;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use harness::{Sandbox, Suite};
use outcome::Outcome;
use report::{Status, TestRecord};

struct Options {
    runtime: PathBuf,
    checker: PathBuf,
    busybox: PathBuf,
    jobs: usize,
    filter: Option<String>,
    results: Option<PathBuf>,
    list: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        runtime: PathBuf::new(),
        checker: PathBuf::new(),
        busybox: PathBuf::from("/bin/busybox"),
        jobs: 2,
        filter: None,
        results: None,
        list: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--runtime" => options.runtime = PathBuf::from(value("--runtime")?),
            "--checker" => options.checker = PathBuf::from(value("--checker")?),
            "--busybox" => options.busybox = PathBuf::from(value("--busybox")?),
            "--jobs" => {
                let text = value("--jobs")?;
                options.jobs = text
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("bad --jobs {text:?}"))?;
            }
            "--filter" => options.filter = Some(value("--filter")?),
            "--results" => options.results = Some(PathBuf::from(value("--results")?)),
            "--list" => options.list = true,
            "-h" | "--help" => {
                return Err(
                    "usage: berth-conformance --runtime PATH --checker PATH [--busybox PATH] \
                            [--jobs N] [--filter TEXT[|TEXT...]] [--results FILE] [--list]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if options.list {
        return Ok(options);
    }
    for (flag, path) in [
        ("--runtime", &options.runtime),
        ("--checker", &options.checker),
        ("--busybox", &options.busybox),
    ] {
        if path.as_os_str().is_empty() {
            return Err(format!("{flag} is required"));
        }
        if !path.is_file() {
            return Err(format!("{flag} {}: no such file", path.display()));
        }
    }
    options.runtime =
        std::fs::canonicalize(&options.runtime).map_err(|e| format!("--runtime: {e}"))?;
    if is_dynamically_linked(&options.checker)? {
        return Err(format!(
            "{} is dynamically linked: build it with RUSTFLAGS=\"-C target-feature=+crt-static\" (see conformance/run.sh)",
            options.checker.display()
        ));
    }
    Ok(options)
}

/// True when an ELF file asks for a program interpreter (a static binary has no PT_INTERP).
fn is_dynamically_linked(path: &Path) -> Result<bool, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let field = |at: usize, len: usize| -> Result<u64, String> {
        let slice = bytes
            .get(at..at + len)
            .ok_or(format!("{} is not a 64-bit ELF file", path.display()))?;
        let mut value = 0u64;
        for (i, b) in slice.iter().enumerate() {
            value |= u64::from(*b) << (8 * i);
        }
        Ok(value)
    };
    if bytes.get(0..5) != Some(b"\x7fELF\x02") {
        return Err(format!("{} is not a 64-bit ELF file", path.display()));
    }
    let (phoff, phentsize, phnum) = (field(0x20, 8)?, field(0x36, 2)?, field(0x38, 2)?);
    const PT_INTERP: u64 = 3;
    for i in 0..phnum {
        if field((phoff + i * phentsize) as usize, 4)? == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("berth-conformance: {message}");
            std::process::exit(2);
        }
    };
    let selected: Vec<tests::Test> = tests::all()
        .into_iter()
        .filter(|t| {
            options
                .filter
                .as_ref()
                .is_none_or(|f| f.split('|').any(|alt| t.name.contains(alt)))
        })
        .collect();
    if options.list {
        for test in &selected {
            println!("{}", test.name);
        }
        return;
    }
    let suite = match Suite::new(options.runtime.clone(), &options.checker, &options.busybox) {
        Ok(suite) => suite,
        Err(message) => {
            eprintln!("berth-conformance: setup failed: {message}");
            std::process::exit(2);
        }
    };
    // The umask every container without process.user.umask must keep (see config.md tests).
    // SAFETY: umask has no memory effects.
    unsafe { libc::umask(0o022) };
    println!("# runtime: {}", options.runtime.display());
    println!("TAP version 13");
    println!("1..{}", selected.len());
    let records = run_all(&suite, &selected, options.jobs);
    suite.cleanup();
    let summary = report::print_summary(&records);
    if let Some(path) = &options.results {
        if let Err(e) = report::write_results(path, &records) {
            eprintln!("berth-conformance: write {}: {e}", path.display());
            std::process::exit(2);
        }
    }
    std::process::exit(if summary.failed > 0 { 1 } else { 0 });
}

/// Runs the tests on `jobs` threads; each TAP line is printed as its test ends.
fn run_all(suite: &Suite, selected: &[tests::Test], jobs: usize) -> Vec<TestRecord> {
    let next = AtomicUsize::new(0);
    let printed = Mutex::new(0usize);
    let records = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(selected.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(test) = selected.get(index) else {
                    break;
                };
                let record = run_one(suite, index, test);
                let mut number = printed.lock().unwrap_or_else(|e| e.into_inner());
                *number += 1;
                report::print_tap_line(*number, &record);
                let _ = std::io::stdout().flush();
                records
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(record);
            });
        }
    });
    let mut records = records.into_inner().unwrap_or_else(|e| e.into_inner());
    records.sort_by_key(|r| r.index);
    records
}

fn run_one(suite: &Suite, index: usize, test: &tests::Test) -> TestRecord {
    let started = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut sandbox = Sandbox::new(suite, index)?;
        (test.run)(&mut sandbox)
    }));
    let status = match result {
        Ok(Ok(())) => Status::Pass,
        Ok(Err(Outcome::Fail(why))) => Status::Fail(why),
        Ok(Err(Outcome::Skip(why))) => Status::Skip(why),
        Err(_) => Status::Fail("the test panicked (a bug in the suite)".into()),
    };
    TestRecord {
        index,
        name: test.name,
        status,
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod unit {
    use super::is_dynamically_linked;

    /// A minimal ELF64 file: header plus one program header of the given type.
    fn elf_with_segment(p_type: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 + 56];
        bytes[0..5].copy_from_slice(b"\x7fELF\x02");
        bytes[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        bytes[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        bytes[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        bytes[64..68].copy_from_slice(&p_type.to_le_bytes());
        bytes
    }

    fn check(bytes: &[u8]) -> Result<bool, String> {
        let path = std::env::temp_dir().join(format!(
            "conformance-elf-{}-{}",
            std::process::id(),
            bytes.len()
        ));
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        let result = is_dynamically_linked(&path);
        let _ = std::fs::remove_file(&path);
        result
    }

    #[test]
    fn an_interpreter_segment_means_dynamic() {
        assert_eq!(check(&elf_with_segment(3)), Ok(true));
        assert_eq!(check(&elf_with_segment(1)), Ok(false));
    }

    #[test]
    fn non_elf_files_are_refused() {
        assert!(check(b"#!/bin/sh\necho not elf, padded to a reasonable length\n").is_err());
    }
}
