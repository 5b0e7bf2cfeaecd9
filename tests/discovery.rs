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

/// A 300-node network (20 ms links) with `extra` YAML appended; returns the run's metrics.
fn small(extra: &str) -> RunOutput {
    let yaml = format!(
        "name: t\nseed: 3\nduration: 40s\nnodes: [{{ count: 300 }}]\n\
         network: {{ latency: {{ constant: {{ one_way: 20ms }} }} }}\n{extra}"
    );
    let s = load_str(&yaml).unwrap_or_else(|e| panic!("{e:?}\n{yaml}"));
    run(&s, s.seed).unwrap()
}

const LOOKUPS_OF_17: &str =
    "workload: { lookups: { every: 100ms, start: 15s, count: 100, targets: \"17\" } }\n";

#[test]
fn sybil_ids_ground_near_a_target_hide_it_from_lookups() {
    let protocol = "protocol: { kademlia: { join_spread: 5s } }\n";
    let honest = small(&format!("{protocol}{LOOKUPS_OF_17}"));
    assert_eq!(metric(&honest, "kad.lookup_success_rate"), 1.0);
    let attacked = small(&format!(
        "{protocol}{LOOKUPS_OF_17}adversaries: [{{ nodes: \"250-279\", behavior: sybil, target: 17 }}]\n"
    ));
    assert!(metric(&attacked, "kad.lookup_success_rate") <= 0.1);
    assert_eq!(metric(&attacked, "kad.adversaries"), 30.0);
    assert!(metric(&attacked, "kad.lies") > 0.0);
    // Everyone else still joins: the attack is aimed.
    assert_eq!(metric(&attacked, "kad.joined_rate"), 1.0);
}

#[test]
fn eclipse_attackers_take_the_victims_near_buckets_but_not_its_far_ones() {
    let out = small(&format!(
        "protocol: {{ kademlia: {{ join_spread: 5s }} }}\n{LOOKUPS_OF_17}\
         adversaries: [{{ nodes: \"240-299\", behavior: eclipse, target: 17 }}]\n"
    ));
    let share = metric(&out, "kad.victim_adversary_share");
    assert!(share > 0.4 && share < 1.0, "victim share {share}");
    // Elsewhere the attackers hold far less of the tables than of the victim's.
    assert!(metric(&out, "kad.adversary_contact_share") < share / 2.0);
}

#[test]
fn a_silent_bootstrap_alone_keeps_everyone_out_and_a_second_one_lets_them_in() {
    let silent = "adversaries: [{ nodes: \"0\", behavior: silent }]\n";
    let alone = small(&format!(
        "protocol: {{ kademlia: {{ join_spread: 5s, bootstrap: \"0\" }} }}\n{silent}"
    ));
    assert_eq!(metric(&alone, "kad.joined_rate"), 0.0);
    assert!(metric(&alone, "kad.join_retries") > 299.0);
    let two = small(&format!(
        "protocol: {{ kademlia: {{ join_spread: 5s, bootstrap: \"0,1\" }} }}\n{silent}"
    ));
    assert_eq!(metric(&two, "kad.joined_rate"), 1.0);
}

#[test]
fn made_up_contacts_slow_lookups_down_and_never_answer() {
    let base = "protocol: { kademlia: { join_spread: 5s } }\n\
                workload: { lookups: { every: 100ms, start: 15s, count: 100 } }\n";
    let honest = small(base);
    let lied = small(&format!(
        "{base}adversaries: [{{ nodes: \"random:10%\", behavior: dht_liar, lie: nonexistent }}]\n"
    ));
    assert!(
        metric(&lied, "kad.lookup_latency_ms.p50")
            > 2.0 * metric(&honest, "kad.lookup_latency_ms.p50")
    );
    assert!(metric(&lied, "kad.lookup_timeouts") > metric(&honest, "kad.lookup_timeouts"));
    // Sent to addresses nobody holds.
    assert!(metric(&lied, "net.messages_bad_address") > 0.0);
    assert_eq!(metric(&honest, "net.messages_bad_address"), 0.0);
}

#[test]
fn local_discovery_finds_the_site_and_forgets_the_crashed() {
    let out = small(
        "protocol: { kademlia: { join_spread: 5s, local: { site_size: 10, interval: 2s, ttl: 6s } } }\n\
         faults: [{ at: 20s, crash: \"random:10%\" }]\n",
    );
    assert_eq!(metric(&out, "local.discovered"), 300.0 * 9.0);
    assert_eq!(metric(&out, "local.view_completeness"), 1.0);
    // Crashed peers' records expired: every cached peer is live.
    assert_eq!(metric(&out, "local.view_accuracy"), 1.0);
    assert!(metric(&out, "local.expired") > 0.0);
    // A site is one multicast round trip: 40 ms here.
    assert!(metric(&out, "local.complete_ms.p99") <= 41.0);
}

#[test]
fn health_monitoring_clears_crashed_contacts_from_the_routing_tables() {
    let base = "workload: { lookups: { every: 100ms, start: 15s, count: 100 } }\n\
                faults: [{ at: 12s, crash: \"random:10%\" }]\n";
    let without = small(&format!(
        "protocol: {{ kademlia: {{ join_spread: 5s }} }}\n{base}"
    ));
    let with = small(&format!(
        "protocol: {{ kademlia: {{ join_spread: 5s, health: {{}} }} }}\n{base}"
    ));
    assert!(metric(&without, "kad.table_accuracy") < 0.97);
    // Gossip reaches every neighbour of a crashed node with high probability, not certainty.
    assert!(metric(&with, "kad.table_accuracy") >= 0.999);
    assert!(metric(&with, "swim.view_accuracy") >= 0.999);
    assert_eq!(metric(&with, "swim.false_deaths"), 0.0);
    assert_eq!(metric(&with, "swim.confirmation_ms.count"), 30.0);
    assert!(metric(&with, "kad.forgotten") > 0.0);
}

#[test]
fn the_stack_with_attackers_is_deterministic() {
    let yaml = "name: t\nseed: 9\nduration: 30s\nnodes: [{ count: 200 }]\n\
                network: { latency: { constant: { one_way: 20ms } }, loss: 2% }\n\
                protocol: { kademlia: { join_spread: 5s, health: {}, local: { site_size: 10, interval: 2s, ttl: 6s } } }\n\
                workload: { lookups: { every: 100ms, start: 10s, count: 50 } }\n\
                faults: [{ at: 12s, crash: \"random:10%\" }]\n\
                adversaries: [{ nodes: \"190-199\", behavior: dht_liar }, { nodes: \"180-189\", behavior: eclipse, target: 3 }]\n";
    let s = load_str(yaml).unwrap();
    let a = run(&s, 4).unwrap();
    let b = run(&s, 4).unwrap();
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(
        serde_json::to_string(&a.metrics).unwrap(),
        serde_json::to_string(&b.metrics).unwrap()
    );
    assert!(metric(&a, "kad.lies") > 0.0 && metric(&a, "swim.confirmation_ms.count") > 0.0);
    let c = run(&s, 5).unwrap();
    assert_ne!(a.trace_hash, c.trace_hash);
}
