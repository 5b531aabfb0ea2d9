//! Losing the TCP connection: fail fast (chat messages excepted, see `outbox.rs`), reconnect with back-off, log in
//! again, resync.

use chatlab_client::{ClientError, ClientEvent, MessageSource, Target};

use crate::fake_server::{FakeServer, Options};
use crate::support::{config, eventually, logged_in, wait_for};

#[tokio::test]
async fn a_dropped_connection_reconnects_with_backoff_and_resyncs() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, mut events) = logged_in(config(&server, &dir), "ann").await;
    let mine = handle.send(Target::World, "before the outage").await.expect("send");

    server.set_refusing(true);
    server.drop_connections();
    let event = wait_for(&mut events, "the drop", |e| matches!(e, ClientEvent::Disconnected { .. })).await;
    let ClientEvent::Disconnected { reason } = event else { unreachable!() };
    assert!(reason.contains("closed"), "{reason}");
    eventually("the session to end on the server", || server.online().is_empty()).await;
    let missed = server.inject("bob", Target::World, "said during the outage");

    // Refused attempts back off: the waits grow from the configured minimum.
    let mut delays = Vec::new();
    while delays.len() < 3 {
        if let ClientEvent::Reconnecting { attempt, delay } =
            wait_for(&mut events, "an attempt", |e| matches!(e, ClientEvent::Reconnecting { .. })).await
        {
            assert_eq!(attempt as usize, delays.len() + 1);
            delays.push(delay);
        }
    }
    assert!(delays[1] >= delays[0] && delays[2] >= delays[1], "{delays:?}");
    let err = handle.users().await.expect_err("requests other than chat fail fast");
    assert!(matches!(&err, ClientError::Disconnected { reason } if reason.contains("reconnecting")), "{err:?}");

    server.set_refusing(false);
    wait_for(&mut events, "reconnected", |e| *e == ClientEvent::Reconnected).await;
    let event = wait_for(&mut events, "the missed message", |e| matches!(e, ClientEvent::Message { .. })).await;
    assert_eq!(event, ClientEvent::Message { message: missed, source: MessageSource::Sync });
    assert_eq!(server.logins(), 2);
    let synced = wait_for(&mut events, "sync end", |e| matches!(e, ClientEvent::Synced { .. })).await;
    assert_eq!(synced, ClientEvent::Synced { messages: 1 }, "only what was missed, not our own message {}", mine.id);
    let after = handle.send(Target::World, "after the outage").await.expect("send after reconnect");
    assert!(after.id > mine.id);
}

#[tokio::test]
async fn a_server_that_hangs_is_detected_by_the_heartbeat() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&server, &dir);
    config.heartbeat_interval = std::time::Duration::from_millis(100);
    config.heartbeat_timeout = std::time::Duration::from_millis(300);
    config.reconnect = false;
    let (handle, mut events) = logged_in(config, "ann").await;
    server.set_silent(true);
    let event = wait_for(&mut events, "the drop", |e| matches!(e, ClientEvent::Disconnected { .. })).await;
    assert_eq!(event, ClientEvent::Disconnected { reason: "no answer from the server for 300 ms".into() });
    let err = handle.users().await.expect_err("down, not reconnecting");
    assert_eq!(err, ClientError::Disconnected { reason: "no answer from the server for 300 ms".into() });
}

#[tokio::test]
async fn a_login_refused_after_a_reconnect_is_reported_and_not_retried() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, mut events) = logged_in(config(&server, &dir), "ann").await;
    server.add_user("ann", "changed by the teacher");
    server.drop_connections();
    let event = wait_for(&mut events, "the refusal", |e| matches!(e, ClientEvent::Error(_))).await;
    assert_eq!(event, ClientEvent::Error(ClientError::BadCredentials));
    assert_eq!(handle.send(Target::World, "hi").await.expect_err("logged out"), ClientError::NotLoggedIn);
    handle.login("ann", chatlab_client::Password::new("changed by the teacher")).await.expect("a fresh login works");
}
