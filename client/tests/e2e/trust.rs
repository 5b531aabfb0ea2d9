//! Trust on first use against a real server.

use chatlab_client::{Client, ClientError};

use crate::support::*;

#[tokio::test]
async fn a_changed_server_key_is_refused() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let client_dir = tempfile::tempdir().unwrap();
    let server = start_server(first.path(), None).await;
    let addr = server.local_addr();
    let (handle, _) = Client::connect(client_config(addr, client_dir.path())).await.expect("first contact pins");
    handle.shutdown().await;
    server.shutdown().await.unwrap();

    // Another server (another key) on the same address: an impostor, as far as the client can tell.
    let impostor = start_server(second.path(), Some(addr)).await;
    let err = Client::connect(client_config(addr, client_dir.path())).await.expect_err("must refuse");
    assert!(matches!(err, ClientError::ServerKeyChanged { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&addr.to_string()), "the message names the server: {text}");
    impostor.shutdown().await.unwrap();
}
