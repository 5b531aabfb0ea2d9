//! The face of the client core: [`Client::connect`] and the cloneable [`ClientHandle`].
//!
//! Every method sends one command to the core and waits for its reply, never longer than the request timeout (plus
//! a small grace so the core's own, more precise timeout normally wins). The methods are `async` and cheap to call
//! from any task; a GUI calls them from a task it spawns on the runtime and reads [`ClientEvent`]s from the receiver
//! in its frame loop with `try_recv`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};

use chatlab_proto::chat::{Target, Username};
use chatlab_proto::control::{Password, Transport};
use chatlab_proto::impair::ImpairmentConfig;
use chatlab_proto::noise::Fingerprint;

use crate::channel;
use crate::config::ClientConfig;
use crate::core::{Actor, Command, Reply};
use crate::error::ClientError;
use crate::event::{Accepted, ClientEvent, HistoryPage, SessionInfo};
use crate::stats::ClientStats;
use crate::udp::Impairment;

/// Commands queued from handles to the core. Each waits for its reply, so only many concurrent callers fill it.
const COMMAND_QUEUE: usize = 256;

/// Events queued for the face. The core waits when the queue is full, which slows reading from the server (and
/// through TCP's flow control, the server): the face must keep reading events, or drop the receiver.
pub const EVENT_QUEUE: usize = 4096;

/// Extra wait on the handle's side beyond the request timeout, so the core's own timeout (with its precise message)
/// normally answers first and this one only catches a core that is gone.
const HANDLE_GRACE: Duration = Duration::from_secs(1);

/// Entry point of the library.
#[derive(Debug)]
pub struct Client;

impl Client {
    /// Connects to `config.server`: TCP, the Noise handshake, the known-servers check (pinning the key on first
    /// contact, refusing a changed one), and `Hello`/`Welcome`. Then starts the core in the background and returns a
    /// handle to command it and the stream of its events. A first-contact pin is the first event.
    pub async fn connect(config: ClientConfig) -> Result<(ClientHandle, mpsc::Receiver<ClientEvent>), ClientError> {
        let established = channel::establish(&config).await?;
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        if established.pinned_now {
            let pinned =
                ClientEvent::ServerKeyPinned { server: config.server.clone(), fingerprint: established.fingerprint };
            let _ = events_tx.try_send(pinned);
        }
        let (commands_tx, commands) = mpsc::channel(COMMAND_QUEUE);
        let handle = ClientHandle {
            commands: commands_tx,
            request_timeout: config.request_timeout,
            // A message may wait in the outbox for the longest wait, then for room in the send window (at most one
            // request timeout), then for its acceptance (another).
            send_timeout: config.outbox_max_wait.saturating_add(config.request_timeout.saturating_mul(2)),
            send_budget: Arc::new(Semaphore::new(config.send_queue_messages.clamp(1, Semaphore::MAX_PERMITS))),
            server: config.server.clone(),
            fingerprint: established.fingerprint,
            server_software: established.server_software.clone(),
        };
        Actor::spawn(config, established, commands, events_tx);
        Ok((handle, events))
    }
}

/// Commands the client core. Cheap to clone; the core stops when the last handle is dropped (or on
/// [`shutdown`](Self::shutdown)).
#[derive(Debug, Clone)]
pub struct ClientHandle {
    commands: mpsc::Sender<Command>,
    request_timeout: Duration,
    send_timeout: Duration,
    /// The send budget in messages ([`ClientConfig::send_queue_messages`]), shared by every clone: a message holds
    /// its place from [`queue`](Self::queue) until it is accepted or fails. The semaphore is fair (first come, first
    /// served), so callers waiting for room get it in the order they asked.
    send_budget: Arc<Semaphore>,
    server: String,
    fingerprint: Fingerprint,
    server_software: String,
}

impl ClientHandle {
    /// The server, `HOST:PORT` as configured.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The fingerprint of the server's (pinned) key.
    pub fn server_fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The server's software name from its greeting.
    pub fn server_software(&self) -> &str {
        &self.server_software
    }

    /// Creates an account (does not log in). Returns the canonical, case-folded name.
    pub async fn register(&self, username: &str, password: Password) -> Result<Username, ClientError> {
        let username = username.to_string();
        self.request("registration", |reply| Command::Register { username, password, reply }).await
    }

    /// Logs in. Chat then starts on the configured transport; with UDP the core probes the path and falls back to
    /// TCP if it gets no answer ([`ClientEvent::TransportChanged`] says which and why). The credentials are kept in
    /// memory to log in again after a reconnect.
    pub async fn login(&self, username: &str, password: Password) -> Result<SessionInfo, ClientError> {
        let username = username.to_string();
        self.request("login", |reply| Command::Login { username, password, reply }).await
    }

    /// Sends a chat message and resolves once the server has stored it durably: [`queue`](Self::queue) followed by
    /// [`Sending::accepted`]. The text is normalised (line endings, tabs) and checked against the server's rules
    /// first; a refusal carries the server's reason.
    ///
    /// # Sending never refuses for being busy: it waits
    ///
    /// A program may call `send` faster than the network and the server take messages (a script blasting ten
    /// thousand messages, a paste of a long log). Nothing is then refused or dropped: `send` *waits*, first for room
    /// in the client's send queue ([`ClientConfig::send_queue_messages`]), then, over UDP, for room in the engine's
    /// send window (messages sent but not yet acknowledged), in the order the messages were queued. Each wait is
    /// bounded by [`ClientConfig::request_timeout`]; one that runs out fails with [`ClientError::NoRoom`], and such
    /// a message never left the client.
    ///
    /// While the connection is down and a logged-in session is being restored, the message waits in the outbox
    /// and goes out after the automatic login, so this call may take as long as
    /// [`ClientConfig::outbox_max_wait`] plus two request timeouts. It then resolves with the acceptance as usual,
    /// or fails with [`ClientError::OutboxFull`] (at once), [`ClientError::OutboxExpired`] when the connection did
    /// not come back in time, or the error that made reconnecting impossible.
    ///
    /// # Cancelling
    ///
    /// Dropping the future (or wrapping it in `tokio::time::timeout`, or losing a `select!`) gives up cleanly:
    ///
    /// - before the message has left the client (waiting for room, held during the UDP probe, in the outbox), it
    ///   is **not sent** at all, and its room is given back;
    /// - after it went out, it cannot be called back: the server may store it. Its outcome is then **reported** on
    ///   the event stream, as [`ClientEvent::Accepted`] or [`ClientEvent::SendFailed`] with its `client_msg_id`.
    ///
    /// Messages sent one after another by awaiting each `send` arrive in order, but each waits for the previous
    /// acceptance (a round trip and a disk write). To stream many messages in order without that wait, call
    /// [`queue`](Self::queue) for each in turn and await the [`Sending`]s later.
    pub async fn send(&self, to: Target, text: &str) -> Result<Accepted, ClientError> {
        self.queue(to, text).await?.accepted().await
    }

    /// Puts a chat message in the client's send queue and returns as soon as it has its place there, without
    /// waiting for the server; the returned [`Sending`] resolves with the acceptance. Messages queued one after
    /// another go out, over one transport, in that order, and the server stores them in that order.
    ///
    /// Waits (at most [`ClientConfig::request_timeout`], then [`ClientError::NoRoom`]) while the send queue holds
    /// [`ClientConfig::send_queue_messages`] messages that are not accepted yet; callers waiting together get room
    /// in the order they asked. Dropping the future while it waits queues nothing. Dropping the [`Sending`] cancels
    /// the message if it has not left the client yet (see [`send`](Self::send)), so keep it, or spawn its
    /// [`accepted`](Sending::accepted), until the message went out.
    ///
    /// ```no_run
    /// # async fn blast(handle: chatlab_client::ClientHandle, to: chatlab_client::Target) -> Result<(), chatlab_client::ClientError> {
    /// let mut sendings = Vec::new();
    /// for i in 0..10_000 {
    ///     sendings.push(handle.queue(to.clone(), &format!("message {i}")).await?);   // in order; waits for room
    /// }
    /// for sending in sendings {
    ///     sending.accepted().await?;                                             // every one stored, in order
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn queue(&self, to: Target, text: &str) -> Result<Sending, ClientError> {
        let room = Arc::clone(&self.send_budget).acquire_owned();
        let budget = match tokio::time::timeout(self.request_timeout, room).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; were it, the client would be unusable.
            Ok(Err(_)) => return Err(ClientError::Closed),
            Err(_) => return Err(ClientError::NoRoom { waited: self.request_timeout }),
        };
        let (reply, answer) = oneshot::channel();
        // The latency clock starts once the message is the core's: waiting for room is the sender's own queue.
        let started = tokio::time::Instant::now();
        let command = Command::Send { to, text: text.to_string(), started, budget, reply };
        self.commands.send(command).await.map_err(|_| ClientError::Closed)?;
        let wait = self.send_timeout.saturating_add(HANDLE_GRACE);
        Ok(Sending { answer, wait })
    }

    /// One page of a conversation's history: the newest `limit` messages before `before` (or the newest of all),
    /// oldest first.
    pub async fn history(&self, target: Target, before: Option<u64>, limit: u16) -> Result<HistoryPage, ClientError> {
        self.request("history", |reply| Command::History { target, before, limit, reply }).await
    }

    /// Fetches everything since the last message id this client has, page by page. The messages arrive as
    /// [`ClientEvent::Message`] events with [`MessageSource::Sync`](crate::MessageSource::Sync); the result is how
    /// many were new.
    pub async fn sync(&self) -> Result<usize, ClientError> {
        self.request("history sync", |reply| Command::Sync { reply }).await
    }

    /// The users online now, sorted by name.
    pub async fn users(&self) -> Result<Vec<Username>, ClientError> {
        self.request("user list", |reply| Command::Users { reply }).await
    }

    /// Moves chat to `transport` (and makes it the preference for later logins). Switching to UDP probes the path
    /// first; the outcome arrives as [`ClientEvent::TransportChanged`].
    pub async fn set_transport(&self, transport: Transport) -> Result<(), ClientError> {
        self.request("transport switch", |reply| Command::SetTransport { transport, reply }).await
    }

    /// Ends the session and forgets the remembered credentials; the connection stays open for another login.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.request("logout", |reply| Command::Logout { reply }).await
    }

    /// Statistics of both transports.
    pub async fn stats(&self) -> Result<ClientStats, ClientError> {
        self.request("statistics", |reply| Command::Stats { reply }).await
    }

    /// Impairs this client's own UDP traffic, so a class can watch the engine repair what the network breaks:
    /// `outgoing` applies to the datagrams this client sends (before they reach the socket), `incoming` to the
    /// datagrams the server sends (before the engine sees them). Two separate settings because the two directions
    /// teach different things: lost data costs a retransmission, a lost acknowledgement a spurious one.
    ///
    /// The change takes effect at once on the live session (datagrams already delayed keep their fate) and stays in
    /// force for every later session, after a logout or a reconnect, until changed again.
    /// `ImpairmentConfig::default()` in both directions switches impairment off. TCP is the kernel's and is never
    /// impaired here (the labs impair it with nftables). What the links did appears in
    /// [`ClientStats::impairment`](crate::ClientStats::impairment).
    ///
    /// Heavy impairment also hits the UDP probe at login: a path that loses every ping makes chat fall back to TCP,
    /// exactly as a firewall would.
    ///
    /// # Errors
    /// [`ClientError::InvalidImpairment`] naming the direction and the field when either setting fails
    /// [`ImpairmentConfig::validate`] (a probability outside 0..=1, a zero MTU, a delay over an hour...); nothing
    /// changes then. [`ClientError::Closed`] when the core has shut down.
    pub async fn set_impairment(
        &self,
        outgoing: ImpairmentConfig,
        incoming: ImpairmentConfig,
    ) -> Result<(), ClientError> {
        let impairment = Box::new(Impairment { outgoing, incoming });
        self.request("impairment", |reply| Command::SetImpairment { impairment, reply }).await
    }

    /// Logs out if logged in, closes the connection and stops the core. Later requests fail with
    /// [`ClientError::Closed`].
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Shutdown { reply }).await.is_ok() {
            let _ = tokio::time::timeout(self.request_timeout + HANDLE_GRACE, done).await;
        }
    }

    /// Sends a command built around a fresh reply channel and waits for the answer.
    async fn request<T>(&self, what: &str, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, ClientError> {
        self.request_within(what, self.request_timeout, command).await
    }

    /// As [`request`](Self::request), for a command the core may take up to `timeout` to answer.
    async fn request_within<T>(
        &self,
        what: &str,
        timeout: Duration,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| ClientError::Closed)?;
        let wait = timeout.saturating_add(HANDLE_GRACE);
        match tokio::time::timeout(wait, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout { what: what.to_string(), after: wait }),
        }
    }
}

/// A chat message in the client's send queue, from [`ClientHandle::queue`]: await [`accepted`](Self::accepted) for
/// the server's acceptance. Dropping it cancels the message if it has not left the client yet.
#[derive(Debug)]
#[must_use = "dropping a Sending cancels its message unless it already left the client"]
pub struct Sending {
    answer: oneshot::Receiver<Result<Accepted, ClientError>>,
    /// The longest the core can take to answer, plus a grace.
    wait: Duration,
}

impl Sending {
    /// Resolves once the server stored the message durably, or with the reason it failed.
    pub async fn accepted(self) -> Result<Accepted, ClientError> {
        match tokio::time::timeout(self.wait, self.answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout { what: "acceptance of a chat message".to_string(), after: self.wait }),
        }
    }
}
