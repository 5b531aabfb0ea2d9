//! What an idle logged-in session costs the server: logs in N sessions (a share of them on UDP), keeps them alive
//! and idle, and reads the server's resident memory before and after.
//!
//! The server runs in its own process, so that its memory is its own:
//!
//! ```text
//! ulimit -n 20000
//! chatlab-server --listen 127.0.0.1:7979 --data /tmp/idle-data --max-connections-per-ip 20000 \
//!     --password-memory-kib 8 --password-iterations 1 &
//! ulimit -n 20000
//! cargo run --release -p chatlab-server --example idle_sessions -- \
//!     --server 127.0.0.1:7979 --data /tmp/idle-data --pid $! --sessions 10000 --udp-share 0.5
//! ```
//!
//! The accounts are written into the server's database first (registration is rate limited per address). Every
//! session is a distinct user, so every login is announced to every session already online, as in a real room.
//! Before the baseline, `--churn` sessions log in and out once: a server that has been running for a while has
//! freed memory of ended sessions, and the allocator treats later allocations differently after that (glibc raises
//! its threshold for giving large blocks their own pages), so a fresh process would flatter the figure.

#[path = "support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chatlab_proto::chat::ChatPayload;
use chatlab_proto::control::ClientMessage;
use chatlab_proto::datagram::Role;
use chatlab_proto::endpoint::Endpoint;
use chatlab_proto::engine::{EngineConfig, Event};
use clap::Parser;
use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, watch};

use support::proc::rss_kib;
use support::{Grant, RawClient, ensure_accounts};

/// Interval of the heartbeat `Ping` every session sends, as the real client does (the server closes a connection
/// that is silent for a minute).
const HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(Debug, Parser)]
struct Args {
    /// The server's address.
    #[arg(long)]
    server: SocketAddr,
    /// The server's data directory, where the accounts are written.
    #[arg(long)]
    data: PathBuf,
    /// The server's process id, for its memory.
    #[arg(long)]
    pid: u32,
    /// Sessions to log in.
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Share of the sessions that also open their UDP path.
    #[arg(long, default_value_t = 0.5)]
    udp_share: f64,
    /// Sessions that log in and out once before the baseline.
    #[arg(long, default_value_t = 200)]
    churn: usize,
    /// Logins in progress at once.
    #[arg(long, default_value_t = 64)]
    parallel: usize,
    /// Seconds to stay idle before the final reading.
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
}

/// One session, kept alive until `stop` changes: heartbeats over TCP, and an engine that answers the server's
/// keepalives over UDP when `udp` is set. Reads (and drops) whatever the server pushes.
async fn hold(mut client: RawClient, grant: Grant, udp: bool, mut stop: watch::Receiver<bool>) -> std::io::Result<()> {
    let mut udp_path = if udp { Some(UdpPath::open(&client, &grant).await?) } else { None };
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut nonce = 0;
    loop {
        let timer = udp_path.as_ref().and_then(UdpPath::timer);
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            read = client.read_some() => {
                read?;
                client.take_inbox();
            }
            _ = heartbeat.tick() => {
                nonce += 1;
                client.send(&ClientMessage::Ping { nonce }).await?;
            }
            received = recv_datagram(&mut udp_path) => received?,
            () = sleep_until(timer) => {
                if let Some(path) = udp_path.as_mut() {
                    path.endpoint.handle_timeout(path.epoch.elapsed());
                }
            }
        }
        if let Some(path) = udp_path.as_mut() {
            path.flush().await?;
        }
    }
}

/// A session's datagram path on the client's side.
struct UdpPath {
    socket: UdpSocket,
    endpoint: Endpoint,
    epoch: tokio::time::Instant,
    buf: Vec<u8>,
}

impl UdpPath {
    async fn open(client: &RawClient, grant: &Grant) -> std::io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        socket.connect(SocketAddr::new(client.server.ip(), grant.udp_port)).await?;
        let endpoint = Endpoint::new(
            grant.key_material.expose(),
            grant.connection_id,
            Role::Client,
            EngineConfig::default(),
            Duration::ZERO,
        )
        .map_err(std::io::Error::other)?;
        let mut path = Self { socket, endpoint, epoch: tokio::time::Instant::now(), buf: vec![0; 2048] };
        // The first authenticated datagram tells the server where this session's UDP path is.
        path.endpoint.ping();
        path.flush().await?;
        Ok(path)
    }

    fn timer(&self) -> Option<tokio::time::Instant> {
        self.endpoint.poll_timeout().map(|at| self.epoch + at)
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        let mut out = Vec::new();
        while self.endpoint.poll_datagram(self.epoch.elapsed(), &mut out).map_err(std::io::Error::other)? {
            self.socket.send(&out).await?;
        }
        while let Some(event) = self.endpoint.poll_event() {
            if let Event::Delivered(delivery) = event {
                let _ = ChatPayload::decode(&delivery.data);
            }
        }
        Ok(())
    }
}

async fn recv_datagram(path: &mut Option<UdpPath>) -> std::io::Result<()> {
    let Some(path) = path else { return std::future::pending().await };
    let n = path.socket.recv(&mut path.buf).await?;
    let now = path.epoch.elapsed();
    let _ = path.endpoint.handle_datagram(path.buf.get(..n).unwrap_or_default(), now);
    Ok(())
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Logs in `count` sessions named `prefix0..`, holding each until `stop`; returns how many logged in.
async fn log_in(args: &Args, prefix: &str, count: usize, stop: &watch::Receiver<bool>) -> usize {
    let permits = Arc::new(Semaphore::new(args.parallel));
    let online = Arc::new(AtomicUsize::new(0));
    let udp_every = if args.udp_share > 0.0 { (1.0 / args.udp_share).round().max(1.0) as usize } else { usize::MAX };
    let mut logins = tokio::task::JoinSet::new();
    for n in 0..count {
        let permit = Arc::clone(&permits).acquire_owned().await.expect("never closed");
        let (server, user, stop, online) = (args.server, format!("{prefix}{n}"), stop.clone(), Arc::clone(&online));
        logins.spawn(async move {
            let (client, grant) = match RawClient::user(server, &user).await {
                Ok(session) => session,
                Err(error) => {
                    eprintln!("{user}: {error}");
                    return;
                }
            };
            online.fetch_add(1, Ordering::Relaxed);
            drop(permit);
            if let Err(error) = hold(client, grant, n % udp_every == 0, stop).await {
                eprintln!("{user}: {error}");
                online.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }
    // Wait until every login finished (each task then holds its session until `stop`).
    let _ = permits.acquire_many(args.parallel as u32).await;
    tokio::spawn(async move { while logins.join_next().await.is_some() {} });
    online.load(Ordering::Relaxed)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let data = args.data.clone();
    let (sessions, churn) = (args.sessions, args.churn);
    tokio::task::spawn_blocking(move || {
        ensure_accounts(&data, "idle", sessions)?;
        ensure_accounts(&data, "churn", churn)
    })
    .await??;

    if args.churn > 0 {
        let (stop, stopped) = watch::channel(false);
        let online = log_in(&args, "churn", args.churn, &stopped).await;
        stop.send(true)?;
        println!("churn: {online} sessions logged in and out");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let before = rss_kib(args.pid)?;
    println!("server RSS before: {} KiB", before);

    let (stop, stopped) = watch::channel(false);
    let started = std::time::Instant::now();
    let online = log_in(&args, "idle", args.sessions, &stopped).await;
    println!("{online} of {} sessions logged in in {:.1} s", args.sessions, started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let after = rss_kib(args.pid)?;
    let per_session = (after.saturating_sub(before) as f64 * 1024.0) / online.max(1) as f64;
    println!("server RSS with {online} idle sessions: {after} KiB");
    println!("per session: {:.1} KiB ({:.0} bytes)", per_session / 1024.0, per_session);
    stop.send(true)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("server RSS after they left: {} KiB", rss_kib(args.pid)?);
    Ok(())
}
