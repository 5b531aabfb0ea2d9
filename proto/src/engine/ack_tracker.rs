//! The receiver's side of acknowledgements: which packet numbers arrived, and the ack frames that say so.
//!
//! An **ack bitmap** describes many packets in a few bytes. The frame names the largest packet number received and
//! then one bit per packet below it: bit `i` set means packet `largest − 1 − i` arrived. With packets 100, 99, 97 and
//! 96 received, the ack reads `largest = 100, bitmap = 1011…`: the sender sees at a glance that 98 is missing while
//! the later ones got through. TCP's original cumulative ack could only say "everything up to N"; selective
//! acknowledgement (TCP SACK, QUIC ack ranges) is what lets a sender resend just the hole.
//!
//! Acks travel over the same lossy link as data, so each arrival is reported in several consecutive acks
//! ([`REPORTS_PER_PACKET`]): one lost ack then costs nothing. The bitmap is only as long as the oldest packet that
//! still needs reporting, so a steady conversation's acks stay a few bytes long.

use std::collections::VecDeque;
use std::time::Duration;

use super::frame::MAX_ACK_BITMAP_BYTES;

/// How many acks report each ack-eliciting packet. With 25 % loss on the return path the chance that all four are
/// lost is 0.4 %; the sender's timeout covers that rare case with a retransmission the receiver de-duplicates.
pub const REPORTS_PER_PACKET: u8 = 4;

/// Packet numbers tracked below the largest: exactly those an ack bitmap can describe.
const TRACKED: u64 = (MAX_ACK_BITMAP_BYTES * 8) as u64;

/// Ack-eliciting packets received before an ack is sent at once even when acks may be delayed. Two, as TCP's delayed
/// ack and QUIC both do: it halves the ack traffic of a bulk transfer and keeps the sender's RTT samples fresh.
const ACK_EVERY_PACKETS: u32 = 2;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    received: bool,
    ack_eliciting: bool,
    reports: u8,
}

/// What [`AckTracker::on_packet`] learned about one arriving packet number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// First time seen; `out_of_order` when a larger packet number had already arrived.
    New { out_of_order: bool },
    /// Seen before: a duplicate made by the network (or a replay that the crypto layer did not stop).
    Duplicate,
    /// Too far below the largest to be tracked; its frames are still processed (messages are de-duplicated by id).
    TooOld,
}

/// An ack frame ready to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckFrame {
    pub largest: u64,
    pub ack_delay: Duration,
    pub bitmap: Vec<u8>,
}

/// Received packet numbers and the pending-ack state of one connection.
#[derive(Debug, Clone)]
pub struct AckTracker {
    /// `slots[i]` describes packet number `base + i`.
    slots: VecDeque<Slot>,
    base: u64,
    largest: Option<u64>,
    largest_at: Duration,
    /// Ack-eliciting packets received since the last ack was sent.
    unacked_eliciting: u32,
    /// When the oldest of those arrived.
    first_unacked_at: Option<Duration>,
    /// Something arrived that the sender should hear about at once: a gap, a reordering or a duplicate.
    urgent: bool,
}

impl Default for AckTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl AckTracker {
    pub fn new() -> Self {
        Self {
            slots: VecDeque::new(),
            base: 0,
            largest: None,
            largest_at: Duration::ZERO,
            unacked_eliciting: 0,
            first_unacked_at: None,
            urgent: false,
        }
    }

    /// What the arrival of packet `pn` would be, without recording it.
    pub fn classify(&self, pn: u64) -> Arrival {
        match self.largest {
            None => Arrival::New { out_of_order: false },
            Some(largest) if pn > largest => Arrival::New { out_of_order: false },
            Some(_) if pn < self.base => Arrival::TooOld,
            Some(_) => match self.slots.get((pn - self.base) as usize) {
                Some(slot) if slot.received => Arrival::Duplicate,
                _ => Arrival::New { out_of_order: true },
            },
        }
    }

    /// Whether recording `pn` would slide packets out of the tracked window that no ack has reported yet. Then an ack
    /// must be built first, or those packets would never be acknowledged and the sender would resend them for
    /// nothing: this happens when more than a bitmap's worth of packets arrive between two chances to send.
    pub fn needs_flush_before(&self, pn: u64) -> bool {
        let Some(largest) = self.largest else { return false };
        if pn <= largest || pn - self.base <= TRACKED {
            return false;
        }
        let dropped = ((pn - TRACKED) - self.base).min(self.slots.len() as u64) as usize;
        self.slots.iter().take(dropped).any(|s| s.received && s.ack_eliciting && s.reports == 0)
    }

    /// Records the arrival of packet `pn`: from now on acks report it.
    pub fn on_packet(&mut self, pn: u64, ack_eliciting: bool, now: Duration) -> Arrival {
        let arrival = match self.largest {
            None => {
                // Track the numbers below the first arrival too: packets sent before it may still be on their way.
                self.base = pn.saturating_sub(TRACKED);
                self.slots.clear();
                self.slots.resize((pn - self.base + 1) as usize, Slot::default());
                self.largest = Some(pn);
                self.largest_at = now;
                Arrival::New { out_of_order: false }
            }
            Some(largest) if pn > largest => {
                if pn > largest + 1 {
                    // A gap: packets in between are missing or reordered; tell the sender promptly.
                    self.urgent = true;
                }
                let offset = pn - self.base;
                if offset > TRACKED {
                    // Slide the window: forget packets that no bitmap could describe any more.
                    let new_base = pn - TRACKED;
                    let drop = (new_base - self.base).min(self.slots.len() as u64);
                    self.slots.drain(..drop as usize);
                    self.base = new_base;
                }
                while (self.slots.len() as u64) <= pn - self.base {
                    self.slots.push_back(Slot::default());
                }
                self.largest = Some(pn);
                self.largest_at = now;
                Arrival::New { out_of_order: false }
            }
            Some(_) if pn < self.base => Arrival::TooOld,
            Some(_) => {
                let slot = &self.slots[(pn - self.base) as usize];
                if slot.received { Arrival::Duplicate } else { Arrival::New { out_of_order: true } }
            }
        };
        if arrival != Arrival::TooOld {
            if let Some(slot) = self.slots.get_mut((pn - self.base) as usize) {
                slot.received = true;
                slot.ack_eliciting |= ack_eliciting;
            }
        }
        if matches!(arrival, Arrival::New { out_of_order: true } | Arrival::Duplicate) {
            self.urgent = true;
        }
        if ack_eliciting {
            self.unacked_eliciting += 1;
            self.first_unacked_at.get_or_insert(now);
        }
        arrival
    }

    /// When an ack must be sent: `None` when nothing needs acknowledging. With `max_ack_delay` zero every
    /// ack-eliciting packet is acknowledged at the next chance to send.
    pub fn ack_deadline(&self, max_ack_delay: Duration) -> Option<Duration> {
        let first = self.first_unacked_at?;
        if self.urgent || self.unacked_eliciting >= ACK_EVERY_PACKETS || max_ack_delay.is_zero() {
            Some(first)
        } else {
            Some(first + max_ack_delay)
        }
    }

    /// Whether an ack would carry news: used to piggyback acks on data packets even before the deadline.
    pub fn has_news(&self) -> bool {
        self.first_unacked_at.is_some()
    }

    /// Builds the ack frame to send now and marks what it reports.
    pub fn build_ack(&mut self, now: Duration) -> Option<AckFrame> {
        let largest = self.largest?;
        // Find the oldest ack-eliciting packet that still needs reporting; the bitmap reaches down to it.
        let top = (largest - self.base) as usize;
        let mut needed_bits = 0usize;
        for i in 0..top {
            let slot = self.slots[i];
            if slot.received && slot.ack_eliciting && slot.reports < REPORTS_PER_PACKET {
                needed_bits = top - i;
                break;
            }
        }
        let bytes = needed_bits.div_ceil(8).min(MAX_ACK_BITMAP_BYTES);
        let mut bitmap = vec![0u8; bytes];
        for bit in 0..bytes * 8 {
            let Some(i) = top.checked_sub(bit + 1) else { break };
            let slot = &mut self.slots[i];
            if slot.received {
                bitmap[bit / 8] |= 1 << (bit % 8);
                slot.reports = slot.reports.saturating_add(1);
            }
        }
        let top_slot = &mut self.slots[top];
        top_slot.reports = top_slot.reports.saturating_add(1);
        self.unacked_eliciting = 0;
        self.first_unacked_at = None;
        self.urgent = false;
        Some(AckFrame { largest, ack_delay: now.saturating_sub(self.largest_at), bitmap })
    }

    /// The largest packet number received so far.
    pub fn largest(&self) -> Option<u64> {
        self.largest
    }
}

/// Expands an ack frame into the packet numbers it reports, largest first.
pub fn acked_packet_numbers(largest: u64, bitmap: &[u8]) -> impl Iterator<Item = u64> + '_ {
    std::iter::once(largest).chain((0..bitmap.len() * 8).filter_map(move |bit| {
        let set = bitmap[bit / 8] & (1 << (bit % 8)) != 0;
        let pn = largest.checked_sub(bit as u64 + 1)?;
        set.then_some(pn)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::ZERO;

    #[test]
    fn bitmap_marks_the_hole() {
        let mut t = AckTracker::new();
        for pn in [96, 97, 99, 100] {
            t.on_packet(pn, true, T);
        }
        let ack = t.build_ack(T).unwrap();
        assert_eq!(ack.largest, 100);
        // bit 0 = 99 (yes), bit 1 = 98 (no), bit 2 = 97 (yes), bit 3 = 96 (yes).
        assert_eq!(ack.bitmap, vec![0b1101]);
        let acked: Vec<u64> = acked_packet_numbers(ack.largest, &ack.bitmap).collect();
        assert_eq!(acked, vec![100, 99, 97, 96]);
    }

    #[test]
    fn each_packet_is_reported_a_few_times_then_dropped_from_the_bitmap() {
        let mut t = AckTracker::new();
        t.on_packet(1, true, T);
        t.on_packet(2, true, T);
        for _ in 0..REPORTS_PER_PACKET {
            assert_eq!(t.build_ack(T).unwrap().bitmap, vec![1]);
        }
        // Packet 1 has now been reported by every ack that mentioned it; the bitmap shrinks away.
        assert_eq!(t.build_ack(T).unwrap().bitmap, Vec::<u8>::new());
    }

    #[test]
    fn duplicates_and_reordering_are_recognised() {
        let mut t = AckTracker::new();
        assert_eq!(t.on_packet(5, true, T), Arrival::New { out_of_order: false });
        assert_eq!(t.on_packet(7, true, T), Arrival::New { out_of_order: false });
        assert_eq!(t.on_packet(6, true, T), Arrival::New { out_of_order: true });
        assert_eq!(t.on_packet(6, true, T), Arrival::Duplicate);
        assert_eq!(t.on_packet(4, true, T), Arrival::New { out_of_order: true }, "packets before the first count");
        assert_eq!(t.classify(6), Arrival::Duplicate);
        assert_eq!(t.classify(8), Arrival::New { out_of_order: false });
        t.on_packet(1000, true, T);
        assert_eq!(t.classify(3), Arrival::TooOld);
    }

    #[test]
    fn a_big_jump_forgets_old_packets_without_overflow() {
        let mut t = AckTracker::new();
        t.on_packet(0, true, T);
        t.on_packet(u64::MAX - 1, true, T);
        let mut from_zero = AckTracker::new();
        from_zero.on_packet(0, true, T);
        assert_eq!(from_zero.on_packet(u64::MAX, true, T), Arrival::New { out_of_order: false });
        assert_eq!(t.on_packet(5, true, T), Arrival::TooOld);
        let ack = t.build_ack(T).unwrap();
        assert_eq!(ack.largest, u64::MAX - 1);
        assert!(ack.bitmap.is_empty());
        assert_eq!(t.on_packet(u64::MAX, true, T), Arrival::New { out_of_order: false });
    }

    #[test]
    fn a_burst_longer_than_the_bitmap_asks_for_an_ack_before_forgetting() {
        let mut t = AckTracker::new();
        for pn in 0..=TRACKED {
            assert!(!t.needs_flush_before(pn));
            t.on_packet(pn, true, T);
        }
        // Packet 0 would leave the window unreported.
        assert!(t.needs_flush_before(TRACKED + 1));
        let ack = t.build_ack(T).unwrap();
        assert_eq!(acked_packet_numbers(ack.largest, &ack.bitmap).last(), Some(0));
        assert!(!t.needs_flush_before(TRACKED + 1), "once reported, it may be forgotten");
    }

    #[test]
    fn bitmap_never_exceeds_its_maximum() {
        let mut t = AckTracker::new();
        for pn in 0..2000 {
            if pn % 3 != 0 {
                t.on_packet(pn, true, T);
            }
        }
        let ack = t.build_ack(T).unwrap();
        assert!(ack.bitmap.len() <= MAX_ACK_BITMAP_BYTES);
    }

    #[test]
    fn ack_deadline_waits_only_when_allowed() {
        let mut t = AckTracker::new();
        assert_eq!(t.ack_deadline(Duration::from_millis(5)), None);
        t.on_packet(1, true, Duration::from_millis(10));
        assert_eq!(t.ack_deadline(Duration::from_millis(5)), Some(Duration::from_millis(15)));
        assert_eq!(t.ack_deadline(Duration::ZERO), Some(Duration::from_millis(10)));
        t.on_packet(2, true, Duration::from_millis(11));
        assert_eq!(t.ack_deadline(Duration::from_millis(5)), Some(Duration::from_millis(10)));
        t.build_ack(Duration::from_millis(11));
        assert_eq!(t.ack_deadline(Duration::from_millis(5)), None);
    }

    #[test]
    fn packets_that_ask_no_ack_are_recorded_but_not_acked_for_themselves() {
        let mut t = AckTracker::new();
        t.on_packet(1, false, T);
        assert_eq!(t.ack_deadline(Duration::ZERO), None);
        assert!(!t.has_news());
    }

    #[test]
    fn ack_delay_is_measured_from_the_largest_arrival() {
        let mut t = AckTracker::new();
        t.on_packet(3, true, Duration::from_millis(4));
        let ack = t.build_ack(Duration::from_millis(7)).unwrap();
        assert_eq!(ack.ack_delay, Duration::from_millis(3));
    }

    #[test]
    fn bitmap_expansion_stops_at_packet_zero() {
        let got: Vec<u64> = acked_packet_numbers(2, &[0xff]).collect();
        assert_eq!(got, vec![2, 1, 0]);
    }
}
