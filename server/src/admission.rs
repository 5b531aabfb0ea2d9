//! Admission control: who may connect, try a password, or create an account, and how often.
//!
//! Three kinds of abuse are cheap for a client and expensive for the server, and each gets its own limit:
//!
//! - **Holding sockets.** Every TCP connection costs a file descriptor, a task and some buffers. One address may
//!   hold at most `max_connections_per_ip` at once, and the whole server at most `max_connections`
//!   ([`Admission::admit`]). The second cap exists because file descriptors run out for everyone at once: a
//!   process at its open-file limit cannot accept *any* connection, the teacher's included, nor open a file. Many
//!   addresses together (a botnet, or simply a big class plus a runaway script) must meet a refusal well before
//!   that point. Both counts are kept by one [`ConnectionSlot`] guard that gives its places back when the
//!   connection's task ends, however it ends. A connection over the total is closed before its Noise handshake,
//!   which is the cheapest possible answer; one over its address's cap still gets an encrypted explanation, and
//!   holds a place in the total meanwhile, because its socket is as real as any other.
//! - **Guessing passwords.** Login attempts are counted per account *and* per address in token buckets
//!   ([`crate::rate_limit`]). The per-account limit stops a distributed guesser aiming at one student; the
//!   per-address limit stops one machine trying many accounts. Every attempt **reserves** a token from both
//!   buckets *before* the expensive Argon2 verification ([`Admission::login_reserve`]) and a successful login
//!   gives them back ([`Admission::login_succeeded`]), so in the end only failures cost tokens. Reserving first
//!   matters: a check that only *looked* at the bucket and took the token after the verification would let 32
//!   parallel connections all pass the check while the first hash is still running. A blocked guesser costs the
//!   server nothing.
//! - **Filling the user table.** Registrations are limited per address.
//!
//! "Per address" means per [`NetworkId`]: an IPv4 address, or a whole IPv6 /64, which one host can fill with
//! addresses at will (see [`crate::net::network`]). An IPv4 client reaching a dual-stack socket as
//! `::ffff:a.b.c.d` counts against the same budget as `a.b.c.d`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::limits::{
    LOGIN_FAILURES_PER_ACCOUNT, LOGIN_FAILURES_PER_IP, MAX_RATE_LIMIT_KEYS, REGISTRATIONS_PER_IP,
    SERVER_FULL_LOG_INTERVAL,
};
use crate::net::network::NetworkId;
use crate::rate_limit::KeyedBuckets;

/// The shared admission state of one server.
#[derive(Debug)]
pub struct Admission {
    max_connections_per_ip: usize,
    max_connections: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    connections: HashMap<NetworkId, usize>,
    /// Connections held now, from every address, including those being refused for their address.
    total: usize,
    /// Connections refused because the server was full, since it started.
    refused_full: u64,
    /// Refusals for a full server not yet reported in a log line.
    unreported_full: u64,
    /// When the last "server full" log line was due.
    last_full_report: Option<Instant>,
    login_by_account: KeyedBuckets<String>,
    login_by_ip: KeyedBuckets<NetworkId>,
    registration_by_ip: KeyedBuckets<NetworkId>,
}

/// The answer of [`Admission::admit`].
#[derive(Debug)]
pub enum Admitted {
    /// The connection may proceed; it holds this slot until it ends.
    Slot(ConnectionSlot),
    /// The address already holds as many connections as allowed. The connection is told so (encrypted, see
    /// `conn::serve`) and closed; until then it holds this slot, which counts it in the server's total only.
    OverAddressLimit(ConnectionSlot),
    /// The server holds as many connections as allowed in total: close the socket at once, before any handshake.
    ServerFull {
        /// `Some(n)` when a log line is due: `n` connections were refused since the last one (this one included).
        /// At most one is due per [`SERVER_FULL_LOG_INTERVAL`], so a flood of refusals cannot flood the log.
        report: Option<u64>,
    },
}

/// One counted connection; dropping it gives its places back (in the total, and in its address's count unless it
/// is being refused for its address).
#[derive(Debug)]
pub struct ConnectionSlot {
    admission: Arc<Admission>,
    /// The network it counts against, or `None` for a connection over its network's cap.
    ip: Option<NetworkId>,
}

impl ConnectionSlot {
    /// Whether this connection is over its address's cap and is to be refused.
    pub fn over_address_limit(&self) -> bool {
        self.ip.is_none()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut inner = self.admission.lock();
        inner.total = inner.total.saturating_sub(1);
        let Some(ip) = self.ip else { return };
        if let Some(count) = inner.connections.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                inner.connections.remove(&ip);
            }
        }
    }
}

/// Why a rate limit refused: how long to wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wait(pub Duration);

impl Admission {
    /// Admission with the given connection caps (per address and in total) and the login and registration limits
    /// of [`crate::limits`].
    pub fn new(max_connections_per_ip: usize, max_connections: usize) -> Arc<Self> {
        Arc::new(Self {
            max_connections_per_ip,
            max_connections,
            inner: Mutex::new(Inner {
                connections: HashMap::new(),
                total: 0,
                refused_full: 0,
                unreported_full: 0,
                last_full_report: None,
                login_by_account: KeyedBuckets::new(LOGIN_FAILURES_PER_ACCOUNT, MAX_RATE_LIMIT_KEYS),
                login_by_ip: KeyedBuckets::new(LOGIN_FAILURES_PER_IP, MAX_RATE_LIMIT_KEYS),
                registration_by_ip: KeyedBuckets::new(REGISTRATIONS_PER_IP, MAX_RATE_LIMIT_KEYS),
            }),
        })
    }

    /// The lock; every critical section only updates counters, so state after a panic elsewhere is still sound.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a new connection from `ip` accepted at `now`: admitted, over its address's cap, or over the server's.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Admitted {
        let ip = NetworkId::of(ip);
        let mut inner = self.lock();
        if inner.total >= self.max_connections {
            return Admitted::ServerFull { report: inner.refuse_full(now) };
        }
        inner.total += 1;
        let count = inner.connections.entry(ip).or_insert(0);
        let ip = if *count >= self.max_connections_per_ip {
            None
        } else {
            *count += 1;
            Some(ip)
        };
        drop(inner);
        let slot = ConnectionSlot { admission: Arc::clone(self), ip };
        if slot.over_address_limit() { Admitted::OverAddressLimit(slot) } else { Admitted::Slot(slot) }
    }

    /// Connections the network of `ip` holds now.
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        self.lock().connections.get(&NetworkId::of(ip)).copied().unwrap_or(0)
    }

    /// Connections the server holds now, from every address.
    pub fn connections_total(&self) -> usize {
        self.lock().total
    }

    /// Connections refused because the server was full, since it started.
    pub fn refused_server_full(&self) -> u64 {
        self.lock().refused_full
    }

    /// Reserves a login attempt for `account` from `ip`: takes one token from the account's bucket and one from
    /// the address's, both or neither, or says how long to wait. A failed attempt keeps them; a successful one
    /// returns them with [`login_succeeded`](Self::login_succeeded).
    pub fn login_reserve(&self, account: &str, ip: IpAddr, now: Instant) -> Result<(), Wait> {
        let ip = NetworkId::of(ip);
        let mut inner = self.lock();
        let key = account.to_owned();
        if inner.login_by_account.allows(&key, now)
            && inner.login_by_ip.allows(&ip, now)
            && inner.login_by_account.try_take(&key, now)
        {
            if inner.login_by_ip.try_take(&ip, now) {
                return Ok(());
            }
            inner.login_by_account.give_back(&key, now);
        }
        let wait = inner.login_by_account.wait_secs(&key, now).max(inner.login_by_ip.wait_secs(&ip, now));
        Err(Wait(secs(wait)))
    }

    /// The reserved attempt logged in (or failed for the server's own reasons): its tokens go back.
    pub fn login_succeeded(&self, account: &str, ip: IpAddr, now: Instant) {
        let ip = NetworkId::of(ip);
        let mut inner = self.lock();
        inner.login_by_account.give_back(&account.to_owned(), now);
        inner.login_by_ip.give_back(&ip, now);
    }

    /// Takes a registration token for `ip`, or says how long to wait.
    pub fn registration_allowed(&self, ip: IpAddr, now: Instant) -> Result<(), Wait> {
        let ip = NetworkId::of(ip);
        let mut inner = self.lock();
        if inner.registration_by_ip.try_take(&ip, now) {
            Ok(())
        } else {
            Err(Wait(secs(inner.registration_by_ip.wait_secs(&ip, now))))
        }
    }
}

impl Inner {
    /// Counts one refusal for a full server; says whether a log line is due and how many it reports.
    fn refuse_full(&mut self, now: Instant) -> Option<u64> {
        self.refused_full = self.refused_full.saturating_add(1);
        self.unreported_full = self.unreported_full.saturating_add(1);
        let due =
            self.last_full_report.is_none_or(|last| now.saturating_duration_since(last) >= SERVER_FULL_LOG_INTERVAL);
        if !due {
            return None;
        }
        self.last_full_report = Some(now);
        Some(std::mem::take(&mut self.unreported_full))
    }
}

/// Seconds as a `Duration`, rounded up to whole seconds for people; non-finite or negative input counts as zero.
fn secs(value: f64) -> Duration {
    if value.is_finite() && value > 0.0 { Duration::from_secs(value.ceil() as u64) } else { Duration::ZERO }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    const C: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
    /// A total cap that tests about other limits never reach.
    const ANY: usize = 1000;

    #[test]
    fn connection_cap_is_per_address_and_slots_give_back() {
        let admission = Admission::new(2, ANY);
        let now = Instant::now();
        let first = admission.admit(A, now);
        let second = admission.admit(A, now);
        assert!(matches!(first, Admitted::Slot(_)) && matches!(second, Admitted::Slot(_)));
        let refused = admission.admit(A, now);
        assert!(matches!(&refused, Admitted::OverAddressLimit(slot) if slot.over_address_limit()));
        assert!(matches!(admission.admit(B, now), Admitted::Slot(_)));
        assert_eq!(admission.connections_from(A), 2);
        assert_eq!(admission.connections_total(), 3, "the one being refused holds a socket too");
        drop(refused);
        assert_eq!((admission.connections_from(A), admission.connections_total()), (2, 2));
        drop(first);
        assert_eq!(admission.connections_from(A), 1);
        assert!(matches!(admission.admit(A, now), Admitted::Slot(_)));
        drop(second);
        assert_eq!(admission.connections_total(), 0, "every slot gave its places back");
    }

    #[test]
    fn total_cap_refuses_every_address_until_a_slot_is_dropped() {
        let admission = Admission::new(2, 3);
        let now = Instant::now();
        let a = admission.admit(A, now);
        let _b = admission.admit(B, now);
        let _b_again = admission.admit(B, now);
        assert!(matches!(a, Admitted::Slot(_)));
        assert!(matches!(admission.admit(C, now), Admitted::ServerFull { .. }), "a fresh address is refused too");
        assert!(matches!(admission.admit(A, now), Admitted::ServerFull { .. }));
        assert_eq!(admission.refused_server_full(), 2);
        assert_eq!(admission.connections_from(C), 0, "a refusal counts nowhere");
        drop(a);
        let c = admission.admit(C, now);
        assert!(matches!(c, Admitted::Slot(_)), "a dropped slot admits again");
        assert_eq!(admission.connections_total(), 3);
    }

    #[test]
    fn total_cap_counts_connections_refused_for_their_address() {
        let admission = Admission::new(1, 2);
        let now = Instant::now();
        let _a = admission.admit(A, now);
        let over = admission.admit(A, now);
        assert!(matches!(over, Admitted::OverAddressLimit(_)));
        assert!(matches!(admission.admit(B, now), Admitted::ServerFull { .. }));
        drop(over);
        assert!(matches!(admission.admit(B, now), Admitted::Slot(_)));
    }

    #[test]
    fn server_full_is_reported_at_most_once_per_interval_with_a_count() {
        let admission = Admission::new(1, 1);
        let t0 = Instant::now();
        let _held = admission.admit(A, t0);
        let report = |at| match admission.admit(B, at) {
            Admitted::ServerFull { report } => report,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(report(t0), Some(1), "the first refusal is logged at once");
        for _ in 0..99 {
            assert_eq!(report(t0), None, "a flood is not logged line by line");
        }
        assert_eq!(report(t0 + SERVER_FULL_LOG_INTERVAL), Some(100), "the next line says how many were refused");
        assert_eq!(admission.refused_server_full(), 101);
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        let admission = Admission::new(1, ANY);
        let now = Instant::now();
        let _slot = admission.admit(A, now);
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert!(matches!(admission.admit(mapped, now), Admitted::OverAddressLimit(_)));
        assert!(matches!(admission.admit(IpAddr::V6(Ipv6Addr::LOCALHOST), now), Admitted::Slot(_)));
    }

    fn v6(text: &str) -> IpAddr {
        IpAddr::V6(text.parse().unwrap())
    }

    #[test]
    fn every_per_address_limit_counts_an_ipv6_64_once() {
        let now = Instant::now();
        let host = |n: u32| v6(&format!("2001:db8:0:1::{n:x}"));
        let elsewhere = v6("2001:db8:0:2::1");

        let admission = Admission::new(2, ANY);
        let _first = admission.admit(host(1), now);
        let _second = admission.admit(host(2), now);
        assert!(matches!(admission.admit(host(3), now), Admitted::OverAddressLimit(_)), "a new address, same /64");
        assert_eq!(admission.connections_from(host(99)), 2);
        assert!(matches!(admission.admit(elsewhere, now), Admitted::Slot(_)));

        for n in 0..LOGIN_FAILURES_PER_IP.capacity as u32 {
            assert_eq!(admission.login_reserve(&format!("user{n}"), host(n), now), Ok(()));
        }
        assert!(admission.login_reserve("fresh", host(1000), now).is_err(), "login failures count per /64");
        assert_eq!(admission.login_reserve("fresh", elsewhere, now), Ok(()));

        for n in 0..REGISTRATIONS_PER_IP.capacity as u32 {
            assert_eq!(admission.registration_allowed(host(n), now), Ok(()));
        }
        assert!(admission.registration_allowed(host(1000), now).is_err(), "registrations count per /64");
        assert_eq!(admission.registration_allowed(elsewhere, now), Ok(()));
    }

    #[test]
    fn failures_per_account_run_out_then_refill() {
        let admission = Admission::new(1, ANY);
        let t0 = Instant::now();
        let burst = LOGIN_FAILURES_PER_ACCOUNT.capacity as usize;
        for _ in 0..burst {
            assert_eq!(admission.login_reserve("ann", A, t0), Ok(()));
        }
        let Err(Wait(wait)) = admission.login_reserve("ann", B, t0) else { panic!("account should be limited") };
        assert!(wait > Duration::ZERO);
        // Another account from another address is unaffected.
        assert_eq!(admission.login_reserve("bob", B, t0), Ok(()));
        assert_eq!(admission.login_reserve("ann", B, t0 + wait), Ok(()));
    }

    #[test]
    fn failures_per_address_limit_many_accounts() {
        let admission = Admission::new(1, ANY);
        let t0 = Instant::now();
        let burst = LOGIN_FAILURES_PER_IP.capacity as usize;
        for n in 0..burst {
            assert_eq!(admission.login_reserve(&format!("user{n}"), A, t0), Ok(()));
        }
        assert!(admission.login_reserve("fresh", A, t0).is_err());
        assert_eq!(admission.login_reserve("fresh", B, t0), Ok(()));
        // The refused attempt took nothing from the account "fresh": it still has its whole burst from B.
        for _ in 1..LOGIN_FAILURES_PER_ACCOUNT.capacity as usize {
            assert_eq!(admission.login_reserve("fresh", B, t0), Ok(()));
        }
    }

    #[test]
    fn login_rate_limit_bypass_reservations_count_before_the_password_check() {
        let admission = Admission::new(1, ANY);
        let t0 = Instant::now();
        let burst = LOGIN_FAILURES_PER_ACCOUNT.capacity as usize;
        // Attempts that overlap in time each hold a token while their password is being checked.
        let reserved = (0..burst * 3).filter(|_| admission.login_reserve("ann", A, t0).is_ok()).count();
        assert_eq!(reserved, burst);
        // Successful logins give their tokens back, so a user who logs in often is never limited.
        for _ in 0..burst {
            admission.login_succeeded("ann", A, t0);
        }
        for _ in 0..burst * 3 {
            assert_eq!(admission.login_reserve("bob", B, t0), Ok(()));
            admission.login_succeeded("bob", B, t0);
        }
        assert_eq!(admission.login_reserve("ann", A, t0), Ok(()));
    }

    #[test]
    fn registrations_are_limited_per_address() {
        let admission = Admission::new(1, ANY);
        let t0 = Instant::now();
        for _ in 0..REGISTRATIONS_PER_IP.capacity as usize {
            assert_eq!(admission.registration_allowed(A, t0), Ok(()));
        }
        assert!(admission.registration_allowed(A, t0).is_err());
        assert_eq!(admission.registration_allowed(B, t0), Ok(()));
    }

    #[test]
    fn odd_waits_round_safely() {
        assert_eq!(secs(f64::NAN), Duration::ZERO);
        assert_eq!(secs(-1.0), Duration::ZERO);
        assert_eq!(secs(0.2), Duration::from_secs(1));
    }
}
