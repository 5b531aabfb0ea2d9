//! Rebuilding the de-duplication memory from storage at startup.
//!
//! The hub's table of recent `client_msg_id`s ([`super::dedup`]) is what turns a client's resend into the answer
//! "already stored, id N". A table that starts empty after a crash would forget exactly the messages that need
//! it most: those committed in the last moments before the crash, whose `Accepted` never reached the client. Those
//! messages are on disk with their `client_msg_id` (the writer stores the key in the message's own row, in the
//! same transaction), so the server reads them back here, once, before it accepts the first connection.
//!
//! ## What is read
//!
//! Only messages that a live table could still hold: sent within the last [`FORGET_OFFLINE_AFTER`], at most
//! [`MAX_REMEMBERED_PER_USER`] per sender (the newest) and [`MAX_REMEMBERED_TOTAL`] in all (the newest). Older
//! messages cannot be resent anyway: a client gives up on an unanswered message after 5 minutes, well inside the
//! window. Rows without a `client_msg_id` (stored before the schema recorded it) are skipped.
//!
//! ## How, without an index
//!
//! Ids grow in commit order and `sent_at_ms` is taken by the single writer when it commits, so the newest
//! messages are the ones with the largest ids. The loader walks the primary key backwards, a page of
//! [`SEED_PAGE`] messages at a time ([`Storage::newest_before`]), and stops at the first message older than the
//! window: it reads the last minutes of history plus at most one page, however long the history is, and needs
//! no index on the time (which every write would have to maintain). If the wall clock was stepped *forward*
//! while the server ran, messages sent before the step look older than they are and are not read; that only
//! shortens the window for a rare clock step and never stores anything twice that the old code did not.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::dedup::{
    Dedup, FORGET_OFFLINE_AFTER, MAX_REMEMBERED_PER_USER, MAX_REMEMBERED_TOTAL, SeedEntry, stored_fingerprint,
};
use crate::storage::{Storage, StorageError, UserId};

/// Messages read per storage call. A page is about a megabyte at the worst (4 KiB texts), which keeps memory low
/// while the startup reads at SQLite's pace rather than one call per message.
pub const SEED_PAGE: usize = 256;

/// How much of the past to read back.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Messages sent before this time (ms since the epoch, UTC) are not read.
    since_ms: i64,
    /// At most this many entries per sender.
    per_user: usize,
    /// At most this many entries in all.
    total: usize,
}

/// Reads the recent messages of `storage` and builds the hub's memory of their `client_msg_id`s. `now_ms` is the
/// wall clock (to compare with `sent_at_ms`), `now` the monotonic clock the hub's memory runs on; every sender
/// found counts as offline since `now`.
pub fn load_dedup(storage: &dyn Storage, now_ms: i64, now: Instant) -> Result<Dedup, StorageError> {
    let window_ms = i64::try_from(FORGET_OFFLINE_AFTER.as_millis()).unwrap_or(i64::MAX);
    let window = Window {
        since_ms: now_ms.saturating_sub(window_ms),
        per_user: MAX_REMEMBERED_PER_USER,
        total: MAX_REMEMBERED_TOTAL,
    };
    let entries = collect(storage, window)?;
    tracing::info!(remembered = entries.len(), "rebuilt the memory of recent client message ids");
    Ok(Dedup::seeded(entries, now))
}

/// The entries to remember, oldest first, as [`Dedup::seeded`] wants them.
fn collect(storage: &dyn Storage, window: Window) -> Result<Vec<SeedEntry>, StorageError> {
    let mut newest_first = Vec::new();
    // Newest first, an older message under an id already taken is the one a live table would have replaced.
    let mut taken: HashSet<(UserId, u64)> = HashSet::new();
    let mut per_user: HashMap<UserId, usize> = HashMap::new();
    let mut before = None;
    'pages: loop {
        let page = storage.newest_before(before, SEED_PAGE)?;
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        let short = page.len() < SEED_PAGE;
        for message in page {
            if message.sent_at_ms < window.since_ms || newest_first.len() >= window.total {
                break 'pages;
            }
            let Some(client_msg_id) = message.client_msg_id else { continue };
            let count = per_user.entry(message.from.id).or_insert(0);
            if *count >= window.per_user || !taken.insert((message.from.id, client_msg_id)) {
                continue;
            }
            *count += 1;
            newest_first.push(SeedEntry {
                user: message.from.id,
                client_msg_id,
                fingerprint: stored_fingerprint(&message),
                id: message.id,
                sent_at_ms: message.sent_at_ms,
            });
        }
        if short {
            break;
        }
    }
    newest_first.reverse();
    Ok(newest_first)
}

#[cfg(test)]
mod tests {
    use chatlab_proto::chat::{Target, Username};
    use chatlab_proto::control::Transport;

    use super::*;
    use crate::hub::dedup::{Seen, Waiter, fingerprint};
    use crate::hub::input::SessionRef;
    use crate::storage::{MemoryStorage, NewMessage, StoredTarget};

    const NOW_MS: i64 = 1_800_000_000_000;
    const WAITER: Waiter = Waiter { session: SessionRef { cid: 1, serial: 1 }, origin: Transport::Tcp };

    fn message(from: UserId, to: StoredTarget, text: &str, at: i64, client_msg_id: Option<u64>) -> NewMessage {
        NewMessage { from, to, text: text.to_owned(), sent_at_ms: at, client_msg_id }
    }

    fn window(since_ms: i64) -> Window {
        Window { since_ms, per_user: MAX_REMEMBERED_PER_USER, total: MAX_REMEMBERED_TOTAL }
    }

    /// The regression: a message committed just before a crash is resent to the restarted server with the same
    /// `client_msg_id`. The rebuilt memory answers it with the stored id instead of letting it be stored again;
    /// the same id with another text or target is still a new message.
    #[test]
    fn duplicate_storage_after_crash_resend_is_answered_with_the_stored_id() {
        let storage = MemoryStorage::new();
        let ann = storage.create_user("ann", "phc", 0).unwrap();
        let bob = storage.create_user("bob", "phc", 0).unwrap();
        let stored = storage
            .append_messages(&[
                message(ann.id, StoredTarget::World, "to everyone", NOW_MS - 1_000, Some(7)),
                message(ann.id, StoredTarget::User(bob.id), "to bob", NOW_MS - 500, Some(8)),
            ])
            .unwrap();
        let mut dedup = load_dedup(&storage, NOW_MS, Instant::now()).unwrap();
        let world = fingerprint(&Target::World, "to everyone");
        let to_bob = Target::User(Username::parse("bob").unwrap());
        assert_eq!(
            dedup.check(ann.id, 7, world, WAITER),
            Seen::Stored { id: stored[0].id, sent_at_ms: NOW_MS - 1_000 }
        );
        assert_eq!(
            dedup.check(ann.id, 8, fingerprint(&to_bob, "to bob"), WAITER),
            Seen::Stored { id: stored[1].id, sent_at_ms: NOW_MS - 500 }
        );
        assert_eq!(dedup.check(ann.id, 7, fingerprint(&Target::World, "edited"), WAITER), Seen::New);
        assert_eq!(dedup.check(ann.id, 8, fingerprint(&Target::World, "to bob"), WAITER), Seen::New);
        assert_eq!(dedup.check(bob.id, 7, world, WAITER), Seen::New, "ids are per sender");
    }

    #[test]
    fn only_the_window_is_read_and_rows_without_an_id_are_skipped() {
        let storage = MemoryStorage::new();
        let ann = storage.create_user("ann", "phc", 0).unwrap();
        let since = NOW_MS - 10_000;
        storage
            .append_messages(&[
                message(ann.id, StoredTarget::World, "too old", since - 1, Some(1)),
                message(ann.id, StoredTarget::World, "just in", since, Some(2)),
                message(ann.id, StoredTarget::World, "before the column", since + 1, None),
                message(ann.id, StoredTarget::World, "newest", since + 2, Some(3)),
            ])
            .unwrap();
        let entries = collect(&storage, window(since)).unwrap();
        let ids: Vec<u64> = entries.iter().map(|e| e.client_msg_id).collect();
        assert_eq!(ids, [2, 3], "oldest first, the window's edge included");
    }

    #[test]
    fn the_walk_spans_pages_and_keeps_the_newest_of_a_reused_id() {
        let storage = MemoryStorage::new();
        let ann = storage.create_user("ann", "phc", 0).unwrap();
        let count = SEED_PAGE * 2 + 3;
        let batch: Vec<NewMessage> = (0..count)
            .map(|n| message(ann.id, StoredTarget::World, &format!("m{n}"), NOW_MS, Some(n as u64 % 300)))
            .collect();
        let stored = storage.append_messages(&batch).unwrap();
        let entries = collect(&storage, window(0)).unwrap();
        assert_eq!(entries.len(), 300, "one entry per distinct id");
        let newest_of_zero = stored.iter().rev().find(|m| m.client_msg_id == Some(0)).unwrap();
        let zero = entries.iter().find(|e| e.client_msg_id == 0).unwrap();
        assert_eq!(zero.id, newest_of_zero.id);
        assert!(entries.windows(2).all(|pair| pair[0].id < pair[1].id), "oldest first");
    }

    #[test]
    fn the_per_user_and_total_bounds_keep_the_newest() {
        let storage = MemoryStorage::new();
        let ann = storage.create_user("ann", "phc", 0).unwrap();
        let bob = storage.create_user("bob", "phc", 0).unwrap();
        let batch: Vec<NewMessage> = (0..10)
            .map(|n| {
                let from = if n % 2 == 0 { ann.id } else { bob.id };
                message(from, StoredTarget::World, "x", NOW_MS, Some(n))
            })
            .collect();
        storage.append_messages(&batch).unwrap();
        let per_user = collect(&storage, Window { since_ms: 0, per_user: 2, total: 100 }).unwrap();
        let ids: Vec<u64> = per_user.iter().map(|e| e.client_msg_id).collect();
        assert_eq!(ids, [6, 7, 8, 9]);
        let total = collect(&storage, Window { since_ms: 0, per_user: 100, total: 3 }).unwrap();
        let ids: Vec<u64> = total.iter().map(|e| e.client_msg_id).collect();
        assert_eq!(ids, [7, 8, 9]);
    }

    #[test]
    fn an_empty_storage_gives_an_empty_memory() {
        let storage = MemoryStorage::new();
        assert!(collect(&storage, window(0)).unwrap().is_empty());
        let mut dedup = load_dedup(&storage, NOW_MS, Instant::now()).unwrap();
        assert_eq!(dedup.check(1, 1, 0, WAITER), Seen::New);
    }

    /// A storage that cannot be read stops the start-up with its error: a server that silently forgot its keys
    /// would store resends twice, the very bug this module exists for.
    #[test]
    fn a_storage_error_is_reported() {
        let storage = crate::storage::SqliteStorage::open_in_memory().unwrap();
        let alice = storage.create_user("alice", "phc", 0).unwrap();
        storage.append_messages(&[message(alice.id, StoredTarget::World, "x", NOW_MS, Some(1))]).unwrap();
        storage.execute_batch_for_test("DROP TABLE messages;");
        assert!(load_dedup(&storage, NOW_MS, Instant::now()).is_err());
    }
}
