//! Authenticated datagrams crafted to hurt the server: the fragment bomb that once took a server from 46 MB to
//! 3 GB with 93 KiB of traffic, and its variants. The attacker holds a real session (it logged in, so its datagrams
//! authenticate); the server must live, stay under a memory ceiling, end only the attacker's session with a reason,
//! and keep everyone else's chat working.

use std::time::Duration;

use chatlab_proto::chat::Target;
use chatlab_proto::control::{ErrorCode, ServerMessage};
use chatlab_proto::datagram::{KeyUpdateConfig, PacketType, Role, Sealer, SessionKeys};
use chatlab_proto::engine::frame::Frame;
use tokio::net::UdpSocket;

use crate::support::{Client, Grant, TestServer, name};

/// Heap the server may grow by while it is attacked: the test process also runs the clients, and a few sessions'
/// receive budgets (1 MiB each) must fit. The bug grew it by gigabytes.
const MEMORY_CEILING_BYTES: u64 = 96 << 20;

/// Datagrams of the attack: the number that took a server to 3 GB before the fix.
const BOMB_DATAGRAMS: u64 = 2_000;

/// A client that seals whatever frames it likes under its session's keys.
struct Attacker {
    socket: UdpSocket,
    sealer: Sealer,
    server: std::net::SocketAddr,
    next_pn: u64,
}

impl Attacker {
    async fn new(server: std::net::SocketAddr, grant: &Grant) -> Self {
        let keys = SessionKeys::derive(grant.key_material.expose(), Role::Client);
        let (sealer, _opener) = keys.into_endpoints(grant.connection_id, KeyUpdateConfig::default());
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Self { socket, sealer, server: std::net::SocketAddr::new(server.ip(), grant.udp_port), next_pn: 0 }
    }

    async fn send(&mut self, frames: &[Frame<'_>]) {
        let mut payload = Vec::new();
        for frame in frames {
            frame.encode(&mut payload);
        }
        let mut datagram = Vec::new();
        self.sealer.seal(PacketType::Data, self.next_pn, &payload, &mut datagram).unwrap();
        self.next_pn += 1;
        self.socket.send_to(&datagram, self.server).await.unwrap();
    }
}

/// The resident memory of this process (the server runs inside it), where the OS says.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Ann sends a world message over UDP and Bob, on TCP, receives it: the server still works for others.
async fn others_still_chat(ann: &mut Client, bob: &mut Client, text: &str) {
    let mut udp = ann.udp().await;
    udp.establish().await;
    let sent = udp.send_chat(Target::World, text);
    let id = udp.outcome(sent).await.expect("ann's message is stored");
    bob.expect(|m| matches!(m, ServerMessage::Chat(c) if c.id == id).then_some(())).await;
}

/// Waits until `watched` went offline as `observer` sees it.
async fn goes_offline(observer: &mut Client, watched: &str) {
    let watched = name(watched);
    observer
        .expect(|m| matches!(m, ServerMessage::Presence { user, online: false } if *user == watched).then_some(()))
        .await;
}

/// The bug: each datagram's one fragment announced 65 535 fragments under a fresh message id, and the server
/// allocated 1.5 MiB of slots for each before any data arrived; 2 000 datagrams took it to 3 GB (on a smaller
/// machine, "memory allocation failed" and the server died). Now the first such datagram ends the attacker's
/// session with `ProtocolViolation`, and nothing was allocated for it.
#[tokio::test]
async fn fragment_bomb_ends_only_the_attackers_session_and_the_server_stays_small() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let mut mallory = Client::user(server.addr, "mallory").await;
    let grant = mallory.grant.clone().expect("logged in");
    let before = resident_bytes();

    let mut attacker = Attacker::new(server.addr, &grant).await;
    for seq in 1..=BOMB_DATAGRAMS {
        attacker.send(&[Frame::Fragment { stream: 0, seq, index: 0, count: u16::MAX, data: b"x" }]).await;
    }

    let message = mallory.expect_error(ErrorCode::ProtocolViolation).await;
    assert!(!message.is_empty());
    assert!(mallory.closed_by_server().await, "the attacker's connection is closed");
    goes_offline(&mut bob, "mallory").await;
    others_still_chat(&mut ann, &mut bob, "still here").await;
    if let (Some(before), Some(after)) = (before, resident_bytes()) {
        let grown = after.saturating_sub(before);
        assert!(grown < MEMORY_CEILING_BYTES, "the server grew by {grown} bytes under the attack");
    }
    server.stop().await;
}

/// The same attack inside the legal fragment count (128 pieces of the largest message, only the first sent, a fresh
/// message id each time): nothing an honest sender could not do for a moment, so the session is not ended at once;
/// the server keeps at most half of the session's receive budget, drops the rest unacknowledged, and its memory and
/// others' chat do not notice.
#[tokio::test]
async fn fragment_bomb_within_the_legal_count_is_held_to_the_sessions_budget() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let mallory = Client::user(server.addr, "mallory").await;
    let grant = mallory.grant.clone().expect("logged in");
    let before = resident_bytes();

    let mut attacker = Attacker::new(server.addr, &grant).await;
    let piece = [7u8; 1000];
    for seq in 1..=BOMB_DATAGRAMS * 5 {
        attacker.send(&[Frame::Fragment { stream: 0, seq, index: 0, count: 128, data: &piece }]).await;
        if seq % 500 == 0 {
            // Let the server keep up, as a real network would.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    others_still_chat(&mut ann, &mut bob, "not affected").await;
    if let (Some(before), Some(after)) = (before, resident_bytes()) {
        let grown = after.saturating_sub(before);
        assert!(grown < MEMORY_CEILING_BYTES, "the server grew by {grown} bytes under the attack");
    }
    drop(mallory);
    server.stop().await;
}

/// Conversations opened one after another, each with a whole message: every one leaves a record the receiver keeps
/// for the connection's life (to recognise late duplicates), so past the records' share of the budget the session
/// ends with a reason.
#[tokio::test]
async fn endless_new_conversations_end_the_attackers_session() {
    let server = TestServer::start().await;
    let mut bob = Client::user(server.addr, "bob").await;
    let mut mallory = Client::user(server.addr, "mallory").await;
    let grant = mallory.grant.clone().expect("logged in");
    let mut attacker = Attacker::new(server.addr, &grant).await;
    for stream in 0..3_000 {
        attacker.send(&[Frame::Fragment { stream, seq: 0, index: 0, count: 1, data: b"hello" }]).await;
        if stream % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    mallory.expect_error(ErrorCode::ProtocolViolation).await;
    goes_offline(&mut bob, "mallory").await;
    let id = bob.chat(Target::World, "alone now").await.expect("bob still chats");
    assert!(id > 0);
    server.stop().await;
}
