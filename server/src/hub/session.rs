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
//! The UDP address is learned, never announced: it is the source of the most recent datagram that *authenticated*
//! under this session's key. A forged packet cannot redirect the session, but a client that changes networks (a
//! laptop leaving Wi-Fi for a phone hotspot) keeps chatting, as QUIC and WireGuard allow.
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
//! Neither path may grow without bound. The control queue holds [`CONTROL_QUEUE_DEPTH`] messages; the engine's
//! send window refuses new messages while too many wait for acknowledgement, and the few that arrive meanwhile wait
//! in a backlog of at most [`UDP_BACKLOG_DEPTH`]. A client that lets either fill up is not reading: the hub
//! disconnects it ([`TooSlow`]) rather than buffer for it at everyone else's expense.
//!
//! [`CONTROL_QUEUE_DEPTH`]: crate::limits::CONTROL_QUEUE_DEPTH

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use chatlab_proto::chat::{ChatMessage, ChatPayload, StreamMap, Target, Username};
use chatlab_proto::control::{ServerMessage, Transport};
use chatlab_proto::endpoint::Endpoint;
use chatlab_proto::engine::SendError;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::input::{CloseReason, KillSwitch, Refusal};
use crate::limits::UDP_BACKLOG_DEPTH;
use crate::storage::{MessageId, UserId};

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
    out: mpsc::Sender<ServerMessage>,
    kill: Arc<KillSwitch>,
    udp_addr: Option<SocketAddr>,
    udp_confirmed: bool,
    preferred: Transport,
    streams: StreamMap,
    /// Private messages pushed over UDP to their recipient, by (stream, seq): the engine's acknowledgement of one
    /// is the delivery receipt. Bounded by the send window plus the backlog.
    awaiting_ack: HashMap<(u32, u64), MessageId>,
    /// Pushes sent over UDP and not yet acknowledged, by (stream, seq), to push again over TCP on a switch.
    /// Bounded by the send window.
    unacked: HashMap<(u32, u64), Repush>,
    backlog: VecDeque<Queued>,
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

impl Session {
    /// A session on TCP, waiting for its first datagram.
    pub fn new(new: NewSession) -> Self {
        Self {
            serial: new.serial,
            user_id: new.user_id,
            user: new.user,
            peer: new.peer,
            timer_at: None,
            dirty: false,
            endpoint: new.endpoint,
            out: new.out,
            kill: new.kill,
            udp_addr: None,
            udp_confirmed: false,
            preferred: Transport::Udp,
            streams: StreamMap::new(),
            awaiting_ack: HashMap::new(),
            unacked: HashMap::new(),
            backlog: VecDeque::new(),
            udp_news: false,
        }
    }

    /// The transport this session's pushes take now.
    pub fn push_transport(&self) -> Transport {
        if self.preferred == Transport::Udp && self.udp_confirmed && self.udp_addr.is_some() {
            Transport::Udp
        } else {
            Transport::Tcp
        }
    }

    /// The address datagrams go to, once one has authenticated.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// Records the source of a datagram that authenticated. Returns the previous address when it changed.
    pub fn on_authenticated_datagram(&mut self, from: SocketAddr) -> Option<Option<SocketAddr>> {
        self.udp_confirmed = true;
        self.udp_news = true;
        if self.udp_addr == Some(from) {
            return None;
        }
        Some(self.udp_addr.replace(from))
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
        let mut in_flight: Vec<((u32, u64), Repush)> = self.unacked.drain().collect();
        in_flight.sort_by_key(|(key, _)| *key);
        let mut owed: Vec<Repush> = in_flight.into_iter().map(|(_, push)| push).collect();
        let mut answers = VecDeque::new();
        for queued in self.backlog.drain(..) {
            match queued.repush {
                Some(push) => owed.push(push),
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

    /// Queues a control message; [`TooSlow`] when the queue is full. A closed queue (the connection just ended) is
    /// not an error: its `Disconnected` is on the way.
    pub fn control(&mut self, message: ServerMessage) -> Result<(), TooSlow> {
        match self.out.try_send(message) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(TooSlow),
        }
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
        let stream = self.streams.stream_for(conversation);
        self.udp_news = true;
        let queued = Queued { stream, bytes, receipt_for, repush };
        if !self.backlog.is_empty() || !self.endpoint.engine().can_send() {
            if self.backlog.len() >= UDP_BACKLOG_DEPTH {
                return Err(TooSlow);
            }
            self.backlog.push_back(queued);
            return Ok(());
        }
        self.send_now(queued, now)
    }

    fn send_now(&mut self, queued: Queued, now: Duration) -> Result<(), TooSlow> {
        match self.endpoint.send(queued.stream, queued.bytes, now) {
            Ok(seq) => {
                if let Some(id) = queued.receipt_for {
                    self.awaiting_ack.insert((queued.stream, seq), id);
                }
                if let Some(push) = queued.repush {
                    self.unacked.insert((queued.stream, seq), push);
                }
                Ok(())
            }
            Err(SendError::WindowFull { .. }) => Err(TooSlow),
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
            if self.send_now(queued, now).is_err() {
                break;
            }
        }
    }

    /// The message id whose delivery the acknowledgement of `(stream, seq)` confirms, if it was one.
    pub fn take_acked(&mut self, stream: u32, seq: u64) -> Option<MessageId> {
        self.unacked.remove(&(stream, seq));
        self.awaiting_ack.remove(&(stream, seq))
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

    const SECRET: [u8; 32] = [3; 32];

    fn name(raw: &str) -> Username {
        Username::parse(raw).unwrap()
    }

    fn session(window: usize, depth: usize) -> (Session, mpsc::Receiver<ServerMessage>, Arc<KillSwitch>) {
        let (out, rx) = mpsc::channel(depth);
        let kill = Arc::new(KillSwitch::default());
        let kill_rx = Arc::clone(&kill);
        let config = EngineConfig { send_window: window, ..EngineConfig::default() };
        let endpoint = Endpoint::new(&SECRET, 9, Role::Server, config, Duration::ZERO).unwrap();
        let new = NewSession {
            serial: 1,
            user_id: 2,
            user: name("bob"),
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            out,
            kill,
            endpoint,
        };
        (Session::new(new), rx, kill_rx)
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
        assert_eq!(s.on_authenticated_datagram(a), Some(None));
        assert_eq!(s.on_authenticated_datagram(a), None);
        assert_eq!(s.push_transport(), Transport::Udp);
        s.use_transport(Transport::Tcp).unwrap();
        assert_eq!(s.push_transport(), Transport::Tcp);
        s.use_transport(Transport::Udp).unwrap();
        assert_eq!(s.push_transport(), Transport::Tcp, "waits for a fresh datagram");
        assert_eq!(s.on_authenticated_datagram(b), Some(Some(a)));
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
        s.on_authenticated_datagram(SocketAddr::from(([127, 0, 0, 1], 1000)));
        let t = Duration::ZERO;
        let private = msg(11, "ann", Target::User(name("bob")));
        let bytes = ChatPayload::Message(private.clone()).encode().unwrap();
        s.deliver_message(&private, Some(&bytes), t).unwrap();
        let world = msg(12, "ann", Target::World);
        let world_bytes = ChatPayload::Message(world.clone()).encode().unwrap();
        s.deliver_message(&world, Some(&world_bytes), t).unwrap();
        assert_eq!(s.backlog.len(), 1, "window of one: the second message waits");
        assert_eq!(s.awaiting_ack.len(), 1);

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

    #[test]
    fn a_full_backlog_means_too_slow() {
        let (mut s, _rx, _kill) = session(1, 8);
        s.on_authenticated_datagram(SocketAddr::from(([127, 0, 0, 1], 1000)));
        let m = msg(1, "ann", Target::World);
        let bytes = ChatPayload::Message(m.clone()).encode().unwrap();
        for _ in 0..=UDP_BACKLOG_DEPTH {
            s.deliver_message(&m, Some(&bytes), Duration::ZERO).unwrap();
        }
        assert_eq!(s.deliver_message(&m, Some(&bytes), Duration::ZERO), Err(TooSlow));
    }

    #[test]
    fn messages_stranded_in_the_udp_engine_are_pushed_again_over_tcp() {
        let (mut s, mut rx, _kill) = session(1, 16);
        s.on_authenticated_datagram(SocketAddr::from(([127, 0, 0, 1], 1000)));
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
        assert_eq!((s.unacked.len(), s.backlog.len()), (1, 3), "window of one: one in flight, three parked");
        assert!(s.may_send_datagrams());
        assert!(rx.try_recv().is_err(), "nothing on TCP yet");

        s.use_transport(Transport::Tcp).unwrap();
        let moved: Vec<ServerMessage> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(
            moved,
            vec![
                ServerMessage::Chat(private),
                ServerMessage::Chat(world),
                ServerMessage::Receipt { id: 3, to: name("ann") }
            ]
        );
        assert!(s.unacked.is_empty());
        assert_eq!(s.backlog.len(), 1, "the answer to a UDP message stays on UDP");
        assert_eq!(s.awaiting_ack.len(), 1, "an acknowledgement of the UDP copy still counts as delivery");
        // While pushes use TCP, the endpoint only answers: silent unless something new happened this round.
        assert!(!s.may_send_datagrams());
        s.on_authenticated_datagram(SocketAddr::from(([127, 0, 0, 1], 1000)));
        assert!(s.may_send_datagrams() && !s.may_send_datagrams());
    }

    #[test]
    fn udp_idle_moves_pushes_to_tcp_until_a_datagram_returns() {
        let (mut s, mut rx, _kill) = session(8, 8);
        let addr = SocketAddr::from(([127, 0, 0, 1], 1000));
        s.on_authenticated_datagram(addr);
        let m = msg(1, "ann", Target::World);
        let bytes = ChatPayload::Message(m.clone()).encode().unwrap();
        s.deliver_message(&m, Some(&bytes), Duration::ZERO).unwrap();
        s.udp_went_quiet().unwrap();
        assert_eq!(s.push_transport(), Transport::Tcp);
        assert_eq!(rx.try_recv().unwrap(), ServerMessage::Chat(m), "the unacknowledged push moved to TCP");
        s.on_authenticated_datagram(addr);
        assert_eq!(s.push_transport(), Transport::Udp, "the client's preference was kept");
    }

    #[test]
    fn repushing_into_a_full_control_queue_is_too_slow() {
        let (mut s, _rx, _kill) = session(1, 1);
        s.on_authenticated_datagram(SocketAddr::from(([127, 0, 0, 1], 1000)));
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
