//! What Linux says about another process: its resident memory and its CPU time, read from `/proc`. Shared by the
//! measuring examples (they include this file with `#[path]`; examples have no common crate).

use std::io;

/// The resident memory of process `pid`, in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc status"))
}

/// Clock ticks per second of `/proc/PID/stat`'s CPU times: 100 on every Linux this project runs on (`USER_HZ`).
const TICKS_PER_SEC: f64 = 100.0;

/// The CPU time (user + system) process `pid` has used, in seconds (`/proc/PID/stat`, fields 14 and 15).
#[allow(dead_code)] // Not every example that includes this file reads CPU time.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; the fields after its closing parenthesis do not.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / TICKS_PER_SEC)
}
