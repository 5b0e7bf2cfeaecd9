//! Textbook behaviour of PBFT on the in-crate harness.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::*;
use crate::testing::Harness;
use crate::{DropReason, Effect, Input, Limits, Node};

const D: Duration = Duration::from_millis(10);

fn roster(n: u32) -> Arc<Roster> {
    Arc::new(Roster::of((0..n).map(NodeId)))
}

/// n replicas on nodes 0..n and one client on node n.
fn deployment(n: u32, config: PbftConfig, bad: &[(u32, Behavior)]) -> Harness<Pbft> {
    let roster = roster(n);
    Harness::new(n + 1, D, 7, move |id| {
        let role = if id.0 < n {
            Role {
                replica: Some(id.0),
                client: false,
            }
        } else {
            Role {
                replica: None,
                client: true,
            }
        };
        let schedule = bad
            .iter()
            .filter(|(node, _)| *node == id.0)
            .map(|&(_, behavior)| Misbehavior {
                behavior,
                from: Time::ZERO,
                until: Time(u64::MAX),
            })
            .collect();
        Pbft::new(config, roster.clone(), role, schedule, None)
    })
}

fn submit(h: &mut Harness<Pbft>, client: u32, op: u64) {
    h.command(NodeId(client), PbftCommand::Submit { op, size: 64 });
}

fn completed(h: &Harness<Pbft>) -> Vec<(Time, Duration)> {
    h.events
        .iter()
        .filter_map(|(t, _, e)| match e {
            PbftEvent::Completed { latency, .. } => Some((*t, *latency)),
            _ => None,
        })
        .collect()
}

/// (node, seq, digest) of every execution.
fn executed(h: &Harness<Pbft>) -> Vec<(NodeId, u64, Digest)> {
    h.events
        .iter()
        .filter_map(|(_, node, e)| match e {
            PbftEvent::Executed { seq, digest, .. } => Some((*node, *seq, *digest)),
            _ => None,
        })
        .collect()
}

#[test]
fn one_request_costs_two_n_squared_minus_n_plus_one_messages() {
    // request 1, pre-prepare n-1, prepare (n-1)(n-1), commit n(n-1), reply n:
    // 1 + (n-1) + (n-1)^2 + n(n-1) + n = 2n^2 - n + 1.
    for n in [4u32, 7, 10, 13] {
        let mut h = deployment(n, PbftConfig::default(), &[]);
        h.start_all();
        submit(&mut h, n, 1);
        h.run_until(Time(1_000_000_000));
        let n64 = u64::from(n);
        assert_eq!(h.messages_sent, 2 * n64 * n64 - n64 + 1, "n = {n}");
        assert_eq!(completed(&h).len(), 1, "n = {n}");
        assert_eq!(
            executed(&h).len(),
            n as usize,
            "every replica executes, n = {n}"
        );
    }
}

#[test]
fn client_latency_is_five_one_way_delays() {
    let mut h = deployment(4, PbftConfig::default(), &[]);
    h.start_all();
    submit(&mut h, 4, 9);
    h.run_until(Time(1_000_000_000));
    let done = completed(&h);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].1, Duration::from_nanos(5 * D.as_nanos()));
}

#[test]
fn requests_execute_in_the_same_order_everywhere() {
    let mut h = deployment(7, PbftConfig::default(), &[]);
    h.start_all();
    for op in 0..20 {
        submit(&mut h, 7, op);
    }
    h.run_until(Time(5_000_000_000));
    assert_eq!(completed(&h).len(), 20);
    let log = executed(&h);
    for node in 0..7 {
        let mine: Vec<(u64, Digest)> = log
            .iter()
            .filter(|(n, _, _)| n.0 == node)
            .map(|&(_, s, d)| (s, d))
            .collect();
        let first: Vec<(u64, Digest)> = log
            .iter()
            .filter(|(n, _, _)| n.0 == 0)
            .map(|&(_, s, d)| (s, d))
            .collect();
        assert_eq!(mine, first, "replica {node}");
        assert_eq!(mine.len(), 20);
    }
}

#[test]
fn checkpoints_become_stable_and_collect_the_log() {
    let config = PbftConfig {
        checkpoint_interval: 4,
        log_window: 8,
        ..PbftConfig::default()
    };
    let mut h = deployment(4, config, &[]);
    h.start_all();
    for op in 0..18 {
        submit(&mut h, 4, op);
    }
    h.run_until(Time(5_000_000_000));
    assert_eq!(completed(&h).len(), 18);
    for i in 0..4 {
        let (_, executed, low) = h.node(NodeId(i)).and_then(Pbft::replica_status).unwrap();
        assert_eq!(executed, 18);
        assert_eq!(low, 16, "the stable checkpoint moves the low watermark");
        let replica = h.node(NodeId(i)).and_then(|p| p.replica.as_ref()).unwrap();
        assert!(replica.log.keys().all(|&s| s > 16), "log garbage-collected");
    }
}

#[test]
fn batching_puts_several_requests_in_one_pre_prepare() {
    let config = PbftConfig {
        batch_size_max: 8,
        batch_timeout: Duration::from_millis(5),
        ..PbftConfig::default()
    };
    // Eight clients submit at once; the primary batches them.
    let n = 4;
    let roster = roster(n);
    let mut h = Harness::new(n + 8, D, 3, move |id| {
        let role = Role {
            replica: (id.0 < n).then_some(id.0),
            client: id.0 >= n,
        };
        Pbft::new(config, roster.clone(), role, Vec::new(), None)
    });
    h.start_all();
    for c in n..n + 8 {
        submit(&mut h, c, u64::from(c));
    }
    h.run_until(Time(1_000_000_000));
    assert_eq!(completed(&h).len(), 8);
    let seqs: Vec<u64> = executed(&h).iter().map(|e| e.1).collect();
    assert!(
        seqs.iter().all(|&s| s == 1),
        "one batch, one sequence number: {seqs:?}"
    );
}

#[test]
fn a_crashed_primary_is_replaced_by_a_view_change() {
    let mut h = deployment(4, PbftConfig::default(), &[]);
    h.start_all();
    h.crash(NodeId(0));
    submit(&mut h, 4, 5);
    h.run_until(Time(10_000_000_000));
    let done = completed(&h);
    assert_eq!(done.len(), 1, "the request commits in view 1");
    // Client timeout (2 s) + request timer (1 s) + view change + 5 delays.
    assert!(done[0].1 > Duration::from_secs(3));
    for i in 1..4 {
        let (view, executed, _) = h.node(NodeId(i)).and_then(Pbft::replica_status).unwrap();
        assert_eq!((view, executed), (1, 1), "replica {i}");
    }
}

#[test]
fn a_view_change_keeps_the_prepared_digest_at_its_sequence_number() {
    // n = 4: 1 request + 3 pre-prepares + 9 prepares are messages 1..=13; the 12 commits that
    // follow are lost, so the request is prepared everywhere but committed nowhere. Then the
    // primary crashes and the new primary must re-propose the same batch at sequence number 1.
    // Status retransmission would recover the lost commits in view 0; this test is about the
    // view change, so it is off.
    let config = PbftConfig {
        status_interval: Duration::from_secs(3_600),
        ..PbftConfig::default()
    };
    let mut h = deployment(4, config, &[]).with_filter(|_, _, k| !(14..=25).contains(&k));
    h.start_all();
    submit(&mut h, 4, 77);
    h.run_until(Time(100_000_000));
    assert!(
        executed(&h).is_empty(),
        "nothing committed before the view change"
    );
    let prepared = h
        .node(NodeId(1))
        .and_then(|p| p.replica.as_ref())
        .and_then(|r| r.log.get(&1))
        .and_then(|s| s.cert.clone())
        .expect("replica 1 prepared sequence number 1");
    h.crash(NodeId(0));
    h.run_until(Time(10_000_000_000));
    let log = executed(&h);
    assert_eq!(log.len(), 3, "the three live replicas execute it: {log:?}");
    for (node, seq, digest) in log {
        assert_eq!(seq, 1, "{node:?}");
        assert_eq!(digest, prepared.pre_prepare.digest, "{node:?}");
    }
    let committed_views: Vec<u64> = h
        .events
        .iter()
        .filter_map(|(_, _, e)| match e {
            PbftEvent::Committed { view, .. } => Some(*view),
            _ => None,
        })
        .collect();
    assert!(
        committed_views.iter().all(|&v| v == 1),
        "{committed_views:?}"
    );
    assert_eq!(completed(&h).len(), 1);
}

#[test]
fn f_crashed_replicas_keep_liveness_and_f_plus_one_stop_it() {
    for (crashed, expect_done) in [(vec![3u32, 6], 5usize), (vec![3, 5, 6], 0)] {
        let mut h = deployment(7, PbftConfig::default(), &[]);
        h.start_all();
        for &c in &crashed {
            h.crash(NodeId(c));
        }
        for op in 0..5 {
            submit(&mut h, 7, op);
        }
        h.run_until(Time(20_000_000_000));
        assert_eq!(completed(&h).len(), expect_done, "crashed {crashed:?}");
    }
}

#[test]
fn a_silent_primary_is_replaced() {
    let mut h = deployment(4, PbftConfig::default(), &[(0, Behavior::Silent)]);
    h.start_all();
    submit(&mut h, 4, 1);
    submit(&mut h, 4, 2);
    h.run_until(Time(20_000_000_000));
    assert_eq!(completed(&h).len(), 2);
}

#[test]
fn an_equivocating_primary_alone_cannot_break_agreement() {
    let mut h = deployment(4, PbftConfig::default(), &[(0, Behavior::Equivocate)]);
    h.start_all();
    for op in 0..4 {
        submit(&mut h, 4, op);
    }
    h.run_until(Time(30_000_000_000));
    let log = executed(&h);
    for (_, seq, digest) in &log {
        let agreed = log
            .iter()
            .filter(|(n, s, _)| s == seq && n.0 != 0)
            .all(|(_, _, d)| d == digest);
        assert!(agreed, "{log:?}");
    }
    assert_eq!(completed(&h).len(), 4, "the client still gets its answers");
}

#[test]
fn f_plus_one_colluding_equivocators_break_agreement() {
    // Beyond the fault threshold PBFT promises nothing: a primary sending different batches to
    // the two halves, helped by a replica voting for both, gets both committed.
    let mut h = deployment(
        4,
        PbftConfig::default(),
        &[(0, Behavior::Equivocate), (1, Behavior::DoubleVote)],
    );
    h.start_all();
    submit(&mut h, 4, 1);
    h.run_until(Time(1_000_000_000));
    let log = executed(&h);
    let at_one: Vec<Digest> = log
        .iter()
        .filter(|(n, s, _)| *s == 1 && n.0 >= 2)
        .map(|e| e.2)
        .collect();
    assert_eq!(at_one.len(), 2, "{log:?}");
    assert_ne!(
        at_one[0], at_one[1],
        "the correct replicas 2 and 3 disagree"
    );
}

#[test]
fn withheld_votes_and_wrong_digests_from_f_replicas_do_not_stop_progress() {
    for behavior in [
        Behavior::WithholdVotes,
        Behavior::WrongDigest,
        Behavior::Replay,
        Behavior::DoubleVote,
    ] {
        let mut h = deployment(4, PbftConfig::default(), &[(2, behavior)]);
        h.start_all();
        for op in 0..5 {
            submit(&mut h, 4, op);
        }
        h.run_until(Time(10_000_000_000));
        assert_eq!(completed(&h).len(), 5, "{behavior:?}");
    }
}

#[test]
fn a_slow_primary_slows_every_request_by_its_delay() {
    let delay = Duration::from_millis(300);
    let mut h = deployment(4, PbftConfig::default(), &[(0, Behavior::Slow(delay))]);
    h.start_all();
    submit(&mut h, 4, 1);
    h.run_until(Time(1_000_000_000));
    let done = completed(&h);
    assert_eq!(done.len(), 1);
    // The pre-prepare is held; so are the primary's commit and reply, which are not needed.
    assert_eq!(done[0].1, Duration::from_nanos(5 * D.as_nanos()) + delay);
}

#[test]
fn forged_and_malformed_messages_are_dropped_and_counted() {
    let roster = roster(4);
    let pbft = Pbft::new(
        PbftConfig::default(),
        roster,
        Role {
            replica: Some(1),
            client: false,
        },
        Vec::new(),
        None,
    );
    let mut node = Node::new(
        NodeId(1),
        pbft,
        ChaCha8Rng::seed_from_u64(1),
        Limits::default(),
    );
    let _ = node.step(Time::ZERO, Input::Start).count();
    let keys = PbftConfig::default().keys;
    let mut vote = Vote {
        view: 0,
        seq: 1,
        digest: Digest(5),
        replica: 2,
        sig: Sig(0),
    };
    // Signed by replica 3, claiming to be replica 2.
    vote.sig = keys.sign(Signer::Replica(3), vote.content(message::Phase::Prepare));
    let _ = node
        .step(
            Time::ZERO,
            Input::Message {
                from: NodeId(3),
                msg: PbftMessage::Prepare(vote),
            },
        )
        .count();
    vote.replica = 99;
    let _ = node
        .step(
            Time::ZERO,
            Input::Message {
                from: NodeId(3),
                msg: PbftMessage::Prepare(vote),
            },
        )
        .count();
    let stats = node.stats();
    assert_eq!(stats.rejected[DropReason::Unauthenticated as usize], 1);
    assert_eq!(stats.rejected[DropReason::Malformed as usize], 1);
}

#[test]
fn randomized_schedules_with_f_byzantine_replicas_keep_agreement() {
    // A few hundred seeds here; the simulator's long test runs many more.
    let behaviors = [
        Behavior::Silent,
        Behavior::Equivocate,
        Behavior::WithholdVotes,
        Behavior::DoubleVote,
        Behavior::Replay,
        Behavior::WrongDigest,
        Behavior::Slow(Duration::from_millis(15)),
    ];
    for seed in 0..200u64 {
        let n = 4 + (seed % 4) as u32 * 3;
        let f = (n - 1) / 3;
        let bad: Vec<(u32, Behavior)> = (0..f)
            .map(|k| {
                let node = ((seed as u32).wrapping_mul(2_654_435_761) >> 7).wrapping_add(k * 5) % n;
                (node, behaviors[((seed + u64::from(k)) % 7) as usize])
            })
            .collect();
        let drop_every = Rc::new(Cell::new(0u64));
        let counter = drop_every.clone();
        let roster = roster(n);
        let config = PbftConfig {
            checkpoint_interval: 4,
            log_window: 8,
            ..PbftConfig::default()
        };
        let bad_nodes: Vec<u32> = bad.iter().map(|b| b.0).collect();
        let mut h = Harness::new(n + 1, D, seed, |id| {
            let schedule = bad
                .iter()
                .filter(|(node, _)| *node == id.0)
                .map(|&(_, behavior)| Misbehavior {
                    behavior,
                    from: Time::ZERO,
                    until: Time(u64::MAX),
                })
                .collect();
            let role = Role {
                replica: (id.0 < n).then_some(id.0),
                client: id.0 == n,
            };
            Pbft::new(config, roster.clone(), role, schedule, None)
        })
        .with_filter(move |_, _, k| {
            // Lose about one message in 17, by hashing (seed, message number).
            counter.set(counter.get() + 1);
            !mix(seed, k).is_multiple_of(17)
        });
        h.start_all();
        for op in 0..6 {
            submit(&mut h, n, op);
        }
        h.run_until(Time(60_000_000_000));
        let log = executed(&h);
        let correct = |node: &NodeId| !bad_nodes.contains(&node.0);
        for (node, seq, digest) in log.iter().filter(|e| correct(&e.0)) {
            for (other, s, d) in log.iter().filter(|e| correct(&e.0)) {
                assert!(
                    s != seq || d == digest,
                    "seed {seed}: {node:?} and {other:?} disagree at {seq}"
                );
            }
        }
        assert!(drop_every.get() > 0);
    }
}

/// Steps replica 1 of n = 4 by hand: prepared needs the pre-prepare plus 2f = 2 matching
/// prepares (its own counts), committed-local needs 2f + 1 = 3 matching commits.
#[test]
fn quorums_are_two_f_prepares_and_two_f_plus_one_commits() {
    let config = PbftConfig::default();
    let keys = config.keys;
    let role = Role {
        replica: Some(1),
        client: false,
    };
    let pbft = Pbft::new(config, roster(4), role, Vec::new(), None);
    let mut node = Node::new(
        NodeId(1),
        pbft,
        ChaCha8Rng::seed_from_u64(1),
        Limits::default(),
    );
    let _ = node.step(Time::ZERO, Input::Start).count();
    let mut request = Request {
        client: NodeId(9),
        timestamp: 1,
        op: 3,
        size: 8,
        sig: Sig(0),
    };
    request.sig = keys.sign(Signer::Client(NodeId(9)), request.content());
    let batch = vec![request];
    let mut pp = PrePrepare {
        view: 0,
        seq: 1,
        digest: batch_digest(&batch),
        batch,
        sig: Sig(0),
    };
    pp.sig = keys.sign(Signer::Replica(0), pp.content());
    let vote = |replica: u32, phase: message::Phase| {
        let mut v = Vote {
            view: 0,
            seq: 1,
            digest: pp.digest,
            replica,
            sig: Sig(0),
        };
        v.sig = keys.sign(Signer::Replica(replica), v.content(phase));
        v
    };
    let deliver = |node: &mut Node<Pbft>, msg: PbftMessage| -> Vec<Effect<Pbft>> {
        node.step(
            Time::ZERO,
            Input::Message {
                from: NodeId(0),
                msg,
            },
        )
        .collect()
    };
    let commits_sent = |effects: &[Effect<Pbft>]| {
        effects
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Effect::Send {
                        msg: PbftMessage::Commit(_),
                        ..
                    }
                )
            })
            .count()
    };
    let committed = |effects: &[Effect<Pbft>]| {
        effects
            .iter()
            .any(|e| matches!(e, Effect::Emit(PbftEvent::Committed { .. })))
    };
    let effects = deliver(&mut node, PbftMessage::PrePrepare(Box::new(pp.clone())));
    assert_eq!(commits_sent(&effects), 0, "own prepare alone is 1 < 2f");
    let effects = deliver(
        &mut node,
        PbftMessage::Prepare(vote(2, message::Phase::Prepare)),
    );
    assert_eq!(
        commits_sent(&effects),
        3,
        "prepared: commit to the 3 others"
    );
    let effects = deliver(
        &mut node,
        PbftMessage::Commit(vote(2, message::Phase::Commit)),
    );
    assert!(!committed(&effects), "2 commits (own + 1) < 2f + 1");
    let effects = deliver(
        &mut node,
        PbftMessage::Commit(vote(2, message::Phase::Commit)),
    );
    assert!(!committed(&effects), "a duplicate commit does not count");
    let effects = deliver(
        &mut node,
        PbftMessage::Commit(vote(3, message::Phase::Commit)),
    );
    assert!(committed(&effects), "3 = 2f + 1 distinct commits");
}

/// Votes are most of the traffic: the message, the effect carrying it and the event enum stay
/// small, so a replica's multicast of n - 1 messages moves little memory.
#[test]
fn hot_types_stay_small() {
    assert!(std::mem::size_of::<PbftMessage>() <= 48);
    assert!(std::mem::size_of::<Effect<Pbft>>() <= 64);
    assert!(std::mem::size_of::<PbftDurable>() <= 16);
}

/// The view change of a committee with a window of prepared slots, as after a partition: every
/// replica's view change carries a certificate per slot, so carrying 2f+1 of them in the
/// NEW-VIEW (as before) grows with n^2 and exceeds the 1 MiB message limit from about 21
/// replicas on; named by digest it stays O(n + L) and the view installs at every size.
#[test]
fn a_new_view_names_its_view_changes_and_installs_at_every_committee_size() {
    for n in [4u32, 31, 64, 100] {
        let mut h = deployment(n, PbftConfig::default(), &[]);
        h.start_all();
        let client = n;
        let prepared = 12;
        for op in 0..prepared {
            submit(&mut h, client, op);
        }
        h.run_until(Time(2_000_000_000));
        assert_eq!(completed(&h).len(), prepared as usize, "n = {n}");
        h.crash(NodeId(0));
        submit(&mut h, client, 99);
        h.run_until(Time(30_000_000_000));
        assert_eq!(completed(&h).len(), prepared as usize + 1, "n = {n}");
        for i in 1..n {
            let pbft = h.node(NodeId(i)).unwrap();
            let replica = pbft.replica.as_ref().unwrap();
            assert_eq!(replica.view, 1, "n = {n}, replica {i}");
            let (nv, vcs) = replica.last_new_view.as_ref().expect("installed");
            assert_eq!(vcs.len() as u32, 2 * ((n - 1) / 3) + 1, "n = {n}");
            // Every view change carries the 12 prepared certificates; the new view only names
            // them and signs a header per slot.
            assert!(vcs.iter().all(|vc| vc.prepared.len() == prepared as usize));
            let nv_bytes = PbftMessage::NewView(Box::new(nv.clone())).wire_size();
            let vc_bytes: usize = vcs
                .iter()
                .map(|vc| PbftMessage::ViewChange(vc.clone()).wire_size())
                .sum();
            assert!(
                nv_bytes <= 96 + 36 * n as usize + 104 * 12,
                "n = {n}: {nv_bytes}"
            );
            assert!(
                nv_bytes * 10 < vc_bytes,
                "n = {n}: {nv_bytes} vs {vc_bytes}"
            );
            assert_eq!(pbft.stats().oversized, [0; Kind::ALL.len()], "n = {n}");
        }
    }
}

/// A NEW-VIEW that names a view change with another digest than the one sent (a primary that
/// swapped in a view change of its own making) is not installed with the view change held.
#[test]
fn a_new_view_naming_a_view_change_by_another_digest_waits_for_the_named_one() {
    let config = PbftConfig::default();
    let vc = |r: u32| ViewChange {
        view: 1,
        stable_seq: 0,
        stable_state: 0,
        proof: Vec::new(),
        prepared: Vec::new(),
        replica: r,
        sig: Sig(0),
    };
    let signed = |mut v: ViewChange| {
        v.sig = config.keys.sign(Signer::Replica(v.replica), v.content());
        Arc::new(v)
    };
    let vcs: Vec<Arc<ViewChange>> = (1..4).map(|r| signed(vc(r))).collect();
    let mut nv = NewView {
        view: 1,
        view_changes: vcs
            .iter()
            .map(|v| ViewChangeRef {
                replica: v.replica,
                digest: v.digest(),
            })
            .collect(),
        proposals: Vec::new(),
        sig: Sig(0),
    };
    let primary = Signer::Replica(1);
    nv.sig = config.keys.sign(primary, nv.content());
    let roster = roster(4);
    let install = |nv: &NewView, vcs: &[Arc<ViewChange>]| {
        let mut node = Node::new(
            NodeId(2),
            Pbft::new(
                config,
                roster.clone(),
                Role {
                    replica: Some(2),
                    client: false,
                },
                Vec::new(),
                None,
            ),
            ChaCha8Rng::seed_from_u64(1),
            Limits::default(),
        );
        let _ = node.step(Time::ZERO, Input::Start).count();
        for vc in vcs {
            let _ = node
                .step(
                    Time(1),
                    Input::Message {
                        from: NodeId(vc.replica),
                        msg: PbftMessage::ViewChange(vc.clone()),
                    },
                )
                .count();
        }
        let _ = node
            .step(
                Time(2),
                Input::Message {
                    from: NodeId(1),
                    msg: PbftMessage::NewView(Box::new(nv.clone())),
                },
            )
            .count();
        let r = node.protocol().replica.as_ref().unwrap();
        let waiting = r.pending_new_view.as_ref().map(|p| p.missing());
        (r.view, r.active, r.last_new_view.is_some(), waiting)
    };
    // The honest new view installs.
    assert_eq!(install(&nv, &vcs), (1, true, true, None));
    // The same new view naming replica 3's view change by another digest does not.
    let mut forged = nv.clone();
    forged.view_changes[2].digest = Digest(forged.view_changes[2].digest.0 ^ 1);
    forged.sig = config.keys.sign(primary, forged.content());
    let (_, active, installed, waiting) = install(&forged, &vcs);
    assert!(
        !installed && !active,
        "a new view with a wrong digest must not install"
    );
    // The replica cannot tell whether replica 3 sent two view changes or the primary lies: it
    // keeps the new view pending and asks for the named view change, without using the one it
    // holds in its place.
    assert_eq!(waiting, Some(vec![3]));
}

/// Where a view change meets the default 1 MiB limit: with every slot of the default window
/// (256) prepared and 64-byte requests, 84 replicas fit and 85 do not; a window of 128 fits 174.
/// docs/scenarios.md quotes these figures.
#[test]
fn the_largest_view_change_fits_the_default_limit_up_to_84_replicas() {
    let limit = Limits::default().message_size_max_bytes;
    let request = 32 + 8 + 64 + 64;
    assert!(view_change_size_max(84, 256, request) <= limit);
    assert!(view_change_size_max(85, 256, request) > limit);
    assert!(view_change_size_max(174, 128, request) <= limit);
    assert!(view_change_size_max(175, 128, request) > limit);
    // The bound is the size of a real view change with a full window.
    let n = 10u32;
    let f = 3;
    let pp = PrePrepare {
        view: 0,
        seq: 1,
        digest: Digest(1),
        batch: vec![Request {
            client: NodeId(99),
            timestamp: 1,
            op: 1,
            size: 64,
            sig: Sig(0),
        }],
        sig: Sig(0),
    };
    let vote = Vote {
        view: 0,
        seq: 1,
        digest: Digest(1),
        replica: 1,
        sig: Sig(0),
    };
    let vc = ViewChange {
        view: 1,
        stable_seq: 0,
        stable_state: 0,
        proof: vec![
            Checkpoint {
                seq: 0,
                state: 0,
                replica: 0,
                sig: Sig(0)
            };
            2 * f + 1
        ],
        prepared: vec![
            PreparedCert {
                pre_prepare: pp,
                prepares: vec![vote; 2 * f],
            };
            8
        ],
        replica: 0,
        sig: Sig(0),
    };
    assert_eq!(
        PbftMessage::ViewChange(Arc::new(vc)).wire_size(),
        view_change_size_max(n, 8, request)
    );
}

/// A backup that holds a NEW-VIEW but not every view change it names asks the sender for the
/// missing ones (and only those), waits without installing, and installs once they arrive.
#[test]
fn a_backup_fetches_the_view_changes_a_new_view_names_that_it_lacks() {
    let config = PbftConfig::default();
    let signed = |r: u32| {
        let mut v = ViewChange {
            view: 1,
            stable_seq: 0,
            stable_state: 0,
            proof: Vec::new(),
            prepared: Vec::new(),
            replica: r,
            sig: Sig(0),
        };
        v.sig = config.keys.sign(Signer::Replica(r), v.content());
        Arc::new(v)
    };
    let vcs: Vec<Arc<ViewChange>> = [0, 1, 3].into_iter().map(signed).collect();
    let mut nv = NewView {
        view: 1,
        view_changes: vcs
            .iter()
            .map(|v| ViewChangeRef {
                replica: v.replica,
                digest: v.digest(),
            })
            .collect(),
        proposals: Vec::new(),
        sig: Sig(0),
    };
    nv.sig = config.keys.sign(Signer::Replica(1), nv.content());
    let mut node = Node::new(
        NodeId(2),
        Pbft::new(
            config,
            roster(4),
            Role {
                replica: Some(2),
                client: false,
            },
            Vec::new(),
            None,
        ),
        ChaCha8Rng::seed_from_u64(1),
        Limits::default(),
    );
    let _ = node.step(Time::ZERO, Input::Start).count();
    // It holds replica 1's and 3's view changes, not replica 0's.
    for vc in &vcs[1..] {
        let msg = PbftMessage::ViewChange(vc.clone());
        let from = NodeId(vc.replica);
        let _ = node.step(Time(1), Input::Message { from, msg }).count();
    }
    let msg = PbftMessage::NewView(Box::new(nv));
    let effects: Vec<Effect<Pbft>> = node
        .step(
            Time(2),
            Input::Message {
                from: NodeId(1),
                msg,
            },
        )
        .collect();
    let fetches: Vec<(NodeId, Vec<u32>)> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                msg: PbftMessage::FetchViewChanges(f),
            } => Some((*to, f.replicas.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(fetches, vec![(NodeId(1), vec![0])]);
    let replica = node.protocol().replica.as_ref().unwrap();
    assert!(replica.pending_new_view.is_some());
    assert!(
        replica.last_new_view.is_none(),
        "not installed before the fetch"
    );
    // The status timer asks again while the view change is missing.
    let again: Vec<Effect<Pbft>> = node.step(Time(600_000_000), Input::Tick).collect();
    assert!(again.iter().any(|e| matches!(
        e,
        Effect::Send { to: NodeId(1), msg: PbftMessage::FetchViewChanges(f) } if f.replicas == [0]
    )));
    // Replica 0's view change arrives (from whoever answered): the view installs.
    let msg = PbftMessage::ViewChange(vcs[0].clone());
    let _ = node
        .step(
            Time(700_000_000),
            Input::Message {
                from: NodeId(1),
                msg,
            },
        )
        .count();
    let replica = node.protocol().replica.as_ref().unwrap();
    assert_eq!((replica.view, replica.active), (1, true));
    assert!(replica.pending_new_view.is_none());
    assert_eq!(
        replica.last_new_view.as_ref().map(|(_, v)| v.len()),
        Some(3)
    );
}
