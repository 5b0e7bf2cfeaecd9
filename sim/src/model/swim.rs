//! The SWIM model: failure-detection metrics against the truth the engine knows (when each node
//! crashed and restarted): time from a crash to the first suspicion and to the first
//! confirmation, false suspicions and false deaths, refutations, and view accuracy (sampled over
//! the run and at the end). The full node's model reuses it for its health layer.

use prsm_protocol::swim::{Status, Swim, SwimConfig, SwimEvent};
use prsm_protocol::{NodeId, Time};

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
    /// Per node, its last retired view judged against the truth then: (pairs, wrong).
    views: Vec<Option<(u64, u64)>>,
    /// The same over the live views inspected at this sample.
    interval_view: (u64, u64),
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
            views: vec![None; n],
            interval_view: (0, 0),
            interval_suspicions: 0,
            interval_false: 0,
            samples: Table::new(&["member", "crashed_s", "event", "time_s", "after_ms"]),
            samples_max,
        }
    }
}

impl SwimModel {
    /// How well `node`'s view matches the truth now: (members judged, members judged wrongly).
    /// A view is right about a member when it believes it dead exactly when it is down.
    pub fn judge(&self, node: &Swim) -> (u64, u64) {
        let (mut pairs, mut wrong) = (0u64, 0u64);
        for (m, status) in node.view() {
            let down = self.down_since.get(m.index()).is_some_and(Option::is_some);
            pairs += 1;
            if (status == Status::Dead) != down {
                wrong += 1;
            }
        }
        (pairs, wrong)
    }

    /// Counts a live node's view towards this sample's accuracy.
    pub fn inspect_view(&mut self, node: &Swim) {
        let (p, w) = self.judge(node);
        self.interval_view.0 += p;
        self.interval_view.1 += w;
    }

    pub fn retire_view(&mut self, node: &Swim) {
        let s = node.stats();
        self.probes += s.probes;
        self.indirect_probes += s.indirect_probes;
        let judged = self.judge(node);
        if let Some(slot) = self.views.get_mut(node.id().index()) {
            *slot = Some(judged);
        }
    }

    pub fn accuracy_sample(&mut self) -> f64 {
        let (p, w) = std::mem::take(&mut self.interval_view);
        if p == 0 {
            f64::NAN
        } else {
            round6(1.0 - w as f64 / p as f64)
        }
    }
}

impl Model for SwimModel {
    type P = Swim;

    fn build(&self, id: NodeId, durable: Option<u32>) -> Swim {
        Swim::new(self.config, id, durable)
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
            SwimEvent::Rejoined { .. } => return,
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
        self.retire_view(node);
    }

    fn series_columns(&self) -> Vec<&'static str> {
        SWIM_SERIES.to_vec()
    }

    fn inspects(&self) -> bool {
        true
    }

    fn inspect(&mut self, node: &Swim) {
        self.inspect_view(node);
    }

    fn sample(&mut self, out: &mut Vec<f64>) {
        out.push(self.interval_suspicions as f64);
        out.push(self.interval_false as f64);
        out.push(self.accuracy_sample());
        self.interval_suspicions = 0;
        self.interval_false = 0;
    }

    fn finish(&mut self, _end: Time, live: &[bool], m: &mut Metrics) {
        // Views of nodes live at the end are the last ones retired (at the end).
        let (mut pairs, mut wrong) = (0u64, 0u64);
        for (i, v) in self.views.iter().enumerate() {
            if let Some((p, w)) = v.filter(|_| live.get(i).copied().unwrap_or(false)) {
                pairs += p;
                wrong += w;
            }
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

pub const SWIM_SERIES: &[&str] = &[
    "swim_suspicions",
    "swim_false_suspicions",
    "swim_view_accuracy",
];

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
