//! Partition detection tests: splits are detected and healed, exactly one side (or none) is
//! primary, and plain loss, one crash or one lost node raise nothing.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use super::*;
use crate::testing::Harness;

const N: u32 = 10;

/// Ten validators (quorum 7) watching each other; `side(i)` names node i's side while `cut`.
fn cluster(cut: Rc<Cell<bool>>, side: fn(u32) -> u32, loss_per_mille: u64) -> Harness<Partition> {
    let all: Arc<[NodeId]> = (0..N).map(NodeId).collect();
    let config = PartitionConfig {
        validators: all.clone(),
        quorum: 7,
        ..PartitionConfig::default()
    };
    Harness::new(N, Duration::from_millis(20), 11, move |id| {
        Partition::new(config.clone(), id)
    })
    .with_filter(move |from, to, seq| {
        let lost = crate::pbft::message::mix(seq, 0x1055) % 1000 < loss_per_mille;
        !lost && (!cut.get() || side(from.0) == side(to.0))
    })
}

fn at(s: u64) -> Time {
    Time(s * 1_000_000_000)
}

fn detections(h: &Harness<Partition>) -> Vec<(Time, NodeId)> {
    h.events
        .iter()
        .filter(|(_, _, e)| matches!(e, PartitionEvent::Detected { .. }))
        .map(|(t, n, _)| (*t, *n))
        .collect()
}

fn primaries(h: &Harness<Partition>) -> Vec<u32> {
    (0..N)
        .filter(|&i| h.node(NodeId(i)).is_some_and(Partition::is_primary))
        .collect()
}

#[test]
fn a_seven_three_split_is_detected_and_only_the_seven_stay_primary() {
    let cut = Rc::new(Cell::new(false));
    let mut h = cluster(cut.clone(), |i| u32::from(i >= 7), 0);
    h.start_all();
    h.run_until(at(5));
    assert!(detections(&h).is_empty());
    assert_eq!(primaries(&h).len(), 10);
    cut.set(true);
    h.run_until(at(10));
    let found = detections(&h);
    assert_eq!(found.len(), 10, "every node detects: {found:?}");
    assert!(
        found
            .iter()
            .all(|&(t, _)| t <= at(5) + Duration::from_secs(3)),
        "{found:?}"
    );
    assert_eq!(primaries(&h), (0..7).collect::<Vec<_>>());
    assert!((0..N).all(|i| h.node(NodeId(i)).is_some_and(Partition::is_partitioned)));
    cut.set(false);
    h.run_until(at(15));
    assert_eq!(
        primaries(&h).len(),
        10,
        "the three are back in the primary partition"
    );
    let healed: Vec<_> = h
        .events
        .iter()
        .filter_map(|(t, n, e)| match e {
            PartitionEvent::Healed { back, .. } => Some((*t, *n, back.len())),
            _ => None,
        })
        .collect();
    assert_eq!(healed.len(), 10, "{healed:?}");
    assert!(
        healed
            .iter()
            .all(|&(t, _, named)| t <= at(10) + Duration::from_secs(3) && named >= 1)
    );
    assert!((0..N).all(|i| !h.node(NodeId(i)).is_some_and(Partition::is_partitioned)));
    // Losses from before the heal start nothing, but a new cut is detected again by everyone.
    h.run_until(at(30));
    assert_eq!(detections(&h).len(), 10, "nothing new while whole");
    cut.set(true);
    h.run_until(at(35));
    assert_eq!(detections(&h).len(), 20, "the second cut is detected too");
}

#[test]
fn an_equal_split_has_no_primary_side() {
    let cut = Rc::new(Cell::new(false));
    let mut h = cluster(cut.clone(), |i| u32::from(i >= 5), 0);
    h.start_all();
    h.run_until(at(3));
    cut.set(true);
    h.run_until(at(10));
    assert!(primaries(&h).is_empty());
    assert_eq!(detections(&h).len(), 10);
}

#[test]
fn plain_loss_raises_no_partition() {
    // 5 % of messages lost, for ten minutes.
    let mut h = cluster(Rc::new(Cell::new(false)), |_| 0, 50);
    h.start_all();
    h.run_until(at(600));
    assert!(detections(&h).is_empty(), "{:?}", detections(&h));
    assert_eq!(primaries(&h).len(), 10);
    let probes: u64 = (0..N)
        .map(|i| h.node(NodeId(i)).expect("live").stats().probes)
        .sum();
    assert!(probes > 10 * 1_000, "probing went on: {probes}");
}

#[test]
fn one_crash_is_not_a_partition_but_one_isolated_node_is_one() {
    let cut = Rc::new(Cell::new(false));
    // Node 9 alone on its side.
    let mut h = cluster(cut.clone(), |i| u32::from(i == 9), 0);
    h.start_all();
    h.run_until(at(3));
    h.crash(NodeId(4));
    h.run_until(at(20));
    assert!(detections(&h).is_empty(), "one crash: {:?}", detections(&h));
    assert_eq!(
        primaries(&h).len(),
        9,
        "nine of ten validators are a quorum"
    );
    cut.set(true);
    h.run_until(at(30));
    assert_eq!(
        detections(&h).iter().map(|d| d.1).collect::<Vec<_>>(),
        vec![NodeId(9)]
    );
    assert!(!primaries(&h).contains(&9));
    // Its return after ten minutes is seen, and it names peers to reconcile with.
    h.run_until(at(630));
    cut.set(false);
    h.run_until(at(640));
    assert!(primaries(&h).contains(&9));
    assert!(h.events.iter().any(|(_, n, e)| *n == NodeId(9)
        && matches!(e, PartitionEvent::Healed { back, lasted } if !back.is_empty() && *lasted > Duration::from_secs(600))));
}

#[test]
fn health_verdicts_count_and_acks_from_strangers_are_dropped() {
    let config = PartitionConfig {
        validators: (0..4).map(NodeId).collect(),
        quorum: 3,
        ..PartitionConfig::default()
    };
    let p = Partition::new(config, NodeId(0));
    assert_eq!(
        p.check(NodeId(1), &PartitionMessage::Ack { nonce: 1 }),
        Ok(())
    );
    assert_eq!(
        p.check(NodeId(9), &PartitionMessage::Ack { nonce: 1 }),
        Err(DropReason::Unexpected)
    );
    assert_eq!(
        p.check(NodeId(9), &PartitionMessage::Probe { nonce: 1 }),
        Ok(())
    );
    assert_eq!(
        p.check(NodeId(0), &PartitionMessage::Probe { nonce: 1 }),
        Err(DropReason::Unexpected)
    );
    let mut h = Harness::new(4, Duration::from_millis(5), 1, |id| {
        Partition::new(
            PartitionConfig {
                validators: (0..4).map(NodeId).collect(),
                quorum: 3,
                ..PartitionConfig::default()
            },
            id,
        )
    });
    h.start_all();
    h.run_until(at(2));
    h.command(NodeId(0), PartitionCommand::Down(NodeId(1)));
    assert!(
        h.node(NodeId(0)).is_some_and(Partition::is_primary),
        "3 of 4 remain"
    );
    h.command(NodeId(0), PartitionCommand::Down(NodeId(2)));
    assert!(
        !h.node(NodeId(0)).is_some_and(Partition::is_primary),
        "2 of 4 is no quorum"
    );
    h.command(NodeId(0), PartitionCommand::Up(NodeId(2)));
    assert!(h.node(NodeId(0)).is_some_and(Partition::is_primary));
}

#[test]
fn watched_peers_are_bounded_and_slots_free_up_when_discovery_drops_a_reachable_one() {
    let config = PartitionConfig {
        peers_max: 2,
        ..PartitionConfig::default()
    };
    let mut h = Harness::new(6, Duration::from_millis(5), 1, move |id| {
        Partition::new(config.clone(), id)
    });
    h.start_all();
    for p in 1..=3 {
        h.command(NodeId(0), PartitionCommand::Watch(NodeId(p)));
    }
    assert_eq!(
        h.node(NodeId(0)).expect("live").reachability(),
        (2, 0),
        "at most 2 watched"
    );
    // Discovery drops a reachable neighbour: its slot goes to the next one.
    h.command(NodeId(0), PartitionCommand::Unwatch(NodeId(1)));
    h.command(NodeId(0), PartitionCommand::Watch(NodeId(4)));
    assert_eq!(h.node(NodeId(0)).expect("live").reachability(), (2, 0));
    // An unreachable one stays watched when discovery drops it, so its return is seen.
    h.command(NodeId(0), PartitionCommand::Down(NodeId(2)));
    h.command(NodeId(0), PartitionCommand::Unwatch(NodeId(2)));
    assert_eq!(h.node(NodeId(0)).expect("live").reachability(), (2, 1));
    // Proven Byzantine: gone for good, and its slot is free.
    h.command(NodeId(0), PartitionCommand::Forget(NodeId(2)));
    h.command(NodeId(0), PartitionCommand::Watch(NodeId(5)));
    assert_eq!(h.node(NodeId(0)).expect("live").reachability(), (2, 0));
}

#[test]
fn a_peer_health_sees_alive_gets_a_fresh_count_of_misses() {
    // Node 0 watches 1 and 2 (2 is a bystander); nothing from 1 reaches 0.
    let config = PartitionConfig {
        probes: 2,
        misses: 3,
        ..PartitionConfig::default()
    };
    let mut h = Harness::new(3, Duration::from_millis(5), 1, move |id| {
        Partition::new(
            PartitionConfig {
                seeds: (0..3).map(NodeId).collect(),
                ..config.clone()
            },
            id,
        )
    })
    .with_filter(|from, to, _| !(from == NodeId(1) && to == NodeId(0)));
    h.start_all();
    h.run_until(at(3));
    assert_eq!(
        h.node(NodeId(0)).expect("live").reachability(),
        (2, 1),
        "1 is lost"
    );
    // Health says it is alive: reachable, and it takes `misses` more unanswered probes (one per
    // 500 ms round) before it is lost again, not the next round.
    h.command(NodeId(0), PartitionCommand::Up(NodeId(1)));
    h.run_until(at(3) + Duration::from_millis(1_100));
    assert_eq!(h.node(NodeId(0)).expect("live").reachability(), (2, 0));
    h.run_until(at(6));
    assert_eq!(h.node(NodeId(0)).expect("live").reachability(), (2, 1));
}
