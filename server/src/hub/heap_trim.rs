//! Giving memory back to the operating system after a crowd leaves.
//!
//! When ten thousand sessions log out, the server frees what they held, but the process does not shrink by
//! itself: glibc's `malloc` keeps freed memory in its arenas (one per thread that allocated, and the server's
//! runtime has several) for the next allocation, and returns pages to the kernel only at the very top of a heap.
//! Measured: 10 000 idle sessions took the server to 248 MiB, and after they all left it stood at 314 MiB (the
//! presence storm of their departures allocated more on the way out). `malloc_trim(0)` walks every arena and hands
//! whole free pages back (`MADV_DONTNEED`), so RSS follows the number of people online again.
//!
//! Trimming costs a walk of the heap (milliseconds for hundreds of megabytes), so it runs on a blocking thread and
//! only when it pays: after the sessions online fell to half of their peak since the last trim, by at least
//! [`MIN_SESSIONS_GONE`], and at most once per [`MIN_TRIM_INTERVAL`]. Other allocators (Windows, macOS, musl) give
//! memory back on their own terms; there the trim is a no-op.

use std::time::{Duration, Instant};

/// Sessions that must have ended since the peak before a trim is worth its cost: a classroom's worth. A handful of
/// students leaving frees too little to matter.
pub const MIN_SESSIONS_GONE: usize = 256;

/// Shortest time between two trims, so that a crowd leaving over a minute costs one or two walks of the heap.
pub const MIN_TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Decides when to trim; see the module docs.
#[derive(Debug, Default)]
pub struct HeapTrim {
    peak: usize,
    last: Option<Instant>,
}

impl HeapTrim {
    /// Notes the number of sessions online now; true when the heap should be trimmed (and the peak starts again
    /// from here).
    pub fn should_trim(&mut self, online: usize, now: Instant) -> bool {
        self.peak = self.peak.max(online);
        let gone = self.peak - online;
        let fell_by_half = online <= self.peak / 2;
        let rested = self.last.is_none_or(|last| now.duration_since(last) >= MIN_TRIM_INTERVAL);
        if gone >= MIN_SESSIONS_GONE && fell_by_half && rested {
            self.peak = online;
            self.last = Some(now);
            return true;
        }
        false
    }
}

/// Hands free memory back to the kernel, on a blocking thread so the hub does not wait for the heap walk.
pub fn trim_in_background() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::task::spawn_blocking(|| {
        // SAFETY: `malloc_trim` only releases free memory of glibc's own arenas; it is thread-safe and takes no
        // pointers.
        unsafe { libc::malloc_trim(0) };
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_a_crowd_has_left_and_not_for_a_few() {
        let t0 = Instant::now();
        let mut trim = HeapTrim::default();
        assert!(!trim.should_trim(1000, t0));
        assert!(!trim.should_trim(990, t0), "ten leaving is not worth a walk of the heap");
        assert!(!trim.should_trim(600, t0), "not yet half");
        assert!(trim.should_trim(400, t0));
        assert!(!trim.should_trim(0, t0 + Duration::from_secs(1)), "at most once per interval");
        assert!(trim.should_trim(0, t0 + MIN_TRIM_INTERVAL), "the peak since the last trim was 400");
    }

    #[test]
    fn a_small_server_never_trims() {
        let t0 = Instant::now();
        let mut trim = HeapTrim::default();
        for online in (0..200).rev() {
            assert!(!trim.should_trim(online, t0 + Duration::from_secs(60)));
        }
    }
}
