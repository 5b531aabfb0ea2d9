//! `Received`: what the client confirms when a message reaches it over TCP.
//!
//! Over TCP nothing below the application tells the server that a pushed message reached the user, so the client
//! reports it with `Received` and the server turns that into a `Receipt` for the sender. Receipts exist only for
//! private messages to the reader; everything else would be a report the server reads and throws away.

use chatlab_client::{ClientEvent, MessageSource, Target, Transport};

use crate::fake_server::{FakeServer, Options};
use crate::support::{config, eventually, logged_in, user, wait_for};

/// The bug: every message pushed over TCP was confirmed with `Received`, world messages and the user's own (echoed
/// from another session) included, so a busy world room cost the server one useless report per message per reader.
#[tokio::test]
async fn world_pushes_over_tcp_were_confirmed_with_received() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    server.add_user("bob", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&server, &dir);
    config.transport = Transport::Tcp;
    let (_handle, mut events) = logged_in(config, "ann").await;

    let world = server.inject("bob", Target::World, "to the whole room");
    let mine = server.inject("ann", Target::User(user("bob")), "sent from my other session");
    let private = server.inject("bob", Target::User(user("ann")), "to ann alone");
    for expected in [&world, &mine, &private] {
        let event = wait_for(&mut events, "a pushed message", |e| matches!(e, ClientEvent::Message { .. })).await;
        assert_eq!(event, ClientEvent::Message { message: expected.clone(), source: MessageSource::Live });
    }
    // TCP keeps order and the fake server reads in order: once the last report is in, any earlier one would be too.
    eventually("the private message confirmed", || server.received_reports().contains(&private.id)).await;
    assert_eq!(server.received_reports(), [private.id], "only the private message to ann is confirmed");
}

/// The bug: every private message pushed over TCP got a `Received` of its own. A burst (a classmate blasting
/// thousands of messages) made the recipient write one report per message and the server spend a storage write and
/// a token of its report budget on each: reports over the budget were ignored, so those messages came again at the
/// next login, and the recipient, busy writing, was disconnected as a slow reader. Reports now go in batches; this
/// pins that batching loses no receipt and names none twice.
#[tokio::test]
async fn a_burst_of_private_messages_is_confirmed_whole_and_once_by_batched_reports() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    server.add_user("bob", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&server, &dir);
    config.transport = Transport::Tcp;
    let (_handle, mut events) = logged_in(config, "ann").await;

    let burst: Vec<u64> =
        (0..1500).map(|i| server.inject("bob", Target::User(user("ann")), &format!("burst {i}")).id).collect();
    let last = burst.last().copied();
    let last_arrived = |e: &ClientEvent| matches!(e, ClientEvent::Message { message, .. } if Some(message.id) == last);
    wait_for(&mut events, "the last message of the burst", last_arrived).await;
    eventually("every message confirmed", || server.received_reports().len() >= burst.len()).await;
    assert_eq!(server.received_reports(), burst, "each message confirmed once, in order");
}
