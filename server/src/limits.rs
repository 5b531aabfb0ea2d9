//! The server's limits, each with the reason for its value.
//!
//! A chat server faces the whole classroom at once, including the student who wants to see what happens when a
//! script sends ten thousand messages. Every resource a client can make the server spend is bounded here; the values
//! that an operator may want to change are defaults of [`ServerConfig`](crate::ServerConfig) fields and can be set
//! on the command line. Each rejection reaches the client as a clear error code (or, for a connection refused at
//! `accept`, a reset) and is counted in a summary logged every [`REFUSAL_LOG_INTERVAL`]; nobody else's session
//! notices.

use std::time::Duration;

use crate::rate_limit::BucketShape;

/// TCP connections one IP address may hold at once. A student runs the desktop app and perhaps a CLI or two; 32
/// leaves room for that and for a lab machine shared by a pair, while one runaway script cannot take every socket.
/// Load tests from one address raise it with `--max-connections-per-ip`.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 32;

/// The open-file limit most systems give a process unless told otherwise (the soft `RLIMIT_NOFILE`, `ulimit -n`).
/// Used for the total connection cap when the real limit cannot be read.
pub const TYPICAL_SOFT_FD_LIMIT: usize = 1024;

/// File descriptors kept free for everything that is not a client connection: standard input, output and error, the
/// TCP listener and the UDP socket, the SQLite database with its WAL and shared-memory files (and a temporary file
/// now and then), the runtime's epoll and wake-up descriptors, the key file while it is read, log files an operator
/// redirects to. That is a dozen or two; 124 leaves generous room, and makes the cap 900 at the usual limit of 1024.
pub const FD_HEADROOM: usize = 124;

/// Total cap on connections when the open-file limit cannot be read: what [`FD_HEADROOM`] leaves of
/// [`TYPICAL_SOFT_FD_LIMIT`].
pub const FALLBACK_MAX_CONNECTIONS: usize = TYPICAL_SOFT_FD_LIMIT - FD_HEADROOM;

/// Highest default total cap, for systems whose open-file limit is huge or unlimited. At about 20 KiB of server
/// memory per idle session, 65 536 connections take over a gigabyte: far past any classroom, and a deployment that
/// wants more says so with `--max-connections`.
pub const MAX_DEFAULT_CONNECTIONS: usize = 65_536;

/// Time between two summaries of refusals in the log (connections refused or shed, handshakes over their rate,
/// requests refused, invalid or flooding chat messages, sessions closed for not reading). A flood of attempts must
/// not become a flood of log lines: one client sending invalid messages in a loop once grew the log by 14 MB a
/// second, which costs disk and hides everything else. Refusals are counted per reason, and one line per interval
/// says how many there were and who caused them (see `admission::refusals` and `log_summary`).
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Addresses whose refusals are counted one by one within one [`REFUSAL_LOG_INTERVAL`], so the summary can name the
/// address that caused the most. Refusals from addresses beyond it still count in the totals; the bound keeps a
/// flood from many addresses from growing the counter.
pub const MAX_REFUSAL_ADDRESSES_TRACKED: usize = 1024;

/// New connections one address may start at once (the burst of its handshake bucket): as many as it may hold
/// ([`DEFAULT_MAX_CONNECTIONS_PER_IP`]), so a lab behind one NAT address can open its whole allowance together.
/// Every accepted connection costs a Noise handshake (two X25519 operations and some hashing, about 0.1 ms of a
/// core); without a rate one script could make the server do thousands a second. Raise it with
/// `--handshake-burst-per-ip` for a load test from one machine.
pub const DEFAULT_HANDSHAKE_BURST_PER_IP: f64 = 32.0;

/// New connections per second one address may keep up once its burst is spent (the refill of its handshake bucket):
/// 8 a second lets a class of 100 behind one NAT address all connect within about ten seconds, and holds a script
/// that tries thousands a second to 8 handshakes, about 0.1 % of a core. Connections over it are closed at
/// `accept`, before any cryptography. `--handshake-rate-per-ip` changes it.
pub const DEFAULT_HANDSHAKE_RATE_PER_IP: f64 = 8.0;

/// Connections that may be in their Noise handshake at once, from every address together. A real client finishes
/// its handshake within one round trip; a connection that sends nothing holds its place for up to
/// [`HANDSHAKE_TIMEOUT`]. When the bound is reached, a newcomer takes the place of a handshake of the address that
/// holds the most (if it holds more than the newcomer's address), or is closed. 1 024 is the listen backlog: the
/// design's "1 000 clients logging in at once" fits.
pub const MAX_HANDSHAKES_IN_PROGRESS: usize = 1024;

/// Connections refused for their address's connection cap that still get an encrypted explanation
/// (`TooManyConnections`) instead of a bare reset: one per address every ten seconds. The student who opened one
/// window too many learns why; a script that opens thousands gets resets, which cost no cryptography.
pub const EXPLAINED_REFUSALS_PER_IP: BucketShape = BucketShape { capacity: 1.0, refill_per_sec: 0.1 };

/// Explanations (see [`EXPLAINED_REFUSALS_PER_IP`]) being sent at once, from every address together. Each costs a
/// handshake and holds a socket for up to [`REFUSAL_HANDSHAKE_TIMEOUT`]; past this bound refusals are plain resets.
pub const MAX_EXPLAINED_REFUSALS_IN_PROGRESS: usize = 16;

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

/// Failed logins for one account from one address: a burst of 5, then one every 30 s. Enough for a student who
/// mistypes, far too slow for guessing a password. Keyed by account *and* address, so failures from an attacker's
/// address never lock the owner out at theirs (see `admission::login`).
pub const LOGIN_FAILURES_PER_ACCOUNT_AND_IP: BucketShape = BucketShape { capacity: 5.0, refill_per_sec: 1.0 / 30.0 };

/// Failed logins for one account from all addresses together: a burst of 20, then one a minute. It slows a guesser
/// who spreads attempts over many addresses. It is only ever charged by failures and only ever refuses addresses
/// that have failed for this account themselves: a correct password from an address without failures is never
/// refused because of it.
pub const LOGIN_FAILURES_PER_ACCOUNT: BucketShape = BucketShape { capacity: 20.0, refill_per_sec: 1.0 / 60.0 };

/// Failed logins per IP address, whatever the account: a burst of 20, then one every 3 s. Higher than per account
/// because a whole lab may sit behind one NAT address; it stops one machine from trying many accounts.
pub const LOGIN_FAILURES_PER_IP: BucketShape = BucketShape { capacity: 20.0, refill_per_sec: 1.0 / 3.0 };

/// Accounts one address may create per hour by default (`--max-registrations-per-ip`): all 100 at once, then the
/// allowance refills at 100 an hour (one every 36 s). A class of 100 behind one school NAT registers in its first
/// minutes; a script that fills the user table gets 100 names an hour from each address it owns.
pub const DEFAULT_MAX_REGISTRATIONS_PER_IP: u32 = 100;

/// The period of the registration allowance: `--max-registrations-per-ip N` means a burst of N, refilled at N per
/// this period.
pub const REGISTRATION_PERIOD: Duration = Duration::from_secs(3600);

/// Users whose flood buckets the hub remembers at most. A bucket is forgotten once it has refilled (it then carries
/// no information), so this bounds only users who flooded within the last few seconds; with the map full of those,
/// new senders are refused rather than let through unchecked.
pub const MAX_FLOOD_USERS: usize = 100_000;

/// Accounts and addresses the login limiters remember at most. Older, refilled entries are forgotten first; the
/// bound keeps an attacker who invents names from growing the server's memory.
pub const MAX_RATE_LIMIT_KEYS: usize = 100_000;

/// Default chat flood control per user (shared by all their sessions, so logging out and in again does not refill
/// it): a burst of 50 messages, then 20 a second. A person types a few messages
/// a minute and pastes a few at once; a lab script measuring throughput raises it with `--flood-rate`.
pub const DEFAULT_FLOOD_BURST: f64 = 50.0;
/// See [`DEFAULT_FLOOD_BURST`].
pub const DEFAULT_FLOOD_RATE: f64 = 20.0;

/// Messages in one history page at most. A page must also fit one control frame (64 KiB), so pages are cut by size
/// as well; 500 short messages is a screenful many times over.
pub const MAX_HISTORY_PAGE: u16 = 500;

/// Time a session on UDP may go without any authenticated datagram before the server stops trusting the UDP path
/// and moves the session's pushes (and whatever UDP still owed it) to TCP; the session itself stays. The client's
/// engine pings every 10 s when idle and gives up on UDP after 30 s of silence, then says `UseTransport{Tcp}`;
/// 45 s lets the client, which knows best, decide first, and leaves the server's own detection as the backstop for
/// a client that cannot tell it.
pub const UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// Encrypted output a connection may have waiting to be written before the server stops decoding that client's
/// requests. Every request may produce an answer (a history page is up to 64 KiB); without this cap a client that
/// pipelines thousands of requests and reads nothing would make the server build all the answers in memory. At the
/// cap the connection first writes what it has — which waits for the client to read — and only then decodes the
/// next request, so a client that does not read stops being served instead of being buffered for. 256 KiB holds
/// a few full pages plus a burst of pushes.
pub const MAX_UNSENT_OUTPUT_BYTES: usize = 256 * 1024;

/// Time a write to a client may make no progress at all before the connection is closed. A client on a congested
/// Wi-Fi still takes some bytes every few seconds; thirty seconds without a single byte accepted means it stopped
/// reading or vanished without closing, and the connection only holds memory and a socket.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Time a logged-in connection may deliver no byte at all before the server decides the client is gone, closes the
/// connection and ends the session (classmates see the user go offline). A client that vanishes without closing
/// (a laptop lid, a dropped Wi-Fi, a frozen program) sends no FIN, and a connection that is never written to never
/// notices; see `conn::idle`. Once logged in, the client sends a `Ping` every 15 s (`HEARTBEAT_INTERVAL` in
/// `chatlab-client`'s config) whatever transport chat uses, so a live client is never silent much longer than that.
/// 60 s is four heartbeat intervals: a laptop that stalls for a few seconds or a Wi-Fi hiccup that delays a ping or
/// two does not cost anyone a session, and a vanished user is offline within a minute. Datagrams do not count: the
/// session lives and dies with its control connection. Tests shorten it through
/// [`ServerConfig::control_idle_timeout`](crate::ServerConfig::control_idle_timeout).
pub const CONTROL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Silence after which the kernel starts probing an accepted TCP connection (`TCP_KEEPIDLE`; see
/// [`crate::net::keepalive`]). Linux's default is two hours, which is no use for noticing a vanished classmate.
/// Half the read-idle limit: a logged-in client pings four times as often, so probes go out only to connections
/// that are already suspect (or not logged in yet).
pub const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// Time between unanswered keepalive probes (`TCP_KEEPINTVL`). Ten seconds is many round trips on any network a
/// class uses, so a live peer has answered long before the next probe.
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Unanswered keepalive probes after which the kernel declares the connection dead (`TCP_KEEPCNT`). Three, so one
/// lost probe is not fatal; with the two values above a vanished host is noticed about a minute after its last
/// packet, the same order as [`CONTROL_IDLE_TIMEOUT`], and a rebooted host (which answers with a reset) after 30 s.
pub const TCP_KEEPALIVE_PROBES: u32 = 3;

/// History pages and user lists one session may ask for: a burst of 500 (a sync at login of 250 000 messages in
/// pages of 500), then 50 a second. Each request is a storage read of up to a frame of answer; a person scrolling
/// asks for a few a second, a script asking in a loop is refused with `TooManyRequests`.
pub const REQUESTS_PER_SESSION: BucketShape = BucketShape { capacity: 500.0, refill_per_sec: 50.0 };

/// `Received` reports one session may send: a burst of 2 000, then 1 000 a second. The client confirms every message
/// pushed over TCP, in batches of up to [`MAX_RECEIVED_IDS`] ids gathered while frames keep arriving, so a burst of
/// pushes costs a few reports; each report costs a storage write. Reports beyond it are ignored (logged): the messages they name are confirmed by the next
/// history sync, and an error without a request number could not be matched to anything by the client.
pub const RECEIVED_PER_SESSION: BucketShape = BucketShape { capacity: 2000.0, refill_per_sec: 1000.0 };

/// Message ids one `Received` may name; the rest are ignored (and confirmed by the next history sync). The client
/// batches at most this many per report; a 64 KiB frame could otherwise name about 7 000 and make one report a large
/// write.
pub const MAX_RECEIVED_IDS: usize = 1024;

/// Control messages queued towards one client before the server gives up on it, a second bound beside the one that
/// matters, [`MAX_SESSION_QUEUE_BYTES`]: the channel's slots. 4 096 small pushes take well under the byte budget, so
/// only a client that reads nothing at all while a flood of tiny messages arrives meets this bound first.
pub const CONTROL_QUEUE_DEPTH: usize = 4096;

/// Commands waiting for the hub (the task that owns every session): logins, chat messages, committed batches. A
/// connection that finds the queue full waits, which slows only that connection; 8 192 absorbs a classroom's burst
/// of logins and messages without the hub ever falling far behind.
pub const HUB_QUEUE_DEPTH: usize = 8192;

/// Chat messages and delivery marks waiting for the storage writer. When the disk cannot keep up and this queue is
/// full, new messages are refused (`FloodLimited`, "server busy") instead of piling up in memory; at one commit per
/// few milliseconds the queue drains in well under a second.
pub const WRITER_QUEUE_DEPTH: usize = 16_384;

/// Messages committed in one transaction at most. Group commit gets cheaper per message as batches grow, but one
/// huge batch delays the acknowledgement of its first message; 4 096 short messages commit in a few milliseconds.
pub const MAX_COMMIT_BATCH: usize = 4096;

/// Time a connection beyond its address's connection cap gets to finish the handshake, so that the refusal can be
/// sent encrypted with a clear error code. Short, because the slot it holds is one the cap meant to deny.
pub const REFUSAL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Time a graceful shutdown waits for sessions to receive their last messages before it closes the remaining
/// sockets. The storage writer is always allowed to finish its commits: nothing acknowledged is lost either way.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Bytes read from a TCP socket at once: a quarter of a maximum frame, enough for dozens of ordinary control
/// messages per system call, small enough to keep per-connection memory low.
pub const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Receive buffer for one UDP datagram. Larger than any legal datagram (1 200 bytes), so an oversized one shows up as
/// too long rather than silently cut to a plausible length.
pub const UDP_RECV_BUFFER_BYTES: usize = 2048;

/// Pending connections the kernel queues for `accept` (the `listen` backlog). The design asks for 1 000 clients
/// logging in at once with none dropped; 1 024 holds all of them even if the accept loop falls behind.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Attempts to find a port free for both TCP and UDP when binding to port 0: the kernel picks the TCP port, and the
/// same UDP port is taken by another program only rarely, so a few retries always suffice in practice.
pub const BIND_ATTEMPTS: u32 = 16;

/// User names the storage writer remembers with their ids, so a private message does not cost a lookup. Users are
/// never deleted, so the cache can never be wrong, only full; it is then cleared and refills.
pub const MAX_CACHED_USER_IDS: usize = 100_000;

/// Stale entries the hub's timer heap may hold per live session before it is rebuilt. Each datagram moves a
/// session's next deadline and leaves the old entry behind (deleting from a binary heap is expensive); rebuilding
/// at this ratio keeps the heap small at the cost of an occasional linear pass.
pub const TIMER_HEAP_SLACK: usize = 8;

/// Keepalive interval of the server's side of the datagram engine at most: it must stay below the idle timeout
/// (the engine insists) and at most a third of it, so that two lost pings never move a live session off UDP.
pub const UDP_KEEPALIVE_FRACTION: u32 = 3;

/// Bytes the hub may hold for one session on their way out: its control queue, its UDP backlog and its UDP messages
/// not yet acknowledged, together (see `hub::outbox`). A client that lets this fill up has stopped reading and is
/// disconnected. Counted in bytes because messages differ a thousandfold in size: the old bound of 4 096 messages
/// let one silent client pin 18 MB. 2 MiB holds about ten thousand ordinary pushes (a world room of a hundred people
/// talking for minutes), the online list of 10 000 users, or four hundred maximum-length messages. It was 512 KiB
/// at first, and a client that read at full speed while a classmate's program blasted 3 000 messages at it over UDP
/// was cut off now and then on a busy machine (the server produces faster than one send window drains): a reader
/// that is merely slow must drain it long before it fills, while the connection's own buffers
/// (`MAX_UNSENT_OUTPUT_BYTES`) and the kernel's socket buffers absorb the rest.
pub const MAX_SESSION_QUEUE_BYTES: usize = 2 * 1024 * 1024;

/// Bookkeeping charged per queued message on top of its own bytes: a queue slot, a map entry, the engine's record
/// of a message in flight. An estimate (a few pointers and counters each, rounded up), so that a flood of tiny
/// messages counts against [`MAX_SESSION_QUEUE_BYTES`] as the memory it really takes.
pub const PER_MESSAGE_OVERHEAD_BYTES: usize = 128;
