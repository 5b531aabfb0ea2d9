//! History survives restarts.

use chatlab_client::Target;

use crate::support::*;

#[tokio::test]
async fn history_survives_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), None).await;
    let addr = server.local_addr();
    let config = client_config(addr, dir.path());
    let (ann, _) = user(config.clone(), "ann").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(ann.send(Target::World, &format!("message {i}")).await.unwrap().id);
    }
    ann.shutdown().await;
    server.shutdown().await.unwrap();

    let server = start_server(dir.path(), Some(addr)).await;
    let (ann, _) = user(config, "ann").await;
    let page = ann.history(Target::World, None, 100).await.unwrap();
    let got: Vec<u64> = page.messages.iter().map(|m| m.id).collect();
    assert_eq!(got, ids, "every acknowledged message, oldest first");
    assert_eq!(page.messages[19].text, "message 19");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_history_of_tens_of_thousands_of_messages_and_megabytes_syncs_at_login() {
    use chatlab_client::{Client, ClientEvent, MessageSource, Password};
    use chatlab_server::password::{PasswordParams, hash_password};
    use chatlab_server::storage::{NewMessage, SqliteStorage, Storage, StoredTarget};

    const MESSAGES: usize = 25_000;
    let dir = tempfile::tempdir().unwrap();
    // Fill the database directly (sending 25 000 messages through the flood limit would take minutes), then let
    // the real server serve it.
    {
        let storage = SqliteStorage::open(server_config(dir.path()).database_path()).unwrap();
        let phc = hash_password(PASSWORD, &PasswordParams::INSECURE_FAST_FOR_TESTS).unwrap();
        let ann = storage.create_user("ann", &phc, 0).unwrap();
        let bob = storage.create_user("bob", &phc, 0).unwrap();
        let batch: Vec<NewMessage> = (0..MESSAGES)
            .map(|i| NewMessage {
                from: if i % 2 == 0 { ann.id } else { bob.id },
                to: if i % 3 == 0 { StoredTarget::User(bob.id) } else { StoredTarget::World },
                // Every hundredth message is a long one (about 4 KB of Chinese text); the rest are chat-sized.
                text: if i % 100 == 0 {
                    format!("{i} {}", "长".repeat(1300))
                } else {
                    format!("message {i} {}", "x".repeat(100))
                },
                sent_at_ms: 1_700_000_000_000 + i as i64,
                client_msg_id: None,
            })
            .collect();
        for chunk in batch.chunks(5_000) {
            storage.append_messages(chunk).unwrap();
        }
    }
    let server = start_server(dir.path(), None).await;
    let (bob, mut events) = Client::connect(client_config(server.local_addr(), dir.path())).await.unwrap();
    bob.login("bob", Password::new(PASSWORD)).await.unwrap();
    let mut synced = 0usize;
    let mut bytes = 0usize;
    let mut last_id = 0;
    loop {
        match wait_for(&mut events, "history sync", |e| {
            matches!(e, ClientEvent::Message { .. } | ClientEvent::Synced { .. })
        })
        .await
        {
            ClientEvent::Message { message, source: MessageSource::Sync } => {
                assert!(message.id > last_id, "oldest first, each once");
                last_id = message.id;
                synced += 1;
                bytes += message.text.len();
            }
            ClientEvent::Synced { messages } => {
                assert_eq!(messages, synced);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(synced, MESSAGES, "bob sees every world message and every message to him: all of them");
    assert!(bytes > 3_000_000, "megabytes of text: {bytes}");
    server.shutdown().await.unwrap();
}
