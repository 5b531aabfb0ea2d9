//! `chatlab-lab`: reproducible classroom experiments.
//!
//! ```sh
//! chatlab-lab sweep --knob loss --values 0,0.05,0.1,0.2
//! chatlab-lab sweep --knob min-rto-ms --values 2,20,200 --loss 0.1 --format csv
//! chatlab-lab relay --listen 0.0.0.0:7979 --server 127.0.0.1:7878 --loss 0.1 --jitter-ms 5
//! ```

use std::process::ExitCode;
use std::time::Duration;

use chatlab_labs::relay::{self, RelayConfig};
use chatlab_labs::sweep::{self, Knob};
use chatlab_proto::sim::Scenario;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "chatlab-lab", about = "Reproducible chatlab experiments in simulated time")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate the same conversation once per value of one knob and print a table.
    Sweep {
        /// The knob to vary.
        #[arg(long, value_enum)]
        knob: Knob,
        /// Comma-separated values of the knob.
        #[arg(long, value_delimiter = ',', required = true)]
        values: Vec<f64>,
        /// Messages per simulation.
        #[arg(long, default_value_t = 10_000)]
        messages: u64,
        /// Message size in bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Milliseconds between messages.
        #[arg(long, default_value_t = 5.0)]
        interval_ms: f64,
        /// Loss probability in each direction (when the knob is not loss).
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Mean loss burst length in packets; 1 = independent losses.
        #[arg(long, default_value_t = 1.0)]
        burst: f64,
        /// One-way delay in milliseconds.
        #[arg(long, default_value_t = 0.05)]
        delay_ms: f64,
        /// Jitter in milliseconds (when the knob is not jitter).
        #[arg(long, default_value_t = 0.0)]
        jitter_ms: f64,
        /// Duplication probability (when the knob is not duplicate).
        #[arg(long, default_value_t = 0.0)]
        duplicate: f64,
        /// Reordering probability (when the knob is not reorder).
        #[arg(long, default_value_t = 0.0)]
        reorder: f64,
        /// Lowest RTO in milliseconds (when the knob is not min-rto-ms).
        #[arg(long)]
        min_rto_ms: Option<f64>,
        /// Deliver messages as they complete instead of in order.
        #[arg(long)]
        unordered: bool,
        /// Seed of the impairment model.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Relay TCP and UDP to a real server, impairing the datagrams in both directions. Start the server with
    /// `--udp-advertise-port` set to the relay's port so clients send their datagrams through the relay.
    Relay {
        /// Where the relay listens (TCP and UDP on the same port).
        #[arg(long, default_value = "0.0.0.0:7979")]
        listen: std::net::SocketAddr,
        /// The real server.
        #[arg(long, default_value = "127.0.0.1:7878")]
        server: std::net::SocketAddr,
        /// Loss probability in each direction.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Mean loss burst length in packets; 1 = independent losses.
        #[arg(long, default_value_t = 1.0)]
        burst: f64,
        /// One-way delay in milliseconds.
        #[arg(long, default_value_t = 0.0)]
        delay_ms: f64,
        /// Jitter in milliseconds.
        #[arg(long, default_value_t = 0.0)]
        jitter_ms: f64,
        /// Duplication probability.
        #[arg(long, default_value_t = 0.0)]
        duplicate: f64,
        /// Reordering probability.
        #[arg(long, default_value_t = 0.0)]
        reorder: f64,
        /// Seed of the impairment model.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn run_relay(listen: std::net::SocketAddr, server: std::net::SocketAddr, scenario: &Scenario) -> Result<(), String> {
    let sim = scenario.to_config().map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let tcp = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let port = tcp.local_addr().map_err(|e| e.to_string())?;
        let udp = tokio::net::UdpSocket::bind(port).await.map_err(|e| format!("cannot bind UDP {port}: {e}"))?;
        let config = RelayConfig { upstream: sim.forward, downstream: sim.backward, record: false };
        relay::start(tcp, udp, server, config).map_err(|e| e.to_string())?;
        println!("chatlab-lab relay: {port} -> {server} (TCP copied, UDP impaired); Ctrl+C stops");
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
    })
}

fn millis(ms: f64) -> Duration {
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Relay { listen, server, loss, burst, delay_ms, jitter_ms, duplicate, reorder, seed } => {
            let scenario = Scenario {
                loss,
                burst,
                delay: millis(delay_ms),
                jitter: millis(jitter_ms),
                duplicate,
                reorder,
                seed,
                ..Scenario::default()
            };
            match run_relay(listen, server, &scenario) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("chatlab-lab relay: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Sweep {
            knob,
            values,
            messages,
            size,
            interval_ms,
            loss,
            burst,
            delay_ms,
            jitter_ms,
            duplicate,
            reorder,
            min_rto_ms,
            unordered,
            seed,
            format,
        } => {
            let base = Scenario {
                messages,
                message_bytes: size,
                interval: millis(interval_ms),
                loss,
                burst,
                delay: millis(delay_ms),
                jitter: millis(jitter_ms),
                duplicate,
                reorder,
                min_rto: min_rto_ms.map(millis),
                unordered,
                seed,
                ..Scenario::default()
            };
            let rows = match sweep::run(&base, knob, &values) {
                Ok(rows) => rows,
                Err(e) => {
                    eprintln!("chatlab-lab: {e}");
                    return ExitCode::from(2);
                }
            };
            match format {
                Format::Table => print!("{}", sweep::to_table(&rows)),
                Format::Csv => print!("{}", sweep::to_csv(&rows)),
                Format::Json => {
                    for row in &rows {
                        match serde_json::to_string(row) {
                            Ok(line) => println!("{line}"),
                            Err(e) => {
                                eprintln!("chatlab-lab: {e}");
                                return ExitCode::FAILURE;
                            }
                        }
                    }
                }
            }
            if rows.iter().all(|r| r.report.complete) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
    }
}
