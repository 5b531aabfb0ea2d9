//! Every session's next deadline in one min-heap.
//!
//! Each datagram endpoint wants to be woken at some time: to retransmit, to send a delayed acknowledgement, to
//! ping, or to notice that the peer went silent ([`Endpoint::poll_timeout`]). With thousands of sessions, one
//! tokio timer each would work, but the hub would still have to find out *which* session a timer belongs to. A
//! binary heap ordered by deadline gives the earliest deadline in O(1) and inserts in O(log n), so the hub sleeps
//! until exactly one instant: the smallest deadline of all.
//!
//! Deadlines move all the time (every acknowledgement moves the retransmission timer), and removing an arbitrary
//! entry from a binary heap is expensive. So entries are never removed; a session remembers the one deadline it
//! currently wants ([`Session::timer_at`]) and a popped entry that no longer matches is simply ignored (*lazy
//! deletion*). When stale entries outnumber live sessions by [`TIMER_HEAP_SLACK`], the heap is rebuilt from the
//! sessions, which keeps its size proportional to the number of sessions.
//!
//! [`Endpoint::poll_timeout`]: chatlab_proto::endpoint::Endpoint::poll_timeout
//! [`Session::timer_at`]: super::session::Session::timer_at

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::limits::TIMER_HEAP_SLACK;

/// Entries the heap may hold regardless of the session count before a rebuild is considered; rebuilding a tiny heap
/// would only cost time.
const MIN_REBUILD_LEN: usize = 1024;

/// A deadline for one session: `(when, connection id, serial)`.
pub type TimerEntry = (Duration, u64, u64);

/// The min-heap of session deadlines.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<TimerEntry>>,
}

impl Timers {
    /// Wake session `(cid, serial)` at `at`.
    pub fn schedule(&mut self, at: Duration, cid: u64, serial: u64) {
        self.heap.push(Reverse((at, cid, serial)));
    }

    /// The earliest deadline, stale or not.
    pub fn next(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Removes and returns every entry due at `now`.
    pub fn pop_due(&mut self, now: Duration) -> Vec<TimerEntry> {
        let mut due = Vec::new();
        while let Some(Reverse(entry)) = self.heap.peek() {
            if entry.0 > now {
                break;
            }
            due.push(*entry);
            self.heap.pop();
        }
        due
    }

    /// Entries held, stale ones included.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the heap is empty.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Whether stale entries have piled up enough to rebuild, given `live` sessions.
    pub fn needs_rebuild(&self, live: usize) -> bool {
        self.heap.len() > MIN_REBUILD_LEN.max(live.saturating_mul(TIMER_HEAP_SLACK))
    }

    /// Replaces the heap by the sessions' current deadlines.
    pub fn rebuild(&mut self, live: impl Iterator<Item = TimerEntry>) {
        self.heap = live.map(Reverse).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let mut t = Timers::default();
        t.schedule(30 * MS, 3, 1);
        t.schedule(10 * MS, 1, 1);
        t.schedule(20 * MS, 2, 1);
        assert_eq!(t.next(), Some(10 * MS));
        assert!(t.pop_due(5 * MS).is_empty());
        assert_eq!(t.pop_due(20 * MS), vec![(10 * MS, 1, 1), (20 * MS, 2, 1)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_due(Duration::MAX), vec![(30 * MS, 3, 1)]);
        assert!(t.is_empty() && t.next().is_none());
    }

    #[test]
    fn rebuild_keeps_only_live_deadlines() {
        let mut t = Timers::default();
        for n in 0..(MIN_REBUILD_LEN as u64 + 1) {
            t.schedule(Duration::from_millis(n), 1, 1);
        }
        assert!(t.needs_rebuild(1));
        assert!(!t.needs_rebuild(MIN_REBUILD_LEN));
        t.rebuild([(5 * MS, 1, 1)].into_iter());
        assert_eq!(t.len(), 1);
        assert!(!t.needs_rebuild(1));
    }
}
