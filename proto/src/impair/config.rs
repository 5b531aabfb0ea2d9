//! What an impaired link does to packets: the knobs, their defaults and their limits.
//!
//! One [`ImpairmentConfig`] describes one direction of a path. Its [`Default`] is a perfect link: no loss, no
//! delay, nothing dropped, nothing changed, so a config only names what it impairs:
//!
//! ```
//! use std::time::Duration;
//! use chatlab_proto::impair::{ImpairmentConfig, LossModel};
//!
//! let lossy = ImpairmentConfig {
//!     loss: LossModel::Bernoulli { p: 0.05 },
//!     delay: Duration::from_millis(20),
//!     jitter: Duration::from_millis(5),
//!     seed: 7,
//!     ..ImpairmentConfig::default()
//! };
//! assert_eq!(lossy.validate(), Ok(()));
//! ```
//!
//! The serialised form uses the same field names and fills missing ones from the default, so a lab file can say
//! just `{"loss": {"kind": "bernoulli", "p": 0.05}, "seed": 7}`; a misspelt field is an error rather than a setting
//! silently ignored. Durations use serde's standard `{"secs": .., "nanos": ..}` form.
//!
//! ## The path a packet takes
//!
//! [`Link::send`](super::Link::send) applies the impairments in this order, the order a packet meets them on a
//! real path:
//!
//! 1. **MTU**: a packet longer than `mtu` is dropped, as a router drops an IPv6 packet (or an IPv4 packet with the
//!    don't-fragment bit) too big for the next hop.
//! 2. **Loss**: the [`LossModel`] decides whether the packet is lost.
//! 3. **Bottleneck queue**: with a `rate_bytes_per_sec`, the packet waits for the link to finish sending what is
//!    ahead of it, then takes `len / rate` seconds to serialise; if the bytes already waiting plus its own would
//!    exceed `queue_limit_bytes`, it is tail-dropped instead.
//! 4. **Duplication**: with probability `duplicate`, a second copy leaves the bottleneck with it. Each copy then
//!    goes through the remaining steps on its own.
//! 5. **Delay**: `delay`, plus a jitter drawn uniformly from `[0, jitter]`, plus `reorder_delay` when the copy is
//!    held back (probability `reorder`).
//! 6. **Corruption**: with probability `corrupt`, one uniformly chosen bit of the copy is flipped.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ImpairmentError;
use super::loss::{LossModel, check_probability};
use crate::limits::MAX_DATAGRAM_BYTES;

/// Longest `delay`, `jitter` or `reorder_delay` a config may hold: one hour.
///
/// No real path holds a packet for anything close to an hour (a geostationary satellite hop is about 0.25 s), so
/// a larger value is almost surely a unit mistake, such as milliseconds typed as seconds. The bound also keeps
/// `now + delay + jitter + reorder_delay` far from the overflow of [`Duration`].
pub const MAX_DELAY: Duration = Duration::from_secs(60 * 60);

/// Extra delay of a held-back packet when a config does not set `reorder_delay`: 10 ms.
///
/// The labs send a chat message every 5 ms, so a packet held back 10 ms is overtaken by one or two later packets:
/// enough to show reordering and to trip a packet-threshold loss detector, which is exactly the spurious
/// retransmission a class should see, without turning every reordered packet into a timeout.
pub const DEFAULT_REORDER_DELAY: Duration = Duration::from_millis(10);

/// Packets netem queues by default (`limit 1000` in `tc qdisc ... netem`).
const NETEM_DEFAULT_LIMIT_PACKETS: usize = 1000;

/// Bytes a rate-limited link may hold waiting to be sent before it tail-drops: 1000 chatlab datagrams (1.2 MB).
///
/// This is the 1000-packet default queue of Linux netem, expressed in bytes for chatlab's largest datagram, so a
/// lab that compares this model with netem sees the same buffer. Like a real default buffer it is large: at
/// 125 kB/s (1 Mbit/s) a full queue adds almost ten seconds of delay, which is bufferbloat, and a lab that wants
/// tail drops sooner sets a smaller limit.
pub const DEFAULT_QUEUE_LIMIT_BYTES: usize = NETEM_DEFAULT_LIMIT_PACKETS * MAX_DATAGRAM_BYTES;

/// Seed of the default config. Any fixed value would do; zero makes it obvious in a printed config that nobody
/// chose one.
pub const DEFAULT_SEED: u64 = 0;

/// Everything one direction of an impaired path does to packets. See the [module documentation](self) for the
/// order in which the impairments apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImpairmentConfig {
    /// How packets are lost at random.
    pub loss: LossModel,

    /// Fixed one-way delay every packet gets: the propagation and processing time of the path. Half the minimum
    /// round-trip time when both directions use the same value.
    pub delay: Duration,

    /// Upper end of an extra delay drawn uniformly from `[0, jitter]` for each copy of each packet.
    ///
    /// Jitter alone reorders packets: two packets sent `d` apart swap places whenever the second draws a jitter
    /// more than `d` smaller than the first, which for `jitter = J > d` happens with probability
    /// `(J - d)² / (2·J²)`: 28 % for packets 5 ms apart with 20 ms of jitter. Real queueing delay varies without
    /// reordering, because one FIFO queue cannot let a packet overtake another; large independent jitter (here, as
    /// in netem) overstates reordering, which makes it a hard test for a protocol, not a faithful picture of a path.
    pub jitter: Duration,

    /// Probability that a copy is held back by an extra `reorder_delay`, so that packets sent after it overtake it.
    ///
    /// This is the reverse of netem's `reorder`, which sends the chosen packets at once and delays all the others:
    /// here the configured `delay` stays the floor for every packet and only the chosen ones arrive late, which
    /// keeps the minimum RTT a protocol measures equal to `2·delay` whatever the reordering.
    pub reorder: f64,

    /// Extra delay of a held-back copy. Zero makes `reorder` a no-op, which is allowed.
    pub reorder_delay: Duration,

    /// Probability that a packet is delivered twice. The copy has its own jitter, reordering and corruption, so it
    /// may arrive before the original.
    pub duplicate: f64,

    /// Probability that one uniformly chosen bit of a copy is flipped. An empty packet has no bit to flip and is
    /// never corrupted.
    pub corrupt: f64,

    /// Largest packet the link carries, in bytes; longer packets are dropped without fragmentation. `None` carries
    /// any size.
    pub mtu: Option<usize>,

    /// Speed of the bottleneck in bytes per second. A packet of `n` bytes occupies it for `n / rate` seconds and
    /// packets behind it wait their turn. `None` sends every packet the moment it is offered.
    pub rate_bytes_per_sec: Option<u64>,

    /// Bytes that may wait at the bottleneck, counting the packet being sent; a packet that would exceed it is
    /// tail-dropped. Only used with `rate_bytes_per_sec`.
    pub queue_limit_bytes: usize,

    /// Seed of the random stream. The same config, seed and sequence of calls always give the same result.
    pub seed: u64,
}

impl Default for ImpairmentConfig {
    /// A perfect link: everything is delivered at once, unchanged and in order.
    fn default() -> Self {
        Self {
            loss: LossModel::None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: 0.0,
            reorder_delay: DEFAULT_REORDER_DELAY,
            duplicate: 0.0,
            corrupt: 0.0,
            mtu: None,
            rate_bytes_per_sec: None,
            queue_limit_bytes: DEFAULT_QUEUE_LIMIT_BYTES,
            seed: DEFAULT_SEED,
        }
    }
}

impl ImpairmentConfig {
    /// Checks every field and names the first one that is wrong.
    ///
    /// # Errors
    /// [`ImpairmentError::ProbabilityOutOfRange`] for a NaN or out-of-range probability (of the loss model,
    /// `reorder`, `duplicate` or `corrupt`), [`ImpairmentError::DelayTooLong`] for a delay above [`MAX_DELAY`],
    /// [`ImpairmentError::ZeroMtu`], [`ImpairmentError::ZeroRate`] and [`ImpairmentError::ZeroQueueLimit`].
    pub fn validate(&self) -> Result<(), ImpairmentError> {
        self.loss.validate()?;
        check_delay("delay", self.delay)?;
        check_delay("jitter", self.jitter)?;
        check_probability("reorder", self.reorder)?;
        check_delay("reorder_delay", self.reorder_delay)?;
        check_probability("duplicate", self.duplicate)?;
        check_probability("corrupt", self.corrupt)?;
        if self.mtu == Some(0) {
            return Err(ImpairmentError::ZeroMtu);
        }
        if self.rate_bytes_per_sec == Some(0) {
            return Err(ImpairmentError::ZeroRate);
        }
        if self.queue_limit_bytes == 0 {
            return Err(ImpairmentError::ZeroQueueLimit);
        }
        Ok(())
    }
}

fn check_delay(field: &'static str, value: Duration) -> Result<(), ImpairmentError> {
    if value <= MAX_DELAY { Ok(()) } else { Err(ImpairmentError::DelayTooLong { field, value, max: MAX_DELAY }) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::impair::GilbertElliott;

    #[test]
    fn default_is_a_valid_perfect_link() {
        let config = ImpairmentConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.loss.mean_loss(), 0.0);
        assert_eq!((config.delay, config.jitter), (Duration::ZERO, Duration::ZERO));
        assert_eq!((config.reorder, config.duplicate, config.corrupt), (0.0, 0.0, 0.0));
        assert_eq!((config.mtu, config.rate_bytes_per_sec), (None, None));
    }

    #[test]
    fn extremes_of_every_range_are_accepted() {
        let config = ImpairmentConfig {
            loss: LossModel::Bernoulli { p: 1.0 },
            delay: MAX_DELAY,
            jitter: MAX_DELAY,
            reorder: 1.0,
            reorder_delay: MAX_DELAY,
            duplicate: 1.0,
            corrupt: 1.0,
            mtu: Some(1),
            rate_bytes_per_sec: Some(1),
            queue_limit_bytes: 1,
            seed: u64::MAX,
        };
        assert_eq!(config.validate(), Ok(()));
    }

    fn probability_field(config: ImpairmentConfig) -> &'static str {
        match config.validate() {
            Err(ImpairmentError::ProbabilityOutOfRange { field, .. }) => field,
            other => panic!("expected a probability error, got {other:?}"),
        }
    }

    #[test]
    fn each_bad_probability_is_named() {
        let base = ImpairmentConfig::default();
        for bad in [-0.01, 1.01, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let loss = ImpairmentConfig { loss: LossModel::Bernoulli { p: bad }, ..base.clone() };
            assert_eq!(probability_field(loss), "loss.p");
            assert_eq!(probability_field(ImpairmentConfig { reorder: bad, ..base.clone() }), "reorder");
            assert_eq!(probability_field(ImpairmentConfig { duplicate: bad, ..base.clone() }), "duplicate");
            assert_eq!(probability_field(ImpairmentConfig { corrupt: bad, ..base.clone() }), "corrupt");
        }
        let ge = GilbertElliott { p_good_to_bad: 0.1, p_bad_to_good: 0.5, loss_in_good: 0.0, loss_in_bad: 7.0 };
        let config = ImpairmentConfig { loss: LossModel::GilbertElliott(ge), ..base };
        assert_eq!(probability_field(config), "loss.loss_in_bad");
    }

    #[test]
    fn each_long_delay_is_named() {
        let too_long = MAX_DELAY + Duration::from_nanos(1);
        let base = ImpairmentConfig::default();
        let cases = [
            ("delay", ImpairmentConfig { delay: too_long, ..base.clone() }),
            ("jitter", ImpairmentConfig { jitter: too_long, ..base.clone() }),
            ("reorder_delay", ImpairmentConfig { reorder_delay: too_long, ..base }),
        ];
        for (name, config) in cases {
            assert_eq!(
                config.validate(),
                Err(ImpairmentError::DelayTooLong { field: name, value: too_long, max: MAX_DELAY })
            );
        }
    }

    #[test]
    fn zero_sizes_are_refused() {
        let base = ImpairmentConfig::default();
        assert_eq!(ImpairmentConfig { mtu: Some(0), ..base.clone() }.validate(), Err(ImpairmentError::ZeroMtu));
        let zero_rate = ImpairmentConfig { rate_bytes_per_sec: Some(0), ..base.clone() };
        assert_eq!(zero_rate.validate(), Err(ImpairmentError::ZeroRate));
        let zero_queue = ImpairmentConfig { queue_limit_bytes: 0, ..base };
        assert_eq!(zero_queue.validate(), Err(ImpairmentError::ZeroQueueLimit));
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        let config = ImpairmentConfig { duplicate: 1.5, ..ImpairmentConfig::default() };
        let text = config.validate().unwrap_err().to_string();
        assert!(text.contains("duplicate") && text.contains("1.5"), "{text}");
    }

    #[test]
    fn serde_round_trip_and_partial_configs() {
        let config = ImpairmentConfig {
            loss: LossModel::GilbertElliott(GilbertElliott::from_mean_loss_and_burst(0.05, 3.0).unwrap()),
            delay: Duration::from_millis(25),
            jitter: Duration::from_micros(1500),
            reorder: 0.01,
            duplicate: 0.002,
            corrupt: 0.001,
            mtu: Some(1280),
            rate_bytes_per_sec: Some(1_250_000),
            seed: 99,
            ..ImpairmentConfig::default()
        };
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<ImpairmentConfig>(&json).unwrap(), config);

        let partial: ImpairmentConfig =
            serde_json::from_str(r#"{"loss": {"kind": "bernoulli", "p": 0.05}, "seed": 7}"#).unwrap();
        let expected =
            ImpairmentConfig { loss: LossModel::Bernoulli { p: 0.05 }, seed: 7, ..ImpairmentConfig::default() };
        assert_eq!(partial, expected);
    }

    #[test]
    fn misspelt_field_is_an_error() {
        assert!(serde_json::from_str::<ImpairmentConfig>(r#"{"dupliate": 0.5}"#).is_err());
    }
}
