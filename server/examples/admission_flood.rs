//! One address floods the server with connections and handshakes; does everyone else still get served?
//!
//! ```sh
//! cargo run --release -p chatlab-server -- --listen 127.0.0.1:7878 --data /tmp/flood &
//! cargo run --release -p chatlab-server --example admission_flood -- --server 127.0.0.1:7878 --pid $!
//! ```
//!
//! 1. `--users` users log in from 127.0.0.1 and chat one to one (each to the next), `--chat-rate` messages a second
//!    each, over TCP; every acknowledgement's round trip is a sample. The first `--phase-secs` are the unloaded
//!    baseline.
//! 2. Then the attacker at 127.0.0.2 opens `--connections` connections and keeps them open, and starts
//!    `--handshakes-per-sec` new connections a second (each sends the first Noise handshake message and hangs up),
//!    for another `--phase-secs`, while the users keep chatting.
//! 3. Half-way through the attack, newcomers from 127.0.0.3 (one a second, `--newcomers` of them) each register,
//!    log in and send one chat; the time from `connect` to the chat's acknowledgement is reported for each.
//!
//! The output compares the users' acknowledgement p50/p99/max without and under attack, the attack rate actually
//! achieved, and the newcomers' times. With `--pid` it adds the server's CPU time during each phase.

#[allow(dead_code)]
#[path = "support/proc.rs"]
mod proc;
#[allow(dead_code)]
#[path = "../tests/integration/support.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chatlab_proto::chat::Target;
use clap::Parser;
use support::{Client, PASSWORD, connect_from, name};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

const USERS_AT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const NEWCOMERS_AT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

#[derive(Debug, Parser)]
struct Args {
    /// The server's address.
    #[arg(long, default_value = "127.0.0.1:7878")]
    server: SocketAddr,
    /// The server's process id, for its CPU time.
    #[arg(long)]
    pid: Option<u32>,
    /// Users online, chatting.
    #[arg(long, default_value_t = 8)]
    users: usize,
    /// Chat messages per second per user.
    #[arg(long, default_value_t = 20.0)]
    chat_rate: f64,
    /// Connections the attacker opens and holds.
    #[arg(long, default_value_t = 2000)]
    connections: usize,
    /// New connections per second the attacker starts.
    #[arg(long, default_value_t = 4000.0)]
    handshakes_per_sec: f64,
    /// Length of the unloaded phase and of the attack, in seconds.
    #[arg(long, default_value_t = 10)]
    phase_secs: u64,
    /// Newcomers from another address during the attack.
    #[arg(long, default_value_t = 5)]
    newcomers: usize,
    /// Prefix of the user names (change it to run again against the same data directory).
    #[arg(long, default_value = "f")]
    prefix: String,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn summary(label: &str, samples: &mut [Duration]) -> Duration {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p99 = percentile(samples, 0.99);
    println!(
        "{label:<12} {:>6} acks   p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        samples.len(),
        ms(percentile(samples, 0.5)),
        ms(p99),
        ms(samples.last().copied().unwrap_or_default())
    );
    p99
}

/// Opens `count` connections and holds them, and starts `rate` new connections a second (each sends the first
/// handshake message and hangs up) until `stop`; returns the held connections.
async fn attack(
    server: SocketAddr,
    count: usize,
    rate: f64,
    attempts: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::net::TcpStream> {
    const FLOODERS: usize = 16;
    let mut flooders = tokio::task::JoinSet::new();
    for _ in 0..FLOODERS {
        let (attempts, stop) = (Arc::clone(&attempts), Arc::clone(&stop));
        let period = Duration::from_secs_f64(FLOODERS as f64 / rate);
        flooders.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let msg1 = chatlab_proto::noise::Initiator::new().unwrap().start().unwrap();
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                if let Ok(mut stream) = connect_from(server, ATTACKER).await {
                    let _ = stream.write_all(&msg1).await;
                }
                attempts.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        if let Ok(stream) = connect_from(server, ATTACKER).await {
            held.push(stream);
        }
    }
    while flooders.join_next().await.is_some() {}
    held
}

/// Logs a user in from `from`, registering the account if needed.
async fn user(server: SocketAddr, from: IpAddr, user: &str) -> Client {
    let mut client = Client::connect_from(server, from).await;
    let _ = client.register(user, PASSWORD).await;
    client.login(user, PASSWORD).await.unwrap_or_else(|code| panic!("login {user}: {code}"));
    client
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let samples: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut chatters = tokio::task::JoinSet::new();
    let names: Vec<String> = (0..args.users).map(|n| format!("{}user{n}", args.prefix)).collect();
    let mut clients = Vec::new();
    for user_name in &names {
        clients.push(user(args.server, USERS_AT, user_name).await);
    }
    for (index, mut client) in clients.into_iter().enumerate() {
        let peer = name(&names[(index + 1) % names.len()]);
        let (samples, stop) = (Arc::clone(&samples), Arc::clone(&stop));
        let period = Duration::from_secs_f64(1.0 / args.chat_rate);
        chatters.spawn(async move {
            let mut tick = tokio::time::interval(period);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let sent = Instant::now();
                client.chat(Target::User(peer.clone()), &format!("message {n}")).await.expect("chat acknowledged");
                samples.lock().await.push((sent, sent.elapsed()));
                n += 1;
                // Throw away what was pushed to us, so the test client's own inbox does not grow.
                while client.recv_within(Duration::ZERO).await.is_some() {}
            }
        });
    }

    let phase = Duration::from_secs(args.phase_secs);
    let cpu_start = args.pid.and_then(proc::cpu_secs);
    tokio::time::sleep(phase).await;
    let attack_start = Instant::now();
    let cpu_attack = args.pid.and_then(proc::cpu_secs);

    // The attack runs on a thread and runtime of its own, so that its tasks do not delay the chatters' tasks in
    // this process (which would count against the server in the figures): connections held open, and a paced
    // stream of new connections.
    let attempts = Arc::new(AtomicU64::new(0));
    let attack_stop = Arc::new(AtomicBool::new(false));
    let attack = {
        let (attempts, attack_stop) = (Arc::clone(&attempts), Arc::clone(&attack_stop));
        let (server, count, rate) = (args.server, args.connections, args.handshakes_per_sec);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(attack(server, count, rate, attempts, attack_stop))
        })
    };

    tokio::time::sleep(phase / 2).await;
    let mut newcomer_times = Vec::new();
    let mut refused = 0;
    for n in 0..args.newcomers {
        let started = Instant::now();
        let newcomer_name = format!("{}new{n}", args.prefix);
        let outcome = match Client::try_connect_from(args.server, NEWCOMERS_AT).await {
            None => Err("connection refused".to_owned()),
            Some(mut newcomer) => async {
                newcomer.register(&newcomer_name, PASSWORD).await.map_err(|code| format!("register: {code}"))?;
                newcomer.login(&newcomer_name, PASSWORD).await.map_err(|code| format!("login: {code}"))?;
                newcomer.chat(Target::World, "hello from another address").await.map_err(|code| format!("chat: {code}"))
            }
            .await
            .map(drop),
        };
        let took = started.elapsed();
        match outcome {
            Ok(()) => {
                println!(
                    "newcomer {n}: connect, register, login, first chat acknowledged in {:.1} ms",
                    took.as_secs_f64() * 1e3
                );
                newcomer_times.push(took);
            }
            Err(why) => {
                println!("newcomer {n}: failed after {:.1} ms: {why}", took.as_secs_f64() * 1e3);
                refused += 1;
            }
        }
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(took)).await;
    }
    let left = (attack_start + phase).saturating_duration_since(Instant::now());
    tokio::time::sleep(left).await;
    let attack_secs = attack_start.elapsed().as_secs_f64();
    let cpu_end = args.pid.and_then(proc::cpu_secs);
    attack_stop.store(true, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    while chatters.join_next().await.is_some() {}
    let held = attack.join().expect("the attack thread");

    let all = samples.lock().await;
    let mut before: Vec<Duration> = all.iter().filter(|(at, _)| *at < attack_start).map(|(_, d)| *d).collect();
    let mut during: Vec<Duration> = all.iter().filter(|(at, _)| *at >= attack_start).map(|(_, d)| *d).collect();
    println!(
        "attack: {} connections opened and held by the client ({} still open on our side), {:.0} new connections/s",
        args.connections,
        held.len(),
        attempts.load(Ordering::Relaxed) as f64 / attack_secs
    );
    let quiet = summary("unloaded", &mut before);
    let loaded = summary("under attack", &mut during);
    println!("p99 ratio under attack / unloaded: {:.2}", loaded.as_secs_f64() / quiet.as_secs_f64().max(1e-9));
    if let Some(worst) = newcomer_times.iter().max() {
        println!("slowest newcomer: {:.1} ms", worst.as_secs_f64() * 1e3);
    }
    println!("newcomers: {} got in, {refused} failed", newcomer_times.len());
    if let (Some(start), Some(attack), Some(end)) = (cpu_start, cpu_attack, cpu_end) {
        println!(
            "server CPU: {:.0} % of a core unloaded, {:.0} % under attack",
            (attack - start) / phase.as_secs_f64() * 100.0,
            (end - attack) / attack_secs * 100.0
        );
    }
}
