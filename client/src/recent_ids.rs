//! Remembering which message ids were already shown, so each message is reported once.
//!
//! A message can reach the client more than once: pushed over UDP and then again in the history sync after a
//! reconnect, or pushed over TCP while the same page of history is in flight. Message ids are global and only grow,
//! but messages of different conversations travel on different engine streams and may overtake each other, so "id
//! not larger than the largest seen" does not mean "seen". The client keeps the ids of the last
//! [`RECENT_IDS_CAPACITY`] messages instead: a bounded set, oldest forgotten first.

use std::collections::{HashSet, VecDeque};

/// Message ids remembered for de-duplication. A duplicate can only come from a short window (a reconnect's resync
/// or a race between a push and a page), so the last 8192 messages cover it many times over at 16 bytes an entry.
pub const RECENT_IDS_CAPACITY: usize = 8192;

/// A bounded set of recently seen message ids.
#[derive(Debug, Clone)]
pub struct RecentIds {
    set: HashSet<u64>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl Default for RecentIds {
    fn default() -> Self {
        RecentIds::with_capacity(RECENT_IDS_CAPACITY)
    }
}

impl RecentIds {
    /// A set remembering at most `capacity` ids (at least one).
    pub fn with_capacity(capacity: usize) -> RecentIds {
        let capacity = capacity.max(1);
        RecentIds { set: HashSet::with_capacity(capacity), order: VecDeque::with_capacity(capacity), capacity }
    }

    /// Records `id`; true if it was not remembered yet (so the message is new).
    pub fn insert(&mut self, id: u64) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        self.order.push_back(id);
        true
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused() {
        let mut ids = RecentIds::default();
        assert!(ids.is_empty());
        assert!(ids.insert(5));
        assert!(ids.insert(3), "out of order is still new");
        assert!(!ids.insert(5));
        assert_eq!(ids.len(), 2);
    }

    #[test]
    fn the_oldest_is_forgotten_first() {
        let mut ids = RecentIds::with_capacity(2);
        assert!(ids.insert(1));
        assert!(ids.insert(2));
        assert!(ids.insert(3));
        assert_eq!(ids.len(), 2);
        assert!(ids.insert(1), "1 was forgotten");
        assert!(!ids.insert(3));
        assert_eq!(RecentIds::with_capacity(0).capacity, 1);
    }
}
