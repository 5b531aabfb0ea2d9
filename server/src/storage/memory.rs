//! # In-memory storage, for tests
//!
//! [`MemoryStorage`] implements [`Storage`] with plain vectors behind a mutex. It forgets everything when dropped,
//! so it is **not** durable — the server never uses it for real. It exists so that tests of other modules
//! (sessions, fan-out, login) can run without touching the disk, and it is checked against the same behavioural
//! test suite as [`crate::storage::SqliteStorage`], so the two cannot drift apart: same ids, same visibility
//! rules, same errors.
//!
//! Messages are kept in id order, so every query starts with a binary search for its first id and then walks
//! forward (or backward), like the index range scans of the SQLite version.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{
    DeliveryReceipt, MessageId, NewMessage, Storage, StorageError, StoredMessage, StoredRecipient, StoredTarget,
    UserId, UserRecord, UserRef,
};

/// Volatile [`Storage`] for tests. See the module documentation.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<UserId, UserRecord>,
    by_name: HashMap<String, UserId>,
    /// The id of the last created user (0 before the first).
    last_user_id: UserId,
    /// Messages in strictly increasing id order.
    messages: Vec<Row>,
    /// The id of the last appended message (0 before the first).
    last_id: MessageId,
}

#[derive(Debug, Clone)]
struct Row {
    id: MessageId,
    from: UserId,
    to: StoredTarget,
    text: String,
    sent_at_ms: i64,
    delivered_at_ms: Option<i64>,
    client_msg_id: Option<u64>,
}

impl Row {
    fn visible_to(&self, user: UserId) -> bool {
        self.from == user || matches!(self.to, StoredTarget::World) || self.to == StoredTarget::User(user)
    }

    fn in_conversation(&self, user: UserId, peer: StoredTarget) -> bool {
        match peer {
            StoredTarget::World => self.to == StoredTarget::World,
            StoredTarget::User(peer) => {
                (self.from == user && self.to == StoredTarget::User(peer))
                    || (self.from == peer && self.to == StoredTarget::User(user))
            }
        }
    }
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state; a poisoned mutex is reused because every method validates before it mutates, so a panic
    /// elsewhere cannot have left a half-applied change.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn user(&self, id: UserId) -> Option<&UserRecord> {
        self.users.get(&id)
    }

    fn user_ref(&self, id: UserId) -> Result<UserRef, StorageError> {
        self.user(id).map(|user| UserRef { id, name: user.name.clone() }).ok_or(StorageError::UnknownUser)
    }

    fn to_stored(&self, row: &Row) -> Result<StoredMessage, StorageError> {
        let to = match row.to {
            StoredTarget::World => StoredRecipient::World,
            StoredTarget::User(id) => StoredRecipient::User(self.user_ref(id)?),
        };
        Ok(StoredMessage {
            id: row.id,
            from: self.user_ref(row.from)?,
            to,
            text: row.text.clone(),
            sent_at_ms: row.sent_at_ms,
            delivered_at_ms: row.delivered_at_ms,
            client_msg_id: row.client_msg_id,
        })
    }

    /// Index of the first message with an id greater than `after`.
    fn first_after(&self, after: MessageId) -> usize {
        self.messages.partition_point(|row| row.id <= after)
    }
}

impl Storage for MemoryStorage {
    fn create_user(&self, name: &str, password_phc: &str, now_ms: i64) -> Result<UserRecord, StorageError> {
        let mut inner = self.lock();
        if inner.by_name.contains_key(name) {
            return Err(StorageError::UsernameTaken);
        }
        let id = inner
            .last_user_id
            .checked_add(1)
            .ok_or_else(|| StorageError::InvalidData("user id space exhausted".to_owned()))?;
        let user =
            UserRecord { id, name: name.to_owned(), password_phc: password_phc.to_owned(), created_at_ms: now_ms };
        inner.last_user_id = id;
        inner.users.insert(id, user.clone());
        inner.by_name.insert(name.to_owned(), id);
        Ok(user)
    }

    fn find_user(&self, name: &str) -> Result<Option<UserRecord>, StorageError> {
        let inner = self.lock();
        Ok(inner.by_name.get(name).and_then(|&id| inner.user(id)).cloned())
    }

    fn update_password_hash(&self, user: UserId, password_phc: &str) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let record = inner.users.get_mut(&user).ok_or(StorageError::UnknownUser)?;
        record.password_phc = password_phc.to_owned();
        Ok(())
    }

    fn append_messages(&self, batch: &[NewMessage]) -> Result<Vec<StoredMessage>, StorageError> {
        let mut inner = self.lock();
        // Validate the whole batch before changing anything: all or nothing, like a transaction.
        for message in batch {
            inner.user_ref(message.from)?;
            if let StoredTarget::User(to) = message.to {
                inner.user_ref(to)?;
            }
        }
        let count = MessageId::try_from(batch.len()).unwrap_or(MessageId::MAX);
        if inner.last_id.checked_add(count).is_none() {
            return Err(StorageError::InvalidData("message id space exhausted".to_owned()));
        }
        let mut stored = Vec::with_capacity(batch.len());
        for message in batch {
            inner.last_id += 1;
            let row = Row {
                id: inner.last_id,
                from: message.from,
                to: message.to,
                text: message.text.clone(),
                sent_at_ms: message.sent_at_ms,
                delivered_at_ms: None,
                client_msg_id: message.client_msg_id,
            };
            stored.push(inner.to_stored(&row)?);
            inner.messages.push(row);
        }
        Ok(stored)
    }

    fn sync_after(&self, user: UserId, after_id: MessageId, limit: usize) -> Result<Vec<StoredMessage>, StorageError> {
        let inner = self.lock();
        let start = inner.first_after(after_id);
        inner
            .messages
            .iter()
            .skip(start)
            .filter(|row| row.visible_to(user))
            .take(limit)
            .map(|row| inner.to_stored(row))
            .collect()
    }

    fn conversation_before(
        &self,
        user: UserId,
        peer: StoredTarget,
        before_id: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let inner = self.lock();
        let end = match before_id {
            None => inner.messages.len(),
            Some(before) => inner.messages.partition_point(|row| row.id < before),
        };
        let mut page = inner
            .messages
            .iter()
            .take(end)
            .rev()
            .filter(|row| row.in_conversation(user, peer))
            .take(limit)
            .map(|row| inner.to_stored(row))
            .collect::<Result<Vec<_>, _>>()?;
        page.reverse();
        Ok(page)
    }

    fn undelivered_to(
        &self,
        recipient: UserId,
        after_id: MessageId,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StorageError> {
        let inner = self.lock();
        let start = inner.first_after(after_id);
        inner
            .messages
            .iter()
            .skip(start)
            .filter(|row| row.to == StoredTarget::User(recipient) && row.delivered_at_ms.is_none())
            .take(limit)
            .map(|row| inner.to_stored(row))
            .collect()
    }

    fn mark_delivered(
        &self,
        recipient: UserId,
        message_ids: &[MessageId],
        now_ms: i64,
    ) -> Result<Vec<DeliveryReceipt>, StorageError> {
        let mut inner = self.lock();
        let mut receipts = Vec::new();
        for &message_id in message_ids {
            let Ok(index) = inner.messages.binary_search_by_key(&message_id, |row| row.id) else {
                continue;
            };
            let Some(row) = inner.messages.get_mut(index) else {
                continue;
            };
            if row.to == StoredTarget::User(recipient) && row.delivered_at_ms.is_none() {
                row.delivered_at_ms = Some(now_ms);
                receipts.push(DeliveryReceipt { message_id, sender: row.from, delivered_at_ms: now_ms });
            }
        }
        Ok(receipts)
    }

    fn newest_before(&self, before_id: Option<MessageId>, limit: usize) -> Result<Vec<StoredMessage>, StorageError> {
        let inner = self.lock();
        let end = match before_id {
            None => inner.messages.len(),
            Some(before) => inner.messages.partition_point(|row| row.id < before),
        };
        inner.messages.iter().take(end).rev().take(limit).map(|row| inner.to_stored(row)).collect()
    }

    fn latest_message_id(&self) -> Result<MessageId, StorageError> {
        Ok(self.lock().last_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance;

    #[test]
    fn conformance_suite() {
        conformance::run_all(&MemoryStorage::new);
    }

    #[test]
    fn exhausted_message_ids_are_an_error_not_a_wrap() {
        let storage = MemoryStorage::new();
        let alice = storage.create_user("alice", "$phc", 1).unwrap();
        storage.lock().last_id = MessageId::MAX;
        let err = storage
            .append_messages(&[NewMessage {
                from: alice.id,
                to: StoredTarget::World,
                text: "one too many".to_owned(),
                sent_at_ms: 2,
                client_msg_id: None,
            }])
            .unwrap_err();
        assert!(matches!(err, StorageError::InvalidData(_)), "{err:?}");
        assert!(storage.sync_after(alice.id, 0, 10).unwrap().is_empty());
    }

    #[test]
    fn exhausted_user_ids_are_an_error_not_a_wrap() {
        let storage = MemoryStorage::new();
        storage.lock().last_user_id = UserId::MAX;
        let err = storage.create_user("alice", "$phc", 1).unwrap_err();
        assert!(matches!(err, StorageError::InvalidData(_)), "{err:?}");
        assert_eq!(storage.find_user("alice").unwrap(), None);
    }
}
