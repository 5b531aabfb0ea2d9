//! Requests waiting for the server's answer, each with a deadline.
//!
//! The control channel lets several requests be in flight at once, so answers must be matched to questions. The
//! protocol gives three ways, and each kind of pending request uses its own:
//!
//! - **`req` numbers** for history, sync pages and user lists: the answer (or its `Error`) echoes the number.
//! - **`client_msg_id`** for chat messages, whose answer (`Accepted`/`ChatAccepted` or a rejection) names it, on
//!   whichever transport the message travelled.
//! - **one account operation at a time** (register, login, logout), whose answers carry no number: the client
//!   never starts a second one before the first is answered, so an `Error` without `req` belongs to it.
//!
//! Every entry has a deadline; the actor's ticker takes expired ones out and fails them with a timeout, so no caller
//! waits for ever on an answer that was lost with a connection or never sent by a confused server.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use chatlab_proto::chat::{Target, Username};
use chatlab_proto::control::Transport;

use super::{Credentials, Reply};
use crate::error::ClientError;
use crate::event::{Accepted, HistoryPage, SessionInfo};

/// The account operation in flight.
#[derive(Debug)]
pub(super) enum AccountOp {
    Register {
        reply: Reply<Username>,
    },
    /// `reply` is `None` for the automatic login after a reconnect. The credentials are remembered once the login
    /// succeeds.
    Login {
        reply: Option<Reply<SessionInfo>>,
        credentials: Credentials,
    },
    Logout {
        reply: Reply<()>,
    },
}

/// Who started a history sync, and so who hears when it ends.
#[derive(Debug)]
pub(super) enum SyncOrigin {
    /// Right after a login.
    Login,
    /// After a reconnect.
    Reconnect,
    /// After a fall-back to TCP: what the UDP engine had not delivered yet may never come over UDP.
    Fallback,
    /// [`ClientHandle::sync`](crate::ClientHandle::sync).
    User(Reply<usize>),
}

/// A numbered request in flight.
#[derive(Debug)]
pub(super) enum Request {
    History {
        reply: Reply<HistoryPage>,
    },
    /// Pages of the user list gathered so far.
    Users {
        reply: Reply<Vec<Username>>,
        users: Vec<Username>,
    },
    /// One page of a sync: everything after message `after`; `count` new messages so far.
    Sync {
        origin: SyncOrigin,
        count: usize,
        after: u64,
    },
}

/// Where a chat message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SendState {
    /// In the outbox: the connection is down and the session is being restored (see `outbox.rs`).
    Queued,
    /// Held while the UDP probe decides the transport.
    Held,
    /// Waiting for room in the UDP send window (see `window.rs`).
    Waiting,
    /// Sent on this transport.
    Sent(Transport),
}

/// A chat message waiting for acceptance.
#[derive(Debug)]
pub(super) struct PendingSend {
    pub reply: Reply<Accepted>,
    pub to: Target,
    /// The text in wire form, kept to send it after the probe or again over TCP after a UDP failure.
    pub text: String,
    pub state: SendState,
    pub deadline: Instant,
    /// When the caller asked to send, or when the message left the outbox: the start of the delivery latency.
    pub started: Instant,
    /// When the message first entered the outbox, if it ever did. Its longest wait counts from here and is never
    /// extended, however often the connection breaks again.
    pub outbox_since: Option<Instant>,
    /// Whether the message went out on a transport at least once. If so the server may have stored it even when
    /// no acceptance came back, and a failure must not claim it was not sent.
    pub sent: bool,
    /// The message's place in the send budget ([`ClientConfig::send_queue_messages`](crate::ClientConfig)), held
    /// only to be given back, so that the next `send` may go ahead, when this record is dropped.
    pub _budget: OwnedSemaphorePermit,
}

impl PendingSend {
    /// Whether the caller gave up (dropped the `send` future) before the message left the client: it is then not
    /// sent at all.
    pub fn cancelled(&self) -> bool {
        self.reply.is_closed() && !self.sent
    }
}

/// Everything in flight.
#[derive(Debug, Default)]
pub(super) struct Pending {
    pub account: Option<(AccountOp, Instant)>,
    pub requests: HashMap<u32, (Request, Instant)>,
    /// Ordered by `client_msg_id`, which is the order they were sent in.
    pub sends: BTreeMap<u64, PendingSend>,
    /// The `client_msg_id`s of messages in [`SendState::Waiting`], oldest first. A message that left that state by
    /// another way (the connection broke, it expired) may still be listed; [`first_waiting`](Self::first_waiting)
    /// skips those, so only `mark_waiting` ever has to keep it right.
    waiting: BTreeSet<u64>,
}

/// A pending entry taken out to be failed.
#[derive(Debug)]
pub(super) enum Failed {
    Account(AccountOp),
    Request(Request),
    Send(u64, PendingSend),
}

impl Failed {
    /// What was waited for, for the timeout's message.
    pub(super) fn what(&self) -> &'static str {
        match self {
            Failed::Account(AccountOp::Register { .. }) => "registration",
            Failed::Account(AccountOp::Login { .. }) => "login",
            Failed::Account(AccountOp::Logout { .. }) => "logout",
            Failed::Request(Request::History { .. }) => "history",
            Failed::Request(Request::Users { .. }) => "user list",
            Failed::Request(Request::Sync { .. }) => "history sync",
            Failed::Send(..) => "acceptance of a chat message",
        }
    }

    /// Tells whoever waits. Automatic operations (a re-login, a sync at login) have nobody waiting.
    pub(super) fn fail(self, err: ClientError) {
        match self {
            Failed::Account(AccountOp::Register { reply }) => drop(reply.send(Err(err))),
            Failed::Account(AccountOp::Login { reply: Some(reply), .. }) => drop(reply.send(Err(err))),
            Failed::Account(AccountOp::Login { reply: None, .. }) => {}
            Failed::Account(AccountOp::Logout { reply }) => drop(reply.send(Err(err))),
            Failed::Request(Request::History { reply }) => drop(reply.send(Err(err))),
            Failed::Request(Request::Users { reply, .. }) => drop(reply.send(Err(err))),
            Failed::Request(Request::Sync { origin: SyncOrigin::User(reply), .. }) => drop(reply.send(Err(err))),
            Failed::Request(Request::Sync { .. }) => {}
            Failed::Send(_, send) => drop(send.reply.send(Err(err))),
        }
    }
}

impl Pending {
    /// Takes out every entry whose deadline is not after `now`. A chat message whose caller gave up before it left
    /// the client is dropped here without a word (it is not sent); one that already went out stays until its
    /// outcome is known, to be reported then.
    pub(super) fn take_expired(&mut self, now: Instant) -> Vec<Failed> {
        let mut expired = Vec::new();
        if self.account.as_ref().is_some_and(|(_, deadline)| *deadline <= now) {
            if let Some((op, _)) = self.account.take() {
                expired.push(Failed::Account(op));
            }
        }
        let late: Vec<u32> =
            self.requests.iter().filter(|(_, (_, deadline))| *deadline <= now).map(|(req, _)| *req).collect();
        for req in late {
            if let Some((request, _)) = self.requests.remove(&req) {
                expired.push(Failed::Request(request));
            }
        }
        self.sends.retain(|_, send| !send.cancelled());
        let late: Vec<u64> = self.sends.iter().filter(|(_, send)| send.deadline <= now).map(|(id, _)| *id).collect();
        for id in late {
            if let Some(send) = self.sends.remove(&id) {
                expired.push(Failed::Send(id, send));
            }
        }
        expired
    }

    /// Fails the account operation and the numbered requests, leaving the chat messages where they are.
    pub(super) fn fail_requests(&mut self, err: impl Fn() -> ClientError) {
        if let Some((op, _)) = self.account.take() {
            Failed::Account(op).fail(err());
        }
        for (_, (request, _)) in self.requests.drain() {
            Failed::Request(request).fail(err());
        }
    }

    /// Puts message `client_msg_id` in [`SendState::Waiting`].
    pub(super) fn mark_waiting(&mut self, client_msg_id: u64) {
        if let Some(send) = self.sends.get_mut(&client_msg_id) {
            send.state = SendState::Waiting;
            self.waiting.insert(client_msg_id);
        }
    }

    /// The oldest message waiting for room in the send window, forgetting the listed ones that are not waiting any
    /// more.
    pub(super) fn first_waiting(&mut self) -> Option<u64> {
        while let Some(&id) = self.waiting.first() {
            if self.sends.get(&id).is_some_and(|send| send.state == SendState::Waiting) {
                return Some(id);
            }
            self.waiting.pop_first();
        }
        None
    }

    /// The client_msg_ids of messages in `state`, oldest first.
    pub(super) fn sends_in(&self, state: SendState) -> Vec<u64> {
        self.sends.iter().filter(|(_, send)| send.state == state).map(|(id, _)| *id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::oneshot;

    fn credentials() -> Credentials {
        Credentials { username: "ann".into(), password: chatlab_proto::control::Password::new("pw") }
    }

    fn send(deadline: Instant) -> (PendingSend, oneshot::Receiver<Result<Accepted, ClientError>>) {
        let (reply, rx) = oneshot::channel();
        let send = PendingSend {
            reply,
            to: Target::World,
            text: "hi".into(),
            state: SendState::Held,
            deadline,
            started: Instant::now(),
            outbox_since: None,
            sent: false,
            _budget: std::sync::Arc::new(tokio::sync::Semaphore::new(1)).try_acquire_owned().expect("a permit"),
        };
        (send, rx)
    }

    #[tokio::test]
    async fn expired_entries_are_taken_and_fail_with_the_error() {
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let mut pending = Pending::default();
        let (history, mut history_rx) = oneshot::channel();
        pending.requests.insert(1, (Request::History { reply: history }, now));
        let (users, mut users_rx) = oneshot::channel();
        pending.requests.insert(2, (Request::Users { reply: users, users: Vec::new() }, later));
        let (old, mut old_rx) = send(now);
        let (young, mut young_rx) = send(later);
        pending.sends.insert(7, old);
        pending.sends.insert(8, young);
        let (login, mut login_rx) = oneshot::channel();
        pending.account = Some((AccountOp::Login { reply: Some(login), credentials: credentials() }, now));

        let expired = pending.take_expired(now);
        let mut names: Vec<_> = expired.iter().map(Failed::what).collect();
        names.sort_unstable();
        assert_eq!(names, ["acceptance of a chat message", "history", "login"]);
        for failed in expired {
            failed.fail(ClientError::Timeout { what: "x".into(), after: Duration::from_secs(1) });
        }
        assert!(matches!(history_rx.try_recv(), Ok(Err(ClientError::Timeout { .. }))));
        assert!(matches!(old_rx.try_recv(), Ok(Err(ClientError::Timeout { .. }))));
        assert!(matches!(login_rx.try_recv(), Ok(Err(ClientError::Timeout { .. }))));
        assert!(users_rx.try_recv().is_err(), "not expired yet");
        assert!(young_rx.try_recv().is_err(), "not expired yet");
        assert_eq!(pending.sends_in(SendState::Held), [8]);

        pending.fail_requests(|| ClientError::Disconnected { reason: "gone".into() });
        assert!(matches!(users_rx.try_recv(), Ok(Err(ClientError::Disconnected { .. }))));
        assert!(young_rx.try_recv().is_err(), "chat messages are failed by the actor, which reports them");
        assert!(pending.requests.is_empty() && pending.account.is_none());
    }

    #[tokio::test]
    async fn failing_the_requests_leaves_the_chat_messages_for_the_outbox() {
        let now = Instant::now();
        let mut pending = Pending::default();
        let (history, mut history_rx) = oneshot::channel();
        pending.requests.insert(1, (Request::History { reply: history }, now));
        let (logout, mut logout_rx) = oneshot::channel();
        pending.account = Some((AccountOp::Logout { reply: logout }, now));
        let (message, mut message_rx) = send(now);
        pending.sends.insert(5, message);
        pending.fail_requests(|| ClientError::Disconnected { reason: "reset".into() });
        assert!(matches!(history_rx.try_recv(), Ok(Err(ClientError::Disconnected { .. }))));
        assert!(matches!(logout_rx.try_recv(), Ok(Err(ClientError::Disconnected { .. }))));
        assert!(message_rx.try_recv().is_err(), "the message still waits");
        assert_eq!(pending.sends_in(SendState::Held), [5]);
        assert!(pending.requests.is_empty() && pending.account.is_none());
    }

    #[tokio::test]
    async fn a_send_whose_caller_gave_up_before_it_went_out_is_dropped_and_gives_its_room_back() {
        let now = Instant::now();
        let mut pending = Pending::default();
        let (abandoned, rx) = send(now + Duration::from_secs(60));
        let budget = std::sync::Arc::clone(abandoned._budget.semaphore());
        drop(rx);
        pending.sends.insert(1, abandoned);
        assert!(pending.take_expired(now).is_empty(), "nothing to report: it was never sent");
        assert!(pending.sends.is_empty());
        assert_eq!(budget.available_permits(), 1, "its room in the send budget is free again");
    }

    #[tokio::test]
    async fn a_send_whose_caller_gave_up_after_it_went_out_stays_until_its_outcome_is_known() {
        let now = Instant::now();
        let mut pending = Pending::default();
        let (mut gone_out, rx) = send(now + Duration::from_secs(60));
        gone_out.sent = true;
        gone_out.state = SendState::Sent(Transport::Udp);
        drop(rx);
        pending.sends.insert(1, gone_out);
        assert!(pending.take_expired(now).is_empty());
        assert_eq!(pending.sends_in(SendState::Sent(Transport::Udp)), [1], "its acceptance is still to be reported");
        let expired = pending.take_expired(now + Duration::from_secs(60));
        assert!(matches!(expired.as_slice(), [Failed::Send(1, _)]), "its failure is to be reported");
    }

    #[tokio::test]
    async fn the_first_waiting_message_skips_those_that_moved_on() {
        let now = Instant::now();
        let mut pending = Pending::default();
        for id in [3, 5, 9] {
            pending.sends.insert(id, send(now).0);
            pending.mark_waiting(id);
        }
        assert_eq!(pending.first_waiting(), Some(3));
        pending.sends.remove(&3);
        if let Some(send) = pending.sends.get_mut(&5) {
            send.state = SendState::Queued;
        }
        assert_eq!(pending.first_waiting(), Some(9));
        pending.mark_waiting(42);
        assert_eq!(pending.first_waiting(), Some(9), "an unknown message cannot wait");
        pending.sends.clear();
        assert_eq!(pending.first_waiting(), None);
    }

    #[tokio::test]
    async fn automatic_operations_fail_silently() {
        let now = Instant::now();
        let mut pending = Pending {
            account: Some((AccountOp::Login { reply: None, credentials: credentials() }, now)),
            ..Pending::default()
        };
        pending.requests.insert(3, (Request::Sync { origin: SyncOrigin::Reconnect, count: 0, after: 0 }, now));
        let expired = pending.take_expired(now);
        assert_eq!(expired.len(), 2);
        for failed in expired {
            failed.fail(ClientError::Closed);
        }
    }
}
