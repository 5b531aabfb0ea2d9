//! Clients that misbehave on purpose once logged in: chat refused in a loop, and readers that never read. Each
//! costs the server a bounded amount, ends only its own session, and nobody else notices.

use chatlab_proto::chat::Target;
use chatlab_proto::control::{ErrorCode, ServerMessage};

use crate::support::{Client, TestServer, name};

/// Messages the flooder sends before waiting for their answers: enough for the writer to commit them in groups.
const PIPELINE: usize = 32;

/// A world message of this length, so the attacker's queues fill after a few hundred messages, not millions.
fn long_text() -> String {
    "x".repeat(4000)
}

/// Sends `PIPELINE` long world messages from `sender` and reads them as `listener`; true once `watched` went
/// offline (its last session ended), as `sender` sees it.
async fn flood_round(sender: &mut Client, listener: &mut Client, watched: &str) -> bool {
    let text = long_text();
    let mut ids = Vec::new();
    for _ in 0..PIPELINE {
        let client_msg_id = sender.msg_id();
        sender
            .send(&chatlab_proto::control::ClientMessage::Chat { client_msg_id, to: Target::World, text: text.clone() })
            .await;
        ids.push(client_msg_id);
    }
    for client_msg_id in ids {
        let id = sender.chat_outcome(client_msg_id).await.expect("the flooder's messages are stored");
        listener.expect(|m| matches!(m, ServerMessage::Chat(c) if c.id == id).then_some(())).await;
    }
    let watched = name(watched);
    sender.kept().iter().any(|m| matches!(m, ServerMessage::Presence { user, online: false } if *user == watched))
}

/// The bug: invalid messages were checked before the flood bucket was charged, so a client could be refused in a
/// loop for ever (and the server logged every refusal). Now every message pays first.
#[tokio::test]
async fn invalid_chat_messages_in_a_loop_run_the_flood_bucket_dry() {
    let server = TestServer::start_with(|c| {
        c.flood_burst = 5.0;
        c.flood_rate = 0.01;
    })
    .await;
    let mut eve = Client::user(server.addr, "eve").await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    for _ in 0..5 {
        assert_eq!(eve.chat(Target::World, "bell \u{7}").await, Err(ErrorCode::TextInvalid));
    }
    assert_eq!(eve.chat(Target::World, "bell \u{7}").await, Err(ErrorCode::FloodLimited));
    assert_eq!(eve.chat(Target::World, "and a valid one").await, Err(ErrorCode::FloodLimited));
    let mut udp = eve.udp().await;
    udp.establish().await;
    let sent = udp.send_chat(Target::World, &"y".repeat(5000));
    assert_eq!(udp.outcome(sent).await, Err(ErrorCode::FloodLimited), "too long, but refused before it is read");
    let id = ann.chat(Target::World, "my own bucket").await.expect("ann is not affected");
    bob.expect(|m| matches!(m, ServerMessage::Chat(c) if c.id == id).then_some(())).await;
    server.stop().await;
}

/// The bug: a logged-in client that never read its TCP connection while others filled the world room made the
/// server queue up to 4 096 messages for it (about 18 MB of long ones). Now the server closes it once it holds
/// `MAX_SESSION_QUEUE_BYTES` for it (plus what the connection and the kernel buffer), and the others keep chatting.
#[tokio::test]
async fn a_tcp_client_that_never_reads_is_disconnected_and_the_others_keep_chatting() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut cat = Client::user(server.addr, "cat").await;
    let mut eve = Client::user(server.addr, "eve").await;
    cat.presence("eve").await;
    // From here on eve reads nothing. The kernel's socket buffers take a few megabytes first, so this takes a
    // thousand or two long messages; a count-bounded queue would have taken 4 096 more.
    let mut rounds = 0;
    while !flood_round(&mut ann, &mut cat, "eve").await {
        rounds += 1;
        assert!(rounds < 200, "eve was never disconnected");
    }
    assert!(eve.closed_by_server().await, "eve's connection is closed");
    let id = cat.chat(Target::World, "still here").await.expect("cat chats on");
    ann.expect(|m| matches!(m, ServerMessage::Chat(c) if c.id == id).then_some(())).await;
    server.stop().await;
}

/// The same over UDP: a client whose pushes go over UDP and that never acknowledges a datagram is closed once the
/// messages waiting for its acknowledgement reach the byte budget, long before its send window (1 024 messages)
/// is full.
#[tokio::test]
async fn a_udp_client_that_never_acknowledges_is_disconnected_within_the_byte_budget() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut cat = Client::user(server.addr, "cat").await;
    let mut eve = Client::user(server.addr, "eve").await;
    let mut eve_udp = eve.udp().await;
    eve_udp.establish().await;
    cat.presence("eve").await;
    // eve's engine is never driven again: no acknowledgement leaves it.
    let mut rounds = 0;
    while !flood_round(&mut ann, &mut cat, "eve").await {
        rounds += 1;
        assert!(rounds < 32, "eve was never disconnected");
    }
    // The send window (1 024 messages) would take 32 rounds; the byte budget, about 2 MiB of 4 000-byte texts,
    // ends it in half that.
    let budget_rounds = chatlab_server::limits::MAX_SESSION_QUEUE_BYTES / (long_text().len() * PIPELINE) + 2;
    assert!(rounds <= budget_rounds, "the byte budget ended it, not the send window: {rounds} rounds of {PIPELINE}");
    assert!(eve.closed_by_server().await);
    let id = cat.chat(Target::World, "still here").await.expect("cat chats on");
    ann.expect(|m| matches!(m, ServerMessage::Chat(c) if c.id == id).then_some(())).await;
    server.stop().await;
}

/// Log lines written while a test runs, through a subscriber set for the test's thread (the server's tasks run on
/// it too: `#[tokio::test]` uses a single-threaded runtime).
#[derive(Clone, Default)]
struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLog {
    type Writer = CapturedLog;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The bug: every refusal wrote an INFO line, so one client refused in a loop grew the log by 14 MB a second. Now
/// refused requests (per connection) and refused chat messages (in the hub) are each logged as the first refusal
/// at once and then one summary with the counts per reason.
#[tokio::test]
async fn refusals_in_a_loop_are_logged_as_a_summary_not_one_line_each() {
    let log = CapturedLog::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = TestServer::start().await;
    let mut eve = Client::user(server.addr, "eve").await;
    for _ in 0..100 {
        let req = eve.req();
        eve.send(&chatlab_proto::control::ClientMessage::SyncHistory { req, after_id: 0, limit: 0 }).await;
        eve.expect_error(ErrorCode::HistoryLimit).await;
        assert_eq!(eve.chat(Target::World, "bell \u{7}").await, Err(ErrorCode::TextInvalid));
    }
    drop(eve);
    server.stop().await;
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    for (what, code) in [("requests refused", "304"), ("chat messages refused", "301")] {
        let lines: Vec<&str> = text.lines().filter(|line| line.contains(what)).collect();
        assert_eq!(lines.len(), 2, "the first at once, the other 99 in one summary: {lines:#?}");
        assert!(lines[1].contains("refused=99") && lines[1].contains(code), "{}", lines[1]);
    }
}
