//! Deterministic simulations of two endpoints over the impairment model: the reliability claims of the engine,
//! checked end to end with real encryption, in simulated time.

use std::time::Duration;

use chatlab_proto::datagram::Role;
use chatlab_proto::endpoint::Endpoint;
use chatlab_proto::engine::{EngineConfig, Event, Ordering};
use chatlab_proto::impair::{Direction, Duplex, GilbertElliott, ImpairmentConfig, LossModel};
use chatlab_proto::sim::{self, SimConfig};

fn hostile(seed: u64) -> ImpairmentConfig {
    ImpairmentConfig {
        loss: LossModel::Bernoulli { p: 0.3 },
        delay: Duration::from_millis(2),
        jitter: Duration::from_millis(20),
        reorder: 0.1,
        duplicate: 0.3,
        corrupt: 0.02,
        seed,
        ..ImpairmentConfig::default()
    }
}

fn hostile_run(seed: u64, ordering: Ordering) -> sim::SimReport {
    let config = SimConfig {
        messages: 5_000,
        streams: 3,
        forward: hostile(seed),
        backward: hostile(seed + 1),
        engine: EngineConfig { ordering, ..EngineConfig::default() },
        ..SimConfig::default()
    };
    sim::run(&config).unwrap()
}

#[test]
fn every_message_arrives_exactly_once_and_in_order_under_heavy_impairment() {
    let r = hostile_run(11, Ordering::InOrder);
    assert!(r.complete, "{r:?}");
    assert_eq!(r.delivered, 5_000);
    assert_eq!(r.duplicates_delivered, 0);
    assert_eq!(r.out_of_order_delivered, 0);
    assert!(r.retransmissions > 1_000, "30 % loss must have cost retransmissions: {r:?}");
    assert!(r.link_duplicated > 0 && r.rejected_replayed > 0, "duplicates were made and stopped: {r:?}");
    assert!(r.link_corrupted > 0 && r.rejected_authentication > 0, "corruption was made and caught: {r:?}");
    assert!(r.messages_held_back > 0, "in-order delivery held messages behind gaps");
}

#[test]
fn unordered_delivery_is_still_exactly_once_and_never_holds_back() {
    let r = hostile_run(12, Ordering::Unordered);
    assert!(r.complete, "{r:?}");
    assert_eq!(r.delivered, 5_000);
    assert_eq!(r.duplicates_delivered, 0);
    assert_eq!(r.messages_held_back, 0);
    assert!(r.out_of_order_delivered > 0, "unordered delivery does reorder under jitter");
}

#[test]
fn bursty_loss_is_survived() {
    let bursty = |seed| ImpairmentConfig {
        loss: LossModel::GilbertElliott(GilbertElliott::from_mean_loss_and_burst(0.2, 8.0).unwrap()),
        delay: Duration::from_millis(1),
        seed,
        ..ImpairmentConfig::default()
    };
    let config = SimConfig { messages: 3_000, forward: bursty(3), backward: bursty(4), ..SimConfig::default() };
    let r = sim::run(&config).unwrap();
    assert!(r.complete && r.delivered == 3_000 && r.duplicates_delivered == 0, "{r:?}");
}

#[test]
fn large_messages_are_fragmented_and_survive_loss() {
    let lossy = |seed| ImpairmentConfig { loss: LossModel::Bernoulli { p: 0.1 }, seed, ..ImpairmentConfig::default() };
    let config =
        SimConfig { messages: 300, message_bytes: 8000, forward: lossy(5), backward: lossy(6), ..SimConfig::default() };
    let r = sim::run(&config).unwrap();
    assert!(r.complete && r.delivered == 300 && r.duplicates_delivered == 0, "{r:?}");
    assert!(r.packets_forward >= 300 * 7, "each message took several datagrams");
}

#[test]
fn same_seed_same_result_different_seed_different_result() {
    let a = hostile_run(21, Ordering::InOrder);
    let b = hostile_run(21, Ordering::InOrder);
    let c = hostile_run(22, Ordering::InOrder);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn rto_backs_off_while_the_link_is_dead_and_recovers_after() {
    let secret = [3u8; 32];
    let config = EngineConfig::default();
    let mut a = Endpoint::new(&secret, 9, Role::Client, config.clone(), Duration::ZERO).unwrap();
    let mut b = Endpoint::new(&secret, 9, Role::Server, config.clone(), Duration::ZERO).unwrap();
    let alive = ImpairmentConfig { delay: Duration::from_millis(1), ..ImpairmentConfig::default() };
    let dead = ImpairmentConfig { loss: LossModel::Bernoulli { p: 1.0 }, ..alive.clone() };
    let mut net = Duplex::new(alive.clone()).unwrap();
    let mut now = Duration::ZERO;
    let mut buf = Vec::new();
    let mut delivered = 0u64;
    let mut rto_samples = Vec::new();

    let mut step = |until: Duration,
                    now: &mut Duration,
                    a: &mut Endpoint,
                    b: &mut Endpoint,
                    net: &mut Duplex,
                    delivered: &mut u64| {
        loop {
            while a.poll_datagram(*now, &mut buf).unwrap() {
                net.send(Direction::AToB, *now, buf.clone());
            }
            while b.poll_datagram(*now, &mut buf).unwrap() {
                net.send(Direction::BToA, *now, buf.clone());
            }
            while let Some(e) = b.poll_event() {
                if matches!(e, Event::Delivered(_)) {
                    *delivered += 1;
                }
            }
            while a.poll_event().is_some() {}
            let next = [net.next_delivery(), a.poll_timeout(), b.poll_timeout()].into_iter().flatten().min();
            let Some(next) = next.filter(|t| *t <= until) else { break };
            *now = (*now).max(next);
            while let Some((dir, p)) = net.poll(*now) {
                let _ = if dir == Direction::AToB { b.handle_datagram(&p, *now) } else { a.handle_datagram(&p, *now) };
            }
            if a.poll_timeout().is_some_and(|t| t <= *now) {
                a.handle_timeout(*now);
            }
            if b.poll_timeout().is_some_and(|t| t <= *now) {
                b.handle_timeout(*now);
            }
        }
        *now = until;
    };

    a.send(0, b"before".to_vec(), now).unwrap();
    step(Duration::from_millis(100), &mut now, &mut a, &mut b, &mut net, &mut delivered);
    assert_eq!(delivered, 1);

    net.set_config(dead).unwrap();
    a.send(0, b"during the outage".to_vec(), now).unwrap();
    for second in 1..=5u64 {
        step(Duration::from_millis(100 + second * 1000), &mut now, &mut a, &mut b, &mut net, &mut delivered);
        rto_samples.push(a.engine().current_rto());
    }
    let expirations = a.stats().sent.rto_expirations;
    assert_eq!(delivered, 1, "nothing crosses a dead link");
    assert!(rto_samples.windows(2).all(|w| w[0] <= w[1]), "the RTO only grows while the link is dead");
    assert_eq!(*rto_samples.last().unwrap(), config.max_rto, "back-off reached the ceiling");
    assert!(expirations < 20, "back-off keeps a dead link from being flooded: {expirations} timeouts in 5 s");

    net.set_config(alive).unwrap();
    step(now + config.max_rto + Duration::from_millis(100), &mut now, &mut a, &mut b, &mut net, &mut delivered);
    assert_eq!(delivered, 2, "the message sent during the outage arrives once the link is back");
    assert_eq!(a.engine().in_flight(), 0);
    assert!(a.engine().current_rto() < Duration::from_millis(50), "the RTO returns to normal");
}
