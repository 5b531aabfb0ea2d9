//! Connecting: trust on first use, the pinned key, a changed key, accounts.

use chatlab_client::{Client, ClientError, ClientEvent, Password};
use chatlab_proto::noise::ServerKey;

use crate::fake_server::{FakeServer, Options};
use crate::support::{config, wait_for};

#[tokio::test]
async fn first_contact_pins_the_key_and_reports_its_fingerprint() {
    let server = FakeServer::start(Options::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, mut events) = Client::connect(config(&server, &dir)).await.expect("connect");
    assert_eq!(handle.server_fingerprint(), server.key.fingerprint());
    assert_eq!(handle.server_software(), "fake-server");
    let event = wait_for(&mut events, "the pin", |e| matches!(e, ClientEvent::ServerKeyPinned { .. })).await;
    assert_eq!(event, ClientEvent::ServerKeyPinned { server: server.server(), fingerprint: server.key.fingerprint() });
    let file = std::fs::read_to_string(dir.path().join("known_servers")).expect("known_servers written");
    assert!(file.contains(&format!("{} {}", server.server(), server.key.to_hex())), "{file}");
}

#[tokio::test]
async fn a_known_key_connects_without_a_new_pin() {
    let server = FakeServer::start(Options::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    drop(Client::connect(config(&server, &dir)).await.expect("first"));
    let before = std::fs::read_to_string(dir.path().join("known_servers")).expect("read");
    let (handle, mut events) = Client::connect(config(&server, &dir)).await.expect("second");
    handle.shutdown().await;
    while let Some(event) = events.recv().await {
        assert!(!matches!(event, ClientEvent::ServerKeyPinned { .. }), "pinned twice");
    }
    assert_eq!(std::fs::read_to_string(dir.path().join("known_servers")).expect("read"), before);
}

#[tokio::test]
async fn a_changed_key_is_refused_with_an_explanation() {
    let server = FakeServer::start(Options::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("known_servers");
    let old = ServerKey::from_bytes([7; 32]);
    std::fs::write(&path, format!("{} {}\n", server.server(), old.to_hex())).expect("write");
    server.add_user("ann", "pw");
    let err = Client::connect(config(&server, &dir)).await.expect_err("changed key must be refused");
    match &err {
        ClientError::ServerKeyChanged { server: name, pinned, presented, known_servers } => {
            assert_eq!(name, &server.server());
            assert_eq!(*pinned, old.fingerprint());
            assert_eq!(*presented, server.key.fingerprint());
            assert_eq!(known_servers, &path);
        }
        other => panic!("expected ServerKeyChanged, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("CHANGED") && text.contains("impersonating"), "{text}");
    assert_eq!(server.logins(), 0, "nothing was sent");
    assert!(std::fs::read_to_string(&path).expect("read").contains(&old.to_hex()), "the pin was not replaced");
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = chatlab_client::ClientConfig::new(addr.to_string(), dir.path().join("k"));
    let err = Client::connect(config).await.expect_err("nothing listens");
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().starts_with("cannot reach the chatlab server at"), "{err}");
}

#[tokio::test]
async fn register_then_login_and_the_account_errors() {
    let server = FakeServer::start(Options::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, _events) = Client::connect(config(&server, &dir)).await.expect("connect");
    let name = handle.register("Ann", Password::new("pw")).await.expect("register");
    assert_eq!(name.as_str(), "ann");
    let err = handle.register("ann", Password::new("pw")).await.expect_err("taken");
    assert!(matches!(err, ClientError::UsernameTaken { .. }), "{err:?}");
    let err = handle.login("ann", Password::new("wrong")).await.expect_err("bad password");
    assert_eq!(err, ClientError::BadCredentials);
    let err = handle.login("bad name", Password::new("pw")).await.expect_err("invalid name");
    assert!(matches!(err, ClientError::InvalidUsername { .. }), "{err:?}");
    let err = handle.users().await.expect_err("not logged in");
    assert_eq!(err, ClientError::NotLoggedIn);
    let info = handle.login("ann", Password::new("pw")).await.expect("login");
    assert_eq!(info.user.as_str(), "ann");
    assert_eq!(info.max_text_bytes, 4096);
    let err = handle.login("ann", Password::new("pw")).await.expect_err("twice");
    assert_eq!(err, ClientError::AlreadyLoggedIn);
    handle.logout().await.expect("logout");
    handle.login("ann", Password::new("pw")).await.expect("login again on the same connection");
}
