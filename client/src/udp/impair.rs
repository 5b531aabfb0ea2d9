//! The client's own impaired UDP path: a bad network between the socket and the engine, on demand.
//!
//! A class learns how a reliable protocol works by breaking the network under it and watching it cope. The labs do
//! that with a relay between clients and the server; the desktop app does it inside one client, so a student can
//! move a "loss" slider and see retransmissions climb in the statistics panel while the chat keeps working.
//!
//! The proto crate's impairment model is sans-IO (see `chatlab_proto::impair`): a [`Link`](chatlab_proto::impair::Link)
//! takes packets and the time in and hands them out when they are due, dropped, delayed, duplicated, reordered or
//! damaged. This module puts one link in each direction, as a [`Duplex`] so the two directions draw independent
//! random numbers even when both settings use the same seed:
//!
//! ```text
//!   engine ── datagram ──▶ outgoing link ── due ──▶ socket.send ─────▶ server
//!   engine ◀─ datagram ─── incoming link ◀─ due ─── socket.recv ◀───── server
//! ```
//!
//! The UDP task owns the [`ImpairedPath`] and drives it with the same clock as the engine: it offers datagrams,
//! sleeps until [`ImpairedPath::next_delivery`] as it sleeps until the engine's next timer, and never blocks.
//!
//! While nothing was ever impaired there is no link at all and datagrams go straight through, so the feature costs
//! nothing when it is off. Once a session's path has been impaired, its links stay in place (a reset to the default
//! settings makes them perfect links) so their counters keep what they saw.

use std::time::Duration;

use chatlab_proto::impair::{Direction, Duplex, ImpairmentConfig, ImpairmentError};

use crate::error::ClientError;
use crate::stats::{ImpairedDirection, ImpairmentStats};

/// The duplex direction that carries this client's datagrams to the server.
const OUTGOING: Direction = Direction::AToB;

/// The duplex direction that carries the server's datagrams to this client.
const INCOMING: Direction = Direction::BToA;

/// Which way a datagram travels on the client's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    /// From this client to the server.
    Outgoing,
    /// From the server to this client.
    Incoming,
}

impl Way {
    fn direction(self) -> Direction {
        match self {
            Way::Outgoing => OUTGOING,
            Way::Incoming => INCOMING,
        }
    }
}

/// The impairment of both directions, as the face set it. The default impairs nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Impairment {
    /// Applied to datagrams this client sends.
    pub outgoing: ImpairmentConfig,
    /// Applied to datagrams the server sends, before the engine sees them.
    pub incoming: ImpairmentConfig,
}

impl Impairment {
    /// Checks both directions with [`ImpairmentConfig::validate`], naming the direction that is wrong.
    pub(crate) fn validate(&self) -> Result<(), ClientError> {
        let named = |way: &str, err: ImpairmentError| ClientError::InvalidImpairment {
            reason: format!("for {way} UDP traffic, {err}"),
        };
        self.outgoing.validate().map_err(|err| named("outgoing", err))?;
        self.incoming.validate().map_err(|err| named("incoming", err))
    }

    /// Whether this impairs nothing at all.
    fn is_off(&self) -> bool {
        *self == Impairment::default()
    }
}

/// The two links between the socket and the engine, once the session's path has been impaired.
#[derive(Debug, Default)]
pub(crate) struct ImpairedPath {
    /// `None` until the first setting that impairs something.
    duplex: Option<Duplex>,
    /// The settings in force, as given (the duplex derives its own per-direction seeds from them).
    settings: Impairment,
}

impl ImpairedPath {
    /// A path with `settings`.
    pub(crate) fn new(settings: &Impairment) -> Result<ImpairedPath, ImpairmentError> {
        let mut path = ImpairedPath::default();
        path.apply(settings)?;
        Ok(path)
    }

    /// Changes the settings from now on. Datagrams already on their way keep the fate they were dealt, and the
    /// random streams continue (see [`Link::set_config`](chatlab_proto::impair::Link::set_config)), so moving a
    /// slider back and forth does not replay the same losses. An invalid setting changes nothing.
    pub(crate) fn apply(&mut self, settings: &Impairment) -> Result<(), ImpairmentError> {
        match &mut self.duplex {
            Some(duplex) => {
                // Both checked first, so that an invalid incoming setting does not leave a changed outgoing one.
                settings.outgoing.validate()?;
                settings.incoming.validate()?;
                duplex.link_mut(OUTGOING).set_config(settings.outgoing.clone())?;
                duplex.link_mut(INCOMING).set_config(settings.incoming.clone())?;
            }
            None if settings.is_off() => {}
            None => {
                self.duplex = Some(Duplex::asymmetric(settings.outgoing.clone(), settings.incoming.clone())?);
            }
        }
        self.settings = settings.clone();
        Ok(())
    }

    /// Whether datagrams go through the links (otherwise they go straight between socket and engine).
    pub(crate) fn is_active(&self) -> bool {
        self.duplex.is_some()
    }

    /// Offers a datagram travelling `way` at `now`; [`poll`](Self::poll) hands it out when (and if) it arrives.
    /// Callers check [`is_active`](Self::is_active) first and bypass an inactive path, which has no link to carry
    /// anything (a debug build checks that).
    pub(crate) fn offer(&mut self, way: Way, now: Duration, datagram: Vec<u8>) {
        debug_assert!(self.is_active(), "datagrams bypass an inactive path");
        if let Some(duplex) = &mut self.duplex {
            duplex.send(way.direction(), now, datagram);
        }
    }

    /// The next datagram due at `now` in either direction, earliest first.
    pub(crate) fn poll(&mut self, now: Duration) -> Option<(Way, Vec<u8>)> {
        let (direction, datagram) = self.duplex.as_mut()?.poll(now)?;
        let way = match direction {
            OUTGOING => Way::Outgoing,
            INCOMING => Way::Incoming,
        };
        Some((way, datagram))
    }

    /// When the next datagram on the path is due: a timer for the UDP task.
    pub(crate) fn next_delivery(&self) -> Option<Duration> {
        self.duplex.as_ref()?.next_delivery()
    }

    /// The settings and counters of both directions, once the path has links.
    pub(crate) fn stats(&self) -> Option<ImpairmentStats> {
        let duplex = self.duplex.as_ref()?;
        let direction = |config: &ImpairmentConfig, direction| ImpairedDirection {
            config: config.clone(),
            link: *duplex.link(direction).stats(),
        };
        Some(ImpairmentStats {
            outgoing: direction(&self.settings.outgoing, OUTGOING),
            incoming: direction(&self.settings.incoming, INCOMING),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_proto::impair::LossModel;

    const MS: Duration = Duration::from_millis(1);

    fn lossy(p: f64) -> ImpairmentConfig {
        ImpairmentConfig { loss: LossModel::Bernoulli { p }, seed: 3, ..ImpairmentConfig::default() }
    }

    #[test]
    fn the_default_has_no_links_and_costs_nothing() {
        let path = ImpairedPath::new(&Impairment::default()).expect("valid");
        assert!(!path.is_active());
        assert_eq!(path.next_delivery(), None);
        assert_eq!(path.stats(), None);
    }

    #[test]
    fn each_direction_gets_its_own_setting() {
        let settings = Impairment {
            outgoing: ImpairmentConfig { delay: 10 * MS, ..ImpairmentConfig::default() },
            incoming: lossy(1.0),
        };
        let mut path = ImpairedPath::new(&settings).expect("valid");
        assert!(path.is_active());
        path.offer(Way::Outgoing, Duration::ZERO, b"out".to_vec());
        path.offer(Way::Incoming, Duration::ZERO, b"in".to_vec());
        assert_eq!(path.poll(9 * MS), None, "outgoing is delayed, incoming is lost");
        assert_eq!(path.next_delivery(), Some(10 * MS));
        assert_eq!(path.poll(10 * MS), Some((Way::Outgoing, b"out".to_vec())));
        assert_eq!(path.poll(Duration::from_secs(1)), None);
        let stats = path.stats().expect("links");
        assert_eq!((stats.outgoing.link.offered, stats.outgoing.link.delivered), (1, 1));
        assert_eq!((stats.incoming.link.offered, stats.incoming.link.dropped_loss), (1, 1));
        assert_eq!(stats.outgoing.config, settings.outgoing);
        assert_eq!(stats.incoming.config, settings.incoming, "the seed as given, not the derived one");
    }

    #[test]
    fn a_reset_to_the_default_stops_the_drops_and_keeps_the_counts() {
        let mut path = ImpairedPath::new(&Impairment { outgoing: lossy(1.0), ..Impairment::default() }).expect("ok");
        path.offer(Way::Outgoing, Duration::ZERO, vec![1]);
        path.apply(&Impairment::default()).expect("valid");
        assert!(path.is_active(), "the links stay to keep their counters");
        path.offer(Way::Outgoing, MS, vec![2]);
        assert_eq!(path.poll(MS), Some((Way::Outgoing, vec![2])), "a perfect link delivers at once");
        let stats = path.stats().expect("links");
        assert_eq!(stats.outgoing.link.dropped_loss, 1);
        assert_eq!(stats.outgoing.link.delivered, 1);
        assert_eq!(stats.outgoing.config, ImpairmentConfig::default());
    }

    #[test]
    fn an_invalid_setting_changes_nothing() {
        let good = Impairment { outgoing: lossy(0.5), ..Impairment::default() };
        let mut path = ImpairedPath::new(&good).expect("valid");
        let bad = Impairment { outgoing: lossy(0.1), incoming: lossy(2.0) };
        assert!(matches!(path.apply(&bad), Err(ImpairmentError::ProbabilityOutOfRange { field: "loss.p", .. })));
        assert_eq!(path.stats().expect("links").outgoing.config, good.outgoing, "outgoing untouched too");
        assert!(ImpairedPath::new(&bad).is_err());
        let mut inactive = ImpairedPath::default();
        assert!(inactive.apply(&bad).is_err());
        assert!(!inactive.is_active());
    }

    #[test]
    fn validation_names_the_direction_and_the_field() {
        assert_eq!(Impairment::default().validate(), Ok(()));
        let err = Impairment { outgoing: lossy(1.5), ..Impairment::default() }.validate().expect_err("invalid");
        assert!(
            matches!(&err, ClientError::InvalidImpairment { reason } if reason.starts_with("for outgoing")),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("outgoing") && text.contains("loss.p") && text.contains("1.5"), "{text}");
        let zero_mtu = ImpairmentConfig { mtu: Some(0), ..ImpairmentConfig::default() };
        let err = Impairment { incoming: zero_mtu, ..Impairment::default() }.validate().expect_err("invalid");
        assert!(err.to_string().contains("incoming") && err.to_string().contains("mtu"), "{err}");
    }

    #[test]
    fn the_two_directions_draw_independent_dice_from_one_seed() {
        let half = lossy(0.5);
        let mut path = ImpairedPath::new(&Impairment { outgoing: half.clone(), incoming: half }).expect("valid");
        for i in 0..64u8 {
            path.offer(Way::Outgoing, Duration::ZERO, vec![i]);
            path.offer(Way::Incoming, Duration::ZERO, vec![i]);
        }
        let mut delivered = (Vec::new(), Vec::new());
        while let Some((way, datagram)) = path.poll(Duration::ZERO) {
            match way {
                Way::Outgoing => delivered.0.push(datagram),
                Way::Incoming => delivered.1.push(datagram),
            }
        }
        assert_ne!(delivered.0, delivered.1, "the same seed must not lose the same packets both ways");
    }
}
