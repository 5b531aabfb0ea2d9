//! Failures counted by operation and reason.
//!
//! A load test is mostly a story about refusals: a server that protects itself says "no" long before it falls over,
//! and the interesting question is *which* "no" and *where*. Each failure is counted under the operation that failed
//! (connect, register, login, send, or the session as a whole) and its reason: the client library's error kind (the
//! [`ClientError`] variant, plus the server's stable error code when there is one) and the error's sentence with
//! every number replaced by `N`, so "try again in 12 s" and "try again in 57 s" count as one reason while "too many
//! connections" and "server shutting down" (both a `Disconnected`) stay apart.

use std::collections::BTreeMap;

use chatlab_client::ClientError;
use serde::Serialize;

/// Longest reason sentence kept; the rest is cut (at a character boundary) so a long server sentence cannot blow
/// up the table.
pub const MAX_DETAIL_CHARS: usize = 100;

/// What a bot was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// TCP, the Noise handshake and the greeting (`Client::connect`).
    Connect,
    /// Creating the bot's account.
    Register,
    /// Logging in.
    Login,
    /// Sending one chat message (until the server accepted it).
    Send,
    /// Something that happened to a logged-in session on its own: a dropped connection, an error outside any
    /// request.
    Session,
}

impl Operation {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Connect => "connect",
            Operation::Register => "register",
            Operation::Login => "login",
            Operation::Send => "send",
            Operation::Session => "session",
        }
    }
}

/// Why something failed, in two parts: the error kind a program branches on and the sentence a person reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reason {
    /// The [`ClientError`] variant, with the server's error code where there is one: `RateLimited(FloodLimited)`.
    pub kind: String,
    /// The error's sentence with numbers replaced by `N`.
    pub detail: String,
}

impl Reason {
    /// The reason of a client library error.
    pub fn of(error: &ClientError) -> Reason {
        Reason { kind: kind_of(error), detail: normalise(&error.to_string()) }
    }

    /// A reason that is no library error, such as a transport fall-back or a message that never arrived.
    pub fn other(kind: &str, detail: &str) -> Reason {
        Reason { kind: kind.to_string(), detail: normalise(detail) }
    }
}

/// The variant's name, and the server's code for the variants that carry one.
fn kind_of(error: &ClientError) -> String {
    // The Debug form starts with the variant's name: `RateLimited { code: FloodLimited, .. }`.
    let debug = format!("{error:?}");
    let variant: String = debug.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    match error {
        ClientError::RateLimited { code, .. } | ClientError::Rejected { code, .. } => format!("{variant}({code:?})"),
        _ => variant,
    }
}

/// `text` with every run of digits replaced by `N`, cut to [`MAX_DETAIL_CHARS`].
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DETAIL_CHARS));
    let mut in_number = false;
    for ch in text.chars().take(MAX_DETAIL_CHARS) {
        if ch.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            out.push(ch);
            in_number = false;
        }
    }
    out
}

/// Failures counted by operation and reason. Each bot keeps its own and the run adds them up at the end, so counting
/// never takes a lock shared between bots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failures {
    counts: BTreeMap<(Operation, Reason), u64>,
}

impl Failures {
    /// Counts one failure of `operation` for the library error `error`.
    pub fn add(&mut self, operation: Operation, error: &ClientError) {
        self.add_reason(operation, Reason::of(error));
    }

    /// Counts one failure of `operation` for `reason`.
    pub fn add_reason(&mut self, operation: Operation, reason: Reason) {
        *self.counts.entry((operation, reason)).or_default() += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: Failures) {
        for (key, count) in other.counts {
            *self.counts.entry(key).or_default() += count;
        }
    }

    /// Failures of `operation`, whatever the reason.
    pub fn total(&self, operation: Operation) -> u64 {
        self.counts.iter().filter(|((op, _), _)| *op == operation).map(|(_, n)| n).sum()
    }

    /// Every (operation, reason, count), by operation and then by reason.
    pub fn iter(&self) -> impl Iterator<Item = (Operation, &Reason, u64)> {
        self.counts.iter().map(|((op, reason), n)| (*op, reason, *n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_proto::control::ErrorCode;
    use std::time::Duration;

    #[test]
    fn server_codes_are_part_of_the_kind() {
        let flood = ClientError::from_server(ErrorCode::FloodLimited, "slow down; wait 2 s");
        let reason = Reason::of(&flood);
        assert_eq!(reason.kind, "RateLimited(FloodLimited)");
        assert_eq!(reason.detail, "rate limited: slow down; wait N s");
        let internal = ClientError::from_server(ErrorCode::Internal, "disk full");
        assert_eq!(Reason::of(&internal).kind, "Rejected(Internal)");
        assert_eq!(Reason::of(&ClientError::BadCredentials).kind, "BadCredentials");
        assert_eq!(Reason::of(&ClientError::NotLoggedIn).kind, "NotLoggedIn");
    }

    #[test]
    fn numbers_do_not_split_a_reason_but_sentences_do() {
        let wait = |s: u64| {
            let text = format!("too many registrations from this address; try again in {s} s");
            ClientError::from_server(ErrorCode::LoginRateLimited, text)
        };
        let mut failures = Failures::default();
        failures.add(Operation::Register, &wait(12));
        failures.add(Operation::Register, &wait(57));
        let full = ClientError::from_server(ErrorCode::TooManyConnections, "this address has too many connections");
        let down = ClientError::from_server(ErrorCode::ServerShuttingDown, "");
        failures.add(Operation::Connect, &full);
        failures.add(Operation::Connect, &down);
        let rows: Vec<_> = failures.iter().collect();
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(failures.total(Operation::Register), 2);
        assert_eq!(failures.total(Operation::Connect), 2);
        assert_eq!(failures.total(Operation::Send), 0);
        assert!(rows.iter().all(|(_, r, _)| !r.detail.contains('1')));
    }

    #[test]
    fn merging_adds_counts() {
        let timeout = ClientError::Timeout { what: "login".into(), after: Duration::from_secs(10) };
        let mut a = Failures::default();
        a.add(Operation::Login, &timeout);
        let mut b = Failures::default();
        b.add(Operation::Login, &timeout);
        b.add_reason(Operation::Session, Reason::other("Dropped", "reset by peer"));
        a.merge(b);
        assert_eq!(a.total(Operation::Login), 2);
        assert_eq!(a.total(Operation::Session), 1);
    }

    #[test]
    fn a_long_sentence_is_cut_at_a_character_boundary() {
        let long = "长".repeat(MAX_DETAIL_CHARS * 2);
        let reason = Reason::other("X", &long);
        assert_eq!(reason.detail.chars().count(), MAX_DETAIL_CHARS);
    }
}
