//! Wall-clock time for message timestamps.
//!
//! Two clocks run in a server. The *monotonic* clock (`Instant`) never jumps and drives every timer, rate limit and
//! retransmission; the *wall* clock (`SystemTime`) can jump when an administrator or NTP corrects it, and is used
//! for exactly one thing: the `sent_at_ms` people read on a message. It is UTC milliseconds since the Unix epoch,
//! so clients in any time zone show the right local time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, UTC. A clock set before 1970 gives 0, one beyond the year 292 million gives
/// `i64::MAX`: a strange timestamp is better than a panic.
pub fn utc_now_ms() -> i64 {
    millis_since_epoch(SystemTime::now())
}

fn millis_since_epoch(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(elapsed) => i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn epoch_arithmetic_is_clamped() {
        assert_eq!(millis_since_epoch(UNIX_EPOCH + Duration::from_millis(1_234)), 1_234);
        assert_eq!(millis_since_epoch(UNIX_EPOCH - Duration::from_secs(1)), 0);
        // 2020-01-01T00:00:00Z, so "now" is certainly later.
        assert!(utc_now_ms() > 1_577_836_800_000);
    }
}
