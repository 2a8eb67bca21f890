//! The tests, one per requirement, each named `FILE/SECTION[/FIELD]: requirement` after the part
//! of the OCI runtime specification it checks, with the spec's wording quoted in a comment.

mod cgroups;
mod config;
mod features;
mod hooks;
mod linux;
mod runtime;

use crate::harness::Sandbox;
use crate::outcome::TestResult;

pub struct Test {
    pub name: &'static str,
    pub run: fn(&mut Sandbox) -> TestResult,
}

pub fn t(name: &'static str, run: fn(&mut Sandbox) -> TestResult) -> Test {
    Test { name, run }
}

/// Every test, in the order of the specification's files.
pub fn all() -> Vec<Test> {
    let mut tests = Vec::new();
    tests.extend(runtime::tests());
    tests.extend(config::tests());
    tests.extend(hooks::tests());
    tests.extend(linux::tests());
    tests.extend(cgroups::tests());
    tests.extend(features::tests());
    tests
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn names_are_unique_and_name_a_spec_file() {
        let tests = all();
        let mut names: Vec<&str> = tests.iter().map(|t| t.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate test names");
        for name in names {
            assert!(name.contains(".md"), "{name} names no spec file");
            assert!(name.contains(": "), "{name} states no requirement");
            // '#' starts a TAP directive; a name holding one would be misread.
            assert!(!name.contains('#'), "{name} holds a '#'");
        }
    }
}
