//! The engine's knobs, each with a default chosen for a classroom LAN and the reason for it.

use std::time::Duration;

use thiserror::Error;

use super::budget::{DEFAULT_RECEIVE_BUDGET, MIN_RECEIVE_BUDGET, PARTIAL_COST, PIECE_COST, STREAM_COST};
use super::frame::{ACK_FRAME_MAX, FRAGMENT_OVERHEAD_MAX};
use super::incoming::max_fragments;
use super::rtt::{DEFAULT_GRANULARITY, DEFAULT_INITIAL_RTT, DEFAULT_MAX_RTO, DEFAULT_MIN_RTO};
use crate::datagram::{HEADER_LEN, TAG_LEN};
use crate::limits::MAX_DATAGRAM_BYTES;

/// Bytes the datagram layer adds around the engine's payload: the clear header and the AEAD tag.
pub const DATAGRAM_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Largest engine payload per datagram: the 1200-byte datagram minus header and tag.
pub const DEFAULT_MAX_PAYLOAD: usize = MAX_DATAGRAM_BYTES - DATAGRAM_OVERHEAD;
const _: () = assert!(DEFAULT_MAX_PAYLOAD == crate::datagram::MAX_PLAINTEXT);

/// Largest message the engine accepts, in bytes: 4096 bytes of text plus room for names, ids and the MessagePack
/// envelope the application wraps around it. Eight fragments at most, so a reassembly buffer stays small.
pub const MAX_MESSAGE_BYTES: usize = 8192;

/// Default send window: messages sent but not yet acknowledged. 1024 keeps a fast loopback sender busy through a
/// few milliseconds of loss recovery while bounding what one connection can queue (8 MiB at the maximum message
/// size, a few hundred kilobytes for real chat); past it `send` pushes back instead of buffering without end.
pub const DEFAULT_SEND_WINDOW: usize = 1024;

/// How far ahead of the next expected message of a conversation the receiver buffers, in messages. Four times the
/// send window, so an honest sender never hits it; a peer that does is dropping its own messages.
pub const DEFAULT_RECEIVE_WINDOW: u64 = 4 * DEFAULT_SEND_WINDOW as u64;

/// Default keepalive: a ping after 10 s without sending anything. Home routers forget idle UDP mappings after as
/// little as 30 s (RFC 4787 asks for 2 minutes, many give less), and the ping's ack refreshes the RTT estimate.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);

/// Default idle timeout: the peer is considered gone after 30 s of silence, three missed keepalives.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default stall timeout: an incomplete message, or a gap in a conversation, may wait 60 s for its missing data.
/// An honest sender resends a lost fragment at least once a second (its largest RTO) for as long as the path
/// carries anything, and a path that carries nothing for 30 s is reported idle first; twice the idle timeout is
/// therefore only ever reached by a peer that keeps talking while withholding what it owes.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Packet threshold of fast retransmit: a packet is lost once three later packets were acknowledged, as in TCP's
/// "three duplicate acks" and RFC 9002. Fewer would mistake mild reordering for loss.
pub const DEFAULT_PACKET_THRESHOLD: u64 = 3;

/// How messages of one conversation are handed to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Ordering {
    /// In send order: a message waits until every earlier message of its conversation has arrived, as TCP delivers
    /// bytes. A single loss then delays the messages behind it (head-of-line blocking), and the engine counts it.
    #[default]
    InOrder,
    /// At once, as each message completes, like a QUIC stream per message; the application places it by its id.
    Unordered,
}

/// Configuration of one engine.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// RTT assumed before the first measurement.
    pub initial_rtt: Duration,
    /// Lowest retransmission timeout.
    pub min_rto: Duration,
    /// Highest retransmission timeout, also the cap of exponential back-off.
    pub max_rto: Duration,
    /// Timer granularity: the shortest wait the loss detector uses.
    pub granularity: Duration,
    /// Longest the receiver may hold an acknowledgement hoping to share it; zero acknowledges at once.
    pub max_ack_delay: Duration,
    /// Later packets acknowledged before an earlier one counts as lost.
    pub packet_threshold: u64,
    /// Messages in flight before `send` refuses more.
    pub send_window: usize,
    /// Messages a conversation may run ahead of its next expected one at the receiver.
    pub receive_window: u64,
    /// Delivery order per conversation.
    pub ordering: Ordering,
    /// Largest payload the engine puts in one datagram.
    pub max_payload: usize,
    /// Bytes the layer below adds to every payload (header and tag), for byte counters.
    pub packet_overhead: usize,
    /// Largest message `send` accepts.
    pub max_message_bytes: usize,
    /// Ping after this long without sending.
    pub keepalive: Duration,
    /// Report the peer gone after this long without receiving.
    pub idle_timeout: Duration,
    /// Bytes the peer may make this side hold (see [`budget`](super::budget)).
    pub receive_budget: usize,
    /// Longest an incomplete message or a gap may wait for its missing data before the connection ends.
    pub stall_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            initial_rtt: DEFAULT_INITIAL_RTT,
            min_rto: DEFAULT_MIN_RTO,
            max_rto: DEFAULT_MAX_RTO,
            granularity: DEFAULT_GRANULARITY,
            max_ack_delay: Duration::ZERO,
            packet_threshold: DEFAULT_PACKET_THRESHOLD,
            send_window: DEFAULT_SEND_WINDOW,
            receive_window: DEFAULT_RECEIVE_WINDOW,
            ordering: Ordering::InOrder,
            max_payload: DEFAULT_MAX_PAYLOAD,
            packet_overhead: DATAGRAM_OVERHEAD,
            max_message_bytes: MAX_MESSAGE_BYTES,
            keepalive: DEFAULT_KEEPALIVE,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            receive_budget: DEFAULT_RECEIVE_BUDGET,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        }
    }
}

/// Smallest fragment the engine will cut, and the smallest the receiver accepts for any fragment but a message's
/// last: below this the frame overhead would dwarf the data. Part of the protocol, because it bounds how many
/// fragments a legal message can have (see [`max_fragments`](super::incoming::max_fragments)).
pub const MIN_FRAGMENT_BYTES: usize = 64;

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("min_rto ({min:?}) is larger than max_rto ({max:?})")]
    RtoBounds { min: Duration, max: Duration },
    #[error("min_rto and initial_rtt must be larger than zero")]
    ZeroTimer,
    #[error("max_payload {0} leaves no room for an ack and a {MIN_FRAGMENT_BYTES}-byte fragment")]
    PayloadTooSmall(usize),
    #[error("send_window must be at least 1 and receive_window at least as large")]
    Windows,
    #[error("packet_threshold must be at least 1")]
    PacketThreshold,
    #[error("max_message_bytes {0} needs more than {max} fragments", max = u16::MAX)]
    MessageTooLarge(usize),
    #[error("keepalive must be shorter than idle_timeout")]
    Keepalive,
    #[error(
        "receive_budget {budget} is too small: at least {min} bytes, a quarter of it enough for the largest message"
    )]
    BudgetTooSmall { budget: usize, min: usize },
    #[error("stall_timeout must be longer than idle_timeout")]
    StallTimeout,
}

impl EngineConfig {
    /// Checks that the settings can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.min_rto > self.max_rto {
            return Err(ConfigError::RtoBounds { min: self.min_rto, max: self.max_rto });
        }
        if self.min_rto.is_zero() || self.initial_rtt.is_zero() {
            return Err(ConfigError::ZeroTimer);
        }
        if self.max_payload < ACK_FRAME_MAX + FRAGMENT_OVERHEAD_MAX + MIN_FRAGMENT_BYTES {
            return Err(ConfigError::PayloadTooSmall(self.max_payload));
        }
        if self.send_window == 0 || self.receive_window < self.send_window as u64 {
            return Err(ConfigError::Windows);
        }
        if self.packet_threshold == 0 {
            return Err(ConfigError::PacketThreshold);
        }
        if self.max_message_bytes.div_ceil(self.fragment_capacity()) > usize::from(u16::MAX) {
            return Err(ConfigError::MessageTooLarge(self.max_message_bytes));
        }
        if self.keepalive >= self.idle_timeout {
            return Err(ConfigError::Keepalive);
        }
        let min_budget = MIN_RECEIVE_BUDGET.max(self.largest_message_cost().saturating_mul(4));
        if self.receive_budget < min_budget {
            return Err(ConfigError::BudgetTooSmall { budget: self.receive_budget, min: min_budget });
        }
        if self.stall_timeout <= self.idle_timeout {
            return Err(ConfigError::StallTimeout);
        }
        Ok(())
    }

    /// What the largest legal message costs the receiver's budget while it is reassembled: a new conversation's
    /// record, the message's bookkeeping and every one of its smallest legal pieces. The quarter of the budget kept
    /// for next messages must hold it, so the next expected message can always be reassembled.
    pub fn largest_message_cost(&self) -> usize {
        let pieces = usize::from(max_fragments(self.max_message_bytes));
        (STREAM_COST + PARTIAL_COST + pieces * PIECE_COST).saturating_add(self.max_message_bytes)
    }

    /// Data bytes per fragment: what is left of a payload after room for one ack frame and one fragment header, so
    /// that any fragment can always share its packet with an acknowledgement.
    pub fn fragment_capacity(&self) -> usize {
        self.max_payload.saturating_sub(ACK_FRAME_MAX + FRAGMENT_OVERHEAD_MAX).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(EngineConfig::default().validate(), Ok(()));
        assert!(EngineConfig::default().fragment_capacity() > 1000);
    }

    #[test]
    fn each_bad_setting_is_named() {
        let base = EngineConfig::default();
        let cases: Vec<(EngineConfig, ConfigError)> = vec![
            (
                EngineConfig { min_rto: Duration::from_secs(5), ..base.clone() },
                ConfigError::RtoBounds { min: Duration::from_secs(5), max: base.max_rto },
            ),
            (EngineConfig { min_rto: Duration::ZERO, ..base.clone() }, ConfigError::ZeroTimer),
            (EngineConfig { max_payload: 100, ..base.clone() }, ConfigError::PayloadTooSmall(100)),
            (EngineConfig { send_window: 0, ..base.clone() }, ConfigError::Windows),
            (EngineConfig { receive_window: 1, ..base.clone() }, ConfigError::Windows),
            (EngineConfig { packet_threshold: 0, ..base.clone() }, ConfigError::PacketThreshold),
            (
                EngineConfig { max_message_bytes: usize::MAX / 2, ..base.clone() },
                ConfigError::MessageTooLarge(usize::MAX / 2),
            ),
            (EngineConfig { keepalive: base.idle_timeout, ..base.clone() }, ConfigError::Keepalive),
            (
                EngineConfig { receive_budget: 1000, ..base.clone() },
                ConfigError::BudgetTooSmall { budget: 1000, min: 4 * base.largest_message_cost() },
            ),
            (EngineConfig { stall_timeout: base.idle_timeout, ..base.clone() }, ConfigError::StallTimeout),
        ];
        for (config, error) in cases {
            assert_eq!(config.validate(), Err(error));
        }
    }
}
