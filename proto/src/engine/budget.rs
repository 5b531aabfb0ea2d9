//! The receiver's memory budget: everything a peer can make this side hold, counted in bytes.
//!
//! A receiver keeps state because of what its peer sent: the fragments of a message that is not complete yet, a
//! complete message held back behind a gap, the marks that recognise duplicates, one small record per conversation.
//! A peer that lies (announces a message of 65 535 fragments and sends one, opens conversation after conversation,
//! never fills a gap) can make an unguarded receiver allocate without end: an earlier version of this engine gave
//! 1.5 MiB to every 47-byte datagram of such a *fragment bomb*, and a server died of it. So every structure is
//! **paid for before it is allocated**, from one [`Budget`] per connection, at a cost that covers the allocator's
//! real price (the data plus the container's overhead, measured by the `hostile` test suite with a counting
//! allocator). Nothing is allocated in proportion to what a peer *announces*; only to what it *sent*.
//!
//! The budget is split in three shares, because not everything can be refused in the same way:
//!
//! - **Waiting data**, half the budget: fragments of messages beyond the next expected one, messages held back
//!   behind a gap, duplicate marks above the next expected message. Past its share a fragment is *dropped and not
//!   acknowledged*: to the sender it looks lost and comes again later, once the gap has filled. This is
//!   back-pressure, and an honest sender never loses anything by it.
//! - **Next messages**, a quarter: the incomplete next expected message of each conversation. Each one *reserves*
//!   the cost of the largest legal message when it starts, so once started it can always finish; a message that
//!   cannot get its reservation is dropped for now, like waiting data, and comes again when one of the others has
//!   completed. (Without reservations, several conversations each halfway through a large message could together
//!   run out of room, and none could finish.)
//! - **Conversation records**, a quarter: one per conversation ever seen, kept for the connection's life to
//!   recognise late duplicates. Honest senders number at most 1 024 conversations
//!   (`MAX_CONVERSATION_STREAMS` in `chat::streams`, and the world room), which fits exactly;
//!   a peer that opens more is not slowed down but *stopped*: the engine ends the connection with a
//!   [`ConnectionError`](super::ConnectionError) that says why.
//!
//! Every attack therefore ends in one of two ways: at once with a connection error, or held to a fixed share and
//! then ended by the stall timeout, because data that is never completed waits too long.
//!
//! The costs below are conservative estimates for a 64-bit target (hash-map buckets at their worst load, B-tree
//! nodes half full, the allocator's rounding); they are constants, not measurements taken at run time, so the
//! accounting is exact and deterministic and the same on every machine.

/// Default receive budget per connection: 1 MiB.
///
/// An honest peer's data in flight at chat rates is a few kilobytes; a loopback blast of 1 000 short messages
/// behind one lost packet holds about 200 KiB, inside the half that waiting data may use. A server with a thousand
/// sessions could in theory be made to hold a gigabyte only if every one of them attacked at once, and each attacker
/// is disconnected when it reaches its own megabyte.
pub const DEFAULT_RECEIVE_BUDGET: usize = 1 << 20;

/// Smallest budget a configuration may set, whatever the message size: the quarter for next messages must hold the
/// largest message (see [`EngineConfig::validate`]).
///
/// [`EngineConfig::validate`]: super::EngineConfig::validate
pub const MIN_RECEIVE_BUDGET: usize = 64 << 10;

/// Cost of one conversation's receive record (its next sequence number, the maps of held-back messages and
/// duplicate marks, the time its gap opened), including a hash-map bucket at the worst load factor. Paid once per
/// conversation and kept for the connection's life: the record is what recognises a late duplicate of an old
/// message.
pub const STREAM_COST: usize = 256;

/// Cost of one incomplete message's bookkeeping: its map entry, the first allocation of its list of pieces, and
/// its entry in the list of messages that wait (for the stall timeout).
pub const PARTIAL_COST: usize = 384;

/// Cost of one received fragment besides its data: its place in the message's list of pieces (which grows by
/// doubling) and the allocator's header and rounding of the data.
pub const PIECE_COST: usize = 96;

/// Cost of one complete message held back behind a gap, besides its data: its B-tree entry (nodes may be half
/// empty) and the allocator's header and rounding of the data.
pub const HELD_COST: usize = 160;

/// Cost of one duplicate mark: in unordered mode, the sequence number of a message delivered ahead of a gap.
pub const MARK_COST: usize = 48;

/// Which share of the budget a charge comes from (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// Data that can wait: half the budget; over it, drop.
    Waiting,
    /// The next expected messages, with their reservations: a quarter; over it, drop.
    Next,
    /// Conversation records: a quarter; over it, the connection ends.
    Records,
}

/// Bytes charged to one connection, in three shares of a fixed limit.
///
/// `Budget` only counts; the structures it pays for live in [`Incoming`](super::incoming::Incoming), which charges
/// before every allocation and refunds after every release.
#[derive(Debug, Clone)]
pub struct Budget {
    limit: usize,
    waiting: usize,
    next: usize,
    /// Bytes promised to next messages that have started but not arrived yet.
    reserved: usize,
    records: usize,
}

impl Budget {
    /// An empty budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { limit, waiting: 0, next: 0, reserved: 0, records: 0 }
    }

    /// The whole budget.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The most a share may hold: half for waiting data, a quarter each for the others.
    pub fn share_limit(&self, share: Share) -> usize {
        match share {
            Share::Waiting => self.limit / 2,
            Share::Records => self.limit / 4,
            Share::Next => self.limit - self.limit / 2 - self.limit / 4,
        }
    }

    /// Bytes charged now, every share together (reservations are promises, not memory, and are not counted).
    pub fn used(&self) -> usize {
        self.waiting + self.next + self.records
    }

    /// Bytes charged to one share now (for `Next`, with its reservations).
    pub fn share_used(&self, share: Share) -> usize {
        match share {
            Share::Waiting => self.waiting,
            Share::Next => self.next + self.reserved,
            Share::Records => self.records,
        }
    }

    /// Whether `cost` more bytes fit in `share`.
    pub fn fits(&self, share: Share, cost: usize) -> bool {
        self.share_used(share).saturating_add(cost) <= self.share_limit(share)
    }

    /// Records `cost` bytes as spent from `share`. Callers check [`fits`](Self::fits) first.
    pub fn charge(&mut self, share: Share, cost: usize) {
        let slot = self.slot(share);
        *slot = slot.saturating_add(cost);
        debug_assert!(self.share_used(share) <= self.share_limit(share), "charged past the {share:?} share");
    }

    /// Gives back `cost` bytes charged to `share` earlier.
    pub fn refund(&mut self, share: Share, cost: usize) {
        let slot = self.slot(share);
        debug_assert!(cost <= *slot, "refunded more than was charged");
        *slot = slot.saturating_sub(cost);
    }

    /// Promises `amount` bytes of the `Next` share to a message that has started; the caller checked
    /// [`fits`](Self::fits)`(Share::Next, …)`.
    pub fn reserve(&mut self, amount: usize) {
        self.reserved = self.reserved.saturating_add(amount);
    }

    /// Turns `cost` bytes of a reservation into a charge of the `Next` share: always fits.
    pub fn draw(&mut self, cost: usize) {
        debug_assert!(cost <= self.reserved, "drew more than was reserved");
        self.reserved = self.reserved.saturating_sub(cost);
        self.next = self.next.saturating_add(cost);
    }

    /// Gives back what is left of a reservation.
    pub fn release(&mut self, amount: usize) {
        debug_assert!(amount <= self.reserved, "released more than was reserved");
        self.reserved = self.reserved.saturating_sub(amount);
    }

    fn slot(&mut self, share: Share) -> &mut usize {
        match share {
            Share::Waiting => &mut self.waiting,
            Share::Next => &mut self.next,
            Share::Records => &mut self.records,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_share_has_its_own_limit_and_they_add_up_to_the_budget() {
        let b = Budget::new(1000);
        assert_eq!(b.share_limit(Share::Waiting), 500);
        assert_eq!(b.share_limit(Share::Next), 250);
        assert_eq!(b.share_limit(Share::Records), 250);
        let mut b = Budget::new(1001);
        let total: usize = [Share::Waiting, Share::Next, Share::Records].iter().map(|&s| b.share_limit(s)).sum();
        assert_eq!(total, 1001);
        b.charge(Share::Waiting, 500);
        assert!(!b.fits(Share::Waiting, 1));
        assert!(b.fits(Share::Records, 250), "a full waiting share leaves the others alone");
        b.refund(Share::Waiting, 200);
        assert_eq!(b.used(), 300);
    }

    #[test]
    fn a_reservation_keeps_room_for_a_started_message() {
        let mut b = Budget::new(1000);
        b.reserve(200);
        assert!(!b.fits(Share::Next, 51), "the reservation counts against the share");
        b.draw(150);
        assert_eq!((b.used(), b.share_used(Share::Next)), (150, 200));
        b.refund(Share::Next, 150);
        b.release(50);
        assert_eq!((b.used(), b.share_used(Share::Next)), (0, 0));
    }

    #[test]
    fn huge_costs_do_not_overflow() {
        let b = Budget::new(1000);
        assert!(!b.fits(Share::Records, usize::MAX));
        assert!(!b.fits(Share::Waiting, usize::MAX));
    }
}
