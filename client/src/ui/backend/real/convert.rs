//! Translating the client core's vocabulary into the window's.
//!
//! The client core speaks to programs: a [`ClientError`] per failure, a [`ClientStats`] snapshot, transport reasons
//! with durations. The window speaks to students, in two languages, so it wants fewer and coarser kinds: a
//! [`Problem`] it can put into a sentence, a [`StatsUpdate`] ready to plot. These functions are the whole
//! translation, kept free of I/O so each mapping is tested on its own.

use std::time::Duration;

use chatlab_proto::control::ErrorCode;
use chatlab_proto::stats::{ReceiveCounters, SendCounters, StatsSnapshot};

use crate::error::ClientError;
use crate::event::TransportReason as CoreReason;
use crate::stats::ClientStats;

use super::super::{Problem, StatsUpdate, TcpStats, TransportReason};

/// The problem a student should see for `err`, raised while talking to `server` (`HOST:PORT`).
///
/// Refusals the server gave with a code keep the code, so the window can translate them; the sentence kept beside
/// it is the server's own when the core kept one, else the core's. Failures of the connection become the
/// connection variants; what is neither (a broken known-servers file, a protocol violation) is passed on as the
/// core's sentence.
pub(super) fn problem(err: &ClientError, server: &str) -> Problem {
    let refused = |code: ErrorCode, message: &str| Problem::Refused { code, message: message.to_owned() };
    match err {
        ClientError::BadAddress { server, .. } => Problem::BadAddress { address: server.clone() },
        ClientError::Unreachable { server, reason } => {
            Problem::Unreachable { address: server.clone(), detail: reason.clone() }
        }
        ClientError::Timeout { .. } => Problem::TimedOut { address: server.to_owned() },
        ClientError::Disconnected { reason } => Problem::Disconnected { detail: reason.clone() },
        ClientError::Closed => Problem::Disconnected { detail: err.to_string() },
        ClientError::RateLimited { code, message } | ClientError::Rejected { code, message } => refused(*code, message),
        ClientError::UsernameTaken { message } => refused(ErrorCode::UsernameTaken, message),
        ClientError::UnknownUser { message } => refused(ErrorCode::UnknownUser, message),
        ClientError::VersionMismatch { message } => refused(ErrorCode::VersionMismatch, message),
        ClientError::InvalidUsername { reason } => refused(ErrorCode::UsernameInvalid, reason),
        ClientError::InvalidPassword { reason } => refused(ErrorCode::PasswordInvalid, reason),
        ClientError::TextInvalid { reason } => refused(ErrorCode::TextInvalid, reason),
        ClientError::TextTooLong { .. } => refused(ErrorCode::TextTooLong, &err.to_string()),
        ClientError::BadCredentials => refused(ErrorCode::BadCredentials, &err.to_string()),
        ClientError::NotLoggedIn => refused(ErrorCode::NotLoggedIn, &err.to_string()),
        ClientError::AlreadyLoggedIn => refused(ErrorCode::AlreadyLoggedIn, &err.to_string()),
        ClientError::OutboxFull { queued } => Problem::OutboxFull { queued: *queued },
        ClientError::OutboxExpired { waited, maybe_stored } => {
            Problem::OutboxExpired { waited_secs: waited.as_secs(), maybe_stored: *maybe_stored }
        }
        ClientError::ServerKeyChanged { .. }
        | ClientError::KnownServers(_)
        | ClientError::Handshake { .. }
        | ClientError::Protocol(_)
        | ClientError::InvalidImpairment { .. }
        | ClientError::NoRoom { .. } => Problem::Other(err.to_string()),
    }
}

/// Why chat moved, as the window tells it. `server` names the UDP address when the core's reason does not.
///
/// The window has no notice for "UDP confirmed": the session started on UDP and stays there, which is what
/// [`TransportReason::SessionStart`] says. UDP falling silent after it worked reads, for a student, like UDP that
/// does not answer: both say "chat moved to TCP because the server's UDP port went quiet".
pub(super) fn transport_reason(reason: &CoreReason, server: &str) -> TransportReason {
    match reason {
        CoreReason::Requested => TransportReason::Requested,
        CoreReason::UdpConfirmed => TransportReason::SessionStart,
        CoreReason::UdpBlocked { server, .. } => TransportReason::UdpUnanswered { address: server.clone() },
        CoreReason::UdpSilent { .. } => TransportReason::UdpUnanswered { address: server.to_owned() },
        CoreReason::UdpFailed { reason } => TransportReason::UdpBroken { reason: reason.clone() },
    }
}

/// A UDP snapshot with every figure at zero: what the panel shows while chat runs over TCP and no UDP endpoint
/// exists.
fn empty_udp() -> StatsSnapshot {
    StatsSnapshot {
        sent: SendCounters::default(),
        received: ReceiveCounters::default(),
        srtt_us: 0,
        rttvar_us: 0,
        min_rtt_us: None,
        latest_rtt_us: None,
        rto_us: 0,
        messages_in_flight: 0,
        estimated_loss_rate: 0.0,
        ack_latency_p50_us: None,
        ack_latency_p99_us: None,
        head_of_line_wait_p99_us: None,
    }
}

/// Chat text bytes that crossed the TCP connection, counted by the backend (the core counts only frames and bytes
/// for TCP, since every control message travels there too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct TcpUseful {
    /// Text of this user's messages the server accepted over TCP.
    pub(super) sent: u64,
    /// Text of messages received over TCP: history pages, syncs, and live messages while chat runs over TCP.
    pub(super) received: u64,
}

/// The panel's report from the core's snapshot, `elapsed` after the session started.
pub(super) fn stats_update(stats: ClientStats, elapsed: Duration, useful: TcpUseful) -> StatsUpdate {
    let kernel = stats.tcp.kernel;
    let tcp = TcpStats {
        frames_sent: stats.tcp.frames_sent,
        frames_received: stats.tcp.frames_received,
        bytes_sent: stats.tcp.bytes_sent,
        bytes_received: stats.tcp.bytes_received,
        useful_bytes_sent: useful.sent,
        useful_bytes_received: useful.received,
        kernel_rtt_us: kernel.map(|k| u64::from(k.rtt_us)),
        kernel_rttvar_us: kernel.map(|k| u64::from(k.rttvar_us)),
        kernel_rto_us: kernel.map(|k| u64::from(k.rto_us)),
        kernel_retransmits: kernel.map(|k| u64::from(k.total_retrans)),
    };
    StatsUpdate {
        elapsed,
        udp: stats.udp.unwrap_or_else(empty_udp),
        rtt_samples: stats.udp_rtt_history,
        tcp,
        udp_latency_cdf: stats.latency.udp.cdf,
        tcp_latency_cdf: stats.latency.tcp.cdf,
    }
}

#[cfg(test)]
mod tests {
    use chatlab_proto::control::Transport;
    use chatlab_proto::noise::ServerKey;

    use super::*;
    use crate::stats::{KernelTcpInfo, LatencyStats, LatencySummary, TcpStats as CoreTcp};

    const SERVER: &str = "10.0.0.1:7878";

    #[test]
    fn server_refusals_keep_their_code_and_sentence() {
        let cases = [
            (ClientError::from_server(ErrorCode::UsernameTaken, "ann exists"), ErrorCode::UsernameTaken, "ann exists"),
            (ClientError::from_server(ErrorCode::UnknownUser, "no bob"), ErrorCode::UnknownUser, "no bob"),
            (ClientError::from_server(ErrorCode::UsernameInvalid, "'!'"), ErrorCode::UsernameInvalid, "'!'"),
            (ClientError::from_server(ErrorCode::PasswordInvalid, "short"), ErrorCode::PasswordInvalid, "short"),
            (ClientError::from_server(ErrorCode::TextInvalid, "empty"), ErrorCode::TextInvalid, "empty"),
            (ClientError::from_server(ErrorCode::FloodLimited, "slow"), ErrorCode::FloodLimited, "slow"),
            (ClientError::from_server(ErrorCode::LoginRateLimited, "wait"), ErrorCode::LoginRateLimited, "wait"),
            (ClientError::from_server(ErrorCode::HistoryLimit, "deep"), ErrorCode::HistoryLimit, "deep"),
            (ClientError::from_server(ErrorCode::VersionMismatch, "v9"), ErrorCode::VersionMismatch, "v9"),
        ];
        for (err, code, message) in cases {
            assert_eq!(problem(&err, SERVER), Problem::Refused { code, message: message.into() }, "{err:?}");
        }
    }

    #[test]
    fn refusals_without_a_server_sentence_use_the_cores() {
        for (err, code) in [
            (ClientError::BadCredentials, ErrorCode::BadCredentials),
            (ClientError::NotLoggedIn, ErrorCode::NotLoggedIn),
            (ClientError::AlreadyLoggedIn, ErrorCode::AlreadyLoggedIn),
            (ClientError::TextTooLong { len: 5000, max: 4096 }, ErrorCode::TextTooLong),
        ] {
            assert_eq!(problem(&err, SERVER), Problem::Refused { code, message: err.to_string() });
        }
    }

    #[test]
    fn connection_failures_become_connection_problems() {
        let bad = ClientError::BadAddress { server: "nope".into(), reason: "no port".into() };
        assert_eq!(problem(&bad, "nope"), Problem::BadAddress { address: "nope".into() });
        let unreachable = ClientError::Unreachable { server: SERVER.into(), reason: "refused".into() };
        assert_eq!(
            problem(&unreachable, SERVER),
            Problem::Unreachable { address: SERVER.into(), detail: "refused".into() }
        );
        let timeout = ClientError::Timeout { what: "login".into(), after: Duration::from_secs(10) };
        assert_eq!(problem(&timeout, SERVER), Problem::TimedOut { address: SERVER.into() });
        let down = ClientError::Disconnected { reason: "reset".into() };
        assert_eq!(problem(&down, SERVER), Problem::Disconnected { detail: "reset".into() });
        assert!(matches!(problem(&ClientError::Closed, SERVER), Problem::Disconnected { .. }));
        let stopping = ClientError::from_server(ErrorCode::ServerShuttingDown, "bye");
        assert_eq!(problem(&stopping, SERVER), Problem::Disconnected { detail: "bye".into() });
    }

    #[test]
    fn a_full_outbox_keeps_its_count_for_the_window_to_explain() {
        assert_eq!(problem(&ClientError::OutboxFull { queued: 50 }, SERVER), Problem::OutboxFull { queued: 50 });
    }

    #[test]
    fn local_failures_keep_the_cores_sentence() {
        let key = |b| ServerKey::from_bytes([b; 32]).fingerprint();
        for err in [
            ClientError::KnownServers("cannot read".into()),
            ClientError::Handshake { server: SERVER.into(), reason: "garbage".into() },
            ClientError::Protocol("odd frame".into()),
            ClientError::NoRoom { waited: std::time::Duration::from_secs(10) },
            ClientError::ServerKeyChanged {
                server: SERVER.into(),
                pinned: key(1),
                presented: key(2),
                known_servers: "/k".into(),
            },
        ] {
            assert_eq!(problem(&err, SERVER), Problem::Other(err.to_string()));
        }
    }

    #[test]
    fn transport_reasons_map_to_what_the_window_explains() {
        assert_eq!(transport_reason(&CoreReason::Requested, SERVER), TransportReason::Requested);
        assert_eq!(transport_reason(&CoreReason::UdpConfirmed, SERVER), TransportReason::SessionStart);
        let blocked = CoreReason::UdpBlocked { server: "10.0.0.2:7878".into(), waited: Duration::from_secs(3) };
        assert_eq!(
            transport_reason(&blocked, SERVER),
            TransportReason::UdpUnanswered { address: "10.0.0.2:7878".into() }
        );
        let silent = CoreReason::UdpSilent { silent_for: Duration::from_secs(30) };
        assert_eq!(transport_reason(&silent, SERVER), TransportReason::UdpUnanswered { address: SERVER.into() });
    }

    fn core_stats(udp: Option<StatsSnapshot>, kernel: Option<KernelTcpInfo>) -> ClientStats {
        ClientStats {
            transport: Some(Transport::Udp),
            udp,
            udp_rtt_history: Vec::new(),
            tcp: CoreTcp { frames_sent: 3, bytes_sent: 300, frames_received: 4, bytes_received: 400, kernel },
            latency: LatencyStats {
                udp: LatencySummary { samples: 1, p50_ms: Some(1.0), p99_ms: Some(1.0), cdf: vec![(1.0, 1.0)] },
                tcp: LatencySummary::default(),
            },
            impairment: None,
        }
    }

    #[test]
    fn stats_carry_both_transports_and_both_cdfs() {
        let kernel =
            KernelTcpInfo { rtt_us: 50, rttvar_us: 25, rto_us: 201_000, total_retrans: 7, ..Default::default() };
        let mut udp = empty_udp();
        udp.srtt_us = 900;
        let update = stats_update(
            core_stats(Some(udp), Some(kernel)),
            Duration::from_secs(2),
            TcpUseful { sent: 5, received: 9 },
        );
        assert_eq!(update.elapsed, Duration::from_secs(2));
        assert_eq!(update.udp.srtt_us, 900);
        assert_eq!(update.udp_latency_cdf, vec![(1.0, 1.0)]);
        assert!(update.tcp_latency_cdf.is_empty());
        assert_eq!(
            update.tcp,
            TcpStats {
                frames_sent: 3,
                frames_received: 4,
                bytes_sent: 300,
                bytes_received: 400,
                useful_bytes_sent: 5,
                useful_bytes_received: 9,
                kernel_rtt_us: Some(50),
                kernel_rttvar_us: Some(25),
                kernel_rto_us: Some(201_000),
                kernel_retransmits: Some(7),
            }
        );
    }

    #[test]
    fn stats_without_udp_or_kernel_figures_show_zeros_and_gaps() {
        let update = stats_update(core_stats(None, None), Duration::ZERO, TcpUseful::default());
        assert_eq!(update.udp, empty_udp());
        assert_eq!(update.tcp.kernel_rtt_us, None);
        assert_eq!(update.tcp.kernel_retransmits, None);
    }
}
