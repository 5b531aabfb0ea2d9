//! The result of a load run: the figures, a table for people, and JSON for scripts.
//!
//! The counts add up, and the table says so: every message handed to `send` was either accepted by the server or
//! refused/failed (with a reason), and every accepted message either reached every bot it should have reached or is
//! counted as not delivered. A server that acknowledges a message and then loses it shows up as "not delivered",
//! which a correct chatlab server never does.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::config::TransportMix;
use super::reason::{Failures, Operation};
use super::watch::ProcessReport;

/// Percentiles of a latency histogram in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile: one message in a hundred took longer.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    /// The percentiles of a histogram in microseconds.
    pub fn of(histogram: &Histogram<u64>) -> Latency {
        if histogram.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// What the run was asked to do.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Chatting bots.
    pub bots: usize,
    /// Idle bots.
    pub idle: usize,
    /// Account name prefix.
    pub prefix: String,
    /// Whether existing accounts were reused.
    pub reuse: bool,
    /// Transport choice.
    pub transport: TransportMix,
    /// Bots started per second.
    pub login_rate: f64,
    /// Messages per second per chatting bot.
    pub rate_per_bot: f64,
    /// Share of messages to the world room.
    pub world_share: f64,
    /// Length of the chat phase, seconds.
    pub duration_s: f64,
    /// Bytes per message text.
    pub message_bytes: usize,
}

/// The login phase.
#[derive(Debug, Clone, Serialize)]
pub struct LoginReport {
    /// Bots that tried.
    pub bots: usize,
    /// Accounts created.
    pub registered: u64,
    /// Bots that logged in.
    pub logged_in: u64,
    /// Bots whose connect, registration or login failed (the reasons are in `failures`).
    pub failed: u64,
    /// From the first bot's start to the last bot's answer, seconds.
    pub seconds: f64,
    /// Successful logins per second over `seconds`.
    pub logins_per_s: f64,
    /// From the start of a bot's connection to its accepted login.
    pub login_time: Latency,
}

/// Which transport the logged-in bots ended up chatting on.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TransportReport {
    /// Bots chatting over UDP.
    pub udp: u64,
    /// Bots chatting over TCP (asked for, or fallen back).
    pub tcp: u64,
    /// UDP bots that fell back to TCP, by reason.
    pub fell_back_to_tcp: BTreeMap<String, u64>,
}

/// The chat phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChatReport {
    /// Length of the chat phase (the schedule), seconds.
    pub seconds: f64,
    /// Messages handed to `send`: `accepted + failed`.
    pub attempted: u64,
    /// Messages the server accepted (stored durably): `delivered + not_delivered`.
    pub accepted: u64,
    /// Messages refused or failed; the reasons are in `failures` under `send`.
    pub failed: u64,
    /// Accepted messages that reached every bot they should have reached.
    pub delivered: u64,
    /// Accepted messages that missed at least one bot by the end of the drain time.
    pub not_delivered: u64,
    /// Messages sent later than scheduled because too many of the bot's messages were unanswered.
    pub late_sends: u64,
    /// The schedule's rate: bots x rate, messages per second.
    pub target_per_s: f64,
    /// Accepted messages per second of the chat phase.
    pub accepted_per_s: f64,
    /// Deliveries to bots (each world message counts once per receiving bot).
    pub deliveries: u64,
    /// Deliveries the accepted messages should have made.
    pub expected_deliveries: u64,
    /// Deliveries per second, from the start of the chat phase to the end of the drain.
    pub deliveries_per_s: f64,
    /// Deliveries of a message a bot already had (the client library should make this 0).
    pub duplicate_deliveries: u64,
    /// Deliveries of messages whose `send` failed although the server had stored them (a timeout, for example).
    pub unclaimed_deliveries: u64,
    /// Deliveries that came by a history sync rather than live.
    pub synced_deliveries: u64,
    /// From `send` to the server's acceptance.
    pub ack: Latency,
    /// From `send` to the receiving bot.
    pub delivery: Latency,
}

/// One row of the failure table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureRow {
    /// `connect`, `register`, `login`, `send` or `session`.
    pub operation: Operation,
    /// The client library's error kind, with the server's code where there is one.
    pub kind: String,
    /// The error's sentence, numbers as `N`.
    pub reason: String,
    /// How many times.
    pub count: u64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The server, `HOST:PORT`.
    pub server: String,
    /// Fingerprint of the server's key.
    pub server_fingerprint: String,
    /// The run's random id (it is in every message text).
    pub run_id: String,
    /// What was asked.
    pub settings: Settings,
    /// Logins.
    pub login: LoginReport,
    /// Transports.
    pub transports: TransportReport,
    /// Chat.
    pub chat: ChatReport,
    /// Refused and failed operations by reason.
    pub failures: Vec<FailureRow>,
    /// The server's memory and CPU, when `--server-pid` was given and this OS can tell.
    pub server_process: Option<ProcessReport>,
    /// Why `server_process` is missing, when it is.
    pub server_process_note: Option<String>,
    /// This program's own memory and CPU: a generator that used all the cores measured itself, not the server.
    pub generator_process: Option<ProcessReport>,
}

/// Converts the failure tally into rows, by operation then reason.
pub fn failure_rows(failures: &Failures) -> Vec<FailureRow> {
    failures
        .iter()
        .map(|(operation, reason, count)| FailureRow {
            operation,
            kind: reason.kind.clone(),
            reason: reason.detail.clone(),
            count,
        })
        .collect()
}

/// What to change when a row shows one of the server's default limits refusing the load.
pub fn hint(row: &FailureRow) -> Option<&'static str> {
    let reason = row.reason.to_lowercase();
    if reason.contains("too many connections") {
        Some(
            "the server's cap on connections per address refused these: start it with a higher --max-connections-per-ip",
        )
    } else if row.kind.contains("FloodLimited") {
        Some("the server's flood limit (per user) refused these: start it with a higher --flood-rate and --flood-burst")
    } else if reason.contains("registrations") {
        Some("registrations per address are limited: raise the server's --max-registrations-per-ip, or use --reuse")
    } else if row.kind == "UsernameTaken" {
        Some("these accounts exist from an earlier run: add --reuse, or choose another --prefix")
    } else if reason.contains("too many open files") {
        Some("raise the open-file limit (ulimit -n) of this shell or of the server")
    } else {
        None
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn latency_line(latency: &Latency) -> String {
    if latency.count == 0 {
        return "no samples".into();
    }
    format!("p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", latency.p50_ms, latency.p99_ms, latency.max_ms)
}

fn process_table(out: &mut String, title: &str, process: &ProcessReport) {
    let _ = writeln!(out, "{title} (pid {})     before       peak        after", process.pid);
    let after_rss = process.after.map_or("gone".to_string(), |a| mib(a.rss_bytes));
    let after_cpu = process.after.map_or("gone".to_string(), |a| format!("{:.0} %", a.cpu_percent));
    let _ = writeln!(
        out,
        "  resident memory    {:>10}  {:>10}  {:>10}",
        mib(process.before.rss_bytes),
        mib(process.peak.rss_bytes),
        after_rss
    );
    let _ = writeln!(
        out,
        "  CPU, % of a core   {:>10}  {:>10}  {:>10}",
        format!("{:.0} %", process.before.cpu_percent),
        format!("{:.0} %", process.peak.cpu_percent),
        after_cpu
    );
    let _ = writeln!(
        out,
        "  CPU time {:.1} s over the run; kernel's high-water mark of memory {}",
        process.cpu_seconds,
        mib(process.peak.hwm_bytes)
    );
}

impl LoadReport {
    /// The report as a table for people.
    pub fn to_table(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "chatlab-lab load: {} chatting + {} idle bots over {} against {} (key {})",
            s.bots,
            s.idle,
            s.transport.name(),
            self.server,
            self.server_fingerprint
        );
        let _ = writeln!(
            out,
            "  {} message(s)/s per chatting bot, {:.0} % to the world room, {} bytes each, for {:.0} s; run {}",
            s.rate_per_bot,
            s.world_share * 100.0,
            s.message_bytes,
            s.duration_s,
            self.run_id
        );
        let l = &self.login;
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "logins      {} of {} bots logged in ({} accounts registered, {} failed) in {:.2} s: {:.1} logins/s",
            l.logged_in, l.bots, l.registered, l.failed, l.seconds, l.logins_per_s
        );
        let _ = writeln!(out, "            connect + login time: {}", latency_line(&l.login_time));
        let t = &self.transports;
        let fell_back: u64 = t.fell_back_to_tcp.values().sum();
        let _ = writeln!(
            out,
            "transports  {} over UDP, {} over TCP ({} fell back from UDP to TCP)",
            t.udp, t.tcp, fell_back
        );
        for (reason, count) in &t.fell_back_to_tcp {
            let _ = writeln!(out, "            {count} fell back: {reason}");
        }
        let c = &self.chat;
        let _ = writeln!(
            out,
            "chat        {} sent = {} accepted + {} refused or failed; {} accepted = {} delivered to every bot + {} not \
             delivered",
            c.attempted, c.accepted, c.failed, c.accepted, c.delivered, c.not_delivered
        );
        let _ = writeln!(
            out,
            "            {:.1} accepted messages/s (target {:.1}/s, {} sent late); {} of {} deliveries, {:.1}/s",
            c.accepted_per_s, c.target_per_s, c.late_sends, c.deliveries, c.expected_deliveries, c.deliveries_per_s
        );
        if c.duplicate_deliveries + c.unclaimed_deliveries + c.synced_deliveries > 0 {
            let _ = writeln!(
                out,
                "            {} duplicate deliveries, {} deliveries of messages whose send failed, {} by history sync",
                c.duplicate_deliveries, c.unclaimed_deliveries, c.synced_deliveries
            );
        }
        let _ = writeln!(out, "latency     send to acceptance by the server: {}", latency_line(&c.ack));
        let _ = writeln!(out, "            send to the receiving bot:        {}", latency_line(&c.delivery));
        let _ = writeln!(out);
        if self.failures.is_empty() {
            let _ = writeln!(out, "refused and failed: none");
        } else {
            let _ = writeln!(out, "refused and failed, by operation and reason:");
            let kind_width = self.failures.iter().map(|r| r.kind.len()).max().unwrap_or(4).max(4);
            let _ = writeln!(out, "  {:<9} {:>7}  {:<kind_width$}  reason", "operation", "count", "kind");
            for row in &self.failures {
                let _ = writeln!(
                    out,
                    "  {:<9} {:>7}  {:<kind_width$}  {}",
                    row.operation.name(),
                    row.count,
                    row.kind,
                    row.reason
                );
            }
            let mut hints: Vec<&str> = self.failures.iter().filter_map(hint).collect();
            hints.dedup();
            for hint in hints {
                let _ = writeln!(out, "  hint: {hint}");
            }
        }
        let _ = writeln!(out);
        match (&self.server_process, &self.server_process_note) {
            (Some(process), _) => process_table(&mut out, "server", process),
            (None, Some(note)) => {
                let _ = writeln!(out, "server process: {note}");
            }
            (None, None) => {}
        }
        if let Some(process) = &self.generator_process {
            process_table(&mut out, "this load generator", process);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(operation: Operation, kind: &str, reason: &str) -> FailureRow {
        FailureRow { operation, kind: kind.into(), reason: reason.into(), count: 3 }
    }

    #[test]
    fn the_default_limits_come_with_the_server_option_to_raise() {
        let connections = row(
            Operation::Connect,
            "Disconnected",
            "not connected to the server: this address has too many connections open; close one first",
        );
        assert!(hint(&connections).is_some_and(|h| h.contains("--max-connections-per-ip")));
        let flood = row(Operation::Send, "RateLimited(FloodLimited)", "rate limited: slow down");
        assert!(hint(&flood).is_some_and(|h| h.contains("--flood-rate") && h.contains("--flood-burst")));
        let registrations = row(
            Operation::Register,
            "RateLimited(LoginRateLimited)",
            "rate limited: too many registrations from this address; try again in N s",
        );
        assert!(hint(&registrations).is_some_and(|h| h.contains("--max-registrations-per-ip")));
        let taken = row(Operation::Register, "UsernameTaken", "that user name is already registered: x");
        assert!(hint(&taken).is_some_and(|h| h.contains("--reuse")));
        assert_eq!(hint(&row(Operation::Login, "BadCredentials", "unknown user name or wrong password")), None);
    }

    #[test]
    fn latency_of_an_empty_histogram_is_zero_samples() {
        let empty = super::super::shared::latency_histogram();
        assert_eq!(Latency::of(&empty), Latency::default());
        let mut one = super::super::shared::latency_histogram();
        one.saturating_record(1500);
        let latency = Latency::of(&one);
        assert_eq!(latency.count, 1);
        assert!((latency.max_ms - 1.5).abs() < 0.01, "{latency:?}");
    }
}
