//! One TCP connection: from the handshake to the last byte.
//!
//! Each accepted connection gets its own task running [`serve`]. The task owns the socket and the Noise session,
//! so encryption and decryption of control frames never leave it, and it does the work that belongs to one client
//! alone: the `Hello` version check, registration and login (password hashing runs on the password service's own
//! few threads), history pages (SQLite reads on blocking threads), and pings. Anything that
//! involves other sessions — chat, presence, the user list — is a message to the hub.
//!
//! ## States
//!
//! ```text
//!   handshake ──▶ awaiting Hello ──▶ logged out ──Login──▶ logged in ──Logout──▶ logged out ...
//!                 (only Hello)       (Hello, Register,     (everything but Login)
//!                                     Login, Ping)
//! ```
//!
//! Until a session exists, the connection is an anonymous peer and is treated as one: frames are capped at
//! [`MAX_FRAME_BYTES_BEFORE_LOGIN`] bytes and [`MAX_FRAMES_BEFORE_LOGIN`] in number, and the whole phase must end
//! within the login timeout. Afterwards the task also forwards the hub's messages for this session (the session's
//! control queue) to the socket, and closes at once when the hub fires the kill switch.
//!
//! ## A client that vanishes
//!
//! A logged-in client that sends nothing at all (not even its heartbeat `Ping`) for the read-idle limit is taken
//! for gone: the connection closes with one log line and the session ends, so others see the user go offline
//! ([`idle`] explains why TCP alone would never tell). Accepted sockets also get TCP keepalive
//! ([`crate::net::keepalive`]), the kernel's probe of a silent peer, as a second line of defence.
//!
//! ## A client that does not read
//!
//! Answers are built in this task and written by it, so a client that sends requests and never reads could make
//! the task build answers without end. Three limits stop it: the task stops decoding requests while more than
//! [`MAX_UNSENT_OUTPUT_BYTES`] of output wait (it writes first, which waits for the client); a write that makes no
//! progress for [`WRITE_STALL_TIMEOUT`] closes the connection; and history and user-list requests take a token
//! from a bucket per session ([`REQUESTS_PER_SESSION`]), refused with `TooManyRequests` when it is empty (not
//! `FloodLimited`: that code is about chat, and a client would tell its user to type more slowly).
//!
//! ## Errors
//!
//! Every refusal sends an `Error` with a stable code and is counted for the refusal summary the server logs every
//! few seconds (`admission::refusals`), never one line each. A frame that does not decrypt ends
//! the connection silently (the Noise session cannot encrypt an answer any more); a frame that decrypts but does
//! not decode gets `Error{Malformed}` and then the connection closes. Either way only this connection is affected.

mod account;
pub mod channel;
mod history;
mod idle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatlab_proto::chat::Username;
use chatlab_proto::control::{ClientMessage, ErrorCode, FrameError, ServerMessage};
use chatlab_proto::limits::PROTOCOL_VERSION;
use chatlab_proto::noise::StaticKeypair;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use self::channel::{ControlChannel, OpenError};
use self::idle::IdleWatch;
use crate::admission::{Admission, ConnectionSlot, Phase, Refusal, RefusalTicket};
use crate::hub::input::{CloseReason, HubInput, KillSwitch, SessionRef};
use crate::limits::{
    HANDSHAKE_TIMEOUT, MAX_FRAME_BYTES_BEFORE_LOGIN, MAX_FRAMES_BEFORE_LOGIN, MAX_RECEIVED_IDS,
    MAX_UNSENT_OUTPUT_BYTES, RECEIVED_PER_SESSION, REFUSAL_HANDSHAKE_TIMEOUT, REFUSAL_LOG_INTERVAL,
    REQUESTS_PER_SESSION, WRITE_STALL_TIMEOUT,
};
use crate::log_summary::{LogSummary, Report};
use crate::net::keepalive;
use crate::password::PasswordService;
use crate::rate_limit::TokenBucket;
use crate::storage::{Storage, UserId};

/// Control messages moved from the session queue into one write at most, so a busy queue cannot keep the task
/// from reading its socket for long. At about 100 bytes per message this is one write of about 100 KB.
const MAX_MESSAGES_PER_WRITE: usize = 1024;

/// What every connection task shares.
pub struct ConnContext {
    /// The server's static key, for the handshake.
    pub keypair: StaticKeypair,
    /// Accounts and history.
    pub storage: Arc<dyn Storage>,
    /// Argon2id off the runtime.
    pub passwords: PasswordService,
    /// Connection caps and login limits.
    pub admission: Arc<Admission>,
    /// The hub's queue.
    pub hub: mpsc::Sender<HubInput>,
    /// Sent in `Welcome`.
    pub server_name: String,
    /// Time from connecting (or logging out) to logging in.
    pub login_timeout: Duration,
    /// Silence after which a logged-in connection counts as vanished.
    pub control_idle_timeout: Duration,
}

/// How a connection ended, for its closing log line.
#[derive(Debug)]
enum End {
    /// The client closed the connection.
    PeerClosed,
    /// The socket failed.
    Io(std::io::Error),
    /// A frame did not decrypt.
    Tampered,
    /// The server refused something and closes (the refusal has its own log line).
    Refused,
    /// The hub ended the session.
    Killed(CloseReason),
    /// The session ended on the server's side (shutdown).
    SessionClosed,
    /// No login within the login timeout.
    LoginTimeout,
    /// A logged-in client sent nothing for the read-idle limit.
    Silent(Duration),
    /// The server is shutting down.
    Shutdown,
    /// Shed to make room for a connection from a lighter address (see `admission::connections`).
    Shed,
    /// The hub is gone (the server is stopping).
    HubGone,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::PeerClosed => f.write_str("closed by the client"),
            End::Io(error) => write!(f, "socket error: {error}"),
            End::Tampered => f.write_str("a frame failed authentication"),
            End::Refused => f.write_str("refused (counted in the refusal summary)"),
            End::Killed(reason) => write!(f, "closed by the server: {reason}"),
            End::SessionClosed => f.write_str("session closed by the server"),
            End::LoginTimeout => f.write_str("no login in time"),
            End::Silent(limit) => write!(f, "nothing received for {} s", limit.as_secs_f64()),
            End::Shutdown => f.write_str("server shutting down"),
            End::Shed => f.write_str("shed to make room for another address"),
            End::HubGone => f.write_str("server stopping"),
        }
    }
}

/// Whether to keep the connection after handling a frame.
type Flow = Result<(), End>;

/// A logged-in session as the connection task holds it.
struct LiveSession {
    session: SessionRef,
    user: Username,
    user_id: UserId,
    queue: mpsc::Receiver<ServerMessage>,
    /// History pages and user lists: [`REQUESTS_PER_SESSION`].
    requests: TokenBucket,
    /// `Received` reports: [`RECEIVED_PER_SESSION`].
    reports: TokenBucket,
}

impl LiveSession {
    fn new(session: SessionRef, user: Username, user_id: UserId, queue: mpsc::Receiver<ServerMessage>) -> Self {
        let now = Instant::now();
        Self {
            session,
            user,
            user_id,
            queue,
            requests: TokenBucket::new(REQUESTS_PER_SESSION, now),
            reports: TokenBucket::new(RECEIVED_PER_SESSION, now),
        }
    }
}

/// Serves one admitted connection until it ends, holding its `slot` (and so its place in the connection counts)
/// until then. The server may shed the connection while it is not logged in (see `admission::connections`); it
/// then closes, with a `TooManyConnections` error if the handshake was done.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    context: Arc<ConnContext>,
    slot: ConnectionSlot,
    shutdown: watch::Receiver<bool>,
) {
    if let Err(error) = keepalive::enable(&stream) {
        // Not fatal: the read-idle limit still notices a vanished client once it has logged in.
        tracing::debug!(%peer, %error, "could not enable TCP keepalive");
    }
    let handshake = ControlChannel::accept(stream, &context.keypair, HANDSHAKE_TIMEOUT);
    let channel = tokio::select! {
        biased;
        () = slot.shed() => {
            tracing::debug!(%peer, "handshake shed to make room for another address");
            return;
        }
        accepted = handshake => match accepted {
            Ok(channel) => channel,
            Err(error) => {
                tracing::debug!(%peer, %error, "handshake failed");
                return;
            }
        },
    };
    slot.set_phase(Phase::LoggedOut);
    let mut connection = Connection {
        login_deadline: tokio::time::Instant::now() + context.login_timeout,
        idle: IdleWatch::new(context.control_idle_timeout, tokio::time::Instant::now()),
        context,
        peer,
        channel,
        slot,
        welcomed: false,
        frames_before_login: 0,
        session: None,
        kill: Arc::new(KillSwitch::default()),
        refusals: LogSummary::new(REFUSAL_LOG_INTERVAL),
    };
    let end = connection.run(shutdown).await;
    let end = end.err().unwrap_or(End::PeerClosed);
    connection.finish(end).await;
}

/// Tells a connection refused for its address's connection cap why, over the encrypted channel
/// (`TooManyConnections`), and closes it. Only a few refusals get this (see [`RefusalTicket`]); the ticket holds an
/// explanation place, and no connection place, until this returns. Everything is bounded by
/// [`REFUSAL_HANDSHAKE_TIMEOUT`].
pub async fn explain_refusal(stream: TcpStream, peer: SocketAddr, context: Arc<ConnContext>, ticket: RefusalTicket) {
    let mut channel = match ControlChannel::accept(stream, &context.keypair, REFUSAL_HANDSHAKE_TIMEOUT).await {
        Ok(channel) => channel,
        Err(error) => {
            tracing::debug!(%peer, %error, "handshake of a refused connection failed");
            return;
        }
    };
    let refusal = ServerMessage::Error {
        req: None,
        code: ErrorCode::TooManyConnections,
        message: "this address has too many connections open; close one first".into(),
    };
    if let Err(error) = channel.queue(&refusal) {
        tracing::error!(%peer, %error, "could not send a control message");
    }
    let _ = tokio::time::timeout(REFUSAL_HANDSHAKE_TIMEOUT, channel.close()).await;
    drop(ticket);
}

struct Connection {
    context: Arc<ConnContext>,
    peer: SocketAddr,
    channel: ControlChannel,
    /// This connection's place in the admission counts; its phase follows logins and logouts.
    slot: ConnectionSlot,
    welcomed: bool,
    frames_before_login: u32,
    login_deadline: tokio::time::Instant,
    /// The read-idle limit; watched only while logged in.
    idle: IdleWatch,
    session: Option<LiveSession>,
    kill: Arc<KillSwitch>,
    /// This connection's refusals, logged as summaries: a client refused in a loop costs a line per interval.
    refusals: LogSummary<ErrorCode>,
}

impl Connection {
    async fn run(&mut self, mut shutdown: watch::Receiver<bool>) -> Flow {
        loop {
            loop {
                // Back-pressure: with too much output unsent, write it (waiting for the client to read) before
                // decoding another request. A client that pipelines requests and never reads stalls here.
                if self.channel.pending() >= MAX_UNSENT_OUTPUT_BYTES {
                    self.flush().await?;
                }
                let Some(frame) = self.next_frame()? else { break };
                self.handle_frame(&frame).await?;
            }
            // Forward what the hub queued meanwhile on every turn, not only when `select!` happens to pick the
            // queue: a client that pipelines requests must not overflow its own session queue with the answers.
            self.drain_queue();
            self.flush().await?;
            let logged_in = self.session.is_some();
            let kill = Arc::clone(&self.kill);
            tokio::select! {
                // Biased, in this order: the kill switch wins over everything, and bytes that wait in the socket are
                // read before the idle limit is judged, so a task that was busy (writing a long answer to a slow
                // client, waiting for the hub) never takes its own delay for the client's silence.
                biased;
                reason = kill.fired() => return Err(End::Killed(reason)),
                () = self.slot.shed() => {
                    self.queue(&ServerMessage::Error {
                        req: None,
                        code: ErrorCode::TooManyConnections,
                        message: "the server is full and this address holds more unauthenticated connections than \
                                  others; this one was closed to make room"
                            .into(),
                    });
                    return Err(End::Shed);
                }
                read = self.channel.read_some() => match read {
                    Ok(true) => self.idle.heard(tokio::time::Instant::now()),
                    Ok(false) => {
                        if self.channel.has_partial_frame() {
                            tracing::debug!(peer = %self.peer, "peer closed the connection in the middle of a frame");
                        }
                        return Err(End::PeerClosed);
                    }
                    Err(error) => return Err(End::Io(error)),
                },
                queued = next_queued(&mut self.session) => match queued {
                    Some(message) => self.forward(message)?,
                    // The hub dropped the session without a logout: the server is shutting down.
                    None => return Err(End::SessionClosed),
                },
                () = self.idle.silent(), if logged_in => {
                    let limit = self.idle.limit();
                    let user = self.session.as_ref().map(|live| live.user.to_string()).unwrap_or_default();
                    tracing::info!(
                        peer = %self.peer,
                        %user,
                        limit_secs = limit.as_secs_f64(),
                        "nothing received within the read-idle limit; the client is taken for gone, closing"
                    );
                    return Err(End::Silent(limit));
                }
                () = tokio::time::sleep_until(self.login_deadline), if !logged_in => {
                    // Anyone can provoke this by connecting and waiting: counted, not logged one by one.
                    self.context.admission.note_refusal(Refusal::LoginTimeout, self.peer.ip());
                    tracing::debug!(peer = %self.peer, "no login within the login timeout; closing");
                    return Err(End::LoginTimeout);
                }
                changed = shutdown.changed(), if !logged_in => {
                    // A logged-in connection learns of the shutdown from the hub, after its last messages.
                    if changed.is_err() || *shutdown.borrow() {
                        self.queue(&ServerMessage::Error {
                            req: None,
                            code: ErrorCode::ServerShuttingDown,
                            message: "the server is shutting down".into(),
                        });
                        return Err(End::Shutdown);
                    }
                }
            }
        }
    }

    /// The next complete frame, counting frames before login; framing errors are refused and end the connection.
    fn next_frame(&mut self) -> Result<Option<Vec<u8>>, End> {
        let frame = match self.channel.next_frame() {
            Ok(frame) => frame,
            Err(FrameError::TooLarge { len, max }) if self.session.is_none() => {
                self.refuse(
                    None,
                    ErrorCode::TooManyFramesBeforeLogin,
                    format!("a frame of {len} bytes before login; at most {max} bytes are allowed until you log in"),
                );
                return Err(End::Refused);
            }
            Err(error) => {
                self.refuse(None, ErrorCode::Malformed, format!("the byte stream is not valid framing: {error}"));
                return Err(End::Refused);
            }
        };
        if frame.is_some() && self.session.is_none() {
            self.frames_before_login = self.frames_before_login.saturating_add(1);
            if self.frames_before_login > MAX_FRAMES_BEFORE_LOGIN {
                self.refuse(
                    None,
                    ErrorCode::TooManyFramesBeforeLogin,
                    format!("more than {MAX_FRAMES_BEFORE_LOGIN} messages before logging in"),
                );
                return Err(End::Refused);
            }
        }
        Ok(frame)
    }

    async fn handle_frame(&mut self, frame: &[u8]) -> Flow {
        let message = match self.channel.open(frame) {
            Ok(message) => message,
            Err(OpenError::Noise(error)) => {
                self.context.admission.note_refusal(Refusal::TamperedFrame, self.peer.ip());
                tracing::debug!(peer = %self.peer, %error, "frame failed authentication; closing the connection");
                return Err(End::Tampered);
            }
            Err(OpenError::Codec(error)) => {
                self.refuse(None, ErrorCode::Malformed, format!("not a valid control message: {error}"));
                return Err(End::Refused);
            }
        };
        if !self.welcomed {
            return match message {
                ClientMessage::Hello { version, client } => self.hello(version, &client),
                other => {
                    self.refuse(request_number(&other), ErrorCode::NotLoggedIn, "send Hello first");
                    Ok(())
                }
            };
        }
        match message {
            ClientMessage::Hello { version, client } => self.hello(version, &client),
            ClientMessage::Ping { nonce } => {
                self.queue(&ServerMessage::Pong { nonce });
                Ok(())
            }
            ClientMessage::Register { username, password } => self.register(&username, &password).await,
            ClientMessage::Login { username, password } => self.login(&username, &password).await,
            other => match self.session.as_ref().map(|s| (s.session, s.user.clone(), s.user_id)) {
                None => {
                    self.refuse(request_number(&other), ErrorCode::NotLoggedIn, "log in first");
                    Ok(())
                }
                Some((session, user, user_id)) => self.logged_in_request(other, session, &user, user_id).await,
            },
        }
    }

    async fn logged_in_request(
        &mut self,
        message: ClientMessage,
        session: SessionRef,
        user: &Username,
        user_id: UserId,
    ) -> Flow {
        if let Some(req) = request_number(&message) {
            let allowed = self.session.as_mut().is_some_and(|live| live.requests.try_take(Instant::now()));
            if !allowed {
                self.refuse(
                    Some(req),
                    ErrorCode::TooManyRequests,
                    "too many history and user-list requests; wait a moment and ask again",
                );
                return Ok(());
            }
        }
        match message {
            ClientMessage::Logout => self.logout(session).await,
            ClientMessage::Chat { client_msg_id, to, text } => {
                self.tell_hub(HubInput::Chat { session, client_msg_id, to, text }).await
            }
            ClientMessage::ListUsers { req } => self.tell_hub(HubInput::ListUsers { session, req }).await,
            ClientMessage::UseTransport { transport } => {
                self.tell_hub(HubInput::UseTransport { session, transport }).await
            }
            ClientMessage::SyncHistory { req, after_id, limit } => {
                self.sync_history(req, after_id, limit, user, user_id).await
            }
            ClientMessage::History { req, target, before_id, limit } => {
                self.history(req, &target, before_id, limit, user_id).await;
                Ok(())
            }
            ClientMessage::Received { mut ids } => {
                if !self.session.as_mut().is_some_and(|live| live.reports.try_take(Instant::now())) {
                    // No error: it would carry no request number and the client could not match it. The messages
                    // are confirmed by the next history sync instead.
                    tracing::debug!(peer = %self.peer, %user, ids = ids.len(), "Received over its rate; ignored");
                    return Ok(());
                }
                if ids.len() > MAX_RECEIVED_IDS {
                    tracing::debug!(peer = %self.peer, %user, ids = ids.len(), "Received names too many ids; cut");
                    ids.truncate(MAX_RECEIVED_IDS);
                }
                self.received(ids, user, user_id).await
            }
            // Handled before: they are allowed in every state.
            ClientMessage::Hello { .. } | ClientMessage::Ping { .. } => Ok(()),
            ClientMessage::Register { .. } | ClientMessage::Login { .. } => Ok(()),
        }
    }

    fn hello(&mut self, version: u8, client: &str) -> Flow {
        if version != PROTOCOL_VERSION {
            self.refuse(
                None,
                ErrorCode::VersionMismatch,
                format!("this server speaks protocol version {PROTOCOL_VERSION}, the client version {version}"),
            );
            return Err(End::Refused);
        }
        // The client name is free text from an anonymous peer: log a bounded, escaped prefix only.
        let client: String = client.chars().take(64).collect();
        tracing::debug!(peer = %self.peer, client = ?client, "hello");
        self.welcomed = true;
        let server = self.context.server_name.clone();
        self.queue(&ServerMessage::Welcome { version: PROTOCOL_VERSION, server });
        Ok(())
    }

    async fn logout(&mut self, session: SessionRef) -> Flow {
        let (reply, answered) = tokio::sync::oneshot::channel();
        self.tell_hub(HubInput::Logout { session, reply }).await?;
        let _ = answered.await;
        // The hub queued `LoggedOut` and dropped the session: forward what is left, then the queue ends.
        if let Some(mut live) = self.session.take() {
            while let Some(message) = live.queue.recv().await {
                self.queue(&message);
            }
        }
        self.channel.set_logged_in(false);
        self.slot.set_phase(Phase::LoggedOut);
        self.frames_before_login = 0;
        self.login_deadline = tokio::time::Instant::now() + self.context.login_timeout;
        Ok(())
    }

    async fn tell_hub(&mut self, input: HubInput) -> Flow {
        self.context.hub.send(input).await.map_err(|_| End::HubGone)
    }

    /// Moves one message from the session queue, and whatever else is waiting, into the write buffer.
    fn forward(&mut self, first: ServerMessage) -> Flow {
        self.queue(&first);
        self.drain_queue();
        Ok(())
    }

    /// Moves waiting session messages into the write buffer, at most [`MAX_MESSAGES_PER_WRITE`], and none once
    /// [`MAX_UNSENT_OUTPUT_BYTES`] wait unsent: what stays in the session queue is counted against the session's
    /// budget by the hub, what moves here is not, so a client that does not read must not pull it all in here.
    fn drain_queue(&mut self) {
        for _ in 0..MAX_MESSAGES_PER_WRITE {
            if self.channel.pending() >= MAX_UNSENT_OUTPUT_BYTES {
                break;
            }
            let Some(live) = self.session.as_mut() else { break };
            match live.queue.try_recv() {
                Ok(message) => self.queue(&message),
                Err(_) => break,
            }
        }
    }

    /// Queues a message; a message that cannot be encoded is a server bug, logged and skipped.
    fn queue(&mut self, message: &ServerMessage) {
        if let Err(error) = self.channel.queue(message) {
            tracing::error!(peer = %self.peer, %error, "could not send a control message");
        }
    }

    /// Sends an `Error` and counts the refusal twice: in this connection's log summary (see [`crate::log_summary`]:
    /// the first refusal after a quiet interval is logged at once, the others as counts per reason when the
    /// interval ends or the connection closes) and in the server-wide summary per address (`admission::refusals`).
    fn refuse(&mut self, req: Option<u32>, code: ErrorCode, message: impl Into<String>) {
        let message = message.into();
        self.context.admission.note_refusal(Refusal::Request(code), self.peer.ip());
        let user = self.session.as_ref().map(|live| live.user.to_string());
        let describe = || format!("{}: {message}", user.as_deref().unwrap_or("(not logged in)"));
        if let Some(report) = self.refusals.record(code, Instant::now(), describe) {
            log_refusals(self.peer, &report);
        }
        self.queue(&ServerMessage::Error { req, code, message });
    }

    /// Writes what is queued, unless the hub fires the kill switch first; a write that makes no progress for
    /// [`WRITE_STALL_TIMEOUT`] ends the connection (a client that does not read would otherwise hold it for ever).
    async fn flush(&mut self) -> Flow {
        if self.channel.pending() == 0 {
            return Ok(());
        }
        let kill = Arc::clone(&self.kill);
        tokio::select! {
            biased;
            reason = kill.fired() => Err(End::Killed(reason)),
            written = self.channel.flush(WRITE_STALL_TIMEOUT) => written.map_err(|error| {
                if error.kind() == std::io::ErrorKind::TimedOut {
                    tracing::info!(peer = %self.peer, %error, "client does not read; closing the connection");
                }
                End::Io(error)
            }),
        }
    }

    /// Ends the session (if any) and closes the socket after writing what is queued.
    async fn finish(mut self, end: End) {
        if let Some(report) = self.refusals.take(Instant::now()) {
            log_refusals(self.peer, &report);
        }
        if let Some(live) = self.session.take() {
            if !matches!(end, End::HubGone) {
                let _ = self.context.hub.send(HubInput::Disconnected { session: live.session }).await;
            }
        }
        match &end {
            End::Killed(reason) => {
                // Tell the client why, in case it still reads: bounded like every flush here, so a client that
                // stopped reading costs at most that long.
                self.queue(&ServerMessage::Error { req: None, code: reason.code(), message: reason.to_string() });
                let _ = self.channel.flush(REFUSAL_HANDSHAKE_TIMEOUT).await;
            }
            End::Io(_) => {}
            _ => {
                // Bounded: a client that reads nothing must not keep the task alive.
                let _ = self.channel.flush(REFUSAL_HANDSHAKE_TIMEOUT).await;
            }
        }
        tracing::debug!(peer = %self.peer, reason = %end, "connection closed");
        if !matches!(end, End::Killed(_)) {
            let _ = tokio::time::timeout(REFUSAL_HANDSHAKE_TIMEOUT, self.channel.close()).await;
        }
    }
}

/// The summary line of one connection's refusals.
fn log_refusals(peer: SocketAddr, report: &Report<ErrorCode>) {
    tracing::info!(
        %peer,
        refused = report.total,
        by_reason = %report,
        first = report.first.as_deref().unwrap_or_default(),
        secs = report.over.as_secs_f64(),
        "requests refused"
    );
}

/// The next message of the session queue; never completes while logged out.
async fn next_queued(session: &mut Option<LiveSession>) -> Option<ServerMessage> {
    match session {
        Some(live) => live.queue.recv().await,
        None => std::future::pending().await,
    }
}

/// The `req` of a request that has one, so its error can echo it.
fn request_number(message: &ClientMessage) -> Option<u32> {
    match message {
        ClientMessage::SyncHistory { req, .. }
        | ClientMessage::History { req, .. }
        | ClientMessage::ListUsers { req } => Some(*req),
        _ => None,
    }
}

/// `MAX_FRAME_BYTES_BEFORE_LOGIN` is what the decoder enforces; keep the two in one place of truth.
const _: () = assert!(MAX_FRAME_BYTES_BEFORE_LOGIN <= u16::MAX as usize);

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_proto::chat::Target;

    #[test]
    fn requests_with_numbers_echo_them() {
        assert_eq!(request_number(&ClientMessage::ListUsers { req: 4 }), Some(4));
        assert_eq!(request_number(&ClientMessage::SyncHistory { req: 5, after_id: 0, limit: 1 }), Some(5));
        let history = ClientMessage::History { req: 6, target: Target::World, before_id: None, limit: 1 };
        assert_eq!(request_number(&history), Some(6));
        assert_eq!(request_number(&ClientMessage::Logout), None);
    }
}
