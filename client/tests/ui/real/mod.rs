//! The window against a real chatlab server, through [`RealBackend`] and real sockets on 127.0.0.1.
//!
//! Every behaviour the desktop app promises is tested here against the server library: signing in, chatting, the
//! statistics panel, Chinese text, losing and regaining the connection. (The other modules test the same window
//! against the in-memory fake, which can stage what a real server only does by chance, such as a held-back
//! acknowledgement.) Each test starts a server in-process (fast, insecure password hashing; a temporary data directory)
//! and gives the backend a temporary known-servers file, so nothing touches the real home directory.
//!
//! The network answers on its own threads, so a test cannot run the window "until it is at rest": it steps frames
//! until what it waits for is on screen, with a bounded number of steps and a short nap between them. The bound
//! only stops a broken test from hanging; nothing asserts how long anything took.

use std::net::SocketAddr;
use std::time::Duration;

use chatlab_client::ui::ChatApp;
use chatlab_client::ui::backend::real::{RealBackend, RealConfig};
use chatlab_client::ui::i18n::{Lang, Texts};
use chatlab_client::{Client, ClientConfig, ClientEvent, ClientHandle, Password, Target};
use chatlab_proto::chat::{ChatMessage, Username};
use chatlab_server::ServerHandle;
use chatlab_server::config::ServerConfig;
use chatlab_server::password::PasswordParams;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tempfile::TempDir;
use tokio::sync::mpsc;

use crate::harness::SIZE;

mod chat;
mod chinese;
mod reconnect;
mod sign_in;
mod stats;

/// Most frames a test steps while waiting for the network: with the nap below, far more than a loaded two-core
/// machine needs, and still a bound.
const MAX_STEPS: usize = 4000;

/// Nap between two frames while waiting, so the waiting does not starve the network threads of CPU.
const NAP: Duration = Duration::from_millis(5);

/// Longest a test waits for a classmate's client to receive something: a bound against hanging, not a timing
/// assertion.
const EVENT_WAIT: Duration = Duration::from_secs(30);

/// A password the client-side rules accept.
const PASSWORD: &str = "correct horse battery staple";

/// A server on a free port of 127.0.0.1, with the runtime serving it and its data directory.
struct Room {
    runtime: tokio::runtime::Runtime,
    server: Option<ServerHandle>,
    addr: SocketAddr,
    dir: TempDir,
}

impl Room {
    fn start() -> Room {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = runtime.block_on(ServerHandle::start(addr, Room::config(&dir))).expect("the server starts");
        let addr = server.local_addr();
        Room { runtime, server: Some(server), addr, dir }
    }

    fn config(dir: &TempDir) -> ServerConfig {
        let mut config = ServerConfig::with_data_dir(dir.path().join("server"));
        config.password_params = PasswordParams::INSECURE_FAST_FOR_TESTS;
        config
    }

    /// Stops the server, as a teacher closing the room (or a crash) would.
    fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown()).expect("the server stops cleanly");
        }
    }

    /// Starts the server again on the same port with the same data (key, accounts, history).
    fn restart(&mut self) {
        let server = self.runtime.block_on(ServerHandle::start(self.addr, Room::config(&self.dir)));
        self.server = Some(server.expect("the server starts again on its port"));
    }

    /// A client-core client for `name`, registered and logged in: the classmate of the tests.
    fn classmate(&self, name: &str) -> (ClientHandle, mpsc::Receiver<ClientEvent>) {
        let config = ClientConfig::new(self.addr.to_string(), self.dir.path().join("classmate_known_servers"));
        self.runtime.block_on(async {
            let (handle, events) = Client::connect(config).await.expect("the classmate connects");
            handle.register(name, Password::new(PASSWORD)).await.expect("the classmate registers");
            handle.login(name, Password::new(PASSWORD)).await.expect("the classmate logs in");
            (handle, events)
        })
    }

    /// The app over a real backend in English, its files in this room's temporary directory.
    fn app(&self) -> Harness<'static, ChatApp> {
        self.app_in(Lang::En)
    }

    /// The app over a real backend in `lang`.
    fn app_in(&self, lang: Lang) -> Harness<'static, ChatApp> {
        let config = RealConfig {
            known_servers_path: Some(self.dir.path().join("app_known_servers")),
            room_dir: Some(self.dir.path().join("hosted")),
        };
        let backend = RealBackend::new(config).expect("the backend starts");
        let app = ChatApp::new(Box::new(backend), None, Some(lang));
        Harness::builder().with_size(egui::Vec2::from(SIZE)).build_ui_state(|ui, app: &mut ChatApp| app.show(ui), app)
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = self.runtime.block_on(server.shutdown());
        }
    }
}

fn name(raw: &str) -> Username {
    Username::parse(raw).expect("test names are valid")
}

/// Steps frames until `done` holds; panics with `what` after [`MAX_STEPS`].
fn pump_until(harness: &mut Harness<'static, ChatApp>, what: &str, done: impl Fn(&Harness<'static, ChatApp>) -> bool) {
    for _ in 0..MAX_STEPS {
        harness.step();
        if done(harness) {
            return;
        }
        std::thread::sleep(NAP);
    }
    panic!("the window never showed {what}");
}

/// Types into the field labelled `label`. Steps a fixed number of frames: the network may ask for repaints at any
/// time, so "run until nothing changes" is not a condition a test against a real server can wait for.
fn fill(harness: &mut Harness<'static, ChatApp>, label: &str, text: &str) {
    harness.get_by_label(label).focus();
    harness.run_steps(2);
    harness.get_by_label(label).type_text(text);
    harness.run_steps(2);
}

/// Fills the sign-in form for `room` and presses `button`.
fn submit(harness: &mut Harness<'static, ChatApp>, room: &Room, t: &Texts, user: &str, password: &str, button: &str) {
    fill(harness, t.server_address, &room.addr.to_string());
    fill(harness, t.username, user);
    fill(harness, t.password, password);
    harness.get_by_label(button).click();
    harness.run_steps(2);
}

/// Registers `user` through the form and waits until the chat shows.
fn registered(room: &Room, user: &str) -> Harness<'static, ChatApp> {
    registered_in(room, user, Lang::En)
}

/// Registers `user` through the form of the app in `lang` and waits until the chat shows.
fn registered_in(room: &Room, user: &str, lang: Lang) -> Harness<'static, ChatApp> {
    let mut harness = room.app_in(lang);
    let t = lang.texts();
    submit(&mut harness, room, t, user, PASSWORD, t.register);
    pump_until(&mut harness, "the chat after registering", |h| h.state().signed_in_as().is_some());
    harness
}

/// Waits (on the room's runtime) for the classmate to receive a message with `text`; `None` after a bound that
/// only stops a broken test from hanging.
fn received(room: &Room, events: &mut mpsc::Receiver<ClientEvent>, text: &str) -> Option<ChatMessage> {
    room.runtime.block_on(async {
        let wait = async {
            while let Some(event) = events.recv().await {
                if let ClientEvent::Message { message, .. } = event
                    && message.text == text
                {
                    return Some(message);
                }
            }
            None
        };
        tokio::time::timeout(EVENT_WAIT, wait).await.ok().flatten()
    })
}

/// Types `text` into the compose box and presses Enter.
fn say(harness: &mut Harness<'static, ChatApp>, t: &Texts, text: &str) {
    fill(harness, t.compose_hint, text);
    harness.key_press(egui::Key::Enter);
    harness.run_steps(2);
}

/// How the window labels a message of mine the server acknowledged.
fn acknowledged(t: &Texts) -> String {
    format!("{} {}", t.mark_accepted, t.state_accepted)
}

/// How the window labels a message of mine delivered to `peers`.
fn delivered(t: &Texts, peers: &str) -> String {
    format!("{} {}", t.mark_delivered, (t.state_delivered)(peers))
}
