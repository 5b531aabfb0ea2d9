//! # chatlab-proto
//!
//! The protocol core of chatlab, written *sans-IO*: nothing in this crate opens a socket, reads a clock or starts a
//! thread. Bytes and the current time go in; bytes to send, events and the next deadline come out. The server and the
//! client wrap it with tokio; the tests and the `soak` example drive it in simulated time, which makes every run
//! deterministic and lets a minute of lossy network pass in milliseconds. (The only file access is the server's key
//! file and the client's known-servers file in [`noise`], which belong with the code that checks them.)
//!
//! ## Layout
//!
//! Read it top to bottom: each layer only uses the ones above it.
//!
//! | module | what it teaches | main types |
//! |---|---|---|
//! | [`limits`] | every shared limit and why it has its value | `MAX_DATAGRAM_BYTES`, `MAX_TEXT_BYTES` |
//! | [`chat`] | names, texts, messages and conversations, the same on both transports | [`chat::Username`], [`chat::ChatMessage`], [`chat::ChatPayload`] |
//! | [`control`] | the TCP control channel: messages, MessagePack, length-prefixed frames, defensive decoding | [`control::ClientMessage`], [`control::FrameDecoder`] |
//! | [`noise`] | the Noise NX handshake, the server's identity and trust on first use | [`noise::Initiator`], [`noise::Responder`], [`noise::KnownServers`] |
//! | [`datagram`] | AES-256-GCM datagrams: key derivation, nonces, the clear header, the replay window, key updates | [`datagram::Sealer`], [`datagram::Opener`] |
//! | [`engine`] | reliability over datagrams: acks and their bitmap, RTT and RTO, loss detection, fragments, ordering | [`engine::Engine`] |
//! | [`stats`] | the counters and histograms the statistics panel shows | [`stats::Stats`], [`stats::StatsSnapshot`] |
//! | [`endpoint`] | the engine behind the datagram crypto: what a UDP socket is attached to | [`endpoint::Endpoint`] |
//! | [`impair`] | a seeded, deterministic bad network: loss, bursts, delay, jitter, reordering, duplication… | [`impair::Link`], [`impair::Duplex`] |
//! | [`sim`] | two endpoints through the impairment model in simulated time | [`sim::run`] |
//!
//! The end-to-end session (handshake, login, datagram keys, chat, receipts, history) is told in `docs/protocol.md`
//! at the top of the repository.
//!
//! ## Trying it
//!
//! ```text
//! cargo test -p chatlab-proto
//! cargo run --release -p chatlab-proto --example soak -- --messages 100000 --loss 0.25 --duplicate 0.25 --jitter-ms 50 --seed 1
//! ```
//!
//! The soak example prints a summary and, as its last line, a JSON report (see [`sim::SimReport`]).
//!
//! ## Fuzzing
//!
//! Every decoder of untrusted bytes has a fuzz target in `proto/fuzz` (a cargo-fuzz crate outside the workspace):
//! `frame_decoder` ([`control::FrameDecoder`]), `control_message` ([`control::decode_client`] and
//! [`control::decode_server`]) and `datagram_open` ([`datagram::Opener::open`]). cargo-fuzz needs nightly-only
//! compiler flags, which the stable toolchain accepts with `RUSTC_BOOTSTRAP=1`:
//!
//! ```text
//! cargo install cargo-fuzz
//! cd proto
//! CARGO_TARGET_DIR=/tmp/chatlab-fuzz RUSTC_BOOTSTRAP=1 cargo fuzz run datagram_open -- -max_total_time=60
//! ```
//!
//! The [`control`] module's docs say more (corpus, replaying a crash).
#![forbid(unsafe_code)]

pub mod chat;
pub mod control;
pub mod datagram;
pub mod endpoint;
pub mod engine;
pub mod impair;
pub mod limits;
pub mod noise;
pub mod sim;
pub mod stats;
