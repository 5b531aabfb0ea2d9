//! The task that turns the window's commands into client-core calls, and the core's events into the window's.
//!
//! One driver task owns the session (a [`ClientHandle`] per sign-in) and the hosted room, and handles commands in
//! the order they were given. Only signing in and logging out are awaited in the driver itself: the window sends
//! nothing else while its sign-in form says "connecting…". Everything that waits on the server during a chat (a
//! send, a history page, a transport switch) runs in a task of its own, so one slow answer never delays the next
//! message.
//!
//! Per session, two more tasks run until the session ends: the *forwarder*, which reads the core's
//! [`ClientEvent`]s and pushes [`BackendEvent`]s, and the *statistics poller*.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use chatlab_proto::chat::{ChatMessage, Target, Username};
use chatlab_proto::control::{ErrorCode, Password, Transport};
use chatlab_server::ServerHandle;

use super::convert::{TcpUseful, problem, stats_update, transport_reason};
use super::receipts::ReceiptOrder;
use super::{HISTORY_PAGE, RealConfig, STATS_INTERVAL, Sink, room};
use crate::config::ClientConfig;
use crate::error::ClientError;
use crate::event::{ClientEvent, MessageSource};
use crate::handle::{Client, ClientHandle};
use crate::ui::backend::{Account, BackendEvent, Command, Impairment, LocalId, Problem, TransportReason};

/// Most messages of a history sync sent to the window in one [`BackendEvent::Synced`]. A first login may sync
/// thousands; batches of this size keep each event small and let the window show the first ones while the rest
/// arrive. Equal to the window's per-frame event budget, so one batch is one frame's work.
pub const MAX_SYNC_BATCH: usize = crate::ui::MAX_EVENTS_PER_FRAME;

/// What the session's tasks share.
struct Shared {
    sink: Sink,
    /// The server as typed, for problems that need an address.
    server: String,
    receipts: Mutex<ReceiptOrder>,
    useful_sent: AtomicU64,
    useful_received: AtomicU64,
    /// Whether chat runs over TCP now, so live messages count as TCP's useful bytes.
    on_tcp: AtomicBool,
}

impl Shared {
    fn receipts(&self) -> MutexGuard<'_, ReceiptOrder> {
        // The lock is only held for a few instructions that cannot panic; a poisoned lock still holds a valid
        // parking lot.
        self.receipts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn count_received(&self, messages: &[ChatMessage]) {
        let bytes: usize = messages.iter().map(|m| m.text.len()).sum();
        self.useful_received.fetch_add(u64::try_from(bytes).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn useful(&self) -> TcpUseful {
        TcpUseful {
            sent: self.useful_sent.load(Ordering::Relaxed),
            received: self.useful_received.load(Ordering::Relaxed),
        }
    }

    fn problem(&self, err: &ClientError) -> Problem {
        problem(err, &self.server)
    }
}

/// A message the window asked to send: its number in the window, where it goes, its text.
type Outgoing = (LocalId, Target, String);

/// A signed-in session.
struct Session {
    handle: ClientHandle,
    shared: Arc<Shared>,
    /// The session's send queue, emptied in order by [`send_in_order`].
    outgoing: mpsc::UnboundedSender<Outgoing>,
    tasks: Vec<JoinHandle<()>>,
}

struct Driver {
    config: RealConfig,
    sink: Sink,
    session: Option<Session>,
    room: Option<ServerHandle>,
    /// The last impairment applied, re-applied to every new session so the sliders keep telling the truth after a
    /// log-out and back in.
    impairment: Option<Impairment>,
}

/// Runs until the command channel closes (the backend was dropped), then logs out and stops the room.
pub(super) async fn run(config: RealConfig, mut commands: mpsc::UnboundedReceiver<Command>, sink: Sink) {
    let mut driver = Driver { config, sink, session: None, room: None, impairment: None };
    while let Some(command) = commands.recv().await {
        driver.handle(command).await;
    }
    driver.end_session().await;
    if let Some(room) = driver.room.take()
        && let Err(err) = room.shutdown().await
    {
        tracing::warn!("the hosted room stopped with an error: {err}");
    }
}

impl Driver {
    async fn handle(&mut self, command: Command) {
        match command {
            Command::SignIn { server, user, password, account } => self.sign_in(server, user, password, account).await,
            Command::Send { local_id, to, text } => self.send(local_id, to, text).await,
            Command::History { target, before_id } => self.history(target, before_id),
            Command::SetTransport(transport) => self.set_transport(transport),
            Command::SetImpairment(impairment) => self.set_impairment(*impairment),
            Command::HostRoom { port } => self.host(port).await,
            Command::LogOut => {
                self.end_session().await;
                self.sink.push(BackendEvent::LoggedOut);
            }
        }
    }

    async fn sign_in(&mut self, server: String, user: Username, password: Password, account: Account) {
        self.end_session().await;
        let Some(known_servers) = self.config.known_servers_path.clone() else {
            let text =
                "no place for the known-servers file (where server keys are pinned): set HOME or XDG_CONFIG_HOME";
            self.sink.push(BackendEvent::LoginFailed(Problem::Other(text.to_owned())));
            return;
        };
        let (handle, mut events) = match Client::connect(ClientConfig::new(server.clone(), known_servers)).await {
            Ok(connected) => connected,
            Err(ClientError::ServerKeyChanged { server, pinned, presented, .. }) => {
                let (pinned, offered) = (pinned.to_string(), presented.to_string());
                self.sink.push(BackendEvent::ServerKeyChanged { server, pinned, offered });
                return;
            }
            Err(err) => {
                self.sink.push(BackendEvent::LoginFailed(problem(&err, &server)));
                return;
            }
        };
        // The pin is queued before `connect` returns, so it is the first event if it exists.
        let mut early = Vec::new();
        let mut first_contact = false;
        while let Ok(event) = events.try_recv() {
            match event {
                ClientEvent::ServerKeyPinned { .. } => first_contact = true,
                other => early.push(other),
            }
        }
        let shared = Arc::new(Shared {
            sink: self.sink.clone(),
            server: server.clone(),
            receipts: Mutex::new(ReceiptOrder::default()),
            useful_sent: AtomicU64::new(0),
            useful_received: AtomicU64::new(0),
            on_tcp: AtomicBool::new(false),
        });
        // The forwarder starts now, holding events back until the window knows it is signed in: a login's history
        // sync may be larger than the core's event queue, and the core must never wait for a reader while the
        // driver waits for the login's answer.
        let (release, released) = oneshot::channel();
        let forwarder =
            Forwarder { shared: Arc::clone(&shared), handle: handle.clone(), synced: Vec::new(), lost: String::new() };
        let forwarding = tokio::spawn(forwarder.run(events, early, released));
        let result = async {
            if account == Account::Register {
                handle.register(user.as_str(), password.clone()).await?;
            }
            handle.login(user.as_str(), password).await
        }
        .await;
        let info = match result {
            Ok(info) => info,
            Err(err) => {
                forwarding.abort();
                handle.shutdown().await;
                self.sink.push(BackendEvent::LoginFailed(problem(&err, &server)));
                return;
            }
        };
        shared.on_tcp.store(info.transport == Transport::Tcp, Ordering::Relaxed);
        self.sink.push(BackendEvent::LoggedIn {
            user: info.user,
            server,
            fingerprint: handle.server_fingerprint().to_string(),
            first_contact,
            max_text_bytes: info.max_text_bytes,
        });
        self.sink
            .push(BackendEvent::TransportChanged { transport: info.transport, reason: TransportReason::SessionStart });
        let _ = release.send(());
        let users = tokio::spawn(push_users(handle.clone(), Arc::clone(&shared)));
        let stats = tokio::spawn(poll_stats(handle.clone(), Arc::clone(&shared)));
        if let Some(impairment) = self.impairment.clone() {
            tokio::spawn(apply_impairment(handle.clone(), Arc::clone(&shared), impairment));
        }
        let (outgoing, queue) = mpsc::unbounded_channel();
        let sender = tokio::spawn(send_in_order(handle.clone(), Arc::clone(&shared), queue));
        self.session = Some(Session { handle, shared, outgoing, tasks: vec![forwarding, users, stats, sender] });
    }

    async fn end_session(&mut self) {
        if let Some(session) = self.session.take() {
            for task in &session.tasks {
                task.abort();
            }
            // Logs out, closes the connection and stops the core.
            session.handle.shutdown().await;
        }
    }

    /// Queues the message in the session's send queue, which [`send_in_order`] empties.
    async fn send(&mut self, local_id: LocalId, to: Target, text: String) {
        let Some(session) = &self.session else {
            let problem = Problem::Refused { code: ErrorCode::NotLoggedIn, message: String::from("not signed in") };
            self.sink.push(BackendEvent::Rejected { local_id, problem });
            return;
        };
        // The task lives as long as the session, and the queue with it.
        let _ = session.outgoing.send((local_id, to, text));
    }

    fn history(&self, target: Target, before_id: Option<u64>) {
        let Some(session) = &self.session else { return };
        let (handle, shared) = (session.handle.clone(), Arc::clone(&session.shared));
        tokio::spawn(async move {
            match handle.history(target.clone(), before_id, HISTORY_PAGE).await {
                Ok(page) => {
                    shared.count_received(&page.messages);
                    shared.sink.push(BackendEvent::History { target, messages: page.messages, more: page.more });
                }
                // A page lost with the connection is asked for again after the reconnect (the window forgets the
                // request when it hears of the loss, which the forwarder reports).
                Err(ClientError::Disconnected { .. } | ClientError::Closed) => {}
                // No answer in time: let the window ask again when the student scrolls up.
                Err(ClientError::Timeout { .. }) => {
                    shared.sink.push(BackendEvent::History { target, messages: Vec::new(), more: true });
                }
                // The server refused to go further back: what is shown is all there is to see.
                Err(err) => {
                    tracing::warn!("history of {target:?} refused: {err}");
                    shared.sink.push(BackendEvent::History { target, messages: Vec::new(), more: false });
                }
            }
        });
    }

    /// The outcome arrives as the core's `TransportChanged` event; a switch the core could not make (the connection
    /// is down, the request could not be written) comes back as its own event, so the switch in the statistics panel
    /// can fall back to the transport in use and say why beside it.
    fn set_transport(&self, wanted: Transport) {
        let Some(session) = &self.session else {
            let problem = Problem::Refused { code: ErrorCode::NotLoggedIn, message: String::from("not signed in") };
            self.sink.push(BackendEvent::TransportSwitchFailed { wanted, problem });
            return;
        };
        let (handle, shared) = (session.handle.clone(), Arc::clone(&session.shared));
        tokio::spawn(async move {
            if let Err(err) = handle.set_transport(wanted).await {
                shared.sink.push(BackendEvent::TransportSwitchFailed { wanted, problem: shared.problem(&err) });
            }
        });
    }

    fn set_impairment(&mut self, impairment: Impairment) {
        self.impairment = Some(impairment.clone());
        match &self.session {
            Some(session) => {
                tokio::spawn(apply_impairment(session.handle.clone(), Arc::clone(&session.shared), impairment));
            }
            None => {
                let problem = Problem::Refused { code: ErrorCode::NotLoggedIn, message: String::from("not signed in") };
                self.sink.push(BackendEvent::ImpairmentFailed(problem));
            }
        }
    }

    async fn host(&mut self, port: u16) {
        if let Some(room) = &self.room
            && !room.is_finished()
        {
            let port = room.local_addr().port();
            let addresses = room::share_addresses(&chatlab_server::lan_addresses(), port);
            self.sink.push(BackendEvent::RoomHosted { port, addresses });
            return;
        }
        match room::host(port, self.config.room_dir.as_deref()).await {
            Ok((server, addresses)) => {
                let port = server.local_addr().port();
                self.room = Some(server);
                self.sink.push(BackendEvent::RoomHosted { port, addresses });
            }
            Err(problem) => self.sink.push(BackendEvent::HostFailed(problem)),
        }
    }
}

/// Hands the window's messages to the client core one at a time, in the order Enter was pressed, and lets each wait
/// for its acceptance on a task of its own.
///
/// [`ClientHandle::queue`] returns once a message has its place in the core's send queue, so awaiting it here, one
/// message after the other, fixes the order in which they go out, while their acceptances are awaited side by side.
/// When the core's send budget is spent (a huge paste, a stalled network), `queue` waits for room, and so does this
/// queue: nothing is refused or dropped, the window shows the messages as "sending", and the rest of the driver
/// (history, statistics, the transport switch) never waits behind them.
async fn send_in_order(handle: ClientHandle, shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Outgoing>) {
    while let Some((local_id, to, text)) = queue.recv().await {
        match handle.queue(to, &text).await {
            Ok(sending) => {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let result = sending.accepted().await;
                    report_send(&shared, local_id, &text, result);
                });
            }
            Err(err) => report_send(&shared, local_id, &text, Err(err)),
        }
    }
}

/// Turns a send's outcome into the window's events: the acceptance, then any receipt that overtook it.
fn report_send(shared: &Shared, local_id: LocalId, text: &str, result: Result<crate::Accepted, ClientError>) {
    match result {
        Ok(accepted) => {
            if accepted.transport == Transport::Tcp {
                shared.useful_sent.fetch_add(u64::try_from(text.len()).unwrap_or(u64::MAX), Ordering::Relaxed);
            }
            let id = accepted.id;
            shared.sink.push(BackendEvent::Accepted { local_id, id, sent_at_ms: accepted.sent_at_ms });
            for to in shared.receipts().acknowledged(id) {
                shared.sink.push(BackendEvent::Receipt { id, to });
            }
        }
        Err(err) => shared.sink.push(BackendEvent::Rejected { local_id, problem: shared.problem(&err) }),
    }
}

async fn push_users(handle: ClientHandle, shared: Arc<Shared>) {
    match handle.users().await {
        Ok(users) => shared.sink.push(BackendEvent::Users(users)),
        // The list comes again after a reconnect; presence events keep it current meanwhile.
        Err(err) => tracing::warn!("user list not loaded: {err}"),
    }
}

async fn apply_impairment(handle: ClientHandle, shared: Arc<Shared>, impairment: Impairment) {
    if let Err(err) = handle.set_impairment(impairment.outgoing, impairment.incoming).await {
        shared.sink.push(BackendEvent::ImpairmentFailed(shared.problem(&err)));
    }
}

async fn poll_stats(handle: ClientHandle, shared: Arc<Shared>) {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(STATS_INTERVAL);
    // A slow snapshot (a busy core) skips a report rather than sending a burst of them afterwards.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        match handle.stats().await {
            Ok(stats) => {
                let update = stats_update(stats, started.elapsed(), shared.useful());
                shared.sink.push(BackendEvent::Stats(Box::new(update)));
            }
            Err(ClientError::Closed) => return,
            // Disconnected for a moment: the next tick tries again.
            Err(_) => {}
        }
    }
}

/// Reads the core's events for one session. See the module docs.
struct Forwarder {
    shared: Arc<Shared>,
    handle: ClientHandle,
    /// Messages of the sync in progress, sent as one [`BackendEvent::Synced`] when it ends.
    synced: Vec<ChatMessage>,
    /// Why the connection was lost last, repeated while reconnecting.
    lost: String,
}

impl Forwarder {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<ClientEvent>,
        early: Vec<ClientEvent>,
        mut released: oneshot::Receiver<()>,
    ) {
        let mut held = early;
        let mut open = false;
        loop {
            tokio::select! {
                gate = &mut released, if !open => {
                    if gate.is_err() {
                        return;
                    }
                    open = true;
                    for event in std::mem::take(&mut held) {
                        self.forward(event);
                    }
                }
                event = events.recv() => match event {
                    Some(event) if open => self.forward(event),
                    Some(event) => held.push(event),
                    None => break,
                },
            }
        }
        self.flush_sync();
    }

    fn flush_sync(&mut self) {
        if !self.synced.is_empty() {
            self.shared.sink.push(BackendEvent::Synced(std::mem::take(&mut self.synced)));
        }
    }

    fn forward(&mut self, event: ClientEvent) {
        let shared = Arc::clone(&self.shared);
        match event {
            ClientEvent::Message { message, source: MessageSource::Live } => {
                if shared.on_tcp.load(Ordering::Relaxed) {
                    shared.count_received(std::slice::from_ref(&message));
                }
                shared.sink.push(BackendEvent::Message(message));
            }
            ClientEvent::Message { message, source: MessageSource::Sync } => {
                // Syncs travel over the TCP control connection whatever transport chat uses.
                shared.count_received(std::slice::from_ref(&message));
                self.synced.push(message);
                if self.synced.len() >= MAX_SYNC_BATCH {
                    self.flush_sync();
                }
            }
            ClientEvent::Synced { .. } => self.flush_sync(),
            ClientEvent::Receipt { id, to } => {
                if shared.receipts().receipt(id, to.clone()) {
                    shared.sink.push(BackendEvent::Receipt { id, to });
                }
            }
            ClientEvent::Presence { user, online } => shared.sink.push(BackendEvent::Presence { user, online }),
            ClientEvent::TransportChanged { transport, reason } => {
                shared.on_tcp.store(transport == Transport::Tcp, Ordering::Relaxed);
                let reason = transport_reason(&reason, &shared.server);
                shared.sink.push(BackendEvent::TransportChanged { transport, reason });
            }
            ClientEvent::Disconnected { reason } => {
                self.flush_sync();
                self.lost.clone_from(&reason);
                shared.sink.push(BackendEvent::ConnectionLost(Problem::Disconnected { detail: reason }));
            }
            ClientEvent::Reconnecting { attempt, delay } => {
                let detail = format!("{}; reconnecting (attempt {attempt}) in {} ms", self.lost, delay.as_millis());
                shared.sink.push(BackendEvent::ConnectionLost(Problem::Disconnected { detail }));
            }
            ClientEvent::Reconnected => {
                shared.sink.push(BackendEvent::Reconnected);
                tokio::spawn(push_users(self.handle.clone(), shared));
            }
            ClientEvent::Error(err) if err.ends_the_session() => {
                self.flush_sync();
                shared.sink.push(BackendEvent::SessionEnded(shared.problem(&err)));
                // A changed key gets its own explanation on the sign-in form, as at a first sign-in.
                if let ClientError::ServerKeyChanged { server, pinned, presented, .. } = err {
                    let (pinned, offered) = (pinned.to_string(), presented.to_string());
                    shared.sink.push(BackendEvent::ServerKeyChanged { server, pinned, offered });
                }
            }
            ClientEvent::Error(err) => shared.sink.push(BackendEvent::Notice(shared.problem(&err))),
            // The outcome of a send is reported by the send's own task, which knows the window's number for the message;
            // the pin was read at sign-in; statistics are polled, not pushed (no interval is configured).
            ClientEvent::Accepted(_)
            | ClientEvent::SendFailed { .. }
            | ClientEvent::ServerKeyPinned { .. }
            | ClientEvent::Stats(_) => {}
        }
    }
}
