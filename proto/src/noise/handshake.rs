//! The NX handshake as two small state machines over byte buffers.
//!
//! ```text
//!   client (Initiator)                                   server (Responder)
//!   start()   ── msg1: e ─────────────────────────────▶  respond(msg1)
//!             ◀──────────────── msg2: e, ee, s, es ──    → (msg2, Transport)
//!   finish(msg2) → (Transport, ServerKey)
//!   check ServerKey against KnownServers, THEN send the login
//! ```
//!
//! Nothing here touches a socket: the caller moves the bytes. That keeps the handshake testable without a network
//! and lets the same code run under tokio in the server and client.
//!
//! # Check the server's key before sending anything
//!
//! [`Initiator::finish`] hands back a working [`Transport`] *and* the server's static key. The transport is
//! encrypted, but until the key has been checked it is encrypted *to someone unknown*: a man in the middle with
//! his own key pair would complete this handshake just as well. So the client must look the key up in its
//! [`KnownServers`](super::KnownServers) store first and send its first message (the login with its password)
//! only when the answer is [`Trust::Known`](super::Trust::Known), or [`Trust::New`](super::Trust::New) and the user
//! accepted the fingerprint. On [`Trust::Changed`](super::Trust::Changed) it must drop the connection unsent.
//!
//! # The prologue
//!
//! A Noise *prologue* is data both sides feed into the handshake hash without sending it. If the two sides' prologues
//! differ, their hashes differ, and the first encrypted field of the handshake fails to decrypt. chatlab puts its
//! name and protocol version there ([`PROLOGUE`]), so a client of another protocol or of an incompatible chatlab
//! version fails cleanly at the handshake instead of exchanging messages that the other side misreads. In NX the
//! client notices it when it reads the server's reply ([`NoiseError::BadHandshake`]).
//!
//! # Fixed message sizes
//!
//! chatlab sends no payload in either handshake message, so their sizes are fixed ([`HANDSHAKE_MSG1_LEN`],
//! [`HANDSHAKE_MSG2_LEN`]) and any other length is refused before any cryptography runs.

use snow::params::NoiseParams;

use super::error::NoiseError;
use super::fingerprint::{SERVER_KEY_LEN, ServerKey};
use super::identity::StaticKeypair;
use super::transport::{TAG_LEN, Transport};

/// The Noise protocol chatlab speaks, spelled as the Noise specification names protocols: handshake pattern NX,
/// Diffie-Hellman over Curve25519, AES-256-GCM for encryption, SHA-256 for hashing. The module docs of
/// [`crate::noise`] explain each choice.
pub const NOISE_PROTOCOL: &str = "Noise_NX_25519_AESGCM_SHA256";

/// Bytes both sides mix into the handshake without sending them (see the module docs).
///
/// The version number here must change whenever [`crate::limits::PROTOCOL_VERSION`] does; a test checks that they
/// agree. A peer with another prologue fails the handshake instead of misreading later messages.
pub const PROLOGUE: &[u8] = b"chatlab v1";

/// Size of handshake message 1 (client to server): the client's ephemeral public key `e` in the clear. The
/// payload is empty and, as no key exists yet, carries no tag.
pub const HANDSHAKE_MSG1_LEN: usize = SERVER_KEY_LEN;

/// Size of handshake message 2 (server to client): the server's ephemeral key `e` in the clear, its static key `s`
/// encrypted (key plus tag), and the empty payload's tag.
pub const HANDSHAKE_MSG2_LEN: usize = SERVER_KEY_LEN + (SERVER_KEY_LEN + TAG_LEN) + TAG_LEN;

/// The client side of the handshake.
pub struct Initiator {
    state: snow::HandshakeState,
    started: bool,
}

impl Initiator {
    /// Prepares a handshake with a fresh ephemeral key.
    pub fn new() -> Result<Initiator, NoiseError> {
        Self::with_prologue(PROLOGUE)
    }

    /// Prepares a handshake with any prologue; tests use it to play a peer of another version.
    fn with_prologue(prologue: &[u8]) -> Result<Initiator, NoiseError> {
        let state = snow::Builder::new(params()?)
            .prologue(prologue)
            .and_then(|builder| builder.build_initiator())
            .map_err(NoiseError::Crypto)?;
        Ok(Initiator { state, started: false })
    }

    /// Produces handshake message 1 (`-> e`): only the client's ephemeral public key, which reveals nothing about
    /// who the client is. Call it once.
    pub fn start(&mut self) -> Result<Vec<u8>, NoiseError> {
        if self.started {
            return Err(NoiseError::HandshakeOrder("start called twice"));
        }
        // snow insists on room for a tag after the payload even when, as here, no key exists yet to make one.
        let mut msg1 = vec![0u8; HANDSHAKE_MSG1_LEN + TAG_LEN];
        let written = self.state.write_message(&[], &mut msg1).map_err(handshake_error)?;
        msg1.truncate(written);
        self.started = true;
        Ok(msg1)
    }

    /// Reads handshake message 2 (`<- e, ee, s, es`) and returns the session and the server's static key.
    ///
    /// **Check the returned [`ServerKey`] against the known-servers store before sending anything on the
    /// returned [`Transport`]** (see the module docs): until then you may be talking to an impostor.
    pub fn finish(mut self, msg2: &[u8]) -> Result<(Transport, ServerKey), NoiseError> {
        if !self.started {
            return Err(NoiseError::HandshakeOrder("finish called before start"));
        }
        if msg2.len() != HANDSHAKE_MSG2_LEN {
            return Err(NoiseError::HandshakeLength { message: 2, expected: HANDSHAKE_MSG2_LEN, got: msg2.len() });
        }
        // The payload is empty; a buffer the size of the message can hold anything snow might write.
        let mut payload = vec![0u8; msg2.len()];
        let payload_len = self.state.read_message(msg2, &mut payload).map_err(handshake_error)?;
        if payload_len != 0 {
            return Err(NoiseError::BadHandshake);
        }
        let server_key = self
            .state
            .get_remote_static()
            .and_then(|bytes| <[u8; SERVER_KEY_LEN]>::try_from(bytes).ok())
            .map(ServerKey::from_bytes)
            .ok_or(NoiseError::BadHandshake)?;
        let transport = self.state.into_transport_mode().map_err(handshake_error)?;
        Ok((Transport::new(transport), server_key))
    }
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator").field("started", &self.started).finish_non_exhaustive()
    }
}

/// The server side of the handshake.
pub struct Responder {
    state: snow::HandshakeState,
}

impl Responder {
    /// Prepares to answer one client with the server's static key pair.
    pub fn new(keypair: &StaticKeypair) -> Result<Responder, NoiseError> {
        Self::with_prologue(keypair, PROLOGUE)
    }

    /// Prepares a responder with any prologue; tests use it to play a server of another version.
    fn with_prologue(keypair: &StaticKeypair, prologue: &[u8]) -> Result<Responder, NoiseError> {
        let state = snow::Builder::new(params()?)
            .local_private_key(keypair.private_bytes())
            .and_then(|builder| builder.prologue(prologue))
            .and_then(|builder| builder.build_responder())
            .map_err(NoiseError::Crypto)?;
        Ok(Responder { state })
    }

    /// Reads handshake message 1 and returns handshake message 2 together with the established session.
    ///
    /// NX gives the server no proof of who the client is: any 32 bytes are a plausible ephemeral key. The client
    /// proves itself later, with its password inside the encrypted channel.
    pub fn respond(mut self, msg1: &[u8]) -> Result<(Vec<u8>, Transport), NoiseError> {
        if msg1.len() != HANDSHAKE_MSG1_LEN {
            return Err(NoiseError::HandshakeLength { message: 1, expected: HANDSHAKE_MSG1_LEN, got: msg1.len() });
        }
        let mut payload = vec![0u8; msg1.len()];
        let payload_len = self.state.read_message(msg1, &mut payload).map_err(handshake_error)?;
        if payload_len != 0 {
            return Err(NoiseError::BadHandshake);
        }
        let mut msg2 = vec![0u8; HANDSHAKE_MSG2_LEN];
        let written = self.state.write_message(&[], &mut msg2).map_err(handshake_error)?;
        msg2.truncate(written);
        let transport = self.state.into_transport_mode().map_err(handshake_error)?;
        Ok((msg2, Transport::new(transport)))
    }
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").finish_non_exhaustive()
    }
}

/// [`NOISE_PROTOCOL`] in the form snow takes.
pub(crate) fn params() -> Result<NoiseParams, NoiseError> {
    NOISE_PROTOCOL.parse().map_err(NoiseError::Crypto)
}

/// Maps a snow handshake error to the kind the caller reacts to.
fn handshake_error(err: snow::Error) -> NoiseError {
    match err {
        // A field did not decrypt or a key agreement failed: the peer is not who or what it should be.
        snow::Error::Decrypt | snow::Error::Dh | snow::Error::Input => NoiseError::BadHandshake,
        snow::Error::State(_) => NoiseError::HandshakeOrder("the Noise handshake state refused this step"),
        other => NoiseError::Crypto(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn server_keypair() -> StaticKeypair {
        StaticKeypair::generate().expect("keypair")
    }

    /// Runs a whole handshake and returns everything that crossed the wire with both transports.
    fn handshake(keypair: &StaticKeypair) -> (Vec<u8>, Vec<u8>, Transport, Transport, ServerKey) {
        let mut initiator = Initiator::new().expect("initiator");
        let msg1 = initiator.start().expect("msg1");
        let (msg2, server) = Responder::new(keypair).expect("responder").respond(&msg1).expect("respond");
        let (client, key) = initiator.finish(&msg2).expect("finish");
        (msg1, msg2, client, server, key)
    }

    #[test]
    fn full_handshake_and_transport_both_directions() {
        let keypair = server_keypair();
        let (msg1, msg2, mut client, mut server, key) = handshake(&keypair);
        assert_eq!(msg1.len(), HANDSHAKE_MSG1_LEN);
        assert_eq!(msg2.len(), HANDSHAKE_MSG2_LEN);
        assert_eq!(key, keypair.public(), "the client learns exactly the server's static key");

        let sealed = client.encrypt(b"login alice").expect("encrypt");
        assert_eq!(server.decrypt(&sealed).expect("decrypt"), b"login alice");
        let sealed = server.encrypt(b"welcome alice").expect("encrypt");
        assert_eq!(client.decrypt(&sealed).expect("decrypt"), b"welcome alice");
    }

    #[test]
    fn message_sizes_are_the_documented_ones() {
        assert_eq!(HANDSHAKE_MSG1_LEN, 32);
        assert_eq!(HANDSHAKE_MSG2_LEN, 96);
    }

    #[test]
    fn prologue_matches_protocol_version() {
        let expected = format!("chatlab v{}", crate::limits::PROTOCOL_VERSION);
        assert_eq!(PROLOGUE, expected.as_bytes());
    }

    #[test]
    fn nothing_readable_crosses_the_wire() {
        const MARKER: &[u8] = b"PLAINTEXT-MARKER-7f3a: password hunter2";
        let keypair = server_keypair();
        let (msg1, msg2, mut client, mut server, _) = handshake(&keypair);
        let up = client.encrypt(MARKER).expect("encrypt");
        let down = server.encrypt(MARKER).expect("encrypt");
        let wire: Vec<&[u8]> = vec![&msg1, &msg2, &up, &down];
        for (index, bytes) in wire.iter().enumerate() {
            assert!(!contains(bytes, MARKER), "marker visible in wire chunk {index}");
            // A recognizable piece of the marker is just as bad as all of it.
            assert!(!contains(bytes, b"hunter2"), "password visible in wire chunk {index}");
            // NX encrypts the server's static key: a passive observer cannot tell which server this is.
            assert!(!contains(bytes, keypair.public().as_bytes()), "server static key visible in chunk {index}");
        }
        assert_eq!(server.decrypt(&up).expect("decrypt"), MARKER);
        assert_eq!(client.decrypt(&down).expect("decrypt"), MARKER);
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|window| window == needle)
    }

    #[test]
    fn peer_with_another_prologue_fails_the_handshake() {
        let keypair = server_keypair();
        let mut initiator = Initiator::with_prologue(b"chatlab v0").expect("initiator");
        let msg1 = initiator.start().expect("msg1");
        let (msg2, _) = Responder::new(&keypair).expect("responder").respond(&msg1).expect("respond");
        assert!(matches!(initiator.finish(&msg2), Err(NoiseError::BadHandshake)));

        let mut initiator = Initiator::new().expect("initiator");
        let msg1 = initiator.start().expect("msg1");
        let responder = Responder::with_prologue(&keypair, b"other protocol").expect("responder");
        let (msg2, _) = responder.respond(&msg1).expect("respond");
        assert!(matches!(initiator.finish(&msg2), Err(NoiseError::BadHandshake)));
    }

    #[test]
    fn tampered_msg2_is_rejected() {
        let keypair = server_keypair();
        let mut initiator = Initiator::new().expect("initiator");
        let msg1 = initiator.start().expect("msg1");
        let (mut msg2, _) = Responder::new(&keypair).expect("responder").respond(&msg1).expect("respond");
        // Byte 40 lies inside the encrypted static key.
        if let Some(byte) = msg2.get_mut(40) {
            *byte ^= 0x01;
        }
        assert!(matches!(initiator.finish(&msg2), Err(NoiseError::BadHandshake)));
    }

    #[test]
    fn msg2_for_another_client_is_rejected() {
        let keypair = server_keypair();
        let mut alice = Initiator::new().expect("initiator");
        let mut bob = Initiator::new().expect("initiator");
        let _ = alice.start().expect("msg1");
        let bob_msg1 = bob.start().expect("msg1");
        let (msg2_for_bob, _) = Responder::new(&keypair).expect("responder").respond(&bob_msg1).expect("respond");
        assert!(matches!(alice.finish(&msg2_for_bob), Err(NoiseError::BadHandshake)));
    }

    #[test]
    fn truncated_and_oversized_messages_are_rejected() {
        let keypair = server_keypair();
        let mut initiator = Initiator::new().expect("initiator");
        let msg1 = initiator.start().expect("msg1");
        let short = msg1.get(..HANDSHAKE_MSG1_LEN - 1).expect("prefix");
        let err = Responder::new(&keypair).expect("responder").respond(short).expect_err("short msg1");
        assert!(matches!(err, NoiseError::HandshakeLength { message: 1, expected: 32, got: 31 }));
        let err = Responder::new(&keypair).expect("responder").respond(&[]).expect_err("empty msg1");
        assert!(matches!(err, NoiseError::HandshakeLength { message: 1, got: 0, .. }));

        let (msg2, _) = Responder::new(&keypair).expect("responder").respond(&msg1).expect("respond");
        let mut long = msg2.clone();
        long.push(0);
        let err = initiator.finish(&long).expect_err("long msg2");
        assert!(matches!(err, NoiseError::HandshakeLength { message: 2, expected: 96, got: 97 }));
    }

    #[test]
    fn truncated_msg2_is_rejected() {
        let keypair = server_keypair();
        let mut initiator = Initiator::new().expect("initiator");
        let msg1 = initiator.start().expect("msg1");
        let (msg2, _) = Responder::new(&keypair).expect("responder").respond(&msg1).expect("respond");
        let short = msg2.get(..HANDSHAKE_MSG2_LEN - 1).expect("prefix");
        let err = initiator.finish(short).expect_err("short msg2");
        assert!(matches!(err, NoiseError::HandshakeLength { message: 2, expected: 96, got: 95 }));
    }

    #[test]
    fn steps_out_of_order_are_refused() {
        let initiator = Initiator::new().expect("initiator");
        let err = initiator.finish(&[0; HANDSHAKE_MSG2_LEN]).expect_err("finish before start");
        assert!(matches!(err, NoiseError::HandshakeOrder(_)));

        let mut initiator = Initiator::new().expect("initiator");
        initiator.start().expect("first start");
        assert!(matches!(initiator.start(), Err(NoiseError::HandshakeOrder(_))));
    }

    #[test]
    fn snow_errors_map_to_their_kinds() {
        assert!(matches!(handshake_error(snow::Error::Decrypt), NoiseError::BadHandshake));
        assert!(matches!(handshake_error(snow::Error::Dh), NoiseError::BadHandshake));
        assert!(matches!(handshake_error(snow::Error::Input), NoiseError::BadHandshake));
        assert!(matches!(
            handshake_error(snow::Error::State(snow::error::StateProblem::NotTurnToRead)),
            NoiseError::HandshakeOrder(_)
        ));
        assert!(matches!(handshake_error(snow::Error::Rng), NoiseError::Crypto(snow::Error::Rng)));
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let mut initiator = Initiator::new().expect("initiator");
        assert_eq!(format!("{initiator:?}"), "Initiator { started: false, .. }");
        initiator.start().expect("start");
        assert_eq!(format!("{initiator:?}"), "Initiator { started: true, .. }");
        let responder = Responder::new(&server_keypair()).expect("responder");
        assert_eq!(format!("{responder:?}"), "Responder { .. }");
    }

    proptest! {
        #[test]
        fn arbitrary_msg2_never_panics_and_never_succeeds(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut initiator = Initiator::new().expect("initiator");
            initiator.start().expect("msg1");
            // A random 96-byte message would have to forge two AES-GCM tags.
            prop_assert!(initiator.finish(&bytes).is_err());
        }

        #[test]
        fn arbitrary_msg2_of_exact_length_is_bad_handshake(bytes in proptest::collection::vec(any::<u8>(), HANDSHAKE_MSG2_LEN)) {
            let mut initiator = Initiator::new().expect("initiator");
            initiator.start().expect("msg1");
            prop_assert!(matches!(initiator.finish(&bytes), Err(NoiseError::BadHandshake)));
        }

        #[test]
        fn arbitrary_msg1_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let keypair = StaticKeypair::from_private([7; 32]).expect("keypair");
            let result = Responder::new(&keypair).expect("responder").respond(&bytes);
            // Any 32 bytes are a plausible ephemeral key, so exactly the right length is answered.
            prop_assert_eq!(result.is_ok(), bytes.len() == HANDSHAKE_MSG1_LEN);
        }
    }
}
