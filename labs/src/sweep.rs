//! Parameter sweeps: the same conversation simulated once per value of one knob.
//!
//! The classic first lab: send 10 000 chat messages at 0 %, 5 %, 10 % and 20 % loss and watch the retransmissions
//! and the tail latency grow. Because the simulation is deterministic, the table is the same on every machine, and
//! a class can compare its predictions (each loss costs about one RTO) with the measured p99.

use std::fmt::Write as _;
use std::time::Duration;

use chatlab_proto::sim::{self, Scenario, SimConfig, SimReport};
use serde::Serialize;

/// The knob a sweep varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Knob {
    /// Loss probability in each direction (0..1).
    Loss,
    /// Uniform jitter in milliseconds.
    JitterMs,
    /// Lowest retransmission timeout in milliseconds.
    MinRtoMs,
    /// Probability that a datagram is duplicated.
    Duplicate,
    /// Probability that a datagram is held back and arrives after later ones.
    Reorder,
}

/// One row: the value of the knob and what the simulation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub knob: String,
    pub value: f64,
    #[serde(flatten)]
    pub report: SimReport,
}

/// Why a sweep could not run.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepError(pub String);

impl std::fmt::Display for SweepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SweepError {}

fn millis(ms: f64) -> Duration {
    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
}

/// The simulation settings for one value of the knob.
pub fn config_for(base: &Scenario, knob: Knob, value: f64) -> Result<SimConfig, SweepError> {
    let mut s = base.clone();
    match knob {
        Knob::Loss => s.loss = value,
        Knob::JitterMs => s.jitter = millis(value),
        Knob::MinRtoMs => s.min_rto = Some(millis(value)),
        Knob::Duplicate => s.duplicate = value,
        Knob::Reorder => s.reorder = value,
    }
    s.to_config().map_err(|e| SweepError(e.to_string()))
}

/// Runs one simulation per value.
pub fn run(base: &Scenario, knob: Knob, values: &[f64]) -> Result<Vec<Row>, SweepError> {
    let name = format!("{knob:?}");
    values
        .iter()
        .map(|&value| {
            let config = config_for(base, knob, value)?;
            let report = sim::run(&config).map_err(|e| SweepError(format!("{name} = {value}: {e}")))?;
            Ok(Row { knob: name.clone(), value, report })
        })
        .collect()
}

/// Column headings of the table and CSV forms.
const COLUMNS: [&str; 10] = [
    "value",
    "delivered",
    "retransmissions",
    "spurious",
    "held_back",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "ip_bytes_per_msg",
    "complete",
];

fn cells(row: &Row) -> [String; 10] {
    let r = &row.report;
    [
        format!("{}", row.value),
        r.delivered.to_string(),
        r.retransmissions.to_string(),
        r.spurious_retransmissions.to_string(),
        r.messages_held_back.to_string(),
        format!("{:.2}", r.p50_ms),
        format!("{:.2}", r.p99_ms),
        format!("{:.2}", r.p999_ms),
        format!("{:.1}", r.ip_bytes_per_message),
        r.complete.to_string(),
    ]
}

/// A plain-text table with aligned columns.
pub fn to_table(rows: &[Row]) -> String {
    let mut all: Vec<[String; 10]> = vec![COLUMNS.map(String::from)];
    all.extend(rows.iter().map(cells));
    let widths: Vec<usize> = (0..COLUMNS.len()).map(|c| all.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &all {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:>w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  "));
    }
    out
}

/// CSV with a header line.
pub fn to_csv(rows: &[Row]) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for row in rows {
        out.push_str(&cells(row).join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Scenario {
        Scenario { messages: 500, ..Scenario::default() }
    }

    #[test]
    fn more_loss_costs_more_retransmissions() {
        let rows = run(&base(), Knob::Loss, &[0.0, 0.1, 0.3]).unwrap();
        assert!(rows.iter().all(|r| r.report.complete && r.report.delivered == 500));
        assert_eq!(rows[0].report.retransmissions, 0);
        assert!(rows[0].report.retransmissions < rows[1].report.retransmissions);
        assert!(rows[1].report.retransmissions < rows[2].report.retransmissions);
    }

    #[test]
    fn a_higher_rto_floor_lengthens_the_tail() {
        let lossy = Scenario { loss: 0.1, ..base() };
        let rows = run(&lossy, Knob::MinRtoMs, &[2.0, 200.0]).unwrap();
        // With a message every 5 ms most losses are caught by fast retransmit either way; the ones the timer must
        // catch (the last message before a pause, a lost retransmission) sit in the far tail.
        assert!(rows[1].report.p999_ms > rows[0].report.p999_ms * 10.0, "{:?}", rows);
    }

    #[test]
    fn bad_values_are_reported_with_the_knob() {
        let err = run(&base(), Knob::Loss, &[1.5]).unwrap_err();
        assert!(err.0.contains("Loss = 1.5"), "{err}");
    }

    #[test]
    fn table_and_csv_have_a_row_per_value() {
        let rows = run(&base(), Knob::JitterMs, &[0.0, 5.0]).unwrap();
        assert_eq!(to_csv(&rows).lines().count(), 3);
        assert_eq!(to_table(&rows).lines().count(), 3);
        assert!(to_csv(&rows).starts_with("value,delivered,"));
    }
}
