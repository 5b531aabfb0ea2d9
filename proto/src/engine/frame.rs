//! Frames: what one datagram's plaintext carries.
//!
//! After decryption a datagram's payload is a sequence of *frames*, each one a small MessagePack array whose first
//! element says what it is. Putting several frames into one packet is what lets an acknowledgement ride along with
//! chat data ("piggybacking") and several small messages share one datagram's header and tag.
//!
//! ```text
//! fragment : [0, stream, seq, index, count, data]   a piece of a chat message (count = 1: the whole message)
//! ack      : [1, largest, ack_delay_us, bitmap]     which packet numbers arrived (see `ack_tracker`)
//! ping     : [2]                                    asks for an ack: keeps NAT bindings open, measures RTT
//! ```
//!
//! The frames are written with the low-level `rmp` encoder rather than serde: they sit on the hot path of every
//! packet, their layout is fixed, and writing each integer in its smallest MessagePack form keeps a typical
//! acknowledgement to a dozen bytes. Decoding is strict: every length is checked against the bytes that are really
//! there, and anything unexpected is a [`FrameError`], never a panic.

use rmp::Marker;
use thiserror::Error;

/// Frame type numbers, the first element of every frame array.
const TYPE_FRAGMENT: u8 = 0;
const TYPE_ACK: u8 = 1;
const TYPE_PING: u8 = 2;

/// Largest number of bytes a fragment frame adds around its data: array header (1), type (1), stream as u32 (5),
/// seq as u64 (9), index and count as u16 (3 + 3), bin header with a 32-bit length (5).
pub const FRAGMENT_OVERHEAD_MAX: usize = 1 + 1 + 5 + 9 + 3 + 3 + 5;

/// Largest selective-ack bitmap in bytes: 32 bytes describe the 256 packet numbers just below the largest one.
///
/// That covers every packet a sender has in flight on a LAN or a lossy Wi-Fi link at chat rates; a packet older than
/// that which was never reported is simply declared lost by timeout and its message resent in a new packet, which
/// costs a few bytes and never breaks correctness (the receiver de-duplicates messages).
pub const MAX_ACK_BITMAP_BYTES: usize = 32;

/// Largest encoded ack frame: array header (1), type (1), largest (9), ack delay (9), bin header (2), bitmap.
pub const ACK_FRAME_MAX: usize = 1 + 1 + 9 + 9 + 2 + MAX_ACK_BITMAP_BYTES;

/// A decoded frame. `data` borrows from the packet, so decoding copies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Piece `index` of `count` of message `seq` on `stream`.
    Fragment { stream: u32, seq: u64, index: u16, count: u16, data: &'a [u8] },
    /// Acknowledgement: `largest` arrived, `ack_delay_us` passed between its arrival and this ack being sent, and
    /// bit `i` of `bitmap` (least significant bit of byte 0 first) says whether `largest - 1 - i` arrived.
    Ack { largest: u64, ack_delay_us: u64, bitmap: &'a [u8] },
    /// A request for an acknowledgement and nothing else.
    Ping,
}

/// Why a packet's frames could not be decoded. The whole packet is then ignored (and counted as malformed): a peer
/// that sends broken frames inside an authenticated packet is buggy, and guessing would only hide the bug.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("packet ends in the middle of a frame")]
    Truncated,
    #[error("frame is not a MessagePack array of the expected length")]
    BadShape,
    #[error("unknown frame type {0}")]
    UnknownType(u64),
    #[error("a number in a frame is out of range")]
    OutOfRange,
    #[error("fragment {index} of {count} is impossible")]
    BadFragment { index: u16, count: u16 },
    #[error("ack bitmap of {0} bytes is longer than allowed")]
    BitmapTooLong(usize),
    #[error("a packet carried no frames")]
    Empty,
}

impl Frame<'_> {
    /// Appends this frame's encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail, so the results are ignored on purpose.
        match *self {
            Frame::Fragment { stream, seq, index, count, data } => {
                let _ = rmp::encode::write_array_len(out, 6);
                let _ = rmp::encode::write_uint(out, u64::from(TYPE_FRAGMENT));
                let _ = rmp::encode::write_uint(out, u64::from(stream));
                let _ = rmp::encode::write_uint(out, seq);
                let _ = rmp::encode::write_uint(out, u64::from(index));
                let _ = rmp::encode::write_uint(out, u64::from(count));
                let _ = rmp::encode::write_bin(out, data);
            }
            Frame::Ack { largest, ack_delay_us, bitmap } => {
                let _ = rmp::encode::write_array_len(out, 4);
                let _ = rmp::encode::write_uint(out, u64::from(TYPE_ACK));
                let _ = rmp::encode::write_uint(out, largest);
                let _ = rmp::encode::write_uint(out, ack_delay_us);
                let _ = rmp::encode::write_bin(out, bitmap);
            }
            Frame::Ping => {
                let _ = rmp::encode::write_array_len(out, 1);
                let _ = rmp::encode::write_uint(out, u64::from(TYPE_PING));
            }
        }
    }
}

/// Decodes every frame of a packet payload, in order.
pub fn decode_frames(mut buf: &[u8]) -> Result<Vec<Frame<'_>>, FrameError> {
    let mut frames = Vec::new();
    while !buf.is_empty() {
        frames.push(decode_one(&mut buf)?);
    }
    if frames.is_empty() {
        return Err(FrameError::Empty);
    }
    Ok(frames)
}

fn decode_one<'a>(buf: &mut &'a [u8]) -> Result<Frame<'a>, FrameError> {
    let len = read_array_len(buf)?;
    if len == 0 {
        return Err(FrameError::BadShape);
    }
    let kind = read_uint(buf)?;
    match (kind, len) {
        (k, 6) if k == u64::from(TYPE_FRAGMENT) => {
            let stream = u32::try_from(read_uint(buf)?).map_err(|_| FrameError::OutOfRange)?;
            let seq = read_uint(buf)?;
            let index = u16::try_from(read_uint(buf)?).map_err(|_| FrameError::OutOfRange)?;
            let count = u16::try_from(read_uint(buf)?).map_err(|_| FrameError::OutOfRange)?;
            if count == 0 || index >= count {
                return Err(FrameError::BadFragment { index, count });
            }
            let data = read_bin(buf)?;
            Ok(Frame::Fragment { stream, seq, index, count, data })
        }
        (k, 4) if k == u64::from(TYPE_ACK) => {
            let largest = read_uint(buf)?;
            let ack_delay_us = read_uint(buf)?;
            let bitmap = read_bin(buf)?;
            if bitmap.len() > MAX_ACK_BITMAP_BYTES {
                return Err(FrameError::BitmapTooLong(bitmap.len()));
            }
            Ok(Frame::Ack { largest, ack_delay_us, bitmap })
        }
        (k, 1) if k == u64::from(TYPE_PING) => Ok(Frame::Ping),
        (k, _) if k <= u64::from(TYPE_PING) => Err(FrameError::BadShape),
        (k, _) => Err(FrameError::UnknownType(k)),
    }
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
    if buf.len() < n {
        return Err(FrameError::Truncated);
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn read_marker(buf: &mut &[u8]) -> Result<Marker, FrameError> {
    let byte = take(buf, 1)?[0];
    Ok(Marker::from_u8(byte))
}

fn read_be(buf: &mut &[u8], n: usize) -> Result<u64, FrameError> {
    Ok(take(buf, n)?.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

fn read_array_len(buf: &mut &[u8]) -> Result<usize, FrameError> {
    match read_marker(buf)? {
        Marker::FixArray(n) => Ok(usize::from(n)),
        _ => Err(FrameError::BadShape),
    }
}

fn read_uint(buf: &mut &[u8]) -> Result<u64, FrameError> {
    match read_marker(buf)? {
        Marker::FixPos(n) => Ok(u64::from(n)),
        Marker::U8 => read_be(buf, 1),
        Marker::U16 => read_be(buf, 2),
        Marker::U32 => read_be(buf, 4),
        Marker::U64 => read_be(buf, 8),
        _ => Err(FrameError::BadShape),
    }
}

fn read_bin<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], FrameError> {
    let len = match read_marker(buf)? {
        Marker::Bin8 => read_be(buf, 1)?,
        Marker::Bin16 => read_be(buf, 2)?,
        Marker::Bin32 => read_be(buf, 4)?,
        _ => return Err(FrameError::BadShape),
    };
    let len = usize::try_from(len).map_err(|_| FrameError::OutOfRange)?;
    take(buf, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_all(frames: &[Frame<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            f.encode(&mut out);
        }
        out
    }

    #[test]
    fn known_answer_fragment() {
        let bytes = encode_all(&[Frame::Fragment { stream: 7, seq: 300, index: 0, count: 1, data: b"hi" }]);
        assert_eq!(bytes, [0x96, 0x00, 0x07, 0xcd, 0x01, 0x2c, 0x00, 0x01, 0xc4, 0x02, b'h', b'i']);
    }

    #[test]
    fn known_answer_ack_and_ping() {
        let bytes = encode_all(&[Frame::Ack { largest: 5, ack_delay_us: 0, bitmap: &[0b101] }, Frame::Ping]);
        assert_eq!(bytes, [0x94, 0x01, 0x05, 0x00, 0xc4, 0x01, 0x05, 0x91, 0x02]);
    }

    #[test]
    fn overhead_constants_bound_the_largest_frames() {
        let data = vec![0u8; 70_000];
        let mut out = Vec::new();
        Frame::Fragment { stream: u32::MAX, seq: u64::MAX, index: u16::MAX - 1, count: u16::MAX, data: &data }
            .encode(&mut out);
        assert_eq!(out.len() - data.len(), FRAGMENT_OVERHEAD_MAX);
        out.clear();
        let bitmap = [0xffu8; MAX_ACK_BITMAP_BYTES];
        Frame::Ack { largest: u64::MAX, ack_delay_us: u64::MAX, bitmap: &bitmap }.encode(&mut out);
        assert_eq!(out.len(), ACK_FRAME_MAX);
    }

    #[test]
    fn empty_packet_is_an_error() {
        assert_eq!(decode_frames(&[]), Err(FrameError::Empty));
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let bytes = encode_all(&[Frame::Fragment { stream: 1, seq: 1, index: 0, count: 1, data: b"hello" }]);
        for cut in 1..bytes.len() {
            assert_eq!(decode_frames(&bytes[..cut]), Err(FrameError::Truncated), "cut at {cut}");
        }
    }

    #[test]
    fn unknown_type_is_an_error() {
        assert_eq!(decode_frames(&[0x91, 0x09]), Err(FrameError::UnknownType(9)));
    }

    #[test]
    fn wrong_arity_is_an_error() {
        assert_eq!(decode_frames(&[0x92, 0x02, 0x00]), Err(FrameError::BadShape));
        assert_eq!(decode_frames(&[0x90]), Err(FrameError::BadShape));
        assert_eq!(decode_frames(&[0x02]), Err(FrameError::BadShape));
    }

    #[test]
    fn signed_or_string_numbers_are_rejected() {
        // [2] written with a negative fixint type.
        assert_eq!(decode_frames(&[0x91, 0xff]), Err(FrameError::BadShape));
    }

    #[test]
    fn impossible_fragment_is_an_error() {
        let mut out = Vec::new();
        Frame::Fragment { stream: 1, seq: 1, index: 3, count: 3, data: b"" }.encode(&mut out);
        assert_eq!(decode_frames(&out), Err(FrameError::BadFragment { index: 3, count: 3 }));
    }

    #[test]
    fn out_of_range_stream_is_an_error() {
        // A fragment whose stream is 2^32 does not fit the u32 stream id.
        let mut out = vec![0x96, 0x00, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0];
        out.extend_from_slice(&[0x00, 0x00, 0x01, 0xc4, 0x00]);
        assert_eq!(decode_frames(&out), Err(FrameError::OutOfRange));
    }

    #[test]
    fn oversized_bitmap_is_an_error() {
        let bitmap = [0u8; MAX_ACK_BITMAP_BYTES + 1];
        let mut out = Vec::new();
        Frame::Ack { largest: 1, ack_delay_us: 0, bitmap: &bitmap }.encode(&mut out);
        assert_eq!(decode_frames(&out), Err(FrameError::BitmapTooLong(MAX_ACK_BITMAP_BYTES + 1)));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_frames(&bytes);
        }

        #[test]
        fn frames_round_trip(
            stream in any::<u32>(), seq in any::<u64>(), count in 1u16..20, data in proptest::collection::vec(any::<u8>(), 0..300),
            largest in any::<u64>(), delay in any::<u64>(), bitmap in proptest::collection::vec(any::<u8>(), 0..=MAX_ACK_BITMAP_BYTES),
        ) {
            let frames = vec![
                Frame::Fragment { stream, seq, index: count - 1, count, data: &data },
                Frame::Ack { largest, ack_delay_us: delay, bitmap: &bitmap },
                Frame::Ping,
            ];
            let bytes = encode_all(&frames);
            prop_assert_eq!(decode_frames(&bytes).unwrap(), frames);
        }
    }
}
