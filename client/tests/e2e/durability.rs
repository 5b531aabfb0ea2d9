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
