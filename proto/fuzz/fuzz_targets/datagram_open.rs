//! Fuzz target: untrusted bytes against the datagram opener.
//!
//! Every UDP datagram the server receives comes from the open Internet, so `Header::parse` and `Opener::open` must
//! survive any input without panicking, and no input the fuzzer can produce without the key may change the
//! opener's state. The target checks both: it feeds the input to a fresh opener built from a fixed secret, then
//! proves that a genuine packet sealed with the matching key still opens — a forged packet must not have moved the
//! replay window or the key generation.
//!
//! To reach the deeper checks (connection id, replay window, tag) the fuzzer has to discover the header layout and
//! the fixed connection id; comparison tracing guides it there, and a seed corpus holding one genuine datagram
//! (the output of `Sealer::seal` with this secret and connection id) gets it there at once.
//!
//! Run with `cargo fuzz run datagram_open` from `proto/`.
#![no_main]

use chatlab_proto::datagram::{Header, KeyUpdateConfig, PacketType, Role, SessionKeys};
use libfuzzer_sys::fuzz_target;

/// Session secret of the fuzzed session. Fixed, so every run is reproducible from its input alone.
const SECRET: [u8; 32] = [0x5A; 32];

/// Connection id of the fuzzed session.
const CONNECTION_ID: u64 = 0x00C0_FFEE_D00D_F00D;

/// Packet number of the genuine packet sent after the fuzz input. Small, so a forged input that (wrongly) moved the
/// replay window past it would make the check below fail.
const GENUINE_PACKET_NUMBER: u64 = 1;

fuzz_target!(|data: &[u8]| {
    let _ = Header::parse(data);

    let (_, mut opener) =
        SessionKeys::derive(&SECRET, Role::Server).into_endpoints(CONNECTION_ID, KeyUpdateConfig::default());
    let forged = opener.open(data);
    assert!(forged.is_err(), "bytes sealed without the key must never open");

    let (mut sealer, _) =
        SessionKeys::derive(&SECRET, Role::Client).into_endpoints(CONNECTION_ID, KeyUpdateConfig::default());
    let mut genuine = Vec::new();
    if sealer.seal(PacketType::Data, GENUINE_PACKET_NUMBER, b"still here", &mut genuine).is_ok() {
        let opened = opener.open(&genuine);
        assert_eq!(
            opened.map(|o| o.plaintext),
            Ok(b"still here".to_vec()),
            "a rejected input must not change the opener's state"
        );
    }
});
