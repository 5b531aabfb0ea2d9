//! De-duplication of resent chat messages: "exactly once" on top of "at least once".
//!
//! A client that sent a message and never saw its `Accepted` cannot know whether the server stored it: the message
//! may have been lost on the way in, or the answer on the way out (UDP died, the TCP connection broke). The only
//! safe thing it can do is send the message again, with the **same** `client_msg_id`; this module makes that safe
//! for the server. It is the classic idempotency key of payment APIs and of TCP's own sequence numbers: the sender
//! names each message, and the receiver remembers the names it has already acted on.
//!
//! Per user (not per session: a resend often comes on a new connection after a reconnect), the hub remembers
//!
//! - the **recent** messages it stored, `client_msg_id → (id, sent_at_ms)`, at most [`MAX_REMEMBERED_PER_USER`],
//!   oldest forgotten first; a resend of one of them is answered with the stored id and stored again never;
//! - the messages **in flight**: handed to the storage writer but not yet committed. A resend arriving in that
//!   window is attached to the first copy and answered when it commits, with the same id.
//!
//! Each entry also keeps a fingerprint of the target and text. A client (or a student's script) that reuses an id
//! for a *different* message, for instance by counting from 1 on every connection, must not see its new message
//! silently swallowed: a different fingerprint means a new message.
//!
//! Memory stays bounded: per user by [`MAX_REMEMBERED_PER_USER`], and users without a session are forgotten
//! [`FORGET_OFFLINE_AFTER`] after their last session ended, or at once when the table holds more than
//! [`MAX_REMEMBERED_TOTAL`] entries.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use chatlab_proto::chat::Target;
use chatlab_proto::control::Transport;

use super::input::SessionRef;
use crate::storage::{MessageId, UserId};

/// Stored messages remembered per user. A client resends only the messages it still waits for, and a client keeps
/// at most a few hundred of those (its send window and its queue of unanswered messages); 1 024 covers a burst of
/// pasted lines and a reconnect in the middle of it, at about 40 bytes per entry.
pub const MAX_REMEMBERED_PER_USER: usize = 1024;

/// How long the ids of a user with no session are kept. A resend after a broken connection comes with the next
/// login, normally within seconds (the client reconnects at once); ten minutes covers a laptop that sleeps through
/// a short break, and after that the client itself has given up on its unanswered messages.
pub const FORGET_OFFLINE_AFTER: Duration = Duration::from_secs(600);

/// Entries remembered over all users at most (about 40 MB at the worst). Beyond it the ids of users without a
/// session are forgotten at once, so a server with many accounts coming and going cannot grow without bound.
pub const MAX_REMEMBERED_TOTAL: usize = 1_000_000;

/// Resends attached to one message still being stored. A client resends after a timeout, so a real one attaches
/// one or two; a client that resends in a tight loop is refused beyond this.
pub const MAX_WAITERS: usize = 8;

/// Time between two sweeps for users to forget: a sweep visits every remembered user, so it runs at most this
/// often, triggered by logins and logouts.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Where an answer for a resend goes: the session and the transport the resend came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    /// The session that sent the copy.
    pub session: SessionRef,
    /// The transport it came on, which its answer uses.
    pub origin: Transport,
}

/// What the hub should do with an incoming chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen before (or a different message under a reused id): check it and store it.
    New,
    /// Already stored: answer `Accepted` with this id and time, store nothing.
    Stored {
        /// The stored message's id.
        id: MessageId,
        /// When it was stored.
        sent_at_ms: i64,
    },
    /// The first copy is being stored; this copy's answer will come with the first one's.
    Attached,
    /// A different message under the same id is still being stored, or too many copies wait already.
    Refused,
}

#[derive(Debug, Clone, Copy)]
struct Remembered {
    fingerprint: u64,
    id: MessageId,
    sent_at_ms: i64,
}

#[derive(Debug)]
struct InFlight {
    fingerprint: u64,
    waiters: Vec<Waiter>,
}

#[derive(Debug, Default)]
struct UserIds {
    recent: HashMap<u64, Remembered>,
    order: VecDeque<u64>,
    in_flight: HashMap<u64, InFlight>,
    offline_since: Option<Instant>,
}

impl UserIds {
    fn remember(&mut self, client_msg_id: u64, entry: Remembered) {
        if self.recent.insert(client_msg_id, entry).is_none() {
            self.order.push_back(client_msg_id);
        }
        while self.order.len() > MAX_REMEMBERED_PER_USER {
            if let Some(oldest) = self.order.pop_front() {
                self.recent.remove(&oldest);
            }
        }
    }
}

/// The hub's memory of recent `client_msg_id`s. See the module documentation.
#[derive(Debug)]
pub struct Dedup {
    users: HashMap<UserId, UserIds>,
    total: usize,
    last_sweep: Instant,
}

/// A fingerprint of a message's target and text, to tell a resend from a new message under a reused id.
pub fn fingerprint(to: &Target, text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    to.hash(&mut hasher);
    text.hash(&mut hasher);
    hasher.finish()
}

impl Dedup {
    /// An empty memory.
    pub fn new(now: Instant) -> Self {
        Self { users: HashMap::new(), total: 0, last_sweep: now }
    }

    /// Looks up a message; attaches `waiter` when the first copy is still being stored.
    pub fn check(&mut self, user: UserId, client_msg_id: u64, fingerprint: u64, waiter: Waiter) -> Seen {
        let Some(ids) = self.users.get_mut(&user) else { return Seen::New };
        if let Some(flight) = ids.in_flight.get_mut(&client_msg_id) {
            if flight.fingerprint != fingerprint || flight.waiters.len() >= MAX_WAITERS {
                return Seen::Refused;
            }
            flight.waiters.push(waiter);
            return Seen::Attached;
        }
        match ids.recent.get(&client_msg_id) {
            Some(r) if r.fingerprint == fingerprint => Seen::Stored { id: r.id, sent_at_ms: r.sent_at_ms },
            _ => Seen::New,
        }
    }

    /// The message went to the storage writer.
    pub fn submitted(&mut self, user: UserId, client_msg_id: u64, fingerprint: u64) {
        let ids = self.users.entry(user).or_default();
        ids.in_flight.insert(client_msg_id, InFlight { fingerprint, waiters: Vec::new() });
    }

    /// The writer finished with the message: `stored` is its id and time when it was stored. Returns the resends
    /// that wait for the same answer.
    pub fn finished(
        &mut self,
        user: UserId,
        client_msg_id: u64,
        fingerprint: u64,
        stored: Option<(MessageId, i64)>,
    ) -> Vec<Waiter> {
        let ids = self.users.entry(user).or_default();
        let waiters = ids.in_flight.remove(&client_msg_id).map(|f| f.waiters).unwrap_or_default();
        if let Some((id, sent_at_ms)) = stored {
            let before = ids.recent.len();
            ids.remember(client_msg_id, Remembered { fingerprint, id, sent_at_ms });
            self.total = (self.total + ids.recent.len()).saturating_sub(before);
        }
        waiters
    }

    /// The user has a session (again): keep their ids.
    pub fn user_online(&mut self, user: UserId, now: Instant) {
        if let Some(ids) = self.users.get_mut(&user) {
            ids.offline_since = None;
        }
        self.sweep(now);
    }

    /// The user's last session ended: their ids are kept for [`FORGET_OFFLINE_AFTER`].
    pub fn user_offline(&mut self, user: UserId, now: Instant) {
        if let Some(ids) = self.users.get_mut(&user) {
            ids.offline_since = Some(now);
        }
        self.sweep(now);
    }

    /// Forgets users offline for long enough (or at once, over the total bound). Runs at most every
    /// [`SWEEP_INTERVAL`] unless the total bound is exceeded.
    fn sweep(&mut self, now: Instant) {
        let over = self.total > MAX_REMEMBERED_TOTAL;
        if !over && now.saturating_duration_since(self.last_sweep) < SWEEP_INTERVAL {
            return;
        }
        self.last_sweep = now;
        // Messages still being stored are never forgotten: their answers are owed to someone.
        self.users.retain(|_, ids| match ids.offline_since {
            Some(since) if ids.in_flight.is_empty() => {
                !over && now.saturating_duration_since(since) < FORGET_OFFLINE_AFTER
            }
            _ => true,
        });
        self.total = self.users.values().map(|ids| ids.recent.len()).sum();
    }

    /// Stored messages remembered over all users.
    #[cfg(test)]
    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAITER: Waiter = Waiter { session: SessionRef { cid: 1, serial: 1 }, origin: Transport::Tcp };

    #[test]
    fn a_stored_message_is_recognised_and_a_different_one_is_not() {
        let t0 = Instant::now();
        let mut d = Dedup::new(t0);
        let fp = fingerprint(&Target::World, "hi");
        assert_eq!(d.check(1, 7, fp, WAITER), Seen::New);
        d.submitted(1, 7, fp);
        assert!(d.finished(1, 7, fp, Some((40, 5))).is_empty());
        assert_eq!(d.check(1, 7, fp, WAITER), Seen::Stored { id: 40, sent_at_ms: 5 });
        assert_eq!(d.check(2, 7, fp, WAITER), Seen::New, "ids are per user");
        assert_eq!(d.check(1, 7, fingerprint(&Target::World, "other"), WAITER), Seen::New, "reused id");
        assert_eq!(d.total(), 1);
    }

    #[test]
    fn resends_in_flight_wait_for_the_first_copy() {
        let mut d = Dedup::new(Instant::now());
        let fp = fingerprint(&Target::World, "hi");
        d.submitted(1, 7, fp);
        let udp = Waiter { origin: Transport::Udp, ..WAITER };
        assert_eq!(d.check(1, 7, fp, udp), Seen::Attached);
        assert_eq!(d.check(1, 7, fingerprint(&Target::World, "x"), WAITER), Seen::Refused);
        for _ in 1..MAX_WAITERS {
            assert_eq!(d.check(1, 7, fp, WAITER), Seen::Attached);
        }
        assert_eq!(d.check(1, 7, fp, WAITER), Seen::Refused, "too many copies");
        let waiters = d.finished(1, 7, fp, None);
        assert_eq!((waiters.len(), waiters[0]), (MAX_WAITERS, udp));
        assert_eq!(d.check(1, 7, fp, WAITER), Seen::New, "a refused message is not remembered");
    }

    #[test]
    fn memory_per_user_is_bounded_oldest_first() {
        let mut d = Dedup::new(Instant::now());
        for n in 0..=MAX_REMEMBERED_PER_USER as u64 {
            d.finished(1, n, 0, Some((n, 0)));
        }
        assert_eq!(d.total(), MAX_REMEMBERED_PER_USER);
        assert_eq!(d.check(1, 0, 0, WAITER), Seen::New);
        assert_eq!(d.check(1, 1, 0, WAITER), Seen::Stored { id: 1, sent_at_ms: 0 });
    }

    #[test]
    fn offline_users_are_forgotten_after_a_while() {
        let t0 = Instant::now();
        let mut d = Dedup::new(t0);
        d.finished(1, 7, 0, Some((1, 0)));
        d.finished(2, 7, 0, Some((2, 0)));
        d.user_offline(1, t0);
        d.user_offline(2, t0);
        d.user_online(2, t0 + SWEEP_INTERVAL);
        d.user_online(3, t0 + FORGET_OFFLINE_AFTER + SWEEP_INTERVAL);
        assert_eq!(d.check(1, 7, 0, WAITER), Seen::New, "offline too long");
        assert_eq!(d.check(2, 7, 0, WAITER), Seen::Stored { id: 2, sent_at_ms: 0 }, "came back in time");
        assert_eq!(d.total(), 1);
    }
}
