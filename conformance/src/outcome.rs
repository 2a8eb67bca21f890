//! What a test concludes: it passed, failed (with what it saw) or was skipped (with the missing
//! host feature), and the small helpers tests use to say so.

use std::fmt;

/// Why a test did not pass.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The runtime did not do what the spec requires; the text says what was seen.
    Fail(String),
    /// The host lacks what the test needs; the text names the missing kernel feature.
    Skip(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Fail(why) => write!(f, "{why}"),
            Outcome::Skip(why) => write!(f, "skipped: {why}"),
        }
    }
}

/// A test's result: `Ok(())` is a pass.
pub type TestResult<T = ()> = Result<T, Outcome>;

/// Fails the test with a formatted message.
#[macro_export]
macro_rules! fail {
    ($($fmt:tt)*) => {
        return Err($crate::outcome::Outcome::Fail(format!($($fmt)*)))
    };
}

/// Fails the test unless the condition holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            $crate::fail!($($fmt)*);
        }
    };
}

/// Fails the test unless both sides are equal, showing both.
#[macro_export]
macro_rules! check_eq {
    ($seen:expr, $want:expr, $what:expr) => {
        // A match keeps temporaries in both expressions alive until the comparison is done.
        match (&$seen, &$want) {
            (seen, want) => {
                if seen != want {
                    $crate::fail!("{}: expected {:?}, got {:?}", $what, want, seen);
                }
            }
        }
    };
}

/// Skips the test, naming the missing host feature.
pub fn skip<T>(reason: impl Into<String>) -> TestResult<T> {
    Err(Outcome::Skip(reason.into()))
}

/// Adds what the harness was doing to an I/O error and turns it into a failure.
pub trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> TestResult<T>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> TestResult<T> {
        self.map_err(|e| Outcome::Fail(format!("{}: {e}", what())))
    }
}
