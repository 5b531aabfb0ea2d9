//! Register, log in and log out again, many times, and watch the server's memory (`VmRSS`) before and after.
//!
//! ```sh
//! cargo run --release -p chatlab-server -- --listen 127.0.0.1:7878 --data /tmp/cycles &
//! cargo run --release -p chatlab-server --example login_cycles -- --server 127.0.0.1:7878 --pid $! --cycles 500
//! ```
//!
//! Each cycle is one connection: handshake, `Register`, `Login`, `Logout`, close. Cycles come from `--addresses`
//! loopback addresses (127.0.0.2, 127.0.0.3, ...) in turn, so the per-address registration limit is not what is
//! measured. With `--pid` the example reads the server's resident memory from `/proc/PID/status` before the first
//! cycle, right after the last, and again after `--settle-secs`, when every session has ended.

#[path = "support/proc.rs"]
mod proc;
#[allow(dead_code)]
#[path = "../tests/integration/support.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chatlab_proto::control::{ClientMessage, ServerMessage};
use clap::Parser;
use support::{Client, PASSWORD};

#[derive(Debug, Parser)]
struct Args {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:7878")]
    server: SocketAddr,
    /// The server's process id, to read its memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Register + login + logout cycles.
    #[arg(long, default_value_t = 500)]
    cycles: usize,
    /// Cycles running at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Loopback source addresses to spread the cycles over (127.0.0.2 onwards).
    #[arg(long, default_value_t = 64)]
    addresses: u8,
    /// Seconds to wait after the last cycle before the final reading.
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
    /// Prefix of the user names (change it to run again against the same data directory).
    #[arg(long, default_value = "cycle")]
    prefix: String,
}

fn show(label: &str, pid: Option<u32>) -> Option<u64> {
    let kib = pid.and_then(|pid| proc::rss_kib(pid).ok());
    if let Some(kib) = kib {
        println!("{label:<28} VmRSS {:>8.1} MiB", kib as f64 / 1024.0);
    }
    kib
}

async fn cycle(server: SocketAddr, from: IpAddr, user: &str) {
    let mut client = Client::connect_from(server, from).await;
    client.register(user, PASSWORD).await.unwrap_or_else(|code| panic!("register {user}: {code}"));
    client.login(user, PASSWORD).await.unwrap_or_else(|code| panic!("login {user}: {code}"));
    client.send(&ClientMessage::Logout).await;
    client.expect(|m| matches!(m, ServerMessage::LoggedOut).then_some(())).await;
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let before = show("before", args.pid);
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let next = Arc::clone(&next);
        let prefix = args.prefix.clone();
        let (server, cycles, addresses) = (args.server, args.cycles, args.addresses.max(1));
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= cycles {
                    return;
                }
                let from = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % usize::from(addresses)) as u8));
                cycle(server, from, &format!("{prefix}{n}")).await;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.expect("a cycle failed");
    }
    let elapsed = started.elapsed();
    println!(
        "{} register+login+logout cycles in {:.1} s ({:.1} per second)",
        args.cycles,
        elapsed.as_secs_f64(),
        args.cycles as f64 / elapsed.as_secs_f64()
    );
    show("right after the last cycle", args.pid);
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let after = show(&format!("{} s later", args.settle_secs), args.pid);
    if let (Some(before), Some(after)) = (before, after) {
        println!("growth: {:+.1} MiB", (after as f64 - before as f64) / 1024.0);
    }
}
