//! Scenario tests: YAML in, metrics out, through one `check` function. Each test pins one
//! behaviour of the kernel, the network or the fault model at the simulator's boundary.

use std::path::Path;

use prsm_sim::{RunOutput, Table, load_str, run};

/// Loads, runs with the scenario's seed, asserts every expectation in the file holds, and returns
/// the output for further assertions.
fn check(yaml: &str) -> RunOutput {
    let scenario = load_str(yaml).unwrap_or_else(|d| panic!("invalid scenario: {d:?}"));
    let output = run(&scenario, scenario.seed).expect("run finishes");
    let verdicts = prsm_sim::judge(&scenario.expect, &output.metrics);
    let failed: Vec<_> = verdicts.iter().filter(|v| !v.pass).collect();
    assert!(
        failed.is_empty(),
        "failed expectations in `{}`: {failed:#?}",
        scenario.name
    );
    output
}

fn metric(output: &RunOutput, name: &str) -> f64 {
    output
        .metrics
        .get(name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn table<'a>(output: &'a RunOutput, name: &str) -> &'a Table {
    &output
        .tables
        .iter()
        .find(|(n, _)| n == name)
        .expect("table")
        .1
}

fn column(t: &Table, name: &str) -> usize {
    t.columns.iter().position(|c| c == name).expect("column")
}

fn gossip(nodes: &str, network: &str, extra: &str) -> String {
    format!(
        "name: t\nseed: 5\nduration: 20s\nnodes: {nodes}\nnetwork: {network}\n\
         protocol: {{ gossip: {{}} }}\nworkload: {{ publish: {{ every: 250ms, start: 500ms }} }}\n{extra}"
    )
}

/// Every `.yaml` under `dir`, at any depth, sorted.
fn yaml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Every committed scenario, in every folder (bench, pbft, discovery, health, sweeps, ...), is
/// valid: its protocol, faults and expectations parse and resolve (sweeps through the sweep
/// planner, which resolves every point). The top-level ones are run and must meet their
/// expectations here; the folders' light scenarios run in their own test files (pbft, health,
/// discovery), and the big ones (bench, 10,000 nodes) are validated only: they run in release
/// mode (`prsm check`, `prsm run`).
#[test]
fn every_committed_scenario_is_valid_and_the_top_level_ones_meet_their_expectations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let files = yaml_files(&root);
    let mut folders = std::collections::BTreeSet::new();
    let mut ran = 0;
    for path in &files {
        let rel = path.strip_prefix(&root).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let folder = rel
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if folder.starts_with("sweeps") {
            if let Err(d) = prsm_sim::sweep::plan(&text) {
                panic!("invalid sweep {}: {d:?}", rel.display());
            }
        } else {
            let scenario = load_str(&text)
                .unwrap_or_else(|d| panic!("invalid scenario {}: {d:?}", rel.display()));
            assert!(!scenario.name.is_empty(), "{}", rel.display());
            if folder.is_empty() {
                check(&text);
                ran += 1;
            }
        }
        folders.insert(folder);
    }
    assert!(ran >= 1);
    for needed in ["", "bench", "discovery", "health", "pbft", "sweeps"] {
        assert!(
            folders.contains(needed),
            "no scenarios found in `{needed}`: {folders:?}"
        );
    }
    assert!(files.len() >= 50, "{}", files.len());
}

#[test]
fn same_seed_same_trace_other_seed_other_trace() {
    let yaml = gossip(
        "[{ count: 50 }]",
        "{ loss: 0.05, latency: { lognormal: { median: 20ms, sigma: 0.4 } } }",
        "",
    );
    let scenario = load_str(&yaml).unwrap();
    let a = run(&scenario, 1).unwrap();
    let b = run(&scenario, 1).unwrap();
    let c = run(&scenario, 2).unwrap();
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.series, b.series);
    assert_eq!(format!("{:?}", a.metrics), format!("{:?}", b.metrics));
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn constant_latency_is_exact() {
    let out = check(&gossip(
        "[{ count: 20 }]",
        "{ latency: { constant: { one_way: 20ms } } }",
        "",
    ));
    // hdrhistogram keeps 3 significant digits.
    assert!((metric(&out, "net.latency_ms.p50") - 20.0).abs() < 0.02);
    assert!((metric(&out, "net.latency_ms.max") - 20.0).abs() < 0.02);
}

#[test]
fn uniform_latency_stays_within_its_bounds() {
    let out = check(&gossip(
        "[{ count: 20 }]",
        "{ latency: { uniform: { min: 10ms, max: 30ms } } }",
        "",
    ));
    assert!(metric(&out, "net.latency_ms.max") <= 30.05);
    assert!((metric(&out, "net.latency_ms.mean") - 20.0).abs() < 0.5);
}

#[test]
fn region_matrix_gives_half_the_published_round_trip() {
    let nodes = "[{ count: 10, region: us-east-1 }, { count: 10, region: ap-southeast-2 }]";
    let out = check(&gossip(
        nodes,
        "{ latency: { regions: { jitter: 0 } } }",
        "",
    ));
    // us-east-1 <-> ap-southeast-2 is 230 ms round trip; inside a region 1 ms.
    assert!(
        (metric(&out, "net.latency_ms.max") - 115.0).abs() < 0.2,
        "{}",
        metric(&out, "net.latency_ms.max")
    );
    assert!(metric(&out, "net.latency_ms.p50") < 116.0);
    let min_like = out.metrics.get("net.latency_ms.p50").unwrap();
    assert!(min_like > 0.4);
}

#[test]
fn loss_drops_the_configured_share() {
    // Push gossip with bounded retransmission loses a little coverage at 20 % loss; 0.95 is what
    // it achieves here, measured, not hoped for.
    let out = check(&gossip(
        "[{ count: 50 }]",
        "{ loss: 0.2 }",
        "expect: [\"gossip.coverage >= 0.95\"]\n",
    ));
    let lost = metric(&out, "net.messages_lost") / metric(&out, "net.messages_sent");
    assert!((lost - 0.2).abs() < 0.02, "{lost}");
}

#[test]
fn duplication_copies_the_configured_share() {
    let out = check(&gossip("[{ count: 50 }]", "{ duplicate: \"10%\" }", ""));
    let dup = metric(&out, "net.messages_duplicated") / metric(&out, "net.messages_sent");
    assert!((dup - 0.1).abs() < 0.015, "{dup}");
    assert!(metric(&out, "net.messages_delivered") > metric(&out, "net.messages_sent"));
}

#[test]
fn link_overrides_apply_between_their_ends_only() {
    let network = "{ overrides: [{ between: [\"0-4\", \"5-9\"], loss: 1.0 }] }";
    let out = check(&gossip("[{ count: 10 }]", network, ""));
    assert!(metric(&out, "net.messages_lost") > 0.0);
    // Every message across the cut is lost, so nothing from 0-4 reaches 5-9 directly: rumors
    // still spread within each half. Coverage of a rumor is at most half the nodes.
    assert!(metric(&out, "gossip.coverage") <= 0.5 + 1e-9);
    let override_latency =
        "{ overrides: [{ between: [\"all\", \"all\"], latency: { constant: { one_way: 7ms } } }] }";
    let out = check(&gossip("[{ count: 10 }]", override_latency, ""));
    assert!((metric(&out, "net.latency_ms.p50") - 7.0).abs() < 0.01);
}

#[test]
fn crashed_nodes_stop_and_messages_to_them_are_dropped() {
    let faults = "faults:\n  - { at: 5s, crash: \"0-9\" }\nexpect: [\"nodes.live_at_end == 40\", \"faults.crashes == 10\"]\n";
    let out = check(&gossip("[{ count: 50 }]", "{}", faults));
    assert!(metric(&out, "net.messages_to_dead") > 0.0);
    let series = &out.series;
    let live = column(series, "live_nodes");
    assert_eq!(series.rows[3][live], 50.0); // t = 4 s
    assert_eq!(series.rows[5][live], 40.0); // t = 6 s
    let d = table(&out, "deliveries");
    let (node, at) = (column(d, "node"), column(d, "delivered_s"));
    assert!(
        !d.rows.iter().any(|r| r[node] < 10.0 && r[at] > 5.0),
        "a crashed node delivered"
    );
}

#[test]
fn restarted_nodes_rejoin_with_durable_state() {
    // Every node crashes and restarts: rumor ids stay unique only because the publish counter is
    // persisted and survives the restart.
    let faults = "faults:\n  - { at: 5s, crash: all }\n  - { at: 6s, restart: crashed }\n\
                  expect: [\"faults.restarts == 10\", \"nodes.live_at_end == 10\", \"gossip.id_collisions == 0\"]\n";
    let out = check(&gossip("[{ count: 10 }]", "{}", faults));
    let d = table(&out, "deliveries");
    let at = column(d, "delivered_s");
    assert!(
        d.rows.iter().any(|r| r[at] > 7.0),
        "restarted nodes deliver again"
    );
}

#[test]
fn random_crashes_draw_the_requested_share_from_live_nodes() {
    let faults = "faults:\n  - { at: 2s, crash: \"random:25%\" }\n  - { at: 3s, crash: \"random:25%\" }\n\
                  expect: [\"nodes.live_at_end == 50\"]\n";
    check(&gossip("[{ count: 100 }]", "{}", faults));
}

#[test]
fn an_isolated_node_hears_nothing_until_the_heal() {
    let faults = "faults:\n  - { at: 0s, partition: { isolate: 3 } }\n  - { at: 10s, heal: all }\n";
    let out = check(&gossip("[{ count: 20 }]", "{}", faults));
    assert!(metric(&out, "net.messages_cut") > 0.0);
    let d = table(&out, "deliveries");
    let (node, at) = (column(d, "node"), column(d, "delivered_s"));
    assert!(!d.rows.iter().any(|r| r[node] == 3.0 && r[at] < 10.0));
    assert!(d.rows.iter().any(|r| r[node] == 3.0 && r[at] > 10.0));
    let sides = column(&out.series, "partition_sides");
    assert_eq!(out.series.rows[4][sides], 2.0);
    assert_eq!(out.series.rows[15][sides], 1.0);
}

#[test]
fn groups_and_region_partitions_split_the_network() {
    let nodes = "[{ count: 10, region: a }, { count: 10, region: b }, { count: 10, region: c }]";
    for plan in [
        "{ by_region: true }",
        "{ groups: [\"region:a\", \"region:b\"] }",
    ] {
        let faults = format!("faults:\n  - {{ at: 0s, partition: {plan} }}\n");
        let out = check(&gossip(nodes, "{}", &faults));
        // Three sides of ten (nodes 0-9, 10-19, 20-29): no delivery crosses a side.
        let d = table(&out, "deliveries");
        let (origin, node) = (column(d, "origin"), column(d, "node"));
        assert!(!d.rows.is_empty());
        assert!(
            d.rows
                .iter()
                .all(|r| (r[origin] as u32) / 10 == (r[node] as u32) / 10),
            "{plan}"
        );
        assert!(
            metric(&out, "gossip.coverage") <= 1.0 / 3.0 + 1e-9,
            "{plan}"
        );
        assert!(metric(&out, "net.messages_cut") > 0.0);
        assert_eq!(
            out.series.rows[2][column(&out.series, "partition_sides")],
            3.0
        );
    }
}

#[test]
fn expectations_judge_measured_values() {
    let scenario = load_str(&gossip("[{ count: 10 }]", "{}", "expect: [\"gossip.published > 1000\", \"gossip.published >= 1\", \"gossip.latency_ms.p50 >= 0\"]\n")).unwrap();
    let out = run(&scenario, scenario.seed).unwrap();
    let verdicts = prsm_sim::judge(&scenario.expect, &out.metrics);
    assert!(!verdicts[0].pass);
    assert!(verdicts[1].pass);
    assert!(verdicts[2].pass);
}

#[test]
fn relay_keeps_its_tokens_in_flight() {
    let yaml = "name: r\nseed: 1\nduration: 1s\nnodes: [{ count: 100 }]\n\
                network: { latency: { constant: { one_way: 10ms } } }\nprotocol: { relay: { tokens_per_node: 2 } }\n";
    let out = check(yaml);
    // 200 tokens, each hop 10 ms: 100 hops each in one second, the last batch arriving at 1 s.
    assert_eq!(metric(&out, "net.messages_delivered"), 200.0 * 100.0);
}

#[test]
fn churn_crashes_at_its_rate_and_restarts_after_the_downtime() {
    // 2 crashes per second for 30 s among 100 nodes, each down for 2 s.
    let faults = "faults:\n  - { at: 5s, churn: { rate: 2, downtime: 2s, until: 35s } }\n\
                  expect: [\"nodes.live_at_end == 100\", \"gossip.id_collisions == 0\"]\n";
    let yaml = gossip("[{ count: 100 }]", "{}", faults).replace("duration: 20s", "duration: 40s");
    let out = check(&yaml);
    let crashes = metric(&out, "faults.crashes");
    // Poisson(60): within 4 standard deviations.
    assert!((crashes - 60.0).abs() < 4.0 * 60f64.sqrt(), "{crashes}");
    assert_eq!(
        metric(&out, "faults.restarts"),
        crashes,
        "every churned node came back"
    );
    let live = column(&out.series, "live_nodes");
    assert!(out.series.rows.iter().any(|r| r[live] < 100.0));
    assert!(
        out.series.rows[3][live] == 100.0,
        "no churn before it starts"
    );
    assert!(
        out.faults
            .iter()
            .all(|f| f.time_s >= 5.0 && f.time_s <= 37.0)
    );
}

#[test]
fn a_one_way_cut_blocks_one_direction_only() {
    let faults =
        "faults:\n  - { at: 0s, partition: { one_way: { from: \"0-4\", to: \"5-9\" } } }\n";
    let out = check(&gossip("[{ count: 10 }]", "{}", faults));
    let d = table(&out, "deliveries");
    let (origin, node) = (column(d, "origin"), column(d, "node"));
    // Rumors from 5-9 reach 0-4, but 5-9 can only hear 0-4's rumors relayed... by nobody: every
    // path from 0-4 into 5-9 is cut, so no node of 5-9 delivers a rumor that began in 0-4.
    assert!(!d.rows.iter().any(|r| r[origin] < 5.0 && r[node] >= 5.0));
    assert!(d.rows.iter().any(|r| r[origin] >= 5.0 && r[node] < 5.0));
    assert!(metric(&out, "net.messages_cut") > 0.0);
}

/// A cut between two sets is partial: with a third set linked to both, rumors cross the cut
/// through it; without one, nothing crosses until the heal. Either way it logs as a partition of
/// two sides, and the heal makes the network whole again.
#[test]
fn a_cut_between_two_sets_leaves_other_links_up() {
    let faults = "faults:\n  - { at: 0s, partition: { between: [\"0-9\", \"10-19\"] } }\n  - { at: 10s, heal: all }\n";
    for (count, relayed) in [(30, true), (20, false)] {
        let out = check(&gossip(&format!("[{{ count: {count} }}]"), "{}", faults));
        let d = table(&out, "deliveries");
        let (origin, node, at) = (
            column(d, "origin"),
            column(d, "node"),
            column(d, "delivered_s"),
        );
        let crossed = |r: &&Vec<f64>| {
            r[at] < 10.0 && (r[origin] < 10.0) != (r[node] < 10.0) && r[node] < 20.0
        };
        let crossed = d
            .rows
            .iter()
            .filter(|r| r[origin] < 20.0)
            .filter(crossed)
            .count();
        assert_eq!(crossed > 0, relayed, "{count} nodes: {crossed} crossed");
        assert!(metric(&out, "net.messages_cut") > 0.0);
        let sides = column(&out.series, "partition_sides");
        assert_eq!(out.series.rows[4][sides], 2.0);
        assert_eq!(out.series.rows[15][sides], 1.0);
        let log: Vec<(f64, &str, u32)> = out
            .faults
            .iter()
            .map(|f| (f.time_s, f.kind, f.sides))
            .collect();
        assert_eq!(log, vec![(0.0, "partition", 2), (10.0, "heal", 1)]);
    }
}

#[test]
fn processing_time_delays_each_hop_exactly() {
    // One token between two nodes: 10 ms on the wire plus 5 ms of processing per hop, so it
    // arrives at 10, 25, 40, ... ms: 67 arrivals by 1 s, and no message ever waits for the CPU.
    let yaml = "name: p\nseed: 1\nduration: 1s\nnodes: [{ count: 2, processing: 5ms }]\n\
                network: { latency: { constant: { one_way: 10ms } } }\nprotocol: { relay: { tokens_per_node: 1 } }\n";
    let out = check(yaml);
    // Both nodes start a token at 0, so two tokens circulate: 2 x 67 arrivals.
    assert_eq!(metric(&out, "net.messages_delivered"), 134.0);
    assert_eq!(metric(&out, "node.processing_wait_ms.max"), 0.0);
}

#[test]
fn a_busy_node_queues_messages_for_its_cpu() {
    // 50 tokens each between two nodes with 1 ms of processing: each node gets 50 messages at once
    // every round and works through them one after another, so waits reach 49 ms.
    let yaml = "name: p\nseed: 1\nduration: 200ms\nnodes: [{ count: 2, processing: 1ms }]\n\
                network: { latency: { constant: { one_way: 10ms } } }\nprotocol: { relay: { tokens_per_node: 50 } }\n";
    let out = check(yaml);
    let max_wait = metric(&out, "node.processing_wait_ms.max");
    assert!((max_wait - 49.0).abs() < 0.1, "{max_wait}");
    assert!(metric(&out, "node.processing_wait_ms.p50") > 10.0);
}

#[test]
fn bandwidth_adds_serialization_time_per_hop() {
    // 8-byte tokens at 1 Mbps take 64 us to send, so each hop is 10.064 ms: 99 arrivals per token
    // by 1 s. The two tokens never share an uplink, so nothing waits.
    let yaml = "name: b\nseed: 1\nduration: 1s\nnodes: [{ count: 2, bandwidth: 1Mbps }]\n\
                network: { latency: { constant: { one_way: 10ms } } }\nprotocol: { relay: { tokens_per_node: 1 } }\n";
    let out = check(yaml);
    assert_eq!(metric(&out, "net.messages_delivered"), 198.0);
    assert_eq!(metric(&out, "net.uplink_wait_ms.max"), 0.0);
    assert!((metric(&out, "net.latency_ms.max") - 10.064).abs() < 0.01);
}

#[test]
fn a_busy_uplink_queues_messages_in_order() {
    // 50 tokens leave each node at once at 1 Mbps: the last waits behind 49 others, 49 x 64 us.
    let yaml = "name: b\nseed: 1\nduration: 5ms\nnodes: [{ count: 2, bandwidth: 1Mbps }]\n\
                network: { latency: { constant: { one_way: 1ms } } }\nprotocol: { relay: { tokens_per_node: 50 } }\n";
    let out = check(yaml);
    let max_wait = metric(&out, "net.uplink_wait_ms.max");
    assert!((max_wait - 3.136).abs() < 0.01, "{max_wait}");
}
