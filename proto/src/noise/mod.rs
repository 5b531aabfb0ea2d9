//! The secure control channel: a Noise `NX` handshake, then encrypted transport messages.
//!
//! # What Noise is
//!
//! [Noise](https://noiseprotocol.org/noise.html) is a framework for building secure-channel protocols out of three
//! primitives: a Diffie-Hellman function (two parties combine their key pairs into a shared secret nobody else can
//! compute), an AEAD cipher (encrypts *and* authenticates, so any change to the ciphertext is detected), and a hash.
//! A protocol is described by a short *handshake pattern*: which keys each side sends and which Diffie-Hellman
//! results get mixed into the session keys. Every step also feeds a running hash of the whole conversation, so if
//! anyone changes, drops or inserts a handshake byte, the two sides end up with different keys and the next
//! authenticated field fails. WireGuard and WhatsApp use Noise; it is small enough to read in an afternoon, which is
//! why a teaching project can use it instead of TLS.
//!
//! # The NX pattern, token by token
//!
//! ```text
//! NX:
//!   -> e
//!   <- e, ee, s, es
//! ```
//!
//! The letters are keys: `e` an *ephemeral* key pair made fresh for this one connection, `s` a *static* key pair
//! that is the server's long-lived identity. Two letters together are a Diffie-Hellman between the initiator's
//! (client's) key named first and the responder's (server's) key named second.
//!
//! - `-> e`: the client sends a fresh ephemeral public key. In the clear, but it is random and says nothing about
//!   who the client is.
//! - `<- e`: the server answers with its own fresh ephemeral public key.
//! - `ee`: both compute DH(client e, server e). From here on everything is encrypted, and because both keys are
//!   thrown away after the connection, recording the traffic and stealing the server's key later does not decrypt
//!   it (*forward secrecy*).
//! - `s`: the server sends its static public key, encrypted under the `ee` secret, so an eavesdropper does not
//!   learn which server this is.
//! - `es`: both compute DH(client e, server s). Only the holder of the server's static *private* key can compute
//!   it, so when the server's reply authenticates, the client knows it is talking to whoever owns that static key.
//!
//! The `N` says the initiator has **N**o static key; the `X` says the responder's static key is **X**mitted
//! (transmitted) during the handshake rather than known in advance.
//!
//! # Why NX
//!
//! chatlab needs the *server* to be authenticated, so that students do not type their passwords into an impostor.
//! It does not need client keys: a student logs in with a user name and password, sent *inside* the encrypted
//! channel after the handshake, so there are no client key files to manage or lose. NX is exactly that shape: one
//! round trip, server authenticated, client anonymous until it logs in. Which server key is the *right* one is
//! decided outside Noise, by trust on first use ([`KnownServers`]).
//!
//! # Why 25519, AES-GCM and SHA-256
//!
//! - **X25519**: fast, constant-time, 32-byte keys, and every 32-byte string is a valid private key, so there are no
//!   invalid-key corner cases to get wrong.
//! - **AES-256-GCM**: every modern CPU has AES instructions, which makes it the fastest AEAD on the machines a class
//!   uses, and it is the same cipher chatlab's UDP datagrams use, so a student learns one AEAD, not two. Its known
//!   weak spot, nonce reuse, cannot happen in Noise, where nonces are counters that the library refuses to wrap.
//! - **SHA-256**: the most widely implemented and studied hash, already used by the datagram key derivation (HKDF).
//!
//! # Where things are
//!
//! | file | concept |
//! |---|---|
//! | `handshake.rs` | [`Initiator`] and [`Responder`]: the NX handshake over byte buffers, the prologue |
//! | `transport.rs` | [`Transport`]: sealing and opening messages after the handshake, size limits, rekeying |
//! | `identity.rs` | [`StaticKeypair`]: the server's key and its 0600 key file |
//! | `fingerprint.rs` | [`ServerKey`] and its human-readable [`Fingerprint`] |
//! | `known_servers.rs` | [`KnownServers`] and [`Trust`]: trust on first use |
//! | `server_name.rs` | the `HOST:PORT` names known servers are filed under |
//! | `files.rs` | atomic file replacement and capped reads |
//! | `hex.rs` | keys as hex text |
//! | `error.rs` | [`NoiseError`] |
//!
//! Everything here is sans-IO except the two small files the design asks for (the server's key file and the
//! client's known-servers file): no sockets, no clocks, no threads. Cutting the TCP stream into messages belongs to
//! the framing layer; this module works on one Noise message at a time. On chatlab's wire the two *handshake*
//! messages travel unframed (exactly 32 and 96 bytes, fixed by the NX pattern with 25519 keys and AES-GCM tags);
//! only the *transport* messages after them get a u16 length prefix (see [`crate::control`]).

mod error;
mod files;
mod fingerprint;
mod handshake;
mod hex;
mod identity;
mod known_servers;
mod server_name;
mod transport;

pub use error::NoiseError;
pub use fingerprint::{FINGERPRINT_DISPLAY_BYTES, FINGERPRINT_GROUP_CHARS, Fingerprint, SERVER_KEY_LEN, ServerKey};
pub use handshake::{HANDSHAKE_MSG1_LEN, HANDSHAKE_MSG2_LEN, Initiator, NOISE_PROTOCOL, PROLOGUE, Responder};
pub use identity::{KEY_DIR_MODE, KEY_FILE_MAX_BYTES, KEY_FILE_MODE, KEY_FILE_NAME, PRIVATE_KEY_LEN, StaticKeypair};
pub use known_servers::{
    KNOWN_SERVERS_FILE_MODE, KNOWN_SERVERS_FILE_NAME, KNOWN_SERVERS_MAX_BYTES, KnownServers, Trust,
};
pub use server_name::MAX_HOST_CHARS;
pub use transport::{MAX_NOISE_MESSAGE, MAX_PLAINTEXT, REKEY_INTERVAL_MESSAGES, TAG_LEN, Transport};
