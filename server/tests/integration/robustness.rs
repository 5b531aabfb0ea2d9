//! Bad bytes from one peer end that peer's connection (or are ignored), never anyone else's session.

use std::time::Duration;

use chatlab_proto::chat::Target;
use chatlab_proto::control::{ErrorCode, ServerMessage};
use chatlab_proto::datagram::{Header, KeyPhase, PacketType};

use crate::support::{Client, PATIENCE, QUIET, TestServer, contains, name};

#[tokio::test]
async fn malformed_bytes_after_the_handshake_close_only_that_connection() {
    let server = TestServer::start().await;
    let mut ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;

    // A frame that does not decrypt: the Noise session is broken, so the server just closes.
    let mut forger = Client::user(server.addr, "forger").await;
    forger.send_raw(&[0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]).await;
    assert!(forger.closed_by_server().await);

    // A frame that decrypts to something that is not a control message: Malformed, then closed.
    let mut confused = Client::user(server.addr, "confused").await;
    confused.send_sealed(&[0xc1, 0xff, 0x00]).await;
    confused.expect_error(ErrorCode::Malformed).await;
    assert!(confused.closed_by_server().await);

    // A zero-length frame breaks the framing itself.
    let mut empty = Client::connect(server.addr).await;
    empty.send_raw(&[0, 0]).await;
    empty.expect_error(ErrorCode::Malformed).await;
    assert!(empty.closed_by_server().await);

    // An HTTP request instead of a handshake. NX accepts any 32 bytes as a client's ephemeral key, so the server
    // answers its handshake message; the bytes after it are not a valid frame, and the connection closes.
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nmore bytes to fill")
        .await
        .unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(PATIENCE, tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut received)).await;
    assert!(read.is_ok(), "the server closes the connection");
    assert!(!contains(&received, b"HTTP"), "nothing readable comes back");

    let id = ann.chat(Target::World, "nobody else noticed").await.unwrap();
    assert_eq!(bob.pushed().await.id, id);
    server.stop().await;
}

#[tokio::test]
async fn garbage_datagrams_and_unknown_connection_ids_are_ignored() {
    let server = TestServer::start().await;
    let ann = Client::user(server.addr, "ann").await;
    let mut bob = Client::user(server.addr, "bob").await;
    let mut ann_udp = ann.udp().await;
    let grant = ann.grant.clone().unwrap();

    // Before any valid datagram: junk of every kind.
    ann_udp.send_raw(b"").await;
    ann_udp.send_raw(b"hello?").await;
    ann_udp.send_raw(&[0xff; 1500]).await;
    let unknown = Header {
        packet_type: PacketType::Data,
        key_phase: KeyPhase::Zero,
        connection_id: grant.connection_id ^ 1,
        packet_number: 0,
    };
    let mut forged = unknown.to_bytes().to_vec();
    forged.extend_from_slice(&[0u8; 40]);
    ann_udp.send_raw(&forged).await;
    // The right connection id with a wrong key: fails authentication, so the address is not learned from it.
    let mut wrong_key = Header { connection_id: grant.connection_id, ..unknown }.to_bytes().to_vec();
    wrong_key.extend_from_slice(&[7u8; 40]);
    ann_udp.send_raw(&wrong_key).await;

    // Nothing of that moved Ann's session to UDP: pushes still come over TCP ...
    let mut ann = ann;
    let first = bob.chat(Target::World, "before ann's udp").await.unwrap();
    assert_eq!(ann.pushed().await.id, first);
    // ... and the real client still gets through.
    ann_udp.establish().await;
    let second = bob.chat(Target::World, "after").await.unwrap();
    assert_eq!(ann_udp.message().await.id, second);
    let sent = ann_udp.send_chat(Target::World, "and back");
    let back = ann_udp.outcome(sent).await.unwrap();
    assert_eq!(bob.pushed().await.id, back);
    server.stop().await;
}

/// UDP goes silent but TCP works: the session stays, and what the server pushed over UDP without an
/// acknowledgement, and everything after, arrives over TCP.
#[tokio::test]
async fn udp_idle_timeout_moves_a_silent_session_to_tcp_pushes() {
    let server = TestServer::start_with(|c| c.udp_idle_timeout = Duration::from_millis(600)).await;
    let mut watcher = Client::user(server.addr, "watcher").await;
    let mut quiet = Client::user(server.addr, "quiet").await;
    assert!(watcher.presence("quiet").await);
    let mut udp = quiet.udp().await;
    udp.establish().await;
    // Stop running the client's engine: no more datagrams, no acknowledgements of the server's pings.
    drop(udp);
    let unacknowledged = watcher.chat(Target::World, "sent into the void").await.unwrap();
    assert_eq!(quiet.pushed().await.id, unacknowledged, "moved to TCP once UDP is declared idle");
    let later = watcher.chat(Target::World, "after the switch").await.unwrap();
    assert_eq!(quiet.pushed().await.id, later);
    assert!(
        watcher
            .sees_within(QUIET, |m| matches!(m, ServerMessage::Presence { online: false, .. }).then_some(()))
            .await
            .is_none(),
        "the session did not end"
    );
    assert_eq!(watcher.online_users().await, vec![name("quiet"), name("watcher")]);
    server.stop().await;
}

#[tokio::test]
async fn a_tcp_only_session_is_not_ended_by_udp_silence() {
    let server = TestServer::start_with(|c| c.udp_idle_timeout = Duration::from_millis(300)).await;
    let mut tcp_only = Client::user(server.addr, "tcponly").await;
    let mut other = Client::user(server.addr, "other").await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        other
            .sees_within(QUIET, |m| matches!(m, ServerMessage::Presence { online: false, .. }).then_some(()))
            .await
            .is_none()
    );
    let id = other.chat(Target::World, "still there?").await.unwrap();
    assert_eq!(tcp_only.pushed().await.id, id);
    server.stop().await;
}
