//! Both directions of an impaired path.
//!
//! A conversation needs two links: data one way, acknowledgements the other. They must not share a random stream,
//! or a loss on the way out would be tied to a loss on the way back, and a simulation would test a network that
//! cannot exist. [`Duplex::new`] therefore derives one seed per direction from a single seed, so that one number
//! still reproduces the whole run while the two directions are independent.
//!
//! ```
//! use std::time::Duration;
//! use chatlab_proto::impair::{Direction, Duplex, ImpairmentConfig};
//!
//! let mut path = Duplex::new(ImpairmentConfig { delay: Duration::from_millis(10), ..Default::default() })?;
//! path.send(Direction::AToB, Duration::ZERO, b"data".to_vec());
//! path.send(Direction::BToA, Duration::from_millis(1), b"ack".to_vec());
//! let at = path.next_delivery().unwrap();
//! assert_eq!(path.poll(at), Some((Direction::AToB, b"data".to_vec())));
//! # Ok::<(), chatlab_proto::impair::ImpairmentError>(())
//! ```

use std::time::Duration;

use super::config::ImpairmentConfig;
use super::error::ImpairmentError;
use super::link::Link;
use super::rng::derive_seed;

/// Sub-stream of the duplex seed that seeds the a→b link.
const A_TO_B_STREAM: u64 = 1;
/// Sub-stream of the duplex seed that seeds the b→a link.
const B_TO_A_STREAM: u64 = 2;

/// Which way a packet travels on a [`Duplex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From endpoint a to endpoint b.
    AToB,
    /// From endpoint b to endpoint a.
    BToA,
}

impl Direction {
    /// The other way.
    pub fn reverse(self) -> Self {
        match self {
            Direction::AToB => Direction::BToA,
            Direction::BToA => Direction::AToB,
        }
    }
}

/// Two independent [`Link`]s, one per direction.
#[derive(Debug, Clone)]
pub struct Duplex {
    a_to_b: Link,
    b_to_a: Link,
}

impl Duplex {
    /// A symmetric path: both directions use `config`, each with its own seed derived from `config.seed`.
    ///
    /// # Errors
    /// Whatever [`ImpairmentConfig::validate`] finds wrong with `config`.
    pub fn new(config: ImpairmentConfig) -> Result<Self, ImpairmentError> {
        Self::asymmetric(config.clone(), config)
    }

    /// A path with different impairments each way (a slow uplink, a lossy downlink). Each direction's seed is
    /// derived from its own config's seed, so equal seeds still give independent directions.
    ///
    /// # Errors
    /// Whatever [`ImpairmentConfig::validate`] finds wrong with either config.
    pub fn asymmetric(a_to_b: ImpairmentConfig, b_to_a: ImpairmentConfig) -> Result<Self, ImpairmentError> {
        let a_seed = derive_seed(a_to_b.seed, A_TO_B_STREAM);
        let b_seed = derive_seed(b_to_a.seed, B_TO_A_STREAM);
        Ok(Self {
            a_to_b: Link::new(ImpairmentConfig { seed: a_seed, ..a_to_b })?,
            b_to_a: Link::new(ImpairmentConfig { seed: b_seed, ..b_to_a })?,
        })
    }

    /// Offers `packet` to the link going `direction`.
    pub fn send(&mut self, direction: Direction, now: Duration, packet: Vec<u8>) {
        self.link_mut(direction).send(now, packet);
    }

    /// Hands out the earliest packet due at or before `now` in either direction, with the direction it travelled
    /// (a→b first when both are due at the same instant).
    pub fn poll(&mut self, now: Duration) -> Option<(Direction, Vec<u8>)> {
        let a = self.a_to_b.next_delivery().filter(|due| *due <= now);
        let b = self.b_to_a.next_delivery().filter(|due| *due <= now);
        let direction = match (a, b) {
            (Some(a), Some(b)) if b < a => Direction::BToA,
            (Some(_), _) => Direction::AToB,
            (None, Some(_)) => Direction::BToA,
            (None, None) => return None,
        };
        self.link_mut(direction).poll(now).map(|packet| (direction, packet))
    }

    /// When the earliest packet in either direction is due.
    pub fn next_delivery(&self) -> Option<Duration> {
        match (self.a_to_b.next_delivery(), self.b_to_a.next_delivery()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The link going `direction`, for its stats and config.
    pub fn link(&self, direction: Direction) -> &Link {
        match direction {
            Direction::AToB => &self.a_to_b,
            Direction::BToA => &self.b_to_a,
        }
    }

    /// The link going `direction`, to change its config with [`Link::set_config`].
    pub fn link_mut(&mut self, direction: Direction) -> &mut Link {
        match direction {
            Direction::AToB => &mut self.a_to_b,
            Direction::BToA => &mut self.b_to_a,
        }
    }

    /// Applies `config` to both directions from now on (see [`Link::set_config`]; the seed is not used).
    ///
    /// # Errors
    /// Whatever [`ImpairmentConfig::validate`] finds wrong; then neither direction changes.
    pub fn set_config(&mut self, config: ImpairmentConfig) -> Result<(), ImpairmentError> {
        config.validate()?;
        self.a_to_b.set_config(config.clone())?;
        self.b_to_a.set_config(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::impair::LossModel;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn lossy(seed: u64) -> ImpairmentConfig {
        ImpairmentConfig { loss: LossModel::Bernoulli { p: 0.5 }, seed, ..ImpairmentConfig::default() }
    }

    /// Which of `count` packets sent `direction` get through.
    fn survivors(path: &mut Duplex, direction: Direction, count: u64) -> Vec<u64> {
        for i in 0..count {
            path.send(direction, ms(i), i.to_le_bytes().to_vec());
        }
        let mut out = Vec::new();
        while let Some((dir, packet)) = path.poll(Duration::MAX) {
            assert_eq!(dir, direction);
            let bytes: [u8; 8] = packet.try_into().unwrap();
            out.push(u64::from_le_bytes(bytes));
        }
        out
    }

    #[test]
    fn directions_are_independent_but_reproducible() {
        let mut path = Duplex::new(lossy(21)).unwrap();
        let ab = survivors(&mut path, Direction::AToB, 200);
        let ba = survivors(&mut path, Direction::BToA, 200);
        assert_ne!(ab, ba, "the same seed must not make both directions lose the same packets");

        let mut again = Duplex::new(lossy(21)).unwrap();
        assert_eq!(survivors(&mut again, Direction::AToB, 200), ab);
        assert_eq!(survivors(&mut again, Direction::BToA, 200), ba);

        let mut other = Duplex::new(lossy(22)).unwrap();
        assert_ne!(survivors(&mut other, Direction::AToB, 200), ab);
    }

    #[test]
    fn poll_takes_the_earliest_of_both_directions() {
        let config = ImpairmentConfig { delay: ms(10), ..ImpairmentConfig::default() };
        let mut path = Duplex::new(config).unwrap();
        path.send(Direction::BToA, ms(0), b"b1".to_vec());
        path.send(Direction::AToB, ms(2), b"a1".to_vec());
        path.send(Direction::AToB, ms(5), b"a2".to_vec());
        path.send(Direction::BToA, ms(5), b"b2".to_vec());
        assert_eq!(path.next_delivery(), Some(ms(10)));
        assert_eq!(path.poll(ms(9)), None);
        assert_eq!(path.poll(ms(20)), Some((Direction::BToA, b"b1".to_vec())));
        assert_eq!(path.poll(ms(20)), Some((Direction::AToB, b"a1".to_vec())));
        // a2 and b2 are due at the same instant: a→b first.
        assert_eq!(path.poll(ms(20)), Some((Direction::AToB, b"a2".to_vec())));
        assert_eq!(path.next_delivery(), Some(ms(15)));
        assert_eq!(path.poll(ms(20)), Some((Direction::BToA, b"b2".to_vec())));
        assert_eq!(path.poll(ms(20)), None);
        assert_eq!(path.next_delivery(), None);
        assert_eq!(path.link(Direction::AToB).stats().delivered, 2);
        assert_eq!(path.link(Direction::BToA).stats().delivered, 2);
    }

    #[test]
    fn asymmetric_paths_keep_their_own_impairments() {
        let up = ImpairmentConfig { delay: ms(40), ..ImpairmentConfig::default() };
        let down = ImpairmentConfig { delay: ms(5), ..ImpairmentConfig::default() };
        let mut path = Duplex::asymmetric(up, down).unwrap();
        path.send(Direction::AToB, ms(0), b"up".to_vec());
        path.send(Direction::BToA, ms(0), b"down".to_vec());
        assert_eq!(path.next_delivery(), Some(ms(5)));
        assert_eq!(path.link(Direction::AToB).next_delivery(), Some(ms(40)));
    }

    #[test]
    fn invalid_configs_are_refused_and_change_nothing() {
        let bad = ImpairmentConfig { duplicate: 2.0, ..ImpairmentConfig::default() };
        assert!(Duplex::new(bad.clone()).is_err());
        assert!(Duplex::asymmetric(ImpairmentConfig::default(), bad.clone()).is_err());

        let mut path = Duplex::new(ImpairmentConfig::default()).unwrap();
        assert!(path.set_config(bad).is_err());
        assert_eq!(path.link(Direction::AToB).config().duplicate, 0.0);
        assert_eq!(path.link(Direction::BToA).config().duplicate, 0.0);

        path.set_config(ImpairmentConfig { delay: ms(3), ..ImpairmentConfig::default() }).unwrap();
        assert_eq!(path.link(Direction::BToA).config().delay, ms(3));
        path.link_mut(Direction::AToB).set_config(ImpairmentConfig::default()).unwrap();
        assert_eq!(path.link(Direction::AToB).config().delay, Duration::ZERO);
    }

    #[test]
    fn reverse_swaps_directions() {
        assert_eq!(Direction::AToB.reverse(), Direction::BToA);
        assert_eq!(Direction::BToA.reverse(), Direction::AToB);
    }
}
