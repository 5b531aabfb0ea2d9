//! Length-prefixed framing: cutting a TCP byte stream back into messages.
//!
//! TCP delivers a stream of bytes, not messages. One `write` of 300 bytes may arrive as three `read`s of 100, and two
//! small writes may arrive in one read. Whoever reads must know where one message ends and the next begins. The
//! original Python chat room simply assumed one `recv` was one message, which worked on a quiet LAN and broke the
//! moment a message was split or two were merged.
//!
//! chatlab puts a 2-byte big-endian length before every message:
//!
//! ```text
//! +--------+--------+-------------------------------+--------+--------+-------- ...
//! |  length (u16 BE) |  `length` bytes of payload    |  length (u16 BE) |  next payload
//! +--------+--------+-------------------------------+--------+--------+-------- ...
//! ```
//!
//! The payload is a Noise transport message (ciphertext plus tag); this codec never looks inside it. A u16 caps a
//! frame at 65 535 bytes, which is also the largest message Noise allows, so the two limits agree by construction.
//!
//! **Bounded memory.** A reader must never trust a peer to send the rest of what it announced. [`FrameDecoder`]
//! checks the length header the moment its two bytes arrive: a zero length or one above the decoder's maximum is an
//! error at once, before any body byte is waited for. So the bytes it holds for an unfinished frame never exceed one
//! maximum frame plus its 2-byte header. The maximum can be lowered per connection: a server accepts only small
//! frames from a peer that has not logged in yet, so an anonymous connection costs little memory.
//!
//! **Zero-length frames are errors.** Every real payload is a Noise message of at least 16 bytes (the AEAD tag), so an
//! empty frame can only be a bug or an attempt to make the reader spin without progress.

use thiserror::Error;

/// Bytes of the length prefix in front of every frame.
pub const FRAME_HEADER_BYTES: usize = 2;

/// Largest payload a frame can carry: the largest number a u16 length prefix can express. Noise caps its messages at
/// the same 65 535 bytes, so every Noise message fits one frame.
pub const MAX_FRAME_BYTES: usize = u16::MAX as usize;

/// What can go wrong while framing or unframing.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// A frame announced, or a payload to send has, zero bytes.
    #[error("zero-length frame")]
    Empty,
    /// A frame announced, or a payload to send has, more bytes than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Bytes announced or offered.
        len: usize,
        /// The limit in force.
        max: usize,
    },
}

/// Appends one frame carrying `payload` to `out`.
///
/// Fails without touching `out` when the payload is empty or longer than [`MAX_FRAME_BYTES`].
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    if payload.is_empty() {
        return Err(FrameError::Empty);
    }
    let len =
        u16::try_from(payload.len()).map_err(|_| FrameError::TooLarge { len: payload.len(), max: MAX_FRAME_BYTES })?;
    out.reserve(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Streaming frame decoder: feed it bytes as they arrive with [`extend`](Self::extend), take complete frames out with
/// [`next_frame`](Self::next_frame).
///
/// A framing error leaves the stream without a trustworthy boundary, so the decoder stays failed: every later call of
/// `next_frame` returns the same error and further input is dropped. The connection must be closed.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    /// Received bytes; those before `start` are already handed out.
    buf: Vec<u8>,
    /// Offset of the first byte not yet handed out as part of a frame.
    start: usize,
    /// Largest payload accepted, at most [`MAX_FRAME_BYTES`].
    max_frame: usize,
    /// Set by the first error; the stream cannot be resynchronised after it.
    failed: Option<FrameError>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    /// A decoder that accepts frames up to [`MAX_FRAME_BYTES`].
    pub fn new() -> FrameDecoder {
        FrameDecoder::with_max_frame_bytes(u16::MAX)
    }

    /// A decoder that refuses frames with more than `max` payload bytes. The type makes `max` at most
    /// [`MAX_FRAME_BYTES`]; a maximum of 0 refuses every frame.
    pub fn with_max_frame_bytes(max: u16) -> FrameDecoder {
        FrameDecoder { buf: Vec::new(), start: 0, max_frame: usize::from(max), failed: None }
    }

    /// Changes the limit for frames whose header has not been checked yet, e.g. raise it once the peer has logged
    /// in.
    pub fn set_max_frame_bytes(&mut self, max: u16) {
        self.max_frame = usize::from(max);
    }

    /// The largest payload currently accepted.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame
    }

    /// Adds bytes read from the stream. Call [`next_frame`](Self::next_frame) until it returns `Ok(None)` after each
    /// call, so that only an unfinished frame stays buffered.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        // Reclaim the space of frames already handed out before growing, so the buffer holds only pending bytes.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame's payload, `Ok(None)` if more bytes are needed, or the framing error.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let pending = self.buf.get(self.start..).unwrap_or_default();
        let Some(&[hi, lo]) = pending.get(..FRAME_HEADER_BYTES) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len == 0 {
            return Err(self.fail(FrameError::Empty));
        }
        if len > self.max_frame {
            return Err(self.fail(FrameError::TooLarge { len, max: self.max_frame }));
        }
        // `len` is at most 65 535, so this sum cannot overflow.
        let end = FRAME_HEADER_BYTES + len;
        let Some(payload) = pending.get(FRAME_HEADER_BYTES..end) else {
            return Ok(None);
        };
        let frame = payload.to_vec();
        self.start += end;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(frame))
    }

    /// Bytes received but not yet handed out as frames.
    pub fn buffered_len(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// Whether part of a frame is buffered. When the peer closes the connection while this is true, its last frame
    /// was cut off: worth a log line, since a well-behaved peer closes between frames.
    pub fn has_partial_frame(&self) -> bool {
        self.buffered_len() > 0
    }

    fn fail(&mut self, err: FrameError) -> FrameError {
        self.failed = Some(err.clone());
        self.buf = Vec::new();
        self.start = 0;
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for payload in payloads {
            encode_frame(payload, &mut out).expect("test payloads are valid");
        }
        out
    }

    #[test]
    fn known_answer_layout() {
        assert_eq!(framed(&[b"abc"]), b"\x00\x03abc");
        let mut out = Vec::new();
        encode_frame(&[7u8; 258], &mut out).expect("valid payload");
        assert_eq!(out.get(..3), Some(&[0x01, 0x02, 7][..]));
        assert_eq!(out.len(), 260);
    }

    #[test]
    fn encode_accepts_the_maximum_payload() {
        let mut out = Vec::new();
        encode_frame(&vec![0u8; MAX_FRAME_BYTES], &mut out).expect("maximum fits");
        assert_eq!(out.get(..2), Some(&[0xff, 0xff][..]));
    }

    #[test]
    fn encode_refuses_oversized_payload_and_leaves_output_alone() {
        let mut out = b"kept".to_vec();
        assert_eq!(
            encode_frame(&vec![0u8; MAX_FRAME_BYTES + 1], &mut out),
            Err(FrameError::TooLarge { len: MAX_FRAME_BYTES + 1, max: MAX_FRAME_BYTES })
        );
        assert_eq!(out, b"kept");
    }

    #[test]
    fn encode_refuses_empty_payload() {
        let mut out = Vec::new();
        assert_eq!(encode_frame(b"", &mut out), Err(FrameError::Empty));
        assert!(out.is_empty());
    }

    #[test]
    fn decodes_frames_split_byte_by_byte() {
        let bytes = framed(&[b"hello", b"w"]);
        let mut dec = FrameDecoder::new();
        let mut frames = Vec::new();
        for byte in &bytes {
            dec.extend(std::slice::from_ref(byte));
            while let Some(frame) = dec.next_frame().expect("valid stream") {
                frames.push(frame);
            }
        }
        assert_eq!(frames, vec![b"hello".to_vec(), b"w".to_vec()]);
        assert!(!dec.has_partial_frame());
    }

    #[test]
    fn decodes_several_frames_from_one_read() {
        let mut dec = FrameDecoder::new();
        dec.extend(&framed(&[b"a", b"bb", b"ccc"]));
        assert_eq!(dec.next_frame(), Ok(Some(b"a".to_vec())));
        assert_eq!(dec.next_frame(), Ok(Some(b"bb".to_vec())));
        assert_eq!(dec.next_frame(), Ok(Some(b"ccc".to_vec())));
        assert_eq!(dec.next_frame(), Ok(None));
        assert_eq!(dec.buffered_len(), 0);
    }

    #[test]
    fn partial_frame_is_reported() {
        let mut dec = FrameDecoder::new();
        dec.extend(b"\x00\x05ab");
        assert_eq!(dec.next_frame(), Ok(None));
        assert!(dec.has_partial_frame());
        assert_eq!(dec.buffered_len(), 4);
    }

    #[test]
    fn zero_length_frame_is_an_error() {
        let mut dec = FrameDecoder::new();
        dec.extend(b"\x00\x00");
        assert_eq!(dec.next_frame(), Err(FrameError::Empty));
    }

    #[test]
    fn oversized_header_fails_before_the_body_arrives() {
        let mut dec = FrameDecoder::with_max_frame_bytes(100);
        dec.extend(b"\x00\x65");
        assert_eq!(dec.next_frame(), Err(FrameError::TooLarge { len: 101, max: 100 }));
        assert_eq!(dec.buffered_len(), 0);
    }

    #[test]
    fn decoder_stays_failed_and_drops_input() {
        let mut dec = FrameDecoder::new();
        dec.extend(b"\x00\x00");
        assert_eq!(dec.next_frame(), Err(FrameError::Empty));
        dec.extend(b"\x00\x01x");
        assert_eq!(dec.next_frame(), Err(FrameError::Empty));
        assert_eq!(dec.buffered_len(), 0);
    }

    #[test]
    fn limit_can_be_raised_after_login() {
        let mut dec = FrameDecoder::with_max_frame_bytes(4);
        dec.extend(&framed(&[b"1234"]));
        assert_eq!(dec.next_frame(), Ok(Some(b"1234".to_vec())));
        dec.set_max_frame_bytes(u16::MAX);
        assert_eq!(dec.max_frame_bytes(), MAX_FRAME_BYTES);
        dec.extend(&framed(&[b"12345"]));
        assert_eq!(dec.next_frame(), Ok(Some(b"12345".to_vec())));
    }

    #[test]
    fn zero_maximum_refuses_everything() {
        let mut dec = FrameDecoder::with_max_frame_bytes(0);
        dec.extend(b"\x00\x01x");
        assert_eq!(dec.next_frame(), Err(FrameError::TooLarge { len: 1, max: 0 }));
    }

    #[test]
    fn unfinished_maximum_frame_stays_bounded() {
        let mut dec = FrameDecoder::new();
        let mut bytes = vec![0xff, 0xff];
        bytes.extend(std::iter::repeat_n(0u8, MAX_FRAME_BYTES - 1));
        dec.extend(&bytes);
        assert_eq!(dec.next_frame(), Ok(None));
        assert!(dec.buffered_len() < MAX_FRAME_BYTES + FRAME_HEADER_BYTES);
        dec.extend(&[0]);
        let frame = dec.next_frame().expect("valid").expect("complete");
        assert_eq!(frame.len(), MAX_FRAME_BYTES);
    }

    proptest! {
        #[test]
        fn round_trip_with_arbitrary_splits(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..20),
            chunk in 1usize..64,
        ) {
            let mut bytes = Vec::new();
            for payload in &payloads {
                encode_frame(payload, &mut bytes).expect("valid payload");
            }
            let mut dec = FrameDecoder::with_max_frame_bytes(300);
            let mut frames = Vec::new();
            for piece in bytes.chunks(chunk) {
                dec.extend(piece);
                while let Some(frame) = dec.next_frame().expect("valid stream") {
                    frames.push(frame);
                }
                // After draining, only an unfinished frame remains: never more than a maximum frame and header.
                prop_assert!(dec.buffered_len() < 300 + FRAME_HEADER_BYTES);
            }
            prop_assert_eq!(frames, payloads);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..10),
            max in any::<u16>(),
        ) {
            let mut dec = FrameDecoder::with_max_frame_bytes(max);
            for piece in &pieces {
                dec.extend(piece);
                while let Ok(Some(frame)) = dec.next_frame() {
                    prop_assert!(!frame.is_empty() && frame.len() <= usize::from(max));
                }
                prop_assert!(dec.buffered_len() <= usize::from(max) + FRAME_HEADER_BYTES);
            }
        }
    }
}
