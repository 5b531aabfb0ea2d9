//! The command line, declared with clap's derive API.
//!
//! Settings that stay the same across many invocations (`--server`, `--user`) also come from the environment
//! (`CHATLAB_SERVER`, `CHATLAB_USER`), so a lab script sets them once. The password never comes from an argument
//! (see `password.rs`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use chatlab_client::{DEFAULT_SERVER, Target, Transport};

use crate::exit::EXIT_CODES_HELP;

/// Most messages one `history` call asks for by default: a screenful.
pub const DEFAULT_HISTORY_LIMIT: u16 = 50;

/// Largest `--limit`: one history page holds at most this many messages (the protocol's `MAX_PAGE_ITEMS`).
const MAX_HISTORY_LIMIT: i64 = chatlab_proto::control::MAX_PAGE_ITEMS as i64;

/// Command-line client for a chatlab server.
#[derive(Debug, Parser)]
#[command(name = "chatlab-cli", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Server address, HOST:PORT.
    #[arg(long, env = "CHATLAB_SERVER", default_value = DEFAULT_SERVER, global = true)]
    pub server: String,

    /// User name to register or log in as.
    #[arg(long, env = "CHATLAB_USER", global = true)]
    pub user: Option<String>,

    /// Transport for chat messages; udp falls back to tcp when UDP gets no answer.
    #[arg(long, value_enum, default_value_t = TransportArg::Udp, global = true)]
    pub transport: TransportArg,

    /// Known-servers file [default: $XDG_CONFIG_HOME/chatlab/known_servers or ~/.config/chatlab/known_servers].
    #[arg(long, value_name = "PATH", global = true)]
    pub known_servers: Option<PathBuf>,

    /// Print one JSON object per line.
    #[arg(long, global = true)]
    pub json: bool,

    /// Read the password from the first line of standard input (when CHATLAB_PASSWORD is not set).
    #[arg(long, global = true)]
    pub password_stdin: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// `--transport` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportArg {
    Udp,
    Tcp,
}

impl From<TransportArg> for Transport {
    fn from(arg: TransportArg) -> Transport {
        match arg {
            TransportArg::Udp => Transport::Udp,
            TransportArg::Tcp => Transport::Tcp,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the account --user with the password.
    Register,
    /// Send TEXT to TARGET; exits 0 only once the server acknowledged it.
    Send {
        /// `world` or a user name.
        #[arg(value_parser = parse_target)]
        target: Target,
        /// The message.
        text: String,
    },
    /// Print the newest messages of a conversation, oldest first.
    History {
        /// `world` or a user name.
        #[arg(value_parser = parse_target)]
        target: Target,
        /// How many messages.
        #[arg(long, default_value_t = DEFAULT_HISTORY_LIMIT, value_parser = clap::value_parser!(u16).range(1..=MAX_HISTORY_LIMIT))]
        limit: u16,
    },
    /// Print the users online now.
    Users,
    /// Print messages as they arrive.
    Listen {
        /// Stop after this many messages (exit 0).
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds: exit 0 without --count, non-zero if --count was not reached.
        #[arg(long, value_parser = parse_seconds)]
        timeout: Option<Duration>,
    },
    /// Print both transports' statistics as JSON after logging in.
    Stats,
}

/// `world` or a valid user name.
pub fn parse_target(raw: &str) -> Result<Target, String> {
    Target::parse(raw).map_err(|err| format!("not `world` or a valid user name: {err}"))
}

/// Seconds as a positive decimal number.
pub fn parse_seconds(raw: &str) -> Result<Duration, String> {
    let seconds: f64 = raw.parse().map_err(|_| format!("{raw:?} is not a number of seconds"))?;
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(format!("{raw:?}: the timeout must be a positive number of seconds"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("{raw:?}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_client::Username;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("chatlab-cli").chain(args.iter().copied()))
    }

    #[test]
    fn the_declaration_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn send_with_every_global_option() {
        let cli = parse(&[
            "--server",
            "10.0.0.5:7878",
            "--user",
            "ann",
            "--transport",
            "tcp",
            "--known-servers",
            "/tmp/k",
            "--json",
            "send",
            "Bob",
            "hello there",
        ])
        .expect("valid");
        assert_eq!(cli.server, "10.0.0.5:7878");
        assert_eq!(cli.user.as_deref(), Some("ann"));
        assert_eq!(Transport::from(cli.transport), Transport::Tcp);
        assert_eq!(cli.known_servers, Some(PathBuf::from("/tmp/k")));
        assert!(cli.json && !cli.password_stdin);
        match cli.command {
            Command::Send { target, text } => {
                assert_eq!(target, Target::User(Username::parse("bob").expect("valid")));
                assert_eq!(text, "hello there");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn global_options_may_follow_the_command() {
        let cli = parse(&["history", "WORLD", "--limit", "5", "--json"]).expect("valid");
        assert!(cli.json);
        assert_eq!(cli.transport, TransportArg::Udp);
        assert!(matches!(cli.command, Command::History { target: Target::World, limit: 5 }));
        let cli = parse(&["history", "world"]).expect("valid");
        assert!(matches!(cli.command, Command::History { limit: DEFAULT_HISTORY_LIMIT, .. }));
    }

    #[test]
    fn listen_options() {
        let cli = parse(&["listen", "--count", "3", "--timeout", "1.5"]).expect("valid");
        assert!(matches!(
            cli.command,
            Command::Listen { count: Some(3), timeout: Some(t) } if t == Duration::from_millis(1500)
        ));
        assert!(matches!(parse(&["listen"]).expect("valid").command, Command::Listen { count: None, timeout: None }));
    }

    #[test]
    fn usage_errors() {
        for args in [
            &[][..],
            &["send", "world"],
            &["send", "not a name", "hi"],
            &["history", "world", "--limit", "0"],
            &["history", "world", "--limit", "501"],
            &["listen", "--timeout", "-1"],
            &["--transport", "sctp", "users"],
            &["dance"],
        ] {
            let err = parse(args).expect_err("usage error");
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
    }

    #[test]
    fn help_documents_the_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit status:") && help.contains("5  rejected"), "{help}");
        assert!(help.contains("CHATLAB_SERVER") && help.contains("CHATLAB_USER"), "{help}");
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("2"), Ok(Duration::from_secs(2)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("nan").is_err());
        assert!(parse_seconds("inf").is_err());
        assert!(parse_seconds("soon").is_err());
        assert!(parse_seconds("1e300").is_err());
    }
}
