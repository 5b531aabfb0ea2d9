//! Back to UDP after a fall-back to TCP, against the real server: the session's one endpoint goes on with its
//! packet numbers, so no AES-GCM nonce is used twice and the server's replay window accepts the new datagrams.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use chatlab_client::{ClientEvent, Target, Transport, TransportReason};
use chatlab_labs::relay::{self, Relay, RelayConfig};
use chatlab_proto::datagram::{Header, KeyPhase};
use chatlab_proto::impair::{ImpairmentConfig, LossModel};
use chatlab_server::ServerHandle;

use crate::support::*;

/// The client's engine gives up on a silent server after this long: short, so the fall-back comes quickly.
const IDLE_TIMEOUT: Duration = Duration::from_millis(1500);

/// The client's keepalive, below the idle timeout as the engine requires.
const KEEPALIVE: Duration = Duration::from_millis(300);

/// A server whose grants send datagrams through a recording relay, so the test can read every packet number.
async fn server_behind_recording_relay(dir: &std::path::Path) -> (ServerHandle, Relay, SocketAddr) {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = tcp.local_addr().unwrap();
    let udp = tokio::net::UdpSocket::bind(relay_addr).await.unwrap();
    let mut config = server_config(dir);
    config.udp_advertise_port = Some(relay_addr.port());
    let server = ServerHandle::start("127.0.0.1:0".parse().unwrap(), config).await.unwrap();
    let relay =
        relay::start(tcp, udp, server.local_addr(), RelayConfig { record: true, ..RelayConfig::default() }).unwrap();
    (server, relay, relay_addr)
}

fn black_hole() -> ImpairmentConfig {
    ImpairmentConfig { loss: LossModel::Bernoulli { p: 1.0 }, ..ImpairmentConfig::default() }
}

#[tokio::test]
async fn switching_back_to_udp_after_a_fallback_reuses_no_nonce_and_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (server, relay, addr) = server_behind_recording_relay(dir.path()).await;
    let mut config = client_config(addr, dir.path());
    config.engine.keepalive = KEEPALIVE;
    config.engine.idle_timeout = IDLE_TIMEOUT;
    let (ann, mut events) = user(config, "ann").await;
    wait_for(&mut events, "UDP confirmed", |e| {
        matches!(e, ClientEvent::TransportChanged { transport: Transport::Udp, .. })
    })
    .await;
    // The server's replay window now holds the first packet numbers of this session.
    assert_eq!(ann.send(Target::World, "before the outage").await.unwrap().transport, Transport::Udp);

    // The client's own path goes dark both ways (the relay's settings cannot change live): the engine falls silent.
    ann.set_impairment(black_hole(), black_hole()).await.unwrap();
    wait_for(&mut events, "the fall-back", |e| {
        matches!(
            e,
            ClientEvent::TransportChanged { transport: Transport::Tcp, reason: TransportReason::UdpSilent { .. } }
        )
    })
    .await;
    assert_eq!(ann.send(Target::World, "during the outage").await.unwrap().transport, Transport::Tcp);

    ann.set_impairment(ImpairmentConfig::default(), ImpairmentConfig::default()).await.unwrap();
    ann.set_transport(Transport::Udp).await.unwrap();
    let event = wait_for(&mut events, "back on UDP", |e| matches!(e, ClientEvent::TransportChanged { .. })).await;
    assert_eq!(
        event,
        ClientEvent::TransportChanged { transport: Transport::Udp, reason: TransportReason::UdpConfirmed },
        "the server refused the datagrams after the switch back"
    );
    assert_eq!(ann.send(Target::World, "after the outage").await.unwrap().transport, Transport::Udp);

    // On the wire: a packet number may appear once per direction under one key phase, never more. (The relay
    // records both directions together, which is why the bound is two.)
    let mut seen: HashMap<(u64, KeyPhase, u64), usize> = HashMap::new();
    for datagram in relay.capture().udp {
        let header = Header::parse(&datagram).expect("a chatlab datagram");
        *seen.entry((header.connection_id, header.key_phase, header.packet_number)).or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, count)| **count > 2).collect();
    assert!(repeated.is_empty(), "packet numbers sent more than once per direction: {repeated:?}");
    server.shutdown().await.unwrap();
}
