//! Chat over both transports: fan-out, private messages, offline delivery, several sessions, presence, receipts.

use chatlab_proto::chat::{ChatPayload, Target};
use chatlab_proto::control::{ClientMessage, ErrorCode, ServerMessage, Transport};

use crate::support::{Client, QUIET, TestServer, ann_and_bob_on_udp, name, to_user};

#[tokio::test]
async fn world_message_reaches_every_online_session_on_either_transport() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let cat = Client::user(server.addr, "cat").await;
    let mut cat_udp = cat.udp().await;
    cat_udp.establish().await;

    let id = ann.chat(Target::World, "hello everyone").await.unwrap();
    let at_bob = bob.pushed().await;
    assert_eq!((at_bob.id, at_bob.from.clone(), at_bob.to.clone()), (id, name("ann"), Target::World));
    assert_eq!(at_bob.text, "hello everyone");
    assert!(at_bob.sent_at_ms > 1_577_836_800_000, "server timestamps are UTC milliseconds");
    let at_cat = cat_udp.message().await;
    assert_eq!(at_cat, at_bob, "the same message over UDP");
    // The sender's own session gets the acceptance, not a copy.
    assert!(ann.sees_within(QUIET, |m| matches!(m, ServerMessage::Chat(_)).then_some(())).await.is_none());
    server.stop().await;
}

#[tokio::test]
async fn private_messages_both_ways_over_udp() {
    let server = TestServer::start().await;
    let (_sessions, mut ann_udp, mut bob_udp) = ann_and_bob_on_udp(server.addr).await;

    let sent = ann_udp.send_chat(to_user("bob"), "psst, bob");
    let id = ann_udp.outcome(sent).await.unwrap();
    let got = bob_udp.message().await;
    assert_eq!(
        (got.id, got.from.clone(), got.to.clone(), got.text.as_str()),
        (id, name("ann"), to_user("bob"), "psst, bob")
    );
    // Bob's engine acknowledged the message: Ann hears it was delivered.
    let receipt = ann_udp.expect(|p| match p {
        ChatPayload::Receipt { id, to } => Some((*id, to.clone())),
        _ => None,
    });
    // Keep Bob's engine running so the acknowledgement leaves.
    let (receipt, ()) = tokio::join!(receipt, bob_udp.pump(std::time::Duration::from_millis(200)));
    assert_eq!(receipt, (id, name("bob")));

    let back = bob_udp.send_chat(to_user("ann"), "hi ann 你好");
    let back_id = bob_udp.outcome(back).await.unwrap();
    assert!(back_id > id);
    let got = ann_udp.message().await;
    assert_eq!((got.from, got.text), (name("bob"), "hi ann 你好".to_owned()));
    server.stop().await;
}

#[tokio::test]
async fn private_messages_both_ways_over_tcp_with_receipts() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let id = ann.chat(to_user("bob"), "over tcp").await.unwrap();
    let got = bob.pushed().await;
    assert_eq!((got.id, got.text.as_str()), (id, "over tcp"));
    bob.send(&ClientMessage::Received { ids: vec![got.id] }).await;
    let receipt = ann
        .expect(|m| match m {
            ServerMessage::Receipt { id, to } => Some((*id, to.clone())),
            _ => None,
        })
        .await;
    assert_eq!(receipt, (id, name("bob")));
    // A second confirmation of the same message produces no second receipt.
    bob.send(&ClientMessage::Received { ids: vec![got.id, 999_999] }).await;
    assert!(ann.sees_within(QUIET, |m| matches!(m, ServerMessage::Receipt { .. }).then_some(())).await.is_none());

    let back = bob.chat(to_user("ann"), "and back").await.unwrap();
    assert_eq!(ann.pushed().await.id, back);
    server.stop().await;
}

#[tokio::test]
async fn message_to_an_unknown_user_is_refused_on_both_transports() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    assert_eq!(ann.chat(to_user("ghost"), "anyone?").await, Err(ErrorCode::UnknownUser));
    let mut udp = ann.udp().await;
    udp.establish().await;
    let sent = udp.send_chat(to_user("ghost"), "anyone?");
    assert_eq!(udp.outcome(sent).await, Err(ErrorCode::UnknownUser));
    server.stop().await;
}

#[tokio::test]
async fn offline_private_message_arrives_in_the_sync_and_the_sender_gets_a_receipt() {
    let server = TestServer::start().await;
    let mut bob = Client::user(server.addr, "bob").await;
    bob.send(&ClientMessage::Logout).await;
    bob.expect(|m| matches!(m, ServerMessage::LoggedOut).then_some(())).await;

    let mut ann = Client::user(server.addr, "ann").await;
    let id = ann.chat(to_user("bob"), "read this when you are back").await.unwrap();
    assert!(ann.sees_within(QUIET, |m| matches!(m, ServerMessage::Receipt { .. }).then_some(())).await.is_none());

    bob.login("bob", crate::support::PASSWORD).await.unwrap();
    let (history, _) = bob.sync_all(0, 100).await;
    let found = history.iter().find(|m| m.id == id).expect("the offline message is in the sync");
    assert_eq!(found.text, "read this when you are back");
    let receipt = ann
        .expect(|m| match m {
            ServerMessage::Receipt { id, to } => Some((*id, to.clone())),
            _ => None,
        })
        .await;
    assert_eq!(receipt, (id, name("bob")));
    // Syncing again delivers nothing new, so no second receipt.
    bob.sync_all(0, 100).await;
    assert!(ann.sees_within(QUIET, |m| matches!(m, ServerMessage::Receipt { .. }).then_some(())).await.is_none());
    server.stop().await;
}

#[tokio::test]
async fn one_account_logged_in_twice_gets_everything_in_both_sessions() {
    let server = TestServer::start().await;
    let mut ann_laptop = Client::user(server.addr, "ann").await;
    let mut ann_phone = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;

    let to_ann = bob.chat(to_user("ann"), "to both of your devices").await.unwrap();
    assert_eq!(ann_laptop.pushed().await.id, to_ann);
    assert_eq!(ann_phone.pushed().await.id, to_ann);

    // What Ann sends from her laptop shows up on her phone too.
    let from_laptop = ann_laptop.chat(to_user("bob"), "sent from the laptop").await.unwrap();
    assert_eq!(bob.pushed().await.id, from_laptop);
    let copy = ann_phone.pushed().await;
    assert_eq!((copy.id, copy.from), (from_laptop, name("ann")));

    let users = bob.online_users().await;
    assert_eq!(users, vec![name("ann"), name("bob")], "one entry per user, sorted");
    server.stop().await;
}

#[tokio::test]
async fn presence_starts_with_the_first_session_and_ends_with_the_last() {
    let server = TestServer::start().await;
    let mut watcher = Client::user(server.addr, "watcher").await;
    let first = Client::user(server.addr, "dan").await;
    assert!(watcher.presence("dan").await);
    let second = Client::user(server.addr, "dan").await;
    drop(first);
    assert!(
        watcher.sees_within(QUIET, |m| matches!(m, ServerMessage::Presence { .. }).then_some(())).await.is_none(),
        "dan is still online in his second session"
    );
    assert_eq!(watcher.online_users().await, vec![name("dan"), name("watcher")]);
    drop(second);
    assert!(!watcher.presence("dan").await);
    assert_eq!(watcher.online_users().await, vec![name("watcher")]);
    server.stop().await;
}

#[tokio::test]
async fn use_transport_moves_pushes_between_udp_and_tcp() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let mut bob_udp = bob.udp().await;
    bob_udp.establish().await;

    let first = ann.chat(Target::World, "one").await.unwrap();
    assert_eq!(bob_udp.message().await.id, first);

    bob.send(&ClientMessage::UseTransport { transport: Transport::Tcp }).await;
    bob.send(&ClientMessage::Ping { nonce: 1 }).await;
    bob.expect(|m| matches!(m, ServerMessage::Pong { nonce: 1 }).then_some(())).await;
    let second = ann.chat(Target::World, "two").await.unwrap();
    assert_eq!(bob.pushed().await.id, second);

    // Back to UDP: pushes stay on TCP until a fresh datagram authenticates.
    bob.send(&ClientMessage::UseTransport { transport: Transport::Udp }).await;
    bob.send(&ClientMessage::Ping { nonce: 2 }).await;
    bob.expect(|m| matches!(m, ServerMessage::Pong { nonce: 2 }).then_some(())).await;
    let third = ann.chat(Target::World, "three").await.unwrap();
    assert_eq!(bob.pushed().await.id, third);
    bob_udp.establish().await;
    let fourth = ann.chat(Target::World, "four").await.unwrap();
    assert_eq!(bob_udp.message().await.id, fourth);
    server.stop().await;
}

#[tokio::test]
async fn a_udp_message_is_answered_over_udp_even_when_pushes_use_tcp() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut udp = ann.udp().await;
    udp.establish().await;
    ann.send(&ClientMessage::UseTransport { transport: Transport::Tcp }).await;
    ann.send(&ClientMessage::Ping { nonce: 3 }).await;
    ann.expect(|m| matches!(m, ServerMessage::Pong { nonce: 3 }).then_some(())).await;
    let sent = udp.send_chat(Target::World, "via udp");
    assert!(udp.outcome(sent).await.is_ok());
    assert!(ann.sees_within(QUIET, |m| matches!(m, ServerMessage::ChatAccepted { .. }).then_some(())).await.is_none());
    server.stop().await;
}
