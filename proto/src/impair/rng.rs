//! Reproducible randomness for the impairment model.
//!
//! A simulation test that fails once must fail the same way when it is run again, on another machine, with another
//! compiler. So the model never asks the operating system for randomness: it runs a ChaCha8 stream cipher seeded from
//! the config's `u64` seed (`rand_chacha` promises the same output for the same seed on every platform) and turns
//! its 64-bit outputs into decisions with integer arithmetic and one exactly specified conversion to `f64`.
//!
//! ## One fixed block of numbers per packet
//!
//! Every packet offered to a [`Link`](super::Link) consumes exactly [`DRAWS_PER_PACKET`] numbers, in the order of
//! the fields of [`PacketDice`], whatever the config says and whatever then happens to the packet (even a packet
//! dropped for its size rolls all its dice). So the `k`-th packet always sees the same numbers for a given seed,
//! and each impairment reads its own numbers. Two things follow, and the tests pin both:
//!
//! * changing one impairment never changes the fate another one deals: switching duplication off loses exactly the
//!   same packets as before;
//! * a decision is `draw < probability`, so raising a probability only adds events: with the same seed, a loss of
//!   10 % drops every packet that 5 % dropped, plus others.
//!
//! What does *not* stay fixed: delivery *times* behind a rate limit depend on which earlier packets were dropped
//! (they change the queue), and the Gilbert-Elliott state depends on its own transition probabilities.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How many 64-bit numbers every offered packet consumes: three for the packet, four for each of its two possible
/// copies (see [`PacketDice`]).
pub(crate) const DRAWS_PER_PACKET: usize = 3 + 2 * 4;

/// Scale from the top 53 bits of a draw to `[0, 1)`: an `f64` has a 53-bit significand, so every such value is
/// exactly representable and equally spaced.
const UNIT_SCALE: f64 = 1.0 / (1u64 << 53) as f64;

/// Bits dropped from a 64-bit draw to keep the 53 a `f64` can hold exactly.
const UNIT_SHIFT: u32 = 64 - 53;

/// The random numbers one copy of a packet (the original or its duplicate) uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CopyDice {
    /// Raw draw that picks this copy's jitter, through [`below_inclusive`].
    pub jitter: u64,
    /// Uniform in `[0, 1)`: this copy is held back when it is below the reorder probability.
    pub reorder: f64,
    /// Uniform in `[0, 1)`: this copy is corrupted when it is below the corruption probability.
    pub corrupt: f64,
    /// Raw draw that picks which bit a corruption flips.
    pub bit: u64,
}

/// The fixed block of random numbers one offered packet consumes, drawn in the order of the fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PacketDice {
    /// Uniform in `[0, 1)`: drives the Gilbert-Elliott state transition.
    pub chain: f64,
    /// Uniform in `[0, 1)`: the packet is lost when it is below the loss probability of the current state.
    pub loss: f64,
    /// Uniform in `[0, 1)`: the packet is duplicated when it is below the duplication probability.
    pub duplicate: f64,
    /// Dice of the original, then of the duplicate (rolled even when there is none).
    pub copies: [CopyDice; 2],
}

/// The random stream of one link.
#[derive(Debug, Clone)]
pub(crate) struct Dice {
    rng: ChaCha8Rng,
}

impl Dice {
    /// A stream that depends only on `seed`.
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// Rolls the next packet's block, always [`DRAWS_PER_PACKET`] numbers.
    ///
    /// All the numbers are drawn first into a fixed-size array and then given their roles, so the count cannot
    /// drift when a field is added: the destructuring below only compiles if it names every draw.
    pub fn roll_packet(&mut self) -> PacketDice {
        let mut raw = [0u64; DRAWS_PER_PACKET];
        for draw in &mut raw {
            *draw = self.rng.next_u64();
        }
        let [chain, loss, duplicate, jitter_0, reorder_0, corrupt_0, bit_0, jitter_1, reorder_1, corrupt_1, bit_1] =
            raw;
        let copy = |jitter, reorder, corrupt, bit| CopyDice {
            jitter,
            reorder: unit_from_bits(reorder),
            corrupt: unit_from_bits(corrupt),
            bit,
        };
        PacketDice {
            chain: unit_from_bits(chain),
            loss: unit_from_bits(loss),
            duplicate: unit_from_bits(duplicate),
            copies: [copy(jitter_0, reorder_0, corrupt_0, bit_0), copy(jitter_1, reorder_1, corrupt_1, bit_1)],
        }
    }
}

/// Maps a 64-bit draw to `[0, 1)`. Because the result is always below one, `unit < p` is never true for `p = 0`
/// and always true for `p = 1`: the two ends of a probability slider mean exactly "never" and "always".
pub(crate) fn unit_from_bits(bits: u64) -> f64 {
    (bits >> UNIT_SHIFT) as f64 * UNIT_SCALE
}

/// Maps a 64-bit draw to an integer in `[0, max]`, both ends included.
///
/// It multiplies the draw by `max + 1` and keeps the high 64 bits of the 128-bit product: a draw spread evenly
/// over `[0, 2^64)` lands evenly on `[0, max]` up to a bias of at most `(max + 1) / 2^64`, negligible for the
/// nanosecond jitters and bit positions it picks, and it needs no division and no retry loop.
pub(crate) fn below_inclusive(bits: u64, max: u64) -> u64 {
    let span = u128::from(max) + 1;
    let scaled = (u128::from(bits) * span) >> 64;
    // `scaled` is at most `max` because `bits < 2^64`, so it always fits back into a u64.
    u64::try_from(scaled).unwrap_or(max)
}

/// Derives an independent seed for sub-stream `stream` of `seed`.
///
/// A [`Duplex`](super::Duplex) needs one seed per direction. Using `seed` and `seed + 1` would work with ChaCha,
/// whose seeding scrambles its input, but it invites a reader to think nearby seeds are related; this runs the
/// ChaCha stream numbered `stream` under the key derived from `seed` and takes its first output, so every
/// (seed, stream) pair gets an unrelated, reproducible value.
pub(crate) fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_covers_zero_to_just_below_one() {
        assert_eq!(unit_from_bits(0), 0.0);
        let top = unit_from_bits(u64::MAX);
        assert!(top < 1.0);
        assert!(top > 1.0 - 1e-15);
        assert_eq!(unit_from_bits(1 << 63), 0.5);
    }

    #[test]
    fn below_inclusive_reaches_both_ends_and_never_exceeds_max() {
        assert_eq!(below_inclusive(0, 10), 0);
        assert_eq!(below_inclusive(u64::MAX, 10), 10);
        assert_eq!(below_inclusive(u64::MAX, 0), 0);
        assert_eq!(below_inclusive(u64::MAX, u64::MAX), u64::MAX);
        assert_eq!(below_inclusive(1 << 63, 9), 5);
    }

    #[test]
    fn every_packet_rolls_the_same_number_of_draws() {
        // Rolling one packet must advance the stream by exactly DRAWS_PER_PACKET outputs, or the alignment the
        // module promises is broken.
        let mut dice = Dice::new(42);
        dice.roll_packet();
        let mut raw = ChaCha8Rng::seed_from_u64(42);
        for _ in 0..DRAWS_PER_PACKET {
            raw.next_u64();
        }
        assert_eq!(dice.rng.next_u64(), raw.next_u64());
    }

    #[test]
    fn same_seed_same_dice_different_seed_different_dice() {
        let a: Vec<_> = {
            let mut d = Dice::new(7);
            (0..4).map(|_| d.roll_packet()).collect()
        };
        let b: Vec<_> = {
            let mut d = Dice::new(7);
            (0..4).map(|_| d.roll_packet()).collect()
        };
        let c: Vec<_> = {
            let mut d = Dice::new(8);
            (0..4).map(|_| d.roll_packet()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn known_answer_pins_the_stream_across_platforms_and_versions() {
        // If a dependency upgrade changed the stream, every recorded simulation trace would silently change too.
        // The value was recorded from this code with rand_chacha 0.9; it must never change.
        let mut dice = Dice::new(0);
        assert_eq!(dice.rng.next_u64(), KNOWN_FIRST_DRAW_SEED_0);
    }

    /// First output of `ChaCha8Rng::seed_from_u64(0)`, recorded from rand_chacha 0.9.
    const KNOWN_FIRST_DRAW_SEED_0: u64 = 13_080_132_717_333_068_652;

    #[test]
    fn derived_seeds_differ_per_stream_and_are_stable() {
        assert_ne!(derive_seed(1, 0), derive_seed(1, 1));
        assert_ne!(derive_seed(1, 0), derive_seed(2, 0));
        assert_eq!(derive_seed(1, 0), derive_seed(1, 0));
    }
}
