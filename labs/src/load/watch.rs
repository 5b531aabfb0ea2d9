//! Watching a process through a run: its memory and CPU before, at the peak, and after.
//!
//! *Before* and *after* are each one quiet second: the resident memory at its end and the CPU used during it. The
//! *peak* comes from a reading every [`SAMPLE_INTERVAL`] while the bots work: the largest resident memory seen (and
//! the kernel's own high-water mark, which also catches a spike between two readings) and the busiest interval.
//! Memory that is still there *after* everyone logged out is what the server kept: caches, allocator arenas, or a
//! leak.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::procstat::{self, Sample};

/// Time between two readings while the run goes on. Half a second resolves a login burst or the start of the chat
/// phase and costs two small file reads a second.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);

/// Length of the quiet windows before and after the run. One second holds a hundred clock ticks, so the CPU figure
/// is exact to one percent of a core.
pub const QUIET_WINDOW: Duration = Duration::from_secs(1);

/// Memory and CPU over one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Reading {
    /// Resident memory at the end of the window, in bytes.
    pub rss_bytes: u64,
    /// CPU used during the window, in percent of one core.
    pub cpu_percent: f64,
}

/// The busiest moments of the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Peak {
    /// The largest resident memory read.
    pub rss_bytes: u64,
    /// The kernel's high-water mark of resident memory at the end of the run (since the process started, so it may
    /// predate the run).
    pub hwm_bytes: u64,
    /// The busiest [`SAMPLE_INTERVAL`], in percent of one core.
    pub cpu_percent: f64,
}

/// What was seen of one process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProcessReport {
    /// The process id.
    pub pid: u32,
    /// The quiet second before the bots started.
    pub before: Reading,
    /// The busiest moments while the bots worked.
    pub peak: Peak,
    /// The quiet second after the bots logged out and the settle time passed; `None` when the process was gone.
    pub after: Option<Reading>,
    /// CPU time used from the start of the `before` window to the end of the `after` window (or the last reading).
    pub cpu_seconds: f64,
}

/// Reads `pid` at both ends of a [`QUIET_WINDOW`].
pub async fn quiet_window(pid: u32) -> Option<(Sample, Reading)> {
    let start = procstat::read(pid)?;
    let started = Instant::now();
    tokio::time::sleep(QUIET_WINDOW).await;
    let end = procstat::read(pid)?;
    let reading =
        Reading { rss_bytes: end.rss_bytes, cpu_percent: procstat::cpu_percent(&start, &end, started.elapsed()) };
    Some((start, reading))
}

/// The latest reading, for the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latest {
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// CPU during the last interval, percent of one core.
    pub cpu_percent: f64,
}

/// The latest reading of a watched process, shared with whoever wants to show it.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<Mutex<Option<Latest>>>);

impl Gauge {
    /// The latest reading, if one was taken yet.
    pub fn latest(&self) -> Option<Latest> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, latest: Latest) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(latest);
    }
}

/// A process being watched: a background task reading it every [`SAMPLE_INTERVAL`].
#[derive(Debug)]
pub struct Watch {
    pid: u32,
    first: Sample,
    before: Reading,
    gauge: Gauge,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<(Peak, Sample)>,
}

impl Watch {
    /// Measures the quiet second before the run, then starts reading `pid` in the background. `None` when the
    /// process cannot be read (wrong pid, not Linux).
    pub async fn start(pid: u32) -> Option<Watch> {
        let (first, before) = quiet_window(pid).await?;
        let gauge = Gauge::default();
        let (stop, mut stopped) = watch::channel(false);
        let shared = gauge.clone();
        let task = tokio::spawn(async move {
            let mut previous = procstat::read(pid).unwrap_or(first);
            let mut previous_at = Instant::now();
            let mut peak = Peak { rss_bytes: before.rss_bytes, hwm_bytes: previous.hwm_bytes, cpu_percent: 0.0 };
            let mut ticker = tokio::time::interval(SAMPLE_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => break,
                }
                let Some(sample) = procstat::read(pid) else { break };
                let now = Instant::now();
                let cpu_percent = procstat::cpu_percent(&previous, &sample, now - previous_at);
                peak.rss_bytes = peak.rss_bytes.max(sample.rss_bytes);
                peak.hwm_bytes = peak.hwm_bytes.max(sample.hwm_bytes);
                peak.cpu_percent = peak.cpu_percent.max(cpu_percent);
                shared.set(Latest { rss_bytes: sample.rss_bytes, cpu_percent });
                (previous, previous_at) = (sample, now);
            }
            (peak, previous)
        });
        Some(Watch { pid, first, before, gauge, stop, task })
    }

    /// The latest reading, for a progress display.
    pub fn gauge(&self) -> Gauge {
        self.gauge.clone()
    }

    /// Stops the background readings (call it when the bots are done, before the settle time), waits `settle`, and
    /// measures the quiet second after.
    pub async fn finish(self, settle: Duration) -> ProcessReport {
        let _ = self.stop.send(true);
        let (peak, last) = match self.task.await {
            Ok(result) => result,
            Err(_) => (Peak { rss_bytes: self.before.rss_bytes, hwm_bytes: 0, cpu_percent: 0.0 }, self.first),
        };
        tokio::time::sleep(settle).await;
        let after = quiet_window(self.pid).await;
        let end_cpu = match &after {
            Some((start, _)) => procstat::read(self.pid).map_or(start.cpu, |end| end.cpu),
            None => last.cpu,
        };
        ProcessReport {
            pid: self.pid,
            before: self.before,
            peak,
            after: after.map(|(_, reading)| reading),
            cpu_seconds: end_cpu.saturating_sub(self.first.cpu).as_secs_f64(),
        }
    }
}
