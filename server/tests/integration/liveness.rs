//! Noticing clients that vanish without closing their TCP connection (the read-idle limit).
//!
//! The raw test client sends nothing unless told to, which makes it the perfect vanished peer: its kernel keeps the
//! connection open and acknowledges everything, but the program says nothing, exactly like a frozen client. Every
//! client that should stay alive here sends `Ping`s, as the real client's heartbeat does.

use std::time::Duration;

use chatlab_proto::chat::Target;
use chatlab_proto::control::{ClientMessage, ServerMessage};

use crate::support::{Client, PATIENCE, TestServer, name};

/// Pings faster than any limit used here, so that a pinging client is never taken for silent.
const PING_EVERY: Duration = Duration::from_millis(100);

/// Waits for `user`'s presence to change, sending a `Ping` every [`PING_EVERY`] so that `watcher` itself stays alive.
/// `None` if nothing changed within [`PATIENCE`].
async fn presence_while_pinging(watcher: &mut Client, user: &str) -> Option<bool> {
    let user = name(user);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut nonce = 0;
    while tokio::time::Instant::now() < deadline {
        nonce += 1;
        watcher.send(&ClientMessage::Ping { nonce }).await;
        let change = watcher
            .sees_within(PING_EVERY, |m| match m {
                ServerMessage::Presence { user: u, online } if *u == user => Some(*online),
                _ => None,
            })
            .await;
        if change.is_some() {
            return change;
        }
    }
    None
}

/// Sends a `Ping` and waits for its `Pong`: proof that the connection still serves this client.
async fn ping(client: &mut Client, nonce: u64) {
    client.send(&ClientMessage::Ping { nonce }).await;
    client.expect(|m| matches!(m, ServerMessage::Pong { nonce: n } if *n == nonce).then_some(())).await;
}

/// The bug: a client whose TCP connection was never closed (a laptop lid shut, a frozen program) stayed "online" for
/// ever, because the server only noticed a dead peer when a write to it stalled.
#[tokio::test]
async fn a_client_that_vanishes_without_closing_tcp_stayed_online_for_ever() {
    let server = TestServer::start_with(|c| c.control_idle_timeout = Duration::from_millis(800)).await;
    let mut watcher = Client::user(server.addr, "watcher").await;
    let mut ghost = Client::user(server.addr, "ghost").await;
    assert_eq!(presence_while_pinging(&mut watcher, "ghost").await, Some(true));
    // From here on the ghost sends nothing and does not close its socket.
    assert_eq!(presence_while_pinging(&mut watcher, "ghost").await, Some(false), "the ghost went offline");
    assert!(ghost.closed_by_server().await, "and its connection was closed");
    ping(&mut watcher, 1).await;
    assert_eq!(watcher.online_users().await, vec![name("watcher")]);
    // Its account is fine: the user logs in again and is online.
    let mut back = Client::user(server.addr, "ghost").await;
    assert_eq!(presence_while_pinging(&mut watcher, "ghost").await, Some(true));
    ping(&mut back, 2).await;
    server.stop().await;
}

/// The limit judges silence, not age: a session that keeps sending its heartbeat lives far past it.
#[tokio::test]
async fn a_client_that_keeps_pinging_stays_online_past_the_idle_limit() {
    const LIMIT: Duration = Duration::from_millis(600);
    let server = TestServer::start_with(|c| c.control_idle_timeout = LIMIT).await;
    let mut watcher = Client::user(server.addr, "watcher").await;
    let mut alive = Client::user(server.addr, "alive").await;
    assert_eq!(presence_while_pinging(&mut watcher, "alive").await, Some(true));
    let until = tokio::time::Instant::now() + LIMIT * 4;
    let mut nonce = 0;
    while tokio::time::Instant::now() < until {
        nonce += 1;
        ping(&mut alive, nonce).await;
        ping(&mut watcher, nonce).await;
        tokio::time::sleep(PING_EVERY).await;
    }
    let offline = |m: &ServerMessage| matches!(m, ServerMessage::Presence { online: false, .. }).then_some(());
    assert!(watcher.sees_within(Duration::ZERO, offline).await.is_none(), "nobody went offline: {:?}", watcher.kept());
    let id = alive.chat(Target::World, "still here").await.unwrap();
    assert_eq!(watcher.pushed().await.id, id);
    server.stop().await;
}
