//! The UDP probe: falling back to TCP when UDP is blocked, and switching transports on request.

use std::time::Duration;

use chatlab_client::{ClientEvent, Target, Transport, TransportReason};

use crate::fake_server::{FakeServer, Options};
use crate::support::{config, logged_in, wait_for};

#[tokio::test]
async fn blocked_udp_falls_back_to_tcp_and_says_why() {
    let server = FakeServer::start(Options { answer_udp: false }).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, mut events) = logged_in(config(&server, &dir), "ann").await;
    // Sent while the probe still waits: held, then sent over TCP once the client gives up on UDP.
    let accepted = handle.send(Target::World, "through the firewall").await.expect("send");
    assert_eq!(accepted.transport, Transport::Tcp);
    let event = wait_for(&mut events, "the fall-back", |e| matches!(e, ClientEvent::TransportChanged { .. })).await;
    let ClientEvent::TransportChanged { transport, reason } = event else { unreachable!() };
    assert_eq!(transport, Transport::Tcp);
    match &reason {
        TransportReason::UdpBlocked { server: udp_server, waited } => {
            assert_eq!(udp_server, &server.server());
            assert!(*waited >= Duration::from_millis(400), "{waited:?}");
        }
        other => panic!("expected UdpBlocked, got {other:?}"),
    }
    let text = reason.to_string();
    assert!(text.starts_with(&format!("no answer over UDP from {}", server.server())), "{text}");
    assert!(text.ends_with("chatting over TCP"), "{text}");
    assert_eq!(server.use_transport_requests(), [Transport::Tcp]);
    assert_eq!(server.chats_over(Transport::Udp), 0);
    assert_eq!(server.chats_over(Transport::Tcp), 1);
    let later = handle.send(Target::World, "still tcp").await.expect("send");
    assert_eq!(later.transport, Transport::Tcp);
}

#[tokio::test]
async fn switching_transports_on_request() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, mut events) = logged_in(config(&server, &dir), "ann").await;
    wait_for(&mut events, "UDP confirmed", |e| matches!(e, ClientEvent::TransportChanged { .. })).await;

    handle.set_transport(Transport::Tcp).await.expect("to tcp");
    let event = wait_for(&mut events, "switch to TCP", |e| matches!(e, ClientEvent::TransportChanged { .. })).await;
    assert_eq!(event, ClientEvent::TransportChanged { transport: Transport::Tcp, reason: TransportReason::Requested });
    assert_eq!(handle.send(Target::World, "tcp now").await.expect("send").transport, Transport::Tcp);

    handle.set_transport(Transport::Udp).await.expect("to udp");
    let event = wait_for(&mut events, "back on UDP", |e| matches!(e, ClientEvent::TransportChanged { .. })).await;
    assert_eq!(
        event,
        ClientEvent::TransportChanged { transport: Transport::Udp, reason: TransportReason::UdpConfirmed }
    );
    assert_eq!(handle.send(Target::World, "udp again").await.expect("send").transport, Transport::Udp);
    assert_eq!(server.use_transport_requests(), [Transport::Tcp, Transport::Udp]);
}

#[tokio::test]
async fn udp_going_silent_mid_session_falls_back_and_resends_over_tcp() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config(&server, &dir);
    config.engine.keepalive = Duration::from_millis(100);
    config.engine.idle_timeout = Duration::from_millis(500);
    let (handle, mut events) = logged_in(config, "ann").await;
    wait_for(&mut events, "UDP confirmed", |e| matches!(e, ClientEvent::TransportChanged { .. })).await;
    server.set_answer_udp(false);
    // Sent into the black hole over UDP; resent over TCP, under the same client_msg_id, after the fall-back.
    let accepted = handle.send(Target::World, "lost in udp").await.expect("send survives the fall-back");
    assert_eq!(accepted.transport, Transport::Tcp);
    let event = wait_for(&mut events, "the fall-back", |e| matches!(e, ClientEvent::TransportChanged { .. })).await;
    assert_eq!(
        event,
        ClientEvent::TransportChanged {
            transport: Transport::Tcp,
            reason: TransportReason::UdpSilent { silent_for: Duration::from_millis(500) }
        }
    );
    assert_eq!(server.messages().len(), 1, "stored once");
}
