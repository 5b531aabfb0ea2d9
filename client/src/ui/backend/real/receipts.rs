//! Keeping "delivered" after "acknowledged" when the two travel different roads.
//!
//! A message's acknowledgement and its delivery receipt reach the window by two paths: the acknowledgement is the
//! answer to the send request (a task waiting on [`ClientHandle::send`](crate::ClientHandle::send)), the receipt is
//! an event on the core's event stream. On the wire the receipt always comes later (the peer must get the message
//! first), but the two tasks that forward them are scheduled independently, so in rare cases the receipt could
//! reach the window first. The window only knows a message by its server id once the acknowledgement arrived, so it
//! would drop such a receipt and the tick would stay at "acknowledged" for ever.
//!
//! [`ReceiptOrder`] closes that gap: a receipt for an id whose acknowledgement has not been forwarded yet is parked,
//! and released right after the acknowledgement. Receipts for messages this session never sent (this user's other
//! sessions) are parked too and never released, so the parking lot is bounded: past [`MAX_PARKED_RECEIPTS`] the
//! oldest are forgotten.

use std::collections::{HashSet, VecDeque};

use chatlab_proto::chat::Username;

/// Most receipts kept waiting for their acknowledgement. A receipt overtakes its acknowledgement only by a task
/// switch, so a handful would do; the bound is generous because receipts for other sessions' messages also land
/// here and must push out only each other.
pub const MAX_PARKED_RECEIPTS: usize = 1024;

/// Most acknowledged ids remembered. A receipt for an older message (a peer coming online much later) is forwarded
/// as if unknown: parked, and forgotten when the lot overflows. The window shows its message as acknowledged either
/// way; only the "delivered" tick of very old messages is lost.
pub const MAX_ACKNOWLEDGED_IDS: usize = 4096;

/// Which receipts may be forwarded now. See the module docs.
#[derive(Debug, Default)]
pub struct ReceiptOrder {
    acknowledged: HashSet<u64>,
    acknowledged_order: VecDeque<u64>,
    parked: VecDeque<(u64, Username)>,
}

impl ReceiptOrder {
    /// The acknowledgement of message `id` was forwarded. Returns the receipts that waited for it, in arrival order.
    pub fn acknowledged(&mut self, id: u64) -> Vec<Username> {
        if self.acknowledged.insert(id) {
            self.acknowledged_order.push_back(id);
            if self.acknowledged_order.len() > MAX_ACKNOWLEDGED_IDS
                && let Some(oldest) = self.acknowledged_order.pop_front()
            {
                self.acknowledged.remove(&oldest);
            }
        }
        let (released, kept): (Vec<_>, Vec<_>) = self.parked.drain(..).partition(|(parked, _)| *parked == id);
        self.parked = kept.into();
        released.into_iter().map(|(_, to)| to).collect()
    }

    /// A receipt for message `id` arrived. Returns whether to forward it now; otherwise it is parked.
    pub fn receipt(&mut self, id: u64, to: Username) -> bool {
        if self.acknowledged.contains(&id) {
            return true;
        }
        if self.parked.len() == MAX_PARKED_RECEIPTS {
            self.parked.pop_front();
        }
        self.parked.push_back((id, to));
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Username {
        Username::parse(raw).unwrap()
    }

    #[test]
    fn a_receipt_after_its_acknowledgement_goes_through() {
        let mut order = ReceiptOrder::default();
        assert!(order.acknowledged(7).is_empty());
        assert!(order.receipt(7, name("bob")));
    }

    #[test]
    fn an_early_receipt_waits_for_its_acknowledgement() {
        let mut order = ReceiptOrder::default();
        assert!(!order.receipt(7, name("bob")));
        assert!(!order.receipt(8, name("cy")));
        assert!(!order.receipt(7, name("dee")));
        assert_eq!(order.acknowledged(7), vec![name("bob"), name("dee")]);
        assert_eq!(order.acknowledged(8), vec![name("cy")]);
        assert!(order.acknowledged(9).is_empty());
    }

    #[test]
    fn the_parking_lot_is_bounded() {
        let mut order = ReceiptOrder::default();
        for id in 0..(MAX_PARKED_RECEIPTS as u64 + 10) {
            order.receipt(id, name("bob"));
        }
        assert_eq!(order.parked.len(), MAX_PARKED_RECEIPTS);
        assert!(order.acknowledged(0).is_empty(), "the oldest were forgotten");
        assert_eq!(order.acknowledged(MAX_PARKED_RECEIPTS as u64 + 9), vec![name("bob")]);
    }

    #[test]
    fn remembered_acknowledgements_are_bounded() {
        let mut order = ReceiptOrder::default();
        for id in 0..(MAX_ACKNOWLEDGED_IDS as u64 + 1) {
            order.acknowledged(id);
        }
        assert_eq!(order.acknowledged.len(), MAX_ACKNOWLEDGED_IDS);
        assert!(!order.receipt(0, name("bob")), "the oldest id was forgotten");
        assert!(order.receipt(1, name("bob")));
    }
}
