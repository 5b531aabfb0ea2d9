//! Transport mode: the encrypted conversation after the handshake.
//!
//! When the handshake ends, both sides hold the same two symmetric keys, one per direction (Noise calls this the
//! *split*). From then on every message is sealed with AES-256-GCM under the sender's key and a *nonce* that is
//! simply a counter: 0 for the first message in that direction, 1 for the second, and so on. The nonce never
//! crosses the wire; each side counts. That has two consequences a student should notice:
//!
//! - **Order matters.** Message *n* only decrypts as message *n*. A dropped, repeated, reordered or injected
//!   message fails authentication. That is exactly right over TCP, which delivers bytes in order or not at all, and
//!   it is why chatlab's UDP datagrams use a different scheme (explicit packet numbers and a replay window).
//! - **A failure ends the session.** After a message fails, the counters of the two sides disagree for good, so
//!   [`Transport`] refuses all further work ([`NoiseError::SessionFailed`]); the caller closes the connection.
//!
//! # One message at a time
//!
//! This type seals and opens one Noise message. Cutting a TCP byte stream into messages (chatlab prefixes each with
//! its length as a big-endian u16) is the framing layer's job, which is why the largest Noise message, 65535 bytes,
//! is also the largest frame.
//!
//! # Rekeying
//!
//! AES-GCM's security margin shrinks with the amount of data sealed under one key. Every
//! [`REKEY_INTERVAL_MESSAGES`] messages in a direction, both sides replace that direction's key by Noise's `Rekey()`
//! function (Noise specification, section 11.3). No message announces it: sender and receiver count the same
//! messages, so they switch at the same point, and a peer that did not would fail on the very next message.

use std::num::NonZeroU64;

use super::error::NoiseError;

/// Largest Noise message in bytes, ciphertext and tag together. The Noise specification fixes it at 65535 so
/// that any message length fits in a u16 length prefix; chatlab's frames use exactly such a prefix.
pub const MAX_NOISE_MESSAGE: usize = 65535;

/// Length of the AES-GCM authentication tag appended to every sealed message. The tag is what lets the receiver
/// detect any change to the ciphertext.
pub const TAG_LEN: usize = 16;

/// Largest plaintext one Noise message can carry: the message limit minus the tag. Larger control messages must
/// be split by the layer above (history, for example, is paged).
pub const MAX_PLAINTEXT: usize = MAX_NOISE_MESSAGE - TAG_LEN;

/// Messages sealed under one key before both sides move to the next key.
///
/// TLS 1.3 (RFC 8446, section 5.5) keeps AES-GCM below about 2^24.5 full records of 2^14 bytes per key, roughly
/// 2^34.5 AES blocks, so an attacker's advantage stays below 2^-57. One Noise message is at most 4096 AES blocks
/// (2^12), so 2^20 messages are at most 2^32 blocks: a comfortable factor of about 5 below that budget, while a
/// rekey (one AES-GCM operation) happens rarely enough to cost nothing. The interval is part of the protocol:
/// both sides must use the same value, which the handshake prologue's version string guarantees.
pub const REKEY_INTERVAL_MESSAGES: u64 = 1 << 20;

/// An established Noise session: seals outgoing and opens incoming messages.
///
/// Created by [`Initiator::finish`](super::Initiator::finish) or [`Responder::respond`](super::Responder::respond).
pub struct Transport {
    state: snow::TransportState,
    rekey_interval: NonZeroU64,
    failed: bool,
}

impl Transport {
    /// Wraps a finished snow session with chatlab's rekey schedule.
    pub(crate) fn new(state: snow::TransportState) -> Self {
        Transport { state, rekey_interval: default_rekey_interval(), failed: false }
    }

    /// Seals `plaintext` into one Noise message (ciphertext followed by the 16-byte tag).
    ///
    /// Fails with [`NoiseError::TooLarge`] when `plaintext` is longer than [`MAX_PLAINTEXT`]; that failure leaves
    /// the session intact because nothing was sent. Fails with [`NoiseError::NonceExhausted`] when this direction
    /// has used every nonce, and with [`NoiseError::SessionFailed`] once any earlier message failed.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if self.failed {
            return Err(NoiseError::SessionFailed);
        }
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(NoiseError::TooLarge { len: plaintext.len(), max: MAX_PLAINTEXT });
        }
        // Cannot overflow: plaintext.len() <= MAX_PLAINTEXT was checked above.
        let mut message = vec![0u8; plaintext.len() + TAG_LEN];
        match self.state.write_message(plaintext, &mut message) {
            Ok(written) => message.truncate(written),
            Err(err) => return Err(self.fail(err)),
        }
        if self.state.sending_nonce() % self.rekey_interval == 0 {
            self.state.rekey_outgoing();
        }
        Ok(message)
    }

    /// Opens one Noise message from the peer and returns its plaintext.
    ///
    /// Any message that does not verify (changed, cut short, replayed, reordered, from another session) gives
    /// [`NoiseError::Tampered`]; a message longer than [`MAX_NOISE_MESSAGE`] gives [`NoiseError::TooLarge`]. Both
    /// end the session: every later call returns [`NoiseError::SessionFailed`].
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if self.failed {
            return Err(NoiseError::SessionFailed);
        }
        if ciphertext.len() > MAX_NOISE_MESSAGE {
            self.failed = true;
            return Err(NoiseError::TooLarge { len: ciphertext.len(), max: MAX_NOISE_MESSAGE });
        }
        // A message shorter than a tag cannot have been sealed by the peer.
        let Some(plaintext_len) = ciphertext.len().checked_sub(TAG_LEN) else {
            self.failed = true;
            return Err(NoiseError::Tampered);
        };
        let mut plaintext = vec![0u8; plaintext_len];
        match self.state.read_message(ciphertext, &mut plaintext) {
            Ok(read) => plaintext.truncate(read),
            Err(err) => return Err(self.fail(err)),
        }
        if self.state.receiving_nonce() % self.rekey_interval == 0 {
            self.state.rekey_incoming();
        }
        Ok(plaintext)
    }

    /// Marks the session failed and translates snow's error into ours.
    fn fail(&mut self, err: snow::Error) -> NoiseError {
        self.failed = true;
        transport_error(err)
    }

    /// Test hook: use a short rekey interval so tests can cross several key changes.
    #[cfg(test)]
    pub(crate) fn set_rekey_interval(&mut self, interval: NonZeroU64) {
        self.rekey_interval = interval;
    }

    /// Test hook: pretend this many messages have already arrived.
    #[cfg(test)]
    pub(crate) fn set_receiving_nonce(&mut self, nonce: u64) {
        self.state.set_receiving_nonce(nonce);
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material; counters and state are enough to debug a session.
        f.debug_struct("Transport")
            .field("sent", &self.state.sending_nonce())
            .field("received", &self.state.receiving_nonce())
            .field("failed", &self.failed)
            .finish()
    }
}

/// [`REKEY_INTERVAL_MESSAGES`] as the non-zero type the modulo needs.
fn default_rekey_interval() -> NonZeroU64 {
    NonZeroU64::new(REKEY_INTERVAL_MESSAGES).unwrap_or(NonZeroU64::MIN)
}

/// Maps a snow transport error to the kind the caller reacts to.
fn transport_error(err: snow::Error) -> NoiseError {
    match err {
        snow::Error::Decrypt => NoiseError::Tampered,
        snow::Error::State(snow::error::StateProblem::Exhausted) => NoiseError::NonceExhausted,
        other => NoiseError::Crypto(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noise::{Initiator, Responder, StaticKeypair};

    /// A connected client/server pair of transports.
    fn pair() -> (Transport, Transport) {
        let server_key = StaticKeypair::generate().expect("key");
        let mut initiator = Initiator::new().expect("initiator");
        let msg1 = initiator.start().expect("msg1");
        let (msg2, server) = Responder::new(&server_key).expect("responder").respond(&msg1).expect("respond");
        let (client, _) = initiator.finish(&msg2).expect("finish");
        (client, server)
    }

    #[test]
    fn round_trip_both_directions_many_messages() {
        let (mut client, mut server) = pair();
        for i in 0..50u32 {
            let up = format!("client message {i}");
            let sealed = client.encrypt(up.as_bytes()).expect("encrypt");
            assert_eq!(sealed.len(), up.len() + TAG_LEN);
            assert_eq!(server.decrypt(&sealed).expect("decrypt"), up.as_bytes());
            let down = format!("server message {i}");
            let sealed = server.encrypt(down.as_bytes()).expect("encrypt");
            assert_eq!(client.decrypt(&sealed).expect("decrypt"), down.as_bytes());
        }
    }

    #[test]
    fn empty_and_largest_plaintext_round_trip() {
        let (mut client, mut server) = pair();
        let sealed = client.encrypt(&[]).expect("empty");
        assert_eq!(sealed.len(), TAG_LEN);
        assert_eq!(server.decrypt(&sealed).expect("decrypt"), Vec::<u8>::new());
        let big = vec![0x5a; MAX_PLAINTEXT];
        let sealed = client.encrypt(&big).expect("largest");
        assert_eq!(sealed.len(), MAX_NOISE_MESSAGE);
        assert_eq!(server.decrypt(&sealed).expect("decrypt"), big);
    }

    #[test]
    fn too_large_plaintext_is_refused_and_session_survives() {
        let (mut client, mut server) = pair();
        let err = client.encrypt(&vec![0; MAX_PLAINTEXT + 1]).expect_err("too large");
        assert!(matches!(err, NoiseError::TooLarge { len, max } if len == MAX_PLAINTEXT + 1 && max == MAX_PLAINTEXT));
        let sealed = client.encrypt(b"still fine").expect("session intact");
        assert_eq!(server.decrypt(&sealed).expect("decrypt"), b"still fine");
    }

    #[test]
    fn too_large_ciphertext_is_refused_and_ends_session() {
        let (_, mut server) = pair();
        let err = server.decrypt(&vec![0; MAX_NOISE_MESSAGE + 1]).expect_err("too large");
        assert!(matches!(err, NoiseError::TooLarge { max: MAX_NOISE_MESSAGE, .. }));
        assert!(matches!(server.decrypt(&[0; 32]), Err(NoiseError::SessionFailed)));
    }

    #[test]
    fn tampered_message_is_rejected_and_session_ends() {
        let (mut client, mut server) = pair();
        let mut sealed = client.encrypt(b"transfer 10 coins to bob").expect("encrypt");
        if let Some(byte) = sealed.get_mut(3) {
            *byte ^= 0x01;
        }
        assert!(matches!(server.decrypt(&sealed), Err(NoiseError::Tampered)));
        // Even the next genuine message is refused: the session is over.
        let genuine = client.encrypt(b"hello").expect("encrypt");
        assert!(matches!(server.decrypt(&genuine), Err(NoiseError::SessionFailed)));
        assert!(matches!(server.encrypt(b"reply"), Err(NoiseError::SessionFailed)));
    }

    #[test]
    fn tampered_tag_is_rejected() {
        let (mut client, mut server) = pair();
        let mut sealed = client.encrypt(b"hi").expect("encrypt");
        if let Some(last) = sealed.last_mut() {
            *last ^= 0x80;
        }
        assert!(matches!(server.decrypt(&sealed), Err(NoiseError::Tampered)));
    }

    #[test]
    fn message_shorter_than_a_tag_is_tampered() {
        let (_, mut server) = pair();
        assert!(matches!(server.decrypt(&[0; TAG_LEN - 1]), Err(NoiseError::Tampered)));
        assert!(matches!(server.decrypt(&[]), Err(NoiseError::SessionFailed)));
    }

    #[test]
    fn replayed_and_reordered_messages_are_rejected() {
        let (mut client, mut server) = pair();
        let first = client.encrypt(b"one").expect("encrypt");
        assert!(server.decrypt(&first).is_ok());
        assert!(matches!(server.decrypt(&first), Err(NoiseError::Tampered)), "replay");

        let (mut client, mut server) = pair();
        let _first = client.encrypt(b"one").expect("encrypt");
        let second = client.encrypt(b"two").expect("encrypt");
        assert!(matches!(server.decrypt(&second), Err(NoiseError::Tampered)), "reordered");
    }

    #[test]
    fn message_from_another_session_is_rejected() {
        let (mut client_a, _server_a) = pair();
        let (_client_b, mut server_b) = pair();
        let sealed = client_a.encrypt(b"for a").expect("encrypt");
        assert!(matches!(server_b.decrypt(&sealed), Err(NoiseError::Tampered)));
    }

    #[test]
    fn lockstep_rekey_keeps_both_sides_in_step() {
        let (mut client, mut server) = pair();
        let interval = NonZeroU64::new(3).expect("non-zero");
        client.set_rekey_interval(interval);
        server.set_rekey_interval(interval);
        for i in 0..20u8 {
            let sealed = client.encrypt(&[i]).expect("encrypt");
            assert_eq!(server.decrypt(&sealed).expect("decrypt"), vec![i]);
            let sealed = server.encrypt(&[i, i]).expect("encrypt");
            assert_eq!(client.decrypt(&sealed).expect("decrypt"), vec![i, i]);
        }
    }

    #[test]
    fn rekey_really_changes_the_key() {
        // If only the receiver rekeys, the first message after the boundary must fail: proof the key changed.
        let (mut client, mut server) = pair();
        server.set_rekey_interval(NonZeroU64::new(2).expect("non-zero"));
        for i in 0..2u8 {
            let sealed = client.encrypt(&[i]).expect("encrypt");
            assert!(server.decrypt(&sealed).is_ok(), "message {i} precedes the rekey");
        }
        let sealed = client.encrypt(b"after").expect("encrypt");
        assert!(matches!(server.decrypt(&sealed), Err(NoiseError::Tampered)));
    }

    #[test]
    fn exhausted_receive_nonce_is_reported() {
        let (mut client, mut server) = pair();
        server.set_receiving_nonce(u64::MAX);
        let sealed = client.encrypt(b"late").expect("encrypt");
        assert!(matches!(server.decrypt(&sealed), Err(NoiseError::NonceExhausted)));
        assert!(matches!(server.decrypt(&sealed), Err(NoiseError::SessionFailed)));
    }

    #[test]
    fn snow_errors_map_to_their_kinds() {
        assert!(matches!(transport_error(snow::Error::Decrypt), NoiseError::Tampered));
        assert!(matches!(
            transport_error(snow::Error::State(snow::error::StateProblem::Exhausted)),
            NoiseError::NonceExhausted
        ));
        // Sizes are checked before snow sees them, so snow's own size error means something unexpected.
        assert!(matches!(transport_error(snow::Error::Input), NoiseError::Crypto(snow::Error::Input)));
        assert!(matches!(transport_error(snow::Error::Rng), NoiseError::Crypto(snow::Error::Rng)));
    }

    #[test]
    fn debug_does_not_leak_keys() {
        let (mut client, _) = pair();
        let _ = client.encrypt(b"x").expect("encrypt");
        assert_eq!(format!("{client:?}"), "Transport { sent: 1, received: 0, failed: false }");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_decrypt(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let (_, mut server) = pair();
            proptest::prop_assert!(server.decrypt(&bytes).is_err());
        }
    }
}
