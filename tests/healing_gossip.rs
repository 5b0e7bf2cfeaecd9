//! Gossip healing end to end: push-pull anti-entropy repairs what a partition cut off, push gossip
//! alone does not, and turning anti-entropy off leaves a run exactly as it was before it existed.

mod common;

use std::path::Path;

use common::{metric, run_scenario};

const HEALING: &str = "scenarios/healing/quickstart-anti-entropy.yaml";
const QUICKSTART: &str = "scenarios/quickstart.yaml";

#[test]
fn every_healing_scenario_meets_its_expectations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/healing");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for name in names {
        let (_, verdicts) = run_scenario(&format!("scenarios/healing/{name}"));
        let failed: Vec<_> = verdicts.iter().filter(|v| !v.pass).collect();
        assert!(failed.is_empty(), "{name}: {failed:#?}");
    }
}

#[test]
fn anti_entropy_brings_the_quickstart_to_full_coverage_and_push_alone_does_not() {
    let (healed, _) = run_scenario(HEALING);
    assert_eq!(metric(&healed, "gossip.coverage"), 1.0);
    assert_eq!(metric(&healed, "gossip.coverage_min"), 1.0);
    assert_eq!(metric(&healed, "gossip.full_coverage_rate"), 1.0);
    assert!(metric(&healed, "gossip.anti_entropy.rumors_repaired") > 0.0);
    assert!(metric(&healed, "gossip.anti_entropy.rounds") > 0.0);
    assert!(
        metric(&healed, "net.messages_cut") > 0.0,
        "the partition bit"
    );
    assert_eq!(
        metric(&healed, "node.rejected"),
        0.0,
        "honest traffic passes check"
    );

    let (plain, _) = run_scenario(QUICKSTART);
    assert!(metric(&plain, "gossip.coverage") < 1.0);
    assert!(metric(&plain, "gossip.full_coverage_rate") < 1.0);
    assert!(
        plain.metrics.get("gossip.anti_entropy.rounds").is_none(),
        "no anti-entropy metrics without anti-entropy"
    );
}

/// The quickstart's trace hash from before anti-entropy existed: with it off, a run draws no extra
/// random number and sends nothing new, so not one event moved. (A deliberate change to the kernel
/// or the network model moves this hash too; update it then, never for a gossip change.)
#[test]
fn without_anti_entropy_the_quickstart_trace_is_unchanged() {
    let (plain, _) = run_scenario(QUICKSTART);
    assert_eq!(format!("{:016x}", plain.trace_hash), "85dbd422b7c02dae");
}

#[test]
fn the_healing_scenario_is_deterministic() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(HEALING)).unwrap();
    let scenario = prsm_sim::load_str(&text).unwrap();
    let a = prsm_sim::run(&scenario, scenario.seed).unwrap();
    let b = prsm_sim::run(&scenario, scenario.seed).unwrap();
    let c = prsm_sim::run(&scenario, scenario.seed + 1).unwrap();
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.series, b.series);
    assert_eq!(format!("{:?}", a.metrics), format!("{:?}", b.metrics));
    assert_ne!(a.trace_hash, c.trace_hash);
}
