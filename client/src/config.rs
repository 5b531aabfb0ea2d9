//! What a client is told before it connects, and the timing constants behind every wait.
//!
//! A network client waits for many things: a TCP connection, a handshake, an answer to a request, a UDP
//! acknowledgement, the next reconnection attempt. Each wait here has a named bound, so that no call can hang for
//! ever and every failure turns into an error a person can read ("no answer from the server within 10 s") rather than
//! a frozen window, which was the original Python client's worst habit.

use std::path::PathBuf;
use std::time::Duration;

use chatlab_proto::control::Transport;
use chatlab_proto::engine::EngineConfig;
use chatlab_proto::noise::KNOWN_SERVERS_FILE_NAME;

/// Port a chatlab server listens on unless told otherwise (TCP and UDP share it).
pub const DEFAULT_PORT: u16 = 7878;

/// Server the command-line client talks to when neither `--server` nor `CHATLAB_SERVER` says otherwise: a server on
/// the same machine, which is how a student first tries chatlab out.
pub const DEFAULT_SERVER: &str = "127.0.0.1:7878";

/// Time allowed for the TCP connection to be established. A server on a LAN answers in milliseconds; five seconds
/// covers a slow Wi-Fi while still telling a person quickly that the address is wrong or the server is down.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Time allowed for the Noise handshake and the `Hello`/`Welcome` exchange after TCP connected. Both are one round
/// trip and a few microseconds of cryptography; a peer that takes longer is not a working chatlab server.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Time a request (login, send, history, user list) may wait for its answer. Login includes the server's Argon2id
/// verification (tens of milliseconds, longer when many students log in at once behind its semaphore), so the bound
/// is generous; past it the caller gets [`ClientError::Timeout`](crate::ClientError::Timeout).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the first UDP ping may go unanswered before chat falls back to TCP (`UDP_PROBE_TIMEOUT` in
/// `docs/protocol.md`). On any working path the answer comes within one round trip plus a retransmission or two;
/// three seconds is long enough not to give up on a lossy Wi-Fi and short enough that a blocked port is noticed
/// before the user's first message.
pub const UDP_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// First wait before reconnecting after the TCP connection dropped. A quarter second lets a restarting server come
/// back without the client hammering it.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(250);

/// Longest wait between reconnection attempts. The wait doubles after each failure up to this cap, so a server that
/// is down for the lunch break costs each client two attempts a minute, not hundreds.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Interval of application-level pings on the control channel. TCP alone does not notice a peer that vanished
/// without closing (a pulled cable, a sleeping laptop): its keepalive starts after two hours. A ping every 15 s
/// finds a dead connection within [`HEARTBEAT_TIMEOUT`] of the next ping.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);

/// Silence after a heartbeat ping that counts as a dead connection. Any frame from the server counts as life, not
/// only the pong, so a busy connection never trips it.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest time a chat message may wait in the outbox for the connection to come back (see `core::outbox`). The
/// server recognises a resent message by its `client_msg_id` for ten minutes after the user's last session ended
/// (`FORGET_OFFLINE_AFTER` in the server's `hub::dedup`); five minutes stays well inside that memory, so a message
/// that was already stored when the connection broke can never be stored twice by its resend. Five minutes also
/// covers a Wi-Fi hand-over or a server restart, and is short enough that a person is told the message did not go
/// out while the conversation is still fresh.
pub const OUTBOX_MAX_WAIT: Duration = Duration::from_secs(5 * 60);

/// The server's memory of a user's `client_msg_id`s after their last session ended (`FORGET_OFFLINE_AFTER`).
const SERVER_DEDUP_MEMORY: Duration = Duration::from_secs(10 * 60);
const _: () = assert!(OUTBOX_MAX_WAIT.as_secs() < SERVER_DEDUP_MEMORY.as_secs());

/// Most chat messages the outbox keeps while the connection is down. A person writes a few messages a minute, so 50
/// covers any real outage; it is also the server's default flood burst (`DEFAULT_FLOOD_BURST` in the server's
/// `limits`), so the whole outbox sent at once after the reconnect is not refused as a flood. Beyond it `send`
/// fails at once with [`ClientError::OutboxFull`](crate::ClientError::OutboxFull) instead of piling up text in memory.
pub const OUTBOX_CAPACITY: usize = 50;

/// Chat messages the client core holds at once: every message from the moment [`ClientHandle::send`] hands it over
/// until the server accepted it or it failed (waiting for room in the UDP send window, in flight, in the outbox). A
/// `send` that finds them all taken *waits* for room, in order, instead of failing; that wait is what bounds the
/// client when a program sends faster than the network and the server can take. The memory it bounds is at most
/// this many texts of the longest kind: 1 024 × 4 KiB = 4 MiB, far less for ordinary messages.
///
/// Why 1 024, the UDP engine's send window: a healthy path never needs more in flight, and more would hurt the
/// sender. The server answers every message with an acceptance queued towards this session, and closes a session
/// whose queue outgrows 4 096 entries as a slow reader (`CONTROL_QUEUE_DEPTH` and `UDP_BACKLOG_DEPTH` in the
/// server's `limits`): a client with ten thousand messages in flight at once was measured to get itself and its
/// recipient disconnected that way, while 1 024 leaves room for the pushes of everyone else.
///
/// [`ClientHandle::send`]: crate::ClientHandle::send
pub const SEND_QUEUE_MESSAGES: usize = 1024;

/// Software name sent in `Hello`, for the server's logs.
pub const CLIENT_NAME: &str = concat!("chatlab-client ", env!("CARGO_PKG_VERSION"));

/// Everything [`Client::connect`](crate::Client::connect) needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server as `HOST:PORT`; the same text is the key of its pin in the known-servers file.
    pub server: String,
    /// The known-servers file (trust on first use, like SSH's `known_hosts`).
    pub known_servers_path: PathBuf,
    /// Which transport chat should use when it can: UDP falls back to TCP when blocked; TCP stays on TCP.
    pub transport: Transport,
    /// See [`UDP_PROBE_TIMEOUT`].
    pub udp_probe_timeout: Duration,
    /// See [`CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// See [`HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// See [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// Whether to reconnect (and log in again) when the TCP connection drops. Without it, nothing waits in the
    /// outbox: messages in flight fail with the connection.
    pub reconnect: bool,
    /// See [`RECONNECT_BACKOFF_MIN`].
    pub reconnect_backoff_min: Duration,
    /// See [`RECONNECT_BACKOFF_MAX`].
    pub reconnect_backoff_max: Duration,
    /// See [`HEARTBEAT_INTERVAL`].
    pub heartbeat_interval: Duration,
    /// See [`HEARTBEAT_TIMEOUT`].
    pub heartbeat_timeout: Duration,
    /// See [`OUTBOX_MAX_WAIT`]. Keep it below the server's ten-minute memory of `client_msg_id`s.
    pub outbox_max_wait: Duration,
    /// See [`OUTBOX_CAPACITY`].
    pub outbox_capacity: usize,
    /// See [`SEND_QUEUE_MESSAGES`]. At least one, whatever is set here.
    pub send_queue_messages: usize,
    /// Settings of the UDP reliability engine (RTO floor, ordering, keepalive, ...).
    pub engine: EngineConfig,
    /// Software name sent in `Hello`.
    pub client_name: String,
    /// Fetch the history (everything since the last id this client has, all of it on the first login) right after
    /// login. A desktop app wants it; a command-line `send` does not.
    pub sync_on_login: bool,
    /// Emit [`ClientEvent::Stats`](crate::ClientEvent::Stats) this often, or never.
    pub stats_interval: Option<Duration>,
}

impl ClientConfig {
    /// A configuration with every default, for `server` and a known-servers file at `known_servers_path`.
    pub fn new(server: impl Into<String>, known_servers_path: impl Into<PathBuf>) -> ClientConfig {
        ClientConfig {
            server: server.into(),
            known_servers_path: known_servers_path.into(),
            transport: Transport::Udp,
            udp_probe_timeout: UDP_PROBE_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            reconnect: true,
            reconnect_backoff_min: RECONNECT_BACKOFF_MIN,
            reconnect_backoff_max: RECONNECT_BACKOFF_MAX,
            heartbeat_interval: HEARTBEAT_INTERVAL,
            heartbeat_timeout: HEARTBEAT_TIMEOUT,
            outbox_max_wait: OUTBOX_MAX_WAIT,
            outbox_capacity: OUTBOX_CAPACITY,
            send_queue_messages: SEND_QUEUE_MESSAGES,
            engine: EngineConfig::default(),
            client_name: CLIENT_NAME.to_string(),
            sync_on_login: true,
            stats_interval: None,
        }
    }
}

/// Where the known-servers file lives by default: `$XDG_CONFIG_HOME/chatlab/known_servers`, else
/// `$HOME/.config/chatlab/known_servers` (the XDG base-directory convention that Linux desktops follow). `None` when
/// neither variable is set, as in some service environments; the caller then asks for an explicit path.
pub fn default_known_servers_path() -> Option<PathBuf> {
    known_servers_path_from(std::env::var_os("XDG_CONFIG_HOME"), std::env::var_os("HOME"))
}

/// [`default_known_servers_path`] with the environment passed in, so it can be tested.
pub(crate) fn known_servers_path_from(
    xdg_config_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    // The XDG specification says a relative XDG_CONFIG_HOME is invalid and must be ignored.
    let config_dir = xdg_config_home
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| home.filter(|home| !home.is_empty()).map(|home| PathBuf::from(home).join(".config")))?;
    Some(config_dir.join("chatlab").join(KNOWN_SERVERS_FILE_NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_config_home_wins() {
        let path = known_servers_path_from(Some("/x/conf".into()), Some("/home/ann".into()));
        assert_eq!(path, Some(PathBuf::from("/x/conf/chatlab/known_servers")));
    }

    #[test]
    fn home_is_the_fallback() {
        let path = known_servers_path_from(None, Some("/home/ann".into()));
        assert_eq!(path, Some(PathBuf::from("/home/ann/.config/chatlab/known_servers")));
        let relative_xdg = known_servers_path_from(Some("conf".into()), Some("/home/ann".into()));
        assert_eq!(relative_xdg, Some(PathBuf::from("/home/ann/.config/chatlab/known_servers")));
    }

    #[test]
    fn no_environment_no_default() {
        assert_eq!(known_servers_path_from(None, None), None);
        assert_eq!(known_servers_path_from(None, Some("".into())), None);
    }

    #[test]
    fn defaults_are_the_documented_constants() {
        let config = ClientConfig::new(DEFAULT_SERVER, "/tmp/k");
        assert_eq!(config.transport, Transport::Udp);
        assert_eq!(config.udp_probe_timeout, UDP_PROBE_TIMEOUT);
        assert!(config.reconnect);
        assert!(config.reconnect_backoff_min < config.reconnect_backoff_max);
        assert_eq!((config.outbox_max_wait, config.outbox_capacity), (OUTBOX_MAX_WAIT, OUTBOX_CAPACITY));
        assert_eq!(config.send_queue_messages, SEND_QUEUE_MESSAGES);
        assert_eq!(SEND_QUEUE_MESSAGES, config.engine.send_window, "see the constant's docs");
        assert_eq!(DEFAULT_SERVER, format!("127.0.0.1:{DEFAULT_PORT}"));
    }
}
