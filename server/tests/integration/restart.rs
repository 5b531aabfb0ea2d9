//! What a server stores survives a restart.

use chatlab_proto::chat::Target;

use crate::support::{Client, PASSWORD, TestServer, to_user};

#[tokio::test]
async fn accounts_and_history_survive_a_restart_on_the_same_data_dir() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let _bob = Client::user(server.addr, "bob").await;
    let world = ann.chat(Target::World, "before the restart").await.unwrap();
    let private = ann.chat(to_user("bob"), "private, before").await.unwrap();
    drop(ann);
    let dir = server.stop().await;

    let server = TestServer::start_in(dir, |_| {}).await;
    let mut bob = Client::connect(server.addr).await;
    bob.login("bob", PASSWORD).await.expect("the account survived");
    let (history, _) = bob.sync_all(0, 100).await;
    let ids: Vec<u64> = history.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![world, private]);
    // Ids keep increasing after the restart.
    let next = bob.chat(Target::World, "after the restart").await.unwrap();
    assert!(next > private);
    server.stop().await;
}
