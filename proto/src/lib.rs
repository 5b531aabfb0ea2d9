//! # chatlab-proto
//!
//! The protocol core of chatlab, written *sans-IO*: nothing in this crate opens a socket, reads a clock or starts a
//! thread. Bytes and the current time go in; bytes to send, events and the next deadline come out. The server and the
//! client wrap it with tokio; the tests and the `soak` example drive it in simulated time, which makes every run
//! deterministic and lets a minute of lossy network pass in milliseconds.
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
