//! `chatlab-lab`: reproducible classroom experiments.
//!
//! ```sh
//! chatlab-lab sweep --knob loss --values 0,0.05,0.1,0.2
//! chatlab-lab sweep --knob min-rto-ms --values 2,20,200 --loss 0.1 --format csv
//! chatlab-lab relay --listen 0.0.0.0:7979 --server 127.0.0.1:7878 --loss 0.1 --jitter-ms 5
//! chatlab-lab load --server 127.0.0.1:7878 --bots 200 --rate 2 --duration 30 --server-pid 4242
//! ```

use std::process::ExitCode;
use std::time::Duration;

use chatlab_labs::load::{self, LoadConfig, TransportMix};
use chatlab_labs::relay::{self, RelayConfig};
use chatlab_labs::sweep::{self, Knob};
use chatlab_proto::sim::Scenario;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "chatlab-lab",
    about = "chatlab classroom experiments: simulated sweeps, an impairing relay, a load test"
)]
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
    /// Many bot users against a real server: logins/s, messages/s, delivery latency, refusals by reason, and the
    /// server's memory and CPU (the "server under load" experiment).
    #[command(after_long_help = LOAD_HELP)]
    Load(LoadArgs),
}

/// The part of `chatlab-lab load --help` that explains the server's limits.
const LOAD_HELP: &str = "\
A server with its default limits refuses a big load from one machine, on purpose: it allows each address a few \
dozen connections (--max-connections-per-ip), each user a burst and a steady rate of chat messages (--flood-burst, \
--flood-rate), and each address a few registrations (--max-registrations-per-ip). The report counts these refusals \
by operation and reason. To measure the server itself rather than its limits, start it with the limits raised:

  chatlab-server --listen 127.0.0.1:7878 --data /tmp/load-data \\
      --max-connections-per-ip 100000 --flood-rate 1000000 --flood-burst 1000000 --max-registrations-per-ip 100000 &
  chatlab-lab load --server 127.0.0.1:7878 --bots 200 --rate 2 --duration 30 --server-pid $!

Phases: all bots log in first (at --login-rate), then chat for --duration, then the run waits up to --drain for \
the last deliveries, logs every bot out and, after --settle, reads the server once more. The table goes to \
standard output; --json FILE writes the same figures as JSON (--json - to standard output instead of the table). \
Exit status: 0 when every accepted message reached every bot it should have, 1 when some did not or no bot logged \
in, 2 when the run could not start.";

#[derive(clap::Args, Debug)]
struct LoadArgs {
    /// The server, HOST:PORT.
    #[arg(long, env = "CHATLAB_SERVER", default_value = "127.0.0.1:7878")]
    server: String,
    /// Bots that chat.
    #[arg(long, default_value_t = 10)]
    bots: usize,
    /// Further bots that log in and stay, only reading (they receive every world message).
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// Chat messages per second, per chatting bot (the total is bots x rate).
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Share of the messages that go to the world room (each reaches every other bot); the rest go one to one to
    /// a random other chatting bot.
    #[arg(long, default_value_t = 0.1)]
    world_share: f64,
    /// Bots starting (connect, register or reuse, log in) per second.
    #[arg(long, default_value_t = 50.0)]
    login_rate: f64,
    /// Which transport the bots chat over; `mix` puts even bots on UDP and odd ones on TCP.
    #[arg(long, value_enum, default_value_t = TransportMix::Udp)]
    transport: TransportMix,
    /// Seconds of chat.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Longest wait, in seconds, for the last deliveries after the chat.
    #[arg(long, default_value_t = load::config::DEFAULT_DRAIN.as_secs_f64())]
    drain: f64,
    /// Seconds between the bots' logout and the server's "after" reading.
    #[arg(long, default_value_t = load::config::DEFAULT_SETTLE.as_secs_f64())]
    settle: f64,
    /// Bytes of each chat text.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Account names are PREFIX-0, PREFIX-1, ...; by default a new random prefix each run, so accounts are fresh.
    #[arg(long)]
    prefix: Option<String>,
    /// Log in to existing accounts PREFIX-N (registering only the missing ones) instead of registering all.
    #[arg(long, requires = "prefix")]
    reuse: bool,
    /// The bots' password.
    #[arg(long, env = "CHATLAB_LOAD_PASSWORD", default_value = load::DEFAULT_PASSWORD)]
    password: String,
    /// The server's process id on this machine: report its memory and CPU (Linux).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the report as JSON to FILE ("-": standard output, instead of the table).
    #[arg(long, value_name = "FILE")]
    json: Option<std::path::PathBuf>,
    /// Known-servers file where the bots pin the server's key (default: a temporary file, removed afterwards).
    #[arg(long)]
    known_servers: Option<std::path::PathBuf>,
    /// Seed of the bots' random choices (start offsets, targets).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// No progress line on standard error (it is shown only on a terminal anyway).
    #[arg(long)]
    quiet: bool,
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

/// Exit status of a load run that could not start (bad settings, no server).
const EXIT_CANNOT_START: u8 = 2;

fn seconds(name: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("--{name} must be a number of seconds, not {value}"))
}

fn load_config(args: &LoadArgs) -> Result<(LoadConfig, bool), String> {
    let (known_servers, temporary) = match &args.known_servers {
        Some(path) => (path.clone(), false),
        None => (std::env::temp_dir().join(format!("chatlab-lab-load-known-{}", std::process::id())), true),
    };
    // A fresh random prefix by default: two runs in a row get different accounts.
    let prefix = args.prefix.clone().unwrap_or_else(|| format!("load{:04x}", rand::random::<u16>()));
    let mut config = LoadConfig::new(args.server.clone(), args.bots, known_servers);
    config.idle = args.idle;
    config.prefix = prefix;
    config.reuse = args.reuse;
    config.password = args.password.clone();
    config.login_rate = args.login_rate;
    config.rate = args.rate;
    config.world_share = args.world_share;
    config.transport = args.transport;
    config.duration = seconds("duration", args.duration)?;
    config.drain = seconds("drain", args.drain)?;
    config.settle = seconds("settle", args.settle)?;
    config.message_bytes = args.size;
    config.server_pid = args.server_pid;
    config.seed = args.seed;
    config.progress = !args.quiet;
    Ok((config, temporary))
}

fn run_load(args: &LoadArgs) -> ExitCode {
    let (config, temporary) = match load_config(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chatlab-lab load: {e}");
            return ExitCode::from(EXIT_CANNOT_START);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chatlab-lab load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let known_servers = config.known_servers.clone();
    let result = runtime.block_on(load::run(config));
    if temporary {
        let _ = std::fs::remove_file(&known_servers);
    }
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("chatlab-lab load: {e}");
            return ExitCode::from(EXIT_CANNOT_START);
        }
    };
    let json_to_stdout = args.json.as_deref().is_some_and(|path| path == std::path::Path::new("-"));
    if let Some(path) = &args.json {
        let json = match serde_json::to_string_pretty(&report) {
            Ok(json) => json,
            Err(e) => {
                eprintln!("chatlab-lab load: cannot write the report as JSON: {e}");
                return ExitCode::FAILURE;
            }
        };
        if json_to_stdout {
            println!("{json}");
        } else if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("chatlab-lab load: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if !json_to_stdout {
        print!("{}", report.to_table());
    }
    if report.login.logged_in > 0 && report.chat.not_delivered == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn millis(ms: f64) -> Duration {
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Load(args) => run_load(&args),
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
