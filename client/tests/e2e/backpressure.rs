//! Waiting for room, and giving up on it: `send` waits instead of refusing, a caller may cancel while it waits and
//! the message is then never sent, a wait that runs out says so, and a message whose caller stopped waiting after
//! it went out still has its outcome reported (issue 9, item 7).
//!
//! A window of one message and ann's own outgoing datagrams all lost make "the window is full" last exactly as
//! long as a test wants: nothing ann sends is acknowledged until the loss is switched off.

use std::time::Duration;

use chatlab_client::{ClientConfig, ClientError, ClientEvent, ClientHandle, Target, Transport, Username};
use chatlab_proto::impair::{ImpairmentConfig, LossModel};
use tokio::sync::mpsc;

use crate::blast::unthrottled_server;
use crate::support::*;

/// Request timeout of the tests that wait for a wait to run out: short, so they run quickly.
const SHORT_TIMEOUT: Duration = Duration::from_millis(1500);

fn bob() -> Target {
    Target::User(Username::parse("bob").expect("valid"))
}

fn everything_lost() -> ImpairmentConfig {
    ImpairmentConfig { loss: LossModel::Bernoulli { p: 1.0 }, ..ImpairmentConfig::default() }
}

/// Ann with a send window of one message, on confirmed UDP, with `tweak` applied to her configuration; and bob.
async fn ann_and_bob(
    config: ClientConfig,
    tweak: impl FnOnce(&mut ClientConfig),
) -> (ClientHandle, mpsc::Receiver<ClientEvent>, ClientHandle, mpsc::Receiver<ClientEvent>) {
    let mut ann_config = config.clone();
    ann_config.engine.send_window = 1;
    tweak(&mut ann_config);
    let (ann, mut ann_events) = user(ann_config, "ann").await;
    let udp = |e: &ClientEvent| matches!(e, ClientEvent::TransportChanged { transport: Transport::Udp, .. });
    wait_for(&mut ann_events, "ann's UDP confirmed", udp).await;
    let (bob, bob_events) = user(config, "bob").await;
    (ann, ann_events, bob, bob_events)
}

/// Bob's messages up to and including the one with text `last`.
async fn texts_until(events: &mut mpsc::Receiver<ClientEvent>, last: &str) -> Vec<String> {
    let mut texts = Vec::new();
    while texts.last().is_none_or(|text| text != last) {
        match wait_for(events, last, |e| matches!(e, ClientEvent::Message { .. })).await {
            ClientEvent::Message { message, .. } => texts.push(message.text),
            _ => unreachable!("wait_for returns a matching event"),
        }
    }
    texts
}

#[tokio::test]
async fn a_send_cancelled_while_it_waits_for_room_is_never_sent_and_the_others_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = unthrottled_server(dir.path()).await;
    let config = client_config(server.local_addr(), dir.path());
    let (ann, _ann_events, _bob, mut bob_events) = ann_and_bob(config, |_| {}).await;
    ann.set_impairment(everything_lost(), ImpairmentConfig::default()).await.unwrap();

    // "first" fills the window of one; everything after it waits for room.
    let first = ann.queue(bob(), "first").await.expect("queued");
    let dropped = ann.queue(bob(), "dropped while waiting").await.expect("queued");
    let second = ann.queue(bob(), "second").await.expect("queued");
    drop(dropped);
    // The caller's own timeout cancels the same way.
    let timed_out = tokio::time::timeout(Duration::from_millis(200), ann.send(bob(), "timed out while waiting")).await;
    assert!(timed_out.is_err(), "no room, so no acceptance: {timed_out:?}");
    let third = ann.queue(bob(), "third").await.expect("queued");

    ann.set_impairment(ImpairmentConfig::default(), ImpairmentConfig::default()).await.unwrap();
    for sending in [first, second, third] {
        sending.accepted().await.expect("accepted once the window had room");
    }
    assert_eq!(texts_until(&mut bob_events, "third").await, ["first", "second", "third"]);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_message_that_finds_no_room_in_time_fails_with_no_room_and_is_never_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = unthrottled_server(dir.path()).await;
    let config = client_config(server.local_addr(), dir.path());
    let (ann, mut ann_events, _bob, mut bob_events) =
        ann_and_bob(config, |config| config.request_timeout = SHORT_TIMEOUT).await;
    ann.set_impairment(everything_lost(), ImpairmentConfig::default()).await.unwrap();

    let first = ann.queue(bob(), "lost in flight").await.expect("queued");
    let err = ann.send(bob(), "never found room").await.expect_err("the window never had room");
    assert_eq!(err, ClientError::NoRoom { waited: SHORT_TIMEOUT });
    assert!(err.to_string().ends_with("this one was not sent"), "{err}");
    // The message that did go out had no answer either: it may be stored, and its error does not say otherwise.
    let err = first.accepted().await.expect_err("no acknowledgement through a dead path");
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    let reported = |e: &ClientEvent| matches!(e, ClientEvent::SendFailed { to, error: ClientError::NoRoom { .. }, .. } if *to == bob());
    wait_for(&mut ann_events, "the failure on the event stream", reported).await;

    ann.set_impairment(ImpairmentConfig::default(), ImpairmentConfig::default()).await.unwrap();
    ann.send(bob(), "after the outage").await.expect("accepted");
    let texts = texts_until(&mut bob_events, "after the outage").await;
    assert!(!texts.iter().any(|text| text == "never found room"), "a message that failed with NoRoom arrived");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_send_waits_for_room_in_the_send_queue_and_gives_up_with_no_room() {
    let dir = tempfile::tempdir().unwrap();
    let server = unthrottled_server(dir.path()).await;
    let config = client_config(server.local_addr(), dir.path());
    // A send queue of one message.
    let (ann, _ann_events, _bob, mut bob_events) = ann_and_bob(config, |config| {
        config.send_queue_messages = 1;
        config.request_timeout = SHORT_TIMEOUT;
    })
    .await;

    // With a working path the second message waits for the first one's acceptance, then goes.
    let first = ann.queue(bob(), "one").await.expect("room for one");
    let second = ann.queue(bob(), "two").await.expect("room once the first was accepted");
    first.accepted().await.expect("accepted");
    second.accepted().await.expect("accepted");

    // With a dead path the room never comes back, and the wait for it ends in NoRoom with nothing sent.
    ann.set_impairment(everything_lost(), ImpairmentConfig::default()).await.unwrap();
    let stuck = ann.queue(bob(), "stuck").await.expect("room for one");
    let err = ann.queue(bob(), "no room").await.expect_err("the send queue is full");
    assert_eq!(err, ClientError::NoRoom { waited: SHORT_TIMEOUT });
    drop(stuck);
    ann.set_impairment(ImpairmentConfig::default(), ImpairmentConfig::default()).await.unwrap();
    ann.send(bob(), "last").await.expect("accepted");
    let texts = texts_until(&mut bob_events, "last").await;
    assert!(!texts.iter().any(|text| text == "no room"), "a refused message arrived");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_message_whose_caller_stopped_waiting_after_it_went_out_is_reported_on_the_event_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = unthrottled_server(dir.path()).await;
    let config = client_config(server.local_addr(), dir.path());
    let (ann, mut ann_events, _bob, mut bob_events) = ann_and_bob(config, |_| {}).await;
    ann.set_impairment(everything_lost(), ImpairmentConfig::default()).await.unwrap();

    let sending = ann.queue(bob(), "out of the door").await.expect("queued");
    // Once the engine sent it (and the loss ate it), the message cannot be called back.
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    while ann.stats().await.unwrap().udp.is_none_or(|udp| udp.sent.messages < 1) {
        assert!(tokio::time::Instant::now() < deadline, "the message never went out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(sending);
    ann.set_impairment(ImpairmentConfig::default(), ImpairmentConfig::default()).await.unwrap();

    let message = wait_message(&mut bob_events, "out of the door").await;
    let accepted = |e: &ClientEvent| matches!(e, ClientEvent::Accepted(a) if a.id == message.id);
    wait_for(&mut ann_events, "the acceptance on the event stream", accepted).await;
    server.shutdown().await.unwrap();
}
