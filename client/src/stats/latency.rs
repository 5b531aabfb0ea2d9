//! Delivery latency per transport: how long a person waits between pressing Enter and the "sent" tick.
//!
//! The lab's central comparison is "UDP with chatlab's engine against kernel TCP under loss". Averages hide the
//! answer: at 10 % loss both transports deliver most messages within one round trip, and they differ in the *tail*,
//! the few messages that meet a loss. TCP repairs a lost segment only after its retransmission timeout (never below
//! 200 ms on Linux) or three duplicate acknowledgements, and every message queued behind the gap waits with it
//! (head-of-line blocking); chatlab's engine retransmits after a few milliseconds and one lost message holds up
//! nobody on another conversation. The plot that shows this is the cumulative distribution (CDF) of latencies: for
//! each latency `x`, the fraction of messages that took at most `x`. Where the TCP curve flattens below 1.0 and only
//! reaches it hundreds of milliseconds later is where a chat feels broken.
//!
//! What is measured: for every [`ClientHandle::send`](crate::ClientHandle::send), the time from the call to the
//! server's acceptance (`Accepted` over UDP, `ChatAccepted` over TCP), which the server sends only once the message is
//! durably stored. That is one full round trip plus the server's commit, and it is what the person waits for. The
//! sample is filed under the transport that carried the accepted copy. A message held while the UDP probe decided the
//! transport, or resent over TCP after UDP failed, counts its whole wait: that is the latency its sender saw.
//!
//! Samples go into a [`LatencyHistogram`] per transport (HdrHistogram: a few instructions per sample, bounded memory
//! whatever the number of messages), kept for the life of the client across reconnects, so a class can run a whole
//! experiment and read one curve per transport.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use chatlab_proto::control::Transport;
use chatlab_proto::stats::LatencyHistogram;

/// Most points a CDF carries in a snapshot. A histogram holds one bucket per distinct recorded value (at 0.1 %
/// resolution), which can be thousands; a plot a few hundred pixels wide shows no more than this, and a snapshot
/// sent to the face every second stays small.
pub const MAX_CDF_POINTS: usize = 256;

/// The quantile reported as the typical latency.
const MEDIAN: f64 = 0.5;

/// The quantile reported as the tail: one message in a hundred is slower.
const TAIL: f64 = 0.99;

/// Microseconds in a millisecond, to report latencies in the unit people read.
const MICROS_PER_MILLI: f64 = 1000.0;

/// One transport's delivery latencies, summarised for the statistics panel and for export.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Messages measured.
    pub samples: u64,
    /// Median latency, milliseconds (`None` before the first sample).
    pub p50_ms: Option<f64>,
    /// 99th percentile, milliseconds.
    pub p99_ms: Option<f64>,
    /// The cumulative distribution as `(latency in ms, fraction of messages at or below it)`, latencies increasing,
    /// at most [`MAX_CDF_POINTS`] points, the last one at fraction 1.0. Empty before the first sample.
    pub cdf: Vec<(f64, f64)>,
}

/// Delivery latencies of both transports. Part of [`ClientStats`](super::ClientStats).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Messages accepted over UDP.
    pub udp: LatencySummary,
    /// Messages accepted over TCP.
    pub tcp: LatencySummary,
}

/// The client core's recorder: one histogram per transport.
#[derive(Debug, Clone, Default)]
pub(crate) struct LatencyRecorder {
    udp: LatencyHistogram,
    tcp: LatencyHistogram,
}

impl LatencyRecorder {
    /// Records one message accepted over `transport` after `latency`.
    pub(crate) fn record(&mut self, transport: Transport, latency: Duration) {
        match transport {
            Transport::Udp => self.udp.record(latency),
            Transport::Tcp => self.tcp.record(latency),
        }
    }

    /// Both summaries.
    pub(crate) fn stats(&self) -> LatencyStats {
        LatencyStats { udp: summarise(&self.udp), tcp: summarise(&self.tcp) }
    }
}

/// One histogram as percentiles and a thinned CDF.
fn summarise(histogram: &LatencyHistogram) -> LatencySummary {
    let cdf = histogram.cdf().into_iter().map(|(latency, fraction)| (millis(latency), fraction)).collect();
    LatencySummary {
        samples: histogram.len(),
        p50_ms: histogram.quantile(MEDIAN).map(millis),
        p99_ms: histogram.quantile(TAIL).map(millis),
        cdf: thin(cdf, MAX_CDF_POINTS),
    }
}

/// A duration in milliseconds, with microsecond resolution.
fn millis(duration: Duration) -> f64 {
    duration.as_micros() as f64 / MICROS_PER_MILLI
}

/// Keeps at most `max` points of a CDF, evenly spaced by index, always keeping the last one (fraction 1.0), so the
/// curve keeps its shape and still ends where it must.
fn thin(points: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max == 0 {
        return points;
    }
    let last = points.len() - 1;
    // Room for `max - 1` points picked by stride, plus the last one.
    let Some(picked) = max.checked_sub(1).filter(|picked| *picked > 0) else {
        return points.last().copied().into_iter().collect();
    };
    let stride = last.div_ceil(picked).max(1);
    let mut thinned: Vec<(f64, f64)> = points.iter().step_by(stride).copied().collect();
    if let Some(&end) = points.last() {
        if thinned.last() != Some(&end) {
            thinned.push(end);
        }
    }
    thinned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_recorded_gives_empty_summaries() {
        let stats = LatencyRecorder::default().stats();
        assert_eq!(stats, LatencyStats::default());
        assert_eq!(stats.udp.p50_ms, None);
        assert!(stats.tcp.cdf.is_empty());
    }

    #[test]
    fn samples_go_to_their_transport() {
        let mut recorder = LatencyRecorder::default();
        recorder.record(Transport::Udp, Duration::from_millis(2));
        recorder.record(Transport::Udp, Duration::from_millis(4));
        recorder.record(Transport::Tcp, Duration::from_millis(300));
        let stats = recorder.stats();
        assert_eq!((stats.udp.samples, stats.tcp.samples), (2, 1));
        // The histogram keeps two significant digits: within 1 % of the recorded value.
        let p50 = stats.udp.p50_ms.expect("samples");
        assert!((p50 - 2.0).abs() < 0.02, "{p50}");
        let tcp_p99 = stats.tcp.p99_ms.expect("samples");
        assert!((tcp_p99 - 300.0).abs() < 3.0, "{tcp_p99}");
        assert_eq!(stats.udp.cdf.len(), 2);
        assert_eq!(stats.udp.cdf.last().map(|p| p.1), Some(1.0));
        assert_eq!(stats.tcp.cdf.last().map(|p| p.1), Some(1.0));
    }

    #[test]
    fn a_long_cdf_is_thinned_but_keeps_its_ends() {
        let mut recorder = LatencyRecorder::default();
        // Ten thousand distinct values: far more buckets than MAX_CDF_POINTS.
        for us in 1..=10_000u64 {
            recorder.record(Transport::Tcp, Duration::from_micros(us * 37));
        }
        let cdf = recorder.stats().tcp.cdf;
        assert!(cdf.len() <= MAX_CDF_POINTS && cdf.len() > MAX_CDF_POINTS / 2, "{}", cdf.len());
        assert_eq!(cdf.last().map(|p| p.1), Some(1.0));
        assert!(cdf.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1), "increasing");
        assert!(cdf.first().is_some_and(|p| p.0 < 0.1), "starts near the fastest sample: {:?}", cdf.first());
    }

    #[test]
    fn thinning_edge_cases() {
        let points: Vec<(f64, f64)> = (1..=10).map(|i| (f64::from(i), f64::from(i) / 10.0)).collect();
        assert_eq!(thin(points.clone(), 10), points, "short enough: unchanged");
        assert_eq!(thin(points.clone(), 0), points, "zero means no limit rather than nothing");
        let two = thin(points.clone(), 2);
        assert_eq!(two, [(1.0, 0.1), (10.0, 1.0)]);
        let four = thin(points.clone(), 4);
        assert!(four.len() <= 4, "{four:?}");
        assert_eq!(four.last(), Some(&(10.0, 1.0)));
        assert_eq!(thin(points.clone(), 1), [(10.0, 1.0)], "one point: the end of the curve");
        assert_eq!(thin(Vec::new(), 3), Vec::new());
    }

    #[test]
    fn summaries_serialise_for_export() {
        let mut recorder = LatencyRecorder::default();
        recorder.record(Transport::Udp, Duration::from_micros(1500));
        let json = serde_json::to_string(&recorder.stats()).expect("serialise");
        assert!(json.contains("\"samples\":1") && json.contains("\"p50_ms\":1.5"), "{json}");
        let back: LatencyStats = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, recorder.stats());
    }
}
