//! The storage writer: group commit on a dedicated thread.
//!
//! A chat message may be acknowledged only once it is on disk (see [`crate::storage`]), and making data durable
//! costs one `fsync` per transaction whatever the transaction holds. So one thread owns all writes and works in
//! rounds: it waits for the first request, takes every request that queued up meanwhile (up to
//! [`MAX_COMMIT_BATCH`]), resolves recipient names, and appends all the messages in **one** transaction. While that
//! `fsync` runs, the next round's messages queue up. Under light load a round holds one message and latency is one
//! `fsync`; under heavy load rounds grow and the cost per message shrinks — the classic group commit.
//!
//! The writer answers with one [`HubInput::Committed`] per round, in the order the messages were sent, and the hub
//! acknowledges and fans out only then. Delivery marks ([`WriteRequest::MarkDelivered`], from engine
//! acknowledgements) ride the same thread so that a mark never overtakes the message it marks.
//!
//! A plain thread rather than a tokio task: SQLite blocks, and blocking a runtime worker would stall every
//! connection that shares it. The queues on both sides are bounded; the hub never waits for this thread (it uses
//! `try_send`), and this thread may wait for the hub, so the two can never wait for each other.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use chatlab_proto::chat::{ChatMessage, Target, Username};
use chatlab_proto::control::ErrorCode;
use tokio::sync::mpsc;

use crate::clock::utc_now_ms;
use crate::hub::input::{ChatOutcome, ChatRequest, Committed, HubInput, Refusal};
use crate::limits::{MAX_CACHED_USER_IDS, MAX_COMMIT_BATCH};
use crate::storage::{MessageId, NewMessage, Storage, StoredTarget, UserId};

/// Work for the writer.
#[derive(Debug)]
pub enum WriteRequest {
    /// Store a chat message.
    Append(ChatRequest),
    /// A recipient's client confirmed these private messages.
    MarkDelivered {
        /// The recipient's id.
        recipient: UserId,
        /// The recipient's name, for the receipts.
        recipient_name: Username,
        /// The messages.
        ids: Vec<MessageId>,
    },
}

/// Starts the writer thread. It runs until every sender of `requests` is dropped, commits what is queued, sends
/// [`HubInput::WriterDone`] and ends.
pub fn spawn_writer(
    storage: Arc<dyn Storage>,
    requests: mpsc::Receiver<WriteRequest>,
    hub: mpsc::Sender<HubInput>,
) -> std::io::Result<JoinHandle<()>> {
    let writer = Writer { storage, requests, hub, user_ids: HashMap::new() };
    std::thread::Builder::new().name("chatlab-writer".into()).spawn(move || writer.run())
}

struct Writer {
    storage: Arc<dyn Storage>,
    requests: mpsc::Receiver<WriteRequest>,
    hub: mpsc::Sender<HubInput>,
    user_ids: HashMap<Username, UserId>,
}

impl Writer {
    fn run(mut self) {
        while let Some(first) = self.requests.blocking_recv() {
            let mut round = vec![first];
            while round.len() < MAX_COMMIT_BATCH {
                match self.requests.try_recv() {
                    Ok(request) => round.push(request),
                    Err(_) => break,
                }
            }
            if !self.handle_round(round) {
                return;
            }
        }
        // Every sender is gone and everything queued is committed: the hub may now tell sessions goodbye.
        let _ = self.hub.blocking_send(HubInput::WriterDone);
    }

    /// Commits one round; false when the hub is gone and the thread should stop.
    fn handle_round(&mut self, round: Vec<WriteRequest>) -> bool {
        let mut appends = Vec::new();
        let mut marks = Vec::new();
        for request in round {
            match request {
                WriteRequest::Append(chat) => appends.push(chat),
                WriteRequest::MarkDelivered { recipient, recipient_name, ids } => {
                    marks.push((recipient, recipient_name, ids))
                }
            }
        }
        if !appends.is_empty() {
            let outcomes = self.commit(appends);
            if self.hub.blocking_send(HubInput::Committed(outcomes)).is_err() {
                return false;
            }
        }
        for (recipient, recipient_name, ids) in marks {
            match self.storage.mark_delivered(recipient, &ids, utc_now_ms()) {
                Ok(receipts) if receipts.is_empty() => {}
                Ok(receipts) => {
                    if self.hub.blocking_send(HubInput::Receipts { recipient: recipient_name, receipts }).is_err() {
                        return false;
                    }
                }
                Err(error) => tracing::warn!(%error, user = %recipient_name, "could not record deliveries"),
            }
        }
        true
    }

    /// Resolves recipients and appends every valid message in one transaction.
    fn commit(&mut self, appends: Vec<ChatRequest>) -> Vec<ChatOutcome> {
        let resolved: Vec<(ChatRequest, Result<Option<UserId>, Refusal>)> = appends
            .into_iter()
            .map(|chat| {
                let recipient = self.resolve(&chat.to);
                (chat, recipient)
            })
            .collect();
        let now = utc_now_ms();
        let batch: Vec<NewMessage> = resolved
            .iter()
            .filter_map(|(chat, recipient)| {
                let to = match recipient {
                    Ok(Some(id)) => StoredTarget::User(*id),
                    Ok(None) => StoredTarget::World,
                    Err(_) => return None,
                };
                // The idempotency key goes into the same row and transaction as the message it names, so a
                // crash can never keep one without the other (see `crate::hub::dedup`).
                Some(NewMessage {
                    from: chat.from,
                    to,
                    text: chat.text.clone(),
                    sent_at_ms: now,
                    client_msg_id: Some(chat.client_msg_id),
                })
            })
            .collect();
        let stored = match self.storage.append_messages(&batch) {
            Ok(stored) if stored.len() == batch.len() => Ok(stored),
            Ok(stored) => {
                tracing::error!(asked = batch.len(), got = stored.len(), "storage returned a short batch");
                Err(())
            }
            Err(error) => {
                tracing::error!(%error, messages = batch.len(), "could not store chat messages");
                Err(())
            }
        };
        let mut stored = stored.map(Vec::into_iter);
        resolved
            .into_iter()
            .map(|(chat, recipient)| {
                let result = recipient.and_then(|recipient| match &mut stored {
                    Ok(rows) => match rows.next() {
                        Some(row) => Ok(Committed {
                            message: ChatMessage {
                                id: row.id,
                                from: chat.from_name.clone(),
                                to: chat.to.clone(),
                                text: row.text,
                                sent_at_ms: row.sent_at_ms,
                            },
                            recipient,
                        }),
                        None => Err(internal()),
                    },
                    Err(()) => Err(internal()),
                });
                ChatOutcome {
                    session: chat.session,
                    origin: chat.origin,
                    client_msg_id: chat.client_msg_id,
                    from: chat.from,
                    to: chat.to,
                    result,
                }
            })
            .collect()
    }

    /// The recipient's id (`None` for the world room), or why there is none.
    fn resolve(&mut self, to: &Target) -> Result<Option<UserId>, Refusal> {
        let Target::User(name) = to else { return Ok(None) };
        if let Some(&id) = self.user_ids.get(name) {
            return Ok(Some(id));
        }
        match self.storage.find_user(name.as_str()) {
            Ok(Some(user)) => {
                if self.user_ids.len() >= MAX_CACHED_USER_IDS {
                    self.user_ids.clear();
                }
                self.user_ids.insert(name.clone(), user.id);
                Ok(Some(user.id))
            }
            Ok(None) => Err(Refusal::new(ErrorCode::UnknownUser, format!("there is no user named {name}"))),
            Err(error) => {
                tracing::error!(%error, "could not look up a recipient");
                Err(internal())
            }
        }
    }
}

fn internal() -> Refusal {
    Refusal::new(ErrorCode::Internal, "the server could not store the message; please try again")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::input::SessionRef;
    use crate::storage::{DeliveryReceipt, MemoryStorage, StorageError, StoredMessage, UserRecord};
    use chatlab_proto::control::Transport;

    const SESSION: SessionRef = SessionRef { cid: 1, serial: 1 };

    fn name(raw: &str) -> Username {
        Username::parse(raw).unwrap()
    }

    fn chat(from: UserId, from_name: &str, to: Target, text: &str, id: u64) -> WriteRequest {
        WriteRequest::Append(ChatRequest {
            session: SESSION,
            origin: Transport::Tcp,
            client_msg_id: id,
            from,
            from_name: name(from_name),
            to,
            text: text.into(),
        })
    }

    fn start(storage: Arc<dyn Storage>) -> (mpsc::Sender<WriteRequest>, mpsc::Receiver<HubInput>, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(64);
        let (hub_tx, hub_rx) = mpsc::channel(64);
        let handle = spawn_writer(storage, rx, hub_tx).unwrap();
        (tx, hub_rx, handle)
    }

    #[tokio::test]
    async fn queued_messages_commit_together_in_order_and_unknown_recipients_are_refused() {
        let storage = Arc::new(MemoryStorage::new());
        let ann = storage.create_user("ann", "phc", 0).unwrap();
        let bob = storage.create_user("bob", "phc", 0).unwrap();
        let (tx, mut hub, handle) = start(storage.clone());
        // Queue everything before the writer can run a round, so it becomes one batch.
        tx.send(chat(ann.id, "ann", Target::World, "one", 1)).await.unwrap();
        tx.send(chat(ann.id, "ann", Target::User(name("ghost")), "two", 2)).await.unwrap();
        tx.send(chat(ann.id, "ann", Target::User(name("bob")), "three", 3)).await.unwrap();
        drop(tx);
        let mut outcomes = Vec::new();
        loop {
            match hub.recv().await.unwrap() {
                HubInput::Committed(batch) => outcomes.extend(batch),
                HubInput::WriterDone => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        handle.join().unwrap();
        let ids: Vec<u64> = outcomes.iter().map(|o| o.client_msg_id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        let first = outcomes[0].result.as_ref().unwrap();
        assert_eq!((first.message.text.as_str(), first.recipient), ("one", None));
        assert_eq!(outcomes[1].result.as_ref().unwrap_err().code, ErrorCode::UnknownUser);
        let third = outcomes[2].result.as_ref().unwrap();
        assert_eq!(third.recipient, Some(bob.id));
        assert_eq!(third.message.to, Target::User(name("bob")));
        assert!(third.message.id > first.message.id);
        assert_eq!(storage.latest_message_id().unwrap(), third.message.id);
    }

    #[tokio::test]
    async fn marks_produce_receipts_once() {
        let storage = Arc::new(MemoryStorage::new());
        let ann = storage.create_user("ann", "phc", 0).unwrap();
        let bob = storage.create_user("bob", "phc", 0).unwrap();
        let stored = storage
            .append_messages(&[NewMessage {
                from: ann.id,
                to: StoredTarget::User(bob.id),
                text: "hi".into(),
                sent_at_ms: 1,
                client_msg_id: None,
            }])
            .unwrap();
        let (tx, mut hub, handle) = start(storage.clone());
        for _ in 0..2 {
            tx.send(WriteRequest::MarkDelivered {
                recipient: bob.id,
                recipient_name: name("bob"),
                ids: vec![stored[0].id],
            })
            .await
            .unwrap();
        }
        drop(tx);
        let mut receipts = Vec::new();
        loop {
            match hub.recv().await.unwrap() {
                HubInput::Receipts { recipient, receipts: batch } => {
                    assert_eq!(recipient, name("bob"));
                    receipts.extend(batch);
                }
                HubInput::WriterDone => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        handle.join().unwrap();
        assert_eq!(receipts.len(), 1);
        assert_eq!((receipts[0].message_id, receipts[0].sender), (stored[0].id, ann.id));
    }

    /// A storage whose writes fail, as a full disk would.
    struct BrokenDisk(MemoryStorage);

    impl Storage for BrokenDisk {
        fn create_user(&self, name: &str, phc: &str, now: i64) -> Result<UserRecord, StorageError> {
            self.0.create_user(name, phc, now)
        }
        fn find_user(&self, name: &str) -> Result<Option<UserRecord>, StorageError> {
            if name == "unreadable" { Err(StorageError::InvalidData("test".into())) } else { self.0.find_user(name) }
        }
        fn update_password_hash(&self, user: UserId, phc: &str) -> Result<(), StorageError> {
            self.0.update_password_hash(user, phc)
        }
        fn append_messages(&self, _: &[NewMessage]) -> Result<Vec<StoredMessage>, StorageError> {
            Err(StorageError::InvalidData("disk full".into()))
        }
        fn sync_after(&self, u: UserId, a: MessageId, l: usize) -> Result<Vec<StoredMessage>, StorageError> {
            self.0.sync_after(u, a, l)
        }
        fn conversation_before(
            &self,
            u: UserId,
            p: StoredTarget,
            b: Option<MessageId>,
            l: usize,
        ) -> Result<Vec<StoredMessage>, StorageError> {
            self.0.conversation_before(u, p, b, l)
        }
        fn undelivered_to(&self, r: UserId, a: MessageId, l: usize) -> Result<Vec<StoredMessage>, StorageError> {
            self.0.undelivered_to(r, a, l)
        }
        fn mark_delivered(&self, _: UserId, _: &[MessageId], _: i64) -> Result<Vec<DeliveryReceipt>, StorageError> {
            Err(StorageError::InvalidData("disk full".into()))
        }
        fn newest_before(&self, b: Option<MessageId>, l: usize) -> Result<Vec<StoredMessage>, StorageError> {
            self.0.newest_before(b, l)
        }
        fn latest_message_id(&self) -> Result<MessageId, StorageError> {
            self.0.latest_message_id()
        }
    }

    #[tokio::test]
    async fn a_failing_disk_refuses_with_internal_and_acknowledges_nothing() {
        let disk = BrokenDisk(MemoryStorage::new());
        let ann = disk.create_user("ann", "phc", 0).unwrap();
        let (tx, mut hub, handle) = start(Arc::new(disk));
        tx.send(chat(ann.id, "ann", Target::World, "lost", 1)).await.unwrap();
        tx.send(chat(ann.id, "ann", Target::User(name("unreadable")), "x", 2)).await.unwrap();
        tx.send(WriteRequest::MarkDelivered { recipient: ann.id, recipient_name: name("ann"), ids: vec![1] })
            .await
            .unwrap();
        drop(tx);
        let mut codes = Vec::new();
        loop {
            match hub.recv().await.unwrap() {
                HubInput::Committed(batch) => codes.extend(batch.into_iter().map(|o| o.result.unwrap_err().code)),
                HubInput::WriterDone => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        handle.join().unwrap();
        assert_eq!(codes, vec![ErrorCode::Internal, ErrorCode::Internal]);
    }

    #[tokio::test]
    async fn writer_stops_when_the_hub_is_gone() {
        let storage = Arc::new(MemoryStorage::new());
        let ann = storage.create_user("ann", "phc", 0).unwrap();
        let (tx, hub, handle) = start(storage.clone());
        drop(hub);
        tx.send(chat(ann.id, "ann", Target::World, "one", 1)).await.unwrap();
        handle.join().unwrap();
        // The message was stored (durability does not depend on the hub); only its acknowledgement is lost.
        assert_eq!(storage.latest_message_id().unwrap(), 1);
        // With its client_msg_id, so a restarted server recognises the client's resend.
        let stored = storage.newest_before(None, 10).unwrap();
        assert_eq!(stored.iter().map(|m| m.client_msg_id).collect::<Vec<_>>(), [Some(1)]);
    }
}
