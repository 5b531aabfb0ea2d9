//! Rate-limited log summaries: one line per interval, with a count per reason, instead of one line per event.
//!
//! A refusal is worth a log line: an operator wants to know that someone is being refused, and why. But a
//! refusal is also the one thing an attacker can make the server do as often as it likes. With one line per
//! refusal, a client sending invalid chat messages in a loop grew the log by 14 MB a second: the disk fills, the
//! log stops being readable, and the lines that matter drown. So events that a peer can cause at will are
//! *counted* here and *reported* at most once per interval:
//!
//! ```text
//! INFO chat messages refused total=18231 by_reason="flood limited: 18001, text invalid: 230" first="ann from 10.0.0.7:50312" secs=10.0
//! ```
//!
//! The first event after a quiet interval is reported at once (a lone refusal shows up in the log immediately,
//! as before), every later one in the same interval is only counted, and the counts come out in one line when the
//! interval has passed. A burst therefore costs two lines, and a flood that lasts an hour costs one line per
//! interval, however fast it is. The first event of each report keeps a short description (who caused it), so the
//! summary still points at someone.
//!
//! Time is passed in, as everywhere in chatlab's logic, so the tests run without sleeping. The summary logs
//! nothing itself: it says *when* a line is due and *what* it holds, and the caller writes the line with the level
//! and the fields it wants. Whoever owns a summary must also ask for due reports when no new event arrives
//! ([`LogSummary::due`], [`LogSummary::next_due`]); the hub does that in its main loop.

use std::fmt;
use std::time::{Duration, Instant};

/// Reasons one summary tells apart at most. Reasons are a small closed set (error codes, close reasons); this bound
/// only keeps a caller with a bug from growing the list without limit. Events of further reasons are counted in
/// [`Report::other`].
pub const MAX_REASONS: usize = 16;

/// Characters kept of the description of a report's first event; a peer controls parts of it (a user name), and a
/// summary line must stay one short line.
pub const MAX_FIRST_CHARS: usize = 120;

/// Counts of events by reason, reported at most once per interval. See the module documentation.
#[derive(Debug)]
pub struct LogSummary<R> {
    interval: Duration,
    counts: Vec<(R, u64)>,
    other: u64,
    first: Option<String>,
    /// When the current interval started: the time of the last report, or of the event that opened it.
    window_start: Option<Instant>,
}

/// One summary line's content: what was counted since the previous report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<R> {
    /// Events per reason, in the order the reasons first occurred.
    pub counts: Vec<(R, u64)>,
    /// Events of reasons beyond [`MAX_REASONS`].
    pub other: u64,
    /// All events of this report.
    pub total: u64,
    /// The description of the first event of this report, if the caller gave one.
    pub first: Option<String>,
    /// The time the report covers, from its first event (or the previous report) to now.
    pub over: Duration,
}

impl<R: Copy + PartialEq> LogSummary<R> {
    /// A summary that reports at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self { interval, counts: Vec::new(), other: 0, first: None, window_start: None }
    }

    /// Counts one event of `reason`. Returns a report when a line is due now: for the first event after a quiet
    /// interval (then the report holds just this event), or when the interval has passed. `describe` is called only
    /// for the first event of a report, so a flood does not pay for formatting.
    pub fn record(&mut self, reason: R, now: Instant, describe: impl FnOnce() -> String) -> Option<Report<R>> {
        let quiet = self.window_start.is_none_or(|start| now.saturating_duration_since(start) >= self.interval);
        if self.total() == 0 {
            self.first = Some(describe().chars().take(MAX_FIRST_CHARS).collect());
        }
        if let Some((_, count)) = self.counts.iter_mut().find(|(r, _)| *r == reason) {
            *count = count.saturating_add(1);
        } else if self.counts.len() < MAX_REASONS {
            self.counts.push((reason, 1));
        } else {
            self.other = self.other.saturating_add(1);
        }
        if quiet { self.take(now) } else { None }
    }

    /// The report of the events counted so far, if the interval since the last report has passed. Call it now and
    /// then (at [`next_due`](Self::next_due)) so that the last events of a burst are reported even when nothing
    /// follows them.
    pub fn due(&mut self, now: Instant) -> Option<Report<R>> {
        let start = self.window_start?;
        if now.saturating_duration_since(start) < self.interval {
            return None;
        }
        self.take(now)
    }

    /// When the counted events are due for a report; `None` while nothing waits to be reported.
    pub fn next_due(&self) -> Option<Instant> {
        if self.total() == 0 {
            return None;
        }
        self.window_start.map(|start| start + self.interval)
    }

    /// Reports whatever was counted, due or not (at shutdown), and starts a new interval at `now`.
    pub fn take(&mut self, now: Instant) -> Option<Report<R>> {
        let total = self.total();
        let over = self.window_start.map_or(Duration::ZERO, |start| now.saturating_duration_since(start));
        self.window_start = Some(now);
        if total == 0 {
            return None;
        }
        Some(Report {
            counts: std::mem::take(&mut self.counts),
            other: std::mem::take(&mut self.other),
            total,
            first: self.first.take(),
            over,
        })
    }

    fn total(&self) -> u64 {
        self.counts.iter().fold(self.other, |sum, (_, count)| sum.saturating_add(*count))
    }
}

impl<R: fmt::Display> fmt::Display for Report<R> {
    /// The counts for a log field: `flood limited: 18001, text invalid: 230`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut separator = "";
        for (reason, count) in &self.counts {
            write!(f, "{separator}{reason}: {count}")?;
            separator = ", ";
        }
        if self.other > 0 {
            write!(f, "{separator}other: {}", self.other)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn who() -> String {
        "ann".into()
    }

    #[test]
    fn a_lone_event_is_reported_at_once() {
        let t = Instant::now();
        let mut summary = LogSummary::new(10 * SECOND);
        let report = summary.record("too long", t, who).unwrap();
        assert_eq!(report.counts, vec![("too long", 1)]);
        assert_eq!((report.total, report.first.as_deref()), (1, Some("ann")));
        assert_eq!(summary.next_due(), None, "nothing left to report");
        assert_eq!(summary.due(t + 60 * SECOND), None);
    }

    #[test]
    fn a_flood_costs_one_line_per_interval_with_counts_per_reason() {
        let t = Instant::now();
        let mut summary = LogSummary::new(10 * SECOND);
        let mut lines = Vec::new();
        let mut descriptions = 0;
        // 10 000 events over 25 seconds, two reasons.
        for n in 0..10_000u32 {
            let now = t + Duration::from_micros(u64::from(n) * 2_500);
            let reason = if n % 4 == 0 { "invalid" } else { "flood" };
            lines.extend(summary.record(reason, now, || {
                descriptions += 1;
                format!("event {n}")
            }));
            lines.extend(summary.due(now));
        }
        lines.extend(summary.take(t + 25 * SECOND));
        assert_eq!(lines.len(), 4, "the first event, then one line per 10 s, then the rest: {lines:#?}");
        assert_eq!(descriptions, 4, "only the first event of each report is described");
        assert_eq!(lines.iter().map(|r| r.total).sum::<u64>(), 10_000, "every event is counted once");
        let second = &lines[1];
        assert_eq!(second.first.as_deref(), Some("event 1"));
        assert_eq!(second.to_string(), format!("flood: {}, invalid: {}", second.counts[0].1, second.counts[1].1));
        assert_eq!(second.over, 10 * SECOND);
    }

    #[test]
    fn the_tail_of_a_burst_is_due_one_interval_after_the_last_report() {
        let t = Instant::now();
        let mut summary = LogSummary::new(10 * SECOND);
        assert!(summary.record(1u16, t, who).is_some());
        assert!(summary.record(1u16, t + SECOND, who).is_none());
        assert!(summary.record(2u16, t + 2 * SECOND, who).is_none());
        assert_eq!(summary.next_due(), Some(t + 10 * SECOND));
        assert_eq!(summary.due(t + 9 * SECOND), None);
        let tail = summary.due(t + 10 * SECOND).unwrap();
        assert_eq!((tail.counts, tail.total), (vec![(1, 1), (2, 1)], 2));
        assert_eq!(summary.next_due(), None);
    }

    #[test]
    fn reasons_beyond_the_bound_are_counted_as_other() {
        let t = Instant::now();
        let mut summary = LogSummary::new(SECOND);
        for reason in 0..(MAX_REASONS as u32 + 3) {
            summary.record(reason, t, who);
        }
        let report = summary.take(t).unwrap();
        assert_eq!((report.counts.len(), report.other), (MAX_REASONS, 2), "the first was reported alone");
        assert!(report.to_string().ends_with("other: 2"));
    }

    #[test]
    fn descriptions_are_cut_short() {
        let mut summary = LogSummary::new(SECOND);
        let report = summary.record((), Instant::now(), || "x".repeat(10_000)).unwrap();
        assert_eq!(report.first.unwrap().len(), MAX_FIRST_CHARS);
    }
}
