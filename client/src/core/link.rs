//! Losing the control connection and getting it back.
//!
//! A TCP connection can end cleanly (the server closed it), abruptly (a reset), or silently: a peer that vanished
//! without a word looks exactly like a quiet one, and TCP's own keepalive only probes after two hours. So once
//! logged in the client sends a `Ping` every [`heartbeat_interval`](crate::ClientConfig::heartbeat_interval) and
//! treats [`heartbeat_timeout`](crate::ClientConfig::heartbeat_timeout) without any frame as a dead connection. (Not
//! before login: a server caps the frames a connection may send before logging in.)
//!
//! When the connection is lost:
//!
//! 1. the requests in flight (history, user list, sync, an account operation) fail at once with
//!    [`ClientError::Disconnected`]: their answers would describe a moment that has passed, and the face asks again
//!    after the reconnect. Chat messages are different: when a logged-in session will be restored, every message
//!    still waiting for its acceptance moves to the *outbox* ([`super::outbox`]) and goes out again, under the same
//!    `client_msg_id`, once the client has logged in again; the server recognises a message it already stored, so
//!    nothing is stored twice. Without reconnection they fail like the rest;
//! 2. the session ends with it (the server ends it too: a session lives on one TCP connection);
//! 3. reconnection attempts follow with exponential back-off ([`crate::backoff`]); each one runs the full
//!    handshake, checks the pinned key again and, if a login was open, logs in with the remembered credentials (an
//!    automatic login that gets no answer counts as another lost connection, so it is tried again);
//! 4. the outbox is sent, oldest first, then a history sync from the cursor of the last *completed* sync fetches
//!    what was said meanwhile, and what was still in flight over UDP when the connection died (ids overtake each
//!    other across streams, so the largest id seen is no safe cursor).
//!
//! A reconnection that can never succeed (the server's key changed, another protocol version, a broken
//! known-servers file) stops the attempts, fails what waits in the outbox with the same error, and is reported once
//! as [`ClientEvent::Error`].

use tokio::time::Instant;

use chatlab_proto::control::ClientMessage;

use super::pending::AccountOp;
use super::{Actor, Link};
use crate::channel::{self, Established};
use crate::error::{ClientError, human_duration};
use crate::event::ClientEvent;

impl Actor {
    /// The connection is gone for `reason`: fail what waits, end the session, schedule a reconnection.
    pub(super) async fn lose_link(&mut self, reason: String) {
        if !matches!(self.link, Link::Up(_)) {
            return;
        }
        // Frames the old reader task still hands over belong to a dead connection.
        self.generation = self.generation.wrapping_add(1);
        self.link = Link::Down { reason: reason.clone() };
        self.session = None;
        self.receipts_due.take();
        let disconnected = || ClientError::Disconnected { reason: reason.clone() };
        if self.config.reconnect && self.credentials.is_some() {
            self.pending.fail_requests(disconnected);
            self.keep_unanswered_sends();
        } else {
            self.pending.fail_requests(disconnected);
            self.fail_all_sends(&disconnected()).await;
        }
        self.emit(ClientEvent::Disconnected { reason: reason.clone() }).await;
        if self.config.reconnect {
            self.schedule_reconnect(reason).await;
        }
    }

    /// Waits with back-off before the next attempt.
    async fn schedule_reconnect(&mut self, reason: String) {
        let delay = self.backoff.next_delay_with_jitter();
        let attempt = self.backoff.attempts();
        self.link = Link::Waiting { attempt, at: Instant::now() + delay, reason };
        self.emit(ClientEvent::Reconnecting { attempt, delay }).await;
    }

    /// The connection's timers: the next reconnection attempt, or the heartbeat.
    pub(super) async fn tick_link(&mut self, now: Instant) {
        match &mut self.link {
            Link::Waiting { attempt, at, reason } if *at <= now => {
                let (attempt, reason) = (*attempt, std::mem::take(reason));
                self.link = Link::Connecting { attempt, reason };
                let config = self.config.clone();
                let results = self.reconnect_tx.clone();
                tokio::spawn(async move {
                    let result = channel::establish(&config).await;
                    let _ = results.send((attempt, result)).await;
                });
            }
            Link::Up(conn) if self.session.is_some() => {
                if let Some(sent) = conn.heartbeat_sent {
                    if conn.last_heard >= sent {
                        conn.heartbeat_sent = None;
                        conn.next_heartbeat = now + self.config.heartbeat_interval;
                    } else if now.duration_since(sent) >= self.config.heartbeat_timeout {
                        let silent = human_duration(self.config.heartbeat_timeout);
                        self.lose_link(format!("no answer from the server for {silent}")).await;
                    }
                } else if now >= conn.next_heartbeat {
                    let nonce = conn.next_nonce;
                    conn.next_nonce = conn.next_nonce.wrapping_add(1);
                    conn.heartbeat_sent = Some(now);
                    let _ = self.send_control(&ClientMessage::Ping { nonce }).await;
                }
            }
            _ => {}
        }
    }

    /// A reconnection attempt finished.
    pub(super) async fn on_reconnect_result(&mut self, attempt: u32, result: Result<Established, ClientError>) {
        if !matches!(self.link, Link::Connecting { attempt: current, .. } if current == attempt) {
            return;
        }
        match result {
            Ok(established) => {
                let pinned = established.pinned_now.then_some(established.fingerprint);
                self.install(established);
                if let Some(fingerprint) = pinned {
                    let server = self.config.server.clone();
                    self.emit(ClientEvent::ServerKeyPinned { server, fingerprint }).await;
                }
                match self.credentials.clone() {
                    Some(credentials) => {
                        let login = ClientMessage::Login {
                            username: credentials.username.clone(),
                            password: credentials.password.clone(),
                        };
                        let deadline = Instant::now() + self.config.request_timeout;
                        self.pending.account = Some((AccountOp::Login { reply: None, credentials }, deadline));
                        let _ = self.send_control(&login).await;
                    }
                    None => {
                        self.backoff.reset();
                        self.emit(ClientEvent::Reconnected).await;
                    }
                }
            }
            Err(err) if is_permanent(&err) => {
                self.link = Link::Down { reason: err.to_string() };
                self.fail_outbox(&err).await;
                self.emit(ClientEvent::Error(err)).await;
            }
            Err(err) => self.schedule_reconnect(err.to_string()).await,
        }
    }
}

/// Failures that another attempt cannot cure.
fn is_permanent(err: &ClientError) -> bool {
    matches!(
        err,
        ClientError::ServerKeyChanged { .. }
            | ClientError::VersionMismatch { .. }
            | ClientError::KnownServers(_)
            | ClientError::BadAddress { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_proto::noise::ServerKey;

    #[test]
    fn only_incurable_failures_stop_reconnecting() {
        let fingerprint = ServerKey::from_bytes([1; 32]).fingerprint();
        let changed = ClientError::ServerKeyChanged {
            server: "h:1".into(),
            pinned: fingerprint,
            presented: fingerprint,
            known_servers: "k".into(),
        };
        assert!(is_permanent(&changed));
        assert!(is_permanent(&ClientError::VersionMismatch { message: "v2".into() }));
        assert!(is_permanent(&ClientError::KnownServers("bad".into())));
        assert!(is_permanent(&ClientError::BadAddress { server: "x".into(), reason: "y".into() }));
        assert!(!is_permanent(&ClientError::Unreachable { server: "h:1".into(), reason: "refused".into() }));
        assert!(!is_permanent(&ClientError::Handshake { server: "h:1".into(), reason: "closed".into() }));
        assert!(!is_permanent(&ClientError::Timeout { what: "x".into(), after: Default::default() }));
    }
}
