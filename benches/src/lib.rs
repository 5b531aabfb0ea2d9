//! Shared helpers for the chatlab benchmarks.
//!
//! The benchmarks live in `benches/benches/`; run them with `cargo bench -p chatlab-benches`. Criterion writes its
//! reports under the target directory (`criterion/`), one folder per benchmark, with the estimates as JSON.

use std::time::Duration;

use chatlab_proto::datagram::Role;
use chatlab_proto::endpoint::Endpoint;
use chatlab_proto::engine::{EngineConfig, Event};

/// A client and a server endpoint joined by memory, for measuring the protocol's own cost without a network.
pub struct MemoryPair {
    pub client: Endpoint,
    pub server: Endpoint,
    buf: Vec<u8>,
    now: Duration,
}

impl Default for MemoryPair {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryPair {
    pub fn new() -> Self {
        let secret = [0x42; 32];
        let config = EngineConfig::default();
        Self {
            client: Endpoint::new(&secret, 7, Role::Client, config.clone(), Duration::ZERO)
                .expect("default config is valid"),
            server: Endpoint::new(&secret, 7, Role::Server, config, Duration::ZERO).expect("default config is valid"),
            buf: Vec::with_capacity(1200),
            now: Duration::ZERO,
        }
    }

    /// Sends `count` messages of `payload` from client to server, encrypted, acknowledged and delivered, and returns
    /// how many were delivered. Time advances by a microsecond per round so RTT samples stay realistic.
    pub fn exchange(&mut self, count: usize, payload: &[u8]) -> usize {
        let mut sent = 0;
        let mut delivered = 0;
        while delivered < count {
            while sent < count && self.client.engine().can_send() {
                if self.client.send(0, payload.to_vec(), self.now).is_err() {
                    break;
                }
                sent += 1;
            }
            while self.client.poll_datagram(self.now, &mut self.buf).unwrap_or(false) {
                let _ = self.server.handle_datagram(&self.buf, self.now);
            }
            while let Some(event) = self.server.poll_event() {
                if matches!(event, Event::Delivered(_)) {
                    delivered += 1;
                }
            }
            while self.server.poll_datagram(self.now, &mut self.buf).unwrap_or(false) {
                let _ = self.client.handle_datagram(&self.buf, self.now);
            }
            while self.client.poll_event().is_some() {}
            self.now += Duration::from_micros(1);
        }
        delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_delivers_every_message() {
        let mut pair = MemoryPair::new();
        assert_eq!(pair.exchange(3000, &[7u8; 64]), 3000);
        assert_eq!(pair.client.engine().in_flight(), 0);
    }
}
