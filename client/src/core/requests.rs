//! Commands from the handle: check what can be checked locally, register the request as pending, send it.
//!
//! Local checks use the very functions the server uses ([`Username::parse`], [`Password::check`],
//! [`validate_text_with_limit`]), so a mistake is reported at once, without a round trip, and with exactly the
//! words the server would have used.

use tokio::time::Instant;

use chatlab_proto::chat::{Target, TextError, Username, normalize_text, validate_text_with_limit};
use chatlab_proto::control::{ClientMessage, MAX_PAGE_ITEMS, Password, Transport};
use tokio::sync::OwnedSemaphorePermit;

use super::pending::{AccountOp, PendingSend, Request, SendState, SyncOrigin};
use super::{Actor, Command, Credentials, Link, Reply};
use crate::error::ClientError;
use crate::event::{Accepted, HistoryPage};

/// Messages asked for per sync page: the most one page may hold, so a sync takes as few round trips as possible.
const SYNC_PAGE_LIMIT: u16 = 500;
const _: () = assert!(SYNC_PAGE_LIMIT as usize <= MAX_PAGE_ITEMS);

impl Actor {
    /// Dispatches one command.
    pub(super) async fn on_command(&mut self, command: Command) {
        match command {
            Command::Register { username, password, reply } => self.register(username, password, reply).await,
            Command::Login { username, password, reply } => self.login(username, password, reply).await,
            Command::Send { to, text, started, budget, reply } => {
                self.send_chat(ChatRequest { to, text, started, budget, reply }).await
            }
            Command::History { target, before, limit, reply } => self.history(target, before, limit, reply).await,
            Command::Sync { reply } => match self.session_check() {
                Ok(()) => self.start_sync(SyncOrigin::User(reply)).await,
                Err(err) => drop(reply.send(Err(err))),
            },
            Command::Users { reply } => self.users(reply).await,
            Command::SetTransport { transport, reply } => {
                let result = if self.session.is_some() {
                    self.preference = transport;
                    self.switch_transport(transport).await
                } else if self.credentials.is_some() {
                    // A session is being restored. Refused rather than remembered: nothing would report the
                    // switch once the session is back, and a face would keep showing a switch that never
                    // finished. The user asks again once connected.
                    Err(self.session_check().err().unwrap_or_else(|| self.disconnected_error()))
                } else {
                    // Before any login: the preference for the session to come.
                    self.preference = transport;
                    Ok(())
                };
                let _ = reply.send(result);
            }
            Command::Logout { reply } => self.logout(reply).await,
            Command::Stats { reply } => self.collect_stats(move |stats| drop(reply.send(Ok(stats)))),
            Command::SetImpairment { impairment, reply } => {
                let result = impairment.validate().map(|()| {
                    // Replaced even with no UDP task listening: the next session starts with it.
                    self.impairment.send_replace(*impairment);
                });
                let _ = reply.send(result);
            }
            // Handled by the event loop before it gets here.
            Command::Shutdown { reply } => drop(reply.send(())),
        }
    }

    /// Whether an account operation may start now.
    fn account_check(&self) -> Result<(), ClientError> {
        if !matches!(self.link, Link::Up(_)) {
            return Err(self.disconnected_error());
        }
        if let Some((op, _)) = &self.pending.account {
            let busy = match op {
                AccountOp::Login { reply: None, .. } => "logging in again after a reconnect",
                AccountOp::Login { .. } => "a login is in progress",
                AccountOp::Register { .. } => "a registration is in progress",
                AccountOp::Logout { .. } => "a logout is in progress",
            };
            return Err(ClientError::Disconnected { reason: busy.to_string() });
        }
        Ok(())
    }

    /// Whether a request that needs a session may start now.
    pub(super) fn session_check(&self) -> Result<(), ClientError> {
        if !matches!(self.link, Link::Up(_)) {
            return Err(self.disconnected_error());
        }
        if self.session.is_none() {
            if matches!(self.pending.account, Some((AccountOp::Login { reply: None, .. }, _))) {
                return Err(ClientError::Disconnected { reason: "logging in again after a reconnect".to_string() });
            }
            return Err(ClientError::NotLoggedIn);
        }
        Ok(())
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.config.request_timeout
    }

    async fn register(&mut self, username: String, password: Password, reply: Reply<Username>) {
        if let Err(err) = self.account_check().and_then(|()| check_credentials(&username, &password)) {
            let _ = reply.send(Err(err));
            return;
        }
        self.pending.account = Some((AccountOp::Register { reply }, self.deadline()));
        // On failure the connection is dropped, which fails the pending registration with the reason.
        let _ = self.send_control(&ClientMessage::Register { username, password }).await;
    }

    async fn login(&mut self, username: String, password: Password, reply: Reply<super::SessionInfo>) {
        let check = self.account_check().and_then(|()| match self.session {
            Some(_) => Err(ClientError::AlreadyLoggedIn),
            None => check_credentials(&username, &password),
        });
        if let Err(err) = check {
            let _ = reply.send(Err(err));
            return;
        }
        let credentials = Credentials { username: username.clone(), password: password.clone() };
        self.pending.account = Some((AccountOp::Login { reply: Some(reply), credentials }, self.deadline()));
        let _ = self.send_control(&ClientMessage::Login { username, password }).await;
    }

    async fn logout(&mut self, reply: Reply<()>) {
        // Between two connection attempts there is no server to tell, and nothing to wait for: logging out means
        // not logging in again. The connection still comes back (logged out, as after any logout), and the
        // messages waiting to be sent are not sent. (While the automatic login itself is in flight the server
        // may be granting it this instant, so that case is refused below and the caller asks again.)
        if self.session.is_none()
            && self.credentials.is_some()
            && matches!(self.link, Link::Waiting { .. } | Link::Connecting { .. })
        {
            self.credentials = None;
            self.fail_outbox(&ClientError::NotLoggedIn).await;
            let _ = reply.send(Ok(()));
            return;
        }
        if let Err(err) = self.session_check().and_then(|()| self.account_check()) {
            let _ = reply.send(Err(err));
            return;
        }
        self.pending.account = Some((AccountOp::Logout { reply }, self.deadline()));
        let _ = self.send_control(&ClientMessage::Logout).await;
    }

    async fn send_chat(&mut self, request: ChatRequest) {
        let ChatRequest { to, text, started, budget, reply } = request;
        // While a logged-in session is being restored, the message waits in the outbox (see `outbox.rs`).
        let queue = self.outbox_open();
        let checked = match queue {
            true => Ok(()),
            false => self.session_check(),
        }
        .and_then(|()| {
            let text = normalize_text(&text);
            validate_text_with_limit(&text, self.text_limit).map_err(text_error)?;
            Ok(text)
        });
        let text = match checked {
            Ok(text) => text,
            Err(err) => {
                let _ = reply.send(Err(err));
                return;
            }
        };
        if queue {
            self.queue_in_outbox(to, text, budget, reply);
            return;
        }
        let Some(session) = &self.session else { return };
        let state = match session.probe {
            Some(_) => SendState::Held,
            None => SendState::Sent(session.transport),
        };
        let client_msg_id = self.client_msg_id();
        let deadline = self.deadline();
        let send =
            PendingSend { reply, to, text, state, deadline, started, outbox_since: None, sent: false, _budget: budget };
        self.pending.sends.insert(client_msg_id, send);
        if let SendState::Sent(transport) = state {
            self.dispatch(client_msg_id, transport).await;
        }
    }

    /// Sends pending chat message `client_msg_id` on `transport` (UDP falls to TCP when no UDP task runs). Over UDP
    /// the message may have to wait for room in the send window first (see `window.rs`).
    ///
    /// Does nothing once the session or the connection is gone: callers send batches (the outbox, held messages),
    /// and a failed write of one message of a batch loses the connection and moves every message back to the
    /// outbox. Marking the rest "sent" into a dead connection would strand them where no resend looks.
    pub(super) async fn dispatch(&mut self, client_msg_id: u64, transport: Transport) {
        if self.session.is_none() || !matches!(self.link, Link::Up(_)) {
            return;
        }
        let Some(send) = self.pending.sends.get_mut(&client_msg_id) else { return };
        if send.cancelled() {
            // Its caller gave up before it left the client: it is not sent at all.
            self.pending.sends.remove(&client_msg_id);
            return;
        }
        let udp = self.session.as_ref().is_some_and(|session| session.udp.is_some());
        if transport == Transport::Udp && udp {
            return self.send_or_wait(client_msg_id).await;
        }
        if send.state == SendState::Waiting {
            // The wait for room in the UDP window is over; the wait for the acceptance starts now.
            send.deadline = Instant::now() + self.config.request_timeout;
        }
        send.state = SendState::Sent(Transport::Tcp);
        send.sent = true;
        let (to, text) = (send.to.clone(), send.text.clone());
        let _ = self.send_control(&ClientMessage::Chat { client_msg_id, to, text }).await;
    }

    async fn history(&mut self, target: Target, before: Option<u64>, limit: u16, reply: Reply<HistoryPage>) {
        let check = self.session_check().and_then(|()| match usize::from(limit) {
            1..=MAX_PAGE_ITEMS => Ok(()),
            _ => Err(ClientError::Rejected {
                code: chatlab_proto::control::ErrorCode::HistoryLimit,
                message: format!("a history page holds 1 to {MAX_PAGE_ITEMS} messages, not {limit}"),
            }),
        });
        if let Err(err) = check {
            let _ = reply.send(Err(err));
            return;
        }
        let req = self.req();
        self.pending.requests.insert(req, (Request::History { reply }, self.deadline()));
        let _ = self.send_control(&ClientMessage::History { req, target, before_id: before, limit }).await;
    }

    async fn users(&mut self, reply: Reply<Vec<Username>>) {
        if let Err(err) = self.session_check() {
            let _ = reply.send(Err(err));
            return;
        }
        let req = self.req();
        self.pending.requests.insert(req, (Request::Users { reply, users: Vec::new() }, self.deadline()));
        let _ = self.send_control(&ClientMessage::ListUsers { req }).await;
    }

    /// Asks for the first (or next) page of everything after `after_id`.
    pub(super) async fn request_sync_page(&mut self, origin: SyncOrigin, count: usize, after_id: u64) {
        let req = self.req();
        self.pending.requests.insert(req, (Request::Sync { origin, count, after: after_id }, self.deadline()));
        let _ = self.send_control(&ClientMessage::SyncHistory { req, after_id, limit: SYNC_PAGE_LIMIT }).await;
    }

    /// Starts a sync from the cursor of the last completed sync (not from the largest id seen: see
    /// [`Actor::sync_cursor`](super::Actor)). What arrived live since comes again and is dropped as a duplicate.
    pub(super) async fn start_sync(&mut self, origin: SyncOrigin) {
        self.request_sync_page(origin, 0, self.sync_cursor).await;
    }
}

/// A chat message as the handle handed it over (the fields of [`Command::Send`]).
struct ChatRequest {
    to: Target,
    text: String,
    started: Instant,
    budget: OwnedSemaphorePermit,
    reply: Reply<Accepted>,
}

/// The same checks the server makes on a registration or login, made before sending.
fn check_credentials(username: &str, password: &Password) -> Result<(), ClientError> {
    Username::parse(username).map_err(|err| ClientError::InvalidUsername { reason: err.to_string() })?;
    password.check().map_err(|err| ClientError::InvalidPassword { reason: err.to_string() })
}

/// A local text check's failure as the error the server would have caused.
fn text_error(err: TextError) -> ClientError {
    match err {
        TextError::TooLong { len, max } => ClientError::TextTooLong { len, max },
        other => ClientError::TextInvalid { reason: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_checked_with_the_server_rules() {
        assert_eq!(check_credentials("ann", &Password::new("pw")), Ok(()));
        assert!(matches!(check_credentials("a n", &Password::new("pw")), Err(ClientError::InvalidUsername { .. })));
        assert!(matches!(check_credentials("", &Password::new("pw")), Err(ClientError::InvalidUsername { .. })));
        let err = check_credentials("ann", &Password::new("")).expect_err("empty password");
        assert_eq!(err, ClientError::InvalidPassword { reason: "password is empty".into() });
    }

    #[test]
    fn text_errors_map_to_client_errors() {
        assert_eq!(
            text_error(TextError::TooLong { len: 5000, max: 4096 }),
            ClientError::TextTooLong { len: 5000, max: 4096 }
        );
        assert_eq!(text_error(TextError::Empty), ClientError::TextInvalid { reason: "message text is empty".into() });
        let err = text_error(TextError::ControlChar { ch: '\u{7}', position: 2 });
        assert!(matches!(&err, ClientError::TextInvalid { reason } if reason.contains("U+0007")), "{err}");
    }
}
