//! Chatting: both transports, the world room, private messages, offline delivery, several sessions.

use chatlab_client::{ClientEvent, Target, Transport, Username};

use crate::support::*;

fn name(s: &str) -> Username {
    Username::parse(s).expect("valid name")
}

async fn two_users_chat_both_ways(transport: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), None).await;
    let mut config = client_config(server.local_addr(), dir.path());
    config.transport = transport;
    let (ann, mut ann_events) = user(config.clone(), "ann").await;
    let (bob, mut bob_events) = user(config, "bob").await;
    if transport == Transport::Tcp {
        ann.set_transport(Transport::Tcp).await.unwrap();
        bob.set_transport(Transport::Tcp).await.unwrap();
    }

    let sent = ann.send(Target::User(name("bob")), "hello bob").await.unwrap();
    let got = wait_message(&mut bob_events, "hello bob").await;
    assert_eq!((got.id, got.from.as_str(), got.to.clone()), (sent.id, "ann", Target::User(name("bob"))));
    wait_for(
        &mut ann_events,
        "receipt from bob",
        |e| matches!(e, ClientEvent::Receipt { id, to } if *id == sent.id && to.as_str() == "bob"),
    )
    .await;

    let reply = bob.send(Target::User(name("ann")), "hi ann, 你好").await.unwrap();
    let got = wait_message(&mut ann_events, "hi ann, 你好").await;
    assert_eq!(got.id, reply.id);
    assert!(reply.id > sent.id, "ids grow");

    let stats = ann.stats().await.unwrap();
    match transport {
        Transport::Udp => assert!(stats.udp.as_ref().is_some_and(|u| u.sent.messages_acked >= 1), "{stats:?}"),
        Transport::Tcp => assert!(stats.tcp.frames_sent >= 1, "{stats:?}"),
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_users_chat_both_ways_over_udp() {
    two_users_chat_both_ways(Transport::Udp).await;
}

#[tokio::test]
async fn two_users_chat_both_ways_over_tcp() {
    two_users_chat_both_ways(Transport::Tcp).await;
}

#[tokio::test]
async fn a_world_message_reaches_every_online_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), None).await;
    let config = client_config(server.local_addr(), dir.path());
    let (ann, _ann_events) = user(config.clone(), "ann").await;
    let (_bob, mut bob_events) = user(config.clone(), "bob").await;
    let (_cat, mut cat_events) = user(config, "cat").await;
    let sent = ann.send(Target::World, "hello world").await.unwrap();
    for events in [&mut bob_events, &mut cat_events] {
        let got = wait_message(events, "hello world").await;
        assert_eq!((got.id, got.to.clone()), (sent.id, Target::World));
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_private_message_to_an_offline_user_arrives_at_their_next_login() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), None).await;
    let config = client_config(server.local_addr(), dir.path());
    let (bob, _) = user(config.clone(), "bob").await;
    bob.logout().await.unwrap();
    bob.shutdown().await;

    let (ann, mut ann_events) = user(config.clone(), "ann").await;
    let sent = ann.send(Target::User(name("bob")), "while you were away").await.unwrap();

    let (_bob, mut bob_events) = user(config, "bob").await;
    let got = wait_message(&mut bob_events, "while you were away").await;
    assert_eq!(got.id, sent.id);
    wait_for(
        &mut ann_events,
        "receipt after bob's login",
        |e| matches!(e, ClientEvent::Receipt { id, .. } if *id == sent.id),
    )
    .await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn one_account_logged_in_twice_keeps_both_sessions_working() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), None).await;
    let config = client_config(server.local_addr(), dir.path());
    let (_laptop, mut laptop_events) = user(config.clone(), "ann").await;
    let (phone, mut phone_events) = user(config.clone(), "ann").await;
    let (bob, mut bob_events) = user(config, "bob").await;

    bob.send(Target::User(name("ann")), "to both of you").await.unwrap();
    wait_message(&mut laptop_events, "to both of you").await;
    wait_message(&mut phone_events, "to both of you").await;

    phone.send(Target::User(name("bob")), "from the phone").await.unwrap();
    wait_message(&mut bob_events, "from the phone").await;
    wait_message(&mut laptop_events, "from the phone").await;
    server.shutdown().await.unwrap();
}
