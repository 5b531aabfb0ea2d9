//! Why an engine gave up on its peer.
//!
//! Most bad input is simply dropped: a datagram that does not authenticate, a frame that does not decode, a
//! fragment that does not fit the buffer right now. Those cost the peer nothing it can notice, which is right for
//! noise and for an honest peer that is merely fast. A [`ConnectionError`] is different: the peer, *after*
//! authenticating, did something an honest implementation of this protocol never does, or asked this side to hold
//! more than its [budget](super::budget). Continuing would mean either growing without bound or breaking the
//! promise of exactly-once, in-order delivery, so the engine stops: it reports [`Event::Failed`](super::Event)
//! once, frees what the peer made it hold, and refuses everything afterwards. Its owner ends the session and tells
//! the person why, as QUIC's `CONNECTION_CLOSE` with a transport error code does.

use std::time::Duration;

use thiserror::Error;

/// What the peer did that ended the connection. Each variant names the rule it broke, with the numbers, so a log
/// line or an error message is enough to find the bug (or the attacker).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConnectionError {
    /// A message announced more fragments than the largest legal message can have.
    #[error("message {stream}/{seq} announced {count} fragments, more than the {max} of the largest legal message")]
    TooManyFragments { stream: u32, seq: u64, count: u16, max: u16 },
    /// A fragment's index was not below its message's fragment count.
    #[error("fragment {index} of message {stream}/{seq} is beyond its {count} fragments")]
    FragmentIndexOutOfRange { stream: u32, seq: u64, index: u16, count: u16 },
    /// A fragment other than the last was shorter than the protocol's smallest fragment.
    #[error(
        "fragment {index} of message {stream}/{seq} carries {len} bytes; every fragment but the last carries at least {min}"
    )]
    FragmentTooSmall { stream: u32, seq: u64, index: u16, len: usize, min: usize },
    /// Two fragments of one message disagreed on how many fragments it has.
    #[error("message {stream}/{seq} was announced with {first} fragments and then with {then}")]
    InconsistentFragmentCount { stream: u32, seq: u64, first: u16, then: u16 },
    /// The same fragment arrived twice with different contents.
    #[error("fragment {index} of message {stream}/{seq} arrived twice with different contents")]
    ConflictingFragment { stream: u32, seq: u64, index: u16 },
    /// A message's fragments add up to more than the largest message allowed.
    #[error("message {stream}/{seq} is larger than the {max}-byte maximum")]
    MessageTooLarge { stream: u32, seq: u64, max: usize },
    /// The peer opened more conversations than the records' share of the receive budget holds (each record is kept
    /// for the connection's life, so it cannot be dropped and asked for again like data).
    #[error("the peer opened more conversations than a {budget}-byte receive budget keeps records for")]
    BudgetExceeded { budget: usize },
    /// An incomplete message, or a gap in a conversation, waited longer than the stall timeout: the sender stopped
    /// sending what it owes while still sending other things.
    #[error("message {stream}/{seq} waited {waited:?} for missing data, longer than the {limit:?} allowed")]
    Stalled { stream: u32, seq: u64, waited: Duration, limit: Duration },
}

impl ConnectionError {
    /// A short stable name for logs and counters (`"too_many_fragments"`, `"budget_exceeded"`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooManyFragments { .. } => "too_many_fragments",
            Self::FragmentIndexOutOfRange { .. } => "fragment_index_out_of_range",
            Self::FragmentTooSmall { .. } => "fragment_too_small",
            Self::InconsistentFragmentCount { .. } => "inconsistent_fragment_count",
            Self::ConflictingFragment { .. } => "conflicting_fragment",
            Self::MessageTooLarge { .. } => "message_too_large",
            Self::BudgetExceeded { .. } => "budget_exceeded",
            Self::Stalled { .. } => "stalled",
        }
    }
}
