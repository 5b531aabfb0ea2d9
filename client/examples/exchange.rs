//! Two clients of the client library exchange messages through a running server, as fast as the server accepts
//! them, and report messages per second for one transport.
//!
//! ```sh
//! chatlab-server --listen 127.0.0.1:7878 --flood-rate 1000000 --flood-burst 1000000 &
//! cargo run --release -p chatlab-client --example exchange -- --server 127.0.0.1:7878 --transport udp --messages 5000
//! ```
//!
//! Ann sends `--messages` private messages to Bob, keeping `--window` of them waiting for the server's
//! acknowledgement at a time; the clock stops when Bob has received the last one. Both accounts are registered
//! on first use with the password from `CHATLAB_PASSWORD` (default `exchange-example`).

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chatlab_client::{Client, ClientConfig, ClientEvent, Password, Target, Transport, Username};
use clap::Parser;
use tokio::task::JoinSet;

#[derive(Parser, Debug)]
struct Args {
    /// The server, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:7878")]
    server: String,
    /// `udp` or `tcp`.
    #[arg(long, default_value = "udp")]
    transport: String,
    /// Messages to send.
    #[arg(long, default_value_t = 5000)]
    messages: u64,
    /// Messages waiting for the server's acknowledgement at once.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Known-servers file (a temporary one by default, so the example never touches yours).
    #[arg(long)]
    known_servers: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exchange: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let transport = match args.transport.as_str() {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        other => return Err(format!("--transport must be udp or tcp, not {other:?}")),
    };
    let password = std::env::var("CHATLAB_PASSWORD").unwrap_or_else(|_| "exchange-example".into());
    let known = match args.known_servers {
        Some(path) => path,
        None => std::env::temp_dir().join(format!("chatlab-exchange-known-{}", std::process::id())),
    };
    let mut config = ClientConfig::new(args.server.clone(), known);
    config.transport = transport;

    let mut clients = Vec::new();
    for name in ["exchange-ann", "exchange-bob"] {
        let (handle, events) = Client::connect(config.clone()).await.map_err(|e| e.to_string())?;
        let _ = handle.register(name, Password::new(password.clone())).await;
        handle.login(name, Password::new(password.clone())).await.map_err(|e| format!("{name}: {e}"))?;
        if transport == Transport::Tcp {
            handle.set_transport(Transport::Tcp).await.map_err(|e| e.to_string())?;
        }
        clients.push((handle, events));
    }
    let (bob, mut bob_events) = clients.pop().ok_or("no bob")?;
    let (ann, mut ann_events) = clients.pop().ok_or("no ann")?;
    // The core waits for its owner to read events (back-pressure), so ann's must be read too.
    tokio::spawn(async move { while ann_events.recv().await.is_some() {} });
    let to = Target::User(Username::parse("exchange-bob").map_err(|e| e.to_string())?);

    let total = args.messages;
    let started = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut seen = HashSet::new();
        while (seen.len() as u64) < total {
            match tokio::time::timeout(Duration::from_secs(30), bob_events.recv()).await {
                Ok(Some(ClientEvent::Message { message, .. })) if message.text.starts_with("exchange ") => {
                    seen.insert(message.id);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        seen.len() as u64
    });
    let mut in_flight = JoinSet::new();
    for i in 0..total {
        while in_flight.len() >= args.window.max(1) {
            if let Some(Ok(Err(e))) = in_flight.join_next().await {
                return Err(format!("send failed: {e}"));
            }
        }
        let ann = ann.clone();
        let to = to.clone();
        in_flight.spawn(async move { ann.send(to, &format!("exchange {i}")).await.map(|_| ()) });
    }
    while let Some(result) = in_flight.join_next().await {
        if let Ok(Err(e)) = result {
            return Err(format!("send failed: {e}"));
        }
    }
    let acked_at = started.elapsed();
    let received = receiver.await.map_err(|e| e.to_string())?;
    let done_at = started.elapsed();
    println!(
        "{:?}: {total} messages acknowledged in {:.2} s, {received} received in {:.2} s: {:.0} messages/s end to end",
        transport,
        acked_at.as_secs_f64(),
        done_at.as_secs_f64(),
        received as f64 / done_at.as_secs_f64()
    );
    bob.shutdown().await;
    ann.shutdown().await;
    if received == total { Ok(()) } else { Err(format!("only {received} of {total} messages arrived")) }
}
