//! What a load run does: how many bots, how fast, over which transport, for how long.

use std::path::PathBuf;
use std::time::Duration;

use chatlab_client::Transport;

/// Password of the bots' accounts unless `--password` says otherwise. A fixed one, so a second run with
/// `--reuse` logs in to the accounts of the first; these accounts are for a lab server, never a real one.
pub const DEFAULT_PASSWORD: &str = "chatlab-load-bot";

/// Chat messages a bot may have waiting for the server's acceptance at once. The bots send on a fixed schedule
/// whether or not earlier messages were accepted (an *open-loop* load, as real users are: nobody waits for the
/// server before typing), but a server that stops answering must not make the generator pile up tasks without
/// end; past this many a bot waits, falls behind its schedule, and the report shows a lower achieved rate. 64 is
/// far above what a healthy server on a LAN keeps in flight (about rate x round trip) and below the UDP send
/// window (1024), so the bots measure the server, not the client's window.
pub const MAX_IN_FLIGHT_PER_BOT: usize = 64;

/// Longest a run waits after the chat phase for the last acceptances and deliveries by default. Messages on a
/// healthy server arrive in milliseconds; five seconds leaves room for retransmissions on a loaded machine, and
/// whatever has not arrived by then is reported as not delivered.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

/// Wait between the bots' logout and the "after" reading of the server by default, so that memory the server
/// frees lazily (closed sessions, finished blocking threads) has gone.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

/// Which transport each bot chats over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportMix {
    /// Every bot over UDP (falling back to TCP when UDP gets no answer, as every chatlab client does).
    Udp,
    /// Every bot over TCP.
    Tcp,
    /// Even-numbered bots over UDP, odd-numbered over TCP.
    Mix,
}

impl TransportMix {
    /// The name as typed on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TransportMix::Udp => "udp",
            TransportMix::Tcp => "tcp",
            TransportMix::Mix => "mix",
        }
    }

    /// The transport bot number `index` asks for.
    pub fn for_bot(self, index: usize) -> Transport {
        match self {
            TransportMix::Udp => Transport::Udp,
            TransportMix::Tcp => Transport::Tcp,
            TransportMix::Mix if index % 2 == 0 => Transport::Udp,
            TransportMix::Mix => Transport::Tcp,
        }
    }
}

/// Everything [`run`](super::run) needs.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server, `HOST:PORT`.
    pub server: String,
    /// Bots that chat.
    pub bots: usize,
    /// Further bots that log in and stay, reading what arrives (world messages) and sending nothing.
    pub idle: usize,
    /// Account names are `PREFIX-0`, `PREFIX-1`, ...
    pub prefix: String,
    /// Log in to existing accounts (registering only those that do not exist yet) instead of registering every
    /// bot.
    pub reuse: bool,
    /// The bots' password.
    pub password: String,
    /// Bots starting (connect, register, log in) per second.
    pub login_rate: f64,
    /// Chat messages per second **per chatting bot**.
    pub rate: f64,
    /// Share of the messages that go to the world room (each is delivered to every other bot); the rest go one to
    /// one to another chatting bot chosen at random.
    pub world_share: f64,
    /// Which transport the bots chat over.
    pub transport: TransportMix,
    /// Length of the chat phase.
    pub duration: Duration,
    /// Longest wait for outstanding acceptances and deliveries after the chat phase.
    pub drain: Duration,
    /// Wait after logout before the server's "after" reading.
    pub settle: Duration,
    /// Size of each chat text in bytes (at least the stamp, about 30 bytes).
    pub message_bytes: usize,
    /// The server's process id on this machine, to read its memory and CPU.
    pub server_pid: Option<u32>,
    /// Known-servers file the bots pin the server's key in.
    pub known_servers: PathBuf,
    /// Seed of the bots' random choices (start offsets, world or one to one, whom to write to).
    pub seed: u64,
    /// Show a progress line on standard error (only when it is a terminal).
    pub progress: bool,
}

impl LoadConfig {
    /// A configuration with the defaults of `chatlab-lab load` for `server`, with `bots` chatting bots.
    pub fn new(server: impl Into<String>, bots: usize, known_servers: impl Into<PathBuf>) -> LoadConfig {
        LoadConfig {
            server: server.into(),
            bots,
            idle: 0,
            prefix: "load".into(),
            reuse: false,
            password: DEFAULT_PASSWORD.into(),
            login_rate: 50.0,
            rate: 1.0,
            world_share: 0.1,
            transport: TransportMix::Udp,
            duration: Duration::from_secs(10),
            drain: DEFAULT_DRAIN,
            settle: DEFAULT_SETTLE,
            message_bytes: 64,
            server_pid: None,
            known_servers: known_servers.into(),
            seed: 1,
            progress: false,
        }
    }

    /// All bots, chatting and idle.
    pub fn total_bots(&self) -> usize {
        self.bots.saturating_add(self.idle)
    }

    /// The account name of bot `index`.
    pub fn bot_name(&self, index: usize) -> String {
        format!("{}-{index}", self.prefix)
    }

    /// Checks that the run can make sense, with a sentence saying what to change.
    pub fn validate(&self) -> Result<(), String> {
        if self.total_bots() == 0 {
            return Err("no bots: give --bots (and/or --idle) at least 1".into());
        }
        if !(self.login_rate.is_finite() && self.login_rate > 0.0) {
            return Err(format!("--login-rate must be a positive number of bots per second, not {}", self.login_rate));
        }
        if !(self.rate.is_finite() && self.rate >= 0.0) {
            return Err(format!("--rate must be zero or a positive number of messages per second, not {}", self.rate));
        }
        if !(0.0..=1.0).contains(&self.world_share) {
            return Err(format!("--world-share must be between 0 and 1, not {}", self.world_share));
        }
        if self.bots == 1 && self.world_share < 1.0 && self.rate > 0.0 {
            return Err("one-to-one chat needs at least 2 chatting bots: raise --bots or use --world-share 1".into());
        }
        let longest = self.bot_name(self.total_bots() - 1);
        chatlab_client::Username::parse(&longest)
            .map_err(|e| format!("the bots' account names ({longest}) are not valid user names: {e}"))?;
        if self.password.is_empty() {
            return Err("the bots' password must not be empty".into());
        }
        if self.message_bytes > chatlab_proto::limits::MAX_TEXT_BYTES {
            return Err(format!(
                "--size {} is above the protocol's longest text ({} bytes)",
                self.message_bytes,
                chatlab_proto::limits::MAX_TEXT_BYTES
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoadConfig {
        LoadConfig::new("127.0.0.1:7878", 4, "/tmp/k")
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(config().validate(), Ok(()));
    }

    #[test]
    fn mix_alternates_transports() {
        let mix: Vec<_> = (0..4).map(|i| TransportMix::Mix.for_bot(i)).collect();
        assert_eq!(mix, [Transport::Udp, Transport::Tcp, Transport::Udp, Transport::Tcp]);
        assert_eq!(TransportMix::Tcp.for_bot(0), Transport::Tcp);
    }

    #[test]
    fn every_bad_setting_is_refused_with_the_option_to_change() {
        let cases: Vec<(LoadConfig, &str)> = vec![
            (LoadConfig { bots: 0, ..config() }, "--bots"),
            (LoadConfig { login_rate: 0.0, ..config() }, "--login-rate"),
            (LoadConfig { rate: f64::NAN, ..config() }, "--rate"),
            (LoadConfig { world_share: 1.5, ..config() }, "--world-share"),
            (LoadConfig { bots: 1, ..config() }, "at least 2"),
            (LoadConfig { prefix: "Bad Name".into(), ..config() }, "not valid user names"),
            (LoadConfig { prefix: "x".repeat(40), ..config() }, "not valid user names"),
            (LoadConfig { password: String::new(), ..config() }, "password"),
            (LoadConfig { message_bytes: 100_000, ..config() }, "--size"),
        ];
        for (bad, needle) in cases {
            let err = bad.validate().expect_err(needle);
            assert!(err.contains(needle), "{needle}: {err}");
        }
        assert_eq!(LoadConfig { bots: 1, world_share: 1.0, ..config() }.validate(), Ok(()));
        assert_eq!(LoadConfig { bots: 0, idle: 3, ..config() }.validate(), Ok(()));
    }
}
