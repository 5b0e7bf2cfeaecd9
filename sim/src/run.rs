//! Running a scenario: picks the model for its protocol, runs the engine, judges expectations.

use serde::Serialize;

use crate::engine::{Engine, RunError, RunOutput};
use crate::metrics::Metrics;
use crate::model::{FullModel, GossipModel, PbftModel, RelayModel, SwimModel};
use crate::scenario::{Expectation, ProtocolConfig, Scenario};

/// Runs `scenario` with `seed` (normally `scenario.seed`, or the CLI's `--seed`).
pub fn run(scenario: &Scenario, seed: u64) -> Result<RunOutput, RunError> {
    run_with_progress(scenario, seed, &mut |_, _| {})
}

/// As [`run`], reporting (virtual time, events so far) now and then, for progress displays.
pub fn run_with_progress(
    scenario: &Scenario,
    seed: u64,
    progress: &mut dyn FnMut(prsm_protocol::Time, u64),
) -> Result<RunOutput, RunError> {
    let n = scenario.node_count();
    match &scenario.protocol {
        ProtocolConfig::Gossip(config) => {
            let model = GossipModel::new(
                n,
                *config,
                scenario.workload.publish.clone(),
                scenario.samples_max,
            );
            Engine::new(scenario, seed, model).run_with_progress(progress)
        }
        ProtocolConfig::Swim(config) => {
            let model = SwimModel::new(*config, scenario.samples_max);
            Engine::new(scenario, seed, model).run_with_progress(progress)
        }
        ProtocolConfig::Full(settings) => {
            let mut rng =
                crate::kernel::Seeds::new(seed).stream(crate::kernel::Stream::Adversaries);
            let model = FullModel::new(scenario, settings, &mut rng);
            Engine::new(scenario, seed, model).run_with_progress(progress)
        }
        ProtocolConfig::Pbft(settings) => {
            let mut rng =
                crate::kernel::Seeds::new(seed).stream(crate::kernel::Stream::Adversaries);
            let model = PbftModel::new(scenario, settings, &mut rng);
            Engine::new(scenario, seed, model).run_with_progress(progress)
        }
        ProtocolConfig::Relay { tokens_per_node } => {
            Engine::new(scenario, seed, RelayModel::new(n, *tokens_per_node))
                .run_with_progress(progress)
        }
    }
}

/// One expectation judged against a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub expectation: String,
    pub metric: String,
    pub op: String,
    pub expected: f64,
    /// None when the run produced no value for the metric (e.g. a percentile of zero samples).
    pub actual: Option<f64>,
    pub pass: bool,
}

pub fn judge(expectations: &[Expectation], metrics: &Metrics) -> Vec<Verdict> {
    expectations
        .iter()
        .map(|e| {
            let actual = metrics.get(&e.metric);
            Verdict {
                expectation: e.text.clone(),
                metric: e.metric.clone(),
                op: e.op.symbol().to_owned(),
                expected: e.value,
                actual,
                pass: actual.is_some_and(|a| e.op.holds(a, e.value)),
            }
        })
        .collect()
}
