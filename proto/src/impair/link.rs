//! One direction of an impaired path, as a sans-IO state machine.
//!
//! A [`Link`] never reads a clock. The caller says what time it is on every call, so the same link serves a
//! simulation that jumps from event to event and a real relay that passes `Instant::now() - start`:
//!
//! ```
//! use std::time::Duration;
//! use chatlab_proto::impair::{ImpairmentConfig, Link};
//!
//! let config = ImpairmentConfig { delay: Duration::from_millis(30), ..ImpairmentConfig::default() };
//! let mut link = Link::new(config)?;
//! link.send(Duration::ZERO, b"hello".to_vec());
//! assert_eq!(link.poll(Duration::from_millis(29)), None);            // still on the wire
//! assert_eq!(link.next_delivery(), Some(Duration::from_millis(30))); // when to wake up
//! assert_eq!(link.poll(Duration::from_millis(30)), Some(b"hello".to_vec()));
//! # Ok::<(), chatlab_proto::impair::ImpairmentError>(())
//! ```
//!
//! `send` decides a packet's whole fate at once: dropped, or which copies arrive when and with which bits. The
//! copies then wait in a binary heap ordered by (delivery time, sequence number), so `send` and `poll` cost
//! `O(log n)` for `n` packets in flight and a soak test can push 100 000 messages through in simulated time in a
//! blink. The sequence number breaks ties in send order, so packets due at the same instant come out in the order
//! they went in, as a FIFO wire would deliver them.
//!
//! Time should not go backwards between calls; if it does, nothing panics: a packet is simply scheduled from the
//! earlier time, and the bottleneck stays busy until the later time it had already promised.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

use super::config::ImpairmentConfig;
use super::error::ImpairmentError;
use super::loss::{LossModel, LossState};
use super::rng::{CopyDice, Dice, below_inclusive};
use super::stats::LinkStats;

/// Nanoseconds in a second, for the bytes-per-second arithmetic of the bottleneck.
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Bits in a byte, to pick the bit a corruption flips.
const BITS_PER_BYTE: u64 = 8;

/// One direction of an impaired path: packets go in with [`send`](Link::send) and come out, late, changed,
/// doubled or not at all, with [`poll`](Link::poll).
///
/// **Determinism.** Two links built from equal configs and given the same sequence of `send`, `poll` and
/// `set_config` calls (same times, same bytes) hand out exactly the same packets at the same times, on every
/// machine. How the random numbers are drawn, and which results therefore stay fixed when one setting changes, is
/// described in the `rng` module: each offered packet consumes one fixed block of draws.
#[derive(Debug, Clone)]
pub struct Link {
    config: ImpairmentConfig,
    dice: Dice,
    loss_state: LossState,
    in_flight: BinaryHeap<InFlight>,
    /// Sequence number of the next copy put in flight; orders copies due at the same instant.
    next_seq: u64,
    /// When the bottleneck finishes sending everything it has accepted so far.
    busy_until: Duration,
    /// Offer index of the latest-offered packet delivered so far, to count out-of-order deliveries.
    latest_offer_delivered: Option<u64>,
    stats: LinkStats,
}

/// A copy on its way, ordered so that the max-heap [`BinaryHeap`] pops the earliest delivery first.
#[derive(Debug, Clone)]
struct InFlight {
    deliver_at: Duration,
    seq: u64,
    /// Position of the packet among all offered packets (shared by a packet and its duplicate).
    offer_index: u64,
    packet: Vec<u8>,
}

impl InFlight {
    fn key(&self) -> (Duration, u64) {
        (self.deliver_at, self.seq)
    }
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: the smallest (time, seq) is the "largest" element, the one BinaryHeap pops first.
        other.key().cmp(&self.key())
    }
}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for InFlight {}

impl Link {
    /// A link applying `config`, its random stream seeded from `config.seed`.
    ///
    /// # Errors
    /// Whatever [`ImpairmentConfig::validate`] finds wrong with `config`.
    pub fn new(config: ImpairmentConfig) -> Result<Self, ImpairmentError> {
        config.validate()?;
        Ok(Self {
            dice: Dice::new(config.seed),
            config,
            loss_state: LossState::default(),
            in_flight: BinaryHeap::new(),
            next_seq: 0,
            busy_until: Duration::ZERO,
            latest_offer_delivered: None,
            stats: LinkStats::default(),
        })
    }

    /// Offers `packet` to the link at time `now` and decides its fate. See the
    /// [config documentation](super::config) for the order of the impairments.
    pub fn send(&mut self, now: Duration, packet: Vec<u8>) {
        // Rolled before anything can drop the packet, so every packet consumes the same draws.
        let dice = self.dice.roll_packet();
        let offer_index = self.stats.offered;
        let len = packet.len();
        self.stats.offered = self.stats.offered.saturating_add(1);
        self.stats.bytes_offered = self.stats.bytes_offered.saturating_add(byte_count(len));

        // The chain steps for every offered packet, even one the MTU is about to drop, so that its state depends
        // only on how many packets were offered, not on their sizes.
        let lost = self.loss_state.is_lost(&self.config.loss, dice.chain, dice.loss);
        if self.config.mtu.is_some_and(|mtu| len > mtu) {
            self.stats.dropped_mtu = self.stats.dropped_mtu.saturating_add(1);
            return;
        }
        if lost {
            self.stats.dropped_loss = self.stats.dropped_loss.saturating_add(1);
            return;
        }
        let departure = match self.config.rate_bytes_per_sec {
            None => now,
            Some(rate) => match self.enter_bottleneck(now, len, rate) {
                Some(departure) => departure,
                None => {
                    self.stats.dropped_queue = self.stats.dropped_queue.saturating_add(1);
                    return;
                }
            },
        };
        let [original_dice, copy_dice] = dice.copies;
        let copy = (dice.duplicate < self.config.duplicate).then(|| packet.clone());
        self.launch(departure, offer_index, packet, original_dice);
        if let Some(copy) = copy {
            self.stats.duplicated = self.stats.duplicated.saturating_add(1);
            self.launch(departure, offer_index, copy, copy_dice);
        }
    }

    /// Hands out the next packet due at or before `now`: earliest delivery time first, ties in send order.
    /// Returns `None` when nothing is due yet; call again until it does, as several packets may be due.
    pub fn poll(&mut self, now: Duration) -> Option<Vec<u8>> {
        if self.in_flight.peek().is_none_or(|next| next.deliver_at > now) {
            return None;
        }
        let delivered = self.in_flight.pop()?;
        self.stats.delivered = self.stats.delivered.saturating_add(1);
        self.stats.bytes_delivered = self.stats.bytes_delivered.saturating_add(byte_count(delivered.packet.len()));
        match self.latest_offer_delivered {
            Some(latest) if delivered.offer_index < latest => {
                self.stats.delivered_out_of_order = self.stats.delivered_out_of_order.saturating_add(1);
            }
            _ => self.latest_offer_delivered = Some(delivered.offer_index),
        }
        Some(delivered.packet)
    }

    /// When the earliest packet in flight is due, or `None` if the link is empty: the timer a caller should set.
    pub fn next_delivery(&self) -> Option<Duration> {
        self.in_flight.peek().map(|next| next.deliver_at)
    }

    /// Changes the impairments from now on, for live sliders.
    ///
    /// Packets already in flight keep the fate they were dealt. The random stream continues where it was (the
    /// new config's `seed` is not used, or moving a slider back and forth would replay the same dice), the
    /// Gilbert-Elliott chain keeps its state unless the new loss model has no chain, and the bottleneck stays busy
    /// with what it already accepted. After a change of rate, the bytes still waiting are estimated at the new
    /// rate when the next packet asks whether the queue has room.
    ///
    /// # Errors
    /// Whatever [`ImpairmentConfig::validate`] finds wrong; the link then keeps its old config.
    pub fn set_config(&mut self, config: ImpairmentConfig) -> Result<(), ImpairmentError> {
        config.validate()?;
        if !matches!(config.loss, LossModel::GilbertElliott(_)) {
            self.loss_state.reset();
        }
        self.config = config;
        Ok(())
    }

    /// The config in force.
    pub fn config(&self) -> &ImpairmentConfig {
        &self.config
    }

    /// Counters since the link was created.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Number of copies accepted and not yet handed out.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Queues a packet at the bottleneck and returns when its last bit leaves, or `None` if the queue is full.
    ///
    /// The queue is modelled as a fluid: the link is busy until `busy_until`, so the bytes still waiting (the
    /// packet being sent included) are `(busy_until - now) · rate`, rounded down. That needs no per-packet
    /// bookkeeping and is exact whenever the rate has not changed since those bytes were accepted.
    fn enter_bottleneck(&mut self, now: Duration, len: usize, rate: u64) -> Option<Duration> {
        let rate = u128::from(rate);
        let waiting_nanos = self.busy_until.saturating_sub(now).as_nanos();
        let waiting_bytes = waiting_nanos.saturating_mul(rate) / NANOS_PER_SEC;
        let after = waiting_bytes.saturating_add(len as u128);
        if after > self.config.queue_limit_bytes as u128 {
            return None;
        }
        let start = now.max(self.busy_until);
        // Rounded up, so that a packet never leaves before its last bit could have been sent.
        let serialise_nanos = (len as u128).saturating_mul(NANOS_PER_SEC).div_ceil(rate);
        let departure = start.saturating_add(duration_from_nanos(serialise_nanos));
        self.busy_until = departure;
        Some(departure)
    }

    /// Sends one copy on its way: delay, jitter, maybe held back, maybe a bit flipped.
    fn launch(&mut self, departure: Duration, offer_index: u64, mut packet: Vec<u8>, dice: CopyDice) {
        let jitter_max = u64::try_from(self.config.jitter.as_nanos()).unwrap_or(u64::MAX);
        let jitter = Duration::from_nanos(below_inclusive(dice.jitter, jitter_max));
        let mut deliver_at = departure.saturating_add(self.config.delay).saturating_add(jitter);
        if dice.reorder < self.config.reorder && !self.config.reorder_delay.is_zero() {
            deliver_at = deliver_at.saturating_add(self.config.reorder_delay);
            self.stats.reordered = self.stats.reordered.saturating_add(1);
        }
        if dice.corrupt < self.config.corrupt && flip_bit(&mut packet, dice.bit) {
            self.stats.corrupted = self.stats.corrupted.saturating_add(1);
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.in_flight.push(InFlight { deliver_at, seq, offer_index, packet });
    }
}

/// Flips the bit of `packet` that `draw` selects, uniformly among all its bits. Returns `false` for an empty
/// packet, which has no bit to flip.
fn flip_bit(packet: &mut [u8], draw: u64) -> bool {
    let bits = byte_count(packet.len()).saturating_mul(BITS_PER_BYTE);
    let Some(last_bit) = bits.checked_sub(1) else {
        return false;
    };
    let bit = below_inclusive(draw, last_bit);
    let byte = usize::try_from(bit / BITS_PER_BYTE).unwrap_or(usize::MAX);
    match packet.get_mut(byte) {
        Some(value) => {
            *value ^= 1 << (bit % BITS_PER_BYTE);
            true
        }
        None => false,
    }
}

/// A length as a `u64` counter increment (a `usize` always fits on the platforms Rust supports; saturate if not).
fn byte_count(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// A `Duration` from a nanosecond count that may exceed what `Duration::from_nanos` (a `u64`) takes, saturating
/// at [`Duration::MAX`].
fn duration_from_nanos(nanos: u128) -> Duration {
    let secs = nanos / NANOS_PER_SEC;
    let subsec = nanos % NANOS_PER_SEC;
    match (u64::try_from(secs), u32::try_from(subsec)) {
        (Ok(secs), Ok(subsec)) => Duration::new(secs, subsec),
        _ => Duration::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::impair::GilbertElliott;
    use proptest::prelude::*;

    /// How many standard deviations a statistical test tolerates. With a fixed seed each test is deterministic
    /// and cannot flake; five sigma means that a correct model would fail for fewer than one seed in a million,
    /// while a wrong rate (say 6 % instead of 5 % over 100 000 packets, 14 sigma away) fails for certain.
    const SIGMAS: f64 = 5.0;

    /// A packet whose first 8 bytes carry its number, so a test can tell which one came out.
    fn numbered(number: u64, len: usize) -> Vec<u8> {
        let mut packet = number.to_le_bytes().to_vec();
        packet.resize(len.max(8), 0);
        packet
    }

    fn number_of(packet: &[u8]) -> u64 {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&packet[..8]);
        u64::from_le_bytes(bytes)
    }

    /// Hands out everything due up to `until`, recording the instant each packet became due.
    fn deliver_until(link: &mut Link, until: Duration, out: &mut Vec<(Duration, Vec<u8>)>) {
        while let Some(due) = link.next_delivery().filter(|due| *due <= until) {
            let packet = link.poll(due).expect("a packet reported due is handed out");
            out.push((due, packet));
        }
    }

    /// Runs the sends through `link` in time order, polling at every delivery instant, and drains it.
    fn run(link: &mut Link, sends: impl IntoIterator<Item = (Duration, Vec<u8>)>) -> Vec<(Duration, Vec<u8>)> {
        let mut out = Vec::new();
        for (at, packet) in sends {
            deliver_until(link, at, &mut out);
            link.send(at, packet);
        }
        deliver_until(link, Duration::MAX, &mut out);
        out
    }

    /// `count` numbered packets of `len` bytes, one every `spacing`.
    fn paced(count: u64, spacing: Duration, len: usize) -> impl Iterator<Item = (Duration, Vec<u8>)> {
        (0..count).map(move |i| (spacing * u32::try_from(i).unwrap(), numbered(i, len)))
    }

    fn link(config: ImpairmentConfig) -> Link {
        Link::new(config).expect("test configs are valid")
    }

    /// Asserts that `observed` events in `trials` independent trials fit probability `p` within [`SIGMAS`].
    fn assert_binomial(what: &str, observed: u64, trials: u64, p: f64) {
        let n = trials as f64;
        let mean = n * p;
        let sigma = (n * p * (1.0 - p)).sqrt();
        let off = (observed as f64 - mean).abs();
        assert!(off <= SIGMAS * sigma, "{what}: {observed} of {trials}, expected {mean:.1} ± {:.1}", SIGMAS * sigma);
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn perfect_link_delivers_everything_in_order_after_the_fixed_delay() {
        let mut link = link(ImpairmentConfig { delay: ms(7), ..ImpairmentConfig::default() });
        // Several packets share each send instant: they must keep their send order.
        let sends: Vec<_> = (0..1000u64).map(|i| (ms(i / 3), numbered(i, 50))).collect();
        let out = run(&mut link, sends.clone());
        assert_eq!(out.len(), sends.len());
        for ((sent_at, sent), (due, got)) in sends.iter().zip(&out) {
            assert_eq!(got, sent);
            assert_eq!(*due, *sent_at + ms(7));
        }
        let stats = link.stats();
        assert_eq!((stats.offered, stats.delivered, stats.dropped()), (1000, 1000, 0));
        assert_eq!((stats.bytes_offered, stats.bytes_delivered), (50_000, 50_000));
        assert_eq!(stats.delivered_out_of_order, 0);
    }

    #[test]
    fn default_link_delivers_at_once() {
        let mut link = link(ImpairmentConfig::default());
        link.send(ms(3), b"now".to_vec());
        assert_eq!(link.next_delivery(), Some(ms(3)));
        assert_eq!(link.poll(ms(3)), Some(b"now".to_vec()));
        assert_eq!(link.poll(ms(3)), None);
        assert_eq!(link.next_delivery(), None);
    }

    #[test]
    fn nothing_is_handed_out_before_it_is_due() {
        let mut link = link(ImpairmentConfig { delay: ms(10), ..ImpairmentConfig::default() });
        link.send(ms(0), b"a".to_vec());
        link.send(ms(5), b"b".to_vec());
        assert_eq!(link.in_flight(), 2);
        assert_eq!(link.poll(ms(9)), None);
        // Polling late hands out both, in order, one per call.
        assert_eq!(link.poll(ms(100)), Some(b"a".to_vec()));
        assert_eq!(link.poll(ms(100)), Some(b"b".to_vec()));
        assert_eq!(link.poll(ms(100)), None);
        assert_eq!(link.stats().in_flight(), 0);
    }

    #[test]
    fn bernoulli_loss_rate_fits_the_binomial() {
        const PACKETS: u64 = 100_000;
        const P: f64 = 0.05;
        let config = ImpairmentConfig { loss: LossModel::Bernoulli { p: P }, seed: 1, ..ImpairmentConfig::default() };
        let mut link = link(config);
        let out = run(&mut link, paced(PACKETS, ms(1), 16));
        let stats = link.stats();
        assert_binomial("bernoulli loss", stats.dropped_loss, PACKETS, P);
        assert_eq!(out.len() as u64, PACKETS - stats.dropped_loss);
        assert_eq!(stats.delivered_out_of_order, 0);
    }

    /// Standard deviation of the loss fraction of a Gilbert-Elliott simple channel over `n` packets.
    ///
    /// Losses are not independent, so the binomial formula would be far too tight. A renewal-reward argument
    /// gives the right one: one cycle is a good run `G` then a bad run `B` (geometric, means `1/p_gb` and
    /// `1/p_bg`), the cycle's "reward" is `B` lost packets, and the long-run variance of the loss fraction is
    /// `Var(B - m·(G + B)) / (E[G + B] · n)` with `m` the mean loss, where `G` and `B` are independent.
    fn gilbert_loss_sigma(ge: &GilbertElliott, n: f64) -> f64 {
        let (p, q) = (ge.p_good_to_bad, ge.p_bad_to_good);
        let m = ge.mean_loss();
        let var_good = (1.0 - p) / (p * p);
        let var_bad = (1.0 - q) / (q * q);
        let mean_cycle = 1.0 / p + 1.0 / q;
        (((1.0 - m).powi(2) * var_bad + m * m * var_good) / (mean_cycle * n)).sqrt()
    }

    #[test]
    fn gilbert_elliott_mean_loss_and_burst_length_match_the_config() {
        const PACKETS: u64 = 200_000;
        let ge = GilbertElliott::from_mean_loss_and_burst(0.05, 4.0).unwrap();
        let config = ImpairmentConfig { loss: LossModel::GilbertElliott(ge), seed: 2, ..ImpairmentConfig::default() };
        let mut link = link(config);
        let out = run(&mut link, paced(PACKETS, ms(1), 8));

        let mut lost = vec![true; PACKETS as usize];
        for (_, packet) in &out {
            lost[number_of(packet) as usize] = false;
        }
        let loss_count = lost.iter().filter(|l| **l).count() as u64;
        assert_eq!(loss_count, link.stats().dropped_loss);
        let fraction = loss_count as f64 / PACKETS as f64;
        let sigma = gilbert_loss_sigma(&ge, PACKETS as f64);
        assert!((fraction - 0.05).abs() <= SIGMAS * sigma, "loss {fraction}, sigma {sigma}");

        // A burst is a maximal run of consecutive losses; its length is geometric with mean 1/p_bad_to_good.
        let bursts: Vec<usize> = lost.split(|l| !*l).map(<[bool]>::len).filter(|len| *len > 0).collect();
        let mean_burst = bursts.iter().sum::<usize>() as f64 / bursts.len() as f64;
        let q = ge.p_bad_to_good;
        let burst_sigma = ((1.0 - q) / (q * q) / bursts.len() as f64).sqrt();
        assert!((mean_burst - 4.0).abs() <= SIGMAS * burst_sigma, "burst {mean_burst}, sigma {burst_sigma}");

        // Independent loss at the same rate would make bursts of 1/(1 - 0.05) ≈ 1.05: the chain really clusters.
        assert!(mean_burst > 3.0);
    }

    #[test]
    fn duplication_rate_fits_and_copies_are_identical() {
        const PACKETS: u64 = 100_000;
        const P: f64 = 0.1;
        let mut link = link(ImpairmentConfig { duplicate: P, seed: 3, ..ImpairmentConfig::default() });
        let out = run(&mut link, paced(PACKETS, ms(1), 40));
        let stats = *link.stats();
        assert_binomial("duplication", stats.duplicated, PACKETS, P);
        assert_eq!(stats.delivered, PACKETS + stats.duplicated);
        let mut seen = vec![0u8; PACKETS as usize];
        for (_, packet) in &out {
            assert_eq!(packet, &numbered(number_of(packet), 40));
            seen[number_of(packet) as usize] += 1;
        }
        assert!(seen.iter().all(|count| (1..=2).contains(count)));
        assert_eq!(seen.iter().filter(|count| **count == 2).count() as u64, stats.duplicated);
    }

    #[test]
    fn corruption_rate_fits_and_flips_exactly_one_bit_anywhere() {
        const PACKETS: u64 = 100_000;
        const P: f64 = 0.1;
        const LEN: usize = 32;
        let mut link = link(ImpairmentConfig { corrupt: P, seed: 4, ..ImpairmentConfig::default() });
        let sends = (0..PACKETS).map(|i| (ms(i), vec![0u8; LEN]));
        let out = run(&mut link, sends);
        let stats = *link.stats();
        assert_binomial("corruption", stats.corrupted, PACKETS, P);

        let mut bit_hits = [0u32; LEN * 8];
        let mut flipped = 0;
        for (_, packet) in &out {
            let ones: u32 = packet.iter().map(|b| b.count_ones()).sum();
            assert!(ones <= 1, "a corruption flips one bit, not {ones}");
            if let Some(byte) = packet.iter().position(|b| *b != 0) {
                flipped += 1;
                bit_hits[byte * 8 + packet[byte].trailing_zeros() as usize] += 1;
            }
        }
        assert_eq!(flipped, stats.corrupted);
        // About 39 hits per bit are expected; every position must be reachable.
        assert!(bit_hits.iter().all(|hits| *hits > 0), "{bit_hits:?}");
    }

    #[test]
    fn empty_packets_are_never_corrupted() {
        let mut link = link(ImpairmentConfig { corrupt: 1.0, ..ImpairmentConfig::default() });
        let out = run(&mut link, (0..10).map(|i| (ms(i), Vec::new())));
        assert_eq!(out.len(), 10);
        assert_eq!(link.stats().corrupted, 0);
    }

    #[test]
    fn jitter_reorders_but_stays_within_its_window() {
        const PAIRS: u64 = 5_000;
        let spacing = ms(5);
        let (delay, jitter) = (ms(10), ms(20));
        let mut link = link(ImpairmentConfig { delay, jitter, seed: 5, ..ImpairmentConfig::default() });
        let out = run(&mut link, paced(2 * PAIRS, spacing, 8));
        assert_eq!(out.len() as u64, 2 * PAIRS);

        let mut arrival = vec![Duration::ZERO; out.len()];
        for (due, packet) in &out {
            let n = number_of(packet);
            let sent = spacing * u32::try_from(n).unwrap();
            assert!(*due >= sent + delay, "packet {n} early");
            assert!(*due <= sent + delay + jitter, "packet {n} late");
            arrival[n as usize] = *due;
        }
        // Disjoint pairs (2k, 2k+1) are independent; the second overtakes the first with probability
        // (J - d)² / (2·J²) for jitter J and spacing d (see the config docs).
        let swapped = (0..PAIRS).filter(|k| arrival[(2 * k + 1) as usize] < arrival[(2 * k) as usize]).count();
        let (j, d) = (jitter.as_secs_f64(), spacing.as_secs_f64());
        assert_binomial("jitter swaps", swapped as u64, PAIRS, (j - d).powi(2) / (2.0 * j * j));
        assert!(link.stats().delivered_out_of_order > 0);
        assert_eq!(link.stats().reordered, 0, "jitter alone holds nothing back");
    }

    #[test]
    fn reorder_holds_back_packets_by_the_reorder_delay() {
        const PACKETS: u64 = 20_000;
        const P: f64 = 0.1;
        let config = ImpairmentConfig {
            delay: ms(10),
            reorder: P,
            reorder_delay: ms(50),
            seed: 6,
            ..ImpairmentConfig::default()
        };
        let mut link = link(config);
        let out = run(&mut link, paced(PACKETS, ms(1), 8));
        let mut held = 0u64;
        for (due, packet) in &out {
            let sent = ms(number_of(packet));
            match *due - sent {
                d if d == ms(10) => {}
                d if d == ms(60) => held += 1,
                other => panic!("unexpected delay {other:?}"),
            }
        }
        let stats = link.stats();
        assert_eq!(held, stats.reordered);
        assert_binomial("reorder", held, PACKETS, P);
        assert!(stats.delivered_out_of_order >= held - 1);
    }

    #[test]
    fn reorder_with_zero_delay_changes_nothing() {
        let config = ImpairmentConfig { reorder: 1.0, reorder_delay: Duration::ZERO, ..ImpairmentConfig::default() };
        let mut link = link(config);
        let out = run(&mut link, paced(100, ms(1), 8));
        assert!(out.iter().enumerate().all(|(i, (_, p))| number_of(p) == i as u64));
        assert_eq!(link.stats().reordered, 0);
    }

    #[test]
    fn mtu_drops_only_oversized_packets() {
        let mut link = link(ImpairmentConfig { mtu: Some(100), ..ImpairmentConfig::default() });
        let out = run(&mut link, (0..=200usize).map(|len| (ms(len as u64), vec![0xAB; len])));
        let lengths: Vec<usize> = out.iter().map(|(_, p)| p.len()).collect();
        assert_eq!(lengths, (0..=100).collect::<Vec<_>>());
        assert_eq!(link.stats().dropped_mtu, 100);
        assert_eq!(link.stats().dropped(), 100);
    }

    #[test]
    fn rate_limit_spaces_packets_by_size_over_rate() {
        let config = ImpairmentConfig { rate_bytes_per_sec: Some(1000), delay: ms(5), ..ImpairmentConfig::default() };
        let mut link = link(config);
        // A burst of five 100-byte packets at t = 0 leaves one every 100 ms, the first after its own 100 ms.
        let out = run(&mut link, (0..5).map(|i| (Duration::ZERO, numbered(i, 100))));
        let dues: Vec<Duration> = out.iter().map(|(due, _)| *due).collect();
        assert_eq!(dues, vec![ms(105), ms(205), ms(305), ms(405), ms(505)]);
        // An idle link sends a packet at once: only its own serialisation time, 200 B at 1000 B/s.
        link.send(ms(1000), numbered(9, 200));
        assert_eq!(link.next_delivery(), Some(ms(1205)));
    }

    #[test]
    fn serialisation_time_rounds_up_to_whole_nanoseconds() {
        let config = ImpairmentConfig { rate_bytes_per_sec: Some(3), ..ImpairmentConfig::default() };
        let mut link = link(config);
        link.send(Duration::ZERO, vec![0; 1]);
        assert_eq!(link.next_delivery(), Some(Duration::from_nanos(333_333_334)));
    }

    #[test]
    fn full_queue_tail_drops_until_it_drains() {
        let config =
            ImpairmentConfig { rate_bytes_per_sec: Some(1000), queue_limit_bytes: 300, ..ImpairmentConfig::default() };
        let mut link = link(config);
        for i in 0..5 {
            link.send(Duration::ZERO, numbered(i, 100));
        }
        assert_eq!(link.stats().dropped_queue, 2, "300 bytes of queue hold three 100-byte packets");
        // At 100 ms the first has left: 200 bytes wait, one more fits.
        link.send(ms(100), numbered(5, 100));
        assert_eq!(link.stats().dropped_queue, 2);
        // At 150 ms 250 bytes wait (until 400 ms): no room for 100 more.
        link.send(ms(150), numbered(6, 100));
        assert_eq!(link.stats().dropped_queue, 3);
        // A packet larger than the whole queue can never be accepted.
        link.send(ms(10_000), numbered(7, 301));
        assert_eq!(link.stats().dropped_queue, 4);
        let out = run(&mut link, []);
        let numbers: Vec<u64> = out.iter().map(|(_, p)| number_of(p)).collect();
        assert_eq!(numbers, vec![0, 1, 2, 5]);
        assert_eq!(out.last().map(|(due, _)| *due), Some(ms(400)));
    }

    fn everything(seed: u64) -> ImpairmentConfig {
        ImpairmentConfig {
            loss: LossModel::GilbertElliott(GilbertElliott::from_mean_loss_and_burst(0.1, 3.0).unwrap()),
            delay: ms(20),
            jitter: ms(15),
            reorder: 0.05,
            reorder_delay: ms(30),
            duplicate: 0.05,
            corrupt: 0.05,
            mtu: Some(1100),
            rate_bytes_per_sec: Some(200_000),
            queue_limit_bytes: 20_000,
            seed,
        }
    }

    fn varied_sends() -> impl Iterator<Item = (Duration, Vec<u8>)> {
        (0..5_000u64).map(|i| (Duration::from_micros(i * 700), numbered(i, 8 + (i as usize * 37) % 1200)))
    }

    #[test]
    fn same_seed_same_trace_different_seed_different_trace() {
        let first = run(&mut link(everything(11)), varied_sends());
        let again = run(&mut link(everything(11)), varied_sends());
        let other = run(&mut link(everything(12)), varied_sends());
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn known_answer_trace_pins_the_draw_order() {
        // Recorded from this implementation. If it changes, the order or number of draws per packet changed, and
        // every seed recorded in a lab report or a bug now means something else: change it only on purpose.
        let config = ImpairmentConfig {
            loss: LossModel::Bernoulli { p: 0.3 },
            jitter: Duration::from_micros(1000),
            duplicate: 0.2,
            corrupt: 0.2,
            seed: 42,
            ..ImpairmentConfig::default()
        };
        let out = run(&mut link(config), paced(12, ms(1), 8));
        let trace: Vec<(u128, u64)> = out.iter().map(|(due, p)| (due.as_micros(), number_of(p))).collect();
        assert_eq!(trace, KNOWN_TRACE_SEED_42);
    }

    /// (delivery time in µs, packet number as read back, corruption included) for the config above.
    /// Packets 2 and 9 are lost, 10 is duplicated, and 0, 5 and one copy of 10 have a bit flipped in their number.
    const KNOWN_TRACE_SEED_42: &[(u128, u64)] = &[
        (627, 524_288),
        (1728, 1),
        (3424, 3),
        (4864, 4),
        (5709, 549_755_813_893),
        (6232, 6),
        (7460, 7),
        (8173, 8),
        (10_453, 134_217_738),
        (10_523, 10),
        (11_203, 11),
    ];

    #[test]
    fn raising_the_loss_probability_only_adds_losses() {
        let delivered_at = |p: f64| -> std::collections::BTreeSet<u64> {
            let config = ImpairmentConfig { loss: LossModel::Bernoulli { p }, seed: 13, ..ImpairmentConfig::default() };
            run(&mut link(config), paced(10_000, ms(1), 8)).iter().map(|(_, p)| number_of(p)).collect()
        };
        let at_5 = delivered_at(0.05);
        let at_10 = delivered_at(0.10);
        assert!(at_10.is_subset(&at_5));
        assert!(at_10.len() < at_5.len());
    }

    #[test]
    fn switching_other_impairments_off_keeps_the_same_losses() {
        let lost = |config: ImpairmentConfig| -> Vec<u64> {
            let out = run(&mut link(config), paced(10_000, ms(1), 64));
            let delivered: std::collections::BTreeSet<u64> = out.iter().map(|(_, p)| number_of(p)).collect();
            (0..10_000).filter(|n| !delivered.contains(n)).collect()
        };
        let loss = LossModel::Bernoulli { p: 0.1 };
        let busy =
            ImpairmentConfig { loss, jitter: ms(5), reorder: 0.2, duplicate: 0.3, seed: 14, ..Default::default() };
        let plain = ImpairmentConfig { loss, seed: 14, ..Default::default() };
        // Corruption may hit the number bytes, so it stays off here; everything else changes.
        assert_eq!(lost(busy), lost(plain));
    }

    #[test]
    fn new_rejects_an_invalid_config() {
        let err = Link::new(ImpairmentConfig { corrupt: -1.0, ..ImpairmentConfig::default() }).unwrap_err();
        assert!(matches!(err, ImpairmentError::ProbabilityOutOfRange { field: "corrupt", .. }));
    }

    #[test]
    fn set_config_leaves_packets_in_flight_alone() {
        let mut link = link(ImpairmentConfig { delay: ms(50), ..ImpairmentConfig::default() });
        link.send(ms(0), b"before".to_vec());
        let blackhole = ImpairmentConfig { loss: LossModel::Bernoulli { p: 1.0 }, ..ImpairmentConfig::default() };
        link.set_config(blackhole.clone()).unwrap();
        assert_eq!(link.config(), &blackhole);
        link.send(ms(1), b"after".to_vec());
        assert_eq!(link.poll(ms(50)), Some(b"before".to_vec()));
        assert_eq!(link.next_delivery(), None);
        assert_eq!(link.stats().dropped_loss, 1);
    }

    #[test]
    fn set_config_refuses_invalid_and_keeps_the_old_one() {
        let config = ImpairmentConfig { delay: ms(5), ..ImpairmentConfig::default() };
        let mut link = link(config.clone());
        let bad = ImpairmentConfig { reorder: f64::NAN, ..ImpairmentConfig::default() };
        assert!(matches!(link.set_config(bad), Err(ImpairmentError::ProbabilityOutOfRange { field: "reorder", .. })));
        assert_eq!(link.config(), &config);
    }

    #[test]
    fn set_config_continues_the_random_stream() {
        let config =
            ImpairmentConfig { loss: LossModel::Bernoulli { p: 0.3 }, seed: 15, ..ImpairmentConfig::default() };
        let straight = run(&mut link(config.clone()), paced(2_000, ms(1), 8));

        // Re-applying the same config halfway (with a different seed field, which set_config ignores) must not
        // restart or reseed the dice.
        let mut switched = link(config.clone());
        let mut out = run(&mut switched, paced(1_000, ms(1), 8));
        switched.set_config(ImpairmentConfig { seed: 999, ..config }).unwrap();
        out.extend(run(&mut switched, paced(2_000, ms(1), 8).skip(1_000)));
        assert_eq!(out, straight);
    }

    #[test]
    fn gilbert_chain_survives_a_slider_move_but_resets_when_the_model_goes() {
        // p_bad_to_good = 0 makes the bad state absorbing: once in it, every packet is lost.
        let stuck = GilbertElliott { p_good_to_bad: 1.0, p_bad_to_good: 0.0, loss_in_good: 0.0, loss_in_bad: 1.0 };
        let mut link = link(ImpairmentConfig { loss: LossModel::GilbertElliott(stuck), ..ImpairmentConfig::default() });
        link.send(ms(0), b"x".to_vec());
        assert_eq!(link.stats().dropped_loss, 1);

        // Still bad after changing another knob, and after moving to a chain that would never enter bad.
        let calm = GilbertElliott { p_good_to_bad: 0.0, ..stuck };
        link.set_config(ImpairmentConfig { loss: LossModel::GilbertElliott(calm), ..ImpairmentConfig::default() })
            .unwrap();
        link.send(ms(1), b"x".to_vec());
        assert_eq!(link.stats().dropped_loss, 2);

        // Leaving the Gilbert-Elliott model resets the chain to good.
        link.set_config(ImpairmentConfig::default()).unwrap();
        link.set_config(ImpairmentConfig { loss: LossModel::GilbertElliott(calm), ..ImpairmentConfig::default() })
            .unwrap();
        link.send(ms(2), b"x".to_vec());
        assert_eq!(link.stats().dropped_loss, 2);
        assert_eq!(link.poll(ms(2)), Some(b"x".to_vec()));
    }

    #[test]
    fn times_near_the_end_of_duration_saturate() {
        let config = ImpairmentConfig { rate_bytes_per_sec: Some(1), ..everything(16) };
        let mut link = link(ImpairmentConfig { loss: LossModel::None, mtu: None, ..config });
        link.send(Duration::MAX, vec![1; 10]);
        link.send(Duration::MAX, vec![2; 10]);
        assert_eq!(link.next_delivery(), Some(Duration::MAX));
        let out = run(&mut link, []);
        assert!(!out.is_empty());
        assert!(out.iter().all(|(due, _)| *due == Duration::MAX));
    }

    #[test]
    fn flip_bit_handles_every_position_and_empty_packets() {
        assert!(!flip_bit(&mut [], u64::MAX));
        let mut one = [0u8];
        assert!(flip_bit(&mut one, 0));
        assert_eq!(one, [0b0000_0001]);
        let mut two = [0u8; 2];
        assert!(flip_bit(&mut two, u64::MAX));
        assert_eq!(two, [0, 0b1000_0000]);
    }

    #[test]
    fn duration_from_nanos_saturates() {
        assert_eq!(duration_from_nanos(1_500_000_000), Duration::new(1, 500_000_000));
        assert_eq!(duration_from_nanos(u128::MAX), Duration::MAX);
    }

    fn arb_probability() -> impl Strategy<Value = f64> {
        prop_oneof![Just(0.0), Just(1.0), 0.0..=1.0]
    }

    fn arb_loss() -> impl Strategy<Value = LossModel> {
        prop_oneof![
            Just(LossModel::None),
            arb_probability().prop_map(|p| LossModel::Bernoulli { p }),
            (arb_probability(), arb_probability(), arb_probability(), arb_probability()).prop_map(|(a, b, c, d)| {
                LossModel::GilbertElliott(GilbertElliott {
                    p_good_to_bad: a,
                    p_bad_to_good: b,
                    loss_in_good: c,
                    loss_in_bad: d,
                })
            }),
        ]
    }

    fn arb_delay() -> impl Strategy<Value = Duration> {
        prop_oneof![Just(Duration::ZERO), (0u64..=100_000).prop_map(Duration::from_micros)]
    }

    fn arb_config() -> impl Strategy<Value = ImpairmentConfig> {
        (
            arb_loss(),
            (arb_delay(), arb_delay(), arb_delay()),
            (arb_probability(), arb_probability(), arb_probability()),
            proptest::option::of(1usize..=2_000),
            proptest::option::of(1u64..=10_000_000),
            1usize..=100_000,
            any::<u64>(),
        )
            .prop_map(
                |(loss, (delay, jitter, reorder_delay), (reorder, duplicate, corrupt), mtu, rate, queue, seed)| {
                    ImpairmentConfig {
                        loss,
                        delay,
                        jitter,
                        reorder,
                        reorder_delay,
                        duplicate,
                        corrupt,
                        mtu,
                        rate_bytes_per_sec: rate,
                        queue_limit_bytes: queue,
                        seed,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn arbitrary_configs_never_panic_and_conserve_packets(
            first in arb_config(),
            second in arb_config(),
            sends in proptest::collection::vec((0u64..5_000, 0usize..2_500), 0..200),
        ) {
            prop_assert_eq!(first.validate(), Ok(()));
            let mut link = Link::new(first).unwrap();
            let mut now = Duration::ZERO;
            let mut out = Vec::new();
            let half = sends.len() / 2;
            for (i, (gap_us, len)) in sends.iter().enumerate() {
                if i == half {
                    link.set_config(second.clone()).unwrap();
                }
                now += Duration::from_micros(*gap_us);
                deliver_until(&mut link, now, &mut out);
                link.send(now, vec![0x5A; *len]);
                let stats = link.stats();
                prop_assert_eq!(stats.in_flight(), link.in_flight() as u64);
            }
            deliver_until(&mut link, Duration::MAX, &mut out);
            let stats = *link.stats();
            prop_assert_eq!(link.in_flight(), 0);
            prop_assert_eq!(stats.offered, sends.len() as u64);
            prop_assert_eq!(stats.delivered, stats.offered - stats.dropped() + stats.duplicated);
            prop_assert_eq!(stats.delivered, out.len() as u64);
            prop_assert_eq!(stats.bytes_delivered, out.iter().map(|(_, p)| p.len() as u64).sum::<u64>());
            prop_assert!(out.windows(2).all(|w| w[0].0 <= w[1].0), "delivery times never go backwards");
        }
    }
}
