//! The full node end to end on the test harness: discovery, health, local discovery and PBFT
//! composed on every node, reacting to each other.

use std::sync::Arc;

use super::*;
use crate::kademlia::KadConfig;
use crate::layer::{Layer, Notice};
use crate::local::LocalConfig;
use crate::pbft::{PbftCommand, PbftConfig, PbftEvent, Role, Roster};
use crate::swim::{SwimConfig, SwimEvent};
use crate::testing::Harness;
use crate::{Duration, Limits, NodeId, Time};

const N: u32 = 40;
/// Nodes 0..7 host the seven replicas (f = 2); node 39 is the PBFT client.
const REPLICAS: u32 = 7;
const CLIENT: u32 = N - 1;
const BOOTSTRAP: u32 = 10;

fn secs(s: u64) -> Time {
    Time(s * 1_000_000_000)
}

fn parts(id: NodeId, durable: Option<&FullDurable>, pbft: bool) -> FullParts {
    let kad = KadConfig {
        bootstrap: Arc::new(vec![NodeId(BOOTSTRAP)]),
        join_spread: Duration::from_secs(2),
        ..KadConfig::kademlia()
    };
    // With PBFT, a replica's view holds few contacts (4), so what it monitors beyond them is
    // what PBFT asked it to watch.
    let replica = id.0 < REPLICAS;
    let swim = SwimConfig {
        view_max: Some(if pbft && replica { 4 } else { 64 }),
        ..SwimConfig::lan(N)
    };
    let local = LocalConfig {
        interval: Duration::from_secs(5),
        ttl: Duration::from_secs(15),
        peers_max: 64,
    };
    let role = Role {
        replica: (id.0 < REPLICAS).then_some(id.0),
        client: id.0 == CLIENT,
    };
    let roster = Arc::new(Roster::of((0..REPLICAS).map(NodeId)));
    let runs_pbft = pbft && (role.replica.is_some() || role.client);
    FullParts {
        kad: Some(Kademlia::new(kad, id)),
        swim: Some(Swim::new(swim, id, durable.and_then(|d| d.swim))),
        local: Some(Local::new(local, id)),
        pbft: runs_pbft.then(|| {
            Pbft::new(
                PbftConfig::default(),
                roster,
                role,
                Vec::new(),
                durable.and_then(|d| d.pbft.clone()),
            )
        }),
        routing: None,
        detection: None,
        partition: None,
        registry: None,
    }
}

fn network(pbft: bool) -> Harness<Full> {
    Harness::new(N, Duration::from_millis(10), 5, move |id| {
        Full::new(parts(id, None, pbft), None, Limits::default())
    })
}

fn contacts(h: &Harness<Full>, i: u32) -> Vec<NodeId> {
    let mut c: Vec<NodeId> = h
        .node(NodeId(i))
        .and_then(Full::kad)
        .map(|k| k.table().contacts().map(|c| c.node).collect())
        .unwrap_or_default();
    c.sort();
    c
}

fn view(h: &Harness<Full>, i: u32) -> Vec<NodeId> {
    let mut v: Vec<NodeId> = h
        .node(NodeId(i))
        .and_then(Full::swim)
        .map(|s| s.view().map(|(m, _)| m).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn submit(h: &mut Harness<Full>, op: u64) {
    h.command(
        NodeId(CLIENT),
        FullCommand::Pbft(PbftCommand::Submit { op, size: 64 }),
    );
}

fn completed(h: &Harness<Full>) -> usize {
    h.events
        .iter()
        .filter(|(_, _, e)| matches!(e, FullEvent::Pbft(PbftEvent::Completed { .. })))
        .count()
}

fn pbft_view(h: &Harness<Full>, i: u32) -> Option<u64> {
    h.node(NodeId(i))
        .and_then(Full::pbft)
        .and_then(|p| p.replica_status())
        .map(|(v, _, _)| v)
}

#[test]
fn health_follows_the_routing_table_and_prunes_the_dead_from_it() {
    let mut h = network(false);
    h.start_all();
    h.run_until(secs(15));
    for i in 0..N {
        assert!(contacts(&h, i).len() >= 20, "node {i} joined");
        assert_eq!(
            view(&h, i),
            contacts(&h, i),
            "node {i} monitors its contacts"
        );
    }
    let victim = NodeId(7);
    let trackers: Vec<u32> = (0..N)
        .filter(|&i| contacts(&h, i).contains(&victim))
        .collect();
    assert!(trackers.len() > 10);
    h.crash(victim);
    // Suspicion timeout: 4 x log10(40) x 1 s = 6.4 s, after a few periods of detection.
    h.run_until(secs(35));
    for i in (0..N).filter(|&i| NodeId(i) != victim) {
        assert!(
            !contacts(&h, i).contains(&victim),
            "node {i} dropped the dead"
        );
        assert!(
            !view(&h, i).contains(&victim),
            "node {i} stopped monitoring it"
        );
    }
    let confirmed = h
        .events
        .iter()
        .filter(|(_, _, e)| {
            matches!(e, FullEvent::Swim(SwimEvent::Confirmed { member }) if *member == victim)
        })
        .count();
    assert!(
        confirmed >= trackers.len() / 2,
        "{confirmed} of {}",
        trackers.len()
    );
    let false_deaths = h
        .events
        .iter()
        .filter(|(_, _, e)| {
            matches!(e, FullEvent::Swim(SwimEvent::Confirmed { member }) if *member != victim)
        })
        .count();
    assert_eq!(false_deaths, 0);
}

/// Four layers on every node: a primary's crash, detected by health, leaves discovery's tables
/// and PBFT's view of who is alive, and moves the committee to a new view before any request
/// times out; the restarted node rejoins discovery and is seen alive again by PBFT.
#[test]
fn a_crash_seen_by_health_reaches_discovery_and_consensus_and_a_restart_rejoins() {
    let mut h = network(true);
    h.start_all();
    h.run_until(secs(15));
    // Local discovery offered every site peer to the table (the harness's broadcast reaches
    // everyone), and each replica watches every other replica whatever its table holds.
    for i in 0..N {
        let v = view(&h, i);
        if i < REPLICAS {
            for r in (0..REPLICAS).filter(|&r| r != i) {
                assert!(v.contains(&NodeId(r)), "replica {i} watches replica {r}");
            }
            assert!(v.len() < 4 + REPLICAS as usize, "replica {i}: {v:?}");
        } else {
            for c in contacts(&h, i) {
                assert!(v.contains(&c), "node {i} monitors its contact {c}");
            }
        }
    }
    for op in 1..=3 {
        submit(&mut h, op);
        h.run_until(h.now + Duration::from_secs(1));
    }
    assert_eq!(completed(&h), 3, "the committee commits");

    // Crash the primary of view 0; nothing is pending, so no request timer would notice.
    let primary = NodeId(0);
    let crashed_at = h.now;
    h.crash(primary);
    h.run_until(h.now + Duration::from_secs(30));
    for i in (1..N).filter(|&i| i != primary.0) {
        assert!(
            !contacts(&h, i).contains(&primary),
            "node {i} dropped the dead primary"
        );
    }
    for r in 1..REPLICAS {
        let down = h.events.iter().find(|(_, n, e)| {
            *n == NodeId(r) && matches!(e, FullEvent::Pbft(PbftEvent::ReplicaDown { down: 0, .. }))
        });
        let (at, _, _) = down.unwrap_or_else(|| panic!("replica {r} learned of the crash"));
        assert!(
            *at - crashed_at < Duration::from_secs(20),
            "replica {r} learned in time"
        );
        assert!(
            pbft_view(&h, r) >= Some(1),
            "replica {r} left the dead primary's view"
        );
    }
    let moved = h.events.iter().any(|(_, _, e)| {
        matches!(e, FullEvent::Pbft(PbftEvent::NewViewInstalled { view, .. }) if *view >= 1)
    });
    assert!(
        moved,
        "a new view was installed without a request timing out"
    );
    submit(&mut h, 4);
    h.run_until(h.now + Duration::from_secs(5));
    assert_eq!(completed(&h), 4, "the committee commits in the new view");

    // The first replica to hear of the crash left the view on the health layer's word alone
    // (the others may follow its view change); that move is durable: restarted from its
    // durable state, it starts in the new view.
    let first = h
        .events
        .iter()
        .find_map(|(_, n, e)| {
            matches!(e, FullEvent::Pbft(PbftEvent::ReplicaDown { down: 0, .. })).then_some(*n)
        })
        .expect("a replica heard of the crash");
    let view_now = pbft_view(&h, first.0);
    let durable = h.durable[first.index()].clone();
    h.crash(first);
    h.restart(
        first,
        Full::new(
            parts(first, durable.as_ref(), true),
            durable,
            Limits::default(),
        ),
        11,
    );
    assert_eq!(
        pbft_view(&h, first.0),
        view_now,
        "the new view was persisted"
    );

    // Restart it from its durable state: it rejoins discovery, and health sees it alive again.
    let durable = h.durable[0].clone();
    assert!(durable.as_ref().is_some_and(|d| d.swim.is_some()));
    h.restart(
        primary,
        Full::new(
            parts(primary, durable.as_ref(), true),
            durable,
            Limits::default(),
        ),
        9,
    );
    let restarted_at = h.now;
    h.run_until(h.now + Duration::from_secs(30));
    assert!(
        contacts(&h, 0).len() >= 20,
        "the restarted node rejoined discovery"
    );
    let holders = (1..N)
        .filter(|&i| contacts(&h, i).contains(&primary))
        .count();
    assert!(holders > 10, "{holders} nodes hold it again");
    // The replica restarted above may never have seen replica 0 dead, so it is not asked.
    for r in (1..REPLICAS).filter(|&r| r != first.0) {
        let up = h.events.iter().any(|(t, n, e)| {
            *t >= restarted_at
                && *n == NodeId(r)
                && matches!(e, FullEvent::Pbft(PbftEvent::ReplicaUp { up: 0, .. }))
        });
        assert!(up, "replica {r} saw replica 0 alive again");
    }
    submit(&mut h, 5);
    h.run_until(h.now + Duration::from_secs(5));
    assert_eq!(completed(&h), 5);
}

#[test]
fn layers_are_listed_in_registration_order_and_wire_one_tag_byte() {
    assert_eq!(
        Full::LAYERS,
        &[
            "kademlia",
            "swim",
            "local",
            "pbft",
            "routing",
            "detection",
            "partition",
            "registry"
        ]
    );
    let msg = FullMessage::Local(crate::local::LocalMessage::Query);
    assert_eq!(
        crate::Wire::wire_size(&msg),
        1 + crate::Wire::wire_size(&crate::local::LocalMessage::Query)
    );
    assert_eq!(msg.layer(), 2);
}

#[test]
fn each_layer_maps_only_the_notices_it_cares_about() {
    let p = NodeId(3);
    let kad = Kademlia::new(KadConfig::kademlia(), NodeId(0));
    assert!(kad.on_notice(Notice::PeerDead(p)).is_some());
    assert!(kad.on_notice(Notice::PeerHeard(p)).is_some());
    assert!(kad.on_notice(Notice::NeighborAdded(p)).is_none());
    let swim = Swim::new(SwimConfig::lan(8), NodeId(0), None);
    assert!(swim.on_notice(Notice::NeighborAdded(p)).is_some());
    assert!(swim.on_notice(Notice::Watch(p)).is_some());
    assert!(swim.on_notice(Notice::PeerDead(p)).is_none());
    // What each layer publishes from its events.
    let mut out = Vec::new();
    Local::notices_of(&crate::local::LocalEvent::Discovered { peer: p }, &mut out);
    Local::notices_of(&crate::local::LocalEvent::Expired { peer: p }, &mut out);
    Swim::notices_of(&SwimEvent::Confirmed { member: p }, &mut out);
    Swim::notices_of(&SwimEvent::Suspected { member: p }, &mut out);
    Swim::notices_of(&SwimEvent::Rejoined { member: p }, &mut out);
    assert_eq!(
        out,
        vec![
            Notice::PeerHeard(p),
            Notice::PeerDead(p),
            Notice::PeerAlive(p)
        ]
    );
    let roster = Arc::new(Roster::of((0..4).map(NodeId)));
    let client = Pbft::new(
        PbftConfig::default(),
        roster.clone(),
        Role {
            replica: None,
            client: true,
        },
        Vec::new(),
        None,
    );
    assert!(
        client.on_notice(Notice::PeerDead(p)).is_none(),
        "clients keep no membership"
    );
    let replica = Pbft::new(
        PbftConfig::default(),
        roster,
        Role {
            replica: Some(0),
            client: false,
        },
        Vec::new(),
        None,
    );
    assert!(replica.on_notice(Notice::PeerDead(p)).is_some());
    // A replica asks for its committee to be watched once, when it starts.
    use rand_core::SeedableRng;
    let mut node = crate::Node::new(
        NodeId(0),
        replica,
        rand_chacha::ChaCha8Rng::seed_from_u64(1),
        Limits::default(),
    );
    let mut out = Vec::new();
    node.protocol_mut().drain_notices(&mut out);
    assert!(out.is_empty(), "nothing before it starts");
    let _ = node.step(Time::ZERO, crate::Input::Start).count();
    node.protocol_mut().drain_notices(&mut out);
    assert_eq!(
        out,
        (1..4).map(|r| Notice::Watch(NodeId(r))).collect::<Vec<_>>()
    );
    out.clear();
    node.protocol_mut().drain_notices(&mut out);
    assert!(out.is_empty(), "once");
}
