//! A latency histogram: percentiles without keeping every sample.
//!
//! "The average latency" hides what users feel: one message in a hundred arriving late is what makes a chat feel
//! broken. So chatlab reports percentiles (p50, p99, p99.9) and the whole distribution (a CDF). Keeping every sample
//! would cost memory without bound; a *high dynamic range* histogram (HdrHistogram, from the `hdrhistogram` crate)
//! keeps counts in buckets whose width grows with the value, so every recorded latency from 1 µs to an hour is stored
//! with at most 1 % relative error (two significant digits) in about 25 KiB, and recording is a handful of
//! instructions — cheap enough to leave on in production.
//!
//! The histogram is created at its first sample, not before. A server keeps two per session, and a session that
//! never sends a message (most of them, most of the time) should cost nothing for them: the bucket array is
//! zero-filled at creation, so every byte of it is real memory. With three digits and eager creation, 10 000 idle
//! sessions took 3.9 GB; lazily and with two digits they take none of it.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Largest latency the histogram records exactly, in microseconds: one hour. Anything slower is clamped to it (a chat
/// message an hour late has failed in every sense that matters).
const MAX_TRACKED_US: u64 = 3_600_000_000;

/// Significant decimal digits kept per value: two, i.e. at most 1 % error (10.0 ms is told from 10.1 ms), below
/// what any plot can show, for an eighth of the memory of three digits (about 25 KiB instead of 190 KiB).
const SIGNIFICANT_DIGITS: u8 = 2;

/// Latencies in microseconds.
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram {
    /// `None` until the first sample (see the module docs).
    inner: Option<Box<Histogram<u64>>>,
}

impl LatencyHistogram {
    /// An empty histogram; it allocates nothing until the first sample.
    pub fn new() -> Self {
        Self { inner: None }
    }

    /// The histogram, created on first use.
    fn histogram(&mut self) -> &mut Histogram<u64> {
        self.inner.get_or_insert_with(|| {
            // The bounds are constants within hdrhistogram's documented range, so creation cannot fail.
            Box::new(
                Histogram::new_with_bounds(1, MAX_TRACKED_US, SIGNIFICANT_DIGITS)
                    .expect("histogram bounds are valid constants"),
            )
        })
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_TRACKED_US);
        self.histogram().saturating_record(us);
    }

    /// Number of recorded samples.
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |h| h.len())
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held (zero until the first sample).
    pub fn heap_bytes(&self) -> usize {
        self.inner.as_ref().map_or(0, |h| std::mem::size_of::<Histogram<u64>>() + h.distinct_values() * 8)
    }

    /// The latency below which a fraction `q` (0..=1) of samples fall, or `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let h = self.inner.as_ref().filter(|h| !h.is_empty())?;
        Some(Duration::from_micros(h.value_at_quantile(q.clamp(0.0, 1.0))))
    }

    /// Largest recorded latency.
    pub fn max(&self) -> Option<Duration> {
        let h = self.inner.as_ref().filter(|h| !h.is_empty())?;
        Some(Duration::from_micros(h.max()))
    }

    /// Mean latency.
    pub fn mean(&self) -> Option<Duration> {
        let h = self.inner.as_ref().filter(|h| !h.is_empty())?;
        Some(Duration::from_secs_f64(h.mean() / 1e6))
    }

    /// The cumulative distribution as `(latency, fraction of samples at or below it)` points, one per distinct
    /// bucket, ready to plot.
    pub fn cdf(&self) -> Vec<(Duration, f64)> {
        let Some(h) = self.inner.as_ref().filter(|h| !h.is_empty()) else { return Vec::new() };
        let total = h.len();
        let mut seen = 0u64;
        h.iter_recorded()
            .map(|v| {
                seen += v.count_at_value();
                (Duration::from_micros(v.value_iterated_to()), seen as f64 / total as f64)
            })
            .collect()
    }

    /// Adds every sample of `other` to this histogram.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        let Some(theirs) = other.inner.as_ref().filter(|h| !h.is_empty()) else { return };
        // Both histograms have the same bounds, so adding cannot fail; a failure would only lose samples.
        let _ = self.histogram().add(theirs.as_ref());
    }

    /// Forgets every sample and gives the memory back.
    pub fn clear(&mut self) {
        self.inner = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_histogram_has_no_percentiles() {
        let h = LatencyHistogram::new();
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.max(), None);
        assert_eq!(h.mean(), None);
        assert!(h.cdf().is_empty());
    }

    #[test]
    fn percentiles_of_one_to_a_thousand_ms() {
        let mut h = LatencyHistogram::new();
        for ms in 1..=1000 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).unwrap().as_micros() as f64;
        let p99 = h.quantile(0.99).unwrap().as_micros() as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.01, "{p50}");
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.01, "{p99}");
        assert_eq!(h.len(), 1000);
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut h = LatencyHistogram::new();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(100_000));
        assert_eq!(h.len(), 2);
        assert!(h.max().unwrap() >= Duration::from_secs(3_599));
    }

    #[test]
    fn cdf_ends_at_one_and_grows() {
        let mut h = LatencyHistogram::new();
        for us in [10, 20, 20, 40] {
            h.record(Duration::from_micros(us));
        }
        let cdf = h.cdf();
        assert_eq!(cdf.last().unwrap().1, 1.0);
        assert!(cdf.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(cdf[0].1, 0.25);
    }

    #[test]
    fn an_unused_histogram_costs_no_heap() {
        // Regression: every session's two histograms were allocated and zero-filled at creation (about 190 KiB
        // each), so 10 000 idle sessions took 3.9 GB.
        let mut h = LatencyHistogram::new();
        assert_eq!(h.heap_bytes(), 0);
        h.record(Duration::from_millis(3));
        assert!(h.heap_bytes() > 0 && h.heap_bytes() < 64 << 10, "{}", h.heap_bytes());
        h.clear();
        assert_eq!(h.heap_bytes(), 0);
        let mut merged = LatencyHistogram::new();
        merged.merge(&LatencyHistogram::new());
        assert_eq!(merged.heap_bytes(), 0, "merging an empty histogram allocates nothing");
    }

    #[test]
    fn merge_adds_samples() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(2));
        a.merge(&b);
        assert_eq!(a.len(), 2);
        a.clear();
        assert!(a.is_empty());
    }
}
