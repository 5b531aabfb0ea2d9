//! What crosses the wire, watched from an impairment relay between the client and the server.

use std::net::SocketAddr;

use chatlab_client::{ClientEvent, Target, Transport, Username};
use chatlab_labs::relay::{self, Relay, RelayConfig};
use chatlab_proto::impair::{ImpairmentConfig, LossModel};
use chatlab_server::ServerHandle;

use crate::support::*;

/// A server whose session grants point clients' datagrams at a relay in front of it.
async fn server_behind_relay(dir: &std::path::Path, config: RelayConfig) -> (ServerHandle, Relay, SocketAddr) {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = tcp.local_addr().unwrap();
    let udp = tokio::net::UdpSocket::bind(relay_addr).await.unwrap();
    let mut server_config = server_config(dir);
    server_config.udp_advertise_port = Some(relay_addr.port());
    let server = ServerHandle::start("127.0.0.1:0".parse().unwrap(), server_config).await.unwrap();
    let relay = relay::start(tcp, udp, server.local_addr(), config).unwrap();
    (server, relay, relay_addr)
}

#[tokio::test]
async fn no_name_password_or_text_is_readable_on_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let (server, relay, addr) =
        server_behind_relay(dir.path(), RelayConfig { record: true, ..RelayConfig::default() }).await;
    let config = client_config(addr, dir.path());
    let (ann, mut ann_events) = user(config.clone(), "annabelle").await;
    let (bob, mut bob_events) = user(config, "bartholomew").await;
    let bart = Target::User(Username::parse("bartholomew").unwrap());
    let sent = ann.send(bart, "the eagle lands at midnight").await.unwrap();
    wait_message(&mut bob_events, "the eagle lands at midnight").await;
    wait_for(&mut ann_events, "receipt", |e| matches!(e, ClientEvent::Receipt { id, .. } if *id == sent.id)).await;
    bob.set_transport(Transport::Tcp).await.unwrap();
    ann.send(Target::World, "a world message over udp").await.unwrap();
    wait_message(&mut bob_events, "a world message over udp").await;
    let history = bob.history(Target::World, None, 10).await.unwrap();
    assert_eq!(history.messages.len(), 1);

    let capture = relay.capture();
    assert!(capture.udp.len() >= 4, "datagrams went through the relay: {}", capture.udp.len());
    assert!(capture.bytes() > 1000);
    for secret in ["annabelle", "bartholomew", PASSWORD, "the eagle lands", "world message", "eagle", "midnight"] {
        assert!(!capture.contains(secret.as_bytes()), "{secret:?} is readable on the wire");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn when_udp_is_blocked_chat_falls_back_to_tcp_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let black_hole = ImpairmentConfig { loss: LossModel::Bernoulli { p: 1.0 }, ..ImpairmentConfig::default() };
    let (server, _relay, addr) =
        server_behind_relay(dir.path(), RelayConfig { upstream: black_hole, ..RelayConfig::default() }).await;
    let config = client_config(addr, dir.path());
    let (ann, mut ann_events) = user(config.clone(), "ann").await;
    let event = wait_for(&mut ann_events, "fallback to TCP", |e| {
        matches!(e, ClientEvent::TransportChanged { transport: Transport::Tcp, .. })
    })
    .await;
    if let ClientEvent::TransportChanged { reason, .. } = event {
        assert!(reason.to_string().contains("UDP"), "the reason names UDP: {reason}");
    }
    let (_bob, mut bob_events) = user(config, "bob").await;
    let sent = ann.send(Target::User(Username::parse("bob").unwrap()), "still here").await.unwrap();
    let got = wait_message(&mut bob_events, "still here").await;
    assert_eq!(got.id, sent.id);
    server.shutdown().await.unwrap();
}
