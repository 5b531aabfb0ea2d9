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
//!
//! ## Surviving a crash: the key is stored with the data it protects
//!
//! An idempotency key only works if the receiver can never remember the *action* while forgetting the *key*.
//! Kept in this table alone, the keys died with the process, while the messages they named were safe in SQLite:
//! a server killed after a commit and before the `Accepted` left (a crash, `SIGKILL`, a power cut) came back
//! without the key, and the client's resend — its outbox keeps unanswered messages for minutes and sends them
//! after the reconnect — was stored a second time. So the key is now durable *with* the message: the writer
//! stores each `client_msg_id` in the message's own row, in the same transaction
//! ([`crate::storage::NewMessage::client_msg_id`]), and after a crash either both are on disk or neither is.
//!
//! At startup, before the server accepts a connection, [`super::seed`] reads back the messages of the last
//! [`FORGET_OFFLINE_AFTER`] and rebuilds this table from them ([`Dedup::seeded`]), within the same bounds as a
//! live table. Every user found there is treated as *offline since the restart*: the crash ended all their
//! sessions, and the clock that forgets offline users starts, as for a live server, when a user's sessions ended
//! — the restart being the earliest moment this process can observe (it cannot know how long it was down, and
//! erring late only keeps a few ids a little longer). A user who logs in again keeps their ids, as always.
//!
//! For that, the fingerprint of a message read back from the database must equal the one computed when it
//! arrived, possibly by an older build of the server. [`fingerprint`] is therefore a *specified* function of the
//! bytes — SHA-256 over a fixed encoding of the target and text, see [`fingerprint_parts`] — not std's
//! `DefaultHasher`, whose algorithm Rust does not promise to keep between releases (an upgrade would then have
//! turned every resend after a restart into a new message).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chatlab_proto::chat::Target;
use chatlab_proto::control::Transport;
use sha2::{Digest, Sha256};

use super::input::SessionRef;
use crate::storage::{MessageId, StoredMessage, StoredRecipient, UserId};

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

/// Prefix of every fingerprinted input: names the purpose and the encoding version, so these digests can never
/// be confused with SHA-256 of anything else, and a future encoding would start with `v2`.
const FINGERPRINT_DOMAIN: &[u8] = b"chatlab/dedup-fingerprint/v1";

/// The first byte of the encoded target: the world room.
const TARGET_WORLD: u8 = 0;

/// The first byte of the encoded target: one user, followed by the name's length and bytes.
const TARGET_USER: u8 = 1;

/// A fingerprint of a message's target and text, to tell a resend from a new message under a reused id.
pub fn fingerprint(to: &Target, text: &str) -> u64 {
    match to {
        Target::World => fingerprint_parts(None, text),
        Target::User(name) => fingerprint_parts(Some(name.as_str()), text),
    }
}

/// The fingerprint of a message read back from storage: the same value [`fingerprint`] gave when it arrived,
/// because storage keeps the recipient's name exactly as the hub saw it (validated and case-folded).
pub fn stored_fingerprint(message: &StoredMessage) -> u64 {
    match &message.to {
        StoredRecipient::World => fingerprint_parts(None, &message.text),
        StoredRecipient::User(to) => fingerprint_parts(Some(&to.name), &message.text),
    }
}

/// The fingerprint, specified byte for byte so that it is stable across builds and Rust releases: the first
/// 8 bytes, big-endian, of
///
/// ```text
/// SHA-256( "chatlab/dedup-fingerprint/v1" || 0x00 || text )                           world room
/// SHA-256( "chatlab/dedup-fingerprint/v1" || 0x01 || len(name) as u32 BE || name || text )   one user
/// ```
///
/// The name's length makes the encoding unambiguous (no name/text split gives another message's bytes), and
/// 64 bits make a false "same message" for a reused id a 1-in-2^64 event. It is not a secret or a MAC: only the
/// message's own sender can use their ids, so there is nobody to forge a collision against.
pub fn fingerprint_parts(to_user: Option<&str>, text: &str) -> u64 {
    let mut hash = Sha256::new();
    hash.update(FINGERPRINT_DOMAIN);
    match to_user {
        None => hash.update([TARGET_WORLD]),
        Some(name) => {
            hash.update([TARGET_USER]);
            // Names are at most 32 bytes; a length beyond u32 cannot occur, and saturating keeps it total.
            hash.update(u32::try_from(name.len()).unwrap_or(u32::MAX).to_be_bytes());
            hash.update(name.as_bytes());
        }
    }
    hash.update(text.as_bytes());
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    for (out, byte) in first.iter_mut().zip(digest.iter()) {
        *out = *byte;
    }
    u64::from_be_bytes(first)
}

/// One stored message to remember when the memory is rebuilt at startup (see [`Dedup::seeded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedEntry {
    /// The sender.
    pub user: UserId,
    /// The sender's name for the message.
    pub client_msg_id: u64,
    /// [`stored_fingerprint`] of the message.
    pub fingerprint: u64,
    /// The stored id.
    pub id: MessageId,
    /// When it was stored.
    pub sent_at_ms: i64,
}

impl Dedup {
    /// An empty memory.
    pub fn new(now: Instant) -> Self {
        Self { users: HashMap::new(), total: 0, last_sweep: now }
    }

    /// A memory rebuilt from stored messages at startup, `entries` **oldest first** (so that, as in a live table,
    /// the newest entry for a reused id wins and the per-user bound drops the oldest). Every user in it counts as
    /// offline since `now`, the restart (see the module documentation); the bounds hold as for a live table.
    pub fn seeded(entries: impl IntoIterator<Item = SeedEntry>, now: Instant) -> Self {
        let mut dedup = Self::new(now);
        for entry in entries {
            if dedup.total >= MAX_REMEMBERED_TOTAL {
                break;
            }
            let ids = dedup.users.entry(entry.user).or_default();
            ids.offline_since = Some(now);
            let before = ids.recent.len();
            let remembered = Remembered { fingerprint: entry.fingerprint, id: entry.id, sent_at_ms: entry.sent_at_ms };
            ids.remember(entry.client_msg_id, remembered);
            dedup.total = (dedup.total + ids.recent.len()).saturating_sub(before);
        }
        dedup
    }

    /// Whether `user` has used `client_msg_id` for a message stored recently or being stored: the one cheap
    /// question to ask before hashing a text for [`check`](Self::check). A map lookup by id, nothing more.
    pub fn knows(&self, user: UserId, client_msg_id: u64) -> bool {
        self.users
            .get(&user)
            .is_some_and(|ids| ids.in_flight.contains_key(&client_msg_id) || ids.recent.contains_key(&client_msg_id))
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

    /// Known answers computed independently (Python's `hashlib`, and `printf ... | sha256sum` for the first):
    /// a future build, or a future Rust, must compute the same fingerprints or dedup breaks across an upgrade.
    #[test]
    fn fingerprint_is_stable_sha256_known_answers() {
        assert_eq!(fingerprint_parts(None, "hi"), 0x8898_32a9_4094_9fdf);
        assert_eq!(fingerprint_parts(Some("bob"), "hi"), 0x5510_b30e_e928_0824);
        assert_eq!(fingerprint_parts(None, "你好"), 0x4414_7e23_ba5e_4242);
        let bob = Target::User(chatlab_proto::chat::Username::parse("bob").unwrap());
        assert_eq!(fingerprint(&bob, "hi"), fingerprint_parts(Some("bob"), "hi"));
        assert_eq!(fingerprint(&Target::World, "hi"), fingerprint_parts(None, "hi"));
    }

    #[test]
    fn fingerprint_encoding_is_unambiguous() {
        // Moving bytes between the name and the text, or between world and a user, changes the fingerprint.
        assert_ne!(fingerprint_parts(Some("ab"), "c"), fingerprint_parts(Some("a"), "bc"));
        assert_ne!(fingerprint_parts(None, "hi"), fingerprint_parts(Some(""), "hi"));
        assert_ne!(fingerprint_parts(None, "hi"), fingerprint_parts(None, "hi "));
    }

    #[test]
    fn a_stored_message_has_the_fingerprint_it_arrived_with() {
        use crate::storage::UserRef;
        let stored = StoredMessage {
            id: 3,
            from: UserRef { id: 1, name: "ann".into() },
            to: StoredRecipient::User(UserRef { id: 2, name: "bob".into() }),
            text: "hello".into(),
            sent_at_ms: 0,
            delivered_at_ms: None,
            client_msg_id: Some(9),
        };
        let bob = Target::User(chatlab_proto::chat::Username::parse("bob").unwrap());
        assert_eq!(stored_fingerprint(&stored), fingerprint(&bob, "hello"));
        let world = StoredMessage { to: StoredRecipient::World, ..stored };
        assert_eq!(stored_fingerprint(&world), fingerprint(&Target::World, "hello"));
    }

    fn entry(user: UserId, client_msg_id: u64, id: MessageId) -> SeedEntry {
        SeedEntry { user, client_msg_id, fingerprint: 0, id, sent_at_ms: 0 }
    }

    #[test]
    fn seeded_memory_answers_resends_and_newest_wins() {
        let t0 = Instant::now();
        let mut d = Dedup::seeded([entry(1, 7, 10), entry(2, 7, 11), entry(1, 7, 12)], t0);
        assert_eq!(d.check(1, 7, 0, WAITER), Seen::Stored { id: 12, sent_at_ms: 0 }, "the newer of a reused id");
        assert_eq!(d.check(2, 7, 0, WAITER), Seen::Stored { id: 11, sent_at_ms: 0 });
        assert_eq!(d.check(1, 7, 1, WAITER), Seen::New, "another fingerprint");
        assert_eq!(d.total(), 2);
    }

    #[test]
    fn seeded_users_are_forgotten_like_offline_users_from_the_restart() {
        let t0 = Instant::now();
        let mut d = Dedup::seeded([entry(1, 7, 1), entry(2, 7, 2)], t0);
        // User 2 logs in within the window and keeps their ids; user 1 never comes back and is forgotten.
        d.user_online(2, t0 + SWEEP_INTERVAL);
        d.user_online(3, t0 + FORGET_OFFLINE_AFTER + SWEEP_INTERVAL);
        assert_eq!(d.check(1, 7, 0, WAITER), Seen::New);
        assert_eq!(d.check(2, 7, 0, WAITER), Seen::Stored { id: 2, sent_at_ms: 0 });
        assert_eq!(d.total(), 1);
    }

    #[test]
    fn seeded_memory_keeps_the_per_user_bound() {
        let entries = (0..=MAX_REMEMBERED_PER_USER as u64).map(|n| entry(1, n, n + 1));
        let mut d = Dedup::seeded(entries, Instant::now());
        assert_eq!(d.total(), MAX_REMEMBERED_PER_USER);
        assert_eq!(d.check(1, 0, 0, WAITER), Seen::New, "the oldest was dropped");
        assert_eq!(d.check(1, 1, 0, WAITER), Seen::Stored { id: 2, sent_at_ms: 0 });
    }
}
