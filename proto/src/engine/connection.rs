//! The engine: one side of a reliable, message-oriented conversation over unreliable datagrams.
//!
//! The engine is a state machine in the style of `quinn-proto`: it never touches a socket or a clock. Its owner
//!
//! 1. hands it each received datagram's plaintext with [`Engine::handle_packet`],
//! 2. asks for datagrams to send with [`Engine::poll_transmit`] until it returns `None`,
//! 3. reads what happened with [`Engine::poll_event`] (delivered messages, acknowledged messages, a silent peer),
//! 4. sleeps until [`Engine::poll_timeout`] and then calls [`Engine::handle_timeout`].
//!
//! Every call takes `now`, a [`Duration`] since any fixed starting point. In production that is a monotonic clock;
//! in tests and the `soak` example it is simulated time, so a minute of lossy network runs in milliseconds and every
//! run with the same seed is identical.

use std::collections::VecDeque;
use std::time::Duration;

use thiserror::Error;

use super::ack_tracker::{AckFrame, AckTracker, Arrival, acked_packet_numbers};
use super::config::{ConfigError, EngineConfig};
use super::connection_error::ConnectionError;
use super::frame::{FRAGMENT_OVERHEAD_MAX, Frame, FrameError, decode_frames};
use super::incoming::{Delivery, FragmentOutcome, Incoming, IncomingLimits};
use super::outgoing::{AckedMessage, Outgoing};
use super::rtt::RttEstimator;
use super::sent::{FragmentRef, LossCause, SentLedger, SentPacket};
use crate::stats::{RttSample, Stats, StatsSnapshot, micros};

/// Time threshold of loss detection at the start, in eighths of an RTT: 9/8, as RFC 9002 recommends.
const INITIAL_TIME_THRESHOLD_EIGHTHS: u32 = 9;

/// Ceiling of the adaptive time threshold: two RTTs. Beyond that the retransmission timer is about as quick.
const MAX_TIME_THRESHOLD_EIGHTHS: u32 = 16;

/// Ceiling of the adaptive packet threshold: 16 packets. Measured with the soak example (20 000 messages, 50 ms of
/// jitter, no loss): growing to 16 cut retransmissions from 11 683 to 7 940 at the same p99; a higher ceiling
/// mostly delays the detection of real losses.
const MAX_PACKET_THRESHOLD: u64 = 16;

/// Something the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete message from the peer, in the configured order.
    Delivered(Delivery),
    /// The peer acknowledged every fragment of a message this side sent.
    Acked(AckedMessage),
    /// Nothing was heard from the peer for the idle timeout: it is probably gone.
    PeerIdle,
    /// The peer broke the protocol or exceeded the receive budget; the engine has stopped (see
    /// [`ConnectionError`]). Reported once; the owner should end the session and say why.
    Failed(ConnectionError),
}

/// Why [`Engine::send`] refused a message. Nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    #[error("the send window is full: {in_flight} messages wait for acknowledgement")]
    WindowFull { in_flight: usize },
    #[error("message of {len} bytes is larger than the {max}-byte maximum")]
    TooLarge { len: usize, max: usize },
    #[error("the connection has ended: {0}")]
    Closed(ConnectionError),
}

/// Why a received packet was refused. It had no effect on the engine's state besides being counted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PacketError {
    #[error("malformed frames: {0}")]
    Frames(#[from] FrameError),
    #[error("acknowledgement of packet {largest}, which was never sent (next is {next})")]
    AckOfUnsentPacket { largest: u64, next: u64 },
    /// This packet, or an earlier one, ended the connection.
    #[error("connection ended: {0}")]
    Closed(ConnectionError),
}

/// One side of a conversation. See the module docs for how to drive it.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    rtt: RttEstimator,
    acks: AckTracker,
    ledger: SentLedger,
    outgoing: Outgoing,
    incoming: Incoming,
    stats: Stats,
    events: VecDeque<Event>,
    deliveries: Vec<Delivery>,
    /// Acks built early because a burst was about to push unreported packets out of the tracker; each goes out in
    /// its own packet before anything else.
    queued_acks: VecDeque<AckFrame>,
    next_pn: u64,
    /// Timeouts in a row without any acknowledgement: the RTO is doubled this many times.
    backoff: u32,
    /// The packet threshold in force: starts at the configured one and grows when reordering fooled it.
    packet_threshold: u64,
    /// The time threshold in eighths of an RTT: starts at 9 (RFC 9002) and grows the same way.
    time_threshold_eighths: u32,
    loss_time: Option<Duration>,
    last_sent: Duration,
    last_received: Duration,
    ping_pending: bool,
    idle_reported: bool,
    /// Set when the peer ended the connection by breaking a rule; the engine is inert from then on.
    failure: Option<ConnectionError>,
}

impl Engine {
    /// A new engine; `now` starts the keepalive and idle clocks.
    pub fn new(config: EngineConfig, now: Duration) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            rtt: RttEstimator::new(config.initial_rtt, config.min_rto, config.max_rto, config.granularity),
            acks: AckTracker::new(),
            ledger: SentLedger::default(),
            outgoing: Outgoing::new(config.fragment_capacity()),
            incoming: Incoming::new(incoming_limits(&config)),
            stats: Stats::default(),
            events: VecDeque::new(),
            deliveries: Vec::new(),
            queued_acks: VecDeque::new(),
            next_pn: 0,
            backoff: 0,
            packet_threshold: config.packet_threshold,
            time_threshold_eighths: INITIAL_TIME_THRESHOLD_EIGHTHS,
            loss_time: None,
            last_sent: now,
            last_received: now,
            ping_pending: false,
            idle_reported: false,
            failure: None,
            config,
        })
    }

    /// Why the connection ended, if the peer ended it by breaking a rule.
    pub fn failure(&self) -> Option<&ConnectionError> {
        self.failure.as_ref()
    }

    /// Bytes of the receive budget the peer makes this side hold now (see [`budget`](super::budget)).
    pub fn receive_accounted_bytes(&self) -> usize {
        self.incoming.accounted_bytes()
    }

    /// Ends the connection because of what the peer did: reports it once, and frees everything the peer made this
    /// side hold, so an attacker's memory comes back at once and not when the owner gets round to it.
    fn fail(&mut self, error: ConnectionError) -> PacketError {
        if self.failure.is_none() {
            self.failure = Some(error.clone());
            self.stats.received.connection_errors += 1;
            self.incoming = Incoming::new(incoming_limits(&self.config));
            self.deliveries.clear();
            self.queued_acks.clear();
            self.loss_time = None;
            self.events.push_back(Event::Failed(error.clone()));
        }
        PacketError::Closed(error)
    }

    /// Queues a message for reliable delivery on `stream` (a conversation) and returns its sequence number there.
    pub fn send(&mut self, stream: u32, data: Vec<u8>, now: Duration) -> Result<u64, SendError> {
        if let Some(error) = &self.failure {
            return Err(SendError::Closed(error.clone()));
        }
        if data.len() > self.config.max_message_bytes {
            return Err(SendError::TooLarge { len: data.len(), max: self.config.max_message_bytes });
        }
        if self.outgoing.in_flight() >= self.config.send_window {
            self.stats.sent.window_full += 1;
            return Err(SendError::WindowFull { in_flight: self.outgoing.in_flight() });
        }
        self.stats.sent.messages += 1;
        self.stats.sent.useful_bytes += data.len() as u64;
        Ok(self.outgoing.push(stream, data, now))
    }

    /// Asks for a ping in the next packet: an ack-eliciting packet with no data. A client sends one right after login
    /// so the server learns its UDP address and the acknowledgement proves that UDP gets through both ways.
    pub fn ping(&mut self) {
        self.ping_pending = true;
    }

    /// Whether [`send`](Self::send) would accept a message now.
    pub fn can_send(&self) -> bool {
        self.outgoing.in_flight() < self.config.send_window
    }

    /// Messages sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.outgoing.in_flight()
    }

    /// Handles the plaintext of one authenticated datagram carrying packet number `pn`.
    pub fn handle_packet(&mut self, pn: u64, payload: &[u8], now: Duration) -> Result<(), PacketError> {
        if let Some(error) = &self.failure {
            return Err(PacketError::Closed(error.clone()));
        }
        let frames = match decode_frames(payload) {
            Ok(frames) => frames,
            Err(e) => {
                self.stats.received.rejected_malformed += 1;
                return Err(e.into());
            }
        };
        for frame in &frames {
            if let Frame::Ack { largest, .. } = frame {
                if *largest >= self.next_pn {
                    self.stats.received.rejected_malformed += 1;
                    return Err(PacketError::AckOfUnsentPacket { largest: *largest, next: self.next_pn });
                }
            }
        }
        self.stats.received.packets += 1;
        self.stats.received.bytes += (payload.len() + self.config.packet_overhead) as u64;
        self.last_received = now;
        self.idle_reported = false;

        let ack_eliciting = frames.iter().any(|f| !matches!(f, Frame::Ack { .. }));
        let arrival = self.acks.classify(pn);
        if arrival == Arrival::Duplicate {
            // Everything in it was handled the first time; recording it again makes sure an ack goes out, since
            // the peer evidently missed ours.
            self.acks.on_packet(pn, ack_eliciting, now);
            self.stats.received.duplicate_packets += 1;
            return Ok(());
        }

        let mut refused = false;
        for frame in frames {
            match frame {
                Frame::Fragment { stream, seq, index, count, data } => {
                    let outcome = self.incoming.on_fragment(stream, seq, index, count, data, now, &mut self.deliveries);
                    let outcome = match outcome {
                        Ok(outcome) => outcome,
                        Err(error) => return Err(self.fail(error)),
                    };
                    match outcome {
                        FragmentOutcome::Duplicate => self.stats.received.duplicate_messages += 1,
                        FragmentOutcome::Dropped => {
                            self.stats.received.dropped_over_limit += 1;
                            refused = true;
                        }
                        FragmentOutcome::Stored | FragmentOutcome::Completed => {}
                    }
                }
                Frame::Ack { largest, ack_delay_us, bitmap } => {
                    self.on_ack(largest, Duration::from_micros(ack_delay_us), bitmap, now)
                }
                Frame::Ping => {}
            }
        }
        // A packet whose fragment was refused is not acknowledged: to the sender it looks lost, so the fragment
        // comes again in a new packet once there is room. Acknowledging it would make the sender forget data the
        // receiver never kept.
        if !refused {
            if self.acks.needs_flush_before(pn) {
                if let Some(ack) = self.acks.build_ack(now) {
                    self.queued_acks.push_back(ack);
                }
            }
            self.acks.on_packet(pn, ack_eliciting, now);
            if arrival == (Arrival::New { out_of_order: true }) {
                self.stats.received.out_of_order_packets += 1;
            }
        }
        for delivery in self.deliveries.drain(..) {
            let received = &mut self.stats.received;
            received.messages_delivered += 1;
            received.useful_bytes += delivery.data.len() as u64;
            if !delivery.waited.is_zero() {
                received.messages_held_back += 1;
                received.head_of_line_wait_us += micros(delivery.waited);
                self.stats.head_of_line_wait.record(delivery.waited);
            }
            self.events.push_back(Event::Delivered(delivery));
        }
        Ok(())
    }

    fn on_ack(&mut self, largest: u64, ack_delay: Duration, bitmap: &[u8], now: Duration) {
        self.stats.received.acks += 1;
        let outcome = self.ledger.on_ack(acked_packet_numbers(largest, bitmap));
        if let Some((pn, sent_at)) = outcome.largest_newly_acked {
            // RFC 9002: only the largest acknowledged packet, acknowledged for the first time, gives a sample; the
            // peer's ack delay is exact for it alone.
            if pn == largest {
                self.rtt.update(now.saturating_sub(sent_at), ack_delay);
                let sample =
                    RttSample { at: now, rtt: now.saturating_sub(sent_at), srtt: self.rtt.srtt(), rto: self.rtt.rto() };
                self.stats.push_rtt_sample(sample);
            }
        }
        self.stats.sent.spurious_retransmissions += outcome.spurious;
        if outcome.spurious_fast > 0 {
            self.widen_reordering_tolerance();
        }
        if outcome.any_new {
            self.backoff = 0;
        }
        for fragment in outcome.acked_fragments {
            if let Some(done) = self.outgoing.on_acked(fragment, now) {
                self.stats.sent.messages_acked += 1;
                self.stats.ack_latency.record(done.latency);
                self.events.push_back(Event::Acked(done));
            }
        }
        self.detect_loss(now);
    }

    /// A packet declared lost because later ones were acknowledged first was acknowledged itself: the path reorders
    /// more than the thresholds allow. Like Linux TCP's adaptive reordering degree (and as RFC 9002 section 6.1
    /// permits), both thresholds grow, up to a ceiling, so a jittery path stops costing spurious retransmissions;
    /// the retransmission timer still bounds how long a real loss can go unnoticed.
    fn widen_reordering_tolerance(&mut self) {
        self.packet_threshold = (self.packet_threshold * 2).min(MAX_PACKET_THRESHOLD);
        self.time_threshold_eighths = (self.time_threshold_eighths + 2).min(MAX_TIME_THRESHOLD_EIGHTHS);
    }

    /// The loss-detection thresholds in force: `(packets, eighths of an RTT)`.
    pub fn reordering_thresholds(&self) -> (u64, u32) {
        (self.packet_threshold, self.time_threshold_eighths)
    }

    fn detect_loss(&mut self, now: Duration) {
        let loss_delay = self.rtt.loss_delay(self.time_threshold_eighths);
        let (lost, next) = self.ledger.detect_lost(now, loss_delay, self.packet_threshold);
        self.loss_time = next;
        self.requeue(lost, LossCause::Fast);
    }

    fn requeue(&mut self, lost: Vec<(u64, SentPacket)>, cause: LossCause) {
        for (pn, packet) in lost {
            self.stats.sent.packets_declared_lost += 1;
            for fragment in packet.fragments {
                if self.outgoing.on_lost(fragment, pn) {
                    match cause {
                        LossCause::Fast => self.stats.sent.retransmissions_fast += 1,
                        LossCause::Timeout => self.stats.sent.retransmissions_timeout += 1,
                    }
                }
            }
        }
    }

    fn rto_deadline(&self) -> Option<Duration> {
        let oldest = self.ledger.oldest_in_flight()?;
        Some(oldest.saturating_add(self.rtt.backed_off_rto(self.backoff)))
    }

    /// The next datagram payload to send, written into `out` (cleared first), with its packet number; `None` when
    /// there is nothing to send now. Call it until it returns `None`.
    pub fn poll_transmit(&mut self, now: Duration, out: &mut Vec<u8>) -> Option<u64> {
        out.clear();
        if self.failure.is_some() {
            return None;
        }
        if let Some(ack) = self.queued_acks.pop_front() {
            let pn = self.next_pn;
            self.next_pn += 1;
            Frame::Ack { largest: ack.largest, ack_delay_us: micros(ack.ack_delay), bitmap: &ack.bitmap }.encode(out);
            self.stats.sent.acks += 1;
            self.stats.sent.ack_only_packets += 1;
            self.stats.sent.packets += 1;
            self.stats.sent.bytes += (out.len() + self.config.packet_overhead) as u64;
            self.last_sent = now;
            return Some(pn);
        }
        let ack_due = self.acks.ack_deadline(self.config.max_ack_delay).is_some_and(|t| t <= now);
        let has_data = self.outgoing.has_pending();
        if !ack_due && !has_data && !self.ping_pending {
            return None;
        }
        let pn = self.next_pn;
        if ack_due || self.acks.has_news() {
            if let Some(ack) = self.acks.build_ack(now) {
                let frame =
                    Frame::Ack { largest: ack.largest, ack_delay_us: micros(ack.ack_delay), bitmap: &ack.bitmap };
                frame.encode(out);
                self.stats.sent.acks += 1;
            }
        }
        let mut fragments: Vec<FragmentRef> = Vec::new();
        loop {
            let room = self.config.max_payload.saturating_sub(out.len() + FRAGMENT_OVERHEAD_MAX);
            let Some((fragment, count, data, retransmission)) = self.outgoing.peek(room) else { break };
            let frame =
                Frame::Fragment { stream: fragment.stream, seq: fragment.seq, index: fragment.index, count, data };
            frame.encode(out);
            self.outgoing.consume(retransmission, pn);
            fragments.push(fragment);
        }
        let mut pinged = false;
        if self.ping_pending && fragments.is_empty() {
            Frame::Ping.encode(out);
            self.stats.sent.pings += 1;
            pinged = true;
        }
        self.ping_pending = false;
        if out.is_empty() {
            return None;
        }
        self.next_pn += 1;
        let ack_eliciting = !fragments.is_empty() || pinged;
        if ack_eliciting {
            self.stats.sent.ack_eliciting_packets += 1;
            self.ledger.on_sent(pn, SentPacket { sent_at: now, fragments });
        } else {
            self.stats.sent.ack_only_packets += 1;
        }
        self.stats.sent.packets += 1;
        self.stats.sent.bytes += (out.len() + self.config.packet_overhead) as u64;
        self.last_sent = now;
        Some(pn)
    }

    /// The packet number the next packet will carry; every smaller one was sent already.
    pub fn next_packet_number(&self) -> u64 {
        self.next_pn
    }

    /// The largest packet number the peer acknowledged, or `None` before its first acknowledgement.
    pub fn largest_acked(&self) -> Option<u64> {
        self.ledger.largest_acked()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.failure.is_some() {
            return None;
        }
        let stall = self.incoming.stall_deadline();
        let ack = self.acks.ack_deadline(self.config.max_ack_delay);
        let keepalive = (!self.ping_pending).then(|| self.last_sent.saturating_add(self.config.keepalive));
        let idle = (!self.idle_reported).then(|| self.last_received.saturating_add(self.config.idle_timeout));
        [ack, self.loss_time, self.rto_deadline(), keepalive, idle, stall].into_iter().flatten().min()
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Duration) {
        if self.failure.is_some() {
            return;
        }
        if let Err(error) = self.incoming.check_stalls(now) {
            self.fail(error);
            return;
        }
        if self.loss_time.is_some_and(|t| t <= now) {
            self.detect_loss(now);
        }
        if self.rto_deadline().is_some_and(|t| t <= now) {
            let rto = self.rtt.backed_off_rto(self.backoff);
            let lost = self.ledger.timeout_lost(now, rto);
            self.requeue(lost, LossCause::Timeout);
            self.backoff = self.backoff.saturating_add(1);
            self.stats.sent.rto_expirations += 1;
        }
        if !self.ping_pending && self.last_sent.saturating_add(self.config.keepalive) <= now {
            self.ping_pending = true;
        }
        if !self.idle_reported && self.last_received.saturating_add(self.config.idle_timeout) <= now {
            self.idle_reported = true;
            self.events.push_back(Event::PeerIdle);
        }
    }

    /// The statistics so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Mutable statistics, for the layer below to count datagrams it rejected before they reached the engine.
    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// The RTT estimator.
    pub fn rtt(&self) -> &RttEstimator {
        &self.rtt
    }

    /// The current retransmission timeout, back-off included.
    pub fn current_rto(&self) -> Duration {
        self.rtt.backed_off_rto(self.backoff)
    }

    /// The configuration in force.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// A serialisable summary of the statistics.
    pub fn snapshot(&self) -> StatsSnapshot {
        let s = &self.stats;
        StatsSnapshot {
            sent: s.sent.clone(),
            received: s.received.clone(),
            srtt_us: micros(self.rtt.srtt()),
            rttvar_us: micros(self.rtt.rttvar()),
            min_rtt_us: self.rtt.min_rtt().map(micros),
            latest_rtt_us: self.rtt.latest().map(micros),
            rto_us: micros(self.current_rto()),
            messages_in_flight: self.outgoing.in_flight() as u64,
            estimated_loss_rate: s.estimated_loss_rate(),
            ack_latency_p50_us: s.ack_latency.quantile(0.5).map(micros),
            ack_latency_p99_us: s.ack_latency.quantile(0.99).map(micros),
            head_of_line_wait_p99_us: s.head_of_line_wait.quantile(0.99).map(micros),
        }
    }
}

/// The receiver's limits, from the engine's configuration.
fn incoming_limits(config: &EngineConfig) -> IncomingLimits {
    IncomingLimits {
        ordering: config.ordering,
        receive_window: config.receive_window,
        max_message_bytes: config.max_message_bytes,
        receive_budget: config.receive_budget,
        stall_timeout: config.stall_timeout,
    }
}
