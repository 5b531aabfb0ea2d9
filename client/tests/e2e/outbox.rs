//! The outbox against the real server: a message sent while the server restarts waits, is stored exactly once by the
//! restarted server and reaches the other user.

use chatlab_client::{ClientEvent, Target};

use crate::support::*;

/// Regression: a message sent while the client was reconnecting failed at once instead of waiting for the server
/// to come back.
#[tokio::test]
async fn a_message_sent_while_the_server_restarts_is_stored_once_and_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), None).await;
    let addr = server.local_addr();
    let config = client_config(addr, dir.path());
    let (ann, mut ann_events) = user(config.clone(), "ann").await;
    let (bob, mut bob_events) = user(config, "bob").await;
    ann.send(Target::World, "before the restart").await.unwrap();
    wait_message(&mut bob_events, "before the restart").await;

    server.shutdown().await.unwrap();
    wait_for(&mut ann_events, "ann's drop", |e| matches!(e, ClientEvent::Disconnected { .. })).await;
    let text = "sent while the server was down";
    let sending = tokio::spawn({
        let ann = ann.clone();
        async move { ann.send(Target::World, text).await }
    });
    // Commands are handled in order: once the user list is refused, the message is in the outbox.
    let _ = ann.users().await;
    assert!(!sending.is_finished(), "the message waits for the server");

    let server = start_server(dir.path(), Some(addr)).await;
    let accepted = sending.await.unwrap().expect("accepted by the restarted server");
    let delivered = wait_message(&mut bob_events, text).await;
    assert_eq!(delivered.id, accepted.id);
    let page = bob.history(Target::World, None, 50).await.unwrap();
    let copies: Vec<u64> = page.messages.iter().filter(|m| m.text == text).map(|m| m.id).collect();
    assert_eq!(copies, [accepted.id], "stored exactly once");
    server.shutdown().await.unwrap();
}
