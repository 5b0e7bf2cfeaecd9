//! The SWIM model: failure-detection metrics against the truth the engine knows (when each node
//! crashed and restarted): time from a crash to the first suspicion and to the first
//! confirmation, false suspicions and false deaths, refutations, and view accuracy at the end.

use prsm_protocol::swim::{Swim, SwimConfig, SwimEvent};
use prsm_protocol::{NodeId, Time};
use rand_chacha::ChaCha8Rng;

use super::Model;
use crate::metrics::{LatencyHistogram, Metrics, Table, round6};

pub struct SwimModel {
    config: SwimConfig,
    /// When each node last crashed, while it is down.
    down_since: Vec<Option<Time>>,
    suspected: Vec<bool>,
    confirmed: Vec<bool>,
    first_suspicion: LatencyHistogram,
    confirmation: LatencyHistogram,
    suspicions: u64,
    false_suspicions: u64,
    false_deaths: u64,
    refutations: u64,
    crashes: u64,
    probes: u64,
    indirect_probes: u64,
    /// Per node retired at the end: (node, members it believes dead).
    views: Vec<(NodeId, Vec<NodeId>)>,
    interval_suspicions: u64,
    interval_false: u64,
    samples: Table,
    samples_max: usize,
}

impl SwimModel {
    pub fn new(config: SwimConfig, samples_max: usize) -> Self {
        let n = config.n as usize;
        SwimModel {
            config,
            down_since: vec![None; n],
            suspected: vec![false; n],
            confirmed: vec![false; n],
            first_suspicion: LatencyHistogram::millis(),
            confirmation: LatencyHistogram::millis(),
            suspicions: 0,
            false_suspicions: 0,
            false_deaths: 0,
            refutations: 0,
            crashes: 0,
            probes: 0,
            indirect_probes: 0,
            views: Vec::new(),
            interval_suspicions: 0,
            interval_false: 0,
            samples: Table::new(&["member", "crashed_s", "event", "time_s", "after_ms"]),
            samples_max,
        }
    }
}

impl Model for SwimModel {
    type P = Swim;

    fn build(&self, id: NodeId, durable: Option<u32>) -> Swim {
        Swim::new(self.config, id, durable)
    }

    fn first_command_at(&self) -> Option<Time> {
        None
    }

    fn command(
        &mut self,
        _: Time,
        _: &mut ChaCha8Rng,
        _: &[bool],
    ) -> (Option<(NodeId, ())>, Option<Time>) {
        (None, None)
    }

    fn started(&mut self, _now: Time, node: NodeId) {
        self.down_since[node.index()] = None;
    }

    fn crashed(&mut self, now: Time, node: NodeId) {
        let i = node.index();
        self.down_since[i] = Some(now);
        self.suspected[i] = false;
        self.confirmed[i] = false;
        self.crashes += 1;
    }

    fn observe(&mut self, now: Time, _node: NodeId, event: SwimEvent) {
        let (member, confirm) = match event {
            SwimEvent::Suspected { member } => (member, false),
            SwimEvent::Confirmed { member } => (member, true),
            SwimEvent::Refuted { .. } => {
                self.refutations += 1;
                return;
            }
        };
        let i = member.index();
        if !confirm {
            self.suspicions += 1;
            self.interval_suspicions += 1;
        }
        let Some(crashed) = self.down_since.get(i).copied().flatten() else {
            if confirm {
                self.false_deaths += 1;
            } else {
                self.false_suspicions += 1;
                self.interval_false += 1;
            }
            return;
        };
        let first = if confirm {
            &mut self.confirmed[i]
        } else {
            &mut self.suspected[i]
        };
        if *first {
            return;
        }
        *first = true;
        let after = now - crashed;
        if confirm {
            self.confirmation.record(after.as_nanos());
        } else {
            self.first_suspicion.record(after.as_nanos());
        }
        let row = vec![
            f64::from(member.0),
            crashed.as_secs_f64(),
            if confirm { 1.0 } else { 0.0 },
            now.as_secs_f64(),
            after.as_millis_f64(),
        ];
        self.samples.push(row, self.samples_max);
    }

    fn retire(&mut self, node: &Swim) {
        let s = node.stats();
        self.probes += s.probes;
        self.indirect_probes += s.indirect_probes;
        self.views.push((node.id(), node.dead().collect()));
    }

    fn series_columns(&self) -> &'static [&'static str] {
        &["swim_suspicions", "swim_false_suspicions"]
    }

    fn sample(&mut self, out: &mut Vec<f64>) {
        out.push(self.interval_suspicions as f64);
        out.push(self.interval_false as f64);
        self.interval_suspicions = 0;
        self.interval_false = 0;
    }

    fn finish(&mut self, _end: Time, live: &[bool], m: &mut Metrics) {
        // A view is accurate about a member when it believes dead exactly the members that are
        // down. Views of nodes live at the end are the last ones retired.
        let n = live.len();
        let down = live.iter().filter(|&&l| !l).count() as u64;
        let mut last = vec![None; n];
        for (k, (id, _)) in self.views.iter().enumerate() {
            last[id.index()] = Some(k);
        }
        let (mut pairs, mut wrong) = (0u64, 0u64);
        for (i, slot) in last.iter().enumerate() {
            let Some(k) = slot.filter(|_| live[i]) else {
                continue;
            };
            let dead = &self.views[k].1;
            let dead_and_down = dead.iter().filter(|d| !live[d.index()]).count() as u64;
            let dead_but_live = dead.len() as u64 - dead_and_down;
            wrong += dead_but_live + (down - dead_and_down);
            pairs += n as u64 - 1;
        }
        m.count("swim.crashes", self.crashes);
        m.count("swim.suspicions", self.suspicions);
        m.count("swim.false_suspicions", self.false_suspicions);
        m.count("swim.false_deaths", self.false_deaths);
        m.count("swim.refutations", self.refutations);
        m.count("swim.probes", self.probes);
        m.count("swim.indirect_probes", self.indirect_probes);
        if pairs > 0 {
            m.real(
                "swim.view_accuracy",
                round6(1.0 - wrong as f64 / pairs as f64),
            );
        }
        let period_ms = self.config.probe_interval.as_millis_f64();
        if let Some(mean) = self
            .first_suspicion
            .quantile(0.5)
            .filter(|_| period_ms > 0.0)
        {
            m.real("swim.first_suspicion_periods_p50", round6(mean / period_ms));
        }
        m.real(
            "swim.suspicion_timeout_ms",
            round6(self.config.suspicion_timeout().as_millis_f64()),
        );
        m.histogram("swim.first_suspicion_ms", &self.first_suspicion);
        m.histogram("swim.confirmation_ms", &self.confirmation);
    }

    fn tables(&mut self) -> Vec<(String, Table)> {
        vec![("detections".to_owned(), std::mem::take(&mut self.samples))]
    }

    fn cdfs(&self) -> Vec<(String, Vec<(f64, f64)>)> {
        vec![
            (
                "swim.first_suspicion_ms".to_owned(),
                self.first_suspicion.cdf(),
            ),
            ("swim.confirmation_ms".to_owned(), self.confirmation.cdf()),
        ]
    }
}

pub const SWIM_COUNTS: &[&str] = &[
    "swim.crashes",
    "swim.suspicions",
    "swim.false_suspicions",
    "swim.false_deaths",
    "swim.refutations",
    "swim.probes",
    "swim.indirect_probes",
];
pub const SWIM_REALS: &[&str] = &[
    "swim.view_accuracy",
    "swim.first_suspicion_periods_p50",
    "swim.suspicion_timeout_ms",
];
pub const SWIM_HISTOGRAMS: &[&str] = &["swim.first_suspicion_ms", "swim.confirmation_ms"];
