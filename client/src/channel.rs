//! Opening the control channel: TCP, the Noise handshake, the pinned key, `Hello`/`Welcome`.
//!
//! ```text
//!   resolve HOST:PORT ─▶ TCP connect ─▶ Noise msg 1 (32 bytes) ─▶ ◀─ Noise msg 2 (96 bytes)
//!   ─▶ check the server's key against known_servers (new: pin it; changed: refuse, send nothing)
//!   ─▶ Hello{version, client} ─▶ ◀─ Welcome{version, server}
//! ```
//!
//! The two handshake messages have fixed sizes (`HANDSHAKE_MSG1_LEN`, `HANDSHAKE_MSG2_LEN`), and `docs/protocol.md`
//! puts them on the stream as they are, before any framing; every later message is a frame: a u16 big-endian length,
//! then one Noise transport message holding one MessagePack control message.
//!
//! The order of the middle step is the security of the whole design: the handshake proves that the peer holds the
//! private key matching the key it presented, but only the known-servers check says whether that key is *the
//! server's*. Until it passes, the encrypted channel may lead to an impostor, so not one byte of the user's data
//! (not even the client's name) is sent before it.
//!
//! After `Welcome`, the connection is split: a reader task cuts the byte stream into frames and hands the ciphertext
//! to the client core, which owns the Noise state and decrypts; the core writes through [`ControlWriter`]. Byte and
//! frame counters are shared atomics, so the statistics can be read at any time without asking either side.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use chatlab_proto::control::{ClientMessage, FrameDecoder, ServerMessage, decode_server, encode, encode_frame};
use chatlab_proto::limits::PROTOCOL_VERSION;
use chatlab_proto::noise::{
    Fingerprint, HANDSHAKE_MSG2_LEN, Initiator, KnownServers, NoiseError, ServerKey, Transport as NoiseTransport, Trust,
};

use crate::config::ClientConfig;
use crate::error::{ClientError, human_duration};
use crate::stats::TcpStats;

/// Bytes read from the socket at a time. A frame may be up to 64 KiB; reading in 16 KiB pieces keeps the buffer
/// small for the usual short frames while a large history page still arrives in a handful of reads.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Time one frame may take to be written. A server that stops reading fills the socket buffer and blocks the
/// writer; past this the connection is treated as dead rather than freezing the client.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames queued from the reader task to the client core. The reader stops reading when the core falls behind, which
/// in turn lets TCP's flow control slow the server down: back-pressure instead of an unbounded queue.
pub(crate) const INBOUND_QUEUE_FRAMES: usize = 256;

/// Frame and byte counts of one connection, shared by the reader task and the writer.
#[derive(Debug, Default)]
pub(crate) struct TcpCounters {
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_received: AtomicU64,
}

impl TcpCounters {
    /// The counts as a [`TcpStats`] (without the kernel's figures).
    pub(crate) fn snapshot(&self) -> TcpStats {
        TcpStats {
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            frames_received: self.frames_received.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            kernel: None,
        }
    }
}

/// A control channel ready for use: the server's key checked, `Welcome` received.
pub(crate) struct Established {
    /// The read half, for [`spawn_reader`].
    pub reader: OwnedReadHalf,
    /// Bytes already read past `Welcome`.
    pub decoder: FrameDecoder,
    /// The write half.
    pub writer: ControlWriter,
    /// The session's Noise state (encrypts what the writer sends, decrypts what the reader hands over).
    pub noise: NoiseTransport,
    /// The server's address (its IP is also where datagrams go).
    pub peer: SocketAddr,
    /// The fingerprint of the server's key.
    pub fingerprint: Fingerprint,
    /// True when the key was pinned just now, on first contact.
    pub pinned_now: bool,
    /// The server's software name from `Welcome`.
    pub server_software: String,
    /// The connection's counters.
    pub counters: Arc<TcpCounters>,
}

/// Connects to `config.server` and runs everything up to `Welcome`, within the configured timeouts.
pub(crate) async fn establish(config: &ClientConfig) -> Result<Established, ClientError> {
    let server = config.server.as_str();
    let addr = resolve(server).await?;
    let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| unreachable(server, format!("no answer within {}", human_duration(config.connect_timeout))))?
        .map_err(|err| unreachable(server, err.to_string()))?;
    // Chat frames are small and latency matters more than packing them: Nagle's algorithm would hold a frame back
    // until the previous one is acknowledged.
    stream.set_nodelay(true).map_err(|err| unreachable(server, err.to_string()))?;
    let peer = stream.peer_addr().unwrap_or(addr);
    tokio::time::timeout(config.handshake_timeout, greet(stream, peer, config)).await.map_err(|_| {
        handshake_error(server, format!("no answer within {}", human_duration(config.handshake_timeout)))
    })?
}

/// The handshake, the key check and the greeting on a fresh TCP connection.
async fn greet(mut stream: TcpStream, peer: SocketAddr, config: &ClientConfig) -> Result<Established, ClientError> {
    let server = config.server.as_str();
    // The handshake's bytes count too: they are part of what TCP carried for this connection.
    let counters = Arc::new(TcpCounters::default());
    let mut initiator = Initiator::new().map_err(|err| handshake_error(server, err.to_string()))?;
    let msg1 = initiator.start().map_err(|err| handshake_error(server, err.to_string()))?;
    stream.write_all(&msg1).await.map_err(|err| closed_during_handshake(server, &err))?;
    counters.bytes_sent.fetch_add(msg1.len() as u64, Ordering::Relaxed);
    let mut msg2 = [0u8; HANDSHAKE_MSG2_LEN];
    stream.read_exact(&mut msg2).await.map_err(|err| closed_during_handshake(server, &err))?;
    counters.bytes_received.fetch_add(msg2.len() as u64, Ordering::Relaxed);
    let (mut noise, key) = initiator.finish(&msg2).map_err(|err| handshake_error(server, err.to_string()))?;
    let pinned_now = check_pin(server, &key, &config.known_servers_path)?;

    let (mut reader, write_half) = stream.into_split();
    let mut writer = ControlWriter { half: write_half, counters: Arc::clone(&counters), buf: Vec::new() };
    let hello = ClientMessage::Hello { version: PROTOCOL_VERSION, client: config.client_name.clone() };
    writer.send(&mut noise, &hello).await?;

    let mut decoder = FrameDecoder::new();
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let frame = loop {
        match decoder.next_frame() {
            Ok(Some(frame)) => break frame,
            Ok(None) => {}
            Err(err) => return Err(handshake_error(server, format!("bad frame from the server: {err}"))),
        }
        let read = reader.read(&mut chunk).await.map_err(|err| unreachable(server, err.to_string()))?;
        if read == 0 {
            return Err(handshake_error(server, "the server closed the connection before greeting".to_string()));
        }
        counters.bytes_received.fetch_add(read as u64, Ordering::Relaxed);
        decoder.extend(chunk.get(..read).unwrap_or_default());
    };
    counters.frames_received.fetch_add(1, Ordering::Relaxed);
    match open(&mut noise, &frame)? {
        ServerMessage::Welcome { server: server_software, .. } => Ok(Established {
            reader,
            decoder,
            writer,
            noise,
            peer,
            fingerprint: key.fingerprint(),
            pinned_now,
            server_software,
            counters,
        }),
        ServerMessage::Error { code, message, .. } => Err(ClientError::from_server(code, message)),
        other => Err(ClientError::Protocol(format!("expected Welcome, the server sent {}", variant_name(&other)))),
    }
}

/// Resolves `HOST:PORT` to the first address the system returns.
async fn resolve(server: &str) -> Result<SocketAddr, ClientError> {
    let bad = |reason: String| ClientError::BadAddress { server: server.to_string(), reason };
    if !server.contains(':') {
        return Err(bad("expected HOST:PORT, for example 127.0.0.1:7878".to_string()));
    }
    let mut addrs = tokio::net::lookup_host(server).await.map_err(|err| bad(err.to_string()))?;
    addrs.next().ok_or_else(|| bad("the name resolves to no address".to_string()))
}

/// Checks `key` against the known-servers file: pins it on first contact (returning true), accepts the pinned key,
/// refuses a changed one.
///
/// The file is small (at most a megabyte, usually one line per server), so it is read and written right here rather
/// than on a blocking thread.
pub(crate) fn check_pin(server: &str, key: &ServerKey, path: &Path) -> Result<bool, ClientError> {
    let file_error = |err: NoiseError| ClientError::KnownServers(err.to_string());
    let mut known = KnownServers::load(path).map_err(file_error)?;
    match known.check(server, key) {
        Trust::Known => Ok(false),
        Trust::New => {
            known
                .pin(server, key)
                .map_err(|err| ClientError::BadAddress { server: server.to_string(), reason: err.to_string() })?;
            known.save(path).map_err(file_error)?;
            Ok(true)
        }
        Trust::Changed { pinned } => Err(ClientError::ServerKeyChanged {
            server: server.to_string(),
            pinned,
            presented: key.fingerprint(),
            known_servers: path.to_path_buf(),
        }),
    }
}

/// Decrypts and decodes one frame from the server.
pub(crate) fn open(noise: &mut NoiseTransport, frame: &[u8]) -> Result<ServerMessage, ClientError> {
    let plaintext =
        noise.decrypt(frame).map_err(|err| ClientError::Protocol(format!("a frame from the server: {err}")))?;
    decode_server(&plaintext).map_err(|err| ClientError::Protocol(format!("a message from the server: {err}")))
}

/// The write side of a control channel.
pub(crate) struct ControlWriter {
    half: OwnedWriteHalf,
    counters: Arc<TcpCounters>,
    buf: Vec<u8>,
}

impl ControlWriter {
    /// Encodes, encrypts, frames and writes one message, within [`WRITE_TIMEOUT`].
    pub(crate) async fn send(
        &mut self,
        noise: &mut NoiseTransport,
        message: &ClientMessage,
    ) -> Result<(), ClientError> {
        let plaintext = encode(message).map_err(|err| ClientError::Protocol(format!("encoding a request: {err}")))?;
        let ciphertext =
            noise.encrypt(&plaintext).map_err(|err| ClientError::Protocol(format!("encrypting a request: {err}")))?;
        self.buf.clear();
        encode_frame(&ciphertext, &mut self.buf)
            .map_err(|err| ClientError::Protocol(format!("framing a request: {err}")))?;
        let disconnected = |reason: String| ClientError::Disconnected { reason };
        tokio::time::timeout(WRITE_TIMEOUT, self.half.write_all(&self.buf))
            .await
            .map_err(|_| disconnected(format!("the server stopped reading for {}", human_duration(WRITE_TIMEOUT))))?
            .map_err(|err| disconnected(err.to_string()))?;
        self.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_sent.fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The connection's statistics, with the kernel's view where the system offers it.
    pub(crate) fn stats(&self) -> TcpStats {
        let mut stats = self.counters.snapshot();
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            stats.kernel = crate::tcp_info::kernel_tcp_info(self.half.as_ref().as_raw_fd());
        }
        stats
    }
}

/// What the reader task hands the client core.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// One frame's ciphertext.
    Frame(Vec<u8>),
    /// The connection ended; why.
    Closed(String),
}

/// Starts the task that reads frames from `half` and sends them, tagged with `generation`, to `sink`. It ends after
/// reporting [`Inbound::Closed`], or when the core is gone.
pub(crate) fn spawn_reader(
    mut half: OwnedReadHalf,
    mut decoder: FrameDecoder,
    counters: Arc<TcpCounters>,
    generation: u64,
    sink: mpsc::Sender<(u64, Inbound)>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut chunk = vec![0u8; READ_CHUNK_BYTES];
        let reason = 'read: loop {
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        counters.frames_received.fetch_add(1, Ordering::Relaxed);
                        if sink.send((generation, Inbound::Frame(frame))).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(err) => break 'read format!("the server sent a bad frame ({err})"),
                }
            }
            match half.read(&mut chunk).await {
                Ok(0) => break 'read "the server closed the connection".to_string(),
                Ok(read) => {
                    counters.bytes_received.fetch_add(read as u64, Ordering::Relaxed);
                    decoder.extend(chunk.get(..read).unwrap_or_default());
                }
                Err(err) => break 'read format!("the connection failed ({err})"),
            }
        };
        let _ = sink.send((generation, Inbound::Closed(reason))).await;
    })
}

/// A message's variant name, for error texts that must not print contents.
pub(crate) fn variant_name(message: &ServerMessage) -> &'static str {
    match message {
        ServerMessage::Welcome { .. } => "Welcome",
        ServerMessage::Registered { .. } => "Registered",
        ServerMessage::SessionGrant { .. } => "SessionGrant",
        ServerMessage::Error { .. } => "Error",
        ServerMessage::ChatRejected { .. } => "ChatRejected",
        ServerMessage::Users { .. } => "Users",
        ServerMessage::Presence { .. } => "Presence",
        ServerMessage::HistoryPage { .. } => "HistoryPage",
        ServerMessage::Chat(_) => "Chat",
        ServerMessage::ChatAccepted { .. } => "ChatAccepted",
        ServerMessage::Receipt { .. } => "Receipt",
        ServerMessage::Pong { .. } => "Pong",
        ServerMessage::LoggedOut => "LoggedOut",
    }
}

/// The server accepted the TCP connection and then closed or reset it before the handshake finished. That is how a
/// chatlab server refuses a connection it will not spend cryptography on (too many from this address, new ones
/// started too fast, or the server is full), so the text names those causes rather than "unreachable".
fn closed_during_handshake(server: &str, err: &std::io::Error) -> ClientError {
    handshake_error(
        server,
        format!(
            "the server closed the connection during the handshake ({err}); a chatlab server does this when this \
             address holds too many connections or opens them too fast, or when it is full: wait a moment and retry"
        ),
    )
}

fn unreachable(server: &str, reason: String) -> ClientError {
    ClientError::Unreachable { server: server.to_string(), reason }
}

fn handshake_error(server: &str, reason: String) -> ClientError {
    ClientError::Handshake { server: server.to_string(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatlab_proto::noise::{HANDSHAKE_MSG1_LEN, Responder, StaticKeypair};

    fn key(byte: u8) -> ServerKey {
        ServerKey::from_bytes([byte; 32])
    }

    #[test]
    fn first_contact_pins_then_known_then_changed_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cfg").join("known_servers");
        assert_eq!(check_pin("lab:7878", &key(1), &path), Ok(true));
        assert_eq!(check_pin("lab:7878", &key(1), &path), Ok(false));
        let err = check_pin("lab:7878", &key(2), &path).expect_err("changed");
        assert_eq!(
            err,
            ClientError::ServerKeyChanged {
                server: "lab:7878".into(),
                pinned: key(1).fingerprint(),
                presented: key(2).fingerprint(),
                known_servers: path.clone(),
            }
        );
        // The refused key was not written.
        assert_eq!(check_pin("lab:7878", &key(1), &path), Ok(false));
    }

    #[test]
    fn a_broken_known_servers_file_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("known_servers");
        std::fs::write(&path, "not a pin line\n").expect("write");
        let err = check_pin("lab:7878", &key(1), &path).expect_err("broken file");
        assert!(matches!(&err, ClientError::KnownServers(text) if text.contains("line 1")), "{err}");
    }

    #[test]
    fn an_unpinnable_name_is_a_bad_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = check_pin("no-port", &key(1), &dir.path().join("k")).expect_err("bad name");
        assert!(matches!(err, ClientError::BadAddress { .. }), "{err}");
    }

    #[tokio::test]
    async fn addresses_without_a_port_are_refused_before_resolving() {
        let err = resolve("localhost").await.expect_err("no port");
        assert!(matches!(&err, ClientError::BadAddress { reason, .. } if reason.contains("HOST:PORT")), "{err}");
        let err = resolve("127.0.0.1:notaport").await.expect_err("bad port");
        assert!(matches!(err, ClientError::BadAddress { .. }), "{err}");
    }

    /// Serves one connection on a loopback port with `peer` and returns a client configuration pointing at it.
    async fn fake_peer<F, Fut>(dir: &tempfile::TempDir, peer: F) -> ClientConfig
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((stream, _)) = listener.accept().await {
                peer(stream).await;
            }
        });
        let mut config = ClientConfig::new(addr.to_string(), dir.path().join("known_servers"));
        config.handshake_timeout = Duration::from_millis(300);
        config
    }

    /// Answers the handshake as a real responder, reads the Hello, and replies `reply`.
    async fn greet_with(mut stream: TcpStream, reply: Option<ServerMessage>) {
        let keypair = StaticKeypair::generate().expect("keypair");
        let mut msg1 = [0u8; HANDSHAKE_MSG1_LEN];
        stream.read_exact(&mut msg1).await.expect("msg1");
        let (msg2, mut noise) = Responder::new(&keypair).expect("responder").respond(&msg1).expect("respond");
        stream.write_all(&msg2).await.expect("msg2");
        let mut header = [0u8; 2];
        stream.read_exact(&mut header).await.expect("hello header");
        let mut hello = vec![0u8; usize::from(u16::from_be_bytes(header))];
        stream.read_exact(&mut hello).await.expect("hello");
        let hello = chatlab_proto::control::decode_client(&noise.decrypt(&hello).expect("decrypt")).expect("decode");
        assert!(matches!(hello, ClientMessage::Hello { version: PROTOCOL_VERSION, .. }), "{hello:?}");
        if let Some(reply) = reply {
            let mut frame = Vec::new();
            encode_frame(&noise.encrypt(&encode(&reply).expect("encode")).expect("encrypt"), &mut frame)
                .expect("frame");
            stream.write_all(&frame).await.expect("reply");
        }
    }

    #[tokio::test]
    async fn a_peer_that_closes_during_the_handshake() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = fake_peer(&dir, |stream| async move { drop(stream) }).await;
        let err = establish(&config).await.err().expect("closed");
        assert!(
            matches!(&err, ClientError::Handshake { reason, .. } if reason.contains("closed the connection during")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_peer_that_is_not_a_chatlab_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = fake_peer(&dir, |mut stream| async move {
            let _ = stream.write_all(&[0x42; HANDSHAKE_MSG2_LEN]).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        })
        .await;
        let err = establish(&config).await.err().expect("garbage");
        assert!(matches!(&err, ClientError::Handshake { reason, .. } if reason.contains("authenticate")), "{err}");
        assert!(!dir.path().join("known_servers").exists(), "nothing pinned");
    }

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = fake_peer(&dir, |stream| async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(stream);
        })
        .await;
        let err = establish(&config).await.err().expect("silent");
        assert_eq!(
            err,
            ClientError::Handshake { server: config.server.clone(), reason: "no answer within 300 ms".into() }
        );
    }

    #[tokio::test]
    async fn another_protocol_version_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let refusal = ServerMessage::Error {
            req: None,
            code: chatlab_proto::control::ErrorCode::VersionMismatch,
            message: "v9".into(),
        };
        let config = fake_peer(&dir, |stream| greet_with(stream, Some(refusal))).await;
        let err = establish(&config).await.err().expect("refused");
        assert_eq!(err, ClientError::VersionMismatch { message: "v9".into() });
    }

    #[tokio::test]
    async fn a_greeting_that_is_not_welcome_is_a_protocol_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = fake_peer(&dir, |stream| greet_with(stream, Some(ServerMessage::LoggedOut))).await;
        let err = establish(&config).await.err().expect("odd greeting");
        assert_eq!(err, ClientError::Protocol("expected Welcome, the server sent LoggedOut".into()));
    }

    #[tokio::test]
    async fn a_server_that_closes_before_greeting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = fake_peer(&dir, |stream| greet_with(stream, None)).await;
        let err = establish(&config).await.err().expect("closed");
        assert!(matches!(&err, ClientError::Handshake { reason, .. } if reason.contains("before greeting")), "{err}");
    }

    #[tokio::test]
    async fn a_welcome_completes_the_channel() {
        let dir = tempfile::tempdir().expect("tempdir");
        let welcome = ServerMessage::Welcome { version: PROTOCOL_VERSION, server: "test".into() };
        let config = fake_peer(&dir, |stream| async move {
            greet_with(stream, Some(welcome)).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        })
        .await;
        let established = establish(&config).await.expect("established");
        assert!(established.pinned_now);
        assert_eq!(established.server_software, "test");
        let stats = established.writer.stats();
        assert_eq!((stats.frames_sent, stats.frames_received), (1, 1));
        assert!(stats.bytes_sent > HANDSHAKE_MSG1_LEN as u64, "{stats:?}");
        assert!(stats.bytes_received > HANDSHAKE_MSG2_LEN as u64, "{stats:?}");
    }

    #[test]
    fn variant_names_do_not_reveal_contents() {
        assert_eq!(variant_name(&ServerMessage::Pong { nonce: 1 }), "Pong");
        assert_eq!(variant_name(&ServerMessage::LoggedOut), "LoggedOut");
    }

    #[test]
    fn garbage_frames_are_protocol_errors() {
        let keypair = StaticKeypair::generate().expect("keypair");
        let mut initiator = Initiator::new().expect("initiator");
        let msg1 = initiator.start().expect("msg1");
        let (msg2, _server) = Responder::new(&keypair).expect("responder").respond(&msg1).expect("respond");
        let (mut noise, _) = initiator.finish(&msg2).expect("finish");
        let err = open(&mut noise, &[0u8; 40]).expect_err("garbage");
        assert!(matches!(err, ClientError::Protocol(_)), "{err}");
    }

    #[test]
    fn undecodable_plaintext_is_a_protocol_error() {
        let keypair = StaticKeypair::generate().expect("keypair");
        let mut initiator = Initiator::new().expect("initiator");
        let msg1 = initiator.start().expect("msg1");
        let (msg2, mut server) = Responder::new(&keypair).expect("responder").respond(&msg1).expect("respond");
        let (mut noise, _) = initiator.finish(&msg2).expect("finish");
        let sealed = server.encrypt(&[0xc1]).expect("encrypt");
        let err = open(&mut noise, &sealed).expect_err("not MessagePack");
        assert!(matches!(&err, ClientError::Protocol(text) if text.contains("message from the server")), "{err}");
        let sealed = server.encrypt(&encode(&ServerMessage::LoggedOut).expect("encode")).expect("encrypt");
        assert_eq!(open(&mut noise, &sealed), Ok(ServerMessage::LoggedOut));
    }
}
