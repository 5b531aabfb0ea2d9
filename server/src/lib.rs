//! # chatlab-server
//!
//! The server of chatlab: it accepts Noise-encrypted control connections over TCP, exchanges encrypted chat
//! datagrams over UDP, and keeps accounts and history on disk.
//!
//! Where each concept lives:
//!
//! - [`password`]: how passwords are stored (Argon2id, PHC strings) and why a login for an unknown user costs as
//!   much as one for a known user; hashing runs on blocking threads behind a semaphore.
//! - [`storage`]: the [`storage::Storage`] trait (users, messages, delivery state), its durable SQLite
//!   implementation (WAL, `synchronous=FULL`, group commit, schema migrations) and an in-memory one for tests.

pub mod password;
pub mod storage;
