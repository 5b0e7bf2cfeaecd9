//! Kernel benchmarks: a ping workload where N nodes each keep M messages in flight to random peers
//! over a constant 10 ms link.
//!
//! - `queue/*` is the bare kernel loop (pop, draw a peer with ChaCha8, push): our radix-heap
//!   `EventQueue` against a `BinaryHeap<(time, seq, event)>`, doing identical work. The ratio
//!   between them at 1,000,000 pending events is why the kernel uses a radix heap.
//! - `engine/relay` is the full path every simulated message takes: event queue, network model,
//!   trace hash, latency histogram, and the target node's `Node::step` with its own RNG stream.
//!
//! Criterion reports elements per second, where one element is one delivered event.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prsm_protocol::random::below;
use prsm_sim::kernel::EventQueue;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

const LATENCY_NS: u64 = 10_000_000;
const EVENTS: u64 = 2_000_000;

fn ping_binary_heap(n: u32, m: u32, events: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut heap = BinaryHeap::with_capacity((n * m) as usize);
    let mut seq = 0u64;
    for node in 0..n {
        for _ in 0..m {
            heap.push(Reverse((LATENCY_NS, seq, node)));
            seq += 1;
        }
    }
    let mut checksum = 0u64;
    for _ in 0..events {
        let Some(Reverse((t, _, node))) = heap.pop() else {
            break;
        };
        checksum = checksum.wrapping_add(u64::from(node));
        let peer = below(&mut rng, u64::from(n)) as u32;
        heap.push(Reverse((t + LATENCY_NS, seq, peer)));
        seq += 1;
    }
    checksum
}

fn ping_radix(n: u32, m: u32, events: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut queue = EventQueue::new();
    for node in 0..n {
        for _ in 0..m {
            queue.push(LATENCY_NS, node);
        }
    }
    let mut checksum = 0u64;
    for _ in 0..events {
        let Some((t, node)) = queue.pop() else { break };
        checksum = checksum.wrapping_add(u64::from(node));
        let peer = below(&mut rng, u64::from(n)) as u32;
        queue.push(t + LATENCY_NS, peer);
    }
    checksum
}

fn relay_scenario(n: u32, m: u32, events: u64) -> prsm_sim::Scenario {
    // n*m deliveries per 10 ms of virtual time.
    let duration_us = events * 10_000 / u64::from(n * m);
    let yaml = format!(
        "name: bench\nseed: 1\nduration: {duration_us}us\nnodes: [{{ count: {n} }}]\n\
         network: {{ latency: {{ constant: {{ one_way: 10ms }} }} }}\n\
         protocol: {{ relay: {{ tokens_per_node: {m} }} }}\noutput: {{ sample_every: {duration_us}us }}\n"
    );
    prsm_sim::load_str(&yaml).unwrap_or_else(|e| panic!("bench scenario: {e:?}"))
}

fn kernel(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    group
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1));
    group.throughput(Throughput::Elements(EVENTS));
    for &(n, m) in &[(10_000u32, 1u32), (10_000, 100)] {
        let id = format!("n{n}-m{m}");
        group.bench_with_input(
            BenchmarkId::new("binary_heap", &id),
            &(n, m),
            |b, &(n, m)| b.iter(|| black_box(ping_binary_heap(n, m, EVENTS))),
        );
        group.bench_with_input(
            BenchmarkId::new("radix_heap", &id),
            &(n, m),
            |b, &(n, m)| b.iter(|| black_box(ping_radix(n, m, EVENTS))),
        );
    }
    group.finish();

    let mut group = c.benchmark_group("engine");
    group
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1));
    for &(n, m) in &[(10_000u32, 1u32), (10_000, 100)] {
        let scenario = relay_scenario(n, m, EVENTS);
        let events = prsm_sim::run(&scenario, 1)
            .map(|o| o.events)
            .unwrap_or(EVENTS);
        group.throughput(Throughput::Elements(events));
        group.bench_with_input(
            BenchmarkId::new("relay", format!("n{n}-m{m}")),
            &scenario,
            |b, s| b.iter(|| black_box(prsm_sim::run(s, 1).map(|o| o.trace_hash))),
        );
    }
    group.finish();
}

criterion_group!(benches, kernel);
criterion_main!(benches);
