//! A minimal chatlab server built from proto pieces, just enough to exercise the client core.
//!
//! It speaks the protocol of `docs/protocol.md` on one port for TCP and UDP: the Noise NX handshake (raw fixed-size
//! messages), frames of Noise transport messages, `Hello`/`Welcome`, accounts in memory, session grants, chat over
//! TCP and over UDP (an [`Endpoint`] per session), fan-out, history, sync, the user list and `UseTransport`. It has
//! no storage, limits or rate limiting: the real server's tests cover those. Like the real server it recognises a
//! resent message by its sender and `client_msg_id` and answers it with the first copy's id. Test hooks let a test
//! black-hole UDP, drop every TCP connection, refuse new ones for a while, close a connection right after storing a
//! chat message (so its acceptance is lost), leave logins unanswered, speak another protocol version, and inject
//! messages from other users.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, mpsc};

use chatlab_proto::chat::{ChatMessage, ChatPayload, StreamMap, Target, Username, validate_text};
use chatlab_proto::control::{
    ClientMessage, ErrorCode, FrameDecoder, KeyMaterial, ServerMessage, Transport, decode_client, encode, encode_frame,
};
use chatlab_proto::datagram::Role;
use chatlab_proto::endpoint::Endpoint;
use chatlab_proto::engine::{EngineConfig, Event};
use chatlab_proto::limits::{MAX_TEXT_BYTES, PROTOCOL_VERSION};
use chatlab_proto::noise::{HANDSHAKE_MSG1_LEN, Responder, ServerKey, StaticKeypair, Transport as Noise};

/// How the fake server behaves.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Answer datagrams; false black-holes UDP as a firewall would.
    pub answer_udp: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { answer_udp: true }
    }
}

/// One logged-in session.
struct Session {
    user: String,
    push: mpsc::UnboundedSender<ServerMessage>,
    endpoint: Endpoint,
    udp_addr: Option<SocketAddr>,
    transport: Transport,
    forced_tcp: bool,
    streams: StreamMap,
}

#[derive(Default)]
struct State {
    users: HashMap<String, String>,
    messages: Vec<ChatMessage>,
    sessions: HashMap<u64, Session>,
    next_connection_id: u64,
    logins: usize,
    chats_over_tcp: usize,
    chats_over_udp: usize,
    use_transport: Vec<Transport>,
    datagrams: Vec<Vec<u8>>,
    /// The `after_id` of every `SyncHistory`, in arrival order.
    sync_requests: Vec<u64>,
    /// Stored messages by sender and `client_msg_id`: (target, text, id, sent_at_ms).
    stored_ids: HashMap<(String, u64), (Target, String, u64, i64)>,
    /// Resends answered with the first copy's id.
    duplicates: usize,
    /// Close the connection right after storing the next chat message sent over TCP, without answering it.
    swallow_next_chat: bool,
    /// Refuse the next chat message sent over TCP as a server shutting down does, then close the connection.
    shut_down_at_next_chat: bool,
    /// Leave `Login` unanswered.
    ignore_logins: bool,
    /// Answer `Hello` with a version mismatch.
    refuse_version: bool,
    /// Refuse every `Login` with this code.
    login_refusal: Option<ErrorCode>,
    /// The ids named by every `Received`, in arrival order.
    received: Vec<u64>,
}

/// A running fake server; stops when dropped.
pub struct FakeServer {
    pub addr: SocketAddr,
    pub key: ServerKey,
    state: Arc<Mutex<State>>,
    kill: Arc<Notify>,
    refusing: Arc<AtomicBool>,
    silent: Arc<AtomicBool>,
    answer_udp: Arc<AtomicBool>,
    origin: Instant,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.kill.notify_waiters();
    }
}

impl FakeServer {
    /// Binds TCP and UDP on the same loopback port and starts serving.
    pub async fn start(options: Options) -> FakeServer {
        let (listener, udp) = bind_pair().await;
        let addr = listener.local_addr().expect("local addr");
        let keypair = Arc::new(StaticKeypair::generate().expect("keypair"));
        let key = keypair.public();
        let state = Arc::new(Mutex::new(State { next_connection_id: 1, ..State::default() }));
        let kill = Arc::new(Notify::new());
        let refusing = Arc::new(AtomicBool::new(false));
        let silent = Arc::new(AtomicBool::new(false));
        let answer_udp = Arc::new(AtomicBool::new(options.answer_udp));
        let origin = Instant::now();
        let udp = Arc::new(udp);
        let flags = Flags { kill: Arc::clone(&kill), refusing: Arc::clone(&refusing), silent: Arc::clone(&silent) };
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&keypair), Arc::clone(&state), flags, origin));
        let datagrams = tokio::spawn(udp_loop(udp, Arc::clone(&state), Arc::clone(&answer_udp), origin));
        FakeServer { addr, key, state, kill, refusing, silent, answer_udp, origin, tasks: vec![accept, datagrams] }
    }

    /// `127.0.0.1:PORT`.
    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    pub fn add_user(&self, name: &str, password: &str) {
        lock(&self.state).users.insert(name.to_string(), password.to_string());
    }

    /// Stores a message from `from` and pushes it to every session that should see it, as if `from` had sent it.
    pub fn inject(&self, from: &str, to: Target, text: &str) -> ChatMessage {
        let mut state = lock(&self.state);
        store_and_fan_out(&mut state, from, to, text, None, self.origin)
    }

    /// Stores a message from `from` without pushing it to anyone: a message lost in flight, which only a history
    /// sync can bring.
    pub fn store_unpushed(&self, from: &str, to: Target, text: &str) -> ChatMessage {
        let mut state = lock(&self.state);
        let id = state.messages.len() as u64 + 1;
        let message = ChatMessage {
            id,
            from: Username::parse(from).expect("valid sender"),
            to,
            text: text.into(),
            sent_at_ms: 0,
        };
        state.messages.push(message.clone());
        message
    }

    /// The `after_id` of every history sync asked for so far.
    pub fn sync_requests(&self) -> Vec<u64> {
        lock(&self.state).sync_requests.clone()
    }

    /// The message ids clients confirmed with `Received`, in arrival order.
    pub fn received_reports(&self) -> Vec<u64> {
        lock(&self.state).received.clone()
    }

    /// Closes every TCP connection (their sessions end).
    pub fn drop_connections(&self) {
        self.kill.notify_waiters();
    }

    /// While true, new TCP connections are closed before the handshake.
    pub fn set_refusing(&self, refusing: bool) {
        self.refusing.store(refusing, Ordering::SeqCst);
    }

    /// While true, frames from clients are read and ignored: a server that hangs without closing.
    pub fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::SeqCst);
    }

    /// Switches answering datagrams on or off (a firewall appearing mid-session).
    pub fn set_answer_udp(&self, answer: bool) {
        self.answer_udp.store(answer, Ordering::SeqCst);
    }

    /// Closes the connection right after storing the next chat message sent over TCP: its acceptance is lost.
    pub fn swallow_next_chat(&self) {
        lock(&self.state).swallow_next_chat = true;
    }

    /// Refuses the next chat message sent over TCP with `ServerShuttingDown` (storing nothing) and closes the
    /// connection, as a server going down for a restart does.
    pub fn shut_down_at_next_chat(&self) {
        lock(&self.state).shut_down_at_next_chat = true;
    }

    /// While `Some`, every login is refused with that code (`None`: logins are checked again).
    pub fn set_login_refusal(&self, code: Option<ErrorCode>) {
        lock(&self.state).login_refusal = code;
    }

    /// While true, logins get no answer at all.
    pub fn set_ignoring_logins(&self, ignoring: bool) {
        lock(&self.state).ignore_logins = ignoring;
    }

    /// While true, `Hello` is answered with a version mismatch (a server upgraded to another protocol).
    pub fn set_refusing_version(&self, refusing: bool) {
        lock(&self.state).refuse_version = refusing;
    }

    /// Resent messages recognised by their `client_msg_id` and answered without storing them again.
    pub fn duplicates(&self) -> usize {
        lock(&self.state).duplicates
    }

    /// The stored messages with this text.
    pub fn stored_with_text(&self, text: &str) -> Vec<ChatMessage> {
        lock(&self.state).messages.iter().filter(|m| m.text == text).cloned().collect()
    }

    pub fn messages(&self) -> Vec<ChatMessage> {
        lock(&self.state).messages.clone()
    }

    pub fn logins(&self) -> usize {
        lock(&self.state).logins
    }

    pub fn chats_over(&self, transport: Transport) -> usize {
        let state = lock(&self.state);
        match transport {
            Transport::Tcp => state.chats_over_tcp,
            Transport::Udp => state.chats_over_udp,
        }
    }

    pub fn use_transport_requests(&self) -> Vec<Transport> {
        lock(&self.state).use_transport.clone()
    }

    /// Every datagram that arrived, as received.
    pub fn datagrams(&self) -> Vec<Vec<u8>> {
        lock(&self.state).datagrams.clone()
    }

    pub fn online(&self) -> Vec<String> {
        online_users(&lock(&self.state))
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A TCP listener and a UDP socket on the same free loopback port.
async fn bind_pair() -> (TcpListener, UdpSocket) {
    for _ in 0..50 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
        let addr = listener.local_addr().expect("addr");
        if let Ok(udp) = UdpSocket::bind(addr).await {
            return (listener, udp);
        }
    }
    panic!("no port free for both TCP and UDP");
}

/// Test switches shared with every connection.
#[derive(Clone)]
struct Flags {
    kill: Arc<Notify>,
    refusing: Arc<AtomicBool>,
    silent: Arc<AtomicBool>,
}

async fn accept_loop(
    listener: TcpListener,
    keypair: Arc<StaticKeypair>,
    state: Arc<Mutex<State>>,
    flags: Flags,
    origin: Instant,
) {
    while let Ok((stream, _)) = listener.accept().await {
        if flags.refusing.load(Ordering::SeqCst) {
            drop(stream);
            continue;
        }
        let (keypair, state, flags) = (Arc::clone(&keypair), Arc::clone(&state), flags.clone());
        tokio::spawn(async move {
            let killed = flags.kill.notified();
            serve(stream, &keypair, &state, origin, killed, &flags.silent).await;
        });
    }
}

/// Per-connection context.
struct Conn {
    noise: Noise,
    stream: TcpStream,
    connection_id: Option<u64>,
    push_tx: mpsc::UnboundedSender<ServerMessage>,
}

impl Conn {
    async fn send(&mut self, message: &ServerMessage) -> bool {
        let Ok(plaintext) = encode(message) else { return false };
        let Ok(sealed) = self.noise.encrypt(&plaintext) else { return false };
        let mut frame = Vec::new();
        if encode_frame(&sealed, &mut frame).is_err() {
            return false;
        }
        self.stream.write_all(&frame).await.is_ok()
    }
}

async fn serve(
    mut stream: TcpStream,
    keypair: &StaticKeypair,
    state: &Arc<Mutex<State>>,
    origin: Instant,
    killed: tokio::sync::futures::Notified<'_>,
    silent: &AtomicBool,
) {
    tokio::pin!(killed);
    let mut msg1 = [0u8; HANDSHAKE_MSG1_LEN];
    if stream.read_exact(&mut msg1).await.is_err() {
        return;
    }
    let Ok(responder) = Responder::new(keypair) else { return };
    let Ok((msg2, noise)) = responder.respond(&msg1) else { return };
    if stream.write_all(&msg2).await.is_err() {
        return;
    }
    let (push_tx, mut push_rx) = mpsc::unbounded_channel();
    let mut conn = Conn { noise, stream, connection_id: None, push_tx };
    let mut decoder = FrameDecoder::new();
    let mut chunk = vec![0u8; 16 * 1024];
    'serve: loop {
        tokio::select! {
            read = conn.stream.read(&mut chunk) => {
                let Ok(read) = read else { break 'serve };
                if read == 0 {
                    break 'serve;
                }
                decoder.extend(chunk.get(..read).unwrap_or_default());
                while let Ok(Some(frame)) = decoder.next_frame() {
                    if silent.load(Ordering::SeqCst) {
                        continue;
                    }
                    let Ok(plaintext) = conn.noise.decrypt(&frame) else { break 'serve };
                    let Ok(message) = decode_client(&plaintext) else { break 'serve };
                    if let ClientMessage::Chat { client_msg_id, .. } = &message {
                        if std::mem::take(&mut lock(state).shut_down_at_next_chat) {
                            let message = "the server is shutting down".to_string();
                            let refusal =
                                ServerMessage::ChatRejected { client_msg_id: *client_msg_id, code: ErrorCode::ServerShuttingDown, message };
                            let _ = conn.send(&refusal).await;
                            break 'serve;
                        }
                    }
                    let swallow = matches!(message, ClientMessage::Chat { .. })
                        && std::mem::take(&mut lock(state).swallow_next_chat);
                    let replies = handle(state, &mut conn, message, origin);
                    if swallow {
                        break 'serve;
                    }
                    for reply in replies {
                        if !conn.send(&reply).await {
                            break 'serve;
                        }
                    }
                }
            }
            Some(push) = push_rx.recv() => {
                if !conn.send(&push).await {
                    break 'serve;
                }
            }
            () = &mut killed => break 'serve,
        }
    }
    if let Some(id) = conn.connection_id {
        end_session(&mut lock(state), id);
    }
}

fn end_session(state: &mut State, id: u64) {
    if let Some(session) = state.sessions.remove(&id) {
        if !state.sessions.values().any(|other| other.user == session.user) {
            let user = Username::parse(&session.user).expect("valid");
            for other in state.sessions.values() {
                let _ = other.push.send(ServerMessage::Presence { user: user.clone(), online: false });
            }
        }
    }
}

fn online_users(state: &State) -> Vec<String> {
    let mut users: Vec<String> = state.sessions.values().map(|s| s.user.clone()).collect();
    users.sort();
    users.dedup();
    users
}

fn error(req: Option<u32>, code: ErrorCode, message: &str) -> ServerMessage {
    ServerMessage::Error { req, code, message: message.to_string() }
}

/// Answers one control message.
fn handle(state: &Arc<Mutex<State>>, conn: &mut Conn, message: ClientMessage, origin: Instant) -> Vec<ServerMessage> {
    let mut state = lock(state);
    let user = conn.connection_id.and_then(|id| state.sessions.get(&id)).map(|s| s.user.clone());
    match (message, user) {
        (ClientMessage::Hello { .. }, _) if state.refuse_version => {
            vec![error(None, ErrorCode::VersionMismatch, "this server speaks version 2 now")]
        }
        (ClientMessage::Login { .. }, None) if state.ignore_logins => Vec::new(),
        (ClientMessage::Login { .. }, None) if state.login_refusal.is_some() => {
            let code = state.login_refusal.unwrap_or(ErrorCode::Internal);
            vec![error(None, code, "refused by the test")]
        }
        (ClientMessage::Hello { version, .. }, _) if version == PROTOCOL_VERSION => {
            vec![ServerMessage::Welcome { version, server: "fake-server".into() }]
        }
        (ClientMessage::Hello { .. }, _) => vec![error(None, ErrorCode::VersionMismatch, "version 1 only")],
        (ClientMessage::Ping { nonce }, _) => vec![ServerMessage::Pong { nonce }],
        (ClientMessage::Register { username, password }, None) => match Username::parse(&username) {
            Err(err) => vec![error(None, ErrorCode::UsernameInvalid, &err.to_string())],
            Ok(name) if state.users.contains_key(name.as_str()) => {
                vec![error(None, ErrorCode::UsernameTaken, "that name is taken")]
            }
            Ok(name) => {
                state.users.insert(name.as_str().to_string(), password.expose().to_string());
                vec![ServerMessage::Registered { username: name }]
            }
        },
        (ClientMessage::Login { username, password }, None) => {
            let name = username.to_lowercase();
            if state.users.get(&name).map(String::as_str) != Some(password.expose()) {
                return vec![error(None, ErrorCode::BadCredentials, "unknown user or wrong password")];
            }
            let id = state.next_connection_id;
            state.next_connection_id += 1;
            let key_material: [u8; 32] = rand::random();
            let endpoint = Endpoint::new(&key_material, id, Role::Server, EngineConfig::default(), origin.elapsed())
                .expect("endpoint");
            let user = Username::parse(&name).expect("valid");
            let first = !state.sessions.values().any(|s| s.user == name);
            if first {
                for other in state.sessions.values() {
                    let _ = other.push.send(ServerMessage::Presence { user: user.clone(), online: true });
                }
            }
            state.sessions.insert(
                id,
                Session {
                    user: name,
                    push: conn.push_tx.clone(),
                    endpoint,
                    udp_addr: None,
                    transport: Transport::Tcp,
                    forced_tcp: false,
                    streams: StreamMap::new(),
                },
            );
            state.logins += 1;
            conn.connection_id = Some(id);
            let port = conn.stream.local_addr().map(|a| a.port()).unwrap_or(0);
            vec![ServerMessage::SessionGrant {
                user,
                connection_id: id,
                key_material: KeyMaterial::new(key_material),
                udp_port: port,
                max_text_bytes: MAX_TEXT_BYTES as u32,
            }]
        }
        (ClientMessage::Register { .. } | ClientMessage::Login { .. }, Some(_)) => {
            vec![error(None, ErrorCode::AlreadyLoggedIn, "already logged in")]
        }
        (_, None) => vec![error(None, ErrorCode::NotLoggedIn, "log in first")],
        (ClientMessage::Logout, Some(_)) => {
            if let Some(id) = conn.connection_id.take() {
                end_session(&mut state, id);
            }
            vec![ServerMessage::LoggedOut]
        }
        (ClientMessage::SyncHistory { req, after_id, limit }, Some(user)) => {
            state.sync_requests.push(after_id);
            let visible: Vec<ChatMessage> =
                state.messages.iter().filter(|m| m.id > after_id && sees(&user, m)).cloned().collect();
            let limit = usize::from(limit).max(1);
            let more = visible.len() > limit;
            vec![ServerMessage::HistoryPage { req, messages: visible.into_iter().take(limit).collect(), more }]
        }
        (ClientMessage::History { req, target, before_id, limit }, Some(user)) => {
            let me = Username::parse(&user).expect("valid");
            let mut page: Vec<ChatMessage> = state
                .messages
                .iter()
                .filter(|m| sees(&user, m) && m.conversation(&me) == target)
                .filter(|m| before_id.is_none_or(|before| m.id < before))
                .cloned()
                .collect();
            let limit = usize::from(limit);
            let more = page.len() > limit;
            let page = page.split_off(page.len().saturating_sub(limit));
            vec![ServerMessage::HistoryPage { req, messages: page, more }]
        }
        (ClientMessage::ListUsers { req }, Some(_)) => {
            let users = online_users(&state).iter().map(|u| Username::parse(u).expect("valid")).collect();
            vec![ServerMessage::Users { req, users, more: false }]
        }
        (ClientMessage::Chat { client_msg_id, to, text }, Some(user)) => {
            state.chats_over_tcp += 1;
            let chat = Chat { user: &user, client_msg_id, to, text: &text, session: conn.connection_id };
            match accept_chat(&mut state, chat, origin) {
                Err((code, message)) => vec![ServerMessage::ChatRejected { client_msg_id, code, message }],
                Ok((id, sent_at_ms)) => vec![ServerMessage::ChatAccepted { client_msg_id, id, sent_at_ms }],
            }
        }
        (ClientMessage::UseTransport { transport }, Some(_)) => {
            state.use_transport.push(transport);
            if let Some(session) = conn.connection_id.and_then(|id| state.sessions.get_mut(&id)) {
                session.forced_tcp = transport == Transport::Tcp;
                session.transport = match transport {
                    Transport::Udp if session.udp_addr.is_some() => Transport::Udp,
                    _ => Transport::Tcp,
                };
            }
            Vec::new()
        }
        (ClientMessage::Received { ids }, Some(_)) => {
            state.received.extend(ids);
            Vec::new()
        }
    }
}

fn sees(user: &str, message: &ChatMessage) -> bool {
    match &message.to {
        Target::World => true,
        Target::User(to) => to.as_str() == user || message.from.as_str() == user,
    }
}

fn check_chat(state: &State, to: &Target, text: &str) -> Result<(), (ErrorCode, String)> {
    validate_text(text).map_err(|err| (ErrorCode::TextInvalid, err.to_string()))?;
    if let Target::User(name) = to {
        if !state.users.contains_key(name.as_str()) {
            return Err((ErrorCode::UnknownUser, format!("no user named {name}")));
        }
    }
    Ok(())
}

/// A chat message as a session sent it.
struct Chat<'a> {
    user: &'a str,
    client_msg_id: u64,
    to: Target,
    text: &'a str,
    session: Option<u64>,
}

/// Checks and stores a chat message once per sender and `client_msg_id`, as the real server's de-duplication does:
/// a resend of a stored message (same target and text) is answered with the first copy's id and stored never.
fn accept_chat(state: &mut State, chat: Chat<'_>, origin: Instant) -> Result<(u64, i64), (ErrorCode, String)> {
    let key = (chat.user.to_string(), chat.client_msg_id);
    if let Some((to, text, id, sent_at_ms)) = state.stored_ids.get(&key) {
        if *to == chat.to && text == chat.text {
            let answer = (*id, *sent_at_ms);
            state.duplicates += 1;
            return Ok(answer);
        }
    }
    check_chat(state, &chat.to, chat.text)?;
    let stored = store_and_fan_out(state, chat.user, chat.to.clone(), chat.text, chat.session, origin);
    state.stored_ids.insert(key, (chat.to, chat.text.to_string(), stored.id, stored.sent_at_ms));
    Ok((stored.id, stored.sent_at_ms))
}

/// Stores a message and pushes it to every session that should get it except `sender_session`.
fn store_and_fan_out(
    state: &mut State,
    from: &str,
    to: Target,
    text: &str,
    sender_session: Option<u64>,
    origin: Instant,
) -> ChatMessage {
    let id = state.messages.len() as u64 + 1;
    let sent_at_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let message = ChatMessage {
        id,
        from: Username::parse(from).expect("valid sender"),
        to: to.clone(),
        text: text.to_string(),
        sent_at_ms,
    };
    state.messages.push(message.clone());
    let now = origin.elapsed();
    for (session_id, session) in state.sessions.iter_mut() {
        if Some(*session_id) == sender_session || !sees(&session.user, &message) {
            continue;
        }
        if session.transport == Transport::Udp {
            let me = Username::parse(&session.user).expect("valid");
            let stream = session.streams.stream_for(&message.conversation(&me));
            let bytes = ChatPayload::Message(message.clone()).encode().expect("encode");
            let _ = session.endpoint.send(stream, bytes, now);
        } else {
            let _ = session.push.send(ServerMessage::Chat(message.clone()));
        }
    }
    message
}

/// Receives datagrams, drives every session's endpoint, answers chat sent over UDP.
async fn udp_loop(socket: Arc<UdpSocket>, state: Arc<Mutex<State>>, answer_udp: Arc<AtomicBool>, origin: Instant) {
    let mut buf = vec![0u8; 4096];
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((len, from)) = received else { continue };
                if !answer_udp.load(Ordering::SeqCst) {
                    continue;
                }
                let datagram = buf.get(..len).unwrap_or_default().to_vec();
                let mut state = lock(&state);
                state.datagrams.push(datagram.clone());
                let now = origin.elapsed();
                let matched = state.sessions.iter_mut().find_map(|(id, session)| {
                    session.endpoint.handle_datagram(&datagram, now).is_ok().then_some(*id)
                });
                if let Some(id) = matched {
                    if let Some(session) = state.sessions.get_mut(&id) {
                        session.udp_addr = Some(from);
                        if !session.forced_tcp {
                            session.transport = Transport::Udp;
                        }
                    }
                }
            }
            _ = tick.tick() => {}
        }
        if !answer_udp.load(Ordering::SeqCst) {
            continue;
        }
        let outgoing = drive(&mut lock(&state), origin);
        for (addr, datagram) in outgoing {
            let _ = socket.send_to(&datagram, addr).await;
        }
    }
}

/// Runs timers, handles delivered payloads, and collects datagrams to send.
fn drive(state: &mut State, origin: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
    let now = origin.elapsed();
    let mut delivered = Vec::new();
    for (id, session) in state.sessions.iter_mut() {
        session.endpoint.handle_timeout(now);
        while let Some(event) = session.endpoint.poll_event() {
            if let Event::Delivered(delivery) = event {
                if let Ok(payload) = ChatPayload::decode(&delivery.data) {
                    delivered.push((*id, payload));
                }
            }
        }
    }
    for (id, payload) in delivered {
        let ChatPayload::Send { client_msg_id, to, text } = payload else { continue };
        state.chats_over_udp += 1;
        let Some(user) = state.sessions.get(&id).map(|s| s.user.clone()) else { continue };
        let chat = Chat { user: &user, client_msg_id, to: to.clone(), text: &text, session: Some(id) };
        let answer = match accept_chat(state, chat, origin) {
            Err((code, message)) => ChatPayload::Rejected { client_msg_id, code, message },
            Ok((id, sent_at_ms)) => ChatPayload::Accepted { client_msg_id, id, sent_at_ms },
        };
        if let Some(session) = state.sessions.get_mut(&id) {
            let stream = session.streams.stream_for(&to);
            let _ = session.endpoint.send(stream, answer.encode().expect("encode"), now);
        }
    }
    let mut out = Vec::new();
    for session in state.sessions.values_mut() {
        let Some(addr) = session.udp_addr else { continue };
        let mut datagram = Vec::new();
        while session.endpoint.poll_datagram(now, &mut datagram).unwrap_or(false) {
            out.push((addr, datagram.clone()));
        }
    }
    out
}
