//! Waiting for client events, shared by the test binaries (included with `#[path]`).

use std::time::Duration;

use chatlab_client::ClientEvent;
use tokio::sync::mpsc;

/// Waits up to `within` for the first event matching `wanted`, skipping others; panics with what it saw otherwise.
pub async fn wait_for_within(
    events: &mut mpsc::Receiver<ClientEvent>,
    what: &str,
    within: Duration,
    wanted: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) if wanted(&event) => return event,
            Ok(Some(event)) => seen.push(event),
            Ok(None) => panic!("event stream ended while waiting for {what}; saw {seen:#?}"),
            Err(_) => panic!("no {what} within {within:?}; saw {seen:#?}"),
        }
    }
}
