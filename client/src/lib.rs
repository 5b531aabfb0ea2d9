//! # chatlab-client
//!
//! The client core of chatlab, and the command-line client built on it.
//!
//! A chat client is a small distributed system of its own: a TCP control channel (encrypted with Noise), a UDP
//! datagram transport with its own reliability engine, timers for retransmission, probing, heartbeats and
//! reconnection, and a person who must never see a frozen window. This crate puts all of that in one background
//! task (the *core*) and gives the programs on top a narrow face:
//!
//! ```text
//!   let (handle, mut events) = Client::connect(config).await?;   // TCP + Noise + pinned key + Hello
//!   handle.login("ann", Password::new("…")).await?;              // then UDP probe, TCP fall-back if blocked
//!   handle.send(Target::World, "hello").await?;                  // resolves when the server stored it
//!   let sending = handle.queue(to, "next").await?;               // its place in the send queue, in order…
//!   sending.accepted().await?;                                   // …and its acceptance, later
//!   while let Some(event) = events.recv().await { … }            // messages, presence, receipts, reconnects
//! ```
//!
//! The command-line client (`chatlab-cli`) and the desktop app are thin faces over [`ClientHandle`] and
//! [`ClientEvent`]; neither touches a socket.
//!
//! **Sending waits, it never refuses for being busy.** A program that sends faster than the network and the server
//! take messages makes `send` wait for room (in the client's send queue, then in the UDP send window), each wait
//! bounded by the request timeout, and every message keeps its order. Dropping a `send` future cancels a message
//! that has not left the client; one that already left has its outcome reported as [`ClientEvent::Accepted`] or
//! [`ClientEvent::SendFailed`]. [`ClientHandle::send`] tells the details.
//!
//! # Where things are
//!
//! | module | concept |
//! |---|---|
//! | [`config`] | [`ClientConfig`], the default known-servers path, every timeout with its reason |
//! | `handle` | [`Client::connect`] and [`ClientHandle`], the request/reply face |
//! | [`event`] | [`ClientEvent`] and the answers to requests |
//! | [`error`] | [`ClientError`], one error type for people, and its [`ErrorCategory`] |
//! | `channel` | opening the control channel: TCP, Noise, trust on first use, `Hello`; framing and the reader task |
//! | `udp` | the task driving the sans-IO datagram endpoint over a UDP socket |
//! | `core` | the actor: requests, pushes, the UDP probe and fall-back, reconnection |
//! | [`stats`] | both transports' statistics, with the kernel's `TCP_INFO` on Linux ([`tcp_info`]) |
//! | [`backoff`] | exponential back-off with jitter |
//! | [`recent_ids`] | de-duplication of messages that arrive twice |
//! | [`timefmt`] | server timestamps as RFC 3339 and readable UTC text |
//! | [`ui`] | the desktop app (egui): sign-in, chat, packet statistics, behind a [`ui::backend::Backend`] |

pub mod backoff;
mod channel;
pub mod config;
mod core;
pub mod error;
pub mod event;
mod handle;
pub mod recent_ids;
pub mod stats;
pub mod tcp_info;
pub mod timefmt;
mod udp;
pub mod ui;

pub use config::{ClientConfig, DEFAULT_PORT, DEFAULT_SERVER, default_known_servers_path};
pub use error::{ClientError, ErrorCategory};
pub use event::{Accepted, ClientEvent, HistoryPage, MessageSource, SessionInfo, TransportReason};
pub use handle::{Client, ClientHandle, EVENT_QUEUE, Sending};
pub use stats::{ClientStats, KernelTcpInfo, TcpStats};

// The vocabulary a face needs, so it does not have to depend on chatlab-proto directly.
pub use chatlab_proto::chat::{ChatMessage, Target, Username};
pub use chatlab_proto::control::{Password, Transport};
pub use chatlab_proto::noise::Fingerprint;
