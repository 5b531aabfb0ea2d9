//! Counting refusals instead of logging each one.
//!
//! A server under attack refuses thousands of things a second: connections over an address's cap, handshakes over
//! an address's rate, logins with the wrong password. One log line per refusal would let the attacker write the
//! server's disk full and bury the one line an operator needs. So every refusal is *counted* here, per reason, and
//! the accept loop writes one summary line per [`REFUSAL_LOG_INTERVAL`](crate::limits::REFUSAL_LOG_INTERVAL):
//! how many of each, and which address caused the most (the one to look at, or to block in a firewall).

use std::collections::HashMap;
use std::fmt;

use chatlab_proto::control::ErrorCode;

use crate::limits::MAX_REFUSAL_ADDRESSES_TRACKED;
use crate::net::network::NetworkId;

/// Why something was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// A new connection from an address that already holds as many as it may.
    ConnectionsPerAddress,
    /// A new connection from an address that started too many handshakes lately (its handshake bucket is empty).
    HandshakeRate,
    /// A new connection while the server held as many connections as it may, and no address held more
    /// unauthenticated connections than the newcomer's.
    ServerFull,
    /// A new connection while as many handshakes were in progress as allowed, and no address held more of them than
    /// the newcomer's.
    HandshakesBusy,
    /// An unauthenticated connection closed to make room for a newcomer from a lighter address (server full).
    ShedConnection,
    /// A handshake in progress closed to make room for a newcomer from a lighter address (too many handshakes).
    ShedHandshake,
    /// A connection closed because nobody logged in on it within the login timeout.
    LoginTimeout,
    /// A connection closed because a frame failed authentication (tampered with, or not from the peer).
    TamperedFrame,
    /// A request on an established connection, refused with this error code.
    Request(ErrorCode),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::ConnectionsPerAddress => f.write_str("connections_per_address"),
            Refusal::HandshakeRate => f.write_str("handshake_rate"),
            Refusal::ServerFull => f.write_str("server_full"),
            Refusal::HandshakesBusy => f.write_str("handshakes_busy"),
            Refusal::ShedConnection => f.write_str("shed_connection"),
            Refusal::ShedHandshake => f.write_str("shed_handshake"),
            Refusal::LoginTimeout => f.write_str("login_timeout"),
            Refusal::TamperedFrame => f.write_str("tampered_frame"),
            Refusal::Request(code) => write!(f, "{code:?}"),
        }
    }
}

/// The refusals of one interval, for one log line.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusalReport {
    /// Count per reason, largest first.
    pub counts: Vec<(Refusal, u64)>,
    /// The address with the most refusals in the interval, and how many (among the first
    /// [`MAX_REFUSAL_ADDRESSES_TRACKED`] addresses refused in it).
    pub top_address: Option<(NetworkId, u64)>,
}

impl RefusalReport {
    /// All refusals of the interval.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }

    /// How many of the interval's refusals had this reason.
    pub fn count(&self, reason: Refusal) -> u64 {
        self.counts.iter().find(|(r, _)| *r == reason).map_or(0, |(_, n)| *n)
    }
}

impl fmt::Display for RefusalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (reason, count)) in self.counts.iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{reason}={count}")?;
        }
        if let Some((address, count)) = &self.top_address {
            write!(f, "; most from {address} ({count})")?;
        }
        Ok(())
    }
}

/// Refusal counters: per reason for the current interval, and per reason since the server started.
#[derive(Debug, Default)]
pub(super) struct Refusals {
    interval: HashMap<Refusal, u64>,
    by_address: HashMap<NetworkId, u64>,
    since_start: HashMap<Refusal, u64>,
}

impl Refusals {
    /// Counts one refusal of `reason` for `address`.
    pub(super) fn note(&mut self, reason: Refusal, address: NetworkId) {
        *self.interval.entry(reason).or_insert(0) += 1;
        *self.since_start.entry(reason).or_insert(0) += 1;
        if let Some(count) = self.by_address.get_mut(&address) {
            *count += 1;
        } else if self.by_address.len() < MAX_REFUSAL_ADDRESSES_TRACKED {
            self.by_address.insert(address, 1);
        }
    }

    /// The interval's counts, which start again from zero; `None` when nothing was refused.
    pub(super) fn take_report(&mut self) -> Option<RefusalReport> {
        if self.interval.is_empty() {
            return None;
        }
        let mut counts: Vec<(Refusal, u64)> = self.interval.drain().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.to_string().cmp(&b.0.to_string())));
        let top_address = self.by_address.drain().max_by_key(|&(_, count)| count);
        Some(RefusalReport { counts, top_address })
    }

    /// Refusals of `reason` since the server started.
    pub(super) fn since_start(&self, reason: Refusal) -> u64 {
        self.since_start.get(&reason).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn net(last: u8) -> NetworkId {
        NetworkId::of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
    }

    #[test]
    fn a_flood_of_refusals_is_one_report_with_counts_per_reason() {
        let mut refusals = Refusals::default();
        assert_eq!(refusals.take_report(), None, "nothing refused, nothing to log");
        for _ in 0..1000 {
            refusals.note(Refusal::HandshakeRate, net(1));
        }
        refusals.note(Refusal::Request(ErrorCode::BadCredentials), net(2));
        refusals.note(Refusal::ConnectionsPerAddress, net(1));
        let report = refusals.take_report().unwrap();
        assert_eq!(report.total(), 1002);
        assert_eq!(report.count(Refusal::HandshakeRate), 1000);
        assert_eq!(report.counts[0], (Refusal::HandshakeRate, 1000), "largest first");
        assert_eq!(report.top_address, Some((net(1), 1001)));
        assert_eq!(
            report.to_string(),
            "handshake_rate=1000 BadCredentials=1 connections_per_address=1; most from 10.0.0.1 (1001)"
        );
        assert_eq!(refusals.take_report(), None, "each interval starts from zero");
        assert_eq!(refusals.since_start(Refusal::HandshakeRate), 1000, "the totals stay");
    }

    #[test]
    fn addresses_past_the_tracking_bound_still_count_in_the_totals() {
        let mut refusals = Refusals::default();
        for n in 0..MAX_REFUSAL_ADDRESSES_TRACKED as u32 + 10 {
            refusals.note(Refusal::ServerFull, NetworkId::of(IpAddr::V4(Ipv4Addr::from(n))));
        }
        assert_eq!(refusals.by_address.len(), MAX_REFUSAL_ADDRESSES_TRACKED);
        let report = refusals.take_report().unwrap();
        assert_eq!(report.total(), MAX_REFUSAL_ADDRESSES_TRACKED as u64 + 10);
    }
}
