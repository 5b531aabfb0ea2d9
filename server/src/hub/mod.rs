//! The hub: one task that owns every live session.
//!
//! A chat server's live state is a web of cross-references: a world message must reach every session, a receipt
//! every session of one user, a presence change everyone but the user, and a datagram must find its session by
//! connection id. Guarding that web with locks invites deadlocks and lock-order bugs. chatlab instead gives all of
//! it to one task, the **hub** (an *actor*): other tasks send it messages through a bounded queue
//! ([`input::HubInput`]) and it handles them one at a time. Nothing it owns is shared, so nothing needs a lock,
//! and each handler sees a consistent world.
//!
//! The hub owns:
//!
//! - the session table (by connection id) and presence (which users have at least one session);
//! - every session's datagram `Endpoint`, the UDP socket it reads from and
//!   sends with, and the heap of the endpoints' timers ([`timers`]);
//! - flood control per *user* (a token bucket shared by all their sessions, kept across logout and login until
//!   it has refilled, so a new session never means a fresh burst) and fan-out.
//! - the memory of recent `client_msg_id`s that makes a resent message an answer instead of a second copy
//!   ([`dedup`]), rebuilt from storage before the server accepts traffic, so it survives a crash ([`seed`]).
//!
//! It never blocks: storage work goes to the writer thread with `try_send`, control messages go into each
//! connection's bounded queue with `try_send`, and datagrams leave with `try_send_to` (a full socket buffer drops
//! the datagram, which the engine retransmits — what UDP is for). The only `await`s are in its main `select!`:
//! the next command, the next datagram, or the next timer.
//!
//! ## A message's path
//!
//! ```text
//!  Chat (TCP) / Send (UDP) ─▶ resend? ─▶ flood bucket ─▶ validate text ─▶ writer queue ─▶ one transaction
//!                                │ answered  │ refused         │ refused                      │ unknown recipient
//!                                ▼           ▼                 ▼                              ▼
//!                        Accepted (stored id)   Rejected on the transport it came on     Committed ─▶ Accepted,
//!                                                                                        Message to recipients
//! ```
//!
//! Nothing is acknowledged or fanned out before its transaction committed, so a message someone saw is a message
//! the server still has after a crash.
//!
//! ## Cheapest check first
//!
//! Every chat message, valid or not, costs the sender a token of their flood bucket *before* anything else is done
//! with it: checking a text, hashing it for de-duplication and answering a refusal all cost the server work, and a
//! client sending invalid messages in a loop must run dry as fast as one sending valid ones. Only a true resend —
//! an id this user already used, with the same text — is answered without a token, because it is not a new
//! message; telling one apart costs a map lookup by id, and the text is hashed only for ids the user really used.
//! Refusals are answered one by one but logged as a summary per reason and interval ([`crate::log_summary`]): one
//! client refused in a loop once grew the log by 14 MB a second.
//!
//! ## Receipts
//!
//! A private message pushed over UDP is *delivered* when the recipient's engine acknowledges it; over TCP when the
//! client says `Received`. The hub turns UDP acknowledgements into delivery marks for the writer, and routes the
//! resulting receipts to every session of the sender. World messages get no receipts: one message to a room of
//! 200 would produce 200 receipts for its sender, which no interface can show usefully and which would multiply
//! the fan-out traffic; the storage keeps no per-reader state for them either.

pub mod dedup;
pub mod heap_trim;
pub mod input;
pub mod outbox;
pub mod path;
pub mod seed;
pub mod session;
pub mod timers;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatlab_proto::chat::{ChatMessage, ChatPayload, Target, TextError, Username, validate_text_with_limit};
use chatlab_proto::control::{ErrorCode, KeyMaterial, PageBuilder, ServerMessage, Transport};
use chatlab_proto::datagram::{Header, Role};
use chatlab_proto::endpoint::Endpoint;
use chatlab_proto::engine::{EngineConfig, Event};
use chatlab_proto::limits::MAX_DATAGRAM_BYTES;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub use self::dedup::Dedup;
use self::dedup::{Seen, Waiter, fingerprint};
use self::input::{ChatOutcome, ChatRequest, CloseReason, HubInput, LoginRequest, Refusal, SessionRef};
use self::path::PathEvent;
use self::session::{NewSession, Session};
use self::timers::Timers;
use crate::limits::{MAX_FLOOD_USERS, REFUSAL_LOG_INTERVAL, UDP_KEEPALIVE_FRACTION, UDP_RECV_BUFFER_BYTES};
use crate::log_summary::{LogSummary, Report};
use crate::rate_limit::{BucketShape, KeyedBuckets};
use crate::storage::{DeliveryReceipt, UserId};
use crate::writer::WriteRequest;

/// What the hub needs to know of the configuration.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Flood control per user.
    pub flood: BucketShape,
    /// Longest chat text, in bytes.
    pub max_text_bytes: usize,
    /// The datagram engine's settings for every session.
    pub engine: EngineConfig,
    /// The UDP port announced in session grants.
    pub udp_port: u16,
}

impl HubConfig {
    /// The engine settings for sessions whose UDP path counts as gone after `idle` without a datagram: the engine
    /// reports the silence, and pings at most every third of it so a live client always answers in time.
    pub fn engine_for_idle_timeout(idle: Duration) -> EngineConfig {
        let defaults = EngineConfig::default();
        let keepalive = defaults.keepalive.min(idle / UDP_KEEPALIVE_FRACTION);
        EngineConfig { idle_timeout: idle, keepalive, ..defaults }
    }
}

/// Datagrams the hub dropped, by reason. Counted, not logged one by one: a flood of garbage must not flood the log.
#[derive(Debug, Default, Clone, Copy)]
struct DropCounters {
    oversized: u64,
    bad_header: u64,
    unknown_connection: u64,
    failed_to_open: u64,
    send_failed: u64,
    /// Not sent because an unvalidated address had its share (see [`path::AMPLIFICATION_FACTOR`]).
    unvalidated_path: u64,
}

/// One user with at least one session.
#[derive(Debug)]
struct OnlineUser {
    name: Username,
    sessions: Vec<u64>,
}

/// Why a session ended, for the log and for what the connection is told.
#[derive(Debug, Clone, Copy)]
enum EndCause {
    Logout,
    Disconnected,
    Closed(CloseReason),
}

/// The hub's state. See the module documentation.
pub struct Hub {
    config: HubConfig,
    udp: Arc<UdpSocket>,
    writer: Option<mpsc::Sender<WriteRequest>>,
    /// Boxed: a session is about 6 KiB (most of it the endpoint's keys and state), and a hash table keeps room
    /// for more entries than it holds, so unboxed sessions would cost every empty slot 6 KiB as well — at 10 000
    /// sessions, about 10 KiB more per session than the sessions themselves.
    sessions: HashMap<u64, Box<Session>>,
    online: HashMap<UserId, OnlineUser>,
    next_serial: u64,
    timers: Timers,
    dirty: Vec<u64>,
    doomed: Vec<(u64, CloseReason)>,
    epoch: tokio::time::Instant,
    drops: DropCounters,
    shutting_down: bool,
    send_buf: Vec<u8>,
    dedup: Dedup,
    flood: KeyedBuckets<UserId>,
    /// Chat messages refused, by code, for the summary lines.
    refused: LogSummary<ErrorCode>,
    /// Sessions closed by the server, by reason, for the summary lines.
    closed: LogSummary<CloseReason>,
    /// When to give freed memory back to the OS after many sessions ended.
    heap_trim: heap_trim::HeapTrim,
}

impl Hub {
    /// A hub with no sessions, sending datagrams with `udp` and storage work to `writer`. `dedup` is its memory of
    /// recent `client_msg_id`s, rebuilt from storage at startup ([`seed::load_dedup`]) so that resends survive a
    /// crash of the previous process.
    pub fn new(config: HubConfig, udp: Arc<UdpSocket>, writer: mpsc::Sender<WriteRequest>, dedup: Dedup) -> Self {
        Self {
            flood: KeyedBuckets::new(config.flood, MAX_FLOOD_USERS),
            config,
            udp,
            writer: Some(writer),
            sessions: HashMap::new(),
            online: HashMap::new(),
            next_serial: 1,
            timers: Timers::default(),
            dirty: Vec::new(),
            doomed: Vec::new(),
            epoch: tokio::time::Instant::now(),
            drops: DropCounters::default(),
            shutting_down: false,
            send_buf: Vec::with_capacity(MAX_DATAGRAM_BYTES),
            dedup,
            refused: LogSummary::new(REFUSAL_LOG_INTERVAL),
            closed: LogSummary::new(REFUSAL_LOG_INTERVAL),
            heap_trim: heap_trim::HeapTrim::default(),
        }
    }

    /// Runs until the writer has flushed after a [`HubInput::Shutdown`] (or every sender of `inbox` is gone).
    pub async fn run(mut self, mut inbox: mpsc::Receiver<HubInput>) {
        let udp = Arc::clone(&self.udp);
        let mut datagram = vec![0u8; UDP_RECV_BUFFER_BYTES];
        loop {
            let wake = earliest(self.timers.next().map(|at| self.epoch + at), self.next_summary());
            tokio::select! {
                input = inbox.recv() => match input {
                    Some(HubInput::WriterDone) | None => break,
                    Some(input) => self.handle_input(input),
                },
                received = udp.recv_from(&mut datagram) => match received {
                    Ok((len, from)) => self.handle_datagram(datagram.get(..len).unwrap_or_default(), from),
                    // Linux reports an ICMP "port unreachable" for an earlier datagram as an error on the next
                    // receive; it concerns a client that went away and is no reason to stop.
                    Err(error) => tracing::trace!(%error, "UDP receive error"),
                },
                () = sleep_until(wake) => self.handle_timers(),
            }
            self.service_dirty();
            self.log_summaries(Instant::now(), false);
        }
        self.finish();
    }

    /// When the next summary line is due, if any events wait to be reported.
    fn next_summary(&self) -> Option<tokio::time::Instant> {
        let refused = self.refused.next_due().map(tokio::time::Instant::from_std);
        earliest(refused, self.closed.next_due().map(tokio::time::Instant::from_std))
    }

    /// Writes the summary lines that are due (all of them when `all`, at shutdown).
    fn log_summaries(&mut self, now: Instant, all: bool) {
        let refused = if all { self.refused.take(now) } else { self.refused.due(now) };
        if let Some(report) = refused {
            log_refused(&report);
        }
        let closed = if all { self.closed.take(now) } else { self.closed.due(now) };
        if let Some(report) = closed {
            log_closed(&report);
        }
    }

    /// Time since the hub started: the clock every endpoint runs on.
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn handle_input(&mut self, input: HubInput) {
        match input {
            HubInput::Login(request) => self.login(request),
            HubInput::Logout { session, reply } => {
                if let Some(s) = self.session_mut(session) {
                    // A client whose queue is too full to take `LoggedOut` would never learn that it is logged
                    // out; close its connection instead, which says so unambiguously.
                    let cause = match s.control(ServerMessage::LoggedOut) {
                        Ok(()) => EndCause::Logout,
                        Err(_) => EndCause::Closed(CloseReason::TooSlow),
                    };
                    self.end_session(session.cid, cause);
                }
                let _ = reply.send(());
            }
            HubInput::Disconnected { session } => {
                if self.session_mut(session).is_some() {
                    self.end_session(session.cid, EndCause::Disconnected);
                }
            }
            HubInput::Chat { session, client_msg_id, to, text } => {
                self.chat(session, Transport::Tcp, client_msg_id, to, text)
            }
            HubInput::ListUsers { session, req } => self.list_users(session, req),
            HubInput::UseTransport { session, transport } => {
                if let Some(s) = self.session_mut(session) {
                    tracing::debug!(user = %s.user, ?transport, "client chose its push transport");
                    if s.use_transport(transport).is_err() {
                        self.doomed.push((session.cid, CloseReason::TooSlow));
                    }
                }
            }
            HubInput::Receipts { recipient, receipts } => self.route_receipts(&recipient, &receipts),
            HubInput::Committed(outcomes) => {
                for outcome in outcomes {
                    self.complete(outcome);
                }
            }
            HubInput::Shutdown => {
                self.shutting_down = true;
                // Dropping the only sender lets the writer commit what it holds, answer, and stop.
                self.writer = None;
            }
            HubInput::WriterDone => {}
        }
    }

    /// The session `session` names, if it is still the same session.
    fn session_mut(&mut self, session: SessionRef) -> Option<&mut Session> {
        self.sessions.get_mut(&session.cid).filter(|s| s.serial == session.serial).map(|s| &mut **s)
    }

    fn mark_dirty(dirty: &mut Vec<u64>, cid: u64, session: &mut Session) {
        if !session.dirty {
            session.dirty = true;
            dirty.push(cid);
        }
    }

    fn login(&mut self, request: LoginRequest) {
        let LoginRequest { user, user_id, peer, out, kill, reply } = request;
        if self.shutting_down {
            let _ = reply.send(Err(Refusal::new(ErrorCode::ServerShuttingDown, "the server is shutting down")));
            return;
        }
        let grant = match self.new_grant() {
            Ok(grant) => grant,
            Err(error) => {
                tracing::error!(%error, %peer, "could not create session keys");
                let _ = reply.send(Err(Refusal::new(ErrorCode::Internal, "could not create a session")));
                return;
            }
        };
        let (cid, key) = grant;
        let endpoint = match Endpoint::new(key.expose(), cid, Role::Server, self.config.engine.clone(), self.now()) {
            Ok(endpoint) => endpoint,
            Err(error) => {
                tracing::error!(%error, "invalid engine configuration");
                let _ = reply.send(Err(Refusal::new(ErrorCode::Internal, "could not create a session")));
                return;
            }
        };
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        let new = NewSession { serial, user_id, user: user.clone(), peer, out, kill, endpoint };
        let mut session = Session::new(new);
        let grant = ServerMessage::SessionGrant {
            user: user.clone(),
            connection_id: cid,
            key_material: key,
            udp_port: self.config.udp_port,
            max_text_bytes: u32::try_from(self.config.max_text_bytes).unwrap_or(u32::MAX),
        };
        // The queue is fresh, so the grant is the first thing the client reads.
        let _ = session.control(grant);
        let session_ref = SessionRef { cid, serial };
        if reply.send(Ok(session_ref)).is_err() {
            // The connection ended while we worked; it will never report this session, so drop it now.
            return;
        }
        Self::mark_dirty(&mut self.dirty, cid, &mut session);
        self.sessions.insert(cid, Box::new(session));
        let entry =
            self.online.entry(user_id).or_insert_with(|| OnlineUser { name: user.clone(), sessions: Vec::new() });
        entry.sessions.push(cid);
        let first = entry.sessions.len() == 1;
        tracing::info!(%user, %peer, sessions = entry.sessions.len(), "session started");
        self.dedup.user_online(user_id, Instant::now());
        if first {
            self.presence(user_id, &user, true);
        }
    }

    /// A connection id unique among live sessions (and never 0), and fresh key material.
    fn new_grant(&self) -> Result<(u64, KeyMaterial), getrandom::Error> {
        let cid = loop {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes)?;
            let cid = u64::from_be_bytes(bytes);
            if cid != 0 && !self.sessions.contains_key(&cid) {
                break cid;
            }
        };
        let mut key = [0u8; chatlab_proto::control::KEY_MATERIAL_BYTES];
        getrandom::fill(&mut key)?;
        Ok((cid, KeyMaterial::new(key)))
    }

    /// Tells every session of every *other* user that `user` came online or went offline.
    fn presence(&mut self, user_id: UserId, user: &Username, online: bool) {
        for (&cid, session) in &mut self.sessions {
            if session.user_id != user_id
                && session.control(ServerMessage::Presence { user: user.clone(), online }).is_err()
            {
                self.doomed.push((cid, CloseReason::TooSlow));
            }
        }
    }

    fn end_session(&mut self, cid: u64, cause: EndCause) {
        let Some(mut session) = self.sessions.remove(&cid) else { return };
        if let EndCause::Closed(reason) = cause {
            session.kill(reason);
        }
        let mut last = false;
        if let Some(entry) = self.online.get_mut(&session.user_id) {
            entry.sessions.retain(|&c| c != cid);
            if entry.sessions.is_empty() {
                self.online.remove(&session.user_id);
                last = true;
            }
        }
        match cause {
            EndCause::Closed(reason) => {
                let held = session.queued_bytes();
                let describe = || format!("{} from {} holding {held} bytes", session.user, session.peer);
                if let Some(report) = self.closed.record(reason, Instant::now(), describe) {
                    log_closed(&report);
                }
            }
            EndCause::Logout | EndCause::Disconnected => {
                tracing::info!(user = %session.user, peer = %session.peer, ?cause, "session ended")
            }
        }
        if last {
            self.dedup.user_offline(session.user_id, Instant::now());
            // Buckets that refilled carry no information; the one of a user who just flooded stays.
            self.flood.forget_full(Instant::now());
            self.presence(session.user_id, &session.user, false);
        }
    }

    fn list_users(&mut self, session: SessionRef, req: u32) {
        let mut names: Vec<Username> = self.online.values().map(|u| u.name.clone()).collect();
        names.sort();
        let mut pages = Vec::new();
        let mut page = PageBuilder::users();
        for name in names {
            if let Err(name) = page.push(name) {
                pages.push(std::mem::replace(&mut page, PageBuilder::users()).into_items());
                // A name always fits an empty page (names are at most 32 bytes).
                let _ = page.push(name);
            }
        }
        pages.push(page.into_items());
        let Some(s) = self.sessions.get_mut(&session.cid).filter(|s| s.serial == session.serial) else { return };
        let count = pages.len();
        for (index, users) in pages.into_iter().enumerate() {
            let more = index + 1 < count;
            if s.control(ServerMessage::Users { req, users, more }).is_err() {
                self.doomed.push((session.cid, CloseReason::TooSlow));
                return;
            }
        }
    }

    /// Checks a chat message and hands it to the writer, or refuses it on the transport it came on. The cheapest
    /// checks come first, and every new message pays its token before its text is looked at (see the module
    /// documentation).
    fn chat(&mut self, session: SessionRef, origin: Transport, client_msg_id: u64, to: Target, text: String) {
        let now = self.now();
        let max_text_bytes = self.config.max_text_bytes;
        let Some(s) = self.sessions.get_mut(&session.cid).filter(|s| s.serial == session.serial) else { return };
        // A resend of a message already stored (or being stored) is answered, never stored twice, and costs no
        // token. Only an id this user has used is worth hashing the text for, and no text over the limit was ever
        // stored, so a flood of fresh ids or of huge texts never reaches the hash.
        let mut print = None;
        let mut seen = Seen::New;
        if text.len() <= max_text_bytes && self.dedup.knows(s.user_id, client_msg_id) {
            let known = fingerprint(&to, &text);
            print = Some(known);
            seen = self.dedup.check(s.user_id, client_msg_id, known, Waiter { session, origin });
        }
        match seen {
            Seen::Stored { id, sent_at_ms } => {
                tracing::debug!(user = %s.user, client_msg_id, id, ?origin, "resent message answered with its stored id");
                if s.answer_accepted(origin, client_msg_id, (id, sent_at_ms), &to, now).is_err() {
                    self.doomed.push((session.cid, CloseReason::TooSlow));
                }
                Self::mark_dirty(&mut self.dirty, session.cid, s);
                return;
            }
            Seen::Attached => {
                tracing::debug!(user = %s.user, client_msg_id, ?origin, "resent message waits for its first copy");
                return;
            }
            Seen::New | Seen::Refused => {}
        }
        let refusal = if self.shutting_down {
            Some(Refusal::new(ErrorCode::ServerShuttingDown, "the server is shutting down"))
        } else if !self.flood.try_take(&s.user_id, Instant::now()) {
            Some(Refusal::new(
                ErrorCode::FloodLimited,
                "you are sending messages too fast; wait a moment and send again",
            ))
        } else if let Err(error) = validate_text_with_limit(&text, max_text_bytes) {
            Some(match error {
                TextError::TooLong { len, max } => {
                    Refusal::new(ErrorCode::TextTooLong, format!("the text is {len} bytes; at most {max} are allowed"))
                }
                error => Refusal::new(ErrorCode::TextInvalid, error.to_string()),
            })
        } else if seen == Seen::Refused {
            Some(Refusal::new(
                ErrorCode::FloodLimited,
                "a message with this client_msg_id is still being stored; send it again in a moment",
            ))
        } else {
            let print = print.unwrap_or_else(|| fingerprint(&to, &text));
            let request = ChatRequest {
                session,
                origin,
                client_msg_id,
                from: s.user_id,
                from_name: s.user.clone(),
                to: to.clone(),
                text,
            };
            match self.writer.as_ref().map(|w| w.try_send(WriteRequest::Append(request))) {
                Some(Ok(())) => {
                    self.dedup.submitted(s.user_id, client_msg_id, print);
                    None
                }
                Some(Err(mpsc::error::TrySendError::Full(_))) => Some(Refusal::new(
                    ErrorCode::FloodLimited,
                    "the server is busy storing messages; wait a moment and send again",
                )),
                Some(Err(mpsc::error::TrySendError::Closed(_))) | None => {
                    Some(Refusal::new(ErrorCode::ServerShuttingDown, "the server is shutting down"))
                }
            }
        };
        if let Some(refusal) = refusal {
            let describe = || format!("{} from {} over {origin:?}: {}", s.user, s.peer, refusal.message);
            if let Some(report) = self.refused.record(refusal.code, Instant::now(), describe) {
                log_refused(&report);
            }
            if s.answer_rejected(origin, client_msg_id, &to, &refusal, now).is_err() {
                self.doomed.push((session.cid, CloseReason::TooSlow));
            }
            Self::mark_dirty(&mut self.dirty, session.cid, s);
        }
    }

    /// A message left the writer: answer its sender and, if stored, fan it out.
    fn complete(&mut self, outcome: ChatOutcome) {
        let now = self.now();
        let ChatOutcome { session, origin, client_msg_id, from, to, result } = outcome;
        let stored = result.as_ref().ok().map(|c| (c.message.id, c.message.sent_at_ms));
        let print = match &result {
            Ok(c) => fingerprint(&c.message.to, &c.message.text),
            Err(_) => 0,
        };
        // The first copy's session, then every resend that arrived while it was being stored.
        let mut waiters = vec![Waiter { session, origin }];
        waiters.extend(self.dedup.finished(from, client_msg_id, print, stored));
        for waiter in waiters {
            let cid = waiter.session.cid;
            let Some(s) = self.sessions.get_mut(&cid).filter(|s| s.serial == waiter.session.serial) else { continue };
            let answered = match &result {
                Ok(_) => {
                    stored.map_or(Ok(()), |stored| s.answer_accepted(waiter.origin, client_msg_id, stored, &to, now))
                }
                Err(refusal) => {
                    let describe = || format!("{} from {}: {}", s.user, s.peer, refusal.message);
                    if let Some(report) = self.refused.record(refusal.code, Instant::now(), describe) {
                        log_refused(&report);
                    }
                    s.answer_rejected(waiter.origin, client_msg_id, &to, refusal, now)
                }
            };
            if answered.is_err() {
                self.doomed.push((cid, CloseReason::TooSlow));
            }
            Self::mark_dirty(&mut self.dirty, cid, s);
        }
        let Ok(committed) = result else { return };
        self.fan_out(&committed.message, from, committed.recipient, session.cid, now);
    }

    /// Pushes a stored message to everyone who should see it, except the session that sent it.
    fn fan_out(
        &mut self,
        message: &ChatMessage,
        from: UserId,
        recipient: Option<UserId>,
        origin_cid: u64,
        now: Duration,
    ) {
        let udp_bytes = match ChatPayload::Message(message.clone()).encode() {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                tracing::error!(%error, id = message.id, "could not encode a message for datagrams; using TCP");
                None
            }
        };
        let targets: Vec<u64> = match recipient {
            None => self.sessions.keys().copied().filter(|&cid| cid != origin_cid).collect(),
            Some(recipient) => {
                let mut cids: Vec<u64> = [recipient, from]
                    .iter()
                    .filter_map(|user| self.online.get(user))
                    .flat_map(|u| u.sessions.iter().copied())
                    .filter(|&cid| cid != origin_cid)
                    .collect();
                cids.sort_unstable();
                cids.dedup();
                cids
            }
        };
        for cid in targets {
            let Some(s) = self.sessions.get_mut(&cid) else { continue };
            if s.deliver_message(message, udp_bytes.as_deref(), now).is_err() {
                self.doomed.push((cid, CloseReason::TooSlow));
            }
            Self::mark_dirty(&mut self.dirty, cid, s);
        }
    }

    fn route_receipts(&mut self, recipient: &Username, receipts: &[DeliveryReceipt]) {
        let now = self.now();
        for receipt in receipts {
            let Some(user) = self.online.get(&receipt.sender) else { continue };
            for &cid in &user.sessions {
                let Some(s) = self.sessions.get_mut(&cid) else { continue };
                if s.deliver_receipt(receipt.message_id, recipient, now).is_err() {
                    self.doomed.push((cid, CloseReason::TooSlow));
                }
                Self::mark_dirty(&mut self.dirty, cid, s);
            }
        }
    }

    /// One UDP datagram: find its session by connection id and let the endpoint open it. Anything that does not
    /// authenticate is counted and dropped without a word: answering would let anyone make the server send
    /// packets to a forged address.
    fn handle_datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        if bytes.len() > MAX_DATAGRAM_BYTES {
            self.drops.oversized += 1;
            tracing::trace!(%from, len = bytes.len(), "dropped oversized datagram");
            return;
        }
        let header = match Header::parse(bytes) {
            Ok(header) => header,
            Err(error) => {
                self.drops.bad_header += 1;
                tracing::trace!(%from, %error, "dropped datagram with a bad header");
                return;
            }
        };
        let now = self.now();
        let Some(session) = self.sessions.get_mut(&header.connection_id) else {
            self.drops.unknown_connection += 1;
            tracing::trace!(%from, "dropped datagram for an unknown connection id");
            return;
        };
        match session.endpoint.receive(bytes, now) {
            Ok(received) => {
                match session.on_authenticated_datagram(from, received, bytes.len()) {
                    PathEvent::Moved { previous, challenge } => {
                        tracing::debug!(user = %session.user, %from, ?previous, challenge, "client's UDP address moved");
                    }
                    PathEvent::Ignored => {
                        tracing::trace!(%from, "an older packet number from another address does not move the path");
                    }
                    PathEvent::Same => {}
                }
                Self::mark_dirty(&mut self.dirty, header.connection_id, session);
            }
            Err(error) => {
                self.drops.failed_to_open += 1;
                tracing::trace!(%from, %error, "dropped datagram that did not open");
            }
        }
    }

    fn handle_timers(&mut self) {
        let now = self.now();
        for (at, cid, serial) in self.timers.pop_due(now) {
            let Some(s) = self.sessions.get_mut(&cid) else { continue };
            if s.serial != serial || s.timer_at != Some(at) {
                continue;
            }
            s.timer_at = None;
            s.endpoint.handle_timeout(now);
            Self::mark_dirty(&mut self.dirty, cid, s);
        }
    }

    /// Services every session touched in this round, and ends the sessions that turned out too slow.
    fn service_dirty(&mut self) {
        loop {
            if let Some(cid) = self.dirty.pop() {
                self.service(cid);
            } else if let Some((cid, reason)) = self.doomed.pop() {
                self.end_session(cid, EndCause::Closed(reason));
            } else {
                break;
            }
        }
        if self.heap_trim.should_trim(self.sessions.len(), Instant::now()) {
            heap_trim::trim_in_background();
        }
        if self.timers.needs_rebuild(self.sessions.len()) {
            let live = self.sessions.iter().filter_map(|(&cid, s)| s.timer_at.map(|at| (at, cid, s.serial)));
            self.timers.rebuild(live);
        }
    }

    /// Handles a session's engine events, then sends whatever its endpoint has to send and re-arms its timer.
    fn service(&mut self, cid: u64) {
        let now = self.now();
        let Some(s) = self.sessions.get_mut(&cid) else { return };
        s.dirty = false;
        let session = SessionRef { cid, serial: s.serial };
        let mut chats = Vec::new();
        let mut delivered = Vec::new();
        let mut idle = false;
        let mut failed = None;
        while let Some(event) = s.endpoint.poll_event() {
            match event {
                Event::Delivered(delivery) => match ChatPayload::decode(&delivery.data) {
                    Ok(ChatPayload::Send { client_msg_id, to, text }) => chats.push((client_msg_id, to, text)),
                    Ok(_) => tracing::debug!(user = %s.user, "ignored a server-only chat payload from a client"),
                    Err(error) => tracing::debug!(user = %s.user, %error, "ignored an undecodable chat payload"),
                },
                Event::Acked(acked) => delivered.extend(s.take_acked(acked.stream, acked.seq)),
                Event::PeerIdle => idle |= s.push_transport() == Transport::Udp,
                Event::Failed(error) => failed = Some(error),
            }
        }
        if let Some(error) = failed {
            // The engine already gave back what the peer made it hold; the session ends, and the client is told.
            tracing::warn!(user = %s.user, peer = %s.peer, code = error.code(), %error, "datagram protocol violation");
            self.doomed.push((cid, CloseReason::ProtocolViolation));
            return;
        }
        if !delivered.is_empty() {
            let mark =
                WriteRequest::MarkDelivered { recipient: s.user_id, recipient_name: s.user.clone(), ids: delivered };
            if let Some(Err(error)) = self.writer.as_ref().map(|w| w.try_send(mark)) {
                // The messages stay "undelivered" and are confirmed by the recipient's next history sync.
                tracing::warn!(%error, "could not queue delivery marks");
            }
        }
        for (client_msg_id, to, text) in chats {
            self.chat(session, Transport::Udp, client_msg_id, to, text);
        }
        let Some(s) = self.sessions.get_mut(&cid) else { return };
        if idle {
            // The UDP path went silent, but the TCP connection may be fine (a NAT forgot its mapping, a Wi-Fi
            // dropped UDP): keep the session and move its pushes to TCP until a datagram authenticates again.
            tracing::info!(user = %s.user, peer = %s.peer, "no datagram within the UDP idle timeout; pushing over TCP");
            if s.udp_went_quiet().is_err() {
                self.doomed.push((cid, CloseReason::TooSlow));
                return;
            }
        }
        s.fill_window(now);
        // While the client prefers TCP the endpoint only answers (see `session`); what it would send otherwise is
        // dropped here, which the engine treats as loss.
        let may_send = s.may_send_datagrams();
        let mut refused = false;
        for pass in 0..2 {
            if pass == 1 {
                if !refused {
                    break;
                }
                // An unvalidated address refused a datagram larger than its share (data was waiting when the client
                // moved), and the engine's ping rode in that datagram. Ask for a lone ping, small enough to fit, so
                // the challenge still reaches the new address; the refused data comes again once it is validated.
                s.endpoint.ping();
            }
            loop {
                match s.endpoint.poll_datagram(now, &mut self.send_buf) {
                    Ok(true) => {
                        // Before the first datagram authenticates there is no address, and an unvalidated address
                        // gets only its share (see `path`): the packet is dropped and the engine retransmits its
                        // content later, as after any loss.
                        let destination = if may_send { s.udp_destination(self.send_buf.len()) } else { None };
                        if destination.is_none() && may_send && s.udp_addr().is_some() {
                            self.drops.unvalidated_path += 1;
                            refused = true;
                        }
                        if let Some(addr) = destination {
                            if let Err(error) = self.udp.try_send_to(&self.send_buf, addr) {
                                self.drops.send_failed += 1;
                                tracing::trace!(%error, %addr, "datagram not sent");
                            }
                        }
                    }
                    Ok(false) => break,
                    Err(error) => {
                        tracing::warn!(%error, user = %s.user, "could not seal a datagram");
                        break;
                    }
                }
            }
        }
        let wanted = s.endpoint.poll_timeout();
        if wanted != s.timer_at {
            s.timer_at = wanted;
            if let Some(at) = wanted {
                self.timers.schedule(at, cid, s.serial);
            }
        }
    }

    /// After the writer's last commit: every session hears that the server is going away, then the queues close.
    fn finish(&mut self) {
        for session in self.sessions.values_mut() {
            let _ = session.control(ServerMessage::Error {
                req: None,
                code: ErrorCode::ServerShuttingDown,
                message: "the server is shutting down".into(),
            });
        }
        let sessions = self.sessions.len();
        self.sessions.clear();
        self.online.clear();
        self.log_summaries(Instant::now(), true);
        let d = self.drops;
        tracing::info!(
            sessions,
            oversized = d.oversized,
            bad_header = d.bad_header,
            unknown_connection = d.unknown_connection,
            failed_to_open = d.failed_to_open,
            send_failed = d.send_failed,
            unvalidated_path = d.unvalidated_path,
            "hub stopped (datagrams dropped, by reason)"
        );
    }
}

/// The summary line of refused chat messages (see [`crate::log_summary`]).
fn log_refused(report: &Report<ErrorCode>) {
    tracing::info!(
        refused = report.total,
        by_reason = %report,
        first = report.first.as_deref().unwrap_or_default(),
        secs = report.over.as_secs_f64(),
        "chat messages refused"
    );
}

/// The summary line of sessions the server closed, for not reading or another reason of the server's.
fn log_closed(report: &Report<CloseReason>) {
    tracing::warn!(
        closed = report.total,
        by_reason = %report,
        first = report.first.as_deref().unwrap_or_default(),
        secs = report.over.as_secs_f64(),
        "sessions closed by the server"
    );
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<tokio::time::Instant>, b: Option<tokio::time::Instant>) -> Option<tokio::time::Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Sleeps until `wake`, or for ever when there is no deadline.
async fn sleep_until(wake: Option<tokio::time::Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
