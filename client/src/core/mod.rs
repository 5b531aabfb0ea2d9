//! The client core: one task that owns the connection and every piece of session state.
//!
//! # Why one task
//!
//! A chat client has many things going on at once: requests from the user, frames from the server, datagrams and
//! their timers, a heartbeat, reconnection. Sharing that state between threads behind locks is how the original
//! Python client ended up with unsynchronised threads and a frozen window. Here a single task, the *actor*, owns it
//! all and reacts to one input at a time:
//!
//! ```text
//!   ClientHandle ── Command ──────────▶ ┌────────┐ ── ClientEvent ──▶ the face (CLI, desktop)
//!   reader task  ── frame ciphertext ─▶ │ Actor  │ ── frames ───────▶ TCP (ControlWriter)
//!   UDP task     ── UdpReport ────────▶ │        │ ── UdpCommand ───▶ UDP task
//!   reconnector  ── Established ──────▶ └────────┘
//!                       ticker (deadlines, probe, heartbeat, back-off)
//! ```
//!
//! Each input arrives on a channel tagged with the *generation* of the connection it belongs to, so a frame or a
//! datagram from a connection that has already been replaced is recognised and ignored.
//!
//! # Where things are
//!
//! | file | concept |
//! |---|---|
//! | `mod.rs` | the actor's state and its event loop |
//! | `pending.rs` | requests waiting for answers, with deadlines |
//! | `requests.rs` | commands from the handle |
//! | `inbound.rs` | messages from the server, on either transport |
//! | `transport.rs` | the UDP probe, the fall-back to TCP, switching transports |
//! | `link.rs` | losing the connection, back-off, reconnecting and logging in again |
//! | `outbox.rs` | chat messages that wait for the connection to come back, and go out after the reconnect |
//! | `window.rs` | chat messages that wait for room in the UDP send window, and the outcome of every message |

mod inbound;
mod link;
mod outbox;
mod pending;
mod requests;
mod transport;
mod window;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use chatlab_proto::chat::{StreamMap, Target, Username};
use chatlab_proto::control::{ClientMessage, Password, Transport};
use chatlab_proto::noise::Transport as NoiseTransport;

use crate::backoff::Backoff;
use crate::channel::{self, ControlWriter, Established, Inbound};
use crate::config::ClientConfig;
use crate::error::{ClientError, human_duration};
use crate::event::{Accepted, ClientEvent, HistoryPage, SessionInfo};
use crate::recent_ids::RecentIds;
use crate::stats::{ClientStats, LatencyRecorder};
use crate::udp::{Impairment, SessionEndpoint, UdpLink, UdpReport, UdpStats};

use pending::{AccountOp, Failed, Pending, SendState};

/// How often the actor checks its deadlines (request timeouts, the UDP probe, the heartbeat, reconnection). 50 ms
/// is far below every timeout it serves (the shortest is the probe's 3 s) and costs nothing measurable.
const TICK: Duration = Duration::from_millis(50);

/// Interval between pings while the UDP probe waits for an answer. The engine does not retransmit a bare ping, so
/// one lost ping must not decide the probe: six tries in the 3 s probe ride out heavy loss.
const PROBE_PING_INTERVAL: Duration = Duration::from_millis(500);

/// Capacity of the internal channels from the reader task, the UDP task and the reconnector.
const INTERNAL_QUEUE: usize = 256;

/// A reply channel for one request.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, ClientError>>;

/// What a [`ClientHandle`](crate::ClientHandle) asks the core to do. `Send::started` is when the message was handed
/// over, the start of the delivery latency, and `Send::budget` its share of the send budget, held until it is
/// accepted or fails; `SetImpairment` is boxed because two impairment configs are large next to the
/// other commands, and every command moves through the queue.
#[derive(Debug)]
pub(crate) enum Command {
    Register { username: String, password: Password, reply: Reply<Username> },
    Login { username: String, password: Password, reply: Reply<SessionInfo> },
    Send { to: Target, text: String, started: Instant, budget: OwnedSemaphorePermit, reply: Reply<Accepted> },
    History { target: Target, before: Option<u64>, limit: u16, reply: Reply<HistoryPage> },
    Sync { reply: Reply<usize> },
    Users { reply: Reply<Vec<Username>> },
    SetTransport { transport: Transport, reply: Reply<()> },
    Logout { reply: Reply<()> },
    Stats { reply: Reply<ClientStats> },
    SetImpairment { impairment: Box<Impairment>, reply: Reply<()> },
    Shutdown { reply: oneshot::Sender<()> },
}

/// A live control connection.
struct Conn {
    writer: ControlWriter,
    noise: NoiseTransport,
    reader: JoinHandle<()>,
    peer: SocketAddr,
    /// When the server was last heard from (any frame).
    last_heard: Instant,
    /// When the outstanding heartbeat ping was sent, if one is.
    heartbeat_sent: Option<Instant>,
    next_heartbeat: Instant,
    next_nonce: u64,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The state of the control connection.
enum Link {
    Up(Box<Conn>),
    /// Waiting until `at` before reconnection attempt `attempt`.
    Waiting {
        attempt: u32,
        at: Instant,
        reason: String,
    },
    /// Reconnection attempt `attempt` is running.
    Connecting {
        attempt: u32,
        reason: String,
    },
    /// Given up (or reconnecting is switched off).
    Down {
        reason: String,
    },
}

/// The UDP probe in progress: sends wait until it ends one way or the other.
struct Probe {
    started: Instant,
    deadline: Instant,
    next_ping: Instant,
}

/// A logged-in session.
struct Session {
    /// Where chat messages go now.
    transport: Transport,
    /// The grant's datagram parameters, kept to build the session's endpoint when UDP first starts.
    key_material: [u8; 32],
    connection_id: u64,
    udp_server: SocketAddr,
    /// The session's one datagram endpoint, built when UDP first starts and kept until the session ends: every UDP
    /// task of the session drives this same endpoint, so packet numbers (AES-GCM nonces) never repeat under the
    /// grant's keys (see `udp::session`).
    endpoint: Option<SessionEndpoint>,
    /// The UDP task running now, if any. Dropping it stops the task; the endpoint stays.
    udp: Option<UdpLink>,
    probe: Option<Probe>,
}

/// The remembered login, for logging in again after a reconnect. Kept in memory only.
#[derive(Debug, Clone)]
pub(super) struct Credentials {
    username: String,
    password: Password,
}

/// The actor. See the module docs.
pub(crate) struct Actor {
    config: ClientConfig,
    events: mpsc::Sender<ClientEvent>,
    commands: mpsc::Receiver<Command>,
    inbound_tx: mpsc::Sender<(u64, Inbound)>,
    inbound_rx: mpsc::Receiver<(u64, Inbound)>,
    udp_tx: mpsc::Sender<(u64, UdpReport)>,
    udp_rx: mpsc::Receiver<(u64, UdpReport)>,
    reconnect_tx: mpsc::Sender<(u32, Result<Established, ClientError>)>,
    reconnect_rx: mpsc::Receiver<(u32, Result<Established, ClientError>)>,
    /// Generation of the current TCP connection.
    generation: u64,
    /// Generation of the current UDP task.
    udp_generation: u64,
    link: Link,
    session: Option<Session>,
    credentials: Option<Credentials>,
    pending: Pending,
    next_req: u32,
    next_client_msg_id: u64,
    /// The longest text the server accepts, from the last session grant: the limit messages are checked against
    /// while they wait in the outbox without a session.
    text_limit: usize,
    /// Largest message id this client has seen. Only says whether there is anything to catch up on after a
    /// reconnect; it is *not* a sync cursor: ids arrive out of order across UDP streams, so a smaller id may still
    /// be in flight (or stranded in a dead UDP path) when a larger one has arrived.
    last_id: u64,
    /// Cursor of the next sync: the last message of the last *completed* sync, below which this client has every
    /// message it may see. A sync after a reconnect or a fall-back starts here, fetches again what arrived live
    /// since, and [`RecentIds`] drops those duplicates.
    sync_cursor: u64,
    recent: RecentIds,
    streams: StreamMap,
    preference: Transport,
    backoff: Backoff,
    next_stats: Option<Instant>,
    /// The impairment of the client's own UDP traffic. Every UDP task subscribes, so a change reaches the live
    /// session at once and every later session starts with the latest setting.
    impairment: watch::Sender<Impairment>,
    /// Delivery latency of every accepted message, per transport, for the client's whole life.
    latency: LatencyRecorder,
    /// Private messages pushed over TCP and not reported with `Received` yet (see `inbound.rs`); forgotten with
    /// the connection (the server confirms them at the next sync).
    receipts_due: inbound::ReceiptBatch,
}

impl Actor {
    /// Starts the actor on an established connection.
    pub(crate) fn spawn(
        config: ClientConfig,
        established: Established,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<ClientEvent>,
    ) -> JoinHandle<()> {
        let (inbound_tx, inbound_rx) = mpsc::channel(channel::INBOUND_QUEUE_FRAMES);
        let (udp_tx, udp_rx) = mpsc::channel(INTERNAL_QUEUE);
        let (reconnect_tx, reconnect_rx) = mpsc::channel(1);
        let now = Instant::now();
        let mut actor = Actor {
            preference: config.transport,
            backoff: Backoff::new(config.reconnect_backoff_min, config.reconnect_backoff_max),
            next_stats: config.stats_interval.map(|interval| now + interval),
            config,
            events,
            commands,
            inbound_tx,
            inbound_rx,
            udp_tx,
            udp_rx,
            reconnect_tx,
            reconnect_rx,
            generation: 0,
            udp_generation: 0,
            link: Link::Down { reason: String::new() },
            session: None,
            credentials: None,
            pending: Pending::default(),
            next_req: 1,
            // Random start: the server may recognise a resend by its client_msg_id, so two runs of the CLI must not
            // reuse each other's numbers. The top bit stays clear so the counter never wraps in practice.
            next_client_msg_id: rand::random::<u64>() >> 1,
            text_limit: chatlab_proto::limits::MAX_TEXT_BYTES,
            last_id: 0,
            sync_cursor: 0,
            recent: RecentIds::default(),
            streams: StreamMap::new(),
            impairment: watch::Sender::new(Impairment::default()),
            latency: LatencyRecorder::default(),
            receipts_due: inbound::ReceiptBatch::default(),
        };
        actor.install(established);
        tokio::spawn(actor.run())
    }

    /// The event loop: one input at a time until every handle is gone or a shutdown is asked for.
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown { reply }) => {
                        self.shut_down().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(command) => self.on_command(command).await,
                    None => {
                        self.shut_down().await;
                        return;
                    }
                },
                Some((generation, inbound)) = self.inbound_rx.recv() => {
                    if generation == self.generation {
                        self.on_inbound(inbound).await;
                    }
                    // Receipts wait while more frames are queued, and go as one report when the burst is read.
                    if self.inbound_rx.is_empty() {
                        self.report_received().await;
                    }
                }
                Some((generation, report)) = self.udp_rx.recv() => {
                    // A stopped task's confirmations and silences are stale, but a chat payload it received is real
                    // (the engine already acknowledged it to the server) and de-duplicated like any other.
                    if generation == self.udp_generation || matches!(report, UdpReport::Payload(_)) {
                        self.on_udp(report).await;
                    }
                }
                Some((attempt, result)) = self.reconnect_rx.recv() => self.on_reconnect_result(attempt, result).await,
                _ = ticker.tick() => self.on_tick().await,
            }
        }
    }

    /// Takes an established connection into use: a new generation, a reader task, fresh heartbeat timers.
    fn install(&mut self, established: Established) {
        self.generation = self.generation.wrapping_add(1);
        let reader = channel::spawn_reader(
            established.reader,
            established.decoder,
            Arc::clone(&established.counters),
            self.generation,
            self.inbound_tx.clone(),
        );
        let now = Instant::now();
        self.link = Link::Up(Box::new(Conn {
            writer: established.writer,
            noise: established.noise,
            reader,
            peer: established.peer,
            last_heard: now,
            heartbeat_sent: None,
            next_heartbeat: now + self.config.heartbeat_interval,
            next_nonce: 1,
        }));
    }

    /// Everything time-driven.
    async fn on_tick(&mut self) {
        let now = Instant::now();
        let mut relogin_unanswered = false;
        for expired in self.pending.take_expired(now) {
            let err = match &expired {
                Failed::Send(_, send) if send.state == SendState::Queued => self.outbox_expired(send),
                // Never out (a copy that went out before a reconnect may be stored: that one is a plain timeout).
                Failed::Send(_, send) if send.state == SendState::Waiting && !send.sent => {
                    ClientError::NoRoom { waited: self.config.request_timeout }
                }
                Failed::Account(AccountOp::Login { reply: None, .. }) => {
                    relogin_unanswered = true;
                    continue;
                }
                other => ClientError::Timeout { what: other.what().to_string(), after: self.config.request_timeout },
            };
            match expired {
                Failed::Send(client_msg_id, send) => self.fail_send(client_msg_id, send, err).await,
                other => other.fail(err),
            }
        }
        if relogin_unanswered {
            // Nobody waits for the automatic login, but the outbox does: try the whole reconnection again.
            let after = human_duration(self.config.request_timeout);
            self.lose_link(format!("no answer to logging in again within {after}")).await;
        }
        self.tick_probe(now).await;
        self.tick_link(now).await;
        if let Some(at) = self.next_stats.filter(|at| *at <= now) {
            self.next_stats = self.config.stats_interval.map(|interval| at.max(now) + interval);
            self.emit_stats();
        }
    }

    /// Sends one control message on the live connection; a failure drops the connection.
    async fn send_control(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        let Link::Up(conn) = &mut self.link else {
            return Err(self.disconnected_error());
        };
        let conn = &mut **conn;
        match conn.writer.send(&mut conn.noise, message).await {
            Ok(()) => Ok(()),
            Err(err) => {
                self.lose_link(err.to_string()).await;
                Err(err)
            }
        }
    }

    /// The error a request gets while the connection is not up.
    fn disconnected_error(&self) -> ClientError {
        let reason = match &self.link {
            Link::Up(_) => "connected".to_string(),
            Link::Waiting { attempt, reason, .. } | Link::Connecting { attempt, reason } => {
                format!("{reason}; reconnecting (attempt {attempt})")
            }
            Link::Down { reason } => reason.clone(),
        };
        ClientError::Disconnected { reason }
    }

    /// Emits an event; a face that dropped its receiver simply stops hearing.
    async fn emit(&self, event: ClientEvent) {
        let _ = self.events.send(event).await;
    }

    /// A fresh `client_msg_id`: the message's name for its whole life, resends included.
    fn client_msg_id(&mut self) -> u64 {
        let id = self.next_client_msg_id;
        self.next_client_msg_id = self.next_client_msg_id.wrapping_add(1);
        id
    }

    /// A fresh request number.
    fn req(&mut self) -> u32 {
        let req = self.next_req;
        self.next_req = self.next_req.wrapping_add(1).max(1);
        req
    }

    /// Collects statistics from both transports and delivers them to `deliver`, without blocking the actor: the UDP
    /// task answers on its own time.
    fn collect_stats(&self, deliver: impl FnOnce(ClientStats) + Send + 'static) {
        let tcp = match &self.link {
            Link::Up(conn) => conn.writer.stats(),
            _ => Default::default(),
        };
        let transport = self.session.as_ref().map(|session| session.transport);
        let (reply, answer) = oneshot::channel();
        let asked = self
            .session
            .as_ref()
            .and_then(|session| session.udp.as_ref())
            .is_some_and(|udp| udp.command(crate::udp::UdpCommand::Stats(reply)));
        let timeout = self.config.request_timeout;
        let latency = self.latency.stats();
        tokio::spawn(async move {
            let udp = match asked {
                true => tokio::time::timeout(timeout, answer).await.ok().and_then(Result::ok),
                false => None,
            };
            let (udp, udp_rtt_history, impairment) = match udp {
                Some(UdpStats { snapshot, rtt_history, impairment }) => (Some(snapshot), rtt_history, impairment),
                None => (None, Vec::new(), None),
            };
            deliver(ClientStats { transport, udp, udp_rtt_history, tcp, latency, impairment });
        });
    }

    /// Emits a [`ClientEvent::Stats`].
    fn emit_stats(&self) {
        let events = self.events.clone();
        self.collect_stats(move |stats| {
            // A full event queue skips one periodic snapshot rather than holding a task.
            let _ = events.try_send(ClientEvent::Stats(Box::new(stats)));
        });
    }

    /// Ends everything: logs out politely if possible, fails what is waiting.
    async fn shut_down(&mut self) {
        if self.session.is_some() && matches!(self.link, Link::Up(_)) {
            let _ = self.send_control(&ClientMessage::Logout).await;
        }
        self.session = None;
        self.pending.fail_requests(|| ClientError::Closed);
        self.fail_all_sends(&ClientError::Closed).await;
        self.link = Link::Down { reason: "the client shut down".to_string() };
    }
}
