//! Packet loss models: none, independent (Bernoulli) and bursty (Gilbert-Elliott).
//!
//! ## Independent loss
//!
//! The simplest model flips a biased coin for every packet: with probability `p` it is lost, whatever happened to
//! the packets before it. It is easy to reason about (the number of losses in `n` packets is binomial, with mean
//! `n·p` and standard deviation `sqrt(n·p·(1-p))`) and it is what `tc qdisc ... netem loss random P` and an
//! nftables `numgen random` drop rule do.
//!
//! ## Why real loss comes in bursts
//!
//! Real networks rarely lose packets independently. A router drops when its queue is full, and a queue stays full
//! for a while: every packet arriving in that moment is dropped, then none for a long time. A Wi-Fi station that
//! walks behind a wall, a microwave oven on the same channel, a cellular handover: each spoils the medium for many
//! consecutive packets. So at the same average loss, real traffic sees long clean stretches and then several losses
//! in a row. Bursts matter to a protocol: one lost packet is repaired by one fast retransmission, but a burst can
//! also swallow the retransmission, the acknowledgements and the packets that would have triggered fast retransmit,
//! leaving only the retransmission timeout, which is where tail latency comes from.
//!
//! ## The Gilbert-Elliott model
//!
//! Gilbert (1960) and Elliott (1963) described such a channel as a two-state Markov chain. The channel is either
//! *good* or *bad*; before each packet it moves between states with fixed probabilities, and each state loses
//! packets at its own rate:
//!
//! ```text
//!   stay: 1 - p_good_to_bad                  stay: 1 - p_bad_to_good
//!         ┌────┐                                   ┌────┐
//!         ▼    │          p_good_to_bad            ▼    │
//!   ┌──────────┴───┐ ─────────────────────► ┌──────────┴───┐
//!   │     GOOD     │                        │     BAD      │
//!   │ loses with   │ ◄───────────────────── │ loses with   │
//!   │ loss_in_good │      p_bad_to_good     │ loss_in_bad  │
//!   └──────────────┘                        └──────────────┘
//! ```
//!
//! Because the state is remembered from one packet to the next, losses cluster while the chain sits in the bad
//! state. The facts a student needs:
//!
//! * The chain stays in a state for a geometric number of packets: on average `1 / p_bad_to_good` packets in bad,
//!   `1 / p_good_to_bad` in good.
//! * In the long run it spends the fraction `π_bad = p_good_to_bad / (p_good_to_bad + p_bad_to_good)` of packets in
//!   bad, so the mean loss is `π_good · loss_in_good + π_bad · loss_in_bad`.
//! * With `loss_in_good = 0` and `loss_in_bad = 1` (Gilbert's original simple form) every bad packet is lost and
//!   every good one delivered, so a burst of losses is exactly one visit to the bad state: mean burst length
//!   `1 / p_bad_to_good`, mean loss `π_bad`.
//!
//! [`GilbertElliott::from_mean_loss_and_burst`] inverts the last point so a lab can ask for "5 % loss in bursts of
//! 4 packets" instead of transition probabilities. netem's `loss gemodel p r 1-h 1-k` takes the same four numbers
//! in the same order (its `1-h` is the loss in bad, `1-k` the loss in good, given in percent).
//!
//! This model is clocked by packets, not by time: the chain moves once per offered packet, as in netem. A sender
//! that goes quiet for a second therefore comes back to the same state it left, which is a simplification of a
//! real fading channel but keeps the model independent of the traffic's timing.

use serde::{Deserialize, Serialize};

use super::error::ImpairmentError;

/// How packets are lost on a link. See the [module documentation](self) for the ideas behind each model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LossModel {
    /// No packet is ever lost by chance (the MTU and the queue can still drop).
    #[default]
    None,
    /// Every packet is lost independently with probability `p`.
    Bernoulli {
        /// Loss probability per packet, in `[0, 1]`.
        p: f64,
    },
    /// Losses come in bursts, driven by a two-state Markov chain.
    GilbertElliott(GilbertElliott),
}

impl LossModel {
    /// Long-run fraction of packets this model loses.
    pub fn mean_loss(&self) -> f64 {
        match self {
            LossModel::None => 0.0,
            LossModel::Bernoulli { p } => *p,
            LossModel::GilbertElliott(ge) => ge.mean_loss(),
        }
    }

    /// Checks every probability of the model.
    pub fn validate(&self) -> Result<(), ImpairmentError> {
        match self {
            LossModel::None => Ok(()),
            LossModel::Bernoulli { p } => check_probability("loss.p", *p),
            LossModel::GilbertElliott(ge) => ge.validate(),
        }
    }
}

/// Parameters of a Gilbert-Elliott bursty-loss channel (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GilbertElliott {
    /// Probability of moving from the good to the bad state before a packet.
    pub p_good_to_bad: f64,
    /// Probability of moving from the bad to the good state before a packet.
    pub p_bad_to_good: f64,
    /// Probability that a packet is lost while the channel is good (often 0).
    pub loss_in_good: f64,
    /// Probability that a packet is lost while the channel is bad (often 1).
    pub loss_in_bad: f64,
}

impl GilbertElliott {
    /// The simple Gilbert channel (lossless good state, fully lossy bad state) that loses `mean_loss` of all
    /// packets in bursts of `mean_burst_len` packets on average.
    ///
    /// With `loss_in_good = 0` and `loss_in_bad = 1` a burst is one visit to the bad state, so:
    ///
    /// ```text
    /// mean_burst_len = 1 / p_bad_to_good          =>  p_bad_to_good = 1 / mean_burst_len
    /// mean_loss      = p_gb / (p_gb + p_bg)       =>  p_good_to_bad = mean_loss · p_bad_to_good / (1 - mean_loss)
    /// ```
    ///
    /// A burst length of 1 makes every loss isolated: the chain always returns to good for the next packet. That is
    /// more regular than independent loss, whose bursts at rate `m` average `1 / (1 - m)` packets because two
    /// independent losses can fall side by side.
    ///
    /// # Errors
    /// [`ImpairmentError::MeanLossOutOfRange`] unless `0 <= mean_loss < 1` (a mean loss of 1 would need the chain to
    /// never leave the bad state, which no finite burst length describes);
    /// [`ImpairmentError::BurstLengthOutOfRange`] unless `mean_burst_len` is finite and at least 1;
    /// [`ImpairmentError::UnreachableLossAndBurst`] when the two together need `p_good_to_bad > 1`, which happens
    /// when `mean_loss > mean_burst_len / (mean_burst_len + 1)`.
    pub fn from_mean_loss_and_burst(mean_loss: f64, mean_burst_len: f64) -> Result<Self, ImpairmentError> {
        if !(0.0..1.0).contains(&mean_loss) {
            return Err(ImpairmentError::MeanLossOutOfRange(mean_loss));
        }
        if !mean_burst_len.is_finite() || mean_burst_len < 1.0 {
            return Err(ImpairmentError::BurstLengthOutOfRange(mean_burst_len));
        }
        let p_bad_to_good = 1.0 / mean_burst_len;
        let p_good_to_bad = mean_loss * p_bad_to_good / (1.0 - mean_loss);
        if p_good_to_bad > 1.0 {
            return Err(ImpairmentError::UnreachableLossAndBurst { mean_loss, mean_burst_len, needed: p_good_to_bad });
        }
        Ok(Self { p_good_to_bad, p_bad_to_good, loss_in_good: 0.0, loss_in_bad: 1.0 })
    }

    /// Long-run fraction of packets spent in the bad state, `p_gb / (p_gb + p_bg)`.
    ///
    /// When both transition probabilities are zero the chain never moves from where it starts, the good state, so
    /// this is 0.
    pub fn stationary_bad(&self) -> f64 {
        let total = self.p_good_to_bad + self.p_bad_to_good;
        if total > 0.0 { self.p_good_to_bad / total } else { 0.0 }
    }

    /// Long-run fraction of packets lost: `π_good · loss_in_good + π_bad · loss_in_bad`.
    pub fn mean_loss(&self) -> f64 {
        let bad = self.stationary_bad();
        (1.0 - bad) * self.loss_in_good + bad * self.loss_in_bad
    }

    /// Mean number of consecutive packets the chain spends in the bad state, `1 / p_bad_to_good`
    /// (infinite when the chain can never leave it). For the simple Gilbert channel this is the mean loss burst.
    pub fn mean_bad_run(&self) -> f64 {
        1.0 / self.p_bad_to_good
    }

    /// Checks all four probabilities.
    pub fn validate(&self) -> Result<(), ImpairmentError> {
        check_probability("loss.p_good_to_bad", self.p_good_to_bad)?;
        check_probability("loss.p_bad_to_good", self.p_bad_to_good)?;
        check_probability("loss.loss_in_good", self.loss_in_good)?;
        check_probability("loss.loss_in_bad", self.loss_in_bad)
    }
}

/// The state a link keeps to apply its loss model: only the Gilbert-Elliott chain has any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct LossState {
    in_bad: bool,
}

impl LossState {
    /// Decides the fate of one packet: first the chain (if any) takes its step using `chain_draw`, then the
    /// packet is lost when `loss_draw` is below the loss probability of the state just entered. Both draws are
    /// uniform in `[0, 1)` and are consumed whatever the model, so the caller's random stream stays aligned.
    pub fn is_lost(&mut self, model: &LossModel, chain_draw: f64, loss_draw: f64) -> bool {
        match model {
            LossModel::None => false,
            LossModel::Bernoulli { p } => loss_draw < *p,
            LossModel::GilbertElliott(ge) => {
                let leave = if self.in_bad { ge.p_bad_to_good } else { ge.p_good_to_bad };
                if chain_draw < leave {
                    self.in_bad = !self.in_bad;
                }
                let p = if self.in_bad { ge.loss_in_bad } else { ge.loss_in_good };
                loss_draw < p
            }
        }
    }

    /// Puts the chain back in the good state, used when a link switches to a model without a chain so that a
    /// later switch back starts from a known state.
    pub fn reset(&mut self) {
        self.in_bad = false;
    }
}

/// Refuses NaN and anything outside `[0, 1]`, naming the field.
pub(crate) fn check_probability(field: &'static str, value: f64) -> Result<(), ImpairmentError> {
    if (0.0..=1.0).contains(&value) { Ok(()) } else { Err(ImpairmentError::ProbabilityOutOfRange { field, value }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simple(p_gb: f64, p_bg: f64) -> GilbertElliott {
        GilbertElliott { p_good_to_bad: p_gb, p_bad_to_good: p_bg, loss_in_good: 0.0, loss_in_bad: 1.0 }
    }

    #[test]
    fn mean_loss_of_each_model() {
        assert_eq!(LossModel::None.mean_loss(), 0.0);
        assert_eq!(LossModel::Bernoulli { p: 0.25 }.mean_loss(), 0.25);
        // π_bad = 0.1 / (0.1 + 0.3) = 0.25; loss = 0.75·0.02 + 0.25·0.8 = 0.215.
        let ge = GilbertElliott { p_good_to_bad: 0.1, p_bad_to_good: 0.3, loss_in_good: 0.02, loss_in_bad: 0.8 };
        assert!((LossModel::GilbertElliott(ge).mean_loss() - 0.215).abs() < 1e-12);
    }

    #[test]
    fn frozen_chain_stays_good_and_absorbing_bad_state_dominates() {
        assert_eq!(simple(0.0, 0.0).mean_loss(), 0.0);
        assert_eq!(simple(0.2, 0.0).mean_loss(), 1.0);
        assert_eq!(simple(0.2, 0.0).mean_bad_run(), f64::INFINITY);
    }

    #[test]
    fn from_mean_loss_and_burst_round_trips() {
        let ge = GilbertElliott::from_mean_loss_and_burst(0.05, 4.0).unwrap();
        assert!((ge.mean_loss() - 0.05).abs() < 1e-12);
        assert!((ge.mean_bad_run() - 4.0).abs() < 1e-12);
        assert_eq!((ge.loss_in_good, ge.loss_in_bad), (0.0, 1.0));
        let none = GilbertElliott::from_mean_loss_and_burst(0.0, 1.0).unwrap();
        assert_eq!(none.p_good_to_bad, 0.0);
        assert_eq!(none.mean_loss(), 0.0);
    }

    #[test]
    fn from_mean_loss_and_burst_edge_of_reachable() {
        // mean_loss = L / (L + 1) needs exactly p_good_to_bad = 1.
        let ge = GilbertElliott::from_mean_loss_and_burst(0.5, 1.0).unwrap();
        assert!((ge.p_good_to_bad - 1.0).abs() < 1e-12);
    }

    #[test]
    fn from_mean_loss_and_burst_rejects_bad_mean_loss() {
        for bad in [-0.1, 1.0, 1.5, f64::NAN] {
            let err = GilbertElliott::from_mean_loss_and_burst(bad, 3.0).unwrap_err();
            assert!(matches!(err, ImpairmentError::MeanLossOutOfRange(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn from_mean_loss_and_burst_rejects_bad_burst() {
        for bad in [0.0, 0.99, -2.0, f64::NAN, f64::INFINITY] {
            let err = GilbertElliott::from_mean_loss_and_burst(0.1, bad).unwrap_err();
            assert!(matches!(err, ImpairmentError::BurstLengthOutOfRange(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn from_mean_loss_and_burst_rejects_unreachable_pairs() {
        let err = GilbertElliott::from_mean_loss_and_burst(0.6, 1.0).unwrap_err();
        match err {
            ImpairmentError::UnreachableLossAndBurst { needed, .. } => assert!((needed - 1.5).abs() < 1e-12),
            other => panic!("unexpected {other}"),
        }
        assert!(err_text(0.6, 1.0).contains("above 1"));
    }

    fn err_text(mean: f64, burst: f64) -> String {
        GilbertElliott::from_mean_loss_and_burst(mean, burst).unwrap_err().to_string()
    }

    #[test]
    fn validate_names_each_field() {
        let good = simple(0.1, 0.5);
        assert_eq!(good.validate(), Ok(()));
        let cases: [(&str, GilbertElliott); 4] = [
            ("loss.p_good_to_bad", GilbertElliott { p_good_to_bad: -0.5, ..good }),
            ("loss.p_bad_to_good", GilbertElliott { p_bad_to_good: 1.01, ..good }),
            ("loss.loss_in_good", GilbertElliott { loss_in_good: f64::NAN, ..good }),
            ("loss.loss_in_bad", GilbertElliott { loss_in_bad: f64::INFINITY, ..good }),
        ];
        for (name, ge) in cases {
            match LossModel::GilbertElliott(ge).validate() {
                Err(ImpairmentError::ProbabilityOutOfRange { field, .. }) => assert_eq!(field, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        match (LossModel::Bernoulli { p: 2.0 }).validate() {
            Err(ImpairmentError::ProbabilityOutOfRange { field, value }) => {
                assert_eq!((field, value), ("loss.p", 2.0));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(LossModel::None.validate(), Ok(()));
    }

    #[test]
    fn chain_moves_before_the_loss_decision() {
        let ge = LossModel::GilbertElliott(simple(0.5, 0.5));
        let mut state = LossState::default();
        // Draw below p_good_to_bad: enters bad, and loss_in_bad = 1 loses the packet whatever the loss draw.
        assert!(state.is_lost(&ge, 0.1, 0.99));
        // Draw above p_bad_to_good: stays bad.
        assert!(state.is_lost(&ge, 0.9, 0.99));
        // Leaves bad: good loses nothing.
        assert!(!state.is_lost(&ge, 0.1, 0.0));
        state.is_lost(&ge, 0.1, 0.0);
        state.reset();
        assert!(!state.is_lost(&ge, 0.9, 0.0));
    }

    #[test]
    fn bernoulli_ends_mean_never_and_always() {
        let mut state = LossState::default();
        assert!(!state.is_lost(&LossModel::Bernoulli { p: 0.0 }, 0.0, 0.0));
        assert!(state.is_lost(&LossModel::Bernoulli { p: 1.0 }, 0.0, 0.999_999));
        assert!(!state.is_lost(&LossModel::None, 0.0, 0.0));
    }

    #[test]
    fn serde_form_is_tagged_and_readable() {
        let json = serde_json::to_string(&LossModel::Bernoulli { p: 0.05 }).unwrap();
        assert_eq!(json, r#"{"kind":"bernoulli","p":0.05}"#);
        let ge: LossModel = serde_json::from_str(
            r#"{"kind":"gilbert_elliott","p_good_to_bad":0.01,"p_bad_to_good":0.25,"loss_in_good":0,"loss_in_bad":1}"#,
        )
        .unwrap();
        assert_eq!(ge, LossModel::GilbertElliott(simple(0.01, 0.25)));
        let none: LossModel = serde_json::from_str(r#"{"kind":"none"}"#).unwrap();
        assert_eq!(none, LossModel::None);
        assert!(serde_json::from_str::<LossModel>(r#"{"kind":"gilbert_elliott","p_good_to_bad":0.1}"#).is_err());
    }
}
