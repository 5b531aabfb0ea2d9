//! Admission control: who may connect, try a password, or create an account, and how often.
//!
//! Four kinds of abuse are cheap for a client and expensive for the server, and each gets its own limit:
//!
//! - **Holding sockets.** Every TCP connection costs a file descriptor, a task and some buffers. One address may
//!   hold at most `max_connections_per_ip` at once, and the whole server at most `max_connections`. The second
//!   cap exists because file descriptors run out for everyone at once: a process at its open-file limit cannot
//!   accept *any* connection, the teacher's included.
//! - **Handshaking.** Every accepted connection costs a Noise handshake. One address may start only so many a
//!   second, and only so many may be in progress at once.
//!
//!   Both are judged at `accept`, before any cryptography, by the connection registry ([`connections`] explains
//!   the order of the checks, and how the server sheds the heaviest address first when it is under pressure
//!   instead of handing itself to whoever filled it first). A refused connection is reset at once and holds no
//!   place in any count. A [`ConnectionSlot`] holds an admitted connection's place until its task ends, however
//!   it ends.
//! - **Guessing passwords.** Login failures are counted per account and address, per address, and (slower) per
//!   account; see [`login`] for why nobody can spend someone else's budget, and why simultaneous correct logins
//!   never refuse each other.
//! - **Filling the user table.** Registrations are limited per address (`--max-registrations-per-ip` an hour).
//!
//! Every refusal is counted per reason ([`refusals`]); the accept loop logs one summary per interval instead of a
//! line per refusal.
//!
//! "Per address" means per [`NetworkId`]: an IPv4 address, or a whole IPv6 /64, which one host can fill with
//! addresses at will (see [`crate::net::network`]). An IPv4 client reaching a dual-stack socket as
//! `::ffff:a.b.c.d` counts against the same budget as `a.b.c.d`.

pub mod connections;
pub mod login;
pub mod refusals;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

pub use self::connections::Phase;
use self::connections::{ConnectionLimits, Eviction, Registry};
pub use self::login::Wait;
use self::login::whole_seconds;
use self::login::{Attempt, LoginLimits, Reservation};
use self::refusals::Refusals;
pub use self::refusals::{Refusal, RefusalReport};
use crate::config::ServerConfig;
use crate::limits::MAX_RATE_LIMIT_KEYS;
use crate::net::network::NetworkId;
use crate::rate_limit::{BucketShape, KeyedBuckets};

/// The limits an [`Admission`] enforces; [`AdmissionLimits::from_config`] takes them from the server's
/// configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmissionLimits {
    /// Connections one address may hold.
    pub max_connections_per_ip: usize,
    /// Connections the server may hold.
    pub max_connections: usize,
    /// New connections (handshakes) per address: burst and rate.
    pub handshakes_per_ip: BucketShape,
    /// Handshakes in progress at once, from every address.
    pub max_handshakes_in_progress: usize,
    /// Registrations per address: burst and rate.
    pub registrations_per_ip: BucketShape,
}

impl AdmissionLimits {
    /// The limits `config` asks for.
    pub fn from_config(config: &ServerConfig) -> Self {
        Self {
            max_connections_per_ip: config.max_connections_per_ip,
            max_connections: config.max_connections,
            handshakes_per_ip: config.handshake_shape(),
            max_handshakes_in_progress: config.max_handshakes_in_progress,
            registrations_per_ip: config.registration_shape(),
        }
    }
}

/// The shared admission state of one server.
#[derive(Debug)]
pub struct Admission {
    connections: Mutex<Registry>,
    login: Mutex<LoginLimits>,
    /// Woken whenever a login reservation settles, for attempts that found every token reserved.
    login_settled: Notify,
    registrations: Mutex<KeyedBuckets<NetworkId>>,
    refusals: Mutex<Refusals>,
}

/// The answer of [`Admission::admit`].
#[derive(Debug)]
pub enum Admitted {
    /// The connection may proceed; it holds this slot until it ends.
    Slot(ConnectionSlot),
    /// Refused: close the socket at once, before any handshake (a reset, so the server keeps no `TIME_WAIT`).
    Refused(Refusal),
    /// Refused for its address's connection cap, and this one may be told why: run the handshake (briefly) and
    /// send `TooManyConnections`. The ticket bounds how many explanations run at once; it counts in no connection
    /// count.
    Explain(RefusalTicket),
}

/// One admitted connection; dropping it gives its place back.
#[derive(Debug)]
pub struct ConnectionSlot {
    admission: Arc<Admission>,
    net: NetworkId,
    id: u64,
    eviction: Arc<Eviction>,
}

impl ConnectionSlot {
    /// Records that the connection moved to `phase` (handshake done, logged in, logged out).
    pub fn set_phase(&self, phase: Phase) {
        self.admission.connections().set_phase(self.net, self.id, phase);
    }

    /// Completes when the server sheds this connection to make room for another address (see
    /// [`connections`]); never completes otherwise. Safe to call again and again in a `select!` loop.
    pub async fn shed(&self) {
        self.eviction.wait().await;
    }

    /// Whether the server has shed this connection.
    pub fn is_shed(&self) -> bool {
        self.eviction.fired()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.admission.connections().forget(self.net, self.id);
    }
}

/// A place among the refusals being explained (see [`Admitted::Explain`]).
#[derive(Debug)]
pub struct RefusalTicket {
    admission: Arc<Admission>,
}

impl Drop for RefusalTicket {
    fn drop(&mut self) {
        self.admission.connections().explanation_done();
    }
}

/// A login attempt's reserved tokens (see [`login`]). Settle it with [`failed`](Self::failed) when the password
/// was wrong; dropping it any other way (success, a server error, a client that left) gives the tokens back.
#[derive(Debug)]
pub struct LoginReservation {
    admission: Arc<Admission>,
    account: String,
    ip: IpAddr,
    reservation: Reservation,
    failed: bool,
}

impl LoginReservation {
    /// The password was wrong (or the account unknown): the tokens stay spent.
    pub fn failed(mut self) {
        self.failed = true;
    }
}

impl Drop for LoginReservation {
    fn drop(&mut self) {
        self.admission.login().settle(&self.account, self.ip, self.reservation, self.failed, Instant::now());
        self.admission.login_settled.notify_waiters();
    }
}

impl Admission {
    /// Admission with the given limits and the login-failure limits of [`crate::limits`].
    pub fn new(limits: AdmissionLimits) -> Arc<Self> {
        let connection_limits = ConnectionLimits {
            max_per_address: limits.max_connections_per_ip,
            max_total: limits.max_connections,
            max_handshakes: limits.max_handshakes_in_progress,
            handshakes_per_address: limits.handshakes_per_ip,
        };
        Arc::new(Self {
            connections: Mutex::new(Registry::new(connection_limits)),
            login: Mutex::new(LoginLimits::default()),
            login_settled: Notify::new(),
            registrations: Mutex::new(KeyedBuckets::new(limits.registrations_per_ip, MAX_RATE_LIMIT_KEYS)),
            refusals: Mutex::new(Refusals::default()),
        })
    }

    // Every critical section below only updates counters, so the state after a panic elsewhere is still sound.
    fn connections(&self) -> MutexGuard<'_, Registry> {
        self.connections.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn login(&self) -> MutexGuard<'_, LoginLimits> {
        self.login.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn refusals(&self) -> MutexGuard<'_, Refusals> {
        self.refusals.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Judges a connection from `ip` accepted at `now` (see [`connections`] for the checks and the shedding).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Admitted {
        let net = NetworkId::of(ip);
        let decision = self.connections().admit(net, now);
        match decision {
            Ok(entry) => {
                for reason in entry.shed {
                    // Counted against the newcomer's address: the shed connection's address is not known here,
                    // and the newcomer's is the one that caused it.
                    self.refusals().note(reason, net);
                }
                Admitted::Slot(ConnectionSlot {
                    admission: Arc::clone(self),
                    net,
                    id: entry.id,
                    eviction: entry.eviction,
                })
            }
            Err(refused) => {
                self.refusals().note(refused.reason, net);
                if refused.explain {
                    Admitted::Explain(RefusalTicket { admission: Arc::clone(self) })
                } else {
                    Admitted::Refused(refused.reason)
                }
            }
        }
    }

    /// Connections the network of `ip` holds now.
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        self.connections().held_by(NetworkId::of(ip))
    }

    /// Connections the server holds now, from every address.
    pub fn connections_total(&self) -> usize {
        self.connections().total()
    }

    /// Handshakes in progress now, from every address.
    pub fn handshakes_in_progress(&self) -> usize {
        self.connections().handshaking()
    }

    /// Counts a refusal of a request on an established connection from `ip` (for the periodic summary).
    pub fn note_refusal(&self, reason: Refusal, ip: IpAddr) {
        self.refusals().note(reason, NetworkId::of(ip));
    }

    /// The refusals since the last report, for one log line; `None` when there were none.
    pub fn take_refusal_report(&self) -> Option<RefusalReport> {
        self.refusals().take_report()
    }

    /// Refusals of `reason` since the server started.
    pub fn refusals_since_start(&self, reason: Refusal) -> u64 {
        self.refusals().since_start(reason)
    }

    /// Reserves a login attempt at `account` from `ip`, before its password is checked (see [`login`]). Waits
    /// while the only tokens left are reserved by attempts still in flight; refuses with the time to wait when
    /// failures used up a budget.
    pub async fn reserve_login(self: &Arc<Self>, account: &str, ip: IpAddr) -> Result<LoginReservation, Wait> {
        loop {
            // Registered before the check, so a settlement between the check and the wait is not missed.
            let settled = self.login_settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let attempt = self.login().reserve(account, ip, Instant::now());
            match attempt {
                Attempt::Reserved(reservation) => {
                    return Ok(LoginReservation {
                        admission: Arc::clone(self),
                        account: account.to_owned(),
                        ip,
                        reservation,
                        failed: false,
                    });
                }
                Attempt::Refused(wait) => return Err(wait),
                Attempt::Busy => settled.await,
            }
        }
    }

    /// Takes a registration token for `ip`, or says how long to wait.
    pub fn registration_allowed(&self, ip: IpAddr, now: Instant) -> Result<(), Wait> {
        let net = NetworkId::of(ip);
        let mut buckets = self.registrations.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.try_take(&net, now) { Ok(()) } else { Err(Wait(whole_seconds(buckets.wait_secs(&net, now)))) }
    }
}

#[cfg(test)]
mod tests;
