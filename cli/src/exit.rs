//! Exit codes, so scripts can tell a refusal from an outage, and the errors that carry
//! them.

use std::process::ExitCode;

/// Shown at the end of `jitgate --help`.
pub const HELP: &str = "Exit codes:
  0  done
  1  something failed (the message says what)
  2  the command line is wrong
  3  not logged in, or the token is no longer valid: run `jitgate login`
  4  refused: not allowed, invalid input, or the request's state does not allow it
  5  with --wait: the request was denied, lapsed, cancelled or failed
  6  the server cannot be reached or is unavailable
  ssh ends with the Session Manager plugin's own exit code once the session started";

/// Why a command failed, with the exit code it ends with.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

pub const FAILED: u8 = 1;
pub const NOT_LOGGED_IN: u8 = 3;
pub const REFUSED: u8 = 4;
pub const WILL_NOT_BE_ACTIVE: u8 = 5;
pub const UNREACHABLE: u8 = 6;

/// The code an error ends the process with: a [`Failure`]'s own, else 1.
pub fn code_of(e: &anyhow::Error) -> ExitCode {
    e.downcast_ref::<Failure>()
        .map_or(ExitCode::from(FAILED), Failure::exit_code)
}
