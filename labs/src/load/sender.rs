//! A chatting bot's schedule: one message every `1 / rate` seconds, to the world room or to another bot.
//!
//! The schedule is *open loop*: message `k` is due at `offset + k / rate` whatever happened to message `k - 1`, the
//! way people keep typing without waiting for the server. A closed loop (send, wait for the answer, send again)
//! would slow down exactly when the server does and hide how slow it got; this is the "coordinated omission" that
//! Gil Tene describes, and it is why each bot starts at a random offset (so a hundred bots do not fire in the same
//! millisecond) and measures each message from the moment it was handed to `send`. Only when
//! [`MAX_IN_FLIGHT_PER_BOT`] messages of one bot are still unanswered does the bot wait, and the report then shows
//! an achieved rate below the target.

use std::sync::Arc;
use std::time::Duration;

use chatlab_client::{Accepted, ClientError, ClientHandle, Target, Username};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::config::MAX_IN_FLIGHT_PER_BOT;
use super::reason::{Failures, Operation};
use super::shared::{Live, MAX_LATENCY_US, Shared, latency_histogram};
use super::text::{self, Stamp};

/// Whom a bot writes to.
#[derive(Debug, Clone)]
pub struct Audience {
    /// The chatting bots that logged in: (bot number, account name). One-to-one messages go to one of them.
    pub chatters: Arc<Vec<(usize, Username)>>,
    /// Deliveries a world message should make: every logged-in bot but its sender.
    pub world_recipients: u32,
}

/// What a chatting bot did.
#[derive(Debug)]
pub struct Sent {
    /// Messages handed to `send`.
    pub attempted: u64,
    /// Messages the server accepted.
    pub accepted: u64,
    /// From the `send` call to the server's acceptance, per accepted message, in microseconds.
    pub ack_latency: Histogram<u64>,
    /// Refused or failed sends, by reason.
    pub failures: Failures,
    /// Messages that left later than scheduled because [`MAX_IN_FLIGHT_PER_BOT`] were unanswered.
    pub late: u64,
}

/// One message's outcome: the result, its time to acceptance, and the deliveries it should make.
type Outcome = (Result<Accepted, ClientError>, Duration, u32);

/// Sends bot `index`'s messages from `start` until `until`, then waits for the answers to the last ones.
pub async fn chat(
    shared: Arc<Shared>,
    index: usize,
    handle: ClientHandle,
    audience: Audience,
    start: Instant,
    until: Instant,
) -> Sent {
    let mut sent =
        Sent { attempted: 0, accepted: 0, ack_latency: latency_histogram(), failures: Failures::default(), late: 0 };
    let rate = shared.config.rate;
    if rate <= 0.0 {
        return sent;
    }
    let mut rng = StdRng::seed_from_u64(shared.config.seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let offset = interval.mul_f64(rng.random::<f64>());
    let own = audience.chatters.iter().position(|(i, _)| *i == index);
    let mut in_flight: JoinSet<Outcome> = JoinSet::new();
    for seq in 0u64.. {
        let due = start + offset + interval.mul_f64(seq as f64);
        if due >= until {
            break;
        }
        tokio::time::sleep_until(due).await;
        while let Some(done) = in_flight.try_join_next() {
            settle(&shared, &mut sent, done);
        }
        if in_flight.len() >= MAX_IN_FLIGHT_PER_BOT {
            sent.late += 1;
            if let Some(done) = in_flight.join_next().await {
                settle(&shared, &mut sent, done);
            }
        }
        let (to, expected) = pick_target(&mut rng, shared.config.world_share, own, &audience);
        let stamp = Stamp { seq, sent_at_us: shared.now_us() };
        let message = text::compose(shared.run_id, stamp, shared.config.message_bytes);
        let handle = handle.clone();
        sent.attempted += 1;
        Live::bump(&shared.live.attempted);
        in_flight.spawn(async move {
            let called = Instant::now();
            let result = handle.send(to, &message).await;
            (result, called.elapsed(), expected)
        });
    }
    while let Some(done) = in_flight.join_next().await {
        settle(&shared, &mut sent, done);
    }
    sent
}

/// The world room (with probability `world_share`) or another chatting bot, and the deliveries that makes. `own`
/// is the sender's position in the audience, if it is there.
fn pick_target(rng: &mut StdRng, world_share: f64, own: Option<usize>, audience: &Audience) -> (Target, u32) {
    let others = audience.chatters.len() - usize::from(own.is_some());
    if others == 0 || rng.random::<f64>() < world_share {
        return (Target::World, audience.world_recipients);
    }
    let mut pick = rng.random_range(0..others);
    if own.is_some_and(|own| pick >= own) {
        pick += 1;
    }
    match audience.chatters.get(pick) {
        Some((_, name)) => (Target::User(name.clone()), 1),
        None => (Target::World, audience.world_recipients),
    }
}

/// Books one finished send.
fn settle(shared: &Shared, sent: &mut Sent, done: Result<Outcome, tokio::task::JoinError>) {
    match done {
        Ok((Ok(accepted), took, expected)) => {
            sent.accepted += 1;
            let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_LATENCY_US);
            sent.ack_latency.saturating_record(micros);
            shared.ledger.accepted(accepted.id, expected);
            Live::bump(&shared.live.accepted);
        }
        Ok((Err(error), _, _)) => {
            sent.failures.add(Operation::Send, &error);
            Live::bump(&shared.live.failed);
        }
        // A send task cannot panic short of a bug in the client library; count it rather than lose it.
        Err(join) => {
            sent.failures.add_reason(Operation::Send, super::reason::Reason::other("TaskFailed", &join.to_string()));
            Live::bump(&shared.live.failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audience(bots: usize) -> Audience {
        let chatters = (0..bots).map(|i| (i, Username::parse(&format!("bot-{i}")).expect("valid name"))).collect();
        Audience { chatters: Arc::new(chatters), world_recipients: 41 }
    }

    #[test]
    fn a_bot_never_writes_to_itself_and_reaches_everyone_else() {
        let audience = audience(4);
        let mut rng = StdRng::seed_from_u64(7);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let (to, expected) = pick_target(&mut rng, 0.0, Some(2), &audience);
            let Target::User(name) = to else { panic!("world share 0 sends one to one") };
            assert_ne!(name.as_str(), "bot-2");
            assert_eq!(expected, 1);
            seen.insert(name);
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
    }

    #[test]
    fn world_messages_expect_every_other_bot_and_a_lone_bot_writes_to_the_world() {
        let mut rng = StdRng::seed_from_u64(7);
        assert_eq!(pick_target(&mut rng, 1.0, Some(0), &audience(4)), (Target::World, 41));
        assert_eq!(pick_target(&mut rng, 0.0, Some(0), &audience(1)), (Target::World, 41));
    }
}
