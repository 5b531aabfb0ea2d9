//! The boundary between the window and the network.
//!
//! A desktop app has one thread that draws the window: egui calls [`ChatApp`](super::ChatApp) about sixty times a
//! second while something moves, and every call must return within a few milliseconds or the window stops
//! answering the mouse. Networking is the opposite: a TCP connect can take seconds to time out, a login waits for
//! Argon2 on the server, a reconnect sleeps between attempts. The original Python chat room did both on one thread
//! and froze whenever the network did.
//!
//! So the two never share a thread. The network side (the tokio client core) runs on its own runtime; the window
//! talks to it only through this module's [`Backend`] trait, whose methods never block:
//!
//! ```text
//!   UI thread (egui)                               network side (tokio runtime)
//!   ───────────────                                ────────────────────────────
//!   backend.send(Command::Send{..})   ──────────▶  queue, returns at once
//!   each frame: while let Some(e) =
//!       backend.try_recv()            ◀──────────  events, pushed as they happen,
//!   (egui repaints when woken)        ◀── wake() ─ followed by a call of the waker
//! ```
//!
//! Commands go one way and [`BackendEvent`]s come back the other way, like the two halves of a channel. The UI
//! never waits for an answer: it records what it asked for (a message "sending", a login "connecting…") and
//! changes the picture when the matching event arrives. That is also why events carry everything the UI needs to
//! match them up: a [`LocalId`] for the message a [`BackendEvent::Accepted`] answers, a [`Target`] for a history
//! page.
//!
//! Errors cross the boundary as [`Problem`]s, not as strings: the UI speaks two languages and turns each problem
//! into a sentence in the one the student chose. [`Problem::Other`] carries a sentence from the network side for
//! the rare failure no variant describes.
//!
//! Two implementations exist: the real one, over the tokio client core, and [`FakeBackend`], an in-memory server
//! used by the UI tests and the demo. A real backend is usually a pair of tokio unbounded channels (whose `send` and
//! `try_recv` never block) plus the waker; [`Backend::set_waker`] says when to call it.

mod demo_link;
mod fake;
pub mod real;

use std::sync::Arc;
use std::time::Duration;

use chatlab_proto::chat::{ChatMessage, Target, Username};
use chatlab_proto::control::{ErrorCode, Password, Transport};
use chatlab_proto::impair::ImpairmentConfig;
use chatlab_proto::stats::{RttSample, StatsSnapshot};
use serde::{Deserialize, Serialize};

pub use demo_link::{DemoLink, DemoLinkError, DemoProgress};
pub use fake::{FAKE_FINGERPRINT, FakeBackend, FakeControl};

/// The UI's own number for a message it asked to send, until the server gives the message its real id.
///
/// The UI shows a message the moment Enter is pressed, long before the server has stored it, so it needs a name
/// for it in the meantime. [`BackendEvent::Accepted`] and [`BackendEvent::Rejected`] quote it back. Numbers only
/// grow and are never reused while the app runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LocalId(pub u64);

/// Whether the sign-in creates the account first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// Log in to an existing account.
    LogIn,
    /// Register the account, then log in to it.
    Register,
}

/// What the UI asks the network side to do. Every command is answered by events, never by a return value.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Connect to `server` (`HOST:PORT`), check its key against the known-servers file, then log in (after
    /// registering, with [`Account::Register`]). Answered by [`BackendEvent::LoggedIn`],
    /// [`BackendEvent::LoginFailed`] or [`BackendEvent::ServerKeyChanged`].
    SignIn {
        /// `HOST:PORT` as the student typed it.
        server: String,
        /// The account.
        user: Username,
        /// Its password; [`Password`]'s `Debug` prints `***`, so logging a command leaks nothing.
        password: Password,
        /// Log in only, or register first.
        account: Account,
    },
    /// Send a chat message. Answered by [`BackendEvent::Accepted`] or [`BackendEvent::Rejected`] quoting `local_id`,
    /// then by [`BackendEvent::Receipt`]s as recipients get it. While the connection is down, the network side
    /// keeps the message and sends it after reconnecting.
    Send {
        /// The UI's number for it.
        local_id: LocalId,
        /// The world room or one user.
        to: Target,
        /// The text in wire form (already normalised and validated by the UI).
        text: String,
    },
    /// Fetch the page of `target`'s conversation just before `before_id` (the newest page when `None`). Answered by
    /// [`BackendEvent::History`].
    History {
        /// The conversation.
        target: Target,
        /// Only messages older than this id.
        before_id: Option<u64>,
    },
    /// Send this user's own chat messages over this transport from now on. Answered by
    /// [`BackendEvent::TransportChanged`], or by [`BackendEvent::TransportSwitchFailed`] when the switch could not
    /// be made (the connection is down, the server did not take the request).
    SetTransport(Transport),
    /// Impair the app's own UDP datagrams (for the lab: watch retransmissions happen). Applies at once. Boxed
    /// because two impairment configs would make every command as large as this one.
    SetImpairment(Box<Impairment>),
    /// Run the chatlab server library inside the app on `port` (TCP and UDP), with its data in the user's data
    /// directory. Answered by [`BackendEvent::RoomHosted`] or [`BackendEvent::HostFailed`].
    HostRoom {
        /// The port for both transports; 0 lets the system choose.
        port: u16,
    },
    /// End the session. Answered by [`BackendEvent::LoggedOut`].
    LogOut,
}

/// The impairment of the app's own datagrams, one config per direction.
///
/// Two configs rather than one because a lab often wants to lose only data (outgoing) or only acknowledgements
/// (incoming), and because two directions with the same seed would lose the same packets in step.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Impairment {
    /// Datagrams this app sends, before they reach the socket.
    pub outgoing: ImpairmentConfig,
    /// Datagrams this app receives, before the engine sees them.
    pub incoming: ImpairmentConfig,
}

/// Something that went wrong, in a form the UI can explain in the student's language.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// The server refused a request and said why: a stable code and its own English sentence, shown when the UI has
    /// no translation for the code.
    Refused {
        /// What kind of refusal.
        code: ErrorCode,
        /// The server's sentence.
        message: String,
    },
    /// The server address is not `HOST:PORT`, or the host name does not resolve.
    BadAddress {
        /// What was typed.
        address: String,
    },
    /// Nothing answered at this address: the server is not running, the port is wrong, or a firewall drops it.
    Unreachable {
        /// The address tried.
        address: String,
        /// The operating system's reason (e.g. "connection refused").
        detail: String,
    },
    /// The server took too long to answer.
    TimedOut {
        /// The address tried.
        address: String,
    },
    /// The connection closed: the server stopped, the network went away, or the laptop slept.
    Disconnected {
        /// The operating system's or the protocol's reason.
        detail: String,
    },
    /// The connection is down and as many messages as the network side keeps already wait for it to come back;
    /// this one was not kept.
    OutboxFull {
        /// Messages waiting.
        queued: usize,
    },
    /// A message waited for the connection as long as the network side keeps one, and the connection did not come
    /// back. `maybe_stored`: it had gone out before the break, so the server may have stored it.
    OutboxExpired {
        /// How long it waited, in seconds.
        waited_secs: u64,
        /// Whether the server may have stored it.
        maybe_stored: bool,
    },
    /// A failure the variants above do not describe, as a sentence from the network side.
    Other(String),
}

/// Why chat moved to a transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportReason {
    /// The user chose it with [`Command::SetTransport`].
    Requested,
    /// No acknowledgement came back over UDP in time after login (a firewall or NAT drops UDP), so chat falls back
    /// to TCP.
    UdpUnanswered {
        /// The server's UDP address that stayed silent.
        address: String,
    },
    /// The session (re)started; the transport is the one it starts with.
    SessionStart,
    /// The server's datagrams broke the reliability protocol, so this client ended its UDP session (the reason is
    /// the engine's own explanation, in English: it names protocol details, not something to translate).
    UdpBroken {
        /// What the server did.
        reason: String,
    },
}

/// Figures the operating system gives about the TCP control connection, beside chatlab's own UDP statistics.
///
/// The kernel does TCP's acknowledgements and retransmissions out of sight of the program, so fewer figures exist
/// than for UDP: frames and bytes the client core counts itself, and on Linux what the `TCP_INFO` socket option
/// reports (`None` elsewhere or when the call fails).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpStats {
    /// Control frames written.
    pub frames_sent: u64,
    /// Control frames read.
    pub frames_received: u64,
    /// Bytes written to the socket (length prefixes, Noise overhead and MessagePack included).
    pub bytes_sent: u64,
    /// Bytes read from the socket.
    pub bytes_received: u64,
    /// Chat text bytes sent over TCP, each message once.
    pub useful_bytes_sent: u64,
    /// Chat text bytes received over TCP, each message once.
    pub useful_bytes_received: u64,
    /// The kernel's smoothed RTT (`tcpi_rtt`), microseconds.
    pub kernel_rtt_us: Option<u64>,
    /// The kernel's RTT variation (`tcpi_rttvar`), microseconds.
    pub kernel_rttvar_us: Option<u64>,
    /// The kernel's retransmission timeout (`tcpi_rto`), microseconds.
    pub kernel_rto_us: Option<u64>,
    /// Segments the kernel retransmitted on this connection (`tcpi_total_retrans`).
    pub kernel_retransmits: Option<u64>,
}

/// One point of a cumulative distribution: `fraction` of the messages took at most `ms` milliseconds.
pub type CdfPoint = (f64, f64);

/// Most points a CDF sent to the UI has. A plot a few hundred pixels wide cannot show more, and a bounded size
/// keeps a statistics event small however many messages were measured.
pub const MAX_CDF_POINTS: usize = 256;

/// The empirical cumulative distribution of `samples_ms` (non-finite values ignored), thinned to at most
/// [`MAX_CDF_POINTS`] points.
///
/// A CDF answers "what fraction of messages arrived within x ms?". Read it at 0.5 for the median and at 0.99 for
/// the tail that students feel as "the chat hangs sometimes"; two transports on one plot show at a glance where
/// one is faster and where its tail is longer.
pub fn cdf(mut samples_ms: Vec<f64>) -> Vec<CdfPoint> {
    samples_ms.retain(|x| x.is_finite());
    samples_ms.sort_by(f64::total_cmp);
    let n = samples_ms.len();
    if n == 0 {
        return Vec::new();
    }
    let step = n.div_ceil(MAX_CDF_POINTS);
    let mut points: Vec<CdfPoint> = samples_ms
        .iter()
        .enumerate()
        .skip(step - 1)
        .step_by(step)
        .map(|(i, &x)| (x, (i + 1) as f64 / n as f64))
        .collect();
    // The thinning may skip the largest sample; the curve must still reach 1.
    if points.last().is_none_or(|&(_, fraction)| fraction < 1.0) {
        points.push((samples_ms[n - 1], 1.0));
    }
    points
}

/// A periodic statistics report (a few per second while signed in).
#[derive(Debug, Clone, PartialEq)]
pub struct StatsUpdate {
    /// Time since the session started, on the engine's clock; the x axis of the plots over time.
    pub elapsed: Duration,
    /// The UDP engine's counters and RTT estimator.
    pub udp: StatsSnapshot,
    /// The engine's recent RTT samples, oldest first (the whole remembered window, not only new ones).
    pub rtt_samples: Vec<RttSample>,
    /// The TCP control connection's figures.
    pub tcp: TcpStats,
    /// Delivery latency of this user's messages sent over UDP (send to server acknowledgement), as a CDF.
    pub udp_latency_cdf: Vec<CdfPoint>,
    /// The same for messages sent over TCP.
    pub tcp_latency_cdf: Vec<CdfPoint>,
}

/// What the network side reports. The UI applies events in the order they arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendEvent {
    /// Signing in failed; the connection (if any) is closed.
    LoginFailed(Problem),
    /// The server's key is not the one pinned for this address at first contact. Nothing was sent; the UI explains
    /// and refuses. Fingerprints are in the `SHA256:xxxx:…` display form.
    ServerKeyChanged {
        /// `HOST:PORT`.
        server: String,
        /// The key pinned earlier.
        pinned: String,
        /// The key the server presented now.
        offered: String,
    },
    /// Signed in.
    LoggedIn {
        /// The canonical (case-folded) name.
        user: Username,
        /// The server as typed.
        server: String,
        /// The server key's fingerprint.
        fingerprint: String,
        /// Whether the key was pinned just now (first contact): the UI then shows the fingerprint to compare.
        first_contact: bool,
        /// The server's text limit in bytes (at most `MAX_TEXT_BYTES`).
        max_text_bytes: usize,
    },
    /// A chat message pushed live (from someone else, or from this user's other sessions).
    Message(ChatMessage),
    /// The server stored the message durably under `id`: the "acknowledged" tick.
    Accepted {
        /// The UI's number for it.
        local_id: LocalId,
        /// The server's id.
        id: u64,
        /// The server's timestamp, UTC milliseconds.
        sent_at_ms: i64,
    },
    /// The server refused the message; nothing was stored.
    Rejected {
        /// The UI's number for it.
        local_id: LocalId,
        /// Why.
        problem: Problem,
    },
    /// Message `id` reached user `to`: the "delivered" tick.
    Receipt {
        /// The message.
        id: u64,
        /// Who got it.
        to: Username,
    },
    /// A user came online or went offline.
    Presence {
        /// Who.
        user: Username,
        /// Online now?
        online: bool,
    },
    /// The full list of users online now (after login and after every reconnect).
    Users(Vec<Username>),
    /// Messages from the incremental sync at login or after a reconnect, any conversation, oldest first.
    Synced(Vec<ChatMessage>),
    /// A page answering [`Command::History`], oldest first.
    History {
        /// The conversation.
        target: Target,
        /// The page.
        messages: Vec<ChatMessage>,
        /// Whether older messages exist.
        more: bool,
    },
    /// Fresh statistics.
    Stats(Box<StatsUpdate>),
    /// Chat now travels over `transport`.
    TransportChanged {
        /// The transport in use.
        transport: Transport,
        /// Why.
        reason: TransportReason,
    },
    /// The connection broke; the network side is reconnecting by itself. Messages sent meanwhile (and those still
    /// unacknowledged) are kept and sent after the reconnect: their [`BackendEvent::Accepted`] come later.
    ConnectionLost(Problem),
    /// Reconnected and logged in again: the kept messages go out now, and a [`BackendEvent::Synced`] with what was
    /// missed follows.
    Reconnected,
    /// The impairment could not be applied; the previous one stays.
    ImpairmentFailed(Problem),
    /// Something went wrong outside any request (a refused background sync, say) while the session goes on: a
    /// notice, not a lost connection.
    Notice(Problem),
    /// The session ended for good and will not come back by itself (the credentials were refused at the automatic
    /// login, or the server's key changed while reconnecting): the window returns to the sign-in form and says why.
    SessionEnded(Problem),
    /// A [`Command::SetTransport`] failed; chat stays on the transport it used (the last
    /// [`BackendEvent::TransportChanged`]).
    TransportSwitchFailed {
        /// The transport asked for.
        wanted: Transport,
        /// Why it could not be used.
        problem: Problem,
    },
    /// The room this app hosts is running.
    RoomHosted {
        /// The port it listens on (TCP and UDP).
        port: u16,
        /// `HOST:PORT` addresses of this computer on the local network, for students to type.
        addresses: Vec<String>,
    },
    /// The room could not start (port in use, no permission…).
    HostFailed(Problem),
    /// The session ended at the user's request.
    LoggedOut,
}

/// A function the network side calls after queuing events, so that egui draws a frame and reads them. Without it
/// the window would only notice events at its next repaint, which may be minutes away when nothing moves.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// The network side as the UI sees it. Every method returns at once.
pub trait Backend {
    /// Queues a command. Must not block; failures come back as events.
    fn send(&mut self, command: Command);

    /// The next event, or `None` when none is waiting. Must not block.
    fn try_recv(&mut self) -> Option<BackendEvent>;

    /// Called by the UI once, before the first [`try_recv`](Backend::try_recv), with a waker to call (from any
    /// thread) after an event was queued.
    fn set_waker(&mut self, waker: Waker);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_of_nothing_is_empty() {
        assert!(cdf(Vec::new()).is_empty());
        assert!(cdf(vec![f64::NAN, f64::INFINITY]).is_empty());
    }

    #[test]
    fn cdf_sorts_and_climbs_to_one() {
        assert_eq!(cdf(vec![3.0, 1.0, 2.0, 4.0]), vec![(1.0, 0.25), (2.0, 0.5), (3.0, 0.75), (4.0, 1.0)]);
    }

    #[test]
    fn cdf_is_thinned_but_keeps_its_end() {
        let points = cdf((0..10_001).map(f64::from).collect());
        assert!(points.len() <= MAX_CDF_POINTS + 1);
        assert_eq!(points.last(), Some(&(10_000.0, 1.0)));
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
    }

    #[test]
    fn password_never_shows_in_a_logged_command() {
        let command = Command::SignIn {
            server: String::from("127.0.0.1:7878"),
            user: Username::parse("ann").unwrap(),
            password: Password::new("hunter2"),
            account: Account::LogIn,
        };
        assert!(!format!("{command:?}").contains("hunter2"));
    }
}
