//! # chatlab-server
//!
//! The server of chatlab, a networking lab built around a real chat system. A teacher starts one server; students
//! log in with the desktop client or the CLI and chat in a world room or one to one. This crate is the library
//! behind the `chatlab-server` binary, so tests and the desktop app's "host a room here" run exactly the code the
//! binary runs: [`run`] takes an already bound TCP listener and UDP socket plus a shutdown future, and
//! [`ServerHandle`] does the binding and stopping for callers inside another program.
//!
//! The protocol itself (messages, codecs, Noise, datagram crypto, the reliability engine) lives in the sans-IO
//! crate `chatlab-proto`; this crate adds sockets, time, threads and disks. `docs/protocol.md` tells the session
//! flow from the first TCP byte to the last datagram.
//!
//! ## Where each concept lives
//!
//! - [`server`]: [`run`], graceful shutdown, [`ServerHandle`].
//! - [`config`]: [`ServerConfig`], the limits an operator may change; [`limits`]: every other limit, each with
//!   the reason for its value.
//! - [`net`]: binding TCP and UDP to one port ([`bind`]) and finding the LAN addresses students type
//!   ([`lan_addresses`]).
//! - `conn`: one task per TCP connection — the Noise handshake, encrypted frames, `Hello`, registration, login,
//!   history pages.
//! - `hub`: the one task that owns every session, presence, the UDP socket, every datagram endpoint and its timers,
//!   flood control and fan-out.
//! - `writer`: the storage writer thread and its group commit.
//! - [`storage`]: the [`storage::Storage`] trait, SQLite (WAL, `synchronous=FULL`, migrations) and an in-memory
//!   version for tests. [`password`]: Argon2id. [`admission`] and [`rate_limit`]: connection caps, login and
//!   registration limits, token buckets. [`log_summary`]: refusals logged as one line per reason and interval.
//!   [`clock`]: the wall clock of message timestamps.
//!
//! ## Concurrency model
//!
//! ```text
//!                  ┌────────────── per connection task (×N) ──────────────┐
//!  TCP ──accept──▶ │ Noise handshake · frames · Hello/Register/Login       │── history reads ──▶ spawn_blocking
//!                  │ Argon2 on the hashing pool's own threads              │  (SQLite read pool)
//!                  └──────▲───────────────────────────────┬───────────────┘
//!          session queue  │ (bounded in bytes)             │ HubInput (bounded)
//!                  ┌──────┴───────────────────────────────▼───────────────┐
//!  UDP ◀────────▶  │ hub task: sessions · presence · endpoints · timers    │── WriteRequest ──▶ writer thread
//!                  │ flood buckets · fan-out                               │◀─ Committed ─────  (group commit)
//!                  └───────────────────────────────────────────────────────┘
//! ```
//!
//! - **One task per TCP connection** does everything that concerns only that client, including the slow parts
//!   (password hashing on a small pool of dedicated threads, history reads on blocking threads through fair read
//!   slots), so a slow client slows only itself.
//! - **One hub task** owns all shared live state and is the only place it changes (an actor): no locks, no lock
//!   order, one consistent view per message. It never waits for anyone: its outgoing queues use `try_send`, and
//!   datagrams leave with `try_send_to`.
//! - **One writer thread** appends chat messages in batches, one transaction and one `fsync` per batch (group
//!   commit). A message is acknowledged and fanned out only after its batch committed.
//! - **Every queue is bounded.** A connection waits when the hub's queue is full; the hub refuses chat ("server
//!   busy") when the writer's queue is full; and a client for which the hub holds more than
//!   [`limits::MAX_SESSION_QUEUE_BYTES`] (control queue, UDP backlog and unacknowledged datagrams together) is
//!   disconnected instead of being buffered without limit.

pub mod admission;
pub mod clock;
pub mod config;
mod conn;
pub mod error;
mod hub;
pub mod limits;
pub mod log_summary;
pub mod net;
pub mod password;
pub mod rate_limit;
pub mod server;
pub mod storage;
mod writer;

pub use config::ServerConfig;
pub use error::ServerError;
pub use net::bind::bind;
pub use net::lan::lan_addresses;
pub use server::{ServerHandle, load_identity, run};
