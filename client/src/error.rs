//! The one error type of the client, written for the person who reads it.
//!
//! A network program fails in many layers: name resolution, TCP, the Noise handshake, the pinned key, the server's
//! account rules, the chat rules, timeouts. Each [`ClientError`] variant names one thing a person can act on ("wrong
//! password", "the server's key changed", "the text is 5000 bytes, 4096 are allowed"), and its `Display` is one
//! sentence that says it. Programs branch on the variant or on its [`ErrorCategory`]; the command-line client turns
//! the category into its exit status.
//!
//! The server's refusals arrive as a stable [`ErrorCode`] plus a sentence; [`ClientError::from_server`] maps each
//! code to the variant a person understands and keeps the server's sentence, which is often the most precise
//! explanation (which character of a name is not allowed, how long to wait).
//!
//! The type is `Clone` (operating-system errors are kept as their text) so that a user interface can keep the error
//! in its state and the client core can hand the same failure to every request that was waiting.

use std::path::PathBuf;
use std::time::Duration;

use chatlab_proto::control::ErrorCode;
use chatlab_proto::noise::Fingerprint;

/// Which kind of failure an error is, for programs that react by kind (the CLI's exit status, a UI's colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// The caller asked for something malformed (a bad address or name).
    Usage,
    /// Accounts and login: wrong password, name taken, too many attempts.
    Auth,
    /// The server could not be reached, stopped answering, or is not who it was.
    Connection,
    /// The server (or the client's own check of the same rules) refused a message or request.
    Rejected,
    /// Anything else: a broken local file, a protocol violation by the server.
    Other,
}

/// Everything that can go wrong between this client and a chatlab server.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The server address is not `HOST:PORT`, or the host name does not resolve.
    #[error("invalid server address {server:?}: {reason}")]
    BadAddress {
        /// The address as given.
        server: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No TCP connection could be made: nothing listens there, a firewall drops the packets, or the network is down.
    #[error("cannot reach the chatlab server at {server}: {reason}")]
    Unreachable {
        /// The address tried.
        server: String,
        /// What the operating system said (or that it took too long).
        reason: String,
    },

    /// The server presented a different key from the one pinned on first contact. Nothing was sent.
    #[error(
        "the key of server {server} has CHANGED since it was pinned (pinned {pinned}, presented {presented}). \
         Either the server's key was replaced (a reinstall, a new machine) or someone is impersonating the server; \
         nothing was sent. Ask the server's operator for its fingerprint, and only if it is {presented}, delete the \
         line for {server} in {} and connect again",
        known_servers.display()
    )]
    ServerKeyChanged {
        /// The server, as `HOST:PORT`.
        server: String,
        /// Fingerprint of the key pinned earlier.
        pinned: Fingerprint,
        /// Fingerprint of the key the server presented now.
        presented: Fingerprint,
        /// The known-servers file holding the pin.
        known_servers: PathBuf,
    },

    /// The known-servers file could not be read or written.
    #[error("{0}")]
    KnownServers(String),

    /// The peer answered but not as a chatlab server of this version: the handshake or the greeting failed.
    #[error("{server} did not complete the chatlab handshake: {reason}")]
    Handshake {
        /// The address tried.
        server: String,
        /// What went wrong.
        reason: String,
    },

    /// The server speaks another protocol version.
    #[error("the server speaks another chatlab protocol version: {message}")]
    VersionMismatch {
        /// The server's explanation.
        message: String,
    },

    /// Unknown user name or wrong password (the server deliberately does not say which).
    #[error("unknown user name or wrong password")]
    BadCredentials,

    /// Too many failed logins, messages sent faster than the flood limit, or history and user-list requests faster
    /// than the session's request budget. Waiting and trying again helps in every case.
    #[error("rate limited: {message}")]
    RateLimited {
        /// [`ErrorCode::LoginRateLimited`], [`ErrorCode::FloodLimited`] or [`ErrorCode::TooManyRequests`].
        code: ErrorCode,
        /// The server's explanation (often how long to wait).
        message: String,
    },

    /// Registration refused: the name is taken.
    #[error("that user name is already registered: {message}")]
    UsernameTaken {
        /// The server's explanation.
        message: String,
    },

    /// A user name breaks the naming rules.
    #[error("invalid user name: {reason}")]
    InvalidUsername {
        /// Which rule, e.g. which character is not allowed.
        reason: String,
    },

    /// A password breaks the password rules.
    #[error("invalid password: {reason}")]
    InvalidPassword {
        /// Which rule.
        reason: String,
    },

    /// The text is longer than the server accepts. Nothing was sent (or the server stored nothing).
    #[error("message text is {len} bytes of UTF-8, at most {max} are allowed")]
    TextTooLong {
        /// Bytes in the text.
        len: usize,
        /// The server's limit.
        max: usize,
    },

    /// The text is empty or holds a control character other than newline.
    #[error("message text not sendable: {reason}")]
    TextInvalid {
        /// Which rule.
        reason: String,
    },

    /// The addressed user does not exist.
    #[error("unknown user: {message}")]
    UnknownUser {
        /// The server's explanation.
        message: String,
    },

    /// Any other refusal by the server.
    #[error("the server refused: {message} (error {})", code.as_u16())]
    Rejected {
        /// The stable code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },

    /// The request needs a logged-in session.
    #[error("not logged in")]
    NotLoggedIn,

    /// This connection already holds a session; log out first.
    #[error("already logged in; log out first")]
    AlreadyLoggedIn,

    /// A chat message waited for room to be sent (in the client's send queue, or in the UDP send window) for the
    /// longest wait, [`ClientConfig::request_timeout`](crate::ClientConfig::request_timeout), and gave up. The
    /// messages sent before it were still not acknowledged: the network or the server is slower than the sending.
    /// This message never left the client.
    #[error(
        "no room to send within {}: the messages before this one still wait for the server's acknowledgement; this \
         one was not sent",
        human_duration(*waited)
    )]
    NoRoom {
        /// How long it waited.
        waited: Duration,
    },

    /// The connection is down and the outbox already holds as many chat messages as it keeps
    /// ([`ClientConfig::outbox_capacity`](crate::ClientConfig::outbox_capacity)). This message was not queued.
    #[error(
        "{queued} messages already wait for the connection to come back, the most this client keeps; this one was \
         not sent. Send it again after the reconnect"
    )]
    OutboxFull {
        /// Messages waiting in the outbox.
        queued: usize,
    },

    /// A chat message waited in the outbox for the longest wait
    /// ([`ClientConfig::outbox_max_wait`](crate::ClientConfig::outbox_max_wait)) and the connection did not come
    /// back: it is given up. `maybe_stored` is true for a message that went out before the connection broke and was
    /// never acknowledged: the server may have stored it, and nobody can tell without the server.
    #[error(
        "the connection did not come back within {}; {}",
        human_duration(*waited),
        if *maybe_stored {
            "the message went out before the connection broke but was never acknowledged, so the server may or may \
             not have stored it"
        } else {
            "the message was not sent"
        }
    )]
    OutboxExpired {
        /// How long it waited.
        waited: Duration,
        /// Whether a copy reached the wire before the break.
        maybe_stored: bool,
    },

    /// No answer arrived in time.
    #[error("no answer from the server within {} ({what})", human_duration(*after))]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        after: Duration,
    },

    /// The connection to the server is down (it may be reconnecting). A chat message sent while a logged-in session
    /// reconnects waits in the outbox instead; one that waited too long fails with
    /// [`OutboxExpired`](ClientError::OutboxExpired).
    #[error("not connected to the server: {reason}")]
    Disconnected {
        /// Why the connection is down.
        reason: String,
    },

    /// A setting for impairing the client's own UDP traffic cannot work (a probability outside 0 to 1, a zero MTU, a
    /// delay over the limit). Nothing changed and nothing was sent: this is the caller's mistake, not the server's.
    #[error("invalid impairment setting: {reason}")]
    InvalidImpairment {
        /// Which direction and which field, and why, as a sentence.
        reason: String,
    },

    /// The server broke the protocol (an undecodable or unexpected message).
    #[error("protocol error: {0}")]
    Protocol(String),

    /// The client core has shut down (the handle outlived it).
    #[error("the chatlab client has shut down")]
    Closed,
}

/// A duration as people read it: "3 s", "250 ms".
pub(crate) fn human_duration(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{} s", duration.as_secs())
    } else {
        format!("{} ms", duration.as_millis())
    }
}

impl ClientError {
    /// The variant for a refusal the server sent with `code` and the sentence `message`.
    pub fn from_server(code: ErrorCode, message: impl Into<String>) -> ClientError {
        let message = message.into();
        match code {
            ErrorCode::VersionMismatch => ClientError::VersionMismatch { message },
            ErrorCode::BadCredentials => ClientError::BadCredentials,
            ErrorCode::LoginRateLimited | ErrorCode::FloodLimited | ErrorCode::TooManyRequests => {
                ClientError::RateLimited { code, message }
            }
            ErrorCode::UsernameTaken => ClientError::UsernameTaken { message },
            ErrorCode::UsernameInvalid => ClientError::InvalidUsername { reason: message },
            ErrorCode::PasswordInvalid => ClientError::InvalidPassword { reason: message },
            ErrorCode::TextInvalid => ClientError::TextInvalid { reason: message },
            ErrorCode::UnknownUser => ClientError::UnknownUser { message },
            ErrorCode::NotLoggedIn => ClientError::NotLoggedIn,
            ErrorCode::AlreadyLoggedIn => ClientError::AlreadyLoggedIn,
            ErrorCode::ServerShuttingDown
            | ErrorCode::TooManyConnections
            | ErrorCode::TooSlow
            | ErrorCode::ProtocolViolation => {
                ClientError::Disconnected { reason: message_or_description(code, message) }
            }
            // The server's sentence is kept; the sizes are only known where the text is (see `text_too_long`).
            ErrorCode::TextTooLong
            | ErrorCode::Malformed
            | ErrorCode::TooManyFramesBeforeLogin
            | ErrorCode::HistoryLimit
            | ErrorCode::Internal
            | ErrorCode::Unknown(_) => ClientError::Rejected { code, message: message_or_description(code, message) },
        }
    }

    /// A refusal of a chat message whose text had `len` bytes, when the server's limit is `max`: like
    /// [`from_server`](Self::from_server), but a `TextTooLong` refusal names the sizes.
    pub fn from_chat_rejection(code: ErrorCode, message: impl Into<String>, len: usize, max: usize) -> ClientError {
        match code {
            ErrorCode::TextTooLong => ClientError::TextTooLong { len, max },
            other => ClientError::from_server(other, message),
        }
    }

    /// Whether this failure, arriving outside any request (a [`ClientEvent::Error`](crate::ClientEvent::Error)),
    /// ends the session for good: the credentials were refused, the server is not the one pinned or speaks another
    /// protocol version, or the known-servers file is broken. Another attempt cannot cure any of these, so a face
    /// should stop and say so (the command-line client exits, the window goes back to its sign-in form). Anything
    /// else (a refused sync page, a busy server) leaves the session running and is worth a notice only.
    pub fn ends_the_session(&self) -> bool {
        matches!(self.category(), ErrorCategory::Auth | ErrorCategory::Usage)
            || matches!(
                self,
                ClientError::ServerKeyChanged { .. }
                    | ClientError::VersionMismatch { .. }
                    | ClientError::KnownServers(_)
            )
    }

    /// The kind of failure.
    pub fn category(&self) -> ErrorCategory {
        match self {
            ClientError::BadAddress { .. } | ClientError::InvalidImpairment { .. } => ErrorCategory::Usage,
            ClientError::BadCredentials
            | ClientError::UsernameTaken { .. }
            | ClientError::InvalidUsername { .. }
            | ClientError::InvalidPassword { .. }
            | ClientError::NotLoggedIn
            | ClientError::AlreadyLoggedIn => ErrorCategory::Auth,
            ClientError::RateLimited { code: ErrorCode::LoginRateLimited, .. } => ErrorCategory::Auth,
            ClientError::RateLimited { .. }
            | ClientError::TextTooLong { .. }
            | ClientError::TextInvalid { .. }
            | ClientError::UnknownUser { .. }
            | ClientError::Rejected { .. }
            | ClientError::OutboxFull { .. } => ErrorCategory::Rejected,
            ClientError::Unreachable { .. }
            | ClientError::ServerKeyChanged { .. }
            | ClientError::Handshake { .. }
            | ClientError::VersionMismatch { .. }
            | ClientError::Timeout { .. }
            | ClientError::Disconnected { .. }
            | ClientError::OutboxExpired { .. }
            | ClientError::NoRoom { .. }
            | ClientError::Closed => ErrorCategory::Connection,
            ClientError::KnownServers(_) | ClientError::Protocol(_) => ErrorCategory::Other,
        }
    }

    /// The server's error code behind this error, when there was one.
    pub fn server_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::BadCredentials => Some(ErrorCode::BadCredentials),
            ClientError::RateLimited { code, .. } | ClientError::Rejected { code, .. } => Some(*code),
            ClientError::UsernameTaken { .. } => Some(ErrorCode::UsernameTaken),
            ClientError::UnknownUser { .. } => Some(ErrorCode::UnknownUser),
            ClientError::VersionMismatch { .. } => Some(ErrorCode::VersionMismatch),
            _ => None,
        }
    }
}

/// The server's sentence, or the code's own description when the server sent none.
fn message_or_description(code: ErrorCode, message: String) -> String {
    if message.trim().is_empty() { code.description().to_string() } else { message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_proto::noise::ServerKey;

    #[test]
    fn only_failures_no_retry_can_cure_end_the_session() {
        let fingerprint = ServerKey::from_bytes([3; 32]).fingerprint();
        let changed = ClientError::ServerKeyChanged {
            server: "h:1".into(),
            pinned: fingerprint,
            presented: fingerprint,
            known_servers: "k".into(),
        };
        for final_failure in [
            ClientError::BadCredentials,
            ClientError::NotLoggedIn,
            changed,
            ClientError::VersionMismatch { message: "v2".into() },
            ClientError::KnownServers("unreadable".into()),
            ClientError::BadAddress { server: "x".into(), reason: "no port".into() },
        ] {
            assert!(final_failure.ends_the_session(), "{final_failure:?}");
        }
        for passing in [
            ClientError::Disconnected { reason: "reset".into() },
            ClientError::Timeout { what: "sync".into(), after: Duration::from_secs(10) },
            ClientError::Rejected { code: ErrorCode::Internal, message: "disk full".into() },
            ClientError::Protocol("odd frame".into()),
            ClientError::Unreachable { server: "h:1".into(), reason: "refused".into() },
        ] {
            assert!(!passing.ends_the_session(), "{passing:?}");
        }
    }

    #[test]
    fn every_server_code_maps_to_a_variant_with_its_category() {
        let expected = [
            (ErrorCode::VersionMismatch, ErrorCategory::Connection),
            (ErrorCode::Malformed, ErrorCategory::Rejected),
            (ErrorCode::TooManyFramesBeforeLogin, ErrorCategory::Rejected),
            (ErrorCode::NotLoggedIn, ErrorCategory::Auth),
            (ErrorCode::AlreadyLoggedIn, ErrorCategory::Auth),
            (ErrorCode::UsernameInvalid, ErrorCategory::Auth),
            (ErrorCode::UsernameTaken, ErrorCategory::Auth),
            (ErrorCode::PasswordInvalid, ErrorCategory::Auth),
            (ErrorCode::BadCredentials, ErrorCategory::Auth),
            (ErrorCode::LoginRateLimited, ErrorCategory::Auth),
            (ErrorCode::TooManyConnections, ErrorCategory::Connection),
            (ErrorCode::TextTooLong, ErrorCategory::Rejected),
            (ErrorCode::TextInvalid, ErrorCategory::Rejected),
            (ErrorCode::UnknownUser, ErrorCategory::Rejected),
            (ErrorCode::FloodLimited, ErrorCategory::Rejected),
            (ErrorCode::HistoryLimit, ErrorCategory::Rejected),
            (ErrorCode::TooManyRequests, ErrorCategory::Rejected),
            (ErrorCode::Internal, ErrorCategory::Rejected),
            (ErrorCode::ServerShuttingDown, ErrorCategory::Connection),
            (ErrorCode::TooSlow, ErrorCategory::Connection),
            (ErrorCode::ProtocolViolation, ErrorCategory::Connection),
        ];
        assert_eq!(expected.len(), ErrorCode::known().count(), "every known code is listed");
        for (code, category) in expected {
            let err = ClientError::from_server(code, "because");
            assert_eq!(err.category(), category, "{code:?} -> {err:?}");
        }
        let unknown = ClientError::from_server(ErrorCode::Unknown(999), "new");
        assert_eq!(unknown, ClientError::Rejected { code: ErrorCode::Unknown(999), message: "new".into() });
        assert_eq!(unknown.to_string(), "the server refused: new (error 999)");
    }

    #[test]
    fn server_sentences_are_kept() {
        let err = ClientError::from_server(ErrorCode::UsernameInvalid, "'!' is not allowed");
        assert_eq!(err.to_string(), "invalid user name: '!' is not allowed");
        let err = ClientError::from_server(ErrorCode::LoginRateLimited, "wait 12 s");
        assert_eq!(err.to_string(), "rate limited: wait 12 s");
        assert_eq!(err.server_code(), Some(ErrorCode::LoginRateLimited));
        assert_eq!(
            ClientError::from_server(ErrorCode::BadCredentials, "x").to_string(),
            "unknown user name or wrong password"
        );
    }

    #[test]
    fn a_refused_request_past_its_budget_is_a_rate_limit_not_a_chat_flood() {
        let err = ClientError::from_server(ErrorCode::TooManyRequests, "too many history requests; wait a moment");
        assert_eq!(err.to_string(), "rate limited: too many history requests; wait a moment");
        assert_eq!(err.server_code(), Some(ErrorCode::TooManyRequests));
        assert_eq!(err.category(), ErrorCategory::Rejected);
    }

    #[test]
    fn an_empty_server_sentence_falls_back_to_the_code_description() {
        let err = ClientError::from_server(ErrorCode::Internal, " ");
        assert_eq!(err.to_string(), "the server refused: The server hit an internal error. (error 500)");
        let err = ClientError::from_server(ErrorCode::ServerShuttingDown, "");
        assert_eq!(err.to_string(), "not connected to the server: The server is shutting down.");
    }

    #[test]
    fn chat_rejection_for_length_names_the_sizes() {
        let err = ClientError::from_chat_rejection(ErrorCode::TextTooLong, "too long", 5000, 4096);
        assert_eq!(err, ClientError::TextTooLong { len: 5000, max: 4096 });
        assert_eq!(err.to_string(), "message text is 5000 bytes of UTF-8, at most 4096 are allowed");
        let other = ClientError::from_chat_rejection(ErrorCode::UnknownUser, "no user bob", 3, 4096);
        assert_eq!(other.to_string(), "unknown user: no user bob");
        assert_eq!(other.server_code(), Some(ErrorCode::UnknownUser));
    }

    #[test]
    fn changed_key_explains_what_it_means_and_what_to_do() {
        let pinned = ServerKey::from_bytes([1; 32]).fingerprint();
        let presented = ServerKey::from_bytes([2; 32]).fingerprint();
        let err = ClientError::ServerKeyChanged {
            server: "lab:7878".into(),
            pinned,
            presented,
            known_servers: PathBuf::from("/home/ann/.config/chatlab/known_servers"),
        };
        let text = err.to_string();
        for needle in ["CHANGED", "impersonating", "nothing was sent", "operator", "known_servers", "lab:7878"] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        assert!(text.contains(&pinned.to_string()) && text.contains(&presented.to_string()), "{text}");
        assert_eq!(err.category(), ErrorCategory::Connection);
        assert_eq!(err.server_code(), None);
    }

    #[test]
    fn timeouts_read_naturally() {
        let err = ClientError::Timeout { what: "login".into(), after: Duration::from_secs(10) };
        assert_eq!(err.to_string(), "no answer from the server within 10 s (login)");
        let err = ClientError::Timeout { what: "send".into(), after: Duration::from_millis(1500) };
        assert_eq!(err.to_string(), "no answer from the server within 1500 ms (send)");
    }

    #[test]
    fn local_categories() {
        assert_eq!(ClientError::BadAddress { server: "x".into(), reason: "y".into() }.category(), ErrorCategory::Usage);
        assert_eq!(ClientError::KnownServers("bad file".into()).category(), ErrorCategory::Other);
        assert_eq!(ClientError::Protocol("odd".into()).category(), ErrorCategory::Other);
        let impairment =
            ClientError::InvalidImpairment { reason: "for outgoing UDP traffic, mtu must be at least 1".into() };
        assert_eq!(impairment.category(), ErrorCategory::Usage);
        assert_eq!(
            impairment.to_string(),
            "invalid impairment setting: for outgoing UDP traffic, mtu must be at least 1"
        );
        assert_eq!(impairment.server_code(), None);
        let no_room = ClientError::NoRoom { waited: Duration::from_secs(10) };
        assert_eq!(no_room.category(), ErrorCategory::Connection);
        assert!(
            no_room.to_string().starts_with("no room to send within 10 s") && no_room.to_string().ends_with("not sent")
        );
        let full = ClientError::OutboxFull { queued: 50 };
        assert_eq!(full.category(), ErrorCategory::Rejected);
        assert!(full.to_string().starts_with("50 messages already wait for the connection"), "{full}");
        assert_eq!(ClientError::Closed.category(), ErrorCategory::Connection);
        assert_eq!(
            ClientError::Unreachable { server: "h:1".into(), reason: "refused".into() }.to_string(),
            "cannot reach the chatlab server at h:1: refused"
        );
    }
}
