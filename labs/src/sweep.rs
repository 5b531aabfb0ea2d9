//! Parameter sweeps: the same conversation simulated once per value of one knob.
//!
//! The classic first lab: send 10 000 chat messages at 0 %, 5 %, 10 % and 20 % loss and watch the retransmissions
//! and the tail latency grow. Because the simulation is deterministic, the table is the same on every machine, and
//! a class can compare its predictions (each loss costs about one RTO) with the measured p99.

use std::fmt::Write as _;
use std::time::Duration;

use chatlab_proto::engine::{EngineConfig, Ordering};
use chatlab_proto::impair::{GilbertElliott, ImpairmentConfig, LossModel};
use chatlab_proto::sim::{self, SimConfig, SimReport};
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

/// Everything fixed during a sweep.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub messages: u64,
    pub size: usize,
    pub interval: Duration,
    pub loss: f64,
    pub burst: f64,
    pub delay: Duration,
    pub jitter: Duration,
    pub duplicate: f64,
    pub reorder: f64,
    pub min_rto: Option<Duration>,
    pub unordered: bool,
    pub seed: u64,
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
pub fn config_for(base: &Baseline, knob: Knob, value: f64) -> Result<SimConfig, SweepError> {
    let mut b = base.clone();
    match knob {
        Knob::Loss => b.loss = value,
        Knob::JitterMs => b.jitter = millis(value),
        Knob::MinRtoMs => b.min_rto = Some(millis(value)),
        Knob::Duplicate => b.duplicate = value,
        Knob::Reorder => b.reorder = value,
    }
    let loss = if b.loss <= 0.0 {
        LossModel::None
    } else if b.burst <= 1.0 {
        LossModel::Bernoulli { p: b.loss }
    } else {
        LossModel::GilbertElliott(
            GilbertElliott::from_mean_loss_and_burst(b.loss, b.burst).map_err(|e| SweepError(e.to_string()))?,
        )
    };
    let direction = |seed: u64| ImpairmentConfig {
        loss,
        delay: b.delay,
        jitter: b.jitter,
        duplicate: b.duplicate,
        reorder: b.reorder,
        seed,
        ..ImpairmentConfig::default()
    };
    let mut engine = EngineConfig {
        ordering: if b.unordered { Ordering::Unordered } else { Ordering::InOrder },
        ..EngineConfig::default()
    };
    if let Some(min_rto) = b.min_rto {
        engine.min_rto = min_rto;
        engine.max_rto = engine.max_rto.max(min_rto);
    }
    Ok(SimConfig {
        messages: b.messages,
        message_bytes: b.size,
        interval: b.interval,
        streams: 1,
        forward: direction(b.seed.wrapping_mul(2)),
        backward: direction(b.seed.wrapping_mul(2).wrapping_add(1)),
        engine,
    })
}

/// Runs one simulation per value.
pub fn run(base: &Baseline, knob: Knob, values: &[f64]) -> Result<Vec<Row>, SweepError> {
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

    fn base() -> Baseline {
        Baseline {
            messages: 500,
            size: 64,
            interval: Duration::from_millis(5),
            loss: 0.0,
            burst: 1.0,
            delay: Duration::from_micros(50),
            jitter: Duration::ZERO,
            duplicate: 0.0,
            reorder: 0.0,
            min_rto: None,
            unordered: false,
            seed: 1,
        }
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
        let lossy = Baseline { loss: 0.1, ..base() };
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
