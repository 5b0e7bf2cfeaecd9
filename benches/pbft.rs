//! PBFT benchmarks through the whole simulator (scenario, engine, replicas, checkers):
//!
//! - `pbft/one_decision/n`: one request among n all-to-all validators, 2n^2 - n + 1 messages
//!   (1,999,001 at n = 1,000; the target is at most 1 s on a 2-core machine);
//! - `pbft/n100_requests/100`: 100 requests among n = 100 (about 2 M messages).
//!
//! Criterion reports elements per second, where one element is one simulated event.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prsm_sim::{Scenario, load_str, run};

fn scenario(n: u32, requests: u32) -> Scenario {
    let yaml = format!(
        "name: bench\nseed: 1\nduration: 60s\n\
         nodes: [{{ count: {n}, role: validator }}, {{ count: 1, role: coordinator }}]\n\
         network: {{ latency: {{ constant: {{ one_way: 10ms }} }} }}\n\
         protocol: {{ pbft: {{ checkpoint_interval: 1000 }} }}\n\
         workload: {{ requests: {{ every: 100ms, start: 100ms, count: {requests} }} }}\n"
    );
    load_str(&yaml).unwrap_or_else(|d| panic!("bench scenario: {d:?}"))
}

fn pbft(c: &mut Criterion) {
    let mut group = c.benchmark_group("pbft");
    group.sample_size(10);
    for n in [100u32, 1_000] {
        let s = scenario(n, 1);
        let events = run(&s, 1).expect("runs").events;
        group.throughput(Throughput::Elements(events));
        group.bench_with_input(BenchmarkId::new("one_decision", n), &s, |b, s| {
            b.iter(|| black_box(run(s, 1).expect("runs").events));
        });
    }
    let s = scenario(100, 100);
    let events = run(&s, 1).expect("runs").events;
    group.throughput(Throughput::Elements(events));
    group.bench_with_input(BenchmarkId::new("n100_requests", 100), &s, |b, s| {
        b.iter(|| black_box(run(s, 1).expect("runs").events));
    });
    group.finish();
}

criterion_group!(benches, pbft);
criterion_main!(benches);
