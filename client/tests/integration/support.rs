//! Helpers shared by the test modules.

use std::time::Duration;

use tokio::sync::mpsc;

use chatlab_client::{Client, ClientConfig, ClientEvent, ClientHandle, Password, Username};

use crate::fake_server::FakeServer;

/// Longest any test waits for one event; generous for a loaded 2-core machine, never reached when things work.
pub const EVENT_WAIT: Duration = Duration::from_secs(10);

/// A client configuration for `server` with short timers, so fall-backs and reconnects happen in test time.
pub fn config(server: &FakeServer, dir: &tempfile::TempDir) -> ClientConfig {
    let mut config = ClientConfig::new(server.server(), dir.path().join("known_servers"));
    config.udp_probe_timeout = Duration::from_millis(400);
    config.reconnect_backoff_min = Duration::from_millis(50);
    config.reconnect_backoff_max = Duration::from_millis(200);
    config.request_timeout = Duration::from_secs(5);
    config.sync_on_login = false;
    config
}

/// `name` as a user name; the tests' names are valid.
pub fn user(name: &str) -> Username {
    Username::parse(name).expect("valid")
}

/// Connects and logs in as `user` (password "pw").
pub async fn logged_in(config: ClientConfig, user: &str) -> (ClientHandle, mpsc::Receiver<ClientEvent>) {
    let (handle, events) = Client::connect(config).await.expect("connect");
    handle.login(user, Password::new("pw")).await.expect("login");
    (handle, events)
}

#[path = "../common/events.rs"]
mod events;

/// Waits for the first event matching `wanted`, skipping others; panics with what it saw after [`EVENT_WAIT`].
pub async fn wait_for(
    events: &mut mpsc::Receiver<ClientEvent>,
    what: &str,
    wanted: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    events::wait_for_within(events, what, EVENT_WAIT, wanted).await
}

/// Polls `condition` until it holds, or panics after [`EVENT_WAIT`].
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
