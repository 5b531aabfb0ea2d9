//! Encrypted chat datagrams: the UDP packet format of chatlab, sans-IO.
//!
//! Chat messages, acks and pings travel over UDP in *datagrams* that are encrypted and authenticated with
//! AES-256-GCM. This module turns a plaintext (MessagePack frames produced by the reliability engine) into the bytes
//! of one UDP payload and back. It never touches a socket or a clock: bytes in, bytes out, which is why every rule
//! below is checked by deterministic tests and a fuzz target.
//!
//! # AEAD and associated data
//!
//! AES-256-GCM is an **AEAD**: *authenticated encryption with associated data*. One operation gives two guarantees:
//!
//! * **confidentiality** — the ciphertext reveals nothing about the plaintext except its length;
//! * **authenticity** — a 16-byte *tag* proves that the ciphertext, and the *associated data*, were produced by
//!   someone holding the key and were not changed by a single bit.
//!
//! *Associated data* is data the tag covers but that is not encrypted. chatlab's clear header is associated data:
//! routers of the protocol (the server's session table, the replay window) must read it before decryption, and the
//! tag still guarantees that nobody altered it (see [`Header`] for both reasons). The Python chat room chatlab grew
//! out of used AES in CFB mode *without* authentication: an attacker could flip ciphertext bits and so flip chosen
//! bits of the decrypted chat text, undetected. With an AEAD, such a packet is simply dropped.
//!
//! # Layout of one datagram
//!
//! ```text
//!  offset       size         field
//!       0          1         version            ┐
//!       1          1         packet type        │ clear header (HEADER_LEN = 19 bytes),
//!       2          1         flags (key phase)  │ AES-GCM associated data:
//!       3          8         connection id      │ readable, authenticated
//!      11          8         packet number      ┘
//!      19          n         ciphertext           encrypted MessagePack frames, n = plaintext length
//!      19 + n     16         tag                  (TAG_LEN) covers header and ciphertext
//!
//!  total = 35 + n ≤ MAX_DATAGRAM_BYTES (1200), so n ≤ MAX_PLAINTEXT (1165)
//! ```
//!
//! # The nonce: salt || packet number
//!
//! AES-GCM needs a 12-byte *nonce* ("number used once") per packet, and its security collapses if a nonce ever
//! repeats under one key (see `seal.rs`). chatlab builds it as a 4-byte secret salt, derived per direction and key
//! generation, followed by the 8-byte big-endian packet number. Uniqueness then comes for free from the packet number,
//! which is never reused in a direction; the receiver rebuilds the nonce from the header, so the nonce costs no
//! bytes on the wire; and the secret salt keeps nonces unpredictable to outsiders. Each direction has its own key,
//! so the client's packet 5 and the server's packet 5 never share a key and nonce.
//!
//! **Packet numbers are assigned by the reliability engine** (the `engine` module), one per datagram sent, in
//! increasing order. Every retransmission carries its message in a *new* datagram with a *new* packet number, never
//! the old one: that keeps nonces unique, lets the replay window drop true duplicates, and makes every RTT sample
//! unambiguous (an ack names exactly one transmission). The [`Sealer`] refuses a packet number that does not increase.
//!
//! # Replay check before decryption, window update after
//!
//! The receiver checks the packet number against its sliding [`ReplayWindow`] *before* decrypting: duplicates and
//! replays are rejected for the price of a bit test instead of an AES-GCM pass. It marks the number as seen *after*
//! the tag verified: if forged packets could move the window, one forgery with a huge packet number would make every
//! genuine packet "too old". The rule in one sentence: **nothing an unauthenticated packet says may change state.**
//!
//! # Keys and key updates
//!
//! After login the server sends a connection id and a 32-byte secret inside the Noise control channel;
//! [`SessionKeys::derive`] turns the secret into one key and nonce salt per direction with HKDF-SHA256 (`keys.rs`).
//! After [`MAX_PACKETS_PER_KEY`] packets the sender moves to the next key generation and flips the key-phase bit, as
//! QUIC does (`key_update.rs`).
//!
//! # Use
//!
//! ```
//! use chatlab_proto::datagram::{KeyUpdateConfig, PacketType, Role, SessionKeys};
//!
//! let secret = [7u8; 32]; // from the session grant
//! let connection_id = 0x1234;
//! let (mut client_sealer, _) =
//!     SessionKeys::derive(&secret, Role::Client).into_endpoints(connection_id, KeyUpdateConfig::default());
//! let (_, mut server_opener) =
//!     SessionKeys::derive(&secret, Role::Server).into_endpoints(connection_id, KeyUpdateConfig::default());
//!
//! let mut datagram = Vec::new();
//! client_sealer.seal(PacketType::Data, 0, b"hello", &mut datagram)?;
//! let opened = server_opener.open(&datagram)?;
//! assert_eq!(opened.plaintext, b"hello");
//! assert!(server_opener.open(&datagram).is_err()); // a replay
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod header;
mod key_update;
mod keys;
mod open;
mod replay;
mod seal;

/// Length of the AES-GCM authentication tag at the end of every datagram, in bytes. 16 bytes is GCM's full tag:
/// shorter tags are allowed by the standard but make forgeries easier, and a 1200-byte datagram can afford it.
pub const TAG_LEN: usize = 16;

pub use error::{OpenError, OpenErrorKind, SealError};
pub use header::{FLAG_KEY_PHASE, HEADER_LEN, Header, KNOWN_FLAGS, PacketType};
pub use key_update::{KEY_UPDATE_LABEL, KeyPhase, KeyUpdateConfig, MAX_PACKETS_PER_KEY};
pub use keys::{
    CLIENT_TO_SERVER_LABEL, DIRECTION_SECRET_LEN, Direction, DirectionSecret, HKDF_SALT, KEY_LABEL, KEY_LEN, NONCE_LEN,
    NONCE_PACKET_NUMBER_LEN, NONCE_SALT_LABEL, NONCE_SALT_LEN, PacketKey, Role, SERVER_TO_CLIENT_LABEL,
    SESSION_SECRET_LEN, SessionKeys,
};
pub use open::{Opened, Opener};
pub use replay::{REPLAY_WINDOW_PACKETS, Replay, ReplayWindow};
pub use seal::{MAX_PLAINTEXT, Sealer};
