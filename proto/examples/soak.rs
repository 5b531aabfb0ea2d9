//! Soak test: many messages between two engines through the impairment model, in simulated time.
//!
//! ```sh
//! cargo run --release -p chatlab-proto --example soak -- \
//!     --messages 100000 --loss 0.25 --duplicate 0.25 --jitter-ms 50 --seed 1
//! ```
//!
//! Loss, duplication, reordering and jitter apply to both directions (data and acks), each direction with its own
//! random stream derived from the seed. The last line printed is one JSON object (see `chatlab_proto::sim::SimReport`
//! for every field); the lines before it are a human summary, also on standard output. Same arguments, same output.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chatlab_proto::sim::{self, Scenario};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Two chatlab engines through a lossy simulated network; prints a JSON report as the last line")]
struct Args {
    /// Messages to send.
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
    /// Probability that a datagram is lost, in each direction.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Mean length of a loss burst in packets (Gilbert-Elliott model); 1 means independent (Bernoulli) losses.
    #[arg(long, default_value_t = 1.0)]
    burst: f64,
    /// Probability that a datagram is duplicated.
    #[arg(long, default_value_t = 0.0)]
    duplicate: f64,
    /// Probability that a datagram is held back by --reorder-ms, arriving after later ones.
    #[arg(long, default_value_t = 0.0)]
    reorder: f64,
    /// How long a reordered datagram is held back, in milliseconds.
    #[arg(long, default_value_t = 10.0)]
    reorder_ms: f64,
    /// Probability that a datagram has one bit flipped (the AEAD tag then rejects it).
    #[arg(long, default_value_t = 0.0)]
    corrupt: f64,
    /// Fixed one-way delay in milliseconds.
    #[arg(long, default_value_t = 0.05)]
    delay_ms: f64,
    /// Extra random one-way delay, uniform in [0, jitter], in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    jitter_ms: f64,
    /// Time between two messages in milliseconds; 0 sends as fast as the send window allows.
    #[arg(long, default_value_t = 5.0)]
    interval_ms: f64,
    /// Size of each message in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Conversations the messages are spread over.
    #[arg(long, default_value_t = 1)]
    streams: u32,
    /// Deliver each message at once instead of in order per conversation.
    #[arg(long)]
    unordered: bool,
    /// Lowest retransmission timeout in milliseconds.
    #[arg(long)]
    min_rto_ms: Option<f64>,
    /// Seed of the impairment model.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn millis(ms: f64) -> Duration {
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("soak: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, String> {
    let scenario = Scenario {
        messages: args.messages,
        message_bytes: args.size,
        interval: millis(args.interval_ms),
        streams: args.streams,
        loss: args.loss,
        burst: args.burst,
        delay: millis(args.delay_ms),
        jitter: millis(args.jitter_ms),
        duplicate: args.duplicate,
        reorder: args.reorder,
        reorder_delay: millis(args.reorder_ms),
        corrupt: args.corrupt,
        min_rto: args.min_rto_ms.map(millis),
        unordered: args.unordered,
        seed: args.seed,
    };
    let config = scenario.to_config().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let report = sim::run(&config).map_err(|e| e.to_string())?;
    let real = started.elapsed();
    println!(
        "soak: {} of {} messages delivered ({} duplicates, {} out of order) in {:.1} s simulated",
        report.delivered, report.sent, report.duplicates_delivered, report.out_of_order_delivered, report.sim_seconds,
    );
    // Real time goes to standard error: standard output stays identical for identical arguments.
    eprintln!("soak: {:.2} s of real time", real.as_secs_f64());
    println!(
        "soak: {} retransmissions ({} timeout, {} fast, {} spurious); latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        report.retransmissions,
        report.retransmissions_timeout,
        report.retransmissions_fast,
        report.spurious_retransmissions,
        report.p50_ms,
        report.p99_ms,
        report.max_ms
    );
    println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
    let exact = report.complete && report.duplicates_delivered == 0 && report.delivered == report.sent;
    Ok(if exact { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
