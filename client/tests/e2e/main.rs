//! End-to-end tests: the real client core against the real server library, over real sockets on 127.0.0.1.
//!
//! One test binary with modules (ripgrep style). Each test starts its own server on port 0 with a temporary data
//! directory and fast (insecure) password hashing.

mod backpressure;
mod blast;
mod chat;
mod durability;
mod impairment;
mod liveness;
mod outbox;
mod support;
mod trust;
mod udp_again;
mod wire;
