//! Memory and CPU of a process on the same machine, read from Linux's `/proc`.
//!
//! Two files say what a process costs. `/proc/PID/status` has `VmRSS`, the resident set: the memory the process
//! occupies in RAM right now (its heap, stacks, touched code), and `VmHWM`, the highest RSS it ever had.
//! `/proc/PID/stat` has `utime` and `stime`, the CPU time it has spent in user and kernel mode, in clock ticks
//! (`sysconf(_SC_CLK_TCK)`, usually 100 a second). CPU *usage* is the growth of that time over a stretch of wall
//! time: one full core busy for a second adds one second, so 100 % is one core and a two-core machine can show 200 %.
//!
//! Other systems keep these figures elsewhere (or nowhere a program may read without privileges), so there every
//! reading is `None` and the report says "not available on this OS".

use std::time::Duration;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Resident set size in bytes (`VmRSS`).
    pub rss_bytes: u64,
    /// Highest resident set size since the process started, in bytes (`VmHWM`).
    pub hwm_bytes: u64,
    /// CPU time in user and kernel mode since the process started (`utime + stime`).
    pub cpu: Duration,
}

/// CPU usage between two readings taken `wall` apart, in percent of one core.
pub fn cpu_percent(earlier: &Sample, later: &Sample, wall: Duration) -> f64 {
    if wall.is_zero() {
        return 0.0;
    }
    let used = later.cpu.saturating_sub(earlier.cpu);
    100.0 * used.as_secs_f64() / wall.as_secs_f64()
}

/// Reads process `pid` now; `None` when it does not exist (any more), cannot be read, or this is not Linux.
pub fn read(pid: u32) -> Option<Sample> {
    read_os(pid)
}

/// Whether this system can read other processes' figures at all.
pub const AVAILABLE: bool = cfg!(target_os = "linux");

#[cfg(target_os = "linux")]
fn read_os(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = rustix::param::clock_ticks_per_second();
    let (rss_bytes, hwm_bytes) = parse_status(&status)?;
    Some(Sample { rss_bytes, hwm_bytes, cpu: parse_stat_cpu(&stat, ticks)? })
}

#[cfg(not(target_os = "linux"))]
fn read_os(_pid: u32) -> Option<Sample> {
    None
}

/// `VmRSS` and `VmHWM` of a `/proc/PID/status` text, in bytes (the file gives kB, meaning KiB).
pub fn parse_status(status: &str) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
        kib.checked_mul(1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// `utime + stime` of a `/proc/PID/stat` line, given the clock ticks per second.
///
/// The second field is the command name in parentheses, and a name may itself hold spaces and parentheses, so the
/// fields are counted from the *last* `)`. After it come field 3 (the state), ..., field 14 (`utime`) and field 15
/// (`stime`): positions 11 and 12 counting from 0.
pub fn parse_stat_cpu(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    if ticks_per_second == 0 {
        return None;
    }
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    let secs = ticks / ticks_per_second;
    let rest = ticks % ticks_per_second;
    Some(Duration::from_secs(secs) + Duration::from_nanos(rest * 1_000_000_000 / ticks_per_second))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tchatlab-server\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";

    #[test]
    fn status_gives_rss_and_high_water_mark_in_bytes() {
        assert_eq!(parse_status(STATUS), Some((40960 * 1024, 51200 * 1024)));
        assert_eq!(parse_status("Name:\tx\n"), None, "a kernel thread has no VmRSS");
        assert_eq!(parse_status("VmRSS:\tlots kB\nVmHWM:\t1 kB\n"), None);
    }

    #[test]
    fn stat_counts_fields_after_the_last_parenthesis() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        let stat = "4242 (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0";
        assert_eq!(parse_stat_cpu(stat, 100), Some(Duration::from_millis(3250)));
        assert_eq!(parse_stat_cpu(stat, 0), None);
        assert_eq!(parse_stat_cpu("4242 (x) S 1 2", 100), None, "cut short");
        assert_eq!(parse_stat_cpu("no parenthesis at all", 100), None);
    }

    #[test]
    fn usage_is_cpu_time_over_wall_time() {
        let a = Sample { rss_bytes: 0, hwm_bytes: 0, cpu: Duration::from_millis(500) };
        let b = Sample { cpu: Duration::from_millis(2500), ..a };
        assert_eq!(cpu_percent(&a, &b, Duration::from_secs(1)), 200.0);
        assert_eq!(cpu_percent(&b, &a, Duration::from_secs(1)), 0.0, "a clock going back is no negative usage");
        assert_eq!(cpu_percent(&a, &b, Duration::ZERO), 0.0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_can_be_read() {
        let sample = read(std::process::id()).expect("our own /proc entry");
        assert!(sample.rss_bytes > 0 && sample.hwm_bytes >= sample.rss_bytes);
        assert_eq!(read(u32::MAX), None, "no such process");
    }
}
