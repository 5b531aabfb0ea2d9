//! The hub's handlers, driven directly: inputs in, session queues and writer requests out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chatlab_proto::chat::{ChatMessage, Target, Username};
use chatlab_proto::control::{ErrorCode, ServerMessage, Transport};
use chatlab_proto::datagram::{Header, KeyPhase, PacketType};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::dedup::{Dedup, SeedEntry, fingerprint};
use super::input::{ChatOutcome, CloseReason, Committed, HubInput, KillSwitch, LoginRequest, Refusal, SessionRef};
use super::{Hub, HubConfig};
use crate::limits::{CONTROL_QUEUE_DEPTH, MAX_SESSION_QUEUE_BYTES};
use crate::rate_limit::BucketShape;
use crate::storage::DeliveryReceipt;
use crate::writer::WriteRequest;

fn name(raw: &str) -> Username {
    Username::parse(raw).unwrap()
}

struct Rig {
    hub: Hub,
    writer: mpsc::Receiver<WriteRequest>,
}

async fn rig(writer_depth: usize, flood: BucketShape) -> Rig {
    rig_with_memory(writer_depth, flood, Dedup::new(Instant::now())).await
}

async fn rig_with_memory(writer_depth: usize, flood: BucketShape, dedup: Dedup) -> Rig {
    let udp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let (writer_tx, writer) = mpsc::channel(writer_depth);
    let config = HubConfig {
        flood,
        max_text_bytes: 16,
        engine: HubConfig::engine_for_idle_timeout(Duration::from_secs(30)),
        udp_port: 7878,
    };
    Rig { hub: Hub::new(config, udp, writer_tx, dedup), writer }
}

const GENEROUS: BucketShape = BucketShape { capacity: 1000.0, refill_per_sec: 1000.0 };

struct Member {
    session: SessionRef,
    queue: mpsc::Receiver<ServerMessage>,
    kill: Arc<KillSwitch>,
}

impl Member {
    fn drain(&mut self) -> Vec<ServerMessage> {
        let mut out = Vec::new();
        while let Ok(message) = self.queue.try_recv() {
            out.push(message);
        }
        out
    }
}

fn login(rig: &mut Rig, user: &str, user_id: i64, depth: usize) -> Member {
    let (out, queue) = mpsc::channel(depth);
    let (reply, mut answer) = oneshot::channel();
    let kill = Arc::new(KillSwitch::default());
    rig.hub.handle_input(HubInput::Login(LoginRequest {
        user: name(user),
        user_id,
        peer: "127.0.0.1:1".parse().unwrap(),
        out,
        kill: Arc::clone(&kill),
        reply,
    }));
    rig.hub.service_dirty();
    let session = answer.try_recv().unwrap().unwrap();
    Member { session, queue, kill }
}

/// A fresh client id for every message, as real clients do (equal ids with equal texts are resends).
fn next_client_msg_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn chat(rig: &mut Rig, member: &Member, text: &str) {
    chat_with_id(rig, member, next_client_msg_id(), text);
}

fn chat_with_id(rig: &mut Rig, member: &Member, client_msg_id: u64, text: &str) {
    rig.hub.handle_input(HubInput::Chat {
        session: member.session,
        client_msg_id,
        to: Target::World,
        text: text.into(),
    });
    rig.hub.service_dirty();
}

fn rejected_code(messages: &[ServerMessage]) -> Option<ErrorCode> {
    messages.iter().find_map(|m| match m {
        ServerMessage::ChatRejected { code, .. } => Some(*code),
        _ => None,
    })
}

#[tokio::test]
async fn login_queues_the_grant_first_and_tells_others() {
    let mut rig = rig(8, GENEROUS).await;
    let mut ann = login(&mut rig, "ann", 1, 8);
    let first = ann.drain();
    assert!(matches!(first.as_slice(), [ServerMessage::SessionGrant { udp_port: 7878, max_text_bytes: 16, .. }]));
    let mut bob = login(&mut rig, "bob", 2, 8);
    assert_eq!(ann.drain(), vec![ServerMessage::Presence { user: name("bob"), online: true }]);
    assert!(matches!(bob.drain().as_slice(), [ServerMessage::SessionGrant { .. }]), "no presence about oneself");
    // A second session of bob changes nobody's view.
    let _bob2 = login(&mut rig, "bob", 2, 8);
    assert!(ann.drain().is_empty());
    assert_ne!(bob.session.cid, _bob2.session.cid);
}

#[tokio::test]
async fn chat_goes_to_the_writer_and_bad_text_does_not() {
    let mut rig = rig(8, GENEROUS).await;
    let mut ann = login(&mut rig, "ann", 1, 8);
    ann.drain();
    chat(&mut rig, &ann, "hello");
    let Ok(WriteRequest::Append(request)) = rig.writer.try_recv() else { panic!("nothing queued for the writer") };
    assert_eq!((request.text.as_str(), request.from, request.origin), ("hello", 1, Transport::Tcp));
    chat(&mut rig, &ann, "seventeen bytes!!");
    assert_eq!(rejected_code(&ann.drain()), Some(ErrorCode::TextTooLong));
    chat(&mut rig, &ann, "bell\u{7}");
    assert_eq!(rejected_code(&ann.drain()), Some(ErrorCode::TextInvalid));
    assert!(rig.writer.try_recv().is_err());
}

/// After a crash the hub starts with the memory rebuilt from storage: a resend of a message the previous process
/// committed is answered with its stored id and never reaches the writer; another text under the id does.
#[tokio::test]
async fn duplicate_storage_after_crash_seeded_hub_answers_the_resend() {
    let stored = SeedEntry {
        user: 1,
        client_msg_id: 5,
        fingerprint: fingerprint(&Target::World, "before"),
        id: 40,
        sent_at_ms: 123,
    };
    let mut rig = rig_with_memory(8, GENEROUS, Dedup::seeded([stored], Instant::now())).await;
    let mut ann = login(&mut rig, "ann", 1, 8);
    ann.drain();
    chat_with_id(&mut rig, &ann, 5, "before");
    assert_eq!(ann.drain(), vec![ServerMessage::ChatAccepted { client_msg_id: 5, id: 40, sent_at_ms: 123 }]);
    assert!(rig.writer.try_recv().is_err(), "not stored again");
    chat_with_id(&mut rig, &ann, 5, "after");
    let Ok(WriteRequest::Append(request)) = rig.writer.try_recv() else { panic!("a new text is a new message") };
    assert_eq!((request.client_msg_id, request.text.as_str()), (5, "after"));
}

#[tokio::test]
async fn a_full_writer_queue_refuses_as_busy() {
    let mut rig = rig(1, GENEROUS).await;
    let mut ann = login(&mut rig, "ann", 1, 8);
    ann.drain();
    chat(&mut rig, &ann, "fits");
    chat(&mut rig, &ann, "does not");
    let messages = ann.drain();
    assert_eq!(rejected_code(&messages), Some(ErrorCode::FloodLimited));
    assert!(matches!(&messages[..], [ServerMessage::ChatRejected { message, .. }] if message.contains("busy")));
}

#[tokio::test]
async fn flood_control_reset_by_logout_login_is_prevented() {
    let mut rig = rig(64, BucketShape { capacity: 2.0, refill_per_sec: 0.001 }).await;
    let mut ann = login(&mut rig, "ann", 1, 8);
    for _ in 0..2 {
        chat(&mut rig, &ann, "ok");
    }
    let (reply, _answered) = oneshot::channel();
    rig.hub.handle_input(HubInput::Logout { session: ann.session, reply });
    ann.drain();
    // A new session of the same user, and a second one at the same time: neither brings a fresh burst.
    let mut again = login(&mut rig, "ann", 1, 8);
    let mut twin = login(&mut rig, "ann", 1, 8);
    again.drain();
    twin.drain();
    chat(&mut rig, &again, "refilled?");
    assert_eq!(rejected_code(&again.drain()), Some(ErrorCode::FloodLimited));
    chat(&mut rig, &twin, "or here?");
    assert_eq!(rejected_code(&twin.drain()), Some(ErrorCode::FloodLimited));
}

#[tokio::test]
async fn flood_bucket_is_per_user() {
    let mut rig = rig(64, BucketShape { capacity: 2.0, refill_per_sec: 0.001 }).await;
    let mut ann = login(&mut rig, "ann", 1, 8);
    let mut bob = login(&mut rig, "bob", 2, 8);
    ann.drain();
    bob.drain();
    for _ in 0..2 {
        chat(&mut rig, &ann, "ok");
    }
    chat(&mut rig, &ann, "too many");
    assert_eq!(rejected_code(&ann.drain()), Some(ErrorCode::FloodLimited));
    chat(&mut rig, &bob, "mine");
    assert_eq!(rejected_code(&bob.drain()), None);
}

#[tokio::test]
async fn shutdown_refuses_new_logins_and_chats() {
    let mut rig = rig(8, GENEROUS).await;
    let mut ann = login(&mut rig, "ann", 1, 8);
    ann.drain();
    rig.hub.handle_input(HubInput::Shutdown);
    chat(&mut rig, &ann, "late");
    assert_eq!(rejected_code(&ann.drain()), Some(ErrorCode::ServerShuttingDown));
    let (out, _queue) = mpsc::channel(4);
    let (reply, mut answer) = oneshot::channel();
    rig.hub.handle_input(HubInput::Login(LoginRequest {
        user: name("bob"),
        user_id: 2,
        peer: "127.0.0.1:2".parse().unwrap(),
        out,
        kill: Arc::new(KillSwitch::default()),
        reply,
    }));
    assert_eq!(answer.try_recv().unwrap().unwrap_err().code, ErrorCode::ServerShuttingDown);
    // The writer's queue was let go, so the writer can finish.
    assert!(rig.writer.recv().await.is_none());
    rig.hub.finish();
    assert!(matches!(ann.drain().as_slice(), [ServerMessage::Error { code: ErrorCode::ServerShuttingDown, .. }]));
    assert!(ann.queue.recv().await.is_none(), "the session queue closes");
}

fn committed(session: SessionRef, id: u64, to: Target, recipient: Option<i64>) -> HubInput {
    HubInput::Committed(vec![ChatOutcome {
        session,
        origin: Transport::Tcp,
        client_msg_id: 5,
        from: 1,
        to: to.clone(),
        result: Ok(Committed {
            message: ChatMessage { id, from: name("ann"), to, text: "hi".into(), sent_at_ms: 1 },
            recipient,
        }),
    }])
}

#[tokio::test]
async fn committed_messages_are_accepted_and_fanned_out() {
    let mut rig = rig(8, GENEROUS).await;
    let mut ann = login(&mut rig, "ann", 1, 16);
    let mut ann2 = login(&mut rig, "ann", 1, 16);
    let mut bob = login(&mut rig, "bob", 2, 16);
    let mut cat = login(&mut rig, "cat", 3, 16);
    for m in [&mut ann, &mut ann2, &mut bob, &mut cat] {
        m.drain();
    }
    rig.hub.handle_input(committed(ann.session, 10, Target::World, None));
    rig.hub.service_dirty();
    assert_eq!(ann.drain(), vec![ServerMessage::ChatAccepted { client_msg_id: 5, id: 10, sent_at_ms: 1 }]);
    for other in [&mut ann2, &mut bob, &mut cat] {
        assert!(matches!(other.drain().as_slice(), [ServerMessage::Chat(m)] if m.id == 10));
    }
    // Private: the recipient and the sender's other session, nobody else.
    rig.hub.handle_input(committed(ann.session, 11, Target::User(name("bob")), Some(2)));
    rig.hub.service_dirty();
    assert_eq!(ann.drain().len(), 1);
    assert!(matches!(ann2.drain().as_slice(), [ServerMessage::Chat(m)] if m.id == 11));
    assert!(matches!(bob.drain().as_slice(), [ServerMessage::Chat(m)] if m.id == 11));
    assert!(cat.drain().is_empty());
}

#[tokio::test]
async fn refused_commits_and_receipts_reach_the_right_sessions() {
    let mut rig = rig(8, GENEROUS).await;
    let mut ann = login(&mut rig, "ann", 1, 16);
    let mut bob = login(&mut rig, "bob", 2, 16);
    ann.drain();
    bob.drain();
    rig.hub.handle_input(HubInput::Committed(vec![ChatOutcome {
        session: ann.session,
        origin: Transport::Tcp,
        client_msg_id: 6,
        from: 1,
        to: Target::User(name("ghost")),
        result: Err(Refusal::new(ErrorCode::UnknownUser, "no ghost")),
    }]));
    rig.hub.service_dirty();
    assert_eq!(rejected_code(&ann.drain()), Some(ErrorCode::UnknownUser));
    assert!(bob.drain().is_empty());
    let receipt = DeliveryReceipt { message_id: 12, sender: 1, delivered_at_ms: 2 };
    rig.hub.handle_input(HubInput::Receipts { recipient: name("bob"), receipts: vec![receipt] });
    rig.hub.service_dirty();
    assert_eq!(ann.drain(), vec![ServerMessage::Receipt { id: 12, to: name("bob") }]);
    assert!(bob.drain().is_empty());
}

#[tokio::test]
async fn a_full_session_queue_kills_only_that_session() {
    let mut rig = rig(8, GENEROUS).await;
    let mut ann = login(&mut rig, "ann", 1, 16);
    // Bob's queue holds two messages: the grant and one more.
    let bob = login(&mut rig, "bob", 2, 2);
    ann.drain();
    for id in 20..23 {
        rig.hub.handle_input(committed(ann.session, id, Target::World, None));
        rig.hub.service_dirty();
    }
    assert_eq!(bob.kill.fired().await, CloseReason::TooSlow);
    let seen = ann.drain();
    assert!(seen.contains(&ServerMessage::Presence { user: name("bob"), online: false }), "{seen:?}");
    assert_eq!(seen.iter().filter(|m| matches!(m, ServerMessage::ChatAccepted { .. })).count(), 3);
}

#[tokio::test]
async fn stale_and_foreign_references_are_ignored() {
    let mut rig = rig(8, GENEROUS).await;
    let mut ann = login(&mut rig, "ann", 1, 16);
    let mut bob = login(&mut rig, "bob", 2, 16);
    ann.drain();
    let stale = SessionRef { cid: bob.session.cid, serial: bob.session.serial + 1 };
    rig.hub.handle_input(HubInput::Disconnected { session: stale });
    rig.hub.handle_input(HubInput::ListUsers { session: stale, req: 1 });
    rig.hub.service_dirty();
    assert!(ann.drain().is_empty(), "bob is still online");
    assert_eq!(bob.drain().len(), 1, "only the grant");
    rig.hub.handle_input(HubInput::ListUsers { session: bob.session, req: 4 });
    assert_eq!(bob.drain(), vec![ServerMessage::Users { req: 4, users: vec![name("ann"), name("bob")], more: false }]);
    let (reply, answered) = oneshot::channel();
    rig.hub.handle_input(HubInput::Logout { session: bob.session, reply });
    answered.await.unwrap();
    assert_eq!(bob.drain(), vec![ServerMessage::LoggedOut]);
    assert_eq!(ann.drain(), vec![ServerMessage::Presence { user: name("bob"), online: false }]);
}

#[tokio::test]
async fn datagrams_that_do_not_open_are_counted_not_answered() {
    let mut rig = rig(8, GENEROUS).await;
    let ann = login(&mut rig, "ann", 1, 16);
    let from = "127.0.0.1:9".parse().unwrap();
    rig.hub.handle_datagram(&[0u8; 1500], from);
    rig.hub.handle_datagram(b"short", from);
    let header =
        |cid| Header { packet_type: PacketType::Data, key_phase: KeyPhase::Zero, connection_id: cid, packet_number: 1 };
    let mut unknown = header(ann.session.cid ^ 1).to_bytes().to_vec();
    unknown.extend_from_slice(&[0u8; 32]);
    rig.hub.handle_datagram(&unknown, from);
    let mut forged = header(ann.session.cid).to_bytes().to_vec();
    forged.extend_from_slice(&[0u8; 32]);
    rig.hub.handle_datagram(&forged, from);
    let d = rig.hub.drops;
    assert_eq!((d.oversized, d.bad_header, d.unknown_connection, d.failed_to_open), (1, 1, 1, 1));
    let session = rig.hub.sessions.get(&ann.session.cid).unwrap();
    assert_eq!(session.udp_addr(), None, "a datagram that did not open changes nothing");
}

#[test]
fn engine_keepalive_stays_below_the_idle_timeout() {
    let long = HubConfig::engine_for_idle_timeout(Duration::from_secs(30));
    assert_eq!((long.idle_timeout, long.keepalive), (Duration::from_secs(30), Duration::from_secs(10)));
    long.validate().unwrap();
    let short = HubConfig::engine_for_idle_timeout(Duration::from_millis(600));
    assert_eq!(short.keepalive, Duration::from_millis(200));
    short.validate().unwrap();
}

#[tokio::test]
async fn duplicate_storage_on_resend_is_prevented_in_flight_and_after_commit() {
    let mut rig = rig(8, GENEROUS).await;
    let mut ann = login(&mut rig, "ann", 1, 16);
    let mut ann2 = login(&mut rig, "ann", 1, 16);
    let mut bob = login(&mut rig, "bob", 2, 16);
    for m in [&mut ann, &mut ann2, &mut bob] {
        m.drain();
    }
    // The first copy goes to the writer; a resend from the user's other connection before the commit waits for it.
    chat_with_id(&mut rig, &ann, 77, "once");
    chat_with_id(&mut rig, &ann2, 77, "once");
    let Ok(WriteRequest::Append(request)) = rig.writer.try_recv() else { panic!("the first copy is stored") };
    assert!(rig.writer.try_recv().is_err(), "the resend is not stored again");
    assert!(ann2.drain().is_empty(), "no answer before the commit");
    let message = ChatMessage { id: 30, from: name("ann"), to: Target::World, text: request.text, sent_at_ms: 9 };
    rig.hub.handle_input(HubInput::Committed(vec![ChatOutcome {
        session: ann.session,
        origin: Transport::Tcp,
        client_msg_id: 77,
        from: 1,
        to: Target::World,
        result: Ok(Committed { message, recipient: None }),
    }]));
    rig.hub.service_dirty();
    let accepted = ServerMessage::ChatAccepted { client_msg_id: 77, id: 30, sent_at_ms: 9 };
    assert_eq!(ann.drain(), vec![accepted.clone()]);
    let seen = ann2.drain();
    assert!(seen.contains(&accepted), "{seen:?}");
    assert_eq!(bob.drain().iter().filter(|m| matches!(m, ServerMessage::Chat(m) if m.id == 30)).count(), 1);
    // A resend after the commit is answered at once with the stored id, and nobody gets the message again.
    chat_with_id(&mut rig, &ann, 77, "once");
    assert_eq!(ann.drain(), vec![accepted]);
    assert!(rig.writer.try_recv().is_err() && bob.drain().is_empty());
    // The same id with another text is a new message (a client that reuses ids loses nothing).
    chat_with_id(&mut rig, &ann, 77, "another");
    assert!(matches!(rig.writer.try_recv(), Ok(WriteRequest::Append(r)) if r.text == "another"));
}

#[tokio::test]
async fn logged_out_dropped_when_the_control_queue_is_full_closes_the_connection() {
    let mut rig = rig(8, GENEROUS).await;
    let mut ann = login(&mut rig, "ann", 1, 16);
    // Bob's queue holds one message, the grant, which he never reads: `LoggedOut` cannot be queued.
    let bob = login(&mut rig, "bob", 2, 1);
    ann.drain();
    let (reply, answered) = oneshot::channel();
    rig.hub.handle_input(HubInput::Logout { session: bob.session, reply });
    answered.await.unwrap();
    assert_eq!(bob.kill.fired().await, CloseReason::TooSlow);
    assert!(!rig.hub.sessions.contains_key(&bob.session.cid), "the session is gone all the same");
    assert_eq!(ann.drain(), vec![ServerMessage::Presence { user: name("bob"), online: false }]);
}

/// The bug: invalid messages were checked before the flood bucket was charged, so a client sending them in a loop
/// was refused for ever without ever running dry, and every refusal cost a text check and a log line.
#[tokio::test]
async fn invalid_chat_messages_in_a_loop_are_charged_to_the_flood_bucket() {
    let mut rig = rig(64, BucketShape { capacity: 3.0, refill_per_sec: 0.001 }).await;
    let mut ann = login(&mut rig, "ann", 1, 64);
    ann.drain();
    chat(&mut rig, &ann, "bell\u{7}");
    assert_eq!(rejected_code(&ann.drain()), Some(ErrorCode::TextInvalid));
    chat(&mut rig, &ann, "seventeen bytes!!");
    assert_eq!(rejected_code(&ann.drain()), Some(ErrorCode::TextTooLong));
    chat(&mut rig, &ann, "");
    assert_eq!(rejected_code(&ann.drain()), Some(ErrorCode::TextInvalid));
    // Three invalid messages took the burst: the next one, valid or not, is refused before its text is looked at.
    chat(&mut rig, &ann, "valid");
    assert_eq!(rejected_code(&ann.drain()), Some(ErrorCode::FloodLimited));
    chat(&mut rig, &ann, "bell\u{7}");
    assert_eq!(rejected_code(&ann.drain()), Some(ErrorCode::FloodLimited));
    assert!(rig.writer.try_recv().is_err(), "nothing was stored");
}

/// A resend is not a new message: answering it must not cost a token, or a client resending after a reconnect with
/// an empty bucket would be told "too fast" about a message the server has.
#[tokio::test]
async fn a_resend_of_a_stored_message_costs_no_token() {
    let stored = SeedEntry {
        user: 1,
        client_msg_id: 5,
        fingerprint: fingerprint(&Target::World, "kept"),
        id: 40,
        sent_at_ms: 1,
    };
    let flood = BucketShape { capacity: 1.0, refill_per_sec: 0.001 };
    let mut rig = rig_with_memory(8, flood, Dedup::seeded([stored], Instant::now())).await;
    let mut ann = login(&mut rig, "ann", 1, 8);
    ann.drain();
    chat(&mut rig, &ann, "one token");
    assert!(rig.writer.try_recv().is_ok());
    chat_with_id(&mut rig, &ann, 5, "kept");
    assert_eq!(ann.drain(), vec![ServerMessage::ChatAccepted { client_msg_id: 5, id: 40, sent_at_ms: 1 }]);
    // The same id with another text is a new message, and pays.
    chat_with_id(&mut rig, &ann, 5, "changed");
    assert_eq!(rejected_code(&ann.drain()), Some(ErrorCode::FloodLimited));
}

fn committed_text(session: SessionRef, id: u64, text: &str) -> HubInput {
    HubInput::Committed(vec![ChatOutcome {
        session,
        origin: Transport::Tcp,
        client_msg_id: id,
        from: 1,
        to: Target::World,
        result: Ok(Committed {
            message: ChatMessage { id, from: name("ann"), to: Target::World, text: text.into(), sent_at_ms: 1 },
            recipient: None,
        }),
    }])
}

/// The bug: session queues were bounded by message count (4 096), so a logged-in client that never read while
/// others filled the world room with long messages pinned about 18 MB. Now the hub holds at most
/// `MAX_SESSION_QUEUE_BYTES` for it, closes it when that is full, and everyone else keeps getting every message.
#[tokio::test]
async fn a_client_that_never_reads_is_closed_before_its_queue_outgrows_the_byte_budget() {
    let mut rig = rig(8, GENEROUS).await;
    let mut ann = login(&mut rig, "ann", 1, CONTROL_QUEUE_DEPTH);
    let bob = login(&mut rig, "bob", 2, CONTROL_QUEUE_DEPTH);
    let mut cat = login(&mut rig, "cat", 3, CONTROL_QUEUE_DEPTH);
    ann.drain();
    cat.drain();
    let long = "x".repeat(4000);
    let mut sent = 0;
    while rig.hub.sessions.contains_key(&bob.session.cid) {
        sent += 1;
        assert!(sent < CONTROL_QUEUE_DEPTH as u64, "bob was never closed");
        rig.hub.handle_input(committed_text(ann.session, sent, &long));
        rig.hub.service_dirty();
        if let Some(s) = rig.hub.sessions.get_mut(&bob.session.cid) {
            assert!(s.queued_bytes() <= MAX_SESSION_QUEUE_BYTES, "{} bytes held for bob", s.queued_bytes());
        }
        let seen = cat.drain();
        assert!(seen.iter().any(|m| matches!(m, ServerMessage::Chat(c) if c.id == sent)), "cat missed {sent}");
        ann.drain();
    }
    assert_eq!(bob.kill.fired().await, CloseReason::TooSlow);
    // About 4 KiB each: the budget, not the 4 096 slots of the queue, ended it.
    let expected =
        (MAX_SESSION_QUEUE_BYTES / (long.len() + 512)) as u64..=(MAX_SESSION_QUEUE_BYTES / long.len()) as u64 + 1;
    assert!(expected.contains(&sent), "closed after {sent} messages, expected {expected:?}");
    rig.hub.handle_input(committed_text(ann.session, sent + 1, "after"));
    rig.hub.service_dirty();
    assert!(matches!(cat.drain().as_slice(), [ServerMessage::Chat(c)] if c.id == sent + 1));
}

/// A client endpoint for `member`'s session, made from its grant; the tests hand its datagrams to the hub as if
/// they came from one address or another.
struct Roamer {
    endpoint: chatlab_proto::endpoint::Endpoint,
    clock: Duration,
    wire: Vec<u8>,
}

impl Roamer {
    fn for_member(member: &mut Member) -> Self {
        let grant = member.drain().into_iter().find_map(|m| match m {
            ServerMessage::SessionGrant { connection_id, key_material, .. } => Some((connection_id, key_material)),
            _ => None,
        });
        let (cid, key) = grant.expect("the grant is queued at login");
        let endpoint = chatlab_proto::endpoint::Endpoint::new(
            key.expose(),
            cid,
            chatlab_proto::datagram::Role::Client,
            chatlab_proto::engine::EngineConfig::default(),
            Duration::ZERO,
        )
        .unwrap();
        Self { endpoint, clock: Duration::ZERO, wire: Vec::new() }
    }

    /// The next datagram the client sends: a ping, or whatever is due (an ack) once a second has passed.
    fn next_datagram(&mut self) -> Vec<u8> {
        self.clock += Duration::from_secs(1);
        if !self.endpoint.poll_datagram(self.clock, &mut self.wire).unwrap() {
            self.endpoint.ping();
            assert!(self.endpoint.poll_datagram(self.clock, &mut self.wire).unwrap());
        }
        self.wire.clone()
    }

    /// Reads the hub's next datagram on `socket` into the client's endpoint.
    async fn receive_on(&mut self, socket: &UdpSocket) {
        let mut buf = [0u8; 2048];
        let (len, _) = tokio::time::timeout(Duration::from_secs(10), socket.recv_from(&mut buf))
            .await
            .expect("the hub sends to this address")
            .unwrap();
        self.endpoint.handle_datagram(&buf[..len], self.clock).unwrap();
    }
}

/// Waits until the hub's socket is known to be writable: a fresh tokio socket refuses `try_send_to` until the
/// reactor has seen it ready, and these tests drive the hub without its run loop.
async fn hub_socket_ready(rig: &Rig) {
    rig.hub.udp.writable().await.unwrap();
}

async fn local_socket() -> (UdpSocket, std::net::SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

#[tokio::test]
async fn a_delayed_datagram_from_an_old_address_does_not_move_the_session() {
    let mut rig = rig(8, GENEROUS).await;
    let mut ann = login(&mut rig, "ann", 1, 16);
    let mut client = Roamer::for_member(&mut ann);
    let ((_old, old), (_new, new)) = (local_socket().await, local_socket().await);
    let sent: Vec<Vec<u8>> = (0..3).map(|_| client.next_datagram()).collect();
    rig.hub.handle_datagram(&sent[0], old);
    rig.hub.handle_datagram(&sent[2], new);
    // Packet 1 left the old socket before packet 2 left the new one, but arrives last: authentic, new to the
    // replay window, and read, but it speaks for where the client was.
    rig.hub.handle_datagram(&sent[1], old);
    rig.hub.service_dirty();
    let session = rig.hub.sessions.get(&ann.session.cid).unwrap();
    assert_eq!(session.udp_addr(), Some(new));
    assert_eq!(session.endpoint.stats().received.packets, 3, "the delayed datagram was still read");
}

#[tokio::test]
async fn a_new_address_is_limited_until_it_acknowledges_the_challenge_sent_to_it() {
    let mut rig = rig(8, GENEROUS).await;
    let mut ann = login(&mut rig, "ann", 1, 16);
    let mut client = Roamer::for_member(&mut ann);
    let ((old_socket, old), (new_socket, new)) = (local_socket().await, local_socket().await);
    let cid = ann.session.cid;
    let validated = |rig: &Rig| rig.hub.sessions.get(&cid).unwrap().udp_addr_validated();

    // The first address is challenged too: the login over TCP says nothing about which UDP address is the client's.
    hub_socket_ready(&rig).await;
    let first = client.next_datagram();
    rig.hub.handle_datagram(&first, old);
    rig.hub.service_dirty();
    assert!(!validated(&rig));
    client.receive_on(&old_socket).await;
    let answer = client.next_datagram();
    rig.hub.handle_datagram(&answer, old);
    assert!(validated(&rig), "the acknowledged challenge validates the first address");

    // The client moves: its next datagram, the highest so far, comes from a new socket. A long push for ann is
    // waiting in the same round: its datagram is far more than three times the client's small one.
    let bob = login(&mut rig, "bob", 2, 16);
    let moved = client.next_datagram();
    rig.hub.handle_datagram(&moved, new);
    rig.hub.handle_input(committed_text(bob.session, 20, &"x".repeat(600)));
    rig.hub.service_dirty();
    assert_eq!(rig.hub.sessions.get(&cid).unwrap().udp_addr(), Some(new));
    assert!(!validated(&rig), "the new address has not yet proved that it receives");
    assert!(rig.hub.drops.unvalidated_path > 0, "the long push did not fit the new address's share");
    // The challenge still reaches the new address, in a lone ping.
    client.receive_on(&new_socket).await;
    let answer = client.next_datagram();
    rig.hub.handle_datagram(&answer, new);
    assert!(validated(&rig), "the challenge sent to the new address was acknowledged from it");
}

#[tokio::test]
async fn a_copied_datagram_from_an_attackers_address_gets_a_challenge_and_little_traffic() {
    let mut rig = rig(8, GENEROUS).await;
    let mut ann = login(&mut rig, "ann", 1, 16);
    let mut client = Roamer::for_member(&mut ann);
    let ((real_socket, real), (_attacker_socket, attacker)) = (local_socket().await, local_socket().await);
    let cid = ann.session.cid;
    hub_socket_ready(&rig).await;
    let first = client.next_datagram();
    rig.hub.handle_datagram(&first, real);
    rig.hub.service_dirty();
    client.receive_on(&real_socket).await;
    let answer = client.next_datagram();
    rig.hub.handle_datagram(&answer, real);
    assert!(rig.hub.sessions.get(&cid).unwrap().udp_addr_validated());

    // The attacker races a copy of the client's next datagram ahead of the original.
    let next = client.next_datagram();
    rig.hub.handle_datagram(&next, attacker);
    rig.hub.handle_datagram(&next, real);
    assert_eq!(rig.hub.sessions.get(&cid).unwrap().udp_addr(), Some(attacker), "the copy arrived first");
    // A push for ann now is more than three times the attacker's one small datagram: it is not sent there.
    let bob = login(&mut rig, "bob", 2, 16);
    rig.hub.handle_input(committed_text(bob.session, 20, &"x".repeat(300)));
    rig.hub.service_dirty();
    assert!(rig.hub.drops.unvalidated_path > 0, "the unvalidated address got only its share");
    // The real client carries on from its own address, with a higher packet number: the path moves back to the
    // address it validated before, with no new challenge.
    let later = client.next_datagram();
    rig.hub.handle_datagram(&later, real);
    let session = rig.hub.sessions.get(&cid).unwrap();
    assert_eq!((session.udp_addr(), session.udp_addr_validated()), (Some(real), true));
}
