//! The client's statistics: the UDP engine's figures beside the TCP control channel's.
//!
//! chatlab exists to compare two ways of carrying chat. The UDP side counts everything itself (the proto crate's
//! [`StatsSnapshot`]); the TCP side is the kernel's business, so the client counts what it can see from user space
//! (frames and bytes it wrote and read) and, on Linux, asks the kernel for its own view of the connection with the
//! `TCP_INFO` socket option ([`crate::tcp_info`]): smoothed RTT, RTT variance, retransmission timeout and
//! retransmitted segments, the figures that show TCP's recovery from loss.

use serde::{Deserialize, Serialize};

use chatlab_proto::control::Transport;
use chatlab_proto::stats::{RttSample, StatsSnapshot};

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

/// A snapshot of both transports. Answer of [`ClientHandle::stats`](crate::ClientHandle::stats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientStats {
    /// The transport chat uses now (`None` when not logged in).
    pub transport: Option<Transport>,
    /// The UDP engine's statistics, while a UDP endpoint exists.
    pub udp: Option<StatsSnapshot>,
    /// The engine's recent RTT samples, oldest first, for plotting RTT with its SRTT/RTO band.
    pub udp_rtt_history: Vec<RttSample>,
    /// The control channel's statistics (of the current connection; counters restart after a reconnect).
    pub tcp: TcpStats,
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
        };
        let json = serde_json::to_string(&stats).expect("serialise");
        assert!(json.contains("\"frames_sent\":3"), "{json}");
        assert!(json.contains("\"rtt_us\":50"), "{json}");
        let back: ClientStats = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, stats);
    }
}
