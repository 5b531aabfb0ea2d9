//! # Storage: accounts, chat history and delivery state
//!
//! A chat server must remember three things across restarts: who the users are (name and password hash), every
//! message that was sent (so a client that was offline can catch up), and which private messages have reached
//! their recipient (so the sender can be told "delivered"). This module defines *what* the server asks of its
//! storage as the small [`Storage`] trait; [`SqliteStorage`] is the durable implementation the server runs with,
//! and [`MemoryStorage`] is a volatile one for the tests of other modules.
//!
//! ## One global, increasing message id
//!
//! Every stored message gets an id from one global sequence that only grows. That single number is what makes
//! history sync cheap and exact: a client remembers the largest id it has seen and asks for "everything I may see
//! with an id above N" ([`Storage::sync_after`]). The answer is paged (at most `limit` messages, oldest first) and
//! the client asks again with the last id of the page, so there is no size ceiling and no giant frame — the
//! original Python server sent all history as one message and broke at 64 KiB. Each page is one index range scan,
//! so syncing *n* messages costs time linear in *n*, however large the history is.
//!
//! ## Durable before acknowledged, and group commit
//!
//! The server tells a sender "your message is stored" only after [`Storage::append_messages`] has returned,
//! and that method returns only once the transaction holding the messages is on stable storage (for SQLite: the
//! write-ahead log has been `fsync`ed). A server killed a microsecond later loses nothing it acknowledged.
//!
//! An `fsync` costs from tens of microseconds (NVMe) to several milliseconds (spinning disks, some cloud
//! volumes), and it costs about the same for one message or for a thousand. So `append_messages` takes a
//! **batch**: the server's writer collects every message that arrived while the previous commit was in progress
//! and commits them together, in one transaction and one `fsync`. This is *group commit*, the technique databases
//! use to turn a disk that can do a few hundred syncs per second into one that stores hundreds of thousands of
//! records per second. Latency stays at about one `fsync` per message, throughput scales with the batch size.
//!
//! ## The client's name for a message, stored with it
//!
//! A client names every chat message with a `client_msg_id` and sends it again, under the same name, when it never
//! saw the server's answer; the server recognises the name and answers with the stored id instead of storing the
//! message twice (see the hub's `dedup` module). Such an *idempotency key* protects a write only if it is at least
//! as durable as the write: had the server kept it only in memory, a crash after the commit and before the answer
//! would forget the key but not the message, and the resend to the restarted server would be stored again. So the
//! key is a column of the message row ([`NewMessage::client_msg_id`]), written by the same `INSERT` in the same
//! transaction: after a crash either both exist or neither does. At startup [`Storage::newest_before`] reads the
//! last minutes of messages back, and the server rebuilds its memory of keys from them before it lets anyone in.
//!
//! ## Private messages to offline users, and delivery receipts
//!
//! A private message is stored like any other, with a `delivered_at_ms` field that is empty until the recipient's
//! client confirms it has the message. The server calls [`Storage::mark_delivered`] with the ids a recipient
//! confirmed; it returns a [`DeliveryReceipt`] for each message whose state *changed*, which the server forwards
//! to the sender (now, or — since the state is stored and returned with every [`StoredMessage`] — the sender sees
//! it in its history at its next login). When a user logs in, [`Storage::undelivered_to`] lists the private
//! messages still waiting for them.
//!
//! Why a flag per message rather than one "delivered up to id N" cursor per user? Chat datagrams may be
//! acknowledged out of order (the reliability engine can hand messages over unordered), so "message 10 arrived"
//! does not imply "message 9 arrived". A per-message flag is exact, and the conditional update
//! (`... WHERE delivered_at_ms IS NULL`) makes each receipt fire exactly once even when two sessions of the same
//! user confirm the same message.
//!
//! ## Threads
//!
//! All methods are synchronous: SQLite blocks on disk I/O (and, by design, on `fsync`). The async server must
//! therefore call them from a dedicated blocking thread or through `tokio::task::spawn_blocking`, never directly
//! from an async task, or one slow disk would stall every connection sharing that runtime thread.
//!
//! User names are stored exactly as given: validation and case-folding are the caller's job (the protocol layer
//! owns those rules); storage only guarantees that a name exists at most once.

mod memory;
mod migrations;
mod read_pool;
mod sqlite;

#[cfg(test)]
mod conformance;

pub use memory::MemoryStorage;
pub use migrations::SCHEMA_VERSION;
pub use read_pool::READ_CONNECTIONS;
pub use sqlite::SqliteStorage;

/// The id of a user: SQLite's row id of the `users` table, assigned by storage, never reused.
pub type UserId = i64;

/// The id of a message: one global sequence, starting at 1 and strictly increasing in commit order.
/// `0` is never a message id, so "after 0" means "from the beginning".
pub type MessageId = u64;

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Assigned by storage at creation.
    pub id: UserId,
    /// The (already validated and case-folded) user name; unique.
    pub name: String,
    /// The password hash as a PHC string (see [`crate::password`]); never the password itself.
    pub password_phc: String,
    /// Creation time, milliseconds since the Unix epoch, UTC.
    pub created_at_ms: i64,
}

/// A user as it appears on a stored message: the id for routing, the name for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    /// The user's id.
    pub id: UserId,
    /// The user's name.
    pub name: String,
}

/// Where a new message goes, or which conversation to read: the world room or one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredTarget {
    /// The world room: every user may read it.
    World,
    /// A one-to-one conversation with this user.
    User(UserId),
}

/// The recipient of a stored message, with the name resolved for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredRecipient {
    /// The world room.
    World,
    /// One user (a private message).
    User(UserRef),
}

/// A message to append: what the server knows before storage has assigned an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The sender's user id.
    pub from: UserId,
    /// The world room or the recipient's user id.
    pub to: StoredTarget,
    /// The message text, already validated by the caller (UTF-8, length, control characters).
    pub text: String,
    /// When the server received it, milliseconds since the Unix epoch, UTC.
    pub sent_at_ms: i64,
    /// The sender's name for the message, its idempotency key (see the module documentation); `None` for a
    /// message that has none (written by a tool, or stored before the schema recorded it).
    pub client_msg_id: Option<u64>,
}

/// A message as stored, with its id and the names of the people involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Global, increasing id.
    pub id: MessageId,
    /// The sender.
    pub from: UserRef,
    /// The world room or the recipient.
    pub to: StoredRecipient,
    /// The text.
    pub text: String,
    /// When the server received it, milliseconds since the Unix epoch, UTC.
    pub sent_at_ms: i64,
    /// For a private message: when the recipient's client confirmed it, or `None` while it is waiting.
    /// Always `None` for world messages (they are broadcast, not individually delivered).
    pub delivered_at_ms: Option<i64>,
    /// The sender's name for the message, as given in [`NewMessage::client_msg_id`]; `None` for rows stored
    /// before the schema recorded it.
    pub client_msg_id: Option<u64>,
}

impl StoredMessage {
    /// Whether this is a one-to-one message (as opposed to the world room).
    pub fn is_private(&self) -> bool {
        matches!(self.to, StoredRecipient::User(_))
    }
}

/// "Your private message reached its recipient": produced by [`Storage::mark_delivered`] for the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReceipt {
    /// The message that was delivered.
    pub message_id: MessageId,
    /// Who sent it, i.e. whom to tell.
    pub sender: UserId,
    /// When the delivery was recorded, milliseconds since the Unix epoch, UTC.
    pub delivered_at_ms: i64,
}

/// Everything that can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// `create_user` with a name that already exists.
    #[error("user name is already taken")]
    UsernameTaken,
    /// A message refers to a user id that does not exist (the whole batch was rejected).
    #[error("message refers to an unknown user")]
    UnknownUser,
    /// The database was written by a newer chatlab with a schema this build does not understand. Opening it
    /// anyway could corrupt it, so we refuse; run the newer server or restore a backup.
    #[error(
        "database schema version {found} is newer than this server supports ({supported}); \
         upgrade chatlab-server or use another data directory"
    )]
    SchemaTooNew {
        /// The version found in the file.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// The file is not an SQLite database, or its pages are damaged.
    #[error("database file is corrupt or not a database: {0}")]
    Corrupt(#[source] rusqlite::Error),
    /// A stored value that the schema should have made impossible (e.g. a negative message id).
    #[error("database holds an invalid value: {0}")]
    InvalidData(String),
    /// Creating the data directory or the database file failed.
    #[error("cannot prepare database file {path}: {source}")]
    Io {
        /// The path we tried to create.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Any other SQLite error (disk full, I/O error, locked for longer than the busy timeout, ...).
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
}

/// The storage interface of the server.
///
/// `Send + Sync` so one instance can be shared (`Arc<dyn Storage>`) by the server's tasks. Every method is
/// **synchronous and may block** on disk I/O, including `fsync`: call it from a blocking thread
/// (`tokio::task::spawn_blocking` or a dedicated writer thread), never from an async task directly.
pub trait Storage: Send + Sync {
    /// Creates an account. Fails with [`StorageError::UsernameTaken`] if the name exists; the name must already
    /// be validated and case-folded by the caller.
    fn create_user(&self, name: &str, password_phc: &str, now_ms: i64) -> Result<UserRecord, StorageError>;

    /// Looks an account up by its exact (case-folded) name.
    fn find_user(&self, name: &str) -> Result<Option<UserRecord>, StorageError>;

    /// Replaces an account's password hash (the same password, hashed again with the server's current Argon2
    /// parameters after a successful login). Fails with [`StorageError::UnknownUser`] if no such account exists.
    fn update_password_hash(&self, user: UserId, password_phc: &str) -> Result<(), StorageError>;

    /// Appends a batch of messages in ONE transaction and returns them with their ids, in the order given.
    ///
    /// When this returns `Ok`, the messages are durable (on stable storage, for a durable implementation): this
    /// is the moment the server may acknowledge them. Batching many messages per call is group commit — they
    /// share one `fsync`. All or nothing: if any message is invalid (e.g. [`StorageError::UnknownUser`]) none is
    /// stored. An empty batch stores nothing and returns an empty list.
    fn append_messages(&self, batch: &[NewMessage]) -> Result<Vec<StoredMessage>, StorageError>;

    /// Incremental history sync: every message `user` may see — world messages, private messages from them and
    /// to them — with an id greater than `after_id`, oldest first, at most `limit`. To page, ask again with the
    /// id of the last message returned; a page shorter than `limit` is the last one.
    fn sync_after(&self, user: UserId, after_id: MessageId, limit: usize) -> Result<Vec<StoredMessage>, StorageError>;

    /// Scroll-back in one conversation (the world room, or `user`'s private conversation with a peer): the newest
    /// `limit` messages with an id below `before_id` (all, if `None`), returned oldest first. To scroll further,
    /// ask again with the id of the first message returned.
    fn conversation_before(
        &self,
        user: UserId,
        peer: StoredTarget,
        before_id: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StorageError>;

    /// Private messages to `recipient` not yet confirmed delivered, with an id greater than `after_id`, oldest
    /// first, at most `limit`: what the server must push when the recipient logs in.
    fn undelivered_to(
        &self,
        recipient: UserId,
        after_id: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StorageError>;

    /// Records that `recipient`'s client confirmed these private messages, in one durable transaction. Returns a
    /// receipt for each message that was addressed to `recipient` and not yet marked; ids that are unknown,
    /// already delivered, world messages or addressed to someone else are ignored, so each receipt is produced
    /// exactly once.
    fn mark_delivered(
        &self,
        recipient: UserId,
        message_ids: &[MessageId],
        now_ms: i64,
    ) -> Result<Vec<DeliveryReceipt>, StorageError>;

    /// Every message with an id below `before_id` (all, if `None`), **newest first**, at most `limit`: the newest
    /// messages of the whole server, whoever sent them. The server reads them once at startup to rebuild its
    /// memory of recent `client_msg_id`s, walking back page by page (the next `before_id` is the last id returned)
    /// until the messages are older than it needs. Ids grow in commit order, so this is a backward walk of the
    /// primary key that reads only the rows it returns.
    fn newest_before(&self, before_id: Option<MessageId>, limit: usize) -> Result<Vec<StoredMessage>, StorageError>;

    /// The largest message id stored, or 0 when there is none.
    fn latest_message_id(&self) -> Result<MessageId, StorageError>;
}
