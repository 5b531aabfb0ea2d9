//! Reassembly, de-duplication and per-conversation ordering of received messages.
//!
//! Every message is named by `(stream, seq)`: the conversation it belongs to and its place in that conversation.
//! That name is what makes retransmission safe. The network may deliver a fragment twice (a duplicated packet, or a
//! retransmission whose original was only late), and the receiver keeps just enough state to recognise it:
//! everything below `next_seq` has been handed over, and the few messages above it that arrived early are listed.
//!
//! Ordering is a choice ([`Ordering`]):
//!
//! - **in order**: a message that completes before an earlier one of its conversation is *held back* until the gap
//!   fills. That is what TCP does to a byte stream, and the wait it causes is *head-of-line blocking*; the engine
//!   measures it per message so a class can see it.
//! - **unordered**: each message is handed over as it completes; the chat view places it by its id.
//!
//! Memory is bounded: fragments of incomplete messages and held-back messages together never exceed
//! [`MAX_BUFFERED_BYTES`], and a conversation never runs more than the receive window ahead. The one exception is
//! the next expected message of a conversation, which is always accepted: refusing it could stall the conversation
//! forever, and it leaves the buffer as soon as it completes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use super::config::Ordering;

/// Bytes of incomplete and held-back messages one connection may buffer: 4 MiB, hundreds of maximum-size messages,
/// far more than an honest sender's window can put in flight at chat rates, small enough that a server with hundreds
/// of sessions cannot be made to buffer gigabytes.
pub const MAX_BUFFERED_BYTES: usize = 4 << 20;

/// Conversations one connection may open towards this side. Each costs a few dozen bytes for good (its `next_seq`
/// must be remembered to recognise duplicates); 65 536 conversations is more users than any classroom has.
pub const MAX_STREAMS: usize = 65_536;

/// A message ready for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub stream: u32,
    pub seq: u64,
    pub data: Vec<u8>,
    /// How long the complete message waited behind an earlier one (zero when it was not held back).
    pub waited: Duration,
}

/// What became of one received fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentOutcome {
    /// Stored; its message is not complete yet (or complete but held back).
    Stored,
    /// It completed a message; deliveries were appended.
    Completed,
    /// Its message or this very fragment had arrived before.
    Duplicate,
    /// Refused by a limit (receive window, buffer, streams) or inconsistent with earlier fragments.
    Dropped,
}

#[derive(Debug)]
struct Partial {
    count: u16,
    pieces: Vec<Option<Vec<u8>>>,
    have: u16,
    bytes: usize,
}

#[derive(Debug, Default)]
struct RecvStream {
    /// Every message below this has been delivered.
    next_seq: u64,
    /// In-order mode: complete messages waiting for a gap, with the time they completed.
    held: BTreeMap<u64, (Vec<u8>, Duration)>,
    /// Unordered mode: messages above `next_seq` already delivered.
    delivered_ahead: BTreeSet<u64>,
}

impl RecvStream {
    fn already_have(&self, seq: u64) -> bool {
        seq < self.next_seq || self.held.contains_key(&seq) || self.delivered_ahead.contains(&seq)
    }
}

/// The receive side of the engine's message state.
#[derive(Debug)]
pub struct Incoming {
    ordering: Ordering,
    receive_window: u64,
    max_message_bytes: usize,
    partials: HashMap<(u32, u64), Partial>,
    streams: HashMap<u32, RecvStream>,
    buffered_bytes: usize,
}

impl Incoming {
    pub fn new(ordering: Ordering, receive_window: u64, max_message_bytes: usize) -> Self {
        Self {
            ordering,
            receive_window,
            max_message_bytes,
            partials: HashMap::new(),
            streams: HashMap::new(),
            buffered_bytes: 0,
        }
    }

    /// Bytes currently buffered.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Handles one fragment; complete messages ready for the application are appended to `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_fragment(
        &mut self,
        stream: u32,
        seq: u64,
        index: u16,
        count: u16,
        data: &[u8],
        now: Duration,
        out: &mut Vec<Delivery>,
    ) -> FragmentOutcome {
        if !self.streams.contains_key(&stream) && self.streams.len() >= MAX_STREAMS {
            return FragmentOutcome::Dropped;
        }
        let state = self.streams.entry(stream).or_default();
        if state.already_have(seq) {
            return FragmentOutcome::Duplicate;
        }
        let is_next = seq == state.next_seq;
        if seq - state.next_seq >= self.receive_window {
            return FragmentOutcome::Dropped;
        }
        if !is_next && self.buffered_bytes + data.len() > MAX_BUFFERED_BYTES {
            return FragmentOutcome::Dropped;
        }

        let key = (stream, seq);
        let partial = self.partials.entry(key).or_insert_with(|| Partial {
            count,
            pieces: vec![None; usize::from(count)],
            have: 0,
            bytes: 0,
        });
        if partial.count != count {
            // A peer that changes a message's fragment count is broken. Only this fragment is refused: the ones
            // stored before were acknowledged and must not be thrown away.
            return FragmentOutcome::Dropped;
        }
        let Some(slot) = partial.pieces.get_mut(usize::from(index)) else { return FragmentOutcome::Dropped };
        if slot.is_some() {
            return FragmentOutcome::Duplicate;
        }
        if partial.bytes + data.len() > self.max_message_bytes {
            return FragmentOutcome::Dropped;
        }
        *slot = Some(data.to_vec());
        partial.have += 1;
        partial.bytes += data.len();
        self.buffered_bytes += data.len();
        if partial.have < partial.count {
            return FragmentOutcome::Stored;
        }

        let Some(partial) = self.partials.remove(&key) else { return FragmentOutcome::Dropped };
        self.buffered_bytes -= partial.bytes;
        let mut message = Vec::with_capacity(partial.bytes);
        for piece in partial.pieces.into_iter().flatten() {
            message.extend_from_slice(&piece);
        }
        self.complete(stream, seq, message, now, out);
        FragmentOutcome::Completed
    }

    fn complete(&mut self, stream: u32, seq: u64, message: Vec<u8>, now: Duration, out: &mut Vec<Delivery>) {
        let Some(state) = self.streams.get_mut(&stream) else { return };
        match self.ordering {
            Ordering::Unordered => {
                out.push(Delivery { stream, seq, data: message, waited: Duration::ZERO });
                if seq == state.next_seq {
                    state.next_seq += 1;
                    while state.delivered_ahead.remove(&state.next_seq) {
                        state.next_seq += 1;
                    }
                } else {
                    state.delivered_ahead.insert(seq);
                }
            }
            Ordering::InOrder => {
                if seq != state.next_seq {
                    self.buffered_bytes += message.len();
                    state.held.insert(seq, (message, now));
                    return;
                }
                out.push(Delivery { stream, seq, data: message, waited: Duration::ZERO });
                state.next_seq += 1;
                while let Some((data, completed_at)) = state.held.remove(&state.next_seq) {
                    self.buffered_bytes -= data.len();
                    let waited = now.saturating_sub(completed_at);
                    out.push(Delivery { stream, seq: state.next_seq, data, waited });
                    state.next_seq += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn whole(i: &mut Incoming, stream: u32, seq: u64, now: Duration) -> (FragmentOutcome, Vec<Delivery>) {
        let mut out = Vec::new();
        let outcome = i.on_fragment(stream, seq, 0, 1, &seq.to_be_bytes(), now, &mut out);
        (outcome, out)
    }

    #[test]
    fn in_order_holds_back_and_measures_the_wait() {
        let mut i = Incoming::new(Ordering::InOrder, 100, 1000);
        let (o, d) = whole(&mut i, 0, 1, ms(10));
        assert_eq!((o, d.len()), (FragmentOutcome::Completed, 0));
        assert_eq!(i.buffered_bytes(), 8);
        let (_, d) = whole(&mut i, 0, 0, ms(25));
        assert_eq!(d.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(d[1].waited, ms(15));
        assert_eq!(i.buffered_bytes(), 0);
    }

    #[test]
    fn unordered_delivers_at_once_and_still_deduplicates() {
        let mut i = Incoming::new(Ordering::Unordered, 100, 1000);
        assert_eq!(whole(&mut i, 0, 2, ms(1)).1.len(), 1);
        assert_eq!(whole(&mut i, 0, 2, ms(1)).0, FragmentOutcome::Duplicate);
        assert_eq!(whole(&mut i, 0, 0, ms(1)).1.len(), 1);
        assert_eq!(whole(&mut i, 0, 1, ms(1)).1.len(), 1);
        assert_eq!(whole(&mut i, 0, 1, ms(1)).0, FragmentOutcome::Duplicate);
        assert_eq!(whole(&mut i, 0, 0, ms(1)).0, FragmentOutcome::Duplicate);
    }

    #[test]
    fn streams_are_independent() {
        let mut i = Incoming::new(Ordering::InOrder, 100, 1000);
        assert_eq!(whole(&mut i, 0, 1, ms(1)).1.len(), 0);
        assert_eq!(whole(&mut i, 1, 0, ms(1)).1.len(), 1, "a gap on stream 0 does not block stream 1");
    }

    #[test]
    fn fragments_reassemble_in_any_order() {
        let mut i = Incoming::new(Ordering::InOrder, 100, 1000);
        let mut out = Vec::new();
        assert_eq!(i.on_fragment(0, 0, 2, 3, b"c", ms(1), &mut out), FragmentOutcome::Stored);
        assert_eq!(i.on_fragment(0, 0, 0, 3, b"a", ms(1), &mut out), FragmentOutcome::Stored);
        assert_eq!(i.on_fragment(0, 0, 0, 3, b"a", ms(1), &mut out), FragmentOutcome::Duplicate);
        assert_eq!(i.on_fragment(0, 0, 1, 3, b"b", ms(1), &mut out), FragmentOutcome::Completed);
        assert_eq!(out[0].data, b"abc");
        assert_eq!(i.on_fragment(0, 0, 1, 3, b"b", ms(1), &mut out), FragmentOutcome::Duplicate);
    }

    #[test]
    fn inconsistent_fragment_count_refuses_the_fragment_but_keeps_what_was_stored() {
        let mut i = Incoming::new(Ordering::InOrder, 100, 1000);
        let mut out = Vec::new();
        i.on_fragment(0, 0, 0, 3, b"a", ms(1), &mut out);
        assert_eq!(i.on_fragment(0, 0, 1, 2, b"b", ms(1), &mut out), FragmentOutcome::Dropped);
        assert_eq!(i.buffered_bytes(), 1);
        i.on_fragment(0, 0, 1, 3, b"b", ms(1), &mut out);
        assert_eq!(i.on_fragment(0, 0, 2, 3, b"c", ms(1), &mut out), FragmentOutcome::Completed);
        assert_eq!(out[0].data, b"abc");
    }

    #[test]
    fn a_repeated_fragment_of_a_nearly_full_message_is_a_duplicate_not_an_overflow() {
        // Regression: the size check ran before the duplicate check, so a retransmitted fragment of a large
        // message looked like an overflow and the whole (already acknowledged) partial message was thrown away.
        let mut i = Incoming::new(Ordering::InOrder, 100, 10);
        let mut out = Vec::new();
        i.on_fragment(0, 0, 0, 3, b"aaaa", ms(1), &mut out);
        i.on_fragment(0, 0, 1, 3, b"bbbb", ms(1), &mut out);
        assert_eq!(i.on_fragment(0, 0, 1, 3, b"bbbb", ms(1), &mut out), FragmentOutcome::Duplicate);
        assert_eq!(i.on_fragment(0, 0, 2, 3, b"cc", ms(1), &mut out), FragmentOutcome::Completed);
        assert_eq!(out[0].data, b"aaaabbbbcc");
    }

    #[test]
    fn oversized_message_is_dropped() {
        let mut i = Incoming::new(Ordering::InOrder, 100, 4);
        let mut out = Vec::new();
        i.on_fragment(0, 0, 0, 2, b"abc", ms(1), &mut out);
        assert_eq!(i.on_fragment(0, 0, 1, 2, b"de", ms(1), &mut out), FragmentOutcome::Dropped);
    }

    #[test]
    fn messages_beyond_the_receive_window_are_dropped() {
        let mut i = Incoming::new(Ordering::InOrder, 10, 1000);
        assert_eq!(whole(&mut i, 0, 10, ms(1)).0, FragmentOutcome::Dropped);
        assert_eq!(whole(&mut i, 0, 9, ms(1)).0, FragmentOutcome::Completed);
        assert_eq!(whole(&mut i, 0, u64::MAX, ms(1)).0, FragmentOutcome::Dropped);
    }

    #[test]
    fn buffer_limit_refuses_later_messages_but_never_the_next_one() {
        let big = vec![0u8; 1 << 20];
        let mut i = Incoming::new(Ordering::InOrder, 1000, 2 << 20);
        let mut out = Vec::new();
        for seq in 1..=4 {
            assert_eq!(i.on_fragment(0, seq, 0, 1, &big, ms(1), &mut out), FragmentOutcome::Completed);
        }
        assert_eq!(i.on_fragment(0, 5, 0, 1, &big, ms(1), &mut out), FragmentOutcome::Dropped);
        assert_eq!(i.on_fragment(0, 0, 0, 1, &big, ms(1), &mut out), FragmentOutcome::Completed);
        assert_eq!(out.len(), 5);
        assert_eq!(i.buffered_bytes(), 0);
    }

    #[test]
    fn stream_count_is_bounded() {
        let mut i = Incoming::new(Ordering::Unordered, 10, 1000);
        for s in 0..MAX_STREAMS as u32 {
            whole(&mut i, s, 0, ms(1));
        }
        assert_eq!(whole(&mut i, MAX_STREAMS as u32, 0, ms(1)).0, FragmentOutcome::Dropped);
        assert_eq!(whole(&mut i, 0, 1, ms(1)).0, FragmentOutcome::Completed, "known streams keep working");
    }
}
