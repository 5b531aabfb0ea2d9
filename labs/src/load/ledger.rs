//! Which accepted message reached how many of the bots that should have got it.
//!
//! The sending bot learns the server's message id from the acceptance, the receiving bots from the pushed message,
//! and the two race: on a busy server a recipient often sees the message before its sender sees the
//! acknowledgement. So either side may open a message's entry: the sender says how many deliveries to expect, each
//! recipient marks itself in a bit set (a second mark by the same bot is a duplicate, which the client library
//! promises never to hand over). A message is *complete* once every expected delivery happened.
//!
//! The ledger is sharded by message id so that hundreds of receiving bots rarely wait for one another's lock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Independent locks. Message ids are consecutive, so `id % SHARDS` spreads them evenly; 64 shards keep collisions
/// rare with a few hundred receiving tasks on a few cores, at a cost of a few kilobytes.
const SHARDS: usize = 64;

/// One message's deliveries.
#[derive(Debug, Default)]
struct Entry {
    /// Deliveries expected, once the sender knows the message was accepted.
    expected: Option<u32>,
    /// Distinct recipients seen so far.
    received: u32,
    /// One bit per bot index: who got it.
    recipients: Vec<u64>,
}

/// What a delivery was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The first delivery of this message to this bot.
    First,
    /// This bot had it already.
    Duplicate,
}

/// The totals at the end of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Accepted messages every expected recipient got.
    pub complete: u64,
    /// Accepted messages some expected recipient did not get.
    pub incomplete: u64,
    /// Deliveries that should have happened and did not.
    pub missing_deliveries: u64,
    /// Deliveries of messages whose sender never learned that they were accepted (its `send` failed, for example
    /// with a timeout, after the server had stored the message).
    pub unclaimed_deliveries: u64,
}

/// The shared delivery ledger of one run.
#[derive(Debug)]
pub struct Ledger {
    shards: Vec<Mutex<HashMap<u64, Entry>>>,
    /// Bits per recipient set, in 64-bit words.
    words: usize,
    complete: AtomicU64,
}

impl Ledger {
    /// A ledger for bots numbered `0..bots`.
    pub fn new(bots: usize) -> Ledger {
        Ledger {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            words: bots.div_ceil(64),
            complete: AtomicU64::new(0),
        }
    }

    fn with_entry<T>(&self, id: u64, f: impl FnOnce(&mut Entry) -> T) -> T {
        let shard = &self.shards[(id % SHARDS as u64) as usize];
        // A panic while holding the lock cannot leave an entry half-written in a way that matters for counting, so
        // a poisoned lock is used as it is.
        let mut map = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(map.entry(id).or_default())
    }

    /// The sender learned that message `id` was accepted and expects `expected` deliveries.
    pub fn accepted(&self, id: u64, expected: u32) {
        let now_complete = self.with_entry(id, |entry| {
            entry.expected = Some(expected);
            entry.received >= expected
        });
        if now_complete {
            self.complete.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Bot `recipient` received message `id`.
    pub fn delivered(&self, id: u64, recipient: usize) -> Delivery {
        let (delivery, now_complete) = self.with_entry(id, |entry| {
            if entry.recipients.is_empty() {
                entry.recipients = vec![0; self.words];
            }
            let (word, bit) = (recipient / 64, 1u64 << (recipient % 64));
            match entry.recipients.get_mut(word) {
                Some(bits) if *bits & bit != 0 => (Delivery::Duplicate, false),
                Some(bits) => {
                    *bits |= bit;
                    entry.received += 1;
                    (Delivery::First, entry.expected == Some(entry.received))
                }
                // A bot number beyond the ledger's size is a caller's bug; count it without a bit.
                None => {
                    entry.received += 1;
                    (Delivery::First, entry.expected == Some(entry.received))
                }
            }
        });
        if now_complete {
            self.complete.fetch_add(1, Ordering::Relaxed);
        }
        delivery
    }

    /// Accepted messages that every expected recipient got, so far.
    pub fn complete(&self) -> u64 {
        self.complete.load(Ordering::Relaxed)
    }

    /// The totals, once the run is over.
    pub fn totals(&self) -> Totals {
        let mut totals = Totals::default();
        for shard in &self.shards {
            let map = shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for entry in map.values() {
                match entry.expected {
                    Some(expected) if entry.received >= expected => totals.complete += 1,
                    Some(expected) => {
                        totals.incomplete += 1;
                        totals.missing_deliveries += u64::from(expected - entry.received);
                    }
                    None => totals.unclaimed_deliveries += u64::from(entry.received),
                }
            }
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_side_may_come_first() {
        let ledger = Ledger::new(3);
        ledger.accepted(1, 2);
        assert_eq!(ledger.delivered(1, 1), Delivery::First);
        assert_eq!(ledger.complete(), 0);
        assert_eq!(ledger.delivered(1, 2), Delivery::First);
        assert_eq!(ledger.complete(), 1);

        assert_eq!(ledger.delivered(2, 0), Delivery::First, "the recipient before the acceptance");
        assert_eq!(ledger.complete(), 1);
        ledger.accepted(2, 1);
        assert_eq!(ledger.complete(), 2);
        assert_eq!(ledger.totals(), Totals { complete: 2, ..Totals::default() });
    }

    #[test]
    fn a_second_delivery_to_the_same_bot_is_a_duplicate_and_completes_nothing() {
        let ledger = Ledger::new(130);
        ledger.accepted(7, 2);
        assert_eq!(ledger.delivered(7, 129), Delivery::First);
        assert_eq!(ledger.delivered(7, 129), Delivery::Duplicate);
        assert_eq!(ledger.complete(), 0);
        let totals = ledger.totals();
        assert_eq!((totals.incomplete, totals.missing_deliveries), (1, 1));
    }

    #[test]
    fn deliveries_of_unclaimed_messages_are_counted_apart() {
        let ledger = Ledger::new(2);
        ledger.delivered(9, 0);
        ledger.delivered(9, 1);
        ledger.accepted(10, 1);
        let totals = ledger.totals();
        assert_eq!(totals, Totals { complete: 0, incomplete: 1, missing_deliveries: 1, unclaimed_deliveries: 2 });
    }
}
