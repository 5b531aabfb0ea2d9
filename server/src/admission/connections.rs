//! The connection registry: who holds which connections, in which phase, and whom to shed under pressure.
//!
//! Every accepted connection is judged here once, at `accept`, before the server spends anything on it but the
//! `accept` call itself. The checks run cheapest first, and a refused connection is closed at once, holds no place
//! in any count and costs no cryptography:
//!
//! 1. **Connections per address.** An address (see [`NetworkId`]) that already holds `max_connections_per_ip` gets
//!    no more. (A few of these refusals are explained, see [`RefusalTicket`](super::RefusalTicket).)
//! 2. **Handshakes per address.** Each address has a token bucket of new connections, because every accepted
//!    connection costs a Noise handshake: a script that connects and disconnects thousands of times a second gets
//!    its few tokens a second and resets for the rest.
//! 3. **Connections in total**, so the process never runs out of file descriptors.
//! 4. **Handshakes in progress in total**, so silent half-opened connections from many addresses cannot pile up.
//!
//! ## Shedding the heaviest address first
//!
//! When the server is full (3) or has as many handshakes in progress as it may (4), refusing the newcomer would
//! hand the server to whoever filled it first: one address with a thousand idle connections would lock everyone
//! else out. Instead the newcomer may take the place of a connection from the address that holds the most: the
//! *heaviest* address loses its newest connection that has not logged in (for (4): its newest handshake), if it
//! holds at least two more of them than the newcomer's address. An attacker's connections are shed one by one as
//! others arrive, until every address holds about as many as any other. This is max-min fairness, the rule
//! routers use to share a link between flows.
//!
//! Logged-in connections are never shed: they belong to people who proved who they are, and the classroom behind
//! one NAT address is the heaviest address of all. Only unauthenticated connections (in their handshake or not
//! logged in yet) count as weight and can be shed.
//!
//! ## Why no retry cookie
//!
//! QUIC and WireGuard answer a flood of new connections with a stateless *cookie*: the server keeps nothing and
//! asks the client to repeat its first packet with a token that proves it receives packets at its claimed
//! address. They need it because UDP source addresses can be forged. TCP already does that proof in its
//! three-way handshake (with SYN cookies when the queue is full), so by the time `accept` returns, the peer's
//! address is real and the per-address limits above cannot be spent by someone forging it. A second proof in the
//! Noise handshake would only add a round trip.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::Notify;

use super::refusals::Refusal;
use crate::limits::{EXPLAINED_REFUSALS_PER_IP, MAX_EXPLAINED_REFUSALS_IN_PROGRESS, MAX_RATE_LIMIT_KEYS};
use crate::net::network::NetworkId;
use crate::rate_limit::{BucketShape, KeyedBuckets};

/// Where a connection is in its life, for the counts and for choosing whom to shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Accepted; the Noise handshake is not complete.
    Handshake,
    /// The encrypted channel is up; nobody has logged in on it (yet, or again after a logout).
    LoggedOut,
    /// A session is logged in on it: never shed.
    LoggedIn,
}

/// The shed signal of one connection: set once by the registry, awaited by the connection's task.
#[derive(Debug, Default)]
pub(super) struct Eviction {
    fired: AtomicBool,
    notify: Notify,
}

impl Eviction {
    fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        // `notify_one` stores a permit when nobody waits yet, so the task sees it at its next wait.
        self.notify.notify_one();
    }

    pub(super) fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    pub(super) async fn wait(&self) {
        if !self.fired() {
            self.notify.notified().await;
        }
    }
}

/// One connection the registry knows.
#[derive(Debug)]
struct Held {
    phase: Phase,
    eviction: Arc<Eviction>,
}

/// Everything one address holds. `held` is ordered by connection id, so the newest is last.
#[derive(Debug, Default)]
struct Address {
    held: BTreeMap<u64, Held>,
    handshaking: usize,
    unauthenticated: usize,
}

impl Address {
    fn counts(&self) -> Counts {
        Counts { held: self.held.len(), handshaking: self.handshaking, unauthenticated: self.unauthenticated }
    }

    fn add(&mut self, phase: Phase, sign: isize) {
        let step = |count: &mut usize| *count = count.saturating_add_signed(sign);
        if phase == Phase::Handshake {
            step(&mut self.handshaking);
        }
        if phase != Phase::LoggedIn {
            step(&mut self.unauthenticated);
        }
    }

    /// The newest connection in a phase `eligible` accepts, preferring handshakes (the cheapest to lose).
    fn newest(&self, eligible: impl Fn(Phase) -> bool) -> Option<(u64, Phase)> {
        let newest_in =
            |phase: Phase| self.held.iter().rev().find(|(_, held)| held.phase == phase).map(|(&id, _)| (id, phase));
        [Phase::Handshake, Phase::LoggedOut].into_iter().filter(|&phase| eligible(phase)).find_map(newest_in)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    held: usize,
    handshaking: usize,
    unauthenticated: usize,
}

/// The caps the registry enforces.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ConnectionLimits {
    pub(super) max_per_address: usize,
    pub(super) max_total: usize,
    pub(super) max_handshakes: usize,
    pub(super) handshakes_per_address: BucketShape,
}

/// A connection admitted by [`Registry::admit`].
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) id: u64,
    pub(super) eviction: Arc<Eviction>,
    /// Connections shed to make room for this one (zero, one or two).
    pub(super) shed: Vec<Refusal>,
}

/// A connection refused by [`Registry::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Refused {
    pub(super) reason: Refusal,
    /// Whether this refusal may be explained to the peer (it then holds an explanation place until released).
    pub(super) explain: bool,
}

/// The registry of every connection the server holds.
#[derive(Debug)]
pub(super) struct Registry {
    limits: ConnectionLimits,
    next_id: u64,
    addresses: HashMap<NetworkId, Address>,
    /// Addresses by their unauthenticated connections, for finding the heaviest at once.
    by_unauthenticated: BTreeSet<(usize, NetworkId)>,
    /// Addresses by their handshakes in progress.
    by_handshakes: BTreeSet<(usize, NetworkId)>,
    total: usize,
    handshaking: usize,
    handshake_buckets: KeyedBuckets<NetworkId>,
    explanation_buckets: KeyedBuckets<NetworkId>,
    explaining: usize,
}

impl Registry {
    pub(super) fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            next_id: 0,
            addresses: HashMap::new(),
            by_unauthenticated: BTreeSet::new(),
            by_handshakes: BTreeSet::new(),
            total: 0,
            handshaking: 0,
            handshake_buckets: KeyedBuckets::new(limits.handshakes_per_address, MAX_RATE_LIMIT_KEYS),
            explanation_buckets: KeyedBuckets::new(EXPLAINED_REFUSALS_PER_IP, MAX_RATE_LIMIT_KEYS),
            explaining: 0,
        }
    }

    fn counts(&self, net: NetworkId) -> Counts {
        self.addresses.get(&net).map(Address::counts).unwrap_or_default()
    }

    /// Changes what `net` holds through `change`, keeping the totals and the heaviest-address indexes in step.
    fn update<R>(&mut self, net: NetworkId, change: impl FnOnce(&mut Address) -> R) -> R {
        let address = self.addresses.entry(net).or_default();
        let before = address.counts();
        let result = change(address);
        let after = address.counts();
        if after.held == 0 {
            self.addresses.remove(&net);
        }
        self.total = self.total + after.held - before.held;
        self.handshaking = self.handshaking + after.handshaking - before.handshaking;
        reindex(&mut self.by_unauthenticated, net, before.unauthenticated, after.unauthenticated);
        reindex(&mut self.by_handshakes, net, before.handshaking, after.handshaking);
        result
    }

    /// Judges a new connection from `net` (see the module documentation for the order of the checks).
    pub(super) fn admit(&mut self, net: NetworkId, now: Instant) -> Result<Entry, Refused> {
        let mine = self.counts(net);
        if mine.held >= self.limits.max_per_address {
            let explain = self.take_explanation(net, now);
            return Err(Refused { reason: Refusal::ConnectionsPerAddress, explain });
        }
        if !self.handshake_buckets.allows(&net, now) {
            return Err(Refused { reason: Refusal::HandshakeRate, explain: false });
        }
        // Plan the shedding before doing any, so that a newcomer refused at the second check sheds nobody.
        let mut victims = Vec::new();
        if self.total >= self.limits.max_total {
            let Some(victim) = self.heaviest_other(&self.by_unauthenticated, mine.unauthenticated, |_| true) else {
                return Err(Refused { reason: Refusal::ServerFull, explain: false });
            };
            victims.push((victim, Refusal::ShedConnection));
        }
        let frees_a_handshake = victims.iter().any(|((_, (_, phase)), _)| *phase == Phase::Handshake);
        if self.handshaking >= self.limits.max_handshakes && !frees_a_handshake {
            let handshakes_only = |phase: Phase| phase == Phase::Handshake;
            let Some(victim) = self.heaviest_other(&self.by_handshakes, mine.handshaking, handshakes_only) else {
                return Err(Refused { reason: Refusal::HandshakesBusy, explain: false });
            };
            victims.push((victim, Refusal::ShedHandshake));
        }
        self.handshake_buckets.try_take(&net, now);
        let mut shed = Vec::with_capacity(victims.len());
        for ((victim_net, (victim_id, _)), reason) in victims {
            if let Some(held) = self.take(victim_net, victim_id) {
                held.eviction.fire();
                shed.push(reason);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let eviction = Arc::new(Eviction::default());
        let held = Held { phase: Phase::Handshake, eviction: Arc::clone(&eviction) };
        self.update(net, |address| {
            address.add(Phase::Handshake, 1);
            address.held.insert(id, held);
        });
        Ok(Entry { id, eviction, shed })
    }

    /// The heaviest address in `index` if it holds at least two more than `mine` (so that after the swap it still
    /// holds at least as many as the newcomer's address), with its newest connection in an `eligible` phase.
    fn heaviest_other(
        &self,
        index: &BTreeSet<(usize, NetworkId)>,
        mine: usize,
        eligible: impl Fn(Phase) -> bool,
    ) -> Option<(NetworkId, (u64, Phase))> {
        let &(weight, net) = index.last()?;
        if weight < mine + 2 {
            return None;
        }
        let victim = self.addresses.get(&net)?.newest(eligible)?;
        Some((net, victim))
    }

    /// Takes an explanation place for a refusal to `net`, if one is free and the address has not had one lately.
    fn take_explanation(&mut self, net: NetworkId, now: Instant) -> bool {
        if self.explaining >= MAX_EXPLAINED_REFUSALS_IN_PROGRESS || !self.explanation_buckets.try_take(&net, now) {
            return false;
        }
        self.explaining += 1;
        true
    }

    /// Gives an explanation place back.
    pub(super) fn explanation_done(&mut self) {
        self.explaining = self.explaining.saturating_sub(1);
    }

    /// Forgets a connection that ended; nothing happens if it was shed before.
    pub(super) fn forget(&mut self, net: NetworkId, id: u64) {
        self.take(net, id);
    }

    /// Removes a connection from the counts (it ended, or it is being shed); `None` if it was already gone.
    fn take(&mut self, net: NetworkId, id: u64) -> Option<Held> {
        if !self.addresses.get(&net).is_some_and(|address| address.held.contains_key(&id)) {
            return None;
        }
        self.update(net, |address| {
            let held = address.held.remove(&id)?;
            address.add(held.phase, -1);
            Some(held)
        })
    }

    /// Moves a connection to `phase`; nothing happens if it was shed meanwhile.
    pub(super) fn set_phase(&mut self, net: NetworkId, id: u64, phase: Phase) {
        if !self.addresses.get(&net).is_some_and(|address| address.held.contains_key(&id)) {
            return;
        }
        self.update(net, |address| {
            let Some(old) = address.held.get(&id).map(|held| held.phase) else { return };
            address.add(old, -1);
            address.add(phase, 1);
            if let Some(held) = address.held.get_mut(&id) {
                held.phase = phase;
            }
        });
    }

    /// Connections held by the network of `net`.
    pub(super) fn held_by(&self, net: NetworkId) -> usize {
        self.counts(net).held
    }

    /// Connections held in total.
    pub(super) fn total(&self) -> usize {
        self.total
    }

    /// Handshakes in progress in total.
    pub(super) fn handshaking(&self) -> usize {
        self.handshaking
    }
}

/// Moves `net` from `before` to `after` in a weight index; weight zero is not indexed.
fn reindex(index: &mut BTreeSet<(usize, NetworkId)>, net: NetworkId, before: usize, after: usize) {
    if before == after {
        return;
    }
    if before > 0 {
        index.remove(&(before, net));
    }
    if after > 0 {
        index.insert((after, net));
    }
}
