//! The real network side: a [`Backend`] over the tokio client core.
//!
//! The window runs on the main thread and must never wait; the client core is async and waits all the time. The
//! bridge between them is two unbounded channels and a tokio runtime of the backend's own:
//!
//! ```text
//!   UI thread                         runtime (2 worker threads)
//!   ─────────                         ──────────────────────────
//!   send(Command) ─── unbounded ───▶  driver task: one command at a time
//!                                       ├─ SignIn: connect, register?, login, then spawns
//!                                       │    the forwarder (ClientEvent → BackendEvent)
//!                                       │    and the statistics poller (every 500 ms)
//!                                       ├─ Send / History / SetTransport / SetImpairment:
//!                                       │    a task each, so a slow answer holds up nothing
//!                                       └─ HostRoom: the server library, kept running
//!   try_recv() ◀── unbounded ───────  every task pushes events, then calls the waker
//! ```
//!
//! Unbounded channels are safe here because both ends are bounded by people: commands come from clicks and
//! key presses, and events are drained by every frame (the UI asks for another frame while any are left). The
//! client core's own event queue is bounded ([`EVENT_QUEUE`](crate::EVENT_QUEUE)); the forwarder empties it as
//! fast as it fills, so the core never waits on the window.
//!
//! Two worker threads are enough for one person's chat (and, with "host a room here", a class's server) and leave
//! the other cores to the window's drawing; a two-core lab machine stays responsive.
//!
//! When the backend is dropped (the window closed), the driver logs out, closes the connection and stops the
//! hosted room, within [`SHUTDOWN_GRACE`].

mod convert;
mod driver;
mod receipts;
mod room;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Backend, BackendEvent, Command, Waker};
use crate::config::default_known_servers_path;

pub use receipts::{MAX_ACKNOWLEDGED_IDS, MAX_PARKED_RECEIPTS};
pub use room::default_room_dir;

/// Worker threads of the backend's runtime. See the module docs.
pub const RUNTIME_WORKERS: usize = 2;

/// How often the statistics panel gets fresh figures while signed in: twice a second moves the plots smoothly
/// enough to watch a retransmission happen, and costs the core one snapshot per half second.
pub const STATS_INTERVAL: Duration = Duration::from_millis(500);

/// Messages per history page the window asks for: a screenful and then some, the same page the in-memory fake
/// serves, far below the protocol's page limit.
pub const HISTORY_PAGE: u16 = 50;

/// Most time the window's closing waits for the driver to log out and stop the hosted room. A dead server must not
/// keep a closed window's process alive: past this the runtime is dropped and the operating system closes the
/// sockets.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Where the backend keeps its files. Each path is injectable so tests never touch the real home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealConfig {
    /// The known-servers file (server keys pinned on first contact). `None`: signing in fails with an
    /// explanation, since connecting without pinning would trust any key.
    pub known_servers_path: Option<PathBuf>,
    /// The hosted room's data directory (its key and history). `None`: hosting fails with an explanation.
    pub room_dir: Option<PathBuf>,
}

impl RealConfig {
    /// The default places, from the environment: [`default_known_servers_path`] and [`default_room_dir`].
    pub fn from_env() -> RealConfig {
        RealConfig {
            known_servers_path: default_known_servers_path(),
            room_dir: default_room_dir(|name| std::env::var(name).ok()),
        }
    }
}

/// The events queue and the waker, as every task on the runtime holds them.
#[derive(Clone)]
struct Sink {
    events: mpsc::UnboundedSender<BackendEvent>,
    waker: Arc<OnceLock<Waker>>,
}

impl Sink {
    /// Queues `event` and wakes the window. A window already gone drops the event, which is all it could do.
    fn push(&self, event: BackendEvent) {
        if self.events.send(event).is_ok()
            && let Some(wake) = self.waker.get()
        {
            wake();
        }
    }
}

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum RealBackendError {
    /// The tokio runtime could not be built (the system refused threads).
    #[error("cannot start the network threads: {0}")]
    Runtime(#[from] std::io::Error),
}

/// The network side over the tokio client core. See the module docs.
pub struct RealBackend {
    commands: Option<mpsc::UnboundedSender<Command>>,
    events: mpsc::UnboundedReceiver<BackendEvent>,
    waker: Arc<OnceLock<Waker>>,
    driver: Option<tokio::task::JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RealBackend {
    /// Starts the runtime and the driver task, with files where `config` says.
    ///
    /// # Errors
    /// When the runtime's threads cannot be started.
    pub fn new(config: RealConfig) -> Result<RealBackend, RealBackendError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_WORKERS)
            .thread_name("chatlab-net")
            .enable_all()
            .build()?;
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let waker = Arc::new(OnceLock::new());
        let sink = Sink { events: events_tx, waker: Arc::clone(&waker) };
        let driver = runtime.spawn(driver::run(config, commands, sink));
        Ok(RealBackend { commands: Some(commands_tx), events, waker, driver: Some(driver), runtime: Some(runtime) })
    }
}

impl Backend for RealBackend {
    fn send(&mut self, command: Command) {
        // The driver only stops when this sender is dropped, so a failed send cannot happen while `self` lives.
        if let Some(commands) = &self.commands {
            let _ = commands.send(command);
        }
    }

    fn try_recv(&mut self) -> Option<BackendEvent> {
        self.events.try_recv().ok()
    }

    fn set_waker(&mut self, waker: Waker) {
        // Set once: the UI calls this once, and a second waker would belong to the same window anyway.
        let _ = self.waker.set(waker);
    }
}

impl Drop for RealBackend {
    fn drop(&mut self) {
        // Closing the command channel ends the driver's loop, which then logs out and stops the room.
        self.commands = None;
        let Some(runtime) = self.runtime.take() else { return };
        // `block_on` is not allowed inside a runtime; a backend dropped there skips the graceful part.
        if tokio::runtime::Handle::try_current().is_err()
            && let Some(driver) = self.driver.take()
        {
            // The timer must be made inside the runtime, hence the `async` block.
            let _ = runtime.block_on(async { tokio::time::timeout(SHUTDOWN_GRACE, driver).await });
        }
        runtime.shutdown_background();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chatlab_proto::chat::Username;
    use chatlab_proto::control::Password;

    use super::super::{Account, Problem};
    use super::*;

    /// Polls `backend` until an event arrives; a bounded number of short naps, not a timing assertion.
    fn next_event(backend: &mut RealBackend) -> BackendEvent {
        for _ in 0..2000 {
            if let Some(event) = backend.try_recv() {
                return event;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no event from the backend");
    }

    fn sign_in(server: &str) -> Command {
        Command::SignIn {
            server: server.to_owned(),
            user: Username::parse("ann").unwrap(),
            password: Password::new("secret password"),
            account: Account::LogIn,
        }
    }

    #[test]
    fn without_a_known_servers_file_sign_in_is_refused_with_a_reason() {
        let mut backend = RealBackend::new(RealConfig { known_servers_path: None, room_dir: None }).unwrap();
        backend.send(sign_in("127.0.0.1:7878"));
        let event = next_event(&mut backend);
        assert!(
            matches!(&event, BackendEvent::LoginFailed(Problem::Other(text)) if text.contains("known-servers")),
            "{event:?}"
        );
    }

    #[test]
    fn a_bad_address_fails_and_wakes_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let config = RealConfig { known_servers_path: Some(dir.path().join("known_servers")), room_dir: None };
        let mut backend = RealBackend::new(config).unwrap();
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&woken);
        backend.set_waker(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        backend.send(sign_in("no port here"));
        let event = next_event(&mut backend);
        assert!(matches!(event, BackendEvent::LoginFailed(Problem::BadAddress { .. })), "{event:?}");
        assert!(woken.load(Ordering::SeqCst) >= 1);
    }

    #[test]
    fn hosting_without_a_data_directory_fails() {
        let mut backend = RealBackend::new(RealConfig { known_servers_path: None, room_dir: None }).unwrap();
        backend.send(Command::HostRoom { port: 0 });
        assert!(matches!(next_event(&mut backend), BackendEvent::HostFailed(Problem::Other(_))));
    }

    #[test]
    fn a_hosted_room_is_reported_with_its_port() {
        let dir = tempfile::tempdir().unwrap();
        let config = RealConfig { known_servers_path: None, room_dir: Some(dir.path().join("room")) };
        let mut backend = RealBackend::new(config).unwrap();
        backend.send(Command::HostRoom { port: 0 });
        let BackendEvent::RoomHosted { port, .. } = next_event(&mut backend) else { panic!("the room should start") };
        assert_ne!(port, 0);
        // A second press answers with the same room rather than starting a second server.
        backend.send(Command::HostRoom { port: 0 });
        assert!(matches!(next_event(&mut backend), BackendEvent::RoomHosted { port: again, .. } if again == port));
    }

    #[test]
    fn commands_that_need_a_session_are_answered_without_one() {
        let mut backend = RealBackend::new(RealConfig { known_servers_path: None, room_dir: None }).unwrap();
        backend.send(Command::Send {
            local_id: super::super::LocalId(4),
            to: chatlab_proto::chat::Target::World,
            text: String::from("hi"),
        });
        assert!(matches!(next_event(&mut backend), BackendEvent::Rejected { local_id: super::super::LocalId(4), .. }));
        backend.send(Command::SetTransport(chatlab_proto::control::Transport::Tcp));
        assert!(matches!(
            next_event(&mut backend),
            BackendEvent::TransportSwitchFailed { wanted: chatlab_proto::control::Transport::Tcp, .. }
        ));
        backend.send(Command::LogOut);
        assert_eq!(next_event(&mut backend), BackendEvent::LoggedOut);
    }
}
