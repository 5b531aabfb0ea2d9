//! Registration, login and the session's first steps.

use chatlab_proto::control::{ClientMessage, ErrorCode, Password, ServerMessage};
use chatlab_proto::limits::{MAX_TEXT_BYTES, PROTOCOL_VERSION};

use crate::support::{Client, PASSWORD, TestServer, name};

#[tokio::test]
async fn register_then_login_grants_a_session() {
    let server = TestServer::start().await;
    let mut client = Client::connect(server.addr).await;
    assert_eq!(client.register("Alice", PASSWORD).await, Ok(name("alice")), "names are case-folded");
    let grant = client.login("ALICE", PASSWORD).await.unwrap();
    assert_eq!(grant.user, name("alice"));
    assert_ne!(grant.connection_id, 0);
    assert_eq!(grant.udp_port, server.addr.port(), "one port for TCP and UDP");
    assert_eq!(grant.max_text_bytes, u32::try_from(MAX_TEXT_BYTES).unwrap());
    assert_ne!(grant.key_material.expose(), &[0u8; 32]);
    server.stop().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_error() {
    let server = TestServer::start().await;
    let mut client = Client::connect(server.addr).await;
    client.register("bob", PASSWORD).await.unwrap();
    let wrong = client.login_detailed("bob", "not the password").await.unwrap_err();
    let unknown = client.login_detailed("nobody", PASSWORD).await.unwrap_err();
    assert_eq!(wrong.0, ErrorCode::BadCredentials);
    assert_eq!(wrong, unknown, "neither code nor text may tell the two cases apart");
    assert_eq!(client.login("bob", "").await.unwrap_err(), ErrorCode::BadCredentials);
    // Still usable afterwards.
    client.login("bob", PASSWORD).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn duplicate_registration_is_refused() {
    let server = TestServer::start().await;
    let mut first = Client::connect(server.addr).await;
    first.register("carol", PASSWORD).await.unwrap();
    let mut second = Client::connect(server.addr).await;
    assert_eq!(second.register("CAROL", "another password").await, Err(ErrorCode::UsernameTaken));
    // The original password still works, the second one does not.
    assert_eq!(second.login("carol", "another password").await.unwrap_err(), ErrorCode::BadCredentials);
    second.login("carol", PASSWORD).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn invalid_names_and_passwords_are_refused_with_their_codes() {
    let server = TestServer::start().await;
    let mut client = Client::connect(server.addr).await;
    let too_long = "x".repeat(33);
    for bad in ["", "world", "WORLD", "a b", "ann!", "名字"] {
        assert_eq!(client.register(bad, PASSWORD).await, Err(ErrorCode::UsernameInvalid), "{bad:?}");
    }
    let (code, reason) = client.register_detailed(&too_long, PASSWORD).await.unwrap_err();
    assert_eq!(code, ErrorCode::UsernameInvalid);
    assert!(reason.contains("33"), "the reason says what is wrong: {reason}");
    assert_eq!(client.register("dave", "").await, Err(ErrorCode::PasswordInvalid));
    let long_password = "p".repeat(chatlab_proto::control::MAX_PASSWORD_BYTES + 1);
    assert_eq!(client.register("dave", &long_password).await, Err(ErrorCode::PasswordInvalid));
    assert_eq!(client.login("bad name", PASSWORD).await.unwrap_err(), ErrorCode::UsernameInvalid);
    assert_eq!(client.register("dave.o_k-1", PASSWORD).await, Ok(name("dave.o_k-1")));
    server.stop().await;
}

#[tokio::test]
async fn hello_with_another_version_is_refused_and_closed() {
    let server = TestServer::start().await;
    let mut client = Client::handshake(server.addr).await;
    client.send(&ClientMessage::Hello { version: PROTOCOL_VERSION + 1, client: "future".into() }).await;
    let text = client.expect_error(ErrorCode::VersionMismatch).await;
    assert!(text.contains(&PROTOCOL_VERSION.to_string()), "{text}");
    assert!(client.closed_by_server().await);
    server.stop().await;
}

#[tokio::test]
async fn only_hello_before_welcome_and_only_accounts_before_login() {
    let server = TestServer::start().await;
    let mut client = Client::handshake(server.addr).await;
    client.send(&ClientMessage::Login { username: "ann".into(), password: Password::new(PASSWORD) }).await;
    client.expect_error(ErrorCode::NotLoggedIn).await;
    client.send(&ClientMessage::Hello { version: PROTOCOL_VERSION, client: "t".into() }).await;
    client.expect(|m| matches!(m, ServerMessage::Welcome { .. }).then_some(())).await;
    client.send(&ClientMessage::Ping { nonce: 42 }).await;
    client.expect(|m| matches!(m, ServerMessage::Pong { nonce: 42 }).then_some(())).await;
    client.send(&ClientMessage::ListUsers { req: 9 }).await;
    let req = client
        .expect(|m| match m {
            ServerMessage::Error { req, code: ErrorCode::NotLoggedIn, .. } => Some(*req),
            _ => None,
        })
        .await;
    assert_eq!(req, Some(9), "errors echo the request number");
    client.send(&ClientMessage::Logout).await;
    client.expect_error(ErrorCode::NotLoggedIn).await;
    server.stop().await;
}

#[tokio::test]
async fn login_twice_on_one_connection_and_logout_then_login_again() {
    let server = TestServer::start().await;
    let mut client = Client::user(server.addr, "erin").await;
    assert_eq!(client.login("erin", PASSWORD).await.unwrap_err(), ErrorCode::AlreadyLoggedIn);
    client.send(&ClientMessage::Logout).await;
    client.expect(|m| matches!(m, ServerMessage::LoggedOut).then_some(())).await;
    // Logged out: chat is refused, a new login works and gets a new connection id.
    client
        .send(&ClientMessage::Chat { client_msg_id: 1, to: chatlab_proto::chat::Target::World, text: "x".into() })
        .await;
    client.expect_error(ErrorCode::NotLoggedIn).await;
    let first = client.grant.clone().unwrap();
    let second = client.login("erin", PASSWORD).await.unwrap();
    assert_ne!(first.connection_id, second.connection_id);
    assert_ne!(first.key_material.expose(), second.key_material.expose());
    assert!(client.chat(chatlab_proto::chat::Target::World, "back").await.is_ok());
    server.stop().await;
}
