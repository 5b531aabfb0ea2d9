//! Benchmarks of the protocol core: what one encrypted chat message costs in CPU, without any network.
//!
//! `cargo bench -p chatlab-benches --bench proto`

use std::hint::black_box;

use chatlab_benches::MemoryPair;
use chatlab_proto::control::{ClientMessage, FrameDecoder, decode_client, encode, encode_frame};
use chatlab_proto::datagram::{KeyUpdateConfig, PacketType, Role, SessionKeys};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Seal and open one datagram carrying a 64-byte chat message: the per-packet cost of AES-256-GCM and the header.
fn datagram_seal_open(c: &mut Criterion) {
    let secret = [1u8; 32];
    let (mut sealer, _) = SessionKeys::derive(&secret, Role::Client).into_endpoints(9, KeyUpdateConfig::default());
    let (_, mut opener) = SessionKeys::derive(&secret, Role::Server).into_endpoints(9, KeyUpdateConfig::default());
    let plaintext = [0x55u8; 64];
    let mut wire = Vec::with_capacity(1200);
    let mut out = Vec::with_capacity(1200);
    let mut pn = 0u64;
    let mut group = c.benchmark_group("datagram");
    group.throughput(Throughput::Elements(1));
    group.bench_function("seal_open_64B", |b| {
        b.iter(|| {
            pn += 1;
            sealer.seal(PacketType::Data, pn, black_box(&plaintext), &mut wire).expect("seal");
            opener.open_into(black_box(&wire), &mut out).expect("open");
        })
    });
    group.finish();
}

/// Messages through two endpoints in memory: engine, frames, encryption and acknowledgements, end to end. The
/// throughput figure is encrypted 64-byte messages per second on one core.
fn endpoint_exchange(c: &mut Criterion) {
    const BATCH: usize = 10_000;
    let payload = [0x33u8; 64];
    let mut group = c.benchmark_group("endpoint");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.bench_function("exchange_64B_x10000", |b| {
        b.iter(|| {
            let mut pair = MemoryPair::new();
            black_box(pair.exchange(BATCH, &payload))
        })
    });
    group.finish();
}

/// Encode, frame, unframe and decode one control message (without Noise).
fn control_codec(c: &mut Criterion) {
    let message =
        ClientMessage::Chat { client_msg_id: 12, to: chatlab_proto::chat::Target::World, text: "x".repeat(64) };
    let mut group = c.benchmark_group("control");
    group.throughput(Throughput::Elements(1));
    group.bench_function("chat_message_round_trip", |b| {
        let mut wire = Vec::new();
        let mut decoder = FrameDecoder::new();
        b.iter(|| {
            wire.clear();
            let bytes = encode(black_box(&message)).expect("encode");
            encode_frame(&bytes, &mut wire).expect("frame");
            decoder.extend(&wire);
            let frame = decoder.next_frame().expect("frame").expect("complete");
            black_box(decode_client(&frame).expect("decode"))
        })
    });
    group.finish();
}

criterion_group!(benches, datagram_seal_open, endpoint_exchange, control_codec);
criterion_main!(benches);
