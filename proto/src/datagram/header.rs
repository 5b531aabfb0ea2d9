//! The clear datagram header.
//!
//! # Why the header travels in the clear
//!
//! Everything after the header is encrypted, but the header itself must be readable *before* decryption:
//!
//! * **Routing.** One server UDP socket receives datagrams from every session. The server reads the connection id to
//!   find which session — and so which key — the datagram belongs to. It could not decrypt first, because it would
//!   not know which key to try. (The connection id, not the sender's IP address, names the session, so a client whose
//!   address changes — a laptop moving from Wi-Fi to a phone hotspot — keeps its session, as in QUIC and WireGuard.)
//! * **Cheap rejection.** The receiver checks the packet number against its replay window before doing any
//!   cryptography, so duplicates and replays cost a table lookup, not an AES-GCM decryption.
//! * **The nonce.** The receiver rebuilds the AES-GCM nonce from the packet number.
//!
//! # Why it must still be authenticated
//!
//! Readable is not the same as changeable. The header is passed to AES-GCM as *associated data*: it is not encrypted,
//! but the tag covers it, so changing a single header bit makes the tag fail. Without that, an attacker could, for
//! example, rewrite the packet number of a captured packet to slip past the replay window, or flip the key-phase bit
//! to confuse the receiver's key update. The receiver therefore only *trusts* the header after the tag verified;
//! before that it uses the header only for decisions that are safe to take on forged data (which key to try, whether
//! the packet number is obviously stale).
//!
//! # Layout
//!
//! All integers are big-endian ("network byte order"), the convention of Internet protocols, so a packet capture reads
//! naturally in Wireshark's hex view.
//!
//! ```text
//!  offset  size  field
//!       0     1  version          PROTOCOL_VERSION; anything else is refused
//!       1     1  packet type      PacketType as u8
//!       2     1  flags            bit 0: key phase; bits 1..=7 must be zero
//!       3     8  connection id    chosen by the server in the session grant
//!      11     8  packet number    unique per direction, strictly increasing
//!      19        (end of header, HEADER_LEN)
//! ```
//!
//! Unknown versions, packet types and flag bits are rejected rather than ignored: a receiver that guessed at the
//! meaning of a newer peer's bits would misread its packets. The version byte comes first so a future version can
//! change everything after it.

use crate::limits::PROTOCOL_VERSION;

use super::OpenError;
use super::key_update::KeyPhase;

/// Size of the version field, in bytes.
const VERSION_LEN: usize = 1;
/// Size of the packet type field, in bytes.
const PACKET_TYPE_LEN: usize = 1;
/// Size of the flags field, in bytes.
const FLAGS_LEN: usize = 1;
/// Size of the connection id field, in bytes: 64 random bits, so guessing a live session's id is hopeless and two
/// sessions practically never collide.
const CONNECTION_ID_LEN: usize = 8;
/// Size of the packet number field, in bytes: a full 64 bits, so packet numbers never wrap in a session's lifetime
/// (at a million packets per second, 2^64 lasts over half a million years) and never need to be reused.
const PACKET_NUMBER_LEN: usize = 8;

/// Length of the clear header, in bytes. Every datagram starts with exactly this many header bytes.
pub const HEADER_LEN: usize = VERSION_LEN + PACKET_TYPE_LEN + FLAGS_LEN + CONNECTION_ID_LEN + PACKET_NUMBER_LEN;

/// Flag bit carrying the key phase (see `key_update.rs`): it flips at every key update so the receiver knows which
/// key generation sealed the packet.
pub const FLAG_KEY_PHASE: u8 = 0b0000_0001;

/// All flag bits this version defines. A datagram with any other bit set is refused.
pub const KNOWN_FLAGS: u8 = FLAG_KEY_PHASE;

/// What a datagram carries. The payload of every type is encrypted; the type tells the receiver how to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// Encrypted MessagePack frames of the reliability engine: chat messages and fragments, acks, pings and pongs,
    /// delivery receipts. It is the only type version 1 needs. Zero is deliberately not a packet type, so a
    /// zero-filled buffer is refused at the header.
    Data = 1,
}

impl PacketType {
    /// The byte that encodes this type on the wire.
    pub fn to_u8(self) -> u8 {
        self as u8
    }

    /// Reads a packet type byte, refusing unknown values.
    pub fn from_u8(value: u8) -> Result<Self, OpenError> {
        match value {
            1 => Ok(PacketType::Data),
            other => Err(OpenError::UnknownPacketType { packet_type: other }),
        }
    }
}

/// The clear header of a datagram. The version is not a field: parsing refuses every version but
/// [`PROTOCOL_VERSION`], and encoding always writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// What the encrypted payload carries.
    pub packet_type: PacketType,
    /// Which key generation sealed the packet (the key-phase flag bit).
    pub key_phase: KeyPhase,
    /// The session this datagram belongs to.
    pub connection_id: u64,
    /// The sender's packet number: unique per direction and key, and the variable part of the nonce.
    pub packet_number: u64,
}

/// Reads `N` bytes starting at `offset` of a header buffer that is already known to be `HEADER_LEN` long.
fn field<const N: usize>(header: &[u8; HEADER_LEN], offset: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(bytes) = header.get(offset..offset + N) {
        out.copy_from_slice(bytes);
    }
    out
}

impl Header {
    /// Offset of the version byte.
    const VERSION_AT: usize = 0;
    /// Offset of the packet type byte.
    const PACKET_TYPE_AT: usize = Self::VERSION_AT + VERSION_LEN;
    /// Offset of the flags byte.
    const FLAGS_AT: usize = Self::PACKET_TYPE_AT + PACKET_TYPE_LEN;
    /// Offset of the connection id.
    const CONNECTION_ID_AT: usize = Self::FLAGS_AT + FLAGS_LEN;
    /// Offset of the packet number.
    const PACKET_NUMBER_AT: usize = Self::CONNECTION_ID_AT + CONNECTION_ID_LEN;

    /// Parses the header at the start of `datagram`; bytes after the header are ignored.
    ///
    /// This is public so a server can read the connection id and find the session *before* opening the datagram.
    /// The result is unauthenticated until [`Opener::open`](super::Opener::open) succeeds: use it to route, never to
    /// trust.
    pub fn parse(datagram: &[u8]) -> Result<Header, OpenError> {
        let bytes: &[u8; HEADER_LEN] = datagram
            .get(..HEADER_LEN)
            .and_then(|head| head.try_into().ok())
            .ok_or(OpenError::Truncated { len: datagram.len() })?;
        let [version] = field::<VERSION_LEN>(bytes, Self::VERSION_AT);
        if version != PROTOCOL_VERSION {
            return Err(OpenError::BadVersion { version });
        }
        let [packet_type] = field::<PACKET_TYPE_LEN>(bytes, Self::PACKET_TYPE_AT);
        let packet_type = PacketType::from_u8(packet_type)?;
        let [flags] = field::<FLAGS_LEN>(bytes, Self::FLAGS_AT);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(OpenError::UnknownFlags { flags });
        }
        let key_phase = if flags & FLAG_KEY_PHASE == 0 { KeyPhase::Zero } else { KeyPhase::One };
        Ok(Header {
            packet_type,
            key_phase,
            connection_id: u64::from_be_bytes(field(bytes, Self::CONNECTION_ID_AT)),
            packet_number: u64::from_be_bytes(field(bytes, Self::PACKET_NUMBER_AT)),
        })
    }

    /// The flags byte of this header.
    pub fn flags(&self) -> u8 {
        match self.key_phase {
            KeyPhase::Zero => 0,
            KeyPhase::One => FLAG_KEY_PHASE,
        }
    }

    /// Encodes the header into its fixed-size wire form.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let (version, rest) = out.split_at_mut(VERSION_LEN);
        let (packet_type, rest) = rest.split_at_mut(PACKET_TYPE_LEN);
        let (flags, rest) = rest.split_at_mut(FLAGS_LEN);
        let (connection_id, packet_number) = rest.split_at_mut(CONNECTION_ID_LEN);
        version.copy_from_slice(&[PROTOCOL_VERSION]);
        packet_type.copy_from_slice(&[self.packet_type.to_u8()]);
        flags.copy_from_slice(&[self.flags()]);
        connection_id.copy_from_slice(&self.connection_id.to_be_bytes());
        packet_number.copy_from_slice(&self.packet_number.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Header {
        Header {
            packet_type: PacketType::Data,
            key_phase: KeyPhase::One,
            connection_id: 0x0102_0304_0506_0708,
            packet_number: 0x1112_1314_1516_1718,
        }
    }

    #[test]
    fn header_is_nineteen_bytes() {
        assert_eq!(HEADER_LEN, 19);
    }

    #[test]
    fn known_answer_layout() {
        let expected: [u8; HEADER_LEN] = [
            0x01, // version
            0x01, // packet type: Data
            0x01, // flags: key phase 1
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // connection id
            0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, // packet number
        ];
        assert_eq!(sample().to_bytes(), expected);
        assert_eq!(Header::parse(&expected), Ok(sample()));
    }

    #[test]
    fn trailing_bytes_are_not_part_of_the_header() {
        let mut datagram = sample().to_bytes().to_vec();
        datagram.extend_from_slice(b"ciphertext and tag");
        assert_eq!(Header::parse(&datagram), Ok(sample()));
    }

    #[test]
    fn short_input_is_truncated() {
        let bytes = sample().to_bytes();
        for len in 0..HEADER_LEN {
            assert_eq!(Header::parse(&bytes[..len]), Err(OpenError::Truncated { len }));
        }
    }

    #[test]
    fn unknown_version_is_refused() {
        let mut bytes = sample().to_bytes();
        bytes[0] = PROTOCOL_VERSION.wrapping_add(1);
        assert_eq!(Header::parse(&bytes), Err(OpenError::BadVersion { version: PROTOCOL_VERSION.wrapping_add(1) }));
    }

    #[test]
    fn unknown_packet_type_is_refused() {
        for bad in [0u8, 2, 0xff] {
            let mut bytes = sample().to_bytes();
            bytes[1] = bad;
            assert_eq!(Header::parse(&bytes), Err(OpenError::UnknownPacketType { packet_type: bad }));
        }
    }

    #[test]
    fn unknown_flag_bits_are_refused() {
        for bit in 1..8 {
            let mut bytes = sample().to_bytes();
            bytes[2] |= 1 << bit;
            assert_eq!(Header::parse(&bytes), Err(OpenError::UnknownFlags { flags: bytes[2] }));
        }
    }

    #[test]
    fn key_phase_zero_clears_the_flag() {
        let header = Header { key_phase: KeyPhase::Zero, ..sample() };
        assert_eq!(header.flags(), 0);
        assert_eq!(Header::parse(&header.to_bytes()), Ok(header));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Header::parse(&bytes);
        }

        #[test]
        fn round_trip(connection_id: u64, packet_number: u64, phase_one: bool) {
            let header = Header {
                packet_type: PacketType::Data,
                key_phase: if phase_one { KeyPhase::One } else { KeyPhase::Zero },
                connection_id,
                packet_number,
            };
            prop_assert_eq!(Header::parse(&header.to_bytes()), Ok(header));
        }
    }
}
