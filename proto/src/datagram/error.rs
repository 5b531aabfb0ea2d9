//! Why a datagram could not be sealed or opened.
//!
//! A UDP port is open to the whole Internet, so the receiver sees garbage, stale copies, packets for other sessions
//! and deliberate forgeries as a matter of course. None of them is exceptional: each is dropped, and each kind is
//! *counted*, because the counts are what the statistics panel and the labs show ("the impairment relay corrupted
//! 3 % of packets, and 3 % failed authentication"). [`OpenError::kind`] names the kind in a form a counter can use.

use thiserror::Error;

use super::replay::Replay;

/// Why an incoming datagram was dropped. Every variant is an expected event on a public UDP port, not a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum OpenError {
    /// Shorter than a header plus a tag, so it cannot be a chatlab datagram (or the header alone is cut short).
    #[error("datagram of {len} bytes is too short to hold a header and a tag")]
    Truncated {
        /// Length of what arrived, in bytes.
        len: usize,
    },
    /// Longer than [`MAX_DATAGRAM_BYTES`](crate::limits::MAX_DATAGRAM_BYTES): no chatlab sender produces it.
    #[error("datagram of {len} bytes is larger than the protocol allows")]
    TooLarge {
        /// Length of what arrived, in bytes.
        len: usize,
    },
    /// The version byte names a protocol version this build does not speak.
    #[error("unsupported protocol version {version}")]
    BadVersion {
        /// The version byte found in the header.
        version: u8,
    },
    /// The packet type byte names no known packet type.
    #[error("unknown packet type {packet_type:#04x}")]
    UnknownPacketType {
        /// The packet type byte found in the header.
        packet_type: u8,
    },
    /// A flag bit this version does not define is set.
    #[error("unknown flag bits set in {flags:#04x}")]
    UnknownFlags {
        /// The whole flags byte found in the header.
        flags: u8,
    },
    /// The connection id belongs to another session (or to none).
    #[error("datagram for connection {connection_id:#018x}, not this session's")]
    WrongConnection {
        /// The connection id found in the header.
        connection_id: u64,
    },
    /// A packet with this number was already accepted: a duplicate from the network, or a replay attack.
    #[error("packet {packet_number} was already received")]
    Replayed {
        /// The packet number found in the header.
        packet_number: u64,
    },
    /// The packet number is below the replay window, so whether it was seen can no longer be told.
    #[error("packet {packet_number} is older than the replay window")]
    TooOld {
        /// The packet number found in the header.
        packet_number: u64,
    },
    /// The AES-GCM tag did not verify: the bytes were changed on the way, or were sealed with another key.
    #[error("datagram failed authentication")]
    Authentication,
}

/// The kind of an [`OpenError`], without its details: a small `Copy` value meant to index an array of counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpenErrorKind {
    /// See [`OpenError::Truncated`].
    Truncated,
    /// See [`OpenError::TooLarge`].
    TooLarge,
    /// See [`OpenError::BadVersion`].
    BadVersion,
    /// See [`OpenError::UnknownPacketType`].
    UnknownPacketType,
    /// See [`OpenError::UnknownFlags`].
    UnknownFlags,
    /// See [`OpenError::WrongConnection`].
    WrongConnection,
    /// See [`OpenError::Replayed`].
    Replayed,
    /// See [`OpenError::TooOld`].
    TooOld,
    /// See [`OpenError::Authentication`].
    Authentication,
}

impl OpenErrorKind {
    /// Every kind, in declaration order; `ALL[kind.index()] == kind`.
    pub const ALL: [OpenErrorKind; 9] = [
        OpenErrorKind::Truncated,
        OpenErrorKind::TooLarge,
        OpenErrorKind::BadVersion,
        OpenErrorKind::UnknownPacketType,
        OpenErrorKind::UnknownFlags,
        OpenErrorKind::WrongConnection,
        OpenErrorKind::Replayed,
        OpenErrorKind::TooOld,
        OpenErrorKind::Authentication,
    ];

    /// Position of this kind in [`OpenErrorKind::ALL`], so a caller can keep `[u64; ALL.len()]` counters.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A stable snake_case name, for logs, JSON output and plot legends.
    pub fn as_str(self) -> &'static str {
        match self {
            OpenErrorKind::Truncated => "truncated",
            OpenErrorKind::TooLarge => "too_large",
            OpenErrorKind::BadVersion => "bad_version",
            OpenErrorKind::UnknownPacketType => "unknown_packet_type",
            OpenErrorKind::UnknownFlags => "unknown_flags",
            OpenErrorKind::WrongConnection => "wrong_connection",
            OpenErrorKind::Replayed => "replayed",
            OpenErrorKind::TooOld => "too_old",
            OpenErrorKind::Authentication => "authentication",
        }
    }
}

impl OpenError {
    /// The kind of this error, for counting.
    pub fn kind(&self) -> OpenErrorKind {
        match self {
            OpenError::Truncated { .. } => OpenErrorKind::Truncated,
            OpenError::TooLarge { .. } => OpenErrorKind::TooLarge,
            OpenError::BadVersion { .. } => OpenErrorKind::BadVersion,
            OpenError::UnknownPacketType { .. } => OpenErrorKind::UnknownPacketType,
            OpenError::UnknownFlags { .. } => OpenErrorKind::UnknownFlags,
            OpenError::WrongConnection { .. } => OpenErrorKind::WrongConnection,
            OpenError::Replayed { .. } => OpenErrorKind::Replayed,
            OpenError::TooOld { .. } => OpenErrorKind::TooOld,
            OpenError::Authentication => OpenErrorKind::Authentication,
        }
    }

    /// Converts a replay-window verdict about `packet_number` into the matching open error.
    pub(crate) fn from_replay(replay: Replay, packet_number: u64) -> Self {
        match replay {
            Replay::Duplicate => OpenError::Replayed { packet_number },
            Replay::TooOld => OpenError::TooOld { packet_number },
        }
    }
}

/// Why an outgoing datagram could not be sealed. Each is a bug in the caller, reported instead of sending something
/// unsafe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SealError {
    /// The packet number is not greater than the last one sealed. Sealing it would reuse an AES-GCM nonce (or send
    /// packet numbers backwards), so the sealer refuses.
    #[error("packet number {packet_number} is not greater than the last sealed packet number {last}")]
    PacketNumberNotIncreasing {
        /// The packet number the caller asked for.
        packet_number: u64,
        /// The last packet number this sealer sealed.
        last: u64,
    },
    /// The plaintext does not fit in one datagram.
    #[error("plaintext of {len} bytes exceeds the {max}-byte datagram payload")]
    PlaintextTooLarge {
        /// Length of the plaintext, in bytes.
        len: usize,
        /// The largest plaintext that fits, [`MAX_PLAINTEXT`](super::MAX_PLAINTEXT).
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each() -> [OpenError; 9] {
        [
            OpenError::Truncated { len: 3 },
            OpenError::TooLarge { len: 5000 },
            OpenError::BadVersion { version: 9 },
            OpenError::UnknownPacketType { packet_type: 0x7f },
            OpenError::UnknownFlags { flags: 0x80 },
            OpenError::WrongConnection { connection_id: 1 },
            OpenError::Replayed { packet_number: 4 },
            OpenError::TooOld { packet_number: 2 },
            OpenError::Authentication,
        ]
    }

    #[test]
    fn kinds_index_all_in_order() {
        for (position, kind) in OpenErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), position);
        }
        let kinds: Vec<_> = one_of_each().iter().map(OpenError::kind).collect();
        assert_eq!(kinds, OpenErrorKind::ALL);
    }

    #[test]
    fn kind_names_are_distinct_snake_case() {
        let mut names: Vec<_> = OpenErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert!(names.iter().all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OpenErrorKind::ALL.len());
    }

    #[test]
    fn replay_verdicts_map_to_their_errors() {
        assert_eq!(OpenError::from_replay(Replay::Duplicate, 8), OpenError::Replayed { packet_number: 8 });
        assert_eq!(OpenError::from_replay(Replay::TooOld, 8), OpenError::TooOld { packet_number: 8 });
    }

    #[test]
    fn messages_carry_the_details() {
        assert!(OpenError::Replayed { packet_number: 42 }.to_string().contains("42"));
        let seal = SealError::PacketNumberNotIncreasing { packet_number: 3, last: 7 };
        assert!(seal.to_string().contains('3') && seal.to_string().contains('7'));
    }
}
