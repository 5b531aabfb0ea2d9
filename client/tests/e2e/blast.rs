//! Blasting one-to-one messages as fast as the library takes them: every one is accepted, none is refused as
//! "busy", and the recipient gets each exactly once and in order, over UDP and over TCP (issue 9, item 7).
//!
//! A blast of 3 000 outruns the client's send queue (1 024 messages) and so has to wait for room; one UDP blast also
//! runs with a small send window, so that messages wait for room in the window too. (The 10 000-message figure of
//! the issue is measured with the `exchange` example; see the README.)

use std::time::Duration;

use chatlab_client::{ClientEvent, Target, Transport, Username};
use chatlab_server::ServerHandle;
use tokio::sync::mpsc;

use crate::support::*;

/// Messages in one blast: several times the send queue, small enough for CI.
const BLAST: usize = 3000;

/// A small UDP send window: a few dozen messages in flight, so most wait for room in the window.
const SMALL_SEND_WINDOW: usize = 32;

/// Longest the recipient waits for the next message before the test gives up (a bound, not a timing assertion).
const NEXT_MESSAGE_WAIT: Duration = Duration::from_secs(60);

/// A server whose flood limit (by default a burst of 50 and 20 messages a second per user) lets one user blast.
pub async fn unthrottled_server(dir: &std::path::Path) -> ServerHandle {
    let mut config = server_config(dir);
    config.flood_burst = 1e9;
    config.flood_rate = 1e9;
    ServerHandle::start("127.0.0.1:0".parse().expect("literal"), config).await.expect("server starts")
}

fn bob() -> Target {
    Target::User(Username::parse("bob").expect("valid"))
}

/// Reads bob's events until `count` blast messages arrived (or none came for a while); returns their texts and ids.
async fn collect_blast(mut events: mpsc::Receiver<ClientEvent>, count: usize) -> Vec<(String, u64)> {
    let mut received = Vec::with_capacity(count);
    while received.len() < count {
        match tokio::time::timeout(NEXT_MESSAGE_WAIT, events.recv()).await {
            Ok(Some(ClientEvent::Message { message, .. })) if message.text.starts_with("blast ") => {
                received.push((message.text, message.id));
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    received
}

async fn a_blast_arrives_whole_exactly_once_and_in_order(transport: Transport, send_window: Option<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let server = unthrottled_server(dir.path()).await;
    let mut config = client_config(server.local_addr(), dir.path());
    config.transport = transport;
    if let Some(window) = send_window {
        config.engine.send_window = window;
    }
    let (ann, mut ann_events) = user(config.clone(), "ann").await;
    let (bob_handle, bob_events) = user(config, "bob").await;
    match transport {
        Transport::Udp => {
            let udp = |e: &ClientEvent| matches!(e, ClientEvent::TransportChanged { transport: Transport::Udp, .. });
            wait_for(&mut ann_events, "ann's UDP confirmed", udp).await;
        }
        Transport::Tcp => {
            ann.set_transport(Transport::Tcp).await.unwrap();
            bob_handle.set_transport(Transport::Tcp).await.unwrap();
        }
    }
    // The core waits for its owner to read events, so ann's acceptances must be read too.
    tokio::spawn(async move { while ann_events.recv().await.is_some() {} });
    let receiver = tokio::spawn(collect_blast(bob_events, BLAST));

    let mut sendings = Vec::with_capacity(BLAST);
    for i in 0..BLAST {
        let sending = ann.queue(bob(), &format!("blast {i:05}")).await;
        sendings.push(sending.unwrap_or_else(|err| panic!("message {i} not queued: {err}")));
    }
    let mut accepted_ids = Vec::with_capacity(BLAST);
    for (i, sending) in sendings.into_iter().enumerate() {
        let accepted = sending.accepted().await.unwrap_or_else(|err| panic!("message {i} not accepted: {err}"));
        assert_eq!(accepted.transport, transport, "message {i} changed transport");
        accepted_ids.push(accepted.id);
    }
    assert!(accepted_ids.windows(2).all(|pair| pair[0] < pair[1]), "the server stored the blast out of order");

    let received = receiver.await.unwrap();
    let texts: Vec<&str> = received.iter().map(|(text, _)| text.as_str()).collect();
    let expected: Vec<String> = (0..BLAST).map(|i| format!("blast {i:05}")).collect();
    assert_eq!(texts.len(), BLAST, "{} of {BLAST} messages arrived", texts.len());
    if let Some(at) = texts.iter().zip(&expected).position(|(got, want)| got != want) {
        let around = &texts[at.saturating_sub(3)..(at + 4).min(texts.len())];
        panic!("not exactly once in order: message {at} is {:?}, around it {around:?}", texts[at]);
    }
    let ids: Vec<u64> = received.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids, accepted_ids, "bob got other messages than the ones accepted");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blast_over_udp_arrives_whole_exactly_once_and_in_order() {
    a_blast_arrives_whole_exactly_once_and_in_order(Transport::Udp, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blast_through_a_small_udp_window_waits_for_room_and_arrives_whole_and_in_order() {
    a_blast_arrives_whole_exactly_once_and_in_order(Transport::Udp, Some(SMALL_SEND_WINDOW)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blast_over_tcp_arrives_whole_exactly_once_and_in_order() {
    a_blast_arrives_whole_exactly_once_and_in_order(Transport::Tcp, None).await;
}
