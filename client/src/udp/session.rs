//! One datagram endpoint for the whole session, shared by every UDP task the session starts.
//!
//! # Why the endpoint must outlive the task
//!
//! Datagrams are sealed with AES-256-GCM, and GCM has one rule that must never be broken: a (key, nonce) pair is
//! used for one message only. Reusing a nonce under the same key leaks the XOR of the two plaintexts and, worse,
//! lets an attacker recover the authentication key and forge datagrams. chatlab derives each datagram's nonce from
//! its packet number, so the rule becomes: *under one session's keys, a packet number is never sent twice*.
//!
//! The keys come from the session grant (`key_material` and `connection_id`). A session can stop its UDP task
//! (a fall-back to TCP when UDP is blocked or goes silent) and start another one later (the user switches back to
//! UDP, or a fresh socket is wanted after the laptop changed networks). Were each task to build its own endpoint
//! from the grant, the packet numbers would start again at 0 under the same keys: nonce reuse. The server's replay
//! window would also refuse those numbers as already seen, so the switch back would fail as well as leak.
//!
//! So the session builds its endpoint once, and the tasks borrow it in turn: a [`SessionEndpoint`] holds it behind
//! a mutex together with its clock's time zero (the endpoint counts time as a `Duration` since then, and that count
//! must not jump back either). A task locks it only between two awaits, never across one (a std `MutexGuard` cannot
//! cross an await in a spawned task: the compiler refuses), so a task stopped at any await leaves the endpoint in a
//! consistent state for the next one. Packet numbers, retransmission state, RTT estimate and statistics all carry
//! over.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use chatlab_proto::datagram::Role;
use chatlab_proto::endpoint::Endpoint;
use chatlab_proto::engine::{EngineConfig, SendError};

use crate::error::ClientError;

/// The session's client endpoint and its clock. Clones share the same endpoint.
#[derive(Debug, Clone)]
pub(crate) struct SessionEndpoint {
    endpoint: Arc<Mutex<Endpoint>>,
    /// Time zero of the endpoint's clock.
    origin: Instant,
}

impl SessionEndpoint {
    /// Builds the session's endpoint from the grant's secret and connection id. Called once per grant.
    pub(crate) fn new(
        key_material: &[u8; 32],
        connection_id: u64,
        engine: EngineConfig,
    ) -> Result<SessionEndpoint, ClientError> {
        let endpoint = Endpoint::new(key_material, connection_id, Role::Client, engine, Duration::ZERO)
            .map_err(|err| ClientError::Protocol(format!("engine configuration: {err}")))?;
        Ok(SessionEndpoint { endpoint: Arc::new(Mutex::new(endpoint)), origin: Instant::now() })
    }

    /// The endpoint, locked. Hold the guard only for synchronous work, never across an await.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Endpoint> {
        // A task that panicked while holding the lock left an endpoint whose every method keeps its own invariants
        // (each is a single synchronous call); the next task may use it.
        self.endpoint.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Time zero of the endpoint's clock.
    pub(crate) fn origin(&self) -> Instant {
        self.origin
    }

    /// Whether the engine's send window has room for one more message now.
    pub(crate) fn has_room(&self) -> bool {
        self.lock().engine().can_send()
    }

    /// Queues a chat message on `stream` in the engine. The UDP task must then be woken to send it (see
    /// [`UdpLink::wake`](super::UdpLink::wake)). Refused with [`SendError::WindowFull`] when the send window is
    /// full, and with [`SendError::TooLarge`] for a message the engine cannot carry; nothing is queued then.
    pub(crate) fn send(&self, stream: u32, bytes: Vec<u8>) -> Result<(), SendError> {
        self.lock().send(stream, bytes, self.origin.elapsed()).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_endpoint_and_its_packet_numbers() {
        let first = SessionEndpoint::new(&[1; 32], 4, EngineConfig::default()).expect("valid");
        let second = first.clone();
        let mut out = Vec::new();
        first.lock().ping();
        assert!(first.lock().poll_datagram(first.origin().elapsed(), &mut out).expect("seal"));
        let before = chatlab_proto::datagram::Header::parse(&out).expect("header").packet_number;
        second.lock().ping();
        assert!(second.lock().poll_datagram(second.origin().elapsed(), &mut out).expect("seal"));
        let after = chatlab_proto::datagram::Header::parse(&out).expect("header").packet_number;
        assert!(after > before, "{after} after {before}");
        assert_eq!(first.origin(), second.origin());
    }

    #[test]
    fn a_full_window_and_an_oversized_message_are_refused_and_nothing_is_queued() {
        let engine = EngineConfig { send_window: 2, ..EngineConfig::default() };
        let max = engine.max_message_bytes;
        let endpoint = SessionEndpoint::new(&[1; 32], 4, engine).expect("valid");
        assert_eq!(endpoint.send(0, vec![0; max + 1]), Err(SendError::TooLarge { len: max + 1, max }));
        assert!(endpoint.has_room());
        assert_eq!(endpoint.send(0, b"one".to_vec()), Ok(()));
        assert_eq!(endpoint.send(1, b"two".to_vec()), Ok(()));
        assert!(!endpoint.has_room(), "two messages fill a window of two");
        assert_eq!(endpoint.send(0, b"three".to_vec()), Err(SendError::WindowFull { in_flight: 2 }));
        assert_eq!(endpoint.lock().engine().in_flight(), 2);
    }

    #[test]
    fn an_invalid_engine_configuration_is_refused() {
        let engine = EngineConfig { send_window: 0, ..EngineConfig::default() };
        let err = SessionEndpoint::new(&[1; 32], 4, engine).expect_err("refused");
        assert!(matches!(&err, ClientError::Protocol(text) if text.contains("engine configuration")), "{err}");
    }
}
