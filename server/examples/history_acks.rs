//! Do history reads delay other people's chat? Measures how long the server takes to acknowledge one user's chat
//! messages over TCP, first on an idle server, then while `--syncers` sessions page through the whole world
//! history in a loop, and prints p50/p99/max of both.
//!
//! The server runs in its own process:
//!
//! ```text
//! chatlab-server --listen 127.0.0.1:7980 --data /tmp/acks-data --password-memory-kib 8 --password-iterations 1 \
//!     --flood-rate 10000 --flood-burst 10000 --max-connections-per-ip 1000 &
//! cargo run --release -p chatlab-server --example history_acks -- \
//!     --server 127.0.0.1:7980 --data /tmp/acks-data --syncers 32 --history 2000
//! ```
//!
//! The flood limits are raised because the measured user sends 100 messages a second, and the connection limit
//! because all the sessions come from one address. The accounts and a world history of `--history` messages are
//! written into the server's database first. The
//! measured user sends a private message to a second user every `--interval-ms` and times the `ChatAccepted`: the
//! server answers only after the message is durable, so this is the full path of a chat message through the hub
//! and the storage writer, the one that must not wait behind history pages.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chatlab_proto::chat::{Target, Username};
use chatlab_proto::control::{ClientMessage, ErrorCode, ServerMessage};
use clap::Parser;
use tokio::sync::watch;

use support::{RawClient, ensure_accounts, ensure_world_history, ms, quantile};

/// Messages asked for per history page: the protocol's largest page.
const PAGE: u16 = 500;

/// Wait after a `TooManyRequests` before asking again: the request budget refills continuously.
const BUDGET_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, Parser)]
struct Args {
    /// The server's address.
    #[arg(long)]
    server: SocketAddr,
    /// The server's data directory, where the accounts and the history are written.
    #[arg(long)]
    data: PathBuf,
    /// Sessions syncing the whole history in a loop during the loaded phase.
    #[arg(long, default_value_t = 32)]
    syncers: usize,
    /// World messages in the history.
    #[arg(long, default_value_t = 2000)]
    history: usize,
    /// Bytes of text per history message.
    #[arg(long, default_value_t = 100)]
    text_len: usize,
    /// Acknowledgements timed per phase.
    #[arg(long, default_value_t = 1000)]
    samples: usize,
    /// Time between two timed messages.
    #[arg(long, default_value_t = 10)]
    interval_ms: u64,
}

/// Sends `count` private messages from `sender` to `to`, one per interval, and times each acknowledgement.
async fn time_acks(
    sender: &mut RawClient,
    to: &Username,
    count: usize,
    interval: Duration,
) -> std::io::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(count);
    let mut tick = tokio::time::interval(interval);
    for _ in 0..count {
        tick.tick().await;
        let started = Instant::now();
        let id = sender.chat(Target::User(to.clone()), "are you there?").await?;
        loop {
            match sender.recv().await? {
                ServerMessage::ChatAccepted { client_msg_id, .. } if client_msg_id == id => break,
                ServerMessage::ChatRejected { client_msg_id, code, message } if client_msg_id == id => {
                    return Err(std::io::Error::other(format!("refused: {code}: {message}")));
                }
                _ => {}
            }
        }
        samples.push(started.elapsed());
    }
    Ok(samples)
}

/// Reads whatever `client` is sent until `stop`, so that its session queue never fills.
async fn drain(mut client: RawClient, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            read = client.read_some() => {
                if read.is_err() {
                    return;
                }
                client.take_inbox();
            }
        }
    }
}

/// Syncs the whole history, page by page, until `stop`; counts the messages received.
async fn sync_loop(
    mut client: RawClient,
    pages: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut after_id = 0;
    while !*stop.borrow() {
        let req = client.next_id() as u32;
        client.send(&ClientMessage::SyncHistory { req, after_id, limit: PAGE }).await?;
        loop {
            let message = tokio::select! {
                _ = stop.changed() => return Ok(()),
                message = client.recv() => message?,
            };
            match message {
                ServerMessage::HistoryPage { req: r, messages, more } if r == req => {
                    pages.fetch_add(1, Ordering::Relaxed);
                    after_id = if more { messages.last().map_or(0, |m| m.id) } else { 0 };
                    break;
                }
                ServerMessage::Error { req: Some(r), code: ErrorCode::TooManyRequests, .. } if r == req => {
                    tokio::time::sleep(BUDGET_BACKOFF).await;
                    break;
                }
                ServerMessage::Error { req: Some(r), code, message } if r == req => {
                    return Err(std::io::Error::other(format!("sync refused: {code}: {message}")));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn report(phase: &str, samples: &mut [Duration]) {
    println!(
        "{phase}: {} acks, p50 {} ms, p99 {} ms, max {} ms",
        samples.len(),
        ms(quantile(samples, 0.5)),
        ms(quantile(samples, 0.99)),
        ms(quantile(samples, 1.0)),
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (data, syncers, history, text_len) = (args.data.clone(), args.syncers, args.history, args.text_len);
    tokio::task::spawn_blocking(move || -> Result<(), chatlab_server::storage::StorageError> {
        let ids = ensure_accounts(&data, "acks", 2)?;
        ensure_accounts(&data, "sync", syncers)?;
        ensure_world_history(&data, ids[0], history, text_len)
    })
    .await??;

    let (stop, stopped) = watch::channel(false);
    let (mut sender, _) = RawClient::user(args.server, "acks0").await?;
    let (peer, _) = RawClient::user(args.server, "acks1").await?;
    tokio::spawn(drain(peer, stopped.clone()));
    let to = Username::parse("acks1")?;
    let interval = Duration::from_millis(args.interval_ms);

    // Warm up (connections, caches, the writer), then the idle baseline.
    time_acks(&mut sender, &to, 50, interval).await?;
    let mut idle = time_acks(&mut sender, &to, args.samples, interval).await?;
    report("idle server", &mut idle);

    let pages = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..args.syncers {
        let (client, _) = RawClient::user(args.server, &format!("sync{n}")).await?;
        tasks.spawn(sync_loop(client, Arc::clone(&pages), stopped.clone()));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = (pages.load(Ordering::Relaxed), Instant::now());
    let mut loaded = time_acks(&mut sender, &to, args.samples, interval).await?;
    let served = pages.load(Ordering::Relaxed) - before.0;
    let rate = served as f64 / before.1.elapsed().as_secs_f64();
    report(&format!("{} sessions syncing {} messages in a loop", args.syncers, args.history), &mut loaded);
    println!("history pages served meanwhile: {served} ({rate:.0} pages/s, up to {PAGE} messages each)");
    stop.send(true)?;
    while let Some(result) = tasks.join_next().await {
        if let Ok(Err(error)) = result {
            eprintln!("a syncer stopped: {error}");
        }
    }
    Ok(())
}
