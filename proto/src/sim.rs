//! Simulation: two endpoints talking through the impairment model in simulated time.
//!
//! This is how chatlab tests its reliability claims without waiting for a real network. A sender endpoint sends
//! `messages` chat-sized messages, one every `interval`, to a receiver endpoint; every datagram goes through an
//! impaired [`Duplex`] (loss, duplication, reordering, jitter…) and through the real AES-GCM sealing and opening.
//! Time only exists as a number: the loop jumps from one event (a packet arriving, a timer firing, the next message
//! being due) to the next, so a ten-minute conversation over a terrible link runs in about a second, and the same
//! seed always gives the same result, packet for packet.
//!
//! The [`SimReport`] answers the questions a lab asks: did every message arrive exactly once and in order, how many
//! retransmissions did that cost, how many were wasted, and how long did messages take (latency percentiles from
//! the moment the application handed a message over to the moment it was delivered on the other side).
//!
//! The `soak` example is the command-line face of this module.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::datagram::Role;
use crate::endpoint::Endpoint;
use crate::engine::{ConfigError, EngineConfig, Event, Ordering};
use crate::impair::{Direction, Duplex, GilbertElliott, ImpairmentConfig, ImpairmentError, LossModel};
use crate::stats::{IPV4_UDP_OVERHEAD, LatencyHistogram, micros};

/// Simulated time allowed after the last message is due for everything to be delivered and acknowledged. A run that
/// needs longer is reported as incomplete instead of looping for ever. Ten minutes covers hundreds of maximal RTO
/// back-offs.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(600);

/// Bytes at the start of every simulated message that carry its index, so the receiver can check order and
/// duplicates and the harness can measure latency.
const INDEX_BYTES: usize = 8;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Messages to send.
    pub messages: u64,
    /// Size of each message in bytes (at least 8: the index travels inside).
    pub message_bytes: usize,
    /// Time between two messages; zero sends as fast as the send window allows.
    pub interval: Duration,
    /// Conversations the messages are spread over, round-robin.
    pub streams: u32,
    /// Impairment of the sender-to-receiver direction.
    pub forward: ImpairmentConfig,
    /// Impairment of the receiver-to-sender direction (acks).
    pub backward: ImpairmentConfig,
    /// Engine settings of both endpoints.
    pub engine: EngineConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            messages: 1000,
            message_bytes: 64,
            interval: Duration::from_millis(5),
            streams: 1,
            forward: ImpairmentConfig::default(),
            backward: ImpairmentConfig::default(),
            engine: EngineConfig::default(),
        }
    }
}

/// A scenario in the flat terms a person types: rates, milliseconds and a seed. It describes both directions alike
/// (data and acks suffer the same impairment, each with its own random stream derived from the one seed), which is
/// what the `soak` example and the labs' sweeps both need; [`Scenario::to_config`] turns it into a [`SimConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub messages: u64,
    pub message_bytes: usize,
    pub interval: Duration,
    pub streams: u32,
    /// Mean loss probability in each direction.
    pub loss: f64,
    /// Mean length of a loss burst in packets; 1 or less means independent (Bernoulli) losses.
    pub burst: f64,
    pub delay: Duration,
    pub jitter: Duration,
    pub duplicate: f64,
    pub reorder: f64,
    pub reorder_delay: Duration,
    pub corrupt: f64,
    /// Lowest RTO; `None` keeps the engine's default.
    pub min_rto: Option<Duration>,
    pub unordered: bool,
    pub seed: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        let base = SimConfig::default();
        Self {
            messages: base.messages,
            message_bytes: base.message_bytes,
            interval: base.interval,
            streams: base.streams,
            loss: 0.0,
            burst: 1.0,
            delay: Duration::from_micros(50),
            jitter: Duration::ZERO,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: crate::impair::DEFAULT_REORDER_DELAY,
            corrupt: 0.0,
            min_rto: None,
            unordered: false,
            seed: 1,
        }
    }
}

impl Scenario {
    /// The loss model: none, independent losses, or Gilbert-Elliott bursts with the given mean length.
    pub fn loss_model(&self) -> Result<LossModel, ImpairmentError> {
        if self.loss <= 0.0 {
            Ok(LossModel::None)
        } else if self.burst <= 1.0 {
            Ok(LossModel::Bernoulli { p: self.loss })
        } else {
            Ok(LossModel::GilbertElliott(GilbertElliott::from_mean_loss_and_burst(self.loss, self.burst)?))
        }
    }

    /// The simulation settings.
    pub fn to_config(&self) -> Result<SimConfig, SimError> {
        let loss = self.loss_model()?;
        let direction = |seed: u64| ImpairmentConfig {
            loss,
            delay: self.delay,
            jitter: self.jitter,
            reorder: self.reorder,
            reorder_delay: self.reorder_delay,
            duplicate: self.duplicate,
            corrupt: self.corrupt,
            seed,
            ..ImpairmentConfig::default()
        };
        let mut engine = EngineConfig {
            ordering: if self.unordered { Ordering::Unordered } else { Ordering::InOrder },
            ..EngineConfig::default()
        };
        if let Some(min_rto) = self.min_rto {
            engine.min_rto = min_rto;
            engine.max_rto = engine.max_rto.max(min_rto);
        }
        Ok(SimConfig {
            messages: self.messages,
            message_bytes: self.message_bytes,
            interval: self.interval,
            streams: self.streams,
            forward: direction(self.seed.wrapping_mul(2)),
            backward: direction(self.seed.wrapping_mul(2).wrapping_add(1)),
            engine,
        })
    }
}

/// Why a simulation could not start.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SimError {
    #[error("impairment: {0}")]
    Impairment(#[from] ImpairmentError),
    #[error("engine: {0}")]
    Engine(#[from] ConfigError),
    #[error("message_bytes must be at least {INDEX_BYTES} and at most the engine's maximum message size")]
    MessageSize,
    #[error("streams must be at least 1")]
    Streams,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    pub sent: u64,
    pub delivered: u64,
    pub duplicates_delivered: u64,
    pub out_of_order_delivered: u64,
    /// Whether every message was delivered and acknowledged before the drain limit.
    pub complete: bool,
    pub retransmissions: u64,
    pub retransmissions_timeout: u64,
    pub retransmissions_fast: u64,
    pub spurious_retransmissions: u64,
    pub rto_expirations: u64,
    /// Messages that waited behind an earlier one of their conversation (in-order delivery only).
    pub messages_held_back: u64,
    pub sim_seconds: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Datagrams in both directions, and the IPv4 bytes they would take (28-byte IP/UDP headers included).
    pub packets_forward: u64,
    pub packets_backward: u64,
    pub ip_bytes_per_message: f64,
    /// Packets the links dropped, duplicated and corrupted.
    pub link_dropped: u64,
    pub link_duplicated: u64,
    pub link_corrupted: u64,
    /// Datagrams the receiver rejected as corrupted (failed authentication) or replayed.
    pub rejected_authentication: u64,
    pub rejected_replayed: u64,
}

fn ms(d: Duration) -> f64 {
    micros(d) as f64 / 1000.0
}

/// Runs one simulation to completion (or to the drain limit).
pub fn run(config: &SimConfig) -> Result<SimReport, SimError> {
    if config.message_bytes < INDEX_BYTES || config.message_bytes > config.engine.max_message_bytes {
        return Err(SimError::MessageSize);
    }
    if config.streams == 0 {
        return Err(SimError::Streams);
    }
    let secret = [0x5a; 32];
    let start = Duration::ZERO;
    let mut sender = Endpoint::new(&secret, 1, Role::Client, config.engine.clone(), start)?;
    let mut receiver = Endpoint::new(&secret, 1, Role::Server, config.engine.clone(), start)?;
    let mut net = Duplex::asymmetric(config.forward.clone(), config.backward.clone())?;

    let total = config.messages;
    let mut sent_at: Vec<Option<Duration>> = vec![None; usize::try_from(total).unwrap_or(usize::MAX)];
    let mut delivered = vec![false; sent_at.len()];
    let mut last_seen_per_stream: Vec<Option<u64>> = vec![None; config.streams as usize];
    let mut latency = LatencyHistogram::new();
    let mut report = SimReport {
        sent: 0,
        delivered: 0,
        duplicates_delivered: 0,
        out_of_order_delivered: 0,
        complete: false,
        retransmissions: 0,
        retransmissions_timeout: 0,
        retransmissions_fast: 0,
        spurious_retransmissions: 0,
        rto_expirations: 0,
        messages_held_back: 0,
        sim_seconds: 0.0,
        p50_ms: 0.0,
        p90_ms: 0.0,
        p99_ms: 0.0,
        p999_ms: 0.0,
        max_ms: 0.0,
        packets_forward: 0,
        packets_backward: 0,
        ip_bytes_per_message: 0.0,
        link_dropped: 0,
        link_duplicated: 0,
        link_corrupted: 0,
        rejected_authentication: 0,
        rejected_replayed: 0,
    };

    // Messages are due at i · interval; `next_index` is the next one the application wants to hand over.
    let mut next_index: u64 = 0;
    let mut acked: u64 = 0;
    let mut now = start;
    let mut buf = Vec::new();
    let last_due = config.interval.saturating_mul(u32::try_from(total).unwrap_or(u32::MAX));
    let give_up = last_due.saturating_add(DRAIN_LIMIT);

    loop {
        // Hand over every message that is due and fits in the window.
        while next_index < total
            && config.interval.saturating_mul(next_index as u32) <= now
            && sender.engine().can_send()
        {
            let mut payload = vec![0u8; config.message_bytes];
            payload[..INDEX_BYTES].copy_from_slice(&next_index.to_be_bytes());
            let stream = (next_index % u64::from(config.streams)) as u32;
            // The latency clock starts when the message was due, so time spent waiting for window space counts.
            let due = config.interval.saturating_mul(next_index as u32);
            if sender.send(stream, payload, now).is_err() {
                break;
            }
            sent_at[next_index as usize] = Some(due);
            report.sent += 1;
            next_index += 1;
        }
        // Send everything both endpoints have to send.
        while sender.poll_datagram(now, &mut buf).unwrap_or(false) {
            net.send(Direction::AToB, now, buf.clone());
        }
        while receiver.poll_datagram(now, &mut buf).unwrap_or(false) {
            net.send(Direction::BToA, now, buf.clone());
        }
        while let Some(event) = receiver.poll_event() {
            if let Event::Delivered(d) = event {
                let Some(index_bytes) = d.data.get(..INDEX_BYTES) else { continue };
                let index = u64::from_be_bytes(index_bytes.try_into().unwrap_or([0; 8]));
                let Some(slot) = delivered.get_mut(index as usize) else { continue };
                if *slot {
                    report.duplicates_delivered += 1;
                    continue;
                }
                *slot = true;
                report.delivered += 1;
                let stream_slot = &mut last_seen_per_stream[d.stream as usize % config.streams as usize];
                if stream_slot.is_some_and(|last| index < last) {
                    report.out_of_order_delivered += 1;
                }
                *stream_slot = Some(stream_slot.map_or(index, |last| last.max(index)));
                if let Some(at) = sent_at[index as usize] {
                    latency.record(now.saturating_sub(at));
                }
            }
        }
        while let Some(event) = sender.poll_event() {
            if let Event::Acked(_) = event {
                acked += 1;
            }
        }
        if acked == total && next_index == total {
            report.complete = report.delivered == total;
            break;
        }

        let next_due = (next_index < total && sender.engine().can_send())
            .then(|| config.interval.saturating_mul(next_index as u32));
        let next =
            [net.next_delivery(), sender.poll_timeout(), receiver.poll_timeout(), next_due].into_iter().flatten().min();
        let Some(next) = next else { break };
        if next > give_up {
            break;
        }
        now = now.max(next);
        while let Some((direction, packet)) = net.poll(now) {
            let target = if direction == Direction::AToB { &mut receiver } else { &mut sender };
            // Rejections (corrupted or duplicated datagrams) are counted by the endpoint; nothing else to do.
            let _ = target.handle_datagram(&packet, now);
        }
        if sender.poll_timeout().is_some_and(|t| t <= now) {
            sender.handle_timeout(now);
        }
        if receiver.poll_timeout().is_some_and(|t| t <= now) {
            receiver.handle_timeout(now);
        }
    }

    let s = &sender.stats().sent;
    let r = &receiver.stats();
    report.retransmissions_timeout = s.retransmissions_timeout;
    report.retransmissions_fast = s.retransmissions_fast;
    report.retransmissions = s.retransmissions_timeout + s.retransmissions_fast;
    report.spurious_retransmissions = s.spurious_retransmissions;
    report.rto_expirations = s.rto_expirations;
    report.messages_held_back = r.received.messages_held_back;
    report.rejected_authentication = r.received.rejected_authentication;
    report.rejected_replayed = r.received.rejected_replayed;
    report.sim_seconds = now.as_secs_f64();
    let q = |p: f64| latency.quantile(p).map_or(0.0, ms);
    report.p50_ms = q(0.5);
    report.p90_ms = q(0.9);
    report.p99_ms = q(0.99);
    report.p999_ms = q(0.999);
    report.max_ms = latency.max().map_or(0.0, ms);
    report.packets_forward = s.packets;
    report.packets_backward = r.sent.packets;
    let ip_bytes = s.bytes + r.sent.bytes + (s.packets + r.sent.packets) * IPV4_UDP_OVERHEAD as u64;
    report.ip_bytes_per_message = if report.delivered == 0 { 0.0 } else { ip_bytes as f64 / report.delivered as f64 };
    for dir in [Direction::AToB, Direction::BToA] {
        let l = net.link(dir).stats();
        report.link_dropped += l.dropped_loss + l.dropped_mtu + l.dropped_queue;
        report.link_duplicated += l.duplicated;
        report.link_corrupted += l.corrupted;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_link_delivers_everything_without_retransmission() {
        let report = run(&SimConfig { messages: 200, ..SimConfig::default() }).unwrap();
        assert!(report.complete);
        assert_eq!((report.sent, report.delivered), (200, 200));
        assert_eq!(report.retransmissions, 0);
        assert_eq!(report.duplicates_delivered + report.out_of_order_delivered, 0);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert_eq!(run(&SimConfig { message_bytes: 4, ..SimConfig::default() }), Err(SimError::MessageSize));
        assert_eq!(run(&SimConfig { streams: 0, ..SimConfig::default() }), Err(SimError::Streams));
        let bad_loss = ImpairmentConfig { loss: LossModel::Bernoulli { p: 2.0 }, ..ImpairmentConfig::default() };
        assert!(matches!(run(&SimConfig { forward: bad_loss, ..SimConfig::default() }), Err(SimError::Impairment(_))));
    }

    #[test]
    fn a_scenario_builds_both_directions_with_their_own_seeds() {
        let scenario = Scenario { loss: 0.1, burst: 4.0, min_rto: Some(Duration::from_secs(5)), ..Scenario::default() };
        let config = scenario.to_config().unwrap();
        assert!(matches!(config.forward.loss, LossModel::GilbertElliott(_)));
        assert_ne!(config.forward.seed, config.backward.seed);
        assert_eq!(config.engine.min_rto, Duration::from_secs(5));
        assert!(config.engine.max_rto >= config.engine.min_rto, "a floor above the ceiling raises the ceiling");
        assert_eq!(Scenario { loss: 0.0, ..Scenario::default() }.loss_model().unwrap(), LossModel::None);
        assert!(Scenario { loss: 0.9, burst: 1.5, ..Scenario::default() }.to_config().is_err());
    }

    #[test]
    fn a_dead_link_is_reported_incomplete_not_looped_on() {
        let dead = ImpairmentConfig { loss: LossModel::Bernoulli { p: 1.0 }, ..ImpairmentConfig::default() };
        let report = run(&SimConfig { messages: 3, forward: dead, ..SimConfig::default() }).unwrap();
        assert!(!report.complete);
        assert_eq!(report.delivered, 0);
        assert!(report.sim_seconds >= DRAIN_LIMIT.as_secs_f64());
    }
}
