//! The client's own impaired UDP path against the real server: the engine repairs what the network breaks, the
//! statistics show both sides of it, and the delivery-latency CDFs fill for the transport used.

use std::collections::HashMap;

use chatlab_client::stats::LatencySummary;
use chatlab_client::{ClientError, ClientEvent, ClientHandle, ClientStats, Target, Transport, Username};
use chatlab_proto::impair::{ImpairmentConfig, LossModel};
use chatlab_server::ServerHandle;
use tokio::sync::mpsc;

use crate::support::*;

/// Messages sent through the lossy path: enough that a 30 % loss surely hits some of them.
const LOSSY_MESSAGES: usize = 30;

/// Messages sent after the impairment is switched off.
const CLEAN_MESSAGES: usize = 10;

/// Messages sent over TCP at the end.
const TCP_MESSAGES: usize = 5;

/// Starts a server whose flood limit lets one session send every message of a test at once.
async fn server(dir: &std::path::Path) -> ServerHandle {
    let mut config = server_config(dir);
    config.flood_burst = 1000.0;
    ServerHandle::start("127.0.0.1:0".parse().expect("literal"), config).await.expect("server starts")
}

fn thirty_percent_loss() -> ImpairmentConfig {
    ImpairmentConfig { loss: LossModel::Bernoulli { p: 0.3 }, seed: 7, ..ImpairmentConfig::default() }
}

async fn wait_for_udp(events: &mut mpsc::Receiver<ClientEvent>) {
    wait_for(events, "UDP confirmed", |e| matches!(e, ClientEvent::TransportChanged { transport: Transport::Udp, .. }))
        .await;
}

/// Sends `count` numbered messages from `from` to bob and checks every one was accepted on `transport`.
async fn send_batch(from: &ClientHandle, prefix: &str, count: usize, transport: Transport) -> Vec<String> {
    let bob = Target::User(Username::parse("bob").expect("valid"));
    let mut texts = Vec::new();
    for i in 0..count {
        let text = format!("{prefix} {i}");
        let accepted = from.send(bob.clone(), &text).await.expect("accepted despite the loss");
        assert_eq!(accepted.transport, transport, "{text}");
        texts.push(text);
    }
    texts
}

/// Collects bob's messages until every text in `texts` has arrived, then checks none came twice.
async fn arrive_exactly_once(events: &mut mpsc::Receiver<ClientEvent>, texts: &[String]) {
    let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
    while texts.iter().any(|text| !seen.contains_key(text)) {
        match wait_for(events, "the next message", |e| matches!(e, ClientEvent::Message { .. })).await {
            ClientEvent::Message { message, .. } => seen.entry(message.text).or_default().push(message.id),
            _ => unreachable!("wait_for returns a matching event"),
        }
    }
    for text in texts {
        assert_eq!(seen.get(text).map(Vec::len), Some(1), "{text} arrived {:?}", seen.get(text));
    }
}

fn assert_cdf(summary: &LatencySummary, samples: usize) {
    assert_eq!(summary.samples, samples as u64, "{summary:?}");
    assert!(!summary.cdf.is_empty(), "{summary:?}");
    assert_eq!(summary.cdf.last().map(|point| point.1), Some(1.0), "the CDF ends at 1: {summary:?}");
    assert!(summary.cdf.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1), "{summary:?}");
    let (p50, p99) = (summary.p50_ms.expect("p50"), summary.p99_ms.expect("p99"));
    assert!(0.0 < p50 && p50 <= p99, "{summary:?}");
}

fn dropped(stats: &ClientStats) -> u64 {
    stats.impairment.as_ref().expect("the path is impaired").outgoing.link.dropped()
}

#[tokio::test]
async fn thirty_percent_outgoing_loss_is_repaired_and_shown_in_the_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let config = client_config(server.local_addr(), dir.path());
    let (bob, mut bob_events) = user(config.clone(), "bob").await;
    let (ann, mut ann_events) = user(config, "ann").await;
    wait_for_udp(&mut ann_events).await;

    ann.set_impairment(thirty_percent_loss(), ImpairmentConfig::default()).await.unwrap();
    let lossy = send_batch(&ann, "through the lossy path", LOSSY_MESSAGES, Transport::Udp).await;
    arrive_exactly_once(&mut bob_events, &lossy).await;

    let stats = ann.stats().await.unwrap();
    let udp = stats.udp.as_ref().expect("UDP statistics");
    let impairment = stats.impairment.as_ref().expect("impairment statistics");
    assert!(impairment.outgoing.link.dropped_loss > 0, "{impairment:?}");
    assert_eq!(impairment.outgoing.config, thirty_percent_loss());
    assert_eq!(impairment.incoming.link.dropped(), 0, "the incoming direction is not impaired");
    assert!(udp.sent.retransmissions_timeout + udp.sent.retransmissions_fast > 0, "{udp:?}");
    assert!(udp.sent.packets_declared_lost > 0, "{udp:?}");
    assert_cdf(&stats.latency.udp, LOSSY_MESSAGES);
    assert_eq!(stats.latency.tcp, LatencySummary::default(), "nothing went over TCP");
    let json = serde_json::to_string(&stats).unwrap();
    assert!(json.contains("\"dropped_loss\"") && json.contains("\"cdf\""), "exportable: {json}");

    // Off again: the links stay (their counters too) but drop nothing more.
    ann.set_impairment(ImpairmentConfig::default(), ImpairmentConfig::default()).await.unwrap();
    let drops_before = dropped(&ann.stats().await.unwrap());
    let clean = send_batch(&ann, "through the clean path", CLEAN_MESSAGES, Transport::Udp).await;
    arrive_exactly_once(&mut bob_events, &clean).await;
    let stats = ann.stats().await.unwrap();
    assert_eq!(dropped(&stats), drops_before, "no drop once the impairment is off");
    assert_eq!(stats.impairment.as_ref().map(|i| i.outgoing.config.clone()), Some(ImpairmentConfig::default()));

    // The comparison transport fills its own curve.
    ann.set_transport(Transport::Tcp).await.unwrap();
    let over_tcp = send_batch(&ann, "over tcp", TCP_MESSAGES, Transport::Tcp).await;
    arrive_exactly_once(&mut bob_events, &over_tcp).await;
    let stats = ann.stats().await.unwrap();
    assert_cdf(&stats.latency.udp, LOSSY_MESSAGES + CLEAN_MESSAGES);
    assert_cdf(&stats.latency.tcp, TCP_MESSAGES);
    drop(bob);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_invalid_impairment_is_refused_with_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let (ann, mut events) = user(client_config(server.local_addr(), dir.path()), "ann").await;
    wait_for_udp(&mut events).await;

    let impossible = ImpairmentConfig { loss: LossModel::Bernoulli { p: 1.5 }, ..ImpairmentConfig::default() };
    let err = ann.set_impairment(ImpairmentConfig::default(), impossible).await.expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, ClientError::InvalidImpairment { .. }), "{err:?}");
    assert!(text.contains("incoming") && text.contains("loss.p") && text.contains("1.5"), "{text}");
    let zero_mtu = ImpairmentConfig { mtu: Some(0), ..ImpairmentConfig::default() };
    let err = ann.set_impairment(zero_mtu, ImpairmentConfig::default()).await.expect_err("refused");
    assert!(err.to_string().contains("outgoing") && err.to_string().contains("mtu"), "{err}");

    assert_eq!(ann.stats().await.unwrap().impairment, None, "nothing was applied");
    ann.send(Target::World, "still fine").await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_impairment_stays_in_force_for_the_next_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let (ann, mut events) = user(client_config(server.local_addr(), dir.path()), "ann").await;
    wait_for_udp(&mut events).await;
    // Mild enough that the next session's UDP probe gets through at once.
    let slow = ImpairmentConfig { delay: std::time::Duration::from_millis(2), ..ImpairmentConfig::default() };
    let doubled = ImpairmentConfig { duplicate: 1.0, ..ImpairmentConfig::default() };
    ann.set_impairment(slow.clone(), doubled.clone()).await.unwrap();

    ann.logout().await.unwrap();
    ann.login("ann", chatlab_client::Password::new(PASSWORD)).await.unwrap();
    wait_for_udp(&mut events).await;
    ann.send(Target::World, "after logging in again").await.unwrap();
    let stats = ann.stats().await.unwrap();
    let impairment = stats.impairment.expect("the new session's path is impaired from its start");
    assert_eq!((&impairment.outgoing.config, &impairment.incoming.config), (&slow, &doubled));
    assert!(impairment.outgoing.link.delivered > 0 && impairment.incoming.link.duplicated > 0, "{impairment:?}");
    let udp = stats.udp.expect("UDP statistics");
    assert!(udp.received.rejected_replayed + udp.received.duplicate_packets > 0, "duplicates refused: {udp:?}");
    server.shutdown().await.unwrap();
}
