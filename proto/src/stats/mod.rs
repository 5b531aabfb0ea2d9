//! Statistics: what the protocol did, counted per direction.
//!
//! The point of chatlab is to *see* a transport at work, so every engine keeps plain counters (an increment each,
//! cheap enough to leave on in production), an RTT history for plotting and two latency histograms. The desktop app
//! plots them, the CLI prints them as JSON, the labs export them.
//!
//! Two ideas worth knowing before reading the numbers:
//!
//! - **Wire bytes vs useful bytes.** Every datagram pays for its IP and UDP headers (28 bytes on IPv4,
//!   [`IPV4_UDP_OVERHEAD`]), chatlab's clear header, the 16-byte AEAD tag, frame headers, acknowledgements, and every
//!   retransmission. *Useful* bytes are only the message bytes the application asked to send, counted once. Their
//!   ratio is the protocol's efficiency, and the lab compares it with TCP's.
//! - **Spurious retransmissions.** A packet declared lost that is acknowledged afterwards was not lost, only late; its
//!   retransmission was wasted. Many spurious retransmissions mean the loss detection is too impatient for this path
//!   (RTO floor too low, or reordering mistaken for loss).

mod histogram;

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use histogram::LatencyHistogram;

/// Bytes an IPv4 and a UDP header add to every datagram (20 + 8), for reporting bytes "on the wire" as a packet
/// capture would count them at the IP layer.
pub const IPV4_UDP_OVERHEAD: usize = 28;

/// RTT samples remembered for plotting: at one sample per message every 5 ms this is the last few seconds, enough for
/// a live plot; older samples are summarised by the smoothed figures.
pub const RTT_HISTORY: usize = 1024;

/// What one engine sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendCounters {
    /// Datagrams handed to the network.
    pub packets: u64,
    /// UDP payload bytes of those datagrams (header, frames and AEAD tag included; IP/UDP headers not).
    pub bytes: u64,
    /// Application message bytes, each counted once however often it was retransmitted.
    pub useful_bytes: u64,
    /// Datagrams that carried only an acknowledgement.
    pub ack_only_packets: u64,
    /// Ack frames sent, piggybacked or alone.
    pub acks: u64,
    /// Keepalive pings sent.
    pub pings: u64,
    /// Messages accepted by `send`.
    pub messages: u64,
    /// Messages whose every fragment the peer acknowledged.
    pub messages_acked: u64,
    /// Fragments resent because the retransmission timer fired.
    pub retransmissions_timeout: u64,
    /// Fragments resent because later packets were acknowledged first (fast retransmit).
    pub retransmissions_fast: u64,
    /// Packets declared lost and acknowledged later anyway: their retransmission was not needed.
    pub spurious_retransmissions: u64,
    /// Ack-eliciting packets declared lost, by either detector.
    pub packets_declared_lost: u64,
    /// Ack-eliciting packets sent (the denominator of the loss estimate).
    pub ack_eliciting_packets: u64,
    /// Times the retransmission timer fired.
    pub rto_expirations: u64,
    /// Times `send` refused a message because the send window was full.
    pub window_full: u64,
}

/// What one engine received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiveCounters {
    /// Datagrams that authenticated and reached the engine.
    pub packets: u64,
    /// UDP payload bytes of those datagrams.
    pub bytes: u64,
    /// Message bytes delivered to the application, each message once.
    pub useful_bytes: u64,
    /// Ack frames received.
    pub acks: u64,
    /// Messages delivered to the application.
    pub messages_delivered: u64,
    /// Packets whose number had already arrived.
    pub duplicate_packets: u64,
    /// Message fragments that arrived again after their message was already complete.
    pub duplicate_messages: u64,
    /// Packets that arrived after a packet with a larger number.
    pub out_of_order_packets: u64,
    /// Messages that had to wait for an earlier message of their conversation (head-of-line blocking).
    pub messages_held_back: u64,
    /// Total time, in microseconds, that held-back messages waited for the gap before them to fill.
    pub head_of_line_wait_us: u64,
    /// Datagrams rejected by the replay window.
    pub rejected_replayed: u64,
    /// Datagrams whose AEAD tag did not verify: tampered, corrupted, or sealed with another key.
    pub rejected_authentication: u64,
    /// Datagrams too short, too long, of another version or connection, or with broken frames.
    pub rejected_malformed: u64,
    /// Fragments dropped because they were beyond the receive window or the part of the receive budget that
    /// waiting data may use; not acknowledged, so the sender sends them again.
    pub dropped_over_limit: u64,
    /// Times the peer ended the connection by breaking a rule or exceeding the receive budget (0 or 1).
    #[serde(default)]
    pub connection_errors: u64,
}

/// One RTT measurement, for plotting RTT with its SRTT/RTO band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RttSample {
    /// When the acknowledgement arrived (engine time).
    pub at: Duration,
    pub rtt: Duration,
    pub srtt: Duration,
    pub rto: Duration,
}

/// All statistics of one engine.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub sent: SendCounters,
    pub received: ReceiveCounters,
    /// Time from `send` to the peer's acknowledgement of the whole message.
    pub ack_latency: LatencyHistogram,
    /// Time complete messages spent waiting behind an earlier missing message of their conversation.
    pub head_of_line_wait: LatencyHistogram,
    rtt_history: VecDeque<RttSample>,
}

impl Stats {
    /// Remembers an RTT sample for plotting, forgetting the oldest beyond [`RTT_HISTORY`].
    pub fn push_rtt_sample(&mut self, sample: RttSample) {
        if self.rtt_history.len() == RTT_HISTORY {
            self.rtt_history.pop_front();
        }
        self.rtt_history.push_back(sample);
    }

    /// The most recent RTT samples, oldest first.
    pub fn rtt_history(&self) -> impl Iterator<Item = &RttSample> {
        self.rtt_history.iter()
    }

    /// Fraction of ack-eliciting packets declared lost and not later found to be merely late: an estimate of the
    /// path's loss rate as this sender sees it (data loss and ack loss together).
    pub fn estimated_loss_rate(&self) -> f64 {
        let sent = self.sent.ack_eliciting_packets;
        if sent == 0 {
            return 0.0;
        }
        let lost = self.sent.packets_declared_lost.saturating_sub(self.sent.spurious_retransmissions);
        lost as f64 / sent as f64
    }
}

/// A serialisable summary of [`Stats`] plus the RTT estimator's figures, for JSON and CSV export and for the UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub sent: SendCounters,
    pub received: ReceiveCounters,
    pub srtt_us: u64,
    pub rttvar_us: u64,
    pub min_rtt_us: Option<u64>,
    pub latest_rtt_us: Option<u64>,
    pub rto_us: u64,
    pub messages_in_flight: u64,
    pub estimated_loss_rate: f64,
    pub ack_latency_p50_us: Option<u64>,
    pub ack_latency_p99_us: Option<u64>,
    pub head_of_line_wait_p99_us: Option<u64>,
}

/// Microseconds of a duration, saturating (a `u64` of microseconds lasts 584 000 years).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_estimate_discounts_spurious_retransmissions() {
        let mut s = Stats::default();
        assert_eq!(s.estimated_loss_rate(), 0.0);
        s.sent.ack_eliciting_packets = 100;
        s.sent.packets_declared_lost = 12;
        s.sent.spurious_retransmissions = 2;
        assert!((s.estimated_loss_rate() - 0.10).abs() < 1e-9);
    }

    #[test]
    fn rtt_history_is_bounded() {
        let mut s = Stats::default();
        for i in 0..RTT_HISTORY as u64 + 10 {
            let d = Duration::from_micros(i);
            s.push_rtt_sample(RttSample { at: d, rtt: d, srtt: d, rto: d });
        }
        assert_eq!(s.rtt_history().count(), RTT_HISTORY);
        assert_eq!(s.rtt_history().next().unwrap().at, Duration::from_micros(10));
    }

    #[test]
    fn snapshot_serialises_to_json() {
        let snap = StatsSnapshot {
            sent: SendCounters { packets: 3, ..Default::default() },
            received: ReceiveCounters::default(),
            srtt_us: 1,
            rttvar_us: 2,
            min_rtt_us: None,
            latest_rtt_us: Some(4),
            rto_us: 5,
            messages_in_flight: 0,
            estimated_loss_rate: 0.0,
            ack_latency_p50_us: None,
            ack_latency_p99_us: None,
            head_of_line_wait_p99_us: None,
        };
        let json = serde_json::to_string(&snap).unwrap();
        assert!(json.contains("\"packets\":3"));
        let back: StatsSnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
    }
}
