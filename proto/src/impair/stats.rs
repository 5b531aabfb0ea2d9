//! What a link did, counted.
//!
//! The counters let a lab compare what the network did with what the protocol *thinks* it did: if the link dropped
//! 500 packets and the sender retransmitted 650 messages, 150 retransmissions were spurious, caused by reordering
//! or by a timeout that fired too early. They are plain `u64` counters, cheap enough to bump on every packet.
//!
//! Packets are conserved. Every offered packet is either dropped (for exactly one reason), still in flight, or
//! delivered, and each duplicate adds one packet:
//!
//! ```text
//! delivered + in_flight = offered - dropped_loss - dropped_mtu - dropped_queue + duplicated
//! ```

use serde::{Deserialize, Serialize};

/// Counters of one [`Link`](super::Link), all since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    /// Packets given to [`Link::send`](super::Link::send).
    pub offered: u64,
    /// Packets handed out by [`Link::poll`](super::Link::poll), duplicates included.
    pub delivered: u64,
    /// Packets lost by the loss model.
    pub dropped_loss: u64,
    /// Packets dropped for being longer than the MTU.
    pub dropped_mtu: u64,
    /// Packets tail-dropped because the bottleneck queue was full.
    pub dropped_queue: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Copies that had a bit flipped.
    pub corrupted: u64,
    /// Copies held back by `reorder_delay`.
    pub reordered: u64,
    /// Delivered packets that arrived after a packet offered later than them had already been delivered: the
    /// reordering a receiver actually sees, whether it came from `reorder`, from jitter or from a duplicate.
    pub delivered_out_of_order: u64,
    /// Bytes given to [`Link::send`](super::Link::send).
    pub bytes_offered: u64,
    /// Bytes handed out by [`Link::poll`](super::Link::poll), duplicates included.
    pub bytes_delivered: u64,
}

impl LinkStats {
    /// Packets dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_loss.saturating_add(self.dropped_mtu).saturating_add(self.dropped_queue)
    }

    /// Packets the link has accepted but not yet delivered, from the conservation law in the
    /// [module documentation](self).
    pub fn in_flight(&self) -> u64 {
        self.offered.saturating_add(self.duplicated).saturating_sub(self.dropped()).saturating_sub(self.delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_and_in_flight_follow_conservation() {
        let stats = LinkStats {
            offered: 100,
            delivered: 80,
            dropped_loss: 10,
            dropped_mtu: 3,
            dropped_queue: 2,
            duplicated: 5,
            ..LinkStats::default()
        };
        assert_eq!(stats.dropped(), 15);
        assert_eq!(stats.in_flight(), 10);
        assert_eq!(LinkStats::default().in_flight(), 0);
    }
}
