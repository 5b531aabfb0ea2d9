//! The sync cursor: ids overtake each other across UDP streams, so a reconnect or a fall-back must not sync from
//! the largest id seen, or a message still in flight (or stranded with a dead UDP path) is skipped for ever.

use chatlab_client::{ClientEvent, MessageSource, Target, Transport, Username};

use crate::fake_server::{FakeServer, Options};
use crate::support::{config, eventually, logged_in, wait_for};

/// Messages the login sync brings before the live ones.
const BEFORE_LOGIN: usize = 4;

#[tokio::test]
async fn a_message_overtaken_on_another_stream_is_not_skipped_after_a_reconnect() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    for i in 0..BEFORE_LOGIN {
        server.inject("bob", Target::World, &format!("old {i}"));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&server, &dir);
    config.sync_on_login = true;
    let (_handle, mut events) = logged_in(config, "ann").await;
    wait_for(&mut events, "the login sync", |e| matches!(e, ClientEvent::Synced { .. })).await;
    wait_for(&mut events, "UDP confirmed", |e| {
        matches!(e, ClientEvent::TransportChanged { transport: Transport::Udp, .. })
    })
    .await;

    // 5 arrives on the world stream, 6 is lost in flight, 7 overtakes it on the private stream.
    let ann = Target::User(Username::parse("ann").expect("valid"));
    let five = server.inject("bob", Target::World, "five");
    let six = server.store_unpushed("carl", ann.clone(), "six, lost in flight");
    let seven = server.inject("carl", ann, "seven");
    assert_eq!((five.id, six.id, seven.id), (5, 6, 7));
    for id in [five.id, seven.id] {
        wait_for(
            &mut events,
            "a live message",
            |e| matches!(e, ClientEvent::Message { message, .. } if message.id == id),
        )
        .await;
    }

    let syncs_before = server.sync_requests().len();
    server.drop_connections();
    wait_for(&mut events, "reconnected", |e| *e == ClientEvent::Reconnected).await;
    let event = wait_for(&mut events, "the missed message", |e| matches!(e, ClientEvent::Message { .. })).await;
    assert_eq!(event, ClientEvent::Message { message: six, source: MessageSource::Sync });
    let synced = wait_for(&mut events, "sync end", |e| matches!(e, ClientEvent::Synced { .. })).await;
    assert_eq!(synced, ClientEvent::Synced { messages: 1 }, "5 and 7 came again and were dropped as duplicates");
    eventually("the reconnect sync", || server.sync_requests().len() > syncs_before).await;
    let after = server.sync_requests()[syncs_before];
    assert!(after <= five.id, "the reconnect sync asked for messages after {after}, skipping 6");
}
