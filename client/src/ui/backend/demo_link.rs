//! A real chatlab datagram path inside one process, for the demo: two [`Endpoint`]s (client and server) joined by
//! the seeded impairment model, driven by the wall clock.
//!
//! The statistics panel is only interesting when the numbers are real. Rather than invent counters, the
//! [`FakeBackend`](super::FakeBackend) can route every chat message through this link: the message is encrypted,
//! acknowledged, lost, retransmitted and reordered by exactly the protocol code the real client runs, only the
//! socket is replaced by [`Duplex`]. Moving the impairment sliders in the demo therefore shows what the same
//! sliders show on a real network: retransmissions by timeout and fast retransmit, a growing RTO, a longer tail in
//! the latency CDF.
//!
//! The link is sans-IO like everything below it: [`DemoLink::step`] takes the current time and does whatever is due
//! by then. The owner calls it often (every frame, or from a timer thread).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chatlab_proto::chat::WORLD_STREAM;
use chatlab_proto::datagram::Role;
use chatlab_proto::endpoint::Endpoint;
use chatlab_proto::engine::{ConfigError, EngineConfig, Event};
use chatlab_proto::impair::{Direction, Duplex, ImpairmentConfig, ImpairmentError};
use chatlab_proto::stats::micros;
use thiserror::Error;

use super::{Impairment, LocalId, StatsUpdate, TcpStats};

/// Connection id of the demo session. Any value works: both endpoints are ours.
const DEMO_CONNECTION_ID: u64 = 0xC4A7_1AB0;

/// Key material of the demo session. Fixed because nothing secret travels: both ends live in this process.
const DEMO_SECRET: [u8; 32] = [0x42; 32];

/// Most packets moved and timers run in one [`DemoLink::step`]. A step normally does a handful; the cap only keeps
/// a pathological configuration from holding the UI thread.
const MAX_WORK_PER_STEP: usize = 10_000;

/// Latency samples kept for the CDF; older ones are forgotten so a long demo keeps a bounded memory.
const LATENCY_SAMPLES: usize = 4096;

/// Bytes of the token at the front of a server-to-client message, which names the message it carries.
const TOKEN_BYTES: usize = 8;

/// Why a [`DemoLink`] could not be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DemoLinkError {
    /// The engine configuration was refused.
    #[error("engine configuration: {0}")]
    Engine(#[from] ConfigError),
    /// The impairment configuration was refused.
    #[error("impairment configuration: {0}")]
    Impairment(#[from] ImpairmentError),
}

/// What became of the messages in flight during one [`DemoLink::step`].
#[derive(Debug, Default, PartialEq)]
pub struct DemoProgress {
    /// Client messages the server side has acknowledged, with their delivery latency.
    pub acked: Vec<(LocalId, Duration)>,
    /// Tokens of server messages that reached the client.
    pub delivered: Vec<u64>,
}

/// Two endpoints and an impaired path between them. See the module docs.
#[derive(Debug)]
pub struct DemoLink {
    client: Endpoint,
    server: Endpoint,
    net: Duplex,
    /// Messages waiting for acknowledgement, by sequence number: a chat message's local id, or `None` for a probe.
    waiting: HashMap<u64, Option<LocalId>>,
    latencies_ms: VecDeque<f64>,
    buf: Vec<u8>,
}

impl DemoLink {
    /// A perfect path starting at time `now`, with the engine's default settings.
    ///
    /// # Errors
    /// Only if the protocol crate's own defaults were invalid, which its tests rule out.
    pub fn new(now: Duration) -> Result<Self, DemoLinkError> {
        let config = EngineConfig::default();
        Ok(DemoLink {
            client: Endpoint::new(&DEMO_SECRET, DEMO_CONNECTION_ID, Role::Client, config.clone(), now)?,
            server: Endpoint::new(&DEMO_SECRET, DEMO_CONNECTION_ID, Role::Server, config, now)?,
            net: Duplex::new(ImpairmentConfig::default())?,
            waiting: HashMap::new(),
            latencies_ms: VecDeque::new(),
            buf: Vec::new(),
        })
    }

    /// Applies the app's impairment: `outgoing` to client-to-server datagrams, `incoming` to the reverse.
    ///
    /// # Errors
    /// The first invalid setting; the link keeps its previous configuration then.
    pub fn set_impairment(&mut self, impairment: &Impairment) -> Result<(), ImpairmentError> {
        impairment.outgoing.validate()?;
        impairment.incoming.validate()?;
        self.net.link_mut(Direction::AToB).set_config(impairment.outgoing.clone())?;
        self.net.link_mut(Direction::BToA).set_config(impairment.incoming.clone())
    }

    /// Sends a client message; [`DemoProgress::acked`] reports it once the server side acknowledged it. Returns
    /// false when the engine refused it (send window full), in which case the caller answers at once.
    pub fn send_up(&mut self, local_id: LocalId, text: &str, now: Duration) -> bool {
        match self.client.send(WORLD_STREAM, text.as_bytes().to_vec(), now) {
            Ok(seq) => {
                self.waiting.insert(seq, Some(local_id));
                true
            }
            Err(_) => false,
        }
    }

    /// Sends a probe message up the link: lab traffic that is counted and timed like a chat message but answers
    /// nobody. Returns false when the send window is full.
    pub fn send_probe(&mut self, bytes: usize, now: Duration) -> bool {
        match self.client.send(WORLD_STREAM, vec![0; bytes], now) {
            Ok(seq) => {
                self.waiting.insert(seq, None);
                true
            }
            Err(_) => false,
        }
    }

    /// Sends a server message labelled `token` towards the client; [`DemoProgress::delivered`] reports it on
    /// arrival. Returns false when the server engine refused it.
    pub fn send_down(&mut self, token: u64, text: &str, now: Duration) -> bool {
        let mut payload = token.to_be_bytes().to_vec();
        payload.extend_from_slice(text.as_bytes());
        self.server.send(WORLD_STREAM, payload, now).is_ok()
    }

    /// Asks the client endpoint to send a ping: an ack-eliciting packet that yields one RTT sample when its
    /// acknowledgement returns. The real engine pings only when idle (a keepalive); the demo pings a few times a
    /// second so the RTT plot has points while nobody types.
    pub fn ping(&mut self) {
        self.client.ping();
    }

    /// Does everything due by `now`: sends datagrams, moves packets that arrived, runs timers.
    pub fn step(&mut self, now: Duration) -> DemoProgress {
        let mut progress = DemoProgress::default();
        for _ in 0..MAX_WORK_PER_STEP {
            let mut worked = false;
            while let Some((direction, packet)) = self.net.poll(now) {
                let endpoint = if direction == Direction::AToB { &mut self.server } else { &mut self.client };
                // A refused datagram (corrupted, duplicated, replayed) is counted in the statistics; that is all.
                let _ = endpoint.handle_datagram(&packet, now);
                worked = true;
            }
            for endpoint in [&mut self.client, &mut self.server] {
                if endpoint.poll_timeout().is_some_and(|deadline| deadline <= now) {
                    endpoint.handle_timeout(now);
                    worked = true;
                }
            }
            while self.client.poll_datagram(now, &mut self.buf).unwrap_or(false) {
                self.net.send(Direction::AToB, now, self.buf.clone());
                worked = true;
            }
            while self.server.poll_datagram(now, &mut self.buf).unwrap_or(false) {
                self.net.send(Direction::BToA, now, self.buf.clone());
                worked = true;
            }
            if !worked {
                break;
            }
        }
        while let Some(event) = self.client.poll_event() {
            match event {
                Event::Acked(acked) => {
                    if let Some(waiting) = self.waiting.remove(&acked.seq) {
                        self.record_latency(acked.latency);
                        if let Some(local_id) = waiting {
                            progress.acked.push((local_id, acked.latency));
                        }
                    }
                }
                Event::Delivered(delivery) => {
                    if let Some(token) =
                        delivery.data.get(..TOKEN_BYTES).and_then(|b| <[u8; TOKEN_BYTES]>::try_from(b).ok())
                    {
                        progress.delivered.push(u64::from_be_bytes(token));
                    }
                }
                // Two honest endpoints in memory: neither goes quiet for long, neither breaks the protocol.
                Event::PeerIdle | Event::Failed(_) => {}
            }
        }
        // The server side's events matter only for its statistics, which the engine keeps by itself.
        while self.server.poll_event().is_some() {}
        progress
    }

    fn record_latency(&mut self, latency: Duration) {
        if self.latencies_ms.len() == LATENCY_SAMPLES {
            self.latencies_ms.pop_front();
        }
        self.latencies_ms.push_back(micros(latency) as f64 / 1000.0);
    }

    /// The client side's statistics at `elapsed` since the demo started.
    pub fn stats(&self, elapsed: Duration) -> StatsUpdate {
        let latencies: Vec<f64> = self.latencies_ms.iter().copied().collect();
        StatsUpdate {
            elapsed,
            udp: self.client.snapshot(),
            rtt_samples: self.client.stats().rtt_history().copied().collect(),
            tcp: TcpStats::default(),
            udp_latency_cdf: super::cdf(latencies),
            tcp_latency_cdf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chatlab_proto::impair::LossModel;

    use super::*;

    fn run_until(link: &mut DemoLink, from: Duration, to: Duration) -> DemoProgress {
        let mut all = DemoProgress::default();
        let mut now = from;
        while now <= to {
            let p = link.step(now);
            all.acked.extend(p.acked);
            all.delivered.extend(p.delivered);
            now += Duration::from_millis(1);
        }
        all
    }

    #[test]
    fn messages_cross_a_perfect_link_both_ways() {
        let mut link = DemoLink::new(Duration::ZERO).unwrap();
        assert!(link.send_up(LocalId(7), "hello", Duration::ZERO));
        assert!(link.send_down(99, "hi there", Duration::ZERO));
        let progress = run_until(&mut link, Duration::ZERO, Duration::from_millis(100));
        assert_eq!(progress.acked.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![LocalId(7)]);
        assert_eq!(progress.delivered, vec![99]);
        let stats = link.stats(Duration::from_millis(100));
        assert!(stats.udp.sent.packets > 0);
        assert_eq!(stats.udp_latency_cdf.last().map(|p| p.1), Some(1.0));
    }

    #[test]
    fn lossy_link_retransmits_and_still_delivers() {
        let mut link = DemoLink::new(Duration::ZERO).unwrap();
        let lossy = ImpairmentConfig { loss: LossModel::Bernoulli { p: 0.3 }, seed: 5, ..ImpairmentConfig::default() };
        link.set_impairment(&Impairment { outgoing: lossy.clone(), incoming: lossy }).unwrap();
        for i in 0..40 {
            assert!(link.send_up(LocalId(i), "x", Duration::ZERO));
        }
        let progress = run_until(&mut link, Duration::ZERO, Duration::from_secs(5));
        assert_eq!(progress.acked.len(), 40);
        let sent = link.stats(Duration::from_secs(5)).udp.sent;
        assert!(sent.retransmissions_timeout + sent.retransmissions_fast > 0);
    }

    #[test]
    fn probes_are_timed_but_not_reported_as_chat_messages() {
        let mut link = DemoLink::new(Duration::ZERO).unwrap();
        assert!(link.send_probe(64, Duration::ZERO));
        let progress = run_until(&mut link, Duration::ZERO, Duration::from_millis(50));
        assert!(progress.acked.is_empty());
        let stats = link.stats(Duration::from_millis(50));
        assert_eq!(stats.udp.sent.useful_bytes, 64);
        assert_eq!(stats.udp_latency_cdf.len(), 1);
    }

    #[test]
    fn invalid_impairment_is_refused_and_the_old_one_kept() {
        let mut link = DemoLink::new(Duration::ZERO).unwrap();
        let bad = ImpairmentConfig { duplicate: 2.0, ..ImpairmentConfig::default() };
        assert!(link.set_impairment(&Impairment { outgoing: bad, incoming: ImpairmentConfig::default() }).is_err());
        assert!(link.send_up(LocalId(1), "still works", Duration::ZERO));
        assert_eq!(run_until(&mut link, Duration::ZERO, Duration::from_millis(50)).acked.len(), 1);
    }
}
