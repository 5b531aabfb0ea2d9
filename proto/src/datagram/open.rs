//! Opening: checking and decrypting an incoming datagram.
//!
//! The order of the checks is the point of this file. Cheap checks that need no secret come first, so garbage and
//! replays are thrown away for the price of a few comparisons; the AES-GCM tag is verified next; and only a datagram
//! whose tag verified may change any state (the replay window, the key generation). A forger who cannot produce a
//! valid tag therefore cannot influence the receiver at all — every forged datagram is dropped and counted.
//!
//! 1. length: at least a header and a tag, at most [`MAX_DATAGRAM_BYTES`];
//! 2. header: known version, packet type and flag bits;
//! 3. connection id: this session's;
//! 4. replay window: the packet number is not a duplicate and not too old (no state change);
//! 5. key choice by key phase, then tag verification and decryption;
//! 6. only now: mark the packet number as seen, and complete a key update if the peer started one.
//!
//! A failed tag never releases any plaintext: the output buffer is cleared, because a decryption that has not been
//! authenticated may be attacker-chosen garbage.

use crate::limits::MAX_DATAGRAM_BYTES;

use super::key_update::ReceiveKeys;
use super::keys::DirectionSecret;
use super::replay::ReplayWindow;
use super::{HEADER_LEN, Header, OpenError, TAG_LEN};

/// A datagram that passed every check: its (now authenticated) header and its decrypted payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The header, authenticated by the tag.
    pub header: Header,
    /// The decrypted payload.
    pub plaintext: Vec<u8>,
}

/// Opens incoming datagrams of one session and one direction, remembering which packet numbers it has accepted.
#[derive(Debug)]
pub struct Opener {
    connection_id: u64,
    keys: ReceiveKeys,
    window: ReplayWindow,
}

impl Opener {
    /// An opener for connection `connection_id`, starting at key generation 0 of `secret`.
    pub fn new(connection_id: u64, secret: DirectionSecret) -> Self {
        Self { connection_id, keys: ReceiveKeys::new(secret), window: ReplayWindow::new() }
    }

    /// The connection id this opener accepts.
    pub fn connection_id(&self) -> u64 {
        self.connection_id
    }

    /// The largest packet number accepted so far, or `None` before the first datagram.
    pub fn largest_packet_number(&self) -> Option<u64> {
        self.window.largest()
    }

    /// The key generation of the peer's current key, as far as this opener has followed its key updates.
    pub fn key_generation(&self) -> u64 {
        self.keys.generation()
    }

    /// Checks and decrypts `datagram`, returning its header and a freshly allocated plaintext.
    pub fn open(&mut self, datagram: &[u8]) -> Result<Opened, OpenError> {
        let mut plaintext = Vec::new();
        let header = self.open_into(datagram, &mut plaintext)?;
        Ok(Opened { header, plaintext })
    }

    /// Like [`open`](Self::open), but writes the plaintext into `plaintext` (cleared first) so a busy receiver
    /// reuses one buffer. On error `plaintext` is left empty.
    pub fn open_into(&mut self, datagram: &[u8], plaintext: &mut Vec<u8>) -> Result<Header, OpenError> {
        plaintext.clear();
        let len = datagram.len();
        if len < HEADER_LEN + TAG_LEN {
            return Err(OpenError::Truncated { len });
        }
        if len > MAX_DATAGRAM_BYTES {
            return Err(OpenError::TooLarge { len });
        }
        let header = Header::parse(datagram)?;
        if header.connection_id != self.connection_id {
            return Err(OpenError::WrongConnection { connection_id: header.connection_id });
        }
        let packet_number = header.packet_number;
        self.window.check(packet_number).map_err(|replay| OpenError::from_replay(replay, packet_number))?;

        // The length checks above guarantee both splits succeed; `Truncated` is the honest answer if they did not.
        let truncated = OpenError::Truncated { len };
        let (associated_data, rest) = datagram.split_at_checked(HEADER_LEN).ok_or(truncated)?;
        let ciphertext_len = rest.len().checked_sub(TAG_LEN).ok_or(truncated)?;
        let (ciphertext, tag) = rest.split_at_checked(ciphertext_len).ok_or(truncated)?;
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| truncated)?;

        // A packet of a dropped key generation cannot be verified; to the caller that is a failed authentication.
        let (choice, key) = self.keys.choose(header.key_phase, packet_number).ok_or(OpenError::Authentication)?;
        plaintext.extend_from_slice(ciphertext);
        if key.open_in_place(packet_number, associated_data, plaintext, tag).is_err() {
            plaintext.clear();
            return Err(OpenError::Authentication);
        }

        self.window.accept(packet_number);
        self.keys.confirm(choice, packet_number, self.window.lowest_acceptable());
        Ok(header)
    }

    #[cfg(test)]
    pub(crate) fn keys_for_tests(&self) -> &ReceiveKeys {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datagram::key_update::KeyUpdateConfig;
    use crate::datagram::replay::REPLAY_WINDOW_PACKETS;
    use crate::datagram::{MAX_PLAINTEXT, PacketType, Role, Sealer, SessionKeys};
    use proptest::prelude::*;

    const CID: u64 = 0x5EED_0000_0000_0042;
    const SECRET: [u8; 32] = [0x17; 32];

    /// A client sealer and the matching server opener.
    fn pair() -> (Sealer, Opener) {
        let (sealer, _) = SessionKeys::derive(&SECRET, Role::Client).into_endpoints(CID, KeyUpdateConfig::default());
        let (_, opener) = SessionKeys::derive(&SECRET, Role::Server).into_endpoints(CID, KeyUpdateConfig::default());
        (sealer, opener)
    }

    fn seal(sealer: &mut Sealer, packet_number: u64, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        sealer.seal(PacketType::Data, packet_number, plaintext, &mut out).expect("increasing packet numbers seal");
        out
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// One complete datagram, pinned. Computed once with this code and cross-checked with an independent
    /// HKDF + AES-256-GCM implementation (Python's `cryptography` package).
    #[test]
    fn datagram_known_answer() {
        let secret: [u8; 32] = std::array::from_fn(|i| i as u8);
        let (mut sealer, _) = SessionKeys::derive(&secret, Role::Client)
            .into_endpoints(0x0102_0304_0506_0708, KeyUpdateConfig::default());
        let mut out = Vec::new();
        sealer.seal(PacketType::Data, 42, b"hello, chatlab", &mut out).expect("fresh number");
        assert_eq!(
            hex(&out),
            "0101000102030405060708000000000000002a756eea998ccbc2401e4b99a37abe1dae0b259c246e3e70884686c9368366"
        );
    }

    /// The first datagram after a key update, pinned the same way: key phase 1, generation-1 key and nonce salt.
    #[test]
    fn datagram_after_key_update_known_answer() {
        let secret: [u8; 32] = std::array::from_fn(|i| i as u8);
        let (mut sealer, _) = SessionKeys::derive(&secret, Role::Client)
            .into_endpoints(0x0102_0304_0506_0708, KeyUpdateConfig::with_max_packets_per_key(1));
        let mut out = Vec::new();
        sealer.seal(PacketType::Data, 42, b"hello, chatlab", &mut out).expect("fresh number");
        sealer.seal(PacketType::Data, 43, b"after the update", &mut out).expect("fresh number");
        assert_eq!(
            hex(&out),
            "0101010102030405060708000000000000002b8494c3fe458ee500998c5c2c45117ad3e605c77d3f578091421865214e32f904"
        );
    }

    #[test]
    fn round_trip() {
        let (mut sealer, mut opener) = pair();
        for (pn, text) in [(0, &b""[..]), (1, b"hi"), (2, &[0x5A; MAX_PLAINTEXT][..])] {
            let opened = opener.open(&seal(&mut sealer, pn, text)).expect("genuine packet");
            assert_eq!(opened.plaintext, text);
            assert_eq!(opened.header.packet_number, pn);
            assert_eq!(opened.header.connection_id, CID);
            assert_eq!(opened.header.packet_type, PacketType::Data);
        }
        assert_eq!(opener.largest_packet_number(), Some(2));
        assert_eq!(opener.connection_id(), CID);
    }

    #[test]
    fn server_to_client_direction_works_too() {
        let (mut server_sealer, _) =
            SessionKeys::derive(&SECRET, Role::Server).into_endpoints(CID, KeyUpdateConfig::default());
        let (_, mut client_opener) =
            SessionKeys::derive(&SECRET, Role::Client).into_endpoints(CID, KeyUpdateConfig::default());
        let opened = client_opener.open(&seal(&mut server_sealer, 0, b"welcome")).expect("genuine packet");
        assert_eq!(opened.plaintext, b"welcome");
    }

    #[test]
    fn own_packets_do_not_open_as_the_peers() {
        // A reflected datagram (sent back to its sender) is sealed with the other direction's key.
        let (mut sealer, _) =
            SessionKeys::derive(&SECRET, Role::Client).into_endpoints(CID, KeyUpdateConfig::default());
        let (_, mut own_opener) =
            SessionKeys::derive(&SECRET, Role::Client).into_endpoints(CID, KeyUpdateConfig::default());
        assert_eq!(own_opener.open(&seal(&mut sealer, 0, b"echo")), Err(OpenError::Authentication));
    }

    #[test]
    fn every_tampered_byte_fails_authentication() {
        let (mut sealer, _) = pair();
        let datagram = seal(&mut sealer, 3, b"do not change me");
        // Header bytes whose change still parses and routes (the key-phase bit and the packet number), every
        // ciphertext byte and every tag byte.
        let flags_byte = 2;
        let packet_number_bytes = HEADER_LEN - 8..HEADER_LEN;
        let positions = std::iter::once(flags_byte).chain(packet_number_bytes).chain(HEADER_LEN..datagram.len());
        for position in positions {
            let (_, mut opener) = pair();
            let mut tampered = datagram.clone();
            tampered[position] ^= if position == flags_byte { 0x01 } else { 0x80 };
            assert_eq!(opener.open(&tampered), Err(OpenError::Authentication), "byte {position} changed");
            assert_eq!(opener.largest_packet_number(), None, "a forged packet moves nothing");
        }
    }

    #[test]
    fn tampered_header_fields_are_refused() {
        let (mut sealer, mut opener) = pair();
        let datagram = seal(&mut sealer, 0, b"x");
        let mut version = datagram.clone();
        version[0] = 2;
        assert_eq!(opener.open(&version), Err(OpenError::BadVersion { version: 2 }));
        let mut packet_type = datagram.clone();
        packet_type[1] = 9;
        assert_eq!(opener.open(&packet_type), Err(OpenError::UnknownPacketType { packet_type: 9 }));
        let mut flags = datagram.clone();
        flags[2] |= 0x40;
        assert_eq!(opener.open(&flags), Err(OpenError::UnknownFlags { flags: flags[2] }));
        assert!(opener.open(&datagram).is_ok(), "the genuine packet still opens");
    }

    #[test]
    fn truncated_datagrams_are_refused() {
        let (mut sealer, mut opener) = pair();
        let datagram = seal(&mut sealer, 0, b"some text");
        for len in 0..HEADER_LEN + TAG_LEN {
            assert_eq!(opener.open(&datagram[..len]), Err(OpenError::Truncated { len }));
        }
        // Long enough to parse, but cut inside the ciphertext: the tag no longer matches.
        let cut = datagram.len() - 1;
        assert_eq!(opener.open(&datagram[..cut]), Err(OpenError::Authentication));
    }

    #[test]
    fn oversized_datagram_is_refused() {
        let (mut sealer, mut opener) = pair();
        let mut datagram = seal(&mut sealer, 0, &[1; MAX_PLAINTEXT]);
        datagram.push(0);
        assert_eq!(opener.open(&datagram), Err(OpenError::TooLarge { len: MAX_DATAGRAM_BYTES + 1 }));
    }

    #[test]
    fn other_sessions_key_fails_authentication() {
        let (mut sealer, _) = pair();
        let (_, mut stranger) =
            SessionKeys::derive(&[0x99; 32], Role::Server).into_endpoints(CID, KeyUpdateConfig::default());
        let mut plaintext = b"leftover".to_vec();
        assert_eq!(
            stranger.open_into(&seal(&mut sealer, 0, b"secret"), &mut plaintext),
            Err(OpenError::Authentication)
        );
        assert!(plaintext.is_empty(), "nothing unauthenticated is released");
    }

    #[test]
    fn wrong_connection_id_is_refused() {
        let (mut sealer, _) = pair();
        let (_, mut other) =
            SessionKeys::derive(&SECRET, Role::Server).into_endpoints(CID + 1, KeyUpdateConfig::default());
        assert_eq!(other.open(&seal(&mut sealer, 0, b"hi")), Err(OpenError::WrongConnection { connection_id: CID }));
    }

    #[test]
    fn replayed_packet_is_refused() {
        let (mut sealer, mut opener) = pair();
        let datagram = seal(&mut sealer, 10, b"see you at 8");
        assert!(opener.open(&datagram).is_ok());
        assert_eq!(opener.open(&datagram), Err(OpenError::Replayed { packet_number: 10 }));
    }

    #[test]
    fn packet_below_the_window_is_too_old() {
        let (mut sealer, mut opener) = pair();
        let old = seal(&mut sealer, 0, b"late");
        let new = seal(&mut sealer, REPLAY_WINDOW_PACKETS, b"early");
        assert!(opener.open(&new).is_ok());
        assert_eq!(opener.open(&old), Err(OpenError::TooOld { packet_number: 0 }));
    }

    #[test]
    fn forged_huge_packet_number_does_not_move_the_window() {
        let (mut sealer, mut opener) = pair();
        assert!(opener.open(&seal(&mut sealer, 0, b"one")).is_ok());
        // A forger rewrites a captured packet to carry packet number u64::MAX - 1. The tag fails, so the window stays.
        let mut forged = seal(&mut sealer, 1, b"two");
        forged[HEADER_LEN - 8..HEADER_LEN].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
        assert_eq!(opener.open(&forged), Err(OpenError::Authentication));
        assert_eq!(opener.largest_packet_number(), Some(0));
        let genuine = opener.open(&seal(&mut sealer, 2, b"three")).expect("still accepted");
        assert_eq!(genuine.plaintext, b"three");
    }

    #[test]
    fn reordered_packets_within_the_window_open() {
        let (mut sealer, mut opener) = pair();
        let sealed: Vec<_> = (0..5).map(|pn| seal(&mut sealer, pn, b"r")).collect();
        for pn in [4usize, 0, 3, 1, 2] {
            assert!(opener.open(&sealed[pn]).is_ok(), "packet {pn}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
            let (_, mut opener) = pair();
            let _ = Header::parse(&bytes);
            prop_assert!(opener.open(&bytes).is_err());
            prop_assert_eq!(opener.largest_packet_number(), None);
        }

        /// Arbitrary bytes behind a valid header reach the tag check and fail there, without panicking.
        #[test]
        fn arbitrary_body_behind_a_valid_header_fails_authentication(
            packet_number: u64,
            body in proptest::collection::vec(any::<u8>(), TAG_LEN..MAX_PLAINTEXT + TAG_LEN),
        ) {
            let (_, mut opener) = pair();
            let header = Header {
                packet_type: PacketType::Data,
                key_phase: crate::datagram::KeyPhase::Zero,
                connection_id: CID,
                packet_number,
            };
            let mut datagram = header.to_bytes().to_vec();
            datagram.extend_from_slice(&body);
            prop_assert_eq!(opener.open(&datagram), Err(OpenError::Authentication));
        }

        /// A set of packet numbers inside the window, delivered in any order: each opens exactly once.
        #[test]
        fn any_order_opens_each_packet_exactly_once(
            base in 0u64..u64::MAX - REPLAY_WINDOW_PACKETS,
            order in proptest::collection::btree_set(0..REPLAY_WINDOW_PACKETS, 1..40)
                .prop_map(|set| set.into_iter().collect::<Vec<_>>())
                .prop_shuffle(),
        ) {
            let (mut sealer, mut opener) = pair();
            let mut ascending = order.clone();
            ascending.sort_unstable();
            let sealed: std::collections::BTreeMap<u64, Vec<u8>> = ascending
                .iter()
                .map(|&offset| (offset, seal(&mut sealer, base + offset, &offset.to_be_bytes())))
                .collect();
            for offset in &order {
                let opened = opener.open(&sealed[offset]);
                prop_assert_eq!(opened.map(|o| o.plaintext), Ok(offset.to_be_bytes().to_vec()));
            }
            for offset in &order {
                prop_assert_eq!(
                    opener.open(&sealed[offset]),
                    Err(OpenError::Replayed { packet_number: base + offset })
                );
            }
        }
    }
}
