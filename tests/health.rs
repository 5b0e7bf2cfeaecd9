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

/// `random_phase: false` (reachable from YAML) aligns every member's periods, as in SWIM's
/// analysis: a crash just after a period boundary is first suspected at a period's end, after
/// e/(e-1) = 1.58 periods on average; with random phases (the default) about two.
#[test]
fn aligned_periods_from_yaml_give_the_published_first_detection_time() {
    let yaml = |random_phase: bool| {
        format!(
            "name: aligned\nseed: 3\nduration: 40s\nnodes: [{{ count: 300 }}]\n\
             network: {{ latency: {{ constant: {{ one_way: 1ms }} }} }}\n\
             protocol: {{ swim: {{ random_phase: {random_phase} }} }}\n\
             faults:\n  - {{ at: 10001ms, crash: \"random:10%\" }}\n"
        )
    };
    let run = |random_phase: bool| {
        let scenario = prsm_sim::load_str(&yaml(random_phase)).expect("valid");
        match &scenario.protocol {
            prsm_sim::scenario::ProtocolConfig::Swim(c) => assert_eq!(c.random_phase, random_phase),
            other => panic!("{other:?}"),
        }
        prsm_sim::run(&scenario, scenario.seed).expect("runs")
    };
    let aligned = run(false);
    assert_eq!(metric(&aligned, "swim.first_suspicion_ms.count"), 30.0);
    // First suspicions come at the ends of periods: 1 ms short of a whole second after the
    // crash; most (1 - 1/e = 63 %) at the end of the first period, so the median is 999 ms
    // (hdrhistogram keeps 3 significant digits). With random phases they are spread out.
    let p50 = metric(&aligned, "swim.first_suspicion_ms.p50");
    assert!((p50 - 999.0).abs() < 1.5, "{p50}");
    let mean_periods = (metric(&aligned, "swim.first_suspicion_ms.mean") + 1.0) / 1_000.0;
    assert!((1.3..1.9).contains(&mean_periods), "{mean_periods}");
    let random = run(true);
    let random_periods = metric(&random, "swim.first_suspicion_ms.mean") / 1_000.0;
    assert!(
        random_periods > mean_periods,
        "{random_periods} vs {mean_periods}"
    );
}
