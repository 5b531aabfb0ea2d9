//! The statistics as a table of figures, and that table as CSV and JSON files.
//!
//! The statistics panel and the export share one list of figures, [`counter_rows`]: each row has a stable
//! machine name (the CSV's first column, with the unit in the name, as `srtt_us`), a label the panel translates,
//! and a value for UDP and for TCP. A figure TCP cannot report (the kernel hides its acknowledgements) is
//! [`Value::Missing`]: an empty CSV cell, a dash on screen, never a misleading zero.
//!
//! The CSV is one row per figure so that a spreadsheet opens it directly and two runs can be pasted side by side
//! for a lab report. The JSON holds everything, including the RTT samples, the time series behind the plots and the
//! latency CDFs, for students who plot with their own tools.

use std::path::Path;

use serde::Serialize;

use super::backend::{CdfPoint, StatsUpdate, TcpStats};
use super::i18n::Texts;
use chatlab_proto::stats::{RttSample, StatsSnapshot};

/// One figure's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A count of packets, bytes, messages.
    Count(u64),
    /// A duration in microseconds.
    Micros(u64),
    /// A fraction between 0 and 1.
    Ratio(f64),
    /// Not measured for this transport.
    Missing,
}

impl Value {
    fn csv(self) -> String {
        match self {
            Value::Count(n) | Value::Micros(n) => n.to_string(),
            Value::Ratio(x) => format!("{x:.6}"),
            Value::Missing => String::new(),
        }
    }

    /// The value as the panel shows it: durations in milliseconds, ratios in percent.
    pub fn display(self, t: &Texts) -> String {
        match self {
            Value::Count(n) => n.to_string(),
            Value::Micros(us) => format!("{:.1} {}", us as f64 / 1000.0, t.unit_ms),
            Value::Ratio(x) => format!("{:.2} %", x * 100.0),
            Value::Missing => String::from("—"),
        }
    }
}

/// One row of the counters table.
#[derive(Debug, Clone, Copy)]
pub struct CounterRow {
    /// Stable machine name, the CSV's first column.
    pub key: &'static str,
    /// The row's label in a language.
    pub label: fn(&Texts) -> &'static str,
    /// The UDP figure.
    pub udp: Value,
    /// The TCP figure.
    pub tcp: Value,
}

fn opt_micros(value: Option<u64>) -> Value {
    value.map_or(Value::Missing, Value::Micros)
}

fn opt_count(value: Option<u64>) -> Value {
    value.map_or(Value::Missing, Value::Count)
}

/// The figures of `update`, in the order the panel shows them.
pub fn counter_rows(update: &StatsUpdate) -> Vec<CounterRow> {
    let u = &update.udp;
    let tcp = &update.tcp;
    let row = |key, label: fn(&Texts) -> &'static str, udp, tcp| CounterRow { key, label, udp, tcp };
    use Value::{Count, Missing, Ratio};
    vec![
        row("packets_sent", |t| t.row_packets_sent, Count(u.sent.packets), Count(tcp.frames_sent)),
        row("packets_received", |t| t.row_packets_received, Count(u.received.packets), Count(tcp.frames_received)),
        row("bytes_sent", |t| t.row_bytes_sent, Count(u.sent.bytes), Count(tcp.bytes_sent)),
        row("bytes_received", |t| t.row_bytes_received, Count(u.received.bytes), Count(tcp.bytes_received)),
        row("useful_bytes_sent", |t| t.row_useful_sent, Count(u.sent.useful_bytes), Count(tcp.useful_bytes_sent)),
        row(
            "useful_bytes_received",
            |t| t.row_useful_received,
            Count(u.received.useful_bytes),
            Count(tcp.useful_bytes_received),
        ),
        row("acks_sent", |t| t.row_acks_sent, Count(u.sent.acks), Missing),
        row("acks_received", |t| t.row_acks_received, Count(u.received.acks), Missing),
        row("retransmissions_timeout", |t| t.row_retx_timeout, Count(u.sent.retransmissions_timeout), Missing),
        row("retransmissions_fast", |t| t.row_retx_fast, Count(u.sent.retransmissions_fast), Missing),
        row("retransmissions_spurious", |t| t.row_retx_spurious, Count(u.sent.spurious_retransmissions), Missing),
        row("retransmissions_kernel", |t| t.row_retx_kernel, Missing, opt_count(tcp.kernel_retransmits)),
        row("duplicates", |t| t.row_duplicates, Count(u.received.duplicate_packets), Missing),
        row("out_of_order", |t| t.row_out_of_order, Count(u.received.out_of_order_packets), Missing),
        row(
            "rejected",
            |t| t.row_rejected,
            Count(
                u.received
                    .rejected_replayed
                    .saturating_add(u.received.rejected_authentication)
                    .saturating_add(u.received.rejected_malformed),
            ),
            Missing,
        ),
        row("loss_rate", |t| t.row_loss_rate, Ratio(u.estimated_loss_rate), Missing),
        row("srtt_us", |t| t.row_srtt, Value::Micros(u.srtt_us), opt_micros(tcp.kernel_rtt_us)),
        row("rttvar_us", |t| t.row_rttvar, Value::Micros(u.rttvar_us), opt_micros(tcp.kernel_rttvar_us)),
        row("min_rtt_us", |t| t.row_min_rtt, opt_micros(u.min_rtt_us), Missing),
        row("rto_us", |t| t.row_rto, Value::Micros(u.rto_us), opt_micros(tcp.kernel_rto_us)),
        row("messages_in_flight", |t| t.row_in_flight, Count(u.messages_in_flight), Missing),
        row("ack_latency_p50_us", |t| t.row_latency_p50, opt_micros(u.ack_latency_p50_us), Missing),
        row("ack_latency_p99_us", |t| t.row_latency_p99, opt_micros(u.ack_latency_p99_us), Missing),
        row("head_of_line_wait_p99_us", |t| t.row_hol_p99, opt_micros(u.head_of_line_wait_p99_us), Missing),
    ]
}

/// The counters as CSV: a header line `figure,udp,tcp`, then one line per figure.
pub fn to_csv(update: &StatsUpdate) -> String {
    let mut out = String::from("figure,udp,tcp\n");
    out.push_str(&format!("elapsed_s,{:.3},\n", update.elapsed.as_secs_f64()));
    for row in counter_rows(update) {
        out.push_str(&format!("{},{},{}\n", row.key, row.udp.csv(), row.tcp.csv()));
    }
    out
}

/// One point of the packets-over-time series the panel plots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// Seconds since the session started.
    pub t_s: f64,
    /// Packets sent per second over the last interval.
    pub packets_per_s: f64,
    /// Retransmissions (timeout and fast) per second over the last interval.
    pub retransmissions_per_s: f64,
}

#[derive(Serialize)]
struct JsonExport<'a> {
    elapsed_s: f64,
    udp: &'a StatsSnapshot,
    tcp: &'a TcpStats,
    rtt_samples: &'a [RttSample],
    udp_latency_cdf: &'a [CdfPoint],
    tcp_latency_cdf: &'a [CdfPoint],
    series: &'a [SeriesPoint],
}

/// Everything as pretty-printed JSON.
///
/// # Errors
/// Only if serialisation failed, which these plain types do not.
pub fn to_json(update: &StatsUpdate, series: &[SeriesPoint]) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&JsonExport {
        elapsed_s: update.elapsed.as_secs_f64(),
        udp: &update.udp,
        tcp: &update.tcp,
        rtt_samples: &update.rtt_samples,
        udp_latency_cdf: &update.udp_latency_cdf,
        tcp_latency_cdf: &update.tcp_latency_cdf,
        series,
    })
}

/// Writes `contents` to `path`. A relative path is taken from the current directory.
pub fn write(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use chatlab_proto::stats::{ReceiveCounters, SendCounters};

    use super::*;

    pub(crate) fn sample_update(packets: u64) -> StatsUpdate {
        StatsUpdate {
            elapsed: Duration::from_millis(2500),
            udp: StatsSnapshot {
                sent: SendCounters { packets, retransmissions_timeout: 2, ..Default::default() },
                received: ReceiveCounters { duplicate_packets: 1, ..Default::default() },
                srtt_us: 12_345,
                rttvar_us: 2_000,
                min_rtt_us: Some(9_000),
                latest_rtt_us: Some(11_000),
                rto_us: 20_345,
                messages_in_flight: 1,
                estimated_loss_rate: 0.05,
                ack_latency_p50_us: Some(10_000),
                ack_latency_p99_us: None,
                head_of_line_wait_p99_us: None,
            },
            rtt_samples: vec![RttSample {
                at: Duration::from_millis(100),
                rtt: Duration::from_millis(11),
                srtt: Duration::from_millis(12),
                rto: Duration::from_millis(20),
            }],
            tcp: TcpStats { frames_sent: 4, kernel_rtt_us: Some(800), ..TcpStats::default() },
            udp_latency_cdf: vec![(10.0, 0.5), (12.0, 1.0)],
            tcp_latency_cdf: Vec::new(),
        }
    }

    #[test]
    fn csv_has_one_line_per_figure_with_empty_cells_for_missing_values() {
        let csv = to_csv(&sample_update(42));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.first(), Some(&"figure,udp,tcp"));
        assert_eq!(lines.len(), 2 + counter_rows(&sample_update(42)).len());
        assert!(lines.contains(&"packets_sent,42,4"));
        assert!(lines.contains(&"acks_sent,0,"));
        assert!(lines.contains(&"srtt_us,12345,800"));
        assert!(lines.contains(&"loss_rate,0.050000,"));
        assert!(lines.contains(&"elapsed_s,2.500,"));
    }

    #[test]
    fn json_holds_snapshot_samples_and_series() {
        let series = [SeriesPoint { t_s: 1.0, packets_per_s: 10.0, retransmissions_per_s: 1.0 }];
        let json = to_json(&sample_update(7), &series).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["udp"]["sent"]["packets"], 7);
        assert_eq!(value["tcp"]["kernel_rtt_us"], 800);
        assert_eq!(value["series"][0]["packets_per_s"], 10.0);
        assert_eq!(value["rtt_samples"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn values_display_with_units() {
        let t = crate::ui::i18n::Lang::En.texts();
        assert_eq!(Value::Micros(12_345).display(t), "12.3 ms");
        assert_eq!(Value::Ratio(0.05).display(t), "5.00 %");
        assert_eq!(Value::Missing.display(t), "—");
        assert_eq!(Value::Count(3).display(t), "3");
    }

    #[test]
    fn writing_into_a_missing_folder_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write(&dir.path().join("no/such/dir/stats.csv"), "x").is_err());
        let ok = dir.path().join("stats.csv");
        write(&ok, "x").unwrap();
        assert_eq!(std::fs::read_to_string(ok).unwrap(), "x");
    }
}
