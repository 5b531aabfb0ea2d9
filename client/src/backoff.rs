//! Exponential back-off between reconnection attempts.
//!
//! When a server goes down, every client in the class notices at the same moment. If each retried at a fixed short
//! interval, the server would be flooded the instant it came back (and while it is down, the network carries nothing
//! but futile connection attempts). Exponential back-off doubles the wait after each failure up to a cap, so a brief
//! hiccup is repaired in a fraction of a second while a long outage costs little. A random *jitter* of up to a
//! quarter of the wait spreads the clients out, so they do not all return in the same millisecond (the "thundering
//! herd").

use std::time::Duration;

/// Largest fraction of a wait added as random jitter, as a divisor: up to a quarter.
const JITTER_DIVISOR: u32 = 4;

/// Doubling waits between `min` and `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A back-off starting at `min` and never above `max` (a `max` below `min` is raised to it).
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max: max.max(min), attempt: 0 }
    }

    /// Attempts made since the last [`reset`](Self::reset).
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The wait before the next attempt, without jitter: `min × 2^(attempt)`, capped at `max`. Counts the attempt.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt).unwrap_or(u32::MAX);
        let delay = self.min.checked_mul(factor).unwrap_or(self.max).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// [`next_delay`](Self::next_delay) plus up to a quarter of it as random jitter, still capped at `max`.
    pub fn next_delay_with_jitter(&mut self) -> Duration {
        let delay = self.next_delay();
        let spread = delay / JITTER_DIVISOR;
        let jitter = spread.mul_f64(rand::random::<f64>());
        delay.saturating_add(jitter).min(self.max)
    }

    /// Starts again from `min` (after a successful connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_the_cap() {
        let mut backoff = Backoff::new(250 * MS, 2_000 * MS);
        let delays: Vec<_> = (0..6).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays, [250 * MS, 500 * MS, 1_000 * MS, 2_000 * MS, 2_000 * MS, 2_000 * MS]);
        assert_eq!(backoff.attempts(), 6);
        backoff.reset();
        assert_eq!(backoff.next_delay(), 250 * MS);
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..200 {
            assert!(backoff.next_delay() <= Duration::from_secs(30));
        }
        // Doubling past what a Duration can hold saturates at the cap instead of overflowing.
        let mut extreme = Backoff::new(Duration::MAX / 2 + Duration::from_secs(1), Duration::MAX);
        assert_eq!(extreme.next_delay(), Duration::MAX / 2 + Duration::from_secs(1));
        assert_eq!(extreme.next_delay(), Duration::MAX);
    }

    #[test]
    fn jitter_stays_within_a_quarter_and_the_cap() {
        let mut backoff = Backoff::new(400 * MS, 1_000 * MS);
        for expected in [400 * MS, 800 * MS, 1_000 * MS] {
            let delay = backoff.next_delay_with_jitter();
            assert!(delay >= expected && delay <= (expected + expected / 4).min(1_000 * MS), "{delay:?}");
        }
    }

    #[test]
    fn max_below_min_is_raised() {
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(backoff.next_delay(), Duration::from_secs(2));
        assert_eq!(backoff.next_delay(), Duration::from_secs(2));
    }
}
