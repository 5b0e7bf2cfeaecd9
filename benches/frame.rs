//! Wire security layer benchmarks: seal + open of one DATA frame (200 B and 64 KiB payloads:
//! one ed25519 signature and one strict verification each), a full in-memory handshake (two
//! signatures, two verifications, OS nonces), and `FrameReader` over 1 MiB of random garbage
//! (rejected at the first header) and over 1 MiB of valid 1 KiB frames, both pushed in 64 KiB
//! chunks as a socket would deliver them.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prsm::live::frame::{
    AcceptStep, DATA, FrameReader, HEADER_LEN, Session, accept, dial, encode_frame,
};
use prsm::live::keys::{Keypair, PublicKey};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

const MIB: usize = 1 << 20;
const CHUNK: usize = 64 * 1024;

fn key(seed: u8) -> Keypair {
    Keypair::from_secret([seed; 32])
}

/// A full handshake in memory: (dialer session, listener session).
fn handshake(d: &Keypair, l: &Keypair, roster: &[PublicKey]) -> (Session, Session) {
    let (dial_state, hello) = dial(d, l.public()).expect("os random");
    let mut accept_state = accept(l).expect("os random");
    let Ok(AcceptStep::Reply(welcome)) =
        accept_state.on_frame(hello[1], &hello[HEADER_LEN..], roster)
    else {
        panic!("hello refused");
    };
    let (dialer, proof) = dial_state
        .on_frame(welcome[1], &welcome[HEADER_LEN..])
        .expect("welcome accepted");
    let Ok(AcceptStep::Done(listener)) =
        accept_state.on_frame(proof[1], &proof[HEADER_LEN..], roster)
    else {
        panic!("proof refused");
    };
    (dialer, listener)
}

/// Pushes `stream` in socket-sized chunks, draining after each; returns frames and rejects seen.
fn read_all(stream: &[u8]) -> (usize, usize) {
    let mut reader = FrameReader::new();
    let (mut frames, mut rejects) = (0, 0);
    for chunk in stream.chunks(CHUNK) {
        reader.push(chunk);
        while let Some(frame) = reader.next_frame() {
            match frame {
                Ok(_) => frames += 1,
                Err(_) => rejects += 1,
            }
        }
    }
    (frames, rejects)
}

fn bench(c: &mut Criterion) {
    let (d, l) = (key(1), key(2));
    let mut roster = vec![d.public(), l.public()];
    roster.sort();

    let mut group = c.benchmark_group("frame");
    for size in [200usize, 64 * 1024] {
        let (mut dialer, mut listener) = handshake(&d, &l, &roster);
        let payload = vec![0x5a; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(
            BenchmarkId::new("seal_open", size),
            &payload,
            |b, payload| {
                b.iter(|| {
                    let frame = dialer.seal(black_box(payload));
                    let opened = listener.open(DATA, &frame[HEADER_LEN..]).expect("genuine");
                    black_box(opened)
                })
            },
        );
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("handshake", |b| {
        b.iter(|| black_box(handshake(&d, &l, &roster)))
    });

    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut garbage = vec![0u8; MIB];
    rng.fill_bytes(&mut garbage);
    assert_eq!(read_all(&garbage), (0, 1));
    let mut frames = Vec::with_capacity(MIB + MIB / 100);
    while frames.len() < MIB {
        frames.extend_from_slice(&encode_frame(DATA, &[0x5a; 1024]));
    }
    let count = read_all(&frames).0;
    group.throughput(Throughput::Bytes(MIB as u64));
    group.bench_function("reader/garbage_1MiB", |b| {
        b.iter(|| black_box(read_all(black_box(&garbage))))
    });
    group.bench_function("reader/frames_1MiB", |b| {
        b.iter(|| {
            let read = read_all(black_box(&frames));
            assert_eq!(read.0, count);
            read
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
