//! Every limit answers with its own error code, and the neighbours never notice.

use std::time::Duration;

use chatlab_proto::chat::Target;
use chatlab_proto::control::{ClientMessage, ErrorCode, ServerMessage};
use chatlab_proto::limits::MAX_TEXT_BYTES;
use chatlab_server::limits::{
    LOGIN_FAILURES_PER_ACCOUNT_AND_IP, MAX_FRAME_BYTES_BEFORE_LOGIN, MAX_FRAMES_BEFORE_LOGIN, MAX_RECEIVED_IDS,
    REQUESTS_PER_SESSION,
};

use crate::support::{Client, PASSWORD, PATIENCE, TestServer};

/// A bystander who chats before and after a limit hits someone else.
async fn bystander_still_chats(bystander: &mut Client, listener: &mut Client, text: &str) {
    let id = bystander.chat(Target::World, text).await.expect("the bystander is not affected");
    listener.expect(|m| matches!(m, ServerMessage::Chat(c) if c.id == id).then_some(())).await;
}

#[tokio::test]
async fn too_long_and_invalid_texts_are_refused_not_truncated() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let mut cat = Client::user(server.addr, "cat").await;
    assert!(ann.chat(Target::World, &"a".repeat(MAX_TEXT_BYTES)).await.is_ok(), "exactly the limit is fine");
    assert_eq!(ann.chat(Target::World, &"a".repeat(MAX_TEXT_BYTES + 1)).await, Err(ErrorCode::TextTooLong));
    assert_eq!(ann.chat(Target::World, "bell \u{7}").await, Err(ErrorCode::TextInvalid));
    assert_eq!(ann.chat(Target::World, "").await, Err(ErrorCode::TextInvalid));
    assert_eq!(ann.chat(Target::World, "tab\there").await, Err(ErrorCode::TextInvalid));
    assert!(ann.chat(Target::World, "two\nlines").await.is_ok(), "newline is allowed");
    bystander_still_chats(&mut bob, &mut cat, "still here").await;

    let mut udp = ann.udp().await;
    udp.establish().await;
    let sent = udp.send_chat(Target::World, &"b".repeat(MAX_TEXT_BYTES + 1));
    assert_eq!(udp.outcome(sent).await, Err(ErrorCode::TextTooLong));
    let sent = udp.send_chat(Target::World, "nul \u{0}");
    assert_eq!(udp.outcome(sent).await, Err(ErrorCode::TextInvalid));
    server.stop().await;
}

#[tokio::test]
async fn operator_text_limit_is_announced_and_enforced() {
    let server = TestServer::start_with(|c| c.max_text_bytes = 10).await;
    let mut ann = Client::user(server.addr, "ann").await;
    assert_eq!(ann.grant.as_ref().unwrap().max_text_bytes, 10);
    assert!(ann.chat(Target::World, "0123456789").await.is_ok());
    assert_eq!(ann.chat(Target::World, "0123456789!").await, Err(ErrorCode::TextTooLong));
    server.stop().await;
}

#[tokio::test]
async fn flood_control_refuses_past_the_burst_per_user() {
    let server = TestServer::start_with(|c| {
        c.flood_burst = 3.0;
        c.flood_rate = 0.01;
    })
    .await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let mut cat = Client::user(server.addr, "cat").await;
    for n in 0..3 {
        assert!(ann.chat(Target::World, &format!("burst {n}")).await.is_ok());
    }
    assert_eq!(ann.chat(Target::World, "one too many").await, Err(ErrorCode::FloodLimited));
    let mut udp = ann.udp().await;
    udp.establish().await;
    let sent = udp.send_chat(Target::World, "over udp too");
    assert_eq!(udp.outcome(sent).await, Err(ErrorCode::FloodLimited), "the bucket is per user, not per transport");
    // Logging out and in again (or opening another connection) does not refill it.
    drop(ann);
    let mut ann = Client::user(server.addr, "ann").await;
    assert_eq!(ann.chat(Target::World, "fresh session?").await, Err(ErrorCode::FloodLimited));
    bystander_still_chats(&mut bob, &mut cat, "my own bucket").await;
    server.stop().await;
}

#[tokio::test]
async fn too_many_frames_before_login_closes_the_connection() {
    let server = TestServer::start().await;
    let mut bob = Client::user(server.addr, "bob").await;
    let mut cat = Client::user(server.addr, "cat").await;
    let mut chatty = Client::connect(server.addr).await;
    // The hello was frame 1.
    for nonce in 1..u64::from(MAX_FRAMES_BEFORE_LOGIN) {
        chatty.send(&ClientMessage::Ping { nonce }).await;
    }
    for nonce in 1..u64::from(MAX_FRAMES_BEFORE_LOGIN) {
        chatty.expect(|m| matches!(m, ServerMessage::Pong { nonce: n } if *n == nonce).then_some(())).await;
    }
    chatty.send(&ClientMessage::Ping { nonce: 99 }).await;
    chatty.expect_error(ErrorCode::TooManyFramesBeforeLogin).await;
    assert!(chatty.closed_by_server().await);
    bystander_still_chats(&mut bob, &mut cat, "unaffected").await;
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_before_login_is_refused_before_its_body_arrives() {
    let server = TestServer::start().await;
    let mut bob = Client::user(server.addr, "bob").await;
    let mut cat = Client::user(server.addr, "cat").await;
    let mut big = Client::connect(server.addr).await;
    let announced = u16::try_from(MAX_FRAME_BYTES_BEFORE_LOGIN + 1).unwrap();
    // Only the length header: the server must not wait for the body.
    big.send_raw(&announced.to_be_bytes()).await;
    let text = big.expect_error(ErrorCode::TooManyFramesBeforeLogin).await;
    assert!(text.contains(&MAX_FRAME_BYTES_BEFORE_LOGIN.to_string()), "{text}");
    assert!(big.closed_by_server().await);
    // After login, large frames are fine: a 4 KiB text needs a frame larger than the pre-login limit.
    let long = "x".repeat(MAX_TEXT_BYTES);
    assert!(bob.chat(Target::World, &long).await.is_ok());
    assert_eq!(cat.pushed().await.text, long);
    server.stop().await;
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let server = TestServer::start_with(|c| c.max_connections_per_ip = 3).await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let third = Client::connect(server.addr).await;
    let mut fourth = Client::handshake(server.addr).await;
    let text = fourth.expect_error(ErrorCode::TooManyConnections).await;
    assert!(!text.is_empty());
    assert!(fourth.closed_by_server().await);
    bystander_still_chats(&mut ann, &mut bob, "the cap spares existing connections").await;
    // Refusals past the first are resets: the cap is checked at accept, before any cryptography.
    assert!(!server_answers_handshake(server.addr).await, "a second refusal is not explained again at once");
    // A slot becomes free when a connection ends.
    drop(third);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while Client::try_connect_from(server.addr, server.addr.ip()).await.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "the freed slot was never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

/// Opens a TCP connection and sends the first handshake message: `true` if the server answers it, `false` if it
/// closes the connection without a word.
async fn server_answers_handshake(server: std::net::SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(server).await else { return false };
    let msg1 = chatlab_proto::noise::Initiator::new().unwrap().start().unwrap();
    if stream.write_all(&msg1).await.is_err() {
        return false;
    }
    let mut answer = [0u8; 1];
    let read = tokio::time::timeout(PATIENCE, stream.read(&mut answer)).await.expect("answer or close in time");
    matches!(read, Ok(n) if n > 0)
}

#[tokio::test]
async fn total_connections_are_capped_before_the_handshake() {
    let server = TestServer::start_with(|c| c.max_connections = 3).await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let third = Client::connect(server.addr).await;
    for _ in 0..5 {
        assert!(!server_answers_handshake(server.addr).await, "a full server closes new connections at once");
    }
    bystander_still_chats(&mut ann, &mut bob, "the total cap spares existing connections").await;
    // A place becomes free when any connection ends.
    drop(third);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !server_answers_handshake(server.addr).await {
        assert!(tokio::time::Instant::now() < deadline, "the freed place was never given back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bystander_still_chats(&mut bob, &mut ann, "and after").await;
    server.stop().await;
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_account_and_address() {
    let server = TestServer::start().await;
    let mut victim = Client::user(server.addr, "victim").await;
    let mut other = Client::user(server.addr, "other").await;
    let mut guesser = Client::connect(server.addr).await;
    for n in 0..LOGIN_FAILURES_PER_ACCOUNT_AND_IP.capacity as usize {
        assert_eq!(guesser.login("victim", &format!("guess {n}")).await.unwrap_err(), ErrorCode::BadCredentials);
    }
    let (code, text) = guesser.login_detailed("victim", PASSWORD).await.unwrap_err();
    assert_eq!(code, ErrorCode::LoginRateLimited, "even the right password waits, at the guesser's address");
    assert!(text.contains("try again"), "{text}");
    // Another account from the same address is not locked by this account's failures.
    guesser.login("other", PASSWORD).await.unwrap();
    bystander_still_chats(&mut victim, &mut other, "my session is fine").await;
    server.stop().await;
}

#[tokio::test]
async fn registrations_are_rate_limited_per_address() {
    let server = TestServer::start_with(|c| c.max_registrations_per_ip = 5).await;
    let mut client = Client::connect(server.addr).await;
    for n in 0..5 {
        client.register(&format!("user{n}"), PASSWORD).await.unwrap();
    }
    let (code, text) = client.register_detailed("one.more", PASSWORD).await.unwrap_err();
    assert_eq!(code, ErrorCode::LoginRateLimited);
    assert!(text.contains("try again in 720 s"), "5 an hour: one every 12 minutes; {text}");
    server.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_login_timeout() {
    let server = TestServer::start_with(|c| c.login_timeout = Duration::from_millis(300)).await;
    let mut idle = Client::connect(server.addr).await;
    assert!(idle.closed_by_server().await);
    // A logged-in session is not subject to it.
    let mut ann = Client::user(server.addr, "ann").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(ann.chat(Target::World, "still logged in").await.is_ok());
    server.stop().await;
}

/// Many wrong-password logins at once for one account: each attempt reserves its token before the (slow) password
/// check, so no more than the burst get to try a password at all.
#[tokio::test]
async fn login_rate_limit_bypass_with_concurrent_attempts() {
    let server = TestServer::start().await;
    drop(Client::user(server.addr, "target").await);
    const ATTEMPTS: usize = 15;
    let mut guessers = Vec::new();
    for _ in 0..ATTEMPTS {
        guessers.push(Client::connect(server.addr).await);
    }
    let tasks: Vec<_> = guessers
        .into_iter()
        .enumerate()
        .map(|(n, mut guesser)| tokio::spawn(async move { guesser.login("target", &format!("guess {n}")).await }))
        .collect();
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap().unwrap_err());
    }
    let tried = codes.iter().filter(|&&c| c == ErrorCode::BadCredentials).count();
    let limited = codes.iter().filter(|&&c| c == ErrorCode::LoginRateLimited).count();
    assert!(tried <= LOGIN_FAILURES_PER_ACCOUNT_AND_IP.capacity as usize, "{codes:?}");
    assert_eq!(tried + limited, ATTEMPTS, "{codes:?}");
    server.stop().await;
}

/// A script asking for user lists in a loop without reading the answers: past the per-session request budget each
/// request is refused with `TooManyRequests` (echoing its request number), and other sessions notice nothing.
#[tokio::test]
async fn a_client_that_never_reads_is_refused_past_the_request_budget() {
    let server = TestServer::start().await;
    let mut victim = Client::user(server.addr, "calm").await;
    let mut other = Client::user(server.addr, "other").await;
    let mut script = Client::user(server.addr, "script").await;
    let budget = REQUESTS_PER_SESSION.capacity as usize;
    let sent = budget + 200;
    for _ in 0..sent {
        let req = script.req();
        script.send(&ClientMessage::ListUsers { req }).await;
    }
    let mut answered = 0;
    let mut refused = 0;
    while answered + refused < sent {
        match script.recv().await {
            ServerMessage::Users { more: false, .. } => answered += 1,
            ServerMessage::Error { req: Some(_), code: ErrorCode::TooManyRequests, message } => {
                assert!(message.contains("wait"), "{message}");
                refused += 1;
            }
            _ => {}
        }
    }
    assert!(refused > 0 && answered >= budget, "answered {answered}, refused {refused}");
    bystander_still_chats(&mut victim, &mut other, "still fine").await;
    server.stop().await;
}

/// A `Received` naming more than `MAX_RECEIVED_IDS` ids is cut there: ids past the cap are ignored (the next sync
/// confirms them), ids within it count.
#[tokio::test]
async fn a_client_that_never_reads_cannot_make_one_received_a_huge_write() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let id = ann.chat(crate::support::to_user("bob"), "confirm me").await.unwrap();
    assert_eq!(bob.pushed().await.id, id);
    let mut ids: Vec<u64> = (0..MAX_RECEIVED_IDS as u64).map(|n| id + 1_000_000 + n).collect();
    ids.push(id);
    bob.send(&ClientMessage::Received { ids }).await;
    let receipt = |m: &ServerMessage| matches!(m, ServerMessage::Receipt { id: r, .. } if *r == id).then_some(());
    assert!(ann.sees_within(Duration::from_millis(500), receipt).await.is_none(), "the id past the cap is ignored");
    bob.send(&ClientMessage::Received { ids: vec![id] }).await;
    ann.expect(receipt).await;
    server.stop().await;
}

/// The bug: a session past its request budget got `FloodLimited`, the chat flood code, so a client told its user
/// to type more slowly when its own history sync had asked too often. The refusal now has its own code, echoes
/// the request number, and says nothing about chat: the same session still chats at once.
#[tokio::test]
async fn request_budget_refusals_reused_the_chat_flood_code() {
    let server = TestServer::start_with(|c| {
        c.flood_burst = 5.0;
        c.flood_rate = 1.0;
    })
    .await;
    let mut syncer = Client::user(server.addr, "syncer").await;
    let sent = REQUESTS_PER_SESSION.capacity as usize + 200;
    let mut asked = Vec::with_capacity(sent);
    for _ in 0..sent {
        let req = syncer.req();
        asked.push(req);
        syncer.send(&ClientMessage::SyncHistory { req, after_id: 0, limit: 1 }).await;
    }
    let mut refused = Vec::new();
    let mut answered = 0;
    while answered + refused.len() < sent {
        match syncer.recv().await {
            ServerMessage::HistoryPage { .. } => answered += 1,
            ServerMessage::Error { req, code, message } => {
                assert_eq!(code, ErrorCode::TooManyRequests, "{message}");
                refused.push(req);
            }
            _ => {}
        }
    }
    assert!(!refused.is_empty() && answered >= REQUESTS_PER_SESSION.capacity as usize, "answered {answered}");
    assert!(refused.iter().all(|req| req.is_some_and(|r| asked.contains(&r))), "each refusal names its request");
    assert!(syncer.chat(Target::World, "my chat budget is untouched").await.is_ok());
    server.stop().await;
}
