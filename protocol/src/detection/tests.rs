//! Detection unit tests: the SPRT's error rates and sample numbers, proofs, the ladder.

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

use super::*;
use crate::random::chance;
use crate::{Effect, Input, Limits, Node};

fn node(config: DetectionConfig) -> Node<Detection> {
    let mut n = Node::new(
        NodeId(0),
        Detection::new(config),
        ChaCha8Rng::seed_from_u64(7),
        Limits::default(),
    );
    let _ = n.step(Time::ZERO, Input::Start).count();
    n
}

/// Steps `cmd` and returns the events and the sends.
fn say(
    n: &mut Node<Detection>,
    at: Time,
    cmd: DetectionCommand,
) -> (Vec<DetectionEvent>, Vec<(NodeId, DetectionMessage)>) {
    let (mut events, mut sends) = (Vec::new(), Vec::new());
    for e in n.step(at, Input::Command(cmd)) {
        match e {
            Effect::Emit(ev) => events.push(ev),
            Effect::Send { to, msg } => sends.push((to, msg)),
            _ => {}
        }
    }
    (events, sends)
}

fn drained(n: &mut Node<Detection>) -> Vec<Notice> {
    let mut out = Vec::new();
    crate::layer::Layer::drain_notices(n.protocol_mut(), &mut out);
    out
}

/// Runs one sequential test per fresh peer on Bernoulli(`p`) observations until it decides:
/// (share that accepted "faulty", mean observations to a decision).
fn run_tests(sprt: Sprt, p: f64, tests: u32, seed: u64) -> (f64, f64) {
    let mut n = node(DetectionConfig {
        sprt,
        peers_max: tests as usize + 1,
        ..DetectionConfig::default()
    });
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut faulty, mut total) = (0u32, 0u64);
    for t in 0..tests {
        let peer = NodeId(1 + t);
        for step in 0.. {
            assert!(step < 100_000, "a test that never decides");
            let bad = chance(&mut rng, p);
            let (events, _) = say(&mut n, Time::ZERO, DetectionCommand::Observe { peer, bad });
            let verdict = events.iter().find_map(|e| match *e {
                DetectionEvent::Test {
                    faulty,
                    observations,
                    ..
                } => Some((faulty, observations)),
                _ => None,
            });
            if let Some((f, obs)) = verdict {
                faulty += u32::from(f);
                total += u64::from(obs);
                break;
            }
        }
    }
    (
        f64::from(faulty) / f64::from(tests),
        total as f64 / f64::from(tests),
    )
}

/// Wald's approximation of the average sample number (Wald 1945; Siegmund, *Sequential
/// Analysis*, 1985, section 2.2): with a = ln((1 − β)/α), b = ln(β/(1 − α)) and the mean step
/// E[z] = p ln(p1/p0) + (1 − p) ln((1 − p1)/(1 − p0)),
/// E[N | p1] = ((1 − β) a + β b) / E[z | p1] and E[N | p0] = (α a + (1 − α) b) / E[z | p0].
/// It ignores the overshoot past the boundary, so the measured mean is a little above it; with
/// steps small against the boundaries (p0 = 0.1, p1 = 0.2) the gap is under 15 %.
#[test]
fn observations_to_a_verdict_follow_walds_formula() {
    let sprt = Sprt {
        p0: 0.1,
        p1: 0.2,
        alpha: 0.01,
        beta: 0.01,
    };
    let a = (0.99f64 / 0.01).ln();
    let b = (0.01f64 / 0.99).ln();
    let drift = |p: f64| p * 2f64.ln() + (1.0 - p) * (0.8f64 / 0.9).ln();
    let h1 = (0.99 * a + 0.01 * b) / drift(0.2);
    let h0 = (0.01 * a + 0.99 * b) / drift(0.1);
    assert!((sprt.expected_observations(true) - h1).abs() < 1e-9);
    assert!((sprt.expected_observations(false) - h0).abs() < 1e-9);
    for (faulty, expected) in [(true, h1), (false, h0)] {
        let p = if faulty { 0.2 } else { 0.1 };
        let (_, mean) = run_tests(sprt, p, 2_000, 11);
        let ratio = mean / expected;
        assert!(
            (0.97..1.15).contains(&ratio),
            "p = {p}: {mean:.1} observations on average, Wald says {expected:.1}"
        );
    }
}

/// An honest peer (error rate p0) is judged faulty in at most about `alpha` of the tests, and a
/// faulty one (p1) cleared in at most about `beta` (Wald's bounds: alpha / (1 − beta) and
/// beta / (1 − alpha)); each checked with three standard errors of slack over 4,000 tests.
#[test]
fn error_rates_stay_within_the_configured_bounds() {
    for (alpha, beta) in [(0.05, 0.05), (0.01, 0.1)] {
        let sprt = Sprt {
            p0: 0.02,
            p1: 0.3,
            alpha,
            beta,
        };
        let tests = 4_000;
        let slack = |q: f64| 3.0 * (q * (1.0 - q) / f64::from(tests)).sqrt();
        let (false_positive, _) = run_tests(sprt, 0.02, tests, 3);
        let bound = alpha / (1.0 - beta);
        assert!(
            false_positive <= bound + slack(bound),
            "alpha {alpha}: {false_positive} of honest peers judged faulty"
        );
        let (detected, _) = run_tests(sprt, 0.3, tests, 4);
        let miss_bound = beta / (1.0 - alpha);
        assert!(
            1.0 - detected <= miss_bound + slack(miss_bound),
            "beta {beta}: {} of faulty peers cleared",
            1.0 - detected
        );
    }
}

fn keys() -> NodeKeys {
    NodeKeys { seed: 5 }
}

fn signed_conflict(by: NodeId, query: u64) -> Proof {
    let k = keys();
    Proof::Results {
        accused: by,
        query,
        a: (10, k.sign(by, result_content(query, 10))),
        b: (11, k.sign(by, result_content(query, 11))),
    }
}

/// A proof isolates its accused and goes to every neighbour but its sender; a forgery (the
/// signatures are not the accused's, or both statements say the same) isolates nobody, is
/// counted, and counts against the sender; an honest peer that signed one answer per query
/// cannot be accused.
#[test]
fn only_proofs_that_verify_isolate() {
    let mut n = node(DetectionConfig {
        keys: keys(),
        ..DetectionConfig::default()
    });
    for p in 1..=3 {
        say(&mut n, Time::ZERO, DetectionCommand::Neighbor(NodeId(p)));
    }
    let honest = NodeId(7);
    let k = keys();
    let forged = [
        // Signed by someone else (the slanderer's own key).
        Proof::Results {
            accused: honest,
            query: 1,
            a: (10, k.sign(NodeId(2), result_content(1, 10))),
            b: (11, k.sign(NodeId(2), result_content(1, 11))),
        },
        // One real signature, one made up.
        Proof::Results {
            accused: honest,
            query: 1,
            a: (10, k.sign(honest, result_content(1, 10))),
            b: (11, 12345),
        },
        // The same statement twice: no conflict.
        Proof::Results {
            accused: honest,
            query: 1,
            a: (10, k.sign(honest, result_content(1, 10))),
            b: (10, k.sign(honest, result_content(1, 10))),
        },
        // Another query's signature.
        Proof::Results {
            accused: honest,
            query: 1,
            a: (10, k.sign(honest, result_content(1, 10))),
            b: (11, k.sign(honest, result_content(2, 11))),
        },
        // A PBFT proof without PBFT keys here.
        Proof::Pbft {
            accused: honest,
            replica: 0,
            phase: PbftPhase::PrePrepare,
            view: 0,
            seq: 1,
            a: (1, 1),
            b: (2, 2),
        },
    ];
    for (i, proof) in forged.into_iter().enumerate() {
        let mut out = Vec::new();
        for e in n.step(
            Time::ZERO,
            Input::Message {
                from: NodeId(2),
                msg: DetectionMessage::Proof(proof),
            },
        ) {
            if let Effect::Send { .. } = e {
                out.push(());
            }
        }
        assert!(out.is_empty(), "forgery {i} was forwarded");
        assert_eq!(n.protocol().level(honest), Level::Normal, "forgery {i}");
        assert_eq!(n.protocol().stats.proofs_invalid, i as u64 + 1);
    }
    // Each forgery was a wrong answer from node 2.
    assert!(n.protocol().stats.observations_bad >= 5);
    let notices = drained(&mut n);
    assert!(!notices.contains(&Notice::Isolated(honest)));

    let liar = NodeId(9);
    let proof = signed_conflict(liar, 42);
    let mut sent_to = Vec::new();
    for e in n.step(
        Time::ZERO,
        Input::Message {
            from: NodeId(1),
            msg: DetectionMessage::Proof(proof),
        },
    ) {
        if let Effect::Send { to, .. } = e {
            sent_to.push(to);
        }
    }
    assert_eq!(
        sent_to,
        vec![NodeId(2), NodeId(3)],
        "forwarded to all but the sender"
    );
    assert_eq!(n.protocol().level(liar), Level::Isolated);
    assert!(drained(&mut n).contains(&Notice::Isolated(liar)));
    // The same proof again, either way round, is a duplicate and goes nowhere.
    let swapped = match proof {
        Proof::Results {
            accused,
            query,
            a,
            b,
        } => Proof::Results {
            accused,
            query,
            a: b,
            b: a,
        },
        other => other,
    };
    let (_, sends) = say(&mut n, Time::ZERO, DetectionCommand::Proof(swapped));
    assert!(sends.is_empty());
    let stats = n.protocol().stats;
    assert_eq!(stats.proofs_duplicate, 1);
    assert_eq!(
        (
            stats.proofs_received,
            stats.proofs_found,
            stats.proofs_valid
        ),
        (6, 1, 1),
        "six from the network, one found here; one verified"
    );
    assert_eq!((stats.proofs_sent, stats.isolations), (2, 1));
    // Another proof against the same peer: it is isolated already, so nothing moves.
    let (events, sends) = say(
        &mut n,
        Time::ZERO,
        DetectionCommand::Proof(signed_conflict(liar, 43)),
    );
    assert!(
        events.is_empty() && sends.is_empty(),
        "{events:?} {sends:?}"
    );
    assert!(!drained(&mut n).contains(&Notice::Isolated(liar)));
    assert_eq!(n.protocol().stats.isolations, 1);
}

/// The ladder: probation (watched) for a new peer, quarantine on the SPRT's verdict, release on
/// probation when the quarantine runs out, and a doubled quarantine for a repeat.
#[test]
fn quarantine_runs_out_and_doubles_on_a_repeat() {
    let mut n = node(DetectionConfig {
        quarantine_for: Duration::from_secs(10),
        ..DetectionConfig::default()
    });
    let peer = NodeId(4);
    let (events, _) = say(
        &mut n,
        Time::ZERO,
        DetectionCommand::Observe { peer, bad: false },
    );
    assert!(events.contains(&DetectionEvent::Action {
        peer,
        level: Level::Watched,
        cause: Cause::Reputation
    }));
    // Two wrong answers from p0 = 0.02 to p1 = 0.3: ln(15) each against ln(99).
    say(
        &mut n,
        Time::ZERO,
        DetectionCommand::Observe { peer, bad: true },
    );
    assert_eq!(n.protocol().level(peer), Level::Watched);
    say(
        &mut n,
        Time::ZERO,
        DetectionCommand::Observe { peer, bad: true },
    );
    assert_eq!(n.protocol().level(peer), Level::Quarantined);
    assert!(drained(&mut n).contains(&Notice::Quarantined(peer)));
    let tick = |n: &mut Node<Detection>, s: u64| {
        let _ = n
            .step(Time::ZERO + Duration::from_secs(s), Input::Tick)
            .count();
    };
    tick(&mut n, 9);
    assert_eq!(n.protocol().level(peer), Level::Quarantined, "not yet");
    tick(&mut n, 10);
    assert_eq!(
        n.protocol().level(peer),
        Level::Watched,
        "released on probation"
    );
    assert!(drained(&mut n).contains(&Notice::Released(peer)));
    let at = Time::ZERO + Duration::from_secs(10);
    say(&mut n, at, DetectionCommand::Observe { peer, bad: true });
    say(&mut n, at, DetectionCommand::Observe { peer, bad: true });
    assert_eq!(n.protocol().level(peer), Level::Quarantined);
    tick(&mut n, 29);
    assert_eq!(
        n.protocol().level(peer),
        Level::Quarantined,
        "20 s the second time"
    );
    tick(&mut n, 30);
    assert_eq!(n.protocol().level(peer), Level::Watched);
}

/// Opinions: a fresh identity's are ignored (Sybils cannot vouch for each other or accuse); an
/// established reporter's move reputation, at most `second_hand_max` observations' worth, and
/// never quarantine.
#[test]
fn opinions_need_a_voucher_and_never_quarantine() {
    let opinions = Opinions {
        vouch_age: Duration::from_secs(30),
        vouch_min: 0.6,
        ..Opinions::default()
    };
    let mut n = node(DetectionConfig {
        opinions: Some(opinions),
        ..DetectionConfig::default()
    });
    let (reporter, sybil, victim) = (NodeId(2), NodeId(3), NodeId(5));
    let slander = DetectionMessage::Opinion(
        vec![Rating {
            peer: victim,
            good: 0,
            bad: u16::MAX,
        }]
        .into_boxed_slice(),
    );
    // The reporter earns a good record from t = 0; the Sybil appears at 40 s.
    for _ in 0..20 {
        say(
            &mut n,
            Time::ZERO,
            DetectionCommand::Observe {
                peer: reporter,
                bad: false,
            },
        );
    }
    let at = Time::ZERO + Duration::from_secs(40);
    say(
        &mut n,
        at,
        DetectionCommand::Observe {
            peer: sybil,
            bad: false,
        },
    );
    let before = n.protocol().reputation(victim, at);
    let _ = n
        .step(
            at,
            Input::Message {
                from: sybil,
                msg: slander.clone(),
            },
        )
        .count();
    assert_eq!(n.protocol().stats.opinions_ignored, 1);
    assert_eq!(n.protocol().reputation(victim, at), before);
    for _ in 0..50 {
        let _ = n
            .step(
                at,
                Input::Message {
                    from: reporter,
                    msg: slander.clone(),
                },
            )
            .count();
    }
    let after = n.protocol().reputation(victim, at);
    assert!(after < before, "an established reporter's opinion counts");
    // Prior (1, 2) plus at most 8 second-hand bad observations.
    assert!(after >= 1.0 / (1.0 + 2.0 + opinions.second_hand_max) - 1e-9);
    assert_ne!(n.protocol().level(victim), Level::Quarantined);
}

/// A malformed opinion is dropped by the screen.
#[test]
fn oversized_or_empty_opinions_are_malformed() {
    let n = node(DetectionConfig::default());
    let empty = DetectionMessage::Opinion(Vec::new().into_boxed_slice());
    let long = DetectionMessage::Opinion(
        vec![
            Rating {
                peer: NodeId(1),
                good: 1,
                bad: 1
            };
            RATINGS_MAX + 1
        ]
        .into_boxed_slice(),
    );
    assert_eq!(
        n.protocol().check(NodeId(1), &empty),
        Err(DropReason::Malformed)
    );
    assert_eq!(
        n.protocol().check(NodeId(1), &long),
        Err(DropReason::Malformed)
    );
}

/// Observations of this node itself or of an isolated peer change nothing: no record, no test.
#[test]
fn observations_of_itself_or_of_an_isolated_peer_are_ignored() {
    let mut n = node(DetectionConfig {
        keys: keys(),
        ..DetectionConfig::default()
    });
    let liar = NodeId(9);
    say(
        &mut n,
        Time::ZERO,
        DetectionCommand::Proof(signed_conflict(liar, 1)),
    );
    assert_eq!(n.protocol().level(liar), Level::Isolated);
    for peer in [NodeId(0), liar] {
        for _ in 0..10 {
            let (events, _) = say(
                &mut n,
                Time::ZERO,
                DetectionCommand::Observe { peer, bad: true },
            );
            assert!(events.is_empty(), "{peer:?}: {events:?}");
        }
    }
    assert_eq!(n.protocol().stats.observations, 0);
    assert_eq!(n.protocol().level(liar), Level::Isolated);
    assert_eq!(n.protocol().level(NodeId(0)), Level::Normal);
}

/// A PBFT proof verifies only with both statements signed by the replica's key, conflicting, and
/// the accused hosting that replica.
#[test]
fn pbft_proofs_need_the_replicas_signatures_and_host() {
    use crate::pbft::Roster;
    use crate::pbft::message::{Keys, Signer, statement_content};
    let keys = Keys { seed: 3 };
    let identity = PbftIdentity {
        keys,
        roster: std::sync::Arc::new(Roster::of((0..4).map(NodeId))),
    };
    let sign = |replica: u32, digest: u64| {
        let content = statement_content(PbftPhase::PrePrepare, 2, 9, digest, replica);
        (digest, keys.sign(Signer::Replica(replica), content).0)
    };
    let proof = |accused: u32, replica: u32, a: (u64, u64), b: (u64, u64)| Proof::Pbft {
        accused: NodeId(accused),
        replica,
        phase: PbftPhase::PrePrepare,
        view: 2,
        seq: 9,
        a,
        b,
    };
    let k = NodeKeys { seed: 0 };
    assert!(proof(1, 1, sign(1, 10), sign(1, 11)).verify(k, Some(&identity)));
    assert!(
        !proof(1, 1, sign(1, 10), sign(1, 11)).verify(k, None),
        "no PBFT keys here"
    );
    assert!(
        !proof(2, 1, sign(1, 10), sign(1, 11)).verify(k, Some(&identity)),
        "not its host"
    );
    assert!(
        !proof(1, 1, sign(1, 10), sign(1, 10)).verify(k, Some(&identity)),
        "no conflict"
    );
    assert!(
        !proof(1, 1, sign(1, 10), sign(2, 11)).verify(k, Some(&identity)),
        "another signer"
    );
    assert!(
        !proof(9, 9, sign(9, 10), sign(9, 11)).verify(k, Some(&identity)),
        "no such replica"
    );
    let other_view = Proof::Pbft {
        accused: NodeId(1),
        replica: 1,
        phase: PbftPhase::PrePrepare,
        view: 3,
        seq: 9,
        a: sign(1, 10),
        b: sign(1, 11),
    };
    assert!(
        !other_view.verify(k, Some(&identity)),
        "signed for another slot"
    );
}

/// Bounds and the node's own case: a proof against this node is forwarded once (its swapped
/// twin is a duplicate), at most `proofs_max` proofs are remembered, and at most `isolated_max`
/// peers are isolated.
#[test]
fn proofs_and_isolations_are_bounded() {
    let mut n = node(DetectionConfig {
        keys: keys(),
        proofs_max: 1,
        isolated_max: 1,
        ..DetectionConfig::default()
    });
    say(&mut n, Time::ZERO, DetectionCommand::Neighbor(NodeId(1)));
    let me = NodeId(0);
    let first = signed_conflict(me, 1);
    let (_, sends) = say(&mut n, Time::ZERO, DetectionCommand::Proof(first));
    assert_eq!(
        sends.len(),
        1,
        "a proof against this node still goes to its neighbours"
    );
    let Proof::Results {
        accused,
        query,
        a,
        b,
    } = first
    else {
        unreachable!()
    };
    let twin = Proof::Results {
        accused,
        query,
        a: b,
        b: a,
    };
    let (_, sends) = say(&mut n, Time::ZERO, DetectionCommand::Proof(twin));
    assert!(sends.is_empty(), "the same proof, swapped");
    // A second proof against this node is not remembered (one at most): seen again, it is
    // processed again.
    let second = signed_conflict(me, 2);
    say(&mut n, Time::ZERO, DetectionCommand::Proof(second));
    let (_, sends) = say(&mut n, Time::ZERO, DetectionCommand::Proof(second));
    assert_eq!(sends.len(), 1, "over proofs_max, not remembered");
    // One isolation at most.
    say(
        &mut n,
        Time::ZERO,
        DetectionCommand::Proof(signed_conflict(NodeId(5), 1)),
    );
    say(
        &mut n,
        Time::ZERO,
        DetectionCommand::Proof(signed_conflict(NodeId(6), 1)),
    );
    assert_eq!(n.protocol().level(NodeId(5)), Level::Isolated);
    assert_eq!(
        n.protocol().level(NodeId(6)),
        Level::Normal,
        "over isolated_max"
    );
    assert_eq!(n.protocol().stats.isolations, 1);
}

/// Second-hand arithmetic: an opinion weighs the reporter's reputation times `weight`; a
/// reporter's new opinion replaces its old one; all reporters together count at most
/// `second_hand_max`; a reporter needs both age and reputation to vouch; ratings of this node or
/// of the reporter itself are skipped.
#[test]
fn opinions_are_weighted_replaced_and_capped() {
    let opinions = Opinions::default();
    let mut n = node(DetectionConfig {
        opinions: Some(opinions),
        half_life: Duration::ZERO,
        ..DetectionConfig::default()
    });
    let me = NodeId(0);
    let victim = NodeId(50);
    let slander = |about: NodeId| {
        DetectionMessage::Opinion(
            vec![Rating {
                peer: about,
                good: 0,
                bad: u16::MAX,
            }]
            .into_boxed_slice(),
        )
    };
    let hear = |n: &mut Node<Detection>, at: Time, from: NodeId, msg: DetectionMessage| {
        let _ = n.step(at, Input::Message { from, msg }).count();
    };
    // Ten reporters with a clean record from t = 0 (reputation 21/23), one old but bad, one good
    // but met only at 35 s.
    for r in 1..=10 {
        for _ in 0..20 {
            say(
                &mut n,
                Time::ZERO,
                DetectionCommand::Observe {
                    peer: NodeId(r),
                    bad: false,
                },
            );
        }
    }
    for _ in 0..5 {
        say(
            &mut n,
            Time::ZERO,
            DetectionCommand::Observe {
                peer: NodeId(20),
                bad: false,
            },
        );
        say(
            &mut n,
            Time::ZERO,
            DetectionCommand::Observe {
                peer: NodeId(20),
                bad: true,
            },
        );
    }
    let young = Time::ZERO + Duration::from_secs(35);
    for _ in 0..20 {
        say(
            &mut n,
            young,
            DetectionCommand::Observe {
                peer: NodeId(21),
                bad: false,
            },
        );
    }
    let at = Time::ZERO + Duration::from_secs(40);
    let prior = 1.0 / 3.0;
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    // Neither the bad old peer nor the good young one may vouch.
    hear(&mut n, at, NodeId(20), slander(victim));
    hear(&mut n, at, NodeId(21), slander(victim));
    assert!(close(n.protocol().reputation(victim, at), prior));
    assert_eq!(n.protocol().stats.opinions_ignored, 2);
    // One reporter: its reputation times `weight` bad observations; again, the same.
    let w = 21.0 / 23.0;
    let one = 1.0 / (3.0 + w * opinions.weight);
    hear(&mut n, at, NodeId(1), slander(victim));
    assert!(close(n.protocol().reputation(victim, at), one));
    hear(&mut n, at, NodeId(1), slander(victim));
    assert!(
        close(n.protocol().reputation(victim, at), one),
        "replaced, not added"
    );
    // Ten reporters would add 18.3 observations; the cap keeps 8.
    for r in 2..=10 {
        hear(&mut n, at, NodeId(r), slander(victim));
    }
    assert!(close(
        n.protocol().reputation(victim, at),
        1.0 / (3.0 + opinions.second_hand_max)
    ));
    assert_eq!(n.protocol().stats.opinions_received, 13);
    // Ratings of this node, or of the reporter itself, are skipped.
    hear(&mut n, at, NodeId(2), slander(me));
    hear(&mut n, at, NodeId(3), slander(NodeId(3)));
    assert!(close(n.protocol().reputation(me, at), prior));
    assert!(close(n.protocol().reputation(NodeId(3), at), w));
}
