//! The window against a real chatlab server, through [`RealBackend`] and real sockets on 127.0.0.1.
//!
//! The other modules test the window against the in-memory fake; these check that the real network side speaks the
//! same events. Each test starts a server in-process (fast, insecure password hashing; a temporary data directory)
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
use chatlab_proto::chat::Username;
use chatlab_server::ServerHandle;
use chatlab_server::config::ServerConfig;
use chatlab_server::password::PasswordParams;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tempfile::TempDir;
use tokio::sync::mpsc;

use crate::harness::SIZE;

/// Most frames a test steps while waiting for the network: with the nap below, far more than a loaded two-core
/// machine needs, and still a bound.
const MAX_STEPS: usize = 4000;

/// Nap between two frames while waiting, so the waiting does not starve the network threads of CPU.
const NAP: Duration = Duration::from_millis(5);

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
        let mut config = ServerConfig::with_data_dir(dir.path().join("server"));
        config.password_params = PasswordParams::INSECURE_FAST_FOR_TESTS;
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let server = runtime.block_on(ServerHandle::start(addr, config)).expect("the server starts");
        let addr = server.local_addr();
        Room { runtime, server: Some(server), addr, dir }
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

    /// The app over a real backend, its files in this room's temporary directory.
    fn app(&self) -> Harness<'static, ChatApp> {
        let config = RealConfig {
            known_servers_path: Some(self.dir.path().join("app_known_servers")),
            room_dir: Some(self.dir.path().join("hosted")),
        };
        let backend = RealBackend::new(config).expect("the backend starts");
        let app = ChatApp::new(Box::new(backend), None, Some(Lang::En));
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
    let mut harness = room.app();
    let t = Lang::En.texts();
    submit(&mut harness, room, t, user, PASSWORD, t.register);
    pump_until(&mut harness, "the chat after registering", |h| h.state().signed_in_as().is_some());
    harness
}

#[test]
fn a_failed_login_shows_its_error() {
    let room = Room::start();
    let mut harness = room.app();
    let t = Lang::En.texts();
    submit(&mut harness, &room, t, "nobody", PASSWORD, t.log_in);
    pump_until(&mut harness, "the refusal", |h| h.query_by_label("Unknown user name or wrong password.").is_some());
    assert!(harness.state().signed_in_as().is_none());
}

#[test]
fn an_unreachable_server_is_explained() {
    let room = Room::start();
    let mut harness = room.app();
    let t = Lang::En.texts();
    // A port nothing listens on: bind one, note it, free it.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    fill(&mut harness, t.server_address, &free.to_string());
    fill(&mut harness, t.username, "ann");
    fill(&mut harness, t.password, PASSWORD);
    harness.get_by_label(t.log_in).click();
    pump_until(&mut harness, "the unreachable server", |h| h.query_by_label_contains(&free.to_string()).is_some());
    assert!(harness.state().signed_in_as().is_none());
}

#[test]
fn login_reaches_the_world_room_with_the_servers_fingerprint() {
    let room = Room::start();
    let fingerprint = room.server.as_ref().map(|s| s.fingerprint().to_string()).unwrap_or_default();
    let harness = registered(&room, "ann");
    assert_eq!(harness.state().signed_in_as(), Some(&name("ann")));
    assert_eq!(harness.state().chat_model().map(|m| m.active().clone()), Some(Target::World));
    // First contact: the window shows the key's fingerprint to compare with the server operator's.
    harness.get_by_label_contains(&fingerprint);
}

#[test]
fn a_sent_message_appears_and_turns_acknowledged() {
    let room = Room::start();
    let mut harness = registered(&room, "ann");
    let t = Lang::En.texts();
    let (bob, mut bob_events) = room.classmate("bob");
    fill(&mut harness, t.compose_hint, "hello over the real network");
    harness.key_press(egui::Key::Enter);
    harness.run_steps(2);
    harness.get_by_label("hello over the real network");
    let acknowledged = format!("√ {}", t.state_accepted);
    pump_until(&mut harness, "the acknowledgement", |h| h.query_by_label(&acknowledged).is_some());
    // The server stored it and fanned it out: the classmate receives it.
    let received = room.runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(event) = bob_events.recv().await {
                if let ClientEvent::Message { message, .. } = event
                    && message.text == "hello over the real network"
                {
                    return Some(message);
                }
            }
            None
        })
        .await
    });
    let message = received.ok().flatten().expect("bob receives ann's message");
    assert_eq!((message.from, message.to), (name("ann"), Target::World));
    room.runtime.block_on(bob.shutdown());
}

#[test]
fn an_incoming_message_raises_an_unread_badge() {
    let room = Room::start();
    let mut harness = registered(&room, "ann");
    let (bob, _bob_events) = room.classmate("bob");
    room.runtime
        .block_on(bob.send(Target::User(name("ann")), "are you there?"))
        .expect("the server accepts bob's message");
    let bob_target = Target::User(name("bob"));
    let unread = |h: &Harness<'static, ChatApp>| {
        h.state().chat_model().and_then(|m| m.conversation(&bob_target)).map_or(0, |c| c.unread)
    };
    pump_until(&mut harness, "an unread message from bob", |h| unread(h) == 1);
    harness.get_by_label("1");
    // Opening the conversation shows the message and clears the badge.
    harness.get_by_label("bob").click();
    harness.run_steps(2);
    harness.get_by_label("are you there?");
    assert_eq!(unread(&harness), 0);
    room.runtime.block_on(bob.shutdown());
}
