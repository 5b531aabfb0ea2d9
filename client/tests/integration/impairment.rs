//! Impairing the client's own UDP traffic: set before login, kept across a reconnect, refused when invalid, gone
//! with the core; and the delivery latency of both transports.

use std::time::Duration;

use chatlab_client::{Client, ClientError, ClientEvent, ErrorCategory, Password, Target, Transport};
use chatlab_proto::impair::{ImpairmentConfig, LossModel};

use crate::fake_server::{FakeServer, Options};
use crate::support::{config, wait_for};

fn delayed(ms: u64) -> ImpairmentConfig {
    ImpairmentConfig { delay: Duration::from_millis(ms), ..ImpairmentConfig::default() }
}

async fn udp_confirmed(events: &mut tokio::sync::mpsc::Receiver<ClientEvent>) {
    wait_for(events, "UDP confirmed", |e| matches!(e, ClientEvent::TransportChanged { transport: Transport::Udp, .. }))
        .await;
}

#[tokio::test]
async fn a_setting_made_before_login_applies_to_the_session_and_survives_a_reconnect() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, mut events) = Client::connect(config(&server, &dir)).await.expect("connect");
    handle.set_impairment(delayed(3), delayed(1)).await.expect("valid, stored while logged out");
    assert_eq!(handle.stats().await.expect("stats").impairment, None, "no UDP task yet");

    handle.login("ann", Password::new("pw")).await.expect("login");
    udp_confirmed(&mut events).await;
    let accepted = handle.send(Target::World, "through a slow path").await.expect("send");
    assert_eq!(accepted.transport, Transport::Udp);
    let impairment = handle.stats().await.expect("stats").impairment.expect("impaired from the session's start");
    assert_eq!((&impairment.outgoing.config, &impairment.incoming.config), (&delayed(3), &delayed(1)));
    assert!(impairment.outgoing.link.delivered >= 2 && impairment.incoming.link.delivered >= 2, "{impairment:?}");

    server.drop_connections();
    wait_for(&mut events, "reconnected", |e| *e == ClientEvent::Reconnected).await;
    udp_confirmed(&mut events).await;
    let impairment = handle.stats().await.expect("stats").impairment.expect("still impaired after the reconnect");
    assert_eq!(impairment.outgoing.config, delayed(3));
}

#[tokio::test]
async fn invalid_settings_are_refused_and_a_closed_core_says_so() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, _events) = Client::connect(config(&server, &dir)).await.expect("connect");
    let too_long = delayed(2 * 60 * 60 * 1000);
    let err = handle.set_impairment(too_long, ImpairmentConfig::default()).await.expect_err("refused");
    assert!(
        matches!(&err, ClientError::InvalidImpairment { reason } if reason.contains("outgoing") && reason.contains("delay")),
        "{err}"
    );
    let nan = ImpairmentConfig { loss: LossModel::Bernoulli { p: f64::NAN }, ..ImpairmentConfig::default() };
    let err = handle.set_impairment(ImpairmentConfig::default(), nan).await.expect_err("refused");
    assert!(err.to_string().contains("incoming") && err.to_string().contains("loss.p"), "{err}");

    handle.shutdown().await;
    let err = handle.set_impairment(ImpairmentConfig::default(), ImpairmentConfig::default()).await;
    assert_eq!(err, Err(ClientError::Closed));
}

/// The bug: an invalid impairment setting, the caller's own mistake, came back as `ClientError::Protocol`, the variant
/// for a server that breaks the protocol, so a face could not tell "fix this slider" from "the server is broken".
#[tokio::test]
async fn invalid_impairment_settings_surfaced_as_protocol_errors() {
    let server = FakeServer::start(Options::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, _events) = Client::connect(config(&server, &dir)).await.expect("connect");
    let zero_mtu = ImpairmentConfig { mtu: Some(0), ..ImpairmentConfig::default() };
    let err = handle.set_impairment(zero_mtu, ImpairmentConfig::default()).await.expect_err("refused");
    let ClientError::InvalidImpairment { reason } = &err else { panic!("not InvalidImpairment: {err:?}") };
    assert!(reason.contains("outgoing") && reason.contains("mtu"), "{reason}");
    assert_eq!(err.category(), ErrorCategory::Usage, "the caller's mistake, not the connection's");
    assert_eq!(err.server_code(), None);
    handle.set_impairment(delayed(1), ImpairmentConfig::default()).await.expect("a valid setting still works");
}

#[tokio::test]
async fn delivery_latency_is_recorded_per_transport() {
    let server = FakeServer::start(Options::default()).await;
    server.add_user("ann", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, mut events) = Client::connect(config(&server, &dir)).await.expect("connect");
    handle.login("ann", Password::new("pw")).await.expect("login");
    udp_confirmed(&mut events).await;
    for i in 0..3 {
        handle.send(Target::World, &format!("udp {i}")).await.expect("send");
    }
    handle.set_transport(Transport::Tcp).await.expect("switch");
    handle.send(Target::World, "tcp").await.expect("send");

    let latency = handle.stats().await.expect("stats").latency;
    assert_eq!((latency.udp.samples, latency.tcp.samples), (3, 1));
    for summary in [&latency.udp, &latency.tcp] {
        assert_eq!(summary.cdf.last().map(|point| point.1), Some(1.0), "{summary:?}");
        assert!(summary.p50_ms.is_some_and(|p50| p50 > 0.0) && summary.p99_ms >= summary.p50_ms, "{summary:?}");
    }
    assert_eq!(latency.tcp.cdf.len(), 1, "one sample, one point");
}
