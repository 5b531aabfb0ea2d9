//! Fuzz target: arbitrary bytes never panic the control-message decoders, and whatever decodes survives a round
//! trip through the encoder unchanged.
#![no_main]

use chatlab_proto::control::{CodecError, decode_client, decode_server, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = decode_client(data) {
        match encode(&message) {
            Ok(bytes) => assert_eq!(decode_client(&bytes).ok(), Some(message), "client round trip"),
            // A message given in a non-canonical but accepted form may re-encode larger than the input.
            Err(CodecError::TooLarge { .. }) => {}
            Err(err) => panic!("decoded client message does not re-encode: {err}"),
        }
    }
    if let Ok(message) = decode_server(data) {
        match encode(&message) {
            Ok(bytes) => assert_eq!(decode_server(&bytes).ok(), Some(message), "server round trip"),
            Err(CodecError::TooLarge { .. }) => {}
            Err(err) => panic!("decoded server message does not re-encode: {err}"),
        }
    }
});
