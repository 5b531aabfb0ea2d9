//! Round-trip time and the retransmission timeout (RTO).
//!
//! A sender that hears nothing back must eventually decide that a packet is lost and send its contents again. Wait
//! too little and it resends packets that were merely slow (a *spurious* retransmission, wasted bytes); wait too long
//! and a lost chat message sits undelivered. The right wait depends on the path, so the sender measures the round-trip
//! time (RTT) of every acknowledged packet and keeps two running figures, exactly as RFC 6298 (TCP) and RFC 9002
//! (QUIC) describe:
//!
//! - `srtt`, a smoothed RTT: `srtt = 7/8 · srtt + 1/8 · sample`, an average that forgets old samples slowly;
//! - `rttvar`, the RTT variation: `rttvar = 3/4 · rttvar + 1/4 · |srtt − sample|`, how much samples wander.
//!
//! The timeout is `RTO = srtt + max(4 · rttvar, granularity)`, kept between a floor and a ceiling. Four deviations
//! above the mean make a spurious timeout rare even on a jittery Wi-Fi link.
//!
//! **The floor is where this lab differs from TCP.** Linux TCP never waits less than 200 ms before a timeout
//! retransmission, a figure from the days of coarse kernel timers. On a LAN whose RTT is a fraction of a
//! millisecond that floor is what makes a lost TCP segment cost hundreds of milliseconds. QUIC only keeps a 1 ms timer
//! granularity; chatlab's default floor is [`DEFAULT_MIN_RTO`], and it is configurable so a class can set it to
//! 200 ms and watch the tail latency grow.
//!
//! Every packet number is used once (a retransmission carries the data in a *new* packet), so an acknowledgement
//! always says which transmission it answers and every RTT sample is unambiguous: no Karn's algorithm is needed.

use std::time::Duration;

/// Default lowest RTO: 2 ms. A few times a loopback or switched-LAN round trip, small enough that a lost chat message
/// is resent before a person could notice, large enough that an idle machine's scheduling hiccups rarely fire it.
pub const DEFAULT_MIN_RTO: Duration = Duration::from_millis(2);

/// Default highest RTO: 1 s. Exponential back-off doubles the RTO after each timeout in a row; the ceiling bounds how
/// long a chat stays silent after a dead link comes back (RFC 6298 allows a ceiling of at least 60 s, which suits
/// bulk transfer, not conversation).
pub const DEFAULT_MAX_RTO: Duration = Duration::from_secs(1);

/// RTT assumed before the first sample: 100 ms. RFC 9002 uses 333 ms for the open Internet; chatlab is built for a
/// classroom LAN, where 100 ms is already pessimistic, and the first real sample replaces it at once.
pub const DEFAULT_INITIAL_RTT: Duration = Duration::from_millis(100);

/// Timer granularity: the smallest wait the estimator ever asks for, 1 ms as in RFC 9002. Operating-system timers
/// are not finer than that in practice, and it keeps `4 · rttvar` from collapsing to zero on a perfectly steady path.
pub const DEFAULT_GRANULARITY: Duration = Duration::from_millis(1);

/// The RTT estimator of one connection.
#[derive(Debug, Clone)]
pub struct RttEstimator {
    srtt: Duration,
    rttvar: Duration,
    min_rtt: Option<Duration>,
    latest: Option<Duration>,
    min_rto: Duration,
    max_rto: Duration,
    granularity: Duration,
}

impl RttEstimator {
    /// A new estimator that assumes `initial_rtt` until the first sample, as RFC 9002 section 6.2.2 does.
    pub fn new(initial_rtt: Duration, min_rto: Duration, max_rto: Duration, granularity: Duration) -> Self {
        Self { srtt: initial_rtt, rttvar: initial_rtt / 2, min_rtt: None, latest: None, min_rto, max_rto, granularity }
    }

    /// Feeds one RTT sample. `ack_delay` is how long the peer says it held the acknowledgement; it is subtracted
    /// (as RFC 9002 section 5.3 says) unless that would make the sample smaller than the smallest RTT ever seen, which
    /// would mean the peer's figure is wrong.
    pub fn update(&mut self, sample: Duration, ack_delay: Duration) {
        let min_rtt = self.min_rtt.map_or(sample, |m| m.min(sample));
        self.min_rtt = Some(min_rtt);
        let adjusted = if sample >= min_rtt.saturating_add(ack_delay) { sample - ack_delay } else { sample };
        if self.latest.is_none() {
            self.srtt = adjusted;
            self.rttvar = adjusted / 2;
        } else {
            let deviation = self.srtt.abs_diff(adjusted);
            self.rttvar = (self.rttvar * 3 + deviation) / 4;
            self.srtt = (self.srtt * 7 + adjusted) / 8;
        }
        self.latest = Some(sample);
    }

    /// The retransmission timeout before any back-off.
    pub fn rto(&self) -> Duration {
        let base = self.srtt + (self.rttvar * 4).max(self.granularity);
        base.clamp(self.min_rto, self.max_rto)
    }

    /// The timeout after `backoff` timeouts in a row: the RTO doubled that many times, never above the ceiling.
    pub fn backed_off_rto(&self, backoff: u32) -> Duration {
        let factor = 1u32.checked_shl(backoff.min(31)).unwrap_or(u32::MAX);
        self.rto().saturating_mul(factor).min(self.max_rto)
    }

    /// How long after a later packet was acknowledged an earlier unacknowledged one counts as lost:
    /// `eighths / 8` of the larger of the smoothed and the latest RTT. RFC 9002 section 6.1.2 uses 9/8: the eighth is
    /// slack for packets reordered by a fraction of a round trip, so reordering does not pass for loss. The engine
    /// widens it when it finds that it mistook reordering for loss.
    pub fn loss_delay(&self, eighths: u32) -> Duration {
        let rtt = self.latest.map_or(self.srtt, |l| l.max(self.srtt));
        (rtt * eighths / 8).max(self.granularity)
    }

    /// Smoothed RTT (the initial guess until the first sample).
    pub fn srtt(&self) -> Duration {
        self.srtt
    }

    /// RTT variation.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// Smallest RTT sample seen, if any.
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// Latest RTT sample, if any.
    pub fn latest(&self) -> Option<Duration> {
        self.latest
    }

    /// Whether any sample has arrived yet.
    pub fn has_samples(&self) -> bool {
        self.latest.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn estimator() -> RttEstimator {
        RttEstimator::new(DEFAULT_INITIAL_RTT, DEFAULT_MIN_RTO, DEFAULT_MAX_RTO, DEFAULT_GRANULARITY)
    }

    #[test]
    fn initial_rto_comes_from_the_initial_rtt() {
        // srtt = 100 ms, rttvar = 50 ms: RTO = 100 + 4 · 50 = 300 ms.
        assert_eq!(estimator().rto(), ms(300));
    }

    #[test]
    fn first_sample_replaces_the_guess() {
        let mut e = estimator();
        e.update(ms(40), Duration::ZERO);
        assert_eq!(e.srtt(), ms(40));
        assert_eq!(e.rttvar(), ms(20));
        assert_eq!(e.rto(), ms(120));
    }

    #[test]
    fn later_samples_are_smoothed_as_rfc_6298_says() {
        let mut e = estimator();
        e.update(ms(40), Duration::ZERO);
        e.update(ms(80), Duration::ZERO);
        // rttvar = 3/4 · 20 + 1/4 · |40 − 80| = 25; srtt = 7/8 · 40 + 1/8 · 80 = 45.
        assert_eq!(e.rttvar(), ms(25));
        assert_eq!(e.srtt(), ms(45));
        assert_eq!(e.min_rtt(), Some(ms(40)));
        assert_eq!(e.latest(), Some(ms(80)));
    }

    #[test]
    fn ack_delay_is_subtracted_unless_it_undercuts_min_rtt() {
        let mut e = estimator();
        e.update(ms(10), Duration::ZERO);
        e.update(ms(30), ms(15));
        // 30 − 15 = 15 ≥ min_rtt 10: the adjusted sample 15 is used.
        assert_eq!(e.srtt(), (ms(10) * 7 + ms(15)) / 8);
        let before = e.srtt();
        e.update(ms(12), ms(5));
        // 12 − 5 = 7 < 10: the delay is ignored, the raw 12 is used.
        assert_eq!(e.srtt(), (before * 7 + ms(12)) / 8);
    }

    #[test]
    fn absurd_ack_delay_from_the_peer_does_not_overflow() {
        let mut e = estimator();
        e.update(ms(10), Duration::ZERO);
        e.update(ms(10), Duration::MAX);
        assert_eq!(e.srtt(), ms(10));
    }

    #[test]
    fn rto_never_goes_below_the_floor() {
        let mut e = estimator();
        for _ in 0..50 {
            e.update(Duration::from_micros(50), Duration::ZERO);
        }
        assert_eq!(e.rto(), DEFAULT_MIN_RTO);
    }

    #[test]
    fn backoff_doubles_and_stops_at_the_ceiling() {
        let mut e = estimator();
        e.update(ms(10), Duration::ZERO);
        assert_eq!(e.backed_off_rto(0), ms(30));
        assert_eq!(e.backed_off_rto(1), ms(60));
        assert_eq!(e.backed_off_rto(3), ms(240));
        assert_eq!(e.backed_off_rto(10), DEFAULT_MAX_RTO);
        assert_eq!(e.backed_off_rto(u32::MAX), DEFAULT_MAX_RTO);
    }

    #[test]
    fn loss_delay_is_nine_eighths_of_the_rtt_but_at_least_the_granularity() {
        let mut e = estimator();
        e.update(ms(8), Duration::ZERO);
        assert_eq!(e.loss_delay(9), ms(9));
        assert_eq!(e.loss_delay(16), ms(16));
        let mut fast = estimator();
        fast.update(Duration::from_micros(100), Duration::ZERO);
        assert_eq!(fast.loss_delay(9), DEFAULT_GRANULARITY);
    }
}
