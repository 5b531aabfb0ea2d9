//! A one-line progress display on standard error while the run goes on.
//!
//! The line is rewritten in place (`\r` and "erase line") a few times a second, only when standard error is a
//! terminal: in a pipe or a log file it would be noise, and the report on standard output stays clean either way.
//! Written by hand rather than with a progress-bar crate: one line of text needs no dependency.

use std::io::{IsTerminal, Write as _};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::shared::{Live, Shared};
use super::watch::Gauge;

/// Time between two redraws: often enough to look alive, rarely enough to cost nothing.
const REDRAW_INTERVAL: Duration = Duration::from_millis(250);

/// Characters of the bar.
const BAR_WIDTH: usize = 24;

/// What the run is doing now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Bots connect and log in.
    Login,
    /// Bots chat until the given instant.
    Chat {
        /// Start of the chat phase.
        from: Instant,
        /// End of the chat phase.
        until: Instant,
    },
    /// Waiting for the last acceptances and deliveries.
    Drain,
    /// Bots log out; the server settles.
    Finish,
}

/// The progress line's task; dropping it (or [`Progress::stop`]) erases the line.
#[derive(Debug)]
pub struct Progress {
    phase: watch::Sender<Phase>,
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing when `enabled` and standard error is a terminal; otherwise only remembers the phase.
    pub fn start(shared: Arc<Shared>, server: Option<Gauge>, enabled: bool) -> Progress {
        let (phase, phases) = watch::channel(Phase::Login);
        let task = (enabled && std::io::stderr().is_terminal()).then(|| tokio::spawn(draw(shared, server, phases)));
        Progress { phase, task }
    }

    /// Moves to `phase`.
    pub fn set(&self, phase: Phase) {
        let _ = self.phase.send(phase);
    }

    /// Stops drawing and erases the line.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
            eprint!("\r\x1b[2K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn draw(shared: Arc<Shared>, server: Option<Gauge>, phases: watch::Receiver<Phase>) {
    let mut ticker = tokio::time::interval(REDRAW_INTERVAL);
    loop {
        ticker.tick().await;
        let phase = *phases.borrow();
        let mut line = line(&shared, phase, Instant::now());
        if let Some(latest) = server.as_ref().and_then(|gauge| gauge.latest()) {
            line.push_str(&format!(
                " | server {:.0} MiB, {:.0} % CPU",
                latest.rss_bytes as f64 / (1024.0 * 1024.0),
                latest.cpu_percent
            ));
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }
}

/// `[#####-------]` for `done` of `total`.
fn bar(done: f64, total: f64) -> String {
    let fraction = if total > 0.0 { (done / total).clamp(0.0, 1.0) } else { 0.0 };
    let filled = (fraction * BAR_WIDTH as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), "-".repeat(BAR_WIDTH - filled))
}

/// The text of the progress line at `now`.
fn line(shared: &Shared, phase: Phase, now: Instant) -> String {
    let live = &shared.live;
    let bots = shared.config.total_bots();
    match phase {
        Phase::Login => {
            let (ok, failed) = (Live::get(&live.logged_in), Live::get(&live.setup_failed));
            format!("login {} {ok}/{bots} logged in, {failed} failed", bar((ok + failed) as f64, bots as f64))
        }
        Phase::Chat { from, until } => {
            let total = until.saturating_duration_since(from).as_secs_f64();
            let done = now.saturating_duration_since(from).as_secs_f64().min(total);
            format!(
                "chat  {} {done:.0}/{total:.0} s: sent {}, accepted {}, failed {}, deliveries {}",
                bar(done, total),
                Live::get(&live.attempted),
                Live::get(&live.accepted),
                Live::get(&live.failed),
                Live::get(&live.deliveries)
            )
        }
        Phase::Drain => {
            let waiting = Live::get(&live.accepted).saturating_sub(shared.ledger.complete());
            format!("drain: {waiting} accepted messages still on their way")
        }
        Phase::Finish => "finish: bots log out, then the server settles".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::LoadConfig;

    #[test]
    fn the_bar_fills_with_progress() {
        assert_eq!(bar(0.0, 10.0), format!("[{}]", "-".repeat(BAR_WIDTH)));
        assert_eq!(bar(10.0, 10.0), format!("[{}]", "#".repeat(BAR_WIDTH)));
        assert_eq!(bar(20.0, 10.0), bar(10.0, 10.0), "never past full");
        assert_eq!(bar(1.0, 0.0), bar(0.0, 10.0), "nothing to do draws empty");
    }

    #[tokio::test]
    async fn each_phase_says_what_is_going_on() {
        let shared = Shared::new(LoadConfig::new("127.0.0.1:1", 3, "/tmp/k"), 1);
        Live::bump(&shared.live.logged_in);
        assert!(line(&shared, Phase::Login, Instant::now()).contains("1/3 logged in, 0 failed"));
        let from = Instant::now();
        let chat = line(&shared, Phase::Chat { from, until: from + Duration::from_secs(10) }, from);
        assert!(chat.contains("0/10 s") && chat.contains("sent 0"), "{chat}");
        Live::bump(&shared.live.accepted);
        assert!(line(&shared, Phase::Drain, from).contains("1 accepted messages still"));
    }
}
