//! One bot: a real chatlab client that connects, gets an account, logs in, and reads everything that arrives.
//!
//! A bot is exactly what a student's client is, built on the same client library (`chatlab-client`): its own TCP
//! connection with its own Noise handshake, its own UDP socket and reliability engine. The only differences are
//! that it never reconnects by itself (a dropped bot is a finding to report, not something to paper over) and
//! that it fetches no history at login (the load is the live chat, and old messages would blur the latency).

use std::sync::Arc;
use std::time::Duration;

use chatlab_client::{
    Client, ClientConfig, ClientError, ClientEvent, ClientHandle, MessageSource, Password, Transport, Username,
};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::ledger::Delivery;
use super::reason::{Failures, Operation, Reason};
use super::shared::{Live, MAX_LATENCY_US, Shared, latency_histogram};
use super::text;

/// A bot that logged in.
#[derive(Debug)]
pub struct Bot {
    /// Its number: the account is `PREFIX-index`, and the ledger marks deliveries by it.
    pub index: usize,
    /// Its account name.
    pub name: Username,
    /// The client library's handle.
    pub handle: ClientHandle,
    /// The task reading its events; it ends when the client shuts down.
    pub receiver: JoinHandle<Received>,
}

/// How a bot's start went.
#[derive(Debug)]
pub struct Started {
    /// The bot, when it logged in.
    pub bot: Option<Bot>,
    /// Failures along the way, by operation.
    pub failures: Failures,
    /// Whether an account was created for it.
    pub registered: bool,
    /// From the start of the connection to the accepted login, when it logged in.
    pub login_time: Option<Duration>,
}

/// What a bot's event reader saw, handed back when its client shut down.
#[derive(Debug)]
pub struct Received {
    /// Delivery latency of each message of this run it received: from the sender's `send` call to the event.
    pub latency: Histogram<u64>,
    /// Messages of this run it received (first deliveries).
    pub deliveries: u64,
    /// Messages it received a second time.
    pub duplicates: u64,
    /// Messages of this run that came by a history sync instead of live (none are expected: bots do not sync).
    pub synced: u64,
    /// Chat ended on this transport (UDP bots fall back to TCP when UDP gets no answer).
    pub transport: Transport,
    /// Why it fell back to TCP, if it did.
    pub fell_back: Option<String>,
    /// Session failures: a dropped connection, an error outside any request.
    pub failures: Failures,
}

/// The client settings of bot `index`.
fn client_config(shared: &Shared, index: usize) -> ClientConfig {
    let mut config = ClientConfig::new(shared.config.server.clone(), shared.config.known_servers.clone());
    config.transport = shared.config.transport.for_bot(index);
    config.reconnect = false;
    config.sync_on_login = false;
    config
}

/// Connects bot `index`, gets its account (registers it, or with `reuse` logs in and registers only when the
/// account is missing) and logs in.
pub async fn start(shared: Arc<Shared>, index: usize) -> Started {
    let mut started = Started { bot: None, failures: Failures::default(), registered: false, login_time: None };
    let began = Instant::now();
    let config = client_config(&shared, index);
    let wanted = config.transport;
    let (handle, events) = match Client::connect(config).await {
        Ok(connected) => connected,
        Err(error) => {
            started.failures.add(Operation::Connect, &error);
            Live::bump(&shared.live.setup_failed);
            return started;
        }
    };
    let receiver = tokio::spawn(receive(Arc::clone(&shared), index, wanted, events));
    let name = shared.config.bot_name(index);
    match log_in(&shared, &handle, &name, &mut started).await {
        Ok(user) => {
            started.login_time = Some(began.elapsed());
            started.bot = Some(Bot { index, name: user, handle, receiver });
            Live::bump(&shared.live.logged_in);
        }
        Err((operation, error)) => {
            started.failures.add(operation, &error);
            Live::bump(&shared.live.setup_failed);
            handle.shutdown().await;
            drop(handle);
            if let Ok(received) = receiver.await {
                started.failures.merge(received.failures);
            }
        }
    }
    started
}

/// The account part of [`start`]: the user name logged in, or the operation that failed and why.
async fn log_in(
    shared: &Shared,
    handle: &ClientHandle,
    name: &str,
    started: &mut Started,
) -> Result<Username, (Operation, ClientError)> {
    let password = || Password::new(shared.config.password.clone());
    if shared.config.reuse {
        match handle.login(name, password()).await {
            Ok(session) => return Ok(session.user),
            // Unknown account (or another password): create it below, then log in.
            Err(ClientError::BadCredentials) => {}
            Err(error) => return Err((Operation::Login, error)),
        }
    }
    handle.register(name, password()).await.map_err(|error| (Operation::Register, error))?;
    started.registered = true;
    let session = handle.login(name, password()).await.map_err(|error| (Operation::Login, error))?;
    Ok(session.user)
}

/// Reads bot `index`'s events until its client shuts down: measures each delivery, marks it in the ledger, and
/// notes transport changes and session failures. Reading promptly matters: the client library stops reading from
/// the server when its event queue is full.
async fn receive(
    shared: Arc<Shared>,
    index: usize,
    wanted: Transport,
    mut events: mpsc::Receiver<ClientEvent>,
) -> Received {
    let mut received = Received {
        latency: latency_histogram(),
        deliveries: 0,
        duplicates: 0,
        synced: 0,
        transport: wanted,
        fell_back: None,
        failures: Failures::default(),
    };
    while let Some(event) = events.recv().await {
        match event {
            ClientEvent::Message { message, source } => {
                let Some(stamp) = text::parse(shared.run_id, &message.text) else { continue };
                let latency_us = shared.now_us().saturating_sub(stamp.sent_at_us).clamp(1, MAX_LATENCY_US);
                match shared.ledger.delivered(message.id, index) {
                    Delivery::First => {
                        received.latency.saturating_record(latency_us);
                        received.deliveries += 1;
                        Live::bump(&shared.live.deliveries);
                    }
                    Delivery::Duplicate => received.duplicates += 1,
                }
                if source == MessageSource::Sync {
                    received.synced += 1;
                }
            }
            ClientEvent::TransportChanged { transport, reason } => {
                if wanted == Transport::Udp && transport == Transport::Tcp {
                    received.fell_back = Some(reason.to_string());
                }
                received.transport = transport;
            }
            ClientEvent::Disconnected { reason } => {
                received.failures.add_reason(Operation::Session, Reason::other("Disconnected", &reason));
            }
            ClientEvent::Error(error) => received.failures.add(Operation::Session, &error),
            _ => {}
        }
    }
    received
}
