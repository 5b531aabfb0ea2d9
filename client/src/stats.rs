//! The client's statistics: the UDP engine's figures beside the TCP control channel's.
//!
//! chatlab exists to compare two ways of carrying chat. The UDP side counts everything itself (the proto crate's
//! [`StatsSnapshot`]); the TCP side is the kernel's business, so the client counts what it can see from user space
//! (frames and bytes it wrote and read) and, on Linux, asks the kernel for its own view of the connection with the
//! `TCP_INFO` socket option ([`crate::tcp_info`]): smoothed RTT, RTT variance, retransmission timeout and
//! retransmitted segments, the figures that show TCP's recovery from loss.
//!
//! Beside them sit two figures that belong to neither transport alone: the delivery latency of every message on
//! each transport ([`LatencyStats`], the "UDP against TCP" CDF), and what the client's own impaired UDP path did to its
//! packets ([`ImpairmentStats`], see [`ClientHandle::set_impairment`](crate::ClientHandle::set_impairment)), so a
//! class can set the network's loss next to the engine's retransmissions and see that every drop was repaired.
//!
//! Everything here is `Serialize`: the desktop app exports a snapshot as JSON or CSV, the CLI prints it with
//! `--json`.

mod latency;

use serde::{Deserialize, Serialize};

use chatlab_proto::control::Transport;
use chatlab_proto::impair::{ImpairmentConfig, LinkStats};
use chatlab_proto::stats::{RttSample, StatsSnapshot};

pub(crate) use latency::LatencyRecorder;
pub use latency::{LatencyStats, LatencySummary, MAX_CDF_POINTS};

/// What the kernel says about the TCP connection (Linux `TCP_INFO`); absent on other systems.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelTcpInfo {
    /// Smoothed RTT, microseconds.
    pub rtt_us: u32,
    /// RTT variance, microseconds.
    pub rttvar_us: u32,
    /// Current retransmission timeout, microseconds (Linux never goes below 200 ms: the floor chatlab's engine
    /// avoids).
    pub rto_us: u32,
    /// Segments currently being retransmitted.
    pub retransmits: u8,
    /// Segments retransmitted over the connection's life.
    pub total_retrans: u32,
    /// Segments considered lost right now.
    pub lost: u32,
}

/// The TCP control channel's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpStats {
    /// Frames written (each one Noise message: one control message).
    pub frames_sent: u64,
    /// Bytes written, length prefixes and Noise tags included (TCP/IP headers not).
    pub bytes_sent: u64,
    /// Frames read.
    pub frames_received: u64,
    /// Bytes read.
    pub bytes_received: u64,
    /// The kernel's view, where available and connected.
    pub kernel: Option<KernelTcpInfo>,
}

/// One direction of the client's impaired UDP path: the settings in force and what the link did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpairedDirection {
    /// The impairment applied now (a default config means this direction is no longer impaired).
    pub config: ImpairmentConfig,
    /// Packets offered, delivered, dropped by cause, duplicated, corrupted, reordered, since the UDP task started.
    /// [`LinkStats::dropped`] sums the drops.
    pub link: LinkStats,
}

/// What the client's own impaired UDP path did, both ways. Present while a UDP task runs with an impaired path
/// (from the first non-default setting of its session on; a later reset to the default keeps the counts).
///
/// Compare `outgoing.link.dropped_loss` with the engine's `sent.retransmissions_timeout + retransmissions_fast`:
/// every drop of a message must be repaired by a retransmission, and retransmissions beyond the drops are the cost
/// of lost acknowledgements (`incoming` drops) and of spurious retransmissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpairmentStats {
    /// Datagrams from this client to the server.
    pub outgoing: ImpairedDirection,
    /// Datagrams from the server to this client, impaired before the engine sees them.
    pub incoming: ImpairedDirection,
}

/// A snapshot of both transports. Answer of [`ClientHandle::stats`](crate::ClientHandle::stats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientStats {
    /// The transport chat uses now (`None` when not logged in).
    pub transport: Option<Transport>,
    /// The UDP engine's statistics, while a UDP endpoint exists: packets, bytes and useful bytes each way, acks,
    /// retransmissions by cause, duplicates, out-of-order arrivals, rejected datagrams, estimated loss rate, SRTT,
    /// RTTVAR, RTO. Counters restart with each session's endpoint.
    pub udp: Option<StatsSnapshot>,
    /// The engine's recent RTT samples, oldest first, for plotting RTT with its SRTT/RTO band.
    pub udp_rtt_history: Vec<RttSample>,
    /// The control channel's statistics (of the current connection; counters restart after a reconnect).
    pub tcp: TcpStats,
    /// Delivery latency of this client's messages per transport (for the client's whole life).
    pub latency: LatencyStats,
    /// The client's impaired UDP path, while it has one.
    pub impairment: Option<ImpairmentStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_serialise_to_json_and_back() {
        let stats = ClientStats {
            transport: Some(Transport::Tcp),
            udp: None,
            udp_rtt_history: Vec::new(),
            tcp: TcpStats {
                frames_sent: 3,
                bytes_sent: 120,
                frames_received: 4,
                bytes_received: 200,
                kernel: Some(KernelTcpInfo { rtt_us: 50, ..KernelTcpInfo::default() }),
            },
            latency: LatencyStats {
                udp: LatencySummary::default(),
                tcp: LatencySummary { samples: 1, p50_ms: Some(2.5), p99_ms: Some(2.5), cdf: vec![(2.5, 1.0)] },
            },
            impairment: Some(ImpairmentStats {
                outgoing: ImpairedDirection {
                    config: ImpairmentConfig {
                        loss: chatlab_proto::impair::LossModel::Bernoulli { p: 0.3 },
                        ..ImpairmentConfig::default()
                    },
                    link: LinkStats { offered: 10, dropped_loss: 3, ..LinkStats::default() },
                },
                incoming: ImpairedDirection { config: ImpairmentConfig::default(), link: LinkStats::default() },
            }),
        };
        let json = serde_json::to_string(&stats).expect("serialise");
        assert!(json.contains("\"frames_sent\":3"), "{json}");
        assert!(json.contains("\"rtt_us\":50"), "{json}");
        assert!(json.contains("\"cdf\":[[2.5,1.0]]"), "{json}");
        assert!(json.contains("\"dropped_loss\":3"), "{json}");
        let back: ClientStats = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, stats);
    }
}
