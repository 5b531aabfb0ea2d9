//! What the hub hears: requests of connection tasks, results of the storage writer, and the shutdown signal.
//!
//! Every message that changes session state travels through one bounded channel into the hub, which handles them
//! one at a time. That single queue is the whole synchronisation story of the server's live state: no session,
//! presence entry or endpoint is ever touched by two tasks, so none of them needs a lock.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use chatlab_proto::chat::{ChatMessage, Target, Username};
use chatlab_proto::control::{ErrorCode, ServerMessage, Transport};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::storage::{DeliveryReceipt, UserId};

/// Names one live session: its connection id plus a serial number that is never reused, so a late message about
/// an ended session can never be mistaken for a new session that drew the same random connection id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionRef {
    /// The random connection id of the session grant (also the key of the hub's session table).
    pub cid: u64,
    /// Unique per session for the lifetime of the server.
    pub serial: u64,
}

/// Why the hub closed a connection. (A session whose UDP path goes silent is not closed: its pushes move to TCP.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client stopped reading: the hub holds as much for it as a session may
    /// ([`MAX_SESSION_QUEUE_BYTES`](crate::limits::MAX_SESSION_QUEUE_BYTES)), or it could not take `LoggedOut`.
    TooSlow,
    /// The client's datagrams broke the reliability protocol or exceeded the session's receive budget (a fragment
    /// bomb, contradicting fragments, a gap never filled): its engine reported a
    /// [`ConnectionError`](chatlab_proto::engine::ConnectionError), logged with the details.
    ProtocolViolation,
}

impl CloseReason {
    /// The error code the client is told before the connection closes.
    pub fn code(self) -> ErrorCode {
        match self {
            CloseReason::TooSlow => ErrorCode::TooSlow,
            CloseReason::ProtocolViolation => ErrorCode::ProtocolViolation,
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CloseReason::TooSlow => "client does not read fast enough (queue full)",
            CloseReason::ProtocolViolation => "client broke the datagram protocol or exceeded its receive budget",
        })
    }
}

/// The hub's way to close a connection at once, even while the connection task is blocked writing to a client
/// that stopped reading. Firing stores the reason and wakes the connection; waiting for it can be cancelled and
/// restarted at any time (unlike a one-shot channel, which may be awaited only once).
#[derive(Debug, Default)]
pub struct KillSwitch {
    reason: Mutex<Option<CloseReason>>,
    notify: Notify,
}

impl KillSwitch {
    /// Closes the connection for `reason` (the first reason wins).
    pub fn fire(&self, reason: CloseReason) {
        let mut slot = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(reason);
        }
        drop(slot);
        // Stores a permit if nobody waits yet, so a later `fired` returns at once.
        self.notify.notify_one();
    }

    /// Waits until the switch is fired and returns the reason.
    pub async fn fired(&self) -> CloseReason {
        loop {
            if let Some(reason) = *self.reason.lock().unwrap_or_else(PoisonError::into_inner) {
                return reason;
            }
            self.notify.notified().await;
        }
    }
}

/// A refusal with its stable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code.
    pub code: ErrorCode,
    /// The sentence.
    pub message: String,
}

impl Refusal {
    /// A refusal with a specific message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// A logged-in user's request to open a session.
#[derive(Debug)]
pub struct LoginRequest {
    /// The canonical user name.
    pub user: Username,
    /// The user's storage id.
    pub user_id: UserId,
    /// The TCP peer, for logs.
    pub peer: SocketAddr,
    /// Where the hub queues this session's control messages (the connection task writes them out).
    pub out: mpsc::Sender<ServerMessage>,
    /// Fired by the hub to close the connection at once.
    pub kill: std::sync::Arc<KillSwitch>,
    /// The answer: the new session, or why there is none.
    pub reply: oneshot::Sender<Result<SessionRef, Refusal>>,
}

/// A chat message to store and deliver, as the storage writer receives it.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The sending session.
    pub session: SessionRef,
    /// The transport the message came on, which its answer uses.
    pub origin: Transport,
    /// The client's id for the message.
    pub client_msg_id: u64,
    /// The sender's storage id.
    pub from: UserId,
    /// The sender's name.
    pub from_name: Username,
    /// The world room or a user, not yet checked to exist.
    pub to: Target,
    /// The validated text.
    pub text: String,
}

/// A message that is now durable.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The message as every client sees it.
    pub message: ChatMessage,
    /// The recipient's storage id for a private message.
    pub recipient: Option<UserId>,
}

/// What became of one [`ChatRequest`].
#[derive(Debug)]
pub struct ChatOutcome {
    /// The sending session.
    pub session: SessionRef,
    /// The transport to answer on.
    pub origin: Transport,
    /// The client's id for the message.
    pub client_msg_id: u64,
    /// The sender's storage id.
    pub from: UserId,
    /// The target as the client gave it (the conversation its answer belongs to).
    pub to: Target,
    /// Stored, or refused.
    pub result: Result<Committed, Refusal>,
}

/// Everything the hub's queue carries.
#[derive(Debug)]
pub enum HubInput {
    /// Open a session.
    Login(LoginRequest),
    /// End a session at the client's request; the hub queues `LoggedOut` and then answers.
    Logout {
        /// The session.
        session: SessionRef,
        /// Answered once the session is gone.
        reply: oneshot::Sender<()>,
    },
    /// The connection of a session closed.
    Disconnected {
        /// The session.
        session: SessionRef,
    },
    /// A chat message arrived over TCP.
    Chat {
        /// The sending session.
        session: SessionRef,
        /// The client's id.
        client_msg_id: u64,
        /// The target.
        to: Target,
        /// The text, unchecked.
        text: String,
    },
    /// The client asks for the online users.
    ListUsers {
        /// The session.
        session: SessionRef,
        /// Echoed request number.
        req: u32,
    },
    /// The client chooses the transport of its pushes.
    UseTransport {
        /// The session.
        session: SessionRef,
        /// The transport.
        transport: Transport,
    },
    /// Delivery receipts to route to the senders' sessions.
    Receipts {
        /// Who received the messages.
        recipient: Username,
        /// One per message newly marked delivered.
        receipts: Vec<DeliveryReceipt>,
    },
    /// A batch of chat messages left the storage writer.
    Committed(Vec<ChatOutcome>),
    /// The storage writer has committed everything and stopped.
    WriterDone,
    /// Stop: flush the writer, tell every session, end.
    Shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn kill_switch_fired_before_or_after_waiting() {
        let early = KillSwitch::default();
        early.fire(CloseReason::TooSlow);
        early.fire(CloseReason::TooSlow);
        assert_eq!(early.fired().await, CloseReason::TooSlow);
        assert_eq!(early.fired().await, CloseReason::TooSlow, "waiting again is allowed");

        let late = Arc::new(KillSwitch::default());
        let waiter = tokio::spawn({
            let late = Arc::clone(&late);
            async move { late.fired().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        late.fire(CloseReason::TooSlow);
        assert_eq!(waiter.await.unwrap(), CloseReason::TooSlow);
    }

    #[tokio::test]
    async fn an_unfired_switch_keeps_waiting() {
        let switch = KillSwitch::default();
        assert!(tokio::time::timeout(Duration::from_millis(20), switch.fired()).await.is_err());
    }

    #[test]
    fn close_reasons_read_well() {
        assert!(CloseReason::TooSlow.to_string().contains("queue full"));
        assert_eq!(Refusal::new(ErrorCode::Internal, "x").message, "x");
    }
}
