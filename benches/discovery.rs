//! Discovery benchmarks through the whole simulator:
//!
//! - `discovery/kademlia/n`: n nodes join (paper profile) and run 200 lookups in 30 simulated s;
//! - `discovery/stack/n`: the same with SWIM health monitoring of each node's contacts and local
//!   discovery on sites of 25, so the ratio of the two is the cost of the extra layers;
//! - `discovery/full/n`: the full node, the same three layers written as `layers:` plus PBFT
//!   among 31 validators with 10 requests/s from 20 coordinators.
//!
//! The 10,000-node, 60 s targets are `scenarios/bench/stack-n10000.yaml` and
//! `scenarios/bench/full-n10000.yaml` (prsm prints wall time and events per second). Criterion
//! reports elements per second, one element per event.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prsm_sim::{Scenario, load_str, run};

fn scenario(n: u32, layers: &str) -> Scenario {
    let yaml = format!(
        "name: bench\nseed: 1\nduration: 30s\nnodes: [{{ count: {n} }}]\n\
         network: {{ latency: {{ constant: {{ one_way: 20ms }} }} }}\n\
         protocol: {{ kademlia: {{ join_spread: 5s{layers} }} }}\n\
         workload: {{ lookups: {{ every: 50ms, start: 15s, count: 200 }} }}\n"
    );
    load_str(&yaml).unwrap_or_else(|d| panic!("bench scenario: {d:?}"))
}

/// n nodes: 31 validators and 20 coordinators among them, every node running discovery, health
/// and local discovery, validators and coordinators PBFT.
fn full(n: u32) -> Scenario {
    let yaml = format!(
        "name: bench\nseed: 1\nduration: 30s\n\
         nodes: [{{ count: 31, role: validator }}, {{ count: 20, role: coordinator }}, {{ count: {} }}]\n\
         network: {{ latency: {{ constant: {{ one_way: 20ms }} }} }}\n\
         layers: {{ kademlia: {{ join_spread: 5s }}, swim: {{}}, local: {{ site_size: 25, interval: 5s, ttl: 15s }}, pbft: {{}} }}\n\
         roles: {{ validator: [kademlia, swim, local, pbft], coordinator: [kademlia, swim, local, pbft], worker: [kademlia, swim, local] }}\n\
         workload: {{ lookups: {{ every: 50ms, start: 15s, count: 200 }}, requests: {{ every: 100ms, start: 10s }} }}\n",
        n - 51
    );
    load_str(&yaml).unwrap_or_else(|d| panic!("bench scenario: {d:?}"))
}

fn discovery(c: &mut Criterion) {
    let mut group = c.benchmark_group("discovery");
    group.sample_size(10);
    let stack = ", health: {}, local: { site_size: 25, interval: 5s, ttl: 15s }";
    for (name, layers) in [("kademlia", ""), ("stack", stack)] {
        let s = scenario(1_000, layers);
        let events = run(&s, 1).expect("runs").events;
        group.throughput(Throughput::Elements(events));
        group.bench_with_input(BenchmarkId::new(name, 1_000), &s, |b, s| {
            b.iter(|| black_box(run(s, 1).expect("runs").events));
        });
    }
    let s = full(1_000);
    let events = run(&s, 1).expect("runs").events;
    group.throughput(Throughput::Elements(events));
    group.bench_with_input(BenchmarkId::new("full", 1_000), &s, |b, s| {
        b.iter(|| black_box(run(s, 1).expect("runs").events));
    });
    group.finish();
}

criterion_group!(benches, discovery);
criterion_main!(benches);
