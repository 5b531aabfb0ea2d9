//! The engine against a hostile peer.
//!
//! Each test plays an authenticated peer that lies: it announces huge messages, sends fragments that contradict
//! each other, opens conversation after conversation, leaves gaps that never fill, names messages far in the
//! future, acknowledges packets never sent. After every packet the tests check the engine's own accounting against
//! its receive budget, and a counting allocator checks that the heap really grows no more than that (plus a small
//! fixed allowance for structures that do not depend on the peer: the ack tracker's window, the statistics, the
//! event queue). An earlier engine gave 1.5 MiB to each 47-byte datagram of the first attack here.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use chatlab_proto::engine::budget::{DEFAULT_RECEIVE_BUDGET, STREAM_COST};
use chatlab_proto::engine::frame::Frame;
use chatlab_proto::engine::{ConnectionError, Engine, EngineConfig, Event, Ordering, PacketError};
use proptest::prelude::*;

/// Counts the bytes each thread has allocated and not freed. Every test drives one engine on one thread, so the
/// thread's count is the engine's heap (plus the test's own small buffers).
struct CountingAllocator;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counter is a const-initialised
// thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|c| c.set(c.get() + layout.size() as isize));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|c| c.set(c.get() - layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LIVE.try_with(|c| c.set(c.get() + new_size as isize - layout.size() as isize));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn live_bytes() -> isize {
    LIVE.with(Cell::get)
}

/// Heap an engine may hold beyond its receive budget whatever the peer does: the ack tracker's window of 256
/// packet numbers, the statistics' RTT history, one packet's deliveries in the event queue, a decoded frame list.
const FIXED_ALLOWANCE: isize = 96 << 10;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The receiving engine and a hostile sender that writes raw frames, with a running check of both the accounting
/// and the real heap.
struct Victim {
    engine: Engine,
    next_pn: u64,
    now: Duration,
    heap_at_start: isize,
    peak_heap: isize,
    failed: Option<ConnectionError>,
}

impl Victim {
    fn new(ordering: Ordering) -> Self {
        let config = EngineConfig { ordering, ..EngineConfig::default() };
        let engine = Engine::new(config, Duration::ZERO).expect("default configuration is valid");
        let heap_at_start = live_bytes();
        Self { engine, next_pn: 0, now: Duration::ZERO, heap_at_start, peak_heap: 0, failed: None }
    }

    /// Sends one packet holding `frames`, drains what the engine has to say, and checks the budgets.
    fn packet(&mut self, frames: &[Frame<'_>]) -> Result<(), PacketError> {
        let mut payload = Vec::new();
        for frame in frames {
            frame.encode(&mut payload);
        }
        let pn = self.next_pn;
        self.next_pn += 1;
        let result = self.engine.handle_packet(pn, &payload, self.now);
        drop(payload);
        self.drain();
        result
    }

    /// Lets time pass and runs the engine's timers.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.engine.handle_timeout(self.now);
        self.drain();
    }

    fn drain(&mut self) {
        let mut out = Vec::new();
        while self.engine.poll_transmit(self.now, &mut out).is_some() {}
        drop(out);
        while let Some(event) = self.engine.poll_event() {
            if let Event::Failed(error) = event {
                assert!(self.failed.is_none(), "a failure is reported once");
                self.failed = Some(error);
            }
        }
        self.check();
    }

    fn check(&mut self) {
        let accounted = self.engine.receive_accounted_bytes();
        assert!(accounted <= DEFAULT_RECEIVE_BUDGET, "accounted {accounted} bytes, over the budget");
        let heap = live_bytes() - self.heap_at_start;
        self.peak_heap = self.peak_heap.max(heap);
        assert!(
            heap <= DEFAULT_RECEIVE_BUDGET as isize + FIXED_ALLOWANCE,
            "the heap grew by {heap} bytes, over the budget of {DEFAULT_RECEIVE_BUDGET} and the allowance"
        );
    }
}

fn fragment(stream: u32, seq: u64, index: u16, count: u16, data: &[u8]) -> Frame<'_> {
    Frame::Fragment { stream, seq, index, count, data }
}

#[test]
fn fragment_bomb_of_announced_fragments_ends_the_connection_at_once() {
    // The attack that crashed a server: one tiny fragment announcing 65 535 pieces, a fresh message id each time.
    let mut v = Victim::new(Ordering::InOrder);
    let result = v.packet(&[fragment(0, 1, 0, u16::MAX, b"x")]);
    assert!(matches!(result, Err(PacketError::Closed(ConnectionError::TooManyFragments { count: u16::MAX, .. }))));
    assert!(matches!(v.failed, Some(ConnectionError::TooManyFragments { .. })));
    for seq in 2..2_000 {
        assert!(matches!(v.packet(&[fragment(0, seq, 0, u16::MAX, b"x")]), Err(PacketError::Closed(_))));
    }
    assert_eq!(v.engine.receive_accounted_bytes(), 0);
    assert!(v.peak_heap < FIXED_ALLOWANCE, "peak heap growth {} bytes", v.peak_heap);
}

#[test]
fn fragment_bomb_within_the_legal_count_is_held_to_half_the_budget() {
    // The same attack, announcing the largest legal message (128 fragments) and sending only its first piece.
    for ordering in [Ordering::InOrder, Ordering::Unordered] {
        let mut v = Victim::new(ordering);
        let piece = [7u8; 64];
        let mut dropped = 0;
        for seq in 1..4_000 {
            v.packet(&[fragment(0, seq, 0, 128, &piece)]).expect("waiting data is dropped, not an error");
            dropped = v.engine.stats().received.dropped_over_limit;
        }
        assert!(dropped > 0, "{ordering:?}: the budget refused some fragments");
        let accounted = v.engine.receive_accounted_bytes();
        assert!(accounted <= DEFAULT_RECEIVE_BUDGET / 2);
        eprintln!("{ordering:?}: accounted {accounted}, heap grew by {} at most", v.peak_heap);
        // The allocator does see what the engine holds (so the heap checks above can fail), and the accounting
        // does not undercount it.
        assert!(v.peak_heap > accounted as isize / 4, "heap {} for {accounted} accounted", v.peak_heap);
        assert!(v.peak_heap <= accounted as isize + FIXED_ALLOWANCE, "heap {} for {accounted} accounted", v.peak_heap);
        assert!(v.failed.is_none());
        // Nothing ever completes: after the stall timeout the connection ends and everything is given back.
        v.advance(Duration::from_secs(61));
        assert!(matches!(v.failed, Some(ConnectionError::Stalled { .. })), "{ordering:?}: {:?}", v.failed);
        assert_eq!(v.engine.receive_accounted_bytes(), 0);
    }
}

#[test]
fn new_conversations_each_with_a_first_fragment_are_held_to_a_quarter_and_then_stall() {
    // Each next message reserves the largest message's cost; past a quarter of the budget further ones are
    // dropped (no conversation record is even created for them), and the started ones, never finished, end the
    // connection at the stall timeout.
    let mut v = Victim::new(Ordering::InOrder);
    let piece = [1u8; 1000];
    for stream in 0..10_000 {
        v.packet(&[fragment(stream, 0, 0, 9, &piece)]).expect("dropped, not an error");
    }
    assert!(v.engine.stats().received.dropped_over_limit > 9_000);
    eprintln!("streams: heap grew by {} at most", v.peak_heap);
    assert!(v.peak_heap <= (DEFAULT_RECEIVE_BUDGET / 4) as isize + FIXED_ALLOWANCE);
    v.advance(Duration::from_secs(61));
    assert!(matches!(v.failed, Some(ConnectionError::Stalled { .. })), "{:?}", v.failed);
    assert_eq!(v.engine.receive_accounted_bytes(), 0, "everything was given back");
}

#[test]
fn endless_conversations_of_whole_messages_exceed_the_budget() {
    // Each message completes at once, but each new conversation's record is kept for good.
    let mut v = Victim::new(Ordering::Unordered);
    let mut result = Ok(());
    for stream in 0..100_000 {
        result = v.packet(&[fragment(stream, 0, 0, 1, b"hi")]);
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(PacketError::Closed(ConnectionError::BudgetExceeded { .. }))), "{result:?}");
}

#[test]
fn overlapping_fragments_with_other_contents_end_the_connection() {
    let mut v = Victim::new(Ordering::InOrder);
    v.packet(&[fragment(0, 0, 0, 3, &[1; 64])]).unwrap();
    v.packet(&[fragment(0, 0, 0, 3, &[1; 64])]).expect("an identical repeat is a duplicate");
    let result = v.packet(&[fragment(0, 0, 0, 3, &[2; 64])]);
    assert!(matches!(result, Err(PacketError::Closed(ConnectionError::ConflictingFragment { .. }))), "{result:?}");
}

#[test]
fn inconsistent_counts_and_sizes_end_the_connection() {
    let cases: Vec<(Vec<Frame<'static>>, &str)> = vec![
        (vec![fragment(0, 0, 0, 3, &[1; 64]), fragment(0, 0, 1, 4, &[1; 64])], "inconsistent_fragment_count"),
        (vec![fragment(0, 0, 0, 3, &[1; 10])], "fragment_too_small"),
        (vec![fragment(0, 0, 0, 1, &[1; 9000])], "message_too_large"),
    ];
    for (frames, code) in cases {
        let mut v = Victim::new(Ordering::InOrder);
        let result = frames.iter().map(|f| v.packet(std::slice::from_ref(f))).find(Result::is_err);
        match result {
            Some(Err(PacketError::Closed(error))) => assert_eq!(error.code(), code),
            other => panic!("{code}: {other:?}"),
        }
    }
}

#[test]
fn a_message_too_large_in_many_fragments_ends_the_connection() {
    let mut v = Victim::new(Ordering::InOrder);
    let piece = [3u8; 1000];
    let mut result = Ok(());
    for index in 0..20 {
        result = v.packet(&[fragment(0, 0, index, 20, &piece)]);
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(PacketError::Closed(ConnectionError::MessageTooLarge { .. }))), "{result:?}");
}

#[test]
fn an_endless_gap_is_held_to_half_the_budget_and_then_stalls() {
    let mut v = Victim::new(Ordering::InOrder);
    let text = [9u8; 500];
    for seq in 1..4_096 {
        v.packet(&[fragment(0, seq, 0, 1, &text)]).unwrap();
    }
    let accounted = v.engine.receive_accounted_bytes();
    assert!(accounted <= DEFAULT_RECEIVE_BUDGET / 2 + STREAM_COST, "waiting data and one conversation record");
    eprintln!("gap: accounted {accounted}, heap grew by {} at most", v.peak_heap);
    assert!(v.peak_heap <= accounted as isize + FIXED_ALLOWANCE, "heap {} for {accounted} accounted", v.peak_heap);
    assert!(v.engine.stats().received.dropped_over_limit > 0);
    v.advance(Duration::from_secs(30));
    assert!(v.failed.is_none(), "the gap may wait a while");
    v.advance(Duration::from_secs(31));
    assert!(matches!(v.failed, Some(ConnectionError::Stalled { seq: 0, .. })), "{:?}", v.failed);
    assert_eq!(v.engine.receive_accounted_bytes(), 0);
}

#[test]
fn message_ids_far_ahead_are_dropped_without_storing_anything() {
    let mut v = Victim::new(Ordering::Unordered);
    for seq in [u64::MAX, u64::MAX - 1, 1 << 40, 4096, 100_000] {
        v.packet(&[fragment(0, seq, 0, 1, b"far")]).unwrap();
        v.packet(&[fragment(1, seq, 0, 2, &[0; 64])]).unwrap();
    }
    assert_eq!(v.engine.stats().received.dropped_over_limit, 10);
    assert_eq!(v.engine.receive_accounted_bytes(), 0, "not even a conversation record");
}

#[test]
fn acks_for_packets_never_sent_are_refused_and_change_nothing() {
    let mut v = Victim::new(Ordering::InOrder);
    let bitmap = [0xff; 32];
    let result = v.packet(&[Frame::Ack { largest: 5, ack_delay_us: 0, bitmap: &bitmap }]);
    assert!(matches!(result, Err(PacketError::AckOfUnsentPacket { largest: 5, next: 0 })));
    let result = v.packet(&[Frame::Ack { largest: u64::MAX, ack_delay_us: u64::MAX, bitmap: &bitmap }]);
    assert!(matches!(result, Err(PacketError::AckOfUnsentPacket { .. })));
    assert!(v.failed.is_none());
}

#[test]
fn ack_ranges_that_would_underflow_are_harmless() {
    // Make the engine send something so that packet 0 exists, then acknowledge it with a full bitmap that reaches
    // below packet number zero.
    let mut v = Victim::new(Ordering::InOrder);
    v.engine.send(0, b"hello".to_vec(), v.now).unwrap();
    v.drain();
    let bitmap = [0xff; 32];
    v.packet(&[Frame::Ack { largest: 0, ack_delay_us: u64::MAX, bitmap: &bitmap }]).unwrap();
    assert_eq!(v.engine.in_flight(), 0);
}

#[test]
fn after_a_failure_the_engine_is_inert() {
    let mut v = Victim::new(Ordering::InOrder);
    let _ = v.packet(&[fragment(0, 0, 0, u16::MAX, b"x")]);
    assert!(v.failed.is_some());
    assert_eq!(v.engine.poll_timeout(), None);
    assert!(v.engine.send(0, b"late".to_vec(), v.now).is_err());
    assert!(matches!(v.packet(&[Frame::Ping]), Err(PacketError::Closed(_))));
    let mut out = Vec::new();
    assert_eq!(v.engine.poll_transmit(v.now, &mut out), None);
}

/// One frame a hostile peer might send, with fields biased towards the edges.
fn hostile_frame() -> impl Strategy<Value = (u8, u32, u64, u16, u16, usize)> {
    (
        0u8..3,
        prop_oneof![Just(0u32), 0u32..4, any::<u32>()],
        prop_oneof![0u64..8, 0u64..5000, any::<u64>()],
        prop_oneof![0u16..4, any::<u16>()],
        prop_oneof![1u16..4, Just(128u16), 1u16..200, any::<u16>()],
        prop_oneof![0usize..4, 60usize..70, 0usize..1100],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_hostile_frames_never_exceed_the_budget(
        frames in proptest::collection::vec(hostile_frame(), 1..400),
        unordered in any::<bool>(),
        step_ms in 0u64..2000,
    ) {
        let ordering = if unordered { Ordering::Unordered } else { Ordering::InOrder };
        let mut v = Victim::new(ordering);
        let data = vec![5u8; 1100];
        let bitmap = [0xaa; 32];
        for (kind, stream, seq, index, count, len) in frames {
            let frame = match kind {
                0 => {
                    let count = count.max(1);
                    Frame::Fragment { stream, seq, index: index % count, count, data: &data[..len] }
                }
                1 => Frame::Ack { largest: seq % (v.next_pn + 1), ack_delay_us: seq, bitmap: &bitmap[..len % 33] },
                _ => Frame::Ping,
            };
            let _ = v.packet(&[frame]);
            v.advance(ms(step_ms));
        }
        prop_assert!(v.engine.receive_accounted_bytes() <= DEFAULT_RECEIVE_BUDGET);
    }
}
