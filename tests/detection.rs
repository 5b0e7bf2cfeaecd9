//! Byzantine fault detection end to end: wrong results delivered with detection off and on,
//! honest workers never isolated, and the accusations table.

mod common;

use common::metric;
use prsm_sim::{RunOutput, load_str, run};

fn run_yaml(yaml: &str) -> RunOutput {
    let s = load_str(yaml).unwrap_or_else(|e| panic!("{e:?}\n{yaml}"));
    run(&s, s.seed).unwrap()
}

/// One dispatcher and 60 workers (two slots, 100 ms mean service) without discovery (the
/// router greets every worker), 20 % of them returning a poisoned result (wrong, but passing the weak check) for every
/// task from 5 s on; honest workers err on 0.5 % of their results.
fn network(detection: bool, seed: u64) -> String {
    let layer = if detection {
        "  detection: { spot_check: 0.1, spot_check_watched: 0.5 }\n"
    } else {
        ""
    };
    let roles = if detection {
        "roles: { dispatcher: [routing, detection], worker: [routing, detection] }\n"
    } else {
        "roles: { dispatcher: [routing], worker: [routing] }\n"
    };
    format!(
        "name: wrong-results\nseed: {seed}\nduration: 60s\n\
         nodes:\n  - {{ count: 1, role: dispatcher }}\n  - {{ count: 60, role: worker }}\n\
         network: {{ latency: {{ constant: {{ one_way: 5ms }} }} }}\n\
         layers:\n  routing:\n    models: {{ m: f }}\n\
         \x20   classes: {{ job: {{ model: m, deadline: 10s }} }}\n\
         \x20   workers: [ {{ nodes: \"role:worker\", models: {{ m: {{ exponential: 100ms }} }}, slots: 2, queue: 64, error_rate: 0.005 }} ]\n\
         {layer}{roles}\
         adversaries:\n  - {{ nodes: \"role:worker & random:20%\", behavior: poison, from: 5s }}\n\
         workload:\n  tasks: [ {{ class: job, origins: \"role:dispatcher\", poisson: {{ rate: 200 }}, start: 5s, stop: 55s }} ]\n"
    )
}

/// Without detection, the wrong results delivered follow the Byzantine workers' share of the
/// work (12 of 60 workers: about 20 %); with it, the share falls by over five times: a new
/// worker starts at a low reputation (the router's reliability factor), spot checks quarantine
/// the ones that lie, and no honest worker is isolated.
#[test]
fn detection_cuts_the_wrong_results_delivered() {
    let off = run_yaml(&network(false, 1));
    let wrong_off = metric(&off, "tasks.wrong_share");
    assert!(
        (0.12..0.30).contains(&wrong_off),
        "without detection {wrong_off} of results were wrong"
    );
    let on = run_yaml(&network(true, 1));
    let wrong_on = metric(&on, "tasks.wrong_share");
    assert!(
        wrong_on < wrong_off / 5.0,
        "with detection {wrong_on} of results were wrong (off: {wrong_off})"
    );
    assert!(metric(&on, "tasks.wrong_share_after") < 0.02);
    assert_eq!(metric(&on, "detection.by_fault.poison.nodes"), 12.0);
    // Reputation keeps most of them from ever getting work; those that lie are quarantined.
    assert!(metric(&on, "detection.by_fault.poison.detected") >= 1.0);
    assert_eq!(metric(&on, "detection.false_isolations"), 0.0);
    assert!(metric(&on, "tasks.success_rate") >= 0.99);
    // Every quarantine is a row of the accusations table, with its accuser and cause.
    let (_, table) = on
        .tables
        .iter()
        .find(|(name, _)| name == "accusations")
        .expect("accusations table");
    let quarantined = table
        .text_rows
        .iter()
        .filter(|r| r[1] == "quarantined")
        .count() as f64;
    assert_eq!(quarantined, metric(&on, "detection.quarantines"));
    assert!(
        table
            .text_rows
            .iter()
            .all(|r| r[1] != "quarantined" || r[2] == "sprt")
    );
}

/// The honest workers' false quarantines stay rare over seeds: at most alpha (1 %) of the
/// sequential tests on honest workers end in "faulty".
#[test]
fn honest_workers_are_rarely_quarantined() {
    let (mut tests, mut faulty) = (0.0, 0.0);
    for seed in 1..=3 {
        let out = run_yaml(&network(true, seed));
        tests += metric(&out, "detection.sprt_tests_on_honest");
        faulty += metric(&out, "detection.sprt_tests_on_honest_faulty");
        assert_eq!(metric(&out, "detection.false_isolations"), 0.0);
    }
    assert!(tests > 100.0, "{tests} tests");
    assert!(
        faulty / tests <= 0.01 + 3.0 * (0.01 * 0.99 / tests).sqrt(),
        "{faulty} of {tests}"
    );
}

/// The same scenario and seed give the same metrics and the same accusations, row for row.
#[test]
fn detection_runs_are_deterministic() {
    let yaml = network(true, 7);
    let (a, b) = (run_yaml(&yaml), run_yaml(&yaml));
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(format!("{:?}", a.metrics), format!("{:?}", b.metrics));
    let rows = |o: &RunOutput| {
        o.tables
            .iter()
            .find(|(n, _)| n == "accusations")
            .map(|(_, t)| (t.rows.clone(), t.text_rows.clone()))
    };
    assert_eq!(rows(&a), rows(&b));
    assert!(rows(&a).is_some_and(|(r, _)| !r.is_empty()));
}
