//! Two clients of the client library exchange messages through a running server, as fast as the server accepts
//! them, and report messages per second for one transport.
//!
//! ```sh
//! chatlab-server --listen 127.0.0.1:7878 --flood-rate 1000000 --flood-burst 1000000 &
//! cargo run --release -p chatlab-client --example exchange -- --server 127.0.0.1:7878 --transport udp --messages 5000
//! cargo run --release -p chatlab-client --example exchange -- --transport udp --messages 10000 --window 0   # a blast
//! ```
//!
//! Ann queues `--messages` private messages to Bob one after the other ([`ClientHandle::queue`]), keeping at most
//! `--window` of them waiting for the server's acknowledgement (0: no limit, every message is queued at once and
//! the library itself waits for room); the clock stops when Bob has received the last one. Bob checks that every
//! message arrived exactly once and in the order sent; the example exits non-zero otherwise, or if any message
//! failed. Both accounts are registered on first use with the password from `CHATLAB_PASSWORD` (default
//! `exchange-example`).
//!
//! [`ClientHandle::queue`]: chatlab_client::ClientHandle::queue

use std::collections::VecDeque;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chatlab_client::{Client, ClientConfig, ClientEvent, Password, Target, Transport, Username};
use clap::Parser;

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
    /// Messages waiting for the server's acknowledgement at once (0: no limit, the library waits for room).
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
    // Earlier runs' messages would come back in a history sync and be counted as duplicates.
    config.sync_on_login = false;

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
    // Messages of earlier runs may still reach bob (the server delivers what it has no receipt for at his next
    // login): a tag of this run tells them apart.
    let run = format!("exchange {}-{} ", std::process::id(), started_at_ms());
    let tag = run.clone();
    let started = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut report = Arrivals::default();
        while report.received < total {
            match tokio::time::timeout(Duration::from_secs(30), bob_events.recv()).await {
                Ok(Some(ClientEvent::Message { message, .. })) => {
                    if let Some(number) = message.text.strip_prefix(&tag).and_then(|n| n.parse().ok()) {
                        report.arrived(number);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        report
    });
    let window = if args.window == 0 { usize::MAX } else { args.window };
    let mut waiting = VecDeque::new();
    let mut failed = 0u64;
    for i in 0..total {
        if waiting.len() >= window {
            if let Some(acceptance) = waiting.pop_front() {
                failed += u64::from(!finished(acceptance).await);
            }
        }
        // In order: each message has its place in the send queue before the next is queued.
        let sending = ann.queue(to.clone(), &format!("{run}{i}")).await.map_err(|e| format!("message {i}: {e}"))?;
        waiting.push_back(tokio::spawn(sending.accepted()));
    }
    for acceptance in waiting {
        failed += u64::from(!finished(acceptance).await);
    }
    let acked_at = started.elapsed();
    let arrivals = receiver.await.map_err(|e| e.to_string())?;
    let done_at = started.elapsed();
    println!(
        "{:?}: {total} messages acknowledged in {:.2} s ({failed} failed), {} received in {:.2} s: {:.0} messages/s \
         end to end; {} duplicates, {} out of order",
        transport,
        acked_at.as_secs_f64(),
        arrivals.received,
        done_at.as_secs_f64(),
        arrivals.received as f64 / done_at.as_secs_f64(),
        arrivals.duplicates,
        arrivals.out_of_order,
    );
    bob.shutdown().await;
    ann.shutdown().await;
    match (failed, arrivals.received == total && arrivals.duplicates == 0 && arrivals.out_of_order == 0) {
        (0, true) => Ok(()),
        (0, false) => Err(format!("{} of {total} messages arrived exactly once and in order", arrivals.in_order)),
        (failed, _) => Err(format!("{failed} of {total} messages failed")),
    }
}

/// Milliseconds since the Unix epoch, to tag a run.
fn started_at_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// Whether a message's acceptance came; prints the failure otherwise.
async fn finished(
    acceptance: tokio::task::JoinHandle<Result<chatlab_client::Accepted, chatlab_client::ClientError>>,
) -> bool {
    match acceptance.await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            eprintln!("exchange: send failed: {e}");
            false
        }
        Err(e) => {
            eprintln!("exchange: {e}");
            false
        }
    }
}

/// What Bob saw: messages are numbered from 0, and must come each once, in that order.
#[derive(Debug, Default)]
struct Arrivals {
    received: u64,
    /// Messages that came exactly where expected: the next number each time.
    in_order: u64,
    duplicates: u64,
    out_of_order: u64,
}

impl Arrivals {
    fn arrived(&mut self, number: u64) {
        self.received += 1;
        if number == self.in_order {
            self.in_order += 1;
        } else if number < self.in_order {
            self.duplicates += 1;
        } else {
            self.out_of_order += 1;
        }
    }
}
