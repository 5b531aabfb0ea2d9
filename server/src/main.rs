//! `chatlab-server`: parses the command line, sets up logging, binds the port, prints where students connect, and
//! runs the server library until SIGINT or SIGTERM asks for a graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chatlab_server::limits::{
    DEFAULT_FLOOD_BURST, DEFAULT_FLOOD_RATE, DEFAULT_HANDSHAKE_BURST_PER_IP, DEFAULT_HANDSHAKE_RATE_PER_IP,
    DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_REGISTRATIONS_PER_IP, UDP_IDLE_TIMEOUT,
};
use chatlab_server::net::fd_limit::default_max_connections;
use chatlab_server::password::{ARGON2_ITERATIONS, ARGON2_MEMORY_KIB, DEFAULT_MAX_CONCURRENT_HASHES, PasswordParams};
use chatlab_server::{ServerConfig, bind, lan_addresses, load_identity, run};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Exit status when the server cannot start (bad data directory, port taken, bad option).
const EXIT_CANNOT_START: u8 = 2;

/// Exit status when the server stopped with an error after starting.
const EXIT_FAILED: u8 = 1;

/// The chatlab chat server: Noise-encrypted control channel over TCP and encrypted chat datagrams over UDP, both
/// on one port; accounts and history in SQLite.
#[derive(Debug, Parser)]
#[command(name = "chatlab-server", version)]
struct Args {
    /// Address for TCP and UDP (one port for both). Use 0.0.0.0:PORT to accept students on the LAN.
    #[arg(long, env = "CHATLAB_LISTEN", default_value = "0.0.0.0:7878")]
    listen: SocketAddr,

    /// Data directory: server key (server.key) and database (chat.db). Created if missing.
    #[arg(long, env = "CHATLAB_DATA", default_value = chatlab_server::config::DEFAULT_DATA_DIR)]
    data: PathBuf,

    /// TCP connections one IP address may hold at once (a whole IPv6 /64 counts as one address).
    #[arg(long, env = "CHATLAB_MAX_CONNECTIONS_PER_IP", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,

    /// TCP connections the whole server may hold at once; more are closed before the handshake. Default: the
    /// open-file limit (`ulimit -n`) minus 124 descriptors for the server's own files, so 900 at the usual 1024.
    #[arg(long, env = "CHATLAB_MAX_CONNECTIONS", default_value_t = default_max_connections())]
    max_connections: usize,

    /// New connections one address may start at once (each costs the server a Noise handshake); more are reset
    /// before any cryptography. Raise it for a load test from one machine.
    #[arg(long, env = "CHATLAB_HANDSHAKE_BURST_PER_IP", default_value_t = DEFAULT_HANDSHAKE_BURST_PER_IP)]
    handshake_burst_per_ip: f64,

    /// New connections per second one address may keep up once its burst is spent.
    #[arg(long, env = "CHATLAB_HANDSHAKE_RATE_PER_IP", default_value_t = DEFAULT_HANDSHAKE_RATE_PER_IP)]
    handshake_rate_per_ip: f64,

    /// Accounts one address may create per hour: N at once, then the allowance refills at N an hour (one every
    /// 3600/N s). A whole IPv6 /64 counts as one address; a class behind one NAT shares one allowance.
    #[arg(long, env = "CHATLAB_MAX_REGISTRATIONS_PER_IP", default_value_t = DEFAULT_MAX_REGISTRATIONS_PER_IP)]
    max_registrations_per_ip: u32,

    /// Chat messages a user (all their sessions together) may send in one burst; invalid ones count too.
    #[arg(long, env = "CHATLAB_FLOOD_BURST", default_value_t = DEFAULT_FLOOD_BURST)]
    flood_burst: f64,

    /// Chat messages per second a user (all their sessions together) may keep up.
    #[arg(long, env = "CHATLAB_FLOOD_RATE", default_value_t = DEFAULT_FLOOD_RATE)]
    flood_rate: f64,

    /// Longest chat text in bytes (at most 4096).
    #[arg(long, env = "CHATLAB_MAX_TEXT_BYTES", default_value_t = chatlab_proto::limits::MAX_TEXT_BYTES)]
    max_text_bytes: usize,

    /// Seconds without a datagram after which a session chatting over UDP gets its pushes over TCP instead.
    #[arg(long, env = "CHATLAB_UDP_IDLE_TIMEOUT", default_value_t = UDP_IDLE_TIMEOUT.as_secs())]
    udp_idle_timeout_secs: u64,

    /// Argon2id memory cost of new password hashes, in KiB.
    #[arg(long, env = "CHATLAB_PASSWORD_MEMORY_KIB", default_value_t = ARGON2_MEMORY_KIB)]
    password_memory_kib: u32,

    /// Argon2id passes of new password hashes.
    #[arg(long, env = "CHATLAB_PASSWORD_ITERATIONS", default_value_t = ARGON2_ITERATIONS)]
    password_iterations: u32,

    /// Password hashes computed at the same time at most.
    #[arg(long, env = "CHATLAB_MAX_CONCURRENT_HASHES", default_value_t = DEFAULT_MAX_CONCURRENT_HASHES)]
    max_concurrent_hashes: usize,

    /// Server name sent to clients in the welcome message.
    #[arg(long, env = "CHATLAB_SERVER_NAME")]
    server_name: Option<String>,

    /// UDP port announced to clients in the session grant, when they must reach the server's datagrams through
    /// another port (an impairment relay such as `chatlab-lab relay`, or a port forward). Default: the listen port.
    #[arg(long, env = "CHATLAB_UDP_ADVERTISE_PORT")]
    udp_advertise_port: Option<u16>,
}

impl Args {
    fn config(&self) -> ServerConfig {
        let defaults = ServerConfig::default();
        ServerConfig {
            data_dir: self.data.clone(),
            server_name: self.server_name.clone().unwrap_or(defaults.server_name),
            max_connections_per_ip: self.max_connections_per_ip,
            max_connections: self.max_connections,
            handshake_burst_per_ip: self.handshake_burst_per_ip,
            handshake_rate_per_ip: self.handshake_rate_per_ip,
            max_handshakes_in_progress: defaults.max_handshakes_in_progress,
            max_registrations_per_ip: self.max_registrations_per_ip,
            flood_burst: self.flood_burst,
            flood_rate: self.flood_rate,
            password_params: PasswordParams {
                memory_kib: self.password_memory_kib,
                iterations: self.password_iterations,
                ..defaults.password_params
            },
            max_concurrent_hashes: self.max_concurrent_hashes,
            max_text_bytes: self.max_text_bytes,
            login_timeout: defaults.login_timeout,
            control_idle_timeout: defaults.control_idle_timeout,
            udp_idle_timeout: Duration::from_secs(self.udp_idle_timeout_secs),
            udp_advertise_port: self.udp_advertise_port,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();

    let config = args.config();
    if let Err(error) = config.validate() {
        eprintln!("chatlab-server: {error}");
        return ExitCode::from(EXIT_CANNOT_START);
    }
    let fingerprint = match load_identity(&config.data_dir) {
        Ok((fingerprint, _)) => fingerprint,
        Err(error) => {
            eprintln!("chatlab-server: cannot use data directory {}: {error}", config.data_dir.display());
            return ExitCode::from(EXIT_CANNOT_START);
        }
    };
    // Signal handlers first: a SIGTERM that arrives right after the banner must already mean "shut down cleanly".
    let shutdown = match ShutdownSignal::install() {
        Ok(signal) => signal,
        Err(error) => {
            eprintln!("chatlab-server: cannot install signal handlers: {error}");
            return ExitCode::from(EXIT_CANNOT_START);
        }
    };
    let (tcp, udp) = match bind(args.listen).await {
        Ok(sockets) => sockets,
        Err(error) => {
            eprintln!("chatlab-server: {error}");
            return ExitCode::from(EXIT_CANNOT_START);
        }
    };
    let local = match tcp.local_addr() {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("chatlab-server: cannot read the bound address: {error}");
            return ExitCode::from(EXIT_CANNOT_START);
        }
    };
    print_banner(local, &config, &fingerprint.to_string());

    match run(tcp, udp, config, shutdown.wait()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chatlab-server: {error}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// What an operator needs to tell the class. Goes to stdout (logs go to stderr), one fact per line.
fn print_banner(local: SocketAddr, config: &ServerConfig, fingerprint: &str) {
    println!("{}", config.server_name);
    println!("listening on {local} (TCP and UDP)");
    println!("data directory: {}", config.data_dir.display());
    println!("server key fingerprint: {fingerprint}");
    let port = local.port();
    if local.ip().is_unspecified() {
        let addresses = lan_addresses();
        if addresses.is_empty() {
            println!("students connect to this machine's LAN address, port {port}");
        } else {
            for addr in addresses {
                println!("students connect to: {addr}:{port}");
            }
        }
    } else {
        println!("students connect to: {local}");
    }
}

/// SIGINT (Ctrl-C) or SIGTERM, whichever comes first.
struct ShutdownSignal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    /// Registers the handlers now, so the default action (die at once) never applies after this point.
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        let which = tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        };
        #[cfg(not(unix))]
        let which = {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        };
        tracing::info!(signal = which, "shutting down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_production_config() {
        let args = Args::try_parse_from(["chatlab-server"]).unwrap();
        assert_eq!(args.listen, SocketAddr::from(([0, 0, 0, 0], 7878)));
        let config = args.config();
        assert_eq!(config.data_dir, PathBuf::from("./chatlab-data"));
        assert_eq!(config.password_params, PasswordParams::RECOMMENDED);
        assert_eq!(config.udp_idle_timeout, UDP_IDLE_TIMEOUT);
        assert_eq!(config.max_connections, default_max_connections());
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn options_reach_the_config() {
        let args = Args::try_parse_from([
            "chatlab-server",
            "--listen",
            "127.0.0.1:9000",
            "--data",
            "/tmp/x",
            "--flood-rate",
            "1000",
            "--max-connections-per-ip",
            "500",
            "--max-connections",
            "2000",
            "--server-name",
            "lab 3",
            "--max-registrations-per-ip",
            "250",
            "--handshake-burst-per-ip",
            "1000",
            "--handshake-rate-per-ip",
            "500",
        ])
        .unwrap();
        let config = args.config();
        assert_eq!(args.listen.port(), 9000);
        assert_eq!((config.flood_rate, config.max_connections_per_ip, config.max_connections), (1000.0, 500, 2000));
        assert_eq!(config.server_name, "lab 3");
        assert_eq!(config.max_registrations_per_ip, 250);
        assert_eq!((config.handshake_burst_per_ip, config.handshake_rate_per_ip), (1000.0, 500.0));
    }

    #[test]
    fn flood_help_says_per_user_not_per_session() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        let flood: Vec<&str> = help.lines().skip_while(|line| !line.contains("--flood-burst")).take(3).collect();
        let flood = flood.join(" ");
        assert!(flood.contains("user") && !flood.contains("session may"), "{flood}");
    }

    #[test]
    fn a_bad_address_is_a_parse_error() {
        assert!(Args::try_parse_from(["chatlab-server", "--listen", "nowhere"]).is_err());
    }
}
