//! Kademlia discovery end to end: the light committed scenarios, determinism, and the join and
//! lookup metrics at the simulator's boundary. (The 1,000 and 10,000-node scenarios run in CI's
//! release-mode `prsm check`; the textbook lookup properties are pinned in the protocol crate.)

mod common;

use common::{metric, run_scenario};
use prsm_sim::{RunOutput, load_str, run};

fn run_file(name: &str) -> (RunOutput, Vec<prsm_sim::Verdict>) {
    run_scenario(&format!("scenarios/discovery/{name}"))
}

#[test]
fn light_discovery_scenarios_meet_their_expectations() {
    for name in ["n10.yaml", "n100.yaml", "pex-only.yaml"] {
        let (_, verdicts) = run_file(name);
        let failed: Vec<_> = verdicts.iter().filter(|v| !v.pass).collect();
        assert!(failed.is_empty(), "{name}: {failed:#?}");
    }
}

#[test]
fn joins_report_first_peer_k_peers_and_completion_in_order() {
    let (out, _) = run_file("n100.yaml");
    assert_eq!(metric(&out, "kad.joined"), 100.0);
    let first = metric(&out, "kad.join_first_peer_ms.p50");
    let k = metric(&out, "kad.join_k_peers_ms.p50");
    let done = metric(&out, "kad.join_ms.p50");
    assert!(first < k && k < done, "{first} {k} {done}");
    // Node 0 is the bootstrap node and answers the joiners; everyone fills k = 20 contacts.
    assert_eq!(metric(&out, "kad.k_peers_rate"), 1.0);
    assert!(metric(&out, "kad.memory_bytes_per_node") > 0.0);
}

#[test]
fn without_the_dht_peer_exchange_alone_fills_the_tables() {
    let (out, _) = run_file("pex-only.yaml");
    assert_eq!(metric(&out, "kad.join_lookups"), 0.0);
    assert!(metric(&out, "kad.pex_added") > 10_000.0);
    assert!(metric(&out, "kad.table_size_mean") >= 80.0);
}

#[test]
fn crashed_contacts_cost_lookup_time_not_success() {
    let yaml = |crash: &str| {
        format!(
            "name: t\nseed: 2\nduration: 40s\nnodes: [{{ count: 300 }}]\n\
             network: {{ latency: {{ constant: {{ one_way: 20ms }} }} }}\n\
             protocol: {{ kademlia: {{ join_spread: 5s }} }}\n\
             workload: {{ lookups: {{ every: 100ms, start: 15s, count: 100 }} }}\n\
             faults: [{{ at: 12s, crash: \"{crash}\" }}]\n"
        )
    };
    let run_one = |crash: &str| {
        let s = load_str(&yaml(crash)).unwrap();
        run(&s, s.seed).unwrap()
    };
    let none = run_one("random:0%");
    let half = run_one("random:50%");
    assert_eq!(metric(&none, "kad.lookup_success_rate"), 1.0);
    assert!(metric(&half, "kad.lookup_success_rate") >= 0.99);
    // Dead contacts time out (1 s each): lookups get slower, and tables keep stale entries.
    assert!(
        metric(&half, "kad.lookup_latency_ms.p50")
            > 2.0 * metric(&none, "kad.lookup_latency_ms.p50")
    );
    assert_eq!(metric(&none, "kad.table_accuracy"), 1.0);
    assert!(metric(&half, "kad.table_accuracy") < 0.8);
}

#[test]
fn kademlia_runs_are_deterministic() {
    let (a, _) = run_file("n100.yaml");
    let (b, _) = run_file("n100.yaml");
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(
        serde_json::to_string(&a.metrics).unwrap(),
        serde_json::to_string(&b.metrics).unwrap()
    );
}
