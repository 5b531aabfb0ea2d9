//! The outbox: chat messages sent while the connection is down (or in flight when it broke) wait, and go out after
//! the reconnect, each stored exactly once; the bounds and the final failures say why.

use std::time::Duration;

use chatlab_client::{ClientConfig, ClientError, ClientEvent, ClientHandle, Target, Transport};
use tempfile::TempDir;
use tokio::sync::mpsc;

use crate::fake_server::{FakeServer, Options};
use crate::support::{config, logged_in, wait_for};

/// ann, logged in to a fake server of her own.
struct Ann {
    server: FakeServer,
    handle: ClientHandle,
    events: mpsc::Receiver<ClientEvent>,
    /// Holds the known-servers file; removed when the test ends.
    _dir: TempDir,
}

/// Starts a fake server with the account ann/pw and logs ann in, with the test configuration changed by `tune`.
async fn ann(tune: impl FnOnce(&mut ClientConfig)) -> Ann {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&server, &dir);
    tune(&mut config);
    let (handle, events) = logged_in(config, "ann").await;
    Ann { server, handle, events, _dir: dir }
}

/// Breaks every connection of `server` and waits until the client noticed.
async fn drop_connection(server: &FakeServer, events: &mut mpsc::Receiver<ClientEvent>) {
    server.drop_connections();
    wait_for(events, "the drop", |e| matches!(e, ClientEvent::Disconnected { .. })).await;
}

/// Returns once the core has handled every command sent before: commands are handled in order, and a user list
/// asked for while the session is being restored is refused at once.
async fn barrier(handle: &ClientHandle) {
    let _ = handle.users().await;
}

/// Regression: a message sent while the client was reconnecting failed at once with `Disconnected`, so the window
/// marked it failed although the session came back a moment later.
#[tokio::test]
async fn a_message_sent_while_disconnected_is_sent_after_the_reconnect_not_failed() {
    let Ann { server, handle, mut events, _dir } = ann(|_| {}).await;
    server.set_refusing(true);
    drop_connection(&server, &mut events).await;

    let sending = tokio::spawn({
        let handle = handle.clone();
        async move { handle.send(Target::World, "typed during the outage").await }
    });
    let later = tokio::spawn({
        let handle = handle.clone();
        async move { handle.send(Target::World, "and a second one").await }
    });
    barrier(&handle).await;
    // Refused attempts go on; the messages wait rather than fail.
    for _ in 0..2 {
        wait_for(&mut events, "an attempt", |e| matches!(e, ClientEvent::Reconnecting { .. })).await;
    }
    assert!(!sending.is_finished() && !later.is_finished(), "kept, neither accepted nor failed");
    assert!(server.stored_with_text("typed during the outage").is_empty());

    server.set_refusing(false);
    wait_for(&mut events, "reconnected", |e| *e == ClientEvent::Reconnected).await;
    let first = sending.await.expect("task").expect("accepted after the reconnect");
    let second = later.await.expect("task").expect("accepted after the reconnect");
    assert!(first.id < second.id, "sent in the order asked: {} then {}", first.id, second.id);
    assert_eq!(server.stored_with_text("typed during the outage").len(), 1);
    assert_eq!(server.stored_with_text("and a second one").len(), 1);
    assert_eq!(server.logins(), 2);
}

/// The acceptance of a stored message is lost with the connection: the resend under the same client_msg_id is
/// recognised by the server, so the message is accepted once with its first id and stored once.
#[tokio::test]
async fn a_message_in_flight_when_the_connection_dies_is_accepted_exactly_once_after_the_reconnect() {
    let Ann { server, handle, mut events, _dir } = ann(|config| {
        config.transport = Transport::Tcp;
    })
    .await;
    server.swallow_next_chat();

    let accepted = handle.send(Target::World, "stored, answer lost").await.expect("accepted after the reconnect");
    let stored = server.stored_with_text("stored, answer lost");
    assert_eq!(stored.len(), 1, "stored exactly once: {stored:?}");
    assert_eq!(accepted.id, stored[0].id, "the resend is answered with the first copy's id");
    assert_eq!(server.duplicates(), 1, "the message was sent twice under one client_msg_id");
    assert_eq!(server.logins(), 2);
    wait_for(&mut events, "the event", |e| matches!(e, ClientEvent::Accepted(a) if a.id == accepted.id)).await;
}

/// A message sent over UDP whose datagrams never got through when the connection died goes out again over the new
/// session's UDP path once its probe confirmed it.
#[tokio::test]
async fn a_message_in_flight_over_udp_is_sent_again_after_the_reconnect() {
    let Ann { server, handle, mut events, _dir } = ann(|_| {}).await;
    wait_for(&mut events, "UDP confirmed", |e| {
        matches!(e, ClientEvent::TransportChanged { transport: Transport::Udp, .. })
    })
    .await;
    server.set_answer_udp(false);
    let sending = tokio::spawn({
        let handle = handle.clone();
        async move { handle.send(Target::World, "lost in a black hole").await }
    });
    barrier(&handle).await;
    drop_connection(&server, &mut events).await;
    server.set_answer_udp(true);
    wait_for(&mut events, "reconnected", |e| *e == ClientEvent::Reconnected).await;
    let accepted = sending.await.expect("task").expect("accepted after the reconnect");
    assert_eq!(accepted.transport, Transport::Udp, "held for the new probe, then sent over UDP");
    assert_eq!(server.stored_with_text("lost in a black hole").len(), 1);
}

/// A server going down for a restart refuses chat with `ServerShuttingDown`: nothing was stored, so the message is
/// kept and sent to the server that comes back, not failed.
#[tokio::test]
async fn a_message_refused_because_the_server_is_shutting_down_is_sent_after_the_reconnect() {
    let Ann { server, handle, events: _events, _dir } = ann(|config| {
        config.transport = Transport::Tcp;
    })
    .await;
    server.shut_down_at_next_chat();
    let accepted = handle.send(Target::World, "during the restart").await.expect("accepted after the reconnect");
    let stored = server.stored_with_text("during the restart");
    assert_eq!(stored.iter().map(|m| m.id).collect::<Vec<_>>(), [accepted.id]);
    assert_eq!((server.logins(), server.duplicates()), (2, 0), "refused the first time, stored the second");
}

#[tokio::test]
async fn a_full_outbox_refuses_the_next_message_at_once() {
    let Ann { server, handle, mut events, _dir } = ann(|config| {
        config.outbox_capacity = 2;
    })
    .await;
    server.set_refusing(true);
    drop_connection(&server, &mut events).await;

    // Joined futures are first polled in order, so the commands reach the core in this order.
    let (one, two, three) = tokio::join!(handle.send(Target::World, "one"), handle.send(Target::World, "two"), async {
        let refused = handle.send(Target::World, "three").await;
        server.set_refusing(false);
        refused
    });
    assert_eq!(three, Err(ClientError::OutboxFull { queued: 2 }));
    assert!(one.is_ok() && two.is_ok(), "the two kept went out: {one:?} {two:?}");
    assert!(server.stored_with_text("three").is_empty());
}

#[tokio::test]
async fn a_message_that_waits_longer_than_allowed_fails_saying_the_connection_did_not_come_back() {
    let Ann { server, handle, mut events, _dir } = ann(|config| {
        config.outbox_max_wait = Duration::from_millis(300);
    })
    .await;
    server.set_refusing(true);
    drop_connection(&server, &mut events).await;
    let err = handle.send(Target::World, "too late").await.expect_err("the connection stayed away");
    assert_eq!(err, ClientError::OutboxExpired { waited: Duration::from_millis(300), maybe_stored: false });
    assert_eq!(err.to_string(), "the connection did not come back within 300 ms; the message was not sent");
    server.set_refusing(false);
    wait_for(&mut events, "reconnected", |e| *e == ClientEvent::Reconnected).await;
    assert!(server.stored_with_text("too late").is_empty(), "a message given up is not sent later");
    handle.send(Target::World, "on time").await.expect("sending works again");
}

#[tokio::test]
async fn a_permanent_reconnect_failure_fails_the_outbox_with_its_reason() {
    let Ann { server, handle, mut events, _dir } = ann(|_| {}).await;
    server.set_refusing(true);
    drop_connection(&server, &mut events).await;
    let sending = tokio::spawn({
        let handle = handle.clone();
        async move { handle.send(Target::World, "to an upgraded server").await }
    });
    barrier(&handle).await;
    server.set_refusing_version(true);
    server.set_refusing(false);
    let err = sending.await.expect("task").expect_err("reconnecting cannot succeed");
    assert!(matches!(&err, ClientError::VersionMismatch { message } if message.contains("version 2")), "{err:?}");
    let event = wait_for(&mut events, "the final error", |e| matches!(e, ClientEvent::Error(_))).await;
    assert_eq!(event, ClientEvent::Error(err));
    let refused = handle.send(Target::World, "after giving up").await.expect_err("nothing waits any more");
    assert!(matches!(refused, ClientError::Disconnected { .. }), "{refused:?}");
}

#[tokio::test]
async fn a_refused_automatic_login_fails_the_outbox_with_the_refusal() {
    let Ann { server, handle, mut events, _dir } = ann(|_| {}).await;
    server.set_refusing(true);
    drop_connection(&server, &mut events).await;
    let sending = tokio::spawn({
        let handle = handle.clone();
        async move { handle.send(Target::World, "password changed meanwhile").await }
    });
    barrier(&handle).await;
    server.add_user("ann", "changed by the teacher");
    server.set_refusing(false);
    assert_eq!(sending.await.expect("task"), Err(ClientError::BadCredentials));
    assert!(server.stored_with_text("password changed meanwhile").is_empty());
}

/// Regression: an automatic login that got no answer was dropped silently, leaving the client connected, logged
/// out and never trying again, so the outbox would have waited for nothing.
#[tokio::test]
async fn an_unanswered_automatic_login_is_tried_again_and_the_outbox_still_goes_out() {
    let Ann { server, handle, mut events, _dir } = ann(|config| {
        config.request_timeout = Duration::from_millis(500);
    })
    .await;
    server.set_ignoring_logins(true);
    drop_connection(&server, &mut events).await;
    let sending = tokio::spawn({
        let handle = handle.clone();
        async move { handle.send(Target::World, "through a slow login").await }
    });
    let event = wait_for(
        &mut events,
        "the login given up",
        |e| matches!(e, ClientEvent::Disconnected { reason } if reason.contains("logging in again")),
    )
    .await;
    assert_eq!(event, ClientEvent::Disconnected { reason: "no answer to logging in again within 500 ms".into() });
    server.set_ignoring_logins(false);
    wait_for(&mut events, "reconnected", |e| *e == ClientEvent::Reconnected).await;
    sending.await.expect("task").expect("accepted after the login was answered");
    assert_eq!(server.stored_with_text("through a slow login").len(), 1);
}

#[tokio::test]
async fn without_reconnecting_a_message_in_flight_fails_with_the_connection() {
    let Ann { server, handle, events: _events, _dir } = ann(|config| {
        config.transport = Transport::Tcp;
        config.reconnect = false;
    })
    .await;
    server.swallow_next_chat();
    let err = handle.send(Target::World, "into the void").await.expect_err("nothing will bring it back");
    assert!(matches!(&err, ClientError::Disconnected { reason } if reason.contains("closed")), "{err:?}");
    let err = handle.send(Target::World, "and after").await.expect_err("not reconnecting");
    assert!(matches!(err, ClientError::Disconnected { .. }), "{err:?}");
}

/// Regression: an automatic login refused with a code the client does not know to be final (here one a newer
/// server might send) dropped the credentials while the window, which only leaves the chat for final refusals,
/// kept showing a chat that was no longer logged in. It is retried now, and the outbox goes out once it succeeds.
#[tokio::test]
async fn a_refused_automatic_login_with_a_code_not_known_to_be_final_is_tried_again() {
    let Ann { server, handle, mut events, _dir } = ann(|_| {}).await;
    server.set_login_refusal(Some(chatlab_proto::control::ErrorCode::Unknown(999)));
    drop_connection(&server, &mut events).await;
    let sending = tokio::spawn({
        let handle = handle.clone();
        async move { handle.send(Target::World, "after an odd refusal").await }
    });
    let event = wait_for(&mut events, "the refusal, retried", |e| {
        matches!(e, ClientEvent::Disconnected { reason } if reason.contains("logging in again failed"))
            || matches!(e, ClientEvent::Error(_))
    })
    .await;
    assert!(matches!(event, ClientEvent::Disconnected { .. }), "retried, not given up: {event:?}");
    server.set_login_refusal(None);
    wait_for(&mut events, "reconnected", |e| *e == ClientEvent::Reconnected).await;
    sending.await.expect("task").expect("accepted once the login went through");
    assert_eq!(server.stored_with_text("after an odd refusal").len(), 1);
}

/// Regression: a transport switch asked for while the session was being restored was remembered and answered
/// "done", but nothing reported the switch once the session was back, so the window's switch spun for ever and
/// showed the wrong transport. It is refused now with the reason, and the session comes back on the transport it had.
#[tokio::test]
async fn a_transport_switch_while_the_session_is_restored_is_refused_not_left_pending() {
    let Ann { server, handle, mut events, _dir } = ann(|config| {
        config.transport = Transport::Tcp;
        config.request_timeout = Duration::from_millis(500);
    })
    .await;
    server.set_ignoring_logins(true);
    drop_connection(&server, &mut events).await;
    let refused = handle.set_transport(Transport::Udp).await;
    assert!(matches!(refused, Err(ClientError::Disconnected { .. })), "{refused:?}");
    server.set_ignoring_logins(false);
    wait_for(&mut events, "reconnected", |e| *e == ClientEvent::Reconnected).await;
    handle.send(Target::World, "still over TCP").await.expect("accepted");
    assert_eq!(server.chats_over(Transport::Udp), 0, "the refused switch changed nothing");
}

/// Regression: logging out while the client was between two connection attempts failed with `Disconnected` but
/// kept the credentials and the outbox, so the client logged in again by itself and sent what was queued.
#[tokio::test]
async fn logging_out_while_reconnecting_stops_the_automatic_login_and_the_outbox() {
    let Ann { server, handle, mut events, _dir } = ann(|_| {}).await;
    server.set_refusing(true);
    drop_connection(&server, &mut events).await;
    let sending = tokio::spawn({
        let handle = handle.clone();
        async move { handle.send(Target::World, "never mind").await }
    });
    barrier(&handle).await;
    handle.logout().await.expect("logging out needs no server");
    assert_eq!(sending.await.expect("task"), Err(ClientError::NotLoggedIn));
    let logins = server.logins();
    server.set_refusing(false);
    wait_for(&mut events, "reconnected", |e| *e == ClientEvent::Reconnected).await;
    assert_eq!(server.logins(), logins, "no automatic login after the logout");
    assert!(server.stored_with_text("never mind").is_empty());
}
