//! Chatting: sends over UDP and TCP, incoming messages, history, users, presence, statistics.

use chatlab_client::{ClientError, ClientEvent, MessageSource, Target, Transport, TransportReason};

use crate::fake_server::{FakeServer, Options};
use crate::support::{config, logged_in, user, wait_for};

#[tokio::test]
async fn a_send_over_udp_resolves_when_the_server_accepts_it() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, mut events) = logged_in(config(&server, &dir), "ann").await;
    let changed = wait_for(&mut events, "UDP confirmed", |e| matches!(e, ClientEvent::TransportChanged { .. })).await;
    assert_eq!(
        changed,
        ClientEvent::TransportChanged { transport: Transport::Udp, reason: TransportReason::UdpConfirmed }
    );
    let accepted = handle.send(Target::World, "hello over udp").await.expect("send");
    assert_eq!(accepted.transport, Transport::Udp);
    assert_eq!(accepted.to, Target::World);
    assert_eq!(server.chats_over(Transport::Udp), 1);
    assert_eq!(server.chats_over(Transport::Tcp), 0);
    let stored = server.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].id, stored[0].text.as_str()), (accepted.id, "hello over udp"));
    assert_eq!(stored[0].sent_at_ms, accepted.sent_at_ms);
    let event = wait_for(&mut events, "Accepted event", |e| matches!(e, ClientEvent::Accepted(_))).await;
    assert_eq!(event, ClientEvent::Accepted(accepted));
}

#[tokio::test]
async fn a_send_during_the_probe_waits_for_it_and_goes_over_udp() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, _events) = logged_in(config(&server, &dir), "ann").await;
    let accepted = handle.send(Target::World, "right after login").await.expect("send");
    assert_eq!(accepted.transport, Transport::Udp);
}

#[tokio::test]
async fn a_send_over_tcp_resolves_on_chat_accepted() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    server.add_user("bob", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&server, &dir);
    config.transport = Transport::Tcp;
    let (handle, _events) = logged_in(config, "ann").await;
    let accepted = handle.send(Target::User(user("bob")), "hi bob\r\nover tcp").await.expect("send");
    assert_eq!(accepted.transport, Transport::Tcp);
    assert_eq!(server.use_transport_requests(), [Transport::Tcp]);
    assert_eq!(server.chats_over(Transport::Tcp), 1);
    assert_eq!(server.messages()[0].text, "hi bob\nover tcp", "line endings normalised before sending");
}

#[tokio::test]
async fn incoming_messages_arrive_as_events_on_both_transports() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let (_udp_handle, mut udp_events) = logged_in(config(&server, &dir), "ann").await;
    wait_for(&mut udp_events, "UDP confirmed", |e| matches!(e, ClientEvent::TransportChanged { .. })).await;
    let mut tcp_config = config(&server, &dir);
    tcp_config.transport = Transport::Tcp;
    let (_tcp_handle, mut tcp_events) = logged_in(tcp_config, "ann").await;

    let sent = server.inject("bob", Target::World, "你好, world");
    for events in [&mut udp_events, &mut tcp_events] {
        let event = wait_for(events, "the message", |e| matches!(e, ClientEvent::Message { .. })).await;
        assert_eq!(event, ClientEvent::Message { message: sent.clone(), source: MessageSource::Live });
    }
}

#[tokio::test]
async fn refusals_carry_clear_errors() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, _events) = logged_in(config(&server, &dir), "ann").await;
    let err = handle.send(Target::World, &"x".repeat(5000)).await.expect_err("too long");
    assert_eq!(err, ClientError::TextTooLong { len: 5000, max: 4096 });
    let err = handle.send(Target::World, "bell \u{7}").await.expect_err("control character");
    assert!(matches!(err, ClientError::TextInvalid { .. }), "{err:?}");
    let err = handle.send(Target::User(user("nobody")), "hi").await.expect_err("unknown user");
    assert!(matches!(&err, ClientError::UnknownUser { message } if message.contains("nobody")), "{err:?}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn history_users_presence_and_sync() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    server.add_user("bob", "pw");
    for text in ["one", "two", "three"] {
        server.inject("bob", Target::World, text);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ann_config = config(&server, &dir);
    ann_config.sync_on_login = true;
    let (ann, mut ann_events) = logged_in(ann_config, "ann").await;
    let synced = wait_for(&mut ann_events, "the login sync", |e| matches!(e, ClientEvent::Synced { .. })).await;
    assert_eq!(synced, ClientEvent::Synced { messages: 3 });

    let page = ann.history(Target::World, None, 2).await.expect("history");
    let texts: Vec<_> = page.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["two", "three"], "newest two, oldest first");
    assert!(page.more);
    let older = ann.history(Target::World, Some(page.messages[0].id), 2).await.expect("older");
    assert_eq!(older.messages.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["one"]);
    assert!(!older.more);
    let err = ann.history(Target::World, None, 0).await.expect_err("zero limit");
    assert!(matches!(err, ClientError::Rejected { .. }), "{err:?}");

    let (_bob, _bob_events) = logged_in(config(&server, &dir), "bob").await;
    let presence = wait_for(&mut ann_events, "presence", |e| matches!(e, ClientEvent::Presence { .. })).await;
    assert_eq!(presence, ClientEvent::Presence { user: user("bob"), online: true });
    assert_eq!(ann.users().await.expect("users"), [user("ann"), user("bob")]);

    server.inject("bob", Target::User(user("ann")), "private");
    wait_for(&mut ann_events, "the private message", |e| matches!(e, ClientEvent::Message { .. })).await;
    assert_eq!(ann.sync().await.expect("sync"), 0, "nothing new: the push was already seen");
}

#[tokio::test]
async fn statistics_cover_both_transports() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, mut events) = logged_in(config(&server, &dir), "ann").await;
    wait_for(&mut events, "UDP confirmed", |e| matches!(e, ClientEvent::TransportChanged { .. })).await;
    handle.send(Target::World, "count me").await.expect("send");
    let stats = handle.stats().await.expect("stats");
    assert_eq!(stats.transport, Some(Transport::Udp));
    let udp = stats.udp.expect("UDP statistics");
    assert!(udp.sent.packets >= 2 && udp.sent.messages == 1 && udp.received.packets >= 1, "{udp:?}");
    assert!(!stats.udp_rtt_history.is_empty());
    assert!(stats.tcp.frames_sent >= 2 && stats.tcp.frames_received >= 2, "{:?}", stats.tcp);
    assert!(stats.tcp.bytes_sent > 0 && stats.tcp.bytes_received > 0);
    #[cfg(target_os = "linux")]
    assert!(stats.tcp.kernel.is_some_and(|k| k.rto_us >= 200_000), "{:?}", stats.tcp.kernel);
    handle.logout().await.expect("logout");
    let err = handle.send(Target::World, "after logout").await.expect_err("logged out");
    assert_eq!(err, ClientError::NotLoggedIn);
}

#[tokio::test]
async fn statistics_arrive_periodically_when_asked_for() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&server, &dir);
    config.stats_interval = Some(std::time::Duration::from_millis(100));
    let (_handle, mut events) = logged_in(config, "ann").await;
    let event = wait_for(&mut events, "a statistics event", |e| matches!(e, ClientEvent::Stats(_))).await;
    let ClientEvent::Stats(stats) = event else { unreachable!() };
    assert!(stats.tcp.frames_sent >= 2, "{stats:?}");
}
