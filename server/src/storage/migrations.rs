//! # Schema migrations
//!
//! A database outlives the program that created it: next term's server will open this term's file. The schema
//! therefore evolves by **migrations** — an ordered list of SQL steps, each taking the schema from version
//! *n − 1* to *n*. The file records which version it is at; opening it applies the missing steps, in order.
//!
//! SQLite gives every database file a free 32-bit integer in its header, `PRAGMA user_version` (0 in a new
//! file), which we use as that version number. Each step runs in its own transaction together with the update
//! of `user_version`, so a crash or an error in the middle of a step leaves the file at the previous version
//! with none of the step's changes (SQLite's DDL is transactional, unlike that of some other databases). The
//! transaction is `BEGIN IMMEDIATE`, which takes the write lock *before* reading the version, so two processes
//! opening the same new file cannot both apply the same step.
//!
//! Reopening an up-to-date file applies nothing (idempotent). A file whose version is *newer* than the last step
//! this build knows was written by a newer server; we refuse to touch it ([`StorageError::SchemaTooNew`])
//! rather than run old code against a schema it does not understand.
//!
//! Rules for whoever adds a step: never edit a step that has shipped (files in the wild already ran it); append a
//! new one with the next version number.

use rusqlite::{Connection, TransactionBehavior};

use super::StorageError;

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    /// The schema version this step produces; steps are numbered 1, 2, 3, ... without gaps.
    pub version: u32,
    /// What the step does, for the log.
    pub description: &'static str,
    /// The SQL, possibly several statements.
    pub sql: &'static str,
}

/// Version 1: accounts and messages.
///
/// - `STRICT` tables make SQLite enforce the declared column types instead of storing whatever it is given.
/// - `messages.id` is `AUTOINCREMENT`: SQLite then never reuses an id, even one of a deleted row. Clients sync
///   "everything after the last id I have", so a reused id would make them skip a message.
/// - `kind` duplicates what `to_user IS NULL` says; the `CHECK` keeps the two consistent and makes the table
///   readable in the `sqlite3` shell.
/// - Indexes, each matching one query so every page is an index range scan in id order, never a table scan or
///   a sort:
///   - `messages_by_recipient (to_user, id)`: the world room (`to_user IS NULL`) and a user's inbox;
///   - `messages_private_by_sender (from_user, id)`, only for private rows: a user's sent private messages;
///   - `messages_by_pair (from_user, to_user, id)`: one direction of a private conversation (scroll-back);
///   - `messages_undelivered (to_user, id)`, only for private rows not yet delivered: what waits for a user at
///     login. It shrinks as messages are delivered, so it stays small.
const V1_USERS_AND_MESSAGES: &str = "
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    password_phc  TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT    NOT NULL CHECK (kind IN ('world', 'private')),
    from_user       INTEGER NOT NULL REFERENCES users (id),
    to_user         INTEGER          REFERENCES users (id),
    text            TEXT    NOT NULL,
    sent_at_ms      INTEGER NOT NULL,
    delivered_at_ms INTEGER,
    CHECK ((kind = 'world') = (to_user IS NULL)),
    CHECK (kind = 'private' OR delivered_at_ms IS NULL)
) STRICT;

CREATE INDEX messages_by_recipient ON messages (to_user, id);
CREATE INDEX messages_private_by_sender ON messages (from_user, id) WHERE to_user IS NOT NULL;
CREATE INDEX messages_by_pair ON messages (from_user, to_user, id);
CREATE INDEX messages_undelivered ON messages (to_user, id)
    WHERE to_user IS NOT NULL AND delivered_at_ms IS NULL;
";

/// Version 2: the sender's name for each message, its `client_msg_id`.
///
/// The server de-duplicates resent messages by this id (see [`crate::hub::dedup`]). Kept only in memory, that
/// protection ended with the process: a message committed just before a crash, whose `Accepted` never left, was
/// stored a second time when the client resent it to the restarted server. An idempotency key protects a write
/// only if it is as durable as the write, so it now lives in the same row, committed in the same transaction.
///
/// - Nullable, with no default: rows written before this step have no id and stay `NULL`, which is the truth
///   (the id was never recorded), and `ADD COLUMN` of a nullable column without a default only changes the
///   schema, not the existing rows, so the step is instant even on a large history.
/// - No index. The only reader is the startup scan of the last minutes of messages, which walks the primary key
///   backwards (ids grow in commit order, see `SqliteStorage::newest_before`); an index would cost every write
///   one more B-tree insert to speed up a query that runs once per start.
/// - A client names messages with any 64-bit unsigned number; SQLite integers are signed, so the bit pattern is
///   stored unchanged (ids above `i64::MAX` read as negative numbers in the `sqlite3` shell).
const V2_CLIENT_MSG_ID: &str = "
ALTER TABLE messages ADD COLUMN client_msg_id INTEGER;
";

/// The steps of the chatlab schema, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "users and messages with delivery state and history indexes",
        sql: V1_USERS_AND_MESSAGES,
    },
    Migration {
        version: 2,
        description: "client_msg_id stored with each message, so de-duplication survives a restart",
        sql: V2_CLIENT_MSG_ID,
    },
];

/// The schema version this build creates and understands: the number of the last migration step.
pub const SCHEMA_VERSION: u32 = 2;

/// Brings the database to the last version of `steps`, one transaction per step.
///
/// Returns the number of steps applied (0 for an up-to-date file).
pub(crate) fn apply(conn: &mut Connection, steps: &[Migration]) -> Result<usize, StorageError> {
    let supported = steps.last().map_or(0, |step| step.version);
    let found = read_version(conn)?;
    if found > supported {
        return Err(StorageError::SchemaTooNew { found, supported });
    }
    let mut applied = 0;
    for step in steps {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Re-read under the write lock: another process may have migrated while we waited.
        if read_version(&tx)? >= step.version {
            continue;
        }
        tx.execute_batch(step.sql)?;
        tx.pragma_update(None, "user_version", step.version)?;
        tx.commit()?;
        tracing::info!(version = step.version, description = step.description, "applied schema migration");
        applied += 1;
    }
    Ok(applied)
}

/// Reads `PRAGMA user_version`; a negative value (only a foreign tool can write one) is reported as corrupt data.
pub(crate) fn read_version(conn: &Connection) -> Result<u32, StorageError> {
    let raw: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    u32::try_from(raw).map_err(|_| StorageError::InvalidData(format!("negative schema version {raw}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_exists(conn: &Connection, name: &str) -> bool {
        let count: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1", [name], |row| {
                row.get(0)
            })
            .unwrap();
        count == 1
    }

    #[test]
    fn steps_are_numbered_without_gaps_and_end_at_schema_version() {
        for (index, step) in MIGRATIONS.iter().enumerate() {
            assert_eq!(step.version as usize, index + 1, "{}", step.description);
        }
        assert_eq!(MIGRATIONS.last().unwrap().version, SCHEMA_VERSION);
    }

    #[test]
    fn fresh_database_gets_every_step_and_reopen_applies_none() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(apply(&mut conn, MIGRATIONS).unwrap(), MIGRATIONS.len());
        assert_eq!(read_version(&conn).unwrap(), SCHEMA_VERSION);
        assert!(table_exists(&conn, "users"));
        assert!(table_exists(&conn, "messages"));
        assert_eq!(apply(&mut conn, MIGRATIONS).unwrap(), 0);
        assert_eq!(read_version(&conn).unwrap(), SCHEMA_VERSION);
    }

    /// A file from before version 2 (the chatlab of last term) keeps its messages; they get no `client_msg_id`,
    /// and new rows can carry one.
    #[test]
    fn client_msg_id_column_is_added_to_a_version_1_file_and_old_rows_stay_null() {
        let mut conn = Connection::open_in_memory().unwrap();
        let version_1 = MIGRATIONS.get(..1).unwrap();
        assert_eq!(apply(&mut conn, version_1).unwrap(), 1);
        conn.execute_batch(
            "INSERT INTO users (id, name, password_phc, created_at_ms) VALUES (1, 'ann', 'p', 1); \
             INSERT INTO messages (kind, from_user, text, sent_at_ms) VALUES ('world', 1, 'old', 2);",
        )
        .unwrap();
        assert_eq!(apply(&mut conn, MIGRATIONS).unwrap(), 1);
        assert_eq!(read_version(&conn).unwrap(), 2);
        let old: Option<i64> =
            conn.query_row("SELECT client_msg_id FROM messages WHERE text = 'old'", [], |r| r.get(0)).unwrap();
        assert_eq!(old, None);
        conn.execute(
            "INSERT INTO messages (kind, from_user, text, sent_at_ms, client_msg_id) VALUES ('world', 1, 'new', 3, ?1)",
            [-7_i64],
        )
        .unwrap();
        let new: Option<i64> =
            conn.query_row("SELECT client_msg_id FROM messages WHERE text = 'new'", [], |r| r.get(0)).unwrap();
        assert_eq!(new, Some(-7));
    }

    /// The column is typed: a STRICT table refuses text where the id goes, as it does for every other column.
    #[test]
    fn client_msg_id_column_is_strictly_an_integer() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply(&mut conn, MIGRATIONS).unwrap();
        conn.execute_batch("INSERT INTO users (id, name, password_phc, created_at_ms) VALUES (1, 'ann', 'p', 1);")
            .unwrap();
        let refused = conn.execute(
            "INSERT INTO messages (kind, from_user, text, sent_at_ms, client_msg_id) \
             VALUES ('world', 1, 'x', 1, 'not a number')",
            [],
        );
        assert!(refused.is_err());
    }

    #[test]
    fn later_steps_are_applied_in_order_to_an_older_file() {
        let first = [Migration { version: 1, description: "a", sql: "CREATE TABLE a (x INTEGER);" }];
        let both = [
            first[0],
            Migration {
                version: 2,
                description: "b refers to a",
                sql: "CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (7);",
            },
        ];
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(apply(&mut conn, &first).unwrap(), 1);
        assert_eq!(apply(&mut conn, &both).unwrap(), 1);
        assert_eq!(read_version(&conn).unwrap(), 2);
        assert!(table_exists(&conn, "b"));
        let x: i64 = conn.query_row("SELECT x FROM a", [], |r| r.get(0)).unwrap();
        assert_eq!(x, 7);
    }

    #[test]
    fn failing_step_is_rolled_back_and_version_unchanged() {
        let steps = [
            Migration { version: 1, description: "good", sql: "CREATE TABLE good (x INTEGER);" },
            Migration {
                version: 2,
                description: "creates a table, then fails",
                sql: "CREATE TABLE half (x INTEGER); THIS IS NOT SQL;",
            },
        ];
        let mut conn = Connection::open_in_memory().unwrap();
        let err = apply(&mut conn, &steps).unwrap_err();
        assert!(matches!(err, StorageError::Sqlite(_)), "{err:?}");
        assert_eq!(read_version(&conn).unwrap(), 1);
        assert!(table_exists(&conn, "good"));
        assert!(!table_exists(&conn, "half"));
    }

    #[test]
    fn newer_schema_is_refused_without_changes() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 9).unwrap();
        let err = apply(&mut conn, MIGRATIONS).unwrap_err();
        assert!(matches!(err, StorageError::SchemaTooNew { found: 9, supported: SCHEMA_VERSION }), "{err:?}");
        assert!(!table_exists(&conn, "users"));
    }

    #[test]
    fn negative_version_is_invalid_data() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", -1).unwrap();
        let err = apply(&mut conn, MIGRATIONS).unwrap_err();
        assert!(matches!(err, StorageError::InvalidData(_)), "{err:?}");
    }
}
