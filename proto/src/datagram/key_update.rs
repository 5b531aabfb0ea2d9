//! Key limits and key updates.
//!
//! # Why one key may not protect unlimited traffic
//!
//! Even with unique nonces, every packet sealed under one AES-GCM key gives an attacker a little more material: AES
//! is a permutation, so its output blocks under one key never collide, while truly random blocks would; after very
//! many blocks that difference becomes measurable and confidentiality erodes. RFC 9001 (QUIC-TLS), section 6.6,
//! turns the published bounds into a *confidentiality limit* of 2^23 packets per key for AES-GCM, for QUIC-sized
//! packets, which are no smaller than chatlab's 1200-byte datagrams. (The matching *integrity limit* — how many
//! forgeries a receiver may try to verify — is 2^52 for AES-GCM, far beyond what any chatlab session can receive, so
//! it needs no counter here.)
//!
//! # How a key update works
//!
//! chatlab does what QUIC does (RFC 9001, section 6): when the sender has sealed [`MAX_PACKETS_PER_KEY`] packets
//! under one key, it derives the next *generation* of its direction secret with HKDF-Expand and the label
//! [`KEY_UPDATE_LABEL`], derives a fresh key and nonce salt from it, and flips the **key-phase bit** in the header
//! flags. No message is exchanged: the receiver runs the same one-way derivation.
//!
//! The receiver reads the key-phase bit of each datagram (it is in the clear, and authenticated as part of the
//! header) and picks a key:
//!
//! * same phase as its current key → the current key;
//! * other phase and a packet number **above** the first packet number it accepted under the current key → the
//!   *next* generation (precomputed, so a forged packet costs no key derivation and the time to reject it reveals
//!   nothing). When the tag verifies, the receiver rotates: next becomes current, current becomes previous;
//! * other phase and a packet number **below** that first number → the *previous* generation: a packet sealed before
//!   the switch that was overtaken by one sealed after it.
//!
//! The choice is exact because packet numbers increase across generations: every number of generation `g` is
//! below every number of generation `g + 1`.
//!
//! # How long the previous key is kept (the bound)
//!
//! Exactly one previous generation is kept, and only while it can still be useful: every packet of the previous
//! generation has a number below the current generation's first accepted number, so once the replay window's lowest
//! acceptable number has passed that first number, any previous-generation packet is refused as too old before any
//! key is tried, and the previous key is dropped. A packet that arrives two or more generations late fails
//! authentication and is dropped like a lost packet; with the default limit that would need millions of packets of
//! reordering, far beyond the replay window. The receiver also has to see at least one packet of each generation to
//! follow the updates, which holds unless [`MAX_PACKETS_PER_KEY`] packets in a row are lost.

use super::keys::{DirectionSecret, PacketKey};

/// Packets one key may seal before the sender moves to the next key generation.
///
/// 2^23 = 8 388 608 is the confidentiality limit RFC 9001, section 6.6, gives for AES-GCM. At chatlab's target of
/// 150 000 messages per second it means a key update about once a minute under full load, and never in an ordinary
/// chat session. Tests lower it through [`KeyUpdateConfig`] to exercise updates without sealing millions of packets.
pub const MAX_PACKETS_PER_KEY: u64 = 1 << 23;

/// HKDF-Expand `info` label that derives a direction's next secret from its current one.
pub const KEY_UPDATE_LABEL: &[u8] = b"chatlab v1 key update";

/// When the sender updates its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUpdateConfig {
    /// Packets sealed under one key before the next key generation takes over. A value of 0 is treated as 1: every
    /// key protects at least one packet.
    pub max_packets_per_key: u64,
}

impl Default for KeyUpdateConfig {
    fn default() -> Self {
        Self { max_packets_per_key: MAX_PACKETS_PER_KEY }
    }
}

impl KeyUpdateConfig {
    /// A configuration that updates the key after `max_packets_per_key` packets: lower than the default only to
    /// exercise key updates in tests and labs. Higher values than [`MAX_PACKETS_PER_KEY`] weaken confidentiality.
    pub fn with_max_packets_per_key(max_packets_per_key: u64) -> Self {
        Self { max_packets_per_key }
    }

    /// The effective limit, at least 1.
    pub(crate) fn limit(&self) -> u64 {
        self.max_packets_per_key.max(1)
    }
}

/// The key-phase bit: which of two consecutive key generations sealed a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPhase {
    /// Even key generations (0, 2, 4, …).
    Zero,
    /// Odd key generations (1, 3, 5, …).
    One,
}

impl KeyPhase {
    /// The other phase: the phase of the next (and of the previous) key generation.
    pub fn flipped(self) -> Self {
        match self {
            KeyPhase::Zero => KeyPhase::One,
            KeyPhase::One => KeyPhase::Zero,
        }
    }
}

/// One key generation of one direction: its secret (to derive the next generation), its packet key and its phase.
#[derive(Debug)]
pub(crate) struct KeyGeneration {
    secret: DirectionSecret,
    key: PacketKey,
    number: u64,
}

impl KeyGeneration {
    /// Generation 0 of a direction.
    pub(crate) fn first(secret: DirectionSecret) -> Self {
        Self { key: secret.packet_key(), secret, number: 0 }
    }

    /// The generation after this one.
    pub(crate) fn next(&self) -> Self {
        let secret = self.secret.next();
        Self {
            key: secret.packet_key(),
            secret,
            // 2^64 generations would take longer than the universe has existed; saturating keeps it panic-free.
            number: self.number.saturating_add(1),
        }
    }

    pub(crate) fn key(&self) -> &PacketKey {
        &self.key
    }

    /// 0 for the session's first key, then one more per key update.
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// Even generations have phase zero, odd ones phase one.
    pub(crate) fn phase(&self) -> KeyPhase {
        if self.number % 2 == 0 { KeyPhase::Zero } else { KeyPhase::One }
    }
}

/// Which receive key a datagram was tried with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyChoice {
    Previous,
    Current,
    Next,
}

/// The receiver's keys of one direction: current, next (precomputed) and, for a while after an update, previous.
#[derive(Debug)]
pub(crate) struct ReceiveKeys {
    current: KeyGeneration,
    /// First packet number that authenticated under `current` (0 for generation 0). Every previous-generation
    /// packet number is below it and every next-generation number above it.
    current_first: u64,
    previous: Option<KeyGeneration>,
    next: KeyGeneration,
}

impl ReceiveKeys {
    pub(crate) fn new(secret: DirectionSecret) -> Self {
        let current = KeyGeneration::first(secret);
        let next = current.next();
        Self { current, current_first: 0, previous: None, next }
    }

    /// Picks the key for a datagram with this (not yet authenticated) phase and packet number, or `None` when it
    /// belongs to a previous generation whose key was already dropped.
    pub(crate) fn choose(&self, phase: KeyPhase, packet_number: u64) -> Option<(KeyChoice, &PacketKey)> {
        if phase == self.current.phase() {
            Some((KeyChoice::Current, self.current.key()))
        } else if packet_number > self.current_first {
            Some((KeyChoice::Next, self.next.key()))
        } else {
            self.previous.as_ref().map(|previous| (KeyChoice::Previous, previous.key()))
        }
    }

    /// Records that a datagram numbered `packet_number` authenticated under `choice`: a next-generation packet
    /// completes the peer's key update. Then drops the previous key once no packet that could use it can pass the
    /// replay window any more (`lowest_acceptable` is the window's lowest acceptable packet number).
    pub(crate) fn confirm(&mut self, choice: KeyChoice, packet_number: u64, lowest_acceptable: u64) {
        if choice == KeyChoice::Next {
            let after_next = self.next.next();
            let new_current = std::mem::replace(&mut self.next, after_next);
            let old_current = std::mem::replace(&mut self.current, new_current);
            self.previous = Some(old_current);
            self.current_first = packet_number;
        }
        if lowest_acceptable >= self.current_first {
            self.previous = None;
        }
    }

    /// Generation number of the current key.
    pub(crate) fn generation(&self) -> u64 {
        self.current.number()
    }

    #[cfg(test)]
    pub(crate) fn has_previous(&self) -> bool {
        self.previous.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datagram::replay::REPLAY_WINDOW_PACKETS;
    use crate::datagram::{OpenError, Opener, PacketType, Role, Sealer, SessionKeys};
    use proptest::strategy::Strategy;

    const CID: u64 = 0xC0FF_EE00_0000_0001;

    fn endpoints(limit: u64) -> (Sealer, Opener) {
        let secret = [0x42; 32];
        let (sealer, _) = SessionKeys::derive(&secret, Role::Client)
            .into_endpoints(CID, KeyUpdateConfig::with_max_packets_per_key(limit));
        let (_, opener) = SessionKeys::derive(&secret, Role::Server).into_endpoints(CID, KeyUpdateConfig::default());
        (sealer, opener)
    }

    fn seal(sealer: &mut Sealer, packet_number: u64) -> Vec<u8> {
        let mut out = Vec::new();
        sealer
            .seal(PacketType::Data, packet_number, &packet_number.to_be_bytes(), &mut out)
            .expect("increasing packet numbers seal");
        out
    }

    fn opens(opener: &mut Opener, datagram: &[u8], packet_number: u64) {
        let opened = opener.open(datagram).expect("a genuine packet opens");
        assert_eq!(opened.header.packet_number, packet_number);
        assert_eq!(opened.plaintext, packet_number.to_be_bytes());
    }

    proptest::proptest! {
        /// Packets reordered by less than one key generation (each may be overtaken only by packets sealed fewer
        /// than `limit` numbers after it) all open exactly once, across every key update.
        #[test]
        fn reordering_shorter_than_a_generation_is_harmless(
            (limit, jitter) in (1u64..=8).prop_flat_map(|limit| {
                (proptest::strategy::Just(limit), proptest::collection::vec(0..limit, 1..80))
            }),
        ) {
            let (mut sealer, mut opener) = endpoints(limit);
            let count = jitter.len() as u64;
            let sealed: Vec<Vec<u8>> = (0..count).map(|pn| seal(&mut sealer, pn)).collect();
            let mut arrival: Vec<u64> = (0..count).collect();
            arrival.sort_by_key(|&pn| (pn + jitter[pn as usize], pn));
            for &pn in &arrival {
                let opened = opener.open(&sealed[pn as usize]).map(|o| o.plaintext);
                proptest::prop_assert_eq!(opened, Ok(pn.to_be_bytes().to_vec()), "packet {}", pn);
            }
            for &pn in &arrival {
                proptest::prop_assert_eq!(
                    opener.open(&sealed[pn as usize]).map(|o| o.plaintext),
                    Err(OpenError::Replayed { packet_number: pn })
                );
            }
            proptest::prop_assert_eq!(opener.key_generation(), (count - 1) / limit);
        }
    }

    #[test]
    fn default_limit_is_the_rfc_9001_figure() {
        assert_eq!(KeyUpdateConfig::default().max_packets_per_key, 8_388_608);
        assert_eq!(KeyUpdateConfig::with_max_packets_per_key(0).limit(), 1);
    }

    #[test]
    fn phase_alternates_with_generations() {
        let first = KeyGeneration::first(SessionKeys::derive(&[1; 32], Role::Client).send);
        let second = first.next();
        let third = second.next();
        assert_eq!([first.phase(), second.phase(), third.phase()], [KeyPhase::Zero, KeyPhase::One, KeyPhase::Zero]);
        assert_eq!(third.number(), 2);
        assert_eq!(KeyPhase::Zero.flipped(), KeyPhase::One);
        assert_eq!(KeyPhase::One.flipped(), KeyPhase::Zero);
    }

    #[test]
    fn sealer_updates_after_exactly_the_limit() {
        let (mut sealer, _) = endpoints(3);
        let phases: Vec<KeyPhase> = (0..7)
            .map(|pn| {
                let datagram = seal(&mut sealer, pn);
                crate::datagram::Header::parse(&datagram).expect("sealed header parses").key_phase
            })
            .collect();
        use KeyPhase::{One, Zero};
        assert_eq!(phases, [Zero, Zero, Zero, One, One, One, Zero]);
        assert_eq!(sealer.key_generation(), 2);
    }

    #[test]
    fn in_order_across_several_updates() {
        let (mut sealer, mut opener) = endpoints(4);
        for pn in 0..40 {
            let datagram = seal(&mut sealer, pn);
            opens(&mut opener, &datagram, pn);
        }
        assert_eq!(opener.key_generation(), 9);
        assert_eq!(sealer.key_generation(), 9);
    }

    #[test]
    fn reordered_packets_around_each_switch() {
        // Generations of 4 packets: 0-3, 4-7, 8-11, 12-15. Each delivery batch straddles a switch and arrives
        // reversed, so the first packet of a new generation overtakes the last ones of the old generation.
        let (mut sealer, mut opener) = endpoints(4);
        let sealed: Vec<Vec<u8>> = (0..16).map(|pn| seal(&mut sealer, pn)).collect();
        let arrival = [1, 0, 5, 4, 3, 2, 9, 8, 7, 6, 13, 12, 11, 10, 15, 14];
        for pn in arrival {
            opens(&mut opener, &sealed[pn], pn as u64);
        }
        assert_eq!(opener.key_generation(), 3);
        for (pn, datagram) in sealed.iter().enumerate() {
            assert_eq!(
                opener.open(datagram).map(|o| o.plaintext),
                Err(OpenError::Replayed { packet_number: pn as u64 })
            );
        }
    }

    #[test]
    fn flipped_phase_bit_fails_authentication() {
        // The flipped bit sends packet 1 to the next-generation key, which cannot verify it.
        let (mut sealer, mut opener) = endpoints(4);
        opens(&mut opener, &seal(&mut sealer, 0), 0);
        let mut datagram = seal(&mut sealer, 1);
        datagram[2] ^= crate::datagram::FLAG_KEY_PHASE;
        assert_eq!(opener.open(&datagram).map(|o| o.plaintext), Err(OpenError::Authentication));
        assert_eq!(opener.key_generation(), 0, "a forged phase must not rotate the keys");
        opens(&mut opener, &seal(&mut sealer, 2), 2);
    }

    #[test]
    fn previous_key_is_dropped_once_the_window_passes_the_switch() {
        let (mut sealer, mut opener) = endpoints(2);
        for pn in 0..3 {
            opens(&mut opener, &seal(&mut sealer, pn), pn);
        }
        assert_eq!(opener.key_generation(), 1);
        assert!(opener.keys_for_tests().has_previous(), "generation 0 packets may still be in flight");
        // Packet numbers may jump: the next generation starts far above, and the window slides past the switch.
        // The sealer is now at generation 1 with one packet left before it updates again.
        let far = 2 + REPLAY_WINDOW_PACKETS;
        opens(&mut opener, &seal(&mut sealer, far), far);
        assert_eq!(opener.key_generation(), 1);
        assert!(!opener.keys_for_tests().has_previous());
    }

    #[test]
    fn other_phase_below_the_first_key_has_no_key() {
        let keys = ReceiveKeys::new(SessionKeys::derive(&[3; 32], Role::Server).receive);
        assert!(keys.choose(KeyPhase::One, 0).is_none(), "generation 0 has no previous key");
        assert_eq!(keys.choose(KeyPhase::One, 1).map(|(choice, _)| choice), Some(KeyChoice::Next));
        assert_eq!(keys.choose(KeyPhase::Zero, 0).map(|(choice, _)| choice), Some(KeyChoice::Current));
        // Through the opener: a forged "key phase 1, packet 0" is dropped as unauthenticated and changes nothing.
        let (mut sealer, mut opener) = endpoints(4);
        let mut forged = seal(&mut sealer, 0);
        forged[2] ^= crate::datagram::FLAG_KEY_PHASE;
        assert_eq!(opener.open(&forged).map(|o| o.plaintext), Err(OpenError::Authentication));
        opens(&mut opener, &seal(&mut sealer, 1), 1);
    }

    #[test]
    fn packet_two_generations_late_fails_authentication() {
        // The documented bound: only one previous generation is kept.
        let (mut sealer, mut opener) = endpoints(2);
        let sealed: Vec<Vec<u8>> = (0..6).map(|pn| seal(&mut sealer, pn)).collect();
        for pn in [0, 2, 3, 4, 5] {
            opens(&mut opener, &sealed[pn as usize], pn);
        }
        assert_eq!(opener.key_generation(), 2);
        // Packet 1 was sealed under generation 0, which shares its phase with generation 2.
        assert_eq!(opener.open(&sealed[1]).map(|o| o.plaintext), Err(OpenError::Authentication));
    }
}
