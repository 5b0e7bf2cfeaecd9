//! The routing model: task arrivals at their origins, and what became of every task (outcome,
//! latency and its parts, attempts, the load spread over workers). It is the `routing` layer's
//! part of the full node's model.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use prsm_protocol::routing::{
    ClassId, Routing, RoutingCommand, RoutingConfig, RoutingEvent, TaskOutcome, TaskReport,
};
use prsm_protocol::{NodeId, Time};
use rand_chacha::ChaCha8Rng;

use super::Model;
use super::arrivals::{Arrivals, TraceRow};
use crate::metrics::{LatencyHistogram, Metrics, Table, round6};
use crate::scenario::{
    NodeInfo, RoutingSettings, Scenario, TaskSource, TaskStream, nodeset_from_str,
};
use crate::topology::Topology;

/// Resolves a stream's origins (a selector, a region) to its pool of nodes.
type PoolOf<'a> =
    dyn Fn(Option<&crate::scenario::NodeSetSpec>, Option<u16>, &mut ChaCha8Rng) -> Vec<u32> + 'a;

/// One stream's state during a run.
enum Stream {
    Process {
        arrivals: Arrivals,
        class: ClassId,
        pool: Vec<u32>,
    },
    Trace {
        rows: Arc<[TraceRow]>,
        next: usize,
        /// Each row's origin pool and class.
        resolved: Vec<(usize, ClassId)>,
        pools: Vec<Vec<u32>>,
    },
}

/// Outcome tallies of a group of tasks (all, one class, one region).
#[derive(Clone, Debug, Default)]
struct Tally {
    submitted: u64,
    completed: u64,
    failed: u64,
    expired: u64,
    rejected: u64,
    latency: Option<LatencyHistogram>,
}

impl Tally {
    fn ended(&self) -> u64 {
        self.completed + self.failed + self.expired + self.rejected
    }

    fn add(&mut self, r: &TaskReport) {
        match r.outcome {
            TaskOutcome::Completed => {
                self.completed += 1;
                self.latency
                    .get_or_insert_with(LatencyHistogram::millis)
                    .record(r.latency().as_nanos());
            }
            TaskOutcome::Failed(_) => self.failed += 1,
            TaskOutcome::Expired => self.expired += 1,
            TaskOutcome::Rejected => self.rejected += 1,
        }
    }

    fn publish(&self, prefix: &str, metrics: &mut Metrics) {
        metrics.count(&format!("{prefix}.submitted"), self.submitted);
        metrics.count(&format!("{prefix}.completed"), self.completed);
        metrics.ratio(
            &format!("{prefix}.success_rate"),
            self.completed,
            self.ended(),
        );
        if let Some(h) = &self.latency {
            for (suffix, q) in [("p50", 0.5), ("p99", 0.99)] {
                if let Some(v) = h.quantile(q) {
                    metrics.real(&format!("{prefix}.latency_ms.{suffix}"), v);
                }
            }
        }
    }
}

/// Task routing: arrivals, outcomes, latencies, load balance.
pub struct RoutingModel {
    settings: RoutingSettings,
    members: Vec<bool>,
    nodes: Vec<NodeInfo>,
    regions: Vec<String>,
    /// Per node, its worker group (index into `settings.workers`).
    worker_of: Vec<Option<u16>>,
    /// Peers greeted at start when no discovery layer runs: every worker.
    seeds: Option<Arc<[NodeId]>>,
    streams: Vec<Stream>,
    due: BinaryHeap<Reverse<(Time, usize)>>,
    next_task: u64,
    samples_max: usize,
    /// The run's seed (identity keys derive from it).
    seed: u64,
    /// Per node, its Byzantine worker faults (set by the full model from `adversaries:`).
    faults: Vec<Vec<prsm_protocol::routing::WorkerFault>>,
    flood: Vec<Option<prsm_protocol::routing::Flood>>,
    /// Completed tasks that delivered a wrong result, and every completed task's submission
    /// time with whether it was wrong (for the before/after-detection split).
    pub(crate) wrong: u64,
    pub(crate) outcomes: Vec<(Time, bool)>,
    /// Per node, the results it got wrong on purpose (a Byzantine worker's lies).
    pub(crate) lies: Vec<u64>,
    /// The routing layers' verification and abuse counters, summed.
    checks: prsm_protocol::routing::RoutingStats,
    all: Tally,
    by_class: Vec<Tally>,
    by_region: Vec<Tally>,
    /// Per task in flight: its class (set at submission, for per-class tallies).
    unsubmitted: u64,
    latency: LatencyHistogram,
    network: LatencyHistogram,
    queue: LatencyHistogram,
    service: LatencyHistogram,
    attempts: LatencyHistogram,
    report_age: LatencyHistogram,
    failovers: u64,
    mismatches: u64,
    local: u64,
    /// Per node, tasks served and busy time summed over its incarnations.
    served: Vec<u64>,
    busy_ns: Vec<u64>,
    table: Table,
    // Per sample interval.
    interval_submitted: u64,
    interval_completed: u64,
    interval_ended: u64,
    queue_sum: u64,
    queue_max: u64,
    in_service: u64,
    in_flight: u64,
}

const TASK_COLUMNS: &[&str] = &[
    "task",
    "origin",
    "attempts",
    "submit_ms",
    "start_ms",
    "finish_ms",
    "latency_ms",
    "network_ms",
    "queue_ms",
    "service_ms",
    "local",
];
const TASK_TEXT_COLUMNS: &[&str] = &[
    "class",
    "origin_region",
    "workers",
    "outcome",
    "reason",
    "attempt_outcomes",
];

impl RoutingModel {
    pub fn new(
        scenario: &Scenario,
        settings: &RoutingSettings,
        members: Vec<bool>,
        discovery: bool,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let n = scenario.node_count() as usize;
        let live = vec![true; n];
        let topo = Topology {
            nodes: &scenario.nodes,
            regions: &scenario.regions,
            live: &live,
        };
        let mut worker_of = vec![None; n];
        for (g, (set, _)) in settings.workers.iter().enumerate() {
            for id in topo.resolve(set, |i| members[i], rng) {
                let slot = &mut worker_of[id.index()];
                if slot.is_none() && members[id.index()] {
                    *slot = Some(g as u16);
                }
            }
        }
        let seeds = (!discovery).then(|| {
            let all: Vec<NodeId> = (0..n as u32)
                .filter(|&i| worker_of[i as usize].is_some())
                .map(NodeId)
                .collect();
            Arc::from(all)
        });
        let pool_of = |origins: Option<&crate::scenario::NodeSetSpec>,
                       region: Option<u16>,
                       rng: &mut ChaCha8Rng|
         -> Vec<u32> {
            let in_region = |i: usize| region.is_none_or(|r| scenario.nodes[i].region == Some(r));
            match origins {
                Some(set) => topo
                    .resolve(set, |i| members[i] && in_region(i), rng)
                    .into_iter()
                    .map(|id| id.0)
                    .filter(|&i| members[i as usize] && in_region(i as usize))
                    .collect(),
                None => (0..n as u32)
                    .filter(|&i| members[i as usize] && in_region(i as usize))
                    .collect(),
            }
        };
        let class_names: Vec<&str> = settings
            .catalog
            .classes
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let mut streams = Vec::new();
        for s in &scenario.workload.tasks {
            streams.push(Self::stream(s, &pool_of, &class_names, rng));
        }
        let mut due = BinaryHeap::new();
        for (i, s) in streams.iter_mut().enumerate() {
            if let Some(t) = Self::advance(s, rng) {
                due.push(Reverse((t, i)));
            }
        }
        let classes = settings.catalog.classes.len();
        RoutingModel {
            settings: settings.clone(),
            members,
            nodes: scenario.nodes.clone(),
            regions: scenario.regions.clone(),
            worker_of,
            seeds,
            streams,
            due,
            next_task: 0,
            samples_max: scenario.samples_max,
            seed: scenario.seed,
            faults: vec![Vec::new(); n],
            flood: vec![None; n],
            wrong: 0,
            outcomes: Vec::new(),
            lies: vec![0; n],
            checks: Default::default(),
            all: Tally::default(),
            by_class: vec![Tally::default(); classes],
            by_region: vec![Tally::default(); scenario.regions.len()],
            unsubmitted: 0,
            latency: LatencyHistogram::millis(),
            network: LatencyHistogram::millis(),
            queue: LatencyHistogram::millis(),
            service: LatencyHistogram::millis(),
            attempts: LatencyHistogram::plain(),
            report_age: LatencyHistogram::millis(),
            failovers: 0,
            mismatches: 0,
            local: 0,
            served: vec![0; n],
            busy_ns: vec![0; n],
            table: Table::with_text(TASK_COLUMNS, TASK_TEXT_COLUMNS),
            interval_submitted: 0,
            interval_completed: 0,
            interval_ended: 0,
            queue_sum: 0,
            queue_max: 0,
            in_service: 0,
            in_flight: 0,
        }
    }

    fn stream(
        s: &TaskStream,
        pool_of: &PoolOf<'_>,
        class_names: &[&str],
        rng: &mut ChaCha8Rng,
    ) -> Stream {
        match &s.source {
            TaskSource::Process {
                process,
                from,
                until,
            } => Stream::Process {
                arrivals: Arrivals::new(process.clone(), *from, *until),
                class: s.class.unwrap_or(0),
                pool: pool_of(s.origins.as_ref(), s.region, rng),
            },
            TaskSource::Trace { rows, .. } => {
                let rows: Arc<[TraceRow]> = rows.clone().unwrap_or_else(|| Arc::from(Vec::new()));
                let mut texts: BTreeMap<&str, usize> = BTreeMap::new();
                let mut pools = Vec::new();
                let mut resolved = Vec::with_capacity(rows.len());
                for row in rows.iter() {
                    let pool = match texts.get(row.origin.as_str()) {
                        Some(&p) => p,
                        None => {
                            let set = nodeset_from_str(&row.origin);
                            let within = pool_of(s.origins.as_ref(), None, rng);
                            let own = pool_of(Some(&set), None, rng);
                            let both: Vec<u32> = if s.origins.is_some() {
                                own.into_iter().filter(|i| within.contains(i)).collect()
                            } else {
                                own
                            };
                            pools.push(both);
                            texts.insert(row.origin.as_str(), pools.len() - 1);
                            pools.len() - 1
                        }
                    };
                    let class = class_names
                        .iter()
                        .position(|c| *c == row.class)
                        .unwrap_or(0) as ClassId;
                    resolved.push((pool, class));
                }
                Stream::Trace {
                    rows: rows.clone(),
                    next: 0,
                    resolved,
                    pools,
                }
            }
        }
    }

    /// The stream's next arrival time, advancing it.
    fn advance(s: &mut Stream, rng: &mut ChaCha8Rng) -> Option<Time> {
        match s {
            Stream::Process { arrivals, .. } => arrivals.next(rng),
            Stream::Trace { rows, next, .. } => rows.get(*next).map(|r| Time(r.at.as_nanos())),
        }
    }

    /// The Byzantine workers' faults, per node.
    pub fn set_faults(
        &mut self,
        faults: Vec<Vec<prsm_protocol::routing::WorkerFault>>,
        flood: Vec<Option<prsm_protocol::routing::Flood>>,
    ) {
        self.faults = faults;
        self.flood = flood;
    }

    pub fn build(&self, id: NodeId) -> Routing {
        Routing::new(RoutingConfig {
            catalog: self.settings.catalog.clone(),
            router: self.settings.router.clone(),
            worker: self.worker_of[id.index()]
                .and_then(|g| self.settings.workers.get(usize::from(g)))
                .map(|(_, w)| {
                    let mut w = w.clone();
                    w.faults = self.faults.get(id.index()).cloned().unwrap_or_default();
                    w
                }),
            keys: prsm_protocol::detection::NodeKeys { seed: self.seed },
            flood: self.flood.get(id.index()).copied().flatten(),
            region: self.nodes[id.index()].region.unwrap_or(0),
            seeds: self
                .seeds
                .as_ref()
                .map(|s| {
                    s.iter()
                        .copied()
                        .filter(|&p| p != id)
                        .take(self.settings.router.candidates_max)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    fn origin_region(&self, node: NodeId) -> Option<u16> {
        self.nodes.get(node.index()).and_then(|n| n.region)
    }

    fn record(&mut self, node: NodeId, r: &TaskReport) {
        let class = self.settings.catalog.classes.get(usize::from(r.class));
        let copies = class.map_or(1, |c| c.copies());
        self.all.add(r);
        if let Some(t) = self.by_class.get_mut(usize::from(r.class)) {
            t.add(r);
        }
        if let Some(t) = self
            .origin_region(node)
            .and_then(|g| self.by_region.get_mut(usize::from(g)))
        {
            t.add(r);
        }
        self.interval_ended += 1;
        self.in_flight = self.in_flight.saturating_sub(1);
        let completed = r.outcome == TaskOutcome::Completed;
        if completed {
            let truth = prsm_protocol::routing::honest_digest(r.task);
            let wrong = r.digests.iter().any(|&d| d != truth);
            self.wrong += u64::from(wrong);
            self.outcomes.push((r.submitted, wrong));
            self.interval_completed += 1;
            self.latency.record(r.latency().as_nanos());
            self.network.record(r.network().as_nanos());
            self.queue.record(r.queue.as_nanos());
            self.service.record(r.service.as_nanos());
        }
        self.attempts.record(r.attempts.len() as u64);
        self.failovers += r.failovers(copies) as u64;
        self.mismatches += u64::from(r.mismatches);
        self.local += u64::from(r.local);
        if let Some(age) = r.load_age {
            self.report_age.record(age.as_nanos());
        }
        if self.table.rows.len() >= self.samples_max {
            self.table.truncated += 1;
            return;
        }
        let mut workers: Vec<u32> = Vec::new();
        for a in &r.attempts {
            if !workers.contains(&a.worker.0) {
                workers.push(a.worker.0);
            }
        }
        let ms = |t: Time| t.as_nanos() as f64 / 1e6;
        let row = vec![
            r.task as f64,
            f64::from(node.0),
            r.attempts.len() as f64,
            ms(r.submitted),
            r.started.map_or(f64::NAN, ms),
            ms(r.finished),
            r.latency().as_millis_f64(),
            if completed {
                r.network().as_millis_f64()
            } else {
                f64::NAN
            },
            if completed {
                r.queue.as_millis_f64()
            } else {
                f64::NAN
            },
            if completed {
                r.service.as_millis_f64()
            } else {
                f64::NAN
            },
            f64::from(u8::from(r.local)),
        ];
        let join = |items: Vec<String>| items.join(";");
        let text = vec![
            class.map_or_else(String::new, |c| c.name.clone()),
            self.origin_region(node)
                .and_then(|g| self.regions.get(usize::from(g)))
                .cloned()
                .unwrap_or_default(),
            join(workers.iter().map(|w| w.to_string()).collect()),
            r.outcome.name().to_owned(),
            r.outcome.reason().to_owned(),
            join(
                r.attempts
                    .iter()
                    .map(|a| format!("{}:{}", a.worker.0, a.outcome.name()))
                    .collect(),
            ),
        ];
        self.table.push_with_text(row, text, self.samples_max);
    }

    fn load_cv(values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        if mean <= 0.0 {
            return None;
        }
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / values.len() as f64;
        Some(var.sqrt() / mean)
    }
}

impl Model for RoutingModel {
    type P = Routing;

    fn build(&self, id: NodeId, _durable: Option<()>) -> Routing {
        RoutingModel::build(self, id)
    }

    fn first_command_at(&self) -> Option<Time> {
        self.due.peek().map(|Reverse((t, _))| *t)
    }

    fn command(
        &mut self,
        _now: Time,
        rng: &mut ChaCha8Rng,
        live: &[bool],
    ) -> super::WorkloadStep<Routing> {
        let Some(Reverse((_, i))) = self.due.pop() else {
            return (None, None);
        };
        let (pool, class): (&[u32], ClassId) = match &self.streams[i] {
            Stream::Process { pool, class, .. } => (pool, *class),
            Stream::Trace {
                next,
                resolved,
                pools,
                ..
            } => {
                let (p, c) = resolved.get(*next).copied().unwrap_or((0, 0));
                (pools.get(p).map_or(&[][..], Vec::as_slice), c)
            }
        };
        let origin = pick_live(pool, live, rng);
        if let Stream::Trace { next, .. } = &mut self.streams[i] {
            *next += 1;
        }
        if let Some(t) = Self::advance(&mut self.streams[i], rng) {
            self.due.push(Reverse((t, i)));
        }
        let next = self.first_command_at();
        let Some(origin) = origin else {
            self.unsubmitted += 1;
            return (None, next);
        };
        let task = self.next_task;
        self.next_task += 1;
        self.all.submitted += 1;
        if let Some(t) = self.by_class.get_mut(usize::from(class)) {
            t.submitted += 1;
        }
        if let Some(t) = self
            .origin_region(origin)
            .and_then(|g| self.by_region.get_mut(usize::from(g)))
        {
            t.submitted += 1;
        }
        self.interval_submitted += 1;
        self.in_flight += 1;
        (Some((origin, RoutingCommand::Submit { task, class })), next)
    }

    fn observe(&mut self, _now: Time, node: NodeId, event: RoutingEvent) {
        let RoutingEvent::Done(r) = event;
        self.record(node, &r);
    }

    /// Worker counters are harvested through [`RoutingModel::retire_node`], which knows the id.
    fn retire(&mut self, _node: &Routing) {}

    fn series_columns(&self) -> Vec<&'static str> {
        ROUTING_SERIES.to_vec()
    }

    fn inspects(&self) -> bool {
        true
    }

    fn inspect(&mut self, node: &Routing) {
        if let Some(w) = node.worker() {
            let q = w.queue_len() as u64;
            self.queue_sum += q;
            self.queue_max = self.queue_max.max(q);
            self.in_service += w.in_service() as u64;
        }
    }

    fn sample(&mut self, out: &mut Vec<f64>) {
        let workers = self.worker_of.iter().filter(|w| w.is_some()).count().max(1);
        out.push(self.interval_submitted as f64);
        out.push(self.interval_completed as f64);
        out.push(self.interval_ended.saturating_sub(self.interval_completed) as f64);
        out.push(if self.interval_ended > 0 {
            round6(self.interval_completed as f64 / self.interval_ended as f64)
        } else {
            f64::NAN
        });
        out.push(round6(self.queue_sum as f64 / workers as f64));
        out.push(self.queue_max as f64);
        out.push(self.in_service as f64);
        out.push(self.in_flight as f64);
        self.interval_submitted = 0;
        self.interval_completed = 0;
        self.interval_ended = 0;
        self.queue_sum = 0;
        self.queue_max = 0;
        self.in_service = 0;
    }

    fn finish(&mut self, end: Time, _live: &[bool], metrics: &mut Metrics) {
        let a = &self.all;
        metrics.count("tasks.submitted", a.submitted);
        metrics.count("tasks.completed", a.completed);
        metrics.count("tasks.failed", a.failed);
        metrics.count("tasks.expired", a.expired);
        metrics.count("tasks.rejected", a.rejected);
        metrics.count("tasks.unsubmitted", self.unsubmitted);
        metrics.count(
            "tasks.in_flight_at_end",
            a.submitted.saturating_sub(a.ended()),
        );
        metrics.count("tasks.local", self.local);
        metrics.count("tasks.failovers", self.failovers);
        metrics.count("tasks.mismatches", self.mismatches);
        metrics.count(
            "tasks.workers",
            self.worker_of.iter().filter(|w| w.is_some()).count() as u64,
        );
        metrics.ratio("tasks.success_rate", a.completed, a.ended());
        metrics.count("tasks.wrong", self.wrong);
        let c = &self.checks;
        metrics.count("tasks.spot_checks", c.spot_checks);
        metrics.count("tasks.spot_checks_failed", c.spot_checks_failed);
        metrics.count("tasks.repeat_checks", c.repeat_checks);
        metrics.count("tasks.conflicts_proven", c.conflicts_proven);
        metrics.count("tasks.weak_check_failed", c.weak_check_failed);
        metrics.count("tasks.slow_answers", c.slow_answers);
        metrics.count("tasks.bad_signatures", c.bad_signatures);
        metrics.count("tasks.refused", c.refused);
        metrics.count("tasks.rate_limited", c.rate_limited);
        metrics.count("tasks.flood_sent", c.flood_sent);
        metrics.count("tasks.lies", c.lies);
        metrics.count("tasks.honest_errors", c.honest_errors);
        metrics.ratio("tasks.wrong_share", self.wrong, a.completed);
        if a.ended() > 0 {
            metrics.real(
                "tasks.failovers_per_task",
                round6(self.failovers as f64 / a.ended() as f64),
            );
        }
        let secs = end.as_secs_f64();
        if secs > 0.0 {
            metrics.real("tasks.throughput_tps", round6(a.completed as f64 / secs));
        }
        metrics.histogram("tasks.latency_ms", &self.latency);
        metrics.histogram("tasks.network_ms", &self.network);
        metrics.histogram("tasks.queue_ms", &self.queue);
        metrics.histogram("tasks.service_ms", &self.service);
        metrics.histogram("tasks.attempts", &self.attempts);
        metrics.histogram("tasks.load_report_age_ms", &self.report_age);
        let workers: Vec<usize> = (0..self.worker_of.len())
            .filter(|&i| self.worker_of[i].is_some())
            .collect();
        let served: Vec<f64> = workers.iter().map(|&i| self.served[i] as f64).collect();
        if let Some(cv) = Self::load_cv(&served) {
            metrics.real("tasks.load_cv", round6(cv));
        }
        if secs > 0.0 && !workers.is_empty() {
            let util: Vec<f64> = workers
                .iter()
                .map(|&i| {
                    let slots = self.worker_of[i]
                        .and_then(|g| self.settings.workers.get(usize::from(g)))
                        .map_or(1, |(_, w)| w.slots.max(1));
                    self.busy_ns[i] as f64 / 1e9 / secs / f64::from(slots)
                })
                .collect();
            metrics.real(
                "tasks.worker_utilisation",
                round6(util.iter().sum::<f64>() / util.len() as f64),
            );
        }
        for (class, t) in self.settings.catalog.classes.iter().zip(&self.by_class) {
            t.publish(&format!("tasks.by_class.{}", class.name), metrics);
        }
        for (region, t) in self.regions.iter().zip(&self.by_region) {
            t.publish(&format!("tasks.by_region.{region}"), metrics);
        }
    }

    fn tables(&mut self) -> Vec<(String, Table)> {
        vec![("tasks".to_owned(), std::mem::take(&mut self.table))]
    }

    fn cdfs(&self) -> Vec<(String, Vec<(f64, f64)>)> {
        vec![("tasks.latency_ms".to_owned(), self.latency.cdf())]
    }
}

impl RoutingModel {
    /// A node leaves the run: add its worker's counters (the full model knows its id).
    pub fn retire_node(&mut self, id: NodeId, node: &Routing) {
        if let Some(w) = node.worker()
            && let Some(slot) = self.served.get_mut(id.index())
        {
            *slot += w.served;
            self.busy_ns[id.index()] += w.busy.as_nanos();
        }
        if let Some(l) = self.lies.get_mut(id.index()) {
            *l += node.stats.lies;
        }
        let (s, c) = (&node.stats, &mut self.checks);
        c.spot_checks += s.spot_checks;
        c.spot_checks_failed += s.spot_checks_failed;
        c.repeat_checks += s.repeat_checks;
        c.conflicts_proven += s.conflicts_proven;
        c.weak_check_failed += s.weak_check_failed;
        c.slow_answers += s.slow_answers;
        c.bad_signatures += s.bad_signatures;
        c.refused += s.refused;
        c.rate_limited += s.rate_limited;
        c.flood_sent += s.flood_sent;
        c.lies += s.lies;
        c.honest_errors += s.honest_errors;
    }

    pub fn runs(&self, id: NodeId) -> bool {
        self.members.get(id.index()).copied().unwrap_or(false)
    }

    /// Names for `tasks.csv`'s coded columns: class names and region names.
    pub fn class_names(&self) -> Vec<String> {
        self.settings
            .catalog
            .classes
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }
}

/// A live node of `pool`, uniformly; None if none is live.
fn pick_live(pool: &[u32], live: &[bool], rng: &mut ChaCha8Rng) -> Option<NodeId> {
    use prsm_protocol::random::below;
    if pool.is_empty() {
        return None;
    }
    for _ in 0..8 {
        let i = pool[below(rng, pool.len() as u64) as usize];
        if live.get(i as usize).copied().unwrap_or(false) {
            return Some(NodeId(i));
        }
    }
    let up: Vec<u32> = pool
        .iter()
        .copied()
        .filter(|&i| live.get(i as usize).copied().unwrap_or(false))
        .collect();
    (!up.is_empty()).then(|| NodeId(up[below(rng, up.len() as u64) as usize]))
}

/// Time-series columns.
pub const ROUTING_SERIES: &[&str] = &[
    "tasks_submitted",
    "tasks_completed",
    "tasks_unsuccessful",
    "tasks_success_rate",
    "tasks_queue_mean",
    "tasks_queue_max",
    "tasks_in_service",
    "tasks_in_flight",
];

pub const ROUTING_COUNTS: &[&str] = &[
    "tasks.submitted",
    "tasks.wrong",
    "tasks.spot_checks",
    "tasks.spot_checks_failed",
    "tasks.repeat_checks",
    "tasks.conflicts_proven",
    "tasks.weak_check_failed",
    "tasks.slow_answers",
    "tasks.bad_signatures",
    "tasks.refused",
    "tasks.rate_limited",
    "tasks.flood_sent",
    "tasks.lies",
    "tasks.honest_errors",
    "tasks.completed",
    "tasks.failed",
    "tasks.expired",
    "tasks.rejected",
    "tasks.unsubmitted",
    "tasks.in_flight_at_end",
    "tasks.local",
    "tasks.failovers",
    "tasks.mismatches",
    "tasks.workers",
];
pub const ROUTING_REALS: &[&str] = &[
    "tasks.success_rate",
    "tasks.wrong_share",
    "tasks.failovers_per_task",
    "tasks.throughput_tps",
    "tasks.load_cv",
    "tasks.worker_utilisation",
];
pub const ROUTING_HISTOGRAMS: &[&str] = &[
    "tasks.latency_ms",
    "tasks.network_ms",
    "tasks.queue_ms",
    "tasks.service_ms",
    "tasks.attempts",
    "tasks.load_report_age_ms",
];
/// Per class and per origin region: `tasks.by_class.<class>.*`, `tasks.by_region.<region>.*`.
pub const ROUTING_GROUP_METRICS: &[&str] = &[
    "submitted",
    "completed",
    "success_rate",
    "latency_ms.p50",
    "latency_ms.p99",
];
