//! Messages from the server, over TCP or UDP, matched to what is waiting for them.
//!
//! The two transports carry the same chat vocabulary (see `chat::payload` in the proto crate), so a message pushed
//! over UDP and one pushed over TCP end up in the same place: [`Actor::deliver`], which de-duplicates by id and
//! moves the sync cursor. One difference is visible here: over TCP the client reports arrival with `Received` so the
//! server can send the sender a receipt; over UDP the engine's acknowledgement already says so. Only a private
//! message addressed to this user is reported: receipts exist only for those (a world message reaches a whole
//! room, so "delivered" has no single meaning), and each report costs the server a storage write, so reporting
//! every world push would make a busy room cost the server one write per message per reader.
//!
//! **Receipts go in batches.** One `Received` names many ids: the core collects the ids of the pushes it takes in
//! and reports them when no further frame is waiting to be read (or [`MAX_RECEIPT_BATCH`] have gathered). A person
//! chatting gets one report per message as before, with no delay; a burst (a classmate's script blasting thousands
//! of messages) gets one report per burst instead of one per message. Reporting one by one made the recipient spend
//! a write (and the server a storage write and a token of its per-session report budget) per message: the reports
//! over that budget were ignored, so the server delivered those messages again at the next login, and a recipient
//! busy writing reports read its socket too slowly and was disconnected as a slow reader.

use chatlab_proto::chat::{ChatMessage, ChatPayload, Target};
use chatlab_proto::control::{ClientMessage, ErrorCode, KeyMaterial, ServerMessage, Transport};
use chatlab_proto::limits::MAX_TEXT_BYTES;

use super::pending::{AccountOp, Request, SyncOrigin};
use super::{Actor, Link};
use crate::channel::{self, Inbound};
use crate::error::ClientError;
use crate::event::{Accepted, ClientEvent, HistoryPage, MessageSource, SessionInfo};
use crate::udp::UdpReport;

/// Most message ids one `Received` names: the server ignores ids beyond 1 024 in one report (`MAX_RECEIVED_IDS`
/// in the server's `limits`), and a report of 1 024 ids is an 8 KiB frame.
pub(super) const MAX_RECEIPT_BATCH: usize = 1024;

/// Ids of private messages pushed over TCP and not reported with `Received` yet.
#[derive(Debug, Default)]
pub(super) struct ReceiptBatch {
    ids: Vec<u64>,
}

impl ReceiptBatch {
    /// Adds `id`; returns a full batch ([`MAX_RECEIPT_BATCH`] ids) to report at once.
    pub(super) fn push(&mut self, id: u64) -> Option<Vec<u64>> {
        self.ids.push(id);
        (self.ids.len() >= MAX_RECEIPT_BATCH).then(|| self.take())
    }

    /// Everything gathered so far (possibly nothing).
    pub(super) fn take(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.ids)
    }
}

/// What a session grant carries, unpacked.
struct Grant {
    user: chatlab_proto::chat::Username,
    connection_id: u64,
    key_material: KeyMaterial,
    udp_port: u16,
    max_text_bytes: u32,
}

/// Whether a message pushed over TCP should be confirmed with `Received`: only a private message addressed to `me`,
/// the user logged in here (as typed at login; names differ from the server's only in ASCII case). World messages
/// have no receipts, and a private message *from* `me` arrives here only because another session of `me` sent it.
fn wants_receipt(message: &ChatMessage, me: Option<&str>) -> bool {
    match (&message.to, me) {
        (Target::User(to), Some(me)) => to.as_str().eq_ignore_ascii_case(me),
        _ => false,
    }
}

impl Actor {
    /// A frame or the end of the TCP connection.
    pub(super) async fn on_inbound(&mut self, inbound: Inbound) {
        let frame = match inbound {
            Inbound::Frame(frame) => frame,
            Inbound::Closed(reason) => return self.lose_link(reason).await,
        };
        let Link::Up(conn) = &mut self.link else { return };
        conn.last_heard = tokio::time::Instant::now();
        match channel::open(&mut conn.noise, &frame) {
            Ok(message) => self.on_server(message).await,
            // A frame that does not decrypt means the stream is out of step (or tampered with): it cannot recover.
            Err(err) => self.lose_link(err.to_string()).await,
        }
    }

    /// One control message.
    async fn on_server(&mut self, message: ServerMessage) {
        match message {
            ServerMessage::Registered { username } => match self.pending.account.take() {
                Some((AccountOp::Register { reply }, _)) => drop(reply.send(Ok(username))),
                other => self.pending.account = other,
            },
            ServerMessage::SessionGrant { user, connection_id, key_material, udp_port, max_text_bytes } => {
                self.on_grant(Grant { user, connection_id, key_material, udp_port, max_text_bytes }).await
            }
            ServerMessage::Error { req: Some(req), code, message } => self.on_request_error(req, code, message).await,
            ServerMessage::Error { req: None, code, message } => self.on_account_error(code, message).await,
            ServerMessage::ChatRejected { client_msg_id, code, message } => {
                self.reject(client_msg_id, code, message).await
            }
            ServerMessage::ChatAccepted { client_msg_id, id, sent_at_ms } => {
                self.accept(client_msg_id, id, sent_at_ms, Transport::Tcp).await
            }
            ServerMessage::Users { req, users, more } => self.on_users(req, users, more),
            ServerMessage::Presence { user, online } => self.emit(ClientEvent::Presence { user, online }).await,
            ServerMessage::HistoryPage { req, messages, more } => self.on_page(req, messages, more).await,
            ServerMessage::Chat(message) => {
                let me = self.credentials.as_ref().map(|credentials| credentials.username.as_str());
                let report = wants_receipt(&message, me).then_some(message.id);
                self.deliver(message, MessageSource::Live).await;
                if let Some(full) = report.and_then(|id| self.receipts_due.push(id)) {
                    // A failed write drops the connection; the next sync confirms these messages.
                    let _ = self.send_control(&ClientMessage::Received { ids: full }).await;
                }
            }
            ServerMessage::Receipt { id, to } => self.emit(ClientEvent::Receipt { id, to }).await,
            ServerMessage::LoggedOut => self.on_logged_out().await,
            // Any frame already counted as a sign of life; a stray Welcome changes nothing.
            ServerMessage::Pong { .. } | ServerMessage::Welcome { .. } => {}
        }
    }

    /// Reports the pushes taken in since the last report as one `Received` (see the module docs).
    pub(super) async fn report_received(&mut self) {
        let ids = self.receipts_due.take();
        if !ids.is_empty() {
            // A failed write drops the connection; the next sync confirms these messages.
            let _ = self.send_control(&ClientMessage::Received { ids }).await;
        }
    }

    /// A report from the UDP task.
    pub(super) async fn on_udp(&mut self, report: UdpReport) {
        match report {
            UdpReport::Confirmed => self.udp_confirmed().await,
            UdpReport::PeerIdle => self.udp_silent().await,
            UdpReport::Failed(error) => self.udp_failed(error).await,
            UdpReport::Payload(ChatPayload::Accepted { client_msg_id, id, sent_at_ms }) => {
                self.accept(client_msg_id, id, sent_at_ms, Transport::Udp).await
            }
            UdpReport::Payload(ChatPayload::Rejected { client_msg_id, code, message }) => {
                self.reject(client_msg_id, code, message).await
            }
            UdpReport::Payload(ChatPayload::Message(message)) => {
                self.deliver(message, MessageSource::Live).await;
            }
            UdpReport::Payload(ChatPayload::Receipt { id, to }) => self.emit(ClientEvent::Receipt { id, to }).await,
            UdpReport::Payload(ChatPayload::Send { .. }) => {
                tracing::warn!("the server sent a client-side chat payload over UDP; ignored")
            }
            UdpReport::Undecodable(reason) => tracing::warn!("undecodable chat payload over UDP: {reason}"),
            UdpReport::Room => self.fill_window().await,
        }
    }

    /// Reports a message once. True if it was new. (The sync cursor moves only when a sync completes.)
    pub(super) async fn deliver(&mut self, message: ChatMessage, source: MessageSource) -> bool {
        self.last_id = self.last_id.max(message.id);
        if !self.recent.insert(message.id) {
            return false;
        }
        self.emit(ClientEvent::Message { message, source }).await;
        true
    }

    async fn accept(&mut self, client_msg_id: u64, id: u64, sent_at_ms: i64, transport: Transport) {
        let Some(send) = self.pending.sends.remove(&client_msg_id) else {
            tracing::debug!("acceptance of message {client_msg_id}, which nobody waits for any more");
            return;
        };
        self.last_id = self.last_id.max(id);
        self.latency.record(transport, send.started.elapsed());
        // The sender's own message may come back in a later sync; it is not news.
        self.recent.insert(id);
        let accepted = Accepted { client_msg_id, id, sent_at_ms, to: send.to, transport };
        self.emit(ClientEvent::Accepted(accepted.clone())).await;
        let _ = send.reply.send(Ok(accepted));
    }

    async fn reject(&mut self, client_msg_id: u64, code: ErrorCode, message: String) {
        if code == ErrorCode::ServerShuttingDown && self.keep_through_restart(client_msg_id) {
            return;
        }
        let Some(send) = self.pending.sends.remove(&client_msg_id) else { return };
        let err = ClientError::from_chat_rejection(code, message, send.text.len(), self.text_limit);
        self.fail_send(client_msg_id, send, err).await;
    }

    fn on_users(&mut self, req: u32, mut page: Vec<chatlab_proto::chat::Username>, more: bool) {
        let Some((Request::Users { reply, mut users }, deadline)) = self.pending.requests.remove(&req) else { return };
        users.append(&mut page);
        if more {
            self.pending.requests.insert(req, (Request::Users { reply, users }, deadline));
        } else {
            let _ = reply.send(Ok(users));
        }
    }

    async fn on_page(&mut self, req: u32, messages: Vec<ChatMessage>, more: bool) {
        match self.pending.requests.remove(&req) {
            Some((Request::History { reply }, _)) => drop(reply.send(Ok(HistoryPage { messages, more }))),
            Some((Request::Sync { origin, mut count, after }, _)) => {
                // The next page starts after this page's last message, not after the newest id seen: a live push
                // with a larger id may have arrived meanwhile, and the messages between must still come.
                let cursor = messages.iter().map(|message| message.id).max();
                for message in messages {
                    if self.deliver(message, MessageSource::Sync).await {
                        count = count.saturating_add(1);
                    }
                }
                match cursor {
                    Some(after_id) if more => self.request_sync_page(origin, count, after_id).await,
                    _ => {
                        // Complete: every message this user may see up to here has now been delivered.
                        self.sync_cursor = self.sync_cursor.max(cursor.unwrap_or(after));
                        self.emit(ClientEvent::Synced { messages: count }).await;
                        if let SyncOrigin::User(reply) = origin {
                            let _ = reply.send(Ok(count));
                        }
                    }
                }
            }
            Some(other) => {
                tracing::warn!("a history page answered request {req}, which asked for something else");
                self.pending.requests.insert(req, other);
            }
            None => tracing::debug!("a history page for request {req}, which nobody waits for any more"),
        }
    }

    async fn on_request_error(&mut self, req: u32, code: ErrorCode, message: String) {
        let err = ClientError::from_server(code, message);
        match self.pending.requests.remove(&req) {
            Some((Request::History { reply }, _)) => drop(reply.send(Err(err))),
            Some((Request::Users { reply, .. }, _)) => drop(reply.send(Err(err))),
            Some((Request::Sync { origin: SyncOrigin::User(reply), .. }, _)) => drop(reply.send(Err(err))),
            Some((Request::Sync { .. }, _)) | None => self.emit(ClientEvent::Error(err)).await,
        }
    }

    /// An error without a request number: the answer to the account operation in flight, if there is one.
    async fn on_account_error(&mut self, code: ErrorCode, message: String) {
        let err = ClientError::from_server(code, message);
        match self.pending.account.take() {
            Some((AccountOp::Register { reply }, _)) => drop(reply.send(Err(err))),
            Some((AccountOp::Login { reply: Some(reply), .. }, _)) => drop(reply.send(Err(err))),
            Some((AccountOp::Logout { reply }, _)) => drop(reply.send(Err(err))),
            Some((AccountOp::Login { reply: None, .. }, _)) => self.relogin_failed(err).await,
            None => self.emit(ClientEvent::Error(err)).await,
        }
    }

    /// The automatic login after a reconnect was refused. Passing trouble (too many attempts, a server starting or
    /// stopping) is retried with back-off; a refusal of the credentials themselves is final and said once.
    ///
    /// "Final" is exactly [`ClientError::ends_the_session`], the rule the faces use to leave the chat: a refusal the
    /// core gave up on but a face took for a passing notice would leave a window chatting over a connection that is
    /// no longer logged in. Anything not known to be final (a code from a newer server, say) is retried.
    async fn relogin_failed(&mut self, err: ClientError) {
        let passing = matches!(
            err.server_code(),
            Some(ErrorCode::LoginRateLimited | ErrorCode::Internal | ErrorCode::ServerShuttingDown)
        ) || !err.ends_the_session();
        if passing {
            self.lose_link(format!("logging in again failed: {err}")).await;
        } else {
            self.credentials = None;
            self.fail_outbox(&err).await;
            self.emit(ClientEvent::Error(err)).await;
        }
    }

    async fn on_grant(&mut self, grant: Grant) {
        let (reply, credentials) = match self.pending.account.take() {
            Some((AccountOp::Login { reply, credentials }, _)) => (reply, credentials),
            other => {
                self.pending.account = other;
                tracing::warn!("a session grant nobody asked for; ignored");
                return;
            }
        };
        let Link::Up(conn) = &self.link else { return };
        let udp_server = std::net::SocketAddr::new(conn.peer.ip(), grant.udp_port);
        let relogin = reply.is_none();
        let max_text_bytes = usize::try_from(grant.max_text_bytes).unwrap_or(MAX_TEXT_BYTES).min(MAX_TEXT_BYTES);
        self.credentials = Some(credentials);
        self.text_limit = max_text_bytes;
        // Stream numbers belong to one engine; a new session starts a new engine.
        self.streams = chatlab_proto::chat::StreamMap::new();
        self.session = Some(super::Session {
            transport: self.preference,
            key_material: *grant.key_material.expose(),
            connection_id: grant.connection_id,
            udp_server,
            endpoint: None,
            udp: None,
            probe: None,
        });
        if relogin {
            self.backoff.reset();
            self.emit(ClientEvent::Reconnected).await;
        }
        self.begin_transport().await;
        if relogin {
            // Before the sync is asked for. Over TCP the server then answers the resends first; while a UDP probe
            // holds them the sync may overtake them, and a message stored before the break comes back in the sync
            // before its acceptance (a face that merges by id, as the window does, shows it once).
            self.release_outbox().await;
        }
        let transport = self.session.as_ref().map_or(Transport::Tcp, |session| session.transport);
        if let Some(reply) = reply {
            let _ = reply.send(Ok(SessionInfo { user: grant.user, max_text_bytes, transport }));
        }
        if relogin && (self.last_id > 0 || self.config.sync_on_login) {
            self.start_sync(SyncOrigin::Reconnect).await;
        } else if !relogin && self.config.sync_on_login {
            self.start_sync(SyncOrigin::Login).await;
        }
    }

    async fn on_logged_out(&mut self) {
        self.session = None;
        self.credentials = None;
        self.fail_all_sends(&ClientError::NotLoggedIn).await;
        match self.pending.account.take() {
            Some((AccountOp::Logout { reply }, _)) => drop(reply.send(Ok(()))),
            other => self.pending.account = other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_proto::chat::Username;

    fn message(from: &str, to: Target) -> ChatMessage {
        let from = Username::parse(from).expect("valid name");
        ChatMessage { id: 7, from, to, text: "hi".into(), sent_at_ms: 0 }
    }

    fn to_user(name: &str) -> Target {
        Target::User(Username::parse(name).expect("valid name"))
    }

    #[test]
    fn receipts_gather_until_the_batch_is_full() {
        let mut batch = ReceiptBatch::default();
        for id in 1..MAX_RECEIPT_BATCH as u64 {
            assert_eq!(batch.push(id), None);
        }
        let full = batch.push(MAX_RECEIPT_BATCH as u64).expect("a full batch");
        assert_eq!(full, (1..=MAX_RECEIPT_BATCH as u64).collect::<Vec<_>>());
        assert!(batch.take().is_empty(), "a full batch leaves nothing behind");
        assert_eq!(batch.push(7), None);
        assert_eq!(batch.take(), [7]);
    }

    #[test]
    fn only_private_messages_to_me_get_a_received() {
        assert!(wants_receipt(&message("bob", to_user("ann")), Some("ann")));
        // Typed with capitals at login: still the same account.
        assert!(wants_receipt(&message("bob", to_user("ann")), Some("Ann")));
        assert!(!wants_receipt(&message("bob", Target::World), Some("ann")), "world messages have no receipts");
        assert!(!wants_receipt(&message("ann", to_user("bob")), Some("ann")), "my own message, from my other session");
        assert!(!wants_receipt(&message("bob", to_user("ann")), None), "no session, nobody to confirm for");
    }
}
