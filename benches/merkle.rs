//! Merkle anti-entropy benchmarks: level-by-level comparison of two registries' trees at
//! N = 2^20 buckets with d differing buckets (`merkle/diff/d`), and the cost of one entry update
//! (`merkle/toggle`: a leaf and the 20 hashes above it).
//!
//! The comparison count is printed once per d next to its textbook bound
//! `1 + sum_{l=1..20} min(2^l, 2d)`, so the figures and the bound are read together.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prsm_protocol::registry::merkle::{Merkle, comparisons_bound, diff};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

const DEPTH: u8 = 20;

fn trees(d: u64) -> (Merkle, Merkle) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut a = Merkle::new(DEPTH);
    let buckets = a.buckets();
    for b in 0..buckets {
        a.toggle(b, rng.next_u64() | 1);
    }
    let mut b = a.clone();
    let mut changed = std::collections::BTreeSet::new();
    while (changed.len() as u64) < d {
        changed.insert((rng.next_u64() % u64::from(buckets)) as u32);
    }
    for &k in &changed {
        b.toggle(k, rng.next_u64() | 1);
    }
    (a, b)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("merkle");
    group.sample_size(20);
    for d in [1u64, 16, 256, 4_096, 65_536] {
        let (a, b) = trees(d);
        let found = diff(&a, &b);
        assert_eq!(found.buckets.len() as u64, d);
        println!(
            "merkle N=2^{DEPTH} d={d}: {} comparisons (bound {}), {} levels",
            found.comparisons,
            comparisons_bound(DEPTH, d),
            found.levels
        );
        group.throughput(Throughput::Elements(found.comparisons));
        group.bench_with_input(BenchmarkId::new("diff", d), &d, |bench, _| {
            bench.iter(|| black_box(diff(black_box(&a), black_box(&b))));
        });
    }
    let mut t = Merkle::new(DEPTH);
    let mut k = 0u32;
    group.throughput(Throughput::Elements(1));
    group.bench_function("toggle", |bench| {
        bench.iter(|| {
            k = k.wrapping_mul(2_654_435_761).wrapping_add(1) % t.buckets();
            t.toggle(black_box(k), 0x9e37_79b9_7f4a_7c15);
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
