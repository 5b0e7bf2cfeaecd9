//! Exit codes and the error type of the binary. Library errors are mapped here, once.

use std::fmt;
use std::process::ExitCode;

/// Documented exit codes (see `prsm --help` and README.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    Success = 0,
    ExpectationFailed = 1,
    /// A run limit (events, pending events) stopped a run.
    LimitReached = 5,
    /// The liveness checker found a request that did not commit within its bound.
    LivenessFailure = 4,
    /// A safety checker (agreement, prefix consistency, validity) found a violation.
    SafetyViolation = 3,
    BadInput = 2,
    OutputFailed = 6,
}

impl Exit {
    /// The worse of two outcomes: bad input first, then safety, liveness, limits, expectations.
    pub fn worst(self, other: Exit) -> Exit {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    fn rank(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::ExpectationFailed => 1,
            Exit::LimitReached => 2,
            Exit::LivenessFailure => 3,
            Exit::SafetyViolation => 4,
            Exit::OutputFailed => 5,
            Exit::BadInput => 6,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// An error already explained to the user, carrying its exit code.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
