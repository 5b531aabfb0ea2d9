//! A raw test client built from proto pieces, and a server on `127.0.0.1:0`.
//!
//! The client is deliberately not `chatlab-client`: these tests check the server against the protocol document,
//! byte for byte, with nothing in between that could hide a server bug. It also records every byte it sends and
//! receives, so a test can check that no secret crosses the wire in the clear.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chatlab_proto::chat::{ChatMessage, ChatPayload, StreamMap, Target, Username};
use chatlab_proto::control::{
    ClientMessage, ErrorCode, FrameDecoder, KeyMaterial, Password, ServerMessage, decode_server, encode, encode_frame,
};
use chatlab_proto::datagram::Role;
use chatlab_proto::endpoint::Endpoint;
use chatlab_proto::engine::{EngineConfig, Event};
use chatlab_proto::limits::PROTOCOL_VERSION;
use chatlab_proto::noise::{HANDSHAKE_MSG2_LEN, Initiator, Transport};
use chatlab_server::password::PasswordParams;
use chatlab_server::{ServerConfig, ServerError, bind, run};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for something that should happen before declaring it lost.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// How long a test waits to be fairly sure that something does *not* happen.
pub const QUIET: Duration = Duration::from_millis(300);

pub const PASSWORD: &str = "correct horse battery staple";

/// Client message ids of every test client come from here, so that two clients of one user never send the same
/// id (the server treats an id it has seen, with the same text, as a resend).
static NEXT_MSG_ID_BASE: AtomicU64 = AtomicU64::new(1);

fn msg_id_base() -> u64 {
    NEXT_MSG_ID_BASE.fetch_add(1 << 32, Ordering::Relaxed)
}

/// Test configuration: fast password hashing and flood limits out of the way (tests of flood control set their own).
pub fn config(dir: &Path) -> ServerConfig {
    ServerConfig {
        password_params: PasswordParams::INSECURE_FAST_FOR_TESTS,
        flood_burst: 1_000_000.0,
        flood_rate: 1_000_000.0,
        ..ServerConfig::with_data_dir(dir)
    }
}

pub fn name(raw: &str) -> Username {
    Username::parse(raw).unwrap()
}

pub fn to_user(raw: &str) -> Target {
    Target::User(name(raw))
}

/// A server running `chatlab_server::run` on loopback.
pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: Arc<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Self::start_in(dir, adjust).await
    }

    /// Starts on an existing data directory (a restart).
    pub async fn start_in(dir: Arc<TempDir>, adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut config = config(dir.path());
        adjust(&mut config);
        let (tcp, udp) = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(tcp, udp, config, stopped));
        Self { addr, dir, stop: Some(stop), task: Some(task) }
    }

    /// Graceful shutdown; returns the data directory for a restart.
    pub async fn stop(mut self) -> Arc<TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task).await.expect("server stops in time").unwrap().unwrap();
        }
        Arc::clone(&self.dir)
    }
}

/// What a session grant gave us.
#[derive(Debug, Clone)]
pub struct Grant {
    pub user: Username,
    pub connection_id: u64,
    pub key_material: KeyMaterial,
    pub udp_port: u16,
    pub max_text_bytes: u32,
}

/// A raw control-channel client.
pub struct Client {
    pub server: SocketAddr,
    stream: TcpStream,
    noise: Transport,
    decoder: FrameDecoder,
    inbox: VecDeque<ServerMessage>,
    next_req: u32,
    next_msg_id: u64,
    pub grant: Option<Grant>,
    /// Every byte sent and received on the TCP connection.
    pub wire: Vec<u8>,
}

impl Client {
    /// Connects and completes the Noise handshake (nothing else).
    pub async fn handshake(server: SocketAddr) -> Self {
        Self::handshake_on(TcpStream::connect(server).await.unwrap(), server).await
    }

    /// As [`handshake`](Self::handshake), from the local address `from` (on loopback any `127.x.y.z` works, so a
    /// test can play several "addresses").
    pub async fn handshake_from(server: SocketAddr, from: std::net::IpAddr) -> Self {
        Self::handshake_on(connect_from(server, from).await.unwrap(), server).await
    }

    /// As [`connect`](Self::connect), from the local address `from`.
    pub async fn connect_from(server: SocketAddr, from: std::net::IpAddr) -> Self {
        let mut client = Self::handshake_from(server, from).await;
        client.hello().await;
        client
    }

    /// Completes the Noise handshake on a connected stream.
    async fn handshake_on(stream: TcpStream, server: SocketAddr) -> Self {
        Self::try_handshake_on(stream, server).await.expect("the server answers the handshake")
    }

    /// Connects from `from` and says hello; `None` when the server refuses (resets the connection, or answers
    /// with an error) instead of welcoming it.
    pub async fn try_connect_from(server: SocketAddr, from: std::net::IpAddr) -> Option<Self> {
        let stream = connect_from(server, from).await.ok()?;
        let mut client = Self::try_handshake_on(stream, server).await?;
        client.send(&ClientMessage::Hello { version: PROTOCOL_VERSION, client: "integration-test".into() }).await;
        match tokio::time::timeout(PATIENCE, client.read_message()).await {
            Ok(Some(ServerMessage::Welcome { .. })) => Some(client),
            _ => None,
        }
    }

    /// The handshake, or `None` when the server closes or resets the connection instead of answering.
    async fn try_handshake_on(mut stream: TcpStream, server: SocketAddr) -> Option<Self> {
        let mut initiator = Initiator::new().unwrap();
        let msg1 = initiator.start().unwrap();
        stream.write_all(&msg1).await.ok()?;
        let mut msg2 = [0u8; HANDSHAKE_MSG2_LEN];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut msg2)).await.expect("handshake answer or close").ok()?;
        let (noise, _key) = initiator.finish(&msg2).unwrap();
        let mut wire = msg1;
        wire.extend_from_slice(&msg2);
        Some(Self {
            server,
            stream,
            noise,
            decoder: FrameDecoder::new(),
            inbox: VecDeque::new(),
            next_req: 1,
            next_msg_id: msg_id_base(),
            grant: None,
            wire,
        })
    }

    /// Connects, handshakes and says hello.
    pub async fn connect(server: SocketAddr) -> Self {
        let mut client = Self::handshake(server).await;
        client.hello().await;
        client
    }

    async fn hello(&mut self) {
        self.send(&ClientMessage::Hello { version: PROTOCOL_VERSION, client: "integration-test".into() }).await;
        match self.recv().await {
            ServerMessage::Welcome { version, .. } => assert_eq!(version, PROTOCOL_VERSION),
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    /// Registers (ignoring "taken") and logs in on a fresh connection.
    pub async fn user(server: SocketAddr, user: &str) -> Self {
        let mut client = Self::connect(server).await;
        match client.register(user, PASSWORD).await {
            Ok(_) | Err(ErrorCode::UsernameTaken) => {}
            Err(code) => panic!("registering {user}: {code}"),
        }
        client.login(user, PASSWORD).await.unwrap_or_else(|code| panic!("login {user}: {code}"));
        client
    }

    pub async fn send(&mut self, message: &ClientMessage) {
        let plaintext = encode(message).unwrap();
        let sealed = self.noise.encrypt(&plaintext).unwrap();
        let mut frame = Vec::new();
        encode_frame(&sealed, &mut frame).unwrap();
        self.send_raw(&frame).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.wire.extend_from_slice(bytes);
        // The server may already have closed; tests that care check for the close.
        let _ = self.stream.write_all(bytes).await;
    }

    /// Encrypts and frames arbitrary plaintext (not necessarily a valid message).
    pub async fn send_sealed(&mut self, plaintext: &[u8]) {
        let sealed = self.noise.encrypt(plaintext).unwrap();
        let mut frame = Vec::new();
        encode_frame(&sealed, &mut frame).unwrap();
        self.send_raw(&frame).await;
    }

    /// The next message, within `wait`; `None` on timeout. Panics if the connection closes.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<ServerMessage> {
        if let Some(message) = self.inbox.pop_front() {
            return Some(message);
        }
        match tokio::time::timeout(wait, self.read_message()).await {
            Ok(Some(message)) => Some(message),
            Ok(None) => panic!("server closed the connection"),
            Err(_) => None,
        }
    }

    pub async fn recv(&mut self) -> ServerMessage {
        self.recv_within(PATIENCE).await.expect("a message from the server in time")
    }

    /// Reads one message from the socket; `None` when the connection closed.
    async fn read_message(&mut self) -> Option<ServerMessage> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(frame) = self.decoder.next_frame().unwrap() {
                let plaintext = self.noise.decrypt(&frame).unwrap();
                return Some(decode_server(&plaintext).unwrap());
            }
            let n = match self.stream.read(&mut buf).await {
                Ok(n) => n,
                Err(_) => return None,
            };
            if n == 0 {
                return None;
            }
            self.wire.extend_from_slice(&buf[..n]);
            self.decoder.extend(&buf[..n]);
        }
    }

    /// The first message for which `pick` returns `Some`, keeping the others for later.
    pub async fn expect<T>(&mut self, mut pick: impl FnMut(&ServerMessage) -> Option<T>) -> T {
        if let Some(index) = self.inbox.iter().position(|m| pick(m).is_some()) {
            let message = self.inbox.remove(index).unwrap();
            return pick(&message).unwrap();
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = match tokio::time::timeout(left, self.read_message()).await {
                Ok(Some(message)) => message,
                Ok(None) => panic!("server closed the connection while we waited; kept {:?}", self.inbox),
                Err(_) => panic!("expected message did not arrive; got {:?}", self.inbox),
            };
            if let Some(value) = pick(&message) {
                return value;
            }
            self.inbox.push_back(message);
        }
    }

    /// Whether a message matching `pick` arrives within `wait` (others are kept).
    pub async fn sees_within<T>(
        &mut self,
        wait: Duration,
        mut pick: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> Option<T> {
        if let Some(index) = self.inbox.iter().position(|m| pick(m).is_some()) {
            let message = self.inbox.remove(index).unwrap();
            return pick(&message);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.read_message()).await {
                Ok(Some(message)) => {
                    if let Some(value) = pick(&message) {
                        return Some(value);
                    }
                    self.inbox.push_back(message);
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// An `Error` with this code (returns its message text).
    pub async fn expect_error(&mut self, code: ErrorCode) -> String {
        self.expect(|m| match m {
            ServerMessage::Error { code: c, message, .. } if *c == code => Some(message.clone()),
            _ => None,
        })
        .await
    }

    /// Reads until the server closes the connection; false if it stays open longer than `PATIENCE`.
    pub async fn closed_by_server(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.read_message()).await {
                Ok(Some(message)) => self.inbox.push_back(message),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    /// Messages received but not yet consumed by a test.
    pub fn kept(&self) -> &VecDeque<ServerMessage> {
        &self.inbox
    }

    pub async fn register(&mut self, username: &str, password: &str) -> Result<Username, ErrorCode> {
        self.register_detailed(username, password).await.map_err(|(code, _)| code)
    }

    /// As [`register`](Self::register), with the refusal's text.
    pub async fn register_detailed(&mut self, username: &str, password: &str) -> Result<Username, (ErrorCode, String)> {
        self.send(&ClientMessage::Register { username: username.into(), password: Password::new(password) }).await;
        self.expect(|m| match m {
            ServerMessage::Registered { username } => Some(Ok(username.clone())),
            ServerMessage::Error { code, message, .. } => Some(Err((*code, message.clone()))),
            _ => None,
        })
        .await
    }

    pub async fn login(&mut self, username: &str, password: &str) -> Result<Grant, ErrorCode> {
        self.login_detailed(username, password).await.map_err(|(code, _)| code)
    }

    /// As [`login`](Self::login), with the refusal's text.
    pub async fn login_detailed(&mut self, username: &str, password: &str) -> Result<Grant, (ErrorCode, String)> {
        self.send(&ClientMessage::Login { username: username.into(), password: Password::new(password) }).await;
        let grant = self
            .expect(|m| match m {
                ServerMessage::SessionGrant { user, connection_id, key_material, udp_port, max_text_bytes } => {
                    Some(Ok(Grant {
                        user: user.clone(),
                        connection_id: *connection_id,
                        key_material: key_material.clone(),
                        udp_port: *udp_port,
                        max_text_bytes: *max_text_bytes,
                    }))
                }
                ServerMessage::Error { code, message, .. } => Some(Err((*code, message.clone()))),
                _ => None,
            })
            .await?;
        self.grant = Some(grant.clone());
        Ok(grant)
    }

    pub fn msg_id(&mut self) -> u64 {
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        id
    }

    pub fn req(&mut self) -> u32 {
        let req = self.next_req;
        self.next_req += 1;
        req
    }

    /// Sends a chat message over TCP and waits for its fate: the stored id, or the refusal code.
    pub async fn chat(&mut self, to: Target, text: &str) -> Result<u64, ErrorCode> {
        let client_msg_id = self.msg_id();
        self.send(&ClientMessage::Chat { client_msg_id, to, text: text.into() }).await;
        self.chat_outcome(client_msg_id).await
    }

    pub async fn chat_outcome(&mut self, client_msg_id: u64) -> Result<u64, ErrorCode> {
        self.expect(|m| match m {
            ServerMessage::ChatAccepted { client_msg_id: c, id, .. } if *c == client_msg_id => Some(Ok(*id)),
            ServerMessage::ChatRejected { client_msg_id: c, code, .. } if *c == client_msg_id => Some(Err(*code)),
            _ => None,
        })
        .await
    }

    /// The next pushed chat message.
    pub async fn pushed(&mut self) -> ChatMessage {
        self.expect(|m| match m {
            ServerMessage::Chat(message) => Some(message.clone()),
            _ => None,
        })
        .await
    }

    /// One history sync page: (messages, more).
    pub async fn sync_page(&mut self, after_id: u64, limit: u16) -> (Vec<ChatMessage>, bool) {
        let req = self.req();
        self.send(&ClientMessage::SyncHistory { req, after_id, limit }).await;
        self.page(req).await
    }

    pub async fn page(&mut self, req: u32) -> (Vec<ChatMessage>, bool) {
        self.expect(|m| match m {
            ServerMessage::HistoryPage { req: r, messages, more } if *r == req => Some((messages.clone(), *more)),
            ServerMessage::Error { req: Some(r), code, .. } if *r == req => panic!("history request refused: {code}"),
            _ => None,
        })
        .await
    }

    /// Syncs everything after `after_id`, page by page.
    pub async fn sync_all(&mut self, mut after_id: u64, limit: u16) -> (Vec<ChatMessage>, usize) {
        let mut all = Vec::new();
        let mut pages = 0;
        loop {
            let (messages, more) = self.sync_page(after_id, limit).await;
            pages += 1;
            if let Some(last) = messages.last() {
                after_id = last.id;
            }
            all.extend(messages);
            if !more {
                return (all, pages);
            }
        }
    }

    /// The online users, all pages.
    pub async fn online_users(&mut self) -> Vec<Username> {
        let req = self.req();
        self.send(&ClientMessage::ListUsers { req }).await;
        let mut users = Vec::new();
        loop {
            let (page, more) = self
                .expect(|m| match m {
                    ServerMessage::Users { req: r, users, more } if *r == req => Some((users.clone(), *more)),
                    _ => None,
                })
                .await;
            users.extend(page);
            if !more {
                return users;
            }
        }
    }

    /// Waits for a presence change of `user`.
    pub async fn presence(&mut self, user: &str) -> bool {
        let user = name(user);
        self.expect(|m| match m {
            ServerMessage::Presence { user: u, online } if *u == user => Some(*online),
            _ => None,
        })
        .await
    }

    /// A UDP endpoint for this client's session.
    pub async fn udp(&self) -> UdpClient {
        UdpClient::new(self.server, self.grant.as_ref().expect("logged in")).await
    }
}

/// Two logged-in users, ann and bob, each with an established UDP path: the start of every UDP chat test. The
/// control clients are returned too, because dropping one ends its session.
pub async fn ann_and_bob_on_udp(server: SocketAddr) -> ([Client; 2], UdpClient, UdpClient) {
    let ann = Client::user(server, "ann").await;
    let bob = Client::user(server, "bob").await;
    let mut ann_udp = ann.udp().await;
    let mut bob_udp = bob.udp().await;
    ann_udp.establish().await;
    bob_udp.establish().await;
    ([ann, bob], ann_udp, bob_udp)
}

/// A raw datagram client for one session.
pub struct UdpClient {
    socket: UdpSocket,
    pub endpoint: Endpoint,
    epoch: tokio::time::Instant,
    server: SocketAddr,
    streams: StreamMap,
    delivered: VecDeque<ChatPayload>,
    next_msg_id: u64,
    /// Every byte sent and received on the socket.
    pub wire: Vec<u8>,
}

impl UdpClient {
    pub async fn new(server: SocketAddr, grant: &Grant) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let epoch = tokio::time::Instant::now();
        let endpoint = Endpoint::new(
            grant.key_material.expose(),
            grant.connection_id,
            Role::Client,
            EngineConfig::default(),
            Duration::ZERO,
        )
        .unwrap();
        let server = SocketAddr::new(server.ip(), grant.udp_port);
        Self {
            socket,
            endpoint,
            epoch,
            server,
            streams: StreamMap::new(),
            delivered: VecDeque::new(),
            next_msg_id: msg_id_base(),
            wire: Vec::new(),
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Moves the client to a fresh socket (a new port, as after a NAT rebinding) and returns the old one.
    pub async fn move_to_new_socket(&mut self) -> UdpSocket {
        std::mem::replace(&mut self.socket, UdpSocket::bind("127.0.0.1:0").await.unwrap())
    }

    /// A sealed ping that is *not* sent: the caller delivers it later, as a network that delays a datagram would.
    pub fn hold_back_a_datagram(&mut self) -> Vec<u8> {
        self.endpoint.ping();
        let mut held = Vec::new();
        assert!(self.endpoint.poll_datagram(self.now(), &mut held).unwrap(), "a ping is always sendable");
        held
    }

    /// The server's UDP address.
    pub fn server_udp(&self) -> SocketAddr {
        self.server
    }

    /// Sends raw bytes to the server's UDP port (garbage tests).
    pub async fn send_raw(&self, bytes: &[u8]) {
        self.socket.send_to(bytes, self.server).await.unwrap();
    }

    /// Pings and waits until the server answered: from then on the server pushes over UDP.
    pub async fn establish(&mut self) {
        self.endpoint.ping();
        let before = self.endpoint.stats().received.packets;
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.endpoint.stats().received.packets == before {
            assert!(tokio::time::Instant::now() < deadline, "no UDP answer from the server");
            self.step(Duration::from_millis(20)).await;
        }
    }

    /// Queues a chat message; returns its client id.
    pub fn send_chat(&mut self, to: Target, text: &str) -> u64 {
        let client_msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        self.send_chat_with_id(client_msg_id, to, text);
        client_msg_id
    }

    /// Queues a chat message under a given client id (a resend).
    pub fn send_chat_with_id(&mut self, client_msg_id: u64, to: Target, text: &str) {
        let stream = self.streams.stream_for(&to);
        let bytes = ChatPayload::Send { client_msg_id, to, text: text.into() }.encode().unwrap();
        let now = self.now();
        self.endpoint.send(stream, bytes, now).unwrap();
    }

    /// Sends what is due, then waits up to `wait` for one datagram or timer and handles it.
    pub async fn step(&mut self, wait: Duration) {
        let mut out = Vec::new();
        while self.endpoint.poll_datagram(self.now(), &mut out).unwrap() {
            self.wire.extend_from_slice(&out);
            self.socket.send_to(&out, self.server).await.unwrap();
        }
        let timer = self.endpoint.poll_timeout().map(|t| t.saturating_sub(self.now())).unwrap_or(wait).min(wait);
        let mut buf = [0u8; 2048];
        if let Ok(Ok((n, _))) = tokio::time::timeout(timer, self.socket.recv_from(&mut buf)).await {
            self.wire.extend_from_slice(&buf[..n]);
            let now = self.now();
            let _ = self.endpoint.handle_datagram(&buf[..n], now);
        }
        let now = self.now();
        self.endpoint.handle_timeout(now);
        while let Some(event) = self.endpoint.poll_event() {
            if let Event::Delivered(delivery) = event {
                self.delivered.push_back(ChatPayload::decode(&delivery.data).unwrap());
            }
        }
        while self.endpoint.poll_datagram(self.now(), &mut out).unwrap() {
            self.wire.extend_from_slice(&out);
            self.socket.send_to(&out, self.server).await.unwrap();
        }
    }

    /// The first delivered payload for which `pick` returns `Some` (others are kept).
    pub async fn expect<T>(&mut self, mut pick: impl FnMut(&ChatPayload) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(index) = self.delivered.iter().position(|p| pick(p).is_some()) {
                let payload = self.delivered.remove(index).unwrap();
                return pick(&payload).unwrap();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected datagram payload missing; got {:?}",
                self.delivered
            );
            self.step(Duration::from_millis(20)).await;
        }
    }

    /// The fate of a chat message sent over UDP.
    pub async fn outcome(&mut self, client_msg_id: u64) -> Result<u64, ErrorCode> {
        self.expect(|p| match p {
            ChatPayload::Accepted { client_msg_id: c, id, .. } if *c == client_msg_id => Some(Ok(*id)),
            ChatPayload::Rejected { client_msg_id: c, code, .. } if *c == client_msg_id => Some(Err(*code)),
            _ => None,
        })
        .await
    }

    pub async fn message(&mut self) -> ChatMessage {
        self.expect(|p| match p {
            ChatPayload::Message(message) => Some(message.clone()),
            _ => None,
        })
        .await
    }

    /// Datagrams that arrive within `wait`, read off the socket and thrown away unopened (as if the path were dead).
    pub async fn count_arrivals(&self, wait: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + wait;
        let mut buf = [0u8; 2048];
        let mut count = 0;
        while let Ok(Ok(_)) = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await {
            count += 1;
        }
        count
    }

    /// Keeps the engine running (answering acks) for `time`.
    pub async fn pump(&mut self, time: Duration) {
        let deadline = tokio::time::Instant::now() + time;
        while tokio::time::Instant::now() < deadline {
            self.step(Duration::from_millis(10)).await;
        }
    }
}

/// A TCP connection to `server` from the local address `from` (port chosen by the kernel).
pub async fn connect_from(server: SocketAddr, from: std::net::IpAddr) -> std::io::Result<TcpStream> {
    let socket = if from.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(server).await
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
