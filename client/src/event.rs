//! What the client core tells its face (the CLI, the desktop app), and the answers to its requests.
//!
//! The core is an *actor*: one background task owns the connection and all its state, requests go in through a
//! command channel and come back on one-shot replies, and everything the server does on its own (a new message, a
//! user coming online, a dropped connection) comes out as a [`ClientEvent`] on one ordered stream. A face never
//! touches a socket and never shares a lock with the network; it reads events when it is ready, which is exactly
//! what an immediate-mode GUI repainting sixty times a second wants.

use std::time::Duration;

use chatlab_proto::chat::{ChatMessage, Target, Username};
use chatlab_proto::control::Transport;
use chatlab_proto::noise::Fingerprint;

use crate::error::ClientError;
use crate::stats::ClientStats;

/// The server stored a message durably: the "sent" tick. Answer of [`ClientHandle::send`](crate::ClientHandle::send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The client's own number for the message, as carried on the wire.
    pub client_msg_id: u64,
    /// The server-assigned message id.
    pub id: u64,
    /// Server time of acceptance, UTC milliseconds since the Unix epoch.
    pub sent_at_ms: i64,
    /// Where the message went.
    pub to: Target,
    /// The transport the message travelled on.
    pub transport: Transport,
}

/// A successful login. Answer of [`ClientHandle::login`](crate::ClientHandle::login).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The canonical (case-folded) name logged in.
    pub user: Username,
    /// The longest text the server accepts, in bytes.
    pub max_text_bytes: usize,
    /// The transport chat starts on (UDP is confirmed or abandoned shortly after, see
    /// [`ClientEvent::TransportChanged`]).
    pub transport: Transport,
}

/// One page of a conversation's history. Answer of [`ClientHandle::history`](crate::ClientHandle::history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The messages, oldest first.
    pub messages: Vec<ChatMessage>,
    /// Whether older messages exist; ask again with the first message's id as `before`.
    pub more: bool,
}

/// How a message reached the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageSource {
    /// Pushed by the server as it happened.
    Live,
    /// Fetched by a history sync (at login, after a reconnect, or on request): it was sent while this client was
    /// away.
    Sync,
}

/// Why chat changed transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportReason {
    /// The caller asked for it ([`ClientHandle::set_transport`](crate::ClientHandle::set_transport) or the
    /// configured preference).
    Requested,
    /// The first UDP ping of the session got an answer: UDP works both ways.
    UdpConfirmed,
    /// No answer over UDP within the probe timeout: the port is probably blocked.
    UdpBlocked {
        /// `HOST:PORT` of the server's UDP side.
        server: String,
        /// How long the client waited.
        waited: Duration,
    },
    /// UDP went silent for the engine's idle timeout after having worked.
    UdpSilent {
        /// How long nothing arrived.
        silent_for: Duration,
    },
    /// The server's datagrams broke the reliability protocol or exceeded this client's receive budget, so the
    /// client's engine ended the UDP session (see `chatlab_proto::engine::ConnectionError`). An honest server never
    /// causes it; a hostile one cannot make the client hold more than its budget.
    UdpFailed {
        /// The engine's explanation.
        reason: String,
    },
}

impl std::fmt::Display for TransportReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportReason::Requested => f.write_str("requested"),
            TransportReason::UdpConfirmed => f.write_str("the server answered over UDP"),
            TransportReason::UdpBlocked { server, waited } => {
                write!(f, "no answer over UDP from {server} within {} ms; chatting over TCP", waited.as_millis())
            }
            TransportReason::UdpSilent { silent_for } => {
                write!(f, "nothing heard over UDP for {} s; chatting over TCP", silent_for.as_secs())
            }
            TransportReason::UdpFailed { reason } => {
                write!(f, "the server's datagrams broke the protocol ({reason}); chatting over TCP")
            }
        }
    }
}

/// Something that happened, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// First contact with this server: its key was pinned in the known-servers file. Show the fingerprint so the
    /// user can compare it with the one the server's operator announced.
    ServerKeyPinned {
        /// The server, `HOST:PORT`.
        server: String,
        /// The fingerprint of its key.
        fingerprint: Fingerprint,
    },
    /// A chat message for this user (each message id at most once, however many ways it arrived).
    Message {
        /// The message.
        message: ChatMessage,
        /// Pushed live or fetched by a sync.
        source: MessageSource,
    },
    /// A message this client sent was stored by the server (the same figures the `send` call returned).
    Accepted(Accepted),
    /// A message this client handed to the core failed for good (the same error its `send` call returned).
    ///
    /// With [`Accepted`](ClientEvent::Accepted) this gives every message that went out exactly one outcome on the
    /// event stream, also when the caller stopped waiting: a `send` future dropped (or timed out by the caller)
    /// after the message had already left the client still ends in one of the two. A message cancelled *before* it
    /// left the client was never sent and has no outcome (see [`ClientHandle::send`](crate::ClientHandle::send)).
    SendFailed {
        /// The client's own number for the message.
        client_msg_id: u64,
        /// Where it was going.
        to: Target,
        /// Why it failed.
        error: ClientError,
    },
    /// A message this user sent reached user `to`: the "delivered" tick.
    Receipt {
        /// The message id.
        id: u64,
        /// Who received it.
        to: Username,
    },
    /// A user came online or went offline.
    Presence {
        /// Who.
        user: Username,
        /// Online now?
        online: bool,
    },
    /// Chat moved to another transport.
    TransportChanged {
        /// The transport chat uses from now on.
        transport: Transport,
        /// Why.
        reason: TransportReason,
    },
    /// The connection to the server dropped. Requests fail with [`ClientError::Disconnected`] until
    /// [`ClientEvent::Reconnected`], except chat messages of a logged-in session: those wait in the outbox and go out
    /// after the reconnect (see [`ClientHandle::send`](crate::ClientHandle::send)).
    Disconnected {
        /// What happened.
        reason: String,
    },
    /// The next reconnection attempt starts after `delay`.
    Reconnecting {
        /// 1 for the first attempt after a drop.
        attempt: u32,
        /// Wait before the attempt.
        delay: Duration,
    },
    /// Connected (and logged in again, if a session was open) after a drop. The messages that waited in the outbox
    /// go out now (their [`ClientEvent::Accepted`] follow), and missed messages follow as [`MessageSource::Sync`]
    /// messages.
    Reconnected,
    /// A history sync finished; `messages` new messages were emitted before this event.
    Synced {
        /// Messages the sync brought that this client had not seen.
        messages: usize,
    },
    /// A failure that belongs to no request, such as a reconnection that can never succeed.
    Error(ClientError),
    /// Periodic statistics (see [`ClientConfig::stats_interval`](crate::ClientConfig::stats_interval)).
    Stats(Box<ClientStats>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_reason_says_why() {
        let reason = TransportReason::UdpBlocked { server: "10.0.0.1:7878".into(), waited: Duration::from_secs(3) };
        assert_eq!(reason.to_string(), "no answer over UDP from 10.0.0.1:7878 within 3000 ms; chatting over TCP");
        let silent = TransportReason::UdpSilent { silent_for: Duration::from_secs(30) };
        assert_eq!(silent.to_string(), "nothing heard over UDP for 30 s; chatting over TCP");
        assert_eq!(TransportReason::Requested.to_string(), "requested");
        assert_eq!(TransportReason::UdpConfirmed.to_string(), "the server answered over UDP");
    }
}
