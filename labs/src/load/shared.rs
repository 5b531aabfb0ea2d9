//! What every bot of a run shares: the run's identity, its clock, the delivery ledger and the live counters.

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use tokio::time::Instant;

use super::config::LoadConfig;
use super::ledger::Ledger;

/// Largest latency a histogram holds, in microseconds: ten minutes, longer than any request may wait. A larger
/// value is recorded as this one (saturating), never dropped.
pub const MAX_LATENCY_US: u64 = 600_000_000;

/// Significant decimal digits of the latency histograms: 2 keeps every percentile within 1 % of the truth (0.05 ms of
/// a 5 ms p99) in about 24 KiB per histogram. Every bot keeps two, so a 1 000-bot run holds 48 MiB of them; three
/// digits would cost ten times as much for a precision no network latency has.
const LATENCY_DIGITS: u8 = 2;

/// An empty latency histogram in microseconds.
pub fn latency_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low, digits <= 5).
    Histogram::new_with_bounds(1, MAX_LATENCY_US, LATENCY_DIGITS).expect("constant histogram bounds are valid")
}

/// Counters the progress line reads while the run goes on; the report's figures come from the bots' own tallies.
#[derive(Debug, Default)]
pub struct Live {
    /// Bots that logged in.
    pub logged_in: AtomicU64,
    /// Bots whose connect, registration or login failed.
    pub setup_failed: AtomicU64,
    /// Chat messages handed to `send`.
    pub attempted: AtomicU64,
    /// Chat messages the server accepted.
    pub accepted: AtomicU64,
    /// Chat messages whose `send` failed.
    pub failed: AtomicU64,
    /// Chat messages of this run received by a bot (first deliveries only).
    pub deliveries: AtomicU64,
}

impl Live {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Shared by every bot of one run.
#[derive(Debug)]
pub struct Shared {
    /// The run's settings.
    pub config: LoadConfig,
    /// Random number naming this run inside every text, so that nothing else is counted.
    pub run_id: u32,
    /// The run's clock: message stamps are microseconds since this instant.
    pub started: Instant,
    /// Who got which message.
    pub ledger: Ledger,
    /// Counters for the progress line.
    pub live: Live,
}

impl Shared {
    /// Shared state for a run of `config`.
    pub fn new(config: LoadConfig, run_id: u32) -> Shared {
        let ledger = Ledger::new(config.total_bots());
        Shared { config, run_id, started: Instant::now(), ledger, live: Live::default() }
    }

    /// Microseconds since the run started.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}
