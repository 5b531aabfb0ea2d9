//! The sender's ledger of packets in flight, and loss detection.
//!
//! Each ack-eliciting packet (one that carries a fragment or a ping) is remembered with the time it left and the
//! fragments it carried, until an acknowledgement names it or it is declared lost. Loss is decided two ways, as in
//! RFC 9002:
//!
//! - **by packet threshold and time threshold (fast retransmit)**: when a *later* packet is acknowledged, an earlier
//!   unacknowledged one is lost if `packet_threshold` later packets were acknowledged, or if it was sent more than
//!   `9/8 · RTT` before now. Both need later traffic, but react within about one round trip;
//! - **by timeout (RTO)**: when nothing at all is acknowledged for an RTO, every packet older than the RTO is lost
//!   and the RTO doubles (exponential back-off), so a dead link is not flooded.
//!
//! Packets declared lost are remembered for a little while longer: if an acknowledgement names one after all, the
//! retransmission was *spurious* and is counted, which tells a class when loss detection is too impatient.

use std::collections::BTreeMap;
use std::time::Duration;

/// Lost packets remembered to recognise spurious retransmissions. Beyond this the oldest is forgotten; at chat rates
/// this covers seconds, at benchmark rates tens of milliseconds, which is as long as a late ack can plausibly be.
pub const LOST_MEMORY_PACKETS: usize = 4096;

/// Which piece of which message a packet carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentRef {
    pub stream: u32,
    pub seq: u64,
    pub index: u16,
}

/// One ack-eliciting packet in flight.
#[derive(Debug, Clone)]
pub struct SentPacket {
    pub sent_at: Duration,
    pub fragments: Vec<FragmentRef>,
}

/// How a packet came to be declared lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossCause {
    /// Later packets were acknowledged first.
    Fast,
    /// The retransmission timer fired.
    Timeout,
}

/// The result of applying an acknowledgement.
#[derive(Debug, Default)]
pub struct AckOutcome {
    /// Fragments acknowledged for the first time, from packets in flight and from packets already declared lost.
    pub acked_fragments: Vec<FragmentRef>,
    /// The largest newly acknowledged packet that was in flight: `(packet number, sent_at)`, for an RTT sample.
    pub largest_newly_acked: Option<(u64, Duration)>,
    /// Packets that had been declared lost and were acknowledged after all.
    pub spurious: u64,
    /// Of those, the ones declared lost by the packet or time threshold: reordering mistaken for loss.
    pub spurious_fast: u64,
    /// Whether anything at all was newly acknowledged (resets the timeout back-off).
    pub any_new: bool,
}

/// Packets in flight and recently lost.
#[derive(Debug, Default)]
pub struct SentLedger {
    in_flight: BTreeMap<u64, SentPacket>,
    lost: BTreeMap<u64, (Vec<FragmentRef>, LossCause)>,
    largest_acked: Option<u64>,
}

impl SentLedger {
    /// The largest packet number the peer acknowledged, ack-only packets included.
    pub fn largest_acked(&self) -> Option<u64> {
        self.largest_acked
    }

    /// Remembers an ack-eliciting packet.
    pub fn on_sent(&mut self, pn: u64, packet: SentPacket) {
        self.in_flight.insert(pn, packet);
    }

    /// Applies the packet numbers one ack frame reports. The caller has checked that they are packet numbers this
    /// side really sent.
    pub fn on_ack(&mut self, acked: impl Iterator<Item = u64>) -> AckOutcome {
        let mut out = AckOutcome::default();
        for pn in acked {
            if let Some(packet) = self.in_flight.remove(&pn) {
                out.any_new = true;
                if out.largest_newly_acked.is_none_or(|(largest, _)| pn > largest) {
                    out.largest_newly_acked = Some((pn, packet.sent_at));
                }
                out.acked_fragments.extend(packet.fragments);
            } else if let Some((fragments, cause)) = self.lost.remove(&pn) {
                out.any_new = true;
                out.spurious += 1;
                if cause == LossCause::Fast {
                    out.spurious_fast += 1;
                }
                out.acked_fragments.extend(fragments);
            }
            // Ack-only packets are not in the ledger but still count as "a later packet arrived".
            if self.largest_acked.is_none_or(|l| pn > l) {
                self.largest_acked = Some(pn);
            }
        }
        out
    }

    /// Declares lost, by packet or time threshold, every packet below the largest acknowledged one that waited too
    /// long. Returns the lost packets and the time at which the next one would cross the time threshold.
    pub fn detect_lost(
        &mut self,
        now: Duration,
        loss_delay: Duration,
        packet_threshold: u64,
    ) -> (Vec<(u64, SentPacket)>, Option<Duration>) {
        let Some(largest) = self.largest_acked else { return (Vec::new(), None) };
        let mut lost_pns = Vec::new();
        let mut next_loss_time = None;
        for (&pn, packet) in self.in_flight.range(..largest) {
            let by_count = largest - pn >= packet_threshold;
            let deadline = packet.sent_at.saturating_add(loss_delay);
            if by_count || deadline <= now {
                lost_pns.push(pn);
            } else {
                next_loss_time = Some(next_loss_time.map_or(deadline, |t: Duration| t.min(deadline)));
            }
        }
        (self.mark_lost(lost_pns, LossCause::Fast), next_loss_time)
    }

    /// Declares lost every packet sent at least `rto` before `now` (the retransmission timer fired).
    pub fn timeout_lost(&mut self, now: Duration, rto: Duration) -> Vec<(u64, SentPacket)> {
        let lost_pns: Vec<u64> = self
            .in_flight
            .iter()
            .take_while(|(_, p)| p.sent_at.saturating_add(rto) <= now)
            .map(|(&pn, _)| pn)
            .collect();
        self.mark_lost(lost_pns, LossCause::Timeout)
    }

    fn mark_lost(&mut self, pns: Vec<u64>, cause: LossCause) -> Vec<(u64, SentPacket)> {
        let mut lost = Vec::with_capacity(pns.len());
        for pn in pns {
            if let Some(packet) = self.in_flight.remove(&pn) {
                self.lost.insert(pn, (packet.fragments.clone(), cause));
                lost.push((pn, packet));
            }
        }
        while self.lost.len() > LOST_MEMORY_PACKETS {
            self.lost.pop_first();
        }
        lost
    }

    /// When the oldest packet in flight was sent: the retransmission timer runs from there.
    pub fn oldest_in_flight(&self) -> Option<Duration> {
        self.in_flight.values().next().map(|p| p.sent_at)
    }

    /// Number of ack-eliciting packets in flight.
    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn frag(seq: u64) -> FragmentRef {
        FragmentRef { stream: 0, seq, index: 0 }
    }

    fn ledger_with(pns: &[u64]) -> SentLedger {
        let mut l = SentLedger::default();
        for &pn in pns {
            l.on_sent(pn, SentPacket { sent_at: ms(pn), fragments: vec![frag(pn)] });
        }
        l
    }

    #[test]
    fn ack_returns_fragments_and_the_rtt_candidate() {
        let mut l = ledger_with(&[1, 2, 3]);
        let out = l.on_ack([3, 1].into_iter());
        assert_eq!(out.largest_newly_acked, Some((3, ms(3))));
        assert_eq!(out.acked_fragments, vec![frag(3), frag(1)]);
        assert!(out.any_new);
        assert_eq!(l.in_flight_len(), 1);
        // Acknowledging again changes nothing.
        let again = l.on_ack([3].into_iter());
        assert!(!again.any_new);
    }

    #[test]
    fn packet_threshold_declares_loss() {
        let mut l = ledger_with(&[1, 2, 3, 4, 5]);
        l.on_ack([5, 4, 3].into_iter());
        // 5 − 1 ≥ 3 and 5 − 2 ≥ 3: both lost even though the time threshold is far away.
        let (lost, next) = l.detect_lost(ms(5), ms(1000), 3);
        assert_eq!(lost.iter().map(|(pn, _)| *pn).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(next, None);
    }

    #[test]
    fn time_threshold_declares_loss_and_reports_the_next_deadline() {
        let mut l = ledger_with(&[1, 2, 3]);
        l.on_ack([3].into_iter());
        let (lost, next) = l.detect_lost(ms(10), ms(9), 3);
        // 1 + 9 ≤ 10: lost. 2 + 9 = 11 > 10: not yet, and 11 ms is when it will be.
        assert_eq!(lost.len(), 1);
        assert_eq!(next, Some(ms(11)));
    }

    #[test]
    fn nothing_is_lost_before_any_ack() {
        let mut l = ledger_with(&[1, 2]);
        assert!(l.detect_lost(ms(1000), ms(1), 1).0.is_empty());
    }

    #[test]
    fn timeout_declares_old_packets_lost() {
        let mut l = ledger_with(&[1, 2, 3]);
        let lost = l.timeout_lost(ms(12), ms(10));
        assert_eq!(lost.iter().map(|(pn, _)| *pn).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(l.oldest_in_flight(), Some(ms(3)));
    }

    #[test]
    fn late_ack_of_a_lost_packet_is_spurious() {
        let mut l = ledger_with(&[1, 2]);
        l.timeout_lost(ms(100), ms(10));
        let out = l.on_ack([1].into_iter());
        assert_eq!(out.spurious, 1);
        assert_eq!(out.spurious_fast, 0, "it was a timeout, not reordering");
        assert_eq!(out.acked_fragments, vec![frag(1)]);
        assert_eq!(out.largest_newly_acked, None, "a lost packet gives no RTT sample");
    }

    #[test]
    fn late_ack_of_a_fast_declared_loss_is_reordering() {
        let mut l = ledger_with(&[1, 2, 3, 4, 5]);
        l.on_ack([5, 4, 3].into_iter());
        l.detect_lost(ms(5), ms(1000), 3);
        let out = l.on_ack([1].into_iter());
        assert_eq!((out.spurious, out.spurious_fast), (1, 1));
    }

    #[test]
    fn lost_memory_is_bounded() {
        let pns: Vec<u64> = (0..LOST_MEMORY_PACKETS as u64 + 10).collect();
        let mut l = ledger_with(&pns);
        l.timeout_lost(Duration::from_secs(100_000), ms(1));
        // The oldest ten were forgotten: their late acks are ignored, not miscounted.
        assert_eq!(l.on_ack([0].into_iter()).spurious, 0);
        assert_eq!(l.on_ack([LOST_MEMORY_PACKETS as u64 + 9].into_iter()).spurious, 1);
    }
}
