//! Messages waiting to be sent or acknowledged, cut into fragments.
//!
//! A message larger than one datagram's room is split into fragments of at most `fragment_capacity` bytes; each
//! fragment is sent, acknowledged and, when lost, resent on its own, so a loss costs one fragment, not the message.
//! The message is acknowledged when its last fragment is.
//!
//! Retransmissions go out before new messages: a hole holds up every later message of its conversation at the
//! receiver, so filling it first shortens head-of-line blocking.
//!
//! The number of unacknowledged messages is the *send window*. When it is full, `send` refuses (back-pressure):
//! the application learns at once that the peer or the path cannot keep up, instead of the engine hoarding an
//! ever-growing queue.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::sent::FragmentRef;

#[derive(Debug)]
struct OutMessage {
    data: Vec<u8>,
    count: u16,
    acked: Vec<bool>,
    acked_count: u16,
    /// The packet that carried the latest transmission of each fragment; only its loss triggers another.
    last_pn: Vec<Option<u64>>,
    queued_at: Duration,
}

/// A message whose every fragment has been acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckedMessage {
    pub stream: u32,
    pub seq: u64,
    /// Time from `send` to the acknowledgement of its last fragment.
    pub latency: Duration,
}

/// The send side of the engine's message state.
#[derive(Debug)]
pub struct Outgoing {
    messages: HashMap<(u32, u64), OutMessage>,
    next_seq: HashMap<u32, u64>,
    fresh: VecDeque<FragmentRef>,
    retransmit: VecDeque<FragmentRef>,
    fragment_capacity: usize,
}

impl Outgoing {
    pub fn new(fragment_capacity: usize) -> Self {
        Self {
            messages: HashMap::new(),
            next_seq: HashMap::new(),
            fresh: VecDeque::new(),
            retransmit: VecDeque::new(),
            fragment_capacity: fragment_capacity.max(1),
        }
    }

    /// Queues a message on `stream` and returns its sequence number there. The caller has checked its size.
    pub fn push(&mut self, stream: u32, data: Vec<u8>, now: Duration) -> u64 {
        let seq_slot = self.next_seq.entry(stream).or_insert(0);
        let seq = *seq_slot;
        *seq_slot += 1;
        let count = data.len().div_ceil(self.fragment_capacity).max(1);
        let count = u16::try_from(count).unwrap_or(u16::MAX);
        for index in 0..count {
            self.fresh.push_back(FragmentRef { stream, seq, index });
        }
        self.messages.insert(
            (stream, seq),
            OutMessage {
                data,
                count,
                acked: vec![false; usize::from(count)],
                acked_count: 0,
                last_pn: vec![None; usize::from(count)],
                queued_at: now,
            },
        );
        seq
    }

    /// Messages not yet fully acknowledged.
    pub fn in_flight(&self) -> usize {
        self.messages.len()
    }

    /// Whether any fragment waits to be sent.
    pub fn has_pending(&mut self) -> bool {
        self.skip_stale();
        !self.retransmit.is_empty() || !self.fresh.is_empty()
    }

    fn is_stale(&self, f: &FragmentRef) -> bool {
        match self.messages.get(&(f.stream, f.seq)) {
            Some(m) => m.acked.get(usize::from(f.index)).copied().unwrap_or(true),
            None => true,
        }
    }

    fn skip_stale(&mut self) {
        while self.retransmit.front().is_some_and(|f| self.is_stale(f)) {
            self.retransmit.pop_front();
        }
        while self.fresh.front().is_some_and(|f| self.is_stale(f)) {
            self.fresh.pop_front();
        }
    }

    /// The next fragment to send if its data fits in `room` bytes: `(fragment, count, data, is_retransmission)`.
    pub fn peek(&mut self, room: usize) -> Option<(FragmentRef, u16, &[u8], bool)> {
        self.skip_stale();
        let (frag, retransmission) = match self.retransmit.front() {
            Some(f) => (*f, true),
            None => (*self.fresh.front()?, false),
        };
        let message = self.messages.get(&(frag.stream, frag.seq))?;
        let start = usize::from(frag.index) * self.fragment_capacity;
        let end = (start + self.fragment_capacity).min(message.data.len());
        let data = message.data.get(start..end).unwrap_or(&[]);
        (data.len() <= room).then_some((frag, message.count, data, retransmission))
    }

    /// Records that the fragment returned by [`peek`](Self::peek) went out in packet `pn`.
    pub fn consume(&mut self, retransmission: bool, pn: u64) {
        let taken = if retransmission { self.retransmit.pop_front() } else { self.fresh.pop_front() };
        if let Some(f) = taken {
            if let Some(m) = self.messages.get_mut(&(f.stream, f.seq)) {
                if let Some(slot) = m.last_pn.get_mut(usize::from(f.index)) {
                    *slot = Some(pn);
                }
            }
        }
    }

    /// Marks a fragment acknowledged; returns the message when this completed it.
    pub fn on_acked(&mut self, f: FragmentRef, now: Duration) -> Option<AckedMessage> {
        let key = (f.stream, f.seq);
        let m = self.messages.get_mut(&key)?;
        let slot = m.acked.get_mut(usize::from(f.index))?;
        if *slot {
            return None;
        }
        *slot = true;
        m.acked_count += 1;
        if m.acked_count < m.count {
            return None;
        }
        let latency = now.saturating_sub(m.queued_at);
        self.messages.remove(&key);
        Some(AckedMessage { stream: f.stream, seq: f.seq, latency })
    }

    /// A packet carrying `f` was declared lost; queues the fragment again if that packet was its latest
    /// transmission and it is still unacknowledged. Returns whether it was queued.
    pub fn on_lost(&mut self, f: FragmentRef, pn: u64) -> bool {
        let Some(m) = self.messages.get(&(f.stream, f.seq)) else { return false };
        let index = usize::from(f.index);
        let latest = m.last_pn.get(index).copied().flatten() == Some(pn);
        let acked = m.acked.get(index).copied().unwrap_or(true);
        if latest && !acked {
            self.retransmit.push_back(f);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::ZERO;

    #[test]
    fn large_messages_are_cut_into_fragments() {
        let mut o = Outgoing::new(10);
        let seq = o.push(3, (0..25).collect(), T);
        assert_eq!(seq, 0);
        let mut pieces = Vec::new();
        while let Some((f, count, data, retx)) = o.peek(100) {
            assert_eq!(count, 3);
            assert!(!retx);
            pieces.push((f.index, data.to_vec()));
            o.consume(false, u64::from(f.index));
        }
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[2].1, vec![20, 21, 22, 23, 24]);
    }

    #[test]
    fn empty_message_is_one_empty_fragment() {
        let mut o = Outgoing::new(10);
        o.push(0, Vec::new(), T);
        let (_, count, data, _) = o.peek(0).unwrap();
        assert_eq!((count, data.len()), (1, 0));
    }

    #[test]
    fn sequence_numbers_are_per_stream() {
        let mut o = Outgoing::new(10);
        assert_eq!(o.push(1, vec![1], T), 0);
        assert_eq!(o.push(1, vec![1], T), 1);
        assert_eq!(o.push(2, vec![1], T), 0);
        assert_eq!(o.in_flight(), 3);
    }

    #[test]
    fn a_fragment_that_does_not_fit_waits() {
        let mut o = Outgoing::new(10);
        o.push(0, vec![0; 10], T);
        assert!(o.peek(9).is_none());
        assert!(o.peek(10).is_some());
    }

    #[test]
    fn message_completes_when_all_fragments_are_acked() {
        let mut o = Outgoing::new(10);
        o.push(0, vec![0; 15], Duration::from_millis(1));
        let a = FragmentRef { stream: 0, seq: 0, index: 0 };
        let b = FragmentRef { stream: 0, seq: 0, index: 1 };
        assert_eq!(o.on_acked(a, Duration::from_millis(5)), None);
        assert_eq!(o.on_acked(a, Duration::from_millis(5)), None, "a duplicate ack counts once");
        let done = o.on_acked(b, Duration::from_millis(9)).unwrap();
        assert_eq!(done.latency, Duration::from_millis(8));
        assert_eq!(o.in_flight(), 0);
        assert!(!o.has_pending(), "acked fragments still queued are skipped");
    }

    #[test]
    fn only_the_latest_transmission_triggers_a_retransmission() {
        let mut o = Outgoing::new(10);
        o.push(0, vec![1], T);
        let (f, _, _, _) = o.peek(10).unwrap();
        o.consume(false, 7);
        assert!(o.on_lost(f, 7));
        let (again, _, _, retx) = o.peek(10).unwrap();
        assert!(retx);
        assert_eq!(again, f);
        o.consume(true, 9);
        // The old packet 7 is declared lost again (e.g. twice by two detectors): ignored, 9 is the live copy.
        assert!(!o.on_lost(f, 7));
        assert!(o.on_lost(f, 9));
    }

    #[test]
    fn retransmissions_go_first() {
        let mut o = Outgoing::new(10);
        o.push(0, vec![1], T);
        o.consume(false, 1);
        o.push(0, vec![2], T);
        o.on_lost(FragmentRef { stream: 0, seq: 0, index: 0 }, 1);
        let (f, _, _, retx) = o.peek(10).unwrap();
        assert_eq!((f.seq, retx), (0, true));
    }

    #[test]
    fn lost_after_ack_is_not_resent() {
        let mut o = Outgoing::new(10);
        o.push(0, vec![1], T);
        let f = FragmentRef { stream: 0, seq: 0, index: 0 };
        o.consume(false, 1);
        o.on_acked(f, T);
        assert!(!o.on_lost(f, 1));
    }
}
