//! The server's limits, each with the reason for its value.
//!
//! A chat server faces the whole classroom at once, including the student who wants to see what happens when a
//! script sends ten thousand messages. Every resource a client can make the server spend is bounded here; the values
//! that an operator may want to change are defaults of [`ServerConfig`](crate::ServerConfig) fields and can be set
//! on the command line. Each rejection reaches the client as a clear error code and costs one log line; nobody
//! else's session notices.

use std::time::Duration;

use crate::rate_limit::BucketShape;

/// TCP connections one IP address may hold at once. A student runs the desktop app and perhaps a CLI or two; 32
/// leaves room for that and for a lab machine shared by a pair, while one runaway script cannot take every socket.
/// Load tests from one address raise it with `--max-connections-per-ip`.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 32;

/// Control frames a connection may send before it has logged in: enough for a hello, a registration and a few
/// login attempts. A client that keeps talking without authenticating is not a chat client.
pub const MAX_FRAMES_BEFORE_LOGIN: u32 = 16;

/// Largest control frame before login, in bytes: a login with the longest allowed password fits in well under 2 KiB,
/// so an unauthenticated peer can never make the server buffer a full 64 KiB frame.
pub const MAX_FRAME_BYTES_BEFORE_LOGIN: usize = 4096;

/// Time allowed for the Noise handshake. A peer that opens a socket and says nothing holds a connection slot; ten
/// seconds is generous for any real client, even on a congested Wi-Fi.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed between connecting and logging in: enough for a person typing a password at a prompt.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(120);

/// Failed logins per account: a burst of 5, then one every 12 s (5 a minute). Enough for a student who mistypes,
/// far too slow for guessing a password.
pub const LOGIN_FAILURES_PER_ACCOUNT: BucketShape = BucketShape { capacity: 5.0, refill_per_sec: 1.0 / 12.0 };

/// Failed logins per IP address: a burst of 20, then one every 3 s. Higher than per account because a whole lab may
/// sit behind one NAT address; it stops one machine from trying many accounts.
pub const LOGIN_FAILURES_PER_IP: BucketShape = BucketShape { capacity: 20.0, refill_per_sec: 1.0 / 3.0 };

/// Registrations per IP address: a burst of 10, then one a minute, so a script cannot fill the user table.
pub const REGISTRATIONS_PER_IP: BucketShape = BucketShape { capacity: 10.0, refill_per_sec: 1.0 / 60.0 };

/// Accounts and addresses the login limiters remember at most. Older, refilled entries are forgotten first; the
/// bound keeps an attacker who invents names from growing the server's memory.
pub const MAX_RATE_LIMIT_KEYS: usize = 100_000;

/// Default chat flood control per session: a burst of 50 messages, then 20 a second. A person types a few messages
/// a minute and pastes a few at once; a lab script measuring throughput raises it with `--flood-rate`.
pub const DEFAULT_FLOOD_BURST: f64 = 50.0;
/// See [`DEFAULT_FLOOD_BURST`].
pub const DEFAULT_FLOOD_RATE: f64 = 20.0;

/// Messages in one history page at most. A page must also fit one control frame (64 KiB), so pages are cut by size
/// as well; 500 short messages is a screenful many times over.
pub const MAX_HISTORY_PAGE: u16 = 500;

/// Time a session may go without any UDP datagram before it is considered gone, when it chats over UDP. The client
/// pings every 10 s when idle; three missed pings end the session.
pub const UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Control messages queued towards one client before the server gives up on it. A client that stops reading its
/// socket must not make the server hold an ever-growing queue; at this depth it is disconnected with a log line.
pub const CONTROL_QUEUE_DEPTH: usize = 4096;
