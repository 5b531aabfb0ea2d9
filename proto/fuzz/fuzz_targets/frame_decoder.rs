//! Fuzz target: arbitrary bytes, cut into arbitrary pieces, never panic the frame decoder, and what it yields obeys
//! its limits.
//!
//! The first two input bytes choose the decoder's maximum frame size and the third the size of the pieces the rest
//! is fed in, so the fuzzer explores limits and read boundaries as well as contents.
#![no_main]

use chatlab_proto::control::{FRAME_HEADER_BYTES, FrameDecoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [hi, lo, piece, rest @ ..] = data else {
        return;
    };
    let max = u16::from_be_bytes([*hi, *lo]);
    let piece = usize::from(*piece).max(1);
    let mut decoder = FrameDecoder::with_max_frame_bytes(max);
    for chunk in rest.chunks(piece) {
        decoder.extend(chunk);
        while let Ok(Some(frame)) = decoder.next_frame() {
            assert!(!frame.is_empty(), "zero-length frames are errors");
            assert!(frame.len() <= usize::from(max), "frame above the decoder's limit");
        }
        assert!(
            decoder.buffered_len() <= usize::from(max) + FRAME_HEADER_BYTES,
            "more than one unfinished frame buffered"
        );
    }
});
