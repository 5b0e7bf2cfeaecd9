//! Task routing end to end: the queueing behaviour of the baselines against queueing theory,
//! failover under crashes, data residency, traces, and determinism.

mod common;

use common::{metric, prsm, scratch, text};
use prsm_sim::{RunOutput, load_str, run};

fn run_yaml(yaml: &str) -> RunOutput {
    let s = load_str(yaml).unwrap_or_else(|e| panic!("{e:?}\n{yaml}"));
    run(&s, s.seed).unwrap()
}

/// One dispatcher (node 0) and `servers` identical workers with one slot each, an unbounded
/// queue and exponential service with a 100 ms mean; Poisson arrivals at `load` times the total
/// service rate; no network delay, so a router's load figures are exact (every answer carries the
/// worker's load) and a task's latency is its sojourn time at the worker.
fn supermarket(router: &str, load: f64, servers: u32, seconds: u64, seed: u64) -> String {
    let rate = load * f64::from(servers) * 10.0;
    format!(
        "name: supermarket\nseed: {seed}\nduration: {end}s\n\
         nodes:\n  - {{ count: 1, role: dispatcher }}\n  - {{ count: {servers}, role: server }}\n\
         network: {{ latency: {{ constant: {{ one_way: 0 }} }} }}\n\
         layers:\n  routing:\n    router: {router}\n    d: 2\n    reports: {{ interval: 0 }}\n\
         \x20   accept_timeout: 1h\n    retries: 0\n    inflight_max: 1000000\n\
         \x20   models: {{ m: f }}\n\
         \x20   classes: {{ job: {{ model: m, deadline: 1h }} }}\n\
         \x20   workers: [ {{ nodes: \"role:server\", models: {{ m: {{ exponential: 100ms }} }}, slots: 1, queue: 1000000 }} ]\n\
         roles: {{ dispatcher: [routing], server: [routing] }}\n\
         workload:\n  tasks: [ {{ class: job, origins: \"role:dispatcher\", poisson: {{ rate: {rate} }}, start: 1s, stop: {stop}s }} ]\n",
        end = seconds + 60,
        stop = seconds + 1,
    )
}

/// The mean-field mean sojourn time (in units of the mean service time) of the supermarket
/// model: N -> infinity servers, Poisson arrivals at rate lambda N, exponential service at rate 1,
/// each arrival joins the shortest of d queues drawn at random:
/// T_d(lambda) = sum_{i >= 1} lambda^((d^i - d) / (d - 1)).
/// Vvedenskaya, Dobrushin and Karpelevich, "Queueing system with selection of the shortest of two
/// queues: an asymptotic approach", Problems of Information Transmission 32(1), 1996; Mitzenmacher,
/// "The Power of Two Choices in Randomized Load Balancing", IEEE TPDS 12(10), 2001 (the same
/// expected time in the limit, and simulations showing 100 servers already close to it). For d = 1
/// (random) the formula gives the M/M/1 figure 1 / (1 - lambda), exact at any N. For d = 2 it is
/// 1.2657 at lambda 0.5, 1.9474 at 0.8 and 2.6141 at 0.9.
fn mean_field(d: u32, lambda: f64) -> f64 {
    let d = f64::from(d);
    (1..5_000)
        .map(|i| {
            // (d^i - d) / (d - 1) = d + d^2 + ... + d^(i-1) for d != 1, and i - 1 for d = 1.
            let exponent: f64 = (1..i).map(|k| d.powi(k)).sum();
            lambda.powf(exponent)
        })
        .take_while(|x| *x > 1e-15)
        .sum()
}

#[test]
fn the_mean_field_series_is_the_theorem_s() {
    // d = 2, lambda = 1/2: exponents 0, 2, 6, 14, 30 ...
    let by_hand = 1.0 + 0.25 + 1.0 / 64.0 + 1.0 / 16_384.0 + 0.5f64.powi(30);
    assert!((mean_field(2, 0.5) - by_hand).abs() < 1e-12);
    // d = 1 is the geometric series 1 / (1 - lambda).
    assert!((mean_field(1, 0.9) - 10.0).abs() < 1e-9);
    assert!((mean_field(2, 0.9) - 2.614_057).abs() < 1e-6);
}

/// Random and JSQ(2) against the mean-field figures at three loads. A router that chose at
/// random while claiming JSQ(2) would show 10 mean service times at load 0.9 instead of 2.6.
#[test]
fn random_and_jsq2_match_the_mean_field_sojourn_times() {
    let servers = 100;
    for (router, d, loads) in [("random", 1, [0.5, 0.7, 0.8]), ("jsq", 2, [0.5, 0.8, 0.9])] {
        for load in loads {
            // Heavier loads relax more slowly: run longer so the mean settles.
            let seconds = if load >= 0.8 { 400 } else { 150 };
            let out = run_yaml(&supermarket(router, load, servers, seconds, 11));
            assert_eq!(metric(&out, "tasks.failed"), 0.0);
            assert_eq!(metric(&out, "tasks.rejected"), 0.0);
            let measured = metric(&out, "tasks.latency_ms.mean") / 100.0;
            let theory = mean_field(d, load);
            let tolerance = if d == 1 { 0.08 } else { 0.05 };
            assert!(
                (measured / theory - 1.0).abs() < tolerance,
                "{router} at load {load}: mean sojourn {measured:.4} service times, mean field {theory:.4}"
            );
            assert!(
                metric(&out, "tasks.network_ms.max") == 0.0,
                "no network time in this model"
            );
        }
    }
}

/// A 200-node network where 30 % of the workers crash at once mid-run: their tasks fail over to
/// live workers (health confirms the deaths; unanswered tasks time out), and almost every task
/// still completes.
#[test]
fn tasks_fail_over_when_a_third_of_the_workers_crash() {
    let yaml = "name: failover\nseed: 3\nduration: 50s\n\
         nodes:\n  - { count: 1, role: bootstrap, region: us-east-1 }\n\
         \x20 - { count: 9, role: coordinator, region: us-east-1 }\n\
         \x20 - { count: 190, role: worker, region: us-east-1 }\n\
         network: { latency: { regions: {} } }\n\
         layers:\n  kademlia: { bootstrap: \"role:bootstrap\", join_spread: 3s }\n\
         \x20 swim: { view_max: 32 }\n\
         \x20 routing:\n    accept_timeout: 500ms\n    models: { m: llm }\n\
         \x20   classes: { job: { model: m, deadline: 30s } }\n\
         \x20   workers: [ { nodes: \"role:worker\", models: { m: { exponential: 2s } }, slots: 2, queue: 8 } ]\n\
         roles: { bootstrap: [kademlia, swim], coordinator: [kademlia, swim, routing], worker: [kademlia, swim, routing] }\n\
         workload:\n  tasks: [ { class: job, origins: \"role:coordinator\", poisson: { rate: 60 }, start: 10s, stop: 35s } ]\n\
         faults:\n  - { at: 20s, crash: \"role:worker & random:30%\" }\n";
    let out = run_yaml(yaml);
    assert_eq!(metric(&out, "faults.crashes"), 57.0);
    assert!(
        metric(&out, "tasks.failovers") > 20.0,
        "tasks on crashed workers moved"
    );
    assert!(
        metric(&out, "tasks.success_rate") >= 0.99,
        "{}",
        metric(&out, "tasks.success_rate")
    );
    let tasks = out
        .tables
        .iter()
        .find(|(n, _)| n == "tasks")
        .map(|(_, t)| t)
        .unwrap();
    let attempts = tasks
        .text_columns
        .iter()
        .position(|c| c == "attempt_outcomes")
        .unwrap();
    let moved = tasks
        .text_rows
        .iter()
        .filter(|r| r[attempts].contains("worker_dead") || r[attempts].contains("timed_out"))
        .count();
    assert!(
        moved > 20,
        "every failover is recorded per attempt ({moved})"
    );
}

/// Tasks bound to a region run only there; cut that region off and those from elsewhere fail
/// with a reason, while the rest keep being served.
#[test]
fn residency_holds_through_a_partition() {
    let out = run_yaml(include_str!(
        "../scenarios/routing/residency-partition.yaml"
    ));
    assert!(metric(&out, "tasks.by_class.eu-only.success_rate") < 0.9);
    assert!(metric(&out, "tasks.by_class.anywhere.success_rate") >= 0.99);
    let tasks = out
        .tables
        .iter()
        .find(|(n, _)| n == "tasks")
        .map(|(_, t)| t)
        .unwrap();
    let col = |name: &str| tasks.text_columns.iter().position(|c| c == name).unwrap();
    let (class, region, workers, reason) = (
        col("class"),
        col("origin_region"),
        col("workers"),
        col("reason"),
    );
    // Every eu-only task that ran, ran in eu-west-1 (nodes 250-499).
    for row in tasks.text_rows.iter().filter(|r| r[class] == "eu-only") {
        for w in row[workers].split(';').filter(|w| !w.is_empty()) {
            let w: u32 = w.parse().unwrap();
            assert!(
                (250..500).contains(&w),
                "eu-only task ran on node {w}: {row:?}"
            );
        }
    }
    let stranded = tasks
        .text_rows
        .iter()
        .filter(|r| {
            r[class] == "eu-only" && r[region] != "eu-west-1" && r[reason] == "no_candidate"
        })
        .count();
    assert!(
        stranded > 0,
        "tasks from cut-off regions fail as no_candidate"
    );
}

#[test]
fn the_same_seed_gives_the_same_tasks_byte_for_byte() {
    let dir = scratch("routing-determinism");
    let file = "scenarios/routing/failover.yaml";
    let mut outputs = Vec::new();
    for k in 0..2 {
        let out = dir.join(format!("run{k}"));
        let o = prsm(&["run", file, "--out", out.to_str().unwrap()]);
        assert!(o.status.code() == Some(0), "{}", text(&o.stderr));
        outputs.push(out);
    }
    for name in ["tasks.csv", "timeseries.csv", "summary.json"] {
        let a = std::fs::read(outputs[0].join(name)).unwrap();
        let b = std::fs::read(outputs[1].join(name)).unwrap();
        assert!(a == b, "{name} differs between two runs of the same seed");
        assert!(!a.is_empty());
    }
}

#[test]
fn a_trace_drives_the_run_and_a_malformed_one_is_refused_with_its_row_and_column() {
    let dir = scratch("routing-trace");
    let out = dir.join("out");
    let o = prsm(&[
        "run",
        "scenarios/routing/trace.yaml",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let csv = std::fs::read_to_string(out.join("tasks.csv")).unwrap();
    let rows = csv.lines().count() - 1;
    let trace = std::fs::read_to_string("scenarios/routing/traces/small.csv").unwrap();
    let wanted = trace
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count()
        - 1;
    assert_eq!(rows, wanted, "one task per trace row");

    // A bad row: the error names the trace file, the row and the column.
    let scenario = std::fs::read_to_string("scenarios/routing/trace.yaml").unwrap();
    std::fs::create_dir_all(dir.join("traces")).unwrap();
    std::fs::write(dir.join("s.yaml"), scenario).unwrap();
    std::fs::write(
        dir.join("traces/small.csv"),
        "time,origin,class\n1s,role:coordinator,chat\n2s,role:coordinator,chta\n",
    )
    .unwrap();
    let o = prsm(&["validate", dir.join("s.yaml").to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("small.csv:3:21: unknown task class `chta`"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
    std::fs::write(
        dir.join("traces/small.csv"),
        "time,origin,class\nsoon,role:coordinator,chat\n",
    )
    .unwrap();
    let o = prsm(&["run", dir.join("s.yaml").to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("small.csv:2:1:"), "{err}");
    std::fs::remove_file(dir.join("traces/small.csv")).unwrap();
    let o = prsm(&["check", dir.join("s.yaml").to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot read"), "{err}");
}
