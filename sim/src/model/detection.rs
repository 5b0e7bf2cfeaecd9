//! The detection model: who is Byzantine (the ground truth the nodes do not see), the detection
//! layer of each node, and how fast, how surely and at what cost the honest nodes find them.
//!
//! Ground truth comes from `adversaries:`: worker faults (`wrong_result`, `poison`, `collude`
//! (a `wrong_result` with a `group`), `inconsistent`, `slow_result`), `slander`, and PBFT's
//! `equivocate` and `double_vote`. A Byzantine node's misbehaviour starts at its entry's `from:`.
//! For each, the model records when an honest node first quarantined or isolated it (detection),
//! and when the last live honest node running detection isolated it (isolation everywhere, which
//! only a proof brings). Actions against honest nodes are false positives.

use std::collections::BTreeSet;

use prsm_protocol::detection::{
    Detection, DetectionConfig, DetectionEvent, DetectionStats, Level, NodeKeys, PbftIdentity,
    Slander,
};
use prsm_protocol::routing::WorkerFault;
use prsm_protocol::{NodeId, Time};
use rand_chacha::ChaCha8Rng;

use super::{Model, Violation};
use crate::metrics::{LatencyHistogram, Metrics, Table, round6};
use crate::scenario::{AdversaryBehavior, DetectionSettings, Scenario};
use crate::topology::Topology;

/// The fault classes the detection metrics are kept for.
pub const FAULT_CLASSES: &[&str] = &[
    "wrong_result",
    "collude",
    "poison",
    "inconsistent",
    "slow_result",
    "slander",
    "flood",
    "equivocate",
    "double_vote",
];

/// Who misbehaves how, from `adversaries:` (worker faults and slander; PBFT's behaviours are
/// placed by the PBFT model and added with [`ByzantinePlan::add`]).
#[derive(Clone, Debug, Default)]
pub struct ByzantinePlan {
    /// Per node, its worker faults.
    pub faults: Vec<Vec<WorkerFault>>,
    /// Per node, its slander window.
    pub slander: Vec<Option<(Time, Time)>>,
    /// Per node, its flood of junk tasks.
    pub flood: Vec<Option<prsm_protocol::routing::Flood>>,
    /// Per node, its first fault class and when it starts.
    pub class_of: Vec<Option<(&'static str, Time)>>,
}

impl ByzantinePlan {
    /// Places the worker and slander entries (drawing random selectors from `rng`, in file
    /// order, after every other model has placed its own).
    pub fn resolve(scenario: &Scenario, rng: &mut ChaCha8Rng) -> Self {
        let n = scenario.nodes.len();
        let mut plan = ByzantinePlan {
            faults: vec![Vec::new(); n],
            slander: vec![None; n],
            flood: vec![None; n],
            class_of: vec![None; n],
        };
        let live = vec![true; n];
        let topo = Topology {
            nodes: &scenario.nodes,
            regions: &scenario.regions,
            live: &live,
        };
        for a in &scenario.adversaries {
            if !matches!(
                a.behavior,
                AdversaryBehavior::Worker(_)
                    | AdversaryBehavior::Slander
                    | AdversaryBehavior::Flood { .. }
            ) {
                continue;
            }
            let (from, until) = (Time(a.from.as_nanos()), Time(a.until.as_nanos()));
            for id in topo.resolve(&a.nodes, |_| true, rng) {
                let i = id.index();
                match a.behavior {
                    AdversaryBehavior::Worker(kind) => {
                        plan.faults[i].push(WorkerFault { from, until, kind })
                    }
                    AdversaryBehavior::Slander => plan.slander[i] = Some((from, until)),
                    AdversaryBehavior::Flood { rate } => {
                        plan.flood[i] = Some(prsm_protocol::routing::Flood { rate, from, until })
                    }
                    _ => {}
                }
                plan.add(id, a.behavior.detection_class().unwrap_or("other"), from);
            }
        }
        plan
    }

    /// Marks `node` Byzantine with `class` from `from` (its first entry wins).
    pub fn add(&mut self, node: NodeId, class: &'static str, from: Time) {
        if let Some(slot) = self.class_of.get_mut(node.index())
            && slot.is_none()
        {
            *slot = Some((class, from));
        }
    }

    pub fn byzantine(&self, node: usize) -> bool {
        self.class_of.get(node).is_some_and(Option::is_some)
    }
}

/// The ground truth and what the honest nodes did about it.
pub struct DetectionModel {
    settings: DetectionSettings,
    seed: u64,
    pbft: Option<PbftIdentity>,
    plan: ByzantinePlan,
    /// Nodes that run the layer.
    members: Vec<bool>,
    /// Per node: first quarantine or isolation by an honest node.
    detected: Vec<Option<Time>>,
    /// Per node: honest nodes that isolated it, and when the last did.
    isolated_by: Vec<(BTreeSet<u32>, Time)>,
    false_quarantines: u64,
    false_isolations: u64,
    honest_quarantined: BTreeSet<u32>,
    /// Sequential tests concluded on honest peers: all, and those that accepted "faulty".
    tests_on_honest: u64,
    tests_on_honest_faulty: u64,
    tests_on_byzantine: u64,
    tests_on_byzantine_faulty: u64,
    sprt_observations: LatencyHistogram,
    stats: DetectionStats,
    table: Table,
    samples_max: usize,
    lies: Vec<u64>,
}

const COLUMNS: &[&str] = &["time_s", "accuser", "accused", "accused_byzantine"];
const TEXT_COLUMNS: &[&str] = &["fault", "level", "cause"];

impl DetectionModel {
    pub fn new(
        scenario: &Scenario,
        settings: &DetectionSettings,
        members: Vec<bool>,
        plan: ByzantinePlan,
        pbft: Option<PbftIdentity>,
    ) -> Self {
        let n = scenario.nodes.len();
        let mut table = Table::new(COLUMNS);
        table.text_columns = TEXT_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
        DetectionModel {
            settings: settings.clone(),
            seed: scenario.seed,
            pbft,
            plan,
            members,
            detected: vec![None; n],
            isolated_by: vec![(BTreeSet::new(), Time::ZERO); n],
            false_quarantines: 0,
            false_isolations: 0,
            honest_quarantined: BTreeSet::new(),
            tests_on_honest: 0,
            tests_on_honest_faulty: 0,
            tests_on_byzantine: 0,
            tests_on_byzantine_faulty: 0,
            sprt_observations: LatencyHistogram::millis(),
            stats: DetectionStats::default(),
            table,
            samples_max: scenario.samples_max,
            lies: Vec::new(),
        }
    }

    pub fn plan(&self) -> &ByzantinePlan {
        &self.plan
    }

    /// Each worker's lies over the run (from the routing model): a Byzantine worker that never
    /// served a task never misbehaved, and is not counted as missed.
    pub fn set_lies(&mut self, lies: &[u64]) {
        self.lies = lies.to_vec();
    }

    /// Whether Byzantine `node` misbehaved: it lied (a worker), or its fault needs no task
    /// (slander, PBFT).
    fn active(&self, node: usize) -> bool {
        match self.plan.class_of.get(node).copied().flatten() {
            None => false,
            Some((class, _)) => match class {
                "slander" | "flood" | "equivocate" | "double_vote" => true,
                _ => self.lies.get(node).is_some_and(|&l| l > 0),
            },
        }
    }

    fn honest(&self, node: usize) -> bool {
        !self.plan.byzantine(node)
    }

    /// The time the last Byzantine node detected was first detected (None: none detected).
    pub fn settled_at(&self) -> Option<Time> {
        self.detected.iter().flatten().max().copied()
    }
}

impl Model for DetectionModel {
    type P = Detection;

    fn build(&self, id: NodeId, _durable: Option<()>) -> Detection {
        let slander = match self.plan.slander.get(id.index()).copied().flatten() {
            Some((from, until)) => Slander::Active { from, until },
            None => Slander::None,
        };
        Detection::new(DetectionConfig {
            keys: NodeKeys { seed: self.seed },
            pbft: self.pbft.clone(),
            slander,
            ..self.settings.config.clone()
        })
    }

    fn observe(&mut self, now: Time, node: NodeId, event: DetectionEvent) {
        let accuser = node.index();
        if !self.honest(accuser) {
            return;
        }
        match event {
            DetectionEvent::Test {
                peer,
                faulty,
                observations,
            } => {
                if self.honest(peer.index()) {
                    self.tests_on_honest += 1;
                    self.tests_on_honest_faulty += u64::from(faulty);
                } else {
                    self.tests_on_byzantine += 1;
                    self.tests_on_byzantine_faulty += u64::from(faulty);
                    if faulty {
                        // Observations to quarantine, recorded as "milliseconds" of 1 each.
                        self.sprt_observations
                            .record(u64::from(observations) * 1_000_000);
                    }
                }
            }
            DetectionEvent::Action { peer, level, cause } => {
                let accused = peer.index();
                let byzantine = !self.honest(accused);
                let acts = matches!(level, Level::Quarantined | Level::Isolated);
                if acts && byzantine && self.detected[accused].is_none() {
                    self.detected[accused] = Some(now);
                }
                if !byzantine && level == Level::Quarantined {
                    self.false_quarantines += 1;
                    self.honest_quarantined.insert(peer.0);
                }
                if !byzantine && level == Level::Isolated {
                    self.false_isolations += 1;
                }
                if level == Level::Isolated
                    && let Some(entry) = self.isolated_by.get_mut(accused)
                {
                    entry.0.insert(node.0);
                    entry.1 = entry.1.max(now);
                }
                if level == Level::Normal {
                    return;
                }
                if self.table.rows.len() >= self.samples_max {
                    self.table.truncated += 1;
                    return;
                }
                let fault = self.plan.class_of[accused].map_or("honest", |(c, _)| c);
                self.table.rows.push(vec![
                    round6(now.as_secs_f64()),
                    f64::from(node.0),
                    f64::from(peer.0),
                    f64::from(u8::from(byzantine)),
                ]);
                self.table.text_rows.push(vec![
                    fault.to_owned(),
                    level.name().to_owned(),
                    cause.name().to_owned(),
                ]);
            }
        }
    }

    fn retire(&mut self, node: &Detection) {
        let s = node.stats;
        let t = &mut self.stats;
        t.observations += s.observations;
        t.observations_bad += s.observations_bad;
        t.proofs_found += s.proofs_found;
        t.proofs_received += s.proofs_received;
        t.proofs_valid += s.proofs_valid;
        t.proofs_invalid += s.proofs_invalid;
        t.proofs_duplicate += s.proofs_duplicate;
        t.proofs_sent += s.proofs_sent;
        t.opinions_sent += s.opinions_sent;
        t.opinions_received += s.opinions_received;
        t.opinions_ignored += s.opinions_ignored;
        t.tests_honest += s.tests_honest;
        t.tests_faulty += s.tests_faulty;
        t.quarantines += s.quarantines;
        t.releases += s.releases;
        t.isolations += s.isolations;
        t.records_evicted += s.records_evicted;
        t.slanders_sent += s.slanders_sent;
    }

    fn finish(&mut self, _end: Time, live: &[bool], m: &mut Metrics) {
        let n = live.len();
        let honest_members: Vec<usize> = (0..n)
            .filter(|&i| live[i] && self.members[i] && self.honest(i))
            .collect();
        let byzantine: Vec<usize> = (0..n).filter(|&i| self.plan.byzantine(i)).collect();
        m.count("detection.byzantine_nodes", byzantine.len() as u64);
        m.count("detection.honest_nodes", honest_members.len() as u64);
        for class in FAULT_CLASSES {
            let of: Vec<usize> = byzantine
                .iter()
                .copied()
                .filter(|&i| self.plan.class_of[i].is_some_and(|(c, _)| c == *class))
                .collect();
            if of.is_empty() {
                continue;
            }
            let p = format!("detection.by_fault.{class}");
            let mut detect = LatencyHistogram::millis();
            let mut isolate = LatencyHistogram::millis();
            let (mut detected, mut everywhere) = (0u64, 0u64);
            let active = of.iter().filter(|&&i| self.active(i)).count() as u64;
            for &i in &of {
                let start = self.plan.class_of[i].map_or(Time::ZERO, |(_, t)| t);
                if let Some(t) = self.detected[i] {
                    detected += 1;
                    detect.record(t.saturating_since(start).as_nanos());
                }
                let (by, last) = &self.isolated_by[i];
                let all = !honest_members.is_empty()
                    && honest_members
                        .iter()
                        .all(|&h| h == i || by.contains(&(h as u32)));
                if all {
                    everywhere += 1;
                    isolate.record(last.saturating_since(start).as_nanos());
                }
            }
            m.count(&format!("{p}.nodes"), of.len() as u64);
            m.count(&format!("{p}.active"), active);
            m.count(&format!("{p}.detected"), detected);
            m.ratio(&format!("{p}.detected_share"), detected.min(active), active);
            m.count(&format!("{p}.isolated_everywhere"), everywhere);
            m.histogram(&format!("{p}.detect_ms"), &detect);
            m.histogram(&format!("{p}.isolate_all_ms"), &isolate);
        }
        let honest_workers = n - byzantine.len();
        m.count("detection.false_quarantines", self.false_quarantines);
        m.count("detection.false_isolations", self.false_isolations);
        m.count(
            "detection.honest_quarantined",
            self.honest_quarantined.len() as u64,
        );
        m.real(
            "detection.honest_quarantined_rate",
            round6(self.honest_quarantined.len() as f64 / honest_workers.max(1) as f64),
        );
        m.count("detection.sprt_tests_on_honest", self.tests_on_honest);
        m.count(
            "detection.sprt_tests_on_honest_faulty",
            self.tests_on_honest_faulty,
        );
        if self.tests_on_honest > 0 {
            m.real(
                "detection.sprt_false_positive_rate",
                round6(self.tests_on_honest_faulty as f64 / self.tests_on_honest as f64),
            );
        }
        m.count("detection.sprt_tests_on_byzantine", self.tests_on_byzantine);
        if self.tests_on_byzantine > 0 {
            m.real(
                "detection.sprt_detection_rate",
                round6(self.tests_on_byzantine_faulty as f64 / self.tests_on_byzantine as f64),
            );
        }
        m.histogram("detection.sprt_observations", &self.sprt_observations);
        let s = &self.stats;
        m.count("detection.observations", s.observations);
        m.count("detection.observations_bad", s.observations_bad);
        m.count("detection.proofs_found", s.proofs_found);
        m.count("detection.proofs_valid", s.proofs_valid);
        m.count("detection.proofs_invalid", s.proofs_invalid);
        m.count("detection.proofs_duplicate", s.proofs_duplicate);
        m.count("detection.opinions_sent", s.opinions_sent);
        m.count("detection.opinions_ignored", s.opinions_ignored);
        m.count("detection.quarantines", s.quarantines);
        m.count("detection.releases", s.releases);
        m.count("detection.isolations", s.isolations);
        m.count("detection.records_evicted", s.records_evicted);
        m.count("detection.slanders_sent", s.slanders_sent);
    }

    fn series_columns(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn sample(&mut self, _out: &mut Vec<f64>) {}

    fn tables(&mut self) -> Vec<(String, Table)> {
        let mut t = Table::new(COLUMNS);
        t.text_columns = TEXT_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
        vec![(
            "accusations".to_owned(),
            std::mem::replace(&mut self.table, t),
        )]
    }

    fn violation(&self) -> Option<&Violation> {
        None
    }
}

/// Counts every detection metric publishes (per fault class, `{class}` is one of
/// [`FAULT_CLASSES`]).
pub const DETECTION_COUNTS: &[&str] = &[
    "detection.byzantine_nodes",
    "detection.honest_nodes",
    "detection.false_quarantines",
    "detection.false_isolations",
    "detection.honest_quarantined",
    "detection.sprt_tests_on_honest",
    "detection.sprt_tests_on_honest_faulty",
    "detection.sprt_tests_on_byzantine",
    "detection.observations",
    "detection.observations_bad",
    "detection.proofs_found",
    "detection.proofs_valid",
    "detection.proofs_invalid",
    "detection.proofs_duplicate",
    "detection.opinions_sent",
    "detection.opinions_ignored",
    "detection.quarantines",
    "detection.releases",
    "detection.isolations",
    "detection.records_evicted",
    "detection.slanders_sent",
];
pub const DETECTION_REALS: &[&str] = &[
    "detection.honest_quarantined_rate",
    "detection.sprt_false_positive_rate",
    "detection.sprt_detection_rate",
    "tasks.wrong_share_before",
    "tasks.wrong_share_after",
];
pub const DETECTION_HISTOGRAMS: &[&str] = &["detection.sprt_observations"];
/// Per fault class: counts, reals, histograms.
pub const DETECTION_FAULT_COUNTS: &[&str] = &["nodes", "active", "detected", "isolated_everywhere"];
pub const DETECTION_FAULT_REALS: &[&str] = &["detected_share"];
pub const DETECTION_FAULT_HISTOGRAMS: &[&str] = &["detect_ms", "isolate_all_ms"];
