//! The one error type of the impairment model.
//!
//! Impairment settings come from people: a lab's JSON file, a slider in the desktop app, a command-line flag. A
//! probability of `1.5` or a delay typed in seconds instead of milliseconds is a mistake the model should name
//! precisely, not silently clamp, so every check in [`ImpairmentConfig::validate`](super::ImpairmentConfig::validate)
//! and [`GilbertElliott::from_mean_loss_and_burst`](super::GilbertElliott::from_mean_loss_and_burst) has its own
//! variant that says which field is wrong and what it held.

use std::time::Duration;

/// Why an impairment setting was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImpairmentError {
    /// A probability was NaN, negative or greater than one.
    #[error("{field} must be a probability between 0 and 1, got {value}")]
    ProbabilityOutOfRange {
        /// Dotted name of the field, as it appears in a serialised config (`"loss.p"`, `"duplicate"`, ...).
        field: &'static str,
        /// The value that was refused.
        value: f64,
    },

    /// A delay was longer than [`MAX_DELAY`](super::MAX_DELAY).
    #[error("{field} is {value:?}, longer than the largest allowed delay of {max:?}")]
    DelayTooLong {
        /// Name of the field (`"delay"`, `"jitter"` or `"reorder_delay"`).
        field: &'static str,
        /// The value that was refused.
        value: Duration,
        /// The limit it broke.
        max: Duration,
    },

    /// `mtu` was `Some(0)`.
    #[error("mtu must be at least 1 byte; to drop every packet use a loss probability of 1 instead")]
    ZeroMtu,

    /// `rate_bytes_per_sec` was `Some(0)`.
    #[error("rate_bytes_per_sec must be at least 1; use None for a link without a rate limit")]
    ZeroRate,

    /// `queue_limit_bytes` was zero.
    #[error("queue_limit_bytes must be at least 1 byte, or every packet would be tail-dropped")]
    ZeroQueueLimit,

    /// The mean loss asked of [`GilbertElliott::from_mean_loss_and_burst`](super::GilbertElliott::from_mean_loss_and_burst)
    /// was NaN or outside `[0, 1)`.
    #[error("mean loss must be at least 0 and below 1, got {0}")]
    MeanLossOutOfRange(f64),

    /// The mean burst length asked of
    /// [`GilbertElliott::from_mean_loss_and_burst`](super::GilbertElliott::from_mean_loss_and_burst) was NaN,
    /// infinite or below one packet.
    #[error("mean burst length must be a finite number of packets, at least 1, got {0}")]
    BurstLengthOutOfRange(f64),

    /// The mean loss and burst length are each valid but cannot both hold: the good-to-bad probability they need
    /// is above one. Long gaps between bursts are needed to keep the mean low; a high mean loss with short bursts
    /// would need the chain to enter the bad state more often than once per packet.
    #[error(
        "a mean loss of {mean_loss} with bursts of {mean_burst_len} packets would need a good-to-bad \
         probability of {needed}, above 1; use longer bursts or a lower mean loss"
    )]
    UnreachableLossAndBurst {
        /// The mean loss asked for.
        mean_loss: f64,
        /// The mean burst length asked for.
        mean_burst_len: f64,
        /// The good-to-bad transition probability it would take.
        needed: f64,
    },
}
