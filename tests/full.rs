//! The full node end to end: layers composed per role from `layers:` and `roles:`, their metrics
//! side by side in one run, PBFT's checkers on as one layer among several, a validator's crash
//! reaching consensus through the health layer, and determinism of the composed node.

mod common;

use common::{metric, prsm, scratch, text};
use prsm_sim::{RunOutput, load_str, run};

/// 120 nodes in one region: 7 validators, 3 coordinators, the rest workers; every node runs
/// discovery and health, validators and coordinators PBFT, workers local discovery too.
fn composed(extra: &str) -> String {
    format!(
        "name: t\nseed: 5\nduration: 40s\n\
         nodes:\n  - {{ count: 1, role: bootstrap, region: us-east-1 }}\n\
         \x20 - {{ count: 7, role: validator, region: us-east-1 }}\n\
         \x20 - {{ count: 3, role: coordinator, region: us-east-1 }}\n\
         \x20 - {{ count: 109, role: worker, region: us-east-1 }}\n\
         network: {{ latency: {{ regions: {{}} }} }}\n\
         layers:\n  kademlia: {{ bootstrap: \"role:bootstrap\", join_spread: 3s }}\n\
         \x20 swim: {{ view_max: 32 }}\n  local: {{ site_size: 10, interval: 5s, ttl: 15s }}\n\
         \x20 pbft: {{}}\n\
         roles:\n  bootstrap: [kademlia, swim]\n  validator: [kademlia, swim, pbft]\n\
         \x20 coordinator: [kademlia, swim, pbft]\n  worker: [kademlia, swim, local]\n\
         workload:\n  requests: {{ every: 200ms, start: 8s, stop: 35s }}\n\
         \x20 lookups: {{ every: 100ms, start: 8s, stop: 35s }}\n{extra}"
    )
}

fn run_yaml(yaml: &str) -> RunOutput {
    let s = load_str(yaml).unwrap_or_else(|e| panic!("{e:?}\n{yaml}"));
    run(&s, s.seed).unwrap()
}

#[test]
fn every_layer_reports_in_one_run_and_roles_choose_the_layers() {
    let out = run_yaml(&composed(""));
    assert_eq!(metric(&out, "kad.joined_rate"), 1.0);
    assert_eq!(metric(&out, "kad.lookup_success_rate"), 1.0);
    assert_eq!(metric(&out, "swim.false_deaths"), 0.0);
    assert_eq!(metric(&out, "pbft.n"), 7.0);
    assert_eq!(metric(&out, "pbft.completion_rate"), 1.0);
    assert_eq!(metric(&out, "pbft.safety_violations"), 0.0);
    // Local discovery runs on the workers only: 109 nodes, and each worker finds its site's
    // other workers (sites are blocks of 10 indices; nodes 0-10 are not workers).
    assert_eq!(metric(&out, "node.by_layer.local.nodes"), 109.0);
    assert_eq!(metric(&out, "node.by_layer.pbft.nodes"), 10.0);
    assert_eq!(metric(&out, "node.by_layer.kademlia.nodes"), 120.0);
    assert_eq!(metric(&out, "local.view_completeness"), 1.0);
    // Every layer's traffic is counted apart, and the parts add up to the whole.
    let layers = ["kademlia", "swim", "local", "pbft"];
    let mut sum = 0.0;
    for layer in layers {
        let sent = metric(&out, &format!("net.by_layer.{layer}.messages_sent"));
        assert!(sent > 0.0, "{layer} sent nothing");
        sum += sent;
    }
    assert_eq!(sum, metric(&out, "net.messages_sent"));
    assert!(metric(&out, "node.notices_delivered") > 0.0);
    assert_eq!(metric(&out, "node.notices_dropped"), 0.0);
    for layer in layers {
        assert!(
            metric(
                &out,
                &format!("node.by_layer.{layer}.memory_bytes_per_node")
            ) > 0.0
        );
    }
}

/// The primary's node crashes while nothing is pending: the replicas learn it from health (the
/// crash is the only way they could) and move to a new view, and requests keep committing.
#[test]
fn a_validator_crash_reaches_pbft_through_the_health_layer() {
    let out = run_yaml(&composed("faults:\n  - { at: 12s, crash: \"1\" }\n"));
    assert_eq!(metric(&out, "pbft.safety_violations"), 0.0);
    assert_eq!(metric(&out, "pbft.liveness_violations"), 0.0);
    assert_eq!(
        metric(&out, "pbft.replica_down_notices"),
        6.0,
        "every other replica"
    );
    assert_eq!(metric(&out, "pbft.replica_down_false"), 0.0);
    let detect = metric(&out, "pbft.replica_down_detect_ms.p99");
    assert!(detect > 0.0 && detect < 20_000.0, "{detect}");
    assert!(metric(&out, "pbft.highest_view") >= 1.0);
    assert!(metric(&out, "pbft.completion_rate") >= 0.95);
    assert_eq!(metric(&out, "swim.false_deaths"), 0.0);
}

#[test]
fn the_composed_node_is_deterministic_to_the_byte() {
    let dir = scratch("full-det");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("composed.yaml");
    std::fs::write(
        &file,
        composed("faults:\n  - { at: 12s, churn: { rate: 2, downtime: 5s, until: 25s, nodes: \"role:worker\" } }\n"),
    )
    .unwrap();
    let outs: Vec<_> = ["a", "b"].iter().map(|d| dir.join(d)).collect();
    for out in &outs {
        let o = prsm(&[
            "run",
            file.to_str().unwrap(),
            "--quiet",
            "--no-plots",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    }
    for name in [
        "summary.json",
        "timeseries.csv",
        "requests.csv",
        "lookups.csv",
    ] {
        let (x, y) = (
            std::fs::read(outs[0].join(name)).unwrap(),
            std::fs::read(outs[1].join(name)).unwrap(),
        );
        assert!(x == y, "{name} differs between two runs of one seed");
    }
    let summary = std::fs::read_to_string(outs[0].join("summary.json")).unwrap();
    assert!(
        summary.contains("\"protocol\": \"kademlia+swim+local+pbft\""),
        "{summary}"
    );
}

/// The old single-protocol form still runs unchanged, as shorthand for one layer (and for
/// kademlia, its health and local keys).
#[test]
fn protocol_is_shorthand_for_one_layer() {
    let out = run_yaml(
        "name: t\nseed: 3\nduration: 30s\nnodes: [{ count: 100 }]\n\
         protocol: { kademlia: { join_spread: 3s, health: {}, local: { site_size: 10, interval: 5s, ttl: 15s } } }\n",
    );
    assert_eq!(metric(&out, "kad.joined_rate"), 1.0);
    assert_eq!(metric(&out, "swim.view_accuracy"), 1.0);
    assert_eq!(metric(&out, "local.view_completeness"), 1.0);
}
