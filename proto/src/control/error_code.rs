//! Stable numeric error codes for the control channel.
//!
//! Every rejection the server sends carries a code *and* a human text. The text is for people and may change or be
//! translated; the code is for programs (the CLI picks its exit status from it, the desktop app its translated
//! message) and never changes meaning once released. That is why codes are explicit numbers rather than serde's
//! variant names or positions: renaming or reordering the Rust enum must not change a single byte on the wire.
//!
//! The numbers are grouped like HTTP status classes so a packet capture is readable at a glance:
//!
//! | range | meaning |
//! |-------|---------|
//! | 1xx   | the connection or the protocol itself |
//! | 2xx   | accounts, login and admission |
//! | 3xx   | chat and history requests |
//! | 5xx   | the server's own trouble |
//!
//! A code this build does not know decodes as [`ErrorCode::Unknown`] instead of failing: a newer server may add
//! codes, and an older client should still show the accompanying text.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why the server refused something. Serialized as its [`u16`] code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 100: the client speaks a protocol version the server does not.
    VersionMismatch,
    /// 101: a frame did not decrypt, or its content was not a valid control message.
    Malformed,
    /// 102: the client sent more frames before logging in than the server allows.
    TooManyFramesBeforeLogin,
    /// 103: the client's datagrams broke the reliability protocol or made the server hold more than the session's
    /// receive budget (see `engine::ConnectionError`); the session was closed. An honest client never sees it.
    ProtocolViolation,
    /// 200: the request needs a logged-in session.
    NotLoggedIn,
    /// 201: this connection is already logged in.
    AlreadyLoggedIn,
    /// 202: the user name breaks the naming rules.
    UsernameInvalid,
    /// 203: an account with this name exists.
    UsernameTaken,
    /// 204: the password is empty, too long, or too weak for the server's registration policy.
    PasswordInvalid,
    /// 205: no such user, or wrong password (deliberately indistinguishable).
    BadCredentials,
    /// 206: too many failed logins for this account or address; wait before retrying.
    LoginRateLimited,
    /// 207: this address has as many connections open as the server allows.
    TooManyConnections,
    /// 300: the chat text is longer than the server's limit.
    TextTooLong,
    /// 301: the chat text is empty or contains forbidden characters.
    TextInvalid,
    /// 302: the addressed user does not exist.
    UnknownUser,
    /// 303: the session sent messages faster than the flood limit allows.
    FloodLimited,
    /// 304: a history request asked for zero messages or more than one page may hold.
    HistoryLimit,
    /// 305: the session sent history, sync or user-list requests faster than its request budget allows. The request
    /// was not served and nothing else changed: wait a second or two and ask again (the budget refills
    /// continuously). Not [`ErrorCode::FloodLimited`], which is about chat messages: a client that shows "you are
    /// sending too fast" for a refused history page would blame the user for what its own code did.
    TooManyRequests,
    /// 306: the client did not read what the server sent fast enough: the server held as much for the session as
    /// a session may, and closed it. Reconnecting is fine; a client that stops reading for a long time is not.
    TooSlow,
    /// 500: something went wrong inside the server.
    Internal,
    /// 501: the server is shutting down.
    ServerShuttingDown,
    /// A code this build does not know, kept so its number can be shown. [`ErrorCode::from_u16`] only produces it
    /// for numbers that no other variant has.
    Unknown(u16),
}

/// Every known code, in numeric order. [`ErrorCode::from_u16`] searches it; [`ErrorCode::as_u16`] is an exhaustive
/// `match`, so the compiler insists every variant has a number.
const KNOWN: [ErrorCode; 21] = [
    ErrorCode::VersionMismatch,
    ErrorCode::Malformed,
    ErrorCode::TooManyFramesBeforeLogin,
    ErrorCode::ProtocolViolation,
    ErrorCode::NotLoggedIn,
    ErrorCode::AlreadyLoggedIn,
    ErrorCode::UsernameInvalid,
    ErrorCode::UsernameTaken,
    ErrorCode::PasswordInvalid,
    ErrorCode::BadCredentials,
    ErrorCode::LoginRateLimited,
    ErrorCode::TooManyConnections,
    ErrorCode::TextTooLong,
    ErrorCode::TextInvalid,
    ErrorCode::UnknownUser,
    ErrorCode::FloodLimited,
    ErrorCode::HistoryLimit,
    ErrorCode::TooManyRequests,
    ErrorCode::TooSlow,
    ErrorCode::Internal,
    ErrorCode::ServerShuttingDown,
];

impl ErrorCode {
    /// All codes this build knows, in numeric order.
    pub fn known() -> impl Iterator<Item = ErrorCode> {
        KNOWN.into_iter()
    }

    /// The code's wire number.
    pub fn as_u16(self) -> u16 {
        match self {
            ErrorCode::VersionMismatch => 100,
            ErrorCode::Malformed => 101,
            ErrorCode::TooManyFramesBeforeLogin => 102,
            ErrorCode::ProtocolViolation => 103,
            ErrorCode::NotLoggedIn => 200,
            ErrorCode::AlreadyLoggedIn => 201,
            ErrorCode::UsernameInvalid => 202,
            ErrorCode::UsernameTaken => 203,
            ErrorCode::PasswordInvalid => 204,
            ErrorCode::BadCredentials => 205,
            ErrorCode::LoginRateLimited => 206,
            ErrorCode::TooManyConnections => 207,
            ErrorCode::TextTooLong => 300,
            ErrorCode::TextInvalid => 301,
            ErrorCode::UnknownUser => 302,
            ErrorCode::FloodLimited => 303,
            ErrorCode::HistoryLimit => 304,
            ErrorCode::TooManyRequests => 305,
            ErrorCode::TooSlow => 306,
            ErrorCode::Internal => 500,
            ErrorCode::ServerShuttingDown => 501,
            ErrorCode::Unknown(number) => number,
        }
    }

    /// The code with wire number `number`; [`ErrorCode::Unknown`] for numbers this build does not know.
    pub fn from_u16(number: u16) -> ErrorCode {
        KNOWN.into_iter().find(|code| code.as_u16() == number).unwrap_or(ErrorCode::Unknown(number))
    }

    /// One sentence saying what the code means, in English, for logs and for clients that have no better text.
    pub fn description(self) -> &'static str {
        match self {
            ErrorCode::VersionMismatch => "The client and server speak different protocol versions.",
            ErrorCode::Malformed => "The message could not be decoded.",
            ErrorCode::TooManyFramesBeforeLogin => "Too many messages were sent before logging in.",
            ErrorCode::ProtocolViolation => "The client broke the datagram protocol; the session was closed.",
            ErrorCode::NotLoggedIn => "This request needs a logged-in session.",
            ErrorCode::AlreadyLoggedIn => "This connection is already logged in.",
            ErrorCode::UsernameInvalid => "User names are 1 to 32 characters from a-z, 0-9, '.', '_' and '-'.",
            ErrorCode::UsernameTaken => "That user name is already registered.",
            ErrorCode::PasswordInvalid => "The password is empty, too long or too short.",
            ErrorCode::BadCredentials => "Unknown user name or wrong password.",
            ErrorCode::LoginRateLimited => "Too many failed logins; wait a little before trying again.",
            ErrorCode::TooManyConnections => "Too many connections from this address.",
            ErrorCode::TextTooLong => "The message text is longer than the server allows.",
            ErrorCode::TextInvalid => "The message text is empty or contains control characters other than newline.",
            ErrorCode::UnknownUser => "No user with that name exists.",
            ErrorCode::FloodLimited => "Messages are being sent too fast; slow down.",
            ErrorCode::HistoryLimit => "The history request asked for too few or too many messages.",
            ErrorCode::TooManyRequests => "Too many history or user-list requests; wait a moment and ask again.",
            ErrorCode::TooSlow => "The client did not read its messages fast enough; the session was closed.",
            ErrorCode::Internal => "The server hit an internal error.",
            ErrorCode::ServerShuttingDown => "The server is shutting down.",
            ErrorCode::Unknown(_) => "The server reported an error this client does not know.",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    /// `"<number> <description>"`, e.g. `"205 Unknown user name or wrong password."`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.as_u16(), self.description())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.as_u16())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u16::deserialize(deserializer).map(ErrorCode::from_u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numbers_are_stable() {
        // Changing a number here breaks every deployed client: this table is the contract.
        let expected: [(ErrorCode, u16); 21] = [
            (ErrorCode::VersionMismatch, 100),
            (ErrorCode::Malformed, 101),
            (ErrorCode::TooManyFramesBeforeLogin, 102),
            (ErrorCode::ProtocolViolation, 103),
            (ErrorCode::NotLoggedIn, 200),
            (ErrorCode::AlreadyLoggedIn, 201),
            (ErrorCode::UsernameInvalid, 202),
            (ErrorCode::UsernameTaken, 203),
            (ErrorCode::PasswordInvalid, 204),
            (ErrorCode::BadCredentials, 205),
            (ErrorCode::LoginRateLimited, 206),
            (ErrorCode::TooManyConnections, 207),
            (ErrorCode::TextTooLong, 300),
            (ErrorCode::TextInvalid, 301),
            (ErrorCode::UnknownUser, 302),
            (ErrorCode::FloodLimited, 303),
            (ErrorCode::HistoryLimit, 304),
            (ErrorCode::TooManyRequests, 305),
            (ErrorCode::TooSlow, 306),
            (ErrorCode::Internal, 500),
            (ErrorCode::ServerShuttingDown, 501),
        ];
        for (code, number) in expected {
            assert_eq!(code.as_u16(), number, "{code:?}");
            assert_eq!(ErrorCode::from_u16(number), code);
        }
    }

    #[test]
    fn numbers_are_unique_and_known_codes_are_complete() {
        let mut numbers: Vec<u16> = ErrorCode::known().map(ErrorCode::as_u16).collect();
        let count = numbers.len();
        numbers.dedup();
        assert_eq!(numbers.len(), count);
        // The table is in numeric order, as its doc promises.
        assert!(numbers.windows(2).all(|pair| pair.first() < pair.get(1)));
        assert!(ErrorCode::known().all(|code| !matches!(code, ErrorCode::Unknown(_))));
    }

    #[test]
    fn unknown_numbers_are_kept() {
        assert_eq!(ErrorCode::from_u16(999), ErrorCode::Unknown(999));
        assert_eq!(ErrorCode::Unknown(999).as_u16(), 999);
        assert_eq!(ErrorCode::Unknown(999).to_string(), "999 The server reported an error this client does not know.");
    }

    #[test]
    fn every_code_has_a_one_sentence_description() {
        for code in ErrorCode::known().chain([ErrorCode::Unknown(1)]) {
            let text = code.description();
            assert!(text.ends_with('.'), "{code:?}");
            assert_eq!(text.matches(". ").count(), 0, "{code:?}: one sentence");
        }
    }

    #[test]
    fn serializes_as_a_number() {
        assert_eq!(rmp_serde::to_vec(&ErrorCode::BadCredentials).expect("encode"), [0xcc, 205]);
        assert_eq!(rmp_serde::to_vec(&ErrorCode::Malformed).expect("encode"), [101]);
        assert_eq!(rmp_serde::to_vec(&ErrorCode::TooManyRequests).expect("encode"), [0xcd, 0x01, 0x31]);
        assert_eq!(rmp_serde::from_slice::<ErrorCode>(&[0xcd, 0x03, 0xe7]).expect("decode"), ErrorCode::Unknown(999));
    }

    #[test]
    fn deserializing_a_non_number_fails() {
        assert!(rmp_serde::from_slice::<ErrorCode>(b"\xa1x").is_err());
        // 70 000 does not fit a u16.
        assert!(rmp_serde::from_slice::<ErrorCode>(&[0xce, 0, 1, 0x11, 0x70]).is_err());
    }

    proptest! {
        #[test]
        fn every_number_round_trips(number in any::<u16>()) {
            let code = ErrorCode::from_u16(number);
            prop_assert_eq!(code.as_u16(), number);
            let bytes = rmp_serde::to_vec(&code).expect("encode");
            prop_assert_eq!(rmp_serde::from_slice::<ErrorCode>(&bytes).expect("decode"), code);
        }
    }
}
