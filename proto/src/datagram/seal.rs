//! Sealing: turning a plaintext into an encrypted, authenticated datagram.
//!
//! # The one rule of AES-GCM: never reuse a nonce
//!
//! AES-GCM encrypts by XOR-ing the plaintext with a keystream that depends only on the key and the nonce. If two
//! packets were sealed under the same key *and* the same nonce, they would share a keystream, and XOR-ing the two
//! ciphertexts would cancel it: the attacker gets the XOR of the two plaintexts, from which chat text is usually easy
//! to recover. Worse, the same mistake leaks the authentication subkey, after which the attacker can forge packets
//! that verify. One repeated nonce breaks both confidentiality and authenticity for the whole key.
//!
//! chatlab's nonce is the direction's secret salt followed by the 64-bit packet number, so "never reuse a nonce"
//! becomes "never reuse a packet number". The reliability engine assigns packet numbers in increasing order — a
//! retransmission goes out in a *new* packet with a new number — and the sealer enforces it: it refuses any packet
//! number not greater than the last one it sealed, with [`SealError::PacketNumberNotIncreasing`]. Requiring
//! *increasing* rather than merely *unused* numbers needs one `u64` of memory instead of a set, and it is what the
//! receiver's key-update logic relies on (numbers of a later key generation are always higher).
//!
//! # Output
//!
//! `header || ciphertext || tag`, with the header as associated data, written into a caller-owned buffer so a busy
//! sender reuses one allocation for every packet. Encryption happens in place in that buffer: the plaintext is copied
//! once, after the header, and AES-GCM overwrites it with ciphertext.

use crate::limits::MAX_DATAGRAM_BYTES;

use super::key_update::{KeyGeneration, KeyUpdateConfig};
use super::keys::DirectionSecret;
use super::{HEADER_LEN, Header, PacketType, SealError, TAG_LEN};

/// Largest plaintext that fits in one datagram, in bytes: the datagram limit minus the clear header and the tag.
pub const MAX_PLAINTEXT: usize = MAX_DATAGRAM_BYTES - HEADER_LEN - TAG_LEN;

/// Seals outgoing datagrams of one session and one direction.
#[derive(Debug)]
pub struct Sealer {
    connection_id: u64,
    generation: KeyGeneration,
    /// Packets sealed under `generation`'s key so far.
    sealed_with_key: u64,
    config: KeyUpdateConfig,
    /// Last packet number sealed, or `None` before the first packet.
    last_packet_number: Option<u64>,
}

impl Sealer {
    /// A sealer for connection `connection_id`, starting at key generation 0 of `secret`.
    pub fn new(connection_id: u64, secret: DirectionSecret, config: KeyUpdateConfig) -> Self {
        Self {
            connection_id,
            generation: KeyGeneration::first(secret),
            sealed_with_key: 0,
            config,
            last_packet_number: None,
        }
    }

    /// The connection id written into every header.
    pub fn connection_id(&self) -> u64 {
        self.connection_id
    }

    /// The last packet number sealed, or `None` before the first packet. The next one must be greater.
    pub fn last_packet_number(&self) -> Option<u64> {
        self.last_packet_number
    }

    /// The key generation the most recent packet was sealed with (0 until the first key update).
    pub fn key_generation(&self) -> u64 {
        self.generation.number()
    }

    /// Seals `plaintext` as packet `packet_number` into `out`, which is cleared first.
    ///
    /// On error nothing is consumed: the sealer's state is unchanged and the same packet number may be used for a
    /// corrected call. `out` may have been cleared.
    pub fn seal(
        &mut self,
        packet_type: PacketType,
        packet_number: u64,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SealError> {
        match self.last_packet_number {
            Some(last) if packet_number <= last => {
                return Err(SealError::PacketNumberNotIncreasing { packet_number, last });
            }
            _ => {}
        }
        let too_large = SealError::PlaintextTooLarge { len: plaintext.len(), max: MAX_PLAINTEXT };
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(too_large);
        }
        if self.sealed_with_key >= self.config.limit() {
            self.generation = self.generation.next();
            self.sealed_with_key = 0;
        }
        let header = Header {
            packet_type,
            key_phase: self.generation.phase(),
            connection_id: self.connection_id,
            packet_number,
        }
        .to_bytes();

        out.clear();
        out.reserve(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&header);
        out.extend_from_slice(plaintext);
        let body = out.get_mut(HEADER_LEN..).unwrap_or_default();
        // AES-GCM only refuses inputs of tens of gigabytes; the size check above makes that unreachable.
        let tag = self.generation.key().seal_in_place(packet_number, &header, body).map_err(|_| too_large)?;
        out.extend_from_slice(&tag);

        self.sealed_with_key = self.sealed_with_key.saturating_add(1);
        self.last_packet_number = Some(packet_number);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datagram::{Role, SessionKeys};

    const CID: u64 = 0x0123_4567_89AB_CDEF;

    fn sealer() -> Sealer {
        let (sealer, _) = SessionKeys::derive(&[9; 32], Role::Client).into_endpoints(CID, KeyUpdateConfig::default());
        sealer
    }

    #[test]
    fn max_plaintext_fills_the_datagram_exactly() {
        assert_eq!(MAX_PLAINTEXT, 1200 - 19 - 16);
        let mut sealer = sealer();
        let mut out = Vec::new();
        sealer.seal(PacketType::Data, 0, &[0xAB; MAX_PLAINTEXT], &mut out).expect("the largest plaintext fits");
        assert_eq!(out.len(), MAX_DATAGRAM_BYTES);
    }

    #[test]
    fn oversized_plaintext_is_refused_without_using_the_packet_number() {
        let mut sealer = sealer();
        let mut out = Vec::new();
        assert_eq!(
            sealer.seal(PacketType::Data, 5, &[0; MAX_PLAINTEXT + 1], &mut out),
            Err(SealError::PlaintextTooLarge { len: MAX_PLAINTEXT + 1, max: MAX_PLAINTEXT })
        );
        assert_eq!(sealer.last_packet_number(), None);
        assert_eq!(sealer.seal(PacketType::Data, 5, b"fits", &mut out), Ok(()));
    }

    #[test]
    fn reused_packet_number_is_refused() {
        let mut sealer = sealer();
        let mut out = Vec::new();
        sealer.seal(PacketType::Data, 7, b"first", &mut out).expect("fresh number");
        for reused in [7, 6, 0] {
            assert_eq!(
                sealer.seal(PacketType::Data, reused, b"again", &mut out),
                Err(SealError::PacketNumberNotIncreasing { packet_number: reused, last: 7 })
            );
        }
        assert_eq!(sealer.last_packet_number(), Some(7));
        assert_eq!(sealer.seal(PacketType::Data, 8, b"next", &mut out), Ok(()));
    }

    #[test]
    fn largest_packet_number_is_the_last_one() {
        let mut sealer = sealer();
        let mut out = Vec::new();
        assert_eq!(sealer.seal(PacketType::Data, u64::MAX, b"last", &mut out), Ok(()));
        assert_eq!(
            sealer.seal(PacketType::Data, u64::MAX, b"again", &mut out),
            Err(SealError::PacketNumberNotIncreasing { packet_number: u64::MAX, last: u64::MAX })
        );
    }

    #[test]
    fn output_is_header_ciphertext_tag() {
        let mut sealer = sealer();
        let mut out = vec![0xEE; 3000];
        sealer.seal(PacketType::Data, 1, b"hello", &mut out).expect("fresh number");
        assert_eq!(out.len(), HEADER_LEN + 5 + TAG_LEN, "the buffer is cleared first");
        let header = Header::parse(&out).expect("own header parses");
        assert_eq!(header.connection_id, CID);
        assert_eq!(header.packet_number, 1);
        assert_ne!(&out[HEADER_LEN..HEADER_LEN + 5], b"hello", "the payload is encrypted");
    }

    #[test]
    fn same_plaintext_under_new_packet_numbers_gives_new_ciphertexts() {
        let mut sealer = sealer();
        let (mut first, mut second) = (Vec::new(), Vec::new());
        sealer.seal(PacketType::Data, 1, b"same text", &mut first).expect("fresh number");
        sealer.seal(PacketType::Data, 2, b"same text", &mut second).expect("fresh number");
        assert_ne!(first[HEADER_LEN..], second[HEADER_LEN..]);
    }
}
