//! The control channel: accounts, sessions, presence, history and chat over TCP.
//!
//! Everything that must arrive exactly once and in order, and that is not latency-critical, travels on one TCP
//! connection per client: registration, login, the session grant that starts the UDP transport, the online-user
//! list, presence changes, history, and chat itself when UDP is blocked (or when a lab compares the two transports).
//!
//! # Layers
//!
//! ```text
//!   ClientMessage / ServerMessage      serde enums            message.rs, error_code.rs, secret.rs
//!                 |  encode / decode_client / decode_server   codec.rs (+ depth.rs pre-scan)
//!   one MessagePack value per message  <= 65 519 bytes
//!                 |  Noise transport encryption (AES-256-GCM, +16-byte tag)     crate::noise
//!   one Noise message                  <= 65 535 bytes
//!                 |  encode_frame / FrameDecoder               frame.rs
//!   u16 big-endian length + payload    on the TCP byte stream
//! ```
//!
//! The stack above starts *after* the Noise handshake. The two handshake messages themselves go on the wire as
//! they are, **without** a length prefix: they have fixed sizes (32 bytes from the client: its ephemeral key; 96
//! from the server: its ephemeral key, its encrypted static key and a tag), so the reader knows how much to read.
//! An implementation that prefixes them, or waits for a prefix, hangs or is refused; `docs/protocol.md` shows the
//! bytes.
//!
//! TCP is a byte stream, so [`frame`] cuts it back into messages with a 2-byte length prefix. Each frame's payload is
//! a Noise transport message; after decryption it is exactly one MessagePack-encoded control message. After the
//! first handshake message nothing readable crosses the wire: user names, passwords and chat text are all inside the
//! encryption. Lists that can grow (history, online users) are split into pages by [`page`] so that no message ever
//! needs a frame larger than the limit, the flaw that broke the original chat room's history.
//!
//! # Message flow
//!
//! ```text
//!   client                                                             server
//!     | -- Noise NX handshake: -> e   <- e, ee, s, es -------------->|  server proves its pinned key
//!     | -- Hello { version, client } ------------------------------->|
//!     |<----------------------------- Welcome { version, server } ---|  or Error(VersionMismatch), close
//!     | -- Register { username, password } ------------------------->|  optional
//!     |<--------------------------------- Registered { username } ---|
//!     | -- Login { username, password } ---------------------------->|
//!     |<-- SessionGrant { user, connection_id, key_material, .. } ---|  UDP may start now
//!     | -- SyncHistory { req, after_id, limit } -------------------->|  repeated while `more`
//!     |<--------------------- HistoryPage { req, messages, more } ---|
//!     | -- Chat / History / ListUsers / Ping / Received ------------>|  requests, any order
//!     |<--- Chat / Presence / Receipt / ChatAccepted / Users / .. ---|  answers and pushes
//!     | -- Logout -------------------------------------------------->|
//!     |<----------------------------------------------- LoggedOut ---|
//! ```
//!
//! Answers to requests echo the request's `req` number (chat messages echo their `client_msg_id`), so a client can
//! keep several requests in flight and match answers while pushes arrive in between. Every refusal is an
//! [`ServerMessage::Error`] (or [`ServerMessage::ChatRejected`]) with a stable [`ErrorCode`] and a human text.
//!
//! # Defending the decoder
//!
//! Every byte a peer sends is untrusted until proven otherwise, including a logged-in peer's. The frame decoder
//! checks each length before waiting for the body and holds at most one unfinished frame; the codec pre-scans the
//! MessagePack ([`depth`]) to refuse deep nesting, lengths larger than the input and trailing bytes before serde
//! allocates anything; user names are re-validated when deserialized. Every failure is a typed error, never a panic.
//!
//! # Fuzzing
//!
//! `proto/fuzz` is a cargo-fuzz crate with four targets: `frame_decoder` feeds arbitrary bytes, cut into arbitrary
//! pieces, to a [`FrameDecoder`]; `control_message` feeds arbitrary bytes to [`decode_client`] and
//! [`decode_server`] and re-encodes whatever decodes, checking that it decodes to the same value again;
//! `datagram_open` attacks the datagram opener without the key; `engine_hostile` plays an authenticated peer that
//! sends arbitrary frames to the reliability engine and checks its receive budget after every packet. The crate is
//! not a workspace member (its `Cargo.toml` has its own `[workspace]` table), so `cargo test` never builds it.
//!
//! cargo-fuzz drives libFuzzer through sanitizer flags that only nightly Rust accepts. A stable toolchain can be
//! told to accept them anyway with `RUSTC_BOOTSTRAP=1`:
//!
//! ```text
//! cargo install cargo-fuzz
//! cd proto
//! RUSTC_BOOTSTRAP=1 cargo fuzz run frame_decoder -- -max_total_time=30
//! RUSTC_BOOTSTRAP=1 cargo fuzz run control_message -- -max_total_time=30
//! ```
//!
//! This works with the stable 1.95 toolchain this project builds with (cargo-fuzz 0.13 and libfuzzer-sys 0.4; the
//! first build compiles libFuzzer's C++ and takes a few minutes on two cores). Each target ran for 30 seconds
//! without a finding when this module was written: `frame_decoder` at about 67 000 inputs a second,
//! `control_message` at about 48 000 (a second run seeded with the known-answer vectors of `message.rs` as files in
//! `proto/fuzz/corpus/control_message/` reached about 13% more coverage, also without a finding). Point
//! `CARGO_TARGET_DIR` at a directory of its own, since the fuzz build uses different compiler flags and would
//! otherwise evict the normal build's artefacts.
//!
//! After the receive budget was added (December 2026) each target ran for ten minutes on the nightly toolchain
//! (`cargo +nightly fuzz run T -- -max_total_time=600`), on a 2-core machine shared with builds, without a finding:
//! `engine_hostile` 1.6 million inputs (2.2 million on the first version of the budget), `frame_decoder` 43.0 million inputs, `control_message` 33.6 million,
//! `datagram_open` 10.5 million.
//!
//! A crash leaves the input in `proto/fuzz/artifacts/<target>/`; `cargo fuzz run <target> <file>` replays it. Between
//! fuzzing sessions the proptest properties in this module's tests ("arbitrary bytes never panic") cover the same
//! decoders on every `cargo test`.

pub mod codec;
pub mod depth;
pub mod error_code;
pub mod frame;
pub mod message;
pub mod page;
pub mod secret;

#[cfg(test)]
mod strategies;

pub use codec::{
    CodecError, MAX_MESSAGE_BYTES, NOISE_TAG_BYTES, decode, decode_client, decode_server, encode, encoded_len,
};
pub use depth::{MAX_MSGPACK_DEPTH, StructureError, check_structure};
pub use error_code::ErrorCode;
pub use frame::{FRAME_HEADER_BYTES, FrameDecoder, FrameError, MAX_FRAME_BYTES, encode_frame};
pub use message::{ClientMessage, MAX_PAGE_ITEMS, ServerMessage, Transport};
pub use page::{HISTORY_PAGE_OVERHEAD_BYTES, PageBuilder, USERS_PAGE_OVERHEAD_BYTES};
pub use secret::{KEY_MATERIAL_BYTES, KeyMaterial, MAX_PASSWORD_BYTES, Password, PasswordError};
