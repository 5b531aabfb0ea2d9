//! A chat message as the server stores and delivers it, and the conversation it belongs to.
//!
//! Both transports carry the same [`ChatMessage`]: the TCP control channel pushes it inside a control message, the
//! UDP engine inside an encrypted datagram. Two fields are the server's to assign, never the sender's:
//!
//! - **`id`**, a number that only grows. It is the order of the conversation (clients sort by it, not by clocks),
//!   the key that de-duplicates a message received twice (once over UDP, once in history sync), and the cursor of
//!   incremental history sync ("everything after id 1234").
//! - **`sent_at_ms`**, the server's clock in UTC milliseconds since the Unix epoch. Client clocks drift and lie; one
//!   clock per room makes the timestamps of a conversation agree with its order.
//!
//! A [`Target`] names where a message goes: the world room or one user. Seen from one user's side a target is also
//! the *conversation* a message belongs to, so [`Target`] doubles as the key of the client's conversation list;
//! [`ChatMessage::conversation`] works out which one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::username::{NameError, Username, WORLD_NAME};

/// Where a message is sent, or, seen from one user, which conversation it belongs to.
///
/// On the wire a `Target` is the MessagePack string `"World"` or the one-entry map `{"User": "alice"}` (serde's
/// external enum tagging as rmp-serde writes it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Target {
    /// The world room: every online user receives the message.
    World,
    /// A one-to-one conversation with this user.
    User(Username),
}

impl Target {
    /// Reads a target as a person types it: [`WORLD_NAME`] (any case) is the world room, anything else must be a
    /// valid user name. Unambiguous because no account may be called [`WORLD_NAME`].
    pub fn parse(raw: &str) -> Result<Target, NameError> {
        if raw.eq_ignore_ascii_case(WORLD_NAME) { Ok(Target::World) } else { Username::parse(raw).map(Target::User) }
    }
}

impl fmt::Display for Target {
    /// The inverse of [`Target::parse`]: `world` or the user name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::World => f.write_str(WORLD_NAME),
            Target::User(name) => name.fmt(f),
        }
    }
}

impl FromStr for Target {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::parse(s)
    }
}

/// One chat message, with the fields the server assigned.
///
/// Encoded (compact form) as the MessagePack array `[id, from, to, text, sent_at_ms]`; the field order is part of
/// the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Server-assigned, strictly increasing across the whole server; orders and de-duplicates messages.
    pub id: u64,
    /// The sender.
    pub from: Username,
    /// The world room or the addressed user.
    pub to: Target,
    /// The text, valid by [`validate_text`](super::validate_text) when the server accepted it.
    pub text: String,
    /// Server time when the message was accepted: UTC milliseconds since the Unix epoch.
    pub sent_at_ms: i64,
}

impl ChatMessage {
    /// The conversation this message belongs to, seen by user `me`.
    ///
    /// World messages belong to the world room. A private message belongs to the conversation with *the other
    /// person*: the addressee if `me` sent it, the sender if `me` received it. A note to oneself (from and to are
    /// both `me`) lands in the conversation with oneself.
    pub fn conversation(&self, me: &Username) -> Target {
        match &self.to {
            Target::World => Target::World,
            Target::User(to) if self.from == *me => Target::User(to.clone()),
            Target::User(_) => Target::User(self.from.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Username {
        Username::parse(raw).expect("test names are valid")
    }

    fn message(from: &str, to: Target) -> ChatMessage {
        ChatMessage { id: 1, from: name(from), to, text: String::from("hi"), sent_at_ms: 0 }
    }

    #[test]
    fn world_messages_belong_to_the_world_room() {
        let msg = message("bob", Target::World);
        assert_eq!(msg.conversation(&name("alice")), Target::World);
        assert_eq!(msg.conversation(&name("bob")), Target::World);
    }

    #[test]
    fn private_message_belongs_to_the_other_person() {
        let msg = message("bob", Target::User(name("alice")));
        assert_eq!(msg.conversation(&name("alice")), Target::User(name("bob")));
        assert_eq!(msg.conversation(&name("bob")), Target::User(name("alice")));
    }

    #[test]
    fn note_to_self_is_its_own_conversation() {
        let msg = message("alice", Target::User(name("alice")));
        assert_eq!(msg.conversation(&name("alice")), Target::User(name("alice")));
    }

    #[test]
    fn target_parse_and_display_are_inverse() {
        assert_eq!(Target::parse("World"), Ok(Target::World));
        assert_eq!(Target::parse("Bob"), Ok(Target::User(name("bob"))));
        assert_eq!(Target::World.to_string(), "world");
        assert_eq!(Target::User(name("bob")).to_string(), "bob");
        assert_eq!("bob".parse::<Target>(), Ok(Target::User(name("bob"))));
    }

    #[test]
    fn target_parse_reports_name_errors() {
        assert_eq!(Target::parse(""), Err(NameError::Empty));
        assert!(matches!(Target::parse("a b"), Err(NameError::BadChar { ch: ' ', .. })));
    }

    #[test]
    fn target_known_answer_bytes() {
        assert_eq!(rmp_serde::to_vec(&Target::World).expect("encode"), b"\xa5World");
        assert_eq!(rmp_serde::to_vec(&Target::User(name("bob"))).expect("encode"), b"\x81\xa4User\xa3bob");
    }

    #[test]
    fn chat_message_known_answer_bytes() {
        let msg =
            ChatMessage { id: 7, from: name("bob"), to: Target::World, text: String::from("hi"), sent_at_ms: 1_000 };
        let bytes = rmp_serde::to_vec(&msg).expect("encode");
        // [7, "bob", "World", "hi", 1000]
        assert_eq!(bytes, b"\x95\x07\xa3bob\xa5World\xa2hi\xcd\x03\xe8");
        let back: ChatMessage = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(back, msg);
    }
}
