//! Integration tests of the client core and the CLI against a fake server built from proto pieces.
//!
//! One test binary (ripgrep's layout): each concern is a module, and the fake server is its own module so tests
//! against the real server can sit beside these later.

mod chat;
mod cli;
mod connect;
mod fake_server;
mod fallback;
mod impairment;
mod outbox;
mod receipts;
mod reconnect;
mod resync;
mod support;
mod wire;
