//! The outbox: chat messages that wait for the connection to come back.
//!
//! A connection breaks for reasons that have nothing to do with the message being typed: the Wi-Fi hands over to
//! another access point, the laptop sleeps for a minute, the teacher restarts the server. A chat app that answers
//! "not sent" in that moment pushes the repair onto the person, who must notice, wait and press Send again. What
//! people expect (and what every phone messenger does) is that the message stays in the conversation as "waiting
//! for the connection" and goes out by itself once the app is back. The outbox does exactly that, here in the core so
//! the command-line client and scripts get it too:
//!
//! - **What waits.** While a session that was logged in is being restored (a reconnection attempt is pending or
//!   running, or the automatic login after it has not been answered yet), [`ClientHandle::send`] is accepted
//!   locally and its message queued. The messages that were *in flight* when the connection died (sent, but not yet
//!   accepted) join them: nobody knows whether the server stored them before the break. So do messages the server
//!   refused with `ServerShuttingDown`, which means "not stored, I am going away" (a server restart), not "never".
//! - **Sending twice is safe.** Every message keeps the `client_msg_id` it was given when the caller asked to send
//!   it. The server remembers, per user, which ids it already stored (for ten minutes after the user's last session
//!   ended) and answers a resend with the first copy's id instead of storing it again. The idempotency key is what
//!   turns "at least once" (resend whatever is unanswered) into "exactly once".
//! - **In order, on the right transport.** After the automatic login succeeds the outbox is emptied oldest first
//!   (the ids only grow, so id order is the order of `send` calls). The new session starts its UDP probe first;
//!   while it runs the messages are *held* like any other, and go out on whichever transport the probe settles on.
//! - **Bounded.** At most [`ClientConfig::outbox_capacity`] messages wait (beyond, `send` fails at once with
//!   [`ClientError::OutboxFull`]), and none waits longer than [`ClientConfig::outbox_max_wait`] (then it fails with
//!   a sentence saying the connection did not come back). The wait counts from the moment the caller asked to send
//!   and is never extended by a second break, so it stays inside the server's memory of ids, and the core always
//!   answers before [`ClientHandle::send`] stops waiting.
//! - **Ends with the session.** A reconnection that can never succeed (the server's key changed, another protocol
//!   version), a refused automatic login, `reconnect = false` and a shut-down client fail the waiting messages with
//!   the reason. Other requests (history, the user list, a sync) are not kept: they fail at once as before, since
//!   their answers would describe a moment that has passed.
//!
//! [`ClientHandle::send`]: crate::ClientHandle::send
//! [`ClientConfig::outbox_capacity`]: crate::ClientConfig::outbox_capacity
//! [`ClientConfig::outbox_max_wait`]: crate::ClientConfig::outbox_max_wait
//! [`ClientError::OutboxFull`]: crate::ClientError::OutboxFull

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use chatlab_proto::chat::Target;

use super::pending::{AccountOp, PendingSend, SendState};
use super::{Actor, Link, Reply};
use crate::error::ClientError;
use crate::event::Accepted;

impl Actor {
    /// Whether a chat message sent now waits in the outbox: the connection broke under a logged-in session, and the
    /// client is getting it back (waiting for the next attempt, connecting, or logging in again).
    pub(super) fn outbox_open(&self) -> bool {
        if !self.config.reconnect || self.credentials.is_none() {
            return false;
        }
        match &self.link {
            Link::Waiting { .. } | Link::Connecting { .. } => true,
            Link::Up(_) => {
                self.session.is_none()
                    && matches!(self.pending.account, Some((AccountOp::Login { reply: None, .. }, _)))
            }
            Link::Down { .. } => false,
        }
    }

    /// Queues a new message (already checked) in the outbox, or refuses it when the outbox is full.
    pub(super) fn queue_in_outbox(
        &mut self,
        to: Target,
        text: String,
        budget: OwnedSemaphorePermit,
        reply: Reply<Accepted>,
    ) {
        let queued = self.pending.sends_in(SendState::Queued).len();
        if queued >= self.config.outbox_capacity {
            let _ = reply.send(Err(ClientError::OutboxFull { queued }));
            return;
        }
        let now = Instant::now();
        let client_msg_id = self.client_msg_id();
        let send = PendingSend {
            reply,
            to,
            text,
            state: SendState::Queued,
            deadline: now + self.config.outbox_max_wait,
            started: now,
            outbox_since: Some(now),
            sent: false,
            _budget: budget,
        };
        self.pending.sends.insert(client_msg_id, send);
    }

    /// The connection died under a logged-in session that will be restored: every message still waiting for its
    /// acceptance moves to the outbox, under the same `client_msg_id`.
    pub(super) fn keep_unanswered_sends(&mut self) {
        let now = Instant::now();
        let wait = self.config.outbox_max_wait;
        for send in self.pending.sends.values_mut() {
            // From the moment the caller asked, not from the break: the handle waits at most the longest wait plus
            // one request timeout after asking, and the core must give up (and answer) before the handle does.
            let since = *send.outbox_since.get_or_insert(send.started.min(now));
            send.state = SendState::Queued;
            send.deadline = since + wait;
        }
    }

    /// The server refused message `client_msg_id` because it is shutting down: nothing was stored, and the
    /// connection is about to close. When the session will be restored, the message moves to the outbox like one
    /// whose connection broke, and goes out to the restarted server. Returns whether it was kept.
    pub(super) fn keep_through_restart(&mut self, client_msg_id: u64) -> bool {
        if !self.config.reconnect || self.credentials.is_none() {
            return false;
        }
        let Some(send) = self.pending.sends.get_mut(&client_msg_id) else { return false };
        let since = *send.outbox_since.get_or_insert(send.started);
        send.state = SendState::Queued;
        send.deadline = since + self.config.outbox_max_wait;
        // The refusal says this copy was not stored; if it is given up later, "not sent" is the truth.
        send.sent = false;
        true
    }

    /// The automatic login after a reconnect succeeded: sends the outbox oldest first, or holds it while the new
    /// session's UDP probe decides the transport.
    pub(super) async fn release_outbox(&mut self) {
        let Some(session) = &self.session else { return };
        let (probing, transport) = (session.probe.is_some(), session.transport);
        let now = Instant::now();
        let deadline = now + self.config.request_timeout;
        let queued = self.pending.sends_in(SendState::Queued);
        for client_msg_id in &queued {
            if let Some(send) = self.pending.sends.get_mut(client_msg_id) {
                // The outage is not the transport's latency: the clock restarts as the message leaves the outbox.
                send.started = now;
                send.deadline = deadline;
                send.state = SendState::Held;
            }
        }
        if !probing {
            for client_msg_id in queued {
                self.dispatch(client_msg_id, transport).await;
            }
        }
    }

    /// The session cannot be restored: every message in the outbox fails with `err`.
    pub(super) async fn fail_outbox(&mut self, err: &ClientError) {
        for client_msg_id in self.pending.sends_in(SendState::Queued) {
            if let Some(send) = self.pending.sends.remove(&client_msg_id) {
                self.fail_send(client_msg_id, send, err.clone()).await;
            }
        }
    }

    /// The error of a message that waited in the outbox for the longest wait and is given up.
    pub(super) fn outbox_expired(&self, send: &PendingSend) -> ClientError {
        expired_error(self.config.outbox_max_wait, send.sent)
    }
}

/// The error of a message given up after waiting `wait` in the outbox. One that had gone out before the connection
/// broke may have been stored, and the error must not claim otherwise.
fn expired_error(wait: std::time::Duration, sent: bool) -> ClientError {
    ClientError::OutboxExpired { waited: wait, maybe_stored: sent }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_message_given_up_says_the_connection_did_not_come_back() {
        let err = expired_error(Duration::from_secs(300), false);
        assert_eq!(err.to_string(), "the connection did not come back within 300 s; the message was not sent");
        let err = expired_error(Duration::from_millis(1500), true);
        let text = err.to_string();
        assert!(text.contains("within 1500 ms") && text.contains("may or may not have stored it"), "{text}");
        assert!(!text.contains("was not sent"), "a message that went out may have been stored: {text}");
    }
}
