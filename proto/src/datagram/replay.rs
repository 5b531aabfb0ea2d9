//! The sliding replay window.
//!
//! # What a replay attack is
//!
//! Encryption and authentication prove that a datagram was sealed by the peer — but not that it is being delivered
//! for the *first* time. An attacker on the path can record a valid datagram ("send 100 coins", or here "Alice says:
//! see you at 8") and send the very same bytes again later. The tag still verifies, because nothing in the bytes
//! changed. Without protection the receiver would act on the message twice. The network itself also duplicates
//! packets now and then, harmlessly but just as confusingly.
//!
//! The defence: every datagram carries a packet number that the sender never reuses, and the receiver remembers which
//! numbers it has accepted. A second datagram with a remembered number is a replay (or a duplicate) and is dropped.
//!
//! # Why the window slides
//!
//! Remembering every number ever seen would take unbounded memory. Remembering only the largest one ("accept only
//! increasing numbers") breaks on the real Internet, where packets are reordered: packet 9 may arrive before
//! packet 8, and 8 is still legitimate. The compromise, used by IPsec (RFC 4303), DTLS and WireGuard, is a window: the receiver remembers the largest accepted number and, for the [`REPLAY_WINDOW_PACKETS`] numbers at and
//! below it, one bit each saying "seen". A number
//!
//! * above the largest is new, and moves the window up (it *slides*);
//! * inside the window is new exactly when its bit is clear;
//! * below the window is *too old*: it can no longer be told apart from a replay, so it is dropped. The reliability
//!   engine retransmits its content under a new packet number anyway.
//!
//! ```text
//!            too old      │◄──────── REPLAY_WINDOW_PACKETS numbers ────────►│  new, slides the window
//!   ──────────────────────┼───────────────────────────────────────────────┼──────────────────────►
//!                         lowest                                      largest accepted
//! ```
//!
//! # Check before, accept after
//!
//! The window is used in two steps. [`ReplayWindow::check`] runs *before* decryption: it is a few instructions, so
//! duplicates and replays are rejected without spending an AES-GCM decryption on them. [`ReplayWindow::accept`] runs
//! only *after* the tag verified. If a packet moved the window before its tag was checked, an attacker could send
//! one forged packet with packet number `u64::MAX - 1`: the window would jump there and every genuine packet would
//! afterwards be "too old" — a one-packet denial of service. Forged packets must not change any state.
//!
//! # Storage
//!
//! The bitmap is a ring: the bit of packet number `n` lives at position `n % REPLAY_WINDOW_PACKETS`. Sliding the window
//! up by `d` only clears the `d` positions that now stand for new numbers (or everything, when `d` is at least the
//! window), so no bit is ever shifted.

/// Number of packet numbers the replay window remembers: a packet up to this many numbers behind the largest accepted
/// one is still accepted if it is new.
///
/// The window must cover every packet that can legitimately arrive late: all packets the peer may have in flight
/// at once, reordered arbitrarily; a packet that arrives later than that is dropped as too old and its content is
/// retransmitted, so the reliability engine's send window should stay below it. DESIGN.md asks for at least 1024.
/// 2048 gives twice that headroom (at 150 000 packets per second, about 13 ms of traffic) for 256 bytes of bitmap per
/// session, about 1 % of the ~20 KiB budget of an idle session. A multiple of 64 so the bitmap is whole `u64` words.
pub const REPLAY_WINDOW_PACKETS: u64 = 2048;

/// Bits in one bitmap word.
const WORD_BITS: u64 = u64::BITS as u64;

/// Number of `u64` words in the bitmap.
const WINDOW_WORDS: usize = (REPLAY_WINDOW_PACKETS / WORD_BITS) as usize;

const _: () = assert!(
    REPLAY_WINDOW_PACKETS % WORD_BITS == 0 && REPLAY_WINDOW_PACKETS >= 1024,
    "the window is whole words and at least the 1024 packets DESIGN.md asks for"
);

/// Why the replay window refused a packet number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// The number was already accepted: a duplicate or a replay.
    Duplicate,
    /// The number is below the window, so whether it was seen is no longer known.
    TooOld,
}

/// Which packet numbers of one direction were already accepted. See the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Largest accepted packet number, or `None` before the first packet.
    largest: Option<u64>,
    /// One bit per packet number in the window, at position `number % REPLAY_WINDOW_PACKETS`.
    seen: [u64; WINDOW_WORDS],
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("largest", &self.largest)
            .field("seen_in_window", &self.seen.iter().map(|w| w.count_ones()).sum::<u32>())
            .finish()
    }
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window: every packet number is new.
    pub fn new() -> Self {
        Self { largest: None, seen: [0; WINDOW_WORDS] }
    }

    /// The largest accepted packet number, or `None` if nothing was accepted yet.
    pub fn largest(&self) -> Option<u64> {
        self.largest
    }

    /// The smallest packet number that is not yet too old. Numbers below it are refused with [`Replay::TooOld`].
    pub fn lowest_acceptable(&self) -> u64 {
        match self.largest {
            // `largest - (W - 1)`, saturating at 0 while fewer than W numbers lie at or below `largest`.
            Some(largest) => largest.saturating_sub(REPLAY_WINDOW_PACKETS - 1),
            None => 0,
        }
    }

    /// Word index and bit mask of `packet_number` in the ring bitmap.
    fn slot(packet_number: u64) -> (usize, u64) {
        let position = packet_number % REPLAY_WINDOW_PACKETS;
        // `position / WORD_BITS` is below WINDOW_WORDS, so the cast cannot truncate.
        ((position / WORD_BITS) as usize, 1 << (position % WORD_BITS))
    }

    fn is_set(&self, packet_number: u64) -> bool {
        let (word, mask) = Self::slot(packet_number);
        self.seen.get(word).is_some_and(|bits| bits & mask != 0)
    }

    fn set(&mut self, packet_number: u64, value: bool) {
        let (word, mask) = Self::slot(packet_number);
        if let Some(bits) = self.seen.get_mut(word) {
            if value {
                *bits |= mask;
            } else {
                *bits &= !mask;
            }
        }
    }

    /// Decides whether `packet_number` may be new, without changing anything. Call it before decryption.
    pub fn check(&self, packet_number: u64) -> Result<(), Replay> {
        let Some(largest) = self.largest else {
            return Ok(());
        };
        if packet_number > largest {
            return Ok(());
        }
        // `packet_number <= largest`, so the subtraction cannot underflow.
        if largest - packet_number >= REPLAY_WINDOW_PACKETS {
            return Err(Replay::TooOld);
        }
        if self.is_set(packet_number) { Err(Replay::Duplicate) } else { Ok(()) }
    }

    /// Records `packet_number` as seen, sliding the window up if it is the new largest. Call it only after the tag
    /// verified. A number [`check`](Self::check) would refuse changes nothing, so a caller that skipped `check`
    /// cannot corrupt the window.
    pub fn accept(&mut self, packet_number: u64) {
        if self.check(packet_number).is_err() {
            return;
        }
        match self.largest {
            Some(largest) if packet_number <= largest => {}
            Some(largest) => {
                // `packet_number > largest`, so the distance is at least 1 and cannot underflow.
                let distance = packet_number - largest;
                if distance >= REPLAY_WINDOW_PACKETS {
                    self.seen = [0; WINDOW_WORDS];
                } else {
                    // Positions of largest+1 ..= packet_number now stand for new numbers: forget their old bits.
                    // `largest < packet_number <= u64::MAX`, so `largest + 1` cannot overflow.
                    for newly_covered in (largest + 1)..=packet_number {
                        self.set(newly_covered, false);
                    }
                }
                self.largest = Some(packet_number);
            }
            None => {
                self.largest = Some(packet_number);
            }
        }
        self.set(packet_number, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn window_with(accepted: &[u64]) -> ReplayWindow {
        let mut window = ReplayWindow::new();
        for &n in accepted {
            assert_eq!(window.check(n), Ok(()), "packet {n} should be new");
            window.accept(n);
        }
        window
    }

    #[test]
    fn empty_window_accepts_anything() {
        let window = ReplayWindow::new();
        for n in [0, 1, REPLAY_WINDOW_PACKETS, u64::MAX] {
            assert_eq!(window.check(n), Ok(()));
        }
        assert_eq!(window.largest(), None);
        assert_eq!(window.lowest_acceptable(), 0);
    }

    #[test]
    fn duplicate_is_refused() {
        let window = window_with(&[0, 1, 5]);
        for n in [0, 1, 5] {
            assert_eq!(window.check(n), Err(Replay::Duplicate));
        }
        for n in [2, 3, 4, 6] {
            assert_eq!(window.check(n), Ok(()));
        }
    }

    #[test]
    fn reordered_packets_inside_the_window_are_accepted() {
        let window = window_with(&[10, 7, 9, 8, 3]);
        assert_eq!(window.largest(), Some(10));
        assert_eq!(window.check(8), Err(Replay::Duplicate));
    }

    #[test]
    fn window_edges() {
        let largest = 5_000;
        let window = window_with(&[largest]);
        let lowest = largest - (REPLAY_WINDOW_PACKETS - 1);
        assert_eq!(window.lowest_acceptable(), lowest);
        assert_eq!(window.check(lowest), Ok(()));
        assert_eq!(window.check(lowest - 1), Err(Replay::TooOld));
        assert_eq!(window.check(0), Err(Replay::TooOld));
    }

    #[test]
    fn bits_are_forgotten_when_the_window_slides_past_them() {
        // 1 and 1 + W share a bitmap position: accepting the second must not make it look like a duplicate, and
        // after the slide the first is too old rather than "seen".
        let mut window = window_with(&[1]);
        assert_eq!(window.check(1 + REPLAY_WINDOW_PACKETS), Ok(()));
        window.accept(1 + REPLAY_WINDOW_PACKETS);
        assert_eq!(window.check(1), Err(Replay::TooOld));
        // Numbers in between were never accepted, although the slide passed their positions.
        assert_eq!(window.check(2 + REPLAY_WINDOW_PACKETS / 2), Ok(()));
    }

    #[test]
    fn small_slide_clears_only_the_new_positions() {
        let window = window_with(&[100, 99, 100 + REPLAY_WINDOW_PACKETS - 1]);
        // 100 is the lowest number still inside the window and keeps its bit; 99 fell out.
        assert_eq!(window.check(100), Err(Replay::Duplicate));
        assert_eq!(window.check(99), Err(Replay::TooOld));
        assert_eq!(window.check(101), Ok(()));
    }

    #[test]
    fn partial_slide_forgets_the_bit_a_new_number_inherits() {
        // 5 and 5 + W share a bitmap position. The slide from 5 + W/2 to 5 + W + 1 is shorter than the window, so
        // only the newly covered positions are cleared — and 5's old bit must be among them.
        let window = window_with(&[5, 5 + REPLAY_WINDOW_PACKETS / 2, 5 + REPLAY_WINDOW_PACKETS + 1]);
        assert_eq!(window.check(5 + REPLAY_WINDOW_PACKETS), Ok(()));
        assert_eq!(window.check(5), Err(Replay::TooOld));
    }

    #[test]
    fn huge_jump_clears_the_whole_window() {
        let mut window = window_with(&[0, 1, 2, 3]);
        window.accept(u64::MAX - 3);
        assert_eq!(window.check(3), Err(Replay::TooOld));
        assert_eq!(window.check(u64::MAX - 4), Ok(()));
        assert_eq!(window.check(u64::MAX - 3), Err(Replay::Duplicate));
    }

    #[test]
    fn packet_numbers_near_u64_max_do_not_overflow() {
        let mut window = window_with(&[u64::MAX - 1]);
        window.accept(u64::MAX);
        assert_eq!(window.largest(), Some(u64::MAX));
        assert_eq!(window.check(u64::MAX), Err(Replay::Duplicate));
        assert_eq!(window.check(u64::MAX - 1), Err(Replay::Duplicate));
        assert_eq!(window.check(u64::MAX - 2), Ok(()));
        assert_eq!(window.lowest_acceptable(), u64::MAX - (REPLAY_WINDOW_PACKETS - 1));
        assert_eq!(window.check(u64::MAX - REPLAY_WINDOW_PACKETS), Err(Replay::TooOld));
    }

    #[test]
    fn accepting_a_refused_number_changes_nothing() {
        let mut window = window_with(&[5_000, 4_000]);
        let before = window.clone();
        window.accept(4_000);
        window.accept(0);
        assert_eq!(window, before);
    }

    #[test]
    fn debug_counts_seen_packets() {
        let text = format!("{:?}", window_with(&[3, 4]));
        assert!(text.contains("largest: Some(4)") && text.contains("seen_in_window: 2"), "{text}");
    }

    proptest! {
        /// Any arrival order of distinct numbers spanning less than the window: each is accepted exactly once.
        #[test]
        fn any_order_inside_the_window_is_accepted_once(
            base in 0u64..=u64::MAX - REPLAY_WINDOW_PACKETS,
            order in proptest::collection::btree_set(0..REPLAY_WINDOW_PACKETS, 1..200)
                .prop_map(|set| set.into_iter().collect::<Vec<_>>())
                .prop_shuffle(),
        ) {
            let mut window = ReplayWindow::new();
            for &offset in &order {
                prop_assert_eq!(window.check(base + offset), Ok(()));
                window.accept(base + offset);
                prop_assert_eq!(window.check(base + offset), Err(Replay::Duplicate));
            }
            for &offset in &order {
                prop_assert_eq!(window.check(base + offset), Err(Replay::Duplicate));
            }
        }

        /// Against a model that remembers every number: the window never accepts a number twice, and it refuses a
        /// new number only when that number is below the window.
        #[test]
        fn matches_a_model_that_remembers_everything(
            arrivals in proptest::collection::vec(0u64..3 * REPLAY_WINDOW_PACKETS, 1..400),
        ) {
            let mut window = ReplayWindow::new();
            let mut accepted = std::collections::BTreeSet::new();
            for n in arrivals {
                match window.check(n) {
                    Ok(()) => {
                        prop_assert!(accepted.insert(n), "{} accepted twice", n);
                        window.accept(n);
                    }
                    Err(Replay::Duplicate) => prop_assert!(accepted.contains(&n)),
                    Err(Replay::TooOld) => prop_assert!(n < window.lowest_acceptable()),
                }
            }
        }
    }
}
