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
//! The budget has two levels, because not everything can be refused in the same way:
//!
//! - **Data that can wait** (fragments of messages beyond the next expected one, messages held back behind a gap,
//!   duplicate marks above the next expected message) may use only [`Budget::ahead_limit`], half the budget. Past
//!   it the fragment is *dropped and not acknowledged*: to the sender it looks lost and comes again later, once the
//!   gap has filled and the buffer drained. This is back-pressure, and an honest sender never loses anything by it.
//! - **Data that cannot wait** (the next expected message of a conversation, the record of a new conversation) may
//!   use the whole budget. Refusing it could stall a conversation for good, so a peer that needs more than the whole
//!   budget is not slowed down but *stopped*: the engine ends the connection with a
//!   [`ConnectionError`](super::ConnectionError) that says why. The half kept free of waiting data is what lets an
//!   honest peer always make progress.
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

/// Smallest budget a configuration may set: the next expected message must always fit in the half that waiting
/// data leaves free, with room to spare for conversation records (see [`EngineConfig::validate`]).
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

/// Bytes charged to one connection, against a fixed limit.
///
/// `Budget` only counts; the structures it pays for live in [`Incoming`](super::incoming::Incoming), which charges
/// before every allocation and refunds after every release.
#[derive(Debug, Clone)]
pub struct Budget {
    limit: usize,
    used: usize,
}

impl Budget {
    /// An empty budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { limit, used: 0 }
    }

    /// The whole budget.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// What data that can wait may use at most: half the budget.
    pub fn ahead_limit(&self) -> usize {
        self.limit / 2
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Whether `cost` more bytes of data that can wait fit under [`ahead_limit`](Self::ahead_limit).
    pub fn fits_ahead(&self, cost: usize) -> bool {
        self.used.saturating_add(cost) <= self.ahead_limit()
    }

    /// Whether `cost` more bytes fit in the whole budget.
    pub fn fits(&self, cost: usize) -> bool {
        self.used.saturating_add(cost) <= self.limit
    }

    /// Records `cost` bytes as spent. Callers check [`fits`](Self::fits) or [`fits_ahead`](Self::fits_ahead) first.
    pub fn charge(&mut self, cost: usize) {
        self.used = self.used.saturating_add(cost);
        debug_assert!(self.used <= self.limit, "charged past the budget");
    }

    /// Gives back `cost` bytes charged earlier.
    pub fn refund(&mut self, cost: usize) {
        debug_assert!(cost <= self.used, "refunded more than was charged");
        self.used = self.used.saturating_sub(cost);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_data_may_use_half_and_the_rest_is_kept_for_progress() {
        let mut b = Budget::new(1000);
        assert!(b.fits_ahead(500));
        assert!(!b.fits_ahead(501));
        b.charge(500);
        assert!(!b.fits_ahead(1));
        assert!(b.fits(500));
        assert!(!b.fits(501));
        b.refund(200);
        assert_eq!(b.used(), 300);
        assert!(b.fits_ahead(200));
    }

    #[test]
    fn huge_costs_do_not_overflow() {
        let b = Budget::new(1000);
        assert!(!b.fits(usize::MAX));
        assert!(!b.fits_ahead(usize::MAX));
    }
}
