//! What the hub holds for one session on its way out, counted in bytes.
//!
//! The hub never waits for a client: it puts every message for a session into that session's queues and moves on.
//! A client that reads slowly, or not at all, therefore makes the *server* hold its messages, and the question is
//! how much. Counting messages is the wrong answer: 4 096 messages of 4 KiB each are 18 MB, pinned by one client
//! that only has to stop reading while the world room is busy. So everything the hub holds for a session is counted
//! in **bytes** against one budget, [`MAX_SESSION_QUEUE_BYTES`]:
//!
//! - the **control queue** towards the connection task (pushes over TCP, answers, presence, user lists): a message
//!   is charged when the hub queues it and given back when the connection task takes it ([`ControlQueue`]);
//! - the **UDP backlog**: pushes waiting for room in the engine's send window;
//! - the **UDP messages in flight**: given to the engine and not yet acknowledged by the client, which the engine
//!   keeps for retransmission (and the hub keeps a copy of, to push again over TCP if the client gives up on UDP).
//!
//! A push that would take a session over its budget is not queued: the session is *too slow* and the hub
//! disconnects it. A client on a slow Wi-Fi reads a little late but catches up long before that; a client that has
//! stopped reading never does, and waiting for it only grows the server.
//!
//! The charge of a message is an estimate of the memory it pins: its heap bytes (texts and names) plus
//! [`PER_MESSAGE_OVERHEAD_BYTES`] for the bookkeeping around it. The overhead matters: without it a flood of tiny
//! messages (presence changes, receipts) would be almost free, and a queue of a million of them is not.
//!
//! ## Knowing what the connection task has taken, without asking it
//!
//! The control queue is a bounded tokio channel created by the connection task, which owns its receiving end. The
//! hub learns how much of it is still waiting from the channel itself: a bounded channel of capacity *c* with
//! *free* free slots holds *c − free* messages, and they leave it in the order they entered. So the hub keeps the
//! charge of each message it queued, oldest first, and before every use drops the charges of the oldest messages
//! until as many remain as the channel still holds ([`ControlQueue::settle`]). No shared counter, no lock, and the
//! connection task does not need to know that anyone counts.

use std::collections::VecDeque;
use std::mem::size_of;

use chatlab_proto::chat::{ChatMessage, Target, Username};
use chatlab_proto::control::ServerMessage;
use tokio::sync::mpsc;

pub use crate::limits::{MAX_SESSION_QUEUE_BYTES, PER_MESSAGE_OVERHEAD_BYTES};

/// Capacity of an empty bookkeeping queue kept after a burst; beyond it the memory is given back, so a session that
/// once had a burst of pushes does not keep the burst's bookkeeping for the rest of its (idle) life.
const KEEP_EMPTY_CAPACITY: usize = 16;

/// The heap bytes of a user name.
fn name_bytes(name: &Username) -> usize {
    name.as_str().len()
}

/// The memory a chat message pins beyond its own inline size: text and names.
fn chat_heap_bytes(message: &ChatMessage) -> usize {
    let to = match &message.to {
        Target::World => 0,
        Target::User(name) => name_bytes(name),
    };
    message.text.len() + name_bytes(&message.from) + to
}

/// The charge of a copy of `message` kept by the hub (for pushing it again over TCP).
pub fn chat_message_charge(message: &ChatMessage) -> usize {
    size_of::<ChatMessage>() + chat_heap_bytes(message)
}

/// The charge of one control message in the queue: inline size, heap bytes, and the per-message overhead.
pub fn control_charge(message: &ServerMessage) -> usize {
    let heap = match message {
        ServerMessage::Welcome { server, .. } => server.len(),
        ServerMessage::Registered { username } => name_bytes(username),
        ServerMessage::SessionGrant { user, .. } => name_bytes(user),
        ServerMessage::Error { message, .. } | ServerMessage::ChatRejected { message, .. } => message.len(),
        ServerMessage::Users { users, .. } => users.iter().map(|u| size_of::<Username>() + name_bytes(u)).sum(),
        ServerMessage::Presence { user, .. } => name_bytes(user),
        ServerMessage::HistoryPage { messages, .. } => messages.iter().map(chat_message_charge).sum(),
        ServerMessage::Chat(message) => chat_heap_bytes(message),
        ServerMessage::Receipt { to, .. } => name_bytes(to),
        ServerMessage::ChatAccepted { .. } | ServerMessage::Pong { .. } | ServerMessage::LoggedOut => 0,
    };
    size_of::<ServerMessage>() + heap + PER_MESSAGE_OVERHEAD_BYTES
}

/// The charge of one UDP message the hub holds: its encoded bytes (which the engine keeps until they are
/// acknowledged), `kept` bytes of a copy kept for a push over TCP, and the per-message overhead.
pub fn datagram_charge(encoded: &[u8], kept: usize) -> usize {
    encoded.len() + kept + PER_MESSAGE_OVERHEAD_BYTES
}

/// The control queue was full: the client does not read, and the message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// The hub's end of a session's control queue, with the bytes of what waits in it. See the module documentation.
#[derive(Debug)]
pub struct ControlQueue {
    tx: mpsc::Sender<ServerMessage>,
    /// Charges of the messages still in the channel, oldest first.
    charges: VecDeque<usize>,
    bytes: usize,
}

impl ControlQueue {
    /// The hub's end of the channel whose receiving end the connection task holds.
    pub fn new(tx: mpsc::Sender<ServerMessage>) -> Self {
        Self { tx, charges: VecDeque::new(), bytes: 0 }
    }

    /// Forgets the charges of the messages the connection task has taken since the last look.
    fn settle(&mut self) {
        let waiting = self.tx.max_capacity().saturating_sub(self.tx.capacity());
        while self.charges.len() > waiting {
            let Some(charge) = self.charges.pop_front() else { break };
            self.bytes = self.bytes.saturating_sub(charge);
        }
        if self.charges.is_empty() && self.charges.capacity() > KEEP_EMPTY_CAPACITY {
            self.charges = VecDeque::new();
        }
    }

    /// Bytes charged for messages the connection task has not taken yet.
    pub fn bytes(&mut self) -> usize {
        self.settle();
        self.bytes
    }

    /// Queues `message`, charged `charge` bytes. A queue whose connection already ended takes anything (its
    /// `Disconnected` is on the way); a full channel is [`QueueFull`].
    pub fn send(&mut self, message: ServerMessage, charge: usize) -> Result<(), QueueFull> {
        match self.tx.try_send(message) {
            Ok(()) => {
                self.charges.push_back(charge);
                self.bytes = self.bytes.saturating_add(charge);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(QueueFull),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Username {
        Username::parse(raw).unwrap()
    }

    fn chat(text: &str) -> ServerMessage {
        ServerMessage::Chat(ChatMessage {
            id: 1,
            from: name("ann"),
            to: Target::World,
            text: text.into(),
            sent_at_ms: 1,
        })
    }

    #[test]
    fn charges_grow_with_the_text_and_never_fall_below_the_overhead() {
        let short = control_charge(&chat("hi"));
        let long = control_charge(&chat(&"x".repeat(4000)));
        assert_eq!(long - short, 3998);
        assert!(control_charge(&ServerMessage::LoggedOut) >= PER_MESSAGE_OVERHEAD_BYTES + size_of::<ServerMessage>());
        let users = ServerMessage::Users { req: 1, users: vec![name("ann"), name("bob")], more: false };
        assert!(control_charge(&users) > control_charge(&ServerMessage::LoggedOut) + 6);
        let message =
            ChatMessage { id: 1, from: name("ann"), to: Target::User(name("bob")), text: "hey".into(), sent_at_ms: 1 };
        assert_eq!(chat_message_charge(&message), size_of::<ChatMessage>() + 9);
        assert_eq!(datagram_charge(&[0; 10], 0), 10 + PER_MESSAGE_OVERHEAD_BYTES);
        assert_eq!(datagram_charge(&[0; 10], 50), 60 + PER_MESSAGE_OVERHEAD_BYTES);
    }

    #[tokio::test]
    async fn bytes_are_given_back_as_the_connection_takes_messages() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut queue = ControlQueue::new(tx);
        queue.send(chat("one"), 100).unwrap();
        queue.send(chat("two"), 20).unwrap();
        queue.send(chat("three"), 3).unwrap();
        assert_eq!(queue.bytes(), 123);
        rx.recv().await.unwrap();
        assert_eq!(queue.bytes(), 23, "the oldest message left first");
        rx.recv().await.unwrap();
        rx.recv().await.unwrap();
        assert_eq!(queue.bytes(), 0);
        queue.send(chat("four"), 7).unwrap();
        assert_eq!(queue.bytes(), 7);
    }

    #[test]
    fn a_full_channel_refuses_and_a_closed_one_swallows() {
        let (tx, rx) = mpsc::channel(1);
        let mut queue = ControlQueue::new(tx);
        queue.send(chat("one"), 5).unwrap();
        assert_eq!(queue.send(chat("two"), 5), Err(QueueFull));
        assert_eq!(queue.bytes(), 5, "a refused message is not charged");
        drop(rx);
        assert_eq!(queue.send(chat("three"), 5), Ok(()));
    }

    #[test]
    fn bookkeeping_of_a_burst_is_given_back_once_it_drained() {
        let (tx, mut rx) = mpsc::channel(1024);
        let mut queue = ControlQueue::new(tx);
        for _ in 0..1000 {
            queue.send(ServerMessage::LoggedOut, 1).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert_eq!(queue.bytes(), 0);
        assert!(queue.charges.capacity() <= KEEP_EMPTY_CAPACITY);
    }
}
