//! Noticing a client that vanished without closing its connection.
//!
//! TCP tells the other side about an ending connection only when the ending side can still speak: a process that
//! exits or closes its socket sends FIN (or RST), but a laptop lid that closes, a Wi-Fi that drops, a cable that is
//! pulled or a process frozen in a debugger send nothing at all. From the server's side such a *half-open*
//! connection looks exactly like a quiet one. It is noticed only when the server writes to it and the write stalls,
//! and a user who is never written to would stay "online" for ever, holding a session and a socket.
//!
//! So the server watches the other direction: after login the client sends a `Ping` every heartbeat interval,
//! whether or not it has anything to say, and a connection that delivers no byte at all for the read-idle limit
//! ([`CONTROL_IDLE_TIMEOUT`](crate::limits::CONTROL_IDLE_TIMEOUT) by default) is declared dead and closed, which ends
//! its session as a normal disconnect does. This is the same idea as TCP's own keepalive, moved up to the
//! application, where it also catches a client whose host is fine but whose program hangs (see
//! [`crate::net::keepalive`] for the kernel's version, which the server enables as well).
//!
//! ## A timer that is not re-armed on every read
//!
//! The natural code moves the deadline forward on every read. But most deadlines never fire (live clients keep
//! talking), and moving a timer costs a visit to the runtime's timer wheel each time. [`IdleWatch`] does what
//! kernels do with such timers: a read only writes down *when* it happened, and the timer, when it fires, compares
//! the deadline it was set for with the last sign of life. If the client spoke meanwhile, the timer is set again
//! for the new deadline; only if it did not has the limit really passed. A busy connection pays one clock read per
//! read and one timer wake-up per idle limit, not one timer update per frame.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The read-idle timer of one connection.
#[derive(Debug)]
pub struct IdleWatch {
    /// Silence allowed.
    limit: Duration,
    /// When the client last sent anything (or when watching began).
    last_heard: Instant,
    /// Set for `last_heard + limit` as it was when the timer was last armed; may lag behind `last_heard`.
    timer: Pin<Box<Sleep>>,
}

impl IdleWatch {
    /// A watch that allows `limit` of silence, counted from `now`.
    pub fn new(limit: Duration, now: Instant) -> Self {
        Self { limit, last_heard: now, timer: Box::pin(tokio::time::sleep_until(deadline(now, limit))) }
    }

    /// The silence allowed.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// The client sent something at `now`: a sign of life. Cheap: the timer itself is not touched.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// Completes once the client has been silent for the whole limit. Safe to cancel (as a `select!` branch that
    /// loses): the state lives in the watch, not in the future.
    pub async fn silent(&mut self) {
        loop {
            self.timer.as_mut().await;
            let due = deadline(self.last_heard, self.limit);
            if Instant::now() >= due {
                return;
            }
            // The client spoke after the timer was set: wait for the deadline its last word moved to.
            self.timer.as_mut().reset(due);
        }
    }
}

/// `start + limit`, saturating far in the future instead of overflowing for absurd limits.
fn deadline(start: Instant, limit: Duration) -> Instant {
    start.checked_add(limit).unwrap_or_else(|| start + FAR_FUTURE)
}

/// A deadline that never comes in practice, for limits so large that adding them to a clock reading overflows
/// (about 30 years, as tokio itself uses for "never").
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

#[cfg(test)]
mod tests {
    use super::*;

    /// Short enough for a test, long enough that a loaded machine does not blur the order of events.
    const LIMIT: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn silence_for_the_whole_limit_completes() {
        let start = Instant::now();
        let mut watch = IdleWatch::new(LIMIT, start);
        watch.silent().await;
        assert!(start.elapsed() >= LIMIT);
        assert_eq!(watch.limit(), LIMIT);
    }

    #[tokio::test]
    async fn a_sign_of_life_moves_the_deadline() {
        let start = Instant::now();
        let mut watch = IdleWatch::new(LIMIT, start);
        // Speak just before the first deadline; the timer fires at it and must wait for the new one.
        tokio::time::sleep(LIMIT / 2).await;
        let spoke = Instant::now();
        watch.heard(spoke);
        watch.silent().await;
        assert!(spoke.elapsed() >= LIMIT, "completed only a full limit after the last sign of life");
    }

    #[tokio::test]
    async fn a_talking_client_is_never_declared_silent() {
        let mut watch = IdleWatch::new(LIMIT, Instant::now());
        // Twice the limit in all, a sign of life every quarter of it, with `silent` raced against each pause the way
        // the connection's `select!` races it against reads (and drops it when a read wins).
        for _ in 0..8 {
            tokio::select! {
                () = watch.silent() => panic!("declared silent while the client kept talking"),
                () = tokio::time::sleep(LIMIT / 4) => watch.heard(Instant::now()),
            }
        }
        let last_word = Instant::now();
        watch.silent().await;
        assert!(last_word.elapsed() >= LIMIT / 2, "silence still had to last after the last word");
    }

    #[test]
    fn absurd_limits_do_not_overflow() {
        let now = Instant::now();
        assert!(deadline(now, Duration::MAX) > now);
        assert_eq!(deadline(now, LIMIT), now + LIMIT);
    }
}
