//! Registry and Merkle tests: the level-by-level comparison against its textbook bound, merge
//! rules, sessions that heal a partition, bounded and screened messages.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::merkle::{Merkle, comparisons_bound, diff};
use super::*;
use crate::random::below;
use crate::testing::Harness;
use crate::{Protocol, Time};

/// Differing inner nodes of two trees, counted by walking both in full.
fn differing_inner_nodes(a: &Merkle, b: &Merkle) -> u64 {
    (1..a.buckets()).filter(|&i| a.hash(i) != b.hash(i)).count() as u64
}

#[test]
fn level_by_level_comparison_finds_exactly_the_differing_buckets_within_the_bound() {
    let depth = 12;
    let n = 1u64 << depth;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut base = Merkle::new(depth);
    for b in 0..n as u32 {
        base.toggle(b, below(&mut rng, u64::MAX) | 1);
    }
    for d in [0u64, 1, 2, 3, 5, 17, 64, 100, 1_000, 2_048, 4_096] {
        let mut other = base.clone();
        let mut chosen = BTreeSet::new();
        while (chosen.len() as u64) < d {
            chosen.insert(below(&mut rng, n) as u32);
        }
        for &b in &chosen {
            other.toggle(b, below(&mut rng, u64::MAX) | 1);
        }
        let found = diff(&base, &other);
        assert_eq!(
            found.buckets,
            chosen.iter().copied().collect::<Vec<_>>(),
            "d = {d}: exactly the differing buckets"
        );
        // Each differing inner node costs the comparison of its two children; the roots cost one.
        let exact = 1 + 2 * differing_inner_nodes(&base, &other);
        assert_eq!(found.comparisons, exact, "d = {d}");
        // The textbook bound: level l compares at most min(2^l, 2d) nodes.
        let bound = comparisons_bound(depth, d);
        assert!(
            found.comparisons <= bound,
            "d = {d}: {} comparisons, bound {bound}",
            found.comparisons
        );
        match d {
            0 => assert_eq!(found.comparisons, 1),
            // One path from the root: two children per level.
            1 => assert_eq!(found.comparisons, 1 + 2 * u64::from(depth)),
            // Every node of the tree.
            _ if d == n => assert_eq!(found.comparisons, 2 * n - 1),
            _ => {}
        }
        // Far fewer than comparing every bucket while d is small.
        if d > 0 && d <= 17 {
            assert!(found.comparisons < n / 8, "d = {d}: {}", found.comparisons);
        }
        assert_eq!(found.levels, if d == 0 { 1 } else { u32::from(depth) + 1 });
    }
}

#[test]
fn the_bound_is_tight_for_spread_out_differences() {
    // d buckets spread evenly: every level down to log2(d) differs entirely, then d paths.
    let depth = 10;
    for log_d in [0u32, 2, 5, 8] {
        let d = 1u64 << log_d;
        let mut a = Merkle::new(depth);
        let b = Merkle::new(depth);
        let stride = (1u32 << depth) / d as u32;
        for k in 0..d as u32 {
            a.toggle(k * stride, 0xabcd_0000 + u64::from(k));
        }
        assert_eq!(
            diff(&a, &b).comparisons,
            comparisons_bound(depth, d),
            "d = {d}"
        );
    }
}

#[test]
fn toggling_twice_restores_the_tree_and_empty_trees_hash_to_zero() {
    let mut t = Merkle::new(6);
    assert_eq!(t.root(), 0);
    t.toggle(5, 42);
    assert_ne!(t.root(), 0);
    t.toggle(5, 42);
    assert_eq!(t, Merkle::new(6));
}

fn entry(version: u64, writer: u32, value: u64) -> Entry {
    Entry {
        version,
        writer: NodeId(writer),
        value,
    }
}

#[test]
fn merge_rules_are_total_orders_so_order_does_not_matter() {
    let writes: Vec<(u64, Entry)> = (0..200u64)
        .map(|i| (i % 23, entry(i % 7, (i % 5) as u32, (i * 7919) % 101)))
        .collect();
    for rule in MergeRule::ALL {
        let config = RegistryConfig {
            merge: rule,
            depth: 6,
            ..RegistryConfig::default()
        };
        let mut forward = Registry::new(config.clone(), NodeId(0));
        let mut backward = Registry::new(config.clone(), NodeId(1));
        let mut twice = Registry::new(config, NodeId(2));
        for &(k, e) in &writes {
            forward.merge(k, e);
            twice.merge(k, e);
            twice.merge(k, e);
        }
        for &(k, e) in writes.iter().rev() {
            backward.merge(k, e);
        }
        // An entry the node already holds changes nothing.
        let (k, e) = writes[0];
        let held = *forward.get(k).expect("written");
        assert!(
            !forward.merge(k, held),
            "{}: the same entry again",
            rule.name()
        );
        assert!(
            !rule.wins(&e, &e),
            "{}: an entry does not beat itself",
            rule.name()
        );
        assert_eq!(forward.root(), backward.root(), "{}", rule.name());
        assert_eq!(forward.root(), twice.root(), "{}", rule.name());
        let a: Vec<_> = forward.entries().map(|(k, e)| (k, *e)).collect();
        let b: Vec<_> = backward.entries().map(|(k, e)| (k, *e)).collect();
        assert_eq!(a, b);
    }
    let (old, new) = (entry(3, 1, 100), entry(4, 0, 1));
    assert!(MergeRule::LastWriterWins.wins(&new, &old));
    assert!(!MergeRule::Max.wins(&new, &old));
    assert!(
        MergeRule::LastWriterWins.wins(&entry(3, 2, 0), &entry(3, 1, 9)),
        "ties go to the larger writer"
    );
}

#[test]
fn local_writes_take_a_version_past_everything_seen() {
    let mut r = Registry::new(RegistryConfig::default(), NodeId(3));
    r.merge(9, entry(41, 7, 1));
    assert!(r.write(5, 10));
    assert_eq!(r.get(5), Some(&entry(42, 3, 10)));
    assert!(r.write(5, 11));
    assert_eq!(r.get(5).map(|e| e.version), Some(43));
}

/// Four registries that know each other; `cut` splits {0, 1} from {2, 3} while set.
fn cluster(config: RegistryConfig, cut: Rc<Cell<bool>>) -> Harness<Registry> {
    let seeds: Arc<[NodeId]> = (0..4).map(NodeId).collect();
    Harness::new(4, Duration::from_millis(10), 3, |id| {
        Registry::new(
            RegistryConfig {
                seeds: seeds.clone(),
                ..config.clone()
            },
            id,
        )
    })
    .with_filter(move |from, to, _| !cut.get() || (from.0 < 2) == (to.0 < 2))
}

fn roots(h: &Harness<Registry>) -> BTreeSet<u64> {
    (0..4)
        .filter_map(|i| h.node(NodeId(i)))
        .map(Registry::root)
        .collect()
}

#[test]
fn sessions_heal_a_partition_and_conflicts_resolve_by_the_merge_rule() {
    let cut = Rc::new(Cell::new(true));
    let mut h = cluster(
        RegistryConfig {
            depth: 8,
            ..RegistryConfig::default()
        },
        cut.clone(),
    );
    h.start_all();
    // Both sides write while cut; key 7 on both.
    for k in 0..300u64 {
        let node = NodeId((k % 4) as u32);
        h.command(node, RegistryCommand::Write { key: k, value: k });
    }
    h.command(
        NodeId(0),
        RegistryCommand::Write {
            key: 7,
            value: 1000,
        },
    );
    h.command(
        NodeId(3),
        RegistryCommand::Write {
            key: 7,
            value: 2000,
        },
    );
    h.run_until(Time(10_000_000_000));
    assert_eq!(roots(&h).len(), 2, "each side converged on its own");
    let repaired_before: u64 = (0..4)
        .map(|i| h.node(NodeId(i)).expect("live").stats().repaired)
        .sum();
    // Side {0, 1} holds 151 keys (node 0 also wrote key 7, which node 3 owns), side {2, 3} 150.
    assert_eq!(
        repaired_before,
        151 + 150,
        "each node took its side-mate's writes"
    );
    cut.set(false);
    h.run_until(Time(40_000_000_000));
    assert_eq!(roots(&h).len(), 1, "one state after the heal");
    let r = h.node(NodeId(1)).expect("live");
    assert_eq!(r.len(), 300);
    // Node 3's write of key 7 had the larger version (it had seen more), or the same version
    // and the larger writer.
    let winner = [h.node(NodeId(0)), h.node(NodeId(3))].map(|n| n.expect("live").get(7).copied());
    assert_eq!(r.get(7), winner[0].max_by_lww(winner[1]).as_ref());
    let repaired: u64 = (0..4)
        .map(|i| h.node(NodeId(i)).expect("live").stats().repaired)
        .sum::<u64>()
        - repaired_before;
    // Each node lacked the other side's keys (key 7 is on both sides: the side that lost it
    // takes the winner): 150 per node, every entry repaired exactly once.
    assert_eq!(repaired, 4 * 150, "repaired {repaired}");
}

trait LwwMax {
    fn max_by_lww(self, other: Self) -> Self;
}

impl LwwMax for Option<Entry> {
    fn max_by_lww(self, other: Self) -> Self {
        match (self, other) {
            (Some(a), Some(b)) if MergeRule::LastWriterWins.wins(&b, &a) => Some(b),
            (a, _) => a,
        }
    }
}

#[test]
fn small_message_bounds_still_converge_over_several_sessions() {
    let cut = Rc::new(Cell::new(true));
    let mut h = cluster(
        RegistryConfig {
            depth: 10,
            hashes_max: 8,
            entries_max: 16,
            ..RegistryConfig::default()
        },
        cut.clone(),
    );
    h.start_all();
    for k in 0..400u64 {
        h.command(
            NodeId((k % 4) as u32),
            RegistryCommand::Write { key: k, value: k },
        );
    }
    h.run_until(Time(5_000_000_000));
    cut.set(false);
    h.run_until(Time(300_000_000_000));
    assert_eq!(
        roots(&h).len(),
        1,
        "converged despite 8 hashes and 16 entries per message"
    );
    let truncated: u64 = (0..4)
        .map(|i| h.node(NodeId(i)).expect("live").stats().truncated)
        .sum();
    assert!(truncated > 0, "the bounds were hit");
}

#[test]
fn malformed_and_oversized_messages_are_screened() {
    let config = RegistryConfig {
        depth: 4,
        hashes_max: 4,
        entries_max: 2,
        ..RegistryConfig::default()
    };
    let r = Registry::new(config, NodeId(0));
    let from = NodeId(1);
    let nodes = |v: Vec<(u32, u64)>| RegistryMessage::Nodes { hop: 1, nodes: v };
    assert_eq!(r.check(from, &nodes(vec![(1, 5)])), Ok(()));
    assert_eq!(r.check(from, &nodes(vec![(2, 5), (3, 5)])), Ok(()));
    assert_eq!(r.check(from, &nodes(vec![])), Err(DropReason::Malformed));
    assert_eq!(
        r.check(from, &nodes(vec![(0, 5)])),
        Err(DropReason::Malformed)
    );
    assert_eq!(
        r.check(from, &nodes(vec![(32, 5)])),
        Err(DropReason::Malformed),
        "past the leaves"
    );
    assert_eq!(
        r.check(from, &nodes(vec![(2, 5), (4, 5)])),
        Err(DropReason::Malformed),
        "two levels"
    );
    assert_eq!(
        r.check(from, &nodes((16..21).map(|i| (i, 0)).collect())),
        Err(DropReason::Oversized)
    );
    assert_eq!(
        r.check(NodeId(0), &nodes(vec![(1, 5)])),
        Err(DropReason::Unexpected)
    );
    let key = 99u64;
    let bucket = r.tree().bucket_of_key(key);
    let entries = |buckets: Vec<u32>, entries: Vec<(u64, Entry)>| RegistryMessage::Entries {
        hop: 3,
        reply: true,
        buckets,
        entries,
    };
    assert_eq!(
        r.check(from, &entries(vec![bucket], vec![(key, entry(1, 1, 1))])),
        Ok(())
    );
    assert_eq!(
        r.check(
            from,
            &entries(vec![(bucket + 1) % 16], vec![(key, entry(1, 1, 1))])
        ),
        Err(DropReason::Malformed),
        "an entry outside the listed buckets"
    );
    assert_eq!(
        r.check(from, &entries(vec![16], vec![])),
        Err(DropReason::Malformed)
    );
    assert_eq!(
        r.check(from, &entries(vec![bucket], vec![(key, entry(1, 1, 1)); 3])),
        Err(DropReason::Oversized)
    );
    let agreed = key | AGREED_KEY_BIT;
    let agreed_bucket = r.tree().bucket_of_key(agreed);
    assert_eq!(
        r.check(
            from,
            &entries(vec![agreed_bucket], vec![(agreed, entry(1, 1, 1))])
        ),
        Err(DropReason::Malformed),
        "only the committee writes agreed keys"
    );
    assert_eq!(
        r.check(
            from,
            &entries(
                vec![agreed_bucket],
                vec![(
                    agreed,
                    Entry {
                        writer: COMMITTEE,
                        ..entry(1, 1, 1)
                    }
                )]
            )
        ),
        Ok(())
    );
}

#[test]
fn keys_are_bounded() {
    let mut r = Registry::new(
        RegistryConfig {
            keys_max: 3,
            ..RegistryConfig::default()
        },
        NodeId(0),
    );
    assert!((0..3).all(|k| r.write(k, 1)));
    assert!(!r.write(3, 1), "a fourth key is refused");
    assert!(r.write(1, 2), "an existing key still takes writes");
    assert_eq!((r.len(), r.stats().full), (3, 1));
}
