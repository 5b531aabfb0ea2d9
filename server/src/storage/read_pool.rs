//! Read-only connections for history, so that reads never wait for writes and writes never wait for reads.
//!
//! A chat message is acknowledged once the storage writer has committed it, and the writer commits through the
//! one connection that may write. When that connection also served every history page, a chat acknowledgement
//! queued behind whatever pages were being read: with 32 sessions paging through a 2 000-message world history,
//! another user's acknowledgement went from 1.3 ms to 20 ms at the median and 37 ms at p99.
//!
//! SQLite in WAL mode lets readers and one writer work at the same time: a reader sees the database as of the
//! moment its read began (a *snapshot*), and the writer appends to the log meanwhile without touching the pages
//! readers use. So history reads get connections of their own: a small pool of [`READ_CONNECTIONS`] read-only
//! connections, opened once and reused (each keeps its prepared statements and page cache warm). A read takes an
//! idle connection, or waits on a condition variable until one is given back; the writer's connection is never
//! among them.
//!
//! The pool's size is also the number of history reads that run at once, whatever the number of sessions asking:
//! the CPU left over goes to the hub and the writer, which is what keeps acknowledgements fast while a whole class
//! syncs. A session asks for one page at a time (its connection task waits for each answer), so no session can take
//! more than one of them.
//!
//! Should SQLite refuse WAL mode (some network file systems cannot share its memory map), the readers still work,
//! only as a rollback journal allows: a reader then waits while a commit writes the file (up to the busy timeout).
//!
//! Only a database file can be shared between connections like this; an in-memory database exists once per
//! connection, so [`super::SqliteStorage::open_in_memory`] has no pool and reads through its one connection.

use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OpenFlags};

use super::StorageError;
use super::sqlite::{BUSY_TIMEOUT, STATEMENT_CACHE_CAPACITY};

/// Read-only connections per database, and so history reads running at once at most. Two: on the two-core machines
/// chatlab is measured on, two readers keep a core busy with history while the other runs the hub and the writer;
/// more readers would only take turns on the same cores (an SQLite page read is CPU work once the file is cached),
/// and fewer would leave a reader idle while another waits for the disk.
pub const READ_CONNECTIONS: usize = 2;

/// A fixed set of read-only connections to one database file. See the module documentation.
pub struct ReadPool {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
}

impl std::fmt::Debug for ReadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadPool").field("idle", &self.lock().len()).finish()
    }
}

impl ReadPool {
    /// Opens `size` read-only connections to the database at `path`, which must already exist with its schema
    /// (the writer's connection opens it first).
    pub fn open(path: &Path, size: usize) -> Result<Self, StorageError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let connections = (0..size.max(1))
            .map(|_| {
                let conn = Connection::open_with_flags(path, flags)?;
                conn.busy_timeout(BUSY_TIMEOUT)?;
                conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
                Ok(conn)
            })
            .collect::<Result<Vec<_>, StorageError>>()?;
        Ok(Self { idle: Mutex::new(connections), returned: Condvar::new() })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `read` on an idle connection, waiting for one if all are busy. The connection goes back to the pool
    /// afterwards, also when `read` panics.
    pub fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T, StorageError>) -> Result<T, StorageError> {
        let conn = {
            let mut idle = self.lock();
            loop {
                if let Some(conn) = idle.pop() {
                    break conn;
                }
                idle = self.returned.wait(idle).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let lent = Lent { pool: self, conn: Some(conn) };
        match lent.conn.as_ref() {
            Some(conn) => read(conn),
            // `Lent` only gives its connection up when dropped.
            None => Err(StorageError::InvalidData("a pooled connection went missing".into())),
        }
    }
}

/// A connection taken from the pool, given back when dropped.
struct Lent<'a> {
    pool: &'a ReadPool,
    conn: Option<Connection>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.lock().push(conn);
            self.pool.returned.notify_one();
        }
    }
}
