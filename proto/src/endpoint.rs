//! An endpoint: the reliability engine behind the datagram encryption, ready for a UDP socket.
//!
//! The [`Engine`] speaks plaintext frames and the [`datagram`](crate::datagram) layer turns plaintext into sealed
//! datagrams; an [`Endpoint`] joins them so that the server, the client and the simulations all use one piece:
//!
//! ```text
//!   application ── send(stream, bytes) ──▶ Engine ── poll_transmit ──▶ Sealer ──▶ UDP payload
//!   application ◀── Event::Delivered ──── Engine ◀── handle_packet ─── Opener ◀── UDP payload
//! ```
//!
//! Datagrams that fail to open (replayed, tampered, for another connection) never reach the engine; the endpoint
//! counts each kind in the engine's statistics, so the packet-statistics panel shows attacks and corruption as well
//! as loss.

use std::time::Duration;

use thiserror::Error;

use crate::datagram::{KeyUpdateConfig, OpenError, OpenErrorKind, PacketType, Role, SealError, SessionKeys};
use crate::engine::{ConfigError, Engine, EngineConfig, Event, PacketError, SendError};
use crate::stats::{Stats, StatsSnapshot};

/// Why a received datagram had no effect.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EndpointError {
    #[error("datagram rejected: {0}")]
    Open(#[from] OpenError),
    #[error("packet rejected: {0}")]
    Packet(#[from] PacketError),
}

/// What [`Endpoint::receive`] learned about a datagram that opened, beyond its frames.
///
/// A server that follows its client across address changes (a phone moving from Wi-Fi to mobile data, a NAT that
/// rebinds) must not let an old datagram move it back: a datagram that was delayed in the network, or that left
/// the client's old socket just before the change, is still authentic and still new to the replay window (which
/// accepts reordered packets), yet it speaks for where the client *was*. Only the datagram with the highest packet
/// number so far speaks for where the client *is*, which is why QUIC (RFC 9000, section 9.3) accepts an address
/// change only from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The datagram's packet number, authenticated by its tag.
    pub packet_number: u64,
    /// Whether it is the highest packet number accepted so far (the first datagram is).
    pub highest: bool,
}

/// One side of an encrypted, reliable datagram conversation.
#[derive(Debug)]
pub struct Endpoint {
    engine: Engine,
    sealer: crate::datagram::Sealer,
    opener: crate::datagram::Opener,
    plaintext: Vec<u8>,
}

impl Endpoint {
    /// An endpoint for `role` from the session grant's connection id and 32-byte secret.
    pub fn new(
        secret: &[u8; 32],
        connection_id: u64,
        role: Role,
        config: EngineConfig,
        now: Duration,
    ) -> Result<Self, ConfigError> {
        Self::with_key_updates(secret, connection_id, role, config, KeyUpdateConfig::default(), now)
    }

    /// As [`new`](Self::new), with a chosen key-update limit (tests use a small one).
    pub fn with_key_updates(
        secret: &[u8; 32],
        connection_id: u64,
        role: Role,
        config: EngineConfig,
        key_updates: KeyUpdateConfig,
        now: Duration,
    ) -> Result<Self, ConfigError> {
        let (sealer, opener) = SessionKeys::derive(secret, role).into_endpoints(connection_id, key_updates);
        Ok(Self { engine: Engine::new(config, now)?, sealer, opener, plaintext: Vec::new() })
    }

    /// Opens one received UDP payload and hands it to the engine. Rejections are counted, then returned.
    pub fn handle_datagram(&mut self, datagram: &[u8], now: Duration) -> Result<(), EndpointError> {
        self.receive(datagram, now).map(|_| ())
    }

    /// As [`handle_datagram`](Self::handle_datagram), and says whether the datagram carried the highest packet
    /// number so far (see [`Received`]): the server's cue that an address change may be real.
    pub fn receive(&mut self, datagram: &[u8], now: Duration) -> Result<Received, EndpointError> {
        let largest_before = self.opener.largest_packet_number();
        let header = match self.opener.open_into(datagram, &mut self.plaintext) {
            Ok(header) => header,
            Err(e) => {
                let received = &mut self.engine.stats_mut().received;
                match e.kind() {
                    OpenErrorKind::Replayed | OpenErrorKind::TooOld => received.rejected_replayed += 1,
                    OpenErrorKind::Authentication => received.rejected_authentication += 1,
                    _ => received.rejected_malformed += 1,
                }
                return Err(e.into());
            }
        };
        self.engine.handle_packet(header.packet_number, &self.plaintext, now)?;
        // The opener refuses a number it accepted before, so "highest" is strictly above the previous largest.
        let highest = largest_before.is_none_or(|largest| header.packet_number > largest);
        Ok(Received { packet_number: header.packet_number, highest })
    }

    /// The next sealed datagram to send, written into `out`; false when there is nothing to send now.
    pub fn poll_datagram(&mut self, now: Duration, out: &mut Vec<u8>) -> Result<bool, SealError> {
        out.clear();
        let Some(pn) = self.engine.poll_transmit(now, &mut self.plaintext) else { return Ok(false) };
        self.sealer.seal(PacketType::Data, pn, &self.plaintext, out)?;
        Ok(true)
    }

    /// Queues a message; see [`Engine::send`].
    pub fn send(&mut self, stream: u32, data: Vec<u8>, now: Duration) -> Result<u64, SendError> {
        self.engine.send(stream, data, now)
    }

    /// Asks for a ping in the next datagram; see [`Engine::ping`].
    pub fn ping(&mut self) {
        self.engine.ping()
    }

    /// The next event; see [`Engine::poll_event`].
    pub fn poll_event(&mut self) -> Option<Event> {
        self.engine.poll_event()
    }

    /// The next deadline; see [`Engine::poll_timeout`].
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.engine.poll_timeout()
    }

    /// Runs due timers; see [`Engine::handle_timeout`].
    pub fn handle_timeout(&mut self, now: Duration) {
        self.engine.handle_timeout(now)
    }

    /// The engine inside.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The statistics.
    pub fn stats(&self) -> &Stats {
        self.engine.stats()
    }

    /// A serialisable summary of the statistics.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.engine.snapshot()
    }

    /// The packet number the next datagram sent will carry: every number below it was used already.
    pub fn next_packet_number(&self) -> u64 {
        self.engine.next_packet_number()
    }

    /// The largest packet number of ours the peer acknowledged, or `None` before its first acknowledgement.
    pub fn largest_acked(&self) -> Option<u64> {
        self.engine.largest_acked()
    }

    /// The connection id this endpoint seals with and accepts.
    pub fn connection_id(&self) -> u64 {
        self.sealer.connection_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];
    const T: Duration = Duration::ZERO;

    fn pair() -> (Endpoint, Endpoint) {
        (
            Endpoint::new(&SECRET, 42, Role::Client, EngineConfig::default(), T).unwrap(),
            Endpoint::new(&SECRET, 42, Role::Server, EngineConfig::default(), T).unwrap(),
        )
    }

    #[test]
    fn message_crosses_encrypted_and_is_acknowledged() {
        let (mut client, mut server) = pair();
        client.send(0, b"secret words".to_vec(), T).unwrap();
        let mut wire = Vec::new();
        assert!(client.poll_datagram(T, &mut wire).unwrap());
        assert!(!wire.windows(12).any(|w| w == b"secret words"), "text must not be readable on the wire");
        server.handle_datagram(&wire, T).unwrap();
        assert!(matches!(server.poll_event(), Some(Event::Delivered(d)) if d.data == b"secret words"));
        assert!(server.poll_datagram(T, &mut wire).unwrap());
        client.handle_datagram(&wire, T).unwrap();
        assert!(matches!(client.poll_event(), Some(Event::Acked(_))));
    }

    #[test]
    fn replayed_tampered_and_foreign_datagrams_are_counted() {
        let (mut client, mut server) = pair();
        client.send(0, b"x".to_vec(), T).unwrap();
        let mut wire = Vec::new();
        client.poll_datagram(T, &mut wire).unwrap();
        server.handle_datagram(&wire, T).unwrap();
        assert!(matches!(server.handle_datagram(&wire, T), Err(EndpointError::Open(OpenError::Replayed { .. }))));

        client.send(0, b"y".to_vec(), T).unwrap();
        client.poll_datagram(T, &mut wire).unwrap();
        let mut tampered = wire.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(server.handle_datagram(&tampered, T), Err(EndpointError::Open(OpenError::Authentication))));

        let mut stranger = Endpoint::new(&[9; 32], 42, Role::Client, EngineConfig::default(), T).unwrap();
        // Packet numbers 0 and 1 were seen already (and would be rejected as replays); the third is new to the server.
        for text in [b"z0", b"z1", b"z2"] {
            stranger.send(0, text.to_vec(), T).unwrap();
            stranger.poll_datagram(T, &mut wire).unwrap();
        }
        assert!(server.handle_datagram(&wire, T).is_err());
        assert!(server.handle_datagram(&[1, 2, 3], T).is_err());

        let received = &server.stats().received;
        assert_eq!(received.rejected_replayed, 1);
        assert_eq!(received.rejected_authentication, 2);
        assert_eq!(received.rejected_malformed, 1);
        assert_eq!(received.messages_delivered, 1);
    }

    #[test]
    fn a_reordered_datagram_is_accepted_but_not_reported_as_the_highest() {
        let (mut client, mut server) = pair();
        let mut wires = Vec::new();
        for text in [b"a", b"b", b"c"] {
            client.send(0, text.to_vec(), T).unwrap();
            let mut wire = Vec::new();
            assert!(client.poll_datagram(T, &mut wire).unwrap());
            wires.push(wire);
        }
        assert_eq!(server.receive(&wires[0], T), Ok(Received { packet_number: 0, highest: true }));
        assert_eq!(server.receive(&wires[2], T), Ok(Received { packet_number: 2, highest: true }));
        assert_eq!(server.receive(&wires[1], T), Ok(Received { packet_number: 1, highest: false }));
    }

    #[test]
    fn packet_numbers_sent_and_acknowledged_are_reported() {
        let (mut client, mut server) = pair();
        assert_eq!((server.next_packet_number(), server.largest_acked()), (0, None));
        let mut wire = Vec::new();
        server.ping();
        assert!(server.poll_datagram(T, &mut wire).unwrap());
        assert_eq!(server.next_packet_number(), 1);
        client.handle_datagram(&wire, T).unwrap();
        // The ping asks for an acknowledgement; it goes out once the ack delay has passed.
        let later = Duration::from_secs(1);
        client.handle_timeout(later);
        assert!(client.poll_datagram(later, &mut wire).unwrap());
        server.handle_datagram(&wire, later).unwrap();
        assert_eq!(server.largest_acked(), Some(0));
    }
}
