//! What the measurement examples share: a raw protocol client built from `chatlab-proto` pieces, accounts and
//! history written straight into the server's database, the server's memory from `/proc`, and percentiles.
//!
//! The examples measure a server running in its own process (so its memory is its own), started by hand with the
//! command lines their documentation gives. Registration is rate limited per address, so they do not register
//! thousands of accounts through the protocol: they write them into the database of the running server
//! (`--data`), which SQLite allows from a second process, then log in through the protocol like any client.

#![allow(dead_code)]

pub mod proc;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chatlab_proto::chat::Target;
use chatlab_proto::control::{
    ClientMessage, ErrorCode, FrameDecoder, KeyMaterial, Password, ServerMessage, decode_server, encode, encode_frame,
};
use chatlab_proto::limits::PROTOCOL_VERSION;
use chatlab_proto::noise::{HANDSHAKE_MSG2_LEN, Initiator, Transport};
use chatlab_server::password::{PasswordParams, hash_password};
use chatlab_server::storage::{NewMessage, SqliteStorage, Storage, StorageError, StoredTarget, UserId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The password of every account the examples create.
pub const PASSWORD: &str = "measurement password";

/// The Argon2 cost of the examples' accounts: the cheapest allowed, so that ten thousand logins measure the
/// sessions and not the password hashing. Start the server with the same cost (`--password-memory-kib 8
/// --password-iterations 1`), or it would upgrade every hash at login.
pub const CHEAP_PASSWORDS: PasswordParams = PasswordParams::INSECURE_FAST_FOR_TESTS;

/// Logins tried per session before giving up, and the pause between two.
const LOGIN_ATTEMPTS: u32 = 10;
const LOGIN_RETRY_PAUSE: Duration = Duration::from_secs(3);

/// Bytes read from the socket at once.
const READ_CHUNK: usize = 16 * 1024;

/// Creates the accounts `prefix0` .. `prefix{count-1}` that do not exist yet in the database at `data_dir`, all
/// with [`PASSWORD`]; returns their ids in order.
pub fn ensure_accounts(data_dir: &Path, prefix: &str, count: usize) -> Result<Vec<UserId>, StorageError> {
    let storage = SqliteStorage::open(data_dir.join(chatlab_server::config::DATABASE_FILE_NAME))?;
    let phc = hash_password(PASSWORD, &CHEAP_PASSWORDS).map_err(|e| StorageError::InvalidData(e.to_string()))?;
    (0..count)
        .map(|n| {
            let name = format!("{prefix}{n}");
            match storage.find_user(&name)? {
                Some(user) => Ok(user.id),
                None => Ok(storage.create_user(&name, &phc, 0)?.id),
            }
        })
        .collect()
}

/// Appends world messages from `from` until the database holds at least `count` world messages.
pub fn ensure_world_history(data_dir: &Path, from: UserId, count: usize, text_len: usize) -> Result<(), StorageError> {
    let storage = SqliteStorage::open(data_dir.join(chatlab_server::config::DATABASE_FILE_NAME))?;
    let have = storage.conversation_before(from, StoredTarget::World, None, count)?.len();
    let text: String = "history ".chars().cycle().take(text_len).collect();
    let batch: Vec<NewMessage> = (have..count)
        .map(|_| NewMessage { from, to: StoredTarget::World, text: text.clone(), sent_at_ms: 0, client_msg_id: None })
        .collect();
    storage.append_messages(&batch)?;
    Ok(())
}

/// What a session grant gave.
#[derive(Debug, Clone)]
pub struct Grant {
    pub connection_id: u64,
    pub key_material: KeyMaterial,
    pub udp_port: u16,
}

/// A raw control-channel client.
pub struct RawClient {
    pub server: SocketAddr,
    stream: TcpStream,
    noise: Transport,
    decoder: FrameDecoder,
    inbox: VecDeque<ServerMessage>,
    read_buf: Vec<u8>,
    next_id: u64,
}

fn protocol_error(what: impl std::fmt::Display) -> io::Error {
    io::Error::other(what.to_string())
}

impl RawClient {
    /// Connects, completes the Noise handshake and says hello.
    pub async fn connect(server: SocketAddr) -> io::Result<Self> {
        let mut stream = TcpStream::connect(server).await?;
        stream.set_nodelay(true)?;
        let mut initiator = Initiator::new().map_err(protocol_error)?;
        stream.write_all(&initiator.start().map_err(protocol_error)?).await?;
        let mut msg2 = [0u8; HANDSHAKE_MSG2_LEN];
        stream.read_exact(&mut msg2).await?;
        let (noise, _key) = initiator.finish(&msg2).map_err(protocol_error)?;
        let mut client = Self {
            server,
            stream,
            noise,
            decoder: FrameDecoder::new(),
            inbox: VecDeque::new(),
            read_buf: vec![0; READ_CHUNK],
            next_id: 1,
        };
        client.send(&ClientMessage::Hello { version: PROTOCOL_VERSION, client: "measurement".into() }).await?;
        match client.recv().await? {
            ServerMessage::Welcome { .. } => Ok(client),
            other => Err(protocol_error(format!("expected Welcome, got {other:?}"))),
        }
    }

    /// Connects and logs in as `user`. A login refused as rate limited is tried again after a pause, a few times:
    /// many correct logins at once from one address can trip the server's login limiter.
    pub async fn user(server: SocketAddr, user: &str) -> io::Result<(Self, Grant)> {
        let mut client = Self::connect(server).await?;
        let login = ClientMessage::Login { username: user.into(), password: Password::new(PASSWORD) };
        for attempt in 1..=LOGIN_ATTEMPTS {
            client.send(&login).await?;
            loop {
                match client.recv().await? {
                    ServerMessage::SessionGrant { connection_id, key_material, udp_port, .. } => {
                        return Ok((client, Grant { connection_id, key_material, udp_port }));
                    }
                    ServerMessage::Error { code: ErrorCode::LoginRateLimited, .. } if attempt < LOGIN_ATTEMPTS => {
                        tokio::time::sleep(LOGIN_RETRY_PAUSE).await;
                        break;
                    }
                    ServerMessage::Error { code, message, .. } => {
                        return Err(protocol_error(format!("login {user}: {code}: {message}")));
                    }
                    _ => {}
                }
            }
        }
        Err(protocol_error(format!("login {user}: no answer")))
    }

    /// A fresh request number or client message id.
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub async fn send(&mut self, message: &ClientMessage) -> io::Result<()> {
        let sealed = self.noise.encrypt(&encode(message).map_err(protocol_error)?).map_err(protocol_error)?;
        let mut frame = Vec::with_capacity(sealed.len() + 2);
        encode_frame(&sealed, &mut frame).map_err(protocol_error)?;
        self.stream.write_all(&frame).await
    }

    /// Waits for bytes and decodes every complete frame into the inbox. Safe to cancel (`select!`).
    pub async fn read_some(&mut self) -> io::Result<()> {
        let n = self.stream.read(&mut self.read_buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.decoder.extend(self.read_buf.get(..n).unwrap_or_default());
        while let Some(frame) = self.decoder.next_frame().map_err(protocol_error)? {
            let plaintext = self.noise.decrypt(&frame).map_err(protocol_error)?;
            self.inbox.push_back(decode_server(&plaintext).map_err(protocol_error)?);
        }
        Ok(())
    }

    /// The next message from the server.
    pub async fn recv(&mut self) -> io::Result<ServerMessage> {
        loop {
            if let Some(message) = self.inbox.pop_front() {
                return Ok(message);
            }
            self.read_some().await?;
        }
    }

    /// Messages decoded but not yet taken.
    pub fn take_inbox(&mut self) -> VecDeque<ServerMessage> {
        std::mem::take(&mut self.inbox)
    }

    /// Sends a chat message; returns its client id.
    pub async fn chat(&mut self, to: Target, text: &str) -> io::Result<u64> {
        let client_msg_id = self.next_id();
        self.send(&ClientMessage::Chat { client_msg_id, to, text: text.into() }).await?;
        Ok(client_msg_id)
    }
}

/// The `q` quantile (0..=1) of `samples`, which it sorts.
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let last = samples.len() - 1;
    // Nearest rank, rounded up: p99 of 1 000 samples is the 990th.
    let rank = ((q * samples.len() as f64).ceil() as usize).saturating_sub(1).min(last);
    samples[rank]
}

/// Milliseconds with two decimals, for printing.
pub fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}
