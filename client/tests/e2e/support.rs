//! A real server and real clients, with short timers.

use std::net::SocketAddr;
use std::time::Duration;

use chatlab_client::{Client, ClientConfig, ClientEvent, ClientHandle, Password};
use chatlab_server::ServerHandle;
use chatlab_server::config::ServerConfig;
use chatlab_server::password::PasswordParams;
use tokio::sync::mpsc;

/// Longest any test waits for one event: generous for a loaded 2-core machine, never reached when things work.
pub const EVENT_WAIT: Duration = Duration::from_secs(15);

pub const PASSWORD: &str = "correct horse battery staple";

/// A server configuration for tests: the given data directory and cheap password hashing.
pub fn server_config(dir: &std::path::Path) -> ServerConfig {
    let mut config = ServerConfig::with_data_dir(dir);
    config.password_params = PasswordParams::INSECURE_FAST_FOR_TESTS;
    config
}

/// Starts a server on a free port of 127.0.0.1 (or on `addr` when given, for restarts on the same port).
pub async fn start_server(dir: &std::path::Path, addr: Option<SocketAddr>) -> ServerHandle {
    let addr = addr.unwrap_or_else(|| "127.0.0.1:0".parse().expect("literal"));
    ServerHandle::start(addr, server_config(dir)).await.expect("server starts")
}

/// A client configuration towards `server` with a known-servers file in `dir`.
pub fn client_config(server: SocketAddr, dir: &std::path::Path) -> ClientConfig {
    let mut config = ClientConfig::new(server.to_string(), dir.join("known_servers"));
    config.udp_probe_timeout = Duration::from_millis(1500);
    config.reconnect_backoff_min = Duration::from_millis(50);
    config.reconnect_backoff_max = Duration::from_millis(300);
    config.request_timeout = Duration::from_secs(10);
    config
}

/// Registers `user` (ignoring "already taken") and logs in.
pub async fn user(config: ClientConfig, name: &str) -> (ClientHandle, mpsc::Receiver<ClientEvent>) {
    let (handle, events) = Client::connect(config).await.expect("connect");
    let _ = handle.register(name, Password::new(PASSWORD)).await;
    handle.login(name, Password::new(PASSWORD)).await.expect("login");
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

/// Waits for the chat message with this text.
pub async fn wait_message(events: &mut mpsc::Receiver<ClientEvent>, text: &str) -> chatlab_client::ChatMessage {
    match wait_for(events, text, |e| matches!(e, ClientEvent::Message { message, .. } if message.text == text)).await {
        ClientEvent::Message { message, .. } => message,
        _ => unreachable!("wait_for returns a matching event"),
    }
}
