//! The face of the client core: [`Client::connect`] and the cloneable [`ClientHandle`].
//!
//! Every method sends one command to the core and waits for its reply, never longer than the request timeout (plus
//! a small grace so the core's own, more precise timeout normally wins). The methods are `async` and cheap to call
//! from any task; a GUI calls them from a task it spawns on the runtime and reads [`ClientEvent`]s from the receiver
//! in its frame loop with `try_recv`.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

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
            // A message may wait in the outbox for the longest wait, and then for its acceptance.
            send_timeout: config.outbox_max_wait.saturating_add(config.request_timeout),
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

    /// Sends a chat message and resolves once the server has stored it durably. The text is normalised (line
    /// endings, tabs) and checked against the server's rules first; a refusal carries the server's reason.
    ///
    /// While the connection is down and a logged-in session is being restored, the message waits in the outbox
    /// and goes out after the automatic login, so this call may take as long as
    /// [`ClientConfig::outbox_max_wait`] plus the request timeout. It then resolves with the acceptance as usual, or
    /// fails with [`ClientError::OutboxFull`] (at once), [`ClientError::OutboxExpired`] when the connection did not
    /// come back in time, or the error that made reconnecting impossible.
    pub async fn send(&self, to: Target, text: &str) -> Result<Accepted, ClientError> {
        let text = text.to_string();
        // The clock starts here, so the latency statistics include the wait in the core's queue, as the caller does.
        let started = tokio::time::Instant::now();
        let command = |reply| Command::Send { to, text, started, reply };
        self.request_within("acceptance of a chat message", self.send_timeout, command).await
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
