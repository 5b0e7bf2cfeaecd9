//! Routing unit tests: capability matching, failover on rejection, timeout and death, the retry
//! budget and deadline, residency, redundancy, local first, the baselines' choices, bounds.

use std::sync::Arc;

use super::*;
use crate::testing::Harness;

const MS: u64 = 1_000_000;

/// Models: 0 llama-70b and 1 llama-8b (family llm), 2 clip (vision).
fn catalog(classes: Vec<TaskClass>) -> Arc<Catalog> {
    let model = |name: &str, family: &str| ModelSpec {
        name: name.into(),
        family: family.into(),
    };
    Arc::new(Catalog::new(
        vec![
            model("llama-70b", "llm"),
            model("llama-8b", "llm"),
            model("clip", "vision"),
        ],
        classes,
    ))
}

fn class(model: ModelId) -> TaskClass {
    TaskClass {
        name: "chat".into(),
        model,
        input_bytes: 1_000,
        output_bytes: 2_000,
        compute: 1.0,
        deadline: Duration::from_secs(5),
        workers: 1,
        redundancy: 1,
        residency: None,
    }
}

fn worker(models: &[ModelId], service_ms: u64, slots: u16, queue_max: u32) -> WorkerConfig {
    WorkerConfig {
        models: models
            .iter()
            .map(|&m| (m, ServiceTime::Fixed(Duration::from_millis(service_ms))))
            .collect(),
        slots,
        queue_max,
        error_rate: 0.0,
        faults: Vec::new(),
        rate_limit: None,
    }
}

/// Node 0 routes (and serves nothing unless `workers[0]` says so); node i serves `workers[i]`.
/// Every node greets every other at start.
fn net(
    workers: Vec<Option<WorkerConfig>>,
    classes: Vec<TaskClass>,
    router: RouterConfig,
    regions: &[u16],
) -> Harness<Routing> {
    let n = workers.len() as u32;
    let catalog = catalog(classes);
    let router = Arc::new(router);
    Harness::new(n, Duration::from_millis(5), 1, |id| {
        Routing::new(RoutingConfig {
            catalog: catalog.clone(),
            router: router.clone(),
            worker: workers[id.index()].clone(),
            region: regions.get(id.index()).copied().unwrap_or(0),
            seeds: (0..n).map(NodeId).filter(|&p| p != id).collect(),
            keys: crate::detection::NodeKeys { seed: 0 },
            flood: None,
        })
    })
}

fn reports(h: &Harness<Routing>) -> Vec<TaskReport> {
    h.events
        .iter()
        .map(|(_, _, RoutingEvent::Done(r))| (**r).clone())
        .collect()
}

fn submit(h: &mut Harness<Routing>, task: TaskId, class: ClassId) {
    h.command(NodeId(0), RoutingCommand::Submit { task, class });
}

fn at_ms(ms: u64) -> Time {
    Time(ms * MS)
}

#[test]
fn an_exact_match_beats_a_compatible_one_and_the_latency_splits_into_its_parts() {
    let mut h = net(
        vec![
            None,
            Some(worker(&[1], 100, 1, 4)),
            Some(worker(&[0], 100, 1, 4)),
            Some(worker(&[2], 100, 1, 4)),
        ],
        vec![class(0)],
        RouterConfig::default(),
        &[],
    );
    h.start_all();
    h.run_until(at_ms(100));
    assert_eq!(
        h.node(NodeId(0)).expect("up").router().candidates().count(),
        3
    );
    submit(&mut h, 1, 0);
    h.run_until(at_ms(1_000));
    let r = reports(&h);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].outcome, TaskOutcome::Completed);
    assert_eq!(r[0].attempts.len(), 1);
    assert_eq!(
        r[0].attempts[0].worker,
        NodeId(2),
        "llama-70b is hosted by node 2"
    );
    assert_eq!(r[0].latency(), Duration::from_millis(110));
    assert_eq!(r[0].service, Duration::from_millis(100));
    assert_eq!(r[0].queue, Duration::ZERO);
    assert_eq!(r[0].network(), Duration::from_millis(10));
    assert_eq!(r[0].started, Some(at_ms(105)));
}

#[test]
fn a_compatible_model_serves_when_no_exact_one_exists_and_an_unrelated_one_never_does() {
    let mut h = net(
        vec![
            None,
            Some(worker(&[1], 50, 1, 4)),
            Some(worker(&[2], 50, 1, 4)),
        ],
        vec![
            class(0),
            class(2),
            TaskClass {
                model: 2,
                ..class(2)
            },
        ],
        RouterConfig::default(),
        &[],
    );
    h.start_all();
    h.run_until(at_ms(100));
    submit(&mut h, 1, 0);
    h.run_until(at_ms(1_000));
    let r = reports(&h);
    assert_eq!(r[0].outcome, TaskOutcome::Completed);
    assert_eq!(
        r[0].attempts[0].worker,
        NodeId(1),
        "llama-8b stands in for llama-70b"
    );
    let c = h.node(NodeId(0)).expect("up").config().catalog.clone();
    assert_eq!(c.credit(0, &[1]), MATCH_COMPATIBLE);
    assert_eq!(c.credit(0, &[0, 2]), MATCH_EXACT);
    assert_eq!(c.credit(0, &[2]), 0.0);
}

#[test]
fn a_full_queue_rejects_and_the_task_fails_over_to_the_next_worker() {
    // Two workers, one slot and no queue each: three tasks at once; the third is rejected by
    // whichever it reaches first and must move to... nobody free: rejected in the end.
    let config = RouterConfig {
        policy: Policy::RoundRobin,
        report_interval: Duration::ZERO,
        ..RouterConfig::default()
    };
    let mut h = net(
        vec![
            None,
            Some(worker(&[0], 200, 1, 0)),
            Some(worker(&[0], 200, 1, 0)),
        ],
        vec![class(0)],
        config,
        &[],
    );
    h.start_all();
    h.run_until(at_ms(100));
    for t in 1..=3 {
        submit(&mut h, t, 0);
    }
    h.run_until(at_ms(2_000));
    let mut r = reports(&h);
    r.sort_by_key(|r| r.task);
    assert_eq!(r[0].outcome, TaskOutcome::Completed);
    assert_eq!(r[1].outcome, TaskOutcome::Completed);
    assert_eq!(r[2].outcome, TaskOutcome::Rejected, "every worker was full");
    assert_eq!(r[2].attempts.len(), 2, "tried both workers");
    assert!(
        r[2].attempts
            .iter()
            .all(|a| a.outcome == AttemptOutcome::Rejected(RejectReason::QueueFull))
    );
    assert_ne!(r[2].attempts[0].worker, r[2].attempts[1].worker);
    // With a queue slot the third waits instead, and its queueing time is reported.
    let config = RouterConfig {
        policy: Policy::RoundRobin,
        ..RouterConfig::default()
    };
    let mut h = net(
        vec![
            None,
            Some(worker(&[0], 200, 1, 1)),
            Some(worker(&[0], 200, 1, 0)),
        ],
        vec![class(0)],
        config,
        &[],
    );
    h.start_all();
    h.run_until(at_ms(100));
    for t in 1..=3 {
        submit(&mut h, t, 0);
    }
    h.run_until(at_ms(2_000));
    let mut r = reports(&h);
    r.sort_by_key(|r| r.task);
    assert!(r.iter().all(|r| r.outcome == TaskOutcome::Completed));
    let queued: Vec<&TaskReport> = r.iter().filter(|r| r.queue > Duration::ZERO).collect();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].queue, Duration::from_millis(200));
}

#[test]
fn a_dead_worker_and_a_silent_one_both_lose_the_task_to_another() {
    let config = RouterConfig {
        policy: Policy::RoundRobin,
        accept_timeout: Duration::from_millis(300),
        ..RouterConfig::default()
    };
    let mut h = net(
        vec![
            None,
            Some(worker(&[0], 500, 1, 4)),
            Some(worker(&[0], 500, 1, 4)),
        ],
        vec![class(0)],
        config,
        &[],
    );
    h.start_all();
    h.run_until(at_ms(100));
    // Round robin sends task 1 to node 1; it accepts, then health says it died.
    submit(&mut h, 1, 0);
    h.run_until(at_ms(200));
    h.crash(NodeId(1));
    h.command(NodeId(0), RoutingCommand::Dead(NodeId(1)));
    h.run_until(at_ms(2_000));
    let r = reports(&h);
    assert_eq!(r[0].outcome, TaskOutcome::Completed);
    assert_eq!(r[0].attempts.len(), 2);
    assert_eq!(r[0].attempts[0].outcome, AttemptOutcome::WorkerDead);
    assert_eq!(r[0].attempts[1].worker, NodeId(2));
    assert_eq!(r[0].failovers(1), 1);
    assert!(!h.node(NodeId(0)).expect("up").router().knows(NodeId(1)));

    // A crashed worker nobody declared dead: the accept timeout moves the task on.
    let mut h = net(
        vec![
            None,
            Some(worker(&[0], 50, 1, 4)),
            Some(worker(&[0], 50, 1, 4)),
        ],
        vec![class(0)],
        RouterConfig {
            policy: Policy::RoundRobin,
            accept_timeout: Duration::from_millis(300),
            ..RouterConfig::default()
        },
        &[],
    );
    h.start_all();
    h.run_until(at_ms(100));
    h.crash(NodeId(1));
    submit(&mut h, 1, 0);
    h.run_until(at_ms(2_000));
    let r = reports(&h);
    assert_eq!(r[0].outcome, TaskOutcome::Completed);
    assert_eq!(r[0].attempts[0].outcome, AttemptOutcome::TimedOut);
    assert_eq!(r[0].attempts[0].ended, at_ms(400));
    assert_eq!(r[0].finished, at_ms(400 + 60));
}

#[test]
fn the_retry_budget_and_the_deadline_bound_failover() {
    // Four silent workers, two retries: three attempts, then the task fails.
    let mut h = net(
        vec![
            None,
            Some(worker(&[0], 50, 1, 4)),
            Some(worker(&[0], 50, 1, 4)),
            Some(worker(&[0], 50, 1, 4)),
            Some(worker(&[0], 50, 1, 4)),
        ],
        vec![class(0)],
        RouterConfig {
            retries: 2,
            accept_timeout: Duration::from_millis(100),
            ..RouterConfig::default()
        },
        &[],
    );
    h.start_all();
    h.run_until(at_ms(100));
    for i in 1..=4 {
        h.crash(NodeId(i));
    }
    submit(&mut h, 1, 0);
    h.run_until(at_ms(2_000));
    let r = reports(&h);
    assert_eq!(
        r[0].outcome,
        TaskOutcome::Failed(FailReason::RetriesExhausted)
    );
    assert_eq!(r[0].attempts.len(), 3);
    // A service longer than the deadline: expired at the deadline, the attempt abandoned.
    let mut h = net(
        vec![None, Some(worker(&[0], 9_000, 1, 4))],
        vec![class(0)],
        RouterConfig::default(),
        &[],
    );
    h.start_all();
    h.run_until(at_ms(100));
    submit(&mut h, 1, 0);
    h.run_until(at_ms(20_000));
    let r = reports(&h);
    assert_eq!(r.len(), 1, "one report, no late one after the result");
    assert_eq!(r[0].outcome, TaskOutcome::Expired);
    assert_eq!(r[0].finished, at_ms(5_100));
    assert_eq!(r[0].attempts[0].outcome, AttemptOutcome::Abandoned);
}

#[test]
fn residency_keeps_a_task_in_its_region_or_fails_it_with_a_reason() {
    let eu = TaskClass {
        residency: Some(1),
        ..class(0)
    };
    let mut h = net(
        vec![
            None,
            Some(worker(&[0], 10, 4, 16)),
            Some(worker(&[0], 10, 4, 16)),
        ],
        vec![eu.clone()],
        RouterConfig::default(),
        &[0, 0, 1],
    );
    h.start_all();
    h.run_until(at_ms(100));
    for t in 1..=10 {
        submit(&mut h, t, 0);
    }
    h.run_until(at_ms(2_000));
    let r = reports(&h);
    assert_eq!(r.len(), 10);
    assert!(
        r.iter()
            .all(|r| r.outcome == TaskOutcome::Completed && r.attempts[0].worker == NodeId(2))
    );
    let mut h = net(
        vec![None, Some(worker(&[0], 10, 4, 4))],
        vec![eu],
        RouterConfig::default(),
        &[0, 0],
    );
    h.start_all();
    h.run_until(at_ms(100));
    submit(&mut h, 1, 0);
    h.run_until(at_ms(2_000));
    assert_eq!(
        reports(&h)[0].outcome,
        TaskOutcome::Failed(FailReason::NoCandidate)
    );
}

#[test]
fn redundant_copies_run_on_distinct_workers_and_their_results_agree() {
    let triple = TaskClass {
        redundancy: 3,
        ..class(0)
    };
    let mut h = net(
        (0..6)
            .map(|i| (i > 0).then(|| worker(&[0], 20, 1, 4)))
            .collect(),
        vec![triple],
        RouterConfig::default(),
        &[],
    );
    h.start_all();
    h.run_until(at_ms(100));
    submit(&mut h, 1, 0);
    h.run_until(at_ms(2_000));
    let r = reports(&h);
    assert_eq!(r[0].outcome, TaskOutcome::Completed);
    assert_eq!(r[0].mismatches, 0);
    let mut used: Vec<NodeId> = r[0].attempts.iter().map(|a| a.worker).collect();
    used.sort();
    used.dedup();
    assert_eq!(used.len(), 3);
}

#[test]
fn a_node_that_can_serve_a_task_serves_it_itself() {
    let mut h = net(
        vec![Some(worker(&[0], 30, 1, 4)), Some(worker(&[0], 30, 1, 4))],
        vec![class(0)],
        RouterConfig::default(),
        &[],
    );
    h.start_all();
    h.run_until(at_ms(100));
    let sent = h.messages_sent;
    submit(&mut h, 1, 0);
    h.run_until(at_ms(1_000));
    let r = reports(&h);
    assert!(r[0].local);
    assert_eq!(r[0].outcome, TaskOutcome::Completed);
    assert_eq!(r[0].latency(), Duration::from_millis(30));
    assert_eq!(r[0].network(), Duration::ZERO);
    assert_eq!(h.messages_sent, sent, "no message for a local task");
    // Its only slot busy, the next goes to the network.
    submit(&mut h, 2, 0);
    submit(&mut h, 3, 0);
    h.run_until(at_ms(2_000));
    let r = reports(&h);
    assert!(
        r.iter()
            .any(|r| r.task == 3 && !r.local && r.attempts[0].worker == NodeId(1))
    );
}

#[test]
fn jsq_and_least_loaded_pick_the_least_loaded_they_know_of() {
    // Worker 1 is busy with a long task from the router (which it reported); JSQ(d = all) and
    // least-loaded must then prefer worker 2.
    for policy in [Policy::Jsq { d: 2 }, Policy::LeastLoaded] {
        let mut h = net(
            vec![
                None,
                Some(worker(&[0], 1_000, 1, 8)),
                Some(worker(&[0], 10, 1, 8)),
            ],
            vec![class(0)],
            RouterConfig {
                policy,
                ..RouterConfig::default()
            },
            &[],
        );
        h.start_all();
        h.run_until(at_ms(100));
        // Load worker 1 directly: three tasks in a row go to whichever is least loaded; after
        // the first, loads differ.
        for t in 1..=20 {
            submit(&mut h, t, 0);
            h.run_until(at_ms(100 + t * 50));
        }
        h.run_until(at_ms(10_000));
        let r = reports(&h);
        let on_slow = r
            .iter()
            .filter(|r| r.attempts[0].worker == NodeId(1))
            .count();
        assert!(
            on_slow <= 2,
            "{policy:?} sent {on_slow} of 20 to the busy worker"
        );
        assert!(r.iter().all(|r| r.outcome == TaskOutcome::Completed));
    }
}

#[test]
fn the_router_bounds_its_tasks_in_flight() {
    let mut h = net(
        vec![None, Some(worker(&[0], 1_000, 1, 100))],
        vec![class(0)],
        RouterConfig {
            inflight_max: 3,
            ..RouterConfig::default()
        },
        &[],
    );
    h.start_all();
    h.run_until(at_ms(100));
    for t in 1..=5 {
        submit(&mut h, t, 0);
    }
    let r = reports(&h);
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|r| r.outcome == TaskOutcome::Rejected));
    assert_eq!(h.node(NodeId(0)).expect("up").router().in_flight(), 3);
}

#[test]
fn ties_are_broken_uniformly() {
    let mut rng = <rand_chacha::ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(3);
    let items = [1.0, 2.0, 2.0, 2.0, 0.5];
    let mut hits = [0u32; 5];
    for _ in 0..3_000 {
        let k = router_best_one(&mut rng, &items);
        hits[k] += 1;
    }
    assert_eq!(hits[0] + hits[4], 0);
    for &h in &hits[1..4] {
        assert!((850..1_150).contains(&h), "{hits:?}");
    }
}

fn router_best_one(rng: &mut rand_chacha::ChaCha8Rng, items: &[f64]) -> usize {
    super::router::best_k(rng, items, 1, |x| *x)[0]
}

#[test]
fn load_reports_age_out() {
    let c = Candidate::new(0, vec![0].into_boxed_slice(), 2, 8, 6, at_ms(0));
    let max = Duration::from_secs(5);
    assert_eq!(c.estimated_load(at_ms(5_000), max), 6);
    assert_eq!(c.estimated_load(at_ms(5_001), max), 0);
    let f = c.factors(
        1.0,
        at_ms(0),
        &RouterConfig::default(),
        0.9,
        Duration::from_millis(100),
    );
    assert_eq!(
        f,
        [1.0, 1.0 / 3.5, 0.5, 0.9],
        "load 6 on 2 slots: 5 ahead of 2 slots at 100 ms, a 250 ms wait; unknown rtt; a new peer is average"
    );
    let mut seasoned = c.clone();
    seasoned.ok = 8;
    let f = seasoned.factors(
        1.0,
        at_ms(0),
        &RouterConfig::default(),
        0.9,
        Duration::from_millis(100),
    );
    assert!(
        (f[3] - 9.8 / 10.0).abs() < 1e-12,
        "8 clean outcomes shrunk toward 0.9: {}",
        f[3]
    );
}

#[test]
fn bad_messages_are_refused() {
    let h = net(
        vec![None, None],
        vec![class(0)],
        RouterConfig::default(),
        &[],
    );
    let r = h.node(NodeId(0)).expect("up");
    let task = RoutingMessage::Task {
        task: 1,
        class: 7,
        copy: 0,
        query: 1,
        ttl: Duration::from_secs(1),
        input_bytes: 0,
    };
    assert_eq!(r.check(NodeId(1), &task), Err(DropReason::Malformed));
    let advert = RoutingMessage::Advert {
        region: 0,
        models: Vec::new().into_boxed_slice(),
        slots: 1,
        queue_max: 1,
        load: 0,
        peers: Vec::new().into_boxed_slice(),
    };
    assert_eq!(r.check(NodeId(1), &advert), Err(DropReason::Malformed));
}

#[test]
fn the_capability_bit_sets_agree_with_the_model_lists() {
    let c = catalog(Vec::new());
    let hosted_sets: [&[ModelId]; 6] = [&[], &[0], &[1], &[2], &[1, 2], &[0, 1, 2]];
    for hosted in hosted_sets {
        let masks = c.masks(hosted).expect("three models fit");
        for needed in 0..3 {
            assert_eq!(
                c.credit_masked(needed, masks),
                c.credit(needed, hosted),
                "{needed} on {hosted:?}"
            );
        }
    }
}

#[test]
fn capability_bit_sets_cover_every_family_and_give_way_past_64_models() {
    let model = |name: String, family: &str| ModelSpec {
        name,
        family: family.into(),
    };
    // Two families with two models each: a compatible match in the second family too.
    let c = Catalog::new(
        vec![
            model("a".into(), "llm"),
            model("b".into(), "llm"),
            model("c".into(), "vision"),
            model("d".into(), "vision"),
        ],
        Vec::new(),
    );
    let m = c.masks(&[3]).expect("fits");
    assert_eq!(c.credit_masked(2, m), MATCH_COMPATIBLE);
    assert_eq!(c.credit_masked(3, m), MATCH_EXACT);
    assert_eq!(c.credit_masked(0, m), 0.0);
    // 70 models: hosting model 65 has no bit set; credit still comes from the list.
    let big = Catalog::new(
        (0..70)
            .map(|i| model(format!("m{i}"), if i < 66 { "x" } else { "y" }))
            .collect(),
        Vec::new(),
    );
    assert_eq!(big.masks(&[65]), None);
    assert_eq!(
        big.masks(&[1, 63]).map(|(m, _)| m),
        Some((1 << 1) | (1 << 63))
    );
    let candidate = |hosted: Vec<ModelId>| {
        let mut cand = Candidate::new(0, hosted.into_boxed_slice(), 1, 1, 0, Time::ZERO);
        cand.set_masks(&big);
        cand
    };
    assert_eq!(candidate(vec![65]).credit(&big, 65), MATCH_EXACT);
    assert_eq!(candidate(vec![65]).credit(&big, 64), MATCH_COMPATIBLE);
    assert_eq!(candidate(vec![63]).credit(&big, 64), MATCH_COMPATIBLE);
    assert_eq!(candidate(vec![63]).credit(&big, 63), MATCH_EXACT);
    assert_eq!(candidate(vec![63]).credit(&big, 67), 0.0);
}

#[test]
fn a_death_moves_only_the_copies_on_the_dead_worker() {
    // Two tasks on two of three workers (round robin); the network is built twice with the same
    // seed: once to learn where task 1 goes, once to kill that worker while both run.
    let start = || {
        let mut h = net(
            (0..4)
                .map(|i| (i > 0).then(|| worker(&[0], 500, 1, 4)))
                .collect(),
            vec![class(0)],
            RouterConfig {
                policy: Policy::RoundRobin,
                ..RouterConfig::default()
            },
            &[],
        );
        h.start_all();
        h.run_until(at_ms(100));
        submit(&mut h, 1, 0);
        submit(&mut h, 2, 0);
        h.run_until(at_ms(200));
        h
    };
    let mut h = start();
    h.run_until(at_ms(2_000));
    let on_task1 = reports(&h)
        .iter()
        .find(|r| r.task == 1)
        .map(|r| r.attempts[0].worker)
        .expect("task 1 done");
    let mut h = start();
    h.crash(on_task1);
    h.command(NodeId(0), RoutingCommand::Dead(on_task1));
    h.run_until(at_ms(3_000));
    let r = reports(&h);
    let t1 = r.iter().find(|r| r.task == 1).expect("task 1");
    let t2 = r.iter().find(|r| r.task == 2).expect("task 2");
    assert_eq!(t1.attempts.len(), 2, "task 1 moved off the dead worker");
    assert_eq!(t1.attempts[0].outcome, AttemptOutcome::WorkerDead);
    assert_eq!(t2.attempts.len(), 1, "task 2 was elsewhere and stays");
    assert_eq!(t2.outcome, TaskOutcome::Completed);
}

#[test]
fn a_worker_silent_after_accepting_loses_its_task() {
    // Reports every 100 ms; accept timeout 300 ms: silence over 600 ms is noticed at the next
    // refresh tick (every max_age / 5 = 1 s).
    let config = RouterConfig {
        policy: Policy::RoundRobin,
        report_interval: Duration::from_millis(100),
        accept_timeout: Duration::from_millis(300),
        ..RouterConfig::default()
    };
    let mut h = net(
        vec![
            None,
            Some(worker(&[0], 2_000, 1, 4)),
            Some(worker(&[0], 2_000, 1, 4)),
        ],
        vec![class(0)],
        config,
        &[],
    );
    h.start_all();
    h.run_until(at_ms(100));
    submit(&mut h, 1, 0);
    h.run_until(at_ms(150));
    // The task was accepted; its worker now crashes, and nobody tells the router.
    let first = (1..=2)
        .map(NodeId)
        .find(|&w| {
            h.node(w)
                .and_then(Routing::worker)
                .is_some_and(|x| x.in_service() == 1)
        })
        .expect("one worker took it");
    h.crash(first);
    h.run_until(at_ms(12_000));
    let r = reports(&h);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].attempts[0].outcome, AttemptOutcome::TimedOut);
    assert!(
        r[0].attempts[0].ended <= at_ms(1_200),
        "{:?}",
        r[0].attempts[0]
    );
    assert_eq!(r[0].outcome, TaskOutcome::Completed);
    assert_ne!(r[0].attempts[1].worker, first);
}

fn faulty(kind: FaultKind) -> WorkerConfig {
    WorkerConfig {
        faults: vec![WorkerFault {
            from: Time::ZERO,
            until: Time(u64::MAX),
            kind,
        }],
        ..worker(&[0], 10, 4, 64)
    }
}

fn spot_checking() -> RouterConfig {
    RouterConfig {
        spot_check: 1.0,
        spot_check_watched: 1.0,
        ..RouterConfig::default()
    }
}

/// Starts the network, submits `tasks` tasks 50 ms apart, and lets them finish.
fn drive(h: &mut Harness<Routing>, tasks: u64) {
    h.start_all();
    for t in 0..tasks {
        submit(h, t, 0);
        h.run_until(h.now + Duration::from_millis(50));
    }
    h.run_until(h.now + Duration::from_secs(5));
}

/// A worker that answers one query two ways is caught by a repeat check: the router holds both
/// signed answers, a proof. An honest worker, even one that errs on a third of its results,
/// answers a query the same way every time, so it is never proven against (its errors fail
/// known-answer checks instead).
#[test]
fn repeat_checks_prove_inconsistency_and_never_an_honest_worker() {
    let mut h = net(
        vec![None, Some(faulty(FaultKind::Inconsistent))],
        vec![class(0)],
        spot_checking(),
        &[],
    );
    drive(&mut h, 40);
    let s = h.node(NodeId(0)).expect("up").stats;
    assert!(s.repeat_checks > 0 && s.conflicts_proven > 0, "{s:?}");
    assert_eq!(s.conflicts_proven, s.repeat_checks, "every repeat differs");

    let sloppy = WorkerConfig {
        error_rate: 0.3,
        ..worker(&[0], 10, 4, 64)
    };
    let mut h = net(
        vec![None, Some(sloppy)],
        vec![class(0)],
        spot_checking(),
        &[],
    );
    drive(&mut h, 200);
    let s = h.node(NodeId(0)).expect("up").stats;
    assert!(s.repeat_checks > 20, "{s:?}");
    assert_eq!(
        s.conflicts_proven, 0,
        "an honest worker never signs two answers"
    );
    assert!(
        s.spot_checks_failed > 0,
        "its errors fail known-answer checks"
    );
    let w = h.node(NodeId(1)).expect("up").stats;
    assert!(w.honest_errors > 0 && w.lies == 0);
}

/// A result that fails the weak check is not delivered: the copy moves to another worker, and
/// the attempt is recorded as invalid.
#[test]
fn a_malformed_result_fails_over() {
    let liar = faulty(FaultKind::Wrong {
        probability: 1.0,
        class: None,
        group: None,
        malformed: 1.0,
    });
    let mut h = net(
        vec![None, Some(liar), Some(worker(&[0], 10, 4, 64))],
        vec![class(0)],
        RouterConfig {
            policy: Policy::RoundRobin,
            ..RouterConfig::default()
        },
        &[],
    );
    h.start_all();
    h.run_until(h.now + Duration::from_millis(100));
    for t in 0..10 {
        submit(&mut h, t, 0);
    }
    h.run_until(h.now + Duration::from_secs(5));
    let r = reports(&h);
    assert_eq!(r.len(), 10);
    for report in &r {
        assert_eq!(report.outcome, TaskOutcome::Completed);
        assert_eq!(
            &*report.digests,
            &[honest_digest(report.task)],
            "only right answers"
        );
        assert!(
            report
                .attempts
                .iter()
                .all(|a| a.worker == NodeId(2) || a.outcome == AttemptOutcome::Invalid)
        );
    }
    assert!(h.node(NodeId(0)).expect("up").stats.weak_check_failed > 0);
}

/// A sender over its rate limit at a worker is turned down; the worker's bucket refills.
#[test]
fn a_sender_over_its_rate_limit_is_turned_down() {
    let limited = WorkerConfig {
        rate_limit: Some(RateLimit {
            per_s: 1.0,
            burst: 3.0,
        }),
        ..worker(&[0], 10, 4, 64)
    };
    let mut h = net(
        vec![None, Some(limited)],
        vec![class(0)],
        RouterConfig {
            retries: 0,
            ..RouterConfig::default()
        },
        &[],
    );
    h.start_all();
    h.run_until(h.now + Duration::from_millis(100));
    for t in 0..10 {
        submit(&mut h, t, 0);
    }
    h.run_until(h.now + Duration::from_secs(2));
    let done = reports(&h)
        .iter()
        .filter(|r| r.outcome == TaskOutcome::Completed)
        .count();
    assert_eq!(done, 3, "the burst");
    assert_eq!(h.node(NodeId(1)).expect("up").stats.rate_limited, 7);
    submit(&mut h, 10, 0);
    h.run_until(h.now + Duration::from_secs(1));
    assert_eq!(
        reports(&h).last().map(|r| r.outcome),
        Some(TaskOutcome::Completed),
        "refilled after a second"
    );
}
