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
//! # What a peer can make this side hold
//!
//! All of it is paid for from one [`Budget`] per connection before it is allocated (see [`budget`](super::budget)
//! for the two levels and the costs): conversation records, incomplete messages (bookkeeping, every piece, every
//! byte), messages held back behind a gap, and duplicate marks; the next expected message of a conversation is no
//! exception. Nothing is allocated for what a peer merely *announces*: a fragment's `count` only sets how many
//! pieces to wait for, the pieces themselves are stored as they arrive. Three more rules stop a lying peer:
//!
//! - a message has at most [`max_fragments`](Incoming::max_fragments) fragments: the largest legal message cut into
//!   the smallest legal pieces ([`MIN_FRAGMENT_BYTES`] each, except the last);
//! - fragments of one message must agree on the count, never overlap with different contents, and never add up
//!   to more than the largest message;
//! - an incomplete message, or a gap in a conversation, may wait at most the *stall timeout*: an honest sender
//!   resends a missing fragment within a second (its largest RTO), so data still missing after a minute means the
//!   sender stopped sending what it owes while it keeps sending other things.
//!
//! Breaking one of them is a [`ConnectionError`]: the engine ends the connection rather than grow or guess.
//! Data that does not fit its share of the budget right now is merely dropped unacknowledged, and comes again; the
//! next expected message of a conversation, once started, has its room reserved and always finishes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use super::budget::{Budget, HELD_COST, MARK_COST, PARTIAL_COST, PIECE_COST, STREAM_COST, Share};
use super::config::{MIN_FRAGMENT_BYTES, Ordering};
use super::connection_error::ConnectionError;

// Completing a message frees its bookkeeping before the complete message is charged; these keep that step from
// ever needing more budget than the fragment that triggered it already paid for.
const _: () = assert!(HELD_COST <= PARTIAL_COST + PIECE_COST);
const _: () = assert!(MARK_COST <= PARTIAL_COST + PIECE_COST);

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
    /// Refused for now by the receive window or the part of the budget that waiting data may use. Not
    /// acknowledged, so the sender sends it again later.
    Dropped,
}

/// The limits an [`Incoming`] enforces, taken from the engine's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingLimits {
    /// Delivery order per conversation.
    pub ordering: Ordering,
    /// Messages a conversation may run ahead of its next expected one.
    pub receive_window: u64,
    /// Largest message, in bytes.
    pub max_message_bytes: usize,
    /// Bytes the peer may make this side hold.
    pub receive_budget: usize,
    /// Longest an incomplete message or a gap may wait.
    pub stall_timeout: Duration,
}

/// A message whose fragments are arriving.
#[derive(Debug)]
struct Partial {
    count: u16,
    /// The pieces received so far, sorted by index. A list grown as pieces arrive, never a slot per announced
    /// fragment: the announcement is free to send, the pieces are not.
    pieces: Vec<(u16, Vec<u8>)>,
    /// Data bytes in `pieces`.
    bytes: usize,
    /// Budget charged for this message (bookkeeping, pieces and data), refunded when it completes.
    charged: usize,
    /// The share of the budget it is charged to.
    share: PartialShare,
    /// When its first fragment arrived.
    since: Duration,
}

/// Which share of the budget an incomplete message is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartialShare {
    /// Beyond the next expected message: dropped when the share is full.
    Waiting,
    /// The next expected message, with what is left of its reservation.
    Next { reserved: usize },
}

impl Partial {
    /// Pays `cost` from this next message's reservation.
    fn draw(&mut self, budget: &mut Budget, cost: usize) {
        if let PartialShare::Next { reserved } = &mut self.share {
            debug_assert!(cost <= *reserved, "a legal message never needs more than the largest");
            let cost = cost.min(*reserved);
            *reserved -= cost;
            budget.draw(cost);
            self.charged += cost;
        }
    }
}

/// Where one fragment's cost goes (see [`Incoming::on_fragment`]).
#[derive(Debug, Clone, Copy)]
enum Plan {
    /// Nothing to pay: a whole next message, or the last piece of the next message.
    Free,
    /// From the waiting share.
    Waiting(usize),
    /// The first piece of the next message: reserve the largest message, then pay from it.
    StartNext,
    /// A message that waited and is the next one now: move it to the next share with a reservation, then pay.
    PromoteThenDraw,
    /// Another piece of the next message: pay from its reservation.
    Draw,
}

#[derive(Debug, Default)]
struct RecvStream {
    /// Every message below this has been delivered.
    next_seq: u64,
    /// In-order mode: complete messages waiting for a gap, with the time they completed.
    held: BTreeMap<u64, (Vec<u8>, Duration)>,
    /// Unordered mode: messages above `next_seq` already delivered.
    delivered_ahead: BTreeSet<u64>,
    /// Since when messages above `next_seq` have been waiting for it, if any are.
    gap_since: Option<Duration>,
}

impl RecvStream {
    fn already_have(&self, seq: u64) -> bool {
        seq < self.next_seq || self.held.contains_key(&seq) || self.delivered_ahead.contains(&seq)
    }

    fn has_gap(&self) -> bool {
        !self.held.is_empty() || !self.delivered_ahead.is_empty()
    }
}

/// Something that waits for missing data, in the order the stall timeout checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Waiter {
    /// An incomplete message.
    Partial { stream: u32, seq: u64 },
    /// A conversation whose next expected message is missing while later ones have arrived.
    Gap { stream: u32 },
}

/// The receive side of the engine's message state.
#[derive(Debug)]
pub struct Incoming {
    limits: IncomingLimits,
    max_fragments: u16,
    /// What the largest legal message costs while it is reassembled: the reservation of a next message.
    largest_partial_cost: usize,
    partials: HashMap<(u32, u64), Partial>,
    streams: HashMap<u32, RecvStream>,
    /// Everything that waits for missing data, oldest first.
    waiting: BTreeSet<(Duration, Waiter)>,
    budget: Budget,
}

impl Incoming {
    pub fn new(limits: IncomingLimits) -> Self {
        Self {
            max_fragments: max_fragments(limits.max_message_bytes),
            largest_partial_cost: largest_partial_cost(limits.max_message_bytes),
            limits,
            partials: HashMap::new(),
            streams: HashMap::new(),
            waiting: BTreeSet::new(),
            budget: Budget::new(limits.receive_budget),
        }
    }

    /// Bytes of the receive budget in use: everything the peer currently makes this side hold.
    pub fn accounted_bytes(&self) -> usize {
        self.budget.used()
    }

    /// The receive budget.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The most fragments a legal message can have.
    pub fn max_fragments(&self) -> u16 {
        self.max_fragments
    }

    /// Conversations this side keeps a record of.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    /// Handles one fragment; complete messages ready for the application are appended to `out`.
    ///
    /// The checks run cheapest first: the fragment's own numbers, then the conversation's record, then the
    /// message's earlier fragments, and only then the budget and an allocation.
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
    ) -> Result<FragmentOutcome, ConnectionError> {
        self.check_fragment(stream, seq, index, count, data.len())?;

        let known = self.streams.get(&stream);
        let next_seq = known.map_or(0, |s| s.next_seq);
        if known.is_some_and(|s| s.already_have(seq)) {
            return Ok(FragmentOutcome::Duplicate);
        }
        if seq - next_seq >= self.limits.receive_window {
            return Ok(FragmentOutcome::Dropped);
        }
        let is_next = seq == next_seq;
        let stream_cost = if known.is_none() { STREAM_COST } else { 0 };

        let key = (stream, seq);
        let partial = self.partials.get(&key);
        if let Some(partial) = partial {
            if partial.count != count {
                return Err(ConnectionError::InconsistentFragmentCount {
                    stream,
                    seq,
                    first: partial.count,
                    then: count,
                });
            }
            if let Ok(at) = partial.pieces.binary_search_by_key(&index, |(i, _)| *i) {
                if partial.pieces[at].1 != data {
                    return Err(ConnectionError::ConflictingFragment { stream, seq, index });
                }
                return Ok(FragmentOutcome::Duplicate);
            }
            if partial.bytes + data.len() > self.limits.max_message_bytes {
                return Err(ConnectionError::MessageTooLarge { stream, seq, max: self.limits.max_message_bytes });
            }
        }

        // A new conversation's record comes first: it is what an attacker opening conversation after conversation
        // spends, and running out of it ends the connection.
        if stream_cost > 0 && !self.budget.fits(Share::Records, stream_cost) {
            return Err(ConnectionError::BudgetExceeded { budget: self.budget.limit() });
        }
        let piece_cost = PIECE_COST + data.len();
        let completes = partial.map_or(count == 1, |p| p.pieces.len() + 1 == usize::from(p.count));
        // Where this fragment's cost goes, decided before anything changes. A fragment that does not fit is
        // dropped unacknowledged and comes again.
        let plan = match (count, partial) {
            // A whole next message is handed over at once and costs nothing.
            (1, _) if is_next => Plan::Free,
            (1, _) => Plan::Waiting(self.keep_cost(data.len())),
            (_, None) if is_next => Plan::StartNext,
            (_, None) => Plan::Waiting(PARTIAL_COST + piece_cost),
            (_, Some(p)) => match p.share {
                PartialShare::Next { .. } => Plan::Draw,
                // The last piece of a message that is the next one now frees more than it costs.
                PartialShare::Waiting if is_next && completes => Plan::Free,
                PartialShare::Waiting if is_next => Plan::PromoteThenDraw,
                PartialShare::Waiting => Plan::Waiting(piece_cost),
            },
        };
        let fits = match plan {
            Plan::Free | Plan::Draw => true,
            Plan::Waiting(cost) => self.budget.fits(Share::Waiting, cost),
            Plan::StartNext => self.budget.fits(Share::Next, self.largest_partial_cost),
            Plan::PromoteThenDraw => self.budget.fits(Share::Next, self.largest_partial_cost),
        };
        if !fits {
            return Ok(FragmentOutcome::Dropped);
        }

        self.budget.charge(Share::Records, stream_cost);
        self.streams.entry(stream).or_default();
        if count == 1 {
            let keep = match plan {
                Plan::Waiting(cost) => cost,
                _ => 0,
            };
            self.budget.charge(Share::Waiting, keep);
            self.complete(stream, seq, data.to_vec(), keep, now, out);
            return Ok(FragmentOutcome::Completed);
        }

        let largest = self.largest_partial_cost;
        let budget = &mut self.budget;
        let partial = self.partials.entry(key).or_insert_with(|| Partial {
            count,
            pieces: Vec::new(),
            bytes: 0,
            charged: 0,
            share: PartialShare::Waiting,
            since: now,
        });
        if partial.pieces.is_empty() {
            self.waiting.insert((now, Waiter::Partial { stream, seq }));
        }
        match plan {
            Plan::Waiting(cost) => {
                budget.charge(Share::Waiting, cost);
                partial.charged += cost;
            }
            Plan::StartNext => {
                // The whole largest message is promised now, so this one can always finish.
                budget.reserve(largest);
                partial.share = PartialShare::Next { reserved: largest };
                let cost = PARTIAL_COST + piece_cost;
                partial.draw(budget, cost);
            }
            Plan::PromoteThenDraw => {
                // A message that waited behind others is the next one now: its charge moves to the next share,
                // with a reservation for the rest.
                budget.refund(Share::Waiting, partial.charged);
                budget.reserve(largest);
                budget.draw(partial.charged);
                partial.share = PartialShare::Next { reserved: largest - partial.charged };
                partial.draw(budget, piece_cost);
            }
            Plan::Draw => partial.draw(budget, piece_cost),
            Plan::Free => {}
        }
        let at = partial.pieces.partition_point(|(i, _)| *i < index);
        partial.pieces.insert(at, (index, data.to_vec()));
        partial.bytes += data.len();
        if partial.pieces.len() < usize::from(partial.count) {
            return Ok(FragmentOutcome::Stored);
        }

        let Some(partial) = self.partials.remove(&key) else { return Ok(FragmentOutcome::Stored) };
        self.waiting.remove(&(partial.since, Waiter::Partial { stream, seq }));
        match partial.share {
            PartialShare::Waiting => self.budget.refund(Share::Waiting, partial.charged),
            PartialShare::Next { reserved } => {
                self.budget.refund(Share::Next, partial.charged);
                self.budget.release(reserved);
            }
        }
        let mut message = Vec::with_capacity(partial.bytes);
        for (_, piece) in partial.pieces {
            message.extend_from_slice(&piece);
        }
        // The bookkeeping was refunded; a message that must wait is charged in its place (never more than the
        // refund: see the assertions at the top of this module).
        let keep = if is_next { 0 } else { self.keep_cost(message.len()) };
        self.budget.charge(Share::Waiting, keep);
        self.complete(stream, seq, message, keep, now, out);
        Ok(FragmentOutcome::Completed)
    }

    /// What a complete message that must wait costs: held back with its data (in order), or a duplicate mark.
    fn keep_cost(&self, len: usize) -> usize {
        match self.limits.ordering {
            Ordering::InOrder => HELD_COST + len,
            Ordering::Unordered => MARK_COST,
        }
    }

    /// The checks that need nothing but the fragment itself.
    fn check_fragment(&self, stream: u32, seq: u64, index: u16, count: u16, len: usize) -> Result<(), ConnectionError> {
        if index >= count {
            // The frame decoder already refuses these; a caller that skipped it gets the same answer.
            return Err(ConnectionError::FragmentIndexOutOfRange { stream, seq, index, count });
        }
        if count > self.max_fragments {
            return Err(ConnectionError::TooManyFragments { stream, seq, count, max: self.max_fragments });
        }
        if index.saturating_add(1) < count && len < MIN_FRAGMENT_BYTES {
            return Err(ConnectionError::FragmentTooSmall { stream, seq, index, len, min: MIN_FRAGMENT_BYTES });
        }
        if len > self.limits.max_message_bytes {
            return Err(ConnectionError::MessageTooLarge { stream, seq, max: self.limits.max_message_bytes });
        }
        Ok(())
    }

    /// Hands a complete message over, or holds it back; `charged` is what the budget already paid for keeping it
    /// (zero for the next expected message).
    fn complete(
        &mut self,
        stream: u32,
        seq: u64,
        message: Vec<u8>,
        charged: usize,
        now: Duration,
        out: &mut Vec<Delivery>,
    ) {
        let Some(state) = self.streams.get_mut(&stream) else { return };
        let had_gap = state.gap_since;
        let next_before = state.next_seq;
        match self.limits.ordering {
            Ordering::Unordered => {
                out.push(Delivery { stream, seq, data: message, waited: Duration::ZERO });
                if seq == state.next_seq {
                    state.next_seq += 1;
                    while state.delivered_ahead.remove(&state.next_seq) {
                        self.budget.refund(Share::Waiting, MARK_COST);
                        state.next_seq += 1;
                    }
                } else {
                    debug_assert_eq!(charged, MARK_COST);
                    state.delivered_ahead.insert(seq);
                }
            }
            Ordering::InOrder => {
                if seq != state.next_seq {
                    debug_assert_eq!(charged, HELD_COST + message.len());
                    state.held.insert(seq, (message, now));
                } else {
                    out.push(Delivery { stream, seq, data: message, waited: Duration::ZERO });
                    state.next_seq += 1;
                    while let Some((data, completed_at)) = state.held.remove(&state.next_seq) {
                        self.budget.refund(Share::Waiting, HELD_COST + data.len());
                        let waited = now.saturating_sub(completed_at);
                        out.push(Delivery { stream, seq: state.next_seq, data, waited });
                        state.next_seq += 1;
                    }
                }
            }
        }
        // Keep the gap's place in the stall order. A gap that closed leaves it; when the next expected message
        // arrived but later ones still wait for another, that is a new gap and its clock starts now.
        let gap_since = match had_gap {
            _ if !state.has_gap() => None,
            Some(since) if state.next_seq == next_before => Some(since),
            _ => Some(now),
        };
        if gap_since != had_gap {
            state.gap_since = gap_since;
            if let Some(since) = had_gap {
                self.waiting.remove(&(since, Waiter::Gap { stream }));
            }
            if let Some(since) = gap_since {
                self.waiting.insert((since, Waiter::Gap { stream }));
            }
        }
    }

    /// When the oldest incomplete message or gap reaches the stall timeout, if anything waits.
    pub fn stall_deadline(&self) -> Option<Duration> {
        let (since, _) = self.waiting.first()?;
        Some(since.saturating_add(self.limits.stall_timeout))
    }

    /// The stall timeout's verdict at `now`: an error naming the oldest message that waited too long, if any.
    pub fn check_stalls(&self, now: Duration) -> Result<(), ConnectionError> {
        let Some(&(since, waiter)) = self.waiting.first() else { return Ok(()) };
        let waited = now.saturating_sub(since);
        if waited < self.limits.stall_timeout {
            return Ok(());
        }
        let (stream, seq) = match waiter {
            Waiter::Partial { stream, seq } => (stream, seq),
            Waiter::Gap { stream } => (stream, self.streams.get(&stream).map_or(0, |s| s.next_seq)),
        };
        Err(ConnectionError::Stalled { stream, seq, waited, limit: self.limits.stall_timeout })
    }
}

/// What the largest legal message costs the budget while it is reassembled: its bookkeeping and each of its
/// smallest legal pieces with their data.
pub fn largest_partial_cost(max_message_bytes: usize) -> usize {
    let pieces = usize::from(max_fragments(max_message_bytes));
    (PARTIAL_COST + pieces * PIECE_COST).saturating_add(max_message_bytes)
}

/// The most fragments a legal message can have: the largest message cut into pieces of the smallest legal size.
/// With the default 8 KiB messages and 64-byte minimum that is 128, where the wire format would allow 65 535.
pub fn max_fragments(max_message_bytes: usize) -> u16 {
    u16::try_from(max_message_bytes.div_ceil(MIN_FRAGMENT_BYTES).max(1)).unwrap_or(u16::MAX)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::budget::DEFAULT_RECEIVE_BUDGET;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn incoming(ordering: Ordering, receive_window: u64, max_message_bytes: usize) -> Incoming {
        Incoming::new(IncomingLimits {
            ordering,
            receive_window,
            max_message_bytes,
            receive_budget: DEFAULT_RECEIVE_BUDGET,
            stall_timeout: Duration::from_secs(60),
        })
    }

    fn whole(i: &mut Incoming, stream: u32, seq: u64, now: Duration) -> (FragmentOutcome, Vec<Delivery>) {
        let mut out = Vec::new();
        let outcome = i.on_fragment(stream, seq, 0, 1, &seq.to_be_bytes(), now, &mut out).unwrap();
        (outcome, out)
    }

    /// A fragment of `len` bytes filled with `fill`.
    fn piece(len: usize, fill: u8) -> Vec<u8> {
        vec![fill; len]
    }

    #[test]
    fn in_order_holds_back_and_measures_the_wait() {
        let mut i = incoming(Ordering::InOrder, 100, 1000);
        let (o, d) = whole(&mut i, 0, 1, ms(10));
        assert_eq!((o, d.len()), (FragmentOutcome::Completed, 0));
        assert_eq!(i.accounted_bytes(), STREAM_COST + HELD_COST + 8);
        let (_, d) = whole(&mut i, 0, 0, ms(25));
        assert_eq!(d.iter().map(|d| d.seq).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(d[1].waited, ms(15));
        assert_eq!(i.accounted_bytes(), STREAM_COST, "only the conversation's record remains");
    }

    #[test]
    fn unordered_delivers_at_once_and_still_deduplicates() {
        let mut i = incoming(Ordering::Unordered, 100, 1000);
        assert_eq!(whole(&mut i, 0, 2, ms(1)).1.len(), 1);
        assert_eq!(whole(&mut i, 0, 2, ms(1)).0, FragmentOutcome::Duplicate);
        assert_eq!(i.accounted_bytes(), STREAM_COST + MARK_COST);
        assert_eq!(whole(&mut i, 0, 0, ms(1)).1.len(), 1);
        assert_eq!(whole(&mut i, 0, 1, ms(1)).1.len(), 1);
        assert_eq!(whole(&mut i, 0, 1, ms(1)).0, FragmentOutcome::Duplicate);
        assert_eq!(whole(&mut i, 0, 0, ms(1)).0, FragmentOutcome::Duplicate);
        assert_eq!(i.accounted_bytes(), STREAM_COST);
    }

    #[test]
    fn streams_are_independent() {
        let mut i = incoming(Ordering::InOrder, 100, 1000);
        assert_eq!(whole(&mut i, 0, 1, ms(1)).1.len(), 0);
        assert_eq!(whole(&mut i, 1, 0, ms(1)).1.len(), 1, "a gap on stream 0 does not block stream 1");
    }

    #[test]
    fn fragments_reassemble_in_any_order() {
        let mut i = incoming(Ordering::InOrder, 100, 1000);
        let mut out = Vec::new();
        let (a, b, c) = (piece(64, b'a'), piece(64, b'b'), piece(3, b'c'));
        assert_eq!(i.on_fragment(0, 0, 2, 3, &c, ms(1), &mut out), Ok(FragmentOutcome::Stored));
        assert_eq!(i.on_fragment(0, 0, 0, 3, &a, ms(1), &mut out), Ok(FragmentOutcome::Stored));
        assert_eq!(i.on_fragment(0, 0, 0, 3, &a, ms(1), &mut out), Ok(FragmentOutcome::Duplicate));
        assert_eq!(i.on_fragment(0, 0, 1, 3, &b, ms(1), &mut out), Ok(FragmentOutcome::Completed));
        assert_eq!(out[0].data, [a.clone(), b.clone(), c].concat());
        assert_eq!(i.on_fragment(0, 0, 1, 3, &b, ms(1), &mut out), Ok(FragmentOutcome::Duplicate));
        assert_eq!(i.accounted_bytes(), STREAM_COST);
    }

    #[test]
    fn inconsistent_fragment_count_ends_the_connection() {
        let mut i = incoming(Ordering::InOrder, 100, 1000);
        let mut out = Vec::new();
        i.on_fragment(0, 0, 0, 3, &piece(64, 1), ms(1), &mut out).unwrap();
        assert_eq!(
            i.on_fragment(0, 0, 1, 2, &piece(64, 2), ms(1), &mut out),
            Err(ConnectionError::InconsistentFragmentCount { stream: 0, seq: 0, first: 3, then: 2 })
        );
    }

    #[test]
    fn a_repeated_fragment_with_other_contents_ends_the_connection() {
        let mut i = incoming(Ordering::InOrder, 100, 1000);
        let mut out = Vec::new();
        i.on_fragment(0, 0, 0, 3, &piece(64, 1), ms(1), &mut out).unwrap();
        assert_eq!(
            i.on_fragment(0, 0, 0, 3, &piece(64, 9), ms(1), &mut out),
            Err(ConnectionError::ConflictingFragment { stream: 0, seq: 0, index: 0 })
        );
    }

    #[test]
    fn a_repeated_fragment_of_a_nearly_full_message_is_a_duplicate_not_an_overflow() {
        // Regression: the size check ran before the duplicate check, so a retransmitted fragment of a large
        // message looked like an overflow and the whole (already acknowledged) partial message was thrown away.
        let mut i = incoming(Ordering::InOrder, 100, 140);
        let mut out = Vec::new();
        i.on_fragment(0, 0, 0, 3, &piece(64, b'a'), ms(1), &mut out).unwrap();
        i.on_fragment(0, 0, 1, 3, &piece(64, b'b'), ms(1), &mut out).unwrap();
        assert_eq!(i.on_fragment(0, 0, 1, 3, &piece(64, b'b'), ms(1), &mut out), Ok(FragmentOutcome::Duplicate));
        assert_eq!(i.on_fragment(0, 0, 2, 3, &piece(12, b'c'), ms(1), &mut out), Ok(FragmentOutcome::Completed));
        assert_eq!(out[0].data.len(), 140);
    }

    #[test]
    fn an_oversized_message_ends_the_connection() {
        let mut i = incoming(Ordering::InOrder, 100, 100);
        let mut out = Vec::new();
        i.on_fragment(0, 0, 0, 2, &piece(64, 0), ms(1), &mut out).unwrap();
        assert_eq!(
            i.on_fragment(0, 0, 1, 2, &piece(40, 0), ms(1), &mut out),
            Err(ConnectionError::MessageTooLarge { stream: 0, seq: 0, max: 100 })
        );
        assert_eq!(
            i.on_fragment(0, 1, 0, 1, &piece(101, 0), ms(1), &mut out),
            Err(ConnectionError::MessageTooLarge { stream: 0, seq: 1, max: 100 })
        );
    }

    #[test]
    fn messages_beyond_the_receive_window_are_dropped() {
        let mut i = incoming(Ordering::InOrder, 10, 1000);
        assert_eq!(whole(&mut i, 0, 10, ms(1)).0, FragmentOutcome::Dropped);
        assert_eq!(whole(&mut i, 0, 9, ms(1)).0, FragmentOutcome::Completed);
        assert_eq!(whole(&mut i, 0, u64::MAX, ms(1)).0, FragmentOutcome::Dropped);
    }

    #[test]
    fn waiting_data_is_refused_at_half_the_budget_but_never_the_next_message() {
        let mut i = incoming(Ordering::InOrder, 1000, 8192);
        let mut out = Vec::new();
        let big = piece(8000, 7);
        let mut seq = 1;
        while i.on_fragment(0, seq, 0, 1, &big, ms(1), &mut out) == Ok(FragmentOutcome::Completed) {
            seq += 1;
        }
        let waiting = i.budget().share_used(Share::Waiting);
        assert!(waiting <= i.budget().share_limit(Share::Waiting));
        assert!(waiting + HELD_COST + big.len() > i.budget().share_limit(Share::Waiting));
        assert_eq!(i.on_fragment(0, 0, 0, 1, &big, ms(1), &mut out), Ok(FragmentOutcome::Completed));
        assert_eq!(out.len() as u64, seq, "the next message released everything held behind it");
        assert_eq!(i.accounted_bytes(), STREAM_COST);
    }

    #[test]
    fn fragment_bomb_allocates_nothing_for_announced_fragments() {
        // Regression: a fragment announcing 65 535 pieces made the receiver allocate a slot for each (1.5 MiB per
        // message id) before any data arrived; 2 000 datagrams of 47 bytes took a server to 3 GB.
        let mut i = incoming(Ordering::InOrder, 4096, 8192);
        let mut out = Vec::new();
        assert_eq!(i.max_fragments(), 128);
        assert_eq!(
            i.on_fragment(0, 1, 0, u16::MAX, &[1], ms(1), &mut out),
            Err(ConnectionError::TooManyFragments { stream: 0, seq: 1, count: u16::MAX, max: 128 })
        );
        assert_eq!(i.accounted_bytes(), 0);
        // The largest legal announcement costs what was sent, not what was announced.
        i.on_fragment(0, 1, 0, 128, &piece(64, 1), ms(1), &mut out).unwrap();
        assert_eq!(i.accounted_bytes(), STREAM_COST + PARTIAL_COST + PIECE_COST + 64);
    }

    #[test]
    fn tiny_fragments_other_than_the_last_end_the_connection() {
        let mut i = incoming(Ordering::InOrder, 100, 8192);
        let mut out = Vec::new();
        assert_eq!(
            i.on_fragment(0, 0, 0, 2, &[1], ms(1), &mut out),
            Err(ConnectionError::FragmentTooSmall { stream: 0, seq: 0, index: 0, len: 1, min: MIN_FRAGMENT_BYTES })
        );
        assert_eq!(
            i.on_fragment(0, 0, 1, 2, &[1], ms(1), &mut out),
            Ok(FragmentOutcome::Stored),
            "the last may be short"
        );
        assert_eq!(
            i.on_fragment(0, 0, 2, 2, &[1], ms(1), &mut out),
            Err(ConnectionError::FragmentIndexOutOfRange { stream: 0, seq: 0, index: 2, count: 2 })
        );
    }

    #[test]
    fn next_messages_on_many_streams_are_held_to_their_share_and_each_started_one_finishes() {
        // Regression: the next expected message of a conversation was exempt from the buffer limit, so a peer
        // that opened conversations and sent the first fragment of each could grow the receiver without end. And
        // a review found the opposite danger once it was limited: honest conversations each halfway through a
        // large message could together exhaust the budget, ending the connection although every one would have
        // finished. Now each next message reserves the largest message's cost when it starts.
        let mut i = incoming(Ordering::InOrder, 100, 8192);
        let mut out = Vec::new();
        let first = piece(1000, 3);
        let outcomes: Vec<_> =
            (0..64).map(|stream| i.on_fragment(stream, 0, 0, 9, &first, ms(1), &mut out).unwrap()).collect();
        let started = outcomes.iter().filter(|o| **o == FragmentOutcome::Stored).count();
        assert_eq!(started, DEFAULT_RECEIVE_BUDGET / 4 / largest_partial_cost(8192));
        assert!(outcomes[started..].iter().all(|o| *o == FragmentOutcome::Dropped));
        assert!(i.accounted_bytes() <= DEFAULT_RECEIVE_BUDGET);
        // Every started message can finish, whatever arrives in between.
        for stream in 0..started as u32 {
            for index in 1..9 {
                let len = if index == 8 { 100 } else { 1000 };
                let outcome = i.on_fragment(stream, 0, index, 9, &piece(len, 3), ms(2), &mut out).unwrap();
                assert_ne!(outcome, FragmentOutcome::Dropped, "stream {stream}, piece {index}");
            }
        }
        assert_eq!(out.len(), started);
        // And the ones dropped before get their turn now.
        assert_eq!(i.on_fragment(63, 0, 0, 9, &first, ms(3), &mut out), Ok(FragmentOutcome::Stored));
    }

    #[test]
    fn a_waiting_message_that_becomes_the_next_one_is_moved_to_the_next_share() {
        let mut i = incoming(Ordering::InOrder, 100, 8192);
        let mut out = Vec::new();
        i.on_fragment(0, 1, 0, 2, &piece(64, 1), ms(1), &mut out).unwrap();
        assert!(i.budget().share_used(Share::Waiting) > 0);
        whole(&mut i, 0, 0, ms(2));
        assert_eq!(i.on_fragment(0, 1, 1, 3 - 1, &piece(10, 1), ms(3), &mut out), Ok(FragmentOutcome::Completed));
        assert_eq!(i.accounted_bytes(), STREAM_COST);
        assert_eq!(i.budget().share_used(Share::Next), 0, "the reservation is given back");
        // The same with a piece in between, so the move really happens.
        i.on_fragment(0, 3, 0, 3, &piece(64, 1), ms(4), &mut out).unwrap();
        whole(&mut i, 0, 2, ms(5));
        assert_eq!(i.on_fragment(0, 3, 1, 3, &piece(64, 1), ms(6), &mut out), Ok(FragmentOutcome::Stored));
        assert_eq!(i.budget().share_used(Share::Waiting), 0);
        assert_eq!(i.budget().share_used(Share::Next), largest_partial_cost(8192));
        assert_eq!(i.on_fragment(0, 3, 2, 3, &piece(5, 1), ms(7), &mut out), Ok(FragmentOutcome::Completed));
        assert_eq!(i.accounted_bytes(), STREAM_COST);
        assert_eq!(i.budget().share_used(Share::Next), 0);
    }

    #[test]
    fn endless_new_conversations_exceed_the_records_share_with_an_error() {
        let mut i = incoming(Ordering::Unordered, 100, 8192);
        let mut out = Vec::new();
        let mut result = Ok(FragmentOutcome::Completed);
        for stream in 0..100_000 {
            result = i.on_fragment(stream, 0, 0, 1, b"hi", ms(1), &mut out);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(ConnectionError::BudgetExceeded { budget: DEFAULT_RECEIVE_BUDGET }));
        assert_eq!(i.streams(), DEFAULT_RECEIVE_BUDGET / 4 / STREAM_COST);
    }

    #[test]
    fn an_incomplete_message_stalls_after_the_timeout() {
        let mut i = incoming(Ordering::InOrder, 100, 8192);
        let mut out = Vec::new();
        assert_eq!(i.stall_deadline(), None);
        i.on_fragment(3, 0, 0, 2, &piece(64, 1), ms(10), &mut out).unwrap();
        assert_eq!(i.stall_deadline(), Some(ms(60_010)));
        assert_eq!(i.check_stalls(ms(60_009)), Ok(()));
        assert_eq!(
            i.check_stalls(ms(60_010)),
            Err(ConnectionError::Stalled { stream: 3, seq: 0, waited: ms(60_000), limit: ms(60_000) })
        );
        i.on_fragment(3, 0, 1, 2, &piece(1, 1), ms(20), &mut out).unwrap();
        assert_eq!(i.stall_deadline(), None, "a completed message no longer waits");
    }

    #[test]
    fn an_endless_gap_stalls_and_a_filled_one_does_not() {
        for ordering in [Ordering::InOrder, Ordering::Unordered] {
            let mut i = incoming(ordering, 100, 8192);
            whole(&mut i, 5, 1, ms(10));
            whole(&mut i, 5, 2, ms(20));
            assert_eq!(i.stall_deadline(), Some(ms(60_010)), "{ordering:?}: the gap opened at 10 ms");
            whole(&mut i, 5, 0, ms(30));
            assert_eq!(i.stall_deadline(), None, "{ordering:?}: the gap closed");
            whole(&mut i, 5, 5, ms(40));
            whole(&mut i, 5, 3, ms(50));
            assert_eq!(i.stall_deadline(), Some(ms(60_050)), "{ordering:?}: 4 is missing since 3 arrived");
            assert!(matches!(i.check_stalls(ms(61_000)), Err(ConnectionError::Stalled { stream: 5, seq: 4, .. })));
        }
    }

    #[test]
    fn max_fragments_follows_the_message_size() {
        assert_eq!(max_fragments(8192), 128);
        assert_eq!(max_fragments(8193), 129);
        assert_eq!(max_fragments(1), 1);
        assert_eq!(max_fragments(0), 1);
        assert_eq!(max_fragments(usize::MAX), u16::MAX);
    }
}
