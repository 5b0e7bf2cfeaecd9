//! SWIM health monitoring end to end: the committed scenarios and the detection metrics against
//! the crash times the engine knows. (The textbook timing, 1.58 periods with aligned periods, is
//! pinned in the protocol crate.)

mod common;

use std::path::Path;

use common::{metric, run_scenario};
use prsm_sim::RunOutput;

fn run_file(name: &str) -> (RunOutput, Vec<prsm_sim::Verdict>) {
    run_scenario(&format!("scenarios/health/{name}"))
}

#[test]
fn every_health_scenario_meets_its_expectations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/health");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 7);
    for name in names {
        let (_, verdicts) = run_file(&name);
        let failed: Vec<_> = verdicts.iter().filter(|v| !v.pass).collect();
        assert!(failed.is_empty(), "{name}: {failed:#?}");
    }
}

#[test]
fn refutation_turns_false_suspicions_into_no_false_deaths() {
    let (with, _) = run_file("loss-5.yaml");
    let (without, _) = run_file("loss-5-no-refutation.yaml");
    assert!(metric(&with, "swim.false_suspicions") > 0.0);
    assert_eq!(metric(&with, "swim.false_deaths"), 0.0);
    assert!(metric(&with, "swim.refutations") > 0.0);
    assert!(metric(&without, "swim.false_deaths") > 0.0);
    assert_eq!(metric(&without, "swim.refutations"), 0.0);
}

#[test]
fn every_crash_is_suspected_then_confirmed() {
    let (out, _) = run_file("crash-10.yaml");
    assert_eq!(metric(&out, "swim.crashes"), 50.0);
    assert_eq!(metric(&out, "swim.first_suspicion_ms.count"), 50.0);
    assert_eq!(metric(&out, "swim.confirmation_ms.count"), 50.0);
    let suspicion = metric(&out, "swim.first_suspicion_ms.max");
    let confirmation = metric(&out, "swim.confirmation_ms.p50");
    let timeout = metric(&out, "swim.suspicion_timeout_ms");
    assert!((timeout - 10_795.0).abs() < 1.0, "{timeout}");
    assert!(confirmation >= timeout && confirmation <= timeout + suspicion + 1_000.0);
}
