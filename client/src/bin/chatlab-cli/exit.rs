//! Exit statuses and the one-line failure every error becomes.
//!
//! Scripts and graders call `chatlab-cli`, so its exit status is part of its interface: 0 means done, and each other
//! number names a kind of failure a script may handle differently (retry a connection, not a wrong password).

use std::fmt;
use std::process::ExitCode;

use chatlab_client::{ClientError, ErrorCategory};

/// Success.
pub const EXIT_OK: u8 = 0;
/// Any failure not covered below (a broken known-servers file, a protocol error, `listen` timing out).
pub const EXIT_GENERAL: u8 = 1;
/// The command line was wrong (clap also exits with 2 on its own usage errors).
pub const EXIT_USAGE: u8 = 2;
/// Login or registration failed: wrong password, name taken, too many attempts.
pub const EXIT_AUTH: u8 = 3;
/// The server could not be reached, stopped answering, or its key changed.
pub const EXIT_CONNECTION: u8 = 4;
/// The server refused the message or request (too long, unknown user, flood limit).
pub const EXIT_REJECTED: u8 = 5;

/// The exit-status table for `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit status:
  0  success (for send: the server acknowledged the message)
  1  general failure (including listen --count timing out)
  2  usage error
  3  authentication failed (wrong password, name taken, too many attempts)
  4  connection failed (unreachable, timed out, disconnected, server key changed)
  5  rejected by the server (text too long or invalid, unknown user, flood limit)";

/// A failure: the exit status and the one line printed on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u8,
    pub message: String,
}

impl Failure {
    pub fn new(status: u8, message: impl Into<String>) -> Failure {
        Failure { status, message: message.into() }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_USAGE, message)
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.status)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Failure {
        let status = match err.category() {
            ErrorCategory::Usage => EXIT_USAGE,
            ErrorCategory::Auth => EXIT_AUTH,
            ErrorCategory::Connection => EXIT_CONNECTION,
            ErrorCategory::Rejected => EXIT_REJECTED,
            ErrorCategory::Other => EXIT_GENERAL,
        };
        Failure::new(status, err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_proto::control::ErrorCode;
    use std::time::Duration;

    #[test]
    fn client_errors_map_to_their_exit_status() {
        let cases = [
            (ClientError::BadAddress { server: "x".into(), reason: "y".into() }, EXIT_USAGE),
            (ClientError::BadCredentials, EXIT_AUTH),
            (ClientError::from_server(ErrorCode::LoginRateLimited, "wait"), EXIT_AUTH),
            (ClientError::Unreachable { server: "h:1".into(), reason: "refused".into() }, EXIT_CONNECTION),
            (ClientError::Timeout { what: "login".into(), after: Duration::from_secs(1) }, EXIT_CONNECTION),
            (ClientError::TextTooLong { len: 5000, max: 4096 }, EXIT_REJECTED),
            (ClientError::UnknownUser { message: "no bob".into() }, EXIT_REJECTED),
            (ClientError::KnownServers("bad line".into()), EXIT_GENERAL),
        ];
        for (err, status) in cases {
            let text = err.to_string();
            let failure = Failure::from(err);
            assert_eq!(failure.status, status, "{text}");
            assert_eq!(failure.message, text);
        }
    }

    #[test]
    fn the_help_table_lists_every_status() {
        for status in [EXIT_OK, EXIT_GENERAL, EXIT_USAGE, EXIT_AUTH, EXIT_CONNECTION, EXIT_REJECTED] {
            assert!(EXIT_CODES_HELP.contains(&format!("\n  {status}  ")), "{status}");
        }
        assert_eq!(Failure::usage("bad").to_string(), "bad");
    }
}
