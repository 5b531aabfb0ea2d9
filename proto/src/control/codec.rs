//! Turning control messages into bytes and untrusted bytes back into control messages.
//!
//! Decoding is two passes. [`check_structure`] first walks the raw MessagePack and refuses anything deep, oversized
//! or malformed (see [`depth`](super::depth)); only input that passes reaches rmp-serde, which then maps the value
//! onto [`ClientMessage`] or [`ServerMessage`] and runs the validating `Deserialize` impls (user names, key length).
//! Every failure is a [`CodecError`]; no input makes these functions panic or allocate more than the input's size.

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use super::depth::{StructureError, check_structure};
use super::frame::MAX_FRAME_BYTES;
use super::message::{ClientMessage, ServerMessage};

/// Bytes the Noise transport adds to every message: the 16-byte AES-GCM authentication tag.
pub const NOISE_TAG_BYTES: usize = 16;

/// Largest encoded control message. A frame holds at most [`MAX_FRAME_BYTES`] of Noise ciphertext, which is the
/// plaintext plus the tag, so this is what is left for the message itself. [`encode`] refuses anything larger, so an
/// oversized message fails where it is built instead of deep inside the encryption layer.
pub const MAX_MESSAGE_BYTES: usize = MAX_FRAME_BYTES - NOISE_TAG_BYTES;

/// Why a control message could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The message is larger than [`MAX_MESSAGE_BYTES`] (encoding) or the input is (decoding).
    #[error("control message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Bytes of the message or input.
        len: usize,
        /// The limit, [`MAX_MESSAGE_BYTES`].
        max: usize,
    },
    /// The input is not one well-formed, bounded MessagePack value.
    #[error("malformed MessagePack: {0}")]
    Structure(#[from] StructureError),
    /// The input is well-formed MessagePack but not a valid message (wrong shape, unknown variant, invalid user
    /// name, ...). The text is the decoder's explanation.
    #[error("not a valid control message: {0}")]
    Invalid(String),
    /// The value could not be serialized.
    #[error("could not encode control message: {0}")]
    Encode(String),
}

/// Encodes a control message (or any serializable value) in chatlab's compact MessagePack form.
pub fn encode<T: Serialize + ?Sized>(message: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = rmp_serde::to_vec(message).map_err(|err| CodecError::Encode(err.to_string()))?;
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(CodecError::TooLarge { len: bytes.len(), max: MAX_MESSAGE_BYTES });
    }
    Ok(bytes)
}

/// Bytes `value` takes when encoded, measured without keeping the bytes.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, CodecError> {
    let mut counter = ByteCounter(0);
    rmp_serde::encode::write(&mut counter, value).map_err(|err| CodecError::Encode(err.to_string()))?;
    Ok(counter.0)
}

/// Decodes a message a client sent.
pub fn decode_client(bytes: &[u8]) -> Result<ClientMessage, CodecError> {
    decode(bytes)
}

/// Decodes a message a server sent.
pub fn decode_server(bytes: &[u8]) -> Result<ServerMessage, CodecError> {
    decode(bytes)
}

/// Decodes any chatlab MessagePack value with the same structural checks (used for datagram chat payloads too).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(CodecError::TooLarge { len: bytes.len(), max: MAX_MESSAGE_BYTES });
    }
    check_structure(bytes)?;
    rmp_serde::from_slice(bytes).map_err(|err| CodecError::Invalid(err.to_string()))
}

/// An `io::Write` that only counts, for [`encoded_len`].
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Target;
    use crate::control::error_code::ErrorCode;
    use crate::control::strategies::{client_message, server_message};
    use proptest::prelude::*;

    #[test]
    fn encode_and_decode_a_client_message() {
        let msg = ClientMessage::Ping { nonce: 5 };
        let bytes = encode(&msg).expect("encode");
        assert_eq!(bytes, [0x81, 0xa4, b'P', b'i', b'n', b'g', 0x91, 0x05]);
        assert_eq!(decode_client(&bytes), Ok(msg));
    }

    #[test]
    fn encode_refuses_oversized_message() {
        let msg = ClientMessage::Chat { client_msg_id: 1, to: Target::World, text: "x".repeat(MAX_MESSAGE_BYTES) };
        assert!(matches!(encode(&msg), Err(CodecError::TooLarge { max: MAX_MESSAGE_BYTES, .. })));
    }

    #[test]
    fn decode_refuses_oversized_input() {
        let input = vec![0u8; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            decode_client(&input),
            Err(CodecError::TooLarge { len: MAX_MESSAGE_BYTES + 1, max: MAX_MESSAGE_BYTES })
        );
    }

    #[test]
    fn structure_errors_surface_before_serde() {
        assert_eq!(
            decode_server(&[0xdd, 0xff, 0xff, 0xff, 0xff]),
            Err(CodecError::Structure(StructureError::LengthExceedsInput {
                offset: 0,
                declared: u64::from(u32::MAX),
                remaining: 0
            }))
        );
        assert_eq!(decode_client(&[]), Err(CodecError::Structure(StructureError::Empty)));
        let mut bytes = encode(&ClientMessage::Logout).expect("encode");
        bytes.push(0);
        assert_eq!(decode_client(&bytes), Err(CodecError::Structure(StructureError::TrailingBytes { count: 1 })));
    }

    #[test]
    fn extra_or_missing_fields_are_invalid() {
        // {"Ping": [5, 6]}: one field too many is refused, not ignored.
        let extra = [0x81, 0xa4, b'P', b'i', b'n', b'g', 0x92, 0x05, 0x06];
        assert!(matches!(decode_client(&extra), Err(CodecError::Invalid(_))));
        // {"Ping": []}
        let missing = [0x81, 0xa4, b'P', b'i', b'n', b'g', 0x90];
        assert!(matches!(decode_client(&missing), Err(CodecError::Invalid(_))));
    }

    #[test]
    fn unknown_variant_is_invalid() {
        let bytes = encode("Dance").expect("encode");
        assert!(matches!(decode_client(&bytes), Err(CodecError::Invalid(_))));
    }

    #[test]
    fn wrong_shape_is_invalid() {
        // {"Ping": ["five"]}
        let bytes = [0x81, 0xa4, b'P', b'i', b'n', b'g', 0x91, 0xa4, b'f', b'i', b'v', b'e'];
        assert!(matches!(decode_client(&bytes), Err(CodecError::Invalid(_))));
        // A client message is not a server message.
        let bytes = encode(&ClientMessage::Logout).expect("encode");
        assert!(matches!(decode_server(&bytes), Err(CodecError::Invalid(_))));
    }

    #[test]
    fn invalid_user_name_in_server_message_is_rejected_with_the_reason() {
        // {"Presence": ["Not Valid", true]}: a user name with a space.
        let mut bytes = vec![0x81, 0xa8];
        bytes.extend(b"Presence");
        bytes.extend([0x92, 0xa9]);
        bytes.extend(b"Not Valid");
        bytes.push(0xc3);
        let err = decode_server(&bytes).expect_err("invalid name");
        assert!(err.to_string().contains("' ' at position 3"), "{err}");
    }

    #[test]
    fn invalid_utf8_is_invalid() {
        // A unit-variant name that is not UTF-8.
        let bytes = [0xa2, 0xff, 0xfe];
        assert!(matches!(decode_client(&bytes), Err(CodecError::Invalid(_))));
    }

    #[test]
    fn encode_reports_serializer_errors() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("refused"))
            }
        }
        assert!(matches!(encode(&Refuses), Err(CodecError::Encode(text)) if text.contains("refused")));
        assert!(matches!(encoded_len(&Refuses), Err(CodecError::Encode(_))));
    }

    #[test]
    fn encoded_len_matches_encode() {
        let msg = ServerMessage::Error { req: Some(1), code: ErrorCode::Internal, message: String::from("boom") };
        assert_eq!(encoded_len(&msg), Ok(encode(&msg).expect("encode").len()));
    }

    proptest! {
        #[test]
        fn client_messages_round_trip(msg in client_message()) {
            let bytes = encode(&msg).expect("encode");
            prop_assert_eq!(encoded_len(&msg), Ok(bytes.len()));
            prop_assert_eq!(decode_client(&bytes), Ok(msg));
        }

        #[test]
        fn server_messages_round_trip(msg in server_message()) {
            let bytes = encode(&msg).expect("encode");
            prop_assert_eq!(encoded_len(&msg), Ok(bytes.len()));
            prop_assert_eq!(decode_server(&bytes), Ok(msg));
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_client(&input);
            let _ = decode_server(&input);
        }

        #[test]
        fn mutated_messages_never_panic(
            msg in server_message(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            // Random bytes rarely get past the first marker; flipping bytes of a real message reaches deeper code.
            let mut bytes = encode(&msg).expect("encode");
            for (index, value) in flips {
                let at = index.index(bytes.len());
                if let Some(byte) = bytes.get_mut(at) {
                    *byte = value;
                }
            }
            let _ = decode_server(&bytes);
            let _ = decode_client(&bytes);
        }
    }
}
