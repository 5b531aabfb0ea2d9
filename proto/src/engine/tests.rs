//! Tests of the whole engine: two engines joined by a scripted link in simulated time. The statistical simulation
//! over the impairment model lives in `proto/tests/simulation.rs`.

use std::collections::VecDeque;
use std::time::Duration;

use super::*;

const ONE_WAY: Duration = Duration::from_micros(500);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Two engines and the packets between them. `drop_a_to_b` / `drop_b_to_a` decide, by the index of each packet sent
/// in that direction, whether the link loses it.
struct Pair {
    a: Engine,
    b: Engine,
    now: Duration,
    a_to_b: VecDeque<(Duration, u64, Vec<u8>)>,
    b_to_a: VecDeque<(Duration, u64, Vec<u8>)>,
    sent_a: usize,
    sent_b: usize,
    drop_a_to_b: Box<dyn FnMut(usize) -> bool>,
    drop_b_to_a: Box<dyn FnMut(usize) -> bool>,
    delivered_to_b: Vec<Delivery>,
    acked_at_a: Vec<AckedMessage>,
    idle_at_a: usize,
}

impl Pair {
    fn new(config: EngineConfig) -> Self {
        Self {
            a: Engine::new(config.clone(), Duration::ZERO).unwrap(),
            b: Engine::new(config, Duration::ZERO).unwrap(),
            now: Duration::ZERO,
            a_to_b: VecDeque::new(),
            b_to_a: VecDeque::new(),
            sent_a: 0,
            sent_b: 0,
            drop_a_to_b: Box::new(|_| false),
            drop_b_to_a: Box::new(|_| false),
            delivered_to_b: Vec::new(),
            acked_at_a: Vec::new(),
            idle_at_a: 0,
        }
    }

    fn flush(&mut self) {
        let mut buf = Vec::new();
        while let Some(pn) = self.a.poll_transmit(self.now, &mut buf) {
            if !(self.drop_a_to_b)(self.sent_a) {
                self.a_to_b.push_back((self.now + ONE_WAY, pn, buf.clone()));
            }
            self.sent_a += 1;
        }
        while let Some(pn) = self.b.poll_transmit(self.now, &mut buf) {
            if !(self.drop_b_to_a)(self.sent_b) {
                self.b_to_a.push_back((self.now + ONE_WAY, pn, buf.clone()));
            }
            self.sent_b += 1;
        }
        while let Some(event) = self.a.poll_event() {
            match event {
                Event::Acked(m) => self.acked_at_a.push(m),
                Event::PeerIdle => self.idle_at_a += 1,
                Event::Delivered(_) => {}
                Event::Failed(error) => panic!("an honest peer ended the connection: {error}"),
            }
        }
        while let Some(event) = self.b.poll_event() {
            if let Event::Delivered(d) = event {
                self.delivered_to_b.push(d);
            }
        }
    }

    /// Advances simulated time to `until`, processing every arrival and timer on the way.
    fn run_until(&mut self, until: Duration) {
        loop {
            self.flush();
            let next = [
                self.a_to_b.front().map(|p| p.0),
                self.b_to_a.front().map(|p| p.0),
                self.a.poll_timeout(),
                self.b.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next.filter(|t| *t <= until) else { break };
            self.now = self.now.max(next);
            while self.a_to_b.front().is_some_and(|p| p.0 <= self.now) {
                let (_, pn, bytes) = self.a_to_b.pop_front().unwrap();
                self.b.handle_packet(pn, &bytes, self.now).unwrap();
            }
            while self.b_to_a.front().is_some_and(|p| p.0 <= self.now) {
                let (_, pn, bytes) = self.b_to_a.pop_front().unwrap();
                self.a.handle_packet(pn, &bytes, self.now).unwrap();
            }
            if self.a.poll_timeout().is_some_and(|t| t <= self.now) {
                self.a.handle_timeout(self.now);
            }
            if self.b.poll_timeout().is_some_and(|t| t <= self.now) {
                self.b.handle_timeout(self.now);
            }
        }
        self.now = until;
    }
}

#[test]
fn one_message_is_delivered_and_acknowledged_with_an_rtt_sample() {
    let mut p = Pair::new(EngineConfig::default());
    let seq = p.a.send(0, b"hello".to_vec(), p.now).unwrap();
    p.run_until(ms(5));
    assert_eq!(p.delivered_to_b.len(), 1);
    assert_eq!(p.delivered_to_b[0].data, b"hello");
    assert_eq!((p.acked_at_a[0].stream, p.acked_at_a[0].seq), (0, seq));
    assert_eq!(p.a.rtt().latest(), Some(ONE_WAY * 2));
    assert_eq!(p.a.stats().sent.retransmissions_timeout + p.a.stats().sent.retransmissions_fast, 0);
    assert_eq!(p.a.in_flight(), 0);
}

#[test]
fn a_large_message_is_fragmented_and_reassembled() {
    let mut p = Pair::new(EngineConfig::default());
    let big: Vec<u8> = (0..MAX_MESSAGE_BYTES).map(|i| (i % 251) as u8).collect();
    p.a.send(3, big.clone(), p.now).unwrap();
    p.run_until(ms(5));
    assert_eq!(p.delivered_to_b.len(), 1);
    assert_eq!(p.delivered_to_b[0].data, big);
    assert!(p.a.stats().sent.packets >= 8);
}

#[test]
fn too_large_and_window_full_are_refused_without_queueing() {
    let config = EngineConfig { send_window: 2, ..EngineConfig::default() };
    let mut e = Engine::new(config, Duration::ZERO).unwrap();
    assert_eq!(
        e.send(0, vec![0; MAX_MESSAGE_BYTES + 1], Duration::ZERO),
        Err(SendError::TooLarge { len: MAX_MESSAGE_BYTES + 1, max: MAX_MESSAGE_BYTES })
    );
    e.send(0, vec![1], Duration::ZERO).unwrap();
    e.send(0, vec![2], Duration::ZERO).unwrap();
    assert!(!e.can_send());
    assert_eq!(e.send(0, vec![3], Duration::ZERO), Err(SendError::WindowFull { in_flight: 2 }));
    assert_eq!(e.stats().sent.window_full, 1);
    assert_eq!(e.stats().sent.messages, 2);
}

#[test]
fn a_lost_packet_is_resent_after_the_timeout() {
    let mut p = Pair::new(EngineConfig::default());
    p.drop_a_to_b = Box::new(|i| i == 0);
    p.a.send(0, b"x".to_vec(), p.now).unwrap();
    p.run_until(ms(1000));
    assert_eq!(p.delivered_to_b.len(), 1);
    assert_eq!(p.a.stats().sent.retransmissions_timeout, 1);
    assert_eq!(p.a.stats().sent.rto_expirations, 1);
}

#[test]
fn later_acks_trigger_fast_retransmit() {
    let mut p = Pair::new(EngineConfig::default());
    // A first sample so the loss delay reflects the 1 ms RTT rather than the 100 ms initial guess.
    p.a.send(0, b"warm-up".to_vec(), p.now).unwrap();
    p.run_until(ms(10));
    p.drop_a_to_b = Box::new(|i| i == 1);
    for i in 0..5u8 {
        p.a.send(0, vec![i], p.now).unwrap();
        p.run_until(p.now + Duration::from_micros(100));
    }
    p.run_until(p.now + ms(50));
    assert_eq!(p.delivered_to_b.len(), 6);
    assert_eq!(p.a.stats().sent.retransmissions_fast, 1);
    assert_eq!(p.a.stats().sent.retransmissions_timeout, 0);
    // In order: the messages behind the hole waited for it.
    let seqs: Vec<u64> = p.delivered_to_b.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, (0..6).collect::<Vec<_>>());
    assert!(p.b.stats().received.messages_held_back >= 1);
}

#[test]
fn a_duplicated_packet_is_counted_and_delivered_once() {
    let mut a = Engine::new(EngineConfig::default(), Duration::ZERO).unwrap();
    let mut b = Engine::new(EngineConfig::default(), Duration::ZERO).unwrap();
    a.send(0, b"once".to_vec(), Duration::ZERO).unwrap();
    let mut buf = Vec::new();
    let pn = a.poll_transmit(Duration::ZERO, &mut buf).unwrap();
    b.handle_packet(pn, &buf, Duration::ZERO).unwrap();
    b.handle_packet(pn, &buf, Duration::ZERO).unwrap();
    let delivered = std::iter::from_fn(|| b.poll_event()).filter(|e| matches!(e, Event::Delivered(_))).count();
    assert_eq!(delivered, 1);
    assert_eq!(b.stats().received.duplicate_packets, 1);
}

#[test]
fn a_late_ack_reveals_a_spurious_retransmission() {
    let mut p = Pair::new(EngineConfig::default());
    p.a.send(0, b"x".to_vec(), p.now).unwrap();
    p.flush();
    // Hold b's ack back far beyond the RTO, then let everything through.
    p.b.handle_packet(0, &p.a_to_b.pop_front().unwrap().2, p.now).unwrap();
    let mut ack = Vec::new();
    let ack_pn = p.b.poll_transmit(p.now, &mut ack).unwrap();
    p.run_until(ms(400));
    p.a.handle_packet(ack_pn, &ack, p.now).unwrap();
    assert!(p.a.stats().sent.retransmissions_timeout >= 1);
    assert!(p.a.stats().sent.spurious_retransmissions >= 1);
    assert_eq!(p.delivered_to_b.len(), 1, "b de-duplicated the retransmitted copies");
    assert_eq!(p.b.stats().received.duplicate_messages, p.b.stats().received.packets - 1);
}

#[test]
fn rto_backs_off_on_a_dead_link_and_recovers_when_it_returns() {
    let mut p = Pair::new(EngineConfig::default());
    p.a.send(0, b"warm-up".to_vec(), p.now).unwrap();
    p.run_until(ms(10));
    let dead = std::rc::Rc::new(std::cell::Cell::new(true));
    let d = dead.clone();
    p.drop_a_to_b = Box::new(move |_| d.get());
    p.a.send(0, b"into the void".to_vec(), p.now).unwrap();
    p.run_until(ms(3_000));
    let expirations = p.a.stats().sent.rto_expirations;
    // 2 ms doubling to the 1 s ceiling: 2+4+…+512 ≈ 1 s, then once a second: about ten timeouts, not a thousand.
    assert!((5..=15).contains(&expirations), "{expirations}");
    assert_eq!(p.a.current_rto(), EngineConfig::default().max_rto);
    dead.set(false);
    p.run_until(ms(4_100));
    assert_eq!(p.delivered_to_b.len(), 2);
    assert!(p.a.current_rto() < ms(10), "back-off resets once acks flow again");
}

#[test]
fn idle_engine_pings_and_notices_a_silent_peer() {
    let config = EngineConfig::default();
    let mut p = Pair::new(config.clone());
    p.run_until(config.keepalive + ms(1));
    assert!(p.a.stats().sent.pings >= 1);
    assert!(p.b.stats().sent.acks >= 1, "the ping's ack is the pong");
    assert_eq!(p.idle_at_a, 0);
    p.drop_b_to_a = Box::new(|_| true);
    p.run_until(p.now + config.idle_timeout + ms(1));
    assert_eq!(p.idle_at_a, 1);
}

#[test]
fn malformed_payload_is_refused_and_counted() {
    let mut e = Engine::new(EngineConfig::default(), Duration::ZERO).unwrap();
    assert!(matches!(e.handle_packet(0, &[0xc1], Duration::ZERO), Err(PacketError::Frames(_))));
    assert_eq!(e.stats().received.rejected_malformed, 1);
    assert_eq!(e.stats().received.packets, 0);
}

#[test]
fn ack_of_a_packet_never_sent_is_refused() {
    let mut e = Engine::new(EngineConfig::default(), Duration::ZERO).unwrap();
    let mut payload = Vec::new();
    frame::Frame::Ack { largest: 5, ack_delay_us: 0, bitmap: &[] }.encode(&mut payload);
    assert_eq!(
        e.handle_packet(0, &payload, Duration::ZERO),
        Err(PacketError::AckOfUnsentPacket { largest: 5, next: 0 })
    );
}

#[test]
fn nothing_to_send_means_no_packet_and_no_busy_timer() {
    let mut e = Engine::new(EngineConfig::default(), Duration::ZERO).unwrap();
    let mut buf = Vec::new();
    assert_eq!(e.poll_transmit(Duration::ZERO, &mut buf), None);
    assert_eq!(e.poll_timeout(), Some(EngineConfig::default().keepalive));
}

#[test]
fn snapshot_reports_the_rtt_figures() {
    let mut p = Pair::new(EngineConfig::default());
    p.a.send(0, b"x".to_vec(), p.now).unwrap();
    p.run_until(ms(5));
    let snap = p.a.snapshot();
    assert_eq!(snap.latest_rtt_us, Some(1000));
    assert_eq!(snap.sent.messages_acked, 1);
    // The histogram keeps two significant digits: 1000 µs reads back as its bucket's top, within 1 %.
    let p50 = snap.ack_latency_p50_us.unwrap();
    assert!((1000..=1010).contains(&p50), "{p50}");
}

#[test]
fn a_burst_larger_than_the_ack_bitmap_is_acknowledged_without_retransmission() {
    // Regression: 1 000 packets arriving before the receiver could send anything used to leave all but the last 256
    // unacknowledged, and the sender resent them after its RTO.
    let mut a = Engine::new(EngineConfig::default(), Duration::ZERO).unwrap();
    let mut b = Engine::new(EngineConfig::default(), Duration::ZERO).unwrap();
    let mut packets = Vec::new();
    let mut buf = Vec::new();
    for i in 0..1000u32 {
        a.send(0, i.to_be_bytes().repeat(300), Duration::ZERO).unwrap();
    }
    while let Some(pn) = a.poll_transmit(Duration::ZERO, &mut buf) {
        packets.push((pn, buf.clone()));
    }
    assert!(packets.len() > 300);
    for (pn, bytes) in &packets {
        b.handle_packet(*pn, bytes, Duration::ZERO).unwrap();
    }
    while let Some(pn) = b.poll_transmit(Duration::ZERO, &mut buf) {
        a.handle_packet(pn, &buf, Duration::ZERO).unwrap();
    }
    assert_eq!(a.in_flight(), 0);
    assert_eq!(a.stats().sent.retransmissions_fast + a.stats().sent.retransmissions_timeout, 0);
}

#[test]
fn ping_asks_for_an_ack_and_gives_an_rtt_sample() {
    let mut p = Pair::new(EngineConfig::default());
    p.a.ping();
    p.run_until(ms(5));
    assert_eq!(p.a.stats().sent.pings, 1);
    assert_eq!(p.a.rtt().latest(), Some(ONE_WAY * 2));
}

#[test]
fn reordering_mistaken_for_loss_widens_the_thresholds() {
    let mut a = Engine::new(EngineConfig::default(), Duration::ZERO).unwrap();
    let mut b = Engine::new(EngineConfig::default(), Duration::ZERO).unwrap();
    let mut buf = Vec::new();
    let mut packets = Vec::new();
    for i in 0..5u8 {
        a.send(0, vec![i], Duration::ZERO).unwrap();
        let pn = a.poll_transmit(Duration::ZERO, &mut buf).unwrap();
        packets.push((pn, buf.clone()));
    }
    assert_eq!(a.reordering_thresholds(), (3, 9));
    // Packet 0 is overtaken by the four after it: the sender declares it lost (fast retransmit)...
    let t = Duration::from_millis(1);
    for (pn, bytes) in packets.iter().skip(1) {
        b.handle_packet(*pn, bytes, t).unwrap();
    }
    while let Some(pn) = b.poll_transmit(t, &mut buf) {
        a.handle_packet(pn, &buf, t).unwrap();
    }
    assert_eq!(a.stats().sent.retransmissions_fast, 1);
    // ...then it arrives after all, and its ack reveals the mistake.
    b.handle_packet(packets[0].0, &packets[0].1, t).unwrap();
    while let Some(pn) = b.poll_transmit(t, &mut buf) {
        a.handle_packet(pn, &buf, t).unwrap();
    }
    assert_eq!(a.stats().sent.spurious_retransmissions, 1);
    assert_eq!(a.reordering_thresholds(), (6, 11));
}
