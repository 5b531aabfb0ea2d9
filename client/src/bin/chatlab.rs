//! `chatlab`: the desktop app (egui, drawn with OpenGL through glow).
//!
//! ```text
//! chatlab [--lang en|zh] [--server HOST:PORT] [--user NAME] [--stats] [--loss PERCENT [--seed N]] [--demo]
//! ```
//!
//! The window and everything in it live in the library's `ui` module; this file only chooses the network side and
//! opens the window. By default the network side is the real one ([`RealBackend`]: the tokio client core, and the
//! server library for "host a room here"). `--demo` swaps in the in-memory fake server with a real datagram path,
//! to try the interface without any network.
//!
//! `--server` and `--user` fill in the sign-in form (and are remembered like a normal sign-in). With `--user` and a
//! password in `CHATLAB_PASSWORD` (the command-line client's convention), the app signs in at once, which is what
//! a lab script or a screenshot wants. The password is never an argument: arguments are visible to every user of
//! the machine through `ps`.
//!
//! `--loss` starts the session with that share of this app's own datagrams dropped (both directions, independent
//! losses, seeded by `--seed`), exactly as if the student had moved the loss slider and pressed Apply: a lab sheet
//! can prescribe the path everybody starts from.

use std::process::ExitCode;

use clap::{Parser, ValueEnum};

use chatlab_client::ui::backend::real::{RealBackend, RealConfig};
use chatlab_client::ui::backend::{Account, Backend, Command, FakeBackend};
use chatlab_client::ui::i18n::Lang;
use chatlab_client::ui::settings::{self, Settings};
use chatlab_client::ui::{ChatApp, ImpairmentSliders, MAX_LOSS_PERCENT, native_options};
use chatlab_client::{DEFAULT_SERVER, Password, Username};

/// The environment variable holding the password for signing in at start (as for `chatlab-cli`).
const PASSWORD_VARIABLE: &str = "CHATLAB_PASSWORD";

/// Variables through which a Linux desktop tells programs where to draw (X11 and Wayland).
const DISPLAY_VARIABLES: [&str; 2] = ["DISPLAY", "WAYLAND_DISPLAY"];

/// The chatlab desktop app.
#[derive(Debug, Parser)]
#[command(name = "chatlab", version)]
struct Args {
    /// Interface language [default: the remembered one, else the system locale's].
    #[arg(long, value_enum)]
    lang: Option<LangArg>,

    /// Server address to fill in, HOST:PORT.
    #[arg(long, env = "CHATLAB_SERVER")]
    server: Option<String>,

    /// User name to fill in; with CHATLAB_PASSWORD set, sign in at start.
    #[arg(long, env = "CHATLAB_USER")]
    user: Option<String>,

    /// Open the statistics panel at start.
    #[arg(long)]
    stats: bool,

    /// Run against an in-memory server (no network), to try the interface.
    #[arg(long)]
    demo: bool,

    /// Drop this percentage of the app's own datagrams from the start (0 to 50), as the loss slider does.
    #[arg(long, value_parser = parse_loss, allow_negative_numbers = true)]
    loss: Option<f64>,

    /// Seed of the loss of `--loss`, so a class can repeat a run exactly.
    #[arg(long, default_value_t = 1, requires = "loss")]
    seed: u64,
}

/// Reads `--loss`: a percentage the slider could show.
fn parse_loss(raw: &str) -> Result<f64, String> {
    let value: f64 = raw.trim_end_matches('%').parse().map_err(|_| format!("{raw:?} is not a number"))?;
    if (0.0..=MAX_LOSS_PERCENT).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is outside 0 to {MAX_LOSS_PERCENT} percent"))
    }
}

/// `--lang` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LangArg {
    En,
    Zh,
}

impl From<LangArg> for Lang {
    fn from(lang: LangArg) -> Lang {
        match lang {
            LangArg::En => Lang::En,
            LangArg::Zh => Lang::Zh,
        }
    }
}

/// Whether a display is announced, on systems where that is told by the environment.
fn display_announced(get: impl Fn(&str) -> Option<String>) -> bool {
    if !cfg!(all(unix, not(target_os = "macos"))) {
        return true;
    }
    DISPLAY_VARIABLES.iter().any(|name| get(name).is_some_and(|value| !value.is_empty()))
}

/// Remembers `--server` and `--user` in the settings file, so the sign-in form shows them.
fn prefill(path: Option<&std::path::Path>, server: Option<&str>, user: Option<&str>) {
    let Some(path) = path else { return };
    if server.is_none() && user.is_none() {
        return;
    }
    let mut remembered = Settings::load(path);
    if let Some(server) = server {
        remembered.server = server.to_owned();
    }
    if let Some(user) = user {
        remembered.user = user.to_owned();
    }
    if let Err(err) = remembered.save(path) {
        eprintln!("chatlab: cannot remember the server and user: {err}");
    }
}

/// The sign-in command for `--user` with the password from the environment, if both are there.
fn sign_in_at_start(args: &Args, remembered_server: String) -> Result<Option<Command>, String> {
    let (Some(user), Ok(password)) = (&args.user, std::env::var(PASSWORD_VARIABLE)) else { return Ok(None) };
    let user = Username::parse(user).map_err(|err| format!("--user {user:?}: {err}"))?;
    let server = args.server.clone().unwrap_or(remembered_server);
    Ok(Some(Command::SignIn { server, user, password: Password::new(password), account: Account::LogIn }))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !display_announced(|name| std::env::var(name).ok()) {
        eprintln!("chatlab: no display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY is set)");
        return ExitCode::FAILURE;
    }
    let settings_path = if args.demo { None } else { settings::path_from_env() };
    prefill(settings_path.as_deref(), args.server.as_deref(), args.user.as_deref());
    let remembered_server = settings_path
        .as_deref()
        .map(|path| Settings::load(path).server)
        .filter(|server| !server.is_empty())
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());

    let mut backend: Box<dyn Backend> = if args.demo {
        match FakeBackend::with_demo_link() {
            Ok((backend, _control)) => Box::new(backend),
            Err(err) => {
                eprintln!("chatlab: cannot build the demo's in-memory network: {err}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        match RealBackend::new(RealConfig::from_env()) {
            Ok(backend) => Box::new(backend),
            Err(err) => {
                eprintln!("chatlab: {err}");
                return ExitCode::FAILURE;
            }
        }
    };
    match sign_in_at_start(&args, remembered_server) {
        Ok(Some(command)) => backend.send(command),
        Ok(None) => {}
        Err(err) => {
            eprintln!("chatlab: {err}");
            return ExitCode::from(2);
        }
    }

    let mut app = ChatApp::new(backend, settings_path, args.lang.map(Lang::from));
    if args.stats {
        app.show_statistics(true);
    }
    if let Some(loss_percent) = args.loss {
        // Sent after the sign-in command, which the network side finishes first: the impairment lands on the new
        // session (and is kept for the next ones, like the slider's).
        app.apply_impairment(ImpairmentSliders { loss_percent, seed: args.seed, ..ImpairmentSliders::default() });
    }
    match eframe::run_native("chatlab", native_options(), Box::new(move |_cc| Ok(Box::new(app)))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("chatlab: cannot open a window: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_display_is_needed_on_linux() {
        let none = |_: &str| None;
        let empty = |_: &str| Some(String::new());
        let x11 = |name: &str| (name == "DISPLAY").then(|| String::from(":0"));
        let wayland = |name: &str| (name == "WAYLAND_DISPLAY").then(|| String::from("wayland-0"));
        if cfg!(target_os = "linux") {
            assert!(!display_announced(none));
            assert!(!display_announced(empty));
        }
        assert!(display_announced(x11));
        assert!(display_announced(wayland));
    }

    #[test]
    fn arguments_parse() {
        let args = Args::try_parse_from(["chatlab", "--lang", "zh", "--server", "10.0.0.1:7878", "--stats"]).unwrap();
        assert_eq!(args.lang, Some(LangArg::Zh));
        assert_eq!(args.server.as_deref(), Some("10.0.0.1:7878"));
        assert!(args.stats && !args.demo);
        assert!(Args::try_parse_from(["chatlab", "--lang", "fr"]).is_err());
    }

    #[test]
    fn loss_must_be_a_percentage_the_slider_offers() {
        let args = Args::try_parse_from(["chatlab", "--loss", "10", "--seed", "7"]).unwrap();
        assert_eq!((args.loss, args.seed), (Some(10.0), 7));
        assert_eq!(Args::try_parse_from(["chatlab", "--loss", "12.5%"]).unwrap().loss, Some(12.5));
        for bad in ["-1", "51", "lots", "NaN"] {
            let err = Args::try_parse_from(["chatlab", "--loss", bad]).expect_err(bad).to_string();
            assert!(err.contains("--loss"), "{err}");
        }
        // A seed alone means nothing: it seeds the loss.
        assert!(Args::try_parse_from(["chatlab", "--seed", "7"]).is_err());
    }

    #[test]
    fn prefill_remembers_server_and_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        prefill(Some(&path), Some("10.0.0.1:7000"), Some("ann"));
        let remembered = Settings::load(&path);
        assert_eq!((remembered.server.as_str(), remembered.user.as_str()), ("10.0.0.1:7000", "ann"));
    }
}
