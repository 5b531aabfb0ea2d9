//! Fuzz target: an authenticated but hostile peer against the reliability engine.
//!
//! Past the AEAD tag, a datagram's plaintext comes from a peer that logged in, and that peer may lie. The input is
//! cut into packets (a length byte, then that many bytes of frames) with a time step between them; each packet goes
//! to `Engine::handle_packet` as if it had opened. Whatever the frames say, the engine must not panic, must never
//! account more than its receive budget, and once it reports a failure it must stay inert and hold nothing. The
//! first input byte picks the ordering mode, so both receive paths are explored.
//!
//! Run with `cargo fuzz run engine_hostile` from `proto/`.
#![no_main]

use std::time::Duration;

use chatlab_proto::engine::{Engine, EngineConfig, Event, Ordering};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else { return };
    let ordering = if mode & 1 == 0 { Ordering::InOrder } else { Ordering::Unordered };
    let config = EngineConfig { ordering, ..EngineConfig::default() };
    let budget = config.receive_budget;
    let mut engine = Engine::new(config, Duration::ZERO).expect("valid configuration");
    let mut now = Duration::ZERO;
    let mut out = Vec::new();
    let mut failed = false;
    let mut input = rest;
    let mut pn = 0u64;
    while let [len, step, tail @ ..] = input {
        let len = usize::from(*len).min(tail.len());
        let (packet, tail) = tail.split_at(len);
        input = tail;
        // Sometimes a long pause, so the stall timeout and the idle timer get exercised too.
        now += if *step == 0xff { Duration::from_secs(61) } else { Duration::from_millis(u64::from(*step)) };
        let _ = engine.handle_packet(pn, packet, now);
        pn += 1;
        engine.handle_timeout(now);
        while engine.poll_transmit(now, &mut out).is_some() {}
        while let Some(event) = engine.poll_event() {
            if matches!(event, Event::Failed(_)) {
                assert!(!failed, "a failure is reported once");
                failed = true;
            }
        }
        assert!(engine.receive_accounted_bytes() <= budget, "over the receive budget");
        if failed {
            assert_eq!(engine.receive_accounted_bytes(), 0, "a failed engine holds nothing");
            assert_eq!(engine.poll_timeout(), None, "a failed engine sets no timer");
        }
    }
});
