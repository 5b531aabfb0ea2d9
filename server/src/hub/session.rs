//! One session as the hub sees it: a logged-in client with its control queue, its datagram endpoint and its
//! transport choice.
//!
//! ## Two ways to reach a client
//!
//! Every session has a **control queue** (TCP, through the connection task) and an **endpoint** (UDP, sealed by
//! the session's keys). Which one carries its *pushes* — messages from others, receipts — is decided here
//! ([`Session::push_transport`]): UDP once a datagram from the client has authenticated and the client has not
//! asked for TCP; TCP before that, and whenever the client asks for it (`UseTransport`). Answers to the client's
//! own chat messages always go back on the transport the message came on.
//!
//! The UDP address is learned, never announced: it is the source of the datagram with the highest packet number
//! that *authenticated* under this session's key. A forged packet cannot redirect the session, nor can a delayed
//! one, and a new address gets little traffic until it proves that it receives (see [`super::path`]); a client
//! that changes networks (a laptop leaving Wi-Fi for a phone hotspot) keeps chatting, as QUIC and WireGuard allow.
//!
//! ## Switching to TCP loses nothing
//!
//! When the client asks for TCP (`UseTransport{Tcp}`), usually because UDP stopped working, some pushes may still
//! be owed over UDP: parked in the backlog, or sent but not yet acknowledged by the client's engine. Each of them
//! is pushed again over TCP at once ([`Session::use_transport`]); the client recognises a message it already has by
//! its id. The endpoint itself is kept — its packet numbers and keys carry on, so a later `UseTransport{Udp}`
//! simply continues — but while the client prefers TCP the hub only *answers* on it: it sends datagrams in a round
//! where a datagram from the client authenticated or an answer to a UDP message was queued, and stays silent
//! otherwise ([`Session::may_send_datagrams`]), so the engine's retransmissions and keepalives stop hammering a
//! path the client gave up on.
//!
//! ## Receipts
//!
//! A private message pushed over UDP counts as delivered when the recipient's *engine* acknowledges it: the
//! acknowledgement is sent by the client's engine after the message was decrypted and stored in its receive
//! buffer, so the client really has it. A copy pushed again over TCP after a switch is confirmed by the client's
//! `Received` instead, whichever comes first; storage marks a message delivered only once, so there is only ever
//! one receipt.
//!
//! ## Back-pressure
//!
//! Neither path may grow without bound. Everything the hub holds for the session — the control queue, the backlog
//! of pushes waiting for room in the engine's send window, and the datagram messages sent but not yet
//! acknowledged — is charged in bytes against one budget of [`MAX_SESSION_QUEUE_BYTES`] ([`super::outbox`]). A
//! client that lets it fill up is not reading: the hub disconnects it ([`TooSlow`]) rather than buffer for it at
//! everyone else's expense.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use chatlab_proto::chat::{ChatMessage, ChatPayload, StreamMap, Target, Username};
use chatlab_proto::control::{ServerMessage, Transport};
use chatlab_proto::endpoint::{Endpoint, Received};
use chatlab_proto::engine::SendError;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::input::{CloseReason, KillSwitch, Refusal};
use super::outbox::{
    ControlQueue, MAX_SESSION_QUEUE_BYTES, QueueFull, chat_message_charge, control_charge, datagram_charge,
};
use super::path::{PathEvent, UdpPath};
use crate::storage::{MessageId, UserId};

/// Capacity of an empty backlog or in-flight table kept after a burst; beyond it the memory is given back, so an
/// idle session costs what an idle session needs.
const KEEP_EMPTY_CAPACITY: usize = 16;

/// A session's queue is full: the client does not keep up and must be disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooSlow;

/// A push that can be made again over TCP if UDP is abandoned before the client acknowledged it.
#[derive(Debug, Clone, PartialEq)]
enum Repush {
    Message(ChatMessage),
    Receipt { id: MessageId, to: Username },
}

impl Repush {
    /// The bytes this copy pins.
    fn charge(&self) -> usize {
        match self {
            Repush::Message(message) => chat_message_charge(message),
            Repush::Receipt { to, .. } => std::mem::size_of::<Repush>() + to.as_str().len(),
        }
    }

    fn into_control(self) -> ServerMessage {
        match self {
            Repush::Message(message) => ServerMessage::Chat(message),
            Repush::Receipt { id, to } => ServerMessage::Receipt { id, to },
        }
    }
}

/// A message waiting for room in the send window.
#[derive(Debug)]
struct Queued {
    stream: u32,
    bytes: Vec<u8>,
    receipt_for: Option<MessageId>,
    repush: Option<Repush>,
    /// Bytes charged for it against the session's budget.
    charge: usize,
}

/// A datagram message in the engine's send window, not yet acknowledged by the client.
#[derive(Debug)]
struct InFlight {
    /// Bytes charged for it against the session's budget, until the acknowledgement.
    charge: usize,
    /// The private message whose delivery the acknowledgement confirms.
    receipt_for: Option<MessageId>,
    /// The push to make again over TCP if UDP is abandoned before the acknowledgement.
    repush: Option<Repush>,
}

/// The hub's state of one session.
#[derive(Debug)]
pub struct Session {
    /// Never reused; see [`super::input::SessionRef`].
    pub serial: u64,
    /// The user's storage id.
    pub user_id: UserId,
    /// The user's name.
    pub user: Username,
    /// The TCP peer, for log lines.
    pub peer: SocketAddr,
    /// The deadline this session's entry in the timer heap stands for, if any.
    pub timer_at: Option<Duration>,
    /// Whether the session is already on the hub's list of sessions to service.
    pub dirty: bool,
    /// The datagram endpoint (engine plus keys).
    pub endpoint: Endpoint,
    out: ControlQueue,
    kill: Arc<KillSwitch>,
    path: UdpPath,
    udp_confirmed: bool,
    preferred: Transport,
    streams: StreamMap,
    /// Datagram messages sent and not yet acknowledged, by (stream, seq). Bounded by the send window.
    in_flight: HashMap<(u32, u64), InFlight>,
    in_flight_bytes: usize,
    backlog: VecDeque<Queued>,
    backlog_bytes: usize,
    /// Bytes the hub may hold for this session: [`MAX_SESSION_QUEUE_BYTES`] outside tests.
    budget: usize,
    /// Whether something happened this round that the endpoint should answer even while pushes use TCP.
    udp_news: bool,
}

/// What a new session starts from.
#[derive(Debug)]
pub struct NewSession {
    /// See [`Session::serial`].
    pub serial: u64,
    /// The user's id.
    pub user_id: UserId,
    /// The user's name.
    pub user: Username,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The control queue.
    pub out: mpsc::Sender<ServerMessage>,
    /// The connection's kill switch.
    pub kill: Arc<KillSwitch>,
    /// The endpoint made from the session grant.
    pub endpoint: Endpoint,
}

impl NewSession {
    /// Everything but the endpoint and the budget, for [`Session::new`].
    #[cfg(test)]
    fn for_test(out: mpsc::Sender<ServerMessage>, kill: Arc<KillSwitch>, endpoint: Endpoint) -> Self {
        Self {
            serial: 1,
            user_id: 2,
            user: Username::parse("bob").unwrap(),
            peer: ([127, 0, 0, 1], 1).into(),
            out,
            kill,
            endpoint,
        }
    }
}

impl Session {
    /// A session on TCP, waiting for its first datagram, that may hold [`MAX_SESSION_QUEUE_BYTES`].
    pub fn new(new: NewSession) -> Self {
        Self::with_budget(new, MAX_SESSION_QUEUE_BYTES)
    }

    /// A session that may hold `budget` bytes on their way out.
    fn with_budget(new: NewSession, budget: usize) -> Self {
        Self {
            serial: new.serial,
            user_id: new.user_id,
            user: new.user,
            peer: new.peer,
            timer_at: None,
            dirty: false,
            endpoint: new.endpoint,
            out: ControlQueue::new(new.out),
            kill: new.kill,
            path: UdpPath::default(),
            udp_confirmed: false,
            preferred: Transport::Udp,
            streams: StreamMap::new(),
            in_flight: HashMap::new(),
            in_flight_bytes: 0,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            budget,
            udp_news: false,
        }
    }

    /// Bytes the hub holds for this session now: control queue, backlog and unacknowledged datagram messages.
    pub fn queued_bytes(&mut self) -> usize {
        self.out.bytes().saturating_add(self.backlog_bytes).saturating_add(self.in_flight_bytes)
    }

    /// [`TooSlow`] if `charge` more bytes would take the session over its budget.
    fn make_room(&mut self, charge: usize) -> Result<(), TooSlow> {
        if self.queued_bytes().saturating_add(charge) > self.budget { Err(TooSlow) } else { Ok(()) }
    }

    /// The transport this session's pushes take now.
    pub fn push_transport(&self) -> Transport {
        if self.preferred == Transport::Udp && self.udp_confirmed && self.path.current().is_some() {
            Transport::Udp
        } else {
            Transport::Tcp
        }
    }

    /// The address datagrams go to, once one has authenticated, validated or not.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.path.current()
    }

    /// Whether the address datagrams go to has proved that it receives them.
    #[cfg(test)]
    pub fn udp_addr_validated(&self) -> bool {
        self.path.is_validated()
    }

    /// Where to send a sealed datagram of `len` bytes; `None` before the first datagram authenticated or while an
    /// unvalidated address has had its share (see [`UdpPath::destination`]).
    pub fn udp_destination(&mut self, len: usize) -> Option<SocketAddr> {
        self.path.destination(len)
    }

    /// Records the source of a datagram of `len` bytes that authenticated and that the endpoint reported as
    /// `received`. A move to an address not validated before sends it a ping: the challenge of [`super::path`].
    pub fn on_authenticated_datagram(&mut self, from: SocketAddr, received: Received, len: usize) -> PathEvent {
        self.udp_confirmed = true;
        self.udp_news = true;
        let (next, acked) = (self.endpoint.next_packet_number(), self.endpoint.largest_acked());
        let event = self.path.on_datagram(from, received, len, next, acked);
        if let PathEvent::Moved { challenge: true, .. } = event {
            self.endpoint.ping();
        }
        event
    }

    /// The client's `UseTransport`. Switching to UDP waits for a fresh authenticated datagram, because the address
    /// last seen may be stale (the client switched away from UDP for a reason). Switching to TCP pushes again,
    /// over TCP, everything still owed over UDP; [`TooSlow`] if the control queue cannot take it.
    pub fn use_transport(&mut self, transport: Transport) -> Result<(), TooSlow> {
        self.preferred = transport;
        match transport {
            Transport::Udp => {
                self.udp_confirmed = false;
                Ok(())
            }
            Transport::Tcp => self.repush_over_tcp(),
        }
    }

    /// The engine heard nothing from the client for the idle timeout: pushes move to TCP (with everything still
    /// owed over UDP) until a datagram authenticates again. The client's preference is kept, so its next datagram
    /// brings the pushes back to UDP by itself.
    pub fn udp_went_quiet(&mut self) -> Result<(), TooSlow> {
        self.udp_confirmed = false;
        self.repush_over_tcp()
    }

    /// Moves every push still owed over UDP to the control queue: first those in the send window (oldest first
    /// per conversation), then those in the backlog. Answers to the client's UDP messages stay on UDP: they
    /// follow the transport their message came on, and the client resends an unanswered message anyway.
    fn repush_over_tcp(&mut self) -> Result<(), TooSlow> {
        // The messages stay in flight (the engine still wants their acknowledgement, which may still confirm a
        // delivery); only the copies leave, and their bytes with them.
        let mut in_flight: Vec<((u32, u64), Repush)> = Vec::new();
        for (key, entry) in &mut self.in_flight {
            if let Some(push) = entry.repush.take() {
                let kept = push.charge();
                entry.charge = entry.charge.saturating_sub(kept);
                self.in_flight_bytes = self.in_flight_bytes.saturating_sub(kept);
                in_flight.push((*key, push));
            }
        }
        in_flight.sort_by_key(|(key, _)| *key);
        let mut owed: Vec<Repush> = in_flight.into_iter().map(|(_, push)| push).collect();
        let mut answers = VecDeque::new();
        for queued in self.backlog.drain(..) {
            match queued.repush {
                Some(push) => {
                    self.backlog_bytes = self.backlog_bytes.saturating_sub(queued.charge);
                    owed.push(push);
                }
                None => answers.push_back(queued),
            }
        }
        self.backlog = answers;
        if !owed.is_empty() {
            tracing::debug!(user = %self.user, pushes = owed.len(), "pushes owed over UDP moved to TCP");
        }
        owed.into_iter().try_for_each(|push| self.control(push.into_control()))
    }

    /// Whether the endpoint may send datagrams this round: always while pushes use UDP; while they use TCP only to
    /// answer something from this round (a datagram from the client, an answer to a UDP message). Clears the
    /// round's news.
    pub fn may_send_datagrams(&mut self) -> bool {
        let news = std::mem::take(&mut self.udp_news);
        news || self.push_transport() == Transport::Udp
    }

    /// Queues a control message; [`TooSlow`] when it does not fit the session's budget or the queue is full. A
    /// closed queue (the connection just ended) is not an error: its `Disconnected` is on the way.
    pub fn control(&mut self, message: ServerMessage) -> Result<(), TooSlow> {
        let charge = control_charge(&message);
        self.make_room(charge)?;
        self.out.send(message, charge).map_err(|QueueFull| TooSlow)
    }

    /// Fires the kill switch: the connection closes at once.
    pub fn kill(&mut self, reason: CloseReason) {
        self.kill.fire(reason);
    }

    /// Sends `payload` as a reliable datagram message in `conversation`'s stream, or parks it in the backlog while
    /// the send window is full.
    fn datagram(
        &mut self,
        conversation: &Target,
        bytes: Vec<u8>,
        receipt_for: Option<MessageId>,
        repush: Option<Repush>,
        now: Duration,
    ) -> Result<(), TooSlow> {
        let charge = datagram_charge(&bytes, repush.as_ref().map_or(0, Repush::charge));
        self.make_room(charge)?;
        let stream = self.streams.stream_for(conversation);
        self.udp_news = true;
        let queued = Queued { stream, bytes, receipt_for, repush, charge };
        if !self.backlog.is_empty() || !self.endpoint.engine().can_send() {
            self.backlog_bytes = self.backlog_bytes.saturating_add(charge);
            self.backlog.push_back(queued);
            return Ok(());
        }
        self.send_now(queued, now)
    }

    /// Hands a message to the engine, whose window has room; its charge moves to the messages in flight.
    fn send_now(&mut self, queued: Queued, now: Duration) -> Result<(), TooSlow> {
        let Queued { stream, bytes, receipt_for, repush, charge } = queued;
        match self.endpoint.send(stream, bytes, now) {
            Ok(seq) => {
                self.in_flight.insert((stream, seq), InFlight { charge, receipt_for, repush });
                self.in_flight_bytes = self.in_flight_bytes.saturating_add(charge);
                Ok(())
            }
            // A failed engine is ended by the hub when it sees `Event::Failed`; until then nothing more is sent.
            Err(SendError::WindowFull { .. } | SendError::Closed(_)) => Err(TooSlow),
            Err(error @ SendError::TooLarge { .. }) => {
                // Cannot happen with the protocol's text limit; refuse loudly rather than loop.
                tracing::error!(%error, user = %self.user, "datagram message too large; dropped");
                Ok(())
            }
        }
    }

    /// Moves parked messages into the send window as acknowledgements make room.
    pub fn fill_window(&mut self, now: Duration) {
        while self.endpoint.engine().can_send() {
            let Some(queued) = self.backlog.pop_front() else { break };
            self.backlog_bytes = self.backlog_bytes.saturating_sub(queued.charge);
            if self.send_now(queued, now).is_err() {
                break;
            }
        }
        if self.backlog.is_empty() && self.backlog.capacity() > KEEP_EMPTY_CAPACITY {
            self.backlog = VecDeque::new();
        }
    }

    /// The client acknowledged `(stream, seq)`: its bytes are given back, and the message id whose delivery the
    /// acknowledgement confirms is returned, if it was one.
    pub fn take_acked(&mut self, stream: u32, seq: u64) -> Option<MessageId> {
        let acked = self.in_flight.remove(&(stream, seq))?;
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(acked.charge);
        if self.in_flight.is_empty() && self.in_flight.capacity() > KEEP_EMPTY_CAPACITY {
            self.in_flight = HashMap::new();
        }
        acked.receipt_for
    }

    /// Pushes someone's chat message to this session. `udp_bytes` is the encoded `ChatPayload::Message`, shared by
    /// every recipient; `None` if it could not be encoded (then TCP is used).
    pub fn deliver_message(
        &mut self,
        message: &ChatMessage,
        udp_bytes: Option<&[u8]>,
        now: Duration,
    ) -> Result<(), TooSlow> {
        match (self.push_transport(), udp_bytes) {
            (Transport::Udp, Some(bytes)) => {
                // Only the recipient's own acknowledgement makes a private message "delivered".
                let receipt_for = (message.to == Target::User(self.user.clone())).then_some(message.id);
                let conversation = message.conversation(&self.user);
                let repush = Some(Repush::Message(message.clone()));
                self.datagram(&conversation, bytes.to_vec(), receipt_for, repush, now)
            }
            _ => self.control(ServerMessage::Chat(message.clone())),
        }
    }

    /// Tells this session that message `id` reached `to`.
    pub fn deliver_receipt(&mut self, id: MessageId, to: &Username, now: Duration) -> Result<(), TooSlow> {
        match self.push_transport() {
            Transport::Udp => match (ChatPayload::Receipt { id, to: to.clone() }).encode() {
                Ok(bytes) => {
                    let repush = Some(Repush::Receipt { id, to: to.clone() });
                    self.datagram(&Target::User(to.clone()), bytes, None, repush, now)
                }
                Err(error) => {
                    tracing::error!(%error, "could not encode a receipt");
                    Ok(())
                }
            },
            Transport::Tcp => self.control(ServerMessage::Receipt { id, to: to.clone() }),
        }
    }

    /// Answers the client's chat message to `conversation`: stored under `id` at `sent_at_ms`.
    pub fn answer_accepted(
        &mut self,
        origin: Transport,
        client_msg_id: u64,
        (id, sent_at_ms): (MessageId, i64),
        conversation: &Target,
        now: Duration,
    ) -> Result<(), TooSlow> {
        match origin {
            Transport::Udp => match (ChatPayload::Accepted { client_msg_id, id, sent_at_ms }).encode() {
                Ok(bytes) => self.datagram(conversation, bytes, None, None, now),
                Err(error) => {
                    tracing::error!(%error, "could not encode an acceptance");
                    Ok(())
                }
            },
            Transport::Tcp => self.control(ServerMessage::ChatAccepted { client_msg_id, id, sent_at_ms }),
        }
    }

    /// Answers the client's chat message: refused.
    pub fn answer_rejected(
        &mut self,
        origin: Transport,
        client_msg_id: u64,
        to: &Target,
        refusal: &Refusal,
        now: Duration,
    ) -> Result<(), TooSlow> {
        let (code, message) = (refusal.code, refusal.message.clone());
        match origin {
            Transport::Udp => match (ChatPayload::Rejected { client_msg_id, code, message }).encode() {
                Ok(bytes) => self.datagram(to, bytes, None, None, now),
                Err(error) => {
                    tracing::error!(%error, "could not encode a rejection");
                    Ok(())
                }
            },
            Transport::Tcp => self.control(ServerMessage::ChatRejected { client_msg_id, code, message }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_proto::control::ErrorCode;
    use chatlab_proto::datagram::Role;
    use chatlab_proto::engine::{EngineConfig, Event};

    use crate::limits::PER_MESSAGE_OVERHEAD_BYTES;

    const SECRET: [u8; 32] = [3; 32];

    /// A 50-byte datagram from `from` carrying the highest packet number so far.
    fn arrive(s: &mut Session, from: SocketAddr) -> PathEvent {
        let packet_number = s.endpoint.engine().stats().received.packets;
        s.on_authenticated_datagram(from, Received { packet_number, highest: true }, 50)
    }

    fn name(raw: &str) -> Username {
        Username::parse(raw).unwrap()
    }

    fn session(window: usize, depth: usize) -> (Session, mpsc::Receiver<ServerMessage>, Arc<KillSwitch>) {
        session_with_budget(window, depth, MAX_SESSION_QUEUE_BYTES)
    }

    fn session_with_budget(
        window: usize,
        depth: usize,
        budget: usize,
    ) -> (Session, mpsc::Receiver<ServerMessage>, Arc<KillSwitch>) {
        let (out, rx) = mpsc::channel(depth);
        let kill = Arc::new(KillSwitch::default());
        let kill_rx = Arc::clone(&kill);
        let config = EngineConfig { send_window: window, ..EngineConfig::default() };
        let endpoint = Endpoint::new(&SECRET, 9, Role::Server, config, Duration::ZERO).unwrap();
        (Session::with_budget(NewSession::for_test(out, kill, endpoint), budget), rx, kill_rx)
    }

    /// Entries in flight that still keep a copy to push again over TCP.
    fn copies_in_flight(s: &Session) -> usize {
        s.in_flight.values().filter(|entry| entry.repush.is_some()).count()
    }

    /// Entries in flight whose acknowledgement confirms a delivery.
    fn receipts_in_flight(s: &Session) -> usize {
        s.in_flight.values().filter(|entry| entry.receipt_for.is_some()).count()
    }

    fn msg(id: u64, from: &str, to: Target) -> ChatMessage {
        ChatMessage { id, from: name(from), to, text: "hi".into(), sent_at_ms: 5 }
    }

    #[test]
    fn transport_follows_authenticated_datagrams_and_the_clients_choice() {
        let (mut s, _rx, _kill) = session(8, 8);
        assert_eq!(s.push_transport(), Transport::Tcp);
        let a = SocketAddr::from(([127, 0, 0, 1], 1000));
        let b = SocketAddr::from(([127, 0, 0, 1], 2000));
        assert_eq!(arrive(&mut s, a), PathEvent::Moved { previous: None, challenge: true });
        assert_eq!(arrive(&mut s, a), PathEvent::Same);
        assert_eq!(s.push_transport(), Transport::Udp);
        s.use_transport(Transport::Tcp).unwrap();
        assert_eq!(s.push_transport(), Transport::Tcp);
        s.use_transport(Transport::Udp).unwrap();
        assert_eq!(s.push_transport(), Transport::Tcp, "waits for a fresh datagram");
        assert_eq!(arrive(&mut s, b), PathEvent::Moved { previous: Some(a), challenge: true });
        assert_eq!((s.push_transport(), s.udp_addr()), (Transport::Udp, Some(b)));
    }

    #[test]
    fn tcp_pushes_go_to_the_control_queue_until_it_is_full() {
        let (mut s, mut rx, _kill) = session(8, 2);
        let m = msg(1, "ann", Target::World);
        assert_eq!(s.deliver_message(&m, None, Duration::ZERO), Ok(()));
        assert_eq!(s.deliver_receipt(1, &name("ann"), Duration::ZERO), Ok(()));
        assert_eq!(s.deliver_message(&m, None, Duration::ZERO), Err(TooSlow));
        assert_eq!(rx.try_recv().unwrap(), ServerMessage::Chat(m));
        assert_eq!(rx.try_recv().unwrap(), ServerMessage::Receipt { id: 1, to: name("ann") });
        drop(rx);
        assert_eq!(s.control(ServerMessage::LoggedOut), Ok(()), "a closed queue is not the client's fault");
    }

    #[test]
    fn answers_use_the_origin_transport() {
        let (mut s, mut rx, _kill) = session(8, 8);
        let m = msg(4, "bob", Target::World);
        s.answer_accepted(Transport::Tcp, 7, (m.id, m.sent_at_ms), &m.to, Duration::ZERO).unwrap();
        let refusal = Refusal::new(ErrorCode::FloodLimited, "slow down");
        s.answer_rejected(Transport::Tcp, 8, &Target::World, &refusal, Duration::ZERO).unwrap();
        assert_eq!(rx.try_recv().unwrap(), ServerMessage::ChatAccepted { client_msg_id: 7, id: 4, sent_at_ms: 5 });
        assert!(matches!(rx.try_recv().unwrap(), ServerMessage::ChatRejected { client_msg_id: 8, .. }));
        // Over UDP the answers enter the engine even while pushes still go over TCP.
        s.answer_accepted(Transport::Udp, 9, (m.id, m.sent_at_ms), &m.to, Duration::ZERO).unwrap();
        s.answer_rejected(Transport::Udp, 10, &Target::World, &refusal, Duration::ZERO).unwrap();
        assert_eq!(s.endpoint.engine().in_flight(), 2);
        assert!(rx.try_recv().is_err());
    }

    /// Drives a client endpoint against the session's endpoint until both are quiet.
    fn exchange(s: &mut Session, client: &mut Endpoint, now: Duration) -> Vec<ChatPayload> {
        let mut wire = Vec::new();
        let mut delivered = Vec::new();
        for _ in 0..50 {
            let mut moved = false;
            while s.endpoint.poll_datagram(now, &mut wire).unwrap() {
                client.handle_datagram(&wire, now).unwrap();
                moved = true;
            }
            while client.poll_datagram(now, &mut wire).unwrap() {
                s.endpoint.handle_datagram(&wire, now).unwrap();
                moved = true;
            }
            while let Some(event) = client.poll_event() {
                if let Event::Delivered(d) = event {
                    delivered.push(ChatPayload::decode(&d.data).unwrap());
                }
            }
            if !moved {
                break;
            }
        }
        delivered
    }

    #[test]
    fn udp_pushes_wait_in_the_backlog_and_private_ones_await_receipts() {
        let (mut s, _rx, _kill) = session(1, 8);
        arrive(&mut s, SocketAddr::from(([127, 0, 0, 1], 1000)));
        let t = Duration::ZERO;
        let private = msg(11, "ann", Target::User(name("bob")));
        let bytes = ChatPayload::Message(private.clone()).encode().unwrap();
        s.deliver_message(&private, Some(&bytes), t).unwrap();
        let world = msg(12, "ann", Target::World);
        let world_bytes = ChatPayload::Message(world.clone()).encode().unwrap();
        s.deliver_message(&world, Some(&world_bytes), t).unwrap();
        assert_eq!(s.backlog.len(), 1, "window of one: the second message waits");
        assert_eq!(receipts_in_flight(&s), 1);

        let mut client = Endpoint::new(&SECRET, 9, Role::Client, EngineConfig::default(), t).unwrap();
        let first = exchange(&mut s, &mut client, t);
        assert_eq!(first, vec![ChatPayload::Message(private)]);
        let mut acked = Vec::new();
        while let Some(event) = s.endpoint.poll_event() {
            if let Event::Acked(a) = event {
                acked.push(s.take_acked(a.stream, a.seq));
            }
        }
        assert_eq!(acked, vec![Some(11)]);
        s.fill_window(t);
        assert!(s.backlog.is_empty());
        assert_eq!(exchange(&mut s, &mut client, t), vec![ChatPayload::Message(world)]);
    }

    /// The running byte counts equal the sum of what they count.
    fn assert_accounts_add_up(s: &Session) {
        assert_eq!(s.in_flight_bytes, s.in_flight.values().map(|entry| entry.charge).sum::<usize>());
        assert_eq!(s.backlog_bytes, s.backlog.iter().map(|queued| queued.charge).sum::<usize>());
    }

    fn long_message(id: u64) -> ChatMessage {
        ChatMessage { id, from: name("ann"), to: Target::World, text: "x".repeat(4000), sent_at_ms: 5 }
    }

    /// The bug: the backlog was bounded by 4 096 *messages*, so a client that acknowledged nothing pinned 4 096
    /// messages of up to 4 KiB each (twice: the encoded bytes and the copy for TCP), about 32 MB.
    #[test]
    fn a_udp_reader_that_acknowledges_nothing_is_too_slow_within_its_byte_budget() {
        const BUDGET: usize = 64 * 1024;
        let (mut s, _rx, _kill) = session_with_budget(4, 8, BUDGET);
        arrive(&mut s, SocketAddr::from(([127, 0, 0, 1], 1000)));
        let mut accepted = 0;
        loop {
            let m = long_message(accepted + 1);
            let bytes = ChatPayload::Message(m.clone()).encode().unwrap();
            let outcome = s.deliver_message(&m, Some(&bytes), Duration::ZERO);
            assert!(s.queued_bytes() <= BUDGET, "{} bytes held", s.queued_bytes());
            assert_accounts_add_up(&s);
            if outcome == Err(TooSlow) {
                break;
            }
            accepted += 1;
            assert!(accepted < 100, "never too slow");
        }
        // Each message pins its encoded bytes and a copy of its text: about 8 KiB, so 7 of them fit in 64 KiB.
        assert_eq!(accepted, 7);
        assert_eq!((s.in_flight.len(), s.backlog.len()), (4, 3), "the window's four, then the backlog");
    }

    #[test]
    fn a_tcp_reader_that_does_not_read_is_too_slow_within_its_byte_budget() {
        const BUDGET: usize = 64 * 1024;
        let (mut s, mut rx, _kill) = session_with_budget(4, 4096, BUDGET);
        let mut accepted = 0;
        while s.deliver_message(&long_message(accepted + 1), None, Duration::ZERO).is_ok() {
            assert!(s.queued_bytes() <= BUDGET);
            accepted += 1;
        }
        assert_eq!(accepted, 15, "4 KiB each, far fewer than the queue's 4 096 slots");
        // Once the connection task takes a message, there is room for one more.
        rx.try_recv().unwrap();
        assert_eq!(s.deliver_message(&long_message(99), None, Duration::ZERO), Ok(()));
        assert_eq!(s.deliver_message(&long_message(100), None, Duration::ZERO), Err(TooSlow));
    }

    #[test]
    fn acknowledgements_give_the_bytes_back() {
        let (mut s, _rx, _kill) = session(2, 8);
        arrive(&mut s, SocketAddr::from(([127, 0, 0, 1], 1000)));
        let t = Duration::ZERO;
        for id in 1..=5 {
            let m = msg(id, "ann", Target::User(name("bob")));
            let bytes = ChatPayload::Message(m.clone()).encode().unwrap();
            s.deliver_message(&m, Some(&bytes), t).unwrap();
        }
        assert!(s.queued_bytes() > 5 * PER_MESSAGE_OVERHEAD_BYTES);
        let mut client = Endpoint::new(&SECRET, 9, Role::Client, EngineConfig::default(), t).unwrap();
        let mut delivered = Vec::new();
        for _ in 0..10 {
            exchange(&mut s, &mut client, t);
            while let Some(event) = s.endpoint.poll_event() {
                if let Event::Acked(a) = event {
                    delivered.extend(s.take_acked(a.stream, a.seq));
                }
            }
            s.fill_window(t);
            assert_accounts_add_up(&s);
        }
        assert_eq!(delivered, vec![1, 2, 3, 4, 5]);
        assert_eq!(s.queued_bytes(), 0, "everything acknowledged, nothing held");
    }

    #[test]
    fn messages_stranded_in_the_udp_engine_are_pushed_again_over_tcp() {
        let (mut s, mut rx, _kill) = session(1, 16);
        arrive(&mut s, SocketAddr::from(([127, 0, 0, 1], 1000)));
        let t = Duration::ZERO;
        let private = msg(11, "ann", Target::User(name("bob")));
        let world = msg(12, "ann", Target::World);
        for m in [&private, &world] {
            let bytes = ChatPayload::Message(m.clone()).encode().unwrap();
            s.deliver_message(m, Some(&bytes), t).unwrap();
        }
        s.deliver_receipt(3, &name("ann"), t).unwrap();
        let answer = msg(13, "bob", Target::World);
        s.answer_accepted(Transport::Udp, 99, (answer.id, answer.sent_at_ms), &answer.to, t).unwrap();
        assert_eq!((copies_in_flight(&s), s.backlog.len()), (1, 3), "window of one: one in flight, three parked");
        assert!(s.may_send_datagrams());
        assert!(rx.try_recv().is_err(), "nothing on TCP yet");

        s.use_transport(Transport::Tcp).unwrap();
        assert_accounts_add_up(&s);
        let moved: Vec<ServerMessage> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(
            moved,
            vec![
                ServerMessage::Chat(private),
                ServerMessage::Chat(world),
                ServerMessage::Receipt { id: 3, to: name("ann") }
            ]
        );
        assert_eq!(copies_in_flight(&s), 0);
        assert_eq!(s.backlog.len(), 1, "the answer to a UDP message stays on UDP");
        assert_eq!(receipts_in_flight(&s), 1, "an acknowledgement of the UDP copy still counts as delivery");
        // While pushes use TCP, the endpoint only answers: silent unless something new happened this round.
        assert!(!s.may_send_datagrams());
        arrive(&mut s, SocketAddr::from(([127, 0, 0, 1], 1000)));
        assert!(s.may_send_datagrams() && !s.may_send_datagrams());
    }

    #[test]
    fn udp_idle_moves_pushes_to_tcp_until_a_datagram_returns() {
        let (mut s, mut rx, _kill) = session(8, 8);
        let addr = SocketAddr::from(([127, 0, 0, 1], 1000));
        arrive(&mut s, addr);
        let m = msg(1, "ann", Target::World);
        let bytes = ChatPayload::Message(m.clone()).encode().unwrap();
        s.deliver_message(&m, Some(&bytes), Duration::ZERO).unwrap();
        s.udp_went_quiet().unwrap();
        assert_eq!(s.push_transport(), Transport::Tcp);
        assert_eq!(rx.try_recv().unwrap(), ServerMessage::Chat(m), "the unacknowledged push moved to TCP");
        arrive(&mut s, addr);
        assert_eq!(s.push_transport(), Transport::Udp, "the client's preference was kept");
    }

    #[test]
    fn repushing_into_a_full_control_queue_is_too_slow() {
        let (mut s, _rx, _kill) = session(1, 1);
        arrive(&mut s, SocketAddr::from(([127, 0, 0, 1], 1000)));
        for id in 1..=2 {
            let m = msg(id, "ann", Target::World);
            let bytes = ChatPayload::Message(m.clone()).encode().unwrap();
            s.deliver_message(&m, Some(&bytes), Duration::ZERO).unwrap();
        }
        assert_eq!(s.use_transport(Transport::Tcp), Err(TooSlow));
    }

    #[tokio::test]
    async fn kill_fires_the_first_reason() {
        let (mut s, _rx, kill) = session(1, 1);
        s.kill(CloseReason::TooSlow);
        assert_eq!(kill.fired().await, CloseReason::TooSlow);
    }
}
