//! What one reliable datagram message carries: the chat layer's vocabulary over UDP.
//!
//! The engine moves opaque byte strings reliably; this enum is what those bytes mean. It mirrors the chat part of
//! the control channel, so a message looks the same whichever transport carried it:
//!
//! | over UDP (`ChatPayload`) | over TCP (control channel) | direction |
//! |---|---|---|
//! | `Send` | `ClientMessage::Chat` | client → server |
//! | `Accepted` | `ServerMessage::ChatAccepted` | server → client: stored durably, the "sent" tick |
//! | `Rejected` | `ServerMessage::ChatRejected` | server → client: refused, nothing stored |
//! | `Message` | `ServerMessage::Chat` | server → client: someone's message |
//! | `Receipt` | `ServerMessage::Receipt` | server → client: your message reached them, the "delivered" tick |
//!
//! Over UDP a client needs no explicit "received" message: the engine's acknowledgement of a `Message` already tells
//! the server that it arrived, and the server turns that into a receipt for the sender.
//!
//! Encoded with MessagePack like the control messages, and decoded with the same structural checks
//! ([`crate::control::decode`]), because a datagram's plaintext is as untrusted as a TCP frame.

use serde::{Deserialize, Serialize};

use super::{ChatMessage, Target, Username};
use crate::control::{CodecError, ErrorCode, decode, encode};

/// The chat meaning of one reliable datagram message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatPayload {
    /// A chat message from the client; see `ClientMessage::Chat`.
    Send { client_msg_id: u64, to: Target, text: String },
    /// The server stored the client's message durably; see `ServerMessage::ChatAccepted`.
    Accepted { client_msg_id: u64, id: u64, sent_at_ms: i64 },
    /// The server refused the client's message; see `ServerMessage::ChatRejected`.
    Rejected { client_msg_id: u64, code: ErrorCode, message: String },
    /// A message for this user; see `ServerMessage::Chat`.
    Message(ChatMessage),
    /// Message `id` reached user `to`; see `ServerMessage::Receipt`.
    Receipt { id: u64, to: Username },
}

impl ChatPayload {
    /// MessagePack bytes for the engine.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        encode(self)
    }

    /// Decodes untrusted bytes delivered by the engine.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_payload_round_trips() {
        let ann = Username::parse("ann").unwrap();
        let payloads = vec![
            ChatPayload::Send { client_msg_id: 1, to: Target::World, text: "hi".into() },
            ChatPayload::Accepted { client_msg_id: 1, id: 7, sent_at_ms: 1_700_000_000_000 },
            ChatPayload::Rejected { client_msg_id: 2, code: ErrorCode::TextTooLong, message: "too long".into() },
            ChatPayload::Message(ChatMessage {
                id: 7,
                from: ann.clone(),
                to: Target::World,
                text: "你好".into(),
                sent_at_ms: 5,
            }),
            ChatPayload::Receipt { id: 7, to: ann },
        ];
        for p in payloads {
            assert_eq!(ChatPayload::decode(&p.encode().unwrap()).unwrap(), p);
        }
    }

    #[test]
    fn an_invalid_name_inside_a_payload_is_refused() {
        let bytes = ChatPayload::Receipt { id: 1, to: Username::parse("ann").unwrap() }.encode().unwrap();
        let text = String::from_utf8_lossy(&bytes).replace("ann", "A N");
        assert!(ChatPayload::decode(text.as_bytes()).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ChatPayload::decode(&bytes);
        }
    }
}
