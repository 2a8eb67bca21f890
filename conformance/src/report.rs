//! TAP lines, the per-section table, the closing summary and the results file compare.sh reads.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

pub enum Status {
    Pass,
    Fail(String),
    Skip(String),
}

pub struct TestRecord {
    pub index: usize,
    pub name: &'static str,
    pub status: Status,
    pub elapsed: Duration,
}

#[derive(Default)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Counts {
    fn add(&mut self, status: &Status) {
        match status {
            Status::Pass => self.passed += 1,
            Status::Fail(_) => self.failed += 1,
            Status::Skip(_) => self.skipped += 1,
        }
    }
}

/// `runtime.md/state: ...` → `runtime.md/state`; the section is the name up to its second '/'
/// or its ':'.
pub fn section_of(name: &str) -> &str {
    let head = name.split(':').next().unwrap_or(name);
    match head.match_indices('/').nth(1) {
        Some((at, _)) => &head[..at],
        None => head,
    }
}

pub fn print_tap_line(number: usize, record: &TestRecord) {
    let secs = record.elapsed.as_secs_f64();
    match &record.status {
        Status::Pass => println!("ok {number} - {} ({secs:.2}s)", record.name),
        Status::Skip(why) => println!("ok {number} - {} # SKIP {why}", record.name),
        Status::Fail(why) => {
            println!("not ok {number} - {} ({secs:.2}s)", record.name);
            for line in why.lines() {
                println!("  # {line}");
            }
        }
    }
}

/// Prints the per-section table and the closing summary line; returns the totals.
pub fn print_summary(records: &[TestRecord]) -> Counts {
    let mut sections: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut total = Counts::default();
    for record in records {
        sections
            .entry(section_of(record.name))
            .or_default()
            .add(&record.status);
        total.add(&record.status);
    }
    let width = sections.keys().map(|s| s.len()).max().unwrap_or(7).max(7);
    println!("#");
    println!(
        "# {:<width$}  {:>6}  {:>6}  {:>7}",
        "section", "passed", "failed", "skipped"
    );
    for (section, counts) in &sections {
        println!(
            "# {section:<width$}  {:>6}  {:>6}  {:>7}",
            counts.passed, counts.failed, counts.skipped
        );
    }
    println!(
        "# {:<width$}  {:>6}  {:>6}  {:>7}",
        "total", total.passed, total.failed, total.skipped
    );
    println!(
        "conformance: {} passed, {} failed, {} skipped",
        total.passed, total.failed, total.skipped
    );
    total
}

/// One line per test, `pass|fail|skip<TAB>name`, for compare.sh.
pub fn write_results(path: &Path, records: &[TestRecord]) -> io::Result<()> {
    let mut text = Vec::new();
    for record in records {
        let word = match record.status {
            Status::Pass => "pass",
            Status::Fail(_) => "fail",
            Status::Skip(_) => "skip",
        };
        writeln!(text, "{word}\t{}", record.name)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn sections_stop_at_the_second_slash_or_colon() {
        assert_eq!(section_of("runtime.md/state: pid"), "runtime.md/state");
        assert_eq!(
            section_of("config.md/process/cwd: MUST be absolute"),
            "config.md/process"
        );
        assert_eq!(section_of("features.md: valid JSON"), "features.md");
    }
}
