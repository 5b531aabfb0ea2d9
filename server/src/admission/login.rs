//! Login-failure limits that nobody can spend for someone else.
//!
//! Guessing a password means trying many, so failed logins are limited. The question is *whose* budget a failure
//! spends. Counted per account alone, anyone could lock any account: sixty wrong passwords from the attacker's
//! address and the owner's correct password from home is refused too. So, as Synapse and ergo do, failures are
//! counted in three buckets ([`crate::limits`] has their sizes):
//!
//! - **per account and address** ([`LOGIN_FAILURES_PER_ACCOUNT_AND_IP`]): the main limit. A guesser at one address
//!   exhausts it for that account *at that address*; the owner elsewhere notices nothing.
//! - **per address** ([`LOGIN_FAILURES_PER_IP`]), whatever the account: one machine trying many accounts.
//! - **per account** ([`LOGIN_FAILURES_PER_ACCOUNT`]), across all addresses, slower: a guesser spreading attempts over
//!   many addresses. It is charged by every failure but only ever refuses addresses that have failed for this
//!   account themselves (whose per-account-and-address bucket is not full). A correct password from an address
//!   without failures is never refused because of it; the price is that each new address of a distributed guesser
//!   gets one try before it counts as failing.
//!
//! ## Reservations, and why correct logins never pay for each other
//!
//! An attempt takes its tokens *before* the password check (a reservation, see [`crate::rate_limit`]) so that
//! fifty parallel guesses cannot all pass while the first check runs; a correct password gives them back, so in the
//! end only failures cost. But while a correct login's check runs, its tokens are taken. Eight simultaneous correct
//! logins to one account (a class sharing a demo account, or one student with the app and two CLIs) would find the
//! bucket of five "empty" and three would be told of failures that never happened. So a bucket whose tokens are
//! all *reserved* is busy, not empty: the attempt waits until one of the attempts in flight settles and then asks
//! again. Only failures that really happened ever refuse anyone.
//!
//! Unknown account names go through exactly the same buckets, so the limits reveal nothing about which names exist.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::limits::{
    LOGIN_FAILURES_PER_ACCOUNT, LOGIN_FAILURES_PER_ACCOUNT_AND_IP, LOGIN_FAILURES_PER_IP, MAX_RATE_LIMIT_KEYS,
};
use crate::net::network::NetworkId;
use crate::rate_limit::{KeyedBuckets, Reserve};

/// Why a rate limit refused: how long to wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wait(pub Duration);

/// What [`LoginLimits::reserve`] decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Attempt {
    /// Tokens are reserved; settle them with [`LoginLimits::settle`].
    Reserved(Reservation),
    /// Every token that could be used is reserved by attempts in flight: ask again when one of them settled.
    Busy,
    /// Refused: failures that really happened used up a budget.
    Refused(Wait),
}

/// Which buckets one attempt reserved from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Reservation {
    /// The per-account bucket is reserved only for an address that has failed for this account.
    account: bool,
}

/// The three failure buckets.
#[derive(Debug)]
pub(super) struct LoginLimits {
    per_pair: KeyedBuckets<(String, NetworkId)>,
    per_account: KeyedBuckets<String>,
    per_address: KeyedBuckets<NetworkId>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_pair: KeyedBuckets::new(LOGIN_FAILURES_PER_ACCOUNT_AND_IP, MAX_RATE_LIMIT_KEYS),
            per_account: KeyedBuckets::new(LOGIN_FAILURES_PER_ACCOUNT, MAX_RATE_LIMIT_KEYS),
            per_address: KeyedBuckets::new(LOGIN_FAILURES_PER_IP, MAX_RATE_LIMIT_KEYS),
        }
    }
}

impl LoginLimits {
    /// Reserves an attempt at `account` from `ip`: from every bucket that applies, or from none.
    pub(super) fn reserve(&mut self, account: &str, ip: IpAddr, now: Instant) -> Attempt {
        let net = NetworkId::of(ip);
        let pair = (account.to_owned(), net);
        let account_key = account.to_owned();
        let failing_here = !self.per_pair.is_clean(&pair, now);
        let mut answers = vec![self.per_address.reserve(&net, now), self.per_pair.reserve(&pair, now)];
        if failing_here {
            answers.push(self.per_account.reserve(&account_key, now));
        }
        if answers.iter().all(|answer| *answer == Reserve::Taken) {
            return Attempt::Reserved(Reservation { account: failing_here });
        }
        // All or nothing: give back what this attempt took.
        let taken = |index: usize| answers.get(index) == Some(&Reserve::Taken);
        if taken(0) {
            self.per_address.settle(&net, now, false);
        }
        if taken(1) {
            self.per_pair.settle(&pair, now, false);
        }
        if taken(2) {
            self.per_account.settle(&account_key, now, false);
        }
        let empty = answers
            .iter()
            .filter_map(|answer| if let Reserve::Empty(wait) = answer { Some(*wait) } else { None })
            .reduce(f64::max);
        match empty {
            Some(wait) => Attempt::Refused(Wait(whole_seconds(wait))),
            None => Attempt::Busy,
        }
    }

    /// Ends a reserved attempt: a failure keeps the tokens spent, anything else gives them back.
    pub(super) fn settle(&mut self, account: &str, ip: IpAddr, reservation: Reservation, failed: bool, now: Instant) {
        let net = NetworkId::of(ip);
        let account_key = account.to_owned();
        self.per_address.settle(&net, now, failed);
        self.per_pair.settle(&(account_key.clone(), net), now, failed);
        if reservation.account {
            self.per_account.settle(&account_key, now, failed);
        } else if failed {
            // A first failure from a clean address counts towards the account's total too, if any is left.
            self.per_account.try_take(&account_key, now);
        }
    }
}

/// Seconds as a `Duration`, rounded up to whole seconds for people; non-finite or negative input counts as zero.
pub(super) fn whole_seconds(value: f64) -> Duration {
    if value.is_finite() && value > 0.0 { Duration::from_secs(value.ceil() as u64) } else { Duration::ZERO }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    fn reserved(attempt: Attempt) -> Reservation {
        match attempt {
            Attempt::Reserved(reservation) => reservation,
            other => panic!("expected a reservation, got {other:?}"),
        }
    }

    fn fail(limits: &mut LoginLimits, account: &str, ip: IpAddr, now: Instant) {
        let reservation = reserved(limits.reserve(account, ip, now));
        limits.settle(account, ip, reservation, true, now);
    }

    #[test]
    fn login_failures_from_one_address_do_not_lock_out_another() {
        let mut limits = LoginLimits::default();
        let t0 = Instant::now();
        for _ in 0..LOGIN_FAILURES_PER_ACCOUNT_AND_IP.capacity as usize {
            fail(&mut limits, "ann", A, t0);
        }
        assert!(matches!(limits.reserve("ann", A, t0), Attempt::Refused(Wait(wait)) if wait > Duration::ZERO));
        let owner = reserved(limits.reserve("ann", B, t0));
        limits.settle("ann", B, owner, false, t0);
    }

    #[test]
    fn the_per_account_limit_never_refuses_an_address_without_failures() {
        let mut limits = LoginLimits::default();
        let t0 = Instant::now();
        // A guesser spread over many addresses, one guess each, spends the account's whole budget.
        let guesser = |n: u32| IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + n));
        for n in 0..LOGIN_FAILURES_PER_ACCOUNT.capacity as u32 {
            fail(&mut limits, "ann", guesser(n), t0);
        }
        let again = limits.reserve("ann", guesser(0), t0);
        assert!(
            matches!(again, Attempt::Refused(_)),
            "an address that failed waits, though its own burst is not spent"
        );
        // The owner, at an address that never failed, still gets to try.
        let owner = reserved(limits.reserve("ann", A, t0));
        assert!(!owner.account, "a clean address does not even reserve from the account's bucket");
        limits.settle("ann", A, owner, false, t0);
    }

    #[test]
    fn reservations_of_correct_logins_make_others_wait_not_fail() {
        let mut limits = LoginLimits::default();
        let t0 = Instant::now();
        let burst = LOGIN_FAILURES_PER_ACCOUNT_AND_IP.capacity as usize;
        let in_flight: Vec<_> = (0..burst).map(|_| reserved(limits.reserve("ann", A, t0))).collect();
        assert_eq!(limits.reserve("ann", A, t0), Attempt::Busy, "busy, not 'too many failed logins'");
        for reservation in in_flight {
            limits.settle("ann", A, reservation, false, t0);
        }
        let next = reserved(limits.reserve("ann", A, t0));
        limits.settle("ann", A, next, false, t0);
    }

    #[test]
    fn concurrent_wrong_guesses_never_exceed_the_burst() {
        let mut limits = LoginLimits::default();
        let t0 = Instant::now();
        let burst = LOGIN_FAILURES_PER_ACCOUNT_AND_IP.capacity as usize;
        let in_flight: Vec<_> = (0..burst).map(|_| reserved(limits.reserve("ann", A, t0))).collect();
        assert_eq!(limits.reserve("ann", A, t0), Attempt::Busy);
        for reservation in in_flight {
            limits.settle("ann", A, reservation, true, t0);
        }
        assert!(matches!(limits.reserve("ann", A, t0), Attempt::Refused(_)), "once they failed, the wait is real");
    }

    #[test]
    fn failures_per_address_limit_many_accounts_and_refusals_take_nothing() {
        let mut limits = LoginLimits::default();
        let t0 = Instant::now();
        for n in 0..LOGIN_FAILURES_PER_IP.capacity as usize {
            fail(&mut limits, &format!("user{n}"), A, t0);
        }
        assert!(matches!(limits.reserve("fresh", A, t0), Attempt::Refused(_)));
        // The refused attempt took nothing from "fresh": its whole burst is left at another address.
        for _ in 0..LOGIN_FAILURES_PER_ACCOUNT_AND_IP.capacity as usize {
            fail(&mut limits, "fresh", B, t0);
        }
        assert!(matches!(limits.reserve("fresh", B, t0), Attempt::Refused(_)));
    }

    #[test]
    fn failures_refill_with_time() {
        let mut limits = LoginLimits::default();
        let t0 = Instant::now();
        for _ in 0..LOGIN_FAILURES_PER_ACCOUNT_AND_IP.capacity as usize {
            fail(&mut limits, "ann", A, t0);
        }
        let Attempt::Refused(Wait(wait)) = limits.reserve("ann", A, t0) else { panic!("should be limited") };
        let later = reserved(limits.reserve("ann", A, t0 + wait));
        limits.settle("ann", A, later, false, t0 + wait);
    }

    #[test]
    fn odd_waits_round_safely() {
        assert_eq!(whole_seconds(f64::NAN), Duration::ZERO);
        assert_eq!(whole_seconds(-1.0), Duration::ZERO);
        assert_eq!(whole_seconds(0.2), Duration::from_secs(1));
    }
}
