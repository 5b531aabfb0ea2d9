//! Losing the TCP connection: fail fast, reconnect with back-off, log in again, resync.

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
    let err = handle.send(Target::World, "while down").await.expect_err("no silent queueing");
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
