//! History pages and delivery confirmations over the control channel.
//!
//! History is read straight from storage on a blocking thread, in pages that fit one frame
//! ([`PageBuilder::history`] cuts a page by item count *and* by encoded size). To know whether a page is the last
//! one, the query asks for one row more than the page may hold: if that row exists, `more` is true. Every page is
//! one index range scan, so paging through a history of any length costs time linear in its length.
//!
//! Pages are read and built a few at a time over the whole process ([`HISTORY_SLOTS`]), so a class syncing its
//! history never slows down the chat of the others.
//!
//! A sync page is also where offline messages are delivered: the private messages to this user that were still
//! waiting are marked delivered as the page goes out, and their senders get receipts through the hub.

use std::sync::Arc;

use tokio::sync::Semaphore;

use chatlab_proto::chat::{ChatMessage, Target, Username};
use chatlab_proto::control::{ErrorCode, PageBuilder, ServerMessage};

use super::{Connection, Flow};
use crate::clock::utc_now_ms;
use crate::hub::input::HubInput;
use crate::limits::MAX_HISTORY_PAGE;
use crate::storage::{
    DeliveryReceipt, MessageId, READ_CONNECTIONS, StorageError, StoredMessage, StoredRecipient, StoredTarget, UserId,
};

/// History pages being read and built at once in this process, whoever asks: one per pooled read connection.
///
/// Reading a page is the cheap half; building it (rows into messages, MessagePack, encryption of up to 64 KiB)
/// runs on the same runtime threads as the hub and every connection, and 32 sessions syncing in a loop kept those
/// threads so busy that a chat acknowledgement, which needs them four times on its way, waited 20 ms at the median.
/// So a page is read *and* built holding one of these slots: the work on history never takes more than
/// [`READ_CONNECTIONS`] threads' worth of the machine, and the rest stays free for chat. The slots are handed out
/// in the order they were asked for (tokio's semaphore is fair) and a session asks for one page at a time, so this
/// is also each session's read budget: one page in progress, and its turn after everyone already waiting (on top
/// of the request rate of `REQUESTS_PER_SESSION`). Per process rather than per server, because the CPU it
/// protects is the process's.
static HISTORY_SLOTS: Semaphore = Semaphore::const_new(READ_CONNECTIONS);

/// One page, ready to send, and the receipts its sending produced.
#[derive(Debug, Default)]
struct Page {
    messages: Vec<ChatMessage>,
    more: bool,
    receipts: Vec<DeliveryReceipt>,
}

/// Why a history request produced no page.
#[derive(Debug)]
enum PageError {
    UnknownUser(Username),
    Storage(String),
}

impl From<StorageError> for PageError {
    fn from(error: StorageError) -> Self {
        PageError::Storage(error.to_string())
    }
}

/// A stored message as clients see it. `None` for a row whose names are not valid user names, which only a
/// database edited by hand can hold; such a row is skipped rather than sent.
pub fn to_chat_message(row: StoredMessage) -> Option<ChatMessage> {
    let from = Username::parse(&row.from.name).ok()?;
    let to = match row.to {
        StoredRecipient::World => Target::World,
        StoredRecipient::User(user) => Target::User(Username::parse(&user.name).ok()?),
    };
    Some(ChatMessage { id: row.id, from, to, text: row.text, sent_at_ms: row.sent_at_ms })
}

/// Fills a page from `rows` in the order given, returning the page's messages, how many rows it consumed, and the
/// rows that the page holds (for delivery marking).
fn fill(rows: Vec<StoredMessage>, limit: usize) -> (Vec<ChatMessage>, usize, Vec<StoredMessage>) {
    let mut page = PageBuilder::history(limit);
    let mut consumed = 0;
    let mut kept = Vec::new();
    for row in rows {
        match to_chat_message(row.clone()) {
            Some(message) => {
                if page.push(message).is_err() {
                    break;
                }
                kept.push(row);
            }
            None => tracing::warn!(id = row.id, "skipped a stored message with an invalid user name"),
        }
        consumed += 1;
    }
    (page.into_items(), consumed, kept)
}

/// The page size actually served: the client's wish, capped.
fn page_limit(limit: u16) -> Option<usize> {
    (limit > 0).then(|| usize::from(limit.min(MAX_HISTORY_PAGE)))
}

impl Connection {
    pub(super) async fn sync_history(
        &mut self,
        req: u32,
        after_id: u64,
        limit: u16,
        user: &Username,
        user_id: UserId,
    ) -> Flow {
        let Some(limit) = page_limit(limit) else {
            self.refuse(Some(req), ErrorCode::HistoryLimit, "a history page must hold at least one message");
            return Ok(());
        };
        // Held until the page is queued, built and encrypted (see `HISTORY_SLOTS`). The semaphore is never closed.
        let _slot = HISTORY_SLOTS.acquire().await.ok();
        let storage = Arc::clone(&self.context.storage);
        let page = tokio::task::spawn_blocking(move || -> Result<Page, PageError> {
            let rows = storage.sync_after(user_id, after_id, limit.saturating_add(1))?;
            let total = rows.len();
            let (messages, consumed, kept) = fill(rows, limit);
            // Private messages to this user that were waiting: this page delivers them.
            let waiting: Vec<MessageId> = kept
                .iter()
                .filter(|row| {
                    row.delivered_at_ms.is_none()
                        && row.from.id != user_id
                        && matches!(&row.to, StoredRecipient::User(to) if to.id == user_id)
                })
                .map(|row| row.id)
                .collect();
            let receipts = if waiting.is_empty() {
                Vec::new()
            } else {
                storage.mark_delivered(user_id, &waiting, utc_now_ms())?
            };
            Ok(Page { messages, more: total > consumed, receipts })
        })
        .await;
        self.send_page(req, page.map_err(|e| PageError::Storage(e.to_string())).and_then(|p| p), user).await
    }

    pub(super) async fn history(
        &mut self,
        req: u32,
        target: &Target,
        before_id: Option<u64>,
        limit: u16,
        user_id: UserId,
    ) {
        let Some(limit) = page_limit(limit) else {
            self.refuse(Some(req), ErrorCode::HistoryLimit, "a history page must hold at least one message");
            return;
        };
        // Held until the page is queued, built and encrypted (see `HISTORY_SLOTS`). The semaphore is never closed.
        let _slot = HISTORY_SLOTS.acquire().await.ok();
        let storage = Arc::clone(&self.context.storage);
        let target = target.clone();
        let page = tokio::task::spawn_blocking(move || -> Result<Page, PageError> {
            let peer = match &target {
                Target::World => StoredTarget::World,
                Target::User(name) => match storage.find_user(name.as_str())? {
                    Some(record) => StoredTarget::User(record.id),
                    None => return Err(PageError::UnknownUser(name.clone())),
                },
            };
            let mut rows = storage.conversation_before(user_id, peer, before_id, limit.saturating_add(1))?;
            let total = rows.len();
            // Newest first into the page, so a page cut short by size stays next to `before_id`.
            rows.reverse();
            let (mut messages, consumed, _) = fill(rows, limit);
            messages.reverse();
            Ok(Page { messages, more: total > consumed, receipts: Vec::new() })
        })
        .await;
        let page = page.map_err(|e| PageError::Storage(e.to_string())).and_then(|p| p);
        let _ = self.send_page_without_receipts(req, page);
    }

    pub(super) async fn received(&mut self, ids: Vec<u64>, user: &Username, user_id: UserId) -> Flow {
        if ids.is_empty() {
            return Ok(());
        }
        let storage = Arc::clone(&self.context.storage);
        let marked = tokio::task::spawn_blocking(move || storage.mark_delivered(user_id, &ids, utc_now_ms())).await;
        match marked {
            Ok(Ok(receipts)) if receipts.is_empty() => Ok(()),
            Ok(Ok(receipts)) => self.tell_hub(HubInput::Receipts { recipient: user.clone(), receipts }).await,
            Ok(Err(error)) => {
                tracing::warn!(peer = %self.peer, %error, "could not record deliveries");
                Ok(())
            }
            Err(error) => {
                tracing::warn!(peer = %self.peer, %error, "delivery recording stopped");
                Ok(())
            }
        }
    }

    async fn send_page(&mut self, req: u32, page: Result<Page, PageError>, user: &Username) -> Flow {
        let receipts = self.send_page_without_receipts(req, page);
        if receipts.is_empty() {
            return Ok(());
        }
        self.tell_hub(HubInput::Receipts { recipient: user.clone(), receipts }).await
    }

    /// Queues the page (or its error) and hands back the receipts to route.
    fn send_page_without_receipts(&mut self, req: u32, page: Result<Page, PageError>) -> Vec<DeliveryReceipt> {
        match page {
            Ok(Page { messages, more, receipts }) => {
                self.queue(&ServerMessage::HistoryPage { req, messages, more });
                receipts
            }
            Err(PageError::UnknownUser(name)) => {
                self.refuse(Some(req), ErrorCode::UnknownUser, format!("there is no user named {name}"));
                Vec::new()
            }
            Err(PageError::Storage(error)) => {
                tracing::error!(peer = %self.peer, %error, "could not read history");
                self.queue(&ServerMessage::Error {
                    req: Some(req),
                    code: ErrorCode::Internal,
                    message: "the server could not read the history; please try again".into(),
                });
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::UserRef;
    use chatlab_proto::limits::MAX_TEXT_BYTES;

    fn row(id: u64, from: &str, to: Option<&str>, text: &str) -> StoredMessage {
        StoredMessage {
            id,
            from: UserRef { id: 1, name: from.into() },
            to: match to {
                Some(name) => StoredRecipient::User(UserRef { id: 2, name: name.into() }),
                None => StoredRecipient::World,
            },
            text: text.into(),
            sent_at_ms: 9,
            delivered_at_ms: None,
            client_msg_id: None,
        }
    }

    #[test]
    fn stored_rows_become_chat_messages() {
        let message = to_chat_message(row(3, "ann", Some("bob"), "hi")).unwrap();
        assert_eq!(message.id, 3);
        assert_eq!(message.to, Target::User(Username::parse("bob").unwrap()));
        assert_eq!(to_chat_message(row(4, "ann", None, "x")).unwrap().to, Target::World);
    }

    #[test]
    fn rows_with_invalid_names_are_skipped_but_consumed() {
        assert!(to_chat_message(row(1, "Not Valid", None, "x")).is_none());
        assert!(to_chat_message(row(1, "ann", Some("world"), "x")).is_none());
        let (messages, consumed, kept) = fill(vec![row(1, "BAD NAME", None, "x"), row(2, "ann", None, "y")], 10);
        assert_eq!(messages.len(), 1);
        assert_eq!((consumed, kept.len()), (2, 1));
    }

    #[test]
    fn pages_are_cut_by_count_and_by_size() {
        let rows: Vec<StoredMessage> = (1..=5).map(|id| row(id, "ann", None, "short")).collect();
        let (messages, consumed, _) = fill(rows, 3);
        assert_eq!((messages.len(), consumed), (3, 3));

        let long = "x".repeat(MAX_TEXT_BYTES);
        let rows: Vec<StoredMessage> = (1..=40).map(|id| row(id, "ann", None, &long)).collect();
        let (messages, consumed, _) = fill(rows, 500);
        assert!(messages.len() > 1 && messages.len() < 40, "{}", messages.len());
        assert_eq!(consumed, messages.len());
    }

    proptest::proptest! {
        #[test]
        fn a_page_never_exceeds_its_limit_or_a_frame(
            texts in proptest::collection::vec("\\PC{1,300}", 0..60),
            limit in 1usize..80,
        ) {
            let rows: Vec<StoredMessage> =
                texts.iter().enumerate().map(|(n, t)| row(n as u64 + 1, "ann", None, t)).collect();
            let total = rows.len();
            let (messages, consumed, kept) = fill(rows, limit);
            proptest::prop_assert!(messages.len() <= limit && consumed <= total);
            proptest::prop_assert_eq!(messages.len(), kept.len());
            let encoded = chatlab_proto::control::encode(&ServerMessage::HistoryPage { req: u32::MAX, messages, more: true });
            proptest::prop_assert!(encoded.is_ok());
        }
    }

    #[test]
    fn zero_limit_is_refused_and_large_ones_capped() {
        assert_eq!(page_limit(0), None);
        assert_eq!(page_limit(7), Some(7));
        assert_eq!(page_limit(u16::MAX), Some(usize::from(MAX_HISTORY_PAGE)));
    }
}
