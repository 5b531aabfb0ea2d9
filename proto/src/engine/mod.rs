//! The reliability engine: chat messages delivered exactly once over datagrams that may be lost, duplicated or
//! reordered.
//!
//! UDP gives no guarantee at all, so everything TCP would do for us is done here, message by message:
//!
//! | problem | mechanism | where |
//! |---|---|---|
//! | a datagram is lost | the receiver acknowledges what arrived; the sender resends what was not acknowledged | [`ack_tracker`], [`sent`] |
//! | how long to wait before resending | RTT measurement and a retransmission timeout (RTO) | [`rtt`] |
//! | a loss detected quickly | fast retransmit: later packets acknowledged first | [`sent`] |
//! | a datagram arrives twice | messages are named `(stream, seq)` and de-duplicated | [`incoming`] |
//! | datagrams arrive out of order | per-conversation ordering, or none, by choice | [`incoming`] |
//! | a message bigger than a datagram | fragmentation and reassembly | [`outgoing`], [`incoming`] |
//! | a peer that lies to make us hoard memory | a receive budget in bytes; a connection error past it | [`budget`], [`connection_error`] |
//! | a sender faster than the path | a send window that refuses instead of queueing forever | [`outgoing`] |
//! | a silent NAT forgets the mapping | keepalive pings | [`connection`] |
//!
//! Two choices distinguish this design from TCP, and a lab can see both:
//!
//! - **A message is the unit, not a byte stream.** Each conversation (a *stream*: the world room, or one private
//!   chat) has its own sequence numbers, so a loss in one private chat never delays another (TCP puts everything in
//!   one stream and one loss stalls it all).
//! - **Packet numbers are never reused.** A retransmission puts the same fragment in a *new* packet with a new
//!   number, as QUIC does. Every acknowledgement then names exactly one transmission, every RTT sample is exact, and
//!   the encryption nonce (derived from the packet number) never repeats.
//!
//! The [`Engine`] ties the pieces together; [`frame`] is the byte layout of what it sends.

pub mod ack_tracker;
pub mod budget;
pub mod config;
pub mod connection;
pub mod connection_error;
pub mod frame;
pub mod incoming;
pub mod outgoing;
pub mod rtt;
pub mod sent;

pub use config::{ConfigError, EngineConfig, MAX_MESSAGE_BYTES, Ordering};
pub use connection::{Engine, Event, PacketError, SendError};
pub use connection_error::ConnectionError;
pub use incoming::Delivery;
pub use outgoing::AckedMessage;

#[cfg(test)]
mod tests;
