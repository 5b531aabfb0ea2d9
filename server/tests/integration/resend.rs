//! Fixes found in review, one regression test each: resends, transport switches, login limits under concurrency.

use std::time::Duration;

use chatlab_proto::chat::Target;
use chatlab_proto::control::{ClientMessage, ServerMessage, Transport};

use crate::support::{Client, QUIET, TestServer, to_user};

/// A message whose acceptance the client never saw is resent with the same `client_msg_id`, here over UDP first
/// and then over TCP: the server stores it once, answers both copies with the same id, and pushes it once.
#[tokio::test]
async fn duplicate_storage_on_resend_udp_then_tcp() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let mut ann_udp = ann.udp().await;
    ann_udp.establish().await;

    let client_msg_id = 0x5eed;
    ann_udp.send_chat_with_id(client_msg_id, to_user("bob"), "only once");
    let over_udp = ann_udp.outcome(client_msg_id).await.unwrap();
    ann.send(&ClientMessage::Chat { client_msg_id, to: to_user("bob"), text: "only once".into() }).await;
    assert_eq!(ann.chat_outcome(client_msg_id).await, Ok(over_udp), "the resend is answered with the stored id");

    assert_eq!(bob.pushed().await.id, over_udp);
    let again = bob.sees_within(QUIET, |m| matches!(m, ServerMessage::Chat(_)).then_some(())).await;
    assert!(again.is_none(), "the recipient gets the message once");
    let (history, _) = bob.sync_all(0, 100).await;
    assert_eq!(history.iter().filter(|m| m.text == "only once").count(), 1, "stored once");
    server.stop().await;
}

/// Two copies over TCP back to back: the second arrives while the first is still being stored.
#[tokio::test]
async fn duplicate_storage_on_resend_twice_over_tcp() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let chat = ClientMessage::Chat { client_msg_id: 9, to: Target::World, text: "twice?".into() };
    ann.send(&chat).await;
    ann.send(&chat).await;
    let first = ann.chat_outcome(9).await.unwrap();
    assert_eq!(ann.chat_outcome(9).await, Ok(first));
    assert_eq!(bob.pushed().await.id, first);
    assert!(bob.sees_within(QUIET, |m| matches!(m, ServerMessage::Chat(_)).then_some(())).await.is_none());
    let (history, _) = bob.sync_all(0, 100).await;
    assert_eq!(history.iter().filter(|m| m.text == "twice?").count(), 1);
    server.stop().await;
}

/// UDP dies while messages are in the server's engine; the client switches to TCP. Everything it was owed arrives
/// over TCP, and the server stops retransmitting to the abandoned UDP path.
#[tokio::test]
async fn messages_stranded_in_the_udp_engine_on_use_transport_tcp() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let mut bob_udp = bob.udp().await;
    bob_udp.establish().await;
    // From here on bob's UDP path is "dead": nothing is acknowledged.
    let mut sent = Vec::new();
    for n in 0..3 {
        sent.push(ann.chat(to_user("bob"), &format!("stranded {n}")).await.unwrap());
    }
    sent.push(ann.chat(Target::World, "stranded world").await.unwrap());
    assert!(bob_udp.count_arrivals(QUIET).await > 0, "the pushes went out over UDP");
    bob.send(&ClientMessage::UseTransport { transport: Transport::Tcp }).await;
    let mut got = Vec::new();
    for _ in 0..sent.len() {
        got.push(bob.pushed().await.id);
    }
    got.sort_unstable();
    assert_eq!(got, sent, "every message owed over UDP arrives over TCP");
    // Give datagrams already on their way time to land, then expect silence: no retransmissions, no pings.
    bob_udp.count_arrivals(QUIET).await;
    assert_eq!(bob_udp.count_arrivals(Duration::from_secs(3)).await, 0, "the server stopped using the dead path");
    // New messages come over TCP, and a receipt still follows when bob confirms over TCP.
    let later = ann.chat(to_user("bob"), "after the switch").await.unwrap();
    assert_eq!(bob.pushed().await.id, later);
    bob.send(&ClientMessage::Received { ids: vec![later] }).await;
    ann.expect(|m| matches!(m, ServerMessage::Receipt { id, .. } if *id == later).then_some(())).await;
    server.stop().await;
}
