//! Textbook behaviour of Kademlia on the in-crate harness.

use std::sync::Arc;

use super::*;
use crate::testing::Harness;

const D: Duration = Duration::from_millis(10);

fn network(n: u32, seed: u64) -> Harness<Kademlia> {
    let config = KadConfig {
        bootstrap: Arc::new(vec![NodeId(0)]),
        join_spread: Duration::from_secs(5),
        ..KadConfig::kademlia()
    };
    let mut h = Harness::new(n, D, seed, move |id| Kademlia::new(config.clone(), id));
    h.start_all();
    h.run_until(Time(20_000_000_000));
    h
}

type Done = (NodeId, u32, Option<u32>, Vec<NodeId>, Key);

fn lookups(h: &Harness<Kademlia>) -> Vec<Done> {
    h.events
        .iter()
        .filter_map(|(_, origin, e)| match e {
            KadEvent::LookupDone {
                purpose: Purpose::Query,
                rounds,
                hops,
                closest,
                target,
                ..
            } => Some((*origin, *rounds, *hops, closest.clone(), *target)),
            _ => None,
        })
        .collect()
}

/// Runs `count` lookups of random node ids from random nodes; returns their results.
fn query(h: &mut Harness<Kademlia>, n: u32, count: u32) -> Vec<Done> {
    let seed = KadConfig::kademlia().key_seed;
    for i in 0..count {
        let from = NodeId((i * 7919 + 3) % n);
        let owner = NodeId((i * 104_729 + 11) % n);
        let target = Key::of(owner, seed);
        h.command(
            from,
            KadCommand::Lookup {
                target,
                node: Some(owner),
            },
        );
    }
    let end = h.now + Duration::from_secs(10);
    h.run_until(end);
    lookups(h)
}

#[test]
fn every_node_joins_through_one_bootstrap_node() {
    let h = network(100, 1);
    let joined = h
        .events
        .iter()
        .filter(|(_, _, e)| matches!(e, KadEvent::Joined { .. }))
        .count();
    assert_eq!(joined, 100);
    for i in 0..100 {
        let table = h.node(NodeId(i)).unwrap().table();
        assert!(table.len() >= 20, "node {i} knows {} contacts", table.len());
    }
}

#[test]
fn a_lookup_finds_the_k_closest_live_nodes_in_a_static_network() {
    let n = 300;
    let mut h = network(n, 2);
    let seed = KadConfig::kademlia().key_seed;
    let results = query(&mut h, n, 40);
    assert_eq!(results.len(), 40);
    for (origin, _, hops, closest, target) in results {
        let mut truth: Vec<(Key, NodeId)> = (0..n)
            .map(NodeId)
            .filter(|&id| id != origin)
            .map(|id| (Key::of(id, seed).distance(target), id))
            .collect();
        truth.sort();
        let want: Vec<NodeId> = truth.iter().take(20).map(|t| t.1).collect();
        assert_eq!(closest, want, "lookup from {origin:?}");
        assert!(hops.is_some(), "the owner was found");
    }
}

#[test]
fn lookup_rounds_grow_with_log_n() {
    let mut means = Vec::new();
    for (n, seed) in [(32u32, 3u64), (256, 4), (2048, 5)] {
        let mut h = network(n, seed);
        let results = query(&mut h, n, 60);
        assert_eq!(results.len(), 60, "n = {n}");
        let mean = results.iter().map(|r| f64::from(r.1)).sum::<f64>() / results.len() as f64;
        means.push(mean);
    }
    // Each 8x in n adds about the same number of rounds (log n growth), and more than none.
    assert!(means[0] < means[1] && means[1] < means[2], "{means:?}");
    let (a, b) = (means[1] - means[0], means[2] - means[1]);
    assert!(a > 0.2 && b > 0.2, "{means:?}");
    assert!(
        b < 3.0 * a && a < 3.0 * b,
        "growth is not log-linear: {means:?}"
    );
    eprintln!("mean lookup rounds at n = 32, 256, 2048: {means:?}");
}

/// Contacts found before joining (local peers that are joining too) can be closer to the own id
/// than the bootstrap node, or fill its bucket: the join must still ask the bootstrap node, or a
/// site of newcomers would look up only among themselves.
#[test]
fn a_join_asks_its_bootstrap_nodes_whatever_else_it_knows() {
    use crate::contract::Effect;
    use crate::node::{Input, Limits, Node};
    use rand_core::SeedableRng;
    for seed in 0..8u64 {
        let config = KadConfig {
            bootstrap: Arc::new(vec![NodeId(0)]),
            join_spread: Duration::from_secs(1),
            ..KadConfig::kademlia()
        };
        let me = NodeId(1 + seed as u32);
        let rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut node = Node::new(me, Kademlia::new(config, me), rng, Limits::default());
        node.step(Time::ZERO, Input::Start).for_each(drop);
        for i in 100..160 {
            let offer = Input::Command(KadCommand::Offer(NodeId(i)));
            node.step(Time::ZERO, offer).for_each(drop);
        }
        let at = node.next_deadline().expect("the join is scheduled");
        let asked: Vec<NodeId> = node
            .step(at, Input::Tick)
            .filter_map(|e| match e {
                Effect::Send {
                    to,
                    msg: KadMessage::FindNode { .. },
                } => Some(to),
                _ => None,
            })
            .collect();
        assert!(asked.contains(&NodeId(0)), "seed {seed}: asked {asked:?}");
        assert!(asked.len() > 1, "and the closest contacts too");
    }
}
