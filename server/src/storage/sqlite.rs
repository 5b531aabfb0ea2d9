//! # The SQLite storage
//!
//! SQLite is a whole transactional SQL database in a library, storing everything in one file. It suits a chat
//! server run by a teacher: nothing to install or administer, and the file can be opened with the `sqlite3`
//! shell to see exactly what the server stored.
//!
//! ## Write-ahead log (WAL) and `synchronous=FULL`
//!
//! By default SQLite changes the database file in place and keeps a copy of the old pages in a rollback journal.
//! In **WAL mode** (`journal_mode=WAL`) it instead *appends* new pages to a separate log file, `chat.db-wal`; a
//! commit is one sequential append plus a commit record, and readers keep reading the old pages meanwhile, so
//! a history sync never waits for a writer. Now and then a *checkpoint* copies the logged pages back into the
//! main file.
//!
//! `synchronous` says when SQLite calls `fsync`, the system call that returns only once data has reached the
//! disk instead of the operating system's cache. With WAL:
//!
//! - `NORMAL` syncs only at checkpoints. The database cannot become corrupt, but after a power cut or kernel
//!   crash the most recent commits can be gone — commits that we already acknowledged to a sender.
//! - `FULL` syncs the log at **every commit**, so a transaction is durable when `COMMIT` returns.
//!
//! The server acknowledges a message only once it is stored, so it must be `FULL`. The price is one `fsync` per
//! commit, which is why [`Storage::append_messages`] takes a batch: group commit (see [`crate::storage`]) spreads
//! that `fsync` over every message that arrived while the previous one was running.
//!
//! ## One writing connection, a few reading ones
//!
//! SQLite lets many readers run at once but only ever **one writer** per database, so several writing connections
//! would not write any faster — writers would just queue on SQLite's lock instead of ours, with busy-retry loops.
//! All writes therefore go through one `Connection` behind a `Mutex`, which keeps its prepared-statement cache
//! warm: every query below is compiled once (`prepare_cached`) and reused. The point lookups (a user by name, the
//! largest id) take microseconds and use it too.
//!
//! History pages are different: a page is a range scan of up to 500 rows, a millisecond or more, and a class
//! syncing at login asks for thousands of them. Served through the writer's connection, they made every chat
//! acknowledgement wait for the pages ahead of it (20 ms instead of 1 ms with 32 sessions syncing). So range scans
//! run on a small pool of read-only connections ([`super::read_pool`]): WAL lets them read a consistent snapshot
//! while the writer commits, and the writer never waits for them.
//!
//! ## Queries that scale
//!
//! Every query is an index range scan that yields rows already in id order, so a page of `k` messages costs
//! O(log n + k) however long the history is, and syncing a whole history costs time linear in its size. The
//! tests check this with `EXPLAIN QUERY PLAN`: no full-table `SCAN`, no temporary B-tree for sorting. The query
//! "everything this user may see" is written as three disjoint branches — world messages, private messages the
//! user sent, private messages the user received — joined with `UNION ALL ... ORDER BY id LIMIT k`; SQLite
//! *merges* the three id-ordered index scans and stops after `k` rows, instead of collecting and sorting all
//! matching rows for every page.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{CachedStatement, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};

use super::migrations::{self, MIGRATIONS};
use super::read_pool::{READ_CONNECTIONS, ReadPool};
use super::{
    DeliveryReceipt, MessageId, NewMessage, Storage, StorageError, StoredMessage, StoredRecipient, StoredTarget,
    UserId, UserRecord, UserRef,
};

/// How long a statement waits for a lock held by *another* connection (a `sqlite3` shell, a backup tool, a
/// second server process by mistake) before failing with "database is locked". Such locks last milliseconds;
/// five seconds rides out a slow checkpoint or backup step yet still reports a lock that is really stuck.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept compiled. The storage uses about a dozen distinct statements; a larger cache
/// keeps all of them (and the migration and test statements) without evictions.
pub(super) const STATEMENT_CACHE_CAPACITY: usize = 32;

/// Unix permissions of a newly created database file: readable and writable by the server's user only. The
/// file holds password hashes and private messages. SQLite gives its `-wal` and `-shm` files the same mode.
#[cfg(unix)]
const DATABASE_FILE_MODE: u32 = 0o600;

/// Columns and joins shared by every message query; `m` is the message, `f` its sender, `t` its recipient.
macro_rules! select_messages {
    () => {
        "SELECT m.id, m.from_user, f.name, m.to_user, t.name, m.text, m.sent_at_ms, m.delivered_at_ms, \
         m.client_msg_id \
         FROM messages AS m JOIN users AS f ON f.id = m.from_user LEFT JOIN users AS t ON t.id = m.to_user "
    };
}

const INSERT_USER: &str = "INSERT INTO users (name, password_phc, created_at_ms) VALUES (?1, ?2, ?3) RETURNING id";

const FIND_USER: &str = "SELECT id, name, password_phc, created_at_ms FROM users WHERE name = ?1";

const UPDATE_PASSWORD_HASH: &str = "UPDATE users SET password_phc = ?2 WHERE id = ?1";

/// The `client_msg_id` is written by the same statement, in the same transaction, as the message it names: after
/// a crash both exist or neither does (see [`crate::storage`]).
const INSERT_MESSAGE: &str = "INSERT INTO messages (kind, from_user, to_user, text, sent_at_ms, client_msg_id) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const MESSAGE_BY_ID: &str = concat!(select_messages!(), "WHERE m.id = ?1");

/// ?1 = after id, ?2 = user, ?3 = limit. The branches are disjoint, so no message appears twice: a world message
/// is only in the first, a private message to oneself only in the second.
const SYNC_AFTER: &str = concat!(
    select_messages!(),
    "WHERE m.to_user IS NULL AND m.id > ?1 ",
    "UNION ALL ",
    select_messages!(),
    "WHERE m.from_user = ?2 AND m.to_user IS NOT NULL AND m.id > ?1 ",
    "UNION ALL ",
    select_messages!(),
    "WHERE m.to_user = ?2 AND m.from_user <> ?2 AND m.id > ?1 ",
    "ORDER BY 1 LIMIT ?3"
);

/// ?1 = largest id wanted, ?2 = limit; newest first (reversed by the caller).
const WORLD_BEFORE: &str =
    concat!(select_messages!(), "WHERE m.to_user IS NULL AND m.id <= ?1 ORDER BY m.id DESC LIMIT ?2");

/// ?1 = user, ?2 = peer, ?3 = largest id wanted, ?4 = limit; newest first. The second direction is skipped
/// when a user reads their conversation with themselves, where both directions are the same rows.
const PRIVATE_BEFORE: &str = concat!(
    select_messages!(),
    "WHERE m.from_user = ?1 AND m.to_user = ?2 AND m.id <= ?3 ",
    "UNION ALL ",
    select_messages!(),
    "WHERE m.from_user = ?2 AND m.to_user = ?1 AND ?1 <> ?2 AND m.id <= ?3 ",
    "ORDER BY 1 DESC LIMIT ?4"
);

/// ?1 = recipient, ?2 = after id, ?3 = limit. The `IS NULL` term lets SQLite use the small partial index of
/// undelivered messages.
const UNDELIVERED_TO: &str = concat!(
    select_messages!(),
    "WHERE m.to_user = ?1 AND m.delivered_at_ms IS NULL AND m.id > ?2 ORDER BY m.id LIMIT ?3"
);

/// ?1 = message id, ?2 = recipient, ?3 = now. Changes (and returns) the row only if it is still undelivered and
/// really addressed to this recipient, which makes every receipt happen once.
const MARK_DELIVERED: &str = "UPDATE messages SET delivered_at_ms = ?3 \
     WHERE id = ?1 AND to_user = ?2 AND delivered_at_ms IS NULL RETURNING from_user";

/// ?1 = largest id wanted, ?2 = limit; newest first, over the whole server. A backward walk of the primary key.
const NEWEST_BEFORE: &str = concat!(select_messages!(), "WHERE m.id <= ?1 ORDER BY m.id DESC LIMIT ?2");

const LATEST_MESSAGE_ID: &str = "SELECT COALESCE(MAX(id), 0) FROM messages";

/// Chat storage in one SQLite database file. See the module documentation for the design.
pub struct SqliteStorage {
    /// The one connection that writes (and answers point lookups).
    conn: Mutex<Connection>,
    /// Read-only connections for history pages; `None` for an in-memory database, which reads through `conn`.
    readers: Option<ReadPool>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage").finish_non_exhaustive()
    }
}

impl SqliteStorage {
    /// Opens (or creates) the database at `path`, creating its parent directory, and brings the schema up to
    /// date. Fails with [`StorageError::SchemaTooNew`] for a file from a newer server and
    /// [`StorageError::Corrupt`] for a file that is not a (healthy) SQLite database.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|source| StorageError::Io { path: parent.to_path_buf(), source })?;
        }
        create_private_file(path)?;
        let conn = Self::configure(Connection::open(path)?)?;
        // After the writer's connection has set WAL mode and brought the schema up to date.
        let readers = ReadPool::open(path, READ_CONNECTIONS)?;
        tracing::info!(path = %path.display(), readers = READ_CONNECTIONS, "opened chat database");
        Ok(Self { conn: Mutex::new(conn), readers: Some(readers) })
    }

    /// A database that lives in memory only, with the same schema and queries: for tests. It has no read pool.
    pub fn open_in_memory() -> Result<Self, StorageError> {
        let conn = Self::configure(Connection::open_in_memory()?)?;
        Ok(Self { conn: Mutex::new(conn), readers: None })
    }

    fn configure(mut conn: Connection) -> Result<Connection, StorageError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        // This is the first statement that reads the file, so a file that is not a database fails here.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            // Some network file systems cannot share WAL's memory map; SQLite then keeps its rollback journal,
            // which is just as durable with synchronous=FULL, only slower.
            tracing::warn!(%mode, "SQLite refused WAL mode; continuing with this journal mode");
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations::apply(&mut conn, MIGRATIONS)?;
        Ok(conn)
    }

    /// Takes the connection. A poisoned mutex (a thread panicked while holding it) is safe to reuse here: an
    /// open `Transaction` rolls back when the panic unwinds through it, so the connection is never left
    /// half-way through a change.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a history read on a pooled read-only connection, or on the one connection of an in-memory database.
    fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T, StorageError>) -> Result<T, StorageError> {
        match &self.readers {
            Some(pool) => pool.read(read),
            None => read(&self.lock()),
        }
    }

    /// Runs raw SQL on the connection, so tests of other modules can damage the database on purpose.
    #[cfg(test)]
    pub(crate) fn execute_batch_for_test(&self, sql: &str) {
        self.lock().execute_batch(sql).unwrap();
    }
}

/// Creates an empty database file with owner-only permissions if none exists (an empty file is a valid, empty
/// SQLite database). Elsewhere than Unix, SQLite creates the file itself with the platform's defaults.
fn create_private_file(path: &Path) -> Result<(), StorageError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(DATABASE_FILE_MODE).open(path);
        match created {
            Ok(_) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(source) => Err(StorageError::Io { path: path.to_path_buf(), source }),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Sorts SQLite errors into the cases callers act on; see [`StorageError`].
pub(crate) fn classify(error: rusqlite::Error) -> StorageError {
    let extended = error.sqlite_error().map(|e| e.extended_code);
    match (error.sqlite_error_code(), extended) {
        (_, Some(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)) => StorageError::UsernameTaken,
        (_, Some(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)) => StorageError::UnknownUser,
        (Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt), _) => StorageError::Corrupt(error),
        _ => StorageError::Sqlite(error),
    }
}

impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> Self {
        classify(error)
    }
}

/// A message row as SQLite returns it, before checking the values.
struct RawMessage {
    id: i64,
    from_id: i64,
    from_name: String,
    to_id: Option<i64>,
    to_name: Option<String>,
    text: String,
    sent_at_ms: i64,
    delivered_at_ms: Option<i64>,
    client_msg_id: Option<i64>,
}

impl RawMessage {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            from_id: row.get(1)?,
            from_name: row.get(2)?,
            to_id: row.get(3)?,
            to_name: row.get(4)?,
            text: row.get(5)?,
            sent_at_ms: row.get(6)?,
            delivered_at_ms: row.get(7)?,
            client_msg_id: row.get(8)?,
        })
    }

    fn into_stored(self) -> Result<StoredMessage, StorageError> {
        let to = match (self.to_id, self.to_name) {
            (None, _) => StoredRecipient::World,
            (Some(id), Some(name)) => StoredRecipient::User(UserRef { id, name }),
            (Some(id), None) => {
                return Err(StorageError::InvalidData(format!(
                    "message {} is addressed to missing user {id}",
                    self.id
                )));
            }
        };
        Ok(StoredMessage {
            id: stored_message_id(self.id)?,
            from: UserRef { id: self.from_id, name: self.from_name },
            to,
            text: self.text,
            sent_at_ms: self.sent_at_ms,
            delivered_at_ms: self.delivered_at_ms,
            client_msg_id: self.client_msg_id.map(client_msg_id_from_sql),
        })
    }
}

/// A message id read from the database; ids start at 1, so anything below is damage.
fn stored_message_id(raw: i64) -> Result<MessageId, StorageError> {
    MessageId::try_from(raw)
        .ok()
        .filter(|&id| id >= 1)
        .ok_or_else(|| StorageError::InvalidData(format!("invalid message id {raw}")))
}

/// A `client_msg_id` as SQLite stores it. The client may use any 64-bit unsigned number and SQLite integers are
/// signed 64-bit, so the bits are kept as they are (a reinterpretation, not a conversion that could fail or
/// clamp): every id round-trips exactly, and ids above `i64::MAX` simply read as negative in the `sqlite3` shell.
fn client_msg_id_to_sql(id: u64) -> i64 {
    i64::from_be_bytes(id.to_be_bytes())
}

/// The inverse of [`client_msg_id_to_sql`].
fn client_msg_id_from_sql(raw: i64) -> u64 {
    u64::from_be_bytes(raw.to_be_bytes())
}

/// `id > after` as an SQL bound; `None` when `after` is beyond every id SQLite can store, so nothing follows.
fn after_bound(after: MessageId) -> Option<i64> {
    i64::try_from(after).ok()
}

/// `id < before` rewritten as `id <= bound`; `None` when nothing can be older (`before` is 0 or 1).
fn at_most_bound(before: Option<MessageId>) -> Option<i64> {
    match before {
        None => Some(i64::MAX),
        Some(before) => {
            before.checked_sub(1).filter(|&bound| bound >= 1).map(|bound| i64::try_from(bound).unwrap_or(i64::MAX))
        }
    }
}

/// A page size as SQL wants it; a `usize` beyond `i64` means "no limit" anyway.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn collect_messages(
    stmt: &mut CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<StoredMessage>, StorageError> {
    let raw = stmt.query_map(params, RawMessage::from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    raw.into_iter().map(RawMessage::into_stored).collect()
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord { id: row.get(0)?, name: row.get(1)?, password_phc: row.get(2)?, created_at_ms: row.get(3)? })
}

impl Storage for SqliteStorage {
    fn create_user(&self, name: &str, password_phc: &str, now_ms: i64) -> Result<UserRecord, StorageError> {
        let conn = self.lock();
        let id = conn.prepare_cached(INSERT_USER)?.query_row((name, password_phc, now_ms), |row| row.get(0))?;
        Ok(UserRecord { id, name: name.to_owned(), password_phc: password_phc.to_owned(), created_at_ms: now_ms })
    }

    fn find_user(&self, name: &str) -> Result<Option<UserRecord>, StorageError> {
        let conn = self.lock();
        let user = conn.prepare_cached(FIND_USER)?.query_row([name], user_from_row).optional()?;
        Ok(user)
    }

    fn update_password_hash(&self, user: UserId, password_phc: &str) -> Result<(), StorageError> {
        let conn = self.lock();
        match conn.prepare_cached(UPDATE_PASSWORD_HASH)?.execute((user, password_phc))? {
            0 => Err(StorageError::UnknownUser),
            _ => Ok(()),
        }
    }

    fn append_messages(&self, batch: &[NewMessage]) -> Result<Vec<StoredMessage>, StorageError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.lock();
        // IMMEDIATE takes the write lock at BEGIN, so a concurrent writer in another process makes us wait
        // (busy timeout) up front instead of failing half-way through the batch.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut stored = Vec::with_capacity(batch.len());
        {
            let mut insert = tx.prepare_cached(INSERT_MESSAGE)?;
            let mut by_id = tx.prepare_cached(MESSAGE_BY_ID)?;
            for message in batch {
                let (kind, to_user) = match message.to {
                    StoredTarget::World => ("world", None),
                    StoredTarget::User(id) => ("private", Some(id)),
                };
                let client_msg_id = message.client_msg_id.map(client_msg_id_to_sql);
                insert.execute((kind, message.from, to_user, &message.text, message.sent_at_ms, client_msg_id))?;
                let id = tx.last_insert_rowid();
                let raw = by_id.query_row([id], RawMessage::from_row)?;
                stored.push(raw.into_stored()?);
            }
        }
        // With synchronous=FULL this returns only after the log is fsynced: the batch is durable.
        tx.commit()?;
        Ok(stored)
    }

    fn sync_after(&self, user: UserId, after_id: MessageId, limit: usize) -> Result<Vec<StoredMessage>, StorageError> {
        let Some(after) = after_bound(after_id).filter(|_| limit > 0) else {
            return Ok(Vec::new());
        };
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(SYNC_AFTER)?;
            collect_messages(&mut stmt, (after, user, sql_limit(limit)))
        })
    }

    fn conversation_before(
        &self,
        user: UserId,
        peer: StoredTarget,
        before_id: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let Some(at_most) = at_most_bound(before_id).filter(|_| limit > 0) else {
            return Ok(Vec::new());
        };
        let mut newest_first = self.read(|conn| match peer {
            StoredTarget::World => {
                let mut stmt = conn.prepare_cached(WORLD_BEFORE)?;
                collect_messages(&mut stmt, (at_most, sql_limit(limit)))
            }
            StoredTarget::User(peer) => {
                let mut stmt = conn.prepare_cached(PRIVATE_BEFORE)?;
                collect_messages(&mut stmt, (user, peer, at_most, sql_limit(limit)))
            }
        })?;
        newest_first.reverse();
        Ok(newest_first)
    }

    fn undelivered_to(
        &self,
        recipient: UserId,
        after_id: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let Some(after) = after_bound(after_id).filter(|_| limit > 0) else {
            return Ok(Vec::new());
        };
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(UNDELIVERED_TO)?;
            collect_messages(&mut stmt, (recipient, after, sql_limit(limit)))
        })
    }

    fn mark_delivered(
        &self,
        recipient: UserId,
        message_ids: &[MessageId],
        now_ms: i64,
    ) -> Result<Vec<DeliveryReceipt>, StorageError> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut receipts = Vec::new();
        {
            let mut mark = tx.prepare_cached(MARK_DELIVERED)?;
            for &message_id in message_ids {
                // An id beyond i64 cannot exist in the table; skipping it is "ignore unknown ids".
                let Ok(sql_id) = i64::try_from(message_id) else {
                    continue;
                };
                let sender: Option<UserId> =
                    mark.query_row((sql_id, recipient, now_ms), |row| row.get(0)).optional()?;
                if let Some(sender) = sender {
                    receipts.push(DeliveryReceipt { message_id, sender, delivered_at_ms: now_ms });
                }
            }
        }
        tx.commit()?;
        Ok(receipts)
    }

    fn newest_before(&self, before_id: Option<MessageId>, limit: usize) -> Result<Vec<StoredMessage>, StorageError> {
        let Some(at_most) = at_most_bound(before_id).filter(|_| limit > 0) else {
            return Ok(Vec::new());
        };
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(NEWEST_BEFORE)?;
            collect_messages(&mut stmt, (at_most, sql_limit(limit)))
        })
    }

    fn latest_message_id(&self) -> Result<MessageId, StorageError> {
        let conn = self.lock();
        let raw: i64 = conn.prepare_cached(LATEST_MESSAGE_ID)?.query_row([], |row| row.get(0))?;
        if raw == 0 {
            return Ok(0);
        }
        stored_message_id(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance;

    fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("chat.db");
        (dir, path)
    }

    fn world(from: UserId, text: &str, at: i64) -> NewMessage {
        NewMessage { from, to: StoredTarget::World, text: text.to_owned(), sent_at_ms: at, client_msg_id: None }
    }

    #[test]
    fn conformance_suite() {
        conformance::run_all(&|| SqliteStorage::open_in_memory().unwrap());
    }

    /// The same contract on real files, so the WAL and fsync path runs through every case, including the
    /// 20 000-message history.
    #[test]
    fn conformance_suite_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let counter = std::sync::atomic::AtomicUsize::new(0);
        conformance::run_all(&|| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            SqliteStorage::open(dir.path().join(format!("case-{n}.db"))).unwrap()
        });
    }

    #[test]
    fn open_creates_parent_directory_and_sets_wal_and_full_sync() {
        let (_dir, path) = temp_db();
        let storage = SqliteStorage::open(&path).unwrap();
        assert!(path.exists());
        let conn = storage.lock();
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        // 2 = FULL.
        let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
        assert_eq!(sync, 2);
        let fk: i64 = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();
        assert_eq!(fk, 1);
    }

    #[cfg(unix)]
    #[test]
    fn new_database_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, path) = temp_db();
        let _storage = SqliteStorage::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, DATABASE_FILE_MODE);
    }

    #[test]
    fn everything_survives_close_and_reopen() {
        let (_dir, path) = temp_db();
        let (alice, bob, stored) = {
            let storage = SqliteStorage::open(&path).unwrap();
            let alice = storage.create_user("alice", "$phc$a", 1).unwrap();
            let bob = storage.create_user("bob", "$phc$b", 2).unwrap();
            let stored = storage
                .append_messages(&[
                    world(alice.id, "hello world", 10),
                    NewMessage {
                        from: alice.id,
                        to: StoredTarget::User(bob.id),
                        text: "psst, bob".to_owned(),
                        sent_at_ms: 11,
                        client_msg_id: Some(u64::MAX),
                    },
                ])
                .unwrap();
            storage.mark_delivered(bob.id, &[stored[1].id], 12).unwrap();
            (alice, bob, stored)
        };
        let reopened = SqliteStorage::open(&path).unwrap();
        assert_eq!(reopened.find_user("alice").unwrap(), Some(alice.clone()));
        assert_eq!(reopened.find_user("bob").unwrap(), Some(bob.clone()));
        let synced = reopened.sync_after(bob.id, 0, 10).unwrap();
        let mut expected = stored.clone();
        expected[1].delivered_at_ms = Some(12);
        assert_eq!(synced, expected);
        assert_eq!(reopened.latest_message_id().unwrap(), stored[1].id);
        // New ids continue after the old ones.
        let next = reopened.append_messages(&[world(bob.id, "back", 20)]).unwrap();
        assert!(next[0].id > stored[1].id);
    }

    #[test]
    fn reopen_does_not_rerun_migrations() {
        let (_dir, path) = temp_db();
        drop(SqliteStorage::open(&path).unwrap());
        let storage = SqliteStorage::open(&path).unwrap();
        let mut conn = storage.lock();
        assert_eq!(migrations::apply(&mut conn, MIGRATIONS).unwrap(), 0);
        assert_eq!(migrations::read_version(&conn).unwrap(), migrations::SCHEMA_VERSION);
    }

    #[test]
    fn database_from_a_newer_server_is_refused() {
        let (_dir, path) = temp_db();
        drop(SqliteStorage::open(&path).unwrap());
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", 1000).unwrap();
        }
        let err = SqliteStorage::open(&path).unwrap_err();
        assert!(
            matches!(err, StorageError::SchemaTooNew { found: 1000, supported } if supported == migrations::SCHEMA_VERSION),
            "{err:?}"
        );
        assert!(err.to_string().contains("1000"));
    }

    #[test]
    fn garbage_file_is_reported_corrupt_not_a_panic() {
        let (_dir, path) = temp_db();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"this is a chat log from the old Python server, not SQLite\n".repeat(100)).unwrap();
        let err = SqliteStorage::open(&path).unwrap_err();
        assert!(matches!(err, StorageError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn damaged_pages_are_reported_corrupt_not_a_panic() {
        let (_dir, path) = temp_db();
        {
            let storage = SqliteStorage::open(&path).unwrap();
            let alice = storage.create_user("alice", "$phc", 1).unwrap();
            let batch: Vec<_> = (0..500).map(|i| world(alice.id, "some text to fill pages", i)).collect();
            storage.append_messages(&batch).unwrap();
            // Fold the log into the main file so the damage below hits the only copy.
            storage.lock().execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let page_size = 4096;
        assert!(bytes.len() > 3 * page_size);
        // Overwrite everything after the first page (the header and schema stay readable).
        for byte in bytes.iter_mut().skip(page_size) {
            *byte = 0xA5;
        }
        std::fs::write(&path, &bytes).unwrap();
        let outcome = SqliteStorage::open(&path).and_then(|storage| storage.sync_after(1, 0, 1000));
        assert!(matches!(outcome, Err(StorageError::Corrupt(_))), "{outcome:?}");
    }

    #[test]
    fn parent_path_that_is_a_file_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"x").unwrap();
        let err = SqliteStorage::open(blocker.join("chat.db")).unwrap_err();
        assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    }

    #[test]
    fn other_sqlite_failures_are_reported_as_sqlite_errors() {
        let storage = SqliteStorage::open_in_memory().unwrap();
        storage.lock().execute_batch("DROP TABLE messages;").unwrap();
        let err = storage.latest_message_id().unwrap_err();
        assert!(matches!(err, StorageError::Sqlite(_)), "{err:?}");
    }

    #[test]
    fn impossible_stored_values_are_invalid_data() {
        let storage = SqliteStorage::open_in_memory().unwrap();
        let alice = storage.create_user("alice", "$phc", 1).unwrap();
        storage
            .lock()
            .execute(
                "INSERT INTO messages (id, kind, from_user, text, sent_at_ms) VALUES (-5, 'world', ?1, 'x', 1)",
                [alice.id],
            )
            .unwrap();
        let err = storage.conversation_before(alice.id, StoredTarget::World, None, 10).unwrap_err();
        assert!(matches!(err, StorageError::InvalidData(_)), "{err:?}");

        let other = SqliteStorage::open_in_memory().unwrap();
        other
            .lock()
            .execute_batch(
                "PRAGMA foreign_keys = OFF; \
                 INSERT INTO users (id, name, password_phc, created_at_ms) VALUES (1, 'a', 'p', 1); \
                 INSERT INTO messages (kind, from_user, to_user, text, sent_at_ms) VALUES ('private', 1, 99, 'x', 1);",
            )
            .unwrap();
        let err = other.sync_after(1, 0, 10).unwrap_err();
        assert!(matches!(err, StorageError::InvalidData(_)), "{err:?}");
    }

    #[test]
    fn bounds_never_overflow() {
        assert_eq!(after_bound(0), Some(0));
        assert_eq!(after_bound(u64::MAX), None);
        assert_eq!(at_most_bound(None), Some(i64::MAX));
        assert_eq!(at_most_bound(Some(0)), None);
        assert_eq!(at_most_bound(Some(1)), None);
        assert_eq!(at_most_bound(Some(2)), Some(1));
        assert_eq!(at_most_bound(Some(u64::MAX)), Some(i64::MAX));
        assert_eq!(sql_limit(usize::MAX), i64::MAX);
        assert_eq!(sql_limit(7), 7);
        assert!(stored_message_id(0).is_err());
        assert!(stored_message_id(-1).is_err());
        assert_eq!(stored_message_id(3).unwrap(), 3);
    }

    proptest::proptest! {
        /// Every `client_msg_id` a client can choose survives the trip through SQLite's signed integers.
        #[test]
        fn client_msg_id_sql_encoding_round_trips(id in proptest::prelude::any::<u64>()) {
            proptest::prop_assert_eq!(client_msg_id_from_sql(client_msg_id_to_sql(id)), id);
        }
    }

    #[test]
    fn client_msg_id_sql_encoding_keeps_the_bits() {
        assert_eq!(client_msg_id_to_sql(7), 7);
        assert_eq!(client_msg_id_to_sql(u64::MAX), -1);
        assert_eq!(client_msg_id_to_sql(1 << 63), i64::MIN);
        assert_eq!(client_msg_id_from_sql(-1), u64::MAX);
    }

    /// The plan SQLite chose for `sql` with these parameters, one line per step.
    fn plan(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        stmt.query_map(params, |row| row.get::<_, String>(3)).unwrap().collect::<rusqlite::Result<Vec<_>>>().unwrap()
    }

    fn assert_index_only(name: &str, steps: &[String]) {
        for step in steps {
            // A step that reads `messages` without an index would be "SCAN m".
            assert!(!step.starts_with("SCAN m"), "{name}: full scan in {steps:#?}");
            assert!(!step.contains("TEMP B-TREE"), "{name}: sort in {steps:#?}");
        }
        assert!(
            steps.iter().any(|s| s.contains("USING INDEX") || s.contains("INTEGER PRIMARY KEY")),
            "{name}: {steps:#?}"
        );
    }

    #[test]
    fn every_history_query_is_an_ordered_index_scan() {
        let storage = SqliteStorage::open_in_memory().unwrap();
        let conn = storage.lock();
        // ANALYZE-free plans are what a fresh server gets, so test exactly those.
        let sync = plan(&conn, SYNC_AFTER, (0, 1, 100));
        assert_index_only("sync_after", &sync);
        assert!(sync.iter().any(|s| s.contains("MERGE")), "{sync:#?}");
        assert_index_only("world_before", &plan(&conn, WORLD_BEFORE, (100, 100)));
        assert_index_only("private_before", &plan(&conn, PRIVATE_BEFORE, (1, 2, 100, 100)));
        let undelivered = plan(&conn, UNDELIVERED_TO, (1, 0, 100));
        assert_index_only("undelivered_to", &undelivered);
        assert!(undelivered.iter().any(|s| s.contains("messages_undelivered")), "{undelivered:#?}");
        assert_index_only("mark_delivered", &plan(&conn, MARK_DELIVERED, (1, 2, 3)));
        assert_index_only("message_by_id", &plan(&conn, MESSAGE_BY_ID, [1]));
        // The startup scan for de-duplication walks the primary key backwards: no index of its own, no sort.
        assert_index_only("newest_before", &plan(&conn, NEWEST_BEFORE, (100, 100)));
        assert_index_only("find_user", &plan(&conn, FIND_USER, ["alice"]));
    }

    /// How long a test waits for a read that must not be blocked before declaring it blocked (a hang detector, not
    /// a speed limit: the read takes microseconds).
    const PATIENCE: Duration = Duration::from_secs(15);

    /// The bug: reads and writes shared one connection lock, so while a write transaction was open (a group commit
    /// waiting for its `fsync`) every history page waited, and while pages were read every acknowledgement waited.
    /// Here a write transaction stays open, holding the writer's connection, while another thread reads history.
    #[test]
    fn history_reads_do_not_wait_for_an_open_write_transaction() {
        let (_dir, path) = temp_db();
        let storage = std::sync::Arc::new(SqliteStorage::open(&path).unwrap());
        let alice = storage.create_user("alice", "$phc", 1).unwrap();
        storage.append_messages(&[world(alice.id, "committed", 1)]).unwrap();

        let mut writer = storage.lock();
        let tx = writer.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
        tx.execute(INSERT_MESSAGE, ("world", alice.id, None::<i64>, "not yet committed", 2, None::<i64>)).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        let reader = std::sync::Arc::clone(&storage);
        std::thread::spawn(move || {
            let synced = reader.sync_after(alice.id, 0, 10).unwrap();
            let scrolled = reader.conversation_before(alice.id, StoredTarget::World, None, 10).unwrap();
            let _ = done.send((synced, scrolled));
        });
        let (synced, scrolled) = finished.recv_timeout(PATIENCE).expect("the read waited for the writer");
        assert_eq!(synced.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["committed"], "a snapshot");
        assert_eq!(scrolled.len(), 1);
        tx.commit().unwrap();
        drop(writer);
        assert_eq!(storage.sync_after(alice.id, 0, 10).unwrap().len(), 2, "the next read sees the commit");
    }

    #[test]
    fn pooled_connections_cannot_write() {
        let (_dir, path) = temp_db();
        let storage = SqliteStorage::open(&path).unwrap();
        let pool = storage.readers.as_ref().unwrap();
        for _ in 0..READ_CONNECTIONS {
            let outcome = pool.read(|conn| Ok(conn.execute("DELETE FROM messages", [])?));
            assert!(matches!(outcome, Err(StorageError::Sqlite(_))), "{outcome:?}");
        }
    }

    #[test]
    fn a_read_waits_for_a_pooled_connection_instead_of_failing() {
        let (_dir, path) = temp_db();
        drop(SqliteStorage::open(&path).unwrap());
        let pool = std::sync::Arc::new(ReadPool::open(&path, 1).unwrap());
        let (holding, held) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn({
            let pool = std::sync::Arc::clone(&pool);
            move || {
                pool.read(|_| {
                    holding.send(()).unwrap();
                    released.recv().unwrap();
                    Ok(())
                })
            }
        });
        held.recv().unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn({
            let pool = std::sync::Arc::clone(&pool);
            move || done.send(pool.read(|conn| Ok(conn.query_row("SELECT 7", [], |row| row.get::<_, i64>(0))?)))
        });
        assert!(finished.try_recv().is_err(), "the only connection is lent out");
        release.send(()).unwrap();
        holder.join().unwrap().unwrap();
        assert_eq!(finished.recv_timeout(PATIENCE).unwrap().unwrap(), 7);
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn a_panicking_read_gives_its_connection_back() {
        let (_dir, path) = temp_db();
        drop(SqliteStorage::open(&path).unwrap());
        let pool = ReadPool::open(&path, 1).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = pool.read(|_| -> Result<(), StorageError> { panic!("a bug in a query") });
        }));
        assert!(panicked.is_err());
        assert_eq!(pool.read(|conn| Ok(conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?)).unwrap(), 1);
    }

    #[test]
    fn many_threads_share_one_storage() {
        let storage = std::sync::Arc::new(SqliteStorage::open_in_memory().unwrap());
        let alice = storage.create_user("alice", "$phc", 1).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let storage = std::sync::Arc::clone(&storage);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        storage.append_messages(&[world(alice.id, &format!("{t}-{i}"), i)]).unwrap();
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        let all = storage.sync_after(alice.id, 0, 1000).unwrap();
        assert_eq!(all.len(), 200);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    }
}
