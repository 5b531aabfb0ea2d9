//! An in-memory chat server behind the [`Backend`] trait, for the UI tests and the demo.
//!
//! The UI tests must run headless and deterministically in `cargo test`: no sockets, no threads, no clocks. So
//! the fake answers commands synchronously from a small model of a server (accounts, stored messages with
//! growing ids, users online) and queues the same events a real backend would. A test holds a [`FakeControl`], a
//! second handle on the same state, to play the rest of the world: another user writes, someone goes offline, the
//! connection drops, statistics arrive, the server is slow to acknowledge, a transport switch fails.
//!
//! Like the real network side, the fake keeps the messages sent while its connection is lost (between
//! [`FakeControl::lose_connection`] and [`FakeControl::reconnect`]) and stores and acknowledges them, in order, right
//! after reconnecting.
//!
//! With [`FakeBackend::with_demo_link`] the fake also sends the user's messages through a [`DemoLink`], a real
//! chatlab datagram path in memory, so the demo's statistics and "acknowledged" ticks come from the actual protocol
//! under the impairment the sliders set.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chatlab_proto::chat::{ChatMessage, Target, Username};
use chatlab_proto::control::{ErrorCode, Transport};

use super::{
    Account, Backend, BackendEvent, Command, DemoLink, Impairment, LocalId, Problem, StatsUpdate, TransportReason,
    Waker,
};

/// The fingerprint the fake server shows (a fixed, made-up value in the real display form).
pub const FAKE_FINGERPRINT: &str = "SHA256:6c61:6273:2d64:656d:6f2d:6b65:792d:3030";

/// Messages per history page, as a real server would page them.
const FAKE_PAGE: usize = 50;

/// Where the fake clock starts: 2024-03-01 09:00:00 UTC, a fixed instant so that tests see the same timestamps
/// on every machine.
pub const FAKE_EPOCH_MS: i64 = 1_709_283_600_000;

/// How far the fake clock moves per stored message: one minute, so a conversation spans visible times.
const FAKE_TICK_MS: i64 = 60_000;

/// Port the fake "hosts" on when asked for any port: chatlab's default.
const FAKE_DEFAULT_PORT: u16 = 7878;

/// Text limit the fake server announces, the protocol's own.
const FAKE_MAX_TEXT_BYTES: usize = chatlab_proto::limits::MAX_TEXT_BYTES;

#[derive(Default)]
struct State {
    accounts: BTreeMap<Username, String>,
    pinned: BTreeSet<String>,
    key_changed: BTreeSet<String>,
    me: Option<Username>,
    online: BTreeSet<Username>,
    stored: Vec<ChatMessage>,
    next_id: u64,
    clock_ms: i64,
    /// Stamp new messages with the system clock instead of the fake one (the demo, once its history is seeded).
    wall_clock: bool,
    events: VecDeque<BackendEvent>,
    hold_acks: bool,
    held: Vec<(LocalId, Target, String)>,
    commands: Vec<Command>,
    transport: Option<Transport>,
    waker: Option<Waker>,
    link: Option<LinkState>,
    /// The connection is lost (until the next reconnect).
    lost: bool,
    /// Messages sent while the connection was lost, in the order sent.
    outbox: Vec<(LocalId, Target, String)>,
    /// While set, every transport switch fails with this problem.
    failing_switch: Option<Problem>,
}

struct LinkState {
    link: DemoLink,
    /// Wall time of the demo's start; the link's clock is the time since.
    started: std::time::Instant,
    /// Messages waiting for the link's acknowledgement.
    in_flight: HashMap<LocalId, (Target, String)>,
    /// Server messages travelling down the link, by token.
    down: HashMap<u64, ChatMessage>,
    next_token: u64,
}

impl State {
    fn push(&mut self, event: BackendEvent) {
        self.events.push_back(event);
    }

    fn wake(&self) {
        if let Some(waker) = &self.waker {
            waker();
        }
    }

    fn store(&mut self, from: Username, to: Target, text: String) -> ChatMessage {
        self.next_id += 1;
        self.clock_ms = if self.wall_clock { wall_clock_ms().max(self.clock_ms) } else { self.clock_ms + FAKE_TICK_MS };
        let message = ChatMessage { id: self.next_id, from, to, text, sent_at_ms: self.clock_ms };
        self.stored.push(message.clone());
        message
    }

    fn visible_to(message: &ChatMessage, me: &Username) -> bool {
        match &message.to {
            Target::World => true,
            Target::User(to) => to == me || &message.from == me,
        }
    }

    fn handle(&mut self, command: Command) {
        self.commands.push(command.clone());
        match command {
            Command::SignIn { server, user, password, account } => {
                self.sign_in(server, user, password.expose(), account)
            }
            Command::Send { local_id, to, text } => {
                if self.me.is_none() {
                    let problem =
                        Problem::Refused { code: ErrorCode::NotLoggedIn, message: String::from("log in first") };
                    self.push(BackendEvent::Rejected { local_id, problem });
                } else if self.lost {
                    self.outbox.push((local_id, to, text));
                } else {
                    self.send_now(local_id, to, text);
                }
            }
            Command::History { target, before_id } => self.history(target, before_id),
            Command::SetTransport(wanted) => {
                let refusal = match self.lost {
                    true => Some(Problem::Disconnected { detail: String::from("reconnecting") }),
                    false => self.failing_switch.clone(),
                };
                match refusal {
                    Some(problem) => self.push(BackendEvent::TransportSwitchFailed { wanted, problem }),
                    None => {
                        self.transport = Some(wanted);
                        let event =
                            BackendEvent::TransportChanged { transport: wanted, reason: TransportReason::Requested };
                        self.push(event);
                    }
                }
            }
            Command::SetImpairment(impairment) => self.set_impairment(&impairment),
            Command::HostRoom { port } => {
                let port = if port == 0 { FAKE_DEFAULT_PORT } else { port };
                self.push(BackendEvent::RoomHosted { port, addresses: vec![format!("127.0.0.1:{port}")] });
            }
            Command::LogOut => {
                self.me = None;
                self.lost = false;
                for (local_id, _, _) in std::mem::take(&mut self.outbox) {
                    let problem =
                        Problem::Refused { code: ErrorCode::NotLoggedIn, message: String::from("logged out") };
                    self.push(BackendEvent::Rejected { local_id, problem });
                }
                self.push(BackendEvent::LoggedOut);
            }
        }
    }

    /// Sends a message on a working connection: held back, through the demo link, or stored at once.
    fn send_now(&mut self, local_id: LocalId, to: Target, text: String) {
        if self.hold_acks {
            self.held.push((local_id, to, text));
        } else if let Some(link) = &mut self.link {
            let now = link.started.elapsed();
            if link.link.send_up(local_id, &text, now) {
                link.in_flight.insert(local_id, (to, text));
            } else {
                self.accept(local_id, to, text);
            }
        } else {
            self.accept(local_id, to, text);
        }
    }

    fn sign_in(&mut self, server: String, user: Username, password: &str, account: Account) {
        if server.trim().is_empty() || !server.contains(':') {
            self.push(BackendEvent::LoginFailed(Problem::BadAddress { address: server }));
            return;
        }
        if self.key_changed.contains(&server) {
            self.push(BackendEvent::ServerKeyChanged {
                server,
                pinned: String::from(FAKE_FINGERPRINT),
                offered: String::from("SHA256:0bad:0bad:0bad:0bad:0bad:0bad:0bad:0bad"),
            });
            return;
        }
        if account == Account::Register {
            if self.accounts.contains_key(&user) {
                let message = format!("an account named {user} exists");
                self.push(BackendEvent::LoginFailed(Problem::Refused { code: ErrorCode::UsernameTaken, message }));
                return;
            }
            self.accounts.insert(user.clone(), password.to_owned());
        }
        if self.accounts.get(&user).map(String::as_str) != Some(password) {
            let message = String::from("unknown user or wrong password");
            self.push(BackendEvent::LoginFailed(Problem::Refused { code: ErrorCode::BadCredentials, message }));
            return;
        }
        let first_contact = self.pinned.insert(server.clone());
        self.me = Some(user.clone());
        self.lost = false;
        self.push(BackendEvent::LoggedIn {
            user: user.clone(),
            server,
            fingerprint: String::from(FAKE_FINGERPRINT),
            first_contact,
            max_text_bytes: FAKE_MAX_TEXT_BYTES,
        });
        let mut users: Vec<Username> = self.online.iter().cloned().collect();
        users.push(user.clone());
        users.sort();
        users.dedup();
        self.push(BackendEvent::Users(users));
        // Like a client core that syncs a recent window at login and leaves the rest to scrolling back.
        let visible: Vec<&ChatMessage> = self.stored.iter().filter(|m| Self::visible_to(m, &user)).collect();
        let recent = visible.iter().skip(visible.len().saturating_sub(FAKE_PAGE)).map(|m| (*m).clone()).collect();
        self.push(BackendEvent::Synced(recent));
        let transport = self.transport.unwrap_or(Transport::Udp);
        self.push(BackendEvent::TransportChanged { transport, reason: TransportReason::SessionStart });
    }

    fn accept(&mut self, local_id: LocalId, to: Target, text: String) {
        let Some(me) = self.me.clone() else { return };
        let message = self.store(me, to.clone(), text);
        self.push(BackendEvent::Accepted { local_id, id: message.id, sent_at_ms: message.sent_at_ms });
        if let Target::User(peer) = to
            && self.online.contains(&peer)
        {
            self.push(BackendEvent::Receipt { id: message.id, to: peer });
        }
    }

    fn history(&mut self, target: Target, before_id: Option<u64>) {
        let Some(me) = self.me.clone() else { return };
        let in_conversation: Vec<&ChatMessage> = self
            .stored
            .iter()
            .filter(|m| Self::visible_to(m, &me) && m.conversation(&me) == target)
            .filter(|m| before_id.is_none_or(|before| m.id < before))
            .collect();
        let start = in_conversation.len().saturating_sub(FAKE_PAGE);
        let more = start > 0;
        let messages = in_conversation.into_iter().skip(start).cloned().collect();
        self.push(BackendEvent::History { target, messages, more });
    }

    fn set_impairment(&mut self, impairment: &Impairment) {
        if let Some(link) = &mut self.link
            && let Err(err) = link.link.set_impairment(impairment)
        {
            self.events.push_back(BackendEvent::ImpairmentFailed(Problem::Other(err.to_string())));
        }
    }

    /// Runs the demo link up to the present and turns its progress into events.
    fn drive_link(&mut self) {
        let Some(link) = &mut self.link else { return };
        let now = link.started.elapsed();
        let progress = link.link.step(now);
        let mut accepted = Vec::new();
        for (local_id, _latency) in progress.acked {
            if let Some((to, text)) = link.in_flight.remove(&local_id) {
                accepted.push((local_id, to, text));
            }
        }
        let delivered: Vec<ChatMessage> =
            progress.delivered.iter().filter_map(|token| link.down.remove(token)).collect();
        for (local_id, to, text) in accepted {
            self.accept(local_id, to, text);
        }
        for message in delivered {
            self.push(BackendEvent::Message(message));
        }
    }
}

/// Milliseconds since the Unix epoch by the system clock (0 if the clock is before 1970).
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A fake server answering the UI. See the module docs.
pub struct FakeBackend {
    state: Arc<Mutex<State>>,
}

/// A second handle on a [`FakeBackend`]'s state, to play the rest of the world in tests and the demo.
#[derive(Clone)]
pub struct FakeControl {
    state: Arc<Mutex<State>>,
}

/// Locks the shared state. A panic while holding the lock (only possible in a failing test) poisons it; the state
/// is still consistent enough for the remaining assertions, so the poison is ignored.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeBackend {
    /// A fake server with no accounts, and the control handle for it.
    pub fn new() -> (FakeBackend, FakeControl) {
        let state = State { clock_ms: FAKE_EPOCH_MS, ..State::default() };
        let state = Arc::new(Mutex::new(state));
        (FakeBackend { state: Arc::clone(&state) }, FakeControl { state })
    }

    /// As [`FakeBackend::new`], routing the user's messages through a real datagram path in memory (see
    /// [`DemoLink`]); its statistics are sent by [`FakeControl::tick`].
    pub fn with_demo_link() -> Result<(FakeBackend, FakeControl), super::DemoLinkError> {
        let (backend, control) = FakeBackend::new();
        let link = DemoLink::new(Duration::ZERO)?;
        lock(&control.state).link = Some(LinkState {
            link,
            started: std::time::Instant::now(),
            in_flight: HashMap::new(),
            down: HashMap::new(),
            next_token: 0,
        });
        Ok((backend, control))
    }
}

impl Backend for FakeBackend {
    fn send(&mut self, command: Command) {
        lock(&self.state).handle(command);
    }

    fn try_recv(&mut self) -> Option<BackendEvent> {
        let mut state = lock(&self.state);
        state.drive_link();
        state.events.pop_front()
    }

    fn set_waker(&mut self, waker: Waker) {
        lock(&self.state).waker = Some(waker);
    }
}

impl FakeControl {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = lock(&self.state);
        let result = f(&mut state);
        state.wake();
        result
    }

    /// Creates an account.
    pub fn add_account(&self, user: &Username, password: &str) {
        self.with(|s| {
            s.accounts.insert(user.clone(), password.to_owned());
        });
    }

    /// Makes the next sign-in to `server` meet a different key than the one pinned.
    pub fn change_server_key(&self, server: &str) {
        self.with(|s| {
            s.key_changed.insert(server.to_owned());
        });
    }

    /// Sets the fake clock (UTC milliseconds) used for the next stored messages.
    pub fn set_clock_ms(&self, ms: i64) {
        self.with(|s| s.clock_ms = ms);
    }

    /// From now on, stamps new messages with the system clock (as a real server would) instead of the fake clock.
    pub fn use_wall_clock(&self) {
        self.with(|s| s.wall_clock = true);
    }

    /// `user` comes online (or goes offline).
    pub fn set_online(&self, user: &Username, online: bool) {
        self.with(|s| {
            let changed = if online { s.online.insert(user.clone()) } else { s.online.remove(user) };
            if changed && s.me.is_some() {
                s.push(BackendEvent::Presence { user: user.clone(), online });
            }
        });
    }

    /// `from` sends `text` to `to`; the signed-in user gets it live if it concerns them. Returns the stored message.
    pub fn incoming(&self, from: &Username, to: Target, text: &str) -> ChatMessage {
        self.with(|s| {
            let message = s.store(from.clone(), to, text.to_owned());
            let concerns_me = s.me.as_ref().is_some_and(|me| State::visible_to(&message, me));
            if concerns_me {
                match &mut s.link {
                    Some(link) => {
                        link.next_token += 1;
                        let token = link.next_token;
                        if link.link.send_down(token, &message.text, link.started.elapsed()) {
                            link.down.insert(token, message.clone());
                        } else {
                            s.events.push_back(BackendEvent::Message(message.clone()));
                        }
                    }
                    None => s.push(BackendEvent::Message(message.clone())),
                }
            }
            message
        })
    }

    /// Stored messages, oldest first.
    pub fn stored(&self) -> Vec<ChatMessage> {
        self.with(|s| s.stored.clone())
    }

    /// Holds acknowledgements back (messages stay "sending") until [`FakeControl::release`].
    pub fn hold_acks(&self, hold: bool) {
        self.with(|s| s.hold_acks = hold);
    }

    /// Acknowledges every held message.
    pub fn release(&self) {
        self.with(|s| {
            for (local_id, to, text) in std::mem::take(&mut s.held) {
                s.accept(local_id, to, text);
            }
        });
    }

    /// Queues a statistics report.
    pub fn push_stats(&self, update: StatsUpdate) {
        self.with(|s| s.push(BackendEvent::Stats(Box::new(update))));
    }

    /// Signs `user` in as if the form had been sent (for the demo, which starts mid-conversation).
    pub fn sign_in(&self, server: &str, user: &Username, password: &str) {
        self.with(|s| s.sign_in(server.to_owned(), user.clone(), password, Account::LogIn));
    }

    /// With a demo link: moves its packets and turns what arrived into events. Call every few milliseconds:
    /// packets wait in the link until this runs, so a slow caller would add its own period to every RTT.
    pub fn drive(&self) {
        let mut state = lock(&self.state);
        let before = state.events.len();
        state.drive_link();
        if state.events.len() > before {
            state.wake();
        }
    }

    /// With a demo link: sends a probe message of `bytes` bytes up the link (lab traffic, see
    /// [`DemoLink::send_probe`]).
    pub fn probe(&self, bytes: usize) {
        let mut state = lock(&self.state);
        if let Some(link) = &mut state.link {
            let now = link.started.elapsed();
            link.link.send_probe(bytes, now);
        }
    }

    /// With a demo link: pings, runs the link and queues a statistics report. Call a few times a second.
    pub fn tick(&self) {
        self.with(|s| {
            if let Some(link) = &mut s.link {
                link.link.ping();
            }
            s.drive_link();
            if let Some(link) = &s.link {
                let update = link.link.stats(link.started.elapsed());
                s.push(BackendEvent::Stats(Box::new(update)));
            }
        });
    }

    /// The connection breaks. Messages sent from now on wait for [`FakeControl::reconnect`].
    pub fn lose_connection(&self, problem: Problem) {
        self.with(|s| {
            s.lost = true;
            s.push(BackendEvent::ConnectionLost(problem));
        });
    }

    /// The session ends for good with `problem`, as when the automatic login after a reconnect is refused.
    pub fn end_session(&self, problem: Problem) {
        self.with(|s| s.push(BackendEvent::SessionEnded(problem)));
    }

    /// Something fails outside any request while the session goes on (a refused background sync, say).
    pub fn background_failure(&self, problem: Problem) {
        self.with(|s| s.push(BackendEvent::Notice(problem)));
    }

    /// From now on every transport switch fails with `problem` (`None`: switches work again).
    pub fn fail_transport_switches(&self, problem: Option<Problem>) {
        self.with(|s| s.failing_switch = problem);
    }

    /// Messages waiting for the connection to come back.
    pub fn waiting(&self) -> usize {
        self.with(|s| s.outbox.len())
    }

    /// The connection comes back: reconnected, then the user list and the messages stored meanwhile, then the
    /// messages sent while the connection was lost go out, in order.
    pub fn reconnect(&self, missed_after_id: u64) {
        self.with(|s| {
            let Some(me) = s.me.clone() else { return };
            s.lost = false;
            s.push(BackendEvent::Reconnected);
            let mut users: Vec<Username> = s.online.iter().cloned().collect();
            users.push(me.clone());
            users.sort();
            users.dedup();
            s.push(BackendEvent::Users(users));
            let missed =
                s.stored.iter().filter(|m| m.id > missed_after_id && State::visible_to(m, &me)).cloned().collect();
            s.push(BackendEvent::Synced(missed));
            for (local_id, to, text) in std::mem::take(&mut s.outbox) {
                s.send_now(local_id, to, text);
            }
        });
    }

    /// Every command the UI sent, oldest first.
    pub fn commands(&self) -> Vec<Command> {
        self.with(|s| s.commands.clone())
    }
}

#[cfg(test)]
mod tests {
    use chatlab_proto::control::Password;

    use super::*;

    fn name(raw: &str) -> Username {
        Username::parse(raw).unwrap()
    }

    fn drain(backend: &mut FakeBackend) -> Vec<BackendEvent> {
        std::iter::from_fn(|| backend.try_recv()).collect()
    }

    fn sign_in(account: Account, password: &str) -> Command {
        Command::SignIn {
            server: String::from("127.0.0.1:7878"),
            user: name("ann"),
            password: Password::new(password),
            account,
        }
    }

    #[test]
    fn wrong_password_is_refused_as_bad_credentials() {
        let (mut backend, control) = FakeBackend::new();
        control.add_account(&name("ann"), "secret");
        backend.send(sign_in(Account::LogIn, "wrong"));
        assert!(matches!(
            drain(&mut backend).as_slice(),
            [BackendEvent::LoginFailed(Problem::Refused { code: ErrorCode::BadCredentials, .. })]
        ));
    }

    #[test]
    fn registering_a_taken_name_is_refused() {
        let (mut backend, control) = FakeBackend::new();
        control.add_account(&name("ann"), "secret");
        backend.send(sign_in(Account::Register, "other"));
        assert!(matches!(
            drain(&mut backend).as_slice(),
            [BackendEvent::LoginFailed(Problem::Refused { code: ErrorCode::UsernameTaken, .. })]
        ));
    }

    #[test]
    fn address_without_port_is_a_bad_address() {
        let (mut backend, _control) = FakeBackend::new();
        backend.send(Command::SignIn {
            server: String::from("localhost"),
            user: name("ann"),
            password: Password::new("x"),
            account: Account::Register,
        });
        assert!(matches!(drain(&mut backend).as_slice(), [BackendEvent::LoginFailed(Problem::BadAddress { .. })]));
    }

    #[test]
    fn changed_key_is_reported_before_anything_else() {
        let (mut backend, control) = FakeBackend::new();
        control.add_account(&name("ann"), "secret");
        control.change_server_key("127.0.0.1:7878");
        backend.send(sign_in(Account::LogIn, "secret"));
        assert!(matches!(drain(&mut backend).as_slice(), [BackendEvent::ServerKeyChanged { .. }]));
    }

    #[test]
    fn register_logs_in_and_first_contact_is_reported_once() {
        let (mut backend, _control) = FakeBackend::new();
        backend.send(sign_in(Account::Register, "secret"));
        let events = drain(&mut backend);
        assert!(matches!(events.first(), Some(BackendEvent::LoggedIn { first_contact: true, .. })));
        backend.send(Command::LogOut);
        backend.send(sign_in(Account::LogIn, "secret"));
        let events = drain(&mut backend);
        assert!(events.iter().any(|e| matches!(e, BackendEvent::LoggedIn { first_contact: false, .. })));
    }

    #[test]
    fn held_messages_are_accepted_on_release_with_receipts_for_online_peers() {
        let (mut backend, control) = FakeBackend::new();
        control.add_account(&name("ann"), "secret");
        control.set_online(&name("bob"), true);
        backend.send(sign_in(Account::LogIn, "secret"));
        drain(&mut backend);
        control.hold_acks(true);
        backend.send(Command::Send { local_id: LocalId(1), to: Target::User(name("bob")), text: String::from("hi") });
        assert!(drain(&mut backend).is_empty());
        control.release();
        let events = drain(&mut backend);
        assert!(matches!(
            events.as_slice(),
            [BackendEvent::Accepted { local_id: LocalId(1), id: 1, .. }, BackendEvent::Receipt { id: 1, .. }]
        ));
    }

    #[test]
    fn a_message_sent_while_the_connection_is_lost_is_kept_and_accepted_after_the_reconnect() {
        let (mut backend, control) = FakeBackend::new();
        control.add_account(&name("ann"), "secret");
        backend.send(sign_in(Account::LogIn, "secret"));
        drain(&mut backend);
        control.lose_connection(Problem::Disconnected { detail: String::from("reset") });
        drain(&mut backend);
        backend.send(Command::Send { local_id: LocalId(1), to: Target::World, text: String::from("one") });
        backend.send(Command::Send { local_id: LocalId(2), to: Target::World, text: String::from("two") });
        assert!(drain(&mut backend).is_empty(), "kept, neither accepted nor failed");
        assert_eq!(control.waiting(), 2);
        assert!(control.stored().is_empty());
        control.reconnect(0);
        let accepted: Vec<LocalId> = drain(&mut backend)
            .into_iter()
            .filter_map(|e| match e {
                BackendEvent::Accepted { local_id, .. } => Some(local_id),
                _ => None,
            })
            .collect();
        assert_eq!(accepted, [LocalId(1), LocalId(2)], "each once, in the order sent");
        assert_eq!(control.waiting(), 0);
        let texts: Vec<String> = control.stored().into_iter().map(|m| m.text).collect();
        assert_eq!(texts, ["one", "two"]);
    }

    #[test]
    fn a_transport_switch_fails_while_asked_to_and_while_the_connection_is_lost() {
        let (mut backend, control) = FakeBackend::new();
        control.add_account(&name("ann"), "secret");
        backend.send(sign_in(Account::LogIn, "secret"));
        drain(&mut backend);
        let problem = Problem::Other(String::from("the server did not take the request"));
        control.fail_transport_switches(Some(problem.clone()));
        backend.send(Command::SetTransport(Transport::Tcp));
        assert_eq!(drain(&mut backend), [BackendEvent::TransportSwitchFailed { wanted: Transport::Tcp, problem }]);
        control.fail_transport_switches(None);
        control.lose_connection(Problem::Disconnected { detail: String::from("reset") });
        drain(&mut backend);
        backend.send(Command::SetTransport(Transport::Tcp));
        assert!(matches!(
            drain(&mut backend).as_slice(),
            [BackendEvent::TransportSwitchFailed { wanted: Transport::Tcp, problem: Problem::Disconnected { .. } }]
        ));
        control.reconnect(0);
        drain(&mut backend);
        backend.send(Command::SetTransport(Transport::Tcp));
        assert!(matches!(
            drain(&mut backend).as_slice(),
            [BackendEvent::TransportChanged { transport: Transport::Tcp, reason: TransportReason::Requested }]
        ));
    }

    #[test]
    fn logging_out_fails_what_waited_for_the_connection() {
        let (mut backend, control) = FakeBackend::new();
        control.add_account(&name("ann"), "secret");
        backend.send(sign_in(Account::LogIn, "secret"));
        control.lose_connection(Problem::Disconnected { detail: String::from("reset") });
        drain(&mut backend);
        backend.send(Command::Send { local_id: LocalId(3), to: Target::World, text: String::from("late") });
        backend.send(Command::LogOut);
        assert!(matches!(
            drain(&mut backend).as_slice(),
            [BackendEvent::Rejected { local_id: LocalId(3), .. }, BackendEvent::LoggedOut]
        ));
    }

    #[test]
    fn sending_before_login_is_rejected() {
        let (mut backend, _control) = FakeBackend::new();
        backend.send(Command::Send { local_id: LocalId(1), to: Target::World, text: String::from("hi") });
        assert!(matches!(drain(&mut backend).as_slice(), [BackendEvent::Rejected { local_id: LocalId(1), .. }]));
    }

    #[test]
    fn history_pages_go_back_in_time() {
        let (mut backend, control) = FakeBackend::new();
        control.add_account(&name("ann"), "secret");
        for i in 0..(FAKE_PAGE + 5) {
            control.incoming(&name("bob"), Target::World, &format!("m{i}"));
        }
        backend.send(sign_in(Account::LogIn, "secret"));
        drain(&mut backend);
        backend.send(Command::History { target: Target::World, before_id: None });
        let Some(BackendEvent::History { messages, more: true, .. }) = drain(&mut backend).pop() else {
            panic!("expected a first page with more")
        };
        assert_eq!(messages.len(), FAKE_PAGE);
        let oldest = messages.first().map(|m| m.id);
        backend.send(Command::History { target: Target::World, before_id: oldest });
        let Some(BackendEvent::History { messages, more: false, .. }) = drain(&mut backend).pop() else {
            panic!("expected a last page")
        };
        assert_eq!(messages.len(), 5);
    }

    #[test]
    fn waker_is_called_when_the_world_acts() {
        let (mut backend, control) = FakeBackend::new();
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&woken);
        backend.set_waker(Arc::new(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        control.set_online(&name("bob"), true);
        assert!(woken.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    }
}
